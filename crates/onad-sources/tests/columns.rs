//! Column selection in the text and SQL sources (`columns`, `exclude`, `NonNumericColumns`): CSV, JSON
//! Lines and SQLite read the same table with a text column and give the same rows; the text column is
//! rejected row by row by default and left out on request.
#![cfg(all(feature = "csv", feature = "jsonl", feature = "sqlite"))]

mod common;
use common::collect;

use onad_core::Source;
use onad_sources::{CsvOptions, CsvSource, JsonlOptions, JsonlSource, NonNumericColumns, SourceOptions, SqliteSource};

const ROWS: [(&str, f64, f64, u8); 4] =
    [("web-1", 0.5, 10.0, 0), ("web-2", 1.5, 20.0, 1), ("", 2.5, 30.0, 0), ("db", 3.5, 40.0, 0)];

struct Files {
    _dir: tempfile::TempDir,
    csv: std::path::PathBuf,
    jsonl: std::path::PathBuf,
    db: std::path::PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let (csv, jsonl, db) = (dir.path().join("t.csv"), dir.path().join("t.jsonl"), dir.path().join("t.db"));
    let mut c = String::from("host,cpu,mem,label\n");
    let mut j = String::new();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("CREATE TABLE t (host TEXT, cpu REAL, mem REAL, label INTEGER)", []).unwrap();
    for (h, cpu, mem, l) in ROWS {
        c.push_str(&format!("{h},{cpu},{mem},{l}\n"));
        // JSON: the host is a string, or an object (nested) for the third row.
        let host = if h.is_empty() { "{\"rack\": 3}".to_string() } else { format!("\"{h}\"") };
        j.push_str(&format!("{{\"host\": {host}, \"cpu\": {cpu}, \"mem\": {mem}, \"label\": {l}}}\n"));
        conn.execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4)", rusqlite::params![h, cpu, mem, l]).unwrap();
    }
    std::fs::write(&csv, c).unwrap();
    std::fs::write(&jsonl, j).unwrap();
    Files { _dir: dir, csv, jsonl, db }
}

fn open_all(f: &Files, base: SourceOptions) -> Vec<(&'static str, Box<dyn Source>)> {
    vec![
        ("csv", Box::new(CsvSource::open(&f.csv, CsvOptions { base: base.clone(), ..Default::default() }).unwrap())),
        (
            "jsonl",
            Box::new(JsonlSource::open(&f.jsonl, JsonlOptions { base: base.clone(), ..Default::default() }).unwrap()),
        ),
        ("sqlite", Box::new(SqliteSource::open(&f.db, "SELECT * FROM t", base).unwrap())),
    ]
}

#[test]
fn a_text_column_is_rejected_row_by_row_by_default() {
    let f = files();
    for (name, mut src) in open_all(&f, SourceOptions::default()) {
        assert_eq!(src.schema().names(), ["host", "cpu", "mem"], "{name}");
        let (v, _, ids) = collect(src.as_mut());
        // Only the CSV row with an empty host (missing = NaN) is a row; the others are non_numeric. In
        // SQLite '' is text, not NULL, and in JSON the third host is an object: every row is bad there.
        if name != "csv" {
            assert!(ids.is_empty(), "{name}: {ids:?}");
        } else {
            assert_eq!(ids, [2], "{name}");
            assert!(v[0].is_nan() && v[1..] == [2.5, 30.0], "{name}: {v:?}");
        }
        let expected = if name == "csv" { 3 } else { 4 };
        assert_eq!(src.skipped().get("non_numeric"), expected, "{name}");
    }
}

#[test]
fn excluded_and_auto_excluded_columns_are_not_read() {
    let f = files();
    let by_name = SourceOptions { exclude: vec!["host".into()], ..Default::default() };
    let auto = SourceOptions { non_numeric: NonNumericColumns::Exclude, ..Default::default() };
    let only_mem = SourceOptions { columns: Some(vec!["mem".into()]), ..Default::default() };
    for (options, names) in [(by_name, vec!["cpu", "mem"]), (auto, vec!["cpu", "mem"]), (only_mem, vec!["mem"])] {
        for (name, mut src) in open_all(&f, options.clone()) {
            assert_eq!(src.schema().names(), names, "{name} {options:?}");
            let (v, l, ids) = collect(src.as_mut());
            assert_eq!(ids, [0, 1, 2, 3], "{name}");
            assert_eq!(l, [0.0, 1.0, 0.0, 0.0], "{name}");
            let expect: Vec<f64> = if names.len() == 2 {
                ROWS.iter().flat_map(|r| [r.1, r.2]).collect()
            } else {
                ROWS.iter().map(|r| r.2).collect()
            };
            assert_eq!(v, expect, "{name}");
            assert_eq!(src.skipped().total(), 0, "{name}");
        }
    }
}

#[test]
fn unknown_column_names_are_errors_that_list_the_columns() {
    let f = files();
    let options = SourceOptions { exclude: vec!["hots".into()], ..Default::default() };
    let csv = CsvSource::open(&f.csv, CsvOptions { base: options.clone(), ..Default::default() }).unwrap_err();
    let jsonl = JsonlSource::open(&f.jsonl, JsonlOptions { base: options.clone(), ..Default::default() }).unwrap_err();
    let sqlite = SqliteSource::open(&f.db, "SELECT * FROM t", options).unwrap_err();
    for e in [csv.to_string(), jsonl.to_string(), sqlite.to_string()] {
        assert!(e.contains("column 'hots', which the input lacks (columns: host, cpu, mem, label)"), "{e}");
    }
}
