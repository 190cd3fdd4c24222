//! `${VAR}` substitution in string values, done on the parsed document so every error
//! still points at the scalar that was written.
//!
//! `${VAR}` is replaced by the variable, `${VAR:-default}` falls back when it is unset or
//! empty (as in the shell), and `$${` writes a literal `${`. Only values are substituted,
//! never keys, so the shape of the document is fixed by the file itself.

use serde_json::Value;

use crate::path;
use crate::problem::Problem;
use crate::yaml::{self, PathIndex};

/// Where environment variables come from; the process environment outside tests.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Substitutes every string in `value`, returning one problem per bad reference.
pub(crate) fn substitute(value: &mut Value, index: &PathIndex, env: Env<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    walk(value, "", index, env, &mut problems);
    problems
}

fn walk(value: &mut Value, at: &str, index: &PathIndex, env: Env<'_>, out: &mut Vec<Problem>) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, &path::index(at, i), index, env, out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                walk(item, &path::key(at, k), index, env, out);
            }
        }
        Value::String(s) if s.contains('$') => match expand(s, env) {
            Ok(expanded) if expanded != *s => {
                // An unquoted `${PORT}` should become the number a literal would have been.
                *value = if index.is_plain(at) {
                    yaml::resolve_plain(&expanded)
                } else {
                    Value::String(expanded)
                };
            }
            Ok(_) => {}
            Err(messages) => out.extend(messages.into_iter().map(|m| Problem::at(at, m))),
        },
        _ => {}
    }
}

/// Expands one string; on failure returns every problem in it, not just the first.
fn expand(s: &str, env: Env<'_>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                errors.push(format!(
                    "unterminated variable reference in {s:?}: expected ${{NAME}} or ${{NAME:-default}} (write $${{ for a literal ${{)"
                ));
                break;
            };
            match lookup(&after[..end], env) {
                Ok(v) => out.push_str(&v),
                Err(e) => errors.push(e),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Resolves the inside of one `${...}`.
fn lookup(reference: &str, env: Env<'_>) -> Result<String, String> {
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(format!(
            "invalid variable reference `${{{reference}}}`: expected ${{NAME}} or ${{NAME:-default}} where NAME is letters, digits and `_`"
        ));
    }
    match (env(name), default) {
        (Some(v), Some(d)) if v.is_empty() => Ok(d.to_owned()),
        (Some(v), _) => Ok(v),
        (None, Some(d)) => Ok(d.to_owned()),
        (None, None) => Err(format!(
            "environment variable `{name}` is not set (write `${{{name}:-default}}` to give a default)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.internal".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands() {
        let cases = [
            ("plain", "plain"),
            ("${HOST}:5432", "db.internal:5432"),
            ("${MISSING:-fallback}", "fallback"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${HOST:-fallback}", "db.internal"),
            ("x${EMPTY}y", "xy"),
            ("$${HOST}", "${HOST}"),
            ("cost $5 $", "cost $5 $"),
            ("${MISSING:-}", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &env), Ok(want.to_owned()), "{input}");
        }
    }

    #[test]
    fn reports_every_bad_reference() {
        let errors = expand("${A}/${B}", &env).err().unwrap_or_default();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].contains("`A` is not set"));
        assert!(errors[1].contains("`B` is not set"));
        let errors = expand("${1X}", &env).err().unwrap_or_default();
        assert!(errors[0].contains("invalid variable reference `${1X}`"));
        let errors = expand("${HOST", &env).err().unwrap_or_default();
        assert!(errors[0].contains("unterminated"));
    }
}
