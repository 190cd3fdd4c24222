//! The `admin:` section: a listener that cannot collide with the proxy's, a store URL the
//! store understands, the no-auth development switch only where nobody else can reach it,
//! and a secrets key that is one.

use super::{Checker, clash};
use crate::de::Parsed;
use crate::model::{Admin, secrets_key_bytes};

pub(super) fn check(c: &mut Checker<'_>, parsed: &Parsed) {
    let Some(admin) = &parsed.config.admin else {
        return;
    };
    listener(c, parsed, admin);
    store(c, &admin.store);
    if let Some(tls) = &admin.tls {
        // Whether the files exist and match is found when they are loaded (`turnpike
        // validate` loads them too), with the file named.
        for (field, file) in [("cert", &tls.cert), ("key", &tls.key)] {
            if file.trim().is_empty() {
                c.err(format!("admin.tls.{field}"), "must name a PEM file");
            }
        }
    }
    if let Some(Err(err)) = admin.secrets_key.as_deref().map(secrets_key_bytes) {
        // A bad key would only show at the first certificate write, on some node; say it
        // here, where the file is. The message never quotes the value.
        c.err("admin.secrets_key", err.to_string());
    }
    if admin.insecure_no_auth && !admin.listen.ip().is_loopback() {
        let ip = admin.listen.ip();
        // A token-free admin API on a reachable address would hand the gateway to anyone.
        let msg = format!(
            "insecure_no_auth is allowed only when `admin.listen` is a loopback address \
             (127.0.0.1 or [::1]), not {ip}; use an admin token instead"
        );
        c.err("admin.insecure_no_auth", msg);
    }
}

/// The admin API binds after the proxy, so a shared address would fail at start-up.
fn listener(c: &mut Checker<'_>, parsed: &Parsed, admin: &Admin) {
    let config = &parsed.config;
    let mut proxy: Vec<(std::net::SocketAddr, String, String)> = Vec::new();
    if let Some(addr) = config.listen {
        proxy.push((addr, "listen".to_owned(), "`listen`".to_owned()));
    }
    for (l, i) in config.listeners.iter().zip(&parsed.listener_at) {
        let label = format!("listener `{}`", l.name);
        proxy.push((l.address, format!("listeners[{i}].address"), label));
    }
    let addr = admin.listen;
    if let Some((other, path, label)) = proxy.iter().find(|(b, ..)| clash(*b, addr)) {
        let line = c.line(path);
        let msg = if *other == addr {
            format!("address {addr} is already used by {label} (line {line})")
        } else {
            format!("address {addr} overlaps {other}, used by {label} (line {line})")
        };
        c.err("admin.listen", msg);
    }
}

/// Only the shape: whether the database is there is found out at start-up. Messages never
/// repeat the URL, which may carry a password.
fn store(c: &mut Checker<'_>, url: &str) {
    const EXPECTED: &str = "use sqlite://PATH, a file path, or postgres://USER@HOST/DB";
    if url.trim().is_empty() {
        c.err(
            "admin.store",
            format!("the store must not be empty: {EXPECTED}"),
        );
        return;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return;
    };
    match scheme {
        "postgres" | "postgresql" => {}
        "sqlite" if rest.is_empty() => {
            c.err(
                "admin.store",
                "the SQLite store needs a file path: sqlite://PATH",
            );
        }
        "sqlite" => {}
        other => c.err(
            "admin.store",
            format!("unsupported store scheme `{other}`: {EXPECTED}"),
        ),
    }
}
