//! One model per entity, sharded over worker threads: rows carry a key column (a card, a host, a sensor);
//! each key gets its own model, built on first sight from a prototype; keys are spread over `workers`
//! threads by a fixed hash, so every key's rows are learned in input order by one thread, and the scores
//! come back in input order. The output is therefore identical for any number of workers.
//!
//! Channels are bounded (`depth` batches in flight), so a slow sink blocks the reader instead of letting
//! memory grow. The number of live models per worker is capped: past `max_keys` (split evenly over the
//! workers) the least recently used model is dropped and counted as an eviction.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};
use onad_core::{Batch, Detector, Source};

use crate::run::{BoxError, Flagger, Order, PipelineError, Progress, RunStats, Scored};
use crate::threshold::Threshold;

/// How a keyed run is spread over threads.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedConfig {
    /// Index of the key column within the source's feature columns (it is not passed to the models).
    pub key_column: usize,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Most live per-key models in total (`None`: unbounded).
    pub max_keys: Option<usize>,
    /// Batches in flight between the reader and the workers.
    pub depth: usize,
    /// Score-then-learn or learn-then-score.
    pub order: Order,
    /// Take a snapshot (for a final checkpoint) when the source ends.
    pub snapshot_at_end: bool,
}

/// Counters of a keyed run beyond [`RunStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyedStats {
    /// Distinct models created (a key seen again after eviction counts again).
    pub models_created: u64,
    /// Models dropped by the LRU cap.
    pub evictions: u64,
    /// Models alive at the end.
    pub live_models: u64,
}

/// Work for one worker: rows of one batch (without the key column) with their keys.
struct Job {
    seq: u64,
    keys: Vec<u64>,
    rows: Vec<f64>,
}

/// A per-key model with its key and its last-use tick (the LRU order), as snapshots carry them.
pub type KeyedModel<D> = (u64, u64, D);

/// A message to a worker.
enum Msg<D> {
    Work(Job),
    /// Send a copy of every live model (sent only when nothing is in flight).
    Snapshot(Sender<Vec<KeyedModel<D>>>),
}

/// What a keyed run does after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedAction {
    /// Go on.
    Continue,
    /// Finish the batches in flight, snapshot every model (for a checkpoint), go on.
    Snapshot,
    /// Snapshot, then stop.
    SnapshotAndStop,
    /// Stop without a snapshot.
    Stop,
}

/// A batch sent to the workers and not yet emitted: its sequence number, the batch, the worker of each
/// row, and each worker's scores once received.
type Pending = (u64, Batch, Vec<usize>, Vec<Option<Vec<f64>>>);

struct Done {
    seq: u64,
    worker: usize,
    scores: Vec<f64>,
}

fn spread(key: u64, workers: usize) -> usize {
    // SplitMix64 finaliser: a fixed, platform-independent hash.
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % workers as u64) as usize
}

/// A worker's models, least recently used first out.
struct Models<D> {
    models: HashMap<u64, (D, u64)>,
    by_use: BTreeMap<u64, u64>,
    tick: u64,
    cap: Option<usize>,
    created: u64,
    evictions: u64,
}

impl<D: Detector + Clone> Models<D> {
    fn get(&mut self, key: u64, prototype: &D) -> &mut D {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, used)) = self.models.get_mut(&key) {
            self.by_use.remove(used);
            *used = tick;
        } else {
            if let Some(cap) = self.cap {
                while self.models.len() >= cap.max(1) {
                    let Some((_, oldest)) = self.by_use.pop_first() else { break };
                    self.models.remove(&oldest);
                    self.evictions += 1;
                }
            }
            self.models.insert(key, (prototype.clone(), tick));
            self.created += 1;
        }
        self.by_use.insert(tick, key);
        &mut self.models.get_mut(&key).expect("inserted above").0
    }
}

#[allow(clippy::too_many_arguments)]
fn worker<D: Detector + Clone>(
    id: usize,
    prototype: D,
    width: usize,
    order: Order,
    cap: Option<usize>,
    initial: Vec<KeyedModel<D>>,
    jobs: Receiver<Msg<D>>,
    done: Sender<Done>,
) -> Models<D> {
    let mut models = Models { models: HashMap::new(), by_use: BTreeMap::new(), tick: 0, cap, created: 0, evictions: 0 };
    for (key, tick, model) in initial {
        models.tick = models.tick.max(tick);
        models.by_use.insert(tick, key);
        models.models.insert(key, (model, tick));
    }
    for msg in jobs {
        let job = match msg {
            Msg::Work(job) => job,
            Msg::Snapshot(reply) => {
                let copy = models.models.iter().map(|(k, (m, t))| (*k, *t, m.clone())).collect();
                if reply.send(copy).is_err() {
                    break;
                }
                continue;
            }
        };
        let mut scores = Vec::with_capacity(job.keys.len());
        for (key, row) in job.keys.iter().zip(job.rows.chunks_exact(width.max(1))) {
            let row = if width == 0 { &[][..] } else { row };
            let m = models.get(*key, &prototype);
            scores.push(match order {
                Order::ScoreThenLearn => m.score_learn_one(row),
                Order::LearnThenScore => m.learn_score_one(row),
            });
        }
        if done.send(Done { seq: job.seq, worker: id, scores }).is_err() {
            break;
        }
    }
    models
}

/// Runs a per-key model over `source` on `config.workers` threads; scores reach `threshold` and `sink` in
/// input order, exactly as a one-thread run would produce them. `prototype` is cloned for each new key;
/// it must be built for the source's features without the key column. `after_batch` sees the progress
/// after each batch is read (monitoring, signals, checkpoint timing) and may ask for a snapshot, which
/// `on_snapshot` receives (with the threshold, every live model sorted by key, and the progress) once all
/// batches read so far are scored: the state to checkpoint at that position. `initial` models (from a
/// snapshot) are handed to the workers that own their keys before the run starts.
#[allow(clippy::too_many_arguments)]
pub fn run_keyed<S, D, T, F, H, P>(
    source: &mut S,
    prototype: &D,
    threshold: &mut T,
    config: &KeyedConfig,
    initial: Vec<KeyedModel<D>>,
    mut sink: F,
    mut after_batch: H,
    mut on_snapshot: P,
) -> Result<(RunStats, KeyedStats), PipelineError>
where
    S: Source + ?Sized,
    D: Detector + Clone + Send,
    T: Threshold + ?Sized,
    F: FnMut(&Scored<'_>) -> Result<(), BoxError>,
    H: FnMut(&Progress<'_>) -> Result<KeyedAction, BoxError>,
    P: FnMut(&T, Vec<KeyedModel<D>>, &Progress<'_>) -> Result<(), BoxError>,
{
    let start = Instant::now();
    let n = config.workers.max(1);
    let depth = config.depth.max(1);
    let d = source.schema().len();
    let key_col = config.key_column;
    let width = d.saturating_sub(1);
    let cap = config.max_keys.map(|m| m.div_ceil(n));
    let mut stats = RunStats::default();
    let mut keyed = KeyedStats::default();

    std::thread::scope(|scope| -> Result<(), PipelineError> {
        let (done_tx, done_rx) = bounded::<Done>(n * depth);
        let mut job_txs = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        let mut shares: Vec<Vec<KeyedModel<D>>> = (0..n).map(|_| Vec::new()).collect();
        for m in initial {
            shares[spread(m.0, n)].push(m);
        }
        for (id, share) in shares.into_iter().enumerate() {
            let (tx, rx) = bounded::<Msg<D>>(depth);
            job_txs.push(tx);
            let done = done_tx.clone();
            let proto = prototype.clone();
            let order = config.order;
            handles.push(scope.spawn(move || worker(id, proto, width, order, cap, share, rx, done)));
        }
        drop(done_tx);

        // Batches sent but not yet emitted, oldest first, with each row's worker and the scores received.
        let mut in_flight: std::collections::VecDeque<Pending> = Default::default();
        let (mut scores, mut flagger) = (Vec::new(), Flagger::default());
        let mut emit = |batch: &Batch,
                        owners: &[usize],
                        parts: Vec<Option<Vec<f64>>>,
                        stats: &mut RunStats,
                        threshold: &mut T|
         -> Result<(), PipelineError> {
            let mut cursors = vec![0usize; n];
            let parts: Vec<Vec<f64>> = parts.into_iter().map(Option::unwrap_or_default).collect();
            scores.clear();
            for &w in owners {
                scores.push(parts[w][cursors[w]]);
                cursors[w] += 1;
            }
            flagger.emit(batch, &scores, threshold, stats, &mut sink)
        };
        let receive_one = |in_flight: &mut std::collections::VecDeque<_>| -> Result<(), PipelineError> {
            let done: Done = done_rx.recv().map_err(|_| PipelineError::Hook("a worker thread stopped".into()))?;
            let first_seq = in_flight
                .front()
                .map(|f: &Pending| f.0)
                .ok_or_else(|| PipelineError::Hook("unexpected worker result".into()))?;
            let entry = &mut in_flight[(done.seq - first_seq) as usize];
            entry.3[done.worker] = Some(done.scores);
            Ok(())
        };

        // Scores everything read so far, then hands a copy of every worker's models to `on_snapshot`.
        macro_rules! snapshot {
            () => {{
                while let Some(front) = in_flight.front() {
                    if front.3.iter().all(Option::is_some) {
                        let (_, batch, owners, parts) = in_flight.pop_front().expect("checked");
                        emit(&batch, &owners, parts, &mut stats, &mut *threshold)?;
                    } else {
                        receive_one(&mut in_flight)?;
                    }
                }
                let (reply_tx, reply_rx) = bounded::<Vec<KeyedModel<D>>>(n);
                for tx in &job_txs {
                    tx.send(Msg::Snapshot(reply_tx.clone()))
                        .map_err(|_| PipelineError::Hook("a worker thread stopped".into()))?;
                }
                let mut models = Vec::new();
                for _ in 0..n {
                    let part = reply_rx.recv().map_err(|_| PipelineError::Hook("a worker thread stopped".into()))?;
                    models.extend(part);
                }
                models.sort_by_key(|m| m.0);
                let progress =
                    Progress { position: Source::position(&*source), stats: &stats, skipped: source.skipped() };
                on_snapshot(&*threshold, models, &progress).map_err(PipelineError::Hook)?;
            }};
        }

        let mut seq = 0u64;
        let result = (|| -> Result<(), PipelineError> {
            #[allow(clippy::while_let_on_iterator)]
            while let Some(batch) = source.next() {
                let batch = batch?;
                let mut jobs: Vec<Job> = (0..n).map(|_| Job { seq, keys: Vec::new(), rows: Vec::new() }).collect();
                let mut owners = Vec::with_capacity(batch.num_rows());
                for row in batch.rows() {
                    let key = row[key_col].to_bits();
                    let w = spread(key, n);
                    owners.push(w);
                    jobs[w].keys.push(key);
                    jobs[w].rows.extend(row.iter().enumerate().filter(|(j, _)| *j != key_col).map(|(_, v)| *v));
                }
                in_flight.push_back((seq, batch, owners, vec![None; n]));
                for (tx, job) in job_txs.iter().zip(jobs) {
                    tx.send(Msg::Work(job)).map_err(|_| PipelineError::Hook("a worker thread stopped".into()))?;
                }
                seq += 1;
                let progress =
                    Progress { position: Source::position(&*source), stats: &stats, skipped: source.skipped() };
                let action = after_batch(&progress).map_err(PipelineError::Hook)?;
                if matches!(action, KeyedAction::Snapshot | KeyedAction::SnapshotAndStop) {
                    snapshot!();
                }
                if matches!(action, KeyedAction::Stop | KeyedAction::SnapshotAndStop) {
                    stats.stopped_early = true;
                    break;
                }
                // Keep at most `depth` batches in flight; emit completed ones in order.
                while in_flight.len() > depth || in_flight.front().is_some_and(|f| f.3.iter().all(Option::is_some)) {
                    if in_flight.front().is_some_and(|f| f.3.iter().all(Option::is_some)) {
                        let (_, batch, owners, parts) = in_flight.pop_front().expect("checked");
                        emit(&batch, &owners, parts, &mut stats, &mut *threshold)?;
                    } else {
                        receive_one(&mut in_flight)?;
                    }
                }
            }
            if config.snapshot_at_end && !stats.stopped_early {
                snapshot!();
            }
            while let Some(front) = in_flight.front() {
                if front.3.iter().all(Option::is_some) {
                    let (_, batch, owners, parts) = in_flight.pop_front().expect("checked");
                    emit(&batch, &owners, parts, &mut stats, &mut *threshold)?;
                } else {
                    receive_one(&mut in_flight)?;
                }
            }
            // Every batch read has been scored and emitted: acknowledge them to the source.
            source.commit()?;
            Ok(())
        })();
        drop(job_txs);
        for h in handles {
            if let Ok(models) = h.join() {
                keyed.models_created += models.created;
                keyed.evictions += models.evictions;
                keyed.live_models += models.models.len() as u64;
            }
        }
        result
    })?;
    stats.skipped = source.skipped().clone();
    stats.elapsed = start.elapsed();
    Ok((stats, keyed))
}
