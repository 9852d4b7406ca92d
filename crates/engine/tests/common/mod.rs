//! Helpers for the engine's integration tests: the engine as a raw Engine.IO echo server,
//! a polling client that drives its tower service directly (no network), a WebSocket client over
//! an in-memory pipe served by hyper, and the v3/v4 payload formats.
//!
//! Every wait goes through [`within`], so a server that never answers fails the test instead
//! of hanging it; tests run with tokio's paused clock.
#![allow(dead_code)]

mod harness;

pub use harness::*;

pub use bytes::Bytes;
pub use futures_util::SinkExt;
pub use http::{Method, Request, StatusCode};
pub use http_body_util::Full;
pub use serde_json::Value;
pub use socketlet_engine::{
    serve_connection, CloseReason, Cors, Engine, EngineConfig, EngineHandler, EngineService,
    Message, Servable, Socket,
};
pub use std::sync::Arc;
pub use std::time::Duration;
pub use tokio::task::JoinHandle;
pub use tokio::time::Instant;
pub use tokio_tungstenite::tungstenite::{self, Message as Frame};

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

impl Reply {
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
    exchange(svc.clone(), req).await
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

/// Opens a WebSocket to the engine with `query` (see [`ws_connect_to`]).
pub async fn ws_connect(svc: &EngineService, query: &str) -> Result<Ws, tungstenite::Error> {
    ws_connect_to(svc.clone(), "/engine.io/", query).await
}

/// Asserts that the server refuses the WebSocket handshake with `query` (with a 400).
pub async fn ws_refused(svc: &EngineService, query: &str) {
    assert_ws_refused(ws_connect(svc, query).await, query);
}

/// Opens a WebSocket session of `eio` and checks its OPEN frame.
pub async fn ws_open(svc: &EngineService, eio: Eio) -> Ws {
    let mut ws = ws_connect(svc, &format!("{}&transport=websocket", eio.param()))
        .await
        .unwrap();
    let open = ws_recv_text(&mut ws).await;
    check_open(eio, &open, &[]);
    ws
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
    assert_eq!(ws_recv_text(&mut ws).await, "3probe");
    ws_send(&mut ws, Frame::text("5")).await;
    settle().await;
    (session, ws)
}
