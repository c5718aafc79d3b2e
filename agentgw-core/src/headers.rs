//! Header rules a proxy and every layer share.
//!
//! # Example
//!
//! ```
//! use agentgw_core::headers::strip_hop_by_hop;
//! use http::{HeaderMap, HeaderValue, header};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-hop"));
//! headers.insert("x-hop", HeaderValue::from_static("1"));
//! headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
//! headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
//! strip_hop_by_hop(&mut headers);
//! assert_eq!(headers.len(), 1);
//! assert!(headers.contains_key(header::CONTENT_TYPE));
//! ```

use http::header::{self, HeaderMap, HeaderName};

/// Removes the headers that describe one hop and are never forwarded ([`HOP_BY_HOP`], RFC 9110
/// section 7.6.1), and every header the `connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names notes which hop-by-hop headers are there (most messages carry
    // none, or only `connection: keep-alive`); only those are removed.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|hop| hop == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        strip_connection_named(headers);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// The hop-by-hop headers, `connection` first: a proxy never forwards them, and a layer that
/// builds a response from an inspected one drops them.
pub const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Whether `name` is one of the [`HOP_BY_HOP`] headers.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Removes the headers the `connection` header names.
fn strip_connection_named(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // The usual `keep-alive` and `close` name no header to remove (or one removed anyway):
        // skipping them before parsing keeps the common case from allocating.
        .filter(|token| {
            !token.eq_ignore_ascii_case("keep-alive") && !token.eq_ignore_ascii_case("close")
        })
        .filter_map(|token| HeaderName::try_from(token).ok())
        .filter(|name| !HOP_BY_HOP.contains(name))
        .collect();
    for name in named {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn every_connection_value_names_headers_to_remove() {
        let mut headers = HeaderMap::new();
        headers.append(header::CONNECTION, HeaderValue::from_static("Close, X-One"));
        headers.append(
            header::CONNECTION,
            HeaderValue::from_static(" x-two ,KEEP-ALIVE"),
        );
        headers.insert("x-one", HeaderValue::from_static("1"));
        headers.insert("x-two", HeaderValue::from_static("2"));
        headers.insert("x-three", HeaderValue::from_static("3"));
        strip_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-three"]);
    }

    #[test]
    fn each_hop_by_hop_header_alone_is_removed() {
        for name in [
            "connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "keep-alive",
            "proxy-connection",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("a/b"));
            strip_hop_by_hop(&mut headers);
            assert!(!headers.contains_key(name), "{name} was forwarded");
            assert!(headers.contains_key(header::CONTENT_TYPE));
        }
    }
}
