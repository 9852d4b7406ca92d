//! The UI's commands, as Node's `instrument()` takes them (socket.io 4 forms), acting on every
//! node through the adapter:
//!
//! - `emit` `(nsp, filter, event, ...args)`: emits `event` to the namespace, or to the sockets
//!   in room `filter`;
//! - `join` / `leave` `(nsp, room, filter?)`: makes the sockets (in `filter`) join or leave `room`;
//! - `_disconnect` `(nsp, close, filter?)`: disconnects them (`close`: closes their whole
//!   connection).
//!
//! The UI puts a socket's own id in `filter` to act on that socket alone; no filter (or an
//! empty one, as in Node) means the whole namespace. A command for a namespace this node cannot
//! have is ignored; malformed ones are ignored too.

use serde_json::Value;
use socketlet::{BroadcastOperator, Data, Socket, SocketIo, WeakSocketIo};

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Command {
    Emit {
        nsp: String,
        filter: Option<String>,
        event: String,
        args: Data,
    },
    Join {
        nsp: String,
        room: String,
        filter: Option<String>,
    },
    Leave {
        nsp: String,
        room: String,
        filter: Option<String>,
    },
    Disconnect {
        nsp: String,
        close: bool,
        filter: Option<String>,
    },
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

/// A filter: a non-empty string, else none (Node's `if (filter)`).
fn filter(v: Option<&Value>) -> Option<String> {
    string(v).filter(|f| !f.is_empty())
}

fn namespace(v: Option<&Value>) -> Option<String> {
    string(v).filter(|n| n.starts_with('/'))
}

impl Command {
    /// The command `name` with `data`, when it is well formed.
    pub(super) fn parse(name: &str, data: Data) -> Option<Command> {
        let a = &data.args;
        match name {
            "emit" => {
                let nsp = namespace(a.first())?;
                let filter = filter(a.get(1));
                let event = string(a.get(2)).filter(|e| !e.is_empty())?;
                let args = Data {
                    args: a.get(3..).map(<[Value]>::to_vec).unwrap_or_default(),
                    binary: data.binary,
                };
                Some(Command::Emit {
                    nsp,
                    filter,
                    event,
                    args,
                })
            }
            "join" | "leave" => {
                let nsp = namespace(a.first())?;
                let room = string(a.get(1)).filter(|r| !r.is_empty())?;
                let filter = filter(a.get(2));
                Some(if name == "join" {
                    Command::Join { nsp, room, filter }
                } else {
                    Command::Leave { nsp, room, filter }
                })
            }
            "_disconnect" => Some(Command::Disconnect {
                nsp: namespace(a.first())?,
                close: a.get(1).and_then(Value::as_bool).unwrap_or(false),
                filter: filter(a.get(2)),
            }),
            _ => None,
        }
    }

    fn nsp(&self) -> &str {
        match self {
            Command::Emit { nsp, .. }
            | Command::Join { nsp, .. }
            | Command::Leave { nsp, .. }
            | Command::Disconnect { nsp, .. } => nsp,
        }
    }

    fn filter(&self) -> Option<&str> {
        match self {
            Command::Emit { filter, .. }
            | Command::Join { filter, .. }
            | Command::Leave { filter, .. }
            | Command::Disconnect { filter, .. } => filter.as_deref(),
        }
    }

    /// Runs the command on `io`'s cluster.
    async fn run(self, io: &SocketIo) {
        // A static namespace, or a child of a dynamic one (never a new static namespace, which
        // would let clients in past a dynamic parent's middlewares).
        let Some(ns) = io.resolve(self.nsp()) else {
            tracing::debug!(nsp = self.nsp(), "admin command for an unknown namespace");
            return;
        };
        let op: BroadcastOperator = match self.filter() {
            Some(room) => ns.in_(room.to_owned()),
            None => ns.broadcast(),
        };
        let done = match self {
            Command::Emit { event, args, .. } => op.emit(&event, args).map_err(|e| e.to_string()),
            Command::Join { room, .. } => op.sockets_join([room]).await.map_err(|e| e.to_string()),
            Command::Leave { room, .. } => {
                op.sockets_leave([room]).await.map_err(|e| e.to_string())
            }
            Command::Disconnect { close: false, .. } => {
                op.disconnect_sockets().await.map_err(|e| e.to_string())
            }
            Command::Disconnect { close: true, .. } => {
                op.close_connections().await.map_err(|e| e.to_string())
            }
        };
        if let Err(e) = done {
            tracing::warn!(nsp = %ns.name(), "admin command failed: {e}");
        }
    }
}

/// Listens for the UI's commands on an admin socket.
pub(super) fn register(socket: &Socket, io: WeakSocketIo) {
    for name in ["emit", "join", "leave", "_disconnect"] {
        let io = io.clone();
        socket.on(name, move |socket: Socket, data: Data| {
            let io = io.clone();
            async move {
                let Some(command) = Command::parse(name, data) else {
                    tracing::debug!(id = %socket.id(), "malformed admin command {name}");
                    return;
                };
                tracing::info!(id = %socket.id(), ?command, "admin command");
                if let Some(io) = io.upgrade() {
                    command.run(&io).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(name: &str, args: Value) -> Option<Command> {
        let Value::Array(args) = args else {
            return None;
        };
        Command::parse(name, Data::args(args))
    }

    #[test]
    fn the_uis_commands_parse() {
        assert_eq!(
            parse("_disconnect", json!(["/", false, "sid1"])),
            Some(Command::Disconnect {
                nsp: "/".into(),
                close: false,
                filter: Some("sid1".into())
            })
        );
        assert_eq!(
            parse("_disconnect", json!(["/chat", true])),
            Some(Command::Disconnect {
                nsp: "/chat".into(),
                close: true,
                filter: None
            })
        );
        assert_eq!(
            parse("join", json!(["/", "lobby", "sid1"])),
            Some(Command::Join {
                nsp: "/".into(),
                room: "lobby".into(),
                filter: Some("sid1".into())
            })
        );
        assert_eq!(
            parse("leave", json!(["/", "lobby", ""])),
            Some(Command::Leave {
                nsp: "/".into(),
                room: "lobby".into(),
                filter: None
            })
        );
        assert_eq!(
            parse("emit", json!(["/", null, "news", 1, {"a": 2}])),
            Some(Command::Emit {
                nsp: "/".into(),
                filter: None,
                event: "news".into(),
                args: Data::args(vec![json!(1), json!({"a": 2})])
            })
        );
    }

    #[test]
    fn malformed_commands_are_none() {
        for (name, args) in [
            ("emit", json!([])),
            ("emit", json!(["/", null])),
            ("emit", json!(["/", null, ""])),
            ("emit", json!(["chat", null, "news"])),
            ("join", json!(["/", 3])),
            ("join", json!(["/", ""])),
            ("leave", json!([1, "room"])),
            ("_disconnect", json!([null, false])),
            ("_disconnect", json!([])),
            ("other", json!(["/"])),
        ] {
            assert_eq!(parse(name, args.clone()), None, "{name} {args}");
        }
    }
}
