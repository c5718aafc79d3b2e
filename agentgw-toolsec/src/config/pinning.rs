//! `pinning`: tool definitions remembered at first sight, so that a changed one is caught.

use serde::Deserialize;

use super::{FlagAction, yes};

/// `pinning`: the first definition of each tool (per upstream) is remembered by its SHA-256; a
/// later `tools/list` with a different definition is flagged.
///
/// [`Default`] is the value of `pinning: {}`: on, changed tools removed, at most 10000 tools
/// (the same as an absent block).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
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

impl PinningConfig {
    /// Sets `enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets `action`.
    #[must_use]
    pub fn action(mut self, action: FlagAction) -> Self {
        self.action = action;
        self
    }

    /// Sets `maxTools`.
    #[must_use]
    pub fn max_tools(mut self, max_tools: usize) -> Self {
        self.max_tools = Some(max_tools);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::seed;

    #[test]
    fn builders_match_the_yaml() {
        let built = PinningConfig::default()
            .action(FlagAction::Allow)
            .max_tools(50);
        let parsed = seed("pinning: {action: Allow, maxTools: 50}\n");
        assert_eq!(parsed.pinning, Some(built));
        assert_eq!(
            seed("pinning: {}\n").pinning,
            Some(PinningConfig::default())
        );
        assert!(!PinningConfig::default().enabled(false).enabled);
    }
}
