//! Body types on both sides of the proxy: streamed, never collected.
//!
//! [`RequestBody`] enforces the body-size limit and an idle timeout while streaming to the
//! upstream; [`ResponseBody`] is either a small gateway-made body or the upstream's stream
//! with an idle timeout. Both are concrete types, so nothing on the hot path is boxed; the
//! idle timer is only allocated once a body actually stalls.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::upstream::Held;

/// Why a body stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the configured limit")]
    TooLarge,
    #[error("no body data for longer than the idle timeout")]
    Idle,
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

/// Lazily armed timer that fires when no frame arrived for `limit`.
#[derive(Debug)]
struct IdleTimer {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    fn new(limit: Duration) -> Self {
        Self { limit, sleep: None }
    }

    fn touch(&mut self) {
        if let Some(sleep) = self.sleep.as_mut() {
            sleep.as_mut().reset(Instant::now() + self.limit);
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        sleep.as_mut().poll(cx).is_ready()
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
    }
}

impl RequestBody {
    pub fn new(inner: Incoming, max_bytes: u64, idle: Duration) -> Self {
        Self {
            inner: Some(inner),
            remaining: max_bytes,
            timer: IdleTimer::new(idle),
        }
    }

    /// A body with nothing in it, for retried requests that had none.
    pub fn empty() -> Self {
        Self {
            inner: None,
            remaining: 0,
            timer: IdleTimer::new(Duration::ZERO),
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
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(poll_with_idle(inner, this.timer, cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            let len = data.map_or(0, |d| d.len() as u64);
            if len > *this.remaining {
                *this.remaining = 0;
                return Poll::Ready(Some(Err(BodyError::TooLarge)));
            }
            *this.remaining -= len;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

pin_project! {
    /// What the client receives: the upstream's stream or a small gateway-made body.
    #[project = ResponseBodyProj]
    #[derive(Debug)]
    pub enum ResponseBody {
        Full { data: Option<Bytes> },
        Upstream { #[pin] inner: Incoming, timer: IdleTimer, held: Held },
    }
}

impl ResponseBody {
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        Self::Full {
            data: (!data.is_empty()).then_some(data),
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
            ResponseBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBodyProj::Upstream {
                mut inner,
                timer,
                held,
            } => {
                let frame = ready!(poll_with_idle(inner.as_mut(), timer, cx));
                // hyper stops polling once a body says it has ended, so let go as soon as
                // the last frame is out rather than waiting for `None`.
                if frame.is_none() || inner.is_end_stream() {
                    held.finish();
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full { data } => data.is_none(),
            Self::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Self::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

/// True when `err` (or anything it wraps) is our body-limit error.
pub fn is_body_too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if matches!(e.downcast_ref::<BodyError>(), Some(BodyError::TooLarge)) {
            return true;
        }
        cur = e.source();
    }
    false
}
