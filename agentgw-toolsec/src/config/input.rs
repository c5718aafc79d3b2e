//! `inputValidation`: checks of `tools/call` arguments.

use serde::Deserialize;

use super::{NamedPattern, RuleAction, yes};

/// `inputValidation`: checks `tools/call` arguments.
///
/// [`Default`] is the value of `inputValidation: {}`: on, arguments validated against the
/// tool's input schema, no pattern rule (the same as an absent block).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct InputValidationConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Validates arguments against the tool's `inputSchema` (seen in `tools/list`, never
    /// fetching remote `$ref`s). On unless `false`.
    #[serde(default = "yes")]
    pub validate_schema: bool,
    /// Pattern rules per tool.
    #[serde(default)]
    pub rules: Vec<InputRule>,
}

impl Default for InputValidationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            validate_schema: true,
            rules: Vec::new(),
        }
    }
}

impl InputValidationConfig {
    /// Sets `enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets `validateSchema`.
    #[must_use]
    pub fn validate_schema(mut self, on: bool) -> Self {
        self.validate_schema = on;
        self
    }

    /// Sets `rules`.
    #[must_use]
    pub fn rules(mut self, rules: impl IntoIterator<Item = InputRule>) -> Self {
        self.rules = rules.into_iter().collect();
        self
    }
}

/// One rule of `inputValidation.rules`.
///
/// [`Default`] applies to every tool (`tool: "*"`) and checks nothing yet.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct InputRule {
    /// Tools the rule applies to: a name with `*` and `?` wildcards (default `*`).
    #[serde(default = "any_tool")]
    pub tool: String,
    /// Checks per argument.
    #[serde(default)]
    pub arguments: Vec<ArgumentRule>,
    /// What a call refused by these checks does (default `Reject`; `Escalate`: see
    /// [`RuleAction`]).
    #[serde(default)]
    pub action: RuleAction,
}

impl Default for InputRule {
    fn default() -> Self {
        Self {
            tool: any_tool(),
            arguments: Vec::new(),
            action: RuleAction::Reject,
        }
    }
}

impl InputRule {
    /// A rule for the tools matching `tool` (`*` and `?` are wildcards).
    pub fn new(tool: impl Into<String>) -> Self {
        Self::default().tool(tool)
    }

    /// Sets `tool`.
    #[must_use]
    pub fn tool(mut self, tool: impl Into<String>) -> Self {
        self.tool = tool.into();
        self
    }

    /// Sets `arguments`.
    #[must_use]
    pub fn arguments(mut self, arguments: impl IntoIterator<Item = ArgumentRule>) -> Self {
        self.arguments = arguments.into_iter().collect();
        self
    }

    /// Sets `action`.
    #[must_use]
    pub fn action(mut self, action: RuleAction) -> Self {
        self.action = action;
        self
    }
}

fn any_tool() -> String {
    "*".to_owned()
}

/// One argument check of an input rule.
///
/// `field` has no default: start with [`ArgumentRule::new`]. A check without a field or
/// without any pattern is refused by
/// [`ToolSecurityLayer::from_config`](crate::ToolSecurityLayer::from_config).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ArgumentRule {
    /// The argument: a name, a dotted path into nested objects (`*` for any member), or `*`
    /// for every argument. Every string, number and boolean under it is checked.
    pub field: String,
    /// The call is refused when any of these matches the value, as sent or decoded
    /// (URL-encoding, HTML entities) and normalized (Unicode look-alikes, full-width forms).
    #[serde(default)]
    pub reject: Vec<NamedPattern>,
    /// The call is refused when none of these matches the value as sent (when any is given).
    #[serde(default)]
    pub allow: Vec<NamedPattern>,
}

impl ArgumentRule {
    /// A check of the argument `field` (`*` for every argument), without patterns yet.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{SEED_INPUT_VALIDATION, seed};

    #[test]
    fn seed_input_validation_block_deserializes() {
        let input = seed(SEED_INPUT_VALIDATION)
            .input_validation
            .expect("inputValidation");
        assert!(input.validate_schema, "schema validation is on by default");
        assert_eq!(input.rules[0].tool, "*");
        assert_eq!(
            input.rules[0].arguments[0].reject[0].pattern,
            "[;&|`$(){}\\[\\]]"
        );
        assert_eq!(input.rules[0].arguments[0].reject[1].pattern, "\\.\\./");
        assert_eq!(input.rules[1].tool, "kubectl-*");
        assert_eq!(input.rules[1].arguments[0].allow[0].name, None);
        assert_eq!(
            input.rules[1].arguments[1].reject[0].name.as_deref(),
            Some("system-resources")
        );
    }

    #[test]
    fn builders_match_the_yaml() {
        let built = InputValidationConfig::default()
            .validate_schema(false)
            .rules([
                InputRule::new("kubectl-*")
                    .arguments([ArgumentRule::new("namespace")
                        .allow([NamedPattern::new("^[a-z][a-z0-9-]*$")])]),
                InputRule::default().arguments([ArgumentRule::new("*")
                    .reject([NamedPattern::new("\\.\\./").name("path-traversal")])]),
            ]);
        let parsed = seed(
            "inputValidation:\n  validateSchema: false\n  rules:\n    - tool: \"kubectl-*\"\n      arguments:\n        \
             - field: namespace\n          allow:\n            - pattern: \"^[a-z][a-z0-9-]*$\"\n    \
             - arguments:\n        - field: \"*\"\n          reject:\n            \
             - {pattern: \"\\\\.\\\\./\", name: path-traversal}\n",
        );
        assert_eq!(parsed.input_validation, Some(built));
        assert_eq!(
            seed("inputValidation: {}\n").input_validation,
            Some(InputValidationConfig::default())
        );
    }
}
