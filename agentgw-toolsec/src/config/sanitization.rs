//! `responseSanitization`: rewriting what the server sends before the client sees it.

use agentgw_guard::{Builtin, ClassifierModel};
use serde::Deserialize;

use super::yes;

/// `responseSanitization`: rewrites `tools/call` results (and every other text the server
/// sends) before the client sees them.
///
/// [`Default`] is the value of `responseSanitization: {}`: on, without rules.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ResponseSanitizationConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Applied in order of action: `Remove`, then `Mask`, then `Truncate`.
    #[serde(default)]
    pub rules: Vec<SanitizationRule>,
    /// Scores the texts of `tools/call` results with the built-in prompt-injection
    /// classifier, before the rules (cargo feature `classifier`; default off).
    #[serde(default)]
    pub classifier: Option<ResultClassifierConfig>,
}

impl Default for ResponseSanitizationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rules: Vec::new(),
            classifier: None,
        }
    }
}

impl ResponseSanitizationConfig {
    /// Sets `enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets `rules`.
    #[must_use]
    pub fn rules(mut self, rules: impl IntoIterator<Item = SanitizationRule>) -> Self {
        self.rules = rules.into_iter().collect();
        self
    }

    /// Sets `classifier`.
    #[must_use]
    pub fn classifier(mut self, classifier: ResultClassifierConfig) -> Self {
        self.classifier = Some(classifier);
        self
    }
}

/// `responseSanitization.classifier`: scores the prose of each `tools/call` result with
/// `agentgw-guard`'s offline prompt-injection classifier, the way `validation.classifier`
/// scores tool definitions.
///
/// The texts scored are the `text` of each text block of `content`, the `text` of each
/// embedded resource, and, on their own, the contents of the HTML and Markdown comments and
/// `<details>` blocks of these texts; base64 payloads (`data`, `blob`), `structuredContent`
/// and annotations are not. A text scoring at or above `threshold` breaks the rule
/// [`PROMPT_INJECTION_CLASSIFIER`](crate::rules::PROMPT_INJECTION_CLASSIFIER):
///
/// - `action: Remove` (default) replaces the whole text with `replacement`; the rest of the
///   result is delivered.
/// - `action: Reject` answers the `tools/call` with a JSON-RPC error (code `-32003`,
///   `data: {status: 403, layer: "toolsec", reason: "prompt-injection-classifier"}`) instead of
///   the result.
///
/// Every score is an observation of `agentgateway_guard_classifier_score{guard =
/// "toolSecurity.responseSanitization"}`; the `tool_call` audit event of the result carries the
/// highest score as `classifierScore` (and the rule when a text was flagged), never the text.
///
/// ```yaml
/// responseSanitization:
///   classifier: {enabled: true, threshold: 0.95, action: Remove, model: builtin}
/// ```
///
/// Needs the cargo feature `classifier`; without it an enabled block is a configuration error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ResultClassifierConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The score, above 0 and at most 1, from which a text is flagged (default
    /// [`DEFAULT_THRESHOLD`](Self::DEFAULT_THRESHOLD)).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// What happens to a result with a flagged text (default `Remove`).
    #[serde(default)]
    pub action: ResultClassifierAction,
    /// The model (default `builtin`, the only one for now).
    #[serde(default)]
    pub model: ClassifierModel,
    /// `Remove`: the text that replaces a flagged text (default
    /// [`DEFAULT_REPLACEMENT`](Self::DEFAULT_REPLACEMENT)).
    #[serde(default)]
    pub replacement: Option<String>,
}

impl ResultClassifierConfig {
    /// The default `threshold`; the false alarms it raises on benign tool output are measured
    /// in `tests/result_classifier.rs` and listed in the crate README.
    pub const DEFAULT_THRESHOLD: f64 = 0.95;

    /// The default `replacement` of a flagged text.
    pub const DEFAULT_REPLACEMENT: &'static str = "[removed: suspected prompt injection]";

    /// Sets `enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets `threshold`.
    #[must_use]
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// Sets `action`.
    #[must_use]
    pub fn action(mut self, action: ResultClassifierAction) -> Self {
        self.action = action;
        self
    }

    /// Sets `replacement`.
    #[must_use]
    pub fn replacement(mut self, replacement: impl Into<String>) -> Self {
        self.replacement = Some(replacement.into());
        self
    }
}

impl Default for ResultClassifierConfig {
    /// Enabled, `Remove` at the default threshold with the built-in model.
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: None,
            action: ResultClassifierAction::default(),
            model: ClassifierModel::Builtin,
            replacement: None,
        }
    }
}

/// What happens to a `tools/call` result with a text the classifier flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub enum ResultClassifierAction {
    /// The flagged text is replaced by the `replacement`; the rest of the result is delivered.
    #[default]
    Remove,
    /// The call is answered with a JSON-RPC error instead of the result.
    Reject,
}

/// One rule of `responseSanitization.rules`.
///
/// `action` has no sensible default: start with [`SanitizationRule::new`]. [`Default`] is a
/// `Remove` rule without patterns, which
/// [`ToolSecurityLayer::from_config`](crate::ToolSecurityLayer::from_config) refuses naming
/// `patterns`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SanitizationRule {
    /// What the rule does.
    pub action: SanitizationAction,
    /// `Remove` and `Mask`: regular expressions whose matches are replaced.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// `Remove` and `Mask`: the text that replaces a match (`Remove`: empty by default; `Mask`:
    /// `<CREDIT_CARD>` for builtins and `<MASKED>` for patterns).
    #[serde(default)]
    pub replacement: Option<String>,
    /// `Mask`: builtin PII recognizers (`CREDIT_CARD`, `EMAIL`, `PHONE_NUMBER`, `SSN`,
    /// `CA_SIN`), validated as in the prompt guard.
    #[serde(default)]
    pub builtins: Vec<Builtin>,
    /// `Truncate`: the most characters of text a result keeps.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// `Truncate`: appended where text was cut.
    #[serde(default)]
    pub truncation_message: Option<String>,
}

impl Default for SanitizationRule {
    fn default() -> Self {
        Self::new(SanitizationAction::Remove)
    }
}

impl SanitizationRule {
    /// A rule doing `action`, with nothing to apply it to yet.
    pub fn new(action: SanitizationAction) -> Self {
        Self {
            action,
            patterns: Vec::new(),
            replacement: None,
            builtins: Vec::new(),
            max_length: None,
            truncation_message: None,
        }
    }

    /// Sets `action`.
    #[must_use]
    pub fn action(mut self, action: SanitizationAction) -> Self {
        self.action = action;
        self
    }

    /// Sets `patterns`.
    #[must_use]
    pub fn patterns<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.patterns = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `replacement`.
    #[must_use]
    pub fn replacement(mut self, replacement: impl Into<String>) -> Self {
        self.replacement = Some(replacement.into());
        self
    }

    /// Sets `builtins`.
    #[must_use]
    pub fn builtins(mut self, builtins: impl IntoIterator<Item = Builtin>) -> Self {
        self.builtins = builtins.into_iter().collect();
        self
    }

    /// Sets `maxLength`.
    #[must_use]
    pub fn max_length(mut self, max_length: usize) -> Self {
        self.max_length = Some(max_length);
        self
    }

    /// Sets `truncationMessage`.
    #[must_use]
    pub fn truncation_message(mut self, message: impl Into<String>) -> Self {
        self.truncation_message = Some(message.into());
        self
    }
}

/// What a sanitization rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SanitizationAction {
    /// Removes the text matched by `patterns`.
    Remove,
    /// Replaces PII found by `builtins` (and `patterns`) with a placeholder.
    Mask,
    /// Cuts the text of a result after `maxLength` characters.
    Truncate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{SEED_SANITIZATION, seed};

    #[test]
    fn seed_sanitization_block_deserializes() {
        let rules = seed(SEED_SANITIZATION)
            .response_sanitization
            .expect("responseSanitization")
            .rules;
        assert_eq!(rules[0].action, SanitizationAction::Remove);
        assert_eq!(rules[0].patterns.len(), 3);
        assert_eq!(rules[1].action, SanitizationAction::Truncate);
        assert_eq!(rules[1].max_length, Some(50_000));
        assert_eq!(
            rules[1].truncation_message.as_deref(),
            Some("[Response truncated for safety]")
        );
    }

    #[test]
    fn builders_match_the_yaml() {
        let built = ResponseSanitizationConfig::default().rules([
            SanitizationRule::new(SanitizationAction::Remove)
                .patterns(["(?i)you are now"])
                .replacement("[removed]"),
            SanitizationRule::new(SanitizationAction::Mask).builtins([Builtin::Email]),
            SanitizationRule::new(SanitizationAction::Truncate)
                .max_length(100)
                .truncation_message("[cut]"),
        ]);
        let parsed = seed(
            "responseSanitization:\n  rules:\n    - action: Remove\n      patterns: [\"(?i)you are now\"]\n      \
             replacement: \"[removed]\"\n    - action: Mask\n      builtins: [EMAIL]\n    \
             - action: Truncate\n      maxLength: 100\n      truncationMessage: \"[cut]\"\n",
        );
        assert_eq!(parsed.response_sanitization, Some(built));
        assert_eq!(
            seed("responseSanitization: {}\n").response_sanitization,
            Some(ResponseSanitizationConfig::default())
        );
    }

    #[test]
    fn classifier_block_matches_the_builders() {
        let parsed = seed(
            "responseSanitization:\n  enabled: true\n  classifier: {enabled: true, threshold: 0.9, \
             action: Reject, model: builtin}\n",
        );
        let built = ResponseSanitizationConfig::default().classifier(
            ResultClassifierConfig::default()
                .threshold(0.9)
                .action(ResultClassifierAction::Reject),
        );
        assert_eq!(parsed.response_sanitization, Some(built));
        let defaults = seed("responseSanitization:\n  classifier: {}\n")
            .response_sanitization
            .unwrap()
            .classifier
            .unwrap();
        assert_eq!(defaults, ResultClassifierConfig::default());
        assert_eq!(defaults.action, ResultClassifierAction::Remove);
        assert_eq!(
            ResultClassifierConfig::default()
                .replacement("[x]")
                .enabled(false),
            ResultClassifierConfig {
                enabled: false,
                replacement: Some("[x]".into()),
                ..ResultClassifierConfig::default()
            }
        );
    }
}
