//! Prequential scores of a labelled CSV (a header, numeric features, the label last) with one registered
//! detector, timing only the score-then-learn loop (not the CSV parsing), for comparisons with peers that
//! time their own loops:
//!
//! `cargo run --release -p onad-models --example timed_scores -- DATA.csv 'MODEL_JSON'`
//!
//! Prints one score per line on standard output and `loop_seconds S cpu_seconds C rows N` on standard
//! error: S is wall time, C the thread's CPU time over the loop (Linux `/proc/thread-self/schedstat`; S
//! where that is unavailable), which a shared machine disturbs less.

use std::io::{BufWriter, Write};
use std::time::Instant;

use onad_core::{Detector, Schema};
use onad_models::AnyDetectorParams;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, model] = args.as_slice() else {
        eprintln!("usage: timed_scores DATA.csv MODEL_JSON");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split(',').collect();
    let d = header.len() - 1;
    let schema = Schema::shared(header[..d].iter().map(|s| s.to_string()))?;
    let mut values = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let row: Vec<f64> = line.split(',').map(|v| v.trim().parse().unwrap_or(f64::NAN)).collect();
        values.extend_from_slice(&row[..d]);
    }
    let params: AnyDetectorParams = serde_json::from_str(model)?;
    let mut m = params.build(&schema)?;
    let n = values.len() / d;
    let mut scores = Vec::with_capacity(n);
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    for r in values.chunks_exact(d) {
        scores.push(m.score_learn_one(r));
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => seconds,
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    for s in scores {
        writeln!(out, "{s}")?;
    }
    out.flush()?;
    eprintln!("loop_seconds {seconds} cpu_seconds {cpu} rows {n}");
    Ok(())
}

/// This thread's time on a CPU so far, from the first field (nanoseconds) of its schedstat.
fn cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}
