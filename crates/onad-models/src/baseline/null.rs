//! NullModel: scores every row 0.0. The floor every detector must beat, and a pipeline smoke test.

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::registry::Describe;

/// Hyperparameters of [`NullModel`] (it has none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullModelParams {}

/// A detector that learns nothing and scores every row 0.0 (Python onad `NullModel`).
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::NullModelParams;
/// let model = NullModelParams::default().build(&Schema::shared(["a"]).unwrap()).unwrap();
/// assert_eq!(model.score_one(&[f64::NAN]), 0.0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NullModel {}

impl DetectorParams for NullModelParams {
    type Model = NullModel;
    fn build(&self, _schema: &SchemaRef) -> Result<NullModel, ParamError> {
        Ok(NullModel {})
    }
}

impl Detector for NullModel {
    fn learn_one(&mut self, _x: &[f64]) {}

    fn score_one(&self, _x: &[f64]) -> f64 {
        0.0
    }

    fn score_many(&self, batch: &onad_core::Batch, out: &mut Vec<f64>) {
        out.resize(out.len() + batch.num_rows(), 0.0);
    }
}

impl Describe for NullModelParams {
    const SUMMARY: &'static str = "baseline: scores every row 0.0";
    const PARAMS: &'static [ParamDoc] = &[];
    fn example() -> Self {
        NullModelParams {}
    }
}
