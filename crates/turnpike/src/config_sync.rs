//! `turnpike config export | push | diff`: the store's upstreams, routes, consumers, plans
//! and OAuth clients (`oauth.clients`) as YAML, through the admin API. Certificates are not
//! moved: the API never returns their private keys, so an export could not push them back.
//!
//! The rule (docs/admin.md, "File and store: the rule"): `export` prints the store's entity
//! sections only, a document to keep as a second file and `push` back; `export --merged
//! FILE` prints FILE (the gateway's own, as written) with the store's entities appended, the
//! whole served configuration. `push FILE` makes the store's entities equal to FILE's
//! sections, like decK sync, with one request (`POST /api/v1/config/push`) that the admin
//! API validates as a whole and writes in one transaction: all of it applies, or none.
//! Names the gateway's file defines are read-only and skipped with a note. Documents are
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

fn change(kind: &'static str, name: String) -> Change {
    Change {
        action: Action::Create,
        kind,
        name,
        fields: Vec::new(),
    }
}

/// FILE's sections, each checked for a name per item and no name twice.
fn desired_sections(file: &Path) -> anyhow::Result<BTreeMap<&'static str, Vec<Value>>> {
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
    Ok(sections)
}

/// Sends FILE's sections in one request; the admin API validates them as a whole and
/// writes them in one transaction, so a refusal changes nothing.
async fn push(client: &AdminClient, file: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let body: Map<String, Value> = desired_sections(file)?
        .into_iter()
        .map(|(kind, items)| (kind.to_owned(), Value::Array(items)))
        .collect();
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
        let kind = field(&c, "kind");
        println!(
            "{} {} {}",
            action.verb(true),
            singular(&kind),
            field(&c, "name")
        );
    }
    for c in list("skipped") {
        eprintln!(
            "note: {} {} is defined in the gateway's configuration file (read-only through the API); skipped",
            singular(&field(&c, "kind")),
            field(&c, "name")
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
