//! Crash-safe checkpoints: a model's state, the source position and the run's counters in a checksummed
//! envelope, written atomically, with the last K generations kept so a corrupt newest file falls back to
//! the one before.
//!
//! File layout (all integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `ONADCKPT` |
//! | 2 | format version (currently 3; 1 and 2 are still read, see below) |
//! | 4 + n | model kind (length-prefixed UTF-8, for example `standard_scaler|moving_average`) |
//! | 8 | rows seen |
//! | 4 + n | source position (length-prefixed postcard) |
//! | 8 + n | payload (length-prefixed postcard of the caller's state) |
//! | 4 | CRC-32 of every byte after the magic and before the CRC |
//!
//! Anything after the CRC is an error. A single flipped bit anywhere fails the magic, the version, a
//! length or the CRC, so a damaged file never loads silently (postcard alone would decode a flipped f64).
//!
//! Writing: the bytes go to a temporary file in the same directory, which is flushed and fsynced, renamed
//! to `checkpoint-<generation>.onad`, and the directory is fsynced; older generations beyond `keep` are
//! removed after that. A crash at any point leaves the previous generation intact; temporary leftovers
//! are ignored when loading and removed by the next write.
//!
//! Versions: the envelope is the same in every format; what changed is the payload. Format 2 payloads
//! encode model kinds by registry name with a per-model state version (so adding a model never shifts
//! how older files decode) and carry one resume position per sink; format 3 adds the input's columns
//! (a resume over other columns is refused) and encodes models as trees; format 4 keeps both tallies of
//! evicted per-key models (rows protected and drift resets, where format 3 kept the first). A loader passes a decoder that is
//! told the version ([`CheckpointDir::load_latest_with`]), so a format-1 file is migrated when it is read.
//!
//! Locking: a run that writes checkpoints holds an OS lock on `DIR/lock` ([`CheckpointDir::lock`]), so a
//! second run on the same directory is refused with the holder's process id instead of interleaving
//! generations with it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use onad_core::Position;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

const MAGIC: &[u8; 8] = b"ONADCKPT";
/// The format version this build writes.
pub const FORMAT_VERSION: u16 = 4;
/// The oldest format version this build still reads.
pub const OLDEST_VERSION: u16 = 1;
const LOCK_FILE: &str = "lock";
const PREFIX: &str = "checkpoint-";
const SUFFIX: &str = ".onad";

/// What a checkpoint holds besides the caller's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint<S> {
    /// The model kind (a registry name or pipeline), checked on load.
    pub model_kind: String,
    /// Rows processed when it was written.
    pub rows_seen: u64,
    /// Where the source resumes.
    pub position: Position,
    /// The caller's state (model, threshold, counters).
    pub state: S,
}

/// Why a checkpoint could not be written or loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The file is not a valid checkpoint.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Written by a format version this build cannot read.
    #[error(
        "{path}: checkpoint format version {found} is not supported (this build reads versions {OLDEST_VERSION} to {FORMAT_VERSION})"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u16,
    },
    /// Written for another model.
    #[error("{path}: checkpoint is for model '{found}', not '{expected}'")]
    WrongModel {
        /// The file.
        path: PathBuf,
        /// The model asked for.
        expected: String,
        /// The model in the file.
        found: String,
    },
    /// No generation could be loaded; each file's reason is listed.
    #[error("no valid checkpoint in {dir}: {}", reasons.join("; "))]
    NoneValid {
        /// The directory.
        dir: PathBuf,
        /// Why each file was rejected.
        reasons: Vec<String>,
    },
    /// The state could not be encoded.
    #[error("cannot encode the checkpoint state: {0}")]
    Encode(String),
    /// Another live process holds the directory.
    #[error(
        "{dir} is in use by another run (process {pid}); two runs must not share a checkpoint directory: wait for \
         it to end or stop it"
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// The holder's process id, as it wrote it into the lock file.
        pid: String,
    },
}

/// The OS lock on a checkpoint directory; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

fn io(path: &Path, error: std::io::Error) -> CheckpointError {
    CheckpointError::Io { path: path.to_owned(), error }
}

/// Encodes a checkpoint into bytes.
pub fn encode<S: Serialize>(c: &Checkpoint<S>) -> Result<Vec<u8>, CheckpointError> {
    let position = postcard::to_stdvec(&c.position).map_err(|e| CheckpointError::Encode(e.to_string()))?;
    let payload = postcard::to_stdvec(&c.state).map_err(|e| CheckpointError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(payload.len() + position.len() + c.model_kind.len() + 48);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(c.model_kind.len() as u32).to_le_bytes());
    out.extend_from_slice(c.model_kind.as_bytes());
    out.extend_from_slice(&c.rows_seen.to_le_bytes());
    out.extend_from_slice(&(position.len() as u32).to_le_bytes());
    out.extend_from_slice(&position);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out[MAGIC.len()..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A cursor over the bytes of a checkpoint that reports truncation as corruption.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            format!("truncated: {what} needs {n} bytes at offset {}, file has {}", self.at, self.bytes.len())
        })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self, what: &str) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap_or_default()))
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap_or_default()))
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap_or_default()))
    }
}

/// Decodes and verifies checkpoint bytes of the current format; `path` and `expected_kind` are for the
/// checks and messages.
pub fn decode<S: DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    expected_kind: &str,
) -> Result<Checkpoint<S>, CheckpointError> {
    decode_with(bytes, path, expected_kind, &[], &|version, payload| {
        if version != FORMAT_VERSION {
            return Ok(None);
        }
        postcard::from_bytes(payload).map(Some).map_err(|e| e.to_string())
    })
}

/// A payload decoder: given the file's format version and the payload bytes, the state, `Ok(None)` when
/// it cannot read that version, or why the payload is bad.
pub type PayloadDecoder<'a, S> = dyn Fn(u16, &[u8]) -> Result<Option<S>, String> + 'a;

/// Decodes and verifies checkpoint bytes of any format version from [`OLDEST_VERSION`] on, handing the
/// payload to `payload` with the version (the place to migrate older formats). A file of an older format
/// may also carry one of the `older_kinds` (the names older builds gave the same model).
pub fn decode_with<S>(
    bytes: &[u8],
    path: &Path,
    expected_kind: &str,
    older_kinds: &[String],
    payload: &PayloadDecoder<'_, S>,
) -> Result<Checkpoint<S>, CheckpointError> {
    let Envelope { version, model_kind: kind, rows_seen, position, payload: payload_bytes } = envelope(bytes, path)?;
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.to_owned(), reason };
    let unsupported = || CheckpointError::UnsupportedVersion { path: path.to_owned(), found: version };
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(unsupported());
    }
    let older = version < FORMAT_VERSION && older_kinds.iter().any(|k| k == kind);
    if kind != expected_kind && !older {
        return Err(CheckpointError::WrongModel {
            path: path.to_owned(),
            expected: expected_kind.into(),
            found: kind.into(),
        });
    }
    let state = payload(version, payload_bytes)
        .map_err(|e| corrupt(format!("bad payload (format {version}): {e}")))?
        .ok_or_else(unsupported)?;
    Ok(Checkpoint { model_kind: kind.to_owned(), rows_seen, position, state })
}

/// A checkpoint file's envelope, verified (magic, lengths, checksum, nothing after it), its payload not
/// decoded: what `onad checkpoint inspect` shows, and the first step of every load.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<'a> {
    /// The format version.
    pub version: u16,
    /// The model kind.
    pub model_kind: &'a str,
    /// Rows processed when it was written.
    pub rows_seen: u64,
    /// Where the source resumes.
    pub position: Position,
    /// The payload's bytes.
    pub payload: &'a [u8],
}

/// Reads and verifies the envelope of checkpoint bytes (of any version: the caller checks it).
pub fn envelope<'a>(bytes: &'a [u8], path: &Path) -> Result<Envelope<'a>, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.to_owned(), reason };
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len(), "magic").map_err(corrupt)? != MAGIC {
        return Err(corrupt("not an onad checkpoint (bad magic bytes)".into()));
    }
    let version = r.u16("version").map_err(corrupt)?;
    let kind_len = r.u32("model kind length").map_err(corrupt)? as usize;
    let kind = r.take(kind_len, "model kind").map_err(corrupt)?;
    let rows_seen = r.u64("rows seen").map_err(corrupt)?;
    let pos_len = r.u32("position length").map_err(corrupt)? as usize;
    let position = r.take(pos_len, "position").map_err(corrupt)?;
    let payload_len = usize::try_from(r.u64("payload length").map_err(corrupt)?).unwrap_or(usize::MAX);
    let payload = r.take(payload_len, "payload").map_err(corrupt)?;
    let body_end = r.at;
    let crc = r.u32("checksum").map_err(corrupt)?;
    if r.at != bytes.len() {
        return Err(corrupt(format!("{} unexpected bytes after the checksum", bytes.len() - r.at)));
    }
    if crc32fast::hash(&bytes[MAGIC.len()..body_end]) != crc {
        return Err(corrupt("checksum mismatch (the file is damaged)".into()));
    }
    let model_kind = std::str::from_utf8(kind).map_err(|_| corrupt("model kind is not UTF-8".into()))?;
    let position: Position = postcard::from_bytes(position).map_err(|e| corrupt(format!("bad position: {e}")))?;
    Ok(Envelope { version, model_kind, rows_seen, position, payload })
}

/// Test hook: when the environment variable `ONAD_FAILPOINT` names this point, the process aborts there
/// (simulating a crash mid-write; used by the crash tests).
fn failpoint(name: &str) {
    if std::env::var("ONAD_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// A directory of checkpoint generations.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    dir: PathBuf,
    keep: usize,
}

impl CheckpointDir {
    /// Uses (and creates) `dir`, keeping the newest `keep` generations (at least 1).
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        Ok(CheckpointDir { dir, keep: keep.max(1) })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Generations present, newest first (by number in the file name), with their paths.
    pub fn generations(&self) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| io(&self.dir, e))? {
            let entry = entry.map_err(|e| io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(g) =
                name.strip_prefix(PREFIX).and_then(|n| n.strip_suffix(SUFFIX)).and_then(|n| n.parse::<u64>().ok())
            {
                out.push((g, entry.path()));
            }
        }
        out.sort_by_key(|b| std::cmp::Reverse(b.0));
        Ok(out)
    }

    /// Writes a new generation atomically and prunes old ones; returns its path.
    pub fn write<S: Serialize>(&self, checkpoint: &Checkpoint<S>) -> Result<PathBuf, CheckpointError> {
        let bytes = encode(checkpoint)?;
        let existing = self.generations()?;
        let generation = existing.first().map_or(1, |(g, _)| g + 1);
        let tmp = self.dir.join(format!(".{PREFIX}{generation:012}{SUFFIX}.tmp"));
        let target = self.dir.join(format!("{PREFIX}{generation:012}{SUFFIX}"));
        {
            let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
            failpoint("after-write");
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        failpoint("before-rename");
        fs::rename(&tmp, &target).map_err(|e| io(&target, e))?;
        failpoint("before-dir-fsync");
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io(&self.dir, e))?;
        for (_, old) in existing.iter().skip(self.keep - 1) {
            let _ = fs::remove_file(old);
        }
        // Leftovers of interrupted writes.
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                if name.to_str().is_some_and(|n| n.starts_with(&format!(".{PREFIX}")) && n.ends_with(".tmp")) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(target)
    }

    /// Loads the newest valid generation of the current format. Invalid newer ones are skipped; their
    /// reasons are returned as warnings. `Ok(None)` when the directory holds no checkpoint at all; an error
    /// when it holds some but none is valid.
    #[allow(clippy::type_complexity)]
    pub fn load_latest<S: DeserializeOwned>(
        &self,
        expected_kind: &str,
    ) -> Result<Option<(Checkpoint<S>, PathBuf, Vec<String>)>, CheckpointError> {
        self.load_latest_with(expected_kind, &[], &|version, payload| {
            if version != FORMAT_VERSION {
                return Ok(None);
            }
            postcard::from_bytes(payload).map(Some).map_err(|e| e.to_string())
        })
    }

    /// [`CheckpointDir::load_latest`] with a payload decoder that is told each file's format version.
    #[allow(clippy::type_complexity)]
    pub fn load_latest_with<S>(
        &self,
        expected_kind: &str,
        older_kinds: &[String],
        payload: &PayloadDecoder<'_, S>,
    ) -> Result<Option<(Checkpoint<S>, PathBuf, Vec<String>)>, CheckpointError> {
        let generations = self.generations()?;
        if generations.is_empty() {
            return Ok(None);
        }
        let mut reasons = Vec::new();
        for (_, path) in &generations {
            let bytes = match fs::read(path) {
                Ok(b) => b,
                Err(e) => {
                    reasons.push(io(path, e).to_string());
                    continue;
                }
            };
            match decode_with(&bytes, path, expected_kind, older_kinds, payload) {
                Ok(c) => return Ok(Some((c, path.clone(), reasons))),
                Err(e) => reasons.push(e.to_string()),
            }
        }
        Err(CheckpointError::NoneValid { dir: self.dir.clone(), reasons })
    }

    /// Takes the directory's OS lock (a lock on `DIR/lock`, which then holds this process's id), or fails
    /// with [`CheckpointError::Locked`] naming the process that holds it. Held until the guard is dropped;
    /// the OS releases it when the process ends, however it ends, so a killed run leaves nothing stale.
    pub fn lock(&self) -> Result<DirLock, CheckpointError> {
        let path = self.dir.join(LOCK_FILE);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let pid = fs::read_to_string(&path).map(|s| s.trim().to_owned()).unwrap_or_default();
                let pid = if pid.is_empty() { "unknown".to_owned() } else { pid };
                return Err(CheckpointError::Locked { dir: self.dir.clone(), pid });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&path, e)),
        }
        // Write the id over the old one, then cut to its length, so a contender reading meanwhile never
        // finds the file empty.
        let pid = format!("{}\n", std::process::id());
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(0)).map_err(|e| io(&path, e))?;
        file.write_all(pid.as_bytes()).map_err(|e| io(&path, e))?;
        file.set_len(pid.len() as u64).map_err(|e| io(&path, e))?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint<(Vec<f64>, String)> {
        Checkpoint {
            model_kind: "standard_scaler|moving_average".into(),
            rows_seen: 4242,
            position: Position::Row(4242),
            state: ((0..50).map(|i| i as f64 * 0.5).collect(), "threshold".into()),
        }
    }

    fn load(bytes: &[u8]) -> Result<Checkpoint<(Vec<f64>, String)>, CheckpointError> {
        decode(bytes, Path::new("c.onad"), "standard_scaler|moving_average")
    }

    #[test]
    fn round_trip() {
        let c = sample();
        assert_eq!(load(&encode(&c).unwrap()).unwrap(), c);
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let bytes = encode(&sample()).unwrap();
        let mut x = 0x2545F4914F6CDD1Du64;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bit = (x % (bytes.len() as u64 * 8)) as usize;
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(load(&b).is_err(), "flipping bit {bit} loaded silently");
        }
        // Exhaustively too, since the file is small.
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(load(&b).is_err(), "flipping bit {bit} loaded silently");
        }
    }

    #[test]
    fn truncation_garbage_version_and_kind_are_typed_errors() {
        let bytes = encode(&sample()).unwrap();
        for len in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            let e = load(&bytes[..len]).unwrap_err().to_string();
            assert!(e.starts_with("c.onad: ") && (e.contains("truncated") || e.contains("magic")), "{len}: {e}");
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"junk");
        assert!(load(&longer).unwrap_err().to_string().contains("unexpected bytes"));
        // A version this build does not know, with a valid checksum.
        for version in [0u16, FORMAT_VERSION + 1] {
            let mut other = bytes.clone();
            other[8..10].copy_from_slice(&version.to_le_bytes());
            let n = other.len();
            let crc = crc32fast::hash(&other[8..n - 4]);
            other[n - 4..].copy_from_slice(&crc.to_le_bytes());
            let e = load(&other);
            assert!(matches!(e, Err(CheckpointError::UnsupportedVersion { found, .. }) if found == version), "{e:?}");
        }
        // An older format that the caller's decoder does not read is unsupported, not corrupt.
        let mut v1 = bytes.clone();
        v1[8..10].copy_from_slice(&1u16.to_le_bytes());
        let n = v1.len();
        let crc = crc32fast::hash(&v1[8..n - 4]);
        v1[n - 4..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(load(&v1), Err(CheckpointError::UnsupportedVersion { found: 1, .. })));
        let any_version = |v: u16, _: &[u8]| -> Result<Option<u16>, String> { Ok(Some(v)) };
        let migrated = decode_with(&v1, Path::new("c.onad"), "standard_scaler|moving_average", &[], &any_version);
        assert_eq!(migrated.unwrap().state, 1, "the decoder is told the file's version");
        // An older build's name of the model is accepted in an older format only.
        let renamed = "protect(standard_scaler|moving_average)";
        let older = ["standard_scaler|moving_average".to_owned()];
        let read = |b: &[u8]| decode_with(b, Path::new("c.onad"), renamed, &older, &any_version);
        assert_eq!(read(&v1).unwrap().state, 1);
        assert!(matches!(read(&bytes), Err(CheckpointError::WrongModel { .. })), "the current format names it exactly");
        let e = decode::<(Vec<f64>, String)>(&bytes, Path::new("c.onad"), "null_model").unwrap_err();
        assert!(matches!(e, CheckpointError::WrongModel { .. }), "{e}");
    }

    #[test]
    fn generations_fall_back_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let cd = CheckpointDir::new(dir.path(), 2).unwrap();
        let mut c = sample();
        for rows in [100, 200, 300] {
            c.rows_seen = rows;
            cd.write(&c).unwrap();
        }
        let gens = cd.generations().unwrap();
        assert_eq!(gens.iter().map(|g| g.0).collect::<Vec<_>>(), vec![3, 2], "keeps the newest two");
        // Corrupt the newest: the previous one loads, with a warning naming the bad file.
        let newest = &gens[0].1;
        let mut bytes = fs::read(newest).unwrap();
        bytes.truncate(bytes.len() / 2);
        fs::write(newest, bytes).unwrap();
        // A leftover temp file is ignored.
        fs::write(dir.path().join(".checkpoint-000000000004.onad.tmp"), b"partial").unwrap();
        let (loaded, path, warnings) =
            cd.load_latest::<(Vec<f64>, String)>("standard_scaler|moving_average").unwrap().unwrap();
        assert_eq!(loaded.rows_seen, 200);
        assert_eq!(path, gens[1].1);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("truncated"), "{warnings:?}");
        // Both bad: an error listing both reasons.
        fs::write(&gens[1].1, b"nope").unwrap();
        let e = cd.load_latest::<(Vec<f64>, String)>("standard_scaler|moving_average").unwrap_err().to_string();
        assert!(e.starts_with("no valid checkpoint") && e.matches("onad:").count() >= 2, "{e}");
        // The next write removes the temp leftover.
        cd.write(&c).unwrap();
        assert!(!dir.path().join(".checkpoint-000000000004.onad.tmp").exists());
        let empty = tempfile::tempdir().unwrap();
        assert!(CheckpointDir::new(empty.path(), 3).unwrap().load_latest::<u8>("x").unwrap().is_none());
    }

    #[test]
    fn a_directory_is_locked_by_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let cd = CheckpointDir::new(dir.path(), 2).unwrap();
        let held = cd.lock().unwrap();
        let e = cd.lock().unwrap_err();
        let pid = std::process::id().to_string();
        assert!(matches!(&e, CheckpointError::Locked { pid: p, .. } if *p == pid), "{e}");
        assert!(e.to_string().contains(&format!("process {pid}")), "{e}");
        // The lock file is not taken for a generation.
        cd.write(&sample()).unwrap();
        assert_eq!(cd.generations().unwrap().len(), 1);
        drop(held);
        let _again = cd.lock().unwrap();
    }
}
