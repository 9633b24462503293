//! Scored rows for the broker sink tests (`kafka_sink.rs`, `redis_sink.rs`): a fixed expected value per
//! row id, batches of them built by hand, and a comparison that treats NaN as equal to NaN.
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

use onad_core::{Batch, Schema, Scored, ScoredRow, Sink, SinkLayout};

/// What an uninterrupted run writes for row `id`: a threshold warming up (NaN) for the first rows, a
/// label that is sometimes missing (NaN), keys around zero.
pub fn expected(id: u64) -> ScoredRow {
    let x = id as f64;
    let score = (x * 0.37).sin().abs() * 1.5;
    let threshold = if id < 5 { f64::NAN } else { 0.5 + x / 1000.0 };
    ScoredRow {
        id,
        score,
        threshold,
        flag: score > threshold,
        label: Some(if id % 11 == 7 { f64::NAN } else { f64::from(u8::from(id.is_multiple_of(4))) }),
        key: Some((id % 5) as f64 - 2.0),
    }
}

/// `expected(id)` as a run of the given layout sees it (no label, no key when the layout has none).
pub fn expected_in(layout: &SinkLayout, id: u64) -> ScoredRow {
    let r = expected(id);
    ScoredRow { label: r.label.filter(|_| layout.labels), key: r.key.filter(|_| layout.key.is_some()), ..r }
}

/// The layout with labels and a key column.
pub fn full_layout() -> SinkLayout {
    SinkLayout { labels: true, key: Some("card".into()), ..Default::default() }
}

/// Writes rows `ids` to `sink` as scored batches of `batch` rows, with labels and keys when `layout`
/// has them.
pub fn write_rows(sink: &mut dyn Sink, layout: &SinkLayout, ids: std::ops::Range<u64>, batch: usize) {
    let schema = Schema::shared(["x"]).unwrap();
    let mut start = ids.start;
    while start < ids.end {
        let end = (start + batch as u64).min(ids.end);
        let rows: Vec<ScoredRow> = (start..end).map(|id| expected_in(layout, id)).collect();
        let labels = layout.labels.then(|| rows.iter().map(|r| r.label.unwrap()).collect());
        let b =
            Batch::try_new(schema.clone(), rows.iter().map(|r| r.id as f64).collect(), labels, (start..end).collect())
                .unwrap();
        let scores: Vec<f64> = rows.iter().map(|r| r.score).collect();
        let flags: Vec<bool> = rows.iter().map(|r| r.flag).collect();
        let thresholds: Vec<f64> = rows.iter().map(|r| r.threshold).collect();
        let keys: Vec<f64> = rows.iter().filter_map(|r| r.key).collect();
        let scored = Scored {
            batch: &b,
            scores: &scores,
            flags: &flags,
            thresholds: &thresholds,
            keys: layout.key.as_ref().map(|_| keys.as_slice()),
            explanations: None,
        };
        sink.write(&scored).unwrap();
        start = end;
    }
}

fn same_number(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Field by field equality, NaN equal to NaN.
pub fn same_row(a: &ScoredRow, b: &ScoredRow) -> bool {
    let opt = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => same_number(x, y),
        (None, None) => true,
        _ => false,
    };
    a.id == b.id
        && same_number(a.score, b.score)
        && same_number(a.threshold, b.threshold)
        && a.flag == b.flag
        && opt(a.label, b.label)
        && opt(a.key, b.key)
}

/// Keeps the first row of each id, in the order given: what a consumer that drops repeats sees.
pub fn first_of_each(rows: &[ScoredRow]) -> Vec<ScoredRow> {
    let mut seen = std::collections::BTreeSet::new();
    rows.iter().filter(|r| seen.insert(r.id)).copied().collect()
}

/// Checks that `got`, de-duplicated by row id, is exactly rows `0..total` of `layout` once each, and that
/// every repeat equals its first copy. Returns how many repeats there were.
pub fn check_dedup(layout: &SinkLayout, got: &[ScoredRow], total: u64) -> usize {
    for r in got {
        assert!(
            same_row(r, &expected_in(layout, r.id)),
            "row {} differs: {r:?} vs {:?}",
            r.id,
            expected_in(layout, r.id)
        );
    }
    let mut unique = first_of_each(got);
    unique.sort_by_key(|r| r.id);
    assert_eq!(unique.iter().map(|r| r.id).collect::<Vec<_>>(), (0..total).collect::<Vec<_>>());
    got.len() - unique.len()
}

/// Runs `f` on another thread and fails the test if it has not returned within `limit` (so a sink that
/// hangs fails the test instead of stalling it).
pub fn bounded<T: Send + 'static>(limit: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: no answer within {limit:?} (the sink hangs)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}
