//! TLS termination: the server configuration built from [`TlsConfig`] and the acceptor that
//! runs handshakes and reports the verified client identity.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentgw_core::identity::PeerIdentity;
use agentgw_core::metrics::{TLS_CERTIFICATE_RELOADS_TOTAL, TLS_HANDSHAKES_TOTAL, labels};
use agentgw_core::reload::{Contents, Reloading, WatchedFile};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ProducesTickets, ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier,
};
use rustls::{HandshakeKind, ProtocolVersion, ServerConfig, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use crate::config::{ClientAuthConfig, ClientAuthMode, TlsConfig};
use crate::identity::connection_identity;
use crate::reload::{ReloadOutcome, ReloadingCertResolver, to_reload_error, to_tls_error};
use crate::{Error, load, suites};

/// How many TLS 1.2 session IDs / TLS 1.3 stateful tickets the server remembers.
const SESSION_CACHE_SIZE: usize = 4096;

/// ALPN protocols offered by the server, most preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Runs TLS handshakes on accepted connections and returns the stream with the verified client
/// identity. Cheap to clone; clones share configuration, session cache and reloads.
///
/// Built from [`TlsConfig`] with [`from_config`](Self::from_config), which also starts
/// reloading (certificate, key, client CA and CRLs) when called inside a tokio runtime; or from
/// any `rustls::ServerConfig` with [`from_server_config`](Self::from_server_config).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use agentgw_tls::{TlsAcceptor, TlsConfig};
///
/// let acceptor = TlsAcceptor::from_config(&TlsConfig::new("/etc/tls/tls.crt", "/etc/tls/tls.key"))?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// loop {
///     let (tcp, _peer) = listener.accept().await?;
///     let acceptor = acceptor.clone();
///     tokio::spawn(async move {
///         // Handshake in the connection's task, never in the accept loop.
///         let Ok((stream, identity)) = acceptor.accept(tcp).await else { return };
///         // serve `stream`; insert `identity` (when Some) into each request's extensions
///         # let _ = (stream, identity);
///     });
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TlsAcceptor {
    inner: Arc<Inner>,
    handshake_timeout: Duration,
}

#[derive(Debug)]
struct Inner {
    config: ServerConfigSource,
    resolver: Option<Arc<ReloadingCertResolver>>,
    watching: AtomicBool,
}

/// Where the server configuration of new handshakes comes from.
#[derive(Debug)]
enum ServerConfigSource {
    /// Built once: no client authentication, or built by the caller.
    Fixed(Arc<ServerConfig>),
    /// Rebuilt when the client CA or CRL files change.
    ClientAuth(Reloading<ServerConfig>),
}

impl ServerConfigSource {
    fn current(&self) -> Arc<ServerConfig> {
        match self {
            ServerConfigSource::Fixed(config) => Arc::clone(config),
            ServerConfigSource::ClientAuth(config) => config.current().into_arc(),
        }
    }
}

/// Everything in the server configuration but the client certificate verifier: what is needed
/// to build it again when the client CA or CRLs change.
struct ServerSettings {
    provider: Arc<CryptoProvider>,
    versions: &'static [&'static SupportedProtocolVersion],
    ignore_client_order: bool,
    resolver: Arc<ReloadingCertResolver>,
    session_storage: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn ProducesTickets>,
}

impl ServerSettings {
    fn build(&self, verifier: Arc<dyn ClientCertVerifier>) -> Result<ServerConfig, Error> {
        let mut server = build(
            self.provider.clone(),
            self.versions,
            verifier,
            self.resolver.clone(),
        )?;
        server.ignore_client_order = self.ignore_client_order;
        server.session_storage = self.session_storage.clone();
        server.ticketer = self.ticketer.clone();
        Ok(server)
    }
}

impl TlsAcceptor {
    /// Validates `config`, loads every file it names and builds the server configuration: the
    /// protocol versions from `minVersion` up, the named cipher suites, ALPN `h2` and
    /// `http/1.1`, session resumption (stateless tickets and a session cache), client
    /// certificate verification when `clientAuth` is set, and a reloading certificate resolver.
    ///
    /// Inside a tokio runtime it also starts polling the files every `reloadInterval` (the task
    /// ends when the last clone of the acceptor is dropped); outside one, call
    /// [`watch`](Self::watch) later or [`reload`](Self::reload) when you know the files changed.
    ///
    /// # Errors
    ///
    /// An [`Error::Config`] naming the offending field relative to the `tls` block
    /// ([`ConfigError::path`](agentgw_core::ConfigError::path)): a missing `certFile` or
    /// `keyFile`, a file that cannot be read or parsed, a key that does not match the
    /// certificate, an unknown cipher suite, a client CA or CRL that cannot be used.
    pub fn from_config(config: &TlsConfig) -> Result<Self, Error> {
        for (path, file) in [
            ("certFile", &config.cert_file),
            ("keyFile", &config.key_file),
        ] {
            if file.as_os_str().is_empty() {
                return Err(Error::config(path, "is required (a PEM file)"));
            }
        }
        let provider = suites::provider(&config.cipher_suites, config.min_version)?;
        let versions = suites::versions(config.min_version);
        let ignore_client_order = !config.cipher_suites.is_empty();
        let resolver = Arc::new(ReloadingCertResolver::from_files(
            config.cert_file.clone(),
            config.key_file.clone(),
            provider.clone(),
        )?);
        let settings = ServerSettings {
            provider,
            versions,
            ignore_client_order,
            resolver: resolver.clone(),
            session_storage: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
            ticketer: rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| {
                Error::config("", format!("cannot create the session ticketer: {e}"))
            })?,
        };
        let server = match &config.client_auth {
            None => ServerConfigSource::Fixed(Arc::new(
                settings.build(WebPkiClientVerifier::no_client_auth())?,
            )),
            Some(auth) => ServerConfigSource::ClientAuth(client_auth(auth, settings)?),
        };
        let acceptor = TlsAcceptor {
            inner: Arc::new(Inner {
                config: server,
                resolver: Some(resolver),
                watching: AtomicBool::new(false),
            }),
            handshake_timeout: config.handshake_timeout,
        };
        if !config.reload_interval.is_zero() && tokio::runtime::Handle::try_current().is_ok() {
            acceptor.watch(config.reload_interval);
        }
        Ok(acceptor)
    }

    /// An acceptor over a configuration built elsewhere (no reloading by this type; a
    /// [`ReloadingCertResolver`] inside it still reloads on its own). Handshakes time out after
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`](crate::config::DEFAULT_HANDSHAKE_TIMEOUT).
    pub fn from_server_config(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor {
            inner: Arc::new(Inner {
                config: ServerConfigSource::Fixed(config),
                resolver: None,
                watching: AtomicBool::new(false),
            }),
            handshake_timeout: crate::config::DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The same acceptor with another handshake timeout (zero: none).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The server configuration new handshakes use (it changes when the client CA or CRLs are
    /// reloaded).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.inner.config.current()
    }

    /// The certificate resolver, when built by [`from_config`](Self::from_config).
    pub fn cert_resolver(&self) -> Option<&Arc<ReloadingCertResolver>> {
        self.inner.resolver.as_ref()
    }

    /// Runs the TLS handshake on `io` (within the handshake timeout) and returns the stream and
    /// the identity of the verified client certificate (`None` when the client presented
    /// none, which only `clientAuth.mode: Optional` or no `clientAuth` allows).
    pub async fn accept<IO>(&self, io: IO) -> Result<(TlsStream<IO>, Option<PeerIdentity>), Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.inner.config.current());
        let handshake = acceptor.accept(io);
        let timeout = self.handshake_timeout;
        let result = if timeout.is_zero() {
            handshake.await.map_err(Error::Handshake)
        } else {
            match tokio::time::timeout(timeout, handshake).await {
                Ok(result) => result.map_err(Error::Handshake),
                Err(_) => Err(Error::HandshakeTimeout(timeout)),
            }
        };
        match result {
            Ok(stream) => {
                let conn = stream.get_ref().1;
                let version = match conn.protocol_version() {
                    Some(ProtocolVersion::TLSv1_3) => "1.3",
                    Some(ProtocolVersion::TLSv1_2) => "1.2",
                    _ => "other",
                };
                let resumed = if conn.handshake_kind() == Some(HandshakeKind::Resumed) {
                    "true"
                } else {
                    "false"
                };
                metrics::counter!(
                    TLS_HANDSHAKES_TOTAL,
                    labels::RESULT => "ok",
                    labels::VERSION => version,
                    labels::RESUMED => resumed
                )
                .increment(1);
                let identity = connection_identity(conn);
                Ok((stream, identity))
            }
            Err(err) => {
                metrics::counter!(TLS_HANDSHAKES_TOTAL, labels::RESULT => err.kind()).increment(1);
                tracing::debug!(error = %err, "TLS handshake failed");
                Err(err)
            }
        }
    }

    /// Re-reads the certificate, key, client CA and CRL files now and puts changed, usable
    /// content in service. On error what is in service stays. Reads files synchronously.
    pub fn reload(&self) -> Result<ReloadOutcome, Error> {
        let mut outcome = ReloadOutcome::Unchanged;
        let mut first_error = None;
        if let Some(resolver) = &self.inner.resolver {
            match resolver.reload() {
                Ok(ReloadOutcome::Reloaded) => outcome = ReloadOutcome::Reloaded,
                Ok(_) => {}
                Err(err) => first_error = Some(err),
            }
        }
        if let ServerConfigSource::ClientAuth(client_auth) = &self.inner.config {
            match client_auth.check() {
                Ok(ReloadOutcome::Reloaded) => outcome = ReloadOutcome::Reloaded,
                Ok(_) => {}
                Err(err) => {
                    first_error.get_or_insert(to_tls_error(err));
                }
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(outcome),
        }
    }

    /// Checks the files every `interval` on the current tokio runtime until the last clone of
    /// the acceptor is dropped. Does nothing when already watching.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn watch(&self, interval: Duration) {
        if interval.is_zero() || self.inner.watching.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(resolver) = &self.inner.resolver {
            resolver.watch(interval);
        }
        if let ServerConfigSource::ClientAuth(client_auth) = &self.inner.config
            && let Err(err) = client_auth.watch(interval)
        {
            panic!("{err}");
        }
    }
}

/// The server configuration with client certificates verified against the CA bundle and CRLs
/// of `config`, rebuilt when those files change (a renewal that cannot be used keeps the
/// previous one in service).
fn client_auth(
    config: &ClientAuthConfig,
    settings: ServerSettings,
) -> Result<Reloading<ServerConfig>, Error> {
    if config.ca_file.as_os_str().is_empty() {
        return Err(Error::config(
            "clientAuth.caFile",
            "is required (a PEM bundle of the CAs that issue client certificates)",
        ));
    }
    let files =
        std::iter::once(WatchedFile::new("clientAuth.caFile", &config.ca_file)).chain(
            config.crl_files.iter().enumerate().map(|(index, path)| {
                WatchedFile::new(format!("clientAuth.crlFiles[{index}]"), path)
            }),
        );
    let mode = config.mode;
    Reloading::open_files("client CA and CRLs", files, move |contents| {
        let server = client_verifier(contents, mode, &settings.provider)
            .and_then(|verifier| settings.build(verifier))
            .map_err(|err| to_reload_error(contents, err));
        if contents.is_reload() {
            let result = if server.is_ok() { "reloaded" } else { "refused" };
            metrics::counter!(TLS_CERTIFICATE_RELOADS_TOTAL, labels::ROLE => "client_ca", labels::RESULT => result)
                .increment(1);
        }
        server
    })
    .map_err(to_tls_error)
}

fn build(
    provider: Arc<CryptoProvider>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    verifier: Arc<dyn ClientCertVerifier>,
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
) -> Result<ServerConfig, Error> {
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| {
            Error::config(
                "minVersion",
                format!("no cipher suite for the enabled versions: {e}"),
            )
        })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    server.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(server)
}

/// The client certificate verifier for one version of the CA bundle (file 0) and CRL files.
fn client_verifier(
    contents: &Contents<'_>,
    mode: ClientAuthMode,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let ca = contents.file(0);
    let roots = load::root_store(ca.field(), ca.file(), contents.bytes(0))?;
    let mut crls = Vec::new();
    for (index, crl) in contents.files().iter().enumerate().skip(1) {
        crls.extend(load::crls(crl.field(), crl.file(), contents.bytes(index))?);
    }
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if !crls.is_empty() {
        builder = builder.with_crls(crls);
    }
    if mode == ClientAuthMode::Optional {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| {
        let field = if matches!(e, rustls::server::VerifierBuilderError::InvalidCrl(_)) {
            "clientAuth.crlFiles"
        } else {
            "clientAuth.caFile"
        };
        Error::config(
            field,
            format!("cannot build the client certificate verifier: {e}"),
        )
    })
}
