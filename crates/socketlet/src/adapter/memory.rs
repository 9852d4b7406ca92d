//! The in-memory adapter: single-node mode.

use super::{Adapter, AdapterError, BoxFuture, BroadcastOptions, Room};
use crate::namespace::Namespace;
use crate::operators::AckResponses;
use crate::socket::SocketInfo;
use socketlet_socketio_proto::Packet;
use std::time::Duration;

/// Everything happens on this node: the namespace's own index is the whole truth.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryAdapter;

impl Adapter for MemoryAdapter {
    fn broadcast(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError> {
        ns.local_broadcast(&packet, &opts);
        Ok(())
    }

    fn broadcast_with_ack(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Duration,
    ) -> BoxFuture<'static, AckResponses> {
        Box::pin(ns.local_broadcast_with_ack(packet, &opts, timeout))
    }

    fn fetch_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketInfo>, AdapterError>> {
        let infos = ns.local_sockets(&opts).iter().map(|s| s.info()).collect();
        Box::pin(async move { Ok(infos) })
    }

    fn add_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        ns.local_add_sockets(&opts, &rooms);
        Box::pin(async { Ok(()) })
    }

    fn del_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        ns.local_del_sockets(&opts, &rooms);
        Box::pin(async { Ok(()) })
    }

    fn disconnect_sockets(
        &self,
        ns: &Namespace,
        opts: BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        ns.local_disconnect_sockets(&opts, close);
        Box::pin(async { Ok(()) })
    }
}
