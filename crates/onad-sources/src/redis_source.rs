//! Redis source: a stream read through a consumer group, or a pub/sub channel, each message one JSON
//! object, turned into dense batches by the same code as the JSON Lines source.
//!
//! The synchronous client is used. A stream is read on the caller's thread (`XREADGROUP ... BLOCK` waits
//! on the server). A channel is read by a subscriber thread that owns its connection (the client's
//! `PubSub` borrows the connection, and must keep reading so the server does not drop a slow subscriber)
//! and hands messages over a bounded channel.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use onad_core::{Batch, Position, SchemaRef, SkipCounts, Source, SourceError};
use redis::{Client, Connection, IntoConnectionInfo, RedisError, Value};

use crate::json_row::Problem;
use crate::message::{MessageReader, MessageStream, POLL, StreamLimits};
use crate::open::{RedisTarget, RedisUrl, parse_redis_url};
use crate::options::SourceOptions;
use crate::url::split_scheme;

/// Connection (TCP connect and handshake) timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Socket read and write timeout of a stream connection: a blocked read waits at most `POLL` on the
/// server, so a reply later than this means the server is gone.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the subscriber thread checks whether the source was dropped.
const SUBSCRIBER_TICK: Duration = Duration::from_millis(250);
/// Reconnection backoff: first delay and cap.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Reads a Redis stream (through a consumer group) or a Redis pub/sub channel as batches. Each message
/// is one JSON object, read as the JSON Lines source (`JsonlSource`) reads a line: the columns are the keys
/// of the first message that is a JSON object, every key but the label is a feature, numbers are `f64`,
/// `null` is NaN, `true` / `false` are 1 / 0.
///
/// Opened from a URL (see [`open_url`](crate::open_url) for every parameter):
///
/// - `redis://HOST:PORT/stream/NAME?group=G&consumer=C`: the group is created (with `MKSTREAM`, reading
///   from the start of the stream) if it does not exist. The source first reads the entries already
///   delivered to consumer `C` and never acknowledged (a restart of the same consumer), then claims with
///   `XAUTOCLAIM` the pending entries of other consumers idle for `claim_idle_ms` (consumers that died),
///   then reads new entries with `XREADGROUP ... COUNT batch_size BLOCK ...`. The JSON object is the
///   value of the entry's field `data` (or `field=`).
/// - `redis://HOST:PORT/channel/NAME`: `SUBSCRIBE`s to the channel; each message is a JSON object.
///   Pub/sub keeps nothing: messages published while the source is not connected are lost.
///
/// **Delivery is at least once.** A stream entry is acknowledged (`XACK`) when the *next* batch is
/// requested, that is after the caller has processed the batch holding it (skipped bad entries are
/// acknowledged with it). Entries of a batch that was never followed by another `next()` call (a crash)
/// stay pending and are delivered again: to the same consumer when it restarts, or to another one after
/// `claim_idle_ms`. Resuming therefore relies on the group's pending and acknowledged state:
/// [`Source::position`] is `Position::Row(n)`, the number of messages delivered by this source (bad ones
/// included), and [`Source::seek`] cannot move the stream (only `Position::Start` is accepted, before
/// anything was read).
///
/// **End.** A stream or channel has no end: the source blocks for new messages, unless
/// `idle_timeout_ms` (end when no message arrives for that long) or `max_rows` (end after that many
/// rows) is given. Opening waits (within `idle_timeout_ms`) for the first JSON object, which names the
/// columns. When none arrives within `idle_timeout_ms` (a periodic job finding nothing new), opening
/// still succeeds: the source has no columns (an empty schema), no labels, and yields no batch (bad
/// messages read meanwhile are counted and acknowledged), so the run ends with 0 rows.
///
/// **Bad messages** are skipped and counted by reason, or, under [`BadRowPolicy::Fail`](onad_core::BadRowPolicy::Fail), reported as an
/// error naming the URL (without its password), the row, the entry id and the column. The reasons are
/// those of the JSON Lines source (`invalid_json`, `not_object`, `non_numeric`, `missing_column`,
/// `extra_column`, `duplicate_column`, `invalid_utf8`, `empty_row`), plus `missing_field` (a stream entry without the
/// field). Row ids count messages from 0, bad ones included.
///
/// **Connections.** The first connection is made when opening; if it fails, opening fails. A connection
/// lost later is re-established with backoff (100 ms, doubling up to 5 s), the group re-created or the
/// channel re-subscribed, until `give_up_ms` has passed since the loss (default: forever); then the
/// source fails with an error saying so.
pub struct RedisSource(MessageStream<Reader>);

impl fmt::Debug for RedisSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisSource").field(&self.0).finish()
    }
}

type Message = crate::message::Message<EntryId>;

/// A stream entry id, shown as `entry ID` in errors.
#[derive(Debug)]
struct EntryId(String);

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {}", self.0)
    }
}

enum Reader {
    Stream(Box<StreamReader>),
    Channel(ChannelReader),
}

impl MessageReader for Reader {
    type Id = EntryId;

    fn fetch(&mut self, count: usize, wait: Duration) -> Result<Vec<Message>, SourceError> {
        match self {
            Reader::Stream(s) => s.fetch(count, wait),
            Reader::Channel(c) => c.fetch(count, wait),
        }
    }

    fn handed_out(&mut self, id: Option<EntryId>) {
        if let (Reader::Stream(s), Some(id)) = (self, id) {
            s.unacked.push(id.0);
        }
    }

    fn ack(&mut self) -> Result<(), SourceError> {
        match self {
            Reader::Stream(s) => s.ack(),
            Reader::Channel(_) => Ok(()),
        }
    }

    fn missing_payload(&self) -> Problem {
        let field = match self {
            Reader::Stream(s) => s.field.as_str(),
            Reader::Channel(_) => "data",
        };
        Problem::new("missing_field", None, format!("the entry has no field '{field}'"))
    }
}

fn external(name: &str, error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SourceError {
    SourceError::External { connector: "redis", source_name: name.to_owned(), error: error.into() }
}

/// True for errors a new connection may cure: the connection was refused, dropped or timed out, the
/// server is loading, or the group vanished (a restarted server without persistence).
fn transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.code(), Some("LOADING" | "NOGROUP" | "TRYAGAIN" | "MASTERDOWN"))
}

/// The reconnection schedule of one connection loss.
#[derive(Debug)]
struct Backoff {
    give_up: Option<Duration>,
    delay: Duration,
    lost_at: Option<Instant>,
}

impl Backoff {
    fn new(give_up: Option<Duration>) -> Self {
        Backoff { give_up, delay: FIRST_DELAY, lost_at: None }
    }

    /// Called after a good exchange: the next loss starts a new schedule.
    fn reset(&mut self) {
        self.delay = FIRST_DELAY;
        self.lost_at = None;
    }

    /// Waits before the next attempt, or returns the error that ends the source once `give_up` has
    /// passed since the loss. Returns early (`Ok`) when `stop` is raised.
    fn wait(&mut self, name: &str, error: &RedisError, stop: Option<&AtomicBool>) -> Result<(), SourceError> {
        let lost_at = *self.lost_at.get_or_insert_with(Instant::now);
        let mut delay = self.delay;
        if let Some(give_up) = self.give_up {
            let left = give_up.saturating_sub(lost_at.elapsed());
            if left.is_zero() {
                return Err(external(
                    name,
                    format!(
                        "lost the connection and could not re-establish it within give_up_ms={} (last error: \
                         {error})",
                        give_up.as_millis()
                    ),
                ));
            }
            delay = delay.min(left);
        }
        tracing::warn!(source = name, error = %error, retry_in_ms = delay.as_millis() as u64, "redis: connection lost, reconnecting");
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Ok(());
            }
            std::thread::sleep(until.saturating_duration_since(Instant::now()).min(Duration::from_millis(50)));
        }
        self.delay = (self.delay * 2).min(MAX_DELAY);
        Ok(())
    }
}

fn client(url: &RedisUrl) -> Result<Client, SourceError> {
    let info = (url.host.as_str(), url.port).into_connection_info().map_err(|e| external(&url.name, e))?;
    let mut settings = info.redis_settings().clone();
    if let Some(user) = &url.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &url.password {
        settings = settings.set_password(&password.0);
    }
    Client::open(info.set_redis_settings(settings)).map_err(|e| external(&url.name, e))
}

fn connect(client: &Client, read_timeout: Duration) -> Result<Connection, RedisError> {
    let conn = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    conn.set_read_timeout(Some(read_timeout))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(conn)
}

/// Where a stream consumer is in its reading order.
#[derive(Debug)]
enum Phase {
    /// Re-reading this consumer's own pending entries after the given id.
    Own(String),
    /// Claiming idle pending entries of other consumers from the given cursor.
    Claim(String),
    /// Reading new entries.
    New,
}

struct StreamReader {
    name: String,
    client: Client,
    conn: Option<Connection>,
    backoff: Backoff,
    key: String,
    group: String,
    consumer: String,
    field: String,
    claim_idle_ms: u64,
    phase: Phase,
    /// Ids handed out (or skipped) since the last `XACK`.
    unacked: Vec<String>,
}

impl StreamReader {
    fn open(url: &RedisUrl) -> Result<Self, SourceError> {
        let RedisTarget::Stream { key, group, consumer, field, claim_idle_ms } = &url.target else {
            return Err(SourceError::Unsupported(format!("{}: not a stream URL", url.name)));
        };
        let mut reader = StreamReader {
            name: url.name.clone(),
            client: client(url)?,
            conn: None,
            backoff: Backoff::new(url.give_up_ms.map(Duration::from_millis)),
            key: key.clone(),
            group: group.clone(),
            consumer: consumer.clone(),
            field: field.clone(),
            claim_idle_ms: *claim_idle_ms,
            phase: Phase::Own("0".into()),
            unacked: Vec::new(),
        };
        let conn = reader.connect().map_err(|e| external(&reader.name, format!("cannot connect: {e}")))?;
        reader.conn = Some(conn);
        Ok(reader)
    }

    /// A new connection, with the consumer group created if missing (a restarted server may have lost
    /// it).
    fn connect(&self) -> Result<Connection, RedisError> {
        let mut conn = connect(&self.client, IO_TIMEOUT)?;
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut conn);
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
            _ => Ok(conn),
        }
    }

    /// Runs a command, reconnecting on a lost connection until `give_up_ms`.
    fn call<T>(&mut self, mut f: impl FnMut(&mut Connection) -> Result<T, RedisError>) -> Result<T, SourceError> {
        loop {
            let conn = match self.conn.take() {
                Some(c) => Ok(c),
                None => self.connect(),
            };
            let error = match conn {
                Ok(mut c) => match f(&mut c) {
                    Ok(v) => {
                        self.conn = Some(c);
                        self.backoff.reset();
                        return Ok(v);
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if !transient(&error) {
                return Err(external(&self.name, error));
            }
            self.backoff.wait(&self.name, &error, None)?;
        }
    }

    fn fetch(&mut self, count: usize, wait: Duration) -> Result<Vec<Message>, SourceError> {
        let count = count.max(1);
        loop {
            let (key, group, consumer) = (self.key.clone(), self.group.clone(), self.consumer.clone());
            match &self.phase {
                Phase::Own(after) => {
                    let after = after.clone();
                    let reply = self.call(|c| {
                        redis::cmd("XREADGROUP")
                            .arg("GROUP")
                            .arg(&group)
                            .arg(&consumer)
                            .arg("COUNT")
                            .arg(count)
                            .arg("STREAMS")
                            .arg(&key)
                            .arg(&after)
                            .query::<Value>(c)
                    })?;
                    let entries = self.read_reply(stream_entries(reply))?;
                    match entries.last() {
                        None => self.phase = Phase::Claim("0-0".into()),
                        Some((last, _)) => self.phase = Phase::Own(last.clone()),
                    }
                    if let Some(m) = self.messages(entries) {
                        return Ok(m);
                    }
                }
                Phase::Claim(cursor) => {
                    let cursor = cursor.clone();
                    let min_idle = self.claim_idle_ms;
                    let reply = self.call(|c| {
                        redis::cmd("XAUTOCLAIM")
                            .arg(&key)
                            .arg(&group)
                            .arg(&consumer)
                            .arg(min_idle)
                            .arg(&cursor)
                            .arg("COUNT")
                            .arg(count)
                            .query::<Value>(c)
                    })?;
                    let (next, entries) = self.read_reply(autoclaim_reply(reply))?;
                    self.phase = if next == "0-0" { Phase::New } else { Phase::Claim(next) };
                    if let Some(m) = self.messages(entries) {
                        return Ok(m);
                    }
                }
                Phase::New => {
                    let block = wait.as_millis().clamp(1, POLL.as_millis()) as u64;
                    let reply = self.call(|c| {
                        redis::cmd("XREADGROUP")
                            .arg("GROUP")
                            .arg(&group)
                            .arg(&consumer)
                            .arg("COUNT")
                            .arg(count)
                            .arg("BLOCK")
                            .arg(block)
                            .arg("STREAMS")
                            .arg(&key)
                            .arg(">")
                            .query::<Value>(c)
                    })?;
                    let entries = self.read_reply(stream_entries(reply))?;
                    return Ok(self.messages(entries).unwrap_or_default());
                }
            }
        }
    }

    fn read_reply<T>(&self, parsed: Result<T, String>) -> Result<T, SourceError> {
        parsed.map_err(|m| external(&self.name, format!("unexpected reply from the server: {m}")))
    }

    /// Turns entries into messages; a deleted entry (no fields) is only acknowledged. `None` when no
    /// message is left.
    fn messages(&mut self, entries: Vec<Entry>) -> Option<Vec<Message>> {
        let mut out = Vec::with_capacity(entries.len());
        for (id, fields) in entries {
            match fields {
                None => self.unacked.push(id),
                Some(fields) => {
                    let payload = fields.into_iter().find(|(k, _)| *k == self.field.as_bytes()).map(|(_, v)| v);
                    out.push(Message { id: Some(EntryId(id)), payload, key: f64::NAN });
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }

    fn ack(&mut self) -> Result<(), SourceError> {
        if self.unacked.is_empty() {
            return Ok(());
        }
        let ids = std::mem::take(&mut self.unacked);
        let (key, group) = (self.key.clone(), self.group.clone());
        self.call(|c| redis::cmd("XACK").arg(&key).arg(&group).arg(&ids).query::<i64>(c))?;
        Ok(())
    }
}

fn text(v: &Value) -> Result<String, String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).map_err(|_| "an id that is not UTF-8".into()),
        Value::SimpleString(s) => Ok(s.clone()),
        other => Err(format!("expected a string, found {other:?}")),
    }
}

fn bytes(v: Value) -> Result<Vec<u8>, String> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        other => Err(format!("expected a string, found {other:?}")),
    }
}

type Entry = (String, Option<Vec<(Vec<u8>, Vec<u8>)>>);

/// The entries of a list `[[id, [field, value, ...]], ...]`; fields are `None` for a deleted entry.
fn entry_list(v: Value) -> Result<Vec<Entry>, String> {
    let Value::Array(items) = v else {
        return Err(format!("expected a list of entries, found {v:?}"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(parts) = item else {
            // A nil in place of an entry: deleted (Redis 6.2 XAUTOCLAIM).
            continue;
        };
        let mut parts = parts.into_iter();
        let id = text(&parts.next().ok_or("an entry without an id")?)?;
        let fields = match parts.next() {
            Some(Value::Array(flat)) => {
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                let mut flat = flat.into_iter();
                while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                    pairs.push((bytes(k)?, bytes(v)?));
                }
                Some(pairs)
            }
            Some(Value::Map(map)) => {
                Some(map.into_iter().map(|(k, v)| Ok((bytes(k)?, bytes(v)?))).collect::<Result<_, String>>()?)
            }
            _ => None,
        };
        out.push((id, fields));
    }
    Ok(out)
}

/// The entries of an `XREADGROUP` reply for one stream (nil when nothing arrived).
fn stream_entries(v: Value) -> Result<Vec<Entry>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => match streams.into_iter().next() {
            None => Ok(Vec::new()),
            Some(Value::Array(pair)) => pair.into_iter().nth(1).map_or(Ok(Vec::new()), entry_list),
            Some(other) => Err(format!("expected [stream, entries], found {other:?}")),
        },
        Value::Map(streams) => streams.into_iter().next().map_or(Ok(Vec::new()), |(_, entries)| entry_list(entries)),
        other => Err(format!("expected the streams read, found {other:?}")),
    }
}

/// The next cursor and the claimed entries of an `XAUTOCLAIM` reply.
fn autoclaim_reply(v: Value) -> Result<(String, Vec<Entry>), String> {
    let Value::Array(parts) = v else {
        return Err(format!("expected [cursor, entries, ...], found {v:?}"));
    };
    let mut parts = parts.into_iter();
    let cursor = text(&parts.next().ok_or("no cursor")?)?;
    let entries = parts.next().map_or(Ok(Vec::new()), entry_list)?;
    Ok((cursor, entries))
}

/// A pub/sub subscription, read by its own thread.
struct ChannelReader {
    rx: Option<Receiver<Result<Vec<u8>, SourceError>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    /// An error received while collecting messages, returned by the next fetch.
    failed: Option<SourceError>,
}

impl Drop for ChannelReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.rx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl ChannelReader {
    /// Connects and subscribes (failing when either fails), then hands the connection to the thread.
    fn open(url: &RedisUrl, capacity: usize) -> Result<Self, SourceError> {
        let RedisTarget::Channel { name: channel } = &url.target else {
            return Err(SourceError::Unsupported(format!("{}: not a channel URL", url.name)));
        };
        let client = client(url)?;
        let cannot = |e: RedisError| external(&url.name, format!("cannot connect: {e}"));
        let conn = connect(&client, SUBSCRIBER_TICK).map_err(cannot)?;
        let (tx, rx) = sync_channel(capacity.max(1));
        let (ready_tx, ready_rx) = sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let subscriber = Subscriber {
            name: url.name.clone(),
            client,
            channel: channel.clone(),
            backoff: Backoff::new(url.give_up_ms.map(Duration::from_millis)),
            tx,
            stop: stop.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("onad-redis-sub".into())
            .spawn(move || subscriber.run(conn, ready_tx))
            .map_err(|error| SourceError::Io { source_name: url.name.clone(), error })?;
        let reader = ChannelReader { rx: Some(rx), stop, handle: Some(handle), failed: None };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(reader),
            Ok(Err(e)) => Err(cannot(e)),
            Err(_) => Err(external(&url.name, "the subscriber thread stopped unexpectedly")),
        }
    }

    fn fetch(&mut self, count: usize, wait: Duration) -> Result<Vec<Message>, SourceError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let Some(rx) = self.rx.as_ref() else {
            return Ok(Vec::new());
        };
        let stopped = || SourceError::Unsupported("the Redis subscriber thread stopped unexpectedly".into());
        let mut out = Vec::new();
        match rx.recv_timeout(wait) {
            Ok(Ok(p)) => out.push(Message { id: None, payload: Some(p), key: f64::NAN }),
            Ok(Err(e)) => return Err(e),
            Err(RecvTimeoutError::Timeout) => return Ok(out),
            Err(RecvTimeoutError::Disconnected) => return Err(stopped()),
        }
        while out.len() < count {
            match rx.try_recv() {
                Ok(Ok(p)) => out.push(Message { id: None, payload: Some(p), key: f64::NAN }),
                Ok(Err(e)) => {
                    self.failed = Some(e);
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        Ok(out)
    }
}

/// The subscriber thread's state.
struct Subscriber {
    name: String,
    client: Client,
    channel: String,
    backoff: Backoff,
    tx: SyncSender<Result<Vec<u8>, SourceError>>,
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    /// Subscribes on `conn` and reads messages; on a lost connection, reconnects and subscribes again.
    /// Ends when the source is dropped or with an error sent to it.
    fn run(mut self, conn: Connection, ready: SyncSender<Result<(), RedisError>>) {
        let mut conn = Some(conn);
        let mut ready = Some(ready);
        loop {
            let error = match conn.take().map_or_else(|| connect(&self.client, SUBSCRIBER_TICK), Ok) {
                Ok(mut c) => match self.listen(&mut c, &mut ready) {
                    None => return,
                    Some(e) => e,
                },
                Err(e) => e,
            };
            if let Some(r) = ready.take() {
                let _ = r.send(Err(error));
                return;
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let fatal = if transient(&error) {
                self.backoff.wait(&self.name, &error, Some(&self.stop)).err()
            } else {
                Some(external(&self.name, error))
            };
            if let Some(e) = fatal {
                let _ = self.tx.send(Err(e));
                return;
            }
        }
    }

    /// Subscribes and forwards messages until an error (returned) or a stop (`None`).
    fn listen(
        &mut self,
        conn: &mut Connection,
        ready: &mut Option<SyncSender<Result<(), RedisError>>>,
    ) -> Option<RedisError> {
        let mut pubsub = conn.as_pubsub();
        if let Err(e) = pubsub.subscribe(&self.channel) {
            return Some(e);
        }
        if let Some(r) = ready.take() {
            let _ = r.send(Ok(()));
        }
        self.backoff.reset();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            match pubsub.get_message() {
                Ok(m) => {
                    if self.tx.send(Ok(m.get_payload_bytes().to_vec())).is_err() {
                        return None;
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Some(e),
            }
        }
    }
}

impl RedisSource {
    /// Opens a `redis://` URL (see [`open_url`](crate::open_url) for its forms and parameters) and waits
    /// for the first message that is a JSON object, whose keys name the columns.
    pub fn open(url: &str, options: SourceOptions) -> Result<Self, SourceError> {
        match split_scheme(url) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("redis") => {
                Self::from_url(parse_redis_url(rest)?, options)
            }
            _ => Err(SourceError::Unsupported(format!(
                "{}: not a redis:// URL",
                url.split_once('@').map_or(url, |(_, after)| after)
            ))),
        }
    }

    pub(crate) fn from_url(url: RedisUrl, options: SourceOptions) -> Result<Self, SourceError> {
        let reader = match url.target {
            RedisTarget::Stream { .. } => Reader::Stream(Box::new(StreamReader::open(&url)?)),
            RedisTarget::Channel { .. } => Reader::Channel(ChannelReader::open(&url, options.batch_size.max(1024))?),
        };
        let limits = StreamLimits {
            idle_timeout: url.idle_timeout_ms.map(Duration::from_millis),
            max_rows: url.max_rows,
            key_column: None,
        };
        MessageStream::open(url.name, reader, &options, limits).map(RedisSource)
    }
}

impl Iterator for RedisSource {
    type Item = Result<Batch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_batch()
    }
}

impl Source for RedisSource {
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

    /// `Position::Row(n)`: the messages delivered so far, bad ones included. Not a place in the stream:
    /// a stream resumes from its consumer group's state.
    fn position(&self) -> Position {
        Position::Row(self.0.next_row)
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

    /// Accepts only `Position::Start` before anything was delivered. A stream resumes from its consumer
    /// group (entries handed out and not acknowledged are delivered again, acknowledged ones are not);
    /// a channel keeps nothing to go back to.
    fn seek(&mut self, position: &Position) -> Result<(), SourceError> {
        if *position == Position::Start && self.0.next_row == 0 {
            return Ok(());
        }
        let why = match self.0.reader {
            Reader::Stream(_) => {
                "a Redis stream resumes from its consumer group's state (unacknowledged entries are delivered \
                 again, acknowledged ones are not): open it again with the same group and consumer instead"
            }
            Reader::Channel(_) => "a Redis pub/sub channel keeps no messages to go back to",
        };
        Err(SourceError::Unsupported(format!("{}: cannot seek to {position}: {why}", self.0.name)))
    }
}
