//! The crate's one error type.

use std::time::Duration;

use agentgw_core::ConfigError;

/// Why TLS could not be set up, a certificate could not be (re)loaded, or a handshake failed.
///
/// A configuration error names the field at fault with its path relative to the `tls` block
/// ([`ConfigError::path`]: `certFile`, `cipherSuites[2]`, `clientAuth.caFile`, ...) and says
/// what is wrong ([`ConfigError::reason`]), so whoever knows where the block sits prefixes it
/// in one step ([`ConfigError::at`]: `routes[0].backend.tls.caFile: ...`). Errors that are not
/// about a field (a failed handshake, the session ticketer) have an empty path. `Display` is
/// `path: reason`, or the reason alone when the path is empty. [`kind`](Error::kind) is the
/// short, low-cardinality name of the error for metric labels.
///
/// ```
/// use agentgw_core::ConfigError;
/// use agentgw_tls::{Error, TlsAcceptor, TlsConfig};
///
/// let err = TlsAcceptor::from_config(&TlsConfig::new("/missing/tls.crt", "/missing/tls.key"))
///     .unwrap_err();
/// assert!(matches!(err, Error::Config { .. }));
/// assert_eq!(err.path(), "certFile");
/// assert!(err.reason().starts_with("cannot read /missing/tls.crt"));
/// assert!(err.at("listeners[0].tls").starts_with("listeners[0].tls.certFile: cannot read"));
/// assert_eq!(err.kind(), "config");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration or a file it names is unusable.
    #[error("{}", display(path, reason))]
    Config {
        /// Field path relative to the `tls` block (empty when about the block as a whole).
        path: String,
        /// What is wrong, for people.
        reason: String,
    },
    /// A certificate could not be parsed (for its identity).
    #[error("invalid certificate: {0}")]
    Certificate(String),
    /// The TLS handshake with a peer failed (bad certificate, no shared version or cipher
    /// suite, connection closed).
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] std::io::Error),
    /// The peer did not finish the handshake in time.
    #[error("TLS handshake did not finish within {0:?}")]
    HandshakeTimeout(Duration),
}

impl Error {
    pub(crate) fn config(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A short, low-cardinality name of the error: `config`, `certificate`, `handshake` or
    /// `timeout`. Failed handshakes are counted under it (the `result` label of
    /// [`agentgw_core::metrics::TLS_HANDSHAKES_TOTAL`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::Certificate(_) => "certificate",
            Error::Handshake(_) => "handshake",
            Error::HandshakeTimeout(_) => "timeout",
        }
    }
}

impl ConfigError for Error {
    /// The field at fault, relative to the `tls` block; empty for errors that are not about a
    /// field (handshakes, certificates presented by peers).
    fn path(&self) -> &str {
        match self {
            Error::Config { path, .. } => path,
            _ => "",
        }
    }

    fn reason(&self) -> String {
        match self {
            Error::Config { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }
}

/// `path: reason`, or the reason alone for an error about the whole block.
fn display(path: &str, reason: &str) -> String {
    if path.is_empty() {
        reason.to_owned()
    } else {
        format!("{path}: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_path_then_reason() {
        let err = Error::config("clientAuth.caFile", "cannot read /ca.crt");
        assert_eq!(err.to_string(), "clientAuth.caFile: cannot read /ca.crt");
        assert_eq!(err.path(), "clientAuth.caFile");
        assert_eq!(err.reason(), "cannot read /ca.crt");
        assert_eq!(err.at("tls"), "tls.clientAuth.caFile: cannot read /ca.crt");
        let whole = Error::config("", "cannot create the session ticketer");
        assert_eq!(whole.to_string(), "cannot create the session ticketer");
        assert_eq!(whole.at("tls"), "tls: cannot create the session ticketer");
    }

    #[test]
    fn runtime_errors_have_no_path_and_a_label() {
        let err = Error::HandshakeTimeout(Duration::from_secs(10));
        assert_eq!(err.path(), "");
        assert_eq!(err.reason(), "TLS handshake did not finish within 10s");
        assert_eq!(err.kind(), "timeout");
        let err = Error::Handshake(std::io::Error::other("bad certificate"));
        assert_eq!(err.reason(), "TLS handshake failed: bad certificate");
        assert_eq!(err.kind(), "handshake");
        assert_eq!(Error::Certificate("x".into()).kind(), "certificate");
        assert_eq!(Error::config("certFile", "x").kind(), "config");
    }
}
