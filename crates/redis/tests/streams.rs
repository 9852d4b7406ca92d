//! Two socketlet nodes in one process in streams mode (Node's `@socket.io/redis-streams-adapter`
//! format) on a real `redis-server` of the test's own: connection state recovery across nodes,
//! what Redis holds, room operations through the stream, and a Redis that goes away.
//!
//! Skipped, with a message, when there is no `redis-server` on the PATH, unless
//! `SOCKETLET_REQUIRE_REDIS` is set (scripts/test.sh installs it and sets that).

#![allow(clippy::unwrap_used)]

#[path = "../../socketlet/tests/common/mod.rs"]
mod common;
mod support;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use socketlet::{RecoveryConfig, Socket, SocketIo};
use socketlet_redis::{RedisCluster, RedisConfig, StreamsConfig};
use std::time::Duration;
use support::RedisServer;

const RECOVERY: Duration = Duration::from_secs(30);

/// A stream entry id (`<ms>-<seq>`) as numbers, to compare.
fn entry_id(offset: &str) -> (u64, u64) {
    let (ms, seq) = offset.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

/// A node in streams mode with recovery, whose sockets join the room named by their `room` auth
/// field and keep `{"n": <auth n>}` as their data.
async fn node(redis: &RedisServer) -> SocketIo {
    let config = RedisConfig::new(redis.url.clone())
        .with_request_timeout(Duration::from_secs(2))
        .with_streams(Some(StreamsConfig::default()));
    let cluster = RedisCluster::connect(config).await.unwrap();
    let io = SocketIo::builder()
        .adapter(cluster.adapter_factory())
        .connection_state_recovery(
            RecoveryConfig::default().with_max_disconnection_duration(RECOVERY),
        )
        .build();
    io.of("/").on_connect(|socket: Socket| async move {
        if socket.recovered() {
            return;
        }
        if let Some(room) = socket.auth()["room"].as_str() {
            socket.join([room.to_owned()]);
        }
        let _ = socket.set_data(json!({"n": socket.auth()["n"]}));
    });
    cluster.attach(&io);
    io
}

/// Waits until `n` nodes listen on the public channel of `/` (subscriptions and readers start
/// in the background), and a little more for the readers' first XREAD.
async fn until_subscribed(redis: &RedisServer, n: usize) {
    within("the nodes to subscribe", async {
        loop {
            let counts: Vec<(String, usize)> =
                redis.query(redis::cmd("PUBSUB").arg("NUMSUB").arg("socket.io#/#"));
            if counts.first().is_some_and(|(_, c)| *c >= n) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
}

/// The CONNECT answer's JSON, and the packets before it.
async fn connect(io: &SocketIo, auth: Value) -> (Polling, Value, Vec<String>) {
    let client = Polling::open(io).await;
    client.send(&format!("40{auth}")).await;
    let mut before = Vec::new();
    loop {
        for packet in within("the CONNECT answer", client.recv()).await {
            if let Some(json) = packet.strip_prefix("40") {
                return (client, serde_json::from_str(json).unwrap(), before);
            }
            before.push(packet);
        }
    }
}

/// An EVENT to `/`: its name and arguments.
fn event(packet: &str) -> (String, Vec<Value>) {
    let mut args: Vec<Value> = serde_json::from_str(packet.strip_prefix("42").unwrap()).unwrap();
    let name = args.remove(0).as_str().unwrap().to_owned();
    (name, args)
}

/// The last argument of an EVENT: its offset, a stream entry id.
fn offset(packet: &str) -> String {
    let (_, args) = event(packet);
    let offset = args.last().unwrap().as_str().unwrap().to_owned();
    let (ms, seq) = offset.split_once('-').unwrap();
    assert!(
        ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok(),
        "{offset}"
    );
    offset
}

/// The session Redis keeps for `pid`, decoded (base64 msgpack), once it is there.
async fn session_in_redis(redis: &RedisServer, pid: &str) -> rmpv::Value {
    let key = format!("sio:session:{pid}");
    let raw: String = within("the session to be kept", async {
        loop {
            let raw: Option<String> = redis.query(redis::cmd("GET").arg(&key));
            if let Some(raw) = raw {
                return raw;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .unwrap();
    rmpv::decode::read_value(&mut bytes.as_slice()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_on_another_node_with_what_it_missed() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = node(&redis).await;
    let b = node(&redis).await;
    until_subscribed(&redis, 2).await;

    let (client, answer, _) = connect(&a, json!({"room": "lobby", "n": 7})).await;
    let sid = answer["sid"].as_str().unwrap().to_owned();
    let pid = answer["pid"].as_str().unwrap().to_owned();
    // From B, through the stream: the client on A gets it with the entry id as its offset.
    b.to("lobby").emit("news", 1).unwrap();
    let news = within("news", client.recv_one()).await;
    assert!(news.starts_with(r#"42["news",1,""#), "{news}");
    // From A itself: delivered once XADD answered, with its id.
    a.of("/")
        .get_socket(&sid)
        .unwrap()
        .emit("direct", 2)
        .unwrap();
    let direct = within("direct", client.recv_one()).await;
    assert!(direct.starts_with(r#"42["direct",2,""#), "{direct}");
    let last_seen = offset(&direct);
    assert!(offset(&news) < last_seen || offset(&news).len() < last_seen.len());

    client.drop_transport().await;
    // The session is in Redis, in Node's format.
    let session = session_in_redis(&redis, &pid).await;
    let get = |k: &str| {
        session
            .as_map()
            .unwrap()
            .iter()
            .find(|(key, _)| key.as_str() == Some(k))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("sid").as_str(), Some(sid.as_str()));
    assert_eq!(get("pid").as_str(), Some(pid.as_str()));
    let mut rooms: Vec<String> = get("rooms")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    rooms.sort();
    let mut expected = vec![sid.clone(), "lobby".to_owned()];
    expected.sort();
    assert_eq!(rooms, expected);
    assert_eq!(get("data").to_string(), r#"{"n": 7}"#);
    let ttl: i64 = redis.query(redis::cmd("PTTL").arg(format!("sio:session:{pid}")));
    assert!(ttl > 0 && ttl <= RECOVERY.as_millis() as i64, "{ttl}");

    // Meanwhile, from both nodes: to its room, to everyone, to it alone, to another room, and
    // one that excludes its room.
    b.to("lobby").emit("missed-room", 3).unwrap();
    a.emit("missed-all", 4).unwrap();
    b.to(sid.clone()).emit("missed-own", 5).unwrap();
    a.to("other").emit("not-for-it", 6).unwrap();
    b.of("/").except("lobby").emit("excluded", 7).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // It comes back on B.
    let (client, answer, before) = connect(&b, json!({"pid": pid, "offset": last_seen})).await;
    assert_eq!(answer["sid"], sid, "the same socket id");
    assert_eq!(answer["pid"], pid);
    // Two nodes wrote to the stream at once: the order between them is the stream's, which
    // the replay follows (entry ids increase), and no other.
    let mut names: Vec<String> = before.iter().map(|p| event(p).0).collect();
    names.sort();
    assert_eq!(names, ["missed-all", "missed-own", "missed-room"]);
    let offsets: Vec<(u64, u64)> = before.iter().map(|p| entry_id(&offset(p))).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    let socket = b.of("/").get_socket(&sid).unwrap();
    assert!(socket.recovered());
    assert!(socket.rooms().contains(&"lobby".to_owned()));
    assert_eq!(socket.data(), json!({"n": 7}));
    // The session is gone from Redis (GET and DEL), and the socket is served from B now.
    let gone: Option<String> = redis.query(redis::cmd("GET").arg(format!("sio:session:{pid}")));
    assert!(gone.is_none());
    a.to("lobby").emit("after", 8).unwrap();
    let after = within("after", client.recv_one()).await;
    assert!(after.starts_with(r#"42["after",8,""#), "{after}");

    // The same session cannot be restored twice.
    let (_, again, before) = connect(&a, json!({"pid": pid, "offset": last_seen})).await;
    assert_ne!(again["sid"], sid);
    assert!(before.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_gone_from_the_stream_gives_a_fresh_socket() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = node(&redis).await;
    until_subscribed(&redis, 1).await;
    let (client, answer, _) = connect(&a, json!({"room": "lobby"})).await;
    a.emit("one", 1).unwrap();
    let seen = offset(&within("one", client.recv_one()).await);
    client.drop_transport().await;
    session_in_redis(&redis, answer["pid"].as_str().unwrap()).await;

    // An offset that is not an entry id: refused before Redis is asked (the session stays).
    let (_, fresh, _) = connect(&a, json!({"pid": answer["pid"], "offset": "12"})).await;
    assert_ne!(fresh["sid"], answer["sid"]);
    // The entry of the offset was trimmed away: a fresh socket (and the session is used up).
    let _: i64 = redis.query(redis::cmd("XDEL").arg("socket.io").arg(&seen));
    let (_, fresh, before) = connect(&a, json!({"pid": answer["pid"], "offset": seen})).await;
    assert_ne!(fresh["sid"], answer["sid"]);
    assert!(before.is_empty());
    let gone: Option<String> = redis
        .query(redis::cmd("GET").arg(format!("sio:session:{}", answer["pid"].as_str().unwrap())));
    assert!(gone.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_operations_travel_in_the_stream_and_stay_in_order() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = node(&redis).await;
    let b = node(&redis).await;
    until_subscribed(&redis, 2).await;
    let (on_b, answer, _) = connect(&b, json!({"room": "lobby"})).await;
    let sid = answer["sid"].as_str().unwrap().to_owned();

    // A makes B's socket join a room, then broadcasts to it: the join arrives first.
    a.to("lobby").sockets_join(["vip"]).await.unwrap();
    a.to("vip").emit("vip-news", 1).unwrap();
    let news = within("vip-news", on_b.recv_one()).await;
    assert!(news.starts_with(r#"42["vip-news",1,""#), "{news}");
    assert!(b
        .of("/")
        .get_socket(&sid)
        .unwrap()
        .rooms()
        .contains(&"vip".to_owned()));

    // The entries are Node's: type "4" then "3", with JSON data.
    let entries: Vec<(String, Vec<String>)> =
        redis.query(redis::cmd("XRANGE").arg("socket.io").arg("-").arg("+"));
    let types: Vec<&str> = entries
        .iter()
        .map(|(_, fields)| {
            let i = fields.iter().position(|f| f == "type").unwrap();
            fields[i + 1].as_str()
        })
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "4").count(),
        1,
        "{entries:?}"
    );
    let join = entries
        .iter()
        .find(|(_, f)| f.contains(&"4".to_owned()))
        .unwrap();
    let data: Value = serde_json::from_str(join.1.last().unwrap()).unwrap();
    assert_eq!(
        data,
        json!({"opts": {"rooms": ["lobby"], "except": [], "flags": {}}, "rooms": ["vip"]})
    );

    // Leaving and disconnecting, from A, reach B's socket.
    a.to("vip").sockets_leave(["vip"]).await.unwrap();
    within("the leave", async {
        while b
            .of("/")
            .get_socket(&sid)
            .unwrap()
            .rooms()
            .contains(&"vip".to_owned())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    a.to(sid.clone()).disconnect_sockets().await.unwrap();
    let packets = within("the disconnect", on_b.recv()).await;
    assert!(packets.iter().any(|p| p == "41"), "{packets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_local_clients_are_still_served() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let a = node(&redis).await;
    until_subscribed(&redis, 1).await;
    let (client, _, _) = connect(&a, json!({"room": "lobby"})).await;
    redis.stop();
    // XADD fails: delivered without an offset (nothing to recover from), not lost.
    a.to("lobby").emit("alone", 1).unwrap();
    let packet = within("alone", client.recv_one()).await;
    assert_eq!(packet, r#"42["alone",1]"#);
}
