//! Handshakes per second (full and resumed, TLS 1.3 and 1.2, with and without client
//! certificates) and HTTP throughput over TLS against plaintext, all on 127.0.0.1.
//!
//! `server_handshake_cpu/*` is the server's share of a handshake driven in memory (no sockets,
//! no scheduling): what one core spends per handshake. `handshake/*` is a whole sequential
//! connect + handshake on loopback, client and server on the same two cores, with
//! `handshake/tcp_connect` (connect, no TLS) as the baseline.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentgw_tls::{ClientAuthConfig, TlsAcceptor, TlsConfig};
use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::{Ca, Leaf, SERVER_DNS, client_config, server_name};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::client::Resumption;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConfig, ServerConnection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_rustls::TlsConnector;

struct Pki {
    _dir: tempfile::TempDir,
    ca: Ca,
    client: Leaf,
    config: TlsConfig,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bench CA");
    let (cert, key) = ca.server(&[SERVER_DNS]).write(dir.path(), "server");
    let ca_file = ca.write(dir.path(), "ca.crt");
    let client = ca.client("bench-client", &[], &["spiffe://bench/client"], 1);
    let config = TlsConfig::new(cert, key)
        .reload_interval(Duration::ZERO)
        .client_auth(ClientAuthConfig::optional(ca_file));
    Pki {
        _dir: dir,
        ca,
        client,
        config,
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A server that completes each handshake, writes one byte and closes.
async fn handshake_server(acceptor: Option<TlsAcceptor>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(acceptor) => {
                        if let Ok((stream, _identity)) = acceptor.accept(tcp).await {
                            ack(stream).await;
                        }
                    }
                    None => ack(tcp).await,
                }
            });
        }
    });
    addr
}

async fn ack<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let _ = stream.write_all(b"!").await;
    let _ = stream.flush().await;
    let mut buf = [0u8; 1];
    let _ = stream.read(&mut buf).await;
}

/// Connect, handshake, and read the server's byte (so the server has finished too). Returns
/// the kind of handshake.
async fn one_handshake(
    addr: SocketAddr,
    connector: Option<&TlsConnector>,
) -> Option<HandshakeKind> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut buf = [0u8; 1];
    match connector {
        Some(connector) => {
            let mut stream = connector.connect(server_name(), tcp).await.unwrap();
            stream.read_exact(&mut buf).await.unwrap();
            stream.get_ref().1.handshake_kind()
        }
        None => {
            let mut tcp = tcp;
            tcp.read_exact(&mut buf).await.unwrap();
            None
        }
    }
}

fn handshakes(c: &mut Criterion) {
    let rt = runtime();
    let pki = pki();
    let acceptor = rt.block_on(async { TlsAcceptor::from_config(&pki.config).unwrap() });
    let tls_addr = rt.block_on(handshake_server(Some(acceptor)));
    let tcp_addr = rt.block_on(handshake_server(None));

    let mut group = c.benchmark_group("handshake");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    group.bench_function("tcp_connect", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    one_handshake(tcp_addr, None).await;
                }
                start.elapsed()
            })
        });
    });
    let cases: [(&str, &'static rustls::SupportedProtocolVersion, bool, bool); 6] = [
        ("tls13_full", &TLS13, false, false),
        ("tls13_resumed", &TLS13, true, false),
        ("tls13_full_mtls", &TLS13, false, true),
        ("tls13_resumed_mtls", &TLS13, true, true),
        ("tls12_full", &TLS12, false, false),
        ("tls12_resumed", &TLS12, true, false),
    ];
    for (name, version, resumed, mtls) in cases {
        let mut config = client_config(&pki.ca, &[version], mtls.then_some(&pki.client));
        config.resumption = if resumed {
            Resumption::in_memory_sessions(64)
        } else {
            Resumption::disabled()
        };
        let connector = TlsConnector::from(Arc::new(config));
        rt.block_on(one_handshake(tls_addr, Some(&connector))); // seeds the session store
        let kind = rt.block_on(one_handshake(tls_addr, Some(&connector)));
        let want = if resumed {
            HandshakeKind::Resumed
        } else {
            HandshakeKind::Full
        };
        assert_eq!(kind, Some(want), "{name}");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        one_handshake(tls_addr, Some(&connector)).await;
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
}

/// An HTTP server returning `size` bytes at `/bytes/{size}`; over TLS when `acceptor` is set.
async fn http_server(acceptor: Option<TlsAcceptor>) -> SocketAddr {
    let app = Router::new().route(
        "/bytes/{size}",
        get(
            |axum::extract::Path(size): axum::extract::Path<usize>| async move {
                Bytes::from(vec![b'x'; size])
            },
        ),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match acceptor {
        Some(acceptor) => {
            tokio::spawn(agentgw_tls::serve(listener, acceptor, app));
        }
        None => {
            tokio::spawn(async move {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let _ = tcp.set_nodelay(true);
                    let app = app.clone();
                    tokio::spawn(async move {
                        let service = hyper_util::service::TowerToHyperService::new(app);
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tcp), service)
                            .await;
                    });
                }
            });
        }
    }
    addr
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn http_client(addr: SocketAddr, connector: Option<&TlsConnector>) -> Sender {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    match connector {
        Some(connector) => {
            let stream = connector.connect(server_name(), tcp).await.unwrap();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            sender
        }
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            sender
        }
    }
}

async fn fetch(sender: &mut Sender, size: usize) {
    let req = http::Request::get(format!("/bytes/{size}"))
        .header(http::header::HOST, SERVER_DNS)
        .body(Empty::new())
        .unwrap();
    sender.ready().await.unwrap();
    let res = sender.send_request(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), size);
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let pki = pki();
    let acceptor = rt.block_on(async { TlsAcceptor::from_config(&pki.config).unwrap() });
    let tls_addr = rt.block_on(http_server(Some(acceptor)));
    let plain_addr = rt.block_on(http_server(None));
    let connector = TlsConnector::from(Arc::new(client_config(&pki.ca, &[&TLS13], None)));

    let mut group = c.benchmark_group("http_keepalive");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(4));
    for size in [1024usize, 64 * 1024, 1024 * 1024] {
        group.throughput(Throughput::Bytes(size as u64));
        for (name, addr, connector) in [
            ("plaintext", plain_addr, None),
            ("tls13", tls_addr, Some(&connector)),
        ] {
            let mut sender = rt.block_on(http_client(addr, connector));
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            fetch(&mut sender, size).await;
                        }
                        start.elapsed()
                    })
                });
            });
        }
    }
    group.finish();
}

/// One handshake between in-memory client and server connections; returns the time spent in
/// the server's calls (handshake processing and, for mTLS, identity extraction) and the kind of
/// handshake.
fn in_memory_handshake(
    server_config: &Arc<ServerConfig>,
    client_config: &Arc<ClientConfig>,
) -> (Duration, Option<HandshakeKind>) {
    let mut client = ClientConnection::new(client_config.clone(), server_name()).unwrap();
    let start = Instant::now();
    let mut server = ServerConnection::new(server_config.clone()).unwrap();
    let mut server_time = start.elapsed();
    let mut buf = Vec::with_capacity(8192);
    loop {
        buf.clear();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let start = Instant::now();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd).unwrap();
            server.process_new_packets().unwrap();
        }
        let mut out = Vec::with_capacity(8192);
        while server.wants_write() {
            server.write_tls(&mut out).unwrap();
        }
        server_time += start.elapsed();
        let mut rd = &out[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
        }
        if !client.is_handshaking()
            && !server.is_handshaking()
            && !client.wants_write()
            && !server.wants_write()
        {
            break;
        }
    }
    let start = Instant::now();
    std::hint::black_box(agentgw_tls::connection_identity(&server));
    (server_time + start.elapsed(), server.handshake_kind())
}

/// Server-side CPU time per handshake, without sockets or scheduling: what one core spends.
fn handshake_cpu(c: &mut Criterion) {
    let pki = pki();
    let server_config = TlsAcceptor::from_config(&pki.config)
        .unwrap()
        .server_config();
    let mut group = c.benchmark_group("server_handshake_cpu");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    let cases: [(&str, &'static rustls::SupportedProtocolVersion, bool, bool); 6] = [
        ("tls13_full", &TLS13, false, false),
        ("tls13_resumed", &TLS13, true, false),
        ("tls13_full_mtls", &TLS13, false, true),
        ("tls13_resumed_mtls", &TLS13, true, true),
        ("tls12_full", &TLS12, false, false),
        ("tls12_resumed", &TLS12, true, false),
    ];
    for (name, version, resumed, mtls) in cases {
        let mut config = client_config(&pki.ca, &[version], mtls.then_some(&pki.client));
        config.resumption = if resumed {
            Resumption::in_memory_sessions(64)
        } else {
            Resumption::disabled()
        };
        let config = Arc::new(config);
        in_memory_handshake(&server_config, &config); // seeds the session store
        let kind = in_memory_handshake(&server_config, &config).1;
        let want = if resumed {
            HandshakeKind::Resumed
        } else {
            HandshakeKind::Full
        };
        assert_eq!(kind, Some(want), "{name}");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| in_memory_handshake(&server_config, &config).0)
                    .sum()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, handshake_cpu, handshakes, throughput);
criterion_main!(benches);
