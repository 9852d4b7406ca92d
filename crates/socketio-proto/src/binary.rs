//! Placeholders for binary attachments inside JSON arguments.
//!
//! A binary event carries `{"_placeholder":true,"num":N}` where the N-th attachment belongs; the
//! attachments follow the text packet as separate binary Engine.IO messages.

use serde_json::{Map, Value};

/// The key that marks a placeholder object.
const PLACEHOLDER_KEY: &str = "_placeholder";
/// The key that holds the attachment index.
const NUM_KEY: &str = "num";

/// The placeholder JSON for attachment `num`: `{"_placeholder":true,"num":num}`.
pub fn placeholder(num: usize) -> Value {
    let mut map = Map::with_capacity(2);
    map.insert(PLACEHOLDER_KEY.to_owned(), Value::Bool(true));
    map.insert(NUM_KEY.to_owned(), Value::from(num));
    Value::Object(map)
}

/// If `value` is a placeholder object (`_placeholder` is `true` and `num` a non-negative
/// integer), its number.
pub fn placeholder_num(value: &Value) -> Option<usize> {
    let map = value.as_object()?;
    if map.get(PLACEHOLDER_KEY)? != &Value::Bool(true) {
        return None;
    }
    // `as_u64` is `None` for negative integers and for floats (`1.0` included), so only a JSON
    // integer counts. A number too large for `usize` cannot name an attachment either.
    let num = map.get(NUM_KEY)?.as_u64()?;
    usize::try_from(num).ok()
}

/// Visits every placeholder in `values` (recursively through arrays and objects) and returns the
/// largest number seen, or `None` when there is none. Recursion depth is bounded by serde_json's
/// own parse depth limit, since values come from parsed JSON.
pub fn max_placeholder(values: &[Value]) -> Option<usize> {
    // An explicit stack instead of recursion: values built in code (not parsed) have no depth
    // limit, and this must not overflow the thread's stack on them either.
    // Scalars at the top level (the usual strings and numbers) need no stack at all.
    let mut max = None;
    let mut stack: Vec<&Value> = values
        .iter()
        .filter(|v| v.is_array() || v.is_object())
        .collect();
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                if let Some(num) = placeholder_num(value) {
                    max = max.max(Some(num));
                }
                // Also look inside placeholder objects (they may carry extra keys): a nested
                // placeholder is still a reference to an attachment.
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholder_is_compact_and_ordered() {
        assert_eq!(
            serde_json::to_string(&placeholder(3)).unwrap(),
            r#"{"_placeholder":true,"num":3}"#
        );
    }

    #[test]
    fn placeholder_num_reads_its_own_output() {
        for n in [0, 1, 9, 1_000_000] {
            assert_eq!(placeholder_num(&placeholder(n)), Some(n));
        }
    }

    #[test]
    fn placeholder_num_accepts_extra_keys_and_any_key_order() {
        let v = json!({"num": 2, "x": [1], "_placeholder": true});
        assert_eq!(placeholder_num(&v), Some(2));
    }

    #[test]
    fn placeholder_num_rejects_lookalikes() {
        let not = [
            json!({"_placeholder": false, "num": 0}),
            json!({"_placeholder": "true", "num": 0}),
            json!({"_placeholder": 1, "num": 0}),
            json!({"_placeholder": true}),
            json!({"num": 0}),
            json!({"_placeholder": true, "num": -1}),
            json!({"_placeholder": true, "num": 1.0}),
            json!({"_placeholder": true, "num": 0.5}),
            json!({"_placeholder": true, "num": "0"}),
            json!({"_placeholder": true, "num": null}),
            json!([true, 0]),
            json!(null),
            json!("_placeholder"),
            json!(0),
        ];
        for v in &not {
            assert_eq!(placeholder_num(v), None, "{v}");
        }
    }

    #[test]
    fn max_placeholder_none_without_placeholders() {
        assert_eq!(max_placeholder(&[]), None);
        assert_eq!(
            max_placeholder(&[json!("a"), json!({"b": [1, 2, {"c": null}]}), json!(3)]),
            None
        );
    }

    #[test]
    fn max_placeholder_finds_top_level_and_nested() {
        let values = [
            placeholder(1),
            json!({"deep": [[{"x": placeholder(4)}]], "other": placeholder(0)}),
            json!([placeholder(2)]),
        ];
        assert_eq!(max_placeholder(&values), Some(4));
        assert_eq!(max_placeholder(&values[..1]), Some(1));
        assert_eq!(max_placeholder(&values[2..]), Some(2));
    }

    #[test]
    fn max_placeholder_looks_inside_placeholders() {
        let v = json!({"_placeholder": true, "num": 0, "extra": placeholder(7)});
        assert_eq!(max_placeholder(&[v]), Some(7));
    }

    #[test]
    fn max_placeholder_survives_very_deep_values() {
        let mut v = placeholder(5);
        for _ in 0..20_000 {
            v = Value::Array(vec![v]);
        }
        assert_eq!(max_placeholder(std::slice::from_ref(&v)), Some(5));
        // Dropping a 20,000-deep Value recurses in serde_json's Drop; unwind it by hand.
        let mut cur = v;
        while let Value::Array(mut items) = cur {
            cur = items.pop().unwrap_or(Value::Null);
        }
    }
}
