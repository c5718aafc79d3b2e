//! A pool of HTTP/1.1 connections to one `http://` backend, for one worker.
//!
//! hyper-util's legacy client is general (any connector, HTTP/2, keyed by scheme and authority,
//! a reaper task, a task spawned per exchange to wait for the connection to become idle). For
//! plain HTTP/1.1 to a single backend from a single-threaded worker it does more than needed,
//! and that shows in a proxy's CPU per request. This pool keeps hyper's own connection
//! (`hyper::client::conn::http1`) and only adds:
//!
//! - a LIFO list of idle connections (the most recently used first: its socket is warm), at
//!   most `max_idle`;
//! - the connection goes back to the list when the response body ends ([`PooledBody`]), not
//!   from a spawned task;
//! - a request that finds its pooled connection closed by the backend before anything was
//!   written is sent again on a new connection (hyper hands the request back);
//! - idle connections are kept until the backend closes them (every server has a keep-alive
//!   timeout) and dropped from the list when found closed.
//!
//! Dropping an exchange (the client went away) drops hyper's request future, which closes that
//! connection: an HTTP/1.1 request cannot be cancelled otherwise.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::ReqBody;

/// Idle connections kept per worker and backend, by default.
pub const DEFAULT_MAX_IDLE: usize = 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The backend could not be connected to in time.
    #[error("connect to {authority} timed out after {timeout:?}")]
    ConnectTimeout {
        /// `host:port` of the backend.
        authority: String,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The backend could not be connected to (refused, unreachable, name not resolved).
    #[error("connect to {authority}: {source}")]
    Connect {
        /// `host:port` of the backend.
        authority: String,
        /// What the connect said.
        source: std::io::Error,
    },
    /// The HTTP/1.1 handshake or the exchange failed.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl PoolError {
    /// Whether the backend could not be reached at all (nothing was sent).
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            PoolError::ConnectTimeout { .. } | PoolError::Connect { .. }
        )
    }
}

/// HTTP/1.1 connections to one backend. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Http1Pool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// `host:port` to connect to.
    authority: String,
    /// The `host` header of every request (the backend's authority).
    host: HeaderValue,
    connect_timeout: Duration,
    max_idle: usize,
    /// Idle (or finishing) connections, the most recently returned last.
    idle: Mutex<Vec<SendRequest<ReqBody>>>,
}

impl Http1Pool {
    /// A pool for the backend at `authority` (`host` or `host:port`; port 80 when absent).
    pub fn new(
        authority: &http::uri::Authority,
        connect_timeout: Duration,
        max_idle: usize,
    ) -> Self {
        let port = authority.port_u16().unwrap_or(80);
        Http1Pool {
            shared: Arc::new(Shared {
                authority: format!("{}:{port}", authority.host()),
                host: HeaderValue::from_str(authority.as_str())
                    .expect("an authority is a valid header value"),
                connect_timeout,
                max_idle,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sends `req` (origin-form URI; `host` is set to the backend's) on an idle connection or
    /// a new one, and returns the response with a body that gives the connection back when it
    /// ends.
    pub async fn send(&self, mut req: Request<ReqBody>) -> Result<Response<PooledBody>, PoolError> {
        req.headers_mut().insert(HOST, self.shared.host.clone());
        // A pooled connection the backend has closed meanwhile hands the request back
        // unwritten: it goes again on a new connection (at most once per pooled one tried).
        while let Some(mut sender) = self.checkout() {
            match sender.try_send_request(req).await {
                Ok(response) => return Ok(self.pooled(response, sender)),
                Err(mut err) => match err.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(err.into_error().into()),
                },
            }
        }
        let mut sender = self.connect().await?;
        let response = sender.send_request(req).await?;
        Ok(self.pooled(response, sender))
    }

    /// Connections in the idle list (some may be finishing their last exchange).
    #[cfg(test)]
    fn idle_len(&self) -> usize {
        self.shared.idle.lock().unwrap().len()
    }

    /// The most recently returned idle connection that is ready for a request. Closed ones met
    /// on the way are dropped; ones still finishing their last exchange stay. Usually the last
    /// one is ready: no scan of the list.
    fn checkout(&self) -> Option<SendRequest<ReqBody>> {
        let mut idle = self.shared.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut busy = 0;
        while idle.len() > busy {
            let i = idle.len() - 1 - busy;
            if idle[i].is_closed() {
                idle.remove(i);
            } else if idle[i].is_ready() {
                return Some(idle.remove(i));
            } else {
                busy += 1;
            }
        }
        None
    }

    fn pooled(
        &self,
        response: Response<Incoming>,
        sender: SendRequest<ReqBody>,
    ) -> Response<PooledBody> {
        let (parts, body) = response.into_parts();
        let mut body = PooledBody {
            body,
            idle: Some((sender, Arc::clone(&self.shared))),
        };
        if body.body.is_end_stream() {
            body.release();
        }
        Response::from_parts(parts, body)
    }

    async fn connect(&self) -> Result<SendRequest<ReqBody>, PoolError> {
        let shared = &self.shared;
        let stream = match tokio::time::timeout(
            shared.connect_timeout,
            TcpStream::connect(shared.authority.as_str()),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(PoolError::Connect {
                    authority: shared.authority.clone(),
                    source,
                });
            }
            Err(_elapsed) => {
                return Err(PoolError::ConnectTimeout {
                    authority: shared.authority.clone(),
                    timeout: shared.connect_timeout,
                });
            }
        };
        stream
            .set_nodelay(true)
            .map_err(|source| PoolError::Connect {
                authority: shared.authority.clone(),
                source,
            })?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        // Runs on the worker that opened it: the exchange never wakes another thread.
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "upstream connection closed");
            }
        });
        Ok(sender)
    }
}

impl Shared {
    fn put(&self, sender: SendRequest<ReqBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= self.max_idle {
            // Full: make room by dropping the connections the backend has closed meanwhile.
            idle.retain(|sender| !sender.is_closed());
        }
        if idle.len() < self.max_idle {
            idle.push(sender);
        }
    }
}

/// A response body from the pool: when it ends, its connection goes back to the pool.
/// Dropped before its end, the connection is dropped (and closed by hyper).
#[derive(Debug)]
pub struct PooledBody {
    body: Incoming,
    idle: Option<(SendRequest<ReqBody>, Arc<Shared>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((sender, shared)) = self.idle.take() {
            shared.put(sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            None => this.release(),
            Some(Ok(_)) if this.body.is_end_stream() => this.release(),
            // A broken body breaks the connection: never pooled again.
            Some(Err(_)) => drop(this.idle.take()),
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Empty, Full, StreamBody};
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A hyper HTTP/1.1 server on 127.0.0.1 counting the connections it accepts. `/close`
    /// answers with `connection: close`; `/stream` sends 64 chunks of 1 KiB; anything else
    /// echoes the `host` header it got.
    async fn server() -> (http::uri::Authority, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let service = service_fn(|req: Request<Incoming>| async move {
                    let response = match req.uri().path() {
                        "/close" => Response::builder()
                            .header("connection", "close")
                            .body(Full::new(Bytes::from_static(b"bye")).boxed())
                            .unwrap(),
                        "/stream" => {
                            let chunks = (0..64).map(|_| {
                                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 1024])))
                            });
                            Response::new(
                                StreamBody::new(futures_util::stream::iter(chunks)).boxed(),
                            )
                        }
                        _ => {
                            let host = req.headers()[HOST].as_bytes().to_vec();
                            Response::new(Full::new(Bytes::from(host)).boxed())
                        }
                    };
                    Ok::<_, Infallible>(response)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (authority, accepted)
    }

    fn get(path: &str) -> Request<ReqBody> {
        Request::get(path)
            .body(
                Empty::new()
                    .map_err(|never| -> agentgw_core::BoxError { match never {} })
                    .boxed(),
            )
            .unwrap()
    }

    fn pool(authority: &http::uri::Authority, max_idle: usize) -> Http1Pool {
        Http1Pool::new(authority, Duration::from_secs(1), max_idle)
    }

    async fn text(response: Response<PooledBody>) -> String {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn sequential_requests_share_one_connection() {
        let (authority, accepted) = server().await;
        let pool = pool(&authority, 8);
        for _ in 0..5 {
            let response = pool.send(get("/")).await.unwrap();
            // `host` is the backend's authority.
            assert_eq!(text(response).await, authority.as_str());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_len(), 1);
    }

    #[tokio::test]
    async fn concurrent_requests_open_connections_and_keep_them() {
        let (authority, accepted) = server().await;
        let pool = pool(&authority, 8);
        let (a, b) = tokio::join!(pool.send(get("/")), pool.send(get("/")));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        text(a).await;
        text(b).await;
        assert_eq!(pool.idle_len(), 2);
        // Both are reused.
        let (a, b) = tokio::join!(pool.send(get("/")), pool.send(get("/")));
        text(a.unwrap()).await;
        text(b.unwrap()).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn idle_list_is_bounded() {
        let (authority, _) = server().await;
        let pool = pool(&authority, 1);
        let (a, b) = tokio::join!(pool.send(get("/")), pool.send(get("/")));
        text(a.unwrap()).await;
        text(b.unwrap()).await;
        assert_eq!(pool.idle_len(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_backend_closes_is_not_reused() {
        let (authority, accepted) = server().await;
        let pool = pool(&authority, 8);
        assert_eq!(text(pool.send(get("/close")).await.unwrap()).await, "bye");
        assert_eq!(
            text(pool.send(get("/")).await.unwrap()).await,
            authority.as_str()
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_takes_its_connection_along() {
        let (authority, accepted) = server().await;
        let pool = pool(&authority, 8);
        let mut response = pool.send(get("/stream")).await.unwrap();
        let first = response.body_mut().frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap().len(), 1024);
        drop(response);
        assert_eq!(pool.idle_len(), 0);
        // A whole body gives its connection back.
        let body = pool.send(get("/stream")).await.unwrap().into_body();
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 64 * 1024);
        assert_eq!(pool.idle_len(), 1);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced() {
        // A backend whose keep-alive timeout is 20 ms: it answers one request per connection
        // with `keep-alive`, then closes the socket without a word.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: http::uri::Authority =
            listener.local_addr().unwrap().to_string().parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0; 1024];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                });
            }
        });
        let pool = pool(&authority, 8);
        assert_eq!(text(pool.send(get("/")).await.unwrap()).await, "ok");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(text(pool.send(get("/")).await.unwrap()).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_connect_address_has_a_port() {
        let address = |authority: &str| {
            Http1Pool::new(&authority.parse().unwrap(), Duration::from_secs(1), 1)
                .shared
                .authority
                .clone()
        };
        assert_eq!(address("backend.internal"), "backend.internal:80");
        assert_eq!(address("10.0.0.1:8080"), "10.0.0.1:8080");
        // An IPv6 literal keeps its brackets, as `TcpStream::connect` wants it.
        assert_eq!(address("[::1]:4000"), "[::1]:4000");
        assert_eq!(address("[::1]"), "[::1]:80");
    }

    #[tokio::test]
    async fn connect_failures_are_connect_errors() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let authority = format!("127.0.0.1:{port}").parse().unwrap();
        let err = pool(&authority, 8).send(get("/")).await.unwrap_err();
        assert!(err.is_connect(), "{err}");
        assert!(matches!(err, PoolError::Connect { .. }), "{err}");
    }
}
