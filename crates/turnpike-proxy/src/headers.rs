//! Header rules of a proxy: hop-by-hop removal (RFC 9110 §7.6.1), `X-Forwarded-*`,
//! `Forwarded` (RFC 7239), `Via`, and the per-route add/set/remove transforms.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use turnpike_config::model::HeaderTransform;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes the headers that describe one connection, not the message. `keep_upgrade`
/// leaves `Connection: upgrade` and `Upgrade` for WebSocket handshakes; `TE: trailers`
/// survives because gRPC needs it end to end.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of these: one pass over the names instead of a hash
    // lookup per header we might remove.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Every `Connection` line counts, not just the first.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    let te_trailers = headers.get(header::TE).is_some_and(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    });
    headers.remove(header::CONNECTION);
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::TE);
    headers.remove(header::TRANSFER_ENCODING);
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// True when the peer is allowed to tell us who the client is.
pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&peer))
}

/// The client's address: the peer itself, or, behind trusted proxies, the right-most
/// `X-Forwarded-For` entry that is not a trusted proxy.
///
/// Entries are split on raw bytes, so a client-sent entry that is not even ASCII stays an
/// entry of its own and cannot hide the address a trusted proxy appended after it.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let entries: Vec<&[u8]> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    let mut last_trusted = peer;
    for entry in entries.iter().rev() {
        // A trusted proxy wrote this entry, so it should name the client; if it cannot be
        // read the client is unknown. The unspecified address matches no allow rule,
        // where the proxy's own address would match the rules meant for the proxy.
        let Some(ip) = std::str::from_utf8(entry).ok().and_then(parse_hop) else {
            return IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        };
        if !is_trusted(ip, trusted) {
            return ip;
        }
        last_trusted = ip;
    }
    last_trusted
}

/// An `X-Forwarded-For` entry: an address, optionally `[v6]` or with a `:port`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip().to_canonical())
}

/// What the gateway knows about the hop it is adding to the forwarding headers.
#[derive(Debug)]
pub struct Hop<'a> {
    pub peer: IpAddr,
    pub trusted_peer: bool,
    pub proto: &'static str,
    pub host: Option<&'a HeaderValue>,
}

/// Appends this hop to `X-Forwarded-For` and `Forwarded`; untrusted peers' own claims
/// are dropped first so a client cannot forge its address.
pub fn add_forwarded(headers: &mut HeaderMap, hop: &Hop<'_>) {
    let peer = ip_text(hop.peer);
    let mut forwarded = String::with_capacity(64);
    forwarded.push_str("for=");
    match hop.peer {
        IpAddr::V4(_) => forwarded.push_str(&peer),
        IpAddr::V6(_) => {
            forwarded.push_str("\"[");
            forwarded.push_str(&peer);
            forwarded.push_str("]\"");
        }
    }
    forwarded.push_str(";proto=");
    forwarded.push_str(hop.proto);
    // A host with quotes or backslashes cannot be a quoted-string; leave it out.
    if let Some(host) = hop
        .host
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.contains(['"', '\\']))
    {
        forwarded.push_str(";host=\"");
        forwarded.push_str(host);
        forwarded.push('"');
    }
    if hop.trusted_peer {
        append_list(headers, &X_FORWARDED_FOR, peer);
        append_list(headers, &header::FORWARDED, forwarded);
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(hop.proto));
        }
        if let (false, Some(host)) = (headers.contains_key(&X_FORWARDED_HOST), hop.host) {
            headers.insert(&X_FORWARDED_HOST, host.clone());
        }
        return;
    }
    // An untrusted peer's own claims are replaced, not extended. Inserting replaces any
    // value already there, so only a stale X-Forwarded-Host needs an explicit removal.
    set_owned(headers, &X_FORWARDED_FOR, peer);
    set_owned(headers, &header::FORWARDED, forwarded);
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(hop.proto));
    match hop.host {
        Some(host) => headers.insert(&X_FORWARDED_HOST, host.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
    // Other headers upstreams often take as the client's address or URL; one pass over
    // the names, removals only when one is there.
    if headers.keys().any(|n| SPOOFABLE.contains(&n.as_str())) {
        for name in SPOOFABLE {
            headers.remove(*name);
        }
    }
}

/// The address as `Display` writes it. IPv4 is written by hand: the formatting machinery
/// cost more than a thousand instructions per request here, for four small numbers.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

/// Client-settable headers that claim to describe the client; dropped from untrusted peers.
const SPOOFABLE: &[&str] = &[
    "x-real-ip",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-client-ip",
    "true-client-ip",
    "x-original-forwarded-for",
];

fn set_owned(headers: &mut HeaderMap, name: &HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        headers.insert(name.clone(), v);
    }
}

/// Appends `1.1 turnpike` (or `2 turnpike`) to `Via`.
pub fn add_via(headers: &mut HeaderMap, version: http::Version) {
    let entry = match version {
        http::Version::HTTP_2 => "2 turnpike",
        http::Version::HTTP_10 => "1.0 turnpike",
        _ => "1.1 turnpike",
    };
    if headers.contains_key(header::VIA) {
        append_list(headers, &header::VIA, entry.to_owned());
    } else {
        headers.insert(header::VIA, HeaderValue::from_static(entry));
    }
}

/// Appends `value` to a comma-separated header, reusing `value`'s allocation when the
/// header was absent.
fn append_list(headers: &mut HeaderMap, name: &HeaderName, mut value: String) {
    // All earlier lines are kept, joined into one, with this hop last.
    let mut existing = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|e| !e.is_empty())
        .peekable();
    if existing.peek().is_some() {
        let mut joined = existing.collect::<Vec<_>>().join(", ");
        joined.push_str(", ");
        joined.push_str(&value);
        value = joined;
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        headers.insert(name.clone(), v);
    }
}

/// A route's header edits, parsed once per config version.
#[derive(Debug, Clone, Default)]
pub struct Transform {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

/// A header name or value in a transform that HTTP does not allow.
#[derive(Debug, thiserror::Error)]
#[error("invalid header {0:?} in header transform")]
pub struct InvalidHeader(pub String);

/// A configured header name, parsed once per config version.
pub fn header_name(name: &str) -> Result<HeaderName, InvalidHeader> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidHeader(name.to_owned()))
}

/// A configured value of header `name`, parsed once per config version.
pub fn header_value(name: &str, value: &str) -> Result<HeaderValue, InvalidHeader> {
    HeaderValue::from_str(value).map_err(|_| InvalidHeader(name.to_owned()))
}

impl Transform {
    pub fn compile(cfg: &HeaderTransform) -> Result<Self, InvalidHeader> {
        let pair = |(n, v): (&String, &String)| -> Result<_, InvalidHeader> {
            Ok((header_name(n)?, header_value(n, v)?))
        };
        Ok(Self {
            remove: cfg
                .remove
                .iter()
                .map(|n| header_name(n))
                .collect::<Result<_, _>>()?,
            set: cfg.set.iter().map(pair).collect::<Result<_, _>>()?,
            add: cfg.add.iter().map(pair).collect::<Result<_, _>>()?,
        })
    }

    /// Remove, then set (replacing), then add (appending).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(&X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn client_ip_is_the_peer_unless_the_peer_is_trusted() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = xff(&["1.1.1.1"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("1.1.1.1"));
    }

    #[test]
    fn client_ip_skips_trusted_hops_across_header_lines() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = xff(&["6.6.6.6, 198.51.100.7", "10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn client_ip_walk_stops_at_entries_it_cannot_read() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // The client wrote `1.1.1.1, garbage`; the trusted proxy 10.0.0.5 appended
        // `203.0.113.7:5123` for the real client.
        let h = xff(&["1.1.1.1, garbage, 203.0.113.7:5123"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("203.0.113.7"));
        // Where a trusted proxy's entry cannot be read the client is unknown: never the
        // proxy's own address, which allow rules for the proxy network would admit.
        let h = xff(&["1.1.1.1, garbage"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("0.0.0.0"));
        let h = xff(&["[2001:db8::1]:443"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("2001:db8::1"));
    }

    #[test]
    fn non_ascii_entries_cannot_hide_what_a_trusted_proxy_appended() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // nginx's `$proxy_add_x_forwarded_for` turns a client's `\xff` into this line.
        let mut h = HeaderMap::new();
        h.append(
            &X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"\xff, 203.0.113.7").unwrap(),
        );
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("203.0.113.7"));
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for a in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "127.0.0.1",
            "1.22.203.40",
            "::1",
            "2001:db8::7",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(ip_text(ip(a)), ip(a).to_string(), "{a}");
        }
    }

    #[test]
    fn named_connection_headers_on_every_line_are_removed() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("x-one"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-two"));
        h.insert("x-one", HeaderValue::from_static("1"));
        h.insert("x-two", HeaderValue::from_static("2"));
        h.insert("x-end", HeaderValue::from_static("3"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-one").is_none() && h.get("x-two").is_none());
        assert_eq!(h.get("x-end").unwrap(), "3");
    }
}
