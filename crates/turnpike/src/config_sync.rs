//! `turnpike config export | push | diff`: the store's upstreams, routes, consumers and
//! plans as YAML, through the admin API.
//!
//! The rule (docs/admin.md, "File and store: the rule"): `export` prints the store's entity
//! sections only, a document to keep as a second file and `push` back; `export --merged
//! FILE` prints FILE (the gateway's own, as written) with the store's entities appended, the
//! whole served configuration. `push FILE` makes the store's entities equal to FILE's four
//! sections, like decK sync: creates and updates first (upstreams, plans, routes,
//! consumers, so references resolve), then deletes in the reverse order, each update and
//! delete with `If-Match` on the revision it compared against. Names the gateway's file
//! defines are read-only and skipped with a note. Documents are sent as written (no
//! `${VAR}` substitution), so `export` returns them unchanged: the round trip is lossless.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::admin_cli::{name_of, singular};
use crate::admin_client::{AdminClient, ApiFailure, runtime, segment};
use crate::cli::{ConfigArgs, ConfigCommand, Output};
use crate::diff::{FieldChange, field_changes};

/// The sections the store holds, in the order creates must go (referenced kinds first).
pub const SECTIONS: [&str; 4] = ["upstreams", "plans", "routes", "consumers"];
/// The order `export` writes them in, like the config file's documentation.
const EXPORT_ORDER: [&str; 4] = ["upstreams", "routes", "consumers", "plans"];
/// The order of a whole file's sections in `export --merged` (others follow by name).
const FILE_ORDER: [&str; 12] = [
    "listen",
    "listeners",
    "server",
    "upstreams",
    "routes",
    "consumers",
    "plans",
    "auth",
    "oauth",
    "policies",
    "traffic",
    "admin",
];

/// Exit code of `diff` when `push` would change something.
const DIFFERENT: u8 = 2;

pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&args.admin.admin_url, args.admin.admin_ca.as_deref())?;
    let output = args.admin.output;
    runtime()?.block_on(async {
        match &args.command {
            ConfigCommand::Export { merged } => export(&client, merged.as_deref(), output).await,
            ConfigCommand::Diff { file } => {
                let plan = plan(&client, file).await?;
                print_plan(&plan, output, false)?;
                Ok(ExitCode::from(if plan.changes.is_empty() {
                    0
                } else {
                    DIFFERENT
                }))
            }
            ConfigCommand::Push { file } => push(&client, file, output).await,
        }
    })
}

/// The store's sections (non-empty ones only), in [`EXPORT_ORDER`].
async fn store_sections(client: &AdminClient) -> anyhow::Result<Map<String, Value>> {
    let mut doc = Map::new();
    for kind in EXPORT_ORDER {
        let items = client.list_all(kind).await?;
        if !items.is_empty() {
            doc.insert(kind.to_owned(), Value::Array(items));
        }
    }
    Ok(doc)
}

async fn export(
    client: &AdminClient,
    merged: Option<&Path>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let store = store_sections(client).await?;
    let doc = match merged {
        None => store,
        Some(file) => {
            let mut doc = match read_yaml(file)? {
                Value::Object(map) => map,
                Value::Null => Map::new(),
                _ => bail!("{} is not a configuration file (a mapping)", file.display()),
            };
            for (kind, items) in store {
                let slot = doc.entry(kind.clone()).or_insert_with(|| json!([]));
                let Value::Array(list) = slot else {
                    bail!("{}: `{kind}` is not a list", file.display());
                };
                list.extend(items.as_array().into_iter().flatten().cloned());
            }
            doc
        }
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&doc)?),
        Output::Text => print!("{}", crate::yaml::emit_document(&doc, &FILE_ORDER)),
    }
    Ok(ExitCode::SUCCESS)
}

fn read_yaml(file: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    crate::yaml::parse(&text).with_context(|| format!("{} is not valid", file.display()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    fn verb(self, done: bool) -> &'static str {
        match (self, done) {
            (Self::Create, false) => "create",
            (Self::Update, false) => "update",
            (Self::Delete, false) => "delete",
            (Self::Create, true) => "created",
            (Self::Update, true) => "updated",
            (Self::Delete, true) => "deleted",
        }
    }
}

#[derive(Debug)]
struct Change {
    action: Action,
    kind: &'static str,
    name: String,
    /// What FILE says (absent for a delete).
    desired: Option<Value>,
    /// What the store had when compared (absent for a create).
    current: Option<Value>,
    fields: Vec<FieldChange>,
}

/// What `push` would do, and the file entities it leaves alone.
#[derive(Debug, Default)]
struct Plan {
    changes: Vec<Change>,
    skipped: Vec<(&'static str, String)>,
}

/// Compares FILE's sections with the store's.
async fn plan(client: &AdminClient, file: &Path) -> anyhow::Result<Plan> {
    let desired = desired_sections(file)?;
    let read_only = client.get("/api/v1/file-entities").await?.body;
    let mut plan = Plan::default();
    for kind in SECTIONS {
        let fixed: BTreeSet<&str> = read_only
            .get(kind)
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut current: BTreeMap<String, Value> = client
            .list_all(kind)
            .await?
            .into_iter()
            .map(|d| (name_of(&d).to_owned(), d))
            .collect();
        for doc in &desired[kind] {
            let name = name_of(doc).to_owned();
            if fixed.contains(name.as_str()) {
                plan.skipped.push((kind, name));
                continue;
            }
            let change = match current.remove(&name) {
                Some(now) if now == *doc => continue,
                Some(now) => Change {
                    action: Action::Update,
                    fields: field_changes(&now, doc),
                    current: Some(now),
                    ..change(kind, name, Some(doc.clone()))
                },
                None => change(kind, name, Some(doc.clone())),
            };
            plan.changes.push(change);
        }
        for (name, now) in current {
            plan.changes.push(Change {
                action: Action::Delete,
                current: Some(now),
                ..change(kind, name, None)
            });
        }
    }
    Ok(plan)
}

fn change(kind: &'static str, name: String, desired: Option<Value>) -> Change {
    Change {
        action: Action::Create,
        kind,
        name,
        desired,
        current: None,
        fields: Vec::new(),
    }
}

/// FILE's four sections, each checked for a `name` per item and no name twice.
fn desired_sections(file: &Path) -> anyhow::Result<BTreeMap<&'static str, Vec<Value>>> {
    let doc = read_yaml(file)?;
    let shown = file.display();
    if !matches!(doc, Value::Object(_) | Value::Null) {
        bail!("{shown} is not a configuration file (a mapping)");
    }
    let mut sections = BTreeMap::new();
    for kind in SECTIONS {
        let items = match doc.get(kind) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => bail!("{shown}: `{kind}` must be a list"),
        };
        let mut seen = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let name = item.get("name").and_then(Value::as_str);
            let Some(name) = name.filter(|n| !n.is_empty()) else {
                bail!("{shown}: {kind}[{i}] has no `name`");
            };
            if !seen.insert(name.to_owned()) {
                bail!("{shown}: {kind}[{i}]: the name {name:?} is used twice");
            }
        }
        sections.insert(kind, items);
    }
    Ok(sections)
}

async fn push(client: &AdminClient, file: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let plan = plan(client, file).await?;
    // Creates and updates in SECTIONS order first, then deletes in reverse: a route moves
    // to a new upstream before the old upstream goes.
    let (mut deletes, writes): (Vec<&Change>, Vec<&Change>) = plan
        .changes
        .iter()
        .partition(|c| c.action == Action::Delete);
    deletes.reverse();
    let mut pending: Vec<&Change> = writes.into_iter().chain(deletes).collect();
    // Some checks span entities in ways no fixed order satisfies (a plan's quota needs a
    // route with `auth`); what the API refuses as invalid is tried again after the others,
    // as long as each pass gets something done.
    loop {
        let mut refused = Vec::new();
        let before = pending.len();
        for change in pending {
            match apply(client, change).await {
                Ok(()) if output == Output::Text => println!(
                    "{} {} {}",
                    change.action.verb(true),
                    singular(change.kind),
                    change.name
                ),
                Ok(()) => {}
                Err(e) if may_resolve(&e) => refused.push((change, e)),
                Err(e) => return Err(failed(change, e)),
            }
        }
        if refused.len() == before || refused.is_empty() {
            if let Some((change, e)) = refused.into_iter().next() {
                return Err(failed(change, e));
            }
            break;
        }
        pending = refused.into_iter().map(|(c, _)| c).collect();
    }
    print_plan(&plan, output, true)?;
    Ok(ExitCode::SUCCESS)
}

/// A refusal another change of the same push may cure (validation, dependency conflicts).
fn may_resolve(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiFailure>().is_some_and(|f| {
        f.status == StatusCode::BAD_REQUEST
            || (f.status == StatusCode::CONFLICT && f.code == "conflict")
    })
}

fn failed(change: &Change, e: anyhow::Error) -> anyhow::Error {
    e.context(format!(
        "{} {} {:?} failed; the changes listed above were applied (`turnpike config diff` shows what is left)",
        change.action.verb(false),
        singular(change.kind),
        change.name
    ))
}

/// One change, with `If-Match` on the revision whose document the plan compared against.
async fn apply(client: &AdminClient, change: &Change) -> anyhow::Result<()> {
    let path = format!("/api/v1/{}/{}", change.kind, segment(&change.name));
    if change.action == Action::Create {
        let path = format!("/api/v1/{}", change.kind);
        client
            .call(Method::POST, &path, change.desired.as_ref(), None)
            .await?;
        return Ok(());
    }
    let now = client.get(&path).await?;
    if Some(&now.body) != change.current.as_ref() {
        bail!("it changed in the store while pushing; run the push again");
    }
    let tag = now.etag.as_deref();
    match change.action {
        Action::Update => client.call(Method::PUT, &path, change.desired.as_ref(), tag),
        _ => client.call(Method::DELETE, &path, None, tag),
    }
    .await?;
    Ok(())
}

/// The plan as text (`done`: after a push, only the skips and the summary) or JSON.
fn print_plan(plan: &Plan, output: Output, done: bool) -> anyhow::Result<()> {
    if output == Output::Json {
        let changes: Vec<Value> = plan
            .changes
            .iter()
            .map(|c| {
                json!({"action": c.action.verb(false), "kind": c.kind, "name": c.name,
                    "fields": c.fields.iter().map(FieldChange::to_json).collect::<Vec<_>>()})
            })
            .collect();
        let skipped: Vec<Value> = plan
            .skipped
            .iter()
            .map(|(kind, name)| json!({"kind": kind, "name": name, "reason": "defined in the gateway's configuration file"}))
            .collect();
        let key = if done { "applied" } else { "changes" };
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({key: changes, "skipped": skipped}))?
        );
        return Ok(());
    }
    if !done {
        for c in &plan.changes {
            println!("{} {} {}", c.action.verb(false), singular(c.kind), c.name);
            for f in &c.fields {
                println!("    {f}");
            }
        }
    }
    for (kind, name) in &plan.skipped {
        eprintln!(
            "note: {} {name} is defined in the gateway's configuration file (read-only through the API); skipped",
            singular(kind)
        );
    }
    println!("{}", summary(plan, done));
    Ok(())
}

fn summary(plan: &Plan, done: bool) -> String {
    if plan.changes.is_empty() {
        return "no changes".to_owned();
    }
    let to = if done { "" } else { "to " };
    let parts: Vec<String> = [Action::Create, Action::Update, Action::Delete]
        .into_iter()
        .map(|a| (a, plan.changes.iter().filter(|c| c.action == a).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(a, n)| format!("{n} {to}{}", a.verb(done)))
        .collect();
    parts.join(", ")
}
