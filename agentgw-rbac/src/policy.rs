//! A compiled policy: the rule lists and how they decide.
//!
//! A request is decided in three steps, each stopping at the first rule that settles it:
//!
//! 1. **deny**: denied if any deny rule is true. A deny rule that fails to evaluate also
//!    denies (fail closed).
//! 2. **require**: denied unless every required rule is true (false or failing both deny).
//! 3. **allow** (`matchExpressions` and `allow`): when there is at least one, allowed only if
//!    some allow rule is true; a failing allow rule does not match. With no allow rules,
//!    whatever passed steps 1 and 2 is allowed.
//!
//! A rule that fails (reads a missing header, divides by zero, produces a non-bool) is
//! counted in `agentgateway_rbac_rule_errors_total{rule}` and logged at debug level.

use std::fmt;
use std::sync::Arc;

use agentgw_core::Attributes;
use agentgw_core::Rejection;
use agentgw_core::metrics::RBAC_RULE_ERRORS_TOTAL;
use http::StatusCode;

use crate::config::{RbacConfig, RuleConfig};
use crate::error::Error;
use crate::expr::{CompileError, CompileOptions, EvalError, Expression, Timestamp, Type, Value};

/// The layer name in rejections and metrics.
pub const LAYER: &str = "rbac";

/// The rejection reason when allow rules exist and none matched.
pub const NO_RULE_MATCHED: &str = "no_rule_matched";

/// The message a denied client sees.
const DENIED_MESSAGE: &str = "request denied by RBAC policy";

/// A compiled RBAC policy. See the [module docs](self) for how rules decide.
pub struct CelPolicy {
    deny: Vec<Rule>,
    require: Vec<Rule>,
    allow: Vec<Rule>,
    reads_body: bool,
    reads_mcp: bool,
    reads_time: bool,
}

struct Rule {
    name: Arc<str>,
    expression: Expression,
}

/// The outcome of deciding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'p> {
    /// The request may proceed.
    Allow,
    /// The request is denied.
    Deny(Denial<'p>),
}

impl Decision<'_> {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Why a request is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial<'p> {
    /// The rule that decided (its name, or its place such as `deny[0]`), or
    /// [`NO_RULE_MATCHED`].
    pub rule: &'p str,
    /// What the rule did.
    pub cause: DenyCause,
}

/// What made a rule deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyCause {
    /// A deny rule is true.
    DenyRuleMatched,
    /// A deny rule failed to evaluate.
    DenyRuleFailed,
    /// A required rule is false.
    RequirementNotMet,
    /// A required rule failed to evaluate.
    RequirementFailed,
    /// Allow rules exist and none is true.
    NoRuleMatched,
}

impl Denial<'_> {
    /// The rejection to answer with: 403, layer `rbac`, reason the rule name. Answer with
    /// [`Rejection::respond_to`] to get an OpenAI error or a JSON-RPC error.
    pub fn rejection(&self) -> Rejection {
        Rejection::new(StatusCode::FORBIDDEN, LAYER, self.rule.to_owned())
            .with_message(DENIED_MESSAGE)
    }
}

/// How one rule came out.
enum Outcome {
    True,
    False,
    Failed,
    Unknown,
}

impl CelPolicy {
    /// Compiles the policy of `config` for requests on any route.
    pub fn from_config(config: &RbacConfig) -> Result<CelPolicy, Error> {
        CelPolicy::compile(config, &CompileOptions::default())
    }

    /// Compiles the policy of `config` with `options` (for instance the kind of route it
    /// applies to, so that `mcp.*` on an LLM route is a load-time error).
    ///
    /// Every rule is checked: syntax, names of variables, attributes and functions, that its
    /// result can be a bool, and that it does not always fail. Errors name the rule's path
    /// relative to the `rbac` block, e.g. `policy.matchExpressions[1]`.
    pub fn compile(config: &RbacConfig, options: &CompileOptions) -> Result<CelPolicy, Error> {
        let policy = &config.policy;
        let mut names: Vec<(Arc<str>, String)> = Vec::new();
        let mut compile_list = |list: &str, rules: &[RuleConfig]| -> Result<Vec<Rule>, Error> {
            rules
                .iter()
                .enumerate()
                .map(|(i, rule)| {
                    let path = format!("policy.{list}[{i}]");
                    let name: Arc<str> = match &rule.name {
                        Some(name) if name.trim().is_empty() => {
                            return Err(Error::EmptyName { path });
                        }
                        Some(name) => Arc::from(name.as_str()),
                        None => Arc::from(format!("{list}[{i}]")),
                    };
                    if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
                        return Err(Error::DuplicateName {
                            path,
                            name: name.to_string(),
                            first: first.clone(),
                        });
                    }
                    names.push((Arc::clone(&name), path.clone()));
                    let expression = compile_rule(&rule.expression, options, &path)?;
                    Ok(Rule { name, expression })
                })
                .collect()
        };
        let deny = compile_list("deny", &policy.deny)?;
        let require = compile_list("require", &policy.require)?;
        let mut allow = compile_list("matchExpressions", &policy.match_expressions)?;
        allow.extend(compile_list("allow", &policy.allow)?);
        let all = || deny.iter().chain(&require).chain(&allow);
        let reads_body = all().any(|r| r.expression.reads_body());
        let reads_mcp = all().any(|r| r.expression.reads_mcp());
        let reads_time = all().any(|r| r.expression.reads_time());
        Ok(CelPolicy {
            deny,
            require,
            allow,
            reads_body,
            reads_mcp,
            reads_time,
        })
    }

    /// Decides a request. See the [module docs](self). When some rule reads `request.time`,
    /// the clock is read once and every rule sees the same instant; otherwise it is not read.
    pub fn evaluate(&self, attrs: &Attributes<'_>) -> Decision<'_> {
        self.decide(attrs, self.reads_time.then(Timestamp::now))
    }

    /// Decides a request as if at `now` (`request.time`): for tests of business-hours and
    /// expiry rules.
    pub fn evaluate_at(&self, attrs: &Attributes<'_>, now: Timestamp) -> Decision<'_> {
        self.decide(attrs, Some(now))
    }

    fn decide(&self, attrs: &Attributes<'_>, now: Option<Timestamp>) -> Decision<'_> {
        let evaluate = |rule: &Rule| rule.outcome(rule.expression.evaluate_with(attrs, now));
        for rule in &self.deny {
            match evaluate(rule) {
                Outcome::True => return deny(rule, DenyCause::DenyRuleMatched),
                Outcome::False => {}
                Outcome::Failed | Outcome::Unknown => return deny(rule, DenyCause::DenyRuleFailed),
            }
        }
        for rule in &self.require {
            match evaluate(rule) {
                Outcome::True => {}
                Outcome::False => return deny(rule, DenyCause::RequirementNotMet),
                Outcome::Failed | Outcome::Unknown => {
                    return deny(rule, DenyCause::RequirementFailed);
                }
            }
        }
        if self.allow.is_empty() {
            return Decision::Allow;
        }
        for rule in &self.allow {
            if let Outcome::True = evaluate(rule) {
                return Decision::Allow;
            }
        }
        Decision::Deny(Denial {
            rule: NO_RULE_MATCHED,
            cause: DenyCause::NoRuleMatched,
        })
    }

    /// Whether the caller of `attrs` may call tool `tool`, as far as can be known before the
    /// call: the policy is evaluated as for a `tools/call` of `tool` whose arguments and body
    /// are unknown. The tool is hidden only when the policy denies it whatever the arguments;
    /// a rule that depends on them is decided when the call comes.
    pub fn tool_visible(&self, attrs: &Attributes<'_>, tool: &str) -> bool {
        let now = self.reads_time.then(Timestamp::now);
        let outcome = |rule: &Rule| match rule.expression.evaluate_listing(attrs, tool, now) {
            Ok(Value::Bool(true)) => Outcome::True,
            Ok(Value::Bool(false)) => Outcome::False,
            Err(e) if e.is_unknown() => Outcome::Unknown,
            _ => Outcome::Failed,
        };
        for rule in &self.deny {
            if matches!(outcome(rule), Outcome::True | Outcome::Failed) {
                return false;
            }
        }
        for rule in &self.require {
            if matches!(outcome(rule), Outcome::False | Outcome::Failed) {
                return false;
            }
        }
        if self.allow.is_empty() {
            return true;
        }
        self.allow
            .iter()
            .any(|rule| matches!(outcome(rule), Outcome::True | Outcome::Unknown))
    }

    /// Whether some rule reads the request body (`request.body` or any `mcp.*`): the layer
    /// then buffers the body before deciding.
    pub fn reads_body(&self) -> bool {
        self.reads_body
    }

    /// Whether some rule reads `mcp.method` or `mcp.tool.*`: the layer then filters the tools
    /// of `tools/list` results.
    pub fn reads_mcp(&self) -> bool {
        self.reads_mcp
    }

    /// Whether some rule reads `request.time`: only then does deciding read the clock.
    pub fn reads_time(&self) -> bool {
        self.reads_time
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.deny.len() + self.require.len() + self.allow.len()
    }

    /// Whether the policy has no rules (it allows everything).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for CelPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |rules: &[Rule]| rules.iter().map(|r| r.name.to_string()).collect::<Vec<_>>();
        f.debug_struct("CelPolicy")
            .field("deny", &names(&self.deny))
            .field("require", &names(&self.require))
            .field("allow", &names(&self.allow))
            .field("reads_body", &self.reads_body)
            .field("reads_time", &self.reads_time)
            .finish()
    }
}

fn deny(rule: &Rule, cause: DenyCause) -> Decision<'_> {
    Decision::Deny(Denial {
        rule: &rule.name,
        cause,
    })
}

impl Rule {
    /// Classifies a result, counting and logging failures.
    fn outcome(&self, result: Result<Value<'_>, EvalError>) -> Outcome {
        let error = match result {
            Ok(Value::Bool(true)) => return Outcome::True,
            Ok(Value::Bool(false)) => return Outcome::False,
            Ok(other) => EvalError::no_overload("rule", &[other.type_of()]),
            Err(error) if error.is_unknown() => return Outcome::Unknown,
            Err(error) => error,
        };
        metrics::counter!(RBAC_RULE_ERRORS_TOTAL, "rule" => self.name.to_string()).increment(1);
        tracing::debug!(rule = %self.name, %error, "RBAC rule failed to evaluate");
        Outcome::Failed
    }
}

/// Compiles one rule and checks that it can produce a bool and does not always fail.
fn compile_rule(source: &str, options: &CompileOptions, path: &str) -> Result<Expression, Error> {
    let compile_error = |error: CompileError| Error::Compile {
        path: path.to_owned(),
        error,
    };
    let expression = Expression::compile_with(source, options).map_err(compile_error)?;
    if let Some(found) = expression.result_type().filter(|t| *t != Type::Bool) {
        return Err(compile_error(CompileError::NotBoolean { found }));
    }
    if expression.is_constant() && expression.constant_value().is_none() {
        // A constant that did not fold failed: evaluate it once to report why.
        let req = http::Request::new(());
        if let Err(error) = expression.evaluate(&Attributes::new(&req)) {
            return Err(Error::AlwaysFails {
                path: path.to_owned(),
                error,
            });
        }
    }
    Ok(expression)
}

#[cfg(test)]
mod tests {
    use agentgw_core::ConfigError;
    use agentgw_core::Payload;
    use agentgw_core::identity::JwtClaims;
    use agentgw_core::rejection::RouteKind;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use serde_json::json;

    use super::*;
    use crate::config::PolicyConfig;

    fn policy(yaml: &str) -> CelPolicy {
        let config: RbacConfig = serde_saphyr::from_str(yaml).unwrap();
        CelPolicy::from_config(&config).unwrap_or_else(|e| panic!("{e}"))
    }

    fn load_error(yaml: &str) -> Error {
        let config: RbacConfig = serde_saphyr::from_str(yaml).unwrap();
        CelPolicy::from_config(&config).unwrap_err()
    }

    fn req(role: Option<&str>, body: Option<serde_json::Value>) -> http::Request<()> {
        let mut builder = http::Request::builder().uri("/openai/v1/chat/completions");
        if let Some(role) = role {
            builder = builder
                .extension(JwtClaims::from_value(json!({"sub": "u1", "role": role})).unwrap());
        }
        if let Some(body) = body {
            builder = builder.extension(Payload::from_json(body));
        }
        builder.body(()).unwrap()
    }

    fn decide<'p>(policy: &'p CelPolicy, req: &http::Request<()>) -> Decision<'p> {
        policy.evaluate(&Attributes::new(req))
    }

    const SEED_JWT: &str = r#"
policy:
  matchExpressions:
    - 'jwt.role == "admin"'
    - 'jwt.role == "user" && request.path.startsWith("/openai") && request.body.model == "gpt-3.5-turbo"'
"#;

    #[test]
    fn match_expressions_allow_when_any_is_true() {
        let policy = policy(SEED_JWT);
        assert!(policy.reads_body());
        assert!(!policy.reads_mcp());
        assert!(decide(&policy, &req(Some("admin"), None)).is_allowed());
        let cheap = req(Some("user"), Some(json!({"model": "gpt-3.5-turbo"})));
        assert!(decide(&policy, &cheap).is_allowed());
        let pricey = req(Some("user"), Some(json!({"model": "gpt-4"})));
        assert_eq!(
            decide(&policy, &pricey),
            Decision::Deny(Denial {
                rule: NO_RULE_MATCHED,
                cause: DenyCause::NoRuleMatched
            })
        );
        // No JWT at all: every rule errors or is false.
        assert!(!decide(&policy, &req(None, None)).is_allowed());
    }

    #[test]
    fn deny_then_require_then_allow() {
        let policy = policy(
            r#"
policy:
  deny:
    - name: no-gpt4
      expression: 'request.body.model == "gpt-4"'
  require: ['has(jwt.sub)']
  allow: ['jwt.role in ["admin", "user"]']
"#,
        );
        let admin_gpt4 = req(Some("admin"), Some(json!({"model": "gpt-4"})));
        assert_eq!(
            decide(&policy, &admin_gpt4),
            Decision::Deny(Denial {
                rule: "no-gpt4",
                cause: DenyCause::DenyRuleMatched
            })
        );
        let anonymous = req(None, Some(json!({"model": "gpt-4o"})));
        assert_eq!(
            decide(&policy, &anonymous),
            Decision::Deny(Denial {
                rule: "require[0]",
                cause: DenyCause::RequirementNotMet
            })
        );
        assert!(
            decide(
                &policy,
                &req(Some("user"), Some(json!({"model": "gpt-4o"})))
            )
            .is_allowed()
        );
        assert!(
            !decide(
                &policy,
                &req(Some("guest"), Some(json!({"model": "gpt-4o"})))
            )
            .is_allowed()
        );
        // A deny rule that cannot be evaluated (no body) denies.
        assert_eq!(
            decide(&policy, &req(Some("admin"), None)),
            Decision::Deny(Denial {
                rule: "no-gpt4",
                cause: DenyCause::DenyRuleFailed
            })
        );
    }

    #[test]
    fn no_allow_rules_allow_what_passes_deny_and_require() {
        let policy = policy("policy: {deny: ['jwt.role == \"banned\"']}");
        assert!(decide(&policy, &req(Some("user"), None)).is_allowed());
        assert!(!decide(&policy, &req(Some("banned"), None)).is_allowed());
        // `jwt.role` is missing without a JWT: the deny rule fails, and failing denies.
        assert!(!decide(&policy, &req(None, None)).is_allowed());
        let empty = CelPolicy::from_config(&RbacConfig::default()).unwrap();
        assert!(empty.is_empty());
        assert!(decide(&empty, &req(None, None)).is_allowed());
    }

    #[test]
    fn failing_rules_are_counted() {
        let policy = policy(
            "policy: {matchExpressions: [{name: has-key, expression: 'request.headers[\"x-api-key\"] != \"\"'}]}",
        );
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let decision =
            metrics::with_local_recorder(&recorder, || decide(&policy, &req(None, None)));
        assert!(!decision.is_allowed());
        let counted: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == RBAC_RULE_ERRORS_TOTAL)
            .map(|(key, _, _, value)| {
                let labels: Vec<_> = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (labels, value)
            })
            .collect();
        assert_eq!(
            counted,
            vec![(
                vec![("rule".to_owned(), "has-key".to_owned())],
                DebugValue::Counter(1)
            )]
        );
    }

    #[test]
    fn load_errors_name_the_rule_path() {
        let err = load_error("policy: {matchExpressions: ['true', 'jwt.role == ']}");
        assert_eq!(err.path(), "policy.matchExpressions[1]");
        assert!(
            err.to_string()
                .starts_with("policy.matchExpressions[1]: CEL syntax error at line 1, column 13"),
            "{err}"
        );
        let err = load_error("policy: {deny: ['request.path']}");
        assert_eq!(
            err.to_string(),
            "policy.deny[0]: a rule must produce a bool, but this expression produces string"
        );
        let err = load_error("policy: {require: ['size(jwt)']}");
        assert!(err.to_string().contains("produces int"), "{err}");
        let err = load_error("policy: {allow: ['1 / 0 == 1']}");
        assert!(
            matches!(err, Error::AlwaysFails { ref path, error: EvalError::DivisionByZero } if path == "policy.allow[0]"),
            "{err}"
        );
        let err = load_error(
            "policy: {allow: [{name: a, expression: 'true'}], deny: [{name: a, expression: 'false'}]}",
        );
        assert_eq!(
            err.to_string(),
            "policy.allow[0]: rule name \"a\" is already used by policy.deny[0]"
        );
        let err = load_error("policy: {allow: [{name: ' ', expression: 'true'}]}");
        assert!(matches!(err, Error::EmptyName { .. }));
        let err = load_error("policy: {allow: ['user.role == \"x\"']}");
        assert!(err.to_string().contains("unknown variable `user`"), "{err}");
    }

    #[test]
    fn route_kind_rejects_mcp_rules_on_llm_routes() {
        let config = RbacConfig {
            policy: PolicyConfig {
                allow: vec!["mcp.tool.arguments.path.startsWith('/tmp')".into()],
                ..PolicyConfig::default()
            },
        };
        let err =
            CelPolicy::compile(&config, &CompileOptions::new().route(RouteKind::Llm)).unwrap_err();
        assert_eq!(err.path(), "policy.allow[0]");
        assert!(
            err.to_string().contains("where no MCP tool call exists"),
            "{err}"
        );
        CelPolicy::compile(&config, &CompileOptions::new().route(RouteKind::Mcp)).unwrap();
    }

    const BUSINESS_HOURS: &str = r#"
policy:
  deny:
    - name: contract-expired
      expression: 'request.time >= timestamp("2030-01-01T00:00:00Z")'
  require:
    - name: business-hours
      expression: >-
        request.time.getDayOfWeek("Europe/Berlin") in [1, 2, 3, 4, 5] &&
        request.time.getHours("Europe/Berlin") >= 9 &&
        request.time.getHours("Europe/Berlin") < 17
"#;

    #[test]
    fn business_hours_and_expiry() {
        let hours = policy(BUSINESS_HOURS);
        assert!(hours.reads_time());
        assert!(!hours.reads_body());
        let req = req(None, None);
        let at = |time: &str| hours.evaluate_at(&Attributes::new(&req), time.parse().unwrap());
        // Wednesday 10:00 in Berlin (UTC+1 in winter).
        assert!(at("2025-01-15T09:00:00Z").is_allowed());
        // Wednesday 17:00 in Berlin.
        assert_eq!(
            at("2025-01-15T16:00:00Z"),
            Decision::Deny(Denial {
                rule: "business-hours",
                cause: DenyCause::RequirementNotMet
            })
        );
        // Saturday 10:00.
        assert!(!at("2025-01-18T09:00:00Z").is_allowed());
        // Summer time: 07:00 UTC is 09:00 in Berlin.
        assert!(at("2025-07-16T07:00:00Z").is_allowed());
        // After the contract ends, even in business hours.
        assert_eq!(
            at("2030-01-02T09:00:00Z"),
            Decision::Deny(Denial {
                rule: "contract-expired",
                cause: DenyCause::DenyRuleMatched
            })
        );
        // The clock of the system, when no instant is given: before 2030, a decision either
        // way, never a failing rule.
        match hours.evaluate(&Attributes::new(&req)) {
            Decision::Allow => {}
            Decision::Deny(denial) => assert_eq!(denial.rule, "business-hours"),
        }
        assert!(!policy(SEED_JWT).reads_time());
    }

    #[test]
    fn time_rules_are_checked_when_the_policy_loads() {
        let err = load_error(r#"policy: {allow: ['request.time.getHours("Europe/Berlln") > 8']}"#);
        assert_eq!(err.path(), "policy.allow[0]");
        assert!(
            err.to_string()
                .contains(r#"time zone "Europe/Berlln": unknown time zone"#),
            "{err}"
        );
        let err = load_error(r#"policy: {allow: ['request.time < "2030-01-01"']}"#);
        assert!(
            matches!(err, Error::Compile { .. } | Error::AlwaysFails { .. }),
            "{err}"
        );
        let err = load_error(r#"policy: {deny: ['request.time']}"#);
        assert!(
            err.to_string()
                .contains("produces google.protobuf.Timestamp"),
            "{err}"
        );
        let err =
            load_error(r#"policy: {deny: ['request.time > timestamp("2030-13-01T00:00:00Z")']}"#);
        assert!(
            err.to_string().contains("invalid RFC 3339 timestamp"),
            "{err}"
        );
    }

    fn list_request(role: &str) -> http::Request<()> {
        http::Request::builder()
            .uri("/mcp")
            .extension(JwtClaims::from_value(json!({"sub": "u", "role": role})).unwrap())
            .extension(Payload::from_json(
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            ))
            .body(())
            .unwrap()
    }

    #[test]
    fn tool_visibility_follows_the_call_decision() {
        let policy = policy(
            r#"
policy:
  matchExpressions:
    - 'mcp.tool.name in ["kubectl-delete", "helm-uninstall"] && jwt.role == "admin"'
    - 'mcp.tool.name in ["kubectl-get", "kubectl-describe", "list-pods"] && jwt.sub != ""'
    - 'mcp.tool.name == "read-file" && mcp.tool.arguments.path.startsWith("/public/")'
  deny:
    - 'mcp.tool.name == "shell"'
"#,
        );
        assert!(policy.reads_mcp());
        let user = list_request("user");
        let admin = list_request("admin");
        let visible =
            |req: &http::Request<()>, tool: &str| policy.tool_visible(&Attributes::new(req), tool);
        assert!(visible(&user, "kubectl-get"));
        assert!(!visible(&user, "kubectl-delete"));
        assert!(visible(&admin, "kubectl-delete"));
        // Decided by the arguments, which only the call will carry: stays visible.
        assert!(visible(&user, "read-file"));
        assert!(!visible(&admin, "shell"));
        assert!(!visible(&user, "unlisted-tool"));
    }

    #[test]
    fn tool_visibility_with_unknown_deny_and_require() {
        let policy = policy(
            r#"
policy:
  deny: ['mcp.tool.arguments.force == true']
  require: ['request.body.params.name != "x" || jwt.role == "admin"']
"#,
        );
        let user = list_request("user");
        // Both rules depend on the unknown call: nothing can be decided, the tool stays.
        assert!(policy.tool_visible(&Attributes::new(&user), "anything"));
    }
}
