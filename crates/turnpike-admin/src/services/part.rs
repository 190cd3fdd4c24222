//! The parts of a stored service: its unversioned import (the fields at the top of the
//! `services` entity, as before versions existed) and its versions (under `versions`, keyed
//! by version name). Each part has its own document, upstream, options and generated
//! routes; a version also has a selector and a lifecycle.
//!
//! ```json
//! {"name": "pets", "upstream": "pets", "url": "...", "routes": [...], "document": {...},
//!  "versions": {"v2": {"upstream": "pets-v2", "url": "...", "selector": {"path": "/v2"},
//!                      "lifecycle": {"state": "published"}, "routes": [...], "document": {...}}}}
//! ```

use serde_json::{Map, Value, json};
use turnpike_store::Record;

use super::KIND;
use crate::entities::find;
use crate::error::{ApiError, Detail};
use crate::import::{Generated, Options, Selector};

/// Route fields every import sets; a re-import leaves every other field as an operator
/// set it.
const GENERATED_FIELDS: [&str; 7] = [
    "name",
    "paths",
    "path_type",
    "methods",
    "upstream",
    "rewrite",
    "validate",
];
/// A version's imports also own the selector's header match and the lifecycle.
const VERSION_FIELDS: [&str; 9] = [
    "name",
    "paths",
    "path_type",
    "methods",
    "upstream",
    "rewrite",
    "validate",
    "headers",
    "lifecycle",
];

/// Which part of a service a write is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part<'a> {
    /// The unversioned document (`POST /api/v1/services/{name}/openapi`).
    Default,
    Version(&'a str),
}

impl<'a> Part<'a> {
    pub(crate) fn version(self) -> Option<&'a str> {
        match self {
            Self::Default => None,
            Self::Version(v) => Some(v),
        }
    }

    /// The upstream the part's routes send to: the service's name, or `{service}-{version}`.
    pub(crate) fn upstream(self, service: &str) -> String {
        match self {
            Self::Default => service.to_owned(),
            Self::Version(v) => format!("{service}-{v}"),
        }
    }

    pub(crate) fn generated_fields(self) -> &'static [&'static str] {
        match self {
            Self::Default => &GENERATED_FIELDS,
            Self::Version(_) => &VERSION_FIELDS,
        }
    }

    /// The part as stored in the service entity `doc`, if it was ever imported.
    pub(crate) fn stored(self, doc: &Value) -> Option<&Value> {
        match self {
            Self::Default => doc.get("url").map(|_| doc),
            Self::Version(v) => doc.get("versions")?.get(v),
        }
    }
}

/// The route names the part's last import generated.
pub(crate) fn owned(records: &[Record], service: &str, part: Part<'_>) -> Vec<String> {
    find(records, KIND, service)
        .and_then(|r| part.stored(&r.doc))
        .map(route_names)
        .unwrap_or_default()
}

/// The `routes` of a stored part.
pub(crate) fn route_names(part: &Value) -> Vec<String> {
    part.get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Every part of the service entity `doc`: the default (when imported), then versions.
pub(crate) fn parts(doc: &Value) -> Vec<Part<'_>> {
    let default = Part::Default.stored(doc).map(|_| Part::Default);
    let versions = doc
        .get("versions")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.keys().map(|k| Part::Version(k.as_str())));
    default.into_iter().chain(versions).collect()
}

/// A part's options: the request's, else those of the previous import.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) prefix: Option<String>,
    pub(crate) validate: bool,
    pub(crate) selector: Option<Selector>,
    pub(crate) lifecycle: Option<Value>,
}

impl Settings {
    /// `upstream`, `prefix` and `validate` from a request, the rest from `previous`.
    pub(crate) fn merge(
        upstream: Option<&str>,
        prefix: Option<&str>,
        validate: Option<bool>,
        previous: Option<&Value>,
    ) -> Result<Self, ApiError> {
        let old = |key: &str| previous.and_then(|p| p.get(key));
        let text = |key: &str| old(key).and_then(Value::as_str).map(str::to_owned);
        let url = upstream.map(str::to_owned).or_else(|| text("url"));
        let url = url.ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "`upstream` (the upstream's URL) is required on the first import",
            )
            .with_details(vec![Detail::new("upstream", "required")])
        })?;
        let selector = old("selector").and_then(|s| serde_json::from_value(s.clone()).ok());
        Ok(Self {
            url,
            prefix: prefix.map(str::to_owned).or_else(|| text("prefix")),
            validate: validate
                .or_else(|| old("validate").and_then(Value::as_bool))
                .unwrap_or(false),
            selector,
            lifecycle: old("lifecycle").filter(|l| !l.is_null()).cloned(),
        })
    }

    pub(crate) fn options(&self, service: &str, part: Part<'_>) -> Options {
        Options {
            service: service.to_owned(),
            version: part.version().map(str::to_owned),
            upstream: part.upstream(service),
            prefix: self.prefix.clone(),
            validate: self.validate,
            selector: self.selector.clone(),
            lifecycle: self.lifecycle.clone(),
        }
    }

    /// The part as it is stored after an import of `document`.
    fn stored(&self, upstream: &str, generated: &[Generated], document: Value) -> Value {
        let routes: Vec<&str> = generated.iter().map(|g| g.name.as_str()).collect();
        let mut part = json!({"upstream": upstream, "url": self.url, "prefix": self.prefix,
            "validate": self.validate, "routes": routes, "document": document});
        if let Some(s) = &self.selector {
            part["selector"] = json!(s);
        }
        if let Some(l) = &self.lifecycle {
            part["lifecycle"] = l.clone();
        }
        part
    }
}

/// The service entity after `part` was imported as `settings` produced `generated`.
pub(crate) fn with_part(
    previous: Option<&Value>,
    (service, part): (&str, Part<'_>),
    settings: &Settings,
    generated: &[Generated],
    document: Value,
) -> Value {
    let stored = settings.stored(&part.upstream(service), generated, document);
    let mut entity = match previous {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    entity.insert("name".into(), json!(service));
    match part {
        Part::Default => {
            if let Value::Object(fields) = stored {
                entity.extend(fields);
            }
        }
        Part::Version(v) => {
            let versions = entity.entry("versions").or_insert_with(|| json!({}));
            if let Value::Object(m) = versions {
                m.insert(v.to_owned(), stored);
            }
        }
    }
    Value::Object(entity)
}

/// The service entity without version `v`; `None` when nothing would be left of it.
pub(crate) fn without_version(doc: &Value, v: &str) -> Option<Value> {
    let mut doc = doc.clone();
    if let Some(Value::Object(m)) = doc.get_mut("versions") {
        m.remove(v);
    }
    let versions_left = doc
        .get("versions")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty());
    (versions_left || Part::Default.stored(&doc).is_some()).then_some(doc)
}

/// The service record `name`, or 404.
pub(crate) fn service<'r>(records: &'r [Record], name: &str) -> Result<&'r Record, ApiError> {
    find(records, KIND, name)
        .ok_or_else(|| ApiError::not_found(format!("service {name:?} does not exist")))
}
