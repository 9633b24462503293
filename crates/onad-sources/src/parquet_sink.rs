//! The Parquet sink: scored rows as a Parquet file (`row` u64, `score` f64, `threshold` f64, `anomaly`
//! bool, then `label` f64 and `key` f64 when the run has them), Snappy-compressed.
//!
//! A Parquet file is only readable once its footer is written, so a file being written when the process
//! is killed cannot be continued. The sink therefore writes its rows as parts, complete Parquet files in
//! `PATH.parts/`: each checkpoint ([`Sink::sync`]) closes the current part, fsyncs it and the directory,
//! and records the rows written. A resumed run keeps the finished parts, in order, that hold the recorded
//! rows, deletes every part after them (the one being written at the kill included) and goes on with the
//! next, so no row is lost or repeated. When the run completes, the parts are joined into `PATH` (written
//! to a temporary file, fsynced, renamed; one part is simply moved) and the directory is removed; a kill
//! at any step of that is sorted out by the next open, and resuming a completed run (a periodic job)
//! takes the joined file as its first part. A run that stops early (a signal, a limit)
//! keeps its parts for the resume. The result has the same rows, in the same order, as an uninterrupted
//! run; only how they are split into row groups may differ.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field};
use onad_core::{Scored, Sink, SinkError, SinkLayout, SinkPosition};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Writes scored rows to a Parquet file; see the module docs for how it survives a crash.
pub struct ParquetSink {
    path: PathBuf,
    parts_dir: PathBuf,
    /// Where the parts directory goes while the parts are joined (see [`ParquetSink::recover`]).
    old_dir: PathBuf,
    schema: Option<arrow_schema::SchemaRef>,
    layout: SinkLayout,
    writer: Option<ArrowWriter<File>>,
    /// Finished parts.
    parts: u64,
    /// Rows written in all (finished parts and the current one).
    rows: u64,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("path", &self.path)
            .field("parts", &self.parts)
            .field("rows", &self.rows)
            .finish()
    }
}

fn io_err(target: &Path, error: std::io::Error) -> SinkError {
    SinkError::io(target.display().to_string(), error)
}

fn external(target: &Path, error: impl std::error::Error + Send + Sync + 'static) -> SinkError {
    SinkError::External { connector: "parquet", target: target.display().to_string(), error: Box::new(error) }
}

fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err(dir, e))
}

impl ParquetSink {
    /// A sink that will write `path` (nothing is touched until the run opens it).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut parts = path.clone().into_os_string();
        parts.push(".parts");
        let mut old = parts.clone();
        old.push(".done");
        ParquetSink {
            path,
            parts_dir: PathBuf::from(parts),
            old_dir: PathBuf::from(old),
            schema: None,
            layout: SinkLayout::default(),
            writer: None,
            parts: 0,
            rows: 0,
        }
    }

    fn part_path(&self, n: u64) -> PathBuf {
        self.parts_dir.join(format!("part-{n:06}.parquet"))
    }

    fn schema(&self) -> Result<arrow_schema::SchemaRef, SinkError> {
        self.schema.clone().ok_or_else(|| io_err(&self.path, std::io::Error::other("written before it was opened")))
    }

    fn current(&mut self) -> Result<&mut ArrowWriter<File>, SinkError> {
        if self.writer.is_none() {
            let path = self.part_path(self.parts + 1);
            let file = File::create(&path).map_err(|e| io_err(&path, e))?;
            let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
            let writer = ArrowWriter::try_new(file, self.schema()?, Some(props)).map_err(|e| external(&path, e))?;
            self.writer = Some(writer);
        }
        Ok(self.writer.as_mut().expect("set above"))
    }

    /// Closes the current part (footer, fsync) and counts it.
    fn close_part(&mut self) -> Result<(), SinkError> {
        if let Some(writer) = self.writer.take() {
            let path = self.part_path(self.parts + 1);
            let file = writer.into_inner().map_err(|e| external(&path, e))?;
            file.sync_all().map_err(|e| io_err(&path, e))?;
            self.parts += 1;
            sync_dir(&self.parts_dir)?;
        }
        Ok(())
    }

    /// Joins the parts into the final file. Every step leaves a state [`ParquetSink::recover`] sorts out:
    /// the parts directory is renamed away only once the final file is complete, and removed after.
    fn assemble(&mut self) -> Result<(), SinkError> {
        self.close_part()?;
        let parent = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if self.parts == 1 {
            // One part is the file: move the directory away, then the part out of it.
            fs::rename(&self.parts_dir, &self.old_dir).map_err(|e| io_err(&self.parts_dir, e))?;
            sync_dir(parent)?;
            let only = self.old_dir.join(format!("part-{:06}.parquet", 1));
            fs::rename(&only, &self.path).map_err(|e| io_err(&self.path, e))?;
        } else {
            let mut tmp = self.path.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            let file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
            let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
            let mut out = ArrowWriter::try_new(file, self.schema()?, Some(props)).map_err(|e| external(&tmp, e))?;
            for n in 1..=self.parts {
                let path = self.part_path(n);
                let f = File::open(&path).map_err(|e| io_err(&path, e))?;
                let reader = ParquetRecordBatchReaderBuilder::try_new(f)
                    .and_then(|b| b.build())
                    .map_err(|e| external(&path, e))?;
                for batch in reader {
                    out.write(&batch.map_err(|e| external(&path, e))?).map_err(|e| external(&tmp, e))?;
                }
            }
            let file = out.into_inner().map_err(|e| external(&tmp, e))?;
            file.sync_all().map_err(|e| io_err(&tmp, e))?;
            fs::rename(&tmp, &self.path).map_err(|e| io_err(&self.path, e))?;
            sync_dir(parent)?;
            fs::rename(&self.parts_dir, &self.old_dir).map_err(|e| io_err(&self.parts_dir, e))?;
        }
        sync_dir(parent)?;
        fs::remove_dir_all(&self.old_dir).map_err(|e| io_err(&self.old_dir, e))
    }

    /// Puts things back after a kill during [`ParquetSink::assemble`]: a moved-away parts directory
    /// without a final file goes back (the kill came before the file was complete); with the final file
    /// it is removed (the kill came after).
    fn recover(&self) -> Result<(), SinkError> {
        if !self.old_dir.exists() {
            return Ok(());
        }
        if self.path.is_file() && !self.parts_dir.exists() {
            fs::remove_dir_all(&self.old_dir).map_err(|e| io_err(&self.old_dir, e))
        } else {
            fs::rename(&self.old_dir, &self.parts_dir).map_err(|e| io_err(&self.old_dir, e))
        }
    }

    /// Rows in a finished part (from its footer); `None` when it has no valid footer.
    fn part_rows(path: &Path) -> Option<u64> {
        let f = File::open(path).ok()?;
        let rows = ParquetRecordBatchReaderBuilder::try_new(f).ok()?.metadata().file_metadata().num_rows();
        u64::try_from(rows).ok()
    }
}

impl Sink for ParquetSink {
    fn open(&mut self, layout: &SinkLayout, resume: Option<&SinkPosition>) -> Result<(), SinkError> {
        let mut fields = vec![
            Field::new("row", DataType::UInt64, false),
            Field::new("score", DataType::Float64, false),
            Field::new("threshold", DataType::Float64, false),
            Field::new("anomaly", DataType::Boolean, false),
        ];
        if layout.labels {
            fields.push(Field::new("label", DataType::Float64, false));
        }
        if layout.key.is_some() {
            fields.push(Field::new("key", DataType::Float64, false));
        }
        // Explanation values may not exist yet (NaN is written as null).
        for name in &layout.explanations {
            fields.push(Field::new(name, DataType::Float64, true));
        }
        self.schema = Some(Arc::new(arrow_schema::Schema::new(fields)));
        self.layout = layout.clone();
        let resume_err = |message: String| SinkError::Resume { target: self.path.display().to_string(), message };
        match resume {
            None | Some(SinkPosition::Unrecorded) => {
                for dir in [&self.parts_dir, &self.old_dir] {
                    if dir.exists() {
                        fs::remove_dir_all(dir).map_err(|e| io_err(dir, e))?;
                    }
                }
                fs::create_dir_all(&self.parts_dir).map_err(|e| io_err(&self.parts_dir, e))?;
            }
            Some(SinkPosition::Rows { rows, .. }) => {
                self.recover()?;
                if !self.parts_dir.exists() && self.path.is_file() {
                    // A completed run joined its parts: the file becomes the first part.
                    fs::create_dir_all(&self.parts_dir).map_err(|e| io_err(&self.parts_dir, e))?;
                    fs::rename(&self.path, self.part_path(1)).map_err(|e| io_err(&self.path, e))?;
                    sync_dir(&self.parts_dir)?;
                }
                // Finished parts in order until they hold the checkpoint's rows; parts after them were
                // written after the checkpoint (the last perhaps without its footer) and are dropped.
                let (mut sum, mut n) = (0u64, 0u64);
                while sum < *rows {
                    n += 1;
                    let part = self.part_path(n);
                    let found = Self::part_rows(&part).ok_or_else(|| {
                        resume_err(format!(
                            "the checkpoint covers {rows} rows, but the parts in {} hold {sum} before part {n}, \
                             which is missing or damaged",
                            self.parts_dir.display()
                        ))
                    })?;
                    sum += found;
                }
                if sum != *rows {
                    return Err(resume_err(format!(
                        "the checkpoint covers {rows} rows, but the first {n} parts in {} hold {sum}",
                        self.parts_dir.display()
                    )));
                }
                let mut next = n + 1;
                while self.part_path(next).exists() {
                    fs::remove_file(self.part_path(next)).map_err(|e| io_err(&self.part_path(next), e))?;
                    next += 1;
                }
                (self.rows, self.parts) = (*rows, n);
            }
            Some(other) => return Err(resume_err(format!("the checkpoint recorded {other}, not rows and parts"))),
        }
        Ok(())
    }

    fn write(&mut self, scored: &Scored<'_>) -> Result<(), SinkError> {
        if scored.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(scored.row_ids().to_vec())),
            Arc::new(Float64Array::from(scored.scores.to_vec())),
            Arc::new(Float64Array::from(scored.thresholds.to_vec())),
            Arc::new(BooleanArray::from(scored.flags.to_vec())),
        ];
        if self.layout.labels {
            let labels = scored.labels().map_or_else(|| vec![f64::NAN; scored.len()], <[f64]>::to_vec);
            columns.push(Arc::new(Float64Array::from(labels)));
        }
        if self.layout.key.is_some() {
            let keys = scored.keys.map_or_else(|| vec![f64::NAN; scored.len()], <[f64]>::to_vec);
            columns.push(Arc::new(Float64Array::from(keys)));
        }
        let width = self.layout.explanations.len();
        for j in 0..width {
            let values: Float64Array = (0..scored.len())
                .map(|i| scored.explanation(i, width).get(j).copied().filter(|v| !v.is_nan()))
                .collect();
            columns.push(Arc::new(values));
        }
        let batch = RecordBatch::try_new(self.schema()?, columns).map_err(|e| external(&self.path, e))?;
        let path = self.path.clone();
        self.current()?.write(&batch).map_err(|e| external(&path, e))?;
        self.rows += scored.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        self.close_part()?;
        Ok(SinkPosition::Rows { rows: self.rows, parts: self.parts })
    }

    fn finish(&mut self, completed: bool) -> Result<(), SinkError> {
        if !completed {
            return self.close_part();
        }
        if self.parts == 0 && self.writer.is_none() {
            // No row at all: an empty file with the schema.
            self.current()?;
        }
        self.assemble()
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
