//! Opens a source by file extension ([`open`]) or by a path or URL ([`open_url`]), with a clear error when
//! the connector was not compiled in.

use std::path::Path;

use onad_core::{Source, SourceError};

use crate::options::SourceOptions;

/// The file formats `open` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.csv`, `.tsv` (tab-delimited), `.txt`.
    Csv,
    /// `.parquet`, `.pq`.
    Parquet,
    /// `.jsonl`, `.ndjson` (JSON Lines).
    Jsonl,
    /// `.db`, `.sqlite`, `.sqlite3`: a SQLite database, which needs a query (see [`open_url`]).
    Sqlite,
}

impl Format {
    /// Guesses the format from a path's extension.
    pub fn from_path(path: &Path) -> Result<Format, SourceError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "tsv" | "txt" => Ok(Format::Csv),
            "parquet" | "pq" => Ok(Format::Parquet),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "db" | "sqlite" | "sqlite3" => Ok(Format::Sqlite),
            _ => Err(SourceError::Unsupported(format!(
                "{}: unknown file type '{ext}' (expected .csv, .tsv, .parquet, .jsonl, .ndjson, or a SQLite \
                 database .db, .sqlite, .sqlite3)",
                path.display()
            ))),
        }
    }

    /// The connector (and cargo feature) that reads this format.
    pub fn connector(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Jsonl => "jsonl",
            Format::Sqlite => "sqlite",
        }
    }
}

#[cfg_attr(all(feature = "csv", feature = "parquet", feature = "jsonl", feature = "sqlite"), allow(dead_code))]
fn not_compiled(format: Format) -> SourceError {
    SourceError::NotCompiled { connector: format.connector().into(), feature: format.connector().into() }
}

/// Opens a file as a source, choosing the connector from its extension. A SQLite database needs a query,
/// so for one this points to [`open_url`].
pub fn open(path: &Path, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    if !path.exists() {
        return Err(SourceError::Io {
            source_name: path.display().to_string(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let format = Format::from_path(path)?;
    match format {
        #[cfg(feature = "csv")]
        Format::Csv => {
            let tsv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
            let csv_options =
                crate::CsvOptions { base: options, delimiter: if tsv { b'\t' } else { b',' }, ..Default::default() };
            Ok(Box::new(crate::CsvSource::open(path, csv_options)?))
        }
        #[cfg(not(feature = "csv"))]
        Format::Csv => {
            let _ = options;
            Err(not_compiled(format))
        }
        #[cfg(feature = "parquet")]
        Format::Parquet => Ok(Box::new(crate::ParquetSource::open(path, options)?)),
        #[cfg(not(feature = "parquet"))]
        Format::Parquet => {
            let _ = options;
            Err(not_compiled(format))
        }
        #[cfg(feature = "jsonl")]
        Format::Jsonl => {
            Ok(Box::new(crate::JsonlSource::open(path, crate::JsonlOptions { base: options, ..Default::default() })?))
        }
        #[cfg(not(feature = "jsonl"))]
        Format::Jsonl => {
            let _ = options;
            Err(not_compiled(format))
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
        #[cfg(not(feature = "sqlite"))]
        Format::Sqlite => {
            let _ = options;
            Err(not_compiled(format))
        }
    }
}

/// Opens a source named by a path (as [`open`] does) or by a URL. The URL schemes:
///
/// - `sqlite://PATH?query=SQL`: the rows of `SQL` on the SQLite database file `PATH` (everything between
///   `sqlite://` and `?`, so `sqlite:///abs/path.db` is absolute and `sqlite://rel.db` relative). `SQL` is
///   percent-encoded, `+` standing for a space: `sqlite://m.db?query=SELECT+a%2C+b+FROM+t`.
///
/// An unknown scheme is an error, and so is a known one whose connector was not compiled in
/// ([`SourceError::NotCompiled`]).
pub fn open_url(spec: &str, options: SourceOptions) -> Result<Box<dyn Source + Send>, SourceError> {
    let Some((scheme, rest)) = split_scheme(spec) else {
        return open(Path::new(spec), options);
    };
    match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => {
            let (path, query) = parse_sqlite_url(spec, rest)?;
            open_sqlite(&path, &query, options)
        }
        _ => Err(SourceError::Unsupported(format!(
            "{spec}: unknown source scheme '{scheme}://' (expected a file path or sqlite://PATH?query=SELECT...)"
        ))),
    }
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

/// Splits `scheme://rest` when `spec` starts with a URL scheme (letters, digits, `+`, `-`, `.`, starting
/// with a letter); a plain path gives `None`.
pub(crate) fn split_scheme(spec: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = spec.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// Parses the part of a `sqlite://` URL after the scheme into the database path and the query.
fn parse_sqlite_url(spec: &str, rest: &str) -> Result<(String, String), SourceError> {
    let bad = |message: String| SourceError::Unsupported(format!("{spec}: {message}"));
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_decode(path, false).map_err(bad)?;
    if path.is_empty() {
        return Err(bad("the URL names no database file (expected sqlite://PATH?query=SELECT...)".into()));
    }
    let mut query = None;
    for pair in params.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(key, true).map_err(bad)?.as_str() {
            "query" if query.is_some() => return Err(bad("the parameter 'query' is given twice".into())),
            "query" => query = Some(percent_decode(value, true).map_err(bad)?),
            other => return Err(bad(format!("unknown parameter '{other}' (the only one is 'query')"))),
        }
    }
    match query {
        Some(q) if !q.trim().is_empty() => Ok((path, q)),
        _ => Err(bad("a SQLite source needs a query: sqlite://PATH?query=SELECT...".into())),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn schemes_and_plain_paths() {
        assert_eq!(split_scheme("sqlite://x"), Some(("sqlite", "x")));
        assert_eq!(split_scheme("data/file.csv"), None);
        assert_eq!(split_scheme("C:\\data\\file.csv"), None);
        assert_eq!(split_scheme("weird dir://x"), None);
        let err = open_url("kafka://broker/topic", SourceOptions::default()).err().unwrap().to_string();
        assert!(err.contains("unknown source scheme 'kafka://'"), "{err}");
    }

    #[test]
    fn formats_by_extension() {
        for (p, f) in [
            ("a.CSV", Format::Csv),
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
