//! Reading what an OAuth client sends: `application/x-www-form-urlencoded` bodies and
//! client credentials in an HTTP Basic header (RFC 6749 §2.3.1, §3.2).
//!
//! Both are percent-encoded the form way (`+` is a space), and RFC 6749 §2.3.1 encodes
//! the client id and secret *before* putting them into Basic, so a secret containing `:`
//! survives the split at the first colon.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::{AUTHORIZATION, CONTENT_TYPE};

/// Why a request could not be read; each becomes an `invalid_request` (or, for a broken
/// Basic header, `invalid_client`) with this description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the body must be application/x-www-form-urlencoded")]
    ContentType,
    #[error("the body is not a valid form of at most 16 KiB")]
    Body,
    #[error("a parameter is included more than once")]
    Repeated,
    #[error("the Authorization header is not valid HTTP Basic client authentication")]
    Basic,
}

/// A parsed form: decoded names and values. Parameters without a value are dropped,
/// because RFC 6749 §3.2 says to treat them as omitted.
#[derive(Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

/// Values may be secrets or tokens: only the parameter names are shown.
impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(k, _)| k))
            .finish()
    }
}

/// Most parameters one request may carry.
const MAX_PARAMS: usize = 32;

impl Form {
    /// Reads the body of an OAuth endpoint request; `None` is a body the proxy could not
    /// collect (too large or broken).
    pub fn read(headers: &HeaderMap, body: Option<&[u8]>) -> Result<Self, FormError> {
        let form_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form_type {
            return Err(FormError::ContentType);
        }
        Self::parse(body.ok_or(FormError::Body)?)
    }

    pub fn parse(body: &[u8]) -> Result<Self, FormError> {
        let text = std::str::from_utf8(body).map_err(|_| FormError::Body)?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            // OAuth requests carry a handful of parameters; a cap keeps the duplicate
            // check below cheap whatever a client sends.
            if names.len() == MAX_PARAMS {
                return Err(FormError::Body);
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name).ok_or(FormError::Body)?;
            let value = decode(value).ok_or(FormError::Body)?;
            // "MUST NOT be included more than once" (RFC 6749 §3.2), even when empty.
            if names.contains(&name) {
                return Err(FormError::Repeated);
            }
            names.push(name.clone());
            if !value.is_empty() {
                pairs.push((name, value));
            }
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes one form component: `+` is a space, `%XX` a byte; the result must be UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Client credentials from a request, wherever they were.
pub struct Credentials {
    pub client_id: String,
    pub secret: String,
    /// They came in a Basic header, so a failure must answer with a Basic challenge.
    pub basic: bool,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("basic", &self.basic)
            .finish_non_exhaustive()
    }
}

/// What the request says about the client.
#[derive(Debug)]
pub enum ClientAuth {
    Present(Credentials),
    /// No credentials at all (or a `client_id` without a secret: public clients do not
    /// exist here).
    Missing,
    /// Both Basic and body credentials: RFC 6749 §2.3 allows only one method.
    Both,
}

/// Finds the client credentials in a Basic header or the form body.
pub fn client_auth(headers: &HeaderMap, form: &Form) -> Result<ClientAuth, FormError> {
    let basic = basic(headers)?;
    let in_body = form.get("client_secret").map(|secret| Credentials {
        client_id: form.get("client_id").unwrap_or_default().to_owned(),
        secret: secret.to_owned(),
        basic: false,
    });
    Ok(match (basic, in_body) {
        (Some(_), Some(_)) => ClientAuth::Both,
        (Some(creds), None) => {
            // A `client_id` next to Basic is allowed only if it names the same client.
            match form.get("client_id") {
                Some(id) if id != creds.client_id => ClientAuth::Both,
                _ => ClientAuth::Present(creds),
            }
        }
        (None, Some(creds)) if !creds.client_id.is_empty() => ClientAuth::Present(creds),
        (None, _) => ClientAuth::Missing,
    })
}

/// Credentials from `Authorization: Basic`, if that is the scheme used.
fn basic(headers: &HeaderMap) -> Result<Option<Credentials>, FormError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| FormError::Basic)?.trim();
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let raw = STANDARD
        .decode(encoded.trim())
        .map_err(|_| FormError::Basic)?;
    let raw = String::from_utf8(raw).map_err(|_| FormError::Basic)?;
    let (id, secret) = raw.split_once(':').ok_or(FormError::Basic)?;
    let client_id = decode(id).ok_or(FormError::Basic)?;
    let secret = decode(secret).ok_or(FormError::Basic)?;
    if client_id.is_empty() {
        return Err(FormError::Basic);
    }
    Ok(Some(Credentials {
        client_id,
        secret,
        basic: true,
    }))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn decodes_form_components() {
        assert_eq!(decode("a+b%20c%2B%3A").as_deref(), Some("a b c+:"));
        assert_eq!(decode("%E2%9C%93").as_deref(), Some("✓"));
        assert_eq!(decode("%"), None);
        assert_eq!(decode("%G1"), None);
        assert_eq!(decode("%FF"), None);
    }

    #[test]
    fn empty_values_are_omitted_and_repeats_refused() {
        let form = Form::parse(b"grant_type=client_credentials&scope=&x").unwrap();
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        assert_eq!(form.get("scope"), None);
        assert!(matches!(
            Form::parse(b"scope=a&scope=b"),
            Err(FormError::Repeated)
        ));
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=x")).collect();
        assert!(Form::parse(many[..MAX_PARAMS].join("&").as_bytes()).is_ok());
        assert!(matches!(
            Form::parse(many.join("&").as_bytes()),
            Err(FormError::Body)
        ));
    }

    fn basic_header(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        // "my%3Aclient:s%2Bcret+x" — RFC 6749 §2.3.1 encoding inside Basic.
        let encoded = STANDARD.encode("my%3Aclient:s%2Bcret+x");
        let h = basic_header(&format!("Basic {encoded}"));
        let ClientAuth::Present(c) = client_auth(&h, &Form::default()).unwrap() else {
            panic!("expected credentials");
        };
        assert_eq!(c.client_id, "my:client");
        assert_eq!(c.secret, "s+cret x");
        assert!(c.basic);
        assert!(matches!(
            client_auth(&basic_header("Basic !!!"), &Form::default()),
            Err(FormError::Basic)
        ));
    }

    #[test]
    fn one_method_only() {
        let encoded = STANDARD.encode("a:b");
        let h = basic_header(&format!("Basic {encoded}"));
        let body = Form::parse(b"client_id=a&client_secret=b").unwrap();
        assert!(matches!(client_auth(&h, &body), Ok(ClientAuth::Both)));
        let other = Form::parse(b"client_id=z").unwrap();
        assert!(matches!(client_auth(&h, &other), Ok(ClientAuth::Both)));
        let only_id = Form::parse(b"client_id=a").unwrap();
        assert!(matches!(
            client_auth(&HeaderMap::new(), &only_id),
            Ok(ClientAuth::Missing)
        ));
        assert!(matches!(
            client_auth(&HeaderMap::new(), &body),
            Ok(ClientAuth::Present(_))
        ));
    }
}
