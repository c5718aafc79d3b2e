//! End-to-end TLS tests on 127.0.0.1 with certificates generated at test time.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentgw_core::ConfigError;
use agentgw_core::identity::{ClientAddr, PeerIdentity};
use agentgw_tls::{
    ClientAuthConfig, ClientAuthMode, Error, ReloadOutcome, TlsAcceptor, TlsConfig, TlsVersion,
    UpstreamTls, UpstreamTlsConfig,
};
use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use bytes::Bytes;
use common::{Ca, Leaf, SERVER_DNS, client_config, server_name};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use rustls::version::{TLS12, TLS13};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every PKI file of one test, in a temporary directory.
struct Setup {
    dir: tempfile::TempDir,
    ca: Ca,
    server: Leaf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test CA");
        let server = ca.server(&[SERVER_DNS]);
        server.write(dir.path(), "server");
        ca.write(dir.path(), "ca.crt");
        Setup { dir, ca, server }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> TlsConfig {
        TlsConfig::new(self.path("server.crt"), self.path("server.key"))
    }

    fn mtls_config(&self, mode: ClientAuthMode) -> TlsConfig {
        self.config()
            .client_auth(ClientAuthConfig::required(self.path("ca.crt")).mode(mode))
    }
}

/// A server answering `/whoami` with the request's identity and client address, counting the
/// requests that reach it.
struct Server {
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    hits: Arc<AtomicUsize>,
}

async fn start(config: TlsConfig) -> Server {
    let acceptor = TlsAcceptor::from_config(&config).unwrap();
    start_with(acceptor).await
}

async fn start_with(acceptor: TlsAcceptor) -> Server {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/whoami",
        get(move |req: Request| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let identity = req.extensions().get::<PeerIdentity>().map(PeerIdentity::to_value);
                let addr = req.extensions().get::<ClientAddr>().map(|a| a.0.to_string());
                json!({"identity": identity, "clientAddr": addr, "version": format!("{:?}", req.version())})
                    .to_string()
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(agentgw_tls::serve(listener, acceptor.clone(), app));
    Server {
        addr,
        acceptor,
        hits,
    }
}

async fn connect(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(server_name(), tcp)
        .await
}

/// An HTTP/1.1 keep-alive connection over TLS.
struct Http1 {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    server_leaf: CertificateDer<'static>,
}

impl Http1 {
    async fn open(stream: TlsStream<TcpStream>) -> Result<Http1, BoxError> {
        let server_leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Http1 {
            sender,
            server_leaf,
        })
    }

    async fn whoami(&mut self) -> Result<Value, BoxError> {
        let req = http::Request::get("/whoami")
            .header(http::header::HOST, SERVER_DNS)
            .body(Empty::new())?;
        let res = self.sender.send_request(req).await?;
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&body)?)
    }
}

async fn whoami(addr: SocketAddr, config: rustls::ClientConfig) -> Result<Value, BoxError> {
    Http1::open(connect(addr, config).await?)
        .await?
        .whoami()
        .await
}

#[tokio::test]
async fn tls13_handshake_serves_http1_and_http2_with_alpn() {
    let setup = Setup::new();
    let server = start(setup.config()).await;

    let stream = connect(server.addr, client_config(&setup.ca, &[&TLS13], None))
        .await
        .unwrap();
    let conn = stream.get_ref().1;
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let body = Http1::open(stream).await.unwrap().whoami().await.unwrap();
    assert_eq!(
        body["identity"],
        Value::Null,
        "no client certificate, no identity"
    );
    assert!(
        body["clientAddr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );

    // reqwest negotiates h2 through ALPN.
    let tls = UpstreamTls::from_config(&UpstreamTlsConfig::simple(setup.path("ca.crt"))).unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls.client_config())
        .resolve(SERVER_DNS, server.addr)
        .build()
        .unwrap();
    let res = client
        .get(format!(
            "https://{SERVER_DNS}:{}/whoami",
            server.addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["version"], "HTTP/2.0");
}

#[tokio::test]
async fn tls12_is_accepted_when_min_version_allows_it() {
    let setup = Setup::new();
    let server = start(setup.config()).await;
    let stream = connect(server.addr, client_config(&setup.ca, &[&TLS12], None))
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let body = Http1::open(stream).await.unwrap().whoami().await.unwrap();
    assert_eq!(body["version"], "HTTP/1.1");
}

#[tokio::test]
async fn tls12_only_client_is_refused_when_min_version_is_13() {
    let setup = Setup::new();
    let mut config = setup.config();
    config.min_version = TlsVersion::Tls13;
    let server = start(config).await;
    let err = connect(server.addr, client_config(&setup.ca, &[&TLS12], None))
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("protocolversion"),
        "{err}"
    );
    // The same server still speaks TLS 1.3.
    whoami(server.addr, client_config(&setup.ca, &[&TLS13], None))
        .await
        .unwrap();
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn configured_cipher_suites_are_the_only_ones_offered() {
    let setup = Setup::new();
    let mut config = setup.config();
    config.min_version = TlsVersion::Tls13;
    config.cipher_suites = vec!["TLS_CHACHA20_POLY1305_SHA256".into()];
    let server = start(config).await;

    let aes_only = {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.cipher_suites =
            vec![rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384];
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&TLS13])
            .unwrap()
            .with_root_certificates(setup.ca.roots())
            .with_no_client_auth()
    };
    assert!(connect(server.addr, aes_only).await.is_err());

    let stream = connect(server.addr, client_config(&setup.ca, &[&TLS13], None))
        .await
        .unwrap();
    let suite = stream
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .unwrap()
        .suite();
    assert_eq!(suite, rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
}

#[tokio::test]
async fn mtls_required_refuses_clients_without_a_certificate_or_from_another_ca() {
    let setup = Setup::new();
    let server = start(setup.mtls_config(ClientAuthMode::Required)).await;

    // No certificate: in TLS 1.3 the client learns it on its first read.
    let result = whoami(server.addr, client_config(&setup.ca, &[&TLS13], None)).await;
    assert!(result.is_err(), "anonymous client was served: {result:?}");
    let result = whoami(server.addr, client_config(&setup.ca, &[&TLS12], None)).await;
    assert!(
        result.is_err(),
        "anonymous TLS 1.2 client was served: {result:?}"
    );

    // A certificate from a CA the server does not trust.
    let stranger = Ca::new("other CA").client("mallory", &[], &[], 7);
    let result = whoami(
        server.addr,
        client_config(&setup.ca, &[&TLS13], Some(&stranger)),
    )
    .await;
    assert!(
        result.is_err(),
        "client of another CA was served: {result:?}"
    );
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        0,
        "no refused request reached the service"
    );

    // A client of the trusted CA passes.
    let alice = setup.ca.client("alice", &[], &[], 8);
    let body = whoami(
        server.addr,
        client_config(&setup.ca, &[&TLS13], Some(&alice)),
    )
    .await
    .unwrap();
    assert_eq!(body["identity"]["commonName"], "alice");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn mtls_optional_serves_anonymous_clients_without_identity() {
    let setup = Setup::new();
    let server = start(setup.mtls_config(ClientAuthMode::Optional)).await;
    let body = whoami(server.addr, client_config(&setup.ca, &[&TLS13], None))
        .await
        .unwrap();
    assert_eq!(body["identity"], Value::Null);

    let bob = setup.ca.client("bob", &[], &[], 9);
    let body = whoami(server.addr, client_config(&setup.ca, &[&TLS13], Some(&bob)))
        .await
        .unwrap();
    assert_eq!(body["identity"]["commonName"], "bob");

    // Optional still verifies what is presented.
    let stranger = Ca::new("other CA").client("mallory", &[], &[], 7);
    assert!(
        whoami(
            server.addr,
            client_config(&setup.ca, &[&TLS13], Some(&stranger))
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn identity_extension_carries_cn_sans_spiffe_id_and_fingerprint() {
    let setup = Setup::new();
    let server = start(setup.mtls_config(ClientAuthMode::Required)).await;
    let agent = setup.ca.client(
        "billing-agent",
        &["billing.internal", "billing.svc"],
        &[
            "spiffe://prod.example/ns/billing/sa/agent",
            "urn:agent:billing",
        ],
        10,
    );
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        let body = whoami(
            server.addr,
            client_config(&setup.ca, versions, Some(&agent)),
        )
        .await
        .unwrap();
        let fingerprint = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(agent.der().as_ref()))
        };
        assert_eq!(
            body["identity"],
            json!({
                "commonName": "billing-agent",
                "dnsNames": ["billing.internal", "billing.svc"],
                "uris": ["spiffe://prod.example/ns/billing/sa/agent", "urn:agent:billing"],
                "spiffeId": "spiffe://prod.example/ns/billing/sa/agent",
                "fingerprintSha256": fingerprint,
            })
        );
    }
}

#[tokio::test]
async fn resumed_sessions_keep_the_client_identity() {
    let setup = Setup::new();
    let server = start(setup.mtls_config(ClientAuthMode::Required)).await;
    let agent = setup.ca.client("agent", &[], &["spiffe://td/agent"], 11);
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        // One config, so its session store carries the ticket to the second connection.
        let config = client_config(&setup.ca, versions, Some(&agent));
        let first = connect(server.addr, config.clone()).await.unwrap();
        let mut first = Http1::open(first).await.unwrap();
        first.whoami().await.unwrap(); // TLS 1.3 tickets arrive after the handshake
        let second = connect(server.addr, config).await.unwrap();
        assert_eq!(
            second.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        );
        let body = Http1::open(second).await.unwrap().whoami().await.unwrap();
        assert_eq!(body["identity"]["spiffeId"], "spiffe://td/agent");
    }
}

/// Puts `leaf` in service the way a Kubernetes secret volume does: files in a fresh directory,
/// `..data` re-pointed at it with an atomic rename, `tls.crt`/`tls.key` linking through it.
#[cfg(unix)]
fn publish_like_kubernetes(dir: &Path, version: u32, leaf: &Leaf) {
    use std::os::unix::fs::symlink;
    let data_dir = format!("..v{version}");
    std::fs::create_dir(dir.join(&data_dir)).unwrap();
    leaf.write(&dir.join(&data_dir), "tls");
    let tmp = dir.join("..data_tmp");
    symlink(&data_dir, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            symlink(format!("..data/{name}"), link).unwrap();
        }
    }
}

async fn leaf_seen_by_new_connections(server: &Server, ca: &Ca) -> CertificateDer<'static> {
    let stream = connect(server.addr, client_config(ca, &[&TLS13], None))
        .await
        .unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

async fn wait_for_leaf(server: &Server, ca: &Ca, want: &CertificateDer<'static>) {
    for _ in 0..200 {
        if &leaf_seen_by_new_connections(server, ca).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("new connections never saw the renewed certificate");
}

#[cfg(unix)]
#[tokio::test]
async fn rotation_serves_new_certificate_and_keeps_open_connections() {
    let setup = Setup::new();
    let secret = setup.path("secret");
    std::fs::create_dir(&secret).unwrap();
    let old = setup.ca.server(&[SERVER_DNS]);
    publish_like_kubernetes(&secret, 1, &old);
    let mut config = TlsConfig::new(secret.join("tls.crt"), secret.join("tls.key"));
    config.reload_interval = Duration::from_millis(50);
    let server = start(config).await;

    let mut open = Http1::open(
        connect(server.addr, client_config(&setup.ca, &[&TLS13], None))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    open.whoami().await.unwrap();
    assert_eq!(open.server_leaf, old.der());

    // A broken renewal (certificate without its key) keeps the old certificate in service.
    let renewed = setup.ca.server(&[SERVER_DNS]);
    let broken = Leaf {
        cert_pem: renewed.cert_pem.clone(),
        key_pem: old.key_pem.clone(),
    };
    publish_like_kubernetes(&secret, 2, &broken);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        leaf_seen_by_new_connections(&server, &setup.ca).await,
        old.der()
    );

    // The fixed renewal is picked up by new handshakes...
    publish_like_kubernetes(&secret, 3, &renewed);
    wait_for_leaf(&server, &setup.ca, &renewed.der()).await;

    // ...while the connection opened before keeps working on its own session.
    let body = open.whoami().await.unwrap();
    assert_eq!(body["version"], "HTTP/1.1");
    assert_eq!(open.server_leaf, old.der());
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rotation_by_rewriting_files_in_place_and_manual_reload() {
    let setup = Setup::new();
    let mut config = setup.config();
    config.reload_interval = Duration::ZERO; // no watcher: reload by hand
    let server = start(config).await;
    assert_eq!(
        leaf_seen_by_new_connections(&server, &setup.ca).await,
        setup.server.der()
    );

    std::fs::write(setup.path("server.crt"), "not a certificate").unwrap();
    let err = server.acceptor.reload().unwrap_err();
    assert_eq!(err.path(), "certFile");
    assert_eq!(
        leaf_seen_by_new_connections(&server, &setup.ca).await,
        setup.server.der()
    );

    let renewed = setup.ca.server(&[SERVER_DNS]);
    renewed.write(setup.dir.path(), "server");
    assert_eq!(server.acceptor.reload().unwrap(), ReloadOutcome::Reloaded);
    assert_eq!(server.acceptor.reload().unwrap(), ReloadOutcome::Unchanged);
    assert_eq!(
        leaf_seen_by_new_connections(&server, &setup.ca).await,
        renewed.der()
    );
}

#[tokio::test]
async fn crl_refuses_revoked_clients_and_crl_updates_are_reloaded() {
    let setup = Setup::new();
    std::fs::write(setup.path("clients.crl"), setup.ca.crl(&[100])).unwrap();
    let mut config = setup.mtls_config(ClientAuthMode::Required);
    config.client_auth.as_mut().unwrap().crl_files = vec![setup.path("clients.crl")];
    config.reload_interval = Duration::from_millis(50);
    let server = start(config).await;

    let revoked = setup.ca.client("revoked", &[], &[], 100);
    let good = setup.ca.client("good", &[], &[], 101);
    assert!(
        whoami(
            server.addr,
            client_config(&setup.ca, &[&TLS13], Some(&revoked))
        )
        .await
        .is_err()
    );
    whoami(
        server.addr,
        client_config(&setup.ca, &[&TLS13], Some(&good)),
    )
    .await
    .unwrap();

    // Revoke `good` too: after the next poll, new (full) handshakes refuse it.
    std::fs::write(setup.path("clients.crl"), setup.ca.crl(&[100, 101])).unwrap();
    let mut refused = false;
    for _ in 0..200 {
        if whoami(
            server.addr,
            client_config(&setup.ca, &[&TLS13], Some(&good)),
        )
        .await
        .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(refused, "the updated CRL was never applied");
    let served = server.hits.load(Ordering::SeqCst);
    assert!(
        whoami(
            server.addr,
            client_config(&setup.ca, &[&TLS13], Some(&good))
        )
        .await
        .is_err()
    );
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        served,
        "refused clients never reach the service"
    );
}

#[tokio::test]
async fn configuration_errors_name_the_field() {
    let setup = Setup::new();
    let err = TlsAcceptor::from_config(&TlsConfig::new(
        setup.path("missing.crt"),
        setup.path("server.key"),
    ))
    .unwrap_err();
    assert_eq!(err.path(), "certFile");

    let err = TlsAcceptor::from_config(&TlsConfig::new(
        setup.path("server.crt"),
        setup.path("ca.crt"),
    ))
    .unwrap_err();
    assert_eq!(err.path(), "keyFile");
    assert!(err.to_string().contains("no PRIVATE KEY block"), "{err}");

    let mut config = setup.config();
    config.cipher_suites = vec![
        "TLS_AES_128_GCM_SHA256".into(),
        "TLS_RSA_WITH_RC4_128_MD5".into(),
    ];
    let err = TlsAcceptor::from_config(&config).unwrap_err();
    assert_eq!(err.path(), "cipherSuites[1]");

    let mut config = setup.mtls_config(ClientAuthMode::Required);
    config.client_auth.as_mut().unwrap().ca_file = setup.path("server.key");
    let err = TlsAcceptor::from_config(&config).unwrap_err();
    assert_eq!(err.path(), "clientAuth.caFile");
    assert!(matches!(err, Error::Config { .. }));

    // Fields without a default are reported missing, by name.
    let err = TlsAcceptor::from_config(&TlsConfig::default()).unwrap_err();
    assert_eq!(err.path(), "certFile");
    assert_eq!(err.reason(), "is required (a PEM file)");
    let err = TlsAcceptor::from_config(&setup.config().client_auth(ClientAuthConfig::default()))
        .unwrap_err();
    assert_eq!(err.path(), "clientAuth.caFile");
    assert_eq!(
        err.at("listeners[1].tls"),
        format!("listeners[1].tls.clientAuth.caFile: {}", err.reason())
    );
}

#[tokio::test]
async fn silent_clients_are_dropped_after_the_handshake_timeout() {
    let setup = Setup::new();
    let mut config = setup.config();
    config.handshake_timeout = Duration::from_millis(200);
    let server = start(config).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "connection still open: {read:?}"
    );

    // Garbage instead of a ClientHello is refused without disturbing the server.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&rest).contains("HTTP/1.1 200"));
    whoami(server.addr, client_config(&setup.ca, &[&TLS13], None))
        .await
        .unwrap();
}

#[tokio::test]
async fn upstream_mutual_tls_against_a_server_requiring_client_certificates() {
    let setup = Setup::new();
    let server = start(setup.mtls_config(ClientAuthMode::Required)).await;
    let gateway = setup.ca.client(
        "agentgw",
        &["agentgw.internal"],
        &["spiffe://td/gateway"],
        20,
    );
    gateway.write(setup.dir.path(), "gateway");
    let tls = UpstreamTls::from_config(&UpstreamTlsConfig::mutual(
        setup.path("ca.crt"),
        setup.path("gateway.crt"),
        setup.path("gateway.key"),
    ))
    .unwrap();
    let url = format!("https://{SERVER_DNS}:{}/whoami", server.addr.port());

    // reqwest with the preconfigured rustls client.
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls.client_config())
        .resolve(SERVER_DNS, server.addr)
        .build()
        .unwrap();
    let body: Value =
        serde_json::from_str(&client.get(&url).send().await.unwrap().text().await.unwrap())
            .unwrap();
    assert_eq!(body["identity"]["spiffeId"], "spiffe://td/gateway");
    assert_eq!(body["identity"]["dnsNames"], json!(["agentgw.internal"]));

    // hyper over the connector.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut config = tls.client_config();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let stream = TlsConnector::from(Arc::new(config))
        .connect(server_name(), tcp)
        .await
        .unwrap();
    let body = Http1::open(stream).await.unwrap().whoami().await.unwrap();
    assert_eq!(body["identity"]["commonName"], "agentgw");
    let stream = tls
        .connector()
        .connect(
            server_name(),
            TcpStream::connect(server.addr).await.unwrap(),
        )
        .await;
    assert!(stream.is_ok());

    // The client certificate is renewed: new full handshakes present the new one (a resumed
    // session keeps the identity it was established with, so use a fresh session store).
    let renewed = setup
        .ca
        .client("agentgw-renewed", &[], &["spiffe://td/gateway"], 21);
    renewed.write(setup.dir.path(), "gateway");
    let resolver = tls.client_certificate().unwrap();
    assert_eq!(resolver.reload().unwrap(), ReloadOutcome::Reloaded);
    let mut config = tls.client_config();
    config.resumption = rustls::client::Resumption::in_memory_sessions(16);
    let fresh = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .resolve(SERVER_DNS, server.addr)
        .build()
        .unwrap();
    let body: Value =
        serde_json::from_str(&fresh.get(&url).send().await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(body["identity"]["commonName"], "agentgw-renewed");

    // SIMPLE mode (no client certificate) is refused by this server.
    let simple =
        UpstreamTls::from_config(&UpstreamTlsConfig::simple(setup.path("ca.crt"))).unwrap();
    let anonymous = reqwest::Client::builder()
        .tls_backend_preconfigured(simple.client_config())
        .resolve(SERVER_DNS, server.addr)
        .build()
        .unwrap();
    assert!(anonymous.get(&url).send().await.is_err());
}

#[tokio::test]
async fn upstream_refuses_a_server_outside_its_ca() {
    let setup = Setup::new();
    let server = start(setup.config()).await;
    let other = tempfile::tempdir().unwrap();
    let other_ca = Ca::new("other CA").write(other.path(), "ca.crt");
    let tls = UpstreamTls::from_config(&UpstreamTlsConfig::simple(other_ca)).unwrap();
    let result = tls
        .connector()
        .connect(
            server_name(),
            TcpStream::connect(server.addr).await.unwrap(),
        )
        .await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn serve_with_shutdown_drains_and_returns() {
    let setup = Setup::new();
    let acceptor = TlsAcceptor::from_config(&setup.config()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Router::new().route("/whoami", get(|| async { "{}" }));
    let server = tokio::spawn(agentgw_tls::serve_with_shutdown(
        listener,
        acceptor,
        app,
        async {
            let _ = stopped.await;
        },
    ));
    whoami(addr, client_config(&setup.ca, &[&TLS13], None))
        .await
        .unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener closed after shutdown"
    );
}
