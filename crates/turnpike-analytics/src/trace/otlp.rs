//! The OTLP/JSON encoding of a batch of spans (`ExportTraceServiceRequest`), as sent to
//! `POST {endpoint}/v1/traces` with `Content-Type: application/json`.
//!
//! Hand-written with `serde_json` rather than the `opentelemetry` crates: the shape is
//! small and fixed, and it keeps those crates (and their build time) out of the gateway.
//! Per the OTLP/JSON rules: ids are lower-case hex (not base64), 64-bit integers
//! (timestamps, `intValue`) are JSON strings, enums are numbers, and field names are
//! lowerCamelCase.

use serde_json::{Map, Value, json};

use super::context::hex;
use super::span::{AttrValue, SpanData};

/// The instrumentation scope spans are reported under.
const SCOPE: &str = "turnpike";

/// One export request body for `spans`, from the service `service_name`.
pub fn encode(service_name: &str, spans: &[SpanData]) -> Vec<u8> {
    let resource = json!({
        "attributes": [
            attribute("service.name", &AttrValue::from(service_name.to_owned())),
            attribute("telemetry.sdk.name", &AttrValue::from("turnpike")),
            attribute("telemetry.sdk.language", &AttrValue::from("rust")),
            attribute("telemetry.sdk.version", &AttrValue::from(env!("CARGO_PKG_VERSION"))),
        ]
    });
    let body = json!({
        "resourceSpans": [{
            "resource": resource,
            "scopeSpans": [{
                "scope": {"name": SCOPE, "version": env!("CARGO_PKG_VERSION")},
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }],
        }]
    });
    // Serialising a `Value` to a Vec cannot fail (string keys, no I/O).
    serde_json::to_vec(&body).unwrap_or_default()
}

fn span(s: &SpanData) -> Value {
    let mut out = Map::with_capacity(11);
    out.insert("traceId".into(), hex(&s.trace_id).into());
    out.insert("spanId".into(), hex(&s.span_id).into());
    if let Some(parent) = &s.parent_span_id {
        out.insert("parentSpanId".into(), hex(parent).into());
    }
    if let Some(state) = &s.trace_state {
        out.insert("traceState".into(), (**state).into());
    }
    out.insert("name".into(), (*s.name).into());
    out.insert("kind".into(), (s.kind as i64).into());
    out.insert(
        "startTimeUnixNano".into(),
        s.start_unix_nanos.to_string().into(),
    );
    out.insert(
        "endTimeUnixNano".into(),
        s.end_unix_nanos.to_string().into(),
    );
    let attributes = s.attributes.iter().map(|(k, v)| attribute(k, v)).collect();
    out.insert("attributes".into(), Value::Array(attributes));
    if let Some(message) = &s.error {
        // STATUS_CODE_ERROR = 2.
        out.insert("status".into(), json!({"code": 2, "message": &**message}));
    }
    Value::Object(out)
}

fn attribute(key: &str, value: &AttrValue) -> Value {
    let value = match value {
        AttrValue::Int(n) => json!({"intValue": n.to_string()}),
        other => json!({"stringValue": other.as_str().unwrap_or_default()}),
    };
    json!({"key": key, "value": value})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::span::SpanKind;

    #[test]
    fn encodes_the_otlp_json_shape() {
        let s = SpanData {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            parent_span_id: Some([0x02; 8]),
            trace_state: Some("k=v".into()),
            name: "GET /a".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 1_700_000_000_000_000_000,
            end_unix_nanos: 1_700_000_000_000_001_000,
            attributes: vec![
                ("http.request.method", "GET".into()),
                ("http.response.status_code", 502i64.into()),
            ],
            error: Some("upstream_unavailable".into()),
        };
        let body: Value = serde_json::from_slice(&encode("gw", &[s])).unwrap();
        let rs = &body["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "gw"}})
        );
        let span = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "abababababababababababababababab");
        assert_eq!(span["spanId"], "0101010101010101");
        assert_eq!(span["parentSpanId"], "0202020202020202");
        assert_eq!(span["traceState"], "k=v");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(span["endTimeUnixNano"], "1700000000000001000");
        assert_eq!(
            span["attributes"][1],
            json!({"key": "http.response.status_code", "value": {"intValue": "502"}})
        );
        assert_eq!(span["status"]["code"], 2);
    }
}
