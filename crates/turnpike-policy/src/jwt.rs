//! JWT verification. HELPER-TODO
use turnpike_config::model;

use crate::auth::Attempt;
use crate::consumer::Consumers;
use crate::request::RequestView;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JwtError(String);

#[derive(Debug, Default)]
pub struct JwtSet {}

impl JwtSet {
    pub fn build(_p: &[model::JwtProvider], _previous: Option<&JwtSet>) -> Result<Self, JwtError> {
        Ok(Self {})
    }

    pub async fn attempt(
        &self,
        _req: &RequestView<'_>,
        _allowed: &[Box<str>],
        _consumers: &Consumers,
        _now: i64,
    ) -> Attempt {
        Attempt::Invalid
    }
}
