//! Timeouts and limits of the serve helpers: the `server` block of the gateway configuration.
//!
//! Every field has a safe default, so a [`Server`](crate::Server) built with
//! [`ServerLimits::default()`] already cuts slow and idle clients and bounds its connections:
//!
//! ```yaml
//! server:
//!   headerReadTimeout: 30s         # a request head must arrive within this; null: no limit
//!   requestBodyTimeout: 60s        # a request body must arrive within this; null: no limit
//!   keepAliveTimeout: 60s          # a connection with no request in flight is closed after this
//!   maxConnections: 16384          # open connections per listen address; null: no limit
//!   maxHeaders: 100                # header fields per request (HTTP/1.1)
//!   maxHeaderBytes: 64KiB          # bytes of one request head (HTTP/1.1) or header list (HTTP/2)
//!   http2MaxConcurrentStreams: 256 # open streams per HTTP/2 connection
//! ```
//!
//! What each limit does to a client that breaks it:
//!
//! | limit | HTTP/1.1 | HTTP/2 |
//! |---|---|---|
//! | `headerReadTimeout` | the connection is closed (hyper answers `408` when part of a head arrived) | — (HTTP/2 heads arrive in one frame; `keepAliveTimeout` bounds a silent connection) |
//! | `requestBodyTimeout` | the body read fails with [`BodyReadTimeout`](agentgw_core::body::BodyReadTimeout): a layer that buffers answers `408`, and the connection is not reused | the same, on that stream |
//! | `keepAliveTimeout` | the idle connection is closed (hyper also starts `headerReadTimeout` when a connection goes idle, so the shorter of the two applies) | `GOAWAY`, then close |
//! | `maxConnections` | further connections wait in the listen backlog until one closes; accepted connections are never starved | the same |
//! | `maxHeaders`, `maxHeaderBytes` | `431 Request Header Fields Too Large` | the stream is refused |
//! | `http2MaxConcurrentStreams` | — | further streams are refused (`REFUSED_STREAM`) |
//!
//! ```
//! use std::time::Duration;
//! use agentgw_tls::ServerLimits;
//!
//! let limits = ServerLimits::default()
//!     .header_read_timeout(Some(Duration::from_secs(5)))
//!     .max_connections(Some(1024));
//!
//! let yaml: ServerLimits =
//!     serde_saphyr::from_str("headerReadTimeout: 5s\nmaxConnections: 1024\n").unwrap();
//! assert_eq!(yaml, limits);
//! ```

use std::time::Duration;

use serde::Deserialize;

/// Default of [`ServerLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ServerLimits::request_body_timeout`].
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`ServerLimits::keep_alive_timeout`].
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`ServerLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 16 * 1024;
/// Default of [`ServerLimits::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default of [`ServerLimits::max_header_bytes`].
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 64 * 1024;
/// Default of [`ServerLimits::http2_max_concurrent_streams`].
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 256;

/// The smallest `maxHeaderBytes` hyper can honour for HTTP/1.1 (its read buffer's floor).
const MIN_HEADER_BYTES: u64 = 8 * 1024;

/// Timeouts and limits applied by [`Server`](crate::Server) to every connection: the `server`
/// block. See the [module docs](self) for what each one does to a client that breaks it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ServerLimits {
    /// How long a client may take to send a complete request head, counted from the moment
    /// the connection is ready for one (accepted, or idle after a response). `None`: no limit.
    #[serde(with = "agentgw_core::config::option_duration")]
    pub header_read_timeout: Option<Duration>,
    /// How long a client may take to send a request body, counted from its head. `None`: no
    /// limit.
    #[serde(with = "agentgw_core::config::option_duration")]
    pub request_body_timeout: Option<Duration>,
    /// How long a connection with no request in flight stays open. `None`: until the client
    /// closes it.
    #[serde(with = "agentgw_core::config::option_duration")]
    pub keep_alive_timeout: Option<Duration>,
    /// How many connections may be open at once on one listen address (shared by the clones
    /// of one [`Server`](crate::Server)); further clients wait in the listen backlog. `None`:
    /// no limit.
    pub max_connections: Option<usize>,
    /// How many header fields an HTTP/1.1 request may carry.
    pub max_headers: usize,
    /// How many bytes a request head (HTTP/1.1) or header list (HTTP/2) may take. HTTP/1.1
    /// cannot go below 8 KiB (hyper's read buffer).
    #[serde(with = "agentgw_core::config::byte_size")]
    pub max_header_bytes: u64,
    /// How many streams an HTTP/2 client may have open at once.
    pub http2_max_concurrent_streams: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            request_body_timeout: Some(DEFAULT_REQUEST_BODY_TIMEOUT),
            keep_alive_timeout: Some(DEFAULT_KEEP_ALIVE_TIMEOUT),
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
        }
    }
}

impl ServerLimits {
    /// Sets [`header_read_timeout`](Self::header_read_timeout) (default 30 s).
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`request_body_timeout`](Self::request_body_timeout) (default 60 s).
    #[must_use]
    pub fn request_body_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_body_timeout = timeout;
        self
    }

    /// Sets [`keep_alive_timeout`](Self::keep_alive_timeout) (default 60 s).
    #[must_use]
    pub fn keep_alive_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// Sets [`max_connections`](Self::max_connections) (default 16,384).
    #[must_use]
    pub fn max_connections(mut self, max: Option<usize>) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets [`max_headers`](Self::max_headers) (default 100).
    #[must_use]
    pub fn max_headers(mut self, max: usize) -> Self {
        self.max_headers = max;
        self
    }

    /// Sets [`max_header_bytes`](Self::max_header_bytes) (default 64 KiB).
    #[must_use]
    pub fn max_header_bytes(mut self, max: u64) -> Self {
        self.max_header_bytes = max;
        self
    }

    /// Sets [`http2_max_concurrent_streams`](Self::http2_max_concurrent_streams) (default 256).
    #[must_use]
    pub fn http2_max_concurrent_streams(mut self, max: u32) -> Self {
        self.http2_max_concurrent_streams = max;
        self
    }

    /// Checks the values: zero limits and timeouts would refuse every client.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let zero = |field: &str, what: &str| {
            Err(crate::Error::config(
                field,
                format!("{what} must be greater than zero (null disables it)"),
            ))
        };
        for (field, value) in [
            ("headerReadTimeout", self.header_read_timeout),
            ("requestBodyTimeout", self.request_body_timeout),
            ("keepAliveTimeout", self.keep_alive_timeout),
        ] {
            if value == Some(Duration::ZERO) {
                return zero(field, "a timeout");
            }
        }
        if self.max_connections == Some(0) {
            return zero("maxConnections", "the connection limit");
        }
        if self.max_headers == 0 {
            return zero("maxHeaders", "the header limit");
        }
        if self.http2_max_concurrent_streams == 0 {
            return zero("http2MaxConcurrentStreams", "the stream limit");
        }
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(crate::Error::config(
                "maxHeaderBytes",
                format!("must be at least {MIN_HEADER_BYTES} bytes (8KiB)"),
            ));
        }
        if self.max_header_bytes > u64::from(u32::MAX) {
            return Err(crate::Error::config(
                "maxHeaderBytes",
                "must be below 4GiB".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgw_core::ConfigError;

    #[test]
    fn defaults_are_on_and_yaml_overrides_each_field() {
        let limits: ServerLimits = serde_saphyr::from_str(
            "headerReadTimeout: 5s\nrequestBodyTimeout: null\nkeepAliveTimeout: 2m\n\
             maxConnections: 10\nmaxHeaders: 20\nmaxHeaderBytes: 16KiB\n\
             http2MaxConcurrentStreams: 8\n",
        )
        .unwrap();
        assert_eq!(
            limits,
            ServerLimits::default()
                .header_read_timeout(Some(Duration::from_secs(5)))
                .request_body_timeout(None)
                .keep_alive_timeout(Some(Duration::from_secs(120)))
                .max_connections(Some(10))
                .max_headers(20)
                .max_header_bytes(16 * 1024)
                .http2_max_concurrent_streams(8)
        );
        let defaults: ServerLimits = serde_saphyr::from_str("{}").unwrap();
        assert_eq!(defaults, ServerLimits::default());
        assert_eq!(defaults.header_read_timeout, Some(Duration::from_secs(30)));
        assert!(defaults.validate().is_ok());
    }

    #[test]
    fn unknown_fields_and_limits_that_refuse_everyone_are_errors() {
        assert!(serde_saphyr::from_str::<ServerLimits>("maxConnection: 10\n").is_err());
        let cases = [
            (
                ServerLimits::default().max_connections(Some(0)),
                "maxConnections",
            ),
            (
                ServerLimits::default().header_read_timeout(Some(Duration::ZERO)),
                "headerReadTimeout",
            ),
            (
                ServerLimits::default().max_header_bytes(100),
                "maxHeaderBytes",
            ),
            (ServerLimits::default().max_headers(0), "maxHeaders"),
            (
                ServerLimits::default().http2_max_concurrent_streams(0),
                "http2MaxConcurrentStreams",
            ),
        ];
        for (limits, field) in cases {
            let err = limits.validate().unwrap_err();
            assert_eq!(err.path(), field, "{err}");
        }
    }
}
