//! The crate's configuration error.

use std::fmt;
use std::path::PathBuf;

use agentgw_core::ConfigError;

/// A configuration problem found while building a layer.
///
/// Every variant names the field it concerns, relative to the layer's configuration block
/// ([`path`](ConfigError::path), for example `providers[0].jwks.remote.url` inside
/// `jwtAuthentication`), and says what is wrong ([`reason`](ConfigError::reason)). `Display`
/// writes `path: reason`. Messages never contain a secret: a secret that cannot be used is
/// described, not shown.
///
/// ```
/// use agentgw_auth::{Error, JwtConfig, JwtLayer};
/// use agentgw_core::ConfigError;
///
/// let err: Error = JwtLayer::from_config(&JwtConfig::default()).unwrap_err();
/// assert_eq!(err.path(), "providers");
/// assert_eq!(
///     err.at("policies.traffic.jwtAuthentication"),
///     format!("policies.traffic.jwtAuthentication.providers: {}", err.reason()),
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field has a value the layer cannot use.
    Invalid {
        /// The path of the field ([`path`](ConfigError::path)), e.g. `providers[1].issuer`.
        field: String,
        /// What is wrong and, where possible, what would be right.
        reason: String,
    },
    /// A file named by the configuration cannot be read.
    Read {
        /// The path of the field naming the file ([`path`](ConfigError::path)).
        field: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An environment variable named by the configuration is not set.
    MissingEnv {
        /// The path of the field naming the variable ([`path`](ConfigError::path)).
        field: String,
        /// The variable.
        name: String,
    },
    /// The configuration needs a cargo feature this build of `agentgw-auth` lacks.
    FeatureDisabled {
        /// The path of the block that needs the feature ([`path`](ConfigError::path)).
        field: String,
        /// The feature to enable.
        feature: &'static str,
    },
    /// The layer starts background work and was built outside a Tokio runtime: a remote JWKS
    /// refresh, or the watcher of a file it re-reads when it changes (an API key `file`, a
    /// `secretRef.file`, a local JWKS or HMAC secret file; `reloadInterval: 0s` reads such a
    /// file once and needs no runtime).
    NoRuntime {
        /// The path of the block that needs the runtime ([`path`](ConfigError::path)).
        field: String,
    },
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Writes the reason, without the path.
    fn write_reason(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid { reason, .. } => f.write_str(reason),
            Error::Read { path, source, .. } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            Error::MissingEnv { name, .. } => write!(
                f,
                "environment variable {name} is not set, empty or not valid UTF-8"
            ),
            Error::FeatureDisabled { feature, .. } => {
                write!(f, "needs the `{feature}` cargo feature of agentgw-auth")
            }
            Error::NoRuntime { .. } => f.write_str(
                "must be built inside a Tokio runtime (it starts a background refresh task)",
            ),
        }
    }
}

impl ConfigError for Error {
    /// The path of the field the error concerns, relative to the layer's configuration block.
    fn path(&self) -> &str {
        match self {
            Error::Invalid { field, .. }
            | Error::Read { field, .. }
            | Error::MissingEnv { field, .. }
            | Error::FeatureDisabled { field, .. }
            | Error::NoRuntime { field } => field,
        }
    }

    /// What is wrong, without the field path.
    fn reason(&self) -> String {
        match self {
            Error::Invalid { reason, .. } => reason.clone(),
            _ => Reason(self).to_string(),
        }
    }
}

/// Displays only the reason of an error.
struct Reason<'a>(&'a Error);

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write_reason(f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path();
        if !path.is_empty() {
            write!(f, "{path}: ")?;
        }
        self.write_reason(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_and_the_reason_apart() {
        let err = Error::invalid("providers[0].issuer", "must not be empty");
        assert_eq!(err.path(), "providers[0].issuer");
        assert_eq!(err.reason(), "must not be empty");
        assert_eq!(err.to_string(), "providers[0].issuer: must not be empty");
        assert_eq!(
            err.at("routes[0].policies.traffic.jwtAuthentication"),
            "routes[0].policies.traffic.jwtAuthentication.providers[0].issuer: must not be empty"
        );

        let err = Error::MissingEnv {
            field: "secretRef.env".into(),
            name: "OPENAI_API_KEY".into(),
        };
        assert_eq!(err.path(), "secretRef.env");
        assert_eq!(
            err.reason(),
            "environment variable OPENAI_API_KEY is not set, empty or not valid UTF-8"
        );
        assert_eq!(err.to_string(), format!("secretRef.env: {}", err.reason()));
    }

    #[test]
    fn reason_is_exact_even_when_it_starts_like_the_path() {
        // The reason is never recovered by cutting the path off the message.
        let err = Error::invalid("keys", "keys: a reason that repeats the field");
        assert_eq!(err.reason(), "keys: a reason that repeats the field");
        let err = Error::Read {
            field: "file".into(),
            path: "/nonexistent/keys.yaml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(
            err.reason()
                .starts_with("cannot read /nonexistent/keys.yaml: "),
            "{}",
            err.reason()
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn an_empty_path_displays_the_reason_alone() {
        let err = Error::NoRuntime {
            field: String::new(),
        };
        assert_eq!(err.to_string(), err.reason());
    }
}
