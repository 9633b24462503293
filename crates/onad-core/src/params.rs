//! Hyperparameters: plain structs with the reference library's names and defaults, validated once when a
//! model is built against a schema.

use crate::detector::{Detector, Transformer};
use crate::error::ParamError;
use crate::schema::SchemaRef;

/// Hyperparameters that build a [`Detector`] for a given input schema.
pub trait DetectorParams {
    /// The model these parameters build.
    type Model: Detector;
    /// Validates the parameters against the schema and builds a fresh model.
    fn build(&self, schema: &SchemaRef) -> Result<Self::Model, ParamError>;
}

/// Hyperparameters that build a [`Transformer`] for a given input schema.
pub trait TransformerParams {
    /// The transformer these parameters build.
    type Model: Transformer;
    /// Validates the parameters against the schema and builds a fresh transformer.
    fn build(&self, schema: &SchemaRef) -> Result<Self::Model, ParamError>;
}

/// Documentation of one hyperparameter, for `onad models` and the docs table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamDoc {
    /// The parameter's name (the reference library's snake_case name).
    pub name: &'static str,
    /// Its type, in words (`"int > 0"`, `"float or {feature: float}"`).
    pub ty: &'static str,
    /// True when there is no default and the user must give a value.
    pub required: bool,
    /// One line saying what it does.
    pub help: &'static str,
}
