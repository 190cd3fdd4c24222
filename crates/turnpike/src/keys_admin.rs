//! `turnpike keys ... --admin-url URL` (or with `TURNPIKE_ADMIN_URL` set): API keys of
//! store consumers through the admin API, instead of the keys file. The admin API makes the
//! key, keeps its hash in the consumer entity and returns the key once; it is printed on
//! stdout alone (or as JSON) and nowhere else.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use http::Method;
use serde_json::{Value, json};

use crate::admin_cli::{name_of, render};
use crate::admin_client::{AdminClient, runtime, segment};
use crate::cli::{KeysArgs, KeysCommand, Output};
use crate::keys::{after, now, print_new_key};

pub fn run(url: &str, args: &KeysArgs) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(url, args.admin_ca.as_deref())?;
    let output = args.output;
    runtime()?.block_on(async {
        match &args.command {
            KeysCommand::Create {
                consumer,
                expires_in,
            } => {
                let expires = expires_in.map(|d| after(now()?, d)).transpose()?;
                create(&client, consumer, expires.map(|t| t.to_string()), output).await
            }
            KeysCommand::List { consumer } => list(&client, consumer.as_deref(), output).await,
            KeysCommand::Revoke { id } => revoke(&client, id, output).await,
            KeysCommand::Rotate { .. } => bail!(
                "`keys rotate` works on the keys file only; through the admin API, create a new key (`keys create`) and revoke the old one (`keys revoke`) when its clients have moved"
            ),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn create(
    client: &AdminClient,
    consumer: &str,
    expires_at: Option<String>,
    output: Output,
) -> anyhow::Result<()> {
    let body = match &expires_at {
        Some(at) => json!({"expires_at": at}),
        None => json!({}),
    };
    let path = format!("/api/v1/consumers/{}/keys", segment(consumer));
    let reply = client.call(Method::POST, &path, Some(&body), None).await?;
    let key = reply
        .body
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the admin API answered without a key"))?
        .to_owned();
    let id = reply.body.get("id").and_then(Value::as_str).unwrap_or("");
    let until = expires_at.map_or(String::new(), |t| format!(", expires {t}"));
    eprintln!(
        "Created key {id} for consumer `{consumer}` through {}{until}. This is the only time the key is shown: store it now.",
        client.url()
    );
    print_new_key(output, &key, reply.body.clone());
    Ok(())
}

/// Every key of the store's consumers (or of one), as `(consumer, key entry)`.
async fn all_keys(
    client: &AdminClient,
    consumer: Option<&str>,
) -> anyhow::Result<Vec<(String, Value)>> {
    let consumers = match consumer {
        Some(name) => {
            let path = format!("/api/v1/consumers/{}", segment(name));
            vec![client.get(&path).await?.body]
        }
        None => client.list_all("consumers").await?,
    };
    Ok(consumers
        .iter()
        .flat_map(|c| {
            let name = name_of(c).to_owned();
            let keys = c.get("keys").and_then(Value::as_array).cloned();
            keys.into_iter().flatten().map(move |k| (name.clone(), k))
        })
        .collect())
}

async fn list(client: &AdminClient, consumer: Option<&str>, output: Output) -> anyhow::Result<()> {
    let keys = all_keys(client, consumer).await?;
    let text = |k: &Value, f: &str| k.get(f).and_then(Value::as_str).unwrap_or("-").to_owned();
    if output == Output::Json {
        let items: Vec<Value> = keys
            .iter()
            .map(|(c, k)| {
                json!({"id": k.get("id"), "consumer": c, "expires_at": k.get("expires_at"),
                    "revoked": k.get("revoked").and_then(Value::as_bool).unwrap_or(false)})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|(c, k)| {
            let revoked = k.get("revoked") == Some(&Value::Bool(true));
            let status = if revoked { "revoked" } else { "active" };
            vec![
                text(k, "id"),
                c.clone(),
                status.to_owned(),
                text(k, "expires_at"),
            ]
        })
        .collect();
    print!(
        "{}",
        render(&["ID", "CONSUMER", "STATUS", "EXPIRES"], &rows)
    );
    Ok(())
}

async fn revoke(client: &AdminClient, id_or_key: &str, output: Output) -> anyhow::Result<()> {
    let id = turnpike_policy::key_auth::key_id(id_or_key).unwrap_or(id_or_key);
    let keys = all_keys(client, None).await?;
    let Some((consumer, _)) = keys
        .iter()
        .find(|(_, k)| k.get("id").and_then(Value::as_str) == Some(id))
    else {
        bail!(
            "no store consumer has the key id `{id}` ({} knows only store consumers; keys in the gateway's file are changed there)",
            client.url()
        );
    };
    let path = format!(
        "/api/v1/consumers/{}/keys/{}",
        segment(consumer),
        segment(id)
    );
    client.call(Method::DELETE, &path, None, None).await?;
    match output {
        Output::Json => println!(
            "{}",
            json!({"id": id, "consumer": consumer, "revoked": true})
        ),
        Output::Text => println!("revoked key {id} of consumer `{consumer}`"),
    }
    Ok(())
}
