//! `nameSpoofing`: tool names that imitate trusted tools or other servers' tools.

use serde::Deserialize;

use super::{FlagAction, yes};

/// `nameSpoofing`: flags a tool whose name imitates a trusted tool or another upstream's tool
/// (homoglyphs, case, separators, an added `-safe`-like word, a small edit distance).
///
/// [`Default`] is the value of `nameSpoofing: {}`: on, spoofing tools removed, edit distance 1
/// (the same as an absent block).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
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

impl NameSpoofingConfig {
    /// Sets `enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets `trustedTools`.
    #[must_use]
    pub fn trusted_tools<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.trusted_tools = names.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `action`.
    #[must_use]
    pub fn action(mut self, action: FlagAction) -> Self {
        self.action = action;
        self
    }

    /// Sets `maxEditDistance` (0 to 3).
    #[must_use]
    pub fn max_edit_distance(mut self, distance: usize) -> Self {
        self.max_edit_distance = Some(distance);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::seed;

    #[test]
    fn builders_match_the_yaml() {
        let built = NameSpoofingConfig::default()
            .trusted_tools(["kubectl-get", "send-email"])
            .action(FlagAction::Allow)
            .max_edit_distance(2);
        let parsed = seed(
            "nameSpoofing:\n  trustedTools: [kubectl-get, send-email]\n  action: Allow\n  maxEditDistance: 2\n",
        );
        assert_eq!(parsed.name_spoofing, Some(built));
        assert_eq!(
            seed("nameSpoofing: {}\n").name_spoofing,
            Some(NameSpoofingConfig::default())
        );
    }
}
