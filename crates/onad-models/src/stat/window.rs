//! The engine shared by the moving-window statistics: a window of the last `window_size` finite values of
//! one feature, and a [`WindowStatistic`] that keeps running state so a score costs O(1) or O(log w).
//!
//! Every model of the family scores `stat(W ∪ {x}) - stat(W)` (absolute when `abs_diff`), where `W` is the
//! window before `x` is learned; 0.0 while the window is empty.

use std::collections::VecDeque;
use std::fmt::Debug;

use onad_core::{Detector, ParamError, SchemaRef};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{univariate_column, window_size};
use crate::registry::finite_score;

/// Running state of one window statistic.
pub trait WindowStatistic: Clone + Debug + PartialEq + Send + Sync + Serialize + DeserializeOwned {
    /// Whether a value enters the window (NaN and infinities never do; some statistics exclude more).
    fn accepts(&self, v: f64) -> bool {
        v.is_finite()
    }
    /// `v` was appended to the window.
    fn pushed(&mut self, v: f64);
    /// `v`, the oldest value, left the window.
    fn popped(&mut self, v: f64);
    /// `old`, the oldest value, left the window and `new` was appended: the same state as `popped(old)`
    /// then `pushed(new)`, which a statistic may reach faster in one step.
    fn replaced(&mut self, old: f64, new: f64) {
        self.popped(old);
        self.pushed(new);
    }
    /// Recomputes the state exactly from the window (called once per `window_size` learns, and whenever
    /// [`WindowStatistic::drifted`] says rounding could have built up).
    fn resync(&mut self, window: &VecDeque<f64>);
    /// True when the running state should be recomputed before it loses precision.
    fn drifted(&self, _len: usize) -> bool {
        false
    }
    /// `stat(W ∪ {x}) - stat(W)`, for a non-empty window and a non-NaN `x`; `None` when undefined.
    fn delta(&self, window: &VecDeque<f64>, x: f64) -> Option<f64>;
}

/// A moving-window detector over one feature, parameterised by its statistic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: WindowStatistic"))]
pub struct MovingWindow<S> {
    column: usize,
    window_size: usize,
    abs_diff: bool,
    window: VecDeque<f64>,
    stat: S,
    since_resync: usize,
}

impl<S: WindowStatistic> MovingWindow<S> {
    /// Resolves the feature and validates the window size.
    pub(crate) fn build(
        schema: &SchemaRef,
        key: Option<&str>,
        size: Option<usize>,
        abs_diff: bool,
        stat: S,
    ) -> Result<Self, ParamError> {
        let window_size = window_size(size)?;
        Ok(MovingWindow {
            column: univariate_column(key, schema)?,
            window_size,
            abs_diff,
            window: VecDeque::with_capacity(window_size.min(1 << 16)),
            stat,
            since_resync: 0,
        })
    }

    /// The values in the window, oldest first.
    pub fn window(&self) -> &VecDeque<f64> {
        &self.window
    }
}

impl<S: WindowStatistic> Detector for MovingWindow<S> {
    fn learn_one(&mut self, x: &[f64]) {
        let v = x[self.column];
        if !self.stat.accepts(v) {
            return;
        }
        if self.window.len() == self.window_size
            && let Some(old) = self.window.pop_front()
        {
            self.window.push_back(v);
            self.stat.replaced(old, v);
        } else {
            self.window.push_back(v);
            self.stat.pushed(v);
        }
        self.since_resync += 1;
        if self.since_resync >= self.window_size || self.stat.drifted(self.window.len()) {
            self.stat.resync(&self.window);
            self.since_resync = 0;
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let v = x[self.column];
        if self.window.is_empty() || v.is_nan() {
            return 0.0;
        }
        match self.stat.delta(&self.window, v) {
            Some(d) => finite_score(if self.abs_diff { d.abs() } else { d }),
            None => 0.0,
        }
    }
}

/// Declares the parameter struct of a moving-window model: `window_size`, `key`, `abs_diff` plus extras.
macro_rules! window_params {
    (
        $(#[$meta:meta])* $name:ident, $summary:literal, example_window = $ex:literal
        $(, $(#[$fmeta:meta])* $field:ident : $ty:ty = $default:expr, $pname:literal, $pty:literal, $phelp:literal)* $(,)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            /// Number of recent values kept (required).
            pub window_size: Option<usize>,
            /// The feature to read; may be omitted when the input has exactly one feature.
            pub key: Option<String>,
            /// Score the absolute change (true) or the signed change (false).
            pub abs_diff: bool,
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { window_size: None, key: None, abs_diff: true, $( $field: $default, )* }
            }
        }

        impl $crate::registry::Describe for $name {
            const SUMMARY: &'static str = $summary;
            const PARAMS: &'static [onad_core::ParamDoc] = &[
                onad_core::ParamDoc { name: "window_size", ty: "int >= 1", required: true, help: "number of recent values kept" },
                onad_core::ParamDoc { name: "key", ty: "feature name", required: false, help: "feature to read; optional when the input has one feature" },
                onad_core::ParamDoc { name: "abs_diff", ty: "bool", required: false, help: "score the absolute change (else signed)" },
                $( onad_core::ParamDoc { name: $pname, ty: $pty, required: false, help: $phelp }, )*
            ];
            fn example() -> Self {
                $name { window_size: Some($ex), ..Default::default() }
            }
        }
    };
}
pub(crate) use window_params;
