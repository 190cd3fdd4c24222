//! Protocol upgrades (WebSocket and other `Upgrade:` handshakes): once the upstream
//! answers 101, both connections are handed over and bytes are copied both ways.

use http::{Request, header};
use hyper::upgrade::OnUpgrade;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::pipeline::Alive;
use crate::upstream::{InFlight, now_ms};

/// An HTTP/1.1 request asking to switch protocols.
/// Only WebSocket is tunnelled: after a 101 the client talks to the upstream directly, and
/// an upgrade such as `h2c` would let it send requests that no route or policy ever sees.
/// Other `Upgrade` headers are dropped as hop-by-hop and the request goes through normally.
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    let websocket = req.headers().get_all(header::UPGRADE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
    });
    websocket
        && req.headers().get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Joins the client's and the upstream's upgraded connections in a background task. The
/// tunnel closes when either side closes, or when no byte has moved either way for `idle`
/// (the upstream's idle timeout, as nginx's `proxy_read_timeout` does for WebSockets).
pub fn splice(
    client: OnUpgrade,
    upstream: OnUpgrade,
    idle: Duration,
    in_flight: Option<InFlight>,
    alive: Alive,
) {
    tokio::spawn(async move {
        // Counted for least-connections and kept in the drain while the tunnel lasts.
        let _held = (in_flight, alive);
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::debug!(error = %err, "upgrade failed");
                return;
            }
        };
        let (client_read, client_write) = tokio::io::split(TokioIo::new(client));
        let (upstream_read, upstream_write) = tokio::io::split(TokioIo::new(upstream));
        let last = AtomicU64::new(now_ms());
        let both = async {
            tokio::join!(
                pump(client_read, upstream_write, &last),
                pump(upstream_read, client_write, &last)
            )
        };
        tokio::select! {
            _ = both => {}
            () = idle_for(&last, idle) => tracing::debug!("upgraded connection closed after being idle"),
        }
    });
}

/// Copies one direction until EOF (then half-closes the other side) or an error.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, last: &AtomicU64) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                last.store(now_ms(), Ordering::Relaxed);
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Resolves once nothing has moved for `idle`.
async fn idle_for(last: &AtomicU64, idle: Duration) {
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    loop {
        let quiet_until = last.load(Ordering::Relaxed).saturating_add(idle_ms);
        let now = now_ms();
        if now >= quiet_until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(quiet_until - now)).await;
    }
}
