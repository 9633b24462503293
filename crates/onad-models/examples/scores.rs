//! Scores a labelled CSV (a header, numeric features, the 0/1 label last) with one registered detector and
//! prints one score per line, so a script can compute metrics for it and for a Python model alike:
//!
//! `cargo run --release -p onad-models --example scores -- DATA.csv PROTOCOL 'MODEL_JSON'`
//!
//! MODEL_JSON is a detector's parameters as in config files, e.g. `{"asd_isolation_forest": {"seed": 1}}`,
//! or a model tree in the JSON form of config files (`PipelineSpec`), e.g. a scaler in front:
//! `{"transformers": [{"min_max_scaler": {}}], "detector": {"half_space_trees": {"seed": 1}}}`.
//! PROTOCOL is
//! - `prequential`: every row, `score_one` then `learn_one`; prints `score` per row, and on standard error
//!   `loop_seconds S cpu_seconds C rows N`: the loop alone (not the CSV parsing), S wall time, C the
//!   thread's CPU time (Linux `/proc/thread-self/schedstat`; S where that is unavailable), which a shared
//!   machine disturbs less, for comparisons with peers that time their own loops; then `peak_rss_kib K`, the
//!   process's peak resident memory (Linux `VmHWM`), when known;
//! - `onad-test`: onad 0.3.0's SHUTTLE integration tests: learn the first 1,000 rows labelled 0 (other rows
//!   met on the way are passed over), then for the next 2,000 rows `learn_one` then `score_one`; prints
//!   `score,label` per scored row.

use std::io::{BufWriter, Write};
use std::time::Instant;

use onad_core::{Detector, Schema};
use onad_models::{AnyDetectorParams, PipelineSpec};

/// The keys that make MODEL_JSON a model tree rather than one detector's parameters.
const TREE_KEYS: &[&str] = &["transformers", "detector", "protect", "calibrate", "ensemble", "drift"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, protocol, model] = args.as_slice() else {
        eprintln!("usage: scores DATA.csv prequential|onad-test MODEL_JSON");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split(',').collect();
    let d = header.len() - 1;
    let schema = Schema::shared(header[..d].iter().map(|s| s.to_string()))?;
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let values: Vec<f64> = line.split(',').map(|v| v.trim().parse().unwrap_or(f64::NAN)).collect();
        rows.push(values);
    }
    let value: serde_json::Value = serde_json::from_str(model)?;
    let is_tree = value.as_object().is_some_and(|o| o.keys().any(|k| TREE_KEYS.contains(&k.as_str())));
    if is_tree {
        let spec: PipelineSpec = serde_json::from_value(value)?;
        run(spec.build(&schema)?, &rows, d, protocol)
    } else {
        let params: AnyDetectorParams = serde_json::from_value(value)?;
        run(params.build(&schema)?, &rows, d, protocol)
    }
}

/// Runs `protocol` with the built model `m` over `rows` (`d` features, the label last).
fn run(mut m: impl Detector, rows: &[Vec<f64>], d: usize, protocol: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    match protocol {
        "prequential" => {
            let mut scores = Vec::with_capacity(rows.len());
            let (start, cpu_start) = (Instant::now(), cpu_seconds());
            for r in rows {
                scores.push(m.score_learn_one(&r[..d]));
            }
            let seconds = start.elapsed().as_secs_f64();
            let cpu = match (cpu_start, cpu_seconds()) {
                (Some(a), Some(b)) => b - a,
                _ => seconds,
            };
            for s in scores {
                writeln!(out, "{s}")?;
            }
            // The peak resident memory of the whole process (rows in memory included): a benchmark subtracts
            // the same figure of `null_model` on the same file to get the model's own.
            let peak = peak_resident_kib().map_or(String::new(), |k| format!(" peak_rss_kib {k}"));
            eprintln!("loop_seconds {seconds} cpu_seconds {cpu} rows {}{peak}", rows.len());
        }
        "onad-test" => {
            let (mut warm, mut tested) = (0, 0);
            for r in rows {
                if warm < 1_000 {
                    if r[d] == 0.0 {
                        m.learn_one(&r[..d]);
                        warm += 1;
                    }
                    continue;
                }
                if tested == 2_000 {
                    break;
                }
                writeln!(out, "{},{}", m.learn_score_one(&r[..d]), r[d])?;
                tested += 1;
            }
        }
        other => return Err(format!("unknown protocol {other:?}").into()),
    }
    out.flush()?;
    Ok(())
}

/// The process's peak resident set size in KiB (`VmHWM` of `/proc/self/status`; Linux only).
fn peak_resident_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// This thread's time on a CPU so far, from the first field (nanoseconds) of its schedstat.
fn cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}
