//! Human-friendly units in the config file: durations (`250ms`, `1m30s`) and byte sizes
//! (`64KiB`, `10MB`).
//!
//! Both reject bare numbers where the unit would be a guess, and their errors say what a
//! valid value looks like, because the message is all a user sees.

use std::fmt;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const DURATION_EXPECTED: &str = "a number followed by ms, s, m, h or d (e.g. \"30s\")";

/// Duration units, largest first; compound values must use them in this order.
const DURATION_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// A length of time written as `250ms`, `5s`, `2m`, `1h`, `1d` or a compound such as `1m30s`.
///
/// Millisecond precision is all the file can express, so it is all this type keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }

    pub fn as_std(&self) -> std::time::Duration {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration_millis(s)
            .map(Self::from_millis)
            .ok_or_else(|| format!("invalid duration {s:?}: expected {DURATION_EXPECTED}"))
    }
}

/// Parses `<digits><unit>` pairs with strictly decreasing units; `None` on any mistake.
fn parse_duration_millis(s: &str) -> Option<u64> {
    let mut rest = s;
    let mut total: u64 = 0;
    // Index into DURATION_UNITS of the smallest unit seen so far, so `30s1m` is rejected.
    let mut next_unit = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let offset = DURATION_UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)?;
        let (_, millis) = DURATION_UNITS[next_unit + offset];
        next_unit += offset + 1;
        total = total.checked_add(number.checked_mul(millis)?)?;
    }
    Some(total)
}

/// The shortest string that parses back to `millis`: every unit is tried as the largest
/// one, the remainder is spelled greedily, and the shortest spelling wins (larger units on
/// a tie, so a day is `1d` rather than `24h`).
fn format_duration_millis(millis: u64) -> String {
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut best: Option<String> = None;
    for start in 0..DURATION_UNITS.len() {
        let mut rest = millis;
        let mut out = String::new();
        for (unit, size) in &DURATION_UNITS[start..] {
            let n = rest / size;
            if n > 0 {
                out.push_str(&format!("{n}{unit}"));
                rest -= n * size;
            }
        }
        if best.as_ref().is_none_or(|b| out.len() < b.len()) {
            best = Some(out);
        }
    }
    best.unwrap_or_default()
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        f.write_str(&format_duration_millis(millis))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl DurationVisitor {
    /// A bare number is the most likely mistake, so its error names the fix.
    fn bare<E: de::Error>(n: impl fmt::Display) -> E {
        E::custom(format!(
            "invalid duration {n}: a bare number has no unit; expected {DURATION_EXPECTED}"
        ))
    }
}

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DURATION_EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(Self::bare(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(Self::bare(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(Self::bare(v))
    }
}

const BYTES_EXPECTED: &str = "a number of bytes, optionally followed by B, KiB, MiB, GiB, TiB, \
     KB, MB, GB or TB (e.g. \"64KiB\")";

/// Size units; binary ones first so serialisation prefers them on a tie.
const BYTE_UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

/// A number of bytes written as an integer or as `64KiB`, `10MiB`, `1GiB` (binary) or
/// `10KB`, `10MB`, `1GB` (decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn bytes(&self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_bytes(s)
            .map(ByteSize)
            .ok_or_else(|| format!("invalid size {s:?}: expected {BYTES_EXPECTED}"))
    }
}

fn parse_bytes(s: &str) -> Option<u64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let number: u64 = s[..digits].parse().ok()?;
    // One space between number and unit reads naturally (`10 MiB`), so allow it.
    let unit = s[digits..].strip_prefix(' ').unwrap_or(&s[digits..]);
    if unit.is_empty() {
        return Some(number);
    }
    let (_, size) = BYTE_UNITS.iter().find(|(u, _)| *u == unit)?;
    number.checked_mul(*size)
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = BYTE_UNITS
            .iter()
            .filter(|(_, size)| *size > 1 && self.0 != 0 && self.0 % size == 0)
            .map(|(unit, size)| format!("{}{unit}", self.0 / size))
            .min_by_key(String::len);
        match unit {
            Some(s) => f.write_str(&s),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for ByteSize {
    /// Whole units serialise as a string (`10MiB`); anything else as a plain integer.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.to_string();
        if text.bytes().all(|b| b.is_ascii_digit()) {
            s.serialize_u64(self.0)
        } else {
            s.serialize_str(&text)
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(BYTES_EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
        Err(E::invalid_value(Unexpected::Float(v), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let ok = [
            ("250ms", 250),
            ("5s", 5_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("1m30s", 90_000),
            ("1h2m3s4ms", 3_723_004),
            ("0s", 0),
        ];
        for (text, millis) in ok {
            assert_eq!(
                text.parse::<Duration>(),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
    }

    #[test]
    fn durations_reject() {
        for bad in [
            "", "5", "5x", "s", "1.5s", "30s1m", "1s1s", " 5s", "5 s", "5S", "-1s",
        ] {
            let err = bad.parse::<Duration>().err().unwrap_or_default();
            assert!(
                err.contains("expected a number followed by ms, s, m, h or d"),
                "{bad}: {err}"
            );
        }
        let err = "5x".parse::<Duration>().err().unwrap_or_default();
        assert_eq!(
            err,
            "invalid duration \"5x\": expected a number followed by ms, s, m, h or d (e.g. \"30s\")"
        );
    }

    #[test]
    fn durations_round_trip_shortest() {
        let cases = [
            (0, "0s"),
            (250, "250ms"),
            (1_500, "1500ms"),
            (90_000, "90s"),
            (86_400_000, "1d"),
            (90_000_000, "25h"),
            (3_723_004, "62m3s4ms"),
        ];
        for (millis, text) in cases {
            let d = Duration::from_millis(millis);
            assert_eq!(d.to_string(), text);
            assert_eq!(text.parse::<Duration>(), Ok(d));
        }
    }

    #[test]
    fn sizes_parse() {
        let ok = [
            ("512", 512),
            ("64KiB", 65_536),
            ("10MiB", 10_485_760),
            ("1GiB", 1_073_741_824),
            ("10KB", 10_000),
            ("10MB", 10_000_000),
            ("1GB", 1_000_000_000),
            ("10 MiB", 10_485_760),
            ("7B", 7),
        ];
        for (text, bytes) in ok {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
        for bad in [
            "",
            "MiB",
            "10mb",
            "10 XB",
            "1.5MiB",
            "-1",
            "99999999999999TiB",
        ] {
            let err = bad.parse::<ByteSize>().err().unwrap_or_default();
            assert!(err.contains("expected a number of bytes"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes_round_trip() {
        for bytes in [
            0,
            1,
            512,
            1000,
            1024,
            65_536,
            10_000_000,
            10_485_760,
            1_073_741_825,
        ] {
            let text = ByteSize(bytes).to_string();
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
        assert_eq!(ByteSize(10 * 1024 * 1024).to_string(), "10MiB");
        assert_eq!(ByteSize(10_000).to_string(), "10KB");
        assert_eq!(ByteSize(1_500).to_string(), "1500");
    }

    #[test]
    fn serde_round_trip() {
        use serde_json::{Value, from_value, json, to_value};
        let d = Duration::from_secs(90);
        assert_eq!(to_value(d).ok(), Some(json!("90s")));
        assert_eq!(from_value::<Duration>(json!("1m30s")).ok(), Some(d));
        let err = from_value::<Duration>(json!(30))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid duration 30: a bare number has no unit; expected a number followed by ms, s, m, h or d (e.g. \"30s\")"
            )
        );
        for (size, text) in [
            (ByteSize(10 << 20), json!("10MiB")),
            (ByteSize(1500), json!(1500)),
        ] {
            assert_eq!(to_value(size).ok(), Some(text.clone()));
            assert_eq!(from_value::<ByteSize>(text).ok(), Some(size));
        }
        assert!(from_value::<ByteSize>(Value::from(1.5)).is_err());
    }
}
