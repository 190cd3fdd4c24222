//! This node's id in usage rows and the cluster status: `analytics.node_id`, or
//! `HOSTNAME:PORT` of the first proxy listener, which is unique on a machine (two
//! gateways cannot bind one port) and stays the same across restarts.

use turnpike_config::Config;

/// The id this node writes its rows and heartbeats under.
pub fn node_id(cfg: &Config) -> String {
    if let Some(id) = &cfg.analytics.node_id {
        return id.clone();
    }
    let port = cfg
        .listen
        .or_else(|| cfg.listeners.first().map(|l| l.address))
        .map_or(0, |a| a.port());
    format!("{}:{port}", hostname())
}

/// The kernel's host name, else `$HOSTNAME`, else `localhost`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_or_host_and_port() {
        let mut cfg = Config {
            listen: "127.0.0.1:8123".parse().ok(),
            ..Config::default()
        };
        let id = node_id(&cfg);
        assert!(id.ends_with(":8123") && id.len() > 5, "{id}");
        cfg.analytics.node_id = Some("gw-1".to_owned());
        assert_eq!(node_id(&cfg), "gw-1");
    }
}
