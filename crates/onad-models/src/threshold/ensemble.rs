//! Ensembles: several detectors on the same rows, each score calibrated against that member's own
//! recent scores (so that scales agree), combined into one (pysad's score ensemblers, over any tree).

use std::fmt;
use std::str::FromStr;

use onad_core::{Batch, Detector, ParamError, with_scratch};
use serde::{Deserialize, Serialize};

use super::calibrate::{Calibrated, Calibration};

/// How the members' calibrated scores become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Their mean.
    Mean,
    /// The largest: any member can raise an alarm.
    Max,
    /// Their median (the mean of the two middle ones for an even count): robust to one odd member.
    Median,
    /// The mean of each member's rank of its raw score among its recent raw scores (the conformal value
    /// `1 - p`, whatever the ensemble's calibration), so that only the order of a member's scores counts.
    /// Under conformal calibration it equals `mean`.
    MeanRank,
}

impl Combine {
    const FORMS: &'static str = "accepted: mean, max, median, mean_rank";

    /// Combines calibrated scores (reorders them).
    fn apply(self, scores: &mut [f64]) -> f64 {
        let n = scores.len();
        match self {
            Combine::Mean | Combine::MeanRank => scores.iter().sum::<f64>() / n as f64,
            Combine::Max => scores.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Combine::Median => {
                let (left, upper, _) = scores.select_nth_unstable_by(n / 2, f64::total_cmp);
                if n % 2 == 1 {
                    *upper
                } else {
                    let lower = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    lower / 2.0 + *upper / 2.0
                }
            }
        }
    }
}

impl FromStr for Combine {
    type Err = ParamError;

    fn from_str(text: &str) -> Result<Combine, ParamError> {
        match text.trim() {
            "mean" => Ok(Combine::Mean),
            "max" => Ok(Combine::Max),
            "median" => Ok(Combine::Median),
            "mean_rank" | "mean-rank" => Ok(Combine::MeanRank),
            other => Err(ParamError::invalid(
                "combine",
                format!("'{other}' is not a way to combine scores; {}", Combine::FORMS),
            )),
        }
    }
}

impl fmt::Display for Combine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Combine::Mean => "mean",
            Combine::Max => "max",
            Combine::Median => "median",
            Combine::MeanRank => "mean_rank",
        })
    }
}

/// The most members an ensemble takes.
pub const MAX_MEMBERS: usize = 64;

/// Several detectors on the same rows, each calibrated, combined (the `ensemble` node of model trees is
/// `Ensemble<AnyPipeline>`). Members learn every row independently, in order; a member that has a seed
/// keeps its own (give members of the same kind different seeds, or they are copies).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::{Calibration, Combine, Ensemble, MovingAverageParams};
/// let schema = Schema::shared(["v"]).unwrap();
/// let short = MovingAverageParams { window_size: Some(20), ..Default::default() }.build(&schema).unwrap();
/// let long = MovingAverageParams { window_size: Some(200), ..Default::default() }.build(&schema).unwrap();
/// let members: Vec<Box<dyn Detector>> = vec![Box::new(short), Box::new(long)];
/// let mut m = Ensemble::new(members, Combine::Mean, Calibration::Conformal { window_size: 500 }).unwrap();
/// for i in 0..1000 {
///     m.score_learn_one(&[(i % 10) as f64]);
/// }
/// assert!(m.score_one(&[100.0]) > 0.99); // both members: above all their recent scores
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble<D> {
    combine: Combine,
    members: Vec<Calibrated<D>>,
}

impl<D: Detector> Ensemble<D> {
    /// Calibrates every member with `calibration` (conformal ranks for [`Combine::MeanRank`], over the same
    /// window) and combines them with `combine`. One to [`MAX_MEMBERS`] members.
    pub fn new(members: Vec<D>, combine: Combine, calibration: Calibration) -> Result<Self, ParamError> {
        if members.is_empty() || members.len() > MAX_MEMBERS {
            return Err(ParamError::invalid(
                "members",
                format!("an ensemble needs 1 to {MAX_MEMBERS} members, got {}", members.len()),
            ));
        }
        let calibration = match combine {
            Combine::MeanRank => Calibration::Conformal { window_size: calibration.window_size() },
            _ => calibration,
        };
        let members = members.into_iter().map(|m| Calibrated::new(m, calibration)).collect::<Result<_, _>>()?;
        Ok(Ensemble { combine, members })
    }

    /// How scores are combined.
    pub fn combine(&self) -> Combine {
        self.combine
    }

    /// The calibrated members, in order.
    pub fn members(&self) -> &[Calibrated<D>] {
        &self.members
    }

    fn combined(&self, each: impl FnMut(&mut [f64])) -> f64 {
        let mut each = each;
        with_scratch(self.members.len(), |buf| {
            each(buf);
            self.combine.apply(buf)
        })
    }

    /// Runs a batch method of every member into its own column, then combines row by row.
    fn combine_columns(
        &mut self,
        rows: usize,
        out: &mut Vec<f64>,
        mut run: impl FnMut(&mut Calibrated<D>, &mut Vec<f64>),
    ) {
        let mut columns = vec![Vec::with_capacity(rows); self.members.len()];
        for (m, column) in self.members.iter_mut().zip(&mut columns) {
            run(m, column);
        }
        combine_rows(self.combine, &columns, rows, out);
    }
}

/// Appends, for each of `rows` rows, the combination of that row's value in every column.
fn combine_rows(combine: Combine, columns: &[Vec<f64>], rows: usize, out: &mut Vec<f64>) {
    out.reserve(rows);
    with_scratch(columns.len(), |buf| {
        for r in 0..rows {
            for (b, column) in buf.iter_mut().zip(columns) {
                *b = column[r];
            }
            out.push(combine.apply(buf));
        }
    });
}

impl<D: Detector> Detector for Ensemble<D> {
    fn learn_one(&mut self, x: &[f64]) {
        self.members.iter_mut().for_each(|m| m.learn_one(x));
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        self.combined(|buf| {
            for (b, m) in buf.iter_mut().zip(&self.members) {
                *b = m.score_one(x);
            }
        })
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        let combine = self.combine;
        let members = &mut self.members;
        with_scratch(members.len(), |buf| {
            for (b, m) in buf.iter_mut().zip(members.iter_mut()) {
                *b = m.score_learn_one(x);
            }
            combine.apply(buf)
        })
    }

    fn learn_score_one(&mut self, x: &[f64]) -> f64 {
        let combine = self.combine;
        let members = &mut self.members;
        with_scratch(members.len(), |buf| {
            for (b, m) in buf.iter_mut().zip(members.iter_mut()) {
                *b = m.learn_score_one(x);
            }
            combine.apply(buf)
        })
    }

    // Members are independent, so each runs its own batch method over the whole batch.
    fn learn_many(&mut self, batch: &Batch) {
        self.members.iter_mut().for_each(|m| m.learn_many(batch));
    }

    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        let rows = batch.num_rows();
        let mut columns = vec![Vec::with_capacity(rows); self.members.len()];
        for (m, column) in self.members.iter().zip(&mut columns) {
            m.score_many(batch, column);
        }
        combine_rows(self.combine, &columns, rows, out);
    }

    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        self.combine_columns(batch.num_rows(), out, |m, c| m.score_learn_many(batch, c));
    }

    fn learn_score_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        self.combine_columns(batch.num_rows(), out, |m, c| m.learn_score_many(batch, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations() {
        let mut v = [0.2, 0.9, 0.4, 0.1];
        assert_eq!(Combine::Max.apply(&mut v.clone()), 0.9);
        assert!((Combine::Mean.apply(&mut v.clone()) - 0.4).abs() < 1e-15);
        assert!((Combine::Median.apply(&mut v) - 0.3).abs() < 1e-15);
        assert_eq!(Combine::Median.apply(&mut [0.7, 0.1, 0.3]), 0.3);
        for text in ["mean", "max", "median", "mean_rank"] {
            assert_eq!(text.parse::<Combine>().unwrap().to_string(), text);
        }
        let e = "vote".parse::<Combine>().unwrap_err().to_string();
        assert!(e.contains("'vote'") && e.contains("mean_rank"), "{e}");
    }

    #[test]
    fn members_are_bounded() {
        let none: Vec<Box<dyn Detector>> = Vec::new();
        let e = Ensemble::new(none, Combine::Mean, Calibration::Conformal { window_size: 10 }).unwrap_err();
        assert!(e.to_string().contains("1 to 64 members"), "{e}");
    }
}
