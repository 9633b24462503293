//! The engine the discord detectors share: one channel of a series, its subsequences of length `m`, their
//! statistics, and the sliding dot products of the newest subsequence with the earlier ones.
//!
//! Indices are absolute: value `i` is the `i`-th value learned (from 0), subsequence `j` holds values
//! `j..j + m`. When the next value `x` (index `n`, not learned yet) arrives, the query is the subsequence
//! `q = n + 1 - m` ending at `x`. The engine keeps, for the last learned query `q - 1`, its dot product
//! with every start in `[q - 1 - reach, q - 2 - gap]`; the dot products of `q` follow along each lag in
//! O(1) (`QT(q, j) = QT(q - 1, j - 1) - x[q - 1] x[j - 1] + x[n] x[j + m - 1]`, the STOMP / STAMPI
//! recurrence), and the two starts the recurrence cannot reach (the newest one, and start 0 while the
//! series is shorter than the reach) are computed directly in O(m). Rounding along a lag is bounded by
//! recomputing one lag directly per learned value, in rotation, so no recurrence chain is longer than the
//! number of lags kept.
//!
//! Values are stored shifted by the first finite value learned (distances do not change under a shift,
//! and a large offset would cost digits in the dot products). A value that is not finite (NaN, an
//! infinity) is stored as 0 so the recurrence stays exact for the finite values; every subsequence that
//! holds such a value is marked invalid: it is never matched, and as a query it gets no score.

use onad_core::ParamError;
use serde::{Deserialize, Serialize};

/// Validates the required `subsequence_length` (at least 2).
pub(crate) fn subsequence_length(value: Option<usize>) -> Result<usize, ParamError> {
    match value {
        None => Err(ParamError::Missing("subsequence_length")),
        Some(m) if m < 2 => Err(ParamError::invalid("subsequence_length", format!("must be at least 2, got {m}"))),
        Some(m) => Ok(m),
    }
}

/// Statistics of one subsequence (over the shifted values).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub(crate) struct Stats {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation (0 exactly when all values are equal).
    pub std: f64,
    /// Sum of squares.
    pub energy: f64,
    /// All values finite.
    pub valid: bool,
    /// All values equal.
    pub constant: bool,
}

/// One channel: the values ring, per-start statistics and the dot products of the last query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Subsequences {
    m: usize,
    /// Lags kept by the recurrence: starts `q - reach ..= q - gap - 1` of query `q`.
    reach: usize,
    gap: usize,
    /// Ring length, a power of two (values, statistics and dot products are all indexed by absolute index
    /// mod `cap`, a mask rather than a division in the inner loops).
    cap: usize,
    /// The shift (first finite value learned), once one has arrived.
    offset: Option<f64>,
    values: Vec<f64>,
    stats: Vec<Stats>,
    dots: Vec<f64>,
    /// Values learned.
    n: usize,
    /// Consecutive finite values ending at the newest learned one.
    run: usize,
}

/// The dot products of the last learned query: which starts they cover.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    lo: usize,
    hi: usize,
}

impl Subsequences {
    /// A channel for subsequences of length `m >= 2`, keeping the dot products of lags `gap + 1 ..= reach`
    /// and values back to `history` starts before the query (`history >= reach`).
    pub fn new(m: usize, reach: usize, gap: usize, history: usize) -> Self {
        debug_assert!(m >= 2 && reach > gap && history >= reach);
        let cap = (history + m + 1).next_power_of_two();
        Subsequences {
            m,
            reach,
            gap,
            cap,
            offset: None,
            values: vec![0.0; cap],
            stats: vec![Stats::default(); cap],
            dots: vec![0.0; cap],
            n: 0,
            run: 0,
        }
    }

    /// Values learned so far.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Subsequence length.
    pub fn m(&self) -> usize {
        self.m
    }

    /// The value as stored: shifted, 0 for a non-finite value.
    #[inline]
    fn stored(&self, v: f64) -> f64 {
        if v.is_finite() { v - self.offset.unwrap_or(v) } else { 0.0 }
    }

    #[inline]
    fn at(&self, i: usize) -> f64 {
        self.values[i & (self.cap - 1)]
    }

    /// Statistics of the learned subsequence `j`.
    #[inline]
    pub fn stats(&self, j: usize) -> &Stats {
        &self.stats[j & (self.cap - 1)]
    }

    /// The dot products kept for the last learned query, if any.
    fn span(&self) -> Option<Span> {
        let n = self.n;
        if n < self.m {
            return None;
        }
        let q = n - self.m; // last learned query
        let hi = q.checked_sub(self.gap + 1)?;
        Some(Span { lo: q.saturating_sub(self.reach), hi })
    }

    /// The query ending at a candidate next value `x`: its start (None before `m - 1` values) and stats.
    pub fn query(&self, x: f64) -> Option<(usize, Stats)> {
        let q = (self.n + 1).checked_sub(self.m)?;
        let xs = self.stored(x);
        let valid = x.is_finite() && self.run >= self.m - 1;
        Some((q, self.summarise(|k| if k + 1 == self.m { xs } else { self.at(q + k) }, valid)))
    }

    /// Statistics of `m` values given by position (two passes, so cancellation does not cost digits).
    fn summarise(&self, value: impl Fn(usize) -> f64, valid: bool) -> Stats {
        let m = self.m;
        let first = value(0);
        let (mut sum, mut constant) = (0.0, true);
        for k in 0..m {
            let v = value(k);
            sum += v;
            constant &= v == first;
        }
        let mean = sum / m as f64;
        let (mut dev, mut energy) = (0.0, 0.0);
        for k in 0..m {
            let v = value(k);
            dev += (v - mean) * (v - mean);
            energy += v * v;
        }
        let std = if constant { 0.0 } else { (dev / m as f64).sqrt() };
        Stats { mean, std, energy, valid, constant }
    }

    /// Direct dot product of the query `q` ending at the candidate `xs` (stored form) with learned start `j`.
    fn direct(&self, q: usize, xs: f64, j: usize) -> f64 {
        let m = self.m;
        let mut acc = 0.0;
        for k in 0..m - 1 {
            acc += self.at(q + k) * self.at(j + k);
        }
        acc + xs * self.at(j + m - 1)
    }

    /// The dot product of the query `q` ending at the candidate `xs` with start `j`: O(1) along a kept
    /// lag, O(m) otherwise. The same expression serves scoring and learning, so both give the same bits.
    #[inline]
    fn dot(&self, span: Option<Span>, q: usize, xs: f64, j: usize) -> f64 {
        match span {
            Some(s) if j > s.lo && j <= s.hi + 1 => {
                self.dots[(j - 1) & (self.cap - 1)] - self.at(q - 1) * self.at(j - 1) + xs * self.at(j + self.m - 1)
            }
            _ => self.direct(q, xs, j),
        }
    }

    /// A scorer for the candidate next value `x` (None before `m - 1` values are learned).
    pub fn scorer(&self, x: f64) -> Option<Scorer<'_>> {
        let (q, stats) = self.query(x)?;
        Some(Scorer { series: self, dots: Dots::Previous(self.span()), q, xs: self.stored(x), query: stats })
    }

    /// Learns the next value: [`stage`](Self::stage) then [`commit`](Self::commit).
    pub fn push(&mut self, x: f64) {
        self.stage(x);
        self.commit(x);
    }

    /// First half of learning `x`: the dot products of the query ending at `x` along every kept lag,
    /// written over the previous query's (the values and statistics are not touched yet). Returns the
    /// starts they cover; [`staged_scorer`](Self::staged_scorer) reads them, then [`commit`](Self::commit)
    /// must follow with the same `x`.
    pub fn stage(&mut self, x: f64) -> Option<(usize, usize)> {
        if self.offset.is_none() && x.is_finite() {
            self.offset = Some(x);
        }
        let xs = self.stored(x);
        let q = (self.n + 1).checked_sub(self.m)?;
        let hi = q.checked_sub(self.gap + 1)?;
        let lo = q.saturating_sub(self.reach);
        let span = self.span();
        // Descending, so each old entry is read before its slot is overwritten.
        for j in (lo..=hi).rev() {
            let d = self.dot(span, q, xs, j);
            self.dots[j & (self.cap - 1)] = d;
        }
        Some((lo, hi))
    }

    /// A scorer for `x` after [`stage`](Self::stage)`(x)`: the same values as [`scorer`](Self::scorer)
    /// before staging, to the bit, without recomputing the dot products.
    pub fn staged_scorer(&self, x: f64, staged: Option<(usize, usize)>) -> Option<Scorer<'_>> {
        let (q, stats) = self.query(x)?;
        let dots = match staged {
            Some((lo, hi)) => Dots::Staged(Span { lo, hi }),
            None => Dots::Previous(None),
        };
        Some(Scorer { series: self, dots, q, xs: self.stored(x), query: stats })
    }

    /// Second half of learning `x`: the value, the new start's statistics, one kept lag refreshed.
    pub fn commit(&mut self, x: f64) {
        let xs = self.stored(x);
        let new_query = self.query(x);
        let slot = self.n & (self.cap - 1);
        self.values[slot] = xs;
        self.run = if x.is_finite() { self.run + 1 } else { 0 };
        if let Some((q, stats)) = new_query {
            self.stats[q & (self.cap - 1)] = stats;
        }
        self.n += 1;
        // Refresh one kept lag directly (now that the value is in the ring), in rotation.
        if let Some(span) = self.span() {
            let q = self.n - self.m;
            let j = span.lo + self.n % (span.hi - span.lo + 1);
            let mut acc = 0.0;
            for k in 0..self.m {
                acc += self.at(q + k) * self.at(j + k);
            }
            self.dots[j & (self.cap - 1)] = acc;
        }
    }

    /// Direct distance between the learned subsequence `j` and the query of a scorer.
    fn direct_distance(&self, sc: &Scorer<'_>, j: usize, normalize: bool) -> f64 {
        let m = self.m;
        let sj = self.stats(j);
        let value = |k: usize| if k + 1 == m { sc.xs } else { self.at(sc.q + k) };
        let mut acc = 0.0;
        if normalize {
            if sj.constant || sc.query.constant {
                return if sj.constant && sc.query.constant { 0.0 } else { (m as f64).sqrt() };
            }
            for k in 0..m {
                let a = (value(k) - sc.query.mean) / sc.query.std;
                let b = (self.at(j + k) - sj.mean) / sj.std;
                acc += (a - b) * (a - b);
            }
        } else {
            for k in 0..m {
                let d = value(k) - self.at(j + k);
                acc += d * d;
            }
        }
        acc.sqrt()
    }
}

/// Where a scorer's dot products come from.
#[derive(Debug, Clone, Copy)]
enum Dots {
    /// The recurrence from the previous query's, kept over this span.
    Previous(Option<Span>),
    /// Already computed for this query over this span (the staged half of learning).
    Staged(Span),
}

/// The query ending at one candidate value, ready to be compared with learned starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scorer<'a> {
    series: &'a Subsequences,
    dots: Dots,
    /// The query's start.
    pub q: usize,
    xs: f64,
    /// The query's statistics.
    pub query: Stats,
}

impl Scorer<'_> {
    #[inline]
    fn qt(&self, j: usize) -> f64 {
        let s = self.series;
        match self.dots {
            Dots::Previous(span) => s.dot(span, self.q, self.xs, j),
            Dots::Staged(span) if j >= span.lo && j <= span.hi => s.dots[j & (s.cap - 1)],
            Dots::Staged(_) => s.direct(self.q, self.xs, j),
        }
    }

    /// Squared distance to start `j` from the dot product (the screening value); None when `j` holds a
    /// non-finite value.
    #[inline]
    pub fn squared(&self, j: usize, normalize: bool) -> Option<f64> {
        let s = self.series;
        let sj = s.stats(j);
        if !sj.valid {
            return None;
        }
        let m = s.m as f64;
        if normalize {
            if sj.constant || self.query.constant {
                return Some(if sj.constant && self.query.constant { 0.0 } else { m });
            }
            let qt = self.qt(j);
            let rho = (qt - m * self.query.mean * sj.mean) / (m * self.query.std * sj.std);
            Some((2.0 * m * (1.0 - rho)).max(0.0))
        } else {
            let qt = self.qt(j);
            Some((self.query.energy + sj.energy - 2.0 * qt).max(0.0))
        }
    }

    /// The distance to start `j` computed directly from the values (the confirmed value).
    pub fn distance(&self, j: usize, normalize: bool) -> f64 {
        self.series.direct_distance(self, j, normalize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(xs: &[f64], a: usize, b: usize, m: usize) -> f64 {
        let z = |s: &[f64]| {
            let mean = s.iter().sum::<f64>() / m as f64;
            let std = (s.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m as f64).sqrt();
            s.iter().map(|v| (v - mean) / std).collect::<Vec<_>>()
        };
        let (p, q) = (z(&xs[a..a + m]), z(&xs[b..b + m]));
        p.iter().zip(&q).map(|(u, v)| (u - v) * (u - v)).sum::<f64>().sqrt()
    }

    #[test]
    fn recurrence_matches_direct_distances_over_a_long_stream() {
        let (m, reach, gap) = (7, 40, 2);
        let mut s = Subsequences::new(m, reach, gap, reach);
        let xs: Vec<f64> = (0..3000).map(|i| 1e4 + (i as f64 * 0.37).sin() + 0.01 * ((i * i) % 17) as f64).collect();
        for (i, &x) in xs.iter().enumerate() {
            if let Some(sc) = s.scorer(x) {
                let q = sc.q;
                if let Some(hi) = q.checked_sub(gap + 1) {
                    let mut all = xs[..i].to_vec();
                    all.push(x);
                    for j in q.saturating_sub(reach)..=hi {
                        let fast = sc.squared(j, true).unwrap().sqrt();
                        let exact = naive(&all, q, j, m);
                        assert!((fast - exact).abs() < 1e-5, "i {i} j {j}: {fast} vs {exact}");
                        assert!((sc.distance(j, true) - exact).abs() < 1e-9);
                    }
                }
            }
            s.push(x);
        }
    }
}
