//! A value parsed from a file and parsed again when the file changes.
//!
//! Checks are lazy: the first use after `interval` has passed looks at the file's metadata
//! (length, modification time, inode), and only a changed file is read and parsed. One caller
//! checks while the others keep using the current value, so a slow disk never stalls requests
//! behind a lock. Kubernetes secret and config-map mounts replace files through a symlink swap;
//! the metadata of the resolved file changes, so rotations are seen. A file that disappears or
//! no longer parses keeps the last good value in service and is reported once per change.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::{ArcSwap, Guard};
use secrecy::zeroize::Zeroizing;

use crate::error::Error;

type Parser<T> = Box<dyn Fn(&[u8]) -> Result<T, String> + Send + Sync>;

pub(crate) struct Reloading<T> {
    path: PathBuf,
    what: &'static str,
    interval: Duration,
    origin: Instant,
    /// Nanoseconds since `origin` before which no check is made.
    next_check: AtomicU64,
    stamp: Mutex<Option<Stamp>>,
    value: ArcSwap<T>,
    parse: Parser<T>,
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
        }
    }
}

impl<T> Reloading<T> {
    /// Reads and parses `path` now; configuration errors name `field`.
    pub(crate) fn open(
        path: &Path,
        interval: Duration,
        what: &'static str,
        field: &str,
        parse: impl Fn(&[u8]) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let read_error = |source| Error::Read {
            field: field.to_owned(),
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_error)?;
        let bytes = Zeroizing::new(std::fs::read(path).map_err(read_error)?);
        let value = parse(&bytes)
            .map_err(|reason| Error::invalid(field, format!("{}: {reason}", path.display())))?;
        Ok(Reloading {
            path: path.to_owned(),
            what,
            interval,
            origin: Instant::now(),
            next_check: AtomicU64::new(nanos(interval)),
            stamp: Mutex::new(Some(Stamp::of(&meta))),
            value: ArcSwap::from_pointee(value),
            parse: Box::new(parse),
        })
    }

    /// The current value, after re-reading the file if it is due for a check and changed.
    pub(crate) fn get(&self) -> Guard<Arc<T>> {
        self.check();
        self.value.load()
    }

    /// The file this value comes from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn check(&self) {
        let now = nanos(self.origin.elapsed());
        if now < self.next_check.load(Ordering::Relaxed) {
            return;
        }
        // Someone else is checking: use the current value.
        let Ok(mut stamp) = self.stamp.try_lock() else {
            return;
        };
        self.next_check
            .store(now.saturating_add(nanos(self.interval)), Ordering::Relaxed);
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(error) => {
                if stamp.take().is_some() {
                    tracing::warn!(path = %self.path.display(), %error,
                        "cannot read {}; keeping the last good version", self.what);
                }
                return;
            }
        };
        let new_stamp = Stamp::of(&meta);
        if stamp.as_ref() == Some(&new_stamp) {
            return;
        }
        // Remember this version even if it does not parse: it is reported once, and the
        // writer's next change is picked up.
        *stamp = Some(new_stamp);
        let parsed = std::fs::read(&self.path)
            .map(Zeroizing::new)
            .map_err(|e| e.to_string())
            .and_then(|bytes| (self.parse)(&bytes));
        match parsed {
            Ok(value) => {
                self.value.store(Arc::new(value));
                tracing::info!(path = %self.path.display(), "reloaded {}", self.what);
            }
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error,
                    "cannot use the changed {}; keeping the last good version", self.what);
            }
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_number(bytes: &[u8]) -> Result<u32, String> {
        std::str::from_utf8(bytes)
            .map_err(|e| e.to_string())?
            .trim()
            .parse()
            .map_err(|e: std::num::ParseIntError| e.to_string())
    }

    #[test]
    fn rereads_a_changed_file_and_keeps_the_last_good_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let value = Reloading::open(&path, Duration::ZERO, "number", "file", parse_number).unwrap();
        assert_eq!(**value.get(), 1);

        std::fs::write(&path, "22").unwrap();
        assert_eq!(**value.get(), 22);

        std::fs::write(&path, "not a number").unwrap();
        assert_eq!(**value.get(), 22, "a broken file keeps the last good value");

        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            **value.get(),
            22,
            "a missing file keeps the last good value"
        );

        std::fs::write(&path, "333").unwrap();
        assert_eq!(**value.get(), 333);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_swap_is_seen() {
        // How Kubernetes updates a mounted secret: a new directory, then a symlink swap.
        let dir = tempfile::tempdir().unwrap();
        let v1 = dir.path().join("v1");
        let v2 = dir.path().join("v2");
        std::fs::create_dir(&v1).unwrap();
        std::fs::create_dir(&v2).unwrap();
        std::fs::write(v1.join("n"), "1").unwrap();
        std::fs::write(v2.join("n"), "2").unwrap();
        let data = dir.path().join("..data");
        std::os::unix::fs::symlink(&v1, &data).unwrap();
        let path = dir.path().join("n");
        std::os::unix::fs::symlink(data.join("n"), &path).unwrap();

        let value = Reloading::open(&path, Duration::ZERO, "number", "file", parse_number).unwrap();
        assert_eq!(**value.get(), 1);
        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&v2, &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        assert_eq!(**value.get(), 2);
    }

    #[test]
    fn checks_wait_for_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let value = Reloading::open(
            &path,
            Duration::from_secs(3600),
            "number",
            "file",
            parse_number,
        )
        .unwrap();
        std::fs::write(&path, "2").unwrap();
        assert_eq!(**value.get(), 1, "not checked before the interval");
    }

    #[test]
    fn open_errors_name_the_field() {
        let err = Reloading::open(
            Path::new("/nonexistent/agentgw"),
            Duration::ZERO,
            "number",
            "keys.file",
            parse_number,
        )
        .err()
        .unwrap();
        assert_eq!(err.field(), "keys.file");
    }
}
