//! Versions of a service: `POST /api/v1/services/{name}/versions/{version}/openapi` imports
//! a document as one version, with its own upstream (`{name}-{version}`), a selector (a
//! path in front of every route's, or a header to match) and a lifecycle on every route it
//! generates; `PATCH` changes the selector or the lifecycle, which regenerates that
//! version's routes from its stored document; `DELETE` removes the version's routes and
//! upstream. Each is one store transaction under the writer lock, like an import, so a
//! deprecation reaches every route of the version at once and no other version's.

use axum::Extension;
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use turnpike_config::model::Lifecycle;
use turnpike_store::Record;
use utoipa::{IntoParams, ToSchema};

use super::part::{Part, Settings, service, without_version};
use super::{ImportReport, Job, KIND, apply, deletions, publish};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::entities::{self, Locked, find};
use crate::error::{ApiError, Detail, ErrorBody};
use crate::import::{DocumentBody, HeaderSelector, Selector};
use crate::state::AdminState;

/// Longest version name: it becomes part of route and upstream names.
const MAX_VERSION: usize = 64;
/// The lifecycle states, as written.
const STATES: [&str; 4] = ["draft", "published", "deprecated", "retired"];

/// How to publish a version; a re-import keeps the previous value of what it leaves out.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VersionImportParams {
    /// The version's upstream URL (required on its first import).
    upstream: Option<String>,
    /// Publish under this path (after the version's `path`); the upstream gets the
    /// document's own paths.
    prefix: Option<String>,
    /// Check parameters and JSON bodies against the document's schemas.
    validate: Option<bool>,
    /// Select the version by this path, put in front of every route's (`/v2`).
    path: Option<String>,
    /// Select the version by this request header (with `header_value`).
    header_name: Option<String>,
    /// The value of `header_name` that selects the version.
    header_value: Option<String>,
    /// `true`: the version becomes a draft (404 until published); `false`: a draft is
    /// published. Left out, the lifecycle stays as it is (a new version is published).
    draft: Option<bool>,
    /// Only report what would change.
    #[serde(default)]
    dry_run: bool,
}

/// A version's lifecycle (merged into the current one by `PATCH`: fields given replace,
/// `null` removes one).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub(crate) struct LifecycleBody {
    /// `draft` (404), `published`, `deprecated` (served with `Deprecation`, `Sunset`,
    /// `Link`) or `retired` (410 Gone).
    #[schema(value_type = Option<String>, example = "deprecated")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// RFC 3339; a deprecation without it is dated when it is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_at: Option<String>,
    /// RFC 3339: when the version may stop working (`Sunset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
    /// Where callers read about the change (`Link: <...>; rel="deprecation"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// What to change of a version; anything left out stays.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "describes the body for the OpenAPI document; parsed by hand"
)]
pub(crate) struct VersionPatch {
    /// A new selector; the version's routes are regenerated with it.
    selector: Option<Selector>,
    lifecycle: Option<LifecycleBody>,
}

#[utoipa::path(post, path = "/api/v1/services/{name}/versions/{version}/openapi", tag = "services",
    operation_id = "import_openapi_version",
    params(("name" = String, Path, description = "The service's name"),
        ("version" = String, Path, description = "The version's name (`v2`): letters, digits, `.`, `_`, `-`"),
        VersionImportParams),
    request_body(description = "An OpenAPI 3.0 or 3.1 document, as JSON or YAML",
        content((Object = "application/json"), (Object = "application/yaml"))),
    security(("bearer" = [])),
    responses((status = 200, description = "Imported (or, with `dry_run`, the plan)", body = ImportReport),
        (status = 400, description = "A bad version name, selector or document; `details` name the place", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "The selector, a route name or the upstream is taken", body = ErrorBody)))]
pub(crate) async fn import(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    names: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<VersionImportParams>, QueryRejection>,
    DocumentBody(doc): DocumentBody,
) -> Result<Response, ApiError> {
    let (service, version) = path_names(names)?;
    let params = crate::body::query(q)?;
    let requested = requested_selector(&params)?;
    let part = Part::Version(&version);
    let _one_writer = state.inner.writes.lock().await;
    let locked = entities::lock(&state, "upstreams", &part.upstream(&service)).await?;
    let entity = find(&locked.records, KIND, &service);
    let previous = entity.and_then(|r| part.stored(&r.doc));
    if previous.is_none() {
        upstream_free(&locked.records, &part.upstream(&service))?;
    }
    let mut settings = Settings::merge(
        params.upstream.as_deref(),
        params.prefix.as_deref(),
        params.validate,
        previous,
    )?;
    if let Some(s) = requested {
        settings.selector = Some(s);
    }
    let Some(selector) = &settings.selector else {
        let msg = "a new version needs a selector: `path` (e.g. /v2), or `header_name` and `header_value`";
        return Err(ApiError::bad_request("invalid_query", msg)
            .with_details(vec![Detail::new("path", "required")]));
    };
    selector_free(entity, &version, selector, "path")?;
    if let Some(draft) = params.draft {
        settings.lifecycle = drafted(settings.lifecycle.take(), draft);
    }
    let job = Job {
        service: &service,
        part,
        settings,
        dry_run: params.dry_run,
    };
    Ok(Json(publish(locked, &caller, job, doc).await?).into_response())
}

#[utoipa::path(get, path = "/api/v1/services/{name}/versions/{version}/openapi", tag = "services",
    operation_id = "get_service_version_openapi",
    params(("name" = String, Path, description = "The service's name"),
        ("version" = String, Path, description = "The version's name")),
    security(("bearer" = [])),
    responses((status = 200, description = "The version's document as last imported", content_type = "application/json"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn document(
    State(state): State<AdminState>,
    names: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (service, version) = path_names(names)?;
    let record = state.store().get(KIND, &service).await?;
    let part = record
        .as_ref()
        .and_then(|r| Part::Version(&version).stored(&r.doc))
        .ok_or_else(|| no_version(&service, &version))?;
    let doc = part.get("document").cloned().unwrap_or(Value::Null);
    Ok(Json(doc).into_response())
}

#[utoipa::path(patch, path = "/api/v1/services/{name}/versions/{version}", tag = "services",
    operation_id = "update_service_version",
    params(("name" = String, Path, description = "The service's name"),
        ("version" = String, Path, description = "The version's name")),
    request_body(content = VersionPatch, description = "The selector and/or lifecycle to change"),
    security(("bearer" = [])),
    responses((status = 200, description = "The version's routes, updated in one transaction", body = ImportReport),
        (status = 400, description = "A bad selector or lifecycle; `details` name the field", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Another version has that selector", body = ErrorBody),
        (status = 415, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    names: Result<Path<(String, String)>, PathRejection>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (service, version) = path_names(names)?;
    let part = Part::Version(&version);
    let _one_writer = state.inner.writes.lock().await;
    let locked = entities::lock(&state, "upstreams", &part.upstream(&service)).await?;
    let entity = find(&locked.records, KIND, &service);
    let stored = entity
        .and_then(|r| part.stored(&r.doc))
        .ok_or_else(|| no_version(&service, &version))?;
    let mut settings = Settings::merge(None, None, None, Some(stored))?;
    let (selector, lifecycle) = parse_patch(&body, settings.lifecycle.as_ref())?;
    if let Some(s) = selector {
        selector_free(entity, &version, &s, "selector")?;
        settings.selector = Some(s);
    }
    if let Some(l) = lifecycle {
        settings.lifecycle = Some(l);
    }
    let doc = stored.get("document").cloned().unwrap_or(Value::Null);
    let job = Job {
        service: &service,
        part,
        settings,
        dry_run: false,
    };
    Ok(Json(publish(locked, &caller, job, doc).await?).into_response())
}

#[utoipa::path(delete, path = "/api/v1/services/{name}/versions/{version}", tag = "services",
    operation_id = "delete_service_version",
    params(("name" = String, Path, description = "The service's name"),
        ("version" = String, Path, description = "The version's name")),
    security(("bearer" = [])),
    responses((status = 204, description = "The version, its generated routes and (unless other routes use it) its upstream are deleted; the service goes with its last version unless it has an unversioned document"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Other entities depend on the version's routes", body = ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    names: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (name, version) = path_names(names)?;
    let part = Part::Version(&version);
    let _one_writer = state.inner.writes.lock().await;
    let Locked {
        base,
        records,
        mut tx,
    } = entities::lock(&state, "upstreams", &part.upstream(&name)).await?;
    let record = service(&records, &name)?;
    if part.stored(&record.doc).is_none() {
        return Err(no_version(&name, &version));
    }
    let plan = deletions(&base, &records, (&name, &[part]))?;
    apply(&mut tx, &caller, &plan).await?;
    let actor = &caller.actor;
    match without_version(&record.doc, &version) {
        Some(doc) => drop(
            tx.update(KIND, &name, doc, Some(record.revision), actor)
                .await?,
        ),
        None => tx.delete(KIND, &name, Some(record.revision), actor).await?,
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `{name}` and `{version}` path segments, checked, or a JSON 400.
fn path_names(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    let Path((service, version)) =
        path.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    entities::check_name("name", &service)?;
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if version.is_empty() || version.len() > MAX_VERSION || !version.chars().all(ok) {
        let msg = format!("a version name is 1 to {MAX_VERSION} letters, digits, `.`, `_` or `-`");
        return Err(ApiError::bad_request("invalid_request", msg.clone())
            .with_details(vec![Detail::new("version", msg)]));
    }
    Ok((service, version))
}

fn no_version(service: &str, version: &str) -> ApiError {
    ApiError::not_found(format!("service {service:?} has no version {version:?}"))
}

/// The selector the query asks for, if any.
fn requested_selector(p: &VersionImportParams) -> Result<Option<Selector>, ApiError> {
    let bad =
        |d: Detail| ApiError::bad_request("invalid_query", d.message.clone()).with_details(vec![d]);
    let selector = match (&p.path, &p.header_name, &p.header_value) {
        (None, None, None) => return Ok(None),
        (Some(path), None, None) => Selector::Path(path.clone()).normalised("path"),
        (None, Some(name), Some(value)) => Selector::Header(HeaderSelector {
            name: name.clone(),
            value: value.clone(),
        })
        .normalised("header_name"),
        (Some(_), _, _) => Err(Detail::new(
            "path",
            "select a version by `path` or by `header_name` and `header_value`, not both",
        )),
        (None, Some(_), None) => Err(Detail::new("header_value", "required with `header_name`")),
        (None, None, Some(_)) => Err(Detail::new("header_name", "required with `header_value`")),
    };
    selector.map(Some).map_err(bad)
}

/// Refuses a selector another version of the service already has: both would publish
/// the same requests.
fn selector_free(
    entity: Option<&Record>,
    version: &str,
    selector: &Selector,
    field: &str,
) -> Result<(), ApiError> {
    let versions = entity
        .and_then(|r| r.doc.get("versions"))
        .and_then(Value::as_object);
    for (name, part) in versions.into_iter().flatten() {
        let theirs: Option<Selector> = part
            .get("selector")
            .and_then(|s| serde_json::from_value(s.clone()).ok());
        if name != version && theirs.as_ref() == Some(selector) {
            let msg = format!("version {name:?} already uses {}", selector.describe());
            return Err(ApiError::conflict("conflict", msg.clone())
                .with_details(vec![Detail::new(field, msg)]));
        }
    }
    Ok(())
}

/// A new version's upstream must not exist yet: it would be taken over and, with the
/// version, deleted.
fn upstream_free(records: &[Record], upstream: &str) -> Result<(), ApiError> {
    if find(records, "upstreams", upstream).is_none() {
        return Ok(());
    }
    let msg = format!(
        "upstream {upstream:?} already exists and was not made for this version; rename it or the version"
    );
    Err(ApiError::conflict("conflict", msg.clone()).with_details(vec![Detail::new("version", msg)]))
}

/// The lifecycle with its state set to draft (`true`), or a draft published (`false`).
fn drafted(lifecycle: Option<Value>, draft: bool) -> Option<Value> {
    let mut l = match lifecycle {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let is_draft = l.get("state").and_then(Value::as_str) == Some("draft");
    match (draft, is_draft) {
        (true, _) => drop(l.insert("state".into(), "draft".into())),
        (false, true) => drop(l.insert("state".into(), "published".into())),
        (false, false) => {}
    }
    (!l.is_empty()).then_some(Value::Object(l))
}

/// The `PATCH` body as a new selector and a new lifecycle (each `None` when left out).
fn parse_patch(
    body: &Value,
    current: Option<&Value>,
) -> Result<(Option<Selector>, Option<Value>), ApiError> {
    let Value::Object(fields) = body else {
        return Err(entities::invalid(vec![Detail::new(
            "",
            "expected a JSON object",
        )]));
    };
    let mut problems = Vec::new();
    let mut selector = None;
    let mut lifecycle = None;
    for (key, value) in fields {
        match key.as_str() {
            "selector" => match serde_json::from_value::<Selector>(value.clone()) {
                Ok(s) => match s.normalised("selector") {
                    Ok(s) => selector = Some(s),
                    Err(d) => problems.push(d),
                },
                Err(e) => problems.push(Detail::new(
                    "selector",
                    format!("expected {{\"path\": \"/v2\"}} or {{\"header\": {{\"name\": ..., \"value\": ...}}}}: {e}"),
                )),
            },
            "lifecycle" => match merge_lifecycle(current, value) {
                Ok(l) => lifecycle = Some(l),
                Err(mut d) => problems.append(&mut d),
            },
            other => problems.push(Detail::new(
                other,
                "unknown field; expected `selector` or `lifecycle`",
            )),
        }
    }
    if problems.is_empty() {
        Ok((selector, lifecycle))
    } else {
        Err(entities::invalid(problems))
    }
}

/// `patch` merged into `current` (RFC 7396), then checked like the config file's
/// lifecycles. Deprecating without `deprecated_at` dates the deprecation now.
fn merge_lifecycle(current: Option<&Value>, patch: &Value) -> Result<Value, Vec<Detail>> {
    let Value::Object(patch) = patch else {
        return Err(vec![Detail::new("lifecycle", "expected an object")]);
    };
    let mut out = current
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut problems = Vec::new();
    for (key, value) in patch {
        let at = format!("lifecycle.{key}");
        match (key.as_str(), value) {
            ("state", Value::String(s)) if STATES.contains(&s.as_str()) => {
                out.insert(key.clone(), value.clone());
            }
            ("state", _) => problems.push(Detail::new(
                at,
                "expected one of `draft`, `published`, `deprecated`, `retired`",
            )),
            ("deprecated_at" | "sunset" | "link", Value::Null) => drop(out.remove(key)),
            ("deprecated_at" | "sunset" | "link", Value::String(_)) => {
                out.insert(key.clone(), value.clone());
            }
            ("deprecated_at" | "sunset" | "link", _) => {
                problems.push(Detail::new(at, "expected a string, or null to remove it"));
            }
            _ => problems.push(Detail::new(
                at,
                "unknown field; expected `state`, `deprecated_at`, `sunset` or `link`",
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    out.entry("state").or_insert_with(|| "published".into());
    if out.get("state").and_then(Value::as_str) == Some("deprecated") {
        out.entry("deprecated_at").or_insert_with(now);
    }
    let lifecycle: Lifecycle = serde_json::from_value(Value::Object(out))
        .map_err(|e| vec![Detail::new("lifecycle", e.to_string())])?;
    let problems: Vec<Detail> = lifecycle
        .problems()
        .into_iter()
        .map(|(field, msg)| Detail::new(format!("lifecycle.{field}"), msg))
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    serde_json::to_value(&lifecycle).map_err(|e| vec![Detail::new("lifecycle", e.to_string())])
}

/// This second, RFC 3339 in UTC.
fn now() -> Value {
    let t = jiff::Timestamp::now();
    let whole = jiff::Timestamp::from_second(t.as_second()).unwrap_or(t);
    Value::String(whole.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifecycle_patches_merge_and_say_which_field_is_wrong() {
        let current = json!({"state": "published", "sunset": "2027-01-01T00:00:00Z"});
        let l = merge_lifecycle(Some(&current), &json!({"state": "deprecated"})).unwrap();
        assert_eq!(l["state"], "deprecated");
        assert_eq!(l["sunset"], "2027-01-01T00:00:00Z");
        assert!(l["deprecated_at"].as_str().unwrap().ends_with('Z'), "{l}");
        let l = merge_lifecycle(
            Some(&l),
            &json!({"state": "published", "deprecated_at": null}),
        )
        .unwrap();
        assert!(l.get("deprecated_at").is_none(), "{l}");
        let e = merge_lifecycle(None, &json!({"state": "gone", "sunset": 5, "x": 1})).unwrap_err();
        let paths: Vec<&str> = e.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            ["lifecycle.state", "lifecycle.sunset", "lifecycle.x"]
        );
        let e = merge_lifecycle(None, &json!({"sunset": "soon"})).unwrap_err();
        assert_eq!(e[0].path, "lifecycle.sunset");
    }

    #[test]
    fn drafts_are_set_and_published() {
        let d = drafted(None, true).unwrap();
        assert_eq!(d["state"], "draft");
        assert_eq!(drafted(Some(d), false).unwrap()["state"], "published");
        assert!(drafted(None, false).is_none());
    }
}
