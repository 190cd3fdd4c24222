//! The policy phases of the pipeline (IP rules, CORS preflight, authentication and
//! authorization, rate limits and quotas) and what they change on the way to and from
//! the upstream.
//!
//! `pipeline.rs` decides when these run; this file only adapts the request to the
//! policy crate's view and applies its answers.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{CONTENT_LENGTH, ORIGIN};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use turnpike_policy::auth::{self, Hide};
use turnpike_policy::traffic::limits::KeyCtx;
use turnpike_policy::traffic::{Granted, Traffic};
use turnpike_policy::{Identity, RequestView, Security};

use crate::body::ResponseBody;
use crate::error::GatewayError;
use crate::pipeline::ConnCtx;
use crate::snapshot::RouteRt;

/// What the policy phases decided for a request that goes on to the upstream.
#[derive(Debug, Default)]
pub(crate) struct Admitted {
    pub(crate) identity: Option<Identity>,
    /// The request's `Origin`, when the route has CORS and the response needs its headers.
    pub(crate) origin: Option<HeaderValue>,
}

impl Admitted {
    /// What a refused request still needs for its response (the CORS origin).
    pub(crate) fn from_request(req: &Request<Incoming>) -> Self {
        Self {
            identity: None,
            origin: req.headers().get(ORIGIN).cloned(),
        }
    }
}

/// Either the request may go on, or the gateway answers now (a CORS preflight).
pub(crate) enum Admission {
    Continue(Admitted),
    /// Boxed: preflights are rare, and the common variant stays small.
    Respond(Box<Response<ResponseBody>>),
}

/// Runs IP rules, CORS preflight, then authentication and authorization.
pub(crate) async fn admit(
    security: &Security,
    route: &RouteRt,
    conn: &ConnCtx,
    req: &Request<Incoming>,
    client_ip: IpAddr,
) -> Result<Admission, GatewayError> {
    let policies = &route.policies;
    if policies.is_empty() {
        return Ok(Admission::Continue(Admitted::default()));
    }
    if let Some(lifecycle) = &policies.lifecycle {
        lifecycle.check()?;
    }
    policies.ip_rules.check(client_ip)?;
    let view = RequestView {
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
        client_ip,
        client_cert: conn.client_cert.as_ref(),
    };
    let mut admitted = Admitted::default();
    if let Some(cors) = &policies.cors {
        // Preflights carry no credentials (Fetch standard), so they are answered before auth.
        if let Some(headers) = cors.preflight(&view) {
            return Ok(Admission::Respond(Box::new(preflight_response(headers))));
        }
        admitted.origin = req.headers().get(ORIGIN).cloned();
    }
    if let Some(auth) = &policies.auth {
        // Boxed: authentication's future (JWKS, introspection) is large, and inline it
        // would be moved with every request's, routes without auth included.
        let check = Box::pin(auth.check(security, &view, unix_now()));
        admitted.identity = Some(check.await?);
    }
    Ok(Admission::Continue(admitted))
}

/// Rate limits, an in-flight slot and the quota, for a request that passed [`admit`].
/// `None` when nothing limits this request.
pub(crate) async fn limit(
    traffic: &Traffic,
    route: &RouteRt,
    admitted: &Admitted,
    req: &Request<Incoming>,
    client_ip: IpAddr,
) -> Result<Option<Granted>, GatewayError> {
    let identity = admitted.identity.as_ref();
    let has_plan = || identity.is_some_and(|i| traffic.consumers.contains_key(&*i.consumer.name));
    if !traffic.active || (route.policies.traffic.is_empty() && !has_plan()) {
        return Ok(None);
    }
    let ctx = KeyCtx {
        route: &route.name,
        client_ip,
        identity,
        headers: req.headers(),
    };
    let granted = traffic
        .check(&route.policies.traffic, &ctx, unix_now())
        .await?;
    Ok(Some(granted))
}

fn preflight_response(headers: HeaderMap) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(bytes::Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    *resp.headers_mut() = headers;
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Tells the upstream who called: removes client-sent identity headers, adds the
/// authenticated identity, and hides the credential when configured.
pub(crate) fn identify(
    security: &Security,
    identity: Option<&Identity>,
    headers: &mut HeaderMap,
    path_and_query: &mut PathAndQuery,
) {
    if !security.active {
        return;
    }
    let names = &security.identity_headers;
    names.strip(headers);
    let Some(identity) = identity else {
        return;
    };
    let consumer = &identity.consumer;
    if let Some(v) = &consumer.id_value {
        headers.insert(names.id.clone(), v.clone());
    }
    if let Some(v) = &consumer.groups_value {
        headers.insert(names.groups.clone(), v.clone());
    }
    if let Some(v) = &identity.credential {
        headers.insert(names.credential.clone(), v.clone());
    }
    if identity.anonymous {
        headers.insert(names.anonymous.clone(), HeaderValue::from_static("true"));
    }
    if let Some(scopes) = identity.scopes.as_deref().filter(|s| !s.is_empty()) {
        if let Ok(v) = HeaderValue::from_str(&scopes.join(" ")) {
            headers.insert(names.scopes.clone(), v);
        }
    }
    for (name, value) in identity.claims.iter() {
        headers.insert(name.clone(), value.clone());
    }
    match &identity.hide {
        Some(Hide::Query(name)) => {
            let query = auth::query_without(path_and_query.query().unwrap_or(""), name);
            let new = if query.is_empty() {
                PathAndQuery::try_from(path_and_query.path())
            } else {
                PathAndQuery::try_from(format!("{}?{query}", path_and_query.path()))
            };
            if let Ok(new) = new {
                *path_and_query = new;
            }
        }
        Some(other) => {
            auth::hide(headers, other);
        }
        None => {}
    }
}

/// Adds CORS and lifecycle (`Deprecation`, `Sunset`, `Link`) headers to a response.
pub(crate) fn decorate(route: &RouteRt, admitted: &Admitted, headers: &mut HeaderMap) {
    if let Some(cors) = &route.policies.cors {
        cors.decorate(admitted.origin.as_ref(), headers);
    }
    if let Some(lifecycle) = &route.policies.lifecycle {
        lifecycle.decorate(headers);
    }
}

/// Longest time a client gets to send an OAuth endpoint's (small) form body.
const OAUTH_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Answers a request to one of the OAuth server's endpoints (token, introspection,
/// revocation, JWKS, metadata).
pub(crate) async fn oauth_endpoint(
    security: &Security,
    server: &turnpike_policy::oauth::OAuthServer,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    // Token requests are small forms; anything larger is not one.
    let limited = http_body_util::Limited::new(body, 16 * 1024);
    // A client dripping its form slowly must not hold the connection and a task forever.
    let collect = http_body_util::BodyExt::collect(limited);
    let body = match tokio::time::timeout(OAUTH_BODY_TIMEOUT, collect).await {
        Ok(Ok(collected)) => Some(collected.to_bytes()),
        Ok(Err(_)) | Err(_) => None,
    };
    let resp = server
        .handle(
            &parts.method,
            &parts.uri,
            &parts.headers,
            body,
            &security.consumers,
            unix_now(),
        )
        .await;
    resp.map(ResponseBody::full)
}
