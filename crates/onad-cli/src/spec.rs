//! Turns `--model a|b|c`, `--protect RULE` and `--set path=value` into a validated `PipelineSpec`. This
//! is the only place where user-typed model and parameter names meet the registry.
//!
//! # Parameter paths
//!
//! Every parameter of a model tree has a full path, spelled like the keys of the tree's TOML table:
//! `detector.window_size` and `transformers.0.with_std` in a pipeline, `protect.rule` and
//! `protect.model.detector.window_size` through a protect node, `calibrate.method` and
//! `calibrate.model.detector.window_size` through a calibrate node. `--set` takes a full path or any tail of
//! one (`window_size`, `model.detector.window_size`), and a stage may be named by its registry name
//! instead of its place (`moving_average.window_size`, `protect.model.standard_scaler.with_std`). A whole
//! path always names its parameter (`protect.rule` is the outer rule, though it also ends the inner
//! `protect.model.protect.rule`); a shorter one must fit exactly one parameter of the tree. Otherwise the
//! error lists the paths there are.

use anyhow::{Context, Result, anyhow, bail};
use onad_models::{
    AnyDetectorParams, AnyTransformerParams, Calibration, Combine, DriftSpec, EnsembleSpec, MAX_MEMBERS, ModelInfo,
    OnDrift, PipelineSpec, Protect, REGISTRY, Role, model_info,
};
use serde_json::Value;

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

/// The pipeline a `|`-separated list of registry names gives, every stage with its default parameters;
/// pipelines joined by `+` make an ensemble of them.
pub fn parse_model(model: &str) -> Result<PipelineSpec> {
    if model.contains('+') {
        // `a|b + c + d`: an ensemble of pipelines, combined by the mean of conformal ranks unless
        // `--set ensemble.combine=..` / `ensemble.calibration=..` say otherwise.
        let members = model.split('+').map(|m| parse_pipeline(m.trim())).collect::<Result<Vec<_>>>()?;
        if members.len() > MAX_MEMBERS {
            bail!("--model has {} ensemble members; at most {}", members.len(), MAX_MEMBERS);
        }
        return Ok(PipelineSpec::Ensemble(EnsembleSpec {
            combine: Combine::Mean,
            calibration: Calibration::Conformal { window_size: 1000 },
            members,
        }));
    }
    parse_pipeline(model)
}

/// One pipeline `a|b|c`: transformers, then a detector.
fn parse_pipeline(model: &str) -> Result<PipelineSpec> {
    if model.is_empty() {
        bail!("an ensemble member of --model is empty (members are separated by '+')");
    }
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
    let transformers = front
        .iter()
        .map(|s| AnyTransformerParams::default_for(s.name).ok_or_else(|| anyhow!("'{}' is not a transformer", s.name)))
        .collect::<Result<_>>()?;
    let detector =
        AnyDetectorParams::default_for(last.name).ok_or_else(|| anyhow!("'{}' is not a detector", last.name))?;
    Ok(PipelineSpec::stages(transformers, detector))
}

#[cfg(test)]
/// The spec of `--model`, wrapped in `--protect` when given, with the `--set` assignments applied (so
/// their paths may go through the protect node).
pub fn build_spec(model: &str, protect: Option<&Protect>, sets: &[String]) -> Result<PipelineSpec> {
    build_wrapped_spec(model, Wrappers { protect, ..Wrappers::default() }, sets)
}

/// The wrappers the flags put around a model: `--protect`, `--drift`, `--calibrate`, innermost first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wrappers<'a> {
    /// `--protect`.
    pub protect: Option<&'a Protect>,
    /// `--drift DETECTOR[:reset|:rewarm:N]`.
    pub drift: Option<&'a str>,
    /// `--calibrate`.
    pub calibrate: Option<&'a Calibration>,
}

/// The spec of `--model` with every wrapper flag: `calibrate(drift(protect(model)))`, so the protect rule and the
/// drift detector see raw scores and the output is calibrated.
pub fn build_wrapped_spec(model: &str, wrappers: Wrappers<'_>, sets: &[String]) -> Result<PipelineSpec> {
    let mut spec = wrap(parse_model(model)?, wrappers)?;
    apply_sets(&mut spec, sets)?;
    Ok(spec)
}

/// `spec` with the wrappers the flags ask for around it.
pub fn wrap(mut spec: PipelineSpec, wrappers: Wrappers<'_>) -> Result<PipelineSpec> {
    if let Some(rule) = wrappers.protect {
        spec = spec.protected(rule.clone());
    }
    if let Some(text) = wrappers.drift {
        let (name, on) = text.split_once(':').unwrap_or((text, "reset"));
        let name = name.trim();
        let detector = match model_info(name) {
            Some(m) if matches!(name, "adwin" | "kswin" | "page_hinkley") => {
                AnyDetectorParams::default_for(m.name).ok_or_else(|| anyhow!("'{name}' has no defaults"))?
            }
            _ => bail!("--drift '{text}': '{name}' is not a drift detector (adwin, kswin or page_hinkley)"),
        };
        let on_drift: OnDrift = on.parse().with_context(|| format!("--drift '{text}'"))?;
        spec = PipelineSpec::Drift(DriftSpec { detector, on_drift, model: Box::new(spec) });
    }
    if let Some(method) = wrappers.calibrate {
        spec = spec.calibrated(*method);
    }
    Ok(spec)
}

/// Applies `path=value` assignments in order (a later one wins); see the module documentation for paths.
pub fn apply_sets(spec: &mut PipelineSpec, sets: &[String]) -> Result<()> {
    for set in sets {
        let (lhs, rhs) = set
            .split_once('=')
            .ok_or_else(|| anyhow!("--set '{set}' must look like name=value (for example window_size=50)"))?;
        let (lhs, rhs) = (lhs.trim(), rhs.trim());
        let wanted: Vec<&str> = lhs.split('.').map(str::trim).collect();
        let (mut paths, mut exact, mut tails) = (Vec::new(), Vec::new(), Vec::new());
        walk(spec, &mut Vec::new(), &mut |path, alias, _| {
            let is = |p: &[String]| p.len() == wanted.len() && ends_with(p, &wanted);
            if is(path) || alias.is_some_and(is) {
                exact.push(path.to_vec());
            } else if ends_with(path, &wanted) || alias.is_some_and(|a| ends_with(a, &wanted)) {
                tails.push(path.to_vec());
            }
            paths.push(path.to_vec());
            Ok(())
        })?;
        // A whole path names its parameter even when it is also the tail of a deeper one.
        let matches = if exact.is_empty() { tails } else { exact };
        let target = match matches.as_slice() {
            [one] => one.clone(),
            [] => bail!(
                "unknown parameter '{lhs}' for model '{}' (parameters: {}; a path may be shortened to its last \
                 parts, and a stage named by its kind, as in moving_average.window_size)",
                spec.name(),
                joined(&paths)
            ),
            several => bail!(
                "parameter '{lhs}' is in several places of '{}' ({}); write more of its path",
                spec.name(),
                joined(several)
            ),
        };
        walk(spec, &mut Vec::new(), &mut |path, _, slot| {
            if path == target.as_slice() { slot.set(path, rhs) } else { Ok(()) }
        })?;
    }
    Ok(())
}

fn joined(paths: &[Vec<String>]) -> String {
    if paths.is_empty() {
        return "none".to_owned();
    }
    paths.iter().map(|p| p.join(".")).collect::<Vec<_>>().join(", ")
}

/// Whether `wanted` is the last segments of `path`.
fn ends_with(path: &[String], wanted: &[&str]) -> bool {
    wanted.len() <= path.len() && path[path.len() - wanted.len()..].iter().zip(wanted).all(|(p, w)| p == w)
}

/// Where one parameter lives.
enum Slot<'a> {
    /// A parameter of a registered transformer or detector.
    Stage(Stage<'a>, &'static str),
    /// The rule of a protect node.
    Rule(&'a mut Protect),
    /// The method of a calibrate node, or an ensemble's calibration.
    Method(&'a mut Calibration),
    /// How an ensemble combines its members.
    Combine(&'a mut Combine),
    /// What a drift node does on a change.
    OnDrift(&'a mut OnDrift),
}

enum Stage<'a> {
    Transformer(&'a mut AnyTransformerParams),
    Detector(&'a mut AnyDetectorParams),
}

impl Slot<'_> {
    /// Sets the parameter from its `--set` text; `path` is for messages.
    fn set(self, path: &[String], text: &str) -> Result<()> {
        let at = path.join(".");
        match self {
            Slot::Rule(rule) => *rule = text.parse().with_context(|| format!("bad value '{text}' for {at}"))?,
            Slot::Method(method) => {
                *method = text.parse().with_context(|| format!("bad value '{text}' for {at}"))?;
            }
            Slot::OnDrift(on) => {
                *on = text.parse().with_context(|| format!("bad value '{text}' for {at}"))?;
            }
            Slot::Combine(combine) => {
                *combine = text.parse().with_context(|| format!("bad value '{text}' for {at}"))?;
            }
            Slot::Stage(stage, param) => {
                let name = match &stage {
                    Stage::Transformer(t) => t.name(),
                    Stage::Detector(d) => d.name(),
                };
                let context = || format!("bad value '{text}' for parameter '{param}' of {name} ({at})");
                // Through the JSON form: the registry's own parsing and messages for the one value.
                let mut json = match &stage {
                    Stage::Transformer(t) => serde_json::to_value(&**t)?,
                    Stage::Detector(d) => serde_json::to_value(&**d)?,
                };
                json[name][param] = parse_value(text);
                match stage {
                    Stage::Transformer(t) => *t = serde_json::from_value(json).with_context(context)?,
                    Stage::Detector(d) => *d = serde_json::from_value(json).with_context(context)?,
                }
            }
        }
        Ok(())
    }
}

/// What [`walk`] calls for each parameter: its full path, its path with the stage named by its kind, and
/// where it lives.
type Visit<'f> = dyn FnMut(&[String], Option<&[String]>, Slot<'_>) -> Result<()> + 'f;

/// Calls `f` with every parameter of the tree: its full path, its path with the stage named by its
/// registry name (stage parameters only), and where it lives.
fn walk(spec: &mut PipelineSpec, prefix: &mut Vec<String>, f: &mut Visit<'_>) -> Result<()> {
    match spec {
        PipelineSpec::Stages(s) => {
            for (i, t) in s.transformers.iter_mut().enumerate() {
                let place = ["transformers".to_owned(), i.to_string()];
                for param in params_of(t.name()) {
                    let (path, alias) = stage_paths(prefix, &place, t.name(), param);
                    f(&path, Some(&alias), Slot::Stage(Stage::Transformer(t), param))?;
                }
            }
            let place = ["detector".to_owned()];
            for param in params_of(s.detector.name()) {
                let (path, alias) = stage_paths(prefix, &place, s.detector.name(), param);
                f(&path, Some(&alias), Slot::Stage(Stage::Detector(&mut s.detector), param))?;
            }
        }
        PipelineSpec::Protect(p) => {
            prefix.push("protect".to_owned());
            let path: Vec<String> = prefix.iter().cloned().chain(["rule".to_owned()]).collect();
            f(&path, None, Slot::Rule(&mut p.rule))?;
            prefix.push("model".to_owned());
            walk(&mut p.model, prefix, f)?;
            prefix.truncate(prefix.len() - 2);
        }
        PipelineSpec::Calibrate(c) => {
            prefix.push("calibrate".to_owned());
            let path: Vec<String> = prefix.iter().cloned().chain(["method".to_owned()]).collect();
            f(&path, None, Slot::Method(&mut c.method))?;
            prefix.push("model".to_owned());
            walk(&mut c.model, prefix, f)?;
            prefix.truncate(prefix.len() - 2);
        }
        PipelineSpec::Drift(d) => {
            prefix.push("drift".to_owned());
            let path: Vec<String> = prefix.iter().cloned().chain(["on_drift".to_owned()]).collect();
            f(&path, None, Slot::OnDrift(&mut d.on_drift))?;
            let place = ["detector".to_owned()];
            // The detector reads the one column of scores: its `key` is not for setting.
            for param in params_of(d.detector.name()).filter(|p| *p != "key") {
                let (path, alias) = stage_paths(prefix, &place, d.detector.name(), param);
                f(&path, Some(&alias), Slot::Stage(Stage::Detector(&mut d.detector), param))?;
            }
            prefix.push("model".to_owned());
            walk(&mut d.model, prefix, f)?;
            prefix.truncate(prefix.len() - 2);
        }
        PipelineSpec::Ensemble(e) => {
            prefix.push("ensemble".to_owned());
            let path: Vec<String> = prefix.iter().cloned().chain(["combine".to_owned()]).collect();
            f(&path, None, Slot::Combine(&mut e.combine))?;
            let path: Vec<String> = prefix.iter().cloned().chain(["calibration".to_owned()]).collect();
            f(&path, None, Slot::Method(&mut e.calibration))?;
            for (i, m) in e.members.iter_mut().enumerate() {
                prefix.extend(["members".to_owned(), i.to_string()]);
                walk(m, prefix, f)?;
                prefix.truncate(prefix.len() - 2);
            }
            prefix.pop();
        }
    }
    Ok(())
}

/// A stage parameter's full path (`PREFIX.transformers.0.with_std`) and its path with the stage named by
/// its kind (`PREFIX.standard_scaler.with_std`).
fn stage_paths(prefix: &[String], place: &[String], kind: &str, param: &str) -> (Vec<String>, Vec<String>) {
    let path = prefix.iter().chain(place).cloned().chain([param.to_owned()]).collect();
    let alias = prefix.iter().cloned().chain([kind.to_owned(), param.to_owned()]).collect();
    (path, alias)
}

/// The parameter names of a registered kind.
fn params_of(name: &str) -> impl Iterator<Item = &'static str> {
    model_info(name).into_iter().flat_map(|m| m.params.iter().map(|p| p.name))
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

    fn sets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn builds_pipelines_and_routes_parameters() {
        let spec = build_spec(
            "min_max_scaler|moving_average",
            None,
            &sets(&["window_size=50", "key=f1", "feature_range=(-1,1)"]),
        )
        .unwrap();
        assert_eq!(spec.name(), "min_max_scaler|moving_average");
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["detector"]["moving_average"]["window_size"], 50);
        assert_eq!(json["detector"]["moving_average"]["key"], "f1");
        assert_eq!(json["transformers"][0]["min_max_scaler"]["feature_range"], serde_json::json!([-1.0, 1.0]));
        // Untouched parameters keep their defaults; a later assignment wins.
        assert_eq!(json["detector"]["moving_average"]["abs_diff"], true);
        let again = build_spec("moving_average", None, &sets(&["window_size=5", "moving_average.window_size=7"]));
        assert_eq!(serde_json::to_value(again.unwrap()).unwrap()["detector"]["moving_average"]["window_size"], 7);
    }

    #[test]
    fn paths_reach_through_protect_in_every_spelling() {
        let rule: Protect = "quantile:0.9:100".parse().unwrap();
        let expected = build_spec("standard_scaler|moving_average", None, &sets(&["window_size=50", "with_std=false"]))
            .unwrap()
            .protected("quantile:0.5:20".parse().unwrap());
        for spelling in [
            [
                "protect.model.detector.window_size=50",
                "protect.model.transformers.0.with_std=false",
                "protect.rule=quantile:0.5:20",
            ],
            ["window_size=50", "with_std=false", "rule=quantile:0.5:20"],
            ["model.detector.window_size=50", "0.with_std=false", "protect.rule = quantile:0.5:20"],
            ["moving_average.window_size=50", "protect.model.standard_scaler.with_std=False", " rule =quantile:0.5:20"],
            ["detector.window_size=50", "transformers.0.with_std=false", "rule=quantile:0.5:20"],
        ] {
            let spec = build_spec("standard_scaler|moving_average", Some(&rule), &sets(&spelling)).unwrap();
            assert_eq!(spec, expected, "{spelling:?}");
        }
        // A spec from a config file takes the same paths.
        let mut spec = expected.clone().protected(Protect::Above { threshold: 3.0 });
        apply_sets(&mut spec, &sets(&["protect.model.protect.model.detector.window_size=9", "protect.rule=4"]))
            .unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["protect"]["rule"], "4");
        assert_eq!(json["protect"]["model"]["protect"]["rule"], "quantile:0.5:20");
        assert_eq!(json["protect"]["model"]["protect"]["model"]["detector"]["moving_average"]["window_size"], 9);
        // Two rules: `rule` alone is ambiguous, and the error shows both paths.
        let e = apply_sets(&mut spec, &sets(&["rule=5"])).unwrap_err().to_string();
        assert!(e.contains("several places") && e.contains("protect.rule, protect.model.protect.rule"), "{e}");
    }

    #[test]
    fn every_registered_parameter_is_reachable_and_leaves_the_others_alone() {
        for info in REGISTRY {
            let model = match info.role {
                Role::Detector => info.name.to_owned(),
                Role::Transformer => format!("{}|null_model", info.name),
            };
            let before = serde_json::to_value(build_spec(&model, None, &[]).unwrap()).unwrap();
            let slot = if info.role == Role::Detector { "detector".to_owned() } else { "transformers.0".to_owned() };
            let stage = |json: &Value| {
                let place = if info.role == Role::Detector { &json["detector"] } else { &json["transformers"][0] };
                place[info.name].as_object().unwrap().clone()
            };
            for p in info.params {
                // The example's value, written back as its text (strings bare, as a user types them).
                let example = match info.role {
                    Role::Detector => serde_json::to_value(AnyDetectorParams::example_for(info.name).unwrap()),
                    Role::Transformer => serde_json::to_value(AnyTransformerParams::example_for(info.name).unwrap()),
                }
                .unwrap();
                let value = example[info.name][p.name].clone();
                let text = match &value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let spec = build_spec(&model, None, &[format!("{slot}.{}={text}", p.name)])
                    .unwrap_or_else(|e| panic!("{}.{}={text}: {e:#}", info.name, p.name));
                let (old, new) = (stage(&before), stage(&serde_json::to_value(&spec).unwrap()));
                for (name, v) in &old {
                    let want = if name == p.name { &value } else { v };
                    assert_eq!(&new[name], want, "{}: setting {} changed {name}", info.name, p.name);
                }
            }
        }
    }

    #[test]
    fn errors_name_the_model_or_parameter() {
        let e = build_spec("nope", None, &[]).unwrap_err().to_string();
        assert!(e.contains("unknown model 'nope'") && e.contains("moving_average"), "{e}");
        let e = build_spec("moving_average", None, &sets(&["window=5"])).unwrap_err().to_string();
        assert!(e.contains("unknown parameter 'window'") && e.contains("detector.window_size, detector.key"), "{e}");
        let e = format!("{:#}", build_spec("moving_average", None, &sets(&["window_size=abc"])).unwrap_err());
        assert!(
            e.contains("bad value 'abc' for parameter 'window_size' of moving_average (detector.window_size)"),
            "{e}"
        );
        let e = build_spec("moving_average|standard_scaler", None, &[]).unwrap_err().to_string();
        assert!(e.contains("must be a detector"), "{e}");
        let e = build_spec("moving_average", None, &sets(&["window_size"])).unwrap_err().to_string();
        assert!(e.contains("name=value"), "{e}");
        // A stage that is not in the model, and a path that stops short of a parameter.
        let e = build_spec("moving_average", None, &sets(&["moving_median.window_size=3"])).unwrap_err().to_string();
        assert!(e.contains("unknown parameter 'moving_median.window_size'"), "{e}");
        let e = build_spec("moving_average", None, &sets(&["detector=3"])).unwrap_err().to_string();
        assert!(e.contains("unknown parameter 'detector'"), "{e}");
        // With protect, the listed paths go through it; a bad rule says what a rule looks like.
        let rule = Protect::Above { threshold: 1.0 };
        let e = build_spec("moving_average", Some(&rule), &sets(&["protect.window=3"])).unwrap_err().to_string();
        assert!(e.contains("protect.rule, protect.model.detector.window_size"), "{e}");
        let e = format!("{:#}", build_spec("moving_average", Some(&rule), &sets(&["rule=often"])).unwrap_err());
        assert!(e.contains("bad value 'often' for protect.rule") && e.contains("quantile:Q[:WINDOW]"), "{e}");
        let e = build_spec("moving_average", None, &sets(&["rule=3"])).unwrap_err().to_string();
        assert!(e.contains("unknown parameter 'rule'"), "{e}");
        // Two stages of one kind: the kind alone is ambiguous, the place is not.
        let two = "standard_scaler|standard_scaler|moving_average";
        let e = build_spec(two, None, &sets(&["standard_scaler.with_std=false"])).unwrap_err().to_string();
        assert!(e.contains("transformers.0.with_std, transformers.1.with_std"), "{e}");
        let spec = build_spec(two, None, &sets(&["transformers.1.with_std=false"])).unwrap();
        let json = serde_json::to_value(spec).unwrap();
        assert_eq!(json["transformers"][0]["standard_scaler"]["with_std"], true);
        assert_eq!(json["transformers"][1]["standard_scaler"]["with_std"], false);
    }
}
