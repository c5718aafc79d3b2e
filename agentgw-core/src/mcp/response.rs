//! [`ResponseKind`]: how a Streamable HTTP response carries its JSON-RPC messages.

use http::HeaderMap;

#[cfg(doc)]
use super::{parse, parse_sse_data};
use crate::content::{self, MediaType};

/// How an MCP Streamable HTTP response carries its JSON-RPC messages.
///
/// The classification is strict so that a layer inspects exactly what a client will parse:
/// anything a layer cannot read as JSON-RPC is [`ResponseKind::Unsupported`], to be refused
/// rather than forwarded uninspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// `application/json` (optionally `; charset=utf-8`): the body is one message or a batch;
    /// use [`parse`].
    Json,
    /// `text/event-stream` (optionally `; charset=utf-8`): each event's data is one message;
    /// use [`parse_sse_data`].
    EventStream,
    /// No `Content-Type` at all: acceptable only for an empty body, such as the `202 Accepted`
    /// answering a notification or the answer to a `DELETE`. A body is refused.
    Untyped,
    /// A type a layer cannot inspect: any other media type (`text/plain`,
    /// `application/json-rpc`), a list of types (`application/json, text/plain`), a charset
    /// other than UTF-8, several `Content-Type` headers, a value that is not text, or a
    /// `Content-Encoding` other than `identity` (see [`crate::content`]).
    Unsupported,
}

impl ResponseKind {
    /// Classifies one `Content-Type` value with [`MediaType::parse`](crate::content::MediaType::parse):
    /// only `application/json` and `text/event-stream` (any ASCII case, a UTF-8 `charset`
    /// allowed) are readable.
    pub fn from_content_type(content_type: &str) -> Self {
        Self::from_media_type(MediaType::parse(content_type.as_bytes()))
    }

    fn from_media_type(media_type: MediaType) -> Self {
        match media_type {
            MediaType::Json => Self::Json,
            MediaType::EventStream => Self::EventStream,
            MediaType::Missing => Self::Untyped,
            _ => Self::Unsupported,
        }
    }
}

/// Classifies a response by its headers, as [`crate::content`] reads them: exactly one
/// `Content-Type` (see [`ResponseKind::from_content_type`]) and no `Content-Encoding` other
/// than `identity`.
///
/// ```
/// use agentgw_core::mcp::{ResponseKind, response_kind};
/// use http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("content-type", "application/json; charset=utf-8".parse().unwrap());
/// assert_eq!(response_kind(&headers), ResponseKind::Json);
/// headers.insert("content-encoding", "gzip".parse().unwrap());
/// assert_eq!(response_kind(&headers), ResponseKind::Unsupported);
/// assert_eq!(response_kind(&HeaderMap::new()), ResponseKind::Untyped);
/// ```
pub fn response_kind(headers: &HeaderMap) -> ResponseKind {
    if content::is_encoded(headers) {
        return ResponseKind::Unsupported;
    }
    ResponseKind::from_media_type(content::media_type(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::{CONTENT_ENCODING, CONTENT_TYPE};

    #[test]
    fn response_kind_follows_content_type() {
        let kind = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            response_kind(&headers)
        };
        assert_eq!(kind("application/json"), ResponseKind::Json);
        assert_eq!(kind("application/json; charset=utf-8"), ResponseKind::Json);
        assert_eq!(kind("Application/JSON;charset=UTF-8"), ResponseKind::Json);
        assert_eq!(
            kind("application/json; charset=\"utf-8\""),
            ResponseKind::Json
        );
        assert_eq!(kind("text/event-stream"), ResponseKind::EventStream);
        assert_eq!(
            kind("text/event-stream; charset=utf-8"),
            ResponseKind::EventStream
        );
        assert_eq!(kind(" text/event-stream "), ResponseKind::EventStream);
        for unsupported in [
            "text/plain",
            "application/jsonl",
            "application/json-rpc",
            "application/json, text/plain",
            "application/json; charset=iso-8859-1",
            "application/json; charset=utf-16",
            "application/json; charset",
            "text/event-stream; charset=latin1",
            "",
        ] {
            assert_eq!(
                kind(unsupported),
                ResponseKind::Unsupported,
                "{unsupported}"
            );
        }
        assert_eq!(response_kind(&HeaderMap::new()), ResponseKind::Untyped);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_bytes(b"application/json\xff").expect("opaque header value"),
        );
        assert_eq!(response_kind(&headers), ResponseKind::Unsupported);

        // Two Content-Type headers: which one a client believes is anyone's guess.
        let mut headers = HeaderMap::new();
        headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(response_kind(&headers), ResponseKind::Unsupported);

        // Encoded bodies are not inspected as bytes.
        for (encoding, expected) in [
            ("gzip", ResponseKind::Unsupported),
            ("identity, br", ResponseKind::Unsupported),
            ("identity", ResponseKind::Json),
            ("IDENTITY", ResponseKind::Json),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
            assert_eq!(response_kind(&headers), expected, "{encoding}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(response_kind(&headers), ResponseKind::Unsupported);
    }
}
