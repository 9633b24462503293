//! `onad models`: the registry as a table or as JSON.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use onad_models::{AnyDetectorParams, AnyTransformerParams, REGISTRY, Role};
use serde_json::{Value, json};

/// Options of `onad models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
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

/// Prints the registry.
pub fn list(args: &ModelsArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        let models: Vec<Value> = REGISTRY
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
                json!({"name": m.name, "class": m.class, "role": m.role, "summary": m.summary, "params": params,
                       "example": example(m.name, m.role)})
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json!({ "models": models }))?)?;
        return Ok(());
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
