//! Project automation, run as `cargo xtask <task>`:
//!
//! - `ci`: format check, clippy (warnings denied), every connector feature alone, tests, docs, tidy.
//! - `tidy`: the layering rules and source hygiene checks (also run as a test by `cargo test`).
//! - `bench [--quick] [--python]`: the scoreboard: every registered detector on the synthetic stream and
//!   every labelled set (rows/s, peak memory, ROC-AUC, PR-AUC), with `--python` next to each peer library
//!   that has the model; writes `target/bench/results.{json,md}` and the top of `docs/benchmarks.md`.
//! - `bench --growth [--quick]`: rows/s and memory as windows, trees, height, features and keys grow;
//!   writes `docs/growth-*.svg`.
//! - `datasets build`: rebuild the shipped Parquet data sets from the shared CSV copies.
//! - `datasets fetch NAME [--from BASE]`: fetch a registered data set into the cache (sha256-verified), from
//!   BASE (a URL or directory), else `$ONAD_DATASETS_BASE`, else the shared data directory.

mod bench;
mod board;
mod growth;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command, echoing it, and fails when it fails.
fn run(step: &str, mut cmd: Command) -> Result<()> {
    let start = Instant::now();
    eprintln!("\n==> {step}: {cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot start {step}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    eprintln!("<== {step}: ok in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// The tests start real programs: `redis-server` (the Redis connector's tests) and headless `chromium`
/// (the report page's rendering test). On a machine without one, install Debian's package when we can
/// (root with apt-get, as on CI), so `cargo xtask ci` works on a fresh machine.
fn ensure_test_programs() -> Result<()> {
    let present = |name: &str| Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [("redis-server", "redis-server"), ("chromium", "chromium")]
        .into_iter()
        .filter(|(program, _)| !present(program))
        .map(|(_, package)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !(root && present("apt-get")) {
        bail!(
            "the tests need {} on PATH: install {} (Debian: apt-get install -y {})",
            missing.join(" and "),
            if missing.len() == 1 { "it" } else { "them" },
            missing.join(" ")
        );
    }
    eprintln!("\n==> installing {} (apt-get), which the tests start", missing.join(", "));
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]).env("DEBIAN_FRONTEND", "noninteractive");
    run("apt-get update", update)?;
    let mut install = Command::new("apt-get");
    install.args(["install", "-y", "-qq"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive");
    run("apt-get install", install)
}

fn ci() -> Result<()> {
    let start = Instant::now();
    ensure_test_programs()?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run("fmt", fmt)?;

    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]);
    run("clippy", clippy)?;

    // Each connector feature must build on its own (features are additive and independent).
    for features in ["", "csv", "parquet", "jsonl", "sqlite", "fetch", "redis", "kafka"] {
        let mut check = cargo();
        check.args(["clippy", "-p", "onad-sources", "--no-default-features", "--locked"]);
        if !features.is_empty() {
            check.args(["--features", features]);
        }
        check.args(["--", "-D", "warnings"]);
        run(&format!("onad-sources with features [{features}]"), check)?;
    }

    tidy::check(&root())?;
    eprintln!("<== tidy: ok");

    let mut test = cargo();
    test.args(["test", "--workspace", "--locked"]);
    let (passed, failed) = run_counting_tests(test)?;

    // The guide's examples (docs/guide.md) check what they show with assertions: run every one.
    let mut examples: Vec<String> = std::fs::read_dir(root().join("crates/onad/examples"))
        .context("cannot list crates/onad/examples")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".rs").map(str::to_owned))
        .collect();
    examples.sort();
    for name in &examples {
        let mut example = cargo();
        example.args(["run", "-q", "--locked", "-p", "onad", "--features", "full", "--example", name]);
        run(&format!("example {name}"), example)?;
    }

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--locked"]).env("RUSTDOCFLAGS", "-D warnings");
    run("docs", doc)?;

    eprintln!("\ncargo xtask ci: all green in {:.0} s", start.elapsed().as_secs_f64());
    // The plain closing line that CI systems read.
    println!("ci: {passed} passed, {failed} failed");
    Ok(())
}

/// Runs `cargo test`, passing its output through, and adds up its `test result:` lines.
fn run_counting_tests(mut cmd: Command) -> Result<(usize, usize)> {
    use std::io::{BufRead, BufReader};
    let start = Instant::now();
    eprintln!("\n==> tests: {cmd:?}");
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().context("cannot start cargo test")?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(child.stdout.take().context("no stdout")?).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| {
                rest.split(';').find_map(|part| {
                    part.trim().strip_suffix(word).and_then(|n| n.trim().rsplit(' ').next()?.parse::<usize>().ok())
                })
            };
            passed += count("passed").unwrap_or(0);
            failed += count("failed").unwrap_or(0);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("tests failed ({status}): {passed} passed, {failed} failed");
    }
    eprintln!("<== tests: {passed} passed, {failed} failed in {:.1} s", start.elapsed().as_secs_f64());
    Ok((passed, failed))
}

fn datasets_build() -> Result<()> {
    let data = std::env::var_os("ONAD_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("../shared/data"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("datasets/manifest.json"))?)?;
    for d in manifest["datasets"].as_array().context("manifest has no datasets")? {
        let from = data.join("shippable").join(d["built_from"].as_str().context("built_from")?);
        let out = root().join("datasets").join(d["file"].as_str().context("file")?);
        let label = d["label_column"].as_str().context("label_column")?;
        let mut convert = cargo();
        convert.args(["run", "--quiet", "--release", "-p", "onad-sources", "--example", "convert", "--"]);
        convert.arg(&from).arg(&out).arg(label);
        run(&format!("convert {}", from.display()), convert)?;
        eprintln!(
            "{}: now check its sha256 against datasets/manifest.json (sha256sum {})",
            out.display(),
            out.display()
        );
    }
    Ok(())
}

/// The shared labelled data: `$ONAD_DATA_DIR`, else `../shared/data` beside the repository.
fn shared_data() -> PathBuf {
    std::env::var_os("ONAD_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("../shared/data"))
}

fn datasets_fetch(name: &str, from: Option<&str>) -> Result<()> {
    use onad_sources::datasets;
    let Some(info) = datasets::find(name) else {
        let names: Vec<&str> = datasets::REGISTRY.iter().map(|d| d.name).collect();
        bail!("unknown data set '{name}' (known: {})", names.join(", "));
    };
    let base = match from.map(str::to_string).or_else(datasets::default_base) {
        Some(base) => base,
        None => shared_data().join(info.shared_subdir()).display().to_string(),
    };
    let mut options = datasets::FetchOptions::new(base, datasets::cache_dir()?);
    options.progress = true;
    eprintln!("fetching {} from {}", info.name, datasets::source_location(info, &options.base)?);
    let path = datasets::fetch(info, &options)?;
    println!("{}", path.display());
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["ci"] => ci(),
        ["tidy"] => tidy::check(&root()),
        ["bench", rest @ ..] => bench::bench(&root(), rest),
        ["datasets", "build"] => datasets_build(),
        ["datasets", "fetch", name] => datasets_fetch(name, None),
        ["datasets", "fetch", name, "--from", base] => datasets_fetch(name, Some(base)),
        _ => {
            bail!(
                "usage: cargo xtask ci | tidy | bench [--quick] [--python] [--growth] [--no-docs] [--models=a,b] | datasets build | datasets fetch NAME [--from BASE]"
            )
        }
    }
}
