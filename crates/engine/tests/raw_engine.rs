//! The engine on its own, as a raw Engine.IO server (like Node's `engine.io` package).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use socketlet_engine::{
    CloseReason, Engine, EngineConfig, EngineHandler, EngineService, Message, Socket,
};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

/// Echoes every message and records the close reasons.
#[derive(Default)]
struct Echo {
    closed: Mutex<Vec<CloseReason>>,
}

impl EngineHandler for Echo {
    fn on_open(&self, socket: &Arc<Socket>) {
        let _ = socket.send(Message::Text("hello".to_owned().into()));
    }
    fn on_message(&self, socket: &Arc<Socket>, msg: Message) {
        let _ = socket.send(msg);
    }
    fn on_close(&self, _socket: &Arc<Socket>, reason: CloseReason) {
        self.closed.lock().unwrap().push(reason);
    }
}

async fn call(svc: &EngineService, method: Method, uri: &str, body: &'static str) -> (u16, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn raw_engine_echoes_over_polling_at_its_own_path() {
    let handler = Arc::new(Echo::default());
    let engine = Engine::new(
        EngineConfig::default().with_path("/realtime/"),
        handler.clone(),
    );
    let svc = EngineService::new(engine.clone());

    let (status, _) = call(&svc, Method::GET, "/engine.io/?EIO=4&transport=polling", "").await;
    assert_eq!(status, 404, "only the configured path is the engine's");

    let (status, open) = call(&svc, Method::GET, "/realtime?EIO=4&transport=polling", "").await;
    assert_eq!(status, 200);
    let sid = open.split("\"sid\":\"").nth(1).unwrap()[..20].to_owned();
    assert!(open.starts_with("0{"), "{open}");
    assert!(
        open.ends_with("\u{1e}4hello"),
        "the message sent on open follows: {open}"
    );

    let url = format!("/realtime/?EIO=4&transport=polling&sid={sid}");
    let (status, ok) = call(&svc, Method::POST, &url, "4ping me\u{1e}bAQID").await;
    assert_eq!((status, ok.as_str()), (200, "ok"));
    let (_, echoed) = call(&svc, Method::GET, &url, "").await;
    assert_eq!(
        echoed, "4ping me\u{1e}bAQID",
        "text and binary come back as sent"
    );

    let (_, _) = call(&svc, Method::POST, &url, "1").await;
    assert_eq!(
        *handler.closed.lock().unwrap(),
        vec![CloseReason::ClientClose]
    );
    assert_eq!(engine.session_count(), 0);
}
