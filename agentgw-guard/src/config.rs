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
//!
//! The same configuration is built in code with `Default` and builder methods named after the
//! fields:
//!
//! ```
//! use agentgw_guard::{Action, Builtin, GuardConfig, MatchConfig, PromptGuardConfig, RegexConfig, RejectResponse};
//!
//! let config = PromptGuardConfig::default()
//!     .request([
//!         GuardConfig::default()
//!             .regex(
//!                 RegexConfig::default()
//!                     .action(Action::Reject)
//!                     .matches([MatchConfig::default()
//!                         .pattern("ignore.*previous.*instructions")
//!                         .name("prompt-injection-1")])
//!                     .phrases(["disregard the above", "system prompt:"]),
//!             )
//!             .response(RejectResponse::default().message("Request blocked due to policy violation")),
//!         GuardConfig::default().regex(
//!             RegexConfig::default()
//!                 .action(Action::Mask)
//!                 .builtins([Builtin::Email, Builtin::PhoneNumber, Builtin::Ssn, Builtin::CreditCard])
//!                 .replacements([(Builtin::Email, "[EMAIL REDACTED]")])
//!                 .matches([MatchConfig::default()
//!                     .pattern(r"\b[A-Z]{2}\d{6,10}\b")
//!                     .name("account")
//!                     .replacement("[ACCOUNT REDACTED]")]),
//!         ),
//!     ])
//!     .response([GuardConfig::default().regex(
//!         RegexConfig::default()
//!             .action(Action::Mask)
//!             .builtins([Builtin::CreditCard, Builtin::Email, Builtin::PhoneNumber, Builtin::Ssn, Builtin::CaSin]),
//!     )]);
//!
//! let yaml: PromptGuardConfig = serde_saphyr::from_str(r#"
//! request:
//!   - response:
//!       message: "Request blocked due to policy violation"
//!     regex:
//!       action: Reject
//!       matches:
//!         - pattern: "ignore.*previous.*instructions"
//!           name: "prompt-injection-1"
//!       phrases: ["disregard the above", "system prompt:"]
//!   - regex:
//!       action: Mask
//!       builtins: [EMAIL, PHONE_NUMBER, SSN, CREDIT_CARD]
//!       replacements:
//!         EMAIL: "[EMAIL REDACTED]"
//!       matches:
//!         - pattern: '\b[A-Z]{2}\d{6,10}\b'
//!           name: account
//!           replacement: "[ACCOUNT REDACTED]"
//! response:
//!   - regex:
//!       action: Mask
//!       builtins: [CREDIT_CARD, EMAIL, PHONE_NUMBER, SSN, CA_SIN]
//! "#).unwrap();
//! assert_eq!(config, yaml);
//! ```

use std::collections::BTreeMap;

use agentgw_core::escalation::EscalationConfig;
use agentgw_core::llm::Scope;
use serde::{Deserialize, Serialize};

use crate::builtin::Builtin;

/// `promptGuard`: guards applied to requests and to responses, in order.
///
/// The default has no guard: the layer passes everything through. See the
/// [module docs](self) for an example.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PromptGuardConfig {
    /// Guards applied to the request body before it is forwarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request: Vec<GuardConfig>,
    /// Guards applied to the response body (JSON, text, or event streams event by event).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response: Vec<GuardConfig>,
    /// The largest request or non-streamed response body read for inspection, in bytes
    /// (default 16 MiB); a number or a size such as `1Mi`. A larger request is answered 413; a
    /// larger response fails closed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "agentgw_core::config::option_byte_size"
    )]
    pub max_body_bytes: Option<u64>,
}

impl PromptGuardConfig {
    /// Sets the guards applied to requests, in order (replacing any set before).
    #[must_use]
    pub fn request(mut self, guards: impl IntoIterator<Item = GuardConfig>) -> Self {
        self.request = guards.into_iter().collect();
        self
    }

    /// Sets the guards applied to responses, in order (replacing any set before).
    #[must_use]
    pub fn response(mut self, guards: impl IntoIterator<Item = GuardConfig>) -> Self {
        self.response = guards.into_iter().collect();
        self
    }

    /// Sets the largest body read for inspection, in bytes.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: u64) -> Self {
        self.max_body_bytes = Some(bytes);
        self
    }
}

/// One guard: what to look for, what to do, how to answer a rejection.
///
/// A guard has a `regex`, or (response guards only) a `systemPromptLeak` instead. The
/// default guard has nothing to match, which
/// [`from_config`](crate::PromptGuardLayer::from_config) reports at `request[i].regex`: set
/// [`regex`](Self::regex) or [`system_prompt_leak`](Self::system_prompt_leak).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct GuardConfig {
    /// A name for metrics and logs (default: `request[0]`, `response[1]`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The rules and the action. Required, unless the guard is a
    /// [`system_prompt_leak`](Self::system_prompt_leak) guard.
    #[serde(default, skip_serializing_if = "RegexConfig::is_default")]
    pub regex: RegexConfig,
    /// Instead of `regex`: flag answers that reproduce the request's system prompt (response
    /// guards only). `true` is the default [`SystemPromptLeakConfig`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "leak_config"
    )]
    pub system_prompt_leak: Option<SystemPromptLeakConfig>,
    /// Instead of `regex`: score each inspected text with the built-in prompt-injection
    /// classifier (request guards only, cargo feature `classifier`; see
    /// [`ClassifierConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<ClassifierConfig>,
    /// The answer to a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RejectResponse>,
    /// The LLM text scopes this guard inspects (default: all of them, and every other string
    /// of an LLM payload too: ids, tool names, metadata). Bodies that are not LLM payloads are
    /// always inspected whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<ScopeName>>,
    /// Where the events of an `Escalate` guard go, and whether a request waits for a decision
    /// (seed 004's `escalation`, see [`agentgw_core::escalation`]). Only with
    /// `action: Escalate`. On a response guard `blockPending` holds a buffered answer until the
    /// decision; a streamed answer is cut and the webhook notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationConfig>,
}

impl GuardConfig {
    /// Sets the name of the guard in metrics and logs.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the rules and the action.
    #[must_use]
    pub fn regex(mut self, regex: RegexConfig) -> Self {
        self.regex = regex;
        self
    }

    /// Makes this a system-prompt leak guard (instead of `regex`).
    #[must_use]
    pub fn system_prompt_leak(mut self, leak: SystemPromptLeakConfig) -> Self {
        self.system_prompt_leak = Some(leak);
        self
    }

    /// Makes this a classifier guard (instead of `regex`).
    #[must_use]
    pub fn classifier(mut self, classifier: ClassifierConfig) -> Self {
        self.classifier = Some(classifier);
        self
    }

    /// Sets the answer to a rejection.
    #[must_use]
    pub fn response(mut self, response: RejectResponse) -> Self {
        self.response = Some(response);
        self
    }

    /// Restricts the guard to these LLM text scopes.
    #[must_use]
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = ScopeName>) -> Self {
        self.scopes = Some(scopes.into_iter().collect());
        self
    }

    /// Sets where the events of this `Escalate` guard go.
    #[must_use]
    pub fn escalation(mut self, escalation: EscalationConfig) -> Self {
        self.escalation = Some(escalation);
        self
    }
}

/// The rules of a guard and its action.
///
/// `action` is required in YAML; in code the default is [`Action::Reject`] with nothing to
/// match, which [`from_config`](crate::PromptGuardLayer::from_config) reports: add
/// [`matches`](Self::matches), [`builtins`](Self::builtins) or [`phrases`](Self::phrases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RegexConfig {
    /// What a match does.
    pub action: Action,
    /// Custom regular expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<MatchConfig>,
    /// Built-in, validated PII recognizers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builtins: Vec<Builtin>,
    /// Options of the `PHONE_NUMBER` builtin: the regions national numbers are validated in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<PhoneNumberConfig>,
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

impl Default for RegexConfig {
    /// `Reject`, with nothing to match yet.
    fn default() -> Self {
        RegexConfig {
            action: Action::Reject,
            matches: Vec::new(),
            builtins: Vec::new(),
            phone_number: None,
            phrases: Vec::new(),
            replacements: BTreeMap::new(),
            replacement: None,
            normalize: None,
            repetition_limit: None,
        }
    }
}

impl RegexConfig {
    fn is_default(&self) -> bool {
        *self == RegexConfig::default()
    }

    /// Sets what a match does.
    #[must_use]
    pub fn action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Sets the custom regular expressions (replacing any set before).
    #[must_use]
    pub fn matches(mut self, matches: impl IntoIterator<Item = MatchConfig>) -> Self {
        self.matches = matches.into_iter().collect();
        self
    }

    /// Sets the builtin recognizers (replacing any set before).
    #[must_use]
    pub fn builtins(mut self, builtins: impl IntoIterator<Item = Builtin>) -> Self {
        self.builtins = builtins.into_iter().collect();
        self
    }

    /// Sets the options of the `PHONE_NUMBER` builtin.
    #[must_use]
    pub fn phone_number(mut self, phone_number: PhoneNumberConfig) -> Self {
        self.phone_number = Some(phone_number);
        self
    }

    /// Sets the literal phrases (replacing any set before): strings, or [`NamedPhrase`]s.
    #[must_use]
    pub fn phrases<P: Into<PhraseConfig>>(mut self, phrases: impl IntoIterator<Item = P>) -> Self {
        self.phrases = phrases.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the replacement per builtin (replacing any set before).
    #[must_use]
    pub fn replacements<R: Into<String>>(
        mut self,
        replacements: impl IntoIterator<Item = (Builtin, R)>,
    ) -> Self {
        self.replacements = replacements
            .into_iter()
            .map(|(builtin, replacement)| (builtin, replacement.into()))
            .collect();
        self
    }

    /// Sets the replacement of every rule without its own.
    #[must_use]
    pub fn replacement(mut self, replacement: impl Into<String>) -> Self {
        self.replacement = Some(replacement.into());
        self
    }

    /// Sets whether the normalized skeleton of the text is matched.
    #[must_use]
    pub fn normalize(mut self, normalize: bool) -> Self {
        self.normalize = Some(normalize);
        self
    }

    /// Bounds every open-ended repetition of the custom patterns.
    #[must_use]
    pub fn repetition_limit(mut self, limit: u32) -> Self {
        self.repetition_limit = Some(limit);
        self
    }
}

/// `phoneNumber`: options of the `PHONE_NUMBER` builtin.
///
/// ```yaml
/// regex:
///   action: Mask
///   builtins: [PHONE_NUMBER]
///   phoneNumber:
///     regions: [US, CA, GB, DE]
/// ```
///
/// Numbers written with a country code (`+49 30 901820`) are validated by that country's
/// numbering plan whatever the regions. Numbers written without one (`030 901820`,
/// `(415) 555-2671`) are reported when they are valid numbers of one of `regions`, tried in
/// order, with the metadata of Google's libphonenumber. Without `phoneNumber` the regions are
/// [`DEFAULT_PHONE_REGIONS`](crate::DEFAULT_PHONE_REGIONS): `US, CA, GB, DE, FR, ES, IT, NL,
/// BR, MX, IN, JP, AU`. Fewer regions mean fewer numbers of other countries are recognized
/// and fewer digit strings can pass for a phone number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PhoneNumberConfig {
    /// ISO 3166-1 alpha-2 region codes (`US`, `GB`, `DE`, ...), in the order national numbers
    /// are tried. Required and not empty; an unknown code is an error naming its position
    /// (`phoneNumber.regions[2]`).
    pub regions: Vec<String>,
}

impl PhoneNumberConfig {
    /// Sets the regions national numbers are validated in, in order (replacing any set before).
    #[must_use]
    pub fn regions<S: Into<String>>(mut self, regions: impl IntoIterator<Item = S>) -> Self {
        self.regions = regions.into_iter().map(Into::into).collect();
        self
    }
}

/// What a guard does with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Deny the request (or cut the response) with the guard's response.
    Reject,
    /// Replace the matched text and let the traffic through.
    Mask,
    /// Like `Reject`, and the audit event of the rejection carries `"escalate": true` for
    /// whoever follows up on it (a sink, an alert on the audit log). With an `escalation`
    /// block on the guard, the event also goes to a webhook (and the log); with
    /// `blockPending` the request waits for the webhook's decision, rejected unless it
    /// allows in time ([`GuardConfig::escalation`]).
    Escalate,
}

impl Action {
    /// `"reject"`, `"mask"` or `"escalate"`, for metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Reject => "reject",
            Action::Mask => "mask",
            Action::Escalate => "escalate",
        }
    }

    /// Whether a match denies (`Reject` and `Escalate`).
    pub const fn denies(self) -> bool {
        !matches!(self, Action::Mask)
    }
}

/// `systemPromptLeak`: a response guard that flags answers reproducing a substantial part of
/// the request's system prompt (its `system` and `developer` messages, Responses
/// `instructions`, Anthropic `system`).
///
/// ```yaml
/// response:
///   - systemPromptLeak: {action: Reject, minOverlap: 0.3, minWords: 12}
/// ```
///
/// The answer reproduces a word of the system prompt when that word is part of a run of
/// [`SHINGLE_WORDS`](crate::leak::SHINGLE_WORDS) consecutive words that the answer contains
/// too (after normalization; see [`leak`](crate::leak)). `Reject` and `Escalate` fire when the
/// answer reproduces at least `minWords` words **and** at least `minOverlap` of the prompt's
/// words; `Mask` replaces every reproduced passage of at least `minWords` consecutive words.
/// A request without a system prompt of at least `SHINGLE_WORDS` words is not inspected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SystemPromptLeakConfig {
    /// What a leak does (default `Reject`).
    #[serde(default = "SystemPromptLeakConfig::default_action")]
    pub action: Action,
    /// The fraction of the system prompt's words an answer must reproduce to be rejected,
    /// from 0 to 1 (default 0.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_overlap: Option<f64>,
    /// The fewest reproduced words that count as a leak (default 12): a rejection needs at
    /// least this many words in all, a mask a passage of this many consecutive words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_words: Option<u32>,
    /// The text that replaces a masked passage (default `<SYSTEM_PROMPT>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

// `min_overlap` is checked to be a number from 0 to 1, never NaN.
impl Eq for SystemPromptLeakConfig {}

impl Default for SystemPromptLeakConfig {
    /// `Reject` with the default thresholds (0.3 of the prompt, 12 words).
    fn default() -> Self {
        SystemPromptLeakConfig {
            action: Action::Reject,
            min_overlap: None,
            min_words: None,
            replacement: None,
        }
    }
}

impl SystemPromptLeakConfig {
    /// The default `minOverlap`.
    pub const DEFAULT_MIN_OVERLAP: f64 = 0.3;
    /// The default `minWords`.
    pub const DEFAULT_MIN_WORDS: u32 = 12;
    /// The default `replacement`.
    pub const DEFAULT_REPLACEMENT: &'static str = "<SYSTEM_PROMPT>";

    fn default_action() -> Action {
        Action::Reject
    }

    /// Sets what a leak does.
    #[must_use]
    pub fn action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Sets the fraction of the system prompt that must be reproduced (0 to 1).
    #[must_use]
    pub fn min_overlap(mut self, fraction: f64) -> Self {
        self.min_overlap = Some(fraction);
        self
    }

    /// Sets the fewest reproduced words that count.
    #[must_use]
    pub fn min_words(mut self, words: u32) -> Self {
        self.min_words = Some(words);
        self
    }

    /// Sets the text that replaces a masked passage.
    #[must_use]
    pub fn replacement(mut self, replacement: impl Into<String>) -> Self {
        self.replacement = Some(replacement.into());
        self
    }
}

/// `systemPromptLeak: true` (the defaults), `false` (no leak guard) or the settings.
fn leak_config<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SystemPromptLeakConfig>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Enabled(bool),
        Config(SystemPromptLeakConfig),
    }
    Ok(match Repr::deserialize(deserializer)? {
        Repr::Enabled(true) => Some(SystemPromptLeakConfig::default()),
        Repr::Enabled(false) => None,
        Repr::Config(config) => Some(config),
    })
}

/// `classifier`: a request guard that scores each text it inspects with the built-in,
/// offline prompt-injection classifier and rejects (or escalates) at or above a threshold
/// (cargo feature `classifier`; the crate's `classifier` module documents the model, and the
/// README its figures).
///
/// ```yaml
/// request:
///   - name: injection-classifier
///     scopes: [user, toolResult, toolDefinition]
///     classifier: {enabled: true, threshold: 0.85, action: Reject, model: builtin}
/// ```
///
/// The guard scores the same texts a `regex` guard with its `scopes` inspects: each text
/// segment on its own (a message, a tool result, a tool description), the whole body when it
/// is no LLM payload. It runs after the `regex` guards of the list, on their masked text. A
/// rejection names the rule `prompt-injection-classifier`; every score goes to the histogram
/// `agentgateway_guard_classifier_score{guard}` and, as `classifierScore`, to the audit event
/// of the request, never the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ClassifierConfig {
    /// Whether the guard scores anything (default `true`); `false` turns it off in place.
    #[serde(default = "ClassifierConfig::default_enabled")]
    pub enabled: bool,
    /// The score, above 0 and at most 1, from which a text is flagged (default 0.85: about 3%
    /// false positives on sources the model was not trained on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// `Reject` (default) or `Escalate`.
    #[serde(default = "ClassifierConfig::default_action")]
    pub action: Action,
    /// The model (default `builtin`, the only one for now).
    #[serde(default)]
    pub model: ClassifierModel,
}

// `threshold` is checked to be a number in (0, 1], never NaN.
impl Eq for ClassifierConfig {}

impl Default for ClassifierConfig {
    /// Enabled, `Reject` at the default threshold with the built-in model.
    fn default() -> Self {
        ClassifierConfig {
            enabled: true,
            threshold: None,
            action: Action::Reject,
            model: ClassifierModel::Builtin,
        }
    }
}

impl ClassifierConfig {
    /// The default `threshold`.
    pub const DEFAULT_THRESHOLD: f64 = 0.85;

    fn default_enabled() -> bool {
        true
    }

    fn default_action() -> Action {
        Action::Reject
    }

    /// Turns the guard on or off.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets the score from which a text is flagged.
    #[must_use]
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// Sets what a flagged text does (`Reject` or `Escalate`).
    #[must_use]
    pub fn action(mut self, action: Action) -> Self {
        self.action = action;
        self
    }

    /// Sets the model.
    #[must_use]
    pub fn model(mut self, model: ClassifierModel) -> Self {
        self.model = model;
        self
    }
}

/// Which classifier model a guard uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClassifierModel {
    /// The model shipped in the crate (`builtin`).
    #[default]
    #[serde(rename = "builtin")]
    Builtin,
}

/// A custom pattern.
///
/// `pattern` is required in YAML; the default's empty pattern would match everywhere, which
/// [`from_config`](crate::PromptGuardLayer::from_config) reports: set [`pattern`](Self::pattern).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
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

impl MatchConfig {
    /// Sets the regular expression.
    #[must_use]
    pub fn pattern(mut self, pattern: impl Into<String>) -> Self {
        self.pattern = pattern.into();
        self
    }

    /// Sets the rule name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the replacement when masking.
    #[must_use]
    pub fn replacement(mut self, replacement: impl Into<String>) -> Self {
        self.replacement = Some(replacement.into());
        self
    }
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
///
/// `phrase` is required in YAML; the default's empty phrase is reported by
/// [`from_config`](crate::PromptGuardLayer::from_config): set [`phrase`](Self::phrase).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct NamedPhrase {
    /// The phrase.
    pub phrase: String,
    /// The rule name (default `phrases`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl NamedPhrase {
    /// Sets the phrase.
    #[must_use]
    pub fn phrase(mut self, phrase: impl Into<String>) -> Self {
        self.phrase = phrase.into();
        self
    }

    /// Sets the rule name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl From<&str> for PhraseConfig {
    fn from(phrase: &str) -> Self {
        PhraseConfig::Text(phrase.to_owned())
    }
}

impl From<String> for PhraseConfig {
    fn from(phrase: String) -> Self {
        PhraseConfig::Text(phrase)
    }
}

impl From<NamedPhrase> for PhraseConfig {
    fn from(phrase: NamedPhrase) -> Self {
        PhraseConfig::Named(phrase)
    }
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
#[non_exhaustive]
pub struct RejectResponse {
    /// The message the client sees (never the matched text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The HTTP status (default 403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

impl RejectResponse {
    /// Sets the message the client sees.
    #[must_use]
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sets the HTTP status (400-599).
    #[must_use]
    pub fn status_code(mut self, status: u16) -> Self {
        self.status_code = Some(status);
        self
    }
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
