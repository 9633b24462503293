//! The streaming guide's thresholds, evaluation, memory monitoring and parallel workers: an adaptive
//! (mean + k std) and a streaming-quantile threshold, prequential windowed ROC-AUC, progress lines with
//! resident memory, and per-key models over 1 and 4 worker threads giving the same output.
//!
//! `cargo run -p onad --features parquet --example evaluation`

use std::error::Error;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use onad::models::{AnyDetectorParams, MStreamParams, MovingAverageParams};
use onad::pipeline::job::{Evaluation, Keyed, ReportEvery};
use onad::prelude::*;

fn shuttle() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/shuttle.parquet")
}

fn mstream() -> PipelineSpec {
    PipelineSpec::detector(AnyDetectorParams::MStream(MStreamParams::default()))
}

fn job(spec: PipelineSpec, input: &std::path::Path) -> Result<Job<PipelineSpec, AnyPipeline>, Box<dyn Error>> {
    let build = {
        let spec = spec.clone();
        move |schema: &SchemaRef| spec.build(schema).map_err(Into::into)
    };
    Ok(Job::new(open(input, SourceOptions::default())?, spec.clone(), spec.name(), build))
}

fn main() -> Result<(), Box<dyn Error>> {
    // Two thresholds over the same scores; the windowed evaluation of the guide on top.
    for threshold in ["adaptive:100:2", "quantile:0.99:1000"] {
        let report = job(mstream(), &shuttle())?
            .threshold(threshold.parse()?)
            .evaluation(Evaluation { overall: true, window: Some(5_000) })
            .prepare()?
            .run()?;
        let windows = report.prequential.as_ref().map_or(0, |p| p.windows().len());
        println!(
            "{threshold}: {} of {} rows flagged, ROC-AUC {:.3}, {windows} windows of 5,000 labelled rows (mean ROC-AUC {:.3})",
            report.anomalies,
            report.rows,
            report.roc_auc.unwrap_or(f64::NAN),
            report.prequential.as_ref().and_then(|p| p.mean_roc_auc()).unwrap_or(f64::NAN)
        );
        assert_eq!(windows, 9, "49,097 labelled rows");
    }

    // Memory monitoring: a line every 20,000 rows with resident memory and its growth.
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    job(mstream(), &shuttle())?
        .monitor(ReportEvery::new(20_000, move |line: &str| sink.lock().unwrap().push(line.to_owned())))
        .prepare()?
        .run()?;
    for line in lines.lock().unwrap().iter() {
        println!("{line}");
    }
    assert_eq!(lines.lock().unwrap().len(), 2);

    // Parallel workers: one model per entity, over 1 and 4 threads; the outputs are the same bytes.
    let dir = std::env::temp_dir().join(format!("onad-example-evaluation-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let input = dir.join("cards.csv");
    let mut text = String::from("card,amount,label\n");
    for i in 0..20_000u64 {
        let card = i * 2_654_435_761 % 97;
        let fraud = i % 1_000 == 500;
        let amount = 10.0 + card as f64 + (i % 13) as f64 + if fraud { 900.0 } else { 0.0 };
        text.push_str(&format!("{card},{amount},{}\n", u8::from(fraud)));
    }
    std::fs::write(&input, text)?;
    let per_card = PipelineSpec::detector(AnyDetectorParams::MovingAverage(MovingAverageParams {
        window_size: Some(20),
        ..Default::default()
    }));
    let mut outputs = Vec::new();
    for workers in [1, 4] {
        let out = dir.join(format!("scores-{workers}.csv"));
        let report = job(per_card.clone(), &input)?
            .keyed(Keyed { workers, ..Keyed::by("card") })
            .sink(CsvSink::new(Target::File(out.clone())))
            .prepare()?
            .run()?;
        println!(
            "{workers} worker(s): {} rows, {} card models, ROC-AUC {:.3}",
            report.rows,
            report.keyed.as_ref().map_or(0, |k| k.models_created),
            report.roc_auc.unwrap_or(f64::NAN)
        );
        outputs.push(std::fs::read(&out)?);
    }
    assert_eq!(outputs[0], outputs[1], "1 and 4 workers wrote different output");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
