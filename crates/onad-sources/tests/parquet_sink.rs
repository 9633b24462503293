//! The Parquet sink: what it writes, and that a resume after a crash (rows written past the checkpoint,
//! a part left without its footer) gives the rows of an uninterrupted run.
#![cfg(feature = "parquet")]

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt64Type};
use onad_core::{Batch, Schema, Scored, Sink, SinkLayout, SinkPosition};
use onad_sources::ParquetSink;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Scored rows `from..to`: score = id / 10, threshold 5, flag above it, label id % 2, key id % 3.
fn batch(from: u64, to: u64) -> (Batch, Vec<f64>, Vec<bool>, Vec<f64>, Vec<f64>) {
    let schema = Schema::shared(["v"]).unwrap();
    let n = (to - from) as usize;
    let ids: Vec<u64> = (from..to).collect();
    let b =
        Batch::try_new(schema, vec![0.0; n], Some(ids.iter().map(|i| (i % 2) as f64).collect()), ids.clone()).unwrap();
    let scores: Vec<f64> = ids.iter().map(|i| *i as f64 / 10.0).collect();
    let flags = scores.iter().map(|s| *s > 5.0).collect();
    let keys = ids.iter().map(|i| (i % 3) as f64).collect();
    (b, scores, flags, vec![5.0; n], keys)
}

fn write(sink: &mut ParquetSink, from: u64, to: u64) {
    let (b, scores, flags, thresholds, keys) = batch(from, to);
    sink.write(&Scored {
        batch: &b,
        scores: &scores,
        flags: &flags,
        thresholds: &thresholds,
        keys: Some(&keys),
        explanations: None,
    })
    .unwrap();
}

/// Every row of the file as (row, score bits, threshold bits, anomaly, label bits, key bits).
fn rows(path: &Path) -> Vec<(u64, u64, u64, bool, u64, u64)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap().build().unwrap();
    let mut out = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let f = |name: &str| b.column_by_name(name).unwrap().as_primitive::<Float64Type>().clone();
        let (score, threshold, label, key) = (f("score"), f("threshold"), f("label"), f("key"));
        let row = b.column_by_name("row").unwrap().as_primitive::<UInt64Type>().clone();
        let anomaly = b.column_by_name("anomaly").unwrap().as_boolean().clone();
        for i in 0..b.num_rows() {
            out.push((
                row.value(i),
                score.value(i).to_bits(),
                threshold.value(i).to_bits(),
                anomaly.value(i),
                label.value(i).to_bits(),
                key.value(i).to_bits(),
            ));
        }
    }
    out
}

fn layout() -> SinkLayout {
    SinkLayout { labels: true, key: Some("k".into()), ..Default::default() }
}

#[test]
fn a_killed_run_resumes_to_the_rows_of_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full.parquet");
    let mut s = ParquetSink::new(&full);
    s.open(&layout(), None).unwrap();
    for k in 0..10 {
        write(&mut s, k * 100, (k + 1) * 100);
        if k % 3 == 2 {
            s.sync().unwrap();
        }
    }
    s.finish(true).unwrap();
    let expected = rows(&full);
    assert_eq!(expected.len(), 1000);
    assert_eq!(expected[77], (77, 7.7f64.to_bits(), 5.0f64.to_bits(), true, 1.0f64.to_bits(), 2.0f64.to_bits()));
    assert!(!tmp.path().join("full.parquet.parts").exists(), "the parts are removed once joined");

    // The crashed run: a checkpoint after 400 rows, then 250 more rows in a part that never got its footer.
    let out = tmp.path().join("out.parquet");
    let mut s = ParquetSink::new(&out);
    s.open(&layout(), None).unwrap();
    write(&mut s, 0, 150);
    s.sync().unwrap();
    write(&mut s, 150, 400);
    let at = s.sync().unwrap();
    assert_eq!(at, SinkPosition::Rows { rows: 400, parts: 2 });
    write(&mut s, 400, 650);
    std::mem::forget(s); // killed: no footer, no close
    assert!(tmp.path().join("out.parquet.parts/part-000003.parquet").exists());

    let mut s = ParquetSink::new(&out);
    s.open(&layout(), Some(&at)).unwrap();
    write(&mut s, 400, 1000);
    s.finish(true).unwrap();
    assert_eq!(rows(&out), expected, "resumed output differs from the uninterrupted one");

    // A later resume from the final checkpoint of that completed run appends to the joined file.
    let end = SinkPosition::Rows { rows: 1000, parts: 3 };
    let mut s = ParquetSink::new(&out);
    s.open(&layout(), Some(&end)).unwrap();
    write(&mut s, 1000, 1010);
    s.finish(true).unwrap();
    assert_eq!(rows(&out).len(), 1010);
    assert_eq!(rows(&out)[..1000], expected[..]);
}

#[test]
fn a_resumed_completed_run_killed_before_its_next_checkpoint_resumes_again() {
    // The periodic job: run 1 completes (final checkpoint at 300 rows, parts joined); run 2 resumes,
    // writes rows and is killed before its next checkpoint; run 3 resumes from 300 rows again.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.parquet");
    let mut s = ParquetSink::new(&out);
    s.open(&layout(), None).unwrap();
    write(&mut s, 0, 100);
    s.sync().unwrap();
    write(&mut s, 100, 300);
    let end = s.sync().unwrap();
    assert_eq!(end, SinkPosition::Rows { rows: 300, parts: 2 });
    s.finish(true).unwrap();
    let mut s = ParquetSink::new(&out);
    s.open(&layout(), Some(&end)).unwrap();
    write(&mut s, 300, 350);
    s.sync().unwrap();
    write(&mut s, 350, 400);
    std::mem::forget(s); // killed before the next checkpoint: the one recorded is still `end`
    let mut s = ParquetSink::new(&out);
    s.open(&layout(), Some(&end)).unwrap();
    write(&mut s, 300, 500);
    s.finish(true).unwrap();
    let got = rows(&out);
    assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), (0..500).collect::<Vec<u64>>());
}

#[test]
fn a_kill_while_the_parts_are_joined_is_sorted_out_by_the_next_open() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.parquet");
    let (parts, done) = (tmp.path().join("out.parquet.parts"), tmp.path().join("out.parquet.parts.done"));
    let mut s = ParquetSink::new(&out);
    s.open(&layout(), None).unwrap();
    write(&mut s, 0, 80);
    let at = s.sync().unwrap();
    s.finish(false).unwrap();
    // Killed after the directory was moved away, before the part was moved out: it goes back.
    std::fs::rename(&parts, &done).unwrap();
    let mut s = ParquetSink::new(&out);
    s.open(&layout(), Some(&at)).unwrap();
    write(&mut s, 80, 90);
    s.finish(true).unwrap();
    assert_eq!(rows(&out).len(), 90);
    assert!(!parts.exists() && !done.exists());
    // Killed after the final file was complete, before the old directory was removed: it is removed.
    std::fs::create_dir_all(&done).unwrap();
    std::fs::write(done.join("part-000001.parquet"), b"stale").unwrap();
    let end = SinkPosition::Rows { rows: 90, parts: 1 };
    let mut s = ParquetSink::new(&out);
    s.open(&layout(), Some(&end)).unwrap();
    s.finish(true).unwrap();
    assert_eq!(rows(&out).len(), 90);
    assert!(!done.exists());
}

#[test]
fn a_stopped_run_keeps_its_parts_and_missing_parts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.parquet");
    let mut s = ParquetSink::new(&out);
    s.open(&layout(), None).unwrap();
    write(&mut s, 0, 50);
    let at = s.sync().unwrap();
    s.finish(false).unwrap();
    assert!(!out.exists(), "a stopped run does not join its parts");
    std::fs::remove_file(tmp.path().join("out.parquet.parts/part-000001.parquet")).unwrap();
    let e = ParquetSink::new(&out).open(&layout(), Some(&at)).unwrap_err().to_string();
    assert!(e.contains("out.parquet") && e.contains("part 1, which is missing or damaged"), "{e}");
    let e = ParquetSink::new(&out).open(&layout(), Some(&SinkPosition::Bytes(10))).unwrap_err().to_string();
    assert!(e.contains("not rows and parts"), "{e}");
}

#[test]
fn a_run_without_rows_writes_an_empty_file_with_the_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("empty.parquet");
    let mut s = ParquetSink::new(&out);
    s.open(&SinkLayout::default(), None).unwrap();
    s.finish(true).unwrap();
    let b = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&out).unwrap()).unwrap();
    let names: Vec<String> = b.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["row", "score", "threshold", "anomaly"]);
    assert_eq!(b.metadata().file_metadata().num_rows(), 0);
}
