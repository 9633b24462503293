//! The conformance suite: every registered detector and transformer, and every detector in model trees
//! (behind every transformer, behind learn protection, behind protection nested in protection, behind
//! calibration), must pass
//! the same checks. Driven by `REGISTRY`, so a newly registered model is covered automatically.

mod common;

use onad_core::{Batch, Detector, ParamError, Schema, SchemaRef, Transformer};
use onad_models::{
    AnyDetector, AnyDetectorParams, AnyPipeline, AnyTransformer, AnyTransformerParams, Calibration, Combine,
    EnsembleSpec, PipelineSpec, Protect, REGISTRY, Role, decode_explained,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The SHUTTLE head, narrowed to its first column when a model only takes one feature.
fn stream_for(build: impl Fn(&SchemaRef) -> Result<(), ParamError>) -> (SchemaRef, Vec<Vec<f64>>) {
    let (schema, rows, _) = common::shuttle();
    match build(&schema) {
        Ok(()) => (schema, rows),
        Err(ParamError::Schema(_)) => {
            let one = Schema::shared([schema.names()[0].clone()]).unwrap();
            (one, rows.into_iter().map(|r| vec![r[0]]).collect())
        }
        Err(e) => panic!("example parameters must build: {e}"),
    }
}

/// The same rows with missing and infinite values injected.
fn corrupted(rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let mut r = r.clone();
            let j = i % r.len();
            if i % 7 == 0 {
                r[j] = f64::NAN;
            }
            if i % 11 == 0 {
                r[j] = f64::INFINITY;
            }
            if i % 17 == 0 {
                r[j] = f64::NEG_INFINITY;
            }
            if i % 13 == 0 {
                r.fill(f64::NAN);
            }
            r
        })
        .collect()
}

fn state<T: Serialize>(model: &T) -> Vec<u8> {
    postcard::to_stdvec(model).expect("model state serializes")
}

fn batches(schema: &SchemaRef, rows: &[Vec<f64>], size: usize) -> Vec<Batch> {
    rows.chunks(size)
        .enumerate()
        .map(|(k, chunk)| {
            Batch::from_rows(schema.clone(), chunk.concat(), None, (k * size) as u64).expect("valid batch")
        })
        .collect()
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check_detector<D>(name: &str, make: impl Fn() -> D, schema: &SchemaRef, rows: &[Vec<f64>])
where
    D: Detector + Serialize + DeserializeOwned,
{
    check_detector_in(name, make, schema, rows, false)
}

/// [`check_detector`]; `in_sequence` for a detector behind a transformer of a row's place in a sequence
/// (`Transformer::transforms_next_row`, a shingle), where learning a row and then scoring it scores it as
/// the row after itself, so `learn_score_one` (the row scored on the window it closed) is not `learn_one`
/// then `score_one` and that one check does not apply.
fn check_detector_in<D>(name: &str, make: impl Fn() -> D, schema: &SchemaRef, rows: &[Vec<f64>], in_sequence: bool)
where
    D: Detector + Serialize + DeserializeOwned,
{
    // Finite scores, also on NaN and infinite input, on every path.
    let mut m = make();
    for (i, r) in corrupted(rows).iter().enumerate() {
        let s = m.score_one(r);
        assert!(s.is_finite(), "{name}: score_one row {i} gave {s}");
        let s = m.score_learn_one(r);
        assert!(s.is_finite(), "{name}: score_learn_one row {i} gave {s}");
    }

    // Same parameters (and seed) give the same scores.
    let run = |m: &mut D| rows.iter().map(|r| m.score_learn_one(r)).collect::<Vec<f64>>();
    let first = run(&mut make());
    assert_eq!(bits(&first), bits(&run(&mut make())), "{name}: two runs differ");

    // The combined one-row methods equal their two steps: same scores to the bit, same state after.
    let (mut fused, mut split) = (make(), make());
    for (i, r) in rows.iter().enumerate() {
        let a = fused.score_learn_one(r);
        let b = split.score_one(r);
        split.learn_one(r);
        assert_eq!(a.to_bits(), b.to_bits(), "{name}: score_learn_one row {i} is not score_one then learn_one");
    }
    assert_eq!(state(&fused), state(&split), "{name}: score_learn_one left another state than score_one, learn_one");
    let (mut fused, mut split) = (make(), make());
    for (i, r) in corrupted(rows).iter().enumerate() {
        let a = fused.learn_score_one(r);
        split.learn_one(r);
        let b = split.score_one(r);
        assert!(
            in_sequence || a.to_bits() == b.to_bits(),
            "{name}: learn_score_one row {i} is not learn_one then score_one"
        );
    }
    assert_eq!(state(&fused), state(&split), "{name}: learn_score_one left another state than learn_one, score_one");

    // Serialize mid-stream: the restored model gives identical later scores and state.
    let half = rows.len() / 2;
    let mut a = make();
    rows[..half].iter().for_each(|r| a.learn_one(r));
    let mut b: D = postcard::from_bytes(&state(&a)).expect("model state deserializes");
    let rest_a: Vec<f64> = rows[half..].iter().map(|r| a.score_learn_one(r)).collect();
    let rest_b: Vec<f64> = rows[half..].iter().map(|r| b.score_learn_one(r)).collect();
    assert_eq!(bits(&rest_a), bits(&rest_b), "{name}: restored model scores differ");
    assert_eq!(state(&a), state(&b), "{name}: restored model state differs");

    // Scoring does not change state.
    let mut m = make();
    rows[..half].iter().for_each(|r| m.learn_one(r));
    let before = state(&m);
    for r in rows.iter().chain(corrupted(rows).iter()) {
        m.score_one(r);
    }
    let mut sink = Vec::new();
    for batch in batches(schema, rows, 97) {
        m.score_many(&batch, &mut sink);
    }
    assert_eq!(before, state(&m), "{name}: scoring changed the state");

    // Explanations: names fixed once built, explaining changes no state, values finite or NaN (a value
    // that does not exist yet), and the same from a restored model.
    let names = m.explanation_names();
    assert_eq!(names, make().explanation_names(), "{name}: explanation names depend on what was learned");
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "{name}: explanation names repeat: {names:?}");
    let restored: D = postcard::from_bytes(&before).expect("state deserializes");
    let (mut out, mut again) = (vec![0.0; names.len()], vec![0.0; names.len()]);
    for r in rows.iter().chain(corrupted(rows).iter()) {
        m.explain_one(r, &mut out);
        restored.explain_one(r, &mut again);
        assert!(out.iter().all(|v| !v.is_infinite()), "{name}: explanation {out:?} is infinite");
        assert_eq!(bits(&out), bits(&again), "{name}: a restored model explains differently");
    }
    assert_eq!(before, state(&m), "{name}: explaining changed the state");

    // Batch paths equal one-at-a-time paths.
    for size in [1, 64, 333] {
        let mut batched = make();
        let mut out = Vec::new();
        for batch in batches(schema, rows, size) {
            batched.score_learn_many(&batch, &mut out);
        }
        assert_eq!(bits(&out), bits(&first), "{name}: score_learn_many({size}) differs");

        let (mut one, mut many) = (make(), make());
        let (mut expected, mut got) = (Vec::new(), Vec::new());
        for batch in batches(schema, rows, size) {
            for r in batch.rows() {
                expected.push(one.learn_score_one(r));
            }
            many.learn_score_many(&batch, &mut got);
        }
        assert_eq!(bits(&got), bits(&expected), "{name}: learn_score_many({size}) differs");

        let (mut one, mut many) = (make(), make());
        let (mut expected, mut got) = (Vec::new(), Vec::new());
        for batch in batches(schema, rows, size) {
            expected.extend(batch.rows().map(|r| one.score_one(r)));
            batch.rows().for_each(|r| one.learn_one(r));
            many.score_many(&batch, &mut got);
            many.learn_many(&batch);
        }
        assert_eq!(bits(&got), bits(&expected), "{name}: score_many/learn_many({size}) differs");
        assert_eq!(state(&one), state(&many), "{name}: learn_many({size}) state differs");
    }
}

fn check_transformer<T>(name: &str, make: impl Fn() -> T, rows: &[Vec<f64>])
where
    T: Transformer + Serialize + DeserializeOwned,
{
    let width = make().output_schema().len();
    let transform = |t: &T, r: &[f64]| {
        let mut out = vec![0.0; width];
        t.transform_one(r, &mut out);
        out
    };

    // No panic on NaN or infinities; finite rows map to finite outputs.
    let mut t = make();
    for r in corrupted(rows) {
        transform(&t, &r);
        t.learn_one(&r);
    }
    let mut t = make();
    for (i, r) in rows.iter().enumerate() {
        t.learn_one(r);
        let out = transform(&t, r);
        assert!(out.iter().all(|v| v.is_finite()), "{name}: row {i} gave {out:?}");
    }

    // learn_transform_one equals learn_one then transform_one (or, for a transformer of a row's place in a
    // sequence, transform_one then learn_one): same output to the bit, same state after.
    for input in [rows.to_vec(), corrupted(rows)] {
        let (mut fused, mut split) = (make(), make());
        let next_row = fused.transforms_next_row();
        for (i, r) in input.iter().enumerate() {
            let mut a = vec![0.0; width];
            fused.learn_transform_one(r, &mut a);
            let b = if next_row {
                let before = transform(&split, r);
                split.learn_one(r);
                before
            } else {
                split.learn_one(r);
                transform(&split, r)
            };
            assert_eq!(
                bits(&a),
                bits(&b),
                "{name}: learn_transform_one row {i} differs from learning and transforming"
            );
        }
        assert_eq!(state(&fused), state(&split), "{name}: learn_transform_one left another state");
    }

    // Serialize mid-stream, transform does not change state, deterministic.
    let half = rows.len() / 2;
    let mut a = make();
    rows[..half].iter().for_each(|r| a.learn_one(r));
    let before = state(&a);
    let mut b: T = postcard::from_bytes(&before).expect("transformer state deserializes");
    rows.iter().for_each(|r| {
        transform(&a, r);
    });
    assert_eq!(before, state(&a), "{name}: transform changed the state");
    for r in &rows[half..] {
        a.learn_one(r);
        b.learn_one(r);
        assert_eq!(bits(&transform(&a, r)), bits(&transform(&b, r)), "{name}: restored transformer differs");
    }
    assert_eq!(state(&a), state(&b), "{name}: restored transformer state differs");
}

#[test]
fn every_registered_detector_conforms() {
    let mut checked = 0;
    for info in REGISTRY.iter().filter(|m| m.role == Role::Detector) {
        let params = AnyDetectorParams::example_for(info.name).unwrap();
        let (schema, rows) = stream_for(|s| params.build(s).map(drop));
        check_detector(info.name, || params.build(&schema).unwrap(), &schema, &rows);
        // The same detector as a run-time pipeline of one stage (what the CLI builds), whose batch methods
        // go straight to the detector's.
        let spec = PipelineSpec::detector(params.clone());
        check_detector(&format!("pipeline {}", info.name), || spec.build(&schema).unwrap(), &schema, &rows);
        // The same behind learn protection, as a tree of two nodes.
        let protected = spec.clone().protected(Protect::Quantile { quantile: 0.9, window_size: 100 });
        check_detector(&protected.name(), || protected.build(&schema).unwrap(), &schema, &rows);
        // Calibrated, conformal around protection (the CLI's order) and a z-score around the bare tree.
        let calibrated = protected.calibrated(Calibration::Conformal { window_size: 300 });
        check_detector(&calibrated.name(), || calibrated.build(&schema).unwrap(), &schema, &rows);
        let zscored = spec.calibrated(Calibration::ZScore { window_size: 50 });
        check_detector(&zscored.name(), || zscored.build(&schema).unwrap(), &schema, &rows);
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} detectors registered");
}

#[test]
fn ensembles_conform() {
    // Three different kinds, each calibrated, under every combination (z-scores for two of them).
    let (schema, mut rows, _) = common::shuttle();
    rows.truncate(1000);
    let members: Vec<PipelineSpec> = ["knn", "asd_isolation_forest", "gadget_svm"]
        .iter()
        .map(|name| PipelineSpec::detector(AnyDetectorParams::example_for(name).unwrap()))
        .collect();
    for (combine, calibration) in [
        (Combine::Mean, Calibration::Conformal { window_size: 200 }),
        (Combine::Max, Calibration::ZScore { window_size: 100 }),
        (Combine::Median, Calibration::ZScore { window_size: 100 }),
        (Combine::MeanRank, Calibration::Conformal { window_size: 300 }),
    ] {
        let spec = PipelineSpec::Ensemble(EnsembleSpec { combine, calibration, members: members.clone() });
        check_detector(&spec.name(), || spec.build(&schema).unwrap(), &schema, &rows);
    }
}

#[test]
fn drift_nodes_conform() {
    // Each drift detector watching a different tree, resetting and re-warming; the SHUTTLE head has
    // changes enough to trigger them (checked: the runs below must replace their trees at least once).
    let (schema, rows, _) = common::shuttle();
    for (detector, on_drift, model) in [
        (r#"{"page_hinkley": {"threshold": 5.0}}"#, "reset", "knn"),
        (r#"{"adwin": {}}"#, "rewarm:100", "asd_isolation_forest"),
        (r#"{"kswin": {"seed": 3}}"#, "rewarm:30", "online_isolation_forest"),
    ] {
        let spec: PipelineSpec = serde_json::from_value(serde_json::json!({"drift": {
            "detector": serde_json::from_str::<serde_json::Value>(detector).unwrap(),
            "on_drift": on_drift,
            "model": {"detector": AnyDetectorParams::example_for(model).unwrap()},
        }}))
        .unwrap();
        check_detector(&spec.name(), || spec.build(&schema).unwrap(), &schema, &rows);
        let mut m = spec.build(&schema).unwrap();
        rows.iter().for_each(|r| {
            m.score_learn_one(r);
        });
        assert!(m.drift_resets().unwrap() > 0, "{detector} on {model}: no change found");
    }
}

#[test]
fn every_detector_behind_every_transformer_conforms() {
    // Every pairing, on the first 600 rows (the single-model checks use all 2,000).
    let (schema, mut rows, _) = common::shuttle();
    rows.truncate(600);
    for t in REGISTRY.iter().filter(|m| m.role == Role::Transformer) {
        let transformer = AnyTransformerParams::example_for(t.name).unwrap();
        let built = transformer.build(&schema).unwrap();
        let (out, in_sequence) = (built.output_schema().clone(), built.transforms_next_row());
        for d in REGISTRY.iter().filter(|m| m.role == Role::Detector) {
            // Point the detector's feature parameters at the transformer's output columns.
            let mut json = serde_json::to_value(AnyDetectorParams::example_for(d.name).unwrap()).unwrap();
            let params = json[d.name].as_object_mut().unwrap();
            let edges = params.contains_key("source_key");
            for (name, value) in params.iter_mut() {
                match name.as_str() {
                    "key" | "score_key" => *value = out.names()[0].clone().into(),
                    "keys" if !value.is_null() => *value = serde_json::json!([out.names()[0], out.names()[1]]),
                    // Edge detectors: their node (and graph) columns on the transformer's output, no time.
                    "source_key" => *value = out.names()[0].clone().into(),
                    "destination_key" => *value = out.names()[1].clone().into(),
                    "graph_key" => *value = out.names()[2].clone().into(),
                    "time_key" | "edge_type_key" if edges => *value = serde_json::Value::Null,
                    _ => {}
                }
            }
            let spec = PipelineSpec::stages(vec![transformer.clone()], serde_json::from_value(json).unwrap());
            check_detector_in(&spec.name(), || spec.build(&schema).unwrap(), &schema, &rows, in_sequence);
            // The same pipeline with learn protection, and with two rules nested (once per detector).
            if t.name == "standard_scaler" {
                let protected = spec.clone().protected(Protect::Quantile { quantile: 0.9, window_size: 100 });
                check_detector(&protected.name(), || protected.build(&schema).unwrap(), &schema, &rows);
                let nested = protected.protected(Protect::Quantile { quantile: 0.8, window_size: 40 });
                assert_eq!(nested.name(), format!("protect(protect(standard_scaler|{}))", d.name));
                check_detector(&nested.name(), || nested.build(&schema).unwrap(), &schema, &rows);
            }
        }
    }
}

#[test]
fn every_registered_transformer_conforms() {
    for info in REGISTRY.iter().filter(|m| m.role == Role::Transformer) {
        let params = AnyTransformerParams::example_for(info.name).unwrap();
        let (schema, rows) = stream_for(|s| params.build(s).map(drop));
        check_transformer(info.name, || params.build(&schema).unwrap(), &rows);
    }
}

#[test]
fn documented_parameters_match_the_parameter_structs() {
    for info in REGISTRY {
        let (defaults, example) = match info.role {
            Role::Detector => (
                serde_json::to_value(AnyDetectorParams::default_for(info.name).unwrap()).unwrap(),
                serde_json::to_value(AnyDetectorParams::example_for(info.name).unwrap()).unwrap(),
            ),
            Role::Transformer => (
                serde_json::to_value(AnyTransformerParams::default_for(info.name).unwrap()).unwrap(),
                serde_json::to_value(AnyTransformerParams::example_for(info.name).unwrap()).unwrap(),
            ),
        };
        let fields: Vec<&String> = defaults[info.name].as_object().expect("params are a struct").keys().collect();
        let mut documented: Vec<&str> = info.params.iter().map(|p| p.name).collect();
        let mut fields: Vec<&str> = fields.iter().map(|s| s.as_str()).collect();
        documented.sort_unstable();
        fields.sort_unstable();
        assert_eq!(documented, fields, "{}: ParamDoc list differs from the struct", info.name);
        for p in info.params.iter().filter(|p| p.required) {
            assert!(
                defaults[info.name][p.name].is_null(),
                "{}.{}: a required parameter has a default",
                info.name,
                p.name
            );
        }
        // Parameters round-trip through JSON (the CLI's --set path) and postcard (checkpoints).
        match info.role {
            Role::Detector => {
                let back: AnyDetectorParams = serde_json::from_value(example.clone()).unwrap();
                assert_eq!(serde_json::to_value(&back).unwrap(), example);
                let bytes = postcard::to_stdvec(&back).unwrap();
                assert_eq!(postcard::from_bytes::<AnyDetectorParams>(&bytes).unwrap(), back);
            }
            Role::Transformer => {
                let back: AnyTransformerParams = serde_json::from_value(example.clone()).unwrap();
                assert_eq!(serde_json::to_value(&back).unwrap(), example);
                let bytes = postcard::to_stdvec(&back).unwrap();
                assert_eq!(postcard::from_bytes::<AnyTransformerParams>(&bytes).unwrap(), back);
            }
        }
    }
}

#[test]
fn unknown_parameters_are_rejected() {
    let err = serde_json::from_str::<AnyDetectorParams>(r#"{"moving_average": {"window": 5}}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `window`"), "{err}");
    let err = serde_json::from_str::<AnyDetectorParams>(r#"{"no_such_model": {}}"#).unwrap_err();
    assert!(err.to_string().contains("unknown variant"), "{err}");
}

#[test]
fn pipeline_specs_round_trip_through_binary_and_json() {
    let stages = PipelineSpec::stages(
        vec![AnyTransformerParams::example_for("standard_scaler").unwrap()],
        AnyDetectorParams::example_for("moving_median").unwrap(),
    );
    let above = Protect::Above { threshold: 2.0 };
    let quantile = Protect::Quantile { quantile: 0.9, window_size: 50 };
    for spec in [
        stages.clone(),
        PipelineSpec::detector(AnyDetectorParams::example_for("moving_median").unwrap()).protected(above.clone()),
        stages.clone().protected(quantile.clone()),
        stages.clone().protected(above).protected(quantile),
    ] {
        let bytes = postcard::to_stdvec(&spec).unwrap();
        assert_eq!(postcard::from_bytes::<PipelineSpec>(&bytes).unwrap(), spec);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<PipelineSpec>(&json).unwrap(), spec);
    }
}

/// The binary prefix of a by-name value: the postcard string `name` and the varint state version.
fn name_prefix(name: &str, version: u16) -> Vec<u8> {
    postcard::to_stdvec(&(name, version)).unwrap()
}

#[test]
fn binary_encoding_is_name_version_payload_and_round_trips() {
    let (schema, rows, _) = common::shuttle();
    for info in REGISTRY {
        // Kinds past state version 1 read their older versions through `legacy::older` (tested there).
        let migrated: &[(&str, u16)] = &[("moving_mahalanobis_distance", 2), ("random_cut_forest", 2), ("xstream", 2)];
        let expected = migrated.iter().find(|(name, _)| *name == info.name).map_or(1, |&(_, v)| v);
        assert_eq!(
            info.state_version, expected,
            "{}: a new state version needs a migration of older checkpoints",
            info.name
        );
        let prefix = name_prefix(info.name, info.state_version);
        match info.role {
            Role::Detector => {
                let params = AnyDetectorParams::example_for(info.name).unwrap();
                let bytes = postcard::to_stdvec(&params).unwrap();
                assert!(bytes.starts_with(&prefix), "{}: params not encoded by name: {bytes:?}", info.name);
                assert_eq!(postcard::from_bytes::<AnyDetectorParams>(&bytes).unwrap(), params);

                let (schema, rows) = stream_for(|s| params.build(s).map(drop));
                let mut model = params.build(&schema).unwrap();
                rows[..300].iter().for_each(|r| model.learn_one(r));
                let bytes = state(&model);
                assert!(bytes.starts_with(&prefix), "{}: model not encoded by name", info.name);
                let mut back: AnyDetector = postcard::from_bytes(&bytes).unwrap();
                assert_eq!(state(&back), bytes, "{}: postcard round trip changed the state", info.name);
                for r in &rows[300..400] {
                    assert_eq!(back.score_learn_one(r).to_bits(), model.score_learn_one(r).to_bits(), "{}", info.name);
                }

                // JSON keeps the externally tagged form (by Rust type name for models). Floats in JSON are
                // not guaranteed to the bit (serde_json parses without float_roundtrip) and a u128 generator
                // state does not fit a serde_json::Value, so only the kind is checked, through text;
                // checkpoints use the binary form.
                let json = serde_json::to_string(&model).unwrap();
                assert!(json.starts_with(&format!("{{\"{}\":{{", info.class)), "{}: JSON form of the model", info.name);
                let back: AnyDetector = serde_json::from_str(&json).unwrap();
                assert_eq!(back.name(), info.name);
            }
            Role::Transformer => {
                let params = AnyTransformerParams::example_for(info.name).unwrap();
                let bytes = postcard::to_stdvec(&params).unwrap();
                assert!(bytes.starts_with(&prefix), "{}: params not encoded by name", info.name);
                assert_eq!(postcard::from_bytes::<AnyTransformerParams>(&bytes).unwrap(), params);

                let mut model = params.build(&schema).unwrap();
                rows[..300].iter().for_each(|r| model.learn_one(r));
                let bytes = state(&model);
                assert!(bytes.starts_with(&prefix), "{}: transformer not encoded by name", info.name);
                let back: AnyTransformer = postcard::from_bytes(&bytes).unwrap();
                assert_eq!(state(&back), bytes, "{}: postcard round trip changed the state", info.name);

                let json = serde_json::to_string(&model).unwrap();
                assert!(
                    json.starts_with(&format!("{{\"{}\":{{", info.class)),
                    "{}: JSON form of the transformer",
                    info.name
                );
                let back: AnyTransformer = serde_json::from_str(&json).unwrap();
                assert_eq!(back.name(), info.name);
            }
        }
    }
}

#[test]
fn a_whole_pipeline_round_trips_through_binary_and_json() {
    let (schema, rows, _) = common::shuttle();
    let spec: PipelineSpec = serde_json::from_str(
        r#"{"protect": {"rule": "quantile:0.95:60", "model":
            {"transformers": [{"min_max_scaler": {"feature_range": [0.0, 1.0]}}, {"standard_scaler": {}}],
             "detector": {"moving_median": {"window_size": 30, "key": "f2"}}}}}"#,
    )
    .unwrap();
    // Config files and `onad models --json` rely on this form.
    assert_eq!(
        serde_json::to_value(&spec).unwrap()["protect"]["model"]["transformers"][1],
        serde_json::json!({"standard_scaler": {"with_std": true}})
    );
    let mut model = spec.build(&schema).unwrap();
    rows[..500].iter().for_each(|r| {
        model.score_learn_one(r);
    });
    let bytes = postcard::to_stdvec(&(&spec, &model)).unwrap();
    let (spec_back, mut back): (PipelineSpec, AnyPipeline) = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(spec_back, spec);
    assert_eq!(state(&back), state(&model));
    for r in &rows[500..] {
        assert_eq!(back.score_learn_one(r).to_bits(), model.score_learn_one(r).to_bits());
    }
    let json = serde_json::to_string(&model).unwrap();
    let back: AnyPipeline = serde_json::from_str(&json).unwrap();
    let AnyPipeline::Protect(protected) = &back else { panic!("a protect node at the root: {json}") };
    let AnyPipeline::Stages(stages) = protected.inner() else { panic!("stages inside: {json}") };
    assert_eq!(
        stages.transformers().iter().map(AnyTransformer::name).collect::<Vec<_>>(),
        ["min_max_scaler", "standard_scaler"]
    );
    assert_eq!(stages.detector().name(), "moving_median");
    assert_eq!(back.name(), "protect(min_max_scaler|standard_scaler|moving_median)");
    assert_eq!(back.protected_rows(), model.protected_rows());
    assert!(back.protected_rows().unwrap() > 0, "the guard never acted");
}

#[test]
fn unknown_kinds_and_other_state_versions_fail_with_their_names() {
    let params = AnyDetectorParams::example_for("moving_average").unwrap();
    let schema = Schema::shared(["v"]).unwrap();
    let model = params.build(&schema).unwrap();
    // The payload that follows the name and version, cut from a valid encoding.
    let payload = |bytes: Vec<u8>, name: &str| bytes[name_prefix(name, 1).len()..].to_vec();
    let params_payload = payload(postcard::to_stdvec(&params).unwrap(), "moving_average");
    let model_payload = payload(state(&model), "moving_average");
    let with = |name: &str, version: u16, payload: &[u8]| [name_prefix(name, version), payload.to_vec()].concat();

    fn fails<T: serde::de::DeserializeOwned + std::fmt::Debug>(bytes: &[u8], wanted: &[&str]) {
        let err = decode_explained(|| postcard::from_bytes::<T>(bytes)).unwrap_err();
        for w in wanted {
            assert!(err.contains(w), "{err:?} does not say {w:?}");
        }
    }

    // Unknown kinds, in each of the four enums.
    let unknown = ["is not a registered", "`isolation_forest`", "moving_average"];
    fails::<AnyDetectorParams>(
        &with("isolation_forest", 1, &params_payload),
        &[&unknown[..], &["AnyDetectorParams", "detector"]].concat(),
    );
    fails::<AnyDetector>(&with("isolation_forest", 1, &model_payload), &[&unknown[..], &["AnyDetector:"]].concat());
    let t = AnyTransformerParams::example_for("standard_scaler").unwrap();
    let t_payload = payload(postcard::to_stdvec(&t).unwrap(), "standard_scaler");
    fails::<AnyTransformerParams>(
        &with("no_such_transformer", 1, &t_payload),
        &["AnyTransformerParams", "`no_such_transformer` is not a registered transformer", "standard_scaler"],
    );
    let t_model = t.build(&schema).unwrap();
    let t_model_payload = payload(state(&t_model), "standard_scaler");
    fails::<AnyTransformer>(
        &with("no_such_transformer", 1, &t_model_payload),
        &["AnyTransformer:", "`no_such_transformer` is not a registered transformer"],
    );
    // A detector name where a transformer is expected is unknown there too.
    fails::<AnyTransformer>(
        &with("moving_average", 1, &model_payload),
        &["`moving_average` is not a registered transformer"],
    );

    // Other state versions: both versions are named, and which build wrote it.
    fails::<AnyDetector>(
        &with("moving_average", 2, &model_payload),
        &["AnyDetector", "`moving_average`", "state version 2", "a newer build", "reads state version 1"],
    );
    fails::<AnyDetectorParams>(
        &with("moving_average", 0, &params_payload),
        &["AnyDetectorParams", "state version 0", "an older build", "reads state version 1"],
    );
    fails::<AnyTransformer>(
        &with("standard_scaler", 7, &t_model_payload),
        &["AnyTransformer", "`standard_scaler`", "state version 7"],
    );

    // The same bytes with the right name and version decode, so the failures above are the name's and
    // the version's.
    assert_eq!(postcard::from_bytes::<AnyDetectorParams>(&with("moving_average", 1, &params_payload)).unwrap(), params);
    assert!(postcard::from_bytes::<AnyDetector>(&with("moving_average", 1, &model_payload)).is_ok());

    // Inside a pipeline spec (the first thing a checkpoint holds: the node `stages`, no transformers, the
    // detector) the message still comes through, also from deeper in a tree.
    let spec = [name_prefix("stages", 1), vec![0], with("isolation_forest", 1, &params_payload)].concat();
    fails::<PipelineSpec>(&spec, &["`isolation_forest` is not a registered detector"]);
    let rule = postcard::to_stdvec(&Protect::Above { threshold: 1.0 }).unwrap();
    fails::<PipelineSpec>(
        &[name_prefix("protect", 1), rule.clone(), spec].concat(),
        &["`isolation_forest` is not a registered detector"],
    );
    let good = [name_prefix("stages", 1), vec![0], with("moving_average", 1, &params_payload)].concat();
    assert_eq!(postcard::from_bytes::<PipelineSpec>(&good).unwrap(), PipelineSpec::detector(params.clone()));
    let protected = [name_prefix("protect", 1), rule, good].concat();
    assert_eq!(
        postcard::from_bytes::<PipelineSpec>(&protected).unwrap(),
        PipelineSpec::detector(params).protected(Protect::Above { threshold: 1.0 })
    );

    // In a binary format that keeps serde messages, they are the error itself.
    let err = |text: &str| AnyDetector::deserialize(Binary(&mut serde_json::Deserializer::from_str(text))).unwrap_err();
    let e = err(r#"["isolation_forest", 1, null]"#).to_string();
    assert!(e.starts_with("AnyDetector: `isolation_forest` is not a registered detector"), "{e}");
    let e = err(r#"["moving_average", 3, null]"#).to_string();
    assert!(
        e.contains("`moving_average` was written with state version 3") && e.contains("reads state version 1"),
        "{e}"
    );
    let state_json = serde_json::to_value(&model).unwrap()["MovingAverage"].clone();
    let text = serde_json::json!(["moving_average", 1, state_json]).to_string();
    let back = AnyDetector::deserialize(Binary(&mut serde_json::Deserializer::from_str(&text))).unwrap();
    assert_eq!(state(&back), state(&model));

    // A failure that is not the registry's keeps the decoder's own message.
    let err = decode_explained(|| postcard::from_bytes::<AnyDetector>(&[])).unwrap_err();
    assert!(!err.contains("registered"), "{err}");
}

/// A JSON deserializer that says it is not human-readable, so the registry enums read their binary
/// `(name, version, payload)` form from a JSON array and the error messages (which postcard drops) show.
struct Binary<D>(D);

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for Binary<D> {
    type Error = D::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: serde::de::Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, visitor)
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple_struct map struct enum identifier ignored_any
    }
}
