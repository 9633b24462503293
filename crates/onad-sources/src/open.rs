//! Opens a source by file extension ([`open`]), by an explicit format ([`open_as`]), from any reader or
//! standard input ([`open_reader`], [`open_stdin`]), or by a path or URL ([`open_url`]), with a clear error
//! when the connector was not compiled in.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use onad_core::{Batch, Position, SchemaRef, SkipCounts, Source, SourceError};

use crate::options::SourceOptions;
use crate::url::{self, Params, Secret, percent_decode, split_scheme};

/// The input formats: those [`open`] recognises by extension, and those [`open_as`], [`open_reader`] and
/// [`open_stdin`] take by name.
///
/// ```
/// use onad_sources::Format;
/// assert_eq!("ndjson".parse::<Format>().unwrap(), Format::Jsonl);
/// assert_eq!(Format::Tsv.to_string(), "tsv");
/// assert!("xlsx".parse::<Format>().unwrap_err().to_string().contains("csv, tsv, jsonl, ndjson, parquet"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values: `.csv`, `.txt`.
    Csv,
    /// Tab-separated values: `.tsv`.
    Tsv,
    /// `.parquet`, `.pq`.
    Parquet,
    /// `.jsonl`, `.ndjson` (JSON Lines).
    Jsonl,
    /// `.db`, `.sqlite`, `.sqlite3`: a SQLite database, which needs a query (see [`open_url`]); not a
    /// format a stream can be read in, so [`FromStr`] does not accept it.
    Sqlite,
}

/// The names [`Format`]'s [`FromStr`] accepts.
const FORMAT_NAMES: &str = "csv, tsv, jsonl, ndjson, parquet";

impl Format {
    /// Guesses the format from a path's extension.
    pub fn from_path(path: &Path) -> Result<Format, SourceError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "txt" => Ok(Format::Csv),
            "tsv" => Ok(Format::Tsv),
            "parquet" | "pq" => Ok(Format::Parquet),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "db" | "sqlite" | "sqlite3" => Ok(Format::Sqlite),
            _ => Err(SourceError::Unsupported(format!(
                "{}: unknown file type '{ext}' (expected .csv, .tsv, .parquet, .jsonl, .ndjson, or a SQLite \
                 database .db, .sqlite, .sqlite3; or name the format: {FORMAT_NAMES})",
                path.display()
            ))),
        }
    }

    /// The connector (and cargo feature) that reads this format.
    pub fn connector(self) -> &'static str {
        match self {
            Format::Csv | Format::Tsv => "csv",
            Format::Parquet => "parquet",
            Format::Jsonl => "jsonl",
            Format::Sqlite => "sqlite",
        }
    }
}

impl FromStr for Format {
    type Err = SourceError;

    /// `csv`, `tsv`, `jsonl` or `ndjson` (the same), `parquet`; letter case and surrounding spaces are
    /// ignored.
    fn from_str(text: &str) -> Result<Format, SourceError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "tsv" => Ok(Format::Tsv),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "parquet" => Ok(Format::Parquet),
            "sqlite" => Err(SourceError::Unsupported(format!(
                "a SQLite database is not a stream format: open it as sqlite://PATH?query=SELECT... (formats: \
                 {FORMAT_NAMES})"
            ))),
            other => Err(SourceError::Unsupported(format!("unknown format '{other}' (accepted: {FORMAT_NAMES})"))),
        }
    }
}

impl fmt::Display for Format {
    /// The format's name: `csv`, `tsv`, `jsonl`, `parquet`, `sqlite`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Parquet => "parquet",
            Format::Jsonl => "jsonl",
            Format::Sqlite => "sqlite",
        })
    }
}

#[cfg_attr(all(feature = "csv", feature = "parquet", feature = "jsonl", feature = "sqlite"), allow(dead_code))]
fn not_compiled(format: Format) -> SourceError {
    SourceError::NotCompiled { connector: format.connector().into(), feature: format.connector().into() }
}

/// Opens a file as a source, choosing the connector from its extension (see [`Format::from_path`]; a
/// file whose extension is missing or unknown opens with [`open_as`]). A SQLite database needs a query,
/// so for one this points to [`open_url`].
pub fn open(path: &Path, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    if !path.exists() {
        return Err(SourceError::Io {
            source_name: path.display().to_string(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    open_as(path, Format::from_path(path)?, options)
}

/// Opens a file as a source in the given format, whatever its extension (`data.log` read as CSV, a
/// `.txt` of tab-separated values).
pub fn open_as(path: &Path, format: Format, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    let (order, policy) = (options.ordered_by.clone(), options.bad_rows);
    let source = open_connector(path, format, options)?;
    crate::options::with_order_rule(source, order.as_deref(), policy, &path.display().to_string())
}

/// The connector's source for a file, before the options' row rules.
fn open_connector(path: &Path, format: Format, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    match format {
        #[cfg(feature = "csv")]
        Format::Csv | Format::Tsv => {
            let delimiter = if format == Format::Tsv { b'\t' } else { b',' };
            let csv_options = crate::CsvOptions { base: options, delimiter, ..Default::default() };
            Ok(Box::new(crate::CsvSource::open(path, csv_options)?))
        }
        #[cfg(feature = "parquet")]
        Format::Parquet => Ok(Box::new(crate::ParquetSource::open(path, options)?)),
        #[cfg(feature = "jsonl")]
        Format::Jsonl => {
            Ok(Box::new(crate::JsonlSource::open(path, crate::JsonlOptions { base: options, ..Default::default() })?))
        }
        #[cfg(feature = "sqlite")]
        Format::Sqlite => {
            let _ = options;
            Err(SourceError::Unsupported(format!(
                "{}: a SQLite database needs a query: open it as sqlite://{}?query=SELECT...",
                path.display(),
                path.display()
            )))
        }
        #[allow(unreachable_patterns)]
        _ => {
            let _ = (path, options);
            Err(not_compiled(format))
        }
    }
}

/// Opens a stream of bytes as a source in the given format; `name` stands for the source in every
/// message (where a file source gives its path). CSV, TSV and JSON Lines are read as they arrive, a
/// bounded buffer at a time. Parquet needs random access (its footer is at the end), so the reader is
/// read to its end into memory first, and then decoded from there (as [`ParquetSource::from_bytes`]
/// does): a Parquet stream costs its size in memory. SQLite cannot be read from a stream.
///
/// A stream is read once: a source opened here cannot be resumed ([`Source::seek`] to anything but
/// the start is an error), since what a later run reads is new input, not the rest of this one.
///
/// [`ParquetSource::from_bytes`]: crate::ParquetSource::from_bytes
pub fn open_reader(
    reader: Box<dyn Read + Send>,
    name: &str,
    format: Format,
    options: SourceOptions,
) -> Result<Box<dyn Source + Send>, SourceError> {
    let (order, policy) = (options.ordered_by.clone(), options.bad_rows);
    let inner = stream_source(reader, name, format, options)?;
    let inner = crate::options::with_order_rule(inner, order.as_deref(), policy, name)?;
    Ok(Box::new(StreamSource { inner, what: format!("{name} (a stream)") }))
}

/// Opens standard input as a source in the given format, named `stdin` in messages (see [`open_reader`]:
/// Parquet is read into memory first). Standard input cannot be resumed: a seek past the start is an
/// error saying so.
pub fn open_stdin(format: Format, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    stdin_source(Box::new(std::io::stdin()), format, options)
}

/// [`open_stdin`] over any reader standing for standard input.
fn stdin_source(
    reader: Box<dyn Read + Send>,
    format: Format,
    options: SourceOptions,
) -> Result<Box<dyn Source + Send>, SourceError> {
    let (order, policy) = (options.ordered_by.clone(), options.bad_rows);
    let inner = stream_source(reader, "stdin", format, options)?;
    let inner = crate::options::with_order_rule(inner, order.as_deref(), policy, "stdin")?;
    Ok(Box::new(StreamSource { inner, what: "standard input".into() }))
}

/// The connector's source over a stream.
fn stream_source(
    reader: Box<dyn Read + Send>,
    name: &str,
    format: Format,
    options: SourceOptions,
) -> Result<Box<dyn Source + Send>, SourceError> {
    match format {
        #[cfg(feature = "csv")]
        Format::Csv | Format::Tsv => {
            let delimiter = if format == Format::Tsv { b'\t' } else { b',' };
            let csv_options = crate::CsvOptions { base: options, delimiter, ..Default::default() };
            Ok(Box::new(crate::CsvSource::from_reader(name, reader, csv_options)?))
        }
        #[cfg(feature = "parquet")]
        Format::Parquet => {
            let mut reader = reader;
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).map_err(|error| SourceError::Io { source_name: name.to_owned(), error })?;
            Ok(Box::new(crate::ParquetSource::from_bytes(name, bytes.into(), options)?))
        }
        #[cfg(feature = "jsonl")]
        Format::Jsonl => {
            let jsonl_options = crate::JsonlOptions { base: options, ..Default::default() };
            Ok(Box::new(crate::JsonlSource::from_reader(name, reader, jsonl_options)?))
        }
        Format::Sqlite => {
            let _ = (reader, options);
            Err(SourceError::Unsupported(format!(
                "{name}: a SQLite database cannot be read from a stream: open its file as \
                 sqlite://PATH?query=SELECT..."
            )))
        }
        #[allow(unreachable_patterns)]
        _ => {
            let _ = (reader, name, options);
            Err(not_compiled(format))
        }
    }
}

/// A source read from a stream: the connector's source, which cannot seek past the start.
struct StreamSource {
    inner: Box<dyn Source + Send>,
    /// What the stream is, in the seek error (`standard input`).
    what: String,
}

impl fmt::Debug for StreamSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSource").field("what", &self.what).finish_non_exhaustive()
    }
}

impl Iterator for StreamSource {
    type Item = Result<Batch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

impl Source for StreamSource {
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

    fn skipped(&self) -> &SkipCounts {
        self.inner.skipped()
    }

    /// Only to the start, before anything was read.
    fn seek(&mut self, position: &Position) -> Result<(), SourceError> {
        let at_start = |p: &Position| matches!(p, Position::Start | Position::Row(0));
        if at_start(position) && at_start(&Source::position(&*self.inner)) {
            return Ok(());
        }
        Err(SourceError::Unsupported(format!(
            "{} cannot be resumed; it is read once, and what a later run reads there is new input, not the rest \
             of this one (cannot seek to {position}): to resume, read the input from a file",
            self.what
        )))
    }

    fn commit(&mut self) -> Result<(), SourceError> {
        self.inner.commit()
    }

    fn acknowledges_on_next(&self) -> bool {
        self.inner.acknowledges_on_next()
    }
}

/// Opens a source named by a path (as [`open`] does) or by a URL. The URL schemes:
///
/// - `sqlite://PATH?query=SQL`: the rows of `SQL` on the SQLite database file `PATH` (everything between
///   `sqlite://` and `?`, so `sqlite:///abs/path.db` is absolute and `sqlite://rel.db` relative). `SQL` is
///   percent-encoded, `+` standing for a space: `sqlite://m.db?query=SELECT+a%2C+b+FROM+t`.
///
/// - `redis://[USER:PASSWORD@]HOST[:PORT]/stream/NAME?group=G&consumer=C[&...]`: the Redis stream `NAME`,
///   read through the consumer group `G` as consumer `C` (see [`RedisSource`](crate::RedisSource)).
///   Optional parameters: `field` (the entry field holding the JSON object; `data`), `claim_idle_ms`
///   (claim other consumers' pending entries idle this long; 60000), and those below.
/// - `redis://[USER:PASSWORD@]HOST[:PORT]/channel/NAME[?...]`: the messages published on the Redis
///   pub/sub channel `NAME`.
///
///   Both Redis forms take `idle_timeout_ms` (end when no message arrives for this long; default: wait
///   forever; when no JSON object arrives within it at all, the source opens with no columns, an empty
///   schema, and yields nothing: a periodic job with nothing new ends with 0 rows instead of failing),
///   `max_rows` (end after this many rows) and `give_up_ms` (fail when a lost connection cannot be
///   re-established for this long; default: keep retrying). `PORT` defaults to 6379.
///
/// - `kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?...]`: the Kafka topic `TOPIC`, read through a consumer group
///   (see [`KafkaSource`](crate::KafkaSource)). Parameters: `group` (the consumer group; `onad`),
///   `key_column` (add each message's key as a last feature column of this name, for `--key`),
///   `idle_timeout_ms` (as for Redis, an empty schema when nothing arrives in time; the wait starts
///   once the group has assigned partitions), `max_rows` (as for Redis), `connect_timeout_ms` (opening fails when the brokers
///   do not describe the topic within this long; 10000), `give_up_ms` (fail once every broker has been
///   down this long; default: keep waiting), and any librdkafka setting, recognised by the dot in its
///   name (`session.timeout.ms=6000`, `auto.offset.reset=latest`, `fetch.min.bytes=1`).
///
/// An unknown scheme is an error, and so is a known one whose connector was not compiled in
/// ([`SourceError::NotCompiled`]).
pub fn open_url(spec: &str, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    let Some((scheme, rest)) = split_scheme(spec) else {
        return open(Path::new(spec), options);
    };
    let (order, policy) = (options.ordered_by.clone(), options.bad_rows);
    let source = match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => {
            let (path, query) = parse_sqlite_url(spec, rest)?;
            open_sqlite(&path, &query, options)?
        }
        "redis" => open_redis(parse_redis_url(rest)?, options)?,
        "kafka" => open_kafka(parse_kafka_url(rest)?, options)?,
        _ => {
            return Err(SourceError::Unsupported(format!(
                "{spec}: unknown source scheme '{scheme}://' (expected a file path, sqlite://PATH?query=SELECT..., \
                 redis://HOST:PORT/stream/NAME?group=G&consumer=C, redis://HOST:PORT/channel/NAME or \
                 kafka://HOST:PORT/TOPIC?group=G)"
            )));
        }
    };
    // In messages the URL goes without its query and without any password.
    let name = spec.split('?').next().unwrap_or(spec);
    let name = match name.split_once("://").and_then(|(s, r)| r.split_once('@').map(|(user, r)| (s, user, r))) {
        Some((scheme, user, rest)) => format!("{scheme}://{}@{rest}", user.split(':').next().unwrap_or("")),
        None => name.to_owned(),
    };
    crate::options::with_order_rule(source, order.as_deref(), policy, &name)
}

#[cfg(feature = "sqlite")]
fn open_sqlite(path: &str, query: &str, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    Ok(Box::new(crate::SqliteSource::open(path, query, options)?))
}

#[cfg(not(feature = "sqlite"))]
fn open_sqlite(path: &str, query: &str, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    let _ = (path, query, options);
    Err(not_compiled(Format::Sqlite))
}

#[cfg(feature = "redis")]
fn open_redis(url: RedisUrl, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    Ok(Box::new(crate::RedisSource::from_url(url, options)?))
}

#[cfg(not(feature = "redis"))]
fn open_redis(url: RedisUrl, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    let _ = (url, options);
    Err(SourceError::NotCompiled { connector: "redis".into(), feature: "redis".into() })
}

#[cfg(feature = "kafka")]
fn open_kafka(url: KafkaUrl, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    Ok(Box::new(crate::KafkaSource::from_url(url, options)?))
}

#[cfg(not(feature = "kafka"))]
fn open_kafka(url: KafkaUrl, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    let _ = (url, options);
    Err(SourceError::NotCompiled { connector: "kafka".into(), feature: "kafka".into() })
}

/// A parsed `kafka://` source URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub(crate) struct KafkaUrl {
    /// `kafka://BROKERS/TOPIC`, without the parameters (they may hold credentials, `sasl.password`): the
    /// source's name in messages.
    pub(crate) name: String,
    /// `bootstrap.servers`: `HOST:PORT[,HOST:PORT...]`.
    pub(crate) brokers: String,
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) key_column: Option<String>,
    pub(crate) idle_timeout_ms: Option<u64>,
    /// How long opening waits for the brokers to describe the topic.
    pub(crate) connect_timeout_ms: u64,
    /// Fail once every broker has been down this long.
    pub(crate) give_up_ms: Option<u64>,
    pub(crate) max_rows: Option<u64>,
    /// librdkafka settings passed through, in the order given.
    pub(crate) config: Vec<(String, String)>,
}

const KAFKA_FORM: &str = "expected kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?group=G&key_column=K&...]";

/// Parses the part of a `kafka://` URL after the scheme.
pub(crate) fn parse_kafka_url(rest: &str) -> Result<KafkaUrl, SourceError> {
    let address = url::kafka_address(rest, KAFKA_FORM, &unsupported)?;
    let name = address.name;
    let bad = |message: String| unsupported(&name, message);
    let params = Params::parse(
        address.query,
        &["group", "key_column", "idle_timeout_ms", "max_rows", "connect_timeout_ms", "give_up_ms"],
        Some("session.timeout.ms"),
        &bad,
    )?;
    let max_rows = params.number("max_rows", &bad)?;
    if max_rows == Some(0) {
        return Err(bad("max_rows must be at least 1".into()));
    }
    let group = params.get("group").unwrap_or("onad").to_owned();
    if group.is_empty() {
        return Err(bad("group= names no consumer group".into()));
    }
    // Settings the source owns: overriding them would break manual commits or the rebalance handling.
    for (k, v) in params.settings() {
        let owned = matches!(
            k,
            "group.id"
                | "bootstrap.servers"
                | "enable.auto.commit"
                | "enable.auto.offset.store"
                | "enable.partition.eof"
        );
        let cooperative = (k == "partition.assignment.strategy" && v.contains("cooperative"))
            || (k == "group.protocol" && v != "classic");
        if owned || cooperative {
            return Err(bad(format!(
                "{k}={v} cannot be set: the source commits by hand, takes the group and brokers from the URL, and \
                 uses the eager (classic) rebalance protocol"
            )));
        }
    }
    let key_column = match params.get("key_column") {
        Some("") => return Err(bad("key_column= names no column".into())),
        k => k.map(str::to_owned),
    };
    Ok(KafkaUrl {
        brokers: address.brokers.to_owned(),
        topic: address.topic,
        group,
        key_column,
        idle_timeout_ms: params.number("idle_timeout_ms", &bad)?,
        connect_timeout_ms: params.number("connect_timeout_ms", &bad)?.unwrap_or(10_000),
        give_up_ms: params.number("give_up_ms", &bad)?,
        max_rows,
        config: params.settings().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        name,
    })
}

/// A source URL's error: `NAME: MESSAGE`.
fn unsupported(name: &str, message: String) -> SourceError {
    SourceError::Unsupported(format!("{name}: {message}"))
}

/// A parsed `redis://` source URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct RedisUrl {
    /// The URL without its password and parameters: the source's name in messages.
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) target: RedisTarget,
    pub(crate) idle_timeout_ms: Option<u64>,
    pub(crate) max_rows: Option<u64>,
    pub(crate) give_up_ms: Option<u64>,
}

/// What a `redis://` URL reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum RedisTarget {
    /// A stream read through a consumer group.
    Stream { key: String, group: String, consumer: String, field: String, claim_idle_ms: u64 },
    /// A pub/sub channel.
    Channel { name: String },
}

const REDIS_FORMS: &str = "expected redis://HOST:PORT/stream/NAME?group=G&consumer=C or redis://HOST:PORT/channel/NAME";

/// Parses the part of a `redis://` URL after the scheme.
pub(crate) fn parse_redis_url(rest: &str) -> Result<RedisUrl, SourceError> {
    let address = url::redis_address(rest, REDIS_FORMS, &unsupported)?;
    let name = address.name;
    let bad = |message: String| unsupported(&name, message);
    let (kind, path) = (address.kind, address.path);
    let target_name = match address.key {
        Some(key) if matches!(kind, "stream" | "channel") => key,
        _ => return Err(bad(format!("cannot read '/{path}': {REDIS_FORMS}"))),
    };
    let stream = kind == "stream";
    let known: &[&str] = if stream {
        &["group", "consumer", "field", "claim_idle_ms", "idle_timeout_ms", "max_rows", "give_up_ms"]
    } else {
        &["idle_timeout_ms", "max_rows", "give_up_ms"]
    };
    let params = Params::parse(address.query, known, None, &bad)?;
    let get = |key: &str| params.get(key).map(str::to_owned);
    let number = |key: &str| params.number(key, &bad);
    let max_rows = number("max_rows")?;
    if max_rows == Some(0) {
        return Err(bad("max_rows must be at least 1".into()));
    }
    let target = if stream {
        let required = |key: &str| match get(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(bad(format!(
                "a stream is read through a consumer group: add ?group=G&consumer=C (missing '{key}')"
            ))),
        };
        let field = get("field").unwrap_or_else(|| "data".into());
        if field.is_empty() {
            return Err(bad("field= names no field".into()));
        }
        RedisTarget::Stream {
            key: target_name,
            group: required("group")?,
            consumer: required("consumer")?,
            field,
            claim_idle_ms: number("claim_idle_ms")?.unwrap_or(60_000),
        }
    } else {
        RedisTarget::Channel { name: target_name }
    };
    Ok(RedisUrl {
        host: address.host,
        port: address.port,
        username: address.username,
        password: address.password,
        target,
        idle_timeout_ms: number("idle_timeout_ms")?,
        max_rows,
        give_up_ms: number("give_up_ms")?,
        name,
    })
}

/// Parses the part of a `sqlite://` URL after the scheme into the database path and the query.
fn parse_sqlite_url(spec: &str, rest: &str) -> Result<(String, String), SourceError> {
    let bad = |message: String| SourceError::Unsupported(format!("{spec}: {message}"));
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_decode(path, false).map_err(&bad)?;
    if path.is_empty() {
        return Err(bad("the URL names no database file (expected sqlite://PATH?query=SELECT...)".into()));
    }
    let params = Params::parse(params, &["query"], None, &bad)?;
    match params.get("query") {
        Some(q) if !q.trim().is_empty() => Ok((path, q.to_owned())),
        _ => Err(bad("a SQLite source needs a query: sqlite://PATH?query=SELECT...".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls() {
        let parse = |s: &str| parse_sqlite_url(s, split_scheme(s).unwrap().1);
        assert_eq!(
            parse("sqlite:///data/m.db?query=SELECT+*+FROM+t+WHERE+x%3D1").unwrap(),
            ("/data/m.db".to_string(), "SELECT * FROM t WHERE x=1".to_string())
        );
        assert_eq!(parse("sqlite://my%20dir/m.db?query=q").unwrap().0, "my dir/m.db");
        assert!(parse("sqlite://m.db").unwrap_err().to_string().contains("needs a query"));
        assert!(parse("sqlite://m.db?query=").unwrap_err().to_string().contains("needs a query"));
        assert!(parse("sqlite://?query=q").unwrap_err().to_string().contains("no database file"));
        assert!(parse("sqlite://m.db?query=a&query=b").unwrap_err().to_string().contains("twice"));
        assert!(parse("sqlite://m.db?query=a&limit=3").unwrap_err().to_string().contains("unknown parameter 'limit'"));
    }

    #[test]
    fn redis_urls() {
        let parse = |s: &str| parse_redis_url(split_scheme(s).unwrap().1);
        let u = parse("redis://127.0.0.1:7000/stream/ev%20s?group=g&consumer=c1&claim_idle_ms=5&max_rows=9").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 7000));
        assert_eq!(
            u.target,
            RedisTarget::Stream {
                key: "ev s".into(),
                group: "g".into(),
                consumer: "c1".into(),
                field: "data".into(),
                claim_idle_ms: 5
            }
        );
        assert_eq!((u.max_rows, u.idle_timeout_ms, u.give_up_ms), (Some(9), None, None));
        let u = parse("redis://bob:s3cret@host/channel/alerts?idle_timeout_ms=100&give_up_ms=7").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("host", 6379));
        assert_eq!(u.target, RedisTarget::Channel { name: "alerts".into() });
        assert_eq!((u.username.as_deref(), u.password.as_ref().map(|p| p.0.as_str())), (Some("bob"), Some("s3cret")));
        assert_eq!(u.name, "redis://bob@host/channel/alerts");
        assert!(!format!("{u:?}").contains("s3cret"));
        let u = parse("redis://:pw@[::1]:6380/channel/c").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.name.as_str()), ("::1", 6380, "redis://[::1]:6380/channel/c"));
        let err = |s: &str| parse(s).unwrap_err().to_string();
        assert!(err("redis://h/stream/s?group=g").contains("missing 'consumer'"));
        assert!(err("redis://h/stream/s").contains("consumer group"));
        assert!(err("redis://h/list/s").contains("expected redis://"));
        assert!(err("redis://h/channel/").contains("expected redis://"));
        assert!(err("redis://h/channel/c?group=g").contains("unknown parameter 'group'"));
        assert!(err("redis://h/channel/c?max_rows=0").contains("at least 1"));
        assert!(err("redis://h/channel/c?max_rows=x").contains("max_rows=x"));
        assert!(err("redis://h:99999/channel/c").contains("not a port"));
        assert!(err("redis://:pw@/channel/c").contains("no host"));
        assert!(!err("redis://:pw@h/channel/c?bad=1").contains("pw"));
    }

    #[test]
    fn kafka_urls() {
        let parse = |s: &str| parse_kafka_url(split_scheme(s).unwrap().1);
        let u =
            parse("kafka://h1:9092,h2:9093/sc%20ores?group=g&key_column=k&session.timeout.ms=6000&max_rows=3").unwrap();
        assert_eq!((u.brokers.as_str(), u.topic.as_str(), u.group.as_str()), ("h1:9092,h2:9093", "sc ores", "g"));
        assert_eq!((u.key_column.as_deref(), u.max_rows, u.connect_timeout_ms), (Some("k"), Some(3), 10_000));
        assert_eq!(u.config, [("session.timeout.ms".to_string(), "6000".to_string())]);
        assert_eq!(u.name, "kafka://h1:9092,h2:9093/sc%20ores");
        let err = |s: &str| open_url(s, SourceOptions::default()).err().unwrap().to_string();
        let e = err("kafka://h:1/t?grop=x");
        assert!(e.starts_with("kafka://h:1/t: unknown parameter 'grop' (accepted: group, key_column"), "{e}");
        assert!(e.contains("such as session.timeout.ms"), "{e}");
        assert!(err("kafka:///t").contains("names no broker"));
        assert!(err("kafka://h:1/").contains("names no topic"));
        assert!(err("kafka://h:x/t").contains("'x' is not a port"));
        assert!(err("kafka://h:1/t?max_rows=0").contains("at least 1"));
        assert!(err("kafka://h:1/t?group=").contains("no consumer group"));
        assert!(err("kafka://h:1/t?group.id=x").contains("cannot be set"));
    }

    #[test]
    fn kafka_credentials_stay_out_of_names_and_messages() {
        let url = "kafka://h:1/t?sasl.username=u&sasl.password=pw";
        let u = parse_kafka_url(split_scheme(url).unwrap().1).unwrap();
        assert_eq!(u.name, "kafka://h:1/t");
        // Every kind of URL mistake, with the password among the parameters: none shows it.
        for bad in [
            "kafka://h:1/t?sasl.password=pw&grop=x",
            "kafka://h:1/t?sasl.password=pw&max_rows=0",
            "kafka://h:1/t?sasl.password=pw&max_rows=x",
            "kafka://h:1/t?sasl.password=pw&group.id=x",
            "kafka://h:1/t?sasl.password=pw&sasl.password=pw",
            "kafka://h:1/t?sasl.password=pw&key_column=",
            "kafka://h:x/t?sasl.password=pw",
            "kafka://h:1/?sasl.password=pw",
            "kafka:///t?sasl.password=pw",
        ] {
            let e = open_url(bad, SourceOptions::default()).err().unwrap().to_string();
            assert!(!e.contains("pw"), "{bad}: {e}");
        }
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_without_the_feature_is_not_compiled() {
        let err = open_url("redis://127.0.0.1:1/channel/c", SourceOptions::default()).err().unwrap();
        assert!(matches!(err, SourceError::NotCompiled { .. }), "{err}");
    }

    #[test]
    fn unknown_schemes() {
        let err = open_url("amqp://broker/queue", SourceOptions::default()).err().unwrap().to_string();
        assert!(err.contains("unknown source scheme 'amqp://'"), "{err}");
    }

    #[cfg(feature = "jsonl")]
    #[test]
    fn standard_input_is_named_stdin_and_cannot_be_resumed() {
        let text = b"{\"a\": 1, \"label\": 0}\n{\"a\": \"x\", \"label\": 0}\n".to_vec();
        let options = SourceOptions { bad_rows: onad_core::BadRowPolicy::Fail, ..Default::default() };
        let mut s = stdin_source(Box::new(std::io::Cursor::new(text)), Format::Jsonl, options).unwrap();
        let err = s.seek(&Position::Row(1)).unwrap_err().to_string();
        assert!(err.starts_with("standard input cannot be resumed; "), "{err}");
        assert!(err.contains("to resume, read the input from a file"), "{err}");
        let err = s.next().unwrap().unwrap_err().to_string();
        assert!(err.starts_with("stdin: row 1, column 'a'"), "{err}");
    }

    #[test]
    fn formats_by_extension() {
        for (p, f) in [
            ("a.CSV", Format::Csv),
            ("a.tsv", Format::Tsv),
            ("a.txt", Format::Csv),
            ("a.pq", Format::Parquet),
            ("a.jsonl", Format::Jsonl),
            ("a.ndjson", Format::Jsonl),
            ("a.db", Format::Sqlite),
            ("a.sqlite", Format::Sqlite),
            ("a.sqlite3", Format::Sqlite),
        ] {
            assert_eq!(Format::from_path(Path::new(p)).unwrap(), f, "{p}");
        }
        assert!(Format::from_path(Path::new("a.xlsx")).is_err());
    }

    #[cfg(not(feature = "sqlite"))]
    #[test]
    fn sqlite_without_the_feature_is_not_compiled() {
        let err = open_url("sqlite://m.db?query=SELECT+1", SourceOptions::default()).err().unwrap();
        assert!(matches!(err, SourceError::NotCompiled { .. }), "{err}");
    }

    #[cfg(not(feature = "jsonl"))]
    #[test]
    fn jsonl_without_the_feature_is_not_compiled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        std::fs::write(&path, "{\"a\": 1}\n").unwrap();
        let err = open(&path, SourceOptions::default()).err().unwrap();
        assert!(matches!(err, SourceError::NotCompiled { .. }), "{err}");
    }
}
