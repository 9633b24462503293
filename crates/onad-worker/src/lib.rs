//! onad past one machine: `onad worker` processes on a Kafka consumer group, each owning some partitions
//! of the input topic and the models of the keys in them, with model state that follows the partitions.
//!
//! Records keyed by entity go to partitions by key, so every key's rows reach one partition, in order.
//! A worker keeps, per owned partition, one model per key (or one per partition) and the offset of the
//! next message not yet applied. The state protocol ([`kafka`]'s module docs) snapshots a partition into
//! a [`store::SnapshotStore`] before its offset is committed, restores the newest snapshot when a
//! partition is assigned, snapshots on revocation, and fences a former owner's late snapshot by an epoch
//! the store hands out at each claim. Model state is therefore exactly once: each offset's effect applies
//! once, and a key's score sequence is the one a single worker would give, however often its partition
//! moves. Scored rows are at least once, with the stable id `(topic, partition, offset)` ([`output`]).
//!
//! - [`state`]: a partition's state, the at-most-once rule, snapshots in the checkpoint envelope;
//! - [`store`]: the store trait, a local directory and Redis;
//! - [`output`]: a Kafka topic, a Redis stream or JSON Lines;
//! - [`metrics`]: counters and the Prometheus endpoint;
//! - [`kafka`]: the consumer, its rebalance callback and the loop;
//! - `redis_streams` (feature `redis`): the same protocol on Redis Streams, shards held by leases.

mod engine;
pub mod kafka;
pub mod metrics;
pub mod output;
#[cfg(feature = "redis")]
pub mod redis_streams;
pub mod state;
pub mod store;

pub use engine::{WorkerError, WorkerOptions, WorkerReport};
pub use kafka::{StartAt, Worker, WorkerConfig};
pub use metrics::Metrics;
pub use output::{AlertsOnly, Fanout, Output, open_output};
#[cfg(feature = "redis")]
pub use redis_streams::{StreamsConfig, StreamsWorker};
pub use state::ModelConfig;
pub use store::{SnapshotStore, open_store};
