//! Evaluation of scores against labels: ROC-AUC and PR-AUC (average precision), with ties handled the
//! way scikit-learn does, so figures compare one to one with the Python libraries' reports.
//!
//! Labels: non-zero = anomaly (positive), 0 = normal; NaN labels are left out. Both functions return
//! `None` when one of the classes is absent (the metric is undefined).

use std::cmp::Ordering;

/// Pairs (score, positive?) with usable labels, sorted by descending score.
fn ranked(scores: &[f64], labels: &[f64]) -> Vec<(f64, bool)> {
    let mut v: Vec<(f64, bool)> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| !l.is_nan())
        .map(|(s, l)| (if s.is_nan() { f64::NEG_INFINITY } else { *s }, *l != 0.0))
        .collect();
    v.sort_unstable_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(Ordering::Equal));
    v
}

/// Area under the ROC curve: the probability that a random anomaly scores above a random normal row,
/// counting ties as one half.
pub fn roc_auc(scores: &[f64], labels: &[f64]) -> Option<f64> {
    let v = ranked(scores, labels);
    let pos = v.iter().filter(|(_, p)| *p).count() as f64;
    let neg = v.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    // Walk groups of tied scores from the top; each positive beats every negative below its group and
    // ties half of the negatives in it.
    let (mut wins, mut neg_above) = (0.0, 0.0);
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        let (mut p, mut n) = (0.0, 0.0);
        while j < v.len() && v[j].0 == v[i].0 {
            if v[j].1 {
                p += 1.0
            } else {
                n += 1.0
            }
            j += 1;
        }
        wins += p * (neg - neg_above - n) + 0.5 * p * n;
        neg_above += n;
        i = j;
    }
    Some(wins / (pos * neg))
}

/// Average precision (the area under the precision-recall curve as scikit-learn's
/// `average_precision_score` computes it): `sum_k (R_k - R_{k-1}) * P_k` over distinct score thresholds.
pub fn pr_auc(scores: &[f64], labels: &[f64]) -> Option<f64> {
    let v = ranked(scores, labels);
    let pos = v.iter().filter(|(_, p)| *p).count() as f64;
    if pos == 0.0 || pos == v.len() as f64 {
        return None;
    }
    let (mut tp, mut seen, mut ap, mut last_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            tp += f64::from(u8::from(v[j].1));
            seen += 1.0;
            j += 1;
        }
        let recall = tp / pos;
        ap += (recall - last_recall) * (tp / seen);
        last_recall = recall;
        i = j;
    }
    Some(ap)
}

/// The ROC and precision-recall curves of scores against labels, one point per distinct score from the
/// top (each group of tied scores is one step, as scikit-learn's `roc_curve` and
/// `precision_recall_curve` draw them). `None` when a class is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    /// (false positive rate, true positive rate), from (0, 0) to (1, 1).
    pub roc: Vec<(f64, f64)>,
    /// (recall, precision) at each threshold, from the highest score down.
    pub pr: Vec<(f64, f64)>,
    /// The share of positives among the labelled rows (the precision of a random ranking).
    pub prevalence: f64,
}

/// See [`Curves`].
pub fn curves(scores: &[f64], labels: &[f64]) -> Option<Curves> {
    let v = ranked(scores, labels);
    let pos = v.iter().filter(|(_, p)| *p).count() as f64;
    let neg = v.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let (mut roc, mut pr) = (vec![(0.0, 0.0)], Vec::new());
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            if v[j].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            j += 1;
        }
        roc.push((fp / neg, tp / pos));
        pr.push((tp / pos, tp / (tp + fp)));
        i = j;
    }
    Some(Curves { roc, pr, prevalence: pos / v.len() as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curves_hold_the_areas_the_metrics_report() {
        let y = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, f64::NAN];
        let s = [0.2, 0.5, 0.5, 0.9, 0.1, 0.3, 0.05, 7.0];
        let c = curves(&s, &y).unwrap();
        assert_eq!((c.roc[0], *c.roc.last().unwrap()), ((0.0, 0.0), (1.0, 1.0)));
        // The trapezoids under the ROC steps are the ROC-AUC; the recall steps times precision the AP.
        let roc_area: f64 = c.roc.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
        assert!((roc_area - roc_auc(&s, &y).unwrap()).abs() < 1e-15);
        let mut last = 0.0;
        let ap: f64 = c.pr.iter().map(|&(r, p)| std::mem::replace(&mut last, r).mul_add(-p, r * p)).sum();
        assert!((ap - pr_auc(&s, &y).unwrap()).abs() < 1e-15);
        assert!((c.prevalence - 3.0 / 7.0).abs() < 1e-15);
        assert_eq!(curves(&[0.1, 0.2], &[0.0, 0.0]), None);
    }

    #[test]
    fn perfect_inverse_and_tied_rankings() {
        let labels = [0.0, 0.0, 1.0, 1.0];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(roc_auc(&[0.5; 4], &labels), Some(0.5));
        assert_eq!(pr_auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        // All tied: precision at the single threshold is the prevalence.
        assert_eq!(pr_auc(&[0.5; 4], &labels), Some(0.5));
    }

    #[test]
    fn matches_scikit_learn_on_a_small_case() {
        // sklearn: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.75,
        //          average_precision_score(...) = 0.8333333333333333
        let (y, s) = ([0.0, 0.0, 1.0, 1.0], [0.1, 0.4, 0.35, 0.8]);
        assert!((roc_auc(&s, &y).unwrap() - 0.75).abs() < 1e-15);
        assert!((pr_auc(&s, &y).unwrap() - 0.833_333_333_333_333_3).abs() < 1e-15);
        // A tie across classes: sklearn roc_auc_score([0,1,0,1],[0.2,0.5,0.5,0.9]) = 0.875,
        // average_precision_score = 0.8333333333333333.
        let (y, s) = ([0.0, 1.0, 0.0, 1.0], [0.2, 0.5, 0.5, 0.9]);
        assert!((roc_auc(&s, &y).unwrap() - 0.875).abs() < 1e-15);
        assert!((pr_auc(&s, &y).unwrap() - 0.833_333_333_333_333_3).abs() < 1e-15);
    }

    #[test]
    fn undefined_without_both_classes_and_ignores_nan_labels() {
        assert_eq!(roc_auc(&[0.1, 0.2], &[0.0, 0.0]), None);
        assert_eq!(pr_auc(&[0.1, 0.2], &[1.0, 1.0]), None);
        assert_eq!(roc_auc(&[0.1, 0.9, 0.5], &[0.0, 1.0, f64::NAN]), Some(1.0));
    }
}

/// Prequential (test-then-train) evaluation while streaming: ROC-AUC and PR-AUC over consecutive,
/// non-overlapping windows of `window` labelled rows, as a run goes (aberrant's windowed evaluator).
/// Each window is evaluated once, when it fills: O(w log w) per window, O(log w) per row amortised.
///
/// ```
/// use onad_pipeline::metrics::Prequential;
/// let mut p = Prequential::new(4).unwrap();
/// for (s, l) in [(0.1, 0.0), (0.9, 1.0), (0.2, 0.0), (0.3, 0.0), (0.8, 0.0), (0.7, 1.0), (0.1, 0.0), (0.2, 0.0)] {
///     p.update(s, l);
/// }
/// assert_eq!(p.windows().len(), 2);
/// assert_eq!(p.windows()[0].roc_auc, Some(1.0));
/// assert_eq!(p.windows()[1].roc_auc, Some(2.0 / 3.0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Prequential {
    window: usize,
    scores: Vec<f64>,
    labels: Vec<f64>,
    rows: u64,
    windows: Vec<WindowMetrics>,
}

/// The metrics of one evaluation window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct WindowMetrics {
    /// Labelled rows evaluated so far, this window included.
    pub end: u64,
    /// ROC-AUC of the window (None when it holds one class only).
    pub roc_auc: Option<f64>,
    /// PR-AUC of the window (None when it holds one class only).
    pub pr_auc: Option<f64>,
}

impl Prequential {
    /// Windows of `window` labelled rows (at least 2).
    pub fn new(window: usize) -> Result<Self, String> {
        if window < 2 {
            return Err(format!("the evaluation window must hold at least 2 rows, got {window}"));
        }
        Ok(Prequential {
            window,
            scores: Vec::with_capacity(window),
            labels: Vec::with_capacity(window),
            rows: 0,
            windows: Vec::new(),
        })
    }

    /// Adds one scored row; rows with a NaN label are ignored.
    pub fn update(&mut self, score: f64, label: f64) {
        if label.is_nan() {
            return;
        }
        self.scores.push(score);
        self.labels.push(label);
        self.rows += 1;
        if self.scores.len() == self.window {
            self.windows.push(WindowMetrics {
                end: self.rows,
                roc_auc: roc_auc(&self.scores, &self.labels),
                pr_auc: pr_auc(&self.scores, &self.labels),
            });
            self.scores.clear();
            self.labels.clear();
        }
    }

    /// The completed windows, in order.
    pub fn windows(&self) -> &[WindowMetrics] {
        &self.windows
    }

    /// Mean of the defined per-window ROC-AUC values.
    pub fn mean_roc_auc(&self) -> Option<f64> {
        mean(self.windows.iter().filter_map(|w| w.roc_auc))
    }

    /// Mean of the defined per-window PR-AUC values.
    pub fn mean_pr_auc(&self) -> Option<f64> {
        mean(self.windows.iter().filter_map(|w| w.pr_auc))
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}
