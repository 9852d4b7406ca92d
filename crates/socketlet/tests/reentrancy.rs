//! Code of the application (listeners, handlers) and of adapters runs with no lock of the
//! server held: each may call back into the same socket, namespace or server. Each test here
//! used to deadlock, so each runs under a watchdog that fails it instead of hanging the suite.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use socketlet::adapter::{Adapter, BroadcastOptions};
use socketlet::{LocalNamespace, Socket, SocketIo};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs `scenario` on a runtime of its own thread and fails the test if it does not finish
/// within 20 s (a deadlocked thread cannot be unblocked, but it no longer holds up the suite).
fn no_deadlock<F, Fut>(what: &str, scenario: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(scenario());
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what}: deadlocked"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// A v5 polling client connected to `/`, and its socket on the server.
async fn connect(io: &SocketIo) -> (Polling, Socket) {
    let client = Polling::open(io).await;
    let (id, _) = client.connect(None).await;
    let socket = io.of("/").get_socket(&id).expect("the socket");
    (client, socket)
}

#[test]
fn an_incoming_listener_may_disconnect_its_socket() {
    no_deadlock("disconnect from on_any", || async {
        let io = SocketIo::new();
        io.of("/").on_connect(|socket: Socket| async move {
            socket.on_any(|socket, event| async move {
                if event.name == "leave-now" {
                    socket.disconnect();
                }
            });
        });
        let (client, socket) = connect(&io).await;
        client.send(r#"42["leave-now"]"#).await;
        assert_eq!(client.recv_one().await, "41");
        assert!(!socket.connected());
    });
}

#[test]
fn an_incoming_listener_may_add_listeners() {
    no_deadlock("on_any from on_any", || async {
        let io = SocketIo::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        io.of("/").on_connect(move |socket: Socket| {
            let log = log.clone();
            socket.on_any(move |socket, event| {
                let log = log.clone();
                log.lock().unwrap().push(format!("first {}", event.name));
                socket.on_any(move |_socket, event| {
                    log.lock().unwrap().push(format!("added {}", event.name));
                    async {}
                });
                async {}
            });
            async {}
        });
        let (client, _socket) = connect(&io).await;
        client.send(r#"42["a"]"#).await;
        client.send(r#"42["b"]"#).await;
        settle().await;
        assert_eq!(
            *seen.lock().unwrap(),
            ["first a", "first b", "added b"],
            "a listener added during a dispatch hears the next events"
        );
    });
}

#[test]
fn an_outgoing_listener_may_disconnect_its_socket() {
    no_deadlock("disconnect from on_any_outgoing", || async {
        let io = SocketIo::new();
        let (client, socket) = connect(&io).await;
        socket.on_any_outgoing(|socket, event| async move {
            if event.name == "last-words" {
                socket.disconnect();
            }
        });
        // The listener runs before the packet goes out: the socket is gone by then, so the
        // emit itself reports it, and the client gets the DISCONNECT.
        let emitted = socket.emit("last-words", json!(1));
        assert!(
            matches!(emitted, Err(socketlet::EmitError::Disconnected)),
            "{emitted:?}"
        );
        assert_eq!(client.recv_one().await, "41");
        assert!(!socket.connected());
    });
}

#[test]
fn a_connect_handler_may_read_the_extensions_it_set() {
    no_deadlock("extensions", || async {
        let io = SocketIo::new();
        io.of("/").use_middleware(|socket: Socket| async move {
            socket
                .extensions()
                .insert(Arc::new(Mutex::new(vec!["from middleware".to_owned()])));
            Ok(())
        });
        io.of("/").on_connect(|socket: Socket| async move {
            let log = socket
                .extensions()
                .get::<Arc<Mutex<Vec<String>>>>()
                .expect("the middleware's value");
            // Using the map again while holding the value the map handed out.
            let guard = log.lock().unwrap();
            socket.extensions().insert(guard.len());
            drop(guard);
            let _ = socket.emit("count", json!(socket.extensions().get::<usize>()));
        });
        let client = Polling::open(&io).await;
        client.send("40").await;
        let packets = client.recv().await;
        assert!(
            packets.contains(&r#"42["count",1]"#.to_owned()),
            "{packets:?}"
        );
    });
}

/// An adapter that, on every room change, reads the sockets of that room and their rooms (which
/// takes the namespace's and each socket's locks) and records what it saw.
struct Inspecting {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Inspecting {
    fn inspect(&self, local: &LocalNamespace, what: &str, room: &str) {
        let opts = BroadcastOptions {
            rooms: vec![room.to_owned()],
            ..Default::default()
        };
        let members: usize = local.sockets(&opts).iter().map(|s| s.rooms().len()).sum();
        self.seen
            .lock()
            .unwrap()
            .push(format!("{what} {room}: {members}"));
    }
}

impl Adapter for Inspecting {
    fn room_created(&self, local: &LocalNamespace, room: &str, private: bool) {
        if !private {
            self.inspect(local, "created", room);
        }
    }
    fn room_deleted(&self, local: &LocalNamespace, room: &str, private: bool) {
        if !private {
            self.inspect(local, "deleted", room);
        }
    }
}

#[test]
fn an_adapter_hears_of_rooms_with_no_lock_held() {
    no_deadlock("room_created/room_deleted", || async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let io = SocketIo::builder()
            .adapter(Arc::new(move |_nsp: &str| {
                Arc::new(Inspecting { seen: log.clone() }) as Arc<dyn Adapter>
            }))
            .build();
        let (_client, socket) = connect(&io).await;
        socket.join(["lobby"]);
        socket.leave("lobby");
        socket.join(["a", "b"]);
        socket.leave_all();
        let mut seen = seen.lock().unwrap().clone();
        // `leave_all` leaves in no particular order.
        seen[4..].sort();
        assert_eq!(
            seen,
            [
                // The socket is in the room when the adapter hears of it (its own id and the
                // room: 2), and out of it when the room is gone.
                "created lobby: 2",
                "deleted lobby: 0",
                "created a: 3",
                "created b: 3",
                "deleted a: 0",
                "deleted b: 0",
            ]
        );
    });
}
