//! The closed registry of model kinds: one list drives [`AnyDetector`], [`AnyTransformer`], their
//! parameter enums, the CLI names, `onad models`, the conformance suite and the benches.
//!
//! Adding a model is one line in the `registry!` invocation below plus its file.
//!
//! # Encoding
//!
//! In binary formats (checkpoints, postcard) every value of the four registry enums is the tuple
//! `(registry name, state version, payload)`, so the order of the list below is not part of any format and
//! a model may be added anywhere. The state version is the kind's [`Describe::STATE_VERSION`]; bytes with
//! an unknown name or another version fail to decode with an error naming the enum, the kind and both
//! versions (postcard drops such messages: [`decode_explained`] recovers them). Human-readable formats
//! (JSON, TOML) keep serde's externally tagged form: `{"moving_average": {...}}` for the parameter enums,
//! the Rust type name (`{"MovingAverage": {...}}`) for the model enums. Checkpoints written before this
//! encoding (checkpoint format 1, variants by index) are read through [`crate::legacy::v1`].
//!
//! The nodes of model trees ([`crate::PipelineSpec`], [`crate::AnyPipeline`], in `tree.rs`) use the same
//! by-name machinery in binary formats, with node kind names in place of registry names.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use onad_core::{Batch, Detector, DetectorParams, ParamDoc, ParamError, SchemaRef, Transformer, TransformerParams};
use serde::de::{self, DeserializeOwned, EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::baseline::{
    NullModel, NullModelParams, RandomModel, RandomModelParams, ThresholdModel, ThresholdModelParams,
};
use crate::deep::{Autoencoder, AutoencoderParams, OnlineAutoencoderEnsemble, OnlineAutoencoderEnsembleParams};
use crate::distance::{
    CellNeighborhoodDetector, CellNeighborhoodDetectorParams, KNN, KNNParams, LocalOutlierFactor,
    LocalOutlierFactorParams, SDOStream, SDOStreamParams, StationaryRegionNeighborDetector,
    StationaryRegionNeighborDetectorParams,
};
use crate::drift::{ADWIN, ADWINParams, KSWIN, KSWINParams, PageHinkley, PageHinkleyParams};
use crate::graph::{AnoEdgeL, AnoEdgeLParams};
use crate::graph::{ISCONNA, ISCONNAParams, MIDAS, MIDASParams};
use crate::graph::{SignedGraphSketchDetector, SignedGraphSketchDetectorParams};
use crate::iforest::{ASDIsolationForest, ASDIsolationForestParams};
use crate::iforest::{HalfSpaceTrees, HalfSpaceTreesParams};
use crate::iforest::{MondrianForest, MondrianForestParams};
use crate::iforest::{OnlineIsolationForest, OnlineIsolationForestParams};
use crate::iforest::{RandomCutForest, RandomCutForestParams};
use crate::iforest::{StreamRHF, StreamRHFParams};
use crate::iforest::{StreamRandomHistogramForest, StreamRandomHistogramForestParams};
use crate::iforest::{XStream, XStreamParams};
use crate::sketch::{
    MStream, MStreamParams, StreamingLODA, StreamingLODAParams, StreamingRSHash, StreamingRSHashParams,
};
use crate::stat::{
    MovingAverage, MovingAverageAbsoluteDeviation, MovingAverageAbsoluteDeviationParams, MovingAverageParams,
    MovingCorrelationCoefficient, MovingCorrelationCoefficientParams, MovingCovariance, MovingCovarianceParams,
    MovingGeometricAverage, MovingGeometricAverageParams, MovingHarmonicAverage, MovingHarmonicAverageParams,
    MovingInterquartileRange, MovingInterquartileRangeParams, MovingKurtosis, MovingKurtosisParams,
    MovingMahalanobisDistance, MovingMahalanobisDistanceParams, MovingMedian, MovingMedianParams, MovingQuantile,
    MovingQuantileParams, MovingSkewness, MovingSkewnessParams, MovingVariance, MovingVarianceParams,
};
use crate::svm::{GADGETSVM, GADGETSVMParams};
use crate::svm::{IncrementalOneClassSVMAdaptiveKernel, IncrementalOneClassSVMAdaptiveKernelParams};
use crate::threshold::{QuantileThreshold, QuantileThresholdParams};
use crate::timeseries::{
    MultivariateRollingMatrixProfile, MultivariateRollingMatrixProfileParams, RollingMatrixProfile,
    RollingMatrixProfileParams, XLagDAMP, XLagDAMPParams,
};
use crate::timeseries::{SeasonalResidualDetector, SeasonalResidualDetectorParams};
use crate::transform::{
    IncrementalPCA, IncrementalPCAParams, MinMaxScaler, MinMaxScalerParams, RandomProjection, RandomProjectionParams,
    ShingleTransformer, ShingleTransformerParams, StandardScaler, StandardScalerParams,
};

/// Self-description of a parameter struct, for `onad models`, the docs and the conformance suite.
pub trait Describe: Default + Serialize + DeserializeOwned {
    /// One line saying what the model does.
    const SUMMARY: &'static str;
    /// The paper the model implements (authors, year, title, venue), or empty when it has none and
    /// follows its reference library's implementation (the moving statistics, the baselines).
    const REFERENCE: &'static str = "";
    /// Every parameter, in declaration order (a test checks these match the serialized fields).
    const PARAMS: &'static [ParamDoc];
    /// Valid parameters for examples, tests and benches (fills required parameters).
    fn example() -> Self;
    /// The version of this kind's binary layout: its model state and its parameters as checkpoints store
    /// them. Bump it when a change makes old bytes unreadable (a field added, removed, reordered or
    /// retyped); a checkpoint holding another version then fails to load with both versions named, instead
    /// of being misread.
    const STATE_VERSION: u16 = 1;
    /// Whether the model reads one series at a fixed cadence (a matrix profile, a seasonal forecaster),
    /// where dropping a bad row would shift every later row's place in time: its runs read bad rows as
    /// missing rows (`BadRowPolicy::Missing`) unless the user picks another policy.
    const SERIES: bool = false;
    /// The input column these parameters need in non-decreasing order (an edge detector's `time_key`), if
    /// any: runs check it at the source ([`onad_core::NonDecreasing`]), so a row going back in time is a
    /// bad row under the bad-row policy rather than something the model must guess about.
    fn ordered_column(&self) -> Option<&str> {
        None
    }
}

/// Whether a registered kind scores rows or transforms them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Implements `Detector`.
    Detector,
    /// Implements `Transformer`.
    Transformer,
}

/// One registered model kind.
#[derive(Debug, Clone, Copy)]
pub struct ModelInfo {
    /// The registry name (snake_case of the Python class name).
    pub name: &'static str,
    /// The Python class name it mirrors.
    pub class: &'static str,
    /// Detector or transformer.
    pub role: Role,
    /// One line.
    pub summary: &'static str,
    /// Its [`Describe::REFERENCE`].
    pub reference: &'static str,
    /// Its parameters.
    pub params: &'static [ParamDoc],
    /// Its [`Describe::STATE_VERSION`].
    pub state_version: u16,
    /// Its [`Describe::SERIES`].
    pub series: bool,
}

/// Looks a registered kind up by name.
pub fn model_info(name: &str) -> Option<&'static ModelInfo> {
    REGISTRY.iter().find(|m| m.name == name)
}

/// Makes a score finite: NaN (no evidence) becomes 0.0, infinities the largest finite value of their sign.
#[inline]
pub(crate) fn finite_score(s: f64) -> f64 {
    if s.is_finite() {
        s
    } else if s.is_nan() {
        0.0
    } else {
        f64::MAX.copysign(s)
    }
}

thread_local! {
    /// The message of the last by-name decoding failure on this thread (see [`decode_explained`]).
    static DECODE_NOTE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `decode`, a deserialization that may contain registry values (for example
/// `postcard::from_bytes::<AnyPipeline>(bytes)` or a whole checkpoint load), and on failure returns the
/// registry's own message when a registry value caused it ("`x` is not a registered detector", "written
/// with state version 2, this build reads state version 1"), else the decoder's message. Needed because
/// postcard replaces every custom serde message by "Serde Deserialization Error".
///
/// ```
/// use onad_models::{AnyDetectorParams, decode_explained};
/// let bytes = postcard::to_stdvec(&("no_such_model", 1u16, ())).unwrap();
/// let err = decode_explained(|| postcard::from_bytes::<AnyDetectorParams>(&bytes)).unwrap_err();
/// assert!(err.contains("`no_such_model` is not a registered detector"), "{err}");
/// ```
pub fn decode_explained<T, E: fmt::Display>(decode: impl FnOnce() -> Result<T, E>) -> Result<T, String> {
    DECODE_NOTE.with(|n| n.borrow_mut().take());
    decode().map_err(|e| {
        let message = e.to_string();
        match DECODE_NOTE.with(|n| n.borrow_mut().take()) {
            Some(note) if !message.contains(&note) => note,
            _ => message,
        }
    })
}

/// A decoding error whose message also survives formats that drop it (see [`decode_explained`]).
pub(crate) fn noted<E: de::Error>(message: String) -> E {
    let error = E::custom(&message);
    DECODE_NOTE.with(|n| *n.borrow_mut() = Some(message));
    error
}

/// What the by-name encoding needs to know about one enum encoded by name: a registry enum, or a node
/// enum of model trees (implemented by [`by_name_kinds!`]).
pub(crate) trait ByName: Sized {
    /// The enum's name, for messages and serde.
    const ENUM: &'static str;
    /// "detector", "transformer" or "model node", for messages.
    const ROLE: &'static str;
    /// Variant names in human-readable formats, in list order.
    const HUMAN_TAGS: &'static [&'static str];
    /// Registry names, in list order.
    const NAMES: &'static [&'static str];
    /// The state version a registry name is read at, None for an unknown name.
    fn state_version(name: &str) -> Option<u16>;
    /// Decodes the payload of the kind with this human-readable tag (`human`) or registry name; None when
    /// there is no such kind.
    fn decode<'de, P: Payload<'de>>(tag: &str, human: bool, payload: P) -> Option<Result<Self, P::Error>>;
    /// Decodes the binary payload of kind `name` written at an older state `version`, for the kinds whose
    /// layout changed and that migrate (see `crate::legacy::older`); None when that version is not read.
    fn decode_older<'de, P: Payload<'de>>(_name: &str, _version: u16, _payload: P) -> Option<Result<Self, P::Error>> {
        None
    }
}

/// Where the payload of a value comes from: the rest of the binary tuple, or the variant of an externally
/// tagged enum.
pub(crate) trait Payload<'de> {
    type Error: de::Error;
    fn take<T: Deserialize<'de>>(self) -> Result<T, Self::Error>;
}

struct SeqPayload<'a, A>(&'a mut A);

impl<'de, A: SeqAccess<'de>> Payload<'de> for SeqPayload<'_, A> {
    type Error = A::Error;
    fn take<T: Deserialize<'de>>(self) -> Result<T, A::Error> {
        self.0.next_element()?.ok_or_else(|| de::Error::invalid_length(2, &"a (name, state version, state) tuple"))
    }
}

struct VariantPayload<V>(V);

impl<'de, V: VariantAccess<'de>> Payload<'de> for VariantPayload<V> {
    type Error = V::Error;
    fn take<T: Deserialize<'de>>(self) -> Result<T, V::Error> {
        self.0.newtype_variant()
    }
}

/// Writes one registry value: `(name, version, payload)` in binary formats, `{tag: payload}` otherwise.
pub(crate) fn serialize_by_name<E: ByName, S: Serializer, T: Serialize>(
    serializer: S,
    tag: &'static str,
    name: &'static str,
    version: u16,
    payload: &T,
) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        let index = E::HUMAN_TAGS.iter().position(|t| *t == tag).unwrap_or_default();
        serializer.serialize_newtype_variant(E::ENUM, index as u32, tag, payload)
    } else {
        let mut tuple = serializer.serialize_tuple(3)?;
        tuple.serialize_element(name)?;
        tuple.serialize_element(&version)?;
        tuple.serialize_element(payload)?;
        tuple.end()
    }
}

pub(crate) fn deserialize_by_name<'de, E: ByName, D: Deserializer<'de>>(deserializer: D) -> Result<E, D::Error> {
    if deserializer.is_human_readable() {
        deserializer.deserialize_enum(E::ENUM, E::HUMAN_TAGS, Tagged(PhantomData))
    } else {
        deserializer.deserialize_tuple(3, Named(PhantomData))
    }
}

/// The registry's list of names for messages.
fn known<E: ByName>() -> String {
    E::NAMES.join(", ")
}

/// Reads the binary `(name, version, payload)` tuple.
struct Named<E>(PhantomData<fn() -> E>);

impl<'de, E: ByName> Visitor<'de> for Named<E> {
    type Value = E;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} as (registry name, state version, state)", E::ROLE)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<E, A::Error> {
        let name: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let version: u16 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let unknown = || {
            noted(format!(
                "{}: `{name}` is not a registered {} (this build registers {})",
                E::ENUM,
                E::ROLE,
                known::<E>()
            ))
        };
        let Some(expected) = E::state_version(&name) else {
            return Err(unknown());
        };
        if version < expected
            && let Some(migrated) = E::decode_older(&name, version, SeqPayload(&mut seq))
        {
            return migrated;
        }
        if version != expected {
            let origin = if version > expected { "a newer build" } else { "an older build and not migrated" };
            return Err(noted(format!(
                "{}: `{name}` was written with state version {version} ({origin}); this build reads state version {expected}",
                E::ENUM
            )));
        }
        E::decode(&name, false, SeqPayload(&mut seq)).unwrap_or_else(|| Err(unknown()))
    }
}

/// Reads the externally tagged form of human-readable formats.
struct Tagged<E>(PhantomData<fn() -> E>);

impl<'de, E: ByName> Visitor<'de> for Tagged<E> {
    type Value = E;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} tagged by its kind", E::ROLE)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<E, A::Error> {
        let (Tag(tag), variant) = data.variant()?;
        E::decode(&tag, true, VariantPayload(variant))
            .unwrap_or_else(|| Err(de::Error::unknown_variant(&tag, E::HUMAN_TAGS)))
    }
}

/// A variant tag, borrowed or owned.
struct Tag(String);

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Tag, D::Error> {
        struct TagVisitor;
        impl Visitor<'_> for TagVisitor {
            type Value = Tag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a model kind")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tag, E> {
                Ok(Tag(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Tag, E> {
                Ok(Tag(v))
            }
        }
        deserializer.deserialize_identifier(TagVisitor)
    }
}

/// Implements [`ByName`] for one enum encoded by name; each variant is
/// `Variant(Payload) => human tag, name, state version`.
macro_rules! by_name_kinds {
    ($E:ident, $role:literal, [ $( $V:ident($P:ty) => $tag:expr, $name:expr, $version:expr ;)* ] $(, older = $older:path)?) => {
        impl $crate::registry::ByName for $E {
            const ENUM: &'static str = stringify!($E);
            const ROLE: &'static str = $role;
            const HUMAN_TAGS: &'static [&'static str] = &[$( $tag ),*];
            const NAMES: &'static [&'static str] = &[$( $name ),*];
            fn state_version(name: &str) -> Option<u16> {
                $( if name == $name { return Some($version); } )*
                None
            }
            fn decode<'de, P: $crate::registry::Payload<'de>>(
                tag: &str,
                human: bool,
                payload: P,
            ) -> Option<Result<Self, P::Error>> {
                $( if tag == (if human { $tag } else { $name }) {
                    return Some(payload.take::<$P>().map(Self::$V));
                } )*
                None
            }
            $(
                fn decode_older<'de, P: $crate::registry::Payload<'de>>(
                    name: &str,
                    version: u16,
                    payload: P,
                ) -> Option<Result<Self, P::Error>> {
                    $older(name, version, payload)
                }
            )?
        }
    };
}
pub(crate) use by_name_kinds;

/// Implements the by-name encoding for one enum ([`by_name_kinds!`], and serde: `(name, state version,
/// payload)` in binary formats, `{human tag: payload}` in human-readable ones).
macro_rules! by_name {
    ($E:ident, $role:literal, [ $( $V:ident($P:ty) => $tag:expr, $name:expr, $version:expr ;)* ] $(, older = $older:path)?) => {
        $crate::registry::by_name_kinds!($E, $role, [ $( $V($P) => $tag, $name, $version; )* ] $(, older = $older)?);

        impl serde::Serialize for $E {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( Self::$V(p) => $crate::registry::serialize_by_name::<Self, _, _>(
                        serializer, $tag, $name, $version, p,
                    ), )*
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $E {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::registry::deserialize_by_name(deserializer)
            }
        }
    };
}

macro_rules! registry {
    (
        detectors { $( $dname:literal => $D:ident($DP:ident) ),* $(,)? }
        transformers { $( $tname:literal => $T:ident($TP:ident) ),* $(,)? }
    ) => {
        /// Every registered detector's parameters, tagged by registry name.
        ///
        /// Encoding (the same for all four registry enums): binary formats such as postcard write the tuple
        /// `(registry name, state version, payload)`, so the order of the registry list is not part of any
        /// format; decoding an unknown name or another [`Describe::STATE_VERSION`] fails with a message
        /// naming the enum, the kind and both versions (postcard drops it: see [`decode_explained`]).
        /// Human-readable formats keep the externally tagged form: `{"moving_average": {"window_size": 50}}`
        /// here, the Rust type name (`{"MovingAverage": {...}}`) for [`AnyDetector`] and [`AnyTransformer`].
        /// Bytes of checkpoint format 1 (variants by index) are read through [`crate::legacy::v1`].
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum AnyDetectorParams {
            $( #[doc = concat!("`", $dname, "`")] $D($DP), )*
        }

        /// Every registered detector, as one serializable type (encoded by name, see
        /// [`AnyDetectorParams`]).
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum AnyDetector {
            $( #[doc = concat!("`", $dname, "`")] $D($D), )*
        }

        /// Every registered transformer's parameters, tagged by registry name (encoded by name, see
        /// [`AnyDetectorParams`]).
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum AnyTransformerParams {
            $( #[doc = concat!("`", $tname, "`")] $T($TP), )*
        }

        /// Every registered transformer, as one serializable type (encoded by name, see
        /// [`AnyDetectorParams`]).
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum AnyTransformer {
            $( #[doc = concat!("`", $tname, "`")] $T($T), )*
        }

        by_name!(AnyDetectorParams, "detector", [
            $( $D($DP) => $dname, $dname, <$DP as Describe>::STATE_VERSION; )*
        ], older = $crate::legacy::older::detector_params);
        by_name!(AnyDetector, "detector", [
            $( $D($D) => stringify!($D), $dname, <$DP as Describe>::STATE_VERSION; )*
        ], older = $crate::legacy::older::detector);
        by_name!(AnyTransformerParams, "transformer", [
            $( $T($TP) => $tname, $tname, <$TP as Describe>::STATE_VERSION; )*
        ]);
        by_name!(AnyTransformer, "transformer", [
            $( $T($T) => stringify!($T), $tname, <$TP as Describe>::STATE_VERSION; )*
        ]);

        /// All registered kinds: detectors first, then transformers, each in registration order.
        pub static REGISTRY: &[ModelInfo] = &[
            $( ModelInfo { name: $dname, class: stringify!($D), role: Role::Detector,
                           summary: <$DP as Describe>::SUMMARY, reference: <$DP as Describe>::REFERENCE, params: <$DP as Describe>::PARAMS,
                           state_version: <$DP as Describe>::STATE_VERSION,
                           series: <$DP as Describe>::SERIES }, )*
            $( ModelInfo { name: $tname, class: stringify!($T), role: Role::Transformer,
                           summary: <$TP as Describe>::SUMMARY, reference: <$TP as Describe>::REFERENCE, params: <$TP as Describe>::PARAMS,
                           state_version: <$TP as Describe>::STATE_VERSION,
                           series: <$TP as Describe>::SERIES }, )*
        ];

        impl AnyDetectorParams {
            /// The registry name.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$D(_) => $dname, )* }
            }
            /// The defaults of a registered detector (required parameters unset).
            pub fn default_for(name: &str) -> Option<Self> {
                match name { $( $dname => Some(Self::$D($DP::default())), )* _ => None }
            }
            /// Valid example parameters of a registered detector.
            pub fn example_for(name: &str) -> Option<Self> {
                match name { $( $dname => Some(Self::$D(<$DP as Describe>::example())), )* _ => None }
            }
            /// Validates against the schema and builds the detector.
            pub fn build(&self, schema: &SchemaRef) -> Result<AnyDetector, ParamError> {
                match self { $( Self::$D(p) => p.build(schema).map(AnyDetector::$D), )* }
            }
            /// Its [`Describe::ordered_column`].
            pub fn ordered_column(&self) -> Option<&str> {
                match self { $( Self::$D(p) => p.ordered_column(), )* }
            }
        }

        impl AnyDetector {
            /// The registry name.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$D(_) => $dname, )* }
            }
        }

        impl Detector for AnyDetector {
            fn learn_one(&mut self, x: &[f64]) { match self { $( Self::$D(m) => m.learn_one(x), )* } }
            fn score_one(&self, x: &[f64]) -> f64 { match self { $( Self::$D(m) => m.score_one(x), )* } }
            fn score_learn_one(&mut self, x: &[f64]) -> f64 {
                match self { $( Self::$D(m) => m.score_learn_one(x), )* }
            }
            fn learn_score_one(&mut self, x: &[f64]) -> f64 {
                match self { $( Self::$D(m) => m.learn_score_one(x), )* }
            }
            fn learn_many(&mut self, batch: &Batch) { match self { $( Self::$D(m) => m.learn_many(batch), )* } }
            fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
                match self { $( Self::$D(m) => m.score_many(batch, out), )* }
            }
            fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
                match self { $( Self::$D(m) => m.score_learn_many(batch, out), )* }
            }
            fn learn_score_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
                match self { $( Self::$D(m) => m.learn_score_many(batch, out), )* }
            }
            fn explanation_names(&self) -> Vec<String> {
                match self { $( Self::$D(m) => m.explanation_names(), )* }
            }
            fn explain_one(&self, x: &[f64], out: &mut [f64]) {
                match self { $( Self::$D(m) => m.explain_one(x, out), )* }
            }
        }

        impl AnyTransformerParams {
            /// The registry name.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$T(_) => $tname, )* }
            }
            /// The defaults of a registered transformer.
            pub fn default_for(name: &str) -> Option<Self> {
                match name { $( $tname => Some(Self::$T($TP::default())), )* _ => None }
            }
            /// Valid example parameters of a registered transformer.
            pub fn example_for(name: &str) -> Option<Self> {
                match name { $( $tname => Some(Self::$T(<$TP as Describe>::example())), )* _ => None }
            }
            /// Validates against the schema and builds the transformer.
            pub fn build(&self, schema: &SchemaRef) -> Result<AnyTransformer, ParamError> {
                match self { $( Self::$T(p) => p.build(schema).map(AnyTransformer::$T), )* }
            }
        }

        impl AnyTransformer {
            /// The registry name.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$T(_) => $tname, )* }
            }
        }

        impl Transformer for AnyTransformer {
            fn learn_one(&mut self, x: &[f64]) { match self { $( Self::$T(m) => m.learn_one(x), )* } }
            fn transform_one(&self, x: &[f64], out: &mut [f64]) {
                match self { $( Self::$T(m) => m.transform_one(x, out), )* }
            }
            fn learn_transform_one(&mut self, x: &[f64], out: &mut [f64]) {
                match self { $( Self::$T(m) => m.learn_transform_one(x, out), )* }
            }
            fn transforms_next_row(&self) -> bool {
                match self { $( Self::$T(m) => m.transforms_next_row(), )* }
            }
            fn output_schema(&self) -> &SchemaRef { match self { $( Self::$T(m) => m.output_schema(), )* } }
        }
    };
}

registry! {
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
        "moving_mahalanobis_distance" => MovingMahalanobisDistance(MovingMahalanobisDistanceParams),
        "quantile_threshold" => QuantileThreshold(QuantileThresholdParams),
        "asd_isolation_forest" => ASDIsolationForest(ASDIsolationForestParams),
        "online_isolation_forest" => OnlineIsolationForest(OnlineIsolationForestParams),
        "knn" => KNN(KNNParams),
        "sdo_stream" => SDOStream(SDOStreamParams),
        "local_outlier_factor" => LocalOutlierFactor(LocalOutlierFactorParams),
        "nets" => CellNeighborhoodDetector(CellNeighborhoodDetectorParams),
        "stare" => StationaryRegionNeighborDetector(StationaryRegionNeighborDetectorParams),
        "stream_random_histogram_forest" => StreamRandomHistogramForest(StreamRandomHistogramForestParams),
        "mondrian_forest" => MondrianForest(MondrianForestParams),
        "random_cut_forest" => RandomCutForest(RandomCutForestParams),
        "half_space_trees" => HalfSpaceTrees(HalfSpaceTreesParams),
        "rs_hash" => StreamingRSHash(StreamingRSHashParams),
        "loda" => StreamingLODA(StreamingLODAParams),
        "stream_rhf" => StreamRHF(StreamRHFParams),
        "xstream" => XStream(XStreamParams),
        "gadget_svm" => GADGETSVM(GADGETSVMParams),
        "incremental_one_class_svm_adaptive_kernel" => IncrementalOneClassSVMAdaptiveKernel(IncrementalOneClassSVMAdaptiveKernelParams),
        "mstream" => MStream(MStreamParams),
        "midas" => MIDAS(MIDASParams),
        "isconna" => ISCONNA(ISCONNAParams),
        "autoencoder" => Autoencoder(AutoencoderParams),
        "kitnet" => OnlineAutoencoderEnsemble(OnlineAutoencoderEnsembleParams),
        "adwin" => ADWIN(ADWINParams),
        "kswin" => KSWIN(KSWINParams),
        "page_hinkley" => PageHinkley(PageHinkleyParams),
        "damp" => XLagDAMP(XLagDAMPParams),
        "rolling_matrix_profile" => RollingMatrixProfile(RollingMatrixProfileParams),
        "multivariate_rolling_matrix_profile" => MultivariateRollingMatrixProfile(MultivariateRollingMatrixProfileParams),
        "seasonal_residual" => SeasonalResidualDetector(SeasonalResidualDetectorParams),
        "anoedge_l" => AnoEdgeL(AnoEdgeLParams),
        "stream_spot" => SignedGraphSketchDetector(SignedGraphSketchDetectorParams),
    }
    transformers {
        "min_max_scaler" => MinMaxScaler(MinMaxScalerParams),
        "standard_scaler" => StandardScaler(StandardScalerParams),
        "incremental_pca" => IncrementalPCA(IncrementalPCAParams),
        "random_projection" => RandomProjection(RandomProjectionParams),
        "shingle" => ShingleTransformer(ShingleTransformerParams),
    }
}
