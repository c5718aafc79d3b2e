//! MCP tool-call metrics for any MCP route, with or without tool security.
//!
//! [`ToolMetricsLayer`] counts every `tools/call` in `agentgateway_tool_calls_total{tool,
//! allowed}` ([`metrics::TOOL_CALLS_TOTAL`]): `allowed` is
//! `false` when a layer denied the call (the response carries [`Denied`]), `true` when it went
//! upstream. The `tool` label is bounded: it is the tool's name when the upstream listed that
//! tool in a `tools/list` answer this layer saw (at most [`ToolMetricsLayer::max_tools`] names,
//! 1,024 by default), and [`OTHER_TOOL`](crate::metrics::OTHER_TOOL) otherwise, so a client
//! cannot grow the label set by calling made-up names.
//!
//! Names are learned from `tools/list` answers in `application/json` and `text/event-stream`
//! alike: the answer streams through unchanged while a copy (at most the layer's body limit) is
//! read at its end. Put the layer outside the layers that deny, so that it sees their denials.
//! The request body is read once ([`buffer_request`]); a layer outside it that buffered already
//! leaves nothing to read.
//!
//! Tool security ([`agentgw-toolsec`](https://docs.rs/agentgw-toolsec)) counts the same metric
//! for the calls it inspects; use this layer on the routes without it.
//!
//! # Example
//!
//! ```
//! use agentgw_core::tool_metrics::ToolMetricsLayer;
//! use axum::{Router, routing::post};
//!
//! let app: Router = Router::new()
//!     .route("/mcp", post(|| async { "ok" }))
//!     .layer(ToolMetricsLayer::new());
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{BodyLimit, RequestBody, ResponseBody, buffer_request};
use crate::mcp::{self, ResponseKind};
use crate::payload::Payload;
use crate::rejection::{Denied, ResponseShape};
use crate::{BoxError, metrics};

/// The default number of tool names kept as label values.
pub const DEFAULT_MAX_TOOLS: usize = 1024;

/// Tool names an upstream listed: the bounded set of `tool` label values.
#[derive(Debug)]
pub struct ToolNames {
    names: RwLock<HashSet<Arc<str>>>,
    max: usize,
}

impl ToolNames {
    /// An empty set that keeps at most `max` names.
    pub fn new(max: usize) -> Self {
        ToolNames {
            names: RwLock::new(HashSet::new()),
            max,
        }
    }

    /// Adds `name`, unless the set is full.
    pub fn insert(&self, name: &str) {
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        if names.len() < self.max && !names.contains(name) {
            names.insert(Arc::from(name));
        }
    }

    /// The label value for `name`: the name if it was listed, [`metrics::OTHER_TOOL`] if not.
    pub fn label(&self, name: &str) -> Arc<str> {
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        names
            .get(name)
            .cloned()
            .unwrap_or_else(|| Arc::from(metrics::OTHER_TOOL))
    }

    /// How many names are kept.
    pub fn len(&self) -> usize {
        self.names.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no name was learned yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counts MCP tool calls; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct ToolMetricsLayer {
    names: Arc<ToolNames>,
    limit: BodyLimit,
}

impl Default for ToolMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ToolMetricsLayer {
    /// A layer that learns up to [`DEFAULT_MAX_TOOLS`] names and reads bodies of at most
    /// [`BodyLimit::default`].
    pub fn new() -> Self {
        ToolMetricsLayer {
            names: Arc::new(ToolNames::new(DEFAULT_MAX_TOOLS)),
            limit: BodyLimit::default(),
        }
    }

    /// The largest request body read, and the largest `tools/list` answer read for names.
    #[must_use]
    pub fn body_limit(mut self, limit: BodyLimit) -> Self {
        self.limit = limit;
        self
    }

    /// How many tool names are kept as label values.
    #[must_use]
    pub fn max_tools(mut self, max: usize) -> Self {
        self.names = Arc::new(ToolNames::new(max));
        self
    }

    /// The names learned so far (shared by every service of this layer).
    pub fn names(&self) -> &Arc<ToolNames> {
        &self.names
    }
}

impl<S> Layer<S> for ToolMetricsLayer {
    type Service = ToolMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ToolMetricsService {
            inner,
            names: self.names.clone(),
            limit: self.limit,
        }
    }
}

/// The service of [`ToolMetricsLayer`].
#[derive(Debug, Clone)]
pub struct ToolMetricsService<S> {
    inner: S,
    names: Arc<ToolNames>,
    limit: BodyLimit,
}

/// What the layer learned of a request before calling the inner service.
enum Seen {
    Call(String),
    List,
    Other,
}

fn seen(payload: Option<&Payload>) -> Seen {
    let Some(envelope) = payload.and_then(|p| mcp::parse(p.bytes()).ok()) else {
        return Seen::Other;
    };
    let Some(message) = envelope.as_single() else {
        return Seen::Other;
    };
    if let Some(call) = message.tool_call() {
        return Seen::Call(call.name.to_owned());
    }
    match message.method() {
        Some("tools/list") => Seen::List,
        _ => Seen::Other,
    }
}

/// The response body of [`ToolMetricsService`].
pub type ToolMetricsBody<B> = ResponseBody<B, ListNames<B>>;

/// The future of [`ToolMetricsService`]. Boxed: the request body is read before the inner
/// service is called, and reading it is an `async fn` of this crate whose future cannot be
/// named.
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ToolMetricsBody<B>>, E>> + Send>>;

impl<S, ReqB, ResB> Service<Request<ReqB>> for ToolMetricsService<S>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<ToolMetricsBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The service that was polled ready answers this request; the clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let names = self.names.clone();
        let limit = self.limit;
        Box::pin(async move {
            let shape = ResponseShape::for_request(&req);
            let req = match buffer_request(req, limit).await {
                Ok(req) => req,
                Err(rejection) => {
                    return Ok(rejection.respond_in(&shape).map(ResponseBody::from));
                }
            };
            let seen = seen(req.extensions().get::<Payload>());
            let res = inner.call(req).await?;
            Ok(match seen {
                Seen::Call(name) => {
                    let allowed = res.extensions().get::<Denied>().is_none();
                    metrics::record_tool_call(&names.label(&name), allowed);
                    res.map(ResponseBody::inner)
                }
                Seen::List if res.status().is_success() => {
                    let kind = mcp::response_kind(res.headers());
                    res.map(|body| {
                        ResponseBody::transformed(ListNames {
                            body,
                            kind,
                            copy: BytesMut::new(),
                            limit: limit.bytes(),
                            names,
                        })
                    })
                }
                Seen::List | Seen::Other => res.map(ResponseBody::inner),
            })
        })
    }
}

pin_project! {
    /// A `tools/list` answer streaming through, copied (up to the layer's body limit) so that the
    /// listed names are learned at its end.
    pub struct ListNames<B> {
        #[pin]
        body: B,
        kind: ResponseKind,
        copy: BytesMut,
        limit: usize,
        names: Arc<ToolNames>,
    }
}

impl<B> ListNames<B> {
    fn learn(copy: &[u8], kind: ResponseKind, names: &ToolNames) {
        let learn_from = |envelope: mcp::Envelope| {
            for message in envelope.messages() {
                if let Some(tools) = message.result().and_then(mcp::tools_from_list_result) {
                    for tool in tools {
                        if let Some(name) = tool.get("name").and_then(|n| n.as_str()) {
                            names.insert(name);
                        }
                    }
                }
            }
        };
        match kind {
            ResponseKind::EventStream => {
                let mut decoder = crate::sse::Decoder::new(copy.len().max(1));
                let mut frames = Vec::new();
                if decoder.decode(copy, &mut frames).is_err() || decoder.finish().is_err() {
                    return;
                }
                for frame in frames {
                    if let crate::sse::Frame::Event(event) = frame
                        && let Ok(Some(envelope)) = mcp::parse_sse_data(&event.data)
                    {
                        learn_from(envelope);
                    }
                }
            }
            _ => {
                if let Ok(envelope) = mcp::parse(copy) {
                    learn_from(envelope);
                }
            }
        }
    }
}

impl<B> Body for ListNames<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this.copy.len() + data.len() <= *this.limit {
                        this.copy.extend_from_slice(data);
                    } else {
                        // Too large to learn from: stop copying for good.
                        *this.limit = 0;
                        this.copy.clear();
                    }
                }
            }
            Poll::Ready(None) if !this.copy.is_empty() => {
                let copy = std::mem::take(this.copy);
                Self::learn(&copy, *this.kind, this.names);
            }
            _ => {}
        }
        polled
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
    use super::*;
    use http::StatusCode;
    use http_body_util::{BodyExt, Full};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use tower::ServiceExt;

    fn rpc(body: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .method("POST")
            .uri("/mcp")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    }

    /// An MCP server that lists two tools (as an event stream) and denies `delete-all`.
    async fn upstream(
        req: Request<RequestBody<Full<Bytes>>>,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if json["method"] == "tools/list" {
            let answer = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get-weather"},{"name":"read-file"}]}}"#;
            let mut res = Response::new(Full::new(Bytes::from(format!(
                "event: message\ndata: {answer}\n\n"
            ))));
            res.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            return Ok(res);
        }
        if json["params"]["name"] == "delete-all" {
            let rejection = crate::Rejection::new(StatusCode::FORBIDDEN, "rbac", "no-delete");
            let shape = ResponseShape::JsonRpc {
                id: json["id"].clone(),
            };
            return Ok(rejection.into_response(&shape));
        }
        Ok(Response::new(Full::new(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":2,"result":{"content":[]}}"#,
        ))))
    }

    fn counts(snapshot: metrics_util::debugging::Snapshotter) -> Vec<(String, String, u64)> {
        let mut out: Vec<_> = snapshot
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| {
                let DebugValue::Counter(n) = value else {
                    return None;
                };
                let label = |name: &str| {
                    key.key()
                        .labels()
                        .find(|l| l.key() == name)
                        .map(|l| l.value().to_owned())
                        .unwrap_or_default()
                };
                Some((label("tool"), label("allowed"), n))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn calls_are_counted_by_listed_name_and_denial() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let layer = ToolMetricsLayer::new();
        let service = layer.layer(tower::service_fn(upstream));
        let call = |name: &str| {
            rpc(&format!(
                r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
            ))
        };
        let run = async {
            // Before any tools/list, every name is `other`.
            service.clone().oneshot(call("get-weather")).await.unwrap();
            // The listing streams through unchanged and teaches the names.
            let res = service
                .clone()
                .oneshot(rpc(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#))
                .await
                .unwrap();
            let text = res.into_body().collect().await.unwrap().to_bytes();
            assert!(text.starts_with(b"event: message\ndata: "));
            assert_eq!(layer.names().len(), 2);
            service.clone().oneshot(call("get-weather")).await.unwrap();
            service.clone().oneshot(call("get-weather")).await.unwrap();
            // A made-up name stays `other`; a denied call counts as not allowed.
            service.clone().oneshot(call("x-made-up-1")).await.unwrap();
            let denied = service.clone().oneshot(call("delete-all")).await.unwrap();
            assert_eq!(denied.status(), StatusCode::OK);
        };
        // One thread runs the whole exchange: the local recorder sees every call.
        ::metrics::with_local_recorder(&recorder, || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(run);
        });
        assert_eq!(
            counts(snapshotter),
            vec![
                ("get-weather".into(), "true".into(), 2),
                ("other".into(), "false".into(), 1),
                ("other".into(), "true".into(), 2),
            ]
        );
    }

    #[test]
    fn the_label_set_is_bounded() {
        let names = ToolNames::new(2);
        for name in ["a", "b", "c", "a"] {
            names.insert(name);
        }
        assert_eq!(names.len(), 2);
        assert_eq!(&*names.label("a"), "a");
        assert_eq!(&*names.label("c"), metrics::OTHER_TOOL);
    }
}
