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
use crate::node::{Answer, Node};
use rmpv::Value as Mp;
use serde_json::{json, Value};
use socketlet::adapter::{AdapterError, BroadcastOptions, Room};
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

/// A broadcast published by another node (or by an emitter).
pub(crate) fn on_broadcast(node: &Arc<Node>, payload: &[u8]) {
    let Some(Mp::Array(parts)) = msgpack::decode(payload) else {
        tracing::debug!("ignored a malformed broadcast");
        return;
    };
    let mut parts = parts.into_iter();
    let (Some(uid), Some(packet), opts) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    if uid.as_str() == Some(node.uid()) {
        return;
    }
    let mut bins = Vec::new();
    let Some(packet) = msgpack::to_json(packet, &mut bins) else {
        return;
    };
    let opts = opts.and_then(|o| msgpack::to_json(o, &mut Vec::new()));
    let Some(packet) = packet_from(&packet, bins) else {
        tracing::debug!("ignored a broadcast that is not an event");
        return;
    };
    let Some(ns) = node.io().and_then(|io| io.namespace(&packet.nsp)) else {
        return;
    };
    ns.local().broadcast(&packet, &opts_from(opts.as_ref()));
}

fn respond(node: &Arc<Node>, nsp: &str, value: Value) {
    let _ = node.publish(node.response_channel(nsp), value.to_string().into_bytes());
}

/// A request from another node (or an emitter).
pub(crate) fn on_request(node: &Arc<Node>, nsp: &str, (req, bins): Answer) {
    if req.get("uid").and_then(Value::as_str) == Some(node.uid()) {
        return;
    }
    let Some(ns) = node.io().and_then(|io| io.namespace(nsp)) else {
        return;
    };
    let request_id = req.get("requestId").cloned().unwrap_or(Value::Null);
    let opts = opts_from(req.get("opts"));
    let rooms_arg = || -> Vec<Room> {
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
    let single = || {
        let sid = req.get("sid").and_then(Value::as_str)?;
        ns.get_socket(sid)
    };
    match req.get("type").and_then(Value::as_u64) {
        Some(SOCKETS) => {
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
        Some(ALL_ROOMS) => {
            respond(
                node,
                nsp,
                json!({ "requestId": request_id, "rooms": ns.local().rooms() }),
            );
        }
        Some(REMOTE_JOIN) => {
            if req.get("opts").is_some() {
                ns.local().add_sockets(&opts, &rooms_arg());
            } else if let Some(s) = single() {
                if let Some(room) = req.get("room").and_then(Value::as_str) {
                    s.join([room]);
                }
                respond(node, nsp, json!({ "requestId": request_id }));
            }
        }
        Some(REMOTE_LEAVE) => {
            if req.get("opts").is_some() {
                ns.local().del_sockets(&opts, &rooms_arg());
            } else if let Some(s) = single() {
                if let Some(room) = req.get("room").and_then(Value::as_str) {
                    s.leave(room);
                }
                respond(node, nsp, json!({ "requestId": request_id }));
            }
        }
        Some(REMOTE_DISCONNECT) => {
            let close = req.get("close").and_then(Value::as_bool).unwrap_or(false);
            if req.get("opts").is_some() {
                let how = if close {
                    socketlet::Disconnect::Connection
                } else {
                    socketlet::Disconnect::Namespace
                };
                ns.local().disconnect_sockets(&opts, how);
            } else if let Some(s) = single() {
                if close {
                    s.close_connection();
                } else {
                    s.disconnect();
                }
                respond(node, nsp, json!({ "requestId": request_id }));
            }
        }
        Some(REMOTE_FETCH) => {
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
        Some(SERVER_SIDE_EMIT) => {
            let Some(data) = req.get("data").and_then(Value::as_array) else {
                return;
            };
            let Some((event, args)) = data.split_first() else {
                return;
            };
            if let Some(event) = event.as_str() {
                ns.deliver_server_side_emit(event, Data::args(args.to_vec()));
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
        Some(BROADCAST) => {
            let Some(packet) = req.get("packet").and_then(|p| packet_from(p, bins)) else {
                return;
            };
            let timeout = req
                .get("opts")
                .and_then(|o| o.get("flags"))
                .and_then(|f| f.get("timeout"))
                .and_then(Value::as_u64)
                .map_or(Duration::from_secs(5), Duration::from_millis);
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
        _ => tracing::debug!(nsp, "ignored a request of unknown type"),
    }
}
