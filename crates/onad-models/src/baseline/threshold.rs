//! ThresholdModel: flags rows whose raw feature values leave fixed bounds (a static rule as a detector).

use std::collections::BTreeMap;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::registry::Describe;

/// A bound on feature values: one number for every feature, or a number per named feature.
///
/// In JSON/TOML it is written as the Python library takes it, `100.0` or `{"cpu": 90.0}`; binary formats
/// (checkpoints) store it tagged, since they cannot guess the variant.
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdBound {
    /// Applies to every feature.
    All(f64),
    /// Applies only to the named features.
    PerFeature(BTreeMap<String, f64>),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum BoundUntagged {
    All(f64),
    PerFeature(BTreeMap<String, f64>),
}

#[derive(Serialize, Deserialize)]
enum BoundTagged {
    All(f64),
    PerFeature(BTreeMap<String, f64>),
}

impl Serialize for ThresholdBound {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self, s.is_human_readable()) {
            (ThresholdBound::All(v), true) => BoundUntagged::All(*v).serialize(s),
            (ThresholdBound::PerFeature(m), true) => BoundUntagged::PerFeature(m.clone()).serialize(s),
            (ThresholdBound::All(v), false) => BoundTagged::All(*v).serialize(s),
            (ThresholdBound::PerFeature(m), false) => BoundTagged::PerFeature(m.clone()).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ThresholdBound {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(if d.is_human_readable() {
            match BoundUntagged::deserialize(d)? {
                BoundUntagged::All(v) => ThresholdBound::All(v),
                BoundUntagged::PerFeature(m) => ThresholdBound::PerFeature(m),
            }
        } else {
            match BoundTagged::deserialize(d)? {
                BoundTagged::All(v) => ThresholdBound::All(v),
                BoundTagged::PerFeature(m) => ThresholdBound::PerFeature(m),
            }
        })
    }
}

/// Hyperparameters of [`ThresholdModel`]; at least one of `ceiling` and `floor` must be given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThresholdModelParams {
    /// Upper bound: a value strictly above it flags the row.
    pub ceiling: Option<ThresholdBound>,
    /// Lower bound: a value strictly below it flags the row.
    pub floor: Option<ThresholdBound>,
}

/// Scores 1.0 when any feature is strictly above its ceiling or strictly below its floor, else 0.0
/// (Python onad `ThresholdModel`). Learning does nothing.
///
/// Deviation from onad 0.3.0: a per-feature bound that names a feature absent from the input is a build
/// error (onad ignores it silently, so a typo disables the rule). NaN never violates a bound; +-inf does.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::{ThresholdBound, ThresholdModelParams};
/// let params = ThresholdModelParams { ceiling: Some(ThresholdBound::All(100.0)), floor: None };
/// let model = params.build(&Schema::shared(["cpu", "mem"]).unwrap()).unwrap();
/// assert_eq!(model.score_one(&[50.0, 101.0]), 1.0);
/// assert_eq!(model.score_one(&[50.0, 100.0]), 0.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdModel {
    /// Per-feature ceilings (+inf where unbounded).
    ceilings: Vec<f64>,
    /// Per-feature floors (-inf where unbounded).
    floors: Vec<f64>,
}

fn resolve(
    param: &'static str,
    bound: &Option<ThresholdBound>,
    schema: &SchemaRef,
    unbounded: f64,
) -> Result<Vec<f64>, ParamError> {
    let mut out = vec![unbounded; schema.len()];
    match bound {
        None => {}
        Some(ThresholdBound::All(v)) => {
            if v.is_nan() {
                return Err(ParamError::invalid(param, "NaN is not a bound"));
            }
            out.fill(*v);
        }
        Some(ThresholdBound::PerFeature(map)) => {
            for (name, v) in map {
                if v.is_nan() {
                    return Err(ParamError::invalid(param, format!("NaN is not a bound (feature '{name}')")));
                }
                out[schema.resolve(param, name)?] = *v;
            }
        }
    }
    Ok(out)
}

impl DetectorParams for ThresholdModelParams {
    type Model = ThresholdModel;
    fn build(&self, schema: &SchemaRef) -> Result<ThresholdModel, ParamError> {
        if self.ceiling.is_none() && self.floor.is_none() {
            return Err(ParamError::invalid("ceiling", "at least one of 'ceiling' or 'floor' must be given"));
        }
        Ok(ThresholdModel {
            ceilings: resolve("ceiling", &self.ceiling, schema, f64::INFINITY)?,
            floors: resolve("floor", &self.floor, schema, f64::NEG_INFINITY)?,
        })
    }
}

impl Detector for ThresholdModel {
    fn learn_one(&mut self, _x: &[f64]) {}

    fn score_one(&self, x: &[f64]) -> f64 {
        let out = x.iter().zip(self.ceilings.iter().zip(&self.floors)).any(|(v, (hi, lo))| v > hi || v < lo);
        if out { 1.0 } else { 0.0 }
    }
}

impl Describe for ThresholdModelParams {
    const SUMMARY: &'static str = "fixed bounds: 1.0 when a feature leaves [floor, ceiling], else 0.0";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "ceiling",
            ty: "float or {feature: float}",
            required: false,
            help: "values strictly above it flag the row",
        },
        ParamDoc {
            name: "floor",
            ty: "float or {feature: float}",
            required: false,
            help: "values strictly below it flag the row",
        },
    ];
    fn example() -> Self {
        ThresholdModelParams { ceiling: Some(ThresholdBound::All(100.0)), floor: Some(ThresholdBound::All(-50.0)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    #[test]
    fn per_feature_bounds_apply_only_to_named_features() {
        let schema = Schema::shared(["a", "b"]).unwrap();
        let params = ThresholdModelParams {
            ceiling: Some(ThresholdBound::PerFeature([("a".to_string(), 1.0)].into())),
            floor: Some(ThresholdBound::PerFeature([("b".to_string(), 0.0)].into())),
        };
        let m = params.build(&schema).unwrap();
        assert_eq!(m.score_one(&[1.0, 0.0]), 0.0);
        assert_eq!(m.score_one(&[1.5, 0.0]), 1.0);
        assert_eq!(m.score_one(&[0.0, -0.1]), 1.0);
        assert_eq!(m.score_one(&[-1e9, 1e9]), 0.0);
        assert_eq!(m.score_one(&[f64::NAN, f64::NAN]), 0.0);
        assert_eq!(m.score_one(&[f64::INFINITY, 0.0]), 1.0);
    }

    #[test]
    fn rejects_missing_bounds_and_unknown_features() {
        let schema = Schema::shared(["a"]).unwrap();
        let err = ThresholdModelParams::default().build(&schema).unwrap_err();
        assert!(err.to_string().contains("at least one"), "{err}");
        let params = ThresholdModelParams {
            ceiling: Some(ThresholdBound::PerFeature([("z".to_string(), 1.0)].into())),
            floor: None,
        };
        let err = params.build(&schema).unwrap_err().to_string();
        assert!(err.contains("'z'") && err.contains("ceiling"), "{err}");
    }
}
