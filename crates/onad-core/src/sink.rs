//! The [`Sink`] trait every output implements (files, standard output, brokers), the scored rows it
//! receives ([`Scored`]), and the resume point it reports for checkpoints ([`SinkPosition`]).
//!
//! A sink's life: it is built without touching its target, [`Sink::open`]ed once by the run (fresh, or at
//! the position a checkpoint recorded), handed every scored batch in input order, [`Sink::sync`]ed before
//! each checkpoint (everything written so far made durable; the returned position goes into the
//! checkpoint) and [`Sink::finish`]ed at the end. Connectors that write live in `onad-sources` and
//! `onad-pipeline`; the run loop sees only this trait.

use std::error::Error as StdError;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::batch::Batch;

/// One scored batch: the input rows, and per row its score, the threshold in force and the flag.
#[derive(Debug, Clone, Copy)]
pub struct Scored<'a> {
    /// The input rows (values, labels, input row ids).
    pub batch: &'a Batch,
    /// One score per row.
    pub scores: &'a [f64],
    /// One anomaly flag per row.
    pub flags: &'a [bool],
    /// The threshold each row was compared with.
    pub thresholds: &'a [f64],
    /// The entity key of each row, in per-key runs.
    pub keys: Option<&'a [f64]>,
    /// The model's explanation of each row's score, row-major, [`SinkLayout::explanations`] values per
    /// row, when the run explains its scores ([`crate::Detector::explain_one`]).
    pub explanations: Option<&'a [f64]>,
}

impl<'a> Scored<'a> {
    /// Input row ids.
    pub fn row_ids(&self) -> &'a [u64] {
        self.batch.row_ids()
    }

    /// Anomaly flags.
    pub fn flags(&self) -> &'a [bool] {
        self.flags
    }

    /// Labels, when the input has them.
    pub fn labels(&self) -> Option<&'a [f64]> {
        self.batch.labels()
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True when the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Row `i` with everything a sink writes about it.
    pub fn row(&self, i: usize) -> ScoredRow {
        ScoredRow {
            id: self.batch.row_ids()[i],
            score: self.scores[i],
            threshold: self.thresholds[i],
            flag: self.flags[i],
            label: self.batch.labels().map(|l| l[i]),
            key: self.keys.map(|k| k[i]),
        }
    }

    /// The explanation of row `i`'s score (empty when the run gives none); `width` is the number of
    /// [`SinkLayout::explanations`].
    pub fn explanation(&self, i: usize, width: usize) -> &'a [f64] {
        match self.explanations {
            Some(e) if width > 0 => &e[i * width..(i + 1) * width],
            _ => &[],
        }
    }

    /// Where row `i` came from, when the input is a partitioned log (Kafka).
    pub fn origin(&self, i: usize) -> Option<crate::batch::Origin<'a>> {
        self.batch.origin(i)
    }

    /// Every row, in input order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = ScoredRow> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }
}

/// One scored row, as sinks write it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredRow {
    /// The input row id (stable across resumes: a consumer can drop repeats by it).
    pub id: u64,
    /// The anomaly score.
    pub score: f64,
    /// The threshold the score was compared with (NaN when there is none).
    pub threshold: f64,
    /// True when the row is flagged.
    pub flag: bool,
    /// The label, when the input has one.
    pub label: Option<f64>,
    /// The entity key, in per-key runs.
    pub key: Option<f64>,
}

impl ScoredRow {
    /// Appends the row as one JSON object, the form every JSON output shares (JSON Lines files, Kafka
    /// messages): `{"row":12,"score":0.41,"threshold":0.9,"anomaly":false}`, then `"label"` and `"key"`
    /// when present and `"origin":{"topic":..,"partition":..,"offset":..}` for rows read from Kafka.
    /// Numbers are in Rust's shortest round-trip form (`3.0`, `1e-7`); a number that is not finite (no
    /// threshold, one still warming up) is `null`.
    pub fn write_json(&self, out: &mut String, origin: Option<crate::batch::Origin<'_>>) {
        self.write_json_explained(out, origin, &[], &[]);
    }

    /// [`write_json`](Self::write_json) with the model's explanation of the score as one more member,
    /// `"explain":{"match_start":118.0,"distance":2.4}` (names and values in step; no member when there
    /// are none).
    pub fn write_json_explained(
        &self,
        out: &mut String,
        origin: Option<crate::batch::Origin<'_>>,
        names: &[String],
        values: &[f64],
    ) {
        use std::fmt::Write as _;
        let _ = write!(out, "{{\"row\":{},\"score\":", self.id);
        json_number(out, self.score);
        out.push_str(",\"threshold\":");
        json_number(out, self.threshold);
        let _ = write!(out, ",\"anomaly\":{}", self.flag);
        if let Some(label) = self.label {
            out.push_str(",\"label\":");
            json_number(out, label);
        }
        if let Some(key) = self.key {
            out.push_str(",\"key\":");
            json_number(out, key);
        }
        if let Some(o) = origin {
            out.push_str(",\"origin\":{\"topic\":");
            json_string(out, o.topic);
            let _ = write!(out, ",\"partition\":{},\"offset\":{}}}", o.partition, o.offset);
        }
        if !names.is_empty() {
            out.push_str(",\"explain\":{");
            for (i, (name, &v)) in names.iter().zip(values).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, name);
                out.push(':');
                json_number(out, v);
            }
            out.push('}');
        }
        out.push('}');
    }
}

fn json_number(out: &mut String, v: f64) {
    use std::fmt::Write as _;
    if v.is_finite() {
        let _ = write!(out, "{v:?}");
    } else {
        out.push_str("null");
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
fn json_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// What every sink of a run learns when it is opened: the shape of the rows it will receive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkLayout {
    /// Rows carry labels.
    pub labels: bool,
    /// The name of the key column, in per-key runs.
    pub key: Option<String>,
    /// The names of the model's explanation values, written after the other columns, when the run
    /// explains its scores (empty otherwise).
    pub explanations: Vec<String>,
}

/// Where a sink stands, recorded in checkpoints so a resumed run can continue its output exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum SinkPosition {
    /// Nothing to restore: output that cannot be taken back (a terminal, a pipe) or a sink that keeps
    /// nothing. A resumed run goes on writing after whatever is there.
    #[default]
    Unrecorded,
    /// A byte stream (a file, or standard output redirected to a file): its length when the checkpoint
    /// was written. A resume cuts it back to this length.
    Bytes(u64),
    /// A sink of rows or messages: rows (or messages) written when the checkpoint was written, and the
    /// number of finished parts (Parquet row groups, files). A resume drops what came after.
    Rows {
        /// Rows written.
        rows: u64,
        /// Finished parts.
        parts: u64,
    },
}

impl fmt::Display for SinkPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkPosition::Unrecorded => f.write_str("no recorded position"),
            SinkPosition::Bytes(n) => write!(f, "{n} bytes"),
            SinkPosition::Rows { rows, parts } => write!(f, "{rows} rows in {parts} parts"),
        }
    }
}

/// An output of scored rows.
pub trait Sink: fmt::Debug + Send {
    /// Opens the target: creates it (`resume: None`) or continues it from a checkpoint's position. Called
    /// once, before the first [`Sink::write`].
    fn open(&mut self, layout: &SinkLayout, resume: Option<&SinkPosition>) -> Result<(), SinkError>;

    /// Writes one scored batch.
    fn write(&mut self, scored: &Scored<'_>) -> Result<(), SinkError>;

    /// Makes everything written so far durable (flush, fsync) and returns the position a resumed run
    /// should continue from. Called before each checkpoint is written.
    fn sync(&mut self) -> Result<SinkPosition, SinkError>;

    /// Flushes and closes at the end of the run: `completed` when the source ended (the output is final),
    /// not when the run stopped early (a signal, a limit) and may be resumed, so a sink that assembles its
    /// output at the end (Parquet) keeps what a resume needs.
    fn finish(&mut self, completed: bool) -> Result<(), SinkError> {
        let _ = completed;
        self.sync().map(|_| ())
    }

    /// The target as the user named it, for messages.
    fn describe(&self) -> String;
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn open(&mut self, layout: &SinkLayout, resume: Option<&SinkPosition>) -> Result<(), SinkError> {
        (**self).open(layout, resume)
    }
    fn write(&mut self, scored: &Scored<'_>) -> Result<(), SinkError> {
        (**self).write(scored)
    }
    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        (**self).sync()
    }
    fn finish(&mut self, completed: bool) -> Result<(), SinkError> {
        (**self).finish(completed)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Why a sink failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Writing to the target failed.
    #[error("{target}: {error}")]
    Io {
        /// The target, as the user named it.
        target: String,
        /// The error.
        error: std::io::Error,
    },
    /// The target cannot continue from the checkpoint's position (changed, replaced, unseekable).
    #[error("{target}: cannot resume the output: {message}")]
    Resume {
        /// The target, as the user named it.
        target: String,
        /// What the checkpoint expects and what was found.
        message: String,
    },
    /// An error from a connector's client library.
    #[error("{connector} sink {target}: {error}")]
    External {
        /// The connector (`parquet`, `kafka`, `redis`, ...).
        connector: &'static str,
        /// The target, as the user named it.
        target: String,
        /// The client library's error.
        error: Box<dyn StdError + Send + Sync>,
    },
}

impl SinkError {
    /// An IO error on `target`.
    pub fn io(target: impl Into<String>, error: std::io::Error) -> Self {
        SinkError::Io { target: target.into(), error }
    }
}
