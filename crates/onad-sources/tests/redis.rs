//! Redis source against a real `redis-server` started per test on a free port: stream round trip (equal
//! to the same data read through the JSON Lines source), consumer groups (own pending entries, claiming a
//! dead consumer's), bad messages by reason and the fail policy's message, pub/sub, and connection loss
//! (a restarted server is picked up again; without one, a clear error after `give_up_ms`).
//!
//! These tests need the `redis-server` binary (Debian/Ubuntu: `apt-get install redis-server`); without it
//! they fail, saying so.
#![cfg(feature = "redis")]

mod common;
mod redis_server;
use common::{collect, same};
use redis_server::{Server, free_port};

use std::time::{Duration, Instant};

use onad_core::{BadRowPolicy, Position, Source, SourceError};
use onad_sources::{LabelColumn, RedisSource, SourceOptions, open_url};

/// A `redis-server` child process on 127.0.0.1, killed on drop.
fn options(batch_size: usize) -> SourceOptions {
    SourceOptions {
        label: LabelColumn::Named("label".into()),
        bad_rows: BadRowPolicy::Skip,
        batch_size,
        ..Default::default()
    }
}

/// Appends each payload to `stream` as the field `field`, returning the entry ids.
fn xadd(conn: &mut redis::Connection, stream: &str, field: &str, payloads: &[Vec<u8>]) -> Vec<String> {
    let mut pipe = redis::pipe();
    for p in payloads {
        pipe.cmd("XADD").arg(stream).arg("*").arg(field).arg(p.as_slice());
    }
    pipe.query(conn).unwrap()
}

fn json_rows(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range
        .map(|i| {
            let a = i as f64 * 0.1 - 3.0;
            let b = if i % 7 == 0 { "null".to_string() } else { format!("{}", (i * i) as f64 / 3.0) };
            format!("{{\"a\": {a}, \"b\": {b}, \"flag\": {}, \"label\": {}}}", i % 2 == 0, i % 3 == 0).into_bytes()
        })
        .collect()
}

fn pending(conn: &mut redis::Connection, stream: &str, group: &str) -> i64 {
    let summary: redis::Value = redis::cmd("XPENDING").arg(stream).arg(group).query(conn).unwrap();
    match summary {
        redis::Value::Array(parts) => match parts.first() {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("unexpected XPENDING reply {other:?}"),
        },
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

#[test]
fn stream_round_trip_equals_the_jsonl_source() {
    let server = Server::start();
    let rows = json_rows(0..500);
    xadd(&mut server.conn(), "events", "data", &rows);
    let url = server.url("stream/events?group=g&consumer=c1&idle_timeout_ms=300");
    let mut src = RedisSource::open(&url, options(64)).unwrap();
    assert_eq!(src.schema().names(), ["a", "b", "flag"]);
    assert!(src.has_labels());
    let (v, l, ids) = collect(&mut src);
    assert_eq!(ids, (0..500).collect::<Vec<u64>>());
    assert_eq!(src.position(), Position::Row(500));
    assert_eq!(src.skipped().total(), 0);
    // Every entry was acknowledged once the source ended.
    assert_eq!(pending(&mut server.conn(), "events", "g"), 0);

    let mut expect = Vec::new();
    for i in 0..500 {
        let b = if i % 7 == 0 { f64::NAN } else { (i * i) as f64 / 3.0 };
        expect.extend([i as f64 * 0.1 - 3.0, b, if i % 2 == 0 { 1.0 } else { 0.0 }]);
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

    // A second read through the same group finds nothing new: after the idle timeout it opens with no
    // columns and ends with 0 rows (a periodic job with nothing to do), not with an error.
    let mut again = RedisSource::open(&url, options(64)).unwrap();
    assert!(again.schema().is_empty());
    assert!(!again.has_labels());
    assert!(again.next().is_none());
    assert_eq!((again.position(), again.skipped().total()), (Position::Row(0), 0));
}

#[test]
fn nothing_within_the_idle_timeout_opens_with_no_columns_and_ends_with_zero_rows() {
    let server = Server::start();
    // A stream holding only bad messages: they are counted and acknowledged, and no batch comes.
    let mut conn = server.conn();
    xadd(&mut conn, "s", "data", &[b"[1]".to_vec(), b"nope".to_vec()]);
    xadd(&mut conn, "s", "other", &[b"{\"a\": 1}".to_vec()]);
    let url = server.url("stream/s?group=g&consumer=c&idle_timeout_ms=200");
    let mut src = open_url(&url, options(10)).unwrap();
    assert_eq!((src.schema().len(), src.has_labels()), (0, false));
    assert!(src.next().is_none());
    assert!(src.next().is_none());
    let counts: Vec<(&str, u64)> = src.skipped().iter().collect();
    assert_eq!(counts, [("invalid_json", 1), ("missing_field", 1), ("not_object", 1)]);
    assert_eq!(Source::position(&*src), Position::Row(3));
    assert_eq!(pending(&mut conn, "s", "g"), 0);
    // The fail policy still stops at the first bad message.
    let fail = SourceOptions { bad_rows: BadRowPolicy::Fail, ..options(10) };
    xadd(&mut conn, "s", "data", &[b"[2]".to_vec()]);
    let err = open_url(&url, fail).err().expect("an error").to_string();
    assert!(err.contains("(not_object)"), "{err}");

    // A stream that does not exist yet, and a silent channel: no columns, no rows.
    let mut empty = open_url(&server.url("stream/new?group=g&consumer=c&idle_timeout_ms=200"), options(10)).unwrap();
    assert!(empty.schema().is_empty() && empty.next().is_none() && empty.skipped().total() == 0);
    let mut silent = open_url(&server.url("channel/quiet?idle_timeout_ms=200"), options(10)).unwrap();
    assert!(silent.schema().is_empty() && !silent.has_labels() && silent.next().is_none());
}

#[test]
fn a_consumer_gets_its_own_unacknowledged_entries_and_claims_a_dead_consumers() {
    let server = Server::start();
    let mut conn = server.conn();
    let rows = json_rows(0..40);
    xadd(&mut conn, "s", "data", &rows);
    let first_values = |src: &mut RedisSource| src.next().unwrap().unwrap().values()[0];
    let a = |i: usize| i as f64 * 0.1 - 3.0;

    // Consumer A takes rows 0..10 and acknowledges them (it asks for more, up to max_rows).
    let url_a = server.url("stream/s?group=g&consumer=A&max_rows=10");
    let mut src = RedisSource::open(&url_a, options(10)).unwrap();
    assert_eq!(first_values(&mut src), a(0));
    assert!(src.next().is_none());
    assert_eq!(pending(&mut conn, "s", "g"), 0);

    // Consumer A takes rows 10..15 and crashes before asking for more: they stay pending, and A gets
    // them again when it restarts, before anything new.
    let mut src = RedisSource::open(&url_a, options(5)).unwrap();
    assert_eq!(first_values(&mut src), a(10));
    drop(src);
    assert_eq!(pending(&mut conn, "s", "g"), 5);
    let mut src = RedisSource::open(&server.url("stream/s?group=g&consumer=A&max_rows=5"), options(5)).unwrap();
    let b = src.next().unwrap().unwrap();
    assert_eq!(b.values()[0], a(10));
    assert_eq!(b.num_rows(), 5);
    assert!(src.next().is_none());
    assert_eq!(pending(&mut conn, "s", "g"), 0);

    // A dead consumer read rows 15..25 and never acknowledged them.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("dead")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg("s")
        .arg(">")
        .query(&mut conn)
        .unwrap();
    assert_eq!(pending(&mut conn, "s", "g"), 10);

    // With the default claim_idle_ms (60 s) they are not claimed yet: B only gets the new rows 25..40.
    let mut src = RedisSource::open(&server.url("stream/s?group=g&consumer=B&max_rows=3"), options(3)).unwrap();
    assert_eq!(first_values(&mut src), a(25));
    assert!(src.next().is_none());

    // With claim_idle_ms=0, consumer C claims them first, then reads the rest.
    let url_c = server.url("stream/s?group=g&consumer=C&claim_idle_ms=0&idle_timeout_ms=300");
    let mut src = RedisSource::open(&url_c, options(4)).unwrap();
    let (v, _, ids) = collect(&mut src);
    let got: Vec<f64> = v.chunks(3).map(|r| r[0]).collect();
    let want: Vec<f64> = (15..25).chain(28..40).map(a).collect();
    assert!(same(&got, &want), "{got:?}");
    assert_eq!(ids, (0..22).collect::<Vec<u64>>());
    assert_eq!(pending(&mut conn, "s", "g"), 0);
    assert!(src.seek(&Position::Row(3)).unwrap_err().to_string().contains("consumer group"));
}

#[test]
fn bad_messages_are_counted_by_reason() {
    let server = Server::start();
    let mut conn = server.conn();
    let bad_first: Vec<Vec<u8>> = vec![b"[1, 2]".to_vec(), b"{\"a\": 1".to_vec()];
    xadd(&mut conn, "s", "data", &bad_first);
    xadd(&mut conn, "s", "other", &[b"{\"a\": 1}".to_vec()]);
    let messages: Vec<Vec<u8>> = [
        &b"{\"a\": 1, \"b\": 2, \"label\": 0}"[..],
        b"{\"a\": \"x\", \"b\": 2, \"label\": 0}",
        b"{\"a\": 1, \"label\": 0}",
        b"{\"a\": 1, \"b\": 2, \"c\": 3, \"label\": 0}",
        b"{\"a\": 1, \"a\": 2, \"b\": 2, \"label\": 0}",
        b"{\"a\": 1, \"b\": 2, \"label\": 1} trailing",
        b"\"text\"",
        b"{\"a\": 1, \"b\": \"\xff\", \"label\": 0}",
        b"{\"a\": null, \"b\": null, \"label\": 1}",
        b"{\"a\": 3, \"b\": 4, \"label\": 1}",
    ]
    .iter()
    .map(|m| m.to_vec())
    .collect();
    xadd(&mut conn, "s", "data", &messages);
    let mut src =
        RedisSource::open(&server.url("stream/s?group=g&consumer=c&idle_timeout_ms=200"), options(100)).unwrap();
    let (v, l, ids) = collect(&mut src);
    assert_eq!(v, [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(l, [0.0, 1.0]);
    assert_eq!(ids, [3, 12]);
    let counts: Vec<(&str, u64)> = src.skipped().iter().collect();
    assert_eq!(
        counts,
        [
            ("duplicate_column", 1),
            ("empty_row", 1),
            ("extra_column", 1),
            ("invalid_json", 2),
            ("invalid_utf8", 1),
            ("missing_column", 1),
            ("missing_field", 1),
            ("non_numeric", 1),
            ("not_object", 2),
        ]
    );
    assert_eq!(pending(&mut conn, "s", "g"), 0);
}

#[test]
fn the_fail_policy_names_the_url_without_password_the_entry_and_the_column() {
    let server = Server::start_on(free_port(), Some("s3cret"));
    let mut conn = server.conn();
    let ids = xadd(
        &mut conn,
        "s",
        "data",
        &[b"{\"a\": 1, \"label\": 0}".to_vec(), b"{\"a\": 1, \"label\": 0}".to_vec(), b"{\"a\": [1]}".to_vec()],
    );
    let url = format!("redis://:s3cret@127.0.0.1:{}/stream/s?group=g&consumer=c", server.port);
    let options = SourceOptions { bad_rows: BadRowPolicy::Fail, ..options(10) };
    let mut src = RedisSource::open(&url, options.clone()).unwrap();
    let err = src.next().unwrap().unwrap_err();
    assert!(matches!(err, SourceError::BadRecord(_)), "{err}");
    let err = err.to_string();
    let want = format!(
        "redis://127.0.0.1:{}/stream/s: row 2, column 'a': entry {}: the value of 'a' is an array, not a number \
         (non_numeric)",
        server.port, ids[2]
    );
    assert_eq!(err, want);
    assert!(src.next().is_none());
    // Nothing was acknowledged: the rows are delivered again to the next reader.
    assert_eq!(pending(&mut conn, "s", "g"), 3);

    // A message whose features are all null is an empty row, named as such.
    let ids =
        xadd(&mut conn, "e", "data", &[b"{\"a\": 1, \"label\": 0}".to_vec(), b"{\"a\": null, \"label\": 1}".to_vec()]);
    let url_e = format!("redis://:s3cret@127.0.0.1:{}/stream/e?group=g&consumer=c", server.port);
    let mut src = RedisSource::open(&url_e, options.clone()).unwrap();
    let err = src.next().unwrap().unwrap_err().to_string();
    let want = format!(
        "redis://127.0.0.1:{}/stream/e: row 1: entry {}: the row is empty: its one feature is missing (empty, \
         null or NaN), so there is nothing to score (empty_row)",
        server.port, ids[1]
    );
    assert_eq!(err, want);

    // A wrong password is a clear error too, and does not show the password.
    let wrong = url.replace("s3cret", "nope");
    let err = RedisSource::open(&wrong, options).unwrap_err().to_string();
    assert!(err.starts_with("redis source redis://127.0.0.1:"), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("nope"), "{err}");
}

#[test]
fn pub_sub_receives_the_messages_published_after_subscribing() {
    let server = Server::start();
    let publisher = server.client();
    let sender = std::thread::spawn(move || {
        let mut conn = publisher.get_connection().unwrap();
        // Publish once the source has subscribed.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, n): (String, i64) = redis::cmd("PUBSUB").arg("NUMSUB").arg("alerts").query(&mut conn).unwrap();
            if n > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "nobody subscribed");
            std::thread::sleep(Duration::from_millis(10));
        }
        for (i, row) in json_rows(0..60).into_iter().enumerate() {
            let row = if i == 5 { b"not json".to_vec() } else { row };
            let _: i64 = redis::cmd("PUBLISH").arg("alerts").arg(row).query(&mut conn).unwrap();
        }
    });
    let mut src = open_url(&server.url("channel/alerts?max_rows=50"), options(16)).unwrap();
    assert_eq!(src.schema().names(), ["a", "b", "flag"]);
    let (v, l, ids) = collect(src.as_mut());
    sender.join().unwrap();
    assert_eq!(ids, (0..51).filter(|i| *i != 5).collect::<Vec<u64>>());
    assert_eq!(l.len(), 50);
    let want: Vec<f64> = (0..51).filter(|i| *i != 5).map(|i| i as f64 * 0.1 - 3.0).collect();
    assert!(same(&v.chunks(3).map(|r| r[0]).collect::<Vec<_>>(), &want));
    assert_eq!(src.skipped().get("invalid_json"), 1);
    assert_eq!(Source::position(src.as_ref()), Position::Row(51));
    assert!(src.seek(&Position::Row(1)).unwrap_err().to_string().contains("pub/sub"));
}

#[test]
fn a_stream_source_survives_a_server_restart() {
    let mut server = Server::start();
    let port = server.port;
    xadd(&mut server.conn(), "s", "data", &json_rows(0..10));
    let mut src = RedisSource::open(&server.url("stream/s?group=g&consumer=c&max_rows=20"), options(10)).unwrap();
    assert_eq!(src.next().unwrap().unwrap().num_rows(), 10);
    let reader = std::thread::spawn(move || {
        let (v, _, ids) = collect(&mut src);
        (v, ids)
    });
    std::thread::sleep(Duration::from_millis(200));
    server.kill();
    std::thread::sleep(Duration::from_millis(500));
    let server = Server::start_on(port, None);
    // The server kept nothing (no persistence): the source re-creates the group and reads the new rows.
    xadd(&mut server.conn(), "s", "data", &json_rows(10..20));
    let (v, ids) = reader.join().unwrap();
    assert_eq!(ids, (10..20).collect::<Vec<u64>>());
    let want: Vec<f64> = (10..20).map(|i| i as f64 * 0.1 - 3.0).collect();
    assert!(same(&v.chunks(3).map(|r| r[0]).collect::<Vec<_>>(), &want));
}

#[test]
fn a_lost_server_is_a_clear_error_after_give_up_ms() {
    let mut server = Server::start();
    xadd(&mut server.conn(), "s", "data", &json_rows(0..5));
    let url = server.url("stream/s?group=g&consumer=c&give_up_ms=300");
    let mut src = RedisSource::open(&url, options(5)).unwrap();
    assert_eq!(src.next().unwrap().unwrap().num_rows(), 5);
    server.kill();
    let started = Instant::now();
    let err = src.next().unwrap().unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // The source goes by its URL without the parameters.
    let name = server.url("stream/s");
    assert!(err.starts_with(&format!("redis source {name}: lost the connection")), "{err}");
    assert!(err.contains("within give_up_ms=300"), "{err}");
    assert!(src.next().is_none());

    // The same for a channel.
    let mut server = Server::start();
    let url = server.url("channel/c?give_up_ms=300&idle_timeout_ms=10000");
    let client = server.client();
    let publisher = std::thread::spawn(move || {
        let mut conn = client.get_connection().unwrap();
        loop {
            let n: i64 = redis::cmd("PUBLISH").arg("c").arg("{\"x\": 1, \"label\": 0}").query(&mut conn).unwrap();
            if n > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut src = RedisSource::open(&url, options(5)).unwrap();
    publisher.join().unwrap();
    assert_eq!(src.next().unwrap().unwrap().num_rows(), 1);
    server.kill();
    let err = src.next().unwrap().unwrap_err().to_string();
    assert!(err.contains("within give_up_ms=300"), "{err}");

    // Nothing listening at open: a clear error at once.
    let url = format!("redis://127.0.0.1:{}/channel/c", free_port());
    let err = RedisSource::open(&url, options(5)).unwrap_err().to_string();
    assert!(err.starts_with(&format!("redis source {url}: cannot connect")), "{err}");
}

/// Publishes `rows` on `channel` once someone is subscribed to it.
fn publish_when_subscribed(client: redis::Client, channel: &'static str, rows: Vec<Vec<u8>>) {
    let mut conn = client.get_connection().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, n): (String, i64) = redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query(&mut conn).unwrap();
        if n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "nobody subscribed to {channel}");
        std::thread::sleep(Duration::from_millis(10));
    }
    for row in rows {
        let _: i64 = redis::cmd("PUBLISH").arg(channel).arg(row).query(&mut conn).unwrap();
    }
}

#[test]
fn a_channel_source_resubscribes_after_a_server_restart() {
    let mut server = Server::start();
    let port = server.port;
    let client = server.client();
    let first = std::thread::spawn(move || publish_when_subscribed(client, "ticks", json_rows(0..5)));
    let mut src = RedisSource::open(&server.url("channel/ticks?max_rows=10"), options(5)).unwrap();
    first.join().unwrap();
    let mut ids = Vec::new();
    while ids.len() < 5 {
        ids.extend_from_slice(src.next().unwrap().unwrap().row_ids());
    }
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    let reader = std::thread::spawn(move || {
        let (v, _, ids) = collect(&mut src);
        (v, ids)
    });
    server.kill();
    std::thread::sleep(Duration::from_millis(300));
    let server = Server::start_on(port, None);
    // Messages published while nobody listened are lost (pub/sub keeps nothing); once the source has
    // subscribed again, it receives what follows.
    publish_when_subscribed(server.client(), "ticks", json_rows(5..10));
    let (v, ids) = reader.join().unwrap();
    assert_eq!(ids, (5..10).collect::<Vec<u64>>());
    let want: Vec<f64> = (5..10).map(|i| i as f64 * 0.1 - 3.0).collect();
    assert!(same(&v.chunks(3).map(|r| r[0]).collect::<Vec<_>>(), &want));
}
