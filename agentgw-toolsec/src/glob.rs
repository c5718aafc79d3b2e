//! Wildcard names: `*` matches any run of characters, `?` one character.
//!
//! Used for tool names (`kubectl-*`) and blocked argument values (`*.pem`, `*secret*`). This is
//! not a regular expression engine: matching is the classic two-pointer backtrack-once
//! algorithm, linear in practice and `O(pattern × text)` at worst.

/// A compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    chars: Vec<char>,
    has_wildcards: bool,
    case_insensitive: bool,
}

impl Glob {
    /// A pattern matched exactly (case-sensitive).
    pub(crate) fn new(pattern: &str) -> Self {
        Self::build(pattern, false)
    }

    /// A pattern matched ignoring case.
    pub(crate) fn case_insensitive(pattern: &str) -> Self {
        Self::build(pattern, true)
    }

    fn build(pattern: &str, case_insensitive: bool) -> Self {
        let chars: Vec<char> = if case_insensitive {
            pattern.chars().flat_map(char::to_lowercase).collect()
        } else {
            pattern.chars().collect()
        };
        Self {
            has_wildcards: chars.iter().any(|&c| c == '*' || c == '?'),
            chars,
            case_insensitive,
        }
    }

    /// Whether the pattern has wildcards (without, it is a plain name).
    pub(crate) fn has_wildcards(&self) -> bool {
        self.has_wildcards
    }

    /// Whether the whole of `text`, given as lower-cased characters (see [`lowered`]), matches
    /// this case-insensitive pattern.
    pub(crate) fn matches_lowered(&self, lowered: &[char]) -> bool {
        wildcard_match(&self.chars, lowered)
    }

    /// Whether the whole of `text` matches.
    pub(crate) fn matches(&self, text: &str) -> bool {
        if self.case_insensitive {
            wildcard_match(&self.chars, &lowered(text))
        } else {
            let chars: Vec<char> = text.chars().collect();
            wildcard_match(&self.chars, &chars)
        }
    }
}

/// The characters of `text`, lower-cased, for [`Glob::matches_lowered`].
pub(crate) fn lowered(text: &str) -> Vec<char> {
    text.chars().flat_map(char::to_lowercase).collect()
}

fn wildcard_match(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently absorbs up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    // Let the last `*` absorb one more character and retry after it.
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards() {
        let glob = Glob::new("kubectl-*");
        assert!(glob.matches("kubectl-get") && glob.matches("kubectl-"));
        assert!(!glob.matches("kubectl") && !glob.matches("xkubectl-get"));
        assert!(Glob::new("*").matches("") && Glob::new("*").matches("anything"));
        assert!(Glob::new("a?c").matches("abc") && !Glob::new("a?c").matches("ac"));
        assert!(Glob::new("*.pem").matches("server.pem") && !Glob::new("*.pem").matches("pem"));
        assert!(Glob::new("*secret*").matches("my-secret-file"));
        assert!(Glob::new("a*b*c").matches("axxbyyc") && !Glob::new("a*b*c").matches("axxcyyb"));
        assert!(!Glob::new("get").has_wildcards() && Glob::new("g*").has_wildcards());
    }

    #[test]
    fn case_insensitive_matching() {
        assert!(Glob::case_insensitive("*SECRET*").matches("my-Secret.txt"));
        assert!(!Glob::new("*SECRET*").matches("my-secret.txt"));
        assert!(Glob::case_insensitive("*.pem").matches("KEY.PEM"));
    }

    proptest! {
        #[test]
        fn star_matches_any_text(text in "\\PC{0,40}") {
            prop_assert!(Glob::new("*").matches(&text));
            let literal = text.replace(['*', '?'], "");
            prop_assert!(Glob::new(&literal).matches(&literal));
            let prefix: String = literal.chars().take(3).collect();
            let prefixed = format!("{prefix}*");
            prop_assert!(Glob::new(&prefixed).matches(&literal));
        }
    }
}
