//! One route's policies, compiled: IP rules (global and route layers), CORS, auth and
//! traffic control.

use turnpike_config::Config;
use turnpike_config::model::Route;

use crate::auth::RouteAuth;
use crate::cors::Cors;
use crate::ip_rules::IpRules;
use crate::security::Security;
use crate::traffic::RouteTraffic;

#[derive(Debug, Clone, Default)]
pub struct RoutePolicies {
    pub ip_rules: IpRules,
    pub cors: Option<Cors>,
    pub auth: Option<RouteAuth>,
    pub traffic: RouteTraffic,
}

impl RoutePolicies {
    /// `route`'s policies over those of its upstream (the service) over the global ones.
    pub fn build(route: &Route, cfg: &Config, sec: &Security) -> Self {
        let global = &cfg.policies;
        let service = cfg
            .upstreams
            .iter()
            .find(|u| u.name == route.upstream)
            .map(|u| &u.policies);
        let service_auth = service.and_then(|p| p.auth.as_ref());
        let service_cors = service.and_then(|p| p.cors.as_ref());
        Self {
            ip_rules: IpRules::build([
                global.ip_rules.as_ref(),
                service.and_then(|p| p.ip_rules.as_ref()),
                route.ip_rules.as_ref(),
            ]),
            cors: route
                .cors
                .as_ref()
                .or(service_cors)
                .or(global.cors.as_ref())
                .map(Cors::build),
            auth: route
                .auth
                .as_ref()
                .or(service_auth)
                .or(global.auth.as_ref())
                .map(|a| RouteAuth::build(a, sec)),
            traffic: RouteTraffic::build(route, cfg),
        }
    }

    /// Nothing to do for this route: the pipeline skips every policy phase.
    pub fn is_empty(&self) -> bool {
        self.ip_rules.is_empty() && self.cors.is_none() && self.auth.is_none()
    }
}
