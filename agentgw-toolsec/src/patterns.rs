//! Building guard [`PatternSet`]s from configuration, with errors that name our field paths.

use agentgw_guard::{Builtin, PatternSet};

use crate::error::Error;

/// The patterns of one compiled set, each remembered with the configuration field it came from.
///
/// Every pattern match in this crate runs on an `agentgw-guard` [`PatternSet`]: all patterns of
/// a rule are compiled once into one automaton.
pub(crate) struct PatternList {
    set_path: String,
    normalize: bool,
    patterns: Vec<(String, String)>,
    paths: Vec<String>,
    builtins: Vec<Builtin>,
    replacements: Vec<(String, String)>,
}

impl PatternList {
    /// A list whose set is at `set_path`. A normalizing set matches the evasion-resistant
    /// skeleton of texts (invisible characters removed, homoglyphs folded, case-insensitive).
    pub(crate) fn new(set_path: impl Into<String>, normalize: bool) -> Self {
        Self {
            set_path: set_path.into(),
            normalize,
            patterns: Vec::new(),
            paths: Vec::new(),
            builtins: Vec::new(),
            replacements: Vec::new(),
        }
    }

    /// Adds `pattern` as rule `name`, configured at `path`.
    pub(crate) fn push(
        &mut self,
        name: impl Into<String>,
        pattern: impl Into<String>,
        path: impl Into<String>,
    ) {
        self.patterns.push((name.into(), pattern.into()));
        self.paths.push(path.into());
    }

    /// Adds a builtin PII recognizer.
    pub(crate) fn builtin(&mut self, builtin: Builtin) {
        self.builtins.push(builtin);
    }

    /// Sets the replacement of every pattern named `name`.
    pub(crate) fn replacement(&mut self, name: impl Into<String>, replacement: impl Into<String>) {
        self.replacements.push((name.into(), replacement.into()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.builtins.is_empty()
    }

    /// Compiles the set; `None` when nothing was added.
    pub(crate) fn build(self) -> Result<Option<PatternSet>, Error> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut builder = PatternSet::builder().normalize(self.normalize);
        for (name, pattern) in self.patterns {
            builder = builder.pattern(name, pattern);
        }
        for builtin in self.builtins {
            builder = builder.builtin(builtin);
        }
        for (name, replacement) in self.replacements {
            builder = builder.replacement(name, replacement);
        }
        builder
            .build()
            .map(Some)
            .map_err(|error| Error::from_guard(error, &self.set_path, &self.paths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgw_core::ConfigError;

    #[test]
    fn errors_name_the_configured_field() {
        let mut list = PatternList::new("validation.rules[0].reject", true);
        list.push("ok", "abc", "validation.rules[0].reject[0].pattern");
        list.push("bad", "(unclosed", "validation.rules[0].reject[1].pattern");
        let Err(error) = list.build() else {
            panic!("an invalid pattern must fail");
        };
        assert_eq!(error.path(), "validation.rules[0].reject[1].pattern");
        assert!(error.reason().starts_with("invalid regex: "), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("validation.rules[0].reject[1].pattern: invalid regex: "),
            "{error}"
        );

        let mut list = PatternList::new("set", false);
        list.push("empty", "a*", "rules[3].pattern");
        let error = list.build().expect_err("empty match");
        assert_eq!(
            error,
            Error::EmptyMatch {
                path: "rules[3].pattern".into()
            }
        );
    }

    #[test]
    fn empty_list_builds_nothing() {
        assert!(
            PatternList::new("x", false)
                .build()
                .expect("builds")
                .is_none()
        );
    }
}
