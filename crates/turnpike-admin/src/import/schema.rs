//! OpenAPI schemas to plain JSON Schema, for routes that validate requests: local `$ref`s
//! (`#/components/...`) are inlined, so each route carries self-contained schemas, and
//! OpenAPI 3.0's dialect (`nullable`, boolean `exclusiveMinimum`) becomes JSON Schema.
//!
//! 3.1 schemas are JSON Schema already; inlining is all they need. A recursive schema is
//! cut at [`MAX_DEPTH`] references (what lies deeper accepts anything) rather than refused.

use serde_json::{Map, Value};

use crate::error::Detail;

/// References followed along one branch before giving up on checking deeper.
const MAX_DEPTH: usize = 16;

/// Keywords of OpenAPI's schema object that JSON Schema does not have (or that only
/// describe); dropped so they cannot be misread.
const OPENAPI_ONLY: [&str; 5] = [
    "discriminator",
    "xml",
    "externalDocs",
    "example",
    "nullable",
];

/// Converts `schema` (found at `at` in `doc`) for the gateway; `v30` for OpenAPI 3.0.
pub(crate) fn convert(doc: &Value, schema: &Value, at: &str, v30: bool) -> Result<Value, Detail> {
    Converter { doc, v30 }.value(schema, at, 0)
}

/// Follows a local reference: `#/components/parameters/Limit` → that object.
pub(crate) fn resolve<'d>(doc: &'d Value, reference: &str, at: &str) -> Result<&'d Value, Detail> {
    let pointer = reference.strip_prefix('#').ok_or_else(|| {
        let msg = format!(
            "only local references (`#/components/...`) are supported, found {reference:?}"
        );
        Detail::new(format!("{at}.$ref"), msg)
    })?;
    doc.pointer(pointer).ok_or_else(|| {
        Detail::new(
            format!("{at}.$ref"),
            format!("{reference:?} does not exist in the document"),
        )
    })
}

struct Converter<'d> {
    doc: &'d Value,
    v30: bool,
}

impl Converter<'_> {
    fn value(&self, v: &Value, at: &str, depth: usize) -> Result<Value, Detail> {
        match v {
            Value::Object(map) => self.object(map, at, depth),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.value(item, &format!("{at}[{i}]"), depth))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    fn object(&self, map: &Map<String, Value>, at: &str, depth: usize) -> Result<Value, Detail> {
        if let Some(Value::String(reference)) = map.get("$ref") {
            if depth >= MAX_DEPTH {
                return Ok(Value::Object(Map::new()));
            }
            let target = resolve(self.doc, reference, at)?;
            return self.value(target, at, depth + 1);
        }
        let mut out = Map::with_capacity(map.len());
        for (key, v) in map {
            if OPENAPI_ONLY.contains(&key.as_str()) {
                continue;
            }
            let child = format!("{at}.{key}");
            // Literal values (not schemas) are copied as they are.
            let converted = match key.as_str() {
                "enum" | "const" | "default" | "examples" => v.clone(),
                // Maps of names to schemas: the names are not keywords.
                "properties" | "patternProperties" | "$defs" | "definitions"
                | "dependentSchemas" => self.named(v, &child, depth)?,
                _ => self.value(v, &child, depth)?,
            };
            out.insert(key.clone(), converted);
        }
        if self.v30 {
            self.dialect_30(map, &mut out);
        }
        Ok(Value::Object(out))
    }

    fn named(&self, v: &Value, at: &str, depth: usize) -> Result<Value, Detail> {
        let Value::Object(map) = v else {
            return Ok(v.clone());
        };
        let mut out = Map::with_capacity(map.len());
        for (name, schema) in map {
            out.insert(
                name.clone(),
                self.value(schema, &format!("{at}.{name}"), depth)?,
            );
        }
        Ok(Value::Object(out))
    }

    /// `nullable: true` adds `null` to the type; boolean exclusive bounds become numbers.
    fn dialect_30(&self, original: &Map<String, Value>, out: &mut Map<String, Value>) {
        if original.get("nullable") == Some(&Value::Bool(true)) {
            if let Some(Value::String(t)) = out.get("type").cloned() {
                out.insert(
                    "type".to_owned(),
                    Value::Array(vec![t.into(), "null".into()]),
                );
            }
            if let Some(Value::Array(values)) = out.get_mut("enum") {
                if !values.contains(&Value::Null) {
                    values.push(Value::Null);
                }
            }
        }
        for (flag, bound) in [
            ("exclusiveMinimum", "minimum"),
            ("exclusiveMaximum", "maximum"),
        ] {
            match out.get(flag) {
                Some(Value::Bool(true)) => {
                    if let Some(b) = out.remove(bound) {
                        out.insert(flag.to_owned(), b);
                    } else {
                        out.remove(flag);
                    }
                }
                Some(Value::Bool(false)) => {
                    out.remove(flag);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn refs_are_inlined_and_30_dialect_converted() {
        let doc = json!({"components": {"schemas": {
            "Pet": {"type": "object", "properties": {"tag": {"type": "string", "nullable": true},
                "age": {"type": "integer", "minimum": 0, "exclusiveMinimum": true}},
                "example": {"tag": "x"}}}}});
        let schema = json!({"$ref": "#/components/schemas/Pet"});
        let out = convert(&doc, &schema, "body", true).unwrap();
        assert_eq!(out["properties"]["tag"]["type"], json!(["string", "null"]));
        assert_eq!(out["properties"]["age"]["exclusiveMinimum"], json!(0));
        assert!(out["properties"]["age"].get("minimum").is_none());
        assert!(out.get("example").is_none());
    }

    #[test]
    fn recursion_is_cut_and_missing_refs_named() {
        let doc = json!({"components": {"schemas": {
            "Node": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}}}}});
        let schema = json!({"$ref": "#/components/schemas/Node"});
        assert!(convert(&doc, &schema, "body", false).is_ok());
        let bad = json!({"$ref": "#/components/schemas/Nope"});
        let e = convert(&doc, &bad, "x", false).unwrap_err();
        assert_eq!(e.path, "x.$ref");
    }
}
