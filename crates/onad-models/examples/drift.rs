//! Runs one registered detector over a one-column CSV (header, then one number per line) and prints, as
//! one JSON line, the rows it flags and its speed, for `scripts/bench/drift_compare.py`:
//!
//! `cargo run --release -p onad-models --example drift -- DATA.csv 'MODEL_JSON' [REPEATS]`
//!
//! A flagged row is one whose prequential score (`score_one` before `learn_one`) is at least 1.0, which
//! for the drift detectors (`adwin`, `kswin`, `page_hinkley`) is exactly a row on which learning signals
//! a change. Speeds are the best of REPEATS (default 3) passes over the stream with a fresh model:
//! `learn_one` alone (what aberrant's `update` does), and `score_one` + `learn_one`.

use std::time::Instant;

use onad_core::{Detector, Schema};
use onad_models::AnyDetectorParams;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, model, repeats) = match args.as_slice() {
        [p, m] => (p, m, 3),
        [p, m, r] => (p, m, r.parse()?),
        _ => {
            eprintln!("usage: drift DATA.csv MODEL_JSON [REPEATS]");
            std::process::exit(2);
        }
    };
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let name = lines.next().ok_or("empty file")?.trim().to_string();
    let xs: Vec<[f64; 1]> =
        lines.filter(|l| !l.is_empty()).map(|l| l.trim().parse().map(|v| [v])).collect::<Result<_, _>>()?;
    let schema = Schema::shared([name])?;
    let params: AnyDetectorParams = serde_json::from_str(model)?;
    let (mut learn_best, mut preq_best) = (f64::INFINITY, f64::INFINITY);
    let mut flags = Vec::new();
    for _ in 0..repeats.max(1) {
        let mut m = params.build(&schema)?;
        let t = Instant::now();
        for x in &xs {
            m.learn_one(x);
        }
        learn_best = learn_best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(&m);
        let mut m = params.build(&schema)?;
        flags.clear();
        let t = Instant::now();
        for (i, x) in xs.iter().enumerate() {
            if m.score_learn_one(x) >= 1.0 {
                flags.push(i);
            }
        }
        preq_best = preq_best.min(t.elapsed().as_secs_f64());
    }
    let n = xs.len() as f64;
    let flags: Vec<String> = flags.iter().map(|i| i.to_string()).collect();
    println!(
        "{{\"flags\": [{}], \"learn_rows_per_s\": {:.0}, \"prequential_rows_per_s\": {:.0}}}",
        flags.join(", "),
        n / learn_best,
        n / preq_best
    );
    Ok(())
}
