//! The adapter of a dynamic namespace's parent: every operation goes to each child namespace
//! through the child's own adapter (so it crosses nodes when the children's adapters do), as
//! Node's `ParentNamespace` does.

use super::{Adapter, AdapterError, BoxFuture, BroadcastOptions, Disconnect, LocalNamespace, Room};
use crate::data::Data;
use crate::info::SocketInfo;
use crate::namespace::Namespace;
use crate::operators::AckResponses;
use futures_util::future::join_all;
use socketlet_engine::sync::{read, write};
use socketlet_socketio_proto::Packet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The children of one dynamic namespace, which its parent's operations reach.
#[derive(Default)]
pub(crate) struct ParentAdapter {
    children: RwLock<Vec<Namespace>>,
}

impl ParentAdapter {
    /// A child namespace was created.
    pub(crate) fn add_child(&self, child: Namespace) {
        write(&self.children).push(child);
    }

    /// A child namespace was removed (see [`crate::Adapter::namespace_removed`]).
    pub(crate) fn remove_child(&self, child: &Namespace) {
        write(&self.children).retain(|c| !Arc::ptr_eq(&c.inner, &child.inner));
    }

    /// `op` done on each child (no lock is held while an operation reaches them).
    fn on_children<T>(&self, op: impl FnMut(&Namespace) -> T) -> Vec<T> {
        let children = read(&self.children).clone();
        children.iter().map(op).collect()
    }

    /// Makes the targeted sockets of every child join (`join`) or leave `rooms`.
    fn join_or_leave(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
        join: bool,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        Box::pin(all_ok(self.on_children(|child| {
            let (adapter, local) = (child.adapter(), child.local());
            match join {
                true => adapter.add_sockets(local, opts.clone(), rooms.clone()),
                false => adapter.del_sockets(local, opts.clone(), rooms.clone()),
            }
        })))
    }
}

/// `packet` as it goes to `child`.
fn for_child(packet: &Packet, child: &Namespace) -> Packet {
    let mut packet = packet.clone();
    packet.nsp = child.name().to_owned();
    packet
}

/// Collects the results of one operation over the children: the first error wins, after every
/// child was tried.
async fn all_ok(
    futures: Vec<BoxFuture<'static, Result<(), AdapterError>>>,
) -> Result<(), AdapterError> {
    join_all(futures).await.into_iter().collect()
}

impl Adapter for ParentAdapter {
    fn broadcast(
        &self,
        _parent: &LocalNamespace,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError> {
        // Every child is tried; the first error wins.
        self.on_children(|child| {
            let packet = for_child(&packet, child);
            child
                .adapter()
                .broadcast(child.local(), packet, opts.clone())
        })
        .into_iter()
        .collect()
    }

    fn broadcast_with_ack(
        &self,
        _parent: &LocalNamespace,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Duration,
    ) -> BoxFuture<'static, AckResponses> {
        let futures = self.on_children(|child| {
            let packet = for_child(&packet, child);
            child
                .adapter()
                .broadcast_with_ack(child.local(), packet, opts.clone(), timeout)
        });
        Box::pin(async move {
            let mut all = AckResponses::default();
            for part in join_all(futures).await {
                all.responses.extend(part.responses);
                all.missing.extend(part.missing);
                all.missing_remote += part.missing_remote;
                all.silent_nodes += part.silent_nodes;
                all.cluster_error = all.cluster_error.or(part.cluster_error);
            }
            all
        })
    }

    fn fetch_sockets(
        &self,
        _parent: &LocalNamespace,
        opts: BroadcastOptions,
    ) -> BoxFuture<'static, Result<Vec<SocketInfo>, AdapterError>> {
        let futures =
            self.on_children(|child| child.adapter().fetch_sockets(child.local(), opts.clone()));
        Box::pin(async move {
            let mut sockets = Vec::new();
            for part in join_all(futures).await {
                sockets.extend(part?);
            }
            Ok(sockets)
        })
    }

    fn add_sockets(
        &self,
        _parent: &LocalNamespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        self.join_or_leave(opts, rooms, true)
    }

    fn del_sockets(
        &self,
        _parent: &LocalNamespace,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        self.join_or_leave(opts, rooms, false)
    }

    fn disconnect_sockets(
        &self,
        _parent: &LocalNamespace,
        opts: BroadcastOptions,
        how: Disconnect,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        Box::pin(all_ok(self.on_children(|child| {
            child
                .adapter()
                .disconnect_sockets(child.local(), opts.clone(), how)
        })))
    }

    fn server_side_emit(
        &self,
        _parent: &LocalNamespace,
        event: &str,
        data: Data,
    ) -> Result<(), AdapterError> {
        // Every child is tried; the first error wins.
        self.on_children(|child| {
            child
                .adapter()
                .server_side_emit(child.local(), event, data.clone())
        })
        .into_iter()
        .collect()
    }
}
