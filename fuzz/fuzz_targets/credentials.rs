//! Credential parsers on arbitrary input: API-key ids, query parameters and cookies as the
//! key sources read them, Basic credentials and OAuth form bodies. None may panic, and
//! what they return must come from the input.
#![no_main]

use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use turnpike_policy::oauth::form::Form;
use turnpike_policy::{RequestView, basic_auth, key_auth};

fuzz_target!(|data: &[u8]| {
    if let Some((user, pass)) = basic_auth::parse(data) {
        assert!(!user.contains(':'));
        let _ = pass;
    }
    let _ = Form::parse(data).map(|form| form.get("grant_type").map(str::len));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(id) = key_auth::key_id(text) {
        assert!(text.contains(id));
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(text) {
        headers.insert(http::header::COOKIE, v);
    }
    let uri = format!("/p?{}", text.replace(['#', ' '], ""));
    let uri: Uri = uri.parse().unwrap_or_else(|_| Uri::from_static("/"));
    let view = RequestView {
        method: &Method::GET,
        uri: &uri,
        headers: &headers,
        client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        client_cert: None,
    };
    if let Some(v) = view.query_param("api_key") {
        assert!(uri.query().is_some_and(|q| q.contains(v)));
    }
    if let Some(v) = view.cookie("tp_key") {
        assert!(text.contains(v));
    }
});
