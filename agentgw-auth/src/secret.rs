//! Secrets named by configuration: read from an environment variable or a file, and re-read
//! from the file when it changes.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use agentgw_core::reload::{self, Reloading};

use crate::error::Error;

pub use agentgw_core::config::SecretRef;

/// The key of a Kubernetes Secret read when `secretRef` names none: `Authorization`, the key
/// kgateway reads a Backend's token from (and the one the seed's ExternalSecret writes).
pub const DEFAULT_SECRET_KEY: &str = "Authorization";

/// A value derived from a secret: fixed (from the environment) or following a file.
pub(crate) enum Loaded<T> {
    Fixed(Arc<T>),
    File(Reloading<T>),
}

/// The current value of a [`Loaded`].
pub(crate) enum Current<'a, T> {
    Fixed(&'a T),
    File(reload::Current<T>),
}

impl<T> Deref for Current<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Current::Fixed(value) => value,
            Current::File(current) => current,
        }
    }
}

impl<T: Send + Sync + 'static> Loaded<T> {
    /// Loads `secret` (at config path `field`) and derives the value with `parse`, which sees
    /// the secret without surrounding whitespace and must not put it in its error message. A
    /// file is then watched every `reload_interval` (see [`crate::reload`]).
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
            SecretRef::File(path) => Ok(Loaded::File(crate::reload::watch_file(
                path,
                reload_interval,
                what,
                &format!("{field}.file"),
                move |bytes| parse(trim(bytes)),
            )?)),
            SecretRef::Kubernetes(secret) => {
                let path = secret
                    .path(DEFAULT_SECRET_KEY)
                    .map_err(|reason| Error::invalid(format!("{field}.name"), reason))?;
                Ok(Loaded::File(crate::reload::watch_file(
                    &path,
                    reload_interval,
                    what,
                    &format!("{field}.name"),
                    move |bytes| parse(trim(bytes)),
                )?))
            }
        }
    }
}

impl<T> Loaded<T> {
    /// The value in service, without locking and without touching the disk.
    pub(crate) fn get(&self) -> Current<'_, T> {
        match self {
            Loaded::Fixed(value) => Current::Fixed(value),
            Loaded::File(file) => Current::File(file.current()),
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgw_core::ConfigError as _;
    use agentgw_core::config::SecretName;

    fn text(bytes: &[u8]) -> Result<String, String> {
        String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8".to_owned())
    }

    #[tokio::test]
    async fn file_secret_is_trimmed_and_follows_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "sk-one\n").unwrap();
        let secret = SecretRef::File(path.clone());
        let interval = Duration::from_millis(5);
        let loaded = Loaded::load(&secret, interval, "secret", "secretRef", text).unwrap();
        assert_eq!(&*loaded.get(), "sk-one");
        std::fs::write(&path, "sk-two\n").unwrap();
        for _ in 0..1000 {
            if &*loaded.get() == "sk-two" {
                return;
            }
            tokio::time::sleep(interval).await;
        }
        panic!("the rotated secret was never picked up");
    }

    #[test]
    fn a_file_secret_needs_a_runtime_unless_reloading_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "sk-one\n").unwrap();
        let secret = SecretRef::File(path);
        let err = Loaded::load(&secret, Duration::from_secs(1), "secret", "secretRef", text)
            .err()
            .unwrap();
        assert!(matches!(err, Error::NoRuntime { .. }), "{err}");
        assert_eq!(err.path(), "secretRef.file");
        let fixed = Loaded::load(&secret, Duration::ZERO, "secret", "secretRef", text).unwrap();
        assert_eq!(&*fixed.get(), "sk-one");
    }

    #[test]
    fn missing_env_names_field_and_variable() {
        let secret = SecretRef::Env("AGENTGW_AUTH_TEST_SURELY_UNSET".into());
        let err = Loaded::load(&secret, Duration::ZERO, "secret", "secretRef", text)
            .err()
            .unwrap();
        assert_eq!(err.path(), "secretRef.env");
        assert!(err.to_string().contains("AGENTGW_AUTH_TEST_SURELY_UNSET"));
    }

    #[test]
    fn yaml_shapes() {
        let env: SecretRef = serde_saphyr::from_str("env: OPENAI_API_KEY").unwrap();
        assert_eq!(env, SecretRef::Env("OPENAI_API_KEY".into()));
        let file: SecretRef = serde_saphyr::from_str("file: /run/key").unwrap();
        assert_eq!(file, SecretRef::File("/run/key".into()));
        let named: SecretRef = serde_saphyr::from_str("name: openai-secret").unwrap();
        assert_eq!(
            named,
            SecretRef::Kubernetes(SecretName::new("openai-secret"))
        );
        let keyed: SecretRef =
            serde_saphyr::from_str("{name: openai-secret, key: api-key}").unwrap();
        assert_eq!(
            keyed,
            SecretRef::Kubernetes(SecretName::new("openai-secret").key("api-key"))
        );
        for bad in [
            "{env: A, file: /b}",
            "key: api-key",
            "{}",
            "{name: a, colour: b}",
        ] {
            assert!(serde_saphyr::from_str::<SecretRef>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kubernetes_secret_is_a_file_under_the_secrets_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("openai-secret")).unwrap();
        std::fs::write(dir.path().join("openai-secret/Authorization"), "sk-one\n").unwrap();
        std::fs::write(dir.path().join("openai-secret/api-key"), "sk-two\n").unwrap();
        let secret = SecretRef::Kubernetes(SecretName::new("openai-secret")).in_dir(dir.path());
        let loaded = Loaded::load(&secret, Duration::ZERO, "secret", "secretRef", text).unwrap();
        assert_eq!(&*loaded.get(), "sk-one");
        let secret = SecretRef::Kubernetes(SecretName::new("openai-secret").key("api-key"))
            .in_dir(dir.path());
        let loaded = Loaded::load(&secret, Duration::ZERO, "secret", "secretRef", text).unwrap();
        assert_eq!(&*loaded.get(), "sk-two");

        let missing = SecretRef::Kubernetes(SecretName::new("other-secret")).in_dir(dir.path());
        let err = Loaded::load(&missing, Duration::ZERO, "secret", "secretRef", text)
            .err()
            .unwrap();
        assert_eq!(err.path(), "secretRef.name");
        assert!(
            err.to_string().contains("other-secret/Authorization"),
            "{err}"
        );
        let escaping = SecretRef::Kubernetes(SecretName::new("../etc")).in_dir(dir.path());
        let err = Loaded::load(&escaping, Duration::ZERO, "secret", "secretRef", text)
            .err()
            .unwrap();
        assert_eq!(err.path(), "secretRef.name");
    }
}
