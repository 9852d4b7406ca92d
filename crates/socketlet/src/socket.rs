//! A socket: one client connected to one namespace.

use crate::adapter::Room;
use crate::client::{Client, Encoded, Handoff};
use crate::data::{Data, IntoArgs};
use crate::error::{AckError, DisconnectReason, EmitError};
use crate::extensions::Extensions;
use crate::handler::{boxed, refuse, AckSender, BoxedHandler, EventParts, Handler, HandlerFuture};
use crate::info::{Handshake, SocketInfo};
use crate::namespace::Namespace;
use crate::operators::BroadcastOperator;
use crate::runner::run_boxed;
use serde_json::Value;
use socketlet_engine::sync::{lock, read, write};
use socketlet_engine::{RequestInfo, Sid, Socket as EngineSocket, TransportKind};
use socketlet_socketio_proto::{Packet, PacketData, ProtocolVersion};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
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

/// A listener of the socket's events ([`AnyEvent`]) or of its end ([`DisconnectReason`]).
type Listener<A> = Arc<dyn Fn(Socket, A) -> HandlerFuture + Send + Sync>;
type AnyHandler = Listener<AnyEvent>;
type DisconnectHandler = Listener<DisconnectReason>;
/// Lists of handlers are replaced whole when one is added (copy on write): a dispatch clones
/// the `Arc` and calls them with no lock held (a handler may disconnect the socket, or add
/// a handler).
type List<T> = Arc<[T]>;

/// Adds `f` to a list of handlers.
fn add_to<T: Clone>(list: &RwLock<List<T>>, f: T) {
    let mut guard = write(list);
    let mut all = guard.to_vec();
    all.push(f);
    *guard = all.into();
}

/// Adds listener `f` to `list`.
fn add_listener<A, F, Fut>(list: &RwLock<List<Listener<A>>>, f: F)
where
    F: Fn(Socket, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    add_to(list, Arc::new(move |s, a| Box::pin(f(s, a)) as _));
}

/// The handlers of one event: most events have one, which costs no list.
#[derive(Clone)]
enum EventHandlers {
    One(BoxedHandler),
    Many(List<BoxedHandler>),
}

impl EventHandlers {
    /// `handlers` (if any) and `handler` after them.
    fn then(handlers: Option<EventHandlers>, handler: BoxedHandler) -> EventHandlers {
        match handlers {
            None => EventHandlers::One(handler),
            Some(EventHandlers::One(first)) => EventHandlers::Many(Arc::new([first, handler])),
            Some(EventHandlers::Many(list)) => {
                let mut all = list.to_vec();
                all.push(handler);
                EventHandlers::Many(all.into())
            }
        }
    }
}

/// Where the handlers of `event` are in a socket's sorted list (`Err`: where they would go).
fn handler_index(list: &[(Box<str>, EventHandlers)], event: &str) -> Result<usize, usize> {
    list.binary_search_by(|(name, _)| name.as_ref().cmp(event))
}

/// An event as catch-all listeners see it ([`Socket::on_any`], [`Socket::on_any_outgoing`]).
#[derive(Debug, Clone)]
pub struct AnyEvent {
    /// The event name.
    pub name: String,
    /// Its arguments.
    pub data: Data,
}

enum AckTx {
    One(oneshot::Sender<Data>),
    Many(mpsc::Sender<(String, Data)>),
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
    /// The socket id when it is not `sid` as text (v4 clients in a namespace other than `/`
    /// see `/nsp#sid`): most sockets keep no second copy of their id.
    id: Option<Box<str>>,
    ns: Namespace,
    /// The CONNECT's `auth`, `None` for `{}` (most clients send none): 8 bytes a socket
    /// rather than a `Value`'s 72.
    auth: Option<Box<Value>>,
    /// The query of the namespace CONNECT (v4 clients put auth parameters there).
    nsp_query: Option<Box<str>>,
    /// Events that arrived before the connection handler finished registering listeners:
    /// `None` once it has (then events are dispatched at once).
    early_events: Mutex<Option<Vec<EarlyEvent>>>,
    /// Event handlers by event name, sorted by name: a socket has a handful, and a binary
    /// search of them costs less per event than hashing the name (and the table costs more
    /// memory per socket than the list).
    handlers: RwLock<Vec<(Box<str>, EventHandlers)>>,
    any_incoming: RwLock<List<AnyHandler>>,
    any_outgoing: RwLock<List<AnyHandler>>,
    on_disconnect: RwLock<List<DisconnectHandler>>,
    rooms: Mutex<HashSet<Room>>,
    /// Emits waiting for their ack, by ack id (a `BTreeMap`: empty, it takes 24 bytes and no
    /// allocation; a `HashMap` takes 48).
    acks: Mutex<BTreeMap<u64, AckTx>>,
    extensions: Extensions,
    /// Node's `socket.data`: seen by `fetch_sockets` on every node. `None` for `null`.
    data: Mutex<Option<Box<Value>>>,
    /// Handlers of events that have none of their own.
    fallback: RwLock<Option<EventHandlers>>,
    /// The private id of connection state recovery (v5 clients, recovery on).
    pid: Option<Box<str>>,
    /// This socket was recovered.
    recovered: bool,
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
            .field("id", &self.id())
            .field("nsp", &self.inner.ns.name())
            .finish_non_exhaustive()
    }
}

impl Socket {
    /// A new socket, or (with `restored`) the socket of a recovered session: its id and private
    /// id come back.
    pub(crate) fn new(
        ns: Namespace,
        client: Arc<Client>,
        auth: Value,
        nsp_query: Option<String>,
        restored: Option<&crate::adapter::Session>,
    ) -> Socket {
        let recovering = ns.recovery().is_some() && client.protocol() == ProtocolVersion::V5;
        let (sid, id, pid) = match (client.protocol(), restored) {
            (ProtocolVersion::V5, Some(session)) => match Sid::parse(&session.sid) {
                Some(sid) => (sid, session.sid.clone(), Some(session.pid.clone())),
                None => {
                    let sid = Sid::random();
                    (sid, sid.to_string(), Some(Sid::random().to_string()))
                }
            },
            (ProtocolVersion::V5, None) => {
                let sid = Sid::random();
                let pid = recovering.then(|| Sid::random().to_string());
                (sid, sid.to_string(), pid)
            }
            // Protocol v4 (socket.io 2.x): the id derives from the connection's id.
            (ProtocolVersion::V4, _) => {
                let sid = client.engine().sid();
                let id = if ns.name() == "/" {
                    sid.to_string()
                } else {
                    format!("{}#{}", ns.name(), sid)
                };
                (sid, id, None)
            }
        };
        let recovered = restored.is_some_and(|s| s.sid == id);
        let data = restored
            .filter(|_| recovered)
            .map_or(Value::Null, |s| s.data.clone());
        Socket {
            inner: Arc::new(SocketInner {
                engine: client.engine().clone(),
                id: (id != sid.as_str()).then(|| id.into_boxed_str()),
                sid,
                ns,
                client,
                auth: (!is_empty_object(&auth)).then(|| Box::new(auth)),
                nsp_query: nsp_query.map(String::into_boxed_str),
                connected: AtomicBool::new(false),
                early_events: Mutex::new(Some(Vec::new())),
                handlers: RwLock::new(Vec::new()),
                any_incoming: RwLock::new(Arc::new([])),
                any_outgoing: RwLock::new(Arc::new([])),
                has_outgoing: AtomicBool::new(false),
                on_disconnect: RwLock::new(Arc::new([])),
                rooms: Mutex::new(HashSet::new()),
                acks: Mutex::new(BTreeMap::new()),
                extensions: Extensions::default(),
                data: Mutex::new(boxed_unless_null(data)),
                fallback: RwLock::new(None),
                pid: pid.map(String::into_boxed_str),
                recovered,
            }),
        }
    }

    /// Whether this socket is a recovered one: the client came back within the recovery
    /// window with its private id, and got its id, rooms and data back, and the events it
    /// missed (connection state recovery; Node's `socket.recovered`).
    pub fn recovered(&self) -> bool {
        self.inner.recovered
    }

    /// The private id a client presents to recover its session (connection state recovery).
    pub(crate) fn pid(&self) -> Option<&str> {
        self.inner.pid.as_deref()
    }

    /// The socket id as clients see it.
    pub fn id(&self) -> &str {
        match &self.inner.id {
            Some(id) => id,
            None => self.inner.sid.as_str(),
        }
    }

    pub(crate) fn sid(&self) -> Sid {
        self.inner.sid
    }

    /// The id of the Engine.IO connection under this socket (Node's `socket.conn.id`): the same
    /// for every namespace the client joined over it, and the one observers see in
    /// [`Observer::connection_opened`](crate::Observer::connection_opened) (admin tools group a
    /// client's sockets by it).
    pub fn connection_id(&self) -> Sid {
        self.inner.client.engine().sid()
    }

    /// The namespace.
    pub fn ns(&self) -> &Namespace {
        &self.inner.ns
    }

    /// The `auth` payload of the CONNECT packet: `{}` for v4 clients and clients that sent none
    /// (as in Node), so handlers read `auth()["token"]` without a null check.
    pub fn auth(&self) -> &Value {
        static EMPTY: std::sync::LazyLock<Value> =
            std::sync::LazyLock::new(|| Value::Object(serde_json::Map::new()));
        self.inner.auth.as_deref().unwrap_or(&EMPTY)
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

    /// Adds a handler of `event` (as Node adds listeners: each handler added for an event runs,
    /// in order). A handler is an async function or closure whose arguments are extractors
    /// ([`Socket`], [`Args<T>`](crate::Args), [`Data`], [`AckSender`], ...): see
    /// [`handler`](crate::handler).
    ///
    /// ```
    /// # use socketlet::{Socket, AckSender, Data};
    /// # fn demo(socket: Socket) {
    /// socket.on("echo", |data: Data, ack: AckSender| async move {
    ///     let _ = ack.send(data);
    /// });
    /// # }
    /// ```
    pub fn on<H, T>(&self, event: impl Into<String>, handler: H)
    where
        H: Handler<T>,
        T: 'static,
    {
        let handler = boxed(handler);
        let name = event.into();
        let mut list = write(&self.inner.handlers);
        match handler_index(&list, &name) {
            Ok(i) => {
                let earlier = list[i].1.clone();
                list[i].1 = EventHandlers::then(Some(earlier), handler);
            }
            Err(i) => list.insert(i, (name.into(), EventHandlers::One(handler))),
        }
    }

    /// Adds a handler of the events that have no handler of their own (a catch-all that can
    /// answer acks, unlike [`Socket::on_any`]). Several fallbacks run in order, as handlers do.
    pub fn on_fallback<H, T>(&self, handler: H)
    where
        H: Handler<T>,
        T: 'static,
    {
        let handler = boxed(handler);
        let mut slot = write(&self.inner.fallback);
        *slot = Some(EventHandlers::then(slot.take(), handler));
    }

    /// Adds a listener called with every incoming event, before its handlers.
    pub fn on_any<F, Fut>(&self, f: F)
    where
        F: Fn(Socket, AnyEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        add_listener(&self.inner.any_incoming, f);
    }

    /// Adds a listener called with every outgoing event of this socket (emits and broadcasts
    /// that reach it).
    pub fn on_any_outgoing<F, Fut>(&self, f: F)
    where
        F: Fn(Socket, AnyEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        add_listener(&self.inner.any_outgoing, f);
        self.inner.has_outgoing.store(true, Ordering::Release);
    }

    /// Adds a handler called once when the socket disconnects, with the reason. The socket's
    /// rooms can still be read until its first `.await`.
    pub fn on_disconnect<F, Fut>(&self, f: F)
    where
        F: Fn(Socket, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        add_listener(&self.inner.on_disconnect, f);
    }

    /// Emits an event to this socket: any `Serialize` value is one argument
    /// (`emit("news", &item)`); a [`Data`] is sent as it is (several arguments, binary
    /// attachments; see [`args!`](crate::args)).
    pub fn emit(&self, event: &str, args: impl IntoArgs) -> Result<(), EmitError> {
        let packet = self.event_packet(event, args.into_args()?, None)?;
        if self.inner.pid.is_some() {
            // Connection state recovery: through the adapter to the socket's own room, so that
            // the packet gets an offset and is kept for replay (as Node does).
            if !self.connected() {
                return Err(EmitError::Disconnected);
            }
            let opts = crate::adapter::BroadcastOptions {
                rooms: vec![self.id().to_owned()],
                ..Default::default()
            };
            return self
                .ns()
                .adapter()
                .broadcast(self.ns().local(), packet, opts)
                .map_err(EmitError::Adapter);
        }
        self.notify_outgoing(&packet);
        self.send_packet(&packet, false)
    }

    /// Emits an event to this socket only if it can take it right now (dropped otherwise).
    pub fn emit_volatile(&self, event: &str, args: impl IntoArgs) -> Result<(), EmitError> {
        let packet = self.event_packet(event, args.into_args()?, None)?;
        self.notify_outgoing(&packet);
        self.send_packet(&packet, true)
    }

    /// Emits an event and waits for the client's ack, up to the server's `ack_timeout`.
    pub async fn emit_with_ack(&self, event: &str, args: impl IntoArgs) -> Result<Data, AckError> {
        let timeout = self.ns().ack_timeout();
        self.emit_with_ack_timeout(event, args, timeout).await
    }

    /// Emits an event and waits for the client's ack, up to `timeout`.
    pub async fn emit_with_ack_timeout(
        &self,
        event: &str,
        args: impl IntoArgs,
        timeout: Duration,
    ) -> Result<Data, AckError> {
        let data = args.into_args().map_err(EmitError::from)?;
        let id = self.ns().local().next_ack_id();
        let packet = self.event_packet(event, data, Some(id))?;
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
            Err(_) => {
                self.ns().local().hub().each(|o| o.ack_timed_out(self));
                Err(AckError::Timeout)
            }
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
        let local = self.ns().local();
        let mut joined = Vec::new();
        {
            let mut mine = lock(&self.inner.rooms);
            for room in rooms {
                let room = room.into();
                if room == self.id() || mine.contains(&room) {
                    continue;
                }
                let created = local.index_join(self.sid(), &room);
                mine.insert(room.clone());
                joined.push((room, created));
            }
        }
        // The adapter and the observers hear of it with no lock held.
        for (room, created) in joined {
            if created {
                self.ns().adapter().room_created(local, &room, false);
            }
            local.hub().each(|o| o.room_joined(self, &room));
        }
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        let local = self.ns().local();
        let (left, deleted) = {
            let mut mine = lock(&self.inner.rooms);
            let left = mine.remove(room);
            (left, left && local.index_leave(self.sid(), room))
        };
        if deleted {
            self.ns().adapter().room_deleted(local, room, false);
        }
        if left {
            local.hub().each(|o| o.room_left(self, room));
        }
    }

    /// Leaves every room (except its own id).
    pub fn leave_all(&self) {
        let local = self.ns().local();
        let mut left = Vec::new();
        {
            let mut mine = lock(&self.inner.rooms);
            for room in std::mem::take(&mut *mine) {
                let deleted = local.index_leave(self.sid(), &room);
                left.push((room, deleted));
            }
        }
        for (room, deleted) in left {
            if deleted {
                self.ns().adapter().room_deleted(local, &room, false);
            }
            local.hub().each(|o| o.room_left(self, &room));
        }
    }

    /// The rooms the socket is in, its own id included.
    pub fn rooms(&self) -> Vec<Room> {
        let mut v: Vec<Room> = lock(&self.inner.rooms).iter().cloned().collect();
        v.push(self.id().to_owned());
        v
    }

    /// A broadcast to `room`, excluding this socket.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.broadcast().to(room)
    }

    /// A broadcast to every socket of the namespace but this one.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.ns().clone()).except(self.id().to_owned())
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
            id: self.id().to_owned(),
            nsp: self.ns().name().to_owned(),
            rooms: self.rooms(),
            data: self.data(),
            handshake: Handshake::of(self),
            local: Some(self.clone()),
        }
    }

    /// The socket's data (Node's `socket.data`): any JSON the application keeps on it, which
    /// [`fetch_sockets`](crate::BroadcastOperator::fetch_sockets) shows on every node of a
    /// cluster. `null` until set. For state of this node only, of any type, see
    /// [`Socket::extensions`].
    pub fn data(&self) -> Value {
        lock(&self.inner.data)
            .as_deref()
            .map_or(Value::Null, Value::clone)
    }

    /// Replaces the socket's data (see [`Socket::data`]).
    pub fn set_data(&self, data: impl serde::Serialize) -> Result<(), EmitError> {
        let data = serde_json::to_value(data)?;
        *lock(&self.inner.data) = boxed_unless_null(data);
        Ok(())
    }

    // ---- crate-internal plumbing ----

    pub(crate) fn set_connected(&self) {
        self.inner.connected.store(true, Ordering::Release);
    }

    /// A socket that never connected (a middleware refused it, or its connection went first)
    /// leaves the rooms its middlewares made it join, so that nothing of it stays behind.
    pub(crate) fn discard(&self) {
        let local = self.ns().local();
        let rooms = std::mem::take(&mut *lock(&self.inner.rooms));
        for room in rooms {
            if local.index_leave(self.sid(), &room) {
                self.ns().adapter().room_deleted(local, &room, false);
            }
        }
    }

    pub(crate) fn send_packet(&self, packet: &Packet, volatile: bool) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        let encoded = Encoded::new(packet, self.ns().local().parser());
        let bytes = encoded.len();
        let handoff = if volatile {
            Handoff::Volatile
        } else {
            Handoff::Now
        };
        if let Err(e) = crate::client::send_encoded(&self.inner.engine, encoded, handoff) {
            if let EmitError::Dropped = e {
                self.ns()
                    .local()
                    .hub()
                    .each(|o| o.volatile_dropped(self.ns().name(), 1));
            }
            return Err(e);
        }
        self.ns()
            .local()
            .hub()
            .each(|o| o.packet_sent(self, packet, bytes));
        Ok(())
    }

    pub(crate) fn send_encoded(
        &self,
        encoded: Encoded<'_>,
        handoff: Handoff,
    ) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        crate::client::send_encoded(&self.inner.engine, encoded, handoff)
    }

    /// Hands several encoded packets to the engine at once (see
    /// [`LocalNamespace::broadcast_all`](crate::LocalNamespace::broadcast_all)).
    pub(crate) fn send_encoded_all(
        &self,
        encoded: &[Encoded<'_>],
        handoff: Handoff,
    ) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        crate::client::send_encoded_all(&self.inner.engine, encoded, handoff)
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
            let event = AnyEvent {
                name: name.clone(),
                data: Data {
                    args: args.clone(),
                    binary: packet.attachments.clone(),
                },
            };
            for l in listeners.iter() {
                run_boxed(l(self.clone(), event.clone()));
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

    /// An EVENT from the client, `bytes` long as received.
    pub(crate) fn on_event(&self, name: String, data: Data, id: Option<u64>, bytes: usize) {
        self.ns()
            .local()
            .hub()
            .each(|o| o.event_received(self, &name, &data, bytes));
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
        if !listeners.is_empty() {
            let event = AnyEvent {
                name: name.clone(),
                data: data.clone(),
            };
            for l in listeners.iter() {
                run_boxed(l(self.clone(), event.clone()));
            }
        }
        let handlers = {
            let list = read(&self.inner.handlers);
            handler_index(&list, &name).ok().map(|i| list[i].1.clone())
        };
        let Some(handlers) = handlers.or_else(|| read(&self.inner.fallback).clone()) else {
            return;
        };
        let mut parts = EventParts::new(self.clone(), name, data, AckSender::new(self, id));
        match handlers {
            EventHandlers::One(h) => start(&h, parts),
            EventHandlers::Many(list) => {
                let Some((last, first)) = list.split_last() else {
                    return;
                };
                for h in first {
                    start(h, parts.share());
                }
                start(last, parts);
            }
        }
    }

    /// An ACK from the client.
    pub(crate) fn on_ack(&self, id: u64, data: Data) {
        self.ns()
            .local()
            .hub()
            .each(|o| o.ack_received(self, &data));
        let tx = lock(&self.inner.acks).remove(&id);
        match tx {
            Some(AckTx::One(tx)) => {
                let _ = tx.send(data);
            }
            Some(AckTx::Many(tx)) => {
                let _ = tx.try_send((self.id().to_owned(), data));
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
        if let Some(pid) = self.pid().filter(|_| reason.is_recoverable()) {
            let session = crate::adapter::Session::new(
                self.id().to_owned(),
                pid.to_owned(),
                self.rooms(),
                self.data(),
            );
            self.ns()
                .adapter()
                .persist_session(self.ns().local(), session);
        }
        let handlers = std::mem::replace(&mut *write(&self.inner.on_disconnect), Arc::new([]));
        for h in handlers.iter() {
            run_boxed(h(self.clone(), reason));
        }
        let local = self.ns().local();
        local.hub().each(|o| o.socket_disconnected(self, reason));
        let rooms = std::mem::take(&mut *lock(&self.inner.rooms));
        for room in local.remove_socket(self, &rooms) {
            self.ns().adapter().room_deleted(local, &room, false);
        }
        self.ns().adapter().room_deleted(local, self.id(), true);
        lock(&self.inner.acks).clear();
        *write(&self.inner.handlers) = Vec::new();
        *write(&self.inner.fallback) = None;
        *write(&self.inner.any_incoming) = Arc::new([]);
        *write(&self.inner.any_outgoing) = Arc::new([]);
        tracing::debug!(id = %self.id(), nsp = %self.ns().name(), %reason, "socket disconnected");
    }
}

/// Runs one handler of an event: its future is polled at once, or the event is refused when
/// its arguments do not fit the handler.
fn start(handler: &BoxedHandler, parts: EventParts) {
    match handler(parts) {
        Ok(fut) => run_boxed(fut),
        Err(refused) => refuse(*refused),
    }
}

/// `{}`, the `auth` of most sockets (kept as `None`).
fn is_empty_object(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty())
}

/// A socket's `data`: `null` (most sockets) takes no allocation.
fn boxed_unless_null(v: Value) -> Option<Box<Value>> {
    (!v.is_null()).then(|| Box::new(v))
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
