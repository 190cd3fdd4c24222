//! `turnpike keys create | list | revoke | rotate`: API keys in the keys file that the
//! config names (`auth.keys_file`).
//!
//! A key is printed once, on stdout alone so scripts can capture it, and only its keyed
//! hash is written. The file is replaced atomically; a gateway that watches its config
//! (the default) picks the change up within a second, SIGHUP applies it at once.
//!
//! Two `keys` commands run at the same moment on the same file may lose one's change
//! (each reads, edits and replaces the whole file); run them one at a time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use jiff::{SignedDuration, Timestamp};
use turnpike_config::Config;
use turnpike_config::model::ApiKey;
use turnpike_config::units::Duration;
use turnpike_policy::key_auth;
use turnpike_policy::keys_file::{self, FileKey, KeysFile};

use crate::cli::{KeysArgs, KeysCommand, Output};

pub fn run(args: &KeysArgs) -> anyhow::Result<ExitCode> {
    // With an admin URL the keys live in the store, not in the file.
    if let Some(url) = &args.admin_url {
        return crate::keys_admin::run(url, args);
    }
    let store = Store::open(&args.config)?;
    let now = now()?;
    match &args.command {
        KeysCommand::Create {
            consumer,
            expires_in,
        } => create(&store, consumer, *expires_in, now, args.output),
        KeysCommand::List { consumer } => list(&store, consumer.as_deref(), now, args.output),
        KeysCommand::Revoke { id } => revoke(&store, id, args.output),
        KeysCommand::Rotate {
            id,
            overlap,
            expires_in,
        } => rotate(&store, id, (*overlap, *expires_in), now, args.output),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// The loaded config and the keys file it names.
struct Store {
    config_path: PathBuf,
    cfg: Config,
    file: PathBuf,
}

impl Store {
    fn open(config_path: &Path) -> anyhow::Result<Self> {
        let cfg = turnpike_config::load_file(config_path).map_err(|errors| {
            let hint = if config_path.exists() {
                ""
            } else {
                "\n(give the config file with --config FILE or TURNPIKE_CONFIG)"
            };
            anyhow!("{errors}{hint}")
        })?;
        let file = cfg.auth.keys_file.clone().map(PathBuf::from).ok_or_else(|| {
            anyhow!(
                "{} has no `auth.keys_file`, so there is nowhere to keep keys; add one, e.g.\n\n  auth:\n    key_secret: ${{TURNPIKE_KEY_SECRET}}\n    keys_file: turnpike-keys.json\n",
                config_path.display()
            )
        })?;
        Ok(Self {
            config_path: config_path.to_owned(),
            cfg,
            file,
        })
    }

    fn read(&self) -> anyhow::Result<KeysFile> {
        Ok(keys_file::read_or_empty(&self.file)?)
    }

    fn write(&self, keys: &KeysFile) -> anyhow::Result<()> {
        Ok(keys_file::write(&self.file, keys)?)
    }

    /// The server-side secret keys are hashed with.
    fn secret(&self) -> anyhow::Result<&str> {
        self.cfg.auth.key_secret.as_deref().ok_or_else(|| {
            anyhow!(
                "{} has no `auth.key_secret`; keys are hashed with it. Add `key_secret: ${{TURNPIKE_KEY_SECRET}}` under `auth` and set that variable (`turnpike secret generate` makes a good value)",
                self.config_path.display()
            )
        })
    }

    fn check_consumer(&self, name: &str) -> anyhow::Result<()> {
        let known: Vec<&str> = self.cfg.consumers.iter().map(|c| c.name.as_str()).collect();
        if known.contains(&name) {
            return Ok(());
        }
        let file = self.config_path.display();
        if known.is_empty() {
            bail!(
                "unknown consumer `{name}`: {file} defines no consumers; add it under `consumers:` first"
            );
        }
        bail!(
            "unknown consumer `{name}`; the consumers in {file} are: {}",
            known.join(", ")
        )
    }

    /// The entry for `id_or_key` (an id, or a whole key whose id is used).
    fn find<'a>(&self, keys: &'a mut KeysFile, id_or_key: &str) -> anyhow::Result<&'a mut FileKey> {
        let id = key_auth::key_id(id_or_key).unwrap_or(id_or_key);
        if let Some(i) = keys.keys.iter().position(|k| k.key.id == id) {
            return Ok(&mut keys.keys[i]);
        }
        let file = self.file.display();
        let inline = self
            .cfg
            .consumers
            .iter()
            .find(|c| c.keys.iter().any(|k| k.id == id));
        match inline {
            Some(c) => bail!(
                "key `{id}` is written in {} under consumer `{}` (`consumers[].keys`), not in {file}; edit it there (`revoked: true` or `expires_at`)",
                self.config_path.display(),
                c.name
            ),
            None => bail!("unknown key id `{id}` in {file}; `turnpike keys list` shows the ids"),
        }
    }
}

/// Now, to the second (stored times need no more and read better without fractions).
pub(crate) fn now() -> anyhow::Result<Timestamp> {
    Ok(Timestamp::from_second(Timestamp::now().as_second())?)
}

pub(crate) fn after(now: Timestamp, d: Duration) -> anyhow::Result<Timestamp> {
    let secs = i64::try_from(d.as_std().as_secs()).context("duration too long")?;
    now.checked_add(SignedDuration::from_secs(secs))
        .with_context(|| format!("{now} + {d} is past the year 9999"))
}

/// A new key entry for `consumer` (the full key is returned only here).
fn new_key(
    store: &Store,
    keys: &KeysFile,
    consumer: &str,
    expires: Option<Timestamp>,
    now: Timestamp,
) -> anyhow::Result<(String, FileKey)> {
    let secret = store.secret()?;
    let taken = |id: &str| {
        keys.keys.iter().any(|k| k.key.id == id)
            || store
                .cfg
                .consumers
                .iter()
                .any(|c| c.keys.iter().any(|k| k.id == id))
    };
    // 62^12 ids make a clash practically impossible, but a clash would be a bad key.
    let generated = loop {
        let k = key_auth::generate(secret)?;
        if !taken(&k.id) {
            break k;
        }
    };
    let entry = FileKey {
        consumer: consumer.to_owned(),
        key: ApiKey {
            id: generated.id,
            hash: generated.hash,
            expires_at: expires.map(|t| t.to_string()),
            revoked: false,
        },
        created_at: Some(now.to_string()),
    };
    Ok((generated.key, entry))
}

fn create(
    store: &Store,
    consumer: &str,
    expires_in: Option<Duration>,
    now: Timestamp,
    output: Output,
) -> anyhow::Result<()> {
    store.secret()?;
    store.check_consumer(consumer)?;
    let expires = expires_in.map(|d| after(now, d)).transpose()?;
    let mut keys = store.read()?;
    let (key, entry) = new_key(store, &keys, consumer, expires, now)?;
    let id = entry.key.id.clone();
    keys.keys.push(entry);
    store.write(&keys)?;
    let json = serde_json::json!({
        "id": id, "consumer": consumer, "key": key,
        "created_at": now.to_string(), "expires_at": expires.map(|t| t.to_string()),
    });
    print_new_key(output, &key, json);
    let until = expires.map_or(String::new(), |t| format!(", expires {t}"));
    eprintln!(
        "Created key {id} for consumer `{consumer}`{until}. This is the only time the key is shown: store it now."
    );
    Ok(())
}

/// The new key alone on stdout (easy to capture), or everything about it as JSON.
pub(crate) fn print_new_key(output: Output, key: &str, json: serde_json::Value) {
    match output {
        Output::Text => println!("{key}"),
        Output::Json => println!("{json}"),
    }
}

fn status(key: &ApiKey, now: Timestamp) -> &'static str {
    let expired = key
        .expires_at
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|t| t <= now);
    if key.revoked {
        "revoked"
    } else if expired {
        "expired"
    } else {
        "active"
    }
}

fn list(
    store: &Store,
    consumer: Option<&str>,
    now: Timestamp,
    output: Output,
) -> anyhow::Result<()> {
    if let Some(name) = consumer {
        store.check_consumer(name)?;
    }
    let keys = store.read()?;
    let rows: Vec<[&str; 5]> = keys
        .keys
        .iter()
        .filter(|k| consumer.is_none_or(|c| k.consumer == c))
        .map(|k| {
            [
                k.key.id.as_str(),
                k.consumer.as_str(),
                k.created_at.as_deref().unwrap_or("-"),
                k.key.expires_at.as_deref().unwrap_or("-"),
                status(&k.key, now),
            ]
        })
        .collect();
    match output {
        Output::Json => {
            let list: Vec<_> = rows
                .iter()
                .map(|[id, consumer, created, expires, status]| {
                    let opt = |s: &str| (s != "-").then(|| s.to_owned());
                    serde_json::json!({
                        "id": id, "consumer": consumer, "created_at": opt(created),
                        "expires_at": opt(expires), "status": status,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(list));
        }
        Output::Text if rows.is_empty() => eprintln!("No keys in {}.", store.file.display()),
        Output::Text => print_table(["ID", "CONSUMER", "CREATED", "EXPIRES", "STATUS"], &rows),
    }
    Ok(())
}

fn print_table(header: [&str; 5], rows: &[[&str; 5]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

fn revoke(store: &Store, id: &str, output: Output) -> anyhow::Result<()> {
    let mut keys = store.read()?;
    let entry = store.find(&mut keys, id)?;
    let (id, consumer) = (entry.key.id.clone(), entry.consumer.clone());
    let already = entry.key.revoked;
    entry.key.revoked = true;
    if !already {
        store.write(&keys)?;
    }
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({ "id": id, "consumer": consumer, "revoked": true })
        ),
        Output::Text if already => {
            println!("Key {id} (consumer `{consumer}`) was already revoked.")
        }
        Output::Text => println!("Revoked key {id} (consumer `{consumer}`)."),
    }
    Ok(())
}

fn rotate(
    store: &Store,
    id: &str,
    (overlap, expires_in): (Duration, Option<Duration>),
    now: Timestamp,
    output: Output,
) -> anyhow::Result<()> {
    let mut keys = store.read()?;
    let old = store.find(&mut keys, id)?;
    if old.key.revoked {
        bail!(
            "key `{}` is revoked; make a new one with `turnpike keys create --consumer {}`",
            old.key.id,
            old.consumer
        );
    }
    // The overlap may shorten the old key's life, never lengthen it.
    let overlap_end = after(now, overlap)?;
    let current = old
        .key
        .expires_at
        .as_deref()
        .map(str::parse::<Timestamp>)
        .transpose();
    let current =
        current.with_context(|| format!("key `{}` has an invalid expires_at", old.key.id))?;
    let old_end = current.map_or(overlap_end, |t| t.min(overlap_end));
    old.key.expires_at = Some(old_end.to_string());
    let (old_id, consumer) = (old.key.id.clone(), old.consumer.clone());

    let expires = expires_in.map(|d| after(now, d)).transpose()?;
    let (key, entry) = new_key(store, &keys, &consumer, expires, now)?;
    let new_id = entry.key.id.clone();
    keys.keys.push(entry);
    store.write(&keys)?;
    let json = serde_json::json!({
        "id": new_id, "consumer": consumer, "key": key,
        "created_at": now.to_string(), "expires_at": expires.map(|t| t.to_string()),
        "replaces": old_id, "old_expires_at": old_end.to_string(),
    });
    print_new_key(output, &key, json);
    let shortened = if old_end < overlap_end {
        " (its own expiry, not extended)"
    } else {
        ""
    };
    eprintln!(
        "Rotated key {old_id} to {new_id} for consumer `{consumer}`; {old_id} keeps working until {old_end}{shortened}. This is the only time the new key is shown: store it now."
    );
    Ok(())
}
