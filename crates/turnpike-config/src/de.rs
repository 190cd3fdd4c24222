//! Deserialization of the parsed document into the [`Config`] model, one section and one
//! list item at a time, so that three broken routes give three errors instead of one.
//!
//! What did deserialize is kept, with each item's position in the file, so validation can
//! still check it and point at the right `routes[i]`.

use std::net::SocketAddr;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use crate::model::{
    AccessLog, Admin, Analytics, Auth, CacheStore, Config, Consumer, Listener, Metrics, OAuth,
    Plan, Policies, Route, Server, Tracing, Traffic, Upstream,
};
use crate::path;
use crate::problem::Problem;
use crate::yaml::describe;

const SECTIONS: [&str; 17] = [
    "listen",
    "listeners",
    "server",
    "upstreams",
    "routes",
    "consumers",
    "auth",
    "oauth",
    "policies",
    "admin",
    "traffic",
    "plans",
    "metrics",
    "access_log",
    "cache",
    "analytics",
    "tracing",
];

/// The parts of the config that deserialized, and what is known about the parts that did
/// not, so validation neither misses nor invents problems.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) config: Config,
    /// File index of each item kept in `config.listeners`, `.upstreams`, `.routes`.
    pub(crate) listener_at: Vec<usize>,
    pub(crate) upstream_at: Vec<usize>,
    pub(crate) route_at: Vec<usize>,
    pub(crate) consumer_at: Vec<usize>,
    pub(crate) plan_at: Vec<usize>,
    /// Some listener setting was written but is broken, so "no listener" would be wrong.
    pub(crate) listeners_broken: bool,
    /// Names of upstreams that failed to deserialize, still valid route targets.
    pub(crate) broken_upstream_names: Vec<String>,
    /// The `upstreams` section itself is broken: route references cannot be checked.
    pub(crate) upstreams_unknown: bool,
}

/// Deserializes `root`; `None` when it is not even a mapping.
pub(crate) fn deserialize(root: &Value, problems: &mut Vec<Problem>) -> Option<Parsed> {
    let empty = Map::new();
    let root = match root {
        Value::Object(map) => map,
        Value::Null => &empty,
        other => {
            let msg = format!(
                "expected a mapping of settings ({}), found {}",
                SECTIONS.join(", "),
                describe(other)
            );
            problems.push(Problem::at("", msg));
            return None;
        }
    };
    for key in root.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
        let expected = SECTIONS.map(|s| format!("`{s}`")).join(", ");
        let msg = format!("unknown field `{key}`, expected one of {expected}");
        problems.push(Problem::at_key(path::key("", key), msg));
    }
    let mut parsed = Parsed::default();
    if let Some(v) = root.get("listen") {
        parsed.config.listen = one::<Option<SocketAddr>>(v, "listen", problems).flatten();
        parsed.listeners_broken |= parsed.config.listen.is_none() && !v.is_null();
    }
    if let Some(v) = root.get("server") {
        parsed.config.server = one::<Server>(v, "server", problems).unwrap_or_default();
    }
    let (listeners, at, broken) = list::<Listener>(root.get("listeners"), "listeners", problems);
    parsed.config.listeners = listeners;
    parsed.listener_at = at;
    parsed.listeners_broken |= broken.is_some();
    let (upstreams, at, broken) = list::<Upstream>(root.get("upstreams"), "upstreams", problems);
    parsed.config.upstreams = upstreams;
    parsed.upstream_at = at;
    match broken {
        Some(Broken::Section) => parsed.upstreams_unknown = true,
        Some(Broken::Items(items)) => {
            parsed.broken_upstream_names = items
                .iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect();
        }
        None => {}
    }
    let (routes, at, _) = list::<Route>(root.get("routes"), "routes", problems);
    parsed.config.routes = routes;
    parsed.route_at = at;
    let (consumers, at, _) = list::<Consumer>(root.get("consumers"), "consumers", problems);
    parsed.config.consumers = consumers;
    parsed.consumer_at = at;
    if let Some(v) = root.get("auth") {
        parsed.config.auth = one::<Auth>(v, "auth", problems).unwrap_or_default();
    }
    if let Some(v) = root.get("oauth") {
        parsed.config.oauth = one::<Option<OAuth>>(v, "oauth", problems).flatten();
    }
    if let Some(v) = root.get("policies") {
        parsed.config.policies = one::<Policies>(v, "policies", problems).unwrap_or_default();
    }
    if let Some(v) = root.get("admin") {
        // `admin:` with nothing under it still enables the admin API, with the defaults.
        parsed.config.admin = if v.is_null() {
            Some(Admin::default())
        } else {
            one::<Admin>(v, "admin", problems)
        };
    }
    if let Some(v) = root.get("traffic") {
        parsed.config.traffic = one::<Traffic>(v, "traffic", problems).unwrap_or_default();
    }
    let (plans, at, _) = list::<Plan>(root.get("plans"), "plans", problems);
    parsed.config.plans = plans;
    parsed.plan_at = at;
    // An empty section means the defaults, as for `admin:`.
    if let Some(v) = root.get("metrics").filter(|v| !v.is_null()) {
        parsed.config.metrics = one::<Metrics>(v, "metrics", problems).unwrap_or_default();
    }
    if let Some(v) = root.get("cache").filter(|v| !v.is_null()) {
        parsed.config.cache = one::<CacheStore>(v, "cache", problems).unwrap_or_default();
    }
    if let Some(v) = root.get("access_log").filter(|v| !v.is_null()) {
        parsed.config.access_log = one::<AccessLog>(v, "access_log", problems).unwrap_or_default();
    }
    if let Some(v) = root.get("analytics").filter(|v| !v.is_null()) {
        parsed.config.analytics = one::<Analytics>(v, "analytics", problems).unwrap_or_default();
    }
    if let Some(v) = root.get("tracing").filter(|v| !v.is_null()) {
        parsed.config.tracing = one::<Tracing>(v, "tracing", problems).unwrap_or_default();
    }
    Some(parsed)
}

/// What went wrong in a list section.
enum Broken<'a> {
    /// The section is not a list at all.
    Section,
    /// These items did not deserialize.
    Items(Vec<&'a Value>),
}

/// Deserializes each item of the list at `name` on its own, keeping the good ones and
/// their indices.
fn list<'a, T: DeserializeOwned>(
    value: Option<&'a Value>,
    name: &str,
    problems: &mut Vec<Problem>,
) -> (Vec<T>, Vec<usize>, Option<Broken<'a>>) {
    let Some(value) = value else {
        return (Vec::new(), Vec::new(), None);
    };
    let Value::Array(items) = value else {
        // Let serde describe the mismatch ("invalid type: map, expected a sequence").
        return match one::<Vec<T>>(value, name, problems) {
            Some(all) => {
                let at = (0..all.len()).collect();
                (all, at, None)
            }
            None => (Vec::new(), Vec::new(), Some(Broken::Section)),
        };
    };
    let (mut good, mut at, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    for (i, item) in items.iter().enumerate() {
        match one::<T>(item, &path::index(name, i), problems) {
            Some(t) => {
                good.push(t);
                at.push(i);
            }
            None => bad.push(item),
        }
    }
    let broken = (!bad.is_empty()).then_some(Broken::Items(bad));
    (good, at, broken)
}

/// Most problems reported for one item; past this, the rest is probably not config at all.
const MAX_PROBLEMS_PER_ITEM: usize = 20;

/// A step into a value: a mapping key or a sequence index.
enum Step {
    Key(String),
    Index(usize),
}

/// Deserializes one value, turning failures into problems at their full paths.
///
/// serde stops at the first error, so after each one the offending setting is removed
/// and the item tried again; that finds every independent mistake in a route, not just
/// the first. An error that only arises because of such a removal (a now-missing field)
/// is not reported. An item with type errors is `None`; one whose only problems were
/// unknown fields is returned without them, since nothing else can depend on those, so
/// validation still checks the rest of it.
fn one<T: DeserializeOwned>(value: &Value, at: &str, problems: &mut Vec<Problem>) -> Option<T> {
    let mut value = std::borrow::Cow::Borrowed(value);
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_PROBLEMS_PER_ITEM {
        let err = match serde_path_to_error::deserialize::<_, T>(&*value) {
            Ok(t) => return removed.is_empty().then_some(t),
            Err(err) => err,
        };
        let mut steps = Vec::new();
        for segment in err.path() {
            steps.push(match segment {
                Segment::Seq { index } => Step::Index(*index),
                Segment::Map { key } | Segment::Enum { variant: key } => Step::Key(key.clone()),
                Segment::Unknown => break,
            });
        }
        let full = join(at, &steps);
        let message = err.inner().to_string();
        let consequence = match message.strip_prefix("missing field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or_default();
                removed.contains(&path::key(&full, field))
            }
            None => removed.iter().any(|r| path::is_within(r, &full)),
        };
        if consequence {
            return None;
        }
        let unknown = message.starts_with("unknown field");
        if unknown {
            problems.push(Problem::at_key(full, message));
        } else {
            problems.push(Problem::at(full, explain(message, lookup(&value, &steps))));
        }
        // Remove the innermost mapping entry around the error; a sequence item cannot go
        // without shifting the indices of the items after it.
        let keep = steps.iter().rposition(|s| matches!(s, Step::Key(_)))?;
        steps.truncate(keep + 1);
        remove(value.to_mut(), &steps)?;
        // Nothing can depend on an unknown field, so its removal explains no later error.
        if !unknown {
            removed.push(join(at, &steps));
        }
    }
    None
}

fn join(at: &str, steps: &[Step]) -> String {
    steps.iter().fold(at.to_owned(), |p, step| match step {
        Step::Key(k) => path::key(&p, k),
        Step::Index(i) => path::index(&p, *i),
    })
}

fn lookup<'a>(value: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(i),
    })
}

/// Removes the mapping entry that the last step names.
fn remove(value: &mut Value, steps: &[Step]) -> Option<()> {
    let (Step::Key(key), parents) = steps.split_last()? else {
        return None;
    };
    let mut v = value;
    for step in parents {
        v = match step {
            Step::Key(k) => v.get_mut(k)?,
            Step::Index(i) => v.get_mut(*i)?,
        };
    }
    v.as_object_mut()?.remove(key).map(|_| ())
}

/// Adds the expected form to the few library messages that lack one.
fn explain(message: String, value: Option<&Value>) -> String {
    let quoted = match value {
        Some(Value::String(s)) => format!(" {s:?}"),
        _ => String::new(),
    };
    match message.as_str() {
        "invalid socket address syntax" => format!(
            "invalid socket address{quoted}: expected IP:port, e.g. 127.0.0.1:8000 or [::1]:8000"
        ),
        "invalid IP address syntax" => format!(
            "invalid network{quoted}: expected an address with a prefix length, e.g. 10.0.0.0/8 or 192.0.2.7/32"
        ),
        _ => message,
    }
}
