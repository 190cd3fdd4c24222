//! `turnpike config export | push | diff`: the store's upstreams, routes, consumers, plans,
//! OAuth clients (`oauth.clients`) and global policies (`policies`) as YAML, through the
//! admin API. Certificates are not moved: the API never returns their private keys, so an
//! export could not push them back.
//!
//! The rule (docs/admin.md, "File and store: the rule"): `export` prints the store's entity
//! sections only, a document to keep as a second file and `push` back; `export --merged
//! FILE` prints FILE (the gateway's own, as written) with the store's entities appended, the
//! whole served configuration. `push FILE` makes the store's entities equal to FILE's
//! sections, like decK sync, with one request (`POST /api/v1/config/push`) that the admin
//! API validates as a whole and writes in one transaction: all of it applies, or none.
//! Names the gateway's file defines are read-only and skipped with a note, and so are
//! FILE's `policies` when the gateway's file sets its own (its section wins whole); FILE
//! without `policies` deletes the store's, like any missing entity. Documents are
//! sent as written (no `${VAR}` substitution), so `export` returns them unchanged: the
//! round trip is lossless.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use http::Method;
use serde_json::{Map, Value, json};

use crate::admin_cli::singular;
use crate::admin_client::{AdminClient, runtime};
use crate::cli::{ConfigArgs, ConfigCommand, Output};
use crate::diff::{FieldChange, field_changes};
use crate::policies_cli::SOURCE_HEADER;

/// The API's kind of OAuth clients; in YAML they are `oauth.clients`.
const OAUTH_CLIENTS: &str = "oauth-clients";
/// The kinds `config` moves, in the order `diff` lists them (referenced kinds first).
pub const SECTIONS: [&str; 5] = ["upstreams", "plans", "routes", "consumers", OAUTH_CLIENTS];
/// The order `export` writes them in, like the config file's documentation.
const EXPORT_ORDER: [&str; 5] = ["upstreams", "routes", "consumers", "plans", OAUTH_CLIENTS];
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

/// The API's kind (and the YAML section) of the global policies, one document.
const POLICIES: &str = "policies";
/// The store's name of that document, as the API reports its changes.
const GLOBAL: &str = "global";

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

/// The store's entities (non-empty kinds only), in [`EXPORT_ORDER`].
async fn store_sections(client: &AdminClient) -> anyhow::Result<Vec<(&'static str, Vec<Value>)>> {
    let mut out = Vec::new();
    for kind in EXPORT_ORDER {
        let items = client.list_all(kind).await?;
        if !items.is_empty() {
            out.push((kind, items));
        }
    }
    Ok(out)
}

/// The field that names an entity of `kind`.
fn key(kind: &str, doc: &Value) -> String {
    let field = if kind == OAUTH_CLIENTS {
        "client_id"
    } else {
        "name"
    };
    doc.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Where `kind` lives in a configuration document: `oauth.clients`, or its own section.
fn file_items<'d>(doc: &'d Value, kind: &str) -> Option<&'d Value> {
    if kind == OAUTH_CLIENTS {
        doc.get("oauth").and_then(|o| o.get("clients"))
    } else {
        doc.get(kind)
    }
}

/// Appends `items` of `kind` to their place in `doc` (creating `oauth:` if need be).
fn append(doc: &mut Map<String, Value>, kind: &str, items: Vec<Value>) -> anyhow::Result<()> {
    let (parent, section) = if kind == OAUTH_CLIENTS {
        let oauth = doc.entry("oauth").or_insert_with(|| json!({}));
        let Value::Object(oauth) = oauth else {
            bail!("`oauth` is not a mapping");
        };
        (oauth, "clients")
    } else {
        (doc, kind)
    };
    let slot = parent.entry(section).or_insert_with(|| json!([]));
    let Value::Array(list) = slot else {
        bail!("`{section}` is not a list");
    };
    list.extend(items);
    Ok(())
}

async fn export(
    client: &AdminClient,
    merged: Option<&Path>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let store = store_sections(client).await?;
    let mut doc = match merged {
        None => Map::new(),
        Some(file) => match read_yaml(file)? {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            _ => bail!("{} is not a configuration file (a mapping)", file.display()),
        },
    };
    for (kind, items) in store {
        append(&mut doc, kind, items).with_context(|| match merged {
            Some(file) => file.display().to_string(),
            None => "export".to_owned(),
        })?;
    }
    // A file that sets `policies:` keeps them: the gateway serves the file's then.
    if let Some(policies) = store_policies(client).await?.stored {
        let slot = doc.entry(POLICIES).or_insert(Value::Null);
        if slot.is_null() || slot.as_object().is_some_and(Map::is_empty) {
            *slot = policies;
        }
    }
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&doc)?),
        Output::Text => print!("{}", crate::yaml::emit_document(&doc, &FILE_ORDER)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The global policies as the admin API has them.
struct StorePolicies {
    /// The store's document; `None` when it holds none, or when the file's apply (the API
    /// shows those instead).
    stored: Option<Value>,
    /// The gateway's file sets `policies:`, so the store's are read-only.
    file_sets: bool,
}

async fn store_policies(client: &AdminClient) -> anyhow::Result<StorePolicies> {
    let reply = client.get("/api/v1/policies").await?;
    let source = reply
        .headers
        .get(SOURCE_HEADER)
        .and_then(|v| v.to_str().ok());
    Ok(StorePolicies {
        file_sets: source == Some("file"),
        stored: (source == Some("store")).then_some(reply.body),
    })
}

/// FILE's `policies` (`None` when it has none), which must be a mapping.
fn file_policies(doc: &Value, shown: &std::path::Display<'_>) -> anyhow::Result<Option<Value>> {
    match doc.get(POLICIES) {
        None | Some(Value::Null) => Ok(None),
        Some(p @ Value::Object(_)) => Ok(Some(p.clone())),
        Some(_) => bail!("{shown}: `policies` must be a mapping"),
    }
}

/// "route api", or "global policies" for the one document without a name of its own.
pub fn label(kind: &str, name: &str) -> String {
    if kind == POLICIES {
        "global policies".to_owned()
    } else {
        format!("{} {name}", singular(kind))
    }
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
    let (desired, policies) = desired_sections(file)?;
    let read_only = client.get("/api/v1/file-entities").await?.body;
    let mut plan = Plan::default();
    plan_policies(&mut plan, policies, store_policies(client).await?);
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
            .map(|d| (key(kind, &d), d))
            .collect();
        for doc in &desired[kind] {
            let name = key(kind, doc);
            if fixed.contains(name.as_str()) {
                plan.skipped.push((kind, name));
                continue;
            }
            let change = match current.remove(&name) {
                Some(now) if now == *doc => continue,
                Some(now) => Change {
                    action: Action::Update,
                    fields: field_changes(&now, doc),
                    ..change(kind, name)
                },
                None => change(kind, name),
            };
            plan.changes.push(change);
        }
        for (name, _) in current {
            plan.changes.push(Change {
                action: Action::Delete,
                ..change(kind, name)
            });
        }
    }
    Ok(plan)
}

/// The global policies' change, if FILE's differ from the store's.
fn plan_policies(plan: &mut Plan, desired: Option<Value>, store: StorePolicies) {
    let name = GLOBAL.to_owned();
    if store.file_sets {
        if desired.is_some() {
            plan.skipped.push((POLICIES, name));
        }
        return;
    }
    let change = match (desired, store.stored) {
        (None, None) => return,
        (Some(want), Some(now)) if want == now => return,
        (Some(want), Some(now)) => Change {
            action: Action::Update,
            fields: field_changes(&now, &want),
            ..change(POLICIES, name)
        },
        (Some(_), None) => change(POLICIES, name),
        (None, Some(_)) => Change {
            action: Action::Delete,
            ..change(POLICIES, name)
        },
    };
    plan.changes.push(change);
}

fn change(kind: &'static str, name: String) -> Change {
    Change {
        action: Action::Create,
        kind,
        name,
        fields: Vec::new(),
    }
}

/// FILE's entity sections and its global policies.
type Desired = (BTreeMap<&'static str, Vec<Value>>, Option<Value>);

/// FILE's sections, each checked for a name per item and no name twice, and its global
/// policies.
fn desired_sections(file: &Path) -> anyhow::Result<Desired> {
    let doc = read_yaml(file)?;
    let shown = file.display();
    if !matches!(doc, Value::Object(_) | Value::Null) {
        bail!("{shown} is not a configuration file (a mapping)");
    }
    let mut sections = BTreeMap::new();
    for kind in SECTIONS {
        let at = if kind == OAUTH_CLIENTS {
            "oauth.clients"
        } else {
            kind
        };
        let items = match file_items(&doc, kind) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => bail!("{shown}: `{at}` must be a list"),
        };
        let mut seen = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let name = key(kind, item);
            if name.is_empty() {
                let field = if kind == OAUTH_CLIENTS {
                    "client_id"
                } else {
                    "name"
                };
                bail!("{shown}: {at}[{i}] has no `{field}`");
            }
            if !seen.insert(name.clone()) {
                bail!("{shown}: {at}[{i}]: the name {name:?} is used twice");
            }
        }
        sections.insert(kind, items);
    }
    Ok((sections, file_policies(&doc, &shown)?))
}

/// Sends FILE's sections in one request; the admin API validates them as a whole and
/// writes them in one transaction, so a refusal changes nothing.
async fn push(client: &AdminClient, file: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let (sections, policies) = desired_sections(file)?;
    let mut body: Map<String, Value> = sections
        .into_iter()
        .map(|(kind, items)| (kind.to_owned(), Value::Array(items)))
        .collect();
    body.insert(POLICIES.to_owned(), policies.unwrap_or(Value::Null));
    let reply = client
        .call(
            Method::POST,
            "/api/v1/config/push",
            Some(&Value::Object(body)),
            None,
        )
        .await
        .context("the push was refused; nothing in the store was changed")?;
    print_pushed(&reply.body, output)?;
    Ok(ExitCode::SUCCESS)
}

/// What the push did, as the admin API answered it: a line per change, the skipped file
/// entities on stderr, a summary (or the answer itself as JSON).
fn print_pushed(result: &Value, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(result)?);
        return Ok(());
    }
    let field = |c: &Value, f: &str| {
        c.get(f)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let list = |key: &str| {
        result
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut counts = [0usize; 3];
    for c in list("changes") {
        let action = match field(&c, "action").as_str() {
            "create" => Action::Create,
            "update" => Action::Update,
            _ => Action::Delete,
        };
        counts[action as usize] += 1;
        let what = label(&field(&c, "kind"), &field(&c, "name"));
        println!("{} {what}", action.verb(true));
    }
    for c in list("skipped") {
        eprintln!(
            "note: {} {} defined in the gateway's configuration file (read-only through the API); skipped",
            label(&field(&c, "kind"), &field(&c, "name")),
            is_are(&field(&c, "kind"))
        );
    }
    let parts: Vec<String> = [Action::Create, Action::Update, Action::Delete]
        .into_iter()
        .filter(|a| counts[*a as usize] > 0)
        .map(|a| format!("{} {}", counts[a as usize], a.verb(true)))
        .collect();
    if parts.is_empty() {
        println!("no changes");
    } else {
        println!("{}", parts.join(", "));
    }
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
            println!("{} {}", c.action.verb(false), label(c.kind, &c.name));
            for f in &c.fields {
                println!("    {f}");
            }
        }
    }
    for (kind, name) in &plan.skipped {
        eprintln!(
            "note: {} {} defined in the gateway's configuration file (read-only through the API); skipped",
            label(kind, name),
            is_are(kind)
        );
    }
    println!("{}", summary(plan, done));
    Ok(())
}

/// "policies are", "route x is".
fn is_are(kind: &str) -> &'static str {
    if kind == POLICIES { "are" } else { "is" }
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
