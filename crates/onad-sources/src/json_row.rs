//! The conversion of one JSON object into a dense row, shared by the JSON Lines and Redis sources: the
//! columns are the first object's keys; numbers become `f64`, `null` NaN, booleans 1 / 0; anything else
//! is a bad row with a stable reason (`invalid_json`, `not_object`, `non_numeric`, `missing_column`,
//! `extra_column`, `duplicate_column`, `invalid_utf8`, and `empty_row` when every feature is null).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use onad_core::{BadRecord, Schema, SchemaRef, SourceError};
use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::options::{KeyPolicy, Role, SourceOptions};

/// Why a row is bad, before it is given its source and row.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) reason: &'static str,
    pub(crate) column: Option<String>,
    pub(crate) detail: String,
}

impl Problem {
    pub(crate) fn new(reason: &'static str, column: Option<String>, detail: String) -> Self {
        Problem { reason, column, detail }
    }
}

/// The columns of a JSON stream and the per-row scratch space to read one object into them. The default
/// has no columns (a placeholder until the first object is read).
#[derive(Debug, Default)]
pub(crate) struct JsonRow {
    /// Input column names (features and label), in the first object's order.
    columns: Vec<String>,
    /// Input column name -> its position in `columns`.
    index: HashMap<String, usize>,
    /// Keys left out by the options: skipped wherever they appear.
    ignored: HashSet<String>,
    label: Option<usize>,
    /// Per input column: whether it is an id column ([`onad_core::id_value`] of its value).
    ids: Vec<bool>,
    /// Per input column: the value parsed from the current object, and whether its key was seen.
    slots: Vec<f64>,
    seen: Vec<bool>,
    /// What one input is called in messages (`line`, `message`).
    noun: &'static str,
    /// Under [`KeyPolicy::Evolving`]: a missing key is a missing value, an unknown key is counted.
    evolving: bool,
    /// Values of unknown keys read past (evolving keys only).
    ignored_keys: u64,
}

impl JsonRow {
    /// Resolves the label among `keys` (the first object's keys) and builds the feature schema; `name`
    /// is the source, for the error.
    pub(crate) fn new(
        name: &str,
        mut keys: Vec<FirstKey>,
        options: &SourceOptions,
        noun: &'static str,
    ) -> Result<(JsonRow, SchemaRef), SourceError> {
        let evolving = options.keys == KeyPolicy::Evolving;
        if evolving {
            // Every feature the options name is a column, present in the first object or not.
            let named = options.columns.iter().flatten().chain(&options.ids);
            let label = match &options.label {
                crate::options::LabelColumn::Named(n) => Some(n),
                _ => None,
            };
            for n in named.chain(label) {
                if !keys.iter().any(|k| k.name == *n) {
                    keys.push(FirstKey { name: n.clone(), numeric: true });
                }
            }
        }
        let names: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
        let roles = options
            .roles(&names, |i| keys[i].numeric)
            .map_err(|message| SourceError::Schema { source_name: name.to_owned(), message })?;
        // Columns left out are neither read nor required: their keys are skipped in every object.
        let ignored = names.iter().zip(&roles).filter(|(_, r)| **r == Role::Skip).map(|(n, _)| n.clone()).collect();
        let kept: Vec<(String, Role)> = names.into_iter().zip(roles).filter(|(_, r)| *r != Role::Skip).collect();
        let label = kept.iter().position(|(_, r)| *r == Role::Label);
        let features = kept.iter().filter(|(_, r)| r.is_feature()).map(|(n, _)| n.clone());
        let ids = kept.iter().map(|(_, r)| *r == Role::Id).collect();
        let schema = Schema::new(features)
            .map(Arc::new)
            .map_err(|e| SourceError::Schema { source_name: name.to_owned(), message: e.to_string() })?;
        let columns: Vec<String> = kept.into_iter().map(|(n, _)| n).collect();
        let row = JsonRow {
            index: columns.iter().enumerate().map(|(i, k)| (k.clone(), i)).collect(),
            ignored,
            slots: vec![f64::NAN; columns.len()],
            seen: vec![false; columns.len()],
            columns,
            label,
            ids,
            noun,
            evolving,
            ignored_keys: 0,
        };
        Ok((row, schema))
    }

    /// The input column of the label, if any.
    /// Whether `name` is one of the input columns (features or label).
    #[cfg_attr(not(any(feature = "redis", feature = "kafka")), allow(dead_code))]
    pub(crate) fn is_column(&self, name: &str) -> bool {
        self.index.contains_key(name) || self.ignored.contains(name)
    }

    /// The features (indices into the schema) that are id columns.
    pub(crate) fn id_features(&self) -> Vec<usize> {
        let features = (0..self.columns.len()).filter(|i| Some(*i) != self.label);
        features.enumerate().filter(|(_, i)| self.ids[*i]).map(|(j, _)| j).collect()
    }

    pub(crate) fn label(&self) -> Option<usize> {
        self.label
    }

    /// Values of keys that are not columns, read past under evolving keys.
    pub(crate) fn ignored_keys(&self) -> u64 {
        self.ignored_keys
    }

    /// Parses `bytes` (one JSON object) as a row: pushes its features onto `values` and sets `label`, or
    /// says why it is a bad row (then `values` is unchanged).
    pub(crate) fn parse(&mut self, bytes: &[u8], values: &mut Vec<f64>, label: &mut f64) -> Result<(), Problem> {
        if std::str::from_utf8(bytes).is_err() {
            return Err(invalid_utf8(self.noun));
        }
        self.slots.fill(f64::NAN);
        self.seen.fill(false);
        let mut problem = None;
        let seed = TopSeed {
            row: RowSink {
                index: &self.index,
                ignored: &self.ignored,
                columns: &self.columns,
                ids: &self.ids,
                slots: &mut self.slots,
                seen: &mut self.seen,
                problem: &mut problem,
                column: None,
                unknown: if self.evolving { Some(0) } else { None },
            },
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let noun = self.noun;
        let (top, unknown) =
            seed.deserialize(&mut de).and_then(|top| de.end().map(|()| top)).map_err(|e| invalid_json(noun, e))?;
        if let Top::Other(kind) = top {
            return Err(Problem::new("not_object", None, format!("expected a JSON object, found {kind}")));
        }
        if let Some(p) = problem {
            return Err(p);
        }
        if let Some(i) = self.seen.iter().position(|s| !s).filter(|_| !self.evolving) {
            return Err(Problem::new(
                "missing_column",
                Some(self.columns[i].clone()),
                format!("the key '{}' is missing", self.columns[i]),
            ));
        }
        let start = values.len();
        for (i, v) in self.slots.iter().enumerate() {
            if Some(i) == self.label {
                *label = *v;
            } else {
                values.push(*v);
            }
        }
        if let Some(detail) = crate::options::empty_row(&values[start..]) {
            values.truncate(start);
            return Err(Problem::new(crate::options::EMPTY_ROW, None, detail));
        }
        // Counted once the row is good: a bad row's keys are part of its bad record.
        self.ignored_keys += unknown;
        Ok(())
    }
}

/// JSON objects into rows one at a time, by the rules every JSON connector follows (columns from the
/// first object and the [`SourceOptions`], numbers as `f64`, `null` NaN, booleans 1 / 0, the same bad-row
/// reasons), for a caller that fetches messages itself: the worker of `onad worker` reads Kafka partitions
/// this way.
#[derive(Debug)]
pub struct JsonObjects {
    row: JsonRow,
    schema: SchemaRef,
    name: String,
}

impl JsonObjects {
    /// Takes the columns from `first` (one JSON object) under `options`; `name` names the input in errors.
    pub fn from_first(name: &str, first: &[u8], options: &SourceOptions) -> Result<Self, SourceError> {
        let keys = first_keys(first, "message").map_err(|p| SourceError::Schema {
            source_name: name.to_owned(),
            message: format!("the first message cannot give the columns: {}", p.detail),
        })?;
        let (row, schema) = JsonRow::new(name, keys, options, "message")?;
        Ok(JsonObjects { row, schema, name: name.to_owned() })
    }

    /// The feature columns.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Whether the objects carry a label column.
    pub fn has_labels(&self) -> bool {
        self.row.label().is_some()
    }

    /// Parses one object: pushes its features onto `values` and returns its label (NaN without one), or
    /// the bad record (named by `row`, which the caller chooses: an offset) with `values` unchanged.
    pub fn parse(&mut self, bytes: &[u8], row: u64, values: &mut Vec<f64>) -> Result<f64, BadRecord> {
        let mut label = f64::NAN;
        match self.row.parse(bytes, values, &mut label) {
            Ok(()) => Ok(label),
            Err(p) => {
                Err(BadRecord { source: self.name.clone(), row, column: p.column, reason: p.reason, detail: p.detail })
            }
        }
    }
}

/// The keys of `bytes` when it is one JSON object in UTF-8, in order, each once; otherwise why it is a
/// bad row.
pub(crate) fn first_keys(bytes: &[u8], noun: &'static str) -> Result<Vec<FirstKey>, Problem> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(invalid_utf8(noun));
    }
    object_keys(bytes, noun)
}

pub(crate) fn invalid_utf8(noun: &str) -> Problem {
    Problem::new("invalid_utf8", None, format!("the {noun} is not valid UTF-8"))
}

fn invalid_json(noun: &str, e: serde_json::Error) -> Problem {
    Problem::new("invalid_json", None, format!("the {noun} is not valid JSON: {e}"))
}

/// The keys of a text that is one JSON object, in order, each once; otherwise why it is bad.
fn object_keys(bytes: &[u8], noun: &str) -> Result<Vec<FirstKey>, Problem> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let keys =
        (&mut de).deserialize_any(KeysVisitor).and_then(|k| de.end().map(|()| k)).map_err(|e| invalid_json(noun, e))?;
    keys.map_err(|kind| Problem::new("not_object", None, format!("expected a JSON object, found {kind}")))
}

/// Collects an object's keys (first occurrence order, no duplicates); anything else gives its kind.
struct KeysVisitor;

impl<'de> Visitor<'de> for KeysVisitor {
    type Value = Result<Vec<FirstKey>, &'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut keys: Vec<FirstKey> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let NumberLike(numeric) = map.next_value()?;
            if !keys.iter().any(|k| k.name == key) {
                keys.push(FirstKey { name: key.into_owned(), numeric });
            }
        }
        Ok(Ok(keys))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain_seq(seq).map(|()| Err("an array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err("null"))
    }
}

/// A key of the first object, and whether its value there could be read as a number (a number, `null`
/// or a boolean; not a string, array or object).
#[derive(Debug, Clone)]
pub(crate) struct FirstKey {
    pub(crate) name: String,
    pub(crate) numeric: bool,
}

/// Whether a JSON value reads as a number; the value itself is skipped.
struct NumberLike(bool);

impl<'de> de::Deserialize<'de> for NumberLike {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumberLikeVisitor)
    }
}

struct NumberLikeVisitor;

impl<'de> Visitor<'de> for NumberLikeVisitor {
    type Value = NumberLike;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<NumberLike, E> {
        Ok(NumberLike(true))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<NumberLike, E> {
        Ok(NumberLike(true))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<NumberLike, E> {
        Ok(NumberLike(true))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<NumberLike, E> {
        Ok(NumberLike(true))
    }

    fn visit_unit<E: de::Error>(self) -> Result<NumberLike, E> {
        Ok(NumberLike(true))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<NumberLike, E> {
        Ok(NumberLike(false))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<NumberLike, A::Error> {
        drain_seq(seq).map(|()| NumberLike(false))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NumberLike, A::Error> {
        drain_map(map).map(|()| NumberLike(false))
    }
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A key, borrowed from the line when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// The top level of a line: an object (read into the row) or something else (its kind).
enum Top {
    Object,
    Other(&'static str),
}

/// Where the values of one line go: a slot per input column, found by key. The first problem (an
/// unknown, repeated or non-numeric key) is recorded and the rest of the line is still parsed, so that
/// a line that is not valid JSON is always `invalid_json`.
struct RowSink<'a> {
    index: &'a HashMap<String, usize>,
    ignored: &'a HashSet<String>,
    columns: &'a [String],
    ids: &'a [bool],
    slots: &'a mut [f64],
    seen: &'a mut [bool],
    problem: &'a mut Option<Problem>,
    /// The key whose value is being read.
    column: Option<usize>,
    /// Under evolving keys, the number of unknown keys read past; `None`: an unknown key is a problem.
    unknown: Option<u64>,
}

impl RowSink<'_> {
    fn flag(&mut self, p: impl FnOnce() -> Problem) {
        if self.problem.is_none() {
            *self.problem = Some(p());
        }
    }

    /// Stores the value of the current key (if it is a known, first-seen key).
    fn put(&mut self, v: f64) {
        if let Some(i) = self.column {
            self.slots[i] = v;
        }
    }

    /// Whether the current key is an id column.
    fn is_id(&self) -> bool {
        self.column.is_some_and(|i| self.ids[i])
    }

    /// Stores an id value, read from a number or a boolean, for the current key.
    fn put_id(&mut self, v: impl std::fmt::Display) {
        self.put(onad_core::id_value_of(v));
    }

    fn non_numeric(&mut self, found: String) {
        if self.is_id() {
            let name = &self.columns[self.column.unwrap_or_default()];
            if self.problem.is_none() {
                let detail = format!("the value of '{name}' is {found}, not an id (a string or a number)");
                *self.problem = Some(Problem::new("bad_id", Some(name.clone()), detail));
            }
            return;
        }
        if let Some(i) = self.column {
            let name = &self.columns[i];
            if self.problem.is_none() {
                let detail = format!("the value of '{name}' is {found}, not a number");
                *self.problem = Some(Problem::new("non_numeric", Some(name.clone()), detail));
            }
        }
    }
}

struct TopSeed<'a> {
    row: RowSink<'a>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    /// The top level, and the unknown keys read past.
    type Value = (Top, u64);

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(Top, u64), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = (Top, u64);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(Top, u64), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match self.row.index.get(key.as_ref()) {
                Some(&i) if self.row.seen[i] => {
                    self.row.flag(|| {
                        Problem::new("duplicate_column", Some(key.to_string()), format!("the key '{key}' is repeated"))
                    });
                    self.row.column = None;
                }
                Some(&i) => {
                    self.row.seen[i] = true;
                    self.row.column = Some(i);
                }
                None if self.row.ignored.contains(key.as_ref()) => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                None if self.row.unknown.is_some() => {
                    self.row.unknown = self.row.unknown.map(|n| n + 1);
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                None => {
                    self.row.flag(|| {
                        Problem::new(
                            "extra_column",
                            Some(key.to_string()),
                            format!("the key '{key}' is not a column of the first object"),
                        )
                    });
                    self.row.column = None;
                }
            }
            map.next_value_seed(ValueSeed(&mut self.row))?;
        }
        Ok((Top::Object, self.row.unknown.unwrap_or(0)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(Top, u64), A::Error> {
        drain_seq(seq).map(|()| (Top::Other("an array"), 0))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(Top, u64), E> {
        Ok((Top::Other("a boolean"), 0))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(Top, u64), E> {
        Ok((Top::Other("a number"), 0))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(Top, u64), E> {
        Ok((Top::Other("a number"), 0))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(Top, u64), E> {
        Ok((Top::Other("a number"), 0))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(Top, u64), E> {
        Ok((Top::Other("a string"), 0))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(Top, u64), E> {
        Ok((Top::Other("null"), 0))
    }
}

/// One value of an object: stored in its slot when it is a number, null or a boolean.
struct ValueSeed<'s, 'a>(&'s mut RowSink<'a>);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if self.0.is_id() {
            self.0.put_id(v)
        } else {
            self.0.put(v)
        }
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        if self.0.is_id() {
            self.0.put_id(v)
        } else {
            self.0.put(v as f64)
        }
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        if self.0.is_id() {
            self.0.put_id(v)
        } else {
            self.0.put(v as f64)
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        if self.0.is_id() {
            self.0.put_id(v)
        } else {
            self.0.put(if v { 1.0 } else { 0.0 })
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.put(f64::NAN);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.0.is_id() {
            self.0.put(onad_core::id_value(v.as_bytes()));
            return Ok(());
        }
        let shown: String = v.chars().take(40).collect();
        self.0.non_numeric(format!("the string '{shown}'"));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.non_numeric("an array".into());
        drain_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.non_numeric("an object".into());
        drain_map(map)
    }
}
