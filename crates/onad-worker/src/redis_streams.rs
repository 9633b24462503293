//! The lighter path: workers on Redis Streams, with the state protocol of the Kafka path.
//!
//! Redis has no partitions, so the input is `shards` streams, `NAME:0` to `NAME:{shards-1}` (or just `NAME`
//! for one shard), and the producer sends every entity's entries to one shard (as a Kafka producer sends a
//! key to one partition): `XADD NAME:S * key KEY data JSON`. Each shard is read through one consumer group.
//! Ownership is a lease per shard, `PREFIX:lease:S` (`SET NX PX`, renewed while held); the live workers
//! register in `PREFIX:members` (a sorted set of expiry times), and each worker holds its fair share,
//! `ceil(shards / live workers)`, taking free shards and handing extra ones back, so a worker joining or
//! leaving moves shards as a Kafka rebalance moves partitions.
//!
//! Per shard, as on Kafka: on taking a shard, claim an epoch in the snapshot store and restore the newest
//! snapshot; then take over the entries a former owner had read and never acknowledged (`XAUTOCLAIM`,
//! in id order) before new ones (`XREADGROUP ... >`); entries at or below the snapshot's position are
//! duplicates; output flushed, snapshot saved under the epoch, and only then `XACK`. A paused former owner
//! finds its lease gone, and its late snapshot is refused by the epoch fence.
//!
//! Positions: an entry id `MS-SEQ` is the offset `MS * 2^20 + SEQ` (the output's `offset` field; ids with
//! `SEQ >= 2^20` are refused), so state and output ids work as on Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::Value;

use crate::engine::{Engine, WorkerError, WorkerOptions, WorkerReport};
use crate::metrics::Metrics;
use crate::output::Output;
use crate::store::SnapshotStore;

/// A Redis Streams worker's configuration.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// `redis://HOST:PORT[/DB]`.
    pub url: String,
    /// The streams' base name.
    pub stream: String,
    /// Number of shard streams.
    pub shards: u32,
    /// This worker's name within the group (unique per worker).
    pub consumer: String,
    /// The field holding the JSON object.
    pub field: String,
    /// The field holding the entity key (absent: no key).
    pub key_field: String,
    /// How long a lease lives without renewal (a dead worker's shards move after it).
    pub lease: Duration,
    /// Group (also the prefix of the lease and member keys), models, snapshot policy and limits (shared
    /// with the Kafka worker; a shard is a partition).
    pub options: WorkerOptions,
}

impl StreamsConfig {
    /// One shard, fields `data` and `key`, a 6 s lease; the consumer is named after the host and process.
    pub fn new(url: &str, stream: &str, options: WorkerOptions) -> Self {
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        StreamsConfig {
            url: url.into(),
            stream: stream.into(),
            shards: 1,
            consumer: format!("{host}-{}", std::process::id()),
            field: "data".into(),
            key_field: "key".into(),
            lease: Duration::from_secs(6),
            options,
        }
    }

    fn shard_stream(&self, shard: i32) -> String {
        if self.shards == 1 { self.stream.clone() } else { format!("{}:{shard}", self.stream) }
    }

    fn key(&self, what: &str) -> String {
        format!("onad:{}:{}:{what}", self.options.group, self.stream)
    }
}

/// An entry id as an offset: `MS * 2^20 + SEQ`.
pub fn id_offset(id: &str) -> Option<i64> {
    let (ms, seq) = id.split_once('-')?;
    let (ms, seq): (u64, u64) = (ms.parse().ok()?, seq.parse().ok()?);
    (seq < 1 << 20 && ms < 1 << 43).then_some(((ms << 20) | seq) as i64)
}

/// Renews a lease held by this consumer (1), or says it is gone (0).
const RENEW: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
/// Deletes a lease only if this consumer holds it.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

type Entry = (String, Vec<(String, Vec<u8>)>);

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The `lag` of `group` in an `XINFO GROUPS` reply (entries of the stream not yet delivered to the group;
/// Redis 7 and later, and `nil` when Redis cannot tell, after deletions: then `None`).
fn group_lag(reply: &Value, group: &str) -> Option<i64> {
    let Value::Array(groups) = reply else { return None };
    groups.iter().find_map(|g| {
        let pairs: Vec<(&Value, &Value)> = match g {
            Value::Array(kv) => kv.chunks_exact(2).map(|c| (&c[0], &c[1])).collect(),
            Value::Map(kv) => kv.iter().map(|(k, v)| (k, v)).collect(),
            _ => return None,
        };
        let field = |name: &str| pairs.iter().find(|(k, _)| text(k).as_deref() == Some(name)).map(|(_, v)| *v);
        if field("name").and_then(text).as_deref() != Some(group) {
            return None;
        }
        match field("lag")? {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    })
}

/// `[id, [field, value, ...]]` entries (deleted entries, `nil`, are left out).
fn entries(v: &Value) -> Vec<Entry> {
    let Value::Array(items) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|e| {
            let Value::Array(pair) = e else { return None };
            let id = text(pair.first()?)?;
            let Value::Array(kv) = pair.get(1)? else { return None };
            let fields = kv
                .chunks_exact(2)
                .filter_map(|c| {
                    let value = match &c[1] {
                        Value::BulkString(b) => b.clone(),
                        other => text(other)?.into_bytes(),
                    };
                    Some((text(&c[0])?, value))
                })
                .collect();
            Some((id, fields))
        })
        .collect()
}

/// A worker on Redis Streams.
pub struct StreamsWorker {
    config: StreamsConfig,
    engine: Engine,
    connection: redis::Connection,
    /// Per owned shard: entry ids delivered and not yet acknowledged.
    unacked: BTreeMap<i32, Vec<String>>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for StreamsWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsWorker")
            .field("stream", &self.config.stream)
            .field("consumer", &self.config.consumer)
            .finish()
    }
}

impl StreamsWorker {
    /// Connects and creates the shards' consumer groups (reading from the start of each stream).
    pub fn new(
        config: StreamsConfig,
        store: Box<dyn SnapshotStore>,
        output: Box<dyn Output>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, WorkerError> {
        let shown = config.url.split('@').next_back().unwrap_or(&config.url).to_owned();
        let fail = |e: redis::RedisError| WorkerError::Broker {
            connector: "redis",
            address: shown.clone(),
            message: e.to_string(),
        };
        if config.shards == 0 {
            return Err(WorkerError::Input("shards must be at least 1".into()));
        }
        let client = redis::Client::open(config.url.as_str()).map_err(fail)?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(5)).map_err(fail)?;
        connection.set_read_timeout(Some(Duration::from_secs(10))).map_err(fail)?;
        for s in 0..config.shards as i32 {
            let r: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(config.shard_stream(s))
                .arg(&config.options.group)
                .arg("0")
                .arg("MKSTREAM")
                .query(&mut connection);
            if let Err(e) = r
                && e.code() != Some("BUSYGROUP")
            {
                return Err(fail(e));
            }
        }
        let engine = Engine::new(&config.stream, &config.options, store, output, metrics.clone());
        Ok(StreamsWorker {
            config,
            engine,
            connection,
            unacked: BTreeMap::new(),
            metrics,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A flag that stops the worker when set.
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

    fn fail(&self, e: redis::RedisError) -> WorkerError {
        let shown = self.config.url.split('@').next_back().unwrap_or(&self.config.url).to_owned();
        WorkerError::Broker { connector: "redis", address: shown, message: e.to_string() }
    }

    /// Runs until the stop flag, the idle limit or an error; snapshots, acknowledges and hands every shard
    /// back on the way out.
    pub fn run(mut self) -> Result<WorkerReport, WorkerError> {
        let result = self.run_loop();
        let owned: Vec<i32> = self.engine.owned.keys().copied().collect();
        let drained = owned.iter().try_for_each(|&s| self.hand_back(s));
        let members = self.config.key("members");
        let _: redis::RedisResult<()> =
            redis::cmd("ZREM").arg(members).arg(&self.config.consumer).query(&mut self.connection);
        result?;
        drained?;
        Ok(WorkerReport::of(&self.metrics))
    }

    fn run_loop(&mut self) -> Result<(), WorkerError> {
        let mut last_message = Instant::now();
        let mut held_since: Option<Instant> = None;
        let mut last_ok = Instant::now();
        let mut last_balance = Instant::now() - self.config.lease;
        let mut last_log = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            if last_log.elapsed() >= self.config.options.log_every {
                let (i, o, d, s, f, r, lag) = self.metrics.summary();
                let shards: Vec<i32> = self.engine.owned.keys().copied().collect();
                tracing::info!(
                    records_in = i,
                    records_out = o,
                    duplicates = d,
                    snapshots = s,
                    fenced = f,
                    rebalances = r,
                    lag,
                    ?shards,
                    "worker: counters"
                );
                last_log = Instant::now();
            }
            let step = (|| -> Result<usize, WorkerError> {
                if last_balance.elapsed() >= self.config.lease / 3 {
                    self.balance()?;
                    last_balance = Instant::now();
                }
                let n = self.read()?;
                let due = self.engine.due(self.config.options.snapshot_every, self.config.options.snapshot_interval);
                self.snapshot_and_ack(&due)?;
                if n == 0 {
                    self.engine.flush_output()?;
                }
                Ok(n)
            })();
            match step {
                Ok(n) => {
                    last_ok = Instant::now();
                    if n > 0 {
                        last_message = Instant::now();
                    }
                }
                Err(WorkerError::Broker { message, .. })
                    if self.config.options.give_up.is_none_or(|g| last_ok.elapsed() < g) =>
                {
                    tracing::warn!(error = %message, "worker: redis unreachable; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                    if let Ok(c) = redis::Client::open(self.config.url.as_str()).and_then(|c| c.get_connection()) {
                        self.connection = c;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            if !self.engine.owned.is_empty() && held_since.is_none() {
                held_since = Some(Instant::now());
            }
            if let (Some(idle), Some(since)) = (self.config.options.exit_when_idle, held_since)
                && since.max(last_message).elapsed() >= idle
            {
                tracing::info!("worker: no entry for the idle limit; stopping");
                break;
            }
        }
        Ok(())
    }

    /// Registers this worker, renews its leases (a lost lease drops its shard), and moves toward the
    /// fair share: hands extra shards back, takes free ones.
    fn balance(&mut self) -> Result<(), WorkerError> {
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let lease_ms = self.config.lease.as_millis() as u64;
        let members = self.config.key("members");
        let live: u64 = redis::pipe()
            .cmd("ZADD")
            .arg(&members)
            .arg(now_ms + lease_ms)
            .arg(&self.config.consumer)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&members)
            .arg("-inf")
            .arg(now_ms)
            .ignore()
            .cmd("ZCARD")
            .arg(&members)
            .query::<(u64,)>(&mut self.connection)
            .map_err(|e| self.fail(e))?
            .0;
        let fair = (self.config.shards as u64).div_ceil(live.max(1)) as usize;
        for s in self.engine.owned.keys().copied().collect::<Vec<_>>() {
            let renewed: i64 = redis::cmd("EVAL")
                .arg(RENEW)
                .arg(1)
                .arg(self.config.key(&format!("lease:{s}")))
                .arg(&self.config.consumer)
                .arg(lease_ms)
                .query(&mut self.connection)
                .map_err(|e| self.fail(e))?;
            if renewed == 0 {
                // Someone else has the shard (this worker was paused past its lease): the epoch fence
                // refuses a late snapshot, so try it and drop the shard either way.
                tracing::warn!(shard = s, "worker: lease lost; dropping the shard");
                Metrics::inc(&self.metrics.rebalances);
                self.engine.snapshot(&[s], false)?;
                self.engine.release(s);
                self.unacked.remove(&s);
            }
        }
        while self.engine.owned.len() > fair {
            let s = *self.engine.owned.keys().next_back().expect("more than fair");
            self.hand_back(s)?;
        }
        for s in 0..self.config.shards as i32 {
            if self.engine.owned.len() >= fair {
                break;
            }
            if self.engine.owned.contains_key(&s) {
                continue;
            }
            let got: Option<String> = redis::cmd("SET")
                .arg(self.config.key(&format!("lease:{s}")))
                .arg(&self.config.consumer)
                .arg("NX")
                .arg("PX")
                .arg(lease_ms)
                .query(&mut self.connection)
                .map_err(|e| self.fail(e))?;
            if got.is_some() {
                self.take(s)?;
            }
        }
        self.update_lag()
    }

    /// Per owned shard, the entries not yet delivered to the group (the lag of `XINFO GROUPS`; entries
    /// read are applied before the next read, so this is what is left to apply).
    fn update_lag(&mut self) -> Result<(), WorkerError> {
        let shards: Vec<i32> = self.engine.owned.keys().copied().collect();
        // One round trip for every owned shard.
        let mut pipe = redis::pipe();
        for &s in &shards {
            pipe.cmd("XINFO").arg("GROUPS").arg(self.config.shard_stream(s));
        }
        let replies: Vec<Value> =
            if shards.is_empty() { Vec::new() } else { pipe.query(&mut self.connection).map_err(|e| self.fail(e))? };
        let group = &self.config.options.group;
        let lags =
            shards.iter().zip(&replies).filter_map(|(&s, reply)| Some((s, group_lag(reply, group)?.max(0)))).collect();
        self.metrics.detail().lag = lags;
        Ok(())
    }

    /// A shard just leased: claim and restore, then take over what a former owner read and never
    /// acknowledged, in id order.
    fn take(&mut self, s: i32) -> Result<(), WorkerError> {
        tracing::info!(shard = s, "worker: shard taken");
        Metrics::inc(&self.metrics.rebalances);
        self.engine.claim(s)?;
        self.unacked.insert(s, Vec::new());
        let stream = self.config.shard_stream(s);
        let mut cursor = "0-0".to_owned();
        loop {
            let reply: Value = redis::cmd("XAUTOCLAIM")
                .arg(&stream)
                .arg(&self.config.options.group)
                .arg(&self.config.consumer)
                .arg(0)
                .arg(&cursor)
                .arg("COUNT")
                .arg(500)
                .query(&mut self.connection)
                .map_err(|e| self.fail(e))?;
            let Value::Array(parts) = &reply else { break };
            let next = parts.first().and_then(text).unwrap_or_else(|| "0-0".into());
            let claimed = parts.get(1).map(entries).unwrap_or_default();
            for e in claimed {
                self.apply(s, e)?;
            }
            if next == "0-0" {
                break;
            }
            cursor = next;
        }
        Ok(())
    }

    /// Snapshots a shard, acknowledges it, and gives its lease up.
    fn hand_back(&mut self, s: i32) -> Result<(), WorkerError> {
        tracing::info!(shard = s, "worker: shard handed back");
        Metrics::inc(&self.metrics.rebalances);
        self.snapshot_and_ack(&[s])?;
        let _: i64 = redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(self.config.key(&format!("lease:{s}")))
            .arg(&self.config.consumer)
            .query(&mut self.connection)
            .map_err(|e| self.fail(e))?;
        self.engine.release(s);
        self.unacked.remove(&s);
        Ok(())
    }

    /// Snapshots the shards named (those changed), then acknowledges every entry they have applied: after
    /// the snapshot each named shard still held is durable up to its last entry (a fenced one was dropped
    /// and acknowledges nothing).
    fn snapshot_and_ack(&mut self, shards: &[i32]) -> Result<(), WorkerError> {
        self.engine.snapshot(shards, false)?;
        for &s in shards {
            if !self.engine.owned.contains_key(&s) {
                continue;
            }
            let ids = self.unacked.get_mut(&s).map(std::mem::take).unwrap_or_default();
            if ids.is_empty() {
                continue;
            }
            let _: u64 = redis::cmd("XACK")
                .arg(self.config.shard_stream(s))
                .arg(&self.config.options.group)
                .arg(&ids)
                .query(&mut self.connection)
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Reads new entries of every owned shard (blocking up to 100 ms); returns how many.
    fn read(&mut self) -> Result<usize, WorkerError> {
        let shards: Vec<i32> = self.engine.owned.keys().copied().collect();
        if shards.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            return Ok(0);
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.config.options.group)
            .arg(&self.config.consumer)
            .arg("COUNT")
            .arg(500)
            .arg("BLOCK")
            .arg(100);
        cmd.arg("STREAMS");
        for &s in &shards {
            cmd.arg(self.config.shard_stream(s));
        }
        for _ in &shards {
            cmd.arg(">");
        }
        let reply: Value = cmd.query(&mut self.connection).map_err(|e| self.fail(e))?;
        let mut n = 0;
        if let Value::Array(streams) = &reply {
            for st in streams {
                let Value::Array(pair) = st else { continue };
                let Some(name) = pair.first().and_then(text) else { continue };
                let Some(&s) = shards.iter().find(|&&s| self.config.shard_stream(s) == name) else { continue };
                for e in pair.get(1).map(entries).unwrap_or_default() {
                    n += 1;
                    self.apply(s, e)?;
                }
            }
        }
        Ok(n)
    }

    fn apply(&mut self, s: i32, (id, fields): Entry) -> Result<(), WorkerError> {
        let offset = id_offset(&id).ok_or_else(|| {
            WorkerError::Input(format!(
                "{}: entry id {id} cannot be a position (sequence numbers must be below 2^20)",
                self.config.shard_stream(s)
            ))
        })?;
        let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice());
        let payload = get(&self.config.field).unwrap_or_default();
        let key = get(&self.config.key_field);
        self.engine.process(s, offset, key, payload)?;
        if let Some(u) = self.unacked.get_mut(&s) {
            u.push(id);
        }
        // As on Kafka, a shard is snapshotted after `snapshot_every` entries, not only between reads.
        if self.engine.dirty(s) >= self.config.options.snapshot_every {
            self.snapshot_and_ack(&[s])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_is_read_from_the_groups_own_entry() {
        let bulk = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        let group = |name: &str, lag: Value| Value::Array(vec![bulk("name"), bulk(name), bulk("lag"), lag]);
        let reply = Value::Array(vec![group("other", Value::Int(9)), group("g", Value::Int(4))]);
        assert_eq!(group_lag(&reply, "g"), Some(4));
        assert_eq!(group_lag(&reply, "other"), Some(9));
        assert_eq!(group_lag(&reply, "missing"), None);
        assert_eq!(group_lag(&Value::Array(vec![group("g", Value::Nil)]), "g"), None);
        let map = Value::Array(vec![Value::Map(vec![(bulk("name"), bulk("g")), (bulk("lag"), Value::Int(2))])]);
        assert_eq!(group_lag(&map, "g"), Some(2));
    }

    #[test]
    fn entry_ids_are_ordered_offsets() {
        let a = id_offset("1700000000000-0").unwrap();
        let b = id_offset("1700000000000-1").unwrap();
        let c = id_offset("1700000000001-0").unwrap();
        assert!(a < b && b < c);
        assert_eq!(id_offset("5-3"), Some((5 << 20) | 3));
        assert_eq!(id_offset("5-1048576"), None);
        assert_eq!(id_offset("x-1"), None);
        assert_eq!(id_offset("17"), None);
    }
}
