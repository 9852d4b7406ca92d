//! Unit tests of the Redis wire formats and of their dispatch (`node.rs`, `classic.rs`,
//! `sharded.rs` and the conversions of `adapter.rs`), over frames that Node really published:
//! `@socket.io/redis-adapter` 8.x in both its classic and its sharded form, and
//! `@socket.io/redis-emitter` 5.x. `tests/fixtures/capture.mjs` captured them (its header says how
//! to capture them again) and `tests/fixtures/frames.json` says what produced each.
//!
//! - Decoding: each of Node's frames, through the crate's decoders, means what Node meant.
//! - Encoding: what this crate publishes for the same operation is Node's frame once both are
//!   decoded (same keys, values and msgpack types; JSON where Node writes JSON in the classic
//!   format), apart from the differences named where they are allowed.
//! - Dispatch: a node that never connects to Redis ([`Node::detached`]) is handed Node's frames
//!   through [`Node::dispatch`]; in-process polling clients see what reaches them, and what the
//!   node answers is compared with Node's answers to the same requests.
//!
//! The tests run on tokio's paused clock: "nothing else reached this client" is checked as "its
//! next GET carries the heartbeat ping", which the clock reaches without waiting.

use crate::adapter::{opts_from, packet_from, packet_mp, socket_from, Wire};
use crate::classic::Classic;
use crate::msgpack;
use crate::node::{decode_json_or_msgpack, Node};
use crate::sharded::Sharded;
use crate::test_support::common::{event_with_id, settle, within, Polling, Reply};
use crate::test_support::{event, fixture, indexed, local, node_broadcasts, opts, placeholder};
use crate::{RedisCluster, RedisConfig, SubscriptionMode};
use bytes::Bytes;
use rmpv::Value as Mp;
use serde_json::{json, Value};
use socketlet::adapter::BroadcastOptions;
use socketlet::socketio_proto::Packet;
use socketlet::{Data, Socket, SocketIo};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

// ---- the fixtures ----

macro_rules! fixture {
    ($name:literal, $ext:literal) => {
        (
            $name,
            include_bytes!(concat!("../tests/fixtures/", $name, ".", $ext)) as &[u8],
        )
    };
}

/// Every captured frame: its name in `frames.json`, and its bytes.
const FIXTURES: &[(&str, &[u8])] = &[
    fixture!("broadcast_all", "msgpack"),
    fixture!("broadcast_room", "msgpack"),
    fixture!("broadcast_except_binary", "msgpack"),
    fixture!("broadcast_ack_request", "msgpack"),
    fixture!("broadcast_client_count", "json"),
    fixture!("broadcast_ack", "msgpack"),
    fixture!("fetch_sockets_request", "json"),
    fixture!("fetch_sockets_response", "json"),
    fixture!("all_rooms_request", "json"),
    fixture!("all_rooms_response", "json"),
    fixture!("sockets_join", "json"),
    fixture!("sockets_leave", "json"),
    fixture!("server_side_emit", "json"),
    fixture!("server_side_emit_ack_request", "json"),
    fixture!("server_side_emit_ack_response", "json"),
    fixture!("disconnect_sockets", "json"),
    fixture!("emitter_emit", "msgpack"),
    fixture!("emitter_emit_room", "msgpack"),
    fixture!("emitter_sockets_join", "json"),
    fixture!("emitter_sockets_leave", "json"),
    fixture!("emitter_disconnect_sockets", "json"),
    fixture!("emitter_server_side_emit", "json"),
    fixture!("sharded_broadcast_all", "json"),
    fixture!("sharded_broadcast_room", "json"),
    fixture!("sharded_broadcast_chat_room", "json"),
    fixture!("sharded_broadcast_except_binary", "msgpack"),
    fixture!("sharded_broadcast_ack_request", "json"),
    fixture!("sharded_broadcast_client_count", "json"),
    fixture!("sharded_broadcast_ack", "msgpack"),
    fixture!("sharded_fetch_sockets_request", "json"),
    fixture!("sharded_fetch_sockets_response", "json"),
    fixture!("sharded_sockets_join", "json"),
    fixture!("sharded_sockets_leave", "json"),
    fixture!("sharded_server_side_emit", "json"),
    fixture!("sharded_server_side_emit_ack_request", "json"),
    fixture!("sharded_server_side_emit_ack_response", "json"),
    fixture!("sharded_disconnect_sockets", "json"),
];

const INDEX: &str = include_str!("../tests/fixtures/frames.json");

fn index() -> Value {
    serde_json::from_str(INDEX).expect("frames.json")
}

/// One captured frame: where Node published it, and what.
struct Frame {
    channel: String,
    payload: &'static [u8],
}

fn frame(name: &str) -> Frame {
    let index = index();
    Frame {
        channel: indexed(&index, name)["channel"]
            .as_str()
            .expect("channel")
            .to_owned(),
        payload: fixture(FIXTURES, name),
    }
}

/// The uid of Node server `who` of the capture: A and B classic, C and D sharded.
fn uid(who: &str) -> String {
    index()["uids"][who].as_str().expect("uid").to_owned()
}

// ---- decoding frames here, without the crate's decoders (the tests' own reading) ----

/// A frame as a JSON-like value: JSON text as it is; msgpack with `bin` values as
/// `{"$bin": [bytes]}`.
fn value_of(payload: &[u8]) -> Value {
    if payload.first() == Some(&b'{') {
        return serde_json::from_slice(payload).expect("a JSON frame");
    }
    let mp = rmpv::decode::read_value(&mut &payload[..]).expect("a msgpack frame");
    mp_value(&mp)
}

fn mp_value(mp: &Mp) -> Value {
    match mp {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => json!(b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => json!(u),
            (None, Some(n)) => json!(n),
            _ => unreachable!("msgpack integers fit u64 or i64"),
        },
        Mp::F32(f) => json!(f),
        Mp::F64(f) => json!(f),
        Mp::String(s) => json!(s.as_str().expect("a UTF-8 string")),
        Mp::Binary(b) => json!({ "$bin": b }),
        Mp::Array(items) => Value::Array(items.iter().map(mp_value).collect()),
        Mp::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().expect("a string key").to_owned(), mp_value(v)))
                .collect(),
        ),
        Mp::Ext(kind, _) => json!({ "$ext": kind }),
    }
}

/// The types a frame is written with: its tree with every scalar replaced by its wire type
/// (`uint`, `int`, `float32`, `float64`, `str`, `bin`, `bool`, `nil`, `ext`), read from the
/// msgpack markers themselves, or from the JSON text (where numbers are `uint`, `int` or
/// `float64` and strings `str`, as notepack would write them).
fn shape_of(payload: &[u8]) -> Value {
    if payload.first() == Some(&b'{') {
        return json_shape(&serde_json::from_slice(payload).expect("a JSON frame"));
    }
    let mut reader = Markers {
        buf: payload,
        at: 0,
    };
    let shape = reader.shape();
    assert_eq!(reader.at, payload.len(), "bytes after the msgpack value");
    shape
}

fn json_shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("nil"),
        Value::Bool(_) => json!("bool"),
        Value::Number(n) if n.is_u64() => json!("uint"),
        Value::Number(n) if n.is_i64() => json!("int"),
        Value::Number(_) => json!("float64"),
        Value::String(_) => json!("str"),
        Value::Array(items) => Value::Array(items.iter().map(json_shape).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), json_shape(v))).collect())
        }
    }
}

/// A reader of msgpack markers (the types as written, which rmpv's values do not keep).
struct Markers<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Markers<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let bytes = &self.buf[self.at..self.at + n];
        self.at += n;
        bytes
    }

    /// A big-endian length of `width` bytes.
    fn len(&mut self, width: usize) -> usize {
        self.take(width)
            .iter()
            .fold(0, |n, b| (n << 8) | usize::from(*b))
    }

    fn shape(&mut self) -> Value {
        let m = self.take(1)[0];
        let kind = match m {
            0x00..=0x7f => "uint",
            0xcc..=0xcf => {
                self.take(1 << (m - 0xcc));
                "uint"
            }
            0xe0..=0xff => "int",
            0xd0..=0xd3 => {
                self.take(1 << (m - 0xd0));
                "int"
            }
            0xc0 => "nil",
            0xc2 | 0xc3 => "bool",
            0xca => {
                self.take(4);
                "float32"
            }
            0xcb => {
                self.take(8);
                "float64"
            }
            0xa0..=0xbf | 0xd9..=0xdb => {
                let n = match m {
                    0xa0..=0xbf => usize::from(m & 0x1f),
                    _ => self.len(1 << (m - 0xd9)),
                };
                self.take(n);
                "str"
            }
            0xc4..=0xc6 => {
                let n = self.len(1 << (m - 0xc4));
                self.take(n);
                "bin"
            }
            0xd4..=0xd8 => {
                self.take(1 + (1 << (m - 0xd4)));
                "ext"
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (m - 0xc7));
                self.take(1 + n);
                "ext"
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                let n = match m {
                    0xdc => self.len(2),
                    0xdd => self.len(4),
                    _ => usize::from(m & 0x0f),
                };
                return Value::Array((0..n).map(|_| self.shape()).collect());
            }
            0x80..=0x8f | 0xde | 0xdf => {
                let n = match m {
                    0xde => self.len(2),
                    0xdf => self.len(4),
                    _ => usize::from(m & 0x0f),
                };
                let mut entries = serde_json::Map::new();
                for _ in 0..n {
                    let key = self.key();
                    entries.insert(key, self.shape());
                }
                return Value::Object(entries);
            }
            0xc1 => panic!("marker 0xc1 is never used"),
        };
        json!(kind)
    }

    /// A map key, which must be a string.
    fn key(&mut self) -> String {
        let m = self.take(1)[0];
        let n = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9..=0xdb => self.len(1 << (m - 0xd9)),
            _ => panic!("a map key that is not a string (marker {m:#04x})"),
        };
        String::from_utf8(self.take(n).to_vec()).expect("a UTF-8 key")
    }
}

/// Asserts that our frame `ours` is Node's `theirs`: the same values and the same wire types,
/// once `adjust` (applied to ours, to its values and to its types alike) took out the
/// differences the caller allows.
#[track_caller]
fn assert_same_frame(what: &str, ours: &[u8], theirs: &[u8], adjust: impl Fn(&mut Value)) {
    let mut mine = value_of(ours);
    adjust(&mut mine);
    assert_eq!(mine, value_of(theirs), "{what}: not the values Node writes");
    let mut mine = shape_of(ours);
    adjust(&mut mine);
    assert_eq!(mine, shape_of(theirs), "{what}: not the types Node writes");
}

/// The classic format's requests and answers are JSON or msgpack, as Node chooses per kind.
#[track_caller]
fn assert_same_encoding(what: &str, ours: &[u8], theirs: &[u8]) {
    assert_eq!(
        ours.first() == Some(&b'{'),
        theirs.first() == Some(&b'{'),
        "{what}: Node writes {}",
        if theirs.first() == Some(&b'{') {
            "JSON"
        } else {
            "msgpack"
        }
    );
}

/// No adjustment.
fn exact(_: &mut Value) {}

/// Our sharded broadcasts carry the namespace in the packet too (Node's do not; Node's readers
/// set it themselves): takes it out of `data.packet`, after checking it.
fn without_packet_nsp(v: &mut Value) {
    let nsp = v["nsp"].clone();
    let packet = v["data"]["packet"].as_object_mut().expect("data.packet");
    let theirs = packet.remove("nsp").expect("our packet's nsp");
    // On a shape tree both are "str"; on values, the message's namespace.
    assert_eq!(theirs, nsp);
}

/// `expected` with each `"<id>"` replaced by what `actual` has at that place, after checking that
/// it is a non-empty string (request ids are random).
fn with_ids(mut expected: Value, actual: &Value) -> Value {
    fn fill(e: &mut Value, a: &Value) {
        match e {
            Value::String(s) if s == "<id>" => {
                let id = a.as_str().expect("an id");
                assert!(!id.is_empty());
                *e = json!(id);
            }
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    fill(v, &a[k.as_str()]);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    fill(v, &a[i]);
                }
            }
            _ => {}
        }
    }
    fill(&mut expected, actual);
    expected
}

/// The packets and options of the broadcasts the capture made (Node's and the emitter's).
fn broadcast_meanings() -> Vec<(&'static str, Packet, BroadcastOptions)> {
    let mut meanings = node_broadcasts();
    meanings.extend([
        (
            "emitter_emit",
            event(
                "/",
                "from-emitter",
                vec![json!("hi"), placeholder(0)],
                vec![Bytes::from_static(&[7, 8, 9])],
            ),
            opts(&[], &[], false),
        ),
        (
            "emitter_emit_room",
            event("/chat", "news", vec![json!({ "n": 1 })], vec![]),
            opts(&["room1"], &["room2"], false),
        ),
    ]);
    meanings
}

// ---- a node without Redis, with in-process clients ----

struct Harness {
    node: Arc<Node>,
    published: mpsc::Receiver<(String, Vec<u8>)>,
    io: SocketIo,
    /// The server-side events `/` received: name and arguments.
    server_side: mpsc::UnboundedReceiver<(String, Vec<Value>)>,
}

/// A server on a detached node with uid `uid`, classic or sharded. Its namespaces `/` and
/// `/chat` give each socket the data of the capture's sockets and put it in the rooms of its
/// CONNECT's `rooms` query parameter (separated by dots); `/` reports its server-side events.
fn harness(uid: &str, sharded: Option<SubscriptionMode>) -> Harness {
    let config = RedisConfig::new("redis://127.0.0.1:1").with_sharded(sharded);
    let (node, published) = Node::detached(config, uid);
    let cluster = RedisCluster {
        node: node.clone(),
        streams: None,
    };
    let io = SocketIo::builder()
        .adapter(cluster.adapter_factory())
        .build();
    for nsp in ["/", "/chat"] {
        io.of(nsp).on_connect(|socket: Socket| async move {
            socket.set_data(json!({ "user": "bob" })).expect("the data");
            if let Some(rooms) = socket.query("rooms") {
                let rooms: Vec<String> = rooms
                    .split('.')
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect();
                socket.join(rooms);
            }
        });
    }
    let (tx, server_side) = mpsc::unbounded_channel();
    io.of("/").on_server_side_emit(move |event, data: Data| {
        let _ = tx.send((event, data.args));
        async {}
    });
    node.attach_detached(&io);
    Harness {
        node,
        published,
        io,
        server_side,
    }
}

impl Harness {
    /// The next message the node published (it must have published one already).
    #[track_caller]
    fn published(&mut self) -> (String, Vec<u8>) {
        self.published.try_recv().expect("a published message")
    }

    /// The next message the node publishes, waiting for it.
    async fn next_published(&mut self) -> (String, Vec<u8>) {
        within("a published message", self.published.recv())
            .await
            .expect("the node's queue")
    }

    #[track_caller]
    fn assert_nothing_published(&mut self) {
        if let Ok((channel, payload)) = self.published.try_recv() {
            panic!("published on {channel}: {:?}", value_of(&payload));
        }
    }

    /// Dispatches `name`, a server-side event: `/`'s handlers get `event` with `args`.
    async fn dispatch_server_side(&mut self, name: &str, event: &str, args: Vec<Value>) {
        self.dispatch(name);
        settle().await;
        assert_eq!(
            self.server_side.try_recv().expect(name),
            (event.to_owned(), args),
            "{name}"
        );
    }

    fn dispatch(&self, name: &str) {
        let f = frame(name);
        self.node.dispatch(&f.channel, f.payload);
    }

    /// The rooms of socket `sid` of `/`, sorted, its own id left out; `None` once it is gone.
    fn rooms_of(&self, sid: &str) -> Option<Vec<String>> {
        let socket = self.io.of("/").get_socket(sid)?;
        let mut rooms: Vec<String> = socket.rooms().into_iter().filter(|r| r != sid).collect();
        rooms.sort();
        Some(rooms)
    }
}

/// A polling client connected to `nsp` in `rooms` (dot-separated), with the auth of the
/// capture's clients; and its socket id.
async fn client(io: &SocketIo, nsp: &str, rooms: &str) -> (Polling, String) {
    let client = within("a handshake", Polling::open(io)).await;
    client
        .send(&format!(r#"40{nsp}?rooms={rooms},{{"token":"t1"}}"#))
        .await;
    let packets = within("the CONNECT", client.recv()).await;
    let (head, json) = parse(&packets[0]);
    assert!(head.starts_with("40"), "{packets:?}");
    let sid = json["sid"].as_str().expect("sid").to_owned();
    // The connection handler joins the rooms.
    settle().await;
    (client, sid)
}

/// An Engine.IO message: the Socket.IO packet's head (type, attachment count, namespace, ack
/// id) and its JSON; a binary attachment (`b` and base64) or a ping as it is, with `null`.
fn parse(message: &str) -> (String, Value) {
    if message.starts_with('b') {
        return (message.to_owned(), Value::Null);
    }
    match message.find(['[', '{']) {
        Some(i) => (
            message[..i].to_owned(),
            serde_json::from_str(&message[i..]).expect("the packet's JSON"),
        ),
        None => (message.to_owned(), Value::Null),
    }
}

fn msg(head: &str, json: Value) -> (String, Value) {
    (head.to_owned(), json)
}

/// What one GET brings `client`.
async fn received(client: &Polling) -> Vec<(String, Value)> {
    let messages = within("a GET", client.recv()).await;
    messages.iter().map(|m| parse(m)).collect()
}

/// A GET parked before a delivery (volatile packets only go to clients ready for them).
async fn parked_get(client: &Polling) -> JoinHandle<Reply> {
    let get = client.spawn_get();
    settle().await;
    get
}

async fn parked_received(client: &Polling, get: JoinHandle<Reply>) -> Vec<(String, Value)> {
    let reply = within("a parked GET", get).await.expect("the GET task");
    client.decode(&reply).iter().map(|m| parse(m)).collect()
}

/// What [`Harness::rooms_of`] says of a socket in these rooms.
fn rooms(names: &[&str]) -> Option<Vec<String>> {
    Some(names.iter().map(|s| (*s).to_owned()).collect())
}

/// Nothing more reached `client`: its next GET carries the heartbeat ping (answered).
async fn assert_nothing_more(client: &Polling) {
    assert_eq!(received(client).await, [msg("2", Value::Null)]);
    client.send("3").await;
}

async fn assert_parked_get_gets_nothing(client: &Polling, get: JoinHandle<Reply>) {
    assert_eq!(parked_received(client, get).await, [msg("2", Value::Null)]);
    client.send("3").await;
}

// ---- the fixtures themselves ----

#[test]
fn every_captured_frame_is_a_fixture_in_the_index() {
    let index = index();
    let indexed: BTreeSet<&str> = index["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["name"].as_str().expect("name"))
        .collect();
    let loaded: BTreeSet<&str> = FIXTURES.iter().map(|(n, _)| *n).collect();
    assert_eq!(indexed, loaded);
    assert_eq!(loaded.len(), FIXTURES.len(), "a fixture is listed twice");
    for f in index["frames"].as_array().expect("frames") {
        let name = f["name"].as_str().expect("name");
        let payload = frame(name).payload;
        let json = f["file"].as_str().expect("file").ends_with(".json");
        assert_eq!(payload.first() == Some(&b'{'), json, "{name}");
        // Every frame is one well-formed value.
        value_of(payload);
        shape_of(payload);
    }
}

/// The tests' own type reader tells the wire types apart (the frame comparisons rely on it).
#[test]
fn the_type_reader_tells_the_wire_types_apart() {
    let value = msgpack::map([
        ("s", Mp::from("x")),
        ("long", Mp::from("y".repeat(40).as_str())),
        ("b", Mp::Binary(vec![1, 2])),
        ("u", Mp::from(300)),
        ("n", Mp::from(-1)),
        ("n2", Mp::from(-200)),
        ("f", Mp::F64(1.5)),
        ("t", Mp::Boolean(true)),
        ("z", Mp::Nil),
        ("a", Mp::Array(vec![Mp::from(1), Mp::F32(0.5)])),
        ("e", Mp::Ext(1, vec![0; 4])),
    ]);
    assert_eq!(
        shape_of(&msgpack::encode(&value)),
        json!({
            "s": "str", "long": "str", "b": "bin", "u": "uint", "n": "int", "n2": "int",
            "f": "float64", "t": "bool", "z": "nil", "a": ["uint", "float32"], "e": "ext",
        })
    );
    assert_eq!(
        shape_of(br#"{"a":1,"b":-1,"c":1.5,"d":"x","e":[null,true]}"#),
        json!({ "a": "uint", "b": "int", "c": "float64", "d": "str", "e": ["nil", "bool"] })
    );
}

// ---- decoding Node's frames ----

/// Node's classic broadcasts, and the emitter's: `[uid, packet, opts]` on `<key>#<nsp>#`, or
/// `<key>#<nsp>#<room>#` for one room.
#[test]
fn node_classic_broadcasts_decode_to_their_packets_and_options() {
    for (name, packet, options) in broadcast_meanings() {
        let f = frame(name);
        let Some(Mp::Array(parts)) = msgpack::decode(f.payload) else {
            panic!("{name}: not a msgpack array");
        };
        let [sender, p, o] = <[Mp; 3]>::try_from(parts).expect("three parts");
        let expected_uid = if name.starts_with("emitter") {
            "emitter".to_owned()
        } else {
            uid("A")
        };
        assert_eq!(sender.as_str(), Some(expected_uid.as_str()), "{name}");
        let mut bins = Vec::new();
        let p = msgpack::to_json(p, &mut bins).expect("packet");
        assert_eq!(packet_from(&p, bins).as_ref(), Some(&packet), "{name}");
        let mut no_bins = Vec::new();
        let o = msgpack::to_json(o, &mut no_bins).expect("options");
        assert!(no_bins.is_empty());
        assert_eq!(opts_from(Some(&o)), local(options.clone()), "{name}");
        let channel = match options.rooms.as_slice() {
            [room] => format!("socket.io#{}#{room}#", packet.nsp),
            _ => format!("socket.io#{}#", packet.nsp),
        };
        assert_eq!(f.channel, channel, "{name}");
    }
}

/// Node's classic requests, and the emitter's, on `<key>-request#<nsp>#`.
#[test]
fn node_classic_requests_decode_to_what_they_ask() {
    let a = uid("A");
    let requests = [
        (
            "broadcast_ack_request",
            json!({
                "uid": a, "requestId": "<id>", "type": 7,
                "packet": { "type": 2, "data": ["question", 42], "nsp": "/" },
                "opts": { "rooms": ["room1"], "except": [], "flags": { "timeout": 1500 } },
            }),
        ),
        (
            "fetch_sockets_request",
            json!({
                "uid": a, "requestId": "<id>", "type": 5,
                "opts": { "rooms": ["room1"], "except": [] },
            }),
        ),
        (
            "all_rooms_request",
            json!({ "uid": a, "requestId": "<id>", "type": 1 }),
        ),
        (
            "sockets_join",
            json!({
                "uid": a, "type": 2, "opts": { "rooms": ["room1"], "except": [] },
                "rooms": ["room2", "room3"],
            }),
        ),
        (
            "sockets_leave",
            json!({
                "uid": a, "type": 3, "opts": { "rooms": [], "except": ["room9"] },
                "rooms": ["room2"],
            }),
        ),
        (
            "server_side_emit",
            json!({ "uid": a, "type": 6, "data": ["ping", 1, { "x": "y" }] }),
        ),
        (
            "server_side_emit_ack_request",
            json!({ "uid": a, "requestId": "<id>", "type": 6, "data": ["compute", 21] }),
        ),
        (
            "disconnect_sockets",
            json!({
                "uid": a, "type": 4, "opts": { "rooms": ["nobody"], "except": [] }, "close": true,
            }),
        ),
        (
            "emitter_sockets_join",
            json!({
                "type": 2, "opts": { "rooms": ["room1"], "except": [] }, "rooms": ["vip"],
            }),
        ),
        (
            "emitter_sockets_leave",
            json!({
                "type": 3, "opts": { "rooms": [], "except": ["room9"] }, "rooms": ["vip"],
            }),
        ),
        (
            "emitter_disconnect_sockets",
            json!({
                "type": 4, "opts": { "rooms": ["nobody"], "except": [] }, "close": true,
            }),
        ),
        (
            "emitter_server_side_emit",
            json!({ "uid": "emitter", "type": 6, "data": ["hello", "from emitter"] }),
        ),
    ];
    for (name, expected) in requests {
        let f = frame(name);
        assert_eq!(f.channel, "socket.io-request#/#", "{name}");
        let (v, bins) = decode_json_or_msgpack(f.payload).expect(name);
        assert_eq!(v, with_ids(expected, &v), "{name}");
        assert!(bins.is_empty(), "{name}");
    }

    // What the readers take out of them.
    let (v, bins) = decode_json_or_msgpack(frame("broadcast_ack_request").payload).expect("ack");
    assert_eq!(
        packet_from(&v["packet"], bins),
        Some(event("/", "question", vec![json!(42)], vec![]))
    );
    assert_eq!(
        opts_from(v.get("opts")),
        local(opts(&["room1"], &[], false))
    );
    let (v, _) = decode_json_or_msgpack(frame("emitter_sockets_leave").payload).expect("leave");
    assert_eq!(
        opts_from(v.get("opts")),
        local(opts(&[], &["room9"], false))
    );
}

/// Node's classic answers, on `<key>-response#<nsp>#`, each under the id of its request.
#[test]
fn node_classic_answers_decode_to_what_they_answer() {
    let request_id = |name: &str| {
        let (v, _) = decode_json_or_msgpack(frame(name).payload).expect(name);
        v["requestId"].clone()
    };
    let answers = [
        (
            "broadcast_client_count",
            "broadcast_ack_request",
            json!({ "type": 8, "requestId": "<id>", "clientCount": 1 }),
            vec![],
        ),
        (
            "broadcast_ack",
            "broadcast_ack_request",
            json!({
                "type": 9, "requestId": "<id>",
                "packet": { "ok": true, "n": 42, "bin": placeholder(0) },
            }),
            vec![Bytes::from_static(&[0xde, 0xad])],
        ),
        (
            "server_side_emit_ack_response",
            "server_side_emit_ack_request",
            json!({ "type": 6, "requestId": "<id>", "data": 42 }),
            vec![],
        ),
    ];
    for (name, request, expected, expected_bins) in answers {
        let f = frame(name);
        assert_eq!(f.channel, "socket.io-response#/#", "{name}");
        let (v, bins) = decode_json_or_msgpack(f.payload).expect(name);
        assert_eq!(v, with_ids(expected, &v), "{name}");
        assert_eq!(v["requestId"], request_id(request), "{name}");
        assert_eq!(bins, expected_bins, "{name}");
    }

    let (v, _) = decode_json_or_msgpack(frame("all_rooms_response").payload).expect("rooms");
    assert_eq!(v["requestId"], request_id("all_rooms_request"));
    let rooms = v["rooms"].as_array().expect("rooms");
    assert_eq!(rooms.len(), 2, "the socket's own room and room1: {v}");
    assert!(rooms.contains(&json!("room1")));

    let (v, _) = decode_json_or_msgpack(frame("fetch_sockets_response").payload).expect("fetch");
    assert_eq!(v["requestId"], request_id("fetch_sockets_request"));
    let [socket] = v["sockets"].as_array().expect("sockets").as_slice() else {
        panic!("one socket: {v}");
    };
    let info = socket_from("/", socket).expect("a socket");
    assert_eq!(info.nsp, "/");
    assert_eq!(info.id.len(), 20);
    let mut rooms = info.rooms.clone();
    rooms.sort();
    let mut expected = vec![info.id.clone(), "room1".to_owned()];
    expected.sort();
    assert_eq!(rooms, expected);
    assert_eq!(info.handshake.auth, json!({ "token": "t1" }));
    assert!(info.local.is_none());
}

/// Node's sharded messages: `{uid, nsp, type, data}`, JSON unless they carry binary data.
#[test]
fn node_sharded_messages_decode_to_what_they_mean() {
    let (c, d) = (uid("C"), uid("D"));
    let answers_to_c = format!("socket.io#/#{c}#");
    let options = |rooms: Vec<&str>, except: Vec<&str>, flags: Value| json!({ "rooms": rooms, "except": except, "flags": flags });
    let messages = [
        (
            "sharded_broadcast_all",
            "socket.io#/#".to_owned(),
            json!({
                "uid": c, "nsp": "/", "type": 3,
                "data": {
                    "packet": { "type": 2, "data": ["hello", "world", 1] },
                    "opts": options(vec![], vec![], json!({})),
                },
            }),
            vec![],
        ),
        (
            "sharded_broadcast_room",
            "socket.io#/#room1#".to_owned(),
            json!({
                "uid": c, "nsp": "/", "type": 3,
                "data": {
                    "packet": { "type": 2, "data": ["news", { "title": "x", "n": 2 }] },
                    "opts": options(vec!["room1"], vec![], json!({})),
                },
            }),
            vec![],
        ),
        (
            "sharded_broadcast_chat_room",
            "socket.io#/chat#room1#".to_owned(),
            json!({
                "uid": uid("C /chat"), "nsp": "/chat", "type": 3,
                "data": {
                    "packet": { "type": 2, "data": ["news", { "n": 1 }] },
                    "opts": options(vec!["room1"], vec![], json!({})),
                },
            }),
            vec![],
        ),
        (
            "sharded_broadcast_except_binary",
            "socket.io#/#".to_owned(),
            json!({
                "uid": c, "nsp": "/", "type": 3,
                "data": {
                    "packet": {
                        "type": 2,
                        "data": ["file", placeholder(0), { "name": "a.bin", "body": placeholder(1) }],
                    },
                    "opts": options(vec!["room1", "room2"], vec!["room3"], json!({ "volatile": true })),
                },
            }),
            vec![Bytes::from_static(&[1, 2, 3]), Bytes::from_static(&[4, 5])],
        ),
        (
            "sharded_broadcast_ack_request",
            "socket.io#/#".to_owned(),
            json!({
                "uid": c, "nsp": "/", "type": 3,
                "data": {
                    "packet": { "type": 2, "data": ["question", 42] },
                    "requestId": "<id>",
                    "opts": options(vec!["room1"], vec![], json!({ "timeout": 1500 })),
                },
            }),
            vec![],
        ),
        (
            "sharded_broadcast_client_count",
            answers_to_c.clone(),
            json!({
                "uid": d, "nsp": "/", "type": 11,
                "data": { "requestId": "<id>", "clientCount": 1 },
            }),
            vec![],
        ),
        (
            "sharded_broadcast_ack",
            answers_to_c.clone(),
            json!({
                "uid": d, "nsp": "/", "type": 12,
                "data": {
                    "requestId": "<id>",
                    "packet": { "ok": true, "n": 42, "bin": placeholder(0) },
                },
            }),
            vec![Bytes::from_static(&[0xde, 0xad])],
        ),
        (
            "sharded_fetch_sockets_request",
            "socket.io#/#".to_owned(),
            json!({
                "uid": c, "nsp": "/", "type": 7,
                "data": { "opts": options(vec!["room1"], vec![], json!({})), "requestId": "<id>" },
            }),
            vec![],
        ),
        (
            "sharded_sockets_join",
            "socket.io#/#".to_owned(),
            json!({
                "uid": c, "nsp": "/", "type": 4,
                "data": {
                    "opts": options(vec!["room1"], vec![], json!({})),
                    "rooms": ["room2", "room3"],
                },
            }),
            vec![],
        ),
        (
            "sharded_sockets_leave",
            "socket.io#/#".to_owned(),
            json!({
                "uid": c, "nsp": "/", "type": 5,
                "data": { "opts": options(vec![], vec!["room9"], json!({})), "rooms": ["room2"] },
            }),
            vec![],
        ),
        (
            "sharded_server_side_emit",
            "socket.io#/#".to_owned(),
            json!({
                "uid": c, "nsp": "/", "type": 9,
                "data": { "packet": ["ping", 1, { "x": "y" }] },
            }),
            vec![],
        ),
        (
            "sharded_server_side_emit_ack_request",
            "socket.io#/#".to_owned(),
            json!({
                "uid": c, "nsp": "/", "type": 9,
                "data": { "requestId": "<id>", "packet": ["compute", 21] },
            }),
            vec![],
        ),
        (
            "sharded_server_side_emit_ack_response",
            answers_to_c.clone(),
            json!({
                "uid": d, "nsp": "/", "type": 10,
                "data": { "requestId": "<id>", "packet": 42 },
            }),
            vec![],
        ),
        (
            "sharded_disconnect_sockets",
            "socket.io#/#".to_owned(),
            json!({
                "uid": c, "nsp": "/", "type": 6,
                "data": { "opts": options(vec!["nobody"], vec![], json!({})), "close": true },
            }),
            vec![],
        ),
    ];
    for (name, channel, expected, expected_bins) in messages {
        let f = frame(name);
        assert_eq!(f.channel, channel, "{name}");
        let (v, bins) = decode_json_or_msgpack(f.payload).expect(name);
        assert_eq!(v, with_ids(expected, &v), "{name}");
        assert_eq!(bins, expected_bins, "{name}");
    }

    // The answers are under the ids of their requests.
    let id = |name: &str| {
        let (v, _) = decode_json_or_msgpack(frame(name).payload).expect(name);
        v["data"]["requestId"].clone()
    };
    assert_eq!(
        id("sharded_broadcast_client_count"),
        id("sharded_broadcast_ack_request")
    );
    assert_eq!(
        id("sharded_broadcast_ack"),
        id("sharded_broadcast_ack_request")
    );
    assert_eq!(
        id("sharded_fetch_sockets_response"),
        id("sharded_fetch_sockets_request")
    );
    assert_eq!(
        id("sharded_server_side_emit_ack_response"),
        id("sharded_server_side_emit_ack_request")
    );

    // Packets and options as the readers take them.
    let (v, bins) =
        decode_json_or_msgpack(frame("sharded_broadcast_except_binary").payload).expect("file");
    let packet = packet_from(&v["data"]["packet"], bins).expect("an event");
    assert_eq!(
        packet.data,
        broadcast_meanings()[2].1.data,
        "the same event as the classic one"
    );
    assert_eq!(packet.attachments.len(), 2);
    assert_eq!(
        opts_from(v["data"].get("opts")),
        local(opts(&["room1", "room2"], &["room3"], true))
    );
    let (v, _) =
        decode_json_or_msgpack(frame("sharded_fetch_sockets_response").payload).expect("fetch");
    let [socket] = v["data"]["sockets"].as_array().expect("sockets").as_slice() else {
        panic!("one socket: {v}");
    };
    let info = socket_from("/", socket).expect("a socket");
    assert!(info.rooms.contains(&"room1".to_owned()));
    assert!(info.rooms.contains(&info.id));
    assert_eq!(info.handshake.auth, json!({ "token": "t1" }));
}

// ---- our frames against Node's ----

/// What the classic wire publishes for the operations of the capture is what Node published.
#[test]
fn our_classic_frames_are_nodes_frames() {
    let a = uid("A");
    // A node with Node's uid: the frames must then be equal, ids included.
    let (node, mut published) = Node::detached(RedisConfig::new("redis://127.0.0.1:1"), &a);
    let mut check = |what: &str, adjust: fn(&mut Value)| {
        let (channel, payload) = published.try_recv().expect(what);
        let f = frame(what);
        assert_eq!(channel, f.channel, "{what}: channel");
        assert_same_encoding(what, &payload, f.payload);
        assert_same_frame(what, &payload, f.payload, adjust);
    };

    for (name, packet, options) in broadcast_meanings() {
        if name.starts_with("emitter") {
            continue;
        }
        let mp = packet_mp(&packet).expect("an event");
        Classic
            .broadcast(&node, &packet.nsp, mp, &options)
            .expect("queued");
        check(name, exact);
    }

    publish_nodes_requests(Classic, &node, "", exact, &mut check);
    assert!(published.try_recv().is_err(), "one frame per operation");
}

/// Publishes through `wire` the requests that Node's adapter published in the capture, with
/// their request ids: a broadcast with acks, fetchSockets, a join, a leave, a disconnection and
/// a server-side event. After each, `check` is given the name of Node's frame (`prefix` and the
/// classic name) and what to take out of ours before comparing them: `adjust_ack_request` for
/// the broadcast with acks, nothing for the others.
fn publish_nodes_requests<W: Wire>(
    wire: W,
    node: &Node,
    prefix: &str,
    adjust_ack_request: fn(&mut Value),
    mut check: impl FnMut(&str, fn(&mut Value)),
) {
    let name = |classic: &str| format!("{prefix}{classic}");
    let request_id = |classic: &str| {
        let v = value_of(frame(&name(classic)).payload);
        // Sharded messages carry their request under `data`.
        let v = if prefix.is_empty() { &v } else { &v["data"] };
        v["requestId"].as_str().expect("requestId").to_owned()
    };
    let question = event("/", "question", vec![json!(42)], vec![]);
    wire.broadcast_with_ack(
        node,
        "/",
        packet_mp(&question).expect("an event"),
        &opts(&["room1"], &[], false),
        Duration::from_millis(1500),
        &request_id("broadcast_ack_request"),
    )
    .expect("queued");
    check(&name("broadcast_ack_request"), adjust_ack_request);

    wire.fetch_sockets(
        node,
        "/",
        &opts(&["room1"], &[], false),
        &request_id("fetch_sockets_request"),
    )
    .expect("queued");
    check(&name("fetch_sockets_request"), exact);

    let rooms = ["room2".to_owned(), "room3".to_owned()];
    wire.sockets_join(node, "/", &opts(&["room1"], &[], false), &rooms, true)
        .expect("queued");
    check(&name("sockets_join"), exact);

    wire.sockets_join(
        node,
        "/",
        &opts(&[], &["room9"], false),
        &["room2".to_owned()],
        false,
    )
    .expect("queued");
    check(&name("sockets_leave"), exact);

    wire.disconnect_sockets(node, "/", &opts(&["nobody"], &[], false), true)
        .expect("queued");
    check(&name("disconnect_sockets"), exact);

    wire.server_side_emit(
        node,
        "/",
        "ping",
        Data::args(vec![json!(1), json!({ "x": "y" })]),
    )
    .expect("queued");
    check(&name("server_side_emit"), exact);
}

/// The same through the adapter: a broadcast made on the server is Node's broadcast.
#[tokio::test(start_paused = true)]
async fn a_broadcast_on_the_server_publishes_nodes_frame() {
    let mut h = harness(&uid("A"), None);
    h.io.of("/")
        .to("room1")
        .emit("news", Data::args(vec![json!({ "title": "x", "n": 2 })]))
        .expect("emitted");
    let (channel, ours) = h.published();
    let theirs = frame("broadcast_room");
    assert_eq!(channel, theirs.channel);
    assert_same_frame("broadcast_room", &ours, theirs.payload, exact);

    let mut data = Data::new();
    data.push("world").push(1);
    h.io.of("/").emit("hello", data).expect("emitted");
    let (channel, ours) = h.published();
    let theirs = frame("broadcast_all");
    assert_eq!(channel, theirs.channel);
    assert_same_frame("broadcast_all", &ours, theirs.payload, exact);
}

/// What the sharded wire publishes is what Node's sharded adapter published, in msgpack (Node
/// writes JSON when there is no binary data; it reads both), with the namespace also in the
/// packet.
#[test]
fn our_sharded_frames_are_nodes_frames() {
    let c = uid("C");
    let config =
        RedisConfig::new("redis://127.0.0.1:1").with_sharded(Some(SubscriptionMode::Dynamic));
    let (node, mut published) = Node::detached(config, &c);
    let wire = Sharded(SubscriptionMode::Dynamic);
    let mut check = |what: &str, adjust: fn(&mut Value)| {
        let (channel, payload) = published.try_recv().expect(what);
        let f = frame(what);
        assert_eq!(channel, f.channel, "{what}: channel");
        assert_same_frame(what, &payload, f.payload, adjust);
    };

    for (classic, packet, options) in node_broadcasts() {
        let mp = packet_mp(&packet).expect("an event");
        wire.broadcast(&node, "/", mp, &options).expect("queued");
        check(&format!("sharded_{classic}"), without_packet_nsp);
    }
    // Node's adapters have a uid per namespace: this one is C's adapter of /chat.
    let (chat_node, mut chat_published) = Node::detached(
        RedisConfig::new("redis://127.0.0.1:1").with_sharded(Some(SubscriptionMode::Dynamic)),
        &uid("C /chat"),
    );
    let news = event("/chat", "news", vec![json!({ "n": 1 })], vec![]);
    wire.broadcast(
        &chat_node,
        "/chat",
        packet_mp(&news).expect("an event"),
        &opts(&["room1"], &[], false),
    )
    .expect("queued");
    let (channel, ours) = chat_published.try_recv().expect("published");
    let theirs = frame("sharded_broadcast_chat_room");
    assert_eq!(channel, theirs.channel);
    assert_same_frame(
        "sharded_broadcast_chat_room",
        &ours,
        theirs.payload,
        without_packet_nsp,
    );

    publish_nodes_requests(wire, &node, "sharded_", without_packet_nsp, &mut check);
    assert!(published.try_recv().is_err(), "one frame per operation");
}

/// Which channel a sharded broadcast goes to, per subscription mode, as Node computes it.
#[test]
fn sharded_broadcasts_choose_nodes_channels() {
    let (node, mut published) = Node::detached(
        RedisConfig::new("redis://127.0.0.1:1").with_sharded(Some(SubscriptionMode::Dynamic)),
        "rustnd",
    );
    let packet = || packet_mp(&event("/", "e", vec![], vec![])).expect("an event");
    let socket_id = "AAAAAAAAAAAAAAAAAAAA";
    let cases = [
        (
            SubscriptionMode::Dynamic,
            vec!["room1"],
            "socket.io#/#room1#",
        ),
        (SubscriptionMode::Dynamic, vec![socket_id], "socket.io#/#"),
        (
            SubscriptionMode::Dynamic,
            vec!["room1", "room2"],
            "socket.io#/#",
        ),
        (SubscriptionMode::Dynamic, vec![], "socket.io#/#"),
        (SubscriptionMode::Static, vec!["room1"], "socket.io#/#"),
        (
            SubscriptionMode::DynamicPrivate,
            vec![socket_id],
            "socket.io#/#AAAAAAAAAAAAAAAAAAAA#",
        ),
    ];
    for (mode, rooms, channel) in cases {
        Sharded(mode)
            .broadcast(&node, "/", packet(), &opts(&rooms, &[], false))
            .expect("queued");
        assert_eq!(
            published.try_recv().expect("published").0,
            channel,
            "{mode:?} {rooms:?}"
        );
    }
    // With acks: always the namespace's channel (its subscribers are the nodes to wait for).
    Sharded(SubscriptionMode::DynamicPrivate)
        .broadcast_with_ack(
            &node,
            "/",
            packet(),
            &opts(&["room1"], &[], false),
            Duration::from_secs(1),
            "id",
        )
        .expect("queued");
    assert_eq!(published.try_recv().expect("published").0, "socket.io#/#");
}

// ---- dispatch: classic ----

/// Node's classic broadcasts reach the sockets they target, and only those.
#[tokio::test(start_paused = true)]
async fn node_classic_broadcasts_reach_the_sockets_they_target() {
    let h = harness("rustnd", None);
    assert_node_broadcasts_reach_their_targets(&h, "", &[]).await;
}

/// Node's broadcasts to all of `/` and to room1 (the frames `{prefix}broadcast_all` and
/// `{prefix}broadcast_room`), then its volatile broadcast with an exception and binary data
/// (`{prefix}broadcast_except_binary`) reach the sockets of `/` they target, and only those.
/// Each of `others` is a frame for another namespace, dispatched with the first two, and the
/// one message its client there gets.
async fn assert_node_broadcasts_reach_their_targets(
    h: &Harness,
    prefix: &str,
    others: &[(&str, &Polling, (String, Value))],
) {
    let (in_room1, _) = client(&h.io, "/", "room1").await;
    let (in_room1_and_3, _) = client(&h.io, "/", "room1.room3").await;
    let (elsewhere, _) = client(&h.io, "/", "").await;

    h.dispatch(&format!("{prefix}broadcast_all"));
    h.dispatch(&format!("{prefix}broadcast_room"));
    for (name, _, _) in others {
        h.dispatch(name);
    }
    let hello = msg("42", json!(["hello", "world", 1]));
    let news = msg("42", json!(["news", { "title": "x", "n": 2 }]));
    assert_eq!(received(&in_room1).await, [hello.clone(), news.clone()]);
    assert_eq!(received(&in_room1_and_3).await, [hello.clone(), news]);
    assert_eq!(received(&elsewhere).await, [hello]);
    for (name, client, message) in others {
        assert_eq!(
            received(client).await,
            std::slice::from_ref(message),
            "{name}"
        );
    }

    // Volatile, with an exception, with binary data: to clients ready for it.
    let gets = [
        parked_get(&in_room1).await,
        parked_get(&in_room1_and_3).await,
        parked_get(&elsewhere).await,
    ];
    h.dispatch(&format!("{prefix}broadcast_except_binary"));
    let [g1, g2, g3] = gets;
    assert_eq!(
        parked_received(&in_room1, g1).await,
        [
            msg(
                "452-",
                json!(["file", placeholder(0), { "name": "a.bin", "body": placeholder(1) }])
            ),
            msg("bAQID", Value::Null),
            msg("bBAU=", Value::Null),
        ]
    );
    assert_parked_get_gets_nothing(&in_room1_and_3, g2).await;
    assert_parked_get_gets_nothing(&elsewhere, g3).await;
}

/// Frames read from Redis at once are acted on together: consecutive broadcasts to the same
/// sockets go to each receiver in one hand-over, and everything happens in the order read (a
/// request between broadcasts included).
#[tokio::test(start_paused = true)]
async fn frames_read_together_are_acted_on_in_the_order_read() {
    for (prefix, mode) in [("", None), ("sharded_", Some(SubscriptionMode::Dynamic))] {
        let h = harness("rustnd", mode);
        let (in_room1, _) = client(&h.io, "/", "room1").await;
        let (elsewhere, _) = client(&h.io, "/", "").await;
        let (doomed, doomed_sid) = client(&h.io, "/", "nobody").await;
        let names = [
            "broadcast_all",
            "broadcast_all",
            "broadcast_room",
            "disconnect_sockets",
            "broadcast_all",
            "broadcast_room",
            "broadcast_room",
        ]
        .map(|name| frame(&format!("{prefix}{name}")));
        h.node
            .dispatch_all(names.iter().map(|f| (f.channel.as_str(), f.payload)));
        let hello = msg("42", json!(["hello", "world", 1]));
        let news = msg("42", json!(["news", { "title": "x", "n": 2 }]));
        assert_eq!(
            received(&in_room1).await,
            [&hello, &hello, &news, &hello, &news, &news].map(Clone::clone),
            "{prefix}"
        );
        assert_eq!(
            received(&elsewhere).await,
            [&hello, &hello, &hello].map(Clone::clone),
            "{prefix}"
        );
        // Disconnected between the second and the third `hello`.
        settle().await;
        assert_eq!(h.rooms_of(&doomed_sid), None, "{prefix}");
        let got = received(&doomed).await;
        assert_eq!(
            got[..2],
            [hello.clone(), hello.clone()],
            "{prefix}: {got:?}"
        );
        assert!(!got[2..].contains(&hello), "{prefix}: {got:?}");
        assert_nothing_more(&in_room1).await;
        assert_nothing_more(&elsewhere).await;
    }
}

/// The emitter's broadcasts, to `/` and to a room of another namespace.
#[tokio::test(start_paused = true)]
async fn emitter_broadcasts_reach_the_sockets_they_target() {
    let h = harness("rustnd", None);
    let (on_root, _) = client(&h.io, "/", "room1").await;
    let (chat_room1, _) = client(&h.io, "/chat", "room1").await;
    let (chat_room1_and_2, _) = client(&h.io, "/chat", "room1.room2").await;

    h.dispatch("emitter_emit");
    h.dispatch("emitter_emit_room");
    assert_eq!(
        received(&on_root).await,
        [
            msg("451-", json!(["from-emitter", "hi", placeholder(0)])),
            msg("bBwgJ", Value::Null),
        ]
    );
    assert_eq!(
        received(&chat_room1).await,
        [msg("42/chat,", json!(["news", { "n": 1 }]))]
    );
    assert_nothing_more(&on_root).await;
    assert_nothing_more(&chat_room1_and_2).await;
}

/// A node hears its own messages back from Redis: it leaves them alone.
#[tokio::test(start_paused = true)]
async fn a_node_ignores_its_own_frames() {
    let mut h = harness(&uid("A"), None);
    let (in_room1, sid) = client(&h.io, "/", "room1").await;
    for name in [
        "broadcast_all",
        "sockets_join",
        "fetch_sockets_request",
        "all_rooms_request",
        "broadcast_ack_request",
        "server_side_emit",
    ] {
        h.dispatch(name);
    }
    settle().await;
    assert_eq!(h.rooms_of(&sid), rooms(&["room1"]));
    h.assert_nothing_published();
    assert!(h.server_side.try_recv().is_err());
    assert_nothing_more(&in_room1).await;

    let mut h = harness(&uid("C"), Some(SubscriptionMode::Dynamic));
    let (in_room1, sid) = client(&h.io, "/", "room1").await;
    for name in [
        "sharded_broadcast_all",
        "sharded_sockets_join",
        "sharded_fetch_sockets_request",
        "sharded_broadcast_ack_request",
    ] {
        h.dispatch(name);
    }
    settle().await;
    assert_eq!(h.rooms_of(&sid), rooms(&["room1"]));
    h.assert_nothing_published();
    assert_nothing_more(&in_room1).await;
}

/// Node's and the emitter's room operations and disconnections: done, and not answered (Node
/// answers only the old single-socket form).
#[tokio::test(start_paused = true)]
async fn node_classic_room_requests_are_done() {
    let mut h = harness("rustnd", None);
    let (_c1, sid) = client(&h.io, "/", "room1").await;

    h.dispatch("sockets_join");
    assert_eq!(h.rooms_of(&sid), rooms(&["room1", "room2", "room3"]));
    h.dispatch("sockets_leave");
    assert_eq!(h.rooms_of(&sid), rooms(&["room1", "room3"]));
    h.dispatch("emitter_sockets_join");
    assert_eq!(h.rooms_of(&sid), rooms(&["room1", "room3", "vip"]));
    h.dispatch("emitter_sockets_leave");
    assert_eq!(h.rooms_of(&sid), rooms(&["room1", "room3"]));

    let (_gone, gone) = client(&h.io, "/", "nobody").await;
    h.dispatch("disconnect_sockets");
    settle().await;
    assert_eq!(h.rooms_of(&gone), None, "disconnected");
    let (_gone_too, gone_too) = client(&h.io, "/", "nobody").await;
    h.dispatch("emitter_disconnect_sockets");
    settle().await;
    assert_eq!(h.rooms_of(&gone_too), None, "disconnected by the emitter");
    assert_eq!(h.rooms_of(&sid), rooms(&["room1", "room3"]), "still here");
    h.assert_nothing_published();
}

/// Node's requests that want answers get them, in the shape of Node's own answers.
#[tokio::test(start_paused = true)]
async fn node_classic_requests_are_answered_as_node_answers() {
    let mut h = harness("rustnd", None);
    let (_c1, sid) = client(&h.io, "/", "room1").await;
    let (_c2, sid2) = client(&h.io, "/", "").await;

    // fetchSockets: this node's socket in room1, described with Node's keys.
    h.dispatch("fetch_sockets_request");
    let (channel, ours) = h.published();
    assert_eq!(channel, "socket.io-response#/#");
    assert_same_encoding(
        "fetch_sockets_response",
        &ours,
        frame("fetch_sockets_response").payload,
    );
    let ours = value_of(&ours);
    let theirs = value_of(frame("fetch_sockets_response").payload);
    assert_same_socket_list(&ours, &theirs, &sid);

    // allRooms.
    h.dispatch("all_rooms_request");
    let (channel, ours) = h.published();
    assert_eq!(channel, "socket.io-response#/#");
    let theirs = frame("all_rooms_response").payload;
    assert_same_encoding("all_rooms_response", &ours, theirs);
    let value = value_of(&ours);
    assert_eq!(value["requestId"], value_of(theirs)["requestId"]);
    // Node also lists every socket's own id as a room; socketlet lists the rooms joined by
    // name (a known difference): room1, and possibly the sockets' ids.
    let rooms: Vec<&str> = value["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|r| r.as_str().expect("a room"))
        .collect();
    assert!(rooms.contains(&"room1"), "{rooms:?}");
    assert!(
        rooms
            .iter()
            .all(|r| [sid.as_str(), sid2.as_str(), "room1"].contains(r)),
        "{rooms:?}"
    );
    assert_eq!(
        value
            .as_object()
            .expect("an object")
            .keys()
            .collect::<Vec<_>>(),
        value_of(theirs)
            .as_object()
            .expect("an object")
            .keys()
            .collect::<Vec<_>>()
    );

    // serverSideEmit without an ack: the handlers run, nobody is answered.
    h.dispatch_server_side(
        "server_side_emit",
        "ping",
        vec![json!(1), json!({ "x": "y" })],
    )
    .await;
    h.assert_nothing_published();
    h.dispatch_server_side(
        "emitter_server_side_emit",
        "hello",
        vec![json!("from emitter")],
    )
    .await;

    // With an ack: socketlet's handlers do not answer; the node says so at once, with Node's
    // answer's keys and `null` where Node's handler had answered 42.
    h.dispatch_server_side("server_side_emit_ack_request", "compute", vec![json!(21)])
        .await;
    let (channel, ours) = h.published();
    assert_eq!(channel, "socket.io-response#/#");
    let theirs = frame("server_side_emit_ack_response").payload;
    assert_same_encoding("server_side_emit_ack_response", &ours, theirs);
    assert_same_frame("server_side_emit_ack_response", &ours, theirs, |v| {
        assert!(v["data"].is_null() || v["data"] == "nil", "{v}");
        v["data"] = if v["data"].is_null() {
            json!(42)
        } else {
            json!("uint")
        };
    });
    h.assert_nothing_published();
}

/// Our answer to fetchSockets, against Node's: the same keys for the answer, for each socket
/// (the one in room1, `sid`) and for its handshake, the same kinds of values (the address
/// aside: in-process clients have none), the same `data` and `auth`.
#[track_caller]
fn assert_same_socket_list(ours: &Value, theirs: &Value, sid: &str) {
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object()
            .unwrap_or_else(|| panic!("an object: {v}"))
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(keys(ours), keys(theirs));
    assert_eq!(ours["requestId"], theirs["requestId"]);
    let [socket] = ours["sockets"].as_array().expect("sockets").as_slice() else {
        panic!("one socket: {ours}");
    };
    let node_socket = &theirs["sockets"][0];
    assert_eq!(keys(socket), keys(node_socket));
    assert_eq!(socket["id"], sid);
    let mut rooms: Vec<&str> = socket["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|r| r.as_str().expect("a room"))
        .collect();
    rooms.sort();
    let mut expected = vec![sid, "room1"];
    expected.sort();
    assert_eq!(rooms, expected);
    assert_eq!(socket["data"], node_socket["data"]);
    let (handshake, node_handshake) = (&socket["handshake"], &node_socket["handshake"]);
    assert_eq!(keys(handshake), keys(node_handshake));
    let kind = |v: &Value| match v {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    };
    for key in keys(node_handshake).iter().filter(|k| *k != "address") {
        assert_eq!(
            kind(&handshake[key]),
            kind(&node_handshake[key]),
            "handshake.{key}: {} against Node's {}",
            handshake[key],
            node_handshake[key]
        );
    }
    assert!(
        handshake["address"].is_null() || handshake["address"].is_string(),
        "{handshake}"
    );
    assert_eq!(handshake["auth"], node_handshake["auth"]);
    assert_eq!(handshake["query"]["EIO"], node_handshake["query"]["EIO"]);
    // A reader of Node's answer finds the same in ours.
    let info = socket_from("/", socket).expect("a socket");
    assert_eq!(info.id, sid);
    assert_eq!(info.handshake.auth, json!({ "token": "t1" }));
    assert_eq!(info.data, json!({ "user": "bob" }));
}

/// Node's broadcast with acks: the targeted client is asked, and the node answers first the
/// count of acks to expect, then each ack, byte for byte in the shape of Node's answers.
#[tokio::test(start_paused = true)]
async fn a_node_broadcast_with_acks_is_served_and_answered_as_node_does() {
    let mut h = harness("rustnd", None);
    let (in_room1, _) = client(&h.io, "/", "room1").await;
    let (elsewhere, _) = client(&h.io, "/", "").await;

    h.dispatch("broadcast_ack_request");
    let (channel, ours) = h.published();
    assert_eq!(channel, "socket.io-response#/#");
    let theirs = frame("broadcast_client_count").payload;
    assert_same_encoding("broadcast_client_count", &ours, theirs);
    assert_same_frame("broadcast_client_count", &ours, theirs, exact);

    answer_nodes_question(&in_room1).await;
    let (channel, ours) = h.next_published().await;
    assert_eq!(channel, "socket.io-response#/#");
    let theirs = frame("broadcast_ack").payload;
    assert_same_encoding("broadcast_ack", &ours, theirs);
    assert_same_frame("broadcast_ack", &ours, theirs, exact);
    assert_nothing_more(&elsewhere).await;
    h.assert_nothing_published();
}

/// Node's broadcast with acks asked `client` its question: it answers as Node's client did
/// (with an attachment).
async fn answer_nodes_question(client: &Polling) {
    let asked = within("the question", client.recv_one()).await;
    let (id, args) = event_with_id(&asked);
    assert_eq!(args, json!(["question", 42]));
    client
        .send(&format!(
            "461-{id}[{{\"ok\":true,\"n\":42,\"bin\":{{\"_placeholder\":true,\"num\":0}}}}]\x1eb3q0="
        ))
        .await;
}

/// Node's answers reach the request of this node that waits for them, on the shared response
/// channel as on this node's own; answers nobody waits for are dropped.
#[tokio::test(start_paused = true)]
async fn node_classic_answers_reach_the_waiting_request() {
    let h = harness("rustnd", None);
    let id_of = |name: &str| {
        value_of(frame(name).payload)["requestId"]
            .as_str()
            .expect("requestId")
            .to_owned()
    };

    let mut pending = h.node.expect_answers(&id_of("broadcast_ack_request"));
    h.dispatch("broadcast_client_count");
    let (v, _) = pending.rx.try_recv().expect("the count");
    assert_eq!(
        (v["type"].as_u64(), v["clientCount"].as_u64()),
        (Some(8), Some(1))
    );
    let ack = frame("broadcast_ack");
    // The same answer on this node's own response channel.
    h.node.dispatch("socket.io-response#/#rustnd#", ack.payload);
    assert_nodes_ack(pending.rx.try_recv().expect("the ack"));
    drop(pending);

    let mut pending = h.node.expect_answers(&id_of("fetch_sockets_request"));
    h.dispatch("fetch_sockets_response");
    assert_nodes_socket_list(pending.rx.try_recv().expect("the sockets"));
    drop(pending);

    let mut pending = h.node.expect_answers(&id_of("all_rooms_request"));
    h.dispatch("all_rooms_response");
    let (v, _) = pending.rx.try_recv().expect("the rooms");
    assert!(v["rooms"]
        .as_array()
        .expect("rooms")
        .contains(&json!("room1")));
    drop(pending);

    let mut pending = h
        .node
        .expect_answers(&id_of("server_side_emit_ack_request"));
    h.dispatch("server_side_emit_ack_response");
    let (v, _) = pending.rx.try_recv().expect("the answer");
    assert_eq!(v["data"], 42);

    // Nobody waits for the others any more.
    for name in ["broadcast_client_count", "fetch_sockets_response"] {
        h.dispatch(name);
    }
    assert!(pending.rx.try_recv().is_err());
}

/// An answer of Node's to a broadcast with acks: its client's ack, with its attachment.
#[track_caller]
fn assert_nodes_ack((v, bins): (Value, Vec<Bytes>)) {
    assert_eq!(v["type"], 9);
    assert_eq!(
        v["packet"],
        json!({ "ok": true, "n": 42, "bin": placeholder(0) })
    );
    assert_eq!(bins, [Bytes::from_static(&[0xde, 0xad])]);
}

/// An answer of Node's to fetchSockets: its one socket, which a reader here understands.
#[track_caller]
fn assert_nodes_socket_list((v, _): (Value, Vec<Bytes>)) {
    let sockets: Vec<_> = v["sockets"]
        .as_array()
        .expect("sockets")
        .iter()
        .filter_map(|s| socket_from("/", s))
        .collect();
    assert_eq!(sockets.len(), 1);
    assert_eq!(sockets[0].handshake.auth, json!({ "token": "t1" }));
}

// ---- dispatch: sharded ----

/// Node's sharded broadcasts reach the sockets they target, in the namespace of the message.
#[tokio::test(start_paused = true)]
async fn node_sharded_broadcasts_reach_the_sockets_they_target() {
    let h = harness("rustnd", Some(SubscriptionMode::Dynamic));
    let (chat_room1, _) = client(&h.io, "/chat", "room1").await;
    let chat = (
        "sharded_broadcast_chat_room",
        &chat_room1,
        msg("42/chat,", json!(["news", { "n": 1 }])),
    );
    assert_node_broadcasts_reach_their_targets(&h, "sharded_", &[chat]).await;
}

/// Node's sharded requests: done, and answered on the asking node's channel in the shape of
/// Node's answers (this node has D's uid, so that the answers can equal D's).
#[tokio::test(start_paused = true)]
async fn node_sharded_requests_are_done_and_answered_as_node_does() {
    let (c, d) = (uid("C"), uid("D"));
    let to_c = format!("socket.io#/#{c}#");
    let mut h = harness(&d, Some(SubscriptionMode::Dynamic));
    let (in_room1, sid) = client(&h.io, "/", "room1").await;
    let (elsewhere, _) = client(&h.io, "/", "").await;

    // Broadcast with acks.
    h.dispatch("sharded_broadcast_ack_request");
    let (channel, ours) = h.published();
    assert_eq!(channel, to_c);
    assert_same_frame(
        "sharded_broadcast_client_count",
        &ours,
        frame("sharded_broadcast_client_count").payload,
        exact,
    );
    answer_nodes_question(&in_room1).await;
    let (channel, ours) = h.next_published().await;
    assert_eq!(channel, to_c);
    assert_same_frame(
        "sharded_broadcast_ack",
        &ours,
        frame("sharded_broadcast_ack").payload,
        exact,
    );

    // fetchSockets.
    h.dispatch("sharded_fetch_sockets_request");
    let (channel, ours) = h.published();
    assert_eq!(channel, to_c);
    let (mut ours, mut theirs) = (
        value_of(&ours),
        value_of(frame("sharded_fetch_sockets_response").payload),
    );
    let (our_data, their_data) = (ours["data"].take(), theirs["data"].take());
    assert_eq!(ours, theirs, "the message around the answer");
    assert_same_socket_list(&our_data, &their_data, &sid);

    // serverSideEmit, without and with an ack (answered with null: socketlet's handlers do
    // not answer).
    h.dispatch_server_side(
        "sharded_server_side_emit",
        "ping",
        vec![json!(1), json!({ "x": "y" })],
    )
    .await;
    h.assert_nothing_published();
    h.dispatch_server_side(
        "sharded_server_side_emit_ack_request",
        "compute",
        vec![json!(21)],
    )
    .await;
    let (channel, ours) = h.published();
    assert_eq!(channel, to_c);
    assert_same_frame(
        "sharded_server_side_emit_ack_response",
        &ours,
        frame("sharded_server_side_emit_ack_response").payload,
        |v| {
            let packet = &mut v["data"]["packet"];
            assert!(packet.is_null() || *packet == "nil", "{packet}");
            *packet = if packet.is_null() {
                json!(42)
            } else {
                json!("uint")
            };
        },
    );

    // Rooms and disconnections: done, not answered.
    h.dispatch("sharded_sockets_join");
    assert_eq!(h.rooms_of(&sid), rooms(&["room1", "room2", "room3"]));
    h.dispatch("sharded_sockets_leave");
    assert_eq!(h.rooms_of(&sid), rooms(&["room1", "room3"]));
    let (_gone, gone) = client(&h.io, "/", "nobody").await;
    h.dispatch("sharded_disconnect_sockets");
    settle().await;
    assert_eq!(h.rooms_of(&gone), None);
    assert_eq!(h.rooms_of(&sid), rooms(&["room1", "room3"]));
    h.assert_nothing_published();
    assert_nothing_more(&elsewhere).await;
}

/// Node's sharded answers reach the waiting request of this node (C's uid), converted to the
/// classic answers' types that the gatherers read.
#[tokio::test(start_paused = true)]
async fn node_sharded_answers_reach_the_waiting_request() {
    let h = harness(&uid("C"), Some(SubscriptionMode::Dynamic));
    let id_of = |name: &str| {
        value_of(frame(name).payload)["data"]["requestId"]
            .as_str()
            .expect("requestId")
            .to_owned()
    };

    let mut pending = h
        .node
        .expect_answers(&id_of("sharded_broadcast_ack_request"));
    h.dispatch("sharded_broadcast_client_count");
    h.dispatch("sharded_broadcast_ack");
    let (v, _) = pending.rx.try_recv().expect("the count");
    assert_eq!(v["type"], 8);
    assert_eq!(v["clientCount"], 1);
    assert_nodes_ack(pending.rx.try_recv().expect("the ack"));
    drop(pending);

    let mut pending = h
        .node
        .expect_answers(&id_of("sharded_fetch_sockets_request"));
    h.dispatch("sharded_fetch_sockets_response");
    assert_nodes_socket_list(pending.rx.try_recv().expect("the sockets"));
    drop(pending);

    let mut pending = h
        .node
        .expect_answers(&id_of("sharded_server_side_emit_ack_request"));
    h.dispatch("sharded_server_side_emit_ack_response");
    let (v, _) = pending.rx.try_recv().expect("the answer");
    assert_eq!(v["packet"], 42);
}
