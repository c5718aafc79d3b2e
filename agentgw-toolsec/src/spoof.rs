//! Name spoofing: tool names made to pass for another tool.
//!
//! A name imitates a protected name (a trusted tool, an allowlisted tool, or a tool another
//! upstream already offers) when, after folding both with the guard's evasion-resistant
//! normalization (homoglyphs, case, full-width forms, invisible characters) and treating `-`,
//! `_`, `.` and spaces alike:
//!
//! - they are equal although the names differ (`kubectl-gеt` with a Cyrillic `е`,
//!   `Kubectl_Get`);
//! - one is the other plus a reassuring word (`kubectl-get-safe`, `official-kubectl-get`);
//! - they are within a small edit distance, for names of five or more characters
//!   (`kubectl-gte`, `github-get-files`).
//!
//! A name holding characters that fold to different ASCII (look-alike letters) is flagged even
//! without a counterpart: MCP tool names are ASCII.

use std::collections::HashMap;

use agentgw_guard::normalize;

/// Words a spoofing tool adds to a trusted name to look legitimate.
const TRUST_WORDS: &[&str] = &[
    "safe",
    "secure",
    "secured",
    "official",
    "verified",
    "trusted",
    "fixed",
    "new",
    "latest",
    "v2",
    "v3",
    "pro",
    "plus",
    "real",
    "original",
    "updated",
    "fast",
    "better",
    "enhanced",
    "improved",
    "legit",
    "genuine",
    "authentic",
    "approved",
    "patched",
    "stable",
    "prod",
    "admin",
    "mcp",
    "tool",
    "2",
];

/// A name with its folded form, ready for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownName {
    pub(crate) raw: String,
    folded: String,
}

impl KnownName {
    pub(crate) fn new(raw: &str) -> Self {
        Self {
            raw: raw.to_owned(),
            folded: fold(raw),
        }
    }
}

/// How a name imitates another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Imitation {
    /// Equal after folding (homoglyphs, case, separators).
    Confusable,
    /// The other name plus a reassuring word.
    Affix,
    /// Within the edit distance.
    EditDistance,
    /// Look-alike characters, with no counterpart needed.
    LookAlike,
}

impl Imitation {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Confusable => "confusable",
            Self::Affix => "affix",
            Self::EditDistance => "edit_distance",
            Self::LookAlike => "look_alike",
        }
    }
}

/// Compares tool names with protected names.
#[derive(Debug, Clone)]
pub(crate) struct SpoofDetector {
    trusted: Vec<KnownName>,
    max_distance: usize,
}

impl SpoofDetector {
    pub(crate) fn new(trusted: impl IntoIterator<Item = String>, max_distance: usize) -> Self {
        let mut trusted: Vec<KnownName> = trusted.into_iter().map(|n| KnownName::new(&n)).collect();
        trusted.sort_by(|a, b| a.raw.cmp(&b.raw));
        trusted.dedup();
        Self {
            trusted,
            max_distance,
        }
    }

    pub(crate) fn trusted(&self) -> &[KnownName] {
        &self.trusted
    }

    /// The name `name` imitates among the trusted names and `others` (other upstreams' tools),
    /// and how. Among `siblings` (the other tools of the same list) only a reassuring affix
    /// counts: one server offering `kubectl-get` and `kubectl-get-safe` is suspect, while
    /// `get-user` next to `get-users` is common.
    pub(crate) fn check<'a>(
        &'a self,
        name: &str,
        others: impl IntoIterator<Item = &'a KnownName>,
        siblings: &'a Siblings,
    ) -> Option<(&'a str, Imitation)> {
        let folded = fold(name);
        let mut found: Option<(&str, Imitation)> = None;
        for known in self.trusted.iter().chain(others) {
            if known.raw == name {
                // The protected tool itself (or the same name elsewhere): not an imitation.
                continue;
            }
            if let Some(how) = self.imitates(&folded, &known.folded) {
                let better = found.is_none_or(|(_, current)| rank(how) < rank(current));
                if better {
                    found = Some((&known.raw, how));
                }
                if how == Imitation::Confusable {
                    break;
                }
            }
        }
        if found.is_none() {
            found = affix_bases(&folded)
                .find_map(|base| siblings.by_fold.get(base))
                .filter(|raw| raw.as_str() != name)
                .map(|raw| (raw.as_str(), Imitation::Affix));
        }
        if found.is_none() && looks_alike(name, &folded) {
            return Some(("", Imitation::LookAlike));
        }
        found
    }

    fn imitates(&self, candidate: &str, known: &str) -> Option<Imitation> {
        if candidate == known {
            return Some(Imitation::Confusable);
        }
        if has_trust_affix(candidate, known) {
            return Some(Imitation::Affix);
        }
        let shortest = candidate.chars().count().min(known.chars().count());
        if self.max_distance > 0
            && shortest >= 5
            && edit_distance_within(candidate, known, self.max_distance)
        {
            return Some(Imitation::EditDistance);
        }
        None
    }
}

fn rank(how: Imitation) -> u8 {
    match how {
        Imitation::Confusable => 0,
        Imitation::Affix => 1,
        Imitation::EditDistance => 2,
        Imitation::LookAlike => 3,
    }
}

/// Skeleton of a name with `-`, `_`, `.` and spaces unified to `-`.
pub(crate) fn fold(name: &str) -> String {
    normalize(name)
        .chars()
        .map(|c| if matches!(c, '_' | '.' | ' ') { '-' } else { c })
        .collect()
}

/// Whether `name` uses non-ASCII characters that fold to ASCII letters or digits (a Cyrillic
/// `а` for `a`, full-width letters).
fn looks_alike(name: &str, folded: &str) -> bool {
    !name.is_ascii() && folded.chars().any(|c| c.is_ascii_alphanumeric())
}

fn has_trust_affix(candidate: &str, known: &str) -> bool {
    affix_bases(candidate).any(|base| base == known)
}

/// The names `folded` would be if a reassuring word were taken off its end or start
/// (`kubectl-get` for `kubectl-get-safe`, `safe-kubectl-get` or `kubectl-get2`).
fn affix_bases(folded: &str) -> impl Iterator<Item = &str> {
    TRUST_WORDS.iter().flat_map(move |word| {
        let suffixed = folded.strip_suffix(word).and_then(|rest| {
            rest.strip_suffix('-')
                .or_else(|| (word.len() <= 2).then_some(rest))
        });
        let prefixed = folded
            .strip_prefix(word)
            .and_then(|rest| rest.strip_prefix('-'));
        suffixed
            .into_iter()
            .chain(prefixed)
            .filter(|base| !base.is_empty())
    })
}

/// The tools of one list, by folded name, for the affix check among siblings.
#[derive(Debug, Default)]
pub(crate) struct Siblings {
    by_fold: HashMap<String, String>,
}

impl Siblings {
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            by_fold: names
                .into_iter()
                .map(|name| (fold(name), name.to_owned()))
                .collect(),
        }
    }
}

/// Whether the edit distance between `a` and `b` (in characters) is at most `max`: insertions,
/// deletions, substitutions and transpositions of neighbours (`gte` for `get`) cost one each
/// (optimal string alignment distance).
pub(crate) fn edit_distance_within(a: &str, b: &str, max: usize) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return false;
    }
    let width = b.len() + 1;
    let mut before: Vec<usize> = vec![0; width];
    let mut previous: Vec<usize> = (0..width).collect();
    let mut current = vec![0; width];
    for i in 0..a.len() {
        current[0] = i + 1;
        let mut row_min = current[0];
        for j in 0..b.len() {
            let mut cost = (previous[j] + usize::from(a[i] != b[j]))
                .min(previous[j + 1] + 1)
                .min(current[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                cost = cost.min(before[j - 1] + 1);
            }
            current[j + 1] = cost;
            row_min = row_min.min(cost);
        }
        if row_min > max {
            return false;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()] <= max
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn detector() -> SpoofDetector {
        SpoofDetector::new(
            [
                "kubectl-get".to_owned(),
                "github-get-file".to_owned(),
                "ls".to_owned(),
            ],
            1,
        )
    }

    fn check(name: &str) -> Option<Imitation> {
        detector()
            .check(name, &[], &Siblings::default())
            .map(|(_, how)| how)
    }

    #[test]
    fn imitations_are_flagged() {
        assert_eq!(
            check("kubectl-gеt"),
            Some(Imitation::Confusable),
            "Cyrillic е"
        );
        assert_eq!(check("Kubectl_Get"), Some(Imitation::Confusable));
        assert_eq!(check("ｋｕｂｅｃｔｌ-ｇｅｔ"), Some(Imitation::Confusable));
        assert_eq!(check("kubectl-get-safe"), Some(Imitation::Affix));
        assert_eq!(check("official_kubectl_get"), Some(Imitation::Affix));
        assert_eq!(check("kubectl-get2"), Some(Imitation::Affix));
        assert_eq!(check("kubectl-gte"), Some(Imitation::EditDistance));
        assert_eq!(check("github-get-files"), Some(Imitation::EditDistance));
        assert_eq!(
            check("wеather"),
            Some(Imitation::LookAlike),
            "no counterpart needed"
        );
        let detector = detector();
        let none = Siblings::default();
        let (imitated, _) = detector
            .check("kubectl-get-safe", &[], &none)
            .expect("flagged");
        assert_eq!(imitated, "kubectl-get");
    }

    #[test]
    fn distinct_names_pass() {
        for name in [
            "kubectl-get",
            "kubectl-describe",
            "kubectl-get-logs",
            "github-list-repos",
            "ls",
            "cd",
            "get-weather",
        ] {
            assert_eq!(check(name), None, "{name}");
        }
        // Short names are not compared by edit distance.
        assert_eq!(check("lx"), None);
    }

    #[test]
    fn other_upstreams_names_are_protected() {
        let detector = SpoofDetector::new(Vec::new(), 1);
        let others = [KnownName::new("send_email")];
        assert_eq!(
            detector
                .check("send-emails", &others, &Siblings::default())
                .map(|(n, h)| (n.to_owned(), h)),
            Some(("send_email".to_owned(), Imitation::EditDistance))
        );
        assert_eq!(
            detector.check("send_email", &others, &Siblings::default()),
            None,
            "the same tool"
        );
        let detector = SpoofDetector::new(Vec::new(), 0);
        assert_eq!(
            detector.check("send-emails", &others, &Siblings::default()),
            None,
            "distance check off"
        );
    }

    #[test]
    fn siblings_only_count_with_a_reassuring_word() {
        let detector = SpoofDetector::new(Vec::new(), 1);
        let siblings = Siblings::new(["kubectl-get", "get-user", "kubectl-get-safe", "get-users"]);
        assert_eq!(
            detector.check("kubectl-get-safe", &[], &siblings),
            Some(("kubectl-get", Imitation::Affix))
        );
        assert_eq!(detector.check("kubectl-get", &[], &siblings), None);
        assert_eq!(detector.check("get-users", &[], &siblings), None);
    }

    #[test]
    fn edit_distance() {
        assert!(
            edit_distance_within("get", "gte", 1),
            "a transposition costs one"
        );
        assert!(edit_distance_within("kitten", "sitting", 3));
        assert!(!edit_distance_within("kitten", "sitting", 2));
        assert!(edit_distance_within("", "ab", 2) && !edit_distance_within("", "abc", 2));
        assert!(edit_distance_within("same", "same", 0));
    }

    /// Optimal string alignment distance, the textbook full-matrix way.
    fn osa(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in d[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                d[i][j] = (d[i - 1][j] + 1)
                    .min(d[i][j - 1] + 1)
                    .min(d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]));
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
                }
            }
        }
        d[a.len()][b.len()]
    }

    proptest! {
        #[test]
        fn bounded_distance_agrees_with_full_distance(a in "[a-d]{0,8}", b in "[a-d]{0,8}", max in 0usize..4) {
            prop_assert_eq!(edit_distance_within(&a, &b, max), osa(&a, &b) <= max);
        }
    }
}
