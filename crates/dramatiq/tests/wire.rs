//! What this crate writes and reads, against what dramatiq 2.2.1 itself wrote: messages sent
//! with `actor.send` / `send_with_options` on the Redis and RabbitMQ brokers, and results and
//! failures stored by its `RedisBackend` (`tests/fixtures/reference.json`, captured by
//! `tests/python/capture_reference.py`). Each message is rebuilt here from the same arguments,
//! with the ids and times dramatiq drew, and must come out byte for byte the same.

#![allow(clippy::unwrap_used)]

use serde_json::{json, Map, Value};
use socketlet_dramatiq::message::{redis_queue_keys, Message};
use socketlet_dramatiq::results::{decode_result, result_key, DEFAULT_NAMESPACE};
use std::time::Duration;

fn reference() -> Value {
    let text = include_str!("fixtures/reference.json");
    serde_json::from_str(text).unwrap()
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// The arguments capture_reference.py sent, per message, as (queue, actor, args, kwargs,
/// options, delay).
fn sent(
    what: &str,
) -> (
    &'static str,
    &'static str,
    Value,
    Value,
    Value,
    Option<Duration>,
) {
    match what {
        "plain args" => ("default", "add", json!([1, 2]), json!({}), json!({}), None),
        "tricky args, kwargs and options" => (
            "vms",
            "open_vm_task",
            json!(["Zoë", {"nested": [1, -7, null, true, false, "x"], "empty": {}}, []]),
            json!({"b": 1, "a": "\u{2603} \u{1F600} \u{7f} \"q\" \\ \n\t\u{1} </script>", "c": [0]}),
            json!({"max_retries": 0, "min_backoff": 100}),
            None,
        ),
        "no arguments" => ("vms", "open_vm_task", json!([]), json!({}), json!({}), None),
        "delayed (eta)" => (
            "default",
            "add",
            json!([3, 4]),
            json!({}),
            json!({}),
            Some(Duration::from_millis(1500)),
        ),
        other => panic!("no such reference message: {other}"),
    }
}

/// A message rebuilt from the arguments, with the reference's id and timestamp.
fn rebuilt(
    queue: &str,
    actor: &str,
    args: Value,
    kwargs: Value,
    options: Value,
    reference: &Message,
) -> Message {
    let Value::Array(args) = args else {
        panic!("args")
    };
    let mut m = Message::new(queue, actor, args, object(kwargs), object(options));
    m.message_id = reference.message_id.clone();
    m.message_timestamp = reference.message_timestamp;
    m
}

/// Puts the reference's drawn values (`redis_message_id`, `eta`) in place, keeping our order.
fn with_drawn_options(mut m: Message, reference: &Message) -> Message {
    for key in ["redis_message_id", "eta"] {
        if let Some(slot) = m.options.get_mut(key) {
            *slot = reference.options[key].clone();
        }
    }
    m
}

#[test]
fn redis_messages_are_byte_for_byte_dramatiqs() {
    let r = reference();
    assert_eq!(r["dramatiq"], "2.2.1");
    let messages = r["redis"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    for m in messages {
        let what = m["what"].as_str().unwrap();
        let raw = m["raw"].as_str().unwrap();
        let theirs = Message::decode(raw.as_bytes()).unwrap();
        let (queue, actor, args, kwargs, options, delay) = sent(what);
        let (ours, redis_id) =
            rebuilt(queue, actor, args, kwargs, options, &theirs).for_redis(delay);
        assert_ne!(redis_id, theirs.options["redis_message_id"], "a fresh id");
        let ours = with_drawn_options(ours, &theirs);
        assert_eq!(
            String::from_utf8(ours.encode()).unwrap(),
            raw,
            "{what}: not dramatiq's bytes"
        );
        // Where the broker keeps it: the list of ids and the hash of messages of its queue.
        let (list, hash) = redis_queue_keys("dramatiq", &ours.queue_name);
        assert_eq!(list, m["list_key"], "{what}");
        assert_eq!(hash, m["hash_key"], "{what}");
        assert_eq!(
            ours.options["redis_message_id"], m["redis_message_id"],
            "{what}: the hash field is options.redis_message_id"
        );
        if let Some(delay) = delay {
            let eta = ours.options["eta"].as_u64().unwrap();
            let late = eta - ours.message_timestamp;
            assert!(
                (delay.as_millis() as u64..delay.as_millis() as u64 + 50).contains(&late),
                "{what}: eta {late} ms after the timestamp"
            );
        }
    }
    // The keys dramatiq's dispatch.lua left: the queues' lists and hashes, and its heartbeats
    // (a sender's heartbeat, which this crate does not write: it consumes nothing).
    let keys: Vec<&str> = r["redis"]["keys_after_sending"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "dramatiq:__heartbeats__",
            "dramatiq:default",
            "dramatiq:default.DQ",
            "dramatiq:default.DQ.msgs",
            "dramatiq:default.msgs",
            "dramatiq:vms",
            "dramatiq:vms.msgs"
        ]
    );
}

#[test]
fn rabbitmq_messages_are_byte_for_byte_dramatiqs() {
    let r = reference();
    let rabbit = &r["rabbitmq"];
    let queue = rabbit["queue"].as_str().unwrap();
    let messages = rabbit["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    for m in messages {
        let what = m["what"].as_str().unwrap();
        let raw = m["raw"].as_str().unwrap();
        let theirs = Message::decode(raw.as_bytes()).unwrap();
        let (args, options, delay) = match what {
            "plain args" => (json!(["job-1", "web-1", "alice"]), json!({}), None),
            "delayed (eta), with a priority" => (
                json!(["job-2", "web-2", "bob"]),
                json!({"broker_priority": 3}),
                Some(Duration::from_millis(1500)),
            ),
            other => panic!("{other}"),
        };
        let ours = rebuilt(queue, "open_vm_task", args, json!({}), options, &theirs);
        let ours = with_drawn_options(ours.for_rabbitmq(delay), &theirs);
        assert_eq!(String::from_utf8(ours.encode()).unwrap(), raw, "{what}");
        assert!(!ours.options.contains_key("redis_message_id"));
        // The default exchange, the queue (or its delay queue) as routing key, persistent.
        assert_eq!(m["exchange"], "", "{what}");
        assert_eq!(m["routing_key"], json!(ours.queue_name), "{what}");
        assert_eq!(m["delivery_mode"], 2, "{what}");
        assert_eq!(
            m["priority"],
            ours.options
                .get("broker_priority")
                .cloned()
                .unwrap_or(Value::Null)
        );
        assert_eq!(m["headers"], Value::Null);
        assert_eq!(m["content_type"], Value::Null);
    }
}

#[test]
fn results_keys_and_failures_are_read_as_dramatiq_wrote_them() {
    let r = reference();
    let results = r["redis"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for res in results {
        let what = res["what"].as_str().unwrap();
        let key = result_key(
            DEFAULT_NAMESPACE,
            res["queue_name"].as_str().unwrap(),
            res["actor_name"].as_str().unwrap(),
            res["message_id"].as_str().unwrap(),
            false,
        );
        assert_eq!(key, res["key"], "{what}");
        // A list of one element, with a TTL (DEL, LPUSH, PEXPIRE).
        assert_eq!(res["type"], "list");
        assert_eq!(res["len"], 1);
        assert!(res["pttl"].as_i64().unwrap() > 0);
        let raw = res["raw"].as_str().unwrap();
        let decoded = decode_result(raw.as_bytes());
        match what {
            "plain args" => assert_eq!(decoded, Ok(json!({"sum": 3, "why": "☃"}))),
            "delayed (eta)" => {
                assert_eq!(decoded, Ok(Value::Null));
                assert_eq!(
                    res["queue_name"], "default.DQ",
                    "sent delayed: its key is the queue's, without .DQ"
                );
            }
            "tricky args, kwargs and options" => assert_eq!(
                decoded,
                Err("actor raised ValueError: the guest did not boot ☃".into())
            ),
            "no arguments" => assert_eq!(decoded, Err("actor raised RuntimeError: ".into())),
            other => panic!("{other}"),
        }
        if let Ok(value) = decoded {
            assert_eq!(
                socketlet_dramatiq::message::to_python_json(&value),
                raw.as_bytes(),
                "{what}: written as the backend writes it"
            );
        }
    }
}
