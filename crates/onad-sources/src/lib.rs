//! Data sources for onad. Every connector yields `onad_core::Batch`es of dense `f64` rows with a fixed
//! schema, reports a resumable `Position`, and handles unreadable rows under one shared policy
//! (`BadRowPolicy`: skip and count by reason, or fail with an error naming the source, row and column).
//!
//! Each connector sits behind a cargo feature named after it, so a build only pays for what it uses:
//!
//! | feature | source | notes |
//! |---|---|---|
//! | `csv` | [`CsvSource`] | header or not, any delimiter, quoting, empty field = NaN |
//! | `parquet` | [`ParquetSource`] | row group by row group; ints, floats, bools, decimals -> f64; null = NaN |
//! | `jsonl` | [`JsonlSource`] | JSON Lines; columns = the first object's keys, in order; null = NaN |
//! | `sqlite` | [`SqliteSource`] | a read-only SQL query (SQLite compiled in); NULL = NaN; numeric text -> f64 |
//! | `redis` | [`RedisSource`] | a Redis stream (consumer group, at-least-once) or pub/sub channel of JSON objects |
//! | `kafka` | [`KafkaSource`] | a Kafka topic of JSON objects (consumer group, manual commits, offsets per partition) |
//! | `fetch` | [`datasets`] | the data set registry; fetch a set into a cache (HTTP, directory), sha256-verified |
//! | `fetch-tls` | [`datasets`] | adds `https://` to `fetch` (rustls); not a default feature |
//!
//! All but `fetch-tls` are default features. [`open`] picks the connector from the file extension
//! ([`open_as`] takes the [`Format`] instead, for a file whose extension says nothing); [`open_reader`]
//! and [`open_stdin`] read a stream (standard input, a decompressor) in a named format; [`open_url`] also
//! takes `sqlite://PATH?query=SELECT...` (a database needs a query) and
//! `redis://HOST:PORT/stream/NAME?group=G&consumer=C` or `redis://HOST:PORT/channel/NAME`. All give a clear
//! error when the connector's feature was not compiled in. [`datasets`] is not a connector: it names the
//! labelled data sets onad knows and fetches their CSV files into a cache, which the `csv` source reads.
//!
//! ```
//! # #[cfg(feature = "csv")] {
//! use onad_sources::{CsvOptions, CsvSource, LabelColumn};
//! use onad_core::Source;
//!
//! let data = "cpu,mem,label\n0.5,0.25,0\n0.9,0.75,1\n";
//! let mut source = CsvSource::from_reader("inline", data.as_bytes(), CsvOptions::default()).unwrap();
//! assert_eq!(source.schema().names(), ["cpu", "mem"]);
//! let batch = source.next().unwrap().unwrap();
//! assert_eq!(batch.row(1), &[0.9, 0.75]);
//! assert_eq!(batch.labels(), Some(&[0.0, 1.0][..]));
//! # }
//! ```

mod options;
pub use options::{KeyPolicy, LabelColumn, NonNumericColumns, SourceOptions};

#[cfg(feature = "csv")]
mod csv_source;
#[cfg(feature = "csv")]
pub use csv_source::{CsvOptions, CsvSource};

#[cfg(feature = "parquet")]
mod parquet_source;
#[cfg(feature = "parquet")]
pub use parquet_source::{ParquetSource, ParquetWriter};
#[cfg(feature = "parquet")]
mod parquet_sink;
#[cfg(feature = "parquet")]
pub use parquet_sink::ParquetSink;

#[cfg(any(feature = "jsonl", feature = "redis", feature = "kafka"))]
mod json_row;
#[cfg(any(feature = "jsonl", feature = "redis", feature = "kafka"))]
pub use json_row::JsonObjects;

#[cfg(any(feature = "redis", feature = "kafka"))]
mod message;
/// The number a broker message's key stands for (its text when it is a number held exactly, else a hash):
/// how the broker sources fill their key column and how `onad worker` names per-key models.
#[cfg(any(feature = "redis", feature = "kafka"))]
pub use message::key_number as message_key;

#[cfg(feature = "jsonl")]
mod jsonl_source;
#[cfg(feature = "jsonl")]
pub use jsonl_source::{JsonlOptions, JsonlSource};

#[cfg(feature = "sqlite")]
mod sqlite_source;
#[cfg(feature = "sqlite")]
pub use sqlite_source::SqliteSource;

#[cfg(feature = "redis")]
mod redis_source;
#[cfg(feature = "redis")]
pub use redis_source::RedisSource;

#[cfg(feature = "kafka")]
mod kafka_source;
#[cfg(feature = "kafka")]
pub use kafka_source::{KafkaSource, every_broker_down};

mod open;
pub use open::{Format, open, open_as, open_reader, open_stdin, open_url};

#[cfg(feature = "kafka")]
mod kafka_sink;
#[cfg(feature = "kafka")]
pub use kafka_sink::KafkaSink;
#[cfg(feature = "redis")]
mod redis_sink;
#[cfg(feature = "redis")]
pub use redis_sink::RedisStreamSink;
mod sink_url;
mod url;
pub use sink_url::{NotCompiled, open_sink_url, sink_url_connector};

#[cfg(feature = "fetch")]
pub mod datasets;

/// Parses one text field as a number: empty (after trimming) is NaN (missing); `true`/`false` are 1/0.
/// Returns `None` when the text is not a number.
#[cfg(feature = "csv")]
pub(crate) fn parse_number(field: &str) -> Option<f64> {
    let t = field.trim();
    if t.is_empty() {
        return Some(f64::NAN);
    }
    if let Ok(v) = t.parse::<f64>() {
        return Some(v);
    }
    match t {
        "true" | "True" | "TRUE" => Some(1.0),
        "false" | "False" | "FALSE" => Some(0.0),
        _ => None,
    }
}

#[cfg(all(test, feature = "csv"))]
mod tests {
    use super::parse_number;

    #[test]
    fn parses_numbers_missing_and_booleans() {
        assert_eq!(parse_number(" 1.5 "), Some(1.5));
        assert_eq!(parse_number("-2e3"), Some(-2000.0));
        assert!(parse_number("").unwrap().is_nan());
        assert!(parse_number("NaN").unwrap().is_nan());
        assert_eq!(parse_number("inf"), Some(f64::INFINITY));
        assert_eq!(parse_number("true"), Some(1.0));
        assert_eq!(parse_number("abc"), None);
        assert_eq!(parse_number("1,5"), None);
    }
}
