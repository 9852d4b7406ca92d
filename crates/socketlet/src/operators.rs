//! Broadcast operators: `to`, `except`, `local`, `volatile`, `timeout`, then an action.

use crate::adapter::{AdapterError, BroadcastOptions, Disconnect, Room};
use crate::data::{Data, IntoArgs};
use crate::error::EmitError;
use crate::info::SocketInfo;
use crate::namespace::Namespace;
use crate::socket::RESERVED_EVENTS;
use socketlet_socketio_proto::{Packet, PacketData};
use std::time::Duration;

/// The answers gathered by a broadcast with acks, and what did not come.
///
/// Three outcomes a caller tells apart:
/// - every targeted socket answered: [`AckResponses::is_complete`];
/// - some did not answer in time: [`missing`](AckResponses::missing) names this node's,
///   [`missing_remote`](AckResponses::missing_remote) counts the other nodes' (Node's Redis
///   adapter announces how many acks a node expects, not which sockets), and
///   [`silent_nodes`](AckResponses::silent_nodes) counts the nodes that never answered at all;
/// - the cluster could not be reached: [`cluster_error`](AckResponses::cluster_error), and only
///   this node's sockets were asked.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AckResponses {
    /// `(socket id, ack arguments)` for every socket that answered in time. The id is empty
    /// for answers relayed by nodes that do not name the socket (Node's Redis adapter sends the
    /// first argument of each ack only).
    pub responses: Vec<(String, Data)>,
    /// The ids of the sockets of this node that did not answer in time.
    pub missing: Vec<String>,
    /// Acks that other nodes said to expect and that did not come in time.
    pub missing_remote: usize,
    /// Other nodes that were sent the event and did not say how many acks to expect in time
    /// (their sockets' answers are unknown).
    pub silent_nodes: usize,
    /// Why the other nodes could not be asked, if they could not.
    pub cluster_error: Option<AdapterError>,
}

impl AckResponses {
    /// Answers from this node only: `responses`, and the ids of the sockets that did not answer.
    pub fn local(responses: Vec<(String, Data)>, missing: Vec<String>) -> Self {
        AckResponses {
            responses,
            missing,
            ..AckResponses::default()
        }
    }

    /// Whether every targeted socket, on every node, answered in time.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
            && self.missing_remote == 0
            && self.silent_nodes == 0
            && self.cluster_error.is_none()
    }
}

/// Selects sockets of a namespace, then acts on them. Built from [`Namespace::to`],
/// [`crate::Socket::broadcast`] and friends.
///
/// ```no_run
/// # fn demo(io: socketlet::SocketIo) {
/// io.of("/").to("room1").except("room2").volatile().emit("tick", serde_json::json!(1)).ok();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BroadcastOperator {
    ns: Namespace,
    opts: BroadcastOptions,
    timeout: Option<Duration>,
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Namespace) -> Self {
        BroadcastOperator {
            ns,
            opts: BroadcastOptions::default(),
            timeout: None,
        }
    }

    /// Also targets the sockets in `room`.
    pub fn to(mut self, room: impl Into<Room>) -> Self {
        self.opts.rooms.push(room.into());
        self
    }

    /// Same as [`BroadcastOperator::to`].
    pub fn in_(self, room: impl Into<Room>) -> Self {
        self.to(room)
    }

    /// Leaves out the sockets in `room`.
    pub fn except(mut self, room: impl Into<Room>) -> Self {
        self.opts.except.push(room.into());
        self
    }

    /// This node only.
    pub fn local(mut self) -> Self {
        self.opts.local = true;
        self
    }

    /// Drops the event for sockets that cannot take it right now.
    pub fn volatile(mut self) -> Self {
        self.opts.volatile = true;
        self
    }

    /// The wait for acks in [`BroadcastOperator::emit_with_ack`] (default: the server's
    /// `ack_timeout`).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// The options built so far.
    pub fn options(&self) -> &BroadcastOptions {
        &self.opts
    }

    fn packet(&self, event: &str, data: Data) -> Result<Packet, EmitError> {
        if RESERVED_EVENTS.contains(&event) {
            return Err(EmitError::ReservedEvent(event.to_owned()));
        }
        Ok(Packet {
            nsp: self.ns.name().to_owned(),
            data: PacketData::Event {
                name: event.to_owned(),
                args: data.args,
                id: None,
            },
            attachments: data.binary,
        })
    }

    /// Emits an event to the selected sockets (any `Serialize` value is one argument; a
    /// [`Data`] is sent as it is). The packet is encoded once for all of them.
    pub fn emit(&self, event: &str, args: impl IntoArgs) -> Result<(), EmitError> {
        let packet = self.packet(event, args.into_args()?)?;
        self.ns
            .adapter()
            .broadcast(self.ns.local(), packet, self.opts.clone())
            .map_err(EmitError::Adapter)
    }

    /// Emits an event to the selected sockets and gathers every ack until all came or the
    /// timeout passed.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: impl IntoArgs,
    ) -> Result<AckResponses, EmitError> {
        let packet = self.packet(event, args.into_args()?)?;
        let timeout = self.timeout.unwrap_or_else(|| self.ns.ack_timeout());
        Ok(self
            .ns
            .adapter()
            .broadcast_with_ack(self.ns.local(), packet, self.opts.clone(), timeout)
            .await)
    }

    /// Describes the selected sockets.
    pub async fn fetch_sockets(&self) -> Result<Vec<SocketInfo>, AdapterError> {
        self.ns
            .adapter()
            .fetch_sockets(self.ns.local(), self.opts.clone())
            .await
    }

    /// Makes the selected sockets join `rooms`.
    pub async fn sockets_join<I, R>(&self, rooms: I) -> Result<(), AdapterError>
    where
        I: IntoIterator<Item = R>,
        R: Into<Room>,
    {
        let rooms = rooms.into_iter().map(Into::into).collect();
        self.ns
            .adapter()
            .add_sockets(self.ns.local(), self.opts.clone(), rooms)
            .await
    }

    /// Makes the selected sockets leave `rooms`.
    pub async fn sockets_leave<I, R>(&self, rooms: I) -> Result<(), AdapterError>
    where
        I: IntoIterator<Item = R>,
        R: Into<Room>,
    {
        let rooms = rooms.into_iter().map(Into::into).collect();
        self.ns
            .adapter()
            .del_sockets(self.ns.local(), self.opts.clone(), rooms)
            .await
    }

    /// Disconnects the selected sockets from the namespace (their clients get a DISCONNECT and
    /// do not reconnect on their own; their connections stay open for other namespaces).
    pub async fn disconnect_sockets(&self) -> Result<(), AdapterError> {
        self.ns
            .adapter()
            .disconnect_sockets(self.ns.local(), self.opts.clone(), Disconnect::Namespace)
            .await
    }

    /// Closes the whole connections of the selected sockets, without a DISCONNECT (their
    /// clients see the transport close and reconnect).
    pub async fn close_connections(&self) -> Result<(), AdapterError> {
        self.ns
            .adapter()
            .disconnect_sockets(self.ns.local(), self.opts.clone(), Disconnect::Connection)
            .await
    }
}
