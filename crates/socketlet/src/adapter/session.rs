//! Connection state recovery in memory: what the server keeps of a disconnected socket, and
//! the packets it may have missed, on this node.
//!
//! [`SessionAware`] wraps a namespace's adapter when recovery is on and the adapter keeps no
//! sessions of its own: every broadcast of an event without an ack that is not volatile gets
//! an offset appended as its last argument and is logged; a socket that leaves for a
//! recoverable reason is persisted; a client that comes back with its `pid` and the last
//! offset it saw gets its socket back, and the packets it missed.
//!
//! Bounded: packets are kept at most `max_disconnection_duration`, and at most
//! `max_packets` / `max_bytes` of them. **When full**, the oldest go; a session whose offset
//! went with them recovers as a fresh socket (never an error). Sessions: at most
//! `max_sessions`, the oldest dropped first.

use super::{Adapter, AdapterError, BoxFuture, BroadcastOptions, LocalNamespace, Room};
use crate::config::RecoveryConfig;
use serde_json::Value;
use socketlet_engine::sync::lock;
use socketlet_socketio_proto::{Packet, PacketData};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// What is kept of a socket that left for a reason it may recover from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Session {
    /// The socket id, given back on recovery.
    pub sid: String,
    /// The private id the client presents to recover (never shown to other clients).
    pub pid: String,
    /// Its rooms, its own id included.
    pub rooms: Vec<Room>,
    /// Its data ([`crate::Socket::data`]).
    pub data: Value,
}

impl Session {
    /// A session.
    pub fn new(sid: String, pid: String, rooms: Vec<Room>, data: Value) -> Self {
        Session {
            sid,
            pid,
            rooms,
            data,
        }
    }
}

/// A session given back, with the events it missed (each with its offset as its last
/// argument), oldest first.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Restored {
    /// The session.
    pub session: Session,
    /// The events broadcast to its rooms while it was away.
    pub missed: Vec<Packet>,
}

impl Restored {
    /// A restored session.
    pub fn new(session: Session, missed: Vec<Packet>) -> Self {
        Restored { session, missed }
    }
}

/// Whether a packet broadcast with `opts` reaches a socket in `rooms` (Node's rule).
pub fn reaches(rooms: &[Room], opts: &BroadcastOptions) -> bool {
    let included = opts.rooms.is_empty() || rooms.iter().any(|r| opts.rooms.contains(r));
    let excluded = rooms.iter().any(|r| opts.except.contains(r));
    included && !excluded
}

/// Whether a broadcast is logged for recovery: an event, without an ack, not volatile.
pub fn is_recoverable(packet: &Packet, opts: &BroadcastOptions) -> bool {
    matches!(packet.data, PacketData::Event { id: None, .. }) && !opts.volatile
}

/// Appends `offset` as the packet's last argument.
pub fn append_offset(packet: &mut Packet, offset: &str) {
    if let PacketData::Event { args, .. } = &mut packet.data {
        args.push(Value::from(offset));
    }
}

struct Logged {
    packet: Packet,
    rooms: Vec<Room>,
    except: Vec<Room>,
    at: Instant,
    bytes: usize,
}

#[derive(Default)]
struct Store {
    /// Packets in offset order: the first has offset `first`.
    packets: VecDeque<Logged>,
    first: u64,
    bytes: usize,
    sessions: HashMap<String, (Session, Instant)>,
    /// Pids in the order they were persisted, to drop the oldest first.
    order: VecDeque<String>,
}

/// The in-memory session store around an adapter (see the [module docs](self)).
pub(crate) struct SessionAware {
    inner: Arc<dyn Adapter>,
    config: RecoveryConfig,
    store: Mutex<Store>,
}

/// The rough size of a packet, for the byte bound.
fn size(packet: &Packet) -> usize {
    let args = match &packet.data {
        PacketData::Event { name, args, .. } => {
            name.len() + args.iter().map(|a| a.to_string().len()).sum::<usize>()
        }
        _ => 0,
    };
    64 + args + packet.attachments.iter().map(|b| b.len()).sum::<usize>()
}

/// Keeps in `store.order` only the last place of each session still kept.
fn compact(store: &mut Store) {
    let Store {
        order, sessions, ..
    } = store;
    let mut seen = HashSet::with_capacity(sessions.len());
    let mut kept: Vec<String> = order
        .drain(..)
        .rev()
        .filter(|pid| sessions.contains_key(pid) && seen.insert(pid.clone()))
        .collect();
    kept.reverse();
    *order = kept.into();
}

impl SessionAware {
    pub(crate) fn new(inner: Arc<dyn Adapter>, config: RecoveryConfig) -> Self {
        SessionAware {
            inner,
            config,
            store: Mutex::new(Store::default()),
        }
    }

    /// Drops what is too old, or past the bounds.
    fn prune(&self, store: &mut Store, now: Instant) {
        let max_age = self.config.max_disconnection_duration;
        while let Some(oldest) = store.packets.front() {
            let old = now.duration_since(oldest.at) > max_age;
            let full = store.packets.len() > self.config.max_packets
                || store.bytes > self.config.max_bytes;
            if !old && !full {
                break;
            }
            store.bytes -= oldest.bytes;
            store.packets.pop_front();
            store.first += 1;
        }
        while let Some(pid) = store.order.front() {
            let gone = match store.sessions.get(pid) {
                None => true,
                Some((_, at)) => now.duration_since(*at) > max_age,
            };
            if !gone && store.sessions.len() <= self.config.max_sessions {
                break;
            }
            if let Some(pid) = store.order.pop_front() {
                store.sessions.remove(&pid);
            }
        }
    }

    /// Logs a broadcast; the offset appended to it.
    fn log(&self, packet: &mut Packet, opts: &BroadcastOptions) {
        let now = Instant::now();
        let mut store = lock(&self.store);
        let offset = store.first + store.packets.len() as u64;
        append_offset(packet, &offset.to_string());
        let bytes = size(packet);
        store.bytes += bytes;
        store.packets.push_back(Logged {
            packet: packet.clone(),
            rooms: opts.rooms.clone(),
            except: opts.except.clone(),
            at: now,
            bytes,
        });
        self.prune(&mut store, now);
    }
}

impl Adapter for SessionAware {
    fn wrapped(&self) -> Option<&dyn Adapter> {
        Some(&*self.inner)
    }

    fn broadcast(
        &self,
        local: &LocalNamespace,
        mut packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError> {
        let mut opts = opts;
        if is_recoverable(&packet, &opts) {
            self.log(&mut packet, &opts);
            opts.offset = true;
        }
        self.inner.broadcast(local, packet, opts)
    }

    fn keeps_sessions(&self) -> bool {
        true
    }

    fn persist_session(&self, _local: &LocalNamespace, session: Session) {
        let now = Instant::now();
        let mut store = lock(&self.store);
        store.order.push_back(session.pid.clone());
        store.sessions.insert(session.pid.clone(), (session, now));
        self.prune(&mut store, now);
        // A session restored, or kept again, leaves its older places in the order behind: a
        // socket that keeps dropping and recovering would grow the order past the sessions.
        // Once it holds twice as many places as sessions, the stale ones go.
        if store.order.len() > 2 * store.sessions.len() + 16 {
            compact(&mut store);
        }
    }

    fn restore_session(
        &self,
        _local: &LocalNamespace,
        pid: &str,
        offset: &str,
    ) -> BoxFuture<'static, Result<Option<Restored>, AdapterError>> {
        let now = Instant::now();
        let mut store = lock(&self.store);
        self.prune(&mut store, now);
        let restored = (|| {
            let (session, _) = store.sessions.remove(pid)?;
            let offset: u64 = offset.parse().ok()?;
            // The packet of the offset must still be there (else the client missed packets
            // that are gone).
            let index = usize::try_from(offset.checked_sub(store.first)?).ok()?;
            if index >= store.packets.len() {
                return None;
            }
            let missed = store
                .packets
                .iter()
                .skip(index + 1)
                .filter(|p| {
                    reaches(
                        &session.rooms,
                        &BroadcastOptions {
                            rooms: p.rooms.clone(),
                            except: p.except.clone(),
                            ..Default::default()
                        },
                    )
                })
                .map(|p| p.packet.clone())
                .collect();
            Some(Restored { session, missed })
        })();
        Box::pin(std::future::ready(Ok(restored)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::adapter::MemoryAdapter;
    use crate::config::Parser;
    use crate::observer::Hub;

    fn session(pid: &str) -> Session {
        Session::new(
            format!("sid-{pid}"),
            pid.to_owned(),
            Vec::new(),
            Value::Null,
        )
    }

    #[tokio::test]
    async fn a_session_that_keeps_coming_back_does_not_grow_the_order() {
        let store = SessionAware::new(Arc::new(MemoryAdapter), RecoveryConfig::default());
        let local = LocalNamespace::new("/".into(), Arc::new(Hub::default()), Parser::Json);
        let mut packet = Packet::new(
            "/",
            PacketData::Event {
                name: "e".into(),
                args: vec![Value::from(1)],
                id: None,
            },
        );
        store.log(&mut packet, &BroadcastOptions::default());
        store.persist_session(&local, session("steady"));
        for _ in 0..1000 {
            store.persist_session(&local, session("flaky"));
            let restored = store.restore_session(&local, "flaky", "0").await.unwrap();
            assert!(restored.is_some());
        }
        let kept = lock(&store.store);
        assert_eq!(kept.sessions.len(), 1);
        assert!(
            kept.order.len() <= 2 * kept.sessions.len() + 16,
            "{}",
            kept.order.len()
        );
        assert_eq!(kept.order.front().map(String::as_str), Some("steady"));
    }
}
