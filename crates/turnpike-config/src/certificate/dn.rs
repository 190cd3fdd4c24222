//! Distinguished names in RFC 4514 string form: the canonical form the gateway writes a
//! certificate's subject and issuer in, and the parser that brings a configured DN to
//! that same form, so that equal names compare equal as strings.
//!
//! The canonical form: RDNs most specific first, separated by `,` without spaces,
//! multi-valued RDNs joined by `+` in the certificate's order; attribute types RFC 4514
//! §3 names by their upper-case short name, any other as its dotted OID with the value as
//! `#` and the hex of its DER encoding (§2.4); values escaped exactly as [`escape_value`]
//! does, whichever escapes the configured text used.

/// The attribute types written by name (RFC 4514 §3), by OID.
const NAMED: [(&str, &str); 9] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// Why a configured DN cannot be brought to canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    #[error("the DN is empty")]
    Empty,
    #[error("`{0}` is not `KEY=value`")]
    NotPair(String),
    #[error(
        "`{0}` is not an attribute type (a name such as `CN` or a dotted OID; RFC 4514 puts no spaces around `,` `+` `=`)"
    )]
    BadType(String),
    #[error(
        "attribute type `{0}` is not one of CN, L, ST, O, OU, C, STREET, DC, UID; write it as its dotted OID"
    )]
    UnknownType(String),
    #[error(
        "the value of `{0}` must be `#` and the hex of its DER encoding, as certificates' values of that type are written"
    )]
    NeedsHex(String),
    #[error("`{0}` is not an even number of hex digits after `#`")]
    Hex(String),
    #[error(
        "bad escape in `{0}`: `\\` must be followed by one of `\"+,;<>\\#=` or a space, or by two hex digits"
    )]
    Escape(String),
    #[error("`{0}` must be escaped with `\\` in `{1}`")]
    Unescaped(char, String),
    #[error("escaped bytes in `{0}` are not UTF-8")]
    Utf8(String),
}

/// The short name RFC 4514 §3 gives the attribute type `oid`, if any.
pub fn attribute_name(oid: &str) -> Option<&'static str> {
    NAMED.iter().find(|(o, _)| *o == oid).map(|(_, name)| *name)
}

/// A configured DN in canonical form (see the module docs), or what is wrong with it.
pub fn canonical_dn(dn: &str) -> Result<String, DnError> {
    if dn.is_empty() {
        return Err(DnError::Empty);
    }
    let mut out = String::with_capacity(dn.len());
    for (i, rdn) in split_unescaped(dn, ',').into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, pair) in split_unescaped(rdn, '+').into_iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            attribute(pair, &mut out)?;
        }
    }
    Ok(out)
}

/// Escapes a value as RFC 4514 §2.4 requires: `"+,;<>\` anywhere, `#` or a space at the
/// start, a space at the end, and NUL.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, ch) in value.chars().enumerate() {
        match ch {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(ch),
        }
    }
    out
}

/// Splits on `sep` where it is not escaped. An escape covers one character; a hex-pair
/// escape (`\2C`) has no separator in it either way.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, ch) in s.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            _ if ch == sep => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// One `type=value`, appended to `out` in canonical form.
fn attribute(pair: &str, out: &mut String) -> Result<(), DnError> {
    let (ty, value) = pair
        .split_once('=')
        .ok_or_else(|| DnError::NotPair(pair.to_owned()))?;
    let (ty, named) = attribute_type(ty)?;
    out.push_str(&ty);
    out.push('=');
    if let Some(hex) = value.strip_prefix('#') {
        if hex.is_empty() || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DnError::Hex(pair.to_owned()));
        }
        out.push('#');
        out.push_str(&hex.to_ascii_lowercase());
    } else if named {
        out.push_str(&escape_value(&unescape(value, pair)?));
    } else {
        // A certificate's value of an unnamed type is written as hex, so text never matches.
        return Err(DnError::NeedsHex(ty));
    }
    Ok(())
}

/// The canonical spelling of an attribute type and whether it is one written by name.
/// Names are case-insensitive; the OID of a named type becomes its name.
fn attribute_type(ty: &str) -> Result<(String, bool), DnError> {
    let mut bytes = ty.bytes();
    let descr = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let oid = !ty.is_empty()
        && ty
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if descr {
        let upper = ty.to_ascii_uppercase();
        match NAMED.iter().find(|(_, name)| *name == upper) {
            Some((_, name)) => Ok(((*name).to_owned(), true)),
            None => Err(DnError::UnknownType(ty.to_owned())),
        }
    } else if oid {
        Ok(match attribute_name(ty) {
            Some(name) => (name.to_owned(), true),
            None => (ty.to_owned(), false),
        })
    } else {
        Err(DnError::BadType(ty.to_owned()))
    }
}

/// The text of a string value: escapes undone, checked to be what RFC 4514 §3 allows
/// unescaped. `pair` is only for messages.
fn unescape(value: &str, pair: &str) -> Result<String, DnError> {
    let bytes = value.as_bytes();
    let mut raw = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                let h = std::str::from_utf8(h).ok()?;
                u8::from_str_radix(h, 16).ok()
            });
            match (hex, bytes.get(i + 1)) {
                (Some(byte), _) => {
                    raw.push(byte);
                    i += 3;
                }
                (None, Some(&c)) if b"\"+,;<>\\#= ".contains(&c) => {
                    raw.push(c);
                    i += 2;
                }
                _ => return Err(DnError::Escape(pair.to_owned())),
            }
            continue;
        }
        let edge_space = b == b' ' && (i == 0 || i == bytes.len() - 1);
        if b"\";<>".contains(&b) || edge_space || b == 0 {
            return Err(DnError::Unescaped(char::from(b), pair.to_owned()));
        }
        raw.push(b);
        i += 1;
    }
    String::from_utf8(raw).map_err(|_| DnError::Utf8(pair.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_dns_come_to_the_form_certificates_are_written_in() {
        let cases = [
            ("CN=alice,O=Example", "CN=alice,O=Example"),
            ("cn=alice,o=Example", "CN=alice,O=Example"),
            ("2.5.4.3=alice,2.5.4.6=DE", "CN=alice,C=DE"),
            ("CN=alice,O=Example\\, Inc.", "CN=alice,O=Example\\, Inc."),
            ("CN=alice,O=Example\\2C Inc.", "CN=alice,O=Example\\, Inc."),
            ("CN=J\\C3\\BCrgen", "CN=Jürgen"),
            ("CN=a+UID=b,DC=example", "CN=a+UID=b,DC=example"),
            ("CN=\\#1\\ ", "CN=\\#1\\ "),
            ("CN=a=b", "CN=a=b"),
            (
                "1.2.840.113549.1.9.1=#0C03624078",
                "1.2.840.113549.1.9.1=#0c03624078",
            ),
        ];
        for (dn, canonical) in cases {
            assert_eq!(canonical_dn(dn).as_deref(), Ok(canonical), "{dn}");
            // Canonical is a fixed point, so certificate-side names parse to themselves.
            assert_eq!(canonical_dn(canonical).as_deref(), Ok(canonical));
        }
    }

    #[test]
    fn malformed_dns_are_refused() {
        let err = |dn: &str| canonical_dn(dn).unwrap_err();
        assert_eq!(err(""), DnError::Empty);
        assert_eq!(err("alice"), DnError::NotPair("alice".into()));
        assert_eq!(err("CN=a,"), DnError::NotPair(String::new()));
        assert_eq!(err("CN=a, O=b"), DnError::BadType(" O".into()));
        assert_eq!(err("E=a@b"), DnError::UnknownType("E".into()));
        assert_eq!(err("1.2.3=x"), DnError::NeedsHex("1.2.3".into()));
        assert_eq!(err("CN=#abc"), DnError::Hex("CN=#abc".into()));
        assert_eq!(err("CN=a\\x"), DnError::Escape("CN=a\\x".into()));
        assert_eq!(err("CN=a\\"), DnError::Escape("CN=a\\".into()));
        assert_eq!(err("CN=a;b"), DnError::Unescaped(';', "CN=a;b".into()));
        assert_eq!(err("CN= a"), DnError::Unescaped(' ', "CN= a".into()));
        assert_eq!(err("CN=\\FF"), DnError::Utf8("CN=\\FF".into()));
    }

    #[test]
    fn escaping_follows_rfc4514() {
        assert_eq!(escape_value(" #a+b;c\"d "), "\\ #a\\+b\\;c\\\"d\\ ");
        assert_eq!(escape_value("#x"), "\\#x");
        assert_eq!(escape_value("plain"), "plain");
    }
}
