//! The built-in data set registry and its fetcher (cargo feature `fetch`).
//!
//! [`REGISTRY`] lists the labelled data sets of the streaming guide's themes (FRAUD, NETWORK, IOT, SYSTEM),
//! which may not be redistributed with onad and are only ever fetched into a cache, and the shippable
//! tabular and time-series sets. Each entry names its upstream page and licence, its shape and label
//! column, and the sha256 of its CSV file.
//!
//! [`fetch`] copies one into a cache directory (by default [`cache_dir`]) from a base that is an
//! `http://` URL, a `file://` URL or a plain directory, verifying the sha256 before the file appears in the
//! cache under its name, atomically; a file already cached with the right checksum is used as it is.
//! `https://` bases need the `fetch-tls` feature (rustls), which is off by default.
//!
//! ```no_run
//! use onad_sources::datasets::{FetchOptions, cache_dir, fetch, find};
//!
//! let info = find("glass").expect("a registered data set");
//! let mut options = FetchOptions::new("http://127.0.0.1:8000/data/", cache_dir()?);
//! options.progress = true;
//! let path = fetch(info, &options)?;
//! println!("{} rows of {} in {}", info.rows, info.name, path.display());
//! # Ok::<(), onad_sources::datasets::FetchError>(())
//! ```

mod fetch;
mod registry;

pub use fetch::{DEFAULT_TIMEOUT, FetchError, FetchOptions, fetch, source_location};
pub use registry::{DatasetInfo, REGISTRY, Theme, find};

use std::ffi::OsString;
use std::path::PathBuf;

/// The environment variable that overrides [`cache_dir`].
pub const CACHE_DIR_ENV: &str = "ONAD_CACHE_DIR";

/// The environment variable that may name a default fetch base (a URL or a directory), for front ends
/// that want one; [`default_base`] reads it.
pub const BASE_ENV: &str = "ONAD_DATASETS_BASE";

/// The directory where fetched data sets are cached: `$ONAD_CACHE_DIR` if set, else
/// `$XDG_CACHE_HOME/onad` (when it is an absolute path), else `$HOME/.cache/onad`. Empty variables count as
/// unset. The directory need not exist yet ([`fetch`] creates it).
pub fn cache_dir() -> Result<PathBuf, FetchError> {
    let var = |name: &str| std::env::var_os(name);
    cache_dir_from(var(CACHE_DIR_ENV), var("XDG_CACHE_HOME"), var("HOME")).ok_or(FetchError::NoCacheDir)
}

/// [`cache_dir`] from given variable values.
fn cache_dir_from(onad: Option<OsString>, xdg: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(onad) {
        return Some(dir);
    }
    // The XDG base directory specification says relative paths are invalid and must be ignored.
    if let Some(xdg) = set(xdg).filter(|p| p.is_absolute()) {
        return Some(xdg.join("onad"));
    }
    set(home).map(|home| home.join(".cache").join("onad"))
}

/// The fetch base named by `$ONAD_DATASETS_BASE`, if set and not empty.
pub fn default_base() -> Option<String> {
    std::env::var(BASE_ENV).ok().filter(|b| !b.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(s.into())
    }

    #[test]
    fn cache_dir_precedence() {
        assert_eq!(cache_dir_from(os("/c"), os("/x"), os("/h")), Some("/c".into()));
        assert_eq!(cache_dir_from(os("rel/c"), None, None), Some("rel/c".into()));
        assert_eq!(cache_dir_from(os(""), os("/x"), os("/h")), Some("/x/onad".into()));
        assert_eq!(cache_dir_from(None, os("/x"), os("/h")), Some("/x/onad".into()));
        assert_eq!(cache_dir_from(None, os("relative"), os("/h")), Some("/h/.cache/onad".into()));
        assert_eq!(cache_dir_from(None, os(""), os("/h")), Some("/h/.cache/onad".into()));
        assert_eq!(cache_dir_from(None, None, os("/h")), Some("/h/.cache/onad".into()));
        assert_eq!(cache_dir_from(None, None, os("")), None);
        assert_eq!(cache_dir_from(None, None, None), None);
    }

    #[test]
    fn registry_names_are_unique_lowercase_and_found() {
        for (i, d) in REGISTRY.iter().enumerate() {
            assert_eq!(d.name, d.name.to_ascii_lowercase());
            assert!(REGISTRY[..i].iter().all(|e| e.name != d.name && e.file_name != d.file_name), "{}", d.name);
            assert_eq!(find(d.name), Some(d));
            assert_eq!(find(&d.name.to_ascii_uppercase()), Some(d));
            assert_eq!(find(d.file_name), Some(d));
            assert_eq!(d.sha256.len(), 64);
            assert!(d.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(d.origin_url.starts_with("https://"), "{}", d.name);
        }
        assert_eq!(find("nope"), None);
    }
}
