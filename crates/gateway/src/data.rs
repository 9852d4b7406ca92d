//! Event arguments as the backend sees them: JSON with binary attachments as base64 strings,
//! which placeholders (`{"_placeholder": true, "num": N}`) in the arguments refer to (the
//! convention of python-socketio's message queue).

use base64::Engine as _;
use serde_json::Value;
use socketlet::Data;
use std::fmt;

/// Why arguments from the backend (or an API caller) cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

/// Arguments and base64 attachments of `data`.
pub(crate) fn data_to_wire(data: &Data) -> (Vec<Value>, Vec<String>) {
    let engine = base64::engine::general_purpose::STANDARD;
    let binary = data.binary.iter().map(|b| engine.encode(b)).collect();
    (data.args.clone(), binary)
}

/// The [`Data`] of arguments and base64 attachments; every placeholder must name one of the
/// attachments.
pub(crate) fn data_from_wire(args: Vec<Value>, binary: &[String]) -> Result<Data, WireError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let binary = binary
        .iter()
        .enumerate()
        .map(|(i, b)| {
            engine
                .decode(b)
                .map(bytes::Bytes::from)
                .map_err(|e| WireError(format!("binary[{i}] is not base64: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut stack: Vec<&Value> = args.iter().collect();
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(o) if o.get("_placeholder") == Some(&Value::Bool(true)) => {
                let n = o.get("num").and_then(Value::as_u64);
                if n.is_none_or(|n| (n as usize) >= binary.len()) {
                    let named = o.get("num").map_or("none".to_owned(), Value::to_string);
                    return Err(WireError(format!(
                        "a placeholder names attachment {named}, and there are {}",
                        binary.len()
                    )));
                }
            }
            Value::Object(o) => stack.extend(o.values()),
            Value::Array(a) => stack.extend(a.iter()),
            _ => {}
        }
    }
    Ok(Data { args, binary })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attachments_travel_as_base64_behind_their_placeholders() {
        let data = data_from_wire(
            vec![json!({"file": {"_placeholder": true, "num": 0}}), json!(2)],
            &["AQID".to_owned()],
        )
        .unwrap_or_default();
        assert_eq!(data.binary, vec![bytes::Bytes::from_static(&[1, 2, 3])]);
        let (args, binary) = data_to_wire(&data);
        assert_eq!(args[1], json!(2));
        assert_eq!(binary, vec!["AQID".to_owned()]);
    }

    #[test]
    fn placeholders_must_name_an_attachment() {
        let bad = |args: Vec<Value>, binary: &[&str]| {
            let binary: Vec<String> = binary.iter().map(|s| s.to_string()).collect();
            data_from_wire(args, &binary).is_err()
        };
        assert!(bad(
            vec![json!({"_placeholder": true, "num": 1})],
            &["AQID"]
        ));
        assert!(bad(
            vec![json!([{"_placeholder": true, "num": "0"}])],
            &["AQID"]
        ));
        assert!(bad(vec![json!(1)], &["not base64!"]));
        assert!(!bad(vec![json!({"_placeholder": false, "num": 9})], &[]));
    }
}
