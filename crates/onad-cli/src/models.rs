//! `onad models`: the registry as a table or as JSON.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use onad_models::{AnyDetectorParams, AnyTransformerParams, REGISTRY, Role};
use serde_json::{Value, json};

/// Options of `onad models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// One model: its paper, parameters with defaults, and a command that runs it.
    name: Option<String>,
    /// Print JSON (one object per model with its parameters and defaults).
    #[arg(long)]
    json: bool,
}

fn defaults(name: &str, role: Role) -> Value {
    let tagged = match role {
        Role::Detector => serde_json::to_value(AnyDetectorParams::default_for(name)),
        Role::Transformer => serde_json::to_value(AnyTransformerParams::default_for(name)),
    };
    tagged.ok().and_then(|v| v.get(name).cloned()).unwrap_or(Value::Null)
}

/// Valid example parameters (used by docs and `cargo xtask bench`).
fn example(name: &str, role: Role) -> Value {
    let tagged = match role {
        Role::Detector => serde_json::to_value(AnyDetectorParams::example_for(name)),
        Role::Transformer => serde_json::to_value(AnyTransformerParams::example_for(name)),
    };
    tagged.ok().and_then(|v| v.get(name).cloned()).unwrap_or(Value::Null)
}

/// Prints the registry, or one model of it.
pub fn list(args: &ModelsArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let chosen: Vec<&onad_models::ModelInfo> = match &args.name {
        None => REGISTRY.iter().collect(),
        Some(name) => match onad_models::model_info(name) {
            Some(m) => vec![m],
            None => {
                let near: Vec<&str> = REGISTRY
                    .iter()
                    .map(|m| m.name)
                    .filter(|n| n.contains(name.as_str()) || name.contains(n) || n.split('_').any(|w| name.contains(w)))
                    .collect();
                anyhow::bail!(
                    "no model named '{name}'{}; `onad models` lists them all",
                    if near.is_empty() { String::new() } else { format!(" (did you mean {}?)", near.join(", ")) }
                );
            }
        },
    };
    if args.json {
        let models: Vec<Value> = chosen
            .iter()
            .map(|m| {
                let d = defaults(m.name, m.role);
                let params: Vec<Value> = m
                    .params
                    .iter()
                    .map(|p| {
                        json!({"name": p.name, "type": p.ty, "required": p.required,
                               "default": if p.required { Value::Null } else { d[p.name].clone() }, "help": p.help})
                    })
                    .collect();
                json!({"name": m.name, "class": m.class, "role": m.role, "summary": m.summary,
                       "reference": if m.reference.is_empty() { Value::Null } else { json!(m.reference) },
                       "params": params, "example": example(m.name, m.role)})
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json!({ "models": models }))?)?;
        return Ok(());
    }
    if let [m] = chosen[..]
        && args.name.is_some()
    {
        return detail(&mut out, m);
    }
    for m in REGISTRY {
        let role = match m.role {
            Role::Detector => "detector",
            Role::Transformer => "transformer",
        };
        writeln!(out, "{} ({role}, Python {}): {}", m.name, m.class, m.summary)?;
        let d = defaults(m.name, m.role);
        for p in m.params {
            let default = if p.required { "required".to_owned() } else { format!("default {}", d[p.name]) };
            writeln!(out, "    {:<14} {:<26} {:<18} {}", p.name, p.ty, default, p.help)?;
        }
    }
    Ok(())
}

/// `onad models NAME`: everything about one model.
fn detail(out: &mut impl Write, m: &onad_models::ModelInfo) -> Result<()> {
    let role = match m.role {
        Role::Detector => "detector",
        Role::Transformer => "transformer",
    };
    writeln!(out, "{} ({role}; the Python class {})", m.name, m.class)?;
    writeln!(out, "  {}", m.summary)?;
    if m.reference.is_empty() {
        writeln!(out, "  reference: no paper; follows the Python reference library's implementation")?;
    } else {
        writeln!(out, "  paper: {}", m.reference)?;
    }
    if m.series {
        writeln!(out, "  reads one series at a fixed cadence: bad rows become missing rows (--on-bad-row missing)")?;
    }
    writeln!(out, "parameters:")?;
    let d = defaults(m.name, m.role);
    for p in m.params {
        let default = if p.required { "required".to_owned() } else { format!("default {}", d[p.name]) };
        writeln!(out, "  {:<20} {:<26} {:<18} {}", p.name, p.ty, default, p.help)?;
    }
    // A command that runs it: the required parameters from the registry's example values.
    let e = example(m.name, m.role);
    let mut sets = String::new();
    for p in m.params.iter().filter(|p| p.required) {
        let v = &e[p.name];
        let shown = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        sets.push_str(&format!(" --set {}={shown}", p.name));
    }
    let model = match m.role {
        Role::Detector => m.name.to_owned(),
        Role::Transformer => format!("'{}|half_space_trees'", m.name),
    };
    writeln!(out, "example:\n  onad run --input data.csv --model {model}{sets}")?;
    Ok(())
}
