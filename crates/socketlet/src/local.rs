//! This node's part of a namespace: its sockets, the index of their rooms, and delivery to
//! them. Adapters work on it ([`crate::Adapter`]'s default methods do only this part); the
//! application uses [`crate::Namespace`], which has one.

use crate::adapter::{BroadcastOptions, Disconnect, Room};
use crate::client::{Encoded, Handoff};
use crate::config::Parser;
use crate::data::Data;
use crate::info::SocketInfo;
use crate::observer::Hub;
use crate::operators::AckResponses;
use crate::socket::Socket;
use socketlet_engine::sync::{read, write};
use socketlet_engine::{Sid, SidHash};
use socketlet_socketio_proto::{Packet, PacketData};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The sockets a namespace has on this node, the rooms they are in, and delivery to them.
/// Cheap to clone.
#[derive(Clone)]
pub struct LocalNamespace {
    inner: Arc<LocalInner>,
}

struct LocalInner {
    name: String,
    sockets: RwLock<HashMap<Sid, Socket, SidHash>>,
    rooms: RwLock<HashMap<Room, HashSet<Sid, SidHash>>>,
    next_ack: AtomicU64,
    hub: Arc<Hub>,
    parser: Parser,
}

impl std::fmt::Debug for LocalNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNamespace")
            .field("name", &self.inner.name)
            .field("sockets", &self.socket_count())
            .finish()
    }
}

/// The local socket whose own room (its id) is `room`, if any.
fn own_room_socket(room: &str, sockets: &HashMap<Sid, Socket, SidHash>) -> Option<Sid> {
    let sid = Sid::parse(room.rsplit('#').next().unwrap_or(room))?;
    sockets
        .get(&sid)
        .is_some_and(|s| s.id() == room)
        .then_some(sid)
}

impl LocalNamespace {
    pub(crate) fn new(name: String, hub: Arc<Hub>, parser: Parser) -> LocalNamespace {
        LocalNamespace {
            inner: Arc::new(LocalInner {
                name,
                sockets: RwLock::new(HashMap::default()),
                rooms: RwLock::new(HashMap::new()),
                next_ack: AtomicU64::new(0),
                hub,
                parser,
            }),
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn parser(&self) -> Parser {
        self.inner.parser
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    pub(crate) fn next_ack_id(&self) -> u64 {
        self.inner.next_ack.fetch_add(1, Ordering::Relaxed)
    }

    /// A socket of this node by its id.
    pub fn socket(&self, id: &str) -> Option<Socket> {
        let sid = Sid::parse(id.rsplit('#').next().unwrap_or(id))?;
        read(&self.inner.sockets)
            .get(&sid)
            .filter(|s| s.id() == id)
            .cloned()
    }

    /// How many sockets this node holds in the namespace.
    pub fn socket_count(&self) -> usize {
        read(&self.inner.sockets).len()
    }

    /// The rooms that exist on this node (joined by name; sockets' own ids are not listed).
    pub fn rooms(&self) -> Vec<Room> {
        read(&self.inner.rooms).keys().cloned().collect()
    }

    /// The rooms that exist on this node with their number of sockets.
    pub fn room_sizes(&self) -> Vec<(Room, usize)> {
        read(&self.inner.rooms)
            .iter()
            .map(|(room, members)| (room.clone(), members.len()))
            .collect()
    }

    /// Whether `room` has sockets on this node: a room joined by name, or a local socket's id.
    pub fn has_room(&self, room: &str) -> bool {
        read(&self.inner.rooms).contains_key(room)
            || own_room_socket(room, &read(&self.inner.sockets)).is_some()
    }

    /// Adds a socket to the index. The caller tells the adapter and the observers once it
    /// holds no lock.
    pub(crate) fn insert_socket(&self, socket: &Socket) {
        write(&self.inner.sockets).insert(socket.sid(), socket.clone());
    }

    /// Removes a socket and its `rooms` from the index; the rooms that are gone with it. The
    /// caller holds no lock.
    pub(crate) fn remove_socket(&self, socket: &Socket, rooms: &HashSet<Room>) -> Vec<Room> {
        let deleted = rooms
            .iter()
            .filter(|r| self.index_leave(socket.sid(), r))
            .cloned()
            .collect();
        write(&self.inner.sockets).remove(&socket.sid());
        deleted
    }

    /// Adds `sid` to `room`; whether the room was created.
    pub(crate) fn index_join(&self, sid: Sid, room: &str) -> bool {
        let mut index = write(&self.inner.rooms);
        match index.get_mut(room) {
            Some(members) => {
                members.insert(sid);
                false
            }
            None => {
                index.insert(room.to_owned(), HashSet::from_iter([sid]));
                true
            }
        }
    }

    /// Removes `sid` from `room`; whether the room is gone.
    pub(crate) fn index_leave(&self, sid: Sid, room: &str) -> bool {
        let mut index = write(&self.inner.rooms);
        match index.get_mut(room) {
            Some(members) => {
                members.remove(&sid);
                members.is_empty() && index.remove(room).is_some()
            }
            None => false,
        }
    }

    /// Adds to `out` the sockets of `room`, including the socket whose id is `room`.
    fn collect_room(
        &self,
        room: &str,
        sockets: &HashMap<Sid, Socket, SidHash>,
        out: &mut HashSet<Sid, SidHash>,
    ) {
        if let Some(members) = read(&self.inner.rooms).get(room) {
            out.extend(members.iter().copied());
        }
        out.extend(own_room_socket(room, sockets));
    }

    /// The sockets of this node that `opts` targets (rooms and exceptions; flags ignored).
    pub fn sockets(&self, opts: &BroadcastOptions) -> Vec<Socket> {
        let sockets = read(&self.inner.sockets);
        let mut except = HashSet::default();
        for r in &opts.except {
            self.collect_room(r, &sockets, &mut except);
        }
        if opts.rooms.is_empty() {
            return sockets
                .iter()
                .filter(|(sid, _)| !except.contains(sid))
                .map(|(_, s)| s.clone())
                .collect();
        }
        let mut targets = HashSet::default();
        for r in &opts.rooms {
            self.collect_room(r, &sockets, &mut targets);
        }
        targets
            .iter()
            .filter(|sid| !except.contains(sid))
            .filter_map(|sid| sockets.get(sid).cloned())
            .collect()
    }

    /// Describes the targeted sockets of this node.
    pub fn fetch_sockets(&self, opts: &BroadcastOptions) -> Vec<SocketInfo> {
        self.sockets(opts).iter().map(Socket::info).collect()
    }

    /// Makes the targeted sockets of this node join `rooms`.
    pub fn add_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for s in self.sockets(opts) {
            s.join(rooms.iter().cloned());
        }
    }

    /// Makes the targeted sockets of this node leave `rooms`.
    pub fn del_sockets(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        for s in self.sockets(opts) {
            for r in rooms {
                s.leave(r);
            }
        }
    }

    /// Disconnects the targeted sockets of this node, or closes their connections.
    pub fn disconnect_sockets(&self, opts: &BroadcastOptions, how: Disconnect) {
        for s in self.sockets(opts) {
            match how {
                Disconnect::Namespace => s.disconnect(),
                Disconnect::Connection => s.close_connection(),
            }
        }
    }

    /// Delivers `packet` to the targeted sockets of this node. The packet is encoded once and
    /// the bytes shared by every receiver.
    pub fn broadcast(&self, packet: &Packet, opts: &BroadcastOptions) {
        let targets = self.sockets(opts);
        if targets.is_empty() {
            return;
        }
        let encoded = Encoded::new(packet, self.inner.parser);
        // Protocol v4 clients cannot recover: they get the packet without its offset.
        let without_offset = opts.offset.then(|| without_last_arg(packet));
        let old = without_offset
            .as_ref()
            .map(|p| Encoded::new(p, self.inner.parser));
        let fanout = Fanout::new(targets.len(), opts.volatile);
        let mut dropped = 0;
        for (i, s) in targets.iter().enumerate() {
            warm_ahead(&targets[i..], i);
            s.notify_outgoing(packet);
            let encoded = match &old {
                Some(old) if s.protocol() == socketlet_socketio_proto::ProtocolVersion::V4 => old,
                _ => &encoded,
            };
            // A socket that fails here is closing or was closed for falling behind; the
            // broadcast goes on for the others.
            if let Err(crate::error::EmitError::Dropped) =
                s.send_encoded(encoded.clone(), fanout.handoff(i))
            {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.inner
                .hub
                .each(|o| o.volatile_dropped(self.name(), dropped));
        }
        self.inner
            .hub
            .broadcast_sent(self.name(), packet, targets.len(), encoded.len());
    }

    /// Delivers `packets`, in order, to the sockets of this node that `opts` targets, each
    /// receiver being handed all of them at once, so that they go out in one write where they
    /// fit in one. For an adapter that reads several broadcasts to the same sockets at once (the
    /// Redis adapters do): with several broadcasts in flight, a receiver costs one syscall
    /// rather than one a packet.
    ///
    /// Unlike [`broadcast`](Self::broadcast) of each in turn, the receivers are chosen once for
    /// the whole batch, and a receiver's outgoing listeners
    /// ([`Socket::on_any_outgoing`](crate::Socket::on_any_outgoing)) hear all the packets
    /// before it is handed them. Volatile packets go one by one (each is dropped on its own for
    /// a receiver that is not ready).
    pub fn broadcast_all(&self, packets: &[Packet], opts: &BroadcastOptions) {
        if opts.volatile || packets.len() < 2 {
            // Volatile packets are dropped one by one for receivers that are not ready.
            for packet in packets {
                self.broadcast(packet, opts);
            }
            return;
        }
        let targets = self.sockets(opts);
        if targets.is_empty() {
            return;
        }
        let parser = self.inner.parser;
        let encoded: Vec<Encoded<'_>> = packets.iter().map(|p| Encoded::new(p, parser)).collect();
        // Protocol v4 clients cannot recover: they get the packets without their offsets.
        let stripped: Vec<Packet> = match opts.offset {
            true => packets.iter().map(without_last_arg).collect(),
            false => Vec::new(),
        };
        let old: Vec<Encoded<'_>> = stripped.iter().map(|p| Encoded::new(p, parser)).collect();
        let fanout = Fanout::new(targets.len(), false);
        for (i, s) in targets.iter().enumerate() {
            warm_ahead(&targets[i..], i);
            for packet in packets {
                s.notify_outgoing(packet);
            }
            let mine = match opts.offset {
                true if s.protocol() == socketlet_socketio_proto::ProtocolVersion::V4 => &old,
                _ => &encoded,
            };
            // A socket that fails here is closing or was closed for falling behind; the
            // broadcast goes on for the others.
            let _ = s.send_encoded_all(mine, fanout.handoff(i));
        }
        for (packet, encoded) in packets.iter().zip(&encoded) {
            self.inner
                .hub
                .broadcast_sent(self.name(), packet, targets.len(), encoded.len());
        }
    }

    /// Delivers an event expecting acks to the targeted sockets of this node, and returns the
    /// acks to come. The packet's ack id is set here (one id for all receivers, as Node does).
    pub fn broadcast_acks(&self, mut packet: Packet, opts: &BroadcastOptions) -> LocalAcks {
        let targets = self.sockets(opts);
        let id = self.next_ack_id();
        if let PacketData::Event { id: ack_id, .. } = &mut packet.data {
            *ack_id = Some(id);
        }
        let (tx, rx) = tokio::sync::mpsc::channel(targets.len().max(1));
        let encoded = Encoded::new(&packet, self.inner.parser);
        let fanout = Fanout::new(targets.len(), opts.volatile);
        let mut expected = Vec::with_capacity(targets.len());
        let mut rest = targets.into_iter();
        for i in 0.. {
            warm_ahead(rest.as_slice(), i);
            let Some(s) = rest.next() else { break };
            s.register_broadcast_ack(id, tx.clone());
            s.notify_outgoing(&packet);
            if s.send_encoded(encoded.clone(), fanout.handoff(i)).is_ok() {
                expected.push(s);
            } else {
                s.forget_ack(id);
            }
        }
        self.inner
            .hub
            .broadcast_sent(self.name(), &packet, expected.len(), encoded.len());
        LocalAcks {
            id,
            expected,
            answered: HashSet::new(),
            rx,
        }
    }

    /// Delivers an event expecting acks to the targeted sockets of this node and gathers their
    /// answers until all came or `timeout` passed.
    pub fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: &BroadcastOptions,
        timeout: Duration,
    ) -> impl Future<Output = AckResponses> + Send + 'static {
        let mut acks = self.broadcast_acks(packet, opts);
        async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut responses = Vec::with_capacity(acks.expected());
            while let Some(answer) = acks.next(deadline).await {
                responses.push(answer);
            }
            AckResponses::local(responses, acks.missing())
        }
    }
}

/// The packet without its last argument (a recovery offset).
fn without_last_arg(packet: &Packet) -> Packet {
    let mut copy = packet.clone();
    if let PacketData::Event { args, .. } = &mut copy.data {
        args.pop();
    }
    copy
}

/// The acks expected from a broadcast sent on this node (see
/// [`LocalNamespace::broadcast_acks`]). Dropping it forgets the acks still pending.
pub struct LocalAcks {
    id: u64,
    expected: Vec<Socket>,
    answered: HashSet<String>,
    rx: tokio::sync::mpsc::Receiver<(String, Data)>,
}

impl std::fmt::Debug for LocalAcks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAcks")
            .field("expected", &self.expected.len())
            .field("answered", &self.answered.len())
            .finish()
    }
}

impl LocalAcks {
    /// How many sockets were sent the event (the acks to expect).
    pub fn expected(&self) -> usize {
        self.expected.len()
    }

    /// The next ack, as `(socket id, arguments)`; `None` once all came or at `deadline`.
    pub async fn next(&mut self, deadline: tokio::time::Instant) -> Option<(String, Data)> {
        if self.answered.len() >= self.expected.len() {
            return None;
        }
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Ok(Some(answer)) => {
                self.answered.insert(answer.0.clone());
                Some(answer)
            }
            Ok(None) | Err(_) => None,
        }
    }

    /// The ids of the sockets that have not answered (yet).
    pub fn missing(&self) -> Vec<String> {
        self.expected
            .iter()
            .filter(|s| !self.answered.contains(s.id()))
            .map(|s| s.id().to_owned())
            .collect()
    }
}

impl Drop for LocalAcks {
    fn drop(&mut self) {
        for s in &self.expected {
            s.forget_ack(self.id);
        }
    }
}

/// Receivers of one broadcast whose packets the emitting thread writes itself (when nothing
/// waits before them: see `socketlet_engine::Socket::send_all`). Past them, on a runtime with
/// several workers, packets are left to the receivers' own tasks, so that the workers share the
/// writes of a large room instead of one thread making them all; with one worker, writing them
/// all at once is cheapest.
const DIRECT_FANOUT: usize = 512;

/// Receivers warmed at a time by [`warm_ahead`]: about as many cache misses as a core keeps
/// in flight at once.
const WARM_BATCH: usize = 8;

/// At every [`WARM_BATCH`]th receiver `i` of a fan-out, warms the next batch, the first of
/// the receivers `rest` that are left (see [`Socket::warm`]): a broadcast to a large room
/// otherwise waits for two or three cache misses per receiver, one after the other, since the
/// kernel's work for each send evicts what the next one needs.
fn warm_ahead(rest: &[Socket], i: usize) {
    if i.is_multiple_of(WARM_BATCH) {
        for s in rest.iter().take(WARM_BATCH) {
            s.warm();
        }
    }
}

/// How the packets of one broadcast go to each receiver.
struct Fanout {
    volatile: bool,
    /// Receivers from this index on are left to their tasks.
    queue_from: usize,
}

impl Fanout {
    fn new(receivers: usize, volatile: bool) -> Fanout {
        let workers = tokio::runtime::Handle::try_current()
            .map(|h| h.metrics().num_workers())
            .unwrap_or(1);
        let queue_from = if receivers > DIRECT_FANOUT && workers > 1 {
            DIRECT_FANOUT
        } else {
            usize::MAX
        };
        Fanout {
            volatile,
            queue_from,
        }
    }

    fn handoff(&self, receiver: usize) -> Handoff {
        if self.volatile {
            Handoff::Volatile
        } else if receiver >= self.queue_from {
            Handoff::Queued
        } else {
            Handoff::Now
        }
    }
}

#[cfg(test)]
mod fanout_tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn one_worker_writes_every_receiver_itself() {
        let fanout = Fanout::new(10_000, false);
        assert_eq!(fanout.handoff(0), Handoff::Now);
        assert_eq!(fanout.handoff(9_999), Handoff::Now);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_workers_share_a_large_room() {
        let fanout = Fanout::new(10_000, false);
        assert_eq!(fanout.handoff(DIRECT_FANOUT - 1), Handoff::Now);
        assert_eq!(fanout.handoff(DIRECT_FANOUT), Handoff::Queued);
        let small = Fanout::new(DIRECT_FANOUT, false);
        assert_eq!(small.handoff(DIRECT_FANOUT - 1), Handoff::Now);
        let volatile = Fanout::new(10_000, true);
        assert_eq!(volatile.handoff(9_999), Handoff::Volatile);
    }

    #[test]
    fn outside_a_runtime_the_caller_writes() {
        assert_eq!(Fanout::new(10_000, false).handoff(9_999), Handoff::Now);
    }
}
