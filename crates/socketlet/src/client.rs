//! A client: one Engine.IO connection, carrying sockets for one or more namespaces.
//!
//! It turns Engine.IO messages into Socket.IO packets (with a bounded [`Decoder`]) and routes
//! them: CONNECT runs the namespace's middlewares, EVENT and ACK go to the socket of their
//! namespace, anything malformed closes the connection.

use crate::config::Parser;
use crate::data::Data;
use crate::error::{ConnectError, DisconnectReason, EmitError};
use crate::runner::{run_boxed, run_detached};
use crate::server::ServerInner;
use crate::socket::Socket;
use bytes::Bytes;
use serde_json::Value;
use socketlet_engine::proto::Str;
use socketlet_engine::sync::{lock, read};
use socketlet_engine::{CloseReason, Message, SendError, Socket as EngineSocket};
use socketlet_socketio_proto::{Decoder, Packet, PacketData, ProtocolVersion};
use std::sync::{Arc, Mutex, Weak};

/// How many CONNECTs one connection may have under way at once (their middlewares, hooks or
/// session restores not yet over). Clients send one per namespace they use, all at once when
/// they reconnect; a connection that sends more is closed (a protocol error), so that no client
/// can hold the server's hook calls or Redis round trips for itself.
pub(crate) const MAX_CONNECTS_UNDER_WAY: usize = 32;

/// How a packet goes to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handoff {
    /// Written by the caller when nothing waits before it (the engine's default).
    Now,
    /// Left to the connection's own task (see `Namespace::local_broadcast`).
    Queued,
    /// Dropped if the client is not ready for it (Socket.IO's `volatile`).
    Volatile,
}

/// `repr(C)` with `engine` first: every packet sent to the client goes through it.
#[repr(C)]
pub(crate) struct Client {
    engine: Arc<EngineSocket>,
    protocol: ProtocolVersion,
    parser: Parser,
    /// The bounds on binary data (the msgpack parser checks them per packet).
    limits: socketlet_socketio_proto::DecoderLimits,
    decoder: Mutex<Inbound>,
    /// The sockets of the connected namespaces, sorted by their namespace's name and found by
    /// binary search (see [`find_nsp`]); `None` once the connection closed (no socket may join
    /// then). A sorted list: most clients join one namespace, where a map would cost ~170
    /// bytes more on every connection, and one that joins thousands (a catch-all dynamic
    /// namespace allows it) is still searched in a few steps.
    nsps: Mutex<Option<Vec<Socket>>>,
    /// The namespaces with a CONNECT under way (at most [`MAX_CONNECTS_UNDER_WAY`]).
    connecting: Mutex<Vec<String>>,
    /// Set when this layer closes the connection, to report the precise reason.
    close_reason: Mutex<Option<DisconnectReason>>,
    server: Weak<ServerInner>,
    opened: tokio::time::Instant,
}

/// The decoder of a connection, and the bytes of the packet it is putting together.
struct Inbound {
    decoder: Decoder,
    bytes: usize,
}

/// A packet encoded for the wire, once, whoever it goes to.
#[derive(Clone)]
pub(crate) enum Encoded<'a> {
    /// The JSON parser: the text, then one binary message per attachment.
    Text(Str, &'a [Bytes]),
    /// The msgpack parser: one binary message, attachments inline.
    Binary(Bytes),
}

impl<'a> Encoded<'a> {
    /// Encodes `packet` with `parser`.
    pub(crate) fn new(packet: &'a Packet, parser: Parser) -> Encoded<'a> {
        match parser {
            Parser::Json => Encoded::Text(Str::from(packet.encode()), &packet.attachments),
            Parser::Msgpack => Encoded::Binary(Bytes::from(
                socketlet_socketio_proto::msgpack::encode(packet),
            )),
        }
    }

    /// Its messages: the packet, then each attachment (JSON parser).
    fn messages(&self) -> impl Iterator<Item = Message> + '_ {
        let (first, bins): (Message, &[Bytes]) = match self {
            Encoded::Text(text, bins) => (Message::Text(text.clone()), bins),
            Encoded::Binary(b) => (Message::Binary(b.clone()), &[]),
        };
        std::iter::once(first).chain(bins.iter().cloned().map(Message::Binary))
    }

    /// How many messages [`Encoded::messages`] gives.
    fn message_count(&self) -> usize {
        match self {
            Encoded::Text(_, bins) => 1 + bins.len(),
            Encoded::Binary(_) => 1,
        }
    }

    /// Its size on the wire, attachments included.
    pub(crate) fn len(&self) -> usize {
        match self {
            Encoded::Text(text, bins) => text.len() + bins.iter().map(Bytes::len).sum::<usize>(),
            Encoded::Binary(b) => b.len(),
        }
    }
}

/// Hands an encoded packet (and its attachments) to the engine session `engine` as one unit
/// (sockets call this with their own handle on the session, which saves a broadcast one
/// pointer to follow per receiver). It takes the encoding: a fan-out gives each receiver a
/// clone (a reference count), a single send gives its own (cloning it would make the buffer
/// shared: an allocation and two atomic operations for nothing).
pub(crate) fn send_encoded(
    engine: &Arc<EngineSocket>,
    encoded: Encoded<'_>,
    handoff: Handoff,
) -> Result<(), EmitError> {
    match encoded {
        Encoded::Text(text, []) => deliver(engine, std::iter::once(Message::Text(text)), handoff),
        Encoded::Text(text, bins) => {
            let msgs: Vec<Message> = std::iter::once(Message::Text(text))
                .chain(bins.iter().cloned().map(Message::Binary))
                .collect();
            deliver(engine, msgs, handoff)
        }
        Encoded::Binary(b) => deliver(engine, std::iter::once(Message::Binary(b)), handoff),
    }
}

/// Hands several encoded packets to the engine session `engine` as one unit, in order: they go
/// out in one write where they fit in one.
pub(crate) fn send_encoded_all(
    engine: &Arc<EngineSocket>,
    encoded: &[Encoded<'_>],
    handoff: Handoff,
) -> Result<(), EmitError> {
    let left = encoded.iter().map(Encoded::message_count).sum();
    let msgs = Counted {
        inner: encoded.iter().flat_map(Encoded::messages),
        left,
    };
    deliver(engine, msgs, handoff)
}

/// An iterator whose length was counted beforehand (the engine bounds its queue by it).
struct Counted<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next()?;
        self.left = self.left.saturating_sub(1);
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

/// Hands messages to the engine: a volatile packet is dropped when the client is not ready
/// for it; any other goes to the bounded queue (see `max_buffered_packets`), or straight to
/// the client when nothing waits before it.
fn deliver<I>(engine: &Arc<EngineSocket>, msgs: I, handoff: Handoff) -> Result<(), EmitError>
where
    I: IntoIterator<Item = Message>,
    I::IntoIter: ExactSizeIterator,
{
    let sent = match handoff {
        Handoff::Volatile => {
            return if engine.send_volatile(msgs) {
                Ok(())
            } else {
                Err(EmitError::Dropped)
            };
        }
        Handoff::Now => engine.send_all(msgs),
        Handoff::Queued => engine.queue_all(msgs),
    };
    sent.map_err(|e| match e {
        SendError::Full => EmitError::BufferFull,
        _ => EmitError::Disconnected,
    })
}

impl Client {
    pub(crate) fn new(engine: Arc<EngineSocket>, server: &Arc<ServerInner>) -> Arc<Client> {
        let protocol = match engine.protocol() {
            socketlet_engine::ProtocolVersion::V3 => ProtocolVersion::V4,
            socketlet_engine::ProtocolVersion::V4 => ProtocolVersion::V5,
        };
        Arc::new(Client {
            engine,
            protocol,
            parser: server.config.parser,
            limits: server.config.decoder.clone(),
            decoder: Mutex::new(Inbound {
                decoder: Decoder::new(server.config.decoder.clone()),
                bytes: 0,
            }),
            nsps: Mutex::new(Some(Vec::new())),
            connecting: Mutex::default(),
            close_reason: Mutex::new(None),
            server: Arc::downgrade(server),
            opened: tokio::time::Instant::now(),
        })
    }

    pub(crate) fn engine(&self) -> &Arc<EngineSocket> {
        &self.engine
    }

    /// When the connection opened.
    pub(crate) fn opened(&self) -> tokio::time::Instant {
        self.opened
    }

    pub(crate) fn protocol(&self) -> ProtocolVersion {
        self.protocol
    }

    /// Whether the client has joined no namespace yet (for `connect_timeout`).
    pub(crate) fn has_no_namespace(&self) -> bool {
        lock(&self.nsps).as_ref().is_some_and(Vec::is_empty)
    }

    pub(crate) fn send_packet(&self, packet: &Packet, volatile: bool) -> Result<(), EmitError> {
        let handoff = if volatile {
            Handoff::Volatile
        } else {
            Handoff::Now
        };
        send_encoded(&self.engine, Encoded::new(packet, self.parser), handoff)
    }

    pub(crate) fn forget_namespace(&self, nsp: &str) {
        if let Some(sockets) = lock(&self.nsps).as_mut() {
            if let Ok(i) = find_nsp(sockets, nsp) {
                sockets.remove(i);
            }
            if sockets.is_empty() {
                *sockets = Vec::new();
            }
        }
    }

    fn socket(&self, nsp: &str) -> Option<Socket> {
        let nsps = lock(&self.nsps);
        let sockets = nsps.as_ref()?;
        let i = find_nsp(sockets, nsp).ok()?;
        sockets.get(i).cloned()
    }

    /// Closes the connection because the client broke the Socket.IO protocol.
    fn protocol_error(&self, why: &dyn std::fmt::Display) {
        tracing::debug!(sid = %self.engine.sid(), "Socket.IO protocol error: {why}");
        *lock(&self.close_reason) = Some(DisconnectReason::ParseError);
        self.engine.close();
    }

    pub(crate) fn on_message(self: &Arc<Self>, msg: Message) {
        let now = tokio::time::Instant::now().into_std();
        let decoded = {
            let mut inbound = lock(&self.decoder);
            let decoded = match (self.parser, msg) {
                (Parser::Json, Message::Text(text)) => {
                    inbound.bytes += text.len();
                    inbound.decoder.decode_text(&text, now)
                }
                (Parser::Json, Message::Binary(data)) => {
                    inbound.bytes += data.len();
                    inbound.decoder.decode_binary(data, now)
                }
                (Parser::Msgpack, Message::Binary(data)) => {
                    inbound.bytes += data.len();
                    socketlet_socketio_proto::msgpack::decode(&data, &self.limits).map(Some)
                }
                (Parser::Msgpack, Message::Text(_)) => {
                    Err(socketlet_socketio_proto::ParseError::UnexpectedText)
                }
            };
            decoded.map(|p| p.map(|p| (p, std::mem::take(&mut inbound.bytes))))
        };
        match decoded {
            Ok(Some((packet, bytes))) => self.on_packet(packet, bytes),
            Ok(None) => {}
            Err(e) => self.protocol_error(&e),
        }
    }

    fn on_packet(self: &Arc<Self>, packet: Packet, bytes: usize) {
        let Packet {
            nsp,
            data,
            attachments,
        } = packet;
        match data {
            PacketData::Connect(auth) => {
                if self.protocol == ProtocolVersion::V4 && nsp == "/" {
                    // v4 clients are connected to `/` implicitly; a CONNECT for it is a no-op.
                    return;
                }
                self.connect(&nsp, auth);
            }
            PacketData::Disconnect => {
                if let Some(s) = self.socket(&nsp) {
                    s.close(DisconnectReason::ClientNamespaceDisconnect, false);
                }
            }
            PacketData::Event { name, args, id } => match self.socket(&nsp) {
                Some(s) => s.on_event(
                    name,
                    Data {
                        args,
                        binary: attachments,
                    },
                    id,
                    bytes,
                ),
                None => tracing::debug!(%nsp, "event for a namespace the client is not in"),
            },
            PacketData::Ack { args, id } => {
                if let Some(s) = self.socket(&nsp) {
                    s.on_ack(
                        id,
                        Data {
                            args,
                            binary: attachments,
                        },
                    );
                }
            }
            PacketData::ConnectError(_) => self.protocol_error(&"CONNECT_ERROR sent by a client"),
        }
    }

    fn send_connect_error(&self, nsp: &str, err: &ConnectError) {
        let payload = match self.protocol {
            ProtocolVersion::V5 => {
                let mut o = serde_json::Map::new();
                o.insert("message".into(), Value::String(err.message.clone()));
                if let Some(d) = &err.data {
                    o.insert("data".into(), d.clone());
                }
                Value::Object(o)
            }
            ProtocolVersion::V4 => Value::String(err.message.clone()),
        };
        let _ = self.send_packet(&Packet::new(nsp, PacketData::ConnectError(payload)), false);
    }

    /// Connects the client to a namespace: middlewares, then the CONNECT answer, then the
    /// connection handler. Events the client sends before the handler has run are held and
    /// delivered after it, so no listener misses one.
    pub(crate) fn connect(self: &Arc<Self>, nsp_with_query: &str, auth: Option<Value>) {
        let (nsp, query) = match nsp_with_query.split_once('?') {
            Some((n, q)) => (n, Some(q.to_owned())),
            None => (nsp_with_query, None),
        };
        match lock(&self.nsps).as_ref() {
            None => return,
            Some(sockets) if find_nsp(sockets, nsp).is_ok() => {
                tracing::debug!(%nsp, "CONNECT to a namespace already joined");
                return;
            }
            Some(_) => {}
        }
        {
            let mut connecting = lock(&self.connecting);
            if connecting.iter().any(|n| n == nsp) {
                tracing::debug!(%nsp, "CONNECT to a namespace with one under way; ignored");
                return;
            }
            if connecting.len() >= MAX_CONNECTS_UNDER_WAY {
                drop(connecting);
                self.protocol_error(&format_args!(
                    "more than {MAX_CONNECTS_UNDER_WAY} CONNECTs under way"
                ));
                return;
            }
            connecting.push(nsp.to_owned());
        }
        // The namespace leaves the set when the CONNECT is over, whichever way.
        let under_way = UnderWay {
            client: self.clone(),
            nsp: nsp.to_owned(),
        };
        let Some(server) = self.server.upgrade() else {
            return;
        };
        let Some(entered) = server.enter_namespace(nsp) else {
            self.send_connect_error(nsp, &ConnectError::new("Invalid namespace"));
            return;
        };
        let ns = entered.ns().clone();
        // As in Node, a CONNECT without a payload (and every v4 client) has `{}` for auth, so
        // that handlers read `auth["token"]` without a null check.
        let auth = match auth {
            Some(Value::Object(o)) => Value::Object(o),
            _ => Value::Object(serde_json::Map::new()),
        };
        // Connection state recovery: a v5 client that comes back sends its private id and the
        // offset of the last event it got, as strings, among its auth.
        let recovery = ns
            .recovery()
            .filter(|_| self.protocol == ProtocolVersion::V5)
            .cloned();
        let claim = recovery.as_ref().and_then(|_| {
            let pid = auth.get("pid")?.as_str()?.to_owned();
            let offset = auth.get("offset")?.as_str()?.to_owned();
            Some((pid, offset))
        });
        let client = self.clone();
        run_detached(async move {
            // Held to the end: the namespace stays counted (and the CONNECT under way).
            let (_under_way, entered) = (under_way, entered);
            let restored = match &claim {
                Some((pid, offset)) => ns
                    .adapter()
                    .restore_session(ns.local(), pid, offset)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::debug!("session not restored: {e}");
                        None
                    }),
                None => None,
            };
            let socket = Socket::new(
                ns.clone(),
                client.clone(),
                auth,
                query,
                restored.as_ref().map(|r| &r.session),
            );
            let skip = socket.recovered() && recovery.as_ref().is_some_and(|r| r.skip_middlewares);
            let middlewares = if skip {
                Vec::new()
            } else {
                read(&ns.handlers().middlewares).clone()
            };
            for mw in middlewares {
                if let Err(e) = mw(socket.clone()).await {
                    tracing::debug!(nsp = %ns.name(), "connection refused: {e}");
                    socket.discard();
                    client.send_connect_error(ns.name(), &e);
                    return;
                }
            }
            {
                let mut nsps = lock(&client.nsps);
                let joined = match nsps.as_mut() {
                    Some(sockets) => match find_nsp(sockets, ns.name()) {
                        Err(at) => Some((sockets, at)),
                        Ok(_) => None,
                    },
                    None => None,
                };
                let Some((sockets, at)) = joined else {
                    drop(nsps);
                    socket.discard();
                    return;
                };
                // One at a time: most clients join one namespace (no room for four).
                sockets.reserve_exact(1);
                sockets.insert(at, socket.clone());
                socket.set_connected();
                ns.local().insert_socket(&socket);
            }
            entered.joined();
            // The adapter and the observers hear of it with no lock held.
            ns.adapter().room_created(ns.local(), socket.id(), true);
            ns.local().hub().each(|o| o.socket_connected(&socket));
            if let Some(restored) = restored.filter(|_| socket.recovered()) {
                socket.join(restored.session.rooms);
                // What it missed comes before the CONNECT answer (the client holds events until
                // it is connected), with their offsets.
                for packet in &restored.missed {
                    let _ = socket.send_packet(packet, false);
                }
            }
            // As Node does: CONNECT first, then the connection handlers (whose emits follow it).
            let payload = match client.protocol {
                ProtocolVersion::V5 => {
                    let mut o = serde_json::Map::new();
                    o.insert("sid".into(), Value::String(socket.id().to_owned()));
                    if let Some(pid) = socket.pid() {
                        o.insert("pid".into(), Value::String(pid.to_owned()));
                    }
                    Some(Value::Object(o))
                }
                ProtocolVersion::V4 => None,
            };
            let _ =
                socket.send_packet(&Packet::new(ns.name(), PacketData::Connect(payload)), false);
            // Each handler gets its first poll here, in order; what awaits goes on as a task.
            // Events that came meanwhile are dispatched once all have had it.
            let handlers = read(&ns.handlers().on_connect).clone();
            for handler in handlers {
                run_boxed(handler(socket.clone()));
            }
            socket.set_ready();
        });
    }

    pub(crate) fn on_close(&self, reason: CloseReason) {
        let sockets = lock(&self.nsps).take();
        let reason = lock(&self.close_reason)
            .take()
            .unwrap_or_else(|| DisconnectReason::from_engine(reason));
        for s in sockets.into_iter().flatten() {
            s.close(reason, false);
        }
    }
}

/// Where the socket of namespace `nsp` is in `sockets` (sorted by namespace name), or where it
/// would go.
fn find_nsp(sockets: &[Socket], nsp: &str) -> Result<usize, usize> {
    sockets.binary_search_by(|s| s.ns().name().cmp(nsp))
}

/// A CONNECT under way: its namespace leaves the client's set when this is dropped.
struct UnderWay {
    client: Arc<Client>,
    nsp: String,
}

impl Drop for UnderWay {
    fn drop(&mut self) {
        let mut connecting = lock(&self.client.connecting);
        connecting.retain(|n| *n != self.nsp);
        // Most connections make one CONNECT: the list would otherwise hold its allocation
        // for the connection's life.
        if connecting.is_empty() {
            *connecting = Vec::new();
        }
    }
}
