//! `action` of the `tools/call` rules, and the `escalation` block their `Escalate` uses.

use serde::Deserialize;

pub use agentgw_core::escalation::EscalationConfig;

/// What a refusal of a `tools/call` rule does: `allowlist.action` (a tool not on the list),
/// `allowlist.tools[].action` (its `allowedArguments` and `blockedArguments`) and
/// `inputValidation.rules[].action` (its `reject` and `allow` patterns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum RuleAction {
    /// The call is refused with a JSON-RPC error (the default).
    #[default]
    Reject,
    /// The call is escalated through `toolSecurity.escalation`: refused and the webhook
    /// notified, or, with `blockPending`, held until the webhook allows it (then the call goes
    /// on as if that rule had not fired) or denies it, fails or times out (refused). The event
    /// names the rule, the tool, the route and the caller, never the arguments.
    Escalate,
}
