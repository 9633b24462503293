//! `onad checkpoint inspect PATH`: what a checkpoint holds, without running anything: its generation,
//! format, model and parameters, rows, source position, threshold, order, input columns, outputs and
//! their positions, per-key models, and its size. A directory shows its newest valid generation and
//! lists the others.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use onad_models::{AnyPipeline, PipelineSpec};
use onad_pipeline::checkpoint::{self, CheckpointDir, FORMAT_VERSION};
use onad_pipeline::job::JobState;
use serde_json::{Value, json};

/// Options of `onad checkpoint inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A checkpoint file, or a checkpoint directory (its newest generation that reads).
    pub path: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The generation number in a file name `checkpoint-<generation>.onad`.
fn generation_of(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.strip_prefix("checkpoint-")?.strip_suffix(".onad")?.parse().ok()
}

/// Runs `onad checkpoint inspect`.
pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let (file, others) = if args.path.is_dir() {
        let dir = CheckpointDir::new(&args.path, 1).with_context(|| format!("cannot open {}", args.path.display()))?;
        let mut generations =
            dir.generations().with_context(|| format!("cannot list the checkpoints in {}", args.path.display()))?;
        generations.sort_by_key(|(g, _)| std::cmp::Reverse(*g));
        // The newest that verifies, as a resume would pick it; the damaged ones are named.
        let mut chosen = None;
        let mut listed = Vec::new();
        for (g, p) in &generations {
            let ok = std::fs::read(p).ok().is_some_and(|b| checkpoint::envelope(&b, p).is_ok());
            listed.push((*g, p.clone(), ok));
            if ok && chosen.is_none() {
                chosen = Some(p.clone());
            }
        }
        match chosen {
            Some(p) => (p, listed),
            None if generations.is_empty() => bail!("{}: no checkpoint in this directory", args.path.display()),
            None => bail!("{}: every checkpoint in this directory is damaged", args.path.display()),
        }
    } else {
        (args.path.clone(), Vec::new())
    };
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let env = checkpoint::envelope(&bytes, &file)?;
    let mut info = json!({
        "file": file.display().to_string(),
        "generation": generation_of(&file),
        "size_bytes": bytes.len(),
        "format": env.version,
        "model": env.model_kind,
        "rows": env.rows_seen,
        "position": env.position.to_string(),
    });
    if env.version == FORMAT_VERSION {
        let state: JobState<PipelineSpec, AnyPipeline> = postcard::from_bytes(env.payload)
            .with_context(|| format!("{}: the payload does not decode as this build's run state", file.display()))?;
        info["params"] = serde_json::to_value(&state.spec)?;
        info["threshold"] = json!(state.threshold.to_string());
        info["order"] = json!(state.order.to_string());
        info["anomalies"] = json!(state.anomalies);
        info["skipped"] = json!(state.skipped.total());
        info["outputs"] =
            state.sinks.iter().map(|(name, at)| json!({"output": name, "position": at.to_string()})).collect();
        if let Some(input) = &state.input {
            info["input"] = json!({"columns": input.columns, "labels": input.labels});
        }
        if let Some(k) = &state.keyed {
            info["keyed"] = json!({"models": k.models.len(), "max_keys": k.max_keys});
        }
        info["model_bytes"] = json!(postcard::to_allocvec(&state.model).map(|b| b.len()).unwrap_or(0));
    } else {
        info["note"] = json!(format!(
            "format {} (this build writes {FORMAT_VERSION}): a resume with onad run --resume migrates it",
            env.version
        ));
    }
    if !others.is_empty() {
        info["generations"] = others
            .iter()
            .map(|(g, p, ok)| json!({"generation": g, "file": p.display().to_string(), "valid": ok}))
            .collect();
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?;
        return Ok(());
    }
    print_text(&mut out, &info)?;
    Ok(())
}

fn print_text(out: &mut impl Write, info: &Value) -> std::io::Result<()> {
    let s = |k: &str| match &info[k] {
        Value::String(t) => t.clone(),
        Value::Null => "none".into(),
        v => v.to_string(),
    };
    writeln!(
        out,
        "file        {} (generation {}, {} bytes)",
        s("file"),
        info["generation"].as_u64().map_or("?".into(), |g| g.to_string()),
        s("size_bytes")
    )?;
    writeln!(out, "format      {}", s("format"))?;
    writeln!(out, "model       {}", s("model"))?;
    if let Some(p) = info.get("params") {
        writeln!(out, "params      {p}")?;
    }
    writeln!(out, "rows        {}", s("rows"))?;
    if info.get("anomalies").is_some() {
        writeln!(out, "flagged     {}; skipped {}", s("anomalies"), s("skipped"))?;
        writeln!(out, "order       {}; threshold {}", s("order"), s("threshold"))?;
    }
    writeln!(out, "position    {}", s("position"))?;
    if let Some(input) = info.get("input") {
        let columns: Vec<&str> =
            input["columns"].as_array().map_or(vec![], |a| a.iter().filter_map(Value::as_str).collect());
        let labels = if input["labels"] == true { "with labels" } else { "without labels" };
        writeln!(out, "input       {} columns ({}), {labels}", columns.len(), columns.join(", "))?;
    }
    if let Some(outputs) = info.get("outputs").and_then(Value::as_array) {
        for o in outputs {
            writeln!(
                out,
                "output      {} at {}",
                o["output"].as_str().unwrap_or(""),
                o["position"].as_str().unwrap_or("")
            )?;
        }
    }
    if let Some(k) = info.get("keyed") {
        writeln!(out, "per-key     {} live models (cap {})", k["models"], k["max_keys"])?;
    }
    if let Some(b) = info.get("model_bytes") {
        writeln!(out, "model size  {b} bytes")?;
    }
    if let Some(n) = info.get("note") {
        writeln!(out, "note        {}", n.as_str().unwrap_or(""))?;
    }
    if let Some(gens) = info.get("generations").and_then(Value::as_array) {
        for g in gens {
            let state = if g["valid"] == true { "valid" } else { "damaged" };
            writeln!(out, "generation  {} {state} ({})", g["generation"], g["file"].as_str().unwrap_or(""))?;
        }
    }
    Ok(())
}
