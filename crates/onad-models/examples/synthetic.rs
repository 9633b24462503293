//! Writes the benchmark stream as CSV (`f0..f9,label`) so other tools (the Python baselines) can read the
//! very same rows: `cargo run -p onad-models --example synthetic -- OUT.csv [ROWS] [SEED]`.

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: synthetic OUT.csv [ROWS] [SEED]");
        std::process::exit(2);
    };
    let rows = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(100_000);
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(42);
    let stream = onad_models::synthetic::drifting_gaussian(rows, 10, 0.01, seed);
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let header: Vec<String> = (0..stream.features).map(|j| format!("f{j}")).collect();
    writeln!(out, "{},label", header.join(","))?;
    for i in 0..stream.rows() {
        for v in stream.row(i) {
            write!(out, "{v},")?;
        }
        writeln!(out, "{}", stream.labels[i])?;
    }
    out.flush()
}
