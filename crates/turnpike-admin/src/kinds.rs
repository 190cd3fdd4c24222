//! The entity kinds the admin API manages, and where each one lives in the configuration.
//!
//! Four kinds are whole sections of the file (`upstreams`, `routes`, `consumers`, `plans`),
//! keyed by `name`. Two live inside other sections: OAuth clients are appended to
//! `oauth.clients` (keyed by `client_id`, like the file's), and certificates to the
//! `certificates` of every TLS listener, as inline PEM (`pem: true`). One kind is a
//! singleton: the global `policies` (stored under the name `global`), which become the
//! `policies:` section unless the file sets that section itself. Merging, the file's
//! read-only names and the mapping of validation problems back to entities all go through
//! here, so the placement rules exist once.

use serde_json::{Map, Value};

/// Kinds that are top-level sections of the configuration, named like them.
pub(crate) const SECTION_KINDS: [&str; 4] = ["upstreams", "routes", "consumers", "plans"];
/// OAuth clients of the file's `oauth` server (`oauth.clients`).
pub(crate) const OAUTH_CLIENTS: &str = "oauth-clients";
/// TLS certificates for every TLS listener.
pub(crate) const CERTIFICATES: &str = "certificates";
/// The global policies: one document, the `policies:` section of the configuration.
pub(crate) const POLICIES: &str = "policies";
/// The store name of the one [`POLICIES`] document (the store keys every row by a name).
pub(crate) const GLOBAL: &str = "global";
/// Every kind the store holds for the configuration.
pub(crate) const KINDS: [&str; 7] = [
    "upstreams",
    "routes",
    "consumers",
    "plans",
    OAUTH_CLIENTS,
    CERTIFICATES,
    POLICIES,
];

/// The field that names an entity of `kind` (and is its key in the URL and the store).
pub(crate) fn key_field(kind: &str) -> &'static str {
    if kind == OAUTH_CLIENTS {
        "client_id"
    } else {
        "name"
    }
}

/// The name of `item`, an entity of `kind`.
pub(crate) fn key_of<'v>(kind: &str, item: &'v Value) -> Option<&'v str> {
    item.get(key_field(kind)).and_then(Value::as_str)
}

/// What clients see of a stored document: everything but a certificate's private key.
pub(crate) fn public_view(kind: &str, mut doc: Value) -> Value {
    if kind == CERTIFICATES {
        if let Some(fields) = doc.as_object_mut() {
            fields.remove("key");
        }
    }
    doc
}

/// Appends store entity `item` of `kind` where the file would have it. An OAuth client
/// without an `oauth` section, or a certificate without a TLS listener, has no place and
/// is left out ([`homeless`] tells writers so). The global policies become the `policies`
/// section, unless the file sets it.
pub(crate) fn merge(doc: &mut Map<String, Value>, kind: &str, item: Value) {
    match kind {
        OAUTH_CLIENTS => {
            if let Some(Value::Object(oauth)) = doc.get_mut("oauth") {
                push(oauth, "clients", item);
            }
        }
        CERTIFICATES => {
            let inline = inline_certificate(item);
            let listeners = doc.get_mut("listeners").and_then(Value::as_array_mut);
            for listener in listeners.into_iter().flatten() {
                if let Some(Value::Object(tls)) = listener.get_mut("tls") {
                    push(tls, "certificates", inline.clone());
                }
            }
        }
        // The file's own section wins whole: the rule is per section, not per key, so what
        // applies never depends on how two documents would interleave (docs/admin.md).
        POLICIES if !file_sets_policies(doc) => {
            doc.insert(POLICIES.to_owned(), item);
        }
        POLICIES => {}
        _ => push(doc, kind, item),
    }
}

/// Whether the configuration `doc` sets global policies: a `policies` section with at least
/// one policy. The file's configuration is serialized from the model, where an absent
/// section and `policies: {}` are the same empty value, so neither counts.
pub(crate) fn file_sets_policies(doc: &Map<String, Value>) -> bool {
    match doc.get(POLICIES) {
        Some(Value::Object(fields)) => fields.values().any(|v| !v.is_null()),
        Some(Value::Null) | None => false,
        Some(_) => true,
    }
}

/// A certificate entity as a listener's certificate: the same fields, with `pem: true`.
fn inline_certificate(mut item: Value) -> Value {
    if let Some(fields) = item.as_object_mut() {
        fields.insert("pem".to_owned(), Value::Bool(true));
    }
    item
}

fn push(doc: &mut Map<String, Value>, section: &str, item: Value) {
    let slot = doc
        .entry(section.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = slot {
        items.push(item);
    }
}

/// Why an entity of `kind` would not be used with the file `base`, if it would not.
pub(crate) fn homeless(base: &Value, kind: &str) -> Option<&'static str> {
    match kind {
        OAUTH_CLIENTS if !base.get("oauth").is_some_and(Value::is_object) => Some(
            "the gateway's configuration file has no `oauth` section (issuer and signing keys), so OAuth clients cannot be used",
        ),
        CERTIFICATES if !has_tls_listener(base) => Some(
            "the gateway's configuration file has no TLS listener (`listeners[].tls`) to serve certificates on",
        ),
        _ => None,
    }
}

fn has_tls_listener(base: &Value) -> bool {
    base.get("listeners")
        .and_then(Value::as_array)
        .is_some_and(|ls| {
            ls.iter()
                .any(|l| l.get("tls").is_some_and(Value::is_object))
        })
}

/// The names the file's configuration defines for `kind` (read-only through the API).
/// The file's certificates have no names, so none of them is; the global policies are
/// `[GLOBAL]` when the file sets them.
pub(crate) fn base_names(base: &Value, kind: &str) -> Vec<String> {
    if kind == POLICIES {
        let sets = base.as_object().is_some_and(file_sets_policies);
        return if sets {
            vec![GLOBAL.to_owned()]
        } else {
            Vec::new()
        };
    }
    let items = match kind {
        OAUTH_CLIENTS => base.pointer("/oauth/clients"),
        CERTIFICATES => None,
        _ => base.get(kind),
    };
    items
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| key_of(kind, i))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The entity an error path of the merged document points into: its kind, its name, and the
/// rest of the path (`.upstream`). `None` for paths outside every entity (`listen`), and for
/// the file's certificates (they have no name).
pub(crate) fn locate<'p>(doc: &Value, path: &'p str) -> Option<(&'static str, String, &'p str)> {
    if let Some(rest) = path.strip_prefix("oauth.clients[") {
        let (index, tail) = index(rest)?;
        let item = doc.pointer(&format!("/oauth/clients/{index}"))?;
        return Some((OAUTH_CLIENTS, key_of(OAUTH_CLIENTS, item)?.to_owned(), tail));
    }
    if let Some(rest) = path.strip_prefix("listeners[") {
        let (listener, tail) = index(rest)?;
        let (cert, tail) = index(tail.strip_prefix(".tls.certificates[")?)?;
        let item = doc.pointer(&format!("/listeners/{listener}/tls/certificates/{cert}"))?;
        if item.get("pem") != Some(&Value::Bool(true)) {
            return None;
        }
        return Some((CERTIFICATES, key_of(CERTIFICATES, item)?.to_owned(), tail));
    }
    let (section, rest) = path.split_once('[')?;
    let kind = SECTION_KINDS.into_iter().find(|k| *k == section)?;
    let (i, tail) = index(rest)?;
    let item = doc.get(kind)?.get(i)?;
    Some((kind, key_of(kind, item)?.to_owned(), tail))
}

/// `3].rest` → `(3, ".rest")`.
fn index(text: &str) -> Option<(usize, &str)> {
    let (index, tail) = text.split_once(']')?;
    Some((index.parse().ok()?, tail))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn certificates_go_to_every_tls_listener_and_back() {
        let mut doc = json!({"listeners": [
            {"name": "plain", "address": "127.0.0.1:8000"},
            {"name": "a", "address": "127.0.0.1:8443", "tls": {"certificates": []}},
        ]});
        let cert = json!({"name": "c", "cert": "C", "key": "K"});
        if let Value::Object(map) = &mut doc {
            merge(map, CERTIFICATES, cert);
        }
        let merged = &doc["listeners"][1]["tls"]["certificates"][0];
        assert_eq!(merged["pem"], true);
        assert!(doc["listeners"][0].get("tls").is_none());
        let path = "listeners[1].tls.certificates[0].hosts[0]";
        assert_eq!(
            locate(&doc, path),
            Some((CERTIFICATES, "c".to_owned(), ".hosts[0]"))
        );
    }

    #[test]
    fn oauth_clients_are_keyed_by_client_id() {
        let base = json!({"oauth": {"clients": [{"client_id": "file-app"}]}});
        assert_eq!(base_names(&base, OAUTH_CLIENTS), ["file-app"]);
        assert_eq!(
            locate(&base, "oauth.clients[0].scopes"),
            Some((OAUTH_CLIENTS, "file-app".to_owned(), ".scopes"))
        );
        assert!(homeless(&json!({}), OAUTH_CLIENTS).is_some());
        assert!(homeless(&base, OAUTH_CLIENTS).is_none());
    }

    #[test]
    fn store_policies_apply_only_when_the_file_sets_none() {
        let stored = json!({"cors": {"origins": ["*"]}});
        // The file's configuration serializes an absent section as `{}`.
        for empty in [json!({"policies": {}}), json!({})] {
            let Value::Object(mut doc) = empty else {
                unreachable!()
            };
            assert!(base_names(&Value::Object(doc.clone()), POLICIES).is_empty());
            merge(&mut doc, POLICIES, stored.clone());
            assert_eq!(doc[POLICIES], stored);
        }
        let file = json!({"policies": {"ip_rules": {"deny": ["10.0.0.0/8"]}}});
        assert_eq!(base_names(&file, POLICIES), [GLOBAL]);
        let Value::Object(mut doc) = file.clone() else {
            unreachable!()
        };
        merge(&mut doc, POLICIES, stored);
        assert_eq!(Value::Object(doc), file);
    }

    #[test]
    fn private_keys_are_not_shown() {
        let doc = json!({"name": "c", "cert": "C", "key": "K"});
        assert!(public_view(CERTIFICATES, doc.clone()).get("key").is_none());
        assert_eq!(public_view("routes", doc.clone()), doc);
    }
}
