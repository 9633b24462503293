//! Kafka source: a topic read through a consumer group with rdkafka's `BaseConsumer` (polled on the
//! caller's thread, no async runtime), each message one JSON object, turned into dense batches by the code
//! shared with the Redis source (`message.rs`). Offsets are committed by hand, per batch; positions per
//! partition are what checkpoints carry.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use onad_core::{Batch, Position, SchemaRef, SkipCounts, Source, SourceError};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::json_row::Problem;
use crate::message::{Message, MessageReader, MessageStream, StreamLimits, key_number};
use crate::open::{KafkaUrl, parse_kafka_url};
use crate::options::SourceOptions;
use crate::url::split_scheme;

/// How long a synchronous commit or a seek may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the idle timeout waits for this consumer to be assigned partitions before it starts running.
const JOIN_GRACE: Duration = Duration::from_secs(30);

/// Reads a Kafka topic through a consumer group as batches. Each message's value is one JSON object, read
/// as the JSON Lines source reads a line (columns = the keys of the first object, the label excluded;
/// numbers are `f64`, `null` NaN, `true` / `false` 1 / 0; the same bad-row reasons, plus `missing_field`
/// for a message without a value). With `key_column=NAME` the message key is added as a last feature
/// column `NAME` (a key that is a decimal number is that number, any other key a 53-bit hash of its
/// bytes, no key NaN), ready for `onad run --key NAME`: one model per entity.
///
/// Opened from `kafka://HOST:PORT[,HOST:PORT...]/TOPIC?group=G[&...]` (see
/// [`open_url`](crate::open_url)). Defaults: group `onad`, `auto.offset.reset=earliest` (a new group
/// reads the topic from its start); any librdkafka setting can be given as a URL parameter.
///
/// **Delivery is at least once, with manual commits.** Automatic commits are off. The offsets of a batch
/// are committed (asynchronously, to the group) when the *next* batch is requested, that is after the
/// caller has processed it. A consumer that dies loses only the uncommitted batch, which the group
/// delivers again, to a restarted consumer or to another member after a rebalance.
///
/// **Positions.** [`Source::position`] is `Position::Offsets`: for every partition this consumer reads,
/// the offset of the next message it will deliver, and the count of messages delivered (the next row
/// id). [`Source::seek`] to such a position (a checkpoint's) makes the consumer start each of those
/// partitions there, whatever the group committed: now for the partitions it holds, and at assignment
/// for the others. So a run resumed from a checkpoint reads exactly the messages after it, even when
/// the group's commits are ahead of or behind the checkpoint. Partitions revoked by a rebalance leave
/// the position (their new owner goes on from the group's commits).
///
/// **End.** A topic has no end: the source waits for new messages unless `idle_timeout_ms` or
/// `max_rows` is given (after a seek, `max_rows` counts from the position's message count). The idle
/// timeout starts once the group has assigned partitions to this consumer (joining takes a few seconds),
/// or 30 s after opening for a member that gets none. Opening waits for the first JSON object, which
/// names the columns; when none arrives within `idle_timeout_ms` (a periodic job finding nothing new),
/// opening still succeeds with no columns (an empty schema) and no labels, and the source yields no batch
/// (bad messages read meanwhile are counted and committed), so the run ends with 0 rows.
///
/// **Brokers down.** librdkafka reconnects by itself, and the source waits meanwhile, losing nothing
/// (offsets are only committed for batches processed). With `give_up_ms`, the source fails with an error
/// saying so once every broker has been unreachable that long.
///
/// **Bad messages** are skipped and counted by reason, or, under `BadRowPolicy::Fail`, reported with
/// the URL, the row, the partition and offset, and the column.
pub struct KafkaSource(MessageStream<Reader>);

impl fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KafkaSource").field(&self.0).finish()
    }
}

/// A message's place: partition and offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartitionOffset {
    partition: i32,
    offset: i64,
}

impl fmt::Display for PartitionOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "partition {} offset {}", self.partition, self.offset)
    }
}

/// What the consumer and its rebalance callback share.
#[derive(Debug, Default)]
struct Shared {
    /// Partition -> the offset of the next message to deliver (what `position` reports and assignments
    /// start from).
    next: BTreeMap<i32, i64>,
    /// Partitions currently assigned to this consumer.
    assigned: BTreeSet<i32>,
    /// Offsets a seek asked for, kept across rebalances until a message of the partition is delivered.
    pinned: BTreeMap<i32, i64>,
    /// The last rebalance error, reported by the next fetch.
    error: Option<String>,
    /// Since when librdkafka has reported every broker down (cleared by a message or a probe).
    down_since: Option<Instant>,
    /// Since when commits have been failing (cleared by a successful one), and the last error.
    commit_failing: Option<Instant>,
    last_commit_error: Option<String>,
}

/// Reads a librdkafka client error the way every consumer of onad does: librdkafka retries and reconnects
/// by itself, so an error is only logged (as `WHO: ...`), except that every broker being down is a
/// warning and returns `true`, for the caller to start the clock of its give-up deadline.
pub fn every_broker_down(error: &KafkaError, reason: &str, who: &str) -> bool {
    if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown) {
        tracing::warn!(error = %error, reason, "{who}: every broker is down; librdkafka keeps reconnecting");
        true
    } else {
        tracing::debug!(error = %error, reason, "{who}: client error (librdkafka retries)");
        false
    }
}

/// The consumer's context: on assignment, partitions with a known position start there.
struct Context {
    topic: String,
    shared: Arc<Mutex<Shared>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClientContext for Context {
    /// librdkafka reconnects by itself; the source only notes when every broker is down, for `give_up_ms`.
    fn error(&self, error: KafkaError, reason: &str) {
        if every_broker_down(&error, reason, "kafka") {
            lock(&self.shared).down_since.get_or_insert_with(Instant::now);
        }
    }
}

impl ConsumerContext for Context {
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _offsets: &TopicPartitionList) {
        let mut shared = lock(&self.shared);
        match result {
            Ok(()) => {
                shared.commit_failing = None;
                shared.last_commit_error = None;
            }
            Err(e) => {
                shared.commit_failing.get_or_insert_with(Instant::now);
                shared.last_commit_error = Some(e.to_string());
            }
        }
    }

    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let ours: Vec<i32> =
                    tpl.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect();
                let mut shared = lock(&self.shared);
                for p in ours {
                    shared.assigned.insert(p);
                    let start = shared.pinned.get(&p).or_else(|| shared.next.get(&p)).copied();
                    if let Some(o) = start {
                        shared.next.insert(p, o);
                        // Cannot fail: the partition is in the list.
                        let _ = tpl.set_partition_offset(&self.topic, p, Offset::Offset(o));
                    }
                }
                drop(shared);
                consumer.assign(tpl)
            }
            _ => {
                // Revoked (or a rebalance error): the new owner goes on from the group's commits. Offsets a
                // seek asked for stay pinned until a message of the partition is delivered.
                let mut shared = lock(&self.shared);
                for e in tpl.elements() {
                    if e.topic() == self.topic {
                        shared.assigned.remove(&e.partition());
                        shared.next.remove(&e.partition());
                    }
                }
                if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    shared.error = Some(format!("rebalance failed: {err:?}"));
                }
                drop(shared);
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            lock(&self.shared).error = Some(format!("cannot apply a rebalance: {e}"));
        }
    }
}

pub(crate) struct Reader {
    name: String,
    brokers: String,
    topic: String,
    consumer: BaseConsumer<Context>,
    shared: Arc<Mutex<Shared>>,
    /// Partitions with messages handed out since the last commit.
    uncommitted: BTreeSet<i32>,
    /// Partitions with messages handed out at all (committed synchronously at the end).
    touched: BTreeSet<i32>,
    /// Messages delivered (the row id of the next one).
    delivered: u64,
    /// Partition -> the offset of its first message fetched and not yet handed out (or just past the last
    /// one handed out): where a seek that does not name the partition puts it back, so dropping the
    /// fetched messages loses none.
    unread: BTreeMap<i32, i64>,
    opened: Instant,
    /// Fail once every broker has been down this long (`None`: keep waiting).
    give_up: Option<Duration>,
    /// When a message or a metadata answer last came from the brokers.
    last_contact: Instant,
}

fn external(name: &str, error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SourceError {
    SourceError::External { connector: "kafka", source_name: name.to_owned(), error: error.into() }
}

impl Reader {
    fn open(url: &KafkaUrl) -> Result<Self, SourceError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &url.brokers)
            .set("group.id", &url.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        for (k, v) in &url.config {
            config.set(k, v);
        }
        let shared = Arc::new(Mutex::new(Shared::default()));
        let context = Context { topic: url.topic.clone(), shared: shared.clone() };
        let consumer: BaseConsumer<Context> = config
            .create_with_context(context)
            .map_err(|e| external(&url.name, format!("cannot create the consumer: {e}")))?;
        // Fail early and clearly when the brokers cannot be reached or the topic does not exist.
        let wait = Duration::from_millis(url.connect_timeout_ms);
        let metadata = consumer.fetch_metadata(Some(&url.topic), wait).map_err(|e| {
            external(&url.name, format!("cannot reach the brokers {} within {} ms: {e}", url.brokers, wait.as_millis()))
        })?;
        match metadata.topics().iter().find(|t| t.name() == url.topic) {
            Some(t) => match t.error() {
                None if !t.partitions().is_empty() => {}
                None => return Err(external(&url.name, format!("topic '{}' has no partitions", url.topic))),
                Some(e) => {
                    let code = rdkafka::types::RDKafkaErrorCode::from(e);
                    return Err(external(&url.name, format!("topic '{}' is not available: {code}", url.topic)));
                }
            },
            None => return Err(external(&url.name, format!("topic '{}' does not exist", url.topic))),
        }
        consumer.subscribe(&[&url.topic]).map_err(|e| external(&url.name, format!("cannot subscribe: {e}")))?;
        Ok(Reader {
            name: url.name.clone(),
            brokers: url.brokers.clone(),
            topic: url.topic.clone(),
            consumer,
            shared,
            uncommitted: BTreeSet::new(),
            touched: BTreeSet::new(),
            delivered: 0,
            unread: BTreeMap::new(),
            opened: Instant::now(),
            give_up: url.give_up_ms.map(Duration::from_millis),
            last_contact: Instant::now(),
        })
    }

    fn message(&self, m: &rdkafka::message::BorrowedMessage<'_>) -> Message<PartitionOffset> {
        Message {
            id: Some(PartitionOffset { partition: m.partition(), offset: m.offset() }),
            payload: m.payload().map(<[u8]>::to_vec),
            key: key_number(m.key()),
        }
    }

    /// Moves this consumer to `next` (partition -> offset): assigned partitions now, the others when they
    /// are assigned.
    fn seek(&mut self, next: &BTreeMap<(String, i32), i64>) -> Result<(), SourceError> {
        if let Some((topic, _)) = next.keys().find(|(topic, _)| *topic != self.topic) {
            return Err(SourceError::Unsupported(format!(
                "{}: cannot seek to an offset of topic '{topic}': this source reads '{}'",
                self.name, self.topic
            )));
        }
        let mut shared = lock(&self.shared);
        for (&(_, partition), &offset) in next {
            shared.next.insert(partition, offset);
            shared.pinned.insert(partition, offset);
            if shared.assigned.contains(&partition) {
                self.consumer
                    .seek(&self.topic, partition, Offset::Offset(offset), BROKER_TIMEOUT)
                    .map_err(|e| external(&self.name, format!("cannot seek partition {partition} to {offset}: {e}")))?;
            }
        }
        // Partitions the position does not name go back to their first message not handed out.
        for (&partition, &offset) in &self.unread {
            if !next.contains_key(&(self.topic.clone(), partition)) && shared.assigned.contains(&partition) {
                shared.next.insert(partition, offset);
                self.consumer
                    .seek(&self.topic, partition, Offset::Offset(offset), BROKER_TIMEOUT)
                    .map_err(|e| external(&self.name, format!("cannot seek partition {partition} to {offset}: {e}")))?;
            }
        }
        self.unread.clear();
        self.uncommitted.clear();
        Ok(())
    }

    /// The offsets to commit: the next offset of every partition with messages handed out since the last
    /// commit.
    fn pending_offsets(&self) -> Result<TopicPartitionList, SourceError> {
        let mut tpl = TopicPartitionList::new();
        let shared = lock(&self.shared);
        for p in &self.uncommitted {
            if let Some(&o) = shared.next.get(p) {
                tpl.add_partition_offset(&self.topic, *p, Offset::Offset(o)).map_err(|e| external(&self.name, e))?;
            }
        }
        Ok(tpl)
    }

    fn position(&self) -> Position {
        let shared = lock(&self.shared);
        let mut next = shared.pinned.clone();
        next.extend(shared.next.iter().map(|(&p, &o)| (p, o)));
        Position::Offsets {
            next: next.into_iter().map(|(p, o)| ((self.topic.clone(), p), o)).collect(),
            delivered: self.delivered,
        }
    }

    fn check(&mut self) -> Result<(), SourceError> {
        if let Some(e) = lock(&self.shared).error.take() {
            return Err(external(&self.name, e));
        }
        let Some(give_up) = self.give_up else {
            return Ok(());
        };
        // Silent for `give_up_ms` (no message, or librdkafka reported every broker down that long): ask
        // the brokers for the topic's metadata; no answer ends the source.
        let since = lock(&self.shared).down_since.unwrap_or(self.last_contact);
        if since.elapsed() < give_up {
            return Ok(());
        }
        if self.consumer.fetch_metadata(Some(&self.topic), Duration::from_secs(1)).is_ok() {
            lock(&self.shared).down_since = None;
            self.last_contact = Instant::now();
            return Ok(());
        }
        Err(external(
            &self.name,
            format!(
                "lost every broker and could not reach one within give_up_ms={} (brokers: {})",
                give_up.as_millis(),
                self.brokers
            ),
        ))
    }

    /// A poll error: fatal ones end the source, others (a broker briefly down) are retried by librdkafka.
    fn poll_error(&self, e: KafkaError) -> Result<(), SourceError> {
        let fatal = match &e {
            KafkaError::MessageConsumptionFatal(_) => true,
            KafkaError::MessageConsumption(code) => matches!(
                code,
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
                    | rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                    | rdkafka::types::RDKafkaErrorCode::GroupAuthorizationFailed
            ),
            _ => false,
        };
        if fatal { Err(external(&self.name, e)) } else { Ok(()) }
    }
}

impl MessageReader for Reader {
    type Id = PartitionOffset;

    fn topic(&self) -> Option<std::sync::Arc<str>> {
        Some(std::sync::Arc::from(self.topic.as_str()))
    }

    fn origin(id: &PartitionOffset) -> Option<(i32, i64)> {
        Some((id.partition, id.offset))
    }

    fn fetch(&mut self, count: usize, wait: Duration) -> Result<Vec<Message<PartitionOffset>>, SourceError> {
        let mut out = Vec::new();
        let until = Instant::now() + wait;
        while out.len() < count.max(1) {
            let timeout = if out.is_empty() { until.saturating_duration_since(Instant::now()) } else { Duration::ZERO };
            self.check()?;
            let polled = self.consumer.poll(timeout);
            match polled {
                Some(Ok(m)) => {
                    // A message from before a seek may still arrive: drop what comes before the position.
                    let expected = lock(&self.shared).next.get(&m.partition()).copied();
                    if expected.is_some_and(|o| m.offset() < o) {
                        continue;
                    }
                    self.unread.entry(m.partition()).or_insert(m.offset());
                    lock(&self.shared).down_since = None;
                    self.last_contact = Instant::now();
                    out.push(self.message(&m));
                }
                Some(Err(e)) => self.poll_error(e)?,
                None if out.is_empty() && Instant::now() < until => {}
                None => break,
            }
        }
        Ok(out)
    }

    fn handed_out(&mut self, id: Option<PartitionOffset>) {
        self.delivered += 1;
        let Some(id) = id else { return };
        if let Some(first) = self.unread.get_mut(&id.partition) {
            *first = id.offset + 1;
        }
        let mut shared = lock(&self.shared);
        // A message of a partition revoked meanwhile is still delivered, but neither tracked nor committed:
        // its new owner goes on from the group's commits.
        shared.pinned.remove(&id.partition);
        if shared.assigned.contains(&id.partition) {
            shared.next.insert(id.partition, id.offset + 1);
            drop(shared);
            self.uncommitted.insert(id.partition);
            self.touched.insert(id.partition);
        }
    }

    /// Commits asynchronously (a synchronous commit would block without limit while the brokers are
    /// away); the result arrives through the consumer's commit callback. Offsets are cumulative, so a
    /// failed commit is made good by the next one; failures lasting `give_up_ms` end the source.
    fn ack(&mut self) -> Result<(), SourceError> {
        if let (Some(g), Some(since)) = (self.give_up, lock(&self.shared).commit_failing)
            && since.elapsed() >= g
        {
            return Err(external(&self.name, format!("could not commit offsets within give_up_ms={}", g.as_millis())));
        }
        if self.uncommitted.is_empty() {
            return Ok(());
        }
        let tpl = self.pending_offsets()?;
        self.uncommitted.clear();
        if tpl.count() == 0 {
            // Only revoked partitions had messages: nothing of ours to commit.
            return Ok(());
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            let mut shared = lock(&self.shared);
            shared.commit_failing.get_or_insert_with(Instant::now);
            shared.last_commit_error = Some(e.to_string());
        }
        Ok(())
    }

    /// The last commit, when the source ends (or the run stops): synchronous, of the next offset of every
    /// partition this source delivered from (asynchronous commits may have failed), and a failure is
    /// reported (the rows would be delivered again to the group). With every broker known to be down, it
    /// fails at once instead of waiting for them.
    fn flush(&mut self) -> Result<(), SourceError> {
        self.ack()?;
        let mut tpl = TopicPartitionList::new();
        {
            let shared = lock(&self.shared);
            if shared.down_since.is_some() {
                return Err(external(&self.name, "cannot commit the last offsets: every broker is down"));
            }
            for p in &self.touched {
                if let (true, Some(&o)) = (shared.assigned.contains(p), shared.next.get(p)) {
                    tpl.add_partition_offset(&self.topic, *p, Offset::Offset(o))
                        .map_err(|e| external(&self.name, e))?;
                }
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| external(&self.name, format!("cannot commit the last offsets: {e}")))
    }

    fn missing_payload(&self) -> Problem {
        Problem::new("missing_field", None, "the message has no value".into())
    }

    /// Joining the group takes seconds; the idle timeout starts once partitions are assigned (or, for a
    /// member that gets none, `JOIN_GRACE` after opening).
    fn receiving(&self) -> bool {
        !lock(&self.shared).assigned.is_empty() || self.opened.elapsed() > JOIN_GRACE
    }
}

impl KafkaSource {
    /// Opens a `kafka://` URL (see [`open_url`](crate::open_url)) and waits for the first message that is
    /// a JSON object, whose keys name the columns.
    pub fn open(url: &str, options: SourceOptions) -> Result<Self, SourceError> {
        match split_scheme(url) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("kafka") => {
                Self::from_url(parse_kafka_url(rest)?, options)
            }
            _ => Err(SourceError::Unsupported(format!("{url}: not a kafka:// URL"))),
        }
    }

    pub(crate) fn from_url(url: KafkaUrl, options: SourceOptions) -> Result<Self, SourceError> {
        let reader = Reader::open(&url)?;
        let limits = StreamLimits {
            idle_timeout: url.idle_timeout_ms.map(Duration::from_millis),
            max_rows: url.max_rows,
            key_column: url.key_column.clone(),
        };
        MessageStream::open(url.name, reader, &options, limits).map(KafkaSource)
    }
}

impl Iterator for KafkaSource {
    type Item = Result<Batch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_batch()
    }
}

impl Source for KafkaSource {
    fn schema(&self) -> &SchemaRef {
        self.0.schema()
    }

    fn has_labels(&self) -> bool {
        self.0.has_labels()
    }

    fn id_features(&self) -> Vec<usize> {
        self.0.id_features()
    }

    fn ignored_keys(&self) -> u64 {
        self.0.ignored_keys()
    }

    fn position(&self) -> Position {
        self.0.reader.position()
    }

    fn skipped(&self) -> &SkipCounts {
        self.0.skipped()
    }

    /// Acknowledges every message delivered so far (the caller has processed them).
    fn acknowledges_on_next(&self) -> bool {
        true
    }

    fn commit(&mut self) -> Result<(), SourceError> {
        self.0.reader.flush()
    }

    /// `Position::Start` before anything was delivered, or `Position::Offsets` (a checkpoint's): each
    /// partition named starts at its offset; messages fetched but not delivered are dropped.
    fn seek(&mut self, position: &Position) -> Result<(), SourceError> {
        match position {
            Position::Start if self.0.next_row == 0 => Ok(()),
            Position::Offsets { next, delivered } => {
                self.0.reader.seek(next)?;
                self.0.reader.delivered = *delivered;
                self.0.resume_at(*delivered);
                Ok(())
            }
            other => Err(SourceError::Unsupported(format!(
                "{}: cannot seek to {other}: a Kafka source resumes from partition offsets (a checkpoint's), or \
                 from its consumer group's commits when opened again",
                self.0.name
            ))),
        }
    }
}
