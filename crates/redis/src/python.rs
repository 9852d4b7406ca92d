//! python-socketio's message queue: what `socketio.RedisManager(url, write_only=True)` publishes
//! from a Django view or a Celery worker, delivered to this node's clients.
//!
//! One channel (`socketio` by default); each message is a dict with a `method`: `emit` (`event`,
//! `data`, `namespace`, `room`, `skip_sid`, `callback`), `disconnect` (`sid`, `namespace`),
//! `enter_room` / `leave_room` (`sid`, `room`, `namespace`), `close_room` (`room`, `namespace`).
//! python-socketio 5.14 and later publish JSON, where `data` is the list of arguments and, when
//! `binary` is true, `[arguments with placeholders, base64 attachments...]`. Older versions
//! pickled the dict, with `data` a single value or a tuple of arguments; those are read only
//! when [`crate::RedisConfig::accept_pickle`] is on.

use crate::node::Node;
use crate::pickle;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;
use socketlet::Data;
use std::sync::Arc;

/// A message of python-socketio's queue, as read.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyMessage {
    /// Its namespace (`/` when it names none).
    pub namespace: String,
    /// What it asks for.
    pub method: PyMethod,
}

/// What a [`PyMessage`] asks for (missing fields are `None`: nothing is done then).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
pub enum PyMethod {
    /// `emit`.
    Emit {
        /// The event.
        event: String,
        /// Its arguments; `None` when they cannot be read.
        data: Option<Data>,
        /// The room it goes to (every socket when none).
        room: Option<String>,
        /// The sockets it skips.
        skip: Vec<String>,
        /// Whether it asks for a callback (not supported: emitted without).
        callback: bool,
    },
    /// `disconnect`.
    Disconnect {
        /// The socket.
        sid: Option<String>,
    },
    /// `enter_room` (`enter`) or `leave_room`.
    Room {
        /// Enter, or leave.
        enter: bool,
        /// The socket.
        sid: Option<String>,
        /// The room.
        room: Option<String>,
    },
    /// `close_room`.
    CloseRoom {
        /// The room.
        room: Option<String>,
    },
    /// Another method, or none: nothing for this node (`callback` answers go to the python
    /// server that asked).
    Other,
}

/// Why a message of the queue was not read.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// It starts with `{` but is not JSON.
    BadJson(String),
    /// A pickle, and [`crate::RedisConfig::accept_pickle`] is off.
    Pickled,
    /// A pickle the reader refused.
    BadPickle(String),
}

/// Reads a message of the queue: JSON, or a pickle when `accept_pickle`.
pub(crate) fn parse(payload: &[u8], accept_pickle: bool) -> Result<PyMessage, Refused> {
    let mut bins = Vec::new();
    let pickled = payload.first() != Some(&b'{');
    let message = if !pickled {
        serde_json::from_slice::<Value>(payload).map_err(|e| Refused::BadJson(e.to_string()))?
    } else if accept_pickle {
        pickle::loads(payload)
            .and_then(|v| v.to_json(&mut bins))
            .map_err(|e| Refused::BadPickle(e.to_string()))?
    } else {
        return Err(Refused::Pickled);
    };
    let text = |key: &str| message.get(key).and_then(Value::as_str).map(str::to_owned);
    let namespace = text("namespace").unwrap_or_else(|| "/".to_owned());
    let method = match text("method").as_deref() {
        Some("emit") => match text("event") {
            Some(event) => PyMethod::Emit {
                event,
                data: emit_data(&message, pickled, bins),
                room: text("room"),
                skip: match message.get("skip_sid") {
                    Some(Value::String(sid)) => vec![sid.clone()],
                    Some(Value::Array(sids)) => sids
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                    _ => Vec::new(),
                },
                callback: message.get("callback").is_some_and(|c| !c.is_null()),
            },
            None => PyMethod::Other,
        },
        Some("disconnect") => PyMethod::Disconnect { sid: text("sid") },
        Some(method @ ("enter_room" | "leave_room")) => PyMethod::Room {
            enter: method == "enter_room",
            sid: text("sid"),
            room: text("room"),
        },
        Some("close_room") => PyMethod::CloseRoom { room: text("room") },
        _ => PyMethod::Other,
    };
    Ok(PyMessage { namespace, method })
}

/// Acts on a message of the queue (or logs why it was not read).
pub(crate) fn handle(node: &Arc<Node>, message: Result<PyMessage, Refused>) {
    let PyMessage { namespace, method } = match message {
        Ok(message) => message,
        Err(Refused::BadJson(e)) => {
            tracing::warn!("ignored a python-socketio message that is not valid JSON: {e}");
            return;
        }
        Err(Refused::BadPickle(e)) => {
            tracing::warn!("refused a pickled python-socketio message: {e}");
            return;
        }
        Err(Refused::Pickled) => {
            tracing::warn!(
                "ignored a pickled python-socketio message (python-socketio < 5.14); \
                 turn on accept_pickle to read it safely"
            );
            return;
        }
    };
    let Some(io) = node.io() else {
        return;
    };
    let Some(ns) = io.namespace(&namespace) else {
        return;
    };
    let socket = |sid: Option<String>| sid.and_then(|sid| ns.get_socket(&sid));
    match method {
        PyMethod::Emit {
            event,
            data,
            room,
            skip,
            callback,
        } => {
            let Some(data) = data else {
                tracing::warn!(%event, "ignored a python-socketio emit with unreadable data");
                return;
            };
            if callback {
                tracing::debug!(%event, "python-socketio callbacks are not supported; emitting without");
            }
            let mut op = ns.broadcast().local();
            if let Some(room) = room {
                op = op.to(room);
            }
            for sid in skip {
                op = op.except(sid);
            }
            if let Err(e) = op.emit(&event, data) {
                tracing::debug!(%event, "python-socketio emit not delivered: {e}");
            }
        }
        PyMethod::Disconnect { sid } => {
            if let Some(s) = socket(sid) {
                s.disconnect();
            }
        }
        PyMethod::Room { enter, sid, room } => {
            if let (Some(s), Some(room)) = (socket(sid), room) {
                if enter {
                    s.join([room]);
                } else {
                    s.leave(&room);
                }
            }
        }
        PyMethod::CloseRoom { room: Some(room) } => {
            let opts = socketlet::BroadcastOptions {
                rooms: vec![room.clone()],
                ..Default::default()
            };
            ns.local().del_sockets(&opts, &[room]);
        }
        PyMethod::CloseRoom { room: None } | PyMethod::Other => {}
    }
}

/// The arguments of an `emit`, in either format.
fn emit_data(message: &Value, pickled: bool, bins: Vec<Bytes>) -> Option<Data> {
    let data = message.get("data")?;
    if pickled {
        // python-socketio 4.x: one value, or a tuple (a list here) of arguments; bytes already
        // moved to attachments by the pickle reader.
        let args = match data {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        return Some(Data { args, binary: bins });
    }
    let items = data.as_array()?;
    if message.get("binary").and_then(Value::as_bool) == Some(true) {
        let (args, attachments) = items.split_first()?;
        let binary = attachments
            .iter()
            .map(|a| {
                let s = a.as_str()?;
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .ok()
                    .map(Bytes::from)
            })
            .collect::<Option<Vec<_>>>()?;
        return Some(Data {
            args: args.as_array()?.clone(),
            binary,
        });
    }
    Some(Data::args(items.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_emit_data_with_and_without_binary() {
        let plain = json!({"data": ["hi", {"n": 1}]});
        assert_eq!(
            emit_data(&plain, false, vec![]),
            Some(Data::args(vec![json!("hi"), json!({"n": 1})]))
        );
        let binary = json!({"binary": true, "data": [[{"_placeholder": true, "num": 0}], "AQI="]});
        let d = emit_data(&binary, false, vec![]).unwrap();
        assert_eq!(d.args, vec![json!({"_placeholder": true, "num": 0})]);
        assert_eq!(d.binary, vec![Bytes::from_static(&[1, 2])]);
        assert_eq!(
            emit_data(&json!({"binary": true, "data": [[], "%%"]}), false, vec![]),
            None
        );
    }

    #[test]
    fn pickled_emit_data_is_a_value_or_a_tuple() {
        assert_eq!(
            emit_data(&json!({"data": "x"}), true, vec![]),
            Some(Data::args(vec![json!("x")]))
        );
        assert_eq!(
            emit_data(&json!({"data": ["a", 2]}), true, vec![]),
            Some(Data::args(vec![json!("a"), json!(2)]))
        );
    }
}
