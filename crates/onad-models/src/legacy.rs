//! Readers of older encodings, for migrating checkpoints written by earlier builds.
//!
//! Each submodule mirrors, as Deserialize-only types, the registry types of one past encoding and
//! converts them into today's types with `From`. A mirror is frozen: once released it decodes bytes
//! already on disk, so its variant lists are never reordered and never extended, whatever the registry
//! becomes.

/// Checkpoint format 1: the registry enums encoded by the index of their variant in the `registry!` list
/// (serde's derived enum encoding under postcard), before model kinds were encoded by name.
///
/// **Frozen: never reorder, never add.** The lists below are the registry as it stood when format 1 was
/// current (17 detectors, then 4 transformers); a variant's position is its code in the bytes. The
/// payload of every variant is today's model or parameter type where its layout is still the one format 1
/// wrote (state version 1). A kind whose [`crate::Describe::STATE_VERSION`] went past 1 names a frozen copy
/// of its version-1 layout after `as` below, converted into today's type by `From`
/// (`moving_mahalanobis_distance`, version 2: the maintained Cholesky factor is computed from the sums).
///
/// ```
/// use onad_models::{PipelineSpec, legacy};
/// # let bytes = std::fs::read(concat!(
/// #     env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/legacy-v1/moving_average.postcard")).unwrap();
/// let (spec, model): (legacy::v1::PipelineSpec, legacy::v1::AnyPipeline) = postcard::from_bytes(&bytes).unwrap();
/// let spec = PipelineSpec::from(spec);
/// assert_eq!(spec.name(), "moving_average");
/// let model = onad_models::AnyPipeline::from(model);
/// assert_eq!(model.name(), "moving_average");
/// ```
pub mod v1 {
    use serde::Deserialize;

    use crate::baseline::{
        NullModel, NullModelParams, RandomModel, RandomModelParams, ThresholdModel, ThresholdModelParams,
    };
    use crate::stat::{
        MovingAverage, MovingAverageAbsoluteDeviation, MovingAverageAbsoluteDeviationParams, MovingAverageParams,
        MovingCorrelationCoefficient, MovingCorrelationCoefficientParams, MovingCovariance, MovingCovarianceParams,
        MovingGeometricAverage, MovingGeometricAverageParams, MovingHarmonicAverage, MovingHarmonicAverageParams,
        MovingInterquartileRange, MovingInterquartileRangeParams, MovingKurtosis, MovingKurtosisParams,
        MovingMahalanobisDistanceParams, MovingMedian, MovingMedianParams, MovingQuantile, MovingQuantileParams,
        MovingSkewness, MovingSkewnessParams, MovingVariance, MovingVarianceParams,
    };
    use crate::threshold::{Guard, Protect, QuantileThreshold, QuantileThresholdParams};
    use crate::transform::{
        IncrementalPCA, IncrementalPCAParams, MinMaxScaler, MinMaxScalerParams, RandomProjection,
        RandomProjectionParams, StandardScaler, StandardScalerParams,
    };

    /// Declares the four frozen enums with serde's derived (index-based in binary formats) encoding, the
    /// same attributes format 1 had, and their conversions into today's enums.
    macro_rules! frozen {
        (
            detectors { $( $dname:literal => $D:ident($DP:ident) $(as $DS:ident)? ),* $(,)? }
            transformers { $( $tname:literal => $T:ident($TP:ident) ),* $(,)? }
        ) => {
            /// Detector parameters as format 1 encoded them (variant index = position in this list).
            #[derive(Debug, Clone, PartialEq, Deserialize)]
            pub enum AnyDetectorParams {
                $( #[doc = concat!("`", $dname, "`")] #[serde(rename = $dname)] $D($DP), )*
            }

            /// A detector as format 1 encoded it (variant index = position in this list).
            #[derive(Debug, Clone, Deserialize)]
            pub enum AnyDetector {
                $( #[doc = concat!("`", $dname, "`")] $D(version_1!($D $(, $DS)?)), )*
            }

            /// Transformer parameters as format 1 encoded them.
            #[derive(Debug, Clone, PartialEq, Deserialize)]
            pub enum AnyTransformerParams {
                $( #[doc = concat!("`", $tname, "`")] #[serde(rename = $tname)] $T($TP), )*
            }

            /// A transformer as format 1 encoded it.
            #[derive(Debug, Clone, Deserialize)]
            pub enum AnyTransformer {
                $( #[doc = concat!("`", $tname, "`")] $T($T), )*
            }

            impl From<AnyDetectorParams> for crate::AnyDetectorParams {
                fn from(p: AnyDetectorParams) -> Self {
                    match p { $( AnyDetectorParams::$D(p) => crate::AnyDetectorParams::$D(p), )* }
                }
            }

            impl From<AnyDetector> for crate::AnyDetector {
                fn from(m: AnyDetector) -> Self {
                    match m { $( AnyDetector::$D(m) => crate::AnyDetector::$D(m.into()), )* }
                }
            }

            impl From<AnyTransformerParams> for crate::AnyTransformerParams {
                fn from(p: AnyTransformerParams) -> Self {
                    match p { $( AnyTransformerParams::$T(p) => crate::AnyTransformerParams::$T(p), )* }
                }
            }

            impl From<AnyTransformer> for crate::AnyTransformer {
                fn from(m: AnyTransformer) -> Self {
                    match m { $( AnyTransformer::$T(m) => crate::AnyTransformer::$T(m), )* }
                }
            }
        };
    }

    /// [`crate::MovingMahalanobisDistance`] at state version 1: the same fields without the maintained Cholesky
    /// factor of version 2, which the conversion computes from the sums.
    #[derive(Debug, Clone, Deserialize)]
    pub struct MovingMahalanobisDistanceV1 {
        pub(crate) columns: Vec<usize>,
        pub(crate) window_size: usize,
        pub(crate) ddof: f64,
        pub(crate) window: std::collections::VecDeque<f64>,
        pub(crate) shift: Vec<f64>,
        pub(crate) s1: Vec<f64>,
        pub(crate) s2: Vec<f64>,
        pub(crate) since_resync: usize,
    }

    /// The type holding a kind's version-1 state: its own type unless a frozen copy is named.
    macro_rules! version_1 {
        ($D:ident) => {
            $D
        };
        ($D:ident, $S:ident) => {
            $S
        };
    }

    // Frozen: never reorder, never add. (Copied from the registry of checkpoint format 1.)
    frozen! {
        detectors {
            "null_model" => NullModel(NullModelParams),
            "random_model" => RandomModel(RandomModelParams),
            "threshold_model" => ThresholdModel(ThresholdModelParams),
            "moving_average" => MovingAverage(MovingAverageParams),
            "moving_harmonic_average" => MovingHarmonicAverage(MovingHarmonicAverageParams),
            "moving_geometric_average" => MovingGeometricAverage(MovingGeometricAverageParams),
            "moving_median" => MovingMedian(MovingMedianParams),
            "moving_quantile" => MovingQuantile(MovingQuantileParams),
            "moving_variance" => MovingVariance(MovingVarianceParams),
            "moving_interquartile_range" => MovingInterquartileRange(MovingInterquartileRangeParams),
            "moving_average_absolute_deviation" => MovingAverageAbsoluteDeviation(MovingAverageAbsoluteDeviationParams),
            "moving_kurtosis" => MovingKurtosis(MovingKurtosisParams),
            "moving_skewness" => MovingSkewness(MovingSkewnessParams),
            "moving_covariance" => MovingCovariance(MovingCovarianceParams),
            "moving_correlation_coefficient" => MovingCorrelationCoefficient(MovingCorrelationCoefficientParams),
            "moving_mahalanobis_distance" => MovingMahalanobisDistance(MovingMahalanobisDistanceParams) as MovingMahalanobisDistanceV1,
            "quantile_threshold" => QuantileThreshold(QuantileThresholdParams),
        }
        transformers {
            "min_max_scaler" => MinMaxScaler(MinMaxScalerParams),
            "standard_scaler" => StandardScaler(StandardScalerParams),
            "incremental_pca" => IncrementalPCA(IncrementalPCAParams),
            "random_projection" => RandomProjection(RandomProjectionParams),
        }
    }

    /// [`crate::PipelineSpec`] as format 1 encoded it (same fields, same order).
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    pub struct PipelineSpec {
        /// Transformers applied in order.
        pub transformers: Vec<AnyTransformerParams>,
        /// The final detector.
        pub detector: AnyDetectorParams,
        /// Learn protection.
        #[serde(default)]
        pub protect: Option<Protect>,
    }

    /// [`crate::AnyPipeline`] as format 1 encoded it (same fields, same order).
    #[derive(Debug, Clone, Deserialize)]
    pub struct AnyPipeline {
        /// The transformers, in order.
        pub transformers: Vec<AnyTransformer>,
        /// The final detector.
        pub detector: AnyDetector,
        /// The learn-protection state.
        pub guard: Option<Guard>,
    }

    /// A pipeline with a rule becomes the tree `protect(pipeline)`, whose guard protects every stage, as
    /// the rule did.
    impl From<PipelineSpec> for crate::PipelineSpec {
        fn from(s: PipelineSpec) -> Self {
            crate::PipelineSpec::from_flat(
                s.transformers.into_iter().map(Into::into).collect(),
                s.detector.into(),
                s.protect,
            )
        }
    }

    /// A pipeline with a guard becomes the tree `protect(pipeline)` holding the same guard.
    impl From<AnyPipeline> for crate::AnyPipeline {
        fn from(p: AnyPipeline) -> Self {
            crate::AnyPipeline::from_flat(
                p.transformers.into_iter().map(Into::into).collect(),
                p.detector.into(),
                p.guard,
            )
        }
    }
}

/// Checkpoint format 2 as its first builds wrote it, before model trees: `PipelineSpec` and
/// `AnyPipeline` were flat structs (transformers, a detector, an optional protect rule or guard around
/// both), whose registry values are already encoded by name, as today.
///
/// **Frozen: never change these fields.** Bytes of this layout never decode as a tree, so a reader tries
/// today's layout first and this one when that fails: a tree starts with the node kind, a postcard
/// string, where this layout starts with the number of transformers, read there as the length of the
/// kind's name. No transformers gives the empty name; a few make the name's first byte the length of a
/// transformer's registry name (a control character, where node kinds start with a letter); 128 or more
/// make a name longer than any node kind.
///
/// ```
/// use onad_models::{AnyDetectorParams, PipelineSpec, legacy};
/// let detector = AnyDetectorParams::example_for("moving_average").unwrap();
/// // The flat layout: (transformers, detector, protect).
/// let bytes = postcard::to_stdvec(&(Vec::<u8>::new(), &detector, None::<u8>)).unwrap();
/// assert!(postcard::from_bytes::<PipelineSpec>(&bytes).is_err());
/// let flat: legacy::v2_flat::PipelineSpec = postcard::from_bytes(&bytes).unwrap();
/// assert_eq!(PipelineSpec::from(flat), PipelineSpec::detector(detector));
/// ```
pub mod v2_flat {
    use serde::Deserialize;

    use crate::threshold::{Guard, Protect};
    use crate::{AnyDetector, AnyDetectorParams, AnyTransformer, AnyTransformerParams};

    /// [`crate::PipelineSpec`] as the first format 2 builds encoded it (same fields, same order).
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    pub struct PipelineSpec {
        /// Transformers applied in order.
        pub transformers: Vec<AnyTransformerParams>,
        /// The final detector.
        pub detector: AnyDetectorParams,
        /// Learn protection around the whole pipeline.
        pub protect: Option<Protect>,
    }

    /// [`crate::AnyPipeline`] as the first format 2 builds encoded it (same fields, same order).
    #[derive(Debug, Clone, Deserialize)]
    pub struct AnyPipeline {
        /// The transformers, in order.
        pub transformers: Vec<AnyTransformer>,
        /// The final detector.
        pub detector: AnyDetector,
        /// The learn-protection state.
        pub guard: Option<Guard>,
    }

    /// A pipeline with a rule becomes the tree `protect(pipeline)`.
    impl From<PipelineSpec> for crate::PipelineSpec {
        fn from(s: PipelineSpec) -> Self {
            crate::PipelineSpec::from_flat(s.transformers, s.detector, s.protect)
        }
    }

    /// A pipeline with a guard becomes the tree `protect(pipeline)` holding the same guard.
    impl From<AnyPipeline> for crate::AnyPipeline {
        fn from(p: AnyPipeline) -> Self {
            crate::AnyPipeline::from_flat(p.transformers, p.detector, p.guard)
        }
    }
}

/// Readers of by-name values (checkpoint formats 2 to 4, and the trees inside them) written at an older
/// state version of a kind whose layout changed since: the registry's decoder asks here before refusing
/// a version. `moving_mahalanobis_distance` version 1: the model is read as
/// [`v1::MovingMahalanobisDistanceV1`] and converted (its Cholesky factor computed from the sums); its
/// parameters did not change. `random_cut_forest` version 1 (model and parameters, before `scoring`):
/// read as CoDisp, which it scored. `xstream` version 1 (aberrant's sketch layout): the projection and
/// chains carry over, the sketches start empty (see `From<XStreamV1>`); its parameters did not change.
pub(crate) mod older {
    use super::v1::MovingMahalanobisDistanceV1;
    use crate::iforest::random_cut::{RandomCutForestParamsV1, RandomCutForestV1};
    use crate::iforest::xstream::XStreamV1;
    use crate::registry::Payload;
    use crate::{AnyDetector, AnyDetectorParams, MovingMahalanobisDistanceParams, XStreamParams};

    pub(crate) fn detector<'de, P: Payload<'de>>(
        name: &str,
        version: u16,
        payload: P,
    ) -> Option<Result<AnyDetector, P::Error>> {
        match (name, version) {
            ("moving_mahalanobis_distance", 1) => Some(
                payload.take::<MovingMahalanobisDistanceV1>().map(|m| AnyDetector::MovingMahalanobisDistance(m.into())),
            ),
            ("random_cut_forest", 1) => {
                Some(payload.take::<RandomCutForestV1>().map(|m| AnyDetector::RandomCutForest(m.into())))
            }
            ("xstream", 1) => Some(payload.take::<XStreamV1>().map(|m| AnyDetector::XStream(m.into()))),
            _ => None,
        }
    }

    pub(crate) fn detector_params<'de, P: Payload<'de>>(
        name: &str,
        version: u16,
        payload: P,
    ) -> Option<Result<AnyDetectorParams, P::Error>> {
        match (name, version) {
            ("moving_mahalanobis_distance", 1) => Some(
                payload.take::<MovingMahalanobisDistanceParams>().map(AnyDetectorParams::MovingMahalanobisDistance),
            ),
            ("random_cut_forest", 1) => {
                Some(payload.take::<RandomCutForestParamsV1>().map(|p| AnyDetectorParams::RandomCutForest(p.into())))
            }
            ("xstream", 1) => Some(payload.take::<XStreamParams>().map(AnyDetectorParams::XStream)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use onad_core::{Detector, Schema, SchemaRef};

    use super::{v1, v2_flat};
    use crate::threshold::Protect;
    use crate::{AnyDetectorParams, AnyPipeline, AnyTransformerParams, PipelineSpec, REGISTRY};

    fn manifest() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn fixture(name: &str) -> PathBuf {
        manifest().join("tests/fixtures/legacy-v1").join(name)
    }

    /// The SHUTTLE head's features, as the fixtures were made from.
    fn shuttle() -> (SchemaRef, Vec<Vec<f64>>) {
        let text = std::fs::read_to_string(manifest().join("tests/fixtures/shuttle_head2000.csv")).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let d = header.len() - 1;
        let rows = lines
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').take(d).map(|v| v.parse().unwrap()).collect())
            .collect();
        (Schema::shared(header[..d].iter().copied()).unwrap(), rows)
    }

    fn state<T: serde::Serialize>(value: &T) -> Vec<u8> {
        postcard::to_stdvec(value).unwrap()
    }

    /// Decodes a fixture file through the v1 mirror, requiring it to be consumed exactly.
    fn decode_v1(bytes: &[u8]) -> (PipelineSpec, AnyPipeline) {
        let ((spec, model), rest): ((v1::PipelineSpec, v1::AnyPipeline), _) =
            postcard::take_from_bytes(bytes).expect("a format 1 (spec, pipeline) pair");
        assert!(rest.is_empty(), "{} bytes left over", rest.len());
        (spec.into(), model.into())
    }

    /// The tree of a spec in the flat JSON form of the fixtures' README (built with the public API, not
    /// the migration under test).
    fn tree_of_flat_json(json: &str) -> PipelineSpec {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let transformers = serde_json::from_value(v["transformers"].clone()).unwrap();
        let spec = PipelineSpec::stages(transformers, serde_json::from_value(v["detector"].clone()).unwrap());
        match serde_json::from_value::<Option<Protect>>(v["protect"].clone()).unwrap() {
            Some(rule) => spec.protected(rule),
            None => spec,
        }
    }

    /// The fixtures and the specs they were written from (as in their README).
    const FIXTURES: [(&str, &str); 5] = [
        (
            "moving_average",
            r#"{"transformers":[],"detector":{"moving_average":{"window_size":20,"key":"f1","abs_diff":true}},"protect":null}"#,
        ),
        (
            "random_model_above",
            r#"{"transformers":[],"detector":{"random_model":{"seed":42}},"protect":{"above":{"threshold":0.9}}}"#,
        ),
        (
            "scaler_median_quantile",
            r#"{"transformers":[{"standard_scaler":{"with_std":true}}],"detector":{"moving_median":{"window_size":50,"key":"f1","abs_diff":true}},"protect":{"quantile":{"quantile":0.9,"window_size":100}}}"#,
        ),
        (
            "pca_mahalanobis",
            r#"{"transformers":[{"incremental_pca":{"n_components":3,"n0":50,"keys":null,"tol":1e-7,"forgetting_factor":null}}],"detector":{"moving_mahalanobis_distance":{"window_size":100,"bias":true,"keys":["component_0","component_1"]}},"protect":null}"#,
        ),
        (
            "minmax_projection_quantile_threshold",
            r#"{"transformers":[{"min_max_scaler":{"feature_range":[-1.0,1.0],"clip":false}},{"random_projection":{"n_components":3,"keys":null,"seed":42}}],"detector":{"quantile_threshold":{"quantile":0.95,"window_size":200,"score_key":"component_0"}},"protect":null}"#,
        ),
    ];

    #[test]
    fn format_1_fixtures_migrate_to_the_same_models() {
        let (schema, rows) = shuttle();
        for (name, json) in FIXTURES {
            let bytes = std::fs::read(fixture(&format!("{name}.postcard"))).unwrap();
            // Today's decoder does not read the index encoding: these bytes need the mirror.
            assert!(postcard::from_bytes::<(PipelineSpec, AnyPipeline)>(&bytes).is_err(), "{name}");

            let (spec, mut migrated) = decode_v1(&bytes);
            let expected = tree_of_flat_json(json);
            assert_eq!(spec, expected, "{name}: spec");
            assert_eq!(spec.name().starts_with("protect("), json.contains(r#""protect":{"#), "{name}");

            // The spec rebuilt and fed the same 500 rows is the same model: same state, same later scores.
            let mut rebuilt = spec.build(&schema).unwrap();
            rows[..500].iter().for_each(|r| {
                rebuilt.score_learn_one(r);
            });
            assert_eq!(state(&migrated), state(&rebuilt), "{name}: migrated state");
            for (i, r) in rows[500..].iter().enumerate() {
                let (a, b) = (migrated.score_learn_one(r), rebuilt.score_learn_one(r));
                assert_eq!(a.to_bits(), b.to_bits(), "{name}: row {} scores {a} after migration, {b} rebuilt", 500 + i);
            }
            assert_eq!(migrated.protected_rows(), rebuilt.protected_rows(), "{name}");
            assert_eq!(migrated.protected_rows().is_some(), json.contains(r#""protect":{"#), "{name}");

            // Migrated values are written in today's encoding and read back.
            let now = state(&(&spec, &migrated));
            let (spec_back, model_back): (PipelineSpec, AnyPipeline) = postcard::from_bytes(&now).unwrap();
            assert_eq!(spec_back, spec);
            assert_eq!(state(&model_back), state(&migrated));
        }
    }

    /// Format 1's registry order, the codes of its variants.
    const FORMAT_1_DETECTORS: [&str; 17] = [
        "null_model",
        "random_model",
        "threshold_model",
        "moving_average",
        "moving_harmonic_average",
        "moving_geometric_average",
        "moving_median",
        "moving_quantile",
        "moving_variance",
        "moving_interquartile_range",
        "moving_average_absolute_deviation",
        "moving_kurtosis",
        "moving_skewness",
        "moving_covariance",
        "moving_correlation_coefficient",
        "moving_mahalanobis_distance",
        "quantile_threshold",
    ];
    const FORMAT_1_TRANSFORMERS: [&str; 4] =
        ["min_max_scaler", "standard_scaler", "incremental_pca", "random_projection"];

    /// The payload of a by-name encoding (what follows the name and the version).
    fn payload(bytes: &[u8], name: &str) -> Vec<u8> {
        bytes[state(&(name, 1u16)).len()..].to_vec()
    }

    #[test]
    fn every_format_1_code_maps_to_its_kind() {
        for (code, name) in FORMAT_1_DETECTORS.iter().enumerate() {
            let params = AnyDetectorParams::example_for(name).unwrap();
            // Format 1 wrote the variant index (a one-byte varint here) and then the same payload.
            let old = [vec![code as u8], payload(&state(&params), name)].concat();
            let back: v1::AnyDetectorParams = postcard::from_bytes(&old).unwrap();
            assert_eq!(AnyDetectorParams::from(back), params, "detector code {code}");
        }
        for (code, name) in FORMAT_1_TRANSFORMERS.iter().enumerate() {
            let params = AnyTransformerParams::example_for(name).unwrap();
            let old = [vec![code as u8], payload(&state(&params), name)].concat();
            let back: v1::AnyTransformerParams = postcard::from_bytes(&old).unwrap();
            assert_eq!(AnyTransformerParams::from(back), params, "transformer code {code}");
        }
        // Codes past the frozen lists are errors, not some other model.
        assert!(postcard::from_bytes::<v1::AnyDetectorParams>(&[17, 0]).is_err());
        assert!(postcard::from_bytes::<v1::AnyTransformerParams>(&[4, 0]).is_err());
        // Every kind format 1 knew is still registered (a removed kind needs its own migration story).
        for name in FORMAT_1_DETECTORS.iter().chain(&FORMAT_1_TRANSFORMERS) {
            assert!(REGISTRY.iter().any(|m| m.name == *name), "{name} is no longer registered");
        }
    }

    /// The payload of a committed CLI checkpoint of the given format: magic, u16 version, u32-prefixed
    /// kind, u64 rows, u32-prefixed position, u64-prefixed payload, CRC; the payload starts with the run's
    /// (PipelineSpec, AnyPipeline).
    fn cli_checkpoint_payload(dir: &str, version: u16) -> Vec<u8> {
        let path = manifest().join("../../tests/data").join(dir).join("checkpoint-000000000001.onad");
        let bytes = std::fs::read(&path).unwrap();
        let mut at = 8;
        let mut take = |n: usize| {
            let s = &bytes[at..at + n];
            at += n;
            s
        };
        assert_eq!(u16::from_le_bytes(take(2).try_into().unwrap()), version, "format version");
        let kind_len = u32::from_le_bytes(take(4).try_into().unwrap()) as usize;
        assert_eq!(take(kind_len), b"moving_average");
        take(8);
        let position_len = u32::from_le_bytes(take(4).try_into().unwrap()) as usize;
        take(position_len);
        let payload_len = u64::from_le_bytes(take(8).try_into().unwrap()) as usize;
        take(payload_len).to_vec()
    }

    /// Both committed CLI checkpoints hold `moving_average` (window 3, key a) after learning rows a = 1, 2;
    /// the migrated model agrees with the spec rebuilt and fed those rows.
    fn check_cli_checkpoint_model(spec: PipelineSpec, mut model: AnyPipeline) {
        assert_eq!(spec.name(), "moving_average");
        assert!(matches!(&model, AnyPipeline::Stages(s) if s.transformers().is_empty()));
        assert!(matches!(&spec, PipelineSpec::Stages(s) if s.transformers.is_empty()));
        let schema = Schema::shared(["a", "b"]).unwrap();
        let mut rebuilt = spec.build(&schema).unwrap();
        for r in [[1.0, 2.0], [2.0, 3.0]] {
            rebuilt.score_learn_one(&r);
        }
        assert_eq!(state(&model), state(&rebuilt));
        for r in [[3.0, 1.0], [10.0, 0.0], [4.0, 4.0]] {
            assert_eq!(model.score_learn_one(&r).to_bits(), rebuilt.score_learn_one(&r).to_bits());
        }
    }

    #[test]
    fn the_committed_cli_checkpoint_model_decodes_through_v1() {
        let payload = cli_checkpoint_payload("checkpoint-v1", 1);
        let ((spec, model), _counters): ((v1::PipelineSpec, v1::AnyPipeline), _) =
            postcard::take_from_bytes(&payload).unwrap();
        check_cli_checkpoint_model(spec.into(), model.into());
    }

    #[test]
    fn the_committed_format_2_checkpoint_model_decodes_through_v2_flat() {
        let payload = cli_checkpoint_payload("checkpoint-v2", 2);
        // Written before trees: today's layout refuses it (it is not misread), the flat mirror reads it.
        assert!(postcard::from_bytes::<(PipelineSpec, AnyPipeline)>(&payload).is_err());
        let ((spec, model), _rest): ((v2_flat::PipelineSpec, v2_flat::AnyPipeline), _) =
            postcard::take_from_bytes(&payload).unwrap();
        check_cli_checkpoint_model(spec.into(), model.into());
    }

    #[test]
    fn flat_format_2_pipelines_migrate_to_trees_and_never_decode_as_trees() {
        let (schema, rows) = shuttle();
        let t = |name: &str| AnyTransformerParams::example_for(name).unwrap();
        let mut detector = AnyDetectorParams::example_for("moving_median").unwrap();
        if let AnyDetectorParams::MovingMedian(p) = &mut detector {
            p.key = Some("f1".into());
        }
        let rule = Protect::Quantile { quantile: 0.9, window_size: 50 };
        for (transformers, protect) in [
            (vec![], None),
            (vec![], Some(rule.clone())),
            (vec![t("standard_scaler")], None),
            (vec![t("min_max_scaler"), t("standard_scaler")], Some(rule.clone())),
            (vec![t("standard_scaler"); 130], Some(Protect::Above { threshold: 1.0 })),
        ] {
            let flat_spec = (&transformers, &detector, &protect);
            let mut tree = PipelineSpec::stages(transformers.clone(), detector.clone());
            if let Some(rule) = &protect {
                tree = tree.protected(rule.clone());
            }
            let mut model = tree.build(&schema).unwrap();
            rows[..300].iter().for_each(|r| {
                model.score_learn_one(r);
            });
            // The flat layout of the same model: its stages and, when protected, its guard.
            let (stages, guard) = match &model {
                AnyPipeline::Stages(s) => (s, None),
                AnyPipeline::Protect(p) => match p.inner() {
                    AnyPipeline::Stages(s) => (s, Some(p.guard())),
                    _ => unreachable!("one rule around stages"),
                },
                AnyPipeline::Calibrate(_) | AnyPipeline::Ensemble(_) | AnyPipeline::Drift(_) => {
                    unreachable!("flat layouts had none of these")
                }
            };
            let bytes = state(&(flat_spec, (stages.transformers(), stages.detector(), guard)));
            let what = format!("{} transformers, protect {protect:?}", transformers.len());
            assert!(postcard::from_bytes::<(PipelineSpec, AnyPipeline)>(&bytes).is_err(), "{what}: read as a tree");
            assert!(postcard::from_bytes::<PipelineSpec>(&bytes).is_err(), "{what}: spec read as a tree");
            let (spec, flat_model): (v2_flat::PipelineSpec, v2_flat::AnyPipeline) =
                postcard::from_bytes(&bytes).unwrap();
            assert_eq!(PipelineSpec::from(spec), tree, "{what}");
            let mut migrated = AnyPipeline::from(flat_model);
            assert_eq!(state(&migrated), state(&model), "{what}");
            assert_eq!(migrated.protected_rows(), model.protected_rows(), "{what}");
            for r in &rows[300..400] {
                assert_eq!(migrated.score_learn_one(r).to_bits(), model.score_learn_one(r).to_bits(), "{what}");
            }
        }
    }
}
