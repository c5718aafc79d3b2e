//! Metric names recorded by this crate (through the `metrics` facade; the binary installs the
//! exporter).

/// Counter of server-side TLS handshakes, labelled `result` (`ok`, `handshake`, `timeout`) and,
/// for `ok`, `version` (`1.2`, `1.3`) and `resumed` (`true`, `false`).
pub const HANDSHAKES_TOTAL: &str = "agentgateway_tls_handshakes_total";
/// Counter of certificate reloads, labelled `role` (`server`, `client`, `client_ca`) and
/// `result` (`reloaded`, `refused`).
pub const CERTIFICATE_RELOADS_TOTAL: &str = "agentgateway_tls_certificate_reloads_total";
/// Gauge: the `notAfter` of the certificate in service, in unix seconds, labelled `role`.
pub const CERTIFICATE_NOT_AFTER_SECONDS: &str = "agentgateway_tls_certificate_not_after_seconds";
