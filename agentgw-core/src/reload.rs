//! A value parsed from files and swapped in when they change: API key tables, secrets, JWKS,
//! certificates and their keys.
//!
//! [`Reloading<T>`] reads and parses its files once when it is opened, then a background
//! watcher ([`watch`](Reloading::watch)) on the current Tokio runtime looks at them every
//! interval. Every layer that follows a file uses this one design:
//!
//! - **Reads never wait.** The value in service sits behind an [`arc_swap::ArcSwap`]:
//!   [`current`](Reloading::current) is lock-free and never touches the disk, so a slow or hung
//!   mount cannot stall a request.
//! - **Cheap checks, work only on change.** Each tick compares the files' stamps (length,
//!   modification time and, on Unix, device and inode) with those of the version in service.
//!   Only when a stamp changed are the files read and parsed, on the blocking pool. Kubernetes
//!   secret and config-map mounts replace files by swapping a `..data` symlink: the stamp of the
//!   resolved file changes, so those rotations are seen. A file whose modification time is
//!   within two seconds of the last read (coarser than any common file system's timestamp
//!   granularity) is read again until it settles, and the content is compared, so an in-place
//!   rewrite of the same length in the same timestamp tick is not missed.
//! - **No half-written versions.** The watcher reads a changed file once its stamp has held
//!   still from one tick to the next, and reads it again if it changes while being read, so a
//!   file caught in the middle of a write that is not atomic (truncated, then written) is not
//!   put in service; a change takes effect one to two intervals after it is made.
//! - **Files that belong together are read together.** A certificate and its key are one
//!   value: both files are read at the same check and handed to one parser ([`Contents`]), so a
//!   certificate is never paired with the previous key.
//! - **The last good value stays.** A file that vanishes, cannot be read or does not parse
//!   leaves the previous value in service. The problem is logged through `tracing` once per
//!   change (not at every tick) and can be read back with
//!   [`last_error`](Reloading::last_error); [`reloads`](Reloading::reloads) counts the versions
//!   put in service.
//! - **The watcher lives as long as the value.** It holds a weak reference: when the last
//!   clone of the [`Reloading`] is dropped, it stops at its next tick. It needs a Tokio runtime;
//!   outside one, [`watch`](Reloading::watch) returns [`ReloadError::NoRuntime`] and the value
//!   still works, fixed, or reloaded by hand with [`check`](Reloading::check).
//! - **Errors name the field.** A [`ReloadError`] carries the configuration field that named the
//!   file (`keys.file`, `certFile`) and the file itself, like every agentgw configuration error
//!   ([`ConfigError`]).
//!
//! File contents are zeroized after parsing: secrets read through this module do not linger in
//! freed memory.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use agentgw_core::reload::Reloading;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("limit");
//! std::fs::write(&path, "100\n")?;
//!
//! // Read and parsed now: a missing or broken file is an error naming the field.
//! let limit = Reloading::open("request limit", "limits.file", &path, |bytes| {
//!     let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
//!     text.trim().parse::<u32>().map_err(|e| e.to_string())
//! })?;
//! assert_eq!(*limit.current(), 100);
//! limit.watch(Duration::from_millis(10))?;
//!
//! // A new version is picked up by the watcher...
//! std::fs::write(&path, "250\n")?;
//! while limit.reloads() == 0 {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! assert_eq!(*limit.current(), 250);
//!
//! // ...a broken one is refused and reported, and the last good value stays in service.
//! std::fs::write(&path, "a lot\n")?;
//! while limit.last_error().is_none() {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! assert_eq!(*limit.current(), 250);
//! let error = limit.last_error().unwrap();
//! assert!(error.to_string().starts_with("limits.file: "), "{error}");
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::hash::{DefaultHasher, Hasher};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, Guard};
use tokio::task::{AbortHandle, JoinHandle};
use zeroize::Zeroizing;

use crate::config::ConfigError;

/// How long after its modification time a file's stamp is not trusted alone: the coarsest
/// timestamp granularity in common use (FAT's 2 s; ext3 and HFS+ have 1 s, most others a clock
/// tick). A second write within one tick can leave length, time and inode unchanged.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// A value parsed from one or more files and swapped in when they change. Cheap to clone;
/// clones share the value and the watcher. See the [module docs](self) for the design and an
/// example.
pub struct Reloading<T> {
    shared: Arc<Shared<T>>,
}

type Parser<T> = dyn Fn(&Contents<'_>) -> Result<T, ReloadError> + Send + Sync;

struct Shared<T> {
    what: Cow<'static, str>,
    files: Box<[WatchedFile]>,
    value: ArcSwap<T>,
    parse: Box<Parser<T>>,
    state: Mutex<State>,
    watcher: Mutex<Option<AbortHandle>>,
}

/// What is known about the files; the lock also serializes checks.
struct State {
    /// Stamps of the version last read; `None` when a file could not be examined since.
    stamps: Option<Box<[Stamp]>>,
    /// When that version was read (taken before its stamps).
    read_at: SystemTime,
    /// Content fingerprint of that version.
    fingerprint: u64,
    /// Why that version was refused, when it was.
    refused: Option<ReloadError>,
    /// Stamps of a change the watcher saw at its last tick, read if they hold still until the
    /// next one.
    pending: Option<Box<[Stamp]>>,
    /// What [`Reloading::last_error`] reports.
    error: Option<ReloadError>,
    /// Versions put in service after the first.
    reloads: u64,
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

    /// Whether a later write is sure to change this stamp: the modification time is known and
    /// older than `read_at` by more than a timestamp tick.
    fn settled(&self, read_at: SystemTime) -> bool {
        self.modified
            .and_then(|modified| read_at.duration_since(modified).ok())
            .is_some_and(|age| age > RACY_WINDOW)
    }
}

/// One file of a [`Reloading`] value: the configuration field that names it and its path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchedFile {
    field: String,
    file: PathBuf,
}

impl WatchedFile {
    /// `file`, named by the configuration field `field` (relative to the layer's block, as in
    /// every agentgw configuration error: `keys.file`, `certFile`).
    pub fn new(field: impl Into<String>, file: impl Into<PathBuf>) -> Self {
        WatchedFile {
            field: field.into(),
            file: file.into(),
        }
    }

    /// The configuration field that names the file.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The file. Relative paths are relative to the process's working directory; symlinks are
    /// followed at every check.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

/// The files of one version, read together, as handed to the parser of
/// [`Reloading::open_files`]. Indexes follow the order the files were given in.
#[derive(Debug)]
pub struct Contents<'a> {
    files: &'a [WatchedFile],
    bytes: &'a [Zeroizing<Vec<u8>>],
    reload: bool,
}

impl<'a> Contents<'a> {
    /// The content of file `index`.
    ///
    /// # Panics
    ///
    /// When `index` is not the index of a file.
    pub fn bytes(&self, index: usize) -> &'a [u8] {
        &self.bytes[index]
    }

    /// File `index` and its field.
    ///
    /// # Panics
    ///
    /// When `index` is not the index of a file.
    pub fn file(&self, index: usize) -> &'a WatchedFile {
        &self.files[index]
    }

    /// All the files, in the order they were given.
    pub fn files(&self) -> &'a [WatchedFile] {
        self.files
    }

    /// `false` while the value is opened, `true` for a new version found later: a parser may be
    /// stricter with a replacement than at start-up (refusing an expired certificate rather
    /// than starting without one).
    pub fn is_reload(&self) -> bool {
        self.reload
    }

    /// The error for content of file `index` that cannot be used. `reason` must not quote a
    /// secret.
    ///
    /// # Panics
    ///
    /// When `index` is not the index of a file.
    pub fn invalid(&self, index: usize, reason: impl Into<String>) -> ReloadError {
        let file = &self.files[index];
        ReloadError::Invalid {
            field: file.field.clone(),
            file: file.file.clone(),
            reason: reason.into(),
        }
    }
}

/// What a [`check`](Reloading::check) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The files hold the version already in service (or already refused).
    Unchanged,
    /// A new version was parsed and is now in service.
    Reloaded,
}

/// Why files could not be loaded, a new version was refused, or watching could not start.
///
/// Its [`path`](ConfigError::path) is the configuration field that named the file; the file
/// itself is [`file`](Self::file). Cloning is cheap (the I/O error is shared), so the error
/// of the last check can be both returned and kept ([`Reloading::last_error`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file cannot be examined or read (missing, unreadable, a dangling symlink).
    Read {
        /// The configuration field that names the file.
        field: String,
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: Arc<std::io::Error>,
    },
    /// The content cannot be used; made by the parser with [`Contents::invalid`].
    Invalid {
        /// The configuration field that names the file.
        field: String,
        /// The file.
        file: PathBuf,
        /// What is wrong, without any secret.
        reason: String,
    },
    /// [`Reloading::watch`] was called outside a Tokio runtime.
    NoRuntime {
        /// The configuration field that names the (first) file.
        field: String,
        /// The (first) file.
        file: PathBuf,
    },
}

impl ReloadError {
    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            ReloadError::Read { file, .. }
            | ReloadError::Invalid { file, .. }
            | ReloadError::NoRuntime { file, .. } => file,
        }
    }

    fn read(watched: &WatchedFile, source: std::io::Error) -> Self {
        ReloadError::Read {
            field: watched.field.clone(),
            file: watched.file.clone(),
            source: Arc::new(source),
        }
    }
}

impl ConfigError for ReloadError {
    fn path(&self) -> &str {
        match self {
            ReloadError::Read { field, .. }
            | ReloadError::Invalid { field, .. }
            | ReloadError::NoRuntime { field, .. } => field,
        }
    }

    fn reason(&self) -> String {
        match self {
            ReloadError::Read { file, source, .. } => {
                format!("cannot read {}: {source}", file.display())
            }
            ReloadError::Invalid { file, reason, .. } => format!("{}: {reason}", file.display()),
            ReloadError::NoRuntime { file, .. } => format!(
                "watching {} for changes needs a Tokio runtime; build this inside one",
                file.display()
            ),
        }
    }
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.reason())
    }
}

impl std::error::Error for ReloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReloadError::Read { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// The value in service when it was asked for: a lock-free snapshot that a concurrent reload
/// does not change. Dereferences to `T`; hold it briefly (for one request), not across awaits
/// that may last.
pub struct Current<T>(Guard<Arc<T>>);

impl<T> Current<T> {
    /// The snapshot as an `Arc`, to keep it longer.
    pub fn into_arc(self) -> Arc<T> {
        Guard::into_inner(self.0)
    }
}

impl<T> Deref for Current<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Current<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T> Clone for Reloading<T> {
    fn clone(&self) -> Self {
        Reloading {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Names the files and counts reloads; never shows the value (it may be a secret).
impl<T> fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloading")
            .field("what", &self.shared.what)
            .field("files", &self.shared.files)
            .field("reloads", &self.reloads())
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Reads `file` (named by the configuration field `field`) and parses it with `parse` now.
    /// `what` names the value in logs (`"API keys"`). `parse` returns why the content cannot
    /// be used, without quoting a secret; it runs again, on the blocking pool, for each new
    /// version.
    pub fn open(
        what: impl Into<Cow<'static, str>>,
        field: impl Into<String>,
        file: impl Into<PathBuf>,
        parse: impl Fn(&[u8]) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Self, ReloadError> {
        Self::open_files(what, [WatchedFile::new(field, file)], move |contents| {
            parse(contents.bytes(0)).map_err(|reason| contents.invalid(0, reason))
        })
    }

    /// Reads all `files` and parses them together with `parse` now; a change to any of them
    /// reads all of them again. `parse` makes its errors with [`Contents::invalid`], naming the
    /// file at fault.
    ///
    /// # Panics
    ///
    /// When `files` is empty.
    pub fn open_files(
        what: impl Into<Cow<'static, str>>,
        files: impl IntoIterator<Item = WatchedFile>,
        parse: impl Fn(&Contents<'_>) -> Result<T, ReloadError> + Send + Sync + 'static,
    ) -> Result<Self, ReloadError> {
        let files: Box<[WatchedFile]> = files.into_iter().collect();
        assert!(
            !files.is_empty(),
            "a reloading value needs at least one file"
        );
        let read_at = SystemTime::now();
        let stamps = stamps(&files)?;
        let bytes = read(&files)?;
        let value = parse(&Contents {
            files: &files,
            bytes: &bytes,
            reload: false,
        })?;
        Ok(Reloading {
            shared: Arc::new(Shared {
                what: what.into(),
                value: ArcSwap::from_pointee(value),
                state: Mutex::new(State {
                    stamps: Some(stamps),
                    read_at,
                    fingerprint: fingerprint(&bytes),
                    refused: None,
                    pending: None,
                    error: None,
                    reloads: 0,
                }),
                files,
                parse: Box::new(parse),
                watcher: Mutex::new(None),
            }),
        })
    }

    /// Starts checking the files every `interval` on the current Tokio runtime, replacing a
    /// watcher started before (which stops). The task ends at the first tick after the last
    /// clone of this value is dropped; a zero `interval` turns watching off (the returned task
    /// ends at once). Outcomes are logged and kept ([`last_error`](Self::last_error),
    /// [`reloads`](Self::reloads)).
    ///
    /// The stamps are compared on the runtime's thread (a `stat` per file); reading and
    /// parsing a changed version run on the blocking pool.
    pub fn watch(&self, interval: Duration) -> Result<JoinHandle<()>, ReloadError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            let first = &self.shared.files[0];
            ReloadError::NoRuntime {
                field: first.field.clone(),
                file: first.file.clone(),
            }
        })?;
        let task = runtime.spawn(watch(Arc::downgrade(&self.shared), interval));
        let previous = lock(&self.shared.watcher).replace(task.abort_handle());
        if let Some(previous) = previous {
            previous.abort();
        }
        Ok(task)
    }
}

impl<T> Reloading<T> {
    /// The value in service, without locking and without touching the disk.
    pub fn current(&self) -> Current<T> {
        Current(self.shared.value.load())
    }

    /// Checks the files now, reading them on this thread: a new version that parses is put in
    /// service. `Err` when a file cannot be read now or a new version is refused (the previous
    /// value stays); a version already refused is [`Unchanged`](ReloadOutcome::Unchanged), not
    /// refused again. From async code, call it through `spawn_blocking`.
    pub fn check(&self) -> Result<ReloadOutcome, ReloadError> {
        self.shared.check(Expect::Anything)
    }

    /// How many new versions were put in service since the value was opened. Waits for a
    /// check in progress.
    pub fn reloads(&self) -> u64 {
        lock(&self.shared.state).reloads
    }

    /// Why the files on disk are not what is in service, as of the last check: a file that
    /// cannot be read, or a version that was refused. `None` when the last check found the
    /// version in service. Waits for a check in progress.
    pub fn last_error(&self) -> Option<ReloadError> {
        lock(&self.shared.state).error.clone()
    }

    /// The files, in the order they were given.
    pub fn files(&self) -> &[WatchedFile] {
        &self.shared.files
    }
}

/// The watcher: a stamp comparison every `interval`, a read and parse on the blocking pool when
/// something changed, until the value is dropped.
async fn watch<T: Send + Sync + 'static>(shared: Weak<Shared<T>>, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    let start = tokio::time::Instant::now() + interval;
    let mut ticks = tokio::time::interval_at(start, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Some(expect) = shared.due() else {
            continue;
        };
        let what = shared.what.clone();
        // The check logs and keeps its own outcome; only a panicking parser is reported here.
        if let Err(error) = tokio::task::spawn_blocking(move || shared.check(expect)).await {
            tracing::error!(what = %what, %error, "reloading failed");
        }
    }
}

/// What a check expects to find, so that the watcher never reads a version it has not seen
/// hold still.
enum Expect {
    /// A manual check: read whatever is there.
    Anything,
    /// The stamps the watcher saw at this tick (and, for a change, the tick before).
    Stamps(Box<[Stamp]>),
    /// A file could not be examined at this tick: report it, or wait for a returning file to
    /// hold still.
    Unreadable,
}

impl<T> Shared<T> {
    /// Whether the watcher should check now, and what: a file cannot be examined, a stamp is
    /// too recent to trust, or a changed stamp held still since the last tick. Never reads a
    /// file.
    fn due(&self) -> Option<Expect> {
        let Ok(stamps) = stamps(&self.files) else {
            return Some(Expect::Unreadable);
        };
        // A check in progress (a manual one) will see the change.
        let Ok(mut state) = self.state.try_lock() else {
            return None;
        };
        if !state.due(&stamps) {
            return None;
        }
        // Unchanged but recent (compare the content), or a change that held still.
        if state.stamps.as_deref() == Some(&stamps[..])
            || state.pending.as_deref() == Some(&stamps[..])
        {
            return Some(Expect::Stamps(stamps));
        }
        // Changed since the last tick: maybe mid-write; read it if it holds still.
        state.pending = Some(stamps);
        None
    }

    fn check(&self, expect: Expect) -> Result<ReloadOutcome, ReloadError> {
        let mut state = lock(&self.state);
        let read_at = SystemTime::now();
        let stamps = match stamps(&self.files) {
            Ok(stamps) => stamps,
            Err(error) => return Err(self.unreadable(&mut state, error)),
        };
        match &expect {
            Expect::Anything => {}
            Expect::Stamps(expected) if *expected == stamps => {}
            // Changed since the watcher looked, or back after an absence: look again at the
            // next tick, and read it if it held still.
            Expect::Stamps(_) | Expect::Unreadable => {
                state.pending = Some(stamps);
                return Ok(ReloadOutcome::Unchanged);
            }
        }
        if !state.due(&stamps) {
            return Ok(ReloadOutcome::Unchanged);
        }
        let bytes = match read(&self.files) {
            Ok(bytes) => bytes,
            Err(error) => return Err(self.unreadable(&mut state, error)),
        };
        if !matches!(expect, Expect::Anything)
            && self::stamps(&self.files).ok().as_deref() != Some(&stamps[..])
        {
            // Written while it was being read: the next tick looks again.
            state.pending = None;
            return Ok(ReloadOutcome::Unchanged);
        }
        state.stamps = Some(stamps);
        state.read_at = read_at;
        state.pending = None;
        let fingerprint = fingerprint(&bytes);
        if fingerprint == state.fingerprint {
            // The version last seen, rewritten or back after an absence: its outcome stands.
            state.error = state.refused.clone();
            return Ok(ReloadOutcome::Unchanged);
        }
        state.fingerprint = fingerprint;
        let parsed = (self.parse)(&Contents {
            files: &self.files,
            bytes: &bytes,
            reload: true,
        });
        match parsed {
            Ok(value) => {
                self.value.store(Arc::new(value));
                state.reloads += 1;
                state.refused = None;
                state.error = None;
                tracing::info!(what = %self.what, files = %Files(&self.files), "reloaded");
                Ok(ReloadOutcome::Reloaded)
            }
            Err(error) => {
                tracing::warn!(what = %self.what, %error,
                    "new version refused; the last good version stays in service");
                state.refused = Some(error.clone());
                state.error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Records a file that cannot be read; reports it when it is news.
    fn unreadable(&self, state: &mut State, error: ReloadError) -> ReloadError {
        // Read it again once it is back, whatever its stamp.
        state.stamps = None;
        let news = state
            .error
            .as_ref()
            .is_none_or(|previous| previous.to_string() != error.to_string());
        if news {
            tracing::warn!(what = %self.what, %error,
                "cannot read; the last good version stays in service");
        }
        state.error = Some(error.clone());
        error
    }
}

impl State {
    fn due(&self, stamps: &[Stamp]) -> bool {
        self.stamps.as_deref() != Some(stamps)
            || !stamps.iter().all(|stamp| stamp.settled(self.read_at))
    }
}

fn stamps(files: &[WatchedFile]) -> Result<Box<[Stamp]>, ReloadError> {
    files
        .iter()
        .map(|watched| {
            std::fs::metadata(&watched.file)
                .map(|meta| Stamp::of(&meta))
                .map_err(|error| ReloadError::read(watched, error))
        })
        .collect()
}

fn read(files: &[WatchedFile]) -> Result<Box<[Zeroizing<Vec<u8>>]>, ReloadError> {
    files
        .iter()
        .map(|watched| {
            std::fs::read(&watched.file)
                .map(Zeroizing::new)
                .map_err(|error| ReloadError::read(watched, error))
        })
        .collect()
}

/// Tells versions apart (not a security measure: whoever writes the files chooses the value).
fn fingerprint(bytes: &[Zeroizing<Vec<u8>>]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for content in bytes {
        hasher.write_usize(content.len());
        hasher.write(content);
    }
    hasher.finish()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A parser that panicked leaves consistent state behind: every field is written whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The files of a value, for logs.
struct Files<'a>(&'a [WatchedFile]);

impl fmt::Display for Files<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, watched) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", watched.file.display())?;
        }
        Ok(())
    }
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

    fn number(path: &Path) -> Reloading<u32> {
        Reloading::open("number", "file", path, parse_number).unwrap()
    }

    /// Waits (in tokio time) until `done`, checking a thousand times, for at most `limit`.
    async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let step = (limit / 1000).max(Duration::from_millis(1));
        while tokio::time::Instant::now() < deadline {
            if done() {
                return true;
            }
            tokio::time::sleep(step).await;
        }
        done()
    }

    #[test]
    fn rereads_a_changed_file_and_keeps_the_last_good_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let value = number(&path);
        assert_eq!(*value.current(), 1);
        assert_eq!(value.check().unwrap(), ReloadOutcome::Unchanged);

        std::fs::write(&path, "22").unwrap();
        assert_eq!(value.check().unwrap(), ReloadOutcome::Reloaded);
        assert_eq!(*value.current(), 22);
        assert_eq!(value.reloads(), 1);

        std::fs::write(&path, "not a number").unwrap();
        let refused = value.check().unwrap_err();
        assert!(matches!(refused, ReloadError::Invalid { .. }), "{refused}");
        assert_eq!(
            *value.current(),
            22,
            "a broken file keeps the last good value"
        );
        assert_eq!(
            value.check().unwrap(),
            ReloadOutcome::Unchanged,
            "a refused version is not refused again"
        );
        assert_eq!(value.last_error().unwrap().to_string(), refused.to_string());

        std::fs::remove_file(&path).unwrap();
        let missing = value.check().unwrap_err();
        assert!(matches!(missing, ReloadError::Read { .. }), "{missing}");
        assert_eq!(missing.path(), "file");
        assert_eq!(
            *value.current(),
            22,
            "a missing file keeps the last good value"
        );

        std::fs::write(&path, "333").unwrap();
        assert_eq!(value.check().unwrap(), ReloadOutcome::Reloaded);
        assert_eq!(*value.current(), 333);
        assert_eq!(value.reloads(), 2);
        assert!(value.last_error().is_none());
    }

    #[test]
    fn a_file_back_unchanged_after_an_absence_clears_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "7").unwrap();
        let value = number(&path);
        std::fs::remove_file(&path).unwrap();
        assert!(value.check().is_err());
        assert!(value.last_error().is_some());
        std::fs::write(&path, "7").unwrap();
        assert_eq!(value.check().unwrap(), ReloadOutcome::Unchanged);
        assert!(value.last_error().is_none());
        assert_eq!(value.reloads(), 0);
    }

    #[test]
    fn same_length_rewrite_within_one_timestamp_tick_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let value = number(&path);
        // Same length, same inode, and the modification time forced back to the old one: the
        // stamp is identical, only the content tells.
        std::fs::write(&path, "2").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert_eq!(value.check().unwrap(), ReloadOutcome::Reloaded);
        assert_eq!(*value.current(), 2);
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

        let value = number(&path);
        assert_eq!(*value.current(), 1);
        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&v2, &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        assert_eq!(value.check().unwrap(), ReloadOutcome::Reloaded);
        assert_eq!(*value.current(), 2);
    }

    #[test]
    fn fingerprints_separate_file_boundaries() {
        let version = |parts: &[&str]| -> Vec<Zeroizing<Vec<u8>>> {
            parts
                .iter()
                .map(|part| Zeroizing::new(part.as_bytes().to_vec()))
                .collect()
        };
        assert_ne!(
            fingerprint(&version(&["ab", "c"])),
            fingerprint(&version(&["a", "bc"]))
        );
        assert_eq!(
            fingerprint(&version(&["ab", "c"])),
            fingerprint(&version(&["ab", "c"]))
        );
    }

    #[test]
    fn files_are_read_and_parsed_together() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "1").unwrap();
        std::fs::write(&b, "2").unwrap();
        let sum = Reloading::open_files(
            "sum",
            [WatchedFile::new("a", &a), WatchedFile::new("b", &b)],
            |contents| {
                let mut sum = 0;
                for index in 0..2 {
                    sum += parse_number(contents.bytes(index))
                        .map_err(|reason| contents.invalid(index, reason))?;
                }
                Ok(sum)
            },
        )
        .unwrap();
        assert_eq!(*sum.current(), 3);
        assert_eq!(sum.files()[1].field(), "b");

        std::fs::write(&b, "x").unwrap();
        let err = sum.check().unwrap_err();
        assert_eq!(err.path(), "b", "the error names the file at fault");
        assert_eq!(err.file(), b);
        std::fs::write(&b, "20").unwrap();
        assert_eq!(sum.check().unwrap(), ReloadOutcome::Reloaded);
        assert_eq!(*sum.current(), 21);
    }

    #[test]
    fn the_parser_knows_a_reload_from_the_first_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "0").unwrap();
        let value = Reloading::open_files("number", [WatchedFile::new("file", &path)], |c| {
            match parse_number(c.bytes(0)) {
                Ok(0) if c.is_reload() => Err(c.invalid(0, "zero only at start-up")),
                Ok(n) => Ok(n),
                Err(reason) => Err(c.invalid(0, reason)),
            }
        })
        .unwrap();
        std::fs::write(&path, "00").unwrap();
        assert!(value.check().unwrap_err().to_string().contains("start-up"));
        assert_eq!(*value.current(), 0);
    }

    #[test]
    fn open_errors_name_the_field_and_the_file() {
        let err = Reloading::open("number", "keys.file", "/nonexistent/agentgw", parse_number)
            .unwrap_err();
        assert_eq!(err.path(), "keys.file");
        assert_eq!(err.file(), Path::new("/nonexistent/agentgw"));
        assert!(
            err.to_string()
                .starts_with("keys.file: cannot read /nonexistent/agentgw: "),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "many").unwrap();
        let err = Reloading::open("number", "limits.file", &path, parse_number).unwrap_err();
        assert_eq!(err.path(), "limits.file");
        assert_eq!(
            err.at("routes[0]"),
            format!(
                "routes[0].limits.file: {}: invalid digit found in string",
                path.display()
            )
        );
    }

    #[test]
    fn watching_needs_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let value = number(&path);
        let err = value.watch(Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ReloadError::NoRuntime { .. }));
        assert_eq!(err.path(), "file");
        // Still usable, fixed or checked by hand.
        std::fs::write(&path, "2").unwrap();
        assert_eq!(value.check().unwrap(), ReloadOutcome::Reloaded);
        assert_eq!(*value.current(), 2);
    }

    #[test]
    fn debug_names_the_files_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "sk-do-not-print").unwrap();
        let value = Reloading::open("secret", "file", &path, |bytes| Ok(bytes.to_vec())).unwrap();
        let debug = format!("{value:?}");
        assert!(!debug.contains("sk-do-not-print"), "{debug}");
        assert!(debug.contains("secret"), "{debug}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_picks_up_new_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let value = number(&path);
        value.watch(Duration::from_secs(1)).unwrap();

        std::fs::write(&path, "22").unwrap();
        assert!(until(Duration::from_secs(5), || *value.current() == 22).await);
        std::fs::write(&path, "broken").unwrap();
        assert!(until(Duration::from_secs(5), || value.last_error().is_some()).await);
        assert_eq!(*value.current(), 22);
        std::fs::remove_file(&path).unwrap();
        assert!(
            until(Duration::from_secs(5), || matches!(
                value.last_error(),
                Some(ReloadError::Read { .. })
            ))
            .await
        );
        assert_eq!(*value.current(), 22);
        std::fs::write(&path, "333").unwrap();
        assert!(until(Duration::from_secs(5), || *value.current() == 333).await);
        assert_eq!(value.reloads(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_waits_for_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let value = number(&path);
        value.watch(Duration::from_secs(3600)).unwrap();
        std::fs::write(&path, "2").unwrap();
        tokio::time::sleep(Duration::from_secs(3599)).await;
        assert_eq!(*value.current(), 1, "not checked before the interval");
        // Seen at the first tick, read at the second one (it held still).
        assert!(until(Duration::from_secs(3602), || *value.current() == 2).await);
    }

    #[test]
    fn a_watcher_check_reads_only_the_version_it_saw_hold_still() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let value = number(&path);
        std::fs::write(&path, "22").unwrap();
        let seen = stamps(value.files()).unwrap();
        // Written again between the watcher's look and its check (a write in progress).
        std::fs::write(&path, "333").unwrap();
        let outcome = value.shared.check(Expect::Stamps(seen)).unwrap();
        assert_eq!(outcome, ReloadOutcome::Unchanged);
        assert_eq!(
            *value.current(),
            1,
            "a version not seen holding still is not read"
        );
        // At the next tick it held still: now it is read.
        let expect = value.shared.due().expect("due once it held still");
        assert_eq!(value.shared.check(expect).unwrap(), ReloadOutcome::Reloaded);
        assert_eq!(*value.current(), 333);

        // A file that comes back is not read at once either: it may still be being written.
        std::fs::remove_file(&path).unwrap();
        let expect = value.shared.due().expect("an unreadable file is reported");
        assert!(matches!(expect, Expect::Unreadable));
        assert!(value.shared.check(expect).is_err());
        std::fs::write(&path, "4444").unwrap();
        let outcome = value.shared.check(Expect::Unreadable).unwrap();
        assert_eq!(outcome, ReloadOutcome::Unchanged);
        assert_eq!(*value.current(), 333);
        let expect = value.shared.due().expect("due once it held still");
        assert_eq!(value.shared.check(expect).unwrap(), ReloadOutcome::Reloaded);
        assert_eq!(*value.current(), 4444);
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_caught_mid_write_is_not_put_in_service() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text");
        std::fs::write(&path, "first").unwrap();
        let value = Reloading::open("text", "file", &path, |bytes| {
            Ok(String::from_utf8_lossy(bytes).into_owned())
        })
        .unwrap();
        value.watch(Duration::from_secs(1)).unwrap();
        // A writer that truncates, then writes: the watcher sees the empty file at one tick...
        std::fs::write(&path, "").unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // ...and the finished file at the next one, which it reads once it held still.
        std::fs::write(&path, "second, complete").unwrap();
        assert!(
            until(Duration::from_secs(5), || *value.current()
                == "second, complete")
            .await
        );
        assert_eq!(value.reloads(), 1, "the empty file was never in service");
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_stops_when_the_last_clone_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let value = number(&path);
        let clone = value.clone();
        let task = value.watch(Duration::from_secs(1)).unwrap();
        drop(value);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!task.is_finished(), "a clone is still alive");
        std::fs::write(&path, "2").unwrap();
        assert!(until(Duration::from_secs(5), || *clone.current() == 2).await);
        drop(clone);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the watcher stopped")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_watcher_replaces_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, "1").unwrap();
        let value = number(&path);
        let first = value.watch(Duration::from_secs(1)).unwrap();
        let _second = value.watch(Duration::from_secs(1)).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), first)
            .await
            .expect("the first watcher stopped");
        assert!(ended.unwrap_err().is_cancelled());

        let off = value.watch(Duration::ZERO).unwrap();
        tokio::time::timeout(Duration::from_secs(1), off)
            .await
            .expect("a zero interval watches nothing")
            .unwrap();
        std::fs::write(&path, "2").unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(*value.current(), 1, "the zero interval stopped the watcher");
    }
}
