//! What both mocks share: the socket and its lifecycle ([`MockServer`]), the record of every
//! request ([`ReceivedRequest`]), the [`DELAY_HEADER`] and [`SERVER_HEADER`] handling, and the
//! refusals shaped for each mock's protocol.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{DELAY_HEADER, MAX_BODY_BYTES, MAX_DELAY, SERVER_HEADER};

/// Bytes of each request body kept in a [`ReceivedRequest`].
pub(crate) const RECORDED_BODY_BYTES: usize = 64 * 1024;
/// Requests kept by a [`MockServer`]; older ones are forgotten (the count stays exact).
const RECORDED_REQUESTS: usize = 1024;
/// HTTP/2 streams a mock allows at once on one connection.
const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 65_536;
/// How long [`MockServer::shutdown`] waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
pub(crate) const JSON: &str = "application/json";

/// Which mock a server is: names it in [`SERVER_HEADER`] and shapes its refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    OpenAi,
    Mcp,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Mcp => "mcp",
        }
    }
}

/// Why a mock refused a request; each variant knows its OpenAI and JSON-RPC shape.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MockError {
    #[error("invalid JSON body: {0}")]
    InvalidJson(#[source] serde_json::Error),
    #[error("'messages' must contain at least one message")]
    NoMessages,
    #[error("invalid {name} header {value:?}: expected whole milliseconds up to 600000")]
    InvalidHeader { name: &'static str, value: String },
    #[error("invalid {name} header {value:?}: expected a whole number up to {max}")]
    InvalidCount {
        name: &'static str,
        value: String,
        max: usize,
    },
    #[error("request body larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("request body could not be read: {0}")]
    UnreadableBody(#[source] axum::Error),
    #[error("unknown request URL: {method} {path}")]
    UnknownUrl { method: Method, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: Method, path: String },
}

impl MockError {
    fn status(&self) -> StatusCode {
        match self {
            Self::UnknownUrl { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn openai_code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_request_body",
            Self::NoMessages => "invalid_messages",
            Self::InvalidHeader { .. } | Self::InvalidCount { .. } => "invalid_header",
            Self::BodyTooLarge => "request_too_large",
            Self::UnreadableBody(_) => "invalid_request_body",
            Self::UnknownUrl { .. } => "unknown_url",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }

    /// The refusal as `flavor` answers it: an OpenAI-style error object, or a JSON-RPC error
    /// (`-32700` for a body that is not JSON, else `-32600`) with a `null` id, since the mock
    /// refused the request before reading its message.
    pub(crate) fn into_response(self, flavor: Flavor) -> Response {
        let body = match flavor {
            Flavor::OpenAi => {
                let param = match &self {
                    Self::NoMessages => json!("messages"),
                    _ => Value::Null,
                };
                json!({
                    "error": {
                        "message": self.to_string(),
                        "type": "invalid_request_error",
                        "param": param,
                        "code": self.openai_code(),
                    }
                })
            }
            Flavor::Mcp => {
                let code = match self {
                    Self::InvalidJson(_) => -32700,
                    _ => -32600,
                };
                json!({
                    "jsonrpc": "2.0",
                    "id": null,
                    "error": { "code": code, "message": self.to_string() },
                })
            }
        };
        json_response(self.status(), &body)
    }
}

/// One request a mock received, as it arrived (after any proxy in front of the mock).
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// The request method.
    pub method: Method,
    /// Path and query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// All request headers.
    pub headers: HeaderMap,
    /// The first 64 KiB of the body.
    pub body: Bytes,
    /// Length of the whole body in bytes.
    pub body_len: usize,
}

#[derive(Debug, Default)]
struct Recorder {
    total: AtomicU64,
    recent: Mutex<VecDeque<ReceivedRequest>>,
}

impl Recorder {
    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) {
        let kept = if body.len() <= RECORDED_BODY_BYTES {
            body.clone()
        } else {
            // Copy so that a 64 MiB body is not kept alive by its prefix.
            Bytes::copy_from_slice(&body[..RECORDED_BODY_BYTES])
        };
        let request = ReceivedRequest {
            method: method.clone(),
            path: path_and_query(uri),
            headers: headers.clone(),
            body: kept,
            body_len: body.len(),
        };
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() == RECORDED_REQUESTS {
            recent.pop_front();
        }
        recent.push_back(request);
    }
}

/// A running mock upstream bound to a local socket.
///
/// The server stops when [`shutdown`](Self::shutdown) is awaited or when the value is dropped
/// (requests in flight are allowed to finish).
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// What the intercepting middleware needs: where to record, and how to refuse.
#[derive(Debug)]
struct Intercept {
    recorder: Arc<Recorder>,
    flavor: Flavor,
    server: HeaderValue,
}

impl MockServer {
    /// Serves `router` on `addr` behind the shared middleware: every request is read whole
    /// (up to [`MAX_BODY_BYTES`]) and recorded, [`DELAY_HEADER`] holds it back, and every
    /// response carries [`SERVER_HEADER`]. `on_stop` runs once when the server is told to stop,
    /// before in-flight requests are awaited (a streaming mock ends its open streams there).
    pub(crate) async fn start(
        addr: SocketAddr,
        router: Router,
        flavor: Flavor,
        on_stop: impl FnOnce() + Send + 'static,
    ) -> io::Result<Self> {
        let recorder = Arc::new(Recorder::default());
        let intercept = Arc::new(Intercept {
            recorder: Arc::clone(&recorder),
            flavor,
            server: HeaderValue::from_static(flavor.name()),
        });
        let router = router.layer(middleware::from_fn_with_state(intercept, intercept_request));
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, signal, on_stop));
        Ok(Self {
            addr,
            recorder,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The address the server is bound to (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of the server, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received so far, oldest first (the last 1024 are kept).
    pub fn received_requests(&self) -> Vec<ReceivedRequest> {
        let recent = self
            .recorder
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recent.iter().cloned().collect()
    }

    /// How many requests the server has received, whatever the path or outcome.
    pub fn request_count(&self) -> u64 {
        self.recorder.total.load(Ordering::Relaxed)
    }

    /// Stops accepting connections and waits (up to 5 seconds) for requests in flight.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) on `listener` until `signal` fires
/// or its sender is dropped, then runs `on_stop` and waits for the connections in flight.
///
/// hyper-util's server rather than `axum::serve`, which has no HTTP/2 settings: the mock allows
/// [`HTTP2_MAX_CONCURRENT_STREAMS`] streams per connection (hyper's default is 200), so a gateway
/// that multiplexes thousands of long streams over one HTTP/2 connection is not held back by it.
async fn serve(
    listener: TcpListener,
    router: Router,
    signal: oneshot::Receiver<()>,
    on_stop: impl FnOnce() + Send + 'static,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS);
    let graceful = GracefulShutdown::new();
    tokio::pin!(signal);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    // EMFILE and the like: wait rather than spin.
                    tracing::debug!(%error, "mock server accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            // A dropped sender means the MockServer is gone: stop as well.
            _ = &mut signal => break,
        };
        // Small streamed events must leave at once, not wait for Nagle.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "mock server could not set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "mock server connection ended with an error");
            }
        });
    }
    drop(listener);
    on_stop();
    graceful.shutdown().await;
}

/// Reads the body whole, records the request, applies [`DELAY_HEADER`], then hands the request
/// (with its body as read) to the mock and labels the answer with [`SERVER_HEADER`].
async fn intercept_request(
    State(intercept): State<Arc<Intercept>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
    let body = read.as_ref().cloned().unwrap_or_default();
    intercept
        .recorder
        .record(&parts.method, &parts.uri, &parts.headers, &body);
    let outcome = match read {
        Err(error) => Err(body_error(error)),
        Ok(_) => duration_header(&parts.headers, DELAY_HEADER),
    };
    let mut response = match outcome {
        Err(refusal) => refusal.into_response(intercept.flavor),
        Ok(delay) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
    };
    response.headers_mut().insert(
        HeaderName::from_static(SERVER_HEADER),
        intercept.server.clone(),
    );
    response
}

fn body_error(error: axum::Error) -> MockError {
    let too_large = std::error::Error::source(&error)
        .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
    if too_large {
        MockError::BodyTooLarge
    } else {
        MockError::UnreadableBody(error)
    }
}

/// A JSON response of `body`.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

/// A header holding whole milliseconds; zero when absent.
pub(crate) fn duration_header(
    headers: &HeaderMap,
    name: &'static str,
) -> Result<Duration, MockError> {
    let Some(value) = headers.get(name) else {
        return Ok(Duration::ZERO);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .filter(|delay| *delay <= MAX_DELAY)
        .ok_or_else(|| MockError::InvalidHeader {
            name,
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })
}

/// A header holding a whole number up to `max`; `None` when absent.
pub(crate) fn count_header(
    headers: &HeaderMap,
    name: &'static str,
    max: usize,
) -> Result<Option<usize>, MockError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .filter(|count| *count <= max)
        .map(Some)
        .ok_or_else(|| MockError::InvalidCount {
            name,
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            max,
        })
}

/// A header set to `1` or `true` (any case).
pub(crate) fn flag_header(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let value = value.trim();
            value == "1" || value.eq_ignore_ascii_case("true")
        })
}

pub(crate) fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |path| path.as_str().to_owned())
}
