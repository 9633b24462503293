//! Fetching a registered data set into the cache: HTTP (ureq) or a local copy, streamed into a temp file in
//! the cache directory while hashing, verified against the registry's sha256, fsynced, then renamed into
//! place. On any error the temp file is removed, so the cache only ever holds verified files.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::DatasetInfo;

/// The default for [`FetchOptions::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How [`fetch`] gets a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Where the files are: an `http://host:port/path/` URL (`https://` needs the `fetch-tls` feature), a
    /// `file:///abs/dir/` URL or a plain directory path. The file fetched is `base` + `/` (when `base` does
    /// not end with one) + the data set's file name.
    pub base: String,
    /// The directory the file is cached in (created if missing); usually [`cache_dir`](super::cache_dir).
    pub cache_dir: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// The longest wait to connect, for the response headers, and for each read of the body (so a slow but
    /// steady download is never cut off, a stalled one is).
    pub timeout: Duration,
}

impl FetchOptions {
    /// Options with no progress bar and [`DEFAULT_TIMEOUT`].
    pub fn new(base: impl Into<String>, cache_dir: impl Into<PathBuf>) -> FetchOptions {
        FetchOptions { base: base.into(), cache_dir: cache_dir.into(), progress: false, timeout: DEFAULT_TIMEOUT }
    }
}

/// Why [`fetch`] failed. Whatever the error, no partial file is left in the cache directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The server answered with a status other than 200 OK.
    #[error("{url}: the server answered HTTP {status}{}", status_reason(*.status))]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// No connection, a failed connection or an error while receiving (including timeouts).
    #[error("{url}: download failed: {error}")]
    Connection {
        /// The URL requested.
        url: String,
        /// The underlying error (shown in the message, so not also reported as a `source()`).
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The transfer ended before the whole file arrived (the connection closed early, or fewer bytes came
    /// than the `Content-Length` announced).
    #[error("{url}: transfer cut short after {received} bytes{}", of_expected(*.expected))]
    Truncated {
        /// The URL requested.
        url: String,
        /// The length the server announced, if it did.
        expected: Option<u64>,
        /// The bytes received.
        received: u64,
    },
    /// The file arrived whole but its sha256 is not the registry's.
    #[error("{location}: checksum mismatch: expected sha256 {expected}, got {actual}")]
    ChecksumMismatch {
        /// Where the file came from.
        location: String,
        /// The registry's sha256.
        expected: String,
        /// The sha256 of what arrived.
        actual: String,
    },
    /// Reading or writing a local file failed.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error (shown in the message, so not also reported as a `source()`).
        error: io::Error,
    },
    /// The base is neither an `http(s)://` or `file://` URL nor a path.
    #[error("{base}: {message}")]
    UnsupportedBase {
        /// The base as given.
        base: String,
        /// What is wrong with it.
        message: String,
    },
    /// An `https://` base, but TLS was not compiled in.
    #[error("{url}: https needs TLS, which is not compiled in; rebuild with the cargo feature 'fetch-tls'")]
    TlsNotCompiled {
        /// The URL requested.
        url: String,
    },
    /// No cache directory: none of `ONAD_CACHE_DIR`, `XDG_CACHE_HOME` or `HOME` is set.
    #[error("no cache directory: set ONAD_CACHE_DIR (or XDG_CACHE_HOME or HOME)")]
    NoCacheDir,
}

fn status_reason(status: u16) -> String {
    match ureq::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()) {
        Some(reason) => format!(" ({reason})"),
        None => String::new(),
    }
}

fn of_expected(expected: Option<u64>) -> String {
    expected.map(|e| format!(" of {e}")).unwrap_or_default()
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |error| FetchError::Io { path: path.to_path_buf(), error }
}

/// Where a file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Http(String),
    Local(PathBuf),
}

impl Location {
    fn parse(base: &str, file_name: &str) -> Result<Location, FetchError> {
        let unsupported = |message: &str| FetchError::UnsupportedBase { base: base.into(), message: message.into() };
        let trimmed = base.trim();
        if trimmed.is_empty() {
            return Err(unsupported("empty fetch base (expected http://HOST/PATH/, file:///DIR/ or a directory)"));
        }
        let Some((scheme, rest)) = crate::url::split_scheme(trimmed) else {
            return Ok(Location::Local(Path::new(trimmed).join(file_name)));
        };
        let slash = if trimmed.ends_with('/') { "" } else { "/" };
        match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => Ok(Location::Http(format!("{trimmed}{slash}{file_name}"))),
            "file" => {
                // file:///abs/dir and file://localhost/abs/dir; another host is not a local file.
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(unsupported("a file:// URL needs an absolute path: file:///DIR/"));
                }
                let dir = crate::url::percent_decode(path, false).map_err(|m| unsupported(&m))?;
                Ok(Location::Local(Path::new(&dir).join(file_name)))
            }
            other => Err(unsupported(&format!(
                "unsupported scheme '{other}://' (expected http://, https://, file:// or a directory)"
            ))),
        }
    }

    fn describe(&self) -> String {
        match self {
            Location::Http(url) => url.clone(),
            Location::Local(path) => path.display().to_string(),
        }
    }
}

/// The URL or path [`fetch`] would read `info` from under `base`.
pub fn source_location(info: &DatasetInfo, base: &str) -> Result<String, FetchError> {
    Location::parse(base, info.file_name).map(|l| l.describe())
}

/// Fetches a data set into `options.cache_dir` and returns the cached file's path.
///
/// When the file is already cached with the registry's sha256, nothing is read from the base. Otherwise
/// (a cached file with another checksum is deleted first) the file is streamed into a temp file in the
/// cache directory while hashing, verified, fsynced and renamed into place, and the directory fsynced. On
/// any error the temp file is removed and the cache holds no file of that name.
pub fn fetch(info: &DatasetInfo, options: &FetchOptions) -> Result<PathBuf, FetchError> {
    let dest = info.cache_path(&options.cache_dir);
    if dest.is_file() {
        let mut copy = HashingCopy::default();
        let cached = File::open(&dest)
            .map_err(CopyError::Read)
            .and_then(|mut f| copy.run(&mut f, &mut io::sink(), &ProgressBar::hidden()));
        match cached {
            Ok(()) if copy.hex() == info.sha256 => return Ok(dest),
            _ => std::fs::remove_file(&dest).map_err(io_error(&dest))?,
        }
    }
    let location = Location::parse(&options.base, info.file_name)?;
    std::fs::create_dir_all(&options.cache_dir).map_err(io_error(&options.cache_dir))?;
    // Removed when dropped, so every early return below leaves nothing behind.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", info.file_name))
        .suffix(".part")
        .tempfile_in(&options.cache_dir)
        .map_err(io_error(&options.cache_dir))?;
    let temp_path = temp.path().to_path_buf();
    let bar = progress_bar(options.progress, info.name);
    let copied = match &location {
        Location::Http(url) => download(url, info, options, temp.as_file_mut(), &temp_path, &bar),
        Location::Local(path) => copy_local(path, info, temp.as_file_mut(), &temp_path, &bar),
    };
    let actual = match copied {
        Ok(hash) => hash,
        Err(e) => {
            bar.abandon();
            return Err(e);
        }
    };
    bar.finish_and_clear();
    if actual != info.sha256 {
        return Err(FetchError::ChecksumMismatch {
            location: location.describe(),
            expected: info.sha256.into(),
            actual,
        });
    }
    temp.as_file_mut().flush().and_then(|()| temp.as_file().sync_all()).map_err(io_error(&temp_path))?;
    temp.persist(&dest).map_err(|e| FetchError::Io { path: dest.clone(), error: e.error })?;
    sync_dir(&options.cache_dir).map_err(io_error(&options.cache_dir))?;
    Ok(dest)
}

/// Fsyncs a directory, so a rename in it survives a crash (a no-op where directories cannot be opened).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn progress_bar(show: bool, name: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(0).with_style(style).with_message(name.to_string())
}

/// A hashing copy that tells read errors from write errors.
#[derive(Default)]
struct HashingCopy {
    hasher: Sha256,
    bytes: u64,
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

impl HashingCopy {
    fn run(&mut self, reader: &mut dyn Read, out: &mut dyn Write, bar: &ProgressBar) -> Result<(), CopyError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(e)),
            };
            self.hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(CopyError::Write)?;
            self.bytes += n as u64;
            bar.inc(n as u64);
        }
    }

    fn hex(&self) -> String {
        self.hasher.clone().finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn copy_local(
    path: &Path,
    info: &DatasetInfo,
    out: &mut File,
    out_path: &Path,
    bar: &ProgressBar,
) -> Result<String, FetchError> {
    let mut input = File::open(path).map_err(io_error(path))?;
    let len = input.metadata().map(|m| m.len()).unwrap_or(info.bytes);
    bar.set_length(len);
    let mut copy = HashingCopy::default();
    copy.run(&mut input, out, bar).map_err(|e| match e {
        CopyError::Read(e) => FetchError::Io { path: path.to_path_buf(), error: e },
        CopyError::Write(e) => FetchError::Io { path: out_path.to_path_buf(), error: e },
    })?;
    Ok(copy.hex())
}

fn download(
    url: &str,
    info: &DatasetInfo,
    options: &FetchOptions,
    out: &mut File,
    out_path: &Path,
    bar: &ProgressBar,
) -> Result<String, FetchError> {
    if !cfg!(feature = "fetch-tls") && url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
        return Err(FetchError::TlsNotCompiled { url: url.into() });
    }
    let timeout = Some(options.timeout);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(timeout)
        .timeout_recv_response(timeout)
        .timeout_per_read(timeout)
        .user_agent(concat!("onad/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let connection = |e: ureq::Error| {
        let error: Box<dyn std::error::Error + Send + Sync> = match e {
            ureq::Error::Io(e) => Box::new(e),
            e => Box::new(e),
        };
        FetchError::Connection { url: url.into(), error }
    };
    let response = agent.get(url).call().map_err(connection)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(FetchError::Status { url: url.into(), status });
    }
    let expected = response.body().content_length();
    bar.set_length(expected.unwrap_or(info.bytes));
    let mut reader = response.into_body().into_reader();
    let mut copy = HashingCopy::default();
    let truncated = |received| FetchError::Truncated { url: url.into(), expected, received };
    match copy.run(&mut reader, out, bar) {
        Ok(()) => {}
        Err(CopyError::Write(e)) => return Err(FetchError::Io { path: out_path.to_path_buf(), error: e }),
        Err(CopyError::Read(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(truncated(copy.bytes)),
        Err(CopyError::Read(e)) => match ureq::Error::from(e) {
            ureq::Error::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(truncated(copy.bytes)),
            e => return Err(connection(e)),
        },
    }
    if expected.is_some_and(|n| n != copy.bytes) {
        return Err(truncated(copy.bytes));
    }
    Ok(copy.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_become_urls_and_paths() {
        let parse = |b: &str| Location::parse(b, "x.csv");
        assert_eq!(parse("http://h:1/d/").unwrap(), Location::Http("http://h:1/d/x.csv".into()));
        assert_eq!(parse("http://h:1/d").unwrap(), Location::Http("http://h:1/d/x.csv".into()));
        assert_eq!(parse("HTTPS://h/").unwrap(), Location::Http("HTTPS://h/x.csv".into()));
        assert_eq!(parse("file:///a%20b/c/").unwrap(), Location::Local("/a b/c/x.csv".into()));
        assert_eq!(parse("file://localhost/a").unwrap(), Location::Local("/a/x.csv".into()));
        assert_eq!(parse("some/dir").unwrap(), Location::Local("some/dir/x.csv".into()));
        assert_eq!(parse(" /abs/dir/ ").unwrap(), Location::Local("/abs/dir/x.csv".into()));
        for (bad, says) in [("", "empty"), ("ftp://h/", "'ftp://'"), ("file://host/a", "absolute path")] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn messages_name_what_went_wrong() {
        let status = FetchError::Status { url: "http://h/x".into(), status: 404 }.to_string();
        assert_eq!(status, "http://h/x: the server answered HTTP 404 (Not Found)");
        let cut = FetchError::Truncated { url: "u".into(), expected: Some(10), received: 4 }.to_string();
        assert_eq!(cut, "u: transfer cut short after 4 bytes of 10");
        let cut = FetchError::Truncated { url: "u".into(), expected: None, received: 4 }.to_string();
        assert_eq!(cut, "u: transfer cut short after 4 bytes");
    }

    #[cfg(not(feature = "fetch-tls"))]
    #[test]
    fn https_without_tls_says_which_feature() {
        let info = &super::super::REGISTRY[0];
        let dir = tempfile::tempdir().unwrap();
        let err = fetch(info, &FetchOptions::new("https://127.0.0.1:9/", dir.path())).unwrap_err();
        assert!(matches!(err, FetchError::TlsNotCompiled { .. }), "{err}");
        assert!(err.to_string().contains("fetch-tls"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
