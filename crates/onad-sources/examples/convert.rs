//! Converts a CSV or Parquet file to Parquet (f64 columns, label last, Snappy): `cargo run -p onad-sources
//! --example convert -- INPUT OUTPUT [LABEL_COLUMN]`. `cargo xtask datasets build` uses it to make the
//! shipped data sets.

use std::path::Path;
use std::process::ExitCode;

use onad_sources::{LabelColumn, ParquetWriter, SourceOptions, open};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: convert INPUT OUTPUT [LABEL_COLUMN]");
        return ExitCode::from(2);
    }
    let label = args.get(2).cloned().unwrap_or_else(|| "label".into());
    match convert(Path::new(&args[0]), Path::new(&args[1]), &label) {
        Ok(rows) => {
            eprintln!("wrote {rows} rows to {}", args[1]);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn convert(input: &Path, output: &Path, label: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let options = SourceOptions {
        label: LabelColumn::Named(label.to_owned()),
        bad_rows: onad_core::BadRowPolicy::Fail,
        batch_size: 16_384,
        ..SourceOptions::default()
    };
    let source = open(input, options)?;
    let mut writer = ParquetWriter::create(output, source.schema(), Some(label))?;
    let mut rows = 0;
    for batch in source {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        writer.write(&batch)?;
    }
    writer.finish()?;
    Ok(rows)
}
