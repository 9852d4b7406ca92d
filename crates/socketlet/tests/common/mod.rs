//! Helpers for the in-process tests: a polling client that drives [`SocketIo::service`] directly
//! (no network), a WebSocket client over an in-memory pipe served by hyper, and small parsers for
//! the Engine.IO and Socket.IO text formats.
//!
//! Every wait goes through [`within`], so a server that never answers fails the test instead of
//! hanging it. The tests run with tokio's paused clock: the clock jumps to the next timer as soon
//! as every task is idle, so heartbeats and timeouts cost no real time, and [`settle`] means "let
//! every task run until nothing is left to do".

#![allow(dead_code)]

#[path = "../../../engine/tests/common/harness.rs"]
mod harness;

pub use harness::*;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use socketlet::{serve_connection, Servable, SocketIo};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message};

/// How long any single step may take before the test fails (virtual time under a paused clock).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Engine.IO v4's packet separator in polling payloads.
pub const SEP: char = '\x1e';

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", self.text()))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("header"))
    }

    /// Asserts an Engine.IO error answer: `status` and JSON `{"code": code, ...}`.
    #[track_caller]
    pub fn assert_engine_error(&self, status: u16, code: u64) {
        assert_eq!(self.status, status, "body: {:?}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "body: {:?}",
            self.text()
        );
        let json = self.json();
        assert_eq!(json["code"], code, "body: {json}");
        assert!(json["message"].is_string(), "body: {json}");
    }
}

/// A request to the server's path with `query`, `Host: localhost` and the extra `headers`.
pub fn request(
    method: Method,
    query: &str,
    headers: &[(&'static str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body.into()));
    *req.method_mut() = method;
    *req.uri_mut() = format!("/socket.io/?{query}").parse().expect("uri");
    req.headers_mut()
        .insert(HOST, HeaderValue::from_static("localhost"));
    for (name, value) in headers {
        req.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    req
}

/// The request as it comes from a proxy on the same host (loopback: trusted by default, so its
/// `X-Forwarded-*` headers count).
pub fn from_local_proxy(mut req: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000));
    req.extensions_mut().insert(socketlet::RemoteAddr(peer));
    req
}

/// Sends one request through `io.service()` and reads the whole answer.
pub async fn call(io: &SocketIo, req: Request<Full<Bytes>>) -> Reply {
    exchange(io.service(), req).await
}

/// A GET with `query` and no extra headers.
pub async fn get(io: &SocketIo, query: &str) -> Reply {
    call(io, request(Method::GET, query, &[], Bytes::new())).await
}

/// A POST of `body` with `query` and no extra headers.
pub async fn post(io: &SocketIo, query: &str, body: impl Into<Bytes>) -> Reply {
    call(io, request(Method::POST, query, &[], body)).await
}

/// The socket id of a Socket.IO v5 CONNECT to `/` carried in an Engine.IO message
/// (`40{"sid":"..."}`).
pub fn connect_sid(packet: &str) -> String {
    let json = packet
        .strip_prefix("40")
        .unwrap_or_else(|| panic!("not a CONNECT: {packet:?}"));
    let v: Value = serde_json::from_str(json).expect("CONNECT JSON");
    v["sid"]
        .as_str()
        .unwrap_or_else(|| panic!("CONNECT without sid: {packet:?}"))
        .to_owned()
}

/// The ack id of an EVENT to `/` carried in an Engine.IO message (`42<id>[...]`), and the JSON
/// array after it.
pub fn event_with_id(packet: &str) -> (u64, Value) {
    let rest = packet
        .strip_prefix("42")
        .unwrap_or_else(|| panic!("not an EVENT: {packet:?}"));
    let digits = rest.find('[').expect("EVENT array");
    let id = rest[..digits]
        .parse()
        .unwrap_or_else(|_| panic!("EVENT without ack id: {packet:?}"));
    (
        id,
        serde_json::from_str(&rest[digits..]).expect("EVENT JSON"),
    )
}

/// A polling client of one Engine.IO session.
#[derive(Clone)]
pub struct Polling {
    pub io: SocketIo,
    pub eio: u8,
    pub sid: String,
    /// The handshake's OPEN JSON.
    pub open: Value,
}

impl Polling {
    /// Handshakes with Engine.IO `eio` (3 or 4). Returns the client and every packet of the
    /// handshake response after the OPEN packet.
    pub async fn handshake(io: &SocketIo, eio: u8) -> (Polling, Vec<String>) {
        let res = get(io, &format!("EIO={eio}&transport=polling")).await;
        assert_eq!(res.status, StatusCode::OK, "handshake: {:?}", res.text());
        let mut packets = match eio {
            3 => v3_packets(res.text()),
            _ => v4_packets(res.text()),
        };
        let open = open_json(&packets.remove(0));
        let sid = open["sid"].as_str().expect("sid").to_owned();
        let client = Polling {
            io: io.clone(),
            eio,
            sid,
            open,
        };
        (client, packets)
    }

    /// A v4 handshake whose response holds the OPEN packet only.
    pub async fn open(io: &SocketIo) -> Polling {
        let (client, rest) = Polling::handshake(io, 4).await;
        assert!(rest.is_empty(), "unexpected packets after OPEN: {rest:?}");
        client
    }

    /// The query string of this session's requests.
    pub fn query(&self) -> String {
        format!("EIO={}&transport=polling&sid={}", self.eio, self.sid)
    }

    /// A raw GET.
    pub async fn get(&self) -> Reply {
        get(&self.io, &self.query()).await
    }

    /// A raw POST.
    pub async fn post(&self, body: impl Into<Bytes>) -> Reply {
        post(&self.io, &self.query(), body).await
    }

    /// The session's transport goes away (for its sockets, a reason to be recovered from): the
    /// server closes it, the GET in flight ends, and the server is given time to take it in.
    pub async fn drop_transport(&self) {
        let sid = socketlet::engine::Sid::parse(&self.sid).expect("an Engine.IO sid");
        self.io.engine().socket(sid).expect("the session").close();
        let _ = self.get().await;
        settle().await;
    }

    /// A GET running on its own task (to park it while the test does something else).
    pub fn spawn_get(&self) -> JoinHandle<Reply> {
        let me = self.clone();
        tokio::spawn(async move { me.get().await })
    }

    /// A GET that must succeed; its packets.
    pub async fn recv(&self) -> Vec<String> {
        let res = self.get().await;
        self.decode(&res)
    }

    /// Asserts a successful GET answer and splits its packets.
    #[track_caller]
    pub fn decode(&self, res: &Reply) -> Vec<String> {
        assert_eq!(res.status, StatusCode::OK, "GET: {:?}", res.text());
        match self.eio {
            3 => v3_packets(res.text()),
            _ => v4_packets(res.text()),
        }
    }

    /// A GET that must carry exactly one packet; that packet.
    pub async fn recv_one(&self) -> String {
        let mut packets = self.recv().await;
        assert_eq!(packets.len(), 1, "expected one packet, got {packets:?}");
        packets.remove(0)
    }

    /// A POST that must be accepted.
    pub async fn send(&self, body: &str) {
        let res = self.post(body.to_owned()).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "POST {body:?}: {:?}",
            res.text()
        );
        assert_eq!(res.text(), "ok");
    }

    /// Connects a v5 client to `/` with `auth`: POSTs the CONNECT and reads until the server's
    /// CONNECT. Returns the socket id and the packets the server sent before it (events emitted
    /// by the connection handler may precede the CONNECT).
    pub async fn connect(&self, auth: Option<&str>) -> (String, Vec<String>) {
        self.send(&format!("40{}", auth.unwrap_or(""))).await;
        let mut before = Vec::new();
        for packet in self.recv().await {
            if packet.starts_with("40") {
                return (connect_sid(&packet), before);
            }
            before.push(packet);
        }
        panic!("no CONNECT in the answer; got {before:?}")
    }
}

/// Opens a WebSocket to `io` with `query` (see [`ws_connect_to`]).
pub async fn ws_connect(io: &SocketIo, query: &str) -> Result<Ws, tungstenite::Error> {
    ws_connect_to(io.service(), "/socket.io/", query).await
}

/// The next frame, which must be a binary frame.
pub async fn ws_recv_binary(ws: &mut Ws) -> Bytes {
    match ws_next(ws).await {
        Some(Ok(Message::Binary(b))) => b,
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

/// Sends a text frame.
pub async fn ws_send_text(ws: &mut Ws, text: &str) {
    use futures_util::SinkExt;
    within("sending a frame", ws.send(Message::text(text)))
        .await
        .expect("send text frame");
}

/// Sends a binary frame.
pub async fn ws_send_binary(ws: &mut Ws, data: &'static [u8]) {
    use futures_util::SinkExt;
    within(
        "sending a frame",
        ws.send(Message::binary(Bytes::from_static(data))),
    )
    .await
    .expect("send binary frame");
}
