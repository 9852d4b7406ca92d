//! What a Redis adapter node reads from Redis, from anyone who can publish there:
//! `socketlet_redis::incoming::parse_incoming`, the side-effect-free first half of a node's
//! dispatch (crates/redis/src/node.rs): the channel's routing, JSON-or-msgpack decoding, the
//! classic adapter's requests, answers and broadcasts (classic.rs), the sharded adapter's
//! messages (sharded.rs) and python-socketio's queue messages, JSON or pickled (python.rs).
//!
//! Also the entries of the Redis Streams adapter's stream (`incoming::parse_entry`, streams.rs):
//! fields written by anyone who can `XADD`.
//!
//! Input: the channel, a line feed, then the payload (a channel without a line feed is the whole
//! input, with an empty payload). Each input is read by a classic node (python channel
//! `socketio`, pickles accepted) and by a sharded one (pickles refused), whose uids are those of
//! the captured Node servers B and D (crates/redis/tests/fixtures/frames.json), so that their
//! frames read as the node's own. The channel `XREAD` stands for a stream entry instead: the
//! payload's lines are its fields' names and values, in turn.
//!
//! Beyond "no panic":
//! - reading is deterministic (twice the same result);
//! - the channel decides the kind: the python channel gives a python message or a refusal (a
//!   pickle is refused, unread, by a node that does not accept them); sharded, a sharded
//!   message; classic, an answer on `<key>-response#`, a request for the namespace named by
//!   `<key>-request#<nsp>#`, a broadcast on `<key>#`; a frame that names the node's uid is its
//!   own;
//! - an adapter's JSON payload carries no attachments (python-socketio's carries them in
//!   base64), and a sharded answer is retyped for the gatherers;
//!   packets are events without an ack id, a sharded one in its message's namespace;
//! - no amplification: apart from pickles (bounded by the pickle reader's own limits), what is
//!   read holds at most two JSON values per payload byte, and attachments no more bytes than
//!   the payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use socketlet_redis::incoming::{
    parse_entry, parse_incoming, Incoming, Message, MessageKind, PyMethod, Refused, RequestKind,
};
use socketlet_redis::{RedisConfig, SubscriptionMode};
use socketlet_socketio_proto::{Packet, PacketData};

/// The python-socketio channel both nodes listen to.
const PYTHON: &str = "socketio";

fuzz_target!(|data: &[u8]| {
    let (channel, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let channel = String::from_utf8_lossy(channel);
    if channel == "XREAD" {
        check_entry(payload);
        return;
    }
    let classic = RedisConfig::new("redis://127.0.0.1")
        .with_python_channel(Some(PYTHON.into()))
        .with_accept_pickle(true);
    let sharded = RedisConfig::new("redis://127.0.0.1")
        .with_python_channel(Some(PYTHON.into()))
        .with_sharded(Some(SubscriptionMode::Dynamic));
    for (config, uid) in [(&classic, "v-z40l"), (&sharded, "5990f8ee88be15e8")] {
        let read = parse_incoming(config, uid, &channel, payload);
        assert_eq!(
            read,
            parse_incoming(config, uid, &channel, payload),
            "not deterministic"
        );
        check(config, &channel, payload, &read);
        if payload.len() < 4096 {
            let _ = format!("{read:?}");
        }
    }
});

fn check(config: &RedisConfig, channel: &str, payload: &[u8], read: &Incoming) {
    let json = payload.first() == Some(&b'{');
    let key = &config.key;
    let mut size = Size::default();
    match read {
        Incoming::Python(result) => {
            assert_eq!(channel, PYTHON);
            match result {
                Ok(message) => {
                    assert!(json || config.accept_pickle);
                    if let PyMethod::Emit {
                        data: Some(data), ..
                    } = &message.method
                    {
                        size.values(&data.args);
                        size.attachments(&data.binary);
                    }
                }
                Err(Refused::Pickled) => assert!(!json && !config.accept_pickle),
                Err(Refused::BadJson(e)) => assert!(json && !e.is_empty()),
                Err(Refused::BadPickle(e)) => assert!(!json && !e.is_empty()),
            }
            if !json {
                // Pickles have bounds of their own (the `pickle` target checks them).
                return;
            }
        }
        Incoming::Sharded(message) => {
            assert!(config.sharded.is_some() && channel != PYTHON);
            size.message(message);
        }
        Incoming::Answer((answer, bins)) => {
            assert!(config.sharded.is_none());
            assert!(channel.starts_with(&format!("{key}-response#")));
            size.value(answer);
            size.attachments(bins);
        }
        Incoming::Request(nsp, request) => {
            assert!(config.sharded.is_none());
            let rest = channel
                .strip_prefix(&format!("{key}-request#"))
                .expect("a request channel");
            assert_eq!(rest.strip_suffix('#').unwrap_or(rest), nsp);
            size.value(&request.request_id);
            match &request.kind {
                RequestKind::Broadcast { packet, .. } => size.packet(packet),
                RequestKind::ServerSideEmit { args, .. } => size.values(args),
                _ => {}
            }
        }
        Incoming::Broadcast(broadcast) => {
            assert!(config.sharded.is_none());
            assert!(channel.starts_with(&format!("{key}#")));
            size.packet(&broadcast.packet);
        }
        Incoming::Own => assert!(channel != PYTHON),
        Incoming::Dropped(why) => assert!(!why.is_empty()),
    }
    // python-socketio's JSON carries base64 attachments; the adapters' JSON carries none.
    if json && channel != PYTHON {
        assert_eq!(size.attachment_bytes, 0, "attachments in JSON");
    }
    size.check(payload.len());
}

/// A stream entry, its fields given as lines of `payload`.
fn check_entry(payload: &[u8]) {
    let lines: Vec<String> = payload
        .split(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let fields: Vec<(String, String)> = lines
        .chunks_exact(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect();
    let uid = "5990f8ee88be15e8";
    let read = parse_entry(uid, &fields);
    assert_eq!(read, parse_entry(uid, &fields), "not deterministic");
    let mut size = Size::default();
    match &read {
        Incoming::Sharded(message) => size.message(message),
        Incoming::Own | Incoming::Dropped(_) => {}
        other => panic!("a stream entry read as {other:?}"),
    }
    // The data field is JSON, or base64 of msgpack (binary values inline).
    let json = fields
        .iter()
        .find(|(k, _)| k == "data")
        .is_some_and(|(_, v)| v.starts_with('{'));
    if json {
        assert_eq!(size.attachment_bytes, 0, "attachments in JSON");
    }
    size.check(payload.len());
    if payload.len() < 4096 {
        let _ = format!("{read:?}");
    }
}

/// What a message read holds: JSON values, bytes of attachments.
#[derive(Default)]
struct Size {
    values: usize,
    attachment_bytes: usize,
}

impl Size {
    /// No amplification (see the module docs).
    fn check(&self, payload: usize) {
        assert!(
            self.values <= 2 * payload + 16,
            "{} JSON values from {payload} bytes",
            self.values
        );
        assert!(self.attachment_bytes <= payload);
    }

    /// A sharded (or stream) message: answers are retyped, packets are in its namespace.
    fn message(&mut self, message: &Message) {
        match &message.kind {
            MessageKind::Answer((answer, bins)) => {
                let kind = answer.get("type").and_then(Value::as_u64);
                assert!(matches!(kind, Some(0 | 8 | 9)), "answer type {kind:?}");
                self.value(answer);
                self.attachments(bins);
            }
            MessageKind::Broadcast { packet, acks, .. } => {
                assert_eq!(packet.nsp, message.nsp);
                self.packet(packet);
                if let Some((id, _)) = acks {
                    self.value(id);
                }
            }
            MessageKind::Fetch { request_id, .. } => self.value(request_id),
            MessageKind::ServerSideEmit {
                data, request_id, ..
            } => {
                self.values(&data.args);
                self.attachments(&data.binary);
                if let Some(id) = request_id {
                    self.value(id);
                }
            }
            MessageKind::Rooms { .. } | MessageKind::Disconnect { .. } => {}
        }
    }

    fn packet(&mut self, packet: &Packet) {
        let PacketData::Event { args, id, .. } = &packet.data else {
            panic!("not an event: {packet:?}");
        };
        assert_eq!(*id, None, "an ack id from Redis");
        self.values(args);
        self.attachments(&packet.attachments);
    }

    fn attachments(&mut self, bins: &[bytes::Bytes]) {
        self.attachment_bytes += bins.iter().map(|b| b.len()).sum::<usize>();
    }

    fn values(&mut self, values: &[Value]) {
        for v in values {
            self.value(v);
        }
    }

    /// Counts the values in `v`, without recursion.
    fn value(&mut self, v: &Value) {
        let mut todo = vec![v];
        while let Some(v) = todo.pop() {
            self.values += 1;
            match v {
                Value::Array(items) => todo.extend(items),
                Value::Object(m) => todo.extend(m.values()),
                _ => {}
            }
        }
    }
}
