//! Options shared by every connector: which column holds the label, what to do with bad rows, how many
//! rows go in a batch.

use onad_core::{BadRowPolicy, Batch, Position, SchemaRef, SourceError};

/// Which input column holds the label (1 = anomaly, 0 = normal); it is never a feature.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LabelColumn {
    /// The last column (the convention of Python onad's `ParquetStreamer`).
    #[default]
    Last,
    /// The column with this name.
    Named(String),
    /// No label: every column is a feature.
    None,
}

/// Options every connector takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOptions {
    /// The label column.
    pub label: LabelColumn,
    /// What to do with a row that cannot be read as numbers.
    pub bad_rows: BadRowPolicy,
    /// Rows per batch.
    pub batch_size: usize,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions { label: LabelColumn::Last, bad_rows: BadRowPolicy::Skip, batch_size: 4096 }
    }
}

impl SourceOptions {
    /// Resolves the label column against the input's column names; `Err` names what is missing.
    #[cfg_attr(
        not(any(feature = "csv", feature = "parquet", feature = "jsonl", feature = "sqlite", feature = "redis")),
        allow(dead_code)
    )]
    pub(crate) fn label_index(&self, names: &[String]) -> Result<Option<usize>, String> {
        match &self.label {
            LabelColumn::None => Ok(None),
            LabelColumn::Last if names.is_empty() => Err("the input has no columns, so no label column".into()),
            LabelColumn::Last => Ok(Some(names.len() - 1)),
            LabelColumn::Named(n) => match names.iter().position(|c| c == n) {
                Some(i) => Ok(Some(i)),
                None => Err(format!("label column '{n}' not found (columns: {})", names.join(", "))),
            },
        }
    }
}

/// The row a file-like source is asked to seek to (`Start` is row 0); other positions are unsupported.
#[cfg_attr(not(any(feature = "csv", feature = "parquet", feature = "jsonl", feature = "sqlite")), allow(dead_code))]
pub(crate) fn seek_row(position: &Position, source_name: &str, what: &str) -> Result<u64, SourceError> {
    match position {
        Position::Start => Ok(0),
        Position::Row(r) => Ok(*r),
        other => Err(SourceError::Unsupported(format!("{source_name}: cannot seek {what} to {other}"))),
    }
}

/// Assembles a batch from the rows a connector has parsed; a shape error names the source.
#[cfg_attr(not(any(feature = "csv", feature = "jsonl", feature = "redis")), allow(dead_code))]
pub(crate) fn make_batch(
    source_name: &str,
    schema: &SchemaRef,
    values: Vec<f64>,
    labels: Option<Vec<f64>>,
    row_ids: Vec<u64>,
) -> Result<Batch, SourceError> {
    Batch::try_new(schema.clone(), values, labels, row_ids)
        .map_err(|e| SourceError::Schema { source_name: source_name.to_owned(), message: e.to_string() })
}
