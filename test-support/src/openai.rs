//! The OpenAI-compatible chat mock ([`openai`]): `"You said: " + <last user message>`, as one
//! `chat.completion` object or as `chat.completion.chunk` server-sent events.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::server::{
    Flavor, MockError, MockServer, count_header, duration_header, flag_header, json_response,
    path_and_query,
};
use crate::{MAX_BODY_BYTES, PII_HEADER, PII_TEXT};

/// `x-mock-chunk-delay-ms: N`: in a streamed chat completion, wait `N` milliseconds between two
/// events (at most [`MAX_DELAY`](crate::MAX_DELAY)).
pub const CHUNK_DELAY_HEADER: &str = "x-mock-chunk-delay-ms";

/// `x-mock-chunks: N`: in a streamed chat completion, send exactly `N` content events (at most
/// [`MAX_STREAM_CHUNKS`]), repeating the answer (a newline between two repetitions) for as long
/// as needed, so a short prompt can make a long stream (soak tests: with [`CHUNK_DELAY_HEADER`]
/// a stream lasts about `N` times the delay). Every repetition of the answer carries its
/// [`PII_TEXT`], if any. Usage still counts the answer once.
pub const CHUNKS_HEADER: &str = "x-mock-chunks";

/// Largest number of content events [`CHUNKS_HEADER`] accepts.
pub const MAX_STREAM_CHUNKS: usize = 1_000_000;

/// `x-mock-echo-headers: 1` (or `true`): the OpenAI mock adds `received_headers` (an object of
/// header name to value, repeated headers joined with `", "`), `received_path` (path and query)
/// and `received_body_len` (bytes) to its JSON answer, or to the first event of a stream.
pub const ECHO_HEADERS_HEADER: &str = "x-mock-echo-headers";

/// Number of characters in each content event of a streamed chat completion, so that stream
/// tests cross many chunk boundaries. Answers longer than 16 KiB use proportionally larger pieces
/// (at most 4096 content events per stream).
pub const STREAM_PIECE_CHARS: usize = 4;

/// The models `GET /v1/models` lists. Any model name is accepted in a chat completion.
pub const MODEL_IDS: &[&str] = &["mock-gpt-4o", "mock-gpt-4o-mini"];

/// Upper bound on content events in one streamed answer.
const MAX_STREAM_CONTENT_EVENTS: usize = 4096;
const SYSTEM_FINGERPRINT: &str = "fp_agentgw_mock";
const EVENT_STREAM: &str = "text/event-stream";

/// Starts the OpenAI-compatible mock on `addr` (use `127.0.0.1:0` in tests).
///
/// Routes:
/// - `POST /v1/chat/completions` and `POST /chat/completions`: request `{model, messages,
///   stream?, stream_options?}`; the answer is `"You said: " + <text of the last user message>`
///   (a string content, or the `text` parts of an array content joined with a space), followed
///   by a newline and [`PII_TEXT`] when the last user message contains the word `pii` (any case)
///   or [`PII_HEADER`] is set. Without `stream` the answer is one `chat.completion` object; with
///   `"stream": true` it is `text/event-stream`: a role chunk, content chunks of
///   [`STREAM_PIECE_CHARS`] characters, a chunk with `finish_reason: "stop"`, a usage chunk when
///   `stream_options.include_usage` is true, then `data: [DONE]`.
/// - `GET /v1/models` and `GET /models`: a model list of [`MODEL_IDS`].
///
/// A body that is not a valid chat request gets a 400 OpenAI-style error; an unknown path a 404.
/// Bodies up to [`MAX_BODY_BYTES`] are accepted.
///
/// # Errors
///
/// Fails when `addr` cannot be bound.
pub async fn openai(addr: SocketAddr) -> io::Result<MockServer> {
    let state = Arc::new(OpenAiState {
        next_id: AtomicU64::new(1),
    });
    let router = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .fallback(openai_unknown_url)
        .method_not_allowed_fallback(openai_method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    MockServer::start(addr, router, Flavor::OpenAi, || {}).await
}

#[derive(Debug)]
struct OpenAiState {
    next_id: AtomicU64,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<MessageContent>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

impl ChatMessage {
    fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(MessageContent::Text(text)) => text.clone(),
            Some(MessageContent::Parts(parts)) => parts
                .iter()
                .filter(|part| part.kind == "text")
                .filter_map(|part| part.text.as_deref())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Everything a chat answer is built from, shared by the JSON and the streamed form.
#[derive(Debug)]
struct ChatAnswer {
    id: String,
    created: u64,
    model: String,
    content: String,
    prompt_tokens: usize,
    echo: Option<Map<String, Value>>,
}

impl ChatAnswer {
    fn usage(&self) -> Value {
        let completion_tokens = approximate_tokens(&self.content);
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        })
    }

    fn completion(self) -> Value {
        let usage = self.usage();
        let mut body = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": self.content, "refusal": null },
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": usage,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        });
        if let (Some(echo), Some(object)) = (self.echo, body.as_object_mut()) {
            object.extend(echo);
        }
        body
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Map<String, Value> {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        match chunk {
            Value::Object(object) => object,
            _ => Map::new(),
        }
    }
}

async fn chat_completions(
    State(state): State<Arc<OpenAiState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match chat_response(&state, &uri, &headers, &body) {
        Ok(response) => response,
        Err(error) => error.into_response(Flavor::OpenAi),
    }
}

fn chat_response(
    state: &OpenAiState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, MockError> {
    let chunk_delay = duration_header(headers, CHUNK_DELAY_HEADER)?;
    let chunks = count_header(headers, CHUNKS_HEADER, MAX_STREAM_CHUNKS)?;
    let request: ChatRequest = serde_json::from_slice(body).map_err(MockError::InvalidJson)?;
    if request.messages.is_empty() {
        return Err(MockError::NoMessages);
    }
    let said = request
        .messages
        .iter()
        .rev()
        .find(|message| message.role == "user")
        .map(ChatMessage::text)
        .unwrap_or_default();
    let mut content = format!("You said: {said}");
    if flag_header(headers, PII_HEADER) || mentions_pii(&said) {
        content.push('\n');
        content.push_str(PII_TEXT);
    }
    let answer = ChatAnswer {
        id: format!(
            "chatcmpl-mock{:08}",
            state.next_id.fetch_add(1, Ordering::Relaxed)
        ),
        created: unix_seconds(),
        model: request.model,
        content,
        prompt_tokens: request
            .messages
            .iter()
            .map(|message| approximate_tokens(&message.text()))
            .sum(),
        echo: flag_header(headers, ECHO_HEADERS_HEADER)
            .then(|| echo_fields(uri, headers, body.len())),
    };
    let include_usage = request
        .stream_options
        .and_then(|options| options.include_usage)
        .unwrap_or(false);
    if request.stream == Some(true) {
        Ok(chat_stream_response(
            answer,
            include_usage,
            chunk_delay,
            chunks,
        ))
    } else {
        Ok(json_response(StatusCode::OK, &answer.completion()))
    }
}

fn chat_stream_response(
    answer: ChatAnswer,
    include_usage: bool,
    chunk_delay: Duration,
    chunks: Option<usize>,
) -> Response {
    let chars = answer.content.chars().count();
    let piece_chars = STREAM_PIECE_CHARS.max(chars.div_ceil(MAX_STREAM_CONTENT_EVENTS));
    let events = ChatEvents {
        answer,
        stage: StreamStage::Role,
        position: 0,
        piece_chars,
        chunks_left: chunks,
        include_usage,
    };
    let body = stream::unfold((events, true), move |(mut events, first)| async move {
        let event = events.next_event()?;
        if !first && !chunk_delay.is_zero() {
            tokio::time::sleep(chunk_delay).await;
        }
        Some((Ok::<_, Infallible>(event), (events, false)))
    });
    event_stream_response(Body::from_stream(body))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamStage {
    Role,
    Content,
    Finish,
    Usage,
    Done,
    End,
}

/// Produces the events of a streamed answer one at a time, so a long answer is never held twice.
#[derive(Debug)]
struct ChatEvents {
    answer: ChatAnswer,
    stage: StreamStage,
    position: usize,
    piece_chars: usize,
    /// Content events still to send when [`CHUNKS_HEADER`] set their number.
    chunks_left: Option<usize>,
    include_usage: bool,
}

impl ChatEvents {
    fn next_event(&mut self) -> Option<Bytes> {
        loop {
            match self.stage {
                StreamStage::Role => {
                    self.stage = StreamStage::Content;
                    let mut chunk = self
                        .answer
                        .chunk(json!({ "role": "assistant", "content": "" }), None);
                    if let Some(echo) = self.answer.echo.take() {
                        chunk.extend(echo);
                    }
                    return Some(sse_data(&Value::Object(chunk)));
                }
                StreamStage::Content if self.chunks_left.is_some() => {
                    if self.chunks_left == Some(0) {
                        self.stage = StreamStage::Finish;
                        continue;
                    }
                    self.chunks_left = self.chunks_left.map(|left| left - 1);
                    let piece = self.cyclic_piece();
                    let chunk = self.answer.chunk(json!({ "content": piece }), None);
                    return Some(sse_data(&Value::Object(chunk)));
                }
                StreamStage::Content => {
                    let content = &self.answer.content;
                    if self.position >= content.len() {
                        self.stage = StreamStage::Finish;
                        continue;
                    }
                    let rest = &content[self.position..];
                    let end = rest
                        .char_indices()
                        .nth(self.piece_chars)
                        .map_or(rest.len(), |(index, _)| index);
                    let piece = &rest[..end];
                    self.position += end;
                    let chunk = self.answer.chunk(json!({ "content": piece }), None);
                    return Some(sse_data(&Value::Object(chunk)));
                }
                StreamStage::Finish => {
                    self.stage = if self.include_usage {
                        StreamStage::Usage
                    } else {
                        StreamStage::Done
                    };
                    let chunk = self.answer.chunk(json!({}), Some("stop"));
                    return Some(sse_data(&Value::Object(chunk)));
                }
                StreamStage::Usage => {
                    self.stage = StreamStage::Done;
                    let mut chunk = self.answer.chunk(Value::Null, None);
                    chunk.insert("choices".to_owned(), json!([]));
                    chunk.insert("usage".to_owned(), self.answer.usage());
                    return Some(sse_data(&Value::Object(chunk)));
                }
                StreamStage::Done => {
                    self.stage = StreamStage::End;
                    return Some(Bytes::from_static(b"data: [DONE]\n\n"));
                }
                StreamStage::End => return None,
            }
        }
    }

    /// The next `piece_chars` characters of the answer repeated, a newline between two
    /// repetitions (so that the PII at the end of one stays a separate word).
    fn cyclic_piece(&mut self) -> String {
        let content = &self.answer.content;
        let mut piece = String::new();
        for _ in 0..self.piece_chars {
            match content[self.position..].chars().next() {
                Some(c) => {
                    piece.push(c);
                    self.position += c.len_utf8();
                }
                None => {
                    piece.push('\n');
                    self.position = 0;
                }
            }
        }
        piece
    }
}

async fn models() -> Response {
    let created = unix_seconds();
    let data: Vec<Value> = MODEL_IDS
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": created, "owned_by": "agentgw-mock" }))
        .collect();
    json_response(StatusCode::OK, &json!({ "object": "list", "data": data }))
}

async fn openai_unknown_url(method: Method, uri: Uri) -> Response {
    MockError::UnknownUrl {
        method,
        path: path_and_query(&uri),
    }
    .into_response(Flavor::OpenAi)
}

async fn openai_method_not_allowed(method: Method, uri: Uri) -> Response {
    MockError::MethodNotAllowed {
        method,
        path: path_and_query(&uri),
    }
    .into_response(Flavor::OpenAi)
}

/// Whether `text` contains the word `pii`, in any case.
fn mentions_pii(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|word| word.eq_ignore_ascii_case("pii"))
}

/// A token count good enough for a mock: whitespace-separated words.
fn approximate_tokens(text: &str) -> usize {
    text.split_whitespace().count()
}

fn echo_fields(uri: &Uri, headers: &HeaderMap, body_len: usize) -> Map<String, Value> {
    let mut received = Map::new();
    for name in headers.keys() {
        let value = headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        received.insert(name.as_str().to_owned(), Value::String(value));
    }
    let mut fields = Map::new();
    fields.insert("received_headers".to_owned(), Value::Object(received));
    fields.insert(
        "received_path".to_owned(),
        Value::String(path_and_query(uri)),
    );
    fields.insert("received_body_len".to_owned(), json!(body_len));
    fields
}

fn event_stream_response(body: Body) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One server-sent event `data: <json>` followed by the blank line that ends it.
fn sse_data(value: &Value) -> Bytes {
    let json = value.to_string();
    let mut event = Vec::with_capacity(json.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(json.as_bytes());
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures_util::StreamExt;

    use super::*;
    use crate::server::{JSON, RECORDED_BODY_BYTES};
    use crate::{DELAY_HEADER, SERVER_HEADER};

    fn local() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    struct Reply {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    }

    impl Reply {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).expect("response body is JSON")
        }

        fn text(&self) -> &str {
            std::str::from_utf8(&self.body).expect("response body is UTF-8")
        }

        fn content_type(&self) -> &str {
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
        }
    }

    async fn send(
        method: Method,
        url: String,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = reqwest::Client::new().request(method, url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("mock answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("full body");
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn post(url: String, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("content-type", JSON)];
        all.extend_from_slice(headers);
        send(
            Method::POST,
            url,
            Some(serde_json::to_vec(body).unwrap()),
            &all,
        )
        .await
    }

    fn chat(text: &str) -> Value {
        json!({
            "model": "gpt-4o-mini",
            "messages": [{ "role": "user", "content": text }],
        })
    }

    fn answer_text(reply: &Reply) -> String {
        reply.json()["choices"][0]["message"]["content"]
            .as_str()
            .expect("assistant content")
            .to_owned()
    }

    /// The `data:` payloads of an event stream, in order.
    fn data_lines(stream: &str) -> Vec<String> {
        stream
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn chat_completion_echoes_the_last_user_message() {
        let server = openai(local()).await.unwrap();
        let body = json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "system", "content": "You are terse." },
                { "role": "user", "content": "first question" },
                { "role": "assistant", "content": "first answer" },
                { "role": "user", "content": "hello there" },
            ],
        });
        let reply = post(format!("{}/v1/chat/completions", server.url()), &body, &[]).await;

        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.content_type(), JSON);
        assert_eq!(reply.headers[SERVER_HEADER], "openai");
        let completion = reply.json();
        assert_eq!(completion["object"], "chat.completion");
        assert_eq!(completion["model"], "gpt-4o-mini");
        assert!(completion["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
        assert_eq!(completion["choices"][0]["finish_reason"], "stop");
        assert_eq!(answer_text(&reply), "You said: hello there");
        assert_eq!(completion["usage"]["completion_tokens"], 4);
        assert_eq!(completion["usage"]["total_tokens"], 4 + 9);
        assert!(!answer_text(&reply).contains("4111"));
        server.shutdown().await;
    }

    #[tokio::test]
    async fn text_parts_are_joined_and_the_short_path_works() {
        let server = openai(local()).await.unwrap();
        let body = json!({
            "model": "m",
            "messages": [{ "role": "user", "content": [
                { "type": "text", "text": "look at" },
                { "type": "image_url", "image_url": { "url": "https://example.com/cat.png" } },
                { "type": "text", "text": "this cat" },
            ]}],
        });
        let reply = post(format!("{}/chat/completions", server.url()), &body, &[]).await;

        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(answer_text(&reply), "You said: look at this cat");
    }

    #[tokio::test]
    async fn streaming_answer_arrives_in_small_chunks() {
        let server = openai(local()).await.unwrap();
        let mut body = chat("stream me, pii included");
        body["stream"] = json!(true);
        let response = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", server.url()))
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], EVENT_STREAM);
        let mut stream = response.bytes_stream();
        let mut raw = Vec::new();
        while let Some(frame) = stream.next().await {
            raw.extend_from_slice(&frame.unwrap());
        }
        let lines = data_lines(std::str::from_utf8(&raw).unwrap());

        assert_eq!(lines.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = lines[..lines.len() - 1]
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk")
        );
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(last["choices"][0]["delta"], json!({}));
        let pieces: Vec<&str> = chunks[1..chunks.len() - 1]
            .iter()
            .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert!(
            pieces
                .iter()
                .all(|p| p.chars().count() <= STREAM_PIECE_CHARS)
        );
        let expected = format!("You said: stream me, pii included\n{PII_TEXT}");
        assert_eq!(
            pieces.len(),
            expected.chars().count().div_ceil(STREAM_PIECE_CHARS)
        );
        assert_eq!(pieces.concat(), expected);
    }

    #[tokio::test]
    async fn stream_pieces_respect_multibyte_characters_and_usage_is_optional() {
        let server = openai(local()).await.unwrap();
        let mut body = chat("héllo wörld ✓✓✓");
        body["stream"] = json!(true);
        body["stream_options"] = json!({ "include_usage": true });
        let reply = post(format!("{}/v1/chat/completions", server.url()), &body, &[]).await;
        let lines = data_lines(reply.text());
        let chunks: Vec<Value> = lines[..lines.len() - 1]
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();

        let usage_chunk = chunks.last().unwrap();
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(usage_chunk["usage"]["completion_tokens"], 5);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "You said: héllo wörld ✓✓✓");
    }

    #[tokio::test]
    async fn chunk_delay_spaces_out_stream_events() {
        let server = openai(local()).await.unwrap();
        let mut body = chat("abcdefgh");
        body["stream"] = json!(true);
        let started = Instant::now();
        let reply = post(
            format!("{}/v1/chat/completions", server.url()),
            &body,
            &[(CHUNK_DELAY_HEADER, "20")],
        )
        .await;
        // role + 5 content pieces + finish + [DONE] = 8 events, 7 gaps of 20 ms.
        assert_eq!(data_lines(reply.text()).len(), 8);
        assert!(started.elapsed() >= Duration::from_millis(140));
    }

    #[tokio::test]
    async fn chunks_header_makes_a_long_stream_of_a_short_answer() {
        let server = openai(local()).await.unwrap();
        let url = format!("{}/v1/chat/completions", server.url());
        let mut body = chat("hi");
        body["stream"] = json!(true);
        let reply = post(
            url.clone(),
            &body,
            &[(CHUNKS_HEADER, "100"), (PII_HEADER, "1")],
        )
        .await;
        let lines = data_lines(reply.text());
        // role + 100 content pieces + finish + [DONE]
        assert_eq!(lines.len(), 103);
        assert_eq!(lines.last().map(String::as_str), Some("[DONE]"));
        let pieces: Vec<String> = lines[1..101]
            .iter()
            .map(|line| {
                let chunk: Value = serde_json::from_str(line).unwrap();
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(
            pieces
                .iter()
                .all(|p| p.chars().count() == STREAM_PIECE_CHARS)
        );
        let answer = format!("You said: hi\n{PII_TEXT}\n");
        let expected: String = answer
            .chars()
            .cycle()
            .take(100 * STREAM_PIECE_CHARS)
            .collect();
        assert_eq!(pieces.concat(), expected);
        assert!(expected.matches("4111 1111 1111 1111").count() >= 3);

        let none = post(url.clone(), &body, &[(CHUNKS_HEADER, "0")]).await;
        // role + finish + [DONE]
        assert_eq!(data_lines(none.text()).len(), 3);

        for bad in ["many", "-1", "1000001"] {
            let invalid = post(url.clone(), &body, &[(CHUNKS_HEADER, bad)]).await;
            assert_eq!(invalid.status, StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(invalid.json()["error"]["code"], "invalid_header");
        }
    }

    #[tokio::test]
    async fn pii_is_added_for_the_word_pii_or_the_header_only() {
        let server = openai(local()).await.unwrap();
        let url = format!("{}/v1/chat/completions", server.url());

        let asked = post(url.clone(), &chat("Please include PII in the answer"), &[]).await;
        assert!(answer_text(&asked).ends_with(&format!("\n{PII_TEXT}")));

        let header = post(url.clone(), &chat("nothing special"), &[(PII_HEADER, "1")]).await;
        assert_eq!(
            answer_text(&header),
            format!("You said: nothing special\n{PII_TEXT}")
        );

        for text in ["happiness and pipes", "piis", "xpii"] {
            let plain = post(url.clone(), &chat(text), &[]).await;
            assert_eq!(answer_text(&plain), format!("You said: {text}"));
        }
        let off = post(url, &chat("plain"), &[(PII_HEADER, "0")]).await;
        assert_eq!(answer_text(&off), "You said: plain");
    }

    #[tokio::test]
    async fn delay_header_holds_back_the_response() {
        let server = openai(local()).await.unwrap();
        let url = format!("{}/v1/chat/completions", server.url());

        let started = Instant::now();
        let slow = post(url.clone(), &chat("slow"), &[(DELAY_HEADER, "300")]).await;
        assert_eq!(slow.status, StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(300));

        let timed_out = reqwest::Client::new()
            .post(url.clone())
            .header(DELAY_HEADER, "2000")
            .timeout(Duration::from_millis(100))
            .body(serde_json::to_vec(&chat("slow")).unwrap())
            .send()
            .await;
        assert!(timed_out.unwrap_err().is_timeout());

        let invalid = post(url, &chat("slow"), &[(DELAY_HEADER, "soon")]).await;
        assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
        assert_eq!(invalid.json()["error"]["code"], "invalid_header");
    }

    #[tokio::test]
    async fn echo_headers_reports_what_reached_the_upstream() {
        let server = openai(local()).await.unwrap();
        let body = serde_json::to_vec(&chat("echo")).unwrap();
        let reply = send(
            Method::POST,
            format!("{}/v1/chat/completions?api-version=1", server.url()),
            Some(body.clone()),
            &[
                (ECHO_HEADERS_HEADER, "1"),
                ("authorization", "Bearer upstream-key"),
                ("x-forwarded-for", "10.0.0.1"),
                ("x-multi", "a"),
            ],
        )
        .await;

        let json = reply.json();
        assert_eq!(answer_text(&reply), "You said: echo");
        let received = &json["received_headers"];
        assert_eq!(received["authorization"], "Bearer upstream-key");
        assert_eq!(received["x-forwarded-for"], "10.0.0.1");
        assert_eq!(received["host"], server.addr().to_string());
        assert_eq!(json["received_path"], "/v1/chat/completions?api-version=1");
        assert_eq!(json["received_body_len"], body.len());

        let plain = post(
            format!("{}/v1/chat/completions", server.url()),
            &chat("x"),
            &[],
        )
        .await;
        assert!(plain.json().get("received_headers").is_none());
    }

    #[tokio::test]
    async fn echo_headers_in_a_stream_ride_on_the_first_event() {
        let server = openai(local()).await.unwrap();
        let mut body = chat("echo");
        body["stream"] = json!(true);
        let reply = post(
            format!("{}/v1/chat/completions", server.url()),
            &body,
            &[(ECHO_HEADERS_HEADER, "true"), ("x-probe", "seen")],
        )
        .await;
        let lines = data_lines(reply.text());
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["received_headers"]["x-probe"], "seen");
        let second: Value = serde_json::from_str(&lines[1]).unwrap();
        assert!(second.get("received_headers").is_none());
    }

    #[tokio::test]
    async fn invalid_requests_get_openai_errors() {
        let server = openai(local()).await.unwrap();
        let url = format!("{}/v1/chat/completions", server.url());

        let not_json = send(Method::POST, url.clone(), Some(b"hello".to_vec()), &[]).await;
        assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
        assert_eq!(not_json.json()["error"]["type"], "invalid_request_error");

        let no_model = post(url.clone(), &json!({ "messages": [] }), &[]).await;
        assert_eq!(no_model.status, StatusCode::BAD_REQUEST);
        let message = no_model.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains("model"), "{message}");

        let no_messages = post(url.clone(), &json!({ "model": "m", "messages": [] }), &[]).await;
        assert_eq!(no_messages.status, StatusCode::BAD_REQUEST);
        assert_eq!(no_messages.json()["error"]["param"], "messages");

        let wrong_method = send(Method::GET, url, None, &[]).await;
        assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(wrong_method.json()["error"]["code"], "method_not_allowed");

        let unknown = send(
            Method::POST,
            format!("{}/v1/embeddings", server.url()),
            None,
            &[],
        )
        .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(unknown.json()["error"]["code"], "unknown_url");
    }

    #[tokio::test]
    async fn models_are_listed() {
        let server = openai(local()).await.unwrap();
        let reply = send(
            Method::GET,
            format!("{}/v1/models", server.url()),
            None,
            &[],
        )
        .await;

        assert_eq!(reply.status, StatusCode::OK);
        let list = reply.json();
        assert_eq!(list["object"], "list");
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|model| model["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, MODEL_IDS);
    }

    #[tokio::test]
    async fn bodies_larger_than_axums_default_limit_are_accepted() {
        let server = openai(local()).await.unwrap();
        let big = "a".repeat(5 * 1024 * 1024);
        let reply = post(
            format!("{}/v1/chat/completions", server.url()),
            &chat(&big),
            &[],
        )
        .await;

        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(answer_text(&reply).len(), "You said: ".len() + big.len());
        let recorded = server.received_requests();
        assert_eq!(recorded[0].body.len(), RECORDED_BODY_BYTES);
        assert!(recorded[0].body_len > big.len());
    }

    #[tokio::test]
    async fn http2_prior_knowledge_is_served() {
        let server = openai(local()).await.unwrap();
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let response = client
            .post(format!("{}/v1/chat/completions", server.url()))
            .body(serde_json::to_vec(&chat("over h2")).unwrap())
            .send()
            .await
            .unwrap();

        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "You said: over h2"
        );
    }

    #[tokio::test]
    async fn received_requests_are_recorded() {
        let server = openai(local()).await.unwrap();
        assert_eq!(server.request_count(), 0);
        post(
            format!("{}/v1/chat/completions", server.url()),
            &chat("record me"),
            &[("x-trace", "42")],
        )
        .await;
        send(
            Method::GET,
            format!("{}/v1/models", server.url()),
            None,
            &[],
        )
        .await;

        assert_eq!(server.request_count(), 2);
        let recorded = server.received_requests();
        assert_eq!(recorded[0].method, Method::POST);
        assert_eq!(recorded[0].path, "/v1/chat/completions");
        assert_eq!(recorded[0].headers["x-trace"], "42");
        let body: Value = serde_json::from_slice(&recorded[0].body).unwrap();
        assert_eq!(body["messages"][0]["content"], "record me");
        assert_eq!(recorded[1].path, "/v1/models");
    }

    #[tokio::test]
    async fn shutdown_and_drop_stop_the_server() {
        let server = openai(local()).await.unwrap();
        let url = format!("{}/v1/models", server.url());
        server.shutdown().await;
        assert!(reqwest::Client::new().get(url).send().await.is_err());

        let dropped = openai(local()).await.unwrap();
        let url = format!("{}/v1/models", dropped.url());
        drop(dropped);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(reqwest::Client::new().get(url).send().await.is_err());
    }
}
