//! Error types of the core: data-model errors and hyperparameter validation errors.

use thiserror::Error;

/// Errors building the data model (schemas, batches, rows).
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum CoreError {
    /// Two columns share a name.
    #[error("duplicate column name '{0}'")]
    DuplicateColumn(String),
    /// A batch's value buffer does not match rows x columns.
    #[error("batch shape mismatch: {values} values for {rows} rows of {columns} columns")]
    BatchShape {
        /// Number of values given.
        values: usize,
        /// Number of rows claimed.
        rows: usize,
        /// Number of columns in the schema.
        columns: usize,
    },
    /// Labels or row ids do not match the number of rows.
    #[error("batch has {rows} rows but {what} has {len} entries")]
    BatchColumn {
        /// Which side buffer is wrong ("labels" or "row ids").
        what: &'static str,
        /// Rows in the batch.
        rows: usize,
        /// Entries in the side buffer.
        len: usize,
    },
}

/// A hyperparameter that failed validation when a model was built.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ParamError {
    /// A parameter value is out of its allowed range.
    #[error("invalid value for parameter '{param}': {reason}")]
    Invalid {
        /// Parameter name, as in the reference library.
        param: &'static str,
        /// What is wrong, including the value.
        reason: String,
    },
    /// A required parameter was not given.
    #[error("parameter '{0}' is required")]
    Missing(&'static str),
    /// A parameter names a feature that is not in the schema.
    #[error("parameter '{param}' names feature '{feature}', which is not in the input (columns: {available})")]
    UnknownFeature {
        /// Parameter name.
        param: &'static str,
        /// The feature asked for.
        feature: String,
        /// The schema's columns, comma separated.
        available: String,
    },
    /// The input's shape does not fit the model (for example a univariate model given two columns).
    #[error("input does not fit the model: {0}")]
    Schema(String),
}

impl ParamError {
    /// Shorthand for [`ParamError::Invalid`].
    pub fn invalid(param: &'static str, reason: impl Into<String>) -> Self {
        ParamError::Invalid { param, reason: reason.into() }
    }
}
