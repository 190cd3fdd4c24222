//! `turnpike import openapi FILE --upstream URL`: publishes an OpenAPI document through the
//! admin API (`POST /api/v1/services/{name}/openapi`, or with `--version V`
//! `.../versions/{V}/openapi`) and prints what changed, or with `--dry-run` what would.

use std::process::ExitCode;

use anyhow::{Context, bail};
use http::Method;
use serde_json::Value;

use crate::admin_client::{AdminClient, runtime, segment};
use crate::cli::{ImportArgs, ImportCommand, OpenApiArgs, Output};

pub fn run(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        ImportCommand::Openapi(a) => openapi(a),
    }
}

fn openapi(args: &OpenApiArgs) -> anyhow::Result<ExitCode> {
    let file = &args.file;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    // OpenAPI documents use numbers as keys (`200:`), which config files may not.
    let doc = turnpike_config::parse_yaml_text_keys(&text)
        .map_err(|e| anyhow::anyhow!("invalid YAML at {e}"))
        .with_context(|| format!("{} is not valid YAML or JSON", file.display()))?;
    if !doc.is_object() {
        bail!(
            "{} does not hold an OpenAPI document (a mapping)",
            file.display()
        );
    }
    let name = match &args.name {
        Some(n) => n.clone(),
        None => service_name(&doc, file)?,
    };
    let client = AdminClient::new(&args.admin.admin_url, args.admin.admin_ca.as_deref())?;
    let path = match &args.api_version {
        None => format!("/api/v1/services/{}/openapi?", segment(&name)),
        Some(v) => format!(
            "/api/v1/services/{}/versions/{}/openapi?",
            segment(&name),
            segment(v)
        ),
    };
    let path = format!("{path}{}", query(args)?);
    let reply = runtime()?.block_on(client.call(Method::POST, &path, Some(&doc), None))?;
    match args.admin.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&reply.body)?),
        Output::Text => print!("{}", report(&reply.body)),
    }
    Ok(ExitCode::SUCCESS)
}

fn query(args: &OpenApiArgs) -> anyhow::Result<String> {
    let mut q = Vec::new();
    if let Some(p) = &args.version_path {
        q.push(format!("path={}", segment(p)));
    }
    if let Some(h) = &args.version_header {
        let (name, value) = h
            .split_once('=')
            .or_else(|| h.split_once(':'))
            .ok_or_else(|| anyhow::anyhow!("--version-header expects NAME=VALUE, got {h:?}"))?;
        q.push(format!("header_name={}", segment(name.trim())));
        q.push(format!("header_value={}", segment(value.trim())));
    }
    if args.draft {
        q.push("draft=true".to_owned());
    }
    if let Some(u) = &args.upstream {
        q.push(format!("upstream={}", segment(u)));
    }
    if let Some(p) = &args.prefix {
        q.push(format!("prefix={}", segment(p)));
    }
    if args.validate {
        q.push("validate=true".to_owned());
    } else if args.no_validate {
        q.push("validate=false".to_owned());
    }
    if args.dry_run {
        q.push("dry_run=true".to_owned());
    }
    Ok(q.join("&"))
}

/// `info.title` as a name (`Swagger Petstore` → `swagger-petstore`), else the file's stem.
fn service_name(doc: &Value, file: &std::path::Path) -> anyhow::Result<String> {
    let title = doc.pointer("/info/title").and_then(Value::as_str);
    let stem = file.file_stem().and_then(|s| s.to_str());
    let mut name = String::new();
    for c in title.or(stem).unwrap_or_default().chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_end_matches('-').to_owned();
    if name.is_empty() {
        bail!("cannot derive a service name from the document; pass --name");
    }
    Ok(name)
}

/// One line per change, then a summary.
pub(crate) fn report(body: &Value) -> String {
    let dry = body["dry_run"].as_bool().unwrap_or(false);
    let service = match (body["service"].as_str(), body["version"].as_str()) {
        (Some(s), Some(v)) => format!("{s} {v}"),
        (s, _) => s.unwrap_or_default().to_owned(),
    };
    let changes = body["changes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = String::new();
    let mut counts = [0usize; 3];
    for c in changes {
        let action = c["action"].as_str().unwrap_or_default();
        let (sign, slot) = match action {
            "create" => ('+', 0),
            "update" => ('~', 1),
            _ => ('-', 2),
        };
        counts[slot] += 1;
        out.push_str(&format!(
            "{sign} {action} {} {}",
            str_of(&c["kind"]),
            str_of(&c["name"])
        ));
        if let Some(at) = c["at"].as_str() {
            out.push_str(&format!("  ({at})"));
        }
        if let Some(fields) = c["fields"].as_array() {
            let names: Vec<&str> = fields.iter().filter_map(Value::as_str).collect();
            out.push_str(&format!(": {}", names.join(", ")));
        }
        out.push('\n');
    }
    let unchanged = body["unchanged"].as_array().map_or(0, Vec::len);
    let verb = if dry { "would be" } else { "" };
    let [c, u, d] = counts;
    let summary = format!("{c} created, {u} updated, {d} deleted, {unchanged} unchanged");
    match (dry, changes.is_empty()) {
        (_, true) => out.push_str(&format!(
            "service {service}: no changes ({unchanged} routes)\n"
        )),
        (true, false) => out.push_str(&format!(
            "service {service} (dry run, nothing written): {summary} {verb}\n"
        )),
        (false, false) => out.push_str(&format!("service {service}: {summary}\n")),
    }
    out
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}
