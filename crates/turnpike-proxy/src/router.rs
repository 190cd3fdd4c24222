//! Route matching: host tier first, then a segment trie over paths, then each candidate's
//! method and header conditions.
//!
//! Precedence (documented in `docs/routing.md`):
//! 1. hosts: an exact host beats a `*.wildcard` (longer suffix first), which beats routes
//!    with no host;
//! 2. within a host tier, a route whose path matches the whole request path (exact routes,
//!    and prefix routes at their own length) beats a shorter prefix; segment by segment a
//!    literal beats a `{param}`;
//! 3. at the same path, routes with more conditions (methods, headers) come first, then
//!    file order.
//!
//! Matching walks at most the request's segments, so 10,000 routes cost what 10 do.

use std::collections::HashMap;

use foldhash::fast::RandomState;

/// Route tables use a fast non-cryptographic hash; keys come from config, not clients.
type Map<V> = HashMap<Box<str>, V, RandomState>;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// One segment of a route path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(Box<str>),
    Param(Box<str>),
}

/// Splits `/users/{id}` into segments; the root `/` has none.
pub fn parse_pattern(path: &str) -> Vec<Segment> {
    let body = path.strip_prefix('/').unwrap_or(path);
    if body.is_empty() {
        return Vec::new();
    }
    body.split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.into()),
                None => Segment::Literal(s.into()),
            },
        )
        .collect()
}

/// What a route needs beyond its path.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub methods: Vec<Method>,
    pub headers: Vec<(HeaderName, Vec<HeaderValue>)>,
}

impl Conditions {
    fn weight(&self) -> usize {
        usize::from(!self.methods.is_empty()) + self.headers.len()
    }

    fn accepts(&self, method: &Method, headers: &HeaderMap) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self.headers.iter().all(|(name, values)| {
                headers
                    .get_all(name)
                    .iter()
                    .any(|v| values.iter().any(|want| want == v))
            })
    }
}

/// A route registered in the router: which hosts and paths it answers.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub hosts: Vec<String>,
    pub paths: Vec<Vec<Segment>>,
    pub prefix: bool,
    pub conditions: Conditions,
}

/// The result of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Index of the route in the order it was added.
    pub route: usize,
    /// Which of the route's paths matched.
    pub pattern: usize,
    /// Bytes of the request path covered by the pattern (for `strip_prefix`).
    pub matched_len: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    route: u32,
    pattern: u16,
    weight: u16,
    /// A prefix route answering its own path ranks after exact routes there.
    from_prefix: bool,
}

impl Entry {
    fn rank(&self) -> (bool, std::cmp::Reverse<u16>) {
        (self.from_prefix, std::cmp::Reverse(self.weight))
    }
}

#[derive(Debug, Default)]
struct Node {
    literals: Map<Node>,
    param: Option<Box<Node>>,
    exact: Vec<Entry>,
    prefix: Vec<Entry>,
}

#[derive(Debug, Default)]
struct Trie {
    root: Node,
}

/// Immutable after construction; shared by every worker through the snapshot.
#[derive(Debug, Default)]
pub struct Router {
    exact_hosts: Map<Trie>,
    /// `(".example.com", trie)`, longest suffix first.
    wildcard_hosts: Vec<(Box<str>, Trie)>,
    any_host: Trie,
    conditions: Vec<Conditions>,
}

impl Router {
    pub fn new(routes: &[RouteSpec]) -> Self {
        let mut router = Router::default();
        for (id, spec) in routes.iter().enumerate() {
            router.conditions.push(spec.conditions.clone());
            let weight = u16::try_from(spec.conditions.weight()).unwrap_or(u16::MAX);
            for (pattern, segments) in spec.paths.iter().enumerate() {
                let entry = Entry {
                    route: u32::try_from(id).unwrap_or(u32::MAX),
                    pattern: u16::try_from(pattern).unwrap_or(u16::MAX),
                    weight,
                    from_prefix: spec.prefix,
                };
                if spec.hosts.is_empty() {
                    router.any_host.insert(segments, spec.prefix, entry);
                }
                for host in &spec.hosts {
                    router.trie_for(host).insert(segments, spec.prefix, entry);
                }
            }
        }
        router
            .wildcard_hosts
            .sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        router.sort_entries();
        router
    }

    fn trie_for(&mut self, host: &str) -> &mut Trie {
        let host = host.to_ascii_lowercase();
        if let Some(suffix) = host.strip_prefix('*') {
            let pos = self.wildcard_hosts.iter().position(|(s, _)| **s == *suffix);
            let pos = pos.unwrap_or_else(|| {
                self.wildcard_hosts.push((suffix.into(), Trie::default()));
                self.wildcard_hosts.len() - 1
            });
            &mut self.wildcard_hosts[pos].1
        } else {
            self.exact_hosts.entry(host.into()).or_default()
        }
    }

    fn sort_entries(&mut self) {
        let tries = self
            .exact_hosts
            .values_mut()
            .chain(self.wildcard_hosts.iter_mut().map(|(_, t)| t));
        for trie in tries.chain(std::iter::once(&mut self.any_host)) {
            trie.root.sort();
        }
    }

    /// Finds the route for a request. `host` is lower-case without a port.
    pub fn find(
        &self,
        host: &str,
        path: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<Match> {
        let accepts = |e: &Entry| self.conditions[e.route as usize].accepts(method, headers);
        if let Some(trie) = self.exact_hosts.get(host) {
            if let Some(m) = trie.find(path, &accepts) {
                return Some(m);
            }
        }
        for (suffix, trie) in &self.wildcard_hosts {
            if host.len() > suffix.len() && host.ends_with(&**suffix) {
                if let Some(m) = trie.find(path, &accepts) {
                    return Some(m);
                }
            }
        }
        self.any_host.find(path, &accepts)
    }
}

impl Node {
    fn sort(&mut self) {
        // Stable sort keeps file order among equals.
        self.exact.sort_by_key(Entry::rank);
        self.prefix.sort_by_key(Entry::rank);
        self.literals.values_mut().for_each(Node::sort);
        if let Some(p) = self.param.as_mut() {
            p.sort();
        }
    }
}

impl Trie {
    fn insert(&mut self, segments: &[Segment], prefix: bool, entry: Entry) {
        // A trailing slash on a prefix (`/api/`) means the same as without it.
        let segments = match (prefix, segments.last()) {
            (true, Some(Segment::Literal(l))) if l.is_empty() => &segments[..segments.len() - 1],
            _ => segments,
        };
        let mut node = &mut self.root;
        for seg in segments {
            node = match seg {
                Segment::Literal(l) => node.literals.entry(l.clone()).or_default(),
                Segment::Param(_) => node.param.get_or_insert_with(Box::default),
            };
        }
        if prefix {
            node.prefix.push(entry);
        }
        node.exact.push(entry);
    }

    fn find(&self, path: &str, accepts: &dyn Fn(&Entry) -> bool) -> Option<Match> {
        let rest = path.strip_prefix('/')?;
        let start = (!rest.is_empty()).then_some(1);
        find_exact(&self.root, path, start, accepts)
            .or_else(|| find_prefix(&self.root, path, start, 0, accepts))
    }
}

/// Splits the segment starting at `at`; returns it and where the next one starts.
fn next_segment(path: &str, at: usize) -> (&str, Option<usize>) {
    let rest = &path[at..];
    match rest.find('/') {
        Some(i) => (&rest[..i], Some(at + i + 1)),
        None => (rest, None),
    }
}

fn to_match(e: &Entry, matched_len: usize) -> Match {
    Match {
        route: e.route as usize,
        pattern: e.pattern as usize,
        matched_len,
    }
}

/// Depth-first, literals before params: the first full-length match is the most specific.
fn find_exact(
    node: &Node,
    path: &str,
    at: Option<usize>,
    accepts: &dyn Fn(&Entry) -> bool,
) -> Option<Match> {
    let Some(at) = at else {
        // A trailing slash is not part of what a pattern covers (so `/` covers nothing).
        let covered = path.trim_end_matches('/').len();
        return node
            .exact
            .iter()
            .find(|e| accepts(e))
            .map(|e| to_match(e, covered));
    };
    let (seg, next) = next_segment(path, at);
    if let Some(child) = node.literals.get(seg) {
        if let Some(m) = find_exact(child, path, next, accepts) {
            return Some(m);
        }
    }
    match &node.param {
        Some(child) if !seg.is_empty() => find_exact(child, path, next, accepts),
        _ => None,
    }
}

/// Post-order: deeper prefixes are tried before the ones above them.
fn find_prefix(
    node: &Node,
    path: &str,
    at: Option<usize>,
    consumed: usize,
    accepts: &dyn Fn(&Entry) -> bool,
) -> Option<Match> {
    if let Some(at) = at {
        let (seg, next) = next_segment(path, at);
        let end = at + seg.len();
        if let Some(child) = node.literals.get(seg) {
            if let Some(m) = find_prefix(child, path, next, end, accepts) {
                return Some(m);
            }
        }
        if let Some(child) = node.param.as_deref().filter(|_| !seg.is_empty()) {
            if let Some(m) = find_prefix(child, path, next, end, accepts) {
                return Some(m);
            }
        }
    }
    node.prefix
        .iter()
        .find(|e| accepts(e))
        .map(|e| to_match(e, consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hosts: &[&str], paths: &[&str], prefix: bool, methods: &[Method]) -> RouteSpec {
        RouteSpec {
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            paths: paths.iter().map(|p| parse_pattern(p)).collect(),
            prefix,
            conditions: Conditions {
                methods: methods.to_vec(),
                headers: Vec::new(),
            },
        }
    }

    fn find(router: &Router, host: &str, path: &str) -> Option<(usize, usize)> {
        router
            .find(host, path, &Method::GET, &HeaderMap::new())
            .map(|m| (m.route, m.matched_len))
    }

    #[test]
    fn prefix_matches_at_segment_boundaries_and_reports_its_length() {
        let r = Router::new(&[spec(&[], &["/api/"], true, &[])]);
        assert_eq!(find(&r, "h", "/api"), Some((0, 4)));
        assert_eq!(find(&r, "h", "/api/"), Some((0, 4)));
        assert_eq!(find(&r, "h", "/api/x/y"), Some((0, 4)));
        assert_eq!(find(&r, "h", "/apix"), None);
        assert_eq!(find(&r, "h", "/"), None);
    }

    #[test]
    fn root_prefix_matches_everything_with_zero_length() {
        let r = Router::new(&[spec(&[], &["/"], true, &[])]);
        assert_eq!(find(&r, "h", "/"), Some((0, 0)));
        assert_eq!(find(&r, "h", "/a/b"), Some((0, 0)));
        assert_eq!(
            find(&r, "h", "*"),
            None,
            "non-path request targets never match"
        );
    }

    #[test]
    fn params_do_not_match_empty_segments() {
        let r = Router::new(&[spec(&[], &["/u/{id}"], false, &[])]);
        assert_eq!(find(&r, "h", "/u/7").map(|m| m.0), Some(0));
        assert_eq!(find(&r, "h", "/u/"), None);
        assert_eq!(find(&r, "h", "/u/7/x"), None);
    }

    #[test]
    fn failed_method_falls_back_to_shorter_prefix_and_other_host_tier() {
        let r = Router::new(&[
            spec(&[], &["/"], true, &[]),
            spec(&["a.example"], &["/x"], true, &[Method::POST]),
            spec(&["*.example"], &["/x"], true, &[]),
        ]);
        assert_eq!(find(&r, "a.example", "/x/1").map(|m| m.0), Some(2));
        assert_eq!(find(&r, "b.other", "/x/1").map(|m| m.0), Some(0));
        let post = r
            .find("a.example", "/x", &Method::POST, &HeaderMap::new())
            .map(|m| m.route);
        assert_eq!(post, Some(1));
    }

    #[test]
    fn literal_prefix_beats_param_exact_at_the_same_path() {
        let r = Router::new(&[
            spec(&[], &["/{x}"], false, &[]),
            spec(&[], &["/api"], true, &[]),
        ]);
        assert_eq!(find(&r, "h", "/api").map(|m| m.0), Some(1));
        assert_eq!(find(&r, "h", "/other").map(|m| m.0), Some(0));
    }
}
