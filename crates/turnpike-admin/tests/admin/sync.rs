//! `turnpike_admin::sync`: the file + store configuration, and the follower that rebuilds it
//! on every store change and file reload, in process over a real SQLite store.

use std::convert::Infallible;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use turnpike_admin::sync::{Follower, SyncError, effective_config};
use turnpike_admin::{AdminOptions, AdminState};
use turnpike_config::Config;

use crate::support::{BASE_YAML, base_config, open_store};

async fn state(dir: &Path) -> AdminState {
    let options = AdminOptions {
        base: base_config(),
        ..AdminOptions::default()
    };
    AdminState::new(open_store(dir).await, options)
        .await
        .unwrap()
}

/// A follower whose `apply` hands every configuration to the returned channel.
fn follow(state: &AdminState, since: i64) -> (Follower, mpsc::UnboundedReceiver<Config>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let follower = Follower::start(state.clone(), since, move |cfg: &Config| {
        let _ = tx.send(cfg.clone());
        Ok::<u64, Infallible>(1)
    });
    (follower, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Config>) -> Config {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no configuration applied within 5 s")
        .expect("the follower stopped")
}

fn route_names(cfg: &Config) -> Vec<&str> {
    cfg.routes.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_entities_are_added_to_the_file_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let first = effective_config(&state).await.unwrap();
    assert_eq!(first.version, 0);
    assert_eq!(route_names(&first.config), ["file-route"]);

    let (_follower, mut applied) = follow(&state, first.version);
    let route = json!({"name": "r", "paths": ["/r"], "upstream": "file-backend"});
    state
        .store()
        .create("routes", "r", route, "test")
        .await
        .unwrap();
    let cfg = next(&mut applied).await;
    assert_eq!(route_names(&cfg), ["file-route", "r"]);
    assert_eq!(cfg.listen, base_config().listen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_merge_is_a_typed_error_and_never_applied() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let (_follower, mut applied) = follow(&state, 0);
    // Behind the API's back, so nothing validates it.
    let bad = json!({"name": "bad", "paths": ["/bad"], "upstream": "nope"});
    state
        .store()
        .create("routes", "bad", bad, "test")
        .await
        .unwrap();
    match effective_config(&state).await {
        Err(SyncError::Invalid(errors)) => {
            let paths: Vec<&str> = errors.errors().iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, ["routes[1].upstream"]);
        }
        other => panic!("expected an invalid merge, got {other:?}"),
    }
    let good = json!({"name": "good", "paths": ["/good"], "upstream": "file-backend"});
    state
        .store()
        .delete("routes", "bad", None, "test")
        .await
        .unwrap();
    state
        .store()
        .create("routes", "good", good, "test")
        .await
        .unwrap();
    // Whatever was applied in between, it never held the broken route.
    loop {
        let cfg = next(&mut applied).await;
        assert!(
            !route_names(&cfg).contains(&"bad"),
            "{:?}",
            route_names(&cfg)
        );
        if route_names(&cfg).contains(&"good") {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_reload_merges_the_store_again() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let route = json!({"name": "r", "paths": ["/r"], "upstream": "file-backend"});
    state
        .store()
        .create("routes", "r", route, "test")
        .await
        .unwrap();
    let (follower, mut applied) = follow(&state, 1);

    let file = dir.path().join("turnpike.yaml");
    let more = format!("{BASE_YAML}  - {{name: added, paths: [/added], upstream: file-backend}}\n");
    std::fs::write(&file, more).unwrap();
    follower.reload_file(&file).unwrap();
    let cfg = next(&mut applied).await;
    assert_eq!(route_names(&cfg), ["file-route", "added", "r"]);

    std::fs::write(&file, "listen: [nope]\n").unwrap();
    let err = follower.reload_file(&file).unwrap_err();
    assert!(matches!(err, SyncError::File(_)), "{err}");
}

#[tokio::test]
async fn store_plans_join_the_files_plans_section() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let plan = json!({"name": "gold", "rate_limits": [{"limit": 5, "per": "second"}]});
    state
        .store()
        .create("plans", "gold", plan, "test")
        .await
        .unwrap();
    let consumer = json!({"name": "c", "plan": "gold"});
    state
        .store()
        .create("consumers", "c", consumer, "test")
        .await
        .unwrap();
    let effective = effective_config(&state).await.unwrap();
    let plans: Vec<&str> = effective
        .config
        .plans
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(plans, ["gold"]);
    assert_eq!(effective.config.consumers[0].plan.as_deref(), Some("gold"));
}
