//! Row-major blocks of rows ([`Batch`]) and a dict-like single row ([`Row`]) for docs and tests.

use std::sync::Arc;

use crate::error::CoreError;
use crate::schema::{Schema, SchemaRef};

/// A block of rows sharing one schema: row-major values, optional labels, and the input row id of each
/// row (ids stay stable when a source skips bad rows, so outputs can be joined back to the input). Rows
/// read from a partitioned log also carry where each came from ([`Origins`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    schema: SchemaRef,
    values: Vec<f64>,
    labels: Option<Vec<f64>>,
    row_ids: Vec<u64>,
    origins: Option<Origins>,
}

/// Where each row of a batch sits in a partitioned log (a Kafka topic): the topic and, per row, the
/// partition and offset of its message. Outputs carry it so a consumer can drop repeats after a resume
/// by the input message's own id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins {
    /// The topic.
    pub topic: Arc<str>,
    /// (partition, offset) of each row, in row order.
    pub at: Vec<(i32, i64)>,
}

/// One row's place in a partitioned log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The message offset in the partition.
    pub offset: i64,
}

impl Batch {
    /// Builds a batch; `values.len()` must equal `row_ids.len() * schema.len()`.
    pub fn try_new(
        schema: SchemaRef,
        values: Vec<f64>,
        labels: Option<Vec<f64>>,
        row_ids: Vec<u64>,
    ) -> Result<Self, CoreError> {
        let rows = row_ids.len();
        if values.len() != rows * schema.len() {
            return Err(CoreError::BatchShape { values: values.len(), rows, columns: schema.len() });
        }
        if let Some(labels) = &labels
            && labels.len() != rows
        {
            return Err(CoreError::BatchColumn { what: "labels", rows, len: labels.len() });
        }
        Ok(Batch { schema, values, labels, row_ids, origins: None })
    }

    /// Attaches where each row came from; `origins.at` must have one entry per row.
    pub fn with_origins(mut self, origins: Origins) -> Result<Self, CoreError> {
        if origins.at.len() != self.num_rows() {
            return Err(CoreError::BatchColumn { what: "origins", rows: self.num_rows(), len: origins.at.len() });
        }
        self.origins = Some(origins);
        Ok(self)
    }

    /// Where the rows came from, for rows read from a partitioned log.
    pub fn origins(&self) -> Option<&Origins> {
        self.origins.as_ref()
    }

    /// Where row `i` came from, for rows read from a partitioned log.
    pub fn origin(&self, i: usize) -> Option<Origin<'_>> {
        self.origins.as_ref().map(|o| Origin { topic: &o.topic, partition: o.at[i].0, offset: o.at[i].1 })
    }

    /// A batch of consecutive rows numbered from `first_row_id`.
    pub fn from_rows(
        schema: SchemaRef,
        values: Vec<f64>,
        labels: Option<Vec<f64>>,
        first_row_id: u64,
    ) -> Result<Self, CoreError> {
        let d = schema.len();
        let rows = values.len().checked_div(d).unwrap_or_else(|| labels.as_ref().map_or(0, Vec::len));
        let row_ids = (first_row_id..first_row_id + rows as u64).collect();
        Batch::try_new(schema, values, labels, row_ids)
    }

    /// The schema shared by every row.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.row_ids.len()
    }

    /// True when the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.row_ids.is_empty()
    }

    /// Number of feature columns.
    pub fn num_features(&self) -> usize {
        self.schema.len()
    }

    /// The values of row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let d = self.schema.len();
        &self.values[i * d..(i + 1) * d]
    }

    /// Iterates over the rows as slices.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f64]> + '_ {
        let d = self.schema.len();
        (0..self.num_rows()).map(move |i| &self.values[i * d..(i + 1) * d])
    }

    /// All values, row-major.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Labels, one per row, when the source has a label column (NaN = unknown).
    pub fn labels(&self) -> Option<&[f64]> {
        self.labels.as_deref()
    }

    /// The input row id of each row.
    pub fn row_ids(&self) -> &[u64] {
        &self.row_ids
    }

    /// Takes the buffers apart: values, labels and row ids (origins are dropped).
    pub fn into_parts(self) -> (SchemaRef, Vec<f64>, Option<Vec<f64>>, Vec<u64>) {
        (self.schema, self.values, self.labels, self.row_ids)
    }
}

/// One named row, built like a Python dict. Meant for examples and tests; the hot path uses slices.
///
/// ```
/// use onad_core::Row;
/// let row = Row::from_pairs([("temperature", 21.5), ("pressure", 1.02)]);
/// assert_eq!(row.get("pressure"), Some(1.02));
/// assert_eq!(row.values(), &[21.5, 1.02]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    schema: SchemaRef,
    values: Vec<f64>,
}

impl Row {
    /// Builds a row from `(name, value)` pairs; the order of the pairs is the schema order.
    ///
    /// # Panics
    /// When two pairs share a name (a programming error in a test or example).
    pub fn from_pairs<I, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        let (names, values): (Vec<String>, Vec<f64>) = pairs.into_iter().map(|(k, v)| (k.into(), v)).unzip();
        let schema = Arc::new(Schema::new(names).expect("Row::from_pairs needs unique names"));
        Row { schema, values }
    }

    /// A row over an existing schema; `values` must have one value per column.
    pub fn new(schema: SchemaRef, values: Vec<f64>) -> Result<Self, CoreError> {
        if values.len() != schema.len() {
            return Err(CoreError::BatchShape { values: values.len(), rows: 1, columns: schema.len() });
        }
        Ok(Row { schema, values })
    }

    /// The row's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The values in schema order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The value of a named column.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.schema.index_of(name).map(|i| self.values[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_rows_and_shape_checks() {
        let schema = Schema::shared(["a", "b"]).unwrap();
        let b = Batch::from_rows(schema.clone(), vec![1.0, 2.0, 3.0, 4.0], Some(vec![0.0, 1.0]), 10).unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.row(1), &[3.0, 4.0]);
        assert_eq!(b.row_ids(), &[10, 11]);
        assert_eq!(b.rows().collect::<Vec<_>>(), vec![&[1.0, 2.0][..], &[3.0, 4.0][..]]);
        let bad = Batch::try_new(schema.clone(), vec![1.0], None, vec![0]).unwrap_err();
        assert_eq!(bad, CoreError::BatchShape { values: 1, rows: 1, columns: 2 });
        let bad = Batch::try_new(schema, vec![1.0, 2.0], Some(vec![]), vec![0]).unwrap_err();
        assert!(bad.to_string().contains("labels"));
    }

    #[test]
    fn zero_feature_batches_count_rows() {
        let schema = Schema::shared(Vec::<String>::new()).unwrap();
        let b = Batch::try_new(schema, vec![], None, vec![0, 1, 2]).unwrap();
        assert_eq!(b.rows().count(), 3);
        assert!(b.rows().all(<[f64]>::is_empty));
    }
}
