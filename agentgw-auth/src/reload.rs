//! Files named by the configuration and followed when they change: the API key file, secret
//! files and local JWKS files, all on the one design of [`agentgw_core::reload`].
//!
//! A file is read and parsed when the layer is built, so a missing or broken file is a
//! configuration error naming its field. Then a watcher task on the Tokio runtime the layer was
//! built in checks the file every reload interval; a new version that parses is swapped in
//! without a lock on the request path, and a file that vanishes or no longer parses keeps the
//! last good value in service (reported once per change in the logs).
//!
//! The watcher needs a runtime: building a layer that watches a file outside one is
//! [`Error::NoRuntime`], the rule remote JWKS already follow. A zero reload interval turns
//! watching off (the file is read once), and a layer without a file needs no runtime at all.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agentgw_core::ConfigError;
use agentgw_core::reload::{ReloadError, Reloading};

use crate::error::Error;

/// Reads and parses `path`, named by the configuration field `field`, now and, unless
/// `interval` is zero, watches it on the current Tokio runtime. `what` names the value in logs;
/// `parse` must not quote a secret in its errors.
pub(crate) fn watch_file<T: Send + Sync + 'static>(
    path: &Path,
    interval: Duration,
    what: &'static str,
    field: &str,
    parse: impl Fn(&[u8]) -> Result<T, String> + Send + Sync + 'static,
) -> Result<Reloading<T>, Error> {
    let file = Reloading::open(what, field, path, parse).map_err(to_error)?;
    if !interval.is_zero() {
        file.watch(interval).map_err(to_error)?;
    }
    Ok(file)
}

/// The file a value follows, for `Debug` output.
pub(crate) fn file_of<T>(value: &Reloading<T>) -> &Path {
    value.files()[0].file()
}

fn to_error(error: ReloadError) -> Error {
    match error {
        ReloadError::Read {
            field,
            file,
            source,
        } => Error::Read {
            field,
            path: file,
            source: Arc::try_unwrap(source)
                .unwrap_or_else(|shared| std::io::Error::new(shared.kind(), shared.to_string())),
        },
        ReloadError::Invalid {
            field,
            file,
            reason,
        } => Error::invalid(field, format!("{}: {reason}", file.display())),
        ReloadError::NoRuntime { field, .. } => Error::NoRuntime { field },
        other => Error::invalid(other.path(), other.reason()),
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

    fn file(content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn watching_outside_a_runtime_is_refused_unless_reloading_is_off() {
        let (_dir, path) = file("1");
        let err = watch_file(
            &path,
            Duration::from_secs(1),
            "n",
            "keys.file",
            parse_number,
        )
        .unwrap_err();
        assert!(matches!(err, Error::NoRuntime { .. }), "{err}");
        assert_eq!(err.path(), "keys.file");

        let fixed = watch_file(&path, Duration::ZERO, "n", "keys.file", parse_number).unwrap();
        assert_eq!(*fixed.current(), 1);
        assert_eq!(file_of(&fixed), path);
    }

    #[test]
    fn load_errors_name_the_field_and_the_file() {
        let missing = std::path::Path::new("/nonexistent/agentgw");
        let err = watch_file(missing, Duration::ZERO, "n", "keys.file", parse_number).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err}");
        assert_eq!(err.path(), "keys.file");
        assert!(
            err.to_string()
                .starts_with("keys.file: cannot read /nonexistent/agentgw: "),
            "{err}"
        );

        let (_dir, path) = file("many");
        let err = watch_file(&path, Duration::ZERO, "n", "keys.file", parse_number).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "keys.file: {}: invalid digit found in string",
                path.display()
            )
        );
    }

    #[tokio::test]
    async fn a_watched_file_follows_its_changes() {
        let (_dir, path) = file("1");
        let value = watch_file(
            &path,
            Duration::from_millis(5),
            "n",
            "keys.file",
            parse_number,
        )
        .unwrap();
        std::fs::write(&path, "22").unwrap();
        for _ in 0..1000 {
            if *value.current() == 22 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the change was never picked up");
    }
}
