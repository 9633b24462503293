//! `cargo xtask bench [--quick] [--python] [--growth]`: the scoreboard.
//!
//! Every registered detector (`onad models --json`, at its defaults; required parameters from its example)
//! on the seeded synthetic stream (100k x 10, drift, 1 % anomalies: `onad_models::synthetic::drifting_gaussian`,
//! seed 42) and on
//! every labelled set of the shared data (`$ONAD_DATA_DIR`, else `../shared/data`; shippable and
//! reference-only, read there and prepared in a work directory outside the repository, never copied into
//! it); edge detectors on the generated edge streams, series detectors on the series. Each (model, set) is
//! one process of the onad-models `scores` example (prequential: score then learn each row), which reports
//! its loop's rows/s (one core, the library alone, CSV parsing excluded) and its peak resident memory; the
//! model's memory is that peak minus `null_model`'s on the same set. ROC-AUC and PR-AUC are computed here
//! (`board.rs`).
//!
//! `--python`: a venv (`target/bench/venv` made with pip from the pinned versions, or `$ONAD_PYTHON`) runs
//! the peers on the same rows in the same run: `scripts/bench/quality_table.py` (each model's reference
//! class in onad 0.3.0, aberrant 1.3.0, river or pysad, on every set and the synthetic stream; its MODELS
//! list is the one mapping), `python_onad.py` (onad 0.3.0's models on the synthetic stream, the moving
//! statistics among them) and `rcf3_compare.py` (rcf3 0.5.2's Forest, MStream and OnlineIForest).
//!
//! `--no-docs`: leave `docs/benchmarks.md` alone. `--resume`: quality_table.py keeps the pairs of an
//! interrupted run (its `--resume`). `--models=a,b`: only these models (and their peers).
//!
//! `--quick`: every set cut to its first 10,000 rows (the synthetic stream to 20,000), one seed, short
//! Python budgets. `--python-budget=S`: the loop seconds a Python peer gets per (model, set) before the
//! comparison is cut to the rows it got through (30 in a full run, 3 with `--quick`). `--growth`: the cost-of-growth curves instead (`growth.rs`).
//!
//! Writes `target/bench/results.json` and `target/bench/results.md` and the scoreboard section at the top
//! of `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::board::{self, Cell, Kind, Part, PeerResult, SYNTHETIC};
use crate::{cargo, run};

/// The pinned peers of `--python` (scripts/README.md's recipe).
const PEERS: &[&str] = &["onad==0.3.0", "aberrant==1.3.0", "river==0.26.1", "pysad==0.7.0", "rcf3==0.5.2"];

/// The most resident memory one (model, set) process may take (4 GiB).
const MEMORY_LIMIT_KIB: u64 = 4 << 20;

/// The budget of one run: quick or full.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub quick: bool,
    /// Rows per labelled set (a prefix).
    pub cap: usize,
    pub synthetic_rows: usize,
    /// Wall seconds one (model, set) process may take before it is stopped and reported as such.
    pub timeout: Duration,
    /// Loop seconds quality_table.py gives a Python peer per (model, set) (`--python-budget=S`).
    pub python_seconds: f64,
}

impl Budget {
    fn new(quick: bool) -> Self {
        if quick {
            Budget { quick, cap: 10_000, synthetic_rows: 20_000, timeout: Duration::from_secs(60), python_seconds: 3.0 }
        } else {
            Budget {
                quick,
                cap: usize::MAX,
                synthetic_rows: 100_000,
                timeout: Duration::from_secs(900),
                python_seconds: 30.0,
            }
        }
    }
}

/// Builds the release programs the bench runs: the `onad` binary (model list, keyed runs) and the
/// onad-models examples `scores`, `synthetic`, `edge_stream`.
pub fn build(root: &Path) -> Result<()> {
    let _ = root;
    let mut b = cargo();
    b.args(["build", "--release", "--quiet", "-p", "onad-cli"]);
    run("release onad", b)?;
    let mut e = cargo();
    e.args(["build", "--release", "--quiet", "-p", "onad-models"]);
    e.args(["--example", "scores", "--example", "synthetic", "--example", "edge_stream"]);
    run("release examples", e)
}

/// The work directory for prepared data: outside the repository (reference-only data may not go into it).
pub fn work_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = std::env::var_os("ONAD_BENCH_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("onad-bench"));
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let real = dir.canonicalize()?;
    if real.starts_with(root.canonicalize()?) {
        bail!("the bench work directory {} must be outside the repository", real.display());
    }
    Ok(real)
}

/// Runs one `scores` process on `part` with `spec`, stopping it after `timeout`.
pub fn scores(root: &Path, path: &Path, spec: &Value, timeout: Duration) -> Result<board::Run> {
    let exe = root.join("target/release/examples/scores");
    let dir = std::env::temp_dir();
    let tag = format!("onad-bench-{}", std::process::id());
    let (out_path, err_path) = (dir.join(format!("{tag}.out")), dir.join(format!("{tag}.err")));
    let mut child = Command::new(&exe)
        .arg(path)
        .arg("prequential")
        .arg(spec.to_string())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let (status, _) = crate::growth::watch(&mut child, timeout, Some(MEMORY_LIMIT_KIB), Duration::from_millis(20))?;
    let (stdout, stderr) = (std::fs::read_to_string(&out_path)?, std::fs::read_to_string(&err_path)?);
    let _ = (std::fs::remove_file(&out_path), std::fs::remove_file(&err_path));
    if !status.success() {
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        bail!("{status}: {last}");
    }
    board::parse_run(&stdout, &stderr)
}

/// A registered detector: its name, its example parameters and the ones the scoreboard runs it with.
pub type Detector = (String, Map<String, Value>, Map<String, Value>);

/// The registered detectors, from `onad models --json`: name, example parameters, and the parameters the
/// scoreboard runs them with ([`board::base_params`]).
pub fn detectors(root: &Path) -> Result<Vec<Detector>> {
    let out = Command::new(root.join("target/release/onad")).args(["models", "--json"]).output()?;
    if !out.status.success() {
        bail!("onad models --json failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let models: Value = serde_json::from_slice(&out.stdout)?;
    Ok(models["models"]
        .as_array()
        .context("models")?
        .iter()
        .filter(|m| m["role"] == "detector")
        .map(|m| {
            let example = m["example"].as_object().cloned().unwrap_or_default();
            let base = board::base_params(&example, m["params"].as_array().map_or(&[][..], Vec::as_slice));
            (m["name"].as_str().unwrap_or_default().to_owned(), example, base)
        })
        .collect())
}

/// Runs an example of onad-models (already built) with `args`.
fn example(root: &Path, name: &str, args: &[&str]) -> Result<()> {
    let exe = root.join("target/release/examples").join(name);
    let status = Command::new(&exe).args(args).status().with_context(|| format!("cannot start {}", exe.display()))?;
    if !status.success() {
        bail!("{name} {args:?} failed ({status})");
    }
    Ok(())
}

/// Every part of the run: the synthetic stream, the shared sets, the generated edge streams.
fn parts(root: &Path, budget: Budget, work: &Path) -> Result<Vec<Part>> {
    let synthetic = work.join("synthetic.csv");
    example(root, "synthetic", &[synthetic.to_str().context("path")?, &budget.synthetic_rows.to_string(), "42"])?;
    let mut parts = vec![board::written_part(SYNTHETIC, SYNTHETIC, synthetic, Kind::Rows)?];
    parts.extend(board::prepare_shared(&crate::shared_data(), work, budget.cap)?);
    let seeds: &[u64] = if budget.quick { &[1] } else { &[1, 2, 3] };
    for g in seeds {
        // 100,000 edges, as quality_table.py generates them (the generator's stream depends on the length
        // asked for), then cut to the cap like every set: the peers see the same rows.
        let path = work.join(format!("edges_synthetic-seed{g}.csv"));
        example(root, "edge_stream", &[path.to_str().context("path")?, "100000", &g.to_string()])?;
        board::cut(&path, budget.cap)?;
        parts.push(board::written_part("edges_synthetic", &format!("edges_synthetic/seed{g}"), path, Kind::Edges)?);
    }
    Ok(parts)
}

/// The machine, for the record: cores, CPU, memory, load.
pub fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned());
    let mem = read("/proc/meminfo").lines().find_map(|l| l.strip_prefix("MemTotal:")).map(|l| l.trim().to_owned());
    let load = read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    json!({"cores": cores, "cpu": cpu, "memory": mem, "load": load, "date": date})
}

/// The Python of `--python`: `$ONAD_PYTHON`, else `target/bench/venv` (created with pip when missing).
fn python(root: &Path) -> Result<PathBuf> {
    if let Some(py) = std::env::var_os("ONAD_PYTHON") {
        return Ok(PathBuf::from(py));
    }
    let venv = root.join("target/bench/venv");
    let py = venv.join("bin/python");
    if !py.exists() {
        let mut make = Command::new("python3");
        make.args(["-m", "venv"]).arg(&venv);
        run("python venv", make)?;
        let mut pip = Command::new(&py);
        pip.args(["-m", "pip", "install", "--quiet"]).args(PEERS).arg("faiss-cpu");
        run("pip install the peers", pip)?;
    }
    Ok(py)
}

/// The peers' results: (model, part) -> one result per library.
type Peers = BTreeMap<(String, String), Vec<PeerResult>>;

fn python_peers(
    root: &Path,
    budget: Budget,
    work: &Path,
    parts: &[Part],
    only: Option<&[&str]>,
    resume: bool,
) -> Result<(Peers, Value)> {
    let wanted = |m: &str| only.is_none_or(|o| o.contains(&m));
    let py = python(root)?;
    let out = root.join("target/bench/python");
    std::fs::create_dir_all(&out)?;
    let rust = root.join("target/release/examples/scores");
    let synthetic = parts.iter().find(|p| p.set == SYNTHETIC).context("no synthetic part")?;
    let mut peers: Peers = BTreeMap::new();
    fn add(peers: &mut Peers, found: impl IntoIterator<Item = ((String, String), PeerResult)>) {
        for (k, v) in found {
            peers.entry(k).or_default().push(v);
        }
    }

    // Each model's reference class on every set (quality_table.py's MODELS: the one mapping).
    let mut q = Command::new(&py);
    q.arg(root.join("scripts/bench/quality_table.py"))
        .arg("--rust")
        .arg(&rust)
        .arg("--work")
        .arg(work.join("python"))
        .arg("--out")
        .arg(&out)
        .env("ONAD_BENCH_SYNTHETIC", &synthetic.path)
        .args(["--sets", &format!("{SYNTHETIC},shuttle_odds,shuttle_full_statlog,glass_odds,breastw_odds,spambase,ts_mitdb_ecg,creditcard_ulb_sample,kdd99_http,kdd99_smtp,skab,nab_known_cause,smd_machine-2-1,edges_synthetic")]);
    if let Some(o) = only {
        q.args(["--models", &o.join(",")]);
    }
    if resume {
        q.arg("--resume"); // keep the pairs an interrupted run already wrote
    }
    q.args(["--budget-seconds", &budget.python_seconds.to_string()]);
    if budget.quick {
        q.args(["--seeds", "1", "--max-rows", &budget.cap.to_string()]);
    } else {
        q.args(["--seeds", "1,2,3"]);
    }
    run("quality_table.py (the reference libraries)", q)?;
    let quality = board::python_json(&std::fs::read_to_string(out.join("quality.json"))?)?;
    add(&mut peers, board::parse_quality(&quality));

    // onad 0.3.0 on the synthetic stream (the models quality_table.py has no entry for: the moving
    // statistics, the baselines).
    let mut p = Command::new(&py);
    p.arg(root.join("scripts/bench/python_onad.py")).arg(&synthetic.path);
    p.args(["--budget-seconds", if budget.quick { "0.5" } else { "3" }]);
    if budget.quick {
        p.args(["--rows", "5000"]);
    }
    if let Some(o) = only {
        p.args(["--only", &o.join(",")]);
    }
    eprintln!("\n==> python_onad.py: {p:?}");
    let o = p.stderr(Stdio::inherit()).output()?;
    if o.status.success() {
        let onad = board::python_json(&String::from_utf8_lossy(&o.stdout))?;
        let mut found = BTreeMap::new();
        for (model, r) in onad["rows_per_sec"].as_object().into_iter().flatten() {
            let covered = peers
                .get(&(model.clone(), SYNTHETIC.to_owned()))
                .is_some_and(|v| v.iter().any(|p| p.library.starts_with("onad")));
            if let (Some(r), false) = (r.as_f64(), covered) {
                found.insert(
                    (model.clone(), SYNTHETIC.to_owned()),
                    PeerResult {
                        library: "onad 0.3.0".into(),
                        rows_per_sec: Some(r),
                        rows: onad["rows"].as_u64(),
                        ..Default::default()
                    },
                );
            }
        }
        add(&mut peers, found);
    } else {
        eprintln!("python_onad.py failed ({}): its models have no Python column", o.status);
    }

    // rcf3, the Rust peer behind a Python API, for the three models it has.
    for (flag, model) in
        [("forest", "random_cut_forest"), ("mstream", "mstream"), ("oiforest", "online_isolation_forest")]
    {
        if !wanted(model) {
            continue;
        }
        let mut r = Command::new(&py);
        r.arg(root.join("scripts/bench/rcf3_compare.py"))
            .arg("--rust")
            .arg(&rust)
            .arg("--work")
            .arg(work.join("python"));
        r.args(["--model", flag, "--seeds", if budget.quick { "1" } else { "1,2,3" }]);
        r.args([
            "--sets",
            "shuttle_odds,glass_odds,breastw_odds,spambase,creditcard_ulb_sample,kdd99_smtp,skab,smd_machine-2-1",
        ]);
        if budget.quick {
            r.args(["--max-rows", &budget.cap.to_string()]);
        }
        match run(&format!("rcf3_compare.py --model {flag}"), r) {
            Ok(()) => {
                let text = std::fs::read_to_string(root.join(format!("target/bench/rcf3_compare_{flag}.json")))?;
                add(&mut peers, board::parse_rcf3(model, &board::python_json(&text)?));
            }
            Err(e) => eprintln!("rcf3 {flag}: {e:#}"),
        }
    }
    let libraries = quality["libraries"].clone();
    Ok((peers, libraries))
}

/// Runs the scoreboard and writes the report.
pub fn bench(root: &Path, args: &[&str]) -> Result<()> {
    let quick = args.contains(&"--quick");
    if args.contains(&"--growth") {
        return crate::growth::growth(root, quick);
    }
    let mut budget = Budget::new(quick);
    if let Some(s) = args.iter().find_map(|a| a.strip_prefix("--python-budget=")) {
        budget.python_seconds = s.parse().with_context(|| format!("--python-budget={s}: expected seconds"))?;
    }
    std::fs::create_dir_all(root.join("target/bench"))?;
    build(root)?;
    let before = machine();
    let work = work_dir(root, if quick { "quick" } else { "full" })?;
    let parts = parts(root, budget, &work)?;
    let models = detectors(root)?;
    let only: Option<Vec<&str>> = args.iter().find_map(|a| a.strip_prefix("--models=")).map(|m| m.split(',').collect());

    let mut cells = Vec::new();
    for part in &parts {
        let labels = board::labels(part)?;
        let null = scores(root, &part.path, &json!({"null_model": {}}), budget.timeout)?;
        eprintln!("\n==> {} ({} rows; null_model peak {} KiB)", part.label, part.rows, null.peak_rss_kib.unwrap_or(0));
        for (name, example, base) in &models {
            if !board::runs_on(board::model_kind(name, example), part.kind)
                || only.as_ref().is_some_and(|o| !o.contains(&name.as_str()))
            {
                continue;
            }
            let spec = board::spec(name, base, part);
            let mut cell = Cell {
                model: name.clone(),
                part: part.label.clone(),
                rows: part.rows,
                rows_per_sec: None,
                model_kib: None,
                peak_kib: None,
                roc_auc: None,
                pr_auc: None,
                error: None,
            };
            // A model whose defaults do not build alone (threshold_model needs a ceiling or a floor)
            // runs at its example parameters.
            let mut result = scores(root, &part.path, &spec, budget.timeout);
            if result.as_ref().is_err_and(|e| format!("{e:#}").contains("Invalid")) {
                result = scores(root, &part.path, &board::spec(name, example, part), budget.timeout);
            }
            match result {
                Ok(r) => {
                    let seconds = r.seconds();
                    cell.rows_per_sec = (seconds > 0.0).then(|| r.scores.len() as f64 / seconds);
                    cell.peak_kib = r.peak_rss_kib;
                    cell.model_kib = r.peak_rss_kib.zip(null.peak_rss_kib).map(|(a, b)| a.saturating_sub(b));
                    (cell.roc_auc, cell.pr_auc) = board::metrics(&r.scores, &labels, part.eval_mask.as_deref());
                }
                Err(e) => cell.error = Some(format!("{e:#}")),
            }
            eprintln!(
                "  {name}: {} rows/s, {} KiB, ROC {}{}",
                cell.rows_per_sec.map_or("-".into(), board::rate),
                cell.model_kib.unwrap_or(0),
                cell.roc_auc.map_or("-".into(), |v| format!("{v:.3}")),
                cell.error.as_ref().map_or(String::new(), |e| format!(" ({e})"))
            );
            cells.push(cell);
        }
    }

    let (peers, libraries) = if args.contains(&"--python") {
        python_peers(root, budget, &work, &parts, only.as_deref(), args.contains(&"--resume"))?
    } else {
        (BTreeMap::new(), Value::Null)
    };
    let after = machine();
    let summaries = board::summarise(&cells, &peers);
    let command = format!("cargo xtask bench {}", args.join(" ")).trim_end().to_owned();
    let header = describe(&command, &before, &after, &libraries, budget, &parts);
    let summary = board::summary_table(&summaries);
    let detail = board::detail_table(&cells, &peers);
    let misses = misses(&summaries);

    let md = format!("{header}\n{misses}\n{summary}\n### Every model on every set\n\n{detail}");
    std::fs::write(root.join("target/bench/results.md"), &md)?;
    let report = json!({
        "command": command, "machine_before": before, "machine_after": after, "libraries": libraries,
        "quick": quick, "parts": parts.iter().map(|p| json!({"label": p.label, "rows": p.rows})).collect::<Vec<_>>(),
        "results": cells.iter().map(Cell::to_json).collect::<Vec<_>>(),
        "peers": peers.iter().map(|((m, p), v)| json!({"model": m, "part": p, "results": v.iter().map(|r| json!({
            "library": r.library, "roc_auc": r.roc_auc, "pr_auc": r.pr_auc, "rows_per_sec": r.rows_per_sec,
            "onad_rows_per_sec": r.onad_rows_per_sec, "rows": r.rows, "note": r.note})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
    });
    std::fs::write(root.join("target/bench/results.json"), serde_json::to_string_pretty(&report)? + "\n")?;
    // `--no-docs`: a run for the record only (e.g. a full run without peers beside the documented one).
    if !args.contains(&"--no-docs") {
        let doc_path = root.join("docs/benchmarks.md");
        let doc = std::fs::read_to_string(&doc_path)?;
        let section = format!(
            "## Scoreboard\n\n{header}\n{misses}\n{summary}\nThe table per (model, set) is in `target/bench/results.md` after a run.\n"
        );
        std::fs::write(&doc_path, board::splice(&doc, &section))?;
    }
    println!("{md}");
    eprintln!("written: target/bench/results.json, target/bench/results.md, docs/benchmarks.md (scoreboard section)");
    Ok(())
}

/// The paragraph above the table: command, machine, load, peers, protocol.
fn describe(command: &str, before: &Value, after: &Value, libraries: &Value, budget: Budget, parts: &[Part]) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    let mut text = format!(
        "Generated by `{command}` on {} ({} cores, {}, {} RAM; load average {} at the start, {} at the end: \
         other builds shared the cores).",
        s(&before["date"]),
        before["cores"],
        s(&before["cpu"]),
        s(&before["memory"]),
        s(&before["load"]),
        s(&after["load"])
    );
    if let Some(l) = libraries.as_str() {
        let _ = write!(text, " Peers: {l}, same rows, same run.");
    } else {
        text += " Without `--python`: no peer columns.";
    }
    let _ = write!(
        text,
        "\n\nEvery registered detector (`onad models --json`) at the registry's defaults (the reference \
         library's; a parameter without a default takes the registry's example value), prequential (score then \
         learn each row), one process of the `scores` example per (model, set): rows/s is its loop's rate on \
         one core (thread CPU time, the wall clock for loops under 50 ms; CSV parsing excluded) on the synthetic stream ({} rows x 10, drift, 1 % \
         anomalies, seed 42); memory is that process's peak resident set minus `null_model`'s on the same \
         rows; the AUC columns are means over the {} labelled parts ({}), each part as long as {}. Edge \
         detectors run on the generated edge streams, series detectors on the series (one period as their \
         length). Peers: the speed ratio is onad's loop rate over the peer's on the same rows (quality_table.py \
         and rcf3_compare.py time both sides; python_onad.py's synthetic rates are set against this run's), \
         a geometric mean over the sets both ran; the ROC-AUC pair is onad's and the peer's means over those \
         sets. A Python peer gets {} s of loop time per (model, set): a slower one is compared on the \
         prefix it got through, onad's AUC on that prefix too.\n",
        budget.synthetic_rows,
        parts.iter().filter(|p| p.set != SYNTHETIC).count(),
        parts
            .iter()
            .map(|p| p.set.as_str())
            .filter(|s| *s != SYNTHETIC)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", "),
        if budget.quick { format!("its first {} rows (`--quick`)", budget.cap) } else { "the whole file".to_owned() },
        budget.python_seconds,
    );
    text
}

/// The models that miss a goal: under 100x a Python reference, behind rcf3, ROC-AUC below the peer's.
fn misses(summaries: &[board::Summary]) -> String {
    let (mut slow, mut rcf3, mut worse, mut met) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for s in summaries {
        let mut ok = !s.peers.is_empty();
        for (lib, (ratio, ours, theirs, _)) in &s.peers {
            let is_rcf3 = lib.starts_with("rcf3");
            if let Some(r) = ratio {
                if is_rcf3 && *r < 1.0 {
                    rcf3.push(format!("`{}` ({r:.1}x)", s.model));
                    ok = false;
                } else if !is_rcf3 && *r < 100.0 {
                    slow.push(format!("`{}` ({r:.0}x {lib})", s.model));
                    ok = false;
                }
            }
            if let (Some(a), Some(b)) = (ours, theirs)
                && a + 0.005 < *b
            {
                worse.push(format!("`{}` ({a:.3} vs {b:.3} {lib})", s.model));
                ok = false;
            }
        }
        if ok {
            met.push(format!("`{}`", s.model));
        }
    }
    let list = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
    format!(
        "Meeting every goal against every peer it has ({}): {}.\n\nUnder 100x a Python peer: {}.\n\nBehind rcf3: {}.\n\n\
         Mean ROC-AUC below a peer's on the same sets: {}.\n",
        met.len(),
        list(&met),
        list(&slow),
        list(&rcf3),
        list(&worse)
    )
}
