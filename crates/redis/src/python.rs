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

pub(crate) fn handle(node: &Arc<Node>, payload: &[u8]) {
    let mut bins = Vec::new();
    let message = if payload.first() == Some(&b'{') {
        match serde_json::from_slice::<Value>(payload) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("ignored a python-socketio message that is not valid JSON: {e}");
                return;
            }
        }
    } else if node.config.accept_pickle {
        match pickle::loads(payload).and_then(|v| v.to_json(&mut bins)) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("refused a pickled python-socketio message: {e}");
                return;
            }
        }
    } else {
        tracing::warn!(
            "ignored a pickled python-socketio message (python-socketio < 5.14); \
             turn on accept_pickle to read it safely"
        );
        return;
    };
    let Some(io) = node.io() else {
        return;
    };
    let text = |key: &str| message.get(key).and_then(Value::as_str).map(str::to_owned);
    let nsp = text("namespace").unwrap_or_else(|| "/".to_owned());
    let Some(ns) = io.namespace(&nsp) else {
        return;
    };
    let pickled = payload.first() != Some(&b'{');
    match text("method").as_deref() {
        Some("emit") => {
            let Some(event) = text("event") else {
                return;
            };
            let Some(data) = emit_data(&message, pickled, bins) else {
                tracing::warn!(%event, "ignored a python-socketio emit with unreadable data");
                return;
            };
            if message.get("callback").is_some_and(|c| !c.is_null()) {
                tracing::debug!(%event, "python-socketio callbacks are not supported; emitting without");
            }
            let mut op = ns.broadcast().local();
            if let Some(room) = text("room") {
                op = op.to(room);
            }
            match message.get("skip_sid") {
                Some(Value::String(sid)) => op = op.except(sid.clone()),
                Some(Value::Array(sids)) => {
                    for sid in sids.iter().filter_map(Value::as_str) {
                        op = op.except(sid.to_owned());
                    }
                }
                _ => {}
            }
            if let Err(e) = op.emit(&event, data) {
                tracing::debug!(%event, "python-socketio emit not delivered: {e}");
            }
        }
        Some("disconnect") => {
            if let Some(s) = text("sid").and_then(|sid| ns.get_socket(&sid)) {
                s.disconnect();
            }
        }
        Some("enter_room") => {
            if let (Some(s), Some(room)) = (
                text("sid").and_then(|sid| ns.get_socket(&sid)),
                text("room"),
            ) {
                s.join([room]);
            }
        }
        Some("leave_room") => {
            if let (Some(s), Some(room)) = (
                text("sid").and_then(|sid| ns.get_socket(&sid)),
                text("room"),
            ) {
                s.leave(&room);
            }
        }
        Some("close_room") => {
            if let Some(room) = text("room") {
                let opts = socketlet::BroadcastOptions {
                    rooms: vec![room.clone()],
                    ..Default::default()
                };
                ns.local().del_sockets(&opts, &[room]);
            }
        }
        // `callback` answers go to the python server that asked; nothing for this node.
        _ => {}
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
