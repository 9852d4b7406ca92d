//! The pickle reader of python-socketio's message queue, on any bytes: never panics, never
//! recurses without bound, and what it accepts respects the limits and converts the same way
//! every time.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use socketlet_redis::pickle::{self, Node, MAX_DEPTH, MAX_NODES, MAX_OUTPUT};
use socketlet_socketio_proto::binary::placeholder_num;

/// The bound on the values of a conversion (see below).
const MAX_VALUES: usize = 10_000;

fuzz_target!(|data: &[u8]| {
    let Ok(py) = pickle::loads(data) else {
        return;
    };
    let nodes = py.nodes();
    assert!(nodes.len() <= MAX_NODES);
    let valid = |id: pickle::Id| id.index() < nodes.len();
    assert!(valid(py.root_id()));
    let mut slots = 0;
    for n in nodes {
        match n {
            Node::List(items) => {
                slots += items.len();
                assert!(items.iter().all(|i| valid(*i)));
            }
            Node::Dict(entries) => {
                slots += 2 * entries.len();
                assert!(entries.iter().all(|(k, v)| valid(*k) && valid(*v)));
            }
            _ => {}
        }
    }
    assert!(slots <= MAX_NODES);
    // Formatting is flat (a recursive Debug would overflow on deep or cyclic values).
    if nodes.len() < 10_000 {
        let _ = format!("{py:?}");
    }

    // Converted with a bound of its own on the values once expanded: the checks are those of
    // `to_json` (whose bound is MAX_NODES), at a fraction of the cost of inputs that expand
    // to a million values.
    let mut bins = Vec::new();
    let first = py.to_json_within(&mut bins, MAX_VALUES);
    let mut bins_again = Vec::new();
    let second = py.to_json_within(&mut bins_again, MAX_VALUES);
    assert_eq!(first, second, "two conversions differ");
    let Ok(json) = first else {
        return;
    };
    assert_eq!(bins, bins_again);
    assert!(bins.iter().map(|b| b.len()).sum::<usize>() <= MAX_OUTPUT);
    let (values, depth) = shape(&json);
    assert!(values <= MAX_VALUES, "{values} values");
    assert!(depth <= MAX_DEPTH, "{depth} deep");
});

/// How many values `v` holds and how deep the deepest is (a placeholder counts as one value,
/// as the `bytes` it stands for), without recursion.
fn shape(v: &Value) -> (usize, usize) {
    let (mut values, mut deepest) = (0, 0);
    let mut todo = vec![(v, 0)];
    while let Some((v, depth)) = todo.pop() {
        values += 1;
        deepest = deepest.max(depth);
        if placeholder_num(v).is_some() {
            continue;
        }
        match v {
            Value::Array(items) => todo.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(m) => todo.extend(m.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    (values, deepest)
}
