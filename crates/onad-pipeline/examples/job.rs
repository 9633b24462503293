//! A checkpointed job from Rust code with two sinks: every score to a CSV file, the alerts to JSON Lines.
//! Run it twice: the second run finds the first one's checkpoint and, with `--resume`, continues it.
//!
//! `cargo run -p onad-pipeline --example job -- [INPUT] [OUT_DIR] [--resume]` (default: the shipped
//! SHUTTLE Parquet file into `target/job-example`).

use std::error::Error;
use std::path::PathBuf;

use onad_core::SchemaRef;
use onad_models::{AnyDetectorParams, MovingAverageParams, PipelineSpec, StandardScalerParams};
use onad_pipeline::job::{CheckpointPolicy, Job, StopOnSignals};
use onad_pipeline::sinks::{AlertsOnly, CsvSink, JsonlSink, Target};
use onad_pipeline::{AnyThreshold, WindowedThreshold};
use onad_sources::{SourceOptions, open};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let resume = args.iter().any(|a| a == "--resume");
    let mut paths = args.iter().filter(|a| !a.starts_with("--"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let input = paths.next().map(PathBuf::from).unwrap_or_else(|| root.join("datasets/shuttle.parquet"));
    let out = paths.next().map(PathBuf::from).unwrap_or_else(|| root.join("target/job-example"));
    std::fs::create_dir_all(&out)?;

    let source = open(&input, SourceOptions::default())?;
    let first = source.schema().name(0).ok_or("the input has no features")?.to_owned();
    // standard_scaler | moving_average on the first feature: the default of `onad run`.
    let spec = PipelineSpec::stages(
        vec![onad_models::AnyTransformerParams::StandardScaler(StandardScalerParams::default())],
        AnyDetectorParams::MovingAverage(MovingAverageParams {
            window_size: Some(100),
            key: Some(first),
            ..Default::default()
        }),
    );
    let build = {
        let spec = spec.clone();
        move |schema: &SchemaRef| spec.build(schema).map_err(Into::into)
    };
    let report = Job::new(source, spec.clone(), spec.name(), build)
        .input_name(input.display().to_string())
        .threshold(AnyThreshold::Windowed(WindowedThreshold::new(1000, 3.0)?))
        .sink(CsvSink::new(Target::File(out.join("scores.csv"))))
        .sink(AlertsOnly::new(JsonlSink::new(Target::File(out.join("alerts.jsonl")))))
        .checkpoints(CheckpointPolicy::new(out.join("checkpoints")).every_rows(10_000).resume(resume))
        .monitor(StopOnSignals::install()?)
        .prepare()?
        .run()?;
    println!(
        "{} rows ({} in this run), {} flagged, ROC-AUC {:?}, {} checkpoints written, output in {}",
        report.rows,
        report.stats.rows,
        report.anomalies,
        report.roc_auc,
        report.checkpoints_written,
        out.display()
    );
    Ok(())
}
