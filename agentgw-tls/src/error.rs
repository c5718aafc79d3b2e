//! The crate's error type.

use std::time::Duration;

/// Why TLS could not be set up, a certificate could not be (re)loaded, or a handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The configuration or a file it names is unusable. `field` is the path of the offending
    /// field inside the `tls` block (`certFile`, `cipherSuites[2]`, `clientAuth.caFile`, ...), so
    /// a caller that knows where the block sits can prefix it (`routes[0].backend.tls.caFile`).
    #[error("{field}: {message}")]
    Config {
        /// Field path relative to the `tls` block.
        field: String,
        /// What is wrong, for people.
        message: String,
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

impl TlsError {
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        TlsError::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The configuration field this error is about, relative to the `tls` block; `None` for
    /// handshake errors.
    pub fn field(&self) -> Option<&str> {
        match self {
            TlsError::Config { field, .. } => Some(field),
            _ => None,
        }
    }

    /// A short, low-cardinality reason, usable as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsError::Config { .. } => "config",
            TlsError::Certificate(_) => "certificate",
            TlsError::Handshake(_) => "handshake",
            TlsError::HandshakeTimeout(_) => "timeout",
        }
    }
}
