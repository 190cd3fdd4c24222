//! Storing a response while it streams to the client: the response body hands every data
//! frame to a [`Tee`], which copies it aside and stores the whole object when the body
//! ends. A body that grows past `max_object`, fails or is abandoned is not stored; either
//! way the requests waiting on this fetch are woken (the [`Leader`] is dropped).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use turnpike_state::objects::Object;

use super::entry::{Head, StoredHead};
use super::lookup::Leader;
use super::{CacheCounters, CacheRt};

/// Where a finished body goes.
#[derive(Debug)]
pub(crate) struct Storing {
    pub(crate) cache: Arc<CacheRt>,
    pub(crate) key: Vec<u8>,
    /// With `Vary`: the primary key and the field names, stored as the marker that leads
    /// to the variants.
    pub(crate) marker: Option<(Vec<u8>, Box<[String]>)>,
    pub(crate) head: StoredHead,
    pub(crate) url: Box<str>,
    pub(crate) tags: Box<[Box<str>]>,
    pub(crate) counters: Arc<CacheCounters>,
    pub(crate) leader: Option<Leader>,
}

impl Storing {
    /// Stores the object (and the variants marker), here and in the shared store; then
    /// lets waiting requests look again.
    pub(crate) fn store(self, body: Bytes) -> Arc<Object<Head>> {
        let store = &self.cache.store;
        let ttl = shared_ttl(&self.head);
        let marker = self.marker.map(|(primary, names)| {
            let marker = Object {
                head: Head::Variants(names),
                body: Bytes::new(),
                url: self.url.clone(),
                tags: self.tags.clone(),
            };
            let obj = store.put(&primary, marker);
            (primary, obj)
        });
        let obj = store.put(
            &self.key,
            Object {
                head: Head::Response(Box::new(self.head)),
                body,
                url: self.url,
                tags: self.tags,
            },
        );
        let mut writes = vec![(self.key, obj.clone())];
        writes.extend(marker);
        share(&self.cache, writes, ttl);
        self.counters.stored.fetch_add(1, Ordering::Relaxed);
        drop(self.leader);
        obj
    }
}

/// How long the shared store keeps an object: its lifetime, the stale windows it allows,
/// and a minute to revalidate it in.
pub(crate) fn shared_ttl(head: &StoredHead) -> Duration {
    let d = &head.directives;
    let stale = d.stale_while_revalidate.unwrap_or_default() + d.stale_if_error.unwrap_or_default();
    (head.lifetime + stale + Duration::from_secs(60)).min(Duration::from_secs(30 * 24 * 3600))
}

/// Writes objects to the shared store in the background (the client never waits for it).
pub(crate) fn share(cache: &CacheRt, writes: Vec<(Vec<u8>, Arc<Object<Head>>)>, ttl: Duration) {
    let (Some(l2), Ok(runtime)) = (cache.l2.clone(), tokio::runtime::Handle::try_current()) else {
        return;
    };
    runtime.spawn(async move {
        for (key, obj) in writes {
            let bytes = super::codec::encode(&obj);
            if let Err(e) = l2.put(&key, &bytes, &obj.tags, ttl).await {
                tracing::debug!(error = %e, "cache: Redis write skipped");
            }
        }
    });
}

/// Collects a body for [`Storing`], up to `max` bytes.
#[derive(Debug)]
pub struct Tee {
    buf: BytesMut,
    max: u64,
    storing: Option<Storing>,
}

impl Tee {
    pub(crate) fn new(storing: Storing, max: u64, size_hint: Option<u64>) -> Self {
        let capacity = size_hint.unwrap_or(0).min(max);
        Self {
            buf: BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0)),
            max,
            storing: Some(storing),
        }
    }

    /// Copies a data frame aside. The copy is deliberate: the frame may share a large
    /// read buffer, which the cache would otherwise keep alive uncounted.
    pub fn data(&mut self, data: &Bytes) {
        if self.storing.is_none() {
            return;
        }
        if self.buf.len() as u64 + data.len() as u64 > self.max {
            // Too large after all (no Content-Length said so): pass through.
            self.storing = None;
            self.buf = BytesMut::new();
            return;
        }
        self.buf.extend_from_slice(data);
    }

    /// The body ended cleanly: store it.
    pub fn end(&mut self) {
        if let Some(storing) = self.storing.take() {
            let buf = std::mem::take(&mut self.buf);
            // A body of unknown length grew by doubling: keep only what it holds.
            let body = if buf.capacity() > buf.len() + buf.len() / 8 + 64 {
                Bytes::copy_from_slice(&buf)
            } else {
                buf.freeze()
            };
            storing.store(body);
        }
    }
}
