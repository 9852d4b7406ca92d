//! The engine's WebSocket read path (`socketlet-engine`: hyper's upgrade, tungstenite's frame
//! reader, the session's task), fed what a client writes on its side of the connection.
//!
//! Each run starts an echo `Engine` on a current-thread tokio runtime with a paused clock (its
//! timers cost no real time), served by hyper over an in-memory pipe. The target does the
//! client's part: a real WebSocket handshake (written as bytes, the 101 checked), then the fuzz
//! bytes as the stream (masked frames, fragments, control frames, garbage), while it reads all
//! the server writes.
//!
//! Input: the first byte chooses the setting (bit 0: Engine.IO v4, else v3; bit 1: the
//! WebSocket upgrades a polling session, whose sid it carries, else it opens one; bit 2: the
//! bytes go in the same write as the HTTP request, else after the 101; bit 3: the client then
//! shuts its side, else it stays open and goes quiet; bits 4-5: the write size, all at once or
//! 3, 17 or 200 bytes at a time; bits 6-7: `maxPayload`, 64, 1,000, 100,000 or 1,000,000
//! bytes). The rest is the byte stream.
//!
//! Beyond "no panic" (a panic on any of the engine's tasks aborts):
//! - the session ends: the server closes the connection within a minute of virtual time of
//!   the last byte, and the engine's session table is empty again;
//! - the handler sees one open, then messages, then one close, nothing after it; no message is
//!   larger than `maxPayload`;
//! - what the server writes is a well-formed WebSocket stream: unmasked frames, no reserved
//!   bits, known opcodes, control frames final and at most 125 bytes, no data frame nor second
//!   close after a close frame, no frame cut short; every message is an Engine.IO packet of
//!   the session's version (text: UTF-8 and decodes; binary: decodes as a binary frame), the
//!   first one, on a WebSocket that opened the session, being its OPEN packet;
//! - the server writes no more than a bounded amount for what it read (2 bytes per byte plus
//!   4 KiB): echoing and answering pings never amplify;
//! - control frames change nothing: when the client's bytes are a clean run of masked frames,
//!   a polling session whose WebSocket starts with `2probe` then `5` (pings and pongs
//!   anywhere) is upgraded, and every message of the leading run of valid MESSAGE packets (as
//!   many as come before anything else, each within `maxPayload`) reaches the handler.

#![no_main]

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use libfuzzer_sys::fuzz_target;
use socketlet_engine::proto::{Packet, ProtocolVersion, Str};
use socketlet_engine::{
    CloseReason, Engine, EngineConfig, EngineHandler, EngineService, Message, Socket,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_service::Service;

/// How long, in virtual time, the session may take to end once the client wrote everything.
const PATIENCE: Duration = Duration::from_secs(60);

/// What the handler saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Open,
    Message(usize),
    Upgrade,
    Close(CloseReason),
}

/// Echoes every message, and records what happened.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
}

impl Recorder {
    fn push(&self, s: Seen) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl EngineHandler for Recorder {
    fn on_open(&self, _socket: &Arc<Socket>) {
        self.push(Seen::Open);
    }

    fn on_message(&self, socket: &Arc<Socket>, msg: Message) {
        let len = match &msg {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
        };
        self.push(Seen::Message(len));
        let _ = socket.send(msg);
    }

    fn on_close(&self, _socket: &Arc<Socket>, reason: CloseReason) {
        self.push(Seen::Close(reason));
    }

    fn on_upgrade(&self, _socket: &Arc<Socket>) {
        self.push(Seen::Upgrade);
    }
}

/// The setting chosen by the first byte.
#[derive(Debug, Clone, Copy)]
struct Setting {
    version: ProtocolVersion,
    upgrade: bool,
    with_request: bool,
    shutdown: bool,
    chunk: usize,
    max_payload: u64,
}

impl Setting {
    fn from_byte(b: u8) -> Setting {
        Setting {
            version: if b & 1 == 1 {
                ProtocolVersion::V4
            } else {
                ProtocolVersion::V3
            },
            upgrade: b & 2 != 0,
            with_request: b & 4 != 0,
            shutdown: b & 8 != 0,
            chunk: [usize::MAX, 3, 17, 200][usize::from((b >> 4) & 3)],
            max_payload: [64, 1_000, 100_000, 1_000_000][usize::from(b >> 6)],
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let setting = Setting::from_byte(first);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(run(setting, stream));
});

async fn run(setting: Setting, stream: &[u8]) {
    let recorder = Arc::new(Recorder::default());
    let config = EngineConfig::default()
        .with_ping_interval(Duration::from_millis(300))
        .with_ping_timeout(Duration::from_millis(200))
        .with_upgrade_timeout(Duration::from_millis(500))
        .with_max_payload(setting.max_payload)
        .with_allow_eio3(true);
    let engine = Engine::new(config, recorder.clone());
    let svc = EngineService::new(engine.clone());
    let eio = setting.version.as_u8();

    let mut query = format!("EIO={eio}&transport=websocket");
    if setting.upgrade {
        query.push_str("&sid=");
        query.push_str(&polling_handshake(&svc, eio).await);
    }

    let (client, server) = tokio::io::duplex(64 * 1024);
    let hyper_svc = hyper::service::service_fn(move |req| {
        let mut svc = svc.clone();
        Service::call(&mut svc, req)
    });
    tokio::spawn(async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server), hyper_svc)
            .with_upgrades()
            .await;
    });
    let (mut rd, mut wr) = tokio::io::split(client);

    let mut request = format!(
        "GET /engine.io/?{query} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .into_bytes();
    let mut rest = stream;
    if setting.with_request {
        request.extend_from_slice(stream);
        rest = &[];
    }
    // The whole exchange, from the request to the end of the session, in virtual time.
    let exchange = async {
        wr.write_all(&request)
            .await
            .expect("the request is written");
        let mut output = read_head(&mut rd).await;
        let reader = async move {
            // Until the server closes the connection.
            let _ = rd.read_to_end(&mut output).await;
            output
        };
        let writer = async move {
            for chunk in rest.chunks(setting.chunk.min(rest.len().max(1))) {
                if wr.write_all(chunk).await.is_err() {
                    // The server closed the connection: the rest goes nowhere.
                    return wr;
                }
                tokio::task::yield_now().await;
            }
            if setting.shutdown {
                let _ = wr.shutdown().await;
            }
            // Kept open (not dropped) otherwise, until the server is done.
            wr
        };
        let (output, _wr) = tokio::join!(reader, writer);
        output
    };
    let output = match tokio::time::timeout(PATIENCE, exchange).await {
        Ok(output) => output,
        Err(_) => panic!("the server did not close the connection within {PATIENCE:?}"),
    };

    // The session ends, and leaves the table.
    let mut waited = Duration::ZERO;
    while engine.session_count() > 0 || !matches!(recorder.seen().last(), Some(Seen::Close(_))) {
        assert!(
            waited < PATIENCE,
            "the session is still there {PATIENCE:?} after the connection ended: {:?}",
            recorder.seen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }

    let seen = recorder.seen();
    check_handler(&seen, setting);
    check_output(&output, setting, stream.len());
    if let Some(messages) = client_messages(stream) {
        check_model(&messages, &seen, setting);
    }
}

/// Opens a polling session through the engine's service; its sid.
async fn polling_handshake(svc: &EngineService, eio: u8) -> String {
    let req = http::Request::get(format!("/engine.io/?EIO={eio}&transport=polling"))
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .expect("a request");
    let mut svc = svc.clone();
    let Ok(res) = Service::call(&mut svc, req).await;
    assert_eq!(res.status(), http::StatusCode::OK, "polling handshake");
    let body = res
        .into_body()
        .collect()
        .await
        .expect("the handshake's body")
        .to_bytes();
    let text = std::str::from_utf8(&body).expect("a text handshake");
    let start = text.find(r#""sid":""#).expect("a sid") + r#""sid":""#.len();
    let len = text[start..].find('"').expect("the sid's end");
    text[start..start + len].to_owned()
}

/// Reads the server's answer to the upgrade request up to the end of its head, which must be
/// a 101 with the right accept key; returns what was read past the head.
async fn read_head(rd: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = rd.read(&mut chunk).await.expect("the answer is read");
        assert!(n > 0, "the connection ended before the 101: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 101 "),
        "the upgrade was refused: {head}"
    );
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    buf.split_off(end)
}

/// One open, then messages (and an upgrade, for a polling session), then one close.
fn check_handler(seen: &[Seen], setting: Setting) {
    assert_eq!(seen.first(), Some(&Seen::Open), "{seen:?}");
    assert!(matches!(seen.last(), Some(Seen::Close(_))), "{seen:?}");
    let middle = &seen[1..seen.len() - 1];
    let upgrades = middle.iter().filter(|s| **s == Seen::Upgrade).count();
    assert!(upgrades <= usize::from(setting.upgrade), "{seen:?}");
    for s in middle {
        match s {
            Seen::Message(len) => assert!(
                *len as u64 <= setting.max_payload,
                "a message of {len} bytes, over maxPayload {}",
                setting.max_payload
            ),
            Seen::Upgrade => {}
            other => panic!("{other:?} in the middle of a session: {seen:?}"),
        }
    }
}

/// The server's side of the connection (after the 101), checked frame by frame.
fn check_output(output: &[u8], setting: Setting, written: usize) {
    assert!(
        output.len() <= 2 * written + 4096,
        "{} bytes written for {written} read",
        output.len()
    );
    let mut pos = 0;
    let mut closed = false;
    // The message being assembled from fragments: its opcode and bytes so far.
    let mut message: Option<(u8, Vec<u8>)> = None;
    let mut messages = 0usize;
    while pos < output.len() {
        let (frame, len) = parse_frame(&output[pos..])
            .unwrap_or_else(|| panic!("a frame cut short: {:?}", &output[pos..]));
        pos += len;
        let Frame {
            fin,
            opcode,
            payload,
        } = frame;
        // RFC 6455 5.5.1: no data frame after a close frame (tungstenite may still send the
        // pong it owed), and one close frame only.
        assert!(
            !closed || opcode == 0x9 || opcode == 0xA,
            "opcode {opcode:#x} after the close frame"
        );
        match opcode {
            0x8..=0xA => {
                assert!(fin, "a fragmented control frame");
                assert!(payload.len() <= 125, "a control frame of {}", payload.len());
                if opcode == 0x8 {
                    assert!(payload.len() != 1, "a close frame with half a code");
                    closed = true;
                }
            }
            0x1 | 0x2 => {
                assert!(message.is_none(), "a new message inside a fragmented one");
                if fin {
                    check_message(opcode, payload, messages, setting);
                    messages += 1;
                } else {
                    message = Some((opcode, payload.to_vec()));
                }
            }
            0x0 => {
                let (op, mut bytes) = message.take().expect("a continuation of nothing");
                bytes.extend_from_slice(payload);
                if fin {
                    check_message(op, &bytes, messages, setting);
                    messages += 1;
                } else {
                    message = Some((op, bytes));
                }
            }
            other => panic!("opcode {other:#x} from the server"),
        }
    }
}

struct Frame<'a> {
    fin: bool,
    opcode: u8,
    payload: &'a [u8],
}

/// One server frame at the start of `buf` and its length; `None` when incomplete.
fn parse_frame(buf: &[u8]) -> Option<(Frame<'_>, usize)> {
    let (&b0, rest) = buf.split_first()?;
    let (&b1, mut rest) = rest.split_first()?;
    assert_eq!(b0 & 0x70, 0, "reserved bits set by the server");
    assert_eq!(b1 & 0x80, 0, "a masked frame from the server");
    let mut header = 2;
    let len = match b1 & 0x7f {
        126 => {
            let (n, r) = rest.split_first_chunk::<2>()?;
            rest = r;
            header += 2;
            let n = u16::from_be_bytes(*n) as usize;
            assert!(n >= 126, "a length not in its shortest form");
            n
        }
        127 => {
            let (n, r) = rest.split_first_chunk::<8>()?;
            rest = r;
            header += 8;
            let n = u64::from_be_bytes(*n);
            assert!(n > u64::from(u16::MAX), "a length not in its shortest form");
            usize::try_from(n).ok()?
        }
        n => usize::from(n),
    };
    let payload = rest.get(..len)?;
    let frame = Frame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload,
    };
    Some((frame, header + len))
}

/// A whole message from the server: an Engine.IO packet of the session's version.
fn check_message(opcode: u8, bytes: &[u8], index: usize, setting: Setting) {
    let version = setting.version;
    let packet = if opcode == 0x1 {
        let text = Str::from_utf8(Bytes::copy_from_slice(bytes))
            .unwrap_or_else(|_| panic!("a text message that is not UTF-8: {bytes:?}"));
        Packet::decode_text(version, text)
            .unwrap_or_else(|e| panic!("the server sent {bytes:?}: {e}"))
    } else {
        Packet::decode_binary(version, Bytes::copy_from_slice(bytes))
            .unwrap_or_else(|e| panic!("the server sent binary {bytes:?}: {e}"))
    };
    if index == 0 && !setting.upgrade {
        assert!(
            matches!(packet, Packet::Open(_)),
            "the first message is {packet:?}, not OPEN"
        );
    }
}

/// A whole data message from the client.
#[derive(Debug)]
enum ClientMessage {
    Text(String),
    Binary(Vec<u8>),
}

/// The client's data messages, up to its close frame (or the end), when `stream` is a clean
/// run of valid masked frames (pings and pongs dropped, fragments joined); `None` otherwise.
fn client_messages(stream: &[u8]) -> Option<Vec<ClientMessage>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut partial: Option<(u8, Vec<u8>)> = None;
    while pos < stream.len() {
        let rest = &stream[pos..];
        let (&b0, r) = rest.split_first()?;
        let (&b1, mut r) = r.split_first()?;
        if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
            return None;
        }
        let mut header = 2;
        let len = match b1 & 0x7f {
            126 => {
                let (n, rr) = r.split_first_chunk::<2>()?;
                r = rr;
                header += 2;
                usize::from(u16::from_be_bytes(*n))
            }
            127 => {
                let (n, rr) = r.split_first_chunk::<8>()?;
                r = rr;
                header += 8;
                usize::try_from(u64::from_be_bytes(*n)).ok()?
            }
            n => usize::from(n),
        };
        let (mask, r) = r.split_first_chunk::<4>()?;
        let payload: Vec<u8> = r
            .get(..len)?
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        pos += header + 4 + len;
        let fin = b0 & 0x80 != 0;
        match b0 & 0x0f {
            0x8 => break,
            0x9 | 0xA if fin && len <= 125 => {}
            op @ (0x1 | 0x2) if partial.is_none() => {
                if fin {
                    out.push(message(op, payload)?);
                } else {
                    partial = Some((op, payload));
                }
            }
            0x0 => {
                let (op, mut bytes) = partial.take()?;
                bytes.extend_from_slice(&payload);
                if fin {
                    out.push(message(op, bytes)?);
                } else {
                    partial = Some((op, bytes));
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

fn message(opcode: u8, bytes: Vec<u8>) -> Option<ClientMessage> {
    Some(if opcode == 0x1 {
        ClientMessage::Text(String::from_utf8(bytes).ok()?)
    } else {
        ClientMessage::Binary(bytes)
    })
}

/// What the handler must have seen for the client's messages (see the module docs).
fn check_model(messages: &[ClientMessage], seen: &[Seen], setting: Setting) {
    let mut messages = messages;
    if setting.upgrade {
        match messages {
            [ClientMessage::Text(probe), ClientMessage::Text(upgrade), rest @ ..]
                if probe == "2probe" && upgrade == "5" =>
            {
                assert!(
                    seen.contains(&Seen::Upgrade),
                    "a clean probe did not upgrade: {messages:?}, {seen:?}"
                );
                messages = rest;
            }
            _ => return,
        }
    }
    let max = usize::try_from(setting.max_payload).unwrap_or(usize::MAX);
    let valid = messages
        .iter()
        .take_while(|m| match m {
            ClientMessage::Text(t) => t.starts_with('4') && t.len() <= max,
            ClientMessage::Binary(b) => {
                b.len() <= max && (setting.version == ProtocolVersion::V4 || b.first() == Some(&4))
            }
        })
        .count();
    let delivered = seen
        .iter()
        .filter(|s| matches!(s, Seen::Message(_)))
        .count();
    assert!(
        delivered >= valid,
        "{valid} valid messages, {delivered} delivered: {messages:?}, {seen:?}"
    );
}
