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

/// Options of `onad datasets`.
#[derive(Debug, clap::Args)]
pub struct DatasetsArgs {
    #[command(subcommand)]
    action: Option<DatasetsAction>,
}

#[derive(Debug, clap::Subcommand)]
enum DatasetsAction {
    /// Download a registered data set into the cache (`$ONAD_CACHE_DIR`, else `~/.cache/onad`), verify its
    /// sha256, and print its path. `--from` gives the base URL or folder (or `$ONAD_DATASETS_BASE`).
    Fetch {
        /// Registry name (see `onad datasets`).
        name: String,
        /// Base URL (`http://host/path/`) or folder holding the file.
        #[arg(long)]
        from: Option<String>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
}

/// Runs `onad datasets`.
pub fn command(args: DatasetsArgs) -> Result<(), crate::Failure> {
    match args.action {
        None => list().map_err(crate::Failure::Usage),
        Some(DatasetsAction::Fetch { name, from, quiet }) => fetch(&name, from, quiet),
    }
}

#[cfg(feature = "fetch")]
fn fetch(name: &str, from: Option<String>, quiet: bool) -> Result<(), crate::Failure> {
    use anyhow::anyhow;
    use onad_sources::datasets;
    let usage = crate::Failure::Usage;
    let info = datasets::find(name).ok_or_else(|| {
        let names: Vec<&str> = datasets::REGISTRY.iter().map(|d| d.name).collect();
        usage(anyhow!("unknown data set '{name}' (known: {})", names.join(", ")))
    })?;
    let base = from.or_else(datasets::default_base).ok_or_else(|| {
        usage(anyhow!(
            "no download location for '{name}': pass --from BASE_URL_OR_FOLDER or set ONAD_DATASETS_BASE (upstream: {})",
            info.origin_url
        ))
    })?;
    let cache = datasets::cache_dir().map_err(|e| usage(e.into()))?;
    let mut options = datasets::FetchOptions::new(base, cache);
    options.progress = !quiet;
    let path = datasets::fetch(info, &options).map_err(|e| crate::Failure::Run(e.into()))?;
    println!("{}", path.display());
    Ok(())
}

#[cfg(not(feature = "fetch"))]
fn fetch(_name: &str, _from: Option<String>, _quiet: bool) -> Result<(), crate::Failure> {
    Err(crate::Failure::Usage(anyhow::anyhow!("this build has no dataset download support (cargo feature 'fetch')")))
}

/// Prints the built-in data sets and, with the `fetch` feature, the registry (`onad datasets`).
fn list() -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "built in (onad run --dataset NAME):")?;
    for d in BUILT_IN {
        writeln!(out, "  {:<14} {:>8} rows x {:>2} features  {}", d.name, d.rows, d.features, d.description)?;
    }
    #[cfg(feature = "fetch")]
    {
        use onad_sources::datasets;
        let cache = datasets::cache_dir().ok();
        writeln!(out, "downloadable (onad datasets fetch NAME --from BASE, then onad run --input PATH):")?;
        for d in datasets::REGISTRY {
            let cached = cache.as_ref().is_some_and(|c| d.cache_path(c).exists());
            writeln!(
                out,
                "  {:<14} {:>8} rows x {:>2} features  {:>6.2} % anomalies  label '{}'{}  {}",
                d.name,
                d.rows,
                d.features,
                100.0 * d.anomaly_rate,
                d.label_column,
                if cached { "  [cached]" } else { "" },
                d.description
            )?;
        }
    }
    Ok(())
}
