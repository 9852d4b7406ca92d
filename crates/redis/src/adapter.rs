//! The adapter of one namespace over Redis, whatever the wire format: the local part of every
//! operation, what crosses nodes handed to a [`Wire`] (classic or sharded pub/sub), and the
//! gathering of other nodes' answers. Also the conversions both formats share: Node's packets,
//! options and socket descriptions.

use crate::msgpack::{self, map};
use crate::node::{random_id, Node, Pending};
use rmpv::Value as Mp;
use serde_json::{json, Value};
use socketlet::adapter::{Adapter, AdapterError, BoxFuture, BroadcastOptions, Room};
use socketlet::socketio_proto::{Packet, PacketData};
use socketlet::{AckResponses, Data, Disconnect, LocalAcks, LocalNamespace, SocketInfo};
use std::sync::Arc;
use std::time::Duration;

/// The type of an answer with the count of acks a node expects, as the gatherers read answers
/// (the classic format's numbers; the sharded one converts its own).
pub(crate) const BROADCAST_CLIENT_COUNT: u64 = 8;
/// The type of an answer with one ack.
pub(crate) const BROADCAST_ACK: u64 = 9;

/// How the operations that cross nodes are put on the wire. Each method publishes one message
/// (answers, if any, come back through the node's pending requests).
pub(crate) trait Wire: Copy + Send + Sync + 'static {
    /// A broadcast without acks (`packet` in Node's form).
    fn broadcast(
        self,
        node: &Node,
        nsp: &str,
        packet: Mp,
        opts: &BroadcastOptions,
    ) -> Result<(), AdapterError>;

    /// A broadcast whose acks are wanted, answered under `request_id`.
    fn broadcast_with_ack(
        self,
        node: &Node,
        nsp: &str,
        packet: Mp,
        opts: &BroadcastOptions,
        timeout: Duration,
        request_id: &str,
    ) -> Result<(), AdapterError>;

    /// A request for the other nodes' sockets, answered under `request_id`.
    fn fetch_sockets(
        self,
        node: &Node,
        nsp: &str,
        opts: &BroadcastOptions,
        request_id: &str,
    ) -> Result<(), AdapterError>;

    /// Makes the targeted sockets join (`join`) or leave `rooms`.
    fn sockets_join(
        self,
        node: &Node,
        nsp: &str,
        opts: &BroadcastOptions,
        rooms: &[Room],
        join: bool,
    ) -> Result<(), AdapterError>;

    /// Disconnects the targeted sockets.
    fn disconnect_sockets(
        self,
        node: &Node,
        nsp: &str,
        opts: &BroadcastOptions,
        close: bool,
    ) -> Result<(), AdapterError>;

    /// An event for the other nodes' server-side handlers.
    fn server_side_emit(
        self,
        node: &Node,
        nsp: &str,
        event: &str,
        data: Data,
    ) -> Result<(), AdapterError>;

    /// A room got its first local socket or lost its last one. Default: nothing.
    fn room_changed(self, node: &Node, nsp: &str, room: &str, private: bool) {
        let _ = (node, nsp, room, private);
    }
}

pub(crate) struct RedisAdapter<W> {
    node: Arc<Node>,
    nsp: String,
    wire: W,
}

impl<W: Wire> RedisAdapter<W> {
    pub(crate) fn new(node: Arc<Node>, nsp: &str, wire: W) -> Self {
        RedisAdapter {
            node,
            nsp: nsp.to_owned(),
            wire,
        }
    }

    /// The local part is done; this is the rest, as the future the trait wants.
    fn then_remote(
        &self,
        opts: &BroadcastOptions,
        remote: impl FnOnce() -> Result<(), AdapterError>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let result = if opts.local { Ok(()) } else { remote() };
        Box::pin(async move { result })
    }
}

pub(crate) fn opts_mp(opts: &BroadcastOptions, timeout: Option<Duration>) -> Mp {
    let rooms = Mp::Array(opts.rooms.iter().map(|r| Mp::from(r.as_str())).collect());
    let except = Mp::Array(opts.except.iter().map(|r| Mp::from(r.as_str())).collect());
    let mut flags = vec![];
    if opts.volatile {
        flags.push((Mp::from("volatile"), Mp::Boolean(true)));
    }
    if let Some(t) = timeout {
        flags.push((Mp::from("timeout"), Mp::from(t.as_millis() as u64)));
    }
    map([
        ("rooms", rooms),
        ("except", except),
        ("flags", Mp::Map(flags)),
    ])
}

/// A socket.io event packet as Node's adapter carries it: `{type: 2, data: [name, ...args], nsp}`
/// with binary data in place.
pub(crate) fn packet_mp(packet: &Packet) -> Option<Mp> {
    let PacketData::Event { name, args, .. } = &packet.data else {
        return None;
    };
    let mut data = Vec::with_capacity(args.len() + 1);
    data.push(Mp::from(name.as_str()));
    data.extend(
        args.iter()
            .map(|a| msgpack::from_json(a, &packet.attachments)),
    );
    Some(map([
        ("type", Mp::from(2)),
        ("data", Mp::Array(data)),
        ("nsp", Mp::from(packet.nsp.as_str())),
    ]))
}

/// An event packet from its Node form (already converted to JSON with placeholders).
pub(crate) fn packet_from(v: &Value, bins: Vec<bytes::Bytes>) -> Option<Packet> {
    let kind = v.get("type")?.as_u64()?;
    // EVENT, or BINARY_EVENT from a sender that deconstructed it already.
    if kind != 2 && kind != 5 {
        return None;
    }
    let data = v.get("data")?.as_array()?;
    let (name, args) = data.split_first()?;
    let nsp = v.get("nsp").and_then(Value::as_str).unwrap_or("/");
    Some(Packet {
        nsp: nsp.to_owned(),
        data: PacketData::Event {
            name: name.as_str()?.to_owned(),
            args: args.to_vec(),
            id: None,
        },
        attachments: bins,
    })
}

pub(crate) fn opts_from(v: Option<&Value>) -> BroadcastOptions {
    let list = |key: &str| -> Vec<Room> {
        v.and_then(|o| o.get(key))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| match r {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let flags = v.and_then(|o| o.get("flags"));
    BroadcastOptions {
        rooms: list("rooms"),
        except: list("except"),
        volatile: flags
            .and_then(|f| f.get("volatile"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        local: true,
        ..Default::default()
    }
}

/// What Node sends about a socket in answer to REMOTE_FETCH: `{id, handshake, rooms, data}`.
pub(crate) fn socket_json(info: &SocketInfo) -> Value {
    json!({
        "id": info.id,
        "handshake": serde_json::to_value(&info.handshake).unwrap_or(Value::Null),
        "rooms": info.rooms,
        "data": info.data,
    })
}

/// A socket of another node, from its REMOTE_FETCH description.
pub(crate) fn socket_from(nsp: &str, v: &Value) -> Option<SocketInfo> {
    let rooms = v
        .get("rooms")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // Node's handshake has these fields; a missing or odd one is left at its default.
    let handshake = v
        .get("handshake")
        .cloned()
        .and_then(|h| serde_json::from_value(h).ok())
        .unwrap_or_default();
    Some(SocketInfo::remote(
        v.get("id")?.as_str()?.to_owned(),
        nsp.to_owned(),
        rooms,
        v.get("data").cloned().unwrap_or(Value::Null),
        handshake,
    ))
}

impl<W: Wire> Adapter for RedisAdapter<W> {
    fn broadcast(
        &self,
        local: &LocalNamespace,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError> {
        local.broadcast(&packet, &opts);
        if opts.local {
            return Ok(());
        }
        match packet_mp(&packet) {
            Some(p) => self.wire.broadcast(&self.node, &self.nsp, p, &opts),
            None => Ok(()),
        }
    }

    fn broadcast_with_ack(
        &self,
        local: &LocalNamespace,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Duration,
    ) -> BoxFuture<'static, AckResponses> {
        if opts.local {
            return Box::pin(local.broadcast_with_ack(packet, &opts, timeout));
        }
        let request_id = random_id(16);
        let pending = self.node.expect_answers(&request_id);
        let published = match packet_mp(&packet) {
            Some(p) => {
                self.wire
                    .broadcast_with_ack(&self.node, &self.nsp, p, &opts, timeout, &request_id)
            }
            None => Ok(()),
        };
        let local = local.broadcast_acks(packet, &opts);
        let remote = published.map(|()| pending);
        Box::pin(gather_acks(
            self.node.clone(),
            self.nsp.clone(),
            local,
            remote,
            timeout,
        ))
    }

    fn fetch_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketInfo>, AdapterError>> {
        let local: Vec<SocketInfo> = local.fetch_sockets(&opts);
        if opts.local {
            return Box::pin(async move { Ok(local) });
        }
        let (node, nsp, wire) = (self.node.clone(), self.nsp.clone(), self.wire);
        Box::pin(async move {
            let others = node.server_count(&nsp).await?.saturating_sub(1);
            if others == 0 {
                return Ok(local);
            }
            let request_id = random_id(16);
            let mut pending = node.expect_answers(&request_id);
            wire.fetch_sockets(&node, &nsp, &opts, &request_id)?;
            let mut sockets = local;
            let deadline = deadline_after(node.config.request_timeout);
            let mut answered = 0;
            while answered < others {
                match tokio::time::timeout_at(deadline, pending.rx.recv()).await {
                    Ok(Some((v, _))) => {
                        answered += 1;
                        if let Some(list) = v.get("sockets").and_then(Value::as_array) {
                            sockets.extend(list.iter().filter_map(|s| socket_from(&nsp, s)));
                        }
                    }
                    Ok(None) | Err(_) => {
                        return Err(AdapterError::new(format!(
                            "fetch_sockets timed out: {answered} of {others} other nodes answered"
                        )))
                    }
                }
            }
            Ok(sockets)
        })
    }

    fn add_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        local.add_sockets(&opts, &rooms);
        self.then_remote(&opts, || {
            self.wire
                .sockets_join(&self.node, &self.nsp, &opts, &rooms, true)
        })
    }

    fn del_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        local.del_sockets(&opts, &rooms);
        self.then_remote(&opts, || {
            self.wire
                .sockets_join(&self.node, &self.nsp, &opts, &rooms, false)
        })
    }

    fn disconnect_sockets(
        &self,
        local: &LocalNamespace,
        opts: BroadcastOptions,
        how: Disconnect,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        local.disconnect_sockets(&opts, how);
        self.then_remote(&opts, || {
            self.wire.disconnect_sockets(
                &self.node,
                &self.nsp,
                &opts,
                how == Disconnect::Connection,
            )
        })
    }

    fn server_side_emit(
        &self,
        _local: &LocalNamespace,
        event: &str,
        data: Data,
    ) -> Result<(), AdapterError> {
        self.wire
            .server_side_emit(&self.node, &self.nsp, event, data)
    }

    fn room_created(&self, _local: &LocalNamespace, room: &str, private: bool) {
        self.wire.room_changed(&self.node, &self.nsp, room, private);
    }

    fn room_deleted(&self, _local: &LocalNamespace, room: &str, private: bool) {
        self.wire.room_changed(&self.node, &self.nsp, room, private);
    }

    fn namespace_removed(&self, _local: &LocalNamespace) {
        self.node.unregister_namespace(&self.nsp);
    }
}

/// The longest ack timeout another node's broadcast may ask for (`opts.flags.timeout`):
/// anything longer is cut to this.
pub(crate) const MAX_REMOTE_ACK_TIMEOUT: Duration = Duration::from_secs(3600);

/// The ack timeout a broadcast from another node asks for, in milliseconds (Node's 5 s when it
/// names none), at most [`MAX_REMOTE_ACK_TIMEOUT`].
pub(crate) fn remote_ack_timeout(ms: Option<u64>) -> Duration {
    ms.map_or(Duration::from_secs(5), Duration::from_millis)
        .min(MAX_REMOTE_ACK_TIMEOUT)
}

/// Now plus `timeout`, or a day from now when that cannot be told (a timeout of `Duration::MAX`
/// from the application).
fn deadline_after(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(86_400))
}

/// Gathers the answers to a broadcast with acks: the local sockets' acks, and from every other
/// node first its count of expected acks (`BROADCAST_CLIENT_COUNT`) then each ack
/// (`BROADCAST_ACK`), until all came or `timeout` passed. Answers arrive in the classic adapter's
/// shape (the sharded one converts its own to it). `remote` is the error instead when the
/// request could not be published: only the local sockets are waited for then.
pub(crate) async fn gather_acks(
    node: Arc<Node>,
    nsp: String,
    mut local: LocalAcks,
    remote: Result<Pending, AdapterError>,
    timeout: Duration,
) -> AckResponses {
    let deadline = deadline_after(timeout);
    let (mut pending, other_nodes, cluster_error) = match remote {
        Ok(pending) => match node.server_count(&nsp).await {
            Ok(n) => (Some(pending), n.saturating_sub(1), None),
            Err(e) => (None, 0, Some(e)),
        },
        Err(e) => (None, 0, Some(e)),
    };
    let mut responses = Vec::new();
    let (mut counts_in, mut remote_expected, mut remote_acks) = (0usize, 0usize, 0usize);
    let mut local_done = local.expected() == 0;
    loop {
        let remote_done = counts_in >= other_nodes && remote_acks >= remote_expected;
        if local_done && remote_done {
            break;
        }
        let next_remote = async {
            match pending.as_mut() {
                Some(p) => p.rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            answer = local.next(deadline), if !local_done => match answer {
                Some(a) => responses.push(a),
                None => local_done = true,
            },
            answer = next_remote, if !remote_done => match answer {
                Some((v, bins)) => match v.get("type").and_then(Value::as_u64) {
                    Some(BROADCAST_CLIENT_COUNT) => {
                        counts_in += 1;
                        let count = v.get("clientCount").and_then(Value::as_u64).unwrap_or(0);
                        remote_expected = remote_expected
                            .saturating_add(usize::try_from(count).unwrap_or(usize::MAX));
                    }
                    Some(BROADCAST_ACK) => {
                        remote_acks += 1;
                        let arg = v.get("packet").cloned().unwrap_or(Value::Null);
                        responses.push((String::new(), Data { args: vec![arg], binary: bins }));
                    }
                    _ => {}
                },
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let mut result = AckResponses::local(responses, local.missing());
    result.missing_remote = remote_expected.saturating_sub(remote_acks);
    result.silent_nodes = other_nodes.saturating_sub(counts_in);
    result.cluster_error = cluster_error;
    result
}

/// What this node tells the node that asked for a broadcast with acks.
pub(crate) enum AckReply {
    /// How many acks to expect from this node (sent first).
    Count(usize),
    /// One socket's ack: its first argument, with its attachments.
    Ack(Value, Vec<bytes::Bytes>),
}

/// Runs another node's broadcast with acks on this node's sockets: `reply` gets the count at
/// once, then each ack as it comes (until `timeout`).
pub(crate) fn serve_acks(
    local: &LocalNamespace,
    packet: Packet,
    opts: &BroadcastOptions,
    timeout: Duration,
    reply: impl Fn(AckReply) + Send + 'static,
) {
    let mut acks = local.broadcast_acks(packet, opts);
    reply(AckReply::Count(acks.expected()));
    tokio::spawn(async move {
        let deadline = deadline_after(timeout);
        while let Some((_, mut data)) = acks.next(deadline).await {
            // Node forwards the first argument of each ack.
            let arg = if data.args.is_empty() {
                Value::Null
            } else {
                data.args.swap_remove(0)
            };
            reply(AckReply::Ack(arg, data.binary));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_from_the_wire_are_bounded() {
        assert_eq!(remote_ack_timeout(None), Duration::from_secs(5));
        assert_eq!(remote_ack_timeout(Some(250)), Duration::from_millis(250));
        assert_eq!(remote_ack_timeout(Some(u64::MAX)), MAX_REMOTE_ACK_TIMEOUT);
    }

    #[tokio::test]
    async fn a_deadline_past_the_clock_is_a_day_away() {
        let now = tokio::time::Instant::now();
        let far = deadline_after(Duration::MAX);
        assert!(far >= now + Duration::from_secs(86_399));
    }

    #[test]
    fn packets_round_trip_through_the_node_format() {
        let packet = Packet {
            nsp: "/chat".into(),
            data: PacketData::Event {
                name: "file".into(),
                args: vec![json!({"body": {"_placeholder": true, "num": 0}}), json!(7)],
                id: None,
            },
            attachments: vec![bytes::Bytes::from_static(b"\x00\x01")],
        };
        let mp = packet_mp(&packet).unwrap();
        let mut bins = Vec::new();
        let back = packet_from(&msgpack::to_json(mp, &mut bins).unwrap(), bins).unwrap();
        assert_eq!(back, packet);
    }

    #[test]
    fn options_from_node() {
        let o = opts_from(Some(
            &json!({"rooms": ["a", 5], "except": ["b"], "flags": {"volatile": true}}),
        ));
        assert_eq!(o.rooms, vec!["a".to_owned(), "5".to_owned()]);
        assert_eq!(o.except, vec!["b".to_owned()]);
        assert!(o.volatile && o.local);
        assert_eq!(
            opts_from(None),
            BroadcastOptions {
                local: true,
                ..Default::default()
            }
        );
    }
}
