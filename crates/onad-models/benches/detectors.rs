//! Throughput of every registered detector and transformer (score + learn per row, the prequential
//! loop; detectors through `score_learn_many` over batches of 4,096 rows, as the job engine runs them) on the seeded synthetic stream of the Python baselines: 100k rows x 10 features.
//! Univariate models read the first feature. Run through `cargo xtask bench`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use onad_core::{Batch, Detector, ParamError, Schema, SchemaRef, Transformer};
use onad_models::synthetic::drifting_gaussian;
use onad_models::{AnyDetectorParams, AnyTransformerParams, PipelineSpec, REGISTRY, Role};

const ROWS: usize = 100_000;
/// The sources' default batch size (`SourceOptions::batch_size`).
const BATCH_ROWS: usize = 4096;

struct Data {
    full: (SchemaRef, Vec<f64>, usize),
    first: (SchemaRef, Vec<f64>, usize),
}

fn data() -> Data {
    let s = drifting_gaussian(ROWS, 10, 0.01, 42);
    let full_schema = Schema::numbered("f", 10);
    let first_schema = Schema::shared(["f0"]).unwrap();
    let first_col: Vec<f64> = (0..s.rows()).map(|i| s.row(i)[0]).collect();
    Data { full: (full_schema, s.values, 10), first: (first_schema, first_col, 1) }
}

/// The full stream, or its first column when the model takes one feature.
fn pick(data: &Data, build: impl Fn(&SchemaRef) -> Result<(), ParamError>) -> &(SchemaRef, Vec<f64>, usize) {
    match build(&data.full.0) {
        Ok(()) => &data.full,
        Err(ParamError::Schema(_)) => &data.first,
        Err(e) => panic!("bench parameters must build: {e}"),
    }
}

fn bench_detector(c: &mut Criterion, name: &str, spec: &PipelineSpec, data: &Data) {
    let (schema, values, d) = pick(data, |s| spec.build(s).map(drop));
    // Batches of the sources' default size, through `score_learn_many`, as the job engine drives a model
    // (models without a batch override go row by row inside it).
    let rows_per_batch = BATCH_ROWS * d;
    let batches: Vec<Batch> = values
        .chunks(rows_per_batch)
        .enumerate()
        .map(|(k, chunk)| Batch::from_rows(schema.clone(), chunk.to_vec(), None, (k * BATCH_ROWS) as u64).unwrap())
        .collect();
    let mut group = c.benchmark_group("score_learn");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    group.bench_function(name, |b| {
        b.iter_batched(
            || spec.build(schema).unwrap(),
            |mut model| {
                let mut out = Vec::with_capacity(BATCH_ROWS);
                let mut acc = 0.0;
                for batch in &batches {
                    out.clear();
                    model.score_learn_many(batch, &mut out);
                    acc += out[0];
                }
                acc
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_transformer(c: &mut Criterion, name: &str, params: &AnyTransformerParams, data: &Data) {
    let (schema, values, d) = pick(data, |s| params.build(s).map(drop));
    let mut group = c.benchmark_group("learn_transform");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    group.bench_function(name, |b| {
        b.iter_batched(
            || params.build(schema).unwrap(),
            |mut t| {
                let mut out = vec![0.0; t.output_schema().len()];
                let mut acc = 0.0;
                for row in values.chunks_exact(*d) {
                    t.learn_one(row);
                    t.transform_one(row, &mut out);
                    acc += out[0];
                }
                acc
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn registry(c: &mut Criterion) {
    let data = data();
    for info in REGISTRY {
        match info.role {
            Role::Detector => {
                let spec = PipelineSpec::detector(AnyDetectorParams::example_for(info.name).unwrap());
                bench_detector(c, info.name, &spec, &data);
            }
            Role::Transformer => {
                bench_transformer(c, info.name, &AnyTransformerParams::example_for(info.name).unwrap(), &data);
            }
        }
    }
    // The CLI's default pipeline, as the Python `StandardScaler() | MovingAverage(100)`.
    let spec = PipelineSpec::stages(
        vec![serde_json::from_str(r#"{"standard_scaler": {}}"#).unwrap()],
        serde_json::from_str(r#"{"moving_average": {"window_size": 100, "key": "f0"}}"#).unwrap(),
    );
    bench_detector(c, &spec.name(), &spec, &data);
    // Issue 19's speed target: half-space trees at 25 trees of height 15 on 10 features.
    let spec = PipelineSpec::detector(
        serde_json::from_str(r#"{"half_space_trees": {"n_trees": 25, "height": 15, "seed": 42}}"#).unwrap(),
    );
    bench_detector(c, "half_space_trees_25x15", &spec, &data);
}

criterion_group!(benches, registry);
criterion_main!(benches);
