//! The serde configuration, in the shape of the seed's `TrafficPolicy.spec.rbac` block.
//!
//! ```yaml
//! rbac:
//!   policy:
//!     # Allowed if any of these is true (the seed's field).
//!     matchExpressions:
//!       - 'jwt.role == "admin"'
//!       - 'jwt.role == "user" && request.path.startsWith("/openai")'
//!     # More allow rules, same meaning as matchExpressions.
//!     allow:
//!       - name: read-only-tools
//!         expression: 'mcp.tool.name in ["kubectl-get", "list-pods"]'
//!     # Denied if any of these is true (or fails).
//!     deny:
//!       - name: no-deletes
//!         expression: 'mcp.tool.name.startsWith("kubectl-delete")'
//!     # Denied unless all of these are true.
//!     require:
//!       - 'has(jwt.sub)'
//! ```
//!
//! A rule is a CEL expression, or `{name, expression}` to give it the name denials and
//! metrics report; unnamed rules are called by their place (`deny[0]`,
//! `matchExpressions[1]`). See [`CelPolicy`](crate::CelPolicy) for how the lists combine.
//!
//! The same configuration in code, with `Default` and builder methods named after the fields:
//!
//! ```
//! use agentgw_rbac::{PolicyConfig, RbacConfig, RuleConfig};
//!
//! let config = RbacConfig::default().policy(
//!     PolicyConfig::default()
//!         .match_expressions([
//!             r#"jwt.role == "admin""#,
//!             r#"jwt.role == "user" && request.path.startsWith("/openai")"#,
//!         ])
//!         .allow([RuleConfig::default()
//!             .name("read-only-tools")
//!             .expression(r#"mcp.tool.name in ["kubectl-get", "list-pods"]"#)])
//!         .deny([RuleConfig::named("no-deletes", r#"mcp.tool.name.startsWith("kubectl-delete")"#)])
//!         .require(["has(jwt.sub)"]),
//! );
//! let yaml: RbacConfig = serde_saphyr::from_str(r#"
//! policy:
//!   matchExpressions:
//!     - 'jwt.role == "admin"'
//!     - 'jwt.role == "user" && request.path.startsWith("/openai")'
//!   allow:
//!     - name: read-only-tools
//!       expression: 'mcp.tool.name in ["kubectl-get", "list-pods"]'
//!   deny:
//!     - name: no-deletes
//!       expression: 'mcp.tool.name.startsWith("kubectl-delete")'
//!   require:
//!     - 'has(jwt.sub)'
//! "#).unwrap();
//! assert_eq!(config, yaml);
//! ```

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// The `rbac` block: `rbac: {policy: {...}}`.
///
/// The default policy has no rule: it allows everything. Error paths are relative to this
/// block (`policy.deny[0]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RbacConfig {
    /// The rules.
    pub policy: PolicyConfig,
}

impl RbacConfig {
    /// Sets the rules.
    #[must_use]
    pub fn policy(mut self, policy: PolicyConfig) -> Self {
        self.policy = policy;
        self
    }
}

/// `rbac.policy`: the rule lists (all empty by default). See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Allow rules, as the seed writes them: the request is allowed if any is true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<RuleConfig>,
    /// More allow rules, with the same meaning as `matchExpressions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<RuleConfig>,
    /// Deny rules: the request is denied if any is true, or fails to evaluate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<RuleConfig>,
    /// Required rules: the request is denied unless every one is true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<RuleConfig>,
}

impl PolicyConfig {
    /// Sets the allow rules as the seed writes them (replacing any set before): expressions
    /// (`&str`) or [`RuleConfig`]s.
    #[must_use]
    pub fn match_expressions<R: Into<RuleConfig>>(
        mut self,
        rules: impl IntoIterator<Item = R>,
    ) -> Self {
        self.match_expressions = rules.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the other allow rules (replacing any set before).
    #[must_use]
    pub fn allow<R: Into<RuleConfig>>(mut self, rules: impl IntoIterator<Item = R>) -> Self {
        self.allow = rules.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the deny rules (replacing any set before).
    #[must_use]
    pub fn deny<R: Into<RuleConfig>>(mut self, rules: impl IntoIterator<Item = R>) -> Self {
        self.deny = rules.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the required rules (replacing any set before).
    #[must_use]
    pub fn require<R: Into<RuleConfig>>(mut self, rules: impl IntoIterator<Item = R>) -> Self {
        self.require = rules.into_iter().map(Into::into).collect();
        self
    }
}

/// One rule: a CEL expression, optionally named.
///
/// Deserializes from a string (`'jwt.role == "admin"'`) or from
/// `{name: admins, expression: 'jwt.role == "admin"'}`. The default has an empty expression,
/// which does not compile: set [`expression`](Self::expression).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RuleConfig {
    /// The name denials and metrics report; by default the rule's place in its list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The CEL expression; it must produce a bool.
    pub expression: String,
}

impl RuleConfig {
    /// An unnamed rule.
    pub fn new(expression: impl Into<String>) -> Self {
        RuleConfig {
            name: None,
            expression: expression.into(),
        }
    }

    /// A named rule.
    pub fn named(name: impl Into<String>, expression: impl Into<String>) -> Self {
        RuleConfig {
            name: Some(name.into()),
            expression: expression.into(),
        }
    }

    /// Sets the name denials and metrics report.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the CEL expression.
    #[must_use]
    pub fn expression(mut self, expression: impl Into<String>) -> Self {
        self.expression = expression.into();
        self
    }
}

impl From<&str> for RuleConfig {
    fn from(expression: &str) -> Self {
        RuleConfig::new(expression)
    }
}

impl From<String> for RuleConfig {
    fn from(expression: String) -> Self {
        RuleConfig::new(expression)
    }
}

impl<'de> Deserialize<'de> for RuleConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RuleVisitor;

        impl<'de> Visitor<'de> for RuleVisitor {
            type Value = RuleConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CEL expression, or a map with `expression` and an optional `name`")
            }

            fn visit_str<E: de::Error>(self, expression: &str) -> Result<RuleConfig, E> {
                Ok(RuleConfig::new(expression))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RuleConfig, A::Error> {
                let mut name = None;
                let mut expression = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" if name.is_none() => name = Some(map.next_value::<String>()?),
                        "expression" if expression.is_none() => {
                            expression = Some(map.next_value::<String>()?);
                        }
                        "name" | "expression" => return Err(de::Error::duplicate_field("name")),
                        other => {
                            return Err(de::Error::unknown_field(other, &["name", "expression"]));
                        }
                    }
                }
                Ok(RuleConfig {
                    name,
                    expression: expression.ok_or_else(|| de::Error::missing_field("expression"))?,
                })
            }
        }

        deserializer.deserialize_any(RuleVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_block_deserializes() {
        let yaml = r#"
policy:
  matchExpressions:
    # Require API key header
    - 'request.headers["x-api-key"] != ""'
    # OR specific LLM header
    - 'request.headers["x-llm"] in ["openai", "anthropic", "gemini"]'
"#;
        let config: RbacConfig = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(config.policy.match_expressions.len(), 2);
        assert_eq!(
            config.policy.match_expressions[1].expression,
            r#"request.headers["x-llm"] in ["openai", "anthropic", "gemini"]"#
        );
        assert!(config.policy.deny.is_empty());
    }

    #[test]
    fn named_rules_and_all_lists() {
        let yaml = r#"
policy:
  allow: ['jwt.role == "admin"']
  deny:
    - name: no-deletes
      expression: 'mcp.tool.name == "kubectl-delete"'
  require: ['has(jwt.sub)']
"#;
        let config: RbacConfig = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(
            config.policy.deny[0],
            RuleConfig::named("no-deletes", r#"mcp.tool.name == "kubectl-delete""#)
        );
        assert_eq!(
            config.policy.allow[0],
            RuleConfig::new(r#"jwt.role == "admin""#)
        );
        assert_eq!(config.policy.require.len(), 1);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err =
            serde_saphyr::from_str::<RbacConfig>("policy: {matchExpression: []}").unwrap_err();
        assert!(err.to_string().contains("matchExpression"), "{err}");
        let err = serde_saphyr::from_str::<RbacConfig>("policy: {deny: [{name: x, expr: 'true'}]}")
            .unwrap_err();
        assert!(err.to_string().contains("expr"), "{err}");
        let err = serde_saphyr::from_str::<RbacConfig>("policy: {deny: [{name: x}]}").unwrap_err();
        assert!(err.to_string().contains("expression"), "{err}");
    }

    #[test]
    fn json_config_round_trips() {
        let config = RbacConfig {
            policy: PolicyConfig {
                match_expressions: vec!["true".into()],
                deny: vec![RuleConfig::named("d", "false")],
                ..PolicyConfig::default()
            },
        };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            json,
            r#"{"policy":{"matchExpressions":[{"expression":"true"}],"deny":[{"name":"d","expression":"false"}]}}"#
        );
        let back: RbacConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }
}
