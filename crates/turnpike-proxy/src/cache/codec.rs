//! Stored objects as bytes, for the shared Redis store: a versioned, length-prefixed
//! layout that a node of another version refuses (a miss) rather than misreads.
//! Directives are not stored: they are parsed again from the stored headers.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use turnpike_policy::cache::directives::ResponseDirectives;
use turnpike_policy::cache::freshness::Timing;
use turnpike_state::objects::Object;

use super::entry::{Head, StoredHead};

const MAGIC: &[u8; 4] = b"TPC1";
const NO_DATE: i64 = i64::MIN;

/// The bytes of `obj`.
pub(crate) fn encode(obj: &Object<Head>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + obj.body.len());
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, obj.url.as_bytes());
    put_u32(&mut out, obj.tags.len());
    for tag in obj.tags.iter() {
        put_bytes(&mut out, tag.as_bytes());
    }
    match &obj.head {
        Head::Variants(names) => {
            out.push(1);
            put_u32(&mut out, names.len());
            for n in names.iter() {
                put_bytes(&mut out, n.as_bytes());
            }
        }
        Head::Response(h) => {
            out.push(0);
            out.extend_from_slice(&h.status.as_u16().to_be_bytes());
            let t = &h.timing;
            for v in [t.request_time, t.response_time, t.date.unwrap_or(NO_DATE)] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            out.extend_from_slice(&t.age.to_be_bytes());
            let life = u64::try_from(h.lifetime.as_millis()).unwrap_or(u64::MAX);
            out.extend_from_slice(&life.to_be_bytes());
            put_u32(&mut out, h.headers.len());
            for (name, value) in &h.headers {
                put_bytes(&mut out, name.as_str().as_bytes());
                put_bytes(&mut out, value.as_bytes());
            }
            put_bytes(&mut out, &obj.body);
        }
    }
    out
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len());
    out.extend_from_slice(b);
}

/// The object in `bytes`; `None` for anything this version did not write.
pub(crate) fn decode(bytes: &Bytes) -> Option<Object<Head>> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return None;
    }
    let url = std::str::from_utf8(r.bytes()?).ok()?.into();
    let tags = (0..r.u32()?)
        .map(|_| Some(Box::from(std::str::from_utf8(r.bytes()?).ok()?)))
        .collect::<Option<Box<[Box<str>]>>>()?;
    let (head, body) = match r.take(1)?[0] {
        1 => {
            let names = (0..r.u32()?)
                .map(|_| String::from_utf8(r.bytes()?.to_vec()).ok())
                .collect::<Option<Box<[String]>>>()?;
            (Head::Variants(names), Bytes::new())
        }
        0 => {
            let head = response_head(&mut r)?;
            let len = r.u32()? as usize;
            let start = r.at;
            r.take(len)?;
            (
                Head::Response(Box::new(head)),
                bytes.slice(start..start + len),
            )
        }
        _ => return None,
    };
    Some(Object {
        head,
        body,
        url,
        tags,
    })
}

fn response_head(r: &mut Reader<'_>) -> Option<StoredHead> {
    let status = StatusCode::from_u16(u16::from_be_bytes(r.take(2)?.try_into().ok()?)).ok()?;
    let (request_time, response_time, date) = (r.i64()?, r.i64()?, r.i64()?);
    let age = r.i64()? as u64;
    let lifetime = Duration::from_millis(r.i64()? as u64);
    let count = r.u32()?;
    let mut headers = HeaderMap::with_capacity(count as usize);
    for _ in 0..count {
        let name = HeaderName::from_bytes(r.bytes()?).ok()?;
        let value = HeaderValue::from_bytes(r.bytes()?).ok()?;
        headers.append(name, value);
    }
    let timing = Timing {
        request_time,
        response_time,
        date: (date != NO_DATE).then_some(date),
        age,
    };
    let directives = ResponseDirectives::parse(&headers);
    Some(StoredHead {
        status,
        headers,
        timing,
        lifetime,
        directives,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_garbage_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "cache-control",
            HeaderValue::from_static("max-age=60, stale-if-error=5"),
        );
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let timing = Timing {
            request_time: 10,
            response_time: 11,
            date: None,
            age: 3,
        };
        let head = StoredHead {
            status: StatusCode::NOT_FOUND,
            directives: ResponseDirectives::parse(&headers),
            headers,
            timing,
            lifetime: Duration::from_secs(60),
        };
        let obj = Object {
            head: Head::Response(Box::new(head)),
            body: Bytes::from_static(b"body"),
            url: "https://a/b".into(),
            tags: vec![Box::from("t1"), Box::from("\0url https://a/b")].into(),
        };
        let bytes = Bytes::from(encode(&obj));
        let back = decode(&bytes).unwrap();
        let (Head::Response(a), Head::Response(b)) = (&obj.head, &back.head) else {
            panic!()
        };
        assert_eq!(
            (a.status, &a.headers, a.timing, a.lifetime),
            (b.status, &b.headers, b.timing, b.lifetime)
        );
        assert_eq!(b.directives.stale_if_error, Some(Duration::from_secs(5)));
        assert_eq!(
            (&*back.body, &*back.url, &back.tags),
            (&b"body"[..], "https://a/b", &obj.tags)
        );
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes.slice(..cut)).is_none(),
                "a truncated object at {cut}"
            );
        }
        assert!(decode(&Bytes::from_static(b"TPC2....")).is_none());
    }
}
