//! The YAML 1.2 core schema: what an unquoted scalar means (null, boolean, integer,
//! float, or else a string), so `on` and `yes` stay strings as they do in YAML 1.2.

use serde_json::Value;

/// Resolves an unquoted scalar with the YAML 1.2 core schema.
pub(crate) fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = resolve_int(s) {
        return n;
    }
    if is_core_float(s) {
        // `.inf` and `.nan` have no JSON form, so they stay strings and fail as such.
        if let Some(n) = s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(s.to_owned())
}

fn resolve_int(s: &str) -> Option<Value> {
    let radix = |prefix: &str, radix: u32| {
        let digits = s.strip_prefix(prefix)?;
        (!digits.is_empty()).then(|| u64::from_str_radix(digits, radix).ok())?
    };
    if let Some(n) = radix("0x", 16).or_else(|| radix("0o", 8)) {
        return Some(Value::from(n));
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Ok(n) = s.strip_prefix('+').unwrap_or(s).parse::<u64>() {
        return Some(Value::from(n));
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(Value::from(n));
    }
    // Too large for an integer: the core schema still calls it a number.
    s.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()),
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema() {
        let cases = [
            ("~", Value::Null),
            ("", Value::Null),
            ("True", Value::Bool(true)),
            ("false", Value::Bool(false)),
            ("42", Value::from(42)),
            ("-7", Value::from(-7)),
            ("+7", Value::from(7)),
            ("0x1F", Value::from(31)),
            ("0o17", Value::from(15)),
            ("1.5", Value::from(1.5)),
            ("1e3", Value::from(1000.0)),
            (".5", Value::from(0.5)),
            ("yes", Value::from("yes")),
            ("127.0.0.1:8000", Value::from("127.0.0.1:8000")),
            ("1.2.3", Value::from("1.2.3")),
            ("0x", Value::from("0x")),
            (".inf", Value::from(".inf")),
        ];
        for (text, want) in cases {
            assert_eq!(resolve_plain(text), want, "{text}");
        }
        let d = super::super::parse("a: '42'\nb: \"true\"\nc: 42\nd: !!str 42\n");
        let want = serde_json::json!({"a": "42", "b": "true", "c": 42, "d": "42"});
        assert_eq!(d.map(|d| d.value).ok(), Some(want));
    }
}
