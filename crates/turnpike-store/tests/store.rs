//! Entity, audit, token and snapshot behaviour, the same on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::json;
use turnpike_store::{AuditQuery, ListQuery, NewToken, Store, StoreError, TOKEN_KIND};

use common::TestDb;

both_backends!(
    crud,
    paging_and_prefix,
    revision_mismatch_changes_nothing,
    concurrent_updates_with_one_revision_one_wins,
    every_write_bumps_the_version_and_is_audited,
    audit_filters_and_pages,
    failed_writes_leave_nothing_behind,
    snapshot_is_consistent_and_ordered,
    admin_tokens,
    token_writes_are_audited_without_the_hash,
);

fn page(limit: u32, after: Option<&str>, prefix: Option<&str>) -> ListQuery {
    ListQuery {
        limit,
        after: after.map(str::to_owned),
        prefix: prefix.map(str::to_owned),
    }
}

fn names(p: &turnpike_store::Page) -> Vec<&str> {
    p.items.iter().map(|r| r.name.as_str()).collect()
}

/// Six upstreams whose byte order differs from a case-insensitive one, and a route.
async fn seeded(db: &TestDb) -> Store {
    let store = Store::open(db.url()).await.unwrap();
    for name in ["b", "a", "api-2", "api-1", "Z", "api-10"] {
        let rec = store
            .create("upstream", name, json!({"n": name}), "alice")
            .await
            .unwrap();
        assert_eq!((rec.revision, rec.kind.as_str()), (1, "upstream"));
    }
    store
        .create("route", "a", json!({}), "alice")
        .await
        .unwrap();
    store
}

async fn crud(db: &TestDb) {
    let store = seeded(db).await;
    let got = store.get("upstream", "a").await.unwrap().unwrap();
    assert_eq!(got.doc, json!({"n": "a"}));
    assert!(
        got.created_at.parse::<jiff::Timestamp>().is_ok(),
        "{}",
        got.created_at
    );
    assert_eq!(got.created_at, got.updated_at);
    assert!(store.get("upstream", "missing").await.unwrap().is_none());

    let updated = store
        .update("upstream", "a", json!({"n": 2}), None, "bob")
        .await
        .unwrap();
    assert_eq!((updated.revision, &updated.doc), (2, &json!({"n": 2})));
    assert_eq!(updated.created_at, got.created_at);
    assert_eq!(store.get("upstream", "a").await.unwrap().unwrap(), updated);

    store.delete("upstream", "a", Some(2), "bob").await.unwrap();
    assert!(store.get("upstream", "a").await.unwrap().is_none());
    let route = store.get("route", "a").await.unwrap();
    assert!(route.is_some(), "other kinds untouched");

    let exists = store
        .create("upstream", "b", json!({}), "x")
        .await
        .unwrap_err();
    assert!(matches!(exists, StoreError::Exists { .. }), "{exists}");
    let missing = store
        .update("upstream", "a", json!({}), None, "x")
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
    let missing = store.delete("upstream", "a", None, "x").await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
}

async fn paging_and_prefix(db: &TestDb) {
    let store = seeded(db).await;
    let list = |q: ListQuery| {
        let store = store.clone();
        async move { store.list("upstream", &q).await.unwrap() }
    };
    // Bytewise: upper case first, "api-10" before "api-2"; both backends must agree.
    let p1 = list(page(4, None, None)).await;
    assert_eq!(names(&p1), ["Z", "a", "api-1", "api-10"]);
    assert_eq!(p1.next.as_deref(), Some("api-10"));
    let p2 = list(page(4, p1.next.as_deref(), None)).await;
    assert_eq!((names(&p2), p2.next.as_deref()), (vec!["api-2", "b"], None));
    let exact = list(page(6, None, None)).await;
    assert_eq!((exact.items.len(), exact.next), (6, None));

    let api = list(page(2, None, Some("api-"))).await;
    assert_eq!(names(&api), ["api-1", "api-10"]);
    let api2 = list(page(2, api.next.as_deref(), Some("api-"))).await;
    assert_eq!((names(&api2), api2.next.as_deref()), (vec!["api-2"], None));
    // `%` and `_` are not wildcards here.
    assert!(list(page(10, None, Some("api%"))).await.items.is_empty());
    assert!(list(page(10, None, Some("a_i"))).await.items.is_empty());
    let routes = store.list("route", &page(10, None, None)).await.unwrap();
    assert_eq!(names(&routes), ["a"]);
    for limit in [0, 1001] {
        let bad = store
            .list("upstream", &page(limit, None, None))
            .await
            .unwrap_err();
        assert!(matches!(bad, StoreError::Invalid(_)), "{bad}");
    }
}

async fn revision_mismatch_changes_nothing(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    store
        .create("consumer", "c", json!({"v": 1}), "a")
        .await
        .unwrap();
    store
        .update("consumer", "c", json!({"v": 2}), Some(1), "a")
        .await
        .unwrap();
    let version = store.version().await.unwrap();

    let err = store
        .update("consumer", "c", json!({"v": 3}), Some(1), "a")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RevisionMismatch { current: 2 }),
        "{err}"
    );
    let err = store
        .delete("consumer", "c", Some(7), "a")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RevisionMismatch { current: 2 }),
        "{err}"
    );

    assert_eq!(store.version().await.unwrap(), version);
    assert_eq!(
        store.get("consumer", "c").await.unwrap().unwrap().doc,
        json!({"v": 2})
    );
    assert_eq!(store.audit(&AuditQuery::default()).await.unwrap().len(), 2);
}

async fn concurrent_updates_with_one_revision_one_wins(db: &TestDb) {
    let a = Store::open(db.url()).await.unwrap();
    let b = Store::open(db.url()).await.unwrap();
    a.create("plan", "gold", json!({"rps": 0}), "setup")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .update(
                    "plan",
                    "gold",
                    json!({"rps": i}),
                    Some(1),
                    &format!("writer-{i}"),
                )
                .await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(rec) => {
                wins += 1;
                assert_eq!(rec.revision, 2);
            }
            Err(StoreError::RevisionMismatch { current: 2 }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(a.version().await.unwrap(), 2, "one create plus one update");
    assert_eq!(b.get("plan", "gold").await.unwrap().unwrap().revision, 2);
}

/// Four writes by four actors; returns the store at version 4.
async fn four_writes(db: &TestDb) -> Store {
    let store = Store::open(db.url()).await.unwrap();
    assert_eq!(store.version().await.unwrap(), 0);
    store
        .create("route", "r", json!({"paths": ["/"]}), "alice")
        .await
        .unwrap();
    assert_eq!(store.version().await.unwrap(), 1);
    store
        .update("route", "r", json!({"paths": ["/v2"]}), Some(1), "bob")
        .await
        .unwrap();
    assert_eq!(store.version().await.unwrap(), 2);
    store
        .create("upstream", "u", json!({}), "carol")
        .await
        .unwrap();
    store.delete("route", "r", None, "dave").await.unwrap();
    assert_eq!(store.version().await.unwrap(), 4);
    store
}

async fn every_write_bumps_the_version_and_is_audited(db: &TestDb) {
    let store = four_writes(db).await;
    let all = store.audit(&AuditQuery::default()).await.unwrap();
    let summary: Vec<_> = all
        .iter()
        .map(|e| (e.action.as_str(), e.kind.as_str(), e.actor.as_str()))
        .collect();
    let expected = [
        ("delete", "route", "dave"),
        ("create", "upstream", "carol"),
        ("update", "route", "bob"),
        ("create", "route", "alice"),
    ];
    assert_eq!(summary, expected);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let (v1, v2) = (json!({"paths": ["/"]}), json!({"paths": ["/v2"]}));
    let (delete, update, create) = (&all[0], &all[2], &all[3]);
    assert_eq!((&delete.before, &delete.after), (&Some(v2.clone()), &None));
    assert_eq!(
        (&update.before, &update.after),
        (&Some(v1.clone()), &Some(v2))
    );
    assert_eq!((&create.before, &create.after), (&None, &Some(v1)));
    assert!(create.at.parse::<jiff::Timestamp>().is_ok());
}

async fn audit_filters_and_pages(db: &TestDb) {
    let store = four_writes(db).await;
    let all = store.audit(&AuditQuery::default()).await.unwrap();
    let route = AuditQuery {
        kind: Some("route".into()),
        name: Some("r".into()),
        ..AuditQuery::default()
    };
    assert_eq!(store.audit(&route).await.unwrap().len(), 3);
    let older = AuditQuery {
        limit: 2,
        before_id: Some(all[1].id),
        ..AuditQuery::default()
    };
    let ids: Vec<_> = store
        .audit(&older)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, [all[2].id, all[3].id]);
    let zero = AuditQuery {
        limit: 0,
        ..AuditQuery::default()
    };
    let bad = store.audit(&zero).await.unwrap_err();
    assert!(matches!(bad, StoreError::Invalid(_)));
}

async fn failed_writes_leave_nothing_behind(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    store
        .create("service", "s", json!({"a": 1}), "x")
        .await
        .unwrap();
    let audit_len = || async { store.audit(&AuditQuery::default()).await.unwrap().len() };
    assert_eq!((store.version().await.unwrap(), audit_len().await), (1, 1));

    // These fail after the version bump ran inside the transaction: it must roll back with them.
    let dup = store
        .create("service", "s", json!({"a": 2}), "x")
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Exists { .. }), "{dup}");
    // An empty name breaks a CHECK constraint in the schema.
    let empty = store
        .create("service", "", json!({}), "x")
        .await
        .unwrap_err();
    assert!(matches!(empty, StoreError::Invalid(_)), "{empty}");
    let missing = store
        .update("service", "nope", json!({}), None, "x")
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");

    assert_eq!((store.version().await.unwrap(), audit_len().await), (1, 1));
    let (version, all) = store.snapshot().await.unwrap();
    assert_eq!((version, all.len()), (1, 1));
    assert_eq!(all[0].doc, json!({"a": 1}));
    // The store still works after the failures (no connection left mid-transaction).
    store.create("service", "t", json!({}), "x").await.unwrap();
    assert_eq!(store.version().await.unwrap(), 2);
}

async fn snapshot_is_consistent_and_ordered(db: &TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    assert_eq!(store.snapshot().await.unwrap(), (0, vec![]));
    for (kind, name) in [
        ("upstream", "b"),
        ("route", "z"),
        ("upstream", "a"),
        ("certificate", "c"),
    ] {
        store
            .create(kind, name, json!({"k": kind}), "x")
            .await
            .unwrap();
    }
    let (version, records) = store.snapshot().await.unwrap();
    assert_eq!(version, 4);
    let keys: Vec<_> = records
        .iter()
        .map(|r| (r.kind.as_str(), r.name.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("certificate", "c"),
            ("route", "z"),
            ("upstream", "a"),
            ("upstream", "b")
        ]
    );

    // Under concurrent writes every snapshot's version matches its contents: each write adds
    // one entity, so version = 4 + entities added.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                store
                    .create("consumer", &format!("c{i:02}"), json!({}), "w")
                    .await
                    .unwrap();
            }
        })
    };
    for _ in 0..30 {
        let (version, records) = store.snapshot().await.unwrap();
        assert_eq!(version, records.len() as i64);
    }
    writer.await.unwrap();
}

/// Two tokens, "tok1" by the system (revoked by tok0) and "tok0" by tok1.
async fn two_tokens(db: &TestDb) -> Store {
    let store = Store::open(db.url()).await.unwrap();
    assert_eq!(store.token_count().await.unwrap(), 0);
    let new = NewToken {
        id: "tok1".into(),
        name: "ci".into(),
        role: "admin".into(),
        hash: "$argon2id$secret-hash".into(),
    };
    let row = store.create_token(&new).await.unwrap();
    assert_eq!(
        (row.id.as_str(), row.hash.as_str()),
        ("tok1", "$argon2id$secret-hash")
    );
    assert!(!row.revoked);
    assert_eq!(store.token("tok1").await.unwrap(), Some(row));
    let dup = store.create_token(&new).await.unwrap_err();
    assert!(matches!(dup, StoreError::Exists { .. }), "{dup}");
    let other = NewToken {
        id: "tok0".into(),
        role: "read-only".into(),
        ..new
    };
    store.create_token_as(&other, "tok1").await.unwrap();
    store.revoke_token("tok1", "tok0").await.unwrap();
    store
}

async fn admin_tokens(db: &TestDb) {
    let store = two_tokens(db).await;
    assert!(store.token("nope").await.unwrap().is_none());
    let ids: Vec<_> = store
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["tok0", "tok1"]);
    assert!(store.token("tok1").await.unwrap().unwrap().revoked);
    // Revoking twice is fine; an unknown token is not.
    store.revoke_token("tok1", "tok0").await.unwrap();
    let missing = store.revoke_token("nope", "tok0").await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
    assert_eq!(store.token_count().await.unwrap(), 2);
    assert_eq!(
        store.version().await.unwrap(),
        0,
        "tokens are not gateway config"
    );
}

async fn token_writes_are_audited_without_the_hash(db: &TestDb) {
    let store = two_tokens(db).await;
    store.revoke_token("tok1", "tok0").await.unwrap();
    let query = AuditQuery {
        kind: Some(TOKEN_KIND.into()),
        ..AuditQuery::default()
    };
    let audit = store.audit(&query).await.unwrap();
    let actions: Vec<_> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.name.as_str(), e.actor.as_str()))
        .collect();
    let expected = [
        ("revoke", "tok1", "tok0"),
        ("create", "tok0", "tok1"),
        ("create", "tok1", "system"),
    ];
    assert_eq!(actions, expected, "a second revoke writes nothing");
    assert_eq!(audit[0].after.as_ref().unwrap()["revoked"], json!(true));
    assert_eq!(audit[0].before.as_ref().unwrap()["revoked"], json!(false));
    for entry in &audit {
        let text = format!("{:?}{:?}", entry.before, entry.after);
        assert!(
            !text.contains("secret-hash"),
            "hash leaked into the audit log: {text}"
        );
    }
}
