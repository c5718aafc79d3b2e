//! Streamed chunks: text increments (deltas) and the complete texts some events repeat.
//!
//! One function serves every stream format: a chunk says what it is (`choices` for OpenAI chat
//! and completions, `type: "response.*"` for the Responses API, `type: "content_block_*"` and
//! `message_start` for Anthropic, `message` or `response` for Ollama's JSON lines), so no
//! format needs to be passed in.

use serde_json::Value;

use super::segment::Rewriter;
use super::walk::{self, Node, kind};
use super::{Scope, Segment};

/// The stream position a text increment belongs to.
///
/// Increments with equal keys are consecutive pieces of one text, so a streaming masker keeps
/// one holdback buffer per key. Keys of different positions of one stream never collide:
///
/// | chunk field                                                          | `scope`             | `index`        | `sub_index`       |
/// |----------------------------------------------------------------------|---------------------|----------------|-------------------|
/// | chat `choices[].delta.content`                                       | `Assistant`         | choice `index` | 0                 |
/// | chat `choices[].delta.refusal`                                       | `Assistant`         | choice `index` | 1                 |
/// | chat `choices[].delta.reasoning_content`                             | `Assistant`         | choice `index` | 2                 |
/// | chat `choices[].delta.reasoning` (a string)                          | `Assistant`         | choice `index` | 3                 |
/// | chat `choices[].delta.audio.transcript`                              | `Assistant`         | choice `index` | 4                 |
/// | chat `choices[].logprobs.content[].token`, completions `choices[].logprobs.tokens[]` | `Assistant` | choice `index` | 5          |
/// | chat `choices[].logprobs.refusal[].token`                            | `Assistant`         | choice `index` | 6                 |
/// | chat `choices[].delta.tool_calls[].function.arguments`               | `ToolCallArguments` | choice `index` | tool call `index` |
/// | chat `choices[].delta.function_call.arguments` (legacy)              | `ToolCallArguments` | choice `index` | 0                 |
/// | completions `choices[].text`                                         | `Assistant`         | choice `index` | 0                 |
/// | Responses `response.output_text.delta`, `response.refusal.delta`, `response.reasoning_text.delta` | `Assistant` | `output_index` | `content_index` |
/// | Responses `response.output_text.delta` `logprobs[].token`; buffered `output[i].content[j].logprobs[].token` | `Assistant` | `output_index` (`i`) | 2^30 + `content_index` (`j`) |
/// | Responses `response.content_part.added` (`part.text`, `part.refusal`) | `Assistant`        | `output_index` | `content_index`   |
/// | Responses `response.reasoning_summary_text.delta`, `response.reasoning_summary_part.added` (`part.text`) | `Assistant` | `output_index` | 2^31 + `summary_index` |
/// | Responses `response.audio.transcript.delta`                          | `Assistant`         | 2^32 - 1       | 0                 |
/// | Responses `response.function_call_arguments.delta`, `response.custom_tool_call_input.delta` | `ToolCallArguments` | `output_index` | 0 |
/// | Anthropic `content_block_start` of a `text` or `thinking` block (`content_block.text`, `.thinking`) | `Assistant` | `index` | 0 |
/// | Anthropic `content_block_delta` `text_delta` (`delta.text`), `thinking_delta` (`delta.thinking`) | `Assistant` | `index` | 0 |
/// | Anthropic `content_block_delta` `input_json_delta` (`delta.partial_json`) | `ToolCallArguments` | `index`  | 0                 |
/// | Ollama chat lines `message.content`, generate lines `response`       | `Assistant`         | 0              | 0                 |
/// | Ollama `message.thinking`, `thinking`                                | `Assistant`         | 0              | 2                 |
///
/// A missing choice or tool call `index` is taken from the array position; a missing
/// `output_index`, `content_index`, `summary_index` or block `index` is 0.
///
/// Logprob tokens spell the text a token at a time, so they are increments of their own
/// position. When [`rewrite_deltas`] changes a token it keeps its entry consistent: `bytes`
/// becomes the UTF-8 of the new token, and `top_logprobs` keeps only the alternative equal to
/// the original token, rewritten the same way (the other alternatives would show what was
/// masked).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeltaKey {
    /// Who writes the text.
    pub scope: Scope,
    /// The choice, output item or content block.
    pub index: u32,
    /// The position within it: tool call, content part, or 0.
    pub sub_index: u32,
}

/// Sub-indexes of a choice's positions besides its tool calls; see [`DeltaKey`].
const REFUSAL: u32 = 1;
const REASONING_CONTENT: u32 = 2;
const REASONING: u32 = 3;
const AUDIO_TRANSCRIPT: u32 = 4;
const LOGPROB_CONTENT: u32 = 5;
const LOGPROB_REFUSAL: u32 = 6;
/// Added to a Responses `content_index` for the logprob tokens of that part.
const LOGPROB_PART: u32 = 1 << 30;
/// Added to a Responses `summary_index`: summary parts and content parts of one reasoning item
/// are distinct positions.
const SUMMARY_PART: u32 = 1 << 31;
/// The `index` of the Responses audio transcript, which has no output index.
const AUDIO_OUTPUT: u32 = u32::MAX;

impl DeltaKey {
    const fn new(scope: Scope, index: u32, sub_index: u32) -> DeltaKey {
        DeltaKey {
            scope,
            index,
            sub_index,
        }
    }
}

/// One text increment of a streamed chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Delta<'a> {
    /// Where it belongs.
    pub key: DeltaKey,
    /// The increment, unescaped.
    pub text: &'a str,
}

/// Calls `f` with every text increment of a streamed chunk (the JSON `data` of one SSE event),
/// in document order. Chunks without text (role announcements, usage, `ping`, stops) yield
/// nothing.
///
/// ```
/// use agentgw_core::llm::{self, Scope};
/// use serde_json::json;
///
/// let event = json!({"type":"content_block_delta","index":1,
///                    "delta":{"type":"input_json_delta","partial_json":"{\"path\": \"/et"}});
/// let mut deltas = Vec::new();
/// llm::for_each_delta(&event, |delta| deltas.push((delta.key.scope, delta.key.index, delta.text)));
/// assert_eq!(deltas, [(Scope::ToolCallArguments, 1, "{\"path\": \"/et")]);
/// ```
pub fn for_each_delta<'a>(chunk: &'a Value, mut f: impl FnMut(Delta<'a>)) {
    deltas(chunk, &mut |key, text: &'a str| f(Delta { key, text }));
}

/// Offers every text increment of a streamed chunk to `f` and replaces it with what `f` returns
/// (`None`, or the same text, keeps it). Returns how many increments changed.
///
/// A masker that holds text back returns the part it releases now, possibly `""`, and emits the
/// rest with a later increment of the same [`DeltaKey`].
pub fn rewrite_deltas(chunk: &mut Value, f: impl FnMut(DeltaKey, &str) -> Option<String>) -> usize {
    let originals = logprob_originals(chunk);
    let mut rewrite = Rewriter::new(f);
    deltas(&mut *chunk, &mut |key, text| rewrite.apply(key, text));
    fix_logprobs(chunk, originals, rewrite.changed);
    rewrite.changed
}

/// Calls `f` with every logprob token of a chat or completions body, buffered or streamed
/// (`choices[].logprobs`: chat `content[].token` and `refusal[].token`, completions
/// `tokens[]`), of a Responses `response.output_text.delta` event, and of a buffered Responses
/// API response (`output[].content[].logprobs[].token`, keyed as the stream keys them), in
/// order, keyed as in [`DeltaKey`].
///
/// A buffered response spells its answer again in these tokens, one piece at a time: mask
/// them like the increments of a stream (one holdback per key), not one by one. In a streamed
/// chunk they are also yielded by [`for_each_delta`].
///
/// ```
/// use agentgw_core::llm;
/// use serde_json::json;
///
/// let mut body = json!({"object": "chat.completion", "choices": [{"index": 0,
///     "message": {"role": "assistant", "content": "Hi Bob"},
///     "logprobs": {"content": [
///         {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []},
///         {"token": " Bob", "logprob": -0.2, "bytes": [32, 66, 111, 98],
///          "top_logprobs": [{"token": " Bob", "logprob": -0.2, "bytes": [32, 66, 111, 98]},
///                           {"token": " Bo", "logprob": -2.5, "bytes": [32, 66, 111]}]}]}}]});
/// let mut tokens = Vec::new();
/// llm::for_each_logprob_token(&body, |delta| tokens.push(delta.text.to_owned()));
/// assert_eq!(tokens, ["Hi", " Bob"]);
///
/// // A changed token keeps its entry consistent: bytes, and no alternative left to tell.
/// llm::rewrite_logprob_tokens(&mut body, |_, token| Some(token.replace("Bob", "<NAME>")));
/// let entry = &body["choices"][0]["logprobs"]["content"][1];
/// assert_eq!(entry["token"], " <NAME>");
/// assert_eq!(entry["bytes"], json!(" <NAME>".as_bytes()));
/// assert_eq!(entry["top_logprobs"], json!([{"token": " <NAME>", "logprob": -0.2, "bytes": " <NAME>".as_bytes()}]));
/// ```
pub fn for_each_logprob_token<'a>(json: &'a Value, mut f: impl FnMut(Delta<'a>)) {
    logprob_lists(json, &mut |key, list, _| {
        logprob_tokens(list, key, &mut |key, text: &'a str| f(Delta { key, text }));
    });
}

/// Rewrites the tokens [`for_each_logprob_token`] yields, keeping each changed entry
/// consistent (see [`DeltaKey`]). Returns how many tokens changed.
pub fn rewrite_logprob_tokens(
    json: &mut Value,
    f: impl FnMut(DeltaKey, &str) -> Option<String>,
) -> usize {
    let originals = logprob_originals(json);
    let mut rewrite = Rewriter::new(f);
    logprob_lists(&mut *json, &mut |key, list, _| {
        logprob_tokens(list, key, &mut |key, text| rewrite.apply(key, text));
    });
    fix_logprobs(json, originals, rewrite.changed);
    rewrite.changed
}

/// The logprob tokens of a chunk before a rewrite, to tell afterwards which entries changed.
fn logprob_originals(json: &Value) -> Vec<String> {
    let mut originals = Vec::new();
    logprob_lists(json, &mut |key, list, _| {
        logprob_tokens(list, key, &mut |_, token: &str| {
            originals.push(token.to_owned())
        });
    });
    originals
}

/// Fixes the logprob entries whose token a rewrite changed.
fn fix_logprobs(json: &mut Value, originals: Vec<String>, changed: usize) {
    if changed == 0 || originals.is_empty() {
        return;
    }
    let mut originals = originals.into_iter();
    logprob_lists(json, &mut |_, list, legacy_top| {
        fix_logprob_entries(list, legacy_top, &mut originals);
    });
}

/// Calls `f` with every complete text that a stream event carries besides its increments, in
/// document order.
///
/// Increments are not the only text in a stream: the Responses API repeats the whole text in
/// `response.output_text.done`, `response.refusal.done`, `response.reasoning_text.done`,
/// `response.reasoning_summary_text.done`, `response.function_call_arguments.done`,
/// `response.content_part.done`, `response.reasoning_summary_part.done`,
/// `response.output_item.added`/`.done` and the `response` of
/// `response.created`/`.in_progress`/`.completed`/`.incomplete`/`.failed`/`.queued`; Anthropic
/// sends the message in `message_start` and a tool call's initial `input` in
/// `content_block_start`; Ollama sends tool calls whole (`message.tool_calls[].function
/// .arguments`, an object). A masker must rewrite these as well, as whole texts. OpenAI chat
/// and completions chunks have none.
pub fn for_each_event_segment<'a>(event: &'a Value, mut f: impl FnMut(Segment<'a>)) {
    event_segments(event, &mut |scope, text: &'a str| {
        f(Segment { scope, text })
    });
}

/// Rewrites the complete texts of a stream event (see [`for_each_event_segment`]) like
/// [`rewrite_segments`](super::rewrite_segments). Returns how many changed.
pub fn rewrite_event_segments(
    event: &mut Value,
    f: impl FnMut(Scope, &str) -> Option<String>,
) -> usize {
    let mut rewrite = Rewriter::new(f);
    event_segments(event, &mut |scope, text| rewrite.apply(scope, text));
    rewrite.changed
}

/// What a chunk is, read once before descending into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    /// OpenAI chat or completions chunk.
    Choices,
    /// Responses `*.delta` of message or reasoning text: `delta` at (output_index,
    /// content_index), and `logprobs` of output text.
    ResponsesTextDelta,
    /// Responses `response.reasoning_summary_text.delta`: `delta` at (output_index,
    /// summary_index).
    ResponsesSummaryDelta,
    /// Responses `response.audio.transcript.delta`.
    ResponsesTranscriptDelta,
    /// Responses `*.delta` of tool-call input: `delta` at output_index.
    ResponsesArgumentsDelta,
    /// Responses `response.content_part.added`: the part starts its position's text.
    ResponsesPartAdded,
    /// Responses `response.reasoning_summary_part.added`: the same for a summary part.
    ResponsesSummaryPartAdded,
    /// Responses `response.content_part.done` and `response.reasoning_summary_part.done`: the
    /// complete part.
    ResponsesPartDone,
    /// A Responses `*.done` event with the complete text in a field.
    ResponsesDone(&'static str, Scope),
    /// Responses `response.output_item.added` / `.done`: a complete output item.
    ResponsesItem,
    /// Responses lifecycle events carrying the whole `response`.
    ResponsesSnapshot,
    /// Anthropic `message_start`.
    MessageStart,
    /// Anthropic `content_block_start`.
    BlockStart,
    /// Anthropic `content_block_delta`.
    BlockDelta,
    /// An Ollama `/api/chat` line: `message.content`, `message.thinking`.
    OllamaChat,
    /// An Ollama `/api/generate` line: `response`, `thinking`.
    OllamaGenerate,
    /// Anything else: no text.
    Other,
}

impl Event {
    fn of(chunk: &Value) -> Event {
        let Some(kind) = kind(chunk) else {
            return if chunk.get("choices").is_some() {
                Event::Choices
            } else if chunk.get("message").is_some_and(Value::is_object) {
                Event::OllamaChat
            } else if chunk.get("response").is_some_and(Value::is_string) {
                Event::OllamaGenerate
            } else {
                Event::Other
            };
        };
        match kind {
            "response.output_text.delta"
            | "response.refusal.delta"
            | "response.reasoning_text.delta" => Event::ResponsesTextDelta,
            "response.reasoning_summary_text.delta" => Event::ResponsesSummaryDelta,
            "response.audio.transcript.delta" => Event::ResponsesTranscriptDelta,
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                Event::ResponsesArgumentsDelta
            }
            "response.content_part.added" => Event::ResponsesPartAdded,
            "response.reasoning_summary_part.added" => Event::ResponsesSummaryPartAdded,
            "response.content_part.done" | "response.reasoning_summary_part.done" => {
                Event::ResponsesPartDone
            }
            "response.output_text.done"
            | "response.reasoning_text.done"
            | "response.reasoning_summary_text.done" => {
                Event::ResponsesDone("text", Scope::Assistant)
            }
            "response.refusal.done" => Event::ResponsesDone("refusal", Scope::Assistant),
            "response.function_call_arguments.done" => {
                Event::ResponsesDone("arguments", Scope::ToolCallArguments)
            }
            "response.custom_tool_call_input.done" => {
                Event::ResponsesDone("input", Scope::ToolCallArguments)
            }
            "response.output_item.added" | "response.output_item.done" => Event::ResponsesItem,
            "response.created"
            | "response.in_progress"
            | "response.completed"
            | "response.incomplete"
            | "response.failed"
            | "response.queued" => Event::ResponsesSnapshot,
            "message_start" => Event::MessageStart,
            "content_block_start" => Event::BlockStart,
            "content_block_delta" => Event::BlockDelta,
            _ => Event::Other,
        }
    }
}

/// A stream position field as `u32`: `fallback` when absent, saturating when out of range.
fn position(value: &Value, key: &str, fallback: usize) -> u32 {
    let n = value
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or(fallback as u64);
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn emit<'a, N: Node<'a>, F: FnMut(DeltaKey, N::Text)>(node: N, key: DeltaKey, f: &mut F) {
    if let Some(text) = node.text() {
        f(key, text);
    }
}

/// Emits the string under `field` of `node` at `key`.
fn emit_field<'a, N: Node<'a>, F: FnMut(DeltaKey, N::Text)>(
    node: N,
    field: &str,
    key: DeltaKey,
    f: &mut F,
) {
    if let Some(child) = node.get(field) {
        emit(child, key, f);
    }
}

fn deltas<'a, N: Node<'a>, F: FnMut(DeltaKey, N::Text)>(chunk: N, f: &mut F) {
    let v = chunk.peek();
    let event = Event::of(v);
    let output_index = position(v, "output_index", 0);
    let content_index = position(v, "content_index", 0);
    let summary_index = position(v, "summary_index", 0).min(SUMMARY_PART - 1);
    let block_index = position(v, "index", 0);
    let assistant = |sub_index| DeltaKey::new(Scope::Assistant, output_index, sub_index);
    match event {
        Event::Choices => choices(chunk, f),
        Event::ResponsesTextDelta => {
            let logprobs = LOGPROB_PART | content_index.min(LOGPROB_PART - 1);
            for (key, child) in chunk.entries() {
                match key {
                    "delta" => emit(child, assistant(content_index), f),
                    "logprobs" => logprob_tokens(child, assistant(logprobs), f),
                    _ => {}
                }
            }
        }
        Event::ResponsesSummaryDelta => {
            emit_field(chunk, "delta", assistant(SUMMARY_PART | summary_index), f);
        }
        Event::ResponsesTranscriptDelta => {
            let key = DeltaKey::new(Scope::Assistant, AUDIO_OUTPUT, 0);
            emit_field(chunk, "delta", key, f);
        }
        Event::ResponsesArgumentsDelta => {
            let key = DeltaKey::new(Scope::ToolCallArguments, output_index, 0);
            emit_field(chunk, "delta", key, f);
        }
        Event::ResponsesPartAdded | Event::ResponsesSummaryPartAdded => {
            let key = if event == Event::ResponsesPartAdded {
                assistant(content_index)
            } else {
                assistant(SUMMARY_PART | summary_index)
            };
            if let Some(part) = chunk.get("part") {
                let field = match kind(part.peek()) {
                    Some("refusal") => "refusal",
                    _ => "text",
                };
                emit_field(part, field, key, f);
            }
        }
        Event::BlockStart => {
            if let Some(block) = chunk.get("content_block") {
                let field = match kind(block.peek()) {
                    Some("text") => "text",
                    Some("thinking") => "thinking",
                    _ => return,
                };
                emit_field(
                    block,
                    field,
                    DeltaKey::new(Scope::Assistant, block_index, 0),
                    f,
                );
            }
        }
        Event::BlockDelta => {
            if let Some(delta) = chunk.get("delta") {
                let (field, scope) = match kind(delta.peek()) {
                    Some("text_delta") => ("text", Scope::Assistant),
                    Some("thinking_delta") => ("thinking", Scope::Assistant),
                    Some("input_json_delta") => ("partial_json", Scope::ToolCallArguments),
                    _ => return,
                };
                emit_field(delta, field, DeltaKey::new(scope, block_index, 0), f);
            }
        }
        Event::OllamaChat => {
            if let Some(message) = chunk.get("message") {
                ollama_text(message, f);
            }
        }
        Event::OllamaGenerate => {
            for (key, child) in chunk.entries() {
                match key {
                    "response" => emit(child, DeltaKey::new(Scope::Assistant, 0, 0), f),
                    "thinking" => emit(
                        child,
                        DeltaKey::new(Scope::Assistant, 0, REASONING_CONTENT),
                        f,
                    ),
                    _ => {}
                }
            }
        }
        Event::ResponsesPartDone
        | Event::ResponsesDone(..)
        | Event::ResponsesItem
        | Event::ResponsesSnapshot
        | Event::MessageStart
        | Event::Other => {}
    }
}

/// An Ollama chat `message`: `content` and `thinking`.
fn ollama_text<'a, N: Node<'a>, F: FnMut(DeltaKey, N::Text)>(message: N, f: &mut F) {
    for (key, child) in message.entries() {
        match key {
            "content" => emit(child, DeltaKey::new(Scope::Assistant, 0, 0), f),
            "thinking" => emit(
                child,
                DeltaKey::new(Scope::Assistant, 0, REASONING_CONTENT),
                f,
            ),
            _ => {}
        }
    }
}

/// OpenAI chat (`delta`) and completions (`text`) chunks, and their `logprobs`.
fn choices<'a, N: Node<'a>, F: FnMut(DeltaKey, N::Text)>(chunk: N, f: &mut F) {
    let Some(choices) = chunk.get("choices") else {
        return;
    };
    for (ordinal, choice) in choices.elements().enumerate() {
        let index = position(choice.peek(), "index", ordinal);
        for (key, child) in choice.entries() {
            match key {
                "text" => emit(child, DeltaKey::new(Scope::Assistant, index, 0), f),
                "delta" => chat_delta(child, index, f),
                "logprobs" => logprob_object(child, index, &mut |key, list, _| {
                    logprob_tokens(list, key, f);
                }),
                _ => {}
            }
        }
    }
}

fn chat_delta<'a, N: Node<'a>, F: FnMut(DeltaKey, N::Text)>(delta: N, choice: u32, f: &mut F) {
    let assistant = |sub_index| DeltaKey::new(Scope::Assistant, choice, sub_index);
    for (key, child) in delta.entries() {
        match key {
            "content" => emit(child, assistant(0), f),
            "refusal" => emit(child, assistant(REFUSAL), f),
            "reasoning_content" => emit(child, assistant(REASONING_CONTENT), f),
            "reasoning" => emit(child, assistant(REASONING), f),
            "audio" => emit_field(child, "transcript", assistant(AUDIO_TRANSCRIPT), f),
            "tool_calls" => {
                for (ordinal, call) in child.elements().enumerate() {
                    let key = DeltaKey::new(
                        Scope::ToolCallArguments,
                        choice,
                        position(call.peek(), "index", ordinal),
                    );
                    if let Some(function) = call.get("function") {
                        emit_field(function, "arguments", key, f);
                    }
                }
            }
            "function_call" => {
                let key = DeltaKey::new(Scope::ToolCallArguments, choice, 0);
                emit_field(child, "arguments", key, f);
            }
            _ => {}
        }
    }
}

/// Calls `g` with every logprob token list of a chunk, in the order [`deltas`] emits them:
/// the lists of each choice's `logprobs`, and the `logprobs` of a Responses text delta.
fn logprob_lists<'a, N: Node<'a>>(chunk: N, g: &mut impl FnMut(DeltaKey, N, Option<N>)) {
    match Event::of(chunk.peek()) {
        Event::Choices => {
            let Some(choices) = chunk.get("choices") else {
                return;
            };
            for (ordinal, choice) in choices.elements().enumerate() {
                let index = position(choice.peek(), "index", ordinal);
                if let Some(logprobs) = choice.get("logprobs") {
                    logprob_object(logprobs, index, g);
                }
            }
        }
        Event::ResponsesTextDelta => {
            let v = chunk.peek();
            let key = DeltaKey::new(
                Scope::Assistant,
                position(v, "output_index", 0),
                LOGPROB_PART | position(v, "content_index", 0).min(LOGPROB_PART - 1),
            );
            if let Some(list) = chunk.get("logprobs") {
                g(key, list, None);
            }
        }
        // A buffered Responses API response: `output[].content[].logprobs`, keyed as the
        // stream keys the same tokens.
        Event::Other if chunk.peek().get("object").and_then(Value::as_str) == Some("response") => {
            let Some(output) = chunk.get("output") else {
                return;
            };
            for (item_index, item) in output.elements().enumerate() {
                let Some(content) = item.get("content") else {
                    continue;
                };
                for (part_index, part) in content.elements().enumerate() {
                    let key = DeltaKey::new(
                        Scope::Assistant,
                        u32::try_from(item_index).unwrap_or(u32::MAX),
                        LOGPROB_PART
                            | u32::try_from(part_index)
                                .unwrap_or(u32::MAX)
                                .min(LOGPROB_PART - 1),
                    );
                    if let Some(list) = part.get("logprobs") {
                        g(key, list, None);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The token lists of one choice's `logprobs`: chat `content` and `refusal` (entries with a
/// `token`), and legacy completions `tokens` (strings) with their parallel `top_logprobs`.
fn logprob_object<'a, N: Node<'a>>(
    logprobs: N,
    choice: u32,
    g: &mut impl FnMut(DeltaKey, N, Option<N>),
) {
    let (mut tokens, mut top) = (None, None);
    for (key, child) in logprobs.entries() {
        match key {
            "content" => g(
                DeltaKey::new(Scope::Assistant, choice, LOGPROB_CONTENT),
                child,
                None,
            ),
            "refusal" => g(
                DeltaKey::new(Scope::Assistant, choice, LOGPROB_REFUSAL),
                child,
                None,
            ),
            "tokens" => tokens = Some(child),
            "top_logprobs" => top = Some(child),
            _ => {}
        }
    }
    if let Some(tokens) = tokens {
        g(
            DeltaKey::new(Scope::Assistant, choice, LOGPROB_CONTENT),
            tokens,
            top,
        );
    }
}

/// Emits the tokens of one logprob list: entries' `token`, or the entries themselves when
/// they are strings.
fn logprob_tokens<'a, N: Node<'a>, F: FnMut(DeltaKey, N::Text)>(list: N, key: DeltaKey, f: &mut F) {
    for entry in list.elements() {
        if entry.peek().is_string() {
            emit(entry, key, f);
        } else {
            emit_field(entry, "token", key, f);
        }
    }
}

/// After a rewrite, makes every changed entry of a logprob list consistent with its new token
/// (see [`DeltaKey`]). `originals` yields the tokens before the rewrite, in list order.
fn fix_logprob_entries(
    list: &mut Value,
    legacy_top: Option<&mut Value>,
    originals: &mut impl Iterator<Item = String>,
) {
    let Some(entries) = list.as_array_mut() else {
        return;
    };
    let mut legacy_top = legacy_top.and_then(Value::as_array_mut);
    for (i, entry) in entries.iter_mut().enumerate() {
        match entry {
            Value::String(token) => {
                let Some(original) = originals.next() else {
                    return;
                };
                if *token == original {
                    continue;
                }
                // Legacy completions: `top_logprobs[i]` maps alternative tokens to logprobs.
                if let Some(Value::Object(top)) = legacy_top.as_mut().and_then(|t| t.get_mut(i)) {
                    let kept = top.remove(&original);
                    top.clear();
                    if let Some(logprob) = kept {
                        top.insert(token.clone(), logprob);
                    }
                }
            }
            Value::Object(entry) => {
                let Some(Value::String(token)) = entry.get("token") else {
                    continue;
                };
                let Some(original) = originals.next() else {
                    return;
                };
                if *token == original {
                    continue;
                }
                let token = token.clone();
                if let Some(bytes @ Value::Array(_)) = entry.get_mut("bytes") {
                    *bytes = utf8_bytes(&token);
                }
                if let Some(Value::Array(top)) = entry.get_mut("top_logprobs") {
                    top.retain(|alt| alt.get("token").and_then(Value::as_str) == Some(&original));
                    for alt in top.iter_mut().filter_map(Value::as_object_mut) {
                        alt.insert("token".to_owned(), Value::String(token.clone()));
                        if let Some(bytes @ Value::Array(_)) = alt.get_mut("bytes") {
                            *bytes = utf8_bytes(&token);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// A token's `bytes`: its UTF-8 as an array of numbers.
fn utf8_bytes(text: &str) -> Value {
    Value::Array(text.bytes().map(Value::from).collect())
}

fn event_segments<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(event: N, f: &mut F) {
    match Event::of(event.peek()) {
        Event::ResponsesDone(field, scope) => walk::field(event, field, scope, f),
        Event::ResponsesPartDone => {
            if let Some(part) = event.get("part") {
                walk::responses_part(part, Scope::Assistant, f);
            }
        }
        Event::ResponsesItem => {
            if let Some(item) = event.get("item") {
                walk::response_item(item, Scope::Assistant, f);
            }
        }
        Event::ResponsesSnapshot => {
            if let Some(response) = event.get("response") {
                walk::responses_response(response, f);
            }
        }
        Event::MessageStart => {
            if let Some(message) = event.get("message") {
                walk::anthropic_response(message, f);
            }
        }
        Event::BlockStart => {
            // A text or thinking block's initial text is the first increment of its position,
            // not a complete text; a tool call's initial `input` is complete.
            if let Some(block) = event.get("content_block")
                && !matches!(kind(block.peek()), Some("text" | "thinking"))
            {
                walk::anthropic_block(block, Scope::Assistant, f);
            }
        }
        Event::OllamaChat => {
            // Ollama sends a tool call whole, its `arguments` an object.
            let calls = event
                .get("message")
                .and_then(|message| message.get("tool_calls"));
            for call in calls.into_iter().flat_map(|calls| calls.elements()) {
                if let Some(arguments) = call
                    .get("function")
                    .and_then(|function| function.get("arguments"))
                {
                    walk::leaves(arguments, Scope::ToolCallArguments, f);
                }
            }
        }
        Event::Choices
        | Event::ResponsesTextDelta
        | Event::ResponsesSummaryDelta
        | Event::ResponsesTranscriptDelta
        | Event::ResponsesArgumentsDelta
        | Event::ResponsesPartAdded
        | Event::ResponsesSummaryPartAdded
        | Event::BlockDelta
        | Event::OllamaGenerate
        | Event::Other => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use Scope::{Assistant, ToolCallArguments};

    fn deltas_of(chunk: &Value) -> Vec<(DeltaKey, String)> {
        let mut out = Vec::new();
        for_each_delta(chunk, |d| out.push((d.key, d.text.to_owned())));
        out
    }

    fn event_segments_of(event: &Value) -> Vec<(Scope, String)> {
        let mut out = Vec::new();
        for_each_event_segment(event, |s| out.push((s.scope, s.text.to_owned())));
        out
    }

    fn key(scope: Scope, index: u32, sub_index: u32) -> DeltaKey {
        DeltaKey::new(scope, index, sub_index)
    }

    #[test]
    fn openai_chat_chunks() {
        let role = json!({"id":"c","object":"chat.completion.chunk","choices":[
            {"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]});
        assert_eq!(deltas_of(&role), [(key(Assistant, 0, 0), String::new())]);

        let content = json!({"object":"chat.completion.chunk","choices":[
            {"index":0,"delta":{"content":"Hel"}},
            {"index":3,"delta":{"refusal":"I can't"}}]});
        assert_eq!(
            deltas_of(&content),
            [
                (key(Assistant, 0, 0), "Hel".into()),
                (key(Assistant, 3, 1), "I can't".into())
            ]
        );

        let tools = json!({"object":"chat.completion.chunk","choices":[{"index":1,"delta":{"tool_calls":[
            {"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}},
            {"index":2,"function":{"arguments":"{\"q\":"}}]}}]});
        assert_eq!(
            deltas_of(&tools),
            [
                (key(ToolCallArguments, 1, 0), String::new()),
                (key(ToolCallArguments, 1, 2), "{\"q\":".into())
            ]
        );

        let legacy = json!({"choices":[{"delta":{"function_call":{"arguments":"{}"}}}]});
        assert_eq!(
            deltas_of(&legacy),
            [(key(ToolCallArguments, 0, 0), "{}".into())]
        );

        let finish = json!({"object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],
            "usage":{"total_tokens":3}});
        assert!(deltas_of(&finish).is_empty());
        assert!(event_segments_of(&content).is_empty());
    }

    #[test]
    fn openai_chat_reasoning_audio_and_logprobs() {
        let chunk = json!({"object":"chat.completion.chunk","choices":[{"index":1,
            "delta":{"reasoning_content":"r1","reasoning":"r2","audio":{"id":"a","data":"AAAA","transcript":"t"}},
            "logprobs":{"content":[{"token":"a","logprob":0.0,"bytes":[97],"top_logprobs":[]},
                                   {"token":"b","logprob":0.0,"bytes":null}],
                        "refusal":[{"token":"no","logprob":0.0}]}}]});
        assert_eq!(
            deltas_of(&chunk),
            [
                (key(Assistant, 1, REASONING_CONTENT), "r1".into()),
                (key(Assistant, 1, REASONING), "r2".into()),
                (key(Assistant, 1, AUDIO_TRANSCRIPT), "t".into()),
                (key(Assistant, 1, LOGPROB_CONTENT), "a".into()),
                (key(Assistant, 1, LOGPROB_CONTENT), "b".into()),
                (key(Assistant, 1, LOGPROB_REFUSAL), "no".into()),
            ]
        );
        let mut tokens = Vec::new();
        for_each_logprob_token(&chunk, |d| tokens.push(d.text));
        assert_eq!(tokens, ["a", "b", "no"]);

        // Rewriting a token fixes its bytes (null stays null) and alternatives; the others keep
        // theirs.
        let mut chunk = json!({"choices":[{"index":0,"logprobs":{"content":[
            {"token":"4111","bytes":[52,49,49,49],"top_logprobs":[
                {"token":"4111","logprob":-0.1,"bytes":[52,49,49,49]},{"token":"411","logprob":-2.0,"bytes":[52,49,49]}]},
            {"token":"ok","bytes":null,"top_logprobs":[{"token":"ok","logprob":0.0},{"token":"OK","logprob":-1.0}]}]}}]});
        let changed = rewrite_deltas(&mut chunk, |_, t| Some(t.replace("4111", "")));
        assert_eq!(changed, 1);
        assert_eq!(
            chunk["choices"][0]["logprobs"]["content"],
            json!([
                {"token":"","bytes":[],"top_logprobs":[{"token":"","logprob":-0.1,"bytes":[]}]},
                {"token":"ok","bytes":null,"top_logprobs":[{"token":"ok","logprob":0.0},{"token":"OK","logprob":-1.0}]}
            ])
        );

        // Legacy completions: tokens are strings, alternatives a map per position.
        let mut legacy = json!({"object":"text_completion","choices":[{"index":0,"text":"a b","logprobs":{
            "tokens":["a"," b"],"token_logprobs":[-0.1,-0.2],"top_logprobs":[{"a":-0.1,"A":-3.0},{" b":-0.2," B":-2.0}],
            "text_offset":[0,1]}}]});
        assert_eq!(
            rewrite_logprob_tokens(&mut legacy, |_, t| Some(t.replace('b', "<X>"))),
            1
        );
        assert_eq!(legacy["choices"][0]["text"], "a b", "not a logprob token");
        assert_eq!(
            legacy["choices"][0]["logprobs"]["tokens"],
            json!(["a", " <X>"])
        );
        assert_eq!(
            legacy["choices"][0]["logprobs"]["top_logprobs"],
            json!([{"a":-0.1,"A":-3.0},{" <X>":-0.2}])
        );
        // Identity rewrites change nothing.
        let original = legacy.clone();
        assert_eq!(
            rewrite_logprob_tokens(&mut legacy, |_, t| Some(t.to_owned())),
            0
        );
        assert_eq!(legacy, original);
    }

    #[test]
    fn ollama_lines() {
        let chat = json!({"model":"llama3","created_at":"2025-01-01T00:00:00Z",
            "message":{"role":"assistant","content":"Hel","thinking":"hmm"},"done":false});
        assert_eq!(
            deltas_of(&chat),
            [
                (key(Assistant, 0, 0), "Hel".into()),
                (key(Assistant, 0, REASONING_CONTENT), "hmm".into())
            ]
        );
        let generate = json!({"model":"llama3","response":"lo","done":false});
        assert_eq!(deltas_of(&generate), [(key(Assistant, 0, 0), "lo".into())]);
        let tool = json!({"message":{"role":"assistant","content":"","tool_calls":[
            {"function":{"name":"f","arguments":{"path":"/etc","n":1}}}]},"done":false});
        assert_eq!(
            event_segments_of(&tool),
            [(ToolCallArguments, "/etc".into())]
        );
        let end = json!({"model":"llama3","done":true,"context":[1,2,3],"total_duration":5});
        assert!(deltas_of(&end).is_empty());
        let not_ollama = json!({"message":"text","response":{"x":1}});
        assert!(deltas_of(&not_ollama).is_empty());
    }

    #[test]
    fn openai_completions_chunks() {
        let chunk = json!({"object":"text_completion","choices":[
            {"index":0,"text":" once","logprobs":null},{"text":" upon"}]});
        assert_eq!(
            deltas_of(&chunk),
            [
                (key(Assistant, 0, 0), " once".into()),
                (key(Assistant, 1, 0), " upon".into())
            ]
        );
    }

    #[test]
    fn responses_api_events() {
        let text = json!({"type":"response.output_text.delta","item_id":"msg","output_index":1,
            "content_index":2,"delta":"Hi","sequence_number":7});
        assert_eq!(deltas_of(&text), [(key(Assistant, 1, 2), "Hi".into())]);

        let refusal = json!({"type":"response.refusal.delta","output_index":0,"content_index":1,"delta":"no"});
        assert_eq!(deltas_of(&refusal), [(key(Assistant, 0, 1), "no".into())]);

        let arguments = json!({"type":"response.function_call_arguments.delta","item_id":"fc",
            "output_index":3,"delta":"{\"city\":"});
        assert_eq!(
            deltas_of(&arguments),
            [(key(ToolCallArguments, 3, 0), "{\"city\":".into())]
        );

        let added = json!({"type":"response.content_part.added","output_index":1,"content_index":0,
            "part":{"type":"output_text","text":"","annotations":[]}});
        assert_eq!(deltas_of(&added), [(key(Assistant, 1, 0), String::new())]);
        assert!(event_segments_of(&added).is_empty());

        // Complete texts are event segments, not deltas.
        let done = json!({"type":"response.output_text.done","output_index":1,"content_index":2,"text":"Hi there"});
        assert!(deltas_of(&done).is_empty());
        assert_eq!(event_segments_of(&done), [(Assistant, "Hi there".into())]);

        let args_done = json!({"type":"response.function_call_arguments.done","output_index":3,"arguments":"{}"});
        assert_eq!(
            event_segments_of(&args_done),
            [(ToolCallArguments, "{}".into())]
        );

        let part_done = json!({"type":"response.content_part.done","output_index":1,"content_index":0,
            "part":{"type":"output_text","text":"whole","annotations":[]}});
        assert_eq!(event_segments_of(&part_done), [(Assistant, "whole".into())]);

        let item_done = json!({"type":"response.output_item.done","output_index":1,"item":{
            "type":"message","role":"assistant","content":[{"type":"output_text","text":"item text"}]}});
        assert_eq!(
            event_segments_of(&item_done),
            [(Assistant, "item text".into())]
        );

        let completed = json!({"type":"response.completed","response":{"object":"response","output":[
            {"type":"message","role":"assistant","content":[{"type":"output_text","text":"final"}]},
            {"type":"function_call","arguments":"{\"a\":1}"}]}});
        assert_eq!(
            event_segments_of(&completed),
            [
                (Assistant, "final".into()),
                (ToolCallArguments, "{\"a\":1}".into())
            ]
        );
        assert!(deltas_of(&completed).is_empty());

        let summary = json!({"type":"response.reasoning_summary_text.delta","output_index":0,
            "summary_index":1,"delta":"thinking"});
        assert_eq!(
            deltas_of(&summary),
            [(key(Assistant, 0, SUMMARY_PART | 1), "thinking".into())]
        );
        assert!(event_segments_of(&summary).is_empty());

        let reasoning = json!({"type":"response.reasoning_text.delta","output_index":0,"content_index":0,"delta":"step"});
        assert_eq!(
            deltas_of(&reasoning),
            [(key(Assistant, 0, 0), "step".into())]
        );
        let transcript = json!({"type":"response.audio.transcript.delta","delta":"spoken"});
        assert_eq!(
            deltas_of(&transcript),
            [(key(Assistant, AUDIO_OUTPUT, 0), "spoken".into())]
        );
        let summary_added = json!({"type":"response.reasoning_summary_part.added","output_index":0,
            "summary_index":0,"part":{"type":"summary_text","text":""}});
        assert_eq!(
            deltas_of(&summary_added),
            [(key(Assistant, 0, SUMMARY_PART), String::new())]
        );
        for (done, text) in [
            json!({"type":"response.reasoning_text.done","output_index":0,"content_index":0,"text":"all steps"}),
            json!({"type":"response.reasoning_summary_text.done","output_index":0,"summary_index":0,"text":"all steps"}),
            json!({"type":"response.reasoning_summary_part.done","output_index":0,"summary_index":0,
                   "part":{"type":"summary_text","text":"all steps"}}),
        ]
        .into_iter()
        .map(|done| (done, "all steps"))
        {
            assert!(deltas_of(&done).is_empty(), "{done}");
            assert_eq!(event_segments_of(&done), [(Assistant, text.into())], "{done}");
        }
        let with_logprobs = json!({"type":"response.output_text.delta","output_index":2,"content_index":1,
            "delta":"Hi","logprobs":[{"token":"Hi","logprob":-0.1,"top_logprobs":[]}]});
        assert_eq!(
            deltas_of(&with_logprobs),
            [
                (key(Assistant, 2, 1), "Hi".into()),
                (key(Assistant, 2, LOGPROB_PART | 1), "Hi".into())
            ]
        );
    }

    #[test]
    fn anthropic_events() {
        let start = json!({"type":"message_start","message":{"id":"msg","type":"message","role":"assistant",
            "content":[],"model":"claude","usage":{"input_tokens":5}}});
        assert!(deltas_of(&start).is_empty());
        assert!(event_segments_of(&start).is_empty());

        let text_start = json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}});
        assert_eq!(
            deltas_of(&text_start),
            [(key(Assistant, 0, 0), String::new())]
        );
        assert!(event_segments_of(&text_start).is_empty());

        let text = json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}});
        assert_eq!(deltas_of(&text), [(key(Assistant, 0, 0), "Hello".into())]);

        let tool_start = json!({"type":"content_block_start","index":1,"content_block":{
            "type":"tool_use","id":"tu","name":"get_weather","input":{}}});
        assert!(deltas_of(&tool_start).is_empty());
        assert!(event_segments_of(&tool_start).is_empty());
        let tool_start_with_input = json!({"type":"content_block_start","index":1,"content_block":{
            "type":"tool_use","id":"tu","name":"f","input":{"path":"/etc"}}});
        assert_eq!(
            event_segments_of(&tool_start_with_input),
            [(ToolCallArguments, "/etc".into())]
        );

        let json_delta = json!({"type":"content_block_delta","index":1,
            "delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Fra"}});
        assert_eq!(
            deltas_of(&json_delta),
            [(
                key(ToolCallArguments, 1, 0),
                "{\"location\": \"San Fra".into()
            )]
        );

        let thinking = json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}});
        assert_eq!(deltas_of(&thinking), [(key(Assistant, 0, 0), "hmm".into())]);
        let thinking_start = json!({"type":"content_block_start","index":0,
            "content_block":{"type":"thinking","thinking":"","signature":""}});
        assert_eq!(
            deltas_of(&thinking_start),
            [(key(Assistant, 0, 0), String::new())]
        );
        assert!(event_segments_of(&thinking_start).is_empty());
        let signature = json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQ"}});
        assert!(deltas_of(&signature).is_empty());
        for quiet in [
            json!({"type":"ping"}),
            json!({"type":"content_block_stop","index":0}),
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}),
            json!({"type":"message_stop"}),
        ] {
            assert!(deltas_of(&quiet).is_empty(), "{quiet}");
            assert!(event_segments_of(&quiet).is_empty(), "{quiet}");
        }

        let start_with_content = json!({"type":"message_start","message":{"type":"message","role":"assistant",
            "content":[{"type":"text","text":"prefilled"}]}});
        assert_eq!(
            event_segments_of(&start_with_content),
            [(Assistant, "prefilled".into())]
        );
    }

    #[test]
    fn rewrite_deltas_changes_only_the_increment() {
        let mut chunk = json!({"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"card 4111"}});
        let changed = rewrite_deltas(&mut chunk, |key, text| {
            assert_eq!(key, DeltaKey::new(Assistant, 2, 0));
            Some(text.replace("4111", "****"))
        });
        assert_eq!(changed, 1);
        assert_eq!(
            chunk,
            json!({"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"card ****"}})
        );

        let mut chunk = json!({"choices":[{"index":0,"delta":{"content":"a","tool_calls":[{"index":0,"function":{"arguments":"b"}}]}}]});
        let original = chunk.clone();
        assert_eq!(rewrite_deltas(&mut chunk, |_, t| Some(t.to_owned())), 0);
        assert_eq!(rewrite_deltas(&mut chunk, |_, _| None), 0);
        assert_eq!(chunk, original);
        assert_eq!(rewrite_deltas(&mut chunk, |_, t| Some(t.to_uppercase())), 2);
        assert_eq!(chunk["choices"][0]["delta"]["content"], "A");
        assert_eq!(
            chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "B"
        );
        assert_eq!(chunk["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
    }

    #[test]
    fn rewrite_event_segments_masks_complete_texts() {
        let mut event = json!({"type":"response.output_text.done","output_index":0,"content_index":0,
            "text":"token sk-abc","sequence_number":9});
        let changed = rewrite_event_segments(&mut event, |scope, text| {
            assert_eq!(scope, Assistant);
            Some(text.replace("sk-abc", "[redacted]"))
        });
        assert_eq!(changed, 1);
        assert_eq!(event["text"], "token [redacted]");
        assert_eq!(event["sequence_number"], 9);
    }

    #[test]
    fn odd_chunks_yield_nothing() {
        for chunk in [
            json!(null),
            json!("data"),
            json!([1, 2]),
            json!({"choices":"x"}),
            json!({"choices":[null, 1, {"delta":"x"}, {"delta":{"content":5,"tool_calls":[{"function":"x"}]}}]}),
            json!({"type":5,"delta":"x"}),
            json!({"type":"response.output_text.delta","delta":{"text":"x"}}),
            json!({"type":"content_block_delta","delta":"x"}),
            json!({"type":"content_block_delta","delta":{"type":"text_delta","text":["x"]}}),
            json!({"type":"response.completed","response":"x"}),
        ] {
            assert!(deltas_of(&chunk).is_empty(), "{chunk}");
            assert!(event_segments_of(&chunk).is_empty(), "{chunk}");
        }
    }

    #[test]
    fn positions_saturate_and_fall_back() {
        let chunk = json!({"choices":[{"index":u64::MAX,"delta":{"content":"x"}},{"index":-1,"delta":{"content":"y"}}]});
        assert_eq!(
            deltas_of(&chunk),
            [
                (key(Assistant, u32::MAX, 0), "x".into()),
                (key(Assistant, 1, 0), "y".into())
            ]
        );
    }

    /// A text split into increments and streamed as chunks of one format.
    fn chunks(format: usize, pieces: &[String], position: u32) -> Vec<Value> {
        pieces
            .iter()
            .map(|piece| match format {
                0 => json!({"object":"chat.completion.chunk","choices":[{"index":position,"delta":{"content":piece}}]}),
                1 => json!({"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[
                    {"index":position,"function":{"arguments":piece}}]}}]}),
                2 => json!({"object":"text_completion","choices":[{"index":position,"text":piece}]}),
                3 => json!({"type":"response.output_text.delta","output_index":position,"content_index":0,"delta":piece}),
                4 => json!({"type":"response.function_call_arguments.delta","output_index":position,"delta":piece}),
                5 => json!({"type":"content_block_delta","index":position,"delta":{"type":"text_delta","text":piece}}),
                _ => json!({"type":"content_block_delta","index":position,"delta":{"type":"input_json_delta","partial_json":piece}}),
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Interleaved streams of two positions reassemble per key, and rewriting each increment
        /// rewrites exactly that increment.
        #[test]
        fn increments_reassemble_per_key(
            format in 0usize..7,
            a in prop::collection::vec(".{0,6}", 1..6),
            b in prop::collection::vec(".{0,6}", 1..6),
        ) {
            let mut stream = Vec::new();
            let (first, second) = (chunks(format, &a, 0), chunks(format, &b, 1));
            let mut second = second.into_iter();
            for chunk in first {
                stream.push(chunk);
                stream.extend(second.next());
            }
            stream.extend(second);

            let mut texts: BTreeMap<DeltaKey, String> = BTreeMap::new();
            for chunk in &mut stream {
                let before = chunk.clone();
                let mut seen = 0;
                for_each_delta(chunk, |delta| {
                    seen += 1;
                    texts.entry(delta.key).or_default().push_str(delta.text);
                });
                prop_assert_eq!(seen, 1);
                let changed = rewrite_deltas(chunk, |_, text| Some(format!("<{text}>")));
                prop_assert_eq!(changed, 1);
                let mut after = Vec::new();
                for_each_delta(chunk, |delta| after.push(delta.text.to_owned()));
                let mut expected = Vec::new();
                for_each_delta(&before, |delta| expected.push(format!("<{}>", delta.text)));
                prop_assert_eq!(after, expected);
            }
            let texts: Vec<String> = texts.into_values().collect();
            prop_assert_eq!(texts, vec![a.concat(), b.concat()]);
        }
    }
}
