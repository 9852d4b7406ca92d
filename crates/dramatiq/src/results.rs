//! dramatiq's Redis results backend (`dramatiq.results.backends.RedisBackend`), read side.
//!
//! With the `Results` middleware, a worker stores what an actor with `store_results=True`
//! returned under one key per message: `md5hex("<namespace>:<queue>:<actor>:<message_id>")`
//! (namespace `dramatiq-results`, the queue without `.DQ`/`.XQ`; with
//! `use_namespace_prefix_keys=True` the string itself). The key holds a list of one element, the
//! result as JSON, written with `DEL`, `LPUSH`, `PEXPIRE` (the result's TTL, 10 minutes by
//! default). A failure is stored the same way as
//! `{"__t": "dramatiq.results.Result", "exn": {"type": "ValueError", "msg": "..."}}`, and only
//! when the message failed for good: after its retries ran out (`max_retries`, 20 by default
//! with a backoff from 15 s), or at once for an exception listed in the actor's `throws`.
//!
//! Reading is dramatiq's own non-blocking read, `LINDEX key 0`, which leaves the result in
//! place (another reader, a Python `get_result`, still finds it).

use md5::{Digest, Md5};
use serde_json::Value;

/// The namespace dramatiq's `RedisBackend` uses unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "dramatiq-results";

/// The marker of a stored failure (`dramatiq.results.result._CANARY`).
pub const FAILURE_MARKER: &str = "dramatiq.results.Result";

/// Where a message's result is stored (`ResultBackend.build_message_key`): the md5 hex digest
/// of `"<namespace>:<queue>:<actor>:<message_id>"`, or that string itself when `prefix_keys`
/// (`use_namespace_prefix_keys=True`). The queue is taken without `.DQ`/`.XQ`.
pub fn result_key(
    namespace: &str,
    queue_name: &str,
    actor_name: &str,
    message_id: &str,
    prefix_keys: bool,
) -> String {
    let key = format!(
        "{namespace}:{}:{actor_name}:{message_id}",
        crate::message::q_name(queue_name)
    );
    if prefix_keys {
        return key;
    }
    Md5::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads what a worker stored: `Ok(result)`, or for a stored failure
/// `Err("actor raised <type>: <msg>")`, the message of dramatiq's `ResultFailure`. Data that is
/// not JSON is an error too.
pub fn decode_result(data: &[u8]) -> Result<Value, String> {
    let value: Value = serde_json::from_slice(data).map_err(|e| {
        format!(
            "dramatiq stored a result that is not JSON ({e}): {}",
            String::from_utf8_lossy(&data[..data.len().min(200)])
        )
    })?;
    match failure(&value) {
        Some(why) => Err(why),
        None => Ok(value),
    }
}

/// The message of a stored failure, or `None` for a result.
fn failure(value: &Value) -> Option<String> {
    let object = value.as_object()?;
    if object.get("__t").and_then(Value::as_str) != Some(FAILURE_MARKER) {
        return None;
    }
    let exn = object.get("exn");
    let field = |name: &str| match exn.and_then(|e| e.get(name)) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    Some(format!("actor raised {}: {}", field("type"), field("msg")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_md5_of_namespace_queue_actor_and_id() {
        // md5("dramatiq-results:default:add:a6044dd7-0467-4a9d-9bd5-0af06b1af85e"), from
        // dramatiq's own RedisBackend (tests/fixtures/reference.json has more).
        let id = "a6044dd7-0467-4a9d-9bd5-0af06b1af85e";
        let key = result_key(DEFAULT_NAMESPACE, "default", "add", id, false);
        assert_eq!(key, "897935ac87a5e1272c85005739725dec");
        assert_eq!(
            result_key(DEFAULT_NAMESPACE, "default.DQ", "add", id, false),
            key,
            "the delay queue's results are the queue's"
        );
        assert_eq!(
            result_key(DEFAULT_NAMESPACE, "default.XQ", "add", id, false),
            key
        );
        assert_eq!(
            result_key("ns", "default", "add", id, true),
            format!("ns:default:add:{id}")
        );
        // The empty string's digest, for the md5 itself.
        assert_eq!(
            Md5::digest(b"")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn results_and_failures() {
        assert_eq!(decode_result(b"null"), Ok(Value::Null));
        assert_eq!(decode_result(br#"{"a":[1]}"#), Ok(json!({"a": [1]})));
        assert_eq!(
            decode_result(
                br#"{"__t":"dramatiq.results.Result","exn":{"type":"ValueError","msg":"boom \u2603"}}"#
            ),
            Err("actor raised ValueError: boom ☃".into())
        );
        // A result that merely looks like one (another marker) is a result.
        let lookalike = json!({"__t": "something.else", "exn": {}});
        assert_eq!(
            decode_result(lookalike.to_string().as_bytes()),
            Ok(lookalike)
        );
        let err = decode_result(b"\x80\x04not json").unwrap_err();
        assert!(err.starts_with("dramatiq stored a result that is not JSON"));
    }
}
