//! The facade crate: one dependency for library users, re-exporting the workspace's crates; its crate
//! documentation is its README, whose examples run as doctests.
#![doc = include_str!("../README.md")]

pub use onad_core as core;
pub use onad_models as models;
pub use onad_pipeline as pipeline;
pub use onad_sources as sources;

/// What most programs use: the two model traits, the parameter traits, schemas, batches, sources and
/// sinks, the model tree of the registry, the job engine, and opening an input.
pub mod prelude {
    pub use onad_core::{
        BadRowPolicy, Batch, Detector, DetectorParams, Schema, SchemaRef, Sink, Source, Transformer, TransformerParams,
    };
    pub use onad_models::{AnyDetector, AnyDetectorParams, AnyPipeline, PipelineSpec};
    pub use onad_pipeline::sinks::{AlertsOnly, CsvSink, JsonlSink, Target};
    pub use onad_pipeline::{AnyThreshold, Job, JobReport, Order};
    pub use onad_sources::{LabelColumn, SourceOptions, open, open_url};
}
