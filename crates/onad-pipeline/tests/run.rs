//! The processing loop with real models: order policy, threshold counts, sink errors, skip counts.

use onad_core::{Batch, DetectorParams, Position, Schema, SchemaRef, SkipCounts, Source, SourceError};
use onad_models::MovingAverageParams;
use onad_pipeline::{FixedThreshold, Order, PipelineError, RunConfig, run};

/// An in-memory source over prepared batches (labelled when its batches are).
#[derive(Debug)]
struct Memory {
    schema: SchemaRef,
    batches: Vec<Batch>,
    skipped: SkipCounts,
    next: usize,
}

impl Memory {
    /// Batches of one labelled feature, with one row reported as skipped.
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
        self.batches.first().is_some_and(|b| b.labels().is_some())
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

mod keyed {
    use super::*;
    use onad_pipeline::{KeyedConfig, KeyedStats, NoThreshold, run_keyed};

    /// Rows of (key, value): 64 keys, each with its own level, plus spikes.
    fn keyed_source(rows: usize, batch: usize) -> Memory {
        let schema = Schema::shared(["key", "v"]).unwrap();
        let mut values = Vec::with_capacity(rows * 2);
        let mut x = 7u64;
        for i in 0..rows {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = (x >> 40) % 64;
            let spike = if i % 97 == 0 { 50.0 } else { 0.0 };
            values.extend_from_slice(&[key as f64, key as f64 * 10.0 + ((x >> 20) % 7) as f64 + spike]);
        }
        let batches = values
            .chunks(batch * 2)
            .enumerate()
            .map(|(k, c)| Batch::from_rows(schema.clone(), c.to_vec(), None, (k * batch) as u64).unwrap())
            .collect();
        Memory { schema, batches, next: 0, skipped: SkipCounts::default() }
    }

    fn run_with_workers(workers: usize, max_keys: Option<usize>) -> (Vec<(u64, u64)>, KeyedStats) {
        let mut src = keyed_source(20_000, 333);
        let proto = MovingAverageParams { window_size: Some(20), ..Default::default() }
            .build(&Schema::shared(["v"]).unwrap())
            .unwrap();
        let config = KeyedConfig {
            key_column: 0,
            workers,
            max_keys,
            max_error_rate: None,
            depth: 3,
            order: Order::ScoreThenLearn,
            snapshot_at_end: false,
        };
        let mut out = Vec::new();
        let (stats, keyed) = run_keyed(
            &mut src,
            &proto,
            &mut NoThreshold,
            &config,
            Vec::new(),
            &|_| onad_pipeline::Tally::default(),
            |s| {
                out.extend(s.row_ids().iter().zip(s.scores).map(|(id, sc)| (*id, sc.to_bits())));
                Ok(())
            },
            |_| Ok(onad_pipeline::KeyedAction::Continue),
            |_, _, _| Ok(()),
        )
        .unwrap();
        assert_eq!(stats.rows, 20_000);
        (out, keyed)
    }

    #[test]
    fn any_number_of_workers_gives_the_same_scores_in_input_order() {
        let (one, k1) = run_with_workers(1, None);
        assert_eq!(one.iter().map(|r| r.0).collect::<Vec<_>>(), (0..20_000).collect::<Vec<u64>>());
        assert_eq!(k1.models_created, 64);
        for workers in [2, 3, 4] {
            let (many, k) = run_with_workers(workers, None);
            assert_eq!(many, one, "{workers} workers differ from one");
            assert_eq!((k.models_created, k.evictions, k.live_models), (64, 0, 64));
        }
        // Per-key models see only their key: the score of a key's first row is 0.
        assert_eq!(one[0].1, 0.0f64.to_bits());
    }

    /// A source that counts how many batches have been read, shared with the sink.
    #[derive(Debug)]
    struct Counting {
        inner: Memory,
        read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Iterator for Counting {
        type Item = Result<Batch, SourceError>;
        fn next(&mut self) -> Option<Self::Item> {
            let b = self.inner.next();
            if b.is_some() {
                self.read.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            b
        }
    }

    impl Source for Counting {
        fn schema(&self) -> &SchemaRef {
            self.inner.schema()
        }
        fn has_labels(&self) -> bool {
            false
        }
        fn position(&self) -> Position {
            self.inner.position()
        }
        fn skipped(&self) -> &SkipCounts {
            self.inner.skipped()
        }
    }

    #[test]
    fn a_slow_sink_holds_the_reader_back() {
        // T8: with a slow sink the reader never runs more than `depth` batches ahead, and nothing is dropped.
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut src = Counting { inner: keyed_source(5_000, 100), read: read.clone() };
        let proto = MovingAverageParams { window_size: Some(5), ..Default::default() }
            .build(&Schema::shared(["v"]).unwrap())
            .unwrap();
        let depth = 3;
        let config = KeyedConfig {
            key_column: 0,
            workers: 2,
            max_keys: None,
            max_error_rate: None,
            depth,
            order: Order::ScoreThenLearn,
            snapshot_at_end: false,
        };
        let (mut emitted, mut ahead, mut rows) = (0usize, 0usize, 0usize);
        run_keyed(
            &mut src,
            &proto,
            &mut NoThreshold,
            &config,
            Vec::new(),
            &|_| onad_pipeline::Tally::default(),
            |s| {
                std::thread::sleep(std::time::Duration::from_millis(2));
                emitted += 1;
                rows += s.scores.len();
                ahead = ahead.max(read.load(std::sync::atomic::Ordering::SeqCst) - emitted);
                Ok(())
            },
            |_| Ok(onad_pipeline::KeyedAction::Continue),
            |_, _, _| Ok(()),
        )
        .unwrap();
        assert_eq!(rows, 5_000, "no row dropped");
        assert_eq!(emitted, 50);
        assert!(ahead <= depth, "the reader ran {ahead} batches ahead of a slow sink (depth {depth})");
    }

    /// A broker-like source: asking for a batch acknowledges the one before. It records, at each request,
    /// how many rows it had yielded and how many the sink had received by then.
    #[derive(Debug)]
    struct Acking {
        inner: Memory,
        yielded: usize,
        emitted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        at_request: Vec<(usize, usize)>,
    }

    impl Iterator for Acking {
        type Item = Result<Batch, SourceError>;
        fn next(&mut self) -> Option<Self::Item> {
            self.at_request.push((self.yielded, self.emitted.load(std::sync::atomic::Ordering::SeqCst)));
            let b = self.inner.next();
            if let Some(Ok(b)) = &b {
                self.yielded += b.num_rows();
            }
            b
        }
    }

    impl Source for Acking {
        fn schema(&self) -> &SchemaRef {
            self.inner.schema()
        }
        fn has_labels(&self) -> bool {
            false
        }
        fn position(&self) -> Position {
            self.inner.position()
        }
        fn skipped(&self) -> &SkipCounts {
            self.inner.skipped()
        }
        fn acknowledges_on_next(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_broker_batch_is_scored_before_the_next_request_acknowledges_it() {
        let emitted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut src =
            Acking { inner: keyed_source(3_000, 100), yielded: 0, emitted: emitted.clone(), at_request: Vec::new() };
        let proto = MovingAverageParams { window_size: Some(5), ..Default::default() }
            .build(&Schema::shared(["v"]).unwrap())
            .unwrap();
        let config = KeyedConfig {
            key_column: 0,
            workers: 3,
            max_keys: None,
            max_error_rate: None,
            depth: 4,
            order: Order::ScoreThenLearn,
            snapshot_at_end: false,
        };
        run_keyed(
            &mut src,
            &proto,
            &mut NoThreshold,
            &config,
            Vec::new(),
            &|_| onad_pipeline::Tally::default(),
            |s| {
                emitted.fetch_add(s.scores.len(), std::sync::atomic::Ordering::SeqCst);
                Ok(())
            },
            |_| Ok(onad_pipeline::KeyedAction::Continue),
            |_, _, _| Ok(()),
        )
        .unwrap();
        assert_eq!(src.at_request.len(), 31);
        for (yielded, emitted) in &src.at_request {
            assert_eq!(yielded, emitted, "a batch was acknowledged (next batch asked for) before it was scored");
        }
    }

    #[test]
    fn the_model_cap_evicts_least_recently_used_keys() {
        let (capped, k) = run_with_workers(2, Some(16));
        assert!(k.evictions > 1000, "{k:?}");
        assert!(k.live_models <= 16, "{k:?}");
        assert_eq!(k.models_created, k.evictions + k.live_models);
        let (uncapped, _) = run_with_workers(2, None);
        assert_ne!(capped, uncapped, "evicted keys restart from a fresh model");
        // Deterministic with the cap too, for a fixed worker count.
        assert_eq!(run_with_workers(2, Some(16)).0, capped);
    }
}
