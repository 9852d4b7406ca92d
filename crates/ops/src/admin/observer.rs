//! What the admin side hears from the server: counts for `server_stats` (always), and in
//! development mode notes of connections, rooms and events, queued (bounded) for the task that
//! sends them to the admin namespace.

use super::wire::{self, AggregatedEvent};
use serde_json::{json, Value};
use socketlet::engine::{sync::lock, CloseReason, Connection, Sid};
use socketlet::socketio_proto::Packet;
use socketlet::{Data, DisconnectReason, Observer, Socket, TransportKind, WeakSocketIo};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::mpsc;

/// The counts of `server_stats.aggregatedEvents` since the last report.
#[derive(Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Connections on long-polling now (Node's `pollingClientsCount`).
    polling: AtomicI64,
    /// Closed connections by reason (a handful of reasons: a short list).
    disconnections: Mutex<Vec<(&'static str, u64)>>,
}

impl Counters {
    /// Connections on long-polling now.
    pub(crate) fn polling_clients(&self) -> i64 {
        self.polling.load(Ordering::Relaxed).max(0)
    }

    /// Takes the counts since the last call, as aggregated events of the second of `now`
    /// (the UI adds them up by 10 s). Counts of zero are left out, as Node never has them.
    pub(crate) fn take(&self, now: SystemTime) -> Vec<AggregatedEvent> {
        let timestamp = wire::millis(now) / 1000 * 1000;
        let mut out = Vec::new();
        let mut push = |kind, sub_type, count| {
            if count > 0 {
                out.push(AggregatedEvent {
                    timestamp,
                    kind,
                    sub_type,
                    count,
                });
            }
        };
        push(
            "rawConnection",
            None,
            self.connections.swap(0, Ordering::Relaxed),
        );
        let closed = std::mem::take(&mut *lock(&self.disconnections));
        for (reason, count) in closed {
            push("rawDisconnection", Some(reason), count);
        }
        push(
            "packetsIn",
            None,
            self.packets_in.swap(0, Ordering::Relaxed),
        );
        push(
            "packetsOut",
            None,
            self.packets_out.swap(0, Ordering::Relaxed),
        );
        push("bytesIn", None, self.bytes_in.swap(0, Ordering::Relaxed));
        push("bytesOut", None, self.bytes_out.swap(0, Ordering::Relaxed));
        out
    }
}

/// Something to tell the admin namespace (development mode), with when it happened.
pub(crate) enum Note {
    Connected {
        socket: Value,
        at: SystemTime,
    },
    Updated(Value),
    Disconnected {
        nsp: String,
        id: String,
        reason: &'static str,
        rooms: Vec<String>,
        at: SystemTime,
    },
    RoomJoined {
        nsp: String,
        room: String,
        id: String,
        at: SystemTime,
    },
    RoomLeft {
        nsp: String,
        room: String,
        id: String,
        at: SystemTime,
    },
    Event {
        /// `event_received` or `event_sent`.
        kind: &'static str,
        nsp: String,
        id: String,
        event: String,
        data: Data,
        at: SystemTime,
    },
}

impl Note {
    /// The events to emit to the admin namespace, with Node's arguments.
    pub(crate) fn into_events(self) -> Vec<(&'static str, Data)> {
        let t = |at| Value::from(wire::iso8601(at));
        match self {
            Note::Connected { socket, at } => {
                vec![("socket_connected", Data::args(vec![socket, t(at)]))]
            }
            Note::Updated(update) => vec![("socket_updated", Data::args(vec![update]))],
            Note::Disconnected {
                nsp,
                id,
                reason,
                rooms,
                at,
            } => {
                // Node's socket leaves its rooms as it goes: the UI then drops them from its lists.
                let mut events = vec![(
                    "socket_disconnected",
                    Data::args(vec![
                        nsp.clone().into(),
                        id.clone().into(),
                        reason.into(),
                        t(at),
                    ]),
                )];
                for room in rooms {
                    events.push((
                        "room_left",
                        Data::args(vec![
                            nsp.clone().into(),
                            room.into(),
                            id.clone().into(),
                            t(at),
                        ]),
                    ));
                }
                events
            }
            Note::RoomJoined { nsp, room, id, at } => vec![(
                "room_joined",
                Data::args(vec![nsp.into(), room.into(), id.into(), t(at)]),
            )],
            Note::RoomLeft { nsp, room, id, at } => vec![(
                "room_left",
                Data::args(vec![nsp.into(), room.into(), id.into(), t(at)]),
            )],
            Note::Event {
                kind,
                nsp,
                id,
                event,
                data,
                at,
            } => {
                // `[event, ...args]`: the attachments keep their numbers.
                let mut all = Vec::with_capacity(data.args.len() + 1);
                all.push(Value::from(event));
                all.extend(data.args);
                let args = vec![nsp.into(), id.into(), Value::Array(all), t(at)];
                vec![(
                    kind,
                    Data {
                        args,
                        binary: data.binary,
                    },
                )]
            }
        }
    }
}

/// The development-mode part: the queue of notes, and the sockets of each connection (for
/// transport upgrades).
struct Verbose {
    io: WeakSocketIo,
    admin_nsp: String,
    notes: mpsc::Sender<Note>,
    dropped: Arc<AtomicU64>,
    /// `(namespace, socket id)` of the sockets over each connection of this node.
    by_connection: Mutex<HashMap<Sid, Vec<(String, String)>>>,
}

impl Verbose {
    fn note(&self, note: Note) {
        queue(&self.notes, &self.dropped, note);
    }
}

/// Queues `note`, or drops and counts it when the queue is full.
fn queue(notes: &mpsc::Sender<Note>, dropped: &AtomicU64, note: Note) {
    if notes.try_send(note).is_err() {
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The admin side's [`Observer`].
pub(crate) struct AdminObserver {
    counters: Arc<Counters>,
    verbose: Option<Verbose>,
}

impl AdminObserver {
    /// Counts for `counters`; with `notes`, development mode.
    pub(crate) fn new(
        io: WeakSocketIo,
        admin_nsp: String,
        counters: Arc<Counters>,
        notes: Option<mpsc::Sender<Note>>,
        dropped: Arc<AtomicU64>,
    ) -> AdminObserver {
        AdminObserver {
            counters,
            verbose: notes.map(|notes| Verbose {
                io,
                admin_nsp,
                notes,
                dropped,
                by_connection: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Observer for AdminObserver {
    fn connection_opened(&self, connection: &Arc<Connection>) {
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        if connection.transport() == TransportKind::Polling {
            self.counters.polling.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn connection_upgraded(&self, connection: &Arc<Connection>) {
        self.counters.polling.fetch_sub(1, Ordering::Relaxed);
        let Some(v) = &self.verbose else {
            return;
        };
        let sockets = lock(&v.by_connection)
            .get(&connection.sid())
            .cloned()
            .unwrap_or_default();
        let Some(io) = v.io.upgrade() else {
            return;
        };
        let transport = connection.transport().as_str();
        for (nsp, id) in sockets {
            if let Some(socket) = io.resolve(&nsp).and_then(|ns| ns.get_socket(&id)) {
                let mut data = socket.data();
                if let Some(admin) = data.get_mut(wire::ADMIN_KEY).and_then(Value::as_object_mut) {
                    admin.insert("transport".into(), transport.into());
                    let _ = socket.set_data(data);
                }
            }
            v.note(Note::Updated(
                json!({"id": id, "nsp": nsp, "transport": transport}),
            ));
        }
    }

    fn connection_closed(&self, connection: &Arc<Connection>, reason: CloseReason) {
        if connection.transport() == TransportKind::Polling {
            self.counters.polling.fetch_sub(1, Ordering::Relaxed);
        }
        let reason = reason.as_str();
        let mut closed = lock(&self.counters.disconnections);
        match closed.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => closed.push((reason, 1)),
        }
    }

    fn socket_connected(&self, socket: &Socket) {
        let Some(v) = &self.verbose else {
            return;
        };
        // Node's `socket.data._admin`, for the other nodes' `fetch_sockets`.
        if let Some(data) = wire::with_admin(socket.data(), wire::admin_data(socket)) {
            let _ = socket.set_data(data);
        }
        lock(&v.by_connection)
            .entry(socket.connection_id())
            .or_default()
            .push((socket.ns().name().to_owned(), socket.id().to_owned()));
        let nsp = socket.ns().name();
        if nsp != v.admin_nsp {
            let notes = v.notes.clone();
            let dropped = v.dropped.clone();
            socket.on_any_outgoing(move |socket: Socket, event: socketlet::AnyEvent| {
                queue(
                    &notes,
                    &dropped,
                    Note::Event {
                        kind: "event_sent",
                        nsp: socket.ns().name().to_owned(),
                        id: socket.id().to_owned(),
                        event: event.name,
                        data: event.data,
                        at: SystemTime::now(),
                    },
                );
                async {}
            });
        }
        v.note(Note::Connected {
            socket: wire::serialize(&socket.info()),
            at: SystemTime::now(),
        });
    }

    fn socket_disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        let Some(v) = &self.verbose else {
            return;
        };
        {
            let mut map = lock(&v.by_connection);
            let connection = socket.connection_id();
            if let Some(list) = map.get_mut(&connection) {
                list.retain(|(nsp, id)| !(nsp == socket.ns().name() && id == socket.id()));
                if list.is_empty() {
                    map.remove(&connection);
                }
            }
        }
        v.note(Note::Disconnected {
            nsp: socket.ns().name().to_owned(),
            id: socket.id().to_owned(),
            reason: reason.as_str(),
            rooms: socket.rooms(),
            at: SystemTime::now(),
        });
    }

    fn room_joined(&self, socket: &Socket, room: &str) {
        if let Some(v) = &self.verbose {
            v.note(Note::RoomJoined {
                nsp: socket.ns().name().to_owned(),
                room: room.to_owned(),
                id: socket.id().to_owned(),
                at: SystemTime::now(),
            });
        }
    }

    fn room_left(&self, socket: &Socket, room: &str) {
        if let Some(v) = &self.verbose {
            v.note(Note::RoomLeft {
                nsp: socket.ns().name().to_owned(),
                room: room.to_owned(),
                id: socket.id().to_owned(),
                at: SystemTime::now(),
            });
        }
    }

    fn event_received(&self, socket: &Socket, event: &str, data: &Data, bytes: usize) {
        self.counters.packets_in.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_in
            .fetch_add(bytes as u64, Ordering::Relaxed);
        let Some(v) = &self.verbose else {
            return;
        };
        let nsp = socket.ns().name();
        if nsp != v.admin_nsp {
            v.note(Note::Event {
                kind: "event_received",
                nsp: nsp.to_owned(),
                id: socket.id().to_owned(),
                event: event.to_owned(),
                data: data.clone(),
                at: SystemTime::now(),
            });
        }
    }

    fn ack_received(&self, _socket: &Socket, _data: &Data) {
        self.counters.packets_in.fetch_add(1, Ordering::Relaxed);
    }

    fn packet_sent(&self, _socket: &Socket, _packet: &Packet, bytes: usize) {
        self.counters.packets_out.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn broadcast_sent(&self, _nsp: &str, _packet: &Packet, receivers: usize, bytes: usize) {
        let receivers = receivers as u64;
        self.counters
            .packets_out
            .fetch_add(receivers, Ordering::Relaxed);
        self.counters
            .bytes_out
            .fetch_add(receivers * bytes as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn counts_are_taken_once_on_their_second() {
        let c = Counters::default();
        c.packets_in.fetch_add(3, Ordering::Relaxed);
        c.bytes_in.fetch_add(120, Ordering::Relaxed);
        c.connections.fetch_add(1, Ordering::Relaxed);
        lock(&c.disconnections).push(("ping timeout", 2));
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_987);
        let taken = c.take(now);
        let kinds: Vec<_> = taken
            .iter()
            .map(|e| (e.kind, e.sub_type, e.count))
            .collect();
        assert_eq!(
            kinds,
            [
                ("rawConnection", None, 1),
                ("rawDisconnection", Some("ping timeout"), 2),
                ("packetsIn", None, 3),
                ("bytesIn", None, 120),
            ]
        );
        assert!(taken.iter().all(|e| e.timestamp == 1_700_000_000_000));
        assert!(c.take(now).is_empty(), "taken once");
    }

    #[test]
    fn events_carry_their_name_first_and_keep_attachments() {
        let mut data = Data::new();
        let placeholder = data.push_binary(bytes::Bytes::from_static(b"\x01\x02"));
        data.push(json!({"file": placeholder}));
        let at = UNIX_EPOCH + Duration::from_millis(1_000);
        let events = Note::Event {
            kind: "event_received",
            nsp: "/".into(),
            id: "abc".into(),
            event: "upload".into(),
            data,
            at,
        }
        .into_events();
        assert_eq!(events.len(), 1);
        let (name, data) = &events[0];
        assert_eq!(*name, "event_received");
        assert_eq!(
            data.args,
            vec![
                json!("/"),
                json!("abc"),
                json!(["upload", {"file": {"_placeholder": true, "num": 0}}]),
                json!("1970-01-01T00:00:01.000Z"),
            ]
        );
        assert_eq!(data.binary.len(), 1);
    }

    #[test]
    fn a_disconnect_also_leaves_the_rooms() {
        let events = Note::Disconnected {
            nsp: "/".into(),
            id: "abc".into(),
            reason: "transport close",
            rooms: vec!["lobby".into(), "abc".into()],
            at: UNIX_EPOCH,
        }
        .into_events();
        let names: Vec<_> = events.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["socket_disconnected", "room_left", "room_left"]);
        assert_eq!(events[1].1.args[1], json!("lobby"));
        assert_eq!(events[0].1.args[2], json!("transport close"));
    }
}
