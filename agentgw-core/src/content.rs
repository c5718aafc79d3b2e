//! How a message's body is to be read: its media type and its content codings.
//!
//! Every layer that inspects a body asks this module, so that all of them read a message the same
//! way, and the same way as the strictest peer would. The rules are deliberately narrow: a
//! header that two parsers could read differently is [`MediaType::Ambiguous`], and a layer that
//! needs to inspect such a body refuses it instead of guessing.
//!
//! | `Content-Type` | [`MediaType`] |
//! |---|---|
//! | `application/json` | [`MediaType::Json`] |
//! | `application/*+json` | [`MediaType::JsonSuffix`] |
//! | `text/event-stream` | [`MediaType::EventStream`] |
//! | `application/x-ndjson`, `application/jsonl`, `application/json-lines`, `application/x-jsonlines` | [`MediaType::NdJson`] |
//! | `text/*`, `application/xml`, `application/*+xml`, `application/x-www-form-urlencoded` | [`MediaType::Text`] |
//! | absent | [`MediaType::Missing`] |
//! | several `Content-Type` fields, a list (`a/b, c/d`), no `/`, a `charset` other than UTF-8 or ASCII, bytes that are not visible ASCII | [`MediaType::Ambiguous`] |
//! | anything else | [`MediaType::Other`] |
//!
//! Type, subtype and parameter names compare case-insensitively (RFC 9110); parameters other
//! than `charset` are ignored.
//!
//! ```
//! use agentgw_core::content::{ContentCoding, MediaType, content_codings, media_type};
//! use http::HeaderMap;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("content-type", "Application/JSON; charset=utf-8".parse().unwrap());
//! assert_eq!(media_type(&headers), MediaType::Json);
//!
//! headers.insert("content-type", "application/json, text/plain".parse().unwrap());
//! assert_eq!(media_type(&headers), MediaType::Ambiguous);
//!
//! headers.insert("content-type", "application/json; charset=utf-16".parse().unwrap());
//! assert_eq!(media_type(&headers), MediaType::Ambiguous);
//!
//! headers.insert("content-encoding", "gzip, br".parse().unwrap());
//! assert_eq!(
//!     content_codings(&headers).unwrap().as_slice(),
//!     [ContentCoding::Gzip, ContentCoding::Brotli]
//! );
//! headers.insert("content-encoding", "compress".parse().unwrap());
//! assert!(content_codings(&headers).is_err());
//! ```

use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};

/// What a `Content-Type` header says the body is. See the [module docs](self) for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaType {
    /// `application/json`.
    Json,
    /// A structured-syntax JSON type, `application/<something>+json`.
    JsonSuffix,
    /// `text/event-stream` (Server-Sent Events).
    EventStream,
    /// Line-delimited JSON (`application/x-ndjson`, `application/jsonl`, ...).
    NdJson,
    /// Any other `text/*` type, and the textual `application/xml`, `application/*+xml` and
    /// `application/x-www-form-urlencoded`.
    Text,
    /// No `Content-Type` header.
    Missing,
    /// A header two parsers may read differently: several fields, a list of types, a malformed
    /// value, or a charset other than UTF-8. Never inspect such a body as if it were one type.
    Ambiguous,
    /// A well-formed type this module has no reading for (images, `application/octet-stream`,
    /// `application/json-rpc`, ...).
    Other,
}

impl MediaType {
    /// Classifies one `Content-Type` value. See the [module docs](self).
    pub fn parse(value: &[u8]) -> MediaType {
        // The usual spellings, answered without taking the value apart.
        if value.eq_ignore_ascii_case(b"application/json") {
            return MediaType::Json;
        }
        if value.eq_ignore_ascii_case(b"text/event-stream") {
            return MediaType::EventStream;
        }
        let Ok(value) = std::str::from_utf8(value) else {
            return MediaType::Ambiguous;
        };
        if !value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return MediaType::Ambiguous;
        }
        let mut parts = value.split(';');
        let essence = parts.next().unwrap_or_default().trim_matches([' ', '\t']);
        // A comma outside a quoted parameter value is a list of types (or a folded header).
        if essence.contains(',') || essence.contains('"') {
            return MediaType::Ambiguous;
        }
        let Some((kind, subtype)) = essence.split_once('/') else {
            return MediaType::Ambiguous;
        };
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !token(kind) || !token(subtype) {
            return MediaType::Ambiguous;
        }
        for param in parts {
            let param = param.trim_matches([' ', '\t']);
            if param.is_empty() {
                continue;
            }
            let Some((name, value)) = param.split_once('=') else {
                return MediaType::Ambiguous;
            };
            if name.contains(',') || value.contains(',') {
                return MediaType::Ambiguous;
            }
            if name.trim().eq_ignore_ascii_case("charset") {
                let charset = value.trim().trim_matches('"');
                let utf8 = ["utf-8", "utf8", "us-ascii"]
                    .iter()
                    .any(|ok| charset.eq_ignore_ascii_case(ok));
                if !utf8 {
                    return MediaType::Ambiguous;
                }
            }
        }
        let is = |a: &str, b: &str| kind.eq_ignore_ascii_case(a) && subtype.eq_ignore_ascii_case(b);
        if is("application", "json") {
            MediaType::Json
        } else if is("text", "event-stream") {
            MediaType::EventStream
        } else if is("application", "x-ndjson")
            || is("application", "ndjson")
            || is("application", "jsonl")
            || is("application", "json-lines")
            || is("application", "x-jsonlines")
        {
            MediaType::NdJson
        } else if kind.eq_ignore_ascii_case("application")
            && subtype.len() > 5
            && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json")
        {
            MediaType::JsonSuffix
        } else if kind.eq_ignore_ascii_case("text")
            || is("application", "xml")
            || is("application", "x-www-form-urlencoded")
            || (kind.eq_ignore_ascii_case("application")
                && subtype.len() > 4
                && subtype[subtype.len() - 4..].eq_ignore_ascii_case("+xml"))
        {
            MediaType::Text
        } else {
            MediaType::Other
        }
    }

    /// Whether the body is one JSON document ([`MediaType::Json`] or [`MediaType::JsonSuffix`]).
    pub fn is_json(self) -> bool {
        matches!(self, MediaType::Json | MediaType::JsonSuffix)
    }
}

/// The media type of a message from its headers: [`MediaType::Missing`] without a
/// `Content-Type`, [`MediaType::Ambiguous`] with more than one.
pub fn media_type(headers: &HeaderMap) -> MediaType {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    match (values.next(), values.next()) {
        (None, _) => MediaType::Missing,
        (Some(value), None) => MediaType::parse(value.as_bytes()),
        (Some(_), Some(_)) => MediaType::Ambiguous,
    }
}

/// A content coding of `Content-Encoding` that this crate can undo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentCoding {
    /// `gzip` (also `x-gzip`), RFC 1952, possibly several members.
    Gzip,
    /// `deflate`: the zlib format (RFC 1950); raw deflate data is accepted too.
    Deflate,
    /// `br`, Brotli (RFC 7932).
    Brotli,
    /// `zstd`, Zstandard (RFC 8878).
    Zstd,
}

impl ContentCoding {
    /// The coding's token as written in `Content-Encoding`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ContentCoding::Gzip => "gzip",
            ContentCoding::Deflate => "deflate",
            ContentCoding::Brotli => "br",
            ContentCoding::Zstd => "zstd",
        }
    }
}

/// A `Content-Encoding` this crate cannot undo: an unknown token, or more codings than
/// [`MAX_CODINGS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported content encoding `{0}`")]
pub struct UnsupportedCoding(pub String);

/// The most content codings a message may stack (`gzip, br` is two).
pub const MAX_CODINGS: usize = 4;

/// The content codings applied to a body, in the order they were applied (undo them in reverse).
/// `identity` tokens are dropped, so an empty list means the body is as it is. Every
/// `Content-Encoding` field counts (several fields are one list).
pub fn content_codings(headers: &HeaderMap) -> Result<Vec<ContentCoding>, UnsupportedCoding> {
    let mut codings = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let value = value
            .to_str()
            .map_err(|_| UnsupportedCoding(String::from_utf8_lossy(value.as_bytes()).into()))?;
        for token in value.split(',') {
            let token = token.trim_matches([' ', '\t']);
            let coding = if token.is_empty() || token.eq_ignore_ascii_case("identity") {
                continue;
            } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
                ContentCoding::Gzip
            } else if token.eq_ignore_ascii_case("deflate") {
                ContentCoding::Deflate
            } else if token.eq_ignore_ascii_case("br") {
                ContentCoding::Brotli
            } else if token.eq_ignore_ascii_case("zstd") {
                ContentCoding::Zstd
            } else {
                return Err(UnsupportedCoding(token.to_owned()));
            };
            if codings.len() == MAX_CODINGS {
                return Err(UnsupportedCoding(value.to_owned()));
            }
            codings.push(coding);
        }
    }
    Ok(codings)
}

/// Whether the body of a message with these headers is encoded (a `Content-Encoding` other than
/// `identity`, including one this crate does not know).
pub fn is_encoded(headers: &HeaderMap) -> bool {
    !matches!(content_codings(headers), Ok(codings) if codings.is_empty())
}

/// Whether the first character of `bytes` opens a JSON object or array, in UTF-8 or in any
/// encoding a lenient parser would detect (a byte-order mark, UTF-16 or UTF-32 with or
/// without one). Such a body is JSON to some peer whatever its `Content-Type` says (most
/// clients and frameworks call their JSON parser without looking), so a layer reads it as JSON.
pub fn starts_like_json(bytes: &[u8]) -> bool {
    fn opens<'a>(mut bytes: impl Iterator<Item = &'a u8>) -> bool {
        matches!(bytes.find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
    }
    if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
        return opens(rest.iter());
    }
    let head = &bytes[..bytes.len().min(64)];
    let wide = head.starts_with(&[0xff, 0xfe])
        || head.starts_with(&[0xfe, 0xff])
        || head.iter().take(4).any(|b| *b == 0);
    if wide {
        // UTF-16/32: ASCII characters with NUL bytes beside them.
        let skip = if head.starts_with(&[0xff, 0xfe]) || head.starts_with(&[0xfe, 0xff]) {
            2
        } else {
            0
        };
        return opens(head[skip..].iter().filter(|b| **b != 0));
    }
    opens(bytes.iter())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn mt(value: &str) -> MediaType {
        MediaType::parse(value.as_bytes())
    }

    #[test]
    fn media_types() {
        assert_eq!(mt("application/json"), MediaType::Json);
        assert_eq!(mt("APPLICATION/Json ; Charset=\"UTF-8\""), MediaType::Json);
        assert_eq!(mt("application/json;"), MediaType::Json);
        assert_eq!(mt("application/vnd.api+json"), MediaType::JsonSuffix);
        assert_eq!(
            mt("text/event-stream; charset=utf-8"),
            MediaType::EventStream
        );
        assert_eq!(mt("application/x-ndjson"), MediaType::NdJson);
        assert_eq!(mt("application/jsonl"), MediaType::NdJson);
        assert_eq!(mt("text/plain"), MediaType::Text);
        assert_eq!(mt("application/xml"), MediaType::Text);
        assert_eq!(mt("application/atom+xml"), MediaType::Text);
        assert_eq!(mt("application/x-www-form-urlencoded"), MediaType::Text);
        assert_eq!(mt("application/json-rpc"), MediaType::Other);
        assert_eq!(mt("application/octet-stream"), MediaType::Other);
        assert_eq!(mt("image/png"), MediaType::Other);
    }

    #[test]
    fn ambiguous_media_types() {
        for value in [
            "application/json, text/plain",
            "text/plain,application/json",
            "application/json; charset=utf-16",
            "application/json; charset=latin1",
            "application/json; charset",
            "application",
            "",
            "/json",
            "application/json\u{0}",
            "application/\"json\"",
            "applicätion/json",
        ] {
            assert_eq!(mt(value), MediaType::Ambiguous, "{value:?}");
        }
    }

    #[test]
    fn header_count_matters() {
        let mut headers = HeaderMap::new();
        assert_eq!(media_type(&headers), MediaType::Missing);
        headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(media_type(&headers), MediaType::Json);
        headers.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(media_type(&headers), MediaType::Ambiguous);
    }

    #[test]
    fn json_is_recognized_in_every_encoding_a_parser_detects() {
        let utf16le: Vec<u8> = "{\"a\":1}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let utf16be: Vec<u8> = " [1]".encode_utf16().flat_map(u16::to_be_bytes).collect();
        let with_bom = [&[0xff, 0xfe][..], &utf16le].concat();
        for json in [
            &b"{}"[..],
            b" \n[1]",
            b"\xef\xbb\xbf{}",
            &utf16le,
            &utf16be,
            &with_bom,
            b"\0\0\0{",
        ] {
            assert!(starts_like_json(json), "{json:?}");
        }
        for other in [
            &b""[..],
            b"hello",
            b"\xff\xfe\x00\x01\x02",
            b"\x00\x01binary",
            b"1",
        ] {
            assert!(!starts_like_json(other), "{other:?}");
        }
    }

    #[test]
    fn codings() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_codings(&headers).unwrap(), []);
        assert!(!is_encoded(&headers));
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("identity"));
        assert!(!is_encoded(&headers));
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("GZIP"));
        assert_eq!(content_codings(&headers).unwrap(), [ContentCoding::Gzip]);
        headers.append(CONTENT_ENCODING, HeaderValue::from_static("br ,zstd"));
        assert_eq!(
            content_codings(&headers).unwrap(),
            [
                ContentCoding::Gzip,
                ContentCoding::Brotli,
                ContentCoding::Zstd
            ]
        );
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("compress"));
        assert!(content_codings(&headers).is_err());
        assert!(is_encoded(&headers));
        headers.insert(
            CONTENT_ENCODING,
            HeaderValue::from_static("gzip, gzip, gzip, gzip, gzip"),
        );
        assert!(content_codings(&headers).is_err());
    }
}
