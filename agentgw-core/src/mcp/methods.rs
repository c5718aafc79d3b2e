//! MCP method names the layers look at.

/// The first request of a session: capability negotiation.
pub const INITIALIZE: &str = "initialize";
/// Lists the tools a server offers; its result carries `tools`.
pub const TOOLS_LIST: &str = "tools/list";
/// Invokes one tool; its params carry `name` and `arguments`.
pub const TOOLS_CALL: &str = "tools/call";
/// Lists the prompts a server offers; its result carries `prompts`.
pub const PROMPTS_LIST: &str = "prompts/list";
/// Gets one prompt; its result carries `messages` the model reads.
pub const PROMPTS_GET: &str = "prompts/get";
/// Lists the resources a server offers; its result carries `resources`.
pub const RESOURCES_LIST: &str = "resources/list";
/// Lists resource templates; its result carries `resourceTemplates`.
pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
/// Reads a resource; its result carries `contents`.
pub const RESOURCES_READ: &str = "resources/read";
/// Server to client: asks the client's model for a completion.
pub const SAMPLING_CREATE_MESSAGE: &str = "sampling/createMessage";
/// Server to client: asks the user for input.
pub const ELICITATION_CREATE: &str = "elicitation/create";

/// The methods of the MCP specification (2025-06-18), requests and notifications.
pub const ALL: &[&str] = &[
    INITIALIZE,
    "ping",
    TOOLS_LIST,
    TOOLS_CALL,
    PROMPTS_LIST,
    PROMPTS_GET,
    RESOURCES_LIST,
    RESOURCES_TEMPLATES_LIST,
    RESOURCES_READ,
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    SAMPLING_CREATE_MESSAGE,
    ELICITATION_CREATE,
    "roots/list",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "notifications/resources/updated",
    "notifications/resources/list_changed",
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/roots/list_changed",
];

/// The MCP method `method` imitates without being it: equal to one of [`ALL`] when ASCII
/// case and surrounding whitespace are ignored, but not byte for byte (`Tools/Call`,
/// `TOOLS/CALL`, `tools/call `). MCP method names are case-sensitive; a server that
/// folds case would run such a request without the checks its real name gets, so layers
/// refuse it. `None` for an exact method name and for names unrelated to MCP's.
///
/// ```
/// use agentgw_core::mcp::methods::{self, lookalike};
///
/// assert_eq!(lookalike("Tools/Call"), Some(methods::TOOLS_CALL));
/// assert_eq!(lookalike("tools/call"), None);
/// assert_eq!(lookalike("vendor/custom"), None);
/// ```
pub fn lookalike(method: &str) -> Option<&'static str> {
    let trimmed = method.trim_matches(|c: char| c.is_whitespace() || c.is_control());
    ALL.iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(trimmed))
        .filter(|known| *known != method)
}

#[cfg(test)]
mod tests {
    use crate::mcp::*;

    #[test]
    fn case_variants_of_mcp_methods_are_lookalikes() {
        for variant in [
            "Tools/Call",
            "TOOLS/CALL",
            "tools/Call",
            " tools/call",
            "tools/call\n",
        ] {
            assert_eq!(
                methods::lookalike(variant),
                Some(methods::TOOLS_CALL),
                "{variant:?}"
            );
        }
        assert_eq!(methods::lookalike("Tools/List"), Some(methods::TOOLS_LIST));
        assert_eq!(
            methods::lookalike("Sampling/CreateMessage"),
            Some(methods::SAMPLING_CREATE_MESSAGE)
        );
        for exact in methods::ALL {
            assert_eq!(methods::lookalike(exact), None, "{exact}");
        }
        assert_eq!(methods::lookalike("tools/calls"), None);
        assert_eq!(methods::lookalike("x/custom"), None);
    }
}
