//! HTTP Basic authentication (RFC 7617) against argon2 password hashes.
//!
//! argon2 is slow on purpose (milliseconds and ~19 MiB per check), so a check never runs
//! on a worker thread: it goes to tokio's blocking pool, and at most one per CPU runs at
//! a time so that a flood of bad passwords costs queueing, not memory. An unknown
//! username is checked against a dummy hash, so how long a refusal takes does not tell
//! which usernames exist. Successful checks are cached for a few minutes under the
//! SHA-256 of `username:password` (never the password itself), so a client sending the
//! same credentials on every request pays the argon2 cost once.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use http::header::AUTHORIZATION;
use ring::hmac;
use ring::rand::SystemRandom;
use turnpike_config::model;

use crate::auth::{Attempt, Hide, Identity};
use crate::consumer::{Consumer, Consumers};
use crate::password;
use crate::request::RequestView;

/// How long a verified password is trusted without checking it again.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Entries kept at most; beyond this the oldest go first.
const CACHE_CAPACITY: usize = 10_000;

/// One username's stored credential.
#[derive(Debug)]
struct User {
    consumer: Arc<Consumer>,
    /// PHC string; shared with the blocking task that verifies against it.
    hash: Arc<str>,
    credential: Option<HeaderValue>,
}

/// Every basic-auth username, the verified-password cache and the settings.
#[derive(Debug, Default)]
pub struct BasicAuth {
    users: foldhash::HashMap<Box<str>, User>,
    cache: VerifiedCache,
    hide: bool,
}

impl BasicAuth {
    /// `previous` lends its cache: entries stay only for users whose hash is unchanged,
    /// so a changed password (or a removed user) takes effect at once.
    pub fn build(
        consumers: &[model::Consumer],
        settings: &model::BasicAuth,
        rt: &Consumers,
        previous: Option<&BasicAuth>,
    ) -> Self {
        let mut users = foldhash::HashMap::default();
        for c in consumers {
            let Some(consumer) = rt.get(&c.name) else {
                continue;
            };
            for cred in &c.basic_auth {
                users.entry(cred.username.as_str().into()).or_insert(User {
                    consumer: consumer.clone(),
                    hash: cred.password_hash.as_str().into(),
                    credential: HeaderValue::from_str(&cred.username).ok(),
                });
            }
        }
        let cache = VerifiedCache::new(CACHE_TTL, CACHE_CAPACITY);
        if let Some(prev) = previous {
            cache.carry_from(&prev.cache, |username| {
                match (users.get(username), prev.users.get(username)) {
                    (Some(now), Some(before)) => now.hash == before.hash,
                    _ => false,
                }
            });
        }
        Self {
            users,
            cache,
            hide: settings.hide_credentials,
        }
    }

    /// `Absent` without an `Authorization: Basic` header; `Invalid` for a malformed one,
    /// an unknown user or a wrong password, all alike.
    pub async fn attempt(&self, req: &RequestView<'_>, _consumers: &Consumers) -> Attempt {
        let Some(value) = req.headers.get(AUTHORIZATION) else {
            return Attempt::Absent;
        };
        let Some(encoded) = basic_credentials(value.as_bytes()) else {
            return Attempt::Absent;
        };
        let Some((username, password)) = decode(encoded) else {
            return Attempt::Invalid;
        };
        let user = self.users.get(username.as_str());
        let key = cache_key(&username, &password);
        if let Some(user) = user.filter(|_| self.cache.hit(&key, Instant::now())) {
            return self.valid(user);
        }
        let hash = user.map_or_else(|| Arc::from(password::dummy_hash()), |u| u.hash.clone());
        // Verified even for an unknown user (against the dummy hash), so the refusal
        // takes as long as for a wrong password.
        let Ok(matches) = password::verify_limited(hash, password).await else {
            return Attempt::Busy;
        };
        match user {
            Some(user) if matches => {
                self.cache.insert(key, &username, Instant::now());
                self.valid(user)
            }
            _ => Attempt::Invalid,
        }
    }

    fn valid(&self, user: &User) -> Attempt {
        Attempt::Valid(Identity {
            consumer: user.consumer.clone(),
            credential: user.credential.clone(),
            scopes: None,
            claims: Arc::default(),
            anonymous: false,
            hide: self.hide.then_some(Hide::Header(AUTHORIZATION)),
        })
    }
}

/// Username and password of a `Basic` `Authorization` value; `None` for another scheme
/// or a malformed value.
pub fn parse(value: &[u8]) -> Option<(String, String)> {
    decode(basic_credentials(value)?)
}

/// The credentials part of `Basic <credentials>` (scheme case-insensitive), or `None`
/// for another scheme, which another method may accept.
fn basic_credentials(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &value[value.len()..]),
    };
    scheme.eq_ignore_ascii_case(b"basic").then_some(rest)
}

/// `username:password` from base64; `None` when it is not base64, not UTF-8 (RFC 7617
/// `charset="UTF-8"`), or has no colon.
fn decode(encoded: &[u8]) -> Option<(String, String)> {
    let start = encoded.iter().position(|b| *b != b' ')?;
    let end = encoded.iter().rposition(|b| *b != b' ')? + 1;
    let decoded = String::from_utf8(STANDARD.decode(&encoded[start..end]).ok()?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// HMAC-SHA256 of `username:password` under a key made at start-up: enough to recognise
/// credentials seen before, and, unlike a plain hash, of no use for guessing passwords
/// from a memory dump.
fn cache_key(username: &str, password: &str) -> [u8; 32] {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            // Start-up: no random numbers means no safe cache key; use a fixed one
            // rather than fail every basic-auth request.
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, b"turnpike-basic-cache"))
    });
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(username.as_bytes());
    ctx.update(b":");
    ctx.update(password.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

#[derive(Debug)]
struct Verified {
    username: Box<str>,
    expires: Instant,
}

/// Recently verified credentials, bounded in size and age. The lock is held only for a
/// map operation, never across an await.
#[derive(Debug)]
struct VerifiedCache {
    entries: Mutex<foldhash::HashMap<[u8; 32], Verified>>,
    ttl: Duration,
    capacity: usize,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::new(CACHE_TTL, CACHE_CAPACITY)
    }
}

impl VerifiedCache {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::default(),
            ttl,
            capacity,
        }
    }

    /// Whether `key` was verified and has not expired at `now`.
    fn hit(&self, key: &[u8; 32], now: Instant) -> bool {
        let Ok(entries) = self.entries.lock() else {
            return false;
        };
        entries.get(key).is_some_and(|v| v.expires > now)
    }

    /// Remembers a successful check; when full, expired entries go first, then the one
    /// closest to expiring (the oldest).
    fn insert(&self, key: [u8; 32], username: &str, now: Instant) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, v| v.expires > now);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, v)| v.expires)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        let verified = Verified {
            username: username.into(),
            expires: now + self.ttl,
        };
        entries.insert(key, verified);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the entries of users `keep` approves from `previous`, with their expiry.
    fn carry_from(&self, previous: &VerifiedCache, keep: impl Fn(&str) -> bool) {
        let (Ok(mut entries), Ok(old)) = (self.entries.lock(), previous.entries.lock()) else {
            return;
        };
        for (key, v) in old.iter().filter(|(_, v)| keep(&v.username)) {
            if entries.len() >= self.capacity {
                break;
            }
            let verified = Verified {
                username: v.username.clone(),
                expires: v.expires,
            };
            entries.insert(*key, verified);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method, Uri};

    fn consumer(name: &str, users: &[(&str, &str)]) -> model::Consumer {
        model::Consumer {
            name: name.to_owned(),
            groups: Vec::new(),
            metadata: Default::default(),
            keys: Vec::new(),
            basic_auth: users
                .iter()
                .map(|(u, h)| model::BasicCredential {
                    username: (*u).to_owned(),
                    password_hash: (*h).to_owned(),
                })
                .collect(),
            certificates: Vec::new(),
            certificate_issuer: None,
            plan: None,
            rate_limits: None,
            quota: None,
        }
    }

    fn build(config: &[model::Consumer], previous: Option<&BasicAuth>) -> BasicAuth {
        let settings = model::BasicAuth::default();
        BasicAuth::build(config, &settings, &Consumers::build(config), previous)
    }

    async fn attempt(basic: &BasicAuth, authorization: &str) -> Attempt {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        let uri = Uri::from_static("/");
        let req = RequestView {
            method: &Method::GET,
            uri: &uri,
            headers: &headers,
            client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            client_cert: None,
        };
        basic.attempt(&req, &Consumers::default()).await
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    #[test]
    fn header_parsing() {
        assert_eq!(basic_credentials(b"Basic abc"), Some(&b"abc"[..]));
        assert_eq!(basic_credentials(b"bAsIc abc"), Some(&b"abc"[..]));
        assert_eq!(basic_credentials(b"Basic"), Some(&b""[..]));
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basically abc"), None);
        let enc = STANDARD.encode("al:ice:pw");
        assert_eq!(
            decode(format!("  {enc} ").as_bytes()),
            Some(("al".to_owned(), "ice:pw".to_owned()))
        );
        assert_eq!(decode(STANDARD.encode("nocolon").as_bytes()), None);
        assert_eq!(decode(b"!!!"), None);
        assert_eq!(decode(STANDARD.encode([0xff, b':', b'x']).as_bytes()), None);
        assert_eq!(decode(b""), None);
    }

    #[test]
    fn cache_expires_and_stays_bounded() {
        let cache = VerifiedCache::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        let (a, b, c) = ([1; 32], [2; 32], [3; 32]);
        assert!(!cache.hit(&a, t0));
        cache.insert(a, "a", t0);
        assert!(cache.hit(&a, t0 + Duration::from_secs(9)));
        assert!(!cache.hit(&a, t0 + Duration::from_secs(10)), "expired");
        cache.insert(b, "b", t0 + Duration::from_secs(1));
        // Full: the oldest entry (a) makes room.
        cache.insert(c, "c", t0 + Duration::from_secs(2));
        assert_eq!(cache.len(), 2);
        assert!(!cache.hit(&a, t0 + Duration::from_secs(3)));
        assert!(cache.hit(&b, t0 + Duration::from_secs(3)));
        assert!(cache.hit(&c, t0 + Duration::from_secs(3)));
        // Expired entries go before live ones.
        cache.insert(a, "a", t0 + Duration::from_secs(11));
        assert!(cache.hit(&c, t0 + Duration::from_secs(11)));
        assert!(cache.hit(&a, t0 + Duration::from_secs(11)));
        assert!(VerifiedCache::new(CACHE_TTL, 0).is_empty());
    }

    #[tokio::test]
    async fn passwords_verify_and_successes_are_cached() {
        let hash = password::hash("s3cret").unwrap();
        let config = [consumer("alice", &[("alice", &hash)])];
        let auth = build(&config, None);

        let Attempt::Valid(id) = attempt(&auth, &basic("alice:s3cret")).await else {
            panic!("right password");
        };
        assert_eq!(&*id.consumer.name, "alice");
        assert_eq!(id.credential.unwrap(), "alice");
        assert_eq!(id.hide, Some(Hide::Header(AUTHORIZATION)));
        assert!(
            auth.cache
                .hit(&cache_key("alice", "s3cret"), Instant::now())
        );
        assert_eq!(auth.cache.len(), 1);

        for bad in [
            basic("alice:wrong"),
            basic("bob:s3cret"),
            basic("alice"),
            "Basic %%%".to_owned(),
            "Basic".to_owned(),
        ] {
            assert!(
                matches!(attempt(&auth, &bad).await, Attempt::Invalid),
                "{bad}"
            );
        }
        assert_eq!(auth.cache.len(), 1, "failures are not cached");
        assert!(matches!(attempt(&auth, "Bearer x").await, Attempt::Absent));

        // A cached entry answers without argon2: this password does not match the hash,
        // so only the cache can accept it.
        auth.cache
            .insert(cache_key("alice", "cached-only"), "alice", Instant::now());
        assert!(matches!(
            attempt(&auth, &basic("alice:cached-only")).await,
            Attempt::Valid(_)
        ));
        // The cache never vouches for a username that is not configured.
        auth.cache
            .insert(cache_key("ghost", "x"), "ghost", Instant::now());
        assert!(matches!(
            attempt(&auth, &basic("ghost:x")).await,
            Attempt::Invalid
        ));
    }

    #[test]
    fn a_reload_keeps_cached_checks_only_for_unchanged_hashes() {
        let (h1, h2) = (
            password::dummy_hash(),
            "$argon2id$v=19$m=19456,t=2,p=1$other",
        );
        let before = [consumer("a", &[("alice", h1), ("bob", h1), ("carol", h1)])];
        let old = build(&before, None);
        let now = Instant::now();
        for user in ["alice", "bob", "carol"] {
            old.cache.insert(cache_key(user, "pw"), user, now);
        }
        // bob's password changed, carol was removed.
        let after = [consumer("a", &[("alice", h1), ("bob", h2)])];
        let new = build(&after, Some(&old));
        assert!(new.cache.hit(&cache_key("alice", "pw"), now));
        assert!(!new.cache.hit(&cache_key("bob", "pw"), now));
        assert!(!new.cache.hit(&cache_key("carol", "pw"), now));
        assert_eq!(new.cache.len(), 1);
    }
}
