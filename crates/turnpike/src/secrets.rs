//! `turnpike hash-password`, `turnpike secret generate` and `turnpike secret store-key`: the
//! argon2id hashes that go into the config for passwords and OAuth client secrets, fresh
//! random secrets, and the key the store encrypts certificates' private keys with.
//!
//! Secrets are read from stdin rather than arguments, so they never show up in shell
//! history or the process list.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use turnpike_policy::password;

use crate::cli::{Output, SecretCommand};

/// Reads one line from stdin and prints its argon2id hash.
pub fn hash_password() -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // Input is visible as typed; piping (`... | turnpike hash-password`) avoids that.
        eprint!("Password (one line, shown as typed): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let secret = line.strip_suffix('\n').unwrap_or(&line);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        bail!(
            "no password on stdin: pipe one line in, e.g. `printf '%s' \"$PASSWORD\" | turnpike hash-password`"
        );
    }
    println!("{}", password::hash(secret)?);
    Ok(ExitCode::SUCCESS)
}

pub fn run(command: &SecretCommand) -> anyhow::Result<ExitCode> {
    match command {
        SecretCommand::Generate { output } => generate(*output),
        SecretCommand::StoreKey { output } => store_key(*output),
    }
}

fn random32() -> anyhow::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    Ok(bytes)
}

/// Standard padded base64, as `openssl rand -base64 32` prints it; `admin.secrets_key`
/// takes that, other base64 forms, or hex.
fn store_key(output: Output) -> anyhow::Result<ExitCode> {
    let key = STANDARD.encode(random32()?);
    match output {
        Output::Text => {
            println!("{key}");
            eprintln!(
                "Set it as `admin.secrets_key: ${{TURNPIKE_SECRETS_KEY}}`, the same on every node, and keep a copy: without it the stored certificates' keys cannot be read."
            );
        }
        Output::Json => println!("{}", serde_json::json!({ "key": key })),
    }
    Ok(ExitCode::SUCCESS)
}

fn generate(output: Output) -> anyhow::Result<ExitCode> {
    let secret = URL_SAFE_NO_PAD.encode(random32()?);
    let hash = password::hash(&secret)?;
    match output {
        Output::Text => {
            println!("secret: {secret}");
            println!("hash:   {hash}");
            eprintln!(
                "Give the secret to its user (it is shown only now); put the hash in the config (e.g. `oauth.clients[].secret_hash`)."
            );
        }
        Output::Json => println!("{}", serde_json::json!({ "secret": secret, "hash": hash })),
    }
    Ok(ExitCode::SUCCESS)
}
