//! SQLite source: type coercion, bad rows, the fail policy's message, batching, seeking, `open_url`, and the
//! same data set read as CSV, JSON Lines and SQLite giving identical batches.
#![cfg(feature = "sqlite")]

mod common;
use common::{collect, same};

use std::path::{Path, PathBuf};

use onad_core::{BadRowPolicy, Position, Source, SourceError};
use onad_sources::{LabelColumn, SourceOptions, SqliteSource, open, open_url};
use rusqlite::{Connection, params};

fn options(label: LabelColumn, bad_rows: BadRowPolicy, batch_size: usize) -> SourceOptions {
    SourceOptions { label, bad_rows, batch_size, ..Default::default() }
}

/// A database with table `t(id, a, b, label)` holding rows `(i, i, i / 4, i % 2)` for i in 0..n.
fn numbers_db(dir: &Path, n: i64) -> PathBuf {
    let path = dir.join("n.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b REAL, label INTEGER)").unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for i in 0..n {
        tx.execute("INSERT INTO t VALUES (?1, ?1, ?2, ?3)", params![i, i as f64 / 4.0, i % 2]).unwrap();
    }
    tx.commit().unwrap();
    path
}

#[test]
fn coerces_sqlite_types_and_names_columns_from_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("types.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE m (ts INTEGER, i INTEGER, r REAL, txt TEXT, anything, label INTEGER);
         INSERT INTO m VALUES (1, 7, 0.5, '1.25', NULL, 0);
         INSERT INTO m VALUES (2, NULL, -2.0, ' 3e2 ', 4, 1);
         INSERT INTO m VALUES (3, -9007199254740993, NULL, NULL, 2.5, NULL);",
    )
    .unwrap();
    drop(conn);
    let query = "SELECT i, r, txt AS t, anything, label FROM m ORDER BY ts;";
    let mut src = SqliteSource::open(&path, query, SourceOptions::default()).unwrap();
    assert_eq!(src.schema().names(), ["i", "r", "t", "anything"]);
    assert!(src.has_labels());
    assert_eq!(src.query(), "SELECT i, r, txt AS t, anything, label FROM m ORDER BY ts");
    let (v, l, ids) = collect(&mut src);
    let nan = f64::NAN;
    let expect = [7.0, 0.5, 1.25, nan, nan, -2.0, 300.0, 4.0, -9007199254740992.0, nan, nan, 2.5];
    assert!(same(&v, &expect), "{v:?}");
    assert!(same(&l, &[0.0, 1.0, nan]));
    assert_eq!(ids, vec![0, 1, 2]);
    assert_eq!(src.position(), Position::Row(3));
    assert!(src.next().is_none());

    let src = SqliteSource::open(
        &path,
        "SELECT label, i FROM m",
        options(LabelColumn::Named("label".into()), BadRowPolicy::Skip, 9),
    )
    .unwrap();
    assert_eq!(src.schema().names(), ["i"]);
    let src =
        SqliteSource::open(&path, "SELECT i, r FROM m", options(LabelColumn::None, BadRowPolicy::Skip, 9)).unwrap();
    assert!(!src.has_labels());
    assert_eq!(src.schema().names(), ["i", "r"]);
}

#[test]
fn non_numeric_text_and_blobs_are_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER, a, b, label)").unwrap();
    // 40 rows; 3 with text in `a`, 2 with a blob in `b`, 1 with text as the label, 1 with empty text.
    let bad_text = [3_i64, 17, 30];
    let bad_blob = [8_i64, 39];
    for i in 0..40_i64 {
        let a: rusqlite::types::Value =
            if bad_text.contains(&i) { "n/a".to_string().into() } else { (i as f64 * 1.5).into() };
        let b: rusqlite::types::Value = if bad_blob.contains(&i) { vec![1_u8, 2, 3].into() } else { i.into() };
        let label: rusqlite::types::Value = if i == 21 { "yes".to_string().into() } else { (i % 2).into() };
        conn.execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4)", params![i, a, b, label]).unwrap();
    }
    conn.execute("UPDATE t SET a = '' WHERE id = 25", []).unwrap();
    drop(conn);
    let mut src = SqliteSource::open(
        &path,
        "SELECT a, b, label FROM t ORDER BY id",
        options(LabelColumn::Last, BadRowPolicy::Skip, 4),
    )
    .unwrap();
    let (v, _, ids) = collect(&mut src);
    let bad: Vec<i64> = vec![3, 8, 17, 21, 25, 30, 39];
    let good: Vec<u64> = (0..40).filter(|i| !bad.contains(i)).map(|i| i as u64).collect();
    assert_eq!(ids, good);
    assert_eq!(v.len(), good.len() * 2);
    assert_eq!(src.skipped().get("non_numeric"), bad.len() as u64);
    assert_eq!(src.skipped().total(), bad.len() as u64);
    assert_eq!(src.position(), Position::Row(40));
}

#[test]
fn fail_policy_names_the_source_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (cpu REAL, mem, label INTEGER);
         INSERT INTO t VALUES (1, 2, 0), (1, 'high', 0), (1, 3, 0);",
    )
    .unwrap();
    drop(conn);
    let mut src =
        SqliteSource::open(&path, "SELECT * FROM t", options(LabelColumn::Last, BadRowPolicy::Fail, 100)).unwrap();
    let err = src.next().unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: row 1, column 'mem': cannot read 'high' as a number (non_numeric)", path.display())
    );
    assert!(matches!(err, SourceError::BadRecord(ref r) if r.row == 1 && r.column.as_deref() == Some("mem")));
    assert!(src.next().is_none());

    conn_exec(&path, "UPDATE t SET mem = x'00ff' WHERE mem = 'high'");
    let mut src =
        SqliteSource::open(&path, "SELECT * FROM t", options(LabelColumn::Last, BadRowPolicy::Fail, 100)).unwrap();
    let err = src.next().unwrap().unwrap_err().to_string();
    assert!(err.ends_with("row 1, column 'mem': cannot read a blob (2 bytes) as a number (non_numeric)"), "{err}");
}

fn conn_exec(path: &Path, sql: &str) {
    Connection::open(path).unwrap().execute_batch(sql).unwrap();
}

#[test]
fn batches_positions_and_seeking() {
    let dir = tempfile::tempdir().unwrap();
    let path = numbers_db(dir.path(), 1000);
    let query = "SELECT a, b, label FROM t ORDER BY id";
    let mut src = SqliteSource::open(&path, query, options(LabelColumn::Last, BadRowPolicy::Fail, 128)).unwrap();
    let sizes: Vec<usize> = src.by_ref().map(|b| b.unwrap().num_rows()).collect();
    assert_eq!(sizes, [vec![128; 7], vec![104]].concat());
    assert_eq!(src.position(), Position::Row(1000));

    let mut src = SqliteSource::open(&path, query, options(LabelColumn::Last, BadRowPolicy::Fail, 100)).unwrap();
    let first = src.next().unwrap().unwrap();
    assert_eq!(first.row_ids()[99], 99);
    let at = src.position();
    assert_eq!(at, Position::Row(100));
    // Resume in a new source.
    let mut resumed = SqliteSource::open(&path, query, options(LabelColumn::Last, BadRowPolicy::Fail, 100)).unwrap();
    resumed.seek(&at).unwrap();
    assert_eq!(resumed.position(), Position::Row(100));
    let next = resumed.next().unwrap().unwrap();
    assert_eq!(next.row_ids()[0], 100);
    assert_eq!(next.row(0), &[100.0, 25.0]);
    // Seek forward and back in the same source.
    src.seek(&Position::Row(990)).unwrap();
    let (v, _, ids) = collect(&mut src);
    assert_eq!(ids, (990..1000).collect::<Vec<u64>>());
    assert_eq!(v[0], 990.0);
    src.seek(&Position::Start).unwrap();
    assert_eq!(src.next().unwrap().unwrap().row_ids()[0], 0);
    src.seek(&Position::Row(1000)).unwrap();
    assert!(src.next().is_none());
    let err = src.seek(&Position::Row(1001)).unwrap_err().to_string();
    assert!(err.contains("cannot resume at row 1001: the query returns only 1000 rows"), "{err}");
    // A failed seek leaves the source where it was.
    assert_eq!(src.position(), Position::Row(1000));
}

#[test]
fn dropping_a_source_mid_stream_stops_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = numbers_db(dir.path(), 5000);
    for _ in 0..20 {
        let mut src =
            SqliteSource::open(&path, "SELECT a, b, label FROM t", options(LabelColumn::Last, BadRowPolicy::Skip, 10))
                .unwrap();
        assert_eq!(src.next().unwrap().unwrap().num_rows(), 10);
        drop(src);
    }
    // The database is not locked or kept open: it can be removed and the directory deleted.
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn open_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = numbers_db(dir.path(), 3);
    let so = SourceOptions::default;
    let err = SqliteSource::open(dir.path().join("missing.db"), "SELECT 1", so()).unwrap_err();
    assert!(matches!(err, SourceError::Io { .. }), "{err}");
    let err = SqliteSource::open(&path, "SELECT nope FROM t", so()).unwrap_err().to_string();
    assert!(err.starts_with("sqlite source ") && err.contains("no such column: nope"), "{err}");
    let err = SqliteSource::open(&path, "DELETE FROM t", so()).unwrap_err().to_string();
    assert!(err.contains("the query must only read"), "{err}");
    let err = SqliteSource::open(&path, "SELECT a FROM t; SELECT b FROM t", so()).unwrap_err().to_string();
    assert!(err.contains("Multiple statements"), "{err}");
    let err =
        SqliteSource::open(&path, "SELECT a, b FROM t", options(LabelColumn::Named("y".into()), BadRowPolicy::Skip, 5))
            .unwrap_err()
            .to_string();
    assert!(err.ends_with("label column 'y' not found (columns: a, b)"), "{err}");
    // The query did not write: the table still has its rows.
    let n: i64 = Connection::open(&path).unwrap().query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 3);
}

#[test]
fn open_url_reads_sqlite_urls_and_plain_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = numbers_db(dir.path(), 10);
    let url = format!("sqlite://{}?query=SELECT+a%2C+b%2C+label+FROM+t+WHERE+a+%3E%3D+7+ORDER+BY+id", path.display());
    let mut src = open_url(&url, SourceOptions::default()).unwrap();
    assert_eq!(src.schema().names(), ["a", "b"]);
    assert_eq!(collect(src.as_mut()), (vec![7.0, 1.75, 8.0, 2.0, 9.0, 2.25], vec![1.0, 0.0, 1.0], vec![0, 1, 2]));

    let err = open_url(&format!("sqlite://{}", path.display()), SourceOptions::default()).err().unwrap().to_string();
    assert!(err.contains("needs a query"), "{err}");
    let err = open_url("ftp://host/data.csv", SourceOptions::default()).err().unwrap().to_string();
    assert!(err.contains("unknown source scheme 'ftp://'"), "{err}");
    // open() on a database file says how to give the query.
    let err = open(&path, SourceOptions::default()).err().unwrap().to_string();
    assert!(err.contains("needs a query") && err.contains("sqlite://"), "{err}");
    // A plain path goes to open().
    let csv = dir.path().join("x.csv");
    std::fs::write(&csv, "a,label\n1,0\n").unwrap();
    let result = open_url(csv.to_str().unwrap(), SourceOptions::default());
    if cfg!(feature = "csv") {
        assert_eq!(collect(result.unwrap().as_mut()).0, vec![1.0]);
    } else {
        assert!(matches!(result, Err(SourceError::NotCompiled { .. })));
    }
}

/// The same data set written as CSV, JSON Lines and SQLite.
#[cfg(all(feature = "csv", feature = "jsonl"))]
mod same_data {
    use onad_core::Batch;
    use onad_sources::{CsvOptions, CsvSource, JsonlOptions, JsonlSource};

    use super::*;

    /// Value `j` of row `i` of the shared data set: varied magnitudes and signs, some missing; `None` marks
    /// the cells that hold text (bad rows 17, 250 and 499).
    fn cell(i: usize, j: usize) -> Option<f64> {
        if j == 1 && matches!(i, 17 | 250 | 499) {
            return None;
        }
        if (i + j).is_multiple_of(37) {
            return Some(f64::NAN);
        }
        let x = ((i as u64 * 2_654_435_761 + j as u64 * 40_503) % 1_000_003) as f64;
        Some(match j {
            0 => x / 7.0 - 70_000.0,
            1 => (x * 1e-9).sqrt(),
            _ => (x as i64 - 500_000) as f64,
        })
    }

    #[test]
    fn csv_jsonl_and_sqlite_give_identical_batches() {
        let dir = tempfile::tempdir().unwrap();
        let n = 500;
        let names = ["a", "b", "c"];
        let (mut csv, mut jsonl) = (String::from("a,b,c,label\n"), String::new());
        let db = dir.path().join("same.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE d (row INTEGER PRIMARY KEY, a, b, c, label)").unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        for i in 0..n {
            let cells: Vec<Option<f64>> = (0..3).map(|j| cell(i, j)).collect();
            let label = (i % 7 == 0) as i64;
            let csv_cell = |c: &Option<f64>| match c {
                None => "oops".to_string(),
                Some(v) if v.is_nan() => String::new(),
                Some(v) => v.to_string(),
            };
            let json_cell = |c: &Option<f64>| match c {
                None => "\"oops\"".to_string(),
                Some(v) if v.is_nan() => "null".into(),
                Some(v) => v.to_string(),
            };
            csv.push_str(&format!("{},{label}\n", cells.iter().map(csv_cell).collect::<Vec<_>>().join(",")));
            let fields: Vec<String> =
                names.iter().zip(&cells).map(|(k, c)| format!("\"{k}\": {}", json_cell(c))).collect();
            jsonl.push_str(&format!("{{{}, \"label\": {label}}}\n", fields.join(", ")));
            let sql: Vec<rusqlite::types::Value> = cells
                .iter()
                .map(|c| match c {
                    None => rusqlite::types::Value::Text("oops".into()),
                    Some(v) if v.is_nan() => rusqlite::types::Value::Null,
                    Some(v) => rusqlite::types::Value::Real(*v),
                })
                .collect();
            tx.execute("INSERT INTO d VALUES (?1, ?2, ?3, ?4, ?5)", params![i as i64, sql[0], sql[1], sql[2], label])
                .unwrap();
        }
        tx.commit().unwrap();
        drop(conn);
        let (csv_path, jsonl_path) = (dir.path().join("same.csv"), dir.path().join("same.jsonl"));
        std::fs::write(&csv_path, csv).unwrap();
        std::fs::write(&jsonl_path, jsonl).unwrap();

        let base = options(LabelColumn::Last, BadRowPolicy::Skip, 64);
        let mut sources: Vec<Box<dyn Source>> = vec![
            Box::new(CsvSource::open(&csv_path, CsvOptions { base: base.clone(), ..Default::default() }).unwrap()),
            Box::new(
                JsonlSource::open(&jsonl_path, JsonlOptions { base: base.clone(), ..Default::default() }).unwrap(),
            ),
            Box::new(SqliteSource::open(&db, "SELECT a, b, c, label FROM d ORDER BY row", base.clone()).unwrap()),
        ];
        let batches: Vec<Vec<Batch>> = sources.iter_mut().map(|s| s.by_ref().map(Result::unwrap).collect()).collect();
        for s in &sources {
            assert_eq!(s.schema().names(), names);
            assert_eq!(Source::position(s.as_ref()), Position::Row(n as u64));
            assert_eq!(s.skipped().get("non_numeric"), 3);
            assert_eq!(s.skipped().total(), 3);
        }
        let reference = &batches[0];
        assert_eq!(reference.iter().map(Batch::num_rows).sum::<usize>(), n - 3);
        assert!(reference.iter().flat_map(|b| b.values()).any(|v| v.is_nan()));
        for (k, other) in batches.iter().enumerate().skip(1) {
            assert_eq!(other.len(), reference.len(), "source {k}");
            for (a, b) in reference.iter().zip(other) {
                assert!(same(a.values(), b.values()), "source {k}: values differ");
                assert!(same(a.labels().unwrap(), b.labels().unwrap()), "source {k}: labels differ");
                assert_eq!(a.row_ids(), b.row_ids(), "source {k}");
            }
        }
        let ids: Vec<u64> = reference.iter().flat_map(|b| b.row_ids().to_vec()).collect();
        assert!(!ids.contains(&17) && !ids.contains(&250) && !ids.contains(&499));
        assert_eq!(ids.len(), 497);
    }
}
