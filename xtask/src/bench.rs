//! `cargo xtask bench`: throughput per registered model, side by side.
//!
//! 1. criterion (`crates/onad-models/benches/detectors.rs`): score + learn per row on the seeded synthetic
//!    stream (100k x 10, drift, 1 % anomalies);
//! 2. `onad eval` (the release binary) for every detector on the same synthetic stream written as CSV and on
//!    the built-in SHUTTLE (source read, score, evaluate; each pair its own process), with ROC-AUC and
//!    PR-AUC: the end-to-end rate a user of `onad run` gets, next to the library's;
//! 3. when `ONAD_PYTHON` names a Python with onad 0.3.0 installed, the same synthetic rows through Python
//!    onad (`scripts/bench/python_onad.py`), in the same run, and the speed-up ratios.
//!
//! Writes `target/bench/results.json` and `target/bench/results.md` and prints the Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{cargo, run};

const ROWS: f64 = 100_000.0;

/// Parses criterion's `--output-format bencher` lines: `test group/name ... bench: 1,234 ns/iter (+/- 5)`.
fn parse_bencher(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("test ") else { continue };
        let Some((name, tail)) = rest.split_once(" ... bench:") else { continue };
        let ns: String =
            tail.trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == ',').filter(|c| *c != ',').collect();
        if let Ok(ns) = ns.parse::<f64>() {
            let id = name.trim().rsplit('/').next().unwrap_or(name).to_owned();
            out.insert(id, ROWS / (ns * 1e-9));
        }
    }
    out
}

/// The data sets every detector runs on through `onad eval`, by the name the tables use.
const SYNTHETIC: &str = "synthetic";
const SHUTTLE: &str = "shuttle";

/// Every registered detector at its example parameters on the synthetic stream (the CSV at `stream`) and
/// on the built-in SHUTTLE, through `onad eval` (each pair its own `onad run` process: source read, score,
/// evaluate), keyed by (data set, model name).
fn eval_runs(root: &Path, stream: &Path) -> Result<BTreeMap<(String, String), Value>> {
    let onad = root.join("target/release/onad");
    let models: Value = serde_json::from_slice(&Command::new(&onad).args(["models", "--json"]).output()?.stdout)?;
    let config = eval_config(&models, stream)?;
    let dir = root.join("target/bench");
    let config_path = dir.join("eval.toml");
    std::fs::write(&config_path, config)?;
    let json_path = dir.join("eval.json");
    eprintln!("\n==> onad eval --config {}", config_path.display());
    let status = Command::new(&onad)
        .arg("eval")
        .arg("--config")
        .arg(&config_path)
        .arg("--json")
        .arg(&json_path)
        .arg("--markdown")
        .arg(dir.join("eval.md"))
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("onad eval --config {} failed", config_path.display());
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json_path)?)?;
    let mut out = BTreeMap::new();
    for r in report["results"].as_array().context("results")? {
        let key = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        out.insert((key("data"), key("model")), r.clone());
    }
    Ok(out)
}

/// The `onad eval` config of [`eval_runs`]: the synthetic stream at `stream` (features `f0..f9`, the label
/// in `label`), SHUTTLE, and every detector of `onad models --json`.
fn eval_config(models: &Value, stream: &Path) -> Result<String> {
    let path = stream.to_str().context("the synthetic stream's path is not UTF-8")?;
    let mut config = format!(
        "[[data]]\nname = \"{SYNTHETIC}\"\ninput = {}\nlabel-column = \"label\"\n\n[[data]]\nname = \"{SHUTTLE}\"\ndataset = \"shuttle\"\n",
        toml_value(&json!(path))
    );
    for m in models["models"].as_array().context("models")? {
        if m["role"] != "detector" {
            continue;
        }
        let name = m["name"].as_str().unwrap_or_default();
        let mut params = m["example"].as_object().cloned().unwrap_or_default();
        for (k, v) in params.iter_mut() {
            // A univariate model (or a score policy) reads the column both data sets call `f1`.
            if (k == "key" && v.is_null()) || k == "score_key" {
                *v = json!("f1");
            }
        }
        params.retain(|_, v| !v.is_null());
        // JSON is TOML's inline-table syntax for these values once keys are quoted.
        let table: Vec<String> = params.iter().map(|(k, v)| format!("\"{k}\" = {}", toml_value(v))).collect();
        writeln!(
            config,
            "[[models]]\nname = \"{name}\"\nmodel = {{ detector = {{ {name} = {{ {} }} }} }}",
            table.join(", ")
        )?;
    }
    Ok(config)
}

/// A JSON value written as a TOML value (numbers, booleans, strings, arrays and tables of them).
fn toml_value(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let items: Vec<String> = map.iter().map(|(k, v)| format!("\"{k}\" = {}", toml_value(v))).collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// Writes the criterion bench's synthetic stream (same rows, same seed) as CSV for `onad eval` and Python.
fn write_stream(root: &Path) -> Result<std::path::PathBuf> {
    let stream = root.join("target/bench/stream.csv");
    let mut make = cargo();
    make.args(["run", "--quiet", "--release", "-p", "onad-models", "--example", "synthetic", "--"]).arg(&stream);
    run("write the synthetic stream", make)?;
    Ok(stream)
}

fn python(root: &Path, stream: &Path) -> Result<Option<Value>> {
    let Some(py) = std::env::var_os("ONAD_PYTHON") else {
        eprintln!("ONAD_PYTHON is not set: skipping the side-by-side Python onad run");
        return Ok(None);
    };
    eprintln!("\n==> Python onad on the same rows ({})", Path::new(&py).display());
    let out = Command::new(&py).arg(root.join("scripts/bench/python_onad.py")).arg(stream).output()?;
    if !out.status.success() {
        bail!("python baseline failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(Some(serde_json::from_slice(&out.stdout)?))
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 { format!("{:.1}M", r / 1e6) } else { format!("{:.0}k", r / 1e3) }
}

/// Runs the benchmarks and writes the report.
pub fn bench(root: &Path, args: &[&str]) -> Result<()> {
    let quick = args.contains(&"--quick");
    std::fs::create_dir_all(root.join("target/bench"))?;

    let mut b = cargo();
    b.args(["bench", "-p", "onad-models", "--bench", "detectors", "--", "--output-format", "bencher"]);
    if quick {
        b.args(["--warm-up-time", "0.5", "--measurement-time", "1"]);
    }
    eprintln!("\n==> criterion: {b:?}");
    let out = b.output().context("cannot run cargo bench")?;
    if !out.status.success() {
        bail!("cargo bench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let synthetic = parse_bencher(&String::from_utf8_lossy(&out.stdout));
    if synthetic.is_empty() {
        bail!("no criterion results parsed from:\n{}", String::from_utf8_lossy(&out.stdout));
    }

    let mut build = cargo();
    build.args(["build", "--release", "--quiet", "-p", "onad-cli"]);
    run("release onad", build)?;
    let stream = write_stream(root)?;
    let evals = eval_runs(root, &stream)?;
    let py = python(root, &stream)?;

    let mut md = String::new();
    writeln!(md, "## Throughput (rows/s, one core, score + learn per row)\n")?;
    writeln!(
        md,
        "Synthetic: 100k x 10, drift, 1 % anomalies, seed 42: the library (criterion, mean) and `onad run` end"
    )?;
    writeln!(
        md,
        "to end on the same rows as CSV (`onad eval`: read + score + evaluate, one process per pair), with its\n\
         ROC-AUC and PR-AUC. SHUTTLE: `onad eval` on the built-in Parquet set. Python: onad 0.3.0 on the same\n\
         synthetic rows, same run.\n"
    )?;
    writeln!(
        md,
        "| model | synthetic | Python onad | ratio | synthetic e2e | ROC-AUC | PR-AUC | SHUTTLE e2e | ROC-AUC | PR-AUC |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut rows = Vec::new();
    for (name, rate) in &synthetic {
        let p = py.as_ref().and_then(|p| p["rows_per_sec"][name].as_f64());
        let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_owned(), f);
        let auc = |v: f64| format!("{v:.3}");
        let mut line = format!(
            "| {} | {} | {} | {} |",
            name.replace('|', "\\|"),
            fmt_rate(*rate),
            cell(p, &fmt_rate),
            cell(p.map(|p| rate / p), &|r| format!("{r:.0}x")),
        );
        for data in [SYNTHETIC, SHUTTLE] {
            let e = evals.get(&(data.to_owned(), name.clone()));
            let field = |k: &str| e.and_then(|e| e[k].as_f64());
            write!(
                line,
                " {} | {} | {} |",
                cell(field("rows_per_sec"), &fmt_rate),
                cell(field("roc_auc"), &auc),
                cell(field("pr_auc"), &auc)
            )?;
        }
        writeln!(md, "{line}")?;
        rows.push(json!({"model": name, "synthetic_rows_per_sec": rate, "python_rows_per_sec": p,
                         "ratio": p.map(|p| rate / p),
                         "synthetic_e2e": evals.get(&(SYNTHETIC.to_owned(), name.clone())),
                         "shuttle": evals.get(&(SHUTTLE.to_owned(), name.clone()))}));
    }
    let report = json!({"synthetic_rows": ROWS, "python": py, "results": rows});
    std::fs::write(root.join("target/bench/results.json"), serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(root.join("target/bench/results.md"), &md)?;
    println!("{md}");
    eprintln!("written: target/bench/results.json, target/bench/results.md");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_config_names_both_data_sets_and_every_detector_with_its_example() {
        let models = json!({"models": [
            {"name": "knn", "role": "detector", "example": {"k": 55, "window_size": 250, "distance": "squared"}},
            {"name": "moving_average", "role": "detector", "example": {"window_size": 100, "key": null}},
            {"name": "quantile_threshold", "role": "detector", "example": {"q": 0.9, "score_key": "s", "x": [1, 2]}},
            {"name": "standard_scaler", "role": "transformer", "example": {}},
        ]});
        let config = eval_config(&models, Path::new("/t/bench/stream.csv")).unwrap();
        assert!(
            config.starts_with(
                "[[data]]\nname = \"synthetic\"\ninput = \"/t/bench/stream.csv\"\nlabel-column = \"label\"\n\n\
                 [[data]]\nname = \"shuttle\"\ndataset = \"shuttle\"\n"
            ),
            "{config}"
        );
        assert!(config.contains(
            "name = \"knn\"\nmodel = { detector = { knn = { \"distance\" = \"squared\", \"k\" = 55, \"window_size\" = 250 } } }"
        ), "{config}");
        assert!(config.contains("moving_average = { \"key\" = \"f1\", \"window_size\" = 100 }"), "{config}");
        assert!(config.contains("\"score_key\" = \"f1\"") && config.contains("\"x\" = [1, 2]"), "{config}");
        assert!(!config.contains("standard_scaler"), "{config}");
    }

    #[test]
    fn parses_bencher_lines() {
        let text = "noise\ntest score_learn/null_model ... bench:      50,000 ns/iter (+/- 12)\n\
                    test learn_transform/standard_scaler ... bench:   1,000,000 ns/iter (+/- 3)\n";
        let r = parse_bencher(text);
        assert_eq!(r["null_model"], 2e9);
        assert_eq!(r["standard_scaler"], 1e8);
        assert_eq!(r.len(), 2);
    }
}
