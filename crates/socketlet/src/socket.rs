//! A socket: one client connected to one namespace.

use crate::adapter::Room;
use crate::client::{Client, Handoff};
use crate::data::Data;
use crate::error::{AckError, DisconnectReason, EmitError};
use crate::extensions::Extensions;
use crate::namespace::Namespace;
use crate::operators::BroadcastOperator;
use crate::runner::run_boxed;
use crate::sync::{lock, read, write};
use bytes::Bytes;
use serde_json::Value;
use socketlet_engine::proto::Str;
use socketlet_engine::{RequestInfo, Sid, Socket as EngineSocket, TransportKind};
use socketlet_socketio_proto::{Packet, PacketData, ProtocolVersion};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Event names a client may not use and the server may not emit.
pub(crate) const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Events held while the connection handler runs (see `Socket::on_event`).
const MAX_EARLY_EVENTS: usize = 64;

/// An event held until the socket is ready: name, arguments, ack id.
type EarlyEvent = (String, Data, Option<u64>);

type EventHandler =
    Arc<dyn Fn(Socket, Event) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;
type AnyHandler = Arc<dyn Fn(&Socket, &str, &Data) + Send + Sync>;
type DisconnectHandler = Arc<dyn Fn(Socket, DisconnectReason) + Send + Sync>;
type Listeners = Arc<[AnyHandler]>;

/// Adds `f` to a list of listeners (copy on write: readers keep the list they took).
fn add_listener(list: &RwLock<Listeners>, f: AnyHandler) {
    let mut guard = write(list);
    let mut all = guard.to_vec();
    all.push(f);
    *guard = all.into();
}

/// An event from a client.
#[derive(Debug)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// Its arguments.
    pub data: Data,
    /// The way to answer, if the client asked for an ack.
    pub ack: Option<AckSender>,
}

/// Answers a client's event. Sending consumes it: an event is acked at most once.
#[derive(Debug)]
pub struct AckSender {
    socket: Socket,
    id: u64,
}

impl AckSender {
    /// Sends the ack with `data` as its arguments.
    pub fn send(self, data: impl Into<Data>) -> Result<(), EmitError> {
        let data = data.into();
        let packet = Packet {
            nsp: self.socket.ns().name().to_owned(),
            data: PacketData::Ack {
                args: data.args,
                id: self.id,
            },
            attachments: data.binary,
        };
        self.socket.send_packet(&packet, false)
    }
}

enum AckTx {
    One(oneshot::Sender<Data>),
    Many(mpsc::Sender<(String, Data)>),
}

/// A description of a socket, possibly on another node (what `fetch_sockets` returns).
#[derive(Debug, Clone)]
pub struct SocketInfo {
    /// The socket id.
    pub id: String,
    /// The namespace.
    pub nsp: String,
    /// The rooms it is in, its own id included.
    pub rooms: Vec<Room>,
    /// The auth payload it connected with (`{}` if none).
    pub auth: Value,
    /// The socket itself when it is on this node.
    pub local: Option<Socket>,
}

/// `repr(C)` keeps the fields a delivery reads (`engine`, `connected`, `has_outgoing`) first,
/// on the cache line of the `Arc`'s counts, which a broadcast touches anyway when it clones its
/// receivers: a fan-out to 10k sockets then misses one line per receiver here, instead of up
/// to three.
#[repr(C)]
pub(crate) struct SocketInner {
    /// The client's engine session (the same as `client.engine()`): a delivery goes straight
    /// to it, without a stop at the [`Client`], which would be one more cold line per receiver.
    engine: Arc<EngineSocket>,
    connected: AtomicBool,
    /// `any_outgoing` has listeners: checked on every delivery, so a broadcast skips the
    /// lock of each receiver that has none (most).
    has_outgoing: AtomicBool,
    client: Arc<Client>,
    sid: Sid,
    id: String,
    ns: Namespace,
    auth: Value,
    /// The query of the namespace CONNECT (v4 clients put auth parameters there).
    nsp_query: Option<String>,
    /// Events that arrived before the connection handler finished registering listeners:
    /// `None` once it has (then events are dispatched at once).
    early_events: Mutex<Option<Vec<EarlyEvent>>>,
    handlers: RwLock<HashMap<String, EventHandler>>,
    /// Catch-all listeners, replaced whole when one is added: a dispatch clones the `Arc` and
    /// calls them with no lock held (a listener may disconnect the socket, or add a listener).
    any_incoming: RwLock<Listeners>,
    any_outgoing: RwLock<Listeners>,
    on_disconnect: RwLock<Vec<DisconnectHandler>>,
    rooms: Mutex<HashSet<Room>>,
    acks: Mutex<HashMap<u64, AckTx>>,
    extensions: Extensions,
}

/// One client connected to one namespace. Cheap to clone, `Send + 'static`: keep it in a
/// background task and emit to it whenever (emits after it disconnected fail with
/// [`EmitError::Disconnected`]).
#[derive(Clone)]
pub struct Socket {
    inner: Arc<SocketInner>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.inner.id)
            .field("nsp", &self.inner.ns.name())
            .finish_non_exhaustive()
    }
}

impl Socket {
    pub(crate) fn new(
        ns: Namespace,
        client: Arc<Client>,
        auth: Value,
        nsp_query: Option<String>,
    ) -> Socket {
        let (sid, id) = match client.protocol() {
            ProtocolVersion::V5 => {
                let sid = Sid::random();
                (sid, sid.to_string())
            }
            // Protocol v4 (socket.io 2.x): the id derives from the connection's id.
            ProtocolVersion::V4 => {
                let sid = client.engine().sid();
                let id = if ns.name() == "/" {
                    sid.to_string()
                } else {
                    format!("{}#{}", ns.name(), sid)
                };
                (sid, id)
            }
        };
        Socket {
            inner: Arc::new(SocketInner {
                engine: client.engine().clone(),
                sid,
                id,
                ns,
                client,
                auth,
                nsp_query,
                connected: AtomicBool::new(false),
                early_events: Mutex::new(Some(Vec::new())),
                handlers: RwLock::new(HashMap::new()),
                any_incoming: RwLock::new(Arc::new([])),
                any_outgoing: RwLock::new(Arc::new([])),
                has_outgoing: AtomicBool::new(false),
                on_disconnect: RwLock::new(Vec::new()),
                rooms: Mutex::new(HashSet::new()),
                acks: Mutex::new(HashMap::new()),
                extensions: Extensions::default(),
            }),
        }
    }

    /// The socket id as clients see it.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub(crate) fn sid(&self) -> Sid {
        self.inner.sid
    }

    /// The namespace.
    pub fn ns(&self) -> &Namespace {
        &self.inner.ns
    }

    /// The `auth` payload of the CONNECT packet: `{}` for v4 clients and clients that sent none
    /// (as in Node), so handlers read `auth()["token"]` without a null check.
    pub fn auth(&self) -> &Value {
        &self.inner.auth
    }

    /// The handshake request of the underlying connection (URI, headers, peer address).
    pub fn request(&self) -> &RequestInfo {
        self.inner.client.engine().request()
    }

    /// A query parameter of the namespace CONNECT (v4 clients) or of the handshake URL. v4
    /// clients cannot send `auth`; they pass tokens this way.
    pub fn query(&self, name: &str) -> Option<String> {
        let find = |q: &str| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (socketlet_engine::percent_decode(k) == name)
                    .then(|| socketlet_engine::percent_decode(v))
            })
        };
        self.inner
            .nsp_query
            .as_deref()
            .and_then(find)
            .or_else(|| self.request().uri.query().and_then(find))
    }

    /// The Socket.IO protocol generation of the client.
    pub fn protocol(&self) -> ProtocolVersion {
        self.inner.client.protocol()
    }

    /// The transport the connection is using now.
    pub fn transport(&self) -> TransportKind {
        self.inner.client.engine().transport()
    }

    /// Typed per-socket state.
    pub fn extensions(&self) -> &Extensions {
        &self.inner.extensions
    }

    /// Whether the socket is connected.
    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Registers the handler of an event (replacing any previous one). Handlers start in the
    /// order events arrive; a handler that awaits continues as a task of its own, so slow
    /// handlers never hold up the connection.
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Socket, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h: EventHandler = Arc::new(move |s, e| Box::pin(handler(s, e)));
        write(&self.inner.handlers).insert(event.into(), h);
    }

    /// Registers a listener called with every incoming event, before its handler.
    pub fn on_any<F>(&self, f: F)
    where
        F: Fn(&Socket, &str, &Data) + Send + Sync + 'static,
    {
        add_listener(&self.inner.any_incoming, Arc::new(f));
    }

    /// Registers a listener called with every outgoing event (emits and broadcasts).
    pub fn on_any_outgoing<F>(&self, f: F)
    where
        F: Fn(&Socket, &str, &Data) + Send + Sync + 'static,
    {
        add_listener(&self.inner.any_outgoing, Arc::new(f));
        self.inner.has_outgoing.store(true, Ordering::Release);
    }

    /// Registers a handler called once when the socket disconnects, with the reason. The socket's
    /// rooms can still be read there.
    pub fn on_disconnect<F>(&self, f: F)
    where
        F: Fn(Socket, DisconnectReason) + Send + Sync + 'static,
    {
        write(&self.inner.on_disconnect).push(Arc::new(f));
    }

    /// Emits an event to this socket.
    pub fn emit(&self, event: &str, data: impl Into<Data>) -> Result<(), EmitError> {
        let packet = self.event_packet(event, data.into(), None)?;
        self.notify_outgoing(&packet);
        self.send_packet(&packet, false)
    }

    /// Emits an event to this socket only if it can take it right now (dropped otherwise).
    pub fn emit_volatile(&self, event: &str, data: impl Into<Data>) -> Result<(), EmitError> {
        let packet = self.event_packet(event, data.into(), None)?;
        self.notify_outgoing(&packet);
        self.send_packet(&packet, true)
    }

    /// Emits an event and waits for the client's ack, up to the server's `ack_timeout`.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        data: impl Into<Data>,
    ) -> Result<Data, AckError> {
        let timeout = self.ns().ack_timeout();
        self.emit_with_ack_timeout(event, data, timeout).await
    }

    /// Emits an event and waits for the client's ack, up to `timeout`.
    pub async fn emit_with_ack_timeout(
        &self,
        event: &str,
        data: impl Into<Data>,
        timeout: Duration,
    ) -> Result<Data, AckError> {
        let id = self.ns().next_ack_id();
        let packet = self.event_packet(event, data.into(), Some(id))?;
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.acks).insert(id, AckTx::One(tx));
        struct Forget<'a>(&'a Socket, u64);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.forget_ack(self.1);
            }
        }
        let _forget = Forget(self, id);
        self.notify_outgoing(&packet);
        self.send_packet(&packet, false)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => Err(AckError::Timeout),
        }
    }

    fn event_packet(&self, event: &str, data: Data, id: Option<u64>) -> Result<Packet, EmitError> {
        if RESERVED_EVENTS.contains(&event) {
            return Err(EmitError::ReservedEvent(event.to_owned()));
        }
        Ok(Packet {
            nsp: self.ns().name().to_owned(),
            data: PacketData::Event {
                name: event.to_owned(),
                args: data.args,
                id,
            },
            attachments: data.binary,
        })
    }

    /// Joins rooms.
    pub fn join<I, R>(&self, rooms: I)
    where
        I: IntoIterator<Item = R>,
        R: Into<Room>,
    {
        let mut created = Vec::new();
        {
            let mut mine = lock(&self.inner.rooms);
            for room in rooms {
                let room = room.into();
                if room == self.inner.id || mine.contains(&room) {
                    continue;
                }
                if self.ns().index_join(self.sid(), &room) {
                    created.push(room.clone());
                }
                mine.insert(room);
            }
        }
        // The adapter hears of new rooms with no lock held.
        for room in created {
            self.ns().adapter().room_created(self.ns(), &room, false);
        }
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        let deleted = {
            let mut mine = lock(&self.inner.rooms);
            mine.remove(room) && self.ns().index_leave(self.sid(), room)
        };
        if deleted {
            self.ns().adapter().room_deleted(self.ns(), room, false);
        }
    }

    /// Leaves every room (except its own id).
    pub fn leave_all(&self) {
        let mut deleted = Vec::new();
        {
            let mut mine = lock(&self.inner.rooms);
            for room in std::mem::take(&mut *mine) {
                if self.ns().index_leave(self.sid(), &room) {
                    deleted.push(room);
                }
            }
        }
        for room in deleted {
            self.ns().adapter().room_deleted(self.ns(), &room, false);
        }
    }

    /// The rooms the socket is in, its own id included.
    pub fn rooms(&self) -> Vec<Room> {
        let mut v: Vec<Room> = lock(&self.inner.rooms).iter().cloned().collect();
        v.push(self.inner.id.clone());
        v
    }

    /// A broadcast to `room`, excluding this socket.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.broadcast().to(room)
    }

    /// A broadcast to every socket of the namespace but this one.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.ns().clone()).except(self.inner.id.clone())
    }

    /// Disconnects the socket from its namespace (the client gets a DISCONNECT and does not
    /// reconnect on its own). The connection stays open for its other namespaces.
    pub fn disconnect(&self) {
        self.close(DisconnectReason::ServerNamespaceDisconnect, true);
    }

    /// Closes the whole connection under this socket, all namespaces, without a Socket.IO
    /// DISCONNECT: the client sees its transport close and reconnects.
    pub fn close_connection(&self) {
        self.inner.client.engine().close();
    }

    /// A description of the socket.
    pub fn info(&self) -> SocketInfo {
        SocketInfo {
            id: self.inner.id.clone(),
            nsp: self.ns().name().to_owned(),
            rooms: self.rooms(),
            auth: self.inner.auth.clone(),
            local: Some(self.clone()),
        }
    }

    // ---- crate-internal plumbing ----

    pub(crate) fn set_connected(&self) {
        self.inner.connected.store(true, Ordering::Release);
    }

    pub(crate) fn send_packet(&self, packet: &Packet, volatile: bool) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        self.inner.client.send_packet(packet, volatile)
    }

    pub(crate) fn send_encoded(
        &self,
        text: Str,
        bins: &[Bytes],
        handoff: Handoff,
    ) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        crate::client::send_encoded(&self.inner.engine, text, bins, handoff)
    }

    /// Reads what a delivery to this socket reads first (its own first line, then its engine
    /// session's), without acting on it. A fan-out calls it for a few receivers ahead of
    /// sending to them: their cold lines then load side by side instead of one after the
    /// other, each send waiting for its own (the session lock's atomic operation lets no
    /// load pass it).
    pub(crate) fn warm(&self) {
        std::hint::black_box(self.inner.has_outgoing.load(Ordering::Relaxed));
        self.inner.engine.warm();
    }

    pub(crate) fn notify_outgoing(&self, packet: &Packet) {
        if !self.inner.has_outgoing.load(Ordering::Acquire) {
            return;
        }
        let listeners = read(&self.inner.any_outgoing).clone();
        if listeners.is_empty() {
            return;
        }
        if let PacketData::Event { name, args, .. } = &packet.data {
            let data = Data {
                args: args.clone(),
                binary: packet.attachments.clone(),
            };
            for l in listeners.iter() {
                l(self, name, &data);
            }
        }
    }

    pub(crate) fn register_broadcast_ack(&self, id: u64, tx: mpsc::Sender<(String, Data)>) {
        lock(&self.inner.acks).insert(id, AckTx::Many(tx));
    }

    pub(crate) fn forget_ack(&self, id: u64) {
        lock(&self.inner.acks).remove(&id);
    }

    /// Marks the connection handler done and dispatches the events that came before, in order.
    pub(crate) fn set_ready(&self) {
        let early = lock(&self.inner.early_events).take().unwrap_or_default();
        for (name, data, id) in early {
            self.dispatch(name, data, id);
        }
    }

    /// An EVENT from the client.
    pub(crate) fn on_event(&self, name: String, data: Data, id: Option<u64>) {
        {
            let mut early = lock(&self.inner.early_events);
            if let Some(queue) = early.as_mut() {
                // The client got CONNECT and spoke before the handler registered its listeners
                // (a few microseconds). Hold a bounded number of events; beyond that the client
                // is flooding a socket that is not ready, and the extra events are dropped.
                if queue.len() < MAX_EARLY_EVENTS {
                    queue.push((name, data, id));
                } else {
                    tracing::debug!(id = %self.id(), "event dropped before the socket was ready");
                }
                return;
            }
        }
        self.dispatch(name, data, id);
    }

    fn dispatch(&self, name: String, data: Data, id: Option<u64>) {
        if RESERVED_EVENTS.contains(&name.as_str()) {
            tracing::debug!(sid = %self.id(), event = %name, "client used a reserved event name");
            return;
        }
        let listeners = read(&self.inner.any_incoming).clone();
        for l in listeners.iter() {
            l(self, &name, &data);
        }
        let handler = read(&self.inner.handlers).get(&name).cloned();
        let Some(handler) = handler else {
            return;
        };
        let ack = id.map(|id| AckSender {
            socket: self.clone(),
            id,
        });
        run_boxed(handler(self.clone(), Event { name, data, ack }));
    }

    /// An ACK from the client.
    pub(crate) fn on_ack(&self, id: u64, data: Data) {
        let tx = lock(&self.inner.acks).remove(&id);
        match tx {
            Some(AckTx::One(tx)) => {
                let _ = tx.send(data);
            }
            Some(AckTx::Many(tx)) => {
                let _ = tx.try_send((self.inner.id.clone(), data));
            }
            None => tracing::debug!(sid = %self.id(), id, "ack for no pending emit"),
        }
    }

    /// Leaves the namespace, once: tells the client when `tell_client`, runs the disconnect
    /// handlers, leaves every room, and drops pending acks and handlers (which may hold clones of
    /// the socket).
    pub(crate) fn close(&self, reason: DisconnectReason, tell_client: bool) {
        if !self.inner.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        if tell_client {
            let packet = Packet::new(self.ns().name(), PacketData::Disconnect);
            let _ = self.inner.client.send_packet(&packet, false);
        }
        self.inner.client.forget_namespace(self.ns().name());
        let handlers = std::mem::take(&mut *write(&self.inner.on_disconnect));
        for h in handlers {
            h(self.clone(), reason);
        }
        let rooms = std::mem::take(&mut *lock(&self.inner.rooms));
        self.ns().remove_socket(self, &rooms);
        lock(&self.inner.acks).clear();
        write(&self.inner.handlers).clear();
        *write(&self.inner.any_incoming) = Arc::new([]);
        *write(&self.inner.any_outgoing) = Arc::new([]);
        tracing::debug!(id = %self.id(), nsp = %self.ns().name(), %reason, "socket disconnected");
    }
}

#[cfg(test)]
mod layout_tests {
    use super::SocketInner;
    use std::mem::{offset_of, size_of};

    #[test]
    fn what_a_delivery_reads_shares_the_line_of_the_arc_counts() {
        // The `Arc`'s two counts, then these.
        let counts = 2 * size_of::<usize>();
        assert!(counts + offset_of!(SocketInner, engine) + size_of::<usize>() <= 64);
        assert!(counts + offset_of!(SocketInner, connected) < 64);
        assert!(counts + offset_of!(SocketInner, has_outgoing) < 64);
    }
}
