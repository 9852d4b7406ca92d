//! The adapter of one namespace, and the answers to other nodes' requests, in the formats of
//! Node's `@socket.io/redis-adapter` 8.x:
//!
//! - broadcast: msgpack `[uid, packet, {rooms, except, flags}]` on `<key>#<nsp>#`, or
//!   `<key>#<nsp>#<room>#` when there is exactly one room;
//! - requests on `<key>-request#<nsp>#`, JSON objects with a numeric `type` (msgpack for
//!   BROADCAST); answers on `<key>-response#<nsp>#`.

use crate::msgpack::{self, map};
use crate::node::{random_id, Answer, Node, Pending};
use rmpv::Value as Mp;
use serde_json::{json, Value};
use socketlet::adapter::{Adapter, AdapterError, BoxFuture, BroadcastOptions, Room};
use socketlet::socketio_proto::{Packet, PacketData};
use socketlet::{AckResponses, Data, LocalAcks, Namespace, SocketInfo};
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
pub(crate) const BROADCAST_CLIENT_COUNT: u64 = 8;
pub(crate) const BROADCAST_ACK: u64 = 9;

pub(crate) struct RedisAdapter {
    node: Arc<Node>,
    nsp: String,
}

impl RedisAdapter {
    pub(crate) fn new(node: Arc<Node>, nsp: &str) -> Self {
        RedisAdapter {
            node,
            nsp: nsp.to_owned(),
        }
    }

    fn publish_json(&self, value: &Value) -> Result<(), AdapterError> {
        self.node.publish(
            self.node.request_channel(&self.nsp),
            value.to_string().into_bytes(),
        )
    }
}

fn opts_json(opts: &BroadcastOptions) -> Value {
    json!({ "rooms": opts.rooms, "except": opts.except })
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
    }
}

/// What Node sends about a socket in answer to REMOTE_FETCH.
pub(crate) fn socket_json(info: &SocketInfo) -> Value {
    let handshake = match &info.local {
        Some(socket) => {
            let req = socket.request();
            let headers: serde_json::Map<String, Value> = req
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), json!(v.to_str().ok()?))))
                .collect();
            let query: serde_json::Map<String, Value> = req
                .uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), json!(v))
                })
                .collect();
            json!({
                "headers": headers,
                "address": req.remote_addr.map(|a| a.ip().to_string()),
                "xdomain": req.headers.contains_key("origin"),
                "secure": false,
                "url": req.uri.to_string(),
                "query": query,
                "auth": info.auth,
            })
        }
        None => json!({ "auth": info.auth }),
    };
    json!({ "id": info.id, "handshake": handshake, "rooms": info.rooms, "data": null })
}

pub(crate) fn socket_from(nsp: &str, v: &Value) -> Option<SocketInfo> {
    Some(SocketInfo {
        id: v.get("id")?.as_str()?.to_owned(),
        nsp: nsp.to_owned(),
        rooms: v
            .get("rooms")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        auth: v
            .get("handshake")
            .and_then(|h| h.get("auth"))
            .cloned()
            .unwrap_or(Value::Null),
        local: None,
    })
}

impl Adapter for RedisAdapter {
    fn broadcast(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError> {
        ns.local_broadcast(&packet, &opts);
        if opts.local {
            return Ok(());
        }
        let Some(p) = packet_mp(&packet) else {
            return Ok(());
        };
        let msg = Mp::Array(vec![Mp::from(self.node.uid()), p, opts_mp(&opts, None)]);
        let mut channel = self.node.broadcast_channel(&self.nsp);
        if let [room] = opts.rooms.as_slice() {
            channel.push_str(room);
            channel.push('#');
        }
        self.node.publish(channel, msgpack::encode(&msg))
    }

    fn broadcast_with_ack(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Duration,
    ) -> BoxFuture<'static, AckResponses> {
        if opts.local {
            return Box::pin(ns.local_broadcast_with_ack(packet, &opts, timeout));
        }
        let request_id = random_id(6);
        let pending = self.node.expect_answers(&request_id);
        if let Some(p) = packet_mp(&packet) {
            let request = map([
                ("uid", Mp::from(self.node.uid())),
                ("requestId", Mp::from(request_id.as_str())),
                ("type", Mp::from(BROADCAST)),
                ("packet", p),
                ("opts", opts_mp(&opts, Some(timeout))),
            ]);
            let _ = self.node.publish(
                self.node.request_channel(&self.nsp),
                msgpack::encode(&request),
            );
        }
        let local = ns.local_broadcast_acks(packet, &opts);
        Box::pin(gather_acks(
            self.node.clone(),
            self.nsp.clone(),
            local,
            pending,
            timeout,
        ))
    }

    fn fetch_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketInfo>, AdapterError>> {
        let local: Vec<SocketInfo> = ns.local_sockets(&opts).iter().map(|s| s.info()).collect();
        if opts.local {
            return Box::pin(async move { Ok(local) });
        }
        let node = self.node.clone();
        let request_id = random_id(6);
        let request = json!({
            "uid": node.uid(),
            "requestId": request_id,
            "type": REMOTE_FETCH,
            "opts": opts_json(&opts),
        });
        let channel = node.request_channel(&self.nsp);
        Box::pin(fetch_remote(
            node.clone(),
            self.nsp.clone(),
            local,
            request_id,
            move || node.publish(channel, request.to_string().into_bytes()),
        ))
    }

    fn add_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        ns.local_add_sockets(&opts, &rooms);
        let result = if opts.local {
            Ok(())
        } else {
            self.publish_json(&json!({
                "uid": self.node.uid(), "type": REMOTE_JOIN, "opts": opts_json(&opts), "rooms": rooms,
            }))
        };
        Box::pin(async move { result })
    }

    fn del_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        ns.local_del_sockets(&opts, &rooms);
        let result = if opts.local {
            Ok(())
        } else {
            self.publish_json(&json!({
                "uid": self.node.uid(), "type": REMOTE_LEAVE, "opts": opts_json(&opts), "rooms": rooms,
            }))
        };
        Box::pin(async move { result })
    }

    fn disconnect_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        ns.local_disconnect_sockets(&opts, close);
        let result = if opts.local {
            Ok(())
        } else {
            self.publish_json(&json!({
                "uid": self.node.uid(), "type": REMOTE_DISCONNECT, "opts": opts_json(&opts), "close": close,
            }))
        };
        Box::pin(async move { result })
    }

    fn server_side_emit(
        &self,
        _ns: &Namespace,
        event: &str,
        data: Data,
    ) -> Result<(), AdapterError> {
        let mut args = vec![json!(event)];
        args.extend(data.args);
        self.publish_json(
            &json!({ "uid": self.node.uid(), "type": SERVER_SIDE_EMIT, "data": args }),
        )
    }
}

/// Gathers the answers to a broadcast with acks: the local sockets' acks, and from every other
/// node first its count of expected acks (`BROADCAST_CLIENT_COUNT`) then each ack
/// (`BROADCAST_ACK`), until all came or `timeout` passed. Answers arrive in the classic adapter's
/// shape (the sharded one converts its own to it).
pub(crate) async fn gather_acks(
    node: Arc<Node>,
    nsp: String,
    mut local: LocalAcks,
    mut pending: Pending,
    timeout: Duration,
) -> AckResponses {
    let deadline = tokio::time::Instant::now() + timeout;
    let other_nodes = node.server_count(&nsp).await.unwrap_or(1).saturating_sub(1);
    let mut responses = Vec::new();
    let (mut counts_in, mut remote_expected, mut remote_acks) = (0usize, 0usize, 0usize);
    let mut local_done = local.expected() == 0;
    loop {
        let remote_done = counts_in >= other_nodes && remote_acks >= remote_expected;
        if local_done && remote_done {
            break;
        }
        tokio::select! {
            answer = local.next(deadline), if !local_done => match answer {
                Some(a) => responses.push(a),
                None => local_done = true,
            },
            answer = pending.rx.recv() => match answer {
                Some((v, bins)) => match v.get("type").and_then(Value::as_u64) {
                    Some(BROADCAST_CLIENT_COUNT) => {
                        counts_in += 1;
                        remote_expected += v.get("clientCount").and_then(Value::as_u64).unwrap_or(0) as usize;
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
    AckResponses {
        responses,
        missing: local.missing(),
    }
}

/// Asks the other nodes for their sockets (`publish` sends the request once the answers are
/// expected) and adds what they answer to `local`, or fails after the request timeout.
pub(crate) async fn fetch_remote(
    node: Arc<Node>,
    nsp: String,
    local: Vec<SocketInfo>,
    request_id: String,
    publish: impl FnOnce() -> Result<(), AdapterError>,
) -> Result<Vec<SocketInfo>, AdapterError> {
    let others = node.server_count(&nsp).await?.saturating_sub(1);
    if others == 0 {
        return Ok(local);
    }
    let mut pending = node.expect_answers(&request_id);
    publish()?;
    let mut sockets = local;
    let deadline = tokio::time::Instant::now() + node.config.request_timeout;
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
                return Err(AdapterError(format!(
                    "fetch_sockets timed out: {answered} of {others} other nodes answered"
                )))
            }
        }
    }
    Ok(sockets)
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
    ns: &Namespace,
    packet: Packet,
    opts: &BroadcastOptions,
    timeout: Duration,
    reply: impl Fn(AckReply) + Send + 'static,
) {
    let mut acks = ns.local_broadcast_acks(packet, opts);
    reply(AckReply::Count(acks.expected()));
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
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
    ns.local_broadcast(&packet, &opts_from(opts.as_ref()));
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
                .local_sockets(&opts)
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
                json!({ "requestId": request_id, "rooms": ns.local_rooms() }),
            );
        }
        Some(REMOTE_JOIN) => {
            if req.get("opts").is_some() {
                ns.local_add_sockets(&opts, &rooms_arg());
            } else if let Some(s) = single() {
                if let Some(room) = req.get("room").and_then(Value::as_str) {
                    s.join([room]);
                }
                respond(node, nsp, json!({ "requestId": request_id }));
            }
        }
        Some(REMOTE_LEAVE) => {
            if req.get("opts").is_some() {
                ns.local_del_sockets(&opts, &rooms_arg());
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
                ns.local_disconnect_sockets(&opts, close);
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
                .local_sockets(&opts)
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
            serve_acks(&ns, packet, &opts, timeout, move |reply| {
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

#[cfg(test)]
mod tests {
    use super::*;

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
