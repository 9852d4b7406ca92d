//! Helpers for the engine's integration tests: the engine as a raw Engine.IO echo server,
//! a polling client that drives its tower service directly (no network), a WebSocket client over
//! an in-memory pipe served by hyper, and the v3/v4 payload formats.
//!
//! Every wait goes through [`within`], so a server that never answers fails the test instead
//! of hanging it; tests run with tokio's paused clock.
#![allow(dead_code)]

pub use bytes::Bytes;
pub use futures_util::{SinkExt, StreamExt};
pub use http::{Method, Request, StatusCode};
pub use http_body_util::{BodyExt, Full};
pub use hyper::body::Incoming;
pub use hyper_util::rt::TokioIo;
pub use serde_json::Value;
pub use socketlet_engine::{
    CloseReason, Cors, Engine, EngineConfig, EngineHandler, EngineService, Message, Socket,
};
pub use std::future::Future;
pub use std::sync::Arc;
pub use std::time::Duration;
pub use tokio::io::DuplexStream;
pub use tokio::task::JoinHandle;
pub use tokio::time::Instant;
pub use tokio_tungstenite::tungstenite::{self, Message as Frame};
pub use tokio_tungstenite::WebSocketStream;
pub use tower::ServiceExt;

/// The suites' heartbeat settings.
pub const PING_INTERVAL: Duration = Duration::from_millis(300);
pub const PING_TIMEOUT: Duration = Duration::from_millis(200);
/// The suites' `maxPayload`.
pub const MAX_PAYLOAD: u64 = 1_000_000;
/// How long any single step may take before the test fails (virtual time).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Sends every message back to its sender.
pub struct Echo;

impl EngineHandler for Echo {
    fn on_open(&self, _socket: &Arc<Socket>) {}
    fn on_message(&self, socket: &Arc<Socket>, msg: Message) {
        let _ = socket.send(msg);
    }
    fn on_close(&self, _socket: &Arc<Socket>, _reason: CloseReason) {}
}

/// A fresh echo server configured as the suites expect. A test keeps it for its whole length:
/// once the last handle to the engine is gone, its sessions no longer reach the handler.
pub fn server() -> EngineService {
    server_with(suite_config())
}

/// The settings the suites expect: heartbeats of 300 + 200 ms, `maxPayload` 1e6, any origin,
/// v3 allowed.
pub fn suite_config() -> EngineConfig {
    EngineConfig::default()
        .with_ping_interval(PING_INTERVAL)
        .with_ping_timeout(PING_TIMEOUT)
        .with_max_payload(MAX_PAYLOAD)
        .with_cors(Cors::Any)
        .with_allow_eio3(true)
}

/// An echo server with these settings.
pub fn server_with(config: EngineConfig) -> EngineService {
    EngineService::new(Engine::new(config, Arc::new(Echo)))
}

/// Awaits `fut`, failing the test if it takes longer than [`PATIENCE`].
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
            Eio::V4 => body.split('\u{1e}').map(str::to_owned).collect(),
            Eio::V3 => {
                let mut out = Vec::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (len, after) = rest
                        .split_once(':')
                        .unwrap_or_else(|| panic!("no length prefix in {body:?}"));
                    let len: usize = len.parse().unwrap();
                    let end = after
                        .char_indices()
                        .nth(len)
                        .map_or(after.len(), |(i, _)| i);
                    assert_eq!(after[..end].chars().count(), len, "short packet: {body:?}");
                    out.push(after[..end].to_owned());
                    rest = &after[end..];
                }
                out
            }
        }
    }
}

/// An HTTP answer with its body read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    /// Asserts a 200 answer whose body is exactly `expected`.
    #[track_caller]
    pub fn assert_ok(&self, expected: &str) {
        assert_eq!(self.status, StatusCode::OK, "body: {:?}", self.text());
        assert_eq!(self.text(), expected);
    }

    /// Asserts an Engine.IO error answer: 400 and a JSON body `{"code": code, "message": ..}`.
    #[track_caller]
    pub fn assert_error(&self, code: u64) {
        assert_eq!(
            self.status,
            StatusCode::BAD_REQUEST,
            "body: {:?}",
            self.text()
        );
        let json: Value = serde_json::from_slice(&self.body).unwrap();
        assert_eq!(json["code"], code, "body: {json}");
        assert!(json["message"].is_string(), "body: {json}");
    }
}

/// Sends one request with `query` to the engine's path and reads the whole answer.
pub async fn call(
    svc: &EngineService,
    method: Method,
    query: &str,
    body: impl Into<Bytes>,
) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(format!("/engine.io/?{query}"))
        .body(Full::new(body.into()))
        .unwrap();
    send(svc, req).await
}

/// Sends a request as it is and reads the whole answer.
pub async fn send<B>(svc: &EngineService, req: Request<B>) -> Reply
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let what = format!("{} {}", req.method(), req.uri());
    within(&what, async {
        let res = match svc.clone().oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        };
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Reply { status, body }
    })
    .await
}

/// Checks the JSON of an OPEN packet against the suites' settings; returns the sid.
#[track_caller]
pub fn check_open(eio: Eio, packet: &str, upgrades: &[&str]) -> String {
    let json: Value = serde_json::from_str(
        packet
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("not an OPEN packet: {packet:?}")),
    )
    .unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
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

/// A polling client of one session.
#[derive(Clone)]
pub struct Polling {
    pub svc: EngineService,
    pub eio: Eio,
    pub sid: String,
}

impl Polling {
    /// Opens a session as the suites do: v3 asks for base64 binary (`b64=1`), v4 has no choice.
    pub async fn open(svc: &EngineService, eio: Eio) -> Polling {
        let extra = if eio == Eio::V3 { "&b64=1" } else { "" };
        Polling::open_with(svc, eio, extra).await
    }

    /// Opens a session with `extra` appended to the handshake's query; checks the OPEN packet.
    pub async fn open_with(svc: &EngineService, eio: Eio, extra: &str) -> Polling {
        let query = format!("{}&transport=polling{extra}", eio.param());
        let res = call(svc, Method::GET, &query, Bytes::new()).await;
        assert_eq!(res.status, StatusCode::OK, "handshake: {:?}", res.text());
        let packets = eio.packets(res.text());
        assert_eq!(packets.len(), 1, "only the OPEN packet: {packets:?}");
        let sid = check_open(eio, &packets[0], &["websocket"]);
        Polling {
            svc: svc.clone(),
            eio,
            sid,
        }
    }

    /// Opens a session of a server with settings of the test's own (the OPEN packet is not
    /// checked against the suites' settings).
    pub async fn start(svc: &EngineService, eio: Eio) -> Polling {
        let query = format!("{}&transport=polling", eio.param());
        let res = call(svc, Method::GET, &query, Bytes::new()).await;
        assert_eq!(res.status, StatusCode::OK, "handshake: {:?}", res.text());
        let packets = eio.packets(res.text());
        let open: Value = serde_json::from_str(&packets[0][1..]).unwrap();
        Polling {
            svc: svc.clone(),
            eio,
            sid: open["sid"].as_str().unwrap().to_owned(),
        }
    }

    /// The query of this session's requests.
    pub fn query(&self) -> String {
        format!("{}&transport=polling&sid={}", self.eio.param(), self.sid)
    }

    /// A GET.
    pub async fn get(&self) -> Reply {
        call(&self.svc, Method::GET, &self.query(), Bytes::new()).await
    }

    /// A POST of `body` as it is.
    pub async fn post(&self, body: &str) -> Reply {
        call(&self.svc, Method::POST, &self.query(), body.to_owned()).await
    }

    /// A POST of `packets`, framed for the session's version, that must be accepted.
    pub async fn send(&self, packets: &[&str]) {
        self.post(&self.eio.payload(packets)).await.assert_ok("ok");
    }

    /// A GET whose answer must be exactly `packets`, framed for the session's version.
    pub async fn expect(&self, packets: &[&str]) {
        self.get().await.assert_ok(&self.eio.payload(packets));
    }

    /// A GET on a task of its own, so that it can park while the test carries on.
    pub fn spawn_get(&self) -> JoinHandle<Reply> {
        let me = self.clone();
        tokio::spawn(async move { me.get().await })
    }
}

/// The client side of an in-process WebSocket.
pub type Ws = WebSocketStream<DuplexStream>;

/// Opens a WebSocket with `query`: one end of an in-memory pipe is served by hyper (with
/// upgrades) calling the engine, the other does the client's handshake.
pub async fn ws_connect(svc: &EngineService, query: &str) -> Result<Ws, tungstenite::Error> {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let svc = svc.clone();
    tokio::spawn(async move {
        let service =
            hyper::service::service_fn(move |req: Request<Incoming>| svc.clone().oneshot(req));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server_end), service)
            .with_upgrades()
            .await;
    });
    let url = format!("ws://localhost/engine.io/?{query}");
    within(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(url, client_end),
    )
    .await
    .map(|(ws, _response)| ws)
}

/// Asserts that the server refuses the WebSocket handshake with `query` (with a 400).
pub async fn ws_refused(svc: &EngineService, query: &str) {
    match ws_connect(svc, query).await {
        Err(tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
        }
        Ok(_) => panic!("WebSocket accepted with {query:?}"),
        Err(e) => panic!("unexpected error with {query:?}: {e}"),
    }
}

/// Opens a WebSocket session of `eio` and checks its OPEN frame.
pub async fn ws_open(svc: &EngineService, eio: Eio) -> Ws {
    let mut ws = ws_connect(svc, &format!("{}&transport=websocket", eio.param()))
        .await
        .unwrap();
    let open = ws_text(&mut ws).await;
    check_open(eio, &open, &[]);
    ws
}

/// The next frame from the server (`None` once the stream ended).
pub async fn ws_next(ws: &mut Ws) -> Option<Result<Frame, tungstenite::Error>> {
    within("a WebSocket frame", ws.next()).await
}

/// The next frame, which must be a text frame.
pub async fn ws_text(ws: &mut Ws) -> String {
    match ws_next(ws).await {
        Some(Ok(Frame::Text(t))) => t.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Sends a frame.
pub async fn ws_send(ws: &mut Ws, frame: Frame) {
    within("sending a frame", ws.send(frame)).await.unwrap();
}

/// Reads until the server ends the connection (a close frame or the end of the stream); any
/// text frame before that must be one of `allowed`.
pub async fn ws_expect_end(ws: &mut Ws, allowed: &[&str]) {
    loop {
        match ws_next(ws).await {
            Some(Ok(Frame::Close(_))) | None => return,
            Some(Ok(Frame::Text(t))) if allowed.contains(&t.as_str()) => {}
            other => panic!("expected the connection to end, got {other:?}"),
        }
    }
}

/// Opens a polling session of `eio` and upgrades it: WebSocket with its sid, `2probe`,
/// `3probe`, `5`. Returns the session and the WebSocket, which now carries it.
pub async fn upgraded(svc: &EngineService, eio: Eio) -> (Polling, Ws) {
    let session = Polling::open(svc, eio).await;
    let query = format!("{}&transport=websocket&sid={}", eio.param(), session.sid);
    let mut ws = ws_connect(svc, &query).await.unwrap();
    ws_send(&mut ws, Frame::text("2probe")).await;
    assert_eq!(ws_text(&mut ws).await, "3probe");
    ws_send(&mut ws, Frame::text("5")).await;
    settle().await;
    (session, ws)
}
