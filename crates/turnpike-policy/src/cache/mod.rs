//! The HTTP cache's rules, as pure functions over headers: directives, freshness and age
//! (RFC 9111, RFC 5861), what may be stored, and the cache key. Storage and the request
//! path use them; nothing here does I/O.

pub mod directives;
pub mod freshness;
pub mod key;
pub mod storable;

/// Header maps for the unit tests, from name/value pairs (repeated names append).
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        let name =
            http::HeaderName::from_bytes(k.as_bytes()).unwrap_or_else(|e| panic!("{k}: {e}"));
        h.append(name, v.parse().unwrap_or_else(|e| panic!("{v}: {e}")));
    }
    h
}
