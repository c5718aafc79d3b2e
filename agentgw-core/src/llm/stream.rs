//! Streamed chunks: text increments (deltas) and the complete texts some events repeat.
//!
//! One function serves every stream format: a chunk says what it is (`choices` for OpenAI chat
//! and completions, `type: "response.*"` for the Responses API, `type: "content_block_*"` and
//! `message_start` for Anthropic), so no format needs to be passed in.

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
/// | chat `choices[].delta.tool_calls[].function.arguments`               | `ToolCallArguments` | choice `index` | tool call `index` |
/// | chat `choices[].delta.function_call.arguments` (legacy)              | `ToolCallArguments` | choice `index` | 0                 |
/// | completions `choices[].text`                                         | `Assistant`         | choice `index` | 0                 |
/// | Responses `response.output_text.delta`, `response.refusal.delta`     | `Assistant`         | `output_index` | `content_index`   |
/// | Responses `response.content_part.added` (`part.text`, `part.refusal`) | `Assistant`        | `output_index` | `content_index`   |
/// | Responses `response.function_call_arguments.delta`, `response.custom_tool_call_input.delta` | `ToolCallArguments` | `output_index` | 0 |
/// | Anthropic `content_block_start` of a `text` block (`content_block.text`) | `Assistant`     | `index`        | 0                 |
/// | Anthropic `content_block_delta` `text_delta` (`delta.text`)          | `Assistant`         | `index`        | 0                 |
/// | Anthropic `content_block_delta` `input_json_delta` (`delta.partial_json`) | `ToolCallArguments` | `index`  | 0                 |
///
/// A missing choice or tool call `index` is taken from the array position; a missing
/// `output_index`, `content_index` or block `index` is 0. Reasoning and thinking deltas are not
/// text deltas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeltaKey {
    /// Who writes the text.
    pub scope: Scope,
    /// The choice, output item or content block.
    pub index: u32,
    /// The position within it: tool call, content part, or 0.
    pub sub_index: u32,
}

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
    let mut rewrite = Rewriter::new(f);
    deltas(chunk, &mut |key, text| rewrite.apply(key, text));
    rewrite.changed
}

/// Calls `f` with every complete text that a stream event carries besides its increments, in
/// document order.
///
/// Increments are not the only text in a stream: the Responses API repeats the whole text in
/// `response.output_text.done`, `response.refusal.done`, `response.function_call_arguments.done`,
/// `response.content_part.done`, `response.output_item.added`/`.done` and the `response` of
/// `response.created`/`.in_progress`/`.completed`/`.incomplete`/`.failed`/`.queued`; Anthropic
/// sends the message in `message_start` and a tool call's initial `input` in
/// `content_block_start`. A masker must rewrite these as well, as whole texts. OpenAI chat and
/// completions chunks have none.
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
    /// Responses `*.delta` of message text: `delta` at (output_index, content_index).
    ResponsesTextDelta,
    /// Responses `*.delta` of tool-call input: `delta` at output_index.
    ResponsesArgumentsDelta,
    /// Responses `response.content_part.added`: the part starts its position's text.
    ResponsesPartAdded,
    /// Responses `response.content_part.done`: the complete part.
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
    /// Anything else: no text.
    Other,
}

impl Event {
    fn of(chunk: &Value) -> Event {
        let Some(kind) = kind(chunk) else {
            return if chunk.get("choices").is_some() {
                Event::Choices
            } else {
                Event::Other
            };
        };
        match kind {
            "response.output_text.delta" | "response.refusal.delta" => Event::ResponsesTextDelta,
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                Event::ResponsesArgumentsDelta
            }
            "response.content_part.added" => Event::ResponsesPartAdded,
            "response.content_part.done" => Event::ResponsesPartDone,
            "response.output_text.done" => Event::ResponsesDone("text", Scope::Assistant),
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

fn deltas<'a, N: Node<'a>, F: FnMut(DeltaKey, N::Text)>(chunk: N, f: &mut F) {
    let v = chunk.peek();
    let event = Event::of(v);
    let output_index = position(v, "output_index", 0);
    let content_index = position(v, "content_index", 0);
    let block_index = position(v, "index", 0);
    match event {
        Event::Choices => choices(chunk, f),
        Event::ResponsesTextDelta => {
            if let Some(delta) = chunk.get("delta") {
                emit(
                    delta,
                    DeltaKey::new(Scope::Assistant, output_index, content_index),
                    f,
                );
            }
        }
        Event::ResponsesArgumentsDelta => {
            if let Some(delta) = chunk.get("delta") {
                emit(
                    delta,
                    DeltaKey::new(Scope::ToolCallArguments, output_index, 0),
                    f,
                );
            }
        }
        Event::ResponsesPartAdded => {
            let key = DeltaKey::new(Scope::Assistant, output_index, content_index);
            if let Some(part) = chunk.get("part") {
                let field = match kind(part.peek()) {
                    Some("output_text" | "text") => "text",
                    Some("refusal") => "refusal",
                    _ => return,
                };
                if let Some(text) = part.get(field) {
                    emit(text, key, f);
                }
            }
        }
        Event::BlockStart => {
            if let Some(block) = chunk.get("content_block")
                && kind(block.peek()) == Some("text")
                && let Some(text) = block.get("text")
            {
                emit(text, DeltaKey::new(Scope::Assistant, block_index, 0), f);
            }
        }
        Event::BlockDelta => {
            if let Some(delta) = chunk.get("delta") {
                let (field, scope) = match kind(delta.peek()) {
                    Some("text_delta") => ("text", Scope::Assistant),
                    Some("input_json_delta") => ("partial_json", Scope::ToolCallArguments),
                    _ => return,
                };
                if let Some(text) = delta.get(field) {
                    emit(text, DeltaKey::new(scope, block_index, 0), f);
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

/// OpenAI chat (`delta`) and completions (`text`) chunks.
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
                _ => {}
            }
        }
    }
}

fn chat_delta<'a, N: Node<'a>, F: FnMut(DeltaKey, N::Text)>(delta: N, choice: u32, f: &mut F) {
    for (key, child) in delta.entries() {
        match key {
            "content" => emit(child, DeltaKey::new(Scope::Assistant, choice, 0), f),
            "refusal" => emit(child, DeltaKey::new(Scope::Assistant, choice, 1), f),
            "tool_calls" => {
                for (ordinal, call) in child.elements().enumerate() {
                    let key = DeltaKey::new(
                        Scope::ToolCallArguments,
                        choice,
                        position(call.peek(), "index", ordinal),
                    );
                    if let Some(arguments) = call
                        .get("function")
                        .and_then(|function| function.get("arguments"))
                    {
                        emit(arguments, key, f);
                    }
                }
            }
            "function_call" => {
                if let Some(arguments) = child.get("arguments") {
                    emit(
                        arguments,
                        DeltaKey::new(Scope::ToolCallArguments, choice, 0),
                        f,
                    );
                }
            }
            _ => {}
        }
    }
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
            // A text block's initial text is the first increment of its position, not a
            // complete text; a tool call's initial `input` is complete.
            if let Some(block) = event.get("content_block")
                && kind(block.peek()) != Some("text")
            {
                walk::anthropic_block(block, Scope::Assistant, f);
            }
        }
        Event::Choices
        | Event::ResponsesTextDelta
        | Event::ResponsesArgumentsDelta
        | Event::ResponsesPartAdded
        | Event::BlockDelta
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

        let other = json!({"type":"response.reasoning_summary_text.delta","delta":"thinking"});
        assert!(deltas_of(&other).is_empty());
        assert!(event_segments_of(&other).is_empty());
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
        assert!(deltas_of(&thinking).is_empty());
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
