//! Turns `--model a|b|c` and `--set name=value` into a validated `PipelineSpec`. This is the only place
//! where user-typed model and parameter names meet the registry.

use anyhow::{Context, Result, anyhow, bail};
use onad_models::{AnyDetectorParams, AnyTransformerParams, ModelInfo, PipelineSpec, REGISTRY, Role, model_info};
use serde_json::{Map, Value};

/// Parses a `--set` value the way a user would type it: JSON (`50`, `true`, `[0, 1]`, `{"f1": 3}`),
/// Python spellings (`True`, `None`, `(0, 1)`), or else a bare string (`key=f1`).
pub fn parse_value(text: &str) -> Value {
    let t = text.trim();
    match t {
        "True" => return Value::Bool(true),
        "False" => return Value::Bool(false),
        "None" => return Value::Null,
        _ => {}
    }
    if let Ok(v) = serde_json::from_str::<Value>(t) {
        return v;
    }
    if t.starts_with('(')
        && t.ends_with(')')
        && let Ok(v) = serde_json::from_str::<Value>(&format!("[{}]", &t[1..t.len() - 1]))
    {
        return v;
    }
    if t.starts_with('{') {
        // Python dict with single quotes.
        if let Ok(v) = serde_json::from_str::<Value>(&t.replace('\'', "\"")) {
            return v;
        }
    }
    Value::String(t.to_owned())
}

fn known_names() -> String {
    REGISTRY.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

/// Builds a pipeline spec from a `|`-separated list of registry names and `name=value` assignments
/// (`stage.name=value` picks the stage when several have the parameter).
pub fn build_spec(model: &str, sets: &[String]) -> Result<PipelineSpec> {
    let stages: Vec<&'static ModelInfo> = model
        .split('|')
        .map(|name| {
            let name = name.trim();
            model_info(name).ok_or_else(|| anyhow!("unknown model '{name}' (known models: {})", known_names()))
        })
        .collect::<Result<_>>()?;
    let (last, front) = stages.split_last().ok_or_else(|| anyhow!("--model is empty"))?;
    if last.role != Role::Detector {
        bail!("the last stage of --model must be a detector, but '{}' is a transformer", last.name);
    }
    if let Some(d) = front.iter().find(|s| s.role == Role::Detector) {
        bail!("'{}' is a detector; only the last stage of --model may be one", d.name);
    }

    let mut objects: Vec<Map<String, Value>> = vec![Map::new(); stages.len()];
    for set in sets {
        let (lhs, rhs) = set
            .split_once('=')
            .ok_or_else(|| anyhow!("--set '{set}' must look like name=value (for example window_size=50)"))?;
        let lhs = lhs.trim();
        let (stage, param) = match lhs.rsplit_once('.') {
            Some((stage, param)) => (Some(stage), param),
            None => (None, lhs),
        };
        let candidates: Vec<usize> = stages
            .iter()
            .enumerate()
            .filter(|(_, s)| stage.is_none_or(|n| n == s.name) && s.params.iter().any(|p| p.name == param))
            .map(|(i, _)| i)
            .collect();
        let index = match candidates.as_slice() {
            [i] => *i,
            [] => {
                if let Some(n) = stage.filter(|n| !stages.iter().any(|s| s.name == *n)) {
                    bail!("--set {lhs}: '{n}' is not a stage of --model '{model}'");
                }
                let known: Vec<String> = stages
                    .iter()
                    .filter(|s| stage.is_none_or(|n| n == s.name))
                    .flat_map(|s| s.params.iter().map(move |p| format!("{}.{}", s.name, p.name)))
                    .collect();
                let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
                bail!("unknown parameter '{param}' for model '{model}' (parameters: {known})");
            }
            _ => bail!("parameter '{param}' exists in several stages of '{model}'; write stage.{param}=..."),
        };
        let value = parse_value(rhs);
        // Check this one value alone, so the error names the parameter.
        let mut alone = Map::new();
        alone.insert(param.to_owned(), value.clone());
        deserialize(stages[index], alone)
            .with_context(|| format!("bad value '{}' for parameter '{param}' of {}", rhs.trim(), stages[index].name))?;
        objects[index].insert(param.to_owned(), value);
    }

    let mut transformers = Vec::new();
    let mut detector = None;
    for (info, object) in stages.iter().zip(objects) {
        match deserialize(info, object).with_context(|| format!("parameters of {}", info.name))? {
            Params::Transformer(t) => transformers.push(t),
            Params::Detector(d) => detector = Some(d),
        }
    }
    let detector = detector.ok_or_else(|| anyhow!("--model '{model}' has no detector"))?;
    Ok(PipelineSpec::stages(transformers, detector))
}

enum Params {
    Detector(AnyDetectorParams),
    Transformer(AnyTransformerParams),
}

fn deserialize(info: &ModelInfo, object: Map<String, Value>) -> Result<Params> {
    let mut tagged = Map::new();
    tagged.insert(info.name.to_owned(), Value::Object(object));
    let value = Value::Object(tagged);
    Ok(match info.role {
        Role::Detector => Params::Detector(serde_json::from_value(value)?),
        Role::Transformer => Params::Transformer(serde_json::from_value(value)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_like_a_user_types_them() {
        assert_eq!(parse_value("50"), Value::from(50));
        assert_eq!(parse_value("True"), Value::Bool(true));
        assert_eq!(parse_value("(-1, 1)"), serde_json::json!([-1, 1]));
        assert_eq!(parse_value("{'f1': 3}"), serde_json::json!({"f1": 3}));
        assert_eq!(parse_value("f1"), Value::from("f1"));
    }

    #[test]
    fn builds_pipelines_and_routes_parameters() {
        let spec = build_spec(
            "min_max_scaler|moving_average",
            &["window_size=50".into(), "key=f1".into(), "feature_range=(-1,1)".into()],
        )
        .unwrap();
        assert_eq!(spec.name(), "min_max_scaler|moving_average");
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["detector"]["moving_average"]["window_size"], 50);
        assert_eq!(json["transformers"][0]["min_max_scaler"]["feature_range"], serde_json::json!([-1.0, 1.0]));
    }

    #[test]
    fn errors_name_the_model_or_parameter() {
        let e = build_spec("nope", &[]).unwrap_err().to_string();
        assert!(e.contains("unknown model 'nope'") && e.contains("moving_average"), "{e}");
        let e = build_spec("moving_average", &["window=5".into()]).unwrap_err().to_string();
        assert!(e.contains("unknown parameter 'window'") && e.contains("moving_average.window_size"), "{e}");
        let e = format!("{:#}", build_spec("moving_average", &["window_size=abc".into()]).unwrap_err());
        assert!(e.contains("bad value 'abc' for parameter 'window_size' of moving_average"), "{e}");
        let e = build_spec("moving_average|standard_scaler", &[]).unwrap_err().to_string();
        assert!(e.contains("must be a detector"), "{e}");
        let e = build_spec("moving_average", &["window_size".into()]).unwrap_err().to_string();
        assert!(e.contains("name=value"), "{e}");
    }
}
