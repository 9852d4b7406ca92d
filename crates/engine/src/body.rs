//! Building HTTP responses: Engine.IO error bodies, polling payloads, compression.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use socketlet_engineio_proto::ErrorCode;
use std::io::Write;

/// The body type of every engine response: the whole body in one buffer (polling responses are
/// built whole, WebSocket upgrades have none).
pub type ResponseBody = Full<Bytes>;

/// A response of `content_type`: a value made at compile time (`const {
/// HeaderValue::from_static(..) }`), not checked byte by byte for every answer.
fn response(status: StatusCode, content_type: HeaderValue, body: Bytes) -> Response<ResponseBody> {
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, content_type);
    res
}

/// A JSON response.
fn json(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    response(
        status,
        const { HeaderValue::from_static("application/json") },
        body,
    )
}

/// An empty response.
pub(crate) fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = status;
    res
}

/// A `text/html` response.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let html = const { HeaderValue::from_static("text/html") };
    response(status, html, Bytes::from_static(body.as_bytes()))
}

/// The Engine.IO error JSON for `code`, with its status.
pub(crate) fn json_error(code: ErrorCode) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    json(status, Bytes::from(code.to_json()))
}

/// An Engine.IO error JSON with a message of our own.
pub(crate) fn json_error_message(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
) -> Response<ResponseBody> {
    let body = serde_json::json!({ "code": code as u8, "message": message }).to_string();
    json(status, Bytes::from(body))
}

/// Node's shape for a refusal by `allowRequest`: the code's message plus a `context`.
pub(crate) fn json_error_context(code: ErrorCode, context: &str) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::json!({
        "code": code as u8,
        "message": code.message(),
        "context": { "message": context },
    })
    .to_string();
    json(status, Bytes::from(body))
}

/// The compression a client accepts for a polling response (gzip first, then deflate): what
/// a parked GET keeps of its request's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Gzip,
    Deflate,
}

impl Encoding {
    /// What `Accept-Encoding` in `request` allows; `None` for neither.
    pub(crate) fn accepted(request: &HeaderMap) -> Option<Encoding> {
        let accepted = request.get(header::ACCEPT_ENCODING)?.to_str().ok()?;
        let accepts = |name: &str| {
            accepted.split(',').any(|e| {
                let mut parts = e.split(';');
                let enc = parts.next().unwrap_or("").trim();
                let q0 = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
                enc.eq_ignore_ascii_case(name) && !q0
            })
        };
        if accepts("gzip") {
            Some(Encoding::Gzip)
        } else if accepts("deflate") {
            Some(Encoding::Deflate)
        } else {
            None
        }
    }
}

/// A polling response, compressed with `encoding` when it is at least `threshold` long.
pub(crate) fn payload(
    body: Bytes,
    content_type: HeaderValue,
    encoding: Option<Encoding>,
    threshold: Option<usize>,
) -> Response<ResponseBody> {
    if let (Some(threshold), Some(encoding)) = (threshold, encoding) {
        if body.len() >= threshold {
            if let Some((encoding, compressed)) = compress(&body, encoding) {
                let mut res = response(StatusCode::OK, content_type, compressed);
                res.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
                res.headers_mut()
                    .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
                return res;
            }
        }
    }
    response(StatusCode::OK, content_type, body)
}

fn compress(body: &[u8], encoding: Encoding) -> Option<(&'static str, Bytes)> {
    let level = flate2::Compression::fast();
    match encoding {
        Encoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2), level);
            e.write_all(body).ok()?;
            Some(("gzip", Bytes::from(e.finish().ok()?)))
        }
        Encoding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::with_capacity(body.len() / 2), level);
            e.write_all(body).ok()?;
            Some(("deflate", Bytes::from(e.finish().ok()?)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> HeaderValue {
        HeaderValue::from_static("text/plain")
    }

    #[test]
    fn error_bodies_match_node() {
        let res = json_error(ErrorCode::UnknownSid);
        assert_eq!(res.status(), 400);
        let res = json_error(ErrorCode::Forbidden);
        assert_eq!(res.status(), 403);
    }

    #[test]
    fn compresses_only_above_threshold_and_when_accepted() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate"),
        );
        let h = Encoding::accepted(&h);
        let small = payload(Bytes::from_static(b"4hi"), plain(), h, Some(1024));
        assert!(small.headers().get(header::CONTENT_ENCODING).is_none());
        let big = Bytes::from(vec![b'a'; 4096]);
        let res = payload(big.clone(), plain(), h, Some(1024));
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
        let none = Encoding::accepted(&HeaderMap::new());
        let res = payload(big.clone(), plain(), none, Some(1024));
        assert!(res.headers().get(header::CONTENT_ENCODING).is_none());
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, deflate"),
        );
        let res = payload(big, plain(), Encoding::accepted(&h), Some(1024));
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "deflate");
    }
}
