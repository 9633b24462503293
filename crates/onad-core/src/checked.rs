//! A source wrapper that applies one more rule to every row a source yields, under the source's
//! bad-row policy: [`Checked`] with a [`RowRule`]. The sources' own rules (a field that is not a number,
//! an empty row) live in the connectors; rules that need the whole row as numbers, or a run's context,
//! live here once: the per-key runs' "a row of nothing but its key is empty" and the sources' "the time
//! column goes back" are both rules of this one wrapper.

use std::fmt::Debug;

use crate::batch::{Batch, Origins};
use crate::schema::SchemaRef;
use crate::source::{BadRecord, BadRowPolicy, Position, SkipCounts, Source, SourceError};

/// Why a row broke a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The reason key it is counted under.
    pub reason: &'static str,
    /// The column, when one can be named.
    pub column: Option<String>,
    /// For a human.
    pub detail: String,
}

/// A rule every row must keep. `check` sees rows in order and may keep state (the last time seen).
pub trait RowRule: Send + Debug {
    /// `None` if the row keeps the rule, else why not. A row that breaks the rule does not count as seen
    /// for later checks (it is dropped, or becomes a missing row).
    fn check(&mut self, row: &[f64]) -> Option<Broken>;

    /// What a row that broke the rule becomes under [`BadRowPolicy::Missing`]: by default every value
    /// NaN. A rule whose broken rows are already missing where it matters may leave them as they are.
    fn to_missing(&self, row: &mut [f64]) {
        row.fill(f64::NAN);
    }

    /// Called when the source moves to another position: state kept about earlier rows no longer applies.
    fn reset(&mut self) {}
}

/// A source whose rows also go through `rule`, under `policy`: a row that breaks it is dropped and
/// counted (`Skip`), kept as a missing row and counted (`Missing`), or stops the source with an error
/// naming it (`Fail`). Its [`Source::skipped`] counts are the inner source's and its own.
pub struct Checked<R> {
    inner: Box<dyn Source + Send>,
    rule: R,
    policy: BadRowPolicy,
    name: String,
    own: SkipCounts,
    skipped: SkipCounts,
    failed: bool,
}

impl<R: Debug> Debug for Checked<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked").field("rule", &self.rule).field("own", &self.own).finish()
    }
}

impl<R: RowRule> Checked<R> {
    /// Wraps `inner`; `name` names the source in errors.
    pub fn new(inner: Box<dyn Source + Send>, rule: R, policy: BadRowPolicy, name: impl Into<String>) -> Self {
        let skipped = inner.skipped().clone();
        Checked { inner, rule, policy, name: name.into(), own: SkipCounts::default(), skipped, failed: false }
    }

    fn refresh(&mut self) {
        self.skipped = self.inner.skipped().clone();
        self.skipped.merge(&self.own);
    }

    fn filter(&mut self, batch: Batch) -> Result<Batch, SourceError> {
        let broken: Vec<Option<Broken>> = batch.rows().map(|r| self.rule.check(r)).collect();
        if broken.iter().all(Option::is_none) {
            return Ok(batch);
        }
        if self.policy == BadRowPolicy::Fail {
            let i = broken.iter().position(Option::is_some).expect("one row is broken");
            let b = broken.into_iter().nth(i).flatten().expect("row i is broken");
            self.failed = true;
            return Err(SourceError::BadRecord(BadRecord {
                source: self.name.clone(),
                row: batch.row_ids()[i],
                column: b.column,
                reason: b.reason,
                detail: b.detail,
            }));
        }
        let width = batch.schema().len();
        let mut values = Vec::with_capacity(batch.values().len());
        let mut labels = batch.labels().map(|_| Vec::with_capacity(batch.num_rows()));
        let mut ids = Vec::with_capacity(batch.num_rows());
        let mut at = Vec::new();
        for (i, b) in broken.iter().enumerate() {
            if let Some(b) = b {
                self.own.add(b.reason);
                if self.policy == BadRowPolicy::Skip {
                    continue;
                }
            }
            let start = values.len();
            values.extend_from_slice(batch.row(i));
            if b.is_some() {
                self.rule.to_missing(&mut values[start..start + width]);
            }
            if let (Some(l), Some(src)) = (labels.as_mut(), batch.labels()) {
                l.push(src[i]);
            }
            ids.push(batch.row_ids()[i]);
            if let Some(o) = batch.origins() {
                at.push(o.at[i]);
            }
        }
        let shape =
            |e: crate::CoreError| SourceError::Schema { source_name: self.name.clone(), message: e.to_string() };
        let mut out = Batch::try_new(batch.schema().clone(), values, labels, ids).map_err(shape)?;
        if let Some(o) = batch.origins() {
            out = out.with_origins(Origins { topic: o.topic.clone(), at }).map_err(shape)?;
        }
        Ok(out)
    }
}

impl<R: RowRule> Iterator for Checked<R> {
    type Item = Result<Batch, SourceError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let batch = match self.inner.next()? {
                Ok(b) => self.filter(b),
                Err(e) => Err(e),
            };
            self.refresh();
            match batch {
                // A batch whose rows were all dropped is not handed out.
                Ok(b) if b.is_empty() => continue,
                other => return Some(other),
            }
        }
    }
}

impl<R: RowRule> Source for Checked<R> {
    fn schema(&self) -> &SchemaRef {
        self.inner.schema()
    }
    fn has_labels(&self) -> bool {
        self.inner.has_labels()
    }
    fn id_features(&self) -> Vec<usize> {
        self.inner.id_features()
    }
    fn ignored_keys(&self) -> u64 {
        self.inner.ignored_keys()
    }
    fn position(&self) -> Position {
        Source::position(&*self.inner)
    }
    fn fraction_done(&self) -> Option<f64> {
        self.inner.fraction_done()
    }
    fn skipped(&self) -> &SkipCounts {
        &self.skipped
    }
    fn seek(&mut self, position: &Position) -> Result<(), SourceError> {
        self.rule.reset();
        self.inner.seek(position)?;
        self.refresh();
        Ok(())
    }
    fn commit(&mut self) -> Result<(), SourceError> {
        self.inner.commit()
    }
    fn acknowledges_on_next(&self) -> bool {
        self.inner.acknowledges_on_next()
    }
}

/// The rule of a column that must not decrease (a time or a sequence number): a row whose value there is
/// below the largest seen before is a bad row `time_went_back`. A missing (NaN) value keeps the rule and
/// leaves the largest as it was. After a seek the rule starts again from the first row read.
#[derive(Debug, Clone)]
pub struct NonDecreasing {
    column: usize,
    name: String,
    last: Option<f64>,
}

/// The reason key of [`NonDecreasing`].
pub const TIME_WENT_BACK: &str = "time_went_back";

impl NonDecreasing {
    /// The rule over feature `name` of `schema`; `None` if the schema lacks it.
    pub fn new(schema: &crate::Schema, name: &str) -> Option<Self> {
        Some(NonDecreasing { column: schema.index_of(name)?, name: name.to_owned(), last: None })
    }
}

impl RowRule for NonDecreasing {
    fn check(&mut self, row: &[f64]) -> Option<Broken> {
        let v = row[self.column];
        match self.last {
            Some(last) if v < last => Some(Broken {
                reason: TIME_WENT_BACK,
                column: Some(self.name.clone()),
                detail: format!("{v} is before {last}, an earlier row's value: '{}' must not go back", self.name),
            }),
            _ => {
                if !v.is_nan() {
                    self.last = Some(v);
                }
                None
            }
        }
    }

    fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Schema;

    /// A source of fixed batches.
    #[derive(Debug)]
    struct Fixed(SchemaRef, Vec<Batch>, SkipCounts);
    impl Iterator for Fixed {
        type Item = Result<Batch, SourceError>;
        fn next(&mut self) -> Option<Self::Item> {
            (!self.1.is_empty()).then(|| Ok(self.1.remove(0)))
        }
    }
    impl Source for Fixed {
        fn schema(&self) -> &SchemaRef {
            &self.0
        }
        fn has_labels(&self) -> bool {
            false
        }
        fn position(&self) -> Position {
            Position::Start
        }
        fn skipped(&self) -> &SkipCounts {
            &self.2
        }
    }

    fn run(policy: BadRowPolicy) -> (Vec<u64>, Vec<f64>, Result<(), String>, u64) {
        let schema = Schema::shared(["t", "x"]).unwrap();
        let times = [1.0, 2.0, 1.5, f64::NAN, 2.0, 0.5, 3.0];
        let values: Vec<f64> = times.iter().enumerate().flat_map(|(i, &t)| [t, i as f64]).collect();
        let b1 = Batch::try_new(schema.clone(), values[..8].to_vec(), None, vec![0, 1, 2, 3]).unwrap();
        let b2 = Batch::try_new(schema.clone(), values[8..].to_vec(), None, vec![4, 5, 6]).unwrap();
        let inner = Box::new(Fixed(schema.clone(), vec![b1, b2], SkipCounts::default()));
        let rule = NonDecreasing::new(&schema, "t").unwrap();
        let mut src = Checked::new(inner, rule, policy, "in.csv");
        let (mut ids, mut xs, mut end) = (vec![], vec![], Ok(()));
        for b in &mut src {
            match b {
                Ok(b) => {
                    ids.extend_from_slice(b.row_ids());
                    xs.extend(b.rows().map(|r| r[1]));
                }
                Err(e) => end = Err(e.to_string()),
            }
        }
        (ids, xs, end, src.skipped().get(TIME_WENT_BACK))
    }

    #[test]
    fn a_row_going_back_in_time_is_a_bad_row_under_every_policy() {
        let (ids, xs, end, n) = run(BadRowPolicy::Skip);
        assert_eq!((ids, xs, end, n), (vec![0, 1, 3, 4, 6], vec![0.0, 1.0, 3.0, 4.0, 6.0], Ok(()), 2));
        let (ids, xs, _, n) = run(BadRowPolicy::Missing);
        assert_eq!((ids, n), ((0..7).collect(), 2));
        assert!(xs[2].is_nan() && xs[5].is_nan() && xs[6] == 6.0);
        let (ids, _, end, _) = run(BadRowPolicy::Fail);
        assert_eq!(ids, Vec::<u64>::new(), "the first batch holds the bad row, so nothing is handed out");
        let e = end.unwrap_err();
        assert!(e.contains("in.csv: row 2") && e.contains("'t'") && e.contains("1.5 is before 2"), "{e}");
    }
}
