//! The OTLP/JSON encoding of a batch of spans (`ExportTraceServiceRequest`), as sent to
//! `POST {endpoint}/v1/traces` with `Content-Type: application/json`.
//!
//! Hand-written with `serde_json` rather than the `opentelemetry` crates: the shape is
//! small and fixed, and it keeps those crates (and their build time) out of the gateway.
//! Per the OTLP/JSON rules: ids are lower-case hex (not base64), 64-bit integers
//! (timestamps, `intValue`) are JSON strings, enums are numbers, and field names are
//! lowerCamelCase.

use std::io::Write;

use super::context::hex_into;
use super::span::{AttrValue, SpanData};

/// The instrumentation scope spans are reported under.
const SCOPE: &str = "turnpike";

/// One export request body for `spans`, from the service `service_name`. Written straight
/// into bytes: building a `serde_json::Value` tree first cost several allocations per
/// attribute, and at full sampling the exporter competes with requests for the cores.
pub fn encode(service_name: &str, spans: &[SpanData]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + spans.len() * 768);
    out.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    let version = env!("CARGO_PKG_VERSION");
    let resource = [
        ("service.name", service_name),
        ("telemetry.sdk.name", "turnpike"),
        ("telemetry.sdk.language", "rust"),
        ("telemetry.sdk.version", version),
    ];
    for (i, (k, v)) in resource.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        attribute(&mut out, k, &AttrValue::from(v.to_string()));
    }
    out.extend_from_slice(b"]},\"scopeSpans\":[{\"scope\":{\"name\":");
    string(&mut out, SCOPE);
    out.extend_from_slice(b",\"version\":");
    string(&mut out, version);
    out.extend_from_slice(b"},\"spans\":[");
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        span(&mut out, s);
    }
    out.extend_from_slice(b"]}]}]}");
    out
}

fn span(out: &mut Vec<u8>, s: &SpanData) {
    out.extend_from_slice(b"{\"traceId\":");
    hex_string(out, &s.trace_id);
    out.extend_from_slice(b",\"spanId\":");
    hex_string(out, &s.span_id);
    if let Some(parent) = &s.parent_span_id {
        out.extend_from_slice(b",\"parentSpanId\":");
        hex_string(out, parent);
    }
    if let Some(state) = &s.trace_state {
        out.extend_from_slice(b",\"traceState\":");
        string(out, state);
    }
    out.extend_from_slice(b",\"name\":");
    string(out, &s.name);
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",\"attributes\":[",
        s.kind as i64, s.start_unix_nanos, s.end_unix_nanos
    );
    for (i, (k, v)) in s.attributes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        attribute(out, k, v);
    }
    out.push(b']');
    if let Some(message) = &s.error {
        // STATUS_CODE_ERROR = 2.
        out.extend_from_slice(b",\"status\":{\"code\":2,\"message\":");
        string(out, message);
        out.push(b'}');
    }
    out.push(b'}');
}

fn attribute(out: &mut Vec<u8>, key: &str, value: &AttrValue) {
    out.extend_from_slice(b"{\"key\":");
    string(out, key);
    match value {
        AttrValue::Int(n) => {
            let _ = write!(out, ",\"value\":{{\"intValue\":\"{n}\"}}}}");
        }
        other => {
            out.extend_from_slice(b",\"value\":{\"stringValue\":");
            string(out, other.as_str().unwrap_or_default());
            out.extend_from_slice(b"}}");
        }
    }
}

/// A JSON string, escaped by `serde_json` (which cannot fail on a `str`).
fn string(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

fn hex_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut buf = [0u8; 32];
    let hex = &mut buf[..bytes.len() * 2];
    hex_into(bytes, hex);
    out.push(b'"');
    out.extend_from_slice(hex);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::span::SpanKind;
    use serde_json::{Value, json};

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
