//! What a check says about the request, shared by both protocols.

use std::borrow::Cow;

use bytes::Bytes;
use http::Version;
use http::header::{CONTENT_LENGTH, HOST};
use http::request::Parts;

use agentgw_core::Payload;

/// The start of the request body, as sent to the service.
#[derive(Debug, Clone)]
pub(crate) struct BodyPrefix {
    /// At most `maxRequestBytes` bytes (a cheap slice of the payload).
    pub(crate) bytes: Bytes,
    /// Whether the body was longer than what is sent.
    pub(crate) partial: bool,
    /// The length of the whole body.
    pub(crate) total: usize,
}

impl BodyPrefix {
    /// The prefix of the buffered [`Payload`] in `parts`, if any.
    pub(crate) fn of(parts: &Parts, max_bytes: usize) -> Option<Self> {
        let bytes = parts.extensions.get::<Payload>()?.bytes();
        Some(BodyPrefix {
            bytes: bytes.slice(..bytes.len().min(max_bytes)),
            partial: bytes.len() > max_bytes,
            total: bytes.len(),
        })
    }

    /// The bytes as UTF-8 text: a character cut in two by the truncation is dropped, any other
    /// invalid sequence becomes U+FFFD.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match std::str::from_utf8(&self.bytes) {
            Ok(text) => Cow::Borrowed(text),
            Err(err) if err.error_len().is_none() => {
                // Only the end is incomplete: the cut fell inside a character.
                String::from_utf8_lossy(&self.bytes[..err.valid_up_to()])
            }
            Err(_) => String::from_utf8_lossy(&self.bytes),
        }
    }
}

/// The request host: the URI authority (HTTP/2) or the `Host` header.
pub(crate) fn host(parts: &Parts) -> &str {
    parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("")
}

/// The request target as sent: path and query.
pub(crate) fn path_and_query(parts: &Parts) -> &str {
    parts.uri.path_and_query().map_or("/", |p| p.as_str())
}

/// The scheme of the request URI, `http` when the URI has none (HTTP/1 origin form).
pub(crate) fn scheme(parts: &Parts) -> &str {
    parts.uri.scheme_str().unwrap_or("http")
}

/// Envoy's protocol string for the request version.
pub(crate) fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// The body size: `content-length`, else the buffered length, else -1 (unknown).
pub(crate) fn size(parts: &Parts, body: Option<&BodyPrefix>) -> i64 {
    parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .or_else(|| body.and_then(|b| i64::try_from(b.total).ok()))
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_with_body(body: &'static [u8]) -> Parts {
        let (parts, ()) = http::Request::builder()
            .extension(Payload::from_static(body))
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn prefix_truncates_and_says_so() {
        let parts = parts_with_body(b"0123456789");
        let prefix = BodyPrefix::of(&parts, 4).unwrap();
        assert_eq!(&prefix.bytes[..], b"0123");
        assert!(prefix.partial);
        assert_eq!(prefix.total, 10);
        let whole = BodyPrefix::of(&parts, 10).unwrap();
        assert!(!whole.partial);
        assert_eq!(size(&parts, Some(&whole)), 10);
    }

    #[test]
    fn text_drops_a_character_cut_in_two() {
        let parts = parts_with_body("héllo".as_bytes());
        // "h" + the first byte of "é".
        assert_eq!(BodyPrefix::of(&parts, 2).unwrap().text(), "h");
        assert_eq!(BodyPrefix::of(&parts, 3).unwrap().text(), "hé");
        let parts = parts_with_body(b"a\xffb");
        assert_eq!(BodyPrefix::of(&parts, 3).unwrap().text(), "a\u{fffd}b");
    }

    #[test]
    fn host_path_scheme_protocol() {
        let (parts, ()) = http::Request::builder()
            .uri("/v1/models?limit=2")
            .header("host", "api.example")
            .version(Version::HTTP_11)
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(host(&parts), "api.example");
        assert_eq!(path_and_query(&parts), "/v1/models?limit=2");
        assert_eq!(scheme(&parts), "http");
        assert_eq!(protocol(parts.version), "HTTP/1.1");
        assert_eq!(size(&parts, None), -1);
        let (parts, ()) = http::Request::builder()
            .uri("https://h2.example/x")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(host(&parts), "h2.example");
        assert_eq!(scheme(&parts), "https");
    }
}
