//! Two socketlet nodes in one process, clustered through a real `redis-server` that the test
//! starts on a free port (and stops): broadcasts with acks across nodes, what they report when
//! a node is silent or Redis is gone, and dynamic namespaces across the cluster.
//!
//! Skipped, with a message, when there is no `redis-server` on the PATH, unless
//! `SOCKETLET_REQUIRE_REDIS` is set (scripts/test.sh installs it and sets that).

#![allow(clippy::unwrap_used)]

#[path = "../../socketlet/tests/common/mod.rs"]
mod common;
mod support;

use common::*;
use serde_json::json;
use socketlet::{Data, Socket, SocketIo};
use socketlet_redis::{RedisCluster, RedisConfig};
use std::time::Duration;
use support::RedisServer;

/// A node of the cluster: a server with the Redis adapter, `setup` applied before it joins
/// (and what `setup` returned).
async fn node<T>(redis: &RedisServer, setup: impl FnOnce(&SocketIo) -> T) -> (SocketIo, T) {
    let config = RedisConfig::new(redis.url.clone()).with_request_timeout(Duration::from_secs(2));
    let cluster = RedisCluster::connect(config).await.unwrap();
    let io = SocketIo::builder()
        .adapter(cluster.adapter_factory())
        .build();
    let made = setup(&io);
    cluster.attach(&io);
    (io, made)
}

/// Waits until `n` nodes listen to the requests of namespace `nsp` (subscriptions are made in
/// the background).
async fn until_subscribed(redis: &RedisServer, nsp: &str, n: usize) {
    let channel = format!("socket.io-request#{nsp}#");
    within("the nodes to subscribe", async {
        loop {
            let counts: Vec<(String, usize)> =
                redis.query(redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel));
            if counts.first().is_some_and(|(_, c)| *c >= n) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A server whose sockets join the room named by the `room` query parameter.
fn rooms_from_query(io: &SocketIo) {
    io.of("/").on_connect(|socket: Socket| async move {
        if let Some(room) = socket.query("room") {
            socket.join([room]);
        }
    });
}

/// A client of `io` connected to `/` in `room`.
async fn client_in(io: &SocketIo, room: &str) -> Polling {
    let client = Polling::open(io).await;
    client.send(&format!("40/?room={room},")).await;
    let packets = client.recv().await;
    assert!(packets[0].starts_with("40{"), "{packets:?}");
    client
}

/// Answers the next event's ack with `answer`, unless `answer` is `None`.
async fn answer(client: &Polling, answer: Option<&str>) {
    let (id, args) = event_with_id(&client.recv_one().await);
    assert_eq!(args, json!(["question"]));
    if let Some(a) = answer {
        client.send(&format!(r#"43{id}["{a}"]"#)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_with_acks_says_what_came_from_where() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let (a, ()) = node(&redis, rooms_from_query).await;
    let (b, ()) = node(&redis, rooms_from_query).await;
    until_subscribed(&redis, "/", 2).await;
    let on_a = client_in(&a, "r").await;
    let on_b = client_in(&b, "r").await;

    // Everyone answers.
    let op = a.to("r").timeout(Duration::from_secs(2));
    let asking = tokio::spawn({
        let op = op.clone();
        async move { op.emit_with_ack("question", Data::new()).await }
    });
    answer(&on_a, Some("from a")).await;
    answer(&on_b, Some("from b")).await;
    let acks = within("the acks", asking).await.unwrap().unwrap();
    assert!(acks.is_complete(), "{acks:?}");
    let mut got: Vec<String> = acks
        .responses
        .iter()
        .map(|(_, d)| d.args[0].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["from a", "from b"]);

    // The client on B stays silent: one ack missing on another node.
    let asking = tokio::spawn({
        let op = op.clone();
        async move { op.emit_with_ack("question", Data::new()).await }
    });
    answer(&on_a, Some("again")).await;
    answer(&on_b, None).await;
    let acks = within("the acks", asking).await.unwrap().unwrap();
    assert!(!acks.is_complete());
    assert_eq!(acks.responses.len(), 1);
    assert!(acks.missing.is_empty(), "A's own client answered");
    assert_eq!(acks.missing_remote, 1, "{acks:?}");
    assert_eq!(acks.silent_nodes, 0);
    assert!(acks.cluster_error.is_none());

    // Redis is gone: the local client is still asked, and the caller learns the cluster could
    // not be reached.
    redis.stop();
    let asking = tokio::spawn(async move { op.emit_with_ack("question", Data::new()).await });
    answer(&on_a, Some("alone")).await;
    let acks = within("the acks", asking).await.unwrap().unwrap();
    assert_eq!(acks.responses.len(), 1, "{acks:?}");
    let error = acks.cluster_error.expect("the cluster error");
    assert!(
        std::error::Error::source(&error).is_some() || !error.message().is_empty(),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_parent_reaches_its_children_on_every_node() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let teams = |io: &SocketIo| io.dynamic(|name| name.starts_with("/team-"));
    let (a, parent_a) = node(&redis, teams).await;
    let (b, _) = node(&redis, teams).await;

    // The child exists on both nodes once a client connects to it on each.
    let mut clients = Vec::new();
    for io in [&a, &b] {
        let client = Polling::open(io).await;
        client.send("40/team-x,").await;
        assert!(client.recv_one().await.starts_with("40/team-x,{"));
        clients.push(client);
    }
    until_subscribed(&redis, "/team-x", 2).await;

    parent_a.emit("news", json!("to all teams")).unwrap();
    for client in &clients {
        assert_eq!(
            client.recv_one().await,
            r#"42/team-x,["news","to all teams"]"#
        );
    }

    // No node subscribed to a channel of the parent.
    let channels: Vec<String> = redis.query(redis::cmd("PUBSUB").arg("CHANNELS"));
    assert!(
        channels.iter().all(|c| !c.contains("#/_")),
        "a parent namespace has a channel: {channels:?}"
    );
    let patterns: usize = redis.query(redis::cmd("PUBSUB").arg("NUMPAT"));
    let expected_patterns = 2 * 2; // `/` and `/team-x` on each node
    assert!(patterns <= expected_patterns, "{patterns} patterns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_follow_the_subscription_and_the_publish_queue() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let config = RedisConfig::new(redis.url.clone());
    let cluster = RedisCluster::connect(config).await.unwrap();
    let io = SocketIo::builder()
        .adapter(cluster.adapter_factory())
        .build();
    cluster.attach(&io);
    until_subscribed(&redis, "/", 1).await;
    within("the subscription to count", async {
        while !cluster.stats().subscribed {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let stats = cluster.stats();
    assert!(stats.publishing);
    assert_eq!(stats.publish_queue, 0);
    assert!(stats.publish_queue_max > 0);

    redis.stop();
    // The subscriber notices at once; publishing fails at the next emit.
    let _ = io.emit("lost", "while Redis is down");
    within("the stats to see Redis gone", async {
        loop {
            let stats = cluster.stats();
            if !stats.subscribed && !stats.publishing {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_namespace_that_a_refused_connect_made_leaves_its_channels() {
    refused_children_leave_their_channels(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_child_namespace_leaves_its_sharded_channels() {
    refused_children_leave_their_channels(Some(socketlet_redis::SubscriptionMode::Dynamic)).await;
}

/// Refused CONNECTs to children of a dynamic namespace: once they are over, no channel of
/// theirs is left in Redis (classic pub/sub, or sharded pub/sub with `sharded`), while the
/// accepted child keeps its own.
async fn refused_children_leave_their_channels(sharded: Option<socketlet_redis::SubscriptionMode>) {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let config = RedisConfig::new(redis.url.clone())
        .with_request_timeout(Duration::from_secs(2))
        .with_sharded(sharded);
    let cluster = RedisCluster::connect(config).await.unwrap();
    let io = SocketIo::builder()
        .adapter(cluster.adapter_factory())
        .build();
    {
        let teams = io.dynamic(|name| name.starts_with("/team-"));
        teams.use_middleware(|socket: Socket| async move {
            if socket.ns().name() == "/team-ok" {
                return Ok(());
            }
            // Long enough for the node to subscribe to the child's channels first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(socketlet::ConnectError::new("no"))
        });
    }
    cluster.attach(&io);
    let client = Polling::open(&io).await;
    for i in 0..20 {
        client.send(&format!("40/team-{i},")).await;
        assert!(client
            .recv_one()
            .await
            .starts_with(&format!("44/team-{i},")));
    }
    client.send("40/team-ok,").await;
    assert!(client.recv_one().await.starts_with("40/team-ok,{"));
    let kind = if sharded.is_some() {
        "SHARDCHANNELS"
    } else {
        "CHANNELS"
    };
    // The refused ones are gone from the server and from Redis; the accepted one subscribed.
    within("the refused namespaces' channels to go", async {
        loop {
            let channels: Vec<String> = redis.query(redis::cmd("PUBSUB").arg(kind));
            let patterns: usize = redis.query(redis::cmd("PUBSUB").arg("NUMPAT"));
            let stale = channels
                .iter()
                .filter(|c| c.contains("#/team-") && !c.contains("#/team-ok#"))
                .count();
            let ok = channels.iter().any(|c| c.contains("#/team-ok#"));
            let expected_patterns = if sharded.is_some() { 0 } else { 2 };
            if stale == 0 && ok && patterns == expected_patterns {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut names = io.namespace_names();
    names.sort();
    assert_eq!(names, ["/", "/team-ok"]);
}
