//! The model state of one partition: per-key models (or one model for the partition), their thresholds,
//! and the offset of the next message not yet applied, which is what makes each offset's effect on state
//! apply at most once.

use std::collections::{BTreeMap, HashMap};

use onad_core::Position;
use onad_core::{Detector, SchemaRef};
use onad_models::{AnyPipeline, PipelineSpec};
use onad_pipeline::checkpoint::{self, Checkpoint, CheckpointError};
use onad_pipeline::{AnyThreshold, Order, Threshold};
use serde::{Deserialize, Serialize};

/// What a partition's rows are scored by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The model tree every key's model is built from.
    pub spec: PipelineSpec,
    /// The threshold each model's scores are flagged with (each key has its own copy).
    pub threshold: AnyThreshold,
    /// Score-then-learn or learn-then-score.
    pub order: Order,
    /// One model per message key (else one model per partition).
    pub per_key: bool,
    /// Most live models per partition (least recently used dropped first); `None`: unbounded.
    pub max_keys: Option<usize>,
}

impl ModelConfig {
    /// The kind written into snapshot envelopes and checked on restore.
    pub fn kind(&self) -> String {
        format!("worker:{}", self.spec.name())
    }
}

/// One key's model and threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The model.
    pub model: AnyPipeline,
    /// Its threshold.
    pub threshold: AnyThreshold,
    /// The partition's row count when the key was last seen (the LRU order).
    pub last_used: u64,
}

/// Counters carried in the snapshot, so they survive a hand-over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Rows scored.
    pub rows: u64,
    /// Rows flagged.
    pub anomalies: u64,
    /// Messages skipped as bad rows, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Models dropped by the `max_keys` cap.
    pub evictions: u64,
}

/// The state of one partition, as snapshots hold it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionState {
    /// The offset of the next message not yet applied (messages below it are duplicates).
    pub next_offset: i64,
    /// The input's feature columns (a restore over other columns is refused).
    pub columns: Vec<String>,
    /// Key (the bits of the key's number; 0 without per-key models) -> model.
    pub models: BTreeMap<u64, Entry>,
    /// Counters.
    pub counts: Counts,
}

/// What a message did to a partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Applied {
    /// Its offset was applied before: state unchanged.
    Duplicate,
    /// Scored (and learned).
    Scored {
        /// The score.
        score: f64,
        /// The threshold it was compared with.
        threshold: f64,
        /// Whether it is flagged.
        anomaly: bool,
    },
}

/// The snapshot payload: the epoch that wrote it, the model configuration and the partition's state;
/// owned ([`Snapshot`], as read back) or borrowed ([`SnapshotRef`], for writing without copying the
/// models). One struct, so both encode to the same bytes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SnapshotOf<S, C, P> {
    /// The epoch of the writer's claim.
    pub epoch: u64,
    /// The topic (or base stream name).
    pub topic: S,
    /// The partition.
    pub partition: i32,
    /// How the models were built (a restore under another configuration is refused).
    pub config: C,
    /// The state.
    pub state: P,
}

/// A snapshot as decoded.
pub type Snapshot = SnapshotOf<String, ModelConfig, PartitionState>;

/// A snapshot of state held elsewhere, for encoding.
pub type SnapshotRef<'a> = SnapshotOf<&'a str, &'a ModelConfig, &'a PartitionState>;

/// The key of a row's model: the bits of its key number (0.0 and -0.0 one key, every NaN one key).
pub fn key_bits(key: f64) -> u64 {
    if key == 0.0 {
        0
    } else if key.is_nan() {
        f64::NAN.to_bits()
    } else {
        key.to_bits()
    }
}

impl PartitionState {
    /// A partition nothing has been applied to.
    pub fn new(columns: Vec<String>) -> Self {
        PartitionState { next_offset: 0, columns, models: BTreeMap::new(), counts: Counts::default() }
    }

    /// Notes a message that is a bad row: counted by `reason`, its offset applied (so it is not retried).
    /// Returns false for a duplicate.
    pub fn skip(&mut self, offset: i64, reason: &str) -> bool {
        if offset < self.next_offset {
            return false;
        }
        *self.counts.skipped.entry(reason.to_owned()).or_default() += 1;
        self.next_offset = offset + 1;
        true
    }

    /// Applies the message at `offset` (the row `row` of key `key`): scores and learns it in the
    /// configured order, unless its offset was applied before. A new key's model is built from `proto`.
    pub fn apply(
        &mut self,
        offset: i64,
        key: f64,
        row: &[f64],
        config: &ModelConfig,
        proto: &AnyPipeline,
        lru: &mut Lru,
    ) -> Applied {
        if offset < self.next_offset {
            return Applied::Duplicate;
        }
        self.next_offset = offset + 1;
        let key = if config.per_key { key_bits(key) } else { 0 };
        let now = self.counts.rows;
        if !self.models.contains_key(&key)
            && let Some(cap) = config.max_keys
        {
            while self.models.len() >= cap.max(1) {
                let Some(old) = lru.oldest(&self.models) else { break };
                self.models.remove(&old);
                lru.forget(old);
                self.counts.evictions += 1;
            }
        }
        let entry = self.models.entry(key).or_insert_with(|| Entry {
            model: proto.clone(),
            threshold: config.threshold.clone(),
            last_used: now,
        });
        lru.touch(key, entry.last_used, now);
        entry.last_used = now;
        let score = match config.order {
            Order::ScoreThenLearn => entry.model.score_learn_one(row),
            Order::LearnThenScore => entry.model.learn_score_one(row),
        };
        let threshold = entry.threshold.current();
        let anomaly = entry.threshold.flag(score);
        self.counts.rows += 1;
        self.counts.anomalies += u64::from(anomaly);
        Applied::Scored { score, threshold, anomaly }
    }
}

/// The least-recently-used order of a partition's models (rebuilt from `last_used` on restore, so it is
/// not part of the snapshot): last use -> key.
#[derive(Debug, Default)]
pub struct Lru {
    order: BTreeMap<u64, u64>,
    at: HashMap<u64, u64>,
}

impl Lru {
    /// The order of a restored state.
    pub fn of(state: &PartitionState) -> Self {
        let mut lru = Lru::default();
        for (&k, e) in &state.models {
            lru.order.insert(e.last_used, k);
            lru.at.insert(k, e.last_used);
        }
        lru
    }

    fn touch(&mut self, key: u64, before: u64, now: u64) {
        if self.at.get(&key) == Some(&before) {
            self.order.remove(&before);
        }
        self.order.insert(now, key);
        self.at.insert(key, now);
    }

    fn forget(&mut self, key: u64) {
        if let Some(t) = self.at.remove(&key) {
            self.order.remove(&t);
        }
    }

    fn oldest(&self, models: &BTreeMap<u64, Entry>) -> Option<u64> {
        self.order.values().next().copied().or_else(|| models.keys().next().copied())
    }
}

impl Snapshot {
    /// This snapshot by reference.
    pub fn as_ref(&self) -> SnapshotRef<'_> {
        SnapshotOf {
            epoch: self.epoch,
            topic: &self.topic,
            partition: self.partition,
            config: &self.config,
            state: &self.state,
        }
    }
}

/// Encodes a snapshot in the checkpoint envelope (checksummed; `onad checkpoint inspect` reads it).
pub fn encode(snapshot: SnapshotRef<'_>) -> Result<Vec<u8>, CheckpointError> {
    let next = BTreeMap::from([((snapshot.topic.to_owned(), snapshot.partition), snapshot.state.next_offset)]);
    checkpoint::encode(&Checkpoint {
        model_kind: snapshot.config.kind(),
        rows_seen: snapshot.state.counts.rows,
        position: Position::Offsets { next, delivered: snapshot.state.counts.rows },
        state: snapshot,
    })
}

/// Decodes and verifies a snapshot written for `config`; `name` names it in errors.
pub fn decode(bytes: &[u8], name: &str, config: &ModelConfig) -> Result<Snapshot, CheckpointError> {
    let c: Checkpoint<Snapshot> = checkpoint::decode(bytes, std::path::Path::new(name), &config.kind())?;
    if c.state.config != *config {
        return Err(CheckpointError::Corrupt {
            path: name.into(),
            reason: "written under another model configuration (threshold, order, per-key or max-keys differ)".into(),
        });
    }
    Ok(c.state)
}

/// Builds the prototype model for `schema`.
pub fn prototype(config: &ModelConfig, schema: &SchemaRef) -> Result<AnyPipeline, onad_core::ParamError> {
    config.spec.build(schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;
    use std::sync::Arc;

    fn config(per_key: bool, max_keys: Option<usize>) -> ModelConfig {
        let detector = serde_json::from_str("{\"moving_average\": {\"window_size\": 5}}").unwrap();
        ModelConfig {
            spec: PipelineSpec::detector(detector),
            threshold: "adaptive:20:3".parse().unwrap(),
            order: Order::ScoreThenLearn,
            per_key,
            max_keys,
        }
    }

    fn proto(c: &ModelConfig) -> AnyPipeline {
        prototype(c, &Arc::new(Schema::new(["x".to_owned()]).unwrap())).unwrap()
    }

    fn feed(
        state: &mut PartitionState,
        lru: &mut Lru,
        c: &ModelConfig,
        p: &AnyPipeline,
        range: std::ops::Range<i64>,
    ) -> Vec<Applied> {
        range.map(|o| state.apply(o, (o % 3) as f64, &[(o as f64).sin() * 10.0], c, p, lru)).collect()
    }

    #[test]
    fn a_replayed_range_applies_once() {
        let c = config(true, None);
        let p = proto(&c);
        let (mut once, mut lru1) = (PartitionState::new(vec!["x".into()]), Lru::default());
        let all = feed(&mut once, &mut lru1, &c, &p, 0..150);
        let (mut twice, mut lru2) = (PartitionState::new(vec!["x".into()]), Lru::default());
        let first = feed(&mut twice, &mut lru2, &c, &p, 0..100);
        let replay = feed(&mut twice, &mut lru2, &c, &p, 50..150);
        assert!(replay[..50].iter().all(|a| *a == Applied::Duplicate));
        assert_eq!([&first[..], &replay[50..]].concat(), all);
        assert_eq!(postcard::to_stdvec(&once).unwrap(), postcard::to_stdvec(&twice).unwrap());
        assert_eq!(twice.counts.rows, 150);
    }

    #[test]
    fn snapshots_round_trip_and_refuse_another_configuration() {
        let c = config(true, None);
        let p = proto(&c);
        let (mut state, mut lru) = (PartitionState::new(vec!["x".into()]), Lru::default());
        feed(&mut state, &mut lru, &c, &p, 0..40);
        let snap = Snapshot { epoch: 3, topic: "t".into(), partition: 2, config: c.clone(), state: state.clone() };
        let bytes = encode(snap.as_ref()).unwrap();
        let back = decode(&bytes, "t-2", &c).unwrap();
        assert_eq!(back.epoch, 3);
        // The restored state goes on exactly as the original.
        let (mut restored, mut lru2) = (back.state, Lru::of(&state));
        assert_eq!(feed(&mut restored, &mut lru2, &c, &p, 40..80), feed(&mut state, &mut lru, &c, &p, 40..80));
        let other = config(false, None);
        let e = decode(&bytes, "t-2", &other).unwrap_err().to_string();
        assert!(e.contains("another model configuration"), "{e}");
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 1;
        assert!(decode(&flipped, "t-2", &c).is_err());
    }

    #[test]
    fn the_key_cap_drops_the_least_recently_used_model() {
        let c = config(true, Some(2));
        let p = proto(&c);
        let (mut state, mut lru) = (PartitionState::new(vec!["x".into()]), Lru::default());
        for (o, key) in [(0, 1.0), (1, 2.0), (2, 1.0), (3, 3.0)] {
            state.apply(o, key, &[1.0], &c, &p, &mut lru);
        }
        // Key 2 was the least recently used when key 3 arrived.
        assert_eq!(state.models.keys().copied().collect::<Vec<_>>(), vec![key_bits(1.0), key_bits(3.0)]);
        assert_eq!(state.counts.evictions, 1);
    }

    #[test]
    fn bad_rows_are_counted_once_and_advance_the_offset() {
        let mut state = PartitionState::new(vec!["x".into()]);
        assert!(state.skip(0, "invalid_json"));
        assert!(!state.skip(0, "invalid_json"));
        assert_eq!(state.next_offset, 1);
        assert_eq!(state.counts.skipped["invalid_json"], 1);
    }
}
