//! A route's request validation (`validate:`): the parameters and JSON body an operation
//! accepts, as JSON Schemas. `turnpike import openapi --validate` writes it from the
//! operation's OpenAPI description, with `$ref`s inlined, so the route is self-contained
//! and every gateway node compiles the same schemas.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a request to the route must look like; anything else gets 400 `invalid_request`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestValidation {
    /// The service (OpenAPI document) these rules come from; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
    /// Path and query parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ParamRule>,
    /// The JSON request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyRule>,
}

/// One path or query parameter.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParamRule {
    pub name: String,
    #[serde(rename = "in")]
    pub location: ParamIn,
    /// Path parameters are always required.
    #[serde(default)]
    pub required: bool,
    /// A JSON Schema for the value; text is read as a number or boolean when the schema's
    /// `type` asks for one.
    #[serde(default = "any", skip_serializing_if = "is_any")]
    pub schema: Value,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ParamIn {
    Path,
    Query,
}

/// The request body: JSON (`application/json` or `+json`), checked against `schema`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BodyRule {
    #[serde(default)]
    pub required: bool,
    #[serde(default = "any", skip_serializing_if = "is_any")]
    pub schema: Value,
}

fn any() -> Value {
    Value::Object(serde_json::Map::new())
}

fn is_any(v: &Value) -> bool {
    v.as_object().is_some_and(serde_json::Map::is_empty)
}
