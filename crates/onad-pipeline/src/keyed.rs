//! One model per entity, sharded over worker threads: rows carry a key column (a card, a host, a sensor);
//! each key gets its own model, built on first sight from a prototype; keys are spread over `workers`
//! threads by a fixed hash, so every key's rows are learned in input order by one thread, and the scores
//! come back in input order. The output is therefore identical for any number of workers.
//!
//! Channels are bounded (`depth` batches in flight), so a slow sink blocks the reader instead of letting
//! memory grow. The number of live models can be capped: past `max_keys` the least recently used model
//! (over all workers: the reader keeps one LRU order in input order and tells the owning worker which
//! model to drop before which of its rows) is dropped and counted as an eviction, so the cap too gives
//! the same output for any number of workers.
//!
//! Keys are the bits of the key column's value, with 0.0 and -0.0 one key and every NaN one key.

use std::collections::HashMap;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};
use onad_core::{Batch, Detector, Source};
use serde::{Deserialize, Serialize};

use onad_core::Scored;

use crate::run::{BoxError, Flagger, Order, PipelineError, Progress, RunStats, check_error_rate};
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
    /// The error-rate policy of [`crate::RunConfig::max_error_rate`].
    pub max_error_rate: Option<f64>,
    /// Batches in flight between the reader and the workers.
    pub depth: usize,
    /// Score-then-learn or learn-then-score.
    pub order: Order,
    /// Take a snapshot (for a final checkpoint) when the source ends.
    pub snapshot_at_end: bool,
}

/// What a run counts inside its models, summed over per-key models: rows a model refused to learn (learn
/// protection) and times a model was replaced on drift. Kept for evicted models too (taken when they are
/// dropped), so totals survive the LRU cap and a resume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Rows the model refused to learn.
    pub protected_rows: u64,
    /// Times the model was replaced on drift.
    pub drift_resets: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.protected_rows += other.protected_rows;
        self.drift_resets += other.drift_resets;
    }
}

impl std::ops::Add for Tally {
    type Output = Tally;
    fn add(mut self, other: Tally) -> Tally {
        self += other;
        self
    }
}

impl std::iter::Sum for Tally {
    fn sum<I: Iterator<Item = Tally>>(iter: I) -> Tally {
        iter.fold(Tally::default(), |a, b| a + b)
    }
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
    /// The run's `tally` summed over every model alive at the end.
    pub tally_live: Tally,
    /// The run's `tally` summed over the models evicted in this run (taken when they were dropped).
    pub tally_evicted: Tally,
}

/// Work for one worker: rows of one batch (without the key column) with their keys, and the models to
/// drop (LRU cap) before the row at each index (an index equal to the row count: after the last row).
struct Job {
    seq: u64,
    keys: Vec<u64>,
    rows: Vec<f64>,
    evict: Vec<(usize, u64)>,
}

/// A per-key model with its key and its last-use tick (the LRU order), as snapshots carry them.
pub type KeyedModel<D> = (u64, u64, D);

/// Every live per-key model once all batches read so far are scored, and the run's tally of the models
/// evicted before that point: what a checkpoint of a per-key run holds.
#[derive(Debug, Clone)]
pub struct KeyedSnapshot<D> {
    /// The live models, sorted by key.
    pub models: Vec<KeyedModel<D>>,
    /// The `tally` summed over the models this run evicted so far.
    pub tally_evicted: Tally,
}

/// A message to a worker.
enum Msg<D> {
    Work(Job),
    /// Send a copy of every live model (sent only when nothing is in flight).
    Snapshot(Sender<(Vec<KeyedModel<D>>, Tally)>),
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

/// The key of a key-column value: its bits, with -0.0 taken as 0.0 and every NaN as one NaN.
pub(crate) fn key_of(v: f64) -> u64 {
    if v == 0.0 {
        0
    } else if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

fn spread(key: u64, workers: usize) -> usize {
    // SplitMix64 finaliser: a fixed, platform-independent hash.
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % workers as u64) as usize
}

/// The least-recently-used order of every live key, kept by the reader in input order: a doubly linked
/// list threaded through a slab, so a touch is O(1).
struct Lru {
    slots: Vec<LruSlot>,
    index: HashMap<u64, usize>,
    free: Vec<usize>,
    /// Oldest and newest slot (`NIL` when empty).
    head: usize,
    tail: usize,
    /// The last tick given out (ticks order uses; they are what checkpoints record).
    tick: u64,
}

struct LruSlot {
    key: u64,
    tick: u64,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

impl Lru {
    fn new() -> Lru {
        Lru { slots: Vec::new(), index: HashMap::new(), free: Vec::new(), head: NIL, tail: NIL, tick: 0 }
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slots[i].prev, self.slots[i].next);
        if prev == NIL {
            self.head = next
        } else {
            self.slots[prev].next = next
        }
        if next == NIL { self.tail = prev } else { self.slots[next].prev = prev }
    }

    fn push_newest(&mut self, i: usize) {
        self.slots[i].prev = self.tail;
        self.slots[i].next = NIL;
        if self.tail == NIL {
            self.head = i
        } else {
            self.slots[self.tail].next = i
        }
        self.tail = i;
    }

    /// Marks `key` used now; true when it was not live (a model will be created).
    fn touch(&mut self, key: u64) -> bool {
        self.tick += 1;
        if let Some(&i) = self.index.get(&key) {
            self.slots[i].tick = self.tick;
            if self.tail != i {
                self.unlink(i);
                self.push_newest(i);
            }
            return false;
        }
        let slot = LruSlot { key, tick: self.tick, prev: NIL, next: NIL };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.index.insert(key, i);
        self.push_newest(i);
        true
    }

    /// Removes and returns the least recently used key.
    fn pop_oldest(&mut self) -> Option<u64> {
        let i = self.head;
        if i == NIL {
            return None;
        }
        self.unlink(i);
        let key = self.slots[i].key;
        self.index.remove(&key);
        self.free.push(i);
        Some(key)
    }

    fn tick_of(&self, key: u64) -> u64 {
        self.index.get(&key).map_or(0, |&i| self.slots[i].tick)
    }
}

/// A worker's models.
struct Models<D> {
    models: HashMap<u64, D>,
    created: u64,
    tally_evicted: Tally,
}

#[allow(clippy::too_many_arguments)]
fn worker<D: Detector + Clone>(
    id: usize,
    prototype: D,
    width: usize,
    order: Order,
    initial: Vec<KeyedModel<D>>,
    tally: &(dyn Fn(&D) -> Tally + Sync),
    jobs: Receiver<Msg<D>>,
    done: Sender<Done>,
) -> Models<D> {
    let mut models = Models { models: HashMap::new(), created: 0, tally_evicted: Tally::default() };
    for (key, _tick, model) in initial {
        models.models.insert(key, model);
    }
    let evict = |models: &mut Models<D>, key: u64| {
        if let Some(m) = models.models.remove(&key) {
            models.tally_evicted += tally(&m);
        }
    };
    for msg in jobs {
        let job = match msg {
            Msg::Work(job) => job,
            Msg::Snapshot(reply) => {
                let copy = models.models.iter().map(|(k, m)| (*k, 0, m.clone())).collect();
                if reply.send((copy, models.tally_evicted)).is_err() {
                    break;
                }
                continue;
            }
        };
        let mut scores = Vec::with_capacity(job.keys.len());
        let mut evictions = job.evict.iter().peekable();
        for (i, key) in job.keys.iter().enumerate() {
            while let Some((_, k)) = evictions.next_if(|(at, _)| *at == i) {
                evict(&mut models, *k);
            }
            let row = &job.rows[i * width..(i + 1) * width];
            let m = models.models.entry(*key).or_insert_with(|| {
                models.created += 1;
                prototype.clone()
            });
            scores.push(match order {
                Order::ScoreThenLearn => m.score_learn_one(row),
                Order::LearnThenScore => m.learn_score_one(row),
            });
        }
        for (_, k) in evictions {
            evict(&mut models, *k);
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
/// `on_snapshot` receives (with the threshold, a [`KeyedSnapshot`] of every live model sorted by key with
/// its last-use tick, and the progress) once all batches read so far are scored: the state to checkpoint at that position.
/// `initial` models (from a snapshot) are handed to the workers that own their keys before the run
/// starts. `tally` counts something per model (rows it refused to learn, say); [`KeyedStats`] sums it over
/// the live and the evicted models.
#[allow(clippy::too_many_arguments)]
pub fn run_keyed<S, D, T, F, H, P>(
    source: &mut S,
    prototype: &D,
    threshold: &mut T,
    config: &KeyedConfig,
    initial: Vec<KeyedModel<D>>,
    tally: &(dyn Fn(&D) -> Tally + Sync),
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
    P: FnMut(&T, KeyedSnapshot<D>, &Progress<'_>) -> Result<(), BoxError>,
{
    let start = Instant::now();
    let n = config.workers.max(1);
    let depth = config.depth.max(1);
    let d = source.schema().len();
    let key_col = config.key_column;
    if key_col >= d {
        return Err(PipelineError::Hook(
            format!("the key column is column {key_col}, but the source has {d} columns").into(),
        ));
    }
    let width = d - 1;
    let mut stats = RunStats::default();
    let mut keyed = KeyedStats::default();
    // The one LRU order over all workers, kept only when there is a cap.
    let mut lru = config.max_keys.map(|_| Lru::new());
    if let Some(lru) = lru.as_mut() {
        let mut order: Vec<(u64, u64)> = initial.iter().map(|m| (m.1, m.0)).collect();
        order.sort_unstable();
        for (_, key) in order {
            lru.touch(key);
        }
    }

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
            // The workers share the model threads' budget (a tree ensemble's batch calls): each gets its part.
            let threads = (onad_core::threads::model_threads() / n).max(1);
            handles.push(scope.spawn(move || {
                onad_core::threads::set_thread_model_threads(threads);
                worker(id, proto, width, order, share, tally, rx, done)
            }));
        }
        drop(done_tx);

        // Batches sent but not yet emitted, oldest first, with each row's worker and the scores received.
        let mut in_flight: std::collections::VecDeque<Pending> = Default::default();
        let (mut scores, mut keys, mut flagger) = (Vec::new(), Vec::new(), Flagger::default());
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
            keys.clear();
            keys.extend(batch.rows().map(|r| r[key_col]));
            flagger.emit(batch, &scores, threshold, (Some(&keys), None), stats, &mut sink)
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
        macro_rules! drain {
            () => {{
                while let Some(front) = in_flight.front() {
                    if front.3.iter().all(Option::is_some) {
                        let (_, batch, owners, parts) = in_flight.pop_front().expect("checked");
                        emit(&batch, &owners, parts, &mut stats, &mut *threshold)?;
                    } else {
                        receive_one(&mut in_flight)?;
                    }
                }
            }};
        }
        macro_rules! snapshot {
            ($at_end:expr) => {{
                drain!();
                let (reply_tx, reply_rx) = bounded::<(Vec<KeyedModel<D>>, Tally)>(n);
                for tx in &job_txs {
                    tx.send(Msg::Snapshot(reply_tx.clone()))
                        .map_err(|_| PipelineError::Hook("a worker thread stopped".into()))?;
                }
                let (mut models, mut tally_evicted) = (Vec::new(), Tally::default());
                for _ in 0..n {
                    let (part, evicted) =
                        reply_rx.recv().map_err(|_| PipelineError::Hook("a worker thread stopped".into()))?;
                    models.extend(part);
                    tally_evicted += evicted;
                }
                if let Some(lru) = lru.as_ref() {
                    for m in &mut models {
                        m.1 = lru.tick_of(m.0);
                    }
                }
                models.sort_by_key(|m| m.0);
                let progress = Progress {
                    position: Source::position(&*source),
                    stats: &stats,
                    skipped: source.skipped(),
                    fraction_done: source.fraction_done(),
                    at_end: $at_end,
                };
                on_snapshot(&*threshold, KeyedSnapshot { models, tally_evicted }, &progress)
                    .map_err(PipelineError::Hook)?;
            }};
        }

        let mut seq = 0u64;
        // A broker source acknowledges a batch when the next is asked for: score everything first.
        let drain_before_read = source.acknowledges_on_next();
        let result = (|| -> Result<(), PipelineError> {
            loop {
                if drain_before_read {
                    drain!();
                }
                let Some(batch) = source.next() else { break };
                let batch = batch?;
                let mut jobs: Vec<Job> =
                    (0..n).map(|_| Job { seq, keys: Vec::new(), rows: Vec::new(), evict: Vec::new() }).collect();
                let mut owners = Vec::with_capacity(batch.num_rows());
                for row in batch.rows() {
                    let key = key_of(row[key_col]);
                    let w = spread(key, n);
                    if let (Some(lru), Some(cap)) = (lru.as_mut(), config.max_keys)
                        && lru.touch(key)
                    {
                        while lru.len() > cap.max(1) {
                            let Some(old) = lru.pop_oldest() else { break };
                            let owner = &mut jobs[spread(old, n)];
                            owner.evict.push((owner.keys.len(), old));
                            keyed.evictions += 1;
                            tracing::debug!(
                                key = f64::from_bits(old),
                                live = cap,
                                "per-key model evicted (least recently used)"
                            );
                        }
                    }
                    owners.push(w);
                    jobs[w].keys.push(key);
                    jobs[w].rows.extend(row.iter().enumerate().filter(|(j, _)| *j != key_col).map(|(_, v)| *v));
                }
                in_flight.push_back((seq, batch, owners, vec![None; n]));
                for (tx, job) in job_txs.iter().zip(jobs) {
                    tx.send(Msg::Work(job)).map_err(|_| PipelineError::Hook("a worker thread stopped".into()))?;
                }
                seq += 1;
                // The error rate counts rows read, scored or not yet.
                let read: u64 = stats.rows + in_flight.iter().map(|f| f.1.num_rows() as u64).sum::<u64>();
                check_error_rate(config.max_error_rate, read, source.skipped())?;
                let progress = Progress {
                    position: Source::position(&*source),
                    stats: &stats,
                    skipped: source.skipped(),
                    fraction_done: source.fraction_done(),
                    at_end: false,
                };
                let action = after_batch(&progress).map_err(PipelineError::Hook)?;
                if matches!(action, KeyedAction::Snapshot | KeyedAction::SnapshotAndStop) {
                    snapshot!(false);
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
                snapshot!(true);
            }
            drain!();
            // Every batch read has been scored and emitted: acknowledge them to the source.
            source.commit()?;
            Ok(())
        })();
        drop(job_txs);
        for h in handles {
            if let Ok(models) = h.join() {
                keyed.models_created += models.created;
                keyed.live_models += models.models.len() as u64;
                keyed.tally_live += models.models.values().map(tally).sum::<Tally>();
                keyed.tally_evicted += models.tally_evicted;
            }
        }
        result
    })?;
    stats.skipped = source.skipped().clone();
    stats.ignored_keys = source.ignored_keys();
    stats.elapsed = start.elapsed();
    Ok((stats, keyed))
}
