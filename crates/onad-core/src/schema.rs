//! Column names shared by every row of a stream, resolved to indices once when a model is built.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, ParamError};

/// A shared, immutable schema. Cloning is a reference-count bump.
pub type SchemaRef = Arc<Schema>;

/// The ordered, unique names of the feature columns of a stream.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Schema {
    names: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl Schema {
    /// Builds a schema; names must be unique.
    pub fn new<I, S>(names: I) -> Result<Self, CoreError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        let mut index = HashMap::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if index.insert(name.clone(), i).is_some() {
                return Err(CoreError::DuplicateColumn(name.clone()));
            }
        }
        Ok(Schema { names, index })
    }

    /// Convenience: a shared schema from names.
    pub fn shared<I, S>(names: I) -> Result<SchemaRef, CoreError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Schema::new(names).map(Arc::new)
    }

    /// A schema named `prefix0, prefix1, ...` with `n` columns.
    pub fn numbered(prefix: &str, n: usize) -> SchemaRef {
        Arc::new(Schema::new((0..n).map(|i| format!("{prefix}{i}"))).expect("numbered names are unique"))
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the schema has no columns.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Column names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Name of column `i`.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).map(String::as_str)
    }

    /// Index of a column by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Index of a column named by hyperparameter `param`, or an error that lists the columns.
    pub fn resolve(&self, param: &'static str, name: &str) -> Result<usize, ParamError> {
        self.index_of(name).ok_or_else(|| ParamError::UnknownFeature {
            param,
            feature: name.to_owned(),
            available: self.names.join(", "),
        })
    }

    /// The columns a multivariate model reads: those `names` lists (parameter `param`, usually `keys`), or
    /// every feature when it is `None`. An empty list, and a schema without features, are errors.
    pub fn resolve_all(&self, param: &'static str, names: Option<&[String]>) -> Result<Vec<usize>, ParamError> {
        match names {
            Some([]) => Err(ParamError::invalid(param, "needs at least one feature")),
            Some(names) => names.iter().map(|n| self.resolve(param, n)).collect(),
            None if self.is_empty() => Err(ParamError::Schema("the input has no features".into())),
            None => Ok((0..self.len()).collect()),
        }
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schema").field(&self.names).finish()
    }
}

impl TryFrom<Vec<String>> for Schema {
    type Error = CoreError;
    fn try_from(names: Vec<String>) -> Result<Self, Self::Error> {
        Schema::new(names)
    }
}

impl From<Schema> for Vec<String> {
    fn from(schema: Schema) -> Self {
        schema.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_all_takes_named_or_every_feature() {
        let s = Schema::shared(["a", "b", "c"]).unwrap();
        assert_eq!(s.resolve_all("keys", None).unwrap(), [0, 1, 2]);
        assert_eq!(s.resolve_all("keys", Some(&["c".to_string(), "a".to_string()])).unwrap(), [2, 0]);
        assert!(s.resolve_all("keys", Some(&[])).unwrap_err().to_string().contains("at least one feature"));
        assert!(s.resolve_all("keys", Some(&["z".to_string()])).unwrap_err().to_string().contains("'z'"));
        assert!(Schema::numbered("f", 0).resolve_all("keys", None).is_err());
    }

    #[test]
    fn resolves_names_and_rejects_duplicates() {
        let s = Schema::new(["a", "b"]).unwrap();
        assert_eq!(s.index_of("b"), Some(1));
        assert_eq!(s.index_of("c"), None);
        let err = s.resolve("key", "c").unwrap_err().to_string();
        assert!(err.contains("key") && err.contains("'c'") && err.contains("a, b"), "{err}");
        assert!(matches!(Schema::new(["a", "a"]), Err(CoreError::DuplicateColumn(n)) if n == "a"));
    }

    #[test]
    fn serde_round_trip_rebuilds_index() {
        let s = Schema::new(["x", "y"]).unwrap();
        let bytes = postcard::to_stdvec(&s).unwrap();
        let back: Schema = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.index_of("y"), Some(1));
        assert_eq!(back, s);
    }
}
