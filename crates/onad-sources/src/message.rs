//! The part shared by the message-broker sources (Redis, Kafka): fetching messages from a reader,
//! discovering the columns from the first JSON object, turning messages into dense batches under the
//! bad-row policy, the idle timeout and the row cap, and acknowledging a batch when the next is asked
//! for. A connector supplies a [`MessageReader`]; this module does the rest.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use onad_core::{BadRecord, BadRowPolicy, Batch, Schema, SchemaRef, SkipCounts, SourceError};

use crate::json_row::{JsonRow, Problem, first_keys};
use crate::options::SourceOptions;

/// Longest single wait for messages; waits repeat until the idle timeout (or forever).
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// One message as a reader delivers it.
#[derive(Debug)]
pub(crate) struct Message<I> {
    /// Where it came from (a stream entry id, a partition and offset), for errors and acknowledgement.
    pub(crate) id: Option<I>,
    /// The JSON text; `None` when the message has no payload (a stream entry without the field).
    pub(crate) payload: Option<Vec<u8>>,
    /// The entity key as a number (Kafka message keys), for the key column.
    pub(crate) key: f64,
}

/// What a broker connector supplies to [`MessageStream`].
pub(crate) trait MessageReader {
    /// A message's place in the broker, shown in errors (`entry 1-0`, `partition 2 offset 15`).
    type Id: fmt::Display;

    /// Up to `count` messages, waiting at most `wait` for the first; none when nothing arrived.
    fn fetch(&mut self, count: usize, wait: Duration) -> Result<Vec<Message<Self::Id>>, SourceError>;

    /// Notes that a message was handed out (or skipped as bad), to be acknowledged by the next `ack`.
    fn handed_out(&mut self, id: Option<Self::Id>);

    /// Acknowledges (commits) every message handed out so far.
    fn ack(&mut self) -> Result<(), SourceError>;

    /// The last acknowledgement, when the source ends; by default `ack`.
    fn flush(&mut self) -> Result<(), SourceError> {
        self.ack()
    }

    /// The problem of a message without a payload.
    fn missing_payload(&self) -> Problem;

    /// Whether messages can arrive yet; while not (a Kafka consumer still joining its group), the idle
    /// timeout does not run.
    fn receiving(&self) -> bool {
        true
    }

    /// For a partitioned log: the topic, so batches carry each row's origin ([`onad_core::Origins`]).
    fn topic(&self) -> Option<std::sync::Arc<str>> {
        None
    }

    /// The (partition, offset) of a message, for a partitioned log.
    fn origin(_id: &Self::Id) -> Option<(i32, i64)> {
        None
    }
}

/// Where a message source ends and how it names its rows.
#[derive(Debug, Clone)]
pub(crate) struct StreamLimits {
    /// End when no message arrives for this long (`None`: wait forever).
    pub(crate) idle_timeout: Option<Duration>,
    /// End after this many good rows.
    pub(crate) max_rows: Option<u64>,
    /// Add the message key as a last feature column of this name.
    pub(crate) key_column: Option<String>,
}

/// Dense batches from the JSON messages of a [`MessageReader`].
pub(crate) struct MessageStream<R: MessageReader> {
    pub(crate) name: String,
    pub(crate) reader: R,
    row: JsonRow,
    schema: SchemaRef,
    policy: BadRowPolicy,
    batch_size: usize,
    limits: StreamLimits,
    /// Messages fetched and not yet turned into rows.
    buffer: VecDeque<Message<R::Id>>,
    /// When the last message arrived (or the source was opened).
    last_message: Instant,
    /// The row id of the next message.
    pub(crate) next_row: u64,
    /// Good rows handed out.
    rows: u64,
    skipped: SkipCounts,
    done: bool,
    /// No JSON object arrived within the idle timeout when opening: there are no columns, and the source
    /// ends (after acknowledging the bad messages it skipped) without a batch.
    empty: bool,
}

impl<R: MessageReader> fmt::Debug for MessageStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageStream")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("next_row", &self.next_row)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<R: MessageReader> MessageStream<R> {
    /// Waits (within the idle timeout) for the first message that is a JSON object, whose keys name the
    /// columns; the messages read meanwhile stay buffered, to be delivered by `next`. When none arrives
    /// within the idle timeout, the stream opens without columns and yields nothing (see `open_empty`).
    pub(crate) fn open(
        name: String,
        reader: R,
        options: &SourceOptions,
        limits: StreamLimits,
    ) -> Result<Self, SourceError> {
        let mut s = MessageStream {
            name,
            reader,
            row: JsonRow::default(),
            schema: Schema::numbered("unused", 0),
            policy: options.bad_rows,
            batch_size: options.batch_size.max(1),
            limits,
            buffer: VecDeque::new(),
            last_message: Instant::now(),
            next_row: 0,
            rows: 0,
            skipped: SkipCounts::default(),
            done: false,
            empty: false,
        };
        let mut scanned = 0;
        // The reasons of the bad messages scanned, counted only if no object arrives.
        let mut reasons = Vec::new();
        let keys = 'found: loop {
            while let Some(m) = s.buffer.get(scanned) {
                let problem = match &m.payload {
                    None => s.reader.missing_payload(),
                    Some(p) => match first_keys(p, "message") {
                        Ok(keys) => break 'found keys,
                        Err(p) => p,
                    },
                };
                if s.policy == BadRowPolicy::Fail {
                    let record = s.bad_record(scanned as u64, m.id.as_ref(), problem);
                    return Err(SourceError::BadRecord(record));
                }
                reasons.push(problem.reason);
                scanned += 1;
            }
            let Some(wait) = s.wait() else {
                s.open_empty(&reasons);
                return Ok(s);
            };
            let count = s.fetch_count(0);
            s.fetch(count, wait)?;
        };
        if keys.is_empty() {
            return Err(SourceError::Schema {
                source_name: s.name,
                message: format!("the first JSON object (row {scanned}) has no keys, so there are no columns"),
            });
        }
        let (row, schema) = JsonRow::new(&s.name, keys, options, "message")?;
        s.row = row;
        s.schema = match &s.limits.key_column {
            None => schema,
            Some(k) => {
                if schema.index_of(k).is_some() || s.row.is_column(k) {
                    return Err(SourceError::Schema {
                        source_name: s.name,
                        message: format!("key_column={k} is also a key of the JSON objects; pick another name"),
                    });
                }
                let names = schema.names().iter().cloned().chain(std::iter::once(k.clone()));
                Schema::shared(names)
                    .map_err(|e| SourceError::Schema { source_name: s.name.clone(), message: e.to_string() })?
            }
        };
        Ok(s)
    }

    /// Opening found no JSON object within the idle timeout (a periodic job with nothing new): the source
    /// has no columns and no labels, counts the bad messages it read (their `reasons`; the fail policy
    /// has stopped at the first), and ends at the first `next_batch`, acknowledging them.
    fn open_empty(&mut self, reasons: &[&'static str]) {
        for (m, reason) in std::mem::take(&mut self.buffer).into_iter().zip(reasons) {
            self.skipped.add(reason);
            self.reader.handed_out(m.id);
            self.next_row += 1;
        }
        self.empty = true;
    }

    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub(crate) fn has_labels(&self) -> bool {
        self.row.label().is_some()
    }

    pub(crate) fn id_features(&self) -> Vec<usize> {
        self.row.id_features()
    }

    pub(crate) fn ignored_keys(&self) -> u64 {
        self.row.ignored_keys()
    }

    pub(crate) fn skipped(&self) -> &SkipCounts {
        &self.skipped
    }

    /// After the reader moved to a checkpoint's place: forgets the messages fetched and not handed out,
    /// and goes on counting from `delivered` messages (row ids, and `max_rows`, which then counts the
    /// messages of the resumed run, bad ones included).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn resume_at(&mut self, delivered: u64) {
        self.buffer.clear();
        self.done = false;
        self.next_row = delivered;
        self.rows = delivered;
    }

    /// How long the next fetch may wait; `None` once the idle timeout has passed without a message.
    fn wait(&self) -> Option<Duration> {
        match self.limits.idle_timeout {
            None => Some(POLL),
            Some(idle) => {
                let left = idle.saturating_sub(self.last_message.elapsed());
                (!left.is_zero()).then_some(left.min(POLL))
            }
        }
    }

    /// How many messages to ask for when `rows` rows are already in the batch being built: never more
    /// than the batch or `max_rows` can take, so a consumer does not take messages it will not hand out.
    fn fetch_count(&self, rows: usize) -> usize {
        let room = self.batch_size.saturating_sub(rows).max(1);
        match self.limits.max_rows {
            Some(max) => room.min(usize::try_from(max.saturating_sub(self.rows)).unwrap_or(usize::MAX)).max(1),
            None => room,
        }
    }

    fn fetch(&mut self, count: usize, wait: Duration) -> Result<(), SourceError> {
        let got = self.reader.fetch(count, wait)?;
        if !got.is_empty() || !self.reader.receiving() {
            self.last_message = Instant::now();
            self.buffer.extend(got);
        }
        Ok(())
    }

    fn bad_record(&self, row: u64, id: Option<&R::Id>, p: Problem) -> BadRecord {
        let detail = match id {
            Some(id) => format!("{id}: {}", p.detail),
            None => p.detail,
        };
        BadRecord { source: self.name.clone(), row, column: p.column, reason: p.reason, detail }
    }

    /// Ends the source: acknowledges what was handed out (the caller asked for more, so it has
    /// processed it).
    fn finish(&mut self) -> Option<Result<Batch, SourceError>> {
        self.done = true;
        self.reader.flush().err().map(Err)
    }

    /// The next batch; acknowledges the previous one first.
    pub(crate) fn next_batch(&mut self) -> Option<Result<Batch, SourceError>> {
        if self.done {
            return None;
        }
        // The caller has processed the previous batch: acknowledge it.
        if let Err(e) = self.reader.ack() {
            self.done = true;
            return Some(Err(e));
        }
        if self.empty {
            return self.finish();
        }
        let left = self.limits.max_rows.map_or(u64::MAX, |m| m.saturating_sub(self.rows));
        if left == 0 {
            return self.finish();
        }
        let cap = usize::try_from(left).unwrap_or(usize::MAX).min(self.batch_size);
        let d = self.schema.len();
        let with_key = self.limits.key_column.is_some();
        let mut values = Vec::with_capacity(cap * d);
        let mut labels = self.row.label().map(|_| Vec::with_capacity(cap));
        let mut row_ids = Vec::with_capacity(cap);
        let topic = self.reader.topic();
        let mut origins = Vec::with_capacity(if topic.is_some() { cap } else { 0 });
        while row_ids.len() < cap {
            let Some(m) = self.buffer.pop_front() else {
                if !row_ids.is_empty() {
                    break;
                }
                let Some(wait) = self.wait() else {
                    return self.finish();
                };
                let count = self.fetch_count(0);
                if let Err(e) = self.fetch(count, wait) {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            };
            let mut label = f64::NAN;
            let parsed = match &m.payload {
                None => Err(self.reader.missing_payload()),
                Some(p) => self.row.parse(p, &mut values, &mut label),
            };
            match parsed {
                Ok(()) => {
                    if with_key {
                        values.push(m.key);
                    }
                    row_ids.push(self.next_row);
                    if let Some(l) = labels.as_mut() {
                        l.push(label);
                    }
                    if topic.is_some() {
                        origins.push(m.id.as_ref().and_then(R::origin).unwrap_or((-1, -1)));
                    }
                }
                Err(problem) => match self.policy {
                    BadRowPolicy::Skip => self.skipped.add(problem.reason),
                    BadRowPolicy::Missing => {
                        self.skipped.add(problem.reason);
                        let width = self.schema.len() - usize::from(with_key);
                        let at = self.next_row;
                        crate::options::push_missing_row(&mut values, width, labels.as_mut(), &mut row_ids, at, label);
                        if with_key {
                            values.push(m.key);
                        }
                        if topic.is_some() {
                            origins.push(m.id.as_ref().and_then(R::origin).unwrap_or((-1, -1)));
                        }
                    }
                    BadRowPolicy::Fail => {
                        self.done = true;
                        let record = self.bad_record(self.next_row, m.id.as_ref(), problem);
                        return Some(Err(SourceError::BadRecord(record)));
                    }
                },
            }
            self.reader.handed_out(m.id);
            self.next_row += 1;
        }
        self.rows += row_ids.len() as u64;
        let batch = crate::options::make_batch(&self.name, &self.schema, values, labels, row_ids);
        Some(match topic {
            Some(topic) => batch.and_then(|b| {
                b.with_origins(onad_core::Origins { topic, at: origins })
                    .map_err(|e| SourceError::Schema { source_name: self.name.clone(), message: e.to_string() })
            }),
            None => batch,
        })
    }
}

/// A message key as a number, so it can be a key column (`--key`): a key that is a decimal number is that
/// number (integers only below 2^53, where `f64` is exact); any other key is a 64-bit FNV-1a hash of its bytes cut to 53 bits (so the `f64` holds it
/// exactly; distinct keys collide with probability about n^2 / 2^54); no key is NaN.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub fn key_number(key: Option<&[u8]>) -> f64 {
    let Some(key) = key else {
        return f64::NAN;
    };
    // A number only when the f64 holds it exactly (an integer beyond 2^53, such as a 64-bit id, would
    // share its f64 with its neighbours): the rest is hashed.
    let exact = |x: &f64| x.is_finite() && (x.fract() != 0.0 || x.abs() < 9_007_199_254_740_992.0);
    if let Some(x) = std::str::from_utf8(key).ok().and_then(|t| t.trim().parse::<f64>().ok()).filter(exact) {
        return x;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 11) as f64
}

#[cfg(test)]
mod tests {
    use super::key_number;

    #[test]
    fn keys_become_exact_numbers() {
        assert_eq!(key_number(Some(b"42")), 42.0);
        assert_eq!(key_number(Some(b"-1.5")), -1.5);
        assert!(key_number(None).is_nan());
        let a = key_number(Some(b"card-7"));
        let b = key_number(Some(b"card-8"));
        assert_ne!(a, b);
        assert_eq!(a, key_number(Some(b"card-7")));
        assert!(a >= 0.0 && a < 2f64.powi(53) && a.fract() == 0.0);
        // "nan" and "inf" parse as floats but are not finite: they are hashed like any other text.
        assert!(key_number(Some(b"nan")).is_finite());
        // 64-bit ids beyond 2^53 are hashed, so neighbours do not share a model.
        let (big, next) = (key_number(Some(b"18446744073709551614")), key_number(Some(b"18446744073709551615")));
        assert_ne!(big, next);
        assert_eq!(key_number(Some(b"9007199254740991")), 9_007_199_254_740_991.0);
    }
}
