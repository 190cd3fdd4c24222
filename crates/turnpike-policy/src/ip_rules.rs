//! IP allow and deny lists, checked against the real client address (after the
//! trusted-proxy walk, so a forged `X-Forwarded-For` cannot pick its own address).

use std::net::IpAddr;

use ipnet::IpNet;
use turnpike_config::model;

use crate::Denied;

/// Deny wins; a non-empty allow list admits only what it names. Global and route rules
/// are kept as separate layers and the request must pass both.
#[derive(Debug, Clone, Default)]
pub struct IpRules {
    layers: Vec<Layer>,
}

#[derive(Debug, Clone)]
struct Layer {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl IpRules {
    /// Layers from the least to the most specific level; absent ones are skipped.
    pub fn build<'a>(levels: impl IntoIterator<Item = Option<&'a model::IpRules>>) -> Self {
        let layers = levels
            .into_iter()
            .flatten()
            .filter(|r| !(r.allow.is_empty() && r.deny.is_empty()))
            .map(|r| Layer {
                allow: r.allow.clone(),
                deny: r.deny.clone(),
            })
            .collect();
        Self { layers }
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    pub fn check(&self, ip: IpAddr) -> Result<(), Denied> {
        // An IPv4 client seen through a dual-stack socket must match IPv4 rules.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        for layer in &self.layers {
            let denied = layer.deny.iter().any(|n| n.contains(&ip));
            let allowed = layer.allow.is_empty() || layer.allow.iter().any(|n| n.contains(&ip));
            if denied || !allowed {
                return Err(Denied::forbidden(
                    "requests from this address are not allowed",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> model::IpRules {
        model::IpRules {
            allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
            deny: deny.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn deny_wins_and_allow_lists_are_exclusive() {
        let r = IpRules::build([Some(&rules(&["10.0.0.0/8"], &["10.1.0.0/16"]))]);
        assert!(r.check("10.2.3.4".parse().unwrap()).is_ok());
        assert!(r.check("10.1.3.4".parse().unwrap()).is_err());
        assert!(r.check("192.0.2.1".parse().unwrap()).is_err());
        assert!(r.check("::ffff:10.2.3.4".parse().unwrap()).is_ok());
    }

    #[test]
    fn global_and_route_layers_both_apply() {
        let global = rules(&[], &["2001:db8::/32"]);
        let route = rules(&["2001:db8::/32", "2001:db9::/32"], &[]);
        let r = IpRules::build([Some(&global), None, Some(&route)]);
        assert!(r.check("2001:db8::1".parse().unwrap()).is_err());
        assert!(r.check("2001:db9::1".parse().unwrap()).is_ok());
        assert!(r.check("2001:dba::1".parse().unwrap()).is_err());
    }
}
