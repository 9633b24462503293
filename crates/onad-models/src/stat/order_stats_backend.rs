//! The order-statistic store behind the moving median, quantile, IQR, mean absolute deviation and the
//! quantile threshold: a sorted vector for windows up to [`SORTED_LIMIT`] values (binary search plus a
//! memmove of at most 32 KiB: tens of nanoseconds at typical window sizes), and the [`OrderTree`] treap,
//! O(log w) per operation, beyond. Both give identical answers (tested against each other).

use serde::{Deserialize, Serialize};

use super::order_tree::OrderTree;

/// Windows up to this many values use the sorted vector.
pub const SORTED_LIMIT: usize = 4096;

/// Finite values kept sorted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SortedVec {
    values: Vec<f64>,
    /// Running sum, recomputed exactly after every `len` updates.
    sum: f64,
    updates: usize,
}

impl SortedVec {
    fn rank(&self, v: f64) -> usize {
        self.values.partition_point(|x| *x < v)
    }

    fn updated(&mut self) {
        self.updates += 1;
        if self.updates >= self.values.len().max(16) {
            self.sum = self.values.iter().sum();
            self.updates = 0;
        }
    }
}

/// An order-statistic multiset of finite values, choosing its representation by capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderStats {
    /// Small windows.
    Sorted(SortedVec),
    /// Large windows.
    Tree(OrderTree),
}

impl Default for OrderStats {
    fn default() -> Self {
        OrderStats::Sorted(SortedVec::default())
    }
}

impl OrderStats {
    /// A store for up to `capacity` values.
    pub fn with_capacity(capacity: usize) -> Self {
        if capacity <= SORTED_LIMIT {
            OrderStats::Sorted(SortedVec { values: Vec::with_capacity(capacity), sum: 0.0, updates: 0 })
        } else {
            OrderStats::Tree(OrderTree::new())
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            OrderStats::Sorted(s) => s.values.len(),
            OrderStats::Tree(t) => t.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts a finite value (others are ignored).
    pub fn insert(&mut self, v: f64) {
        match self {
            OrderStats::Sorted(s) => {
                if v.is_finite() {
                    let i = s.rank(v);
                    s.values.insert(i, v);
                    s.sum += v;
                    s.updated();
                }
            }
            OrderStats::Tree(t) => t.insert(v),
        }
    }

    /// Removes one occurrence; returns whether it was present.
    pub fn remove(&mut self, v: f64) -> bool {
        match self {
            OrderStats::Sorted(s) => {
                let i = s.rank(v);
                if s.values.get(i) == Some(&v) {
                    s.values.remove(i);
                    s.sum -= v;
                    s.updated();
                    true
                } else {
                    false
                }
            }
            OrderStats::Tree(t) => t.remove(v),
        }
    }

    /// The `k`-th smallest value (0-based).
    pub fn kth(&self, k: usize) -> Option<f64> {
        match self {
            OrderStats::Sorted(s) => s.values.get(k).copied(),
            OrderStats::Tree(t) => t.kth(k),
        }
    }

    /// The `k`-th smallest of the values plus `extra`, without inserting it.
    pub fn kth_with(&self, k: usize, extra: f64) -> Option<f64> {
        self.kth_with_rank(k, extra, self.rank(extra))
    }

    /// Number of values strictly below `v`.
    pub fn rank(&self, v: f64) -> usize {
        match self {
            OrderStats::Sorted(s) => s.rank(v),
            OrderStats::Tree(t) => t.below(v).0,
        }
    }

    /// [`OrderStats::kth_with`] when `rank(extra)` is already known (saves a search per call).
    pub fn kth_with_rank(&self, k: usize, extra: f64, rank: usize) -> Option<f64> {
        match k.cmp(&rank) {
            std::cmp::Ordering::Less => self.kth(k),
            std::cmp::Ordering::Equal => Some(extra),
            std::cmp::Ordering::Greater => self.kth(k - 1),
        }
    }

    /// Count and sum of the values strictly below `bound`.
    pub fn below(&self, bound: f64) -> (usize, f64) {
        match self {
            OrderStats::Sorted(s) => {
                let c = s.rank(bound);
                (c, s.values[..c].iter().sum())
            }
            OrderStats::Tree(t) => t.below(bound),
        }
    }

    /// Sum of all values.
    pub fn sum(&self) -> f64 {
        match self {
            OrderStats::Sorted(s) => s.sum,
            OrderStats::Tree(t) => t.sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_answer_alike() {
        let mut small = OrderStats::with_capacity(64);
        let mut large = OrderStats::with_capacity(SORTED_LIMIT + 1);
        assert!(matches!(small, OrderStats::Sorted(_)) && matches!(large, OrderStats::Tree(_)));
        let mut window = std::collections::VecDeque::new();
        let mut x = 99u64;
        for i in 0..2000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((x >> 33) % 40) as f64 * 0.5 - 7.0;
            small.insert(v);
            large.insert(v);
            window.push_back(v);
            if window.len() > 64 {
                let old = window.pop_front().unwrap();
                assert_eq!(small.remove(old), large.remove(old));
            }
            assert_eq!(small.len(), large.len());
            let probe = (i % 17) as f64 - 8.0;
            for k in [0, 1, small.len() / 2, small.len().saturating_sub(1), small.len()] {
                assert_eq!(small.kth(k), large.kth(k));
                assert_eq!(small.kth_with(k, probe), large.kth_with(k, probe));
            }
            let (a, b) = (small.below(probe), large.below(probe));
            assert_eq!(a.0, b.0);
            assert!((a.1 - b.1).abs() < 1e-9);
            assert!((small.sum() - large.sum()).abs() < 1e-9);
        }
        assert!(!small.remove(1e9));
        small.insert(f64::NAN);
        assert_eq!(small.len(), 64);
    }
}
