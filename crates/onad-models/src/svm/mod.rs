//! Support-vector detectors: one-class SVMs learned one row at a time.

mod adaptive;
mod gadget;

pub use adaptive::{IncrementalOneClassSVMAdaptiveKernel, IncrementalOneClassSVMAdaptiveKernelParams};
pub use gadget::{GADGETSVM, GADGETSVMParams};
