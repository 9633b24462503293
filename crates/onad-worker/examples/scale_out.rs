//! Scale-out on one machine: 1, 2 and 4 `onad worker` processes on an 8-partition topic of rdkafka's
//! mock cluster (hosted by this process), records/s for the whole group, and the pause one rebalance
//! costs (a worker joining a group that is busy).
//!
//! ```text
//! cargo build --release -p onad-cli && cargo run --release -p onad-worker --example scale_out -- \
//!     target/release/onad [MESSAGES] [MODEL] [STRATEGY] [--join-only]
//! ```
//!
//! STRATEGY is the workers' `partition.assignment.strategy` (librdkafka's eager default when left out;
//! `cooperative-sticky` for the cooperative protocol); `--join-only` measures the rebalance alone.
//!
//! Throughput is read from each worker's Prometheus endpoint (`onad_worker_records_out_total`, sampled every
//! 50 ms): from the first row out to the last, so joining the group and the idle exit are not counted.
//! The pause is the longest stretch during which no worker sent a row, around the join.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const PARTITIONS: i32 = 8;
const KEYS: u64 = 1000;

fn produce(brokers: &str, topic: &str, n: u64) {
    let producer: BaseProducer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "20").create().unwrap();
    for i in 0..n {
        let key = format!("k{}", i % KEYS);
        let t = i as f64;
        let value = format!("{{\"a\":{},\"b\":{},\"c\":{}}}", (t * 0.1).sin(), (t * 0.07).cos(), (i % 13) as f64);
        let partition = ((i % KEYS) % PARTITIONS as u64) as i32;
        while let Err((e, _)) = producer.send(BaseRecord::to(topic).key(&key).partition(partition).payload(&value)) {
            assert!(format!("{e}").contains("Queue full"), "{e}");
            producer.poll(Duration::from_millis(5));
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc {
    child: Child,
    port: u16,
}

/// How the workers run: the binary, the model, the assignment strategy (None: the worker's default).
struct Setup {
    onad: std::path::PathBuf,
    model: String,
    strategy: Option<String>,
}

fn spawn(setup: &Setup, brokers: &str, topic: &str, group: &str, store: &Path, idle_ms: u64) -> Proc {
    let (onad, model) = (&setup.onad, setup.model.as_str());
    let port = free_port();
    let out = store.with_extension(format!("{port}.jsonl"));
    let child = Command::new(onad)
        .args(["worker", "--brokers", brokers, "--topic", topic, "--group", group, "--per-key", "--model", model])
        .arg("--store")
        .arg(store)
        .arg("--output")
        .arg(out)
        .args(["--metrics-port", &port.to_string(), "--exit-when-idle-ms", &idle_ms.to_string()])
        .args(["--kafka-setting", "session.timeout.ms=6000"])
        .args(
            setup
                .strategy
                .iter()
                .flat_map(|s| ["--kafka-setting".to_owned(), format!("partition.assignment.strategy={s}")]),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the onad binary runs");
    Proc { child, port }
}

/// A counter or gauge of a worker's endpoint (0 until it answers).
fn metric(port: u16, name: &str) -> u64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the workers own every partition between them and no rebalance happened for 2 s.
fn settle(procs: &[Proc]) -> Duration {
    let started = Instant::now();
    let mut stable_since = Instant::now();
    let mut last = (0, 0);
    loop {
        let owned: u64 = procs.iter().map(|p| metric(p.port, "onad_worker_partitions")).sum();
        let rebalances: u64 = procs.iter().map(|p| metric(p.port, "onad_worker_rebalances_total")).sum();
        if (owned, rebalances) != last {
            last = (owned, rebalances);
            stable_since = Instant::now();
        }
        let everyone = procs.iter().all(|p| metric(p.port, "onad_worker_partitions") > 0);
        if owned == PARTITIONS as u64 && everyone && stable_since.elapsed() >= Duration::from_secs(2) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the group did not settle");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Samples the group's total rows out every 50 ms until it reaches `n`: (time, total) pairs. `on_tick`
/// may add workers.
fn sample(procs: &mut Vec<Proc>, n: u64, mut on_tick: impl FnMut(u64, &mut Vec<Proc>)) -> Vec<(Instant, u64)> {
    let mut series = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let total: u64 = procs.iter().map(|p| metric(p.port, "onad_worker_records_out_total")).sum();
        series.push((Instant::now(), total));
        on_tick(total, procs);
        assert!(Instant::now() < deadline, "only {total} of {n} rows out after 600 s");
        if total >= n {
            return series;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(procs: Vec<Proc>) {
    for p in &procs {
        let _ = Command::new("kill").args(["-TERM", &p.child.id().to_string()]).status();
    }
    for mut p in procs {
        let _ = p.child.wait();
    }
}

fn rate(series: &[(Instant, u64)], n: u64) -> f64 {
    let first = series.iter().find(|s| s.1 > 0).map(|s| s.0).unwrap();
    let last = series.iter().find(|s| s.1 >= n).map(|s| s.0).unwrap();
    n as f64 / (last - first).as_secs_f64()
}

fn main() {
    let all: Vec<String> = std::env::args().collect();
    let join_only = all.iter().any(|a| a == "--join-only");
    let args: Vec<&String> = all.iter().filter(|a| *a != "--join-only").collect();
    let usage = "usage: scale_out ONAD_BINARY [MESSAGES] [MODEL] [STRATEGY] [--join-only]";
    let onad = Path::new(args.get(1).expect(usage)).to_owned();
    let n: u64 = args.get(2).map_or(400_000, |s| s.parse().unwrap());
    let model = args.get(3).map_or("rs_hash", |s| s.as_str()).to_owned();
    let setup = Setup { onad, model: model.clone(), strategy: args.get(4).map(|s| s.to_string()) };
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    println!("{n} messages per run ({KEYS} keys, {PARTITIONS} partitions, 3 features), model {model}, per-key");
    println!("| workers | settle s | records/s (group) | per worker |\n|---:|---:|---:|---:|");
    for workers in if join_only { &[][..] } else { &[1, 2, 4][..] } {
        let workers = *workers;
        // Workers first, on an empty topic; rows once the group has settled.
        let topic = format!("events-{workers}");
        cluster.create_topic(&topic, PARTITIONS, 1).unwrap();
        let store = dir.path().join(&topic);
        let mut procs: Vec<Proc> =
            (0..workers).map(|_| spawn(&setup, &brokers, &topic, &topic, &store, 600_000)).collect();
        let settled = settle(&procs);
        produce(&brokers, &topic, n);
        let series = sample(&mut procs, n, |_, _| {});
        let r = rate(&series, n);
        println!("| {workers} | {:.1} | {:.0} | {:.0} |", settled.as_secs_f64(), r, r / workers as f64);
        stop(procs);
    }
    // A rebalance under load: two workers busy, a third joins at a third of the stream.
    cluster.create_topic("events-join", PARTITIONS, 1).unwrap();
    let store = dir.path().join("join");
    let mut procs: Vec<Proc> =
        (0..2).map(|_| spawn(&setup, &brokers, "events-join", "join", &store, 600_000)).collect();
    settle(&procs);
    produce(&brokers, "events-join", n);
    let mut joined = None;
    let series = sample(&mut procs, n, |total, procs| {
        if joined.is_none() && total >= n / 3 {
            procs.push(spawn(&setup, &brokers, "events-join", "join", &store, 600_000));
            joined = Some(Instant::now());
        }
    });
    let joined = joined.expect("the third worker joined");
    // The longest stretch without progress after the join.
    let mut pause = Duration::ZERO;
    let mut last_change = joined;
    let mut last_total = series.iter().rev().find(|s| s.0 <= joined).map_or(0, |s| s.1);
    for &(t, total) in series.iter().filter(|s| s.0 > joined) {
        if total > last_total {
            pause = pause.max(t - last_change);
            last_change = t;
            last_total = total;
        }
    }
    println!(
        "\nrebalance ({}): a third worker joining two busy ones stopped the group for {:.2} s at most (rows \
         out sampled every 50 ms); the run went at {:.0} records/s",
        setup.strategy.as_deref().unwrap_or("librdkafka's default, eager"),
        pause.as_secs_f64(),
        rate(&series, n)
    );
    stop(procs);
}
