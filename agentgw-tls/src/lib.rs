//! TLS termination with hot-reloaded certificates, mTLS peer identities and upstream TLS for
//! agentgw, on rustls (aws-lc-rs provider only; every configuration is built with an explicit
//! provider, nothing depends on a process-wide default).
//!
//! | piece | what it does |
//! |---|---|
//! | [`TlsConfig`] → [`TlsAcceptor`] | server TLS from PEM files: `minVersion` 1.2/1.3, cipher suites by IANA name, ALPN `h2`/`http/1.1`, session resumption, handshake timeout |
//! | [`ReloadingCertResolver`] | the certificate in service, swapped when its files change (Kubernetes secret mounts included); a broken renewal keeps the old one |
//! | [`ClientAuthConfig`] | mutual TLS: client certificates verified against a CA bundle and optional CRLs, `Required` or `Optional`; CA and CRL changes are reloaded too |
//! | [`peer_identity`] | subject CN, DNS/URI SANs, SPIFFE ID and SHA-256 fingerprint of the verified client certificate, as [`PeerIdentity`](agentgw_core::identity::PeerIdentity) (CEL `source.identity.*`) |
//! | [`serve`], [`serve_with_shutdown`], [`serve_connection`] | any tower service (axum `Router`, stacked agentgw layers) over TLS with hyper-util, identity and client address in each request's extensions |
//! | [`serve_plain`], [`serve_plain_with_shutdown`] | the same accept loop and graceful shutdown over plain TCP, client address in each request's extensions |
//! | [`UpstreamTlsConfig`] → [`UpstreamTls`] | client TLS to upstreams (`SIMPLE`/`MUTUAL`): custom CA or system roots, reloaded client certificate, for reqwest and hyper |
//!
//! # Server TLS, mTLS and upstream TLS together
//!
//! A server requiring client certificates, and a client presenting one; the handler reads the
//! client's SPIFFE ID from the request extensions. A client without a certificate is refused
//! during the handshake.
//!
//! ```
//! use agentgw_core::identity::PeerIdentity;
//! use agentgw_tls::{ClientAuthConfig, TlsAcceptor, TlsConfig, UpstreamTls, UpstreamTlsConfig};
//! use axum::{Extension, Router, routing::get};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = |name: &str| dir.path().join(name);
//! # let ca_key = rcgen::KeyPair::generate()?;
//! # let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
//! # ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
//! # let ca_cert = ca.self_signed(&ca_key)?;
//! # let issuer = rcgen::Issuer::new(ca, ca_key);
//! # std::fs::write(path("ca.crt"), ca_cert.pem())?;
//! # let leaf = |san: rcgen::SanType, stem: &str| -> Result<(), Box<dyn std::error::Error>> {
//! #     let key = rcgen::KeyPair::generate()?;
//! #     let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
//! #     params.subject_alt_names = vec![san];
//! #     let cert = params.signed_by(&key, &issuer)?;
//! #     std::fs::write(path(&format!("{stem}.crt")), cert.pem())?;
//! #     std::fs::write(path(&format!("{stem}.key")), key.serialize_pem())?;
//! #     Ok(())
//! # };
//! # leaf(rcgen::SanType::DnsName("gateway.test".try_into()?), "server")?;
//! # leaf(rcgen::SanType::URI("spiffe://example.org/agent".try_into()?), "client")?;
//! // Server: TLS 1.2+ from PEM files, client certificates required.
//! let config = TlsConfig::new(path("server.crt"), path("server.key"))
//!     .client_auth(ClientAuthConfig::required(path("ca.crt")));
//! let acceptor = TlsAcceptor::from_config(&config)?;
//! let app = Router::new().route(
//!     "/whoami",
//!     get(|Extension(id): Extension<PeerIdentity>| async move { id.spiffe_id.unwrap_or_default() }),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(agentgw_tls::serve(listener, acceptor, app));
//!
//! // Client: mutual TLS with our CA and client certificate, through reqwest.
//! let tls = UpstreamTls::from_config(&UpstreamTlsConfig::mutual(
//!     path("ca.crt"),
//!     path("client.crt"),
//!     path("client.key"),
//! ))?;
//! let client = reqwest::Client::builder()
//!     .tls_backend_preconfigured(tls.client_config())
//!     .resolve("gateway.test", addr)
//!     .build()?;
//! let url = format!("https://gateway.test:{}/whoami", addr.port());
//! let who = client.get(&url).send().await?.text().await?;
//! assert_eq!(who, "spiffe://example.org/agent");
//!
//! // Without a client certificate the handshake fails: no request reaches the handler.
//! let simple = UpstreamTls::from_config(&UpstreamTlsConfig::simple(path("ca.crt")))?;
//! let anonymous = reqwest::Client::builder()
//!     .tls_backend_preconfigured(simple.client_config())
//!     .resolve("gateway.test", addr)
//!     .build()?;
//! assert!(anonymous.get(&url).send().await.is_err());
//! # Ok(())
//! # }
//! ```
//!
//! # From YAML
//!
//! The same blocks read from configuration (field names as in [`config`]); a bad file is an
//! error naming its field, ready to be prefixed with where the block sits:
//!
//! ```
//! use agentgw_core::ConfigError;
//! use agentgw_tls::{TlsAcceptor, TlsConfig, UpstreamTls, UpstreamTlsConfig};
//! use axum::{Router, routing::get};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().display();
//! # let ca_key = rcgen::KeyPair::generate()?;
//! # let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
//! # ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
//! # let ca_cert = ca.self_signed(&ca_key)?;
//! # let issuer = rcgen::Issuer::new(ca, ca_key);
//! # std::fs::write(tmp.path().join("ca.crt"), ca_cert.pem())?;
//! # let key = rcgen::KeyPair::generate()?;
//! # let cert = rcgen::CertificateParams::new(vec!["gateway.test".to_owned()])?.signed_by(&key, &issuer)?;
//! # std::fs::write(tmp.path().join("tls.crt"), cert.pem())?;
//! # std::fs::write(tmp.path().join("tls.key"), key.serialize_pem())?;
//! // `dir` is where the PEM files are.
//! let server: TlsConfig = serde_saphyr::from_str(&format!(
//!     "certFile: {dir}/tls.crt\nkeyFile: {dir}/tls.key\nminVersion: \"1.3\"\nreloadInterval: 30s\n"
//! ))?;
//! let app = Router::new().route("/health", get(|| async { "ok" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(agentgw_tls::serve(listener, TlsAcceptor::from_config(&server)?, app));
//!
//! let upstream: UpstreamTlsConfig =
//!     serde_saphyr::from_str(&format!("mode: SIMPLE\ncaFile: {dir}/ca.crt\n"))?;
//! let client = reqwest::Client::builder()
//!     .tls_backend_preconfigured(UpstreamTls::from_config(&upstream)?.client_config())
//!     .resolve("gateway.test", addr)
//!     .build()?;
//! let url = format!("https://gateway.test:{}/health", addr.port());
//! assert_eq!(client.get(&url).send().await?.text().await?, "ok");
//!
//! let broken: TlsConfig =
//!     serde_saphyr::from_str(&format!("certFile: {dir}/tls.crt\nkeyFile: {dir}/missing.key\n"))?;
//! let err = TlsAcceptor::from_config(&broken).unwrap_err();
//! assert_eq!(err.path(), "keyFile");
//! assert!(err.at("listeners[0].tls").starts_with("listeners[0].tls.keyFile: cannot read "));
//! # Ok(())
//! # }
//! ```
//!
//! # In your own accept loop
//!
//! [`TlsAcceptor::accept`] runs the handshake on any `AsyncRead + AsyncWrite` stream and returns
//! the TLS stream and the verified identity; insert the identity into each request (or wrap the
//! service with [`ConnectionInfoLayer`]) and serve the stream with hyper-util as usual. Run the
//! handshake in the connection's task, not in the accept loop.
//!
//! # Configuration
//!
//! See [`config`] for the YAML shapes; every configuration type also has `Default` and builder
//! methods named after its fields. Unknown fields are errors, durations follow the rule of
//! every agentgw crate ([`agentgw_core::config::parse_duration`]: `10s`, `500ms`, or a number
//! of seconds), and every error while loading names its field relative to the block
//! ([`Error`], through [`ConfigError::path`](agentgw_core::ConfigError::path)).
//!
//! # Metrics
//!
//! Recorded through the `metrics` facade under the names defined in
//! [`agentgw_core::metrics`]: [`TLS_HANDSHAKES_TOTAL`](agentgw_core::metrics::TLS_HANDSHAKES_TOTAL)
//! (`result` = `ok` or the failure's [`Error::kind`], `version`, `resumed`),
//! [`TLS_CERTIFICATE_RELOADS_TOTAL`](agentgw_core::metrics::TLS_CERTIFICATE_RELOADS_TOTAL)
//! (`role`, `result`) and
//! [`TLS_CERTIFICATE_NOT_AFTER_SECONDS`](agentgw_core::metrics::TLS_CERTIFICATE_NOT_AFTER_SECONDS)
//! (`role`).
//!
//! # Reloading
//!
//! [`TlsAcceptor::from_config`] (inside a tokio runtime) checks the certificate, key, client CA
//! and CRL files every `reloadInterval` (10 s by default) with [`agentgw_core::reload`]: their
//! stamps, then their content once a change held still, so renewals by cert-manager (a symlink
//! swap in a secret mount), `mv` or in-place writes are all picked up, within two intervals,
//! and a half-written file is not. New handshakes use the new certificate; established
//! connections are untouched. A renewal that cannot be used (bad PEM, key not matching the
//! certificate, certificate not valid now) is logged and counted and the old certificate stays.
//! Resumed sessions skip certificate verification, so a client revoked by a new CRL can resume
//! a session established before for up to the ticket lifetime (6-12 hours).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
mod error;
mod identity;
pub mod limits;
mod load;
mod reload;
mod serve;
mod server;
mod suites;
mod upstream;

pub use config::{
    CertificateSecret, ClientAuthConfig, ClientAuthMode, TlsConfig, TlsVersion, UpstreamTlsConfig,
    UpstreamTlsMode,
};
pub use error::Error;
pub use identity::{connection_identity, peer_identity};
pub use limits::ServerLimits;
pub use reload::{ReloadOutcome, ReloadingCertResolver};
pub use serve::{
    ConnectionInfoLayer, ConnectionInfoService, RequestBody, Server, serve, serve_connection,
    serve_plain, serve_plain_with_shutdown, serve_with_shutdown,
};
pub use server::TlsAcceptor;
pub use suites::{SUPPORTED_CIPHER_SUITES, cipher_suite_by_name};
pub use upstream::{UpstreamTls, client_config};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
