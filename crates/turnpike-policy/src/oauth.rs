//! OAuth 2.0 authorization server. HELPER-TODO
use turnpike_config::model;

use crate::auth::Attempt;
use crate::consumer::Consumers;
use crate::request::RequestView;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OAuthError(String);

#[derive(Debug)]
pub struct OAuthServer {}

impl OAuthServer {
    pub fn build(_o: &model::OAuth, _previous: Option<&OAuthServer>) -> Result<Self, OAuthError> {
        Ok(Self {})
    }

    pub fn attempt(&self, _req: &RequestView<'_>, _c: &Consumers, _now: i64) -> Attempt {
        Attempt::Invalid
    }
}

impl OAuthServer {
    /// Whether `path` is one of this server's endpoints.
    pub fn owns_path(&self, _path: &str) -> bool {
        false
    }

    /// Answers an endpoint request; `body` is `None` when it was too large or broken.
    pub async fn handle(
        &self,
        _method: &http::Method,
        _uri: &http::Uri,
        _headers: &http::HeaderMap,
        _body: Option<bytes::Bytes>,
        _consumers: &Consumers,
        _now: i64,
    ) -> http::Response<bytes::Bytes> {
        http::Response::new(bytes::Bytes::new())
    }
}
