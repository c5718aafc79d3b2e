//! Plain HTTP authorization services: the request's method, path and selected headers are sent;
//! a 2xx answer allows, any other status denies with that status.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use agentgw_core::identity::ClientAddr;

use super::decision::{Allow, CheckError, Deny, HeaderOp, Verdict, denial_headers, header_pair};
use super::input::{self, BodyPrefix};

/// The answer header naming request headers to remove (Envoy's convention).
const HEADERS_TO_REMOVE: HeaderName = HeaderName::from_static("x-envoy-auth-headers-to-remove");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_ENVOY_AUTH_PARTIAL_BODY: HeaderName = HeaderName::from_static("x-envoy-auth-partial-body");
/// The largest answer body read (a denial page); a larger one is a malformed answer.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// What the HTTP protocol sends and copies.
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    /// `http://host:port` plus the URL's path and the configured prefix, without a trailing `/`.
    pub(crate) base: String,
    /// Request headers sent to the service (`authorization` first).
    pub(crate) forward: Vec<HeaderName>,
    /// Answer headers copied onto the upstream request when allowed.
    pub(crate) upstream: Vec<HeaderName>,
    /// Answer headers passed to the client when denied; `None` passes all.
    pub(crate) client: Option<Vec<HeaderName>>,
    pub(crate) max_connections: usize,
}

/// A pooled HTTP/1.1 client with a bound on open connections.
pub(crate) struct HttpClient {
    client: Client<BoundedConnector, Full<Bytes>>,
    settings: HttpSettings,
    /// `settings.base` split once (`None` if it is not a valid URI: each check then says why).
    target: Option<Target>,
    permits: Semaphore,
    /// The connector's connection permits; closed on drop so that connects still waiting for a
    /// permit give up instead of opening connections for a client that is gone.
    connections: Arc<Semaphore>,
}

impl Drop for HttpClient {
    fn drop(&mut self) {
        self.connections.close();
    }
}

impl HttpClient {
    pub(crate) fn new(settings: HttpSettings, connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let connections = Arc::new(Semaphore::new(settings.max_connections));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(settings.max_connections)
            .build(BoundedConnector {
                inner: connector,
                permits: connections.clone(),
            });
        HttpClient {
            client,
            permits: Semaphore::new(settings.max_connections),
            connections,
            target: Target::of(&settings.base),
            settings,
        }
    }

    pub(crate) fn base(&self) -> &str {
        &self.settings.base
    }

    pub(crate) async fn check(
        &self,
        parts: &Parts,
        body: Option<&BodyPrefix>,
    ) -> Result<Verdict, CheckError> {
        let request = self.check_request(parts, body)?;
        // A permit per call bounds the connections: hyper's pool has no per-host limit.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CheckError::Unavailable("client closed".to_owned()))?;
        let response = self.client.request(request).await.map_err(classify)?;
        let (head, answer) = response.into_parts();
        let answer = Limited::new(answer, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
                Ok(_) => CheckError::Malformed(format!(
                    "answer body larger than {MAX_ANSWER_BYTES} bytes"
                )),
                Err(e) => CheckError::Unavailable(format!("reading the answer failed: {e}")),
            })?
            .to_bytes();
        self.interpret(Response::from_parts(head, answer))
    }

    fn check_request(
        &self,
        parts: &Parts,
        body: Option<&BodyPrefix>,
    ) -> Result<Request<Full<Bytes>>, CheckError> {
        let path = input::path_and_query(parts);
        let uri = match &self.target {
            Some(target) => target.uri(path),
            None => format!("{}{}", self.settings.base, path)
                .parse()
                .map_err(http::Error::from),
        }
        .map_err(|e| CheckError::Malformed(format!("cannot build the check URI: {e}")))?;
        let mut request =
            Request::new(Full::new(body.map(|b| b.bytes.clone()).unwrap_or_default()));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        // The forwarded headers (usually one value each) and the 4 below.
        let headers = request.headers_mut();
        headers.reserve(self.settings.forward.len() + 4);
        for name in &self.settings.forward {
            for value in parts.headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        if let Some(host) = forwarded_host(parts) {
            headers.insert(X_FORWARDED_HOST, host);
        }
        if let Some(client) = parts.extensions.get::<ClientAddr>() {
            headers.insert(
                X_FORWARDED_FOR,
                HeaderValue::from_bytes(client.ip_text().as_bytes())
                    .map_err(|e| CheckError::Malformed(e.to_string()))?,
            );
        }
        let content_length = match body.map_or(0, |b| b.bytes.len()) {
            0 => HeaderValue::from_static("0"),
            len => HeaderValue::from(len),
        };
        headers.insert(CONTENT_LENGTH, content_length);
        if let Some(prefix) = body {
            headers.insert(
                X_ENVOY_AUTH_PARTIAL_BODY,
                HeaderValue::from_static(if prefix.partial { "true" } else { "false" }),
            );
            if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, content_type.clone());
            }
        }
        Ok(request)
    }

    fn interpret(&self, answer: Response<Bytes>) -> Result<Verdict, CheckError> {
        let (head, body) = answer.into_parts();
        if head.status.is_success() {
            let mut allow = Allow::default();
            for name in &self.settings.upstream {
                for (i, value) in head.headers.get_all(name).iter().enumerate() {
                    let op = if i == 0 {
                        HeaderOp::Set
                    } else {
                        HeaderOp::Append
                    };
                    allow.upstream.push(op(name.clone(), value.clone()));
                }
            }
            for value in head.headers.get_all(HEADERS_TO_REMOVE) {
                let list = value.to_str().map_err(|_| {
                    CheckError::Malformed(format!("{HEADERS_TO_REMOVE} is not text"))
                })?;
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    allow.remove.push(header_pair(name, b"")?.0);
                }
            }
            return Ok(Verdict::Allow(Allow::shared(allow)));
        }
        // `HeaderMap::into_iter` names a header only with its first value.
        let mut passed = Vec::with_capacity(head.headers.len());
        let mut current: Option<HeaderName> = None;
        for (name, value) in head.headers {
            if let Some(name) = name {
                current = Some(name);
            }
            if let Some(name) = &current {
                passed.push((name.clone(), value));
            }
        }
        let (mut headers, content_type) = denial_headers(passed);
        if let Some(allowed) = &self.settings.client {
            headers.retain(|(name, _)| allowed.contains(name));
        }
        Ok(Verdict::Deny(Arc::new(Deny {
            status: head.status,
            headers,
            content_type,
            body,
        })))
    }
}

/// Where checks go: the service's scheme and authority, and the path prefix (the URL's path and
/// `pathPrefix`) the request's path and query are appended to.
#[derive(Debug)]
struct Target {
    scheme: Scheme,
    authority: Authority,
    path_prefix: String,
}

impl Target {
    fn of(base: &str) -> Option<Self> {
        let uri: Uri = base.parse().ok()?;
        let scheme = uri.scheme()?.clone();
        let authority = uri.authority()?.clone();
        let path_prefix = base
            .strip_prefix(scheme.as_str())?
            .strip_prefix("://")?
            .strip_prefix(authority.as_str())?
            .to_owned();
        Some(Target {
            scheme,
            authority,
            path_prefix,
        })
    }

    /// The check URI for a request's path and query: one allocation, the scheme and authority
    /// are not parsed again.
    fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let mut path = String::with_capacity(self.path_prefix.len() + path_and_query.len());
        path.push_str(&self.path_prefix);
        path.push_str(path_and_query);
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(path)?)
            .build()
    }
}

/// `x-forwarded-host`: the request's host ([`input::host`]), reusing the `Host` header's value
/// when that is where it comes from.
fn forwarded_host(parts: &Parts) -> Option<HeaderValue> {
    match parts.uri.authority() {
        Some(authority) if !authority.as_str().is_empty() => {
            HeaderValue::from_str(authority.as_str()).ok()
        }
        Some(_) => None,
        None => parts
            .headers
            .get(HOST)
            .filter(|host| !host.is_empty() && host.to_str().is_ok())
            .cloned(),
    }
}

fn classify(err: hyper_util::client::legacy::Error) -> CheckError {
    if err.is_connect() {
        return CheckError::Unavailable(format!("cannot connect: {err}"));
    }
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        if let Some(hyper_err) = cause.downcast_ref::<hyper::Error>()
            && (hyper_err.is_parse() || hyper_err.is_parse_status())
        {
            return CheckError::Malformed(format!("not an HTTP answer: {hyper_err}"));
        }
        source = cause.source();
    }
    CheckError::Unavailable(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http::header::AUTHORIZATION;

    fn client(client_headers: Option<Vec<HeaderName>>) -> HttpClient {
        HttpClient::new(
            HttpSettings {
                base: "http://127.0.0.1:9/authz".into(),
                forward: vec![AUTHORIZATION, HeaderName::from_static("x-tenant")],
                upstream: vec![HeaderName::from_static("x-user")],
                client: client_headers,
                max_connections: 4,
            },
            Duration::from_millis(50),
        )
    }

    #[test]
    fn check_request_sends_method_path_and_selected_headers() {
        let (parts, ()) = Request::builder()
            .method("PUT")
            .uri("/v1/files?purpose=x")
            .header("host", "api.example")
            .header("authorization", "Bearer t")
            .header("x-tenant", "a")
            .header("x-tenant", "b")
            .header("x-secret", "not sent")
            .header("content-type", "application/json")
            .extension(ClientAddr("192.0.2.1:5000".parse().unwrap()))
            .extension(agentgw_core::Payload::from_static(b"0123456789"))
            .body(())
            .unwrap()
            .into_parts();
        let prefix = BodyPrefix::of(&parts, 4);
        let req = client(None).check_request(&parts, prefix.as_ref()).unwrap();
        assert_eq!(req.method(), "PUT");
        assert_eq!(req.uri(), "http://127.0.0.1:9/authz/v1/files?purpose=x");
        let h = req.headers();
        assert_eq!(h["authorization"], "Bearer t");
        assert_eq!(h.get_all("x-tenant").iter().count(), 2);
        assert!(h.get("x-secret").is_none());
        assert_eq!(h["x-forwarded-host"], "api.example");
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["content-length"], "4");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-envoy-auth-partial-body"], "true");
    }

    #[test]
    fn success_copies_listed_headers_and_removals() {
        let answer = Response::builder()
            .status(204)
            .header("x-user", "alice")
            .header("x-user", "bob")
            .header("x-other", "ignored")
            .header(HEADERS_TO_REMOVE, "authorization, x-api-key")
            .body(Bytes::new())
            .unwrap();
        let Verdict::Allow(allow) = client(None).interpret(answer).unwrap() else {
            panic!("2xx must allow");
        };
        let user = HeaderName::from_static("x-user");
        assert_eq!(
            allow.upstream,
            vec![
                HeaderOp::Set(user.clone(), HeaderValue::from_static("alice")),
                HeaderOp::Append(user, HeaderValue::from_static("bob")),
            ]
        );
        assert_eq!(
            allow.remove,
            vec![AUTHORIZATION, HeaderName::from_static("x-api-key")]
        );
    }

    #[test]
    fn other_statuses_deny_with_the_answer() {
        let answer = || {
            Response::builder()
                .status(302)
                .header("location", "https://login.example")
                .header("content-type", "text/html")
                .header("content-length", "2")
                .header("set-cookie", "a=1")
                .header("set-cookie", "b=2")
                .body(Bytes::from_static(b"go"))
                .unwrap()
        };
        let Verdict::Deny(deny) = client(None).interpret(answer()).unwrap() else {
            panic!("non-2xx must deny");
        };
        assert_eq!(deny.status, StatusCode::FOUND);
        assert_eq!(
            deny.content_type,
            Some(HeaderValue::from_static("text/html"))
        );
        assert_eq!(&deny.body[..], b"go");
        let names: Vec<_> = deny
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("location", "https://login.example"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2")
            ]
        );

        let only_location = client(Some(vec![http::header::LOCATION]));
        let Verdict::Deny(deny) = only_location.interpret(answer()).unwrap() else {
            panic!("non-2xx must deny");
        };
        assert_eq!(deny.headers.len(), 1);
    }

    #[test]
    fn bad_removal_list_is_malformed() {
        let answer = Response::builder()
            .header(HEADERS_TO_REMOVE, "bad header")
            .body(Bytes::new())
            .unwrap();
        assert!(matches!(
            client(None).interpret(answer),
            Err(CheckError::Malformed(_))
        ));
    }
}

/// An [`HttpConnector`] that opens at most as many connections as it has permits: each
/// connection holds its permit until it is closed. The per-call permit in [`HttpClient::check`]
/// bounds calls in flight, but a finished call's connection goes back to hyper's pool a moment
/// after the call returns, so without this a new call could open one connection too many.
#[derive(Clone)]
pub(crate) struct BoundedConnector {
    inner: HttpConnector,
    permits: Arc<Semaphore>,
}

impl tower_service::Service<Uri> for BoundedConnector {
    type Response = BoundedStream;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<BoundedStream, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let permits = self.permits.clone();
        Box::pin(async move {
            let permit = permits.acquire_owned().await?;
            let stream = inner.call(uri).await?;
            Ok(BoundedStream {
                stream,
                _permit: permit,
            })
        })
    }
}

pin_project_lite::pin_project! {
    /// A connection that gives its permit back when it is dropped.
    pub(crate) struct BoundedStream {
        #[pin]
        stream: hyper_util::rt::TokioIo<tokio::net::TcpStream>,
        _permit: OwnedSemaphorePermit,
    }
}

impl hyper_util::client::legacy::connect::Connection for BoundedStream {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.stream.connected()
    }
}

impl hyper::rt::Read for BoundedStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().stream.poll_read(cx, buf)
    }
}

impl hyper::rt::Write for BoundedStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.project().stream.poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().stream.poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().stream.poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.project().stream.poll_write_vectored(cx, bufs)
    }
}
