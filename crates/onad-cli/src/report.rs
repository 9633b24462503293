//! `onad report`: one self-contained HTML page about a run, with SVG plots drawn here (no script, no
//! remote resource, no font but the reader's own): the score over time with the threshold, the flagged
//! rows and the true labels; the score distributions of normal and anomalous rows; the ROC and
//! precision-recall curves; the windowed ROC-AUC over time; and the run's summary.
//!
//! The page is made from a run's scored rows: read back from its output (`onad report OUT.csv`, any
//! output `onad run` writes that the sources read: CSV, JSON Lines, Parquet), or collected while the run
//! goes (`onad run --report PAGE.html`). Plots over time draw at most [`COLUMNS`] columns, each the
//! minimum and maximum of its rows, so a page of a million rows stays small; the curves and the metrics
//! use every row.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use onad_core::{Scored, Sink, SinkError, SinkLayout, SinkPosition};
use onad_pipeline::metrics::{self, Prequential};
use onad_sources::{LabelColumn, SourceOptions};

use crate::run::thousands;

/// Columns of the plots over time.
pub const COLUMNS: usize = 1200;

/// Rows a report collects while a run goes; later rows are counted, not drawn (the page says so).
pub const MAX_ROWS: usize = 5_000_000;

/// The scored rows a page is drawn from.
#[derive(Debug, Default, Clone)]
pub struct ReportData {
    /// Input row ids.
    pub rows: Vec<u64>,
    /// Scores.
    pub scores: Vec<f64>,
    /// The threshold each score was compared with (NaN when unknown).
    pub thresholds: Vec<f64>,
    /// Flags.
    pub flags: Vec<bool>,
    /// Labels (NaN where a row has none); empty when the input has no labels.
    pub labels: Vec<f64>,
    /// Rows seen past [`MAX_ROWS`], not kept.
    pub dropped: u64,
}

impl ReportData {
    fn push(&mut self, id: u64, score: f64, threshold: f64, flag: bool, label: Option<f64>) {
        if self.rows.len() >= MAX_ROWS {
            self.dropped += 1;
            return;
        }
        self.rows.push(id);
        self.scores.push(score);
        self.thresholds.push(threshold);
        self.flags.push(flag);
        if let Some(l) = label {
            self.labels.push(l);
        }
    }

    fn has_labels(&self) -> bool {
        !self.labels.is_empty() && self.labels.iter().any(|l| !l.is_nan())
    }
}

/// A sink that keeps what a report needs; `onad run --report` adds it beside the run's outputs.
#[derive(Debug, Clone, Default)]
pub struct Collect(pub std::sync::Arc<std::sync::Mutex<ReportData>>);

impl Sink for Collect {
    fn open(&mut self, _layout: &SinkLayout, _resume: Option<&SinkPosition>) -> Result<(), SinkError> {
        Ok(())
    }
    fn write(&mut self, scored: &Scored<'_>) -> Result<(), SinkError> {
        let mut data = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for r in scored.rows() {
            data.push(r.id, r.score, r.threshold, r.flag, r.label);
        }
        Ok(())
    }
    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        Ok(SinkPosition::Unrecorded)
    }
    fn describe(&self) -> String {
        "the report".into()
    }
}

/// `onad report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run's scored output (CSV, JSON Lines or Parquet, as `onad run --output` writes it).
    pub scores: PathBuf,
    /// The page to write.
    #[arg(long, short, value_name = "PAGE.html")]
    pub out: PathBuf,
    /// The run's summary (`onad run --summary-json`), shown on the page.
    #[arg(long, value_name = "FILE.json")]
    pub summary: Option<PathBuf>,
    /// Labelled rows per window of the windowed ROC-AUC [default: the summary's window, else 1000].
    #[arg(long, value_name = "N")]
    pub window: Option<usize>,
    /// The page's title [default: the scores file's name].
    #[arg(long)]
    pub title: Option<String>,
}

/// Runs `onad report`.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let data = read_scores(&args.scores)?;
    let summary = match &args.summary {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read summary {}", p.display()))?;
            Some(serde_json::from_str(&text).with_context(|| format!("{}: not a JSON summary", p.display()))?)
        }
        None => None,
    };
    let title = args.title.clone().unwrap_or_else(|| format!("onad report: {}", args.scores.display()));
    let page = render(&title, &data, summary.as_ref(), args.window);
    write_page(&args.out, &page)?;
    println!("wrote {} ({} rows)", args.out.display(), data.rows.len());
    Ok(())
}

/// Writes the page, naming the path on failure.
pub fn write_page(path: &Path, page: &str) -> anyhow::Result<()> {
    std::fs::write(path, page).with_context(|| format!("cannot write the report {}", path.display()))
}

/// Reads a run's output back through the sources: the columns `row` and `score` are required, `anomaly`,
/// `threshold` and `label` used when present.
pub fn read_scores(path: &Path) -> anyhow::Result<ReportData> {
    let open = |label| {
        let options = SourceOptions { label, bad_rows: onad_core::BadRowPolicy::Fail, ..Default::default() };
        onad_sources::open(path, options).with_context(|| format!("cannot read the scores {}", path.display()))
    };
    let probe = open(LabelColumn::None)?;
    let has_label = probe.schema().index_of("label").is_some();
    drop(probe);
    let mut source = open(if has_label { LabelColumn::Named("label".into()) } else { LabelColumn::None })?;
    let schema = source.schema().clone();
    let column = |name: &str| schema.index_of(name);
    let (Some(row), Some(score)) = (column("row"), column("score")) else {
        bail!(
            "{}: not a scored output of onad run: it needs the columns row and score (it has {})",
            path.display(),
            schema.names().join(", ")
        );
    };
    let (anomaly, threshold) = (column("anomaly"), column("threshold"));
    let mut data = ReportData::default();
    for batch in &mut source {
        let batch = batch.with_context(|| format!("cannot read the scores {}", path.display()))?;
        for (i, r) in batch.rows().enumerate() {
            let flag = anomaly.is_some_and(|a| r[a] != 0.0 && !r[a].is_nan());
            let t = threshold.map_or(f64::NAN, |t| r[t]);
            data.push(r[row] as u64, r[score], t, flag, batch.labels().map(|l| l[i]));
        }
    }
    if data.rows.is_empty() {
        bail!("{}: no scored rows", path.display());
    }
    Ok(data)
}

/// The page.
pub fn render(title: &str, data: &ReportData, summary: Option<&serde_json::Value>, window: Option<usize>) -> String {
    let mut body = String::new();
    let n = data.rows.len();
    let flagged = data.flags.iter().filter(|f| **f).count();
    let labelled = data.has_labels();
    let _ = write!(body, "<h1>{}</h1>\n<p class=\"lead\">{} rows", esc(title), thousands(n as u64));
    if data.dropped > 0 {
        let _ =
            write!(body, " drawn (the first {}; {} more were scored)", thousands(n as u64), thousands(data.dropped));
    }
    let _ = write!(body, ", {} flagged ({:.2} %)", thousands(flagged as u64), 100.0 * flagged as f64 / n.max(1) as f64);
    if labelled {
        let positives = data.labels.iter().filter(|l| !l.is_nan() && **l != 0.0).count();
        let _ = write!(body, ", {} labelled anomalous", thousands(positives as u64));
        if let (Some(roc), Some(pr)) =
            (metrics::roc_auc(&data.scores, &data.labels), metrics::pr_auc(&data.scores, &data.labels))
        {
            let _ = write!(body, "; ROC-AUC <b>{roc:.4}</b>, PR-AUC <b>{pr:.4}</b>");
        }
    }
    body.push_str(".</p>\n");

    section(
        &mut body,
        "Score over time",
        "The score of every row (the band spans each column's lowest and highest score), the \
         threshold it was compared with, flagged rows (red ticks, top) and rows labelled anomalous (orange, bottom).",
        &timeline(data),
    );
    section(
        &mut body,
        "Score distributions",
        if labelled {
            "Share of the normal (blue) and the anomalous (orange) rows in each score bin; the outer bins hold the lowest and highest 0.5 %."
        } else {
            "Share of the rows in each score bin (no labels); the outer bins hold the lowest and highest 0.5 %."
        },
        &histogram(data),
    );
    if let Some(c) = labelled.then(|| metrics::curves(&data.scores, &data.labels)).flatten() {
        let mut pair = String::from("<div class=\"pair\">");
        pair.push_str(&curve("ROC", ("false positive rate", "true positive rate"), &c.roc, ((0.0, 0.0), (1.0, 1.0))));
        let chance = ((0.0, c.prevalence), (1.0, c.prevalence));
        pair.push_str(&curve("Precision-recall", ("recall", "precision"), &c.pr, chance));
        pair.push_str("</div>");
        section(&mut body, "ROC and precision-recall curves", "Every row; the grey line is a random ranking.", &pair);
        let window = window
            .or_else(|| summary.and_then(|s| s["windowed"]["window"].as_u64()).map(|w| w as usize))
            .unwrap_or(1000)
            .max(2);
        let (plot, text) = windowed(data, window);
        section(&mut body, "Windowed ROC-AUC", &text, &plot);
    }
    if let Some(s) = summary {
        section(
            &mut body,
            "Summary",
            "The run's summary, as <code>onad run --summary-json</code> writes it.",
            &summary_table(s),
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n",
        esc(title)
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}p{line-height:1.4}.lead{font-size:1.05em}\
svg{background:#fff;border:1px solid #ddd}.pair{display:flex;gap:1em;flex-wrap:wrap}\
table{border-collapse:collapse}td{border-bottom:1px solid #eee;padding:2px 10px;vertical-align:top}\
td:first-child{color:#555}code{background:#f4f4f4;padding:0 3px}figure{margin:0}";

fn section(body: &mut String, title: &str, text: &str, content: &str) {
    let _ = write!(body, "<h2>{}</h2>\n<p>{text}</p>\n{content}\n", esc(title));
}

/// A plot area: pixel size, margins and the data ranges mapped onto them.
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    bottom: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn new(w: f64, h: f64, x: (f64, f64), y: (f64, f64)) -> Frame {
        let widen = |(a, b): (f64, f64)| if b > a { (a, b) } else { (a - 0.5, a + 0.5) };
        Frame { w, h, left: 64.0, bottom: 36.0, x: widen(x), y: widen(y) }
    }
    fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x.0) / (self.x.1 - self.x.0) * (self.w - self.left - 12.0)
    }
    fn py(&self, y: f64) -> f64 {
        let top = 12.0;
        self.h - self.bottom - (y - self.y.0) / (self.y.1 - self.y.0) * (self.h - self.bottom - top)
    }
    /// The SVG element with its axes, ticks and labels; `inner` is drawn inside.
    fn svg(&self, inner: &str, x_label: &str, y_label: &str) -> String {
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-size=\"11\">",
            w = self.w,
            h = self.h
        );
        let (x0, x1, y0, y1) = (self.px(self.x.0), self.px(self.x.1), self.py(self.y.0), self.py(self.y.1));
        for t in ticks(self.y.0, self.y.1) {
            let y = self.py(t);
            let _ = write!(
                s,
                "<line x1=\"{x0:.1}\" x2=\"{x1:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
                x0 - 4.0,
                y + 4.0,
                short(t)
            );
        }
        for t in ticks(self.x.0, self.x.1) {
            let x = self.px(t);
            let _ = write!(
                s,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y0:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
                y0 + 4.0,
                y0 + 16.0,
                short(t)
            );
        }
        s.push_str(inner);
        let _ = write!(
            s,
            "<rect x=\"{x0:.1}\" y=\"{y1:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#999\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\">{}</text>\
             <text transform=\"translate(12 {:.1}) rotate(-90)\" text-anchor=\"middle\" fill=\"#333\">{}</text></svg>",
            x1 - x0,
            y0 - y1,
            (x0 + x1) / 2.0,
            self.h - 4.0,
            esc(x_label),
            (y0 + y1) / 2.0,
            esc(y_label)
        );
        s
    }
}

fn polyline(f: &Frame, points: impl Iterator<Item = (f64, f64)>, style: &str) -> String {
    let mut s = String::from("<polyline fill=\"none\" points=\"");
    for (x, y) in points {
        let _ = write!(s, "{:.1},{:.1} ", f.px(x), f.py(y));
    }
    let _ = write!(s, "\" {style}/>");
    s
}

/// Finite values' range, or (0, 1) when there are none.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) }
}

/// The value at quantile `q` of the finite values (linear between order statistics).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = q * (sorted.len() - 1) as f64;
    let (i, frac) = (at.floor() as usize, at.fract());
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + frac * (sorted[j] - sorted[i])
}

fn timeline(data: &ReportData) -> String {
    let n = data.scores.len();
    let cols = n.clamp(1, COLUMNS);
    let col_of = |i: usize| i * cols / n.max(1);
    let (mut lo, mut hi) = (vec![f64::INFINITY; cols], vec![f64::NEG_INFINITY; cols]);
    let (mut thr, mut thr_n) = (vec![0.0; cols], vec![0u32; cols]);
    let (mut flag, mut label) = (vec![false; cols], vec![false; cols]);
    for i in 0..n {
        let c = col_of(i);
        let s = data.scores[i];
        if s.is_finite() {
            lo[c] = lo[c].min(s);
            hi[c] = hi[c].max(s);
        }
        if data.thresholds[i].is_finite() {
            thr[c] += data.thresholds[i];
            thr_n[c] += 1;
        }
        flag[c] |= data.flags[i];
        label[c] |= data.labels.get(i).is_some_and(|l| !l.is_nan() && *l != 0.0);
    }
    // The y range: the scores and thresholds, the top 0.1 % of scores above it drawn at the edge.
    let mut sorted: Vec<f64> = data.scores.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    let (s_lo, s_hi) = (quantile(&sorted, 0.0), quantile(&sorted, 0.999));
    let (t_lo, t_hi) = range(data.thresholds.iter().copied());
    let y = if data.thresholds.iter().any(|t| t.is_finite()) { (s_lo.min(t_lo), s_hi.max(t_hi)) } else { (s_lo, s_hi) };
    let x = (data.rows.first().copied().unwrap_or(0) as f64, data.rows.last().copied().unwrap_or(1) as f64);
    let f = Frame::new(1060.0, 320.0, x, y);
    let row_at = |c: usize| data.rows[(c * n / cols).min(n - 1)] as f64;
    let clip = |v: f64| v.clamp(f.y.0, f.y.1);
    let mut inner = String::new();
    // Labels and flags as ticks along the bottom and the top.
    for c in 0..cols {
        let x = f.px(row_at(c));
        if label[c] {
            let _ = write!(
                inner,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"1.5\" height=\"8\" fill=\"#f39c12\"/>",
                f.py(f.y.0) - 8.0
            );
        }
        if flag[c] {
            let _ = write!(
                inner,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"1.5\" height=\"8\" fill=\"#c0392b\"/>",
                f.py(f.y.1)
            );
        }
    }
    // The band: the columns' maxima left to right, then their minima back.
    let present: Vec<usize> = (0..cols).filter(|&c| lo[c].is_finite()).collect();
    let mut band = String::from(
        "<polygon fill=\"#2e86c1\" fill-opacity=\"0.55\" stroke=\"#2e86c1\" stroke-width=\"0.6\" points=\"",
    );
    for &c in &present {
        let _ = write!(band, "{:.1},{:.1} ", f.px(row_at(c)), f.py(clip(hi[c])));
    }
    for &c in present.iter().rev() {
        let _ = write!(band, "{:.1},{:.1} ", f.px(row_at(c)), f.py(clip(lo[c])));
    }
    band.push_str("\"/>");
    inner.push_str(&band);
    let thresholds = (0..cols).filter(|&c| thr_n[c] > 0).map(|c| (row_at(c), clip(thr[c] / f64::from(thr_n[c]))));
    inner.push_str(&polyline(&f, thresholds, "stroke=\"#c0392b\" stroke-width=\"1.2\" stroke-dasharray=\"4 2\""));
    f.svg(&inner, "input row", "score")
}

fn histogram(data: &ReportData) -> String {
    const BINS: usize = 50;
    let mut sorted: Vec<f64> = data.scores.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    let (lo, hi) = (quantile(&sorted, 0.005), quantile(&sorted, 0.995));
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
    let bin = |s: f64| (((s - lo) / (hi - lo) * BINS as f64).floor().max(0.0) as usize).min(BINS - 1);
    let labelled = data.has_labels();
    let mut counts = [[0.0f64; BINS]; 2];
    let mut totals = [0.0f64; 2];
    for (i, &s) in data.scores.iter().enumerate() {
        if !s.is_finite() {
            continue;
        }
        let class = match data.labels.get(i) {
            Some(l) if labelled && l.is_nan() => continue,
            Some(l) if labelled && *l != 0.0 => 1,
            _ => 0,
        };
        counts[class][bin(s)] += 1.0;
        totals[class] += 1.0;
    }
    let share = |c: usize, b: usize| if totals[c] > 0.0 { counts[c][b] / totals[c] } else { 0.0 };
    let top = (0..BINS).flat_map(|b| [share(0, b), share(1, b)]).fold(0.0, f64::max);
    let f = Frame::new(1060.0, 260.0, (lo, hi), (0.0, top.max(1e-9)));
    let mut inner = String::new();
    let width = f.px(lo + (hi - lo) / BINS as f64) - f.px(lo);
    for (c, color) in [(0, "#2e86c1"), (1, "#f39c12")] {
        if totals[c] == 0.0 {
            continue;
        }
        for b in 0..BINS {
            let x = f.px(lo + (hi - lo) * b as f64 / BINS as f64);
            let y = f.py(share(c, b));
            let _ = write!(
                inner,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\" fill-opacity=\"0.55\"/>",
                (width - 1.0).max(0.5),
                f.py(0.0) - y
            );
        }
    }
    f.svg(&inner, "score", "share of rows")
}

/// A curve in the unit square with the line of a random ranking (`chance`), at most 2,000 points drawn.
fn curve(title: &str, (x, y): (&str, &str), points: &[(f64, f64)], chance: ((f64, f64), (f64, f64))) -> String {
    let f = Frame::new(520.0, 400.0, (0.0, 1.0), (0.0, 1.0));
    let mut inner = polyline(&f, [chance.0, chance.1].into_iter(), "stroke=\"#aaa\" stroke-dasharray=\"3 3\"");
    // Every k-th point, with the last.
    let k = points.len().div_ceil(2000).max(1);
    let kept = points.iter().copied().enumerate().filter(|(i, _)| i % k == 0 || *i + 1 == points.len()).map(|(_, p)| p);
    inner.push_str(&polyline(&f, kept, "stroke=\"#2e86c1\" stroke-width=\"1.6\""));
    format!("<figure><figcaption>{}</figcaption>{}</figure>", esc(title), f.svg(&inner, x, y))
}

/// The windowed ROC-AUC plot and its sentence.
fn windowed(data: &ReportData, window: usize) -> (String, String) {
    let mut p = Prequential::new(window).expect("window >= 2");
    let mut ends = Vec::new();
    for (i, (&s, &l)) in data.scores.iter().zip(&data.labels).enumerate() {
        let before = p.windows().len();
        p.update(s, l);
        if p.windows().len() > before {
            ends.push(data.rows[i] as f64);
        }
    }
    let points: Vec<(f64, f64)> =
        p.windows().iter().zip(&ends).filter_map(|(w, &end)| w.roc_auc.map(|a| (end, a))).collect();
    let skipped = p.windows().len() - points.len();
    let text = format!(
        "ROC-AUC of each window of {window} labelled rows, at the row that closes it: {} windows{}{}.",
        p.windows().len(),
        if skipped > 0 { format!(", {skipped} with one class only (no AUC, not drawn)") } else { String::new() },
        p.mean_roc_auc().map(|m| format!("; mean {m:.4}")).unwrap_or_default()
    );
    let x = (data.rows.first().copied().unwrap_or(0) as f64, data.rows.last().copied().unwrap_or(1) as f64);
    let f = Frame::new(1060.0, 240.0, x, (0.0, 1.0));
    let mut inner = polyline(&f, [(x.0, 0.5), (x.1, 0.5)].into_iter(), "stroke=\"#aaa\" stroke-dasharray=\"3 3\"");
    inner.push_str(&polyline(&f, points.iter().copied(), "stroke=\"#2e86c1\" stroke-width=\"1.4\""));
    for &(x, y) in &points {
        let _ = write!(inner, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"#2e86c1\"/>", f.px(x), f.py(y));
    }
    (f.svg(&inner, "input row", "ROC-AUC"), text)
}

fn summary_table(summary: &serde_json::Value) -> String {
    let mut s = String::from("<table>");
    if let Some(map) = summary.as_object() {
        for (k, v) in map {
            let shown = match v {
                serde_json::Value::String(t) => t.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Null => "none".into(),
                other => other.to_string(),
            };
            let _ = write!(s, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&shown));
        }
    }
    s.push_str("</table>");
    s
}

/// About five round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return vec![lo];
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    (0..).map(|i| first + i as f64 * step).take_while(|t| *t <= hi + step * 1e-9).take(12).collect()
}

/// A tick label: short, without float noise.
fn short(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 1000.0 {
        let digits = thousands(a.round() as u64);
        if v < 0.0 { format!("-{digits}") } else { digits }
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// HTML text escaping.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> ReportData {
        let mut d = ReportData::default();
        for i in 0..n {
            let anomaly = i % 50 == 7;
            let score = (i % 13) as f64 * 0.1 + if anomaly { 3.0 } else { 0.0 };
            d.push(i as u64, score, 2.0, score > 2.0, Some(f64::from(u8::from(anomaly))));
        }
        d
    }

    #[test]
    fn a_page_holds_every_plot_and_nothing_remote() {
        let page = render("t <&>", &data(5000), Some(&serde_json::json!({"model": "m", "rows": 5000})), Some(500));
        for part in
            ["Score over time", "Score distributions", "ROC and precision-recall", "Windowed ROC-AUC", "Summary"]
        {
            assert!(page.contains(part), "{part} missing");
        }
        assert_eq!(page.matches("<svg").count(), 5);
        assert!(page.contains("t &lt;&amp;&gt;"));
        // Self-contained: the only URL is the SVG namespace.
        assert_eq!(page.matches("http").count(), page.matches("http://www.w3.org/2000/svg").count());
        assert!(!page.contains("<script") && !page.contains("src="));
        assert!(page.contains("ROC-AUC <b>1.0000</b>"), "the anomalies all score above the rest");
        assert!(page.contains("10 windows"), "5,000 labelled rows in windows of 500");
    }

    #[test]
    fn the_timeline_stays_within_its_columns_for_long_runs() {
        let page = render("long", &data(200_000), None, None);
        // The band polygon has two points per column at most.
        let band = page.split("<polygon").nth(1).unwrap();
        let points = band.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(points.split_whitespace().count() <= 2 * COLUMNS);
        assert!(page.len() < 1_500_000, "{} bytes", page.len());
    }

    #[test]
    fn unlabelled_runs_get_the_plots_that_need_no_labels() {
        let mut d = data(300);
        d.labels.clear();
        let page = render("u", &d, None, None);
        assert!(page.contains("Score over time") && page.contains("no labels"));
        assert!(!page.contains("ROC and precision-recall"));
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.0), [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(ticks(0.0, 10_000.0), [0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10_000.0]);
        assert_eq!(short(0.6000000000000001), "0.6");
        assert_eq!(short(12_000.0), "12,000");
        assert_eq!(short(-12_000.0), "-12,000");
        assert_eq!(short(2.5e-5), "2.5e-5");
    }
}
