//! Broker sinks named by URL ([`open_sink_url`]): `kafka://` (a Kafka topic) and `redis://` (a Redis
//! stream). The URLs are parsed here whatever features are compiled in, so a mistyped URL is reported the
//! same way in every build, and a connector left out of the build is a clear [`NotCompiled`] error.

use std::fmt;

use onad_core::{Sink, SinkError};

use crate::url::{self, Params, Secret, split_scheme};

/// The forms [`open_sink_url`] takes, for messages.
const SINK_FORMS: &str = "kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?setting=value...] or \
                          redis://HOST:PORT/stream/NAME[?maxlen=N]";

/// The parameters a `kafka://` sink URL takes besides librdkafka settings.
const KAFKA_PARAMS: &[&str] = &["flush_timeout_ms", "connect_timeout_ms"];
/// The parameters a `redis://` sink URL takes.
const REDIS_PARAMS: &[&str] = &["maxlen", "give_up_ms"];

/// The error inside [`SinkError::External`] when a sink URL names a connector this build does not have.
/// Callers can tell it apart with `error.downcast_ref::<NotCompiled>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCompiled {
    /// The connector the URL asks for (`kafka`, `redis`).
    pub connector: &'static str,
    /// The cargo feature of `onad-sources` that enables it.
    pub feature: &'static str,
}

impl fmt::Display for NotCompiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} sink is not compiled in; rebuild with the cargo feature '{}' of onad-sources",
            self.connector, self.feature
        )
    }
}

impl std::error::Error for NotCompiled {}

/// The connector a sink URL names (`Some("kafka")`, `Some("redis")`), or `None` when `spec` is not a
/// `kafka://` or `redis://` URL (a file path, say), so a caller can route it to [`open_sink_url`] or
/// elsewhere. Says nothing about whether the URL is valid or the connector compiled in.
pub fn sink_url_connector(spec: &str) -> Option<&'static str> {
    let (scheme, _) = split_scheme(spec)?;
    match scheme.to_ascii_lowercase().as_str() {
        "kafka" => Some("kafka"),
        "redis" => Some("redis"),
        _ => None,
    }
}

/// Builds the sink a URL names (nothing is contacted until the run opens it):
///
/// - `kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?...]`: one JSON message per row on the topic `TOPIC` (see
///   [`KafkaSink`](crate::KafkaSink)). Parameters: `flush_timeout_ms` (how long a checkpoint waits for
///   every message to be acknowledged; 30000), `connect_timeout_ms` (how long opening waits for the
///   brokers to describe the topic; 10000), and any librdkafka producer setting, recognised by the dot
///   in its name (`linger.ms=20`, `compression.type=lz4`, `allow.auto.create.topics=false`).
///   `bootstrap.servers` comes from the URL and cannot be set.
/// - `redis://[USER:PASSWORD@]HOST[:PORT]/stream/NAME[?...]`: one stream entry per row appended to the
///   stream `NAME` (see [`RedisStreamSink`](crate::RedisStreamSink)). Parameters: `maxlen` (trim the
///   stream to about this many entries, `XADD MAXLEN ~ N`; default: no trimming) and `give_up_ms` (how
///   long a lost connection is retried before the sink fails; 10000). `PORT` defaults to 6379.
///
/// A parameter not listed is an error naming the ones accepted. A URL whose connector is not compiled
/// into this build is a [`SinkError::External`] holding [`NotCompiled`].
pub fn open_sink_url(url: &str) -> Result<Box<dyn Sink>, SinkError> {
    let Some((scheme, rest)) = split_scheme(url) else {
        return Err(url_error("sink", url, format!("not a sink URL (expected {SINK_FORMS})")));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "kafka" => open_kafka(parse_kafka_sink_url(rest)?),
        "redis" => open_redis(parse_redis_sink_url(rest)?),
        _ => Err(url_error("sink", url, format!("unknown sink scheme '{scheme}://' (expected {SINK_FORMS})"))),
    }
}

#[cfg(feature = "kafka")]
fn open_kafka(url: KafkaSinkUrl) -> Result<Box<dyn Sink>, SinkError> {
    Ok(Box::new(crate::KafkaSink::from_parsed(url)))
}

#[cfg(not(feature = "kafka"))]
fn open_kafka(url: KafkaSinkUrl) -> Result<Box<dyn Sink>, SinkError> {
    Err(SinkError::External {
        connector: "kafka",
        target: url.name,
        error: Box::new(NotCompiled { connector: "kafka", feature: "kafka" }),
    })
}

#[cfg(feature = "redis")]
fn open_redis(url: RedisSinkUrl) -> Result<Box<dyn Sink>, SinkError> {
    Ok(Box::new(crate::RedisStreamSink::from_parsed(url)))
}

#[cfg(not(feature = "redis"))]
fn open_redis(url: RedisSinkUrl) -> Result<Box<dyn Sink>, SinkError> {
    Err(SinkError::External {
        connector: "redis",
        target: url.name,
        error: Box::new(NotCompiled { connector: "redis", feature: "redis" }),
    })
}

/// The part after `SCHEME://` of a sink URL of that scheme (any case), or an error naming the URL.
#[cfg_attr(not(any(feature = "kafka", feature = "redis")), allow(dead_code))]
pub(crate) fn after_scheme<'a>(url: &'a str, scheme: &'static str) -> Result<&'a str, SinkError> {
    match crate::url::split_scheme(url) {
        Some((s, rest)) if s.eq_ignore_ascii_case(scheme) => Ok(rest),
        _ => Err(url_error(scheme, url, format!("not a {scheme}:// URL"))),
    }
}

fn url_error(connector: &'static str, target: &str, message: String) -> SinkError {
    SinkError::External { connector, target: target.to_owned(), error: message.into() }
}

/// A parsed `kafka://` sink URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub(crate) struct KafkaSinkUrl {
    /// `kafka://BROKERS/TOPIC`, without the parameters: the sink's name in messages.
    pub(crate) name: String,
    /// `bootstrap.servers`.
    pub(crate) brokers: String,
    pub(crate) topic: String,
    pub(crate) flush_timeout_ms: u64,
    pub(crate) connect_timeout_ms: u64,
    /// librdkafka settings, in the order given.
    pub(crate) config: Vec<(String, String)>,
}

/// Parses the part of a `kafka://` sink URL after the scheme.
pub(crate) fn parse_kafka_sink_url(rest: &str) -> Result<KafkaSinkUrl, SinkError> {
    let form = "expected kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?setting=value...]";
    let error = |name: &str, message: String| url_error("kafka", name, message);
    let address = url::kafka_address(rest, form, &error)?;
    let name = address.name;
    let bad = |message: String| error(&name, message);
    let params = Params::parse(address.query, KAFKA_PARAMS, Some("linger.ms"), &bad)?;
    if params.get("bootstrap.servers").is_some() {
        return Err(bad("bootstrap.servers cannot be set: the brokers are the ones the URL names".into()));
    }
    let number = |key: &str, default: u64| -> Result<u64, SinkError> {
        match params.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(format!("{key}={v} is not a whole number of milliseconds above 0"))),
            },
        }
    };
    Ok(KafkaSinkUrl {
        brokers: address.brokers.to_owned(),
        topic: address.topic,
        flush_timeout_ms: number("flush_timeout_ms", 30_000)?,
        connect_timeout_ms: number("connect_timeout_ms", 10_000)?,
        config: params.settings().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        name,
    })
}

/// A parsed `redis://` sink URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct RedisSinkUrl {
    /// The URL without its password and parameters: the sink's name in messages.
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    /// The stream's key.
    pub(crate) stream: String,
    /// `XADD MAXLEN ~ N`.
    pub(crate) maxlen: Option<u64>,
    pub(crate) give_up_ms: u64,
}

/// Parses the part of a `redis://` sink URL after the scheme.
pub(crate) fn parse_redis_sink_url(rest: &str) -> Result<RedisSinkUrl, SinkError> {
    let form = "expected redis://HOST:PORT/stream/NAME[?maxlen=N]";
    let address = url::redis_address(rest, form, &|name, message| url_error("redis", name, message))?;
    let name = address.name;
    let bad = |message: String| url_error("redis", &name, message);
    let (kind, path) = (address.kind, address.path);
    let stream = match address.key {
        Some(key) if kind == "stream" => key,
        _ => {
            let hint = if kind == "channel" { " (a sink writes to a stream, not a pub/sub channel)" } else { "" };
            return Err(bad(format!("cannot write to '/{path}'{hint}: {form}")));
        }
    };
    let params = Params::parse(address.query, REDIS_PARAMS, None, &bad)?;
    let number = |key: &str| -> Result<Option<u64>, SinkError> {
        match params.get(key) {
            None => Ok(None),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(bad(format!("{key}={v} is not a whole number above 0"))),
            },
        }
    };
    Ok(RedisSinkUrl {
        host: address.host,
        port: address.port,
        username: address.username,
        password: address.password,
        stream,
        maxlen: number("maxlen")?,
        give_up_ms: number("give_up_ms")?.unwrap_or(10_000),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: SinkError) -> String {
        e.to_string()
    }

    #[test]
    fn kafka_sink_urls() {
        let u = parse_kafka_sink_url("h1:9092,h2:9093/sc%20ores?linger.ms=5&flush_timeout_ms=700").unwrap();
        assert_eq!((u.brokers.as_str(), u.topic.as_str()), ("h1:9092,h2:9093", "sc ores"));
        assert_eq!((u.flush_timeout_ms, u.connect_timeout_ms), (700, 10_000));
        assert_eq!(u.config, [("linger.ms".to_string(), "5".to_string())]);
        assert_eq!(u.name, "kafka://h1:9092,h2:9093/sc%20ores");
        let err = |s: &str| message(parse_kafka_sink_url(s).unwrap_err());
        let e = err("h:1/t?group=g");
        assert!(e.contains("unknown parameter 'group'") && e.contains("flush_timeout_ms, connect_timeout_ms"), "{e}");
        assert!(e.starts_with("kafka sink kafka://h:1/t: "), "{e}");
        assert!(!err("h:1/t?sasl.password=pw&x=1").contains("pw"));
        assert!(err("/t").contains("names no broker"));
        assert!(err("h:1/").contains("names no topic"));
        assert!(err("h:1/a/b").contains("names no topic"));
        assert!(err("h:x/t").contains("'x' is not a port"));
        assert!(err("h:1/t?bootstrap.servers=x:1").contains("cannot be set"));
        assert!(err("h:1/t?flush_timeout_ms=0").contains("flush_timeout_ms=0"));
        assert!(err("h:1/t?linger.ms=1&linger.ms=2").contains("twice"));
    }

    #[test]
    fn redis_sink_urls() {
        let u = parse_redis_sink_url("127.0.0.1:7000/stream/sc%20ores?maxlen=1000").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.stream.as_str()), ("127.0.0.1", 7000, "sc ores"));
        assert_eq!(
            (u.maxlen, u.give_up_ms, u.username.as_ref(), u.password.as_ref()),
            (Some(1000), 10_000, None, None)
        );
        let u = parse_redis_sink_url("bob:s3cret@[::1]/stream/s?give_up_ms=50").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.maxlen, u.give_up_ms), ("::1", 6379, None, 50));
        assert_eq!((u.username.as_deref(), u.password.as_ref().map(|p| p.0.as_str())), (Some("bob"), Some("s3cret")));
        assert_eq!(u.name, "redis://bob@[::1]/stream/s");
        assert!(!format!("{u:?}").contains("s3cret"));
        let err = |s: &str| message(parse_redis_sink_url(s).unwrap_err());
        let e = err("h/stream/s?group=g");
        assert!(e.contains("unknown parameter 'group' (accepted: maxlen, give_up_ms)"), "{e}");
        assert!(err("h/channel/c").contains("not a pub/sub channel"));
        assert!(err("h/stream/").contains("expected redis://"));
        assert!(err("h/list/x").contains("expected redis://"));
        assert!(err("h/stream/s?maxlen=0").contains("maxlen=0"));
        assert!(err("h/stream/s?maxlen=-1").contains("maxlen=-1"));
        assert!(err("h:99999/stream/s").contains("not a port"));
        assert!(err(":pw@/stream/s").contains("no host"));
        assert!(!err(":pw@h/stream/s?bad=1").contains("pw"));
    }

    #[test]
    fn schemes() {
        assert_eq!(sink_url_connector("kafka://h:1/t"), Some("kafka"));
        assert_eq!(sink_url_connector("REDIS://h/stream/s"), Some("redis"));
        assert_eq!(sink_url_connector("scores.csv"), None);
        assert_eq!(sink_url_connector("s3://b/k"), None);
        let e = message(open_sink_url("s3://b/k").unwrap_err());
        assert!(e.contains("unknown sink scheme 's3://'") && e.contains("kafka://"), "{e}");
        let e = message(open_sink_url("scores.csv").unwrap_err());
        assert!(e.contains("not a sink URL"), "{e}");
    }

    #[cfg(not(feature = "kafka"))]
    #[test]
    fn kafka_without_the_feature_is_not_compiled() {
        let e = open_sink_url("kafka://127.0.0.1:1/t").unwrap_err();
        let SinkError::External { error, .. } = &e else { panic!("{e}") };
        assert_eq!(error.downcast_ref::<NotCompiled>(), Some(&NotCompiled { connector: "kafka", feature: "kafka" }));
        assert!(e.to_string().contains("not compiled in"), "{e}");
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_without_the_feature_is_not_compiled() {
        let e = open_sink_url("redis://127.0.0.1:1/stream/s").unwrap_err();
        let SinkError::External { error, .. } = &e else { panic!("{e}") };
        assert_eq!(error.downcast_ref::<NotCompiled>(), Some(&NotCompiled { connector: "redis", feature: "redis" }));
        assert!(e.to_string().contains("not compiled in"), "{e}");
    }
}
