//! `cargo xtask bench`: throughput per registered model, side by side.
//!
//! 1. criterion (`crates/onad-models/benches/detectors.rs`): score + learn per row on the seeded synthetic
//!    stream (100k x 10, drift, 1 % anomalies);
//! 2. `onad eval` (the release binary) on the built-in SHUTTLE for every detector (Parquet read, score,
//!    evaluate; each model its own process), with ROC-AUC and PR-AUC;
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

/// Every registered detector at its example parameters on the built-in SHUTTLE, through `onad eval` (each
/// pair its own `onad run` process: Parquet read, score, evaluate), keyed by model name.
fn shuttle_runs(root: &Path) -> Result<BTreeMap<String, Value>> {
    let onad = root.join("target/release/onad");
    let models: Value = serde_json::from_slice(&Command::new(&onad).args(["models", "--json"]).output()?.stdout)?;
    let config = shuttle_config(&models)?;
    let dir = root.join("target/bench");
    let config_path = dir.join("shuttle-eval.toml");
    std::fs::write(&config_path, config)?;
    let json_path = dir.join("shuttle-eval.json");
    let status = Command::new(&onad)
        .arg("eval")
        .arg("--config")
        .arg(&config_path)
        .arg("--json")
        .arg(&json_path)
        .arg("--markdown")
        .arg(dir.join("shuttle-eval.md"))
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("onad eval --config {} failed", config_path.display());
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json_path)?)?;
    let mut out = BTreeMap::new();
    for r in report["results"].as_array().context("results")? {
        out.insert(r["model"].as_str().unwrap_or_default().to_owned(), r.clone());
    }
    Ok(out)
}

/// The `onad eval` config of [`shuttle_runs`]: SHUTTLE, and every detector of `onad models --json`.
fn shuttle_config(models: &Value) -> Result<String> {
    let mut config = String::from("[[data]]\ndataset = \"shuttle\"\n");
    for m in models["models"].as_array().context("models")? {
        if m["role"] != "detector" {
            continue;
        }
        let name = m["name"].as_str().unwrap_or_default();
        let mut params = m["example"].as_object().cloned().unwrap_or_default();
        for (k, v) in params.iter_mut() {
            // A univariate model (or a score policy) reads SHUTTLE's first feature.
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

fn python(root: &Path) -> Result<Option<Value>> {
    let Some(py) = std::env::var_os("ONAD_PYTHON") else {
        eprintln!("ONAD_PYTHON is not set: skipping the side-by-side Python onad run");
        return Ok(None);
    };
    let stream = root.join("target/bench/stream.csv");
    let mut make = cargo();
    make.args(["run", "--quiet", "--release", "-p", "onad-models", "--example", "synthetic", "--"]).arg(&stream);
    run("write the synthetic stream", make)?;
    eprintln!("\n==> Python onad on the same rows ({})", Path::new(&py).display());
    let out = Command::new(&py).arg(root.join("scripts/bench/python_onad.py")).arg(&stream).output()?;
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
    let shuttle = shuttle_runs(root)?;
    let py = python(root)?;

    let mut md = String::new();
    writeln!(md, "## Throughput (rows/s, one core, score + learn per row)\n")?;
    writeln!(
        md,
        "Synthetic: 100k x 10, drift, 1 % anomalies, seed 42 (criterion, mean). SHUTTLE: `onad run` end to end"
    )?;
    writeln!(
        md,
        "(`onad eval`: Parquet read + score + evaluate, one process per model). Python: onad 0.3.0 on the same\nsynthetic rows, same run.\n"
    )?;
    writeln!(md, "| model | synthetic | Python onad | ratio | SHUTTLE e2e | ROC-AUC | PR-AUC |")?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|")?;
    let mut rows = Vec::new();
    for (name, rate) in &synthetic {
        let p = py.as_ref().and_then(|p| p["rows_per_sec"][name].as_f64());
        let s = shuttle.get(name);
        let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_owned(), f);
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            name.replace('|', "\\|"),
            fmt_rate(*rate),
            cell(p, &fmt_rate),
            cell(p.map(|p| rate / p), &|r| format!("{r:.0}x")),
            cell(s.and_then(|s| s["rows_per_sec"].as_f64()), &fmt_rate),
            cell(s.and_then(|s| s["roc_auc"].as_f64()), &|v| format!("{v:.3}")),
            cell(s.and_then(|s| s["pr_auc"].as_f64()), &|v| format!("{v:.3}")),
        )?;
        rows.push(json!({"model": name, "synthetic_rows_per_sec": rate, "python_rows_per_sec": p,
                         "ratio": p.map(|p| rate / p), "shuttle": s}));
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
    fn shuttle_config_names_every_detector_with_its_example() {
        let models = json!({"models": [
            {"name": "knn", "role": "detector", "example": {"k": 55, "window_size": 250, "distance": "squared"}},
            {"name": "moving_average", "role": "detector", "example": {"window_size": 100, "key": null}},
            {"name": "quantile_threshold", "role": "detector", "example": {"q": 0.9, "score_key": "s", "x": [1, 2]}},
            {"name": "standard_scaler", "role": "transformer", "example": {}},
        ]});
        let config = shuttle_config(&models).unwrap();
        assert!(config.starts_with("[[data]]\ndataset = \"shuttle\"\n"), "{config}");
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
