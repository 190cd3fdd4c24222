//! HTTP Basic authentication (RFC 7617) against argon2 password hashes. HELPER-TODO
use std::sync::Arc;

use turnpike_config::model;

use crate::auth::Attempt;
use crate::consumer::Consumers;
use crate::request::RequestView;

#[derive(Debug, Default)]
pub struct BasicAuth {}

impl BasicAuth {
    pub fn build(
        _consumers: &[model::Consumer],
        _rt: &Consumers,
        _previous: Option<&BasicAuth>,
    ) -> Self {
        Self {}
    }

    pub async fn attempt(&self, _req: &RequestView<'_>, _consumers: &Consumers) -> Attempt {
        let _ = Arc::new(());
        Attempt::Invalid
    }
}
