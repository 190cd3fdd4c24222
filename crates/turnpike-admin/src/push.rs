//! `POST /api/v1/config/push`: makes the store's entities of the given sections equal to
//! the request's, in one transaction (what `turnpike config push` sends).
//!
//! Like decK sync: what a section lacks is deleted from the store, what differs is replaced,
//! what is new is created; sections the body leaves out are not touched. Names the file
//! defines are read-only and skipped (listed in the answer). Everything is read, compared,
//! validated once as a whole (so the order of the changes does not matter, and a route may
//! move to an upstream created by the same push) and written under the store's writer lock
//! in one transaction: one config version, and either every change is visible or none.
//! Certificates are not pushed: their keys are never read back, so a file of them could
//! not round-trip. The global policies are one document, not a section of named items:
//! `policies: {...}` replaces the store's, `policies: null` deletes it, and leaving the key
//! out leaves it alone; when the file sets `policies:` a pushed document is skipped.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use turnpike_store::{Record, WriteTx};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::body::JsonBody;
use crate::entities::{check_name, invalid, kinds_complete, refuse};
use crate::error::{ApiError, Detail, ErrorBody};
use crate::kinds::{self, GLOBAL, POLICIES, key_of};
use crate::state::AdminState;
use crate::validate::{self, Change};

/// Largest push body: every entity of a configuration in one request.
pub(crate) const MAX_PUSH_BODY: usize = 16 * 1024 * 1024;

/// The sections a push may carry, in the body's spelling.
const PUSHED: [&str; 5] = [
    "upstreams",
    "routes",
    "consumers",
    "plans",
    kinds::OAUTH_CLIENTS,
];

/// The desired entities per section; a section left out is not changed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    #[schema(value_type = Option<Vec<Object>>)]
    pub upstreams: Option<Vec<Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub routes: Option<Vec<Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub consumers: Option<Vec<Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub plans: Option<Vec<Value>>,
    /// Keyed by `client_id`; a client without `secret_hash` keeps the stored one.
    #[serde(rename = "oauth-clients")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub oauth_clients: Option<Vec<Value>>,
    /// The global policies: an object replaces the store's document, `null` deletes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub policies: Option<Value>,
}

/// Keeps an explicit `null` (delete) apart from a key left out (`None`: not touched), which
/// `Option`'s own deserializer would merge.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PushParams {
    /// Validate and report the changes without writing them.
    #[serde(default)]
    dry_run: bool,
}

/// One change a push made (or, with `dry_run`, would make).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PushChange {
    /// `create`, `update` or `delete`.
    pub action: String,
    pub kind: String,
    pub name: String,
}

/// What a push did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushResult {
    /// In the order written; empty when the store already matched.
    pub changes: Vec<PushChange>,
    /// Entities of the body the file defines (read-only here), left alone.
    pub skipped: Vec<PushChange>,
    pub dry_run: bool,
}

#[utoipa::path(post, path = "/api/v1/config/push", tag = "config", operation_id = "push_config",
    params(PushParams), request_body = PushRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Applied in one transaction (or, with `dry_run`, checked)", body = PushResult),
        (status = 400, description = "Invalid; nothing was written. `details` name the entities", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "The result would leave entities depending on deleted ones", body = ErrorBody)))]
pub(crate) async fn push(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<PushParams>, QueryRejection>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let params = crate::body::query(q)?;
    let (desired, policies) = desired(body)?;
    let base = state.base();
    let _one_writer = state.inner.writes.lock().await;
    let mut tx = state.store().begin_write().await?;
    let (_, records) = tx.snapshot().await?;
    let mut plan = plan(&base, &records, desired)?;
    plan_policies(&base, &records, policies, &mut plan);
    let changes: Vec<Change<'_>> = plan.writes.iter().map(Write::change).collect();
    let problems = validate::check_all(&base, &records, &changes);
    // A push has no single entity to blame: what it breaks is invalid input (400), unless
    // only deletions are refused, which is the entity API's dependency conflict (409).
    let status = if plan.writes.iter().any(|w| w.doc.is_some()) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::CONFLICT
    };
    refuse(problems, status)?;
    if !params.dry_run {
        write_all(&mut tx, &plan.writes, &caller.actor).await?;
        tx.commit().await?;
        tracing::info!(changes = plan.writes.len(), actor = %caller.actor, "configuration pushed");
    }
    let result = PushResult {
        changes: plan.writes.iter().map(Write::summary).collect(),
        skipped: plan.skipped,
        dry_run: params.dry_run,
    };
    Ok((StatusCode::OK, Json(result)).into_response())
}

/// One entity to write: `doc` to create or replace it, `None` to delete it.
#[derive(Debug)]
struct Write {
    kind: &'static str,
    name: String,
    doc: Option<Value>,
    exists: bool,
}

impl Write {
    fn change(&self) -> Change<'_> {
        match &self.doc {
            Some(doc) => Change::Put {
                kind: self.kind,
                name: &self.name,
                doc,
            },
            None => Change::Delete {
                kind: self.kind,
                name: &self.name,
            },
        }
    }

    fn action(&self) -> &'static str {
        match (&self.doc, self.exists) {
            (None, _) => "delete",
            (Some(_), true) => "update",
            (Some(_), false) => "create",
        }
    }

    fn summary(&self) -> PushChange {
        PushChange {
            action: self.action().to_owned(),
            kind: self.kind.to_owned(),
            name: self.name.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct Plan {
    writes: Vec<Write>,
    skipped: Vec<PushChange>,
}

/// The desired entities per section.
type Sections = BTreeMap<&'static str, Vec<Value>>;

/// The body's sections, each item an object with a valid, unique name, and its global
/// policies (`Some(Null)`: delete them).
fn desired(body: Value) -> Result<(Sections, Option<Value>), ApiError> {
    let request: PushRequest = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        invalid(vec![Detail::new(path, e.inner().to_string())])
    })?;
    if let Some(doc) = &request.policies {
        if !matches!(doc, Value::Object(_) | Value::Null) {
            let msg = "expected an object (the global policies), or null to delete them";
            return Err(invalid(vec![Detail::new(POLICIES, msg)]));
        }
    }
    let sections = [
        request.upstreams,
        request.routes,
        request.consumers,
        request.plans,
        request.oauth_clients,
    ];
    let mut out = BTreeMap::new();
    for (kind, items) in PUSHED.into_iter().zip(sections) {
        let Some(items) = items else { continue };
        let mut seen = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let field = kinds::key_field(kind);
            let at = |f: &str| format!("{kind}[{i}]{f}");
            let Some(name) = key_of(kind, item) else {
                let msg = format!("an object with a string `{field}` is required");
                return Err(invalid(vec![Detail::new(at(""), msg)]));
            };
            check_name(field, name).map_err(|e| e.prefixed(&at(".")))?;
            if !seen.insert(name.to_owned()) {
                let msg = format!("{name:?} is used twice in this section");
                return Err(invalid(vec![Detail::new(at(&format!(".{field}")), msg)]));
            }
        }
        out.insert(kind, items);
    }
    Ok((out, request.policies))
}

/// Adds the global policies' write to `plan`, if the body has them and they differ from
/// the store's. The file's `policies:` win whole, so a document pushed then is skipped.
fn plan_policies(base: &Value, records: &[Record], desired: Option<Value>, plan: &mut Plan) {
    let Some(desired) = desired else { return };
    let doc = (!desired.is_null()).then_some(desired);
    if doc.is_some() && !validate::base_names(base, POLICIES).is_empty() {
        plan.skipped.push(PushChange {
            action: "skip".to_owned(),
            kind: POLICIES.to_owned(),
            name: GLOBAL.to_owned(),
        });
        return;
    }
    let existing = records
        .iter()
        .find(|r| r.kind == POLICIES && r.name == GLOBAL);
    match (doc, existing) {
        (None, None) => {}
        (Some(doc), Some(r)) if r.doc == doc => {}
        (doc, existing) => plan.writes.push(Write {
            kind: POLICIES,
            name: GLOBAL.to_owned(),
            doc,
            exists: existing.is_some(),
        }),
    }
}

/// Compares the desired sections with the store's entities (read under the lock).
fn plan(
    base: &Value,
    records: &[Record],
    desired: BTreeMap<&'static str, Vec<Value>>,
) -> Result<Plan, ApiError> {
    let mut plan = Plan::default();
    for (kind, items) in desired {
        if !items.is_empty() {
            if let Some(why) = kinds::homeless(base, kind) {
                return Err(invalid(vec![Detail::new(kind, why)]));
            }
        }
        let fixed = validate::base_names(base, kind);
        let mut current: BTreeMap<&str, &Record> = records
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| (r.name.as_str(), r))
            .collect();
        for mut doc in items {
            let name = key_of(kind, &doc).unwrap_or_default().to_owned();
            if fixed.contains(&name) {
                plan.skipped.push(PushChange {
                    action: "skip".to_owned(),
                    kind: kind.to_owned(),
                    name,
                });
                continue;
            }
            let existing = current.remove(name.as_str());
            kinds_complete(kind, &mut doc, existing)
                .map_err(|e| e.prefixed(&format!("{kind}[{name:?}].")))?;
            if existing.is_some_and(|r| r.doc == doc) {
                continue;
            }
            let exists = existing.is_some();
            plan.writes.push(Write {
                kind,
                name,
                doc: Some(doc),
                exists,
            });
        }
        for (name, _) in current {
            plan.writes.push(Write {
                kind,
                name: name.to_owned(),
                doc: None,
                exists: true,
            });
        }
    }
    Ok(plan)
}

/// Every write, in the open transaction; any failure drops it, which rolls all of them back.
async fn write_all(tx: &mut WriteTx, writes: &[Write], actor: &str) -> Result<(), ApiError> {
    for w in writes {
        match (&w.doc, w.exists) {
            (Some(doc), false) => {
                tx.create(w.kind, &w.name, doc.clone(), actor).await?;
            }
            (Some(doc), true) => {
                tx.update(w.kind, &w.name, doc.clone(), None, actor).await?;
            }
            (None, _) => tx.delete(w.kind, &w.name, None, actor).await?,
        }
    }
    Ok(())
}
