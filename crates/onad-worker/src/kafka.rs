//! The worker on a Kafka consumer group: the partitions it owns, their state, and the protocol that moves
//! state with them.
//!
//! Per partition, in this order and never the other way round:
//! 1. on assignment, claim a new epoch in the store, restore the newest valid snapshot and seek to its
//!    offset (no snapshot: the start policy);
//! 2. score and learn each message whose offset is at or past the state's next offset (earlier offsets
//!    are duplicates: counted, not applied again);
//! 3. every `snapshot_every` messages or `snapshot_interval`, and on revocation and shutdown: flush the
//!    output (every scored row durable), save the snapshot under the epoch (refused if another worker has
//!    claimed the partition since: the partition is dropped here), and only then commit the offset to the
//!    group. The group's commits are for lag tools; the snapshot's offset is where a new owner starts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use onad_core::SchemaRef;
use onad_models::AnyPipeline;
use onad_sources::{JsonObjects, SourceOptions, message_key};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext};
use thiserror::Error;

use crate::metrics::Metrics;
use crate::output::{Output, OutputError, ScoredMessage};
use crate::state::{self, Applied, Lru, ModelConfig, PartitionState, Snapshot};
use crate::store::{Saved, SnapshotStore, StoreError};

/// Where a partition without a snapshot starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// Its first message.
    #[default]
    Earliest,
    /// Messages produced from now on.
    Latest,
}

/// Everything a worker needs besides its store and output.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// The input topic (JSON objects, keyed by entity for per-key models).
    pub topic: String,
    /// The consumer group the workers share.
    pub group: String,
    /// The models.
    pub model: ModelConfig,
    /// How JSON objects become rows (label column, columns, exclusions).
    pub source: SourceOptions,
    /// Snapshot a partition after this many messages.
    pub snapshot_every: u64,
    /// And at least this often when it has changed.
    pub snapshot_interval: Duration,
    /// Where partitions without a snapshot start.
    pub start: StartAt,
    /// Fail once every broker has been unreachable this long (`None`: wait forever).
    pub give_up: Option<Duration>,
    /// Stop (snapshot, leave the group) when no message has arrived for this long (`None`: run until
    /// a signal).
    pub exit_when_idle: Option<Duration>,
    /// A log line with the counters this often.
    pub log_every: Duration,
    /// Further librdkafka settings (`session.timeout.ms`, ...).
    pub kafka: Vec<(String, String)>,
}

impl WorkerConfig {
    /// The defaults for the rest: snapshots every 10,000 messages or 5 s, earliest start, no give-up,
    /// a log line a minute, `session.timeout.ms=6000`.
    pub fn new(brokers: &str, topic: &str, group: &str, model: ModelConfig) -> Self {
        WorkerConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            group: group.into(),
            model,
            source: SourceOptions::default(),
            snapshot_every: 10_000,
            snapshot_interval: Duration::from_secs(5),
            start: StartAt::Earliest,
            give_up: None,
            exit_when_idle: None,
            log_every: Duration::from_secs(60),
            kafka: vec![("session.timeout.ms".into(), "6000".into())],
        }
    }
}

/// Why a worker stopped with an error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The consumer could not be created or subscribed.
    #[error("kafka {brokers}: {message}")]
    Kafka {
        /// The bootstrap servers.
        brokers: String,
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
    /// Rebalances.
    pub rebalances: u64,
}

struct Owned {
    epoch: u64,
    state: PartitionState,
    lru: Lru,
    /// Messages applied (or skipped) since the last snapshot.
    dirty: u64,
    last_snapshot: Instant,
}

struct Core {
    topic: String,
    model: ModelConfig,
    start: StartAt,
    store: Box<dyn SnapshotStore>,
    output: Box<dyn Output>,
    owned: BTreeMap<i32, Owned>,
    metrics: Arc<Metrics>,
    /// A failure inside a rebalance callback, for the main loop to end with.
    error: Option<WorkerError>,
    /// Since when librdkafka reports every broker down (cleared by a message).
    down_since: Option<Instant>,
    /// Rows sent since the output was last flushed.
    unflushed: bool,
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Core {
    fn name(&self, partition: i32) -> String {
        format!("{}-{partition}", self.topic)
    }

    /// Takes a partition over: claim, restore, and the offset to start from.
    fn assign(&mut self, partition: i32) -> Result<Offset, WorkerError> {
        let name = self.name(partition);
        let epoch = self.store.claim(&name)?;
        let restored = match self.store.load(&name)? {
            Some(bytes) => Some(
                state::decode(&bytes, &name, &self.model)
                    .map_err(|e| WorkerError::Snapshot { partition: name.clone(), message: e.to_string() })?,
            ),
            None => None,
        };
        let (state, offset) = match restored {
            Some(s) => {
                let at = s.state.next_offset;
                tracing::info!(partition = %name, epoch, offset = at, rows = s.state.counts.rows, "worker: partition restored from its snapshot");
                (s.state, Offset::Offset(at))
            }
            None => {
                tracing::info!(partition = %name, epoch, "worker: partition assigned, no snapshot yet");
                let start = match self.start {
                    StartAt::Earliest => Offset::Beginning,
                    StartAt::Latest => Offset::End,
                };
                (PartitionState::new(Vec::new()), start)
            }
        };
        let lru = Lru::of(&state);
        self.owned.insert(partition, Owned { epoch, state, lru, dirty: 0, last_snapshot: Instant::now() });
        Ok(offset)
    }

    /// Snapshots the partitions named (those with changes, or all of them with `force`), then commits
    /// their offsets; a fenced partition is dropped.
    fn snapshot(&mut self, partitions: &[i32], force: bool, consumer: &BaseConsumer<Cx>) -> Result<(), WorkerError> {
        let due: Vec<i32> =
            partitions.iter().copied().filter(|p| self.owned.get(p).is_some_and(|o| o.dirty > 0 || force)).collect();
        if due.is_empty() {
            return Ok(());
        }
        // Every scored row is durable before any state that holds its effect.
        self.output.flush()?;
        self.unflushed = false;
        let mut commit = TopicPartitionList::new();
        for p in due {
            let name = self.name(p);
            let o = &self.owned[&p];
            let started = Instant::now();
            let snap = Snapshot {
                epoch: o.epoch,
                topic: self.topic.clone(),
                partition: p,
                config: self.model.clone(),
                state: o.state.clone(),
            };
            let bytes = state::encode(&snap)
                .map_err(|e| WorkerError::Snapshot { partition: name.clone(), message: e.to_string() })?;
            match self.store.save(&name, o.epoch, &bytes)? {
                Saved::Written => {
                    let m = &self.metrics;
                    Metrics::inc(&m.snapshots);
                    m.snapshot_bytes.store(bytes.len() as u64, Ordering::Relaxed);
                    m.snapshot_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    let next = o.state.next_offset;
                    tracing::debug!(partition = %name, offset = next, bytes = bytes.len(), "worker: snapshot written");
                    let _ = commit.add_partition_offset(&self.topic, p, Offset::Offset(next));
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
                    self.owned.remove(&p);
                }
            }
        }
        if commit.count() > 0
            && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
        {
            // The snapshot is where a new owner starts; a failed commit only leaves lag tools behind.
            tracing::warn!(error = %e, "worker: cannot commit offsets after a snapshot (the snapshot stands)");
        }
        Ok(())
    }
}

/// The consumer's context: rebalances move state through the store.
struct Cx {
    core: Arc<Mutex<Core>>,
}

impl ClientContext for Cx {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown) {
            tracing::warn!(error = %error, reason, "worker: every broker is down; librdkafka keeps reconnecting");
            lock(&self.core).down_since.get_or_insert_with(Instant::now);
        } else {
            tracing::debug!(error = %error, reason, "worker: client error (librdkafka retries)");
        }
    }
}

impl ConsumerContext for Cx {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let mut core = lock(&self.core);
        Metrics::inc(&core.metrics.rebalances);
        let topic = core.topic.clone();
        let ours: Vec<i32> = tpl.elements().iter().filter(|e| e.topic() == topic).map(|e| e.partition()).collect();
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                tracing::info!(partitions = ?ours, "worker: partitions assigned");
                let mut failed = None;
                for &p in &ours {
                    match core.assign(p) {
                        Ok(offset) => {
                            let _ = tpl.set_partition_offset(&topic, p, offset);
                        }
                        Err(e) => failed = Some(e),
                    }
                }
                if let Some(e) = failed {
                    core.error = Some(e);
                }
                consumer.assign(tpl)
            }
            _ => {
                tracing::info!(partitions = ?ours, lost = consumer.assignment_lost(), "worker: partitions revoked");
                // Snapshot first (a lost assignment's save is fenced by the store if someone else has it).
                if let Err(e) = core.snapshot(&ours, false, consumer) {
                    core.error = Some(e);
                }
                for p in &ours {
                    core.owned.remove(p);
                    core.metrics.detail().lag.remove(p);
                }
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            core.error =
                Some(WorkerError::Kafka { brokers: String::new(), message: format!("cannot apply a rebalance: {e}") });
        }
    }
}

/// `ONAD_WORKER_REPLAY=AFTER:BACK` (tests only): once a partition's message at offset `AFTER - 1` has
/// been processed, seek that partition back to `AFTER - BACK`, so the broker delivers `BACK` messages a
/// second time, as after a lost fetch response or an offset reset.
fn replay_hook() -> Option<(i64, i64)> {
    let text = std::env::var("ONAD_WORKER_REPLAY").ok()?;
    let (a, b) = text.split_once(':')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// A worker: owns some partitions of the input topic within its group.
pub struct Worker {
    config: WorkerConfig,
    consumer: BaseConsumer<Cx>,
    core: Arc<Mutex<Core>>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("topic", &self.config.topic).field("group", &self.config.group).finish()
    }
}

impl Worker {
    /// Creates the consumer and joins the group (the first assignment arrives on the first poll).
    pub fn new(
        config: WorkerConfig,
        store: Box<dyn SnapshotStore>,
        output: Box<dyn Output>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, WorkerError> {
        let kafka = |message: String| WorkerError::Kafka { brokers: config.brokers.clone(), message };
        let core = Arc::new(Mutex::new(Core {
            topic: config.topic.clone(),
            model: config.model.clone(),
            start: config.start,
            store,
            output,
            owned: BTreeMap::new(),
            metrics: metrics.clone(),
            error: None,
            down_since: None,
            unflushed: false,
        }));
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        for (k, v) in &config.kafka {
            cc.set(k, v);
        }
        let consumer: BaseConsumer<Cx> = cc
            .create_with_context(Cx { core: core.clone() })
            .map_err(|e| kafka(format!("cannot create the consumer: {e}")))?;
        let metadata = consumer
            .fetch_metadata(Some(&config.topic), Duration::from_secs(10))
            .map_err(|e| kafka(format!("cannot reach the brokers within 10 s: {e}")))?;
        match metadata.topics().iter().find(|t| t.name() == config.topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {}
            _ => return Err(kafka(format!("topic '{}' does not exist or has no partitions", config.topic))),
        }
        consumer.subscribe(&[&config.topic]).map_err(|e| kafka(format!("cannot subscribe: {e}")))?;
        Ok(Worker { config, consumer, core, metrics, stop: Arc::new(AtomicBool::new(false)) })
    }

    /// A flag that stops the worker (drain, snapshot, leave the group) when set; SIGTERM and SIGINT set
    /// it once [`Worker::stop_on_signals`] is called.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Sets the stop flag on SIGTERM and SIGINT.
    pub fn stop_on_signals(&self) -> std::io::Result<()> {
        for s in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(s, self.stop.clone())?;
        }
        Ok(())
    }

    /// Runs until the stop flag, the idle limit or an error; snapshots every owned partition and leaves
    /// the group on the way out.
    pub fn run(self) -> Result<WorkerReport, WorkerError> {
        let result = self.run_loop();
        let Worker { consumer, core, metrics, .. } = self;
        let drained = {
            let mut c = lock(&core);
            let owned: Vec<i32> = c.owned.keys().copied().collect();
            // On an error, whatever was applied is still consistent: snapshot it (a store or output failure
            // fails again here, and is then reported as the first error).
            c.snapshot(&owned, false, &consumer)
        };
        // Closing the consumer leaves the group (the revocation finds nothing left to snapshot).
        drop(consumer);
        result?;
        drained?;
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        Ok(WorkerReport {
            records_in: get(&metrics.records_in),
            records_out: get(&metrics.records_out),
            duplicates: get(&metrics.duplicates),
            snapshots: get(&metrics.snapshots),
            fenced: get(&metrics.snapshots_fenced),
            rebalances: get(&metrics.rebalances),
        })
    }

    fn run_loop(&self) -> Result<(), WorkerError> {
        let mut parser: Option<(JsonObjects, AnyPipeline)> = None;
        let mut values = Vec::new();
        let (mut last_log, mut last_lag, mut last_message) = (Instant::now(), Instant::now(), Instant::now());
        let topic = self.config.topic.clone();
        let mut replay = replay_hook();
        while !self.stop.load(Ordering::Relaxed) {
            let polled = self.consumer.poll(Duration::from_millis(100));
            let mut core = lock(&self.core);
            if let Some(e) = core.error.take() {
                return Err(e);
            }
            match polled {
                // Idle: make what was sent visible downstream now rather than at the next snapshot.
                None if core.unflushed => {
                    core.output.flush()?;
                    core.unflushed = false;
                }
                None => {}
                Some(Err(e)) => tracing::debug!(error = %e, "worker: poll error (librdkafka retries)"),
                Some(Ok(m)) => {
                    last_message = Instant::now();
                    core.down_since = None;
                    Metrics::inc(&self.metrics.records_in);
                    let (p, offset) = (m.partition(), m.offset());
                    if m.topic() == topic && core.owned.contains_key(&p) {
                        self.process(&mut core, &mut parser, &mut values, p, offset, m.key(), m.payload())?;
                        if let Some((after, back)) = replay.filter(|(after, _)| offset + 1 == *after) {
                            // The duplicate-delivery test's hook: the broker delivers these offsets again.
                            replay = None;
                            let to = Offset::Offset((after - back).max(0));
                            if let Err(e) = self.consumer.seek(&topic, p, to, Duration::from_secs(5)) {
                                tracing::warn!(error = %e, "worker: ONAD_WORKER_REPLAY: cannot seek back");
                            }
                        }
                        if core.owned.get(&p).is_some_and(|o| o.dirty >= self.config.snapshot_every) {
                            core.snapshot(&[p], false, &self.consumer)?;
                        }
                    }
                }
            }
            let stale: Vec<i32> = core
                .owned
                .iter()
                .filter(|(_, o)| o.dirty > 0 && o.last_snapshot.elapsed() >= self.config.snapshot_interval)
                .map(|(p, _)| *p)
                .collect();
            core.snapshot(&stale, false, &self.consumer)?;
            if let (Some(g), Some(since)) = (self.config.give_up, core.down_since)
                && since.elapsed() >= g
            {
                return Err(WorkerError::Kafka {
                    brokers: self.config.brokers.clone(),
                    message: format!("every broker has been unreachable for {} ms (give_up_ms)", g.as_millis()),
                });
            }
            let owned: Vec<(i32, i64)> = core.owned.iter().map(|(p, o)| (*p, o.state.next_offset)).collect();
            drop(core);
            if last_lag.elapsed() >= Duration::from_secs(2) {
                self.update_lag(&owned);
                last_lag = Instant::now();
            }
            if last_log.elapsed() >= self.config.log_every {
                let (i, o, d, s, f, r, lag) = self.metrics.summary();
                tracing::info!(records_in = i, records_out = o, duplicates = d, snapshots = s, fenced = f, rebalances = r, lag, partitions = ?owned.iter().map(|x| x.0).collect::<Vec<_>>(), "worker: counters");
                last_log = Instant::now();
            }
            if self.config.exit_when_idle.is_some_and(|idle| last_message.elapsed() >= idle) {
                tracing::info!("worker: no message for the idle limit; stopping");
                break;
            }
        }
        Ok(())
    }

    /// Lag per owned partition from the brokers' high watermarks (a short request each).
    fn update_lag(&self, owned: &[(i32, i64)]) {
        let mut lags = BTreeMap::new();
        for &(p, next) in owned {
            if let Ok((_, high)) = self.consumer.fetch_watermarks(&self.config.topic, p, Duration::from_millis(500)) {
                lags.insert(p, (high - next).max(0));
            }
        }
        self.metrics.detail().lag = lags;
    }

    #[allow(clippy::too_many_arguments)]
    fn process(
        &self,
        core: &mut Core,
        parser: &mut Option<(JsonObjects, AnyPipeline)>,
        values: &mut Vec<f64>,
        p: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<(), WorkerError> {
        let name = core.name(p);
        let payload = payload.unwrap_or_default();
        if core.owned[&p].state.next_offset > offset {
            Metrics::inc(&self.metrics.duplicates);
            return Ok(());
        }
        if parser.is_none() {
            match JsonObjects::from_first(&self.config.topic, payload, &self.config.source) {
                Ok(objects) => {
                    let proto = state::prototype(&self.config.model, objects.schema()).map_err(|e| {
                        WorkerError::Input(format!("{}: cannot build the model: {e}", self.config.topic))
                    })?;
                    *parser = Some((objects, proto));
                }
                Err(e) => {
                    // Not an object to take columns from: a bad row like any other.
                    tracing::debug!(partition = %name, offset, error = %e, "worker: bad message before the columns are known");
                    return self.skip(core, p, offset, "invalid_json");
                }
            }
        }
        let (objects, proto) = parser.as_mut().expect("set above");
        let schema: &SchemaRef = objects.schema();
        let owned = core.owned.get_mut(&p).expect("owned");
        if owned.state.columns.is_empty() {
            owned.state.columns = schema.names().to_vec();
        } else if owned.state.columns != schema.names() {
            return Err(WorkerError::Input(format!(
                "partition {name}: its snapshot was taken over the columns {:?}, this worker reads {:?}",
                owned.state.columns,
                schema.names()
            )));
        }
        values.clear();
        match objects.parse(payload, offset as u64, values) {
            Ok(label) => {
                let has_labels = objects.has_labels();
                let evicted = owned.state.counts.evictions;
                let applied = owned.state.apply(offset, message_key(key), values, &core.model, proto, &mut owned.lru);
                owned.dirty += 1;
                self.metrics.evictions.fetch_add(owned.state.counts.evictions - evicted, Ordering::Relaxed);
                if let Applied::Scored { score, threshold, anomaly } = applied {
                    let key_text = key.map(String::from_utf8_lossy);
                    let row = ScoredMessage {
                        topic: &core.topic,
                        partition: p,
                        offset,
                        key: key_text.as_deref(),
                        score,
                        threshold,
                        anomaly,
                        label: has_labels.then_some(label),
                    };
                    core.output.send(&row)?;
                    core.unflushed = true;
                    Metrics::inc(&self.metrics.records_out);
                }
                Ok(())
            }
            Err(bad) => {
                tracing::debug!(partition = %name, offset, error = %bad, "worker: bad message skipped");
                self.skip(core, p, offset, bad.reason)
            }
        }
    }

    fn skip(&self, core: &mut Core, p: i32, offset: i64, reason: &str) -> Result<(), WorkerError> {
        let owned = core.owned.get_mut(&p).expect("owned");
        if owned.state.skip(offset, reason) {
            owned.dirty += 1;
            *self.metrics.detail().skipped.entry(reason.to_owned()).or_default() += 1;
        }
        Ok(())
    }
}
