//! Body types on both sides of the proxy: streamed, never collected.
//!
//! [`RequestBody`] enforces the body-size limit and an idle timeout while streaming to the
//! upstream (and, optionally, a minimum rate against slow-POST clients); [`ResponseBody`]
//! is either a small gateway-made body or the upstream's stream
//! with an idle timeout. Both are concrete types, so nothing on the hot path is boxed; the
//! idle timer is only allocated once a body actually stalls.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

pub use crate::cache::tee::Tee;
pub use crate::observe::Finish;
use crate::protection::LoadGuard;
use crate::upstream::Held;

/// Why a body stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the configured limit")]
    TooLarge,
    #[error("no body data for longer than the idle timeout")]
    Idle,
    #[error("the request body arrives slower than the configured minimum rate")]
    TooSlow,
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

/// Lazily armed timer that fires when no frame arrived for `limit` while this side was
/// waiting for one. It starts when a wait starts, so time the other side spent not asking
/// (backpressure) never counts against this one.
#[derive(Debug)]
struct IdleTimer {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl IdleTimer {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            sleep: None,
            waiting: false,
        }
    }

    fn touch(&mut self) {
        self.waiting = false;
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        let sleep = match self.sleep.as_mut() {
            Some(sleep) if !self.waiting => {
                sleep.as_mut().reset(Instant::now() + limit);
                sleep
            }
            Some(sleep) => sleep,
            None => self.sleep.insert(Box::pin(tokio::time::sleep(limit))),
        };
        self.waiting = true;
        sleep.as_mut().poll(cx).is_ready()
    }
}

/// The slowest a request body may arrive once `grace` of waiting has passed, measured
/// over the time spent waiting for the client only.
#[derive(Debug, Clone, Copy)]
pub struct MinRate {
    pub bytes_per_second: u64,
    pub grace: Duration,
}

/// Bytes received and time spent waiting for them.
#[derive(Debug)]
struct RateCheck {
    min: MinRate,
    bytes: u64,
    waited: Duration,
    waiting_since: Option<std::time::Instant>,
}

impl RateCheck {
    /// Accounts one poll; `Err` when the client has fallen below the rate.
    fn observe<T>(&mut self, polled: &Poll<Option<T>>, len: u64) -> Result<(), BodyError> {
        if polled.is_pending() {
            self.waiting_since
                .get_or_insert_with(std::time::Instant::now);
            return Ok(());
        }
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
        self.bytes += len;
        let expected = self.waited.as_secs_f64() * self.min.bytes_per_second as f64;
        // Judged on data only: the end of a body that did arrive is never cut.
        if len > 0 && self.waited > self.min.grace && (self.bytes as f64) < expected {
            return Err(BodyError::TooSlow);
        }
        Ok(())
    }
}

fn poll_with_idle(
    inner: Pin<&mut Incoming>,
    timer: &mut IdleTimer,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
    match inner.poll_frame(cx) {
        Poll::Ready(frame) => {
            timer.touch();
            Poll::Ready(frame.map(|f| f.map_err(BodyError::from)))
        }
        Poll::Pending if timer.expired(cx) => Poll::Ready(Some(Err(BodyError::Idle))),
        Poll::Pending => Poll::Pending,
    }
}

pin_project! {
    /// A client's request body on its way upstream, cut off past `max_bytes`.
    #[derive(Debug)]
    pub struct RequestBody {
        #[pin]
        inner: Option<Incoming>,
        remaining: u64,
        timer: IdleTimer,
        rate: Option<RateCheck>,
        // Bytes received so far, for metrics and the access log.
        meter: Option<Arc<AtomicU64>>,
        // A body already read in full (request validation), sent as one frame.
        full: Option<Bytes>,
    }
}

impl RequestBody {
    pub fn new(inner: Incoming, max_bytes: u64, idle: Duration) -> Self {
        Self {
            inner: Some(inner),
            remaining: max_bytes,
            timer: IdleTimer::new(idle),
            rate: None,
            meter: None,
            full: None,
        }
    }

    /// Counts the bytes that stream through into a cell the caller keeps; a request
    /// without a body gets no cell (and allocates nothing).
    pub fn metered(mut self, cell: &mut Option<Arc<AtomicU64>>) -> Self {
        if !self.is_end_stream() {
            let meter = cell.get_or_insert_with(Default::default);
            self.meter = Some(meter.clone());
        }
        self
    }

    /// The client's body with the server's limits: size, read timeout and minimum rate.
    pub fn from_client(inner: Incoming, server: &crate::snapshot::ServerSettings) -> Self {
        let mut body = Self::new(inner, server.max_body_bytes, server.body_read_timeout);
        if let Some(min) = server.min_body_rate.filter(|_| !body.is_end_stream()) {
            body.rate = Some(RateCheck {
                min,
                bytes: 0,
                waited: Duration::ZERO,
                waiting_since: None,
            });
        }
        body
    }

    /// A body read in full beforehand (within the server's limits), sent as it is.
    pub fn buffered(data: Bytes) -> Self {
        let mut body = Self::empty();
        body.full = Some(data).filter(|d| !d.is_empty());
        body
    }

    /// A body with nothing in it, for retried requests that had none.
    pub fn empty() -> Self {
        Self {
            inner: None,
            remaining: 0,
            timer: IdleTimer::new(Duration::ZERO),
            rate: None,
            meter: None,
            full: None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        if let Some(data) = this.full.take() {
            if let Some(meter) = this.meter {
                meter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(None);
        };
        let polled = poll_with_idle(inner, this.timer, cx);
        if let Some(rate) = this.rate.as_mut() {
            let len = data_len(&polled);
            if let Err(e) = rate.observe(&polled, len) {
                return Poll::Ready(Some(Err(e)));
            }
        }
        let frame = ready!(polled);
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            let len = data.map_or(0, |d| d.len() as u64);
            if len > *this.remaining {
                *this.remaining = 0;
                return Poll::Ready(Some(Err(BodyError::TooLarge)));
            }
            *this.remaining -= len;
            if let Some(meter) = this.meter {
                meter.fetch_add(len, Ordering::Relaxed);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.full.is_none() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        if let Some(data) = &self.full {
            return SizeHint::with_exact(data.len() as u64);
        }
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// Bytes of data in a polled frame (0 for trailers, errors and pending).
fn data_len(polled: &Poll<Option<Result<Frame<Bytes>, BodyError>>>) -> u64 {
    match polled {
        Poll::Ready(Some(Ok(f))) => f.data_ref().map_or(0, |d| d.len() as u64),
        _ => 0,
    }
}

pin_project! {
    /// What the client receives: the upstream's stream or a small gateway-made body.
    #[project = ResponseBodyProj]
    #[derive(Debug)]
    pub enum ResponseBody {
        Full { data: Option<Bytes>, finish: Option<Finish> },
        Upstream {
            #[pin] inner: Incoming,
            timer: IdleTimer,
            held: Held,
            load: Option<LoadGuard>,
            finish: Option<Finish>,
            // Stores the body in the cache as it streams (a cacheable miss).
            tee: Option<Box<Tee>>,
        },
    }
}

impl ResponseBody {
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        Self::Full {
            data: (!data.is_empty()).then_some(data),
            finish: None,
        }
    }

    /// The upstream's body; what it holds is let go once the body has ended.
    pub fn upstream(inner: Incoming, idle: Duration, mut held: Held) -> Self {
        if inner.is_end_stream() {
            held.finish();
        }
        Self::Upstream {
            inner,
            timer: IdleTimer::new(idle),
            held,
            load: None,
            finish: None,
            tee: None,
        }
    }

    /// Stores this upstream body in the cache once it has been read to its end.
    pub fn tee_into(&mut self, mut t: Box<Tee>) {
        if let Self::Upstream { inner, tee, .. } = self {
            if inner.is_end_stream() {
                // Nothing will be polled: an empty body is complete now.
                t.end();
            } else {
                *tee = Some(t);
            }
        }
    }

    /// Reports bytes and total time once this body has ended or been dropped.
    pub fn finish_with(&mut self, f: Finish) {
        match self {
            Self::Full { data, finish } => {
                let mut f = f;
                f.add(data.as_ref().map_or(0, |d| d.len() as u64));
                // Nothing streams: the size is known now and the request is done.
                if data.is_some() {
                    *finish = Some(f);
                }
            }
            Self::Upstream { finish, .. } => *finish = Some(f),
        }
    }

    /// Keeps the request counted as in flight until this body has been sent; a
    /// gateway-made body is tiny, so its request stops counting now.
    pub fn hold_load(&mut self, guard: LoadGuard) {
        if let Self::Upstream { inner, load, .. } = self {
            if !inner.is_end_stream() {
                *load = Some(guard);
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            ResponseBodyProj::Full { data, finish } => {
                let frame = data.take().map(|d| Ok(Frame::data(d)));
                *finish = None;
                Poll::Ready(frame)
            }
            ResponseBodyProj::Upstream {
                mut inner,
                timer,
                held,
                load,
                finish,
                tee,
            } => {
                let frame = ready!(poll_with_idle(inner.as_mut(), timer, cx));
                match frame.as_ref() {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            if let Some(f) = finish.as_mut() {
                                f.add(data.len() as u64);
                            }
                            if let Some(t) = tee.as_mut() {
                                t.data(data);
                            }
                        }
                    }
                    // A failed body is not a response to keep.
                    Some(Err(_)) => *tee = None,
                    None => {}
                }
                // hyper stops polling once a body says it has ended, so let go as soon as
                // the last frame is out rather than waiting for `None`.
                if frame.is_none() || inner.is_end_stream() {
                    if let Some(mut t) = tee.take() {
                        t.end();
                    }
                    held.finish();
                    *load = None;
                    *finish = None;
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full { data, .. } => data.is_none(),
            Self::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Self::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

/// True when `err` (or anything it wraps) is our body-limit error.
pub fn is_body_too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    body_error(err).is_some_and(|e| matches!(e, BodyError::TooLarge))
}

/// True when `err` (or anything it wraps) says the client sent its body too slowly.
pub fn is_body_too_slow(err: &(dyn std::error::Error + 'static)) -> bool {
    body_error(err).is_some_and(|e| matches!(e, BodyError::Idle | BodyError::TooSlow))
}

fn body_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(b) = e.downcast_ref::<BodyError>() {
            return Some(b);
        }
        cur = e.source();
    }
    None
}
