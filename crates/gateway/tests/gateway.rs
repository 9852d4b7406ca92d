//! The gateway in process: the server API through its tower service, and the hooks against a
//! backend stand-in (a real HTTP server on 127.0.0.1 whose answers each test scripts; the
//! end-to-end tests use a real Python backend). Clients are socketlet's in-process polling
//! clients.
#![allow(clippy::unwrap_used)]

#[path = "../../socketlet/tests/common/mod.rs"]
mod common;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use socketlet::SocketIo;
use socketlet_gateway::{sign, Gateway, GatewayConfig, HookConfig};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "test key";

/// One request the backend got: its path, JSON body and headers.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    body: Value,
    headers: http::HeaderMap,
}

/// What the backend answers to a request: a status, a JSON body, after a delay.
type Script = Arc<dyn Fn(&Seen) -> (u16, Value, Duration) + Send + Sync>;

/// A backend stand-in on 127.0.0.1: answers as `script` says and records every request.
struct Backend {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    async fn start(
        script: impl Fn(&Seen) -> (u16, Value, Duration) + Send + Sync + 'static,
    ) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Script = Arc::new(script);
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, script) = (log.clone(), script.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (log, script) = (log.clone(), script.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let seen = Seen {
                                path: parts.uri.path().to_owned(),
                                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                                headers: parts.headers,
                            };
                            log.lock().unwrap().push(seen.clone());
                            let (status, answer, delay) = script(&seen);
                            tokio::time::sleep(delay).await;
                            let mut res = http::Response::new(Full::new(Bytes::from(
                                if answer == Value::Null {
                                    "not json".to_owned()
                                } else {
                                    answer.to_string()
                                },
                            )));
                            *res.status_mut() = StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(res)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Backend { url, seen }
    }

    fn uri(&self, path: &str) -> Option<http::Uri> {
        Some(format!("{}{path}", self.url).parse().unwrap())
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

/// A server with the gateway (`hooks`) on every namespace, and the API.
fn server(hooks: HookConfig) -> (SocketIo, Gateway) {
    server_with(
        GatewayConfig::default()
            .with_api_keys([KEY])
            .with_hooks(hooks),
    )
}

/// A server with a gateway of this configuration, attached to every namespace.
fn server_with(config: GatewayConfig) -> (SocketIo, Gateway) {
    let io = SocketIo::builder()
        .engine(|e| e.with_allowed_hosts(socketlet::AllowedHosts::Any))
        .build();
    let gateway = Gateway::new(&io, config);
    gateway.attach_all();
    (io, gateway)
}

/// A request to the gateway's API service (in front of a 404).
async fn send(gateway: &Gateway, req: Request<Full<Bytes>>) -> Reply {
    exchange(gateway.api_service(socketlet::NotFound), req).await
}

/// An API call: status and JSON answer.
async fn api(gateway: &Gateway, method: &str, key: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/{method}"));
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let res = send(gateway, req).await;
    let answer = serde_json::from_slice(&res.body).unwrap_or(Value::Null);
    (res.status.as_u16(), answer)
}

/// A client connected to `/` whose connect hook let it in (or with no connect hook).
async fn connected(io: &SocketIo) -> (Polling, String) {
    let client = Polling::open(io).await;
    let (id, _) = client.connect(None).await;
    (client, id)
}

fn accept_all(_: &Seen) -> (u16, Value, Duration) {
    (
        200,
        json!({"result": {"user": "42", "rooms": ["user:42"], "data": {"plan": "pro"}}}),
        Duration::ZERO,
    )
}

// ---- the server API ----

#[tokio::test]
async fn the_api_makes_few_namespaces() {
    let (io, gateway) = server_with(
        GatewayConfig::default()
            .with_api_keys([KEY])
            .with_api_max_new_namespaces(2),
    );
    for n in 0..2 {
        let body = format!(r#"{{"event":"x","nsp":"/n{n}"}}"#);
        assert_eq!(api(&gateway, "emit", Some(KEY), &body).await.0, 200);
    }
    // Known ones still work; a third new one does not.
    let (status, _) = api(&gateway, "emit", Some(KEY), r#"{"event":"x","nsp":"/n1"}"#).await;
    assert_eq!(status, 200);
    let (status, body) = api(&gateway, "emit", Some(KEY), r#"{"event":"x","nsp":"/n2"}"#).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_namespace"))
    );
    assert_eq!(io.namespace_names().len(), 3, "{:?}", io.namespace_names());
    // A namespace a client made is not the API's: it counts for nothing.
    let client = Polling::open(&io).await;
    client.send("40/client,").await;
    assert!(client.recv_one().await.starts_with("40/client,"));
    let (status, _) = api(
        &gateway,
        "emit",
        Some(KEY),
        r#"{"event":"x","nsp":"/client"}"#,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_api_needs_its_key_and_says_what_is_wrong() {
    let (_io, gateway) = server(HookConfig::default());
    let (status, body) = api(&gateway, "emit", None, r#"{"event":"x"}"#).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = api(&gateway, "emit", Some("wrong"), r#"{"event":"x"}"#).await;
    assert_eq!(status, 401);
    let (status, body) = api(&gateway, "emit", Some(KEY), "{not json").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, body) = api(&gateway, "emit", Some(KEY), r#"{"event":"x","evnet":"y"}"#).await;
    assert_eq!(status, 400, "unknown fields are errors");
    assert!(body["error"]["message"].as_str().unwrap().contains("evnet"));
    let (status, _) = api(&gateway, "nope", Some(KEY), "{}").await;
    assert_eq!(status, 404);
    let (status, body) = api(&gateway, "emit", Some(KEY), r#"{"event":"x","nsp":"/x"}"#).await;
    assert_eq!(status, 200, "dynamic namespaces exist: {body}");
    // serde would read an array by position: only objects are bodies.
    let (status, body) = api(&gateway, "rooms", Some(KEY), r#"["/x"]"#).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, body) = api(
        &gateway,
        "emit",
        Some(KEY),
        r#"{"event":"x","ack_timeout_ms":1000000000000}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["message"], "ack_timeout_ms is at most 60000");
    let (status, body) = api(
        &gateway,
        "emit",
        Some(KEY),
        r#"{"event":"x","args":[{"_placeholder":true,"num":3}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "a placeholder names attachment 3, and there are 0"
    );
    let big = format!(r#"{{"event":"x","args":["{}"]}}"#, "a".repeat(1_100_000));
    let (status, body) = api(&gateway, "emit", Some(KEY), &big).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    // GET and the OpenAPI document.
    let req = Request::get("/api/openapi.json")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send(&gateway, req).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["openapi"], "3.0.3");
    // Without keys, the API is not there at all.
    let io = SocketIo::new();
    let off = Gateway::new(&io, GatewayConfig::default());
    let req = Request::post("/api/emit")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&off, req).await.status, 404);
}

#[tokio::test(start_paused = true)]
async fn the_api_emits_manages_rooms_and_lists_sockets() {
    let (io, gateway) = server(HookConfig::default());
    let (a, a_id) = connected(&io).await;
    let (b, b_id) = connected(&io).await;

    let (status, _) = api(
        &gateway,
        "sockets_join",
        Some(KEY),
        &format!(r#"{{"sids":["{a_id}"],"join":["vip"]}}"#),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = api(
        &gateway,
        "emit",
        Some(KEY),
        r#"{"rooms":["vip"],"event":"news","args":[{"file":{"_placeholder":true,"num":0}}],"binary":["AQID"]}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        a.recv().await,
        [
            r#"451-["news",{"file":{"_placeholder":true,"num":0}}]"#,
            "bAQID"
        ]
    );

    let (status, rooms) = api(&gateway, "rooms", Some(KEY), "{}").await;
    assert_eq!(
        (status, rooms),
        (200, json!([{"room": "vip", "sockets": 1}]))
    );

    let (status, sockets) = api(&gateway, "fetch_sockets", Some(KEY), r#"{"rooms":["vip"]}"#).await;
    assert_eq!(status, 200);
    assert_eq!(sockets.as_array().unwrap().len(), 1);
    assert_eq!(sockets[0]["id"], a_id);
    assert!(sockets[0]["handshake"]["time"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    let (status, _) = api(
        &gateway,
        "sockets_leave",
        Some(KEY),
        r#"{"rooms":["vip"],"leave":["vip"]}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (_, rooms) = api(&gateway, "rooms", Some(KEY), "{}").await;
    assert_eq!(rooms, json!([]));

    // A batch: one answer per command, in order, errors included.
    let (status, answers) = api(
        &gateway,
        "batch",
        Some(KEY),
        &format!(r#"{{"commands":[{{"emit":{{"sids":["{b_id}"],"event":"one"}}}},{{"nope":{{}}}},{{"disconnect_sockets":{{"sids":["{b_id}"]}}}}]}}"#),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answers[0], json!({"result": {}}));
    assert_eq!(answers[1]["error"]["code"], "not_found");
    assert_eq!(answers[2], json!({"result": {}}));
    assert_eq!(b.recv().await, [r#"42["one"]"#, "41"]);
}

#[tokio::test(start_paused = true)]
async fn an_emit_with_acks_answers_with_them_and_names_the_silent() {
    let (io, gateway) = server(HookConfig::default());
    let (a, a_id) = connected(&io).await;
    let (b, b_id) = connected(&io).await;
    let gw = gateway.clone();
    let asking = tokio::spawn(async move {
        api(
            &gw,
            "emit",
            Some(KEY),
            r#"{"event":"q","args":[1],"ack_timeout_ms":2000}"#,
        )
        .await
    });
    let (id, _) = event_with_id(&a.recv_one().await);
    a.send(&format!(r#"43{id}["yes"]"#)).await;
    let _ = b.recv_one().await;
    let (status, answer) = within("the acks", asking).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        answer["acks"],
        json!([{"id": a_id, "args": ["yes"], "binary": []}])
    );
    assert_eq!(answer["missing"], json!([b_id]));
    assert_eq!(answer["missing_remote"], 0);
    assert_eq!(answer["cluster_error"], Value::Null);
}

// ---- the hooks ----

#[tokio::test]
async fn the_connect_hook_admits_with_user_rooms_and_data() {
    let backend = Backend::start(accept_all).await;
    let hooks = HookConfig::default()
        .with_connect(backend.uri("/connect"))
        .with_secret(Some("s3cret".into()))
        .with_forward_cookie(true);
    let (io, gateway) = server(hooks);
    // The browser sends its cookies with the handshake, which the socket keeps.
    let req = request(
        Method::GET,
        "EIO=4&transport=polling",
        &[("cookie", "sessionid=abc"), ("x-other", "hidden")],
        "",
    );
    let open = call(&io, req).await;
    let sid = open_json(open.text())["sid"].as_str().unwrap().to_owned();
    let client = Polling {
        io: io.clone(),
        eio: 4,
        sid,
        open: Value::Null,
    };
    client.send(r#"40{"token":"t"}"#).await;
    let packets = client.recv().await;
    let id = connect_sid(&packets[0]);
    let (_, sockets) = api(
        &gateway,
        "fetch_sockets",
        Some(KEY),
        r#"{"rooms":["user:42"]}"#,
    )
    .await;
    assert_eq!(sockets[0]["id"], id);
    assert_eq!(sockets[0]["user"], "42");
    assert_eq!(sockets[0]["data"], json!({"plan": "pro"}));

    let seen = backend.seen("/connect");
    assert_eq!(seen.len(), 1);
    let body = &seen[0].body;
    assert_eq!(body["sid"], id);
    assert_eq!(body["nsp"], "/");
    assert_eq!(body["auth"], json!({"token": "t"}));
    assert_eq!(body["protocol"], 5);
    assert_eq!(body["transport"], "polling");
    // The cookie, when configured; headers not allowed never.
    assert_eq!(body["headers"]["cookie"], "sessionid=abc");
    assert!(body["headers"].get("x-other").is_none());
    // Signed: the backend can tell the request came from socketlet.
    let ts: u64 = seen[0].headers["x-socketlet-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let raw = serde_json::to_vec(body).unwrap();
    assert_eq!(
        seen[0].headers["x-socketlet-signature"].to_str().unwrap(),
        sign(b"s3cret", ts, &raw)
    );
}

#[tokio::test]
async fn the_connect_hook_refuses_and_a_failing_backend_refuses_with_a_generic_message() {
    let backend = Backend::start(|seen: &Seen| match seen.body["auth"]["token"].as_str() {
        Some("refuse") => (
            200,
            json!({"error": {"message": "not logged in", "data": {"login": "/login"}}}),
            Duration::ZERO,
        ),
        Some("slow") => (200, json!({"result": {}}), Duration::from_secs(3)),
        Some("crash") => (
            500,
            json!({"error": "Traceback (most recent call last): secret"}),
            Duration::ZERO,
        ),
        Some("garbage") => (200, Value::Null, Duration::ZERO),
        _ => (200, json!({"result": {}}), Duration::ZERO),
    })
    .await;
    let calls: Arc<Mutex<Vec<(String, String, Duration)>>> = Arc::default();
    let log = calls.clone();
    let hooks = HookConfig::default()
        .with_connect(backend.uri("/connect"))
        .with_timeout(Duration::from_millis(500))
        .with_observer(move |hook, outcome, took| {
            log.lock()
                .unwrap()
                .push((hook.into(), outcome.into(), took));
        });
    let (io, _gateway) = server(hooks);
    let attempt = |token: &'static str| {
        let io = io.clone();
        async move {
            let client = Polling::open(&io).await;
            client.send(&format!(r#"40{{"token":"{token}"}}"#)).await;
            client.recv_one().await
        }
    };
    assert_eq!(
        attempt("refuse").await,
        r#"44{"message":"not logged in","data":{"login":"/login"}}"#
    );
    for token in ["slow", "crash", "garbage"] {
        assert_eq!(
            attempt(token).await,
            r#"44{"message":"server error"}"#,
            "{token}"
        );
    }
    assert!(attempt("ok").await.starts_with("40{"));
    // The observer heard of every call: a refusal is an answer ("ok"), the others failed.
    let outcomes: Vec<(String, String)> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|(hook, outcome, _)| (hook.clone(), outcome.clone()))
        .collect();
    let expected = [
        ("connect", "ok"),
        ("connect", "timeout"),
        ("connect", "status"),
        ("connect", "bad_answer"),
        ("connect", "ok"),
    ];
    assert_eq!(
        outcomes,
        expected.map(|(h, o)| (h.to_owned(), o.to_owned())).to_vec()
    );
    let slow = calls.lock().unwrap()[1].2;
    assert!(slow >= Duration::from_millis(450), "{slow:?}");
    // Nobody listening at all.
    let hooks = HookConfig::default()
        .with_connect(Some("http://127.0.0.1:9/connect".parse().unwrap()))
        .with_timeout(Duration::from_millis(500));
    let (io, _gateway) = server(hooks);
    let client = Polling::open(&io).await;
    client.send("40").await;
    assert_eq!(client.recv_one().await, r#"44{"message":"server error"}"#);
}

#[tokio::test]
async fn events_go_to_the_backend_in_order_and_its_answer_is_the_ack() {
    let backend = Backend::start(|seen: &Seen| {
        let event = seen.body["event"].as_str().unwrap_or_default().to_owned();
        match (seen.path.as_str(), event.as_str()) {
            ("/connect", _) => accept_all(seen),
            ("/event", "slow") => (200, json!({"result": {"ack": ["slow done"]}}), Duration::from_millis(300)),
            ("/event", "commands") => (200, json!({"result": {
                "join": ["lobby"],
                "emit": [{"event": "welcome", "args": ["to lobby"], "rooms": ["lobby"]},
                         {"event": "direct", "args": [{"_placeholder": true, "num": 0}], "binary": ["AQ=="]}],
                "ack": ["done"],
            }}), Duration::ZERO),
            ("/event", "refuse") => (200, json!({"error": {"message": "no"}}), Duration::ZERO),
            ("/event", "crash") => (500, json!({}), Duration::ZERO),
            ("/event", "bye") => (200, json!({"result": {"disconnect": true}}), Duration::ZERO),
            // Attachments come as base64; an ack may carry them back behind placeholders.
            ("/event", "file") => (200, json!({"result": {
                "ack": [seen.body["binary"].clone(), {"_placeholder": true, "num": 0}],
                "ack_binary": seen.body["binary"].clone(),
            }}), Duration::ZERO),
            _ => (200, json!({"result": {"ack": [seen.body["args"].clone(), seen.body["user"].clone()]}}), Duration::ZERO),
        }
    })
    .await;
    let hooks = HookConfig::default()
        .with_connect(backend.uri("/connect"))
        .with_event(backend.uri("/event"))
        .with_disconnect(backend.uri("/disconnect"));
    let (io, _gateway) = server(hooks);
    let (client, id) = connected(&io).await;
    let (other, _) = connected(&io).await;

    // Order: the slow event is answered first, though the fast one does not wait for the
    // backend of another socket.
    client.send(r#"421["slow"]"#).await;
    client.send(r#"422["echo",1,"two"]"#).await;
    other.send(r#"423["echo","other"]"#).await;
    assert_eq!(other.recv_one().await, r#"433[["other"],"42"]"#);
    let mut acks = client.recv().await;
    if acks.len() < 2 {
        acks.extend(client.recv().await);
    }
    assert_eq!(acks, [r#"431["slow done"]"#, r#"432[[1,"two"],"42"]"#]);

    // Commands, then the ack.
    client.send(r#"424["commands"]"#).await;
    let mut packets = client.recv().await;
    if packets.len() < 4 {
        packets.extend(client.recv().await);
    }
    assert_eq!(
        packets,
        [
            r#"42["welcome","to lobby"]"#,
            r#"451-["direct",{"_placeholder":true,"num":0}]"#,
            "bAQ==",
            r#"434["done"]"#
        ]
    );
    client.send(r#"425["refuse"]"#).await;
    assert_eq!(
        client.recv_one().await,
        r#"435[{"error":{"message":"no"}}]"#
    );
    client.send(r#"426["crash"]"#).await;
    assert_eq!(
        client.recv_one().await,
        r#"436[{"error":{"message":"server error"}}]"#
    );

    // The event's request carries the binary attachments, base64, behind their placeholders.
    client
        .send("451-7[\"file\",{\"_placeholder\":true,\"num\":0}]\u{1e}bAQI=")
        .await;
    assert_eq!(
        client.recv().await,
        [r#"461-7[["AQI="],{"_placeholder":true,"num":0}]"#, "bAQI="]
    );
    let seen = backend.seen("/event");
    let file = seen.iter().find(|s| s.body["event"] == "file").unwrap();
    assert_eq!(file.body["binary"], json!(["AQI="]));
    assert_eq!(file.body["data"], json!({"plan": "pro"}));

    // The backend disconnects the socket: the disconnect hook hears it once.
    client.send(r#"42["bye"]"#).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.extend(client.recv().await);
        if got.contains(&"41".to_owned()) {
            break;
        }
    }
    assert!(got.contains(&"41".to_owned()), "{got:?}");
    for _ in 0..50 {
        if !backend.seen("/disconnect").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bye = backend.seen("/disconnect");
    assert_eq!(bye.len(), 1);
    assert_eq!(
        bye[0].body,
        json!({"sid": id, "nsp": "/", "user": "42", "reason": "server namespace disconnect"})
    );
}

#[tokio::test]
async fn a_socket_with_too_many_events_waiting_is_refused_and_others_go_on() {
    // The backend answers "hold" after a second; every other event at once.
    let backend = Backend::start(|seen: &Seen| match seen.body["event"].as_str() {
        Some("hold") => (
            200,
            json!({"result": {"ack": ["held"]}}),
            Duration::from_millis(1000),
        ),
        _ => (200, json!({"result": {"ack": ["ok"]}}), Duration::ZERO),
    })
    .await;
    let hooks = HookConfig::default()
        .with_event(backend.uri("/event"))
        .with_max_queued_events(2);
    let (io, _gateway) = server(hooks);
    let (client, _) = connected(&io).await;
    let (other, _) = connected(&io).await;
    // Four events in one request: two fit the socket's queue, the others are refused at once.
    let burst: Vec<String> = (1..=4).map(|i| format!(r#"42{i}["hold"]"#)).collect();
    client.send(&burst.join("\u{1e}")).await;
    let refusal = |id| {
        format!(r#"43{id}[{{"error":{{"message":"too many events waiting for the backend"}}}}]"#)
    };
    assert_eq!(client.recv().await, [refusal(3), refusal(4)]);
    // Another socket is not held up by the first one's backlog.
    other.send(r#"429["quick"]"#).await;
    assert_eq!(other.recv_one().await, r#"439["ok"]"#);
    // The accepted ones are answered in order.
    let mut acks = Vec::new();
    while acks.len() < 2 {
        acks.extend(client.recv().await);
    }
    assert_eq!(acks, [r#"431["held"]"#, r#"432["held"]"#]);
}

#[tokio::test]
async fn a_hook_answering_after_the_client_left_harms_nothing() {
    let backend = Backend::start(|seen: &Seen| match seen.path.as_str() {
        "/event" => (
            200,
            json!({"result": {"ack": ["late"], "join": ["r"], "emit": [{"event": "e", "rooms": ["r"]}]}}),
            Duration::from_millis(500),
        ),
        _ => (200, json!({}), Duration::ZERO),
    })
    .await;
    let hooks = HookConfig::default()
        .with_event(backend.uri("/event"))
        .with_disconnect(backend.uri("/disconnect"));
    let (io, gateway) = server(hooks);
    let (client, _) = connected(&io).await;
    client.send(r#"421["slow"]"#).await;
    // The client leaves while the backend thinks.
    client.send("1").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(backend.seen("/event").len(), 1);
    assert_eq!(backend.seen("/disconnect").len(), 1);
    // Nothing of the late answer stuck: no room was made for a socket that is gone.
    let (_, rooms) = api(&gateway, "rooms", Some(KEY), "{}").await;
    assert_eq!(rooms, json!([]));
    assert_eq!(io.of("/").local().socket_count(), 0);
}

#[tokio::test]
async fn a_namespace_can_have_hooks_of_its_own() {
    let backend = Backend::start(|seen: &Seen| match seen.path.as_str() {
        "/chat-connect" => (
            200,
            json!({"error": {"message": "chat is closed"}}),
            Duration::ZERO,
        ),
        _ => (200, json!({"result": {"user": "any"}}), Duration::ZERO),
    })
    .await;
    let (io, _gateway) = server_with(
        GatewayConfig::default()
            .with_hooks(HookConfig::default().with_connect(backend.uri("/connect")))
            .with_namespace_hooks(
                "/chat",
                HookConfig::default().with_connect(backend.uri("/chat-connect")),
            ),
    );
    let client = Polling::open(&io).await;
    client.send("40").await;
    assert!(client.recv_one().await.starts_with("40{"));
    client.send("40/chat,").await;
    assert_eq!(
        client.recv_one().await,
        r#"44/chat,{"message":"chat is closed"}"#
    );
    client.send("40/other,").await;
    assert!(client.recv_one().await.starts_with("40/other,"));
    let paths: Vec<String> = backend
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(paths, ["/connect", "/chat-connect", "/connect"]);
}
