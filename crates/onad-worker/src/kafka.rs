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

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext};

use crate::engine::{Engine, WorkerError, WorkerOptions, WorkerReport};
use crate::metrics::Metrics;
use crate::output::Output;
use crate::store::SnapshotStore;

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
    /// Group, models, snapshot policy and limits (shared with the Redis Streams worker).
    pub options: WorkerOptions,
    /// Where partitions without a snapshot start.
    pub start: StartAt,
    /// Further librdkafka settings (`session.timeout.ms`, ...).
    pub kafka: Vec<(String, String)>,
}

impl WorkerConfig {
    /// An earliest start and `session.timeout.ms=6000`. The rebalance protocol is librdkafka's default,
    /// eager; `partition.assignment.strategy=cooperative-sticky` makes it cooperative (docs/worker.md has
    /// the pauses measured with each).
    pub fn new(brokers: &str, topic: &str, options: WorkerOptions) -> Self {
        WorkerConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            options,
            start: StartAt::Earliest,
            kafka: vec![("session.timeout.ms".into(), "6000".into())],
        }
    }
}

struct Core {
    engine: Engine,
    start: StartAt,
    /// A failure inside a rebalance callback, for the main loop to end with.
    error: Option<WorkerError>,
    /// Since when librdkafka reports every broker down (cleared by a message).
    down_since: Option<Instant>,
    /// When a partition was last assigned (the idle limit counts from it).
    assigned_at: Option<Instant>,
    /// Partition -> high watermark, from librdkafka's statistics (once a second).
    high: BTreeMap<i32, i64>,
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Core {
    /// Snapshots, then commits what was written.
    fn snapshot(&mut self, partitions: &[i32], consumer: &BaseConsumer<Cx>) -> Result<(), WorkerError> {
        let written = self.engine.snapshot(partitions, false)?;
        let mut commit = TopicPartitionList::new();
        for (p, next) in written {
            let _ = commit.add_partition_offset(&self.engine.topic, p, Offset::Offset(next));
        }
        // Asynchronous: the snapshot is where a new owner starts, so the commit only keeps the group's
        // offsets (what lag tools read) near it, and a synchronous commit waits for as long as the group
        // coordinator is unreachable, which would hold the loop (and its give-up deadline) through an
        // outage. librdkafka sends what is outstanding before the consumer closes.
        if commit.count() > 0
            && let Err(e) = consumer.commit(&commit, CommitMode::Async)
        {
            tracing::warn!(error = %e, "worker: cannot commit offsets after a snapshot (the snapshot stands)");
        }
        Ok(())
    }
}

/// How long closing the consumer (leaving the group, sending outstanding commits) may take.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// Closes the consumer: leaves the group (the revocation finds nothing left to snapshot) and sends the
/// outstanding commits. With every broker down that cannot finish, and dropping the consumer would wait
/// for it without end; after [`CLOSE_WITHIN`] the consumer is left behind unclosed instead (the group
/// drops the member at its session timeout, and the snapshots stand).
fn close(consumer: BaseConsumer<Cx>) {
    let deadline = Instant::now() + CLOSE_WITHIN;
    match consumer.close_queue() {
        Ok(()) => {
            while !consumer.closed() && Instant::now() < deadline {
                consumer.poll(Duration::from_millis(100));
            }
        }
        Err(e) => tracing::warn!(error = %e, "worker: cannot close the consumer"),
    }
    if consumer.closed() {
        drop(consumer);
    } else {
        tracing::warn!(within_ms = CLOSE_WITHIN.as_millis() as u64, "worker: the consumer did not close; leaving it");
        std::mem::forget(consumer);
    }
}

/// The consumer's context: rebalances move state through the store.
struct Cx {
    core: Arc<Mutex<Core>>,
}

impl ClientContext for Cx {
    fn stats(&self, stats: rdkafka::Statistics) {
        self.note_watermarks(&stats);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if onad_sources::every_broker_down(&error, reason, "worker") {
            lock(&self.core).down_since.get_or_insert_with(Instant::now);
        }
    }
}

impl Cx {
    /// Keeps each partition's high watermark from librdkafka's statistics (`statistics.interval.ms`), and
    /// whether any broker is up: a message fetched before an outage can arrive after librdkafka reported
    /// every broker down (which it reports once), so only a broker seen up again ends the outage.
    fn note_watermarks(&self, stats: &rdkafka::Statistics) {
        let mut core = lock(&self.core);
        let brokers: Vec<&rdkafka::statistics::Broker> = stats.brokers.values().filter(|b| b.nodeid >= 0).collect();
        if brokers.iter().any(|b| b.state == "UP") {
            core.down_since = None;
        } else if !brokers.is_empty() {
            core.down_since.get_or_insert_with(Instant::now);
        }
        let Some(topic) = stats.topics.get(&core.engine.topic) else { return };
        let high: Vec<(i32, i64)> = topic
            .partitions
            .iter()
            .filter(|(p, s)| **p >= 0 && s.hi_offset >= 0)
            .map(|(p, s)| (*p, s.hi_offset))
            .collect();
        core.high.extend(high);
    }
}

impl ConsumerContext for Cx {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let mut core = lock(&self.core);
        let topic = core.engine.topic.clone();
        let ours: Vec<i32> = tpl.elements().iter().filter(|e| e.topic() == topic).map(|e| e.partition()).collect();
        // Under the cooperative protocol (`partition.assignment.strategy=cooperative-sticky`) the lists
        // are what is added or taken away, and a partition that stays is never revoked; under the eager
        // one, every rebalance revokes everything and assigns the whole new share.
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                tracing::info!(partitions = ?ours, cooperative, "worker: partitions assigned");
                Metrics::inc(&core.engine.metrics.rebalances);
                let start = match core.start {
                    StartAt::Earliest => Offset::Beginning,
                    StartAt::Latest => Offset::End,
                };
                for &p in &ours {
                    match core.engine.claim(p) {
                        Ok(at) => {
                            let _ = tpl.set_partition_offset(&topic, p, at.map_or(start, Offset::Offset));
                        }
                        Err(e) => core.error = Some(e),
                    }
                }
                core.assigned_at = Some(Instant::now());
                if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) }
            }
            _ => {
                tracing::info!(partitions = ?ours, cooperative, lost = consumer.assignment_lost(), "worker: partitions revoked");
                Metrics::inc(&core.engine.metrics.rebalances);
                // Snapshot first (a lost assignment's save is fenced by the store if someone else has it).
                if let Err(e) = core.snapshot(&ours, consumer) {
                    core.error = Some(e);
                }
                for &p in &ours {
                    core.engine.release(p);
                }
                if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() }
            }
        };
        if let Err(e) = result {
            core.error = Some(WorkerError::Broker {
                connector: "kafka",
                address: String::new(),
                message: format!("cannot apply a rebalance: {e}"),
            });
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
        f.debug_struct("Worker").field("topic", &self.config.topic).field("group", &self.config.options.group).finish()
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
        let kafka =
            |message: String| WorkerError::Broker { connector: "kafka", address: config.brokers.clone(), message };
        let engine = Engine::new(&config.topic, &config.options, store, output, metrics.clone());
        let core = Arc::new(Mutex::new(Core {
            engine,
            start: config.start,
            error: None,
            down_since: None,
            assigned_at: None,
            high: BTreeMap::new(),
        }));
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.options.group)
            .set("enable.auto.commit", "false")
            .set("statistics.interval.ms", "1000")
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
            let owned: Vec<i32> = c.engine.owned.keys().copied().collect();
            // On an error, whatever was applied is still consistent: snapshot it (a store or output failure
            // fails again here, and is then reported as the first error).
            c.snapshot(&owned, &consumer)
        };
        close(consumer);
        result?;
        drained?;
        Ok(WorkerReport::of(&metrics))
    }

    fn run_loop(&self) -> Result<(), WorkerError> {
        let (mut last_log, mut last_lag) = (Instant::now(), Instant::now());
        let mut last_message = Instant::now();
        // Time-based work (interval snapshots, the give-up and idle limits, lag, log lines) is checked once
        // per tick, not per message.
        let mut last_tick = Instant::now();
        let tick = Duration::from_millis(50);
        let topic = self.config.topic.clone();
        let mut replay = replay_hook();
        while !self.stop.load(Ordering::Relaxed) {
            let polled = self.consumer.poll(Duration::from_millis(100));
            let mut core = lock(&self.core);
            if let Some(e) = core.error.take() {
                return Err(e);
            }
            let got_message = matches!(polled, Some(Ok(_)));
            match polled {
                // Idle: make what was sent visible downstream now rather than at the next snapshot.
                None => core.engine.flush_output()?,
                Some(Err(e)) => tracing::debug!(error = %e, "worker: poll error (librdkafka retries)"),
                Some(Ok(m)) => {
                    let (p, offset) = (m.partition(), m.offset());
                    if m.topic() == topic {
                        core.engine.process(p, offset, m.key(), m.payload().unwrap_or_default())?;
                        if core.engine.dirty(p) >= self.config.options.snapshot_every {
                            core.snapshot(&[p], &self.consumer)?;
                        }
                        if let Some((after, back)) = replay.filter(|(after, _)| offset + 1 == *after) {
                            // The duplicate-delivery test's hook: the broker delivers these offsets again.
                            replay = None;
                            let to = Offset::Offset((after - back).max(0));
                            if let Err(e) = self.consumer.seek(&topic, p, to, Duration::from_secs(5)) {
                                tracing::warn!(error = %e, "worker: ONAD_WORKER_REPLAY: cannot seek back");
                            }
                        }
                    }
                }
            }
            if got_message && last_tick.elapsed() < tick {
                continue;
            }
            let now = Instant::now();
            if got_message {
                last_message = now;
            }
            last_tick = now;
            let due = core.engine.due(self.config.options.snapshot_every, self.config.options.snapshot_interval);
            core.snapshot(&due, &self.consumer)?;
            if let (Some(g), Some(since)) = (self.config.options.give_up, core.down_since)
                && since.elapsed() >= g
            {
                return Err(WorkerError::Broker {
                    connector: "kafka",
                    address: self.config.brokers.clone(),
                    message: format!("every broker has been unreachable for {} ms (give_up_ms)", g.as_millis()),
                });
            }
            let positions = core.engine.positions();
            let idle_since = core.assigned_at.map(|a| a.max(last_message));
            if last_lag.elapsed() >= Duration::from_secs(1) {
                self.update_lag(&positions, &core.high);
                last_lag = Instant::now();
            }
            drop(core);
            if last_log.elapsed() >= self.config.options.log_every {
                let (i, o, d, s, f, r, lag) = self.metrics.summary();
                let partitions: Vec<i32> = positions.iter().map(|x| x.0).collect();
                tracing::info!(
                    records_in = i,
                    records_out = o,
                    duplicates = d,
                    snapshots = s,
                    fenced = f,
                    rebalances = r,
                    lag,
                    ?partitions,
                    "worker: counters"
                );
                last_log = Instant::now();
            }
            if let (Some(idle), Some(since)) = (self.config.options.exit_when_idle, idle_since)
                && since.elapsed() >= idle
            {
                tracing::info!("worker: no message for the idle limit; stopping");
                break;
            }
        }
        Ok(())
    }

    /// Lag per owned partition: the high watermark minus the next offset to apply. The watermarks come
    /// from the statistics librdkafka keeps from its fetch responses; asking the broker for them
    /// (`fetch_watermarks`) blocks the loop, and its requests time out on a busy broker.
    fn update_lag(&self, owned: &[(i32, i64)], high: &BTreeMap<i32, i64>) {
        let lags = owned.iter().filter_map(|&(p, next)| Some((p, (*high.get(&p)? - next).max(0)))).collect();
        self.metrics.detail().lag = lags;
    }
}
