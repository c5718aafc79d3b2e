//! What every layer's configuration shares: field paths in errors, durations and byte sizes.
//!
//! # Errors name a field relative to their block
//!
//! Every crate has one error type, `agentgw_x::Error`, that implements [`ConfigError`]: its
//! [`path`](ConfigError::path) is relative to the layer's own configuration block
//! (`providers[0].issuer` inside `jwtAuthentication`, `request[1].regex.matches[0].pattern`
//! inside `promptGuard`), and its [`reason`](ConfigError::reason) says what is wrong without the
//! path. Whoever knows where the block sits prefixes it in one step with [`ConfigError::at`]:
//!
//! ```
//! use agentgw_core::config::{ConfigError, join};
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("{path}: {reason}")]
//! struct Error {
//!     path: String,
//!     reason: String,
//! }
//!
//! impl ConfigError for Error {
//!     fn path(&self) -> &str {
//!         &self.path
//!     }
//!     fn reason(&self) -> String {
//!         self.reason.clone()
//!     }
//! }
//!
//! let err = Error { path: "matches[2].pattern".into(), reason: "unclosed group".into() };
//! assert_eq!(
//!     err.at("routes[0].policies.promptGuard.request[1].regex"),
//!     "routes[0].policies.promptGuard.request[1].regex.matches[2].pattern: unclosed group"
//! );
//! assert_eq!(join("tls", "[0]"), "tls[0]");
//! assert_eq!(join("", "certFile"), "certFile");
//! ```
//!
//! # Durations and byte sizes
//!
//! One rule each, for every configuration field of every crate:
//!
//! - A duration is a string in [humantime](https://docs.rs/humantime) units (`500ms`, `30s`,
//!   `5m`, `1h 30m`) or a non-negative number of seconds (`30`, `0.5`). See [`parse_duration`]
//!   and the serde helpers [`duration`] and [`option_duration`].
//! - A byte size is a non-negative integer with an optional Kubernetes-style suffix: `Ki`, `Mi`,
//!   `Gi`, `Ti` (powers of 1024), `K`/`k`, `M`, `G`, `T` (powers of 1000), optionally followed by
//!   `B` (`512KiB`, `10MB`). See [`parse_byte_size`] and the serde helpers [`byte_size`] and
//!   [`option_byte_size`].
//!
//! ```
//! use std::time::Duration;
//! use agentgw_core::config::{parse_byte_size, parse_duration};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct Limits {
//!     #[serde(with = "agentgw_core::config::duration")]
//!     timeout: Duration,
//!     #[serde(default, with = "agentgw_core::config::option_byte_size")]
//!     max_size: Option<u64>,
//! }
//!
//! let limits: Limits = serde_json::from_str(r#"{"timeout":"1m 30s","maxSize":"1Mi"}"#).unwrap();
//! assert_eq!(limits.timeout, Duration::from_secs(90));
//! assert_eq!(limits.max_size, Some(1 << 20));
//! assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
//! assert_eq!(parse_byte_size("10MB"), Ok(10_000_000));
//! assert!(parse_byte_size("-1").is_err());
//! ```

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// A configuration error that names the field at fault, relative to its layer's block.
///
/// Implemented by the `Error` type of every agentgw crate.
pub trait ConfigError: std::error::Error {
    /// The path of the field at fault, relative to the layer's configuration block, in the
    /// configuration's own spelling (`providers[0].jwks.remote.url`). Empty when the error is
    /// about the block as a whole.
    fn path(&self) -> &str;

    /// What is wrong and, where possible, what would be right, without the path.
    fn reason(&self) -> String;

    /// The error as one line, its path prefixed with `prefix` (the path of the layer's block in
    /// the enclosing configuration): `prefix.path: reason`.
    fn at(&self, prefix: &str) -> String {
        let path = join(prefix, self.path());
        if path.is_empty() {
            self.reason()
        } else {
            format!("{path}: {}", self.reason())
        }
    }
}

/// Joins two field paths: `a` + `b` with a `.` between them, unless either is empty or `b` is
/// an index (`[0]...`).
pub fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// A configuration that loads but does something other than it seems to say: a field that
/// has no effect where it is, or a limit the layer applies in a weaker form (a streamed
/// response masked with a bounded hold-back). Layers log each one with `tracing::warn!` when
/// they are built and list them (`warnings()`), so that a checker such as the gateway's
/// `--check-config` can print them with their full path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The path of the field, relative to the layer's block (as [`ConfigError::path`]).
    pub path: String,
    /// What the layer does instead, without the path.
    pub message: String,
}

impl ConfigWarning {
    /// A warning about the field at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigWarning {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same warning with its path prefixed by `prefix` (see [`join`]).
    #[must_use]
    pub fn at(&self, prefix: &str) -> ConfigWarning {
        ConfigWarning::new(join(prefix, &self.path), self.message.clone())
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Where a Kubernetes Secret named in configuration is read, when no directory is configured:
/// each secret `NAME` is a directory `DEFAULT_SECRETS_DIR/NAME` holding one file per key, the
/// way Kubernetes mounts a Secret volume (`mountPath: /var/run/secrets/agentgw/NAME`).
pub const DEFAULT_SECRETS_DIR: &str = "/var/run/secrets/agentgw";

/// A Kubernetes Secret by name, as the seed writes it: `secretRef: {name: openai-secret}` or
/// `secretRef: {name: openai-secret, key: Authorization}`.
///
/// The gateway reads it from files, the way Kubernetes mounts a Secret as a volume: key `KEY`
/// of secret `NAME` is the file `SECRETS_DIR/NAME/KEY`. The secrets directory is
/// [`DEFAULT_SECRETS_DIR`] unless the embedding application sets its own with
/// [`in_dir`](Self::in_dir) (the gateway's top-level `secretsDir`). Each use has its own
/// default key, the one Kubernetes and kgateway use: `Authorization` for a backend token,
/// `ca.crt` for certificate authorities, `tls.crt`/`tls.key` for a certificate.
///
/// ```
/// use std::path::Path;
/// use agentgw_core::config::SecretName;
///
/// let secret: SecretName = serde_json::from_str(r#"{"name": "openai-secret"}"#).unwrap();
/// assert_eq!(
///     secret.path("Authorization").unwrap(),
///     Path::new("/var/run/secrets/agentgw/openai-secret/Authorization")
/// );
/// let secret = secret.in_dir("/etc/agentgw/secrets");
/// assert_eq!(
///     secret.path("Authorization").unwrap(),
///     Path::new("/etc/agentgw/secrets/openai-secret/Authorization")
/// );
/// let bad: SecretName = serde_json::from_str(r#"{"name": "../etc"}"#).unwrap();
/// assert!(bad.path("Authorization").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretName {
    /// The Secret's name (a DNS subdomain name: lowercase letters, digits, `-` and `.`).
    pub name: String,
    /// The key within the Secret; each use has its default.
    #[serde(default)]
    pub key: Option<String>,
    /// The directory the Secrets are mounted in; [`DEFAULT_SECRETS_DIR`] when `None`.
    #[serde(skip)]
    pub dir: Option<std::path::PathBuf>,
}

impl SecretName {
    /// The secret `name`, with the default key and directory.
    pub fn new(name: impl Into<String>) -> Self {
        SecretName {
            name: name.into(),
            key: None,
            dir: None,
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Reads the secret from `dir` instead of [`DEFAULT_SECRETS_DIR`].
    #[must_use]
    pub fn in_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The file holding `key` (or `default_key` when no key is set).
    ///
    /// # Errors
    ///
    /// A name that is not a Kubernetes object name, or a key with characters other than
    /// letters, digits, `-`, `_` and `.` (so that neither can leave the secrets directory).
    pub fn path(&self, default_key: &str) -> Result<std::path::PathBuf, String> {
        let name = self.name.as_str();
        let name_ok = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !name_ok {
            return Err(format!(
                "{name:?} is not a Kubernetes Secret name (lowercase letters, digits, '-' and \
                 '.', starting and ending with a letter or digit)"
            ));
        }
        let key = self.key.as_deref().unwrap_or(default_key);
        let key_ok = !key.is_empty()
            && key != "."
            && key != ".."
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !key_ok {
            return Err(format!(
                "{key:?} is not a Secret key (letters, digits, '-', '_' and '.')"
            ));
        }
        let dir = self
            .dir
            .as_deref()
            .unwrap_or(std::path::Path::new(DEFAULT_SECRETS_DIR));
        Ok(dir.join(name).join(key))
    }
}

/// Where a secret named in configuration is read from: an environment variable, a file, or a
/// Kubernetes Secret by name ([`SecretName`]).
///
/// In YAML: `{env: OPENAI_API_KEY}`, `{file: /var/run/secrets/openai/api-key}`, or, as the seed
/// writes it, `{name: openai-secret}` or `{name: openai-secret, key: api-key}`: the file
/// `SECRETS_DIR/openai-secret/KEY`, where Kubernetes mounts the Secret (`SECRETS_DIR` is
/// [`DEFAULT_SECRETS_DIR`] unless set with [`SecretRef::in_dir`]; each use has its default
/// `KEY`). The variable name, the Secret's name and the path are not secret and may appear in
/// errors; the value never does. Surrounding whitespace, such as a file's trailing newline, is
/// not part of the secret.
///
/// Every crate of the family takes secrets in this one shape. agentgw-auth keeps credentials
/// current when their file changes; a setting read once at start-up (a Redis URL with its
/// password) uses [`read`](Self::read).
///
/// ```
/// use agentgw_core::config::SecretRef;
///
/// let secret: SecretRef = serde_saphyr::from_str("{name: redis-secret, key: url}").unwrap();
/// let dir = std::env::temp_dir().join(format!("agentgw-doc-{}", std::process::id()));
/// std::fs::create_dir_all(dir.join("redis-secret")).unwrap();
/// std::fs::write(dir.join("redis-secret/url"), "redis://:pw@redis:6379/0\n").unwrap();
/// assert_eq!(secret.in_dir(&dir).read("url").unwrap(), "redis://:pw@redis:6379/0");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "RawSecretRef")]
pub enum SecretRef {
    /// An environment variable of the process.
    Env(String),
    /// A file.
    File(std::path::PathBuf),
    /// A Kubernetes Secret mounted as a directory of files.
    Kubernetes(SecretName),
}

/// The YAML shape of a [`SecretRef`]: exactly one of `env`, `file`, `name` (with `key`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSecretRef {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    file: Option<std::path::PathBuf>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

impl TryFrom<RawSecretRef> for SecretRef {
    type Error = String;

    fn try_from(raw: RawSecretRef) -> Result<Self, String> {
        match raw {
            RawSecretRef {
                env: Some(env),
                file: None,
                name: None,
                key: None,
            } => Ok(SecretRef::Env(env)),
            RawSecretRef {
                env: None,
                file: Some(file),
                name: None,
                key: None,
            } => Ok(SecretRef::File(file)),
            RawSecretRef {
                env: None,
                file: None,
                name: Some(name),
                key,
            } => Ok(SecretRef::Kubernetes(SecretName {
                name,
                key,
                dir: None,
            })),
            RawSecretRef {
                key: Some(_),
                name: None,
                ..
            } => Err("`key` needs the Secret's `name`".to_owned()),
            _ => Err(
                "a secretRef is exactly one of {env: VARIABLE}, {file: PATH} or {name: SECRET, \
                 key: KEY}"
                    .to_owned(),
            ),
        }
    }
}

impl SecretRef {
    /// The same reference with a Kubernetes Secret read from `dir` (the directory the Secrets
    /// are mounted in) instead of [`DEFAULT_SECRETS_DIR`]; other references are unchanged.
    #[must_use]
    pub fn in_dir(self, dir: impl Into<std::path::PathBuf>) -> SecretRef {
        match self {
            SecretRef::Kubernetes(secret) => SecretRef::Kubernetes(secret.in_dir(dir)),
            other => other,
        }
    }

    /// Where the secret comes from, for logs, errors and `Debug` (never the value):
    /// `env:NAME`, `file:PATH`, `secret:NAME (PATH)`; a Secret without a key reads
    /// `default_key`.
    pub fn describe(&self, default_key: &str) -> String {
        match self {
            SecretRef::Env(name) => format!("env:{name}"),
            SecretRef::File(path) => format!("file:{}", path.display()),
            SecretRef::Kubernetes(secret) => match secret.path(default_key) {
                Ok(path) => format!("secret:{} ({})", secret.name, path.display()),
                Err(_) => format!("secret:{}", secret.name),
            },
        }
    }

    /// The sub-field of a `secretRef` block that names the source (`env`, `file` or `name`),
    /// for error paths.
    pub fn field(&self) -> &'static str {
        match self {
            SecretRef::Env(_) => "env",
            SecretRef::File(_) => "file",
            SecretRef::Kubernetes(_) => "name",
        }
    }

    /// Reads the secret once, without surrounding whitespace (a Secret without a key reads
    /// `default_key`).
    ///
    /// # Errors
    ///
    /// An unset or empty variable, an unreadable or empty file, a value that is not UTF-8, or
    /// a Secret name or key that could leave the secrets directory. The message names the
    /// source, never the value.
    pub fn read(&self, default_key: &str) -> Result<String, String> {
        let (bytes, source) = match self {
            // Not `VarError`'s message: for a value that is not Unicode it prints the value.
            SecretRef::Env(name) => (
                std::env::var_os(name)
                    .ok_or_else(|| format!("environment variable {name}: not set"))?
                    .into_encoded_bytes(),
                format!("environment variable {name}"),
            ),
            SecretRef::File(path) => (
                std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
                path.display().to_string(),
            ),
            SecretRef::Kubernetes(secret) => {
                let path = secret.path(default_key)?;
                (
                    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?,
                    path.display().to_string(),
                )
            }
        };
        let text = String::from_utf8(bytes).map_err(|_| format!("{source}: not UTF-8"))?;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(format!("{source}: empty"));
        }
        Ok(trimmed.to_owned())
    }
}

/// Parses a duration: humantime units (`500ms`, `30s`, `1h 30m`) or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = trimmed
            .parse()
            .map_err(|_| format!("invalid duration `{text}`"))?;
        return seconds(secs).map_err(str::to_owned);
    }
    humantime::parse_duration(trimmed).map_err(|error| {
        format!("invalid duration `{text}`: {error} (expected e.g. `500ms`, `30s` or `5m`)")
    })
}

fn seconds(secs: f64) -> Result<Duration, &'static str> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| "a duration must be a finite, non-negative number of seconds")
}

/// Parses a byte size: an integer with an optional suffix (`Ki`, `Mi`, `Gi`, `Ti`, `K`/`k`, `M`,
/// `G`, `T`, each optionally followed by `B`).
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(digits_end);
    let invalid =
        || format!("invalid size `{text}`: expected e.g. `1Mi`, `512Ki`, `10M` or `65536`");
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let suffix = suffix.trim_start();
    let suffix = suffix.strip_suffix('B').unwrap_or(suffix);
    let multiplier: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size `{text}` is too large"))
}

#[derive(Clone, Copy)]
struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as `30s`, `500ms` or `2m`, or a number of seconds")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_duration(text).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(secs))
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
        u64::try_from(secs)
            .map(Duration::from_secs)
            .map_err(|_| E::custom("a duration cannot be negative"))
    }

    fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
        seconds(secs).map_err(E::custom)
    }
}

#[derive(Clone, Copy)]
struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size in bytes such as `1Mi`, `512Ki`, `10M` or `65536`")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        parse_byte_size(text).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<u64, E> {
        Ok(bytes)
    }

    fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<u64, E> {
        u64::try_from(bytes).map_err(|_| E::custom("a size cannot be negative"))
    }
}

/// Reads `null` as `None` and any other value with `inner`.
struct OptionVisitor<V>(V);

impl<'de, V: Visitor<'de> + Copy> Visitor<'de> for OptionVisitor<V> {
    type Value = Option<V::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self.0).map(Some)
    }
}

/// Serde helpers for a [`Duration`] field: `#[serde(with = "agentgw_core::config::duration")]`.
///
/// Serializes as a humantime string (`1m 30s`).
pub mod duration {
    use super::*;

    /// Deserializes a duration string or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
        de.deserialize_any(DurationVisitor)
    }

    /// Serializes as a humantime string.
    pub fn serialize<S: serde::Serializer>(value: &Duration, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_str(&humantime::format_duration(*value))
    }
}

/// Serde helpers for an `Option<Duration>` field:
/// `#[serde(default, with = "agentgw_core::config::option_duration")]`.
pub mod option_duration {
    use super::*;

    /// Deserializes a duration as `Some` and `null` as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
        de.deserialize_option(OptionVisitor(DurationVisitor))
    }

    /// Serializes `Some` as a humantime string and `None` as a unit.
    pub fn serialize<S: serde::Serializer>(
        value: &Option<Duration>,
        ser: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => ser.collect_str(&humantime::format_duration(*value)),
            None => ser.serialize_none(),
        }
    }
}

/// Serde helpers for a byte-size field (`u64`):
/// `#[serde(with = "agentgw_core::config::byte_size")]`.
pub mod byte_size {
    use super::*;

    /// Deserializes a size string or a number of bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
        de.deserialize_any(SizeVisitor)
    }

    /// Serializes as a number of bytes.
    pub fn serialize<S: serde::Serializer>(value: &u64, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_u64(*value)
    }
}

/// Serde helpers for an `Option<u64>` byte-size field:
/// `#[serde(default, with = "agentgw_core::config::option_byte_size")]`.
pub mod option_byte_size {
    use super::*;

    /// Deserializes a size as `Some` and `null` as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
        de.deserialize_option(OptionVisitor(SizeVisitor))
    }

    /// Serializes `Some` as a number of bytes and `None` as a unit.
    pub fn serialize<S: serde::Serializer>(value: &Option<u64>, ser: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => ser.serialize_u64(*value),
            None => ser.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_ref_is_one_source_and_reads_trimmed() {
        let parse = |yaml: &str| serde_saphyr::from_str::<SecretRef>(yaml);
        assert_eq!(
            parse("{env: REDIS_URL}").unwrap(),
            SecretRef::Env("REDIS_URL".into())
        );
        assert!(parse("{env: A, file: /b}").is_err());
        assert!(parse("{key: url}").is_err());
        assert!(parse("{}").is_err());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "  redis://:pw@h:6379/0\n").unwrap();
        assert_eq!(
            SecretRef::File(file.clone()).read("x").unwrap(),
            "redis://:pw@h:6379/0"
        );
        std::fs::write(&file, "\n").unwrap();
        let empty = SecretRef::File(file.clone()).read("x").unwrap_err();
        assert!(empty.contains("empty"), "{empty}");
        // The value never appears in an error; the source does.
        std::fs::write(&file, [0xff, b'p', b'w']).unwrap();
        let bad = SecretRef::File(file.clone()).read("x").unwrap_err();
        assert!(bad.contains("not UTF-8") && bad.contains("url"), "{bad}");

        std::fs::create_dir(dir.path().join("redis")).unwrap();
        std::fs::write(dir.path().join("redis/url"), "redis://k8s\n").unwrap();
        let secret = SecretRef::Kubernetes(SecretName::new("redis")).in_dir(dir.path());
        assert_eq!(secret.read("url").unwrap(), "redis://k8s");
        assert!(secret.describe("url").starts_with("secret:redis ("));
        assert_eq!(secret.field(), "name");
        let missing = secret.read("password").unwrap_err();
        assert!(missing.contains("password"), "{missing}");
        let escaping = SecretRef::Kubernetes(SecretName::new("../etc")).in_dir(dir.path());
        assert!(escaping.read("url").is_err());
        let unset = SecretRef::Env("AGENTGW_TEST_SURELY_UNSET_VARIABLE".into())
            .read("x")
            .unwrap_err();
        assert!(
            unset.contains("AGENTGW_TEST_SURELY_UNSET_VARIABLE"),
            "{unset}"
        );
    }

    #[test]
    fn durations_in_every_form() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        for bad in ["", "-1s", "10 parsecs", "1e400", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn durations_from_serde_numbers_and_strings() {
        #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
        struct T {
            #[serde(with = "duration")]
            d: Duration,
            #[serde(default, with = "option_duration")]
            o: Option<Duration>,
        }
        let t: T = serde_json::from_str(r#"{"d":2,"o":"2m"}"#).unwrap();
        assert_eq!(t.d, Duration::from_secs(2));
        assert_eq!(t.o, Some(Duration::from_secs(120)));
        let t: T = serde_json::from_str(r#"{"d":1.5}"#).unwrap();
        assert_eq!(t.d, Duration::from_millis(1500));
        assert_eq!(t.o, None);
        assert!(serde_json::from_str::<T>(r#"{"d":-3}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"d":"soon"}"#).is_err());
        let text = serde_json::to_string(&T {
            d: Duration::from_secs(90),
            o: None,
        })
        .unwrap();
        assert_eq!(
            serde_json::from_str::<T>(&text).unwrap().d,
            Duration::from_secs(90)
        );
    }

    #[test]
    fn byte_sizes_in_every_unit() {
        assert_eq!(parse_byte_size("65536"), Ok(65536));
        assert_eq!(parse_byte_size("512Ki"), Ok(512 << 10));
        assert_eq!(parse_byte_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_byte_size("10M"), Ok(10_000_000));
        assert_eq!(parse_byte_size("2 GB"), Ok(2_000_000_000));
        assert_eq!(parse_byte_size("3k"), Ok(3_000));
        for bad in ["", "Mi", "1.5Mi", "-1", "1Xi", "99999999999999999999"] {
            assert!(parse_byte_size(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(
            parse_byte_size("20000000Ti")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn paths_join_in_one_step() {
        assert_eq!(join("a", "b"), "a.b");
        assert_eq!(join("a", "[1].b"), "a[1].b");
        assert_eq!(join("", "b"), "b");
        assert_eq!(join("a", ""), "a");
    }
}
