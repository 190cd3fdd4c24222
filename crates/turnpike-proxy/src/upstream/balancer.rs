//! Load-balancing algorithms. Each pick skips targets that are unavailable (health) or
//! already tried by this request (retries go elsewhere when they can).

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderMap;
use turnpike_config::model::{self, HashOn};

use super::{Target, TargetState, now_ms};

/// Longest smooth-WRR sequence we precompute; larger weight sums are scaled down.
const MAX_SEQUENCE: u64 = 4096;
/// Ring points per unit of weight in the consistent-hash ring (ketama uses 160 per server).
const POINTS_PER_WEIGHT: u64 = 40;
const MAX_RING_POINTS: u64 = 160 * 1024;

/// Request facts a balancer may use.
#[derive(Debug)]
pub struct PickCtx<'a> {
    pub headers: &'a HeaderMap,
    pub client_ip: IpAddr,
    pub path: &'a str,
}

#[derive(Debug)]
enum Kind {
    RoundRobin {
        seq: Vec<u16>,
        next: AtomicUsize,
    },
    LeastConnections,
    ConsistentHash {
        ring: Vec<(u64, u16)>,
        on: Option<HashOn>,
    },
    LeastLatency,
    Random {
        cumulative: Vec<u64>,
    },
}

#[derive(Debug)]
pub struct Balancer {
    kind: Kind,
}

impl Balancer {
    pub fn new(kind: model::Balancer, hash_on: Option<HashOn>, targets: &[Target]) -> Self {
        let weights: Vec<u64> = targets.iter().map(|t| u64::from(t.weight)).collect();
        let kind = match kind {
            model::Balancer::RoundRobin => Kind::RoundRobin {
                seq: smooth_wrr(&weights),
                next: AtomicUsize::new(0),
            },
            model::Balancer::LeastConnections => Kind::LeastConnections,
            model::Balancer::ConsistentHash => Kind::ConsistentHash {
                ring: ring(targets),
                on: hash_on,
            },
            model::Balancer::LeastLatency => Kind::LeastLatency,
            model::Balancer::Random => Kind::Random {
                cumulative: weights
                    .iter()
                    .scan(0, |acc, w| Some(*acc + w).inspect(|s| *acc = *s))
                    .collect(),
            },
        };
        Self { kind }
    }

    /// Index of the target for this attempt, or `None` when no eligible target is left.
    /// Whether picks read in-flight counts; other balancers skip counting them, which
    /// saves two contended atomic writes per request.
    pub fn uses_in_flight(&self) -> bool {
        matches!(self.kind, Kind::LeastConnections | Kind::LeastLatency)
    }

    /// Whether picks read the latency estimate.
    pub fn uses_latency(&self) -> bool {
        matches!(self.kind, Kind::LeastLatency)
    }

    /// The request's hash key, computed before the request is taken apart; `None` unless
    /// this is a consistent-hash balancer and the key is present.
    pub fn key_hash(&self, ctx: &PickCtx<'_>) -> Option<u64> {
        match &self.kind {
            Kind::ConsistentHash { on: Some(on), .. } => hash_key(on, ctx),
            _ => None,
        }
    }

    pub fn pick(&self, targets: &[Target], hash: Option<u64>, tried: &[usize]) -> Option<usize> {
        let ok = |i: usize| !tried.contains(&i) && targets[i].available(now_ms);
        match &self.kind {
            Kind::RoundRobin { seq, next } => {
                let start = next.fetch_add(1, Ordering::Relaxed);
                (0..seq.len())
                    .map(|k| usize::from(seq[(start + k) % seq.len()]))
                    .find(|&i| ok(i))
            }
            Kind::LeastConnections => {
                let offset = fastrand::usize(..targets.len().max(1));
                (0..targets.len())
                    .map(|k| (k + offset) % targets.len())
                    .filter(|&i| ok(i))
                    .min_by_key(|&i| {
                        let t = &targets[i];
                        // Scale by weight so a heavier target takes proportionally more.
                        u64::from(t.state.in_flight.load(Ordering::Relaxed)) * 1_000_000
                            / u64::from(t.weight)
                    })
            }
            Kind::ConsistentHash { ring, .. } => match hash {
                Some(h) => ring_pick(ring, h, ok),
                None => random_available(targets.len(), ok),
            },
            Kind::LeastLatency => p2c(targets, ok),
            Kind::Random { cumulative } => {
                let total = cumulative.last().copied().unwrap_or(0);
                let r = fastrand::u64(..total.max(1));
                let first = cumulative.partition_point(|&c| c <= r);
                (0..targets.len())
                    .map(|k| (first + k) % targets.len())
                    .find(|&i| ok(i))
            }
        }
    }
}

/// nginx's smooth weighted round robin, unrolled into a sequence once per config version.
fn smooth_wrr(weights: &[u64]) -> Vec<u16> {
    let total: u64 = weights.iter().sum();
    let scale = total.div_ceil(MAX_SEQUENCE).max(1);
    let weights: Vec<i64> = weights
        .iter()
        .map(|w| i64::try_from((w / scale).max(1)).unwrap_or(1))
        .collect();
    let gcd = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
    let weights: Vec<i64> = weights.iter().map(|w| w / gcd).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut seq = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .unwrap_or((0, &0));
        current[best] -= total;
        seq.push(u16::try_from(best).unwrap_or(0));
    }
    seq
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// FNV-1a with a murmur3 finaliser: stable across nodes and versions, so every gateway
/// maps a key the same way; the finaliser spreads similar keys over the whole ring.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn ring(targets: &[Target]) -> Vec<(u64, u16)> {
    let total: u64 = targets
        .iter()
        .map(|t| u64::from(t.weight) * POINTS_PER_WEIGHT)
        .sum();
    let scale = total.div_ceil(MAX_RING_POINTS).max(1);
    let mut ring = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let points = (u64::from(t.weight) * POINTS_PER_WEIGHT / scale).max(1);
        for p in 0..points {
            ring.push((
                stable_hash(format!("{}#{p}", t.url).as_bytes()),
                u16::try_from(i).unwrap_or(0),
            ));
        }
    }
    ring.sort_unstable();
    ring
}

fn hash_key(on: &HashOn, ctx: &PickCtx<'_>) -> Option<u64> {
    match on {
        HashOn::Header(name) => ctx
            .headers
            .get(name.as_str())
            .map(|v| stable_hash(v.as_bytes())),
        HashOn::Cookie(name) => cookie(ctx.headers, name).map(|v| stable_hash(v.as_bytes())),
        HashOn::ClientIp => Some(match ctx.client_ip {
            IpAddr::V4(ip) => stable_hash(&ip.octets()),
            IpAddr::V6(ip) => stable_hash(&ip.octets()),
        }),
        HashOn::Path => Some(stable_hash(ctx.path.as_bytes())),
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .split_once('=')
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v)
        })
}

/// Walks the ring clockwise from the key's point to the first eligible target.
fn ring_pick(ring: &[(u64, u16)], hash: u64, ok: impl Fn(usize) -> bool) -> Option<usize> {
    let start = ring.partition_point(|(p, _)| *p < hash);
    (0..ring.len())
        .map(|k| usize::from(ring[(start + k) % ring.len()].1))
        .find(|&i| ok(i))
}

fn random_available(n: usize, ok: impl Fn(usize) -> bool) -> Option<usize> {
    let offset = fastrand::usize(..n.max(1));
    (0..n).map(|k| (k + offset) % n).find(|&i| ok(i))
}

/// Power of two choices: of two random eligible targets, the one with the lower
/// latency estimate times its load. Unmeasured targets score zero and get explored.
fn p2c(targets: &[Target], ok: impl Fn(usize) -> bool) -> Option<usize> {
    let a = random_available(targets.len(), &ok)?;
    let b = random_available(targets.len(), |i| i != a && ok(i));
    let score = |i: usize| {
        let s = &targets[i].state;
        f64::from_bits(s.ewma_micros.load(Ordering::Relaxed))
            * f64::from(s.in_flight.load(Ordering::Relaxed) + 1)
    };
    Some(match b {
        Some(b) if score(b) < score(a) => b,
        _ => a,
    })
}

/// Folds one latency sample into the target's EWMA (weight 0.2 to the new sample).
pub fn update_ewma(state: &TargetState, latency: Duration) {
    let sample = latency.as_secs_f64() * 1e6;
    let old = f64::from_bits(state.ewma_micros.load(Ordering::Relaxed));
    let new = if old == 0.0 {
        sample
    } else {
        old * 0.8 + sample * 0.2
    };
    state.ewma_micros.store(new.to_bits(), Ordering::Relaxed);
}
