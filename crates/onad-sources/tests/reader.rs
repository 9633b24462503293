//! Sources read from a stream (`open_reader`, as standard input is read) and files opened in a named
//! format (`open_as`): the same rows as the file path for CSV, TSV, JSON Lines and Parquet; the stream's
//! name in errors; no resuming; the format names.
#![cfg(all(feature = "csv", feature = "jsonl", feature = "parquet"))]

mod common;
use common::{collect, same};

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use onad_core::{BadRowPolicy, Batch, Position, Schema, Source, SourceError};
use onad_sources::{Format, LabelColumn, ParquetWriter, SourceOptions, open, open_as, open_reader};

fn options(bad_rows: BadRowPolicy) -> SourceOptions {
    SourceOptions { label: LabelColumn::Named("label".into()), bad_rows, batch_size: 7, ..Default::default() }
}

/// 40 rows of (a, b, label): some missing values, three empty rows (13, 15, 31) and one text value (22).
fn rows() -> Vec<(String, String, u8)> {
    (0..40)
        .map(|i| {
            let a = if i % 9 == 4 || i == 15 { String::new() } else { format!("{}", i as f64 * 0.25 - 3.0) };
            let b = match i {
                15 => String::new(),
                22 => "high".to_string(),
                _ if i % 6 == 1 => String::new(),
                _ => format!("{}", (i * i) as f64 / 7.0),
            };
            (a, b, (i % 5 == 0) as u8)
        })
        .collect()
}

fn delimited(sep: &str) -> Vec<u8> {
    let mut text = format!("a{sep}b{sep}label\n");
    for (a, b, l) in rows() {
        text.push_str(&format!("{a}{sep}{b}{sep}{l}\n"));
    }
    text.into_bytes()
}

fn jsonl() -> Vec<u8> {
    let json = |v: &str| match v {
        "" => "null".to_string(),
        "high" => "\"high\"".to_string(),
        v => v.to_string(),
    };
    let mut text = String::new();
    for (a, b, l) in rows() {
        text.push_str(&format!("{{\"a\": {}, \"b\": {}, \"label\": {l}}}\n", json(&a), json(&b)));
    }
    text.into_bytes()
}

/// The rows written as a Parquet file: missing values and the text value are NaN there.
fn parquet(dir: &Path) -> PathBuf {
    let path = dir.join("rows.parquet");
    let number = |v: &str| v.parse::<f64>().unwrap_or(f64::NAN);
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    for (a, b, l) in rows() {
        values.extend([number(&a), number(&b)]);
        labels.push(f64::from(l));
    }
    let schema = Schema::shared(["a", "b"]).unwrap();
    let mut w = ParquetWriter::create(&path, &schema, Some("label")).unwrap();
    w.write(&Batch::from_rows(schema, values, Some(labels), 0).unwrap()).unwrap();
    w.finish().unwrap();
    path
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Everything a source yields: schema, labels flag, values, labels, row ids, skip counts.
type Everything = (Vec<String>, bool, Vec<f64>, Vec<f64>, Vec<u64>, Vec<(String, u64)>);

fn read(src: &mut dyn Source) -> Everything {
    let (names, labelled) = (src.schema().names().to_vec(), src.has_labels());
    let (v, l, ids) = collect(src);
    let skipped = src.skipped().iter().map(|(k, n)| (k.to_owned(), n)).collect();
    (names, labelled, v, l, ids, skipped)
}

fn assert_same(a: &Everything, b: &Everything, what: &str) {
    assert_eq!((&a.0, a.1, &a.4, &a.5), (&b.0, b.1, &b.4, &b.5), "{what}");
    assert!(same(&a.2, &b.2) && same(&a.3, &b.3), "{what}: values differ");
}

#[test]
fn a_stream_gives_the_same_rows_as_the_file_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let pq = parquet(dir.path());
    let cases: Vec<(Format, PathBuf)> = vec![
        (Format::Csv, write(dir.path(), "rows.csv", &delimited(","))),
        (Format::Tsv, write(dir.path(), "rows.tsv", &delimited("\t"))),
        (Format::Jsonl, write(dir.path(), "rows.jsonl", &jsonl())),
        (Format::Parquet, pq),
    ];
    for (format, path) in cases {
        let from_file = read(&mut *open(&path, options(BadRowPolicy::Skip)).unwrap());
        let bytes = std::fs::read(&path).unwrap();
        let mut stream =
            open_reader(Box::new(Cursor::new(bytes)), "stdin", format, options(BadRowPolicy::Skip)).unwrap();
        let from_stream = read(&mut *stream);
        assert_same(&from_file, &from_stream, &format.to_string());
        assert_eq!(from_file.0, ["a", "b"]);
        assert!(from_file.4.len() >= 36 && ![13, 15, 31].iter().any(|r| from_file.4.contains(r)), "{format}");
        // Row 22 (no a, b the text 'high') is non_numeric in text formats, empty in Parquet (NaN there).
        assert!(!from_file.4.contains(&22), "{format}");
        assert!(from_file.5.iter().any(|(k, _)| k == "empty_row"), "{format}: {:?}", from_file.5);
        assert_eq!(Source::position(&*stream), Position::Row(40), "{format}");
    }
}

#[test]
fn a_file_opens_in_a_named_format_whatever_its_extension() {
    let dir = tempfile::tempdir().unwrap();
    let by_name =
        read(&mut *open(&write(dir.path(), "rows.tsv", &delimited("\t")), options(BadRowPolicy::Skip)).unwrap());
    for (name, format, bytes) in [
        ("export", Format::Tsv, delimited("\t")),
        ("export.log", Format::Tsv, delimited("\t")),
        ("events.data", Format::Jsonl, jsonl()),
        ("comma.txt", Format::Csv, delimited(",")),
    ] {
        let path = write(dir.path(), name, &bytes);
        let got = read(&mut *open_as(&path, format, options(BadRowPolicy::Skip)).unwrap());
        assert_same(&by_name, &got, name);
    }
    // Without a format, an unknown extension says how to name one.
    let err = open(&dir.path().join("export.log"), options(BadRowPolicy::Skip)).err().unwrap().to_string();
    assert!(err.contains("unknown file type 'log'") && err.contains("csv, tsv, jsonl, ndjson, parquet"), "{err}");
    // A SQLite database still needs a query, whatever it is called.
    let err = open_as(&dir.path().join("export"), Format::Sqlite, options(BadRowPolicy::Skip)).err().unwrap();
    assert!(err.to_string().contains("needs a query"), "{err}");
}

#[test]
fn errors_name_the_stream() {
    let csv = |bytes: &[u8], bad_rows| {
        open_reader(Box::new(Cursor::new(bytes.to_vec())), "stdin", Format::Csv, options(bad_rows))
    };
    let mut src = csv(&delimited(","), BadRowPolicy::Fail).unwrap();
    let err = loop {
        match src.next() {
            Some(Err(e)) => break e.to_string(),
            Some(Ok(_)) => {}
            None => panic!("no error"),
        }
    };
    assert_eq!(
        err,
        "stdin: row 13: the row is empty: all 2 features are missing (empty, null or NaN), so there is nothing to score (empty_row)"
    );
    let err = csv(b"", BadRowPolicy::Skip).err().unwrap().to_string();
    assert_eq!(err, "stdin: the file is empty (no header, no columns)");
    let err = open_reader(Box::new(Cursor::new(Vec::new())), "stdin", Format::Jsonl, options(BadRowPolicy::Skip))
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("stdin: no JSON object found"), "{err}");
    let err = open_reader(
        Box::new(Cursor::new(b"a,b\n1,2\n".to_vec())),
        "stdin",
        Format::Parquet,
        options(BadRowPolicy::Skip),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("stdin"), "{err}");

    /// A reader that fails after some bytes (a broken pipe).
    struct Broken(usize);
    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("the pipe broke"));
            }
            let head = b"a,label\n";
            let n = buf.len().min(head.len()).min(self.0);
            buf[..n].copy_from_slice(&head[..n]);
            self.0 -= n;
            Ok(n)
        }
    }
    for format in [Format::Csv, Format::Parquet] {
        let err = open_reader(Box::new(Broken(8)), "stdin", format, options(BadRowPolicy::Skip));
        let text = match err {
            Err(e) => e.to_string(),
            // CSV reads the header first: the break comes with the first batch.
            Ok(mut src) => src.next().unwrap().err().unwrap().to_string(),
        };
        assert!(text.starts_with("stdin") && text.contains("the pipe broke"), "{format}: {text}");
    }
    let err = open_reader(Box::new(Cursor::new(Vec::new())), "stdin", Format::Sqlite, options(BadRowPolicy::Skip))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot be read from a stream"), "{err}");
}

#[test]
fn a_stream_cannot_be_resumed() {
    for format in [Format::Csv, Format::Jsonl] {
        let bytes = if format == Format::Csv { delimited(",") } else { jsonl() };
        let mut src = open_reader(Box::new(Cursor::new(bytes)), "upload", format, options(BadRowPolicy::Skip)).unwrap();
        // Seeking to the start before reading is what any run does: accepted.
        src.seek(&Position::Start).unwrap();
        src.seek(&Position::Row(0)).unwrap();
        let err = src.seek(&Position::Row(10)).unwrap_err();
        assert!(matches!(err, SourceError::Unsupported(_)), "{err}");
        let err = err.to_string();
        assert!(err.starts_with("upload (a stream) cannot be resumed; it is read once"), "{err}");
        assert!(err.contains("cannot seek to row 10"), "{err}");
        // The refused seek changed nothing: the stream still starts at row 0.
        assert_eq!(src.next().unwrap().unwrap().row_ids()[0], 0);
        assert!(src.seek(&Position::Start).is_err(), "not after reading");
    }
}

#[test]
fn format_names() {
    for (text, format) in [
        ("csv", Format::Csv),
        ("tsv", Format::Tsv),
        ("jsonl", Format::Jsonl),
        ("ndjson", Format::Jsonl),
        ("parquet", Format::Parquet),
        (" CSV ", Format::Csv),
        ("Parquet", Format::Parquet),
    ] {
        assert_eq!(text.parse::<Format>().unwrap(), format, "{text}");
        assert_eq!(format.to_string().parse::<Format>().unwrap(), format);
    }
    for text in ["xlsx", "", "json", "csv.gz"] {
        let err = text.parse::<Format>().unwrap_err().to_string();
        assert!(err.contains(&format!("unknown format '{}'", text.trim())), "{err}");
        assert!(err.contains("accepted: csv, tsv, jsonl, ndjson, parquet"), "{err}");
    }
    let err = "sqlite".parse::<Format>().unwrap_err().to_string();
    assert!(err.contains("sqlite://PATH?query=") && err.contains("csv, tsv, jsonl, ndjson, parquet"), "{err}");
}

#[test]
fn standard_input_is_read_through_a_real_pipe() {
    // The test runs itself again with its standard input a pipe; the child reads it with open_stdin.
    if std::env::var_os("ONAD_STDIN_CHILD").is_some() {
        let mut src = onad_sources::open_stdin(Format::Tsv, options(BadRowPolicy::Skip)).unwrap();
        let (names, _, v, _, ids, skipped) = read(&mut *src);
        println!("child read {names:?} {} values, ids {ids:?}, skipped {skipped:?}", v.len());
        return;
    }
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "standard_input_is_read_through_a_real_pipe", "--nocapture", "--test-threads", "1"])
        .env("ONAD_STDIN_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(b"a\tb\tlabel\n1\t2\t0\n\t\t1\n3\t\t0\n").unwrap();
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(r#"child read ["a", "b"] 4 values, ids [0, 2], skipped [("empty_row", 1)]"#), "{text}");
}
