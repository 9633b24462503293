//! The malformed-input matrix (T4 of the reliability design) for the file sources, in one place: every kind
//! of damage is injected a known number of times and the per-reason counts must equal the injected
//! counts; the fail policy stops at the first bad row with the row and column; nothing panics. Rows whose
//! features are all missing are bad rows `empty_row` in all three. (JSON Lines has its own exhaustive
//! reason test in jsonl.rs; Redis and Kafka in redis.rs and kafka.rs.)
#![cfg(all(feature = "csv", feature = "parquet", feature = "sqlite"))]

use std::sync::Arc;

use onad_core::{BadRowPolicy, Source, SourceError};
use onad_sources::{CsvOptions, CsvSource, LabelColumn, ParquetSource, SourceOptions, SqliteSource};

fn drain(src: &mut dyn Source) -> (Vec<f64>, Vec<u64>) {
    let (mut v, mut ids) = (vec![], vec![]);
    for b in &mut *src {
        let b = b.unwrap();
        v.extend_from_slice(b.values());
        ids.extend_from_slice(b.row_ids());
    }
    (v, ids)
}

fn csv(bytes: Vec<u8>, policy: BadRowPolicy) -> Result<CsvSource, SourceError> {
    let options = CsvOptions {
        base: SourceOptions { bad_rows: policy, batch_size: 3, ..Default::default() },
        max_line_bytes: 1 << 20,
        ..Default::default()
    };
    CsvSource::from_reader("m.csv", std::io::Cursor::new(bytes), options)
}

#[test]
fn csv_matrix_counts_every_injected_fault() {
    // A BOM, CRLF line ends, and per data row one case (good ones have a label 0).
    let mut f = b"\xEF\xBB\xBFa,b,label\r\n".to_vec();
    let rows: &[&[u8]] = &[
        b"1,2,0",         // 0 good
        b"NaN,inf,0",     // 1 good: NaN and +inf are values (models tolerate them)
        b"-inf,,0",       // 2 good: -inf, and an empty field is missing (NaN)
        b"1,2",           // 3 field_count (missing column)
        b"1,2,0,4",       // 4 field_count (extra column)
        b"1,abc,0",       // 5 non_numeric
        b"[1],2,0",       // 6 non_numeric (an array where a number belongs)
        b"{\"x\":1},2,0", // 7 non_numeric (an object; quotes inside a field are plain text)
        b"1,\xff\xfe,0",  // 8 invalid_utf8
        b"x,y,z,w",       // 9 field_count (a new header mid-stream: the schema changed)
        b"c,d,label",     // 10 non_numeric (a repeated header of the same width)
        b"3,4,1",         // 11 good
    ];
    for r in rows {
        f.extend_from_slice(r);
        f.extend_from_slice(b"\r\n");
    }
    let big = vec![b'9'; 10 << 20]; // 12 line_too_long: a 10 MB line
    f.extend_from_slice(&big);
    f.extend_from_slice(b",1,0\r\n5,6,0\r\n"); // 13 good
    let mut src = csv(f.clone(), BadRowPolicy::Skip).unwrap();
    assert_eq!(src.schema().names(), ["a", "b"]);
    let (v, ids) = drain(&mut src);
    assert_eq!(ids, [0, 1, 2, 11, 13]);
    assert_eq!(v.len(), 10);
    assert!(v[2].is_nan() && v[3] == f64::INFINITY && v[4] == f64::NEG_INFINITY && v[5].is_nan());
    let counts: Vec<(&str, u64)> = src.skipped().iter().collect();
    assert_eq!(
        counts,
        [("field_count", 3), ("invalid_utf8", 1), ("line_too_long", 1), ("non_numeric", 4)],
        "{counts:?}"
    );

    // Fail: the first bad row (3) stops the read with the file, row and reason.
    let mut src = csv(f, BadRowPolicy::Fail).unwrap();
    let err = src.find_map(Result::err).expect("an error");
    let SourceError::BadRecord(r) = &err else { panic!("{err}") };
    assert_eq!((r.row, r.reason, r.source.as_str()), (3, "field_count", "m.csv"));
}

/// Under the missing policy every source keeps each bad row's place: its row id, a NaN in every feature,
/// its label when one was read; the counts by reason are those of the skip policy.
#[test]
fn the_missing_policy_keeps_every_bad_rows_place_as_a_nan_row() {
    let text = b"a,b,label\n1,2,0\n1,abc,1\n,,1\n1,2\n3,4,0\n".to_vec();
    let mut src = csv(text, BadRowPolicy::Missing).unwrap();
    let (ids, v, counts) = skipped_rows(&mut src);
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert!(v[0] == 1.0 && v[2..8].iter().all(|x| x.is_nan()) && v[8] == 3.0, "{v:?}");
    assert_eq!(counts, [("empty_row".into(), 1), ("field_count".into(), 1), ("non_numeric".into(), 1)]);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (a REAL, b TEXT, label INTEGER);
         INSERT INTO t VALUES (1.0, '2', 0), (NULL, NULL, 1), (2.0, 'x', 0), (4.0, NULL, 0);",
    )
    .unwrap();
    let options = SourceOptions { bad_rows: BadRowPolicy::Missing, batch_size: 3, ..Default::default() };
    let mut src = SqliteSource::open(&db, "SELECT a, b, label FROM t ORDER BY rowid", options).unwrap();
    let mut labels = Vec::new();
    let mut ids = Vec::new();
    let mut v = Vec::new();
    for b in &mut src {
        let b = b.unwrap();
        labels.extend_from_slice(b.labels().unwrap());
        ids.extend_from_slice(b.row_ids());
        v.extend_from_slice(b.values());
    }
    assert_eq!(ids, [0, 1, 2, 3]);
    assert!(v[2..6].iter().all(|x| x.is_nan()) && v[6] == 4.0, "{v:?}");
    assert_eq!(labels[1], 1.0, "the empty row's label was read");
    assert_eq!(src.skipped().total(), 2);
}

#[test]
fn csv_empty_and_header_only_files() {
    let err = csv(Vec::new(), BadRowPolicy::Skip).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let mut src = csv(b"a,b,label\n".to_vec(), BadRowPolicy::Skip).unwrap();
    assert_eq!(src.schema().names(), ["a", "b"]);
    assert!(src.next().is_none());
    assert_eq!(src.skipped().total(), 0);
}

#[test]
fn parquet_values_nulls_empty_and_damaged_files() {
    use arrow_array::{ArrayRef, Float64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, a: Vec<Option<f64>>| {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, true),
            Field::new("label", DataType::Float64, true),
        ]));
        let label = Float64Array::from(vec![Some(0.0); a.len()]);
        let cols: Vec<ArrayRef> = vec![Arc::new(Float64Array::from(a)), Arc::new(label)];
        let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
        let path = dir.path().join(name);
        let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    };
    let p = write("v.parquet", vec![Some(f64::NAN), Some(f64::INFINITY), Some(f64::NEG_INFINITY), None, Some(1.5)]);
    let mut src = ParquetSource::open(&p, SourceOptions::default()).unwrap();
    let (v, ids) = drain(&mut src);
    // The NaN and the null are the only feature of their rows: empty rows, counted.
    assert_eq!(ids, [1, 2, 4]);
    assert_eq!(v, [f64::INFINITY, f64::NEG_INFINITY, 1.5]);
    assert_eq!(src.skipped().iter().collect::<Vec<_>>(), [("empty_row", 2)]);

    let empty = write("e.parquet", vec![]);
    let mut src = ParquetSource::open(&empty, SourceOptions::default()).unwrap();
    assert_eq!(src.total_rows(), 0);
    assert!(drain(&mut src).1.is_empty());

    // Truncated and non-Parquet files: a clear error naming the file, no panic.
    let bytes = std::fs::read(&p).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"a,b,label\n1,2,0\n").unwrap();
    for path in [cut, junk] {
        let err = ParquetSource::open(&path, SourceOptions::default()).unwrap_err().to_string();
        assert!(err.contains(path.to_str().unwrap()), "{err}");
    }
}

#[test]
fn sqlite_infinities_nulls_and_an_empty_result() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (a REAL, b, label INTEGER);
         INSERT INTO t VALUES (9e999, NULL, 0), (-9e999, 'x', 0), (1.0, X'00', 1), (2.0, '3.5', 0);",
    )
    .unwrap();
    let mut src = SqliteSource::open(&db, "SELECT a, b, label FROM t", SourceOptions::default()).unwrap();
    let (v, ids) = drain(&mut src);
    assert_eq!(ids, [0, 3]);
    assert!(v[0] == f64::INFINITY && v[1].is_nan() && v[2..] == [2.0, 3.5]);
    assert_eq!(src.skipped().iter().collect::<Vec<_>>(), [("non_numeric", 2)]);
    let mut none =
        SqliteSource::open(&db, "SELECT a, b, label FROM t WHERE a > 1e308 AND a < 0", SourceOptions::default())
            .unwrap();
    assert!(none.next().is_none());
}

/// Reads `src` to the end under Skip: (row ids, values, skip counts).
fn skipped_rows(src: &mut dyn Source) -> (Vec<u64>, Vec<f64>, Vec<(String, u64)>) {
    let (v, ids) = drain(src);
    (ids, v, src.skipped().iter().map(|(k, n)| (k.to_owned(), n)).collect())
}

/// The first error of `src` under Fail, which must be an empty row at `row`.
fn empty_row_error(src: &mut dyn Source, source: &str, row: u64) {
    let err = loop {
        match src.next() {
            Some(Err(e)) => break e,
            Some(Ok(_)) => {}
            None => panic!("{source}: no error"),
        }
    };
    let SourceError::BadRecord(r) = &err else { panic!("{err}") };
    assert_eq!((r.source.as_str(), r.row, r.reason, r.column.as_deref()), (source, row, "empty_row", None), "{err}");
    let text = err.to_string();
    assert!(text.starts_with(&format!("{source}: row {row}: the row is empty")), "{text}");
    assert!(src.next().is_none(), "the source stops after the error");
}

#[test]
fn rows_with_every_feature_missing_are_empty_rows_in_csv() {
    // Empty fields, spaces, NaN written out, and a row whose only value is its label: all empty rows.
    // A row with one feature present, or an infinity, is a row.
    let text = b"a,b,label\n1,2,0\n,,1\n , ,0\nNaN,nan,1\n,3,0\ninf,,1\n,,\n4,5,1\n".to_vec();
    let mut src = csv(text.clone(), BadRowPolicy::Skip).unwrap();
    let (ids, v, counts) = skipped_rows(&mut src);
    assert_eq!(ids, [0, 4, 5, 7]);
    assert_eq!(v.len(), 8);
    assert!(v[2].is_nan() && v[3] == 3.0 && v[4] == f64::INFINITY && v[5].is_nan());
    assert_eq!(counts, [("empty_row".to_owned(), 4)]);
    empty_row_error(&mut csv(text, BadRowPolicy::Fail).unwrap(), "m.csv", 1);

    // The rule applies to the features left after the column options: here `id` is left out, so a row
    // with only an id is empty, and one-feature rows count as well.
    let options = CsvOptions {
        base: SourceOptions { exclude: vec!["id".into()], label: LabelColumn::None, ..Default::default() },
        ..Default::default()
    };
    let text = "id,x\n7,1.5\n8,\n9,2\n";
    let mut src = CsvSource::from_reader("ids.csv", text.as_bytes(), options).unwrap();
    let (ids, v, counts) = skipped_rows(&mut src);
    assert_eq!((ids, v, counts), (vec![0, 2], vec![1.5, 2.0], vec![("empty_row".to_owned(), 1)]));
}

#[test]
fn rows_with_every_feature_missing_are_empty_rows_in_parquet() {
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Int64, true),
        Field::new("label", DataType::Float64, true),
    ]));
    // Rows 1 and 2 (a whole batch of two below) and row 5 are empty; row 3 has only its label missing.
    let a = Float64Array::from(vec![Some(1.0), None, Some(f64::NAN), Some(2.0), None, None, Some(3.0)]);
    let b = Int64Array::from(vec![Some(10), None, None, None, Some(40), None, Some(60)]);
    let label = Float64Array::from(vec![Some(0.0), Some(1.0), Some(0.0), None, Some(0.0), Some(1.0), Some(0.0)]);
    let cols: Vec<ArrayRef> = vec![Arc::new(a), Arc::new(b), Arc::new(label)];
    let path = dir.path().join("e.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    w.write(&RecordBatch::try_new(schema, cols).unwrap()).unwrap();
    w.close().unwrap();
    let options = |bad_rows| SourceOptions { bad_rows, batch_size: 2, ..Default::default() };

    let mut src = ParquetSource::open(&path, options(BadRowPolicy::Skip)).unwrap();
    let mut batches = Vec::new();
    for b in &mut src {
        let b = b.unwrap();
        assert!(!b.is_empty(), "a batch whose rows were all empty is not handed out");
        batches.push((b.row_ids().to_vec(), b.labels().unwrap().to_vec()));
    }
    assert_eq!(batches.iter().map(|(ids, _)| ids.clone()).collect::<Vec<_>>(), [vec![0], vec![3], vec![4], vec![6]]);
    assert!(batches[1].1[0].is_nan());
    assert_eq!(src.skipped().iter().collect::<Vec<_>>(), [("empty_row", 3)]);
    assert_eq!(src.position(), onad_core::Position::Row(7));
    // A resumed read keeps counting from where it was.
    src.seek(&onad_core::Position::Row(4)).unwrap();
    assert_eq!(drain(&mut src).1, [4, 6]);
    assert_eq!(src.skipped().get("empty_row"), 4);

    let name = path.display().to_string();
    empty_row_error(&mut ParquetSource::open(&path, options(BadRowPolicy::Fail)).unwrap(), &name, 1);

    // Missing: every row stays, with its label; the empty ones are counted.
    let mut src = ParquetSource::open(&path, options(BadRowPolicy::Missing)).unwrap();
    let mut labels = Vec::new();
    let (mut ids, mut v) = (Vec::new(), Vec::new());
    for b in &mut src {
        let b = b.unwrap();
        labels.extend_from_slice(b.labels().unwrap());
        ids.extend_from_slice(b.row_ids());
        v.extend_from_slice(b.values());
    }
    assert_eq!(ids, (0..7).collect::<Vec<u64>>());
    assert!(v[2].is_nan() && v[3].is_nan() && v[12] == 3.0, "{v:?}");
    assert_eq!((labels[1], labels[5]), (1.0, 1.0));
    assert_eq!(src.skipped().iter().collect::<Vec<_>>(), [("empty_row", 3)]);
}

#[test]
fn rows_with_every_feature_missing_are_empty_rows_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (a REAL, b TEXT, label INTEGER);
         INSERT INTO t VALUES (1.0, '2', 0), (NULL, NULL, 1), (NULL, ' 3 ', 0), (NULL, 'NaN', 1), (4.0, NULL, 0);",
    )
    .unwrap();
    let open = |bad_rows| {
        let options = SourceOptions { bad_rows, batch_size: 2, ..Default::default() };
        SqliteSource::open(&db, "SELECT a, b, label FROM t ORDER BY rowid", options).unwrap()
    };
    let (ids, v, counts) = skipped_rows(&mut open(BadRowPolicy::Skip));
    assert_eq!(ids, [0, 2, 4]);
    assert!(v[0] == 1.0 && v[1] == 2.0 && v[2].is_nan() && v[3] == 3.0 && v[4] == 4.0 && v[5].is_nan());
    assert_eq!(counts, [("empty_row".to_owned(), 2)]);
    empty_row_error(&mut open(BadRowPolicy::Fail), &db.display().to_string(), 1);
}
