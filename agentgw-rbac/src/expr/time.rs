//! Timestamps, durations and time zones: CEL's `google.protobuf.Timestamp` and
//! `google.protobuf.Duration`.
//!
//! A [`Timestamp`] is an instant with nanosecond precision between `0001-01-01T00:00:00Z` and
//! `9999-12-31T23:59:59.999999999Z`, the range of an RFC 3339 string. A [`Duration`] is a
//! signed number of nanoseconds that fits 64 bits (about ±292 years), the range the CEL
//! specification and its conformance suite require (`timestamp('9999-12-31T23:59:59Z') -
//! timestamp('0001-01-01T00:00:00Z')` is a range error). Arithmetic that leaves either range
//! is an error, never a wrap.
//!
//! Durations are written in Go's syntax (`"1h30m"`, `"-1.5s"`, `"100ms"`, `"1us"`, `"1ns"`) and
//! printed the way CEL's `string(duration)` does: seconds with the fraction they need
//! (`"5400s"`, `"-1.5s"`, `"0.000000001s"`).
//!
//! The accessors (`getHours()`, `getDayOfWeek()`, ...) read a timestamp in UTC or in a time
//! zone: an IANA name (`"Europe/Berlin"`, `"US/Central"`, from the database built into the
//! binary, so no system `zoneinfo` is needed) or a fixed offset (`"+08:00"`, `"-02:30"`).

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Offset, TimeZone as _};

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;
/// `0001-01-01T00:00:00Z`.
const MIN_SECS: i64 = -62_135_596_800;
/// `9999-12-31T23:59:59Z`.
const MAX_SECS: i64 = 253_402_300_799;

/// Why a timestamp, duration or time zone could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The text is not in the expected syntax (RFC 3339, Go duration syntax, a time zone).
    #[error("{0}")]
    Syntax(&'static str),
    /// The value is outside the range of a timestamp or a duration.
    #[error("{0} out of range")]
    Range(&'static str),
}

/// An instant with nanosecond precision, between `0001-01-01T00:00:00Z` and
/// `9999-12-31T23:59:59.999999999Z`: CEL's `google.protobuf.Timestamp`.
///
/// Parsed from RFC 3339 text (`"2030-01-01T00:00:00Z"`, `"2009-02-13T23:31:30.5+01:00"`) and
/// displayed in RFC 3339 in UTC with as many fractional digits as it needs.
///
/// ```
/// use agentgw_rbac::expr::Timestamp;
///
/// let t: Timestamp = "2009-02-13T23:31:30Z".parse()?;
/// assert_eq!(t.unix_seconds(), 1_234_567_890);
/// assert_eq!(t.to_string(), "2009-02-13T23:31:30Z");
/// assert!("10000-01-01T00:00:00Z".parse::<Timestamp>().is_err());
/// # Ok::<(), agentgw_rbac::expr::TimeError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

impl Timestamp {
    /// `0001-01-01T00:00:00Z`, the earliest timestamp.
    pub const MIN: Timestamp = Timestamp {
        secs: MIN_SECS,
        nanos: 0,
    };
    /// `9999-12-31T23:59:59.999999999Z`, the latest timestamp.
    pub const MAX: Timestamp = Timestamp {
        secs: MAX_SECS,
        nanos: 999_999_999,
    };
    /// `1970-01-01T00:00:00Z`.
    pub const UNIX_EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };

    /// The timestamp `secs` seconds and `nanos` nanoseconds after the Unix epoch; `None` when
    /// `nanos` is a second or more or the instant is outside the range.
    pub fn from_unix(secs: i64, nanos: u32) -> Option<Timestamp> {
        (i64::from(nanos) < NANOS_PER_SEC && (MIN_SECS..=MAX_SECS).contains(&secs))
            .then_some(Timestamp { secs, nanos })
    }

    /// The current time of the system clock (clamped to the range, which no working clock
    /// leaves).
    // Kept out of line: the evaluation of every rule that does not read the clock stays small.
    #[inline(never)]
    pub fn now() -> Timestamp {
        Timestamp::try_from(SystemTime::now()).unwrap_or_else(|_| {
            if SystemTime::now() < UNIX_EPOCH {
                Timestamp::MIN
            } else {
                Timestamp::MAX
            }
        })
    }

    /// Whole seconds since the Unix epoch, rounded down (`int(timestamp)`).
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// The nanoseconds past [`unix_seconds`](Self::unix_seconds), below one billion.
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    fn total_nanos(self) -> i128 {
        i128::from(self.secs) * i128::from(NANOS_PER_SEC) + i128::from(self.nanos)
    }

    fn from_total_nanos(nanos: i128) -> Option<Timestamp> {
        let per_sec = i128::from(NANOS_PER_SEC);
        let secs = i64::try_from(nanos.div_euclid(per_sec)).ok()?;
        let subsec = u32::try_from(nanos.rem_euclid(per_sec)).ok()?;
        Timestamp::from_unix(secs, subsec)
    }

    /// `self + duration`, `None` outside the range.
    pub fn checked_add(self, duration: Duration) -> Option<Timestamp> {
        Timestamp::from_total_nanos(self.total_nanos() + i128::from(duration.nanos))
    }

    /// `self - duration`, `None` outside the range.
    pub fn checked_sub(self, duration: Duration) -> Option<Timestamp> {
        Timestamp::from_total_nanos(self.total_nanos() - i128::from(duration.nanos))
    }

    /// `self - earlier` as a duration, `None` when it does not fit one.
    pub fn checked_duration_since(self, earlier: Timestamp) -> Option<Duration> {
        i64::try_from(self.total_nanos() - earlier.total_nanos())
            .ok()
            .map(Duration::from_nanos)
    }

    /// A calendar or clock field of the timestamp as seen in `zone`.
    pub(crate) fn field(self, field: TimeField, zone: &TimeZone) -> i64 {
        let local = self.secs + zone.offset_secs(self);
        let days = local.div_euclid(SECS_PER_DAY);
        let time_of_day = local.rem_euclid(SECS_PER_DAY);
        let date = || civil_from_days(days);
        match field {
            TimeField::FullYear => date().0,
            TimeField::Month => i64::from(date().1) - 1,
            TimeField::DayOfMonth => i64::from(date().2) - 1,
            TimeField::Date => i64::from(date().2),
            TimeField::DayOfYear => days - days_from_civil(date().0, 1, 1),
            // 1970-01-01 was a Thursday; Sunday is 0.
            TimeField::DayOfWeek => (days + 4).rem_euclid(7),
            TimeField::Hours => time_of_day / 3600,
            TimeField::Minutes => time_of_day / 60 % 60,
            TimeField::Seconds => time_of_day % 60,
            TimeField::Milliseconds => i64::from(self.nanos / 1_000_000),
        }
    }
}

impl TryFrom<SystemTime> for Timestamp {
    type Error = TimeError;

    fn try_from(time: SystemTime) -> Result<Self, TimeError> {
        let range = TimeError::Range("timestamp");
        let nanos = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i128::try_from(after.as_nanos()).map_err(|_| range)?,
            Err(before) => -i128::try_from(before.duration().as_nanos()).map_err(|_| range)?,
        };
        Timestamp::from_total_nanos(nanos).ok_or(range)
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;

    /// RFC 3339: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. Digits past nanoseconds are
    /// dropped; a valid date outside the range (year 0000) is a range error.
    fn from_str(text: &str) -> Result<Self, TimeError> {
        parse_rfc3339(text.as_bytes())
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with the fractional seconds it needs: `2009-02-13T23:31:30.5Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = civil_from_days(self.secs.div_euclid(SECS_PER_DAY));
        let tod = self.secs.rem_euclid(SECS_PER_DAY);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            tod / 3600,
            tod / 60 % 60,
            tod % 60
        )?;
        write_fraction(f, self.nanos)?;
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `.5`, `.000000001`: the nanoseconds as a decimal fraction without trailing zeros.
fn write_fraction(f: &mut fmt::Formatter<'_>, nanos: u32) -> fmt::Result {
    if nanos == 0 {
        return Ok(());
    }
    let mut digits = 9;
    let mut value = nanos;
    while value.is_multiple_of(10) {
        value /= 10;
        digits -= 1;
    }
    write!(f, ".{value:0digits$}")
}

/// A signed span of time in nanoseconds, within ±(2^63 − 1) ns (about 292 years): CEL's
/// `google.protobuf.Duration`.
///
/// Parsed from Go's duration syntax and displayed as CEL's `string(duration)` does:
///
/// ```
/// use agentgw_rbac::expr::Duration;
///
/// let d: Duration = "1h30m".parse()?;
/// assert_eq!(d.as_nanos(), 5_400_000_000_000);
/// assert_eq!(d.to_string(), "5400s");
/// assert_eq!("-1.5s".parse::<Duration>()?.to_string(), "-1.5s");
/// assert!("1d".parse::<Duration>().is_err());
/// # Ok::<(), agentgw_rbac::expr::TimeError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    nanos: i64,
}

const NANOS_PER_MILLI: i64 = 1_000_000;
const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SEC;
const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;

impl Duration {
    /// The shortest duration, −2^63 ns.
    pub const MIN: Duration = Duration { nanos: i64::MIN };
    /// The longest duration, 2^63 − 1 ns.
    pub const MAX: Duration = Duration { nanos: i64::MAX };
    /// No time.
    pub const ZERO: Duration = Duration { nanos: 0 };

    /// A duration of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: i64) -> Duration {
        Duration { nanos }
    }

    /// A duration of `secs` seconds, `None` outside the range.
    pub fn from_secs(secs: i64) -> Option<Duration> {
        secs.checked_mul(NANOS_PER_SEC).map(Duration::from_nanos)
    }

    /// The duration in nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// `self + other`, `None` outside the range.
    pub fn checked_add(self, other: Duration) -> Option<Duration> {
        self.nanos
            .checked_add(other.nanos)
            .map(Duration::from_nanos)
    }

    /// `self - other`, `None` outside the range.
    pub fn checked_sub(self, other: Duration) -> Option<Duration> {
        self.nanos
            .checked_sub(other.nanos)
            .map(Duration::from_nanos)
    }

    /// The duration in whole hours, minutes, seconds or milliseconds (rounded toward zero);
    /// `None` for the calendar fields, which durations do not have.
    pub(crate) fn field(self, field: TimeField) -> Option<i64> {
        let unit = match field {
            TimeField::Hours => NANOS_PER_HOUR,
            TimeField::Minutes => NANOS_PER_MINUTE,
            TimeField::Seconds => NANOS_PER_SEC,
            TimeField::Milliseconds => NANOS_PER_MILLI,
            _ => return None,
        };
        Some(self.nanos / unit)
    }
}

impl FromStr for Duration {
    type Err = TimeError;

    /// Go's duration syntax: an optional sign, then one or more decimal numbers each with a
    /// unit (`ns`, `us` or `µs`, `ms`, `s`, `m`, `h`): `"300ms"`, `"-1.5h"`, `"2h45m"`. `"0"`
    /// alone needs no unit.
    fn from_str(text: &str) -> Result<Self, TimeError> {
        parse_duration(text.as_bytes())
    }
}

impl fmt::Display for Duration {
    /// Seconds with the fraction they need: `"5400s"`, `"-1.5s"`, `"0.000000001s"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let abs = self.nanos.unsigned_abs();
        if self.nanos < 0 {
            f.write_str("-")?;
        }
        let per_sec = NANOS_PER_SEC.unsigned_abs();
        write!(f, "{}", abs / per_sec)?;
        // The remainder is below one billion.
        write_fraction(f, u32::try_from(abs % per_sec).unwrap_or(0))?;
        f.write_str("s")
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Go's `time.ParseDuration`, with integer arithmetic for the fractions.
fn parse_duration(mut s: &[u8]) -> Result<Duration, TimeError> {
    const INVALID: TimeError = TimeError::Syntax("invalid duration");
    const RANGE: TimeError = TimeError::Range("duration");
    // The magnitude of i64::MIN, the largest a negative duration reaches.
    const LIMIT: u128 = 1 << 63;
    let negative = match s.first() {
        Some(b'-') => {
            s = &s[1..];
            true
        }
        Some(b'+') => {
            s = &s[1..];
            false
        }
        _ => false,
    };
    if s == b"0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(INVALID);
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u128 = 0;
        for &c in &s[..digits] {
            whole = whole * 10 + u128::from(c - b'0');
            if whole > LIMIT {
                return Err(RANGE);
            }
        }
        s = &s[digits..];
        let (mut fraction, mut scale, mut fraction_digits) = (0u128, 1u128, 0);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            fraction_digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
            // Digits past the 18th change the result by less than a nanosecond.
            for &c in s[..fraction_digits].iter().take(18) {
                fraction = fraction * 10 + u128::from(c - b'0');
                scale *= 10;
            }
            s = &s[fraction_digits..];
        }
        if digits == 0 && fraction_digits == 0 {
            return Err(INVALID);
        }
        let unit_len = s
            .iter()
            .take_while(|&&c| c != b'.' && !c.is_ascii_digit())
            .count();
        let unit: u128 = match &s[..unit_len] {
            b"ns" => 1,
            // `µs` with the micro sign (U+00B5) or the Greek mu (U+03BC), as Go accepts.
            b"us" | b"\xC2\xB5s" | b"\xCE\xBCs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            b"" => return Err(TimeError::Syntax("missing unit in duration")),
            _ => return Err(TimeError::Syntax("unknown unit in duration")),
        };
        s = &s[unit_len..];
        total += whole * unit + fraction * unit / scale;
        if total > LIMIT {
            return Err(RANGE);
        }
    }
    let signed = if negative {
        -(total as i128)
    } else {
        total as i128
    };
    i64::try_from(signed)
        .map(Duration::from_nanos)
        .map_err(|_| RANGE)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn parse_rfc3339(text: &[u8]) -> Result<Timestamp, TimeError> {
    const INVALID: TimeError = TimeError::Syntax("invalid RFC 3339 timestamp");
    let mut cursor = Cursor(text);
    // RFC 3339 years have four digits; a longer year (`10000-01-01T...`) is read too, to be
    // reported as out of range rather than as malformed.
    let year_len = text.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(4..=9).contains(&year_len) {
        return Err(INVALID);
    }
    let year = cursor.number(year_len).ok_or(INVALID)?;
    let mut field = |separator: u8| {
        cursor
            .expect(separator)
            .then(|| cursor.number(2))
            .flatten()
            .ok_or(INVALID)
    };
    let month = field(b'-')?;
    let day = field(b'-')?;
    let hour = field(b'T')?;
    let minute = field(b':')?;
    let second = field(b':')?;
    let mut nanos: i64 = 0;
    if cursor.expect(b'.') {
        let digits = cursor.0.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(INVALID);
        }
        // Digits past nanoseconds are dropped.
        for i in 0..9 {
            let digit = cursor.0.get(i).filter(|_| i < digits);
            nanos = nanos * 10 + digit.map_or(0, |c| i64::from(c - b'0'));
        }
        cursor.0 = &cursor.0[digits..];
    }
    let offset = match cursor.0 {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), zone @ ..] if zone.len() == 5 => {
            let mut zone = Cursor(zone);
            let hours = zone.number(2).ok_or(INVALID)?;
            let minutes = zone
                .expect(b':')
                .then(|| zone.number(2))
                .flatten()
                .ok_or(INVALID)?;
            if hours > 23 || minutes > 59 {
                return Err(INVALID);
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return Err(INVALID),
    };
    let month = u32::try_from(month).map_err(|_| INVALID)?;
    let day = u32::try_from(day).map_err(|_| INVALID)?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(INVALID);
    }
    let secs =
        days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset;
    let nanos = u32::try_from(nanos).map_err(|_| INVALID)?;
    Timestamp::from_unix(secs, nanos).ok_or(TimeError::Range("timestamp"))
}

/// The unread rest of a timestamp.
struct Cursor<'s>(&'s [u8]);

impl Cursor<'_> {
    /// Consumes `c` if it comes next.
    fn expect(&mut self, c: u8) -> bool {
        match self.0.split_first() {
            Some((first, rest)) if *first == c => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    /// Consumes exactly `len` decimal digits (at most 18).
    fn number(&mut self, len: usize) -> Option<i64> {
        let digits = self.0.get(..len)?;
        let value = digits.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })?;
        self.0 = &self.0[len..];
        Some(value)
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month 1-12, day 1-31) of a day counted from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are small and positive by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// The time zone of an accessor: UTC, a fixed offset, or a zone of the IANA database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeZone {
    Utc,
    /// Seconds east of UTC.
    Fixed(i32),
    Named(chrono_tz::Tz),
}

impl TimeZone {
    /// An IANA zone name (`"America/Los_Angeles"`, `"UTC"`) or an offset from UTC
    /// (`"+08:00"`, `"-02:30"`, `"02:00"`).
    pub(crate) fn parse(text: &str) -> Result<TimeZone, TimeError> {
        if text == "UTC" {
            return Ok(TimeZone::Utc);
        }
        let Some((hours, minutes)) = text.split_once(':') else {
            return text
                .parse::<chrono_tz::Tz>()
                .map(TimeZone::Named)
                .map_err(|_| TimeError::Syntax("unknown time zone"));
        };
        const INVALID: TimeError =
            TimeError::Syntax("invalid time zone offset (expected ±HH:MM, at most 23:59)");
        let (negative, hours) = match hours.as_bytes().first() {
            Some(b'-') => (true, &hours[1..]),
            Some(b'+') => (false, &hours[1..]),
            _ => (false, hours),
        };
        let field = |digits: &str, max: i32| -> Result<i32, TimeError> {
            if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|c| c.is_ascii_digit())
            {
                return Err(INVALID);
            }
            digits
                .parse::<i32>()
                .ok()
                .filter(|v| *v <= max)
                .ok_or(INVALID)
        };
        let offset = field(hours, 23)? * 3600 + field(minutes, 59)? * 60;
        Ok(TimeZone::Fixed(if negative { -offset } else { offset }))
    }

    /// How far local time is ahead of UTC at `at`, in seconds.
    fn offset_secs(&self, at: Timestamp) -> i64 {
        match self {
            TimeZone::Utc => 0,
            TimeZone::Fixed(offset) => i64::from(*offset),
            TimeZone::Named(tz) => chrono::DateTime::from_timestamp(at.secs, 0).map_or(0, |utc| {
                i64::from(
                    tz.offset_from_utc_datetime(&utc.naive_utc())
                        .fix()
                        .local_minus_utc(),
                )
            }),
        }
    }
}

/// The accessors of timestamps (and, for the clock ones, of durations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeField {
    /// `getFullYear`: the year.
    FullYear,
    /// `getMonth`: 0 (January) to 11.
    Month,
    /// `getDayOfYear`: 0 to 365.
    DayOfYear,
    /// `getDayOfMonth`: 0 to 30.
    DayOfMonth,
    /// `getDate`: 1 to 31.
    Date,
    /// `getDayOfWeek`: 0 (Sunday) to 6.
    DayOfWeek,
    /// `getHours`: 0 to 23 (durations: whole hours).
    Hours,
    /// `getMinutes`: 0 to 59 (durations: whole minutes).
    Minutes,
    /// `getSeconds`: 0 to 59 (durations: whole seconds).
    Seconds,
    /// `getMilliseconds`: 0 to 999 (durations: whole milliseconds).
    Milliseconds,
}

impl TimeField {
    pub(crate) const ALL: [TimeField; 10] = [
        TimeField::FullYear,
        TimeField::Month,
        TimeField::DayOfYear,
        TimeField::DayOfMonth,
        TimeField::Date,
        TimeField::DayOfWeek,
        TimeField::Hours,
        TimeField::Minutes,
        TimeField::Seconds,
        TimeField::Milliseconds,
    ];

    /// The accessor's CEL name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TimeField::FullYear => "getFullYear",
            TimeField::Month => "getMonth",
            TimeField::DayOfYear => "getDayOfYear",
            TimeField::DayOfMonth => "getDayOfMonth",
            TimeField::Date => "getDate",
            TimeField::DayOfWeek => "getDayOfWeek",
            TimeField::Hours => "getHours",
            TimeField::Minutes => "getMinutes",
            TimeField::Seconds => "getSeconds",
            TimeField::Milliseconds => "getMilliseconds",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<TimeField> {
        TimeField::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether durations have the accessor too.
    pub(crate) fn on_durations(self) -> bool {
        matches!(
            self,
            TimeField::Hours | TimeField::Minutes | TimeField::Seconds | TimeField::Milliseconds
        )
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn dur(text: &str) -> Duration {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn timestamps_parse_rfc3339_and_print_in_utc() {
        assert_eq!(ts("2009-02-13T23:31:30Z").unix_seconds(), 1_234_567_890);
        assert_eq!(ts("1970-01-01T00:00:00Z"), Timestamp::UNIX_EPOCH);
        assert_eq!(
            ts("2009-02-14T00:31:30.25+01:00").to_string(),
            "2009-02-13T23:31:30.25Z"
        );
        assert_eq!(
            ts("9999-12-31T23:59:59.999999999Z").to_string(),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert_eq!(ts("0001-01-01T00:00:00Z"), Timestamp::MIN);
        assert_eq!(ts("1969-12-31T23:59:59.5Z").unix_seconds(), -1);
        assert_eq!(ts("1969-12-31T23:59:59.5Z").subsec_nanos(), 500_000_000);
        assert_eq!(
            ts("2024-02-29T12:00:00-02:30").to_string(),
            "2024-02-29T14:30:00Z"
        );
        // Digits past nanoseconds are dropped.
        assert_eq!(
            ts("2000-01-01T00:00:00.1234567891Z").subsec_nanos(),
            123_456_789
        );
    }

    #[test]
    fn malformed_and_out_of_range_timestamps_are_errors() {
        for bad in [
            "",
            "2009-02-13",
            "2009-02-13 23:31:30Z",
            "2009-02-13T23:31:30",
            "2009-02-13T23:31:30.Z",
            "2009-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2009-02-13T24:00:00Z",
            "2009-02-13T23:60:00Z",
            "2009-02-13T23:59:60Z",
            "2009-02-13T23:31:30+24:00",
            "2009-02-13T23:31:30+0100",
            "2009-02-13T23:31:30Zjunk",
            "209-02-13T23:31:30Z",
            "1000000000-01-01T00:00:00Z",
            "+2009-02-13T23:31:30Z",
        ] {
            assert!(
                matches!(bad.parse::<Timestamp>(), Err(TimeError::Syntax(_))),
                "{bad:?}"
            );
        }
        for out in [
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+00:01",
            "10000-01-01T00:00:00Z",
        ] {
            assert_eq!(
                out.parse::<Timestamp>(),
                Err(TimeError::Range("timestamp")),
                "{out}"
            );
        }
        assert!(Timestamp::from_unix(MAX_SECS + 1, 0).is_none());
        assert!(Timestamp::from_unix(0, 1_000_000_000).is_none());
    }

    #[test]
    fn durations_parse_go_syntax() {
        for (text, nanos) in [
            ("0", 0),
            ("1h30m", 5_400_000_000_000),
            ("-1.5s", -1_500_000_000),
            ("+2s", 2_000_000_000),
            ("100ms", 100_000_000),
            ("1us", 1_000),
            ("1µs", 1_000),
            ("1μs", 1_000),
            ("1ns", 1),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("1h1m1s1ms1us1ns", 3_661_001_001_001),
            ("0.000000001s", 1),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("2562047h47m16.854775807s", i64::MAX),
        ] {
            assert_eq!(dur(text).as_nanos(), nanos, "{text}");
        }
    }

    #[test]
    fn malformed_and_out_of_range_durations_are_errors() {
        for bad in [
            "", "-", "s", "1", "1d", "1.s.", ".s", "1h 30m", "1S", "--1s", "1e3s",
        ] {
            assert!(
                matches!(bad.parse::<Duration>(), Err(TimeError::Syntax(_))),
                "{bad:?}"
            );
        }
        for out in [
            "9223372036854775808ns",
            "320000000000s",
            "-320000000000s",
            "2562048h",
            "99999999999999999999999999h",
        ] {
            assert_eq!(
                out.parse::<Duration>(),
                Err(TimeError::Range("duration")),
                "{out}"
            );
        }
    }

    #[test]
    fn durations_print_as_seconds() {
        for (text, printed) in [
            ("1000000s", "1000000s"),
            ("1h30m", "5400s"),
            ("-1.5s", "-1.5s"),
            ("100ms", "0.1s"),
            ("1ns", "0.000000001s"),
            ("0", "0s"),
            ("-9223372036854775808ns", "-9223372036.854775808s"),
        ] {
            assert_eq!(dur(text).to_string(), printed, "{text}");
        }
    }

    #[test]
    fn arithmetic_checks_ranges() {
        let t = ts("2009-02-13T23:00:00Z");
        assert_eq!(
            t.checked_add(dur("240s")).unwrap(),
            ts("2009-02-13T23:04:00Z")
        );
        assert_eq!(
            t.checked_sub(dur("1h")).unwrap(),
            ts("2009-02-13T22:00:00Z")
        );
        assert_eq!(
            ts("2009-02-13T23:31:00Z")
                .checked_duration_since(ts("2009-02-13T23:29:00Z"))
                .unwrap(),
            dur("120s")
        );
        assert!(Timestamp::MAX.checked_add(dur("1ns")).is_none());
        assert!(Timestamp::MIN.checked_sub(dur("1ns")).is_none());
        assert!(
            Timestamp::MAX
                .checked_duration_since(Timestamp::MIN)
                .is_none()
        );
        assert!(Duration::MAX.checked_add(dur("1ns")).is_none());
        assert!(Duration::MIN.checked_sub(dur("1ns")).is_none());
    }

    #[test]
    fn accessors_read_the_calendar_in_a_zone() {
        let t = ts("2009-02-13T23:31:30.123Z");
        let utc = TimeZone::Utc;
        let at = |field, zone: &TimeZone| t.field(field, zone);
        assert_eq!(at(TimeField::FullYear, &utc), 2009);
        assert_eq!(at(TimeField::Month, &utc), 1);
        assert_eq!(at(TimeField::DayOfYear, &utc), 43);
        assert_eq!(at(TimeField::DayOfMonth, &utc), 12);
        assert_eq!(at(TimeField::Date, &utc), 13);
        assert_eq!(at(TimeField::DayOfWeek, &utc), 5);
        assert_eq!(at(TimeField::Hours, &utc), 23);
        assert_eq!(at(TimeField::Minutes, &utc), 31);
        assert_eq!(at(TimeField::Seconds, &utc), 30);
        assert_eq!(at(TimeField::Milliseconds, &utc), 123);
        let sydney = TimeZone::parse("Australia/Sydney").unwrap();
        assert_eq!(at(TimeField::Date, &sydney), 14);
        assert_eq!(at(TimeField::DayOfWeek, &sydney), 6);
        let kathmandu = TimeZone::parse("Asia/Kathmandu").unwrap();
        assert_eq!(at(TimeField::Minutes, &kathmandu), 16);
        assert_eq!(at(TimeField::Hours, &TimeZone::parse("02:00").unwrap()), 1);
        assert_eq!(
            at(TimeField::Hours, &TimeZone::parse("-02:30").unwrap()),
            21
        );
        // Daylight saving time: Berlin is UTC+1 in winter, UTC+2 in summer.
        let berlin = TimeZone::parse("Europe/Berlin").unwrap();
        assert_eq!(
            ts("2025-01-15T08:00:00Z").field(TimeField::Hours, &berlin),
            9
        );
        assert_eq!(
            ts("2025-07-15T08:00:00Z").field(TimeField::Hours, &berlin),
            10
        );
        // The year's first day is day 0, the last of a leap year day 365.
        assert_eq!(
            ts("2024-12-31T12:00:00Z").field(TimeField::DayOfYear, &utc),
            365
        );
        assert_eq!(
            ts("0001-01-01T00:00:00Z").field(TimeField::DayOfWeek, &utc),
            1
        );
    }

    #[test]
    fn time_zones_are_iana_names_or_offsets() {
        for good in [
            "UTC",
            "US/Central",
            "America/St_Johns",
            "+08:00",
            "-00:00",
            "2:5",
        ] {
            assert!(TimeZone::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "Mars/Base",
            "",
            "utc",
            "24:00",
            "+01:60",
            "ab:00",
            "+1:2:3",
            "+:30",
        ] {
            assert!(TimeZone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duration_accessors_truncate_toward_zero() {
        assert_eq!(dur("10000s").field(TimeField::Hours), Some(2));
        assert_eq!(dur("3730s").field(TimeField::Minutes), Some(62));
        assert_eq!(dur("-3730s").field(TimeField::Minutes), Some(-62));
        assert_eq!(dur("1.5s").field(TimeField::Milliseconds), Some(1500));
        assert_eq!(dur("1.5s").field(TimeField::Date), None);
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in (-719_162..2_932_896).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    proptest! {
        #[test]
        fn duration_strings_round_trip(nanos in any::<i64>()) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(d.to_string().parse::<Duration>(), Ok(d));
        }

        #[test]
        fn duration_parser_never_panics(text in "\\PC{0,24}") {
            let _ = text.parse::<Duration>();
        }

        #[test]
        fn duration_parser_never_panics_near_the_syntax(
            text in "[-+]?([0-9]{0,22}(\\.[0-9]{0,22})?(ns|us|µs|ms|s|m|h|x|)){1,4}"
        ) {
            if let Ok(d) = text.parse::<Duration>() {
                prop_assert_eq!(d.to_string().parse::<Duration>(), Ok(d));
            }
        }

        #[test]
        fn timestamp_strings_round_trip(secs in MIN_SECS..=MAX_SECS, nanos in 0u32..1_000_000_000) {
            let t = Timestamp::from_unix(secs, nanos).unwrap();
            prop_assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }

        #[test]
        fn timestamp_parser_never_panics(text in "\\PC{0,40}") {
            let _ = text.parse::<Timestamp>();
        }
    }
}
