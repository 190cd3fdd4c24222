//! A running admin API and a client that speaks to it with a token.

use std::path::Path;

use http::Method;
use serde_json::Value;
use tokio::sync::oneshot;
use turnpike_admin::{AdminOptions, AdminState, serve, token};
use turnpike_config::Config;
use turnpike_store::Store;
use turnpike_testkit::{Client, TestResponse};

/// The file's configuration in these tests: one upstream and one route, read-only in the API.
pub const BASE_YAML: &str = "listen: 127.0.0.1:8000
upstreams:
  - name: file-backend
    targets: [{url: \"http://127.0.0.1:9000\"}]
routes:
  - name: file-route
    paths: [\"/file\"]
    upstream: file-backend
";

pub fn base_config() -> Config {
    turnpike_config::load_str(BASE_YAML, Path::new("base.yaml"), &|_| None).unwrap()
}

pub struct Admin {
    pub url: String,
    /// The bootstrap admin token.
    pub token: String,
    pub store: Store,
    client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    pub dir: tempfile::TempDir,
}

impl Admin {
    /// An admin API with a bootstrap admin token over a new store.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = token::generate().unwrap().token;
        let options = AdminOptions {
            base: base_config(),
            bootstrap_token: Some(bootstrap.clone()),
            insecure_no_auth: false,
        };
        Self::start_in(dir, options, bootstrap).await
    }

    /// An admin API over the store in `dir` (reused across restarts).
    pub async fn start_in(dir: tempfile::TempDir, options: AdminOptions, token: String) -> Self {
        let store = open_store(dir.path()).await;
        Self::start_over(store, dir, options, token).await
    }

    /// An admin API over `store`, already open (`dir` is only kept, for [`Admin::stop`]).
    pub async fn start_over(
        store: Store,
        dir: tempfile::TempDir,
        options: AdminOptions,
        token: String,
    ) -> Self {
        let state = AdminState::new(store.clone(), options).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            url,
            token,
            store,
            client: Client::http1(),
            shutdown: Some(tx),
            dir,
        }
    }

    /// Stops serving and hands back the store directory for a restart. (Dropping an
    /// `Admin` stops it too: the shutdown signal fires when its sender goes.)
    pub fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.dir
    }

    /// A request with `token` (none when `None`), extra headers and a body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> TestResponse {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(auth) = &auth {
            all.push(("authorization", auth));
        }
        if !body.is_empty()
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            all.push(("content-type", "application/json"));
        }
        let url = format!("{}{path}", self.url);
        self.client.request(method, &url, &all, body).await
    }

    /// A request with the bootstrap admin token.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> TestResponse {
        let body = body.map(Value::to_string).unwrap_or_default();
        self.send(method, path, Some(&self.token), &[], &body).await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> TestResponse {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates a token with `role` through the API and returns it.
    pub async fn token_with(&self, role: &str) -> String {
        let body = serde_json::json!({"name": format!("{role} user"), "role": role});
        let r = self.post("/api/v1/tokens", &body).await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["token"].as_str().unwrap().to_owned()
    }
}

pub async fn open_store(dir: &Path) -> Store {
    let path = dir.join("turnpike.db");
    Store::open(path.to_str().unwrap()).await.unwrap()
}

/// Asserts the JSON error shape and code, returning the body.
pub fn assert_error(r: &TestResponse, status: u16, code: &str) -> Value {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

/// The `details` paths of an error body.
pub fn detail_paths(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|x| x["path"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
