//! `turnpike policies get|set|delete`: the global policies (`policies:`) through the admin
//! API. `get` prints the document on stdout (YAML, or JSON with `--output json`) so that it
//! can be edited and given back to `set -f`; where it comes from and its revision go to
//! stderr.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use http::Method;
use serde_json::Value;

use crate::admin_client::{AdminClient, Reply, runtime};
use crate::cli::{Output, PoliciesArgs, PoliciesCommand};

const PATH: &str = "/api/v1/policies";
/// The admin API's header naming where the global policies in effect come from.
pub const SOURCE_HEADER: &str = "turnpike-policies-source";

pub fn run(args: &PoliciesArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&args.admin.admin_url, args.admin.admin_ca.as_deref())?;
    let output = args.admin.output;
    runtime()?.block_on(async {
        match &args.command {
            PoliciesCommand::Get => get(&client, output).await,
            PoliciesCommand::Set { file, if_revision } => {
                set(&client, file, *if_revision, output).await
            }
            PoliciesCommand::Delete => {
                client.call(Method::DELETE, PATH, None, None).await?;
                match output {
                    Output::Json => println!("{}", serde_json::json!({"deleted": "policies"})),
                    Output::Text => println!("deleted the store's global policies"),
                }
                Ok(())
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn get(client: &AdminClient, output: Output) -> anyhow::Result<()> {
    let reply = client.get(PATH).await?;
    let from = match header(&reply, SOURCE_HEADER).as_deref() {
        Some("store") => match revision(&reply) {
            Some(r) => format!("from the store, revision {r}"),
            None => "from the store".to_owned(),
        },
        Some("file") => {
            "from the gateway's configuration file (read-only through the API)".to_owned()
        }
        _ => "none: neither the file nor the store sets global policies".to_owned(),
    };
    eprintln!("# global policies {from}");
    print_doc(&reply.body, output)
}

async fn set(
    client: &AdminClient,
    file: &Path,
    if_revision: Option<i64>,
    output: Output,
) -> anyhow::Result<()> {
    let doc = read_policies(file)?;
    let tag = if_revision.map(|r| format!("\"{r}\""));
    let reply = client
        .call(Method::PUT, PATH, Some(&doc), tag.as_deref())
        .await?;
    match output {
        Output::Json => print_doc(&reply.body, output)?,
        Output::Text => match revision(&reply) {
            Some(r) => println!("stored the global policies (revision {r})"),
            None => println!("stored the global policies"),
        },
    }
    Ok(())
}

/// FILE's policies: a mapping of them, or a configuration file's `policies:` section (no
/// policy is named `policies`, so the two cannot be confused).
fn read_policies(file: &Path) -> anyhow::Result<Value> {
    let shown = file.display();
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {shown}"))?;
    let doc = crate::yaml::parse(&text).with_context(|| format!("{shown} is not valid"))?;
    match doc {
        Value::Object(mut map) => match map.remove("policies") {
            Some(section @ Value::Object(_)) => Ok(section),
            Some(_) => bail!("{shown}: `policies` must be a mapping"),
            None => Ok(Value::Object(map)),
        },
        Value::Null => Ok(Value::Object(Default::default())),
        _ => bail!("{shown} must hold the global policies (a mapping)"),
    }
}

fn print_doc(doc: &Value, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(doc)?),
        Output::Text => print!("{}", crate::yaml::emit(doc)),
    }
    Ok(())
}

fn header(reply: &Reply, name: &str) -> Option<String> {
    let value = reply.headers.get(name)?.to_str().ok()?;
    Some(value.to_owned())
}

/// The revision in the reply's `ETag` (`"3"`).
fn revision(reply: &Reply) -> Option<i64> {
    header(reply, "etag")?.trim_matches('"').parse().ok()
}
