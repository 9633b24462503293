//! Read throughput of the file connectors on a 1M-row, 10-feature file (plus a label column): rows/s and
//! MB/s into dense batches. The files are generated once into a temp directory.
//!
//! When `ONAD_PYTHON` names a Python with onad 0.3.0, pandas and pyarrow installed (see `scripts/README.md`),
//! the Parquet measurement is followed by Python onad's `ParquetStreamer` on the same file
//! (`scripts/bench/python_parquet_streamer.py`) and the ratio against a Rust read of that file. This runs
//! only in bench mode (not under `cargo test --benches`), whatever the criterion filter; a Python failure
//! is printed, it does not fail the bench.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use onad_core::Source;
use onad_sources::{CsvOptions, CsvSource, JsonlSource, ParquetSource, ParquetWriter, SourceOptions};

const ROWS: usize = 1_000_000;
const FEATURES: usize = 10;

fn value(i: usize, j: usize) -> f64 {
    ((i * 31 + j * 17) % 1000) as f64 / 8.0 - 40.0
}

fn write_files(dir: &Path) {
    let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("d.csv")).unwrap());
    let mut jsonl = std::io::BufWriter::new(std::fs::File::create(dir.join("d.jsonl")).unwrap());
    let names: Vec<String> = (0..FEATURES).map(|j| format!("f{j}")).collect();
    writeln!(csv, "{},label", names.join(",")).unwrap();
    for i in 0..ROWS {
        let row: Vec<String> = (0..FEATURES).map(|j| value(i, j).to_string()).collect();
        writeln!(csv, "{},{}", row.join(","), i % 100 == 0).unwrap();
        let fields: Vec<String> = names.iter().zip(&row).map(|(n, v)| format!("\"{n}\": {v}")).collect();
        writeln!(jsonl, "{{{}, \"label\": {}}}", fields.join(", "), u8::from(i % 100 == 0)).unwrap();
    }
    csv.flush().unwrap();
    jsonl.flush().unwrap();
    // Parquet from the CSV, through the project's own writer.
    let mut source = CsvSource::open(dir.join("d.csv"), CsvOptions::default()).unwrap();
    let mut w = ParquetWriter::create(dir.join("d.parquet"), source.schema(), Some("label")).unwrap();
    for b in &mut source {
        w.write(&b.unwrap()).unwrap();
    }
    w.finish().unwrap();
}

fn drain(source: &mut dyn Source) -> usize {
    let mut n = 0;
    for b in source {
        n += b.unwrap().num_rows();
    }
    assert_eq!(n, ROWS);
    n
}

/// Rust rows/s on `path`: median of three timed full reads (open included, as in the criterion bench).
fn rust_parquet_rows_per_s(path: &Path) -> f64 {
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let n = drain(&mut ParquetSource::open(path, SourceOptions::default()).unwrap());
            n as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[1]
}

/// Python onad's `ParquetStreamer` on the same file, side by side with the Rust reader. Prints, never panics.
fn python_parquet(py: &Path, parquet: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/python_parquet_streamer.py");
    let rust = rust_parquet_rows_per_s(parquet);
    eprintln!("rust onad ParquetSource: {rust:.0} rows/s (median of 3 timed full reads, outside criterion)");
    eprintln!("running {} {} {} ...", py.display(), script.display(), parquet.display());
    let out = match Command::new(py).arg(&script).arg(parquet).output() {
        Ok(out) => out,
        Err(e) => return eprintln!("python onad ParquetStreamer: not run: cannot start {}: {e}", py.display()),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The last lines only: tqdm's progress bar goes to stderr too.
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return eprintln!("python onad ParquetStreamer: failed ({}):\n{}", out.status, tail.join("\n"));
    }
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&out.stdout);
    let Some(v) = parsed.ok().filter(|v| v["rows_per_s"].as_f64().is_some()) else {
        return eprintln!(
            "python onad ParquetStreamer: no rows_per_s in its output: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    };
    let rate = v["rows_per_s"].as_f64().unwrap_or_default();
    println!(
        "python onad ParquetStreamer: {rate:.0} rows/s (ratio against the Rust Parquet median: {:.1}x)",
        rust / rate
    );
    eprintln!(
        "  python: {} of {} rows in {:.1} s{}; file {} bytes",
        v["rows"],
        v["file_rows"],
        v["seconds"].as_f64().unwrap_or_default(),
        if v["complete"] == serde_json::Value::Bool(true) { "" } else { " (stopped at the time budget)" },
        v["file_bytes"],
    );
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path());
    let mut group = c.benchmark_group("read_1m_x10");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    let csv = dir.path().join("d.csv");
    let parquet = dir.path().join("d.parquet");
    let jsonl = dir.path().join("d.jsonl");
    for (name, path) in [("csv", &csv), ("parquet", &parquet), ("jsonl", &jsonl)] {
        eprintln!("{name}: {:.1} MB", std::fs::metadata(path).unwrap().len() as f64 / 1e6);
    }
    group.bench_function("csv", |b| b.iter(|| drain(&mut CsvSource::open(&csv, CsvOptions::default()).unwrap())));
    group.bench_function("parquet", |b| {
        b.iter(|| drain(&mut ParquetSource::open(&parquet, SourceOptions::default()).unwrap()))
    });
    if let Some(py) = std::env::var_os("ONAD_PYTHON")
        && std::env::args().any(|a| a == "--bench")
    {
        python_parquet(Path::new(&py), &parquet);
    }
    group.bench_function("jsonl", |b| b.iter(|| drain(&mut JsonlSource::open(&jsonl, Default::default()).unwrap())));
    #[cfg(feature = "sqlite")]
    {
        let db = dir.path().join("d.db");
        write_sqlite(&csv, &db);
        eprintln!("sqlite: {:.1} MB", std::fs::metadata(&db).unwrap().len() as f64 / 1e6);
        group.bench_function("sqlite", |b| {
            b.iter(|| {
                drain(&mut onad_sources::SqliteSource::open(&db, "SELECT * FROM t", SourceOptions::default()).unwrap())
            })
        });
    }
    #[cfg(feature = "kafka")]
    kafka(&mut group, &jsonl);
    group.finish();
}

/// The CSV's rows as a SQLite table `t` (all REAL columns).
#[cfg(feature = "sqlite")]
fn write_sqlite(csv: &Path, db: &Path) {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let conn = rusqlite::Connection::open(db).unwrap();
    let cols: Vec<String> = header.iter().map(|h| format!("{h} REAL")).collect();
    conn.execute(&format!("CREATE TABLE t ({})", cols.join(", ")), []).unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let marks = vec!["?"; header.len()].join(", ");
        let mut stmt = tx.prepare(&format!("INSERT INTO t VALUES ({marks})")).unwrap();
        for line in lines {
            let values: Vec<f64> = line
                .split(',')
                .map(|v| v.parse::<f64>().unwrap_or_else(|_| f64::from(u8::from(v == "true"))))
                .collect();
            stmt.execute(rusqlite::params_from_iter(values)).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// The first `KAFKA_ROWS` JSON Lines rows as messages of a one-partition topic on rdkafka's mock cluster (in
/// this process), read by one consumer that seeks back to offset 0 for each iteration (so the group join,
/// seconds by the protocol, happens once, before timing). The mock keeps at most 5 MB per partition (older
/// messages are dropped), hence 30,000 rows rather than a million; rows/s is what compares.
#[cfg(feature = "kafka")]
fn kafka(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, jsonl: &Path) {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::time::Duration;
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    cluster.create_topic("bench", 1, 1).unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("linger.ms", "5")
        .create()
        .unwrap();
    const KAFKA_ROWS: usize = 30_000;
    let text = std::fs::read_to_string(jsonl).unwrap();
    let mut bytes = 0;
    for line in text.lines().take(KAFKA_ROWS) {
        bytes += line.len();
        let mut record = Some(BaseRecord::<(), str>::to("bench").partition(0).payload(line));
        while let Some(r) = record.take() {
            if let Err((_, r)) = producer.send(r) {
                producer.poll(Duration::from_millis(5));
                record = Some(r);
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    eprintln!("kafka: {KAFKA_ROWS} messages, {:.1} MB of message values", bytes as f64 / 1e6);
    group.throughput(Throughput::Elements(KAFKA_ROWS as u64));
    // fetch.wait.max.ms: a fetch request in flight when seeking back is answered only after this wait
    // (500 ms by default), which would otherwise be timed once per iteration.
    let url =
        format!("kafka://{}/bench?group=bench&max_rows={KAFKA_ROWS}&fetch.wait.max.ms=5", cluster.bootstrap_servers());
    let mut src = onad_sources::KafkaSource::open(&url, SourceOptions::default()).unwrap();
    let mut start = std::collections::BTreeMap::new();
    start.insert(("bench".to_string(), 0), 0);
    let start = onad_core::Position::Offsets { next: start, delivered: 0 };
    group.bench_function("kafka_mock", |b| {
        b.iter(|| {
            src.seek(&start).unwrap();
            let rows: usize = src.by_ref().map(|b| b.unwrap().num_rows()).sum();
            assert_eq!(rows, KAFKA_ROWS);
        })
    });
}

criterion_group!(benches, read);
criterion_main!(benches);
