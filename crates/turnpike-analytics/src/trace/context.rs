//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): parsing an incoming
//! `traceparent`, making new trace and span ids, and writing the `traceparent` sent on.
//!
//! A header that breaks any rule of the spec is treated as absent, so the gateway starts
//! a new trace instead of continuing one it cannot trust.

/// A 128-bit trace id; never all zeros.
pub type TraceId = [u8; 16];
/// A 64-bit span id; never all zeros.
pub type SpanId = [u8; 8];

/// What a valid incoming `traceparent` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: TraceId,
    /// The caller's span, parent of the gateway's server span.
    pub span_id: SpanId,
    /// The caller recorded its span (flag `01`): the gateway records too.
    pub sampled: bool,
}

/// Length of a version-00 `traceparent`: `00-` + 32 + `-` + 16 + `-` + 2.
const LEN: usize = 55;

/// Parses a `traceparent` value; `None` when it is malformed.
///
/// Version `00` must be exactly 55 characters. A higher version (not `ff`) may be longer,
/// as long as what follows the first 55 characters starts with `-`; its first four fields
/// are read as version 00's. Hex digits must be lower-case, and all-zero ids are invalid.
pub fn parse_traceparent(value: &[u8]) -> Option<Parent> {
    if value.len() < LEN {
        return None;
    }
    let version = hex_byte(&value[0..2])?;
    if version == 0xff || (version == 0 && value.len() != LEN) {
        return None;
    }
    if value.len() > LEN && value[LEN] != b'-' {
        return None;
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let mut trace_id = [0u8; 16];
    for (i, b) in trace_id.iter_mut().enumerate() {
        *b = hex_byte(&value[3 + 2 * i..5 + 2 * i])?;
    }
    let mut span_id = [0u8; 8];
    for (i, b) in span_id.iter_mut().enumerate() {
        *b = hex_byte(&value[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = hex_byte(&value[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// Two lower-case hex digits; upper case is not allowed by the spec.
fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some((digit(two[0])? << 4) | digit(two[1])?)
}

/// A random trace id (never zero).
pub fn new_trace_id() -> TraceId {
    fastrand::u128(1..).to_be_bytes()
}

/// A random span id (never zero).
pub fn new_span_id() -> SpanId {
    fastrand::u64(1..).to_be_bytes()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes` into `out` (which must be twice as long).
pub fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
}

/// Lower-case hex of `bytes`, as OTLP/JSON writes ids.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex_into(bytes, &mut out);
    out.into_iter().map(char::from).collect()
}

/// The version-00 `traceparent` for a request the gateway sends on, whose parent is
/// `span_id`. Only the sampled flag is set or not; other flags are not passed on.
pub fn traceparent(trace_id: &TraceId, span_id: &SpanId, sampled: bool) -> [u8; LEN] {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(trace_id, &mut out[3..35]);
    hex_into(span_id, &mut out[36..52]);
    if sampled {
        out[54] = b'1';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_spec_example() {
        let p = parse_traceparent(GOOD.as_bytes()).unwrap();
        assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p.span_id), "00f067aa0ba902b7");
        assert!(p.sampled);
        let unsampled = GOOD.replace("-01", "-00");
        assert!(!parse_traceparent(unsampled.as_bytes()).unwrap().sampled);
        // Unknown flags are ignored; only the sampled bit counts.
        let other = GOOD.replace("-01", "-08");
        assert!(!parse_traceparent(other.as_bytes()).unwrap().sampled);
    }

    #[test]
    fn rejects_what_the_spec_rejects() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ];
        for b in bad {
            assert_eq!(parse_traceparent(b.as_bytes()), None, "{b:?}");
        }
    }

    #[test]
    fn later_versions_are_read_as_00() {
        let longer = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(parse_traceparent(longer.as_bytes()).is_some());
        let exact = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(parse_traceparent(exact.as_bytes()).is_some());
    }

    #[test]
    fn writes_what_it_reads() {
        let p = parse_traceparent(GOOD.as_bytes()).unwrap();
        let out = traceparent(&p.trace_id, &p.span_id, true);
        assert_eq!(&out[..], GOOD.as_bytes());
        let out = traceparent(&p.trace_id, &p.span_id, false);
        assert!(out.ends_with(b"-00"));
        assert_ne!(new_trace_id(), [0; 16]);
        assert_ne!(new_span_id(), [0; 8]);
    }
}
