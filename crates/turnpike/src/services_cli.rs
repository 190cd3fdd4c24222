//! `turnpike services list|delete|versions|deprecate|retire|publish`: services published
//! from OpenAPI documents (`turnpike import openapi`), through the admin API.
//!
//! A list shows each service's upstream URL, prefix, validation and how many routes its
//! last import generated; `delete` removes the service (or with `--version` one version)
//! with those routes (and its upstreams, unless hand-made routes still use them) in one
//! transaction on the admin API's side. `versions` shows a service's versions with their
//! selector and lifecycle; `deprecate`, `retire` and `publish` change one version's
//! lifecycle, which the admin API puts on all of its routes at once.

use std::process::ExitCode;

use http::Method;
use serde_json::{Value, json};

use crate::admin_cli::{name_of, render};
use crate::admin_client::{AdminClient, runtime, segment};
use crate::cli::{Output, ServicesArgs, ServicesCommand};
use crate::import::report;

pub fn run(args: &ServicesArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&args.admin.admin_url, args.admin.admin_ca.as_deref())?;
    let output = args.admin.output;
    runtime()?.block_on(async {
        match &args.command {
            ServicesCommand::List { prefix } => list(&client, prefix.as_deref(), output).await,
            ServicesCommand::Delete { name, api_version } => {
                delete(&client, name, api_version.as_deref(), output).await
            }
            ServicesCommand::Versions { name } => versions(&client, name, output).await,
            ServicesCommand::Deprecate {
                name,
                api_version: version,
                at,
                sunset,
                link,
            } => {
                let mut l = json!({"state": "deprecated"});
                for (key, value) in [("deprecated_at", at), ("sunset", sunset), ("link", link)] {
                    if let Some(v) = value {
                        l[key] = json!(v);
                    }
                }
                lifecycle(&client, (name, version), l, output).await
            }
            ServicesCommand::Retire {
                name,
                api_version: version,
            } => {
                let l = json!({"state": "retired"});
                lifecycle(&client, (name, version), l, output).await
            }
            ServicesCommand::Publish {
                name,
                api_version: version,
            } => {
                // Published again means no longer deprecated: the date goes, a planned
                // sunset and its link stay.
                let l = json!({"state": "published", "deprecated_at": null});
                lifecycle(&client, (name, version), l, output).await
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn list(client: &AdminClient, prefix: Option<&str>, output: Output) -> anyhow::Result<()> {
    let mut items = client.list_all("services").await?;
    if let Some(p) = prefix {
        items.retain(|i| name_of(i).starts_with(p));
    }
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&items)?),
        Output::Text if items.is_empty() => eprintln!("no services in the store"),
        Output::Text => print!("{}", table(&items)),
    }
    Ok(())
}

async fn delete(
    client: &AdminClient,
    name: &str,
    version: Option<&str>,
    output: Output,
) -> anyhow::Result<()> {
    let mut path = format!("/api/v1/services/{}", segment(name));
    if let Some(v) = version {
        path.push_str(&format!("/versions/{}", segment(v)));
    }
    client.call(Method::DELETE, &path, None, None).await?;
    match (output, version) {
        (Output::Json, _) => println!(
            "{}",
            json!({"deleted": name, "kind": "services", "version": version})
        ),
        (Output::Text, None) => println!("deleted service {name} and its generated routes"),
        (Output::Text, Some(v)) => {
            println!("deleted version {v} of service {name} and its generated routes")
        }
    }
    Ok(())
}

async fn versions(client: &AdminClient, name: &str, output: Output) -> anyhow::Result<()> {
    let path = format!("/api/v1/services/{}", segment(name));
    let service = client.get(&path).await?.body;
    let versions = service
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&versions)?),
        Output::Text if versions.is_empty() => eprintln!("service {name} has no versions"),
        Output::Text => print!("{}", version_table(&versions)),
    }
    Ok(())
}

/// Merges `l` into the version's lifecycle (`PATCH`) and prints the routes it changed.
async fn lifecycle(
    client: &AdminClient,
    (name, version): (&str, &str),
    l: Value,
    output: Output,
) -> anyhow::Result<()> {
    let path = format!(
        "/api/v1/services/{}/versions/{}",
        segment(name),
        segment(version)
    );
    let body = json!({ "lifecycle": l });
    let reply = client.call(Method::PATCH, &path, Some(&body), None).await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&reply.body)?),
        Output::Text => print!("{}", report(&reply.body)),
    }
    Ok(())
}

fn version_table(items: &[Value]) -> String {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|v| {
            let selector = match &v["selector"] {
                Value::Object(s) if s.contains_key("path") => text(&v["selector"], "path"),
                Value::Object(s) => match s.get("header") {
                    Some(h) => format!("{}: {}", text(h, "name"), text(h, "value")),
                    None => "-".to_owned(),
                },
                _ => "-".to_owned(),
            };
            let l = &v["lifecycle"];
            let routes = v["routes"].as_array().map_or(0, Vec::len);
            vec![
                name_of(v).to_owned(),
                selector,
                text(v, "url"),
                text(l, "state"),
                text(l, "sunset"),
                routes.to_string(),
            ]
        })
        .collect();
    render(
        &[
            "VERSION",
            "SELECTOR",
            "UPSTREAM URL",
            "STATE",
            "SUNSET",
            "ROUTES",
        ],
        &rows,
    )
}

fn table(items: &[Value]) -> String {
    let text = |d: &Value, k: &str| {
        d.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("-")
            .to_owned()
    };
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|d| {
            let routes = d
                .get("routes")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let validate = d.get("validate") == Some(&Value::Bool(true));
            vec![
                name_of(d).to_owned(),
                text(d, "url"),
                text(d, "prefix"),
                routes.to_string(),
                if validate { "yes" } else { "no" }.to_owned(),
                text(d, "version"),
            ]
        })
        .collect();
    render(
        &[
            "NAME",
            "UPSTREAM URL",
            "PREFIX",
            "ROUTES",
            "VALIDATE",
            "VERSION",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_summarises_each_service() {
        let items = [
            json!({"name": "petstore", "url": "http://10.0.0.5:8080", "prefix": null,
            "validate": true, "routes": ["a", "b"], "version": "1.0.0"}),
        ];
        let text = table(&items);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "petstore  http://10.0.0.5:8080  -       2       yes       1.0.0"
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        // `--version` means an API version in `import openapi` and `services delete`; clap
        // checks those commands do not also get Turnpike's own `--version`.
        <crate::cli::Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn the_version_table_shows_selectors_and_lifecycles() {
        let items = [
            json!({"name": "v1", "selector": {"path": "/v1"}, "url": "http://a:1",
                "lifecycle": {"state": "deprecated", "sunset": "2027-01-01T00:00:00Z"}, "routes": ["a", "b"]}),
            json!({"name": "v2", "selector": {"header": {"name": "x-api-version", "value": "2"}},
                "url": "http://b:1", "lifecycle": {"state": "published"}, "routes": ["c"]}),
        ];
        let text = version_table(&items);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("v1       /v1"), "{text}");
        assert!(
            lines[1].contains("deprecated  2027-01-01T00:00:00Z  2"),
            "{text}"
        );
        assert!(lines[2].contains("x-api-version: 2"), "{text}");
    }
}
