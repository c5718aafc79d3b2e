//! LLM payloads as text segments: what a model reads and what it writes.
//!
//! A guard that looks for secrets or prompt injections does not care whether the text sits in
//! `messages[2].content[0].text` of an OpenAI request or in `content[1].text` of an Anthropic
//! response. This module gives every layer one view over the four wire formats:
//!
//! | [`Format`]                     | request                         | response                        |
//! |--------------------------------|---------------------------------|---------------------------------|
//! | [`Format::OpenAiChat`]         | `POST /v1/chat/completions`     | `object: "chat.completion"`     |
//! | [`Format::OpenAiCompletions`]  | `POST /v1/completions`          | `object: "text_completion"`     |
//! | [`Format::OpenAiResponses`]    | `POST /v1/responses`            | `object: "response"`            |
//! | [`Format::AnthropicMessages`]  | `POST /v1/messages`             | `type: "message"`               |
//!
//! - [`for_each_segment`] visits every text segment of a parsed body, in document order, with its
//!   [`Scope`] (system, user, assistant, tool result, tool-call arguments, tool definition).
//! - [`rewrite_segments`] replaces segments in place in the [`serde_json::Value`]; everything
//!   that is not a text segment is left as it was, and the JSON stays valid whatever the new
//!   text contains. [`rewrite_body`] does the same on raw bytes and returns `None` when nothing
//!   changed, so an untouched body is forwarded byte for byte.
//! - [`for_each_delta`] and [`rewrite_deltas`] do the same for the text increments of streamed
//!   chunks, keyed by their stream position ([`DeltaKey`]) so that a masker can keep one holdback
//!   buffer per position; [`for_each_event_segment`] and [`rewrite_event_segments`] cover the
//!   complete texts that stream events repeat (`response.output_text.done`, `message_start`, ...).
//! - [`for_each_logprob_token`] and [`rewrite_logprob_tokens`] walk the logprob tokens of a
//!   response, which spell its text again one token at a time, and keep each rewritten entry
//!   consistent (`bytes`, `top_logprobs`).
//!
//! Which JSON fields count as text, and with which scope, is listed on [`Scope`] and on
//! [`DeltaKey`]: everything a model reads (messages and every text part of their content,
//! message names, tool definitions with their parameter schemas) and everything a client shows
//! (answers, refusals, reasoning and thinking, audio transcripts, tool-call arguments, logprob
//! tokens), in OpenAI chat, completions and Responses, Anthropic messages and Ollama's streamed
//! lines. Images, audio and file data (base64) and encrypted reasoning are not text. Strings
//! outside these fields (ids, tool names, metadata) are not segments; a layer that must see
//! everything scans them too, without a scope. Nothing here panics on an unexpected shape: a
//! field of the wrong type is skipped.
//!
//! # Example
//!
//! ```
//! use agentgw_core::llm::{self, Direction, Format, Scope};
//! use serde_json::json;
//!
//! let body = br#"{"model":"gpt-4o","messages":[
//!     {"role":"system","content":"You are terse."},
//!     {"role":"user","content":[{"type":"text","text":"My card is 4111 1111 1111 1111"},
//!                               {"type":"image_url","image_url":{"url":"https://x/y.png"}}]}
//! ],"temperature":0.2}"#;
//!
//! // Which format is this? The path says it; the body can tell too.
//! let format = Format::from_path("/v1/chat/completions").unwrap();
//! let mut json: serde_json::Value = serde_json::from_slice(body).unwrap();
//! assert_eq!(Format::detect(&json, Direction::Request), Some(format));
//!
//! // Walk the text segments.
//! let mut seen = Vec::new();
//! llm::for_each_segment(&json, format, Direction::Request, |segment| {
//!     seen.push((segment.scope, segment.text.to_owned()));
//! });
//! assert_eq!(seen, [
//!     (Scope::System, "You are terse.".to_owned()),
//!     (Scope::User, "My card is 4111 1111 1111 1111".to_owned()),
//! ]);
//!
//! // Rewrite the user's text; the image part, the model and the temperature stay as they were.
//! let changed = llm::rewrite_segments(&mut json, format, Direction::Request, |scope, text| {
//!     (scope == Scope::User).then(|| text.replace("4111 1111 1111 1111", "<CARD>"))
//! });
//! assert_eq!(changed, 1);
//! assert_eq!(json["messages"][1]["content"][0]["text"], "My card is <CARD>");
//! assert_eq!(json["messages"][1]["content"][1]["image_url"]["url"], "https://x/y.png");
//! assert_eq!(json["temperature"], 0.2);
//!
//! // The same on bytes: `None` means "forward the original body untouched".
//! let unchanged = llm::rewrite_body(body, None, Direction::Request, |_, _| None).unwrap();
//! assert!(unchanged.is_none());
//! let masked = llm::rewrite_body(body, None, Direction::Request, |_, text| {
//!     text.contains("4111").then(|| "<CARD>".to_owned())
//! }).unwrap().expect("a segment changed");
//! let reparsed: serde_json::Value = serde_json::from_slice(&masked).unwrap();
//! assert_eq!(reparsed["messages"][1]["content"][0]["text"], "<CARD>");
//!
//! // A streamed chunk: the delta is keyed by its stream position (here choice 0, content).
//! let mut chunk = json!({"object":"chat.completion.chunk","choices":[
//!     {"index":0,"delta":{"content":"the key is sk-"}}]});
//! let changed = llm::rewrite_deltas(&mut chunk, |key, text| {
//!     assert_eq!((key.scope, key.index, key.sub_index), (Scope::Assistant, 0, 0));
//!     Some(text.replace("sk-", "[hidden]"))
//! });
//! assert_eq!(changed, 1);
//! assert_eq!(chunk["choices"][0]["delta"]["content"], "the key is [hidden]");
//! ```

mod format;
mod segment;
mod stream;
mod walk;

pub use format::{Direction, Format};
pub use segment::{LlmError, Scope, Segment, for_each_segment, rewrite_body, rewrite_segments};
pub use stream::{
    Delta, DeltaKey, for_each_delta, for_each_event_segment, for_each_logprob_token,
    rewrite_deltas, rewrite_event_segments, rewrite_logprob_tokens,
};
