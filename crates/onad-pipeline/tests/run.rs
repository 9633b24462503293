//! The processing loop with real models: order policy, threshold counts, sink errors, skip counts.

use onad_core::{Batch, DetectorParams, Position, Schema, SchemaRef, SkipCounts, Source, SourceError};
use onad_models::MovingAverageParams;
use onad_pipeline::{FixedThreshold, Order, PipelineError, RunConfig, run};

/// An in-memory source: batches of one feature, with some rows reported as skipped.
#[derive(Debug)]
struct Memory {
    schema: SchemaRef,
    batches: Vec<Batch>,
    skipped: SkipCounts,
    next: usize,
}

impl Memory {
    fn new(values: &[f64], batch: usize) -> Self {
        let schema = Schema::shared(["v"]).unwrap();
        let batches = values
            .chunks(batch)
            .enumerate()
            .map(|(k, c)| {
                Batch::from_rows(schema.clone(), c.to_vec(), Some(vec![0.0; c.len()]), (k * batch) as u64).unwrap()
            })
            .collect();
        let mut skipped = SkipCounts::default();
        skipped.add("non_numeric");
        Memory { schema, batches, skipped, next: 0 }
    }
}

impl Iterator for Memory {
    type Item = Result<Batch, SourceError>;
    fn next(&mut self) -> Option<Self::Item> {
        let b = self.batches.get(self.next).cloned();
        self.next += 1;
        b.map(Ok)
    }
}

impl Source for Memory {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }
    fn has_labels(&self) -> bool {
        true
    }
    fn position(&self) -> Position {
        Position::Row(self.next as u64)
    }
    fn skipped(&self) -> &SkipCounts {
        &self.skipped
    }
}

fn scores(order: Order, values: &[f64]) -> (Vec<f64>, u64) {
    let mut src = Memory::new(values, 3);
    let mut model = MovingAverageParams { window_size: Some(4), ..Default::default() }
        .build(&Schema::shared(["v"]).unwrap())
        .unwrap();
    let mut out = Vec::new();
    let stats = run(&mut src, &mut model, &mut FixedThreshold(1.0), &RunConfig { order, ..Default::default() }, |s| {
        out.extend_from_slice(s.scores);
        assert!(s.thresholds.iter().all(|t| *t == 1.0));
        Ok(())
    })
    .unwrap();
    assert_eq!(stats.rows, values.len() as u64);
    assert_eq!(stats.skipped.get("non_numeric"), 1);
    (out, stats.anomalies)
}

#[test]
fn order_policy_decides_what_the_score_has_seen() {
    let values = [1.0, 1.0, 1.0, 1.0, 21.0, 1.0, 1.0];
    let (prequential, flagged) = scores(Order::ScoreThenLearn, &values);
    // Window {1,1,1,1}: (21 - 1) / 5 = 4.
    assert_eq!(prequential[4], 4.0);
    assert_eq!(prequential[0], 0.0, "nothing learned before the first score");
    // The row after the spike scores |1 - 6| / 5 = 1.0 against window {1,1,1,21}: not strictly above.
    assert_eq!(prequential[5], 1.0);
    assert_eq!(flagged, 1, "only the spike is strictly above 1.0");
    let (in_sample, _) = scores(Order::LearnThenScore, &values);
    // The window already holds 21: {1,1,1,21}, mean 6 -> (21 - 6) / 5 = 3.
    assert_eq!(in_sample[4], 3.0);
    assert_eq!(in_sample[0], 0.0, "a lone value does not move its own mean");
}

#[test]
fn a_failing_sink_stops_the_run() {
    let mut src = Memory::new(&[1.0; 10], 2);
    let mut model = onad_models::NullModel::default();
    let mut calls = 0;
    let err = run(&mut src, &mut model, &mut FixedThreshold(0.5), &RunConfig::default(), |_| {
        calls += 1;
        if calls == 2 { Err("disk full".into()) } else { Ok(()) }
    })
    .unwrap_err();
    assert!(matches!(err, PipelineError::Sink(_)));
    assert_eq!(err.to_string(), "output: disk full");
    assert_eq!(calls, 2);
}
