//! Node adapter messages in msgpack, as they arrive from Redis (`msgpack::decode`, then
//! `msgpack::to_json`, as `node.rs` and `classic.rs` do): never panics, never recurses without
//! bound; what decodes re-encodes to the same bytes, converts to JSON within the depth limit, and
//! survives the way back (`from_json`, what this node publishes) unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use socketlet_redis::msgpack;
use socketlet_socketio_proto::binary::placeholder_num;

/// `msgpack::MAX_DEPTH` (private): the nesting `decode` and `to_json` accept.
const MAX_DEPTH: usize = 128;

fuzz_target!(|data: &[u8]| {
    let Some(mp) = msgpack::decode(data) else {
        return;
    };
    let bytes = msgpack::encode(&mp);
    let again = msgpack::decode(&bytes).expect("a decoded value re-encoded decodes");
    assert_eq!(msgpack::encode(&again), bytes, "encoding is not stable");

    let mut bins = Vec::new();
    let json = msgpack::to_json(mp, &mut bins).expect("what decodes converts");
    let mut placeholders = Vec::new();
    let depth = walk(&json, &mut placeholders);
    assert!(depth <= MAX_DEPTH, "{depth} deep");

    // Back to msgpack with the attachments in place, and in again: the same JSON and
    // attachments, as long as the placeholders are exactly the ones `to_json` wrote (the input
    // may hold maps that look like placeholders, or lose a binary under a repeated key).
    let exact = placeholders.len() == bins.len()
        && placeholders.iter().enumerate().all(|(i, p)| *p == Some(i));
    if exact {
        let back = msgpack::from_json(&json, &bins);
        let decoded = msgpack::decode(&msgpack::encode(&back)).expect("from_json decodes");
        let mut bins_back = Vec::new();
        let json_back = msgpack::to_json(decoded, &mut bins_back).expect("from_json converts");
        assert_eq!(json_back, json);
        assert_eq!(bins_back, bins);
    }
});

/// The depth of the deepest value in `v` (a placeholder counts as a leaf, as the binary it
/// stands for), and the placeholders in order: their number if they are exactly as `to_json`
/// writes them (two keys), `None` otherwise. Without recursion.
fn walk(v: &Value, placeholders: &mut Vec<Option<usize>>) -> usize {
    let mut deepest = 0;
    let mut todo = vec![(v, 0)];
    while let Some((v, depth)) = todo.pop() {
        deepest = deepest.max(depth);
        if let Some(n) = placeholder_num(v) {
            let exact = v.as_object().is_some_and(|m| m.len() == 2);
            placeholders.push(exact.then_some(n));
            continue;
        }
        match v {
            // Reversed onto the stack, so that values come off it in document order.
            Value::Array(items) => todo.extend(items.iter().rev().map(|i| (i, depth + 1))),
            Value::Object(m) => todo.extend(m.values().rev().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    deepest
}
