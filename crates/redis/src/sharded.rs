//! Redis 7 sharded pub/sub, in the format of Node's
//! `createShardedAdapter` (`@socket.io/redis-adapter` 8.x, built on socket.io-adapter's cluster
//! messages):
//!
//! - every message is `{uid, nsp, type, data}`, published with `SPUBLISH` on `<key>#<nsp>#`, or
//!   on `<key>#<nsp>#<room>#` for a broadcast to exactly one room in the dynamic modes;
//! - answers go to the asking node's own channel `<key>#<nsp>#<uid>#`;
//! - JSON or msgpack, told apart by the first byte (this node always writes msgpack, which
//!   carries binary attachments as they are).
//!
//! The packets, options and socket descriptions inside are those of the classic format (the
//! shared conversions live in `adapter.rs`).

use crate::adapter::{
    opts_from, opts_mp, packet_from, serve_acks, socket_json, AckReply, Wire,
    BROADCAST_ACK as ACK_ANSWER, BROADCAST_CLIENT_COUNT as COUNT_ANSWER,
};
use crate::msgpack::{self, map};
use crate::node::{decode_json_or_msgpack, Answer, Incoming, Node};
use crate::SubscriptionMode;
use rmpv::Value as Mp;
use serde_json::{json, Value};
use socketlet::adapter::{AdapterError, BroadcastOptions, Room};
use socketlet::socketio_proto::Packet;
use socketlet::Data;
use std::sync::Arc;
use std::time::Duration;

// socket.io-adapter's `MessageType` (heartbeats and ADAPTER_CLOSE, 1, 2 and 13, belong to the
// adapters that count nodes by heartbeat; the Redis ones ask Redis instead and ignore them).
const BROADCAST: u64 = 3;
const SOCKETS_JOIN: u64 = 4;
const SOCKETS_LEAVE: u64 = 5;
const DISCONNECT_SOCKETS: u64 = 6;
const FETCH_SOCKETS: u64 = 7;
const FETCH_SOCKETS_RESPONSE: u64 = 8;
const SERVER_SIDE_EMIT: u64 = 9;
const SERVER_SIDE_EMIT_RESPONSE: u64 = 10;
const BROADCAST_CLIENT_COUNT: u64 = 11;
const BROADCAST_ACK: u64 = 12;

/// Node's test for "this room is a socket id" (its ids are 20 characters, as socketlet's).
fn looks_like_a_socket_id(room: &str) -> bool {
    room.chars().count() == 20
}

/// The sharded format, with the node's subscription mode (see the module doc).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sharded(pub(crate) SubscriptionMode);

fn publish_on(
    node: &Node,
    channel: String,
    nsp: &str,
    kind: u64,
    data: Mp,
) -> Result<(), AdapterError> {
    let message = map([
        ("uid", Mp::from(node.uid())),
        ("nsp", Mp::from(nsp)),
        ("type", Mp::from(kind)),
        ("data", data),
    ]);
    node.publish(channel, msgpack::encode(&message))
}

/// Publishes on the namespace's channel.
fn publish(node: &Node, nsp: &str, kind: u64, data: Mp) -> Result<(), AdapterError> {
    publish_on(node, node.broadcast_channel(nsp), nsp, kind, data)
}

/// Answers the node `to`.
fn respond(node: &Node, to: &str, nsp: &str, kind: u64, data: Mp) {
    let _ = publish_on(node, node.shard_channel(nsp, to), nsp, kind, data);
}

impl Wire for Sharded {
    fn broadcast(
        self,
        node: &Node,
        nsp: &str,
        packet: Mp,
        opts: &BroadcastOptions,
    ) -> Result<(), AdapterError> {
        // As Node computes it: a dynamic room's own channel for exactly one room, the
        // namespace's channel otherwise.
        let channel = match opts.rooms.as_slice() {
            [room]
                if self.0 == SubscriptionMode::DynamicPrivate
                    || (self.0 == SubscriptionMode::Dynamic && !looks_like_a_socket_id(room)) =>
            {
                node.shard_channel(nsp, room)
            }
            _ => node.broadcast_channel(nsp),
        };
        let data = map([("packet", packet), ("opts", opts_mp(opts, None))]);
        publish_on(node, channel, nsp, BROADCAST, data)
    }

    fn broadcast_with_ack(
        self,
        node: &Node,
        nsp: &str,
        packet: Mp,
        opts: &BroadcastOptions,
        timeout: Duration,
        request_id: &str,
    ) -> Result<(), AdapterError> {
        // Always on the namespace's channel: the count of nodes to wait for is that channel's
        // subscribers.
        let data = map([
            ("packet", packet),
            ("requestId", Mp::from(request_id)),
            ("opts", opts_mp(opts, Some(timeout))),
        ]);
        publish(node, nsp, BROADCAST, data)
    }

    fn fetch_sockets(
        self,
        node: &Node,
        nsp: &str,
        opts: &BroadcastOptions,
        request_id: &str,
    ) -> Result<(), AdapterError> {
        let data = map([
            ("opts", opts_mp(opts, None)),
            ("requestId", Mp::from(request_id)),
        ]);
        publish(node, nsp, FETCH_SOCKETS, data)
    }

    fn sockets_join(
        self,
        node: &Node,
        nsp: &str,
        opts: &BroadcastOptions,
        rooms: &[Room],
        join: bool,
    ) -> Result<(), AdapterError> {
        let rooms = Mp::Array(rooms.iter().map(|r| Mp::from(r.as_str())).collect());
        let data = map([("opts", opts_mp(opts, None)), ("rooms", rooms)]);
        let kind = if join { SOCKETS_JOIN } else { SOCKETS_LEAVE };
        publish(node, nsp, kind, data)
    }

    fn disconnect_sockets(
        self,
        node: &Node,
        nsp: &str,
        opts: &BroadcastOptions,
        close: bool,
    ) -> Result<(), AdapterError> {
        let data = map([("opts", opts_mp(opts, None)), ("close", Mp::Boolean(close))]);
        publish(node, nsp, DISCONNECT_SOCKETS, data)
    }

    fn server_side_emit(
        self,
        node: &Node,
        nsp: &str,
        event: &str,
        data: Data,
    ) -> Result<(), AdapterError> {
        let mut packet = vec![Mp::from(event)];
        packet.extend(
            data.args
                .iter()
                .map(|a| msgpack::from_json(a, &data.binary)),
        );
        publish(
            node,
            nsp,
            SERVER_SIDE_EMIT,
            map([("packet", Mp::Array(packet))]),
        )
    }

    fn room_changed(self, node: &Node, nsp: &str, room: &str, private: bool) {
        if self.0.has_channel(private) {
            node.room_changed(nsp, room);
        }
    }
}

/// A message from another node (on a namespace's channel, a room's, or this node's own), as
/// read.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The node that sent it (empty when it did not say).
    pub uid: String,
    /// Its namespace.
    pub nsp: String,
    /// What it says.
    pub kind: MessageKind,
}

/// What a sharded [`Message`] says.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
pub enum MessageKind {
    /// An answer to a request of some node, in the shape the classic adapter's gatherers read
    /// (its `type` converted to theirs).
    Answer(Answer),
    /// A broadcast to the selected sockets; with a request id and a timeout when acks are
    /// wanted.
    Broadcast {
        /// The event (in the message's namespace).
        packet: Packet,
        /// The sockets.
        opts: BroadcastOptions,
        /// The request id and how long acks are forwarded, for a broadcast with acks.
        acks: Option<(Value, Duration)>,
    },
    /// SOCKETS_JOIN (`join`) or SOCKETS_LEAVE.
    Rooms {
        /// Join, or leave.
        join: bool,
        /// The sockets.
        opts: BroadcastOptions,
        /// The rooms.
        rooms: Vec<Room>,
    },
    /// DISCONNECT_SOCKETS (`close`: their whole connection).
    Disconnect {
        /// The sockets.
        opts: BroadcastOptions,
        /// Close their connection, not only their namespace.
        close: bool,
    },
    /// FETCH_SOCKETS, answered under the request id.
    Fetch {
        /// The sockets.
        opts: BroadcastOptions,
        /// The id of the answer (`null` when none).
        request_id: Value,
    },
    /// SERVER_SIDE_EMIT (the event is none when its name is not a string), answered when it has
    /// a request id.
    ServerSideEmit {
        /// The event name.
        event: Option<String>,
        /// Its arguments and their attachments.
        data: Data,
        /// The id of the answer.
        request_id: Option<Value>,
    },
}

/// Reads a sharded message (JSON or msgpack). A node's own comes back [`Incoming::Own`].
pub(crate) fn parse(own_uid: &str, payload: &[u8]) -> Incoming {
    let Some((message, bins)) = decode_json_or_msgpack(payload) else {
        return Incoming::Dropped("a malformed sharded message");
    };
    parse_message(own_uid, message, bins)
}

/// Reads a message already decoded (`{uid, nsp, type, data}`, attachments moved out): the
/// sharded format's, or a stream entry's of the streams adapter. A node's own comes back
/// [`Incoming::Own`].
pub(crate) fn parse_message(own_uid: &str, message: Value, bins: Vec<bytes::Bytes>) -> Incoming {
    let uid = message.get("uid").and_then(Value::as_str).unwrap_or("");
    if uid == own_uid {
        return Incoming::Own;
    }
    let (Some(kind), Some(nsp)) = (
        message.get("type").and_then(Value::as_u64),
        message.get("nsp").and_then(Value::as_str),
    ) else {
        return Incoming::Dropped("a sharded message without type or namespace");
    };
    let data = message.get("data").cloned().unwrap_or(Value::Null);
    // Answers to this node's requests, in the shape the classic adapter's gatherers read.
    let answer_type = match kind {
        BROADCAST_CLIENT_COUNT => Some(COUNT_ANSWER),
        BROADCAST_ACK => Some(ACK_ANSWER),
        FETCH_SOCKETS_RESPONSE | SERVER_SIDE_EMIT_RESPONSE => Some(0),
        _ => None,
    };
    let opts = || opts_from(data.get("opts"));
    let rooms = || -> Vec<Room> {
        data.get("rooms")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let request_id = data.get("requestId").cloned();
    let kind = if let Some(answer_type) = answer_type {
        let Value::Object(mut answer) = data else {
            return Incoming::Dropped("a sharded answer that is not an object");
        };
        answer.insert("type".into(), json!(answer_type));
        MessageKind::Answer((Value::Object(answer), bins))
    } else {
        match kind {
            BROADCAST => {
                let Some(mut packet) = data.get("packet").and_then(|p| packet_from(p, bins)) else {
                    return Incoming::Dropped("a sharded broadcast that is not an event");
                };
                // Node's cluster messages name the namespace beside the packet, not in it.
                packet.nsp = nsp.to_owned();
                let acks = request_id.map(|id| {
                    let timeout = crate::adapter::remote_ack_timeout(
                        data.get("opts")
                            .and_then(|o| o.get("flags"))
                            .and_then(|f| f.get("timeout"))
                            .and_then(Value::as_u64),
                    );
                    (id, timeout)
                });
                MessageKind::Broadcast {
                    packet,
                    opts: opts(),
                    acks,
                }
            }
            SOCKETS_JOIN | SOCKETS_LEAVE => MessageKind::Rooms {
                join: kind == SOCKETS_JOIN,
                opts: opts(),
                rooms: rooms(),
            },
            DISCONNECT_SOCKETS => MessageKind::Disconnect {
                opts: opts(),
                close: data.get("close").and_then(Value::as_bool).unwrap_or(false),
            },
            FETCH_SOCKETS => MessageKind::Fetch {
                opts: opts(),
                request_id: request_id.unwrap_or(Value::Null),
            },
            SERVER_SIDE_EMIT => {
                let Some((event, args)) = data
                    .get("packet")
                    .and_then(Value::as_array)
                    .and_then(|p| p.split_first())
                else {
                    return Incoming::Dropped("a server-side emit without its event");
                };
                MessageKind::ServerSideEmit {
                    event: event.as_str().map(str::to_owned),
                    data: Data {
                        args: args.to_vec(),
                        binary: bins,
                    },
                    request_id,
                }
            }
            _ => return Incoming::Dropped("a sharded message of another type"),
        }
    };
    Incoming::Sharded(Message {
        uid: uid.to_owned(),
        nsp: nsp.to_owned(),
        kind,
    })
}

/// Acts on a message from another node.
pub(crate) fn on_message(node: &Arc<Node>, Message { uid, nsp, kind }: Message) {
    let kind = match kind {
        MessageKind::Answer(answer) => {
            node.deliver_answer(answer);
            return;
        }
        other => other,
    };
    let Some(ns) = node.io().and_then(|io| io.namespace(&nsp)) else {
        return;
    };
    match kind {
        MessageKind::Answer(_) => {}
        MessageKind::Broadcast { packet, opts, acks } => {
            let Some((request_id, timeout)) = acks else {
                ns.local().broadcast(&packet, &opts);
                return;
            };
            let (node, to, nsp) = (node.clone(), uid, nsp);
            let request_id = msgpack::from_json(&request_id, &[]);
            serve_acks(ns.local(), packet, &opts, timeout, move |reply| {
                let (kind, data) = match reply {
                    AckReply::Count(n) => (
                        BROADCAST_CLIENT_COUNT,
                        map([
                            ("requestId", request_id.clone()),
                            ("clientCount", Mp::from(n as u64)),
                        ]),
                    ),
                    AckReply::Ack(arg, bins) => (
                        BROADCAST_ACK,
                        map([
                            ("requestId", request_id.clone()),
                            ("packet", msgpack::from_json(&arg, &bins)),
                        ]),
                    ),
                };
                respond(&node, &to, &nsp, kind, data);
            });
        }
        MessageKind::Rooms { join, opts, rooms } => {
            if join {
                ns.local().add_sockets(&opts, &rooms);
            } else {
                ns.local().del_sockets(&opts, &rooms);
            }
        }
        MessageKind::Disconnect { opts, close } => {
            let how = if close {
                socketlet::Disconnect::Connection
            } else {
                socketlet::Disconnect::Namespace
            };
            ns.local().disconnect_sockets(&opts, how);
        }
        MessageKind::Fetch { opts, request_id } => {
            let sockets: Vec<Mp> = ns
                .local()
                .sockets(&opts)
                .iter()
                .map(|s| msgpack::from_json(&socket_json(&s.info()), &[]))
                .collect();
            let request_id = msgpack::from_json(&request_id, &[]);
            let data = map([("requestId", request_id), ("sockets", Mp::Array(sockets))]);
            respond(node, &uid, &nsp, FETCH_SOCKETS_RESPONSE, data);
        }
        MessageKind::ServerSideEmit {
            event,
            data,
            request_id,
        } => {
            if let Some(event) = event {
                ns.deliver_server_side_emit(&event, data);
            }
            if let Some(request_id) = request_id {
                // socketlet's server-side handlers do not answer; say so rather than let the
                // asking node time out.
                let data = map([
                    ("requestId", msgpack::from_json(&request_id, &[])),
                    ("packet", Mp::Nil),
                ]);
                respond(node, &uid, &nsp, SERVER_SIDE_EMIT_RESPONSE, data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_ids_are_recognised_as_node_does() {
        assert!(looks_like_a_socket_id("AAAAAAAAAAAAAAAAAAAA"));
        assert!(!looks_like_a_socket_id("room-1"));
        assert!(!looks_like_a_socket_id("/admin#AAAAAAAAAAAAAAAAAAAA"));
    }

    #[test]
    fn subscription_modes_choose_room_channels() {
        assert!(!SubscriptionMode::Static.has_channel(false));
        assert!(SubscriptionMode::Dynamic.has_channel(false));
        assert!(!SubscriptionMode::Dynamic.has_channel(true));
        assert!(SubscriptionMode::DynamicPrivate.has_channel(true));
    }
}
