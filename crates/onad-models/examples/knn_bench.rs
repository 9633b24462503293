//! KNN measurements behind `docs/benchmarks.md` (the Python side is `scripts/bench/knn_onad.py`):
//!
//! - `knn_bench scaling`: score + learn rows/s on the seeded benchmark stream (the rows the `synthetic`
//!   example writes) for window sizes 256, 1024, 4096 and 2 or 10 features (the first columns), k = 55,
//!   the window filled before timing, CPU time of the thread; one JSON line per configuration.
//! - `knn_bench shuttle CSV OUT`: scores on SHUTTLE (`f1..f9,label`) written to OUT as
//!   `protocol,row,label,score`: `prequential` (score then learn over every row, the registry's example
//!   parameters) and `onad` (onad's SHUTTLE test: learn the first 1,000 normal rows, then learn then score
//!   the next 2,000, with k = 55, window_size = 250, warm_up = 50).
//!
//! Run with `cargo run --release -p onad-models --example knn_bench -- ...`.

use std::io::{BufWriter, Write};
use std::time::Instant;

use onad_core::{Detector, DetectorParams, Schema};
use onad_models::{Describe, KNNParams};

/// Nanoseconds this thread has run on a CPU (Linux `schedstat`), so that other load on the machine does
/// not count; wall time where that file is missing.
fn cpu_ns(start: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| start.elapsed().as_nanos() as f64)
}

fn scaling() {
    let stream = onad_models::synthetic::drifting_gaussian(100_000, 10, 0.01, 42);
    for d in [2usize, 10] {
        let rows: Vec<Vec<f64>> = (0..stream.rows()).map(|i| stream.row(i)[..d].to_vec()).collect();
        for w in [256usize, 1024, 4096] {
            let params = KNNParams { k: Some(55), window_size: Some(w), warm_up: Some(55), ..Default::default() };
            let mut best = 0.0f64;
            for _ in 0..3 {
                let mut m = params.build(&Schema::numbered("f", d)).unwrap();
                rows[..w].iter().for_each(|r| m.learn_one(r));
                let timed = &rows[w..];
                let origin = Instant::now();
                let start = cpu_ns(origin);
                let mut acc = 0.0;
                for r in timed {
                    acc += m.score_learn_one(r);
                }
                let rate = timed.len() as f64 / ((cpu_ns(origin) - start) * 1e-9);
                assert!(acc.is_finite());
                best = best.max(rate);
            }
            println!(r#"{{"features": {d}, "window_size": {w}, "k": 55, "rows_per_sec": {best:.0}}}"#);
        }
    }
}

fn shuttle(input: &str, output: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(input)?;
    let mut lines = text.lines();
    let d = lines.next().expect("header").split(',').count() - 1;
    let rows: Vec<Vec<f64>> =
        lines.filter(|l| !l.is_empty()).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    let schema = Schema::numbered("f", d);
    let mut out = BufWriter::new(std::fs::File::create(output)?);
    writeln!(out, "protocol,row,label,score")?;

    let mut m = KNNParams::example().build(&schema).unwrap();
    for (i, r) in rows.iter().enumerate() {
        writeln!(out, "prequential,{i},{},{}", r[d], m.score_learn_one(&r[..d]))?;
    }

    let params = KNNParams { k: Some(55), window_size: Some(250), warm_up: Some(50), ..Default::default() };
    let mut m = params.build(&schema).unwrap();
    let mut normal = 0;
    let mut next = 0;
    while normal < 1000 {
        if rows[next][d] == 0.0 {
            m.learn_one(&rows[next][..d]);
            normal += 1;
        }
        next += 1;
    }
    for (i, r) in rows.iter().enumerate().skip(next).take(2000) {
        writeln!(out, "onad,{i},{},{}", r[d], m.learn_score_one(&r[..d]))?;
    }
    out.flush()
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["scaling"] => {
            scaling();
            Ok(())
        }
        ["shuttle", input, output] => shuttle(input, output),
        _ => {
            eprintln!("usage: knn_bench scaling | knn_bench shuttle SHUTTLE.csv OUT.csv");
            std::process::exit(2);
        }
    }
}
