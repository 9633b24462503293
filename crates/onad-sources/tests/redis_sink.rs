//! Redis stream sink against a real `redis-server` started per test on a free port of 127.0.0.1: every
//! field of every entry read back with XRANGE (batches larger than one pipeline included), MAXLEN ~
//! trimming, a crash after a checkpoint then a resume (the stream holds repeats; a reader keeping the
//! first entry of each row sees exactly the uninterrupted rows), and clear errors, within a bound, for a
//! server that stops (a restarted one is picked up again), nothing listening, and a key of another type.
//!
//! These tests need the `redis-server` binary (Debian/Ubuntu: `apt-get install redis-server`); without it
//! they fail, saying so.
#![cfg(feature = "redis")]

mod redis_server;
mod sink_rows;
use redis_server::{Server, free_port};
use sink_rows::{bounded, check_dedup, expected_in, full_layout, same_row, write_rows};

use std::time::{Duration, Instant};

use onad_core::{ScoredRow, Sink, SinkError, SinkLayout, SinkPosition};
use onad_sources::{RedisStreamSink, open_sink_url};

/// Every entry of `stream`, oldest first, as (field, value) pairs in the order the entry holds them.
fn entries(server: &Server, stream: &str) -> Vec<Vec<(String, String)>> {
    let reply: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query(&mut server.conn()).unwrap();
    reply.into_iter().map(|(_, fields)| fields).collect()
}

fn number(text: &str) -> f64 {
    if text.is_empty() { f64::NAN } else { text.parse().unwrap_or_else(|_| panic!("not a number: '{text}'")) }
}

/// An entry as a row, after checking its field names and order.
fn row_of(fields: &[(String, String)], layout: &SinkLayout) -> ScoredRow {
    let mut names = vec!["row", "score", "threshold", "anomaly"];
    if layout.labels {
        names.push("label");
    }
    if layout.key.is_some() {
        names.push("key");
    }
    assert_eq!(fields.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), names);
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    ScoredRow {
        id: get("row").unwrap().parse().unwrap(),
        score: number(get("score").unwrap()),
        threshold: number(get("threshold").unwrap()),
        flag: match get("anomaly").unwrap() {
            "true" => true,
            "false" => false,
            other => panic!("anomaly is '{other}'"),
        },
        label: get("label").map(number),
        key: get("key").map(number),
    }
}

#[test]
fn every_row_is_one_entry_with_every_field() {
    let server = Server::start();
    let layout = full_layout();
    let mut sink = open_sink_url(&server.url("stream/scores")).unwrap();
    assert_eq!(sink.describe(), server.url("stream/scores"));
    sink.open(&layout, None).unwrap();
    // Batches of 1500 rows: more than one pipeline each.
    write_rows(&mut *sink, &layout, 0..2500, 1500);
    assert_eq!(sink.sync().unwrap(), SinkPosition::Rows { rows: 2500, parts: 0 });
    sink.finish(true).unwrap();

    let got = entries(&server, "scores");
    let rows: Vec<ScoredRow> = got.iter().map(|e| row_of(e, &layout)).collect();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), (0..2500).collect::<Vec<_>>(), "in order");
    assert_eq!(check_dedup(&layout, &rows, 2500), 0);
    // Numbers as text: shortest round trip, empty when not finite.
    assert_eq!(got[0][2], ("threshold".to_string(), String::new()));
    assert_eq!(got[7][4], ("label".to_string(), String::new()));
    assert_eq!(got[12][1].1, format!("{:?}", expected_in(&layout, 12).score));
    assert_eq!(got[12][5].1, "0.0");

    // Without labels or keys, entries have neither field.
    let plain = SinkLayout::default();
    let mut sink = RedisStreamSink::new("127.0.0.1", server.port, "plain");
    sink.open(&plain, None).unwrap();
    write_rows(&mut sink, &plain, 0..30, 7);
    assert_eq!(sink.sync().unwrap(), SinkPosition::Rows { rows: 30, parts: 0 });
    for (i, e) in entries(&server, "plain").iter().enumerate() {
        let r = row_of(e, &plain);
        assert!(r.id == i as u64 && same_row(&r, &expected_in(&plain, r.id)), "{r:?}");
    }
}

#[test]
fn maxlen_trims_the_stream_as_it_grows() {
    let server = Server::start();
    let layout = full_layout();
    let mut sink = RedisStreamSink::from_url(&server.url("stream/recent?maxlen=100")).unwrap();
    sink.open(&layout, None).unwrap();
    write_rows(&mut sink, &layout, 0..1000, 50);
    assert_eq!(sink.sync().unwrap(), SinkPosition::Rows { rows: 1000, parts: 0 });
    let got = entries(&server, "recent");
    // `MAXLEN ~` keeps at least 100 and trims whole nodes (100 entries by default) beyond.
    assert!((100..=200).contains(&got.len()), "{} entries", got.len());
    let ids: Vec<u64> = got.iter().map(|e| row_of(e, &layout).id).collect();
    assert_eq!(ids, (1000 - got.len() as u64..1000).collect::<Vec<_>>(), "the newest rows stay");
}

#[test]
fn a_resumed_run_appends_again_and_a_reader_dropping_repeats_sees_the_uninterrupted_rows() {
    let server = Server::start();
    let layout = full_layout();
    let url = server.url("stream/alerts");

    let mut crashed = RedisStreamSink::from_url(&url).unwrap();
    crashed.open(&layout, None).unwrap();
    write_rows(&mut crashed, &layout, 0..120, 40);
    let checkpoint = crashed.sync().unwrap();
    assert_eq!(checkpoint, SinkPosition::Rows { rows: 120, parts: 0 });
    write_rows(&mut crashed, &layout, 120..200, 40);
    drop(crashed); // killed: no sync, no finish

    let mut resumed = RedisStreamSink::from_url(&url).unwrap();
    resumed.open(&layout, Some(&checkpoint)).unwrap();
    assert_eq!(resumed.resumed_from(), Some(120));
    write_rows(&mut resumed, &layout, 120..300, 40);
    assert_eq!(resumed.sync().unwrap(), SinkPosition::Rows { rows: 300, parts: 0 });
    assert_eq!(resumed.written(), 300);

    let rows: Vec<ScoredRow> = entries(&server, "alerts").iter().map(|e| row_of(e, &layout)).collect();
    assert_eq!(rows.len(), 380, "rows 120..200 twice: written before the crash and again after the resume");
    assert_eq!(check_dedup(&layout, &rows, 300), 80);
}

#[test]
fn a_stopped_server_is_a_clear_error_after_give_up_ms_and_a_restarted_one_is_used_again() {
    let mut server = Server::start();
    let port = server.port;
    let layout = full_layout();

    // Killed, then back on the same port while the write retries: the write goes through.
    let mut sink = RedisStreamSink::from_url(&server.url("stream/s?give_up_ms=10000")).unwrap();
    sink.open(&layout, None).unwrap();
    write_rows(&mut sink, &layout, 0..10, 10);
    server.kill();
    let restart = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        Server::start_on(port, None)
    });
    let sink = bounded(Duration::from_secs(20), "a write across a restart", move || {
        write_rows(&mut sink, &full_layout(), 10..20, 10);
        sink
    });
    let server = restart.join().unwrap();
    // The restarted server kept nothing (no persistence): it has the rows written after it came back.
    let ids: Vec<u64> = entries(&server, "s").iter().map(|e| row_of(e, &layout).id).collect();
    assert_eq!(ids, (10..20).collect::<Vec<_>>());
    drop(sink);

    // Killed for good: the write fails once give_up_ms has passed, naming the stream and the server.
    let mut sink = RedisStreamSink::from_url(&server.url("stream/s?give_up_ms=500")).unwrap();
    sink.open(&layout, None).unwrap();
    drop(server);
    let started = Instant::now();
    let (err, position) = bounded(Duration::from_secs(20), "a write to a stopped server", move || {
        // One row, written directly (write_rows unwraps) to get the error.
        let schema = onad_core::Schema::shared(["x"]).unwrap();
        let b = onad_core::Batch::try_new(schema, vec![0.0], Some(vec![0.0]), vec![0]).unwrap();
        let scored = onad_core::Scored {
            batch: &b,
            scores: &[0.5],
            flags: &[false],
            thresholds: &[0.9],
            keys: Some(&[1.0]),
            explanations: None,
        };
        let err = sink.write(&scored).unwrap_err().to_string();
        (err, sink.sync().unwrap())
    });
    assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
    eprintln!("{err}");
    assert!(err.contains("give_up_ms=500") && err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("stream 's'"), "{err}");
    assert_eq!(position, SinkPosition::Rows { rows: 0, parts: 0 }, "the failed row is not counted");
}

#[test]
fn opening_fails_clearly_when_nothing_listens_or_the_key_is_not_a_stream() {
    let port = free_port();
    let err = bounded(Duration::from_secs(20), "opening with nothing listening", move || {
        let mut sink = RedisStreamSink::new("127.0.0.1", port, "s");
        sink.open(&full_layout(), None).unwrap_err().to_string()
    });
    eprintln!("{err}");
    assert!(err.contains("cannot connect") && err.contains(&format!("127.0.0.1:{port}")), "{err}");

    let server = Server::start();
    let _: () = redis::cmd("RPUSH").arg("jobs").arg("x").query(&mut server.conn()).unwrap();
    let err = RedisStreamSink::from_url(&server.url("stream/jobs")).unwrap().open(&full_layout(), None).unwrap_err();
    eprintln!("{err}");
    assert!(err.to_string().contains("the key 'jobs' holds a list, not a stream"), "{err}");

    let err = RedisStreamSink::new("127.0.0.1", server.port, "s")
        .open(&full_layout(), Some(&SinkPosition::Bytes(3)))
        .unwrap_err();
    assert!(matches!(err, SinkError::Resume { .. }), "{err}");

    let err = open_sink_url(&server.url("stream/s?max_len=5")).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("unknown parameter 'max_len' (accepted: maxlen, give_up_ms)"), "{err}");
}

#[cfg(not(feature = "kafka"))]
#[test]
fn a_kafka_sink_is_not_compiled_in_without_its_feature() {
    let err = open_sink_url("kafka://127.0.0.1:1/t").unwrap_err();
    let SinkError::External { error, .. } = &err else { panic!("{err}") };
    assert!(error.downcast_ref::<onad_sources::NotCompiled>().is_some(), "{err}");
    eprintln!("{err}");
    assert!(err.to_string().contains("not compiled in"), "{err}");
}
