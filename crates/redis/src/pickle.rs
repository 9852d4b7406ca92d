//! A pickle reader that understands plain data and nothing else.
//!
//! python-socketio up to 5.13 (4.5.1 included) pickled its message-queue messages, and unpickling
//! what anyone can publish to Redis runs their code (CVE-2025-61765). This reader builds only
//! dicts, lists, tuples, sets, strings, bytes, integers, floats, booleans and `None`. Any opcode
//! that names a global, calls something or builds an object (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`,
//! `BUILD`, `INST`, `OBJ`, `NEWOBJ`, `NEWOBJ_EX`, `PERSID`, `BINPERSID`, `EXT*`, out-of-band
//! buffers) is refused, so nothing is ever executed, on any input. Input size, nesting and the
//! size of the result are bounded.

use bytes::Bytes;
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

/// Largest pickle accepted.
const MAX_INPUT: usize = 16 << 20;
/// Largest result, in values (guards against a small pickle referring to the same list over and
/// over).
const MAX_NODES: usize = 1_000_000;
/// Deepest nesting of the result (also ends self-referencing containers).
const MAX_DEPTH: usize = 128;

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickleError {
    /// The pickle asks for an object or a callable (opcode shown): it is refused, never run.
    Forbidden(&'static str),
    /// An opcode this reader does not know.
    Unsupported(u8),
    /// Truncated, or the stack or memo used wrongly.
    Malformed(&'static str),
    /// Over the size, depth or result limits.
    TooLarge,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickleError::Forbidden(op) => {
                write!(
                    f,
                    "refused a pickle that would build objects or call code ({op})"
                )
            }
            PickleError::Unsupported(op) => write!(f, "unsupported pickle opcode {op:#04x}"),
            PickleError::Malformed(why) => write!(f, "malformed pickle: {why}"),
            PickleError::TooLarge => f.write_str("pickle over the size limits"),
        }
    }
}

impl std::error::Error for PickleError {}

/// A plain Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum Py {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits in 64 bits (larger ones are refused as too large).
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    /// A `list`, `tuple`, `set` or `frozenset`.
    List(Vec<Obj>),
    /// A `dict`.
    Dict(Vec<(Obj, Obj)>),
}

/// A value as the unpickler shares it (the memo refers to containers that are filled later).
pub type Obj = Rc<RefCell<Py>>;

fn obj(v: Py) -> Obj {
    Rc::new(RefCell::new(v))
}

enum Item {
    Mark,
    Value(Obj),
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).ok_or(PickleError::TooLarge)?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or(PickleError::Malformed("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, PickleError> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    }

    fn len(&mut self, n: usize) -> Result<usize, PickleError> {
        let l = self.le(n)?;
        let l = usize::try_from(l).map_err(|_| PickleError::TooLarge)?;
        if l > MAX_INPUT {
            return Err(PickleError::TooLarge);
        }
        Ok(l)
    }

    /// The bytes up to the next newline (protocol 0 arguments), without it.
    fn line_bytes(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or(PickleError::Malformed("unterminated line"))?;
        let line = self.take(n + 1)?;
        Ok(&line[..n])
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        std::str::from_utf8(self.line_bytes()?).map_err(|_| PickleError::Malformed("bad text line"))
    }
}

/// The argument of protocol 0's UNICODE: `raw-unicode-escape` text, i.e. Latin-1 bytes where
/// `\uXXXX` and `\UXXXXXXXX` (after an odd run of backslashes) stand for other characters.
/// Pickle writes backslashes and newlines as `\u005c` and `\u000a`; Python 2 narrow builds
/// write characters beyond the BMP as surrogate pairs, joined here.
fn raw_unicode_escape(b: &[u8]) -> Result<String, PickleError> {
    let bad = PickleError::Malformed("bad UNICODE escape");
    let mut out = String::with_capacity(b.len());
    let mut high: Option<u32> = None;
    let mut i = 0;
    while i < b.len() {
        let run = b[i..].iter().take_while(|c| **c == b'\\').count();
        let after = b.get(i + run).copied();
        if run % 2 == 1 && matches!(after, Some(b'u' | b'U')) {
            out.extend(std::iter::repeat_n('\\', run - 1));
            let digits = if after == Some(b'u') { 4 } else { 8 };
            let start = i + run + 1;
            let hex = b.get(start..start + digits).ok_or(bad.clone())?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad);
            }
            let hex = std::str::from_utf8(hex).map_err(|_| bad.clone())?;
            let code = u32::from_str_radix(hex, 16).map_err(|_| bad.clone())?;
            i = start + digits;
            match (high.take(), code) {
                (None, 0xd800..=0xdbff) => high = Some(code),
                (Some(h), 0xdc00..=0xdfff) => {
                    let c = 0x10000 + ((h - 0xd800) << 10) + (code - 0xdc00);
                    out.push(char::from_u32(c).ok_or(bad.clone())?);
                }
                (Some(_), _) => return Err(bad),
                (None, c) => out.push(char::from_u32(c).ok_or(bad.clone())?),
            }
            continue;
        }
        if high.is_some() {
            return Err(bad);
        }
        if run > 0 {
            out.extend(std::iter::repeat_n('\\', run));
            i += run;
        } else {
            out.push(char::from(b[i]));
            i += 1;
        }
    }
    if high.is_some() {
        return Err(bad);
    }
    Ok(out)
}

/// The argument of protocol 0's STRING (Python 2's `str`): a quoted Python literal, unescaped as
/// Python's `codecs.escape_decode` does.
fn string_literal(line: &[u8]) -> Result<Vec<u8>, PickleError> {
    let quoted =
        line.len() >= 2 && line[0] == line[line.len() - 1] && (line[0] == b'\'' || line[0] == b'"');
    if !quoted {
        return Err(PickleError::Malformed("unquoted STRING"));
    }
    let s = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *s
            .get(i)
            .ok_or(PickleError::Malformed("bad STRING escape"))?;
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match s.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let byte = s
                    .get(i..i + 2)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
                    .ok_or(PickleError::Malformed("bad STRING escape"))?;
                out.push(byte);
                i += 2;
            }
            other => out.extend([b'\\', other]),
        }
    }
    Ok(out)
}

struct Machine {
    stack: Vec<Item>,
    memo: std::collections::HashMap<u64, Obj>,
}

impl Machine {
    fn push(&mut self, v: Py) {
        self.stack.push(Item::Value(obj(v)));
    }

    fn pop(&mut self) -> Result<Obj, PickleError> {
        match self.stack.pop() {
            Some(Item::Value(v)) => Ok(v),
            _ => Err(PickleError::Malformed("stack underflow")),
        }
    }

    fn top(&self) -> Result<Obj, PickleError> {
        match self.stack.last() {
            Some(Item::Value(v)) => Ok(v.clone()),
            _ => Err(PickleError::Malformed("empty stack")),
        }
    }

    /// Pops everything down to the last mark.
    fn pop_mark(&mut self) -> Result<Vec<Obj>, PickleError> {
        let mut items = Vec::new();
        loop {
            match self.stack.pop() {
                Some(Item::Value(v)) => items.push(v),
                Some(Item::Mark) => break,
                None => return Err(PickleError::Malformed("no mark")),
            }
        }
        items.reverse();
        Ok(items)
    }

    fn extend_list(&mut self, items: Vec<Obj>) -> Result<(), PickleError> {
        let target = self.top()?;
        let mut t = target.borrow_mut();
        match &mut *t {
            Py::List(l) => {
                l.extend(items);
                Ok(())
            }
            _ => Err(PickleError::Malformed("append to a non-list")),
        }
    }

    fn set_items(&mut self, items: Vec<Obj>) -> Result<(), PickleError> {
        if items.len() % 2 != 0 {
            return Err(PickleError::Malformed("odd number of dict items"));
        }
        let target = self.top()?;
        let mut t = target.borrow_mut();
        let Py::Dict(d) = &mut *t else {
            return Err(PickleError::Malformed("setitem on a non-dict"));
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }
}

fn int_from_le_signed(b: &[u8]) -> Result<i64, PickleError> {
    if b.is_empty() {
        return Ok(0);
    }
    if b.len() > 8 {
        return Err(PickleError::TooLarge);
    }
    let negative = b[b.len() - 1] & 0x80 != 0;
    let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
    buf[..b.len()].copy_from_slice(b);
    Ok(i64::from_le_bytes(buf))
}

/// Reads a pickle of plain data.
pub fn loads(data: &[u8]) -> Result<Py, PickleError> {
    if data.len() > MAX_INPUT {
        return Err(PickleError::TooLarge);
    }
    let mut r = Reader { data, pos: 0 };
    let mut m = Machine {
        stack: Vec::new(),
        memo: std::collections::HashMap::new(),
    };
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            0x95 => {
                r.le(8)?; // FRAME
            }
            b'.' => {
                let v = m.pop()?;
                let v = v.borrow().clone();
                return Ok(v);
            }
            b'N' => m.push(Py::None),
            0x88 => m.push(Py::Bool(true)),
            0x89 => m.push(Py::Bool(false)),
            b'J' => {
                let b = r.take(4)?;
                m.push(Py::Int(i64::from(i32::from_le_bytes([
                    b[0], b[1], b[2], b[3],
                ]))));
            }
            b'K' => {
                let v = r.u8()?;
                m.push(Py::Int(i64::from(v)));
            }
            b'M' => {
                let v = r.le(2)?;
                m.push(Py::Int(v as i64));
            }
            0x8a => {
                let n = usize::from(r.u8()?);
                let b = r.take(n)?;
                m.push(Py::Int(int_from_le_signed(b)?));
            }
            0x8b => {
                let n = r.len(4)?;
                let b = r.take(n)?;
                m.push(Py::Int(int_from_le_signed(b)?));
            }
            b'I' => {
                let line = r.line()?;
                let v = match line {
                    "01" => Py::Bool(true),
                    "00" => Py::Bool(false),
                    n => Py::Int(n.parse().map_err(|_| PickleError::Malformed("bad INT"))?),
                };
                m.push(v);
            }
            b'L' => {
                let line = r.line()?;
                let n = line.trim_end_matches('L');
                m.push(Py::Int(n.parse().map_err(|_| PickleError::TooLarge)?));
            }
            b'G' => {
                let b = r.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                m.push(Py::Float(f64::from_be_bytes(a)));
            }
            b'F' => {
                let line = r.line()?;
                m.push(Py::Float(
                    line.parse()
                        .map_err(|_| PickleError::Malformed("bad FLOAT"))?,
                ));
            }
            0x8c | b'X' | 0x8d => {
                let n = match op {
                    0x8c => usize::from(r.u8()?),
                    b'X' => r.len(4)?,
                    _ => r.len(8)?,
                };
                let b = r.take(n)?;
                let s = std::str::from_utf8(b).map_err(|_| PickleError::Malformed("bad UTF-8"))?;
                m.push(Py::Str(s.to_owned()));
            }
            // Protocol 0 text (Python 3's `str`, Python 2's `unicode`).
            b'V' => {
                let line = r.line_bytes()?;
                m.push(Py::Str(raw_unicode_escape(line)?));
            }
            // Python 2 byte strings of protocol 0 (the default of Python 2's `pickle.dumps`):
            // read as Latin-1 text, as for protocols 1 and 2 below.
            b'S' => {
                let b = string_literal(r.line_bytes()?)?;
                m.push(Py::Str(b.iter().map(|c| char::from(*c)).collect()));
            }
            // Python 2 byte strings (protocols 1 and 2): read as Latin-1 text.
            b'U' | b'T' => {
                let n = if op == b'U' {
                    usize::from(r.u8()?)
                } else {
                    r.len(4)?
                };
                let b = r.take(n)?;
                m.push(Py::Str(b.iter().map(|c| char::from(*c)).collect()));
            }
            b'C' | b'B' | 0x8e | 0x96 => {
                let n = match op {
                    b'C' => usize::from(r.u8()?),
                    b'B' => r.len(4)?,
                    _ => r.len(8)?,
                };
                m.push(Py::Bytes(r.take(n)?.to_vec()));
            }
            b']' => m.push(Py::List(Vec::new())),
            b')' => m.push(Py::List(Vec::new())),
            0x8f => m.push(Py::List(Vec::new())),
            b'}' => m.push(Py::Dict(Vec::new())),
            b'(' => m.stack.push(Item::Mark),
            b'a' => {
                let v = m.pop()?;
                m.extend_list(vec![v])?;
            }
            b'e' | 0x90 => {
                let items = m.pop_mark()?;
                m.extend_list(items)?;
            }
            b's' => {
                let v = m.pop()?;
                let k = m.pop()?;
                m.set_items(vec![k, v])?;
            }
            b'u' => {
                let items = m.pop_mark()?;
                m.set_items(items)?;
            }
            b't' | b'l' | 0x91 => {
                let items = m.pop_mark()?;
                m.push(Py::List(items));
            }
            b'd' => {
                let items = m.pop_mark()?;
                m.push(Py::Dict(Vec::new()));
                m.set_items(items)?;
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(m.pop()?);
                }
                items.reverse();
                m.push(Py::List(items));
            }
            0x94 => {
                let v = m.top()?;
                let k = m.memo.len() as u64;
                m.memo.insert(k, v);
            }
            b'q' | b'r' | b'p' => {
                let k = match op {
                    b'q' => u64::from(r.u8()?),
                    b'r' => r.le(4)?,
                    _ => r
                        .line()?
                        .parse()
                        .map_err(|_| PickleError::Malformed("bad PUT"))?,
                };
                let v = m.top()?;
                m.memo.insert(k, v);
            }
            b'h' | b'j' | b'g' => {
                let k = match op {
                    b'h' => u64::from(r.u8()?),
                    b'j' => r.le(4)?,
                    _ => r
                        .line()?
                        .parse()
                        .map_err(|_| PickleError::Malformed("bad GET"))?,
                };
                let v = m
                    .memo
                    .get(&k)
                    .cloned()
                    .ok_or(PickleError::Malformed("unknown memo key"))?;
                m.stack.push(Item::Value(v));
            }
            b'0' => {
                m.stack
                    .pop()
                    .ok_or(PickleError::Malformed("pop on empty stack"))?;
            }
            b'1' => {
                m.pop_mark()?;
            }
            b'2' => {
                let v = m.top()?;
                m.stack.push(Item::Value(v));
            }
            b'c' => return Err(PickleError::Forbidden("GLOBAL")),
            0x93 => return Err(PickleError::Forbidden("STACK_GLOBAL")),
            b'R' => return Err(PickleError::Forbidden("REDUCE")),
            b'b' => return Err(PickleError::Forbidden("BUILD")),
            b'i' => return Err(PickleError::Forbidden("INST")),
            b'o' => return Err(PickleError::Forbidden("OBJ")),
            0x81 => return Err(PickleError::Forbidden("NEWOBJ")),
            0x92 => return Err(PickleError::Forbidden("NEWOBJ_EX")),
            b'P' => return Err(PickleError::Forbidden("PERSID")),
            b'Q' => return Err(PickleError::Forbidden("BINPERSID")),
            0x82..=0x84 => return Err(PickleError::Forbidden("EXT")),
            0x97 | 0x98 => return Err(PickleError::Forbidden("out-of-band buffer")),
            other => return Err(PickleError::Unsupported(other)),
        }
    }
}

impl Py {
    /// The value as JSON, with `bytes` moved into `bins` and placeholders left in their place.
    /// Errors when the value nests deeper than allowed or is too large once expanded.
    pub fn to_json(&self, bins: &mut Vec<Bytes>) -> Result<Value, PickleError> {
        let mut budget = MAX_NODES;
        to_json(self, bins, 0, &mut budget)
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Py::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of `key` in a dict with string keys.
    pub fn get(&self, key: &str) -> Option<Py> {
        match self {
            Py::Dict(entries) => entries
                .iter()
                .find(|(k, _)| k.borrow().as_str() == Some(key))
                .map(|(_, v)| v.borrow().clone()),
            _ => None,
        }
    }
}

fn to_json(
    v: &Py,
    bins: &mut Vec<Bytes>,
    depth: usize,
    budget: &mut usize,
) -> Result<Value, PickleError> {
    if depth > MAX_DEPTH || *budget == 0 {
        return Err(PickleError::TooLarge);
    }
    *budget -= 1;
    Ok(match v {
        Py::None => Value::Null,
        Py::Bool(b) => Value::Bool(*b),
        Py::Int(i) => Value::from(*i),
        Py::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Py::Str(s) => Value::String(s.clone()),
        Py::Bytes(b) => {
            bins.push(Bytes::from(b.clone()));
            serde_json::json!({"_placeholder": true, "num": bins.len() - 1})
        }
        Py::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                let i = i.try_borrow().map_err(|_| PickleError::TooLarge)?;
                out.push(to_json(&i, bins, depth + 1, budget)?);
            }
            Value::Array(out)
        }
        Py::Dict(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                let key = match &*k.borrow() {
                    Py::Str(s) => s.clone(),
                    Py::Int(i) => i.to_string(),
                    other => format!("{other:?}"),
                };
                let v = v.try_borrow().map_err(|_| PickleError::TooLarge)?;
                m.insert(key, to_json(&v, bins, depth + 1, budget)?);
            }
            Value::Object(m)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `pickle.dumps({'method': 'emit', 'event': 'news', 'data': ('hi', 1), 'namespace': '/',
    /// 'room': None, 'skip_sid': None, 'callback': None, 'host_id': 'abc'})`, protocol 4, as
    /// Python 3.11 writes it.
    const EMIT_P4: &[u8] = b"\x80\x04\x95\x74\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x06method\x94\x8c\x04emit\x94\x8c\x05event\x94\x8c\x04news\x94\x8c\x04data\x94\x8c\x02hi\x94K\x01\x86\x94\x8c\tnamespace\x94\x8c\x01/\x94\x8c\x04room\x94N\x8c\x08skip_sid\x94N\x8c\x08callback\x94N\x8c\x07host_id\x94\x8c\x03abc\x94u.";

    #[test]
    fn reads_a_python_socketio_4_message() {
        let v = loads(EMIT_P4).unwrap();
        let mut bins = Vec::new();
        assert_eq!(
            v.to_json(&mut bins).unwrap(),
            json!({"method": "emit", "event": "news", "data": ["hi", 1], "namespace": "/",
                   "room": null, "skip_sid": null, "callback": null, "host_id": "abc"})
        );
    }

    #[test]
    fn bytes_become_attachments() {
        // pickle.dumps([b'\x01\x02', {'k': 2.5, 'big': 2**40}], protocol=4)
        let p = b"\x80\x04\x95\x29\x00\x00\x00\x00\x00\x00\x00]\x94(C\x02\x01\x02\x94}\x94(\x8c\x01k\x94G@\x04\x00\x00\x00\x00\x00\x00\x8c\x03big\x94\x8a\x06\x00\x00\x00\x00\x00\x01ue.";
        let mut bins = Vec::new();
        let v = loads(p).unwrap().to_json(&mut bins).unwrap();
        assert_eq!(
            v,
            json!([{"_placeholder": true, "num": 0}, {"k": 2.5, "big": 1u64 << 40}])
        );
        assert_eq!(bins, vec![Bytes::from_static(&[1, 2])]);
    }

    #[test]
    fn protocol_2_and_0_shapes() {
        // pickle.dumps({'a': [True, None]}, protocol=2)
        let p2 = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(\x88Nes.";
        let mut bins = Vec::new();
        assert_eq!(
            loads(p2).unwrap().to_json(&mut bins).unwrap(),
            json!({"a": [true, null]})
        );
        // pickle.dumps([1, 2], protocol=0)
        let p0 = b"(lp0\nI1\naI2\na.";
        assert_eq!(
            loads(p0).unwrap().to_json(&mut bins).unwrap(),
            json!([1, 2])
        );
    }

    #[test]
    fn protocol_0_text() {
        // pickle.dumps({'method': 'emit', 'event': 'news', 'data': ('h\xe9', 1,
        // 'back\\slash \\u0041', 'two\nlines', '\U0001F600'), 'room': None}, protocol=0),
        // as Python 3.11 writes it.
        let p3 = b"(dp0\nVmethod\np1\nVemit\np2\nsVevent\np3\nVnews\np4\nsVdata\np5\n(Vh\xe9\np6\nI1\nVback\\u005cslash \\u005cu0041\np7\nVtwo\\u000alines\np8\nV\\U0001f600\np9\ntp10\nsVroom\np11\nNs.";
        let mut bins = Vec::new();
        assert_eq!(
            loads(p3).unwrap().to_json(&mut bins).unwrap(),
            json!({"method": "emit", "event": "news", "room": null,
                   "data": ["h\u{e9}", 1, "back\\slash \\u0041", "two\nlines", "\u{1F600}"]})
        );
        // Python 2.7's pickle.dumps({'method': 'emit', 'data': (u'h\xe9\U0001F600', 'it\'s\n\x00\\')})
        // (protocol 0, a narrow build: the emoji as a surrogate pair).
        let p2 = b"(dp0\nS'method'\np1\nS'emit'\np2\nsS'data'\np3\n(Vh\xe9\\ud83d\\ude00\np4\nS\"it's\\n\\x00\\\\\"\np5\ntp6\ns.";
        assert_eq!(
            loads(p2).unwrap().to_json(&mut bins).unwrap(),
            json!({"method": "emit", "data": ["h\u{e9}\u{1F600}", "it's\n\u{0}\\"]})
        );
        for bad in [
            &b"S'unterminated\n."[..],
            b"Sbare\n.",
            b"S'\\x4'\n.",
            b"V\\u12\n.",
            b"V\\ud83d\n.",
            b"V\\ude00x\\ud83d\n.",
            b"V\\U00110000\n.",
            b"V\\u+123\n.",
        ] {
            assert!(loads(bad).is_err(), "{bad:?}");
        }
        // An escaped backslash before `u` is no escape.
        assert_eq!(
            loads(b"V\\\\u0041\n.").unwrap(),
            Py::Str("\\\\u0041".into())
        );
    }

    #[test]
    fn code_execution_is_refused() {
        // The classic: pickle of an object whose __reduce__ returns (os.system, ('touch x',)).
        let evil = b"\x80\x04\x95\x22\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x07touch x\x94\x85\x94R\x94.";
        assert_eq!(loads(evil), Err(PickleError::Forbidden("STACK_GLOBAL")));
        let evil0 = b"cos\nsystem\n(S'touch x'\ntR.";
        assert_eq!(loads(evil0), Err(PickleError::Forbidden("GLOBAL")));
        // The same in a protocol 0 message as Python 3 writes it: refused at GLOBAL.
        let evil_msg0 = b"(dp0\nVmethod\np1\nVemit\np2\nsVdata\np3\ncposix\nsystem\np4\n(Vtouch x\np5\ntp6\nRp7\ns.";
        assert_eq!(loads(evil_msg0), Err(PickleError::Forbidden("GLOBAL")));
        assert_eq!(
            loads(b"\x80\x04N\x81."),
            Err(PickleError::Forbidden("NEWOBJ"))
        );
    }

    #[test]
    fn malformed_and_hostile_shapes_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"\x80",
            b"]a.",
            b"(u.",
            b"X\xff\xff\xff\xff",
            b"\x8b\x09\x00\x00\x00123456789",
            b"h\x05.",
            b"\xff",
            b"I12x\n.",
        ] {
            assert!(loads(bad).is_err(), "{bad:?}");
        }
        // A list that contains itself: refused when converted, not looped on.
        let cyclic = b"]\x94h\x00a.";
        let v = loads(cyclic);
        let mut bins = Vec::new();
        assert!(v.map(|v| v.to_json(&mut bins)).map_or(true, |r| r.is_err()));
        // Deterministic pseudo-random bytes never panic.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            let len = (x % 40) as usize;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push((x & 0xff) as u8);
            }
            if let Ok(v) = loads(&buf) {
                let _ = v.to_json(&mut Vec::new());
            }
        }
    }
}
