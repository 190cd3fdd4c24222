//! One route's policies, compiled: IP rules (global and route layers), CORS and auth.

use turnpike_config::Config;
use turnpike_config::model::Route;

use crate::auth::RouteAuth;
use crate::cors::Cors;
use crate::ip_rules::IpRules;
use crate::security::Security;

#[derive(Debug, Clone, Default)]
pub struct RoutePolicies {
    pub ip_rules: IpRules,
    pub cors: Option<Cors>,
    pub auth: Option<RouteAuth>,
}

impl RoutePolicies {
    pub fn build(route: &Route, cfg: &Config, sec: &Security) -> Self {
        let p = &cfg.policies;
        Self {
            ip_rules: IpRules::build(p.ip_rules.as_ref(), route.ip_rules.as_ref()),
            cors: route.cors.as_ref().or(p.cors.as_ref()).map(Cors::build),
            auth: route
                .auth
                .as_ref()
                .or(p.auth.as_ref())
                .map(|a| RouteAuth::build(a, sec)),
        }
    }

    /// Nothing to do for this route: the pipeline skips every policy phase.
    pub fn is_empty(&self) -> bool {
        self.ip_rules.is_empty() && self.cors.is_none() && self.auth.is_none()
    }
}
