//! Whether a response may be stored by a shared cache (RFC 9111 §3, §3.5) and what the
//! cache keeps of its headers.

use http::header::{AUTHORIZATION, CONNECTION, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::directives::{RequestDirectives, ResponseDirectives};

/// Why a response was not stored; the cache reports it (`Cache-Status: ...; detail=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Method,
    Status,
    NoStore,
    Private,
    /// `Authorization` on the request, without `public`, `s-maxage` or `must-revalidate`.
    Authorization,
    /// `Vary: *` can never be matched.
    VaryStar,
    /// A `Set-Cookie` would hand one client's session to the next.
    SetCookie,
    /// Nothing says how long it stays fresh.
    NoFreshness,
}

impl NotStored {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Status => "status",
            Self::NoStore => "no-store",
            Self::Private => "private",
            Self::Authorization => "authorization",
            Self::VaryStar => "vary-star",
            Self::SetCookie => "set-cookie",
            Self::NoFreshness => "no-freshness",
        }
    }
}

/// Statuses whose responses are cacheable by default (RFC 9110 §15.1).
pub const HEURISTIC_STATUSES: [u16; 12] =
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// One request and its response, as the storage rules see them.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    pub method: &'a Method,
    pub req: &'a HeaderMap,
    pub req_directives: &'a RequestDirectives,
    pub status: StatusCode,
    pub resp: &'a HeaderMap,
    pub directives: &'a ResponseDirectives,
}

/// Checks §3 for one exchange. `statuses` are the statuses the operator lets the cache
/// store; `has_lifetime` says whether [`super::freshness::lifetime`] found one (explicit,
/// heuristic or default).
pub fn check(x: &Exchange<'_>, statuses: &[u16], has_lifetime: bool) -> Result<(), NotStored> {
    let (method, req, status, resp, d) = (x.method, x.req, x.status, x.resp, x.directives);
    if method != Method::GET && method != Method::HEAD {
        return Err(NotStored::Method);
    }
    // 206 needs range support the cache does not have; 304 is answered, never stored.
    if !statuses.contains(&status.as_u16()) || status == StatusCode::PARTIAL_CONTENT {
        return Err(NotStored::Status);
    }
    if d.no_store || d.surrogate_no_store || x.req_directives.no_store {
        return Err(NotStored::NoStore);
    }
    if d.private {
        return Err(NotStored::Private);
    }
    if req.contains_key(AUTHORIZATION) && !(d.public || d.s_maxage.is_some() || d.must_revalidate) {
        return Err(NotStored::Authorization);
    }
    if vary_names(resp).any(|n| n == "*") {
        return Err(NotStored::VaryStar);
    }
    if resp.contains_key(SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    // `no-cache` responses are stored and revalidated on every use.
    if !has_lifetime && !d.no_cache && !d.public {
        return Err(NotStored::NoFreshness);
    }
    Ok(())
}

/// The lower-case field names a response `Vary`s on.
pub fn vary_names(resp: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    resp.get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
}

/// The headers the cache keeps: not those that describe this one connection (§3.1).
/// Values are copied: a parsed header value shares the connection's read buffer, and a
/// stored one would keep that whole buffer (kilobytes) alive for as long as it is cached.
pub fn stored_headers(resp: &HeaderMap) -> HeaderMap {
    let listed: Vec<String> = resp
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let mut kept = HeaderMap::with_capacity(resp.len());
    for (name, value) in resp {
        let hop = matches!(
            name.as_str(),
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "transfer-encoding"
                | "upgrade"
                | "proxy-authenticate"
                | "proxy-authentication-info"
        );
        if hop || listed.iter().any(|l| l == name.as_str()) {
            continue;
        }
        if let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            kept.append(name.clone(), copy);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_headers as headers;

    fn storable(
        method: &Method,
        req: &[(&str, &str)],
        status: u16,
        resp: &[(&str, &str)],
    ) -> Result<(), NotStored> {
        let (req, resp) = (headers(req), headers(resp));
        let d = ResponseDirectives::parse(&resp);
        let has = d.max_age.is_some() || d.s_maxage.is_some();
        let x = Exchange {
            method,
            req: &req,
            req_directives: &RequestDirectives::parse(&req),
            status: StatusCode::from_u16(status).unwrap(),
            resp: &resp,
            directives: &d,
        };
        check(&x, &HEURISTIC_STATUSES, has)
    }

    #[test]
    fn what_a_shared_cache_may_store() {
        let ok = [("cache-control", "max-age=60")];
        assert_eq!(storable(&Method::GET, &[], 200, &ok), Ok(()));
        assert_eq!(
            storable(&Method::POST, &[], 200, &ok),
            Err(NotStored::Method)
        );
        assert_eq!(
            storable(&Method::GET, &[], 500, &ok),
            Err(NotStored::Status)
        );
        assert_eq!(
            storable(&Method::GET, &[], 206, &ok),
            Err(NotStored::Status)
        );
        let cc = |v| [("cache-control", v)];
        assert_eq!(
            storable(&Method::GET, &[], 200, &cc("max-age=60, private")),
            Err(NotStored::Private)
        );
        assert_eq!(
            storable(&Method::GET, &[], 200, &cc("max-age=60, no-store")),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            storable(&Method::GET, &[("cache-control", "no-store")], 200, &ok),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            storable(&Method::GET, &[], 200, &[]),
            Err(NotStored::NoFreshness)
        );
        assert_eq!(storable(&Method::GET, &[], 200, &cc("no-cache")), Ok(()));
        let vary = [("cache-control", "max-age=60"), ("vary", "accept, *")];
        assert_eq!(
            storable(&Method::GET, &[], 200, &vary),
            Err(NotStored::VaryStar)
        );
        let cookie = [("cache-control", "max-age=60"), ("set-cookie", "s=1")];
        assert_eq!(
            storable(&Method::GET, &[], 200, &cookie),
            Err(NotStored::SetCookie)
        );
    }

    #[test]
    fn authorized_requests_need_explicit_permission() {
        let auth = [("authorization", "Bearer x")];
        let cc = |v| [("cache-control", v)];
        assert_eq!(
            storable(&Method::GET, &auth, 200, &cc("max-age=60")),
            Err(NotStored::Authorization)
        );
        for allowed in [
            "max-age=60, public",
            "s-maxage=60",
            "max-age=60, must-revalidate",
        ] {
            assert_eq!(
                storable(&Method::GET, &auth, 200, &cc(allowed)),
                Ok(()),
                "{allowed}"
            );
        }
    }

    #[test]
    fn connection_specific_headers_are_not_kept() {
        let kept = stored_headers(&headers(&[
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("etag", "\"a\""),
        ]));
        assert!(kept.get("x-hop").is_none() && kept.get("keep-alive").is_none());
        assert_eq!(kept["etag"], "\"a\"");
    }
}
