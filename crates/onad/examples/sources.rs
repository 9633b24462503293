//! The streaming guide's data sources: the same rows as CSV, JSON Lines, Parquet, SQLite and a byte
//! stream (standard input's path), each read with the label named, each giving the same model the same
//! scores. Brokers (Redis, Kafka) are read through the same `Source` trait; their tests start real
//! servers (`crates/onad-sources/tests/{redis,kafka}.rs`).
//!
//! `cargo run -p onad --features full --example sources`

use std::error::Error;

use onad::core::{Batch, Schema};
use onad::models::HalfSpaceTreesParams;
use onad::prelude::*;
use onad::sources::{Format, ParquetWriter};

fn scores(mut source: Box<dyn Source + Send>) -> Result<Vec<f64>, Box<dyn Error>> {
    let mut model = HalfSpaceTreesParams { seed: Some(3), ..Default::default() }.build(source.schema())?;
    let mut out = Vec::new();
    for batch in &mut source {
        model.score_learn_many(&batch?, &mut out);
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("onad-example-sources-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // 2,000 rows of two sensors; every 97th row a fault (label 1).
    let rows: Vec<[f64; 3]> = (0..2000)
        .map(|i| {
            let fault = i % 97 == 50;
            let t = 20.0 + (i % 10) as f64 * 0.1 + if fault { 15.0 } else { 0.0 };
            [t, 1.0 + (i % 7) as f64 * 0.01, f64::from(u8::from(fault))]
        })
        .collect();

    let mut csv = String::from("temperature,pressure,is_fault\n");
    let mut jsonl = String::new();
    for r in &rows {
        csv.push_str(&format!("{},{},{}\n", r[0], r[1], r[2]));
        jsonl.push_str(&format!("{{\"temperature\": {}, \"pressure\": {}, \"is_fault\": {}}}\n", r[0], r[1], r[2]));
    }
    std::fs::write(dir.join("sensors.csv"), &csv)?;
    std::fs::write(dir.join("sensors.jsonl"), &jsonl)?;

    let schema = Schema::shared(["temperature", "pressure"])?;
    let values: Vec<f64> = rows.iter().flat_map(|r| [r[0], r[1]]).collect();
    let labels: Vec<f64> = rows.iter().map(|r| r[2]).collect();
    let mut writer = ParquetWriter::create(dir.join("sensors.parquet"), &schema, Some("is_fault"))?;
    writer.write(&Batch::try_new(schema.clone(), values, Some(labels), (0..rows.len() as u64).collect())?)?;
    writer.finish()?;

    let db = dir.join("sensors.db");
    let conn = rusqlite::Connection::open(&db)?;
    conn.execute_batch("CREATE TABLE readings (temperature REAL, pressure REAL, is_fault INTEGER)")?;
    for r in &rows {
        conn.execute("INSERT INTO readings VALUES (?1, ?2, ?3)", (r[0], r[1], r[2] as i64))?;
    }
    drop(conn);

    let options = || SourceOptions { label: LabelColumn::Named("is_fault".into()), ..Default::default() };
    let from_csv = scores(open(&dir.join("sensors.csv"), options())?)?;
    let inputs: Vec<(&str, Box<dyn Source + Send>)> = vec![
        ("JSON Lines", open(&dir.join("sensors.jsonl"), options())?),
        ("Parquet", open(&dir.join("sensors.parquet"), options())?),
        ("SQLite", open_url(&format!("sqlite://{}?query=SELECT+*+FROM+readings", db.display()), options())?),
        (
            "a byte stream",
            onad::sources::open_reader(
                Box::new(std::io::Cursor::new(csv.into_bytes())),
                "piped",
                Format::Csv,
                options(),
            )?,
        ),
    ];
    for (name, source) in inputs {
        let s = scores(source)?;
        assert_eq!(s.len(), rows.len(), "{name}: every row read");
        assert!(s.iter().zip(&from_csv).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: other scores than CSV's");
        println!("{name}: {} rows, the same scores as from CSV", s.len());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
