//! Entity CRUD, the same for every kind: list, create, get, replace, delete, with ETags
//! from the store's revisions and validation against the effective configuration.
//!
//! Each kind gets thin handlers from [`entity_api!`] so its OpenAPI operations name its
//! own schema; the behaviour lives once, in the functions here.

use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use turnpike_store::{ListQuery, MAX_LIMIT, Record, WriteTx};
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::body::{etag, segment};
use crate::error::{ApiError, Detail, singular};
use crate::kinds::{self, key_field, public_view};
use crate::state::AdminState;
use crate::validate::{self, Change};

/// Longest entity name accepted; names are path segments and log fields.
const MAX_NAME: usize = 200;

/// Paging and filtering of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Items per page, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// The previous page's `next`: names after this one.
    after: Option<String>,
    /// Only names starting with this.
    prefix: Option<String>,
}

/// One page of entities, in name order.
#[derive(Debug, Serialize)]
pub(crate) struct Page {
    items: Vec<Value>,
    next: Option<String>,
}

pub(crate) async fn list(
    state: &AdminState,
    kind: &str,
    params: ListParams,
) -> Result<Json<Page>, ApiError> {
    let query = list_query(params)?;
    let page = state.store().list(kind, &query).await?;
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|r| public_view(kind, r.doc))
            .collect(),
        next: page.next,
    }))
}

/// The store query for a list's parameters; a `limit` out of range is a 400.
pub(crate) fn list_query(params: ListParams) -> Result<ListQuery, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )
        .with_details(vec![Detail::new("limit", format!("found {limit}"))]));
    }
    Ok(ListQuery {
        limit,
        after: params.after,
        prefix: params.prefix,
    })
}

pub(crate) async fn get(state: &AdminState, kind: &str, name: &str) -> Result<Response, ApiError> {
    match state.store().get(kind, name).await? {
        Some(record) => Ok(entity(StatusCode::OK, &record, None)),
        None => Err(not_found(kind, name)),
    }
}

pub(crate) async fn create(
    state: &AdminState,
    caller: &Caller,
    kind: &str,
    doc: Value,
) -> Result<Response, ApiError> {
    let record = create_record(state, caller, kind, doc).await?;
    let location = format!("/api/v1/{kind}/{}", segment(&record.name));
    Ok(entity(StatusCode::CREATED, &record, Some(location)))
}

/// [`create`] without the response: the stored record.
pub(crate) async fn create_record(
    state: &AdminState,
    caller: &Caller,
    kind: &str,
    mut doc: Value,
) -> Result<Record, ApiError> {
    let field = key_field(kind);
    let name = match doc.get(field) {
        Some(Value::String(name)) => name.clone(),
        _ if !doc.is_object() => return Err(not_object()),
        _ => {
            let msg = format!("a string `{field}` is required");
            return Err(invalid(vec![Detail::new(field, msg)]));
        }
    };
    check_name(field, &name)?;
    let _one_writer = state.inner.writes.lock().await;
    let Locked {
        base,
        records,
        mut tx,
    } = lock(state, kind, &name).await?;
    if find(&records, kind, &name).is_some() {
        let what = singular(kind);
        return Err(ApiError::conflict(
            "already_exists",
            format!("{what} {name:?} already exists"),
        ));
    }
    complete(state, kind, &name, &mut doc, None)?;
    let put = Change::Put {
        kind,
        name: &name,
        doc: &doc,
    };
    refuse(
        validate::check(&base, &records, put),
        StatusCode::BAD_REQUEST,
    )?;
    let record = tx.create(kind, &name, doc, &caller.actor).await?;
    tx.commit().await?;
    Ok(record)
}

/// What a kind checks or fills in under the writer lock, before validation: a PUT may leave
/// out an OAuth client's `secret_hash` (kept from `existing`). Certificates go through
/// [`complete`] only, which has the secrets key their private keys are encrypted with.
pub(crate) fn kinds_complete(
    kind: &str,
    doc: &mut Value,
    existing: Option<&Record>,
) -> Result<(), ApiError> {
    match kind {
        kinds::OAUTH_CLIENTS => crate::oauth_clients::complete(doc, existing),
        // Never stored through a path that cannot encrypt the key (`config push` refuses
        // the section before this; this keeps it so if that changes).
        kinds::CERTIFICATES => Err(ApiError::bad_request(
            "invalid_request",
            "certificates are written through /api/v1/certificates only",
        )),
        _ => Ok(()),
    }
}

/// [`kinds_complete`] for the entity API: a certificate's PEM must parse (which `load_value`
/// does not check), a PUT may leave out its `key` (kept from `existing`), and the key is
/// encrypted for the store.
fn complete(
    state: &AdminState,
    kind: &str,
    name: &str,
    doc: &mut Value,
    existing: Option<&Record>,
) -> Result<(), ApiError> {
    if kind == kinds::CERTIFICATES {
        return crate::certificates::complete(doc, name, existing, state.secrets());
    }
    kinds_complete(kind, doc, existing)
}

pub(crate) async fn replace(
    state: &AdminState,
    caller: &Caller,
    kind: &str,
    name: &str,
    headers: &HeaderMap,
    mut doc: Value,
) -> Result<Response, ApiError> {
    let expect = crate::body::if_match(headers)?;
    let Some(fields) = doc.as_object_mut() else {
        return Err(not_object());
    };
    // The name is the key in the URL; the body may leave it out but not contradict it.
    let field = key_field(kind);
    match fields.get(field) {
        None => {
            fields.insert(field.to_owned(), Value::String(name.to_owned()));
        }
        Some(Value::String(n)) if n == name => {}
        Some(_) => {
            let msg = format!("must be {name:?}, as in the URL (entities cannot be renamed)");
            return Err(invalid(vec![Detail::new(field, msg)]));
        }
    }
    let _one_writer = state.inner.writes.lock().await;
    let Locked {
        base,
        records,
        mut tx,
    } = lock(state, kind, name).await?;
    let existing = find(&records, kind, name).ok_or_else(|| not_found(kind, name))?;
    precondition(existing, expect)?;
    complete(state, kind, name, &mut doc, Some(existing))?;
    let put = Change::Put {
        kind,
        name,
        doc: &doc,
    };
    refuse(
        validate::check(&base, &records, put),
        StatusCode::BAD_REQUEST,
    )?;
    let record = tx.update(kind, name, doc, expect, &caller.actor).await?;
    tx.commit().await?;
    Ok(entity(StatusCode::OK, &record, None))
}

pub(crate) async fn delete(
    state: &AdminState,
    caller: &Caller,
    kind: &str,
    name: &str,
    headers: &HeaderMap,
) -> Result<StatusCode, ApiError> {
    let expect = crate::body::if_match(headers)?;
    let _one_writer = state.inner.writes.lock().await;
    let Locked {
        base,
        records,
        mut tx,
    } = lock(state, kind, name).await?;
    let existing = find(&records, kind, name).ok_or_else(|| not_found(kind, name))?;
    precondition(existing, expect)?;
    refuse(
        validate::check(&base, &records, Change::Delete { kind, name }),
        StatusCode::CONFLICT,
    )?;
    tx.delete(kind, name, expect, &caller.actor).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A write in progress: the store's writer lock (held until `tx` commits or drops) and what
/// the write is validated against, read under that lock. Another admin process writing at
/// the same moment waits for the lock, so it validates against this write's result.
pub(crate) struct Locked {
    pub(crate) base: std::sync::Arc<Value>,
    pub(crate) records: Vec<Record>,
    pub(crate) tx: WriteTx,
}

/// Refuses names the file defines, then takes the store's writer lock and reads every
/// entity under it.
pub(crate) async fn lock(state: &AdminState, kind: &str, name: &str) -> Result<Locked, ApiError> {
    let base = state.base();
    if validate::base_names(&base, kind).iter().any(|n| n == name) {
        return Err(ApiError::conflict(
            "read_only",
            format!(
                "{} {name:?} is defined in the configuration file; change it there",
                singular(kind)
            ),
        ));
    }
    let mut tx = state.store().begin_write().await?;
    let (_, records) = tx.snapshot().await?;
    Ok(Locked { base, records, tx })
}

pub(crate) fn find<'r>(records: &'r [Record], kind: &str, name: &str) -> Option<&'r Record> {
    records.iter().find(|r| r.kind == kind && r.name == name)
}

/// Checks `If-Match` before validating, so a stale writer hears 412 and not about fields.
/// The store checks it again inside its transaction.
fn precondition(record: &Record, expect: Option<i64>) -> Result<(), ApiError> {
    match expect {
        Some(revision) if revision != record.revision => {
            Err(turnpike_store::StoreError::RevisionMismatch {
                current: record.revision,
            }
            .into())
        }
        _ => Ok(()),
    }
}

pub(crate) fn refuse(problems: Vec<Detail>, status: StatusCode) -> Result<(), ApiError> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(if status == StatusCode::CONFLICT {
        ApiError::conflict(
            "conflict",
            "other entities depend on this one; change them first",
        )
        .with_details(problems)
    } else {
        invalid(problems)
    })
}

pub(crate) fn invalid(details: Vec<Detail>) -> ApiError {
    let n = details.len();
    let s = if n == 1 { "" } else { "s" };
    ApiError::bad_request(
        "invalid_entity",
        format!("the entity is invalid ({n} problem{s})"),
    )
    .with_details(details)
}

fn not_object() -> ApiError {
    invalid(vec![Detail::new("", "expected a JSON object")])
}

pub(crate) fn not_found(kind: &str, name: &str) -> ApiError {
    ApiError::not_found(format!("{} {name:?} not found", singular(kind)))
}

pub(crate) fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let problem = if name.trim().is_empty() {
        "must not be empty"
    } else if name.len() > MAX_NAME {
        "is too long (at most 200 bytes)"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(invalid(vec![Detail::new(field, problem)]))
}

/// An entity response: the document as written (less a certificate's key), with its
/// revision as ETag.
pub(crate) fn entity(status: StatusCode, record: &Record, location: Option<String>) -> Response {
    let doc = public_view(&record.kind, record.doc.clone());
    let mut response = (status, Json(doc)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag(record.revision)) {
        headers.insert(header::ETAG, v);
    }
    if let Some(v) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, v);
    }
    response
}

/// The `{name}` path segment, or a JSON 400.
pub(crate) fn name(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(n)| n)
        .map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))
}

/// Handlers and OpenAPI operations for one kind; see the module docs.
macro_rules! entity_api {
    ($module:ident, $kind:tt, $one:tt, $schema:ident, $list:ident, $collection:tt, $item:tt) => {
        entity_api!($module, $kind, $one, $schema, $list, $collection, $item,
            input = $schema, created = $schema, create = entities::create);
    };
    // `input`: the request body's schema where it differs from the entity's (fields the
    // response leaves out, or a POST/PUT may); `created`, `create`: POST's response and
    // handler, for kinds whose creation returns more than the entity (a client secret).
    ($module:ident, $kind:tt, $one:tt, $schema:ident, $list:ident, $collection:tt, $item:tt,
        input = $input:ident, created = $created:ident, create = $create:path) => {
        pub(crate) mod $module {
            use axum::Extension;
            use axum::extract::rejection::{PathRejection, QueryRejection};
            use axum::extract::{Path, Query, State};
            use axum::response::{IntoResponse, Response};
            use http::HeaderMap;

            #[allow(unused_imports, reason = "named only by the OpenAPI attributes")]
            use crate::error::ErrorBody;
            #[allow(unused_imports, reason = "named only by the OpenAPI attributes")]
            use crate::schema;
            use crate::auth::Caller;
            use crate::body::JsonBody;
            use crate::entities::{self, ListParams};
            use crate::error::ApiError;
            use crate::state::AdminState;

            #[utoipa::path(get, path = $collection, tag = $kind, operation_id = concat!("list_", $kind), params(ListParams),
                security(("bearer" = [])),
                responses((status = 200, description = "One page, in name order", body = schema::$list),
                    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
            pub(crate) async fn list(
                State(state): State<AdminState>,
                q: Result<Query<ListParams>, QueryRejection>,
            ) -> Result<Response, ApiError> {
                let params = crate::body::query(q)?;
                Ok(entities::list(&state, $kind, params).await?.into_response())
            }

            #[utoipa::path(post, path = $collection, tag = $kind, operation_id = concat!("create_", $one), request_body = schema::$input,
                security(("bearer" = [])),
                responses((status = 201, description = "Created; `ETag` and `Location` set", body = schema::$created),
                    (status = 400, description = "Invalid; `details` name the fields", body = ErrorBody),
                    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
                    (status = 409, description = "The name is taken or defined in the file", body = ErrorBody)))]
            pub(crate) async fn create(
                State(state): State<AdminState>,
                Extension(caller): Extension<Caller>,
                JsonBody(doc): JsonBody,
            ) -> Result<Response, ApiError> {
                $create(&state, &caller, $kind, doc).await
            }

            #[utoipa::path(get, path = $item, tag = $kind, operation_id = concat!("get_", $one),
                params(("name" = String, Path, description = "The entity's name")),
                security(("bearer" = [])),
                responses((status = 200, description = "The entity; `ETag` is its revision", body = schema::$schema),
                    (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
            pub(crate) async fn get(
                State(state): State<AdminState>,
                name: Result<Path<String>, PathRejection>,
            ) -> Result<Response, ApiError> {
                entities::get(&state, $kind, &entities::name(name)?).await
            }

            #[utoipa::path(put, path = $item, tag = $kind, operation_id = concat!("replace_", $one), request_body = schema::$input,
                params(("name" = String, Path, description = "The entity's name"),
                    ("If-Match" = Option<String>, Header, description = "Replace only at this revision (its ETag)")),
                security(("bearer" = [])),
                responses((status = 200, description = "Replaced; `ETag` is the new revision", body = schema::$schema),
                    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
                    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
                    (status = 409, body = ErrorBody),
                    (status = 412, description = "`If-Match` is not the current revision", body = ErrorBody)))]
            pub(crate) async fn replace(
                State(state): State<AdminState>,
                Extension(caller): Extension<Caller>,
                name: Result<Path<String>, PathRejection>,
                headers: HeaderMap,
                JsonBody(doc): JsonBody,
            ) -> Result<Response, ApiError> {
                let name = entities::name(name)?;
                entities::replace(&state, &caller, $kind, &name, &headers, doc).await
            }

            #[utoipa::path(delete, path = $item, tag = $kind, operation_id = concat!("delete_", $one),
                params(("name" = String, Path, description = "The entity's name"),
                    ("If-Match" = Option<String>, Header, description = "Delete only at this revision (its ETag)")),
                security(("bearer" = [])),
                responses((status = 204, description = "Deleted"),
                    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
                    (status = 404, body = ErrorBody),
                    (status = 409, description = "Other entities use it", body = ErrorBody),
                    (status = 412, body = ErrorBody)))]
            pub(crate) async fn delete(
                State(state): State<AdminState>,
                Extension(caller): Extension<Caller>,
                name: Result<Path<String>, PathRejection>,
                headers: HeaderMap,
            ) -> Result<Response, ApiError> {
                let name = entities::name(name)?;
                let status = entities::delete(&state, &caller, $kind, &name, &headers).await?;
                Ok(status.into_response())
            }
        }
    };
}

entity_api!(
    upstreams,
    "upstreams",
    "upstream",
    Upstream,
    UpstreamList,
    "/api/v1/upstreams",
    "/api/v1/upstreams/{name}"
);
entity_api!(
    routes,
    "routes",
    "route",
    Route,
    RouteList,
    "/api/v1/routes",
    "/api/v1/routes/{name}"
);
entity_api!(
    consumers,
    "consumers",
    "consumer",
    Consumer,
    ConsumerList,
    "/api/v1/consumers",
    "/api/v1/consumers/{name}"
);
entity_api!(
    plans,
    "plans",
    "plan",
    Plan,
    PlanList,
    "/api/v1/plans",
    "/api/v1/plans/{name}"
);
entity_api!(
    oauth_clients,
    "oauth-clients",
    "oauth_client",
    OAuthClient,
    OAuthClientList,
    "/api/v1/oauth-clients",
    "/api/v1/oauth-clients/{name}",
    input = OAuthClientInput,
    created = CreatedOAuthClient,
    create = crate::oauth_clients::create
);
entity_api!(
    certificates,
    "certificates",
    "certificate",
    CertificateInfo,
    CertificateList,
    "/api/v1/certificates",
    "/api/v1/certificates/{name}",
    input = Certificate,
    created = CertificateInfo,
    create = entities::create
);
