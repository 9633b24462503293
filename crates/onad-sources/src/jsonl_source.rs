//! JSON Lines source: one JSON object per line, streamed into dense batches. Lines are read through a
//! bounded buffer, so a line longer than the cap is skipped without ever being held in memory whole.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use onad_core::{BadRecord, BadRowPolicy, Batch, Position, Schema, SchemaRef, SkipCounts, Source, SourceError};

use crate::json_row::{JsonRow, Problem, first_keys};
use crate::options::SourceOptions;

/// Options of [`JsonlSource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlOptions {
    /// Label column, bad-row policy, batch size.
    pub base: SourceOptions,
    /// Longest line read (in bytes, without the line ending); a longer line is a bad row `line_too_long`.
    pub max_line_bytes: usize,
}

impl Default for JsonlOptions {
    fn default() -> Self {
        JsonlOptions { base: SourceOptions::default(), max_line_bytes: 1 << 20 }
    }
}

/// Streams a JSON Lines (NDJSON) file as batches: one JSON object per line, blank lines ignored (they are
/// not rows). The columns are the keys of the first line that holds a JSON object, in the order they are
/// written there; every key but the label is a feature. Numbers are read as `f64`, `null` is NaN
/// (missing), `true` / `false` are 1 / 0.
///
/// A bad row is skipped and counted under its reason, or reported as an error naming the file, row and
/// column, as the [`BadRowPolicy`] says. Reasons: `invalid_json` (the line does not parse, or holds a
/// number beyond the range of `f64`), `not_object` (it parses, but not to an object), `non_numeric` (a
/// string, array or object value, including numbers written as strings), `missing_column`,
/// `extra_column` (a key the first object did not have), `duplicate_column` (a key given twice),
/// `invalid_utf8`, `line_too_long` (longer than [`JsonlOptions::max_line_bytes`]), and `empty_row` (every
/// feature is `null`). When a line has several problems, the first in key order is reported
/// (`missing_column` after the others, `empty_row` last).
///
/// Row ids count non-blank lines from 0, bad ones included. Bad lines before the first object are
/// counted like any other under [`BadRowPolicy::Skip`]; under [`BadRowPolicy::Fail`] the first of them
/// makes opening fail. A UTF-8 byte order mark at the start and CRLF line endings are accepted.
pub struct JsonlSource {
    name: String,
    reader: Box<dyn BufRead + Send>,
    options: JsonlOptions,
    /// The columns (the first object's keys) and the scratch space to read a line into them.
    row: JsonRow,
    schema: SchemaRef,
    /// Lines read while looking for the schema that `next` has not consumed yet.
    prelude: Option<Prelude>,
    /// The current line (without its ending); meaningful after `read_line` returned `Line::Text`.
    line: Vec<u8>,
    /// True until the first line has been read (where a byte order mark may be).
    at_start: bool,
    next_row: u64,
    skipped: SkipCounts,
    done: bool,
    /// Bytes consumed from the reader, and the file's size when opened from a file
    /// ([`Source::fraction_done`]).
    bytes_read: u64,
    total_bytes: Option<u64>,
}

/// The lines read by the constructor to find the first object: runs of bad rows and the object's row.
#[derive(Debug)]
struct Prelude {
    /// `(first row, last row, reason)` of consecutive bad rows, in row order.
    bad: Vec<(u64, u64, &'static str)>,
    /// The row of the first object.
    object_row: u64,
    /// Its line, to be parsed as a row once the schema is known.
    object_line: Vec<u8>,
}

impl fmt::Debug for JsonlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonlSource")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("label", &self.row.label())
            .field("next_row", &self.next_row)
            .finish_non_exhaustive()
    }
}

/// What `read_line` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// A line is in `JsonlSource::line` (blank lines included).
    Text,
    /// A line longer than the cap was read past and dropped.
    TooLong,
    /// The end of the input.
    End,
}

impl JsonlSource {
    /// Opens a JSON Lines file.
    pub fn open(path: impl AsRef<Path>, options: JsonlOptions) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = File::open(path).map_err(|error| SourceError::Io { source_name: name.clone(), error })?;
        let total = file.metadata().ok().map(|m| m.len()).filter(|n| *n > 0);
        let mut source = Self::from_reader(name, file, options)?;
        source.total_bytes = total;
        Ok(source)
    }

    /// Reads JSON Lines from any reader; `name` is used in messages. Reads ahead to the first line that
    /// holds a JSON object, which names the columns.
    pub fn from_reader(
        name: impl Into<String>,
        reader: impl Read + Send + 'static,
        options: JsonlOptions,
    ) -> Result<Self, SourceError> {
        let name = name.into();
        let mut source = JsonlSource {
            name,
            reader: Box::new(BufReader::with_capacity(1 << 16, reader)),
            options,
            row: JsonRow::default(),
            schema: Schema::numbered("unused", 0),
            prelude: None,
            line: Vec::new(),
            at_start: true,
            next_row: 0,
            skipped: SkipCounts::default(),
            done: false,
            bytes_read: 0,
            total_bytes: None,
        };
        let mut bad: Vec<(u64, u64, &'static str)> = Vec::new();
        let mut row = 0_u64;
        let keys = loop {
            let problem = match source.read_line()? {
                Line::End => {
                    return Err(SourceError::Schema {
                        source_name: source.name,
                        message: if row == 0 {
                            "no JSON object found (the file is empty)".into()
                        } else {
                            format!("no JSON object found in {row} non-blank lines")
                        },
                    });
                }
                Line::TooLong => source.too_long(),
                Line::Text if is_blank(&source.line) => continue,
                Line::Text => match first_keys(&source.line, "line") {
                    Ok(keys) => break keys,
                    Err(p) => p,
                },
            };
            if source.options.base.bad_rows == BadRowPolicy::Fail {
                return Err(SourceError::BadRecord(source.bad_record(row, problem)));
            }
            match bad.last_mut() {
                Some((_, last, reason)) if *reason == problem.reason && *last + 1 == row => *last = row,
                _ => bad.push((row, row, problem.reason)),
            }
            row += 1;
        };
        if keys.is_empty() {
            return Err(SourceError::Schema {
                source_name: source.name,
                message: format!("the first JSON object (row {row}) has no keys, so there are no columns"),
            });
        }
        (source.row, source.schema) = JsonRow::new(&source.name, keys, &source.options.base, "line")?;
        source.prelude = Some(Prelude { bad, object_row: row, object_line: std::mem::take(&mut source.line) });
        Ok(source)
    }

    /// Reads the next line into `self.line` (without `\n` or `\r\n`), holding at most
    /// `max_line_bytes + 4` bytes of it (room for a `\r` and a byte order mark): the rest of a longer
    /// line is read and dropped.
    fn read_line(&mut self) -> Result<Line, SourceError> {
        let cap = self.options.max_line_bytes.saturating_add(4);
        self.line.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.done = true;
                    return Err(SourceError::Io { source_name: self.name.clone(), error });
                }
            };
            if buf.is_empty() {
                if !any {
                    return Ok(Line::End);
                }
                break;
            }
            any = true;
            let (chunk, used, end) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            if !too_long {
                if self.line.len() + chunk.len() > cap {
                    too_long = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            self.reader.consume(used);
            self.bytes_read += used as u64;
            if end {
                break;
            }
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.at_start {
            self.at_start = false;
            if self.line.starts_with(b"\xEF\xBB\xBF") {
                self.line.drain(..3);
            }
        }
        if too_long || self.line.len() > self.options.max_line_bytes {
            self.line.clear();
            return Ok(Line::TooLong);
        }
        Ok(Line::Text)
    }

    fn too_long(&self) -> Problem {
        Problem::new(
            "line_too_long",
            None,
            format!("the line is longer than {} bytes (max_line_bytes)", self.options.max_line_bytes),
        )
    }

    fn bad_record(&self, row: u64, p: Problem) -> BadRecord {
        BadRecord { source: self.name.clone(), row, column: p.column, reason: p.reason, detail: p.detail }
    }

    /// Parses `self.line` as a row into `values` / `label`, or says why it is a bad row.
    fn parse_line(&mut self, values: &mut Vec<f64>, label: &mut f64) -> Result<(), Problem> {
        self.row.parse(&self.line, values, label)
    }

    /// Handles one bad row under the policy: counts it and says whether it stays as a missing row, or
    /// returns the error that stops the source.
    fn reject(&mut self, row: u64, problem: Problem) -> Result<bool, SourceError> {
        match self.options.base.bad_rows {
            BadRowPolicy::Skip | BadRowPolicy::Missing => {
                self.skipped.add(problem.reason);
                Ok(self.options.base.bad_rows == BadRowPolicy::Missing)
            }
            BadRowPolicy::Fail => {
                self.done = true;
                Err(SourceError::BadRecord(self.bad_record(row, problem)))
            }
        }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

impl Iterator for JsonlSource {
    type Item = Result<Batch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let cap = self.options.base.batch_size.max(1);
        let d = self.schema.len();
        let mut values = Vec::with_capacity(cap * d);
        let mut labels = self.row.label().map(|_| Vec::with_capacity(cap));
        let mut row_ids = Vec::with_capacity(cap);
        // The lines the constructor read: bad rows (from the current position on) and the first object.
        let mut first_object = None;
        if let Some(p) = self.prelude.take() {
            for &(first, last, reason) in &p.bad {
                for at in first.max(self.next_row)..=last {
                    self.skipped.add(reason);
                    if self.options.base.bad_rows == BadRowPolicy::Missing {
                        crate::options::push_missing_row(&mut values, d, labels.as_mut(), &mut row_ids, at, f64::NAN);
                    }
                }
            }
            self.next_row = p.object_row;
            first_object = Some(p.object_line);
        }
        // The first object is read even when the missing rows before it have filled the batch.
        while row_ids.len() < cap || first_object.is_some() {
            let problem = if let Some(line) = first_object.take() {
                self.line = line;
                None
            } else {
                match self.read_line() {
                    Ok(Line::End) => {
                        self.done = true;
                        break;
                    }
                    Ok(Line::Text) if is_blank(&self.line) => continue,
                    Ok(Line::Text) => None,
                    Ok(Line::TooLong) => Some(self.too_long()),
                    Err(e) => return Some(Err(e)),
                }
            };
            let mut label = f64::NAN;
            let parsed = match problem {
                Some(p) => Err(p),
                None => self.parse_line(&mut values, &mut label),
            };
            match parsed {
                Ok(()) => {
                    row_ids.push(self.next_row);
                    if let Some(l) = labels.as_mut() {
                        l.push(label);
                    }
                }
                Err(problem) => match self.reject(self.next_row, problem) {
                    Ok(true) => {
                        let at = self.next_row;
                        crate::options::push_missing_row(&mut values, d, labels.as_mut(), &mut row_ids, at, label);
                    }
                    Ok(false) => {}
                    Err(e) => return Some(Err(e)),
                },
            }
            self.next_row += 1;
        }
        if row_ids.is_empty() && self.done {
            return None;
        }
        Some(crate::options::make_batch(&self.name, &self.schema, values, labels, row_ids))
    }
}

impl Source for JsonlSource {
    fn fraction_done(&self) -> Option<f64> {
        let total = self.total_bytes?;
        Some((self.bytes_read as f64 / total as f64).min(1.0))
    }

    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn id_features(&self) -> Vec<usize> {
        self.row.id_features()
    }

    fn ignored_keys(&self) -> u64 {
        self.row.ignored_keys()
    }

    fn has_labels(&self) -> bool {
        self.row.label().is_some()
    }

    fn position(&self) -> Position {
        Position::Row(self.next_row)
    }

    fn skipped(&self) -> &SkipCounts {
        &self.skipped
    }

    /// Skips forward to a row id (lines are read and dropped, not parsed, and not counted as skipped).
    fn seek(&mut self, position: &Position) -> Result<(), SourceError> {
        let target = crate::options::seek_row(position, &self.name, "a JSON Lines file")?;
        if target < self.next_row {
            return Err(SourceError::Unsupported(format!(
                "{}: cannot seek back to row {target} from row {}",
                self.name, self.next_row
            )));
        }
        if let Some(object_row) = self.prelude.as_ref().map(|p| p.object_row) {
            if target <= object_row {
                // Still within the lines read at open: `next` counts the bad ones from here on.
                self.next_row = target;
                return Ok(());
            }
            self.prelude = None;
            self.next_row = object_row + 1;
        }
        while self.next_row < target {
            match self.read_line()? {
                Line::End => {
                    return Err(SourceError::Schema {
                        source_name: self.name.clone(),
                        message: format!("cannot resume at row {target}: the file has only {} rows", self.next_row),
                    });
                }
                Line::Text if is_blank(&self.line) => continue,
                Line::Text | Line::TooLong => self.next_row += 1,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &'static str) -> JsonlSource {
        JsonlSource::from_reader("t.jsonl", text.as_bytes(), JsonlOptions::default()).unwrap()
    }

    #[test]
    fn key_order_is_the_first_objects_order() {
        let s = source("{\"z\": 1, \"a\": 2, \"m\": 3, \"label\": 0}\n");
        assert_eq!(s.schema().names(), ["z", "a", "m"]);
    }

    #[test]
    fn escaped_keys_and_values_of_every_kind() {
        let mut s = source("{\"a\\u0062\": 1e2, \"n\": null, \"t\": true, \"f\": false, \"i\": -7, \"label\": 1}\n");
        assert_eq!(s.schema().names(), ["ab", "n", "t", "f", "i"]);
        let b = s.next().unwrap().unwrap();
        assert_eq!(b.row(0)[0], 100.0);
        assert!(b.row(0)[1].is_nan());
        assert_eq!(&b.row(0)[2..], &[1.0, 0.0, -7.0]);
        assert_eq!(b.labels(), Some(&[1.0][..]));
    }

    #[test]
    fn first_problem_in_key_order_wins_but_invalid_json_beats_all() {
        let mut s =
            source("{\"a\":1,\"label\":0}\n{\"x\":1,\"a\":\"s\"}\n{\"a\":\"s\",\"x\":1}\n{\"a\":\"s\",\"x\":1,\n");
        let _ = s.by_ref().count();
        assert_eq!(s.skipped().get("extra_column"), 1);
        assert_eq!(s.skipped().get("non_numeric"), 1);
        assert_eq!(s.skipped().get("invalid_json"), 1);
    }

    #[test]
    fn a_line_exactly_at_the_cap_is_read() {
        let options = JsonlOptions { max_line_bytes: 9, ..Default::default() };
        // `{"a":1.5}` is 9 bytes; with CRLF the `\r` is not counted.
        let text = "{\"a\":1.5}\r\n{\"a\":10.5}\r\n{\"a\":2.5}";
        let mut s = JsonlSource::from_reader(
            "t.jsonl",
            text.as_bytes(),
            JsonlOptions { base: SourceOptions { label: crate::LabelColumn::None, ..options.base }, ..options },
        )
        .unwrap();
        let b = s.next().unwrap().unwrap();
        assert_eq!(b.values(), &[1.5, 2.5]);
        assert_eq!(b.row_ids(), &[0, 2]);
        assert_eq!(s.skipped().get("line_too_long"), 1);
    }
}
