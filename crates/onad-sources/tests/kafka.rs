//! Kafka source against rdkafka's mock cluster (in process, on 127.0.0.1): round trip equal to the JSON
//! Lines source, message keys as a key column, manual commits (a reopened consumer of the same group goes
//! on after the last batch it processed, and gets the unprocessed one again), seeking to a checkpoint's
//! offsets over three partitions (every message exactly once), bad messages by reason and the fail
//! policy's message, and positions that other sources cannot take.
//!
//! With `ONAD_KAFKA_BROKERS=HOST:PORT` set, the round trip also runs against that real broker (topics are
//! created by the test; see scripts/README.md for a local one).
#![cfg(feature = "kafka")]

mod common;
use common::{collect, same};

use std::collections::BTreeMap;
use std::time::Duration;

use onad_core::{BadRowPolicy, Position, Source, SourceError};
use onad_sources::{KafkaSource, LabelColumn, SourceOptions, open_url};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn options(batch_size: usize) -> SourceOptions {
    SourceOptions {
        label: LabelColumn::Named("label".into()),
        bad_rows: BadRowPolicy::Skip,
        batch_size,
        ..Default::default()
    }
}

fn json_rows(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range
        .map(|i| {
            let a = i as f64 * 0.1 - 3.0;
            let b = if i % 7 == 0 { "null".to_string() } else { format!("{}", (i * i) as f64 / 3.0) };
            format!("{{\"a\": {a}, \"b\": {b}, \"label\": {}}}", i % 3 == 0).into_bytes()
        })
        .collect()
}

/// A record to produce: partition, key, value.
type Record = (i32, Option<Vec<u8>>, Option<Vec<u8>>);

/// Sends `(partition, key, value)` records and waits until all are acknowledged.
fn produce(brokers: &str, topic: &str, records: &[Record]) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for (partition, key, value) in records {
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(*partition);
        if let Some(k) = key {
            r = r.key(k.as_slice());
        }
        if let Some(v) = value {
            r = r.payload(v.as_slice());
        }
        let mut r = Some(r);
        while let Some(rec) = r.take() {
            if let Err((e, rec)) = producer.send(rec) {
                assert!(
                    matches!(e.rdkafka_error_code(), Some(rdkafka::types::RDKafkaErrorCode::QueueFull)),
                    "cannot produce: {e}"
                );
                producer.poll(Duration::from_millis(10));
                r = Some(rec);
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn values_on(partition: i32, rows: Vec<Vec<u8>>) -> Vec<Record> {
    rows.into_iter().map(|v| (partition, None, Some(v))).collect()
}

struct Mock {
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

impl Mock {
    fn new(topic: &str, partitions: i32) -> Mock {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic(topic, partitions, 1).unwrap();
        Mock { cluster }
    }

    fn brokers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    fn url(&self, topic: &str, params: &str) -> String {
        format!("kafka://{}/{topic}?session.timeout.ms=6000&{params}", self.brokers())
    }
}

fn round_trip(brokers: &str, topic: &str) {
    let rows = json_rows(0..500);
    produce(brokers, topic, &values_on(0, rows.clone()));
    let url = format!("kafka://{brokers}/{topic}?group=g&session.timeout.ms=6000&max_rows=500");
    let mut src = KafkaSource::open(&url, options(64)).unwrap();
    assert_eq!(src.schema().names(), ["a", "b"]);
    assert!(src.has_labels());
    let (v, l, ids) = collect(&mut src);
    assert_eq!(ids, (0..500).collect::<Vec<u64>>());
    let mut next = BTreeMap::new();
    next.insert((topic.to_string(), 0), 500);
    assert_eq!(src.position(), Position::Offsets { next, delivered: 500 });
    let mut expect = Vec::new();
    for i in 0..500 {
        let b = if i % 7 == 0 { f64::NAN } else { (i * i) as f64 / 3.0 };
        expect.extend([i as f64 * 0.1 - 3.0, b]);
    }
    assert!(same(&v, &expect));
    assert_eq!(l, (0..500).map(|i| if i % 3 == 0 { 1.0 } else { 0.0 }).collect::<Vec<_>>());

    #[cfg(feature = "jsonl")]
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, rows.join(&b'\n')).unwrap();
        let options = onad_sources::JsonlOptions { base: options(64), ..Default::default() };
        let mut jsonl = onad_sources::JsonlSource::open(&path, options).unwrap();
        assert_eq!(jsonl.schema().names(), src.schema().names());
        let (jv, jl, jids) = collect(&mut jsonl);
        assert!(same(&v, &jv));
        assert_eq!((l, ids), (jl, jids));
    }

    // Everything was committed when the source ended: the group has nothing more, so after the idle
    // timeout the source opens with no columns and ends with 0 rows (a periodic job with nothing to do).
    let again = format!("kafka://{brokers}/{topic}?group=g&session.timeout.ms=6000&idle_timeout_ms=1500");
    let mut again = KafkaSource::open(&again, options(64)).unwrap();
    assert!(again.schema().is_empty());
    assert!(!again.has_labels());
    assert!(again.next().is_none());
    assert_eq!(again.skipped().total(), 0);
}

#[test]
fn a_topic_with_only_bad_messages_opens_with_no_columns_and_commits_them() {
    let mock = Mock::new("junk", 1);
    produce(&mock.brokers(), "junk", &[(0, None, Some(b"[1]".to_vec())), (0, None, None)]);
    let url = mock.url("junk", "group=g&idle_timeout_ms=1500");
    let mut src = open_url(&url, options(16)).unwrap();
    assert_eq!((src.schema().len(), src.has_labels()), (0, false));
    assert!(src.next().is_none());
    assert_eq!(src.skipped().iter().collect::<Vec<_>>(), [("missing_field", 1), ("not_object", 1)]);
    drop(src);
    // They were committed: the group's next reader finds nothing at all.
    let mut next = KafkaSource::open(&url, options(16)).unwrap();
    assert!(next.schema().is_empty() && next.next().is_none() && next.skipped().total() == 0);
}

#[test]
fn round_trip_equals_the_jsonl_source() {
    let mock = Mock::new("events", 1);
    round_trip(&mock.brokers(), "events");
}

/// Against a real broker when `ONAD_KAFKA_BROKERS` names one (the topic is created with one partition).
#[test]
fn round_trip_on_a_real_broker_when_one_is_named() {
    let Ok(brokers) = std::env::var("ONAD_KAFKA_BROKERS") else {
        eprintln!("ONAD_KAFKA_BROKERS is not set: the real-broker round trip did not run");
        return;
    };
    let topic = format!("onad-test-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let created = futures_lite_block_on(admin.create_topics(
        &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ));
    for r in created.unwrap() {
        r.unwrap();
    }
    round_trip(&brokers, &topic);
}

/// Drives one future to completion on this thread (the admin API is async; no runtime is needed for it).
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park_timeout(Duration::from_millis(50)),
        }
    }
}

#[test]
fn message_keys_become_a_key_column() {
    let mock = Mock::new("cards", 1);
    // First a message whose only JSON feature is null: it names the columns, and is an empty row whatever
    // its key (the key column is no data to score).
    let empty: Vec<Record> = vec![(0, Some(b"17".to_vec()), Some(b"{\"amount\": null}".to_vec()))];
    let records: Vec<_> = empty
        .into_iter()
        .chain((0..30).map(|i| {
            let key = match i % 3 {
                0 => Some(b"17".to_vec()),
                1 => Some(format!("card-{}", i % 2).into_bytes()),
                _ => None,
            };
            (0, key, Some(format!("{{\"amount\": {i}}}").into_bytes()))
        }))
        .collect();
    produce(&mock.brokers(), "cards", &records);
    let url = mock.url("cards", "key_column=card&max_rows=30");
    let mut src = KafkaSource::open(&url, SourceOptions { label: LabelColumn::None, ..options(8) }).unwrap();
    assert_eq!(src.schema().names(), ["amount", "card"]);
    let (v, _, ids) = collect(&mut src);
    assert_eq!(ids, (1..31).collect::<Vec<u64>>());
    assert_eq!(src.skipped().iter().collect::<Vec<_>>(), [("empty_row", 1)]);
    let keys: Vec<f64> = v.chunks(2).map(|r| r[1]).collect();
    assert_eq!(v.chunks(2).map(|r| r[0]).collect::<Vec<_>>(), (0..30).map(f64::from).collect::<Vec<_>>());
    for (i, k) in keys.iter().enumerate() {
        match i % 3 {
            0 => assert_eq!(*k, 17.0),
            1 => assert!(k.is_finite() && *k != 17.0 && k.fract() == 0.0, "{k}"),
            _ => assert!(k.is_nan()),
        }
    }
    // The same text key gives the same number; different keys differ.
    assert_eq!(keys[1], keys[7]);
    assert_ne!(keys[1], keys[4]);

    // A key column that clashes with a JSON key is refused by name. (The source's name leaves the URL's
    // parameters out, so the message names the setting by itself.)
    let clash = mock.url("cards", "key_column=amount&max_rows=1&group=other");
    let err = KafkaSource::open(&clash, SourceOptions { label: LabelColumn::None, ..options(8) }).unwrap_err();
    let err = err.to_string();
    assert!(err.contains("key_column=amount is also a key of the JSON objects"), "{err}");
    assert!(err.starts_with(&format!("kafka://{}/cards: ", mock.brokers())), "{err}");
}

#[test]
fn a_reopened_consumer_goes_on_after_the_last_processed_batch() {
    let mock = Mock::new("metrics", 1);
    produce(&mock.brokers(), "metrics", &values_on(0, json_rows(0..100)));
    let url = mock.url("metrics", "group=g&idle_timeout_ms=1500");
    let mut first = KafkaSource::open(&url, options(10)).unwrap();
    let b1 = first.next().unwrap().unwrap();
    let b2 = first.next().unwrap().unwrap();
    assert_eq!((b1.row_ids()[0], b2.row_ids()[0]), (0, 10));
    // Asking for the second batch committed the first; the second was never followed by another request
    // (a crash while processing it), so the group hands it out again.
    drop(first);
    let mut second = KafkaSource::open(&url, options(10)).unwrap();
    let (v, _, ids) = collect(&mut second);
    assert_eq!(ids.len(), 90);
    let expect: Vec<f64> = (10..100).map(|i| i as f64 * 0.1 - 3.0).collect();
    assert!(same(&v.chunks(2).map(|r| r[0]).collect::<Vec<_>>(), &expect));
}

#[test]
fn seeking_to_a_checkpoint_delivers_every_message_exactly_once() {
    let mock = Mock::new("flows", 3);
    let rows = json_rows(0..300);
    let records: Vec<_> = rows.iter().enumerate().map(|(i, r)| ((i % 3) as i32, None, Some(r.clone()))).collect();
    produce(&mock.brokers(), "flows", &records);
    let a_values = |v: &[f64]| v.chunks(2).map(|r| r[0]).collect::<Vec<f64>>();

    let mut first = KafkaSource::open(&mock.url("flows", "group=g1&idle_timeout_ms=1500"), options(25)).unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.extend(a_values(first.next().unwrap().unwrap().values()));
    }
    let checkpoint = first.position();
    let Position::Offsets { next, delivered } = &checkpoint else { panic!("{checkpoint:?}") };
    assert_eq!(*delivered, 100);
    assert_eq!(next.values().map(|o| *o as u64).sum::<u64>(), 100, "{checkpoint}");
    // Read further (to be thrown away, as a crash after the checkpoint would) and stop.
    let _ = first.next().unwrap().unwrap();
    drop(first);

    // Another group (no commits at all) resumes from the checkpoint: exactly the other 200 messages.
    let mut resumed = KafkaSource::open(&mock.url("flows", "group=g2&idle_timeout_ms=1500"), options(25)).unwrap();
    resumed.seek(&checkpoint).unwrap();
    let (v, _, ids) = collect(&mut resumed);
    assert_eq!(ids, (100..300).collect::<Vec<u64>>());
    seen.extend(a_values(&v));
    let mut all: Vec<u64> = seen.iter().map(|a| ((a + 3.0) * 10.0).round() as u64).collect();
    all.sort_unstable();
    assert_eq!(all, (0..300).collect::<Vec<u64>>());
}

#[test]
fn bad_messages_are_counted_by_reason_or_stop_with_their_offset() {
    let mock = Mock::new("mixed", 1);
    let good = |i: usize| Some(format!("{{\"a\": {i}, \"label\": 0}}").into_bytes());
    let records = vec![
        (0, None, good(0)),
        (0, None, Some(b"{\"a\": ".to_vec())),                     // invalid_json
        (0, None, Some(b"[1, 2]".to_vec())),                       // not_object
        (0, None, Some(b"{\"a\": \"x\", \"label\": 0}".to_vec())), // non_numeric
        (0, None, None),                                           // missing_field (no value)
        (0, None, Some(b"{\"label\": 1}".to_vec())),               // missing_column
        (0, None, Some(b"{\"a\": 1, \"b\": 2, \"label\": 0}".to_vec())), // extra_column
        (0, None, Some(b"{\"a\": 1, \"a\": 2, \"label\": 0}".to_vec())), // duplicate_column
        (0, None, Some(b"{\"a\": 1, \"label\": \"\xff\"}".to_vec())), // invalid_utf8
        (0, None, Some(b"{\"a\": [1], \"label\": 0}".to_vec())),   // non_numeric (an array)
        (0, None, Some(b"{\"a\": null, \"label\": 1}".to_vec())),  // empty_row
        (0, None, good(11)),
    ];
    produce(&mock.brokers(), "mixed", &records);
    let mut src = KafkaSource::open(&mock.url("mixed", "group=g&max_rows=2"), options(16)).unwrap();
    let (v, _, ids) = collect(&mut src);
    assert_eq!((v, ids), (vec![0.0, 11.0], vec![0, 11]));
    let counts: Vec<(&str, u64)> = src.skipped().iter().collect();
    assert_eq!(
        counts,
        [
            ("duplicate_column", 1),
            ("empty_row", 1),
            ("extra_column", 1),
            ("invalid_json", 1),
            ("invalid_utf8", 1),
            ("missing_column", 1),
            ("missing_field", 1),
            ("non_numeric", 2),
            ("not_object", 1)
        ]
    );

    // Missing: every bad message keeps its place as a row of NaN, counted by the same reasons; the label
    // read before a message went bad stays (the empty row's 1), otherwise it is NaN.
    let missing = SourceOptions { bad_rows: BadRowPolicy::Missing, ..options(16) };
    let mut src = KafkaSource::open(&mock.url("mixed", "group=g3&max_rows=12"), missing).unwrap();
    let (v, labels, ids) = collect(&mut src);
    assert_eq!(ids, (0..12).collect::<Vec<u64>>());
    assert!(v[0] == 0.0 && v[11] == 11.0 && v[1..11].iter().all(|x| x.is_nan()), "{v:?}");
    assert_eq!(labels[10], 1.0);
    assert_eq!(src.skipped().total(), 10);

    let fail = SourceOptions { bad_rows: BadRowPolicy::Fail, ..options(16) };
    // With a password among the parameters (librdkafka ignores it on a plaintext connection): the
    // messages name the source without it.
    let with_password = "group=g2&max_rows=2&sasl.username=u&sasl.password=hunter2pw";
    let mut src = open_url(&mock.url("mixed", with_password), fail).unwrap();
    let first = src.next().unwrap();
    let err = match first {
        Err(e) => e,
        Ok(b) => {
            assert_eq!(b.row_ids(), [0]);
            src.next().unwrap().unwrap_err()
        }
    };
    let SourceError::BadRecord(r) = &err else { panic!("{err}") };
    assert_eq!((r.row, r.reason), (1, "invalid_json"));
    let text = err.to_string();
    assert!(text.contains("kafka://") && text.contains("partition 0 offset 1"), "{text}");
    assert!(text.starts_with(&format!("kafka://{}/mixed: ", mock.brokers())), "{text}");
    assert!(!text.contains("hunter2pw") && !text.contains("sasl"), "{text}");
}

#[test]
fn positions_of_other_kinds_are_refused() {
    let mock = Mock::new("t", 1);
    produce(&mock.brokers(), "t", &values_on(0, json_rows(0..3)));
    let mut src = KafkaSource::open(&mock.url("t", "max_rows=3"), options(16)).unwrap();
    src.seek(&Position::Start).unwrap();
    let err = src.seek(&Position::Row(2)).unwrap_err().to_string();
    assert!(err.contains("cannot seek to row 2"), "{err}");
    let mut other = BTreeMap::new();
    other.insert(("elsewhere".to_string(), 0), 1);
    let err = src.seek(&Position::Offsets { next: other, delivered: 1 }).unwrap_err().to_string();
    assert!(err.contains("topic 'elsewhere'"), "{err}");
    // URL mistakes name the parameter.
    let err = open_url(&format!("kafka://{}/t?grop=x", mock.brokers()), options(16)).err().unwrap().to_string();
    assert!(err.contains("unknown parameter 'grop'"), "{err}");
    let err = open_url("kafka:///t", options(16)).err().unwrap().to_string();
    assert!(err.contains("names no broker"), "{err}");
    for setting in ["enable.auto.commit=true", "group.id=x", "partition.assignment.strategy=cooperative-sticky"] {
        let err = open_url(&mock.url("t", setting), options(16)).err().unwrap().to_string();
        assert!(err.contains("cannot be set"), "{setting}: {err}");
    }
    // A topic the cluster does not have, and brokers nobody listens on, fail when opening, by name.
    let err = open_url(&mock.url("nosuch", "connect_timeout_ms=3000"), options(16)).err().unwrap().to_string();
    assert!(err.contains("topic 'nosuch'"), "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err =
        open_url(&format!("kafka://127.0.0.1:{port}/t?connect_timeout_ms=500"), options(16)).err().unwrap().to_string();
    assert!(err.contains("cannot reach the brokers") && err.contains("500 ms"), "{err}");
}

#[test]
fn a_broker_outage_loses_nothing_and_give_up_ms_ends_the_wait() {
    let mock = Mock::new("outage", 1);
    produce(&mock.brokers(), "outage", &values_on(0, json_rows(0..50)));
    let mut src =
        KafkaSource::open(&mock.url("outage", "group=g&max_rows=100&idle_timeout_ms=20000"), options(50)).unwrap();
    let mut ids: Vec<u64> = src.next().unwrap().unwrap().row_ids().to_vec();
    while ids.len() < 50 {
        ids.extend_from_slice(src.next().unwrap().unwrap().row_ids());
    }
    // The broker goes away for two seconds; the reader waits, then gets what is produced afterwards.
    // Reads to max_rows. The last commit, right after the outage, may be refused (the group coordinator
    // is still being found): the source reports that as its last item, after every row.
    let reader = std::thread::spawn(move || {
        let (mut v, mut ids) = (Vec::new(), Vec::new());
        for b in &mut src {
            match b {
                Ok(b) => {
                    v.extend_from_slice(b.values());
                    ids.extend_from_slice(b.row_ids());
                }
                Err(e) => assert!(e.to_string().contains("cannot commit the last offsets"), "{e}"),
            }
        }
        (v, (), ids)
    });
    eprintln!("outage: broker down");
    mock.cluster.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    mock.cluster.broker_up(1).unwrap();
    produce(&mock.brokers(), "outage", &values_on(0, json_rows(50..100)));
    eprintln!("outage: broker up, 50 more produced");
    let (v, _, later) = reader.join().unwrap();
    eprintln!("outage: the reader got them");
    ids.extend(later);
    assert_eq!(ids, (0..100).collect::<Vec<u64>>());
    let want: Vec<f64> = (50..100).map(|i| i as f64 * 0.1 - 3.0).collect();
    assert!(same(&v.chunks(2).map(|r| r[0]).collect::<Vec<_>>(), &want));

    // With give_up_ms, a broker that stays away ends the source with an error saying so.
    // (A fresh cluster: a group created on the cluster that just came back sometimes never got its partitions.)
    let mock = Mock::new("outage2", 1);
    produce(&mock.brokers(), "outage2", &values_on(0, json_rows(0..10)));
    let url = mock.url("outage2", "group=g2&give_up_ms=1500&idle_timeout_ms=20000");
    let mut src = KafkaSource::open(&url, options(100)).unwrap();
    let _ = src.next().unwrap().unwrap();
    mock.cluster.broker_down(1).unwrap();
    let started = std::time::Instant::now();
    let err = loop {
        match src.next() {
            Some(Ok(_)) => assert!(started.elapsed() < Duration::from_secs(30), "no error after 30 s"),
            Some(Err(e)) => break e.to_string(),
            None => panic!("the source ended instead of failing"),
        }
    };
    eprintln!("give-up error: {err}");
    assert!(err.contains("within give_up_ms=1500"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    // Closing a consumer waits for the group: let the broker back before the source is dropped.
    mock.cluster.broker_up(1).unwrap();
    drop(src);
}

#[test]
fn every_row_carries_the_partition_and_offset_of_its_message() {
    let mock = Mock::new("origins", 3);
    let rows = json_rows(0..300);
    let records: Vec<_> = rows.iter().enumerate().map(|(i, r)| ((i % 3) as i32, None, Some(r.clone()))).collect();
    produce(&mock.brokers(), "origins", &records);
    let mut src = KafkaSource::open(&mock.url("origins", "group=o&idle_timeout_ms=1500"), options(40)).unwrap();
    let mut seen = Vec::new();
    for b in src.by_ref() {
        let b = b.unwrap();
        let o = b.origins().expect("Kafka rows carry their origin");
        assert_eq!(&*o.topic, "origins");
        for (i, row) in b.rows().enumerate() {
            // Message i went to partition i % 3, at offset i / 3; its `a` is i * 0.1 - 3.
            let m = ((row[0] + 3.0) * 10.0).round() as i64;
            let at = b.origin(i).unwrap();
            assert_eq!((at.partition, at.offset), ((m % 3) as i32, m / 3), "row {} (message {m})", b.row_ids()[i]);
            seen.push(m);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..300).collect::<Vec<i64>>());
}
