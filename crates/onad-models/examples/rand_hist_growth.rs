//! Throughput of stream_random_histogram_forest by `n_estimators` and `window_size` (score + learn per
//! row, the seeded synthetic stream of the benches: 10 features), in thread CPU time, for
//! `docs/benchmarks.md`:
//!
//! `cargo run --release -p onad-models --example rand_hist_growth`
//!
//! Prints `n_estimators,window_size,rows_per_sec` lines; each configuration first learns 2 window_size
//! rows untimed, so the counts decay during the timed rows as in a long stream.

use std::time::Instant;

use onad_core::{Detector, DetectorParams, Schema};
use onad_models::StreamRandomHistogramForestParams;
use onad_models::synthetic::drifting_gaussian;

/// Seconds this thread has run on a CPU (Linux `schedstat`), so that other load on the machine does not
/// count; wall time where that file is missing.
fn cpu_seconds(origin: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or_else(|| origin.elapsed().as_nanos() as f64)
        * 1e-9
}

fn main() {
    let rows = 20_000;
    let s = drifting_gaussian(rows + 8192, 10, 0.01, 42);
    let schema = Schema::numbered("f", 10);
    println!("n_estimators,window_size,rows_per_sec");
    for (t, w) in [(1, 256), (5, 256), (25, 256), (100, 256), (25, 64), (25, 1024), (25, 4096)] {
        let params =
            StreamRandomHistogramForestParams { n_estimators: t, window_size: w, seed: Some(42), ..Default::default() };
        let mut m = params.build(&schema).unwrap();
        for i in 0..2 * w {
            m.learn_one(s.row(i));
        }
        let origin = Instant::now();
        let start = cpu_seconds(origin);
        let mut acc = 0.0;
        for i in 2 * w..2 * w + rows {
            acc += m.score_learn_one(s.row(i));
        }
        let dt = cpu_seconds(origin) - start;
        assert!(acc.is_finite());
        println!("{t},{w},{:.0}", rows as f64 / dt);
    }
}
