//! Data sets built into the binary, so `onad run` works anywhere with no download. The bytes are the
//! files in `datasets/` (checked against `datasets/manifest.json` by a test).

/// A built-in, labelled data set.
#[derive(Debug)]
pub struct BuiltIn {
    /// Name used by `--dataset`.
    pub name: &'static str,
    /// One line.
    pub description: &'static str,
    /// Rows in the file.
    pub rows: u64,
    /// Feature columns.
    pub features: usize,
    /// The label column.
    pub label: &'static str,
    /// The Parquet file's bytes.
    pub bytes: &'static [u8],
}

/// Every built-in data set; the first is the default of `onad run`.
pub static BUILT_IN: &[BuiltIn] = &[BuiltIn {
    name: "shuttle",
    description: "NASA space-shuttle sensor readings (UCI Statlog, ODDS construction), 7.15 % anomalies",
    rows: 49_097,
    features: 9,
    label: "label",
    bytes: include_bytes!("../../../datasets/shuttle.parquet"),
}];

/// Looks a built-in data set up by name (case-insensitive).
pub fn find(name: &str) -> Option<&'static BuiltIn> {
    BUILT_IN.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// Prints the built-in data sets (`onad datasets`).
pub fn list() -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for d in BUILT_IN {
        writeln!(out, "{:<10} {:>8} rows x {:>2} features  {}", d.name, d.rows, d.features, d.description)?;
    }
    Ok(())
}
