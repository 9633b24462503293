//! Read throughput of the file connectors on a 1M-row, 10-feature file (plus a label column): rows/s and
//! MB/s into dense batches. The files are generated once into a temp directory.

use std::io::Write;
use std::path::Path;

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
    group.bench_function("jsonl", |b| b.iter(|| drain(&mut JsonlSource::open(&jsonl, Default::default()).unwrap())));
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
