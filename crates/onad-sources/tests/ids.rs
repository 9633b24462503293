//! Id columns (`SourceOptions::ids`): CSV, JSON Lines, SQLite and Parquet read the same table of text and
//! integer ids and give the same rows, each id the `onad_core::id_value` of its text, integers past 2^53
//! included (no rounding through f64).
#![cfg(all(feature = "csv", feature = "jsonl", feature = "sqlite", feature = "parquet"))]

mod common;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use common::{collect, same};
use onad_core::{Source, id_value};
use onad_sources::{CsvOptions, CsvSource, JsonlOptions, JsonlSource, ParquetSource, SourceOptions, SqliteSource};

/// (source account, destination, amount, label): ids as text; the destination is a 64-bit integer whose
/// neighbours differ past f64's 53 bits of mantissa.
const ROWS: [(&str, i64, f64, u8); 4] = [
    ("alice", 9_007_199_254_740_993, 10.0, 0),
    ("bob", 9_007_199_254_740_992, 20.0, 1),
    ("alice", 9_007_199_254_740_993, 30.0, 0),
    ("10.0.0.1", -5, 40.0, 0),
];

struct Files {
    _dir: tempfile::TempDir,
    csv: std::path::PathBuf,
    jsonl: std::path::PathBuf,
    db: std::path::PathBuf,
    parquet: std::path::PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    let (csv, jsonl, db, parquet) = (path("t.csv"), path("t.jsonl"), path("t.db"), path("t.parquet"));
    let mut c = String::from("src,dst,amount,label\n");
    let mut j = String::new();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("CREATE TABLE t (src TEXT, dst INTEGER, amount REAL, label INTEGER)", []).unwrap();
    for (s, d, a, l) in ROWS {
        c.push_str(&format!("{s},{d},{a},{l}\n"));
        j.push_str(&format!("{{\"src\": \"{s}\", \"dst\": {d}, \"amount\": {a}, \"label\": {l}}}\n"));
        conn.execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4)", rusqlite::params![s, d, a, l]).unwrap();
    }
    std::fs::write(&csv, c).unwrap();
    std::fs::write(&jsonl, j).unwrap();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("src", Arc::new(StringArray::from(ROWS.iter().map(|r| r.0).collect::<Vec<_>>()))),
        ("dst", Arc::new(Int64Array::from(ROWS.iter().map(|r| r.1).collect::<Vec<_>>()))),
        ("amount", Arc::new(Float64Array::from(ROWS.iter().map(|r| r.2).collect::<Vec<_>>()))),
        ("label", Arc::new(Int64Array::from(ROWS.iter().map(|r| i64::from(r.3)).collect::<Vec<_>>()))),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&parquet).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    Files { _dir: dir, csv, jsonl, db, parquet }
}

/// A connector's source, or its error as text.
type Opened = Result<Box<dyn Source>, String>;

fn open_all(f: &Files, base: SourceOptions) -> Vec<(&'static str, Opened)> {
    fn boxed<S: Source + 'static, E: std::fmt::Display>(r: Result<S, E>) -> Opened {
        r.map(|s| Box::new(s) as Box<dyn Source>).map_err(|e| e.to_string())
    }
    vec![
        ("csv", boxed(CsvSource::open(&f.csv, CsvOptions { base: base.clone(), ..Default::default() }))),
        ("jsonl", boxed(JsonlSource::open(&f.jsonl, JsonlOptions { base: base.clone(), ..Default::default() }))),
        ("sqlite", boxed(SqliteSource::open(&f.db, "SELECT * FROM t", base.clone()))),
        ("parquet", boxed(ParquetSource::open(&f.parquet, base))),
    ]
}

#[test]
fn every_connector_reads_text_and_wide_integer_ids_alike() {
    let f = files();
    let options = SourceOptions { ids: vec!["src".into(), "dst".into()], ..Default::default() };
    let expect: Vec<f64> =
        ROWS.iter().flat_map(|(s, d, a, _)| [id_value(s.as_bytes()), id_value(d.to_string().as_bytes()), *a]).collect();
    // The two destinations one apart stay two ids, and the repeated pair is the same values.
    assert_ne!(expect[1], expect[4]);
    assert_eq!((expect[0], expect[1]), (expect[6], expect[7]));
    for (name, src) in open_all(&f, options) {
        let mut src = src.unwrap();
        assert_eq!(src.schema().names(), ["src", "dst", "amount"], "{name}");
        let (v, l, rows) = collect(src.as_mut());
        assert!(same(&v, &expect), "{name}: {v:?}");
        assert_eq!(l, [0.0, 1.0, 0.0, 0.0], "{name}");
        assert_eq!(rows, [0, 1, 2, 3], "{name}");
        assert_eq!(src.skipped().total(), 0, "{name}");
    }
}

#[test]
fn an_id_column_is_read_even_when_columns_does_not_list_it() {
    let f = files();
    let options = SourceOptions { ids: vec!["src".into()], columns: Some(vec!["amount".into()]), ..Default::default() };
    for (name, src) in open_all(&f, options) {
        let mut src = src.unwrap();
        assert_eq!(src.schema().names(), ["src", "amount"], "{name}");
        let (v, _, _) = collect(src.as_mut());
        assert_eq!(v[0], id_value(b"alice"), "{name}");
        assert_eq!(v[1], 10.0, "{name}");
    }
}

#[test]
fn misnamed_or_conflicting_id_columns_are_errors_that_say_so() {
    let f = files();
    let cases = [
        (
            SourceOptions { ids: vec!["scr".into()], ..Default::default() },
            "ids names column 'scr', which the input lacks",
        ),
        (SourceOptions { ids: vec!["label".into()], ..Default::default() }, "'label' is the label and cannot be an id"),
        (
            SourceOptions { ids: vec!["src".into()], exclude: vec!["src".into()], ..Default::default() },
            "'src' is both excluded and an id column",
        ),
    ];
    for (options, message) in cases {
        for (name, src) in open_all(&f, options.clone()) {
            let e = src.err().unwrap_or_else(|| panic!("{name}: {options:?} opened"));
            assert!(e.contains(message), "{name}: {e}");
        }
    }
}

#[test]
fn a_json_id_that_is_an_array_is_a_bad_row_named_by_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.jsonl");
    std::fs::write(&p, "{\"src\": \"a\", \"x\": 1}\n{\"src\": [1, 2], \"x\": 2}\n{\"src\": null, \"x\": 3}\n").unwrap();
    let base = SourceOptions { ids: vec!["src".into()], label: onad_sources::LabelColumn::None, ..Default::default() };
    let mut src = JsonlSource::open(&p, JsonlOptions { base, ..Default::default() }).unwrap();
    let (v, _, rows) = collect(&mut src);
    assert_eq!(rows, [0, 2]);
    assert!(v[0] == id_value(b"a") && v[1] == 1.0 && v[2].is_nan() && v[3] == 3.0, "{v:?}");
    assert_eq!(src.skipped().get("bad_id"), 1);
}
