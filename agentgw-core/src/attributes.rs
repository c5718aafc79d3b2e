//! The read-only view of a request that policies evaluate.
//!
//! [`Attributes`] borrows a request and computes nothing up front: each accessor reads only what
//! it needs when it is called, so an attribute no policy uses costs nothing. The body is visible
//! only when an earlier layer buffered it (a [`Payload`] extension), and its JSON is parsed at
//! most once per request, however many policies read it.
//!
//! | accessor | CEL variable |
//! |---|---|
//! | [`method`](Attributes::method), [`path`](Attributes::path), [`host`](Attributes::host), [`query`](Attributes::query) | `request.method`, `request.path`, `request.host`, `request.query` |
//! | [`header`](Attributes::header) (case-insensitive) | `request.headers["x-api-key"]` |
//! | [`body`](Attributes::body) ([`Payload::field`] for one member, [`body_json`](Attributes::body_json) for the whole tree) | `request.body` |
//! | [`source`](Attributes::source), [`peer`](Attributes::peer) | `source.ip`, `source.port`, `source.identity` |
//! | [`jwt`](Attributes::jwt) | `jwt.*` |
//! | [`api_key`](Attributes::api_key) | `apiKey.*` |
//! | [`mcp_method`](Attributes::mcp_method), [`tool_call`](Attributes::tool_call), [`backend`](Attributes::backend) | `mcp.method`, `mcp.tool.name`, `mcp.tool.arguments`, `mcp.tool.target` |
//!
//! # Example
//!
//! ```
//! use agentgw_core::{Attributes, Payload};
//!
//! let req = http::Request::builder()
//!     .method("POST")
//!     .uri("http://ai.example/openai/v1/chat/completions?debug=1")
//!     .header("X-LLM", "openai")
//!     .extension(Payload::from_static(br#"{"model":"gpt-3.5-turbo"}"#))
//!     .body(())
//!     .unwrap();
//! let attrs = Attributes::new(&req);
//! assert_eq!(attrs.method(), "POST");
//! assert!(attrs.path().starts_with("/openai"));
//! assert_eq!(attrs.header("x-llm"), Some("openai"));
//! assert_eq!(attrs.query_param("debug").as_deref(), Some("1"));
//! assert_eq!(attrs.body_json().unwrap()["model"], "gpt-3.5-turbo");
//! assert!(attrs.jwt().is_none()); // no JWT layer ran
//! ```

use std::borrow::Cow;
use std::net::SocketAddr;

use http::header::HOST;
use http::{Extensions, HeaderMap, Method, Request, Uri};
use serde_json::Value;

use crate::identity::{ApiKeyInfo, BackendName, ClientAddr, JwtClaims, PeerIdentity};
use crate::mcp;
use crate::payload::Payload;

/// A lazy, borrowed view of one request. See the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl<'a> Attributes<'a> {
    /// The attributes of `req`.
    pub fn new<B>(req: &'a Request<B>) -> Self {
        Attributes {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }

    /// The attributes of a request's head.
    pub fn from_parts(parts: &'a http::request::Parts) -> Self {
        Attributes {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            extensions: &parts.extensions,
        }
    }

    /// The HTTP method (`"GET"`, `"POST"`, ...).
    pub fn method(&self) -> &'a str {
        self.method.as_str()
    }

    /// The request path, without the query.
    pub fn path(&self) -> &'a str {
        self.uri.path()
    }

    /// The host: the URI authority when present (HTTP/2, absolute form), else the `Host` header,
    /// without the port.
    pub fn host(&self) -> Option<&'a str> {
        let raw = match self.uri.host() {
            Some(host) => return Some(host),
            None => self.headers.get(HOST)?.to_str().ok()?,
        };
        Some(strip_port(raw))
    }

    /// The raw query string, without `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.uri.query()
    }

    /// The first value of query parameter `name`, decoded by the one rule of
    /// [`percent`](crate::percent).
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        crate::percent::query_param(self.query()?, name)
    }

    /// The first value of header `name` (case-insensitive) when it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// All headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The buffered body, when an earlier layer read it.
    pub fn body(&self) -> Option<&'a Payload> {
        self.extensions.get::<Payload>()
    }

    /// The buffered body as JSON, when it was read and is valid JSON.
    pub fn body_json(&self) -> Option<&'a Value> {
        self.body()?.json().ok()
    }

    /// The client's socket address ([`ClientAddr`] extension).
    pub fn source(&self) -> Option<SocketAddr> {
        self.extensions.get::<ClientAddr>().map(|a| a.0)
    }

    /// The verified TLS client identity.
    pub fn peer(&self) -> Option<&'a PeerIdentity> {
        self.extensions.get::<PeerIdentity>()
    }

    /// The verified JWT claims.
    pub fn jwt(&self) -> Option<&'a JwtClaims> {
        self.extensions.get::<JwtClaims>()
    }

    /// The authenticated API key's metadata.
    pub fn api_key(&self) -> Option<&'a ApiKeyInfo> {
        self.extensions.get::<ApiKeyInfo>()
    }

    /// The backend the request goes to (the MCP target).
    pub fn backend(&self) -> Option<&'a str> {
        self.extensions.get::<BackendName>().map(|b| &*b.0)
    }

    /// The JSON-RPC message of a single (non-batch) MCP request.
    pub fn mcp_message(&self) -> Option<&'a mcp::Message> {
        match self.body()?.mcp()? {
            mcp::Envelope::Single(message) => Some(message),
            mcp::Envelope::Batch(_) => None,
        }
    }

    /// The MCP method (`"tools/call"`, `"tools/list"`, ...).
    pub fn mcp_method(&self) -> Option<&'a str> {
        self.mcp_message()?.method()
    }

    /// The tool call of an MCP `tools/call` request.
    pub fn tool_call(&self) -> Option<mcp::ToolCall<'a>> {
        self.mcp_message()?.tool_call()
    }

    /// Any typed extension, for attributes of your own.
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&'a T> {
        self.extensions.get::<T>()
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: keep the brackets' content.
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_from_header_without_port() {
        let req = Request::builder()
            .uri("/x")
            .header("host", "api.example:8443")
            .body(())
            .unwrap();
        assert_eq!(Attributes::new(&req).host(), Some("api.example"));
        let v6 = Request::builder()
            .uri("/x")
            .header("host", "[::1]:80")
            .body(())
            .unwrap();
        assert_eq!(Attributes::new(&v6).host(), Some("[::1]"));
    }

    #[test]
    fn query_params_are_decoded() {
        let req = Request::builder()
            .uri("/x?a=1&name=hello%20world&plus=a+b&bad=%zz&tail=%4")
            .body(())
            .unwrap();
        let attrs = Attributes::new(&req);
        assert_eq!(attrs.query_param("name").as_deref(), Some("hello world"));
        assert_eq!(attrs.query_param("plus").as_deref(), Some("a b"));
        assert_eq!(attrs.query_param("bad").as_deref(), Some("%zz"));
        assert_eq!(attrs.query_param("tail").as_deref(), Some("%4"));
        assert_eq!(attrs.query_param("missing"), None);
    }

    #[test]
    fn headers_are_case_insensitive() {
        let req = Request::builder()
            .header("X-Api-Key", "k")
            .body(())
            .unwrap();
        assert_eq!(Attributes::new(&req).header("x-api-key"), Some("k"));
        assert_eq!(Attributes::new(&req).header("X-API-KEY"), Some("k"));
    }

    #[test]
    fn body_is_absent_unless_buffered() {
        let req = Request::builder().body(()).unwrap();
        assert!(Attributes::new(&req).body_json().is_none());
    }

    #[test]
    fn mcp_tool_call_is_visible() {
        let req = Request::builder()
            .extension(Payload::from_static(
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"kubectl-get","arguments":{"resource":"pods"}}}"#,
            ))
            .extension(BackendName("k8s".into()))
            .body(())
            .unwrap();
        let attrs = Attributes::new(&req);
        assert_eq!(attrs.mcp_method(), Some("tools/call"));
        let call = attrs.tool_call().unwrap();
        assert_eq!(call.name, "kubectl-get");
        assert_eq!(call.arguments.unwrap()["resource"], "pods");
        assert_eq!(attrs.backend(), Some("k8s"));
    }
}
