//! The line sinks (CSV and JSON Lines, to a file or standard output) and the alerts-only filter that any
//! sink can sit behind. Brokers and Parquet write through `onad-sources`.
//!
//! A line sink counts the bytes it has written. [`Sink::sync`] flushes and fsyncs them and reports the
//! length, which the checkpoint records; a resumed run cuts the file back to that length and appends, so
//! a run that was killed and resumed leaves the same bytes as one that was not. Standard output gets the
//! same treatment when it is redirected to a regular file (`onad run -o - >> scores.csv`: resume with `>>`,
//! since `>` empties the file before onad starts); a terminal or a pipe cannot be taken back, so a resumed
//! run then writes on after whatever the killed run wrote.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use onad_core::{Batch, Scored, Sink, SinkError, SinkLayout, SinkPosition};

/// Where a line sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file, created (or, on resume, cut back and appended to).
    File(PathBuf),
    /// Standard output.
    Stdout,
}

impl Target {
    /// `-` is standard output, anything else a file path.
    pub fn parse(text: &str) -> Target {
        if text == "-" { Target::Stdout } else { Target::File(PathBuf::from(text)) }
    }

    fn describe(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::File(p) => write!(f, "{}", p.display()),
            Target::Stdout => f.write_str("standard output"),
        }
    }
}

/// An open byte stream that knows how long it is.
struct Bytes {
    writer: BufWriter<Box<dyn Write + Send>>,
    /// The file behind it, for fsync (`None` for a terminal or a pipe).
    file: Option<File>,
    /// Length of the stream (for files: where the next byte lands).
    len: u64,
    /// Standard output (its file may be shared with other writers).
    stdout: bool,
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bytes").field("len", &self.len).field("file", &self.file.is_some()).finish()
    }
}

/// On Linux, standard output redirected to a regular file can be reopened by path: that gives a handle
/// that can be fsynced and cut back, without unsafe code. The bytes themselves still go through file
/// descriptor 1, so they land where the shell's redirection puts them and interleave correctly with
/// anything else printed there.
const STDOUT_PATH: &str = "/proc/self/fd/1";

/// Standard output's current offset and whether it appends (`>>`), from `/proc/self/fdinfo/1`.
fn stdout_mode() -> Option<(u64, bool)> {
    let info = std::fs::read_to_string("/proc/self/fdinfo/1").ok()?;
    let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let pos = field("pos:")?.parse().ok()?;
    let flags = u32::from_str_radix(field("flags:")?, 8).ok()?;
    const O_APPEND: u32 = 0o2000;
    Some((pos, flags & O_APPEND != 0))
}

fn stdout_is_regular_file() -> bool {
    cfg!(target_os = "linux") && std::fs::metadata(STDOUT_PATH).is_ok_and(|m| m.is_file())
}

/// Opens `path` for writing at `resume` (cut back to it) or fresh (emptied).
fn open_at(path: &Path, resume: Option<u64>, what: &str) -> Result<(File, u64), String> {
    let f =
        OpenOptions::new().write(true).create(resume.is_none()).truncate(resume.is_none()).open(path).map_err(|e| {
            match (resume, e.kind()) {
                (Some(len), std::io::ErrorKind::NotFound) => format!(
                    "the checkpoint expects {what} to exist with at least {len} bytes (the output of the run being \
                 resumed), but it does not exist: restore it, or remove the checkpoints to start over"
                ),
                _ => e.to_string(),
            }
        })?;
    let at = match resume {
        Some(len) => cut_back(&f, len, what)?,
        None => 0,
    };
    Ok((f, at))
}

/// Cuts a file back to the length a checkpoint recorded; refuses a file shorter than that.
fn cut_back(f: &File, len: u64, what: &str) -> Result<u64, String> {
    let actual = f.metadata().map_err(|e| e.to_string())?.len();
    if actual < len {
        return Err(format!(
            "the checkpoint covers {len} bytes of {what}, but it has {actual}: it was changed or replaced since{}",
            if what == "standard output" { " (when resuming, redirect with >>, not >)" } else { "" }
        ));
    }
    f.set_len(len).map_err(|e| e.to_string())?;
    Ok(len)
}

/// Standard output redirected to a regular file: a handle for fsync and cutting back, and where the
/// next byte written to file descriptor 1 lands.
fn open_stdout_file(resume: Option<u64>, what: &str) -> Result<(File, u64), String> {
    let f = OpenOptions::new().write(true).open(STDOUT_PATH).map_err(|e| e.to_string())?;
    let (pos, append) = stdout_mode().ok_or("cannot read how standard output is opened (/proc/self/fdinfo/1)")?;
    match resume {
        Some(len) => {
            cut_back(&f, len, what)?;
            if !append && pos != len {
                return Err(format!(
                    "the checkpoint covers {len} bytes of standard output, but it is not opened for appending \
                     (resume with >> FILE, not > FILE)"
                ));
            }
            Ok((f, len))
        }
        None => {
            let end = f.metadata().map_err(|e| e.to_string())?.len();
            Ok((f, if append { end } else { pos }))
        }
    }
}

impl Bytes {
    fn open(target: &Target, resume: Option<&SinkPosition>) -> Result<Bytes, SinkError> {
        let what = target.describe();
        let recorded = match resume {
            None | Some(SinkPosition::Unrecorded) => None,
            Some(SinkPosition::Bytes(n)) => Some(*n),
            Some(other) => {
                return Err(SinkError::Resume {
                    target: what,
                    message: format!("the checkpoint recorded {other}, not a byte length"),
                });
            }
        };
        // A failure to continue a recorded output is a resume error; a fresh output that cannot be created
        // is a plain IO error (a missing directory, no permission).
        let fail = |message: String| match recorded {
            Some(_) => SinkError::Resume { target: what.clone(), message },
            None => SinkError::io(what.clone(), std::io::Error::other(message)),
        };
        let stdout_file = match target {
            Target::Stdout if stdout_is_regular_file() => match open_stdout_file(recorded, &what) {
                Ok(opened) => Some(opened),
                // Fresh and cannot be reopened (no /proc): plain standard output, not recorded.
                Err(_) if recorded.is_none() => None,
                Err(e) => return Err(fail(e)),
            },
            _ => None,
        };
        let (writer, file, len, stdout): (Box<dyn Write + Send>, _, _, _) = match (target, stdout_file) {
            (Target::File(p), _) => {
                let (file, len) = open_at(p, recorded, &what).map_err(fail)?;
                let mut handle = file.try_clone().map_err(|e| SinkError::io(what.clone(), e))?;
                handle.seek(SeekFrom::Start(len)).map_err(|e| SinkError::io(what.clone(), e))?;
                (Box::new(handle), Some(file), len, false)
            }
            (Target::Stdout, Some((file, len))) => (Box::new(std::io::stdout()), Some(file), len, true),
            (Target::Stdout, None) => (Box::new(std::io::stdout()), None, 0, true),
        };
        Ok(Bytes { writer: BufWriter::with_capacity(1 << 16, writer), file, len, stdout })
    }

    fn write(&mut self, s: &str) -> std::io::Result<()> {
        self.writer.write_all(s.as_bytes())?;
        self.len += s.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<SinkPosition> {
        self.writer.flush()?;
        match &self.file {
            Some(f) => {
                f.sync_data()?;
                if self.stdout {
                    // Others may write to the same file (`>> out 2>&1`): what a resume keeps is the whole
                    // file as it is now, not only the bytes this sink wrote.
                    self.len = f.metadata()?.len();
                }
                Ok(SinkPosition::Bytes(self.len))
            }
            None => Ok(SinkPosition::Unrecorded),
        }
    }
}

/// The common part of the line sinks: target, the open stream, the layout, a line buffer.
#[derive(Debug)]
struct Lines {
    target: Target,
    out: Option<Bytes>,
    layout: SinkLayout,
    line: String,
}

impl Lines {
    fn new(target: Target) -> Lines {
        Lines { target, out: None, layout: SinkLayout::default(), line: String::with_capacity(128) }
    }

    /// Opens the stream; true when the run starts fresh (a header is due).
    fn open(&mut self, layout: &SinkLayout, resume: Option<&SinkPosition>) -> Result<bool, SinkError> {
        self.layout = layout.clone();
        self.out = Some(Bytes::open(&self.target, resume)?);
        Ok(resume.is_none())
    }

    fn out(&mut self) -> Result<&mut Bytes, SinkError> {
        let target = self.target.describe();
        self.out.as_mut().ok_or_else(|| SinkError::io(target, std::io::Error::other("written before it was opened")))
    }

    fn write_line(&mut self) -> Result<(), SinkError> {
        let target = self.target.describe();
        let line = std::mem::take(&mut self.line);
        let r = self.out()?.write(&line).map_err(|e| SinkError::io(target, e));
        self.line = line;
        r
    }

    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        let target = self.target.describe();
        match self.out.as_mut() {
            Some(out) => out.sync().map_err(|e| SinkError::io(target, e)),
            None => Ok(SinkPosition::Unrecorded),
        }
    }
}

/// One line per row, comma-separated: `row,score,anomaly`, then `label` when the input has labels and
/// `key` in per-key runs. Scores print in Rust's shortest round-trip form; `anomaly` is 0 or 1.
#[derive(Debug)]
pub struct CsvSink {
    lines: Lines,
}

impl CsvSink {
    /// A CSV sink writing to `target` (nothing is touched until the run opens it).
    pub fn new(target: Target) -> CsvSink {
        CsvSink { lines: Lines::new(target) }
    }
}

impl Sink for CsvSink {
    fn open(&mut self, layout: &SinkLayout, resume: Option<&SinkPosition>) -> Result<(), SinkError> {
        if self.lines.open(layout, resume)? {
            let l = &mut self.lines.line;
            l.clear();
            l.push_str("row,score,anomaly");
            if layout.labels {
                l.push_str(",label");
            }
            if layout.key.is_some() {
                l.push_str(",key");
            }
            for name in &layout.explanations {
                l.push(',');
                csv_field(l, name);
            }
            l.push('\n');
            self.lines.write_line()?;
        }
        Ok(())
    }

    fn write(&mut self, scored: &Scored<'_>) -> Result<(), SinkError> {
        let (labels, keys) = (scored.labels(), scored.keys);
        let with_key = self.lines.layout.key.is_some();
        let width = self.lines.layout.explanations.len();
        for (i, ((id, s), f)) in scored.row_ids().iter().zip(scored.scores).zip(scored.flags).enumerate() {
            let l = &mut self.lines.line;
            l.clear();
            let _ = write!(l, "{id},{s},{}", u8::from(*f));
            if let Some(labels) = labels {
                let _ = write!(l, ",{}", labels[i]);
            }
            if with_key {
                match keys {
                    Some(k) => {
                        let _ = write!(l, ",{}", k[i]);
                    }
                    None => l.push(','),
                }
            }
            // An explanation value that does not exist (NaN) is an empty field, as missing values are read.
            for v in scored.explanation(i, width) {
                l.push(',');
                if !v.is_nan() {
                    let _ = write!(l, "{v}");
                }
            }
            if width > 0 && scored.explanations.is_none() {
                for _ in 0..width {
                    l.push(',');
                }
            }
            l.push('\n');
            self.lines.write_line()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        self.lines.sync()
    }

    fn describe(&self) -> String {
        self.lines.target.describe()
    }
}

/// Appends `text` as one CSV field: quoted (with inner quotes doubled) when it holds a comma, a quote or
/// a line break.
fn csv_field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// One JSON object per row: `{"row":12,"score":0.41,"threshold":0.9,"anomaly":false}`, with `"label"`
/// when the input has labels, `"key"` in per-key runs and `"origin":{"topic":..,"partition":..,"offset":..}`
/// for rows read from Kafka. A threshold that is not finite (no threshold, or one still warming up) is
/// `null`.
#[derive(Debug)]
pub struct JsonlSink {
    lines: Lines,
}

impl JsonlSink {
    /// A JSON Lines sink writing to `target`.
    pub fn new(target: Target) -> JsonlSink {
        JsonlSink { lines: Lines::new(target) }
    }
}

impl Sink for JsonlSink {
    fn open(&mut self, layout: &SinkLayout, resume: Option<&SinkPosition>) -> Result<(), SinkError> {
        self.lines.open(layout, resume).map(|_| ())
    }

    fn write(&mut self, scored: &Scored<'_>) -> Result<(), SinkError> {
        // The names are moved out while the line buffer is written, and put back whatever happens.
        let names = std::mem::take(&mut self.lines.layout.explanations);
        let result = (|| {
            for (i, r) in scored.rows().enumerate() {
                let l = &mut self.lines.line;
                l.clear();
                r.write_json_explained(l, scored.origin(i), &names, scored.explanation(i, names.len()));
                l.push('\n');
                self.lines.write_line()?;
            }
            Ok(())
        })();
        self.lines.layout.explanations = names;
        result
    }

    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        self.lines.sync()
    }

    fn describe(&self) -> String {
        self.lines.target.describe()
    }
}

/// Passes only the flagged rows on to the sink it wraps (`--alerts`): the alerts of a stream, with the
/// same fields and row ids as the full output.
#[derive(Debug)]
pub struct AlertsOnly<S> {
    inner: S,
    width: usize,
    explanations: Vec<f64>,
    values: Vec<f64>,
    labels: Vec<f64>,
    ids: Vec<u64>,
    scores: Vec<f64>,
    thresholds: Vec<f64>,
    keys: Vec<f64>,
}

impl<S: Sink> AlertsOnly<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        AlertsOnly {
            inner,
            width: 0,
            explanations: Vec::new(),
            values: Vec::new(),
            labels: Vec::new(),
            ids: Vec::new(),
            scores: Vec::new(),
            thresholds: Vec::new(),
            keys: Vec::new(),
        }
    }
}

impl<S: Sink> Sink for AlertsOnly<S> {
    fn open(&mut self, layout: &SinkLayout, resume: Option<&SinkPosition>) -> Result<(), SinkError> {
        self.width = layout.explanations.len();
        self.inner.open(layout, resume)
    }

    fn write(&mut self, scored: &Scored<'_>) -> Result<(), SinkError> {
        if !scored.flags.iter().any(|f| *f) {
            return Ok(());
        }
        self.explanations.clear();
        let batch = scored.batch;
        let (values, labels, ids) = (&mut self.values, &mut self.labels, &mut self.ids);
        let (scores, thresholds, keys) = (&mut self.scores, &mut self.thresholds, &mut self.keys);
        for v in [&mut *values, &mut *labels, &mut *scores, &mut *thresholds, &mut *keys] {
            v.clear();
        }
        ids.clear();
        for (i, _) in scored.flags.iter().enumerate().filter(|(_, f)| **f) {
            values.extend_from_slice(batch.row(i));
            if let Some(l) = batch.labels() {
                labels.push(l[i]);
            }
            ids.push(batch.row_ids()[i]);
            scores.push(scored.scores[i]);
            thresholds.push(scored.thresholds[i]);
            if let Some(k) = scored.keys {
                keys.push(k[i]);
            }
            self.explanations.extend_from_slice(scored.explanation(i, self.width));
        }
        let n = ids.len();
        let bad = |e: onad_core::CoreError| SinkError::io(self.inner.describe(), std::io::Error::other(e.to_string()));
        let mut flagged = Batch::try_new(
            batch.schema().clone(),
            std::mem::take(values),
            batch.labels().map(|_| std::mem::take(labels)),
            std::mem::take(ids),
        )
        .map_err(bad)?;
        if let Some(o) = batch.origins() {
            let at = scored.flags.iter().zip(&o.at).filter(|(f, _)| **f).map(|(_, a)| *a).collect();
            flagged = flagged.with_origins(onad_core::Origins { topic: o.topic.clone(), at }).map_err(bad)?;
        }
        let flags = vec![true; n];
        let result = self.inner.write(&Scored {
            batch: &flagged,
            scores,
            flags: &flags,
            thresholds,
            keys: scored.keys.map(|_| keys.as_slice()),
            explanations: scored.explanations.map(|_| self.explanations.as_slice()),
        });
        // Keep the buffers for the next batch.
        let (_, v, l, i) = flagged.into_parts();
        (*values, *ids) = (v, i);
        if let Some(l) = l {
            *labels = l;
        }
        result
    }

    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        self.inner.sync()
    }

    fn finish(&mut self, completed: bool) -> Result<(), SinkError> {
        self.inner.finish(completed)
    }

    fn describe(&self) -> String {
        format!("{} (alerts only)", self.inner.describe())
    }
}

/// Test hooks for the crash tests (never set in normal use; like the checkpoint module's failpoints), as the
/// first sink of a job: `ONAD_FAILPOINT=kill-at-row:N`
/// makes the process SIGKILL itself when row N is written; `term-at-row:N` sends itself SIGTERM there and
/// goes on.
#[derive(Debug)]
pub struct Failpoint {
    kill_at: Option<u64>,
    term_at: Option<u64>,
}

impl Failpoint {
    /// The failpoint `ONAD_FAILPOINT` names, if it names one of these.
    pub fn from_env() -> Option<Failpoint> {
        let row = |kind: &str| -> Option<u64> {
            std::env::var("ONAD_FAILPOINT").ok()?.strip_prefix(kind)?.strip_prefix(':')?.parse().ok()
        };
        let f = Failpoint { kill_at: row("kill-at-row"), term_at: row("term-at-row") };
        (f.kill_at.is_some() || f.term_at.is_some()).then_some(f)
    }
}

fn signal_self(signal: &str) {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill").args([signal, &pid]).status();
}

impl Sink for Failpoint {
    fn open(&mut self, _layout: &SinkLayout, _resume: Option<&SinkPosition>) -> Result<(), SinkError> {
        Ok(())
    }

    fn write(&mut self, scored: &Scored<'_>) -> Result<(), SinkError> {
        for id in scored.row_ids() {
            if self.kill_at == Some(*id) {
                signal_self("-9");
                std::thread::sleep(std::time::Duration::from_secs(10));
                std::process::abort();
            }
            if self.term_at == Some(*id) {
                signal_self("-TERM");
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        Ok(SinkPosition::Unrecorded)
    }

    fn describe(&self) -> String {
        "failpoint".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::{Origins, Schema};

    fn scored_batch() -> (Batch, Vec<f64>, Vec<bool>, Vec<f64>) {
        let schema = Schema::shared(["v"]).unwrap();
        let b = Batch::try_new(schema, vec![1.0, 2.0, 3.0], Some(vec![0.0, 1.0, 0.0]), vec![7, 8, 9])
            .unwrap()
            .with_origins(Origins { topic: "in\"put".into(), at: vec![(0, 10), (1, 4), (0, 11)] })
            .unwrap();
        (b, vec![0.5, 3.0, f64::MAX], vec![false, true, true], vec![1.0, 1.0, f64::INFINITY])
    }

    #[test]
    fn alerts_keep_the_fields_and_origins_of_the_flagged_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let mut sink = AlertsOnly::new(JsonlSink::new(Target::File(path.clone())));
        sink.open(&SinkLayout { labels: true, key: None, ..Default::default() }, None).unwrap();
        let (b, scores, flags, thresholds) = scored_batch();
        sink.write(&Scored {
            batch: &b,
            scores: &scores,
            flags: &flags,
            thresholds: &thresholds,
            keys: None,
            explanations: None,
        })
        .unwrap();
        assert_eq!(sink.sync().unwrap(), SinkPosition::Bytes(std::fs::metadata(&path).unwrap().len()));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"row":8,"score":3.0,"threshold":1.0,"anomaly":true,"label":1.0,"origin":{"topic":"in\"put","partition":1,"offset":4}}"#,
                r#"{"row":9,"score":1.7976931348623157e308,"threshold":null,"anomaly":true,"label":0.0,"origin":{"topic":"in\"put","partition":0,"offset":11}}"#,
            ]
        );
        for l in lines {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }

    #[test]
    fn a_resume_cuts_a_line_sink_back_and_a_missing_or_shorter_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores.csv");
        let layout = SinkLayout { labels: true, key: None, ..Default::default() };
        let (b, scores, flags, thresholds) = scored_batch();
        let scored = Scored {
            batch: &b,
            scores: &scores,
            flags: &flags,
            thresholds: &thresholds,
            keys: None,
            explanations: None,
        };
        let mut sink = CsvSink::new(Target::File(path.clone()));
        sink.open(&layout, None).unwrap();
        sink.write(&scored).unwrap();
        let at = sink.sync().unwrap();
        sink.write(&scored).unwrap();
        sink.finish(true).unwrap();
        let once = "row,score,anomaly,label\n7,0.5,0,0\n8,3,1,1\n";
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(once));
        let mut resumed = CsvSink::new(Target::File(path.clone()));
        resumed.open(&layout, Some(&at)).unwrap();
        resumed.finish(true).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().len() as u64,
            match at {
                SinkPosition::Bytes(n) => n,
                other => panic!("{other:?}"),
            }
        );
        std::fs::write(&path, "short").unwrap();
        let e = CsvSink::new(Target::File(path.clone())).open(&layout, Some(&at)).unwrap_err().to_string();
        assert!(e.contains("scores.csv") && e.contains("it has 5"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = CsvSink::new(Target::File(path.clone())).open(&layout, Some(&at)).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
