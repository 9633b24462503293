//! `onad run` over every kind of input at once: the same rows as CSV, JSON Lines, Parquet, SQLite, a Redis
//! stream (a real `redis-server` on 127.0.0.1) and a Kafka topic (rdkafka's mock cluster, hosted by this
//! test process) give byte-identical output files. And a run reading Kafka that is SIGKILLed mid-stream
//! resumes from its checkpoint (the offsets per partition) to the output of an uninterrupted run.
#![cfg(all(feature = "redis", feature = "kafka", feature = "sqlite", feature = "parquet", feature = "jsonl"))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::Redis;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn onad(args: &[&str], failpoint: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onad"));
    cmd.args(args).current_dir(root()).env_remove("ONAD_FAILPOINT");
    if let Some(f) = failpoint {
        cmd.env("ONAD_FAILPOINT", f);
    }
    cmd.output().expect("onad runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The first `n` SHUTTLE rows as (features, label) and the header.
fn shuttle(n: usize) -> (Vec<String>, Vec<(Vec<String>, String)>) {
    let dir = std::env::var_os("ONAD_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("../shared/data"));
    let text = std::fs::read_to_string(dir.join("shippable/shuttle_odds.csv")).expect("shared SHUTTLE csv");
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_owned).collect();
    let rows = lines
        .take(n)
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(str::to_owned).collect();
            let label = f.pop().unwrap();
            (f, label)
        })
        .collect();
    (header, rows)
}

fn json_object(header: &[String], features: &[String], label: &str) -> String {
    let mut fields: Vec<String> = header.iter().zip(features).map(|(h, v)| format!("\"{h}\": {v}")).collect();
    fields.push(format!("\"label\": {label}"));
    format!("{{{}}}", fields.join(", "))
}

fn produce(brokers: &str, topic: &str, values: &[String]) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for v in values {
        loop {
            match producer.send(BaseRecord::<(), str>::to(topic).partition(0).payload(v.as_str())) {
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

#[test]
fn every_source_gives_identical_scores() {
    const N: usize = 3000;
    let (header, rows) = shuttle(N);
    let features = &header[..header.len() - 1];
    let tmp = tempfile::tempdir().unwrap();
    let objects: Vec<String> = rows.iter().map(|(f, l)| json_object(features, f, l)).collect();

    let csv = tmp.path().join("d.csv");
    let mut text = format!("{}\n", header.join(","));
    for (f, l) in &rows {
        text.push_str(&format!("{},{l}\n", f.join(",")));
    }
    std::fs::write(&csv, text).unwrap();
    let jsonl = tmp.path().join("d.jsonl");
    std::fs::write(&jsonl, objects.join("\n")).unwrap();

    // Parquet through the project's writer, from the CSV.
    let parquet = tmp.path().join("d.parquet");
    {
        use onad_core::Source;
        let mut src = onad_sources::CsvSource::open(&csv, onad_sources::CsvOptions::default()).unwrap();
        let mut w = onad_sources::ParquetWriter::create(&parquet, src.schema(), Some("label")).unwrap();
        for b in &mut src {
            w.write(&b.unwrap()).unwrap();
        }
        w.finish().unwrap();
    }

    let db = tmp.path().join("d.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let cols: Vec<String> = header.iter().map(|h| format!("{h} REAL")).collect();
        conn.execute(&format!("CREATE TABLE t (id INTEGER PRIMARY KEY, {})", cols.join(", ")), []).unwrap();
        let marks = vec!["?"; header.len()].join(", ");
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut stmt = tx.prepare(&format!("INSERT INTO t ({}) VALUES ({marks})", header.join(", "))).unwrap();
            for (f, l) in &rows {
                let values: Vec<f64> = f.iter().chain(std::iter::once(l)).map(|v| v.parse().unwrap()).collect();
                stmt.execute(rusqlite::params_from_iter(values)).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let sqlite = format!("sqlite://{}?query=SELECT+{}+FROM+t+ORDER+BY+id", db.display(), header.join("%2C"));

    let redis_server = Redis::start();
    {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", redis_server.port)).unwrap();
        let mut conn = client.get_connection().unwrap();
        let mut pipe = redis::pipe();
        for o in &objects {
            pipe.cmd("XADD").arg("shuttle").arg("*").arg("data").arg(o);
        }
        let _: Vec<String> = pipe.query(&mut conn).unwrap();
    }
    let redis = format!("redis://127.0.0.1:{}/stream/shuttle?group=g&consumer=c&max_rows={N}", redis_server.port);

    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("shuttle", 1, 1).unwrap();
    produce(&cluster.bootstrap_servers(), "shuttle", &objects);
    let kafka = format!("kafka://{}/shuttle?group=g&session.timeout.ms=6000&max_rows={N}", cluster.bootstrap_servers());

    let inputs = [
        csv.to_str().unwrap().to_owned(),
        jsonl.to_str().unwrap().to_owned(),
        parquet.to_str().unwrap().to_owned(),
        sqlite,
        redis,
        kafka,
    ];
    let mut outputs = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let out = tmp.path().join(format!("out-{i}.csv"));
        let o = onad(&["run", "-q", "--input", input, "--batch-size", "500", "--output", out.to_str().unwrap()], None);
        assert!(o.status.success(), "{input}: {}", stderr(&o));
        outputs.push(std::fs::read_to_string(out).unwrap());
    }
    assert_eq!(outputs[0].lines().count(), N + 1);
    for (input, out) in inputs.iter().zip(&outputs).skip(1) {
        assert!(*out == outputs[0], "{input}: the output differs from the CSV run's");
    }
}

#[test]
fn a_killed_kafka_run_resumes_from_its_offsets_to_identical_output() {
    const N: usize = 6000;
    let (header, rows) = shuttle(N);
    let features = &header[..header.len() - 1];
    let objects: Vec<String> = rows.iter().map(|(f, l)| json_object(features, f, l)).collect();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("shuttle", 1, 1).unwrap();
    produce(&cluster.bootstrap_servers(), "shuttle", &objects);
    let url = |group: &str| {
        format!("kafka://{}/shuttle?group={group}&session.timeout.ms=6000&max_rows={N}", cluster.bootstrap_servers())
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = |group: &str, out: &Path, ck: Option<&Path>, resume: bool, failpoint: Option<&str>| {
        let input = url(group);
        let mut args = vec!["run", "-q", "--input", &input, "--batch-size", "500", "--output", out.to_str().unwrap()];
        if let Some(ck) = ck {
            args.extend(["--checkpoint", ck.to_str().unwrap(), "--checkpoint-every", "1000"]);
        }
        if resume {
            args.push("--resume");
        }
        onad(&args, failpoint)
    };
    let full = tmp.path().join("full.csv");
    let o = run("full", &full, None, false, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = std::fs::read(&full).unwrap();
    assert_eq!(String::from_utf8_lossy(&expected).lines().count(), N + 1);
    for (k, row) in [1700, 4321].into_iter().enumerate() {
        let (ck, out) = (tmp.path().join(format!("ck-{k}")), tmp.path().join(format!("out-{k}.csv")));
        let group = format!("killed-{k}");
        let killed = run(&group, &out, Some(&ck), false, Some(&format!("kill-at-row:{row}")));
        assert_eq!(killed.status.code(), None, "row {row}: should die by a signal: {}", stderr(&killed));
        let resumed = run(&group, &out, Some(&ck), true, None);
        assert!(resumed.status.success(), "row {row}: {}", stderr(&resumed));
        assert!(std::fs::read(&out).unwrap() == expected, "kill at row {row}: output differs after resume");
    }
}

#[test]
fn a_sigterm_commits_what_was_processed_so_the_group_goes_on_without_duplicates() {
    // T12 over Kafka: SIGTERM mid-stream writes a final checkpoint and commits the offsets of every row
    // processed; a later run of the same group (without the checkpoint) reads exactly the rest.
    const N: usize = 4000;
    let (header, rows) = shuttle(N);
    let features = &header[..header.len() - 1];
    let objects: Vec<String> = rows.iter().map(|(f, l)| json_object(features, f, l)).collect();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("shuttle", 1, 1).unwrap();
    produce(&cluster.bootstrap_servers(), "shuttle", &objects);
    let url =
        format!("kafka://{}/shuttle?group=g&session.timeout.ms=6000&idle_timeout_ms=3000", cluster.bootstrap_servers());
    let tmp = tempfile::tempdir().unwrap();
    let (ck, first, second) = (tmp.path().join("ck"), tmp.path().join("first.csv"), tmp.path().join("second.csv"));
    let o = onad(
        &[
            "run",
            "-q",
            "--input",
            &url,
            "--batch-size",
            "500",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--output",
            first.to_str().unwrap(),
        ],
        Some("term-at-row:1700"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let done = std::fs::read_to_string(&first).unwrap().lines().count() - 1;
    assert!((1700..N).contains(&done), "the first run wrote {done} rows");
    let o = onad(&["run", "-q", "--input", &url, "--batch-size", "500", "--output", second.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let rest = std::fs::read_to_string(&second).unwrap().lines().count() - 1;
    assert_eq!(done + rest, N, "first run {done} rows, second {rest}");
    // A periodic job finding nothing new: 0 rows and exit 0, not an error about missing columns.
    let summary = tmp.path().join("third.json");
    let o = onad(&["run", "-q", "--input", &url, "--key", "f1", "--summary-json", summary.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["rows"], 0, "{s}");
    // The same with a checkpoint to resume: the checkpoint's counts are reported,
    // nothing is built or written, the checkpoint and the output stay as they were.
    let generations = |dir: &Path| {
        let mut g: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "lock")
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
            .collect();
        g.sort();
        g
    };
    let (before, output) = (generations(&ck), std::fs::read(&first).unwrap());
    let o = onad(
        &[
            "run",
            "-q",
            "--input",
            &url,
            "--checkpoint",
            ck.to_str().unwrap(),
            "--resume",
            "--output",
            first.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["rows_this_run"], 0, "{s}");
    assert!(s["rows"].as_u64().unwrap() >= 1700, "the checkpoint's rows are reported: {s}");
    assert_eq!(generations(&ck), before, "the checkpoint is not rewritten");
    assert_eq!(std::fs::read(&first).unwrap(), output, "the output is not touched");
}

#[test]
fn a_killed_run_publishing_to_kafka_and_redis_deduplicates_to_the_uninterrupted_rows() {
    // Broker sinks cannot take messages back: a resumed run publishes again what the killed run sent after
    // its checkpoint. Dropping repeats by the message key (the input message's topic/partition/offset) or
    // the entry's `row` leaves exactly the rows of an uninterrupted run.
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    const N: usize = 3000;
    let (header, rows) = shuttle(N);
    let features = &header[..header.len() - 1];
    let objects: Vec<String> = rows.iter().map(|(f, l)| json_object(features, f, l)).collect();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("shuttle", 1, 1).unwrap();
    cluster.create_topic("scores", 1, 1).unwrap();
    produce(&cluster.bootstrap_servers(), "shuttle", &objects);
    let redis = Redis::start();
    let brokers = cluster.bootstrap_servers();
    let input = |group: &str| format!("kafka://{brokers}/shuttle?group={group}&session.timeout.ms=6000&max_rows={N}");
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full.csv");
    let o = onad(
        &["run", "-q", "--input", &input("full"), "--batch-size", "500", "--output", full.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let expected: Vec<(u64, f64, bool)> = std::fs::read_to_string(&full)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2] == "1")
        })
        .collect();
    assert_eq!(expected.len(), N);

    let ck = tmp.path().join("ck");
    let scores = format!("kafka://{brokers}/scores");
    let alerts = format!("redis://127.0.0.1:{}/stream/alerts", redis.port);
    let run = |resume: bool, failpoint: Option<&str>| {
        let input = input("killed");
        let mut args = vec!["run", "-q", "--input", &input, "--batch-size", "500", "--output", &scores];
        args.extend(["--alerts", &alerts, "--checkpoint", ck.to_str().unwrap(), "--checkpoint-every", "1000"]);
        if resume {
            args.push("--resume");
        }
        onad(&args, failpoint)
    };
    let killed = run(false, Some("kill-at-row:1700"));
    assert_eq!(killed.status.code(), None, "should die by a signal: {}", stderr(&killed));
    let resumed = run(true, None);
    assert!(resumed.status.success(), "{}", stderr(&resumed));

    // Every message of the scores topic, first one per key kept.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "reader")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&["scores"]).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    let (mut messages, deadline) = (0, Instant::now() + Duration::from_secs(60));
    while seen.len() < N && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(500)) else { continue };
        let m = m.unwrap();
        messages += 1;
        // Keyed by the input message (one partition here, so its offset is the row id).
        let key = std::str::from_utf8(m.key().unwrap()).unwrap().to_owned();
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let row = v["row"].as_u64().unwrap();
        assert_eq!(key, format!("shuttle/0/{row}"));
        assert_eq!((v["origin"]["topic"].as_str(), v["origin"]["offset"].as_u64()), (Some("shuttle"), Some(row)));
        seen.entry(row).or_insert((v["score"].as_f64().unwrap(), v["anomaly"].as_bool().unwrap()));
    }
    let got: Vec<(u64, f64, bool)> = seen.into_iter().map(|(k, (s, a))| (k, s, a)).collect();
    assert_eq!(got, expected, "de-duplicated Kafka output differs from the uninterrupted run");
    assert!(messages >= N, "{messages}");

    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port)).unwrap();
    let mut conn = client.get_connection().unwrap();
    let entries: Vec<(String, Vec<String>)> =
        redis::cmd("XRANGE").arg("alerts").arg("-").arg("+").query(&mut conn).unwrap();
    let mut alerted: Vec<u64> = entries
        .iter()
        .map(|(_, fields)| {
            let at = fields.iter().position(|f| f == "row").unwrap();
            assert_eq!(fields[fields.iter().position(|f| f == "anomaly").unwrap() + 1], "true");
            fields[at + 1].parse().unwrap()
        })
        .collect();
    alerted.sort_unstable();
    alerted.dedup();
    let flagged: Vec<u64> = expected.iter().filter(|r| r.2).map(|r| r.0).collect();
    assert!(!flagged.is_empty());
    assert_eq!(alerted, flagged, "the alerts stream, de-duplicated, is the flagged rows");
}
