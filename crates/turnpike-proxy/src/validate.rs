//! The request-validation phase: a route with `validate:` has its parameters and JSON
//! body checked against its compiled schemas before anything goes upstream.
//!
//! Only such a route pays for it: its body is read in full (bounded by
//! `server.max_body_bytes`, under the body-read timeout and minimum rate), checked, and
//! then forwarded as that full body. Every other request streams as before.

use http::{Request, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{BodyError, RequestBody};
use crate::error::GatewayError;
use crate::router::Match;
use crate::snapshot::{RouteRt, ServerSettings};

/// The request with its body ready to forward, or the 400 (413, 408) that refuses it.
pub(crate) async fn request(
    route: &RouteRt,
    m: &Match,
    server: &ServerSettings,
    req: Request<Incoming>,
) -> Result<Request<RequestBody>, GatewayError> {
    let Some(schema) = &route.policies.validate else {
        return Ok(req.map(|b| RequestBody::from_client(b, server)));
    };
    let path = req.uri().path();
    schema
        .check_params(|name| route.path_param(m, path, name), req.uri().query())
        .map_err(|e| GatewayError::InvalidRequest(e.0))?;
    if !schema.checks_body() {
        return Ok(req.map(|b| RequestBody::from_client(b, server)));
    }
    let (parts, body) = req.into_parts();
    let bytes = RequestBody::from_client(body, server)
        .collect()
        .await
        .map_err(read_error)?
        .to_bytes();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    schema
        .check_body(content_type, &bytes)
        .map_err(|e| GatewayError::InvalidRequest(e.0))?;
    Ok(Request::from_parts(parts, RequestBody::buffered(bytes)))
}

pub(crate) fn read_error(e: BodyError) -> GatewayError {
    match e {
        BodyError::TooLarge => GatewayError::BodyTooLarge,
        BodyError::Idle | BodyError::TooSlow => GatewayError::RequestTimeout,
        BodyError::Hyper(_) => GatewayError::BadRequest("the request body could not be read"),
    }
}
