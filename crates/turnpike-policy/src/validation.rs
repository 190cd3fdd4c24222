//! Request validation (a route's `validate:`), compiled once per config version: path and
//! query parameters and the JSON body checked against JSON Schemas (from an OpenAPI
//! document, by `turnpike import openapi --validate`).
//!
//! Messages name the failing value by its JSON pointer and never echo long values back,
//! so a client cannot make the gateway reflect megabytes of its own input.

use std::borrow::Cow;

use jsonschema::{ValidationError, Validator};
use serde_json::Value;
use turnpike_config::model::{ParamIn, RequestValidation};

/// Longest piece of client input repeated in a message.
const MAX_ECHO: usize = 40;
/// Longest message, whatever the schema's complaint quotes.
const MAX_MESSAGE: usize = 300;

/// A route's compiled request checks.
#[derive(Debug)]
pub struct RequestSchema {
    params: Vec<Param>,
    body: Option<Body>,
    /// Set when the schemas did not compile: every request is refused rather than let
    /// through unchecked (the config validator refuses such routes first).
    broken: bool,
}

#[derive(Debug)]
struct Param {
    name: String,
    location: ParamIn,
    required: bool,
    /// The schema's `type` (and its items' for arrays): how to read text as JSON.
    kind: Kind,
    validator: Validator,
}

#[derive(Debug)]
struct Body {
    required: bool,
    validator: Validator,
}

/// How parameter text becomes a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Number,
    Boolean,
    /// Repeated (`?tag=a&tag=b`) or comma-separated values of the item kind.
    Array(Scalar),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Text,
    Integer,
    Number,
    Boolean,
}

/// Why a request does not match: a message for the 400 `invalid_request` answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A schema that does not compile (the config validator refuses these first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: not a usable JSON Schema: {message}")]
pub struct SchemaError {
    pub at: String,
    pub message: String,
}

impl RequestSchema {
    pub fn build(v: &RequestValidation) -> Result<Self, SchemaError> {
        let compile = |at: String, schema: &Value| {
            jsonschema::options()
                .build(schema)
                .map_err(|e| SchemaError {
                    at,
                    message: e.to_string(),
                })
        };
        let mut params = Vec::with_capacity(v.parameters.len());
        for (i, p) in v.parameters.iter().enumerate() {
            params.push(Param {
                name: p.name.clone(),
                location: p.location,
                required: p.required || p.location == ParamIn::Path,
                kind: kind_of(&p.schema),
                validator: compile(format!("parameters[{i}].schema"), &p.schema)?,
            });
        }
        let body = match &v.body {
            Some(b) => Some(Body {
                required: b.required,
                validator: compile("body.schema".to_owned(), &b.schema)?,
            }),
            None => None,
        };
        Ok(Self {
            params,
            body,
            broken: false,
        })
    }

    /// Checks that refuse every request, for a route whose schemas do not compile.
    pub fn refusing() -> Self {
        Self {
            params: Vec::new(),
            body: None,
            broken: true,
        }
    }

    /// Whether the body must be read (and so buffered) to check it.
    pub fn checks_body(&self) -> bool {
        self.body.is_some()
    }

    /// Checks path parameters (`path_param` gives a matched template value, still
    /// percent-encoded) and the query string.
    pub fn check_params<'p>(
        &self,
        path_param: impl Fn(&str) -> Option<&'p str>,
        query: Option<&str>,
    ) -> Result<(), Invalid> {
        if self.broken {
            let msg =
                "this API's request validation is misconfigured; the request was not forwarded";
            return Err(Invalid(msg.to_owned()));
        }
        let pairs = query.map(query_pairs).unwrap_or_default();
        for p in &self.params {
            let values: Vec<Cow<'_, str>> = match p.location {
                ParamIn::Path => path_param(&p.name).map(decode).into_iter().collect(),
                ParamIn::Query => pairs
                    .iter()
                    .filter(|(k, _)| *k == p.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
            };
            let place = match p.location {
                ParamIn::Path => "path",
                ParamIn::Query => "query",
            };
            if values.is_empty() {
                if p.required {
                    let msg = format!("the {place} parameter `{}` is required", p.name);
                    return Err(Invalid(msg));
                }
                continue;
            }
            let value = p.kind.read(&values);
            if let Err(e) = p.validator.validate(&value) {
                let what = format!("the {place} parameter `{}`", p.name);
                return Err(Invalid(describe(&what, e)));
            }
        }
        Ok(())
    }

    /// Checks the request body; `content_type` is the request's header value.
    pub fn check_body(&self, content_type: Option<&str>, body: &[u8]) -> Result<(), Invalid> {
        let Some(rule) = &self.body else {
            return Ok(());
        };
        if body.is_empty() {
            if rule.required {
                return Err(Invalid("a request body is required".to_owned()));
            }
            return Ok(());
        }
        if !content_type.is_some_and(is_json) {
            let msg = "the request body must be JSON (Content-Type: application/json)";
            return Err(Invalid(msg.to_owned()));
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            let msg = format!(
                "the request body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            );
            Invalid(msg)
        })?;
        rule.validator
            .validate(&value)
            .map_err(|e| Invalid(describe("the request body", e)))
    }
}

impl Kind {
    fn read(self, values: &[Cow<'_, str>]) -> Value {
        let first = values.first().map_or("", |v| v.as_ref());
        match self {
            Self::Text => Value::String(first.to_owned()),
            Self::Integer => Scalar::Integer.read(first),
            Self::Number => Scalar::Number.read(first),
            Self::Boolean => Scalar::Boolean.read(first),
            Self::Array(item) => {
                // One value may hold a comma-separated list (OpenAPI `explode: false`).
                let items: Vec<&str> = if values.len() == 1 {
                    first.split(',').collect()
                } else {
                    values.iter().map(|v| v.as_ref()).collect()
                };
                Value::Array(items.into_iter().map(|v| item.read(v)).collect())
            }
        }
    }
}

impl Scalar {
    /// Text that does not read as the wanted type stays text, so the schema reports it.
    fn read(self, text: &str) -> Value {
        let parsed = match self {
            Self::Text => None,
            Self::Integer => text.parse::<i64>().ok().map(Value::from),
            Self::Number => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            Self::Boolean => text.parse::<bool>().ok().map(Value::Bool),
        };
        parsed.unwrap_or_else(|| Value::String(text.to_owned()))
    }
}

fn kind_of(schema: &Value) -> Kind {
    match scalar_of(schema) {
        Some(Scalar::Integer) => Kind::Integer,
        Some(Scalar::Number) => Kind::Number,
        Some(Scalar::Boolean) => Kind::Boolean,
        _ if type_name(schema) == Some("array") => {
            let items = schema.get("items").unwrap_or(&Value::Null);
            Kind::Array(scalar_of(items).unwrap_or(Scalar::Text))
        }
        _ => Kind::Text,
    }
}

fn scalar_of(schema: &Value) -> Option<Scalar> {
    match type_name(schema)? {
        "integer" => Some(Scalar::Integer),
        "number" => Some(Scalar::Number),
        "boolean" => Some(Scalar::Boolean),
        "string" => Some(Scalar::Text),
        _ => None,
    }
}

/// The schema's `type`, or its first non-null one (`["integer", "null"]`).
fn type_name(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

/// `what` at its JSON pointer, with the schema's complaint about a shortened value.
fn describe(what: &str, e: ValidationError<'_>) -> String {
    let pointer = e.instance_path.to_string();
    let short = ValidationError {
        instance: Cow::Owned(shorten(&e.instance)),
        ..e
    };
    let at = if pointer.is_empty() { "/" } else { &pointer };
    let mut message = format!("{what} is invalid at {at}: {short}");
    // Property names (in `additionalProperties` errors) come from the client too.
    if message.chars().count() > MAX_MESSAGE {
        message = message.chars().take(MAX_MESSAGE).collect();
        message.push('…');
    }
    message
}

/// Long strings cut, containers summarised: the message must stay small.
fn shorten(v: &Value) -> Value {
    match v {
        Value::String(s) if s.chars().count() > MAX_ECHO => {
            let cut: String = s.chars().take(MAX_ECHO).collect();
            Value::String(format!("{cut}…"))
        }
        Value::Array(items) => Value::String(format!("[array of {}]", items.len())),
        Value::Object(map) if !map.is_empty() => {
            Value::String(format!("{{object with {} fields}}", map.len()))
        }
        other => other.clone(),
    }
}

/// `a=1&b=x%20y` → `[("a", "1"), ("b", "x y")]`.
fn query_pairs(query: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_form(k), decode_form(v))
        })
        .collect()
}

fn decode_form(s: &str) -> Cow<'_, str> {
    if s.contains('+') {
        Cow::Owned(decode(&s.replace('+', " ")).into_owned())
    } else {
        decode(s)
    }
}

/// Percent-decoding; invalid escapes are kept as written.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use turnpike_config::model::{BodyRule, ParamRule};

    use super::*;

    fn schema() -> RequestSchema {
        let v = RequestValidation {
            openapi: None,
            parameters: vec![
                ParamRule {
                    name: "id".into(),
                    location: ParamIn::Path,
                    required: true,
                    schema: json!({"type": "integer"}),
                },
                ParamRule {
                    name: "limit".into(),
                    location: ParamIn::Query,
                    required: true,
                    schema: json!({"type": "integer", "maximum": 100}),
                },
            ],
            body: Some(BodyRule {
                required: true,
                schema: json!({"type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string", "maxLength": 5}}}),
            }),
        };
        match RequestSchema::build(&v) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn parameters_are_read_as_their_type() {
        let s = schema();
        assert!(s.check_params(|_| Some("7"), Some("limit=10")).is_ok());
        let e = s.check_params(|_| Some("x"), Some("limit=10")).unwrap_err();
        assert!(e.0.contains("path parameter `id`"), "{e}");
        let e = s.check_params(|_| Some("7"), None).unwrap_err();
        assert!(e.0.contains("`limit` is required"), "{e}");
        let e = s
            .check_params(|_| Some("7"), Some("limit=101"))
            .unwrap_err();
        assert!(e.0.contains("101"), "{e}");
    }

    #[test]
    fn body_errors_have_a_pointer_and_no_long_values() {
        let s = schema();
        let ok = br#"{"name": "rex"}"#;
        assert!(s.check_body(Some("application/json"), ok).is_ok());
        let long = format!(r#"{{"name": "{}"}}"#, "x".repeat(10_000));
        let e = s
            .check_body(Some("application/json"), long.as_bytes())
            .unwrap_err();
        assert!(e.0.contains("/name"), "{e}");
        assert!(e.0.len() < 300, "{e}");
        let e = s.check_body(Some("application/json"), b"").unwrap_err();
        assert!(e.0.contains("required"), "{e}");
        assert!(s.check_body(Some("text/plain"), ok).is_err());
        let key = format!(r#"{{"name": "a", "{}": 1}}"#, "k".repeat(10_000));
        let strict = RequestSchema::build(&RequestValidation {
            body: Some(BodyRule {
                required: false,
                schema: json!({"additionalProperties": false, "properties": {"name": {}}}),
            }),
            ..RequestValidation::default()
        })
        .unwrap();
        let e = strict
            .check_body(Some("application/json"), key.as_bytes())
            .unwrap_err();
        assert!(e.0.len() < 400, "{e}");
    }
}
