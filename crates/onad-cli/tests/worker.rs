//! `onad worker` processes on a consumer group over rdkafka's mock cluster (hosted by this test process on
//! 127.0.0.1): the reliability scenarios T1 (kill -9 over Kafka), T5 (broker down), T6 (rebalance with
//! per-key models), T7 (a paused former owner) and T10 (duplicate delivery). In every one, the rows that
//! reach the outputs, de-duplicated by their id (topic, partition, offset), give every key the score
//! sequence of a single worker that ran alone from start to end, bit for bit. T1, T6 and T7 run over Redis
//! Streams (a real `redis-server`) too.
#![cfg(all(feature = "kafka", feature = "redis"))]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 4;
const KEYS: u64 = 16;

/// Per-key RS-Hash models, scoring after 16 rows of their key (its default warm-up, 64, is more rows than
/// most keys get in these tests, and scores 0 until then), flagged above the 0.9 quantile of the key's
/// last 20 scores: every scenario moves models that score and flag.
const MODEL: &[&str] =
    &["--per-key", "--model", "rs_hash", "--set", "warm_up_samples=16", "--threshold", "quantile:0.9:20"];

std::thread_local! {
    /// The input topic of the test running on this thread (unique per test on a shared real broker).
    static TOPIC: std::cell::RefCell<String> = std::cell::RefCell::new("events".into());
}

fn topic() -> String {
    TOPIC.with(|t| t.borrow().clone())
}

/// Message `i` of the stream: key `k{i % 16}`, sent to partition `key % 4`, with two features (a
/// deterministic wobble per key, and every 97th message far off).
fn message(i: u64) -> (String, i32, String) {
    let key = i % KEYS;
    let t = i as f64;
    let mut x = (t * 0.37 + key as f64).sin() * 2.0 + key as f64;
    let y = (t * 0.11).cos() + 0.01 * (i % 7) as f64;
    if i.is_multiple_of(97) {
        x += 40.0;
    }
    (format!("k{key}"), (key % PARTITIONS as u64) as i32, format!("{{\"x\":{x},\"y\":{y}}}"))
}

fn produce(brokers: &str, range: std::ops::Range<u64>) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for i in range {
        let (key, partition, value) = message(i);
        loop {
            match producer.send(BaseRecord::to(&topic()).key(&key).partition(partition).payload(&value)) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(format!("{e}").contains("Queue full"), "cannot produce: {e}");
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// The brokers: rdkafka's mock cluster, hosted by this test; or, when `ONAD_KAFKA_BROKERS` names a real
/// Kafka-protocol broker and `ONAD_TANSU` its `tansu` binary (to create topics; scripts/README.md), that
/// broker, with topics named after the test (the broker-outage test needs the mock cluster).
enum Cluster {
    Mock(MockCluster<'static, rdkafka::producer::DefaultProducerContext>),
    Real(String),
}

impl Cluster {
    fn create_topic(&self, name: &str, partitions: i32) {
        match self {
            Cluster::Mock(c) => c.create_topic(name, partitions, 1).unwrap(),
            Cluster::Real(brokers) => {
                let tansu = std::env::var("ONAD_TANSU").expect("ONAD_TANSU names the tansu binary");
                let broker = format!("tcp://{brokers}");
                let ok = Command::new(tansu)
                    .args(["topic", "create", name, "--broker", &broker, "--partitions", &partitions.to_string()])
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "cannot create topic {name}");
            }
        }
    }

    fn broker_down(&self) {
        let Cluster::Mock(c) = self else { panic!("a broker outage needs the mock cluster") };
        c.broker_down(1).unwrap();
    }

    fn broker_up(&self) {
        let Cluster::Mock(c) = self else { panic!("a broker outage needs the mock cluster") };
        c.broker_up(1).unwrap();
    }
}

fn cluster_named(test: &str) -> (Cluster, String) {
    let (cluster, brokers) = match std::env::var("ONAD_KAFKA_BROKERS") {
        Ok(b) => {
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
            TOPIC.with(|t| *t.borrow_mut() = format!("{test}-{stamp}"));
            (Cluster::Real(b.clone()), b)
        }
        Err(_) => {
            let c = MockCluster::new(1).unwrap();
            let b = c.bootstrap_servers();
            (Cluster::Mock(c), b)
        }
    };
    cluster.create_topic(&topic(), PARTITIONS);
    (cluster, brokers)
}

/// One `onad worker` process.
/// A worker process; one still running when its test fails is killed.
struct Worker {
    child: Option<Child>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(
    brokers: &str,
    group: &str,
    store: impl AsRef<std::ffi::OsStr>,
    output: impl AsRef<std::ffi::OsStr>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Worker {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onad"));
    let group = format!("{group}-{}", topic());
    cmd.args(["worker", "--brokers", brokers, "--topic", &topic(), "--group", &group])
        .args(MODEL)
        .arg("--store")
        .arg(store)
        .arg("--output")
        .arg(output)
        .args(["--kafka-setting", "session.timeout.ms=6000"])
        .args(extra)
        .env_remove("ONAD_WORKER_REPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Worker { child: Some(cmd.spawn().expect("onad runs")) }
}

impl Worker {
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.pid().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits for the exit, at most two minutes (then kills the worker and fails with its log, so a
    /// worker that does not stop fails the test instead of hanging the run); returns (success, stdout,
    /// stderr).
    fn wait(mut self) -> (bool, String, String) {
        let child = self.child.take().expect("running");
        let pid = child.id();
        let (send, exited) = std::sync::mpsc::channel();
        // `wait_with_output` reads both pipes while it waits, so a chatty worker never blocks on a full pipe.
        std::thread::spawn(move || send.send(child.wait_with_output().unwrap()));
        let out = exited.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            let out = exited.recv().unwrap();
            panic!("worker {pid} still running after 120 s; its log:\n{}", String::from_utf8_lossy(&out.stderr))
        });
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    /// SIGTERM, then the summary JSON it prints.
    fn stop(self) -> serde_json::Value {
        self.stop_with_log().0
    }

    /// SIGTERM, then the summary JSON and the log.
    fn stop_with_log(self) -> (serde_json::Value, String) {
        self.signal("-TERM");
        let (ok, stdout, stderr) = self.wait();
        assert!(ok, "worker failed: {stderr}");
        let summary =
            serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("no summary ({e}): {stdout} {stderr}"));
        (summary, stderr)
    }
}

/// A scored row as the outputs hold it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    key: String,
    score: u64,
    anomaly: bool,
}

/// The rows of every output, first of each (partition, offset) kept, and how many repeats had the same
/// content (a repeat that differs fails).
fn collect(outputs: &[&Path]) -> (BTreeMap<(i64, i64), Row>, usize) {
    let mut rows = BTreeMap::new();
    let mut repeats = 0;
    for path in outputs {
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = (v["partition"].as_i64().unwrap(), v["offset"].as_i64().unwrap());
            let row = Row {
                key: v["key"].as_str().unwrap().to_owned(),
                score: v["score"].as_f64().unwrap().to_bits(),
                anomaly: v["anomaly"].as_bool().unwrap(),
            };
            match rows.get(&id) {
                Some(first) => {
                    assert_eq!(first, &row, "row {id:?} was sent twice with different content");
                    repeats += 1;
                }
                None => {
                    rows.insert(id, row);
                }
            }
        }
    }
    (rows, repeats)
}

/// Every message of `topic` so far: (key, value).
fn read_topic(brokers: &str, topic: &str, partitions: i32) -> Vec<(String, String)> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", "reader").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(1500) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
            out.push((text(m.key()), text(m.payload())));
            quiet = Instant::now();
        }
    }
    out
}

/// Each key's scores in offset order.
fn per_key(rows: &BTreeMap<(i64, i64), Row>) -> BTreeMap<String, Vec<(i64, u64, bool)>> {
    let mut out: BTreeMap<String, Vec<(i64, u64, bool)>> = BTreeMap::new();
    for ((_, offset), r) in rows {
        out.entry(r.key.clone()).or_default().push((*offset, r.score, r.anomaly));
    }
    out
}

fn wait_for(outputs: &[&Path], n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let have = collect(outputs).0.len();
        if have >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {have} of {n} rows after 90 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The single-worker reference: one worker alone from the first message to the last.
fn reference(brokers: &str, dir: &Path, total: usize) -> BTreeMap<String, Vec<(i64, u64, bool)>> {
    let out = dir.join("reference.jsonl");
    let w = spawn(brokers, "reference", dir.join("reference-store"), &out, &[], &[]);
    wait_for(&[&out], total, "reference");
    let summary = w.stop();
    assert_eq!(summary["records_out"], total as u64, "{summary}");
    let (rows, repeats) = collect(&[&out]);
    assert_eq!((rows.len(), repeats), (total, 0));
    let keys = per_key(&rows);
    assert_eq!(keys.len(), KEYS as usize);
    assert_scores_and_flags(&keys);
    keys
}

/// The reference is worth comparing with: every key's model has left its warm-up (distinct scores), and
/// rows are flagged.
fn assert_scores_and_flags(keys: &BTreeMap<String, Vec<(i64, u64, bool)>>) {
    for (key, rows) in keys {
        let distinct: std::collections::BTreeSet<u64> = rows.iter().map(|r| r.1).collect();
        assert!(distinct.len() > 5, "key {key}: {} distinct scores in {} rows", distinct.len(), rows.len());
    }
    assert!(keys.values().flatten().any(|r| r.2), "no row flagged");
}

#[test]
fn t6_an_eager_rebalance_hands_every_key_over_through_snapshots() {
    // The default protocol.
    let log = t6("t6", &[]);
    assert!(log.contains("cooperative=false"), "{log}");
    // Eager: B's join takes every partition from A, even those A gets back.
    assert_eq!(first_revocation(&log), PARTITIONS as usize, "{log}");
}

#[test]
fn t6_the_cooperative_protocol_moves_only_the_partitions_that_change_owner() {
    let log = t6("t6-cooperative", &["--kafka-setting", "partition.assignment.strategy=cooperative-sticky"]);
    assert!(log.contains("cooperative=true") && !log.contains("cooperative=false"), "{log}");
    // Cooperative: B's join takes from A only what moves to B; A keeps scoring the rest throughout.
    let moved = first_revocation(&log);
    assert!(moved > 0 && moved < PARTITIONS as usize, "{log}");
}

/// A alone, then A and B after a rebalance, then B alone after A leaves; `settings` are further flags of
/// both workers (the rebalance protocol). Returns A's log (at info level).
fn t6(name: &str, settings: &[&str]) -> String {
    let (_cluster, brokers) = cluster_named(name);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (a_out, b_out) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let snap: Vec<&str> = ["--snapshot-every", "50", "--snapshot-interval-ms", "300"]
        .into_iter()
        .chain(settings.iter().copied())
        .collect();
    produce(&brokers, 0..400);
    let a = spawn(&brokers, "g", &store, &a_out, &snap, &[("ONAD_LOG", "info")]);
    wait_for(&[&a_out], 400, "A alone");
    // B joins: the group rebalances and B takes some partitions over from A's snapshots.
    let b = spawn(&brokers, "g", &store, &b_out, &snap, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    produce(&brokers, 400..800);
    wait_for(&[&a_out, &b_out], 800, "A and B");
    let mut next = 800;
    while collect(&[&b_out]).0.is_empty() {
        assert!(Instant::now() < deadline && next < 900, "B never got a partition");
        produce(&brokers, next..next + 1);
        next += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    // A leaves (SIGTERM: snapshot, commit, leave the group); B takes everything.
    let (a_summary, a_log) = a.stop_with_log();
    assert!(a_summary["rebalances"].as_u64().unwrap() >= 2, "{a_summary}");
    produce(&brokers, next..1200);
    wait_for(&[&a_out, &b_out], 1200, "B after A left");
    let b_summary = b.stop();
    let (rows, _) = collect(&[&a_out, &b_out]);
    assert_eq!(rows.len(), 1200);
    let partitions_b: std::collections::BTreeSet<i64> = collect(&[&b_out]).0.keys().map(|k| k.0).collect();
    assert_eq!(partitions_b.len(), PARTITIONS as usize, "B ends with every partition: {b_summary}");
    assert_eq!(per_key(&rows), reference(&brokers, dir.path(), 1200));
    a_log
}

/// How many partitions the first revocation in a worker's log took away.
fn first_revocation(log: &str) -> usize {
    let line = log.lines().find(|l| l.contains("partitions revoked")).expect("a revocation is logged");
    let list = line.split("partitions=[").nth(1).and_then(|r| r.split(']').next()).expect("its partitions");
    list.split(',').filter(|p| !p.trim().is_empty()).count()
}

#[test]
fn t1_a_killed_worker_is_replaced_and_every_key_scores_as_one_worker() {
    let (_cluster, brokers) = cluster_named("t1");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (a_out, b_out) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    // Snapshots every 64 messages of a partition and no timed ones: A dies with applied rows that its
    // last snapshots do not hold, so B replays them (same ids, same content).
    let snap = ["--snapshot-every", "64", "--snapshot-interval-ms", "600000"];
    produce(&brokers, 0..700);
    let a = spawn(&brokers, "g", &store, &a_out, &snap, &[]);
    wait_for(&[&a_out], 700, "A");
    a.signal("-KILL");
    let (ok, _, _) = a.wait();
    assert!(!ok);
    produce(&brokers, 700..1000);
    let b = spawn(&brokers, "g", &store, &b_out, &snap, &[]);
    wait_for(&[&a_out, &b_out], 1000, "B after A was killed");
    b.stop();
    let (rows, repeats) = collect(&[&a_out, &b_out]);
    assert_eq!(rows.len(), 1000);
    assert!(repeats > 0, "B should have replayed what A applied after its last snapshots");
    assert!(repeats < 4 * 64, "at most one snapshot interval per partition is replayed, got {repeats}");
    // B started each partition from a snapshot, not from the first offset.
    let b_rows = collect(&[&b_out]).0;
    for p in 0..PARTITIONS as i64 {
        let first = b_rows.keys().find(|k| k.0 == p).map(|k| k.1).unwrap();
        assert!(first > 0, "partition {p}: B started at offset {first}, not from A's snapshot");
    }
    assert_eq!(per_key(&rows), reference(&brokers, dir.path(), 1000));
}

#[test]
fn t10_a_range_delivered_twice_is_applied_once() {
    let (cluster, brokers) = cluster_named("t10");
    let scores = format!("scores-{}", topic());
    cluster.create_topic(&scores, 2);
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let out = dir.path().join("w.jsonl");
    produce(&brokers, 0..800);
    // After offset 149 of a partition, the broker delivers offsets 100..150 of it again. The scores go to
    // a Kafka topic, keyed by their ids; the flagged rows also to an alerts file.
    let w = spawn(
        &brokers,
        "g",
        dir.path().join("store"),
        format!("kafka://{brokers}/{scores}"),
        &["--alerts", alerts.to_str().unwrap()],
        &[("ONAD_WORKER_REPLAY", "150:50")],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while read_topic(&brokers, &scores, 2).len() < 800 {
        assert!(Instant::now() < deadline, "the scores topic did not fill");
        std::thread::sleep(Duration::from_millis(300));
    }
    let summary = w.stop();
    assert_eq!(summary["duplicates"], 50, "{summary}");
    assert_eq!(summary["records_out"], 800, "{summary}");
    let messages = read_topic(&brokers, &scores, 2);
    let mut lines = String::new();
    for (key, value) in &messages {
        let v: serde_json::Value = serde_json::from_str(value).unwrap();
        assert_eq!(key, &format!("{}/{}/{}", topic(), v["partition"], v["offset"]), "the message key is the row id");
        lines.push_str(value);
        lines.push('\n');
    }
    std::fs::write(&out, lines).unwrap();
    let (rows, repeats) = collect(&[&out]);
    assert_eq!((rows.len(), repeats), (800, 0));
    // The alerts output holds exactly the flagged rows, once each.
    let (flagged, repeats) = collect(&[&alerts]);
    let expected: BTreeMap<_, _> = rows.iter().filter(|(_, r)| r.anomaly).map(|(k, r)| (*k, r.clone())).collect();
    assert!(!expected.is_empty());
    assert_eq!((flagged, repeats), (expected, 0));
    assert_eq!(per_key(&rows), reference(&brokers, dir.path(), 800));
}

#[test]
fn t7_a_paused_former_owner_cannot_overwrite_the_new_owners_snapshot() {
    let (_cluster, brokers) = cluster_named("t7");
    // The snapshot store of workers on several hosts: Redis (epochs by INCR, saves by one Lua
    // compare-and-set).
    let redis = common::Redis::start();
    let store = format!("redis://127.0.0.1:{}", redis.port);
    let dir = tempfile::tempdir().unwrap();
    let (a_out, b_out) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    // A never snapshots on its own: its state is unsaved when it is paused.
    let never = ["--snapshot-every", "1000000", "--snapshot-interval-ms", "600000"];
    produce(&brokers, 0..400);
    let a = spawn(&brokers, "g", &store, &a_out, &never, &[]);
    wait_for(&[&a_out], 400, "A");
    a.signal("-STOP");
    // B joins (its snapshot policy from a config file); once A's session has timed out B owns every
    // partition (epochs claimed) and replays them.
    let config = dir.path().join("worker.toml");
    std::fs::write(&config, "snapshot-every = 50\nsnapshot-interval-ms = 300\n").unwrap();
    let b = spawn(&brokers, "g", &store, &b_out, &["--config", config.to_str().unwrap()], &[]);
    wait_for(&[&b_out], 400, "B");
    produce(&brokers, 400..600);
    wait_for(&[&b_out], 600, "B");
    // A wakes up: its revocation tries to save its stale state under its old epochs, and the store
    // refuses every one of them.
    a.signal("-CONT");
    std::thread::sleep(Duration::from_secs(3));
    let a_summary = a.stop();
    assert!(a_summary["snapshots_fenced"].as_u64().unwrap() >= 1, "{a_summary}");
    assert_eq!(a_summary["snapshots"], 0, "{a_summary}");
    produce(&brokers, 600..700);
    wait_for(&[&a_out, &b_out], 700, "after A left");
    b.stop();
    let (rows, _) = collect(&[&a_out, &b_out]);
    assert_eq!(per_key(&rows), reference(&brokers, dir.path(), 700));
}

#[test]
fn t5_a_broker_outage_is_ridden_out_and_a_give_up_deadline_ends_the_worker() {
    let (cluster, brokers) = cluster_named("t5");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.jsonl");
    produce(&brokers, 0..300);
    let w = spawn(&brokers, "g", dir.path().join("store"), &out, &["--snapshot-interval-ms", "200"], &[]);
    wait_for(&[&out], 300, "before the outage");
    cluster.broker_down();
    std::thread::sleep(Duration::from_secs(3));
    cluster.broker_up();
    produce(&brokers, 300..600);
    wait_for(&[&out], 600, "after the outage");
    let summary = w.stop();
    assert_eq!(summary["records_out"], 600, "{summary}");
    let (rows, _) = collect(&[&out]);
    assert_eq!(per_key(&rows), reference(&brokers, dir.path(), 600));

    // With a deadline, an outage longer than it ends the worker with a clear error.
    let out2 = dir.path().join("w2.jsonl");
    let w = spawn(&brokers, "g2", dir.path().join("store2"), &out2, &["--give-up-ms", "2000"], &[]);
    wait_for(&[&out2], 600, "second worker");
    cluster.broker_down();
    let (ok, _, stderr) = w.wait();
    cluster.broker_up();
    assert!(!ok);
    assert!(stderr.contains("every broker has been unreachable for 2000 ms"), "{stderr}");
}

// The same scenarios over Redis Streams: four shard streams `events:0` to `events:3`, each entity's
// entries on one shard, shards held by leases (2 s here), the snapshot store in the same Redis.

fn produce_redis(port: u16, range: std::ops::Range<u64>) {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap().get_connection().unwrap();
    let mut pipe = redis::pipe();
    for i in range {
        let (key, shard, value) = message(i);
        pipe.cmd("XADD").arg(format!("events:{shard}")).arg("*").arg("key").arg(key).arg("data").arg(value).ignore();
    }
    let () = pipe.query(&mut c).unwrap();
}

fn spawn_redis(port: u16, group: &str, output: &Path, extra: &[&str]) -> Worker {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onad"));
    let url = format!("redis://127.0.0.1:{port}");
    cmd.args(["worker", "--redis", &url, "--stream", "events", "--shards", "4", "--group", group])
        .args(MODEL)
        .args(["--lease-ms", "2000"])
        .args(["--store", &url])
        .arg("--output")
        .arg(output)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Worker { child: Some(cmd.spawn().expect("onad runs")) }
}

fn reference_redis(port: u16, dir: &Path, total: usize) -> BTreeMap<String, Vec<(i64, u64, bool)>> {
    let out = dir.join("reference.jsonl");
    let w = spawn_redis(port, "reference", &out, &[]);
    wait_for(&[&out], total, "reference");
    let summary = w.stop();
    assert_eq!(summary["records_out"], total as u64, "{summary}");
    let (rows, repeats) = collect(&[&out]);
    assert_eq!((rows.len(), repeats), (total, 0));
    let keys = per_key(&rows);
    assert_scores_and_flags(&keys);
    keys
}

#[test]
fn redis_streams_t1_a_killed_worker_is_replaced_and_every_key_scores_as_one_worker() {
    let redis = common::Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a_out, b_out) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let snap = ["--snapshot-every", "64", "--snapshot-interval-ms", "600000"];
    produce_redis(redis.port, 0..700);
    let a = spawn_redis(redis.port, "g", &a_out, &snap);
    wait_for(&[&a_out], 700, "A");
    a.signal("-KILL");
    assert!(!a.wait().0);
    produce_redis(redis.port, 700..1000);
    // B takes the shards once A's leases run out, restores A's snapshots and claims what A had read and
    // not acknowledged.
    let b = spawn_redis(redis.port, "g", &b_out, &snap);
    wait_for(&[&a_out, &b_out], 1000, "B after A was killed");
    let summary = b.stop();
    let (rows, repeats) = collect(&[&a_out, &b_out]);
    assert_eq!(rows.len(), 1000);
    assert!(repeats > 0 && repeats < 4 * 64, "replayed {repeats}: {summary}");
    assert_eq!(per_key(&rows), reference_redis(redis.port, dir.path(), 1000));
}

#[test]
fn redis_streams_t6_shards_move_through_snapshots_as_workers_join_and_leave() {
    let redis = common::Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a_out, b_out) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let snap = ["--snapshot-every", "50", "--snapshot-interval-ms", "300"];
    produce_redis(redis.port, 0..400);
    let a = spawn_redis(redis.port, "g", &a_out, &snap);
    wait_for(&[&a_out], 400, "A alone");
    // B joins: A hands two shards back (its fair share is two), B takes them from their snapshots.
    let b = spawn_redis(redis.port, "g", &b_out, &snap);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = 400;
    while collect(&[&b_out]).0.is_empty() {
        assert!(Instant::now() < deadline, "B never got a shard");
        produce_redis(redis.port, next..next + 4);
        next += 4;
        std::thread::sleep(Duration::from_millis(200));
    }
    produce_redis(redis.port, next..800);
    wait_for(&[&a_out, &b_out], 800, "A and B");
    let a_summary = a.stop();
    produce_redis(redis.port, 800..1200);
    wait_for(&[&a_out, &b_out], 1200, "B after A left");
    b.stop();
    let (rows, _) = collect(&[&a_out, &b_out]);
    assert_eq!(rows.len(), 1200);
    let shards_a: std::collections::BTreeSet<i64> = collect(&[&a_out]).0.keys().map(|k| k.0).collect();
    let shards_b: std::collections::BTreeSet<i64> = collect(&[&b_out]).0.keys().map(|k| k.0).collect();
    assert_eq!((shards_a.len(), shards_b.len()), (4, 4), "A had every shard first, B every shard last: {a_summary}");
    assert_eq!(per_key(&rows), reference_redis(redis.port, dir.path(), 1200));
}

#[test]
fn redis_streams_t7_a_paused_former_owner_is_fenced() {
    let redis = common::Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a_out, b_out) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    produce_redis(redis.port, 0..400);
    let a = spawn_redis(redis.port, "g", &a_out, &["--snapshot-every", "1000000", "--snapshot-interval-ms", "600000"]);
    wait_for(&[&a_out], 400, "A");
    a.signal("-STOP");
    let b = spawn_redis(redis.port, "g", &b_out, &["--snapshot-every", "50", "--snapshot-interval-ms", "300"]);
    wait_for(&[&b_out], 400, "B");
    produce_redis(redis.port, 400..600);
    wait_for(&[&b_out], 600, "B");
    // A wakes up: its leases are B's now; its snapshots are refused.
    a.signal("-CONT");
    std::thread::sleep(Duration::from_secs(2));
    let a_summary = a.stop();
    assert!(a_summary["snapshots_fenced"].as_u64().unwrap() >= 1, "{a_summary}");
    assert_eq!(a_summary["snapshots"], 0, "{a_summary}");
    produce_redis(redis.port, 600..700);
    wait_for(&[&a_out, &b_out], 700, "after A left");
    b.stop();
    let (rows, _) = collect(&[&a_out, &b_out]);
    assert_eq!(per_key(&rows), reference_redis(redis.port, dir.path(), 700));
}

/// The address `--metrics-port 0` bound, from the worker's standard error (read on to the end by a
/// thread, so the pipe never fills, and passed on to the test's output).
fn metrics_address(w: &mut Worker) -> String {
    use std::io::BufRead as _;
    let stderr = w.child.as_mut().expect("running").stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("worker: {line}");
            if let Some(url) = line.split("metrics on http://").nth(1) {
                let _ = tx.send(url.trim_end_matches("/metrics").to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30)).expect("the worker prints where its metrics are")
}

fn scrape(addr: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// Polls the endpoint until every owned partition shows lag 0 and every row is counted out; returns the
/// last scrape.
fn scrape_until_caught_up(addr: &str, rows: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(addr);
        let lags: Vec<&str> = text.lines().filter(|l| l.starts_with("onad_worker_lag{")).collect();
        let done = text.lines().any(|l| l == format!("onad_worker_records_out_total {rows}"))
            && lags.len() == PARTITIONS as usize
            && lags.iter().all(|l| l.ends_with(" 0"));
        if done {
            return text;
        }
        assert!(Instant::now() < deadline, "the metrics never caught up:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_metrics_endpoint_counts_rows_and_shows_each_partitions_lag_on_both_transports() {
    let (_cluster, brokers) = cluster_named("metrics");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kafka.jsonl");
    produce(&brokers, 0..400);
    let mut w = spawn(&brokers, "g", dir.path().join("store"), &out, &["--metrics-port", "0"], &[]);
    let addr = metrics_address(&mut w);
    let text = scrape_until_caught_up(&addr, 400);
    assert!(text.contains("# TYPE onad_worker_lag gauge"), "{text}");
    assert!(text.lines().any(|l| l == "onad_worker_partitions 4"), "{text}");
    w.stop();

    let redis = common::Redis::start();
    let out = dir.path().join("redis.jsonl");
    produce_redis(redis.port, 0..400);
    let mut w = spawn_redis(redis.port, "g", &out, &["--metrics-port", "0"]);
    let addr = metrics_address(&mut w);
    let text = scrape_until_caught_up(&addr, 400);
    for shard in 0..PARTITIONS {
        assert!(text.contains(&format!("onad_worker_lag{{partition=\"{shard}\"}} 0")), "{text}");
    }
    w.stop();
}
