//! The application's chat completion handler, a plain `service_fn` in the OpenAI format: it
//! knows nothing about the layers in front of it.

use std::convert::Infallible;
use std::fmt::Display;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::{Value, json};

/// The part of an OpenAI chat completion request the handler reads.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// The model asked for, echoed in the answer.
    pub model: String,
    /// The conversation; the last `user` message is echoed.
    pub messages: Vec<Message>,
}

/// One message of the conversation.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// A string, or an array of content parts whose `text` parts are read.
    #[serde(default)]
    pub content: Value,
}

/// `POST /v1/chat/completions`: echoes the last user message and adds a support address
/// (which the prompt guard masks on the way out). Whatever the request body type the layers
/// hand on.
pub async fn completions<B>(request: Request<B>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: Body<Data = Bytes>,
    B::Error: Display,
{
    let bytes = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return Ok(json_response(StatusCode::BAD_REQUEST, &error_body(error))),
    };
    let request: ChatRequest = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(error) => return Ok(json_response(StatusCode::BAD_REQUEST, &error_body(error))),
    };
    let prompt = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| text_of(&m.content))
        .unwrap_or_default();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let answer = json!({
        "id": "chatcmpl-echo",
        "object": "chat.completion",
        "created": created,
        "model": request.model,
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": format!("You said: {prompt}. Questions? Write to support@example.com."),
            },
            "finish_reason": "stop",
        }],
    });
    Ok(json_response(StatusCode::OK, &answer))
}

fn error_body(error: impl Display) -> Value {
    json!({"error": {"message": error.to_string(), "type": "invalid_request_error"}})
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The text of a message's content: the string, or its `text` parts joined.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}
