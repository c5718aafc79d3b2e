//! One canonical request path, decided once and used by routing, format detection, policies
//! and the upstream URI.
//!
//! Servers disagree on what `/v1/chat/%63ompletions`, `/v1//chat/completions`,
//! `/v1/x/../chat/completions` or `/v1/chat%2Fcompletions` mean. A layer that reads one of them
//! differently from the upstream decides about a request the upstream never sees. The rules:
//!
//! - **Normalized**: percent-encoded *unreserved* characters (`A-Z a-z 0-9 - . _ ~`, RFC 3986
//!   section 2.3) are decoded, since every server reads them as the character itself; other
//!   percent-encodings keep their encoding, with upper-case hex digits.
//! - **Refused** (400): an encoded `/` (`%2F`) or `\` (`%5C`), a literal `\`, an encoded control
//!   byte (`%00`-`%1F`, `%7F`), a malformed escape (`%`, `%G1`), a dot segment (`.` or `..`,
//!   literal or encoded), an empty segment (`//`) other than one trailing slash, and a path that
//!   does not start with `/`. Each of these is read as a different path by some server (Windows
//!   and Java servlet containers split on `\`, most routers collapse `//`, some decode `%2F`
//!   before routing), so no single reading is safe to pick.
//!
//! The query string is left as it is.
//!
//! ```
//! use agentgw_core::path::{PathError, canonical};
//!
//! assert_eq!(canonical("/v1/chat/completions").unwrap(), "/v1/chat/completions");
//! assert_eq!(canonical("/v1/chat/%63ompletions").unwrap(), "/v1/chat/completions");
//! assert_eq!(canonical("/files/caf%c3%a9").unwrap(), "/files/caf%C3%A9");
//! assert_eq!(canonical("/v1/x/../chat"), Err(PathError::DotSegment));
//! assert_eq!(canonical("/v1/x/%2e%2E/chat"), Err(PathError::DotSegment));
//! assert_eq!(canonical("/v1//chat"), Err(PathError::EmptySegment));
//! assert_eq!(canonical("/v1/chat%2Fcompletions"), Err(PathError::EncodedSeparator));
//! ```

use std::borrow::Cow;

use http::uri::{PathAndQuery, Uri};
use http::{Request, StatusCode};

use crate::rejection::Rejection;

/// Why a path has no canonical form. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the path does not start with `/`")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-encoding in the path")]
    BadEscape,
    /// `%2F` or `%5C`: a separator some servers decode before routing and others do not.
    #[error("encoded `/` or `\\` in the path")]
    EncodedSeparator,
    /// A literal `\`, which some servers read as `/`.
    #[error("backslash in the path")]
    Backslash,
    /// An encoded control byte.
    #[error("encoded control character in the path")]
    EncodedControl,
    /// A `.` or `..` segment.
    #[error("dot segment in the path")]
    DotSegment,
    /// An empty segment (`//`).
    #[error("empty segment in the path")]
    EmptySegment,
}

impl PathError {
    /// A short, stable reason for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path_not_absolute",
            PathError::BadEscape => "path_bad_escape",
            PathError::EncodedSeparator => "path_encoded_separator",
            PathError::Backslash => "path_backslash",
            PathError::EncodedControl => "path_encoded_control",
            PathError::DotSegment => "path_dot_segment",
            PathError::EmptySegment => "path_empty_segment",
        }
    }

    /// The 400 rejection a client sees, attributed to `layer`.
    pub fn into_rejection(self, layer: &'static str) -> Rejection {
        Rejection::new(StatusCode::BAD_REQUEST, layer, self.reason())
            .with_message("request path is not in canonical form")
    }
}

/// The canonical form of `path` (no query string). Borrowed when `path` is already canonical,
/// which is the common case and costs one scan. See the [module docs](self).
pub fn canonical(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        // `*` (OPTIONS) and authority-form have no path to route on.
        return Err(PathError::NotAbsolute);
    }
    if plainly_canonical(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    read_in_full(path)
}

/// [`canonical`] of a path starting with `/`, byte by byte and segment by segment.
fn read_in_full(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).and_then(|h| hex_digit(*h)),
                    bytes.get(i + 2).and_then(|l| hex_digit(*l)),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let decoded = hi << 4 | lo;
                let out = out.get_or_insert_with(|| bytes[..i].to_vec());
                if decoded == b'/' || decoded == b'\\' {
                    return Err(PathError::EncodedSeparator);
                } else if decoded < 0x20 || decoded == 0x7f {
                    return Err(PathError::EncodedControl);
                } else if is_unreserved(decoded) {
                    out.push(decoded);
                } else {
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    out.extend_from_slice(&[b'%', HEX[usize::from(hi)], HEX[usize::from(lo)]]);
                }
                i += 3;
                continue;
            }
            _ => {
                if let Some(out) = out.as_mut() {
                    out.push(b);
                }
            }
        }
        i += 1;
    }
    let canonical = match out {
        // Only ASCII was decoded and every other byte copied: still UTF-8.
        Some(out) => Cow::Owned(String::from_utf8(out).map_err(|_| PathError::BadEscape)?),
        None => Cow::Borrowed(path),
    };
    let mut segments = canonical[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "." | ".." => return Err(PathError::DotSegment),
            // `/` alone, or one trailing slash, is an empty last segment.
            "" if segments.peek().is_some() => return Err(PathError::EmptySegment),
            _ => {}
        }
    }
    Ok(canonical)
}

/// Whether `path` (starting with `/`) is canonical on its face: no `%`, no `\\`, no empty
/// segment but a trailing one, and no segment starting with `.` (so neither `.` nor `..`). One
/// pass over the bytes; a path it does not vouch for (`/.well-known`, say) is read in full.
fn plainly_canonical(path: &[u8]) -> bool {
    let mut previous = 0;
    for &b in path {
        match b {
            b'%' | b'\\' => return false,
            b'/' | b'.' if previous == b'/' => return false,
            _ => {}
        }
        previous = b;
    }
    true
}

/// The value of one hex digit of a percent-escape (either case); core's one reading of it.
pub(crate) fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Puts `req`'s path in canonical form, in place: after this call `req.uri().path()` is the path
/// every layer, the router and the upstream see. A path with no canonical form is an error;
/// [`PathError::into_rejection`] makes it the 400 a client sees.
///
/// Cheap when the path is already canonical (one scan, nothing allocated), so every layer that
/// reads the path calls it, whether or not an outer layer did.
pub fn canonicalize_request<B>(req: &mut Request<B>) -> Result<(), PathError> {
    // An asterisk-form OPTIONS request has no path to route or inspect.
    if req.method() == http::Method::OPTIONS && req.uri().path() == "*" {
        return Ok(());
    }
    let canonical = match canonical(req.uri().path())? {
        Cow::Borrowed(_) => return Ok(()),
        Cow::Owned(canonical) => canonical,
    };
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{canonical}?{query}"),
        None => canonical,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(path_and_query).map_err(|_| PathError::BadEscape)?);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| PathError::BadEscape)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_paths_are_borrowed() {
        for path in [
            "/",
            "/v1/chat/completions",
            "/mcp/",
            "/a/b.c/~d_e-f",
            "/x;y=1",
        ] {
            assert!(matches!(canonical(path), Ok(Cow::Borrowed(p)) if p == path));
        }
    }

    #[test]
    fn normalizes_unreserved_escapes_and_hex_case() {
        assert_eq!(canonical("/%76%31/chat").unwrap(), "/v1/chat");
        assert_eq!(canonical("/a%7eb%2D").unwrap(), "/a~b-");
        assert_eq!(canonical("/a%20b%3f").unwrap(), "/a%20b%3F");
        assert_eq!(
            canonical("/mcp%2f").unwrap_err(),
            PathError::EncodedSeparator
        );
    }

    #[test]
    fn refuses_ambiguous_forms() {
        let cases = [
            ("", PathError::NotAbsolute),
            ("v1/chat", PathError::NotAbsolute),
            ("/a/%", PathError::BadEscape),
            ("/a/%4", PathError::BadEscape),
            ("/a/%G0", PathError::BadEscape),
            ("/a%2fb", PathError::EncodedSeparator),
            ("/a%5cb", PathError::EncodedSeparator),
            ("/a\\b", PathError::Backslash),
            ("/a%00b", PathError::EncodedControl),
            ("/a%0Ab", PathError::EncodedControl),
            ("/a%7f", PathError::EncodedControl),
            ("/a/./b", PathError::DotSegment),
            ("/a/../b", PathError::DotSegment),
            ("/a/..", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("/a/%2e/b", PathError::DotSegment),
            ("/a/.%2E/b", PathError::DotSegment),
            ("//a", PathError::EmptySegment),
            ("/a//b", PathError::EmptySegment),
            ("/a//", PathError::EmptySegment),
        ];
        for (path, err) in cases {
            assert_eq!(canonical(path).unwrap_err(), err, "{path}");
        }
        // Dots inside a segment are ordinary characters.
        assert!(canonical("/a/.well-known/b..c").is_ok());
    }

    #[test]
    fn request_uri_is_rewritten_and_query_kept() {
        let mut req = Request::builder()
            .uri("http://h:1/v1/chat/%63ompletions?api-version=%2F1")
            .body(())
            .unwrap();
        canonicalize_request(&mut req).unwrap();
        assert_eq!(req.uri().path(), "/v1/chat/completions");
        assert_eq!(req.uri().query(), Some("api-version=%2F1"));
        assert_eq!(req.uri().authority().unwrap().as_str(), "h:1");

        let mut bad = Request::builder().uri("/v1/../admin").body(()).unwrap();
        let rejection = canonicalize_request(&mut bad)
            .unwrap_err()
            .into_rejection("test");
        assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
        assert_eq!(rejection.reason(), "path_dot_segment");
    }

    fn decode_all(path: &str) -> Vec<u8> {
        let bytes = path.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&path[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    proptest! {
        /// A canonical path is a fixed point, decodes to the same bytes as the input, and has
        /// no segment a server could resolve to another path.
        #[test]
        fn canonical_is_stable_and_faithful(path in "/([a-zA-Z0-9./~_-]|%[0-9a-fA-F]{2}|%2[eEfF]|%5[cC]){0,24}") {
            if let Ok(c) = canonical(&path) {
                prop_assert_eq!(canonical(&c).unwrap(), c.clone());
                prop_assert_eq!(decode_all(&c), decode_all(&path));
                let decoded = decode_all(&c);
                let decoded = String::from_utf8_lossy(&decoded);
                for (n, segment) in decoded[1..].split('/').enumerate() {
                    prop_assert!(segment != "." && segment != "..");
                    prop_assert!(!segment.is_empty() || n + 1 == decoded[1..].split('/').count());
                }
                prop_assert!(!decoded.contains('\\'));
            }
        }

        /// What the one-pass check vouches for, the full reading returns as it is.
        #[test]
        fn plainly_canonical_paths_are_canonical(path in "/([a-z./%\\\\]|%2[eEfF]){0,12}") {
            if plainly_canonical(path.as_bytes()) {
                prop_assert!(matches!(read_in_full(&path), Ok(Cow::Borrowed(p)) if p == path));
            }
        }
    }
}
