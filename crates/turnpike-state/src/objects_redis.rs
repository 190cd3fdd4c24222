//! The response cache's shared store in Redis (L2): every node reads and writes the same
//! objects, and purges reach every node's memory cache (L1) through pub/sub.
//!
//! Keys (under the configured prefix `P`): `P o:<cache key>` holds one encoded object
//! (the caller's bytes, opaque here) with a TTL; `P t:<tag>` is the set of object keys
//! carrying that tag, kept at least as long as its longest-lived member. A purge deletes a
//! tag's objects and the set in one script and publishes the tag on `P purge`, which every
//! node's [`subscribe`] task turns into an L1 purge. Prefix purges find their URL tags by
//! `SCAN` (a purge, not a request, pays for it).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::{Client, Script};
use tokio::runtime::Handle;

use crate::error::StateError;
use crate::limiter::LimiterStats;
use crate::redis_conn::RedisConn;

/// Stores an object and adds it to its tags' sets, each kept as long as its longest member.
const PUT: &str = r"
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
";

/// Deletes every object of each tag and the tag sets; publishes each tag; returns how many
/// objects went.
const PURGE: &str = r"
local n = 0
for i = 1, #KEYS do
  local members = redis.call('SMEMBERS', KEYS[i])
  for _, k in ipairs(members) do n = n + redis.call('DEL', k) end
  redis.call('DEL', KEYS[i])
  redis.call('PUBLISH', ARGV[1], ARGV[i + 1])
end
return n
";

/// The shared object store.
#[derive(Debug, Clone)]
pub struct RedisObjects {
    conn: RedisConn,
    prefix: Arc<str>,
    put: Arc<Script>,
    purge: Arc<Script>,
    pub stats: Arc<LimiterStats>,
}

impl RedisObjects {
    /// Connects to `url` in the background (on `handle`); commands wait at most `timeout`.
    pub fn new(
        url: &str,
        prefix: &str,
        timeout: Duration,
        handle: &Handle,
    ) -> Result<Self, StateError> {
        let stats = Arc::new(LimiterStats::default());
        Ok(Self {
            conn: RedisConn::new(url, timeout, stats.clone(), handle)?,
            prefix: prefix.into(),
            put: Arc::new(Script::new(PUT)),
            purge: Arc::new(Script::new(PURGE)),
            stats,
        })
    }

    pub fn is_up(&self) -> bool {
        self.conn.is_up()
    }

    fn key(&self, kind: &str, id: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + kind.len() + id.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(kind.as_bytes());
        k.extend_from_slice(id);
        k
    }

    /// The channel purges are published on.
    pub fn channel(&self) -> String {
        format!("{}purge", self.prefix)
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StateError> {
        let cmd = redis::cmd("GET").arg(self.key("o:", key)).clone();
        let value: Option<Vec<u8>> = self.conn.query(&cmd).await?;
        Ok(value.map(Bytes::from))
    }

    pub async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        tags: &[Box<str>],
        ttl: Duration,
    ) -> Result<(), StateError> {
        let mut inv = self.put.prepare_invoke();
        inv.key(self.key("o:", key));
        for tag in tags {
            inv.key(self.key("t:", tag.as_bytes()));
        }
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        inv.arg(value).arg(ttl_ms);
        self.conn.invoke::<i64>(&inv).await.map(|_| ())
    }

    /// Deletes the objects of `tags` everywhere and tells every node; returns how many.
    pub async fn purge_tags(&self, tags: &[String]) -> Result<usize, StateError> {
        if tags.is_empty() {
            return Ok(0);
        }
        let mut inv = self.purge.prepare_invoke();
        inv.arg(self.channel());
        for tag in tags {
            inv.key(self.key("t:", tag.as_bytes()));
            inv.arg(tag.as_str());
        }
        let n: i64 = self.conn.invoke(&inv).await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The tags (of the `\0url <url>` form the cache uses) of URLs starting with `prefix`.
    pub async fn url_tags_with_prefix(
        &self,
        url_tag_prefix: &str,
    ) -> Result<Vec<String>, StateError> {
        let set_prefix = self.key("t:", b"");
        let pattern = [
            self.key("t:", glob_escape(url_tag_prefix).as_bytes()),
            b"*".to_vec(),
        ]
        .concat();
        let mut cursor: u64 = 0;
        let mut tags = Vec::new();
        loop {
            let cmd = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .clone();
            let (next, keys): (u64, Vec<Vec<u8>>) = self.conn.query(&cmd).await?;
            for k in keys {
                if let Some(tag) = k.strip_prefix(set_prefix.as_slice()) {
                    tags.push(String::from_utf8_lossy(tag).into_owned());
                }
            }
            if next == 0 {
                return Ok(tags);
            }
            cursor = next;
        }
    }
}

/// Escapes Redis glob metacharacters so a URL prefix matches literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Follows the purge channel of `url` on `handle` for as long as `alive` says so, calling
/// `on_tag` for every purged tag; reconnects after errors.
pub fn subscribe(
    url: &str,
    channel: String,
    handle: &Handle,
    alive: impl Fn() -> bool + Send + 'static,
    on_tag: impl Fn(&str) + Send + 'static,
) -> Result<(), StateError> {
    let client = Client::open(url).map_err(|e| StateError::InvalidUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    handle.spawn(async move {
        use futures_util::StreamExt;
        let mut pause = Duration::from_millis(100);
        while alive() {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(&channel).await.is_ok() {
                        pause = Duration::from_millis(100);
                        let mut messages = pubsub.into_on_message();
                        while let Some(msg) = messages.next().await {
                            if !alive() {
                                return;
                            }
                            on_tag(&String::from_utf8_lossy(msg.get_payload_bytes()));
                        }
                    }
                    tracing::debug!("cache purge subscription ended; reconnecting");
                }
                Err(e) => tracing::debug!(error = %e, "cannot subscribe to cache purges"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_metacharacters_are_escaped() {
        assert_eq!(
            glob_escape("https://a/b?x=[1]*"),
            "https://a/b\\?x=\\[1\\]\\*"
        );
    }
}
