//! The data set registry and `datasets::fetch`: a tiny HTTP/1.1 server on 127.0.0.1 serves the shared data
//! files (success and the cache hit, wrong bytes, a truncated transfer, HTTP errors, a refused connection,
//! a stalled server), local directories and file:// bases, and every registry entry is checked against
//! its file in the shared data directory (sha256, size, header, rows, anomalies).
#![cfg(feature = "fetch")]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use onad_sources::datasets::{self, DatasetInfo, FetchError, FetchOptions, REGISTRY, fetch, find};
use sha2::{Digest, Sha256};

/// The shared labelled data: `$ONAD_DATA_DIR`, else `../shared/data` beside the repository.
fn data_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("ONAD_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("../shared/data"));
    assert!(dir.join("shippable").is_dir(), "shared data not found at {}; set ONAD_DATA_DIR", dir.display());
    dir
}

fn shared_file(info: &DatasetInfo) -> PathBuf {
    data_dir().join(info.shared_subdir()).join(info.file_name)
}

fn bytes_of(name: &str) -> Vec<u8> {
    std::fs::read(shared_file(find(name).unwrap())).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The names in a directory (the cache must hold nothing but verified files).
fn listing(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return vec![];
    }
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

fn status(code: u16, reason: &str) -> Vec<u8> {
    let body = format!("{code} {reason}\n");
    format!("HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        .into_bytes()
}

/// A response announcing `announced` bytes but carrying only `body`; the server then closes.
fn truncated(body: &[u8], announced: usize) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n").into_bytes();
    r.extend_from_slice(body);
    r
}

/// A one-connection-at-a-time HTTP/1.1 server on 127.0.0.1 that answers every request with the bytes the
/// handler gives for its path, then closes the connection. It counts the requests it has read.
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

impl Server {
    fn start(handler: impl Fn(&str) -> Vec<u8> + Send + 'static) -> Server {
        Server::start_with(move |path, stream| {
            let _ = stream.write_all(&handler(path));
        })
    }

    /// The handler writes the response itself (or holds the connection).
    fn start_with(handler: impl Fn(&str, &mut TcpStream) + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/data/", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(path) = read_request(&stream) else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                handler(&path, &mut stream);
                let _ = stream.flush();
            }
        });
        Server { base, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads a request's head and returns its path (`GET /data/x.csv HTTP/1.1` gives `/data/x.csv`).
fn read_request(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            return Some(path);
        }
    }
}

fn options(base: &str, cache: &Path) -> FetchOptions {
    let mut options = FetchOptions::new(base, cache.join("cache"));
    options.timeout = Duration::from_secs(10);
    options
}

#[test]
fn fetches_over_http_verifies_and_then_hits_the_cache() {
    let glass = find("glass").unwrap();
    let bytes = bytes_of("glass");
    let server =
        Server::start(move |path| if path == "/data/glass_odds.csv" { ok(&bytes) } else { status(404, "Not Found") });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&server.base, dir.path());
    opts.progress = true; // stderr is not a terminal under the test harness, so it draws nothing
    let path = fetch(glass, &opts).unwrap();
    assert_eq!(path, opts.cache_dir.join("glass_odds.csv"));
    assert_eq!(sha256_hex(&std::fs::read(&path).unwrap()), glass.sha256);
    assert_eq!(server.requests(), 1);
    assert_eq!(listing(&opts.cache_dir), ["glass_odds.csv"]);

    // Cached with the right checksum: no request at all.
    assert_eq!(fetch(glass, &opts).unwrap(), path);
    assert_eq!(server.requests(), 1);

    // A second data set lands beside the first (a base without its trailing slash works too).
    let breastw_bytes = bytes_of("breastw");
    let other =
        Server::start(
            move |path| {
                if path == "/data/breastw_odds.csv" { ok(&breastw_bytes) } else { status(404, "Not Found") }
            },
        );
    let mut opts2 = opts.clone();
    opts2.base = other.base.trim_end_matches('/').to_string();
    fetch(find("breastw").unwrap(), &opts2).unwrap();
    assert_eq!(other.requests(), 1);
    assert_eq!(listing(&opts.cache_dir), ["breastw_odds.csv", "glass_odds.csv"]);
}

#[test]
fn a_damaged_cached_file_is_fetched_again() {
    let glass = find("glass").unwrap();
    let bytes = bytes_of("glass");
    let server = Server::start(move |_| ok(&bytes));
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&server.base, dir.path());
    std::fs::create_dir_all(&opts.cache_dir).unwrap();
    std::fs::write(glass.cache_path(&opts.cache_dir), b"RI,Na\n1,2\n").unwrap();
    let path = fetch(glass, &opts).unwrap();
    assert_eq!(server.requests(), 1);
    assert_eq!(sha256_hex(&std::fs::read(path).unwrap()), glass.sha256);
}

#[test]
fn wrong_bytes_fail_the_checksum_and_leave_nothing() {
    let glass = find("glass").unwrap();
    let wrong = bytes_of("breastw");
    let wrong_sha = sha256_hex(&wrong);
    let server = Server::start(move |_| ok(&wrong));
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&server.base, dir.path());
    let err = fetch(glass, &opts).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, FetchError::ChecksumMismatch { .. }), "{message}");
    assert!(message.contains(glass.sha256) && message.contains(&wrong_sha), "{message}");
    assert!(message.contains("glass_odds.csv"), "{message}");
    assert_eq!(listing(&opts.cache_dir), Vec::<String>::new());
}

#[test]
fn a_truncated_transfer_fails_and_leaves_nothing() {
    let breastw = find("breastw").unwrap();
    let bytes = bytes_of("breastw");
    let len = bytes.len();
    // The whole file, but announced as longer: the connection closes 1,000 bytes early.
    let server = Server::start(move |_| truncated(&bytes, len + 1000));
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&server.base, dir.path());
    let err = fetch(breastw, &opts).unwrap_err();
    assert!(matches!(err, FetchError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("cut short"), "{err}");
    assert_eq!(listing(&opts.cache_dir), Vec::<String>::new());

    // Half the file, then the connection closes.
    let half = bytes_of("breastw")[..len / 2].to_vec();
    let server = Server::start(move |_| truncated(&half, len));
    let err = fetch(breastw, &options(&server.base, dir.path())).unwrap_err();
    match &err {
        FetchError::Truncated { expected, received, .. } => {
            assert_eq!(*expected, Some(len as u64));
            assert_eq!(*received, (len / 2) as u64);
        }
        other => panic!("expected a truncated transfer, got {other}"),
    }
    assert_eq!(listing(&opts.cache_dir), Vec::<String>::new());
}

#[test]
fn http_errors_name_the_url_and_status() {
    let glass = find("glass").unwrap();
    for (code, reason) in [(500, "Internal Server Error"), (404, "Not Found")] {
        let server = Server::start(move |_| status(code, reason));
        let dir = tempfile::tempdir().unwrap();
        let opts = options(&server.base, dir.path());
        let err = fetch(glass, &opts).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, FetchError::Status { status, .. } if status == code), "{message}");
        assert!(message.contains(&code.to_string()) && message.contains(reason), "{message}");
        assert!(message.contains(&format!("{}glass_odds.csv", server.base)), "{message}");
        assert_eq!(listing(&opts.cache_dir), Vec::<String>::new());
    }
}

#[test]
fn a_refused_connection_is_an_error() {
    // A port that was just free: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&format!("http://127.0.0.1:{port}/"), dir.path());
    let err = fetch(find("glass").unwrap(), &opts).unwrap_err();
    assert!(matches!(err, FetchError::Connection { .. }), "{err}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}/glass_odds.csv")), "{err}");
    assert_eq!(listing(&opts.cache_dir), Vec::<String>::new());
}

#[test]
fn a_stalled_server_times_out() {
    // Reads the request, then neither answers nor closes for a while.
    let server = Server::start_with(|_, _| std::thread::sleep(Duration::from_secs(3)));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&server.base, dir.path());
    opts.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let err = fetch(find("glass").unwrap(), &opts).unwrap_err();
    assert!(matches!(err, FetchError::Connection { .. }), "{err}");
    assert!(err.to_string().contains("timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(listing(&opts.cache_dir), Vec::<String>::new());
}

#[test]
fn local_directories_and_file_urls_are_copied_and_verified() {
    let glass = find("glass").unwrap();
    let shippable = data_dir().join("shippable");
    let dir = tempfile::tempdir().unwrap();

    let opts = options(shippable.to_str().unwrap(), dir.path());
    let path = fetch(glass, &opts).unwrap();
    assert_eq!(sha256_hex(&std::fs::read(&path).unwrap()), glass.sha256);
    std::fs::remove_file(&path).unwrap();

    let absolute = std::fs::canonicalize(&shippable).unwrap();
    let url = format!("file://{}/", absolute.display());
    let path = fetch(glass, &options(&url, dir.path())).unwrap();
    assert_eq!(sha256_hex(&std::fs::read(&path).unwrap()), glass.sha256);
    assert_eq!(listing(&opts.cache_dir), ["glass_odds.csv"]);

    // A directory whose glass_odds.csv holds other bytes, and one without the file.
    let wrong = tempfile::tempdir().unwrap();
    std::fs::write(wrong.path().join("glass_odds.csv"), bytes_of("breastw")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = fetch(glass, &options(wrong.path().to_str().unwrap(), cache.path())).unwrap_err();
    assert!(matches!(err, FetchError::ChecksumMismatch { .. }), "{err}");
    let err = fetch(find("breastw").unwrap(), &options(wrong.path().to_str().unwrap(), cache.path())).unwrap_err();
    assert!(matches!(err, FetchError::Io { .. }), "{err}");
    assert!(err.to_string().contains("breastw_odds.csv"), "{err}");
    assert_eq!(listing(&cache.path().join("cache")), Vec::<String>::new());

    let err = fetch(glass, &options("ftp://127.0.0.1/data/", cache.path())).unwrap_err();
    assert!(matches!(err, FetchError::UnsupportedBase { .. }), "{err}");
}

#[test]
fn source_locations_join_base_and_file_name() {
    let glass = find("glass").unwrap();
    assert_eq!(datasets::source_location(glass, "http://h:8/d").unwrap(), "http://h:8/d/glass_odds.csv");
    assert_eq!(datasets::source_location(glass, "/srv/d/").unwrap(), "/srv/d/glass_odds.csv");
}

/// Every registry entry against its file in the shared data directory: size, sha256, header (label column,
/// other columns, feature count), data rows and anomalies.
#[test]
fn every_registry_entry_matches_its_shared_file() {
    let themes: Vec<&str> = REGISTRY.iter().map(|d| d.theme.as_str()).collect();
    for theme in ["FRAUD", "NETWORK", "IOT", "SYSTEM"] {
        assert!(themes.contains(&theme), "no {theme} data set");
    }
    for info in REGISTRY {
        let path = shared_file(info);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(bytes.len() as u64, info.bytes, "{}: size", info.name);
        assert_eq!(sha256_hex(&bytes), info.sha256, "{}: sha256", info.name);

        let mut lines = BufReader::new(&bytes[..]).lines();
        let header: Vec<String> = lines.next().unwrap().unwrap().split(',').map(str::to_string).collect();
        let label = header.iter().position(|c| c == info.label_column);
        let label = label.unwrap_or_else(|| panic!("{}: no label column '{}'", info.name, info.label_column));
        for other in info.other_columns {
            assert!(header.iter().any(|c| c == other), "{}: no column '{other}'", info.name);
        }
        assert_eq!(header.len(), info.features + 1 + info.other_columns.len(), "{}: features", info.name);

        let (mut rows, mut anomalies) = (0u64, 0u64);
        for line in lines {
            let line = line.unwrap();
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), header.len(), "{}: row {rows}", info.name);
            let value: f64 = fields[label].trim().parse().unwrap();
            assert!(value == 0.0 || value == 1.0, "{}: label {value} in row {rows}", info.name);
            anomalies += (value == 1.0) as u64;
            rows += 1;
        }
        assert_eq!(rows, info.rows, "{}: rows", info.name);
        assert_eq!(anomalies, info.anomalies, "{}: anomalies", info.name);
        assert_eq!(info.anomaly_rate, anomalies as f64 / rows as f64, "{}: anomaly rate", info.name);
    }
}

#[test]
fn the_shared_checksum_list_agrees_with_the_registry() {
    let sums = std::fs::read_to_string(data_dir().join("SHA256SUMS")).unwrap();
    let mut listed = 0;
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (sha, file) = line.split_once("  ").unwrap();
        let info = REGISTRY.iter().find(|d| format!("{}/{}", d.shared_subdir(), d.file_name) == file);
        let info = info.unwrap_or_else(|| panic!("{file} is not in the registry"));
        assert_eq!(info.sha256, sha, "{file}");
        listed += 1;
    }
    assert_eq!(listed, REGISTRY.len());
}
