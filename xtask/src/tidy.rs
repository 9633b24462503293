//! Tidy checks: the crate layering rules (from `cargo metadata`) and source hygiene. They run from
//! `cargo xtask tidy`, from `cargo xtask ci`, and as tests under `cargo test`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One layering rule: `krate` may depend (normally, not as a dev-dependency) only on these onad crates.
const ALLOWED: &[(&str, &[&str])] = &[
    ("onad-core", &[]),
    ("onad-models", &["onad-core"]),
    ("onad-sources", &["onad-core"]),
    ("onad-pipeline", &["onad-core"]),
    ("onad-worker", &["onad-core", "onad-models", "onad-sources", "onad-pipeline"]),
    ("onad-cli", &["onad-core", "onad-models", "onad-sources", "onad-pipeline", "onad-worker"]),
    // The facade: one dependency line for library users; re-exports only.
    ("onad", &["onad-core", "onad-models", "onad-sources", "onad-pipeline"]),
];

/// Crates that may use the binary-only dependencies.
const BINARY_ONLY: &[(&str, &[&str])] = &[("anyhow", &["onad-cli", "xtask"]), ("clap", &["onad-cli"])];

/// Finds layering violations in `cargo metadata --format-version 1` output.
pub fn layering_violations(metadata: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(packages) = metadata["packages"].as_array() else {
        return vec!["cargo metadata has no packages".into()];
    };
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default();
        let deps = p["dependencies"].as_array().map(Vec::as_slice).unwrap_or_default();
        let normal = deps.iter().filter(|d| d["kind"].is_null() || d["kind"] == "build");
        for d in normal {
            let dep = d["name"].as_str().unwrap_or_default();
            if dep.starts_with("onad") {
                match ALLOWED.iter().find(|(k, _)| *k == name) {
                    Some((_, allowed)) if allowed.contains(&dep) => {}
                    Some(_) => out.push(format!("{name} must not depend on {dep}")),
                    None if name.starts_with("onad") => {
                        out.push(format!("{name} has no layering rule (add it to xtask/src/tidy.rs)"))
                    }
                    None => {}
                }
            }
            if let Some((_, who)) = BINARY_ONLY.iter().find(|(b, _)| *b == dep)
                && !who.contains(&name)
            {
                out.push(format!("{name} must not depend on {dep} (binaries only; libraries use thiserror)"));
            }
        }
    }
    out
}

fn metadata(root: &Path) -> Result<Value> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root)
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Source hygiene: every Rust file opens with a `//!` line; no silenced tests, stubs or debug prints.
pub fn hygiene_violations(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("crates"), root.join("xtask")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                if !path.ends_with("target") && !path.ends_with("fixtures") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path)?;
            let rel = path.strip_prefix(root).unwrap_or(&path).display().to_string();
            if !text.trim_start().starts_with("//!") {
                out.push(format!("{rel}: must open with a `//!` line saying what the file is for"));
            }
            // Built from pieces so this file does not flag itself.
            let banned = [
                ["#[", "ignore"].concat(),
                ["todo", "!("].concat(),
                ["unimplemented", "!("].concat(),
                ["dbg", "!("].concat(),
            ];
            for (n, line) in text.lines().enumerate() {
                for b in &banned {
                    if line.contains(b.as_str()) {
                        out.push(format!("{rel}:{}: `{b}` is not allowed", n + 1));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Runs every tidy check.
pub fn check(root: &Path) -> Result<()> {
    let mut problems = layering_violations(&metadata(root)?);
    problems.extend(hygiene_violations(root)?);
    if !problems.is_empty() {
        bail!("tidy found {} problem(s):\n  {}", problems.len(), problems.join("\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
    }

    #[test]
    fn the_workspace_keeps_its_layering() {
        let problems = layering_violations(&metadata(&root()).unwrap());
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn sources_are_tidy() {
        let problems = hygiene_violations(&root()).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn forbidden_dependencies_are_caught() {
        let dep = |name: &str, kind: Value| json!({"name": name, "kind": kind});
        let meta = json!({"packages": [
            {"name": "onad-core", "dependencies": [dep("onad-models", Value::Null), dep("serde", Value::Null)]},
            {"name": "onad-models", "dependencies": [dep("onad-core", Value::Null), dep("postcard", json!("dev"))]},
            {"name": "onad-pipeline", "dependencies": [dep("onad-core", Value::Null), dep("onad-models", json!("dev")), dep("onad-sources", Value::Null)]},
            {"name": "onad-sources", "dependencies": [dep("anyhow", Value::Null)]},
            {"name": "onad-extra", "dependencies": [dep("onad-core", Value::Null)]},
        ]});
        let v = layering_violations(&meta);
        assert_eq!(
            v,
            vec![
                "onad-core must not depend on onad-models",
                "onad-pipeline must not depend on onad-sources",
                "onad-sources must not depend on anyhow (binaries only; libraries use thiserror)",
                "onad-extra has no layering rule (add it to xtask/src/tidy.rs)",
            ]
        );
    }
}
