//! The application's chat completion handler, in the OpenAI format: it knows nothing about the
//! layers in front of it.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// The part of an OpenAI chat completion request the handler reads.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// The model asked for, echoed in the answer.
    pub model: String,
    /// The conversation; the last `user` message is echoed.
    pub messages: Vec<Message>,
    /// Answer with server-sent events.
    #[serde(default)]
    pub stream: bool,
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

/// How many characters a streamed chunk carries: small, so that the support address is split
/// across events (and masked all the same).
const CHUNK_CHARS: usize = 6;

/// `POST /v1/chat/completions`: echoes the last user message and adds a support address
/// (which the prompt guard masks on the way out).
pub async fn completions(Json(request): Json<ChatRequest>) -> Response {
    let prompt = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| text_of(&m.content))
        .unwrap_or_default();
    let answer = format!("You said: {prompt}. Questions? Write to support@example.com.");
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if request.stream {
        return stream(&request.model, created, &answer);
    }
    Json(json!({
        "id": "chatcmpl-echo",
        "object": "chat.completion",
        "created": created,
        "model": request.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer},
            "finish_reason": "stop",
        }],
    }))
    .into_response()
}

/// The answer as `chat.completion.chunk` events, then `data: [DONE]`.
fn stream(model: &str, created: u64, answer: &str) -> Response {
    let chunk = |delta: Value, finish: Value| {
        let chunk = json!({
            "id": "chatcmpl-echo",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        format!("data: {chunk}\n\n")
    };
    let chars: Vec<char> = answer.chars().collect();
    let mut events = vec![chunk(json!({"role": "assistant"}), Value::Null)];
    events.extend(chars.chunks(CHUNK_CHARS).map(|piece| {
        let piece: String = piece.iter().collect();
        chunk(json!({"content": piece}), Value::Null)
    }));
    events.push(chunk(json!({}), json!("stop")));
    events.push("data: [DONE]\n\n".to_owned());
    let body = Body::from_stream(futures_util::stream::iter(
        events.into_iter().map(Ok::<_, Infallible>),
    ));
    ([(CONTENT_TYPE, "text/event-stream")], body).into_response()
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
