//! What an authorization service decided, independent of the protocol it was said in, and how a
//! decision changes the request, the response or becomes a denial.

use std::sync::{Arc, LazyLock};

use agentgw_core::headers::is_hop_by_hop;
use agentgw_core::percent::decode_query_component;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};

use agentgw_core::Rejection;

use super::LAYER;

/// A decision of the service: cheap to clone, so it can be cached and shared.
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    Allow(Arc<Allow>),
    Deny(Arc<Deny>),
}

/// How an allowed request and its response are changed.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Allow {
    /// Headers removed from the upstream request (before `upstream` is applied).
    pub(crate) remove: Vec<HeaderName>,
    /// Header changes on the upstream request.
    pub(crate) upstream: Vec<HeaderOp>,
    /// Header changes on the response to the client.
    pub(crate) response: Vec<HeaderOp>,
    /// Query parameters set on the upstream request (already percent-encoded `key`, `value`).
    pub(crate) query_set: Vec<(String, String)>,
    /// Query parameters removed from the upstream request (decoded names).
    pub(crate) query_remove: Vec<String>,
}

/// The response the client gets when the service denies (or fails with a response of its own).
#[derive(Debug, PartialEq)]
pub(crate) struct Deny {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) content_type: Option<HeaderValue>,
    pub(crate) body: Bytes,
}

/// One header change, with Envoy's `HeaderAppendAction` meaning.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HeaderOp {
    /// Replace every value (or add).
    Set(HeaderName, HeaderValue),
    /// Add one more value.
    Append(HeaderName, HeaderValue),
    /// Add only when the header is absent.
    AddIfAbsent(HeaderName, HeaderValue),
    /// Replace only when the header is present.
    OverwriteIfExists(HeaderName, HeaderValue),
}

impl HeaderOp {
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        match self {
            HeaderOp::Set(name, value) => {
                headers.insert(name.clone(), value.clone());
            }
            HeaderOp::Append(name, value) => {
                headers.append(name.clone(), value.clone());
            }
            HeaderOp::AddIfAbsent(name, value) => {
                if !headers.contains_key(name) {
                    headers.insert(name.clone(), value.clone());
                }
            }
            HeaderOp::OverwriteIfExists(name, value) => {
                if headers.contains_key(name) {
                    headers.insert(name.clone(), value.clone());
                }
            }
        }
    }
}

impl Allow {
    /// The allow that changes nothing, shared: most allows are this one, and they cost no
    /// allocation.
    pub(crate) fn unchanged() -> Arc<Allow> {
        static UNCHANGED: LazyLock<Arc<Allow>> = LazyLock::new(|| Arc::new(Allow::default()));
        Arc::clone(&UNCHANGED)
    }

    /// `allow` ready to be shared ([`Allow::unchanged`] when it changes nothing).
    pub(crate) fn shared(allow: Allow) -> Arc<Allow> {
        if allow == Allow::default() {
            Allow::unchanged()
        } else {
            Arc::new(allow)
        }
    }

    /// Applies the request changes: the query, then header removals, then header changes. On
    /// error the request is left as it was.
    pub(crate) fn apply_to_request(
        &self,
        parts: &mut http::request::Parts,
    ) -> Result<(), CheckError> {
        if !self.query_set.is_empty() || !self.query_remove.is_empty() {
            parts.uri = rewrite_query(&parts.uri, &self.query_set, &self.query_remove)?;
        }
        for name in &self.remove {
            // Removing `host` would make the request malformed; Envoy ignores it too.
            if name != HOST {
                parts.headers.remove(name);
            }
        }
        for op in &self.upstream {
            op.apply(&mut parts.headers);
        }
        Ok(())
    }
}

impl Deny {
    /// The denial the service described, as a [`Rejection`] with `reason`: its status and
    /// headers, and its body as it came for a client of no known protocol (core's
    /// [`with_raw_body`](Rejection::with_raw_body)). LLM and MCP clients, and every client of a
    /// denial without a body, get the protocol-shaped error of the route, which they understand.
    pub(crate) fn rejection(&self, reason: &'static str) -> Rejection {
        let mut rejection = Rejection::new(self.status, LAYER, reason);
        for (name, value) in &self.headers {
            rejection = rejection.with_header(name.clone(), value.clone());
        }
        if !self.body.is_empty() {
            let content_type = self
                .content_type
                .clone()
                .unwrap_or_else(|| HeaderValue::from_static("text/plain; charset=utf-8"));
            rejection = rejection.with_raw_body(content_type, Bytes::clone(&self.body));
        }
        rejection
    }
}

/// Why a check produced no decision. Each variant is one `reason` label value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    #[error("authorization service did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("authorization service unavailable: {0}")]
    Unavailable(String),
    #[error("malformed authorization response: {0}")]
    Malformed(String),
    /// The service reported an error; it may carry a response to send when failing closed.
    #[error("authorization service error: {detail}")]
    Service {
        detail: String,
        response: Option<Box<Deny>>,
    },
}

impl CheckError {
    /// The metric `reason` label.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            CheckError::Timeout(_) => "timeout",
            CheckError::Unavailable(_) => "unavailable",
            CheckError::Malformed(_) => "malformed_response",
            CheckError::Service { .. } => "error",
        }
    }
}

/// Parses a header name and value sent by the service; a bad one makes the response malformed.
pub(crate) fn header_pair(
    name: &str,
    value: &[u8],
) -> Result<(HeaderName, HeaderValue), CheckError> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| CheckError::Malformed(format!("invalid header name {name:?}")))?;
    let value = HeaderValue::from_bytes(value)
        .map_err(|_| CheckError::Malformed(format!("invalid value for header {name}")))?;
    Ok((name, value))
}

/// Splits the content type out of denial headers and drops the ones that describe the service's
/// own connection or framing (the response we send has its own).
pub(crate) fn denial_headers(
    headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
) -> (Vec<(HeaderName, HeaderValue)>, Option<HeaderValue>) {
    let mut kept = Vec::new();
    let mut content_type = None;
    for (name, value) in headers {
        if name == CONTENT_TYPE {
            content_type = Some(value);
        } else if !is_connection_header(&name) {
            kept.push((name, value));
        }
    }
    (kept, content_type)
}

/// Headers of the service's answer that describe its own message and never reach the client:
/// the hop-by-hop headers ([`agentgw_core::headers::HOP_BY_HOP`]) and, because the denial we
/// send is a new message with its own body and target, `content-length` and `host`.
pub(crate) fn is_connection_header(name: &HeaderName) -> bool {
    is_hop_by_hop(name) || name == CONTENT_LENGTH || name == HOST
}

/// Sets and removes query parameters. Existing parameters are compared by their decoded name;
/// `set` replaces every occurrence of a name (or appends it).
fn rewrite_query(
    uri: &Uri,
    set: &[(String, String)],
    remove: &[String],
) -> Result<Uri, CheckError> {
    let path = uri.path();
    let mut pairs: Vec<&str> = uri
        .query()
        .map(|q| q.split('&').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    pairs.retain(|pair| {
        let name = decode_query_component(pair.split('=').next().unwrap_or(""));
        !remove.iter().any(|r| *r == name)
            && !set.iter().any(|(k, _)| decode_query_component(k) == name)
    });
    let mut query = pairs.join("&");
    for (key, value) in set {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(key);
        query.push('=');
        query.push_str(value);
    }
    let path_and_query = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let path_and_query = PathAndQuery::try_from(path_and_query).map_err(|e| {
        CheckError::Malformed(format!("query rewrite produced an invalid path: {e}"))
    })?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts)
        .map_err(|e| CheckError::Malformed(format!("query rewrite produced an invalid URI: {e}")))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hv(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn header_ops_follow_append_actions() {
        let name = HeaderName::from_static("x-a");
        let mut headers = HeaderMap::new();
        HeaderOp::OverwriteIfExists(name.clone(), hv("0")).apply(&mut headers);
        assert!(
            headers.get(&name).is_none(),
            "overwrite-if-exists must not add"
        );
        HeaderOp::AddIfAbsent(name.clone(), hv("1")).apply(&mut headers);
        HeaderOp::AddIfAbsent(name.clone(), hv("2")).apply(&mut headers);
        assert_eq!(headers.get_all(&name).iter().collect::<Vec<_>>(), ["1"]);
        HeaderOp::Append(name.clone(), hv("3")).apply(&mut headers);
        assert_eq!(
            headers.get_all(&name).iter().collect::<Vec<_>>(),
            ["1", "3"]
        );
        HeaderOp::Set(name.clone(), hv("4")).apply(&mut headers);
        assert_eq!(headers.get_all(&name).iter().collect::<Vec<_>>(), ["4"]);
        HeaderOp::OverwriteIfExists(name.clone(), hv("5")).apply(&mut headers);
        assert_eq!(headers.get_all(&name).iter().collect::<Vec<_>>(), ["5"]);
    }

    #[test]
    fn allow_removes_then_sets_and_never_removes_host() {
        let (mut parts, ()) = http::Request::builder()
            .uri("/v1/chat?x=1")
            .header("host", "api")
            .header("authorization", "Bearer t")
            .header("x-user", "spoofed")
            .body(())
            .unwrap()
            .into_parts();
        let allow = Allow {
            remove: vec![
                HOST,
                HeaderName::from_static("authorization"),
                HeaderName::from_static("x-user"),
            ],
            upstream: vec![HeaderOp::Set(
                HeaderName::from_static("x-user"),
                hv("alice"),
            )],
            ..Allow::default()
        };
        allow.apply_to_request(&mut parts).unwrap();
        assert_eq!(parts.headers["host"], "api");
        assert!(parts.headers.get("authorization").is_none());
        assert_eq!(parts.headers["x-user"], "alice");
        assert_eq!(
            parts.uri, "/v1/chat?x=1",
            "no query change asked, none made"
        );
    }

    #[test]
    fn query_parameters_are_set_and_removed() {
        let uri: Uri = "http://api/v1/x?token=s3cr%65t&keep=1&a+b=2&mode=old"
            .parse()
            .unwrap();
        let set = vec![(percent_encode("mode"), percent_encode("new value&more"))];
        let remove = vec!["token".to_owned(), "a b".to_owned()];
        let uri = rewrite_query(&uri, &set, &remove).unwrap();
        assert_eq!(uri, "http://api/v1/x?keep=1&mode=new%20value%26more");
        let only_removed = rewrite_query(&uri, &[], &["keep".into(), "mode".into()]).unwrap();
        assert_eq!(only_removed, "http://api/v1/x");
    }

    #[test]
    fn denial_headers_split_content_type_and_drop_framing() {
        let (kept, content_type) = denial_headers([
            (CONTENT_TYPE, hv("text/html")),
            (http::header::CONTENT_LENGTH, hv("5")),
            (http::header::CONNECTION, hv("close")),
            (http::header::TRANSFER_ENCODING, hv("chunked")),
            (http::header::PROXY_AUTHENTICATE, hv("Basic")),
            (HeaderName::from_static("keep-alive"), hv("timeout=5")),
            (HOST, hv("authz")),
            (http::header::WWW_AUTHENTICATE, hv("Bearer")),
        ]);
        assert_eq!(content_type, Some(hv("text/html")));
        assert_eq!(kept, vec![(http::header::WWW_AUTHENTICATE, hv("Bearer"))]);
    }

    #[test]
    fn bad_header_from_service_is_malformed() {
        assert!(matches!(
            header_pair("bad name", b"v"),
            Err(CheckError::Malformed(_))
        ));
        assert!(matches!(
            header_pair("x-ok", b"line\nbreak"),
            Err(CheckError::Malformed(_))
        ));
        let (name, value) = header_pair("X-Upper", b"v").unwrap();
        assert_eq!(name, "x-upper");
        assert_eq!(value, "v");
    }

    #[test]
    fn rejection_relays_the_denial() {
        use agentgw_core::ResponseShape;
        let deny = Deny {
            status: StatusCode::UNAUTHORIZED,
            headers: vec![(http::header::WWW_AUTHENTICATE, hv("Basic"))],
            content_type: None,
            body: Bytes::from_static(b"who are you"),
        };
        // A client of no known protocol gets the service's body as it came.
        let res = deny
            .rejection("denied")
            .into_response(&ResponseShape::Plain);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[http::header::WWW_AUTHENTICATE], "Basic");
        assert_eq!(res.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        // An LLM client gets its protocol's error, with the service's status and headers.
        let res = deny
            .rejection("denied")
            .into_response(&ResponseShape::OpenAi);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[http::header::WWW_AUTHENTICATE], "Basic");
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        let empty = Deny {
            body: Bytes::new(),
            ..deny
        };
        let res = empty
            .rejection("denied")
            .into_response(&ResponseShape::Plain);
        assert_eq!(
            res.headers()[CONTENT_TYPE],
            "application/json",
            "protocol-shaped error"
        );
    }

    proptest! {
        #[test]
        fn encoded_text_decodes_back(text in ".{0,40}") {
            let encoded = percent_encode(&text);
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
            prop_assert_eq!(decode_query_component(&encoded), text);
        }

        #[test]
        fn any_set_value_yields_a_valid_uri(key in ".{1,10}", value in ".{0,20}") {
            let uri: Uri = "/p?a=1".parse().unwrap();
            let uri = rewrite_query(&uri, &[(percent_encode(&key), percent_encode(&value))], &[]).unwrap();
            let query = uri.query().unwrap().to_owned();
            let expected = format!("{}={}", percent_encode(&key), percent_encode(&value));
            prop_assert!(query.ends_with(&expected));
        }
    }
}
