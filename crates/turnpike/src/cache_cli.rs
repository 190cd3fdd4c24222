//! `turnpike cache purge|status`: the gateway's response cache through the admin API.
//! Purges take effect on the gateway at once; the CDN endpoints are told in the
//! background, and `status` lists those that failed.

use std::process::ExitCode;

use anyhow::bail;
use http::Method;
use serde_json::{Value, json};

use crate::admin_cli::render;
use crate::admin_client::{AdminClient, runtime};
use crate::cli::{CacheArgs, CacheCommand, Output};

pub fn run(args: &CacheArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(&args.admin.admin_url, args.admin.admin_ca.as_deref())?;
    let output = args.admin.output;
    runtime()?.block_on(async {
        match &args.command {
            CacheCommand::Purge {
                tags,
                urls,
                prefixes,
            } => {
                if tags.is_empty() && urls.is_empty() && prefixes.is_empty() {
                    bail!("nothing to purge: give --tag, --url or --prefix (each may repeat)");
                }
                let body = json!({ "tags": tags, "urls": urls, "prefixes": prefixes });
                let reply = client
                    .call(Method::POST, "/api/v1/cache/purge", Some(&body), None)
                    .await?;
                match output {
                    Output::Json => println!("{}", serde_json::to_string_pretty(&reply.body)?),
                    Output::Text => println!("purged {} cached objects", reply.body["purged"]),
                }
                Ok(())
            }
            CacheCommand::Status => status(&client, output).await,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn status(client: &AdminClient, output: Output) -> anyhow::Result<()> {
    let reply = client.get("/api/v1/cache").await?;
    let body = &reply.body;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(body)?);
        return Ok(());
    }
    println!("objects: {}\nbytes:   {}", body["objects"], body["bytes"]);
    let failures = body["cdn_failures"].as_array().cloned().unwrap_or_default();
    if failures.is_empty() {
        println!("no failed CDN purges");
        return Ok(());
    }
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let rows: Vec<Vec<String>> = failures
        .iter()
        .map(|f| {
            let values: Vec<String> = f["values"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            vec![
                text(&f["endpoint"]),
                text(&f["kind"]),
                values.join(" "),
                text(&f["error"]),
                text(&f["attempts"]),
            ]
        })
        .collect();
    print!(
        "{}",
        render(&["ENDPOINT", "KIND", "VALUES", "ERROR", "ATTEMPTS"], &rows)
    );
    Ok(())
}
