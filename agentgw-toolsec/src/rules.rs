//! Rule names: the `rule` of audit events, of the `data` of JSON-RPC denials, and the label of
//! `agentgateway_tool_validation_rejected_total{rule}` and
//! `agentgateway_rejected_requests_total{layer="toolsec",reason}`.
//!
//! Configured patterns are named by their `name` (or, without one, by their field path, e.g.
//! `inputValidation.rules[1].arguments[0].allow[0]`); the checks below are named
//! by these constants.

/// Builtin detector: zero-width, bidi, tag or control characters in a tool definition.
pub const INVISIBLE_UNICODE: &str = "invisible-unicode";
/// Builtin detector: instructions hidden in a tool definition (`<IMPORTANT>`,
/// `ignore previous ...`, `do not tell the user`, coercion).
pub const HIDDEN_INSTRUCTIONS: &str = "hidden-instructions";
/// Builtin detector: hints to read secrets or send data somewhere.
pub const SECRET_EXFILTRATION: &str = "secret-exfiltration";
/// Builtin detector: instructions about other tools.
pub const TOOL_SHADOWING: &str = "tool-shadowing";
/// Builtin detector: shell commands or traversal in schema `default`/`examples`/`const`/`enum`.
pub const SCHEMA_EXPLOITATION: &str = "schema-exploitation";
/// `validation.classifier`: a text of the definition scores at or above the threshold of the
/// built-in prompt-injection classifier; `responseSanitization.classifier`: a text of a tool
/// result does (the same name as `agentgw-guard`'s classifier rule).
pub const PROMPT_INJECTION_CLASSIFIER: &str = "prompt-injection-classifier";

/// The tool is not in the allowlist.
pub const ALLOWLIST: &str = "allowlist";
/// An argument value is not among the allowlist's allowed values or range.
pub const ARGUMENT_NOT_ALLOWED: &str = "argument-not-allowed";
/// An argument value matches a blocked glob of the allowlist.
pub const BLOCKED_ARGUMENT: &str = "blocked-argument";
/// The arguments do not validate against the tool's `inputSchema`.
pub const INPUT_SCHEMA: &str = "input-schema";
/// The tool's `inputSchema` cannot be compiled (for instance, a remote `$ref`).
pub const INVALID_INPUT_SCHEMA: &str = "invalid-input-schema";
/// A `tools/list` entry is not a tool definition (no string `name`).
pub const INVALID_DEFINITION: &str = "invalid-definition";
/// The definition changed since it was pinned.
pub const DEFINITION_CHANGED: &str = "definition-changed";
/// The pin store is full; new tools are withheld.
pub const PIN_CAPACITY: &str = "pin-capacity";
/// The pin file (`pinning.file`) has no pin for the listed tool.
pub const UNPINNED_TOOL: &str = "unpinned-tool";
/// The shared pin store (`pinning.redis`) could not be read or written in time: the tool is
/// withheld (fail closed).
pub const PIN_STORE_UNAVAILABLE: &str = "pin-store-unavailable";
/// The name imitates a trusted tool or another upstream's tool.
pub const NAME_SPOOFING: &str = "name-spoofing";
/// The call did not finish within `maxExecutionTime`.
pub const EXECUTION_TIME: &str = "max-execution-time";
/// The tool's output exceeds `maxOutputSize`.
pub const OUTPUT_SIZE: &str = "max-output-size";
/// No `tools/list` answer of the upstream showed the called tool, so its definition was never
/// checked (see `unlistedTools`).
pub const UNLISTED_TOOL: &str = "unlisted-tool";
/// The request is not valid JSON-RPC, a `tools/call` has malformed params, a method name is a
/// case variant of an MCP method (`Tools/Call`), or a request other than a POST has a body.
pub const INVALID_REQUEST: &str = "invalid-request";
/// The upstream's answer could not be inspected (not JSON-RPC, too large, a content type or
/// encoding other than plain JSON or an event stream, a body where none belongs).
pub const INVALID_RESPONSE: &str = "invalid-upstream-response";
