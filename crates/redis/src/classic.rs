//! Classic pub/sub, in the format of Node's `@socket.io/redis-adapter` 8.x (`createAdapter`):
//!
//! - broadcast: msgpack `[uid, packet, {rooms, except, flags}]` on `<key>#<nsp>#`, or
//!   `<key>#<nsp>#<room>#` when there is exactly one room;
//! - requests on `<key>-request#<nsp>#`, JSON objects with a numeric `type` (msgpack for
//!   BROADCAST); answers on `<key>-response#<nsp>#`.
//!
//! Also what Node's `@socket.io/redis-emitter` publishes (the same broadcasts and requests).

use crate::adapter::{
    opts_from, opts_mp, packet_from, serve_acks, socket_json, AckReply, Wire, BROADCAST_ACK,
    BROADCAST_CLIENT_COUNT,
};
use crate::msgpack::{self, map};
use crate::node::{Answer, Incoming, Node};
use rmpv::Value as Mp;
use serde_json::{json, Value};
use socketlet::adapter::{AdapterError, BroadcastOptions, Room};
use socketlet::socketio_proto::Packet;
use socketlet::Data;
use std::sync::Arc;
use std::time::Duration;

const SOCKETS: u64 = 0;
const ALL_ROOMS: u64 = 1;
const REMOTE_JOIN: u64 = 2;
const REMOTE_LEAVE: u64 = 3;
const REMOTE_DISCONNECT: u64 = 4;
const REMOTE_FETCH: u64 = 5;
const SERVER_SIDE_EMIT: u64 = 6;
const BROADCAST: u64 = 7;

/// The classic format (see the module doc).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Classic;

fn publish_request(node: &Node, nsp: &str, value: &Value) -> Result<(), AdapterError> {
    node.publish(node.request_channel(nsp), value.to_string().into_bytes())
}

fn opts_json(opts: &BroadcastOptions) -> Value {
    json!({ "rooms": opts.rooms, "except": opts.except })
}

impl Wire for Classic {
    fn broadcast(
        self,
        node: &Node,
        nsp: &str,
        packet: Mp,
        opts: &BroadcastOptions,
    ) -> Result<(), AdapterError> {
        let msg = Mp::Array(vec![Mp::from(node.uid()), packet, opts_mp(opts, None)]);
        let mut channel = node.broadcast_channel(nsp);
        if let [room] = opts.rooms.as_slice() {
            channel.push_str(room);
            channel.push('#');
        }
        node.publish(channel, msgpack::encode(&msg))
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
        let request = map([
            ("uid", Mp::from(node.uid())),
            ("requestId", Mp::from(request_id)),
            ("type", Mp::from(BROADCAST)),
            ("packet", packet),
            ("opts", opts_mp(opts, Some(timeout))),
        ]);
        node.publish(node.request_channel(nsp), msgpack::encode(&request))
    }

    fn fetch_sockets(
        self,
        node: &Node,
        nsp: &str,
        opts: &BroadcastOptions,
        request_id: &str,
    ) -> Result<(), AdapterError> {
        let request = json!({
            "uid": node.uid(),
            "requestId": request_id,
            "type": REMOTE_FETCH,
            "opts": opts_json(opts),
        });
        publish_request(node, nsp, &request)
    }

    fn sockets_join(
        self,
        node: &Node,
        nsp: &str,
        opts: &BroadcastOptions,
        rooms: &[Room],
        join: bool,
    ) -> Result<(), AdapterError> {
        let kind = if join { REMOTE_JOIN } else { REMOTE_LEAVE };
        let request = json!({
            "uid": node.uid(), "type": kind, "opts": opts_json(opts), "rooms": rooms,
        });
        publish_request(node, nsp, &request)
    }

    fn disconnect_sockets(
        self,
        node: &Node,
        nsp: &str,
        opts: &BroadcastOptions,
        close: bool,
    ) -> Result<(), AdapterError> {
        let request = json!({
            "uid": node.uid(), "type": REMOTE_DISCONNECT, "opts": opts_json(opts), "close": close,
        });
        publish_request(node, nsp, &request)
    }

    fn server_side_emit(
        self,
        node: &Node,
        nsp: &str,
        event: &str,
        data: Data,
    ) -> Result<(), AdapterError> {
        let mut args = vec![json!(event)];
        args.extend(data.args);
        let request = json!({ "uid": node.uid(), "type": SERVER_SIDE_EMIT, "data": args });
        publish_request(node, nsp, &request)
    }
}

/// A broadcast published by another node (or by an emitter), as read.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// The event, its namespace and attachments.
    pub packet: Packet,
    /// The sockets it is for.
    pub opts: BroadcastOptions,
}

/// Reads a broadcast: msgpack `[uid, packet, opts]`. A node's own comes back [`Incoming::Own`]
/// before it is converted.
pub(crate) fn parse_broadcast(own_uid: &str, payload: &[u8]) -> Incoming {
    let Some(Mp::Array(parts)) = msgpack::decode(payload) else {
        return Incoming::Dropped("a malformed broadcast");
    };
    let mut parts = parts.into_iter();
    let (Some(uid), Some(packet), opts) = (parts.next(), parts.next(), parts.next()) else {
        return Incoming::Dropped("a broadcast without its packet");
    };
    if uid.as_str() == Some(own_uid) {
        return Incoming::Own;
    }
    let mut bins = Vec::new();
    let Some(packet) = msgpack::to_json(packet, &mut bins) else {
        return Incoming::Dropped("a broadcast whose packet does not convert");
    };
    let opts = opts.and_then(|o| msgpack::to_json(o, &mut Vec::new()));
    let Some(packet) = packet_from(&packet, bins) else {
        return Incoming::Dropped("a broadcast that is not an event");
    };
    Incoming::Broadcast(Broadcast {
        packet,
        opts: opts_from(opts.as_ref()),
    })
}

fn respond(node: &Arc<Node>, nsp: &str, value: Value) {
    let _ = node.publish(node.response_channel(nsp), value.to_string().into_bytes());
}

/// A request from another node (or an emitter), as read.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The id the answers carry (`null` when it has none).
    pub request_id: Value,
    /// What it asks for.
    pub kind: RequestKind,
}

/// What a [`Request`] asks for.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
pub enum RequestKind {
    /// SOCKETS: the ids of the selected sockets.
    Sockets(BroadcastOptions),
    /// ALL_ROOMS: this node's rooms.
    AllRooms,
    /// REMOTE_JOIN (`join`) or REMOTE_LEAVE of the selected sockets; not answered.
    Rooms {
        /// Join, or leave.
        join: bool,
        /// The sockets.
        opts: BroadcastOptions,
        /// The rooms.
        rooms: Vec<Room>,
    },
    /// The older form of REMOTE_JOIN or REMOTE_LEAVE, for one socket; answered when it is here.
    SocketRoom {
        /// Join, or leave.
        join: bool,
        /// The socket.
        sid: String,
        /// The room (none: nothing to do but answer).
        room: Option<Room>,
    },
    /// REMOTE_DISCONNECT of the selected sockets (`close`: their whole connection); not answered.
    Disconnect {
        /// The sockets.
        opts: BroadcastOptions,
        /// Close their connection, not only their namespace.
        close: bool,
    },
    /// The older form of REMOTE_DISCONNECT, for one socket; answered when it is here.
    DisconnectSocket {
        /// The socket.
        sid: String,
        /// Close its connection, not only its namespace.
        close: bool,
    },
    /// REMOTE_FETCH: the selected sockets' descriptions.
    Fetch(BroadcastOptions),
    /// SERVER_SIDE_EMIT: an event for the server-side handlers (none when its name is not a
    /// string), answered when the request has an id.
    ServerSideEmit {
        /// The event name.
        event: Option<String>,
        /// Its arguments.
        args: Vec<Value>,
    },
    /// BROADCAST with acks: the packet for the selected sockets, whose acks are answered until
    /// `timeout`.
    Broadcast {
        /// The event.
        packet: Packet,
        /// The sockets.
        opts: BroadcastOptions,
        /// How long acks are forwarded.
        timeout: Duration,
    },
}

/// Reads a request (already decoded from JSON or msgpack) to the nodes of `nsp`. A node's own
/// comes back [`Incoming::Own`].
pub(crate) fn parse_request(own_uid: &str, nsp: &str, (req, bins): Answer) -> Incoming {
    if req.get("uid").and_then(Value::as_str) == Some(own_uid) {
        return Incoming::Own;
    }
    let request_id = req.get("requestId").cloned().unwrap_or(Value::Null);
    let opts = || opts_from(req.get("opts"));
    let rooms = || -> Vec<Room> {
        req.get("rooms")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The old single-socket form: `sid` and `room` instead of `opts` and `rooms`.
    let sid = || req.get("sid").and_then(Value::as_str).map(str::to_owned);
    let room = || req.get("room").and_then(Value::as_str).map(str::to_owned);
    let kind = match req.get("type").and_then(Value::as_u64) {
        Some(SOCKETS) => RequestKind::Sockets(opts()),
        Some(ALL_ROOMS) => RequestKind::AllRooms,
        Some(kind @ (REMOTE_JOIN | REMOTE_LEAVE)) => {
            let join = kind == REMOTE_JOIN;
            if req.get("opts").is_some() {
                RequestKind::Rooms {
                    join,
                    opts: opts(),
                    rooms: rooms(),
                }
            } else if let Some(sid) = sid() {
                RequestKind::SocketRoom {
                    join,
                    sid,
                    room: room(),
                }
            } else {
                return Incoming::Dropped("a request for one socket without its id");
            }
        }
        Some(REMOTE_DISCONNECT) => {
            let close = req.get("close").and_then(Value::as_bool).unwrap_or(false);
            if req.get("opts").is_some() {
                RequestKind::Disconnect {
                    opts: opts(),
                    close,
                }
            } else if let Some(sid) = sid() {
                RequestKind::DisconnectSocket { sid, close }
            } else {
                return Incoming::Dropped("a request for one socket without its id");
            }
        }
        Some(REMOTE_FETCH) => RequestKind::Fetch(opts()),
        Some(SERVER_SIDE_EMIT) => {
            let Some((event, args)) = req
                .get("data")
                .and_then(Value::as_array)
                .and_then(|d| d.split_first())
            else {
                return Incoming::Dropped("a server-side emit without its event");
            };
            RequestKind::ServerSideEmit {
                event: event.as_str().map(str::to_owned),
                args: args.to_vec(),
            }
        }
        Some(BROADCAST) => {
            let Some(packet) = req.get("packet").and_then(|p| packet_from(p, bins)) else {
                return Incoming::Dropped("a broadcast request that is not an event");
            };
            let timeout = crate::adapter::remote_ack_timeout(
                req.get("opts")
                    .and_then(|o| o.get("flags"))
                    .and_then(|f| f.get("timeout"))
                    .and_then(Value::as_u64),
            );
            RequestKind::Broadcast {
                packet,
                opts: opts(),
                timeout,
            }
        }
        _ => return Incoming::Dropped("a request of unknown type"),
    };
    Incoming::Request(nsp.to_owned(), Request { request_id, kind })
}

/// Answers a request from another node (or an emitter).
pub(crate) fn on_request(node: &Arc<Node>, nsp: &str, Request { request_id, kind }: Request) {
    let Some(ns) = node.io().and_then(|io| io.namespace(nsp)) else {
        return;
    };
    match kind {
        RequestKind::Sockets(opts) => {
            let ids: Vec<String> = ns
                .local()
                .sockets(&opts)
                .iter()
                .map(|s| s.id().to_owned())
                .collect();
            respond(
                node,
                nsp,
                json!({ "requestId": request_id, "sockets": ids }),
            );
        }
        RequestKind::AllRooms => {
            respond(
                node,
                nsp,
                json!({ "requestId": request_id, "rooms": ns.local().rooms() }),
            );
        }
        RequestKind::Rooms { join, opts, rooms } => {
            if join {
                ns.local().add_sockets(&opts, &rooms);
            } else {
                ns.local().del_sockets(&opts, &rooms);
            }
        }
        RequestKind::SocketRoom { join, sid, room } => {
            let Some(s) = ns.get_socket(&sid) else {
                return;
            };
            match room {
                Some(room) if join => s.join([room]),
                Some(room) => s.leave(&room),
                None => {}
            }
            respond(node, nsp, json!({ "requestId": request_id }));
        }
        RequestKind::Disconnect { opts, close } => {
            let how = if close {
                socketlet::Disconnect::Connection
            } else {
                socketlet::Disconnect::Namespace
            };
            ns.local().disconnect_sockets(&opts, how);
        }
        RequestKind::DisconnectSocket { sid, close } => {
            let Some(s) = ns.get_socket(&sid) else {
                return;
            };
            if close {
                s.close_connection();
            } else {
                s.disconnect();
            }
            respond(node, nsp, json!({ "requestId": request_id }));
        }
        RequestKind::Fetch(opts) => {
            let sockets: Vec<Value> = ns
                .local()
                .sockets(&opts)
                .iter()
                .map(|s| socket_json(&s.info()))
                .collect();
            respond(
                node,
                nsp,
                json!({ "requestId": request_id, "sockets": sockets }),
            );
        }
        RequestKind::ServerSideEmit { event, args } => {
            if let Some(event) = event {
                ns.deliver_server_side_emit(&event, Data::args(args));
            }
            if !request_id.is_null() {
                // socketlet's server-side handlers do not answer; say so rather than time out.
                respond(
                    node,
                    nsp,
                    json!({ "type": SERVER_SIDE_EMIT, "requestId": request_id, "data": null }),
                );
            }
        }
        RequestKind::Broadcast {
            packet,
            opts,
            timeout,
        } => {
            let node = node.clone();
            let nsp = nsp.to_owned();
            serve_acks(ns.local(), packet, &opts, timeout, move |reply| {
                let answer = match reply {
                    AckReply::Count(n) => json!({
                        "type": BROADCAST_CLIENT_COUNT, "requestId": request_id, "clientCount": n,
                    })
                    .to_string()
                    .into_bytes(),
                    AckReply::Ack(arg, bins) => msgpack::encode(&map([
                        ("type", Mp::from(BROADCAST_ACK)),
                        ("requestId", msgpack::from_json(&request_id, &[])),
                        ("packet", msgpack::from_json(&arg, &bins)),
                    ])),
                };
                let _ = node.publish(node.response_channel(&nsp), answer);
            });
        }
    }
}
