//! Parquet source (the Rust form of Python onad's `ParquetStreamer`) and a Parquet writer for scores and
//! converted data sets. Reads one row group at a time through arrow, so memory does not grow with the file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal128Type, Decimal256Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow_schema::{DataType, Field};
use bytes::Bytes;
use onad_core::{BadRecord, BadRowPolicy, Batch, Position, Schema, SchemaRef, SkipCounts, Source, SourceError};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::options::{Role, SourceOptions};

/// Where the bytes come from; kept so that `seek` can reopen.
#[derive(Debug, Clone)]
enum Input {
    File(PathBuf),
    Memory(Bytes),
}

/// Streams a Parquet file as batches: every column but the label is a feature. Integer, float, boolean
/// and decimal columns become `f64`; nulls become NaN (missing). Any other column type is an error at
/// open time naming the column. Rows are read in batches of `batch_size` within each row group. A row
/// whose features are all null (or NaN) is a bad row `empty_row`, skipped and counted or reported as an
/// error naming the file and row, as the [`BadRowPolicy`] says; the file has no other kind of bad row.
pub struct ParquetSource {
    name: String,
    input: Input,
    options: SourceOptions,
    reader: ParquetRecordBatchReader,
    schema: SchemaRef,
    /// Per feature: its column within the projected arrow batches, and whether it is an id column.
    feature_cols: Vec<(usize, bool)>,
    /// The label's column within the projected arrow batches.
    label_col: Option<usize>,
    next_row: u64,
    total_rows: u64,
    skipped: SkipCounts,
    /// An empty row stopped the source under [`BadRowPolicy::Fail`].
    failed: bool,
}

impl std::fmt::Debug for ParquetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSource")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("next_row", &self.next_row)
            .field("total_rows", &self.total_rows)
            .finish_non_exhaustive()
    }
}

fn external(name: &str, e: impl std::error::Error + Send + Sync + 'static) -> SourceError {
    SourceError::External { connector: "parquet", source_name: name.to_owned(), error: Box::new(e) }
}

fn numeric(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Boolean
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _)
            | DataType::Null
    )
}

impl ParquetSource {
    /// Opens a Parquet file.
    pub fn open(path: impl AsRef<Path>, options: SourceOptions) -> Result<Self, SourceError> {
        let path = path.as_ref().to_path_buf();
        Self::build(path.display().to_string(), Input::File(path), options, 0)
    }

    /// Reads Parquet bytes held in memory (for example a data set embedded in a binary).
    pub fn from_bytes(name: impl Into<String>, bytes: Bytes, options: SourceOptions) -> Result<Self, SourceError> {
        Self::build(name.into(), Input::Memory(bytes), options, 0)
    }

    /// Reads Parquet bytes that live for the whole program (a file embedded with `include_bytes!`).
    pub fn from_static(
        name: impl Into<String>,
        bytes: &'static [u8],
        options: SourceOptions,
    ) -> Result<Self, SourceError> {
        Self::from_bytes(name, Bytes::from_static(bytes), options)
    }

    /// Total rows in the file (from its metadata).
    pub fn total_rows(&self) -> u64 {
        self.total_rows
    }

    fn build(name: String, input: Input, options: SourceOptions, offset: u64) -> Result<Self, SourceError> {
        let builder = match &input {
            Input::File(path) => {
                let file = File::open(path).map_err(|error| SourceError::Io { source_name: name.clone(), error })?;
                ParquetRecordBatchReaderBuilder::try_new(file).map(Builder::File)
            }
            Input::Memory(bytes) => ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map(Builder::Memory),
        }
        .map_err(|e| external(&name, e))?;
        let arrow_schema = builder.schema().clone();
        let names: Vec<String> = arrow_schema.fields().iter().map(|f| f.name().clone()).collect();
        let roles = options
            .roles(&names, |i| numeric(arrow_schema.field(i).data_type()))
            .map_err(|message| SourceError::Schema { source_name: name.clone(), message })?;
        let total_rows = builder.total_rows();
        for (field, role) in arrow_schema.fields().iter().zip(&roles) {
            if *role == Role::Id && !id_type(field.data_type()) {
                return Err(SourceError::Schema {
                    source_name: name.clone(),
                    message: format!(
                        "id column '{}' has type {}; ids are read from strings, binary values, integers, \
                         floats or booleans",
                        field.name(),
                        field.data_type()
                    ),
                });
            }
            if matches!(*role, Role::Feature | Role::Label) && !numeric(field.data_type()) {
                let role = if *role == Role::Label { "label column" } else { "column" };
                return Err(SourceError::Schema {
                    source_name: name.clone(),
                    message: format!(
                        "{role} '{}' has type {}, which cannot be read as a number (leave it out with exclude, or \
                         exclude every non-numeric column)",
                        field.name(),
                        field.data_type()
                    ),
                });
            }
        }
        // Only the columns read are decoded: the others are projected away.
        let kept: Vec<usize> = (0..names.len()).filter(|i| roles[*i] != Role::Skip).collect();
        let feature_names = kept.iter().filter(|i| roles[**i].is_feature()).map(|i| names[*i].clone());
        let schema = Schema::new(feature_names)
            .map(Arc::new)
            .map_err(|e| SourceError::Schema { source_name: name.clone(), message: e.to_string() })?;
        // Positions within the projected batches, which hold the kept columns in file order.
        let feature_cols =
            (0..kept.len()).filter(|j| roles[kept[*j]].is_feature()).map(|j| (j, roles[kept[j]] == Role::Id)).collect();
        let label = (0..kept.len()).find(|j| roles[kept[*j]] == Role::Label);
        let builder = builder.project(&kept);
        let batch_size = options.batch_size.max(1);
        let reader = builder.finish(batch_size, offset).map_err(|e| external(&name, e))?;
        Ok(ParquetSource {
            name,
            input,
            options,
            reader,
            schema,
            feature_cols,
            label_col: label,
            next_row: offset,
            total_rows,
            skipped: SkipCounts::default(),
            failed: false,
        })
    }

    /// Converts one arrow batch, whose first row has the id `first`, under the empty-row rule; `None` when
    /// every row was empty and skipped.
    fn convert(&mut self, batch: &RecordBatch, first: u64) -> Result<Option<Batch>, SourceError> {
        let rows = batch.num_rows();
        let d = self.feature_cols.len();
        let mut values = vec![0.0; rows * d];
        for (j, &(c, id)) in self.feature_cols.iter().enumerate() {
            let write = if id { write_id_column } else { write_column };
            write(batch.column(c), &mut values[j..], d).map_err(|message| SourceError::Schema {
                source_name: self.name.clone(),
                message: format!("column '{}': {message}", self.schema.names()[j]),
            })?;
        }
        let labels = match self.label_col {
            None => None,
            Some(c) => {
                let mut l = vec![0.0; rows];
                write_column(batch.column(c), &mut l, 1).map_err(|message| SourceError::Schema {
                    source_name: self.name.clone(),
                    message: format!("label column: {message}"),
                })?;
                Some(l)
            }
        };
        let empty = |i: usize| crate::options::empty_row(&values[i * d..(i + 1) * d]);
        let batch = if (0..rows).all(|i| empty(i).is_none()) {
            Batch::from_rows(self.schema.clone(), values, labels, first)
        } else {
            let mut kept = Vec::with_capacity(values.len());
            let mut kept_labels = labels.as_ref().map(|_| Vec::with_capacity(rows));
            let mut row_ids = Vec::with_capacity(rows);
            for i in 0..rows {
                if let Some(detail) = empty(i) {
                    match self.options.bad_rows {
                        BadRowPolicy::Skip => self.skipped.add(crate::options::EMPTY_ROW),
                        // Its features are all missing already: it stays as it is, label too, counted.
                        BadRowPolicy::Missing => self.skipped.add(crate::options::EMPTY_ROW),
                        BadRowPolicy::Fail => {
                            self.failed = true;
                            return Err(SourceError::BadRecord(BadRecord {
                                source: self.name.clone(),
                                row: first + i as u64,
                                column: None,
                                reason: crate::options::EMPTY_ROW,
                                detail,
                            }));
                        }
                    }
                    if self.options.bad_rows == BadRowPolicy::Skip {
                        continue;
                    }
                }
                kept.extend_from_slice(&values[i * d..(i + 1) * d]);
                if let (Some(out), Some(l)) = (kept_labels.as_mut(), labels.as_ref()) {
                    out.push(l[i]);
                }
                row_ids.push(first + i as u64);
            }
            if row_ids.is_empty() {
                return Ok(None);
            }
            Batch::try_new(self.schema.clone(), kept, kept_labels, row_ids)
        };
        batch.map(Some).map_err(|e| SourceError::Schema { source_name: self.name.clone(), message: e.to_string() })
    }
}

enum Builder {
    File(ParquetRecordBatchReaderBuilder<File>),
    Memory(ParquetRecordBatchReaderBuilder<Bytes>),
}

impl Builder {
    fn schema(&self) -> &arrow_schema::SchemaRef {
        match self {
            Builder::File(b) => b.schema(),
            Builder::Memory(b) => b.schema(),
        }
    }

    fn total_rows(&self) -> u64 {
        let rows = match self {
            Builder::File(b) => b.metadata().file_metadata().num_rows(),
            Builder::Memory(b) => b.metadata().file_metadata().num_rows(),
        };
        u64::try_from(rows).unwrap_or(0)
    }

    /// Reads only the top-level columns `kept` (file order).
    fn project(self, kept: &[usize]) -> Builder {
        match self {
            Builder::File(b) => {
                let mask = ProjectionMask::roots(b.parquet_schema(), kept.iter().copied());
                Builder::File(b.with_projection(mask))
            }
            Builder::Memory(b) => {
                let mask = ProjectionMask::roots(b.parquet_schema(), kept.iter().copied());
                Builder::Memory(b.with_projection(mask))
            }
        }
    }

    fn finish(self, batch_size: usize, offset: u64) -> parquet::errors::Result<ParquetRecordBatchReader> {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        match self {
            Builder::File(b) => b.with_batch_size(batch_size).with_offset(offset).build(),
            Builder::Memory(b) => b.with_batch_size(batch_size).with_offset(offset).build(),
        }
    }
}

/// Whether a column of this type can be read as ids.
fn id_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::Boolean
            | DataType::Null
    ) || t.is_integer()
        || t.is_floating()
}

/// Writes an arrow column as id values ([`onad_core::id_value`] of each value's text, numbers by their
/// decimal text) into `out[0], out[stride], ...`; nulls become NaN.
fn write_id_column(array: &ArrayRef, out: &mut [f64], stride: usize) -> Result<(), String> {
    fn put<T>(out: &mut [f64], stride: usize, values: impl Iterator<Item = Option<T>>, f: impl Fn(T) -> f64) {
        for (i, v) in values.enumerate() {
            out[i * stride] = v.map_or(f64::NAN, &f);
        }
    }
    let text = |v: &[u8]| onad_core::id_value(v);
    match array.data_type() {
        DataType::Utf8 => put(out, stride, array.as_string::<i32>().iter(), |v| text(v.as_bytes())),
        DataType::LargeUtf8 => put(out, stride, array.as_string::<i64>().iter(), |v| text(v.as_bytes())),
        DataType::Utf8View => put(out, stride, array.as_string_view().iter(), |v| text(v.as_bytes())),
        DataType::Binary => put(out, stride, array.as_binary::<i32>().iter(), text),
        DataType::LargeBinary => put(out, stride, array.as_binary::<i64>().iter(), text),
        DataType::BinaryView => put(out, stride, array.as_binary_view().iter(), text),
        DataType::Boolean => put(out, stride, array.as_boolean().iter(), onad_core::id_value_of),
        DataType::Int8 => put(out, stride, array.as_primitive::<Int8Type>().iter(), onad_core::id_value_of),
        DataType::Int16 => put(out, stride, array.as_primitive::<Int16Type>().iter(), onad_core::id_value_of),
        DataType::Int32 => put(out, stride, array.as_primitive::<Int32Type>().iter(), onad_core::id_value_of),
        DataType::Int64 => put(out, stride, array.as_primitive::<Int64Type>().iter(), onad_core::id_value_of),
        DataType::UInt8 => put(out, stride, array.as_primitive::<UInt8Type>().iter(), onad_core::id_value_of),
        DataType::UInt16 => put(out, stride, array.as_primitive::<UInt16Type>().iter(), onad_core::id_value_of),
        DataType::UInt32 => put(out, stride, array.as_primitive::<UInt32Type>().iter(), onad_core::id_value_of),
        DataType::UInt64 => put(out, stride, array.as_primitive::<UInt64Type>().iter(), onad_core::id_value_of),
        DataType::Float16 => put(out, stride, array.as_primitive::<Float16Type>().iter(), onad_core::id_value_of),
        DataType::Float32 => put(out, stride, array.as_primitive::<Float32Type>().iter(), onad_core::id_value_of),
        DataType::Float64 => put(out, stride, array.as_primitive::<Float64Type>().iter(), onad_core::id_value_of),
        DataType::Null => put(out, stride, std::iter::repeat_n(None::<u8>, array.len()), onad_core::id_value_of),
        other => return Err(format!("type {other} cannot be read as an id")),
    }
    Ok(())
}

/// Writes an arrow column as f64 into `out[0], out[stride], out[2*stride], ...`; nulls become NaN.
fn write_column(array: &ArrayRef, out: &mut [f64], stride: usize) -> Result<(), String> {
    fn put<T>(
        array: &dyn Array,
        out: &mut [f64],
        stride: usize,
        values: impl Iterator<Item = Option<T>>,
        f: impl Fn(T) -> f64,
    ) {
        debug_assert!(array.len() <= out.len().div_ceil(stride.max(1)));
        for (i, v) in values.enumerate() {
            out[i * stride] = v.map_or(f64::NAN, &f);
        }
    }
    let a = array.as_ref();
    match array.data_type() {
        DataType::Float64 => {
            let p = array.as_primitive::<Float64Type>();
            if p.null_count() == 0 {
                for (i, v) in p.values().iter().enumerate() {
                    out[i * stride] = *v;
                }
            } else {
                put(a, out, stride, p.iter(), |v| v);
            }
        }
        DataType::Float32 => put(a, out, stride, array.as_primitive::<Float32Type>().iter(), f64::from),
        DataType::Float16 => put(a, out, stride, array.as_primitive::<Float16Type>().iter(), f64::from),
        DataType::Int8 => put(a, out, stride, array.as_primitive::<Int8Type>().iter(), f64::from),
        DataType::Int16 => put(a, out, stride, array.as_primitive::<Int16Type>().iter(), f64::from),
        DataType::Int32 => put(a, out, stride, array.as_primitive::<Int32Type>().iter(), f64::from),
        DataType::Int64 => put(a, out, stride, array.as_primitive::<Int64Type>().iter(), |v| v as f64),
        DataType::UInt8 => put(a, out, stride, array.as_primitive::<UInt8Type>().iter(), f64::from),
        DataType::UInt16 => put(a, out, stride, array.as_primitive::<UInt16Type>().iter(), f64::from),
        DataType::UInt32 => put(a, out, stride, array.as_primitive::<UInt32Type>().iter(), f64::from),
        DataType::UInt64 => put(a, out, stride, array.as_primitive::<UInt64Type>().iter(), |v| v as f64),
        DataType::Boolean => put(a, out, stride, array.as_boolean().iter(), |v| if v { 1.0 } else { 0.0 }),
        DataType::Decimal128(_, scale) => {
            let div = 10f64.powi(i32::from(*scale));
            put(a, out, stride, array.as_primitive::<Decimal128Type>().iter(), |v| v as f64 / div)
        }
        DataType::Decimal256(_, scale) => {
            let div = 10f64.powi(i32::from(*scale));
            put(a, out, stride, array.as_primitive::<Decimal256Type>().iter(), |v| {
                v.to_string().parse::<f64>().unwrap_or(f64::NAN) / div
            })
        }
        DataType::Null => put(a, out, stride, std::iter::repeat_n(None::<f64>, array.len()), |v| v),
        other => return Err(format!("type {other} cannot be read as a number")),
    }
    Ok(())
}

impl Iterator for ParquetSource {
    type Item = Result<Batch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            let batch = match self.reader.next()? {
                Ok(b) => b,
                Err(e) => return Some(Err(external(&self.name, e))),
            };
            let first = self.next_row;
            self.next_row += batch.num_rows() as u64;
            match self.convert(&batch, first) {
                Ok(None) => continue,
                Ok(Some(b)) => return Some(Ok(b)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Source for ParquetSource {
    fn fraction_done(&self) -> Option<f64> {
        (self.total_rows > 0).then(|| (self.next_row as f64 / self.total_rows as f64).min(1.0))
    }

    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn id_features(&self) -> Vec<usize> {
        self.feature_cols.iter().enumerate().filter(|(_, (_, id))| *id).map(|(j, _)| j).collect()
    }

    fn has_labels(&self) -> bool {
        self.label_col.is_some()
    }

    fn position(&self) -> Position {
        Position::Row(self.next_row)
    }

    fn skipped(&self) -> &SkipCounts {
        &self.skipped
    }

    /// Reopens the file positioned at the row (row groups before it are not decoded).
    fn seek(&mut self, position: &Position) -> Result<(), SourceError> {
        let row = crate::options::seek_row(position, &self.name, "a Parquet file")?;
        if row > self.total_rows {
            return Err(SourceError::Schema {
                source_name: self.name.clone(),
                message: format!("cannot resume at row {row}: the file has only {} rows", self.total_rows),
            });
        }
        let skipped = self.skipped.clone();
        *self = Self::build(self.name.clone(), self.input.clone(), self.options.clone(), row)?;
        self.skipped = skipped;
        Ok(())
    }
}

/// Writes batches (features, and the label as a last column when given) to a Snappy-compressed Parquet
/// file with `f64` columns.
pub struct ParquetWriter {
    writer: ArrowWriter<File>,
    arrow_schema: arrow_schema::SchemaRef,
    with_label: bool,
    path: String,
}

impl std::fmt::Debug for ParquetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetWriter").field("path", &self.path).finish_non_exhaustive()
    }
}

impl ParquetWriter {
    /// Creates the file. `label` names the label column, written last.
    pub fn create(path: impl AsRef<Path>, schema: &SchemaRef, label: Option<&str>) -> Result<Self, SourceError> {
        let name = path.as_ref().display().to_string();
        let mut fields: Vec<Field> = schema.names().iter().map(|n| Field::new(n, DataType::Float64, true)).collect();
        if let Some(l) = label {
            fields.push(Field::new(l, DataType::Float64, true));
        }
        let arrow_schema = Arc::new(arrow_schema::Schema::new(fields));
        let file = File::create(path.as_ref()).map_err(|error| SourceError::Io { source_name: name.clone(), error })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(16_384))
            .build();
        let writer = ArrowWriter::try_new(file, arrow_schema.clone(), Some(props)).map_err(|e| external(&name, e))?;
        Ok(ParquetWriter { writer, arrow_schema, with_label: label.is_some(), path: name })
    }

    /// Appends a batch; it must have the schema given at creation (and labels when a label was named).
    pub fn write(&mut self, batch: &Batch) -> Result<(), SourceError> {
        let d = batch.num_features();
        let mut columns: Vec<ArrayRef> =
            (0..d).map(|j| Arc::new(Float64Array::from_iter_values(batch.rows().map(|r| r[j]))) as ArrayRef).collect();
        if self.with_label {
            let labels = batch.labels().ok_or_else(|| SourceError::Schema {
                source_name: self.path.clone(),
                message: "a batch without labels was written to a file with a label column".into(),
            })?;
            columns.push(Arc::new(Float64Array::from(labels.to_vec())));
        }
        let rb = RecordBatch::try_new(self.arrow_schema.clone(), columns).map_err(|e| external(&self.path, e))?;
        self.writer.write(&rb).map_err(|e| external(&self.path, e))
    }

    /// Writes the footer and closes the file.
    pub fn finish(self) -> Result<(), SourceError> {
        self.writer.close().map(drop).map_err(|e| external(&self.path, e))
    }
}
