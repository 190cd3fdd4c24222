//! A route's `validate:` (request validation): what loads, and the checks that keep a
//! route from refusing everything at run time (schemas that do not compile, path
//! parameters its paths lack, parameters named twice).

mod common;

use common::{errors, load};
use turnpike_config::model::ParamIn;

const BASE: &str = "listen: 127.0.0.1:8000
upstreams:
  - name: api
    targets: [{url: \"http://127.0.0.1:9000\"}]
routes:
  - name: r
    paths: [\"/pets/{id}\"]
    upstream: api
    validate:
";

fn paths(yaml: &str) -> Vec<String> {
    errors(yaml).into_iter().map(|e| e.path).collect()
}

#[test]
fn parameters_and_body_load() {
    let yaml = format!(
        "{BASE}      openapi: pets\n      parameters:\n        - {{name: id, in: path, schema: {{type: integer}}}}\n        - {{name: limit, in: query, required: true}}\n      body: {{required: true, schema: {{type: object}}}}\n"
    );
    let v = load(&yaml).routes[0].validate.clone().unwrap();
    assert_eq!(v.parameters[0].location, ParamIn::Path);
    assert!(v.parameters[1].required);
    assert!(v.body.unwrap().required);
}

#[test]
fn schemas_must_compile() {
    let yaml = format!("{BASE}      body: {{schema: {{type: 5}}}}\n");
    assert_eq!(paths(&yaml), ["routes[0].validate.body.schema"]);
    let remote =
        format!("{BASE}      body: {{schema: {{$ref: \"https://example.com/s.json\"}}}}\n");
    assert_eq!(paths(&remote), ["routes[0].validate.body.schema"]);
}

#[test]
fn path_parameters_must_be_in_the_paths_and_named_once() {
    let yaml = format!(
        "{BASE}      parameters:\n        - {{name: nope, in: path}}\n        - {{name: q, in: query}}\n        - {{name: q, in: query}}\n"
    );
    assert_eq!(
        paths(&yaml),
        [
            "routes[0].validate.parameters[0].name",
            "routes[0].validate.parameters[2].name"
        ]
    );
    let unknown = format!("{BASE}      parameters: [{{name: x, in: header}}]\n");
    assert_eq!(paths(&unknown), ["routes[0].validate.parameters[0].in"]);
}
