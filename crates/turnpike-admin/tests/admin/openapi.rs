//! The OpenAPI document: served without a token, OpenAPI 3.1, and every operation in it
//! reaches a real route (the router and the document are built from the same list).

use http::Method;
use serde_json::Value;

use crate::support::Admin;

#[tokio::test]
async fn document_lists_exactly_the_served_routes() {
    let admin = Admin::start().await;
    let r = admin
        .send(Method::GET, "/api/v1/openapi.json", None, &[], "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc: Value = r.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc,
        serde_json::to_value(turnpike_admin::openapi()).unwrap()
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations.sort();
    let mut expected: Vec<String> = [
        "GET /healthz",
        "GET /readyz",
        "GET /api/v1/openapi.json",
        "GET /api/v1/audit",
        "GET /api/v1/cache",
        "POST /api/v1/cache/purge",
        "GET /api/v1/tokens",
        "POST /api/v1/tokens",
        "DELETE /api/v1/tokens/{id}",
        "GET /api/v1/file-entities",
        "POST /api/v1/consumers/{name}/keys",
        "DELETE /api/v1/consumers/{name}/keys/{id}",
        "GET /api/v1/services",
        "GET /api/v1/services/{name}/openapi",
        "POST /api/v1/services/{name}/openapi",
        "DELETE /api/v1/services/{name}",
        "GET /api/v1/services/{name}",
        "GET /api/v1/services/{name}/versions/{version}/openapi",
        "POST /api/v1/services/{name}/versions/{version}/openapi",
        "PATCH /api/v1/services/{name}/versions/{version}",
        "DELETE /api/v1/services/{name}/versions/{version}",
        "GET /api/v1/status",
        "GET /api/v1/analytics/timeseries",
        "GET /api/v1/analytics/top",
        "GET /api/v1/consumers/{name}/usage",
        "POST /api/v1/config/push",
        "GET /api/v1/policies",
        "PUT /api/v1/policies",
        "DELETE /api/v1/policies",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let kinds = [
        "upstreams",
        "routes",
        "consumers",
        "plans",
        "oauth-clients",
        "certificates",
    ];
    for kind in kinds {
        for op in ["GET", "POST"] {
            expected.push(format!("{op} /api/v1/{kind}"));
        }
        for op in ["GET", "PUT", "DELETE"] {
            expected.push(format!("{op} /api/v1/{kind}/{{name}}"));
        }
    }
    expected.sort();
    assert_eq!(operations, expected);

    // Each documented operation is routed: never the fallback's 404 or the 405.
    for op in &operations {
        let (method, path) = op.split_once(' ').unwrap();
        let path = path.replace("{name}", "x").replace("{id}", "x");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let r = admin.send(method, &path, Some(&admin.token), &[], "").await;
        assert_ne!(r.status, 405, "{op}: {}", r.text());
        let fallback = r.status == 404 && r.text().contains("no such endpoint");
        assert!(!fallback, "{op} is documented but not routed");
    }
}

#[tokio::test]
async fn protected_operations_declare_the_bearer_scheme() {
    let doc = serde_json::to_value(turnpike_admin::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let public = matches!(
            path.as_str(),
            "/healthz" | "/readyz" | "/api/v1/openapi.json"
        );
        for (method, op) in item.as_object().unwrap() {
            let secured = op
                .get("security")
                .is_some_and(|s| s.to_string().contains("bearer"));
            assert_eq!(secured, !public, "{method} {path}");
        }
    }
    // The entity bodies are described.
    for name in [
        "Route",
        "Upstream",
        "Consumer",
        "ErrorBody",
        "CreatedToken",
        "AuditPage",
    ] {
        assert!(doc["components"]["schemas"][name].is_object(), "{name}");
    }
}

/// An independent check: the document passes `openapi-spec-validator` (PyPI). CI installs
/// it and the test fails there without it; elsewhere a missing validator is a skip.
#[test]
fn document_passes_openapi_spec_validator() {
    const SCRIPT: &str = "import json, sys
try:
    from openapi_spec_validator import validate
except ImportError:
    sys.exit(3)
validate(json.load(sys.stdin))
print('valid')
";
    let doc = turnpike_admin::openapi().to_json().unwrap();
    let child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Ok(mut child) = child else {
        assert!(!ci, "python3 is required in CI");
        eprintln!("SKIPPED: no python3 for openapi-spec-validator");
        return;
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(doc.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    if out.status.code() == Some(3) {
        assert!(
            !ci,
            "openapi-spec-validator is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: openapi-spec-validator is not installed");
        return;
    }
    assert!(
        out.status.success(),
        "the document is not valid OpenAPI:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn operation_ids_are_unique() {
    let doc = serde_json::to_value(turnpike_admin::openapi()).unwrap();
    let mut ids = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            ids.push(op["operationId"].as_str().unwrap().to_owned());
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "{ids:?}");
    for id in [
        "list_routes",
        "create_route",
        "get_route",
        "replace_route",
        "delete_route",
    ] {
        assert!(ids.contains(&id.to_owned()), "{ids:?}");
    }
}
