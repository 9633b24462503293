//! `cargo xtask bench --growth [--quick]`: how a model's cost grows with its size parameters.
//!
//! For the main families, rows/s (score then learn, one core: the `scores` example's loop) and the
//! model's resident memory (the process's peak minus `null_model`'s on the same rows) as one parameter
//! grows, the others at the registry's example values: a moving statistic vs its window, the Mahalanobis
//! distance vs the number of features, half-space trees and random cut forests vs trees and tree size,
//! knn and local_outlier_factor vs their window, and `onad run --key` vs the number of keys (one model per
//! key, the keyed runner). Each curve family becomes one hand-drawn SVG, `docs/growth-NAME.svg` (two
//! panels: rows/s and memory against the parameter, log-log), and its log-log slopes are written in the
//! growth section of `docs/benchmarks.md` (slope 0: flat; -1 in rows/s and 1 in memory: linear cost).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench;

/// One point of a curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub rows_per_sec: f64,
    pub kib: f64,
}

/// One curve: a model as one parameter grows.
#[derive(Clone, Debug)]
pub struct Curve {
    pub label: String,
    pub points: Vec<Point>,
}

/// One plot: the curves that share an axis.
#[derive(Clone, Debug)]
pub struct Plot {
    pub file: &'static str,
    pub title: &'static str,
    pub axis: &'static str,
    pub curves: Vec<Curve>,
}

/// A deterministic CSV of `rows` x `d` Gaussian features (and `keys` > 0: a key column `k` first, the row's
/// key `i % keys`), a 0 label: the growth runs measure cost, not quality.
pub fn write_gaussian(path: &Path, rows: usize, d: usize, keys: usize) -> Result<()> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (d as u64) << 32 ^ rows as u64;
    let mut next = move || {
        // splitmix64, then a uniform in (0, 1).
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 + 0.5 / (1u64 << 53) as f64
    };
    let mut out = String::with_capacity(rows * d * 12);
    if keys > 0 {
        out += "k,";
    }
    out += &(0..d).map(|j| format!("f{j}")).collect::<Vec<_>>().join(",");
    out += ",label\n";
    for i in 0..rows {
        if keys > 0 {
            write!(out, "{},", i % keys)?;
        }
        for _ in 0..d {
            let (u, v) = (next(), next());
            let g = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            write!(out, "{g:.6},")?;
        }
        out += "0\n";
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// A field in KiB of a running process's `/proc/PID/status`, None once it is gone.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident KiB of a running process (`VmHWM`), None once it is gone.
fn hwm(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident KiB of a running process now (`VmRSS`), None once it is gone.
pub fn resident_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// Waits for `child`, polling every `poll`: its exit status and its peak resident KiB (the last `VmHWM`
/// read). Killed, with an error saying why, past `timeout` or past `limit_kib` resident (a model whose
/// memory grows with the stream must not take the shared machine down).
pub fn watch(
    child: &mut Child,
    timeout: Duration,
    limit_kib: Option<u64>,
    poll: Duration,
) -> Result<(ExitStatus, u64)> {
    let start = Instant::now();
    let mut peak = 0;
    loop {
        if let Some(k) = hwm(child.id()) {
            peak = peak.max(k);
        }
        if let Some(status) = child.try_wait()? {
            return Ok((status, peak));
        }
        if start.elapsed() > timeout {
            child.kill()?;
            child.wait()?;
            bail!("stopped after {} s", timeout.as_secs());
        }
        if let Some(limit) = limit_kib
            && resident_kib(child.id()).is_some_and(|k| k > limit)
        {
            child.kill()?;
            child.wait()?;
            bail!("stopped at {} MiB resident (the bench's limit)", limit / 1024);
        }
        std::thread::sleep(poll);
    }
}

/// Runs `cmd` to the end: its wall seconds and its peak resident KiB (polled; the last reading).
fn run_polled(mut cmd: Command, timeout: Duration) -> Result<(f64, u64)> {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let (status, peak) = watch(&mut child, timeout, None, Duration::from_millis(5))?;
    if !status.success() {
        let mut err = String::new();
        use std::io::Read as _;
        child.stderr.take().map(|mut e| e.read_to_string(&mut err));
        bail!("{status}: {}", err.lines().last().unwrap_or(""));
    }
    Ok((start.elapsed().as_secs_f64(), peak))
}

/// The log-log slope of `y` against `x` (least squares), None with fewer than two usable points.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let p: Vec<(f64, f64)> =
        points.iter().filter(|(x, y)| *x > 0.0 && *y > 0.0).map(|(x, y)| (x.ln(), y.ln())).collect();
    if p.len() < 2 {
        return None;
    }
    let n = p.len() as f64;
    let (mx, my) = (p.iter().map(|q| q.0).sum::<f64>() / n, p.iter().map(|q| q.1).sum::<f64>() / n);
    let sxx: f64 = p.iter().map(|q| (q.0 - mx).powi(2)).sum();
    (sxx > 0.0).then(|| p.iter().map(|q| (q.0 - mx) * (q.1 - my)).sum::<f64>() / sxx)
}

/// How a slope reads: flat, linear, or the power.
pub fn reading(s: f64) -> String {
    if s.abs() < 0.15 {
        "flat".to_owned()
    } else if (s.abs() - 1.0).abs() < 0.15 {
        if s > 0.0 { "linear".to_owned() } else { "inverse-linear (cost linear)".to_owned() }
    } else {
        format!("x^{s:.2}")
    }
}

/// A plot's sentence: per curve, how rows/s and memory move over the range measured.
pub fn sentence(plot: &Plot) -> String {
    let parts: Vec<String> = plot
        .curves
        .iter()
        .map(|c| {
            let rate = slope(&c.points.iter().map(|p| (p.x, p.rows_per_sec)).collect::<Vec<_>>());
            let mem = slope(&c.points.iter().map(|p| (p.x, p.kib.max(1.0))).collect::<Vec<_>>());
            let (first, last) = (c.points.first(), c.points.last());
            let span = match (first, last) {
                (Some(a), Some(b)) => format!(
                    " ({} -> {} rows/s, {:.0} -> {:.0} KiB over {} = {}..{})",
                    crate::board::rate(a.rows_per_sec),
                    crate::board::rate(b.rows_per_sec),
                    a.kib,
                    b.kib,
                    plot.axis,
                    a.x,
                    b.x
                ),
                _ => String::new(),
            };
            format!(
                "{}: rows/s slope {} ({}), memory slope {} ({}){span}",
                c.label,
                rate.map_or("-".into(), |s| format!("{s:.2}")),
                rate.map_or("-".into(), reading),
                mem.map_or("-".into(), |s| format!("{s:.2}")),
                mem.map_or("-".into(), reading)
            )
        })
        .collect();
    parts.join("; ")
}

/// Ticks of a log axis over [lo, hi]: the powers of ten inside it (or the ends when there are fewer than two).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut t: Vec<f64> = (lo.log10().floor() as i32..=hi.log10().ceil() as i32)
        .map(|e| 10f64.powi(e))
        .filter(|v| *v >= lo * 0.999 && *v <= hi * 1.001)
        .collect();
    if t.len() < 2 {
        t = vec![lo, hi];
    }
    t
}

fn tick_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

const COLOURS: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

/// The plot as SVG: rows/s (left) and memory (right) against the parameter, both axes logarithmic.
pub fn svg(plot: &Plot) -> String {
    let (w, h, pw, ph, left, top) = (900.0, 380.0, 340.0, 250.0, 70.0, 50.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        w / 2.0,
        escape(plot.title)
    );
    let xs: Vec<f64> = plot.curves.iter().flat_map(|c| c.points.iter().map(|p| p.x)).collect();
    let range = |v: &[f64]| {
        let lo = v.iter().copied().filter(|x| *x > 0.0).fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        if lo.is_finite() && hi > lo { (lo, hi) } else { (lo.min(1.0), hi.max(lo.min(1.0) * 10.0)) }
    };
    let (x0, x1) = range(&xs);
    for (panel, name) in [(0usize, "rows/s"), (1, "memory, KiB")] {
        let value = |p: &Point| if panel == 0 { p.rows_per_sec } else { p.kib.max(1.0) };
        let ys: Vec<f64> = plot.curves.iter().flat_map(|c| c.points.iter().map(value)).collect();
        let (y0, y1) = range(&ys);
        let (y0, y1) = (10f64.powf(y0.log10().floor()), 10f64.powf(y1.log10().ceil()));
        let ox = left + panel as f64 * (pw + 110.0);
        let px = |x: f64| ox + (x.ln() - x0.ln()) / (x1.ln() - x0.ln()).max(1e-12) * pw;
        let py = |y: f64| top + ph - (y.ln() - y0.ln()) / (y1.ln() - y0.ln()).max(1e-12) * ph;
        let _ =
            writeln!(s, "<rect x=\"{ox}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>");
        for t in log_ticks(x0, x1) {
            let x = px(t);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                top + ph,
                top + ph + 16.0,
                tick_label(t)
            );
        }
        for t in log_ticks(y0, y1) {
            let y = py(t);
            let _ = writeln!(
                s,
                "<line x1=\"{ox}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                ox + pw,
                ox - 5.0,
                y + 4.0,
                tick_label(t)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 {} {})\">{name}</text>",
            ox + pw / 2.0,
            top + ph + 34.0,
            escape(plot.axis),
            ox - 52.0,
            top + ph / 2.0,
            ox - 52.0,
            top + ph / 2.0
        );
        for (i, c) in plot.curves.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let pts: Vec<String> = c.points.iter().map(|p| format!("{:.1},{:.1}", px(p.x), py(value(p)))).collect();
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                pts.join(" ")
            );
            for p in &c.points {
                let _ =
                    writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>", px(p.x), py(value(p)));
            }
        }
    }
    let mut x = left;
    for (i, c) in plot.curves.iter().enumerate() {
        let y = h - 14.0;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{}\"/><text x=\"{}\" y=\"{y}\">{}</text>",
            y - 5.0,
            COLOURS[i % COLOURS.len()],
            x + 20.0,
            escape(&c.label)
        );
        x += 40.0 + 7.0 * c.label.chars().count() as f64;
    }
    s + "</svg>\n"
}

/// One `scores` point: rows/s of the loop, memory over the null model's on the same file.
fn point(root: &Path, path: &Path, spec: Value, x: f64, null_kib: u64, timeout: Duration) -> Result<Point> {
    let r = bench::scores(root, path, &spec, timeout)?;
    let seconds = r.seconds();
    Ok(Point {
        x,
        rows_per_sec: r.scores.len() as f64 / seconds,
        kib: r.peak_rss_kib.unwrap_or(0).saturating_sub(null_kib) as f64,
    })
}

/// A curve of `scores` runs: `make(x)` the model JSON at each x, on the file `data(x)`.
fn curve(
    root: &Path,
    label: &str,
    xs: &[f64],
    data: &dyn Fn(f64) -> Result<PathBuf>,
    make: &dyn Fn(f64) -> Value,
    timeout: Duration,
) -> Result<Curve> {
    let mut points = Vec::new();
    for &x in xs {
        let path = data(x)?;
        let null = bench::scores(root, &path, &json!({"null_model": {}}), timeout)?.peak_rss_kib.unwrap_or(0);
        match point(root, &path, make(x), x, null, timeout) {
            Ok(p) => {
                eprintln!("  {label} at {x}: {} rows/s, {:.0} KiB", crate::board::rate(p.rows_per_sec), p.kib);
                points.push(p);
            }
            Err(e) => eprintln!("  {label} at {x}: {e:#} (left out)"),
        }
    }
    Ok(Curve { label: label.to_owned(), points })
}

/// The keyed curve: `onad run --key k` with `model` (its `--set` values `sets`) over `d` features, one model
/// per key, against the number of keys; each key gets `per_key` rows (at least `min_rows` in all), so every
/// per-key model is past its warm-up. Rows per second of the whole run (read, route, score, learn) and the
/// peak memory over a keyless `null_model` run on the same file.
#[allow(clippy::too_many_arguments)]
fn keyed_curve(
    root: &Path,
    work: &Path,
    label: &str,
    model: &str,
    sets: &[&str],
    d: usize,
    per_key: usize,
    min_rows: usize,
    keys: &[f64],
    timeout: Duration,
) -> Result<Curve> {
    let onad = root.join("target/release/onad");
    let run = |path: &Path, key: bool, model: &str, sets: &[&str]| -> Result<(f64, u64)> {
        let mut c = Command::new(&onad);
        c.arg("run").arg("-i").arg(path).args([
            "-m",
            model,
            "--threshold",
            "none",
            "--no-eval",
            "-q",
            "--threads",
            "1",
        ]);
        for s in sets {
            c.args(["--set", s]);
        }
        if key {
            c.args(["--key", "k", "--workers", "1"]);
        }
        run_polled(c, timeout)
    };
    let mut points = Vec::new();
    for &k in keys {
        let rows = min_rows.max(k as usize * per_key);
        let path = work.join(format!("keyed-{k}x{d}-{rows}.csv"));
        if !path.exists() {
            write_gaussian(&path, rows, d, k as usize)?;
        }
        let (_, base) = run(&path, false, "null_model", &[])?;
        match run(&path, true, model, sets) {
            Ok((seconds, peak)) => {
                let p = Point { x: k, rows_per_sec: rows as f64 / seconds, kib: peak.saturating_sub(base) as f64 };
                eprintln!(
                    "  {label} at {k} keys ({rows} rows): {} rows/s, {:.0} KiB",
                    crate::board::rate(p.rows_per_sec),
                    p.kib
                );
                points.push(p);
            }
            Err(e) => eprintln!("  {label} at {k} keys: {e:#} (left out)"),
        }
    }
    Ok(Curve { label: label.to_owned(), points })
}

/// Runs the growth curves, writes the SVGs and the growth section.
pub fn growth(root: &Path, quick: bool) -> Result<()> {
    bench::build(root)?;
    let work = bench::work_dir(root, "growth")?;
    let rows = if quick { 10_000 } else { 50_000 };
    let timeout = Duration::from_secs(if quick { 120 } else { 600 });
    let file = |d: usize, n: usize| -> Result<PathBuf> {
        let p = work.join(format!("gauss-{n}x{d}.csv"));
        if !p.exists() {
            write_gaussian(&p, n, d, 0)?;
        }
        Ok(p)
    };
    let ten = |_: f64| file(10, rows);
    let slow_rows = rows / 5;
    let ten_slow = |_: f64| file(10, slow_rows);
    let before = bench::machine();
    eprintln!("\n==> growth curves ({rows} rows, {})", if quick { "quick" } else { "full" });

    // A window curve runs on twice its window in rows (at least `rows`), so the window fills.
    let filled = |n: usize| move |w: f64| file(10, n.max(2 * w as usize));
    let windows: &[f64] =
        if quick { &[10.0, 100.0, 1_000.0, 10_000.0] } else { &[10.0, 100.0, 1_000.0, 10_000.0, 100_000.0] };
    let stat = |name: &'static str| move |w: f64| json!({ name: {"key": "f0", "window_size": w as u64} });
    let mut plots = vec![Plot {
        file: "growth-window-statistics.svg",
        title: "Moving statistics against their window",
        axis: "window_size",
        curves: vec![
            curve(root, "moving_average", windows, &filled(rows), &stat("moving_average"), timeout)?,
            curve(root, "moving_variance", windows, &filled(rows), &stat("moving_variance"), timeout)?,
            curve(root, "moving_median", windows, &filled(rows), &stat("moving_median"), timeout)?,
        ],
    }];
    let features = [2.0, 5.0, 10.0, 20.0, 40.0, 80.0];
    plots.push(Plot {
        file: "growth-features.svg",
        title: "moving_mahalanobis_distance and half_space_trees against the number of features",
        axis: "features",
        curves: vec![
            curve(
                root,
                "moving_mahalanobis_distance",
                &features,
                &|d| file(d as usize, rows),
                &|_| json!({"moving_mahalanobis_distance": {"window_size": 100}}),
                timeout,
            )?,
            curve(
                root,
                "half_space_trees",
                &features,
                &|d| file(d as usize, rows),
                &|_| json!({"half_space_trees": {"seed": 1}}),
                timeout,
            )?,
        ],
    });
    let trees = [5.0, 10.0, 20.0, 40.0, 80.0, 160.0];
    plots.push(Plot {
        file: "growth-trees.svg",
        title: "Tree ensembles against the number of trees (10 features)",
        axis: "trees",
        curves: vec![
            curve(
                root,
                "half_space_trees",
                &trees,
                &ten,
                &|t| json!({"half_space_trees": {"n_trees": t as u64, "seed": 1}}),
                timeout,
            )?,
            curve(
                root,
                "random_cut_forest",
                &trees,
                &ten_slow,
                &|t| json!({"random_cut_forest": {"n_trees": t as u64, "seed": 1}}),
                timeout,
            )?,
        ],
    });
    plots.push(Plot {
        file: "growth-height.svg",
        title: "half_space_trees against its tree height (10 features)",
        axis: "height",
        curves: vec![curve(
            root,
            "half_space_trees",
            &[4.0, 6.0, 8.0, 10.0, 12.0, 14.0],
            &ten,
            &|h| json!({"half_space_trees": {"height": h as u64, "seed": 1}}),
            timeout,
        )?],
    });
    plots.push(Plot {
        file: "growth-sample-size.svg",
        title: "random_cut_forest against its sample size per tree (tree depth ~ log2 of it)",
        axis: "sample_size",
        curves: vec![curve(
            root,
            "random_cut_forest",
            &[64.0, 128.0, 256.0, 512.0, 1_024.0, 2_048.0],
            &filled(slow_rows),
            &|n| json!({"random_cut_forest": {"sample_size": n as u64, "seed": 1}}),
            timeout,
        )?],
    });
    let nwin = [100.0, 250.0, 500.0, 1_000.0, 2_000.0, 4_000.0];
    plots.push(Plot {
        file: "growth-window-neighbours.svg",
        title: "Neighbour models against their window (10 features)",
        axis: "window_size",
        curves: vec![
            curve(
                root,
                "knn (k = 55)",
                &nwin,
                &filled(slow_rows),
                &|w| json!({"knn": {"k": 55, "warm_up": 55, "window_size": w as u64}}),
                timeout,
            )?,
            curve(
                root,
                "local_outlier_factor (k = 10)",
                &nwin,
                &filled(slow_rows),
                &|w| json!({"local_outlier_factor": {"k": 10, "window_size": w as u64}}),
                timeout,
            )?,
        ],
    });
    let keys: &[f64] =
        if quick { &[1.0, 10.0, 100.0, 1_000.0, 10_000.0] } else { &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0] };
    let keyed_rows = if quick { 20_000 } else { 100_000 };
    plots.push(Plot {
        file: "growth-keys.svg",
        title: "onad run --key: one model per key, against the number of keys",
        axis: "keys",
        curves: vec![
            keyed_curve(
                root,
                &work,
                "moving_average (window 20, 1 feature, 40 rows a key)",
                "moving_average",
                &["window_size=20"],
                1,
                40,
                keyed_rows,
                keys,
                timeout,
            )?,
            keyed_curve(
                root,
                &work,
                "half_space_trees (4 features, 300 rows a key)",
                "half_space_trees",
                &[],
                4,
                300,
                keyed_rows,
                &keys[..keys.len().min(4)],
                timeout,
            )?,
        ],
    });
    let after = bench::machine();

    let mut section = format!(
        "## Cost of growth\n\nGenerated by `cargo xtask bench --growth{}` on {} ({} cores, {}; load average {} at the start, \
         {} at the end). Score then learn per row, one core, {rows} rows of 10 Gaussian features unless the plot \
         says otherwise (the slow ones, random_cut_forest, knn and local_outlier_factor, {slow_rows} rows); the other \
         parameters at the registry's example values. Memory: the process's peak resident set minus \
         `null_model`'s on the same rows (for `onad run --key`, minus a keyless `null_model` run; its rows/s is the \
         whole run, read and routing included, over at least {keyed_rows} rows and enough for every key to pass its \
         model's warm-up). A window curve runs on twice its window (the window fills). Slopes are log-log least squares over \
         the points: 0 is flat, -1 for rows/s (or +1 for memory) is linear in the parameter.\n\n",
        if quick { " --quick" } else { "" },
        before["date"].as_str().unwrap_or("?"),
        before["cores"],
        before["cpu"].as_str().unwrap_or("?"),
        before["load"].as_str().unwrap_or("?"),
        after["load"].as_str().unwrap_or("?"),
    );
    let mut table = String::from("| plot | curve | x | rows/s | memory KiB |\n|---|---|---:|---:|---:|\n");
    for p in &plots {
        std::fs::write(root.join("docs").join(p.file), svg(p))?;
        let _ = writeln!(section, "![{}]({})\n\n{}: {}.\n", p.title, p.file, p.title, sentence(p));
        for c in &p.curves {
            for q in &c.points {
                let _ = writeln!(
                    table,
                    "| {} | {} | {} | {} | {:.0} |",
                    p.file,
                    c.label,
                    q.x,
                    crate::board::rate(q.rows_per_sec),
                    q.kib
                );
            }
        }
    }
    std::fs::write(root.join("target/bench/growth.md"), format!("{section}\n{table}"))?;
    let data: Vec<Value> = plots
        .iter()
        .map(|p| json!({"file": p.file, "axis": p.axis, "curves": p.curves.iter().map(|c| json!({"label": c.label,
            "points": c.points.iter().map(|q| json!({"x": q.x, "rows_per_sec": q.rows_per_sec, "kib": q.kib})).collect::<Vec<_>>()})).collect::<Vec<_>>()}))
        .collect();
    std::fs::write(
        root.join("target/bench/growth.json"),
        serde_json::to_string_pretty(&json!({"machine": before, "plots": data}))? + "\n",
    )?;
    let doc_path = root.join("docs/benchmarks.md");
    let doc = std::fs::read_to_string(&doc_path)?;
    std::fs::write(&doc_path, splice_growth(&doc, &section))?;
    println!("{section}\n{table}");
    eprintln!("written: docs/growth-*.svg, the growth section of docs/benchmarks.md, target/bench/growth.{{json,md}}");
    Ok(())
}

/// Replaces the growth section (between its markers) of `doc`, or puts it right after the scoreboard
/// section (or the title) when it has none yet.
pub fn splice_growth(doc: &str, section: &str) -> String {
    const BEGIN: &str = "<!-- growth: begin (cargo xtask bench --growth writes this part) -->";
    const END: &str = "<!-- growth: end -->";
    let block = crate::board::marked(BEGIN, END, section);
    if let Some(done) = crate::board::replace_marked(doc, BEGIN, END, &block) {
        return done;
    }
    let anchor = "<!-- scoreboard: end -->\n";
    if let Some(i) = doc.find(anchor) {
        let at = i + anchor.len();
        return format!("{}\n{block}{}", &doc[..at], &doc[at..]);
    }
    let (title, rest) = doc.split_once('\n').unwrap_or((doc, ""));
    format!("{title}\n\n{block}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_read_flat_and_linear() {
        let flat = [(10.0, 5.0), (100.0, 5.0), (1000.0, 5.0)];
        let linear = [(10.0, 1e6), (100.0, 1e5), (1000.0, 1e4)];
        assert!(slope(&flat).unwrap().abs() < 1e-12);
        assert!((slope(&linear).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(
            (reading(0.05), reading(1.1), reading(-0.95), reading(0.5)),
            ("flat".into(), "linear".into(), "inverse-linear (cost linear)".into(), "x^0.50".into())
        );
    }

    #[test]
    fn svg_draws_both_panels_and_a_legend() {
        let plot = Plot {
            file: "x.svg",
            title: "A <b> title",
            axis: "window",
            curves: vec![Curve {
                label: "m".into(),
                points: vec![
                    Point { x: 10.0, rows_per_sec: 1e6, kib: 4.0 },
                    Point { x: 1000.0, rows_per_sec: 1e5, kib: 400.0 },
                ],
            }],
        };
        let s = svg(&plot);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert_eq!(s.matches("<polyline").count(), 2);
        assert_eq!(s.matches("<circle").count(), 4);
        assert!(s.contains("A &lt;b&gt; title") && s.contains(">m</text>") && s.contains(">1k</text>"));
        let text = sentence(&plot);
        assert!(text.starts_with("m: rows/s slope -0.50 (x^-0.50), memory slope 1.00 (linear)"), "{text}");
    }

    #[test]
    fn gaussian_files_have_the_key_first_and_a_label_last() {
        let dir = std::env::temp_dir().join(format!("onad-growth-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("g.csv");
        write_gaussian(&p, 5, 2, 3).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "k,f0,f1,label");
        assert_eq!(lines.len(), 6);
        assert!(lines[4].starts_with("0,") && lines[5].starts_with("1,") && lines[5].ends_with(",0"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn growth_section_goes_after_the_scoreboard_and_is_replaced_in_place() {
        let doc = "# B\n\n<!-- scoreboard: begin (x) -->\nS\n<!-- scoreboard: end -->\n\n## Later\n";
        let once = splice_growth(doc, "G1\n");
        assert!(once.contains("<!-- scoreboard: end -->\n\n<!-- growth: begin"), "{once}");
        assert!(once.contains("G1\n<!-- growth: end -->\n\n## Later\n"), "{once}");
        let twice = splice_growth(&once, "G2\n");
        assert!(twice.contains("G2\n<!-- growth: end -->") && !twice.contains("G1"), "{twice}");
    }
}
