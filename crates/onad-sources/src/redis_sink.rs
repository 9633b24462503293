//! Redis stream sink: scored rows appended to a stream with `XADD`, one entry per row, pipelined per
//! batch, on the synchronous client (no async runtime).
//!
//! **Entries.** Each entry has the fields `row` (the input row id, decimal), `score`, `threshold`,
//! `anomaly` (`true` / `false`), then `label` when the input has labels, `key` in per-key runs, and
//! `origin_topic`, `origin_partition`, `origin_offset` for rows read from Kafka (the input message: drop
//! repeats by it then, since row ids of a Kafka input count messages in fetch order). Every
//! value is a string; numbers are in Rust's shortest round-trip form (`0.41`), and a number that is not
//! finite (a threshold still warming up) is the empty string,, which onad's own sources read back as
//! missing. Entry ids are the server's (`*`). With `maxlen=N` the stream is trimmed as it grows
//! (`XADD ... MAXLEN ~ N`: at least the last N entries are kept; Redis trims whole nodes, so a few more
//! may stay).
//!
//! **Delivery is at least once.** The server has answered every `XADD` by the time a write returns, so
//! [`Sink::sync`] (before every checkpoint) has nothing to wait for; it reports
//! `SinkPosition::Rows { rows: entries written, parts: 0 }`. What is durable then is what the server's
//! persistence settings make it (AOF with `appendfsync always` for every entry). A stream cannot take
//! entries back, so a run resumed from a checkpoint appends again the rows the killed run wrote after that
//! checkpoint, with the same `row` and the same values (a resumed run recomputes them from the same
//! state). A reader that keeps the first entry of each `row` sees exactly the rows of an uninterrupted run,
//! once each. A lost connection is re-established with backoff (100 ms, doubling up to 2 s) and the
//! batch's pipeline sent again, which can also repeat rows; after `give_up_ms` (10 s by default) without a
//! connection the sink fails with an error naming the stream and the server.

use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use onad_core::{Scored, Sink, SinkError, SinkLayout, SinkPosition};
use redis::{Client, Connection, IntoConnectionInfo, RedisError};

use crate::sink_url::{RedisSinkUrl, parse_redis_sink_url};
use crate::url::Secret;

/// TCP connect and handshake timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Socket read and write timeout: an answer later than this means the server is gone.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnection backoff: first delay and cap.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// Entries per pipeline: a batch larger than this is sent in several round trips.
const PIPELINE_ENTRIES: usize = 1024;

/// Appends scored rows to a Redis stream; see the module docs for the entries and the delivery rule.
///
/// Built from `redis://[USER:PASSWORD@]HOST[:PORT]/stream/NAME[?maxlen=N&give_up_ms=MS]`
/// ([`RedisStreamSink::from_url`], or [`open_sink_url`](crate::open_sink_url)) or in code
/// ([`RedisStreamSink::new`] and the `with_` methods). Nothing is contacted until the run opens the sink;
/// opening fails, naming the server and the stream, when the server cannot be reached or the key holds
/// something other than a stream.
pub struct RedisStreamSink {
    name: String,
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<Secret>,
    stream: String,
    maxlen: Option<u64>,
    give_up: Duration,
    client: Option<Client>,
    conn: Option<Connection>,
    /// Entries written before this run: the checkpoint's count when resumed.
    resumed_from: Option<u64>,
    /// Entries written by this run.
    written: u64,
    number: String,
    /// The explanation names of the layout (one field each).
    explanations: Vec<String>,
}

impl fmt::Debug for RedisStreamSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStreamSink")
            .field("name", &self.name)
            .field("maxlen", &self.maxlen)
            .field("connected", &self.conn.is_some())
            .field("resumed_from", &self.resumed_from)
            .field("written", &self.written)
            .finish()
    }
}

/// True for errors a new connection may cure: refused, dropped or timed out, or a server loading or
/// failing over.
fn transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.code(), Some("LOADING" | "TRYAGAIN" | "MASTERDOWN"))
}

impl RedisStreamSink {
    /// A sink appending to the stream `stream` on the server at `host:port`, without trimming, giving up
    /// after 10 s without a connection.
    pub fn new(host: impl Into<String>, port: u16, stream: impl Into<String>) -> Self {
        let (host, stream) = (host.into(), stream.into());
        let shown = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        RedisStreamSink {
            name: format!("redis://{shown}:{port}/stream/{stream}"),
            host,
            port,
            username: None,
            password: None,
            stream,
            maxlen: None,
            give_up: Duration::from_secs(10),
            client: None,
            conn: None,
            resumed_from: None,
            written: 0,
            number: String::with_capacity(24),
            explanations: Vec::new(),
        }
    }

    /// A sink from `redis://[USER:PASSWORD@]HOST[:PORT]/stream/NAME[?maxlen=N&give_up_ms=MS]`.
    pub fn from_url(url: &str) -> Result<Self, SinkError> {
        let rest = crate::sink_url::after_scheme(url, "redis")?;
        Ok(Self::from_parsed(parse_redis_sink_url(rest)?))
    }

    pub(crate) fn from_parsed(url: RedisSinkUrl) -> Self {
        let mut sink = RedisStreamSink::new(url.host, url.port, url.stream);
        sink.name = url.name;
        sink.username = url.username;
        sink.password = url.password;
        sink.maxlen = url.maxlen;
        sink.give_up = Duration::from_millis(url.give_up_ms);
        sink
    }

    /// Trims the stream to about `n` entries as it grows (`XADD ... MAXLEN ~ n`).
    pub fn with_maxlen(mut self, n: u64) -> Self {
        self.maxlen = Some(n);
        self
    }

    /// How long a lost connection is retried before a write fails.
    pub fn with_give_up(mut self, after: Duration) -> Self {
        self.give_up = after;
        self
    }

    /// Authenticates with `password` (and `username`, for a Redis ACL user).
    pub fn with_auth(mut self, username: Option<String>, password: impl Into<String>) -> Self {
        self.username = username;
        self.password = Some(Secret(password.into()));
        self
    }

    /// The stream's key.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The entry count of the checkpoint this sink was resumed from (`None` for a fresh run). The rows the
    /// killed run wrote after that checkpoint are appended again (see the module docs).
    pub fn resumed_from(&self) -> Option<u64> {
        self.resumed_from
    }

    /// Entries written, counting those before the checkpoint resumed from.
    pub fn written(&self) -> u64 {
        self.resumed_from.unwrap_or(0) + self.written
    }

    fn error(&self, message: String) -> SinkError {
        SinkError::External { connector: "redis", target: self.name.clone(), error: message.into() }
    }

    fn client(&self) -> Result<Client, SinkError> {
        let info = (self.host.as_str(), self.port)
            .into_connection_info()
            .map_err(|e| self.error(format!("bad server address: {e}")))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(&password.0);
        }
        Client::open(info.set_redis_settings(settings)).map_err(|e| self.error(e.to_string()))
    }

    fn connect(client: &Client) -> Result<Connection, RedisError> {
        let conn = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(conn)
    }

    /// Runs `pipe`, reconnecting with backoff while the connection is lost, for at most `give_up`.
    fn run(&mut self, pipe: &redis::Pipeline) -> Result<(), SinkError> {
        let client = self.client.clone().ok_or_else(|| self.error("written before it was opened".into()))?;
        let mut lost_at: Option<Instant> = None;
        let mut delay = FIRST_DELAY;
        loop {
            let result = match self.conn.as_mut() {
                Some(conn) => pipe.query::<()>(conn),
                None => Self::connect(&client).and_then(|mut conn| {
                    let r = pipe.query::<()>(&mut conn);
                    self.conn = Some(conn);
                    r
                }),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if transient(&e) => {
                    self.conn = None;
                    let lost = *lost_at.get_or_insert_with(Instant::now);
                    let left = self.give_up.saturating_sub(lost.elapsed());
                    if left.is_zero() {
                        return Err(self.error(format!(
                            "lost the connection to the server {}:{} and could not append to the stream '{}' \
                             within give_up_ms={} (last error: {e})",
                            self.host,
                            self.port,
                            self.stream,
                            self.give_up.as_millis()
                        )));
                    }
                    tracing::warn!(
                        sink = %self.name,
                        error = %e,
                        retry_in_ms = delay.min(left).as_millis() as u64,
                        "redis: connection lost while appending, reconnecting"
                    );
                    std::thread::sleep(delay.min(left));
                    delay = (delay * 2).min(MAX_DELAY);
                }
                Err(e) => {
                    return Err(self.error(format!("cannot append to the stream '{}': {e}", self.stream)));
                }
            }
        }
    }

    /// The string form of a number in an entry: shortest round trip, or empty when not finite.
    fn number(buf: &mut String, v: f64) -> &str {
        buf.clear();
        if v.is_finite() {
            // The form of every onad output: shortest round trip, `3.0` not `3`.
            let _ = write!(buf, "{v:?}");
        }
        buf
    }
}

impl Sink for RedisStreamSink {
    fn open(&mut self, layout: &SinkLayout, resume: Option<&SinkPosition>) -> Result<(), SinkError> {
        self.explanations = layout.explanations.clone();
        self.resumed_from = match resume {
            None | Some(SinkPosition::Unrecorded) => None,
            Some(SinkPosition::Rows { rows, .. }) => Some(*rows),
            Some(other) => {
                return Err(SinkError::Resume {
                    target: self.name.clone(),
                    message: format!("the checkpoint recorded {other}, not a count of entries"),
                });
            }
        };
        let client = self.client()?;
        let mut conn = Self::connect(&client)
            .map_err(|e| self.error(format!("cannot connect to the server {}:{}: {e}", self.host, self.port)))?;
        let kind: String = redis::cmd("TYPE")
            .arg(&self.stream)
            .query(&mut conn)
            .map_err(|e| self.error(format!("cannot look up the key '{}': {e}", self.stream)))?;
        if !matches!(kind.as_str(), "none" | "stream") {
            return Err(self.error(format!("the key '{}' holds a {kind}, not a stream", self.stream)));
        }
        (self.client, self.conn, self.written) = (Some(client), Some(conn), 0);
        Ok(())
    }

    fn write(&mut self, scored: &Scored<'_>) -> Result<(), SinkError> {
        let mut number = std::mem::take(&mut self.number);
        let mut result = Ok(());
        for start in (0..scored.len()).step_by(PIPELINE_ENTRIES) {
            let end = (start + PIPELINE_ENTRIES).min(scored.len());
            let mut pipe = redis::pipe();
            let width = self.explanations.len();
            for (i, r, origin) in (start..end).map(|i| (i, scored.row(i), scored.origin(i))) {
                let cmd = pipe.cmd("XADD").arg(&self.stream);
                if let Some(n) = self.maxlen {
                    cmd.arg("MAXLEN").arg("~").arg(n);
                }
                cmd.arg("*").arg("row").arg(r.id);
                cmd.arg("score").arg(Self::number(&mut number, r.score));
                cmd.arg("threshold").arg(Self::number(&mut number, r.threshold));
                cmd.arg("anomaly").arg(if r.flag { "true" } else { "false" });
                if let Some(label) = r.label {
                    cmd.arg("label").arg(Self::number(&mut number, label));
                }
                if let Some(key) = r.key {
                    cmd.arg("key").arg(Self::number(&mut number, key));
                }
                if let Some(o) = origin {
                    cmd.arg("origin_topic").arg(o.topic);
                    cmd.arg("origin_partition").arg(o.partition).arg("origin_offset").arg(o.offset);
                }
                // Explanation values by name; one that does not exist yet is an empty field.
                for (name, &v) in self.explanations.iter().zip(scored.explanation(i, width)) {
                    cmd.arg(name).arg(Self::number(&mut number, v));
                }
            }
            result = self.run(&pipe);
            if result.is_err() {
                break;
            }
            self.written += (end - start) as u64;
        }
        self.number = number;
        result
    }

    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        if self.client.is_none() {
            return Ok(SinkPosition::Unrecorded);
        }
        Ok(SinkPosition::Rows { rows: self.written(), parts: 0 })
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
