//! What an authentication layer does with requests that carry no credential or a bad one.

use serde::Deserialize;

/// How strictly an authentication layer enforces its credential (the seed's table).
///
/// | mode | no credential | invalid credential | valid credential |
/// |---|---|---|---|
/// | [`Strict`](Mode::Strict) | 401 | 401 | forwarded with identity |
/// | [`Optional`](Mode::Optional) | forwarded anonymously | 401 | forwarded with identity |
/// | [`Permissive`](Mode::Permissive) | forwarded anonymously | forwarded anonymously | forwarded with identity |
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
pub enum Mode {
    /// Every request needs a valid credential.
    #[default]
    Strict,
    /// A credential is validated when present; requests without one pass anonymously.
    Optional,
    /// Never rejects: a valid credential adds an identity, anything else passes anonymously.
    Permissive,
}

impl Mode {
    pub(crate) fn rejects_missing(self) -> bool {
        self == Mode::Strict
    }

    pub(crate) fn rejects_invalid(self) -> bool {
        self != Mode::Permissive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_spellings() {
        for (text, mode) in [
            ("Strict", Mode::Strict),
            ("Optional", Mode::Optional),
            ("Permissive", Mode::Permissive),
        ] {
            let parsed: Mode = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(parsed, mode);
        }
        assert!(serde_json::from_value::<Mode>(serde_json::json!("strict")).is_err());
        assert_eq!(Mode::default(), Mode::Strict);
    }
}
