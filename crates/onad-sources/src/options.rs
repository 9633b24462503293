//! Options shared by every connector: which column holds the label, what to do with bad rows, how many
//! rows go in a batch; and the rules every connector applies when it assembles rows (column roles, empty
//! rows, batches).

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

/// What a column that does not hold numbers (names, ids as text, timestamps, nested values) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonNumericColumns {
    /// It stays a feature, and every row with a non-numeric value in it is a bad row (`non_numeric`),
    /// skipped and counted or failing, as `bad_rows` says. A column type that can never be a number
    /// (a Parquet string column) is an error when opening.
    #[default]
    Reject,
    /// It is left out, decided once when opening: a CSV or SQLite column whose first non-empty value
    /// is not a number, a JSON key whose first value is a string, array or object, a Parquet column of
    /// a non-numeric type. [`Source::schema`](onad_core::Source::schema) shows what was kept.
    Exclude,
}

/// How a JSON source (JSON Lines, Redis, Kafka) treats objects whose keys differ from its columns.
/// Tabular sources (CSV, Parquet, SQLite) have one header for every row, so this does not apply to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyPolicy {
    /// The columns are the first object's keys (after the column options), and every object must have
    /// exactly those: a key that is missing is a bad row (`missing_column`), a key that is not a column is
    /// a bad row (`extra_column`).
    #[default]
    Fixed,
    /// For streams whose features come and go (xStream's feature-evolving streams): the columns are the
    /// first object's keys plus every name in `columns` and `ids` it lacks, so `columns` may list every
    /// feature the stream will ever carry. A column an object lacks is a missing value (NaN) in its row;
    /// a key that is not a column is read past and counted ([`onad_core::Source::ignored_keys`]), not a
    /// bad row. A row with every feature missing is still a bad row (`empty_row`).
    Evolving,
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
    /// Read only these columns as features (in input order; the label is read besides). `None`: all.
    /// A Parquet source reads only these columns from the file. A name the input lacks is an error.
    pub columns: Option<Vec<String>>,
    /// Leave these input columns out (ids, timestamps, free text). A name the input lacks is an error.
    pub exclude: Vec<String>,
    /// What a non-numeric column does.
    pub non_numeric: NonNumericColumns,
    /// Columns read as ids (account names, IP addresses, integers of any size): each value becomes
    /// [`onad_core::id_value`] of its text, so text and large integers are features that models compare
    /// for equality (graph detectors, categorical aspects) without rounding through `f64`. An id column is
    /// a feature in its input position even when `columns` does not list it; it cannot be the label or
    /// excluded. A name the input lacks is an error.
    pub ids: Vec<String>,
    /// How JSON sources treat keys that differ from their columns.
    pub keys: KeyPolicy,
    /// A feature column that must not decrease (an edge stream's time, a sequence number): a row whose
    /// value there is below an earlier row's is a bad row `time_went_back` under `bad_rows`. A name that
    /// is not a feature column is an error when opening. Checked by [`onad_core::NonDecreasing`] over the
    /// connector (`open`, `open_as`, `open_reader`, `open_stdin`, `open_url`); after a seek (a resume) it
    /// starts again from the first row read.
    pub ordered_by: Option<String>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            label: LabelColumn::Last,
            bad_rows: BadRowPolicy::Skip,
            batch_size: 4096,
            columns: None,
            exclude: Vec::new(),
            non_numeric: NonNumericColumns::Reject,
            ids: Vec::new(),
            keys: KeyPolicy::Fixed,
            ordered_by: None,
        }
    }
}

/// What an input column is, once the options are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "csv", feature = "parquet", feature = "jsonl", feature = "sqlite")), allow(dead_code))]
pub(crate) enum Role {
    Feature,
    /// A feature whose value is the id hash of its text ([`onad_core::id_value`]).
    Id,
    Label,
    Skip,
}

/// The features (indices among the columns with a feature role) that are ids.
#[cfg_attr(not(any(feature = "csv", feature = "sqlite")), allow(dead_code))]
pub(crate) fn id_features(roles: &[Role]) -> Vec<usize> {
    roles.iter().filter(|r| r.is_feature()).enumerate().filter(|(_, r)| **r == Role::Id).map(|(i, _)| i).collect()
}

impl Role {
    /// Whether the column is one of the row's features (a number or an id).
    pub(crate) fn is_feature(self) -> bool {
        matches!(self, Role::Feature | Role::Id)
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

impl SourceOptions {
    /// The role of every input column: the label, the id columns, the columns left out (`exclude`, outside
    /// `columns`, or non-numeric under [`NonNumericColumns::Exclude`], judged by `numeric(i)`), and the
    /// numeric features. `Err`
    /// says what is wrong (an unknown name, no feature left).
    #[cfg_attr(not(any(feature = "csv", feature = "parquet", feature = "jsonl", feature = "sqlite")), allow(dead_code))]
    pub(crate) fn roles(&self, names: &[String], numeric: impl Fn(usize) -> bool) -> Result<Vec<Role>, String> {
        let label = self.label_index(names)?;
        let known = |n: &String, what: &str| {
            if names.contains(n) {
                Ok(())
            } else {
                Err(format!("{what} names column '{n}', which the input lacks (columns: {})", names.join(", ")))
            }
        };
        for n in &self.exclude {
            known(n, "exclude")?;
            if label.is_some_and(|l| names[l] == *n) {
                return Err(format!("column '{n}' is the label and cannot be excluded"));
            }
        }
        if let Some(cols) = &self.columns {
            for n in cols {
                known(n, "columns")?;
            }
        }
        for n in &self.ids {
            known(n, "ids")?;
            if label.is_some_and(|l| names[l] == *n) {
                return Err(format!("column '{n}' is the label and cannot be an id column"));
            }
            if self.exclude.contains(n) {
                return Err(format!("column '{n}' is both excluded and an id column: give it one of the two"));
            }
        }
        let roles: Vec<Role> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if Some(i) == label {
                    Role::Label
                } else if self.ids.contains(n) {
                    Role::Id
                } else if self.exclude.contains(n)
                    || self.columns.as_ref().is_some_and(|c| !c.contains(n))
                    || (self.non_numeric == NonNumericColumns::Exclude && !numeric(i))
                {
                    Role::Skip
                } else {
                    Role::Feature
                }
            })
            .collect();
        if !roles.iter().any(|r| r.is_feature()) {
            return Err(format!("no feature column is left (columns: {})", names.join(", ")));
        }
        Ok(roles)
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

/// The bad-row reason of a row whose features are all missing.
#[cfg_attr(
    not(any(
        feature = "csv",
        feature = "parquet",
        feature = "jsonl",
        feature = "sqlite",
        feature = "redis",
        feature = "kafka"
    )),
    allow(dead_code)
)]
pub(crate) const EMPTY_ROW: &str = "empty_row";

/// The one rule for empty rows, shared by every connector: a row whose features (what is left after the
/// column options; the label does not count) are all missing (empty fields, nulls, NaN) is not a data
/// point, so it is a bad row [`EMPTY_ROW`] under the bad-row policy instead of a row of NaN to score (the
/// streaming guide rejects an empty data point). Returns the detail for the [`onad_core::BadRecord`]
/// when `features` is such a row.
#[cfg_attr(
    not(any(
        feature = "csv",
        feature = "parquet",
        feature = "jsonl",
        feature = "sqlite",
        feature = "redis",
        feature = "kafka"
    )),
    allow(dead_code)
)]
pub(crate) fn empty_row(features: &[f64]) -> Option<String> {
    if !features.iter().all(|v| v.is_nan()) {
        return None;
    }
    Some(match features.len() {
        1 => "the row is empty: its one feature is missing (empty, null or NaN), so there is nothing to score".into(),
        n => {
            format!("the row is empty: all {n} features are missing (empty, null or NaN), so there is nothing to score")
        }
    })
}

#[cfg_attr(
    not(any(feature = "csv", feature = "jsonl", feature = "sqlite", feature = "redis", feature = "kafka")),
    allow(dead_code)
)]
/// A bad row kept under [`onad_core::BadRowPolicy::Missing`]: `width` NaN features, its label (when the
/// input has labels: the value read before the row went bad, NaN if none was) and its row id, appended
/// where the row would have gone. Every connector calls it, so a missing row looks the same from any input.
pub(crate) fn push_missing_row(
    values: &mut Vec<f64>,
    width: usize,
    labels: Option<&mut Vec<f64>>,
    row_ids: &mut Vec<u64>,
    row: u64,
    label: f64,
) {
    values.resize(values.len() + width, f64::NAN);
    if let Some(l) = labels {
        l.push(label);
    }
    row_ids.push(row);
}

/// `source` with the [`SourceOptions::ordered_by`] rule over it, when one is set; `name` names the input
/// in messages. Every opening function ends here, so the rule means the same for every connector.
pub(crate) fn with_order_rule(
    source: Box<dyn onad_core::Source + Send>,
    ordered_by: Option<&str>,
    policy: onad_core::BadRowPolicy,
    name: &str,
) -> Result<Box<dyn onad_core::Source + Send>, SourceError> {
    let Some(column) = ordered_by else { return Ok(source) };
    let schema = source.schema().clone();
    // A broker with nothing to read yet has no columns: no row to check either.
    if schema.is_empty() {
        return Ok(source);
    }
    let rule = onad_core::NonDecreasing::new(&schema, column).ok_or_else(|| SourceError::Schema {
        source_name: name.to_owned(),
        message: format!(
            "ordered_by names '{column}', which is not a feature column (features: {})",
            schema.names().join(", ")
        ),
    })?;
    Ok(Box::new(onad_core::Checked::new(source, rule, policy, name)))
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
