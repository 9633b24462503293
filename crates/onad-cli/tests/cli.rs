//! End-to-end tests of the `onad` binary: the CLI contract that scripts and later work rely on.

use std::path::{Path, PathBuf};

use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The shared labelled data: `$ONAD_DATA_DIR`, else `../shared/data` beside the repository.
fn data_dir() -> PathBuf {
    let dir = std::env::var_os("ONAD_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("../shared/data"));
    assert!(dir.join("shippable").is_dir(), "shared data not found at {}; set ONAD_DATA_DIR", dir.display());
    dir
}

fn onad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onad")).args(args).current_dir(root()).output().expect("onad runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn summary(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summary.json");
    let mut all = args.to_vec();
    let p = path.to_str().unwrap();
    all.extend(["--summary-json", p, "--quiet"]);
    let o = onad(&all);
    assert!(o.status.success(), "onad {all:?} failed: {}", stderr(&o));
    assert!(stdout(&o).is_empty(), "--quiet printed: {}", stdout(&o));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A usage error: exit code 2, one line on stderr starting with `error:`, no panic.
fn usage_error(args: &[&str]) -> String {
    let o = onad(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "onad {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "onad {args:?} printed more than one line: {err}");
    assert!(err.starts_with("error: ") && !err.contains("panicked"), "{err}");
    err
}

/// `args` with the pipeline that was `onad run`'s default before mstream (standard_scaler|moving_average,
/// window 100, on SHUTTLE's first feature) after the subcommand, for the tests of wrappers and set paths
/// that reach into its stages.
fn with_ma<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut out = vec![args[0]];
    out.extend_from_slice(&[
        "--model",
        "standard_scaler|moving_average",
        "--set",
        "key=f1",
        "--set",
        "window_size=100",
    ]);
    out.extend_from_slice(&args[1..]);
    out
}

#[test]
fn run_without_arguments_scores_the_built_in_data_set() {
    let o = onad(&["run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("shuttle (built-in)"), "{out}");
    assert!(out.contains("49,097 scored, 0 skipped"), "{out}");
    let roc: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("ROC-AUC"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ROC-AUC line: {out}"));
    // The default model (mstream on every feature) separates SHUTTLE's anomalies (0.89 when measured).
    assert!(roc > 0.85, "ROC-AUC {roc}");
    assert!(out.contains("rows/s") && out.contains("anomalies"), "{out}");
}

#[test]
fn summary_json_has_the_contract_fields() {
    let s = summary(&["run", "--model", "moving_average", "--set", "window_size=50", "--set", "key=f1"]);
    assert_eq!(s["rows"], 49_097);
    assert_eq!(s["skipped"], 0);
    assert!(s["rows_per_sec"].as_f64().unwrap() > 0.0);
    let (roc, pr) = (s["roc_auc"].as_f64().unwrap(), s["pr_auc"].as_f64().unwrap());
    assert!(roc > 0.9 && roc <= 1.0, "{roc}");
    assert!(pr > 0.0715 && pr <= 1.0, "PR-AUC {pr} should beat the 7.15 % prevalence");
    assert_eq!(s["model"], "moving_average");
    assert_eq!(s["params"]["detector"]["moving_average"]["window_size"], 50);
    // A null model ranks nothing: ROC-AUC 0.5, PR-AUC = prevalence.
    let s = summary(&["run", "--model", "null_model"]);
    assert_eq!(s["roc_auc"].as_f64().unwrap(), 0.5);
    assert!((s["pr_auc"].as_f64().unwrap() - 3511.0 / 49_097.0).abs() < 1e-12);
}

#[test]
fn csv_and_parquet_copies_give_identical_scores() {
    let dir = tempfile::tempdir().unwrap();
    let csv = data_dir().join("shippable/shuttle_odds.csv");
    let parquet = root().join("datasets/shuttle.parquet");
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let model = ["--model", "standard_scaler|moving_average", "--set", "window_size=30", "--set", "key=f5"];
    for (input, name) in
        [(None, "builtin.csv"), (Some(csv.to_str().unwrap()), "csv.csv"), (Some(parquet.to_str().unwrap()), "pq.csv")]
    {
        let mut args = vec!["run", "--quiet", "--output"];
        let o = out(name);
        args.push(&o);
        if let Some(i) = input {
            args.extend(["--input", i]);
        }
        args.extend(model);
        let r = onad(&args);
        assert!(r.status.success(), "{}", stderr(&r));
    }
    let builtin = std::fs::read_to_string(out("builtin.csv")).unwrap();
    assert_eq!(builtin.lines().next(), Some("row,score,anomaly,label"));
    assert_eq!(builtin.lines().count(), 49_098);
    assert!(builtin.lines().nth(1).unwrap().starts_with("0,"));
    assert_eq!(builtin, std::fs::read_to_string(out("csv.csv")).unwrap(), "CSV and built-in Parquet differ");
    assert_eq!(builtin, std::fs::read_to_string(out("pq.csv")).unwrap(), "CSV and Parquet file differ");
}

#[test]
fn configuration_errors_are_one_line_with_exit_code_2() {
    let e = usage_error(&["run", "--model", "no_such_model"]);
    assert!(e.contains("unknown model 'no_such_model'"), "{e}");
    let e = usage_error(&["run", "--model", "moving_average", "--set", "window_size=-3"]);
    assert!(e.contains("window_size"), "{e}");
    let e = usage_error(&["run", "--model", "moving_average", "--set", "window_size=0", "--set", "key=f1"]);
    assert!(e.contains("window_size") && e.contains("at least 1"), "{e}");
    let e = usage_error(&["run", "--model", "moving_average", "--set", "window_size=5", "--set", "key=nope"]);
    assert!(e.contains("'nope'") && e.contains("f1"), "{e}");
    let e = usage_error(&["run", "--input", "does/not/exist.csv"]);
    assert!(e.contains("does/not/exist.csv"), "{e}");
    let e = usage_error(&["run", "--input", "tests/data/unlabelled.csv", "--label-column", "is_anomaly"]);
    assert!(e.contains("label column 'is_anomaly' not found") && e.contains("unlabelled.csv"), "{e}");
    let e = usage_error(&["run", "--threshold", "sometimes"]);
    assert!(e.contains("--threshold"), "{e}");
    let e = usage_error(&["run", "--input", "Cargo.toml"]);
    assert!(e.contains("unknown file type"), "{e}");
}

#[test]
fn bad_rows_are_skipped_and_counted_or_stop_the_run() {
    let s = summary(&[
        "run",
        "--input",
        "tests/data/malformed.csv",
        "--model",
        "moving_average",
        "--set",
        "window_size=3",
        "--set",
        "key=temp",
    ]);
    assert_eq!(s["rows"], 4, "{s}");
    assert_eq!(s["skipped"], 2);
    assert_eq!(s["skipped_by_reason"]["non_numeric"], 1);
    assert_eq!(s["skipped_by_reason"]["field_count"], 1);

    let o = onad(&["run", "--input", "tests/data/malformed.csv", "--on-bad-row", "fail", "--model", "null_model"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("tests/data/malformed.csv: row 2, column 'temp': cannot read 'hot' as a number"), "{e}");

    // Missing: the bad rows keep their places as rows of NaN, scored and counted as missing.
    let s =
        summary(&["run", "--input", "tests/data/malformed.csv", "--on-bad-row", "missing", "--model", "null_model"]);
    assert_eq!((s["rows"].as_u64(), s["skipped"].as_u64(), s["missing_rows"].as_u64()), (Some(6), Some(0), Some(2)));
    assert_eq!((s["bad_rows"].as_str(), s["skipped_by_reason"]["non_numeric"].as_u64()), (Some("missing"), Some(1)));
    let o = onad(&["run", "--input", "tests/data/malformed.csv", "--on-bad-row", "missing", "--model", "null_model"]);
    assert!(stdout(&o).contains("6 scored, 2 of them bad rows read as missing"), "{}", stdout(&o));

    // A column that goes back: rows below an earlier value are bad rows `time_went_back`.
    let s = summary(&["run", "--input", "tests/data/malformed.csv", "--ordered-by", "temp", "--model", "null_model"]);
    assert_eq!((s["rows"].as_u64(), s["skipped_by_reason"]["time_went_back"].as_u64()), (Some(3), Some(1)), "{s}");
    let o = onad(&["run", "--input", "tests/data/malformed.csv", "--ordered-by", "when"]);
    assert!(stderr(&o).contains("ordered_by names 'when', which is not a feature column"), "{}", stderr(&o));
}

#[test]
fn unlabelled_input_has_null_metrics_and_output_without_label() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scores.csv");
    let s = summary(&["run", "--input", "tests/data/unlabelled.csv", "--no-label", "--output", out.to_str().unwrap()]);
    assert_eq!(s["rows"], 4);
    assert!(s["roc_auc"].is_null() && s["pr_auc"].is_null());
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().next(), Some("row,score,anomaly"));
    assert_eq!(text.lines().count(), 5);
}

#[test]
fn models_lists_every_registered_kind() {
    let o = onad(&["models", "--json"]);
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    let expected: Vec<&str> = onad_registry_names();
    assert_eq!(names, expected);
    let ma = v["models"].as_array().unwrap().iter().find(|m| m["name"] == "moving_average").unwrap();
    let ws = ma["params"].as_array().unwrap().iter().find(|p| p["name"] == "window_size").unwrap();
    assert_eq!(ws["required"], true);
    let text = stdout(&onad(&["models"]));
    assert!(text.contains("standard_scaler") && text.contains("with_std"), "{text}");
}

fn onad_registry_names() -> Vec<&'static str> {
    onad_models::REGISTRY.iter().map(|m| m.name).collect()
}

#[test]
fn shipped_data_sets_match_their_manifest() {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("datasets/manifest.json")).unwrap()).unwrap();
    for d in manifest["datasets"].as_array().unwrap() {
        let file = root().join("datasets").join(d["file"].as_str().unwrap());
        let bytes = std::fs::read(&file).unwrap();
        let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, d["sha256"].as_str().unwrap(), "{} changed without a manifest update", file.display());
        let s = summary(&[
            "run",
            "--input",
            file.to_str().unwrap(),
            "--label-column",
            d["label_column"].as_str().unwrap(),
            "--model",
            "null_model",
        ]);
        assert_eq!(s["rows"], d["rows"]);
        // PR-AUC of a constant score is the anomaly rate.
        let rate = d["anomalies"].as_f64().unwrap() / d["rows"].as_f64().unwrap();
        assert!((s["pr_auc"].as_f64().unwrap() - rate).abs() < 1e-12);
        // The source CSV is the one the manifest names.
        let src = std::fs::read(data_dir().join("shippable").join(d["built_from"].as_str().unwrap())).unwrap();
        let digest: String = Sha256::digest(&src).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, d["built_from_sha256"].as_str().unwrap());
    }
}

#[test]
fn protect_keeps_flagged_rows_out_of_learning() {
    let s = summary(&with_ma(&["run", "--protect", "quantile:0.95:500"]));
    let protected = s["protected_rows"].as_u64().unwrap();
    // About 5 % of 49,097 rows score above the 0.95 quantile of recent scores.
    assert!((1000..5000).contains(&protected), "{protected}");
    assert_eq!(s["params"]["protect"]["rule"], "quantile:0.95:500");
    assert_eq!(s["model"], "protect(standard_scaler|moving_average)");
    assert!(summary(&with_ma(&["run"]))["protected_rows"].is_null());
    let e = usage_error(&["run", "--protect", "often"]);
    assert!(e.contains("--protect"), "{e}");
}

#[test]
fn calibrate_wraps_the_model_and_its_method_is_a_set_path() {
    // Conformal calibration around protection: scores in [0, 1), the guard inside still acts.
    let s = summary(&with_ma(&[
        "run",
        "--protect",
        "quantile:0.95:500",
        "--calibrate",
        "conformal:500",
        "--threshold",
        "0.99",
    ]));
    assert_eq!(s["model"], "calibrate(protect(standard_scaler|moving_average))");
    assert_eq!(s["params"]["calibrate"]["method"], "conformal:500");
    assert_eq!(s["params"]["calibrate"]["model"]["protect"]["rule"], "quantile:0.95:500");
    assert!(s["protected_rows"].as_u64().unwrap() > 0);
    // A p-value of at most 0.01 flags on the order of 1 % of the rows (SHUTTLE has 7 % anomalies).
    let flagged = s["anomalies"].as_u64().unwrap() as f64 / s["rows"].as_u64().unwrap() as f64;
    assert!((0.005..0.1).contains(&flagged), "{flagged}");
    let z = summary(&with_ma(&["run", "--calibrate", "conformal", "--set", "calibrate.method=zscore:200"]));
    assert_eq!(z["params"]["calibrate"]["method"], "zscore:200");
    let e = usage_error(&["run", "--calibrate", "isotonic"]);
    assert!(e.contains("--calibrate") && e.contains("zscore[:WINDOW]"), "{e}");
}

#[test]
fn plus_joins_pipelines_into_an_ensemble() {
    let s = summary(&[
        "run",
        "--model",
        "standard_scaler|knn + asd_isolation_forest",
        "--set",
        "ensemble.combine=median",
        "--set",
        "knn.k=10",
        "--set",
        "knn.window_size=500",
        "--set",
        "knn.warm_up=10",
        "--set",
        "seed=3",
    ]);
    assert_eq!(s["model"], "ensemble:median(standard_scaler|knn, asd_isolation_forest)");
    let e = &s["params"]["ensemble"];
    assert_eq!(e["combine"], "median");
    assert_eq!(e["calibration"], "conformal:1000");
    assert_eq!(e["members"][0]["detector"]["knn"]["k"], 10);
    assert_eq!(e["members"][1]["detector"]["asd_isolation_forest"]["seed"], 3);
    // Calibrated members on SHUTTLE: a working detector, scores in [0, 1).
    assert!(s["roc_auc"].as_f64().unwrap() > 0.8, "{}", s["roc_auc"]);
    let e = usage_error(&["run", "--model", "knn + "]);
    assert!(e.contains("empty") && e.contains("'+'"), "{e}");
    let e = usage_error(&["run", "--model", "knn + asd_isolation_forest", "--set", "ensemble.combine=vote"]);
    assert!(e.contains("ensemble.combine") && e.contains("mean_rank"), "{e:#}");
}

#[test]
fn set_paths_reach_through_protect() {
    // standard_scaler|moving_average on f1 behind --protect, by full paths and by their shortest
    // spellings: the same spec, the same run.
    let full = summary(&with_ma(&[
        "run",
        "--protect",
        "quantile:0.9:200",
        "--set",
        "protect.model.detector.window_size=30",
        "--set",
        "protect.model.transformers.0.with_std=false",
        "--set",
        "protect.rule=quantile:0.8:100",
    ]));
    let short = summary(&with_ma(&[
        "run",
        "--protect",
        "quantile:0.9:200",
        "--set",
        "window_size=30",
        "--set",
        "standard_scaler.with_std=false",
        "--set",
        "rule=quantile:0.8:100",
    ]));
    assert_eq!(full["params"], short["params"]);
    assert_eq!(full["params"]["protect"]["rule"], "quantile:0.8:100");
    let model = &full["params"]["protect"]["model"];
    assert_eq!(model["detector"]["moving_average"]["window_size"], 30);
    assert_eq!(model["transformers"][0]["standard_scaler"]["with_std"], false);
    assert_eq!(full["protected_rows"], short["protected_rows"]);
    assert!(full["protected_rows"].as_u64().unwrap() > 0);
    // A wrong path lists the paths there are, through the protect node.
    let e = usage_error(&with_ma(&["run", "--protect", "2", "--set", "protect.model.window=3"]));
    assert!(e.contains("protect.rule") && e.contains("protect.model.detector.window_size"), "{e}");
    let e = usage_error(&with_ma(&["run", "--set", "protect.rule=2"]));
    assert!(e.contains("unknown parameter 'protect.rule'") && e.contains("detector.window_size"), "{e}");
}

#[test]
fn pipelines_of_any_length_run_from_the_command_line() {
    let s = summary(&[
        "run",
        "--model",
        "standard_scaler|incremental_pca|moving_mahalanobis_distance",
        "--set",
        "n_components=3",
        "--set",
        "window_size=200",
    ]);
    assert_eq!(s["model"], "standard_scaler|incremental_pca|moving_mahalanobis_distance");
    assert_eq!(s["params"]["transformers"][1]["incremental_pca"]["n_components"], 3);
    let roc = s["roc_auc"].as_f64().unwrap();
    assert!(roc > 0.6, "a projected Mahalanobis distance should rank SHUTTLE's anomalies: {roc}");
    let e = usage_error(&["run", "--model", "standard_scaler|incremental_pca|moving_median", "--set", "window_size=5"]);
    assert!(e.contains("n_components"), "{e}");
}

/// Runs `onad run` with checkpoints into `dir`, output to `out`, optional failpoint; returns the status.
fn checkpointed(input: &str, dir: &Path, out: &Path, resume: bool, failpoint: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onad"));
    cmd.current_dir(root()).args([
        "run",
        "--quiet",
        "--input",
        input,
        "--batch-size",
        "1000",
        "--checkpoint-every",
        "3000",
    ]);
    cmd.arg("--checkpoint").arg(dir).arg("--output").arg(out);
    if resume {
        cmd.arg("--resume");
    }
    cmd.env_remove("ONAD_FAILPOINT");
    if let Some(f) = failpoint {
        cmd.env("ONAD_FAILPOINT", f);
    }
    cmd.output().unwrap()
}

#[test]
fn killed_runs_resume_to_byte_identical_output() {
    // T1: SIGKILL at several rows, over CSV and Parquet; the resumed output equals an uninterrupted run.
    let csv = data_dir().join("shippable/shuttle_odds.csv");
    let parquet = root().join("datasets/shuttle.parquet");
    let tmp = tempfile::tempdir().unwrap();
    for (k, input) in [csv.to_str().unwrap(), parquet.to_str().unwrap()].into_iter().enumerate() {
        let full = tmp.path().join("full.csv");
        let o = onad(&["run", "--quiet", "--input", input, "--batch-size", "1000", "--output", full.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let expected = std::fs::read(&full).unwrap();
        // Rows chosen by a fixed generator: inside the first checkpoint interval, between checkpoints, near the end.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut kill_rows = vec![17, 2999, 3000, 30_001];
        for _ in 0..3 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            kill_rows.push((x >> 33) % 49_000);
        }
        for row in kill_rows {
            let dir = tmp.path().join(format!("ck-{k}-{row}"));
            let out = tmp.path().join(format!("out-{k}-{row}.csv"));
            let killed = checkpointed(input, &dir, &out, false, Some(&format!("kill-at-row:{row}")));
            assert_eq!(
                killed.status.code(),
                None,
                "row {row}: the process should die by a signal: {}",
                stderr(&killed)
            );
            let resumed = checkpointed(input, &dir, &out, true, None);
            assert!(resumed.status.success(), "row {row}: {}", stderr(&resumed));
            assert!(
                std::fs::read(&out).unwrap() == expected,
                "{input}: kill at row {row}: output differs after resume"
            );
        }
    }
}

/// Every row of a Parquet output as (row, score bits, threshold bits, anomaly, label bits).
fn parquet_rows(path: &Path) -> Vec<(u64, u64, u64, bool, u64)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, UInt64Type};
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let mut out = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let f = |name: &str| b.column_by_name(name).unwrap().as_primitive::<Float64Type>().clone();
        let (score, threshold, label) = (f("score"), f("threshold"), f("label"));
        let row = b.column_by_name("row").unwrap().as_primitive::<UInt64Type>().clone();
        let anomaly = b.column_by_name("anomaly").unwrap().as_boolean().clone();
        for i in 0..b.num_rows() {
            let t = threshold.value(i).to_bits();
            out.push((row.value(i), score.value(i).to_bits(), t, anomaly.value(i), label.value(i).to_bits()));
        }
    }
    out
}

#[test]
fn killed_runs_resume_every_sink_to_identical_output() {
    // T1 over every file sink at once: CSV, JSON Lines, alerts and standard output redirected to a file are
    // byte-identical to an uninterrupted run after SIGKILL and --resume; Parquet has the same rows.
    let input = root().join("datasets/shuttle.parquet");
    let tmp = tempfile::tempdir().unwrap();
    let run = |dir: &Path, resume: bool, failpoint: Option<String>| -> Output {
        let stdout = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stdout.csv")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_onad"));
        cmd.current_dir(root()).args(["run", "--quiet", "--batch-size", "700", "--checkpoint-every", "2800"]);
        cmd.arg("--input").arg(&input).arg("--checkpoint").arg(dir.join("ck"));
        for name in ["out.csv", "out.jsonl", "out.parquet"] {
            cmd.arg("--output").arg(dir.join(name));
        }
        cmd.args(["--output", "-"]).arg("--alerts").arg(dir.join("alerts.csv")).stdout(stdout);
        if resume {
            cmd.arg("--resume");
        }
        cmd.env_remove("ONAD_FAILPOINT");
        if let Some(f) = failpoint {
            cmd.env("ONAD_FAILPOINT", f);
        }
        cmd.output().unwrap()
    };
    let full = tmp.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    let o = run(&full, false, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected_rows = parquet_rows(&full.join("out.parquet"));
    assert_eq!(expected_rows.len(), 49_097);
    let alerts = std::fs::read_to_string(full.join("alerts.csv")).unwrap();
    assert!(alerts.lines().skip(1).all(|l| l.split(',').nth(2) == Some("1")) && alerts.lines().count() > 10);
    for row in [5u64, 2_799, 2_800, 31_337, 49_096] {
        let dir = tmp.path().join(format!("kill-{row}"));
        std::fs::create_dir_all(&dir).unwrap();
        let killed = run(&dir, false, Some(format!("kill-at-row:{row}")));
        assert_eq!(killed.status.code(), None, "row {row}: {}", stderr(&killed));
        let resumed = run(&dir, true, None);
        assert!(resumed.status.success(), "row {row}: {}", stderr(&resumed));
        for name in ["out.csv", "out.jsonl", "stdout.csv", "alerts.csv"] {
            assert!(
                std::fs::read(dir.join(name)).unwrap() == std::fs::read(full.join(name)).unwrap(),
                "kill at row {row}: {name} differs after resume"
            );
        }
        assert!(parquet_rows(&dir.join("out.parquet")) == expected_rows, "kill at row {row}: Parquet rows differ");
        assert!(!dir.join("out.parquet.parts").exists());
    }
    // Resuming with standard output emptied (`>` instead of `>>`) is refused, naming the redirection.
    let dir = tmp.path().join("kill-5");
    std::fs::write(dir.join("stdout.csv"), "").unwrap();
    let again = run(&dir, true, None);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("redirect with >>"), "{}", stderr(&again));
}

#[test]
fn sigterm_writes_a_final_checkpoint_and_resume_has_no_duplicates() {
    // T12: SIGTERM mid-stream stops after the batch with a checkpoint; the restart continues exactly there.
    let tmp = tempfile::tempdir().unwrap();
    let input = root().join("datasets/shuttle.parquet");
    let input = input.to_str().unwrap();
    let full = tmp.path().join("full.csv");
    assert!(onad(&["run", "-q", "--input", input, "--output", full.to_str().unwrap()]).status.success());
    let (dir, out) = (tmp.path().join("ck"), tmp.path().join("out.csv"));
    let first = checkpointed(input, &dir, &out, false, Some("term-at-row:12345"));
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stderr(&first).contains("interrupted by a signal"), "{}", stderr(&first));
    let partial = std::fs::read_to_string(&out).unwrap();
    let last_row: u64 = partial.lines().last().unwrap().split(',').next().unwrap().parse().unwrap();
    assert_eq!(last_row, 12_999, "stops at the end of the batch holding row 12345");
    let second = checkpointed(input, &dir, &out, true, None);
    assert!(second.status.success(), "{}", stderr(&second));
    let text = std::fs::read_to_string(&out).unwrap();
    let ids: Vec<&str> = text.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    let unique: std::collections::HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no row written twice");
    assert_eq!(text, std::fs::read_to_string(&full).unwrap());
}

#[test]
fn a_crash_while_writing_a_checkpoint_falls_back_to_the_previous_one() {
    // T2: abort after writing the temp file, before the rename, and before the directory fsync.
    let tmp = tempfile::tempdir().unwrap();
    let input = root().join("datasets/shuttle.parquet");
    let input = input.to_str().unwrap();
    let full = tmp.path().join("full.csv");
    assert!(onad(&["run", "-q", "--input", input, "--output", full.to_str().unwrap()]).status.success());
    for point in ["after-write", "before-rename", "before-dir-fsync"] {
        let (dir, out) = (tmp.path().join(point), tmp.path().join(format!("{point}.csv")));
        let crashed = checkpointed(input, &dir, &out, false, Some(point));
        assert!(!crashed.status.success(), "{point}: should have aborted");
        let resumed = checkpointed(input, &dir, &out, true, None);
        assert!(resumed.status.success(), "{point}: {}", stderr(&resumed));
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&full).unwrap(), "{point}: output differs");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{point}: temp files left: {leftovers:?}");
    }
}

#[test]
fn damaged_checkpoints_fall_back_or_fail_clearly() {
    // T3 at the CLI level: a truncated newest generation falls back with a warning; all damaged is exit 2.
    let tmp = tempfile::tempdir().unwrap();
    let input = root().join("datasets/shuttle.parquet");
    let input = input.to_str().unwrap();
    let (dir, out) = (tmp.path().join("ck"), tmp.path().join("out.csv"));
    let killed = checkpointed(input, &dir, &out, false, Some("kill-at-row:40000"));
    assert_eq!(killed.status.code(), None);
    // The directory holds the generations and the lock file.
    let mut gens: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("checkpoint-"))
        .collect();
    gens.sort();
    assert!(gens.len() >= 2, "{gens:?}");
    let newest = gens.last().unwrap();
    let bytes = std::fs::read(newest).unwrap();
    std::fs::write(newest, &bytes[..bytes.len() / 2]).unwrap();
    let resumed = checkpointed(input, &dir, &out, true, None);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("warning: skipped a damaged checkpoint") && stderr(&resumed).contains("truncated"),
        "{}",
        stderr(&resumed)
    );
    for g in std::fs::read_dir(&dir).unwrap().flatten() {
        std::fs::write(g.path(), b"garbage").unwrap();
    }
    let o = checkpointed(input, &dir, &out, true, None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no valid checkpoint"), "{}", stderr(&o));
}

#[test]
fn error_rate_policy_stops_a_bad_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("noisy.csv");
    let mut text = String::from("a,b,label\n");
    for i in 0..1000 {
        if i % 20 == 0 { text.push_str("x,1,0\n") } else { text.push_str(&format!("{i},1,0\n")) }
    }
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap();
    // 5 % bad rows: passes a 10 % limit, fails a 1 % limit.
    let s = summary(&["run", "--input", p, "--model", "null_model", "--max-error-rate", "0.1"]);
    assert_eq!(s["skipped"], 50);
    let o = onad(&["run", "-q", "--input", p, "--model", "null_model", "--max-error-rate", "0.01"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("rows read were bad") && stderr(&o).contains("non_numeric"), "{}", stderr(&o));
}

#[test]
fn json_lines_and_sqlite_inputs_score_like_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let (csv, jsonl) = (tmp.path().join("d.csv"), tmp.path().join("d.jsonl"));
    let (mut c, mut j) = (String::from("a,b,label\n"), String::new());
    for i in 0..300 {
        let (a, b, l) = ((i % 17) as f64 * 0.5, if i == 150 { 40.0 } else { (i % 5) as f64 }, u8::from(i == 150));
        c.push_str(&format!("{a},{b},{l}\n"));
        j.push_str(&format!("{{\"a\": {a}, \"b\": {b}, \"label\": {l}}}\n"));
    }
    std::fs::write(&csv, c).unwrap();
    std::fs::write(&jsonl, j).unwrap();
    let run = |input: &str, name: &str| {
        let out = tmp.path().join(name);
        let o = onad(&[
            "run",
            "-q",
            "--input",
            input,
            "--model",
            "moving_mahalanobis_distance",
            "--set",
            "window_size=50",
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{input}: {}", stderr(&o));
        std::fs::read_to_string(out).unwrap()
    };
    let from_csv = run(csv.to_str().unwrap(), "c.out");
    assert_eq!(from_csv, run(jsonl.to_str().unwrap(), "j.out"), "JSON Lines differs from CSV");
    assert_eq!(from_csv.lines().count(), 301);
}

#[test]
fn per_key_models_give_identical_output_for_1_2_and_4_workers() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("entities.csv");
    let mut text = String::from("host,latency,bytes,label\n");
    for i in 0..20_000u64 {
        let host = (i * 7919) % 97;
        let spike = i % 501 == 0;
        let latency = host as f64 + (i % 13) as f64 * 0.1 + if spike { 40.0 } else { 0.0 };
        text.push_str(&format!("{host},{latency},{},{}\n", (i % 5) * 100, u8::from(spike)));
    }
    std::fs::write(&input, text).unwrap();
    let mut outputs = Vec::new();
    for workers in ["1", "2", "4"] {
        let out = tmp.path().join(format!("w{workers}.csv"));
        let s = summary(&[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--key",
            "host",
            "--workers",
            workers,
            "--model",
            "moving_average",
            "--set",
            "window_size=20",
            "--set",
            "key=latency",
            "--output",
            out.to_str().unwrap(),
        ]);
        assert_eq!(s["rows"], 20_000);
        assert_eq!(s["keyed_models"]["created"], 97);
        assert_eq!(s["workers"].as_u64(), Some(workers.parse().unwrap()));
        assert!(s["roc_auc"].as_f64().unwrap() > 0.9, "{s}");
        outputs.push(std::fs::read_to_string(out).unwrap());
    }
    assert_eq!(outputs[0].lines().count(), 20_001);
    assert_eq!(outputs[0], outputs[1], "2 workers differ from 1");
    assert_eq!(outputs[0], outputs[2], "4 workers differ from 1");
    let capped = summary(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--key",
        "host",
        "--max-keys",
        "10",
        "--model",
        "null_model",
    ]);
    assert!(capped["keyed_models"]["evicted"].as_u64().unwrap() > 10_000, "{capped}");
    // Learn protection counts over every per-key model: the rows scored above the rule were not learned.
    for workers in ["1", "3"] {
        let out = tmp.path().join(format!("protected-{workers}.csv"));
        let s = summary(&[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--key",
            "host",
            "--workers",
            workers,
            "--model",
            "moving_average",
            "--set",
            "window_size=20",
            "--set",
            "key=latency",
            "--protect",
            "1.5",
            "--output",
            out.to_str().unwrap(),
        ]);
        let above = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .skip(1)
            .filter(|l| l.split(',').nth(1).unwrap().parse::<f64>().unwrap() > 1.5)
            .count() as u64;
        assert!(above > 10, "{above}");
        assert_eq!(s["protected_rows"].as_u64(), Some(above), "{workers} workers: {s}");
    }
    let e = usage_error(&["run", "--input", input.to_str().unwrap(), "--key", "nope"]);
    assert!(e.contains("key column 'nope' not found"), "{e}");
}

#[test]
fn checkpoint_format_v1_fixture_still_resumes() {
    // T11: a checkpoint written by format version 1 (model kinds by registry position), migrated on load.
    resumes_from_fixture("tests/data/checkpoint-v1");
}

#[test]
fn checkpoint_format_v2_fixture_resumes() {
    // Format 2 as the first builds wrote it (model kinds by name, flat pipelines, one position per sink).
    resumes_from_fixture("tests/data/checkpoint-v2");
}

#[test]
fn checkpoint_format_v3_fixture_resumes() {
    // Format 3 (model trees, the input's columns recorded, one tally of evicted per-key models).
    resumes_from_fixture("tests/data/checkpoint-v3");
}

#[test]
fn checkpoint_format_v4_fixture_resumes() {
    // The current format (format 3 with rows protected and drift resets of evicted per-key models).
    resumes_from_fixture("tests/data/checkpoint-v4");
}

/// Resumes the committed checkpoint and output of `dir` and compares with an uninterrupted run.
fn resumes_from_fixture(fixture_dir: &str) {
    // Resumed as a user would: the same command in the same directory (outputs are recorded as named).
    let tmp = tempfile::tempdir().unwrap();
    let fixture = root().join(fixture_dir);
    let input = root().join("tests/data/unlabelled.csv").display().to_string();
    let run_in_tmp = |dir: &str, out: &str, resume: bool| -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_onad"));
        cmd.current_dir(tmp.path()).env_remove("ONAD_FAILPOINT");
        cmd.args(["run", "-q", "--input", &input, "--no-label", "--model", "moving_average"]);
        cmd.args(["--set", "window_size=3", "--set", "key=a", "--batch-size", "2", "--output", out]);
        if resume {
            cmd.args(["--checkpoint-every", "2", "--resume", "--checkpoint", dir]);
        }
        cmd.output().unwrap()
    };
    let setup = |dir: &str, out: &str, bytes: Vec<u8>| {
        std::fs::create_dir(tmp.path().join(dir)).unwrap();
        std::fs::write(tmp.path().join(dir).join("checkpoint-000000000001.onad"), bytes).unwrap();
        std::fs::copy(fixture.join("out.csv"), tmp.path().join(out)).unwrap();
    };
    let original = std::fs::read(fixture.join("checkpoint-000000000001.onad")).unwrap();
    setup("ck", "out.csv", original.clone());
    let o = run_in_tmp("ck", "out.csv", true);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = run_in_tmp("", "full.csv", false);
    assert!(f.status.success(), "{}", stderr(&f));
    let read = |name: &str| std::fs::read_to_string(tmp.path().join(name)).unwrap();
    assert_eq!(read("out.csv"), read("full.csv"));

    // The same file claiming a version this build does not know: refused, exit 2, the version named.
    let mut bytes = original;
    bytes[8..10].copy_from_slice(&99u16.to_le_bytes());
    let n = bytes.len();
    let crc = crc32fast::hash(&bytes[8..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    setup("ck2", "out2.csv", bytes);
    let o = run_in_tmp("ck2", "out2.csv", true);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("checkpoint-000000000001.onad") && e.contains("format version 99 is not supported"), "{e}");
}

#[test]
fn quantile_threshold_and_windowed_evaluation() {
    let s = summary(&["run", "--threshold", "quantile:0.95:2000", "--eval-window", "5000"]);
    let flagged = s["anomalies"].as_f64().unwrap() / 49_097.0;
    assert!((0.03..0.07).contains(&flagged), "about 5 % flagged above the 0.95 quantile: {flagged}");
    assert_eq!(s["windowed"]["windows"].as_array().unwrap().len(), 9);
    assert_eq!(s["windowed"]["windows"][8]["end"], 45_000);
    let mean = s["windowed"]["mean_roc_auc"].as_f64().unwrap();
    assert!(mean > 0.9 && mean <= 1.0, "{mean}");
    let e = usage_error(&["run", "--threshold", "quantile:1.5"]);
    assert!(e.contains("quantile must be in (0, 1)"), "{e}");
}

#[test]
fn checkpoints_can_be_timed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ck");
    let o = onad(&[
        "run",
        "-q",
        "--batch-size",
        "500",
        "--checkpoint",
        dir.to_str().unwrap(),
        "--checkpoint-every",
        "1000000",
        "--checkpoint-seconds",
        "0",
        "--checkpoint-keep",
        "100",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // One per batch (99 batches) plus the final one, beside the lock file.
    let gens = std::fs::read_dir(&dir).unwrap().flatten().filter(|e| e.file_name() != "lock").count();
    assert_eq!(gens, 100);
}

#[test]
fn progress_reports_memory_every_n_rows() {
    let o = onad(&["run", "-q", "--batch-size", "1000", "--report-every", "10000"]);
    assert!(o.status.success());
    let lines: Vec<String> = stderr(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].starts_with("rows 10000: resident ") && lines[0].contains("MiB"), "{lines:?}");
}

#[test]
fn per_key_runs_checkpoint_and_resume_exactly_even_with_another_worker_count() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("entities.csv");
    let mut text = String::from("host,latency,label\n");
    for i in 0..30_000u64 {
        let host = (i * 7919) % 61;
        let spike = i % 433 == 0;
        text.push_str(&format!(
            "{host},{},{}\n",
            host as f64 + (i % 11) as f64 * 0.3 + if spike { 25.0 } else { 0.0 },
            u8::from(spike)
        ));
    }
    std::fs::write(&input, text).unwrap();
    let input = input.to_str().unwrap();
    let base = [
        "run",
        "-q",
        "--input",
        input,
        "--key",
        "host",
        "--model",
        "moving_median",
        "--set",
        "window_size=15",
        "--set",
        "key=latency",
        "--batch-size",
        "700",
        "--checkpoint-every",
        "2000",
    ];
    let full = tmp.path().join("full.csv");
    let mut args = base.to_vec();
    args.extend(["--workers", "2", "--output", full.to_str().unwrap()]);
    assert!(onad(&args).status.success());
    let expected = std::fs::read(&full).unwrap();
    for (row, before, after) in [(5_555u64, "2", "2"), (17_001, "1", "4"), (29_999, "4", "1")] {
        let (dir, out) = (tmp.path().join(format!("ck{row}")), tmp.path().join(format!("o{row}.csv")));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_onad"));
        cmd.current_dir(root())
            .args(base)
            .args(["--workers", before, "--checkpoint"])
            .arg(&dir)
            .arg("--output")
            .arg(&out);
        cmd.env("ONAD_FAILPOINT", format!("kill-at-row:{row}"));
        let killed = cmd.output().unwrap();
        assert_eq!(killed.status.code(), None, "{}", stderr(&killed));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_onad"));
        cmd.current_dir(root())
            .args(base)
            .args(["--workers", after, "--resume", "--checkpoint"])
            .arg(&dir)
            .arg("--output")
            .arg(&out);
        cmd.env_remove("ONAD_FAILPOINT");
        let resumed = cmd.output().unwrap();
        assert!(resumed.status.success(), "{}", stderr(&resumed));
        assert!(
            std::fs::read(&out).unwrap() == expected,
            "kill at {row} ({before} -> {after} workers): output differs"
        );
    }
}

#[test]
fn datasets_can_be_listed_and_fetched_into_a_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let from = data_dir().join("reference-only");
    let fetch = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_onad"))
            .current_dir(root())
            .env("ONAD_CACHE_DIR", &cache)
            .env_remove("ONAD_DATASETS_BASE")
            .args(["datasets", "fetch", name, "--quiet", "--from", from.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let o = fetch("fraud");
    assert!(o.status.success(), "{}", stderr(&o));
    let path = PathBuf::from(stdout(&o).trim());
    assert!(path.starts_with(&cache) && path.exists(), "{path:?}");
    // The fetched file scores end to end.
    let s = summary(&[
        "run",
        "--input",
        path.to_str().unwrap(),
        "--model",
        "moving_mahalanobis_distance",
        "--set",
        "window_size=200",
    ]);
    assert_eq!(s["rows"], 1722);
    let listing =
        Command::new(env!("CARGO_BIN_EXE_onad")).env("ONAD_CACHE_DIR", &cache).arg("datasets").output().unwrap();
    let text = stdout(&listing);
    assert!(text.contains("shuttle") && text.contains("fraud") && text.contains("[cached]"), "{text}");
    let o = fetch("no-such-set");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown data set 'no-such-set'"), "{}", stderr(&o));
}

#[test]
fn text_columns_are_rejected_or_left_out_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("hosts.csv");
    let mut text = String::from("host,ts,cpu,mem,label\n");
    for i in 0..200 {
        text.push_str(&format!(
            "web-{},2026-11-25T10:{:02}:00,{},{},{}\n",
            i % 3,
            i % 60,
            i % 7,
            i % 5,
            u8::from(i == 100)
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let input = csv.to_str().unwrap();
    // By default every row has text in a feature column: all are bad rows, and the summary says why.
    let s = summary(&["run", "--input", input, "--model", "null_model"]);
    assert_eq!((s["rows"].as_u64(), s["skipped_by_reason"]["non_numeric"].as_u64()), (Some(0), Some(200)), "{s}");
    // Left out by name, or every text column at once: the same 200 rows and scores.
    let by_name = tmp.path().join("a.csv");
    let auto = tmp.path().join("b.csv");
    for (out, extra) in [(&by_name, vec!["--exclude", "host,ts"]), (&auto, vec!["--non-numeric", "exclude"])] {
        let mut args = vec!["run", "-q", "--input", input, "--output", out.to_str().unwrap()];
        args.extend(extra);
        let o = onad(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let a = std::fs::read_to_string(&by_name).unwrap();
    assert_eq!(a.lines().count(), 201);
    assert_eq!(a, std::fs::read_to_string(&auto).unwrap());
    // --columns keeps only the named features; an unknown name is a one-line configuration error.
    let s = summary(&["run", "--input", input, "--columns", "cpu", "--model", "null_model"]);
    assert_eq!(s["rows"].as_u64(), Some(200), "{s}");
    let err = usage_error(&["run", "--input", input, "--exclude", "hots"]);
    assert!(err.contains("column 'hots', which the input lacks"), "{err}");
}

#[test]
fn id_columns_make_text_keys_and_a_resume_must_read_them_the_same_way() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("payments.csv");
    let mut text = String::from("payer,account,amount,label\n");
    for i in 0..200 {
        // Text payers, and account numbers past 2^53 that a float would merge.
        text.push_str(&format!("user-{},{},{},{}\n", i % 4, 9_007_199_254_740_992u64 + i % 2, i % 7, u8::from(i == 9)));
    }
    std::fs::write(&csv, text).unwrap();
    let input = csv.to_str().unwrap();
    // Text ids are features (and keys): one model per payer.
    let s = summary(&["run", "--input", input, "--ids", "payer,account", "--key", "payer", "--model", "null_model"]);
    assert_eq!(s["rows"].as_u64(), Some(200), "{s}");
    assert_eq!(s["keyed_models"]["created"].as_u64(), Some(4), "{s}");
    // Without the id role the payer column is text: every row is a bad row, counted.
    let s = summary(&["run", "--input", input, "--model", "null_model"]);
    assert_eq!(s["skipped_by_reason"]["non_numeric"].as_u64(), Some(200), "{s}");
    // A checkpoint records which columns are ids: resuming with `account` read as a number is refused.
    let ck = tmp.path().join("ck");
    let ck = ck.to_str().unwrap();
    let first =
        onad(&["run", "-q", "--input", input, "--ids", "payer,account", "--checkpoint", ck, "--model", "null_model"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let err = usage_error(&[
        "run",
        "--input",
        input,
        "--ids",
        "payer",
        "--checkpoint",
        ck,
        "--resume",
        "--model",
        "null_model",
    ]);
    assert!(err.contains("columns payer (id), account (id), amount and labels"), "{err}");
    assert!(err.contains("columns payer (id), account, amount and labels"), "{err}");
    let err = usage_error(&["run", "--input", input, "--ids", "paer"]);
    assert!(err.contains("ids names column 'paer', which the input lacks"), "{err}");
}

#[test]
fn a_config_file_gives_the_same_output_as_the_same_flags_and_flags_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    let input = root().join("datasets/shuttle.parquet");
    let input = input.to_str().unwrap();
    let flags_out = tmp.path().join("flags.csv");
    let o = onad(&[
        "run",
        "-q",
        "--input",
        input,
        "--model",
        "standard_scaler|moving_median",
        "--set",
        "window_size=5",
        "--set",
        "key=f1",
        "--threshold",
        "quantile:0.9:50",
        "--protect",
        "quantile:0.99:100",
        "--order",
        "learn-then-score",
        "--batch-size",
        "300",
        "--output",
        flags_out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config = tmp.path().join("job.toml");
    let file_out = tmp.path().join("file.csv");
    std::fs::write(
        &config,
        format!(
            "input = {input:?}\nmodel = \"standard_scaler|moving_median\"\nset = [\"window_size=5\", \"key=f1\"]\n\
             threshold = \"quantile:0.9:50\"\nprotect = \"quantile:0.99:100\"\norder = \"learn-then-score\"\n\
             batch-size = 300\noutput = [{:?}]\nquiet = true\n",
            file_out.to_str().unwrap()
        ),
    )
    .unwrap();
    let o = onad(&["config", "check", config.to_str().unwrap()]);
    assert!(o.status.success() && stdout(&o).contains(": ok"), "{}", stderr(&o));
    let o = onad(&["run", "--config", config.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!std::fs::read(&flags_out).unwrap().is_empty());
    assert_eq!(std::fs::read(&flags_out).unwrap(), std::fs::read(&file_out).unwrap(), "config file != flags");

    // A flag overrides the file's value: another threshold gives another output.
    let over = tmp.path().join("over.csv");
    let o =
        onad(&["run", "--config", config.to_str().unwrap(), "--threshold", "none", "--output", over.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&over).unwrap();
    assert!(text.lines().skip(1).all(|l| l.split(',').nth(2) == Some("0")), "--threshold none flags nothing");
    assert!(std::fs::read_to_string(&file_out).unwrap().lines().any(|l| l.split(',').nth(2) == Some("1")));
}

#[test]
fn config_errors_name_the_line_column_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str| -> String {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        let e = usage_error(&["config", "check", path.to_str().unwrap()]);
        assert!(e.contains(name), "{e}");
        e
    };
    let e = check("key.toml", "batch-size = 10\nwindw = 3\n");
    assert!(e.contains("line 2, column 1") && e.contains("windw") && e.contains("batch-size"), "{e}");
    let e = check("threshold.toml", "quiet = true\nthreshold = \"adaptive:x\"\n");
    assert!(e.contains("line 2") && e.contains("adaptive:x") && e.contains("quantile:Q"), "{e}");
    let e = check("type.toml", "batch-size = \"big\"\n");
    assert!(e.contains("line 1") && e.contains("batch-size"), "{e}");
    let e = check("syntax.toml", "input = \"a.csv\n");
    assert!(e.contains("line 1"), "{e}");
    let e = check("model.toml", "model = \"moving_avg\"\n");
    assert!(e.contains("unknown model 'moving_avg'"), "{e}");
    let e = check("rules.toml", "resume = true\n");
    assert!(e.contains("--checkpoint"), "{e}");
    let e = check("table.toml", "[model]\ndetector = { moving_averge = {} }\n");
    assert!(e.contains("line 2") && e.contains("moving_averge") && e.contains("moving_average"), "{e}");
}

#[test]
fn a_model_table_in_a_config_file_is_the_model_and_set_reaches_into_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("job.toml");
    std::fs::write(
        &config,
        "quiet = true\nset = [\"window_size=50\"]\n\n[model.protect]\nrule = \"quantile:0.9:50\"\n\n\
         [model.protect.model]\ntransformers = [{ standard_scaler = {} }]\n\
         detector = { moving_average = { window_size = 3, key = \"f1\" } }\n",
    )
    .unwrap();
    let from_file = summary(&["run", "--config", config.to_str().unwrap()]);
    let from_flags = summary(&[
        "run",
        "--model",
        "standard_scaler|moving_average",
        "--protect",
        "quantile:0.9:50",
        "--set",
        "key=f1",
        "--set",
        "window_size=50",
    ]);
    assert_eq!(from_file["model"], "protect(standard_scaler|moving_average)");
    assert_eq!(from_file["params"], from_flags["params"]);
    assert_eq!(from_file["roc_auc"], from_flags["roc_auc"]);
    assert_eq!(from_file["protected_rows"], from_flags["protected_rows"]);
    assert!(from_file["protected_rows"].as_u64().unwrap() > 0);
}

#[test]
fn standard_input_is_read_with_a_format_and_standard_output_mixes_rows_and_summary_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let input = data_dir().join("shippable/shuttle_odds.csv");
    let from_file = tmp.path().join("file.csv");
    let o = onad(&["run", "-q", "--input", input.to_str().unwrap(), "--output", from_file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // `zcat flows.csv.gz | onad run --input - --format csv`: the same rows from a pipe.
    let piped = tmp.path().join("piped.csv");
    let o = Command::new(env!("CARGO_BIN_EXE_onad"))
        .current_dir(root())
        .args(["run", "-q", "--input", "-", "--format", "csv", "--output", piped.to_str().unwrap()])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&piped).unwrap(), std::fs::read(&from_file).unwrap());
    let e = usage_error(&["run", "--input", "-"]);
    assert!(e.contains("--format"), "{e}");
    let e = usage_error(&["run", "--input", "-", "--format", "xml"]);
    assert!(e.contains("xml") && e.contains("jsonl"), "{e}");
    // Rows on standard output, redirected to a file with `>`, then the summary after them.
    let redirected = tmp.path().join("stdout.txt");
    let o = Command::new(env!("CARGO_BIN_EXE_onad"))
        .current_dir(root())
        .args(["run", "--input", input.to_str().unwrap(), "--output", "-"])
        .stdout(std::fs::File::create(&redirected).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&redirected).unwrap();
    let rows = std::fs::read_to_string(&from_file).unwrap();
    assert!(text.starts_with(&rows), "the rows come first, whole");
    assert!(text[rows.len()..].starts_with("input "), "then the summary: {}", &text[rows.len()..]);
}

#[test]
fn eval_tables_every_model_on_every_data_set() {
    let dir = tempfile::tempdir().unwrap();
    let glass = data_dir().join("shippable/glass_odds.csv");
    // Flags and a config file together: two models by flag, one by table, two data sets.
    let config = dir.path().join("eval.toml");
    std::fs::write(
        &config,
        format!(
            "eval-window = 500\n[[data]]\nname = \"glass4\"\ninput = \"{}\"\ncolumns = [\"RI\", \"Na\", \"Mg\", \"Al\"]\n\
             [[models]]\nname = \"knn5\"\nmodel = {{ detector = {{ knn = {{ k = 5, window_size = 100, warm_up = 5 }} }} }}\n",
            glass.display()
        ),
    )
    .unwrap();
    let json = dir.path().join("eval.json");
    let md = dir.path().join("eval.md");
    let o = onad(&[
        "eval",
        "--config",
        config.to_str().unwrap(),
        "--model",
        "null_model",
        "--model",
        "standard_scaler|asd_isolation_forest",
        "--data",
        "shuttle",
        "--json",
        json.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 6, "3 models x 2 data sets");
    let find = |m: &str, d: &str| results.iter().find(|r| r["model"] == m && r["data"] == d).unwrap().clone();
    let null = find("null_model", "shuttle");
    assert_eq!(null["rows"], 49097);
    assert_eq!(null["roc_auc"], 0.5);
    let asd = find("standard_scaler|asd_isolation_forest", "shuttle");
    assert!(asd["roc_auc"].as_f64().unwrap() > 0.9 && asd["rows_per_sec"].as_f64().unwrap() > 0.0, "{asd}");
    assert!(asd["memory_peak_mib"].as_f64().unwrap() > 0.0 && asd["windows"].as_array().unwrap().len() > 10);
    assert_eq!(find("knn5", "glass4")["rows"], 214);
    let mean = report["mean_roc_auc"]["null_model"].as_f64().unwrap();
    assert_eq!(mean, 0.5);
    let table = std::fs::read_to_string(&md).unwrap();
    assert_eq!(table, stdout(&o));
    assert!(
        table.contains("| knn5 | glass4 | 214 |") && table.contains("Mean ROC-AUC over the 2 data sets"),
        "{table}"
    );

    // A failing pair is reported in the table and the exit code, without stopping the others.
    let o = onad(&["eval", "--model", "knn", "--model", "null_model", "--data", "shuttle"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("| knn | shuttle | error:") && stdout(&o).contains("| null_model | shuttle | 49097 |"));
    let e = usage_error(&["eval", "--model", "null_model"]);
    assert!(e.contains("at least one --data"), "{e}");
    let e = usage_error(&["eval", "--model", "nope", "--data", "shuttle"]);
    assert!(e.contains("unknown model 'nope'"), "{e}");
}

#[test]
fn a_false_alarm_rate_threshold_flags_that_share_of_a_clean_stream() {
    // Three features of seeded noise (no anomalies), KNN behind conformal calibration, p <= 0.01.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clean.csv");
    let mut text = String::from("a,b,c\n");
    let mut x = 7u64;
    let mut uniform = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..20_000 {
        let (u, v, w) = (uniform(), uniform(), uniform());
        text.push_str(&format!("{u},{},{}\n", u * 0.5 + v, w * 3.0));
    }
    std::fs::write(&path, text).unwrap();
    let s = summary(&[
        "run",
        "--input",
        path.to_str().unwrap(),
        "--no-label",
        "--model",
        "knn",
        "--set",
        "k=10",
        "--set",
        "window_size=500",
        "--set",
        "warm_up=10",
        "--calibrate",
        "conformal",
        "--threshold",
        "p:0.01",
    ]);
    assert_eq!(s["threshold"], "p:0.01");
    let rate = s["anomalies"].as_f64().unwrap() / s["rows"].as_f64().unwrap();
    assert!((0.005..=0.02).contains(&rate), "{rate}");
    let e = usage_error(&["run", "--threshold", "p:0.01"]);
    assert!(e.contains("--calibrate conformal"), "{e}");
    let e = usage_error(&["run", "--calibrate", "zscore", "--threshold", "p:0.01"]);
    assert!(e.contains("--calibrate conformal"), "{e}");
    let e = usage_error(&["run", "--calibrate", "conformal", "--threshold", "p:2"]);
    assert!(e.contains("must be in (0, 1)"), "{e}");
}

#[test]
fn per_key_runs_count_drift_resets_over_every_model_alike_for_any_worker_count() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("hosts.csv");
    let mut text = String::from("host,latency\n");
    for i in 0..8_000u32 {
        // Hosts 0 and 1, whose latency steps up by 40 at row 3,000; then hosts 2 and 3, steady.
        let host = if i < 6_000 { i % 2 } else { 2 + i % 2 };
        let level = if (3_000..6_000).contains(&i) { 50.0 } else { 10.0 };
        text.push_str(&format!("{host},{}\n", level + f64::from((i * 7919) % 13) * 0.1));
    }
    std::fs::write(&csv, text).unwrap();
    let run = |workers: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--input",
            csv.to_str().unwrap(),
            "--no-label",
            "--key",
            "host",
            "--workers",
            workers,
            "--model",
            "moving_average",
            "--set",
            "key=latency",
            "--set",
            "window_size=50",
            "--drift",
            "page_hinkley",
            "--set",
            "page_hinkley.threshold=5",
        ];
        args.extend_from_slice(extra);
        summary(&args)
    };
    let one = run("1", &[]);
    let resets = one["drift_resets"].as_u64().unwrap();
    assert!(resets >= 2, "the models of hosts 0 and 1 both see their step: {one}");
    assert_eq!(run("3", &[])["drift_resets"].as_u64(), Some(resets));
    // With two models at most, hosts 2 and 3 evict the models of 0 and 1 after their resets: those still
    // count, and the total is the uncapped run's, for any worker count.
    for workers in ["1", "3"] {
        let capped = run(workers, &["--max-keys", "2"]);
        assert_eq!(capped["keyed_models"]["evicted"].as_u64(), Some(2), "{capped}");
        assert_eq!(capped["drift_resets"].as_u64(), Some(resets), "{capped}");
    }
}

#[test]
fn drift_nodes_report_their_resets() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("job.toml");
    std::fs::write(
        &config,
        "[model.drift]\ndetector = { page_hinkley = { threshold = 5.0 } }\non_drift = \"rewarm:200\"\n\
         model.detector = { asd_isolation_forest = { seed = 1 } }\n",
    )
    .unwrap();
    let s = summary(&["run", "--config", config.to_str().unwrap(), "--set", "drift.on_drift=reset"]);
    assert_eq!(s["model"], "drift(asd_isolation_forest)");
    assert_eq!(s["params"]["drift"]["on_drift"], "reset");
    assert!(s["drift_resets"].as_u64().unwrap() > 0, "{}", s["drift_resets"]);
    assert!(summary(&["run"])["drift_resets"].is_null());
    // The flag: around --protect, inside --calibrate, its detector's parameters as --set paths.
    let s = summary(&with_ma(&[
        "run",
        "--protect",
        "quantile:0.95:500",
        "--drift",
        "page_hinkley:rewarm:100",
        "--calibrate",
        "conformal",
        "--set",
        "page_hinkley.threshold=5",
    ]));
    assert_eq!(s["model"], "calibrate(drift(protect(standard_scaler|moving_average)))");
    let drift = &s["params"]["calibrate"]["model"]["drift"];
    assert_eq!(drift["on_drift"], "rewarm:100");
    assert_eq!(drift["detector"]["page_hinkley"]["threshold"], 5.0);
    assert!(s["drift_resets"].as_u64().unwrap() > 0, "{}", s["drift_resets"]);
    let e = usage_error(&["run", "--drift", "knn"]);
    assert!(e.contains("'knn' is not a drift detector"), "{e}");
    let e = usage_error(&["run", "--drift", "adwin:rewarm:0"]);
    assert!(e.contains("rewarm needs at least one row"), "{e:#}");
}

#[test]
fn evolving_keys_feed_a_feature_evolving_stream_to_xstream() {
    // 600 JSON lines whose features come and go: `b` only on even lines, `gpu` from line 300 on, and a
    // `note` key that is never a column.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evolving.jsonl");
    let mut text = String::new();
    for i in 0..600 {
        let mut fields = vec![format!("\"a\": {}", i % 7)];
        if i % 2 == 0 {
            fields.push(format!("\"b\": {}", i % 5));
        }
        if i >= 300 {
            fields.push(format!("\"gpu\": {}", i % 3));
        }
        if i % 100 == 50 {
            fields.push("\"note\": 1".to_owned());
        }
        fields.push(format!("\"label\": {}", u8::from(i % 97 == 0)));
        text.push_str(&format!("{{{}}}\n", fields.join(", ")));
    }
    std::fs::write(&path, text).unwrap();
    let input = path.to_str().unwrap();
    let args = ["run", "--input", input, "--label-column", "label", "--model", "xstream"];
    let s = summary(&[&args[..], &["--keys", "evolving", "--columns", "a,b,gpu"]].concat());
    assert_eq!((s["rows"].as_u64(), s["skipped"].as_u64()), (Some(600), Some(0)), "{s}");
    assert_eq!(s["ignored_keys"].as_u64(), Some(6), "{s}");
    // The same file under the default (fixed) keys: every line whose keys differ from the first's (a, b,
    // label) is bad; 147 even lines before 300 without a note are not.
    let s = summary(&args);
    assert_eq!(s["skipped"].as_u64(), Some(600 - 147), "{s}");
    assert_eq!(s["ignored_keys"].as_u64(), Some(0), "{s}");

    // `onad eval` data entries take the policy too.
    let config = dir.path().join("eval.toml");
    let entry = format!(
        "[[data]]\ninput = \"{input}\"\nlabel-column = \"label\"\ncolumns = [\"a\", \"b\", \"gpu\"]\nkeys = \"evolving\"\n"
    );
    std::fs::write(&config, format!("{entry}[[models]]\nmodel = \"xstream\"\n")).unwrap();
    let json = dir.path().join("eval.json");
    let o = onad(&["eval", "--config", config.to_str().unwrap(), "--json", json.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["results"][0]["rows"], 600, "{report}");
}

/// `onad run --report` and `onad report` write the same self-contained page, and headless Chromium renders
/// it: the screenshot is far from blank, and the rendered page holds its five plots.
#[test]
fn the_report_page_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (page, out, summary) = (dir.path().join("run.html"), dir.path().join("out.jsonl"), dir.path().join("s.json"));
    let o = onad(&[
        "run",
        "--quiet",
        "--output",
        out.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
        "--report",
        page.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let drawn = dir.path().join("drawn.html");
    let o = onad(&[
        "report",
        out.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
        "--out",
        drawn.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("49097 rows"), "{}", stdout(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<svg").count(), 5);
    assert!(html.contains("ROC-AUC <b>0.8882</b>"), "the page's ROC-AUC is the run's");
    // The page from the output file has the same plots (its title differs).
    let from_file = std::fs::read_to_string(&drawn).unwrap();
    assert_eq!(html.split("<h2>").skip(1).collect::<Vec<_>>(), from_file.split("<h2>").skip(1).collect::<Vec<_>>());

    let shot = dir.path().join("shot.png");
    let url = format!("file://{}", page.display());
    let mut child = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,2600"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the report test needs chromium on PATH (cargo xtask ci installs it)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "chromium did not finish within 120 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let png = std::fs::read(&shot).expect("chromium wrote a screenshot");
    assert_eq!(&png[1..4], b"PNG");
    // Width and height from the PNG header; a blank 1200 x 2600 page compresses to a few kilobytes.
    let (w, h) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!((w, h), (1200, 2600));
    assert!(png.len() > 60_000, "the screenshot is {} bytes: the page looks blank", png.len());
}

#[test]
fn models_name_shows_one_model_with_its_paper_and_a_command_that_runs() {
    let o = onad(&["models", "half_space_trees"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("half_space_trees (detector; the Python class HalfSpaceTrees)"), "{text}");
    assert!(text.contains("paper: Tan, Ting & Liu 2011, Fast Anomaly Detection for Streaming Data (IJCAI)"), "{text}");
    let trees = text.lines().find(|l| l.trim_start().starts_with("n_trees ")).unwrap();
    assert!(trees.contains("default 10"), "{trees}");
    let command = text.lines().skip_while(|l| *l != "example:").nth(1).unwrap().trim().to_owned();
    assert_eq!(command, "onad run --input data.csv --model half_space_trees");
    // The example runs (on the built-in data set in place of data.csv).
    let args: Vec<&str> = command.split_whitespace().skip(1).filter(|a| *a != "--input" && *a != "data.csv").collect();
    let o = onad(&[&args[..], &["--quiet"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    // Required parameters get a value in the example; models without a paper say so.
    let text = stdout(&onad(&["models", "moving_average"]));
    assert!(text.contains("reference: no paper") && text.contains("--set window_size="), "{text}");
    let err = usage_error(&["models", "forest"]);
    assert!(err.contains("no model named 'forest'") && err.contains("random_cut_forest"), "{err}");
    let json: Value = serde_json::from_str(&stdout(&onad(&["models", "mstream", "--json"]))).unwrap();
    assert_eq!(json["models"].as_array().unwrap().len(), 1);
    assert!(json["models"][0]["reference"].as_str().unwrap().contains("MStream"));
}

#[test]
fn checkpoint_inspect_shows_what_a_checkpoint_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (ck, out) = (dir.path().join("ck"), dir.path().join("out.csv"));
    let o = onad(&[
        "run",
        "--quiet",
        "--model",
        "half_space_trees",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--checkpoint-every",
        "20000",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = onad(&["checkpoint", "inspect", ck.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in
        ["format      4", "model       half_space_trees", "rows        49097", "position    row 49097", "with labels"]
    {
        assert!(text.contains(want), "{want} not in {text}");
    }
    assert!(text.contains(&format!("output      {} at ", out.display())), "{text}");
    let json: Value =
        serde_json::from_str(&stdout(&onad(&["checkpoint", "inspect", "--json", ck.to_str().unwrap()]))).unwrap();
    assert_eq!(json["generation"], 3, "the newest of generations at 20,000, 40,000 and the end");
    assert_eq!(json["params"]["detector"]["half_space_trees"]["n_trees"], 10);
    assert_eq!(json["generations"].as_array().unwrap().len(), 3);
    // A damaged newest generation is named, and the one before is shown.
    let newest = json["file"].as_str().unwrap().to_owned();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&newest, bytes).unwrap();
    let json: Value =
        serde_json::from_str(&stdout(&onad(&["checkpoint", "inspect", "--json", ck.to_str().unwrap()]))).unwrap();
    assert_eq!((json["generation"].as_u64(), json["generations"][0]["valid"].as_bool()), (Some(2), Some(false)));
    let err = usage_error(&["checkpoint", "inspect", &newest]);
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_definition() {
    let o = onad(&["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let script = stdout(&o);
    for word in ["_onad()", "report", "checkpoint", "--ordered-by", "--explain", "--on-bad-row"] {
        assert!(script.contains(word), "{word} not in the bash completions");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = onad(&["completions", shell]);
        assert!(o.status.success() && stdout(&o).contains("checkpoint"), "{shell}: {}", stderr(&o));
    }
    let o = onad(&["man"]);
    let page = stdout(&o);
    assert!(o.status.success() && page.contains(".TH onad 1"), "{page}");
    assert!(page.contains("onad\\-report") || page.contains("report"), "subcommands listed");
    assert!(usage_error(&["completions", "tcsh"]).contains("tcsh"));
}

/// A series model on the shipped ECG: bad rows keep their places by default (a model of one series at a
/// fixed cadence), and `--explain` writes the matching subsequence and its distance beside each score.
#[test]
fn a_series_model_explains_its_scores_and_keeps_bad_rows_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let ecg = data_dir().join("shippable/ts_mitdb_ecg.csv");
    let input = dir.path().join("ecg.csv");
    // The shipped series with one damaged row (row 3000's value is text).
    let text: String = std::fs::read_to_string(&ecg)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 3001 { "3000,oops,0\n".to_owned() } else { format!("{l}\n") })
        .collect();
    std::fs::write(&input, text).unwrap();
    let (out, summary_path) = (dir.path().join("scores.csv"), dir.path().join("s.json"));
    let args = [
        "run",
        "--quiet",
        "--input",
        input.to_str().unwrap(),
        "--exclude",
        "t",
        "--model",
        "rolling_matrix_profile",
        "--set",
        "subsequence_length=64",
        "--explain",
        "--output",
        out.to_str().unwrap(),
        "--summary-json",
        summary_path.to_str().unwrap(),
    ];
    let o = onad(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    assert_eq!(
        (s["bad_rows"].as_str(), s["rows"].as_u64(), s["missing_rows"].as_u64()),
        (Some("missing"), Some(7500), Some(1))
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("row,score,anomaly,label,match_start,distance"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 7500);
    assert_eq!(rows[3000][0], "3000", "the damaged row keeps its place");
    // Past the warm-up every row has a match earlier in the window, at the distance that is its score.
    let row = &rows[5000];
    let start: f64 = row[4].parse().unwrap();
    assert!((0.0..5000.0).contains(&start), "{row:?}");
    assert_eq!(row[1], row[5], "the distance explained is the score");
}

/// An edge detector on text ids: `--ids` reads IP addresses exactly, and a row going back in time is a
/// bad row by default (the model's time column must not decrease).
#[test]
fn an_edge_detector_reads_text_ids_and_refuses_time_going_back() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("flows.csv");
    let mut text = String::from("src,dst,t,label\n");
    for i in 0..3_000u32 {
        let t = i / 100;
        if i == 1_500 {
            text.push_str("10.0.0.1,10.0.0.2,3,0\n"); // back in time
            continue;
        }
        let burst = (2_000..2_060).contains(&i);
        let (a, b) = if burst { (250, 251) } else { (i % 40, (i * 7 + 3) % 40) };
        text.push_str(&format!("10.0.{a}.1,10.0.{b}.2,{t},{}\n", u8::from(burst)));
    }
    std::fs::write(&input, text).unwrap();
    let s = summary(&["run", "--input", input.to_str().unwrap(), "--ids", "src,dst", "--model", "midas"]);
    assert_eq!((s["rows"].as_u64(), s["skipped_by_reason"]["time_went_back"].as_u64()), (Some(2_999), Some(1)), "{s}");
    assert!(s["roc_auc"].as_f64().unwrap() > 0.9, "the burst of a new edge stands out: {s}");
    // Without --ids the addresses are text in a numeric column: every row is a bad row, named.
    let o = onad(&["run", "--input", input.to_str().unwrap(), "--model", "midas", "--on-bad-row", "fail"]);
    assert!(stderr(&o).contains("column 'src': cannot read '10.0.0.1' as a number"), "{}", stderr(&o));
}

/// Structured logs: with -v the checkpoint writes and the resume are events on stderr, as JSON objects
/// with their fields under ONAD_LOG_FORMAT=json; without -v only warnings and errors are logged.
#[test]
fn checkpoint_writes_and_resumes_are_structured_log_events() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let run = |extra: &[&str], json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_onad"));
        cmd.args(["run", "--checkpoint", ck.to_str().unwrap(), "--checkpoint-every", "20000"])
            .args(extra)
            .current_dir(root());
        if json {
            cmd.env("ONAD_LOG_FORMAT", "json");
        }
        cmd.output().unwrap()
    };
    let quiet_logs = run(&[], false);
    assert!(quiet_logs.status.success());
    assert!(!stderr(&quiet_logs).contains("checkpoint written"), "{}", stderr(&quiet_logs));
    let o = run(&["-v", "--resume"], true);
    assert!(o.status.success(), "{}", stderr(&o));
    let events: Vec<Value> = stderr(&o).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let resumed = events.iter().find(|e| e["fields"]["message"] == "resuming from checkpoint").expect("a resume event");
    assert_eq!(resumed["fields"]["rows"], 49097);
    let written = events.iter().find(|e| e["fields"]["message"] == "checkpoint written").expect("a write event");
    assert_eq!(written["level"], "INFO");
    assert!(written["fields"]["bytes"].as_u64().unwrap() > 0 && written["fields"]["path"].is_string());
}
