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

/// A GET with `Accept-Encoding` (read before the GET parks: the request is not kept) gets a
/// large payload compressed, a parked one too; without it, or with the threshold off, plain.
#[tokio::test]
async fn large_polling_payloads_are_compressed_as_the_client_accepts() {
    use std::io::Read;
    async fn get(
        svc: &EngineService,
        uri: &str,
        accept: Option<&str>,
    ) -> (Option<String>, Vec<u8>) {
        let mut req = Request::builder().method(Method::GET).uri(uri);
        if let Some(accept) = accept {
            req = req.header("accept-encoding", accept);
        }
        let req = req.body(Full::new(Bytes::new())).unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        let encoding = res
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        (encoding, body)
    }
    let big = "x".repeat(4000);
    for (threshold, accept, expect) in [
        (Some(1024), Some("gzip, deflate"), Some("gzip")),
        (Some(1024), Some("gzip;q=0, deflate"), Some("deflate")),
        (Some(1024), None, None),
        (None, Some("gzip"), None),
    ] {
        let mut config = EngineConfig::default();
        config.compression_threshold = threshold;
        let engine = Engine::new(config, Arc::new(Echo::default()));
        let svc = EngineService::new(engine.clone());
        let (_, open) = get(&svc, "/engine.io/?EIO=4&transport=polling", None).await;
        let open = String::from_utf8(open).unwrap();
        let sid = open.split("\"sid\":\"").nth(1).unwrap()[..20].to_owned();
        let url = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
        // The GET parks first; the large message comes while it waits.
        let parked = tokio::spawn({
            let (svc, url) = (svc.clone(), url.clone());
            async move { get(&svc, &url, accept).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let post = format!("4{big}");
        let post: &'static str = Box::leak(post.into_boxed_str());
        let (status, _) = call(&svc, Method::POST, &url, post).await;
        assert_eq!(status, 200);
        let (encoding, body) = parked.await.unwrap();
        assert_eq!(encoding.as_deref(), expect, "{threshold:?} {accept:?}");
        let mut text = String::new();
        match encoding.as_deref() {
            Some("gzip") => flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text),
            Some("deflate") => flate2::read::ZlibDecoder::new(&body[..]).read_to_string(&mut text),
            _ => (&body[..]).read_to_string(&mut text),
        }
        .unwrap();
        assert_eq!(text, format!("4{big}"));
    }
}
