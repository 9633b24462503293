//! `onad worker`: one member of a group of workers on a Kafka topic (the engine is `onad_worker`; this
//! turns flags and a TOML file into its configuration).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::{Args, ValueEnum};
use onad_pipeline::{AnyThreshold, Order};
use onad_sources::{LabelColumn, SourceOptions};
use onad_worker::{
    AlertsOnly, Fanout, Metrics, ModelConfig, StartAt, StreamsConfig, StreamsWorker, Worker, WorkerConfig,
    WorkerOptions, open_output, open_store,
};
use serde::{Deserialize, Serialize};

use crate::Failure;
use crate::run::{DEFAULT_MODEL, as_text, parse_toml};
use crate::spec::{Wrappers, build_wrapped_spec};

/// Where a partition without a snapshot starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// Its first message.
    Earliest,
    /// Messages produced from now on.
    Latest,
}

/// The options of `onad worker` (flags, or keys of the same names in `--config FILE`).
#[derive(Debug, Default, Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WorkerArgs {
    /// Read the options from this TOML file (flags given too override it).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,

    /// Kafka bootstrap servers (HOST:PORT[,HOST:PORT...]).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    brokers: Option<String>,

    /// The input topic: JSON objects, keyed by entity (the message key) for per-key models.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<String>,

    /// Instead of Kafka: Redis Streams at `redis://HOST:PORT` (the streams `--stream NAME`, or
    /// `NAME:0` ... `NAME:{N-1}` with `--shards N`; shards held by leases, the same state protocol).
    #[arg(long, value_name = "URL", conflicts_with_all = ["brokers", "topic"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<String>,

    /// The input stream's name (with --redis): entries `key KEY data JSON`.
    #[arg(long, requires = "redis")]
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<String>,

    /// Number of shard streams (with --redis) [default: 1].
    #[arg(long, value_name = "N", requires = "redis")]
    #[serde(skip_serializing_if = "Option::is_none")]
    shards: Option<u32>,

    /// This worker's consumer name (with --redis) [default: HOSTNAME-PID].
    #[arg(long, requires = "redis")]
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer: Option<String>,

    /// How long a shard's lease lives without renewal, in milliseconds (with --redis) [default: 6000].
    #[arg(long, value_name = "MS", requires = "redis")]
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_ms: Option<u64>,

    /// The consumer group the workers share [default: onad-worker].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,

    /// Where partition snapshots are made durable: a directory (workers on one host) or
    /// `redis://HOST:PORT` (workers on several hosts).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<String>,

    /// Where scored rows go, each with its id (topic, partition, offset): `kafka://HOSTS/TOPIC`,
    /// `redis://HOST:PORT/stream/NAME`, or a JSON Lines file.
    #[arg(long, short)]
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,

    /// Also (or instead) send only the flagged rows here (same forms as --output).
    #[arg(long, value_name = "ADDRESS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    alerts: Option<String>,

    /// The model, as for `onad run` [default: mstream].
    #[arg(long, short)]
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,

    /// Set a model parameter, as for `onad run` (repeatable).
    #[arg(long = "set", value_name = "[PATH.]PARAM=VALUE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sets: Vec<String>,

    /// Anomaly threshold, as for `onad run`; every model has its own [default: adaptive:1000:3].
    #[arg(long)]
    #[serde(default, with = "as_text", skip_serializing_if = "Option::is_none")]
    threshold: Option<AnyThreshold>,

    /// Learn-then-score instead of the prequential score-then-learn.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    learn_then_score: bool,

    /// One model per message key (else one model per partition).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    per_key: bool,

    /// Most live per-key models per partition (the least recently used is dropped).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_keys: Option<usize>,

    /// The label column of the JSON objects (passed through to the output, not to the model).
    #[arg(long, value_name = "COLUMN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,

    /// Read only these columns (comma-separated) as features.
    #[arg(long, value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    columns: Vec<String>,

    /// Leave these columns out (comma-separated).
    #[arg(long, value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exclude: Vec<String>,

    /// Snapshot a partition after this many messages [default: 10000].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_every: Option<u64>,

    /// And at least this often when it changed, in milliseconds [default: 5000].
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_interval_ms: Option<u64>,

    /// Where a partition without a snapshot starts [default: earliest].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<Start>,

    /// Exit non-zero once every broker has been unreachable this long, in milliseconds (default: wait).
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    give_up_ms: Option<u64>,

    /// Stop (snapshot, leave the group) after this long without a message, in milliseconds (default: run
    /// until SIGTERM).
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_when_idle_ms: Option<u64>,

    /// Serve Prometheus metrics on 127.0.0.1:PORT (0: any free port, printed on standard error).
    #[arg(long, value_name = "PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_port: Option<u16>,

    /// A log line with the counters this often, in milliseconds [default: 60000].
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    log_every_ms: Option<u64>,

    /// A librdkafka consumer setting (repeatable), e.g. `session.timeout.ms=6000` (the default), or
    /// `partition.assignment.strategy=cooperative-sticky` for the cooperative rebalance protocol (a
    /// rebalance revokes only the partitions that move)
    #[arg(long = "kafka-setting", value_name = "KEY=VALUE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    kafka_settings: Vec<String>,

    /// More log lines (info level) on standard error.
    #[arg(long, short)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    verbose: bool,
}

impl WorkerArgs {
    /// The file's options with the flags given on top.
    fn over_file(self, file: &std::path::Path) -> anyhow::Result<WorkerArgs> {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read config file {}", file.display()))?;
        let from_file: WorkerArgs = parse_toml(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        let mut merged = serde_json::to_value(&from_file)?;
        if let (Some(m), serde_json::Value::Object(f)) = (merged.as_object_mut(), serde_json::to_value(&self)?) {
            m.extend(f);
        }
        serde_json::from_value(merged).context("cannot merge the config file with the flags")
    }
}

fn required<'a>(v: &'a Option<String>, flag: &str) -> anyhow::Result<&'a str> {
    v.as_deref().ok_or_else(|| anyhow!("onad worker needs --{flag} (or `{flag} = ...` in --config)"))
}

/// The transport and its configuration.
enum Transport {
    Kafka(WorkerConfig),
    Redis(StreamsConfig),
}

/// Checks the options and builds the worker's configuration.
fn configure(args: &WorkerArgs) -> anyhow::Result<Transport> {
    if args.redis.is_some() && (args.brokers.is_some() || args.topic.is_some()) {
        return Err(anyhow!("give either --redis and --stream (Redis Streams) or --brokers and --topic (Kafka)"));
    }
    let spec = build_wrapped_spec(args.model.as_deref().unwrap_or(DEFAULT_MODEL), Wrappers::default(), &args.sets)?;
    let threshold = match &args.threshold {
        Some(t) => t.clone(),
        None => "adaptive:1000:3".parse().expect("the default threshold parses"),
    };
    if args.max_keys == Some(0) {
        return Err(anyhow!("--max-keys must be at least 1"));
    }
    if args.max_keys.is_some() && !args.per_key {
        return Err(anyhow!("--max-keys caps per-key models: add --per-key"));
    }
    let model = ModelConfig {
        spec,
        threshold,
        order: if args.learn_then_score { Order::LearnThenScore } else { Order::ScoreThenLearn },
        per_key: args.per_key,
        max_keys: args.max_keys,
    };
    let group = args.group.as_deref().unwrap_or("onad-worker");
    let source = SourceOptions {
        label: args.label.clone().map_or(LabelColumn::None, LabelColumn::Named),
        columns: (!args.columns.is_empty()).then(|| args.columns.clone()),
        exclude: args.exclude.clone(),
        ..SourceOptions::default()
    };
    if args.snapshot_every == Some(0) {
        return Err(anyhow!("--snapshot-every must be at least 1"));
    }
    let mut options = WorkerOptions::new(group, model);
    options.source = source;
    if let Some(n) = args.snapshot_every {
        options.snapshot_every = n;
    }
    if let Some(ms) = args.snapshot_interval_ms {
        options.snapshot_interval = Duration::from_millis(ms);
    }
    options.give_up = args.give_up_ms.map(Duration::from_millis);
    options.exit_when_idle = args.exit_when_idle_ms.map(Duration::from_millis);
    if let Some(ms) = args.log_every_ms {
        options.log_every = Duration::from_millis(ms.max(1));
    }
    if let Some(url) = &args.redis {
        let stream = required(&args.stream, "stream")?;
        let mut config = StreamsConfig::new(url, stream, options);
        if let Some(n) = args.shards {
            if n == 0 {
                return Err(anyhow!("--shards must be at least 1"));
            }
            config.shards = n;
        }
        if let Some(c) = &args.consumer {
            config.consumer = c.clone();
        }
        if let Some(ms) = args.lease_ms {
            config.lease = Duration::from_millis(ms.max(300));
        }
        return Ok(Transport::Redis(config));
    }
    let brokers = required(&args.brokers, "brokers")?;
    let topic = required(&args.topic, "topic")?;
    let mut config = WorkerConfig::new(brokers, topic, options);
    config.start = match args.start {
        Some(Start::Latest) => StartAt::Latest,
        _ => StartAt::Earliest,
    };
    for s in &args.kafka_settings {
        let (k, v) = s.split_once('=').ok_or_else(|| anyhow!("--kafka-setting {s:?}: expected KEY=VALUE"))?;
        config.kafka.retain(|(key, _)| key != k);
        config.kafka.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(Transport::Kafka(config))
}

/// Runs `onad worker`.
pub fn run(args: WorkerArgs) -> Result<(), Failure> {
    let args = match &args.config {
        Some(file) => {
            let file = file.clone();
            args.over_file(&file).map_err(Failure::Usage)?
        }
        None => args,
    };
    crate::init_logs(args.verbose, false);
    let config = configure(&args).map_err(Failure::Usage)?;
    let store_address = required(&args.store, "store").map_err(Failure::Usage)?;
    if args.output.is_none() && args.alerts.is_none() {
        return Err(Failure::Usage(anyhow!("onad worker needs --output or --alerts (or both)")));
    }
    let prefix = match &config {
        Transport::Kafka(c) => format!("onad:{}:{}", c.options.group, c.topic),
        Transport::Redis(c) => format!("onad:{}:{}", c.options.group, c.stream),
    };
    let store = open_store(store_address, &prefix).map_err(|e| Failure::Run(e.into()))?;
    let mut outputs = Vec::new();
    if let Some(a) = &args.output {
        outputs.push(open_output(a).map_err(|e| Failure::Run(e.into()))?);
    }
    if let Some(a) = &args.alerts {
        outputs.push(Box::new(AlertsOnly(open_output(a).map_err(|e| Failure::Run(e.into()))?)));
    }
    let output: Box<dyn onad_worker::Output> = Box::new(Fanout(outputs));
    let metrics = Arc::new(Metrics::default());
    if let Some(port) = args.metrics_port {
        let addr = onad_worker::metrics::serve(metrics.clone(), port)
            .map_err(|e| Failure::Run(anyhow!("cannot serve metrics on 127.0.0.1:{port}: {e}")))?;
        eprintln!("onad worker: metrics on http://{addr}/metrics");
    }
    let signals = |r: std::io::Result<()>| r.map_err(|e| Failure::Run(anyhow!("cannot install signal handlers: {e}")));
    let report = match config {
        Transport::Kafka(config) => {
            let worker = Worker::new(config, store, output, metrics).map_err(|e| Failure::Run(e.into()))?;
            signals(worker.stop_on_signals())?;
            worker.run()
        }
        Transport::Redis(config) => {
            let worker = StreamsWorker::new(config, store, output, metrics).map_err(|e| Failure::Run(e.into()))?;
            signals(worker.stop_on_signals())?;
            worker.run()
        }
    }
    .map_err(|e| Failure::Run(e.into()))?;
    let summary = serde_json::json!({
        "records_in": report.records_in,
        "records_out": report.records_out,
        "duplicates": report.duplicates,
        "snapshots": report.snapshots,
        "snapshots_fenced": report.fenced,
        "rebalances": report.rebalances,
    });
    println!("{summary}");
    Ok(())
}
