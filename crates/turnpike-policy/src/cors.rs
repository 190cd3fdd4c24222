//! CORS. HELPER-TODO
use turnpike_config::model;

#[derive(Debug, Clone)]
pub struct Cors {}

impl Cors {
    pub fn build(_c: &model::Cors) -> Self {
        Self {}
    }
}

impl Cors {
    /// `Some` when the request is a CORS preflight: the headers of the gateway's 204
    /// answer (empty when the origin or method is not allowed, so the browser blocks it).
    pub fn preflight(&self, _req: &crate::RequestView<'_>) -> Option<http::HeaderMap> {
        None
    }

    /// Adds the CORS headers for an actual (non-preflight) response.
    pub fn decorate(&self, _origin: Option<&http::HeaderValue>, _headers: &mut http::HeaderMap) {}
}
