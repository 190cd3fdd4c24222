//! `turnpike upstreams|routes|consumers|plans list|get|create|delete`: the store's entities
//! through the admin API, as tables (YAML for one entity) or JSON.

use std::process::ExitCode;

use anyhow::{Context, bail};
use http::Method;
use serde_json::Value;

use crate::admin_client::{AdminClient, runtime, segment};
use crate::cli::{EntityArgs, EntityCommand, Output};

pub fn run(kind: &'static str, args: &EntityArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&args.admin.admin_url, args.admin.admin_ca.as_deref())?;
    let output = args.admin.output;
    runtime()?.block_on(async {
        match &args.command {
            EntityCommand::List { prefix } => list(&client, kind, prefix.as_deref(), output).await,
            EntityCommand::Get { name } => get(&client, kind, name, output).await,
            EntityCommand::Create { file } => create(&client, kind, file, output).await,
            EntityCommand::Delete { name } => delete(&client, kind, name, output).await,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn list(
    client: &AdminClient,
    kind: &str,
    prefix: Option<&str>,
    output: Output,
) -> anyhow::Result<()> {
    let mut items = client.list_all(kind).await?;
    if let Some(p) = prefix {
        items.retain(|i| name_of(i).starts_with(p));
    }
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&items)?),
        Output::Text if items.is_empty() => eprintln!("no {kind} in the store"),
        Output::Text => print!("{}", table(kind, &items)),
    }
    Ok(())
}

async fn get(client: &AdminClient, kind: &str, name: &str, output: Output) -> anyhow::Result<()> {
    let reply = client
        .get(&format!("/api/v1/{kind}/{}", segment(name)))
        .await?;
    print_entity(&reply.body, output)
}

async fn create(
    client: &AdminClient,
    kind: &str,
    file: &std::path::Path,
    output: Output,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc =
        crate::yaml::parse(&text).with_context(|| format!("{} is not valid", file.display()))?;
    let docs = match doc {
        Value::Array(items) => items,
        Value::Object(_) => vec![doc],
        _ => bail!(
            "{} must hold one entity (a mapping) or a list of them",
            file.display()
        ),
    };
    for doc in docs {
        let path = format!("/api/v1/{kind}");
        let reply = client.call(Method::POST, &path, Some(&doc), None).await?;
        match output {
            Output::Json => println!("{}", serde_json::to_string_pretty(&reply.body)?),
            Output::Text => println!("created {} {}", singular(kind), name_of(&reply.body)),
        }
    }
    Ok(())
}

async fn delete(
    client: &AdminClient,
    kind: &str,
    name: &str,
    output: Output,
) -> anyhow::Result<()> {
    let path = format!("/api/v1/{kind}/{}", segment(name));
    client.call(Method::DELETE, &path, None, None).await?;
    match output {
        Output::Json => println!("{}", serde_json::json!({"deleted": name, "kind": kind})),
        Output::Text => println!("deleted {} {name}", singular(kind)),
    }
    Ok(())
}

fn print_entity(doc: &Value, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(doc)?),
        Output::Text => print!("{}", crate::yaml::emit(doc)),
    }
    Ok(())
}

pub fn name_of(doc: &Value) -> &str {
    doc.get("name").and_then(Value::as_str).unwrap_or("")
}

pub fn singular(kind: &str) -> &str {
    kind.strip_suffix('s').unwrap_or(kind)
}

/// The cells after NAME of one entity's row.
type Cells = fn(&Value) -> Vec<String>;

/// The columns that say most about each kind at a glance.
fn table(kind: &str, items: &[Value]) -> String {
    let (header, row): (&[&str], Cells) = match kind {
        "upstreams" => (&["NAME", "TARGETS", "BALANCER"], |d| {
            let targets = strings(d, "targets", |t| t.get("url").and_then(Value::as_str));
            vec![targets, text(d, "balancer", "round_robin")]
        }),
        "routes" => (&["NAME", "HOSTS", "PATHS", "METHODS", "UPSTREAM"], |d| {
            let list = |k| strings(d, k, Value::as_str);
            vec![
                list("hosts"),
                list("paths"),
                list("methods"),
                text(d, "upstream", ""),
            ]
        }),
        "consumers" => (&["NAME", "PLAN", "GROUPS", "ACTIVE KEYS"], |d| {
            let keys = d.get("keys").and_then(Value::as_array).map_or(0, |k| {
                k.iter()
                    .filter(|k| k.get("revoked") != Some(&Value::Bool(true)))
                    .count()
            });
            let groups = strings(d, "groups", Value::as_str);
            vec![text(d, "plan", "-"), groups, keys.to_string()]
        }),
        _ => (&["NAME", "RATE LIMITS", "QUOTA"], |d| {
            let limit =
                |l: &Value| Some(format!("{}/{}", l.get("limit")?, l.get("per")?.as_str()?));
            let limits = d.get("rate_limits").and_then(Value::as_array).map_or_else(
                || "-".to_owned(),
                |ls| ls.iter().filter_map(limit).collect::<Vec<_>>().join(", "),
            );
            let quota = d
                .get("quota")
                .and_then(limit)
                .unwrap_or_else(|| "-".to_owned());
            vec![limits, quota]
        }),
    };
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|d| {
            let mut cells = vec![name_of(d).to_owned()];
            cells.extend(row(d));
            cells
        })
        .collect();
    render(header, &rows)
}

fn text(doc: &Value, key: &str, default: &str) -> String {
    doc.get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_owned()
}

fn strings(doc: &Value, key: &str, each: fn(&Value) -> Option<&str>) -> String {
    let list: Vec<&str> = doc
        .get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(each).collect())
        .unwrap_or_default();
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(",")
    }
}

/// Left-aligned columns, two spaces apart.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_line_up() {
        let items = [
            json!({"name": "api", "paths": ["/a", "/b"], "upstream": "backend"}),
            json!({"name": "long-route-name", "hosts": ["x.example"], "upstream": "b", "methods": ["GET"]}),
        ];
        let text = table("routes", &items);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NAME             HOSTS      PATHS  METHODS  UPSTREAM"
        );
        assert_eq!(
            lines[1],
            "api              -          /a,/b  -        backend"
        );
        let plans = table(
            "plans",
            &[
                json!({"name": "gold", "rate_limits": [{"limit": 5, "per": "second"}],
            "quota": {"limit": 100, "per": "day"}}),
            ],
        );
        assert!(plans.contains("gold  5/second     100/day"), "{plans}");
    }
}
