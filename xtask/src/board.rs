//! The scoreboard's data and arithmetic: the labelled sets prepared for the `scores` example, which
//! parameters each registered detector gets on which set, the example's output parsed, ROC-AUC and PR-AUC,
//! and the tables. No timing here (the runs are in `bench.rs`), so all of it is unit tested.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

/// What a set is, which decides the models that run on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Rows of numeric features: every detector but the edge and series ones.
    Rows,
    /// One series (a value per row, in time order): the series detectors too (and every row detector).
    Series,
    /// A multivariate series: the rows detectors and the multivariate series ones.
    MultiSeries,
    /// An edge stream `src,dst,t`: the edge detectors only.
    Edges,
}

/// One prepared CSV (feature columns, then `label`), as the `scores` example reads it.
#[derive(Clone, Debug)]
pub struct Part {
    /// The set's name (`nab_known_cause`).
    pub set: String,
    /// The name in the tables (`nab_known_cause/nyc_taxi`).
    pub label: String,
    pub path: PathBuf,
    pub columns: Vec<String>,
    pub rows: usize,
    /// Rows the metrics cover (None: every row).
    pub eval_mask: Option<Vec<bool>>,
    pub kind: Kind,
}

/// A CSV read as text: its header and records.
pub fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().context("empty CSV")?.split(',').map(|s| s.trim().to_owned()).collect();
    let recs = lines.filter(|l| !l.trim().is_empty()).map(|l| l.split(',').map(str::to_owned).collect()).collect();
    Ok((header, recs))
}

/// Writes `columns` then `label`; each record's values, its label last; at most `cap` rows.
fn write_part(path: &Path, columns: &[String], rows: &[(Vec<&str>, &str)], cap: usize) -> Result<usize> {
    let mut out = columns.join(",") + ",label\n";
    let n = rows.len().min(cap);
    for (values, label) in &rows[..n] {
        out += &values.join(",");
        // Labels are written 0/1 (some files spell them 0.0/1.0).
        let y: f64 = label.trim().parse().unwrap_or(0.0);
        writeln!(out, ",{}", u8::from(y != 0.0))?;
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(n)
}

/// The sets of `../shared/data` (shippable and reference-only; read there, the prepared files written
/// to `work`, which is outside the repository), by quality_table.py's preparation: its drop columns, NAB one
/// part per series, SMD train then test with metrics on the test rows. At most `cap` rows each.
pub fn prepare_shared(data: &Path, work: &Path, cap: usize) -> Result<Vec<Part>> {
    let plain: &[(&str, &str, &[&str], Kind)] = &[
        ("shuttle_odds", "shippable/shuttle_odds.csv", &[], Kind::Rows),
        ("shuttle_full_statlog", "shippable/shuttle_full_statlog.csv", &["class"], Kind::Rows),
        ("glass_odds", "shippable/glass_odds.csv", &[], Kind::Rows),
        ("breastw_odds", "shippable/breastw_odds.csv", &[], Kind::Rows),
        ("spambase", "shippable/spambase.csv", &[], Kind::Rows),
        ("ts_mitdb_ecg", "shippable/ts_mitdb_ecg.csv", &["t"], Kind::Series),
        ("creditcard_ulb_sample", "reference-only/creditcard_ulb_sample.csv", &[], Kind::Rows),
        ("kdd99_http", "reference-only/kdd99_http.csv", &[], Kind::Rows),
        ("kdd99_smtp", "reference-only/kdd99_smtp.csv", &[], Kind::Rows),
        ("skab", "reference-only/skab.csv", &["experiment", "datetime", "changepoint"], Kind::Rows),
    ];
    let mut parts = Vec::new();
    for (name, rel, drop, kind) in plain {
        let (header, recs) = read_csv(&data.join(rel))?;
        let li = header.iter().position(|h| h == "label").context("no label column")?;
        let keep: Vec<usize> = (0..header.len()).filter(|&i| i != li && !drop.contains(&header[i].as_str())).collect();
        let columns: Vec<String> = keep.iter().map(|&i| header[i].clone()).collect();
        let rows: Vec<_> =
            recs.iter().map(|r| (keep.iter().map(|&i| r[i].as_str()).collect(), r[li].as_str())).collect();
        let path = work.join(format!("{name}.csv"));
        let n = write_part(&path, &columns, &rows, cap)?;
        parts.push(Part {
            set: name.to_string(),
            label: name.to_string(),
            path,
            columns,
            rows: n,
            eval_mask: None,
            kind: *kind,
        });
    }
    // NAB: one part per series, in the order the series first appear.
    let (header, recs) = read_csv(&data.join("reference-only/nab_known_cause.csv"))?;
    let col = |n: &str| header.iter().position(|h| h == n).with_context(|| format!("nab: no column {n}"));
    let (si, vi, li) = (col("series")?, col("value")?, col("label")?);
    type Series<'a> = (String, Vec<(Vec<&'a str>, &'a str)>);
    let mut series: Vec<Series> = Vec::new();
    for r in &recs {
        match series.iter_mut().find(|(s, _)| *s == r[si]) {
            Some((_, rows)) => rows.push((vec![r[vi].as_str()], r[li].as_str())),
            None => series.push((r[si].clone(), vec![(vec![r[vi].as_str()], r[li].as_str())])),
        }
    }
    for (s, rows) in series {
        let path = work.join(format!("nab_known_cause-{s}.csv"));
        let columns = vec!["value".to_owned()];
        let n = write_part(&path, &columns, &rows, cap)?;
        parts.push(Part {
            set: "nab_known_cause".into(),
            label: format!("nab_known_cause/{s}"),
            path,
            columns,
            rows: n,
            eval_mask: None,
            kind: Kind::Series,
        });
    }
    // SMD: the 38 machine metrics; metrics on the test split only (the train rows come first, so a cap
    // under its 23,688 train rows leaves no evaluated row: quality_table.py's --max-rows cuts it the same).
    let (header, recs) = read_csv(&data.join("reference-only/smd_machine-2-1.csv"))?;
    let (si, li) = (
        header.iter().position(|h| h == "split").context("smd: no split")?,
        header.iter().position(|h| h == "label").context("smd: no label")?,
    );
    let feats: Vec<usize> = (0..header.len()).filter(|&i| header[i].starts_with('m')).collect();
    let recs = &recs[..recs.len().min(cap)];
    let columns: Vec<String> = feats.iter().map(|&i| header[i].clone()).collect();
    let rows: Vec<_> = recs.iter().map(|r| (feats.iter().map(|&i| r[i].as_str()).collect(), r[li].as_str())).collect();
    let path = work.join("smd_machine-2-1.csv");
    let n = write_part(&path, &columns, &rows, cap)?;
    parts.push(Part {
        set: "smd_machine-2-1".into(),
        label: "smd_machine-2-1".into(),
        path,
        columns,
        rows: n,
        eval_mask: Some(recs.iter().map(|r| r[si] == "test").collect()),
        kind: Kind::MultiSeries,
    });
    Ok(parts)
}

/// Cuts the CSV at `path` to its header and first `cap` records (in place; nothing when it is shorter).
pub fn cut(path: &Path, cap: usize) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    if let Some((i, _)) = text.match_indices('\n').nth(cap) {
        std::fs::write(path, &text[..=i])?;
    }
    Ok(())
}

/// A part whose file is already written with `columns` then `label` (the synthetic and edge streams).
pub fn written_part(set: &str, label: &str, path: PathBuf, kind: Kind) -> Result<Part> {
    let (header, recs) = read_csv(&path)?;
    let columns = header[..header.len() - 1].to_vec();
    Ok(Part { set: set.into(), label: label.into(), path, columns, rows: recs.len(), eval_mask: None, kind })
}

/// The labels (last column) of a prepared part.
pub fn labels(part: &Part) -> Result<Vec<bool>> {
    let (_, recs) = read_csv(&part.path)?;
    Ok(recs.iter().map(|r| r.last().is_some_and(|v| v.trim() != "0")).collect())
}

/// The subsequence (or season) length of a series detector on a part, by the rule quality_table.py fixes
/// before any run: one period at the data's cadence (an ECG beat at 360 Hz, 288; one NAB day at the series'
/// step; SMD's one hour, 60).
pub fn period(label: &str) -> u64 {
    if label.starts_with("ts_mitdb_ecg") {
        return 288;
    }
    match label.strip_prefix("nab_known_cause/") {
        Some("ambient_temperature_system_failure") => 24,
        Some("nyc_taxi") => 48,
        Some(_) => 288,
        None => 60,
    }
}

/// What kind of input a registered detector needs, from its example parameters.
pub fn model_kind(name: &str, example: &Map<String, Value>) -> Kind {
    let has = |k: &str| example.contains_key(k);
    if has("source_key") || has("destination_key") {
        Kind::Edges
    } else if has("subsequence_length") || has("season_length") {
        if name.starts_with("multivariate") { Kind::MultiSeries } else { Kind::Series }
    } else {
        Kind::Rows
    }
}

/// Whether a detector of kind `model` runs on a part of kind `part`.
pub fn runs_on(model: Kind, part: Kind) -> bool {
    match model {
        Kind::Rows => part != Kind::Edges,
        Kind::Series => part == Kind::Series,
        Kind::MultiSeries => matches!(part, Kind::Series | Kind::MultiSeries),
        Kind::Edges => part == Kind::Edges,
    }
}

/// The parameters a detector runs with: the registry's defaults (the reference library's), so the
/// parameters it takes from its example are only the required ones and the columns it reads (`key`,
/// `keys`, `score_key`, `graph_key`), which [`spec`] then points at the part's columns. `params` is the model's `params`
/// list of `onad models --json`.
pub fn base_params(example: &Map<String, Value>, params: &[Value]) -> Map<String, Value> {
    let required: Vec<&str> =
        params.iter().filter(|p| p["required"] == true).filter_map(|p| p["name"].as_str()).collect();
    example
        .iter()
        .filter(|(k, _)| {
            required.contains(&k.as_str()) || matches!(k.as_str(), "key" | "keys" | "score_key" | "graph_key")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The `scores` example's model JSON for a detector on a part: its [`base_params`], the column a
/// univariate (`key`) or score-policy (`score_key`) model reads set to the part's first column, a
/// two-column one (`keys` of two) to the first two, a series model's length by [`period`]; an edge model
/// reads `src`, `dst`, `t`, and a graph-sketch one (`graph_key`) takes each time bucket as its graph (the
/// generator has no graph column), as quality_table.py runs it. Nulls are dropped (the default applies).
pub fn spec(name: &str, base: &Map<String, Value>, part: &Part) -> Value {
    let mut params = base.clone();
    let first = part.columns.first().cloned().unwrap_or_default();
    for (k, v) in params.iter_mut() {
        match k.as_str() {
            "key" | "score_key" => *v = json!(first),
            "keys" if v.as_array().is_some_and(|a| a.len() == 2) => {
                let second = part.columns.get(1).unwrap_or(&first);
                *v = json!([first, second]);
            }
            "subsequence_length" | "season_length" => *v = json!(period(&part.label)),
            _ => {}
        }
    }
    params.retain(|_, v| !v.is_null());
    if part.kind == Kind::Edges {
        for (k, column) in [("source_key", "src"), ("destination_key", "dst"), ("time_key", "t")] {
            params.insert(k.into(), json!(column));
        }
        if base.contains_key("graph_key") {
            params.insert("graph_key".into(), json!("t"));
            params.insert("time_key".into(), Value::Null);
        }
    }
    json!({ name: params })
}

/// One run of the `scores` example: its scores, and what its standard error's closing line says.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub scores: Vec<f64>,
    pub loop_seconds: f64,
    pub cpu_seconds: f64,
    pub peak_rss_kib: Option<u64>,
}

impl Run {
    /// The loop's seconds: the thread's CPU time (less disturbed by other processes on a shared machine),
    /// or the wall time when the CPU time is under 50 ms (it advances by scheduler ticks of a few ms).
    pub fn seconds(&self) -> f64 {
        if self.cpu_seconds >= 0.05 { self.cpu_seconds } else { self.loop_seconds }
    }
}

/// Parses the `scores` example's output: one score a line on `stdout`; `loop_seconds S cpu_seconds C rows
/// N [peak_rss_kib K]` on the last such line of `stderr`.
pub fn parse_run(stdout: &str, stderr: &str) -> Result<Run> {
    let scores = stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.trim().parse::<f64>().with_context(|| format!("not a score: {l:?}")))
        .collect::<Result<Vec<_>>>()?;
    let Some(line) = stderr.lines().rev().find(|l| l.starts_with("loop_seconds ")) else {
        bail!("no loop_seconds line in: {stderr}");
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let field = |k: &str| words.iter().position(|w| *w == k).and_then(|i| words.get(i + 1));
    let num = |k: &str| -> Result<f64> {
        field(k).and_then(|v| v.parse().ok()).with_context(|| format!("no {k} in {line:?}"))
    };
    Ok(Run {
        scores,
        loop_seconds: num("loop_seconds")?,
        cpu_seconds: num("cpu_seconds")?,
        peak_rss_kib: field("peak_rss_kib").and_then(|v| v.parse().ok()),
    })
}

/// ROC-AUC with tied scores counted half (mid-ranks); None without both classes. NaN scores count lowest.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    let key = |i: usize| if scores[i].is_nan() { f64::NEG_INFINITY } else { scores[i] };
    idx.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
    let pos = labels.iter().filter(|&&y| y).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && key(idx[j + 1]) == key(idx[i]) {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid * idx[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Average precision (PR-AUC) as scikit-learn computes it: the step sum over distinct thresholds, highest
/// first; None without an anomaly.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&y| y).count() as f64;
    if pos == 0.0 {
        return None;
    }
    let key = |i: usize| if scores[i].is_nan() { f64::NEG_INFINITY } else { scores[i] };
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
    let (mut tp, mut ap, mut last_recall, mut i) = (0.0, 0.0, 0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && key(idx[j + 1]) == key(idx[i]) {
            j += 1;
        }
        tp += idx[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        let recall = tp / pos;
        ap += (recall - last_recall) * tp / (j + 1) as f64;
        last_recall = recall;
        i = j + 1;
    }
    Some(ap)
}

/// The metrics of a run over the rows of `mask` (all rows when None).
pub fn metrics(scores: &[f64], labels: &[bool], mask: Option<&[bool]>) -> (Option<f64>, Option<f64>) {
    let (s, y): (Vec<f64>, Vec<bool>) = match mask {
        Some(m) => scores.iter().zip(labels).zip(m).filter(|(_, k)| **k).map(|((s, y), _)| (*s, *y)).unzip(),
        None => (scores.to_vec(), labels[..scores.len().min(labels.len())].to_vec()),
    };
    (roc_auc(&s, &y), average_precision(&s, &y))
}

/// `1.2M`, `345k`, `678`: a rate for the tables.
pub fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.1}M", r / 1e6)
    } else if r >= 1e4 {
        format!("{:.0}k", r / 1e3)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.filter(|v| v.is_finite()).map_or("-".to_owned(), f)
}

/// A speed ratio: `12x`, `1.4x` under 10.
pub fn ratio(r: f64) -> String {
    if r < 10.0 { format!("{r:.1}x") } else { format!("{r:.0}x") }
}

fn auc(v: f64) -> String {
    format!("{v:.3}")
}

/// The mean of the finite values, None when there are none.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The geometric mean of the positive finite values (the mean of ratios), None when there are none.
pub fn geomean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.into_iter().filter(|v| v.is_finite() && *v > 0.0).collect();
    (!v.is_empty()).then(|| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

/// A peer's figures on one (model, part): what quality_table.py, python_onad.py or rcf3_compare.py
/// measured, with onad's own rate on the same rows in the same script when it has one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerResult {
    pub library: String,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub rows_per_sec: Option<f64>,
    /// onad's loop rate on the same rows in the same script run (the ratio's numerator when present).
    pub onad_rows_per_sec: Option<f64>,
    /// onad's ROC-AUC on the same rows in the same script run (the peer may have run on a prefix).
    pub onad_roc_auc: Option<f64>,
    pub rows: Option<u64>,
    pub note: Option<String>,
}

/// Python's `json.dump` writes NaN and infinities as bare `NaN`, `Infinity`, `-Infinity`, which JSON has
/// not: they become `null` (outside strings only) so serde_json reads the report.
pub fn python_json(text: &str) -> Result<Value> {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if let Some(word) = ["-Infinity", "Infinity", "NaN"].iter().find(|w| rest.starts_with(**w)) {
            out += "null";
            rest = &rest[word.len()..];
            continue;
        }
        in_string = c == '"';
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(serde_json::from_str(&out)?)
}

/// Reads quality_table.py's `quality.json`: one ((model, part), result) per pair, the pair's library named by it
/// (or, in older reports, by `model_libraries`), with the Rust loop rate on the same prefix
/// (`loop_rows_per_sec`) when the script recorded it.
pub fn parse_quality(report: &Value) -> Vec<((String, String), PeerResult)> {
    let mut out = Vec::new();
    let libraries = report["model_libraries"].as_object().cloned().unwrap_or_default();
    for e in report["pairs"].as_array().into_iter().flatten() {
        let (Some(model), Some(part)) = (e["model"].as_str(), e["part"].as_str()) else { continue };
        let py = &e["python"];
        let f = |v: &Value| v.as_f64().filter(|x| x.is_finite());
        let note = py["error"].as_str().or(py["skipped"].as_str()).map(str::to_owned);
        let onad = mean(e["rust"]["runs"].as_array().into_iter().flatten().filter_map(|r| f(&r["loop_rows_per_sec"])));
        // A pair names its library (a model may have several peers); older reports only name a model's one.
        let library = e["library"].as_str().or_else(|| libraries.get(model).and_then(Value::as_str));
        out.push((
            (model.to_owned(), part.to_owned()),
            PeerResult {
                library: library.unwrap_or("Python reference").to_owned(),
                roc_auc: f(&py["roc_auc"]),
                pr_auc: f(&py["pr_auc"]),
                rows_per_sec: f(&py["rows_per_sec"]),
                onad_rows_per_sec: onad,
                onad_roc_auc: f(&e["rust"]["roc_auc"]),
                rows: e["rows_used"].as_u64(),
                note,
            },
        ));
    }
    out
}

/// Reads rcf3_compare.py's JSON (a list of parts with `onad_mean` and `rcf3_mean`), as results of `model`.
pub fn parse_rcf3(model: &str, report: &Value) -> BTreeMap<(String, String), PeerResult> {
    let mut out = BTreeMap::new();
    for e in report.as_array().into_iter().flatten() {
        let Some(part) = e["part"].as_str() else { continue };
        let (r, o) = (&e["rcf3_mean"], &e["onad_mean"]);
        // A setting onad ran at to match the peer (random_cut_forest's score function), named with it.
        let library = match e["onad_setting"].as_str() {
            Some(setting) => format!("rcf3 0.5.2 (onad at {setting})"),
            None => "rcf3 0.5.2".into(),
        };
        out.insert(
            (model.to_owned(), part.to_owned()),
            PeerResult {
                library,
                roc_auc: r["roc_auc"].as_f64(),
                pr_auc: r["pr_auc"].as_f64(),
                rows_per_sec: r["rows_per_sec"].as_f64(),
                onad_rows_per_sec: o["rows_per_sec"].as_f64(),
                onad_roc_auc: o["roc_auc"].as_f64(),
                rows: e["rows"].as_u64(),
                note: None,
            },
        );
    }
    out
}

/// One (model, part) of the Rust side.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub model: String,
    pub part: String,
    pub rows: usize,
    pub rows_per_sec: Option<f64>,
    /// Peak resident memory of the process minus `null_model`'s on the same part, KiB.
    pub model_kib: Option<u64>,
    pub peak_kib: Option<u64>,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub error: Option<String>,
}

impl Cell {
    pub fn to_json(&self) -> Value {
        json!({"model": self.model, "part": self.part, "rows": self.rows, "rows_per_sec": self.rows_per_sec,
               "model_kib": self.model_kib, "peak_kib": self.peak_kib, "roc_auc": self.roc_auc,
               "pr_auc": self.pr_auc, "error": self.error})
    }
}

/// A model's line of the summary: means over the labelled parts, the synthetic stream's rate and memory,
/// and per peer the geometric mean of the speed ratios over the parts both ran and the peer's mean AUC
/// over those parts next to onad's.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub model: String,
    pub synthetic_rows_per_sec: Option<f64>,
    pub synthetic_kib: Option<u64>,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub parts: usize,
    /// library -> (ratio, onad ROC over the shared parts, peer ROC over them, parts).
    pub peers: BTreeMap<String, PeerLine>,
}

/// A model's figures against one peer: (speed ratio, onad's mean ROC-AUC over the sets both ran, the
/// peer's over them, how many sets).
pub type PeerLine = (Option<f64>, Option<f64>, Option<f64>, usize);

pub const SYNTHETIC: &str = "synthetic";

/// The summary lines, one per model in `cells` (sorted by name).
pub fn summarise(cells: &[Cell], peers: &BTreeMap<(String, String), Vec<PeerResult>>) -> Vec<Summary> {
    let mut models: Vec<&str> = cells.iter().map(|c| c.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    let mut out = Vec::new();
    for model in models {
        let mine: Vec<&Cell> = cells.iter().filter(|c| c.model == model && c.error.is_none()).collect();
        let synthetic = mine.iter().find(|c| c.part == SYNTHETIC);
        let labelled: Vec<&&Cell> = mine.iter().filter(|c| c.part != SYNTHETIC && c.roc_auc.is_some()).collect();
        let mut by_peer: BTreeMap<String, Vec<(&str, &PeerResult)>> = BTreeMap::new();
        for ((m, part), results) in peers {
            if m == model {
                for r in results {
                    by_peer.entry(r.library.clone()).or_default().push((part, r));
                }
            }
        }
        let mut peer_lines = BTreeMap::new();
        for (library, results) in by_peer {
            let ours = |part: &str| mine.iter().find(|c| c.part == part);
            let ratio = geomean(results.iter().filter_map(|(part, r)| {
                let onad = r.onad_rows_per_sec.or_else(|| ours(part)?.rows_per_sec)?;
                Some(onad / r.rows_per_sec?)
            }));
            // onad's ROC-AUC on the peer's rows: the script's own onad run when it has one (the peer may
            // have stopped at a prefix), else this run's on the part.
            let onad_roc = |p: &str, r: &PeerResult| r.onad_roc_auc.or_else(|| ours(p)?.roc_auc);
            let both: Vec<_> =
                results.iter().filter(|(p, r)| r.roc_auc.is_some() && onad_roc(p, r).is_some()).collect();
            let onad_roc = mean(both.iter().filter_map(|(p, r)| onad_roc(p, r)));
            let peer_roc = mean(both.iter().filter_map(|(_, r)| r.roc_auc));
            peer_lines.insert(library, (ratio, onad_roc, peer_roc, both.len()));
        }
        out.push(Summary {
            model: model.to_owned(),
            synthetic_rows_per_sec: synthetic.and_then(|c| c.rows_per_sec),
            synthetic_kib: synthetic.and_then(|c| c.model_kib),
            roc_auc: mean(labelled.iter().filter_map(|c| c.roc_auc)),
            pr_auc: mean(labelled.iter().filter_map(|c| c.pr_auc)),
            parts: labelled.len(),
            peers: peer_lines,
        });
    }
    out
}

fn kib(k: u64) -> String {
    if k >= 10 * 1024 { format!("{:.0} MiB", k as f64 / 1024.0) } else { format!("{k} KiB") }
}

/// The summary table (Markdown): one line per model.
pub fn summary_table(summaries: &[Summary]) -> String {
    let mut md = String::from(
        "| model | synthetic rows/s | memory | sets | mean ROC-AUC | mean PR-AUC | peer: speed ratio, ROC-AUC onad / peer (sets) |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
    );
    for s in summaries {
        let peers: Vec<String> = s
            .peers
            .iter()
            .map(|(lib, (r, ours, theirs, n))| {
                format!("{lib}: {}, {} / {} ({n})", opt(*r, ratio), opt(*ours, auc), opt(*theirs, auc))
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            s.model.replace('|', "\\|"),
            opt(s.synthetic_rows_per_sec, rate),
            s.synthetic_kib.map_or("-".to_owned(), kib),
            s.parts,
            opt(s.roc_auc, auc),
            opt(s.pr_auc, auc),
            if peers.is_empty() { "-".to_owned() } else { peers.join("; ") }
        );
    }
    md
}

/// The full table (Markdown): one line per (model, part), with every peer's figures on that part.
pub fn detail_table(cells: &[Cell], peers: &BTreeMap<(String, String), Vec<PeerResult>>) -> String {
    let mut md = String::from(
        "| model | set | rows | rows/s | memory | ROC-AUC | PR-AUC | peers: rows/s (ratio), ROC-AUC, PR-AUC |\n\
         |---|---|---:|---:|---:|---:|---:|---|\n",
    );
    for c in cells {
        let key = (c.model.clone(), c.part.clone());
        let peer: Vec<String> = peers
            .get(&key)
            .into_iter()
            .flatten()
            .map(|p| {
                let speed = p.onad_rows_per_sec.or(c.rows_per_sec).zip(p.rows_per_sec).map(|(o, r)| o / r);
                let note =
                    p.note.as_ref().map_or(String::new(), |n| format!(" ({})", n.chars().take(60).collect::<String>()));
                format!(
                    "{}: {} ({}), {}, {}{note}",
                    p.library,
                    opt(p.rows_per_sec, rate),
                    opt(speed, ratio),
                    opt(p.roc_auc, auc),
                    opt(p.pr_auc, auc)
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.model.replace('|', "\\|"),
            c.part,
            c.rows,
            c.error.as_ref().map_or_else(
                || opt(c.rows_per_sec, rate),
                |e| format!("error: {}", e.chars().take(60).collect::<String>().replace('|', "/"))
            ),
            c.model_kib.map_or("-".to_owned(), kib),
            opt(c.roc_auc, auc),
            opt(c.pr_auc, auc),
            peer.join("; ").replace('|', "\\|")
        );
    }
    md
}

/// `section` between the marker lines `begin` and `end`.
pub fn marked(begin: &str, end: &str, section: &str) -> String {
    format!("{begin}\n{}\n{end}\n", section.trim_end())
}

/// `doc` with its block from `begin` to `end` (and the newline after it) replaced by `block`, or None when
/// it has no such block.
pub fn replace_marked(doc: &str, begin: &str, end: &str, block: &str) -> Option<String> {
    let (a, b) = (doc.find(begin)?, doc.find(end)?);
    let after = &doc[b + end.len()..];
    Some(format!("{}{block}{}", &doc[..a], after.strip_prefix('\n').unwrap_or(after)))
}

/// Replaces the part of `doc` between the two marker lines with `section` (markers kept); when the
/// markers are missing, the section goes after the first line (the title) and everything up to the first
/// `## ` heading is dropped (the stale hand-made table it replaces).
pub fn splice(doc: &str, section: &str) -> String {
    const BEGIN: &str = "<!-- scoreboard: begin (cargo xtask bench writes this part) -->";
    const END: &str = "<!-- scoreboard: end -->";
    let block = marked(BEGIN, END, section);
    if let Some(done) = replace_marked(doc, BEGIN, END, &block) {
        return done;
    }
    let (title, rest) = doc.split_once('\n').unwrap_or((doc, ""));
    let kept = rest.find("\n## ").map_or("", |i| &rest[i + 1..]);
    format!("{title}\n\n{block}\n{kept}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(label: &str, columns: &[&str], kind: Kind) -> Part {
        Part {
            set: label.split('/').next().unwrap().into(),
            label: label.into(),
            path: PathBuf::from("/x.csv"),
            columns: columns.iter().map(|s| s.to_string()).collect(),
            rows: 10,
            eval_mask: None,
            kind,
        }
    }

    #[test]
    fn roc_counts_ties_half_and_needs_both_classes() {
        assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), Some(0.75));
        assert_eq!(roc_auc(&[1.0, 1.0, 1.0, 1.0], &[false, true, false, true]), Some(0.5));
        assert_eq!(roc_auc(&[1.0, 2.0], &[false, false]), None);
        // NaN ranks lowest.
        assert_eq!(roc_auc(&[f64::NAN, 1.0], &[false, true]), Some(1.0));
    }

    #[test]
    fn average_precision_is_sklearns_step_sum() {
        // sklearn: average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.8333...
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((ap - 5.0 / 6.0).abs() < 1e-12, "{ap}");
        // All tied: precision is the base rate.
        assert_eq!(average_precision(&[0.0; 4], &[true, false, false, false]), Some(0.25));
        assert_eq!(average_precision(&[0.0; 2], &[false, false]), None);
    }

    #[test]
    fn metrics_cover_the_masked_rows_only() {
        let (roc, pr) = metrics(&[9.0, 0.1, 0.9], &[false, false, true], Some(&[false, true, true]));
        assert_eq!((roc, pr), (Some(1.0), Some(1.0)));
    }

    #[test]
    fn parses_the_scores_examples_output() {
        let run =
            parse_run("0.5\n1\n", "warning\nloop_seconds 0.25 cpu_seconds 0.2 rows 2 peak_rss_kib 1234\n").unwrap();
        assert_eq!(run, Run { scores: vec![0.5, 1.0], loop_seconds: 0.25, cpu_seconds: 0.2, peak_rss_kib: Some(1234) });
        let old = parse_run("1\n", "loop_seconds 1 cpu_seconds 0.5 rows 1").unwrap();
        assert_eq!((old.peak_rss_kib, old.seconds()), (None, 0.5));
        assert_eq!(run.seconds(), 0.2);
        let short = parse_run("1\n", "loop_seconds 0.01 cpu_seconds 0.004 rows 1").unwrap();
        assert_eq!(short.seconds(), 0.01);
        assert!(parse_run("x\n", "loop_seconds 1 cpu_seconds 1 rows 1").is_err());
        assert!(parse_run("1\n", "panicked").is_err());
    }

    #[test]
    fn specs_point_univariate_models_at_the_parts_columns() {
        let p = part("skab", &["a", "b", "c"], Kind::Rows);
        let ex = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            spec("moving_average", &ex(json!({"key": null, "window_size": 20})), &p),
            json!({"moving_average": {"key": "a", "window_size": 20}})
        );
        assert_eq!(
            spec("moving_covariance", &ex(json!({"keys": ["f1", "f2"], "bias": true})), &p),
            json!({"moving_covariance": {"keys": ["a", "b"], "bias": true}})
        );
        assert_eq!(
            spec("moving_mahalanobis_distance", &ex(json!({"keys": null, "window_size": 100})), &p),
            json!({"moving_mahalanobis_distance": {"window_size": 100}})
        );
        assert_eq!(
            spec("quantile_threshold", &ex(json!({"score_key": "score"})), &p),
            json!({"quantile_threshold": {"score_key": "a"}})
        );
        let nab = part("nab_known_cause/nyc_taxi", &["value"], Kind::Series);
        assert_eq!(
            spec("damp", &ex(json!({"subsequence_length": 100})), &nab),
            json!({"damp": {"subsequence_length": 48}})
        );
        let edges = part("edges_synthetic/seed1", &["src", "dst", "t"], Kind::Edges);
        assert_eq!(
            spec("midas", &ex(json!({})), &edges),
            json!({"midas": {"source_key": "src", "destination_key": "dst", "time_key": "t"}})
        );
        assert_eq!(
            spec("stream_spot", &ex(json!({"graph_key": "f4"})), &edges),
            json!({"stream_spot": {"source_key": "src", "destination_key": "dst", "time_key": null, "graph_key": "t"}})
        );
    }

    #[test]
    fn base_parameters_are_the_defaults_plus_required_and_column_ones() {
        let example = json!({"k": 55, "distance": "squared", "key": null, "seed": 42, "graph_key": "g"})
            .as_object()
            .unwrap()
            .clone();
        let params = [
            json!({"name": "k", "required": true}),
            json!({"name": "distance", "required": false}),
            json!({"name": "seed", "required": false}),
        ];
        assert_eq!(Value::Object(base_params(&example, &params)), json!({"k": 55, "key": null, "graph_key": "g"}));
    }

    #[test]
    fn kinds_decide_which_sets_a_model_runs_on() {
        let ex = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(model_kind("midas", &ex(json!({"source_key": "f1"}))), Kind::Edges);
        assert_eq!(model_kind("damp", &ex(json!({"subsequence_length": 1}))), Kind::Series);
        assert_eq!(
            model_kind("multivariate_rolling_matrix_profile", &ex(json!({"subsequence_length": 1}))),
            Kind::MultiSeries
        );
        assert_eq!(model_kind("knn", &ex(json!({"k": 5}))), Kind::Rows);
        assert!(runs_on(Kind::Rows, Kind::Series) && !runs_on(Kind::Rows, Kind::Edges));
        assert!(!runs_on(Kind::Series, Kind::Rows) && runs_on(Kind::MultiSeries, Kind::MultiSeries));
        assert!(runs_on(Kind::Edges, Kind::Edges) && !runs_on(Kind::Edges, Kind::Rows));
        assert_eq!(
            (period("ts_mitdb_ecg"), period("nab_known_cause/nyc_taxi"), period("smd_machine-2-1")),
            (288, 48, 60)
        );
    }

    #[test]
    fn cut_keeps_the_header_and_the_first_records() {
        let p = std::env::temp_dir().join(format!("onad-board-cut-{}.csv", std::process::id()));
        std::fs::write(&p, "a,label\n1,0\n2,0\n3,1\n").unwrap();
        cut(&p, 5).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a,label\n1,0\n2,0\n3,1\n");
        cut(&p, 2).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a,label\n1,0\n2,0\n");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn python_json_reads_nan_and_infinities_as_null() {
        let v = python_json(r#"{"a": NaN, "b": [Infinity, -Infinity, 1.5], "c": "NaN \" Infinity"}"#).unwrap();
        assert_eq!(v, json!({"a": null, "b": [null, null, 1.5], "c": "NaN \" Infinity"}));
    }

    #[test]
    fn reads_the_peer_scripts_reports() {
        let q = json!({"model_libraries": {"loda": "aberrant 1.3.0"}, "pairs": [
            {"model": "loda", "part": "glass_odds", "rows_used": 214,
             "python": {"roc_auc": 0.7, "pr_auc": 0.2, "rows_per_sec": 1000.0},
             "rust": {"runs": [{"loop_rows_per_sec": 1e6}, {"loop_rows_per_sec": 3e6}]}},
            {"model": "loda", "library": "river 0.26.1", "part": "glass_odds", "rows_used": 214,
             "python": {"roc_auc": 0.6, "rows_per_sec": 500.0}, "rust": {"runs": [{"loop_rows_per_sec": 4e6}]}},
            {"model": "knn", "part": "spambase", "python": {"error": "boom", "runs": []}, "rust": {"runs": []}}]});
        let r = parse_quality(&q);
        let find = |model: &str, library: &str| {
            r.iter().find(|((m, _), p)| m == model && p.library == library).map(|(_, p)| p).unwrap()
        };
        // Both peers of one (model, part): the older pair names no library (the model's one), the newer does.
        let loda = find("loda", "aberrant 1.3.0");
        assert_eq!((loda.roc_auc, loda.onad_rows_per_sec, loda.rows), (Some(0.7), Some(2e6), Some(214)));
        let river = find("loda", "river 0.26.1");
        assert_eq!((river.roc_auc, river.rows_per_sec, river.onad_rows_per_sec), (Some(0.6), Some(500.0), Some(4e6)));
        assert_eq!(find("knn", "Python reference").note.as_deref(), Some("boom"));
        let rc = parse_rcf3(
            "random_cut_forest",
            &json!([{"part": "skab", "rows": 5,
            "onad_mean": {"roc_auc": 0.6, "pr_auc": 0.5, "rows_per_sec": 400.0},
            "rcf3_mean": {"roc_auc": 0.55, "pr_auc": 0.4, "rows_per_sec": 100.0}}]),
        );
        let e = &rc[&("random_cut_forest".to_owned(), "skab".to_owned())];
        assert_eq!((e.rows_per_sec, e.onad_rows_per_sec, e.library.as_str()), (Some(100.0), Some(400.0), "rcf3 0.5.2"));
        let at = parse_rcf3("random_cut_forest", &json!([{"part": "skab", "onad_setting": "scoring=depth"}]));
        assert_eq!(
            at[&("random_cut_forest".to_owned(), "skab".to_owned())].library,
            "rcf3 0.5.2 (onad at scoring=depth)"
        );
    }

    #[test]
    fn summaries_take_geometric_mean_ratios_and_auc_over_shared_sets() {
        let cell = |part: &str, rate: f64, roc: Option<f64>| Cell {
            model: "m".into(),
            part: part.into(),
            rows: 10,
            rows_per_sec: Some(rate),
            model_kib: Some(5),
            peak_kib: Some(100),
            roc_auc: roc,
            pr_auc: roc,
            error: None,
        };
        let cells = vec![cell(SYNTHETIC, 1e6, Some(0.9)), cell("a", 1000.0, Some(0.8)), cell("b", 4000.0, Some(0.6))];
        let peer = |rate: f64, roc: Option<f64>| PeerResult {
            library: "py".into(),
            roc_auc: roc,
            rows_per_sec: Some(rate),
            ..Default::default()
        };
        let mut peers = BTreeMap::new();
        peers.insert(("m".to_owned(), "a".to_owned()), vec![peer(10.0, Some(0.7))]);
        peers.insert(("m".to_owned(), "b".to_owned()), vec![peer(4.0, None)]);
        let s = &summarise(&cells, &peers)[0];
        assert_eq!((s.synthetic_rows_per_sec, s.synthetic_kib, s.parts), (Some(1e6), Some(5), 2));
        assert!((s.roc_auc.unwrap() - 0.7).abs() < 1e-12);
        let (ratio, ours, theirs, n) = s.peers["py"];
        assert!((ratio.unwrap() - (100.0f64 * 1000.0).sqrt()).abs() < 1e-6, "{ratio:?}");
        assert_eq!((ours, theirs, n), (Some(0.8), Some(0.7), 1));
        let table = summary_table(std::slice::from_ref(s));
        assert!(table.contains("| m | 1.0M | 5 KiB | 2 | 0.700 | 0.700 | py: 316x, 0.800 / 0.700 (1) |"), "{table}");
        let detail = detail_table(&cells, &peers);
        assert!(detail.contains("| m | a | 10 | 1.0k | 5 KiB | 0.800 | 0.800 | py: 10 (100x), 0.700, - |"), "{detail}");
    }

    #[test]
    fn splice_replaces_the_marked_section_or_the_stale_top() {
        let doc = "# Benchmarks\n\nold intro\n| old | table |\n\n## Kept\ntext\n";
        let once = splice(doc, "new table\n");
        assert!(once.starts_with("# Benchmarks\n\n<!-- scoreboard: begin"), "{once}");
        assert!(
            once.contains("new table\n<!-- scoreboard: end -->\n\n## Kept\ntext\n") && !once.contains("old"),
            "{once}"
        );
        let twice = splice(&once, "newer\n");
        assert!(
            twice.contains("newer\n<!-- scoreboard: end -->\n\n## Kept") && !twice.contains("new table"),
            "{twice}"
        );
    }

    #[test]
    fn rates_read_at_a_glance() {
        assert_eq!(
            (rate(2.5e7), rate(45_000.0), rate(1_234.0), rate(12.0)),
            ("25.0M".into(), "45k".into(), "1.2k".into(), "12".into())
        );
    }
}
