//! The `toolSecurity` configuration block, with the field names of seed 000.
//!
//! Every block of the seed's "Tool Poisoning Protection" section deserializes as written
//! (`validation`, `responseSanitization`, `allowlist`, `inputValidation`, `sandbox`, `audit`);
//! `pinning` and `nameSpoofing` are ours. Unknown fields are errors. The structure is checked by
//! serde; values (patterns, sizes, URLs, combinations) are checked by
//! [`ToolSecurityLayer::from_config`](crate::ToolSecurityLayer::from_config), whose errors name
//! the field path relative to the block. Durations (`maxExecutionTime`) and sizes
//! (`maxOutputSize`) follow the rule of every agentgw crate
//! ([`agentgw_core::config::parse_duration`], [`agentgw_core::config::parse_byte_size`]).
//!
//! Every type here is `#[non_exhaustive]`, implements [`Default`] (the value of an empty block,
//! or an empty value that `from_config` refuses naming the field where there is no sensible
//! default, such as a rule's `field`) and has `#[must_use]` builder methods named after its
//! fields, so the same configuration can be written in code:
//!
//! ```
//! use agentgw_toolsec::config::{
//!     AllowedTool, AllowlistConfig, ArgumentConstraint, ArgumentRule, InputRule,
//!     InputValidationConfig, NamedPattern, ToolSecurityConfig,
//! };
//!
//! let config = ToolSecurityConfig::default()
//!     .allowlist(AllowlistConfig::default().tools([
//!         AllowedTool::new("kubectl-logs")
//!             .allowed_arguments([("tail", ArgumentConstraint::at_most(1000.0))]),
//!     ]))
//!     .input_validation(InputValidationConfig::default().rules([
//!         InputRule::new("*").arguments([ArgumentRule::new("*")
//!             .reject([NamedPattern::new(r"\.\./").name("path-traversal")])]),
//!     ]));
//!
//! let yaml = r#"
//! allowlist:
//!   tools:
//!     - name: kubectl-logs
//!       allowedArguments:
//!         tail: { max: 1000 }
//! inputValidation:
//!   rules:
//!     - tool: "*"
//!       arguments:
//!         - field: "*"
//!           reject:
//!             - pattern: "\\.\\./"
//!               name: path-traversal
//! "#;
//! assert_eq!(serde_saphyr::from_str::<ToolSecurityConfig>(yaml).unwrap(), config);
//! ```
//!
//! The whole block, every field:
//!
//!
//! ```yaml
//! toolSecurity:
//!   validation:                 # tools/list: poisoned definitions (builtin detectors run by default)
//!     enabled: true
//!     action: Remove            # Remove the tool (default) | Reject the whole response
//!     builtinDetectors: true
//!     rules:
//!       - field: description
//!         reject:
//!           - pattern: "(?i)IMPORTANT.*always"
//!             name: forced-instruction
//!       - field: name
//!         allow:
//!           - pattern: "^[a-z][a-z0-9-]*$"
//!             name: valid-tool-name
//!     classifier: {enabled: true, threshold: 0.95, model: builtin}   # cargo feature `classifier`
//!   nameSpoofing:               # tools/list: names confusable with trusted or other servers' tools
//!     trustedTools: [kubectl-get]
//!   pinning:                    # tools/list: rug-pulls (a definition changed after first sight)
//!     action: Remove            # Remove | Allow (audit only)
//!   allowlist:                  # tools/list and tools/call
//!     tools:
//!       - name: kubectl-logs
//!         allowedArguments:
//!           tail: { max: 1000 }
//!       - name: github-get-file
//!         blockedArguments:
//!           path: [".env", "*.pem", "*secret*"]
//!   inputValidation:            # tools/call arguments
//!     validateSchema: true      # against the tool's inputSchema (on by default)
//!     rules:
//!       - tool: "*"
//!         arguments:
//!           - field: "*"
//!             reject:
//!               - pattern: "\\.\\./"
//!                 name: path-traversal
//!   responseSanitization:       # tools/call results
//!     rules:
//!       - action: Remove
//!         patterns: ["(?i)ignore.*previous.*instructions"]
//!       - action: Mask
//!         builtins: [EMAIL, CREDIT_CARD]
//!       - action: Truncate
//!         maxLength: 50000
//!         truncationMessage: "[Response truncated for safety]"
//!     classifier:               # cargo feature `classifier`: prompt injections in tool results
//!       enabled: true
//!       threshold: 0.95
//!       action: Remove          # Remove the flagged text (default) | Reject the call
//!       model: builtin
//!       replacement: "[removed: suspected prompt injection]"
//!   unlistedTools: Fetch        # tools/call of a tool no tools/list showed: Fetch | Deny | Allow
//!   escalation:                 # where refusals of `action: Escalate` rules go (allowlist,
//!     webhook: https://hooks.example.com/security   #   allowlist.tools[], inputValidation.rules[])
//!     blockPending: true        # the call waits (at most timeout) for {"decision": "allow"|"deny"}
//!     timeout: 5s
//!     consoleNotification: true
//!   sandbox:
//!     limits:
//!       maxExecutionTime: 30s
//!       maxOutputSize: 1Mi
//!   audit:
//!     level: full
//!     includeArguments: true
//!     destination:
//!       type: stdout            # stdout | webhook | syslog
//! ```

mod allowlist;
mod audit;
mod escalation;
mod input;
mod pinning;
mod sandbox;
mod sanitization;
mod spoofing;
mod validation;

use serde::Deserialize;

pub use allowlist::{AllowedTool, AllowlistConfig, ArgumentConstraint};
pub use audit::{AuditConfig, AuditDestination, AuditLevel, DestinationKind, SyslogProtocol};
pub use escalation::{EscalationConfig, RuleAction};
pub use input::{ArgumentRule, InputRule, InputValidationConfig};
pub use pinning::{PinningConfig, REDIS_SECRET_KEY, RedisPinsConfig};
pub use sandbox::{FileSystemAccess, STDIO_ONLY_LIMITS, SandboxConfig, SandboxLimits, SandboxMode};
pub use sanitization::{
    ResponseSanitizationConfig, ResultClassifierAction, ResultClassifierConfig, SanitizationAction,
    SanitizationRule,
};
pub use spoofing::NameSpoofingConfig;
pub use validation::{
    DefinitionClassifierConfig, NamedPattern, ValidationAction, ValidationConfig, ValidationRule,
};

/// `toolSecurity`: every defense of this crate. See the [module docs](self) for the shape.
///
/// An absent block is off, except `validation` (its builtin detectors run with no
/// configuration), `inputValidation.validateSchema`, `pinning` and `nameSpoofing`, which are on
/// by default: `toolSecurity: {}`, which is [`ToolSecurityConfig::default`], is a useful
/// configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ToolSecurityConfig {
    /// Tool definition validation of `tools/list` results.
    #[serde(default)]
    pub validation: Option<ValidationConfig>,
    /// Sanitization of `tools/call` results.
    #[serde(default)]
    pub response_sanitization: Option<ResponseSanitizationConfig>,
    /// Only these tools, with these arguments.
    #[serde(default)]
    pub allowlist: Option<AllowlistConfig>,
    /// Validation of `tools/call` arguments.
    #[serde(default)]
    pub input_validation: Option<InputValidationConfig>,
    /// Execution limits.
    #[serde(default)]
    pub sandbox: Option<SandboxConfig>,
    /// Audit events.
    #[serde(default)]
    pub audit: Option<AuditConfig>,
    /// Tool pinning: flags definitions that change after they were first seen.
    #[serde(default)]
    pub pinning: Option<PinningConfig>,
    /// Name spoofing: flags tool names confusable with trusted tools or other servers' tools.
    #[serde(default)]
    pub name_spoofing: Option<NameSpoofingConfig>,
    /// What happens to a `tools/call` of a tool no `tools/list` has shown the layer yet
    /// (default `Fetch`: the layer lists the upstream's tools itself first).
    #[serde(default)]
    pub unlisted_tools: UnlistedTools,
    /// Where the refusals of `tools/call` rules with `action: Escalate` go, and whether the
    /// call waits for a decision ([`RuleAction::Escalate`], [`agentgw_core::escalation`]).
    #[serde(default)]
    pub escalation: Option<EscalationConfig>,
}

impl ToolSecurityConfig {
    /// Sets `validation`.
    #[must_use]
    pub fn validation(mut self, validation: ValidationConfig) -> Self {
        self.validation = Some(validation);
        self
    }

    /// Sets `responseSanitization`.
    #[must_use]
    pub fn response_sanitization(mut self, sanitization: ResponseSanitizationConfig) -> Self {
        self.response_sanitization = Some(sanitization);
        self
    }

    /// Sets `allowlist`.
    #[must_use]
    pub fn allowlist(mut self, allowlist: AllowlistConfig) -> Self {
        self.allowlist = Some(allowlist);
        self
    }

    /// Sets `inputValidation`.
    #[must_use]
    pub fn input_validation(mut self, input_validation: InputValidationConfig) -> Self {
        self.input_validation = Some(input_validation);
        self
    }

    /// Sets `sandbox`.
    #[must_use]
    pub fn sandbox(mut self, sandbox: SandboxConfig) -> Self {
        self.sandbox = Some(sandbox);
        self
    }

    /// Sets `audit`.
    #[must_use]
    pub fn audit(mut self, audit: AuditConfig) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Sets `pinning`.
    #[must_use]
    pub fn pinning(mut self, pinning: PinningConfig) -> Self {
        self.pinning = Some(pinning);
        self
    }

    /// Sets `nameSpoofing`.
    #[must_use]
    pub fn name_spoofing(mut self, name_spoofing: NameSpoofingConfig) -> Self {
        self.name_spoofing = Some(name_spoofing);
        self
    }

    /// Sets `unlistedTools`.
    #[must_use]
    pub fn unlisted_tools(mut self, unlisted_tools: UnlistedTools) -> Self {
        self.unlisted_tools = unlisted_tools;
        self
    }

    /// Sets `escalation`.
    #[must_use]
    pub fn escalation(mut self, escalation: EscalationConfig) -> Self {
        self.escalation = Some(escalation);
        self
    }
}

/// `unlistedTools`: a `tools/call` of a tool whose definition the layer has not checked yet,
/// because no `tools/list` answer of that upstream has shown it (a fresh gateway, a client
/// that calls without listing, pins reset by
/// [`ToolSecurityLayer::reset_pins`](crate::ToolSecurityLayer::reset_pins)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum UnlistedTools {
    /// The layer sends its own `tools/list` to the upstream first, on the caller's session
    /// (same `Mcp-Session-Id`, credentials and other headers, through the inner service),
    /// following `nextCursor` for a bounded number of pages. The definitions are checked and
    /// recorded (pins, schemas) as those of a client's `tools/list`; then the call is decided.
    /// A tool the upstream does not list, or a listing that fails, refuses the call.
    #[default]
    Fetch,
    /// The call is refused with a JSON-RPC error: clients must list tools first.
    Deny,
    /// The call is forwarded unchecked against a definition (arguments still go through the
    /// allowlist and input validation rules). Use only when every tool is allowlisted.
    Allow,
}

/// What happens to a flagged tool (changed definition, spoofed name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum FlagAction {
    /// The tool is removed from the list and calls to it are refused.
    #[default]
    Remove,
    /// The tool stays; the finding is audited.
    Allow,
}

/// The serde default of every `enabled` field: a block that is written is on.
fn yes() -> bool {
    true
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The `toolSecurity` blocks of seed 000 ("Tool Poisoning Protection"), verbatim.
    pub(crate) const SEED_VALIDATION: &str = r#"
      validation:
        enabled: true
        rules:
          # Block suspicious patterns in tool descriptions
          - field: description
            reject:
              - pattern: "(?i)(ignore|forget|disregard).*(previous|prior|above)"
                name: "prompt-injection-in-description"
              - pattern: "(?i)IMPORTANT.*always"
                name: "forced-instruction"
              - pattern: "(?i)you (must|should|have to)"
                name: "coercive-language"
          # Block dangerous default values
          - field: inputSchema.properties.*.default
            reject:
              - pattern: "[;&|`$]"
                name: "shell-metacharacters"
          # Validate tool names
          - field: name
            allow:
              - pattern: "^[a-z][a-z0-9-]*$"
                name: "valid-tool-name"
"#;

    pub(crate) const SEED_SANITIZATION: &str = r#"
      responseSanitization:
        enabled: true
        rules:
          # Remove injection attempts from responses
          - action: Remove
            patterns:
              - "(?i)ignore.*previous.*instructions"
              - "(?i)you are now"
              - "(?i)forget everything"
          # Truncate excessively long responses
          - action: Truncate
            maxLength: 50000
            truncationMessage: "[Response truncated for safety]"
"#;

    pub(crate) const SEED_ALLOWLIST: &str = r#"
      allowlist:
        enabled: true
        tools:
          # Read-only Kubernetes tools
          - name: kubectl-get
            allowedArguments:
              resource: ["pods", "services", "deployments", "configmaps"]
              namespace: ["ai-system", "monitoring", "default"]
          - name: kubectl-describe
            allowedArguments:
              resource: ["pods", "services"]
          - name: kubectl-logs
            allowedArguments:
              tail: { max: 1000 }
          # GitHub tools
          - name: github-list-repos
          - name: github-get-file
            blockedArguments:
              path: [".env", "*.pem", "*.key", "*secret*"]
"#;

    pub(crate) const SEED_INPUT_VALIDATION: &str = r#"
      inputValidation:
        enabled: true
        rules:
          # Prevent command injection
          - tool: "*"
            arguments:
              - field: "*"
                reject:
                  - pattern: "[;&|`$(){}\\[\\]]"
                    name: "shell-metacharacters"
                  - pattern: "\\.\\./"
                    name: "path-traversal"
          # Tool-specific validation
          - tool: "kubectl-*"
            arguments:
              - field: namespace
                allow:
                  - pattern: "^[a-z][a-z0-9-]*$"
              - field: name
                reject:
                  - pattern: "^kube-"
                    name: "system-resources"
"#;

    pub(crate) const SEED_SANDBOX: &str = r#"
      sandbox:
        enabled: true
        mode: strict
        limits:
          maxExecutionTime: 30s
          maxOutputSize: 1Mi
          networkAccess: false
          fileSystemAccess: readOnly
"#;

    pub(crate) const SEED_AUDIT: &str = r#"
      audit:
        enabled: true
        level: full  # none, basic, full
        includeArguments: true
        includeResponse: true
        destination:
          type: stdout  # or webhook, syslog
"#;

    pub(crate) fn seed(block: &str) -> ToolSecurityConfig {
        serde_saphyr::from_str(block).unwrap_or_else(|e| panic!("seed block must parse: {e}"))
    }

    #[test]
    fn all_seed_blocks_together_deserialize() {
        let all = [
            SEED_VALIDATION,
            SEED_SANITIZATION,
            SEED_ALLOWLIST,
            SEED_INPUT_VALIDATION,
            SEED_SANDBOX,
            SEED_AUDIT,
        ]
        .concat();
        let config = seed(&all);
        assert!(config.validation.is_some() && config.audit.is_some());
    }

    #[test]
    fn unknown_fields_are_errors() {
        let error = serde_saphyr::from_str::<ToolSecurityConfig>("validation:\n  enabeld: true\n")
            .expect_err("typo");
        assert!(error.to_string().contains("enabeld"), "{error}");
        let error = serde_saphyr::from_str::<ToolSecurityConfig>(
            "allowlist:\n  tools:\n    - name: x\n      allowedArguments:\n        n: {maximum: 3}\n",
        )
        .expect_err("unknown range key");
        assert!(error.to_string().contains("maximum"), "{error}");
        let error = serde_saphyr::from_str::<ToolSecurityConfig>(
            "responseSanitization:\n  rules:\n    - action: Delete\n",
        )
        .expect_err("unknown action");
        assert!(error.to_string().contains("Delete"), "{error}");
    }

    #[test]
    fn defaults_of_absent_and_empty_blocks() {
        let config = seed("{}");
        assert_eq!(config, ToolSecurityConfig::default());
        let config = seed("allowlist: {}\npinning: {}\n");
        let allowlist = config.allowlist.expect("allowlist");
        assert!(allowlist.enabled, "a written block is on");
        assert_eq!(config.pinning.expect("pinning").action, FlagAction::Remove);
    }

    #[test]
    fn builders_write_the_seed_blocks_in_code() {
        use std::time::Duration;

        let config = ToolSecurityConfig::default()
            .sandbox(
                SandboxConfig::default().limits(
                    SandboxLimits::default()
                        .max_execution_time(Duration::from_secs(30))
                        .max_output_size(1 << 20),
                ),
            )
            .audit(
                AuditConfig::default()
                    .level(AuditLevel::Full)
                    .include_arguments(true)
                    .include_response(true)
                    .destination(AuditDestination::stdout()),
            )
            .pinning(PinningConfig::default().action(FlagAction::Allow))
            .name_spoofing(NameSpoofingConfig::default().trusted_tools(["kubectl-get"]))
            .unlisted_tools(UnlistedTools::Deny);
        let yaml = "sandbox:\n  limits:\n    maxExecutionTime: 30s\n    maxOutputSize: 1Mi\n\
                    audit:\n  level: full\n  includeArguments: true\n  includeResponse: true\n  \
                    destination:\n    type: stdout\n\
                    pinning: {action: Allow}\nnameSpoofing: {trustedTools: [kubectl-get]}\n\
                    unlistedTools: Deny\n";
        assert_eq!(seed(yaml), config);
    }
}
