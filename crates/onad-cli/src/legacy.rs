//! Reading checkpoints of format 1, which `onad run` wrote before the engine moved into onad-pipeline:
//! the payload was this crate's own run state, with model kinds encoded by registry position. Decoded
//! through onad-models' frozen v1 mirror types and turned into today's [`JobState`].

use onad_core::{SinkPosition, SkipCounts};
use onad_models::legacy::v1;
use onad_models::{AnyPipeline, PipelineSpec};
use onad_pipeline::job::{JobState, KeyedState, Migrate};
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

/// The decoder of checkpoint payloads: format 2 with the registry's own messages (an unknown model kind,
/// another state version), format 1 migrated. Format 1 recorded neither the order (it is taken to be `order`, the
/// one asked for now) nor which output its byte count belongs to (it is given to `output`, the first
/// `--output` of the resumed run), nor the per-key model cap (`max_keys`, the one asked for now).
pub fn decoder(output: Option<String>, order: Order, max_keys: Option<usize>) -> Migrate<PipelineSpec, AnyPipeline> {
    Box::new(move |version, payload| {
        if version == onad_pipeline::checkpoint::FORMAT_VERSION {
            return onad_models::decode_explained(|| postcard::from_bytes(payload)).map(Some);
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
        };
        // A per-key state starts with a plain one, so try it first; a plain state must use every byte.
        if let Ok(k) = postcard::from_bytes::<KeyedRunStateV1>(payload) {
            let models = k.models.into_iter().map(|(key, tick, m)| (key, tick, m.into())).collect();
            return Ok(Some(convert(k.common, Some(KeyedState { max_keys, models, tally_evicted: 0 }))));
        }
        let (s, rest) = postcard::take_from_bytes::<RunStateV1>(payload).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err(format!("{} unexpected bytes after a format-1 run state", rest.len()));
        }
        Ok(Some(convert(s, None)))
    })
}
