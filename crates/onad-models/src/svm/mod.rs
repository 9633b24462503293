//! Support-vector detectors: one-class SVMs learned one row at a time.

mod gadget;

pub use gadget::{GADGETSVM, GADGETSVMParams};
