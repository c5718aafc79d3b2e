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
//! use agentgw_tls::{ClientAuthConfig, ClientAuthMode, TlsAcceptor, TlsConfig, UpstreamTls, UpstreamTlsConfig};
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
//! let mut config = TlsConfig::new(path("server.crt"), path("server.key"));
//! config.client_auth = Some(ClientAuthConfig {
//!     mode: ClientAuthMode::Required,
//!     ca_file: path("ca.crt"),
//!     crl_files: vec![],
//! });
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
//! # In your own accept loop
//!
//! [`TlsAcceptor::accept`] runs the handshake on any `AsyncRead + AsyncWrite` stream and returns
//! the TLS stream and the verified identity; insert the identity into each request (or wrap the
//! service with [`ConnectionInfoLayer`]) and serve the stream with hyper-util as usual. Run the
//! handshake in the connection's task, not in the accept loop.
//!
//! # Configuration
//!
//! See [`config`] for the YAML shapes; unknown fields are errors, and every error while loading
//! names its field ([`TlsError::field`]).
//!
//! # Reloading
//!
//! [`TlsAcceptor::from_config`] (inside a tokio runtime) polls the certificate, key, client CA
//! and CRL files every `reloadInterval` (10 s by default) and compares their content, so
//! renewals by cert-manager (a symlink swap in a secret mount), `mv` or in-place writes are all
//! picked up. New handshakes use the new certificate; established connections are untouched.
//! A renewal that cannot be used (bad PEM, key not matching the certificate, certificate not
//! valid now) is logged and counted and the old certificate stays. Resumed sessions skip
//! certificate verification, so a client revoked by a new CRL can resume a session established
//! before for up to the ticket lifetime (6-12 hours).
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod config;
mod error;
mod identity;
mod load;
pub mod metrics;
mod reload;
mod serve;
mod server;
mod suites;
mod upstream;

pub use config::{
    ClientAuthConfig, ClientAuthMode, TlsConfig, TlsVersion, UpstreamTlsConfig, UpstreamTlsMode,
};
pub use error::TlsError;
pub use identity::{connection_identity, peer_identity};
pub use reload::{ReloadOutcome, ReloadingCertResolver};
pub use serve::{
    ConnectionInfoLayer, ConnectionInfoService, serve, serve_connection, serve_with_shutdown,
};
pub use server::TlsAcceptor;
pub use suites::{SUPPORTED_CIPHER_SUITES, cipher_suite_by_name};
pub use upstream::{UpstreamTls, client_config};
