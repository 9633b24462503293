//! `cargo xtask bench`: throughput per registered model, side by side.
//!
//! 1. criterion (`crates/onad-models/benches/detectors.rs`): score + learn per row on the seeded synthetic
//!    stream (100k x 10, drift, 1 % anomalies);
//! 2. the release `onad` binary end to end on the built-in SHUTTLE (Parquet read, score, evaluate) per
//!    detector, with ROC-AUC and PR-AUC;
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

fn shuttle_runs(root: &Path) -> Result<BTreeMap<String, Value>> {
    let onad = root.join("target/release/onad");
    let models: Value = serde_json::from_slice(&Command::new(&onad).args(["models", "--json"]).output()?.stdout)?;
    let mut out = BTreeMap::new();
    for m in models["models"].as_array().context("models")? {
        if m["role"] != "detector" {
            continue;
        }
        let name = m["name"].as_str().unwrap_or_default();
        let mut args: Vec<String> = vec!["run".into(), "--quiet".into(), "--model".into(), name.into()];
        for (k, v) in m["example"].as_object().into_iter().flatten() {
            match (k.as_str(), v) {
                // A univariate model (or a score policy) reads SHUTTLE's first feature.
                ("key", Value::Null) | ("score_key", _) => args.extend(["--set".into(), format!("{k}=f1")]),
                (_, Value::Null) => {}
                _ => args.extend(["--set".into(), format!("{k}={v}")]),
            }
        }
        let summary = root.join("target/bench").join(format!("shuttle-{name}.json"));
        args.extend(["--summary-json".into(), summary.display().to_string()]);
        // Best of three end-to-end runs (the whole file is 49k rows: a run takes milliseconds).
        let mut best: Option<Value> = None;
        for _ in 0..3 {
            let status = Command::new(&onad).args(&args).status()?;
            if !status.success() {
                bail!("onad {args:?} failed");
            }
            let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary)?)?;
            if best.as_ref().is_none_or(|b| b["rows_per_sec"].as_f64() < s["rows_per_sec"].as_f64()) {
                best = Some(s);
            }
        }
        out.insert(name.to_owned(), best.unwrap_or(Value::Null));
    }
    Ok(out)
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
        "(Parquet read + score + evaluate, best of 3). Python: onad 0.3.0 on the same synthetic rows, same run.\n"
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
    fn parses_bencher_lines() {
        let text = "noise\ntest score_learn/null_model ... bench:      50,000 ns/iter (+/- 12)\n\
                    test learn_transform/standard_scaler ... bench:   1,000,000 ns/iter (+/- 3)\n";
        let r = parse_bencher(text);
        assert_eq!(r["null_model"], 2e9);
        assert_eq!(r["standard_scaler"], 1e8);
        assert_eq!(r.len(), 2);
    }
}
