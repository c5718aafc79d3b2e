//! The `toolSecurity` configuration block, with the field names of seed 000.
//!
//! Every block of the seed's "Tool Poisoning Protection" section deserializes as written
//! (`validation`, `responseSanitization`, `allowlist`, `inputValidation`, `sandbox`, `audit`);
//! `pinning` and `nameSpoofing` are ours. Unknown fields are errors. The structure is checked by
//! serde; values (patterns, sizes, URLs, combinations) are checked by
//! [`ToolSecurityLayer::from_config`](crate::ToolSecurityLayer::from_config), whose errors name
//! the field path.
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
//!   unlistedTools: Fetch        # tools/call of a tool no tools/list showed: Fetch | Deny | Allow
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

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use agentgw_guard::Builtin;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `toolSecurity`: every defense of this crate. See the [module docs](self) for the shape.
///
/// An absent block is off, except `validation` (its builtin detectors run with no
/// configuration), `inputValidation.validateSchema`, `pinning` and `nameSpoofing`, which are on
/// by default: `toolSecurity: {}` is a useful configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

fn yes() -> bool {
    true
}

/// `validation`: checks every tool definition of a `tools/list` result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidationConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// What happens to a list with a failing tool.
    #[serde(default)]
    pub action: ValidationAction,
    /// Runs the builtin detectors (hidden instructions, invisible Unicode, shadowing of other
    /// tools, secret exfiltration, dangerous schema defaults). On unless `false`.
    #[serde(default = "yes")]
    pub builtin_detectors: bool,
    /// Custom rules on fields of the definition.
    #[serde(default)]
    pub rules: Vec<ValidationRule>,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            action: ValidationAction::default(),
            builtin_detectors: true,
            rules: Vec::new(),
        }
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

/// A regular expression with an optional rule name (used in metrics, audit and denials).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedPattern {
    /// The regular expression (`regex` crate syntax, no look-around or backreferences).
    pub pattern: String,
    /// The rule name; defaults to the field path of the pattern.
    #[serde(default)]
    pub name: Option<String>,
}

/// `responseSanitization`: rewrites `tools/call` results before the client sees them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseSanitizationConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Applied in order of action: `Remove`, then `Mask`, then `Truncate`.
    #[serde(default)]
    pub rules: Vec<SanitizationRule>,
}

/// One rule of `responseSanitization.rules`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

/// `allowlist`: only the listed tools are visible and callable.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowlistConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The allowed tools.
    #[serde(default)]
    pub tools: Vec<AllowedTool>,
}

/// One tool of `allowlist.tools`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedTool {
    /// The tool name; `*` and `?` are wildcards.
    pub name: String,
    /// Per argument: the values it may take (`[a, b]`) or its numeric range (`{max: N}`,
    /// `{min: N}`). Arguments not listed are unconstrained; an absent argument passes.
    #[serde(default)]
    pub allowed_arguments: BTreeMap<String, ArgumentConstraint>,
    /// Per argument: glob patterns (`*.pem`, `*secret*`) its value, or any path component of
    /// it, must not match (case-insensitive, also after URL-decoding).
    #[serde(default)]
    pub blocked_arguments: BTreeMap<String, Vec<String>>,
}

/// What values an allowlisted argument may take.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgumentConstraint {
    /// One of these values (strings, numbers or booleans); for an array, every element.
    OneOf(Vec<Value>),
    /// A number within the bounds (both inclusive).
    Range {
        /// The smallest allowed value.
        min: Option<f64>,
        /// The largest allowed value.
        max: Option<f64>,
    },
}

impl<'de> Deserialize<'de> for ArgumentConstraint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConstraintVisitor;

        impl<'de> Visitor<'de> for ConstraintVisitor {
            type Value = ArgumentConstraint;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of allowed values or a range such as `{max: 1000}`")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<Value>()? {
                    if value.is_array() || value.is_object() || value.is_null() {
                        return Err(de::Error::custom(
                            "allowed values must be strings, numbers or booleans",
                        ));
                    }
                    values.push(value);
                }
                Ok(ArgumentConstraint::OneOf(values))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut min, mut max) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "min" if min.is_none() => min = Some(map.next_value::<f64>()?),
                        "max" if max.is_none() => max = Some(map.next_value::<f64>()?),
                        "min" | "max" => return Err(de::Error::duplicate_field("min/max")),
                        other => return Err(de::Error::unknown_field(other, &["min", "max"])),
                    }
                }
                if min.is_none() && max.is_none() {
                    return Err(de::Error::custom("a range needs `min`, `max` or both"));
                }
                Ok(ArgumentConstraint::Range { min, max })
            }
        }

        deserializer.deserialize_any(ConstraintVisitor)
    }
}

/// `inputValidation`: checks `tools/call` arguments.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

/// One rule of `inputValidation.rules`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputRule {
    /// Tools the rule applies to: a name with `*` and `?` wildcards.
    #[serde(default = "any_tool")]
    pub tool: String,
    /// Checks per argument.
    #[serde(default)]
    pub arguments: Vec<ArgumentRule>,
}

fn any_tool() -> String {
    "*".to_owned()
}

/// One argument check of an input rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

/// `sandbox`: limits the gateway enforces on tool calls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `strict` enforces the limits; `permissive` only records violations (audit, metrics).
    #[serde(default)]
    pub mode: SandboxMode,
    /// The limits.
    #[serde(default)]
    pub limits: SandboxLimits,
}

/// How sandbox limits apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// A call over a limit is cancelled or its output replaced by a JSON-RPC error.
    #[default]
    Strict,
    /// Violations are audited and counted, nothing is enforced (a dry run).
    Permissive,
}

/// `sandbox.limits`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxLimits {
    /// The longest a `tools/call` may take (`30s`, `500ms`, `2m`); the call is then cancelled.
    #[serde(default, deserialize_with = "optional_duration")]
    pub max_execution_time: Option<Duration>,
    /// The largest `tools/call` response, in bytes (`1Mi`, `512Ki`, `10M`, `65536`).
    #[serde(default, deserialize_with = "optional_size")]
    pub max_output_size: Option<u64>,
    /// Only for stdio servers the gateway launches (not implemented): rejected.
    #[serde(default)]
    pub network_access: Option<IgnoredAny>,
    /// Only for stdio servers the gateway launches (not implemented): rejected.
    #[serde(default)]
    pub file_system_access: Option<IgnoredAny>,
}

/// `audit`: structured events for tool calls and validation decisions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How much to record.
    #[serde(default)]
    pub level: AuditLevel,
    /// With `level: full`, the call's arguments (secrets masked).
    #[serde(default)]
    pub include_arguments: bool,
    /// With `level: full`, the tool's result (secrets masked, shortened).
    #[serde(default)]
    pub include_response: bool,
    /// Where events go.
    #[serde(default)]
    pub destination: AuditDestination,
}

/// How much the audit records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditLevel {
    /// Nothing.
    None,
    /// One event per tool call and per validation decision: identity, tool, decision, rule,
    /// latency.
    #[default]
    Basic,
    /// As `basic`, plus arguments and results where `includeArguments` / `includeResponse`.
    Full,
}

/// `audit.destination`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditDestination {
    /// The kind of destination.
    #[serde(rename = "type", default)]
    pub kind: DestinationKind,
    /// `webhook`: the URL events are POSTed to (a JSON array per batch).
    #[serde(default)]
    pub url: Option<String>,
    /// `webhook`: extra request headers (e.g. an authorization token).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `syslog`: `host:port` of the collector.
    #[serde(default)]
    pub address: Option<String>,
    /// `syslog`: `udp` (default) or `tcp` (octet-counted framing, RFC 6587).
    #[serde(default)]
    pub protocol: SyslogProtocol,
    /// `syslog`: the APP-NAME of RFC 5424 messages (default `agentgw`).
    #[serde(default)]
    pub app_name: Option<String>,
    /// `syslog`: the facility number 0-23 (default 13, log audit).
    #[serde(default)]
    pub facility: Option<u8>,
    /// `webhook` and `syslog`: events held while delivery lags; beyond it events are dropped
    /// and counted (default 10000).
    #[serde(default)]
    pub queue_size: Option<usize>,
    /// `webhook`: most events per POST (default 100).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// `webhook`: longest an event waits for its batch to fill (default `1s`).
    #[serde(default, deserialize_with = "optional_duration")]
    pub flush_interval: Option<Duration>,
    /// `webhook` and `syslog` over TCP: timeout of one delivery (default `5s`).
    #[serde(default, deserialize_with = "optional_duration")]
    pub timeout: Option<Duration>,
}

/// Where audit events go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// One JSON object per line on standard output.
    #[default]
    Stdout,
    /// Batched JSON POSTs (needs the `webhook` cargo feature).
    Webhook,
    /// RFC 5424 syslog messages over UDP or TCP.
    Syslog,
}

/// Transport of syslog messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    /// One datagram per message.
    #[default]
    Udp,
    /// A stream with octet-counting framing.
    Tcp,
}

/// `pinning`: the first definition of each tool (per upstream) is remembered by its SHA-256; a
/// later `tools/list` with a different definition is flagged.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PinningConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// What happens to a changed definition.
    #[serde(default)]
    pub action: FlagAction,
    /// The most tools remembered over all upstreams (default 10000); beyond it new tools are
    /// withheld rather than left unpinned.
    #[serde(default)]
    pub max_tools: Option<usize>,
}

impl Default for PinningConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            action: FlagAction::default(),
            max_tools: None,
        }
    }
}

/// `nameSpoofing`: flags a tool whose name imitates a trusted tool or another upstream's tool
/// (homoglyphs, case, separators, an added `-safe`-like word, a small edit distance).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameSpoofingConfig {
    /// On unless `false`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Names of tools to protect, in addition to the allowlist and other upstreams' tools.
    #[serde(default)]
    pub trusted_tools: Vec<String>,
    /// What happens to a spoofing tool.
    #[serde(default)]
    pub action: FlagAction,
    /// The largest edit distance between two names (of 5 or more characters) that counts as
    /// an imitation (default 1; 0 turns the edit-distance check off).
    #[serde(default)]
    pub max_edit_distance: Option<usize>,
}

impl Default for NameSpoofingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            trusted_tools: Vec::new(),
            action: FlagAction::default(),
            max_edit_distance: None,
        }
    }
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

fn optional_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as `30s`, `500ms` or `2m`, or a number of seconds")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text.trim())
                .map_err(|error| E::custom(format!("invalid duration `{text}`: {error}")))
        }

        fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(secs))
        }

        fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
            u64::try_from(secs)
                .map(Duration::from_secs)
                .map_err(|_| E::custom("a duration cannot be negative"))
        }

        fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
            Duration::try_from_secs_f64(secs)
                .map_err(|_| E::custom("a duration must be a finite, non-negative number"))
        }
    }

    de.deserialize_any(DurationVisitor).map(Some)
}

fn optional_size<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size in bytes such as `1Mi`, `512Ki`, `10M` or `65536`")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
            parse_size(text).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<u64, E> {
            Ok(bytes)
        }

        fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<u64, E> {
            u64::try_from(bytes).map_err(|_| E::custom("a size cannot be negative"))
        }
    }

    de.deserialize_any(SizeVisitor).map(Some)
}

/// Parses a byte size: a number with an optional Kubernetes-style suffix (`Ki`, `Mi`, `Gi`,
/// `Ti` binary; `K`/`k`, `M`, `G`, `T` decimal; a trailing `B` is allowed: `MiB`, `MB`).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(digits_end);
    let invalid =
        || format!("invalid size `{text}`: expected e.g. `1Mi`, `512Ki`, `10M` or `65536`");
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let suffix = suffix.trim_start();
    let suffix = suffix.strip_suffix('B').unwrap_or(suffix);
    let multiplier: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size `{text}` is too large"))
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
    fn seed_allowlist_block_deserializes() {
        let tools = seed(SEED_ALLOWLIST).allowlist.expect("allowlist").tools;
        assert_eq!(tools.len(), 5);
        assert_eq!(
            tools[0].allowed_arguments["resource"],
            ArgumentConstraint::OneOf(vec![
                "pods".into(),
                "services".into(),
                "deployments".into(),
                "configmaps".into()
            ])
        );
        assert_eq!(
            tools[2].allowed_arguments["tail"],
            ArgumentConstraint::Range {
                min: None,
                max: Some(1000.0)
            }
        );
        assert!(tools[3].allowed_arguments.is_empty() && tools[3].blocked_arguments.is_empty());
        assert_eq!(
            tools[4].blocked_arguments["path"],
            [".env", "*.pem", "*.key", "*secret*"]
        );
    }

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
    fn seed_sandbox_block_deserializes() {
        let sandbox = seed(SEED_SANDBOX).sandbox.expect("sandbox");
        assert_eq!(sandbox.mode, SandboxMode::Strict);
        assert_eq!(
            sandbox.limits.max_execution_time,
            Some(Duration::from_secs(30))
        );
        assert_eq!(sandbox.limits.max_output_size, Some(1 << 20));
        // Parsed, so that `from_config` can refuse them by name.
        assert!(sandbox.limits.network_access.is_some());
        assert!(sandbox.limits.file_system_access.is_some());
    }

    #[test]
    fn seed_audit_block_deserializes() {
        let audit = seed(SEED_AUDIT).audit.expect("audit");
        assert_eq!(audit.level, AuditLevel::Full);
        assert!(audit.include_arguments && audit.include_response);
        assert_eq!(audit.destination.kind, DestinationKind::Stdout);
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
    fn sizes_and_durations() {
        assert_eq!(parse_size("1Mi"), Ok(1 << 20));
        assert_eq!(parse_size("512Ki"), Ok(512 << 10));
        assert_eq!(parse_size("10M"), Ok(10_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("65536"), Ok(65_536));
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("Mi").is_err());
        assert!(parse_size("99999999999999Ti").is_err());
        let limits: SandboxLimits =
            serde_saphyr::from_str("maxExecutionTime: 250ms\nmaxOutputSize: 4096\n").unwrap();
        assert_eq!(limits.max_execution_time, Some(Duration::from_millis(250)));
        assert_eq!(limits.max_output_size, Some(4096));
        let error = serde_saphyr::from_str::<SandboxLimits>("maxExecutionTime: soon\n")
            .expect_err("bad duration");
        assert!(error.to_string().contains("soon"), "{error}");
    }
}
