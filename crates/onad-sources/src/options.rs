//! Options shared by every connector: which column holds the label, what to do with bad rows, how many
//! rows go in a batch.

use onad_core::BadRowPolicy;

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
