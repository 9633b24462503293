//! The worker's operational counters, served as Prometheus text on 127.0.0.1 and summarized in periodic
//! log lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Counters a worker keeps (shared with the endpoint's thread).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Messages read from the input topic.
    pub records_in: AtomicU64,
    /// Scored rows sent to the output.
    pub records_out: AtomicU64,
    /// Messages whose offset was applied before (not applied again).
    pub duplicates: AtomicU64,
    /// Snapshots made durable.
    pub snapshots: AtomicU64,
    /// Snapshots the store refused because another worker holds the partition now.
    pub snapshots_fenced: AtomicU64,
    /// Bytes of the last snapshot.
    pub snapshot_bytes: AtomicU64,
    /// Microseconds spent writing snapshots, in total.
    pub snapshot_micros: AtomicU64,
    /// Rebalances seen (assignments plus revocations).
    pub rebalances: AtomicU64,
    /// Models dropped by the key cap.
    pub evictions: AtomicU64,
    /// Partitions (or shards) owned now.
    pub partitions: AtomicU64,
    /// Per partition: lag (high watermark minus the next offset to apply), and bad rows by reason.
    pub detail: Mutex<Detail>,
}

/// The labelled series.
#[derive(Debug, Default)]
pub struct Detail {
    /// Partition -> lag in messages.
    pub lag: BTreeMap<i32, i64>,
    /// Reason -> bad rows skipped.
    pub skipped: BTreeMap<String, u64>,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The labelled series, locked.
    pub fn detail(&self) -> std::sync::MutexGuard<'_, Detail> {
        self.detail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counters = [
            ("onad_worker_records_in_total", "Messages read from the input topic.", get(&self.records_in)),
            ("onad_worker_records_out_total", "Scored rows sent to the output.", get(&self.records_out)),
            ("onad_worker_duplicates_total", "Messages whose offset had been applied already.", get(&self.duplicates)),
            ("onad_worker_snapshots_total", "Partition snapshots made durable.", get(&self.snapshots)),
            (
                "onad_worker_snapshots_fenced_total",
                "Snapshots refused because another worker has claimed the partition.",
                get(&self.snapshots_fenced),
            ),
            ("onad_worker_rebalances_total", "Assignments and revocations seen.", get(&self.rebalances)),
            ("onad_worker_evictions_total", "Per-key models dropped by the key cap.", get(&self.evictions)),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        let secs = get(&self.snapshot_micros) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP onad_worker_snapshot_seconds_total Time spent making snapshots durable.\n\
             # TYPE onad_worker_snapshot_seconds_total counter\nonad_worker_snapshot_seconds_total {secs}\n\
             # HELP onad_worker_snapshot_bytes Size of the last snapshot.\n\
             # TYPE onad_worker_snapshot_bytes gauge\nonad_worker_snapshot_bytes {}\n\
             # HELP onad_worker_partitions Partitions (Redis: shards) owned now.\n\
             # TYPE onad_worker_partitions gauge\nonad_worker_partitions {}",
            get(&self.snapshot_bytes),
            get(&self.partitions)
        );
        let detail = self.detail();
        let _ = writeln!(
            out,
            "# HELP onad_worker_lag Messages behind the high watermark, per owned partition.\n# TYPE onad_worker_lag gauge"
        );
        for (p, lag) in &detail.lag {
            let _ = writeln!(out, "onad_worker_lag{{partition=\"{p}\"}} {lag}");
        }
        let _ = writeln!(
            out,
            "# HELP onad_worker_skipped_total Bad messages skipped, by reason.\n# TYPE onad_worker_skipped_total counter"
        );
        for (reason, n) in &detail.skipped {
            let _ = writeln!(out, "onad_worker_skipped_total{{reason=\"{reason}\"}} {n}");
        }
        out
    }

    /// One log line's worth: `in`, `out`, `duplicates`, `snapshots`, `fenced`, `rebalances`, total lag.
    pub fn summary(&self) -> (u64, u64, u64, u64, u64, u64, i64) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let lag = self.detail().lag.values().sum();
        (
            get(&self.records_in),
            get(&self.records_out),
            get(&self.duplicates),
            get(&self.snapshots),
            get(&self.snapshots_fenced),
            get(&self.rebalances),
            lag,
        )
    }
}

/// Serves `GET /metrics` (any path, in fact) on `127.0.0.1:port` (0: a free port) from a background
/// thread; returns the address bound.
pub fn serve(metrics: Arc<Metrics>, port: u16) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new().name("onad-metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // Read the request head (to the blank line), then answer; a broken client is ignored.
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(s) => s,
                Err(_) => continue,
            });
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" && line != "\n" {
                line.clear();
            }
            let body = metrics.render();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn the_endpoint_serves_every_counter_in_prometheus_text() {
        let m = Arc::new(Metrics::default());
        Metrics::inc(&m.records_in);
        Metrics::inc(&m.records_in);
        m.detail().lag.insert(3, 17);
        m.detail().skipped.insert("invalid_json".into(), 2);
        let addr = serve(m.clone(), 0).unwrap();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.contains("\nonad_worker_records_in_total 2\n"), "{text}");
        assert!(text.contains("onad_worker_lag{partition=\"3\"} 17"), "{text}");
        assert!(text.contains("onad_worker_skipped_total{reason=\"invalid_json\"} 2"), "{text}");
        assert!(text.contains("# TYPE onad_worker_snapshots_fenced_total counter"), "{text}");
    }
}
