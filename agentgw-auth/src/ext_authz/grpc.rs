//! Envoy ext_authz over gRPC: `envoy.service.auth.v3.Authorization/Check`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{BufMut as _, Bytes};
use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderMap, StatusCode};
use prost::Message as _;
use tonic::GrpcMethod;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::decision::percent_encode;
use super::decision::{Allow, CheckError, Deny, HeaderOp, Verdict, denial_headers, header_pair};
use super::input::BodyPrefix;
use super::wire::CheckEncoder;

/// The metadata key of a call's deadline.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The gRPC method of a check.
const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// A pooled gRPC client: one HTTP/2 connection, multiplexed, reconnected on failure.
pub(crate) struct GrpcClient {
    endpoint: Endpoint,
    /// Created on first use: a channel spawns its worker on the runtime that creates it.
    channel: OnceLock<Channel>,
    /// Writes each call's `CheckRequest` (context extensions encoded once).
    encoder: CheckEncoder,
    /// The `grpc-timeout` every call sends, formatted once.
    grpc_timeout: Option<MetadataValue<Ascii>>,
}

impl GrpcClient {
    pub(crate) fn new(
        endpoint: Endpoint,
        context_extensions: &HashMap<String, String>,
        pack_as_bytes: bool,
        timeout: Duration,
    ) -> Self {
        let mut probe = tonic::Request::new(());
        probe.set_timeout(timeout);
        GrpcClient {
            endpoint,
            channel: OnceLock::new(),
            encoder: CheckEncoder::new(context_extensions, pack_as_bytes),
            grpc_timeout: probe.metadata().get(GRPC_TIMEOUT).cloned(),
        }
    }

    pub(crate) fn uri(&self) -> &http::Uri {
        self.endpoint.uri()
    }

    /// `Authorization/Check`, as the generated `AuthorizationClient` makes it, with the request
    /// message written straight from `parts` ([`CheckEncoder`]).
    pub(crate) async fn check(
        &self,
        parts: &Parts,
        body: Option<&BodyPrefix>,
        timeout: Duration,
        status_on_error: StatusCode,
    ) -> Result<Verdict, CheckError> {
        let mut request = tonic::Request::new(self.encoder.encode(parts, body));
        // Tells the service our deadline (`grpc-timeout`), so it can give up when we do.
        if let Some(grpc_timeout) = &self.grpc_timeout {
            request
                .metadata_mut()
                .insert(GRPC_TIMEOUT, grpc_timeout.clone());
        }
        request.extensions_mut().insert(GrpcMethod::new(
            "envoy.service.auth.v3.Authorization",
            "Check",
        ));
        let channel = self
            .channel
            .get_or_init(|| self.endpoint.connect_lazy())
            .clone();
        // tonic's call future is several KiB: boxed, it is not copied through every future
        // that awaits this one.
        let call = Box::pin(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready()
                .await
                .map_err(|err| tonic::Status::unknown(format!("Service was not ready: {err}")))?;
            grpc.unary(request, PathAndQuery::from_static(CHECK_PATH), CheckCodec)
                .await
        });
        match call.await {
            Ok(response) => interpret(response.into_inner(), status_on_error),
            Err(status) => Err(classify(&status, timeout)),
        }
    }
}

/// Sends the encoded `CheckRequest` as it is; decodes the `CheckResponse` with prost.
#[derive(Debug, Clone, Copy)]
struct CheckCodec;

impl Codec for CheckCodec {
    type Encode = Bytes;
    type Decode = CheckResponse;
    type Encoder = CheckCodec;
    type Decoder = CheckCodec;

    fn encoder(&mut self) -> CheckCodec {
        CheckCodec
    }

    fn decoder(&mut self) -> CheckCodec {
        CheckCodec
    }
}

impl Encoder for CheckCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for CheckCodec {
    type Item = CheckResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<CheckResponse>, tonic::Status> {
        // As tonic's prost codec reports it.
        CheckResponse::decode(src)
            .map(Some)
            .map_err(|err| tonic::Status::internal(err.to_string()))
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
    use http::HeaderValue;

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
