//! JSON Lines source: round trips, every bad-row reason counted exactly, the fail policy's message, long
//! lines, BOM, CRLF, empty files, labels, seeking, and `open` by extension.
#![cfg(feature = "jsonl")]

mod common;
use common::{collect, same};

use std::io::Write;

use onad_core::{BadRowPolicy, Position, Source, SourceError};
use onad_sources::{JsonlOptions, JsonlSource, LabelColumn, SourceOptions, open};

fn options(label: LabelColumn, bad_rows: BadRowPolicy, batch_size: usize) -> JsonlOptions {
    JsonlOptions { base: SourceOptions { label, bad_rows, batch_size, ..Default::default() }, ..Default::default() }
}

fn from_bytes(bytes: &[u8], options: JsonlOptions) -> Result<JsonlSource, SourceError> {
    JsonlSource::from_reader("t.jsonl", std::io::Cursor::new(bytes.to_vec()), options)
}

#[test]
fn round_trips_values_missing_booleans_and_labels_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.jsonl");
    let mut expect = Vec::new();
    let mut text = String::new();
    for i in 0..25 {
        let a = i as f64 * 0.1 - 1.0;
        let b = if i % 5 == 0 { f64::NAN } else { (i * i) as f64 / 3.0 };
        let flag = i % 2 == 0;
        let b_json = if b.is_nan() { "null".to_string() } else { b.to_string() };
        text.push_str(&format!("{{\"a\": {a}, \"b\": {b_json}, \"flag\": {flag}, \"label\": {}}}\n", i % 3 == 0));
        expect.extend([a, b, if flag { 1.0 } else { 0.0 }]);
    }
    std::fs::write(&path, text).unwrap();
    let mut src = JsonlSource::open(&path, options(LabelColumn::Last, BadRowPolicy::Fail, 7)).unwrap();
    assert_eq!(src.schema().names(), ["a", "b", "flag"]);
    assert!(src.has_labels());
    let sizes: Vec<usize> = src.by_ref().map(|b| b.unwrap().num_rows()).collect();
    assert_eq!(sizes, vec![7, 7, 7, 4]);
    assert_eq!(src.position(), Position::Row(25));

    let mut src = JsonlSource::open(&path, options(LabelColumn::Last, BadRowPolicy::Fail, 7)).unwrap();
    let (v, l, ids) = collect(&mut src);
    assert!(same(&v, &expect));
    assert_eq!(l, (0..25).map(|i| if i % 3 == 0 { 1.0 } else { 0.0 }).collect::<Vec<_>>());
    assert_eq!(ids, (0..25).collect::<Vec<u64>>());
    assert_eq!(src.skipped().total(), 0);
}

#[test]
fn key_order_label_choices_and_key_order_of_later_lines() {
    let text = b"{\"y\": 1, \"z\": 2.5, \"a\": -1}\n{\"a\": 3, \"y\": 0, \"z\": 4}\n";
    let s = from_bytes(text, options(LabelColumn::Last, BadRowPolicy::Skip, 10)).unwrap();
    assert_eq!(s.schema().names(), ["y", "z"]);
    let mut s = from_bytes(text, options(LabelColumn::Named("y".into()), BadRowPolicy::Skip, 10)).unwrap();
    assert_eq!(s.schema().names(), ["z", "a"]);
    let (v, l, _) = collect(&mut s);
    // Later lines may list the keys in any order; values land in the first object's order.
    assert_eq!(v, vec![2.5, -1.0, 4.0, 3.0]);
    assert_eq!(l, vec![1.0, 0.0]);
    let mut s = from_bytes(text, options(LabelColumn::None, BadRowPolicy::Skip, 10)).unwrap();
    assert!(!s.has_labels());
    assert_eq!(s.schema().names(), ["y", "z", "a"]);
    assert_eq!(collect(&mut s).0, vec![1.0, 2.5, -1.0, 0.0, 4.0, 3.0]);
    let err = from_bytes(text, options(LabelColumn::Named("nope".into()), BadRowPolicy::Skip, 10)).unwrap_err();
    assert_eq!(err.to_string(), "t.jsonl: label column 'nope' not found (columns: y, z, a)");
}

/// Builds a file with a known number of bad rows of each reason (blank lines between them do not count
/// as rows) and checks every count, the total, and the row ids of the good rows.
#[test]
fn every_bad_row_reason_is_counted_exactly() {
    let cap = 64;
    let long = format!("{{\"a\": 1, \"b\": 2, \"label\": 0, \"pad\": \"{}\"}}", "x".repeat(cap));
    let kinds: Vec<(&str, usize, Vec<Vec<u8>>)> = vec![
        (
            "invalid_json",
            4,
            vec![
                b"{\"a\": 1, \"b\": 2, \"label\": 0".to_vec(),
                b"not json".to_vec(),
                b"{\"a\": 1, \"b\": 2, \"label\": 0} trailing".to_vec(),
                b"{\"a\": NaN, \"b\": 2, \"label\": 0}".to_vec(),
            ],
        ),
        ("not_object", 3, vec![b"[1, 2, 0]".to_vec(), b"42".to_vec(), b"\"text\"".to_vec()]),
        (
            "non_numeric",
            4,
            vec![
                b"{\"a\": \"1.5\", \"b\": 2, \"label\": 0}".to_vec(),
                b"{\"a\": 1, \"b\": \"abc\", \"label\": 0}".to_vec(),
                b"{\"a\": [1], \"b\": 2, \"label\": 0}".to_vec(),
                b"{\"a\": 1, \"b\": {\"c\": 1}, \"label\": 0}".to_vec(),
            ],
        ),
        ("missing_column", 2, vec![b"{\"a\": 1, \"label\": 0}".to_vec(), b"{\"a\": 1, \"b\": 2}".to_vec()]),
        (
            "extra_column",
            2,
            vec![
                b"{\"a\": 1, \"b\": 2, \"label\": 0, \"c\": 3}".to_vec(),
                b"{\"c\": 3, \"a\": 1, \"b\": 2, \"label\": 0}".to_vec(),
            ],
        ),
        ("duplicate_column", 1, vec![b"{\"a\": 1, \"b\": 2, \"a\": 3, \"label\": 0}".to_vec()]),
        (
            "invalid_utf8",
            2,
            vec![
                b"{\"a\": 1, \"b\": 2, \"label\": 0, \"\xff\": 1}".to_vec(),
                b"{\"a\": 1, \"b\": \"\xc3\x28\"}".to_vec(),
            ],
        ),
        ("line_too_long", 2, vec![long.clone().into_bytes(), long.into_bytes()]),
        (
            "empty_row",
            2,
            vec![
                b"{\"a\": null, \"b\": null, \"label\": 1}".to_vec(),
                b"{\"label\": 0, \"b\": null, \"a\": null}".to_vec(),
            ],
        ),
    ];
    let good = |i: usize| format!("{{\"a\": {i}, \"b\": {}, \"label\": {}}}", i * 2, i % 2).into_bytes();
    let mut file: Vec<u8> = Vec::new();
    let mut row = 0_u64;
    let mut good_ids = Vec::new();
    let mut good_values = Vec::new();
    let push = |line: &[u8], file: &mut Vec<u8>| {
        file.extend_from_slice(line);
        file.extend_from_slice(b"\n");
    };
    // The first line is good: it names the columns a, b, label.
    push(&good(0), &mut file);
    good_ids.push(row);
    good_values.extend([0.0, 0.0]);
    row += 1;
    let mut k = 1;
    for (_, n, lines) in &kinds {
        assert_eq!(*n, lines.len());
        for line in lines {
            push(line, &mut file);
            row += 1;
            push(b"", &mut file);
            push(b"   \t", &mut file);
            push(&good(k), &mut file);
            good_ids.push(row);
            good_values.extend([k as f64, 2.0 * k as f64]);
            row += 1;
            k += 1;
        }
    }
    let mut s = from_bytes(
        &file,
        JsonlOptions { base: SourceOptions { batch_size: 3, ..Default::default() }, max_line_bytes: cap },
    )
    .unwrap();
    let (v, _, ids) = collect(&mut s);
    assert_eq!(ids, good_ids);
    assert_eq!(v, good_values);
    for (reason, n, _) in &kinds {
        assert_eq!(s.skipped().get(reason), *n as u64, "{reason}");
    }
    let total: usize = kinds.iter().map(|(_, n, _)| n).sum();
    assert_eq!(s.skipped().total(), total as u64);
    assert_eq!(s.skipped().iter().count(), kinds.len());
    assert_eq!(s.position(), Position::Row(row));
}

#[test]
fn fail_policy_names_the_source_row_and_column() {
    let fail = options(LabelColumn::Last, BadRowPolicy::Fail, 100);
    let text = b"{\"cpu\": 1, \"mem\": 2, \"label\": 0}\n\n{\"cpu\": 1, \"mem\": \"high\", \"label\": 0}\n";
    let mut s = from_bytes(text, fail.clone()).unwrap();
    let err = s.next().unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "t.jsonl: row 1, column 'mem': the value of 'mem' is the string 'high', not a number (non_numeric)"
    );
    match err {
        SourceError::BadRecord(r) => {
            assert_eq!(
                (r.source.as_str(), r.row, r.column.as_deref(), r.reason),
                ("t.jsonl", 1, Some("mem"), "non_numeric")
            )
        }
        other => panic!("expected a bad record, got {other}"),
    }
    assert!(s.next().is_none());

    let mut s =
        from_bytes(b"{\"cpu\": 1, \"mem\": 2, \"label\": 0}\n{\"cpu\": 1, \"label\": 0}\n", fail.clone()).unwrap();
    let err = s.next().unwrap().unwrap_err().to_string();
    assert_eq!(err, "t.jsonl: row 1, column 'mem': the key 'mem' is missing (missing_column)");
    let mut s =
        from_bytes(b"{\"cpu\": 1, \"label\": 0}\n{\"cpu\": 1, \"gpu\": 3, \"label\": 0}\n", fail.clone()).unwrap();
    let err = s.next().unwrap().unwrap_err().to_string();
    assert_eq!(err, "t.jsonl: row 1, column 'gpu': the key 'gpu' is not a column of the first object (extra_column)");

    let mut s = from_bytes(
        b"{\"cpu\": 1, \"mem\": 2, \"label\": 0}\n{\"cpu\": null, \"mem\": null, \"label\": 1}\n",
        fail.clone(),
    )
    .unwrap();
    let err = s.next().unwrap().unwrap_err().to_string();
    assert_eq!(
        err,
        "t.jsonl: row 1: the row is empty: all 2 features are missing (empty, null or NaN), so there is nothing to \
         score (empty_row)"
    );

    // A bad line before the first object fails at open, under Fail.
    let err = from_bytes(b"oops\n{\"cpu\": 1, \"label\": 0}\n", fail).unwrap_err().to_string();
    assert!(err.starts_with("t.jsonl: row 0: the line is not valid JSON"), "{err}");
    assert!(err.ends_with("(invalid_json)"), "{err}");
}

#[test]
fn a_ten_megabyte_line_is_skipped_as_too_long_and_the_next_line_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(f, "{{\"v\": 1, \"label\": 0}}").unwrap();
        write!(f, "{{\"v\": 2, \"label\": 0, \"junk\": \"").unwrap();
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..(10 << 20) / chunk.len() {
            f.write_all(&chunk).unwrap();
        }
        writeln!(f, "\"}}").unwrap();
        writeln!(f, "{{\"v\": 3, \"label\": 1}}").unwrap();
    }
    assert!(std::fs::metadata(&path).unwrap().len() > 10 << 20);
    let mut s = JsonlSource::open(&path, JsonlOptions::default()).unwrap();
    let (v, l, ids) = collect(&mut s);
    assert_eq!(v, vec![1.0, 3.0]);
    assert_eq!(l, vec![0.0, 1.0]);
    assert_eq!(ids, vec![0, 2]);
    assert_eq!(s.skipped().get("line_too_long"), 1);
    assert_eq!(s.skipped().total(), 1);
}

/// A reader that serves an endless line of `x` after a short prefix, without ever holding it: the
/// source must drop the line as it reads it (this would run out of memory otherwise).
#[test]
fn a_long_line_is_never_held_in_memory_whole() {
    struct Endless {
        prefix: std::io::Cursor<Vec<u8>>,
        left: u64,
        suffix: std::io::Cursor<Vec<u8>>,
    }
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.prefix.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.left > 0 {
                let n = buf.len().min(self.left as usize);
                buf[..n].fill(b'x');
                self.left -= n as u64;
                return Ok(n);
            }
            self.suffix.read(buf)
        }
    }
    let reader = Endless {
        prefix: std::io::Cursor::new(b"{\"v\": 1}\n{\"v\": \"".to_vec()),
        left: 64 << 20,
        suffix: std::io::Cursor::new(b"\"}\n{\"v\": 2}\n".to_vec()),
    };
    let options =
        JsonlOptions { base: SourceOptions { label: LabelColumn::None, ..Default::default() }, max_line_bytes: 1024 };
    let mut s = JsonlSource::from_reader("endless", reader, options).unwrap();
    let (v, _, ids) = collect(&mut s);
    assert_eq!(v, vec![1.0, 2.0]);
    assert_eq!(ids, vec![0, 2]);
    assert_eq!(s.skipped().get("line_too_long"), 1);
}

#[test]
fn byte_order_mark_and_crlf_line_endings() {
    let text = b"\xEF\xBB\xBF{\"a\": 1, \"label\": 0}\r\n\r\n{\"a\": 2.5, \"label\": 1}\r\n{\"a\": null, \"label\": 0}";
    let mut s = from_bytes(text, JsonlOptions::default()).unwrap();
    assert_eq!(s.schema().names(), ["a"]);
    let (v, l, ids) = collect(&mut s);
    assert_eq!(v, [1.0, 2.5]);
    assert_eq!(l, vec![0.0, 1.0]);
    // The last line (no line end) is read too: its only feature is null, so it is an empty row.
    assert_eq!(ids, vec![0, 1]);
    assert_eq!(s.skipped().iter().collect::<Vec<_>>(), [("empty_row", 1)]);
    // A BOM anywhere but the start is not skipped.
    let mut s =
        from_bytes(b"{\"a\": 1, \"label\": 0}\n\xEF\xBB\xBF{\"a\": 2, \"label\": 0}\n", JsonlOptions::default())
            .unwrap();
    assert_eq!(collect(&mut s).2, vec![0]);
    assert_eq!(s.skipped().get("invalid_json"), 1);
}

#[test]
fn files_without_an_object_are_schema_errors() {
    for (text, what) in [
        (&b""[..], "(the file is empty)"),
        (&b"\n  \n\r\n"[..], "(the file is empty)"),
        (&b"[1, 2]\nnope\n"[..], "in 2 non-blank lines"),
        (&b"\xEF\xBB\xBF"[..], "(the file is empty)"),
    ] {
        let err = from_bytes(text, JsonlOptions::default()).unwrap_err();
        assert!(matches!(err, SourceError::Schema { .. }), "{err}");
        assert_eq!(err.to_string(), format!("t.jsonl: no JSON object found {what}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.jsonl");
    std::fs::write(&path, "").unwrap();
    let err = JsonlSource::open(&path, JsonlOptions::default()).unwrap_err().to_string();
    assert!(err.contains("no JSON object found"), "{err}");
    let err = from_bytes(b"{}\n", JsonlOptions::default()).unwrap_err().to_string();
    assert!(err.contains("has no keys"), "{err}");
}

#[test]
fn bad_lines_before_the_first_object_are_rows() {
    let text = b"oops\n\n[1]\n{\"a\": 1, \"label\": 0}\n{\"a\": 2, \"label\": 0}\n";
    let mut s = from_bytes(text, options(LabelColumn::Last, BadRowPolicy::Skip, 1)).unwrap();
    assert_eq!(s.position(), Position::Row(0));
    assert_eq!(s.skipped().total(), 0);
    let b = s.next().unwrap().unwrap();
    assert_eq!(b.row_ids(), &[2]);
    assert_eq!(s.skipped().get("invalid_json"), 1);
    assert_eq!(s.skipped().get("not_object"), 1);
    assert_eq!(s.position(), Position::Row(3));
    assert_eq!(collect(&mut s).2, vec![3]);

    // Seeking into those lines counts only the bad rows from the target on.
    let mut s = from_bytes(text, JsonlOptions::default()).unwrap();
    s.seek(&Position::Row(1)).unwrap();
    assert_eq!(collect(&mut s).2, vec![2, 3]);
    assert_eq!(s.skipped().get("invalid_json"), 0);
    assert_eq!(s.skipped().get("not_object"), 1);
    let mut s = from_bytes(text, JsonlOptions::default()).unwrap();
    s.seek(&Position::Row(3)).unwrap();
    assert_eq!(collect(&mut s).2, vec![3]);
    assert_eq!(s.skipped().total(), 0);
}

#[test]
fn the_missing_policy_keeps_bad_lines_as_nan_rows_before_and_after_the_first_object() {
    let text = b"oops\n\n[1]\n{\"a\": 1, \"label\": 0}\n{\"a\": \"x\", \"label\": 1}\n{\"a\": 2, \"label\": 0}\n";
    let mut s = from_bytes(text, options(LabelColumn::Last, BadRowPolicy::Missing, 2)).unwrap();
    let (v, labels, ids) = collect(&mut s);
    assert_eq!(ids, vec![0, 1, 2, 3, 4], "{v:?}");
    assert!(v[0].is_nan() && v[1].is_nan() && v[2] == 1.0 && v[3].is_nan() && v[4] == 2.0, "{v:?}");
    assert!(labels[0].is_nan() && labels[2] == 0.0);
    assert_eq!(s.skipped().total(), 3);
}

#[test]
fn seek_resumes_at_a_row_and_reports_short_files() {
    let mut text = String::new();
    for i in 0..10 {
        text.push_str(&format!("{{\"a\": {i}, \"label\": 0}}\n"));
        if i == 4 {
            text.push_str("\n{\"a\": \"bad\", \"label\": 0}\n");
        }
    }
    // Rows: 0..=4 good, 5 bad, 6..=10 hold a = 5..=9.
    let mut s = from_bytes(text.as_bytes(), options(LabelColumn::Last, BadRowPolicy::Skip, 2)).unwrap();
    let first = s.next().unwrap().unwrap();
    assert_eq!(first.row_ids(), &[0, 1]);
    let at = s.position();
    assert_eq!(at, Position::Row(2));

    let mut resumed = from_bytes(text.as_bytes(), options(LabelColumn::Last, BadRowPolicy::Skip, 2)).unwrap();
    resumed.seek(&at).unwrap();
    let (v, _, ids) = collect(&mut resumed);
    assert_eq!(ids, vec![2, 3, 4, 6, 7, 8, 9, 10]);
    assert_eq!(v, vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    assert_eq!(resumed.skipped().get("non_numeric"), 1);

    let mut s = from_bytes(text.as_bytes(), JsonlOptions::default()).unwrap();
    s.seek(&Position::Row(7)).unwrap();
    assert_eq!(collect(&mut s).2, vec![7, 8, 9, 10]);
    assert_eq!(s.skipped().total(), 0);
    let mut s = from_bytes(text.as_bytes(), JsonlOptions::default()).unwrap();
    s.seek(&Position::Row(11)).unwrap();
    assert!(s.next().is_none());
    let mut s = from_bytes(text.as_bytes(), JsonlOptions::default()).unwrap();
    let err = s.seek(&Position::Row(12)).unwrap_err().to_string();
    assert!(err.contains("cannot resume at row 12: the file has only 11 rows"), "{err}");
    let mut s = from_bytes(text.as_bytes(), JsonlOptions::default()).unwrap();
    s.seek(&Position::Row(3)).unwrap();
    assert!(s.seek(&Position::Row(1)).unwrap_err().to_string().contains("cannot seek back"));
}

#[test]
fn open_picks_jsonl_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["jsonl", "ndjson", "JSONL"] {
        let path = dir.path().join(format!("d.{ext}"));
        std::fs::write(&path, "{\"x\": 1, \"label\": 1}\n{\"x\": 2, \"label\": 0}\n").unwrap();
        let mut s = open(&path, SourceOptions::default()).unwrap();
        assert_eq!(s.schema().names(), ["x"]);
        assert_eq!(collect(s.as_mut()), (vec![1.0, 2.0], vec![1.0, 0.0], vec![0, 1]));
    }
}

#[test]
fn numbers_of_every_form_read_exactly() {
    let text =
        b"{\"v\": 0.1}\n{\"v\": -0.0}\n{\"v\": 1e-300}\n{\"v\": 18446744073709551615}\n{\"v\": -9007199254740993}\n\
                 {\"v\": 2.2250738585072014e-308}\n{\"v\": 0.30000000000000004}\n";
    let mut s = from_bytes(text, options(LabelColumn::None, BadRowPolicy::Fail, 100)).unwrap();
    let (v, _, _) = collect(&mut s);
    let expect =
        [0.1, -0.0, 1e-300, 18446744073709551615.0, -9007199254740993.0, 2.2250738585072014e-308, 0.30000000000000004];
    assert!(same(&v, &expect), "{v:?}");
}

#[test]
fn a_first_object_with_every_feature_null_names_the_columns_and_is_an_empty_row() {
    let text = b"{\"a\": null, \"b\": null, \"label\": 0}\n{\"a\": 1, \"b\": null, \"label\": 1}\n";
    let mut s = from_bytes(text, JsonlOptions::default()).unwrap();
    assert_eq!(s.schema().names(), ["a", "b"]);
    let (v, l, ids) = collect(&mut s);
    assert!(v[0] == 1.0 && v[1].is_nan() && v.len() == 2);
    assert_eq!((l, ids), (vec![1.0], vec![1]));
    assert_eq!(s.skipped().iter().collect::<Vec<_>>(), [("empty_row", 1)]);
    // Under Fail, opening succeeds (the object names the columns) and reading stops at its row.
    let mut s = from_bytes(text, options(LabelColumn::Last, BadRowPolicy::Fail, 10)).unwrap();
    let err = s.next().unwrap().unwrap_err();
    let SourceError::BadRecord(r) = &err else { panic!("{err}") };
    assert_eq!((r.row, r.reason), (0, "empty_row"));
}

fn evolving(columns: Option<&[&str]>) -> JsonlOptions {
    let mut o = options(LabelColumn::Named("label".into()), BadRowPolicy::Fail, 10);
    o.base.keys = onad_sources::KeyPolicy::Evolving;
    o.base.columns = columns.map(|c| c.iter().map(|s| s.to_string()).collect());
    o
}

#[test]
fn evolving_keys_make_missing_keys_missing_values_and_count_unknown_keys() {
    // Features come and go: `gpu` first appears on line 3, `disk` is never a column.
    let text = b"{\"cpu\": 1, \"label\": 0}\n{\"cpu\": 2, \"mem\": 5, \"label\": 0}\n\
        {\"gpu\": 7, \"disk\": 3, \"label\": 1}\n{\"cpu\": 4, \"gpu\": 8, \"mem\": 6, \"disk\": 1, \"label\": 0}\n";
    let mut s = from_bytes(text, evolving(Some(&["cpu", "mem", "gpu"]))).unwrap();
    // The columns: the first object's keys, then the listed names it lacks, in the order given.
    assert_eq!(s.schema().names(), ["cpu", "mem", "gpu"]);
    let (v, l, ids) = collect(&mut s);
    let nan = f64::NAN;
    assert!(same(&v, &[1.0, nan, nan, 2.0, 5.0, nan, nan, nan, 7.0, 4.0, 6.0, 8.0]), "{v:?}");
    assert_eq!(l, [0.0, 0.0, 1.0, 0.0]);
    assert_eq!(ids, [0, 1, 2, 3]);
    assert_eq!(s.skipped().total(), 0);
    assert_eq!(s.ignored_keys(), 2, "two values of `disk`");

    // Without `columns`, the features are the first object's keys and later keys are read past.
    let mut s = from_bytes(text, evolving(None)).unwrap();
    assert_eq!(s.schema().names(), ["cpu"]);
    // Line 3 has no `cpu`: a row with every feature missing is still an empty row, under the fail policy
    // an error naming it.
    let err = s.by_ref().find_map(|b| b.err()).unwrap().to_string();
    assert!(err.contains("row 2") && err.contains("empty_row"), "{err}");
    let mut skip = evolving(None);
    skip.base.bad_rows = BadRowPolicy::Skip;
    let mut s = from_bytes(text, skip).unwrap();
    let (v, _, _) = collect(&mut s);
    assert_eq!(v, [1.0, 2.0, 4.0]);
    assert_eq!(s.skipped().get("empty_row"), 1);
    assert_eq!(s.ignored_keys(), 4, "mem on line 2, mem, gpu and disk on line 4; line 3 is a bad row");

    // The fixed policy (the default) keeps both differences bad rows.
    let mut fixed = options(LabelColumn::Named("label".into()), BadRowPolicy::Skip, 10);
    fixed.base.columns = None;
    let mut s = from_bytes(text, fixed).unwrap();
    let (v, _, _) = collect(&mut s);
    assert_eq!(v, [1.0]);
    assert_eq!((s.skipped().get("extra_column"), s.skipped().get("missing_column")), (3, 0));
    assert_eq!(s.ignored_keys(), 0);
    // A value that is not a number is still a bad row under evolving keys.
    let mut s = from_bytes(b"{\"cpu\": 1, \"label\": 0}\n{\"cpu\": \"x\", \"label\": 0}\n", evolving(None)).unwrap();
    let err = s.by_ref().find_map(|b| b.err()).unwrap().to_string();
    assert!(err.contains("row 1") && err.contains("non_numeric"), "{err}");
}
