//! Paths to a setting inside the document, as users read them in error messages:
//! `routes[2].upstream`, `server.max_body_bytes`, `routes[0].headers["x.y"]`.
//!
//! Paths are plain strings so errors and the position index share one spelling; keys that
//! would be ambiguous in dotted form are written quoted, which keeps [`parent`] exact.

/// The path of `key` inside the mapping at `parent` (`""` is the document root).
pub(crate) fn key(parent: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (simple, parent.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{parent}.{key}"),
        // Debug-quoting escapes `"`, so `["` can only ever open a quoted key.
        (false, _) => format!("{parent}[{key:?}]"),
    }
}

/// The path of item `index` of the sequence at `parent`.
pub(crate) fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The path one level up, or `None` at the document root.
pub(crate) fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = if path.ends_with("\"]") {
        path.rfind("[\"")
    } else if path.ends_with(']') {
        path.rfind('[')
    } else {
        Some(path.rfind('.').unwrap_or(0))
    };
    Some(&path[..cut.unwrap_or(0)])
}

/// True when `path` is `ancestor` or lies below it.
pub(crate) fn is_within(path: &str, ancestor: &str) -> bool {
    match path.strip_prefix(ancestor) {
        Some(rest) => ancestor.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_walks_up() {
        let p = key(&index(&key("", "routes"), 2), "upstream");
        assert_eq!(p, "routes[2].upstream");
        assert_eq!(parent(&p), Some("routes[2]"));
        assert_eq!(parent("routes[2]"), Some("routes"));
        assert_eq!(parent("routes"), Some(""));
        assert_eq!(parent(""), None);
        let q = key("routes[0].headers", "x.y[\"]");
        assert_eq!(q, r#"routes[0].headers["x.y[\"]"]"#);
        assert_eq!(parent(&q), Some("routes[0].headers"));
        assert_eq!(key("", "a b"), "[\"a b\"]");
        assert_eq!(parent("[\"a b\"]"), Some(""));
    }

    #[test]
    fn within() {
        assert!(is_within("routes[1].x", "routes[1]"));
        assert!(is_within("routes[1]", "routes[1]"));
        assert!(!is_within("routes[10]", "routes[1]"));
        assert!(is_within("a", ""));
    }
}
