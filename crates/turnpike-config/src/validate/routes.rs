//! Route checks: match criteria spelled right, an upstream that exists, path rewriting
//! that can work, and no route that another identical route makes unreachable.

use std::collections::{BTreeMap, HashMap};

use super::Checker;
use crate::de::Parsed;
use crate::lexical;
use crate::model::{HeaderTransform, OneOrMany, PathType, Route};

pub(super) fn check(c: &mut Checker<'_>, parsed: &Parsed) {
    let routes: Vec<(String, &Route)> = parsed
        .config
        .routes
        .iter()
        .zip(&parsed.route_at)
        .map(|(r, i)| (format!("routes[{i}]"), r))
        .collect();
    c.unique_names(
        "route",
        routes.iter().map(|(p, r)| (p.as_str(), r.name.as_str())),
    );
    let mut upstreams: Vec<&str> = parsed
        .config
        .upstreams
        .iter()
        .map(|u| u.name.as_str())
        .collect();
    upstreams.extend(parsed.broken_upstream_names.iter().map(String::as_str));
    upstreams.sort_unstable();
    upstreams.dedup();
    let mut seen: HashMap<(MatchKey, String), Seen<'_>> = HashMap::new();
    for (at, route) in &routes {
        if !parsed.upstreams_unknown {
            upstream_exists(c, at, route, &upstreams);
        }
        hosts(c, at, route);
        paths(c, at, route);
        methods(c, at, route);
        header_matches(c, at, &route.headers);
        rewrite(c, at, route);
        transform(c, &format!("{at}.request_headers"), &route.request_headers);
        transform(
            c,
            &format!("{at}.response_headers"),
            &route.response_headers,
        );
        unreachable(c, at, route, &mut seen);
    }
}

fn upstream_exists(c: &mut Checker<'_>, at: &str, route: &Route, upstreams: &[&str]) {
    if upstreams.contains(&route.upstream.as_str()) {
        return;
    }
    let defined = if upstreams.is_empty() {
        "no upstreams are defined".to_owned()
    } else {
        format!("defined upstreams: {}", upstreams.join(", "))
    };
    c.err(
        format!("{at}.upstream"),
        format!("unknown upstream `{}` ({defined})", route.upstream),
    );
}

fn hosts(c: &mut Checker<'_>, at: &str, route: &Route) {
    let mut seen: Vec<String> = Vec::new();
    for (i, host) in route.hosts.iter().enumerate() {
        let path = format!("{at}.hosts[{i}]");
        if let Err(msg) = lexical::host_pattern(host) {
            c.err(path, msg);
        } else if seen.contains(&host.to_ascii_lowercase()) {
            c.err(
                path,
                format!("host {host:?} is listed twice (hosts are case-insensitive)"),
            );
        } else {
            seen.push(host.to_ascii_lowercase());
        }
    }
}

fn paths(c: &mut Checker<'_>, at: &str, route: &Route) {
    // Repeated paths are found with unreachable routes, which compares them normalised.
    for (i, path) in route.paths.iter().enumerate() {
        if let Err(msg) = lexical::path_template(path) {
            c.err(format!("{at}.paths[{i}]"), msg);
        }
    }
}

fn methods(c: &mut Checker<'_>, at: &str, route: &Route) {
    for (i, method) in route.methods.iter().enumerate() {
        let path = format!("{at}.methods[{i}]");
        if let Err(msg) = lexical::method(method) {
            c.err(path, msg);
        } else if route.methods[..i].contains(method) {
            c.err(path, format!("method {method} is listed twice"));
        }
    }
}

fn header_matches(c: &mut Checker<'_>, at: &str, headers: &BTreeMap<String, OneOrMany>) {
    for (name, values) in headers {
        let path = crate::path::key(&format!("{at}.headers"), name);
        if let Err(msg) = lexical::header_name(name) {
            c.err_key(path.clone(), msg);
        }
        if values.values().is_empty() {
            c.err(path.clone(), "must list at least one accepted value");
        }
        for (i, value) in values.values().iter().enumerate() {
            if let Err(msg) = lexical::header_value(value) {
                let at = if matches!(values, OneOrMany::One(_)) {
                    path.clone()
                } else {
                    format!("{path}[{i}]")
                };
                c.err(at, msg);
            }
        }
    }
}

/// Headers that frame the message or belong to the connection: editing them would let a
/// route desynchronise client, gateway and upstream (request smuggling), so they are the
/// gateway's alone.
const RESERVED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "host",
];

pub(super) fn reserved(name: &str) -> Result<(), String> {
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        let hint = if name.eq_ignore_ascii_case("host") {
            " (use the upstream's `host_header`)"
        } else {
            ""
        };
        return Err(format!(
            "header `{name}` frames the message or the connection and cannot be edited{hint}"
        ));
    }
    Ok(())
}

fn transform(c: &mut Checker<'_>, at: &str, t: &HeaderTransform) {
    for (i, name) in t.remove.iter().enumerate() {
        if let Err(msg) = lexical::header_name(name).and_then(|()| reserved(name)) {
            c.err(format!("{at}.remove[{i}]"), msg);
        }
    }
    for (field, map) in [("set", &t.set), ("add", &t.add)] {
        for (name, value) in map {
            let path = crate::path::key(&format!("{at}.{field}"), name);
            if let Err(msg) = lexical::header_name(name).and_then(|()| reserved(name)) {
                c.err_key(path.clone(), msg);
            }
            if let Err(msg) = lexical::header_value(value) {
                c.err(path, msg);
            }
        }
    }
}

fn rewrite(c: &mut Checker<'_>, at: &str, route: &Route) {
    let Some(rewrite) = &route.rewrite else {
        return;
    };
    let path = format!("{at}.rewrite");
    if route.strip_prefix {
        let msg = "`strip_prefix` and `rewrite` cannot be combined: `rewrite` already replaces the whole path";
        c.err(path, msg);
        return;
    }
    let params = match lexical::rewrite_params(rewrite) {
        Ok(params) => params,
        Err(msg) => return c.err(path, msg),
    };
    let root = ["/".to_owned()];
    let route_paths = if route.paths.is_empty() {
        &root[..]
    } else {
        &route.paths[..]
    };
    for param in params {
        let missing = route_paths
            .iter()
            .find(|p| lexical::path_template(p).is_ok_and(|names| !names.contains(&param)));
        if let Some(p) = missing {
            let msg = format!(
                "rewrite uses `{{{param}}}`, but path {p:?} does not define it; every path of the route must"
            );
            c.err(path.clone(), msg);
        }
    }
}

/// What decides whether a route is chosen, normalised so equal criteria compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MatchKey {
    hosts: Vec<String>,
    exact: bool,
    methods: Vec<String>,
    headers: Vec<(String, Vec<String>)>,
}

impl MatchKey {
    fn of(route: &Route) -> Self {
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v.dedup();
            v
        };
        let headers = route
            .headers
            .iter()
            .map(|(name, values)| (name.to_ascii_lowercase(), sorted(values.values().to_vec())))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        Self {
            hosts: sorted(route.hosts.iter().map(|h| h.to_ascii_lowercase()).collect()),
            exact: route.path_type == PathType::Exact,
            methods: sorted(route.methods.clone()),
            headers,
        }
    }
}

/// The first route to claim some criteria: its path, the path of the claiming entry in
/// its `paths`, and its name.
type Seen<'r> = (String, String, &'r str);

/// A route with the same criteria and a path in common with an earlier route can never
/// be chosen; report it at that path, naming the earlier route.
fn unreachable<'r>(
    c: &mut Checker<'_>,
    at: &str,
    route: &'r Route,
    seen: &mut HashMap<(MatchKey, String), Seen<'r>>,
) {
    let key = MatchKey::of(route);
    let paths: Vec<(String, &str)> = if route.paths.is_empty() {
        vec![(at.to_owned(), "/")]
    } else {
        route
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("{at}.paths[{i}]"), p.as_str()))
            .collect()
    };
    for (path, p) in paths {
        if lexical::path_template(p).is_err() {
            continue;
        }
        // The router treats a prefix `/api/` exactly like `/api`, so compare them that way.
        let mut normalised = lexical::normalise_template(p);
        if route.path_type == PathType::Prefix && normalised.len() > 1 && normalised.ends_with('/')
        {
            normalised.pop();
        }
        let slot = (key.clone(), normalised);
        if let Some((first_at, first_path, first_name)) = seen.get(&slot) {
            if first_at == at {
                let line = c.line(first_path);
                let msg = format!(
                    "path {p:?} matches the same requests as an earlier path of this route (line {line})"
                );
                c.err(path, msg);
                continue;
            }
            let line = c.line(first_at);
            let msg = format!(
                "route `{}` can never be chosen for {p:?}: route `{first_name}` (line {line}) matches the same hosts, path, methods and headers first",
                route.name
            );
            c.err(path, msg);
        } else {
            seen.insert(slot, (at.to_owned(), path, &route.name));
        }
    }
}
