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

#[cfg(test)]
mod tests {
    use super::*;

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
