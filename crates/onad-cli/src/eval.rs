//! `onad eval`: prequential evaluation of several models on several data sets, one table.
//!
//! Every (model, data set) pair runs as its own `onad run` process (this same binary), so each pair's peak
//! memory is its own and one pair's failure is reported without stopping the others. The runs score then
//! learn every row with the threshold off; the table holds ROC-AUC, PR-AUC, the mean of the windowed
//! ROC-AUC, rows/s and peak resident memory per pair, and each model's mean over the data sets.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Failure;
use crate::run::{ModelArg, rate};

/// Options of `onad eval`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: onad eval --model asd_isolation_forest --model 'asd_isolation_forest + online_isolation_forest' \
                        --data shuttle --data creditcard.csv --markdown table.md\n\nA config file lists \
                        data sets and models as tables:\n  eval-window = 1000\n  [[data]]\n  input = \
                        \"skab.csv\"\n  label-column = \"anomaly\"\n  columns = [\"a\", \"b\"]\n  (also exclude, ids, keys, \
                        name, dataset)\n  [[models]]\n  \
                        name = \"knn10\"\n  model = { detector = { knn = { k = 10, window_size = 500, warm_up = 10 \
                        } } }"
)]
pub struct EvalArgs {
    /// Read data sets and models from this TOML file (`[[data]]` and `[[models]]` tables); flags add to
    /// its lists.
    #[arg(long)]
    config: Option<PathBuf>,

    /// A model as `onad run --model` takes it (`standard_scaler|knn`, `knn + asd_isolation_forest`).
    /// Repeatable.
    #[arg(long = "model")]
    models: Vec<String>,

    /// A data set: a built-in name (`onad datasets`) or anything `onad run --input` reads. Repeatable.
    #[arg(long = "data")]
    data: Vec<String>,

    /// Label column of every `--data` input (default: the last column).
    #[arg(long)]
    label_column: Option<String>,

    /// Rows per window of the windowed ROC-AUC [default: 1000].
    #[arg(long)]
    eval_window: Option<usize>,

    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,

    /// Write the table as Markdown here (it is printed either way).
    #[arg(long)]
    markdown: Option<PathBuf>,
}

/// One data set of a config file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DataEntry {
    /// Shown in the table (default: the input's file name or the data set's name).
    name: Option<String>,
    /// A file or URL, as `onad run --input`.
    input: Option<String>,
    /// A built-in data set, as `onad run --dataset`.
    dataset: Option<String>,
    label_column: Option<String>,
    columns: Option<Vec<String>>,
    #[serde(default)]
    exclude: Vec<String>,
    /// Columns read as ids, as `onad run --ids`.
    #[serde(default)]
    ids: Vec<String>,
    /// How JSON objects whose keys differ from the columns are read, as `onad run --keys` (`fixed` or
    /// `evolving`).
    keys: Option<String>,
}

/// One model of a config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    /// Shown in the table (default: the model's name).
    name: Option<String>,
    model: ModelArg,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct EvalConfig {
    eval_window: Option<usize>,
    #[serde(default)]
    data: Vec<DataEntry>,
    #[serde(default)]
    models: Vec<ModelEntry>,
}

/// The model of one run, as a TOML value of `onad run --config`.
fn model_value(model: &ModelArg) -> Result<toml::Value> {
    Ok(match model {
        ModelArg::Text(t) => toml::Value::String(t.clone()),
        ModelArg::Spec(spec) => toml::Value::try_from(&**spec).context("cannot write the model as TOML")?,
    })
}

fn model_name(model: &ModelArg) -> Result<String> {
    Ok(match model {
        ModelArg::Text(t) => crate::spec::parse_model(t)?.name(),
        ModelArg::Spec(spec) => spec.name(),
    })
}

fn data_name(d: &DataEntry) -> String {
    if let Some(n) = &d.name {
        return n.clone();
    }
    match (&d.dataset, &d.input) {
        (Some(name), _) => name.clone(),
        (None, Some(input)) => Path::new(input).file_stem().map_or(input.clone(), |s| s.to_string_lossy().into_owned()),
        (None, None) => "?".to_owned(),
    }
}

/// A `--data` value: an existing file (or a URL) is an input, anything else a built-in data set's name.
fn data_from_flag(text: &str, label_column: &Option<String>) -> DataEntry {
    let is_input = text.contains("://") || text == "-" || Path::new(text).exists();
    DataEntry {
        name: None,
        input: is_input.then(|| text.to_owned()),
        dataset: (!is_input).then(|| text.to_owned()),
        label_column: label_column.clone(),
        columns: None,
        exclude: Vec::new(),
        ids: Vec::new(),
        keys: None,
    }
}

/// Runs one pair in a child `onad run`; the summary it wrote, or the error it printed.
fn run_pair(exe: &Path, dir: &Path, n: usize, data: &DataEntry, model: &ModelArg, window: usize) -> Result<Value> {
    let mut table = toml::Table::new();
    let mut put = |k: &str, v: toml::Value| {
        table.insert(k.to_owned(), v);
    };
    if let Some(i) = &data.input {
        put("input", i.clone().into());
    }
    if let Some(d) = &data.dataset {
        put("dataset", d.clone().into());
    }
    if let Some(l) = &data.label_column {
        put("label-column", l.clone().into());
    }
    if let Some(c) = &data.columns {
        put("columns", toml::Value::Array(c.iter().cloned().map(Into::into).collect()));
    }
    for (key, names) in [("exclude", &data.exclude), ("ids", &data.ids)] {
        if !names.is_empty() {
            put(key, toml::Value::Array(names.iter().cloned().map(Into::into).collect()));
        }
    }
    if let Some(k) = &data.keys {
        put("keys", k.clone().into());
    }
    put("model", model_value(model)?);
    put("threshold", "none".into());
    put("eval-window", toml::Value::Integer(window as i64));
    let summary = dir.join(format!("pair-{n}.json"));
    put("summary-json", summary.display().to_string().into());
    put("quiet", true.into());
    let config = dir.join(format!("pair-{n}.toml"));
    std::fs::write(&config, toml::to_string(&table)?).with_context(|| format!("cannot write {}", config.display()))?;
    let out = Command::new(exe).arg("run").arg("--config").arg(&config).output().context("cannot start onad run")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("{}", err.trim().strip_prefix("error: ").unwrap_or(err.trim()));
    }
    let text = std::fs::read_to_string(&summary).with_context(|| format!("no summary in {}", summary.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.digits$}"))
}

/// Runs `onad eval`.
pub fn eval(args: EvalArgs) -> Result<(), Failure> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(anyhow!("cannot read config file {}: {e}", path.display())))?;
            toml::from_str::<EvalConfig>(&text)
                .map_err(|e| Failure::Usage(anyhow!("{}: {}", path.display(), e.message())))?
        }
        None => EvalConfig::default(),
    };
    config.data.extend(args.data.iter().map(|d| data_from_flag(d, &args.label_column)));
    config.models.extend(args.models.iter().map(|m| ModelEntry { name: None, model: ModelArg::Text(m.clone()) }));
    if config.data.is_empty() || config.models.is_empty() {
        return Err(Failure::Usage(anyhow!(
            "onad eval needs at least one --data and one --model (or [[data]] and [[models]] in --config)"
        )));
    }
    for d in &config.data {
        if d.input.is_some() == d.dataset.is_some() {
            return Err(Failure::Usage(anyhow!("data set '{}': give exactly one of input and dataset", data_name(d))));
        }
    }
    let mut model_names = Vec::new();
    for m in &config.models {
        let name = model_name(&m.model).map_err(Failure::Usage)?;
        model_names.push(m.name.clone().unwrap_or(name));
    }
    let window = args.eval_window.or(config.eval_window).unwrap_or(1000);
    if window == 0 {
        return Err(Failure::Usage(anyhow!("--eval-window must be at least 1")));
    }
    let exe = std::env::current_exe().map_err(|e| Failure::Run(anyhow!("cannot find the onad binary: {e}")))?;
    let dir = std::env::temp_dir().join(format!("onad-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Failure::Run(anyhow!("cannot create {}: {e}", dir.display())))?;

    let mut results = Vec::new();
    let mut n = 0;
    for (m, model_label) in config.models.iter().zip(&model_names) {
        for d in &config.data {
            n += 1;
            let data_label = data_name(d);
            eprintln!("[{n}/{}] {model_label} on {data_label}", config.models.len() * config.data.len());
            let entry = match run_pair(&exe, &dir, n, d, &m.model, window) {
                Ok(s) => json!({
                    "model": model_label, "data": data_label, "rows": s["rows"],
                    "roc_auc": s["roc_auc"], "pr_auc": s["pr_auc"],
                    "windowed_roc_auc": s["windowed"]["mean_roc_auc"], "windows": s["windowed"]["windows"],
                    "rows_per_sec": s["rows_per_sec"], "memory_peak_mib": s["memory_peak_mib"],
                }),
                Err(e) => json!({"model": model_label, "data": data_label, "error": format!("{e:#}")}),
            };
            results.push(entry);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    let data_labels: Vec<String> = config.data.iter().map(data_name).collect();
    let mut means = serde_json::Map::new();
    for label in &model_names {
        let aucs: Vec<f64> =
            results.iter().filter(|r| r["model"] == label.as_str()).filter_map(|r| r["roc_auc"].as_f64()).collect();
        let mean =
            (aucs.len() == data_labels.len() && !aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64);
        means.insert(label.clone(), json!(mean));
    }
    let md = markdown(&results, &model_names, &data_labels, &means, window);
    print!("{md}");
    let report = json!({"eval_window": window, "results": results, "mean_roc_auc": means});
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&report).unwrap_or_default() + "\n")
            .map_err(|e| Failure::Run(anyhow!("cannot write {}: {e}", p.display())))?;
    }
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md).map_err(|e| Failure::Run(anyhow!("cannot write {}: {e}", p.display())))?;
    }
    if results.iter().any(|r| r.get("error").is_some()) {
        return Err(Failure::Run(anyhow!("some runs failed (see the table)")));
    }
    Ok(())
}

fn markdown(
    results: &[Value],
    models: &[String],
    data: &[String],
    means: &serde_json::Map<String, Value>,
    window: usize,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| model | data | rows | ROC-AUC | PR-AUC | windowed ROC-AUC ({window} rows) | rows/s | peak MiB |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|");
    for r in results {
        if let Some(e) = r["error"].as_str() {
            let _ = writeln!(
                md,
                "| {} | {} | error: {} | | | | | |",
                r["model"].as_str().unwrap_or(""),
                r["data"].as_str().unwrap_or(""),
                e.replace('|', "/").replace('\n', " ")
            );
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r["model"].as_str().unwrap_or(""),
            r["data"].as_str().unwrap_or(""),
            r["rows"],
            cell(r["roc_auc"].as_f64(), 4),
            cell(r["pr_auc"].as_f64(), 4),
            cell(r["windowed_roc_auc"].as_f64(), 4),
            r["rows_per_sec"].as_f64().map_or("-".to_owned(), rate),
            cell(r["memory_peak_mib"].as_f64(), 1),
        );
    }
    if data.len() > 1 {
        let _ = writeln!(md, "\nMean ROC-AUC over the {} data sets:\n", data.len());
        let _ = writeln!(md, "| model | mean ROC-AUC |\n|---|---:|");
        for m in models {
            let _ = writeln!(md, "| {m} | {} |", cell(means.get(m).and_then(Value::as_f64), 4));
        }
    }
    md
}
