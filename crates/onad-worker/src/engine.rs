//! What every transport shares: the partitions a worker owns, turning their messages into scored rows,
//! and the snapshot step. A transport (Kafka consumer groups, Redis Streams) decides which partitions are
//! owned, delivers their messages in order, and commits or acknowledges what [`Engine::snapshot`] made
//! durable; the rules of the state protocol live here once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use onad_models::AnyPipeline;
use onad_sources::{JsonObjects, SourceOptions, message_key};
use thiserror::Error;

use crate::metrics::Metrics;
use crate::output::{Output, OutputError, ScoredMessage};
use crate::state::{self, Applied, Lru, ModelConfig, PartitionState, SnapshotRef};
use crate::store::{Saved, SnapshotStore, StoreError};

/// What every worker is configured with, whatever its transport.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The consumer group the workers share (and the prefix of their keys in a shared store).
    pub group: String,
    /// The models.
    pub model: ModelConfig,
    /// How JSON objects become rows (label column, columns, exclusions).
    pub source: SourceOptions,
    /// Snapshot a partition after this many messages.
    pub snapshot_every: u64,
    /// And at least this often when it has changed.
    pub snapshot_interval: Duration,
    /// Fail once the broker has been unreachable this long (`None`: keep retrying).
    pub give_up: Option<Duration>,
    /// Stop (snapshot, leave the group) when no message has arrived for this long, counted from the
    /// first partition taken (`None`: run until a signal).
    pub exit_when_idle: Option<Duration>,
    /// A log line with the counters this often.
    pub log_every: Duration,
}

impl WorkerOptions {
    /// The defaults for the rest: snapshots every 10,000 messages or 5 s, no give-up, no idle exit, a
    /// log line a minute.
    pub fn new(group: &str, model: ModelConfig) -> Self {
        WorkerOptions {
            group: group.into(),
            model,
            source: SourceOptions::default(),
            snapshot_every: 10_000,
            snapshot_interval: Duration::from_secs(5),
            give_up: None,
            exit_when_idle: None,
            log_every: Duration::from_secs(60),
        }
    }
}

/// A partition's name in the store and in messages: `TOPIC-N`.
fn partition_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Why a worker stopped with an error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The broker (Kafka or Redis) could not be used.
    #[error("{connector} {address}: {message}")]
    Broker {
        /// `kafka` or `redis`.
        connector: &'static str,
        /// The brokers, as configured (no password).
        address: String,
        /// What failed.
        message: String,
    },
    /// The snapshot store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A snapshot could not be encoded or a stored one is not valid for this worker.
    #[error("partition {partition}: {message}")]
    Snapshot {
        /// `TOPIC-N`.
        partition: String,
        /// What is wrong.
        message: String,
    },
    /// The input's columns cannot be read or do not match a restored partition's.
    #[error("{0}")]
    Input(String),
}

/// What a finished worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Messages read.
    pub records_in: u64,
    /// Rows sent to the output.
    pub records_out: u64,
    /// Duplicates not applied.
    pub duplicates: u64,
    /// Snapshots written.
    pub snapshots: u64,
    /// Snapshots refused by the epoch fence.
    pub fenced: u64,
    /// Rebalances (or, over Redis Streams, partitions taken or handed over).
    pub rebalances: u64,
}

impl WorkerReport {
    pub(crate) fn of(m: &Metrics) -> Self {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        WorkerReport {
            records_in: get(&m.records_in),
            records_out: get(&m.records_out),
            duplicates: get(&m.duplicates),
            snapshots: get(&m.snapshots),
            fenced: get(&m.snapshots_fenced),
            rebalances: get(&m.rebalances),
        }
    }
}

/// A partition this worker owns.
pub(crate) struct Owned {
    epoch: u64,
    pub(crate) state: PartitionState,
    lru: Lru,
    /// Messages applied (or skipped) since the last snapshot.
    dirty: u64,
    last_snapshot: Instant,
}

/// The owned partitions and everything that turns their messages into rows and snapshots.
pub(crate) struct Engine {
    /// The input's name: partitions are `NAME-N` in the store, rows `NAME/N/OFFSET` in the output.
    pub(crate) topic: String,
    model: ModelConfig,
    source: SourceOptions,
    store: Box<dyn SnapshotStore>,
    pub(crate) output: Box<dyn Output>,
    pub(crate) owned: BTreeMap<i32, Owned>,
    pub(crate) metrics: Arc<Metrics>,
    /// Columns and the prototype model, from the first message.
    parser: Option<(JsonObjects, AnyPipeline)>,
    values: Vec<f64>,
    /// Rows sent since the output was last flushed.
    unflushed: bool,
}

impl Engine {
    /// The engine of a worker on `topic` (a Kafka topic, or the Redis streams' base name), with the
    /// model and source options of `options`.
    pub(crate) fn new(
        topic: &str,
        options: &WorkerOptions,
        store: Box<dyn SnapshotStore>,
        output: Box<dyn Output>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Engine {
            topic: topic.into(),
            model: options.model.clone(),
            source: options.source.clone(),
            store,
            output,
            owned: BTreeMap::new(),
            metrics,
            parser: None,
            values: Vec::new(),
            unflushed: false,
        }
    }

    pub(crate) fn name(&self, partition: i32) -> String {
        partition_name(&self.topic, partition)
    }

    /// Takes a partition over: a new epoch from the store, the newest snapshot restored. Returns the
    /// snapshot's next offset, or `None` when the partition has none (the transport's start policy).
    pub(crate) fn claim(&mut self, partition: i32) -> Result<Option<i64>, WorkerError> {
        let name = self.name(partition);
        let epoch = self.store.claim(&name)?;
        let restored = match self.store.load(&name)? {
            Some(bytes) => Some(
                state::decode(&bytes, &name, &self.model)
                    .map_err(|e| WorkerError::Snapshot { partition: name.clone(), message: e.to_string() })?,
            ),
            None => None,
        };
        let (state, at) = match restored {
            Some(s) => {
                let at = s.state.next_offset;
                tracing::info!(partition = %name, epoch, offset = at, rows = s.state.counts.rows, "worker: partition restored from its snapshot");
                (s.state, Some(at))
            }
            None => {
                tracing::info!(partition = %name, epoch, "worker: partition taken, no snapshot yet");
                (PartitionState::new(Vec::new()), None)
            }
        };
        let lru = Lru::of(&state);
        self.owned.insert(partition, Owned { epoch, state, lru, dirty: 0, last_snapshot: Instant::now() });
        self.metrics.partitions.store(self.owned.len() as u64, Ordering::Relaxed);
        Ok(at)
    }

    /// Forgets a partition (after its last snapshot, or when it was lost).
    pub(crate) fn release(&mut self, partition: i32) {
        self.owned.remove(&partition);
        self.metrics.partitions.store(self.owned.len() as u64, Ordering::Relaxed);
        self.metrics.detail().lag.remove(&partition);
    }

    /// The owned partitions with the offset each applies next.
    pub(crate) fn positions(&self) -> Vec<(i32, i64)> {
        self.owned.iter().map(|(p, o)| (*p, o.state.next_offset)).collect()
    }

    /// Messages applied to a partition since its last snapshot.
    pub(crate) fn dirty(&self, partition: i32) -> u64 {
        self.owned.get(&partition).map_or(0, |o| o.dirty)
    }

    /// Partitions due a snapshot: `every` messages since the last one, or changed and `interval` old.
    pub(crate) fn due(&self, every: u64, interval: Duration) -> Vec<i32> {
        let due = |o: &Owned| o.dirty >= every || (o.dirty > 0 && o.last_snapshot.elapsed() >= interval);
        self.owned.iter().filter(|(_, o)| due(o)).map(|(p, _)| *p).collect()
    }

    /// Makes what was sent visible downstream now, when anything was (for idle moments).
    pub(crate) fn flush_output(&mut self) -> Result<(), WorkerError> {
        if self.unflushed {
            self.output.flush()?;
            self.unflushed = false;
        }
        Ok(())
    }

    /// Snapshots the partitions named that changed since their last snapshot (all of them with `force`):
    /// output flushed first, then each saved under its epoch. Returns the partitions written with their
    /// next offsets (for the transport to commit or acknowledge); a fenced partition is dropped.
    pub(crate) fn snapshot(&mut self, partitions: &[i32], force: bool) -> Result<Vec<(i32, i64)>, WorkerError> {
        let due: Vec<i32> =
            partitions.iter().copied().filter(|p| self.owned.get(p).is_some_and(|o| o.dirty > 0 || force)).collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        // Every scored row is durable before any state that holds its effect.
        self.output.flush()?;
        self.unflushed = false;
        let mut written = Vec::new();
        for p in due {
            let name = self.name(p);
            let o = &self.owned[&p];
            let started = Instant::now();
            let snap =
                SnapshotRef { epoch: o.epoch, topic: &self.topic, partition: p, config: &self.model, state: &o.state };
            let bytes = state::encode(snap)
                .map_err(|e| WorkerError::Snapshot { partition: name.clone(), message: e.to_string() })?;
            match self.store.save(&name, o.epoch, &bytes)? {
                Saved::Written => {
                    let m = &self.metrics;
                    Metrics::inc(&m.snapshots);
                    m.snapshot_bytes.store(bytes.len() as u64, Ordering::Relaxed);
                    m.snapshot_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    let next = o.state.next_offset;
                    tracing::debug!(partition = %name, offset = next, bytes = bytes.len(), "worker: snapshot written");
                    written.push((p, next));
                    let o = self.owned.get_mut(&p).expect("due partitions are owned");
                    o.dirty = 0;
                    o.last_snapshot = Instant::now();
                }
                Saved::Fenced { current } => {
                    Metrics::inc(&self.metrics.snapshots_fenced);
                    tracing::warn!(
                        partition = %name, epoch = o.epoch, current,
                        "worker: snapshot refused: another worker has claimed the partition since; dropping it here"
                    );
                    self.release(p);
                }
            }
        }
        Ok(written)
    }

    /// Applies one message of an owned partition: a duplicate (offset applied before) is counted and
    /// left; a bad row is counted by reason and its offset applied; a good row is scored, learned and sent.
    pub(crate) fn process(
        &mut self,
        p: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<(), WorkerError> {
        Metrics::inc(&self.metrics.records_in);
        let Some(owned) = self.owned.get(&p) else { return Ok(()) };
        if owned.state.next_offset > offset {
            Metrics::inc(&self.metrics.duplicates);
            return Ok(());
        }
        if self.parser.is_none() {
            match JsonObjects::from_first(&self.topic, payload, &self.source) {
                Ok(objects) => {
                    let proto = state::prototype(&self.model, objects.schema())
                        .map_err(|e| WorkerError::Input(format!("{}: cannot build the model: {e}", self.topic)))?;
                    self.parser = Some((objects, proto));
                }
                Err(e) => {
                    // Not an object to take columns from: a bad row like any other.
                    tracing::debug!(partition = %self.name(p), offset, error = %e, "worker: bad message before the columns are known");
                    self.skip(p, offset, "invalid_json");
                    return Ok(());
                }
            }
        }
        let (objects, proto) = self.parser.as_mut().expect("set above");
        let owned = self.owned.get_mut(&p).expect("owned");
        let names = objects.schema().names();
        if owned.state.columns.is_empty() {
            owned.state.columns = names.to_vec();
        } else if owned.state.columns != names {
            return Err(WorkerError::Input(format!(
                "partition {}: its snapshot was taken over the columns {:?}, this worker reads {names:?}",
                partition_name(&self.topic, p),
                owned.state.columns
            )));
        }
        self.values.clear();
        match objects.parse(payload, offset as u64, &mut self.values) {
            Ok(label) => {
                let has_labels = objects.has_labels();
                let evicted = owned.state.counts.evictions;
                let applied =
                    owned.state.apply(offset, message_key(key), &self.values, &self.model, proto, &mut owned.lru);
                owned.dirty += 1;
                self.metrics.evictions.fetch_add(owned.state.counts.evictions - evicted, Ordering::Relaxed);
                if let Applied::Scored { score, threshold, anomaly } = applied {
                    let key_text = key.map(String::from_utf8_lossy);
                    let row = ScoredMessage {
                        topic: &self.topic,
                        partition: p,
                        offset,
                        key: key_text.as_deref(),
                        score,
                        threshold,
                        anomaly,
                        label: has_labels.then_some(label),
                    };
                    self.output.send(&row)?;
                    self.unflushed = true;
                    Metrics::inc(&self.metrics.records_out);
                }
            }
            Err(bad) => {
                tracing::debug!(partition = %partition_name(&self.topic, p), offset, error = %bad, "worker: bad message skipped");
                self.skip(p, offset, bad.reason);
            }
        }
        Ok(())
    }

    fn skip(&mut self, p: i32, offset: i64, reason: &str) {
        let owned = self.owned.get_mut(&p).expect("owned");
        if owned.state.skip(offset, reason) {
            owned.dirty += 1;
            *self.metrics.detail().skipped.entry(reason.to_owned()).or_default() += 1;
        }
    }
}
