//! The crate's configuration error.

use std::path::PathBuf;

/// A configuration problem found while building a layer.
///
/// Every variant names the field it concerns, relative to the layer's configuration block (for
/// example `providers[0].jwks.remote.url` inside `jwtAuthentication`). Messages never contain a
/// secret: a secret that cannot be used is described, not shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field has a value the layer cannot use.
    #[error("{field}: {reason}")]
    Invalid {
        /// Field path, e.g. `providers[1].issuer`.
        field: String,
        /// What is wrong and, where possible, what would be right.
        reason: String,
    },
    /// A file named by the configuration cannot be read.
    #[error("{field}: cannot read {}: {source}", path.display())]
    Read {
        /// Field path of the file name.
        field: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An environment variable named by the configuration is not set.
    #[error("{field}: environment variable {name} is not set, empty or not valid UTF-8")]
    MissingEnv {
        /// Field path of the variable name.
        field: String,
        /// The variable.
        name: String,
    },
    /// The configuration needs a cargo feature this build of `agentgw-auth` lacks.
    #[error("{field}: needs the `{feature}` cargo feature of agentgw-auth")]
    FeatureDisabled {
        /// Field path of the block that needs the feature.
        field: String,
        /// The feature to enable.
        feature: &'static str,
    },
    /// The layer starts background work (remote JWKS refresh) and was built outside a Tokio
    /// runtime.
    #[error("{field}: must be built inside a Tokio runtime (it starts a background refresh task)")]
    NoRuntime {
        /// Field path of the block that needs the runtime.
        field: String,
    },
}

impl Error {
    /// The path of the field the error concerns, relative to the layer's configuration block.
    pub fn field(&self) -> &str {
        match self {
            Error::Invalid { field, .. }
            | Error::Read { field, .. }
            | Error::MissingEnv { field, .. }
            | Error::FeatureDisabled { field, .. }
            | Error::NoRuntime { field } => field,
        }
    }

    /// What is wrong, without the field path (for callers that prefix their own path, like
    /// `policies.traffic.jwtAuthentication.` + [`field`](Error::field)).
    pub fn reason(&self) -> String {
        let text = self.to_string();
        match text.strip_prefix(self.field()) {
            Some(rest) => rest.trim_start_matches(": ").to_owned(),
            None => text,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field() {
        let err = Error::invalid("providers[0].issuer", "must not be empty");
        assert_eq!(err.field(), "providers[0].issuer");
        assert_eq!(err.to_string(), "providers[0].issuer: must not be empty");
        assert_eq!(err.reason(), "must not be empty");
        let err = Error::MissingEnv {
            field: "secretRef.env".into(),
            name: "OPENAI_API_KEY".into(),
        };
        assert!(
            err.to_string()
                .starts_with("secretRef.env: environment variable OPENAI_API_KEY")
        );
    }
}
