//! dramatiq's message, byte for byte.
//!
//! A message is the JSON object dramatiq's `Message.asdict()` gives, encoded as its
//! `JSONEncoder` does (`json.dumps(data, separators=(",", ":"))`): exactly the seven keys
//! `queue_name`, `actor_name`, `args`, `kwargs`, `options`, `message_id`, `message_timestamp`, in
//! that order (a worker's `Message.decode` is `Message(**fields)`: one key more and it fails),
//! compact, and ASCII only (`ensure_ascii`: every other character, and DEL, as `\uXXXX`, in
//! UTF-16 surrogate pairs past U+FFFF). Floats are written as Python's `repr` writes them
//! (`1e-05`, `1e+16`, `100.0`), so what this module writes for a message is the very bytes
//! dramatiq writes for the same message (the tests compare against messages dramatiq 2.2.1 sent).
//!
//! The options each broker adds when it enqueues (see [`Message::for_redis`] and
//! [`Message::for_rabbitmq`]) come after the message's own, in dramatiq's order:
//! `redis_message_id` (Redis only) then `eta` (delayed messages only).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A dramatiq message (`dramatiq.Message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// The queue it is on: the actor's queue, or `<queue>.DQ` while it is delayed.
    pub queue_name: String,
    /// The actor that runs it (its `actor_name`, by default the Python function's name).
    pub actor_name: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Options for the broker and the middleware (`max_retries`, `redis_message_id`, `eta`...).
    pub options: Map<String, Value>,
    /// A uuid4, unique to the message (results are stored under it).
    pub message_id: String,
    /// When the message was made: milliseconds since the UNIX epoch.
    pub message_timestamp: u64,
}

impl Message {
    /// A new message for `actor_name` on `queue_name`, with a fresh uuid4 id and the current
    /// time, as `actor.message_with_options(args=..., kwargs=..., **options)` makes it.
    pub fn new(
        queue_name: impl Into<String>,
        actor_name: impl Into<String>,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        options: Map<String, Value>,
    ) -> Message {
        Message {
            queue_name: queue_name.into(),
            actor_name: actor_name.into(),
            args,
            kwargs,
            options,
            message_id: uuid4(),
            message_timestamp: now_millis(),
        }
    }

    /// The message as dramatiq's Redis broker enqueues it (`RedisBroker.enqueue`): a fresh
    /// `options.redis_message_id` (uuid4), and with a `delay`, the queue `<queue>.DQ` and
    /// `options.eta` (milliseconds since the epoch). Returns the message and its Redis id.
    pub fn for_redis(&self, delay: Option<Duration>) -> (Message, String) {
        let redis_id = uuid4();
        let mut message = self.clone();
        message
            .options
            .insert("redis_message_id".into(), Value::String(redis_id.clone()));
        message.delay(delay);
        (message, redis_id)
    }

    /// The message as dramatiq's RabbitMQ broker publishes it (`RabbitmqBroker.enqueue`):
    /// unchanged, or with a `delay`, on `<queue>.DQ` with `options.eta`.
    pub fn for_rabbitmq(&self, delay: Option<Duration>) -> Message {
        let mut message = self.clone();
        message.delay(delay);
        message
    }

    fn delay(&mut self, delay: Option<Duration>) {
        if let Some(delay) = delay {
            let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            let eta = now_millis().saturating_add(delay_ms);
            self.queue_name = dq_name(&self.queue_name);
            self.options.insert("eta".into(), Value::from(eta));
        }
    }

    /// The message's bytes, as dramatiq's `Message.encode()` writes them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonJson);
        // Only strings, numbers and JSON values: serializing cannot fail, and writing to a Vec
        // neither.
        if let Err(e) = self.serialize(&mut ser) {
            tracing::error!("cannot encode a dramatiq message: {e}");
        }
        out
    }

    /// Reads a message as dramatiq's `Message.decode` does: the seven keys, no other.
    pub fn decode(data: &[u8]) -> Result<Message, serde_json::Error> {
        serde_json::from_slice(data)
    }
}

/// Encodes any JSON value as Python's `json.dumps(value, separators=(",", ":"))` does (what
/// dramatiq's JSON encoder, and its results backend, write).
pub fn to_python_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonJson);
    if let Err(e) = value.serialize(&mut ser) {
        tracing::error!("cannot encode a JSON value: {e}");
    }
    out
}

/// The Redis broker's keys of a queue: the list of message ids `<namespace>:<queue>` and the
/// hash of messages by id `<namespace>:<queue>.msgs` (dramatiq's namespace is `dramatiq`).
pub fn redis_queue_keys(namespace: &str, queue_name: &str) -> (String, String) {
    let list = format!("{namespace}:{queue_name}");
    let hash = format!("{list}.msgs");
    (list, hash)
}

/// The canonical name of a queue: without `.DQ` or `.XQ` (dramatiq's `q_name`).
pub fn q_name(queue: &str) -> &str {
    queue
        .strip_suffix(".DQ")
        .or_else(|| queue.strip_suffix(".XQ"))
        .unwrap_or(queue)
}

/// The delay queue of a queue: `<queue>.DQ` (dramatiq's `dq_name`).
pub fn dq_name(queue: &str) -> String {
    format!("{}.DQ", q_name(queue))
}

/// The dead-letter queue of a queue: `<queue>.XQ` (dramatiq's `xq_name`).
pub fn xq_name(queue: &str) -> String {
    format!("{}.XQ", q_name(queue))
}

/// A random (version 4) UUID in its usual form, as Python's `str(uuid.uuid4())`.
pub fn uuid4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Milliseconds since the UNIX epoch (dramatiq's `current_millis`).
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// serde_json's compact output, with Python's `ensure_ascii` and float `repr`.
struct PythonJson;

impl serde_json::ser::Formatter for PythonJson {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // The fragment has no character serde_json escapes itself (quote, backslash, controls).
        let mut ascii_from = 0;
        for (at, c) in fragment.char_indices() {
            if c.is_ascii() && c != '\x7f' {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[ascii_from..at])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            ascii_from = at + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[ascii_from..])
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(python_float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

/// Python's `repr(float)`: the shortest digits that read back the same, in positional notation
/// from 1e-4 up to 1e16 (with `.0` when whole), otherwise as `<d>[.<ddd>]e<sign><2+ digits>`.
fn python_float_repr(value: f64) -> String {
    // JSON has no NaN nor infinity (a serde_json Value cannot hold them); Python writes these.
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = format!("{value:e}"); // shortest round-trip digits: "-1.2345e-7", "1e16", "0e0"
    let (negative, sci) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci.as_str()),
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let point = exponent + 1; // where the decimal point goes, from the left of `digits`
    let body = if !(-4 < point && point <= 16) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{first}{rest}e{sign}{:02}", exponent.unsigned_abs())
    } else if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point as usize;
        if point >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    if negative {
        format!("-{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_are_written_as_python_writes_them() {
        // Each pair from CPython 3.11's `json.dumps`.
        for (value, python) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (2.5, "2.5"),
            (-7.25, "-7.25"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456.789, "123456.789"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.30000000000000004, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(python_float_repr(value), python, "{value:?}");
        }
        assert_eq!(
            to_python_json(&json!([1.0, 1e-5, 3, -4, "é"])),
            br#"[1.0,1e-05,3,-4,"\u00e9"]"#
        );
    }

    #[test]
    fn strings_are_ascii_as_with_ensure_ascii() {
        let s = "a\u{7f}é☃😀\"\\\n\t\u{1}</x>";
        assert_eq!(
            String::from_utf8(to_python_json(&json!(s))).unwrap(),
            r#""a\u007f\u00e9\u2603\ud83d\ude00\"\\\n\t\u0001</x>""#
        );
        // And it reads back the same.
        let back: Value = serde_json::from_slice(&to_python_json(&json!(s))).unwrap();
        assert_eq!(back, json!(s));
    }

    #[test]
    fn uuid4_has_the_form_and_the_version_bits() {
        let id = uuid4();
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{id}");
        assert!("89ab".contains(&parts[3][..1]), "{id}");
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert!(!id.chars().any(|c| c.is_ascii_uppercase()));
        assert_ne!(uuid4(), uuid4());
    }

    #[test]
    fn queue_names() {
        assert_eq!(q_name("default"), "default");
        assert_eq!(q_name("default.DQ"), "default");
        assert_eq!(q_name("default.XQ"), "default");
        assert_eq!(dq_name("default"), "default.DQ");
        assert_eq!(dq_name("default.DQ"), "default.DQ");
        assert_eq!(xq_name("default.DQ"), "default.XQ");
    }

    #[test]
    fn decode_refuses_extra_or_missing_keys_as_dramatiq_does() {
        let m = Message::new("q", "a", vec![json!(1)], Map::new(), Map::new());
        let bytes = m.encode();
        assert_eq!(Message::decode(&bytes).unwrap(), m);
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v["extra"] = json!(1);
        assert!(Message::decode(&serde_json::to_vec(&v).unwrap()).is_err());
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v.as_object_mut().unwrap().remove("options");
        assert!(Message::decode(&serde_json::to_vec(&v).unwrap()).is_err());
    }

    #[test]
    fn delays_go_to_the_delay_queue_with_an_eta() {
        let m = Message::new("default", "a", vec![], Map::new(), Map::new());
        let before = now_millis();
        let (redis, rid) = m.for_redis(Some(Duration::from_millis(1500)));
        assert_eq!(redis.queue_name, "default.DQ");
        let keys: Vec<&String> = redis.options.keys().collect();
        assert_eq!(keys, ["redis_message_id", "eta"]);
        assert_eq!(redis.options["redis_message_id"], json!(rid));
        let eta = redis.options["eta"].as_u64().unwrap();
        assert!(eta >= before + 1500 && eta <= now_millis() + 1500);
        assert_eq!(redis.message_id, m.message_id, "the same message");
        let (plain, _) = m.for_redis(None);
        assert_eq!(plain.queue_name, "default");
        assert!(!plain.options.contains_key("eta"));
        let amqp = m.for_rabbitmq(Some(Duration::from_secs(1)));
        assert_eq!(amqp.queue_name, "default.DQ");
        assert_eq!(amqp.options.keys().collect::<Vec<_>>(), ["eta"]);
        assert!(m.for_rabbitmq(None).options.is_empty());
    }
}
