//! The streaming guide's basic processing loop in Rust: read a file, score each row before learning it,
//! flag scores above an adaptive threshold, report counts and ROC-AUC.
//!
//! `cargo run -p onad-pipeline --example basic_loop -- [FILE] [FEATURE]` (default: the shipped SHUTTLE
//! Parquet file and its first feature).

use std::error::Error;
use std::path::PathBuf;

use onad_core::DetectorParams;
use onad_models::MovingAverageParams;
use onad_pipeline::metrics::roc_auc;
use onad_pipeline::{Order, RunConfig, WindowedThreshold, run};
use onad_sources::{SourceOptions, open};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/shuttle.parquet"));
    let mut source = open(&path, SourceOptions::default())?;
    let feature = match args.next() {
        Some(f) => f,
        None => source.schema().name(0).ok_or("the input has no features")?.to_owned(),
    };
    let params = MovingAverageParams { window_size: Some(100), key: Some(feature), ..Default::default() };
    let mut model = params.build(source.schema())?;
    let mut threshold = WindowedThreshold::new(100, 2.0)?;
    let (mut scores, mut labels, mut shown) = (Vec::new(), Vec::new(), 0);
    let config = RunConfig { order: Order::ScoreThenLearn, ..Default::default() };
    let stats = run(source.as_mut(), &mut model, &mut threshold, &config, |scored| {
        for ((row, score), flag) in scored.row_ids().iter().zip(scored.scores).zip(scored.flags) {
            if *flag && shown < 5 {
                println!("anomaly at row {row}: score {score:.3}");
                shown += 1;
            }
        }
        scores.extend_from_slice(scored.scores);
        labels.extend_from_slice(scored.batch.labels().unwrap_or(&[]));
        Ok(())
    })?;
    println!("{} rows, {} flagged, {} skipped", stats.rows, stats.anomalies, stats.skipped.total());
    if let Some(auc) = roc_auc(&scores, &labels) {
        println!("ROC-AUC {auc:.4}");
    }
    Ok(())
}
