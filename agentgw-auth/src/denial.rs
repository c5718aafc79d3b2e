//! How the authentication layers answer a credential they refuse.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use agentgw_core::Rejection;

/// A refused request: the [`Rejection`] its client sees, and the reason it is counted and
/// logged under.
///
/// The two differ for an invalid credential: the client only learns that it was not accepted
/// (`invalid_token`, `invalid_api_key`), while `agentgateway_rejected_requests_total` and the
/// logs say why (`expired`, `invalid_signature`, `unknown_key`).
#[derive(Debug)]
pub(crate) struct Denial {
    rejection: Rejection,
    /// The detailed reason, when it is not the rejection's own.
    counted_as: Option<&'static str>,
}

impl Denial {
    /// A denial counted under the rejection's own reason.
    pub(crate) fn new(rejection: Rejection) -> Self {
        Denial {
            rejection,
            counted_as: None,
        }
    }

    /// A denial the client sees as `rejection`, counted and logged as `counted_as`.
    pub(crate) fn counted_as(rejection: Rejection, counted_as: &'static str) -> Self {
        Denial {
            rejection,
            counted_as: Some(counted_as),
        }
    }

    /// Counts, logs and renders the denial in the shape of `req` (core's
    /// [`Rejection::respond_to`], with the detailed reason in the metric and the log).
    pub(crate) fn respond_to<B>(self, req: &Request<B>) -> Response<Full<Bytes>> {
        let Denial {
            rejection,
            counted_as,
        } = self;
        let Some(counted_as) = counted_as else {
            return rejection.respond_to(req);
        };
        agentgw_core::metrics::record_rejection(rejection.layer(), counted_as);
        tracing::debug!(
            layer = rejection.layer(),
            reason = counted_as,
            status = rejection.status().as_u16(),
            "request denied"
        );
        rejection.into_response_for(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::BodyExt;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    /// The `reason` labels counted in `agentgateway_rejected_requests_total`, with their counts.
    fn counted(respond: impl FnOnce() -> Response<Full<Bytes>>) -> (Vec<(String, u64)>, Bytes) {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let response = metrics::with_local_recorder(&recorder, respond);
        let counts = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| {
                let reason = key.key().labels().find(|l| l.key() == "reason")?;
                match value {
                    DebugValue::Counter(n) => Some((reason.value().to_owned(), n)),
                    _ => None,
                }
            })
            .collect();
        let body = futures_util::FutureExt::now_or_never(response.into_body().collect())
            .unwrap()
            .unwrap()
            .to_bytes();
        (counts, body)
    }

    fn rejection() -> Rejection {
        Rejection::new(StatusCode::UNAUTHORIZED, "jwt", "invalid_token")
            .with_message("invalid token")
    }

    #[test]
    fn the_client_sees_the_rejection_and_the_metric_the_detail() {
        let req = Request::post("/v1/chat/completions").body(()).unwrap();
        let (counts, body) =
            counted(|| Denial::counted_as(rejection(), "expired").respond_to(&req));
        assert_eq!(counts, [("expired".to_owned(), 1)], "counted once, as why");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json["error"]["code"], "invalid_token",
            "the client learns no more"
        );
        assert!(!String::from_utf8_lossy(&body).contains("expired"));
    }

    #[test]
    fn a_plain_denial_is_counted_once_under_its_reason() {
        let req = Request::post("/v1/chat/completions").body(()).unwrap();
        let (counts, _) = counted(|| Denial::new(rejection()).respond_to(&req));
        assert_eq!(counts, [("invalid_token".to_owned(), 1)]);
    }
}
