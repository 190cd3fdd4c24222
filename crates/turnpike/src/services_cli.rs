//! `turnpike services list|delete`: services published from OpenAPI documents
//! (`turnpike import openapi`), through the admin API.
//!
//! A list shows each service's upstream URL, prefix, validation and how many routes its
//! last import generated; `delete` removes the service with those routes (and its upstream,
//! unless hand-made routes still use it) in one transaction on the admin API's side.

use std::process::ExitCode;

use http::Method;
use serde_json::{Value, json};

use crate::admin_cli::{name_of, render};
use crate::admin_client::{AdminClient, runtime, segment};
use crate::cli::{Output, ServicesArgs, ServicesCommand};

pub fn run(args: &ServicesArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&args.admin.admin_url, args.admin.admin_ca.as_deref())?;
    let output = args.admin.output;
    runtime()?.block_on(async {
        match &args.command {
            ServicesCommand::List { prefix } => list(&client, prefix.as_deref(), output).await,
            ServicesCommand::Delete { name } => delete(&client, name, output).await,
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

async fn delete(client: &AdminClient, name: &str, output: Output) -> anyhow::Result<()> {
    let path = format!("/api/v1/services/{}", segment(name));
    client.call(Method::DELETE, &path, None, None).await?;
    match output {
        Output::Json => println!("{}", json!({"deleted": name, "kind": "services"})),
        Output::Text => println!("deleted service {name} and its generated routes"),
    }
    Ok(())
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
}
