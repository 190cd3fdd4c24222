//! The token (RFC 6749 §4.4, §5), introspection (RFC 7662) and revocation (RFC 7009)
//! endpoints, and the JSON responses they share.
//!
//! All three authenticate the client the same way — `client_secret_basic` or
//! `client_secret_post`, never both — and answer errors as `{"error",
//! "error_description"}`. Descriptions never say whether a client id exists or which
//! part of a credential was wrong.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use super::OAuthServer;
use super::clients::Client;
use super::form::{self, ClientAuth, Form, FormError};
use super::revoked::Full;
use crate::password::Busy;

/// Token responses and anything about tokens must not be cached (RFC 6749 §5.1).
pub const NO_STORE: &str = "no-store";

/// A protocol error as RFC 6749 §5.2 shapes it.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl Failure {
    fn new(status: StatusCode, error: &'static str, description: &'static str) -> Self {
        Self {
            status,
            error,
            description,
        }
    }

    fn invalid_request(description: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// Always 401 with a Basic challenge: required when Basic was tried (RFC 6749 §5.2),
    /// and a 401 without `WWW-Authenticate` would break HTTP (RFC 9110 §15.5.2).
    fn invalid_client(description: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the request could not be completed; try again later",
        )
    }
}

impl From<FormError> for Failure {
    fn from(e: FormError) -> Self {
        match e {
            FormError::Basic => Self::invalid_client("client authentication failed"),
            FormError::ContentType => {
                Self::invalid_request("the body must be application/x-www-form-urlencoded")
            }
            FormError::Body => Self::invalid_request("the body is not a valid form"),
            FormError::Repeated => Self::invalid_request("a parameter is included more than once"),
        }
    }
}

impl OAuthServer {
    /// `POST {prefix}/token`: the client-credentials grant.
    pub(super) async fn token(
        &self,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        now: i64,
    ) -> Response<Bytes> {
        match self.try_token(headers, body, now).await {
            Ok(resp) => resp,
            Err(failure) => self.failure(failure),
        }
    }

    async fn try_token(
        &self,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        now: i64,
    ) -> Result<Response<Bytes>, Failure> {
        let form = Form::read(headers, body)?;
        // The cheap checks come before the argon2 verification.
        match form.get("grant_type") {
            Some("client_credentials") => {}
            Some(_) => {
                return Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "only the client_credentials grant is supported",
                ));
            }
            None => return Err(Failure::invalid_request("grant_type is required")),
        }
        let client = self.client(headers, &form).await?;
        let scope = grant(client, form.get("scope"))?;
        let claims = self
            .tokens
            .claims(&client.id, &client.consumer, scope, now)
            .map_err(|e| {
                tracing::error!(error = %e, "OAuth token endpoint");
                Failure::server_error()
            })?;
        let token = self.tokens.sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "OAuth token endpoint");
            Failure::server_error()
        })?;
        tracing::info!(client_id = %client.id, scope = %claims.scope, "issued an OAuth access token");
        let mut body = json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.tokens.ttl,
        });
        if !claims.scope.is_empty() {
            body["scope"] = json!(claims.scope);
        }
        Ok(json_response(StatusCode::OK, &body, NO_STORE))
    }

    /// `POST {prefix}/introspect`. Any registered client may introspect any token of
    /// this server: resource servers are clients too, and presenting a token proves
    /// possession of it already.
    pub(super) async fn introspect(
        &self,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        now: i64,
    ) -> Response<Bytes> {
        match self.try_introspect(headers, body, now).await {
            Ok(body) => json_response(StatusCode::OK, &body, NO_STORE),
            Err(failure) => self.failure(failure),
        }
    }

    async fn try_introspect(
        &self,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        now: i64,
    ) -> Result<Value, Failure> {
        let form = Form::read(headers, body)?;
        self.client(headers, &form).await?;
        let token = form
            .get("token")
            .ok_or(Failure::invalid_request("token is required"))?;
        Ok(self.introspection(token, now))
    }

    /// RFC 7662 §2.2: everything about an active token, or only `active: false` for
    /// anything else (expired, revoked, garbage, another issuer's) so nothing leaks.
    fn introspection(&self, token: &str, now: i64) -> Value {
        let Some((claims, client)) = self.active(token, now) else {
            return json!({ "active": false });
        };
        let mut body = json!({
            "active": true,
            "client_id": claims.client_id,
            "sub": claims.sub,
            "iss": claims.iss,
            "exp": claims.exp,
            "iat": claims.iat,
            "nbf": claims.nbf,
            "jti": claims.jti,
            "token_type": "Bearer",
        });
        let scope = super::granted_scopes(&claims, client).join(" ");
        if !scope.is_empty() {
            body["scope"] = json!(scope);
        }
        if let Some(aud) = &claims.aud {
            body["aud"] = json!(aud);
        }
        body
    }

    /// `POST {prefix}/revoke`. A token issued to another client is refused with
    /// `unauthorized_client` (400) and stays valid: RFC 7009 §2.1 says such a request
    /// "is refused and the client is informed of the error", and a silent 200 would make
    /// the caller believe the token is dead. Invalid, expired and unknown tokens get 200
    /// (§2.2: nothing left to revoke).
    pub(super) async fn revoke(
        &self,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        now: i64,
    ) -> Response<Bytes> {
        match self.try_revoke(headers, body, now).await {
            Ok(()) => {
                let mut resp = Response::new(Bytes::new());
                resp.headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
                resp
            }
            Err(failure) => self.failure(failure),
        }
    }

    async fn try_revoke(
        &self,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        now: i64,
    ) -> Result<(), Failure> {
        let form = Form::read(headers, body)?;
        let client = self.client(headers, &form).await?;
        let token = form
            .get("token")
            .ok_or(Failure::invalid_request("token is required"))?;
        // `token_type_hint` is optional and only access tokens exist here: ignored.
        let Some(claims) = self.tokens.verify(token, now) else {
            return Ok(());
        };
        if claims.client_id != *client.id {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "the token was not issued to this client",
            ));
        }
        self.revoked
            .revoke(&claims.jti, claims.exp, now)
            .map_err(|Full| {
                tracing::warn!("OAuth revocation list is full; asking the client to retry");
                Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the token could not be revoked now; retry later",
                )
            })?;
        tracing::info!(client_id = %client.id, jti = %claims.jti, "revoked an OAuth access token");
        Ok(())
    }

    /// Authenticates the client of an endpoint request.
    async fn client(&self, headers: &HeaderMap, form: &Form) -> Result<&Client, Failure> {
        match form::client_auth(headers, form)? {
            ClientAuth::Present(creds) => match self.clients.authenticate(&creds).await {
                Ok(Some(client)) => Ok(client),
                Ok(None) => Err(Failure::invalid_client("client authentication failed")),
                Err(Busy) => Err(Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "too many authentication attempts are in progress; retry later",
                )),
            },
            ClientAuth::Missing => Err(Failure::invalid_client(
                "client authentication is required (HTTP Basic or client_id and client_secret in the body)",
            )),
            ClientAuth::Both => Err(Failure::invalid_request(
                "use exactly one client authentication method",
            )),
        }
    }

    fn failure(&self, f: Failure) -> Response<Bytes> {
        let body = json!({ "error": f.error, "error_description": f.description });
        let mut resp = json_response(f.status, &body, NO_STORE);
        if f.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(WWW_AUTHENTICATE, self.basic_challenge.clone());
        }
        resp
    }
}

/// The scope to grant: what was asked for if the client may have all of it, else
/// `invalid_scope`; everything the client may have when nothing was asked for.
fn grant(client: &Client, requested: Option<&str>) -> Result<String, Failure> {
    let requested: Vec<&str> = requested
        .map(|s| s.split(' ').filter(|t| !t.is_empty()).collect())
        .unwrap_or_default();
    if requested.is_empty() {
        return Ok(client.scopes.join(" "));
    }
    let mut granted: Vec<&str> = Vec::with_capacity(requested.len());
    for scope in requested {
        if !client.allows(scope) {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "the requested scope is invalid, unknown, or not allowed for this client",
            ));
        }
        if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    Ok(granted.join(" "))
}

/// A JSON response with the given `Cache-Control`.
pub fn json_response(status: StatusCode, body: &Value, cache: &'static str) -> Response<Bytes> {
    json_bytes(status, Bytes::from(body.to_string()), cache)
}

/// A response with an already serialized JSON body.
pub fn json_bytes(status: StatusCode, body: Bytes, cache: &'static str) -> Response<Bytes> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    if cache == NO_STORE {
        // RFC 6749 §5.1 asks for both, for HTTP/1.0 caches.
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    }
    resp
}
