//! MessagePack as Node's adapter writes it (`notepack.io`): socket.io packets with binary data in
//! place, as msgpack `bin` values. socketlet keeps JSON with placeholders plus attachments; this
//! converts between the two.

use bytes::Bytes;
use rmpv::Value as Mp;
use serde_json::{Map, Number, Value};
use socketlet::Data;
use socketlet_socketio_proto::binary::{placeholder, placeholder_num};

/// Deepest nesting accepted from Redis (the same order as serde_json's own limit).
const MAX_DEPTH: usize = 128;

/// Converts a msgpack value to JSON, moving `bin` values out into `bins` and leaving
/// placeholders. `None` when nested deeper than [`MAX_DEPTH`].
pub fn to_json(v: Mp, bins: &mut Vec<Bytes>) -> Option<Value> {
    to_json_at(v, bins, 0)
}

fn to_json_at(v: Mp, bins: &mut Vec<Bytes>, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match v {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => {
            if let Some(n) = i.as_i64() {
                Value::from(n)
            } else if let Some(n) = i.as_u64() {
                Value::from(n)
            } else {
                Value::Null
            }
        }
        Mp::F32(f) => Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number),
        Mp::F64(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Mp::String(s) => Value::String(s.into_str().unwrap_or_default()),
        Mp::Binary(b) => {
            bins.push(Bytes::from(b));
            placeholder(bins.len() - 1)
        }
        Mp::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| to_json_at(i, bins, depth + 1))
                .collect::<Option<_>>()?,
        ),
        Mp::Map(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                let key = match k {
                    Mp::String(s) => s.into_str().unwrap_or_default(),
                    other => other.to_string(),
                };
                m.insert(key, to_json_at(v, bins, depth + 1)?);
            }
            Value::Object(m)
        }
        // notepack writes `undefined` and dates as extensions: neither has a JSON form.
        Mp::Ext(_, _) => Value::Null,
    })
}

/// Converts JSON to msgpack, putting `bins[n]` where placeholder `n` stands.
pub fn from_json(v: &Value, bins: &[Bytes]) -> Mp {
    if let Some(n) = placeholder_num(v) {
        if let Some(b) = bins.get(n) {
            return Mp::Binary(b.to_vec());
        }
    }
    match v {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else if let Some(u) = n.as_u64() {
                Mp::from(u)
            } else {
                Mp::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(items) => Mp::Array(items.iter().map(|i| from_json(i, bins)).collect()),
        Value::Object(m) => Mp::Map(
            m.iter()
                .map(|(k, v)| (Mp::from(k.as_str()), from_json(v, bins)))
                .collect(),
        ),
    }
}

/// Encodes a msgpack value.
pub fn encode(v: &Mp) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

/// Decodes one msgpack value; `None` if the bytes are not exactly one well-formed value, or if
/// it nests deeper than [`MAX_DEPTH`] (what [`to_json`] accepts).
pub fn decode(mut bytes: &[u8]) -> Option<Mp> {
    // rmpv's decoder recurses; its limit counts calls, not levels: an array or map level
    // spends 2, a string, binary or extension leaf 3. Enough for MAX_DEPTH levels, then exactly.
    let v = rmpv::decode::read_value_with_max_depth(&mut bytes, 2 * MAX_DEPTH + 3).ok()?;
    (bytes.is_empty() && depth(&v) <= MAX_DEPTH).then_some(v)
}

/// How deep the deepest value in `v` is (`v` itself at depth 0), computed without recursion.
fn depth(v: &Mp) -> usize {
    let mut deepest = 0;
    let mut todo = vec![(v, 0)];
    while let Some((v, d)) = todo.pop() {
        deepest = deepest.max(d);
        match v {
            Mp::Array(items) => todo.extend(items.iter().map(|i| (i, d + 1))),
            Mp::Map(entries) => {
                todo.extend(entries.iter().flat_map(|(k, v)| [(k, d + 1), (v, d + 1)]));
            }
            _ => {}
        }
    }
    deepest
}

/// The value of key `key` in a msgpack map.
pub fn get<'a>(map: &'a Mp, key: &str) -> Option<&'a Mp> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// A msgpack map from string keys.
pub fn map<const N: usize>(entries: [(&str, Mp); N]) -> Mp {
    Mp::Map(entries.into_iter().map(|(k, v)| (Mp::from(k), v)).collect())
}

/// `Data` (arguments with placeholders, attachments) as a msgpack array with binaries in place.
pub fn data_to_array(data: &Data) -> Mp {
    Mp::Array(
        data.args
            .iter()
            .map(|a| from_json(a, &data.binary))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binaries_round_trip_through_placeholders() {
        let mp = Mp::Array(vec![
            Mp::from("file"),
            map([
                ("name", Mp::from("a.bin")),
                ("body", Mp::Binary(vec![1, 2, 3])),
            ]),
            Mp::Binary(vec![9]),
        ]);
        let mut bins = Vec::new();
        let json = to_json(mp.clone(), &mut bins).unwrap();
        assert_eq!(
            json,
            json!(["file", {"name": "a.bin", "body": {"_placeholder": true, "num": 0}}, {"_placeholder": true, "num": 1}])
        );
        assert_eq!(
            bins,
            vec![Bytes::from_static(&[1, 2, 3]), Bytes::from_static(&[9])]
        );
        assert_eq!(from_json(&json, &bins), mp);
    }

    #[test]
    fn decode_refuses_garbage_trailing_bytes_and_deep_nesting() {
        assert!(decode(&encode(&Mp::from(1))).is_some());
        let mut two = encode(&Mp::from(1));
        two.extend(encode(&Mp::from(2)));
        assert!(decode(&two).is_none());
        assert!(decode(&[0x92, 0x01]).is_none(), "truncated array");
        let mut deep = Mp::Nil;
        for _ in 0..200 {
            deep = Mp::Array(vec![deep]);
        }
        assert!(decode(&encode(&deep)).is_none());
    }

    #[test]
    fn numbers_and_extensions() {
        let mut bins = Vec::new();
        assert_eq!(to_json(Mp::F64(1.5), &mut bins), Some(json!(1.5)));
        assert_eq!(to_json(Mp::from(-3), &mut bins), Some(json!(-3)));
        assert_eq!(to_json(Mp::Ext(0, vec![0]), &mut bins), Some(Value::Null));
        assert_eq!(from_json(&json!(2.25), &[]), Mp::F64(2.25));
    }

    /// `levels` arrays, one in the other, around `leaf`.
    fn nested(levels: usize, leaf: Mp) -> Mp {
        let mut v = leaf;
        for _ in 0..levels {
            v = Mp::Array(vec![v]);
        }
        v
    }

    #[test]
    fn decode_accepts_the_nesting_to_json_accepts() {
        for leaf in [
            Mp::Nil,
            Mp::from("x"),
            Mp::Binary(vec![1]),
            Mp::Ext(1, vec![2]),
            Mp::Array(vec![]),
            Mp::Map(vec![]),
        ] {
            let ok = nested(MAX_DEPTH, leaf.clone());
            let mp = decode(&encode(&ok)).unwrap();
            assert!(to_json(mp, &mut Vec::new()).is_some(), "{leaf}");
            assert!(to_json(nested(MAX_DEPTH + 1, leaf.clone()), &mut Vec::new()).is_none());
            assert!(decode(&encode(&nested(MAX_DEPTH + 1, leaf.clone()))).is_none());
        }
        let mut deep_map = Mp::Nil;
        for _ in 0..=MAX_DEPTH {
            deep_map = map([("k", deep_map)]);
        }
        assert!(decode(&encode(&deep_map)).is_none());
    }

    /// A million nested arrays or maps from Redis: refused by the decoder before anything deep
    /// is built (rmpv's reader recurses; built, the value would also drop recursively). On a
    /// 1 MiB stack: the decoder recurses at most 2 * MAX_DEPTH + 3 calls, about 2 KiB each
    /// unoptimized.
    #[test]
    fn a_million_nested_levels_are_refused_without_recursing() {
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                let mut arrays = vec![0x91u8; 1_000_000];
                arrays.push(0xc0);
                assert!(decode(&arrays).is_none());
                let mut maps = b"\x81\xa1k".repeat(1_000_000);
                maps.push(0xc0);
                assert!(decode(&maps).is_none());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
