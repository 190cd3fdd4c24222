//! Protocol upgrades (WebSocket and other `Upgrade:` handshakes): once the upstream
//! answers 101, both connections are handed over and bytes are copied both ways.

use http::{Request, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::pipeline::Alive;
use crate::upstream::InFlight;

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

/// Joins the client's and the upstream's upgraded connections in a background task.
pub fn splice(client: OnUpgrade, upstream: OnUpgrade, in_flight: Option<InFlight>, alive: Alive) {
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
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %err, "upgraded connection ended with an error");
        }
    });
}
