//! Phone numbers, validated with the metadata of Google's libphonenumber (the `phonenumber`
//! crate, whose version names the metadata release it carries).
//!
//! The candidate patterns find number shapes fast; only candidates reach the metadata:
//!
//! - **International** `+CC ...`: the country calling code must exist and the national number
//!   must be a possible number of one of its regions (a length that region uses, matching its
//!   general number pattern), as libphonenumber's `isPossibleNumber` plus the general
//!   description. The `+` is a strong signal, so new ranges a metadata release does not list
//!   yet still count.
//! - **National** numbers, written without a country code: the number must be a *valid*
//!   number (fixed line, mobile, toll free, premium rate, shared cost, personal, VoIP, pager,
//!   UAN or voicemail) of one of the configured regions (`phoneNumber.regions`, default
//!   [`DEFAULT_PHONE_REGIONS`]), tried in order, after the region's national prefix is
//!   stripped (`0` in most of Europe, `1` in the NANP), as libphonenumber's
//!   `isValidNumberForRegion`; written without that prefix, it must be of a format the region
//!   writes without it (libphonenumber's matcher asks the same at leniency `VALID`).
//! - Shapes that other numbers share (a ZIP+4, an SSN, a SIN, a date, eight digits) need a
//!   phone word before them, and ten bare digits without one count only as a number of a NANP
//!   region (`US`, `CA`, ...): an unbroken run of digits is more often a timestamp or an order
//!   number.
//!
//! The metadata's patterns are compiled once per region into `regex` automata when a pattern
//! set is built; checking a candidate takes no lock and compiles nothing. (The crate's own
//! `parse` and `is_valid` go through a process-wide regex cache behind a mutex, 100 entries,
//! compiling on a miss: fine for a form field, not for a scan that validates candidates on
//! every request.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex::{Regex, RegexBuilder};

/// The regions national numbers are validated in when none are configured.
pub const DEFAULT_PHONE_REGIONS: &[&str] = &[
    "US", "CA", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "MX", "IN", "JP", "AU",
];

/// `+CC` then digit groups with optional single separators and `(0)` trunk markers.
pub(super) const INTERNATIONAL: &str =
    r"\b{start-half}\+[1-9][0-9]{0,2}(?:[ .\-]?(?:\([0-9]{1,5}\)|[0-9]{1,12})){1,6}\b{end-half}";
/// `(NPA) NXX-XXXX`, `NPA-NXX-XXXX`, `NPA.NXX.XXXX`, `NPA NXX XXXX`, with an optional `1-`.
pub(super) const NANP: &str = r"\b{start-half}(?:1[ .\-]?)?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}\b{end-half}";
/// National numbers starting with the trunk prefix 0: `(0118) 496 0850`, `0191 4960645`,
/// `080-3698-0270`, `0151 23456789`, `0 801 23 45 67` (FR), `0900 1 234567` (DE),
/// `01164960883`.
pub(super) const TRUNK: &str = r"\b{start-half}(?:\(0[1-9][0-9]{0,3}\) ?[0-9]{2,8}(?:[ .\-][0-9]{2,4}){0,3}|0 ?[1-9][0-9]{0,4}(?:[ .\-][0-9]{1,10}){1,4}|0[1-9][0-9]{6,11})\b{end-half}";
/// Ten bare digits.
pub(super) const TEN: &str = r"\b{start-half}[0-9]{10}\b{end-half}";
/// National numbers without a trunk prefix in the space-grouped shapes countries use:
/// `98765 43210` (5-5, IN), `612 34 56 78` (3-2-2-2, ES), `55 1234 5678` (2-4-4, MX),
/// `11 91234 5678` (2-5-4, BR), `912 345 678` (3-3-3), `178 123 4567` (3-3-4, IT),
/// `1800 123 456` (4-3-3, AU), `1861 123 456 789` (4-3-3-3, IN), `1800 12 3456` (4-2-4, IN);
/// with
/// an area code in parentheses: `(11) 91234-5678` (BR); or two groups joined by a dash that no
/// ZIP+4, SSN or date has: `4004-1234` (BR), `98765-43210` (IN). The shapes are listed rather
/// than any run of digit groups: a looser pattern keeps the automaton alive on every number
/// followed by a space and costs the scan about 10%; dashed digit groups are mostly dates,
/// ZIP codes and identifiers, left to the NANP and trunk shapes.
pub(super) const GROUPED: &str = r"\b{start-half}(?:\([1-9][0-9]{1,3}\) ?[0-9]{3,5}[ \-]?[0-9]{4}|[1-9][0-9]{4} [0-9]{5}|[1-9][0-9]{2}(?: [0-9]{2}){3}|[1-9][0-9] [0-9]{4,5} [0-9]{4}|[1-9][0-9]{2} [0-9]{3} [0-9]{3,4}|[1-9][0-9]{3}(?: [0-9]{3}){2,3}|[1-9][0-9]{3} [0-9]{2} [0-9]{4}|[1-9][0-9]{3}-[0-9]{4}|[1-9][0-9]{4}-[0-9]{5})\b{end-half}";

/// The regions national numbers (written without a country code) are validated in, in order,
/// with each region's numbering plan compiled from libphonenumber's metadata.
#[derive(Clone)]
pub(crate) struct PhoneRules {
    regions: Vec<Arc<Region>>,
}

/// No region: the rules of a set without `PHONE_NUMBER`.
pub(crate) static NO_PHONE_RULES: PhoneRules = PhoneRules {
    regions: Vec::new(),
};

impl PhoneRules {
    /// Compiles the numbering plans of `regions` (ISO 3166-1 alpha-2 codes such as `US`).
    ///
    /// # Errors
    ///
    /// The index and the text of the first code that is not a region of the metadata.
    pub(crate) fn new<S: AsRef<str>>(regions: &[S]) -> Result<PhoneRules, (usize, String)> {
        let compiled = regions
            .iter()
            .enumerate()
            .map(|(i, id)| Region::get(id.as_ref()).ok_or_else(|| (i, id.as_ref().to_owned())))
            .collect::<Result<Vec<_>, _>>()?;
        // International numbers need the plans of every country calling code: build them now
        // rather than on the first candidate.
        international_plans();
        Ok(PhoneRules { regions: compiled })
    }

    /// The rules of [`DEFAULT_PHONE_REGIONS`].
    pub(crate) fn default_regions() -> PhoneRules {
        PhoneRules::new(DEFAULT_PHONE_REGIONS).expect("the default regions are in the metadata")
    }

    /// Whether `digits` is a valid national number of one of the regions.
    fn national(&self, digits: &str) -> bool {
        self.regions.iter().any(|r| r.valid_national(digits))
    }

    /// Whether `digits` is a valid national number of one of the NANP regions (+1).
    fn nanp(&self, digits: &str) -> bool {
        // NANP numbers are NXX-NXX-XXXX: no area code starts with 0 or 1. A Unix time in
        // seconds (`"created": 1700000000` in every chat completion) is none, without running
        // the regions' patterns.
        if !digits
            .as_bytes()
            .first()
            .is_some_and(|b| (b'2'..=b'9').contains(b))
        {
            return false;
        }
        self.regions
            .iter()
            .filter(|r| r.country_code == 1)
            .any(|r| r.valid_national(digits))
    }
}

impl std::fmt::Debug for PhoneRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.regions.iter().map(|r| &r.id))
            .finish()
    }
}

/// One region's numbering plan, compiled from the metadata.
struct Region {
    id: String,
    country_code: u16,
    /// `^(?:nationalPrefixForParsing)` (or the national prefix).
    national_prefix: Option<Regex>,
    /// `nationalPrefixTransformRule`, with `${n}` group references.
    transform: Option<String>,
    /// `^(?:fixedLine|mobile|...)$`: the patterns of every number type.
    valid: Regex,
    /// Bit `n` set when national numbers of `n` digits exist.
    lengths: u64,
    /// The national formats, to tell whether a number written without the national prefix
    /// should have had one.
    formats: Vec<Format>,
}

/// One national format of a region.
struct Format {
    /// `^(?:leadingDigits)`: the last (most precise) leading-digits pattern, if any.
    leading_digits: Option<Regex>,
    /// `^(?:pattern)$`.
    pattern: Regex,
    /// Whether numbers of this format are written with the national prefix (the formatting
    /// rule has `$NP` and the prefix is not optional).
    prefix_required: bool,
}

/// The number types libphonenumber's `getNumberType` recognizes.
fn number_types(meta: &Metadata) -> impl Iterator<Item = &Descriptor> {
    let d = meta.descriptors();
    [
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ]
    .into_iter()
    .flatten()
}

/// The metadata's patterns are written with insignificant whitespace.
fn compile(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .ignore_whitespace(true)
        .unicode(false)
        .build()
        .expect("libphonenumber's metadata patterns compile")
}

/// The lengths national numbers of the region have, as bits: those of its general
/// description, or the union of its number types' (the crate leaves the general ones empty).
fn length_bits(meta: &Metadata) -> u64 {
    let bits = |lengths: &[u16]| {
        lengths
            .iter()
            .filter(|&&n| n < 64)
            .fold(0u64, |bits, &n| bits | 1 << n)
    };
    match bits(meta.descriptors().general().possible_length()) {
        0 => number_types(meta).fold(0, |all, d| all | bits(d.possible_length())),
        general => general,
    }
}

impl Region {
    /// The compiled plan of region `id`, shared by every pattern set of the process.
    fn get(id: &str) -> Option<Arc<Region>> {
        static COMPILED: OnceLock<Mutex<HashMap<String, Arc<Region>>>> = OnceLock::new();
        // Region codes are two letters; `001` (non-geographic numbers) is no region.
        if id.len() != 2 || !id.bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let mut compiled = COMPILED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(region) = compiled.get(id) {
            return Some(region.clone());
        }
        let region = Arc::new(Region::compile(DATABASE.by_id(id)?));
        compiled.insert(id.to_owned(), region.clone());
        Some(region)
    }

    fn compile(meta: &Metadata) -> Region {
        let types: Vec<String> = number_types(meta)
            .map(|d| format!("(?:{})", d.national_number().as_str()))
            .collect();
        let national_prefix = meta
            .national_prefix_for_parsing()
            .map(|p| p.as_str().to_owned())
            .or_else(|| meta.national_prefix().map(regex::escape))
            .map(|p| compile(&format!("^(?:{p})")));
        let transform = meta.national_prefix_transform_rule().map(|rule| {
            // `$1` in the metadata; `${1}` so that a digit after it is not read as a name.
            let mut out = String::new();
            let mut chars = rule.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    out.push_str("${");
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        out.push(d);
                    }
                    out.push('}');
                } else {
                    out.push(c);
                }
            }
            out
        });
        Region {
            id: meta.id().to_owned(),
            country_code: meta.country_code(),
            national_prefix,
            transform,
            valid: compile(&format!("^(?:{})$", types.join("|"))),
            lengths: length_bits(meta),
            formats: meta
                .formats()
                .iter()
                .map(|f| Format {
                    leading_digits: f
                        .leading_digits()
                        .last()
                        .map(|l| compile(&format!("^(?:{})", l.as_str()))),
                    pattern: compile(&format!("^(?:{})$", f.pattern().as_str())),
                    prefix_required: f.national_prefix().is_some_and(|r| r.contains("$NP"))
                        && !f.is_national_prefix_optional(),
                })
                .collect(),
        }
    }

    /// Whether `digits` (a number as dialled within the region) is a valid number there, with
    /// or without its national prefix.
    fn valid_national(&self, digits: &str) -> bool {
        if let Some(prefix) = &self.national_prefix
            && let Some(found) = prefix.find(digits)
        {
            let rest = &digits[found.end()..];
            if !rest.is_empty() && self.valid_number(rest) {
                return true;
            }
            // The transform applies when the prefix pattern captured something (a carrier
            // code in BR, a mobile marker in AR); captures cost more than a match, so only then.
            if let Some(rule) = &self.transform
                && let Some(caps) = prefix.captures(digits)
                && caps.iter().skip(1).any(|g| g.is_some())
            {
                let mut national = String::new();
                caps.expand(rule, &mut national);
                national.push_str(rest);
                if self.valid_number(&national) {
                    return true;
                }
            }
        }
        self.valid_number(digits) && !self.prefix_required(digits)
    }

    /// Whether a national number written without the national prefix should have had one:
    /// its format (the first whose leading digits and pattern fit) is written with the prefix.
    /// libphonenumber's matcher requires this of the numbers it finds in text (leniency
    /// `VALID`): `4155552671` is a valid German number on paper, but no one in Germany writes
    /// it without the `0`.
    fn prefix_required(&self, national: &str) -> bool {
        self.national_prefix.is_some()
            && self.formats.iter().any(|f| f.prefix_required)
            && self
                .formats
                .iter()
                .find(|f| {
                    f.leading_digits
                        .as_ref()
                        .is_none_or(|l| l.is_match(national))
                        && f.pattern.is_match(national)
                })
                .is_some_and(|f| f.prefix_required)
    }

    fn valid_number(&self, national: &str) -> bool {
        national.len() < 64
            && self.lengths & (1 << national.len()) != 0
            && self.valid.is_match(national)
    }
}

/// The general pattern and lengths of every region, by country calling code.
fn international_plans() -> &'static HashMap<u16, Vec<(Regex, u64)>> {
    static PLANS: OnceLock<HashMap<u16, Vec<(Regex, u64)>>> = OnceLock::new();
    PLANS.get_or_init(|| {
        let mut plans: HashMap<u16, Vec<(Regex, u64)>> = HashMap::new();
        for meta in DATABASE.iter() {
            let general = meta.descriptors().general();
            plans.entry(meta.country_code()).or_default().push((
                compile(&format!("^(?:{})$", general.national_number().as_str())),
                length_bits(meta),
            ));
        }
        plans
    })
}

/// Whether `digits` (after the `+`) is a country calling code followed by a possible national
/// number of one of its regions.
fn possible_international(digits: &str) -> bool {
    if !(7..=17).contains(&digits.len()) {
        return false;
    }
    let plans = international_plans();
    // Country calling codes are prefix-free: at most one of the three prefixes is a code.
    (1..=3).any(|cc_len| {
        let Ok(code) = digits[..cc_len].parse::<u16>() else {
            return false;
        };
        let national = &digits[cc_len..];
        plans.get(&code).is_some_and(|regions| {
            regions.iter().any(|(pattern, lengths)| {
                national.len() < 64
                    && lengths & (1 << national.len()) != 0
                    && pattern.is_match(national)
            })
        })
    })
}

/// The ASCII digits of a candidate, without the `(0)` trunk marker of `+44 (0)20 ...`, on the
/// stack: candidates are validated on the scan's hot path.
struct Digits {
    buf: [u8; 32],
    len: usize,
}

impl std::ops::Deref for Digits {
    type Target = str;

    fn deref(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// The digits of `value` (candidates have at most 32).
fn digits(value: &str) -> Digits {
    let mut out = Digits {
        buf: [0; 32],
        len: 0,
    };
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"(0)") {
            i += 3;
            continue;
        }
        if bytes[i].is_ascii_digit() && out.len < out.buf.len() {
            out.buf[out.len] = bytes[i];
            out.len += 1;
        }
        i += 1;
    }
    out
}

/// Validates an international number, dropping trailing digit groups that make it too long
/// (`+1 202 555 0147 12 items`).
pub(super) fn international(hay: &str, start: usize, mut end: usize) -> Option<(usize, usize)> {
    loop {
        let value = &hay[start..end];
        if possible_international(&digits(value)) {
            return Some((start, end));
        }
        let cut = value.rfind([' ', '.', '-'])?;
        // Keep at least the country code and one group.
        if !value[..cut].contains([' ', '.', '-']) && value[..cut].len() <= 4 {
            return None;
        }
        end = start + cut;
        while hay[start..end].ends_with([' ', '.', '-']) {
            end -= 1;
        }
    }
}

/// A formatted NANP-shaped number (with an optional leading `1`), valid in a configured region.
pub(super) fn nanp_formatted(value: &str, rules: &PhoneRules) -> bool {
    rules.national(&digits(value))
}

/// The lengths of the digit groups of `value`.
fn groups(value: &str) -> Vec<usize> {
    value
        .split([' ', '.', '-', '(', ')'])
        .filter(|g| !g.is_empty())
        .map(str::len)
        .collect()
}

/// Group shapes of other numbers: `07291-1413` (ZIP+4), `015-00-6285` (SSN), `032-976-201`
/// (SIN, SIREN), dates.
fn other_number_shape(groups: &[usize]) -> bool {
    matches!(
        groups,
        [5, 4] | [3, 2, 4] | [3, 3, 3] | [2, 2, 4] | [4, 2, 2] | [2, 2, 2, 2]
    )
}

/// A national number with trunk prefix 0 (8 to 14 digits), not shaped like another number.
/// Eight digits (`0800-1700` may be opening hours) and nine bare digits need a phone keyword
/// before them.
pub(super) fn trunk(value: &str, rules: &PhoneRules, context: impl FnOnce() -> bool) -> bool {
    let groups = groups(value);
    let total: usize = groups.iter().sum();
    if !(8..=14).contains(&total) || other_number_shape(&groups) {
        return false;
    }
    let stands_alone = total > 9 || (total == 9 && groups.len() > 1);
    (stands_alone || context()) && rules.national(&digits(value))
}

/// Ten bare digits: a number of a NANP region, or of any region after a phone keyword.
pub(super) fn ten(value: &str, rules: &PhoneRules, context: impl FnOnce() -> bool) -> bool {
    rules.nanp(value) || (context() && rules.national(value))
}

/// A grouped national number without a trunk prefix (8 to 13 digits); eight digits and
/// shapes of other numbers need a phone keyword before them.
pub(super) fn grouped(value: &str, rules: &PhoneRules, context: impl Fn() -> bool) -> bool {
    let groups = groups(value);
    let total: usize = groups.iter().sum();
    (8..=13).contains(&total)
        && ((total > 8 && !other_number_shape(&groups)) || context())
        && rules.national(&digits(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(regions: &[&str]) -> PhoneRules {
        PhoneRules::new(regions).unwrap()
    }

    #[test]
    fn international_numbers_are_possible_numbers_of_their_country() {
        for ok in [
            "+1 415 555 2671",
            "+44 20 7946 0958",
            "+49 (0) 1753 377274",
            "+33 (0)2 51 83 65 84",
            "+81 80-6363-0322",
            "+3187-8119956",
            "+61.2.1782.9477",
            "+91 98765 43210",
            "+55 11 91234-5678",
            "+39 06 6988 4000",
        ] {
            assert_eq!(international(ok, 0, ok.len()), Some((0, ok.len())), "{ok}");
        }
        for bad in [
            "+1 111 555 2671",
            "+44 12",
            "+999 123 456 789",
            "+49 0 0000",
        ] {
            assert_eq!(international(bad, 0, bad.len()), None, "{bad}");
        }
        let hay = "+1 415 555 2671 42";
        assert_eq!(international(hay, 0, hay.len()), Some((0, 15)));
    }

    #[test]
    fn national_numbers_are_valid_in_a_configured_region() {
        let all = PhoneRules::default_regions();
        for (region, number) in [
            ("US", "(415) 555-2671"),
            ("CA", "(807) 409-6053"),
            ("GB", "020 7946 0958"),
            ("DE", "030 901820"),
            ("FR", "01 42 68 53 00"),
            ("ES", "912 34 56 78"),
            ("IT", "02 1234 5678"),
            ("NL", "020 555 1234"),
            ("BR", "(11) 91234-5678"),
            ("MX", "55 1234 5678"),
            ("IN", "98765 43210"),
            ("JP", "03-1234-5678"),
            ("AU", "0412 345 678"),
        ] {
            assert!(all.national(&digits(number)), "{region} {number}");
            assert!(
                rules(&[region]).national(&digits(number)),
                "{region} {number}"
            );
        }
        // Regions decide: a German number is not a number of the NANP.
        assert!(!rules(&["US", "CA"]).national(&digits("030 901820")));
        assert!(!rules(&["GB"]).national(&digits("(415) 555-2671")));
    }

    #[test]
    fn unknown_regions_are_reported_with_their_index() {
        assert_eq!(
            PhoneRules::new(&["US", "XX"]).unwrap_err(),
            (1, "XX".to_owned())
        );
        assert!(PhoneRules::new(&["us"]).is_err());
        assert!(PhoneRules::new(&["001"]).is_err());
    }

    #[test]
    fn nanp_numbers() {
        let us = rules(&["US", "CA"]);
        assert!(nanp_formatted("(415) 555-2671", &us));
        assert!(nanp_formatted("1-415-555-2671", &us));
        assert!(!nanp_formatted("(415) 155-2671", &us));
        assert!(!nanp_formatted("(111) 555-2671", &us));
    }

    #[test]
    fn trunk_numbers() {
        let r = PhoneRules::default_regions();
        assert!(trunk("0191 4960645", &r, || false));
        assert!(trunk("(0118) 496 0850", &r, || false));
        assert!(!trunk("07291-1413", &r, || true));
        assert!(!trunk("015-00-6285", &r, || true));
        assert!(!trunk("092343197", &r, || false));
        assert!(trunk("092343197", &r, || true));
    }

    #[test]
    fn ten_digits() {
        let r = PhoneRules::default_regions();
        assert!(ten("4155552671", &r, || false));
        // A timestamp is no NANP number; after a phone word it may be a number elsewhere.
        assert!(!ten("1622767305", &r, || false));
        assert!(!ten("1700000000", &r, || false));
        assert!(!ten("0415555267", &r, || false));
        assert!(!ten("9876543210", &r, || false));
        assert!(ten("9876543210", &r, || true));
    }

    #[test]
    fn grouped_national_numbers() {
        let r = PhoneRules::default_regions();
        assert!(grouped("98765 43210", &r, || false));
        assert!(grouped("(11) 91234-5678", &r, || false));
        assert!(!grouped("89108-9152", &r, || false));
        assert!(!grouped("477 435 941", &r, || false));
        assert!(!grouped("2019 10 21", &r, || false));
    }
}
