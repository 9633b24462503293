//! Kafka sink: scored rows published to a topic, one JSON message per row, through rdkafka's
//! `BaseProducer` (librdkafka sends from its own threads; delivery reports are served on the caller's
//! thread when it writes or syncs, so no async runtime is involved).
//!
//! **Messages.** The value is the row as the JSON Lines sink writes it ([`onad_core::ScoredRow::write_json`]),
//! without the newline:
//!
//! ```text
//! {"row":12,"score":0.41,"threshold":0.9,"anomaly":false,"label":1.0,"key":7.0}
//! ```
//!
//! `label` is there when the input has labels, `key` in per-key runs; a number that is not finite (a
//! threshold still warming up) is `null`. When the input is itself a Kafka topic, the message also says
//! which input message it scores: `"origin":{"topic":"events","partition":3,"offset":1042}`. The message
//! key is a stable id of the input row, so a consumer drops repeats by it (and Kafka's default
//! partitioner spreads rows over the partitions by it): `TOPIC/PARTITION/OFFSET` of the input message
//! when the input is Kafka (its row ids count messages in the order they were fetched, which across
//! partitions need not repeat after a resume), else the input row id in decimal (`12`).
//!
//! **Delivery is at least once.** [`Sink::sync`] (before every checkpoint) waits until the brokers have
//! acknowledged every message sent, within `flush_timeout_ms` (30 s by default; past it, an error naming
//! the topic and the brokers), and reports `SinkPosition::Rows { rows: messages delivered, parts: 0 }`.
//! A broker cannot take messages back, so a run resumed from a checkpoint publishes again the rows the
//! killed run wrote after that checkpoint: the topic then holds some rows twice, with the same key and
//! the same content (a resumed run recomputes them from the same state). A consumer that keeps the first
//! message of each key sees exactly the rows of an uninterrupted run, once each. The producer is
//! idempotent by default (`enable.idempotence=true`), so librdkafka's own retries add no duplicates.
//!
//! An alerts-only topic needs nothing here: wrap the sink in the pipeline's alerts-only filter.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use onad_core::{Scored, Sink, SinkError, SinkLayout, SinkPosition};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message as _};

use crate::sink_url::{KafkaSinkUrl, parse_kafka_sink_url};

/// Publishes scored rows to a Kafka topic; see the module docs for the messages and the delivery rule.
///
/// Built from `kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?...]` ([`KafkaSink::from_url`], or
/// [`open_sink_url`](crate::open_sink_url)) or in code ([`KafkaSink::new`] and the `with_` methods).
/// Nothing is contacted until the run opens the sink; opening fails, naming the topic and the brokers,
/// when the brokers cannot be reached or do not have the topic (and do not create it).
pub struct KafkaSink {
    name: String,
    brokers: String,
    topic: String,
    config: Vec<(String, String)>,
    flush_timeout: Duration,
    connect_timeout: Duration,
    producer: Option<BaseProducer<Deliveries>>,
    /// Messages delivered before this run: the checkpoint's count when resumed, else 0.
    resumed_from: Option<u64>,
    /// Messages handed to the producer by this run.
    sent: u64,
    payload: String,
    key: String,
    /// The explanation names of the layout (written as the `explain` member).
    explanations: Vec<String>,
}

impl fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSink")
            .field("name", &self.name)
            .field("opened", &self.producer.is_some())
            .field("resumed_from", &self.resumed_from)
            .field("sent", &self.sent)
            .finish()
    }
}

/// The producer's context: counts delivery reports, keeps the first failure and the last client error.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!("{error} ({reason})"));
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let key = message.key().map(String::from_utf8_lossy).unwrap_or_default();
                self.first_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert_with(|| format!("row {key}: {error}"));
            }
        }
    }
}

impl KafkaSink {
    /// A sink publishing to `topic` on `brokers` (`HOST:PORT[,HOST:PORT...]`, librdkafka's
    /// `bootstrap.servers`), with a 30 s flush timeout and a 10 s connect timeout.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        let (brokers, topic) = (brokers.into(), topic.into());
        KafkaSink {
            name: format!("kafka://{brokers}/{topic}"),
            brokers,
            topic,
            config: Vec::new(),
            flush_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            producer: None,
            resumed_from: None,
            sent: 0,
            payload: String::with_capacity(128),
            explanations: Vec::new(),
            key: String::with_capacity(20),
        }
    }

    /// A sink from `kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?...]` (parameters as in
    /// [`open_sink_url`](crate::open_sink_url)).
    pub fn from_url(url: &str) -> Result<Self, SinkError> {
        let rest = crate::sink_url::after_scheme(url, "kafka")?;
        Ok(Self::from_parsed(parse_kafka_sink_url(rest)?))
    }

    pub(crate) fn from_parsed(url: KafkaSinkUrl) -> Self {
        let mut sink = KafkaSink::new(url.brokers, url.topic);
        sink.name = url.name;
        sink.config = url.config;
        sink.flush_timeout = Duration::from_millis(url.flush_timeout_ms);
        sink.connect_timeout = Duration::from_millis(url.connect_timeout_ms);
        sink
    }

    /// Adds a librdkafka producer setting (`linger.ms`, `compression.type`, `acks`, ...), applied after the
    /// sink's own (`enable.idempotence=true`), so it can override them; `bootstrap.servers` is always
    /// the brokers given to [`KafkaSink::new`].
    pub fn with_setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// How long [`Sink::sync`] waits for the brokers to acknowledge every message.
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// How long opening waits for the brokers to describe the topic.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The message count of the checkpoint this sink was resumed from (`None` for a fresh run). The rows
    /// the killed run published after that checkpoint are published again (see the module docs).
    pub fn resumed_from(&self) -> Option<u64> {
        self.resumed_from
    }

    /// Messages the brokers have acknowledged, counting those before the checkpoint resumed from.
    pub fn delivered(&self) -> u64 {
        let now = self.producer.as_ref().map_or(0, |p| p.context().delivered.load(Ordering::Relaxed));
        self.resumed_from.unwrap_or(0) + now
    }

    fn error(&self, message: String) -> SinkError {
        SinkError::External { connector: "kafka", target: self.name.clone(), error: message.into() }
    }

    fn producer(&self) -> Result<&BaseProducer<Deliveries>, SinkError> {
        self.producer.as_ref().ok_or_else(|| self.error("written before it was opened".into()))
    }

    /// Fails once any message could not be delivered: its row is lost for this run, which must stop (a
    /// resume from the last checkpoint publishes it again).
    fn check_deliveries(&self, producer: &BaseProducer<Deliveries>) -> Result<(), SinkError> {
        let context = producer.context();
        let failed = context.failed.load(Ordering::Relaxed);
        if failed == 0 {
            return Ok(());
        }
        let first = context.first_failure.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_default();
        Err(self.error(format!(
            "{failed} messages could not be delivered to topic '{}' on the brokers {} (first: {first})",
            self.topic, self.brokers
        )))
    }

    fn last_client_error(producer: &BaseProducer<Deliveries>) -> String {
        match producer.context().last_error.lock().unwrap_or_else(PoisonError::into_inner).as_deref() {
            Some(e) => format!("; last client error: {e}"),
            None => String::new(),
        }
    }
}

impl Sink for KafkaSink {
    fn open(&mut self, layout: &SinkLayout, resume: Option<&SinkPosition>) -> Result<(), SinkError> {
        self.explanations = layout.explanations.clone();
        self.resumed_from = match resume {
            None | Some(SinkPosition::Unrecorded) => None,
            Some(SinkPosition::Rows { rows, .. }) => Some(*rows),
            Some(other) => {
                return Err(SinkError::Resume {
                    target: self.name.clone(),
                    message: format!("the checkpoint recorded {other}, not a count of messages"),
                });
            }
        };
        let mut config = ClientConfig::new();
        config.set("enable.idempotence", "true");
        for (k, v) in &self.config {
            config.set(k, v);
        }
        // Last, so no setting replaces the brokers the sink names in its messages.
        config.set("bootstrap.servers", &self.brokers);
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(Deliveries::default())
            .map_err(|e| self.error(format!("cannot create the producer for the brokers {}: {e}", self.brokers)))?;
        // Fail now, by name, when the brokers are unreachable or lack the topic (rather than at the first
        // checkpoint, after the delivery timeout).
        let metadata = producer.client().fetch_metadata(Some(&self.topic), self.connect_timeout).map_err(|e| {
            self.error(format!(
                "cannot reach the brokers {} within {} ms to look up topic '{}': {e}",
                self.brokers,
                self.connect_timeout.as_millis(),
                self.topic
            ))
        })?;
        let missing = |why: String| {
            self.error(format!("cannot publish to topic '{}' on the brokers {}: {why}", self.topic, self.brokers))
        };
        match metadata.topics().iter().find(|t| t.name() == self.topic) {
            None => return Err(missing("the brokers do not know it".into())),
            Some(t) => match t.error() {
                Some(e) => {
                    let code = RDKafkaErrorCode::from(e);
                    let hint = if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                        " (create it, or let the brokers create topics automatically)"
                    } else {
                        ""
                    };
                    return Err(missing(format!("{code}{hint}")));
                }
                None if t.partitions().is_empty() => return Err(missing("it has no partitions".into())),
                None => {}
            },
        }
        self.producer = Some(producer);
        self.sent = 0;
        Ok(())
    }

    fn write(&mut self, scored: &Scored<'_>) -> Result<(), SinkError> {
        let (mut payload, mut key) = (std::mem::take(&mut self.payload), std::mem::take(&mut self.key));
        let producer = self.producer()?;
        self.check_deliveries(producer)?;
        let mut sent = 0;
        let mut result = Ok(());
        'rows: for (i, r) in scored.rows().enumerate() {
            payload.clear();
            let width = self.explanations.len();
            r.write_json_explained(&mut payload, scored.origin(i), &self.explanations, scored.explanation(i, width));
            key.clear();
            let _ = match scored.origin(i) {
                Some(o) => write!(key, "{}/{}/{}", o.topic, o.partition, o.offset),
                None => write!(key, "{}", r.id),
            };
            let mut record: BaseRecord<'_, str, str> =
                BaseRecord::to(&self.topic).key(key.as_str()).payload(payload.as_str());
            let mut full_since: Option<Instant> = None;
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue is full: wait for deliveries, as long as a flush would.
                        let since = *full_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= self.flush_timeout {
                            result = Err(self.error(format!(
                                "the producer queue for topic '{}' stayed full for {} ms: the brokers {} are not \
                                 taking messages{}",
                                self.topic,
                                self.flush_timeout.as_millis(),
                                self.brokers,
                                Self::last_client_error(producer)
                            )));
                            break 'rows;
                        }
                        producer.poll(Duration::from_millis(50));
                        record = back;
                    }
                    Err((e, _)) => {
                        result = Err(self.error(format!(
                            "cannot send row {} to topic '{}' on the brokers {}: {e}",
                            r.id, self.topic, self.brokers
                        )));
                        break 'rows;
                    }
                }
            }
            sent += 1;
        }
        // Serve the delivery reports that are ready, without waiting.
        producer.poll(Duration::ZERO);
        (self.payload, self.key) = (payload, key);
        self.sent += sent;
        result
    }

    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        let Some(producer) = self.producer.as_ref() else {
            return Ok(SinkPosition::Unrecorded);
        };
        if let Err(e) = producer.flush(self.flush_timeout) {
            return Err(self.error(format!(
                "{} messages to topic '{}' were not acknowledged by the brokers {} within {} ms ({e}{})",
                producer.in_flight_count(),
                self.topic,
                self.brokers,
                self.flush_timeout.as_millis(),
                Self::last_client_error(producer)
            )));
        }
        self.check_deliveries(producer)?;
        // Every message sent is acknowledged now (the flush emptied the queue, none failed).
        let delivered = producer.context().delivered.load(Ordering::Relaxed);
        Ok(SinkPosition::Rows { rows: self.resumed_from.unwrap_or(0) + delivered, parts: 0 })
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use onad_core::ScoredRow;

    fn row(label: Option<f64>, key: Option<f64>) -> ScoredRow {
        ScoredRow { id: 12, score: 0.41, threshold: 0.9, flag: false, label, key }
    }

    #[test]
    fn messages_are_the_json_lines_rows() {
        let mut out = String::new();
        row(Some(1.0), Some(7.0)).write_json(&mut out, None);
        assert_eq!(out, r#"{"row":12,"score":0.41,"threshold":0.9,"anomaly":false,"label":1.0,"key":7.0}"#);
        out.clear();
        let r = ScoredRow { threshold: f64::NAN, flag: true, label: Some(f64::INFINITY), ..row(None, None) };
        r.write_json(&mut out, None);
        assert_eq!(out, r#"{"row":12,"score":0.41,"threshold":null,"anomaly":true,"label":null}"#);
        out.clear();
        let origin = onad_core::Origin { topic: "ev\"s", partition: 3, offset: 1042 };
        row(None, Some(-2.5)).write_json(&mut out, Some(origin));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!((v["origin"]["topic"].as_str(), v["origin"]["offset"].as_i64()), (Some("ev\"s"), Some(1042)));
    }
}
