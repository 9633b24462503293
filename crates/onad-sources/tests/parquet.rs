//! Parquet source: type coercion, nulls, label selection, row-group streaming, seeking, and agreement with
//! the CSV reader on the same data.
#![cfg(all(feature = "parquet", feature = "csv"))]

mod common;
use common::collect;

use std::fs::File;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Float32Array, Int64Array, RecordBatch, StringArray, UInt8Array,
};
use arrow_schema::{Field, Schema as ArrowSchema};
use onad_core::{Batch, Position, Schema, Source};
use onad_sources::{CsvOptions, CsvSource, LabelColumn, ParquetSource, ParquetWriter, SourceOptions};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

fn write(path: &std::path::Path, columns: Vec<(&str, ArrayRef)>, row_group: usize) {
    let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    let schema = Arc::new(ArrowSchema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(row_group)).build();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn coerces_numeric_types_and_nulls_to_f64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("types.parquet");
    write(
        &path,
        vec![
            ("i", Arc::new(Int64Array::from(vec![Some(1), None, Some(-3)])) as ArrayRef),
            ("f", Arc::new(Float32Array::from(vec![Some(0.5), Some(1.5), None]))),
            ("b", Arc::new(BooleanArray::from(vec![Some(true), Some(false), None]))),
            (
                "d",
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), None, Some(-5)]).with_precision_and_scale(10, 2).unwrap(),
                ),
            ),
            ("label", Arc::new(UInt8Array::from(vec![0, 1, 0]))),
        ],
        2,
    );
    let mut src = ParquetSource::open(&path, SourceOptions::default()).unwrap();
    assert_eq!(src.schema().names(), ["i", "f", "b", "d"]);
    assert_eq!(src.total_rows(), 3);
    let (v, l, ids) = collect(&mut src);
    let expect = [1.0, 0.5, 1.0, 123.45, f64::NAN, 1.5, 0.0, f64::NAN, -3.0, f64::NAN, f64::NAN, -0.05];
    assert_eq!(v.len(), expect.len());
    for (g, e) in v.iter().zip(expect) {
        assert!(g.to_bits() == e.to_bits() || (g - e).abs() < 1e-12, "{g} vs {e}");
    }
    assert_eq!(l, vec![0.0, 1.0, 0.0]);
    assert_eq!(ids, vec![0, 1, 2]);
    assert_eq!(src.position(), Position::Row(3));
}

#[test]
fn label_selection_and_schema_errors_name_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.parquet");
    write(
        &path,
        vec![("y", Arc::new(Int64Array::from(vec![1, 0])) as ArrayRef), ("x", Arc::new(Int64Array::from(vec![5, 6])))],
        10,
    );
    let named = SourceOptions { label: LabelColumn::Named("y".into()), ..Default::default() };
    let mut src = ParquetSource::open(&path, named).unwrap();
    assert_eq!(src.schema().names(), ["x"]);
    assert_eq!(collect(&mut src).1, vec![1.0, 0.0]);

    let missing = SourceOptions { label: LabelColumn::Named("class".into()), ..Default::default() };
    let err = ParquetSource::open(&path, missing).unwrap_err().to_string();
    assert!(err.contains("label column 'class' not found (columns: y, x)"), "{err}");

    let text = dir.path().join("text.parquet");
    write(
        &text,
        vec![
            ("host", Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef),
            ("label", Arc::new(Int64Array::from(vec![0, 1]))),
        ],
        10,
    );
    let err = ParquetSource::open(&text, SourceOptions::default()).unwrap_err().to_string();
    assert!(err.contains("text.parquet") && err.contains("column 'host' has type Utf8"), "{err}");

    let err = ParquetSource::open(dir.path().join("nope.parquet"), SourceOptions::default()).unwrap_err();
    assert!(err.to_string().contains("nope.parquet"), "{err}");
}

#[test]
fn writer_round_trip_equals_csv_reader_and_streams_by_row_group() {
    let mut csv = String::from("a,b,label\n");
    for i in 0..10_000 {
        csv.push_str(&format!("{},{},{}\n", i as f64 * 0.25, (i * 7 % 13) as f64 - 6.5, i % 17 == 0));
    }
    let options = SourceOptions { batch_size: 1000, ..Default::default() };
    let mut from_csv = CsvSource::from_reader(
        "mem.csv",
        std::io::Cursor::new(csv.into_bytes()),
        CsvOptions { base: options.clone(), ..Default::default() },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rt.parquet");
    let mut writer = ParquetWriter::create(&path, from_csv.schema(), Some("label")).unwrap();
    let mut expected: Vec<Batch> = Vec::new();
    for b in &mut from_csv {
        let b = b.unwrap();
        writer.write(&b).unwrap();
        expected.push(b);
    }
    writer.finish().unwrap();

    let mut src = ParquetSource::open(&path, options.clone()).unwrap();
    let (v, l, ids) = collect(&mut src);
    let ev: Vec<f64> = expected.iter().flat_map(|b| b.values().to_vec()).collect();
    let el: Vec<f64> = expected.iter().flat_map(|b| b.labels().unwrap().to_vec()).collect();
    assert_eq!(v, ev);
    assert_eq!(l, el);
    assert_eq!(ids, (0..10_000).collect::<Vec<u64>>());

    // Seeking reopens at a row, across row groups.
    let mut src = ParquetSource::open(&path, options).unwrap();
    src.next().unwrap().unwrap();
    src.seek(&Position::Row(9_990)).unwrap();
    let (v, _, ids) = collect(&mut src);
    assert_eq!(ids, (9_990..10_000).collect::<Vec<u64>>());
    assert_eq!(v, ev[9_990 * 2..]);
    let err = src.seek(&Position::Row(10_001)).unwrap_err().to_string();
    assert!(err.contains("only 10000 rows"), "{err}");
}

#[test]
fn no_label_means_every_column_is_a_feature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.parquet");
    let schema = Schema::shared(["p", "q"]).unwrap();
    let mut w = ParquetWriter::create(&path, &schema, None).unwrap();
    w.write(&Batch::from_rows(schema.clone(), vec![1.0, 2.0], None, 0).unwrap()).unwrap();
    w.finish().unwrap();
    let options = SourceOptions { label: LabelColumn::None, ..Default::default() };
    let mut src = ParquetSource::open(&path, options).unwrap();
    assert!(!src.has_labels());
    assert_eq!(collect(&mut src).0, vec![1.0, 2.0]);
}

#[test]
fn reads_snappy_zstd_gzip_and_uncompressed_files() {
    use parquet::basic::{Compression, GzipLevel, ZstdLevel};
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f64> = (0..5000).map(|i| (i as f64 * 0.37).sin()).collect();
    for (name, codec) in [
        ("snappy", Compression::SNAPPY),
        ("zstd", Compression::ZSTD(ZstdLevel::default())),
        ("gzip", Compression::GZIP(GzipLevel::default())),
        ("none", Compression::UNCOMPRESSED),
    ] {
        let path = dir.path().join(format!("{name}.parquet"));
        let schema = Arc::new(ArrowSchema::new(vec![Field::new("x", arrow_schema::DataType::Float64, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow_array::Float64Array::from(values.clone())) as ArrayRef],
        )
        .unwrap();
        let props = WriterProperties::builder().set_compression(codec).build();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let options = SourceOptions { label: LabelColumn::None, ..Default::default() };
        let mut src = ParquetSource::open(&path, options).unwrap();
        assert_eq!(collect(&mut src).0, values, "{name}");
    }
}

#[test]
fn columns_can_be_projected_excluded_or_left_out_when_not_numeric() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.parquet");
    write(
        &path,
        vec![
            ("host", Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef),
            ("cpu", Arc::new(Float32Array::from(vec![0.5, 1.5, 2.5]))),
            ("mem", Arc::new(Int64Array::from(vec![10, 20, 30]))),
            ("label", Arc::new(UInt8Array::from(vec![0, 1, 0]))),
        ],
        2,
    );
    // Rejecting (the default) names the string column and how to leave it out.
    let err = ParquetSource::open(&path, SourceOptions::default()).unwrap_err().to_string();
    assert!(err.contains("column 'host' has type Utf8") && err.contains("exclude"), "{err}");

    let excluded = SourceOptions { exclude: vec!["host".into()], ..Default::default() };
    let mut src = ParquetSource::open(&path, excluded).unwrap();
    assert_eq!(src.schema().names(), ["cpu", "mem"]);
    let (v, l, _) = collect(&mut src);
    assert_eq!((v, l), (vec![0.5, 10.0, 1.5, 20.0, 2.5, 30.0], vec![0.0, 1.0, 0.0]));

    let auto = SourceOptions { non_numeric: onad_sources::NonNumericColumns::Exclude, ..Default::default() };
    assert_eq!(ParquetSource::open(&path, auto).unwrap().schema().names(), ["cpu", "mem"]);

    // Projection: only `mem` (and the label) are decoded; seeking keeps the projection.
    let projected = SourceOptions { columns: Some(vec!["mem".into()]), ..Default::default() };
    let mut src = ParquetSource::open(&path, projected).unwrap();
    src.seek(&Position::Row(1)).unwrap();
    assert_eq!(src.schema().names(), ["mem"]);
    let (v, l, ids) = collect(&mut src);
    assert_eq!((v, l, ids), (vec![20.0, 30.0], vec![1.0, 0.0], vec![1, 2]));

    for (options, needle) in [
        (SourceOptions { exclude: vec!["disk".into()], ..Default::default() }, "column 'disk', which the input lacks"),
        (SourceOptions { columns: Some(vec!["host".into(), "x".into()]), ..Default::default() }, "column 'x'"),
        (SourceOptions { exclude: vec!["label".into()], ..Default::default() }, "is the label"),
        (
            SourceOptions { exclude: vec!["host".into(), "cpu".into(), "mem".into()], ..Default::default() },
            "no feature column is left",
        ),
    ] {
        let err = ParquetSource::open(&path, options).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
