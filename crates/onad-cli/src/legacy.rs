//! Reading checkpoints of format 1, which `onad run` wrote before the engine moved into onad-pipeline:
//! the payload was this crate's own run state, with model kinds encoded by registry position. Decoded
//! through onad-models' frozen v1 mirror types and turned into today's [`JobState`]. Also the format 2
//! checkpoints of builds before model trees (flat pipelines, onad-models' `legacy::v2_flat`).

use onad_core::{SinkPosition, SkipCounts};
use onad_models::legacy::{v1, v2_flat};
use onad_models::{AnyPipeline, PipelineSpec};
use onad_pipeline::KeyedModel;
use onad_pipeline::Tally;
use onad_pipeline::job::{InputShape, JobState, KeyedState, Migrate};
use onad_pipeline::{AnyThreshold, Order};
use serde::Deserialize;

/// A plain run's format-1 state (field order is the format).
#[derive(Deserialize)]
struct RunStateV1 {
    spec: v1::PipelineSpec,
    model: v1::AnyPipeline,
    threshold: AnyThreshold,
    rows: u64,
    anomalies: u64,
    skipped: SkipCounts,
    output_bytes: Option<u64>,
}

/// A per-key run's format-1 state: the common part (its model the prototype) and every live model.
#[derive(Deserialize)]
struct KeyedRunStateV1 {
    common: RunStateV1,
    models: Vec<(u64, u64, v1::AnyPipeline)>,
}

/// A format-2 state: today's fields before the input's columns were recorded (field order is the format).
#[derive(Deserialize)]
struct StateV2<S, D> {
    spec: S,
    model: D,
    threshold: AnyThreshold,
    order: Order,
    rows: u64,
    anomalies: u64,
    skipped: SkipCounts,
    sinks: Vec<(String, SinkPosition)>,
    keyed: Option<KeyedStateV2<D>>,
}

#[derive(Deserialize)]
struct KeyedStateV2<D> {
    max_keys: Option<usize>,
    models: Vec<KeyedModel<D>>,
    tally_evicted: u64,
}

/// A format-3 state: a format-2 state followed by the input's columns (postcard writes a struct as its
/// fields in order, so the pair reads the same bytes). Evicted models' drift resets were not recorded
/// then: they count 0.
type StateV3 = (StateV2<PipelineSpec, AnyPipeline>, Option<InputShape>);

fn from_v3((state, input): StateV3) -> State {
    State { input, ..from_v2(state, |m| m, |s| s) }
}

/// A format-2 state in today's types (`convert` turns its models into today's).
fn from_v2<S, D>(s: StateV2<S, D>, convert: impl Fn(D) -> AnyPipeline, spec: impl Fn(S) -> PipelineSpec) -> State {
    JobState {
        spec: spec(s.spec),
        model: convert(s.model),
        threshold: s.threshold,
        order: s.order,
        rows: s.rows,
        anomalies: s.anomalies,
        skipped: s.skipped,
        sinks: s.sinks,
        keyed: s.keyed.map(|k| KeyedState {
            max_keys: k.max_keys,
            models: k.models.into_iter().map(|(key, tick, m)| (key, tick, convert(m))).collect(),
            tally_evicted: Tally { protected_rows: k.tally_evicted, drift_resets: 0 },
        }),
        input: None,
    }
}

type State = JobState<PipelineSpec, AnyPipeline>;

/// The decoder of checkpoint payloads: format 4 with the registry's own messages (an unknown model kind,
/// another state version), format 3 (one tally of evicted per-key models), format 2 (model trees, or the flat pipelines of the first format-2 builds;
/// the input's columns were not recorded then, so a resume does not check them) and format 1 migrated. Format 1 recorded neither the order (it is taken to be `order`, the
/// one asked for now) nor which output its byte count belongs to (it is given to `output`, the first
/// `--output` of the resumed run), nor the per-key model cap (`max_keys`, the one asked for now).
pub fn decoder(output: Option<String>, order: Order, max_keys: Option<usize>) -> Migrate<PipelineSpec, AnyPipeline> {
    Box::new(move |version, payload| {
        if version == onad_pipeline::checkpoint::FORMAT_VERSION {
            return onad_models::decode_explained(|| postcard::from_bytes(payload)).map(Some);
        }
        if version == 3 {
            return onad_models::decode_explained(|| postcard::from_bytes::<StateV3>(payload))
                .map(|s| Some(from_v3(s)));
        }
        if version == 2 {
            let error = match onad_models::decode_explained(|| {
                postcard::from_bytes::<StateV2<PipelineSpec, AnyPipeline>>(payload)
            }) {
                Ok(state) => return Ok(Some(from_v2(state, |m| m, |s| s))),
                Err(e) => e,
            };
            // Written before model trees: those bytes never decode as a tree (see `v2_flat`), so trying
            // them second cannot take a tree for a flat pipeline. Neither layout: the tree's message.
            return match postcard::from_bytes::<StateV2<v2_flat::PipelineSpec, v2_flat::AnyPipeline>>(payload) {
                Ok(flat) => Ok(Some(from_v2(flat, Into::into, Into::into))),
                Err(_) => Err(error),
            };
        }
        if version != 1 {
            return Ok(None);
        }
        let convert = |s: RunStateV1, keyed: Option<KeyedState<AnyPipeline>>| JobState {
            spec: s.spec.into(),
            model: s.model.into(),
            threshold: s.threshold,
            order,
            rows: s.rows,
            anomalies: s.anomalies,
            skipped: s.skipped,
            sinks: match (&output, s.output_bytes) {
                (Some(name), Some(n)) => vec![(name.clone(), SinkPosition::Bytes(n))],
                _ => Vec::new(),
            },
            keyed,
            input: None,
        };
        // A per-key state starts with a plain one, so try it first; a plain state must use every byte.
        if let Ok(k) = postcard::from_bytes::<KeyedRunStateV1>(payload) {
            let models = k.models.into_iter().map(|(key, tick, m)| (key, tick, m.into())).collect();
            let tally_evicted = Tally::default();
            return Ok(Some(convert(k.common, Some(KeyedState { max_keys, models, tally_evicted }))));
        }
        let (s, rest) = postcard::take_from_bytes::<RunStateV1>(payload).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err(format!("{} unexpected bytes after a format-1 run state", rest.len()));
        }
        Ok(Some(convert(s, None)))
    })
}

#[cfg(test)]
mod tests {
    use onad_core::{Detector, Schema};
    use onad_models::{AnyDetectorParams, AnyTransformerParams, Protect};

    use super::*;

    #[test]
    fn format_2_states_of_flat_pipelines_migrate_to_trees() {
        // A per-key run with a protected pipeline, written in the flat layout of the first format 2 builds.
        let tree = PipelineSpec::stages(
            vec![AnyTransformerParams::example_for("standard_scaler").unwrap()],
            serde_json::from_str::<AnyDetectorParams>(r#"{"moving_average": {"window_size": 4, "key": "a"}}"#).unwrap(),
        )
        .protected(Protect::Quantile { quantile: 0.8, window_size: 10 });
        let mut model = tree.build(&Schema::shared(["a", "b"]).unwrap()).unwrap();
        for i in 0..60 {
            model.score_learn_one(&[(i % 5) as f64 + if i % 9 == 0 { 40.0 } else { 0.0 }, 1.0]);
        }
        assert!(model.protected_rows().unwrap() > 0);
        let AnyPipeline::Protect(p) = &model else { panic!("protect at the root") };
        let AnyPipeline::Stages(s) = p.inner() else { panic!("stages inside") };
        let flat_spec = (
            vec![AnyTransformerParams::example_for("standard_scaler").unwrap()],
            serde_json::from_str::<AnyDetectorParams>(r#"{"moving_average": {"window_size": 4, "key": "a"}}"#).unwrap(),
            Some(Protect::Quantile { quantile: 0.8, window_size: 10 }),
        );
        let flat_model = (s.transformers(), s.detector(), Some(p.guard()));
        let threshold: AnyThreshold = "quantile:0.9:50".parse().unwrap();
        let sinks = vec![("out.csv".to_owned(), SinkPosition::Bytes(120))];
        let keyed = Some((Some(8usize), vec![(7u64, 3u64, flat_model)], 2u64));
        let fields = (&flat_spec, flat_model, &threshold, Order::LearnThenScore, 60u64, 4u64, SkipCounts::default());
        let bytes = postcard::to_stdvec(&(fields, &sinks, keyed)).unwrap();

        let state = decoder(None, Order::ScoreThenLearn, None)(2, &bytes).unwrap().unwrap();
        assert_eq!(state.spec, tree);
        let same = |m: &AnyPipeline| postcard::to_stdvec(m).unwrap() == postcard::to_stdvec(&model).unwrap();
        assert!(same(&state.model));
        assert_eq!(state.model.protected_rows(), model.protected_rows());
        // Everything else as written (the order too: format 2 records it).
        assert_eq!((state.order, state.rows, state.anomalies, &state.sinks), (Order::LearnThenScore, 60, 4, &sinks));
        assert_eq!(state.threshold, threshold);
        let keyed = state.keyed.unwrap();
        assert_eq!((keyed.max_keys, keyed.tally_evicted.protected_rows, keyed.models.len()), (Some(8), 2, 1));
        assert_eq!((keyed.models[0].0, keyed.models[0].1), (7, 3));
        assert!(same(&keyed.models[0].2));

        // Today's layout reads as itself; bytes of neither layout keep today's error.
        let now = JobState { keyed: None, input: None, ..state };
        let bytes = postcard::to_stdvec(&now).unwrap();
        let back = decoder(None, Order::ScoreThenLearn, None)(3, &bytes).unwrap().unwrap();
        assert_eq!(back.spec, tree);
        let e = decoder(None, Order::ScoreThenLearn, None)(3, &bytes[..bytes.len() / 2]).err().unwrap();
        assert!(!e.is_empty());
        let mut unknown = postcard::to_stdvec(&("no_such_node", 1u16)).unwrap();
        unknown.extend_from_slice(&bytes);
        let e = decoder(None, Order::ScoreThenLearn, None)(3, &unknown).err().unwrap();
        assert!(e.contains("`no_such_node` is not a registered model node"), "{e}");
        // A format-2 state with model trees (no input columns recorded) reads too.
        let v2 = (&now.spec, &now.model, &now.threshold, now.order, now.rows, now.anomalies, &now.skipped);
        let v2 = postcard::to_stdvec(&(v2, &now.sinks, None::<()>)).unwrap();
        let back = decoder(None, Order::ScoreThenLearn, None)(2, &v2).unwrap().unwrap();
        assert_eq!((back.spec, back.input), (tree, None));
    }
}
