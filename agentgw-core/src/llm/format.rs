//! The wire formats and how to recognize them from a path or a body.

use std::fmt;

use serde_json::Value;

/// An LLM API wire format.
///
/// See the [module docs](super) for the paths and bodies of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// OpenAI chat completions (`/v1/chat/completions`), also spoken by most compatible servers.
    OpenAiChat,
    /// OpenAI legacy completions (`/v1/completions`).
    OpenAiCompletions,
    /// OpenAI Responses API (`/v1/responses`).
    OpenAiResponses,
    /// Anthropic Messages API (`/v1/messages`).
    AnthropicMessages,
}

/// Whether a payload is a request to the model or a response from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the client to the model.
    Request,
    /// Returned by the model to the client.
    Response,
}

impl Format {
    /// Every format, in declaration order.
    pub const ALL: [Format; 4] = [
        Format::OpenAiChat,
        Format::OpenAiCompletions,
        Format::OpenAiResponses,
        Format::AnthropicMessages,
    ];

    /// A short, stable name for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::OpenAiChat => "openai_chat",
            Format::OpenAiCompletions => "openai_completions",
            Format::OpenAiResponses => "openai_responses",
            Format::AnthropicMessages => "anthropic_messages",
        }
    }

    /// The format served at a request path, judged by its last segments so that prefixes
    /// (`/v1`, `/openai`, `/openai/deployments/{name}`) and a query string do not matter.
    ///
    /// ```
    /// use agentgw_core::llm::Format;
    ///
    /// assert_eq!(Format::from_path("/v1/chat/completions"), Some(Format::OpenAiChat));
    /// assert_eq!(
    ///     Format::from_path("/openai/deployments/gpt4/chat/completions?api-version=2024-10-21"),
    ///     Some(Format::OpenAiChat),
    /// );
    /// assert_eq!(Format::from_path("/v1/completions"), Some(Format::OpenAiCompletions));
    /// assert_eq!(Format::from_path("/v1/responses"), Some(Format::OpenAiResponses));
    /// assert_eq!(Format::from_path("/anthropic/v1/messages"), Some(Format::AnthropicMessages));
    /// assert_eq!(Format::from_path("/v1/embeddings"), None);
    /// ```
    pub fn from_path(path: &str) -> Option<Format> {
        let path = path.split_once('?').map_or(path, |(path, _query)| path);
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.ends_with("/chat/completions") {
            Some(Format::OpenAiChat)
        } else if path.ends_with("/completions") {
            Some(Format::OpenAiCompletions)
        } else if path.ends_with("/responses") {
            Some(Format::OpenAiResponses)
        } else if path.ends_with("/messages") && !path.contains("/threads/") {
            // `/v1/threads/{id}/messages` is OpenAI's Assistants API, not Anthropic's.
            Some(Format::AnthropicMessages)
        } else {
            None
        }
    }

    /// The format of a parsed body, from the fields only that format has; `None` when the body
    /// is no LLM payload this module knows.
    ///
    /// A `messages` request is Anthropic's when it has a top-level `system` (or another field
    /// only Anthropic defines) or, before any message only OpenAI allows, an Anthropic-only
    /// content block (`tool_use`, `tool_result`, `thinking`, `document`, `image` with a
    /// `source`). Otherwise it is reported as [`Format::OpenAiChat`]: a plain conversation has
    /// the same text segments under both. Prefer [`Format::from_path`] where the path is known.
    pub fn detect(json: &Value, direction: Direction) -> Option<Format> {
        let object = json.as_object()?;
        match direction {
            Direction::Request => {
                if let Some(messages) = object.get("messages") {
                    let anthropic = ["system", "anthropic_version", "stop_sequences", "top_k"]
                        .iter()
                        .any(|key| object.contains_key(*key))
                        || has_anthropic_blocks(messages);
                    Some(if anthropic {
                        Format::AnthropicMessages
                    } else {
                        Format::OpenAiChat
                    })
                } else if object.contains_key("input") || object.contains_key("instructions") {
                    Some(Format::OpenAiResponses)
                } else if object.contains_key("prompt") {
                    Some(Format::OpenAiCompletions)
                } else {
                    None
                }
            }
            Direction::Response => {
                match object.get("object").and_then(Value::as_str) {
                    Some("chat.completion") => return Some(Format::OpenAiChat),
                    Some("text_completion") => return Some(Format::OpenAiCompletions),
                    Some("response") => return Some(Format::OpenAiResponses),
                    _ => {}
                }
                if object.get("type").and_then(Value::as_str) == Some("message") {
                    return Some(Format::AnthropicMessages);
                }
                // Servers that omit `object`/`type`: fall back on the shape.
                if let Some(choice) = object
                    .get("choices")
                    .and_then(Value::as_array)
                    .and_then(|choices| choices.first())
                {
                    if choice.get("message").is_some() {
                        return Some(Format::OpenAiChat);
                    }
                    if choice.get("text").is_some() {
                        return Some(Format::OpenAiCompletions);
                    }
                }
                if object.get("output").is_some_and(Value::is_array) {
                    return Some(Format::OpenAiResponses);
                }
                if object.get("content").is_some_and(Value::is_array)
                    && object.get("role").is_some()
                {
                    return Some(Format::AnthropicMessages);
                }
                None
            }
        }
    }
}

/// Whether any message holds a content block only Anthropic defines. Stops at the first
/// message that only OpenAI allows (roles `system`, `developer`, `tool`, `function`, or
/// `tool_calls`), so a typical chat request is decided by its first message.
fn has_anthropic_blocks(messages: &Value) -> bool {
    for message in messages.as_array().into_iter().flatten() {
        let openai_role = matches!(
            message.get("role").and_then(Value::as_str),
            Some("system" | "developer" | "tool" | "function")
        );
        if openai_role || message.get("tool_calls").is_some() {
            return false;
        }
        let blocks = message
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for block in blocks {
            match block.get("type").and_then(Value::as_str) {
                Some(
                    "tool_use" | "tool_result" | "thinking" | "redacted_thinking" | "document"
                    | "server_tool_use",
                ) => return true,
                Some("image") if block.get("source").is_some() => return true,
                _ => {}
            }
        }
    }
    false
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Request => "request",
            Direction::Response => "response",
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn from_path_matches_suffixes_and_ignores_query_and_trailing_slash() {
        let cases = [
            ("/v1/chat/completions", Some(Format::OpenAiChat)),
            ("/chat/completions/", Some(Format::OpenAiChat)),
            ("/v1/completions?x=1", Some(Format::OpenAiCompletions)),
            ("/v1/responses", Some(Format::OpenAiResponses)),
            ("/v1/messages", Some(Format::AnthropicMessages)),
            ("/v1/threads/thread_1/messages", None),
            ("/v1/messages/count_tokens", None),
            ("/v1/models", None),
            ("/v1/chat_completions", None),
            ("", None),
        ];
        for (path, expected) in cases {
            assert_eq!(Format::from_path(path), expected, "{path}");
        }
    }

    #[test]
    fn detects_requests() {
        let cases = [
            (
                json!({"model":"m","messages":[{"role":"user","content":"hi"}]}),
                Some(Format::OpenAiChat),
            ),
            (
                json!({"model":"m","max_tokens":5,"system":"s","messages":[{"role":"user","content":"hi"}]}),
                Some(Format::AnthropicMessages),
            ),
            (
                json!({"model":"m","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"x"}]}]}),
                Some(Format::AnthropicMessages),
            ),
            (
                json!({"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":""}}]}]}),
                Some(Format::AnthropicMessages),
            ),
            (
                json!({"model":"m","input":"hi"}),
                Some(Format::OpenAiResponses),
            ),
            (
                json!({"model":"m","instructions":"be brief"}),
                Some(Format::OpenAiResponses),
            ),
            (
                json!({"model":"m","prompt":"once upon"}),
                Some(Format::OpenAiCompletions),
            ),
            (json!({"model":"m"}), None),
            (json!(["messages"]), None),
            (json!("messages"), None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                Format::detect(&body, Direction::Request),
                expected,
                "{body}"
            );
        }
    }

    #[test]
    fn detects_responses() {
        let cases = [
            (
                json!({"object":"chat.completion","choices":[]}),
                Some(Format::OpenAiChat),
            ),
            (
                json!({"object":"text_completion","choices":[]}),
                Some(Format::OpenAiCompletions),
            ),
            (
                json!({"object":"response","output":[]}),
                Some(Format::OpenAiResponses),
            ),
            (
                json!({"type":"message","role":"assistant","content":[]}),
                Some(Format::AnthropicMessages),
            ),
            (
                json!({"choices":[{"message":{"content":"x"}}]}),
                Some(Format::OpenAiChat),
            ),
            (
                json!({"choices":[{"text":"x"}]}),
                Some(Format::OpenAiCompletions),
            ),
            (json!({"output":[]}), Some(Format::OpenAiResponses)),
            (
                json!({"role":"assistant","content":[]}),
                Some(Format::AnthropicMessages),
            ),
            (json!({"error":{"message":"nope"}}), None),
            (json!(null), None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                Format::detect(&body, Direction::Response),
                expected,
                "{body}"
            );
        }
    }

    #[test]
    fn names_are_stable() {
        let names: Vec<String> = Format::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "openai_chat",
                "openai_completions",
                "openai_responses",
                "anthropic_messages"
            ]
        );
        assert_eq!(Direction::Request.to_string(), "request");
        assert_eq!(Direction::Response.to_string(), "response");
    }
}
