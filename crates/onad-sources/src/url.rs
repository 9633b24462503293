//! The URL parsing that broker sources ([`open_url`](crate::open_url)) and broker sinks
//! ([`open_sink_url`](crate::open_sink_url)) share, so the two cannot drift apart: the scheme split,
//! percent decoding, the `key=value&...` parameters, the Kafka `HOST:PORT[,HOST:PORT...]/TOPIC` and Redis
//! `[USER:PASSWORD@]HOST[:PORT]/PATH` addresses, the password type, and the one rule for the name a URL
//! goes by in messages: the scheme, the user (never the password), the host part and the path, and never
//! the query, whose parameters may hold credentials (`sasl.password=...`).
//!
//! Every function that can fail takes a closure building the caller's error type from the URL's name and a
//! message (a `SourceError` for a source, a `SinkError` for a sink).

use std::fmt;

/// Splits `scheme://rest` when `spec` starts with a URL scheme (letters, digits, `+`, `-`, `.`, starting
/// with a letter); a plain path gives `None`.
pub(crate) fn split_scheme(spec: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = spec.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// Decodes `%XX` escapes (and, when `plus_is_space`, `+` as a space, as in form-encoded query strings).
/// A malformed escape or a result that is not UTF-8 is an error.
pub(crate) fn percent_decode(text: &str, plus_is_space: bool) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let (Some(hi), Some(lo)) =
                    (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
                else {
                    let shown: String = text[i..].chars().take(3).collect();
                    return Err(format!("malformed percent escape '{shown}' (expected % and two hex digits)"));
                };
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "a percent escape decodes to bytes that are not UTF-8".into())
}

/// A password, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The name a URL goes by in messages: `scheme://[USER@]HOST_PART/PATH`, the parts as written. The
/// password and the query are left out, whatever they hold.
fn display_name(scheme: &str, user: Option<&str>, host_part: &str, path: &str) -> String {
    match user {
        Some(user) => format!("{scheme}://{user}@{host_part}/{path}"),
        None => format!("{scheme}://{host_part}/{path}"),
    }
}

/// The `key=value&...` parameters of a URL, percent-decoded (`+` is a space), each given at most once, in
/// the order given.
#[derive(Debug)]
pub(crate) struct Params {
    values: Vec<(String, String)>,
}

impl Params {
    /// Parses `query`, accepting the `known` keys and, when `setting_example` is given, any key with a dot
    /// in it (a librdkafka setting; the example is named in the error). An unknown key is an error listing
    /// the accepted ones.
    pub(crate) fn parse<E>(
        query: &str,
        known: &[&str],
        setting_example: Option<&str>,
        bad: &dyn Fn(String) -> E,
    ) -> Result<Params, E> {
        let mut values: Vec<(String, String)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key, true).map_err(bad)?;
            let value = percent_decode(value, true).map_err(bad)?;
            let setting = setting_example.is_some() && key.contains('.');
            if !(setting || known.contains(&key.as_str())) {
                let also =
                    setting_example.map(|e| format!(", or a librdkafka setting such as {e}")).unwrap_or_default();
                return Err(bad(format!("unknown parameter '{key}' (accepted: {}{also})", known.join(", "))));
            }
            if values.iter().any(|(k, _)| *k == key) {
                return Err(bad(format!("the parameter '{key}' is given twice")));
            }
            values.push((key, value));
        }
        Ok(Params { values })
    }

    /// The value of `key`, when given.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a whole number, when given.
    pub(crate) fn number<E>(&self, key: &str, bad: &dyn Fn(String) -> E) -> Result<Option<u64>, E> {
        self.get(key)
            .map(|v| v.parse::<u64>().map_err(|_| bad(format!("{key}={v} is not a whole number of the right size"))))
            .transpose()
    }

    /// The librdkafka settings (the keys with a dot), in the order given.
    pub(crate) fn settings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().filter(|(k, _)| k.contains('.')).map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The address part of a `kafka://` URL: `HOST:PORT[,HOST:PORT...]/TOPIC`, and its query, not yet parsed.
#[derive(Debug)]
pub(crate) struct KafkaAddress<'a> {
    /// `kafka://BROKERS/TOPIC` as written: the name in messages.
    pub(crate) name: String,
    /// `bootstrap.servers`.
    pub(crate) brokers: &'a str,
    /// The topic, percent-decoded.
    pub(crate) topic: String,
    /// What follows `?`, or nothing.
    pub(crate) query: &'a str,
}

/// Splits and checks the part of a `kafka://` URL after the scheme: one or more brokers (a port, when
/// given, a number) and one topic. `form` is the expected form, named in the errors; `error` builds the
/// caller's error from the URL's name and a message.
pub(crate) fn kafka_address<'a, E>(
    rest: &'a str,
    form: &str,
    error: &dyn Fn(&str, String) -> E,
) -> Result<KafkaAddress<'a>, E> {
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let name = display_name("kafka", None, authority, path);
    let bad = |message: String| error(&name, message);
    if authority.is_empty() || authority.split(',').any(|b| b.trim().is_empty()) {
        return Err(bad(format!("the URL names no broker ({form})")));
    }
    for broker in authority.split(',') {
        if let Some((_, port)) = broker.rsplit_once(':')
            && port.parse::<u16>().is_err()
        {
            return Err(bad(format!("'{port}' is not a port number")));
        }
    }
    let topic = percent_decode(path, false).map_err(&bad)?;
    if topic.is_empty() || topic.contains('/') {
        return Err(bad(format!("the URL names no topic ({form})")));
    }
    Ok(KafkaAddress { name, brokers: authority, topic, query })
}

/// The address part of a `redis://` URL: `[USER:PASSWORD@]HOST[:PORT]/KIND/KEY`, and its query, not yet
/// parsed.
#[derive(Debug)]
pub(crate) struct RedisAddress<'a> {
    /// The URL without its password and query: the name in messages.
    pub(crate) name: String,
    pub(crate) host: String,
    /// 6379 unless given.
    pub(crate) port: u16,
    /// Percent-decoded; an empty user is none.
    pub(crate) username: Option<String>,
    /// Percent-decoded.
    pub(crate) password: Option<Secret>,
    /// What follows the host part up to `?`, as written (`stream/NAME`), for messages.
    pub(crate) path: &'a str,
    /// The path's first segment (`stream`, `channel`).
    pub(crate) kind: &'a str,
    /// The rest of the path, percent-decoded; `None` when it is empty or holds a `/`.
    pub(crate) key: Option<String>,
    /// What follows `?`, or nothing.
    pub(crate) query: &'a str,
}

/// Splits and checks the part of a `redis://` URL after the scheme: an optional `USER:PASSWORD@`, a host
/// (an IPv6 address in brackets), an optional port, and the path. `form` is the expected form, named in
/// the errors; `error` builds the caller's error from the URL's name and a message.
pub(crate) fn redis_address<'a, E>(
    rest: &'a str,
    form: &str,
    error: &dyn Fn(&str, String) -> E,
) -> Result<RedisAddress<'a>, E> {
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => u.split_once(':').map_or((Some(u), None), |(a, b)| (Some(a), Some(b))),
    };
    let username = username.filter(|u| !u.is_empty());
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let name = display_name("redis", username, hostport, path);
    let bad = |message: String| error(&name, message);
    let decode = |text: &str| percent_decode(text, false).map_err(&bad);
    let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
        let (h, p) = after.split_once(']').ok_or_else(|| bad("unclosed '[' in the host".into()))?;
        (h, p.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(bad(format!("the URL names no host ({form})")));
    }
    let port = match port {
        None | Some("") => 6379,
        Some(p) => p.parse::<u16>().map_err(|_| bad(format!("'{p}' is not a port number")))?,
    };
    let (kind, key) = path.split_once('/').unwrap_or((path, ""));
    let key = decode(key)?;
    Ok(RedisAddress {
        host: host.to_owned(),
        port,
        username: username.map(decode).transpose()?,
        password: password.map(|p| decode(p).map(Secret)).transpose()?,
        path,
        kind,
        key: (!key.is_empty() && !key.contains('/')).then_some(key),
        query,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(name: &str, message: String) -> String {
        format!("{name}: {message}")
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("SELECT+a%2C+b+FROM+t", true).unwrap(), "SELECT a, b FROM t");
        assert_eq!(percent_decode("a+b%2b", false).unwrap(), "a+b+");
        assert_eq!(percent_decode("caf%C3%A9", true).unwrap(), "café");
        assert_eq!(percent_decode("%41%6a", true).unwrap(), "Aj");
        assert!(percent_decode("50%", true).unwrap_err().contains("malformed"));
        assert!(percent_decode("%zz", true).unwrap_err().contains("'%zz'"));
        assert!(percent_decode("%ff", true).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn schemes_and_plain_paths() {
        assert_eq!(split_scheme("sqlite://x"), Some(("sqlite", "x")));
        assert_eq!(split_scheme("data/file.csv"), None);
        assert_eq!(split_scheme("C:\\data\\file.csv"), None);
        assert_eq!(split_scheme("weird dir://x"), None);
    }

    #[test]
    fn parameters() {
        let bad = |m: String| m;
        let p = Params::parse("a=1&b=x+y%21&linger.ms=5", &["a", "b"], Some("linger.ms"), &bad).unwrap();
        assert_eq!((p.get("a"), p.get("b"), p.get("c")), (Some("1"), Some("x y!"), None));
        assert_eq!(p.number("a", &bad).unwrap(), Some(1));
        assert!(p.number("b", &bad).unwrap_err().contains("b=x y!"));
        assert_eq!(p.settings().collect::<Vec<_>>(), [("linger.ms", "5")]);
        let e = Params::parse("c=1", &["a", "b"], None, &bad).unwrap_err();
        assert_eq!(e, "unknown parameter 'c' (accepted: a, b)");
        let e = Params::parse("c=1", &["a"], Some("linger.ms"), &bad).unwrap_err();
        assert_eq!(e, "unknown parameter 'c' (accepted: a, or a librdkafka setting such as linger.ms)");
        assert!(Params::parse("x.y=1", &["a"], None, &bad).unwrap_err().contains("'x.y'"));
        assert!(Params::parse("a=1&a=2", &["a"], None, &bad).unwrap_err().contains("twice"));
        assert!(Params::parse("a=%zz", &["a"], None, &bad).unwrap_err().contains("malformed"));
    }

    #[test]
    fn kafka_addresses() {
        let a = kafka_address("h1:9092,h2/sc%20ores?sasl.password=pw", "F", &error).unwrap();
        assert_eq!((a.brokers, a.topic.as_str(), a.query), ("h1:9092,h2", "sc ores", "sasl.password=pw"));
        assert_eq!(a.name, "kafka://h1:9092,h2/sc%20ores");
        let err = |s: &str| kafka_address(s, "F", &error).unwrap_err();
        assert_eq!(err("/t?sasl.password=pw"), "kafka:///t: the URL names no broker (F)");
        assert!(err("a,,b/t").contains("names no broker"));
        assert_eq!(err("h:x/t?sasl.password=pw"), "kafka://h:x/t: 'x' is not a port number");
        assert!(err("h:1/?sasl.password=pw").contains("names no topic"));
        assert!(err("h:1/a/b").contains("names no topic"));
    }

    #[test]
    fn redis_addresses() {
        let a = redis_address("bob:s%40cret@[::1]/stream/e%20v?maxlen=1", "F", &error).unwrap();
        assert_eq!((a.host.as_str(), a.port, a.username.as_deref()), ("::1", 6379, Some("bob")));
        assert_eq!(a.password.as_ref().map(|p| p.0.as_str()), Some("s@cret"));
        assert_eq!((a.path, a.kind, a.key.as_deref(), a.query), ("stream/e%20v", "stream", Some("e v"), "maxlen=1"));
        assert_eq!(a.name, "redis://bob@[::1]/stream/e%20v");
        assert!(!format!("{a:?}").contains("s%40cret") && !format!("{a:?}").contains("s@cret"));
        let a = redis_address(":pw@h:7000/channel/", "F", &error).unwrap();
        assert_eq!((a.host.as_str(), a.port, a.username, a.key), ("h", 7000, None, None));
        assert_eq!(a.name, "redis://h:7000/channel/");
        assert_eq!(redis_address("h/stream/a/b", "F", &error).unwrap().key, None);
        let err = |s: &str| redis_address(s, "F", &error).unwrap_err();
        assert_eq!(err(":pw@/stream/s"), "redis:///stream/s: the URL names no host (F)");
        assert!(err("[::1/stream/s").contains("unclosed '['"));
        assert_eq!(err(":pw@h:99999/stream/s?a=pw"), "redis://h:99999/stream/s: '99999' is not a port number");
    }
}
