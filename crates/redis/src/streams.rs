//! Redis Streams, in the format of Node's `@socket.io/redis-streams-adapter` 0.3.x (built on
//! socket.io-adapter's cluster messages), and connection state recovery across nodes:
//!
//! - Broadcasts without acks, and the room operations (SOCKETS_JOIN, SOCKETS_LEAVE,
//!   DISCONNECT_SOCKETS), are entries of a stream: `XADD <stream> MAXLEN ~ <max_len> * uid <uid>
//!   nsp <nsp> type <n> data <data>`, `type` a decimal string, `data` the message's data as JSON
//!   text, or as base64 msgpack when it holds binary data (a reader tells them apart by a leading
//!   `{`). The stream is `socket.io`, or with `stream_count > 1` `socket.io-<i>` where `i` is
//!   the namespace's 31-hash (Java's `String.hashCode`, in 32-bit arithmetic) modulo the count.
//! - Every node reads every stream with `XREAD COUNT 100 BLOCK 5000 STREAMS <stream> <last id>`
//!   from `$` (a connection of its own per stream) and acts on the other nodes' entries; a
//!   broadcast's entry id is its offset (connection state recovery). A node delivers its own
//!   broadcast to its own sockets once `XADD` answered, with the id it answered, as Node does
//!   (Redis unreachable: at once, without an offset).
//! - Requests that want answers (broadcasts with acks, `fetch_sockets`, server-side emits) go
//!   over classic pub/sub in the sharded format's messages (msgpack `{uid, nsp, type, data}`)
//!   on `<key>#<nsp>#`, answers on `<key>#<nsp>#<uid>#` (`sharded.rs` reads and answers them);
//!   the cluster's size is `PUBSUB NUMSUB <key>#<nsp>#`.
//! - Sessions: `SET <prefix><pid> base64(msgpack {sid, pid, rooms, data}) PX <ms>`; restored
//!   with `MULTI`, `GET`, `DEL`, `EXEC` and `XRANGE <stream> <offset> <offset>` (the offset's
//!   entry must still be there), then `XRANGE <stream> <next id> + COUNT 100` until nothing
//!   comes (at most 100 calls, and no further once the recovery bounds are passed): the broadcasts of the namespace that reach the session's rooms, each with its
//!   entry id appended.
//!
//! socketlet's `null` socket data (no data) is written as Node's default, `{}`, and `{}` is
//! read back as `null`.

use crate::adapter::{opts_from, opts_mp, packet_from, RedisAdapter};
use crate::msgpack::{self, map};
use crate::node::{Incoming, Node};
use crate::sharded::{self, Message, MessageKind, Sharded};
use crate::SubscriptionMode;
use base64::Engine as _;
use bytes::Bytes;
use rmpv::Value as Mp;
use serde_json::{json, Value};
use socketlet::adapter::session::{append_offset, is_recoverable, reaches};
use socketlet::adapter::{
    Adapter, AdapterError, BoxFuture, BroadcastOptions, Disconnect, LocalNamespace, Restored, Room,
    Session,
};
use socketlet::engine::sync::lock;
use socketlet::socketio_proto::{Packet, PacketData};
use socketlet::RecoveryConfig;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Settings of the streams mode ([`crate::RedisConfig::with_streams`]); the defaults are those
/// of Node's `@socket.io/redis-streams-adapter`, whose option each field names. The pub/sub
/// channel prefix is [`crate::RedisConfig::key`] (Node's `channelPrefix`). Every node of a
/// cluster must agree on all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamsConfig {
    /// The stream (`streamName`), or the prefix of the streams when there are several.
    /// Default: `socket.io`.
    pub stream_name: String,
    /// How many streams (`streamCount`); each namespace uses one. Default: 1.
    pub stream_count: usize,
    /// The approximate bound of each stream's length (`maxLen`, `XADD ... MAXLEN ~`): how far
    /// back a client can recover. Default: 10,000.
    pub max_len: u64,
    /// Entries per `XREAD` (`readCount`). Default: 100.
    pub read_count: usize,
    /// How long one `XREAD` blocks (`blockTimeInMs`). Default: 5 s.
    pub block_time: Duration,
    /// The prefix of session keys (`sessionKeyPrefix`). Default: `sio:session:`.
    pub session_key_prefix: String,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            stream_name: "socket.io".into(),
            stream_count: 1,
            max_len: 10_000,
            read_count: 100,
            block_time: Duration::from_secs(5),
            session_key_prefix: "sio:session:".into(),
        }
    }
}

impl StreamsConfig {
    /// Sets [`StreamsConfig::stream_name`].
    pub fn with_stream_name(mut self, name: impl Into<String>) -> Self {
        self.stream_name = name.into();
        self
    }

    /// Sets [`StreamsConfig::stream_count`] (at least 1).
    pub fn with_stream_count(mut self, n: usize) -> Self {
        self.stream_count = n.max(1);
        self
    }

    /// Sets [`StreamsConfig::max_len`].
    pub fn with_max_len(mut self, n: u64) -> Self {
        self.max_len = n;
        self
    }

    /// Sets [`StreamsConfig::read_count`] (at least 1).
    pub fn with_read_count(mut self, n: usize) -> Self {
        self.read_count = n.max(1);
        self
    }

    /// Sets [`StreamsConfig::block_time`] (at least 1 ms: 0 would block forever).
    pub fn with_block_time(mut self, d: Duration) -> Self {
        self.block_time = d.max(Duration::from_millis(1));
        self
    }

    /// Sets [`StreamsConfig::session_key_prefix`].
    pub fn with_session_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.session_key_prefix = prefix.into();
        self
    }
}

// socket.io-adapter's `MessageType`s that travel in the stream.
const BROADCAST: u64 = 3;
const SOCKETS_JOIN: u64 = 4;
const SOCKETS_LEAVE: u64 = 5;
const DISCONNECT_SOCKETS: u64 = 6;

/// `XRANGE` calls of one restore, at most (Node's `RESTORE_SESSION_MAX_XRANGE_CALLS`).
const RESTORE_MAX_XRANGE_CALLS: usize = 100;

/// Entries one `XRANGE` of a restore reads at most (`COUNT`), so that one reply stays small
/// whatever the stream holds; 100 calls of 100 cover Node's default stream length (10,000).
const RESTORE_XRANGE_COUNT: usize = 100;
/// Entries added with one pipeline, at most.
const WRITE_BATCH: usize = 64;
/// How long one pipeline of `XADD`s may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

// ---- the format ----

/// Node's `hashCode`: `h = h * 31 + c` over the UTF-16 units, in 32-bit signed arithmetic.
pub(crate) fn hash_code(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The stream of namespace `nsp`. As in Node, the index is JavaScript's remainder, negative for
/// a negative hash (Node never reads such a stream; socketlet nodes do, see
/// [`Streams::want_reader`]).
pub(crate) fn stream_name(config: &StreamsConfig, nsp: &str) -> String {
    if config.stream_count <= 1 {
        return config.stream_name.clone();
    }
    let count = i32::try_from(config.stream_count).unwrap_or(i32::MAX);
    format!("{}-{}", config.stream_name, hash_code(nsp) % count)
}

/// The streams every node reads (as Node's adapter: `socket.io`, or `socket.io-0` to
/// `socket.io-<count - 1>`).
pub(crate) fn reader_streams(config: &StreamsConfig) -> Vec<String> {
    if config.stream_count <= 1 {
        return vec![config.stream_name.clone()];
    }
    (0..config.stream_count)
        .map(|i| format!("{}-{i}", config.stream_name))
        .collect()
}

/// Whether `offset` looks like a stream entry id (Node's `/^[0-9]+-[0-9]+$/`).
pub(crate) fn is_offset(offset: &str) -> bool {
    let Some((ms, seq)) = offset.split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(ms) && digits(seq)
}

/// The smallest entry id after `offset` (Node's `nextOffset`: the sequence plus one; XRANGE's
/// exclusive ranges need Redis 6.2). `None` when `offset` is not an id.
pub(crate) fn next_offset(offset: &str) -> Option<String> {
    if !is_offset(offset) {
        return None;
    }
    let (ms, seq) = offset.split_once('-')?;
    let ms: u64 = ms.parse().ok()?;
    let seq: u64 = seq.parse().ok()?;
    Some(match seq.checked_add(1) {
        Some(seq) => format!("{ms}-{seq}"),
        None => format!("{}-0", ms.checked_add(1)?),
    })
}

/// A stream entry, before it is added: its four fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The node that adds it.
    pub(crate) uid: String,
    /// The namespace.
    pub(crate) nsp: String,
    /// socket.io-adapter's message type.
    pub(crate) kind: u64,
    /// The message's data: JSON text, or base64 msgpack when it holds binary data.
    pub(crate) data: Option<String>,
}

impl Entry {
    /// `XADD <stream> MAXLEN ~ <max_len> * uid .. nsp .. type .. [data ..]`, as Node sends it.
    pub(crate) fn xadd(&self, stream: &str, max_len: u64) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(max_len)
            .arg("*")
            .arg("uid")
            .arg(&self.uid)
            .arg("nsp")
            .arg(&self.nsp)
            .arg("type")
            .arg(self.kind.to_string());
        if let Some(data) = &self.data {
            cmd.arg("data").arg(data);
        }
        cmd
    }
}

/// `{rooms, except, flags}` as JSON, as socket.io-adapter's `encodeOptions` writes them.
fn opts_json(opts: &BroadcastOptions) -> Value {
    let flags = if opts.volatile {
        json!({"volatile": true})
    } else {
        json!({})
    };
    json!({"rooms": opts.rooms, "except": opts.except, "flags": flags})
}

/// The entry of a broadcast without acks: `{packet: {type: 2, data: [name, ...args]}, opts}`
/// (Node's packet has no `nsp` yet when it is published). `None` for a packet that is not an
/// event.
pub(crate) fn broadcast_entry(
    uid: &str,
    nsp: &str,
    packet: &Packet,
    opts: &BroadcastOptions,
) -> Option<Entry> {
    let PacketData::Event { name, args, .. } = &packet.data else {
        return None;
    };
    let data = if packet.attachments.is_empty() {
        let mut items = Vec::with_capacity(args.len() + 1);
        items.push(Value::from(name.as_str()));
        items.extend(args.iter().cloned());
        json!({"packet": {"type": 2, "data": items}, "opts": opts_json(opts)}).to_string()
    } else {
        let mut items = Vec::with_capacity(args.len() + 1);
        items.push(Mp::from(name.as_str()));
        items.extend(
            args.iter()
                .map(|a| msgpack::from_json(a, &packet.attachments)),
        );
        let data = map([
            (
                "packet",
                map([("type", Mp::from(2)), ("data", Mp::Array(items))]),
            ),
            ("opts", opts_mp(opts, None)),
        ]);
        base64::engine::general_purpose::STANDARD.encode(msgpack::encode(&data))
    };
    Some(Entry {
        uid: uid.to_owned(),
        nsp: nsp.to_owned(),
        kind: BROADCAST,
        data: Some(data),
    })
}

/// The entry of SOCKETS_JOIN (`join`) or SOCKETS_LEAVE: `{opts, rooms}`.
pub(crate) fn rooms_entry(
    uid: &str,
    nsp: &str,
    opts: &BroadcastOptions,
    rooms: &[Room],
    join: bool,
) -> Entry {
    Entry {
        uid: uid.to_owned(),
        nsp: nsp.to_owned(),
        kind: if join { SOCKETS_JOIN } else { SOCKETS_LEAVE },
        data: Some(json!({"opts": opts_json(opts), "rooms": rooms}).to_string()),
    }
}

/// The entry of DISCONNECT_SOCKETS: `{opts, close}`.
pub(crate) fn disconnect_entry(
    uid: &str,
    nsp: &str,
    opts: &BroadcastOptions,
    close: bool,
) -> Entry {
    Entry {
        uid: uid.to_owned(),
        nsp: nsp.to_owned(),
        kind: DISCONNECT_SOCKETS,
        data: Some(json!({"opts": opts_json(opts), "close": close}).to_string()),
    }
}

/// `XREAD COUNT <n> BLOCK <ms> STREAMS <stream> <offset>` (node-redis's order of the options).
pub(crate) fn xread(config: &StreamsConfig, stream: &str, offset: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(config.read_count)
        .arg("BLOCK")
        .arg(config.block_time.as_millis().max(1) as u64)
        .arg("STREAMS")
        .arg(stream)
        .arg(offset);
    cmd
}

/// The data of an entry: JSON when it starts with `{`, base64 msgpack otherwise (binary data
/// moved out, placeholders left). `None` when it does not decode.
pub(crate) fn decode_data(data: &str) -> Option<(Value, Vec<Bytes>)> {
    if data.starts_with('{') {
        return serde_json::from_str(data).ok().map(|v| (v, Vec::new()));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    let mut bins = Vec::new();
    let value = msgpack::to_json(msgpack::decode(&bytes)?, &mut bins)?;
    Some((value, bins))
}

/// One entry read from a stream: its id and its fields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamEntry {
    /// The entry id (`<ms>-<seq>`).
    pub(crate) id: String,
    /// Its fields and values.
    pub(crate) fields: Vec<(String, String)>,
}

impl StreamEntry {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Text out of a Redis reply (bulk or simple string).
fn text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// The entries of an `XRANGE` reply (`[[id, [field, value, ...]], ...]`); anything else in it
/// is skipped.
pub(crate) fn range_entries(reply: redis::Value) -> Vec<StreamEntry> {
    let redis::Value::Array(entries) = reply else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let redis::Value::Array(parts) = entry else {
                return None;
            };
            let mut parts = parts.into_iter();
            let id = text(&parts.next()?)?;
            let fields = match parts.next()? {
                redis::Value::Array(flat) => flat
                    .chunks(2)
                    .filter_map(|kv| Some((text(kv.first()?)?, text(kv.get(1)?)?)))
                    .collect(),
                redis::Value::Map(pairs) => pairs
                    .iter()
                    .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                    .collect(),
                _ => Vec::new(),
            };
            Some(StreamEntry { id, fields })
        })
        .collect()
}

/// The entries of an `XREAD` reply (nil when nothing came in time; per stream, its name and
/// its entries; a map of them over RESP3).
pub(crate) fn xread_entries(reply: redis::Value) -> Vec<StreamEntry> {
    match reply {
        redis::Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                redis::Value::Array(mut parts) if parts.len() == 2 => {
                    parts.pop().map(range_entries).unwrap_or_default()
                }
                _ => Vec::new(),
            })
            .collect(),
        redis::Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, entries)| range_entries(entries))
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads a stream entry's fields (as Node's adapter writes them) for a node of uid `own_uid`:
/// a message of socket.io-adapter's cluster format, or why it is of no interest. No side
/// effect. Public (hidden) for the fuzz targets.
#[doc(hidden)]
pub fn parse_entry(own_uid: &str, fields: &[(String, String)]) -> Incoming {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    // As Node: an entry without a namespace is skipped.
    let Some(nsp) = field("nsp").filter(|n| !n.is_empty()) else {
        return Incoming::Dropped("a stream entry without a namespace");
    };
    let uid = field("uid").unwrap_or("");
    if uid == own_uid {
        return Incoming::Own;
    }
    let Some(kind) = field("type").and_then(|t| t.parse::<u64>().ok()) else {
        return Incoming::Dropped("a stream entry without a numeric type");
    };
    let (data, bins) = match field("data").filter(|d| !d.is_empty()) {
        Some(d) => match decode_data(d) {
            Some(decoded) => decoded,
            None => return Incoming::Dropped("a stream entry whose data does not decode"),
        },
        None => (Value::Null, Vec::new()),
    };
    let message = json!({"uid": uid, "nsp": nsp, "type": kind, "data": data});
    sharded::parse_message(own_uid, message, bins)
}

/// The session as Node keeps it: base64 of msgpack `{sid, pid, rooms, data}`.
pub(crate) fn encode_session(session: &Session) -> String {
    let data = if session.data.is_null() {
        Mp::Map(Vec::new())
    } else {
        msgpack::from_json(&session.data, &[])
    };
    let rooms = Mp::Array(session.rooms.iter().map(|r| Mp::from(r.as_str())).collect());
    let value = map([
        ("sid", Mp::from(session.sid.as_str())),
        ("pid", Mp::from(session.pid.as_str())),
        ("rooms", rooms),
        ("data", data),
    ]);
    base64::engine::general_purpose::STANDARD.encode(msgpack::encode(&value))
}

/// A session as Node keeps it; `None` when it is not one.
pub(crate) fn decode_session(text: &[u8]) -> Option<Session> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    let value = msgpack::decode(&bytes)?;
    let string = |key: &str| Some(msgpack::get(&value, key)?.as_str()?.to_owned());
    let rooms = match msgpack::get(&value, "rooms") {
        Some(Mp::Array(rooms)) => rooms
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let data = msgpack::get(&value, "data")
        .cloned()
        .and_then(|d| msgpack::to_json(d, &mut Vec::new()))
        .unwrap_or(Value::Null);
    let data = match data {
        Value::Object(o) if o.is_empty() => Value::Null,
        other => other,
    };
    Some(Session::new(string("sid")?, string("pid")?, rooms, data))
}

/// `SET <prefix><pid> <session> PX <ttl ms>`.
pub(crate) fn set_session(prefix: &str, session: &Session, ttl: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(format!("{prefix}{}", session.pid))
        .arg(encode_session(session))
        .arg("PX")
        .arg((ttl.as_millis().max(1)) as u64);
    cmd
}

/// The first step of a restore, as Node sends it: `MULTI`, `GET` and `DEL` of the session,
/// `EXEC`, then `XRANGE <stream> <offset> <offset>`.
pub(crate) fn restore_pipeline(key: &str, stream: &str, offset: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI")
        .cmd("GET")
        .arg(key)
        .cmd("DEL")
        .arg(key)
        .cmd("EXEC")
        .cmd("XRANGE")
        .arg(stream)
        .arg(offset)
        .arg(offset);
    pipe
}

/// The session out of the restore pipeline's replies, if there was one, and whether the
/// offset's entry is still in the stream.
fn session_and_offset(replies: &[redis::Value]) -> (Option<Vec<u8>>, bool) {
    let session = match replies.get(3) {
        Some(redis::Value::Array(results)) => match results.first() {
            Some(redis::Value::BulkString(b)) => Some(b.clone()),
            _ => None,
        },
        _ => None,
    };
    let found = matches!(replies.get(4), Some(redis::Value::Array(e)) if !e.is_empty());
    (session, found)
}

/// A broadcast entry of namespace `nsp` that a socket in `rooms` would have got: its packet,
/// with the entry id appended (Node replays every type-3 entry that passes the room filter).
pub(crate) fn missed_packet(nsp: &str, rooms: &[Room], entry: &StreamEntry) -> Option<Packet> {
    if entry.field("nsp") != Some(nsp) || entry.field("type") != Some("3") {
        return None;
    }
    let (data, bins) = decode_data(entry.field("data")?)?;
    let mut packet = packet_from(data.get("packet")?, bins)?;
    if !reaches(rooms, &opts_from(data.get("opts"))) {
        return None;
    }
    packet.nsp = nsp.to_owned();
    append_offset(&mut packet, &entry.id);
    Some(packet)
}

/// Delivers a broadcast to this node's sockets, with `offset` appended when recovery is on and
/// the packet is one that is kept (an event without an ack, not volatile).
fn deliver(
    local: &LocalNamespace,
    mut packet: Packet,
    mut opts: BroadcastOptions,
    offset: Option<&str>,
    recovery: bool,
) {
    if let (true, Some(offset)) = (recovery, offset) {
        if is_recoverable(&packet, &opts) {
            append_offset(&mut packet, offset);
            opts.offset = true;
        }
    }
    local.broadcast(&packet, &opts);
}

// ---- the writer and the readers ----

/// What to do once an entry was added: with its id, or why it was not.
type Done = Box<dyn FnOnce(Result<String, AdapterError>) + Send>;

struct Job {
    stream: String,
    entry: Entry,
    done: Done,
}

#[derive(Default)]
struct Readers {
    /// The runtime of `attach`, once attached (readers start then).
    runtime: Option<tokio::runtime::Handle>,
    /// Streams to read beyond the configured ones (see [`Streams::want_reader`]).
    wanted: BTreeSet<String>,
    /// Streams with a reader.
    started: HashSet<String>,
}

/// The streams of a node: one ordered writer, one reader per stream.
pub(crate) struct Streams {
    node: Weak<Node>,
    config: StreamsConfig,
    queue: mpsc::Sender<Job>,
    readers: Mutex<Readers>,
}

impl fmt::Debug for Streams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streams")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Streams {
    /// Starts the writer of `node` (readers start at [`Streams::attach`]).
    pub(crate) fn start(node: &Arc<Node>, config: StreamsConfig) -> Arc<Streams> {
        let (queue, rx) = mpsc::channel(node.config.publish_queue.max(1));
        tokio::spawn(run_writer(Arc::downgrade(node), config.max_len, rx));
        Arc::new(Streams {
            node: Arc::downgrade(node),
            config,
            queue,
            readers: Mutex::default(),
        })
    }

    /// Entries waiting for the stream writer.
    pub(crate) fn queue_len(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Starts reading every stream (the node's server is attached: what comes can be
    /// delivered).
    pub(crate) fn attach(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("Redis streams: attach outside a tokio runtime; nothing is read");
            return;
        };
        let mut readers = lock(&self.readers);
        readers.runtime = Some(runtime);
        let all: Vec<String> = reader_streams(&self.config)
            .into_iter()
            .chain(readers.wanted.iter().cloned())
            .collect();
        for stream in all {
            self.start_reader(&mut readers, stream);
        }
    }

    /// Reads `stream` too: the stream of a namespace of this node. Node computes a negative
    /// index for some namespaces when there are several streams and never reads those (an
    /// upstream bug); socketlet nodes read them, so that their namespaces work among them.
    pub(crate) fn want_reader(&self, stream: &str) {
        let mut readers = lock(&self.readers);
        readers.wanted.insert(stream.to_owned());
        if readers.runtime.is_some() {
            self.start_reader(&mut readers, stream.to_owned());
        }
    }

    fn start_reader(&self, readers: &mut Readers, stream: String) {
        let Some(runtime) = readers.runtime.clone() else {
            return;
        };
        if readers.started.insert(stream.clone()) {
            runtime.spawn(run_reader(self.node.clone(), stream, self.config.clone()));
        }
    }

    /// Queues `entry` for `stream`; `done` runs once Redis answered (in the order entries were
    /// queued). When the queue is full, `done` runs at once with the error, which is returned.
    fn add(&self, stream: &str, entry: Entry, done: Done) -> Result<(), AdapterError> {
        let job = Job {
            stream: stream.to_owned(),
            entry,
            done,
        };
        match self.queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                let error = AdapterError::new("the Redis stream queue is full (is Redis down?)");
                let job = match e {
                    mpsc::error::TrySendError::Full(job)
                    | mpsc::error::TrySendError::Closed(job) => job,
                };
                (job.done)(Err(error.clone()));
                Err(error)
            }
        }
    }
}

/// Adds queued entries in order, up to [`WRITE_BATCH`] per pipeline, and runs what waits for
/// each. A failure is logged once per outage; the entries of a failed pipeline are lost for the
/// other nodes (their local part still runs).
async fn run_writer(node: Weak<Node>, max_len: u64, mut rx: mpsc::Receiver<Job>) {
    let failing = AtomicBool::new(false);
    let mut batch: Vec<Job> = Vec::with_capacity(WRITE_BATCH);
    while let Some(job) = rx.recv().await {
        batch.push(job);
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let Some(strong) = node.upgrade() else {
            for job in batch.drain(..) {
                (job.done)(Err(AdapterError::new("the Redis node is gone")));
            }
            return;
        };
        let mut pipe = redis::pipe();
        for job in &batch {
            pipe.add_command(job.entry.xadd(&job.stream, max_len));
        }
        let result = strong
            .query_pipe::<Vec<redis::Value>>(&pipe, WRITE_TIMEOUT)
            .await;
        drop(strong);
        match result {
            Ok(ids) if ids.len() == batch.len() => {
                if failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis stream writes work again");
                }
                for (job, id) in batch.drain(..).zip(ids) {
                    let id = text(&id).filter(|id| is_offset(id));
                    (job.done)(id.ok_or_else(|| AdapterError::new("XADD answered no entry id")));
                }
            }
            other => {
                let error = match other {
                    Err(e) => AdapterError::with_source("cannot add to the Redis stream", e),
                    Ok(_) => AdapterError::new("Redis answered XADD with too few ids"),
                };
                if !failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "{error}; this node's clients are still served (without recovery \
                         offsets), other nodes miss messages until Redis is back"
                    );
                }
                for job in batch.drain(..) {
                    (job.done)(Err(error.clone()));
                }
            }
        }
    }
}

/// Reads `stream` from `$` for as long as the node lives, with a blocking connection of its
/// own, reconnecting with backoff (100 ms doubling to 5 s) and going on from the last entry
/// seen.
async fn run_reader(node: Weak<Node>, stream: String, config: StreamsConfig) {
    let mut offset = "$".to_owned();
    let mut backoff = Duration::from_millis(100);
    let mut lost_since: Option<tokio::time::Instant> = None;
    let connection = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(
            config.block_time.saturating_add(Duration::from_secs(5)),
        ));
    loop {
        let Some(strong) = node.upgrade() else {
            return;
        };
        let client = strong.client().clone();
        drop(strong);
        let why = match client
            .get_multiplexed_async_connection_with_config(&connection)
            .await
        {
            Err(e) => e.to_string(),
            Ok(mut conn) => loop {
                let reply = xread(&config, &stream, &offset)
                    .query_async::<redis::Value>(&mut conn)
                    .await;
                let reply = match reply {
                    Ok(reply) => reply,
                    Err(e) => break e.to_string(),
                };
                if let Some(since) = lost_since.take() {
                    tracing::info!(
                        stream,
                        "Redis stream readable again after {:.1} s; cluster delivery resumes",
                        since.elapsed().as_secs_f64()
                    );
                }
                backoff = Duration::from_millis(100);
                let Some(node) = node.upgrade() else {
                    return;
                };
                for entry in xread_entries(reply) {
                    on_entry(&node, &entry.id, parse_entry(node.uid(), &entry.fields));
                    offset = entry.id;
                }
            },
        };
        tracing::debug!(stream, "Redis stream reader: {why}");
        if lost_since.is_none() {
            lost_since = Some(tokio::time::Instant::now());
            tracing::warn!(
                stream,
                "lost the Redis stream; serving local clients only, reconnecting with backoff"
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Acts on an entry of another node: a broadcast goes to this node's sockets with the entry id
/// as its offset; the rest as the sharded format's messages.
pub(crate) fn on_entry(node: &Arc<Node>, id: &str, incoming: Incoming) {
    match incoming {
        Incoming::Sharded(Message {
            nsp,
            kind:
                MessageKind::Broadcast {
                    packet,
                    opts,
                    acks: None,
                },
            ..
        }) => {
            let Some(io) = node.io() else {
                return;
            };
            let Some(ns) = io.namespace(&nsp) else {
                return;
            };
            let recovery = io.config().recovery.is_some();
            deliver(ns.local(), packet, opts, Some(id), recovery);
        }
        Incoming::Sharded(message) => sharded::on_message(node, message),
        Incoming::Own => {}
        Incoming::Dropped(why) => tracing::debug!(id, "ignored a stream entry: {why}"),
        _ => tracing::debug!(id, "ignored a stream entry of another kind"),
    }
}

// ---- the adapter ----

/// The adapter of one namespace in streams mode.
pub(crate) struct StreamsAdapter {
    node: Arc<Node>,
    streams: Arc<Streams>,
    nsp: String,
    /// The namespace's stream.
    stream: String,
    /// What goes over pub/sub: the sharded format's requests on the namespace's channel.
    requests: RedisAdapter<Sharded>,
}

impl StreamsAdapter {
    pub(crate) fn new(node: Arc<Node>, streams: Arc<Streams>, nsp: &str) -> Self {
        let stream = stream_name(&streams.config, nsp);
        streams.want_reader(&stream);
        StreamsAdapter {
            requests: RedisAdapter::new(node.clone(), nsp, Sharded(SubscriptionMode::Static)),
            node,
            streams,
            nsp: nsp.to_owned(),
            stream,
        }
    }

    /// The server's connection state recovery settings, when it is on.
    fn recovery(&self) -> Option<RecoveryConfig> {
        self.node.io()?.config().recovery.clone()
    }

    /// Makes the targeted sockets join (`join`) or leave `rooms`, through the stream.
    fn join_or_leave(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
        join: bool,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let entry =
            (!opts.local).then(|| rooms_entry(self.node.uid(), &self.nsp, &opts, &rooms, join));
        self.add_then(local, entry, move |local| match join {
            true => local.add_sockets(&opts, &rooms),
            false => local.del_sockets(&opts, &rooms),
        })
    }

    /// Adds `entry`, then does `op` on this node's sockets (whatever Redis answered, as Node
    /// does), and resolves once both are done. Without an entry (a local operation), does `op`
    /// at once.
    fn add_then(
        &self,
        local: &LocalNamespace,
        entry: Option<Entry>,
        op: impl FnOnce(&LocalNamespace) + Send + 'static,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let Some(entry) = entry else {
            op(local);
            return Box::pin(std::future::ready(Ok(())));
        };
        let (tx, rx) = oneshot::channel();
        let local = local.clone();
        let queued = self.streams.add(
            &self.stream,
            entry,
            Box::new(move |result| {
                op(&local);
                let _ = tx.send(result.map(|_| ()));
            }),
        );
        Box::pin(async move {
            queued?;
            rx.await
                .unwrap_or_else(|_| Err(AdapterError::new("the Redis stream writer stopped")))
        })
    }
}

impl Adapter for StreamsAdapter {
    /// Acks, fetches, server-side emits (and letting go of the namespace) are requests over
    /// pub/sub, as the sharded adapter makes them; the rest goes through the stream.
    fn wrapped(&self) -> Option<&dyn Adapter> {
        Some(&self.requests)
    }

    fn broadcast(
        &self,
        local: &LocalNamespace,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError> {
        let entry = match opts.local {
            true => None,
            false => broadcast_entry(self.node.uid(), &self.nsp, &packet, &opts),
        };
        let Some(entry) = entry else {
            local.broadcast(&packet, &opts);
            return Ok(());
        };
        // As Node: this node's sockets get it once Redis gave its offset (or said no).
        let recovery = self.recovery().is_some();
        let local = local.clone();
        self.streams.add(
            &self.stream,
            entry,
            Box::new(move |result| {
                deliver(&local, packet, opts, result.ok().as_deref(), recovery);
            }),
        )
    }

    fn add_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        self.join_or_leave(local, opts, rooms, true)
    }

    fn del_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        self.join_or_leave(local, opts, rooms, false)
    }

    fn disconnect_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
        how: Disconnect,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let close = how == Disconnect::Connection;
        let entry =
            (!opts.local).then(|| disconnect_entry(self.node.uid(), &self.nsp, &opts, close));
        self.add_then(local, entry, move |local| {
            local.disconnect_sockets(&opts, how)
        })
    }

    fn keeps_sessions(&self) -> bool {
        true
    }

    fn persist_session(&self, _local: &LocalNamespace, session: Session) {
        let Some(recovery) = self.recovery() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cmd = set_session(
            &self.streams.config.session_key_prefix,
            &session,
            recovery.max_disconnection_duration,
        );
        let node = self.node.clone();
        runtime.spawn(async move {
            if let Err(e) = node.query::<()>(&cmd, node.config.request_timeout).await {
                tracing::warn!("could not keep a session in Redis: {e}");
            }
        });
    }

    fn restore_session(
        &self,
        _local: &LocalNamespace,
        pid: &str,
        offset: &str,
    ) -> BoxFuture<'static, Result<Option<Restored>, AdapterError>> {
        let limits = self.recovery().unwrap_or_default();
        let restore = Restore {
            node: self.node.clone(),
            stream: self.stream.clone(),
            nsp: self.nsp.clone(),
            key: format!("{}{pid}", self.streams.config.session_key_prefix),
            offset: offset.to_owned(),
            max_packets: limits.max_packets,
            max_bytes: limits.max_bytes,
        };
        Box::pin(restore.run())
    }
}

/// One session's restore.
struct Restore {
    node: Arc<Node>,
    stream: String,
    nsp: String,
    key: String,
    offset: String,
    max_packets: usize,
    max_bytes: usize,
}

impl Restore {
    /// The session and what it missed, as Node's adapter finds them; `None` when the session or
    /// the offset's entry is gone, or when more was missed than the server's recovery bounds
    /// (`max_packets`, `max_bytes`: then the client starts afresh rather than with a part).
    async fn run(self) -> Result<Option<Restored>, AdapterError> {
        if !is_offset(&self.offset) {
            return Err(AdapterError::new("invalid offset"));
        }
        let timeout = self.node.config.request_timeout;
        let replies: Vec<redis::Value> = self
            .node
            .query_pipe(
                &restore_pipeline(&self.key, &self.stream, &self.offset),
                timeout,
            )
            .await
            .map_err(|e| AdapterError::with_source("Redis could not give the session back", e))?;
        let (Some(raw), true) = session_and_offset(&replies) else {
            return Ok(None);
        };
        let session = decode_session(&raw)
            .ok_or_else(|| AdapterError::new("a malformed session in Redis"))?;
        let mut missed = Vec::new();
        let mut bytes = 0usize;
        let mut last = self.offset;
        for _ in 0..RESTORE_MAX_XRANGE_CALLS {
            let Some(from) = next_offset(&last) else {
                break;
            };
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(&self.stream)
                .arg(from)
                .arg("+")
                .arg("COUNT")
                .arg(RESTORE_XRANGE_COUNT);
            let reply: redis::Value = self
                .node
                .query(&cmd, timeout)
                .await
                .map_err(|e| AdapterError::with_source("Redis could not read the stream", e))?;
            let entries = range_entries(reply);
            if entries.is_empty() {
                break;
            }
            for entry in entries {
                if let Some(packet) = missed_packet(&self.nsp, &session.rooms, &entry) {
                    bytes = bytes.saturating_add(entry.field("data").map_or(0, str::len));
                    missed.push(packet);
                }
                last = entry.id;
                if missed.len() > self.max_packets || bytes > self.max_bytes {
                    tracing::debug!(
                        missed = missed.len(),
                        bytes,
                        "a session missed more than the recovery bounds; it starts afresh"
                    );
                    return Ok(None);
                }
            }
        }
        Ok(Some(Restored::new(session, missed)))
    }
}
