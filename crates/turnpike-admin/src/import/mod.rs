//! From an OpenAPI 3.0 or 3.1 document to the routes that publish it: one exact route per
//! path and method, named by `operationId` (or `{service}-{method}-{path}`), with the
//! operation's parameters and JSON body as `validate:` rules when asked for.
//!
//! Every problem is reported with its place in the document, in the config file's
//! spelling: `paths["/pets/{id}"].get.operationId`.
//!
//! A version of a service is published the same way, with its [`Selector`] on every route
//! (a path in front, or a header to match), its lifecycle, and route names that start with
//! `{service}-{version}-` so versions of one document never clash.

mod body;
mod schema;
mod selector;

pub(crate) use body::DocumentBody;
pub(crate) use selector::{HeaderSelector, Selector};

use serde_json::{Map, Value, json};

use crate::error::Detail;

/// Methods an OpenAPI path item may describe, in the order routes are generated.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// Longest route name; longer operationIds fall back to a derived name.
const MAX_NAME: usize = 200;

/// How to publish a document.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub service: String,
    /// The version published; route names start with `{service}-{version}-`.
    pub version: Option<String>,
    /// The upstream every route sends to.
    pub upstream: String,
    /// A path all routes are published under (`/petstore`); the upstream gets the
    /// document's own paths. Without it, `servers[0].url`'s path is used and kept.
    pub prefix: Option<String>,
    pub validate: bool,
    /// How requests choose the version.
    pub selector: Option<Selector>,
    /// The version's lifecycle, set on every route.
    pub lifecycle: Option<Value>,
}

/// One route to publish, and the operation it comes from.
#[derive(Debug, Clone)]
pub(crate) struct Generated {
    pub name: String,
    /// `paths["/pets"].get`
    pub at: String,
    pub doc: Value,
}

/// The routes of `doc`, or every problem found.
pub(crate) fn routes(doc: &Value, opts: &Options) -> Result<Vec<Generated>, Vec<Detail>> {
    let v30 = version(doc).map_err(|d| vec![d])?;
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return Err(vec![Detail::new("paths", "an object of paths is required")]);
    };
    // The public path is `{version path}{base}{path}`; the upstream gets `{kept}{path}`.
    let (base, kept) = match &opts.prefix {
        Some(p) => (normalise(p), String::new()),
        None => (server_path(doc), server_path(doc)),
    };
    let prefix = match &opts.selector {
        Some(Selector::Path(v)) => format!("{v}{base}"),
        _ => base,
    };
    let mut problems = Vec::new();
    let mut out: Vec<Generated> = Vec::new();
    for (path, item) in paths {
        let at = format!("paths[{path:?}]");
        if !path.starts_with('/') {
            problems.push(Detail::new(at, "a path must start with `/`"));
            continue;
        }
        let item = match resolved(doc, item, &at) {
            Ok(item) => item,
            Err(d) => {
                problems.push(d);
                continue;
            }
        };
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let op_at = format!("{at}.{method}");
            let route = Route {
                path,
                method,
                at: &op_at,
                prefix: &prefix,
                kept: &kept,
            };
            match route.build(doc, item, op, opts, v30) {
                Ok(g) => add(&mut out, &mut problems, g, op),
                Err(mut d) => problems.append(&mut d),
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Adds `g` unless its name is taken; a taken operationId is the document's mistake.
fn add(out: &mut Vec<Generated>, problems: &mut Vec<Detail>, g: Generated, op: &Value) {
    let Some(first) = out.iter().find(|o| o.name == g.name) else {
        out.push(g);
        return;
    };
    let field = if op.get("operationId").is_some() {
        ".operationId"
    } else {
        ""
    };
    let msg = format!("route name `{}` is also generated for {}", g.name, first.at);
    problems.push(Detail::new(format!("{}{field}", g.at), msg));
}

/// `true` for 3.0, `false` for 3.1; anything else is refused.
fn version(doc: &Value) -> Result<bool, Detail> {
    if !doc.is_object() {
        return Err(Detail::new("", "an OpenAPI document must be an object"));
    }
    match doc.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0") => Ok(true),
        Some(v) if v.starts_with("3.1") => Ok(false),
        Some(v) => Err(Detail::new(
            "openapi",
            format!("OpenAPI {v:?} is not supported; import a 3.0 or 3.1 document"),
        )),
        None if doc.get("swagger").is_some() => Err(Detail::new(
            "swagger",
            "this is a Swagger 2.0 document; convert it to OpenAPI 3 first",
        )),
        None => Err(Detail::new(
            "openapi",
            "not an OpenAPI 3.x document: the `openapi` version field is missing",
        )),
    }
}

/// `/base/` → `/base`; `/` and empty → empty.
fn normalise(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_end_matches('/');
    match trimmed {
        "" => String::new(),
        p if p.starts_with('/') => p.to_owned(),
        p => format!("/{p}"),
    }
}

/// The path of `servers[0].url` (`https://api.example.com/v1` → `/v1`), with server
/// variables at their defaults.
fn server_path(doc: &Value) -> String {
    let Some(server) = doc.pointer("/servers/0") else {
        return String::new();
    };
    let mut url = server
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(vars) = server.get("variables").and_then(Value::as_object) {
        for (name, var) in vars {
            let default = var
                .get("default")
                .and_then(Value::as_str)
                .unwrap_or_default();
            url = url.replace(&format!("{{{name}}}"), default);
        }
    }
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => url.as_str(),
    };
    normalise(path.split(['?', '#']).next().unwrap_or_default())
}

/// `value`, or what its `$ref` points at.
fn resolved<'d>(doc: &'d Value, value: &'d Value, at: &str) -> Result<&'d Value, Detail> {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => schema::resolve(doc, r, at),
        None => Ok(value),
    }
}

/// One operation on its way to a route.
struct Route<'a> {
    path: &'a str,
    method: &'a str,
    at: &'a str,
    /// In front of the document's path in the public path.
    prefix: &'a str,
    /// In front of the document's path in what the upstream gets.
    kept: &'a str,
}

/// `prefix` + `path`, where `/` under a prefix is the prefix itself.
fn join(prefix: &str, path: &str) -> String {
    match (prefix, path) {
        ("", p) => p.to_owned(),
        (prefix, "/") => prefix.to_owned(),
        (prefix, p) => format!("{prefix}{p}"),
    }
}

impl Route<'_> {
    fn build(
        &self,
        doc: &Value,
        item: &Value,
        op: &Value,
        opts: &Options,
        v30: bool,
    ) -> Result<Generated, Vec<Detail>> {
        if !op.is_object() {
            return Err(vec![Detail::new(self.at, "an operation must be an object")]);
        }
        let name = self.name(op, opts);
        let public = join(self.prefix, self.path);
        let upstream_path = join(self.kept, self.path);
        let mut route = Map::new();
        route.insert("name".into(), json!(name));
        route.insert("paths".into(), json!([public]));
        route.insert("path_type".into(), json!("exact"));
        route.insert("methods".into(), json!([self.method.to_ascii_uppercase()]));
        route.insert("upstream".into(), json!(opts.upstream));
        if public != upstream_path {
            route.insert("rewrite".into(), json!(upstream_path));
        }
        if let Some(Selector::Header(h)) = &opts.selector {
            route.insert("headers".into(), json!({ h.name.as_str(): h.value }));
        }
        if let Some(l) = &opts.lifecycle {
            route.insert("lifecycle".into(), l.clone());
        }
        if opts.validate {
            if let Some(v) = self.validation(doc, item, op, &opts.service, v30)? {
                route.insert("validate".into(), v);
            }
        }
        Ok(Generated {
            name,
            at: self.at.to_owned(),
            doc: Value::Object(route),
        })
    }

    /// The operationId when it makes a good route name (after `{service}-{version}-` for
    /// a version), else one derived from the path.
    fn name(&self, op: &Value, opts: &Options) -> String {
        let valid = |id: &&str| {
            !id.is_empty()
                && id.len() <= MAX_NAME
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        let service = match &opts.version {
            Some(v) => format!("{}-{v}", opts.service),
            None => opts.service.clone(),
        };
        if let Some(id) = op.get("operationId").and_then(Value::as_str).filter(valid) {
            match &opts.version {
                None => return id.to_owned(),
                Some(_) if service.len() + 1 + id.len() <= MAX_NAME => {
                    return format!("{service}-{id}");
                }
                Some(_) => {}
            }
        }
        let mut slug = String::new();
        for c in self.path.chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        let slug = slug.trim_end_matches('-');
        let slug = if slug.is_empty() { "root" } else { slug };
        let mut name = format!("{service}-{}-{slug}", self.method);
        // A service name may hold any character: cut at a character boundary.
        let mut cut = name.len().min(MAX_NAME);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        name
    }

    /// The `validate:` rules: path-item and operation parameters (the operation's win),
    /// and the JSON request body. `None` when there is nothing to check.
    fn validation(
        &self,
        doc: &Value,
        item: &Value,
        op: &Value,
        service: &str,
        v30: bool,
    ) -> Result<Option<Value>, Vec<Detail>> {
        let mut problems = Vec::new();
        let params = self.parameters(doc, item, op, v30, &mut problems);
        let body = match op.get("requestBody") {
            Some(b) => body(doc, b, &format!("{}.requestBody", self.at), v30).unwrap_or_else(|d| {
                problems.push(d);
                None
            }),
            None => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        if params.is_empty() && body.is_none() {
            return Ok(None);
        }
        let mut v = Map::new();
        v.insert("openapi".into(), json!(service));
        if !params.is_empty() {
            v.insert("parameters".into(), Value::Array(params));
        }
        if let Some(b) = body {
            v.insert("body".into(), b);
        }
        Ok(Some(Value::Object(v)))
    }
}

impl Route<'_> {
    /// Path-item parameters, then the operation's, which replace those of the same name
    /// and place.
    fn parameters(
        &self,
        doc: &Value,
        item: &Value,
        op: &Value,
        v30: bool,
        problems: &mut Vec<Detail>,
    ) -> Vec<Value> {
        let item_at = self.at.rsplit_once('.').map_or(self.at, |(p, _)| p);
        let mut params: Vec<(String, String, Value)> = Vec::new();
        for (owner, at) in [(item, item_at), (op, self.at)] {
            let Some(list) = owner.get("parameters").and_then(Value::as_array) else {
                continue;
            };
            for (i, p) in list.iter().enumerate() {
                match parameter(doc, p, &format!("{at}.parameters[{i}]"), v30) {
                    Ok(Some((name, place, rule))) => {
                        params.retain(|(n, l, _)| !(n == &name && l == &place));
                        params.push((name, place, rule));
                    }
                    Ok(None) => {}
                    Err(d) => problems.push(d),
                }
            }
        }
        params.into_iter().map(|(_, _, rule)| rule).collect()
    }
}

/// A path or query parameter as a rule: `(name, in, rule)`; other places are skipped.
fn parameter(
    doc: &Value,
    p: &Value,
    at: &str,
    v30: bool,
) -> Result<Option<(String, String, Value)>, Detail> {
    let p = resolved(doc, p, at)?;
    let place = p.get("in").and_then(Value::as_str).unwrap_or_default();
    if place != "path" && place != "query" {
        return Ok(None);
    }
    let Some(name) = p.get("name").and_then(Value::as_str) else {
        return Err(Detail::new(
            format!("{at}.name"),
            "a parameter needs a name",
        ));
    };
    let required = place == "path" || p.get("required") == Some(&Value::Bool(true));
    let mut rule = json!({"name": name, "in": place, "required": required});
    if let Some(s) = p.get("schema") {
        rule["schema"] = schema::convert(doc, s, &format!("{at}.schema"), v30)?;
    }
    Ok(Some((name.to_owned(), place.to_owned(), rule)))
}

/// The JSON body rule, or `None` when the operation takes no JSON body.
fn body(doc: &Value, b: &Value, at: &str, v30: bool) -> Result<Option<Value>, Detail> {
    let b = resolved(doc, b, at)?;
    let Some(content) = b.get("content").and_then(Value::as_object) else {
        return Ok(None);
    };
    let json_type = content.keys().find(|t| {
        let t = t
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        t == "application/json" || t.ends_with("+json")
    });
    let Some(media) = json_type else {
        return Ok(None);
    };
    let required = b.get("required") == Some(&Value::Bool(true));
    let mut rule = json!({"required": required});
    if let Some(s) = content[media].get("schema") {
        let s_at = format!("{at}.content[{media:?}].schema");
        rule["schema"] = schema::convert(doc, s, &s_at, v30)?;
    }
    Ok(Some(rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(prefix: Option<&str>) -> Options {
        Options {
            service: "pets".into(),
            version: None,
            upstream: "pets".into(),
            prefix: prefix.map(str::to_owned),
            validate: true,
            selector: None,
            lifecycle: None,
        }
    }

    #[test]
    fn one_route_per_operation() {
        let doc = json!({"openapi": "3.0.3", "servers": [{"url": "https://x.example/v1"}],
            "paths": {"/pets/{id}": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "get": {"operationId": "getPet"}, "delete": {}}}});
        let routes = routes(&doc, &opts(None)).unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].name, "getPet");
        assert_eq!(routes[0].doc["paths"], json!(["/v1/pets/{id}"]));
        assert!(routes[0].doc.get("rewrite").is_none());
        assert_eq!(routes[1].name, "pets-delete-pets-id");
        assert_eq!(routes[1].doc["validate"]["parameters"][0]["name"], "id");
        let routes = super::routes(&doc, &opts(Some("/api/"))).unwrap();
        assert_eq!(routes[0].doc["paths"], json!(["/api/pets/{id}"]));
        assert_eq!(routes[0].doc["rewrite"], "/pets/{id}");
    }

    #[test]
    fn versions_put_their_selector_and_lifecycle_on_every_route() {
        let doc = json!({"openapi": "3.0.3", "servers": [{"url": "https://x.example/api"}],
            "paths": {"/pets/{id}": {"get": {"operationId": "getPet"}}, "/": {"get": {}}}});
        let mut o = opts(None);
        o.version = Some("v2".into());
        o.upstream = "pets-v2".into();
        o.selector = Some(Selector::Path("/v2".into()));
        o.lifecycle = Some(json!({"state": "draft"}));
        let r = routes(&doc, &o).unwrap();
        let (root, pet) = (&r[0], &r[1]);
        assert_eq!(pet.name, "pets-v2-getPet");
        assert_eq!(pet.doc["paths"], json!(["/v2/api/pets/{id}"]));
        assert_eq!(pet.doc["rewrite"], "/api/pets/{id}");
        assert_eq!(pet.doc["upstream"], "pets-v2");
        assert_eq!(pet.doc["lifecycle"]["state"], "draft");
        assert_eq!(root.name, "pets-v2-get-root");
        assert_eq!(root.doc["paths"], json!(["/v2/api"]));
        assert_eq!(root.doc["rewrite"], "/api");
        o.selector = Some(Selector::Header(HeaderSelector {
            name: "x-api-version".into(),
            value: "2".into(),
        }));
        let r = routes(&doc, &o).unwrap();
        assert_eq!(r[1].doc["paths"], json!(["/api/pets/{id}"]));
        assert!(r[1].doc.get("rewrite").is_none());
        assert_eq!(r[1].doc["headers"], json!({"x-api-version": "2"}));
    }

    #[test]
    fn bad_documents_say_where() {
        let e = routes(&json!({"swagger": "2.0"}), &opts(None)).unwrap_err();
        assert_eq!(e[0].path, "swagger");
        let dup = json!({"openapi": "3.1.0", "paths": {"/a": {"get": {"operationId": "x"}}, "/b": {"get": {"operationId": "x"}}}});
        let e = routes(&dup, &opts(None)).unwrap_err();
        assert_eq!(e[0].path, r#"paths["/b"].get.operationId"#);
    }
}
