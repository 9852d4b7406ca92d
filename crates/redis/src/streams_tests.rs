//! Unit tests of the streams format (`streams.rs`) over what Node's
//! `@socket.io/redis-streams-adapter` 0.3.x really did with Redis: the stream entries, pub/sub
//! messages, session and commands that `tests/fixtures/capture_streams.mjs` captured (its header
//! says how to capture them again; `tests/fixtures/streams_frames.json` says what produced each).
//!
//! - Encoding: the commands this crate sends for an operation are Node's, argument for argument
//!   (XADD with its data byte for byte, XREAD, SET with the session byte for byte, the restore's
//!   MULTI/GET/DEL/EXEC/XRANGE); its pub/sub requests are Node's messages once decoded.
//! - Decoding: Node's entries, session and messages mean what Node meant; the packets a restore
//!   replays are those Node replayed.
//! - Dispatch: Node's entries, handed to a node that never connects to Redis, reach the sockets
//!   they target, with the entry id as their offset when recovery is on.

use crate::adapter::{opts_from, packet_mp, Wire};
use crate::msgpack;
use crate::node::{parse_incoming, Incoming, Node};
use crate::sharded::{Message, MessageKind, Sharded};
use crate::streams::*;
use crate::test_support::common::{settle, within, Polling};
use crate::test_support::{event, fixture, indexed, local, node_broadcasts, opts};
use crate::{RedisCluster, RedisConfig, SubscriptionMode};
use serde_json::{json, Value};
use socketlet::adapter::{BroadcastOptions, Session};
use socketlet::socketio_proto::{Packet, PacketData};
use socketlet::{RecoveryConfig, Socket, SocketIo};
use std::time::Duration;

// ---- the fixtures ----

macro_rules! entries {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../tests/fixtures/streams_", $name, ".entry.json")))),*]
    };
}

macro_rules! messages {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../tests/fixtures/streams_", $name, ".msgpack")) as &[u8])),*]
    };
}

const ENTRIES: &[(&str, &str)] = entries![
    "broadcast_all",
    "broadcast_room",
    "broadcast_except_binary",
    "socket_emit",
    "sockets_join",
    "sockets_leave",
    "disconnect_sockets",
    "missed_room",
    "missed_other_room",
];

const MESSAGES: &[(&str, &[u8])] = messages![
    "broadcast_ack_request",
    "broadcast_client_count",
    "broadcast_ack",
    "fetch_sockets_request",
    "fetch_sockets_response",
    "server_side_emit",
    "server_side_emit_ack_request",
    "server_side_emit_ack_response",
];

const INDEX: &str = include_str!("../tests/fixtures/streams_frames.json");
const COMMANDS: &str = include_str!("../tests/fixtures/streams_commands.json");
const SESSION: &str = include_str!("../tests/fixtures/streams_session.txt");

fn index() -> Value {
    serde_json::from_str(INDEX).expect("streams_frames.json")
}

/// The uid of Node server `who` (A or B) of the capture.
fn uid(who: &str) -> String {
    index()["uids"][who].as_str().expect("uid").to_owned()
}

/// What the capture knows of the recovered client: `pid`, `sid`, `offset`...
fn recovery(key: &str) -> Value {
    index()["recovery"][key].clone()
}

/// A captured stream entry: its id and fields.
fn entry(name: &str) -> StreamEntry {
    let v: Value = serde_json::from_str(fixture(ENTRIES, name)).expect("an entry");
    StreamEntry {
        id: v["id"].as_str().expect("id").to_owned(),
        fields: v["fields"]
            .as_object()
            .expect("fields")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("a string field").to_owned()))
            .collect(),
    }
}

/// A captured pub/sub message: its channel and bytes.
fn message(name: &str) -> (String, &'static [u8]) {
    let index = index();
    let channel = indexed(&index, name)["channel"]
        .as_str()
        .expect("the message's channel")
        .to_owned();
    (channel, fixture(MESSAGES, name))
}

/// The commands Node's nodes sent during capture step `step`, as text (a binary argument as
/// `{"base64": ...}` in the file, here as its decoded bytes' lossy text).
fn commands(step: &str) -> Vec<Vec<String>> {
    let all: Value = serde_json::from_str(COMMANDS).expect("streams_commands.json");
    let step = all
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step}"));
    step["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| {
            c.as_array()
                .expect("a command")
                .iter()
                .map(|a| match a {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// The one command of `step` whose name is `name` (case-insensitive).
#[track_caller]
fn command(step: &str, name: &str) -> Vec<String> {
    let found: Vec<Vec<String>> = commands(step)
        .into_iter()
        .filter(|c| c[0].eq_ignore_ascii_case(name))
        .collect();
    assert!(!found.is_empty(), "no {name} in step {step}");
    found[0].clone()
}

/// A command's arguments as text.
fn args(cmd: &redis::Cmd) -> Vec<String> {
    cmd.args_iter()
        .map(|a| match a {
            redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
            _ => "<cursor>".to_owned(),
        })
        .collect()
}

/// The broadcasts of the capture: fixture, sending node, packet and options.
fn broadcasts() -> Vec<(&'static str, &'static str, Packet, BroadcastOptions)> {
    let sid = recovery("sid").as_str().expect("sid").to_owned();
    let mut broadcasts: Vec<_> = node_broadcasts()
        .into_iter()
        .map(|(name, packet, options)| (name, "A", packet, options))
        .collect();
    broadcasts.extend([
        (
            "socket_emit",
            "B",
            event("/", "direct", vec![json!(7)], vec![]),
            BroadcastOptions {
                rooms: vec![sid],
                ..Default::default()
            },
        ),
        (
            "missed_room",
            "A",
            event("/", "missed", vec![json!(1)], vec![]),
            opts(&["room1"], &[], false),
        ),
    ]);
    broadcasts
}

// ---- the names of things ----

#[test]
fn streams_are_named_and_hashed_as_node_does() {
    // Values from Node's `hashCode` (lib/util.ts).
    for (nsp, hash) in [
        ("/", 47),
        ("/chat", 46_457_863),
        ("/admin", 1_438_238_848),
        ("/team-x", -2_114_714_121),
        ("/ünïcødé", -301_512_856),
        ("/😀", 1_818_066),
    ] {
        assert_eq!(hash_code(nsp), hash, "{nsp}");
    }
    let one = StreamsConfig::default();
    assert_eq!(stream_name(&one, "/chat"), "socket.io");
    assert_eq!(reader_streams(&one), ["socket.io"]);
    let four = StreamsConfig::default().with_stream_count(4);
    assert_eq!(stream_name(&four, "/"), "socket.io-3");
    assert_eq!(stream_name(&four, "/admin"), "socket.io-0");
    // JavaScript's remainder keeps the sign: Node writes there and never reads it.
    assert_eq!(stream_name(&four, "/team-x"), "socket.io--1");
    // -0 is written 0.
    assert_eq!(stream_name(&four, "/ünïcødé"), "socket.io-0");
    assert_eq!(
        reader_streams(&four),
        ["socket.io-0", "socket.io-1", "socket.io-2", "socket.io-3"]
    );
}

#[test]
fn offsets_are_checked_and_advanced_as_node_does() {
    for ok in ["0-0", "1796561991713-0", "1-18446744073709551615"] {
        assert!(is_offset(ok), "{ok}");
    }
    for bad in [
        "", "12", "-1", "1-", "a-1", "1-2-3", "1 -2", "+", "$", "0x1-2",
    ] {
        assert!(!is_offset(bad), "{bad}");
        assert_eq!(next_offset(bad), None, "{bad}");
    }
    assert_eq!(
        next_offset("1796561991713-0").as_deref(),
        Some("1796561991713-1")
    );
    assert_eq!(
        next_offset("5-18446744073709551615").as_deref(),
        Some("6-0")
    );
    // Node captured: after offset X it asked for X's sequence plus one.
    let offset = recovery("offset").as_str().expect("offset").to_owned();
    let xrange: Vec<Vec<String>> = commands("restore_session")
        .into_iter()
        .filter(|c| c[0] == "XRANGE")
        .collect();
    assert_eq!(xrange[1][2], next_offset(&offset).expect("next"));
}

// ---- encoding: our commands are Node's ----

#[test]
fn our_stream_entries_are_nodes_argument_for_argument() {
    for (name, who, packet, opts) in broadcasts() {
        let ours = broadcast_entry(&uid(who), "/", &packet, &opts).expect("an event");
        let step = if name == "missed_room" {
            "missed"
        } else {
            name
        };
        assert_eq!(
            args(&ours.xadd("socket.io", 10_000)),
            command(step, "XADD"),
            "{name}"
        );
    }
    let a = uid("A");
    for (step, ours) in [
        (
            "sockets_join",
            rooms_entry(
                &a,
                "/",
                &opts(&["room1"], &[], false),
                &["room2".into(), "room3".into()],
                true,
            ),
        ),
        (
            "sockets_leave",
            rooms_entry(
                &a,
                "/",
                &opts(&[], &["room9"], false),
                &["room2".into()],
                false,
            ),
        ),
        (
            "disconnect_sockets",
            disconnect_entry(&a, "/", &opts(&["nobody"], &[], false), true),
        ),
    ] {
        assert_eq!(
            args(&ours.xadd("socket.io", 10_000)),
            command(step, "XADD"),
            "{step}"
        );
    }
    // Not an event: nothing for the stream.
    let connect = Packet::new("/", PacketData::Connect(None));
    assert!(broadcast_entry(&a, "/", &connect, &BroadcastOptions::default()).is_none());
}

#[test]
fn our_reads_are_nodes() {
    let config = StreamsConfig::default();
    assert_eq!(
        args(&xread(&config, "socket.io", "$")),
        command("startup", "XREAD")
    );
    let read_on = command("broadcast_all", "XREAD");
    assert_eq!(args(&xread(&config, "socket.io", &read_on[7])), read_on);
}

#[test]
fn our_sessions_are_nodes_byte_for_byte() {
    let session = decode_session(SESSION.as_bytes()).expect("Node's session");
    let sid = recovery("sid").as_str().expect("sid").to_owned();
    let pid = recovery("pid").as_str().expect("pid").to_owned();
    assert_eq!(
        session,
        Session::new(
            sid.clone(),
            pid.clone(),
            vec![sid, "room1".into(), "room3".into()],
            json!({ "user": "bob" }),
        )
    );
    assert_eq!(encode_session(&session), SESSION);
    let set = set_session("sio:session:", &session, Duration::from_secs(60));
    assert_eq!(args(&set), command("persist_session", "SET"));

    // socketlet's null data is Node's default `{}`, and back.
    let bare = Session::new("s".into(), "p".into(), vec![], Value::Null);
    let text = encode_session(&bare);
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &text).expect("base64");
    let mp = msgpack::decode(&raw).expect("msgpack");
    assert_eq!(msgpack::get(&mp, "data"), Some(&rmpv::Value::Map(vec![])));
    assert_eq!(decode_session(text.as_bytes()), Some(bare));
    // Not a session.
    for bad in ["", "not base64!", "kA==", "gaNzaWSjYWJj"] {
        assert_eq!(decode_session(bad.as_bytes()), None, "{bad}");
    }
}

#[test]
fn our_restore_sends_nodes_commands() {
    let pid = recovery("pid").as_str().expect("pid").to_owned();
    let offset = recovery("offset").as_str().expect("offset").to_owned();
    let key = format!("sio:session:{pid}");
    let ours: Vec<Vec<String>> = restore_pipeline(&key, "socket.io", &offset)
        .cmd_iter()
        .map(args)
        .collect();
    let theirs = commands("restore_session");
    assert_eq!(
        ours,
        theirs[..5],
        "MULTI, GET, DEL, EXEC, XRANGE offset offset"
    );
}

// ---- decoding: Node's entries, sessions and messages ----

#[test]
fn node_entries_decode_to_what_they_mean() {
    for (name, who, packet, opts) in broadcasts() {
        let e = entry(name);
        assert_eq!(
            parse_entry("someone-else", &e.fields),
            Incoming::Sharded(Message {
                uid: uid(who),
                nsp: "/".into(),
                kind: MessageKind::Broadcast {
                    packet,
                    opts: local(opts),
                    acks: None,
                },
            }),
            "{name}"
        );
        assert_eq!(parse_entry(&uid(who), &e.fields), Incoming::Own, "{name}");
    }
    let a = uid("A");
    let expect = |name: &str, kind: MessageKind| {
        assert_eq!(
            parse_entry("someone-else", &entry(name).fields),
            Incoming::Sharded(Message {
                uid: a.clone(),
                nsp: "/".into(),
                kind,
            }),
            "{name}"
        );
    };
    expect(
        "sockets_join",
        MessageKind::Rooms {
            join: true,
            opts: local(opts(&["room1"], &[], false)),
            rooms: vec!["room2".into(), "room3".into()],
        },
    );
    expect(
        "sockets_leave",
        MessageKind::Rooms {
            join: false,
            opts: local(opts(&[], &["room9"], false)),
            rooms: vec!["room2".into()],
        },
    );
    expect(
        "disconnect_sockets",
        MessageKind::Disconnect {
            opts: local(opts(&["nobody"], &[], false)),
            close: true,
        },
    );
}

#[test]
fn odd_entries_are_dropped_without_harm() {
    let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    for fields in [
        f(&[]),
        f(&[("uid", "x"), ("type", "3"), ("data", "{}")]),
        f(&[("uid", "x"), ("nsp", ""), ("type", "3")]),
        f(&[("uid", "x"), ("nsp", "/"), ("type", "three")]),
        f(&[
            ("uid", "x"),
            ("nsp", "/"),
            ("type", "3"),
            ("data", "{not json"),
        ]),
        f(&[("uid", "x"), ("nsp", "/"), ("type", "3"), ("data", "!!!")]),
        f(&[("uid", "x"), ("nsp", "/"), ("type", "3"), ("data", "kA==")]),
        f(&[
            ("uid", "x"),
            ("nsp", "/"),
            ("type", "3"),
            ("data", r#"{"packet":{"type":0}}"#),
        ]),
        f(&[("uid", "x"), ("nsp", "/"), ("type", "42"), ("data", "{}")]),
    ] {
        assert!(
            matches!(parse_entry("me", &fields), Incoming::Dropped(_)),
            "{fields:?}: {:?}",
            parse_entry("me", &fields)
        );
    }
}

#[test]
fn a_restore_replays_what_node_replayed() {
    let session = decode_session(SESSION.as_bytes()).expect("Node's session");
    let offset = recovery("offset").as_str().expect("offset").to_owned();
    let all: Vec<StreamEntry> = ENTRIES.iter().map(|(n, _)| entry(n)).collect();
    // After the client's offset, Node replayed exactly this.
    let after: Vec<Value> = all
        .iter()
        .filter(|e| {
            let id = |s: &str| -> (u64, u64) {
                let (a, b) = s.split_once('-').expect("an id");
                (a.parse().expect("ms"), b.parse().expect("seq"))
            };
            id(&e.id) > id(&offset)
        })
        .filter_map(|e| missed_packet("/", &session.rooms, e))
        .map(|p| match p.data {
            PacketData::Event { name, args, .. } => {
                let mut v = vec![json!(name)];
                v.extend(args);
                Value::Array(v)
            }
            _ => Value::Null,
        })
        .collect();
    assert_eq!(Value::Array(after), recovery("received_after"));
    // Over the whole stream: the broadcasts its rooms got (not the one that excluded room3, not
    // another room's), each with its entry id; other namespaces and types are never replayed.
    let names: Vec<String> = all
        .iter()
        .filter_map(|e| missed_packet("/", &session.rooms, e))
        .map(|p| match p.data {
            PacketData::Event { name, args, .. } => {
                assert!(args.last().and_then(Value::as_str).is_some_and(is_offset));
                name
            }
            _ => String::new(),
        })
        .collect();
    assert_eq!(names, ["hello", "news", "direct", "missed"]);
    assert!(all
        .iter()
        .all(|e| missed_packet("/chat", &session.rooms, e).is_none()));
}

#[test]
fn node_pubsub_messages_decode_to_what_they_mean() {
    let config =
        RedisConfig::new("redis://127.0.0.1:1").with_streams(Some(StreamsConfig::default()));
    let read = |name: &str| {
        let (channel, payload) = message(name);
        parse_incoming(&config, "someone-else", &channel, payload)
    };
    let a = uid("A");
    let b = uid("B");
    match read("broadcast_ack_request") {
        Incoming::Sharded(Message {
            uid,
            kind:
                MessageKind::Broadcast {
                    packet,
                    opts,
                    acks: Some((_, timeout)),
                },
            ..
        }) => {
            assert_eq!(uid, a);
            assert_eq!(packet, event("/", "question", vec![json!(42)], vec![]));
            assert_eq!(opts, local(self::opts(&["room1"], &[], false)));
            assert_eq!(timeout, Duration::from_millis(1500));
        }
        other => panic!("{other:?}"),
    }
    for (name, answer_type) in [
        ("broadcast_client_count", 8),
        ("broadcast_ack", 9),
        ("fetch_sockets_response", 0),
        ("server_side_emit_ack_response", 0),
    ] {
        match read(name) {
            Incoming::Sharded(Message {
                uid,
                kind: MessageKind::Answer((answer, _)),
                ..
            }) => {
                assert_eq!(uid, b, "{name}");
                assert_eq!(answer["type"], json!(answer_type), "{name}");
                assert!(answer["requestId"].is_string(), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(matches!(
        read("fetch_sockets_request"),
        Incoming::Sharded(Message {
            kind: MessageKind::Fetch { .. },
            ..
        })
    ));
    match read("server_side_emit") {
        Incoming::Sharded(Message {
            kind:
                MessageKind::ServerSideEmit {
                    event,
                    data,
                    request_id: None,
                },
            ..
        }) => {
            assert_eq!(event.as_deref(), Some("ping"));
            assert_eq!(data.args, [json!(1), json!({"x": "y"})]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read("server_side_emit_ack_request"),
        Incoming::Sharded(Message {
            kind: MessageKind::ServerSideEmit {
                request_id: Some(_),
                ..
            },
            ..
        })
    ));
}

/// A pub/sub message as JSON (binaries as placeholders), without what differs between two
/// nodes' copies of one request: the sender, the request id, and the packet's namespace (Node
/// has none there, socketlet names it as its sharded messages do).
fn comparable(payload: &[u8]) -> Value {
    let mut v = msgpack::to_json(msgpack::decode(payload).expect("msgpack"), &mut Vec::new())
        .expect("JSON");
    let o = v.as_object_mut().expect("a message");
    o.remove("uid");
    if let Some(data) = o.get_mut("data").and_then(Value::as_object_mut) {
        data.remove("requestId");
        if let Some(packet) = data.get_mut("packet").and_then(Value::as_object_mut) {
            packet.remove("nsp");
        }
    }
    v
}

#[tokio::test]
async fn our_pubsub_requests_are_nodes() {
    let config =
        RedisConfig::new("redis://127.0.0.1:1").with_streams(Some(StreamsConfig::default()));
    let (node, mut published) = Node::detached(config, "mine");
    let wire = Sharded(SubscriptionMode::Static);
    let question = event("/", "question", vec![json!(42)], vec![]);
    let packet = packet_mp(&question).expect("an event");
    let room1 = opts(&["room1"], &[], false);
    wire.broadcast_with_ack(
        &node,
        "/",
        packet,
        &room1,
        Duration::from_millis(1500),
        "r1",
    )
    .expect("queued");
    wire.fetch_sockets(&node, "/", &room1, "r2")
        .expect("queued");
    let data = socketlet::Data {
        args: vec![json!(1), json!({"x": "y"})],
        binary: vec![],
    };
    wire.server_side_emit(&node, "/", "ping", data)
        .expect("queued");
    for name in [
        "broadcast_ack_request",
        "fetch_sockets_request",
        "server_side_emit",
    ] {
        let (channel, payload) = published.try_recv().expect("published");
        let (their_channel, theirs) = message(name);
        assert_eq!(channel, their_channel, "{name}");
        assert_eq!(comparable(&payload), comparable(theirs), "{name}");
    }
}

// ---- dispatch: Node's entries reach the sockets ----

/// What a stream reader does with entry `e`.
fn deliver_entry(node: &std::sync::Arc<Node>, e: &StreamEntry) {
    on_entry(node, &e.id, parse_entry(node.uid(), &e.fields));
}

/// A server with recovery on a detached node in streams mode; its sockets join the rooms of
/// their CONNECT's `rooms` query parameter (dot-separated).
fn server(uid: &str) -> (SocketIo, std::sync::Arc<Node>) {
    let config =
        RedisConfig::new("redis://127.0.0.1:1").with_streams(Some(StreamsConfig::default()));
    let (node, _published) = Node::detached(config, uid);
    let streams = Streams::start(&node, StreamsConfig::default());
    let cluster = RedisCluster {
        node: node.clone(),
        streams: Some(streams),
    };
    let io = SocketIo::builder()
        .adapter(cluster.adapter_factory())
        .connection_state_recovery(RecoveryConfig::default())
        .build();
    io.of("/").on_connect(|socket: Socket| async move {
        if let Some(rooms) = socket.query("rooms") {
            socket.join(rooms.split('.').map(str::to_owned).collect::<Vec<_>>());
        }
    });
    node.attach_detached(&io);
    (io, node)
}

#[tokio::test(start_paused = true)]
async fn node_entries_reach_the_sockets_they_target_with_their_offsets() {
    let (io, node) = server("mine");
    let client = within("a handshake", Polling::open(&io)).await;
    client.send("40/?rooms=room1.room3,").await;
    let connect = within("the CONNECT", client.recv()).await;
    assert!(connect[0].starts_with("40{"), "{connect:?}");
    settle().await;

    for name in ["broadcast_room", "broadcast_except_binary", "broadcast_all"] {
        let e = entry(name);
        deliver_entry(&node, &e);
    }
    settle().await;
    let packets = within("a GET", client.recv()).await;
    // room1: yes, with its entry id; the binary one excluded room3; everyone: yes.
    let room = entry("broadcast_room");
    let all = entry("broadcast_all");
    assert_eq!(
        packets,
        [
            format!(r#"42["news",{{"title":"x","n":2}},"{}"]"#, room.id),
            format!(r#"42["hello","world",1,"{}"]"#, all.id),
        ]
    );
    // Join, then a volatile binary broadcast to room2 (no offset: volatile is not kept).
    let get = client.spawn_get();
    settle().await;
    deliver_entry(&node, &entry("sockets_join"));
    settle().await;
    let binary = StreamEntry {
        fields: entry("broadcast_except_binary")
            .fields
            .into_iter()
            .map(|(k, v)| {
                // The same broadcast without `except`: to room1 and room2.
                if k != "data" {
                    return (k, v);
                }
                let (mut data, bins) = decode_data(&v).expect("data");
                data["opts"]["except"] = json!([]);
                let mp = msgpack::from_json(&data, &bins);
                (
                    k,
                    base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        msgpack::encode(&mp),
                    ),
                )
            })
            .collect(),
        ..entry("broadcast_except_binary")
    };
    deliver_entry(&node, &binary);
    let reply = within("the parked GET", get).await.expect("the GET");
    let packets = client.decode(&reply);
    assert_eq!(
        packets[0],
        r#"452-["file",{"_placeholder":true,"num":0},{"name":"a.bin","body":{"_placeholder":true,"num":1}}]"#
    );
    // The options Node sent are what the socket matched.
    assert_eq!(
        opts_from(Some(
            &json!({"rooms": ["room1"], "except": [], "flags": {}})
        )),
        local(opts(&["room1"], &[], false))
    );
}
