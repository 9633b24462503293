//! Writes the seeded edge stream of `onad_models::graph::generator` as CSV (`src,dst,t,label`), so the
//! Python references read the very same edges:
//! `cargo run -p onad-models --example edge_stream -- OUT.csv [ROWS] [SEED]` (100,000 rows, seed 42 by
//! default).

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: edge_stream OUT.csv [ROWS] [SEED]");
        std::process::exit(2);
    };
    let rows = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(100_000);
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(42);
    let stream = onad_models::graph::generator::edge_stream(rows, seed);
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "src,dst,t,label")?;
    for i in 0..stream.len() {
        writeln!(out, "{},{},{},{}", stream.src[i], stream.dst[i], stream.t[i], stream.labels[i])?;
    }
    out.flush()
}
