//! Cache keys. The primary key is method + scheme + host + path + query (RFC 9111 §4.1:
//! HEAD shares GET's entry), optionally with the query's parameters sorted or some of
//! them ignored, plus extras the operator adds (a header, the consumer) so that responses
//! made for one consumer can never be served to another. The secondary key is made of
//! the request's values of the fields the stored response `Vary`s on.

use http::HeaderMap;

/// An extra part of the primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    /// A request header's value (absent and empty are the same).
    Header(http::HeaderName),
    /// The authenticated consumer (none for anonymous callers).
    Consumer,
}

/// How primary keys are made for one route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpec {
    /// Sort the query's parameters, so `?a=1&b=2` and `?b=2&a=1` share an entry.
    pub sort_query: bool,
    /// Query parameters left out of the key (tracking parameters, say).
    pub ignore_params: Vec<String>,
    pub extras: Vec<Extra>,
}

/// What a key is made of, from one request.
#[derive(Debug, Clone, Copy)]
pub struct KeyInput<'a> {
    /// `GET` for GET and HEAD (which share entries), `POST` for cached POSTs.
    pub method: &'a str,
    /// A cached POST's body: part of its key.
    pub body: Option<&'a [u8]>,
    pub scheme: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub consumer: Option<&'a str>,
}

impl KeySpec {
    /// The primary key; parts are length-prefixed so no value can pose as two.
    pub fn primary(&self, x: &KeyInput<'_>) -> Vec<u8> {
        let mut key = Vec::with_capacity(64 + x.path.len());
        part(&mut key, x.method.as_bytes());
        part(&mut key, x.scheme.as_bytes());
        // The gateway hands over hosts already lower-case; copy only when one is not.
        if x.host.bytes().any(|b| b.is_ascii_uppercase()) {
            part(&mut key, x.host.to_ascii_lowercase().as_bytes());
        } else {
            part(&mut key, x.host.as_bytes());
        }
        part(&mut key, x.path.as_bytes());
        part(&mut key, self.query(x.query.unwrap_or("")).as_bytes());
        for extra in &self.extras {
            match extra {
                Extra::Header(name) => {
                    let v = x.headers.get(name).map_or(&b""[..], |v| v.as_bytes());
                    part(&mut key, v);
                }
                Extra::Consumer => part(&mut key, x.consumer.unwrap_or("").as_bytes()),
            }
        }
        if let Some(body) = x.body {
            part(&mut key, body);
        }
        key
    }

    fn query<'q>(&self, query: &'q str) -> std::borrow::Cow<'q, str> {
        if !self.sort_query && self.ignore_params.is_empty() {
            return std::borrow::Cow::Borrowed(query);
        }
        let mut params: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split('=').next().unwrap_or("");
                !self.ignore_params.iter().any(|i| i == name)
            })
            .collect();
        if self.sort_query {
            params.sort_unstable();
        }
        std::borrow::Cow::Owned(params.join("&"))
    }
}

fn part(key: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(bytes);
}

/// The secondary key: the request's values of `names` (lower-case), normalised the way
/// RFC 9111 §4.1 allows (whitespace around commas, several lines joined).
pub fn secondary(names: &[String], headers: &HeaderMap) -> Vec<u8> {
    let mut key = Vec::new();
    for name in names {
        let mut value = String::new();
        for (i, v) in headers.get_all(name.as_str()).iter().enumerate() {
            if i > 0 {
                value.push(',');
            }
            let v = String::from_utf8_lossy(v.as_bytes());
            let parts: Vec<&str> = v.split(',').map(str::trim).collect();
            value.push_str(&parts.join(","));
        }
        part(&mut key, name.as_bytes());
        part(&mut key, value.as_bytes());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        query: Option<&'a str>,
        headers: &'a HeaderMap,
        consumer: Option<&'a str>,
    ) -> KeyInput<'a> {
        KeyInput {
            method: "GET",
            body: None,
            scheme: "https",
            host: "API.example.com",
            path: "/items",
            query,
            headers,
            consumer,
        }
    }

    #[test]
    fn query_normalisation_is_opt_in() {
        let h = HeaderMap::new();
        let plain = KeySpec::default();
        assert_ne!(
            plain.primary(&input(Some("a=1&b=2"), &h, None)),
            plain.primary(&input(Some("b=2&a=1"), &h, None))
        );
        let sorted = KeySpec {
            sort_query: true,
            ignore_params: vec!["utm_source".into()],
            ..KeySpec::default()
        };
        assert_eq!(
            sorted.primary(&input(Some("a=1&b=2"), &h, None)),
            sorted.primary(&input(Some("b=2&utm_source=x&a=1"), &h, None))
        );
        assert_eq!(
            plain.primary(&input(None, &h, None)),
            plain.primary(&input(Some(""), &h, None))
        );
    }

    #[test]
    fn consumers_and_headers_split_entries() {
        let h = HeaderMap::new();
        let spec = KeySpec {
            extras: vec![Extra::Consumer],
            ..KeySpec::default()
        };
        let alice = spec.primary(&input(None, &h, Some("alice")));
        assert_ne!(alice, spec.primary(&input(None, &h, Some("bob"))));
        assert_ne!(alice, spec.primary(&input(None, &h, None)));
        // "alice" + "" never reads as "ali" + "ce".
        let two = KeySpec {
            extras: vec![
                Extra::Consumer,
                Extra::Header(http::HeaderName::from_static("x-t")),
            ],
            ..KeySpec::default()
        };
        let mut ce = HeaderMap::new();
        ce.insert("x-t", "ce".parse().unwrap());
        assert_ne!(
            two.primary(&input(None, &h, Some("alice"))),
            two.primary(&input(None, &ce, Some("ali")))
        );
    }

    #[test]
    fn secondary_keys_normalise_whitespace_and_lines() {
        let names = vec!["accept-encoding".to_owned()];
        let mut a = HeaderMap::new();
        a.insert("accept-encoding", "gzip,  br".parse().unwrap());
        let mut b = HeaderMap::new();
        b.append("accept-encoding", "gzip".parse().unwrap());
        b.append("accept-encoding", "br".parse().unwrap());
        assert_eq!(secondary(&names, &a), secondary(&names, &b));
        assert_ne!(secondary(&names, &a), secondary(&names, &HeaderMap::new()));
    }
}
