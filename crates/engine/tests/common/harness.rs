//! In-process test helpers shared by the engine's tests and socketlet's (socketlet's
//! `tests/common` includes this file by path): bounded waits, whole answers of a tower service,
//! the polling payload formats, the OPEN packet as the official suites expect it, and a
//! WebSocket client over an in-memory pipe served by `serve_connection`.
//!
//! The including module defines `PATIENCE`, how long any single step may take, and brings the
//! engine's `Servable` into scope.

use super::{serve_connection, Servable, PATIENCE};
use bytes::Bytes;
use futures_util::StreamExt;
use http::header::HeaderMap;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;
use tower::{Service, ServiceExt};

/// The heartbeat the official test suites expect (`pingInterval`, `pingTimeout`).
pub const PING_INTERVAL: Duration = Duration::from_millis(300);
pub const PING_TIMEOUT: Duration = Duration::from_millis(200);
/// The `maxPayload` the official test suites expect.
pub const MAX_PAYLOAD: u64 = 1_000_000;

/// Awaits `fut`, failing the test if it takes longer than `PATIENCE`.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Lets every task run until all are idle (under the paused clock, the sleep ends only then).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// An HTTP answer with its body read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as UTF-8 text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is not UTF-8")
    }
}

/// Sends one request through `svc` and reads the whole answer.
pub async fn exchange<S, B, RB>(svc: S, req: Request<B>) -> Reply
where
    S: Service<Request<B>, Response = Response<RB>, Error = Infallible>,
    RB: hyper::body::Body<Data = Bytes>,
    RB::Error: std::fmt::Debug,
{
    let what = format!("{} {}", req.method(), req.uri());
    within(&what, async {
        let res = match svc.oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        };
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
    .await
}

/// The protocol revision a test speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eio {
    V3,
    V4,
}

impl Eio {
    /// The `EIO` query parameter.
    pub fn param(self) -> &'static str {
        match self {
            Eio::V3 => "EIO=3",
            Eio::V4 => "EIO=4",
        }
    }

    /// Frames text packets as a polling payload: v4 joins them with the record separator, v3
    /// prefixes each with its length and a colon (the tests use ASCII only, so characters and
    /// UTF-16 units agree).
    pub fn payload(self, packets: &[&str]) -> String {
        match self {
            Eio::V4 => packets.join("\u{1e}"),
            Eio::V3 => packets
                .iter()
                .map(|p| format!("{}:{p}", p.chars().count()))
                .collect(),
        }
    }

    /// Splits a text polling payload into its packets, checking v3's length prefixes.
    pub fn packets(self, body: &str) -> Vec<String> {
        match self {
            Eio::V4 => v4_packets(body),
            Eio::V3 => v3_packets(body),
        }
    }
}

/// Splits a v4 polling payload into its packets.
pub fn v4_packets(body: &str) -> Vec<String> {
    body.split('\u{1e}').map(str::to_owned).collect()
}

/// Splits a v3 text polling payload (`<length>:<packet>...`, lengths in characters).
pub fn v3_packets(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (len, after) = rest
            .split_once(':')
            .unwrap_or_else(|| panic!("no length prefix in {rest:?}"));
        let len: usize = len
            .parse()
            .unwrap_or_else(|_| panic!("bad length {len:?} in {body:?}"));
        let end = after
            .char_indices()
            .nth(len)
            .map_or(after.len(), |(i, _)| i);
        assert_eq!(
            after[..end].chars().count(),
            len,
            "short packet in {body:?}"
        );
        out.push(after[..end].to_owned());
        rest = &after[end..];
    }
    out
}

/// The JSON of an Engine.IO OPEN packet (`0{...}`).
pub fn open_json(packet: &str) -> Value {
    let json = packet
        .strip_prefix('0')
        .unwrap_or_else(|| panic!("not an OPEN packet: {packet:?}"));
    serde_json::from_str(json).expect("OPEN JSON")
}

/// Checks an OPEN packet against the suites' settings and `upgrades` (in v4, exactly these five
/// keys); returns the sid.
#[track_caller]
pub fn check_open(eio: Eio, packet: &str, upgrades: &[&str]) -> String {
    let json = open_json(packet);
    let mut keys: Vec<&str> = json
        .as_object()
        .expect("OPEN JSON is an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    match eio {
        Eio::V4 => {
            assert_eq!(
                keys,
                [
                    "maxPayload",
                    "pingInterval",
                    "pingTimeout",
                    "sid",
                    "upgrades"
                ]
            );
            assert_eq!(json["maxPayload"], MAX_PAYLOAD);
        }
        Eio::V3 => assert!(
            json.get("maxPayload").is_none() || json["maxPayload"] == MAX_PAYLOAD,
            "{json}"
        ),
    }
    assert_eq!(json["upgrades"], serde_json::json!(upgrades));
    assert_eq!(json["pingInterval"], PING_INTERVAL.as_millis() as u64);
    assert_eq!(json["pingTimeout"], PING_TIMEOUT.as_millis() as u64);
    json["sid"].as_str().expect("sid is a string").to_owned()
}

/// The client side of an in-process WebSocket.
pub type Ws = WebSocketStream<DuplexStream>;

/// Opens a WebSocket to `path` with `query`: one end of an in-memory pipe is served by
/// [`serve_connection`] (the HTTP/1.1 of `serve`) calling `svc`, the other does the client's
/// handshake.
pub async fn ws_connect_to<S: Servable>(
    svc: S,
    path: &str,
    query: &str,
) -> Result<Ws, tungstenite::Error> {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    tokio::spawn(serve_connection(server_end, peer, svc));
    let url = format!("ws://localhost{path}?{query}");
    within(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(url, client_end),
    )
    .await
    .map(|(ws, _response)| ws)
}

/// Asserts that a WebSocket handshake with `query` was refused with a 400.
#[track_caller]
pub fn assert_ws_refused(attempt: Result<Ws, tungstenite::Error>, query: &str) {
    match attempt {
        Err(tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
        }
        Ok(_) => panic!("WebSocket accepted with {query:?}"),
        Err(e) => panic!("unexpected error with {query:?}: {e}"),
    }
}

/// The next frame from the server (`None` once the stream ended).
pub async fn ws_next(ws: &mut Ws) -> Option<Result<Message, tungstenite::Error>> {
    within("a WebSocket frame", ws.next()).await
}

/// The next frame, which must be a text frame.
pub async fn ws_recv_text(ws: &mut Ws) -> String {
    match ws_next(ws).await {
        Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}
