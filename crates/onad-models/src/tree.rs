//! Model trees: [`PipelineSpec`] says how a model is built (config files, `--model`, checkpoints) and
//! [`AnyPipeline`] is the model built from it, itself a [`Detector`].
//!
//! A tree is made of nodes: a plain pipeline of registered stages (transformers in order, then a
//! detector), a learn-protection wrapper and a calibration wrapper around another tree. Every other
//! composition (ensembles, drift-triggered resets) is one more variant of each of the two node enums, with its own node kind name; the enums are not `#[non_exhaustive]`, so the compiler
//! lists every match (names, building, `--set` paths in the CLI, migrations) that a new node must join.
//!
//! # Encoding
//!
//! Binary formats (checkpoints) encode every node by name, like the registry enums: the tuple
//! `(node kind, state version, payload)`, with the kinds `stages`, `protect` and `calibrate` (see
//! [`NODE_KINDS`]; never rename or reuse one). Human-readable formats (JSON, TOML) write a
//! [`PipelineSpec`] as a table: `{transformers, detector}` for a pipeline of stages, `{protect: {rule,
//! model}}` or `{calibrate: {method, model}}` for a wrapper; an
//! [`AnyPipeline`] is written externally tagged (`{"stages": {...}}`), for inspection only. Decoding
//! refuses trees nested deeper than [`MAX_TREE_DEPTH`], so a crafted file cannot exhaust the stack.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use onad_core::{Batch, Detector, ParamError, SchemaRef, Transformer, with_scratch};
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::drift::{DriftReset, OnDrift, SCORE_COLUMN};
use crate::registry::{ByName, by_name_kinds, deserialize_by_name, noted, serialize_by_name};
use crate::threshold::{Calibrated, Calibration, Combine, Ensemble, Guard, Protect, Protected};
use crate::{AnyDetector, AnyDetectorParams, AnyTransformer, AnyTransformerParams};

/// Node kind of a pipeline of registered stages, in binary formats.
const STAGES: &str = "stages";
/// Node kind of a learn-protection wrapper, in binary formats and as the key of its table.
const PROTECT: &str = "protect";
/// Node kind of a calibration wrapper, in binary formats and as the key of its table.
const CALIBRATE: &str = "calibrate";
/// Node kind of an ensemble, in binary formats and as the key of its table.
const ENSEMBLE: &str = "ensemble";
/// Node kind of a drift-reset wrapper, in binary formats and as the key of its table.
const DRIFT: &str = "drift";
/// Layout versions of the node payloads (a node's own fields; the registry values inside carry theirs).
const STAGES_VERSION: u16 = 1;
const PROTECT_VERSION: u16 = 1;
const CALIBRATE_VERSION: u16 = 1;
const ENSEMBLE_VERSION: u16 = 1;
const DRIFT_VERSION: u16 = 1;

/// The node kinds of model trees, as binary formats name them. Checkpoints store these names: a new kind
/// of node gets a new name, and no name is ever renamed or given to another kind.
pub const NODE_KINDS: &[&str] = &[STAGES, PROTECT, CALIBRATE, ENSEMBLE, DRIFT];

/// The deepest tree (in nodes, root included) that decoding accepts.
pub const MAX_TREE_DEPTH: usize = 64;

/// How a model is built: a tree whose leaves are pipelines of registered stages.
///
/// In a config file (TOML) a tree is a table; a pipeline has `transformers` (optional) and a `detector`,
/// a wrapper is one key naming it. Parameters are written as in the registry (`onad models`), the protect
/// rule in its text form ([`Protect`]'s `FromStr`):
///
/// ```
/// use onad_models::{PipelineSpec, Protect};
///
/// let plain: PipelineSpec = toml::from_str(r#"
///     transformers = [{ standard_scaler = {} }]
///     detector = { moving_average = { window_size = 100, key = "f1" } }
/// "#).unwrap();
/// assert_eq!(plain.name(), "standard_scaler|moving_average");
///
/// let protected: PipelineSpec = toml::from_str(r#"
///     [protect]
///     rule = "quantile:0.95:1000"
///
///     [protect.model]
///     transformers = [{ standard_scaler = {} }]
///     detector = { moving_average = { window_size = 100, key = "f1" } }
/// "#).unwrap();
/// assert_eq!(protected.name(), "protect(standard_scaler|moving_average)");
/// assert_eq!(protected, plain.protected("quantile:0.95:1000".parse::<Protect>().unwrap()));
/// ```
///
/// JSON has the same shape: `{"protect": {"rule": "quantile:0.95:1000", "model": {"transformers": [],
/// "detector": {"moving_average": {...}}}}}`. Binary formats encode each node by kind name (see the
/// module documentation of `tree.rs`).
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineSpec {
    /// Transformers in order, then a registered detector (the CLI's `standard_scaler|moving_average`).
    Stages(StagesSpec),
    /// A tree that does not learn the rows it scores as anomalous.
    Protect(ProtectSpec),
    /// A tree whose scores are calibrated against its recent scores.
    Calibrate(CalibrateSpec),
    /// Several trees on the same rows, each calibrated, their scores combined.
    Ensemble(EnsembleSpec),
    /// A tree that starts afresh when a drift detector on its scores signals a change.
    Drift(DriftSpec),
}

/// A pipeline of registered stages: what `--model a|b|c` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagesSpec {
    /// Transformers applied in order (none in a bare detector).
    #[serde(default)]
    pub transformers: Vec<AnyTransformerParams>,
    /// The detector scoring the last transformer's output.
    pub detector: AnyDetectorParams,
}

/// Learn protection around a tree: rows it scores as anomalous under `rule` are not learned by any of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectSpec {
    /// When a row is kept from learning. Its text form (`"quantile:0.95:1000"`, or a number) in
    /// human-readable formats.
    #[serde(with = "rule_form")]
    pub rule: Protect,
    /// The protected tree.
    pub model: Box<PipelineSpec>,
}

/// Calibration around a tree: it scores with the calibrated value of the tree's raw score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrateSpec {
    /// The method and its window. Its text form (`"conformal:1000"`, `"zscore:500"`) in human-readable
    /// formats.
    #[serde(with = "calibration_form")]
    pub method: Calibration,
    /// The calibrated tree.
    pub model: Box<PipelineSpec>,
}

/// An ensemble of trees: each member's score calibrated against its own recent scores, then combined.
///
/// ```
/// use onad_models::PipelineSpec;
/// let spec: PipelineSpec = toml::from_str(r#"
///     [ensemble]
///     combine = "median"
///     members = [
///         { detector = { knn = { k = 10, window_size = 500, warm_up = 10 } } },
///         { detector = { asd_isolation_forest = { seed = 1 } } },
///         { transformers = [{ standard_scaler = {} }], detector = { online_isolation_forest = {} } },
///     ]
/// "#).unwrap();
/// assert_eq!(spec.name(), "ensemble:median(knn, asd_isolation_forest, standard_scaler|online_isolation_forest)");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSpec {
    /// How the calibrated scores are combined (`mean`, `max`, `median`, `mean_rank`); `mean` when left out.
    #[serde(default = "default_combine", with = "combine_form")]
    pub combine: Combine,
    /// How each member's score is calibrated (text form as for `calibrate`); `conformal:1000` when left out.
    #[serde(default = "default_calibration", with = "calibration_form")]
    pub calibration: Calibration,
    /// The members, 1 to 64.
    pub members: Vec<PipelineSpec>,
}

/// A drift detector on a tree's prequential scores; when it signals, the tree is replaced by a fresh one.
///
/// ```
/// use onad_models::PipelineSpec;
/// let spec: PipelineSpec = toml::from_str(r#"
///     [drift]
///     detector = { adwin = {} }
///     on_drift = "rewarm:200"
///     model.detector = { asd_isolation_forest = { seed = 1 } }
/// "#).unwrap();
/// assert_eq!(spec.name(), "drift(asd_isolation_forest)");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftSpec {
    /// The drift detector (`adwin`, `kswin` or `page_hinkley`), reading the tree's scores as its one column.
    pub detector: AnyDetectorParams,
    /// `reset` (default) or `rewarm:N`.
    #[serde(default = "default_on_drift", with = "on_drift_form")]
    pub on_drift: OnDrift,
    /// The watched tree.
    pub model: Box<PipelineSpec>,
}

fn default_on_drift() -> OnDrift {
    OnDrift::Reset
}

fn default_combine() -> Combine {
    Combine::Mean
}

fn default_calibration() -> Calibration {
    Calibration::Conformal { window_size: 1000 }
}

by_name_kinds!(PipelineSpec, "model node", [
    Stages(StagesSpec) => STAGES, STAGES, STAGES_VERSION;
    Protect(ProtectSpec) => PROTECT, PROTECT, PROTECT_VERSION;
    Calibrate(CalibrateSpec) => CALIBRATE, CALIBRATE, CALIBRATE_VERSION;
    Ensemble(EnsembleSpec) => ENSEMBLE, ENSEMBLE, ENSEMBLE_VERSION;
    Drift(DriftSpec) => DRIFT, DRIFT, DRIFT_VERSION;
]);

impl PipelineSpec {
    /// A pipeline of just one detector.
    pub fn detector(detector: AnyDetectorParams) -> Self {
        Self::stages(Vec::new(), detector)
    }

    /// A pipeline of transformers, in order, then a detector.
    pub fn stages(transformers: Vec<AnyTransformerParams>, detector: AnyDetectorParams) -> Self {
        PipelineSpec::Stages(StagesSpec { transformers, detector })
    }

    /// This tree wrapped in learn protection (`--protect`): nothing in it learns a row that `rule` keeps
    /// out. Wrapping a protected tree again nests a second rule around the first.
    pub fn protected(self, rule: Protect) -> Self {
        PipelineSpec::Protect(ProtectSpec { rule, model: Box::new(self) })
    }

    /// This tree's scores calibrated by `method` (`--calibrate`): each raw score relative to the tree's
    /// recent raw scores.
    pub fn calibrated(self, method: Calibration) -> Self {
        PipelineSpec::Calibrate(CalibrateSpec { method, model: Box::new(self) })
    }

    /// Whether the tree's scores are `1 - p` for conformal p-values `p` (a conformal calibrate node at the
    /// root), so that a threshold may be written as a false-alarm rate. An ensemble's combined ranks are
    /// not p-values (the mean or max of p-values is not one); calibrate the ensemble to get them.
    pub fn scores_are_conformal(&self) -> bool {
        matches!(self, PipelineSpec::Calibrate(c) if c.method.is_conformal())
    }

    /// Whether any stage of the tree reads one series at a fixed cadence ([`crate::Describe::SERIES`]), so
    /// a run should keep bad rows' places as missing rows rather than drop them.
    pub fn reads_series(&self) -> bool {
        let series = |name: &str| crate::registry::model_info(name).is_some_and(|m| m.series);
        match self {
            PipelineSpec::Stages(s) => series(s.detector.name()) || s.transformers.iter().any(|t| series(t.name())),
            PipelineSpec::Protect(p) => p.model.reads_series(),
            PipelineSpec::Calibrate(c) => c.model.reads_series(),
            PipelineSpec::Drift(d) => d.model.reads_series(),
            PipelineSpec::Ensemble(e) => e.members.iter().any(PipelineSpec::reads_series),
        }
    }

    /// The column the tree's detectors need in non-decreasing order ([`crate::Describe::ordered_column`]):
    /// the first one any of them names (trees of edge detectors read one time column).
    pub fn ordered_column(&self) -> Option<String> {
        match self {
            PipelineSpec::Stages(s) => s.detector.ordered_column().map(str::to_owned),
            PipelineSpec::Protect(p) => p.model.ordered_column(),
            PipelineSpec::Calibrate(c) => c.model.ordered_column(),
            PipelineSpec::Drift(d) => d.model.ordered_column(),
            PipelineSpec::Ensemble(e) => e.members.iter().find_map(PipelineSpec::ordered_column),
        }
    }

    /// The display name: stage names joined with `|`, each wrapper around what it wraps
    /// (`protect(standard_scaler|moving_average)`). Checkpoints record it as the model kind.
    pub fn name(&self) -> String {
        let mut out = String::new();
        self.write_name(&mut out);
        out
    }

    fn write_name(&self, out: &mut String) {
        match self {
            PipelineSpec::Stages(s) => {
                for t in &s.transformers {
                    out.push_str(t.name());
                    out.push('|');
                }
                out.push_str(s.detector.name());
            }
            PipelineSpec::Protect(p) => {
                out.push_str(PROTECT);
                out.push('(');
                p.model.write_name(out);
                out.push(')');
            }
            PipelineSpec::Calibrate(c) => {
                out.push_str(CALIBRATE);
                out.push('(');
                c.model.write_name(out);
                out.push(')');
            }
            PipelineSpec::Drift(d) => {
                out.push_str(DRIFT);
                out.push('(');
                d.model.write_name(out);
                out.push(')');
            }
            PipelineSpec::Ensemble(e) => {
                out.push_str(ENSEMBLE);
                out.push(':');
                out.push_str(&e.combine.to_string());
                out.push('(');
                for (i, m) in e.members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    m.write_name(out);
                }
                out.push(')');
            }
        }
    }

    /// Builds every node against the schema it reads: each stage against its predecessor's output.
    pub fn build(&self, schema: &SchemaRef) -> Result<AnyPipeline, ParamError> {
        match self {
            PipelineSpec::Stages(s) => {
                let mut current = schema.clone();
                let mut transformers = Vec::with_capacity(s.transformers.len());
                for params in &s.transformers {
                    let t = params.build(&current)?;
                    current = t.output_schema().clone();
                    transformers.push(t);
                }
                Ok(AnyPipeline::Stages(Stages { transformers, detector: s.detector.build(&current)? }))
            }
            PipelineSpec::Protect(p) => {
                let inner = p.model.build(schema)?;
                Ok(AnyPipeline::Protect(Box::new(Protected::new(inner, p.rule.clone())?)))
            }
            PipelineSpec::Calibrate(c) => {
                let inner = c.model.build(schema)?;
                Ok(AnyPipeline::Calibrate(Box::new(Calibrated::new(inner, c.method)?)))
            }
            PipelineSpec::Drift(d) => {
                let one = onad_core::Schema::shared([SCORE_COLUMN]).map_err(|e| ParamError::Schema(e.to_string()))?;
                let detector = d.detector.build(&one)?;
                Ok(AnyPipeline::Drift(Box::new(DriftReset::new((*d.model).clone(), schema, detector, d.on_drift)?)))
            }
            PipelineSpec::Ensemble(e) => {
                let members = e.members.iter().map(|m| m.build(schema)).collect::<Result<Vec<_>, _>>()?;
                Ok(AnyPipeline::Ensemble(Box::new(Ensemble::new(members, e.combine, e.calibration)?)))
            }
        }
    }

    /// The tree of a pipeline as checkpoints before trees held it: stages with an optional rule around
    /// the whole pipeline.
    pub(crate) fn from_flat(
        transformers: Vec<AnyTransformerParams>,
        detector: AnyDetectorParams,
        protect: Option<Protect>,
    ) -> Self {
        let stages = Self::stages(transformers, detector);
        match protect {
            Some(rule) => stages.protected(rule),
            None => stages,
        }
    }
}

impl From<StagesSpec> for PipelineSpec {
    fn from(s: StagesSpec) -> Self {
        PipelineSpec::Stages(s)
    }
}

impl From<ProtectSpec> for PipelineSpec {
    fn from(p: ProtectSpec) -> Self {
        PipelineSpec::Protect(p)
    }
}

impl From<DriftSpec> for PipelineSpec {
    fn from(d: DriftSpec) -> Self {
        PipelineSpec::Drift(d)
    }
}

impl From<EnsembleSpec> for PipelineSpec {
    fn from(e: EnsembleSpec) -> Self {
        PipelineSpec::Ensemble(e)
    }
}

impl From<CalibrateSpec> for PipelineSpec {
    fn from(c: CalibrateSpec) -> Self {
        PipelineSpec::Calibrate(c)
    }
}

impl Serialize for PipelineSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            match self {
                PipelineSpec::Stages(s) => s.serialize(serializer),
                PipelineSpec::Protect(p) => {
                    let mut map = serializer.serialize_map(Some(1))?;
                    map.serialize_entry(PROTECT, p)?;
                    map.end()
                }
                PipelineSpec::Calibrate(c) => {
                    let mut map = serializer.serialize_map(Some(1))?;
                    map.serialize_entry(CALIBRATE, c)?;
                    map.end()
                }
                PipelineSpec::Ensemble(e) => {
                    let mut map = serializer.serialize_map(Some(1))?;
                    map.serialize_entry(ENSEMBLE, e)?;
                    map.end()
                }
                PipelineSpec::Drift(d) => {
                    let mut map = serializer.serialize_map(Some(1))?;
                    map.serialize_entry(DRIFT, d)?;
                    map.end()
                }
            }
        } else {
            match self {
                PipelineSpec::Stages(s) => {
                    serialize_by_name::<Self, _, _>(serializer, STAGES, STAGES, STAGES_VERSION, s)
                }
                PipelineSpec::Protect(p) => {
                    serialize_by_name::<Self, _, _>(serializer, PROTECT, PROTECT, PROTECT_VERSION, p)
                }
                PipelineSpec::Calibrate(c) => {
                    serialize_by_name::<Self, _, _>(serializer, CALIBRATE, CALIBRATE, CALIBRATE_VERSION, c)
                }
                PipelineSpec::Ensemble(e) => {
                    serialize_by_name::<Self, _, _>(serializer, ENSEMBLE, ENSEMBLE, ENSEMBLE_VERSION, e)
                }
                PipelineSpec::Drift(d) => serialize_by_name::<Self, _, _>(serializer, DRIFT, DRIFT, DRIFT_VERSION, d),
            }
        }
    }
}

impl<'de> Deserialize<'de> for PipelineSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let _depth = Nesting::enter::<D::Error, Self>()?;
        if deserializer.is_human_readable() {
            deserializer.deserialize_map(SpecTable)
        } else {
            deserialize_by_name(deserializer)
        }
    }
}

/// The keys a tree's table may have.
const TABLE_KEYS: &[&str] = &["transformers", "detector", PROTECT, CALIBRATE, ENSEMBLE, DRIFT];

/// Reads the table form of a tree: `{transformers, detector}`, `{protect: {rule, model}}` or
/// `{calibrate: {method, model}}`.
struct SpecTable;

impl<'de> Visitor<'de> for SpecTable {
    type Value = PipelineSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a model: a table with a `detector` (and optional `transformers`), or with one wrapper (`protect`, \
             `calibrate`)",
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PipelineSpec, A::Error> {
        let mut transformers: Option<Vec<AnyTransformerParams>> = None;
        let mut detector: Option<AnyDetectorParams> = None;
        let mut wrapper: Option<PipelineSpec> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "transformers" if transformers.is_some() => return Err(de::Error::duplicate_field("transformers")),
                "transformers" => transformers = Some(map.next_value()?),
                "detector" if detector.is_some() => return Err(de::Error::duplicate_field("detector")),
                "detector" => detector = Some(map.next_value()?),
                PROTECT | CALIBRATE | ENSEMBLE | DRIFT if wrapper.is_some() => {
                    return Err(de::Error::custom(
                        "a model table has one wrapper (`protect` or `calibrate`); nest them: the inner one goes in \
                         the outer one's `model`",
                    ));
                }
                PROTECT => wrapper = Some(PipelineSpec::Protect(map.next_value()?)),
                CALIBRATE => wrapper = Some(PipelineSpec::Calibrate(map.next_value()?)),
                ENSEMBLE => wrapper = Some(PipelineSpec::Ensemble(map.next_value()?)),
                DRIFT => wrapper = Some(PipelineSpec::Drift(map.next_value()?)),
                other => return Err(de::Error::unknown_field(other, TABLE_KEYS)),
            }
        }
        match (wrapper, transformers, detector) {
            (Some(w), None, None) => Ok(w),
            (Some(_), _, _) => Err(de::Error::custom(
                "a model table has either `transformers` and `detector` or one wrapper (`protect`, `calibrate`), \
                 not both: the stages of a wrapped model go in the wrapper's `model` (protect.model, calibrate.model)",
            )),
            (None, transformers, Some(detector)) => {
                Ok(PipelineSpec::stages(transformers.unwrap_or_default(), detector))
            }
            (None, _, None) => Err(de::Error::custom(
                "a model needs a `detector` (with optional `transformers` before it), or a wrapper (`protect`, \
                 `calibrate`) around a model",
            )),
        }
    }
}

/// Serde of a protect rule: its text form in human-readable formats, its derived form in binary ones.
mod rule_form {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::threshold::Protect;

    pub fn serialize<S: Serializer>(rule: &Protect, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() { serializer.collect_str(rule) } else { rule.serialize(serializer) }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Protect, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(RuleText)
        } else {
            Protect::deserialize(deserializer)
        }
    }

    struct RuleText;

    impl Visitor<'_> for RuleText {
        type Value = Protect;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a protect rule: a number X or \"quantile:Q[:WINDOW]\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Protect, E> {
            v.parse().map_err(E::custom)
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Protect, E> {
            let rule = Protect::Above { threshold: v };
            rule.validate().map_err(E::custom)?;
            Ok(rule)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Protect, E> {
            self.visit_f64(v as f64)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Protect, E> {
            self.visit_f64(v as f64)
        }
    }
}

/// Serde of a reaction to drift: its text form in human-readable formats, its derived form in binary ones.
mod on_drift_form {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::drift::OnDrift;

    pub fn serialize<S: Serializer>(on: &OnDrift, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() { serializer.collect_str(on) } else { on.serialize(serializer) }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OnDrift, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            OnDrift::deserialize(deserializer)
        }
    }
}

/// Serde of a combination: its name in human-readable formats, its derived form in binary ones.
mod combine_form {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::threshold::Combine;

    pub fn serialize<S: Serializer>(combine: &Combine, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() { serializer.collect_str(combine) } else { combine.serialize(serializer) }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Combine, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            Combine::deserialize(deserializer)
        }
    }
}

/// Serde of a calibration method: its text form in human-readable formats, its derived form in binary
/// ones.
mod calibration_form {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::threshold::Calibration;

    pub fn serialize<S: Serializer>(method: &Calibration, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() { serializer.collect_str(method) } else { method.serialize(serializer) }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Calibration, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            Calibration::deserialize(deserializer)
        }
    }
}

thread_local! {
    /// How deep the tree being decoded on this thread is, at this point.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// One level of a tree being decoded; refuses trees deeper than [`MAX_TREE_DEPTH`].
struct Nesting;

impl Nesting {
    fn enter<E: de::Error, T: ByName>() -> Result<Nesting, E> {
        let depth = DEPTH.get() + 1;
        if depth > MAX_TREE_DEPTH {
            return Err(noted(format!("{}: the model tree is nested more than {MAX_TREE_DEPTH} nodes deep", T::ENUM)));
        }
        DEPTH.set(depth);
        Ok(Nesting)
    }
}

impl Drop for Nesting {
    fn drop(&mut self) {
        DEPTH.set(DEPTH.get() - 1);
    }
}

/// A built [`PipelineSpec`]: the same tree with every node's state, itself a [`Detector`].
///
/// Each call costs one match per node on its way to the stages; nothing is allocated per row (a
/// pipeline's transformers write into stack scratch buffers).
#[derive(Debug, Clone)]
pub enum AnyPipeline {
    /// Transformers and a detector.
    Stages(Stages),
    /// A tree behind a learn-protection guard.
    Protect(Box<Protected<AnyPipeline>>),
    /// A tree whose scores are calibrated.
    Calibrate(Box<Calibrated<AnyPipeline>>),
    /// Calibrated trees whose scores are combined.
    Ensemble(Box<Ensemble<AnyPipeline>>),
    /// A tree replaced on drift.
    Drift(Box<DriftReset>),
}

by_name_kinds!(AnyPipeline, "model node", [
    Stages(Stages) => STAGES, STAGES, STAGES_VERSION;
    Protect(Box<Protected<AnyPipeline>>) => PROTECT, PROTECT, PROTECT_VERSION;
    Calibrate(Box<Calibrated<AnyPipeline>>) => CALIBRATE, CALIBRATE, CALIBRATE_VERSION;
    Ensemble(Box<Ensemble<AnyPipeline>>) => ENSEMBLE, ENSEMBLE, ENSEMBLE_VERSION;
    Drift(Box<DriftReset>) => DRIFT, DRIFT, DRIFT_VERSION;
]);

impl Serialize for AnyPipeline {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            AnyPipeline::Stages(s) => serialize_by_name::<Self, _, _>(serializer, STAGES, STAGES, STAGES_VERSION, s),
            AnyPipeline::Protect(p) => {
                serialize_by_name::<Self, _, _>(serializer, PROTECT, PROTECT, PROTECT_VERSION, p)
            }
            AnyPipeline::Calibrate(c) => {
                serialize_by_name::<Self, _, _>(serializer, CALIBRATE, CALIBRATE, CALIBRATE_VERSION, c)
            }
            AnyPipeline::Ensemble(e) => {
                serialize_by_name::<Self, _, _>(serializer, ENSEMBLE, ENSEMBLE, ENSEMBLE_VERSION, e)
            }
            AnyPipeline::Drift(d) => serialize_by_name::<Self, _, _>(serializer, DRIFT, DRIFT, DRIFT_VERSION, d),
        }
    }
}

impl<'de> Deserialize<'de> for AnyPipeline {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let _depth = Nesting::enter::<D::Error, Self>()?;
        deserialize_by_name(deserializer)
    }
}

impl AnyPipeline {
    /// The display name, as [`PipelineSpec::name`] gives it for the spec this was built from.
    pub fn name(&self) -> String {
        match self {
            AnyPipeline::Stages(s) => {
                let mut names: Vec<&str> = s.transformers.iter().map(AnyTransformer::name).collect();
                names.push(s.detector.name());
                names.join("|")
            }
            AnyPipeline::Protect(p) => format!("{PROTECT}({})", p.inner().name()),
            AnyPipeline::Calibrate(c) => format!("{CALIBRATE}({})", c.inner().name()),
            AnyPipeline::Drift(d) => format!("{DRIFT}({})", d.inner().name()),
            AnyPipeline::Ensemble(e) => {
                let members: Vec<String> = e.members().iter().map(|m| m.inner().name()).collect();
                format!("{ENSEMBLE}:{}({})", e.combine(), members.join(", "))
            }
        }
    }

    /// Rows kept from learning so far, summed over every protect node of the tree; None when it has none.
    pub fn protected_rows(&self) -> Option<u64> {
        match self {
            AnyPipeline::Stages(_) => None,
            AnyPipeline::Protect(p) => Some(p.guard().protected() + p.inner().protected_rows().unwrap_or(0)),
            AnyPipeline::Calibrate(c) => c.inner().protected_rows(),
            AnyPipeline::Ensemble(e) => {
                e.members().iter().filter_map(|m| m.inner().protected_rows()).reduce(|a, b| a + b)
            }
            AnyPipeline::Drift(d) => d.inner().protected_rows(),
        }
    }

    /// Trees replaced on drift so far, summed over every drift node of the tree; None when it has none.
    pub fn drift_resets(&self) -> Option<u64> {
        match self {
            AnyPipeline::Stages(_) => None,
            AnyPipeline::Protect(p) => p.inner().drift_resets(),
            AnyPipeline::Calibrate(c) => c.inner().drift_resets(),
            AnyPipeline::Ensemble(e) => {
                e.members().iter().filter_map(|m| m.inner().drift_resets()).reduce(|a, b| a + b)
            }
            AnyPipeline::Drift(d) => Some(d.resets() + d.inner().drift_resets().unwrap_or(0)),
        }
    }

    /// The model of a pipeline as checkpoints before trees held it (see [`PipelineSpec::from_flat`]).
    pub(crate) fn from_flat(transformers: Vec<AnyTransformer>, detector: AnyDetector, guard: Option<Guard>) -> Self {
        let stages = AnyPipeline::Stages(Stages { transformers, detector });
        match guard {
            Some(guard) => AnyPipeline::Protect(Box::new(Protected::from_parts(stages, guard))),
            None => stages,
        }
    }
}

/// Every call goes to the node: a bare detector's batch methods are its own.
impl Detector for AnyPipeline {
    #[inline]
    fn learn_one(&mut self, x: &[f64]) {
        match self {
            AnyPipeline::Stages(s) => s.learn_one(x),
            AnyPipeline::Protect(p) => p.learn_one(x),
            AnyPipeline::Calibrate(c) => c.learn_one(x),
            AnyPipeline::Ensemble(e) => e.learn_one(x),
            AnyPipeline::Drift(d) => d.learn_one(x),
        }
    }

    #[inline]
    fn score_one(&self, x: &[f64]) -> f64 {
        match self {
            AnyPipeline::Stages(s) => s.score_one(x),
            AnyPipeline::Protect(p) => p.score_one(x),
            AnyPipeline::Calibrate(c) => c.score_one(x),
            AnyPipeline::Ensemble(e) => e.score_one(x),
            AnyPipeline::Drift(d) => d.score_one(x),
        }
    }

    /// An ensemble's score mixes its members', so it explains nothing; every other node explains by the
    /// model it wraps.
    fn explanation_names(&self) -> Vec<String> {
        match self {
            AnyPipeline::Stages(s) => s.explanation_names(),
            AnyPipeline::Protect(p) => p.explanation_names(),
            AnyPipeline::Calibrate(c) => c.explanation_names(),
            AnyPipeline::Ensemble(_) => Vec::new(),
            AnyPipeline::Drift(d) => d.explanation_names(),
        }
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        match self {
            AnyPipeline::Stages(s) => s.explain_one(x, out),
            AnyPipeline::Protect(p) => p.explain_one(x, out),
            AnyPipeline::Calibrate(c) => c.explain_one(x, out),
            AnyPipeline::Ensemble(_) => out.fill(f64::NAN),
            AnyPipeline::Drift(d) => d.explain_one(x, out),
        }
    }

    #[inline]
    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        match self {
            AnyPipeline::Stages(s) => s.score_learn_one(x),
            AnyPipeline::Protect(p) => p.score_learn_one(x),
            AnyPipeline::Calibrate(c) => c.score_learn_one(x),
            AnyPipeline::Ensemble(e) => e.score_learn_one(x),
            AnyPipeline::Drift(d) => d.score_learn_one(x),
        }
    }

    #[inline]
    fn learn_score_one(&mut self, x: &[f64]) -> f64 {
        match self {
            AnyPipeline::Stages(s) => s.learn_score_one(x),
            AnyPipeline::Protect(p) => p.learn_score_one(x),
            AnyPipeline::Calibrate(c) => c.learn_score_one(x),
            AnyPipeline::Ensemble(e) => e.learn_score_one(x),
            AnyPipeline::Drift(d) => d.learn_score_one(x),
        }
    }

    fn learn_many(&mut self, batch: &Batch) {
        match self {
            AnyPipeline::Stages(s) => s.learn_many(batch),
            AnyPipeline::Protect(p) => p.learn_many(batch),
            AnyPipeline::Calibrate(c) => c.learn_many(batch),
            AnyPipeline::Ensemble(e) => e.learn_many(batch),
            AnyPipeline::Drift(d) => d.learn_many(batch),
        }
    }

    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        match self {
            AnyPipeline::Stages(s) => s.score_many(batch, out),
            AnyPipeline::Protect(p) => p.score_many(batch, out),
            AnyPipeline::Calibrate(c) => c.score_many(batch, out),
            AnyPipeline::Ensemble(e) => e.score_many(batch, out),
            AnyPipeline::Drift(d) => d.score_many(batch, out),
        }
    }

    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        match self {
            AnyPipeline::Stages(s) => s.score_learn_many(batch, out),
            AnyPipeline::Protect(p) => p.score_learn_many(batch, out),
            AnyPipeline::Calibrate(c) => c.score_learn_many(batch, out),
            AnyPipeline::Ensemble(e) => e.score_learn_many(batch, out),
            AnyPipeline::Drift(d) => d.score_learn_many(batch, out),
        }
    }

    fn learn_score_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        match self {
            AnyPipeline::Stages(s) => s.learn_score_many(batch, out),
            AnyPipeline::Protect(p) => p.learn_score_many(batch, out),
            AnyPipeline::Calibrate(c) => c.learn_score_many(batch, out),
            AnyPipeline::Ensemble(e) => e.learn_score_many(batch, out),
            AnyPipeline::Drift(d) => d.learn_score_many(batch, out),
        }
    }
}

/// A built [`StagesSpec`]: any number of transformers and a detector, with the semantics of nested
/// `onad_core::Pipeline`s (learn on post-update transforms, score on current ones).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stages {
    transformers: Vec<AnyTransformer>,
    detector: AnyDetector,
}

impl Stages {
    /// The transformers, in order.
    pub fn transformers(&self) -> &[AnyTransformer] {
        &self.transformers
    }

    /// The detector.
    pub fn detector(&self) -> &AnyDetector {
        &self.detector
    }
}

/// Scores `x` through the current state of every stage.
fn score_through(stages: &[AnyTransformer], x: &[f64], detector: &AnyDetector) -> f64 {
    transform_through(stages, x, |y| detector.score_one(y))
}

/// Hands `last` the transform of `x` through every stage by the current state.
fn transform_through<R>(stages: &[AnyTransformer], x: &[f64], last: impl FnOnce(&[f64]) -> R) -> R {
    match stages.split_first() {
        None => last(x),
        Some((first, rest)) => with_scratch(first.output_schema().len(), |buf| {
            first.transform_one(x, buf);
            transform_through(rest, buf, last)
        }),
    }
}

/// Learns `x` through every stage (each learns its input, then passes on its post-update transform) and
/// hands the last stage's output to `last`.
fn learn_through<R>(stages: &mut [AnyTransformer], x: &[f64], last: impl FnOnce(&[f64]) -> R) -> R {
    match stages.split_first_mut() {
        None => last(x),
        Some((first, rest)) => with_scratch(first.output_schema().len(), |buf| {
            first.learn_transform_one(x, buf);
            learn_through(rest, buf, last)
        }),
    }
}

/// A batch of `schema`'s width holding `f(row)` for each row of `batch`, with the same row ids.
fn map_batch(schema: SchemaRef, batch: &Batch, mut f: impl FnMut(&[f64], &mut [f64])) -> Batch {
    let n = schema.len();
    let mut values = vec![0.0; batch.num_rows() * n];
    if n > 0 {
        for (x, out) in batch.rows().zip(values.chunks_exact_mut(n)) {
            f(x, out);
        }
    } else {
        batch.rows().for_each(|x| f(x, &mut []));
    }
    Batch::try_new(schema, values, None, batch.row_ids().to_vec())
        .expect("one output row of the stage's width per input row")
}

/// The batch transformed by the current state of every stage (the batch itself when there is none).
/// Stage by stage over the whole batch equals row by row through all stages: nothing learns.
fn transform_batch<'b>(stages: &[AnyTransformer], batch: &'b Batch) -> Cow<'b, Batch> {
    stages.iter().fold(Cow::Borrowed(batch), |current, t| {
        Cow::Owned(map_batch(t.output_schema().clone(), &current, |x, out| t.transform_one(x, out)))
    })
}

/// Learns the batch through every stage and returns the rows as the detector learns them. Stage by stage
/// equals row by row ([`learn_through`]): a stage's updates depend only on the rows it is given, in order.
fn learn_transform_batch<'b>(stages: &mut [AnyTransformer], batch: &'b Batch) -> Cow<'b, Batch> {
    stages.iter_mut().fold(Cow::Borrowed(batch), |current, t| {
        let schema = t.output_schema().clone();
        Cow::Owned(map_batch(schema, &current, |x, out| t.learn_transform_one(x, out)))
    })
}

/// Scores on the pre-update transforms and learns on the post-update ones, like nested
/// `onad_core::Pipeline`s. The batch methods reach the detector's own batch methods whenever that keeps
/// the row-by-row results: with no transformer all four go straight to it; otherwise `score_many`,
/// `learn_many` and `learn_score_many` hand it the batch as transformed (or learned) through the
/// transformers. `score_learn_one` scores and learns different transforms of the row, so with
/// transformers `score_learn_many` goes row by row.
impl Detector for Stages {
    fn learn_one(&mut self, x: &[f64]) {
        let detector = &mut self.detector;
        learn_through(&mut self.transformers, x, |y| detector.learn_one(y))
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        score_through(&self.transformers, x, &self.detector)
    }

    fn explanation_names(&self) -> Vec<String> {
        self.detector.explanation_names()
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        transform_through(&self.transformers, x, |y| self.detector.explain_one(y, out))
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        if self.transformers.is_empty() {
            return self.detector.score_learn_one(x);
        }
        let s = score_through(&self.transformers, x, &self.detector);
        self.learn_one(x);
        s
    }

    fn learn_score_one(&mut self, x: &[f64]) -> f64 {
        // Learning and the score after it both see the post-update transform.
        let detector = &mut self.detector;
        learn_through(&mut self.transformers, x, |y| detector.learn_score_one(y))
    }

    fn learn_many(&mut self, batch: &Batch) {
        let learned = learn_transform_batch(&mut self.transformers, batch);
        self.detector.learn_many(&learned);
    }

    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        self.detector.score_many(&transform_batch(&self.transformers, batch), out);
    }

    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        if self.transformers.is_empty() {
            self.detector.score_learn_many(batch, out);
        } else {
            out.reserve(batch.num_rows());
            out.extend(batch.rows().map(|x| self.score_learn_one(x)));
        }
    }

    fn learn_score_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        let learned = learn_transform_batch(&mut self.transformers, batch);
        self.detector.learn_score_many(&learned, out);
    }
}

#[cfg(test)]
mod tests {
    use onad_core::Schema;

    use super::*;
    use crate::decode_explained;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn moving_average(window: usize, key: &str) -> AnyDetectorParams {
        let json = format!(r#"{{"moving_average": {{"window_size": {window}, "key": "{key}"}}}}"#);
        serde_json::from_str(&json).unwrap()
    }

    fn scaler() -> AnyTransformerParams {
        AnyTransformerParams::example_for("standard_scaler").unwrap()
    }

    /// `protect(quantile:0.9:50, standard_scaler|moving_average)` on key `a`.
    fn protected_pipeline() -> PipelineSpec {
        PipelineSpec::stages(vec![scaler()], moving_average(3, "a"))
            .protected(Protect::Quantile { quantile: 0.9, window_size: 50 })
    }

    // Written by this build when trees were introduced. A failure here means checkpoints written before the
    // change no longer read: keep the old layout readable (a new state version and a migration), and
    // append new node kinds instead of renaming or reordering.
    const STAGES_SPEC: &str =
        "0673746167657301010f7374616e646172645f7363616c657201010e6d6f76696e675f6176657261676501010301016101";
    const PROTECT_SPEC: &str = concat!(
        "0770726f746563740101cdccccccccccec3f320673746167657301010f7374616e646172645f7363616c657201010e6d6f",
        "76696e675f6176657261676501010301016101",
    );
    const PROTECT_MODEL: &str = concat!(
        "0770726f74656374010673746167657301000e6d6f76696e675f617665726167650100020102000000000000f03f00000000",
        "0000f83f00000000000004400000000000000000f03f00000000000000000000000001",
    );

    #[test]
    fn node_kinds_and_their_bytes_are_pinned() {
        assert_eq!(
            NODE_KINDS,
            ["stages", "protect", "calibrate", "ensemble", "drift"],
            "checkpoints store node kind names: add new kinds at the end, never rename or reuse one"
        );
        let stages = PipelineSpec::stages(vec![scaler()], moving_average(3, "a"));
        assert_eq!(hex(&postcard::to_stdvec(&stages).unwrap()), STAGES_SPEC);
        assert_eq!(hex(&postcard::to_stdvec(&protected_pipeline()).unwrap()), PROTECT_SPEC);

        let spec = PipelineSpec::detector(moving_average(2, "a")).protected(Protect::Above { threshold: 1.0 });
        let mut model = spec.build(&Schema::shared(["a"]).unwrap()).unwrap();
        for x in [1.0, 5.0, 1.5] {
            model.score_learn_one(&[x]);
        }
        assert_eq!(model.protected_rows(), Some(1));
        let bytes = postcard::to_stdvec(&model).unwrap();
        assert_eq!(hex(&bytes), PROTECT_MODEL);
        let back: AnyPipeline = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);

        // The protect rule inside is encoded by variant index (serde's derived form): append-only too.
        for (rule, code) in
            [(Protect::Above { threshold: 2.0 }, 0u8), (Protect::Quantile { quantile: 0.9, window_size: 50 }, 1)]
        {
            let bytes = postcard::to_stdvec(&rule).unwrap();
            assert_eq!(bytes[0], code, "{rule:?}: Protect's variants are encoded by index; add new ones at the end");
        }
    }

    #[test]
    fn names_show_every_node() {
        let plain = PipelineSpec::stages(vec![scaler(), scaler()], moving_average(3, "a"));
        assert_eq!(plain.name(), "standard_scaler|standard_scaler|moving_average");
        let twice =
            plain.clone().protected(Protect::Above { threshold: 1.0 }).protected(Protect::Above { threshold: 2.0 });
        assert_eq!(twice.name(), "protect(protect(standard_scaler|standard_scaler|moving_average))");
        let schema = Schema::shared(["a"]).unwrap();
        assert_eq!(twice.build(&schema).unwrap().name(), twice.name());
        assert_eq!(PipelineSpec::detector(moving_average(3, "a")).build(&schema).unwrap().name(), "moving_average");
    }

    #[test]
    fn protected_rows_add_up_over_every_guard() {
        let schema = Schema::shared(["a"]).unwrap();
        let inner_rule = Protect::Above { threshold: 1.0 };
        let outer_rule = Protect::Above { threshold: 3.0 };
        let spec = PipelineSpec::detector(moving_average(4, "a")).protected(inner_rule).protected(outer_rule);
        let mut model = spec.build(&schema).unwrap();
        assert_eq!(model.protected_rows(), Some(0));
        assert_eq!(PipelineSpec::detector(moving_average(4, "a")).build(&schema).unwrap().protected_rows(), None);
        for i in 0..200 {
            let x = if i % 10 == 9 {
                [100.0]
            } else if i % 10 == 4 {
                [7.0]
            } else {
                [(i % 3) as f64]
            };
            model.score_learn_one(&x);
        }
        let AnyPipeline::Protect(outer) = &model else { panic!("protect at the root") };
        let AnyPipeline::Protect(inner) = outer.inner() else { panic!("protect inside") };
        let (o, i) = (outer.guard().protected(), inner.guard().protected());
        assert!(o > 0 && i > 0, "both guards acted: outer {o}, inner {i}");
        assert_eq!(model.protected_rows(), Some(o + i));
    }

    #[test]
    fn toml_and_json_write_trees_as_tables() {
        let text = r#"
            [model.protect]
            rule = "quantile:0.9:50"

            [model.protect.model]
            transformers = [{ standard_scaler = {} }]
            detector = { moving_average = { window_size = 3, key = "a" } }
        "#;
        #[derive(Deserialize)]
        struct Config {
            model: PipelineSpec,
        }
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(config.model, protected_pipeline());
        // `transformers` may be left out; a number is a rule too.
        let bare: PipelineSpec =
            toml::from_str("[protect]\nrule = 2\nmodel.detector.moving_average = { window_size = 3, key = \"a\" }")
                .unwrap();
        assert_eq!(bare, PipelineSpec::detector(moving_average(3, "a")).protected(Protect::Above { threshold: 2.0 }));

        let json = serde_json::to_value(protected_pipeline()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"protect": {"rule": "quantile:0.9:50", "model": {
                "transformers": [{"standard_scaler": {"with_std": true}}],
                "detector": {"moving_average": {"window_size": 3, "key": "a", "abs_diff": true}},
            }}})
        );
        let nested = protected_pipeline().protected(Protect::Above { threshold: -0.5 });
        assert_eq!(serde_json::from_value::<PipelineSpec>(serde_json::to_value(&nested).unwrap()).unwrap(), nested);
        let back: PipelineSpec = serde_json::from_str(&serde_json::to_string(&nested).unwrap()).unwrap();
        assert_eq!(back, nested);
    }

    #[test]
    fn table_mistakes_are_named() {
        let err = |text: &str| toml::from_str::<PipelineSpec>(text).unwrap_err().to_string();
        let e = err("detector = { moving_average = {} }\n[protect]\nrule = \"1\"\nmodel.detector.null_model = {}");
        assert!(e.contains("not both") && e.contains("protect.model"), "{e}");
        let e = err("transformers = [{ standard_scaler = {} }]");
        assert!(e.contains("a model needs a `detector`"), "{e}");
        let e = err("detectr = { moving_average = {} }");
        assert!(e.contains("unknown field `detectr`") && e.contains("`detector`") && e.contains("`protect`"), "{e}");
        let e = err("[protect]\nrule = \"quantile:2\"\nmodel.detector.null_model = {}");
        assert!(e.contains("the quantile must be in (0, 1)"), "{e}");
        let e = err("[protect]\nrule = \"1\"\nmodle.detector.null_model = {}");
        assert!(e.contains("unknown field `modle`"), "{e}");
        let e = err("[protect]\nmodel.detector.null_model = {}");
        assert!(e.contains("missing field `rule`"), "{e}");
        let e =
            serde_json::from_str::<PipelineSpec>(r#"{"detector": {"null_model": {}}, "detector": {}}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field `detector`"), "{e}");
    }

    #[test]
    fn calibrate_nodes_in_tables_names_and_bytes() {
        let text = r#"
            [calibrate]
            method = "conformal:200"

            [calibrate.model.protect]
            rule = "quantile:0.9:50"

            [calibrate.model.protect.model]
            transformers = [{ standard_scaler = {} }]
            detector = { moving_average = { window_size = 3, key = "a" } }
        "#;
        let spec: PipelineSpec = toml::from_str(text).unwrap();
        let want = protected_pipeline().calibrated(Calibration::Conformal { window_size: 200 });
        assert_eq!(spec, want);
        assert_eq!(spec.name(), "calibrate(protect(standard_scaler|moving_average))");
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["calibrate"]["method"], "conformal:200");
        assert_eq!(serde_json::from_value::<PipelineSpec>(json).unwrap(), want);
        let bytes = postcard::to_stdvec(&spec).unwrap();
        assert_eq!(postcard::from_bytes::<PipelineSpec>(&bytes).unwrap(), want);

        // Built: the output is the calibrated raw score, the guard inside still counts.
        let schema = Schema::shared(["a"]).unwrap();
        let mut model = spec.build(&schema).unwrap();
        let mut raw = protected_pipeline().build(&schema).unwrap();
        let mut calibrator = crate::Calibrator::new(Calibration::Conformal { window_size: 200 }).unwrap();
        for i in 0..500 {
            let x = [if i % 50 == 49 { 40.0 } else { (i % 7) as f64 }];
            let r = raw.score_learn_one(&x);
            assert_eq!(model.score_learn_one(&x), calibrator.calibrate(r), "row {i}");
            calibrator.record(r);
        }
        assert_eq!(model.name(), spec.name());
        assert_eq!(model.protected_rows(), raw.protected_rows());
        assert!(model.protected_rows().unwrap() > 0);
        let back: AnyPipeline = postcard::from_bytes(&postcard::to_stdvec(&model).unwrap()).unwrap();
        assert_eq!(back.score_one(&[40.0]), model.score_one(&[40.0]));

        let err = |text: &str| toml::from_str::<PipelineSpec>(text).unwrap_err().to_string();
        let e = err("[calibrate]\nmethod = \"isotonic\"\nmodel.detector.null_model = {}");
        assert!(e.contains("'isotonic' is not a calibration method") && e.contains("accepted: zscore"), "{e}");
        let e = err(
            "[calibrate]\nmethod = \"zscore\"\nmodel.detector.null_model = {}\n[protect]\nrule = 1\nmodel.detector.null_model = {}",
        );
        assert!(e.contains("one wrapper") && e.contains("nest them"), "{e}");
    }

    #[test]
    fn ensembles_combine_their_calibrated_members() {
        let schema = Schema::shared(["a"]).unwrap();
        let members = vec![PipelineSpec::detector(moving_average(5, "a")), protected_pipeline()];
        let spec = PipelineSpec::Ensemble(EnsembleSpec {
            combine: Combine::Max,
            calibration: Calibration::ZScore { window_size: 100 },
            members: members.clone(),
        });
        assert_eq!(spec.name(), "ensemble:max(moving_average, protect(standard_scaler|moving_average))");
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["ensemble"]["combine"], "max");
        assert_eq!(json["ensemble"]["calibration"], "zscore:100");
        assert_eq!(serde_json::from_value::<PipelineSpec>(json).unwrap(), spec);

        // The combined score is the max of each member calibrated on its own.
        let mut model = spec.build(&schema).unwrap();
        assert_eq!(model.name(), spec.name());
        let mut alone: Vec<Calibrated<AnyPipeline>> = members
            .iter()
            .map(|m| Calibrated::new(m.build(&schema).unwrap(), Calibration::ZScore { window_size: 100 }).unwrap())
            .collect();
        for i in 0..400 {
            let x = [if i % 40 == 39 { 30.0 } else { (i % 5) as f64 }];
            let want = alone.iter_mut().map(|m| m.score_learn_one(&x)).fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(model.score_learn_one(&x), want, "row {i}");
        }
        assert_eq!(model.protected_rows(), alone[1].inner().protected_rows());
        let bytes = postcard::to_stdvec(&model).unwrap();
        let back: AnyPipeline = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);

        // Defaults, and mistakes.
        let bare: PipelineSpec = toml::from_str("[ensemble]\nmembers = [{ detector = { null_model = {} } }]").unwrap();
        let PipelineSpec::Ensemble(e) = &bare else { panic!("{bare:?}") };
        assert_eq!((e.combine, e.calibration), (Combine::Mean, Calibration::Conformal { window_size: 1000 }));
        let e = toml::from_str::<PipelineSpec>("[ensemble]\ncombine = \"vote\"\nmembers = []").unwrap_err();
        assert!(e.to_string().contains("'vote' is not a way to combine scores"), "{e}");
        let empty: PipelineSpec = toml::from_str("[ensemble]\nmembers = []").unwrap();
        assert!(empty.build(&schema).unwrap_err().to_string().contains("1 to 64 members"));
    }

    #[test]
    fn drift_nodes_replace_the_tree_on_a_change() {
        let schema = Schema::shared(["a"]).unwrap();
        let text = r#"
            [drift]
            detector = { page_hinkley = { threshold = 5.0 } }
            on_drift = "rewarm:20"
            model.detector = { moving_average = { window_size = 50, key = "a" } }
        "#;
        let spec: PipelineSpec = toml::from_str(text).unwrap();
        assert_eq!(spec.name(), "drift(moving_average)");
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["drift"]["on_drift"], "rewarm:20");
        assert_eq!(serde_json::from_value::<PipelineSpec>(json).unwrap(), spec);
        let mut model = spec.build(&schema).unwrap();
        assert_eq!(model.drift_resets(), Some(0));
        // A level shift: the scores jump, Page-Hinkley signals, the tree starts again from the last 20 rows.
        let mut scores = Vec::new();
        for i in 0..600 {
            let x = [if i < 300 { (i % 5) as f64 } else { 100.0 + (i % 5) as f64 }];
            scores.push(model.score_learn_one(&x));
        }
        let resets = model.drift_resets().unwrap();
        assert!(resets >= 1, "{resets}");
        // After the reset the model knows only the new level: late scores are small again.
        assert!(scores[599] < 0.1 && scores[300] > 1.0, "{} {}", scores[300], scores[599]);
        let back: AnyPipeline = postcard::from_bytes(&postcard::to_stdvec(&model).unwrap()).unwrap();
        assert_eq!(back.drift_resets(), Some(resets));
        assert_eq!(back.score_one(&[3.0]), model.score_one(&[3.0]));
        // Without drift nodes there is no count.
        assert_eq!(PipelineSpec::detector(moving_average(3, "a")).build(&schema).unwrap().drift_resets(), None);
        // Only drift detectors watch.
        let bad: PipelineSpec =
            toml::from_str("[drift]\ndetector = { null_model = {} }\nmodel.detector = { null_model = {} }").unwrap();
        let e = bad.build(&schema).unwrap_err().to_string();
        assert!(e.contains("'null_model' is not a drift detector"), "{e}");
        let e = toml::from_str::<PipelineSpec>(
            "[drift]\ndetector = { adwin = {} }\non_drift = \"rewarm:0\"\nmodel.detector = { null_model = {} }",
        )
        .unwrap_err();
        assert!(e.to_string().contains("rewarm needs at least one row"), "{e}");
    }

    #[test]
    fn binary_trees_name_unknown_kinds_and_refuse_deep_nesting() {
        let stages = postcard::to_stdvec(&PipelineSpec::detector(moving_average(3, "a"))).unwrap();
        let mut unknown = postcard::to_stdvec(&("drift_reset", 1u16)).unwrap();
        unknown.extend_from_slice(&stages);
        let e = decode_explained(|| postcard::from_bytes::<PipelineSpec>(&unknown)).unwrap_err();
        assert!(
            e.contains("`drift_reset` is not a registered model node")
                && e.contains("stages, protect, calibrate, ensemble, drift"),
            "{e}"
        );
        let mut newer = postcard::to_stdvec(&("stages", 2u16)).unwrap();
        newer.extend_from_slice(&stages[postcard::to_stdvec(&("stages", 1u16)).unwrap().len()..]);
        let e = decode_explained(|| postcard::from_bytes::<PipelineSpec>(&newer)).unwrap_err();
        assert!(e.contains("`stages` was written with state version 2"), "{e}");

        let nest = |depth: usize| {
            (1..depth).fold(PipelineSpec::detector(moving_average(3, "a")), |s, _| {
                s.protected(Protect::Above { threshold: 1.0 })
            })
        };
        let schema = Schema::shared(["a"]).unwrap();
        let deepest = nest(MAX_TREE_DEPTH);
        let bytes = postcard::to_stdvec(&deepest).unwrap();
        assert_eq!(postcard::from_bytes::<PipelineSpec>(&bytes).unwrap(), deepest);
        let model = postcard::to_stdvec(&deepest.build(&schema).unwrap()).unwrap();
        assert!(postcard::from_bytes::<AnyPipeline>(&model).is_ok());

        let too_deep = nest(MAX_TREE_DEPTH + 1);
        let bytes = postcard::to_stdvec(&too_deep).unwrap();
        let e = decode_explained(|| postcard::from_bytes::<PipelineSpec>(&bytes)).unwrap_err();
        assert!(e.contains("nested more than 64 nodes deep"), "{e}");
        let model = postcard::to_stdvec(&too_deep.build(&schema).unwrap()).unwrap();
        let e = decode_explained(|| postcard::from_bytes::<AnyPipeline>(&model)).unwrap_err();
        assert!(e.contains("AnyPipeline: the model tree is nested more than 64"), "{e}");
        // The depth count is back to zero after a failure: a valid tree decodes next.
        assert_eq!(postcard::from_bytes::<PipelineSpec>(&postcard::to_stdvec(&deepest).unwrap()).unwrap(), deepest);
    }
}
