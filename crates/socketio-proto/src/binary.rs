//! Placeholders for binary attachments inside JSON arguments.
//!
//! A binary event carries `{"_placeholder":true,"num":N}` where the N-th attachment belongs; the
//! attachments follow the text packet as separate binary Engine.IO messages.

use serde_json::Value;

/// The placeholder JSON for attachment `num`: `{"_placeholder":true,"num":num}`.
pub fn placeholder(num: usize) -> Value {
    todo!()
}

/// If `value` is a placeholder object (`_placeholder` is `true` and `num` a non-negative
/// integer), its number.
pub fn placeholder_num(value: &Value) -> Option<usize> {
    todo!()
}

/// Visits every placeholder in `values` (recursively through arrays and objects) and returns the
/// largest number seen, or `None` when there is none. Recursion depth is bounded by serde_json's
/// own parse depth limit, since values come from parsed JSON.
pub fn max_placeholder(values: &[Value]) -> Option<usize> {
    todo!()
}
