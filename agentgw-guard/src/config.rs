//! The serde configuration of the prompt guard layer, shaped like the seed's `promptGuard`.
//!
//! ```yaml
//! promptGuard:
//!   request:
//!     - response:
//!         message: "Request blocked due to policy violation"
//!       regex:
//!         action: Reject
//!         matches:
//!           - pattern: "ignore.*previous.*instructions"
//!             name: "prompt-injection-1"
//!         phrases: ["disregard the above", "system prompt:"]
//!     - regex:
//!         action: Mask
//!         builtins: [EMAIL, PHONE_NUMBER, SSN, CREDIT_CARD]
//!         replacements:
//!           EMAIL: "[EMAIL REDACTED]"
//!         matches:
//!           - pattern: '\b[A-Z]{2}\d{6,10}\b'
//!             name: account
//!             replacement: "[ACCOUNT REDACTED]"
//!   response:
//!     - regex:
//!         action: Mask
//!         builtins: [CREDIT_CARD, EMAIL, PHONE_NUMBER, SSN, CA_SIN]
//! ```
//!
//! Field names are camelCase and unknown fields are errors, so a typo never silently disables
//! a guard. [`PromptGuardLayer::from_config`](crate::PromptGuardLayer::from_config) validates
//! and compiles everything and names the field at fault in its errors.

use std::collections::BTreeMap;

use agentgw_core::llm::Scope;
use serde::{Deserialize, Serialize};

use crate::builtin::Builtin;

/// `promptGuard`: guards applied to requests and to responses, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromptGuardConfig {
    /// Guards applied to the request body before it is forwarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request: Vec<GuardConfig>,
    /// Guards applied to the response body (JSON, text, or event streams event by event).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response: Vec<GuardConfig>,
    /// The largest request or non-streamed response body read for inspection, in bytes
    /// (default 16 MiB). A larger request is answered 413; a larger response fails closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
}

/// One guard: what to look for, what to do, how to answer a rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuardConfig {
    /// A name for metrics and logs (default: `request[0]`, `response[1]`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The rules and the action.
    pub regex: RegexConfig,
    /// The answer to a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RejectResponse>,
    /// The LLM text scopes this guard inspects (default: all of them, and every other string
    /// of an LLM payload too: ids, tool names, metadata). Bodies that are not LLM payloads are
    /// always inspected whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<ScopeName>>,
}

/// The rules of a guard and its action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexConfig {
    /// What a match does.
    pub action: Action,
    /// Custom regular expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<MatchConfig>,
    /// Built-in, validated PII recognizers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builtins: Vec<Builtin>,
    /// Literal phrases (prompt-injection phrases, blocked topics), matched as whole words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phrases: Vec<PhraseConfig>,
    /// Replacement per builtin when masking (default `<CREDIT_CARD>`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replacements: BTreeMap<Builtin, String>,
    /// Replacement for every rule without its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// Match the normalized skeleton of the text (zero-width characters removed, NFKD,
    /// homoglyphs, case and whitespace folded). Default: on for `Reject`, off for `Mask`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
    /// Bound every open-ended repetition (`*`, `+`, `{n,}`) of the custom patterns to this
    /// many repetitions beyond its minimum. Response guards need bounded patterns to mask
    /// streams; this makes `\w+@\w+` style patterns usable there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition_limit: Option<u32>,
}

/// What a guard does with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Deny the request (or cut the response) with the guard's response.
    Reject,
    /// Replace the matched text and let the traffic through.
    Mask,
}

impl Action {
    /// `"reject"` or `"mask"`, for metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Reject => "reject",
            Action::Mask => "mask",
        }
    }
}

/// A custom pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchConfig {
    /// The regular expression (syntax of the `regex` crate).
    pub pattern: String,
    /// The rule name in metrics, logs and rejections (default `matches[i]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The replacement when masking (default `<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

/// A literal phrase: a string, or `{phrase, name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PhraseConfig {
    /// A phrase whose rule name is `phrases`.
    Text(String),
    /// A phrase with its own rule name.
    Named(NamedPhrase),
}

/// A phrase with its own rule name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedPhrase {
    /// The phrase.
    pub phrase: String,
    /// The rule name (default `phrases`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl PhraseConfig {
    /// The phrase text.
    pub fn phrase(&self) -> &str {
        match self {
            PhraseConfig::Text(text) => text,
            PhraseConfig::Named(named) => &named.phrase,
        }
    }

    /// The rule name.
    pub fn name(&self) -> &str {
        match self {
            PhraseConfig::Named(NamedPhrase {
                name: Some(name), ..
            }) => name,
            _ => "phrases",
        }
    }
}

/// How a rejection is answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RejectResponse {
    /// The message the client sees (never the matched text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The HTTP status (default 403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

/// An LLM text scope, as written in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScopeName {
    /// System and developer instructions.
    System,
    /// The user's messages.
    User,
    /// The model's messages.
    Assistant,
    /// Tool results handed to the model.
    ToolResult,
    /// Arguments of tool calls the model made.
    ToolCallArguments,
    /// Tool definitions offered to the model: descriptions and parameter schemas.
    ToolDefinition,
}

impl From<ScopeName> for Scope {
    fn from(scope: ScopeName) -> Scope {
        match scope {
            ScopeName::System => Scope::System,
            ScopeName::User => Scope::User,
            ScopeName::Assistant => Scope::Assistant,
            ScopeName::ToolResult => Scope::ToolResult,
            ScopeName::ToolCallArguments => Scope::ToolCallArguments,
            ScopeName::ToolDefinition => Scope::ToolDefinition,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `promptGuard` blocks of seed 000, verbatim.
    const SEED_REQUEST: &str = r#"
      request:
        - response:
            message: "Request blocked due to policy violation"
          regex:
            action: Reject
            matches:
              # Block prompt injection attempts
              - pattern: "ignore.*previous.*instructions"
                name: "prompt-injection-1"
              - pattern: "you.*are.*now"
                name: "prompt-injection-2"
              - pattern: "(?i)forget.*everything"
                name: "prompt-injection-3"
              # Block requests for sensitive data
              - pattern: "(?i)(password|api.?key|secret|token)"
                name: "sensitive-request"
"#;

    const SEED_RESPONSE: &str = r#"
      response:
        - regex:
            action: Mask
            builtins:
              - CREDIT_CARD
              - EMAIL
              - PHONE_NUMBER
              - SSN
            matches:
              # Custom patterns
              - pattern: "\\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Z|a-z]{2,}\\b"
                name: "email-custom"
"#;

    const SEED_LAYER3: &str = r#"
  request:
    - regex:
        action: Reject
        matches:
          - pattern: "ignore.*instructions"
"#;

    #[test]
    fn seed_000_blocks_deserialize_as_written() {
        let request: PromptGuardConfig = serde_saphyr::from_str(SEED_REQUEST).unwrap();
        let guard = &request.request[0];
        assert_eq!(guard.regex.action, Action::Reject);
        assert_eq!(guard.regex.matches.len(), 4);
        assert_eq!(
            guard.regex.matches[3].name.as_deref(),
            Some("sensitive-request")
        );
        assert_eq!(
            guard.response.as_ref().unwrap().message.as_deref(),
            Some("Request blocked due to policy violation")
        );

        let response: PromptGuardConfig = serde_saphyr::from_str(SEED_RESPONSE).unwrap();
        let guard = &response.response[0];
        assert_eq!(guard.regex.action, Action::Mask);
        assert_eq!(
            guard.regex.builtins,
            [
                Builtin::CreditCard,
                Builtin::Email,
                Builtin::PhoneNumber,
                Builtin::Ssn
            ]
        );
        assert_eq!(
            guard.regex.matches[0].pattern,
            r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Z|a-z]{2,}\b"
        );

        let layer3: PromptGuardConfig = serde_saphyr::from_str(SEED_LAYER3).unwrap();
        assert_eq!(layer3.request[0].regex.matches[0].name, None);
    }

    #[test]
    fn seed_004_redaction_and_phrases_in_our_shape() {
        let yaml = r#"
          request:
            - name: pii-input-filter
              regex:
                action: Mask
                builtins: [EMAIL, PHONE_NUMBER, SSN, CREDIT_CARD]
                replacements:
                  EMAIL: "[EMAIL REDACTED]"
                  PHONE_NUMBER: "[PHONE REDACTED]"
                  SSN: "[SSN REDACTED]"
                  CREDIT_CARD: "[CC REDACTED]"
                matches:
                  - pattern: '\b[A-Z]{2}\d{6,10}\b'
                    name: account
                    replacement: "[ACCOUNT REDACTED]"
            - name: prompt-injection-detection
              regex:
                action: Reject
                phrases:
                  - "ignore previous instructions"
                  - "ignore all prior"
                  - "disregard the above"
                  - "new instructions:"
                  - "system prompt:"
            - name: topic-restriction
              scopes: [user]
              regex:
                action: Reject
                phrases:
                  - {phrase: "competitor pricing", name: blocked-topic}
                  - "internal roadmap"
                  - "employee compensation"
          response:
            - name: pii-output-filter
              regex:
                action: Mask
                builtins: [EMAIL, PHONE_NUMBER, SSN]
        "#;
        let config: PromptGuardConfig = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(config.request.len(), 3);
        assert_eq!(
            config.request[0].regex.replacements[&Builtin::Email],
            "[EMAIL REDACTED]"
        );
        let phrases = &config.request[2].regex.phrases;
        assert_eq!(phrases[0].name(), "blocked-topic");
        assert_eq!(phrases[1].name(), "phrases");
        assert_eq!(config.request[2].scopes, Some(vec![ScopeName::User]));
    }

    #[test]
    fn typos_and_unknown_builtins_are_errors() {
        let typo = "request:\n  - regex:\n      action: Reject\n      matchs: []\n";
        assert!(serde_saphyr::from_str::<PromptGuardConfig>(typo).is_err());
        let unknown = "request:\n  - regex:\n      action: Mask\n      builtins: [IBAN]\n";
        let err = serde_saphyr::from_str::<PromptGuardConfig>(unknown).unwrap_err();
        assert!(err.to_string().contains("IBAN"), "{err}");
        let action = "request:\n  - regex:\n      action: Block\n";
        assert!(serde_saphyr::from_str::<PromptGuardConfig>(action).is_err());
    }

    #[test]
    fn config_round_trips_through_json() {
        let config: PromptGuardConfig = serde_saphyr::from_str(SEED_REQUEST).unwrap();
        let json = serde_json::to_string(&config).unwrap();
        let back: PromptGuardConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }
}
