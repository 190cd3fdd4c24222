//! One route's policies, compiled: IP rules (global and route layers), CORS, auth,
//! traffic control and the API's lifecycle.

use std::sync::Arc;

use turnpike_config::Config;
use turnpike_config::model::Route;

use crate::auth::RouteAuth;
use crate::cors::Cors;
use crate::ip_rules::IpRules;
use crate::lifecycle::LifecycleRt;
use crate::security::Security;
use crate::traffic::RouteTraffic;
use crate::validation::RequestSchema;

#[derive(Debug, Clone, Default)]
pub struct RoutePolicies {
    pub ip_rules: IpRules,
    pub cors: Option<Cors>,
    pub auth: Option<RouteAuth>,
    pub traffic: RouteTraffic,
    pub lifecycle: Option<LifecycleRt>,
    /// Request validation (`validate:`), checked after traffic control.
    pub validate: Option<Arc<RequestSchema>>,
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
            lifecycle: route
                .lifecycle
                .as_ref()
                .or(service.and_then(|p| p.lifecycle.as_ref()))
                .or(global.lifecycle.as_ref())
                .map(LifecycleRt::build),
            validate: route
                .validate
                .as_ref()
                .map(|v| Arc::new(compile(&route.name, v))),
        }
    }

    /// Nothing to do for this route: the pipeline skips every policy phase.
    pub fn is_empty(&self) -> bool {
        self.ip_rules.is_empty()
            && self.cors.is_none()
            && self.auth.is_none()
            && self.lifecycle.is_none()
    }
}

/// The route's request checks; schemas that do not compile refuse every request.
fn compile(route: &str, v: &turnpike_config::model::RequestValidation) -> RequestSchema {
    RequestSchema::build(v).unwrap_or_else(|e| {
        tracing::error!(route, error = %e, "request validation does not compile; refusing requests");
        RequestSchema::refusing()
    })
}
