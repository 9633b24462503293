//! Kafka sink against rdkafka's mock cluster (in process, on 127.0.0.1): every field of every message
//! read back by a consumer, keys = row ids, a sync that waits for the brokers (the topic holds every row
//! when it returns), a crash after a checkpoint then a resume (the topic holds repeats; a consumer keeping
//! the first message of each key sees exactly the uninterrupted rows), and clear errors, within a bound,
//! for a topic the brokers do not have, brokers nobody listens on, and brokers that go away before a sync.
#![cfg(feature = "kafka")]

mod sink_rows;
use sink_rows::{bounded, check_dedup, expected_in, full_layout, same_row, write_rows};

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use onad_core::{ScoredRow, Sink, SinkError, SinkLayout, SinkPosition};
use onad_sources::{KafkaSink, open_sink_url};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

type Cluster = MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

fn cluster(topics: &[(&str, i32)]) -> Cluster {
    let cluster = MockCluster::new(1).unwrap();
    for (topic, partitions) in topics {
        cluster.create_topic(topic, *partitions, 1).unwrap();
    }
    cluster
}

fn consumer(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "onad-sink-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// Partition -> high watermark (the offset after the last message).
fn watermarks(brokers: &str, topic: &str) -> BTreeMap<i32, i64> {
    let c = consumer(brokers);
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let t = md.topics().iter().find(|t| t.name() == topic).unwrap();
    t.partitions()
        .iter()
        .map(|p| (p.id(), c.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).unwrap().1))
        .collect()
}

fn messages_in(brokers: &str, topic: &str) -> i64 {
    watermarks(brokers, topic).values().sum()
}

/// One message read back: its key, and its value parsed.
struct Read {
    key: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

/// Every message of `topic`, partition by partition in offset order.
fn read_topic(brokers: &str, topic: &str) -> Vec<Read> {
    let high = watermarks(brokers, topic);
    let c = consumer(brokers);
    let mut tpl = TopicPartitionList::new();
    for p in high.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut next: BTreeMap<i32, i64> = high.keys().map(|p| (*p, 0)).collect();
    let mut by_partition: BTreeMap<i32, Vec<Read>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while next.iter().any(|(p, o)| *o < high[p]) {
        assert!(Instant::now() < deadline, "could not read {topic} to its end within 30 s: at {next:?} of {high:?}");
        let Some(m) = c.poll(Duration::from_millis(100)) else { continue };
        let m = m.unwrap();
        let key = String::from_utf8(m.key().expect("every message has a key").to_vec()).unwrap();
        let value: serde_json::Value = serde_json::from_slice(m.payload().expect("a value")).unwrap();
        let serde_json::Value::Object(fields) = value else { panic!("not a JSON object: {value}") };
        by_partition.entry(m.partition()).or_default().push(Read { key, fields });
        next.insert(m.partition(), m.offset() + 1);
    }
    by_partition.into_values().flatten().collect()
}

fn number(v: &serde_json::Value) -> f64 {
    if v.is_null() { f64::NAN } else { v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) }
}

/// A message as a row, after checking its fields and that its key is its row id.
fn row_of(m: &Read, layout: &SinkLayout) -> ScoredRow {
    let mut names: Vec<&str> = vec!["row", "score", "threshold", "anomaly"];
    if layout.labels {
        names.push("label");
    }
    if layout.key.is_some() {
        names.push("key");
    }
    names.sort_unstable();
    let got: Vec<&str> = m.fields.keys().map(String::as_str).collect();
    assert_eq!(got, names, "the fields of a message (no 'origin' while batches do not carry one)");
    let f = &m.fields;
    let id = f["row"].as_u64().unwrap();
    assert_eq!(m.key, id.to_string(), "the message key is the row id");
    ScoredRow {
        id,
        score: number(&f["score"]),
        threshold: number(&f["threshold"]),
        flag: f["anomaly"].as_bool().unwrap(),
        label: f.get("label").map(number),
        key: f.get("key").map(number),
    }
}

#[test]
fn every_row_is_one_message_keyed_by_its_row_id() {
    let mock = cluster(&[("scores", 3), ("plain", 1)]);
    let brokers = mock.bootstrap_servers();
    let layout = full_layout();
    let mut sink = open_sink_url(&format!("kafka://{brokers}/scores?linger.ms=5")).unwrap();
    assert_eq!(sink.describe(), format!("kafka://{brokers}/scores"));
    sink.open(&layout, None).unwrap();
    write_rows(&mut *sink, &layout, 0..250, 64);
    assert_eq!(sink.sync().unwrap(), SinkPosition::Rows { rows: 250, parts: 0 });
    sink.finish(true).unwrap();

    let read = read_topic(&brokers, "scores");
    assert_eq!(read.len(), 250);
    let rows: Vec<ScoredRow> = read.iter().map(|m| row_of(m, &layout)).collect();
    assert_eq!(check_dedup(&layout, &rows, 250), 0, "no repeats in an uninterrupted run");
    // Keys spread the rows over the partitions.
    assert!(watermarks(&brokers, "scores").values().all(|n| *n > 0), "{:?}", watermarks(&brokers, "scores"));
    // Null for what is not finite: the threshold of the first rows, some labels.
    let first = read.iter().find(|m| m.key == "0").unwrap();
    assert!(first.fields["threshold"].is_null());
    let seven = read.iter().find(|m| m.key == "7").unwrap();
    assert!(seven.fields["label"].is_null());

    // A run without labels or keys: the messages have neither field.
    let plain = SinkLayout::default();
    let mut sink = KafkaSink::new(&brokers, "plain");
    sink.open(&plain, None).unwrap();
    write_rows(&mut sink, &plain, 0..20, 8);
    assert_eq!(sink.sync().unwrap(), SinkPosition::Rows { rows: 20, parts: 0 });
    let read = read_topic(&brokers, "plain");
    let rows: Vec<ScoredRow> = read.iter().map(|m| row_of(m, &plain)).collect();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>(), "one partition: in order");
    for r in &rows {
        assert!(same_row(r, &expected_in(&plain, r.id)), "{r:?}");
    }
}

#[test]
fn a_resumed_run_republishes_and_a_consumer_dropping_repeats_sees_the_uninterrupted_rows() {
    let mock = cluster(&[("alerts", 3)]);
    let brokers = mock.bootstrap_servers();
    let layout = full_layout();
    // A long linger: a sync that did not wait for the brokers would return with rows still queued.
    let url = format!("kafka://{brokers}/alerts?linger.ms=300");

    let mut crashed = KafkaSink::from_url(&url).unwrap();
    crashed.open(&layout, None).unwrap();
    assert_eq!(crashed.resumed_from(), None);
    write_rows(&mut crashed, &layout, 0..120, 40);
    let checkpoint = crashed.sync().unwrap();
    assert_eq!(checkpoint, SinkPosition::Rows { rows: 120, parts: 0 });
    assert_eq!(messages_in(&brokers, "alerts"), 120, "sync returned before the brokers had every row");
    // Rows after the checkpoint reach the topic, then the process dies: no sync, no finish.
    write_rows(&mut crashed, &layout, 120..200, 40);
    let deadline = Instant::now() + Duration::from_secs(20);
    while messages_in(&brokers, "alerts") < 200 {
        assert!(Instant::now() < deadline, "the rows after the checkpoint never reached the topic");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(crashed);

    let mut resumed = KafkaSink::from_url(&url).unwrap();
    resumed.open(&layout, Some(&checkpoint)).unwrap();
    assert_eq!(resumed.resumed_from(), Some(120));
    write_rows(&mut resumed, &layout, 120..300, 40);
    assert_eq!(resumed.sync().unwrap(), SinkPosition::Rows { rows: 300, parts: 0 });
    assert_eq!(resumed.delivered(), 300);
    resumed.finish(true).unwrap();

    let read = read_topic(&brokers, "alerts");
    let rows: Vec<ScoredRow> = read.iter().map(|m| row_of(m, &layout)).collect();
    assert_eq!(rows.len(), 380, "rows 120..200 twice: written before the crash and again after the resume");
    assert_eq!(check_dedup(&layout, &rows, 300), 80);
}

#[test]
fn missing_topics_and_unreachable_brokers_fail_when_opening_by_name() {
    let mock = cluster(&[("present", 1)]);
    let brokers = mock.bootstrap_servers();
    let layout = full_layout();
    let url = format!("kafka://{brokers}/nosuch?allow.auto.create.topics=false&connect_timeout_ms=3000");
    let err = bounded(Duration::from_secs(20), "opening a missing topic", move || {
        KafkaSink::from_url(&url).unwrap().open(&full_layout(), None).unwrap_err().to_string()
    });
    eprintln!("{err}");
    assert!(err.contains("topic 'nosuch'") && err.contains(&brokers), "{err}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = bounded(Duration::from_secs(20), "opening on dead brokers", move || {
        let mut sink =
            KafkaSink::new(format!("127.0.0.1:{port}"), "t").with_connect_timeout(Duration::from_millis(500));
        sink.open(&full_layout(), None).unwrap_err().to_string()
    });
    eprintln!("{err}");
    assert!(err.contains("cannot reach the brokers 127.0.0.1:") && err.contains("topic 't'"), "{err}");

    // A checkpoint of a byte stream is not a position of this sink.
    let err = KafkaSink::new(&brokers, "present").open(&layout, Some(&SinkPosition::Bytes(10))).unwrap_err();
    assert!(matches!(err, SinkError::Resume { .. }), "{err}");

    // URL mistakes list what is accepted.
    let err = open_sink_url(&format!("kafka://{brokers}/present?flush_ms=1")).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("unknown parameter 'flush_ms'") && err.contains("flush_timeout_ms"), "{err}");
}

#[test]
fn brokers_gone_before_a_sync_give_a_timeout_error_naming_the_topic() {
    let mock = cluster(&[("outage", 1)]);
    let brokers = mock.bootstrap_servers();
    let layout = full_layout();
    let mut sink = KafkaSink::from_url(&format!("kafka://{brokers}/outage?flush_timeout_ms=1500")).unwrap();
    sink.open(&layout, None).unwrap();
    write_rows(&mut sink, &layout, 0..10, 10);
    assert_eq!(sink.sync().unwrap(), SinkPosition::Rows { rows: 10, parts: 0 });
    mock.broker_down(1).unwrap();
    write_rows(&mut sink, &layout, 10..20, 10);
    let started = Instant::now();
    let (err, sink) = bounded(Duration::from_secs(20), "a sync with the brokers down", move || {
        let err = sink.sync().unwrap_err().to_string();
        (err, sink)
    });
    assert!(started.elapsed() >= Duration::from_millis(1400), "{:?}", started.elapsed());
    eprintln!("{err}");
    assert!(err.contains("topic 'outage'") && err.contains("within 1500 ms") && err.contains(&brokers), "{err}");
    assert!(err.contains("10 messages"), "{err}");
    mock.broker_up(1).unwrap();
    drop(sink);
}

#[cfg(not(feature = "redis"))]
#[test]
fn a_redis_sink_is_not_compiled_in_without_its_feature() {
    let err = open_sink_url("redis://127.0.0.1:1/stream/s").unwrap_err();
    let SinkError::External { error, .. } = &err else { panic!("{err}") };
    assert!(error.downcast_ref::<onad_sources::NotCompiled>().is_some(), "{err}");
    eprintln!("{err}");
    assert!(err.to_string().contains("not compiled in"), "{err}");
}
