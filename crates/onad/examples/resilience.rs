//! The streaming guide's error handling and checkpointing: bad rows skipped and counted, kept as missing
//! rows, or stopping the run with the file, row and column; a cap on the share of bad rows; and a job
//! stopped mid-stream and resumed from its checkpoint writing the same bytes as one that ran through.
//!
//! `cargo run -p onad --example resilience`

use std::error::Error;
use std::path::Path;

use onad::core::BadRowPolicy;
use onad::models::{AnyDetectorParams, HalfSpaceTreesParams};
use onad::pipeline::job::{CheckpointPolicy, Monitor, Status};
use onad::prelude::*;

/// Stops a run once it has scored `0` rows (a stand-in for SIGTERM or a memory limit).
#[derive(Debug)]
struct StopAt(u64);

impl Monitor for StopAt {
    fn check(&mut self, status: &Status<'_>) -> Option<String> {
        (status.rows >= self.0).then(|| format!("stopped at {} rows", status.rows))
    }
}

fn job(input: &Path, policy: BadRowPolicy) -> Result<Job<PipelineSpec, AnyPipeline>, Box<dyn Error>> {
    let spec = PipelineSpec::detector(AnyDetectorParams::HalfSpaceTrees(HalfSpaceTreesParams {
        seed: Some(1),
        ..Default::default()
    }));
    let build = {
        let spec = spec.clone();
        move |schema: &SchemaRef| spec.build(schema).map_err(Into::into)
    };
    let options = SourceOptions { bad_rows: policy, batch_size: 500, ..Default::default() };
    Ok(Job::new(open(input, options)?, spec.clone(), spec.name(), build).bad_rows(policy))
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("onad-example-resilience-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let input = dir.join("flows.csv");
    let mut text = String::from("bytes,duration,label\n");
    for i in 0..5_000 {
        match i {
            1200 => text.push_str("12,oops,0\n"), // text in a number column
            3100 => text.push_str("7\n"),         // a field missing
            _ => text.push_str(&format!("{},{},{}\n", 500 + i % 37, 1 + i % 5, u8::from(i % 400 == 9))),
        }
    }
    std::fs::write(&input, text)?;

    // Skip (the default): counted per reason.
    let report = job(&input, BadRowPolicy::Skip)?.prepare()?.run()?;
    assert_eq!((report.rows, report.skipped.get("non_numeric"), report.skipped.get("field_count")), (4_998, 1, 1));
    // Missing: the rows keep their places as rows of NaN, which every model reads as missing.
    let report = job(&input, BadRowPolicy::Missing)?.prepare()?.run()?;
    assert_eq!((report.rows, report.skipped.total()), (5_000, 2));
    // Fail: the first bad row stops the run, named.
    let err = job(&input, BadRowPolicy::Fail)?.prepare()?.run().unwrap_err().to_string();
    assert!(err.contains("row 1200, column 'duration': cannot read 'oops' as a number"), "{err}");
    // A cap on the share of bad rows (the guide's error threshold): 2 in 5,000 passes 0.1 %, not 0.01 %.
    assert!(job(&input, BadRowPolicy::Skip)?.max_error_rate(Some(0.001)).prepare()?.run().is_ok());
    let err = job(&input, BadRowPolicy::Skip)?.max_error_rate(Some(0.0001)).prepare()?.run().unwrap_err();
    println!("error-rate cap: {err}");

    // A run stopped at 2,000 rows and resumed writes the bytes of one that ran through.
    let (through, resumed) = (dir.join("through.csv"), dir.join("resumed.csv"));
    job(&input, BadRowPolicy::Skip)?.sink(CsvSink::new(Target::File(through.clone()))).prepare()?.run()?;
    let checkpoints = CheckpointPolicy::new(dir.join("checkpoints")).every_rows(1_000);
    let first = job(&input, BadRowPolicy::Skip)?
        .sink(CsvSink::new(Target::File(resumed.clone())))
        .checkpoints(checkpoints.clone())
        .monitor(StopAt(2_000))
        .prepare()?
        .run()?;
    assert!(first.stop_reason.is_some() && first.rows < 5_000);
    let second = job(&input, BadRowPolicy::Skip)?
        .sink(CsvSink::new(Target::File(resumed.clone())))
        .checkpoints(checkpoints.resume(true))
        .prepare()?
        .run()?;
    assert_eq!(second.rows, 4_998);
    assert_eq!(std::fs::read(&through)?, std::fs::read(&resumed)?, "the resumed output differs");
    println!(
        "stopped after {} rows, resumed for {} more: the output equals the uninterrupted run's, byte for byte",
        first.rows, second.stats.rows
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
