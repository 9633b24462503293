//! Where partition snapshots are made durable, behind one trait, with the epoch fence that keeps a
//! former owner from overwriting its successor's state.
//!
//! The protocol every store implements:
//! - [`SnapshotStore::claim`] is called when a worker is assigned a partition. It returns a new epoch,
//!   greater than every epoch handed out for that partition before (by any worker), and from then on only
//!   that epoch may save.
//! - [`SnapshotStore::save`] writes a snapshot only if its epoch is still the partition's current one;
//!   otherwise it returns [`Saved::Fenced`] and leaves the stored snapshot alone. A worker that was paused
//!   past its session timeout (its partitions given to another worker meanwhile) therefore cannot put its
//!   late, older state over the new owner's.
//! - [`SnapshotStore::load`] returns the newest saved snapshot (checkpoint-envelope bytes, verified by the
//!   caller).
//!
//! [`DirStore`] keeps them in a local directory (one host: every worker sees the same disk), with the
//! claim and the compare-and-save under an OS file lock. [`RedisStore`] (feature `redis`) keeps them in
//! Redis for workers on several hosts: `INCR` claims, one Lua script compares and saves atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a store could not be used.
#[derive(Debug, Error)]
#[error("snapshot store {store}: {message}")]
pub struct StoreError {
    /// The store, as configured (no password).
    pub store: String,
    /// What failed.
    pub message: String,
}

/// What became of a save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// The snapshot is durable.
    Written,
    /// Rejected: another worker has claimed the partition since (its epoch is given).
    Fenced {
        /// The partition's current epoch.
        current: u64,
    },
}

/// Durable snapshots per partition with an epoch fence; see the module docs.
pub trait SnapshotStore: Send {
    /// The store as configured, for messages.
    fn describe(&self) -> String;
    /// Takes the partition over: a new epoch, above every one handed out before.
    fn claim(&mut self, partition: &str) -> Result<u64, StoreError>;
    /// The newest snapshot of the partition, if one was ever saved.
    fn load(&mut self, partition: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Saves `bytes` when `epoch` is still the partition's current epoch.
    fn save(&mut self, partition: &str, epoch: u64, bytes: &[u8]) -> Result<Saved, StoreError>;
}

/// Snapshots in a local directory: `DIR/PARTITION.epoch` (the current epoch, decimal) and
/// `DIR/PARTITION.snapshot`, each replaced atomically (temporary file, fsync, rename, directory fsync);
/// claims and saves of one partition are serialized by an OS lock on `DIR/PARTITION.lock`, which the
/// kernel releases when a holder dies.
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// Opens (creating) the directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .map_err(|e| StoreError { store: dir.display().to_string(), message: e.to_string() })?;
        Ok(DirStore { dir })
    }

    fn error(&self, path: &Path, e: impl std::fmt::Display) -> StoreError {
        StoreError { store: self.describe(), message: format!("{}: {e}", path.display()) }
    }

    fn file(&self, partition: &str, ext: &str) -> PathBuf {
        // Partition names are `TOPIC-N`; a topic name may hold only [a-zA-Z0-9._-], so this is a plain name.
        self.dir.join(format!("{partition}.{ext}"))
    }

    /// Holds the partition's lock for the duration of `f`.
    fn locked<T>(&self, partition: &str, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let path = self.file(partition, "lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| self.error(&path, e))?;
        lock.lock().map_err(|e| self.error(&path, e))?;
        let out = f();
        let _ = lock.unlock();
        out
    }

    fn epoch(&self, partition: &str) -> Result<u64, StoreError> {
        let path = self.file(partition, "epoch");
        match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|_| self.error(&path, format!("not an epoch: {:?}", text.trim()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(self.error(&path, e)),
        }
    }

    fn replace(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| self.error(path, e))
    }
}

impl SnapshotStore for DirStore {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn claim(&mut self, partition: &str) -> Result<u64, StoreError> {
        self.locked(partition, || {
            let next = self.epoch(partition)? + 1;
            self.replace(&self.file(partition, "epoch"), next.to_string().as_bytes())?;
            Ok(next)
        })
    }

    fn load(&mut self, partition: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.file(partition, "snapshot");
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => f.read_to_end(&mut bytes).map(|_| Some(bytes)).map_err(|e| self.error(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(&path, e)),
        }
    }

    fn save(&mut self, partition: &str, epoch: u64, bytes: &[u8]) -> Result<Saved, StoreError> {
        self.locked(partition, || {
            let current = self.epoch(partition)?;
            if current != epoch {
                return Ok(Saved::Fenced { current });
            }
            self.replace(&self.file(partition, "snapshot"), bytes)?;
            Ok(Saved::Written)
        })
    }
}

/// Snapshots in Redis, for workers on several hosts: `PREFIX:PARTITION:epoch` (an integer, `INCR` on
/// claim) and `PREFIX:PARTITION:snapshot` (the bytes), saved by a Lua script that compares the epoch and
/// sets the snapshot in one atomic step. Durability is Redis's (AOF with `appendfsync always` for a
/// snapshot that survives a Redis crash).
#[cfg(feature = "redis")]
pub struct RedisStore {
    url: String,
    prefix: String,
    connection: redis::Connection,
}

#[cfg(feature = "redis")]
impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("url", &self.url).field("prefix", &self.prefix).finish()
    }
}

#[cfg(feature = "redis")]
const SAVE_SCRIPT: &str = "local e = tonumber(redis.call('GET', KEYS[1]) or '0') \
     if e == tonumber(ARGV[1]) then redis.call('SET', KEYS[2], ARGV[2]) return -1 end return e";

#[cfg(feature = "redis")]
impl RedisStore {
    /// Connects to `redis://HOST:PORT[/DB]`; keys start with `prefix`.
    pub fn open(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let shown = url.split('@').next_back().unwrap_or(url).to_owned();
        let error = |e: redis::RedisError| StoreError { store: shown.clone(), message: e.to_string() };
        let client = redis::Client::open(url).map_err(error)?;
        let connection = client.get_connection_with_timeout(std::time::Duration::from_secs(5)).map_err(error)?;
        Ok(RedisStore { url: shown, prefix: prefix.to_owned(), connection })
    }

    fn error(&self, e: redis::RedisError) -> StoreError {
        StoreError { store: self.describe(), message: e.to_string() }
    }

    fn key(&self, partition: &str, what: &str) -> String {
        format!("{}:{partition}:{what}", self.prefix)
    }
}

#[cfg(feature = "redis")]
impl SnapshotStore for RedisStore {
    fn describe(&self) -> String {
        format!("{} (keys {}:*)", self.url, self.prefix)
    }

    fn claim(&mut self, partition: &str) -> Result<u64, StoreError> {
        let key = self.key(partition, "epoch");
        redis::cmd("INCR").arg(key).query(&mut self.connection).map_err(|e| self.error(e))
    }

    fn load(&mut self, partition: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(partition, "snapshot");
        redis::cmd("GET").arg(key).query(&mut self.connection).map_err(|e| self.error(e))
    }

    fn save(&mut self, partition: &str, epoch: u64, bytes: &[u8]) -> Result<Saved, StoreError> {
        let (e, s) = (self.key(partition, "epoch"), self.key(partition, "snapshot"));
        let r: i64 = redis::cmd("EVAL")
            .arg(SAVE_SCRIPT)
            .arg(2)
            .arg(e)
            .arg(s)
            .arg(epoch)
            .arg(bytes)
            .query(&mut self.connection)
            .map_err(|e| self.error(e))?;
        Ok(if r < 0 { Saved::Written } else { Saved::Fenced { current: r as u64 } })
    }
}

/// Opens a store by its address: `redis://...` (feature `redis`; keys under `prefix`) or a directory.
pub fn open_store(address: &str, prefix: &str) -> Result<Box<dyn SnapshotStore>, StoreError> {
    if address.starts_with("redis://") {
        #[cfg(feature = "redis")]
        return Ok(Box::new(RedisStore::open(address, prefix)?));
        #[cfg(not(feature = "redis"))]
        return Err(StoreError { store: address.into(), message: "this build has no Redis (feature `redis`)".into() });
    }
    let _ = prefix;
    Ok(Box::new(DirStore::open(address)?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The protocol, for any store: claims increase, only the current epoch saves, loads give the newest.
    pub(crate) fn check_protocol(store: &mut dyn SnapshotStore) {
        assert_eq!(store.load("t-0").unwrap(), None);
        let a = store.claim("t-0").unwrap();
        assert_eq!(store.save("t-0", a, b"first").unwrap(), Saved::Written);
        assert_eq!(store.load("t-0").unwrap().as_deref(), Some(&b"first"[..]));
        let b = store.claim("t-0").unwrap();
        assert!(b > a);
        // The former owner's late save is refused and changes nothing.
        assert_eq!(store.save("t-0", a, b"late").unwrap(), Saved::Fenced { current: b });
        assert_eq!(store.load("t-0").unwrap().as_deref(), Some(&b"first"[..]));
        assert_eq!(store.save("t-0", b, b"second").unwrap(), Saved::Written);
        assert_eq!(store.load("t-0").unwrap().as_deref(), Some(&b"second"[..]));
        // Partitions are independent.
        assert_eq!(store.load("t-1").unwrap(), None);
        assert_eq!(store.claim("t-1").unwrap(), 1);
    }

    #[test]
    fn a_directory_store_fences_a_former_owner() {
        let dir = tempfile::tempdir().unwrap();
        check_protocol(&mut DirStore::open(dir.path()).unwrap());
        // A second handle on the same directory (another worker on the host) sees the same epochs.
        let mut other = DirStore::open(dir.path()).unwrap();
        assert_eq!(other.claim("t-0").unwrap(), 3);
    }

    /// A `redis-server` on a free port of 127.0.0.1 (CI installs it), stopped on drop.
    #[cfg(feature = "redis")]
    pub(crate) struct RedisServer {
        child: std::process::Child,
        pub(crate) url: String,
    }

    #[cfg(feature = "redis")]
    impl RedisServer {
        pub(crate) fn start() -> RedisServer {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server is installed (apt-get install redis-server)");
            let url = format!("redis://127.0.0.1:{port}");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while redis::Client::open(url.as_str()).unwrap().get_connection().is_err() {
                assert!(std::time::Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            RedisServer { child, url }
        }
    }

    #[cfg(feature = "redis")]
    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_redis_store_fences_a_former_owner() {
        let server = RedisServer::start();
        check_protocol(&mut RedisStore::open(&server.url, "test").unwrap());
        // Another worker's connection (another host) sees the same epochs; another prefix is another group.
        assert_eq!(RedisStore::open(&server.url, "test").unwrap().claim("t-0").unwrap(), 3);
        assert_eq!(RedisStore::open(&server.url, "other").unwrap().claim("t-0").unwrap(), 1);
        let e = RedisStore::open("redis://127.0.0.1:1", "x").unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:1"), "{e}");
    }

    #[test]
    fn a_damaged_epoch_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = DirStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("t-0.epoch"), "x").unwrap();
        let e = store.claim("t-0").unwrap_err().to_string();
        assert!(e.contains("t-0.epoch") && e.contains("not an epoch"), "{e}");
    }
}
