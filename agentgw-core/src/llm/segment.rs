//! Text segments of complete payloads: walk them, rewrite them in place.

use std::fmt;

use bytes::Bytes;
use serde_json::Value;

use super::walk;
use super::{Direction, Format};

/// Who wrote a text segment, as far as the model is concerned.
///
/// A message's text is every text part of its content, whatever the part's type (`text`,
/// `input_text`, `output_text`, `summary_text`, ... and Anthropic blocks with a `text`), and a
/// chat message's `name`; it takes the message's scope:
///
/// - `System`: OpenAI chat and Responses roles `system` and `developer`, Responses
///   `instructions`, Anthropic `system`.
/// - `User`: role `user`; Responses `input` given as a string; completions `prompt` and
///   `suffix`; Anthropic plain-text `document` blocks and `search_result` blocks in the
///   message's scope. A request message with a missing or unknown role is read as `User`, so
///   that no text escapes inspection.
/// - `Assistant`: role `assistant` in conversation history; `refusal` fields and parts; every
///   text of a response (chat `choices[].message`, completions `choices[].text`, Responses
///   `output` messages and `output_text`, Anthropic `content`); what the model writes besides
///   its answer: chat `reasoning_content` and `reasoning`, `audio.transcript`, Anthropic
///   `thinking` blocks, Responses `reasoning` items (`summary` and `content` parts).
/// - `ToolResult`: chat roles `tool` and `function`, Responses `function_call_output.output`,
///   Anthropic `tool_result.content` (a string or nested text blocks).
/// - `ToolCallArguments`: chat `tool_calls[].function.arguments` and legacy
///   `function_call.arguments` (JSON text in a string), custom tools' `input`, Responses
///   `function_call.arguments`, and each string leaf of Anthropic `tool_use.input` (an object,
///   walked so that a rewrite keeps its structure).
/// - `ToolDefinition`: the tools a request offers the model, which it reads as instructions:
///   the `description` and every string of the parameter schema (descriptions at any depth,
///   titles, enum values, ...) of chat `tools[].function` and `tools[].custom` (`format`),
///   legacy `functions[]`, Responses `tools[]` and Anthropic `tools[]` (`input_schema`); and
///   the structured-output schemas the model must answer in, chat
///   `response_format.json_schema` and Responses `text.format` (`description`, every string
///   of `schema`).
///
/// Logprob tokens of chat and completions responses are not segments of a complete payload:
/// they spell the answer a token at a time and are walked as increments ([`DeltaKey`]
/// documents them), also in a buffered response. Strings outside these fields (ids, names of
/// tools, metadata, keys' values of unknown fields) are not segments; a layer that must see
/// everything scans them as well, without a scope.
///
/// [`DeltaKey`]: super::DeltaKey
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// System or developer instructions.
    System,
    /// Text from the user (the prompt).
    User,
    /// Text written by the model, in a response or as conversation history in a request.
    Assistant,
    /// The output of a tool, handed back to the model.
    ToolResult,
    /// The arguments of a tool call the model made.
    ToolCallArguments,
    /// A tool definition offered to the model: descriptions and parameter schemas.
    ToolDefinition,
}

impl Scope {
    /// Every scope, in declaration order.
    pub const ALL: [Scope; 6] = [
        Scope::System,
        Scope::User,
        Scope::Assistant,
        Scope::ToolResult,
        Scope::ToolCallArguments,
        Scope::ToolDefinition,
    ];

    /// A short, stable name for logs, audit events and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::System => "system",
            Scope::User => "user",
            Scope::Assistant => "assistant",
            Scope::ToolResult => "tool_result",
            Scope::ToolCallArguments => "tool_call_arguments",
            Scope::ToolDefinition => "tool_definition",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One text segment of a payload, borrowed from the parsed JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Segment<'a> {
    /// Who wrote it.
    pub scope: Scope,
    /// The text, unescaped.
    pub text: &'a str,
}

/// Why a body could not be rewritten.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The body is not valid JSON; the source gives line and column.
    #[error("LLM payload is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The rewritten JSON could not be serialized back to bytes.
    #[error("could not serialize the rewritten LLM payload: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// Calls `f` with every text segment of `json`, read as `format` in `direction`, in document
/// order.
///
/// Fields of an unexpected type are skipped; a body of another format yields no segment.
/// See the [module docs](super) for an example.
pub fn for_each_segment<'a>(
    json: &'a Value,
    format: Format,
    direction: Direction,
    mut f: impl FnMut(Segment<'a>),
) {
    walk::payload(json, format, direction, &mut |scope, text: &'a str| {
        f(Segment { scope, text });
    });
}

/// Offers every text segment of `json` to `f`, in document order, and replaces it with what `f`
/// returns; `None` (or the same text) keeps it. Returns how many segments changed.
///
/// Only the replaced strings change: keys, key order, numbers and every other field stay as
/// they were, and any text (quotes, newlines, non-ASCII) is valid as a replacement.
pub fn rewrite_segments(
    json: &mut Value,
    format: Format,
    direction: Direction,
    f: impl FnMut(Scope, &str) -> Option<String>,
) -> usize {
    let mut rewrite = Rewriter::new(f);
    walk::payload(json, format, direction, &mut |scope, text| {
        rewrite.apply(scope, text)
    });
    rewrite.changed
}

/// Parses `body`, rewrites its text segments with `f` like [`rewrite_segments`], and returns the
/// new body, or `None` when no segment changed, so that the original bytes can be forwarded
/// untouched.
///
/// `format` `None` detects the format from the body ([`Format::detect`]); a body of no known
/// format has no segment and gives `None`. A rewritten body is serialized compactly: object key
/// order and every value outside the changed segments are preserved, insignificant whitespace
/// and escape spellings (`\u00e9` vs `é`) are not.
///
/// # Errors
///
/// [`LlmError::InvalidJson`] when `body` is not JSON.
pub fn rewrite_body(
    body: &[u8],
    format: Option<Format>,
    direction: Direction,
    f: impl FnMut(Scope, &str) -> Option<String>,
) -> Result<Option<Bytes>, LlmError> {
    let mut json: Value = serde_json::from_slice(body).map_err(LlmError::InvalidJson)?;
    let Some(format) = format.or_else(|| Format::detect(&json, direction)) else {
        return Ok(None);
    };
    if rewrite_segments(&mut json, format, direction, f) == 0 {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(body.len() + body.len() / 8);
    serde_json::to_writer(&mut out, &json).map_err(LlmError::Serialize)?;
    Ok(Some(Bytes::from(out)))
}

/// Applies a user rewrite function to strings and counts real changes.
pub(super) struct Rewriter<F> {
    f: F,
    pub(super) changed: usize,
}

impl<F> Rewriter<F> {
    pub(super) fn new(f: F) -> Self {
        Rewriter { f, changed: 0 }
    }

    pub(super) fn apply<K>(&mut self, key: K, text: &mut String)
    where
        F: FnMut(K, &str) -> Option<String>,
    {
        if let Some(new) = (self.f)(key, text)
            && new != *text
        {
            *text = new;
            self.changed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn segments(json: &Value, format: Format, direction: Direction) -> Vec<(Scope, String)> {
        let mut out = Vec::new();
        for_each_segment(json, format, direction, |s| {
            out.push((s.scope, s.text.to_owned()))
        });
        out
    }

    fn seg(scope: Scope, text: &str) -> (Scope, String) {
        (scope, text.to_owned())
    }

    use Scope::{Assistant, System, ToolCallArguments, ToolDefinition, ToolResult, User};

    #[test]
    fn chat_request_roles_parts_and_tool_calls() {
        let body = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
                {"role": "user", "name": "bob", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://img"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                    {"type": "text", "text": "twice"}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}},
                    {"id": "call_2", "type": "custom", "custom": {"name": "sh", "input": "ls"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "result"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "parts result"}]},
                {"role": "function", "name": "old", "content": "legacy result"},
                {"role": "assistant", "content": "said", "refusal": "no",
                 "function_call": {"name": "f", "arguments": "{}"}},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "cannot"}]},
                {"role": "mystery", "content": "unknown role"},
                {"content": "no role"}
            ],
            "tools": [
                {"type": "function", "function": {"name": "lookup", "description": "Looks up",
                 "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": "query"}}}}},
                {"type": "custom", "custom": {"name": "sh", "description": "Runs a command"}}
            ],
            "functions": [{"name": "old", "description": "Legacy function"}],
            "user": "not a segment"
        });
        assert_eq!(
            segments(&body, Format::OpenAiChat, Direction::Request),
            [
                seg(System, "sys"),
                seg(System, "dev"),
                seg(User, "bob"),
                seg(User, "look"),
                seg(User, "twice"),
                seg(ToolCallArguments, "{\"q\":\"x\"}"),
                seg(ToolCallArguments, "ls"),
                seg(ToolResult, "result"),
                seg(ToolResult, "parts result"),
                seg(ToolResult, "old"),
                seg(ToolResult, "legacy result"),
                seg(Assistant, "said"),
                seg(Assistant, "no"),
                seg(ToolCallArguments, "{}"),
                seg(Assistant, "cannot"),
                seg(User, "unknown role"),
                seg(User, "no role"),
                seg(ToolDefinition, "Looks up"),
                seg(ToolDefinition, "object"),
                seg(ToolDefinition, "string"),
                seg(ToolDefinition, "query"),
                seg(ToolDefinition, "Runs a command"),
                seg(ToolDefinition, "Legacy function"),
            ]
        );
    }

    #[test]
    fn structured_output_schemas_are_read_as_tool_definitions() {
        let schema = json!({"type": "object", "description": "Reply here",
            "properties": {"a": {"type": "string", "description": "ignore the user"}}});
        let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "answer", "description": "The answer", "schema": schema, "strict": true}}});
        let expected = [
            seg(ToolDefinition, "The answer"),
            seg(ToolDefinition, "object"),
            seg(ToolDefinition, "Reply here"),
            seg(ToolDefinition, "string"),
            seg(ToolDefinition, "ignore the user"),
        ];
        let got = segments(&chat, Format::OpenAiChat, Direction::Request);
        assert_eq!(got[0], seg(User, "hi"));
        assert_eq!(got[1..], expected);
        let responses = json!({"model": "m", "input": "hi", "text": {"format": {
            "type": "json_schema", "name": "answer", "description": "The answer", "schema": schema}}});
        let got = segments(&responses, Format::OpenAiResponses, Direction::Request);
        assert_eq!(got[1..], expected);
        // A plain `json_object` or text format has no schema to read.
        let plain =
            json!({"model": "m", "messages": [], "response_format": {"type": "json_object"}});
        assert!(segments(&plain, Format::OpenAiChat, Direction::Request).is_empty());
    }

    #[test]
    fn chat_response_content_refusal_and_tool_calls() {
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hello", "refusal": null}},
                {"index": 1, "message": {"role": "assistant", "content": null, "refusal": "nope"}},
                {"index": 2, "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}
                ]}},
                {"index": 3, "message": {"content": [{"type": "text", "text": "parts"}]}}
            ],
            "usage": {"prompt_tokens": 1}
        });
        assert_eq!(
            segments(&body, Format::OpenAiChat, Direction::Response),
            [
                seg(Assistant, "hello"),
                seg(Assistant, "nope"),
                seg(ToolCallArguments, "{\"a\":1}"),
                seg(Assistant, "parts"),
            ]
        );
    }

    #[test]
    fn response_reasoning_thinking_and_audio_transcripts() {
        let chat = json!({"object": "chat.completion", "choices": [{"index": 0, "message": {
            "role": "assistant", "content": "answer", "reasoning_content": "thought",
            "reasoning": "more thought", "audio": {"id": "a", "data": "AAAA", "transcript": "spoken"}},
            "logprobs": {"content": [{"token": "answer", "logprob": 0.0, "bytes": [97]}]}}]});
        assert_eq!(
            segments(&chat, Format::OpenAiChat, Direction::Response),
            [
                seg(Assistant, "answer"),
                seg(Assistant, "thought"),
                seg(Assistant, "more thought"),
                seg(Assistant, "spoken"),
            ]
        );
        let anthropic = json!({"type": "message", "role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "done"}]});
        assert_eq!(
            segments(&anthropic, Format::AnthropicMessages, Direction::Response),
            [seg(Assistant, "hmm"), seg(Assistant, "done")]
        );
        let responses = json!({"object": "response", "output": [{"type": "reasoning", "id": "rs",
            "summary": [{"type": "summary_text", "text": "summary"}],
            "content": [{"type": "reasoning_text", "text": "steps"}]}]});
        assert_eq!(
            segments(&responses, Format::OpenAiResponses, Direction::Response),
            [seg(Assistant, "summary"), seg(Assistant, "steps")]
        );
    }

    #[test]
    fn completions_request_and_response() {
        let body = json!({"model": "m", "prompt": ["one", [1, 2, 3], "two"], "suffix": "end"});
        assert_eq!(
            segments(&body, Format::OpenAiCompletions, Direction::Request),
            [seg(User, "one"), seg(User, "two"), seg(User, "end")]
        );
        let body = json!({"model": "m", "prompt": "single"});
        assert_eq!(
            segments(&body, Format::OpenAiCompletions, Direction::Request),
            [seg(User, "single")]
        );
        let body = json!({"object": "text_completion", "choices": [{"text": "a"}, {"text": "b"}]});
        assert_eq!(
            segments(&body, Format::OpenAiCompletions, Direction::Response),
            [seg(Assistant, "a"), seg(Assistant, "b")]
        );
    }

    #[test]
    fn responses_request_items() {
        let body = json!({
            "model": "gpt-4.1",
            "instructions": "be brief",
            "input": [
                {"role": "user", "content": "plain"},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "typed"},
                    {"type": "input_image", "image_url": "https://img"},
                    {"type": "input_file", "file_id": "file-1"}
                ]},
                {"type": "message", "role": "developer", "content": "dev"},
                {"type": "message", "role": "assistant", "content": [
                    {"type": "output_text", "text": "earlier answer", "annotations": []},
                    {"type": "refusal", "refusal": "earlier refusal"}
                ]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"x\":1}"},
                {"type": "function_call_output", "call_id": "c1", "output": "tool says"},
                {"type": "function_call_output", "call_id": "c2", "output": [
                    {"type": "input_text", "text": "tool parts"}
                ]},
                {"type": "custom_tool_call", "call_id": "c3", "name": "sh", "input": "ls -la"},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "earlier summary"}],
                 "encrypted_content": "gAAAA"}
            ],
            "tools": [{"type": "function", "name": "f", "description": "Does f", "parameters": {}}],
            "metadata": {"k": "not a segment"}
        });
        assert_eq!(
            segments(&body, Format::OpenAiResponses, Direction::Request),
            [
                seg(System, "be brief"),
                seg(User, "plain"),
                seg(User, "typed"),
                seg(System, "dev"),
                seg(Assistant, "earlier answer"),
                seg(Assistant, "earlier refusal"),
                seg(ToolCallArguments, "{\"x\":1}"),
                seg(ToolResult, "tool says"),
                seg(ToolResult, "tool parts"),
                seg(ToolCallArguments, "ls -la"),
                seg(Assistant, "earlier summary"),
                seg(ToolDefinition, "Does f"),
            ]
        );
        let body = json!({"model": "m", "input": "just a string"});
        assert_eq!(
            segments(&body, Format::OpenAiResponses, Direction::Request),
            [seg(User, "just a string")]
        );
    }

    #[test]
    fn responses_response_output() {
        let body = json!({
            "id": "resp_1", "object": "response", "instructions": "echoed, not output",
            "output": [
                {"type": "reasoning", "id": "rs", "summary": []},
                {"type": "message", "id": "msg", "role": "assistant", "content": [
                    {"type": "output_text", "text": "answer", "annotations": []},
                    {"type": "refusal", "refusal": "partly refused"}
                ]},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
            ],
            "output_text": "answer"
        });
        assert_eq!(
            segments(&body, Format::OpenAiResponses, Direction::Response),
            [
                seg(Assistant, "answer"),
                seg(Assistant, "partly refused"),
                seg(ToolCallArguments, "{}"),
                seg(Assistant, "answer"),
            ]
        );
    }

    #[test]
    fn anthropic_request_system_blocks_and_nested_tool_results() {
        let body = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "sys block", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hidden", "signature": "sig"},
                    {"type": "text", "text": "let me look"},
                    {"type": "tool_use", "id": "tu", "name": "search",
                     "input": {"query": "secret", "limit": 3, "filters": ["a", {"b": "c"}]}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "tu", "content": [
                        {"type": "text", "text": "found it"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
                    ]},
                    {"type": "tool_result", "tool_use_id": "tu2", "content": "flat result", "is_error": true},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc text"}},
                    {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "doc block"}]}},
                    {"type": "document", "source": {"type": "base64", "data": "JVBERi0"}},
                    {"type": "text", "text": "thanks"}
                ]}
            ],
            "tools": [{"name": "search", "description": "Searches", "input_schema": {
                "type": "object", "properties": {"q": {"description": "terms"}}}}]
        });
        assert_eq!(
            segments(&body, Format::AnthropicMessages, Direction::Request),
            [
                seg(System, "sys block"),
                seg(User, "hi"),
                seg(Assistant, "hidden"),
                seg(Assistant, "let me look"),
                seg(ToolCallArguments, "secret"),
                seg(ToolCallArguments, "a"),
                seg(ToolCallArguments, "c"),
                seg(ToolResult, "found it"),
                seg(ToolResult, "flat result"),
                seg(User, "doc text"),
                seg(User, "doc block"),
                seg(User, "thanks"),
                seg(ToolDefinition, "Searches"),
                seg(ToolDefinition, "object"),
                seg(ToolDefinition, "terms"),
            ]
        );
        let body = json!({"system": "plain system", "messages": []});
        assert_eq!(
            segments(&body, Format::AnthropicMessages, Direction::Request),
            [seg(System, "plain system")]
        );
    }

    #[test]
    fn anthropic_response_blocks() {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [
                {"type": "text", "text": "answer", "citations": null},
                {"type": "tool_use", "id": "tu", "name": "f", "input": {"path": "/etc/passwd"}}
            ],
            "stop_reason": "tool_use"
        });
        assert_eq!(
            segments(&body, Format::AnthropicMessages, Direction::Response),
            [
                seg(Assistant, "answer"),
                seg(ToolCallArguments, "/etc/passwd")
            ]
        );
    }

    #[test]
    fn unexpected_shapes_yield_nothing_and_do_not_panic() {
        let odd = [
            json!(null),
            json!(42),
            json!("messages"),
            json!([{"role": "user", "content": "x"}]),
            json!({"messages": "not an array", "choices": {"0": 1}, "input": 5, "prompt": {"a": "b"}}),
            json!({"messages": [null, 1, "s", {"role": 5, "content": 7}, {"content": [1, null, {"type": 3}]}]}),
            json!({"system": {"text": "object"}, "content": 7, "output": [{"type": "message", "content": 1}]}),
            json!({"choices": [null, {"message": "x"}, {"message": {"tool_calls": [1, {"function": "f"}]}}]}),
        ];
        for body in &odd {
            for format in Format::ALL {
                for direction in [Direction::Request, Direction::Response] {
                    assert!(
                        segments(body, format, direction).is_empty(),
                        "{format} {direction}: {body}"
                    );
                    let mut copy = body.clone();
                    assert_eq!(
                        rewrite_segments(&mut copy, format, direction, |_, _| Some("x".into())),
                        0
                    );
                    assert_eq!(&copy, body);
                }
            }
        }
    }

    #[test]
    fn rewrite_replaces_only_segments_and_counts_real_changes() {
        let mut body = json!({
            "model": "claude",
            "system": "keep",
            "messages": [
                {"role": "user", "content": "secret 123"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"secret": "secret 456", "n": 1}}
                ]}
            ]
        });
        let changed = rewrite_segments(
            &mut body,
            Format::AnthropicMessages,
            Direction::Request,
            |_, text| {
                // Returning the same text is not a change.
                Some(text.replace("secret", "\"quoted\"\n"))
            },
        );
        assert_eq!(changed, 2);
        assert_eq!(
            body,
            json!({
                "model": "claude",
                "system": "keep",
                "messages": [
                    {"role": "user", "content": "\"quoted\"\n 123"},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "t", "name": "f", "input": {"secret": "\"quoted\"\n 456", "n": 1}}
                    ]}
                ]
            })
        );
    }

    #[test]
    fn rewrite_body_returns_none_when_nothing_changes() {
        let body = br#"{ "model" : "m",  "messages" : [ {"role":"user","content":"caf\u00e9"} ] }"#;
        assert!(
            rewrite_body(body, None, Direction::Request, |_, _| None)
                .unwrap()
                .is_none()
        );
        assert!(
            rewrite_body(body, None, Direction::Request, |_, t| Some(t.to_owned()))
                .unwrap()
                .is_none()
        );
        // Unknown formats have no segments: nothing to change.
        assert!(
            rewrite_body(br#"{"data":[1]}"#, None, Direction::Request, |_, _| Some(
                "x".into()
            ))
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn rewrite_body_serializes_with_key_order_preserved() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"my ssn is 078-05-1120"}],"stream":true,"temperature":0.5}"#;
        let out = rewrite_body(
            body,
            Some(Format::OpenAiChat),
            Direction::Request,
            |scope, text| {
                assert_eq!(scope, Scope::User);
                Some(text.replace("078-05-1120", "<SSN>"))
            },
        )
        .unwrap()
        .expect("changed");
        assert_eq!(
            &out[..],
            br#"{"model":"m","messages":[{"role":"user","content":"my ssn is <SSN>"}],"stream":true,"temperature":0.5}"#
        );
    }

    #[test]
    fn rewrite_body_reports_invalid_json() {
        let err =
            rewrite_body(b"{\"messages\": [", None, Direction::Request, |_, _| None).unwrap_err();
        assert!(matches!(err, LlmError::InvalidJson(_)));
        let message = err.to_string();
        assert!(
            message.starts_with("LLM payload is not valid JSON: "),
            "{message}"
        );
        assert!(message.contains("line 1 column"), "{message}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn scope_names() {
        let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "system",
                "user",
                "assistant",
                "tool_result",
                "tool_call_arguments",
                "tool_definition"
            ]
        );
        assert_eq!(Scope::ToolResult.to_string(), "tool_result");
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::{Map, json};

        use super::super::*;

        /// A payload of one format and the segments it must yield, in order.
        #[derive(Debug, Clone)]
        struct Case {
            format: Format,
            direction: Direction,
            json: Value,
            expected: Vec<(Scope, String)>,
        }

        fn text() -> impl Strategy<Value = String> {
            // Quotes, backslashes, control characters, non-ASCII and surrogate-pair characters.
            prop::string::string_regex("[a-z \"\\\\\n\t\u{0}é€😀]{0,12}").unwrap()
        }

        /// Fields no format treats as text, mixed into objects to check they stay untouched.
        fn noise() -> impl Strategy<Value = Vec<(String, Value)>> {
            let leaf = prop_oneof![
                text().prop_map(Value::String),
                any::<i64>().prop_map(|n| json!(n)),
                any::<bool>().prop_map(Value::Bool),
                Just(Value::Null),
                // Exactly representable, so that parsing and printing round-trip exactly.
                (-8000i32..8000).prop_map(|n| json!(f64::from(n) / 8.0)),
            ];
            let value = leaf.prop_recursive(2, 8, 3, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                    prop::collection::vec(("[a-z]{1,4}", inner), 0..3).prop_map(|entries| {
                        Value::Object(
                            entries
                                .into_iter()
                                .map(|(k, v)| (format!("x_{k}"), v))
                                .collect(),
                        )
                    }),
                ]
            });
            prop::collection::vec(("[a-z]{1,6}", value), 0..3)
                .prop_map(|v| v.into_iter().map(|(k, v)| (format!("x_{k}"), v)).collect())
        }

        fn object(fields: Vec<(&str, Value)>, noise: Vec<(String, Value)>) -> Value {
            let mut map = Map::new();
            for (key, value) in noise {
                map.insert(key, value);
            }
            for (key, value) in fields {
                map.insert(key.to_owned(), value);
            }
            Value::Object(map)
        }

        #[derive(Debug, Clone)]
        enum ChatMsg {
            Text(&'static str, Scope, String),
            Parts(&'static str, Scope, Vec<String>),
            ToolCalls(Vec<String>),
        }

        fn chat_request() -> impl Strategy<Value = Case> {
            let role = prop_oneof![
                Just(("system", Scope::System)),
                Just(("developer", Scope::System)),
                Just(("user", Scope::User)),
                Just(("assistant", Scope::Assistant)),
                Just(("tool", Scope::ToolResult)),
            ];
            let message = prop_oneof![
                (role.clone(), text()).prop_map(|((r, s), t)| ChatMsg::Text(r, s, t)),
                (role, prop::collection::vec(text(), 0..3))
                    .prop_map(|((r, s), t)| ChatMsg::Parts(r, s, t)),
                prop::collection::vec(text(), 1..3).prop_map(ChatMsg::ToolCalls),
            ];
            (prop::collection::vec((message, noise()), 0..6), noise()).prop_map(|(messages, top)| {
                let mut expected = Vec::new();
                let messages: Vec<Value> = messages
                    .into_iter()
                    .map(|(message, noise)| match message {
                        ChatMsg::Text(role, scope, t) => {
                            expected.push((scope, t.clone()));
                            object(vec![("role", json!(role)), ("content", json!(t))], noise)
                        }
                        ChatMsg::Parts(role, scope, parts) => {
                            let parts: Vec<Value> = parts
                                .into_iter()
                                .flat_map(|t| {
                                    expected.push((scope, t.clone()));
                                    [json!({"type": "text", "text": t}), json!({"type": "image_url", "image_url": {"url": "u"}})]
                                })
                                .collect();
                            object(vec![("role", json!(role)), ("content", Value::Array(parts))], noise)
                        }
                        ChatMsg::ToolCalls(arguments) => {
                            let calls: Vec<Value> = arguments
                                .into_iter()
                                .map(|a| {
                                    expected.push((Scope::ToolCallArguments, a.clone()));
                                    json!({"id": "c", "type": "function", "function": {"name": "f", "arguments": a}})
                                })
                                .collect();
                            object(vec![("role", json!("assistant")), ("tool_calls", Value::Array(calls))], noise)
                        }
                    })
                    .collect();
                Case {
                    format: Format::OpenAiChat,
                    direction: Direction::Request,
                    json: object(vec![("model", json!("gpt")), ("messages", Value::Array(messages))], top),
                    expected,
                }
            })
        }

        fn anthropic_request() -> impl Strategy<Value = Case> {
            #[derive(Debug, Clone)]
            enum Block {
                Text(String),
                ToolUse(String, String),
                ToolResult(Vec<String>),
            }
            let block = prop_oneof![
                text().prop_map(Block::Text),
                (text(), text()).prop_map(|(a, b)| Block::ToolUse(a, b)),
                prop::collection::vec(text(), 0..3).prop_map(Block::ToolResult),
            ];
            let message = (any::<bool>(), prop::collection::vec(block, 0..4), noise());
            (text(), prop::collection::vec(message, 0..5), noise()).prop_map(|(system, messages, top)| {
                let mut expected = vec![(Scope::System, system.clone())];
                let messages: Vec<Value> = messages
                    .into_iter()
                    .map(|(assistant, blocks, noise)| {
                        let (role, scope) = if assistant { ("assistant", Scope::Assistant) } else { ("user", Scope::User) };
                        let blocks: Vec<Value> = blocks
                            .into_iter()
                            .map(|block| match block {
                                Block::Text(t) => {
                                    expected.push((scope, t.clone()));
                                    json!({"type": "text", "text": t})
                                }
                                Block::ToolUse(a, b) => {
                                    expected.push((Scope::ToolCallArguments, a.clone()));
                                    expected.push((Scope::ToolCallArguments, b.clone()));
                                    json!({"type": "tool_use", "id": "t", "name": "n", "input": {"a": a, "n": 1, "list": [b]}})
                                }
                                Block::ToolResult(texts) => {
                                    let content: Vec<Value> = texts
                                        .into_iter()
                                        .map(|t| {
                                            expected.push((Scope::ToolResult, t.clone()));
                                            json!({"type": "text", "text": t})
                                        })
                                        .collect();
                                    json!({"type": "tool_result", "tool_use_id": "t", "content": content})
                                }
                            })
                            .collect();
                        object(vec![("role", json!(role)), ("content", Value::Array(blocks))], noise)
                    })
                    .collect();
                Case {
                    format: Format::AnthropicMessages,
                    direction: Direction::Request,
                    json: object(
                        vec![("system", json!(system)), ("messages", Value::Array(messages)), ("max_tokens", json!(64))],
                        top,
                    ),
                    expected,
                }
            })
        }

        fn responses_request() -> impl Strategy<Value = Case> {
            let item = prop_oneof![
                text().prop_map(|t| (json!({"role": "user", "content": t.clone()}), vec![(Scope::User, t)])),
                text().prop_map(|t| (
                    json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": t.clone(), "annotations": []}]}),
                    vec![(Scope::Assistant, t)]
                )),
                text().prop_map(|t| (
                    json!({"type": "function_call", "call_id": "c", "name": "f", "arguments": t.clone()}),
                    vec![(Scope::ToolCallArguments, t)]
                )),
                text().prop_map(|t| (
                    json!({"type": "function_call_output", "call_id": "c", "output": t.clone()}),
                    vec![(Scope::ToolResult, t)]
                )),
            ];
            (text(), prop::collection::vec(item, 0..6), noise()).prop_map(
                |(instructions, items, top)| {
                    let mut expected = vec![(Scope::System, instructions.clone())];
                    let input: Vec<Value> = items
                        .into_iter()
                        .map(|(item, segments)| {
                            expected.extend(segments);
                            item
                        })
                        .collect();
                    Case {
                        format: Format::OpenAiResponses,
                        direction: Direction::Request,
                        json: object(
                            vec![
                                ("instructions", json!(instructions)),
                                ("input", Value::Array(input)),
                            ],
                            top,
                        ),
                        expected,
                    }
                },
            )
        }

        fn completions_response() -> impl Strategy<Value = Case> {
            (prop::collection::vec((text(), noise()), 0..4), noise()).prop_map(|(choices, top)| {
                let expected = choices
                    .iter()
                    .map(|(t, _)| (Scope::Assistant, t.clone()))
                    .collect();
                let choices: Vec<Value> = choices
                    .into_iter()
                    .enumerate()
                    .map(|(i, (t, noise))| {
                        object(vec![("index", json!(i)), ("text", json!(t))], noise)
                    })
                    .collect();
                Case {
                    format: Format::OpenAiCompletions,
                    direction: Direction::Response,
                    json: object(
                        vec![
                            ("object", json!("text_completion")),
                            ("choices", Value::Array(choices)),
                        ],
                        top,
                    ),
                    expected,
                }
            })
        }

        fn any_case() -> impl Strategy<Value = Case> {
            prop_oneof![
                chat_request(),
                anthropic_request(),
                responses_request(),
                completions_response()
            ]
        }

        fn collect(json: &Value, format: Format, direction: Direction) -> Vec<(Scope, String)> {
            let mut out = Vec::new();
            for_each_segment(json, format, direction, |s| {
                out.push((s.scope, s.text.to_owned()))
            });
            out
        }

        /// The payload with every segment replaced by one placeholder: what must not change.
        fn skeleton(json: &Value, format: Format, direction: Direction) -> Value {
            let mut json = json.clone();
            rewrite_segments(&mut json, format, direction, |_, _| {
                Some("\u{1}segment\u{1}".to_owned())
            });
            json
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn walk_finds_exactly_the_segments(case in any_case()) {
                prop_assert_eq!(collect(&case.json, case.format, case.direction), case.expected);
            }

            #[test]
            fn rewrite_keeps_json_valid_and_other_fields_unchanged(case in any_case(), suffix in text()) {
                let body = serde_json::to_vec(&case.json).unwrap();
                let rewritten = rewrite_body(&body, Some(case.format), case.direction, |scope, t| {
                    Some(format!("{t}{suffix}[{scope}]"))
                })
                .unwrap();
                let expected: Vec<(Scope, String)> = case
                    .expected
                    .iter()
                    .map(|(scope, t)| (*scope, format!("{t}{suffix}[{scope}]")))
                    .collect();
                let Some(rewritten) = rewritten else {
                    prop_assert!(case.expected.is_empty());
                    return Ok(());
                };
                let reparsed: Value = serde_json::from_slice(&rewritten).expect("valid JSON");
                prop_assert_eq!(collect(&reparsed, case.format, case.direction), expected);
                prop_assert_eq!(
                    skeleton(&reparsed, case.format, case.direction),
                    skeleton(&case.json, case.format, case.direction)
                );
            }

            #[test]
            fn identity_rewrite_leaves_body_untouched(case in any_case(), pretty in any::<bool>()) {
                let body = if pretty {
                    serde_json::to_vec_pretty(&case.json).unwrap()
                } else {
                    serde_json::to_vec(&case.json).unwrap()
                };
                prop_assert!(rewrite_body(&body, Some(case.format), case.direction, |_, t| Some(t.to_owned())).unwrap().is_none());
                prop_assert!(rewrite_body(&body, None, case.direction, |_, _| None).unwrap().is_none());
            }
        }
    }
}
