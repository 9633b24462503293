//! The [`Source`] trait every connector implements, its resumable [`Position`], and the shared policy
//! for bad rows ([`BadRowPolicy`], [`SkipCounts`]).

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::batch::Batch;
use crate::schema::SchemaRef;

/// A stream of [`Batch`]es with a fixed schema and a position that a checkpoint can store and a later run
/// can seek back to. Connectors live in `onad-sources`; the pipeline only sees this trait.
pub trait Source: Iterator<Item = Result<Batch, SourceError>> {
    /// The feature columns of every batch.
    fn schema(&self) -> &SchemaRef;

    /// True when batches carry labels.
    fn has_labels(&self) -> bool;

    /// The position just after the last row yielded; seeking there resumes with the next row.
    fn position(&self) -> Position;

    /// Bad rows so far, by reason: dropped under [`BadRowPolicy::Skip`], kept as missing rows under
    /// [`BadRowPolicy::Missing`].
    fn skipped(&self) -> &SkipCounts;

    /// Values read past because their key is not one of the source's columns, under a policy that
    /// tolerates such keys (JSON sources read with evolving keys); they are in no row and no
    /// [`SkipCounts`], and the run reports their number. The default: none.
    fn ignored_keys(&self) -> u64 {
        0
    }

    /// The features (indices into [`Source::schema`]) that hold ids ([`crate::id_value`] of a column's
    /// text) rather than numbers; a checkpoint records them, so a resume reads every column the same way.
    /// The default: none.
    fn id_features(&self) -> Vec<usize> {
        Vec::new()
    }

    /// How much of the input has been read, in `[0, 1]`, when its size is known (a file's bytes, a
    /// Parquet file's rows); `None` for streams of unknown length (standard input, Kafka, Redis). For
    /// progress bars and estimates of the time left, nothing else.
    fn fraction_done(&self) -> Option<f64> {
        None
    }

    /// Moves to a position previously returned by [`Source::position`].
    fn seek(&mut self, position: &Position) -> Result<(), SourceError> {
        Err(SourceError::Unsupported(format!("this source cannot seek to {position}")))
    }

    /// Acknowledges every row yielded so far to the system the rows come from (a broker's consumer
    /// group), so that the next reader of that group starts after them. A run calls it when it ends,
    /// also when it stops early (after its final checkpoint); broker sources otherwise acknowledge a batch
    /// only when the next one is asked for. Files have nothing to acknowledge: the default does nothing.
    fn commit(&mut self) -> Result<(), SourceError> {
        Ok(())
    }

    /// True when asking for the next batch acknowledges the previous one to the broker (Kafka, Redis
    /// consumer groups). A caller that keeps batches in flight (per-key runs score on worker threads) must
    /// then finish every batch it holds before it asks for the next, or a crash could lose rows the
    /// broker was told were processed.
    fn acknowledges_on_next(&self) -> bool {
        false
    }
}

/// Where a source stands, so that a restarted run continues from there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum Position {
    /// Nothing read yet.
    #[default]
    Start,
    /// A file-like source: the input row id of the next row to read (header excluded, bad rows included).
    Row(u64),
    /// A partitioned log (Kafka): the next offset to read per (topic, partition), and the number of
    /// messages delivered so far (bad ones included), so row ids go on where they stopped.
    Offsets {
        /// (topic, partition) -> the offset of the next message to deliver.
        next: BTreeMap<(String, i32), i64>,
        /// Messages delivered (the row id of the next one).
        delivered: u64,
    },
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Start => f.write_str("the start"),
            Position::Row(r) => write!(f, "row {r}"),
            Position::Offsets { next, delivered } => {
                write!(f, "message {delivered} (offsets")?;
                for ((topic, partition), offset) in next {
                    write!(f, " {topic}/{partition}@{offset}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// What a source does with a row it cannot read as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRowPolicy {
    /// Stop with a [`SourceError::BadRecord`] naming the source, row and column.
    Fail,
    /// Drop the row and count it under its reason in [`SkipCounts`].
    #[default]
    Skip,
    /// Keep the row's place as a missing row (every feature NaN, the label NaN, its row id kept) and
    /// count it under its reason in [`SkipCounts`]. For series read at a fixed cadence, where dropping a
    /// row would shift every later row's place in time; models read NaN as missing.
    Missing,
}

/// One unreadable row: where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// The source, as the user named it (a path, a URL).
    pub source: String,
    /// The input row id (0-based, header excluded) or the offset.
    pub row: u64,
    /// The offending column, when one can be named.
    pub column: Option<String>,
    /// A short, stable reason key (`non_numeric`, `field_count`, ...), the key of [`SkipCounts`].
    pub reason: &'static str,
    /// Details for a human: the bad value, the expected count.
    pub detail: String,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: row {}", self.source, self.row)?;
        if let Some(c) = &self.column {
            write!(f, ", column '{c}'")?;
        }
        write!(f, ": {} ({})", self.detail, self.reason)
    }
}

/// Counts of skipped rows per reason. Deterministic order (sorted by reason).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipCounts(BTreeMap<String, u64>);

impl SkipCounts {
    /// Counts one skipped row under `reason`.
    pub fn add(&mut self, reason: &str) {
        *self.0.entry(reason.to_owned()).or_insert(0) += 1;
    }

    /// Skipped rows in total.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Skipped rows for one reason.
    pub fn get(&self, reason: &str) -> u64 {
        self.0.get(reason).copied().unwrap_or(0)
    }

    /// `(reason, count)` pairs, sorted by reason.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Adds another set of counts into this one.
    pub fn merge(&mut self, other: &SkipCounts) {
        for (k, v) in other.iter() {
            *self.0.entry(k.to_owned()).or_insert(0) += v;
        }
    }
}

/// Errors from sources. Connector-specific errors are boxed so that no client library's types appear in
/// public signatures.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source could not be opened or read.
    #[error("{source_name}: {error}")]
    Io {
        /// The source, as the user named it.
        source_name: String,
        /// The underlying error (shown in the message, so not also reported as a `source()`).
        error: std::io::Error,
    },
    /// A row could not be read and the policy is [`BadRowPolicy::Fail`].
    #[error("{0}")]
    BadRecord(BadRecord),
    /// The source's columns do not fit what was asked (a missing label column, a column type that cannot
    /// become a number).
    #[error("{source_name}: {message}")]
    Schema {
        /// The source, as the user named it.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// An error from a connector's client library.
    #[error("{connector} source {source_name}: {error}")]
    External {
        /// The connector (`parquet`, `kafka`, ...).
        connector: &'static str,
        /// The source, as the user named it.
        source_name: String,
        /// The client library's error (shown in the message, so not also reported as a `source()`).
        error: Box<dyn StdError + Send + Sync>,
    },
    /// The connector for this source was not compiled into this build.
    #[error("the {connector} connector is not compiled in; rebuild with the cargo feature '{feature}'")]
    NotCompiled {
        /// The connector asked for.
        connector: String,
        /// The cargo feature that enables it.
        feature: String,
    },
    /// The operation is not supported by this source.
    #[error("{0}")]
    Unsupported(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_record_message_names_source_row_and_column() {
        let r = BadRecord {
            source: "data.csv".into(),
            row: 41,
            column: Some("temp".into()),
            reason: "non_numeric",
            detail: "cannot read 'abc' as a number".into(),
        };
        assert_eq!(r.to_string(), "data.csv: row 41, column 'temp': cannot read 'abc' as a number (non_numeric)");
    }

    #[test]
    fn skip_counts_add_and_merge() {
        let mut a = SkipCounts::default();
        a.add("non_numeric");
        a.add("non_numeric");
        a.add("field_count");
        let mut b = SkipCounts::default();
        b.add("field_count");
        b.merge(&a);
        assert_eq!(b.total(), 4);
        assert_eq!(b.get("field_count"), 2);
        assert_eq!(b.iter().map(|(k, _)| k).collect::<Vec<_>>(), vec!["field_count", "non_numeric"]);
    }

    #[test]
    fn position_round_trips_through_postcard() {
        let mut offsets = BTreeMap::new();
        offsets.insert(("events".to_string(), 3), 1200_i64);
        for p in [Position::Start, Position::Row(7), Position::Offsets { next: offsets, delivered: 12 }] {
            let bytes = postcard::to_stdvec(&p).unwrap();
            assert_eq!(postcard::from_bytes::<Position>(&bytes).unwrap(), p);
        }
    }
}
