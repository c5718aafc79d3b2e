//! Secrets named by configuration: read from an environment variable or a file, and re-read
//! from the file when it changes.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::Guard;
use serde::Deserialize;

use crate::error::Error;
use crate::reload::Reloading;

/// Where a secret is read from.
///
/// In YAML: `{env: OPENAI_API_KEY}` or `{file: /var/run/secrets/openai/api-key}`. A file is
/// re-read when it changes (a rotated Kubernetes or External Secrets mount takes effect without
/// a restart); surrounding whitespace, such as the trailing newline, is not part of the secret.
/// The variable name and the path are not secret and appear in errors; the value never does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SecretRef {
    /// An environment variable of the gateway process, read once at start-up.
    Env(String),
    /// A file, re-read when it changes.
    File(PathBuf),
}

/// A value derived from a secret: fixed (from the environment) or following a file.
pub(crate) enum Loaded<T> {
    Fixed(Arc<T>),
    File(Reloading<T>),
}

/// The current value of a [`Loaded`].
pub(crate) enum Current<'a, T> {
    Fixed(&'a T),
    File(Guard<Arc<T>>),
}

impl<T> Deref for Current<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Current::Fixed(value) => value,
            Current::File(guard) => guard,
        }
    }
}

impl<T> Loaded<T> {
    /// Loads `secret` (at config path `field`) and derives the value with `parse`, which sees
    /// the secret without surrounding whitespace and must not put it in its error message.
    pub(crate) fn load(
        secret: &SecretRef,
        reload_interval: Duration,
        what: &'static str,
        field: &str,
        parse: impl Fn(&[u8]) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        match secret {
            SecretRef::Env(name) => {
                let field = format!("{field}.env");
                let value = std::env::var(name)
                    .ok()
                    .map(secrecy::zeroize::Zeroizing::new)
                    .filter(|value| !value.trim().is_empty())
                    .ok_or_else(|| Error::MissingEnv {
                        field: field.clone(),
                        name: name.clone(),
                    })?;
                let parsed = parse(trim(value.as_bytes())).map_err(|reason| {
                    Error::invalid(field, format!("environment variable {name}: {reason}"))
                })?;
                Ok(Loaded::Fixed(Arc::new(parsed)))
            }
            SecretRef::File(path) => Ok(Loaded::File(Reloading::open(
                path,
                reload_interval,
                what,
                &format!("{field}.file"),
                move |bytes| parse(trim(bytes)),
            )?)),
        }
    }

    /// The current value (re-reading a changed file when a check is due).
    pub(crate) fn get(&self) -> Current<'_, T> {
        match self {
            Loaded::Fixed(value) => Current::Fixed(value),
            Loaded::File(file) => Current::File(file.get()),
        }
    }
}

impl SecretRef {
    /// Where the secret comes from, for logs and `Debug` (never the value).
    pub(crate) fn describe(&self) -> String {
        match self {
            SecretRef::Env(name) => format!("env:{name}"),
            SecretRef::File(path) => format!("file:{}", path.display()),
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> Result<String, String> {
        String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8".to_owned())
    }

    #[test]
    fn file_secret_is_trimmed_and_follows_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "sk-one\n").unwrap();
        let secret = SecretRef::File(path.clone());
        let loaded = Loaded::load(&secret, Duration::ZERO, "secret", "secretRef", text).unwrap();
        assert_eq!(&*loaded.get(), "sk-one");
        std::fs::write(&path, "sk-two\n").unwrap();
        assert_eq!(&*loaded.get(), "sk-two");
    }

    #[test]
    fn missing_env_names_field_and_variable() {
        let secret = SecretRef::Env("AGENTGW_AUTH_TEST_SURELY_UNSET".into());
        let err = Loaded::load(&secret, Duration::ZERO, "secret", "secretRef", text)
            .err()
            .unwrap();
        assert_eq!(err.field(), "secretRef.env");
        assert!(err.to_string().contains("AGENTGW_AUTH_TEST_SURELY_UNSET"));
    }

    #[test]
    fn yaml_shapes() {
        let env: SecretRef = serde_saphyr::from_str("env: OPENAI_API_KEY").unwrap();
        assert_eq!(env, SecretRef::Env("OPENAI_API_KEY".into()));
        let file: SecretRef = serde_saphyr::from_str("file: /run/key").unwrap();
        assert_eq!(file, SecretRef::File("/run/key".into()));
        assert!(serde_saphyr::from_str::<SecretRef>("name: openai-secret").is_err());
    }
}
