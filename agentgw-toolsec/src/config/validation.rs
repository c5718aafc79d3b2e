//! `validation`: checks of the tool definitions of `tools/list` results.

use agentgw_guard::ClassifierModel;
use serde::Deserialize;

use super::yes;

/// `validation`: checks every tool definition of a `tools/list` result.
///
/// [`Default`] is the value of `validation: {}`: on, failing tools removed, builtin detectors
/// on, no custom rule (the same as an absent block).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ValidationConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// What happens to a list with a failing tool (default `Remove`).
    #[serde(default)]
    pub action: ValidationAction,
    /// Runs the builtin detectors (hidden instructions, invisible Unicode, shadowing of other
    /// tools, secret exfiltration, dangerous schema defaults). On unless `false`.
    #[serde(default = "yes")]
    pub builtin_detectors: bool,
    /// Custom rules on fields of the definition (default none).
    #[serde(default)]
    pub rules: Vec<ValidationRule>,
    /// Scores the texts of each definition with the built-in prompt-injection classifier
    /// (cargo feature `classifier`; default off).
    #[serde(default)]
    pub classifier: Option<DefinitionClassifierConfig>,
}

/// `validation.classifier`: scores the texts of each tool definition (description, title,
/// parameter descriptions at any depth, string `default`/`enum`/`examples`/`const` values, the
/// content of HTML and Markdown comments) and of the `initialize` instructions, prompts and
/// resources with `agentgw-guard`'s offline prompt-injection classifier. A text scoring at or
/// above `threshold` fails the definition under the rule
/// [`PROMPT_INJECTION_CLASSIFIER`](crate::rules::PROMPT_INJECTION_CLASSIFIER), handled by
/// `validation.action` like any other rule.
///
/// ```yaml
/// validation:
///   classifier: {enabled: true, threshold: 0.95, model: builtin}
/// ```
///
/// Needs the cargo feature `classifier`; without it an enabled block is a configuration error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DefinitionClassifierConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The score, above 0 and at most 1, from which a text fails (default
    /// [`DEFAULT_THRESHOLD`](Self::DEFAULT_THRESHOLD)).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The model (default `builtin`, the only one for now).
    #[serde(default)]
    pub model: ClassifierModel,
}

impl DefinitionClassifierConfig {
    /// The default `threshold`: at it, one definition of the 174 of public MCP servers' tools in
    /// `tests/data/` fails (`tests/poisoning.rs`).
    pub const DEFAULT_THRESHOLD: f64 = 0.95;

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
}

impl Default for DefinitionClassifierConfig {
    /// Enabled at the default threshold with the built-in model.
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: None,
            model: ClassifierModel::Builtin,
        }
    }
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            action: ValidationAction::default(),
            builtin_detectors: true,
            rules: Vec::new(),
            classifier: None,
        }
    }
}

impl ValidationConfig {
    /// Sets `enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets `action`.
    #[must_use]
    pub fn action(mut self, action: ValidationAction) -> Self {
        self.action = action;
        self
    }

    /// Sets `builtinDetectors`.
    #[must_use]
    pub fn builtin_detectors(mut self, on: bool) -> Self {
        self.builtin_detectors = on;
        self
    }

    /// Sets `classifier`.
    #[must_use]
    pub fn classifier(mut self, classifier: DefinitionClassifierConfig) -> Self {
        self.classifier = Some(classifier);
        self
    }

    /// Sets `rules`.
    #[must_use]
    pub fn rules(mut self, rules: impl IntoIterator<Item = ValidationRule>) -> Self {
        self.rules = rules.into_iter().collect();
        self
    }
}

/// What happens to a `tools/list` result in which a tool fails validation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ValidationAction {
    /// The failing tool is removed from the list (and calls to it are refused).
    #[default]
    Remove,
    /// The whole result is replaced by a JSON-RPC error.
    Reject,
}

/// One rule of `validation.rules`.
///
/// `field` has no default: start with [`ValidationRule::new`]. A rule without a field or
/// without any pattern is refused by
/// [`ToolSecurityLayer::from_config`](crate::ToolSecurityLayer::from_config).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ValidationRule {
    /// Which strings of the definition: a dotted path where `*` is any member or element,
    /// e.g. `description`, `name`, `inputSchema.properties.*.default`. Every string under the
    /// selected values is checked.
    pub field: String,
    /// The tool fails when any of these matches.
    #[serde(default)]
    pub reject: Vec<NamedPattern>,
    /// The tool fails when none of these matches (when any is given).
    #[serde(default)]
    pub allow: Vec<NamedPattern>,
}

impl ValidationRule {
    /// A rule on `field` (e.g. `description`), without patterns yet.
    pub fn new(field: impl Into<String>) -> Self {
        Self::default().field(field)
    }

    /// Sets `field`.
    #[must_use]
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }

    /// Sets `reject`.
    #[must_use]
    pub fn reject(mut self, patterns: impl IntoIterator<Item = NamedPattern>) -> Self {
        self.reject = patterns.into_iter().collect();
        self
    }

    /// Sets `allow`.
    #[must_use]
    pub fn allow(mut self, patterns: impl IntoIterator<Item = NamedPattern>) -> Self {
        self.allow = patterns.into_iter().collect();
        self
    }
}

/// A regular expression with an optional rule name (used in metrics, audit and denials).
///
/// `pattern` has no default: start with [`NamedPattern::new`]; an empty pattern is refused
/// (it would match everything).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct NamedPattern {
    /// The regular expression (`regex` crate syntax, no look-around or backreferences).
    pub pattern: String,
    /// The rule name; defaults to the field path of the pattern, relative to the
    /// `toolSecurity` block (`inputValidation.rules[1].arguments[0].allow[0]`).
    #[serde(default)]
    pub name: Option<String>,
}

impl NamedPattern {
    /// The regular expression `pattern`, named after its field path until
    /// [`name`](Self::name) is set.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self::default().pattern(pattern)
    }

    /// Sets `pattern`.
    #[must_use]
    pub fn pattern(mut self, pattern: impl Into<String>) -> Self {
        self.pattern = pattern.into();
        self
    }

    /// Sets `name`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{SEED_VALIDATION, seed};

    #[test]
    fn seed_validation_block_deserializes() {
        let config = seed(SEED_VALIDATION);
        let validation = config.validation.expect("validation");
        assert!(validation.enabled && validation.builtin_detectors);
        assert_eq!(validation.action, ValidationAction::Remove);
        assert_eq!(validation.rules.len(), 3);
        assert_eq!(validation.rules[0].field, "description");
        assert_eq!(
            validation.rules[0].reject[2],
            NamedPattern {
                pattern: "(?i)you (must|should|have to)".into(),
                name: Some("coercive-language".into()),
            }
        );
        assert_eq!(
            validation.rules[1].field,
            "inputSchema.properties.*.default"
        );
        assert_eq!(validation.rules[1].reject[0].pattern, "[;&|`$]");
        assert_eq!(
            validation.rules[2].allow[0].name.as_deref(),
            Some("valid-tool-name")
        );
    }

    #[test]
    fn builders_match_the_yaml() {
        let built = ValidationConfig::default()
            .action(ValidationAction::Reject)
            .builtin_detectors(false)
            .rules([ValidationRule::new("name")
                .allow([NamedPattern::new("^[a-z][a-z0-9-]*$").name("valid-tool-name")])]);
        let parsed = seed(
            "validation:\n  action: Reject\n  builtinDetectors: false\n  rules:\n    - field: name\n      \
             allow:\n        - pattern: \"^[a-z][a-z0-9-]*$\"\n          name: valid-tool-name\n",
        );
        assert_eq!(parsed.validation, Some(built));
        assert_eq!(
            seed("validation: {}\n").validation,
            Some(ValidationConfig::default()),
            "Default is the empty block"
        );
        assert!(!ValidationConfig::default().enabled(false).enabled);
    }
}
