//! An order-statistic multiset of finite `f64`s: insert, remove one occurrence, k-th smallest, and count and
//! sum of the values below a bound, each in O(log n) expected time: the large-window half of
//! [`OrderStats`](super::OrderStats) (Python onad re-sorts the window on every event instead).
//!
//! A treap in an arena: nodes live in a `Vec` (serializable, no pointers), priorities come from a
//! SplitMix64 counter (deterministic, so the tree's shape and a restored checkpoint are reproducible), and
//! every node keeps its subtree's size and sum. Sums are recomputed from the children on every update, so
//! they never accumulate rounding drift. The field layout is part of the checkpoint format (postcard
//! encodes fields in order): do not reorder or retype them.

use serde::{Deserialize, Serialize};

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Node {
    key: f64,
    priority: u64,
    left: u32,
    right: u32,
    size: u32,
    sum: f64,
}

/// A multiset of finite `f64` values with order statistics (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OrderTree {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: Option<u32>,
    counter: u64,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl OrderTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.size(self.root_id()) as usize
    }

    /// True when no value is held.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Sum of all values held.
    pub fn sum(&self) -> f64 {
        self.sum_of(self.root_id())
    }

    fn root_id(&self) -> u32 {
        self.root.unwrap_or(NIL)
    }

    fn size(&self, n: u32) -> u32 {
        if n == NIL { 0 } else { self.nodes[n as usize].size }
    }

    fn sum_of(&self, n: u32) -> f64 {
        if n == NIL { 0.0 } else { self.nodes[n as usize].sum }
    }

    fn update(&mut self, n: u32) {
        let (l, r) = (self.nodes[n as usize].left, self.nodes[n as usize].right);
        let size = 1 + self.size(l) + self.size(r);
        let sum = self.sum_of(l) + self.nodes[n as usize].key + self.sum_of(r);
        let node = &mut self.nodes[n as usize];
        node.size = size;
        node.sum = sum;
    }

    /// Splits `n` into (keys < key, keys >= key).
    fn split_less(&mut self, n: u32, key: f64) -> (u32, u32) {
        if n == NIL {
            return (NIL, NIL);
        }
        if self.nodes[n as usize].key < key {
            let (a, b) = self.split_less(self.nodes[n as usize].right, key);
            self.nodes[n as usize].right = a;
            self.update(n);
            (n, b)
        } else {
            let (a, b) = self.split_less(self.nodes[n as usize].left, key);
            self.nodes[n as usize].left = b;
            self.update(n);
            (a, n)
        }
    }

    /// Splits `n` into (the `k` smallest, the rest).
    fn split_rank(&mut self, n: u32, k: u32) -> (u32, u32) {
        if n == NIL {
            return (NIL, NIL);
        }
        let left_size = self.size(self.nodes[n as usize].left);
        if k <= left_size {
            let (a, b) = self.split_rank(self.nodes[n as usize].left, k);
            self.nodes[n as usize].left = b;
            self.update(n);
            (a, n)
        } else {
            let (a, b) = self.split_rank(self.nodes[n as usize].right, k - left_size - 1);
            self.nodes[n as usize].right = a;
            self.update(n);
            (n, b)
        }
    }

    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
            let m = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = m;
            self.update(a);
            a
        } else {
            let m = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = m;
            self.update(b);
            b
        }
    }

    /// Inserts a value. Non-finite values are ignored (the window only holds finite values).
    pub fn insert(&mut self, key: f64) {
        if !key.is_finite() {
            return;
        }
        self.counter += 1;
        let node = Node { key, priority: splitmix(self.counter), left: NIL, right: NIL, size: 1, sum: key };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let (a, b) = self.split_less(self.root_id(), key);
        let left = self.merge(a, id);
        let root = self.merge(left, b);
        self.root = Some(root);
    }

    /// Removes one occurrence of `key`; returns whether it was present.
    pub fn remove(&mut self, key: f64) -> bool {
        let (a, b) = self.split_less(self.root_id(), key);
        let (first, rest) = self.split_rank(b, 1);
        let found = first != NIL && self.nodes[first as usize].key == key;
        let right = if found {
            self.free.push(first);
            rest
        } else {
            self.merge(first, rest)
        };
        let root = self.merge(a, right);
        self.root = (root != NIL).then_some(root);
        found
    }

    /// The `k`-th smallest value (0-based), or `None` when `k >= len`.
    pub fn kth(&self, mut k: usize) -> Option<f64> {
        let mut n = self.root_id();
        while n != NIL {
            let node = &self.nodes[n as usize];
            let left = self.size(node.left) as usize;
            if k < left {
                n = node.left;
            } else if k == left {
                return Some(node.key);
            } else {
                k -= left + 1;
                n = node.right;
            }
        }
        None
    }

    /// Count and sum of the values strictly below `bound`.
    pub fn below(&self, bound: f64) -> (usize, f64) {
        let (mut count, mut sum) = (0usize, 0.0);
        let mut n = self.root_id();
        while n != NIL {
            let node = &self.nodes[n as usize];
            if node.key < bound {
                count += self.size(node.left) as usize + 1;
                sum += self.sum_of(node.left) + node.key;
                n = node.right;
            } else {
                n = node.left;
            }
        }
        (count, sum)
    }

    /// The `k`-th smallest value of this multiset with `extra` added (without changing the tree).
    pub fn kth_with(&self, k: usize, extra: f64) -> Option<f64> {
        let (below, _) = self.below(extra);
        match k.cmp(&below) {
            std::cmp::Ordering::Less => self.kth(k),
            std::cmp::Ordering::Equal => Some(extra),
            std::cmp::Ordering::Greater => self.kth(k - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference multiset: a sorted vector.
    fn check(tree: &OrderTree, reference: &[f64]) {
        assert_eq!(tree.len(), reference.len());
        for (k, v) in reference.iter().enumerate() {
            assert_eq!(tree.kth(k), Some(*v), "k = {k}");
        }
        assert_eq!(tree.kth(reference.len()), None);
        for bound in [-1e9, -3.0, 0.0, 0.5, 2.0, 7.0, 1e9] {
            let c = reference.iter().filter(|v| **v < bound).count();
            let s: f64 = reference.iter().filter(|v| **v < bound).sum();
            let (tc, ts) = tree.below(bound);
            assert_eq!(tc, c);
            assert!((ts - s).abs() < 1e-9, "{ts} vs {s}");
        }
    }

    #[test]
    fn matches_a_sorted_vector_under_a_sliding_window() {
        let mut tree = OrderTree::new();
        let mut window: std::collections::VecDeque<f64> = Default::default();
        let mut x = 12345u64;
        for i in 0..3000 {
            x = splitmix(x);
            // Many duplicates (small integers) and some fractions.
            let v = (x % 15) as f64 - 5.0 + if i % 7 == 0 { 0.25 } else { 0.0 };
            tree.insert(v);
            window.push_back(v);
            if window.len() > 50 {
                let old = window.pop_front().unwrap();
                assert!(tree.remove(old));
            }
            if i % 97 == 0 {
                let mut sorted: Vec<f64> = window.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                check(&tree, &sorted);
                for k in 0..=sorted.len() {
                    let mut with = sorted.clone();
                    with.push(2.0);
                    with.sort_by(f64::total_cmp);
                    assert_eq!(tree.kth_with(k, 2.0), with.get(k).copied());
                }
            }
        }
        assert!(!tree.remove(1000.0));
        assert_eq!(tree.len(), 50);
        assert!(tree.nodes.len() <= 51, "freed nodes are reused: {}", tree.nodes.len());
    }

    #[test]
    fn ignores_non_finite_and_empties_cleanly() {
        let mut t = OrderTree::new();
        t.insert(f64::NAN);
        t.insert(f64::INFINITY);
        assert!(t.is_empty());
        t.insert(1.0);
        assert!(t.remove(1.0));
        assert!(t.is_empty());
        assert_eq!(t.kth(0), None);
        assert_eq!(t.kth_with(0, 3.0), Some(3.0));
        assert_eq!(t.sum(), 0.0);
    }
}
