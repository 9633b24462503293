//! Rolling-window order statistics, the one engine behind every windowed median, quantile, interquartile
//! range and mean absolute deviation of onad: the moving statistics and the score thresholds of
//! `onad-models`, and the streaming quantile threshold of `onad-pipeline`.
//!
//! - [`OrderStats`] is a multiset of finite values with k-th smallest, rank, and count and sum below a
//!   bound: a sorted vector up to [`SORTED_LIMIT`] values (binary search and a memmove of at most 32 KiB,
//!   tens of nanoseconds at typical window sizes), the [`OrderTree`] treap, O(log w) per operation, beyond.
//!   Both give identical answers (tested against each other).
//! - [`RollingWindow`] adds arrival order: push a value, drop the oldest, read order statistics and
//!   [quantiles](RollingWindow::quantile) of what is in the window.
//! - [`quantile_by_rank`] is the linear interpolation at rank `(n - 1) q` shared by both, in the two ways
//!   of writing it that the reference libraries use ([`Interpolation`]), so each model matches its
//!   reference to the last bit.
//!
//! Pure numerics: no IO. The serialized layouts (postcard encodes struct fields in order, enum variants by
//! index) are part of the checkpoint format; the tests pin them byte for byte.
//!
//! ```
//! use onad_core::rolling::{Interpolation, RollingWindow};
//!
//! let mut w = RollingWindow::with_capacity(4);
//! for v in [5.0, 1.0, 4.0, 2.0, 3.0] {
//!     w.push_bounded(v, 4); // the fifth value pushes the first (5.0) out
//! }
//! assert_eq!(w.kth(0), Some(1.0));
//! assert_eq!(w.quantile(0.5, Interpolation::Weighted), Some(2.5));
//! assert_eq!(w.values().iter().copied().collect::<Vec<_>>(), [1.0, 4.0, 2.0, 3.0]);
//! ```

mod order_tree;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub use order_tree::OrderTree;

/// Stores for up to this many values use the sorted vector; larger ones the treap.
pub const SORTED_LIMIT: usize = 4096;

/// How a quantile that falls between two order statistics `lower` and `upper` (at fraction `f` of the
/// way) is computed. The two forms are equal in exact arithmetic and differ in the last bits; each model
/// uses the one its reference library uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// `(1 - f) * lower + f * upper` (Python onad's moving median, quantile and interquartile range; the
    /// pipeline's streaming quantile threshold).
    Weighted,
    /// Interpolation from the nearer end: `lower + f * (upper - lower)` when `f <= 0.5`, otherwise
    /// `upper - (1 - f) * (upper - lower)` (numpy's `linear` method as written in its `_lerp`; aberrant's
    /// QuantileThreshold and the learn-protection rule).
    NearerEnd,
}

/// The quantile `q` (in [0, 1]) of `n` sorted values given by `kth` (0-based k-th smallest), linearly
/// interpolated at rank `(n - 1) q`. `None` when `n` is 0 or `kth` has no value at a rank it is asked for.
#[inline]
pub fn quantile_by_rank(
    n: usize,
    q: f64,
    interpolation: Interpolation,
    kth: impl Fn(usize) -> Option<f64>,
) -> Option<f64> {
    if n == 0 {
        return None;
    }
    // Counts go through i64, whose conversions to and from f64 are one instruction each on baseline x86-64
    // (usize's take a dozen); exact for any count below 2^53, so the same doubles.
    let rank = (n - 1) as i64 as f64 * q;
    // Truncation of a non-negative rank is its floor (without a call to libm's `floor`, which baseline
    // x86-64 has no instruction for); a negative one (q < 0) clamps to 0 as `floor() as usize` did.
    let lo = (rank as i64).max(0) as usize;
    let hi = (lo + 1).min(n - 1);
    let f = rank - lo as i64 as f64;
    let lower = kth(lo)?;
    // Where each reference returns the lower value as it is (which keeps the sign of a -0.0).
    let exact = match interpolation {
        Interpolation::Weighted => hi == lo,
        Interpolation::NearerEnd => f == 0.0 || hi == lo,
    };
    if exact {
        return Some(lower);
    }
    let upper = kth(hi)?;
    Some(match interpolation {
        Interpolation::Weighted => (1.0 - f) * lower + f * upper,
        Interpolation::NearerEnd if f <= 0.5 => lower + f * (upper - lower),
        Interpolation::NearerEnd => upper - (1.0 - f) * (upper - lower),
    })
}

/// Number of values of the ascending slice `sorted` strictly below `v` (its insertion point before equal
/// values).
pub fn rank_in(sorted: &[f64], v: f64) -> usize {
    if sorted.len() <= SCAN_LIMIT {
        sorted.iter().map(|x| usize::from(*x < v)).sum()
    } else {
        sorted.partition_point(|x| *x < v)
    }
}

/// `(rank_in(sorted, a), rank_in(sorted, b))`, in one pass over short slices.
pub fn ranks_in(sorted: &[f64], a: f64, b: f64) -> (usize, usize) {
    if sorted.len() <= SCAN_LIMIT {
        sorted.iter().fold((0, 0), |(i, j), x| (i + usize::from(*x < a), j + usize::from(*x < b)))
    } else {
        (sorted.partition_point(|x| *x < a), sorted.partition_point(|x| *x < b))
    }
}

/// Finite values kept sorted, with their running sum (the small-window half of [`OrderStats`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SortedVec {
    values: Vec<f64>,
    /// Running sum, recomputed exactly after every `len` updates (at least 16).
    sum: f64,
    updates: usize,
}

/// Sorted vectors up to this length are ranked by counting (a branch-free pass the compiler vectorises)
/// rather than by binary search, whose steps are a chain of dependent loads.
const SCAN_LIMIT: usize = 96;

impl SortedVec {
    fn rank(&self, v: f64) -> usize {
        rank_in(&self.values, v)
    }

    fn updated(&mut self) {
        self.updates += 1;
        if self.updates >= self.values.len().max(16) {
            self.sum = self.values.iter().sum();
            self.updates = 0;
        }
    }
}

/// An order-statistic multiset of finite values, choosing its representation by capacity: a
/// [`SortedVec`] up to [`SORTED_LIMIT`] values, an [`OrderTree`] beyond. Non-finite values are never
/// stored.
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

    /// The values in ascending order as one slice, when they are kept in the sorted vector (windows up to
    /// [`SORTED_LIMIT`]), for callers that read many order statistics at once.
    pub fn as_sorted_slice(&self) -> Option<&[f64]> {
        match self {
            OrderStats::Sorted(s) => Some(&s.values),
            OrderStats::Tree(_) => None,
        }
    }

    /// Removes one occurrence of `old` and inserts `new`, leaving the store exactly as `remove(old)` then
    /// `insert(new)` would (values, running sum and its recomputation schedule alike), with one shift of
    /// the values between the two positions instead of two shifts of everything after them. Returns
    /// whether `old` was present.
    pub fn replace(&mut self, old: f64, new: f64) -> bool {
        if let OrderStats::Sorted(s) = self
            && new.is_finite()
            // The removal would not recompute the sum (the insertion's own update still may).
            && s.updates + 1 < s.values.len().saturating_sub(1).max(16)
        {
            let (i, r) = ranks_in(&s.values, old, new);
            if s.values.get(i) != Some(&old) {
                return self.remove_insert(old, new);
            }
            // Where `insert` would put `new` once `old` is gone.
            let j = if r > i { r - 1 } else { r };
            if j < i {
                s.values.copy_within(j..i, j + 1);
            } else if j > i {
                s.values.copy_within(i + 1..=j, i);
            }
            s.values[j] = new;
            s.sum -= old;
            s.updates += 1;
            s.sum += new;
            s.updated();
            return true;
        }
        self.remove_insert(old, new)
    }

    fn remove_insert(&mut self, old: f64, new: f64) -> bool {
        let found = self.remove(old);
        self.insert(new);
        found
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

    /// The quantile `q` of the values (see [`quantile_by_rank`]); `None` when empty.
    pub fn quantile(&self, q: f64, interpolation: Interpolation) -> Option<f64> {
        quantile_by_rank(self.len(), q, interpolation, |k| self.kth(k))
    }

    /// The values in ascending order.
    pub fn sorted(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        (0..self.len()).map(|k| self.kth(k).unwrap_or(f64::NAN))
    }
}

/// The last values of a stream in arrival order, with their order statistics: [`push_bounded`]
/// drops the oldest value once the window is full. Only finite values are kept.
///
/// The window's bound is not stored (its owners keep it in their parameters): pass it to every
/// [`push_bounded`]. Serialized as the arrival-ordered values followed by the [`OrderStats`] store, the
/// layout of the windows it replaced; equality compares the values in arrival order.
///
/// [`push_bounded`]: RollingWindow::push_bounded
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "WindowParts")]
pub struct RollingWindow {
    arrival: VecDeque<f64>,
    order: OrderStats,
}

/// The serialized fields of a [`RollingWindow`], checked for agreement when decoded.
#[derive(Deserialize)]
struct WindowParts {
    arrival: VecDeque<f64>,
    order: OrderStats,
}

impl TryFrom<WindowParts> for RollingWindow {
    type Error = String;

    fn try_from(parts: WindowParts) -> Result<Self, String> {
        if parts.arrival.len() != parts.order.len() {
            return Err(format!(
                "a rolling window holds {} values in arrival order but {} in its order statistics",
                parts.arrival.len(),
                parts.order.len()
            ));
        }
        Ok(RollingWindow { arrival: parts.arrival, order: parts.order })
    }
}

impl PartialEq for RollingWindow {
    fn eq(&self, other: &Self) -> bool {
        self.arrival == other.arrival
    }
}

impl RollingWindow {
    /// An empty window that will hold up to `capacity` values (which picks the order-statistics store).
    pub fn with_capacity(capacity: usize) -> Self {
        RollingWindow {
            arrival: VecDeque::with_capacity(capacity.min(1 << 16)),
            order: OrderStats::with_capacity(capacity),
        }
    }

    /// A window of up to `capacity` values holding the last `capacity` finite ones of `values`.
    pub fn from_values(values: impl IntoIterator<Item = f64>, capacity: usize) -> Self {
        let mut w = RollingWindow::with_capacity(capacity);
        for v in values {
            w.push_bounded(v, capacity);
        }
        w
    }

    /// Number of values in the window.
    pub fn len(&self) -> usize {
        self.arrival.len()
    }

    /// True when the window is empty.
    pub fn is_empty(&self) -> bool {
        self.arrival.is_empty()
    }

    /// Adds `v` as the newest value, without a bound; returns false (and changes nothing) when `v` is not
    /// finite.
    pub fn push(&mut self, v: f64) -> bool {
        if !v.is_finite() {
            return false;
        }
        self.arrival.push_back(v);
        self.order.insert(v);
        true
    }

    /// Removes and returns the oldest value.
    pub fn pop_oldest(&mut self) -> Option<f64> {
        let old = self.arrival.pop_front()?;
        self.order.remove(old);
        Some(old)
    }

    /// Adds `v` as the newest value of a window of at most `capacity` (at least 1) values, first
    /// removing the oldest ones that would not fit; returns the value removed, if any. A value that is not
    /// finite is not added, and nothing is removed for it.
    pub fn push_bounded(&mut self, v: f64, capacity: usize) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        let mut removed = None;
        while self.arrival.len() > capacity.max(1) {
            removed = self.pop_oldest();
        }
        if self.arrival.len() == capacity.max(1)
            && let Some(old) = self.arrival.pop_front()
        {
            // The oldest out and `v` in, in one pass over the order statistics.
            self.arrival.push_back(v);
            self.order.replace(old, v);
            return Some(old);
        }
        self.push(v);
        removed
    }

    /// The values in arrival order (oldest first).
    pub fn values(&self) -> &VecDeque<f64> {
        &self.arrival
    }

    /// The order statistics of the values.
    pub fn order(&self) -> &OrderStats {
        &self.order
    }

    /// The `k`-th smallest value (0-based).
    pub fn kth(&self, k: usize) -> Option<f64> {
        self.order.kth(k)
    }

    /// The quantile `q` of the values (see [`quantile_by_rank`]); `None` when empty.
    pub fn quantile(&self, q: f64, interpolation: Interpolation) -> Option<f64> {
        self.order.quantile(q, interpolation)
    }

    /// The values in ascending order.
    pub fn sorted(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        self.order.sorted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(x: &mut u64) -> u64 {
        *x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *x >> 33
    }

    #[test]
    fn both_backends_answer_alike() {
        let mut small = OrderStats::with_capacity(64);
        let mut large = OrderStats::with_capacity(SORTED_LIMIT + 1);
        assert!(matches!(small, OrderStats::Sorted(_)) && matches!(large, OrderStats::Tree(_)));
        let mut window = VecDeque::new();
        let mut x = 99u64;
        for i in 0..2000 {
            let v = (lcg(&mut x) % 40) as f64 * 0.5 - 7.0;
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
            for q in [0.1, 0.5, 0.93] {
                for how in [Interpolation::Weighted, Interpolation::NearerEnd] {
                    assert_eq!(small.quantile(q, how), large.quantile(q, how));
                }
            }
            assert!(small.sorted().eq(large.sorted()));
        }
        assert!(!small.remove(1e9));
        small.insert(f64::NAN);
        assert_eq!(small.len(), 64);
    }

    #[test]
    fn replace_is_remove_then_insert_to_the_bit() {
        for capacity in [5, 16, 17, 40, 200] {
            let (mut one, mut two) = (OrderStats::with_capacity(capacity), OrderStats::with_capacity(capacity));
            let mut window = VecDeque::new();
            let mut x = 7u64;
            for i in 0..3000 {
                // Repeats, signed zeros and the odd non-finite value.
                let v = match lcg(&mut x) % 50 {
                    0 => -0.0,
                    1 if i % 3 == 0 => f64::NAN,
                    k => (k % 23) as f64 * 0.37 - 4.0,
                };
                if window.len() == capacity {
                    let old = window.pop_front().unwrap();
                    let found = one.remove(old);
                    one.insert(v);
                    assert_eq!(two.replace(old, v), found);
                    // A value that is not there: removal fails, the insertion happens.
                    if i % 97 == 0 {
                        let (a, b) = (one.remove(1e9), two.replace(1e9, 1.5));
                        one.insert(1.5);
                        assert_eq!(a, b);
                        let (_, _) = (one.remove(1.5), two.remove(1.5));
                    }
                } else {
                    one.insert(v);
                    two.insert(v);
                }
                if v.is_finite() {
                    window.push_back(v);
                }
                assert_eq!(format!("{one:?}"), format!("{two:?}"), "capacity {capacity}, row {i}");
            }
        }
        // The rolling window, which replaces through it, keeps its arrival order.
        let mut w = RollingWindow::with_capacity(3);
        for v in [4.0, 1.0, 3.0, 2.0, 5.0] {
            w.push_bounded(v, 3);
        }
        assert_eq!(w.values(), &VecDeque::from([3.0, 2.0, 5.0]));
        assert!(w.sorted().eq([2.0, 3.0, 5.0]));
    }

    /// The quantile of a sorted slice, written out directly in both forms.
    fn reference(sorted: &[f64], q: f64, how: Interpolation) -> f64 {
        let rank = (sorted.len() - 1) as f64 * q;
        let (lo, f) = (rank.floor() as usize, rank - rank.floor());
        let hi = (lo + 1).min(sorted.len() - 1);
        let (a, b) = (sorted[lo], sorted[hi]);
        match how {
            Interpolation::Weighted if hi == lo => a,
            Interpolation::Weighted => (1.0 - f) * a + f * b,
            Interpolation::NearerEnd if f == 0.0 => a,
            Interpolation::NearerEnd if f <= 0.5 => a + f * (b - a),
            Interpolation::NearerEnd => b - (1.0 - f) * (b - a),
        }
    }

    #[test]
    fn rolling_quantiles_equal_a_sort_of_the_window_bit_for_bit() {
        for capacity in [1, 7, 50, SORTED_LIMIT + 3] {
            let mut w = RollingWindow::with_capacity(capacity);
            let mut plain: VecDeque<f64> = VecDeque::new();
            let mut x = 7u64;
            for i in 0..(3 * capacity).max(300) {
                let v = match i % 11 {
                    3 => f64::NAN,
                    7 => f64::INFINITY,
                    _ => (lcg(&mut x) % 1000) as f64 / 7.0 - 60.0,
                };
                let removed = w.push_bounded(v, capacity);
                if v.is_finite() {
                    let expect = if plain.len() == capacity { plain.pop_front() } else { None };
                    plain.push_back(v);
                    assert_eq!(removed, expect);
                } else {
                    assert_eq!(removed, None);
                }
                assert_eq!(w.values(), &plain);
                if i % 13 == 0 {
                    let mut sorted: Vec<f64> = plain.iter().copied().collect();
                    sorted.sort_by(f64::total_cmp);
                    assert!(w.sorted().eq(sorted.iter().copied()));
                    for q in [0.0, 0.25, 0.5, 0.7, 0.95, 1.0] {
                        for how in [Interpolation::Weighted, Interpolation::NearerEnd] {
                            let got = w.quantile(q, how).unwrap();
                            assert_eq!(got.to_bits(), reference(&sorted, q, how).to_bits(), "{capacity} {q} {how:?}");
                        }
                    }
                }
            }
        }
        // A lone value is returned as it is, keeping the sign of a -0.0.
        let zero = RollingWindow::from_values([-0.0], 1);
        for how in [Interpolation::Weighted, Interpolation::NearerEnd] {
            assert_eq!(zero.quantile(0.5, how).unwrap().to_bits(), (-0.0f64).to_bits());
        }
        let empty = RollingWindow::default();
        assert_eq!(empty.quantile(0.5, Interpolation::Weighted), None);
        assert_eq!(quantile_by_rank(3, 0.5, Interpolation::Weighted, |_| None), None);
    }

    #[test]
    fn the_two_interpolations_differ_in_the_last_bits_only() {
        // Equal in exact arithmetic, so always within a few ulps; but not always the same double, which
        // is why each model keeps the form of its reference library.
        let mut x = 3u64;
        let mut differ = 0;
        for _ in 0..2000 {
            let a = (lcg(&mut x) % 10_000) as f64 / 977.0;
            let b = a + (lcg(&mut x) % 10_000) as f64 / 331.0;
            let q = (lcg(&mut x) % 1000) as f64 / 1000.0;
            let kth = |k: usize| [a, b].get(k).copied();
            let w = quantile_by_rank(2, q, Interpolation::Weighted, kth).unwrap();
            let n = quantile_by_rank(2, q, Interpolation::NearerEnd, kth).unwrap();
            assert!((w - n).abs() <= 4.0 * f64::EPSILON * b.abs(), "{a} {b} {q}: {w} vs {n}");
            differ += usize::from(w.to_bits() != n.to_bits());
        }
        assert!(differ > 0);
    }

    #[test]
    fn a_window_decodes_only_when_its_two_halves_agree() {
        let w = RollingWindow::from_values([3.0, 1.0, 2.0], 2);
        assert_eq!(w.values(), &VecDeque::from([1.0, 2.0]));
        let bytes = postcard::to_stdvec(&w).unwrap();
        let back: RollingWindow = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, w);
        assert_eq!(back.order(), w.order());
        // The layout: the arrival deque, then the store (variant 0, sorted values, sum, update count).
        let parts = (w.values().clone(), w.order().clone());
        assert_eq!(bytes, postcard::to_stdvec(&parts).unwrap());
        assert_eq!(&bytes[..17], [2, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0x40]);
        let lopsided = (VecDeque::from([1.0, 2.0, 5.0]), w.order().clone());
        assert!(postcard::from_bytes::<RollingWindow>(&postcard::to_stdvec(&lopsided).unwrap()).is_err());
    }
}
