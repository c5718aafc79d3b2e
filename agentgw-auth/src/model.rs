//! The backend's model: [`BackendModelLayer`] pins the `model` of every LLM request to the one
//! the backend is for, or refuses models outside an allowed list.
//!
//! Seed 000's `Backend` names the model next to the provider's credential
//! (`spec.ai.llm.openai.model: "gpt-4"`): the client may ask for any model, the gateway sends
//! the backend's. In the example gateway:
//!
//! ```yaml
//! backend:
//!   url: https://api.openai.com/v1
//!   model: gpt-4                   # every request's `model` becomes gpt-4
//! # or
//!   allowedModels: [gpt-4o, gpt-4o-mini]   # any other `model` is a 403 model_not_allowed
//! ```
//!
//! The layer reads the body through [`agentgw_core::body::buffer_request`] (bounded, decoded,
//! strict JSON, cached as the request's [`Payload`]), so it must run *before* the layers that
//! inspect the body: with the layer outermost, authentication, CEL (`request.body.model`) and the
//! guards see the model the upstream will receive, never the one the client wrote. A pinned
//! request whose `model` is already the backend's is forwarded byte for byte; otherwise the body
//! is re-serialized once with the new `model` (and `content-length` set), and the parsed value is
//! handed on with it, so nothing parses it again.
//!
//! The model is the top-level `model` field, as in OpenAI chat, completions and Responses and
//! Anthropic messages. A body that is not a JSON object is refused (400 `model_missing` with a
//! pin, 403 `model_not_allowed` with a list), and so is a request without a string `model`
//! under an allowed list: the layer fails closed.
//!
//! # Example
//!
//! ```
//! use agentgw_auth::model::BackendModelLayer;
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The upstream answers with the model it was asked for.
//! let app = Router::new()
//!     .route("/v1/chat/completions", post(|body: String| async move {
//!         let json: serde_json::Value = serde_json::from_str(&body).unwrap();
//!         json["model"].as_str().unwrap().to_owned()
//!     }))
//!     .layer(BackendModelLayer::pin("gpt-4")?);
//!
//! let request = Request::post("/v1/chat/completions")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"model":"gpt-3.5-turbo","messages":[]}"#))?;
//! let response = app.clone().oneshot(request).await?;
//! let body = axum::body::to_bytes(response.into_body(), 1024).await?;
//! assert_eq!(body, "gpt-4");
//!
//! let app = Router::new()
//!     .route("/v1/chat/completions", post(|| async { "ok" }))
//!     .layer(BackendModelLayer::allow(["gpt-4o", "gpt-4o-mini"])?);
//! let request = Request::post("/v1/chat/completions")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"model":"o1","messages":[]}"#))?;
//! assert_eq!(app.oneshot(request).await?.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use agentgw_core::body::{BodyLimit, RequestBody, ResponseBody, buffer_request, replace_payload};
use agentgw_core::payload::Payload;
use agentgw_core::{BoxError, Rejection, ResponseShape};

use crate::Error;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;

/// The layer name on rejections and in metrics.
const LAYER: &str = "backend_model";

/// The configuration of a [`BackendModelLayer`]: exactly one of the two fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendModelConfig {
    /// Every request's `model` becomes this one.
    #[serde(default)]
    pub model: Option<String>,
    /// The models a request may name; any other is a 403 `model_not_allowed`.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
}

impl BackendModelConfig {
    /// Sets [`model`](Self::model).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Sets [`allowed_models`](Self::allowed_models).
    pub fn allowed_models<I>(mut self, models: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.allowed_models = Some(models.into_iter().map(Into::into).collect());
        self
    }
}

#[derive(Debug)]
enum Rule {
    Pin(String),
    Allow(Vec<String>),
}

/// Pins or checks the `model` of requests; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct BackendModelLayer {
    rule: Arc<Rule>,
    limit: BodyLimit,
}

impl BackendModelLayer {
    /// Builds the layer of `config`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the field: both fields or neither, an empty model name, an
    /// empty list.
    pub fn from_config(config: &BackendModelConfig) -> Result<Self, Error> {
        match (&config.model, &config.allowed_models) {
            (Some(_), Some(_)) => Err(Error::invalid(
                "allowedModels",
                "the backend pins its model: an allowed list would never apply",
            )),
            (None, None) => Err(Error::invalid("model", "give model or allowedModels")),
            (Some(model), None) if model.is_empty() => {
                Err(Error::invalid("model", "a model name cannot be empty"))
            }
            (Some(model), None) => Ok(Self::new(Rule::Pin(model.clone()))),
            (None, Some(models)) if models.is_empty() => Err(Error::invalid(
                "allowedModels",
                "the list is empty: every request would be refused",
            )),
            (None, Some(models)) => match models.iter().position(String::is_empty) {
                Some(index) => Err(Error::invalid(
                    format!("allowedModels[{index}]"),
                    "a model name cannot be empty",
                )),
                None => Ok(Self::new(Rule::Allow(models.clone()))),
            },
        }
    }

    /// Every request's `model` becomes `model`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an empty name.
    pub fn pin(model: impl Into<String>) -> Result<Self, Error> {
        Self::from_config(&BackendModelConfig::default().model(model))
    }

    /// Requests for a model outside `models` are refused with 403 `model_not_allowed`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an empty list or an empty name in it.
    pub fn allow<I>(models: I) -> Result<Self, Error>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::from_config(&BackendModelConfig::default().allowed_models(models))
    }

    fn new(rule: Rule) -> Self {
        BackendModelLayer {
            rule: Arc::new(rule),
            limit: BodyLimit::default(),
        }
    }

    /// The largest body read (413 above it); [`BodyLimit::default`] otherwise.
    pub fn body_limit(mut self, limit: BodyLimit) -> Self {
        self.limit = limit;
        self
    }
}

impl<S> Layer<S> for BackendModelLayer {
    type Service = BackendModelService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BackendModelService {
            inner,
            rule: Arc::clone(&self.rule),
            limit: self.limit,
        }
    }
}

/// The service of [`BackendModelLayer`].
#[derive(Debug, Clone)]
pub struct BackendModelService<S> {
    inner: S,
    rule: Arc<Rule>,
    limit: BodyLimit,
}

/// The response body of a [`BackendModelService`]: the inner service's, or a refusal's.
pub type ModelResponseBody<RB> = ResponseBody<RB, agentgw_core::body::NoTransform>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> Service<Request<B>> for BackendModelService<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ModelResponseBody<RB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The body is read first: use the instance that was polled ready, leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let rule = Arc::clone(&self.rule);
        let limit = self.limit;
        Box::pin(async move {
            let shape = ResponseShape::for_request(&req);
            let mut req = match buffer_request(req, limit).await {
                Ok(req) => req,
                Err(rejection) => return Ok(refuse(rejection, &shape)),
            };
            if let Some(rejection) = apply(&rule, &mut req) {
                tracing::debug!(reason = rejection.reason(), "model refused");
                return Ok(refuse(rejection, &shape));
            }
            let response = inner.call(req).await?;
            Ok(response.map(ResponseBody::inner))
        })
    }
}

/// Counts and renders a refusal.
fn refuse<RB>(rejection: Rejection, shape: &ResponseShape) -> Response<ModelResponseBody<RB>> {
    rejection.record();
    rejection.into_response(shape).map(ResponseBody::from)
}

/// Pins or checks the model of a buffered request; the refusal, if any.
fn apply<B>(rule: &Rule, req: &mut Request<RequestBody<B>>) -> Option<Rejection> {
    let Some(payload) = req.extensions().get::<Payload>() else {
        // buffer_request always leaves one.
        return Some(missing(rule));
    };
    if !payload.is_object() {
        return Some(missing(rule));
    }
    // The model alone: a plain body is not parsed whole for it.
    let asked = payload
        .field("model")
        .ok()
        .flatten()
        .and_then(Value::as_str);
    match rule {
        Rule::Allow(models) => match asked {
            Some(model) if models.iter().any(|allowed| allowed == model) => None,
            _ => Some(
                Rejection::new(StatusCode::FORBIDDEN, LAYER, "model_not_allowed")
                    .with_message("the requested model is not available on this route"),
            ),
        },
        Rule::Pin(pinned) if asked == Some(pinned.as_str()) => None,
        Rule::Pin(pinned) => {
            let Ok(Value::Object(object)) = payload.json() else {
                return Some(missing(rule));
            };
            let mut object = object.clone();
            object.insert("model".to_owned(), Value::String(pinned.clone()));
            replace_payload(req, Payload::from_json(Value::Object(object)));
            None
        }
    }
}

fn missing(rule: &Rule) -> Rejection {
    match rule {
        Rule::Pin(_) => Rejection::new(StatusCode::BAD_REQUEST, LAYER, "model_missing")
            .with_message("the request body is not a JSON object with a model"),
        Rule::Allow(_) => Rejection::new(StatusCode::FORBIDDEN, LAYER, "model_not_allowed")
            .with_message("the request names no model"),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;

    /// An upstream that answers with the body it received and its content-length.
    fn echo() -> impl Service<
        Request<RequestBody<Full<Bytes>>>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(|req: Request<RequestBody<Full<Bytes>>>| async move {
            let length = req.headers().get("content-length").cloned();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let mut response = Response::new(Full::new(body));
            if let Some(length) = length {
                response.headers_mut().insert("x-length", length);
            }
            Ok::<_, Infallible>(response)
        })
    }

    async fn send(layer: &BackendModelLayer, body: &'static str) -> (StatusCode, String, String) {
        let request = Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let response = layer.layer(echo()).oneshot(request).await.unwrap();
        let status = response.status();
        let length = response
            .headers()
            .get("x-length")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap(), length)
    }

    #[tokio::test]
    async fn a_pin_overwrites_the_model_and_keeps_the_rest() {
        let layer = BackendModelLayer::pin("gpt-4").unwrap();
        let (status, body, length) = send(
            &layer,
            r#"{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["model"], "gpt-4");
        assert_eq!(json["messages"][0]["content"], "hi");
        assert_eq!(length, body.len().to_string());

        // Already the pinned model: forwarded byte for byte.
        let original = r#"{ "model" : "gpt-4", "messages": [] }"#;
        let (status, body, _) = send(&layer, original).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, original));

        // No model: one is set.
        let (_, body, _) = send(&layer, r#"{"messages":[]}"#).await;
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["model"],
            "gpt-4"
        );
    }

    #[tokio::test]
    async fn a_pin_refuses_bodies_without_an_object() {
        let layer = BackendModelLayer::pin("gpt-4").unwrap();
        let (status, body, _) = send(&layer, r#"[{"model":"gpt-3.5-turbo"}]"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("model_missing"), "{body}");
        // Not strict JSON: the body layer's 400, never forwarded.
        let (status, _, _) = send(&layer, r#"{"model":"a","model":"b"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn an_allowed_list_passes_its_models_and_refuses_others() {
        let layer = BackendModelLayer::allow(["gpt-4o", "gpt-4o-mini"]).unwrap();
        let body = r#"{"model":"gpt-4o-mini","messages":[]}"#;
        assert_eq!(send(&layer, body).await.1, body);
        for refused in [
            r#"{"model":"o1","messages":[]}"#,
            r#"{"model":"GPT-4O","messages":[]}"#,
            r#"{"messages":[]}"#,
            r#"{"model":["gpt-4o"],"messages":[]}"#,
        ] {
            let (status, body, _) = send(&layer, refused).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
            assert!(body.contains("model_not_allowed"), "{body}");
        }
    }

    #[test]
    fn bad_configurations_name_their_field() {
        use agentgw_core::ConfigError;
        let path = |config: BackendModelConfig| {
            BackendModelLayer::from_config(&config)
                .unwrap_err()
                .path()
                .to_owned()
        };
        assert_eq!(path(BackendModelConfig::default().model("")), "model");
        assert_eq!(path(BackendModelConfig::default()), "model");
        let empty: [&str; 0] = [];
        assert_eq!(
            path(BackendModelConfig::default().allowed_models(empty)),
            "allowedModels"
        );
        assert_eq!(
            path(BackendModelConfig::default().allowed_models(["a", ""])),
            "allowedModels[1]"
        );
        assert_eq!(
            path(
                BackendModelConfig::default()
                    .model("a")
                    .allowed_models(["b"])
            ),
            "allowedModels"
        );
        let config: BackendModelConfig =
            serde_saphyr::from_str("allowedModels: [gpt-4o, o1]").unwrap();
        assert!(BackendModelLayer::from_config(&config).is_ok());
    }
}
