//! Helpers shared by the integration tests: load YAML text the way a user's file would be
//! loaded and look at the errors exactly as they are printed.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use turnpike_config::{Config, ConfigError, load_str};

/// The name errors are reported against.
pub const FILE: &str = "gw.yaml";

/// An environment with a few known variables, so tests never touch the process env.
pub fn test_env(name: &str) -> Option<String> {
    match name {
        "UPSTREAM_HOST" => Some("10.1.2.3".to_owned()),
        "UPSTREAM_PORT" => Some("9000".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Loads `yaml`, panicking with the printed errors if it is rejected.
pub fn load(yaml: &str) -> Config {
    match load_str(yaml, Path::new(FILE), &test_env) {
        Ok(config) => config,
        Err(e) => panic!("config should load, but:\n{e}"),
    }
}

/// Loads `yaml`, which must be rejected, and returns its errors.
pub fn errors(yaml: &str) -> Vec<ConfigError> {
    match load_str(yaml, Path::new(FILE), &test_env) {
        Ok(_) => panic!("config should be rejected:\n{yaml}"),
        Err(e) => e.errors().to_vec(),
    }
}

/// Each error as printed: `gw.yaml:LINE:COL: PATH: MESSAGE`.
pub fn printed(yaml: &str) -> Vec<String> {
    errors(yaml).iter().map(ToString::to_string).collect()
}

/// Asserts that `yaml` is rejected with exactly one error, at `line:col` and `path`, whose
/// message contains `fragment`.
pub fn single_error(yaml: &str, at: &str, path: &str, fragment: &str) {
    let all = printed(yaml);
    assert_eq!(all.len(), 1, "expected one error, got:\n{}", all.join("\n"));
    assert_has(&all, at, path, fragment);
}

/// Asserts that one of the printed errors is at `line:col` and `path` and mentions `fragment`.
pub fn assert_has(all: &[String], at: &str, path: &str, fragment: &str) {
    let prefix = if path.is_empty() {
        format!("{FILE}:{at}: ")
    } else {
        format!("{FILE}:{at}: {path}: ")
    };
    let found = all
        .iter()
        .any(|e| e.starts_with(&prefix) && e[prefix.len()..].contains(fragment));
    assert!(
        found,
        "no error `{prefix}...{fragment}...` in:\n{}",
        all.join("\n")
    );
}

/// The minimal config from DESIGN.md with `extra` appended to the route `everything`
/// (indented by four spaces); the route starts on line 7, `extra` on line 10.
pub fn with_route_extra(extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:8000
upstreams:
  - name: backend
    targets:
      - url: http://127.0.0.1:9000
routes:
  - name: everything
    paths: [\"/\"]
    upstream: backend
{extra}"
    )
}

/// The minimal config with `extra` appended to the upstream `backend` (indented by four
/// spaces); `extra` starts on line 6.
pub fn with_upstream_extra(extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:8000
upstreams:
  - name: backend
    targets:
      - url: http://127.0.0.1:9000
{extra}routes:
  - name: everything
    paths: [\"/\"]
    upstream: backend
"
    )
}
