//! A DDSketch (Masson, Rim, Lee, VLDB 2019) for latency percentiles: values fall into
//! logarithmic buckets whose width is 2% of their value, so any quantile it reports is
//! within 1% of the true value, sketches of many nodes and minutes merge by adding bucket
//! counts, and the whole thing serialises to a few hundred bytes.
//!
//! Values are microseconds. Values below 1 µs count as zero; values above ~27 hours are
//! clamped, which bounds the buckets to about 1,300 (all of them are dense in a `Vec`
//! between the lowest and highest one seen).

use std::time::Duration;

/// The relative accuracy of every quantile: 1%.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// gamma = (1 + a) / (1 - a): the ratio between a bucket's upper and lower bound.
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
/// The largest value kept as is (µs): 10^11 µs, a little over 27 hours.
const MAX_VALUE: f64 = 1e11;
/// Format version of [`Sketch::to_bytes`].
const FORMAT: u8 = 1;
/// Bucket indices are in `0..=MAX_INDEX` (index 0 holds 1 µs).
const MAX_INDEX: i32 = 1_300;

/// Why bytes are not a sketch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a latency sketch: {0}")]
pub struct SketchError(&'static str);

/// A mergeable quantile sketch with 1% relative accuracy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    /// Values below 1 µs.
    zero: u64,
    /// Index of `bins[0]`.
    offset: i32,
    bins: Vec<u64>,
    count: u64,
}

/// The bucket of `us` (> 0): the `i` with gamma^(i-1) < us <= gamma^i.
fn index_of(us: f64) -> i32 {
    let i = (us.min(MAX_VALUE).ln() / GAMMA.ln()).ceil();
    // `us >= 1`, so `i` is in 0..=MAX_INDEX; the clamp only guards the float maths.
    (i as i32).clamp(0, MAX_INDEX)
}

/// The value reported for bucket `i`: within 1% of anything in it.
fn value_of(i: i32) -> f64 {
    2.0 * GAMMA.powi(i) / (GAMMA + 1.0)
}

impl Sketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Values recorded (or merged in).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Records a duration.
    pub fn add(&mut self, d: Duration) {
        self.add_micros(d.as_secs_f64() * 1e6, 1);
    }

    /// Records `n` values of `us` microseconds.
    pub fn add_micros(&mut self, us: f64, n: u64) {
        if n == 0 {
            return;
        }
        self.count += n;
        // NaN lands here too: it compares false.
        if us.is_nan() || us < 1.0 {
            self.zero += n;
            return;
        }
        let i = index_of(us);
        *self.bin_mut(i) += n;
    }

    /// The counter of bucket `i`, growing the dense range to include it.
    fn bin_mut(&mut self, i: i32) -> &mut u64 {
        if self.bins.is_empty() {
            self.offset = i;
            self.bins.push(0);
        } else if i < self.offset {
            let grow = (self.offset - i) as usize;
            self.bins.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = i;
        } else if i >= self.offset + self.bins.len() as i32 {
            self.bins.resize((i - self.offset) as usize + 1, 0);
        }
        &mut self.bins[(i - self.offset) as usize]
    }

    /// Adds `other`'s values to this sketch: the result is the sketch of both inputs.
    pub fn merge(&mut self, other: &Sketch) {
        self.zero += other.zero;
        self.count += other.count;
        for (j, n) in other.bins.iter().enumerate().filter(|(_, n)| **n > 0) {
            *self.bin_mut(other.offset + j as i32) += n;
        }
    }

    /// The `q`-quantile (0.0 to 1.0) in microseconds, within 1% of the exact value of the
    /// rank `floor(q * (count - 1))`; `None` when empty.
    pub fn quantile_micros(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).floor() as u64;
        if rank < self.zero {
            return Some(0.0);
        }
        let mut seen = self.zero;
        for (j, n) in self.bins.iter().enumerate() {
            seen += n;
            if seen > rank {
                return Some(value_of(self.offset + j as i32));
            }
        }
        // Unreachable while `count` matches the bins; the top bucket is the safe answer.
        Some(value_of(self.offset + self.bins.len() as i32 - 1))
    }

    /// [`Self::quantile_micros`] in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.quantile_micros(q).map(|us| us / 1000.0)
    }

    /// Compact bytes: format version, zero count, offset, then the bucket counts, all as
    /// LEB128 varints (most counts take one byte).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.bins.len());
        out.push(FORMAT);
        put(&mut out, self.zero);
        put(
            &mut out,
            u64::from(self.offset.unsigned_abs()) << 1 | u64::from(self.offset < 0),
        );
        put(&mut out, self.bins.len() as u64);
        for n in &self.bins {
            put(&mut out, *n);
        }
        out
    }

    /// Reads [`Self::to_bytes`]' output; empty input is an empty sketch.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchError> {
        let Some((&version, mut rest)) = bytes.split_first() else {
            return Ok(Self::default());
        };
        if version != FORMAT {
            return Err(SketchError("unknown format version"));
        }
        let zero = take(&mut rest)?;
        let raw = take(&mut rest)?;
        let magnitude = i32::try_from(raw >> 1).map_err(|_| SketchError("offset too large"))?;
        let offset = if raw & 1 == 1 { -magnitude } else { magnitude };
        let len = take(&mut rest)?;
        if !(0..=MAX_INDEX + 1).contains(&offset) || len > (MAX_INDEX + 1 - offset) as u64 {
            return Err(SketchError("buckets out of range"));
        }
        let mut bins = Vec::with_capacity(len as usize);
        let mut count = zero;
        for _ in 0..len {
            let n = take(&mut rest)?;
            count = count.checked_add(n).ok_or(SketchError("count overflows"))?;
            bins.push(n);
        }
        if !rest.is_empty() {
            return Err(SketchError("trailing bytes"));
        }
        Ok(Self {
            zero,
            offset,
            bins,
            count,
        })
    }
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take(input: &mut &[u8]) -> Result<u64, SketchError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first().ok_or(SketchError("truncated varint"))?;
        *input = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(SketchError("varint too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact value DDSketch's guarantee is about: rank floor(q (n - 1)).
    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn within(estimate: f64, exact: f64) -> bool {
        (estimate - exact).abs() <= RELATIVE_ACCURACY * exact * (1.0 + 1e-9)
    }

    #[test]
    fn every_quantile_is_within_one_percent() {
        let mut rng = fastrand::Rng::with_seed(7);
        // Log-uniform from 1 µs to 100 s: every bucket range a gateway sees.
        let mut values: Vec<f64> = (0..50_000).map(|_| 10f64.powf(rng.f64() * 8.0)).collect();
        let mut s = Sketch::new();
        for v in &values {
            s.add_micros(*v, 1);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let (est, ex) = (s.quantile_micros(q).unwrap(), exact(&values, q));
            assert!(within(est, ex), "q={q}: {est} vs {ex}");
        }
        assert_eq!(s.count(), 50_000);
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let mut rng = fastrand::Rng::with_seed(11);
        let (mut a, mut b, mut all) = (Sketch::new(), Sketch::new(), Sketch::new());
        let mut values = Vec::new();
        for i in 0..20_000 {
            // Two different distributions: fast node a, slow node b.
            let v = if i % 2 == 0 {
                200.0 + rng.f64() * 800.0
            } else {
                50_000.0 + rng.f64() * 1e6
            };
            if i % 2 == 0 { &mut a } else { &mut b }.add_micros(v, 1);
            all.add_micros(v, 1);
            values.push(v);
        }
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged, all, "merge is exact: the same buckets");
        let mut other_order = b;
        other_order.merge(&a);
        assert_eq!(other_order, all, "merge is commutative");
        values.sort_by(f64::total_cmp);
        for q in [0.5, 0.95, 0.99] {
            let (est, ex) = (merged.quantile_micros(q).unwrap(), exact(&values, q));
            assert!(within(est, ex), "q={q}: {est} vs {ex}");
        }
    }

    #[test]
    fn bytes_round_trip_and_garbage_is_refused() {
        let mut s = Sketch::new();
        for us in [0.0, 0.5, 1.0, 3.0, 999.0, 1e6, 1e12] {
            s.add_micros(us, 3);
        }
        let bytes = s.to_bytes();
        assert_eq!(Sketch::from_bytes(&bytes).unwrap(), s);
        assert_eq!(Sketch::from_bytes(&[]).unwrap(), Sketch::new());
        assert_eq!(
            Sketch::from_bytes(&Sketch::new().to_bytes()).unwrap(),
            Sketch::new()
        );
        assert!(Sketch::from_bytes(&[9]).is_err());
        assert!(Sketch::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(Sketch::from_bytes(&long).is_err());
        // A bucket count far past the index range is refused before allocating.
        assert!(Sketch::from_bytes(&[1, 0, 0, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    #[test]
    fn edges() {
        let mut s = Sketch::new();
        assert_eq!(s.quantile_micros(0.5), None);
        s.add(Duration::from_nanos(10));
        assert_eq!(
            s.quantile_micros(0.5),
            Some(0.0),
            "below 1 µs counts as zero"
        );
        s.add_micros(f64::NAN, 1);
        s.add_micros(5e12, 1);
        assert_eq!(s.count(), 3);
        let top = s.quantile_micros(1.0).unwrap();
        assert!(within(top, MAX_VALUE) || top > MAX_VALUE * 0.98, "{top}");
        s.add(Duration::from_millis(250));
        let mut one = Sketch::new();
        one.add(Duration::from_millis(250));
        assert!(within(one.quantile_ms(0.5).unwrap(), 250.0));
    }
}
