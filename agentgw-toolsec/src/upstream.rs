//! The layer's own requests to the upstream, on the caller's session: `tools/list` pages to
//! check a tool before its first call (`unlistedTools: Fetch`) and `notifications/cancelled`
//! for calls cut off by `maxExecutionTime`.

use std::future::poll_fn;
use std::time::Duration;

use agentgw_core::body::{BodyLimit, RequestBody};
use agentgw_core::mcp::{self, AnswerError, Id, methods};
use agentgw_core::{BoxError, Payload};
use bytes::Bytes;
use http::header::{
    ACCEPT, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, TRANSFER_ENCODING,
};
use http::{Extensions, HeaderMap, HeaderValue, Method, Request, Response, Uri, Version};
use http_body::Body;
use serde_json::{Value, json};
use tower_service::Service;

use crate::body::CancelFn;
use crate::exchange::Exchange;
use crate::layer::ToolSecurityLayer;

/// The most `tools/list` pages the layer requests to find the tools of a call.
const MAX_LIST_PAGES: usize = 32;
/// How long the layer waits for one page of its own `tools/list`.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// Lists the upstream's tools through `inner`, on the session and with the credentials of
/// `req`, page by page until every tool of `wanted` was seen (or the pages end); each page is
/// validated and recorded as a client's `tools/list` answer would be. `inner` is ready when
/// called and must be readied again afterwards.
pub(crate) async fn fetch_tools<S, ReqBody, ResBody>(
    layer: &ToolSecurityLayer,
    inner: &mut S,
    head: &ClientHead,
    exchange: &mut Exchange,
    mut wanted: Vec<String>,
) -> Result<(), &'static str>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let mut cursor: Option<String> = None;
    for page in 0..MAX_LIST_PAGES {
        if page > 0 {
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(|_| "the upstream service is not ready")?;
        }
        let id = format!("agentgw-toolsec-list-{page}");
        let mut list = json!({"jsonrpc": "2.0", "id": id, "method": methods::TOOLS_LIST});
        if let Some(cursor) = &cursor {
            list["params"] = json!({ "cursor": cursor });
        }
        let request = head.request(list);
        let answer = async {
            let response = inner
                .call(request)
                .await
                .map_err(|_| "the upstream failed")?;
            read_answer(response, &Id::String(id), layer.response_limit).await
        };
        let mut result = tokio::time::timeout(LIST_TIMEOUT, answer)
            .await
            .map_err(|_| "the upstream's tools/list timed out")??;
        let Some(tools) = mcp::tools_from_list_result(&result) else {
            return Err("the upstream's tools/list answer has no tool list");
        };
        wanted.retain(|name| {
            !tools
                .iter()
                .any(|tool| tool.get("name").and_then(Value::as_str) == Some(name))
        });
        // Every tool of the page is recorded, even those the call does not need.
        exchange.record_list(&mut result);
        let next = result
            .get("nextCursor")
            .and_then(Value::as_str)
            .filter(|next| !next.is_empty() && cursor.as_deref() != Some(*next));
        match next {
            Some(next) if !wanted.is_empty() => cursor = Some(next.to_owned()),
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// The result of the answer to request `id` in `response` (a JSON body or an event stream).
async fn read_answer<B>(
    response: Response<B>,
    id: &Id,
    limit: BodyLimit,
) -> Result<Value, &'static str>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if !response.status().is_success() {
        return Err("the upstream answered with an error status");
    }
    match mcp::read_answer(response, id, limit).await {
        Ok(Some(Ok(result))) => Ok(result),
        Ok(Some(Err(_))) => Err("the upstream answered tools/list with an error"),
        Ok(None) => Err("the upstream did not answer tools/list"),
        Err(AnswerError::Read(_)) => Err("the upstream's answer could not be read"),
        Err(AnswerError::TooLarge { .. }) => Err("the upstream's answer is too large"),
        Err(AnswerError::NotJsonRpc(_)) => Err("the upstream's answer is not JSON-RPC"),
        Err(AnswerError::MalformedStream(_)) => Err("the upstream's event stream is malformed"),
        Err(_) => Err("the upstream's answer has a content type that cannot be inspected"),
    }
}

/// Sends `notifications/cancelled` upstream for the given calls, through the inner service
/// with the headers of the original request (session, credentials), in the background.
pub(crate) fn cancel_fn<S, ReqBody, ResBody>(
    req: &Request<RequestBody<ReqBody>>,
    inner: S,
) -> CancelFn
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    let head = ClientHead::of(req);
    Box::new(move |ids: Vec<Id>| {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut inner = inner;
            for id in ids {
                let notification = json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": { "requestId": id.to_value(), "reason": "maxExecutionTime exceeded" },
                });
                let request = head.request(notification);
                if poll_fn(|cx| inner.poll_ready(cx)).await.is_err() {
                    return;
                }
                // The answer (202 Accepted) is not needed.
                let _ = inner.call(request).await;
            }
        });
    })
}

/// What the layer's own requests to the upstream take from the client's request: the URI,
/// version, headers (session, credentials) and extensions.
pub(crate) struct ClientHead {
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
}

impl ClientHead {
    pub(crate) fn of<B>(req: &Request<B>) -> Self {
        let mut headers = req.headers().clone();
        for name in [CONTENT_ENCODING, TRANSFER_ENCODING, EXPECT] {
            headers.remove(name);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        Self {
            uri: req.uri().clone(),
            version: req.version(),
            headers,
            extensions: req.extensions().clone(),
        }
    }

    /// A POST of `message` on the client's session.
    fn request<B>(&self, message: Value) -> Request<RequestBody<B>> {
        let payload = Payload::from_json(message);
        let mut request = Request::new(RequestBody::buffered(payload.bytes().clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(payload.len()));
        *request.extensions_mut() = self.extensions.clone();
        request.extensions_mut().insert(payload);
        request
    }
}
