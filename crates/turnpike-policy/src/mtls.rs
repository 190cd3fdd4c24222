//! Client certificates to consumers. HELPER-TODO
use turnpike_config::model;

use crate::auth::Attempt;
use crate::consumer::Consumers;
use crate::request::RequestView;

#[derive(Debug, Default)]
pub struct CertificateMap {}

impl CertificateMap {
    pub fn build(_c: &[model::Consumer], _rt: &Consumers) -> Self {
        Self {}
    }

    pub fn attempt(&self, _req: &RequestView<'_>) -> Attempt {
        Attempt::Invalid
    }
}

pub fn client_cert(_der: &[u8]) -> Option<crate::request::ClientCert> {
    None
}
