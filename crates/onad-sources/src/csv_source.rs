//! CSV (and other delimited text) source: streams records into dense batches, reading a bounded buffer
//! at a time, so memory does not grow with the file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use onad_core::{BadRecord, BadRowPolicy, Batch, Position, Schema, SchemaRef, SkipCounts, Source, SourceError};

use crate::options::{NonNumericColumns, Role, SourceOptions};
use crate::parse_number;

/// Options of [`CsvSource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Label column, bad-row policy, batch size.
    pub base: SourceOptions,
    /// Field delimiter (`b','`, `b'\t'`, `b';'`).
    pub delimiter: u8,
    /// The first record names the columns; without a header they are named `col_0, col_1, ...`.
    pub has_header: bool,
    /// Longest line kept (bytes, without the line ending). The rest of a longer line is dropped as it is
    /// read (memory stays bounded), and its record is a bad row `line_too_long`.
    pub max_line_bytes: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { base: SourceOptions::default(), delimiter: b',', has_header: true, max_line_bytes: 1 << 20 }
    }
}

/// A reader that keeps at most `cap` bytes of each line: the rest of a longer line is dropped, and the
/// place of the cut (a byte offset in what it hands out) is queued in `cuts` so the record holding it
/// can be told apart.
struct LineCap<R> {
    inner: R,
    cap: usize,
    /// Bytes of the current line handed out so far.
    run: usize,
    /// Inside the dropped tail of a long line.
    dropping: bool,
    /// The dropped tail so far holds an odd number of quote characters: a quote is handed out at the
    /// line end so the quoting of what follows reads as in the file.
    odd_quotes: bool,
    /// A byte still to hand out (a line end after an added quote, with a one-byte buffer).
    owed: Option<u8>,
    /// Bytes handed out so far.
    out: u64,
    cuts: Arc<Mutex<VecDeque<u64>>>,
}

impl<R: Read> Read for LineCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(b) = self.owed.take() {
            buf[0] = b;
            self.out += 1;
            return Ok(1);
        }
        loop {
            // Inside a dropped tail, the line end may need a quote handed out before it: read one byte
            // to the right so there is room for it even when the line end comes first.
            let start = usize::from(self.dropping && buf.len() > 1);
            let n = start + self.inner.read(&mut buf[start..])?;
            if n == start {
                return Ok(0);
            }
            // Compact in place: `w` trails `r` once something was dropped (or by the slack byte).
            let (mut r, mut w) = (start, 0);
            while r < n {
                // Both `\n` and a lone `\r` end a line for the csv reader; a CRLF is two short ends.
                let end = memchr::memchr2(b'\n', b'\r', &buf[r..n]).map_or(n, |i| r + i);
                let segment = end - r;
                // Bytes of this segment handed out (none when the line was already being dropped).
                let mut keep = 0;
                if !self.dropping {
                    keep = segment.min(self.cap.saturating_sub(self.run));
                    buf.copy_within(r..r + keep, w);
                    w += keep;
                    self.run += keep;
                    if keep < segment {
                        self.dropping = true;
                        lock(&self.cuts).push_back(self.out + w as u64);
                    }
                }
                if self.dropping {
                    self.odd_quotes ^= memchr::memchr_iter(b'"', &buf[r + keep..end]).count() % 2 == 1;
                }
                if end < n {
                    let line_end = buf[end];
                    if std::mem::take(&mut self.odd_quotes) {
                        buf[w] = b'"';
                        w += 1;
                        if w > end {
                            // Only with a one-byte buffer (no slack): the line end goes out next time.
                            self.owed = Some(line_end);
                            self.run = 0;
                            self.dropping = false;
                            r = end + 1;
                            continue;
                        }
                    }
                    buf[w] = line_end;
                    w += 1;
                    self.run = 0;
                    self.dropping = false;
                }
                r = end + 1;
            }
            self.out += w as u64;
            if w > 0 {
                return Ok(w);
            }
        }
    }
}

/// Whether a line was cut before `end` (the offset just past the record read last); forgets those cuts.
fn cut_within(cuts: &Mutex<VecDeque<u64>>, end: u64) -> bool {
    let mut cuts = lock(cuts);
    let mut any = false;
    while cuts.front().is_some_and(|c| *c <= end) {
        cuts.pop_front();
        any = true;
    }
    any
}

fn lock(cuts: &Mutex<VecDeque<u64>>) -> std::sync::MutexGuard<'_, VecDeque<u64>> {
    cuts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Streams a CSV file as batches. Every column except the label is a feature (unless the options leave
/// it out); empty fields are NaN (missing). A record with the wrong number of fields, text where a number
/// belongs, bytes that are not UTF-8, a line longer than [`CsvOptions::max_line_bytes`], or a record whose
/// features are all empty (or NaN) is a bad row: skipped and counted under `field_count`, `non_numeric`,
/// `invalid_utf8`, `line_too_long` or `empty_row`, or reported as an error naming the file, row and column,
/// as the [`BadRowPolicy`] says.
///
/// Row ids count data records from 0 (the header is not a row), including bad ones.
pub struct CsvSource {
    name: String,
    reader: csv::Reader<Box<dyn Read + Send>>,
    options: CsvOptions,
    /// Input column names (features, label and columns left out).
    columns: Vec<String>,
    /// What each input column is.
    roles: Vec<Role>,
    schema: SchemaRef,
    label: Option<usize>,
    /// A record read ahead (to learn the width of a header-less file, or to judge the columns), and
    /// whether its line was cut.
    pending: Option<(csv::ByteRecord, bool)>,
    record: csv::ByteRecord,
    /// The current record's line was longer than `max_line_bytes`.
    too_long: bool,
    /// Where `LineCap` cut lines, not yet matched to a record.
    cuts: Arc<Mutex<VecDeque<u64>>>,
    next_row: u64,
    skipped: SkipCounts,
    done: bool,
    /// The file's size in bytes, when opened from a file (for [`Source::fraction_done`]).
    total_bytes: Option<u64>,
}

impl std::fmt::Debug for CsvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSource")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("label", &self.label)
            .field("next_row", &self.next_row)
            .finish_non_exhaustive()
    }
}

impl CsvSource {
    /// Opens a CSV file.
    pub fn open(path: impl AsRef<Path>, options: CsvOptions) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = File::open(path).map_err(|error| SourceError::Io { source_name: name.clone(), error })?;
        let total = file.metadata().ok().map(|m| m.len()).filter(|n| *n > 0);
        let mut source = Self::from_reader(name, file, options)?;
        source.total_bytes = total;
        Ok(source)
    }

    /// Reads CSV from any reader; `name` is used in messages.
    pub fn from_reader(
        name: impl Into<String>,
        reader: impl Read + Send + 'static,
        options: CsvOptions,
    ) -> Result<Self, SourceError> {
        let name = name.into();
        let cuts = Arc::new(Mutex::new(VecDeque::new()));
        let capped = LineCap {
            inner: reader,
            cap: options.max_line_bytes.max(1),
            run: 0,
            dropping: false,
            odd_quotes: false,
            owed: None,
            out: 0,
            cuts: cuts.clone(),
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(options.delimiter)
            .has_headers(options.has_header)
            .flexible(true)
            .buffer_capacity(1 << 16)
            .from_reader(Box::new(capped) as Box<dyn Read + Send>);
        let mut pending = None;
        let columns: Vec<String> = if options.has_header {
            let header = reader.byte_headers().map_err(|e| csv_error(&name, e))?.clone();
            if cut_within(&cuts, reader.position().byte()) {
                return Err(SourceError::Schema {
                    source_name: name,
                    message: format!("the header line is longer than max_line_bytes={}", options.max_line_bytes),
                });
            }
            header
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    std::str::from_utf8(h).map(|s| s.trim().to_owned()).map_err(|_| SourceError::Schema {
                        source_name: name.clone(),
                        message: format!("header field {i} is not valid UTF-8"),
                    })
                })
                .collect::<Result<_, _>>()?
        } else {
            let mut first = csv::ByteRecord::new();
            let width = if reader.read_byte_record(&mut first).map_err(|e| csv_error(&name, e))? {
                let w = first.len();
                if cut_within(&cuts, reader.position().byte()) {
                    return Err(SourceError::Schema {
                        source_name: name,
                        message: format!(
                            "the first line (which sets the columns of a file without header) is longer than \
                             max_line_bytes={}",
                            options.max_line_bytes
                        ),
                    });
                }
                pending = Some((first, false));
                w
            } else {
                0
            };
            (0..width).map(|i| format!("col_{i}")).collect()
        };
        if columns.is_empty() || (columns.len() == 1 && columns[0].is_empty()) {
            return Err(SourceError::Schema {
                source_name: name,
                message: "the file is empty (no header, no columns)".into(),
            });
        }
        if options.base.non_numeric == NonNumericColumns::Exclude && pending.is_none() {
            // Judge the columns by the first data record, kept to be delivered as row 0.
            let mut first = csv::ByteRecord::new();
            if reader.read_byte_record(&mut first).map_err(|e| csv_error(&name, e))? {
                pending = Some((first, cut_within(&cuts, reader.position().byte())));
            }
        }
        let numeric = |i: usize| {
            pending.as_ref().and_then(|(r, _)| r.get(i)).is_none_or(|f| {
                let t = f.trim_ascii();
                t.is_empty() || std::str::from_utf8(t).ok().and_then(parse_number).is_some()
            })
        };
        let roles = options
            .base
            .roles(&columns, numeric)
            .map_err(|message| SourceError::Schema { source_name: name.clone(), message })?;
        let label = roles.iter().position(|r| *r == Role::Label);
        let features = columns.iter().zip(&roles).filter(|(_, r)| r.is_feature()).map(|(c, _)| c.clone());
        let schema = Schema::new(features)
            .map(Arc::new)
            .map_err(|e| SourceError::Schema { source_name: name.clone(), message: e.to_string() })?;
        Ok(CsvSource {
            name,
            reader,
            options,
            columns,
            roles,
            schema,
            label,
            pending,
            record: csv::ByteRecord::new(),
            too_long: false,
            cuts,
            next_row: 0,
            skipped: SkipCounts::default(),
            done: false,
            total_bytes: None,
        })
    }

    fn read_record(&mut self) -> Result<bool, SourceError> {
        if let Some((p, too_long)) = self.pending.take() {
            self.record = p;
            self.too_long = too_long;
            return Ok(true);
        }
        let got = self.reader.read_byte_record(&mut self.record).map_err(|e| csv_error(&self.name, e))?;
        self.too_long = got && cut_within(&self.cuts, self.reader.position().byte());
        Ok(got)
    }

    /// Parses the current record into `values` / `label`; on a bad row returns what is wrong.
    fn parse_record(&self, values: &mut Vec<f64>, label: &mut f64) -> Result<(), BadRecord> {
        let row = self.next_row;
        let bad = |column: Option<&String>, reason: &'static str, detail: String| BadRecord {
            source: self.name.clone(),
            row,
            column: column.cloned(),
            reason,
            detail,
        };
        if self.too_long {
            return Err(bad(
                None,
                "line_too_long",
                format!("a line of the record is longer than max_line_bytes={}", self.options.max_line_bytes),
            ));
        }
        if self.record.len() != self.columns.len() {
            return Err(bad(
                None,
                "field_count",
                format!("expected {} fields, found {}", self.columns.len(), self.record.len()),
            ));
        }
        let start = values.len();
        for (i, field) in self.record.iter().enumerate() {
            let role = self.roles[i];
            if role == Role::Skip {
                continue;
            }
            if role == Role::Id {
                values.push(onad_core::id_value(field));
                continue;
            }
            // Fast path: a plain number, parsed from the bytes (no UTF-8 pass).
            let trimmed = field.trim_ascii();
            if !trimmed.is_empty()
                && let Ok(v) = fast_float2::parse::<f64, _>(trimmed)
            {
                if role == Role::Label {
                    *label = v;
                } else {
                    values.push(v);
                }
                continue;
            }
            let text = match std::str::from_utf8(field) {
                Ok(t) => t,
                Err(_) => {
                    values.truncate(start);
                    return Err(bad(Some(&self.columns[i]), "invalid_utf8", "the field is not valid UTF-8".into()));
                }
            };
            let Some(v) = parse_number(text) else {
                values.truncate(start);
                let shown: String = text.chars().take(40).collect();
                return Err(bad(Some(&self.columns[i]), "non_numeric", format!("cannot read '{shown}' as a number")));
            };
            if role == Role::Label {
                *label = v;
            } else {
                values.push(v);
            }
        }
        if let Some(detail) = crate::options::empty_row(&values[start..]) {
            values.truncate(start);
            return Err(bad(None, crate::options::EMPTY_ROW, detail));
        }
        Ok(())
    }
}

fn csv_error(name: &str, e: csv::Error) -> SourceError {
    let line = e.position().map(|p| format!(" (line {})", p.line())).unwrap_or_default();
    match e.into_kind() {
        csv::ErrorKind::Io(error) => SourceError::Io { source_name: format!("{name}{line}"), error },
        other => SourceError::External {
            connector: "csv",
            source_name: format!("{name}{line}"),
            error: format!("{other:?}").into(),
        },
    }
}

impl Iterator for CsvSource {
    type Item = Result<Batch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let cap = self.options.base.batch_size.max(1);
        let d = self.schema.len();
        let mut values = Vec::with_capacity(cap * d);
        let mut labels = self.label.map(|_| Vec::with_capacity(cap));
        let mut row_ids = Vec::with_capacity(cap);
        while row_ids.len() < cap {
            match self.read_record() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
            let mut label = f64::NAN;
            match self.parse_record(&mut values, &mut label) {
                Ok(()) => {
                    row_ids.push(self.next_row);
                    if let Some(l) = labels.as_mut() {
                        l.push(label);
                    }
                }
                Err(bad) => match self.options.base.bad_rows {
                    BadRowPolicy::Skip => self.skipped.add(bad.reason),
                    BadRowPolicy::Missing => {
                        self.skipped.add(bad.reason);
                        let at = self.next_row;
                        crate::options::push_missing_row(&mut values, d, labels.as_mut(), &mut row_ids, at, label);
                    }
                    BadRowPolicy::Fail => {
                        self.done = true;
                        return Some(Err(SourceError::BadRecord(bad)));
                    }
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

impl Source for CsvSource {
    fn fraction_done(&self) -> Option<f64> {
        let total = self.total_bytes?;
        Some((self.reader.position().byte() as f64 / total as f64).min(1.0))
    }

    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn id_features(&self) -> Vec<usize> {
        crate::options::id_features(&self.roles)
    }

    fn has_labels(&self) -> bool {
        self.label.is_some()
    }

    fn position(&self) -> Position {
        Position::Row(self.next_row)
    }

    fn skipped(&self) -> &SkipCounts {
        &self.skipped
    }

    /// Skips forward to a row id (records are read and dropped; rows before it are not parsed).
    fn seek(&mut self, position: &Position) -> Result<(), SourceError> {
        let target = crate::options::seek_row(position, &self.name, "a CSV file")?;
        if target < self.next_row {
            return Err(SourceError::Unsupported(format!(
                "{}: cannot seek back to row {target} from row {}",
                self.name, self.next_row
            )));
        }
        while self.next_row < target {
            if !self.read_record()? {
                return Err(SourceError::Schema {
                    source_name: self.name.clone(),
                    message: format!("cannot resume at row {target}: the file has only {} rows", self.next_row),
                });
            }
            self.next_row += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabelColumn;

    fn source(text: &'static str, options: CsvOptions) -> CsvSource {
        CsvSource::from_reader("test.csv", text.as_bytes(), options).unwrap()
    }

    fn all(src: &mut CsvSource) -> (Vec<f64>, Vec<f64>, Vec<u64>) {
        let (mut v, mut l, mut ids) = (vec![], vec![], vec![]);
        for b in src {
            let b = b.unwrap();
            v.extend_from_slice(b.values());
            l.extend_from_slice(b.labels().unwrap_or(&[]));
            ids.extend_from_slice(b.row_ids());
        }
        (v, l, ids)
    }

    #[test]
    fn reads_header_label_missing_values_quotes_crlf_and_bom() {
        let text = "\u{feff}a,\"b\",label\r\n1,,0\r\n\"2.5\", 3 ,1\r\n";
        let mut s = source(
            text,
            CsvOptions { base: SourceOptions { batch_size: 1, ..Default::default() }, ..Default::default() },
        );
        assert_eq!(s.schema().names(), ["a", "b"]);
        let (v, l, ids) = all(&mut s);
        assert_eq!(v[0], 1.0);
        assert!(v[1].is_nan());
        assert_eq!(&v[2..], &[2.5, 3.0]);
        assert_eq!(l, vec![0.0, 1.0]);
        assert_eq!(ids, vec![0, 1]);
        assert_eq!(s.position(), Position::Row(2));
    }

    #[test]
    fn skips_and_counts_bad_rows_by_reason() {
        let bytes: &'static [u8] = b"a,b,label\n1,2,0\n1,x,0\n1,2\n1,2,0,9\nz\xff,2,0\n3,4,1\n";
        let mut s = CsvSource::from_reader("t.csv", bytes, CsvOptions::default()).unwrap();
        let (v, _, ids) = all(&mut s);
        assert_eq!(v, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(ids, vec![0, 5]);
        assert_eq!(s.skipped().get("non_numeric"), 1);
        assert_eq!(s.skipped().get("field_count"), 2);
        assert_eq!(s.skipped().get("invalid_utf8"), 1);
        assert_eq!(s.skipped().total(), 4);
    }

    /// A reader that hands out at most `size` bytes per call.
    struct Chunks {
        data: Vec<u8>,
        at: usize,
        size: usize,
    }

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let k = self.size.min(buf.len()).min(self.data.len() - self.at);
            buf[..k].copy_from_slice(&self.data[self.at..self.at + k]);
            self.at += k;
            Ok(k)
        }
    }

    #[test]
    fn line_cap_gives_the_same_rows_whatever_the_read_sizes() {
        // Long lines whose dropped tails hold odd and even numbers of quotes, line ends landing on every
        // read boundary, CRLF and CR-only endings.
        let mut text = b"a,b,label\r\n1,2,0\r\n".to_vec();
        text.extend(b"3,\"xx".iter().chain(std::iter::repeat_n(&b'y', 40)).chain(b"\",9,1\r\n"));
        text.extend(b"5,6,0\r7,8,1\n");
        text.extend(std::iter::repeat_n(b'z', 50));
        text.extend(b"\"\"\"\n9,10,0\n11,12,1");
        let run = |size: usize| {
            let reader = Chunks { data: text.clone(), at: 0, size };
            let options = CsvOptions { max_line_bytes: 16, ..Default::default() };
            let mut s = CsvSource::from_reader("t.csv", reader, options).unwrap();
            let (v, l, ids) = all(&mut s);
            (v, l, ids, s.skipped().iter().map(|(k, n)| (k.to_owned(), n)).collect::<Vec<_>>())
        };
        let whole = run(usize::MAX);
        assert_eq!(whole.0, [1.0, 2.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0], "{whole:?}");
        assert_eq!(whole.2, [0, 2, 3, 5, 6], "{whole:?}");
        assert_eq!(whole.3, [("line_too_long".to_owned(), 2)], "{whole:?}");
        for size in 1..=24 {
            assert_eq!(run(size), whole, "reads of {size} bytes");
        }
        // The cap itself, read one byte at a time, hands out the same bytes as in one read.
        let through = |size: usize| {
            let cuts = Arc::new(Mutex::new(VecDeque::new()));
            let inner = Chunks { data: text.clone(), at: 0, size: usize::MAX };
            let mut cap = LineCap {
                inner,
                cap: 16,
                run: 0,
                dropping: false,
                odd_quotes: false,
                owed: None,
                out: 0,
                cuts: cuts.clone(),
            };
            let mut out = Vec::new();
            let mut buf = vec![0; size];
            loop {
                let n = cap.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            (out, lock(&cuts).clone())
        };
        let one = through(1);
        assert_eq!(one, through(4096));
        assert_eq!(one, through(2));
    }

    #[test]
    fn long_lines_are_cut_as_read_and_counted() {
        // T4: a 10 MB line among good ones, one long line in the middle of a quoted field spanning
        // lines, and a long last line without a line end.
        let mut text = b"a,b,label\n1,2,0\n".to_vec();
        text.extend(std::iter::repeat_n(b'7', 10 << 20));
        text.extend(b",1,0\n3,4,1\n\"x\nyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\",1,0\n5,6,0\n");
        text.extend(std::iter::repeat_n(b'8', 100));
        let options = CsvOptions { max_line_bytes: 32, ..Default::default() };
        let mut s = CsvSource::from_reader("t.csv", std::io::Cursor::new(text.clone()), options).unwrap();
        let (v, l, ids) = all(&mut s);
        assert_eq!((v, l, ids), (vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![0.0, 1.0, 0.0], vec![0, 2, 4]));
        assert_eq!(s.skipped().get("line_too_long"), 3);
        assert_eq!(s.skipped().total(), 3);

        // The fail policy names the row; a header over the cap is an error when opening.
        let fail = CsvOptions {
            base: SourceOptions { bad_rows: BadRowPolicy::Fail, ..Default::default() },
            max_line_bytes: 32,
            ..Default::default()
        };
        let mut s = CsvSource::from_reader("t.csv", std::io::Cursor::new(text), fail).unwrap();
        s.next().unwrap().unwrap_err();
        let mut s = CsvSource::from_reader(
            "t.csv",
            std::io::Cursor::new(b"a,b,label\n1,2,0\n".repeat(3)),
            CsvOptions {
                base: SourceOptions { bad_rows: BadRowPolicy::Fail, batch_size: 1, ..Default::default() },
                max_line_bytes: 32,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.next().unwrap().is_ok());
        let long_header = format!("{},label\n1,0\n", "c".repeat(40));
        let err = CsvSource::from_reader(
            "t.csv",
            std::io::Cursor::new(long_header.into_bytes()),
            CsvOptions { max_line_bytes: 32, ..Default::default() },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("header line is longer than max_line_bytes=32"), "{err}");
        let headerless = CsvOptions { has_header: false, max_line_bytes: 8, ..Default::default() };
        let err = CsvSource::from_reader("t.csv", std::io::Cursor::new(b"1,2,3,4,5,6\n1,2\n".to_vec()), headerless)
            .unwrap_err()
            .to_string();
        assert!(err.contains("first line (which sets the columns"), "{err}");
        // With the default cap (1 MiB) the 10 MB line alone is cut; a line exactly at the cap is kept.
        let mut exact = b"a,label\n".to_vec();
        exact.extend(std::iter::repeat_n(b'1', 30));
        exact.extend(b",0\n");
        let options = CsvOptions { max_line_bytes: 32, ..Default::default() };
        let mut s = CsvSource::from_reader("t.csv", std::io::Cursor::new(exact), options).unwrap();
        let (v, _, _) = all(&mut s);
        assert_eq!(v, vec![111_111_111_111_111_111_111_111_111_111.0]);
    }

    #[test]
    fn invalid_utf8_is_its_own_reason() {
        let bytes: &'static [u8] = b"a,label\n\xff\xfe,0\n1,0\n";
        let mut s = CsvSource::from_reader("t.csv", bytes, CsvOptions::default()).unwrap();
        let (v, _, _) = all(&mut s);
        assert_eq!(v, vec![1.0]);
        assert_eq!(s.skipped().get("invalid_utf8"), 1);
    }

    #[test]
    fn fail_policy_names_file_row_and_column() {
        let options = CsvOptions {
            base: SourceOptions { bad_rows: BadRowPolicy::Fail, ..Default::default() },
            ..Default::default()
        };
        let mut s = source("a,b,label\n1,2,0\n1,oops,0\n", options);
        let err = s.next().unwrap().unwrap_err().to_string();
        assert_eq!(err, "test.csv: row 1, column 'b': cannot read 'oops' as a number (non_numeric)");
        assert!(s.next().is_none());
    }

    #[test]
    fn named_missing_and_absent_label_columns() {
        let named = CsvOptions {
            base: SourceOptions { label: LabelColumn::Named("y".into()), ..Default::default() },
            ..Default::default()
        };
        let mut s = source("y,a\n1,5\n", named.clone());
        assert_eq!(s.schema().names(), ["a"]);
        assert_eq!(all(&mut s).1, vec![1.0]);
        let err = CsvSource::from_reader("t.csv", "a,b\n1,2\n".as_bytes(), named).unwrap_err().to_string();
        assert_eq!(err, "t.csv: label column 'y' not found (columns: a, b)");
        let none =
            CsvOptions { base: SourceOptions { label: LabelColumn::None, ..Default::default() }, ..Default::default() };
        let s = source("a,b\n1,2\n", none);
        assert!(!s.has_labels());
        assert_eq!(s.schema().len(), 2);
    }

    #[test]
    fn headerless_semicolon_files_and_empty_files() {
        let options = CsvOptions { delimiter: b';', has_header: false, ..Default::default() };
        let mut s = source("1;2;0\n3;4;1\n", options);
        assert_eq!(s.schema().names(), ["col_0", "col_1"]);
        assert_eq!(all(&mut s).0, vec![1.0, 2.0, 3.0, 4.0]);
        let err = CsvSource::from_reader("e.csv", "".as_bytes(), CsvOptions::default()).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let mut header_only = source("a,label\n", CsvOptions::default());
        assert!(header_only.next().is_none());
    }

    #[test]
    fn seek_resumes_at_a_row() {
        let mut s = source("a,label\n0,0\n1,0\n2,0\n3,0\n", CsvOptions::default());
        s.seek(&Position::Row(2)).unwrap();
        let (v, _, ids) = all(&mut s);
        assert_eq!(v, vec![2.0, 3.0]);
        assert_eq!(ids, vec![2, 3]);
        let mut s = source("a,label\n0,0\n", CsvOptions::default());
        assert!(s.seek(&Position::Row(5)).unwrap_err().to_string().contains("only 1 rows"));
    }
}
