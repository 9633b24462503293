//! Test data shared by the onad-models integration tests: the first 2,000 rows of SHUTTLE.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use onad_core::{Schema, SchemaRef};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Reads a small numeric CSV with a header: (column names, rows).
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().expect("header").split(',').map(str::to_owned).collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap_or_else(|e| panic!("{v}: {e}"))).collect())
        .collect();
    (header, rows)
}

/// SHUTTLE head: features f1..f9 and the labels.
pub fn shuttle() -> (SchemaRef, Vec<Vec<f64>>, Vec<f64>) {
    let (header, rows) = read_csv(&fixture("shuttle_head2000.csv"));
    let d = header.len() - 1;
    let schema = Schema::shared(header[..d].iter().cloned()).unwrap();
    let labels = rows.iter().map(|r| r[d]).collect();
    let features = rows.into_iter().map(|mut r| {
        r.truncate(d);
        r
    });
    (schema, features.collect(), labels)
}
