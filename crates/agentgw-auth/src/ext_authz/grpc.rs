//! Envoy ext_authz over gRPC: `envoy.service.auth.v3.Authorization/Check`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{
    Address, HeaderValueOption, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
    attribute_context,
};
use http::header::COOKIE;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use agentgw_core::identity::{ClientAddr, PeerIdentity};

use super::decision::percent_encode;
use super::decision::{Allow, CheckError, Deny, HeaderOp, Verdict, denial_headers, header_pair};
use super::input::{self, BodyPrefix};

/// The metadata key of a call's deadline.
const GRPC_TIMEOUT: &str = "grpc-timeout";

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A pooled gRPC client: one HTTP/2 connection, multiplexed, reconnected on failure.
pub(crate) struct GrpcClient {
    endpoint: Endpoint,
    /// Created on first use: a channel spawns its worker on the runtime that creates it.
    channel: OnceLock<Channel>,
    context_extensions: HashMap<String, String>,
    pack_as_bytes: bool,
    /// The `grpc-timeout` every call sends, formatted once.
    grpc_timeout: Option<MetadataValue<Ascii>>,
}

impl GrpcClient {
    pub(crate) fn new(
        endpoint: Endpoint,
        context_extensions: HashMap<String, String>,
        pack_as_bytes: bool,
        timeout: Duration,
    ) -> Self {
        let mut probe = tonic::Request::new(());
        probe.set_timeout(timeout);
        GrpcClient {
            endpoint,
            channel: OnceLock::new(),
            context_extensions,
            pack_as_bytes,
            grpc_timeout: probe.metadata().get(GRPC_TIMEOUT).cloned(),
        }
    }

    pub(crate) fn uri(&self) -> &http::Uri {
        self.endpoint.uri()
    }

    pub(crate) async fn check(
        &self,
        parts: &Parts,
        body: Option<&BodyPrefix>,
        timeout: Duration,
        status_on_error: StatusCode,
    ) -> Result<Verdict, CheckError> {
        let message = check_request(parts, body, self.pack_as_bytes, &self.context_extensions);
        let mut request = tonic::Request::new(message);
        // Tells the service our deadline (`grpc-timeout`), so it can give up when we do.
        if let Some(grpc_timeout) = &self.grpc_timeout {
            request
                .metadata_mut()
                .insert(GRPC_TIMEOUT, grpc_timeout.clone());
        }
        let channel = self
            .channel
            .get_or_init(|| self.endpoint.connect_lazy())
            .clone();
        // tonic's call future is several KiB: boxed, it is not copied through every future
        // that awaits this one.
        let call = Box::pin(async move { AuthorizationClient::new(channel).check(request).await });
        match call.await {
            Ok(response) => interpret(response.into_inner(), status_on_error),
            Err(status) => Err(classify(&status, timeout)),
        }
    }
}

fn classify(status: &tonic::Status, timeout: Duration) -> CheckError {
    match status.code() {
        tonic::Code::Unavailable => CheckError::Unavailable(status.message().to_owned()),
        // tonic servers answer an expired `grpc-timeout` with CANCELLED.
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => CheckError::Timeout(timeout),
        code => CheckError::Service {
            detail: format!("gRPC {code:?}: {}", status.message()),
            response: None,
        },
    }
}

/// The `CheckRequest` for a request: method, path, host, scheme, protocol, headers (merged per
/// name, pseudo-headers included, as Envoy sends them), source address, body prefix and the
/// configured context extensions.
pub(crate) fn check_request(
    parts: &Parts,
    body: Option<&BodyPrefix>,
    pack_as_bytes: bool,
    context_extensions: &HashMap<String, String>,
) -> CheckRequest {
    let host = input::host(parts);
    let path = input::path_and_query(parts);
    let scheme = input::scheme(parts);
    let method = parts.method.as_str();
    // The pseudo-headers, every header name, and `x-envoy-auth-partial-body`.
    let mut headers = HashMap::with_capacity(parts.headers.keys_len() + 5);
    headers.insert(":authority".to_owned(), host.to_owned());
    headers.insert(":method".to_owned(), method.to_owned());
    headers.insert(":path".to_owned(), path.to_owned());
    headers.insert(":scheme".to_owned(), scheme.to_owned());
    for (name, value) in &parts.headers {
        match headers.entry(name.as_str().to_owned()) {
            Entry::Occupied(mut merged) => {
                let merged = merged.get_mut();
                merged.push_str(if name == COOKIE { "; " } else { "," });
                push_header_text(merged, value);
            }
            Entry::Vacant(slot) => {
                slot.insert(header_text(value));
            }
        }
    }
    let (body_text, raw_body) = match body {
        Some(prefix) => {
            headers.insert(
                "x-envoy-auth-partial-body".to_owned(),
                prefix.partial.to_string(),
            );
            if pack_as_bytes {
                (String::new(), prefix.bytes.to_vec())
            } else {
                (prefix.text(), Vec::new())
            }
        }
        None => (String::new(), Vec::new()),
    };
    let http = attribute_context::HttpRequest {
        id: parts
            .headers
            .get(X_REQUEST_ID)
            .map(header_text)
            .unwrap_or_default(),
        method: method.to_owned(),
        headers,
        path: path.to_owned(),
        host: host.to_owned(),
        scheme: scheme.to_owned(),
        size: input::size(parts, body),
        protocol: input::protocol(parts.version).to_owned(),
        body: body_text,
        raw_body,
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: source(parts),
            request: Some(attribute_context::Request {
                time: None,
                http: Some(http),
            }),
            context_extensions: context_extensions.clone(),
            ..Default::default()
        }),
    }
}

/// The client as Envoy describes it: its socket address and, with a verified client
/// certificate, its principal (SPIFFE ID, else first URI SAN, else subject CN).
fn source(parts: &Parts) -> Option<attribute_context::Peer> {
    let addr = parts.extensions.get::<ClientAddr>();
    let identity = parts.extensions.get::<PeerIdentity>();
    if addr.is_none() && identity.is_none() {
        return None;
    }
    let address = addr.map(|ClientAddr(addr)| Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            protocol: socket_address::Protocol::Tcp as i32,
            address: addr.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                addr.port(),
            ))),
            ..Default::default()
        })),
    });
    let principal = identity
        .and_then(|id| {
            id.spiffe_id
                .clone()
                .or_else(|| id.uris.first().cloned())
                .or_else(|| id.common_name.clone())
        })
        .unwrap_or_default();
    Some(attribute_context::Peer {
        address,
        principal,
        ..Default::default()
    })
}

/// Header text as Envoy sends it: UTF-8, with bytes that are not replaced by `!`.
fn header_text(value: &HeaderValue) -> String {
    let mut text = String::with_capacity(value.len());
    push_header_text(&mut text, value);
    text
}

fn push_header_text(text: &mut String, value: &HeaderValue) {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(valid) => text.push_str(valid),
        Err(_) => text.extend(
            value
                .as_bytes()
                .iter()
                .map(|&b| if b.is_ascii() { char::from(b) } else { '!' }),
        ),
    }
}

/// Turns a `CheckResponse` into a decision.
///
/// `status.code == OK` allows, applying the `ok_response` changes; any other code denies with
/// the `denied_response` (403 and the protocol-shaped error when absent). An `error_response`
/// is a failure of the service (subject to `failureModeAllow`). A response without a status is
/// malformed: it is neither an allow nor a denial.
pub(crate) fn interpret(
    response: CheckResponse,
    status_on_error: StatusCode,
) -> Result<Verdict, CheckError> {
    let status = response
        .status
        .ok_or_else(|| CheckError::Malformed("CheckResponse has no status".to_owned()))?;
    if status.code == tonic::Code::Ok as i32 {
        return Ok(Verdict::Allow(match response.http_response {
            Some(HttpResponse::OkResponse(ok)) => Allow::shared(allow(ok)?),
            _ => Allow::unchanged(),
        }));
    }
    match response.http_response {
        Some(HttpResponse::ErrorResponse(error)) => Err(CheckError::Service {
            detail: format!(
                "error_response with status code {} ({})",
                status.code, status.message
            ),
            response: Some(Box::new(deny(error, status_on_error)?)),
        }),
        Some(HttpResponse::DeniedResponse(denied)) => Ok(Verdict::Deny(Arc::new(deny(
            denied,
            StatusCode::FORBIDDEN,
        )?))),
        _ => Ok(Verdict::Deny(Arc::new(Deny {
            status: StatusCode::FORBIDDEN,
            headers: Vec::new(),
            content_type: None,
            body: Bytes::new(),
        }))),
    }
}

fn allow(ok: OkHttpResponse) -> Result<Allow, CheckError> {
    let remove = ok
        .headers_to_remove
        .iter()
        .map(|name| header_pair(name, b"").map(|(name, _)| name))
        .collect::<Result<_, _>>()?;
    Ok(Allow {
        remove,
        upstream: header_ops(ok.headers)?,
        response: header_ops(ok.response_headers_to_add)?,
        query_set: ok
            .query_parameters_to_set
            .iter()
            .map(|p| (percent_encode(&p.key), percent_encode(&p.value)))
            .collect(),
        query_remove: ok.query_parameters_to_remove,
    })
}

fn deny(denied: DeniedHttpResponse, default_status: StatusCode) -> Result<Deny, CheckError> {
    let status = denied
        .status
        .and_then(|s| u16::try_from(s.code).ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(default_status);
    let mut headers = HeaderMap::new();
    for op in header_ops(denied.headers)? {
        op.apply(&mut headers);
    }
    let (headers, content_type) = denial_headers(
        headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    Ok(Deny {
        status,
        headers,
        content_type,
        body: Bytes::from(denied.body),
    })
}

/// The header changes of a response. `append` (when set) decides between appending and
/// replacing; otherwise `append_action` does, its default meaning "replace" as Envoy documents
/// for these messages ("append defaults to false").
fn header_ops(options: Vec<HeaderValueOption>) -> Result<Vec<HeaderOp>, CheckError> {
    options
        .into_iter()
        .map(|option| {
            let header = option.header.ok_or_else(|| {
                CheckError::Malformed("HeaderValueOption without a header".to_owned())
            })?;
            let value = if header.raw_value.is_empty() {
                header.value.as_bytes()
            } else {
                &header.raw_value
            };
            let (name, value) = header_pair(&header.key, value)?;
            let action = HeaderAppendAction::try_from(option.append_action).map_err(|_| {
                CheckError::Malformed(format!("unknown append_action {}", option.append_action))
            })?;
            // Deprecated in favour of `append_action`, but services still send it, and when
            // they do it is what they mean.
            #[allow(deprecated)]
            let append = option.append;
            Ok(match (append, action) {
                (Some(append), _) if append.value => HeaderOp::Append(name, value),
                (Some(_), _) => HeaderOp::Set(name, value),
                (None, HeaderAppendAction::AddIfAbsent) => HeaderOp::AddIfAbsent(name, value),
                (None, HeaderAppendAction::OverwriteIfExists) => {
                    HeaderOp::OverwriteIfExists(name, value)
                }
                (
                    None,
                    HeaderAppendAction::AppendIfExistsOrAdd
                    | HeaderAppendAction::OverwriteIfExistsOrAdd,
                ) => HeaderOp::Set(name, value),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{HeaderValue as PbHeader, QueryParameter};
    use envoy_types::pb::envoy::r#type::v3::HttpStatus;
    use envoy_types::pb::google::protobuf::BoolValue;
    use envoy_types::pb::google::rpc::Status as RpcStatus;

    fn option(key: &str, value: &str) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(PbHeader {
                key: key.into(),
                value: value.into(),
                raw_value: Vec::new(),
            }),
            ..Default::default()
        }
    }

    fn status(code: tonic::Code) -> Option<RpcStatus> {
        Some(RpcStatus {
            code: code as i32,
            ..Default::default()
        })
    }

    #[test]
    fn request_carries_what_envoy_sends() {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("/v1/chat/completions?stream=true")
            .header("host", "llm.example")
            .header("x-request-id", "req-7")
            .header("x-multi", "a")
            .header("x-multi", "b")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("x-bin", HeaderValue::from_bytes(b"caf\xe9").unwrap())
            .extension(ClientAddr("10.0.0.9:4321".parse().unwrap()))
            .extension(PeerIdentity {
                spiffe_id: Some("spiffe://corp/agent".into()),
                ..Default::default()
            })
            .extension(agentgw_core::Payload::from_static(b"{\"model\":\"gpt\"}"))
            .body(())
            .unwrap()
            .into_parts();
        let ext = HashMap::from([("route".to_owned(), "openai".to_owned())]);
        let body = BodyPrefix::of(&parts, 5);
        let req = check_request(&parts, body.as_ref(), false, &ext);
        let attrs = req.attributes.unwrap();
        assert_eq!(attrs.context_extensions, ext);
        let peer = attrs.source.unwrap();
        assert_eq!(peer.principal, "spiffe://corp/agent");
        let Some(address::Address::SocketAddress(sock)) = peer.address.unwrap().address else {
            panic!("socket address expected");
        };
        assert_eq!(sock.address, "10.0.0.9");
        assert_eq!(
            sock.port_specifier,
            Some(socket_address::PortSpecifier::PortValue(4321))
        );
        let http = attrs.request.unwrap().http.unwrap();
        assert_eq!(http.method, "POST");
        assert_eq!(http.path, "/v1/chat/completions?stream=true");
        assert_eq!(http.host, "llm.example");
        assert_eq!(http.id, "req-7");
        assert_eq!(http.protocol, "HTTP/1.1");
        assert_eq!(http.size, 15);
        assert_eq!(http.body, "{\"mod");
        assert!(http.raw_body.is_empty());
        assert_eq!(http.headers["x-multi"], "a,b");
        assert_eq!(http.headers["cookie"], "a=1; b=2");
        assert_eq!(http.headers["x-bin"], "caf!");
        assert_eq!(http.headers[":path"], "/v1/chat/completions?stream=true");
        assert_eq!(http.headers[":authority"], "llm.example");
        assert_eq!(http.headers[":method"], "POST");
        assert_eq!(http.headers["x-envoy-auth-partial-body"], "true");

        let packed = check_request(&parts, body.as_ref(), true, &HashMap::new());
        let http = packed.attributes.unwrap().request.unwrap().http.unwrap();
        assert_eq!(http.raw_body, b"{\"mod");
        assert!(http.body.is_empty());
    }

    #[test]
    fn without_body_or_client_nothing_is_invented() {
        let (parts, ()) = http::Request::builder()
            .uri("/x")
            .body(())
            .unwrap()
            .into_parts();
        let attrs = check_request(&parts, None, false, &HashMap::new())
            .attributes
            .unwrap();
        assert!(attrs.source.is_none());
        let http = attrs.request.unwrap().http.unwrap();
        assert!(!http.headers.contains_key("x-envoy-auth-partial-body"));
        assert_eq!(http.size, -1);
    }

    #[test]
    fn ok_response_changes_are_decoded() {
        let mut appended = option("x-append", "2");
        #[allow(deprecated)]
        {
            appended.append = Some(BoolValue { value: true });
        }
        let mut if_absent = option("x-if-absent", "3");
        if_absent.append_action = HeaderAppendAction::AddIfAbsent as i32;
        let response = CheckResponse {
            status: status(tonic::Code::Ok),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![option("X-User", "alice"), appended, if_absent],
                headers_to_remove: vec!["authorization".into()],
                response_headers_to_add: vec![option("x-ratelimit", "9")],
                query_parameters_to_set: vec![QueryParameter {
                    key: "k".into(),
                    value: "v w".into(),
                }],
                query_parameters_to_remove: vec!["token".into()],
                ..Default::default()
            })),
            ..Default::default()
        };
        let Verdict::Allow(allow) = interpret(response, StatusCode::FORBIDDEN).unwrap() else {
            panic!("OK must allow");
        };
        let hv = HeaderValue::from_static;
        assert_eq!(
            allow.upstream,
            vec![
                HeaderOp::Set("x-user".parse().unwrap(), hv("alice")),
                HeaderOp::Append("x-append".parse().unwrap(), hv("2")),
                HeaderOp::AddIfAbsent("x-if-absent".parse().unwrap(), hv("3")),
            ]
        );
        assert_eq!(allow.remove, vec![http::header::AUTHORIZATION]);
        assert_eq!(
            allow.response,
            vec![HeaderOp::Set("x-ratelimit".parse().unwrap(), hv("9"))]
        );
        assert_eq!(allow.query_set, vec![("k".to_owned(), "v%20w".to_owned())]);
        assert_eq!(allow.query_remove, vec!["token".to_owned()]);
    }

    #[test]
    fn denied_response_is_kept_as_it_came() {
        let response = CheckResponse {
            status: status(tonic::Code::PermissionDenied),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus { code: 451 }),
                headers: vec![
                    option("content-type", "text/plain"),
                    option("x-reason", "geo"),
                ],
                body: "not here".into(),
            })),
            ..Default::default()
        };
        let Verdict::Deny(deny) = interpret(response, StatusCode::FORBIDDEN).unwrap() else {
            panic!("non-OK must deny");
        };
        assert_eq!(deny.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
        assert_eq!(
            deny.content_type,
            Some(HeaderValue::from_static("text/plain"))
        );
        assert_eq!(
            deny.headers,
            vec![("x-reason".parse().unwrap(), HeaderValue::from_static("geo"))]
        );
        assert_eq!(&deny.body[..], b"not here");

        let bare = CheckResponse {
            status: status(tonic::Code::Unauthenticated),
            ..Default::default()
        };
        let Verdict::Deny(deny) = interpret(bare, StatusCode::FORBIDDEN).unwrap() else {
            panic!("non-OK must deny");
        };
        assert_eq!(deny.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn unusable_responses_are_failures() {
        let missing_status = CheckResponse::default();
        assert!(matches!(
            interpret(missing_status, StatusCode::FORBIDDEN),
            Err(CheckError::Malformed(_))
        ));
        let bad_header = CheckResponse {
            status: status(tonic::Code::Ok),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![option("bad header", "x")],
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(matches!(
            interpret(bad_header, StatusCode::FORBIDDEN),
            Err(CheckError::Malformed(_))
        ));
        let error = CheckResponse {
            status: status(tonic::Code::Internal),
            http_response: Some(HttpResponse::ErrorResponse(DeniedHttpResponse {
                body: "policy engine down".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let Err(CheckError::Service {
            response: Some(deny),
            ..
        }) = interpret(error, StatusCode::SERVICE_UNAVAILABLE)
        else {
            panic!("error_response must be a service failure");
        };
        assert_eq!(deny.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(&deny.body[..], b"policy engine down");
    }

    #[test]
    fn transport_errors_are_classified() {
        let t = Duration::from_millis(5);
        assert_eq!(
            classify(&tonic::Status::unavailable("down"), t).reason(),
            "unavailable"
        );
        assert_eq!(
            classify(&tonic::Status::deadline_exceeded("late"), t).reason(),
            "timeout"
        );
        assert_eq!(
            classify(&tonic::Status::cancelled("Timeout expired"), t).reason(),
            "timeout"
        );
        assert_eq!(
            classify(&tonic::Status::internal("decode"), t).reason(),
            "error"
        );
    }
}
