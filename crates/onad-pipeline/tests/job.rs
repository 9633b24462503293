//! The job engine end to end, in process: sinks, checkpoints and resume, the checks a resume makes, the
//! directory lock, per-key runs (error rate, key normalisation, the LRU cap across worker counts).

use std::path::{Path, PathBuf};

use onad_core::{SchemaRef, Scored, Sink, SinkError, SinkLayout, SinkPosition, Source};
use onad_models::{AnyPipeline, PipelineSpec};
use onad_pipeline::job::{CheckpointPolicy, Job, JobError, JobReport, Keyed, Monitor, Status};
use onad_pipeline::sinks::{AlertsOnly, CsvSink, JsonlSink, Target};
use onad_pipeline::{AnyThreshold, FixedThreshold, Order};
use onad_sources::{SourceOptions, open};

/// A CSV of `key,v,label`: 40 keys, each with its own level, a spike every 97 rows (labelled 1).
fn write_input(dir: &Path, rows: usize) -> PathBuf {
    let mut text = String::from("key,v,label\n");
    let mut x = 11u64;
    for i in 0..rows {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let key = (x >> 40) % 40;
        let spike = i % 97 == 13;
        let v = key as f64 * 3.0 + ((x >> 20) % 5) as f64 + if spike { 60.0 } else { 0.0 };
        text.push_str(&format!("{key},{v},{}\n", u8::from(spike)));
    }
    let path = dir.join("input.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn source(path: &Path, batch: usize) -> Box<dyn Source + Send> {
    open(path, SourceOptions { batch_size: batch, ..Default::default() }).unwrap()
}

fn spec(model: &str) -> PipelineSpec {
    let mut detector = onad_models::AnyDetectorParams::default_for(model).unwrap();
    if let onad_models::AnyDetectorParams::MovingAverage(p) = &mut detector {
        p.window_size = Some(20);
        p.key = Some("v".into());
    }
    PipelineSpec::detector(detector)
}

fn job(path: &Path, batch: usize, spec: PipelineSpec) -> Job<PipelineSpec, AnyPipeline> {
    let build = {
        let spec = spec.clone();
        move |schema: &SchemaRef| spec.build(schema).map_err(Into::into)
    };
    Job::new(source(path, batch), spec.clone(), spec.name(), build).threshold(AnyThreshold::Fixed(FixedThreshold(2.0)))
}

/// Stops the run once this many rows are scored (a stand-in for a signal or a memory limit).
#[derive(Debug)]
struct StopAt(u64);

impl Monitor for StopAt {
    fn check(&mut self, status: &Status<'_>) -> Option<String> {
        (status.rows >= self.0).then(|| format!("stop at {}", self.0))
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn a_job_writes_every_sink_and_alerts_only_the_flagged_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), 2_000);
    let (csv, alerts) = (tmp.path().join("scores.csv"), tmp.path().join("alerts.jsonl"));
    let report = job(&input, 128, spec("moving_average"))
        .sink(CsvSink::new(Target::File(csv.clone())))
        .sink(AlertsOnly::new(JsonlSink::new(Target::File(alerts.clone()))))
        .prepare()
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(report.rows, 2_000);
    let scores = read(&csv);
    let mut lines = scores.lines();
    assert_eq!(lines.next(), Some("row,score,anomaly,label"));
    let flagged: Vec<u64> = lines
        .filter(|l| l.split(',').nth(2) == Some("1"))
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(flagged.len() as u64, report.anomalies);
    assert!(report.anomalies > 0, "the spikes are flagged");
    let alert_rows: Vec<u64> = read(&alerts)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["anomaly"], true, "{l}");
            assert_eq!(v["threshold"], 2.0, "{l}");
            assert!(v["score"].as_f64().unwrap() > 2.0, "{l}");
            v["row"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(alert_rows, flagged, "the alerts are exactly the flagged rows, with their row ids");
    // The evaluation covers exactly the rows the sinks got.
    let (mut s, mut l) = (Vec::new(), Vec::new());
    for line in read(&csv).lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        s.push(f[1].parse::<f64>().unwrap());
        l.push(f[3].parse::<f64>().unwrap());
    }
    assert_eq!(report.roc_auc, onad_pipeline::metrics::roc_auc(&s, &l));
    assert!(report.roc_auc.is_some());
}

/// Runs a checkpointed job to the end, or stopped at `stop` rows, writing CSV and JSON Lines.
fn checkpointed(
    input: &Path,
    dir: &Path,
    out: &Path,
    stop: Option<u64>,
    resume: bool,
    keyed: Option<Keyed>,
) -> JobReport {
    let mut j = job(input, 100, spec("moving_average"))
        .sink(CsvSink::new(Target::File(out.join("scores.csv"))))
        .sink(JsonlSink::new(Target::File(out.join("scores.jsonl"))))
        .checkpoints(CheckpointPolicy::new(dir).every_rows(300).resume(resume));
    if let Some(k) = keyed {
        j = j.keyed(k);
    }
    if let Some(n) = stop {
        j = j.monitor(StopAt(n));
    }
    j.prepare().unwrap().run().unwrap()
}

#[test]
fn a_stopped_job_resumes_to_the_same_bytes_even_after_rows_written_past_its_checkpoint() {
    for keyed in [None, Some(Keyed { workers: 2, ..Keyed::by("key") })] {
        let tmp = tempfile::tempdir().unwrap();
        let input = write_input(tmp.path(), 3_000);
        let (full, part) = (tmp.path().join("full"), tmp.path().join("part"));
        std::fs::create_dir_all(&full).unwrap();
        std::fs::create_dir_all(&part).unwrap();
        let uninterrupted = checkpointed(&input, &tmp.path().join("ck-full"), &full, None, false, keyed.clone());
        let ck = tmp.path().join("ck");
        let first = checkpointed(&input, &ck, &part, Some(1_250), false, keyed.clone());
        assert_eq!(first.stop_reason.as_deref(), Some("stop at 1250"));
        // What a killed run leaves: rows written after the last checkpoint. The resume must cut them off.
        for name in ["scores.csv", "scores.jsonl"] {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(part.join(name)).unwrap();
            f.write_all(b"9999,0.5,1,0\n").unwrap();
        }
        let second = checkpointed(&input, &ck, &part, None, true, keyed.clone());
        assert!(second.resumed.is_some());
        assert_eq!(second.rows, 3_000);
        assert_eq!(second.anomalies, uninterrupted.anomalies);
        for name in ["scores.csv", "scores.jsonl"] {
            assert_eq!(read(&part.join(name)), read(&full.join(name)), "{name} differs ({keyed:?})");
        }
    }
}

#[test]
fn a_resume_refuses_another_threshold_order_model_or_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), 1_000);
    let ck = tmp.path().join("ck");
    let out = tmp.path().join("out.csv");
    job(&input, 100, spec("moving_average"))
        .sink(CsvSink::new(Target::File(out.clone())))
        .checkpoints(CheckpointPolicy::new(&ck).every_rows(300))
        .monitor(StopAt(500))
        .prepare()
        .unwrap()
        .run()
        .unwrap();
    let resume = |j: Job<PipelineSpec, AnyPipeline>| j.checkpoints(CheckpointPolicy::new(&ck).resume(true)).prepare();
    let with_out = |j: Job<PipelineSpec, AnyPipeline>| j.sink(CsvSink::new(Target::File(out.clone())));

    let e = resume(with_out(job(&input, 100, spec("moving_average")).threshold("adaptive:100:3".parse().unwrap())))
        .unwrap_err()
        .to_string();
    assert!(e.contains("threshold") && e.contains("adaptive:100:3"), "{e}");
    let e = resume(with_out(job(&input, 100, spec("moving_average")).order(Order::LearnThenScore)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("learn-then-score") && e.contains("score-then-learn"), "{e}");
    let e = resume(with_out(job(&input, 100, spec("moving_median")))).unwrap_err().to_string();
    assert!(e.contains("moving_median") || e.contains("moving_average"), "{e}");
    let e =
        resume(job(&input, 100, spec("moving_average")).sink(CsvSink::new(Target::File(tmp.path().join("other.csv")))))
            .unwrap_err()
            .to_string();
    assert!(e.contains("other.csv") && e.contains("out.csv"), "{e}");
    // Other input columns (here `--columns v`) or no labels: the model was built for other rows.
    let narrow = SourceOptions { batch_size: 100, columns: Some(vec!["v".into()]), ..Default::default() };
    let spec_ma = spec("moving_average");
    let build = {
        let s = spec_ma.clone();
        move |schema: &SchemaRef| s.build(schema).map_err(Into::into)
    };
    let narrowed = Job::new(open(&input, narrow).unwrap(), spec_ma.clone(), spec_ma.name(), build)
        .threshold(AnyThreshold::Fixed(FixedThreshold(2.0)));
    let e = resume(with_out(narrowed)).unwrap_err().to_string();
    assert!(e.contains("columns key, v and labels") && e.contains("columns v and labels"), "{e}");
    // Not resuming over an earlier run's checkpoints is refused too.
    let e = with_out(job(&input, 100, spec("moving_average")))
        .checkpoints(CheckpointPolicy::new(&ck))
        .prepare()
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds checkpoints of an earlier run"), "{e}");
    // The output the checkpoint covers is gone: say what the checkpoint expects.
    std::fs::remove_file(&out).unwrap();
    let e = resume(with_out(job(&input, 100, spec("moving_average")))).unwrap_err().to_string();
    assert!(e.contains("out.csv") && e.contains("does not exist") && e.contains("bytes"), "{e}");
    // With the same settings it resumes, to the output of an uninterrupted run (here the file is
    // restored from that run's first part: what the checkpoint covers).
    let full = tmp.path().join("full.csv");
    job(&input, 100, spec("moving_average"))
        .sink(CsvSink::new(Target::File(full.clone())))
        .prepare()
        .unwrap()
        .run()
        .unwrap();
    let expected = std::fs::read(&full).unwrap();
    std::fs::write(&out, &expected).unwrap();
    let r = resume(with_out(job(&input, 100, spec("moving_average")))).unwrap().run().unwrap();
    assert_eq!(r.rows, 1_000);
    assert_eq!(std::fs::read(&out).unwrap(), expected);
}

#[test]
fn a_checkpoint_directory_in_use_is_refused_with_its_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), 500);
    let ck = tmp.path().join("ck");
    let held = job(&input, 100, spec("moving_average")).checkpoints(CheckpointPolicy::new(&ck)).prepare().unwrap();
    let e = job(&input, 100, spec("moving_average"))
        .checkpoints(CheckpointPolicy::new(&ck).resume(true))
        .prepare()
        .unwrap_err();
    assert!(matches!(e, JobError::Checkpoint(_)), "{e}");
    assert!(e.to_string().contains(&format!("process {}", std::process::id())), "{e}");
    held.run().unwrap();
    // Released at the end of the run.
    job(&input, 100, spec("moving_average")).checkpoints(CheckpointPolicy::new(&ck).resume(true)).prepare().unwrap();
}

/// A scored row as compared here: id, score bits, flag, key bits.
type Row = (u64, u64, bool, Option<u64>);

/// Collects every scored row.
#[derive(Debug, Default, Clone)]
struct Collect(std::sync::Arc<std::sync::Mutex<Vec<Row>>>);

impl Sink for Collect {
    fn open(&mut self, _: &SinkLayout, _: Option<&SinkPosition>) -> Result<(), SinkError> {
        Ok(())
    }
    fn write(&mut self, s: &Scored<'_>) -> Result<(), SinkError> {
        let mut rows = self.0.lock().unwrap();
        rows.extend(s.rows().map(|r| (r.id, r.score.to_bits(), r.flag, r.key.map(f64::to_bits))));
        Ok(())
    }
    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        Ok(SinkPosition::Unrecorded)
    }
    fn describe(&self) -> String {
        "memory".into()
    }
}

fn keyed_run(input: &Path, keyed: Keyed) -> (Vec<Row>, JobReport) {
    let rows = Collect::default();
    let report =
        job(input, 64, spec("moving_average")).keyed(keyed).sink(rows.clone()).prepare().unwrap().run().unwrap();
    let out = rows.0.lock().unwrap().clone();
    (out, report)
}

#[test]
fn the_model_cap_gives_the_same_output_for_any_number_of_workers() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), 5_000);
    let (one, r1) = keyed_run(&input, Keyed { workers: 1, max_keys: Some(7), ..Keyed::by("key") });
    let k1 = r1.keyed.clone().unwrap();
    assert!(k1.evictions > 1_000, "{k1:?}");
    assert_eq!(k1.live_models, 7);
    assert_eq!(k1.models_created, k1.evictions + k1.live_models);
    for workers in [2, 3, 4] {
        let (many, r) = keyed_run(&input, Keyed { workers, max_keys: Some(7), ..Keyed::by("key") });
        assert_eq!(many, one, "{workers} workers give other scores than one under the cap");
        assert_eq!(r.keyed.unwrap(), k1);
    }
    assert!(one.iter().all(|r| r.3.is_some()), "per-key rows carry their key");
}

#[test]
fn keyed_resume_across_worker_counts_under_a_cap_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), 3_000);
    let cap = |workers| Some(Keyed { workers, max_keys: Some(9), ..Keyed::by("key") });
    let (full, part) = (tmp.path().join("full"), tmp.path().join("part"));
    std::fs::create_dir_all(&full).unwrap();
    std::fs::create_dir_all(&part).unwrap();
    checkpointed(&input, &tmp.path().join("ck-full"), &full, None, false, cap(1));
    let ck = tmp.path().join("ck");
    checkpointed(&input, &ck, &part, Some(1_100), false, cap(3));
    checkpointed(&input, &ck, &part, Some(2_000), true, cap(1));
    checkpointed(&input, &ck, &part, None, true, cap(4));
    assert_eq!(read(&part.join("scores.csv")), read(&full.join("scores.csv")));
}

#[test]
fn keyed_runs_apply_the_error_rate_and_take_minus_zero_as_zero() {
    let tmp = tempfile::tempdir().unwrap();
    // Every third row is bad: 33 % against a 10 % limit.
    let mut text = String::from("key,v\n");
    for i in 0..600 {
        text.push_str(&if i % 3 == 0 { format!("{},x\n", i % 5) } else { format!("{},{}\n", i % 5, i % 7) });
    }
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, text).unwrap();
    let opts = SourceOptions { label: onad_sources::LabelColumn::None, batch_size: 50, ..Default::default() };
    let ma = spec("moving_average");
    let build = {
        let ma = ma.clone();
        move |schema: &SchemaRef| ma.build(schema).map_err(Into::into)
    };
    let e = Job::new(open(&bad, opts.clone()).unwrap(), ma.clone(), ma.name(), build)
        .keyed(Keyed::by("key"))
        .max_error_rate(Some(0.1))
        .prepare()
        .unwrap()
        .run()
        .unwrap_err()
        .to_string();
    assert!(e.contains("were bad") && e.contains("non_numeric"), "{e}");

    // 0.0 and -0.0 are one entity: the second row learns from the first.
    let zeros = tmp.path().join("zeros.csv");
    std::fs::write(&zeros, "key,v\n0.0,1\n-0.0,1\n-0,5\n").unwrap();
    let rows = Collect::default();
    let build = {
        let ma = ma.clone();
        move |schema: &SchemaRef| ma.build(schema).map_err(Into::into)
    };
    let report = Job::new(open(&zeros, opts.clone()).unwrap(), ma.clone(), ma.name(), build)
        .keyed(Keyed::by("key"))
        .sink(rows.clone())
        .prepare()
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(report.keyed.unwrap().models_created, 1, "0.0 and -0.0 are two entities");
    assert_eq!(rows.0.lock().unwrap().len(), 3);

    // A key column that is the only column leaves the models nothing: a clear error, not a panic.
    let only = tmp.path().join("only.csv");
    std::fs::write(&only, "id\n1\n2\n").unwrap();
    let build = move |schema: &SchemaRef| ma.build(schema).map_err(Into::into);
    let e = Job::new(open(&only, opts).unwrap(), spec("null_model"), "null_model", build)
        .keyed(Keyed::by("id"))
        .prepare()
        .unwrap_err()
        .to_string();
    assert!(e.contains("'id' is the only column"), "{e}");
}

#[test]
fn protected_rows_of_a_capped_keyed_run_survive_a_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), 4_000);
    let protected = spec("moving_average").protected("1.0".parse().unwrap());
    let run = |ck: &Path, stop: Option<u64>, resume: bool| {
        let keyed = Keyed { workers: 2, max_keys: Some(9), ..Keyed::by("key") };
        let mut j = job(&input, 100, protected.clone())
            .keyed(keyed)
            .protected_rows(|m: &AnyPipeline| m.protected_rows())
            .checkpoints(CheckpointPolicy::new(ck).every_rows(500).resume(resume));
        if let Some(n) = stop {
            j = j.monitor(StopAt(n));
        }
        j.prepare().unwrap().run().unwrap()
    };
    let full = run(&tmp.path().join("full"), None, false);
    let evicted = full.keyed.as_ref().unwrap().evictions;
    assert!(evicted > 100, "the cap evicts: {evicted}");
    let total = full.protected_rows.unwrap();
    assert!(total > 0);
    let ck = tmp.path().join("ck");
    run(&ck, Some(2_100), false);
    let resumed = run(&ck, None, true);
    assert_eq!(resumed.protected_rows, Some(total), "evicted models' protected rows are carried by the checkpoint");
}

/// A broker-like source over a CSV: asking for a batch acknowledges the previous one. It records, at each
/// request, rows yielded so far and rows the sink had made durable (synced) by then.
struct Acking {
    inner: Box<dyn Source + Send>,
    yielded: usize,
    durable: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    at_request: std::sync::Arc<std::sync::Mutex<Vec<(usize, usize)>>>,
}

impl Iterator for Acking {
    type Item = Result<onad_core::Batch, onad_core::SourceError>;
    fn next(&mut self) -> Option<Self::Item> {
        let durable = self.durable.load(std::sync::atomic::Ordering::SeqCst);
        self.at_request.lock().unwrap().push((self.yielded, durable));
        let b = self.inner.next();
        if let Some(Ok(b)) = &b {
            self.yielded += b.num_rows();
        }
        b
    }
}

impl std::fmt::Debug for Acking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acking").field("yielded", &self.yielded).finish()
    }
}

impl Source for Acking {
    fn schema(&self) -> &SchemaRef {
        self.inner.schema()
    }
    fn has_labels(&self) -> bool {
        self.inner.has_labels()
    }
    fn position(&self) -> onad_core::Position {
        Source::position(&*self.inner)
    }
    fn skipped(&self) -> &onad_core::SkipCounts {
        self.inner.skipped()
    }
    fn acknowledges_on_next(&self) -> bool {
        true
    }
}

/// Counts rows written, and at each sync publishes the count as durable.
#[derive(Debug)]
struct Durable {
    written: usize,
    durable: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Sink for Durable {
    fn open(&mut self, _: &SinkLayout, _: Option<&SinkPosition>) -> Result<(), SinkError> {
        Ok(())
    }
    fn write(&mut self, s: &Scored<'_>) -> Result<(), SinkError> {
        self.written += s.len();
        Ok(())
    }
    fn sync(&mut self) -> Result<SinkPosition, SinkError> {
        self.durable.store(self.written, std::sync::atomic::Ordering::SeqCst);
        Ok(SinkPosition::Unrecorded)
    }
    fn describe(&self) -> String {
        "durable".into()
    }
}

#[test]
fn over_a_broker_every_batch_is_durable_in_the_sinks_before_it_is_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_input(tmp.path(), 2_000);
    for keyed in [None, Some(Keyed { workers: 2, ..Keyed::by("key") })] {
        let durable = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let at_request = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let src =
            Acking { inner: source(&input, 150), yielded: 0, durable: durable.clone(), at_request: at_request.clone() };
        let s = spec("moving_average");
        let build = {
            let s = s.clone();
            move |schema: &SchemaRef| s.build(schema).map_err(Into::into)
        };
        let mut j = Job::new(Box::new(src), s.clone(), s.name(), build).sink(Durable { written: 0, durable });
        if let Some(k) = keyed.clone() {
            j = j.keyed(k);
        }
        j.prepare().unwrap().run().unwrap();
        let requests = at_request.lock().unwrap().clone();
        assert_eq!(requests.len(), 15, "{keyed:?}");
        for (yielded, durable) in requests {
            assert_eq!(yielded, durable, "{keyed:?}: a batch was acknowledged before the sinks made it durable");
        }
    }
}

#[test]
fn a_keyed_row_with_nothing_but_its_key_is_an_empty_row() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("keys.csv");
    std::fs::write(&path, "key,v,w\n1,,\n1,2,\n2,,NaN\n2,3,4\n").unwrap();
    let run = |policy: onad_core::BadRowPolicy| {
        let opts = SourceOptions { label: onad_sources::LabelColumn::None, bad_rows: policy, ..Default::default() };
        let s = spec("moving_average");
        let build = {
            let s = s.clone();
            move |schema: &SchemaRef| s.build(schema).map_err(Into::into)
        };
        let rows = Collect::default();
        let report = Job::new(open(&path, opts).unwrap(), s.clone(), s.name(), build)
            .keyed(Keyed::by("key"))
            .bad_rows(policy)
            .sink(rows.clone())
            .prepare()
            .unwrap()
            .run();
        (report, rows)
    };
    let (report, rows) = run(onad_core::BadRowPolicy::Skip);
    let report = report.unwrap();
    assert_eq!((report.rows, report.skipped.get("empty_row")), (2, 2));
    assert_eq!(rows.0.lock().unwrap().iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3], "rows 0 and 2 are skipped");
    let e = run(onad_core::BadRowPolicy::Fail).0.unwrap_err().to_string();
    assert!(e.contains("row 0") && e.contains("empty_row"), "{e}");
    // Missing: the rows stay, as missing rows of their keys, and are counted.
    let (report, rows) = run(onad_core::BadRowPolicy::Missing);
    assert_eq!(report.unwrap().skipped.get("empty_row"), 2);
    assert_eq!(rows.0.lock().unwrap().iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
}

/// Scores a row by its distance to the previous row's value and explains the score by that value.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Previous {
    last: Option<f64>,
}

impl onad_core::Detector for Previous {
    fn learn_one(&mut self, x: &[f64]) {
        self.last = Some(x[1]);
    }
    fn score_one(&self, x: &[f64]) -> f64 {
        self.last.map_or(0.0, |l| (x[1] - l).abs())
    }
    fn explanation_names(&self) -> Vec<String> {
        vec!["previous".into(), "why, \"quoted\"".into()]
    }
    fn explain_one(&self, _x: &[f64], out: &mut [f64]) {
        out[0] = self.last.unwrap_or(f64::NAN);
        out[1] = 1.0;
    }
}

#[test]
fn explanations_reach_every_line_sink_from_the_state_that_gave_the_score() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("in.csv");
    std::fs::write(&path, "key,v,label\n0,1,0\n0,4,0\n0,2,1\n").unwrap();
    let (csv, jsonl, alerts) = (tmp.path().join("o.csv"), tmp.path().join("o.jsonl"), tmp.path().join("a.csv"));
    let run = |explain: bool, order: Order| {
        let build = |_: &SchemaRef| Ok(Previous::default());
        Job::new(source(&path, 2), "previous".to_owned(), "previous", build)
            .threshold(AnyThreshold::Fixed(FixedThreshold(2.5)))
            .order(order)
            .explain(explain)
            .sink(CsvSink::new(Target::File(csv.clone())))
            .sink(JsonlSink::new(Target::File(jsonl.clone())))
            .sink(AlertsOnly::new(CsvSink::new(Target::File(alerts.clone()))))
            .prepare()
            .unwrap()
            .run()
            .unwrap()
    };
    run(true, Order::ScoreThenLearn);
    assert_eq!(
        read(&csv),
        "row,score,anomaly,label,previous,\"why, \"\"quoted\"\"\"\n0,0,0,0,,1\n1,3,1,0,1,1\n2,2,0,1,4,1\n"
    );
    let lines: Vec<String> = read(&jsonl).lines().map(str::to_owned).collect();
    assert!(lines[0].ends_with(",\"explain\":{\"previous\":null,\"why, \\\"quoted\\\"\":1.0}}"), "{}", lines[0]);
    assert!(lines[1].contains("\"explain\":{\"previous\":1.0,"), "{}", lines[1]);
    assert_eq!(read(&alerts).lines().nth(1), Some("1,3,1,0,1,1"), "alerts carry their rows' explanations");
    // Learn-then-score explains by the state after learning the row, as it scores.
    run(true, Order::LearnThenScore);
    assert_eq!(read(&csv).lines().nth(2), Some("1,0,0,0,4,1"));
    // Without --explain the output has no extra columns and the same scores.
    run(false, Order::ScoreThenLearn);
    assert_eq!(read(&csv), "row,score,anomaly,label\n0,0,0,0\n1,3,1,0\n2,2,0,1\n");
}
