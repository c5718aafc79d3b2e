//! TLS termination: the server configuration built from [`TlsConfig`] and the acceptor that
//! runs handshakes and reports the verified client identity.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentgw_core::identity::PeerIdentity;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{HandshakeKind, ProtocolVersion, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use crate::config::{ClientAuthConfig, ClientAuthMode, TlsConfig};
use crate::identity::connection_identity;
use crate::metrics::{CERTIFICATE_RELOADS_TOTAL, HANDSHAKES_TOTAL};
use crate::reload::{ReloadOutcome, ReloadingCertResolver, spawn_poller};
use crate::{TlsError, load, suites};

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
    config: ArcSwap<ServerConfig>,
    resolver: Option<Arc<ReloadingCertResolver>>,
    client_auth: Option<ClientAuthState>,
    watching: AtomicBool,
}

/// What is needed to rebuild the server configuration when the client CA or CRLs change.
#[derive(Debug)]
struct ClientAuthState {
    config: ClientAuthConfig,
    provider: Arc<CryptoProvider>,
    versions: &'static [&'static rustls::SupportedProtocolVersion],
    ignore_client_order: bool,
    last_seen: Mutex<[u8; 32]>,
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
    /// Errors name the offending field relative to the `tls` block ([`TlsError::field`]).
    pub fn from_config(config: &TlsConfig) -> Result<Self, TlsError> {
        let provider = suites::provider(&config.cipher_suites, config.min_version)?;
        let versions = suites::versions(config.min_version);
        let ignore_client_order = !config.cipher_suites.is_empty();
        let resolver = Arc::new(ReloadingCertResolver::from_files(
            config.cert_file.clone(),
            config.key_file.clone(),
            provider.clone(),
        )?);
        let (verifier, client_auth) = match &config.client_auth {
            None => (WebPkiClientVerifier::no_client_auth(), None),
            Some(auth) => {
                let (verifier, fingerprint) = client_verifier(auth, &provider)?;
                let state = ClientAuthState {
                    config: auth.clone(),
                    provider: provider.clone(),
                    versions,
                    ignore_client_order,
                    last_seen: Mutex::new(fingerprint),
                };
                (verifier, Some(state))
            }
        };
        let mut server = build(provider.clone(), versions, verifier, resolver.clone())?;
        server.ignore_client_order = ignore_client_order;
        server.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        server.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| {
            TlsError::config("", format!("cannot create the session ticketer: {e}"))
        })?;
        let acceptor = TlsAcceptor {
            inner: Arc::new(Inner {
                config: ArcSwap::from_pointee(server),
                resolver: Some(resolver),
                client_auth,
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
                config: ArcSwap::new(config),
                resolver: None,
                client_auth: None,
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
        self.inner.config.load_full()
    }

    /// The certificate resolver, when built by [`from_config`](Self::from_config).
    pub fn cert_resolver(&self) -> Option<&Arc<ReloadingCertResolver>> {
        self.inner.resolver.as_ref()
    }

    /// Runs the TLS handshake on `io` (within the handshake timeout) and returns the stream and
    /// the identity of the verified client certificate (`None` when the client presented
    /// none, which only `clientAuth.mode: Optional` or no `clientAuth` allows).
    pub async fn accept<IO>(
        &self,
        io: IO,
    ) -> Result<(TlsStream<IO>, Option<PeerIdentity>), TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.inner.config.load_full());
        let handshake = acceptor.accept(io);
        let timeout = self.handshake_timeout;
        let result = if timeout.is_zero() {
            handshake.await.map_err(TlsError::Handshake)
        } else {
            match tokio::time::timeout(timeout, handshake).await {
                Ok(result) => result.map_err(TlsError::Handshake),
                Err(_) => Err(TlsError::HandshakeTimeout(timeout)),
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
                metrics::counter!(HANDSHAKES_TOTAL, "result" => "ok", "version" => version, "resumed" => resumed)
                    .increment(1);
                let identity = connection_identity(conn);
                Ok((stream, identity))
            }
            Err(err) => {
                metrics::counter!(HANDSHAKES_TOTAL, "result" => err.reason()).increment(1);
                tracing::debug!(error = %err, "TLS handshake failed");
                Err(err)
            }
        }
    }

    /// Re-reads the certificate, key, client CA and CRL files now and puts changed, usable
    /// content in service. On error what is in service stays. Reads files synchronously.
    pub fn reload(&self) -> Result<ReloadOutcome, TlsError> {
        let mut outcome = ReloadOutcome::Unchanged;
        let mut first_error = None;
        if let Some(resolver) = &self.inner.resolver {
            match resolver.reload() {
                Ok(ReloadOutcome::Reloaded) => outcome = ReloadOutcome::Reloaded,
                Ok(_) => {}
                Err(err) => first_error = Some(err),
            }
        }
        match self.reload_client_auth() {
            Ok(ReloadOutcome::Reloaded) => outcome = ReloadOutcome::Reloaded,
            Ok(_) => {}
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(outcome),
        }
    }

    /// Polls the files every `interval` on the current tokio runtime until the last clone of
    /// the acceptor is dropped. Does nothing when already watching.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn watch(&self, interval: Duration) {
        if interval.is_zero() || self.inner.watching.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        spawn_poller(weak, interval, |inner: &Inner| {
            if let Some(resolver) = &inner.resolver
                && let Err(err) = resolver.reload()
            {
                tracing::error!(error = %err, "new certificate files refused; the previous certificate stays in service");
            }
            if let Err(err) = reload_client_auth(inner) {
                tracing::error!(error = %err, "new client CA or CRL files refused; the previous ones stay in service");
            }
        });
    }

    fn reload_client_auth(&self) -> Result<ReloadOutcome, TlsError> {
        reload_client_auth(&self.inner)
    }
}

fn reload_client_auth(inner: &Inner) -> Result<ReloadOutcome, TlsError> {
    let Some(state) = &inner.client_auth else {
        return Ok(ReloadOutcome::Unchanged);
    };
    let mut last_seen = state.last_seen.lock().unwrap_or_else(|e| e.into_inner());
    let files = read_client_auth_files(&state.config)?;
    let fingerprint = load::fingerprint(files.iter().map(|(_, _, bytes)| &bytes[..]));
    if fingerprint == *last_seen {
        return Ok(ReloadOutcome::Unchanged);
    }
    *last_seen = fingerprint;
    let rebuilt =
        verifier_from_files(&state.config, &files, &state.provider).and_then(|verifier| {
            let current = inner.config.load_full();
            let mut server = build(
                state.provider.clone(),
                state.versions,
                verifier,
                current.cert_resolver.clone(),
            )?;
            server.ignore_client_order = state.ignore_client_order;
            server.session_storage = current.session_storage.clone();
            server.ticketer = current.ticketer.clone();
            Ok(server)
        });
    match rebuilt {
        Ok(server) => {
            inner.config.store(Arc::new(server));
            metrics::counter!(CERTIFICATE_RELOADS_TOTAL, "role" => "client_ca", "result" => "reloaded").increment(1);
            tracing::info!(ca_file = %state.config.ca_file.display(), "client CA and CRLs reloaded");
            Ok(ReloadOutcome::Reloaded)
        }
        Err(err) => {
            metrics::counter!(CERTIFICATE_RELOADS_TOTAL, "role" => "client_ca", "result" => "refused").increment(1);
            Err(err)
        }
    }
}

fn build(
    provider: Arc<CryptoProvider>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    verifier: Arc<dyn ClientCertVerifier>,
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
) -> Result<ServerConfig, TlsError> {
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| {
            TlsError::config(
                "minVersion",
                format!("no cipher suite for the enabled versions: {e}"),
            )
        })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    server.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(server)
}

/// `(field, path, bytes)` of the CA bundle and each CRL file.
type ClientAuthFiles = Vec<(String, PathBuf, Vec<u8>)>;

fn read_client_auth_files(config: &ClientAuthConfig) -> Result<ClientAuthFiles, TlsError> {
    let mut files = Vec::with_capacity(1 + config.crl_files.len());
    let field = "clientAuth.caFile".to_owned();
    files.push((
        field.clone(),
        config.ca_file.clone(),
        load::read(&field, &config.ca_file)?,
    ));
    for (index, path) in config.crl_files.iter().enumerate() {
        let field = format!("clientAuth.crlFiles[{index}]");
        let bytes = load::read(&field, path)?;
        files.push((field, path.clone(), bytes));
    }
    Ok(files)
}

fn client_verifier(
    config: &ClientAuthConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<(Arc<dyn ClientCertVerifier>, [u8; 32]), TlsError> {
    let files = read_client_auth_files(config)?;
    let fingerprint = load::fingerprint(files.iter().map(|(_, _, bytes)| &bytes[..]));
    Ok((verifier_from_files(config, &files, provider)?, fingerprint))
}

fn verifier_from_files(
    config: &ClientAuthConfig,
    files: &ClientAuthFiles,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let (ca_field, ca_path, ca_pem) = &files[0];
    let roots = load::root_store(ca_field, ca_path, ca_pem)?;
    let mut crls = Vec::new();
    for (field, path, bytes) in &files[1..] {
        crls.extend(load::crls(field, path, bytes)?);
    }
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    if !crls.is_empty() {
        builder = builder.with_crls(crls);
    }
    if config.mode == ClientAuthMode::Optional {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| {
        let field = if matches!(e, rustls::server::VerifierBuilderError::InvalidCrl(_)) {
            "clientAuth.crlFiles"
        } else {
            "clientAuth.caFile"
        };
        TlsError::config(
            field,
            format!("cannot build the client certificate verifier: {e}"),
        )
    })
}
