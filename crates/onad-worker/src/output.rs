//! Where a worker's scored rows go: a Kafka topic, a Redis stream, or a JSON Lines file (one per worker,
//! for one host and for tests). Every row carries its stable id `(topic, partition, offset)`: a row sent
//! again after a hand-over (the new owner replays from the last snapshot) has the same id and the same
//! content, so a consumer keeps the first of each id.
//!
//! Delivery is at least once: [`Output::flush`] returns when everything sent is durable (acknowledged by
//! the brokers, written to Redis, or fsynced), and the worker flushes before every snapshot, so no row whose
//! effect a snapshot holds can be lost.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use thiserror::Error;

/// Why an output failed.
#[derive(Debug, Error)]
#[error("output {output}: {message}")]
pub struct OutputError {
    /// The output, as configured.
    pub output: String,
    /// What failed.
    pub message: String,
}

/// One scored row.
#[derive(Debug, Clone, Copy)]
pub struct ScoredMessage<'a> {
    /// Input topic.
    pub topic: &'a str,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// The message key as text (lossy UTF-8), if it had one.
    pub key: Option<&'a str>,
    /// The score.
    pub score: f64,
    /// The threshold it was compared with.
    pub threshold: f64,
    /// Flagged.
    pub anomaly: bool,
    /// The label, when the input has one.
    pub label: Option<f64>,
}

impl ScoredMessage<'_> {
    /// The id: `TOPIC/PARTITION/OFFSET`.
    pub fn id(&self) -> String {
        let mut out = String::new();
        self.write_id(&mut out);
        out
    }

    /// Appends the row's id to `out` (for outputs that reuse one buffer).
    pub fn write_id(&self, out: &mut String) {
        let _ = write!(out, "{}/{}/{}", self.topic, self.partition, self.offset);
    }

    /// The JSON object (no newline); numbers that are not finite are `null`.
    pub fn json(&self, out: &mut String) {
        let num = |out: &mut String, x: f64| {
            if x.is_finite() {
                let _ = write!(out, "{x}");
            } else {
                out.push_str("null");
            }
        };
        out.push_str("{\"topic\":");
        out.push_str(&serde_json::to_string(self.topic).unwrap_or_default());
        let _ = write!(out, ",\"partition\":{},\"offset\":{}", self.partition, self.offset);
        if let Some(k) = self.key {
            out.push_str(",\"key\":");
            out.push_str(&serde_json::to_string(k).unwrap_or_default());
        }
        out.push_str(",\"score\":");
        num(out, self.score);
        out.push_str(",\"threshold\":");
        num(out, self.threshold);
        let _ = write!(out, ",\"anomaly\":{}", self.anomaly);
        if let Some(l) = self.label {
            out.push_str(",\"label\":");
            num(out, l);
        }
        out.push('}');
    }
}

/// A destination for scored rows.
pub trait Output: Send {
    /// The output as configured.
    fn describe(&self) -> String;
    /// Sends one row (it may be buffered until [`Output::flush`]).
    fn send(&mut self, row: &ScoredMessage<'_>) -> Result<(), OutputError>;
    /// Returns when everything sent is durable.
    fn flush(&mut self) -> Result<(), OutputError>;
}

/// JSON Lines appended to a file.
#[derive(Debug)]
pub struct JsonlOutput {
    path: PathBuf,
    file: BufWriter<File>,
    line: String,
}

impl JsonlOutput {
    /// Opens `path` for appending (creating it).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, OutputError> {
        let path = path.into();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| OutputError { output: path.display().to_string(), message: e.to_string() })?;
        Ok(JsonlOutput { path, file: BufWriter::new(file), line: String::new() })
    }

    fn error(&self, e: std::io::Error) -> OutputError {
        OutputError { output: self.describe(), message: e.to_string() }
    }
}

impl Output for JsonlOutput {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn send(&mut self, row: &ScoredMessage<'_>) -> Result<(), OutputError> {
        self.line.clear();
        row.json(&mut self.line);
        self.line.push('\n');
        self.file.write_all(self.line.as_bytes()).map_err(|e| self.error(e))
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.file.flush().map_err(|e| self.error(e))?;
        self.file.get_ref().sync_data().map_err(|e| self.error(e))
    }
}

/// Counts delivery reports and keeps the first failure.
#[derive(Debug, Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct ProducerCx(Arc<Deliveries>);

impl ClientContext for ProducerCx {}

impl ProducerContext for ProducerCx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.0.failed.fetch_add(1, Ordering::Relaxed);
            self.0.first_error.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| e.to_string());
        }
    }
}

/// A Kafka topic: the value is the row's JSON, the key its id (so a compacted topic keeps one per row).
pub struct KafkaOutput {
    brokers: String,
    topic: String,
    producer: BaseProducer<ProducerCx>,
    deliveries: Arc<Deliveries>,
    flush_timeout: Duration,
    value: String,
    id: String,
}

impl std::fmt::Debug for KafkaOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOutput").field("brokers", &self.brokers).field("topic", &self.topic).finish()
    }
}

impl KafkaOutput {
    /// A producer for `topic` on `brokers` (idempotent, so librdkafka's retries add no duplicates).
    pub fn open(brokers: &str, topic: &str, flush_timeout: Duration) -> Result<Self, OutputError> {
        let deliveries = Arc::new(Deliveries::default());
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create_with_context(ProducerCx(deliveries.clone()))
            .map_err(|e| OutputError { output: format!("kafka://{brokers}/{topic}"), message: e.to_string() })?;
        Ok(KafkaOutput {
            brokers: brokers.into(),
            topic: topic.into(),
            producer,
            deliveries,
            flush_timeout,
            value: String::new(),
            id: String::new(),
        })
    }

    fn error(&self, message: String) -> OutputError {
        OutputError { output: self.describe(), message }
    }
}

impl Output for KafkaOutput {
    fn describe(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }

    fn send(&mut self, row: &ScoredMessage<'_>) -> Result<(), OutputError> {
        self.value.clear();
        row.json(&mut self.value);
        self.id.clear();
        row.write_id(&mut self.id);
        loop {
            match self.producer.send(BaseRecord::<str, str>::to(&self.topic).key(&self.id).payload(&self.value)) {
                Ok(()) => break,
                Err((e, _)) if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) => {
                    // The local queue is full: serve delivery reports until there is room.
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(self.error(format!("cannot send: {e}"))),
            }
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.producer
            .flush(self.flush_timeout)
            .map_err(|e| self.error(format!("not acknowledged within {} ms: {e}", self.flush_timeout.as_millis())))?;
        if self.deliveries.failed.load(Ordering::Relaxed) > 0 {
            let first = self.deliveries.first_error.lock().unwrap_or_else(PoisonError::into_inner).clone();
            return Err(self.error(format!("delivery failed: {}", first.unwrap_or_default())));
        }
        Ok(())
    }
}

/// A Redis stream: `XADD STREAM * id ID row JSON`, pipelined and sent on flush (or every 512 rows).
#[cfg(feature = "redis")]
pub struct RedisOutput {
    shown: String,
    stream: String,
    connection: redis::Connection,
    pending: redis::Pipeline,
    queued: usize,
    value: String,
    id: String,
}

#[cfg(feature = "redis")]
impl std::fmt::Debug for RedisOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOutput").field("url", &self.shown).field("stream", &self.stream).finish()
    }
}

#[cfg(feature = "redis")]
impl RedisOutput {
    /// Connects to `url` (`redis://HOST:PORT`) to append to `stream`.
    pub fn open(url: &str, stream: &str) -> Result<Self, OutputError> {
        let shown = format!("{}/stream/{stream}", url.split('@').next_back().unwrap_or(url));
        let error = |e: redis::RedisError| OutputError { output: shown.clone(), message: e.to_string() };
        let client = redis::Client::open(url).map_err(error)?;
        let connection = client.get_connection_with_timeout(Duration::from_secs(5)).map_err(error)?;
        Ok(RedisOutput {
            shown,
            stream: stream.into(),
            connection,
            pending: redis::pipe(),
            queued: 0,
            value: String::new(),
            id: String::new(),
        })
    }
}

#[cfg(feature = "redis")]
impl Output for RedisOutput {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn send(&mut self, row: &ScoredMessage<'_>) -> Result<(), OutputError> {
        self.value.clear();
        row.json(&mut self.value);
        self.id.clear();
        row.write_id(&mut self.id);
        self.pending
            .cmd("XADD")
            .arg(&self.stream)
            .arg("*")
            .arg("id")
            .arg(&self.id)
            .arg("row")
            .arg(&self.value)
            .ignore();
        self.queued += 1;
        if self.queued >= 512 { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        if self.queued == 0 {
            return Ok(());
        }
        let result: redis::RedisResult<()> = self.pending.query(&mut self.connection);
        result.map_err(|e| OutputError { output: self.shown.clone(), message: e.to_string() })?;
        self.pending = redis::pipe();
        self.queued = 0;
        Ok(())
    }
}

/// Passes on only the flagged rows (an alerts topic or stream beside the full output).
#[derive(Debug)]
pub struct AlertsOnly<O>(pub O);

impl<O: Output> Output for AlertsOnly<O> {
    fn describe(&self) -> String {
        format!("{} (alerts only)", self.0.describe())
    }

    fn send(&mut self, row: &ScoredMessage<'_>) -> Result<(), OutputError> {
        if row.anomaly { self.0.send(row) } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.0.flush()
    }
}

impl Output for Box<dyn Output> {
    fn describe(&self) -> String {
        (**self).describe()
    }

    fn send(&mut self, row: &ScoredMessage<'_>) -> Result<(), OutputError> {
        (**self).send(row)
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        (**self).flush()
    }
}

/// Several outputs as one: each row to every output, a flush flushes them all.
#[derive(Default)]
pub struct Fanout(pub Vec<Box<dyn Output>>);

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|o| o.describe())).finish()
    }
}

impl Output for Fanout {
    fn describe(&self) -> String {
        self.0.iter().map(|o| o.describe()).collect::<Vec<_>>().join(", ")
    }

    fn send(&mut self, row: &ScoredMessage<'_>) -> Result<(), OutputError> {
        self.0.iter_mut().try_for_each(|o| o.send(row))
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.0.iter_mut().try_for_each(|o| o.flush())
    }
}

/// Opens an output by address: `kafka://HOSTS/TOPIC`, `redis://HOST:PORT/stream/NAME` (feature `redis`),
/// or a path (JSON Lines).
pub fn open_output(address: &str) -> Result<Box<dyn Output>, OutputError> {
    let bad = |m: &str| OutputError { output: address.into(), message: m.into() };
    if let Some(rest) = address.strip_prefix("kafka://") {
        let (hosts, topic) = rest.split_once('/').ok_or_else(|| bad("expected kafka://HOSTS/TOPIC"))?;
        if topic.is_empty() || topic.contains('/') {
            return Err(bad("expected kafka://HOSTS/TOPIC"));
        }
        return Ok(Box::new(KafkaOutput::open(hosts, topic, Duration::from_secs(30))?));
    }
    if let Some(rest) = address.strip_prefix("redis://") {
        let (host, stream) =
            rest.split_once("/stream/").ok_or_else(|| bad("expected redis://HOST:PORT/stream/NAME"))?;
        #[cfg(feature = "redis")]
        return Ok(Box::new(RedisOutput::open(&format!("redis://{host}"), stream)?));
        #[cfg(not(feature = "redis"))]
        {
            let _ = (host, stream);
            return Err(bad("this build has no Redis (feature `redis`)"));
        }
    }
    Ok(Box::new(JsonlOutput::open(address)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_their_id_and_null_for_what_is_not_finite() {
        let row = ScoredMessage {
            topic: "events",
            partition: 3,
            offset: 1042,
            key: Some("card\"7"),
            score: 0.25,
            threshold: f64::NAN,
            anomaly: false,
            label: Some(1.0),
        };
        let mut s = String::new();
        row.json(&mut s);
        assert_eq!(
            s,
            r#"{"topic":"events","partition":3,"offset":1042,"key":"card\"7","score":0.25,"threshold":null,"anomaly":false,"label":1}"#
        );
        assert_eq!(row.id(), "events/3/1042");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["offset"], 1042);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_redis_stream_gets_each_row_with_its_id() {
        let server = crate::store::tests::RedisServer::start();
        let mut out = open_output(&format!("{}/stream/scores", server.url)).unwrap();
        for offset in 0..700 {
            let row = ScoredMessage {
                topic: "in",
                partition: 1,
                offset,
                key: None,
                score: offset as f64 / 8.0,
                threshold: 1.0,
                anomaly: false,
                label: None,
            };
            out.send(&row).unwrap();
        }
        out.flush().unwrap();
        let mut c = redis::Client::open(server.url.as_str()).unwrap().get_connection().unwrap();
        let len: u64 = redis::cmd("XLEN").arg("scores").query(&mut c).unwrap();
        assert_eq!(len, 700);
        let last: Vec<(String, Vec<(String, String)>)> =
            redis::cmd("XREVRANGE").arg("scores").arg("+").arg("-").arg("COUNT").arg(1).query(&mut c).unwrap();
        let fields = &last[0].1;
        assert_eq!(fields[0], ("id".to_owned(), "in/1/699".to_owned()));
        assert!(fields[1].1.contains("\"score\":87.375"), "{fields:?}");
    }

    #[test]
    fn alerts_only_passes_on_the_flagged_rows_and_a_fanout_feeds_every_output() {
        let dir = tempfile::tempdir().unwrap();
        let (all, alerts) = (dir.path().join("all.jsonl"), dir.path().join("alerts.jsonl"));
        let mut out = Fanout(vec![
            Box::new(JsonlOutput::open(&all).unwrap()),
            Box::new(AlertsOnly(JsonlOutput::open(&alerts).unwrap())),
        ]);
        for offset in 0..10 {
            let row = ScoredMessage {
                topic: "t",
                partition: 0,
                offset,
                key: None,
                score: offset as f64,
                threshold: 6.5,
                anomaly: offset > 6,
                label: None,
            };
            out.send(&row).unwrap();
        }
        out.flush().unwrap();
        let lines = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().lines().count();
        assert_eq!((lines(&all), lines(&alerts)), (10, 3));
        assert!(out.describe().contains("(alerts only)"));
    }

    #[test]
    fn addresses_that_cannot_be_outputs_are_refused_by_name() {
        for a in ["kafka://host", "kafka://host/", "redis://host:1/list/x"] {
            let Err(e) = open_output(a) else { panic!("{a} opened") };
            let e = e.to_string();
            assert!(e.contains(a) && e.contains("expected"), "{e}");
        }
    }
}
