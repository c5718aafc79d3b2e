//! Built-in PII recognizers: a candidate regex per shape, then a validator.
//!
//! A regex alone reports any nine digits as an SSN and any `x@y.z` as an email. Each builtin
//! here is a small set of candidate patterns (compiled into the guard's one automaton with the
//! custom patterns) and a validator that runs only on candidates:
//!
//! | builtin        | candidates                                            | validated by |
//! |----------------|-------------------------------------------------------|--------------|
//! | `CREDIT_CARD`  | 12-19 digits, plain or grouped 4-4-4-4(-3), 4-6-5, 4-6-4, 4-3-3-3, 4-4-4 with one separator (space or dash) used consistently | Luhn, issuer prefix and length: Visa 13/16/19, Mastercard 51-55 and 2221-2720 (16), Amex 34/37 (15), Discover 6011/644-649/65/622126-622925 (16-19), Diners 300-305/3095/36/38/39 (14-19), JCB 35 (16-19) and 1800/2131 (15), Maestro 5018/5020/5038/5893/56-58/6304/6390/6759/6761-6763/0604 (12-19) |
//! | `SSN`          | `123-45-6789`, `123 45 6789`; nine bare digits only with context | SSA rules: area not 000, 666 or 900-999, group not 00, serial not 0000, no advertised or repeated-digit numbers |
//! | `CA_SIN`       | `123-456-789`, `123 456 789`; nine bare digits only with context | Luhn, first digit 1-7 or 9 |
//! | `PHONE_NUMBER` | `+CC ...` (E.164, with `(0)` and separators), NANP `(NPA) NXX-XXXX` / `NPA-NXX-XXXX` / `1-...`, national numbers with trunk prefix `0` (8-14 digits: `020 7946 0958`, `0 801 23 45 67`), national numbers without one in the groupings countries use (`(11) 91234-5678`, `98765 43210`, `612 34 56 78`, `55 1234 5678`), ten bare digits; shapes of a ZIP+4, SSN, SIN or date and eight-digit numbers only after a phone keyword | Google libphonenumber's metadata (the `phonenumber` crate): `+CC` numbers are possible numbers of their country (code, length, general pattern); national numbers are valid numbers of one of the configured regions (default [`DEFAULT_PHONE_REGIONS`]: `US, CA, GB, DE, FR, ES, IT, NL, BR, MX, IN, JP, AU`); ten bare digits without a phone keyword only in a NANP region |
//! | `EMAIL`        | `local@label.label.tld`                               | local part and labels well formed, alphabetic TLD that is not a file extension (`icon@2x.png`), a dot in the domain (`node@18.2.0`, `user@localhost` are not emails) |
//!
//! The regions of `PHONE_NUMBER` are set per guard with `phoneNumber: {regions: [US, GB, DE]}`
//! ([`PatternSetBuilder::phone_regions`](crate::PatternSetBuilder::phone_regions)); see the
//! [`phone`] module for how numbers are validated.
//!
//! "Context" for bare nine-digit numbers is a keyword in the 64 bytes before the number
//! (`SSN`, `social security`; `SIN`, `social insurance`, `assurance sociale`; the closer one
//! decides between the two), or, for SSNs, a delimited field of a record line that holds an
//! email address before it (CSV and table rows). Numbers that continue a longer dash or dot
//! separated number (`12-123-45-6789`), or the tail of a longer space-grouped one, are never
//! reported.

pub mod phone;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use phone::DEFAULT_PHONE_REGIONS;
pub(crate) use phone::PhoneRules;

/// A built-in PII recognizer. See the [module docs](self) for what each one accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Builtin {
    /// Payment card numbers (`CREDIT_CARD`).
    CreditCard,
    /// Email addresses (`EMAIL`).
    Email,
    /// Phone numbers (`PHONE_NUMBER`).
    PhoneNumber,
    /// US Social Security numbers (`SSN`).
    Ssn,
    /// Canadian Social Insurance Numbers (`CA_SIN`).
    CaSin,
}

impl Builtin {
    /// Every builtin, in the order a pattern set tries them at the same position.
    pub const ALL: [Builtin; 5] = [
        Builtin::CreditCard,
        Builtin::Ssn,
        Builtin::CaSin,
        Builtin::PhoneNumber,
        Builtin::Email,
    ];

    /// The configuration name, also the rule name in metrics: `CREDIT_CARD`, `EMAIL`, ...
    pub const fn name(self) -> &'static str {
        match self {
            Builtin::CreditCard => "CREDIT_CARD",
            Builtin::Email => "EMAIL",
            Builtin::PhoneNumber => "PHONE_NUMBER",
            Builtin::Ssn => "SSN",
            Builtin::CaSin => "CA_SIN",
        }
    }

    /// The default replacement when masking: `<CREDIT_CARD>`, `<EMAIL>`, ...
    pub const fn default_replacement(self) -> &'static str {
        match self {
            Builtin::CreditCard => "<CREDIT_CARD>",
            Builtin::Email => "<EMAIL>",
            Builtin::PhoneNumber => "<PHONE_NUMBER>",
            Builtin::Ssn => "<SSN>",
            Builtin::CaSin => "<CA_SIN>",
        }
    }

    /// The candidate patterns of this builtin, each with the check that validates its matches.
    pub(crate) fn candidates(self) -> &'static [(&'static str, Check)] {
        match self {
            Builtin::CreditCard => &[(CARD, Check::Card)],
            Builtin::Ssn => &[(SSN_GROUPED, Check::SsnGrouped), (NINE, Check::SsnPlain)],
            Builtin::CaSin => &[(SIN_GROUPED, Check::SinGrouped), (NINE, Check::SinPlain)],
            Builtin::PhoneNumber => &[
                (phone::INTERNATIONAL, Check::PhoneInternational),
                (phone::NANP, Check::PhoneNanp),
                (phone::TRUNK, Check::PhoneTrunk),
                (phone::TEN, Check::PhoneTen),
                (phone::GROUPED, Check::PhoneGrouped),
            ],
            Builtin::Email => &[(EMAIL, Check::Email)],
        }
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown builtin name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown builtin `{0}`, expected one of CREDIT_CARD, EMAIL, PHONE_NUMBER, SSN, CA_SIN")]
pub struct UnknownBuiltin(String);

impl FromStr for Builtin {
    type Err = UnknownBuiltin;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Builtin::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBuiltin(s.to_owned()))
    }
}

// Candidate patterns. They are compiled without Unicode (ASCII classes and boundaries):
// `\b{start-half}` / `\b{end-half}` mean "no ASCII word character before / after".
const CARD: &str = r"\b{start-half}(?:[0-9]{12,19}|[0-9]{4}(?: [0-9]{4}){2,3}(?: [0-9]{3})?|[0-9]{4}(?:-[0-9]{4}){2,3}(?:-[0-9]{3})?|[0-9]{4} [0-9]{6} [0-9]{4,5}|[0-9]{4}-[0-9]{6}-[0-9]{4,5}|[0-9]{4}(?: [0-9]{3}){3}|[0-9]{4}(?:-[0-9]{3}){3})\b{end-half}";
const SSN_GROUPED: &str =
    r"\b{start-half}(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4})\b{end-half}";
const SIN_GROUPED: &str =
    r"\b{start-half}(?:[0-9]{3}-[0-9]{3}-[0-9]{3}|[0-9]{3} [0-9]{3} [0-9]{3})\b{end-half}";
const NINE: &str = r"\b{start-half}[0-9]{9}\b{end-half}";
const EMAIL: &str = r"\b{start-half}[A-Za-z0-9._%+\-]{1,64}@(?:[A-Za-z0-9\-]{1,63}\.){1,8}[A-Za-z]{2,24}\b{end-half}";

/// How a candidate match of a builtin is validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Card,
    SsnGrouped,
    SsnPlain,
    SinGrouped,
    SinPlain,
    PhoneInternational,
    PhoneNanp,
    PhoneTrunk,
    PhoneTen,
    PhoneGrouped,
    Email,
}

/// How far before a match validators look for context (keywords, record lines). Streaming
/// maskers keep at least this much released text.
pub(crate) const CONTEXT_BYTES: usize = 192;

impl Check {
    /// Whether the candidate pattern is searched by an automaton of its own. `EMAIL` has no
    /// usable prefix (its first character is any of 66) but always an `@`: searched alone, it
    /// is found from its `@` (a vectorized byte search, then short searches around it) rather
    /// than by an automaton that counts the length of every word of the text.
    pub(crate) fn searched_alone(self) -> bool {
        self == Check::Email
    }

    /// Validates the candidate `hay[start..end]`, looking at most [`CONTEXT_BYTES`] before it
    /// and two bytes after it; national phone numbers are validated in the regions of `phone`.
    /// Returns the accepted span (the candidate, or a shorter prefix of it for over-long digit
    /// groups), or `None`.
    pub(crate) fn accept(
        self,
        hay: &str,
        start: usize,
        end: usize,
        phone: &PhoneRules,
    ) -> Option<(usize, usize)> {
        let bytes = hay.as_bytes();
        let value = &hay[start..end];
        if self != Check::Email && continues_number(bytes, start, end) {
            return None;
        }
        let ok = match self {
            Check::Card => return card(hay, start, end),
            Check::SsnGrouped => ssn(&digits(value)),
            Check::SsnPlain => ssn(value.as_bytes()) && ssn_context(hay, start, end),
            Check::SinGrouped => sin(&digits(value)),
            Check::SinPlain => sin(value.as_bytes()) && sin_context(hay, start),
            Check::PhoneInternational => return phone::international(hay, start, end),
            Check::PhoneNanp => phone::nanp_formatted(value, phone),
            Check::PhoneTrunk => phone::trunk(value, phone, || phone_context(hay, start)),
            Check::PhoneTen => phone::ten(value, phone, || phone_context(hay, start)),
            Check::PhoneGrouped => phone::grouped(value, phone, || phone_context(hay, start)),
            Check::Email => return email(hay, start, end),
        };
        ok.then_some((start, end))
    }
}

/// The ASCII digits of `value`.
fn digits(value: &str) -> Vec<u8> {
    value.bytes().filter(u8::is_ascii_digit).collect()
}

/// Whether `bytes[start..end]` is part of a longer number: a digit group joined to it by a
/// dash or a dot (`12-123-45-6789`, `4111.1111...`), or, for a number grouped with spaces, a
/// digit group before it (the tail of `3714 010239 82520`).
fn continues_number(bytes: &[u8], start: usize, end: usize) -> bool {
    let joined = |sep: Option<&u8>, digit: Option<&u8>, seps: &[u8]| {
        sep.is_some_and(|s| seps.contains(s)) && digit.is_some_and(u8::is_ascii_digit)
    };
    let spaced = bytes[start..end].contains(&b' ');
    let before: &[u8] = if spaced { b"-. " } else { b"-." };
    (start >= 2 && joined(bytes.get(start - 1), bytes.get(start - 2), before))
        || joined(bytes.get(end), bytes.get(end + 1), b"-.")
}

/// The Luhn checksum over ASCII digits.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn card(hay: &str, start: usize, mut end: usize) -> Option<(usize, usize)> {
    loop {
        let value = &hay[start..end];
        let d = digits(value);
        if luhn(&d) && card_issuer(&d) {
            return Some((start, end));
        }
        // `4111 1111 1111 1111 123`: a trailing group may belong to the next token.
        let last_sep = value.rfind([' ', '-'])?;
        if value[..last_sep].matches([' ', '-']).count() < 2 {
            return None;
        }
        end = start + last_sep;
    }
}

/// Whether the card number's prefix belongs to an issuer that issues numbers of its length.
fn card_issuer(d: &[u8]) -> bool {
    let len = d.len();
    let prefix = |n: usize| -> u32 {
        d[..n]
            .iter()
            .fold(0, |acc, &b| acc * 10 + u32::from(b - b'0'))
    };
    let (p2, p3, p4, p6) = (prefix(2), prefix(3), prefix(4), prefix(6));
    let visa = d[0] == b'4' && matches!(len, 13 | 16 | 19);
    let mastercard = ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16;
    let amex = matches!(p2, 34 | 37) && len == 15;
    let discover =
        (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622_126..=622_925).contains(&p6))
            && (16..=19).contains(&len);
    let diners = ((300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39))
        && (14..=19).contains(&len);
    let jcb = (p2 == 35 && (16..=19).contains(&len)) || (matches!(p4, 1800 | 2131) && len == 15);
    // `604` is the four-digit prefix `0604` read as a number.
    let maestro = (matches!(p4, 5018 | 5020 | 5038 | 5893 | 6304 | 6390 | 6759 | 604)
        || (6761..=6763).contains(&p4)
        || (56..=58).contains(&p2))
        && (12..=19).contains(&len);
    visa || mastercard || amex || discover || diners || jcb || maestro
}

/// SSA rules for the nine digits of an SSN.
fn ssn(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = &d[..3];
    let group = &d[3..5];
    let serial = &d[5..];
    if area == b"000" || area == b"666" || area[0] == b'9' || group == b"00" || serial == b"0000" {
        return false;
    }
    // Numbers published as examples (advertising, the Woolworth wallet card) and runs.
    const ADVERTISED: [&[u8]; 4] = [b"078051120", b"219099999", b"457555462", b"123456789"];
    if ADVERTISED.contains(&d) || d.iter().all(|&b| b == d[0]) {
        return false;
    }
    true
}

/// Luhn and a first digit that is assigned (0 and 8 are not).
fn sin(d: &[u8]) -> bool {
    d.len() == 9 && !matches!(d[0], b'0' | b'8') && luhn(d)
}

const SSN_WORDS: &[&str] = &["ssn", "social security", "soc sec", "ss#", "ss #"];
const SIN_WORDS: &[&str] = &[
    "sin",
    "social insurance",
    "assurance sociale",
    "nas",
    "insurance number",
];
const PHONE_WORDS: &[&str] = &[
    "tel", "phone", "fax", "call", "mobile", "cell", "text", "sms", "whatsapp", "contact", "reach",
    "dial", "mob", "ph",
];

/// Up to `window` bytes of `hay` before `start`, starting at a character boundary.
fn before(hay: &str, start: usize, window: usize) -> &str {
    let mut from = start.saturating_sub(window);
    while !hay.is_char_boundary(from) {
        from += 1;
    }
    &hay[from..start]
}

/// The end offset of the last occurrence in `ctx` of any of `words` as a whole word, ASCII
/// case-insensitively.
fn last_word(ctx: &str, words: &[&str]) -> Option<usize> {
    let bytes = ctx.as_bytes();
    let mut best = None;
    for word in words {
        let w = word.as_bytes();
        if w.len() > bytes.len() {
            continue;
        }
        for at in (0..=bytes.len() - w.len()).rev() {
            if bytes[at..at + w.len()].eq_ignore_ascii_case(w)
                && (at == 0 || !bytes[at - 1].is_ascii_alphanumeric())
                && bytes
                    .get(at + w.len())
                    .is_none_or(|b| !b.is_ascii_alphanumeric())
            {
                let end = at + w.len();
                if best.is_none_or(|b| end > b) {
                    best = Some(end);
                }
                break;
            }
        }
    }
    best
}

/// Which kind of national identifier the words before a bare nine-digit number announce.
fn id_keyword(hay: &str, start: usize) -> Option<bool> {
    let ctx = before(hay, start, 64);
    match (last_word(ctx, SSN_WORDS), last_word(ctx, SIN_WORDS)) {
        (Some(ssn), Some(sin)) => Some(ssn > sin),
        (Some(_), None) => Some(true),
        (None, Some(_)) => Some(false),
        (None, None) => None,
    }
}

fn ssn_context(hay: &str, start: usize, end: usize) -> bool {
    id_keyword(hay, start).unwrap_or_else(|| record_field(hay, start, end))
}

fn sin_context(hay: &str, start: usize) -> bool {
    id_keyword(hay, start) == Some(false)
}

/// Whether one of [`PHONE_WORDS`] stands as a whole word in the 40 bytes before `start`. The
/// phone words are single words: this reads the window once, word by word, instead of
/// searching it for each word as [`last_word`] does (phone shapes are common candidates).
fn phone_context(hay: &str, start: usize) -> bool {
    before(hay, start, 40)
        .as_bytes()
        .split(|b| !b.is_ascii_alphanumeric())
        .any(|word| {
            (2..=8).contains(&word.len())
                && PHONE_WORDS
                    .iter()
                    .any(|w| word.eq_ignore_ascii_case(w.as_bytes()))
        })
}

/// Whether `hay[start..end]` is a whole delimited field of a record line (CSV, table) that
/// carries an email address before it.
fn record_field(hay: &str, start: usize, end: usize) -> bool {
    const DELIMITERS: &[u8] = b",;|\t";
    let bytes = hay.as_bytes();
    let opens = start > 0 && DELIMITERS.contains(&bytes[start - 1]);
    let closes = bytes
        .get(end)
        .is_none_or(|b| DELIMITERS.contains(b) || matches!(b, b'\n' | b'\r' | b' '));
    if !(opens && closes) {
        return false;
    }
    let line = before(hay, start, CONTEXT_BYTES);
    let line = line.rsplit(['\n', '\r']).next().unwrap_or(line);
    line.split(|c: char| DELIMITERS.contains(&(c as u8)) && c.is_ascii())
        .any(|field| field.trim().contains('@'))
}

/// File extensions that look like a top-level domain in `icon@2x.png` but are none.
const NOT_TLDS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "pdf", "txt", "json",
    "yaml", "yml", "toml", "xml", "html", "htm", "css", "js", "mjs", "cjs", "ts", "tsx", "jsx",
    "lock", "log", "csv", "tsv", "exe", "dll", "bin", "dat", "tmp", "bak", "cfg", "conf", "ini",
    "mp3", "mp4", "wav", "avi", "mkv", "webm", "woff", "woff2", "ttf", "otf", "map", "wasm",
];

fn email(hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let value = &hay[start..end];
    let (local, domain) = value.rsplit_once('@')?;
    if local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || domain.len() > 253
        || value.len() > 254
    {
        return None;
    }
    let mut labels = domain.split('.');
    let tld = labels.next_back()?;
    if labels
        .clone()
        .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
    {
        return None;
    }
    if NOT_TLDS.iter().any(|ext| ext.eq_ignore_ascii_case(tld)) {
        return None;
    }
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(check: Check, hay: &str) -> bool {
        accept(check, hay, 0, hay.len()).is_some()
    }

    fn accept(check: Check, hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
        check.accept(hay, start, end, &PhoneRules::default_regions())
    }

    #[test]
    fn luhn_checks() {
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(luhn(b"046454286"));
    }

    #[test]
    fn card_issuers_and_lengths() {
        for card in [
            "4111111111111111",
            "4222222222222",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "6011111111111117",
            "30569309025904",
            "3530111333300000",
            "6759649826438453",
        ] {
            assert!(check(Check::Card, card), "{card}");
        }
        // Luhn-valid numbers outside every issuer range, or of the wrong length.
        for bad in ["7000000000000008", "378282246310", "41111111111111119"] {
            assert!(!check(Check::Card, bad), "{bad}");
        }
        let hay = "4111 1111 1111 1111 123";
        assert_eq!(accept(Check::Card, hay, 0, hay.len()), Some((0, 19)));
    }

    #[test]
    fn ssn_rules() {
        assert!(check(Check::SsnGrouped, "536-22-1234"));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "536-00-1234",
            "536-22-0000",
            "078-05-1120",
            "123-45-6789",
            "111-11-1111",
        ] {
            assert!(!check(Check::SsnGrouped, bad), "{bad}");
        }
    }

    #[test]
    fn bare_nine_digits_need_context() {
        let accept = |check: Check, hay: &str| {
            let start = hay.len() - 9;
            accept(check, hay, start, hay.len()).is_some()
        };
        assert!(accept(Check::SsnPlain, "SSN: 536221234"));
        assert!(!accept(Check::SsnPlain, "Order 536221234"));
        assert!(!accept(Check::SinPlain, "SSN: 046454286"));
        assert!(accept(
            Check::SinPlain,
            "Social insurance number: 130692544"
        ));
        assert!(!accept(
            Check::SsnPlain,
            "Social insurance number: 130692544"
        ));
        assert!(accept(Check::SsnPlain, "Ann,ann@example.com,536221234"));
        assert!(!accept(Check::SsnPlain, "Ann,example.com,536221234"));
    }

    #[test]
    fn numbers_inside_longer_numbers_are_not_reported() {
        let hay = "12-536-22-1234";
        assert_eq!(accept(Check::SsnGrouped, hay, 3, hay.len()), None);
        let hay = "536-22-1234-7";
        assert_eq!(accept(Check::SsnGrouped, hay, 0, 11), None);
    }

    #[test]
    fn emails() {
        for ok in ["jane.doe@example.com", "A+b@mail.co.uk", "x@a-b.io"] {
            assert!(check(Check::Email, ok), "{ok}");
        }
        for bad in [
            "icon@2x.png",
            ".a@b.com",
            "a..b@c.com",
            "a@-b.com",
            "a@b-.com",
        ] {
            assert!(!check(Check::Email, bad), "{bad}");
        }
    }

    #[test]
    fn builtin_names_round_trip() {
        for b in Builtin::ALL {
            assert_eq!(b.name().parse::<Builtin>(), Ok(b));
            assert_eq!(b.default_replacement(), format!("<{b}>"));
        }
        assert!("IBAN".parse::<Builtin>().is_err());
    }
}
