//! Who is calling and whether they may: `Authorization: Bearer tpa_...` looked up by id,
//! then the role the request needs (read for GET, operator for entity writes, admin for
//! tokens and the audit log).
//!
//! Tokens are never logged: only their id appears, in the audit log's actor.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, Method, header};

use crate::error::ApiError;
use crate::state::AdminState;
use crate::token::{self, Role};

/// The authenticated caller, put into the request's extensions for the handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Recorded in the audit log: `token:<id>`, or `insecure-no-auth`.
    pub actor: String,
    pub role: Role,
}

/// Paths whose every method needs the admin role.
const ADMIN_ONLY: [&str; 2] = ["/api/v1/tokens", "/api/v1/audit"];

/// The least role that may make this request.
fn required_role(method: &Method, path: &str) -> Role {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if ADMIN_ONLY.iter().any(|p| under(p)) {
        Role::Admin
    } else if method == Method::GET || method == Method::HEAD {
        Role::ReadOnly
    } else {
        Role::Operator
    }
}

/// Middleware on every protected route.
pub(crate) async fn require(
    State(state): State<AdminState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    // A consumer's own usage may also be read with that consumer's API key (the portal).
    let own = crate::consumer_auth::own_usage(req.method(), req.uri().path())
        .filter(|_| !req.headers().contains_key(header::AUTHORIZATION))
        .filter(|_| req.headers().contains_key(crate::consumer_auth::KEY_HEADER))
        .map(str::to_owned);
    let caller = match own {
        Some(name) => crate::consumer_auth::authenticate(&state, &name, req.headers()).await?,
        None => authenticate(&state, req.headers(), peer).await?,
    };
    let needed = required_role(req.method(), req.uri().path());
    if caller.role < needed {
        return Err(ApiError::forbidden(format!(
            "this request needs the {} role; the token has {}",
            needed.as_str(),
            caller.role.as_str()
        )));
    }
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

async fn authenticate(
    state: &AdminState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Caller, ApiError> {
    if state.inner.insecure_no_auth {
        // `serve` checked the listener; this also holds when the router is served some
        // other way: only a peer on this machine gets in without a token.
        if peer.is_some_and(|addr| addr.ip().is_loopback()) {
            return Ok(Caller {
                actor: "insecure-no-auth".to_owned(),
                role: Role::Admin,
            });
        }
        return Err(ApiError::forbidden(
            "insecure_no_auth admits only loopback clients",
        ));
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "an admin token is required: Authorization: Bearer tpa_...",
            false,
        ));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`", true)
        })?;
    let invalid = || ApiError::unauthorized("the admin token is not valid", true);
    let id = token::token_id(presented).ok_or_else(invalid)?;
    let row = state.store().token(id).await?.ok_or_else(invalid)?;
    if row.revoked || !token::matches(presented, &row.hash) {
        return Err(invalid());
    }
    let role = Role::parse(&row.role).ok_or_else(|| {
        ApiError::internal(
            "token with an unknown role",
            &format!("{}: {}", row.id, row.role),
        )
    })?;
    Ok(Caller {
        actor: format!("token:{}", row.id),
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_per_request() {
        assert_eq!(
            required_role(&Method::GET, "/api/v1/routes"),
            Role::ReadOnly
        );
        assert_eq!(
            required_role(&Method::POST, "/api/v1/routes"),
            Role::Operator
        );
        assert_eq!(
            required_role(&Method::DELETE, "/api/v1/routes/x"),
            Role::Operator
        );
        assert_eq!(required_role(&Method::GET, "/api/v1/tokens"), Role::Admin);
        assert_eq!(
            required_role(&Method::DELETE, "/api/v1/tokens/abc"),
            Role::Admin
        );
        assert_eq!(required_role(&Method::GET, "/api/v1/audit"), Role::Admin);
        assert_eq!(
            required_role(&Method::GET, "/api/v1/auditx"),
            Role::ReadOnly
        );
    }
}
