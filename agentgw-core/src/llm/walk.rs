//! The walkers: which JSON fields of each format are text, and with which scope.
//!
//! Every walker is written once, generic over [`Node`], which is implemented for `&Value` (to
//! read) and `&mut Value` (to rewrite). A walker reads what it must decide on (a role, a block
//! type) through [`Node::peek`], then consumes the node to descend into its children; the
//! entry iterator hands out disjoint children, so one pass reaches every field.

use serde_json::Value;

use super::{Direction, Format, Scope};

/// A JSON node that is either shared or exclusive; `Text` is what a visitor gets for a string.
pub(super) trait Node<'a>: Sized {
    /// `&'a str` for reading, `&'a mut String` for rewriting.
    type Text;

    /// A shared view of the node, to read a role or a type before descending.
    fn peek(&self) -> &Value;

    /// The child under `key`, when the node is an object holding it.
    fn get(self, key: &str) -> Option<Self>;

    /// The object's entries in document order (nothing when the node is not an object).
    fn entries(self) -> impl Iterator<Item = (&'a str, Self)>;

    /// The array's elements (nothing when the node is not an array).
    fn elements(self) -> impl Iterator<Item = Self>;

    /// The string, when the node is one.
    fn text(self) -> Option<Self::Text>;
}

impl<'a> Node<'a> for &'a Value {
    type Text = &'a str;

    fn peek(&self) -> &Value {
        self
    }

    fn get(self, key: &str) -> Option<Self> {
        Value::get(self, key)
    }

    fn entries(self) -> impl Iterator<Item = (&'a str, Self)> {
        self.as_object()
            .into_iter()
            .flatten()
            .map(|(key, value)| (key.as_str(), value))
    }

    fn elements(self) -> impl Iterator<Item = Self> {
        self.as_array().into_iter().flatten()
    }

    fn text(self) -> Option<&'a str> {
        self.as_str()
    }
}

impl<'a> Node<'a> for &'a mut Value {
    type Text = &'a mut String;

    fn peek(&self) -> &Value {
        self
    }

    fn get(self, key: &str) -> Option<Self> {
        self.get_mut(key)
    }

    fn entries(self) -> impl Iterator<Item = (&'a str, Self)> {
        self.as_object_mut()
            .into_iter()
            .flat_map(|map| map.iter_mut())
            .map(|(key, value)| (key.as_str(), value))
    }

    fn elements(self) -> impl Iterator<Item = Self> {
        self.as_array_mut().into_iter().flatten()
    }

    fn text(self) -> Option<&'a mut String> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }
}

/// The `type` field of an object, if it is a string.
pub(super) fn kind(value: &Value) -> Option<&str> {
    value.get("type").and_then(Value::as_str)
}

/// Visits `node` if it is a string.
pub(super) fn text<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(node: N, scope: Scope, f: &mut F) {
    if let Some(text) = node.text() {
        f(scope, text);
    }
}

/// Visits the string under `key` of `node`.
pub(super) fn field<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(
    node: N,
    key: &str,
    scope: Scope,
    f: &mut F,
) {
    if let Some(child) = node.get(key) {
        text(child, scope, f);
    }
}

/// Visits every string leaf of a JSON value (object keys are not text).
pub(super) fn leaves<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(node: N, scope: Scope, f: &mut F) {
    match node.peek() {
        Value::String(_) => text(node, scope, f),
        Value::Array(_) => node.elements().for_each(|child| leaves(child, scope, f)),
        Value::Object(_) => node
            .entries()
            .for_each(|(_, child)| leaves(child, scope, f)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Walks a whole payload of `format` in `direction`.
pub(super) fn payload<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(
    root: N,
    format: Format,
    direction: Direction,
    f: &mut F,
) {
    match (format, direction) {
        (Format::OpenAiChat, Direction::Request) => chat_request(root, f),
        (Format::OpenAiChat, Direction::Response) => chat_response(root, f),
        (Format::OpenAiCompletions, Direction::Request) => completions_request(root, f),
        (Format::OpenAiCompletions, Direction::Response) => completions_response(root, f),
        (Format::OpenAiResponses, Direction::Request) => responses_request(root, f),
        (Format::OpenAiResponses, Direction::Response) => responses_response(root, f),
        (Format::AnthropicMessages, Direction::Request) => anthropic_request(root, f),
        (Format::AnthropicMessages, Direction::Response) => anthropic_response(root, f),
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI chat completions

/// The scope of an OpenAI (chat or Responses) message role; `default` when absent or unknown.
fn openai_role(message: &Value, default: Scope) -> Scope {
    match message.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => Scope::System,
        Some("user") => Scope::User,
        Some("assistant") => Scope::Assistant,
        Some("tool" | "function") => Scope::ToolResult,
        _ => default,
    }
}

fn chat_request<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(root: N, f: &mut F) {
    for (key, child) in root.entries() {
        match key {
            // An unknown role is read as user input: text no rule looks at would be a bypass.
            "messages" => child
                .elements()
                .for_each(|message| chat_message(message, Scope::User, f)),
            // `{type: "function", function: {...}}` or `{type: "custom", custom: {...}}`.
            "tools" => {
                for tool in child.elements() {
                    for (key, definition) in tool.entries() {
                        if matches!(key, "function" | "custom") {
                            tool_definition(definition, f);
                        }
                    }
                }
            }
            // The legacy `functions` list: definitions without a wrapper.
            "functions" => child
                .elements()
                .for_each(|definition| tool_definition(definition, f)),
            // `{type: "json_schema", json_schema: {name, description, schema}}`.
            "response_format" => {
                if let Some(definition) = child.get("json_schema") {
                    output_schema(definition, f);
                }
            }
            _ => {}
        }
    }
}

/// A structured-output schema (chat `response_format.json_schema`, Responses `text.format`):
/// its `description` and every string of its `schema`, which the model reads as it reads a
/// tool's parameters.
fn output_schema<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(definition: N, f: &mut F) {
    for (key, child) in definition.entries() {
        match key {
            "description" => text(child, Scope::ToolDefinition, f),
            "schema" => leaves(child, Scope::ToolDefinition, f),
            _ => {}
        }
    }
}

/// A tool or function definition: its `description`, and every string of its parameter
/// schema (`parameters`, Anthropic's `input_schema`) or custom-tool `format`: descriptions,
/// titles, enum values and examples are all read by the model. Names are identifiers.
fn tool_definition<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(definition: N, f: &mut F) {
    for (key, child) in definition.entries() {
        match key {
            "description" => text(child, Scope::ToolDefinition, f),
            "parameters" | "input_schema" | "format" => leaves(child, Scope::ToolDefinition, f),
            _ => {}
        }
    }
}

fn chat_response<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(root: N, f: &mut F) {
    if let Some(choices) = root.get("choices") {
        for choice in choices.elements() {
            if let Some(message) = choice.get("message") {
                chat_message(message, Scope::Assistant, f);
            }
        }
    }
}

/// One chat message: `content`, `name`, `refusal`, reasoning (`reasoning_content`,
/// `reasoning`), `audio.transcript`, `tool_calls[].function.arguments` and the legacy
/// `function_call.arguments`.
fn chat_message<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(message: N, default: Scope, f: &mut F) {
    let scope = openai_role(message.peek(), default);
    for (key, child) in message.entries() {
        match key {
            "content" => chat_content(child, scope, f),
            "name" => text(child, scope, f),
            "refusal" | "reasoning_content" | "reasoning" => text(child, Scope::Assistant, f),
            "audio" => field(child, "transcript", Scope::Assistant, f),
            "tool_calls" => child.elements().for_each(|call| tool_call(call, f)),
            "function_call" => field(child, "arguments", Scope::ToolCallArguments, f),
            _ => {}
        }
    }
}

/// A chat tool call: `function.arguments`, or `custom.input` for custom tools.
fn tool_call<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(call: N, f: &mut F) {
    for (key, child) in call.entries() {
        match key {
            "function" => field(child, "arguments", Scope::ToolCallArguments, f),
            "custom" => field(child, "input", Scope::ToolCallArguments, f),
            _ => {}
        }
    }
}

/// Chat `content`: a string, or an array of parts: `refusal` parts carry `refusal`, every
/// other part its `text` when it has one (whatever its type: a lenient upstream may read an
/// `input_text` part), and a bare string part is text.
fn chat_content<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(content: N, scope: Scope, f: &mut F) {
    if content.peek().is_string() {
        return text(content, scope, f);
    }
    for part in content.elements() {
        match part.peek() {
            Value::String(_) => text(part, scope, f),
            value if kind(value) == Some("refusal") => {
                field(part, "refusal", Scope::Assistant, f);
            }
            _ => field(part, "text", scope, f),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI legacy completions

fn completions_request<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(root: N, f: &mut F) {
    for (key, child) in root.entries() {
        match key {
            // A string or an array of strings; token arrays are not text.
            "prompt" if child.peek().is_array() => {
                child
                    .elements()
                    .for_each(|prompt| text(prompt, Scope::User, f));
            }
            "prompt" | "suffix" => text(child, Scope::User, f),
            _ => {}
        }
    }
}

fn completions_response<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(root: N, f: &mut F) {
    if let Some(choices) = root.get("choices") {
        for choice in choices.elements() {
            field(choice, "text", Scope::Assistant, f);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI Responses API

fn responses_request<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(root: N, f: &mut F) {
    for (key, child) in root.entries() {
        match key {
            // Function and custom tools are flat: `{type, name, description, parameters}`.
            "tools" => child
                .elements()
                .for_each(|definition| tool_definition(definition, f)),
            // `text: {format: {type: "json_schema", name, description, schema}}`.
            "text" => {
                if let Some(definition) = child.get("format") {
                    output_schema(definition, f);
                }
            }
            "instructions" | "input" => {
                let scope = if key == "input" {
                    Scope::User
                } else {
                    Scope::System
                };
                if child.peek().is_string() {
                    text(child, scope, f);
                } else {
                    child
                        .elements()
                        .for_each(|item| response_item(item, scope, f));
                }
            }
            _ => {}
        }
    }
}

pub(super) fn responses_response<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(root: N, f: &mut F) {
    for (key, child) in root.entries() {
        match key {
            "output" => child
                .elements()
                .for_each(|item| response_item(item, Scope::Assistant, f)),
            // Not on the wire, but SDKs add it and gateways may see their re-serialized output.
            "output_text" => text(child, Scope::Assistant, f),
            _ => {}
        }
    }
}

/// One item of a Responses `input` or `output` array; `default` is the scope of a message
/// without a (known) role.
pub(super) fn response_item<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(
    item: N,
    default: Scope,
    f: &mut F,
) {
    match kind(item.peek()) {
        // `{role, content}` without a type is the "easy input message".
        None | Some("message") => {
            let scope = openai_role(item.peek(), default);
            if let Some(content) = item.get("content") {
                responses_content(content, scope, f);
            }
        }
        Some("function_call") => field(item, "arguments", Scope::ToolCallArguments, f),
        Some("custom_tool_call") => field(item, "input", Scope::ToolCallArguments, f),
        Some("function_call_output" | "custom_tool_call_output") => {
            if let Some(output) = item.get("output") {
                responses_content(output, Scope::ToolResult, f);
            }
        }
        // Reasoning written by the model: `summary` and `content` parts.
        Some("reasoning") => {
            for (key, child) in item.entries() {
                if matches!(key, "summary" | "content") {
                    responses_content(child, Scope::Assistant, f);
                }
            }
        }
        Some(_) => {}
    }
}

/// Responses `content` (or a tool `output`): a string, or an array of content parts.
fn responses_content<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(
    content: N,
    scope: Scope,
    f: &mut F,
) {
    if content.peek().is_string() {
        return text(content, scope, f);
    }
    content
        .elements()
        .for_each(|part| responses_part(part, scope, f));
}

/// One content part: `refusal` carries `refusal`; every other part (`input_text`,
/// `output_text`, `summary_text`, `reasoning_text`, ...) its `text` when it has one. Images,
/// files and audio have none.
pub(super) fn responses_part<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(
    part: N,
    scope: Scope,
    f: &mut F,
) {
    match kind(part.peek()) {
        Some("refusal") => field(part, "refusal", Scope::Assistant, f),
        _ => field(part, "text", scope, f),
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic messages

fn anthropic_request<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(root: N, f: &mut F) {
    for (key, child) in root.entries() {
        match key {
            "system" => anthropic_content(child, Scope::System, f),
            "tools" => child
                .elements()
                .for_each(|definition| tool_definition(definition, f)),
            "messages" => {
                for message in child.elements() {
                    let scope = match message.peek().get("role").and_then(Value::as_str) {
                        Some("assistant") => Scope::Assistant,
                        // Only `user` is valid besides; anything else is read as user input.
                        _ => Scope::User,
                    };
                    if let Some(content) = message.get("content") {
                        anthropic_content(content, scope, f);
                    }
                }
            }
            _ => {}
        }
    }
}

pub(super) fn anthropic_response<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(root: N, f: &mut F) {
    if let Some(content) = root.get("content") {
        anthropic_content(content, Scope::Assistant, f);
    }
}

/// Anthropic `content` (or `system`, or a `tool_result`'s `content`): a string or blocks.
fn anthropic_content<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(
    content: N,
    scope: Scope,
    f: &mut F,
) {
    if content.peek().is_string() {
        return text(content, scope, f);
    }
    content
        .elements()
        .for_each(|block| anthropic_block(block, scope, f));
}

/// One content block: `text`, `thinking`, `tool_use.input` (its string leaves),
/// `tool_result.content` and `search_result.content` (nested blocks), plain-text documents,
/// and the `text` of any other block that has one. Images and redacted thinking (encrypted)
/// have no text.
pub(super) fn anthropic_block<'a, N: Node<'a>, F: FnMut(Scope, N::Text)>(
    block: N,
    scope: Scope,
    f: &mut F,
) {
    match kind(block.peek()) {
        Some("thinking") => field(block, "thinking", scope, f),
        Some("tool_use" | "server_tool_use") => {
            if let Some(input) = block.get("input") {
                leaves(input, Scope::ToolCallArguments, f);
            }
        }
        Some("tool_result") => {
            if let Some(content) = block.get("content") {
                anthropic_content(content, Scope::ToolResult, f);
            }
        }
        Some("search_result") => {
            if let Some(content) = block.get("content") {
                anthropic_content(content, scope, f);
            }
        }
        Some("document") => {
            if let Some(source) = block.get("source") {
                match kind(source.peek()) {
                    Some("text") => field(source, "data", scope, f),
                    Some("content") => {
                        if let Some(content) = source.get("content") {
                            anthropic_content(content, scope, f);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => field(block, "text", scope, f),
    }
}
