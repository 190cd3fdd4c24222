//! RFC 9111 behaviours: freshness, what is never stored, revalidation, `Vary`, request
//! directives, `Authorization`, invalidation by unsafe methods, HEAD, configured
//! fallbacks and statuses, `Surrogate-Control`, and size bounds.

use http::Method;
use turnpike_policy::cache::freshness::format_http_date;
use turnpike_testkit::{Reply, TestGateway};

use crate::support::{WithBody, WithStatus, cached, config, get, numbered, origin, send, x_cache};

#[tokio::test]
async fn fresh_responses_are_served_from_the_cache_with_age_and_cache_status() {
    let (gw, up) = cached("{}", &[("cache-control", "max-age=60")]).await;
    let first = get(&gw, "/items", &[]).await;
    assert_eq!((first.status.as_u16(), first.text().as_str()), (200, "n=1"));
    assert_eq!(x_cache(&first), "MISS");
    let status = first.header("cache-status").unwrap();
    assert!(
        status.contains("fwd=miss") && status.contains("stored"),
        "{status}"
    );
    let second = get(&gw, "/items", &[]).await;
    assert_eq!((second.text().as_str(), x_cache(&second)), ("n=1", "HIT"));
    assert_eq!(second.header("age"), Some("0"));
    let status = second.header("cache-status").unwrap();
    assert_eq!(status, "Turnpike; hit");
    assert_eq!(up.hits(), 1);
    // Another URL is another entry.
    assert_eq!(get(&gw, "/other", &[]).await.text(), "n=2");
}

/// An origin whose caching headers depend on the path.
async fn by_path() -> (TestGateway, turnpike_testkit::MockUpstream) {
    let (up, _) = origin(|n, seen| {
        let headers: &[(&str, &str)] = match seen.uri.path() {
            "/no-store" => &[("cache-control", "max-age=60, no-store")],
            "/private" => &[("cache-control", "max-age=60, private")],
            "/cookie" => &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
            "/silent" => &[],
            "/vary-star" => &[("cache-control", "max-age=60"), ("vary", "*")],
            "/s-maxage" => &[("cache-control", "max-age=0, s-maxage=60")],
            "/expires" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                let date = format_http_date(now);
                let expires = format_http_date(now + 600);
                return numbered(n, &[("date", &date), ("expires", &expires)]);
            }
            "/surrogate" => &[
                ("cache-control", "max-age=0"),
                ("surrogate-control", "max-age=60"),
                ("surrogate-key", "a b"),
            ],
            "/missing" => return numbered(n, &[("cache-control", "max-age=60")]).status_code(404),
            _ => &[("cache-control", "max-age=60")],
        };
        numbered(n, headers)
    })
    .await;
    let gw = TestGateway::start(&config("", "{}", &up.url())).await;
    (gw, up)
}

#[tokio::test]
async fn what_a_shared_cache_must_not_store_is_fetched_every_time() {
    let (gw, _up) = by_path().await;
    for path in ["/no-store", "/private", "/cookie", "/silent", "/vary-star"] {
        let a = get(&gw, path, &[]).await;
        let b = get(&gw, path, &[]).await;
        assert_ne!(a.text(), b.text(), "{path} was served from the cache");
        assert_eq!(x_cache(&b), "MISS", "{path}");
    }
    let detail = get(&gw, "/private", &[]).await;
    assert!(
        detail
            .header("cache-status")
            .unwrap()
            .contains("detail=private")
    );
}

#[tokio::test]
async fn s_maxage_expires_and_surrogate_control_give_lifetimes() {
    let (gw, _up) = by_path().await;
    for path in ["/s-maxage", "/expires", "/surrogate", "/missing"] {
        let a = get(&gw, path, &[]).await;
        let b = get(&gw, path, &[]).await;
        assert_eq!(a.text(), b.text(), "{path} was not cached");
        assert_eq!(x_cache(&b), "HIT", "{path}");
    }
    // Surrogate-Control is for this cache only; Cache-Control goes on to the CDN/client;
    // Surrogate-Key is removed by default.
    let r = get(&gw, "/surrogate", &[]).await;
    assert!(r.header("surrogate-control").is_none() && r.header("surrogate-key").is_none());
    assert_eq!(r.header("cache-control"), Some("max-age=0"));
}

#[tokio::test]
async fn stale_responses_are_revalidated_and_refreshed_by_a_304() {
    let (up, _) = origin(|n, seen| {
        let validators = [("etag", "\"v1\""), ("cache-control", "no-cache")];
        if seen
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            return numbered(
                n,
                &[
                    ("etag", "\"v1\""),
                    ("x-refreshed", "yes"),
                    ("cache-control", "no-cache"),
                ],
            )
            .status_code(304);
        }
        numbered(n, &validators)
    })
    .await;
    let gw = TestGateway::start(&config("", "{}", &up.url())).await;
    assert_eq!(get(&gw, "/doc", &[]).await.text(), "n=1");
    let again = get(&gw, "/doc", &[]).await;
    assert_eq!((again.status.as_u16(), again.text().as_str()), (200, "n=1"));
    assert_eq!(
        again.header("x-refreshed"),
        Some("yes"),
        "headers updated from the 304"
    );
    assert!(
        again
            .header("cache-status")
            .unwrap()
            .contains("fwd=stale; fwd-status=304")
    );
    assert_eq!(up.hits(), 2);
    // The client's own conditional request is answered from the cache.
    let conditional = get(&gw, "/doc", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(conditional.status.as_u16(), 304);
    assert!(conditional.body.is_empty());
}

#[tokio::test]
async fn a_fresh_hit_answers_conditional_requests_with_304() {
    let (gw, up) = cached(
        "{}",
        &[
            ("cache-control", "max-age=60"),
            ("etag", "W/\"e1\""),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ],
    )
    .await;
    get(&gw, "/e", &[]).await;
    assert_eq!(
        get(&gw, "/e", &[("if-none-match", "\"x\", \"e1\"")])
            .await
            .status
            .as_u16(),
        304
    );
    assert_eq!(
        get(&gw, "/e", &[("if-none-match", "\"x\"")])
            .await
            .status
            .as_u16(),
        200
    );
    let since = [("if-modified-since", "Sun, 06 Nov 1994 09:00:00 GMT")];
    assert_eq!(get(&gw, "/e", &since).await.status.as_u16(), 304);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn responses_vary_by_the_request_fields_they_name() {
    let (gw, up) = cached(
        "{}",
        &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
    )
    .await;
    let en = get(&gw, "/v", &[("accept-language", "en")]).await.text();
    let fr = get(&gw, "/v", &[("accept-language", "fr")]).await.text();
    assert_ne!(en, fr);
    assert_eq!(
        get(&gw, "/v", &[("accept-language", "en")]).await.text(),
        en
    );
    assert_eq!(
        get(&gw, "/v", &[("accept-language", "fr")]).await.text(),
        fr
    );
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn request_directives_tighten_and_only_if_cached_never_goes_upstream() {
    let (gw, up) = cached("{}", &[("cache-control", "max-age=60")]).await;
    let miss = get(&gw, "/r", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(miss.status.as_u16(), 504);
    assert_eq!(miss.json()["error"]["code"], "not_cached");
    assert_eq!(up.hits(), 0);
    get(&gw, "/r", &[]).await;
    let hit = get(&gw, "/r", &[("cache-control", "only-if-cached")]).await;
    assert_eq!((hit.status.as_u16(), x_cache(&hit)), (200, "HIT"));
    // `no-cache` from the client goes to the upstream (`Pragma: no-cache` too).
    get(&gw, "/r", &[("cache-control", "no-cache")]).await;
    get(&gw, "/r", &[("pragma", "no-cache")]).await;
    assert_eq!(up.hits(), 3);
    // A response older than the client accepts is fetched again.
    let (gw, up) = cached("{}", &[("cache-control", "max-age=600"), ("age", "100")]).await;
    get(&gw, "/r", &[]).await;
    assert_eq!(
        x_cache(&get(&gw, "/r", &[("cache-control", "max-age=200")]).await),
        "HIT"
    );
    get(&gw, "/r", &[("cache-control", "max-age=50")]).await;
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn authorized_requests_are_stored_only_when_the_response_allows_it() {
    let (gw, up) = cached("{}", &[("cache-control", "max-age=60")]).await;
    let auth = [("authorization", "Bearer t")];
    get(&gw, "/a", &auth).await;
    assert_eq!(x_cache(&get(&gw, "/a", &auth).await), "MISS");
    assert_eq!(up.hits(), 2);
    let (gw, up) = cached("{}", &[("cache-control", "max-age=60, public")]).await;
    get(&gw, "/a", &auth).await;
    assert_eq!(x_cache(&get(&gw, "/a", &auth).await), "HIT");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_url_and_its_location() {
    let (up, _) = origin(|n, seen| {
        if seen.method == Method::POST {
            return numbered(n, &[("location", "/items/7")]).status_code(201);
        }
        numbered(n, &[("cache-control", "max-age=60")])
    })
    .await;
    let gw = TestGateway::start(&config("", "{}", &up.url())).await;
    let list = get(&gw, "/items", &[]).await.text();
    let item = get(&gw, "/items/7", &[]).await.text();
    assert_eq!(get(&gw, "/items", &[]).await.text(), list);
    assert_eq!(
        send(&gw, Method::POST, "/items", &[]).await.status.as_u16(),
        201
    );
    assert_ne!(
        get(&gw, "/items", &[]).await.text(),
        list,
        "the URL was invalidated"
    );
    assert_ne!(
        get(&gw, "/items/7", &[]).await.text(),
        item,
        "Location was invalidated"
    );
}

#[tokio::test]
async fn head_is_served_from_a_stored_get() {
    let (gw, up) = cached("{}", &[("cache-control", "max-age=60")]).await;
    let head_miss = send(&gw, Method::HEAD, "/h", &[]).await;
    assert_eq!(x_cache(&head_miss), "MISS");
    get(&gw, "/h", &[]).await;
    let head = send(&gw, Method::HEAD, "/h", &[]).await;
    assert_eq!((head.status.as_u16(), x_cache(&head)), (200, "HIT"));
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("3"));
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn default_ttl_heuristics_and_statuses_apply_only_when_configured() {
    let silent: &[(&str, &str)] = &[];
    let (gw, up) = cached("{}", silent).await;
    get(&gw, "/d", &[]).await;
    get(&gw, "/d", &[]).await;
    assert_eq!(up.hits(), 2, "no freshness, no default: not stored");
    let (gw, up) = cached("{default_ttl: 30s}", silent).await;
    get(&gw, "/d", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/d", &[]).await), "HIT");
    assert_eq!(up.hits(), 1);
    let old = &[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")];
    let (gw, up) = cached("{heuristic_percent: 10}", old).await;
    get(&gw, "/d", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/d", &[]).await), "HIT");
    assert_eq!(up.hits(), 1);
    let (up, _) =
        origin(|n, _| numbered(n, &[("cache-control", "max-age=60")]).status_code(404)).await;
    let gw = TestGateway::start(&config("", "{statuses: [200]}", &up.url())).await;
    get(&gw, "/gone", &[]).await;
    assert_eq!(x_cache(&get(&gw, "/gone", &[]).await), "MISS");
}

#[tokio::test]
async fn large_responses_pass_through_and_memory_stays_bounded() {
    let (up, _) = origin(|n, seen| {
        let size = if seen.uri.path() == "/big" {
            4000
        } else {
            1000
        };
        Reply::ok(format!("{n:0>size$}")).header("cache-control", "max-age=60")
    })
    .await;
    let store = "  memory: 64KiB\n  max_object: 2KiB\n";
    let gw = TestGateway::start(&config(store, "{}", &up.url())).await;
    get(&gw, "/big", &[]).await;
    let big = get(&gw, "/big", &[]).await;
    assert_eq!(x_cache(&big), "MISS");
    assert!(
        big.header("cache-status")
            .unwrap()
            .contains("detail=too-large")
    );
    for i in 0..300 {
        get(&gw, &format!("/k{i}"), &[]).await;
    }
    let (bytes, objects) = gw.gateway.shared().snapshot().cache.usage();
    assert!(bytes <= 64 * 1024, "{bytes} bytes held");
    assert!(objects > 10, "it still holds a useful number ({objects})");
}

#[tokio::test]
async fn posts_are_cached_only_when_configured_and_keyed_by_their_body() {
    let (up, _) = origin(|n, seen| {
        let body = String::from_utf8_lossy(&seen.body).into_owned();
        numbered(n, &[("cache-control", "max-age=60")]).body_text(&format!("n={n} {body}"))
    })
    .await;
    let gw = TestGateway::start(&config("", "{methods: [GET, POST]}", &up.url())).await;
    let post = |body: &'static str| {
        let gw = &gw;
        async move {
            gw.client
                .request(Method::POST, &gw.url("/search"), &[], body)
                .await
        }
    };
    let a = post("{\"q\":\"a\"}").await;
    assert_eq!(
        (a.text().as_str(), x_cache(&a)),
        ("n=1 {\"q\":\"a\"}", "MISS")
    );
    let again = post("{\"q\":\"a\"}").await;
    assert_eq!(
        (again.text().as_str(), x_cache(&again)),
        ("n=1 {\"q\":\"a\"}", "HIT")
    );
    assert_eq!(post("{\"q\":\"b\"}").await.text(), "n=2 {\"q\":\"b\"}");
    // A cached POST does not invalidate, and GET has entries of its own.
    assert_eq!(get(&gw, "/search", &[]).await.text(), "n=3 ");
    assert_eq!(x_cache(&post("{\"q\":\"a\"}").await), "HIT");
    // HEAD is not in this route's methods: it goes upstream.
    assert_eq!(
        x_cache(&send(&gw, Method::HEAD, "/search", &[]).await),
        "BYPASS"
    );
    assert_eq!(up.hits(), 4);
}
