//! A pickle reader that understands plain data and nothing else.
//!
//! python-socketio up to 5.13 (4.5.1 included) pickled its message-queue messages, and unpickling
//! what anyone can publish to Redis runs their code (CVE-2025-61765). This reader builds only
//! dicts, lists, tuples, sets, strings, bytes, integers, floats, booleans and `None`. Any opcode
//! that names a global, calls something or builds an object (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`,
//! `BUILD`, `INST`, `OBJ`, `NEWOBJ`, `NEWOBJ_EX`, `PERSID`, `BINPERSID`, `EXT*`, out-of-band
//! buffers) is refused, so nothing is ever executed, on any input. Input size, nesting and the
//! size of the result are bounded.
//!
//! What a pickle builds is hostile until converted, and the memo lets it share a container
//! between several places, or put a container inside itself. So values live in an arena (a
//! [`Py`]: one `Vec` of [`Node`]s) and containers name their items by [`Id`]: no value owns
//! another, so dropping or formatting a `Py` never recurses and no reference cycle can keep
//! memory alive. Nesting is checked while reading (as a container is put in a container) and
//! again, exactly, when converting, where a container met again inside itself is refused rather
//! than followed; the conversion recurses at most [`MAX_DEPTH`] levels.

use bytes::Bytes;
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::fmt;

/// Largest pickle accepted.
pub const MAX_INPUT: usize = 16 << 20;
/// Most values a pickle may build, and most container slots, stack entries and memo entries
/// it may use while reading; also the most values of a converted result (which guards against a
/// small pickle referring to the same list over and over).
pub const MAX_NODES: usize = 1_000_000;
/// Deepest nesting of the result (the outermost value is at depth 0).
pub const MAX_DEPTH: usize = 128;
/// Most bytes of text and `bytes` in a converted result (a value the pickle refers to several
/// times is copied each time).
pub const MAX_OUTPUT: usize = 4 * MAX_INPUT;

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickleError {
    /// The pickle asks for an object or a callable (opcode shown): it is refused, never run.
    Forbidden(&'static str),
    /// An opcode this reader does not know.
    Unsupported(u8),
    /// Truncated, the stack or memo used wrongly, or a value JSON cannot hold (a container
    /// inside itself, a tuple as a dict key).
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

/// Where a value sits in a [`Py`]'s arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id(u32);

impl Id {
    /// The position of the value in [`Py::nodes`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One plain Python value. Containers name their items by [`Id`] in the same [`Py`], so a
/// `Node` owns no other value (and its `Debug` does not follow them).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
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
    Bytes(Bytes),
    /// A `list`, `tuple`, `set` or `frozenset`.
    List(Vec<Id>),
    /// A `dict`, in insertion order (a key set twice appears twice; the last one wins).
    Dict(Vec<(Id, Id)>),
}

impl Node {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// What a pickle built: every value it made, in one arena, and the one it returned.
///
/// Flat by construction: dropping, cloning or formatting it (`Debug`) never recurses, whatever
/// the pickle did with its memo (shared containers, a list inside itself). Equality compares the
/// arenas: two pickles of one value written differently may differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Py {
    nodes: Vec<Node>,
    root: Id,
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

enum Item {
    Mark,
    Value(Id),
}

struct Machine {
    /// The arena.
    nodes: Vec<Node>,
    /// For each value, the nesting below it as seen when containers were put in it. Exact when
    /// built bottom-up (as pickle writes); the memo lets a container grow after it was put
    /// somewhere, so this is a lower bound, and [`Py::to_json`] checks again exactly.
    heights: Vec<u16>,
    /// Container slots filled so far.
    slots: usize,
    stack: Vec<Item>,
    memo: HashMap<u64, Id>,
}

impl Machine {
    /// A new value in the arena.
    fn add(&mut self, v: Node) -> Result<Id, PickleError> {
        if self.nodes.len() >= MAX_NODES {
            return Err(PickleError::TooLarge);
        }
        let id = Id(u32::try_from(self.nodes.len()).map_err(|_| PickleError::TooLarge)?);
        self.nodes.push(v);
        self.heights.push(0);
        Ok(id)
    }

    fn push_item(&mut self, item: Item) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_NODES {
            return Err(PickleError::TooLarge);
        }
        self.stack.push(item);
        Ok(())
    }

    fn push(&mut self, v: Node) -> Result<(), PickleError> {
        let id = self.add(v)?;
        self.push_item(Item::Value(id))
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        match self.stack.pop() {
            Some(Item::Value(v)) => Ok(v),
            _ => Err(PickleError::Malformed("stack underflow")),
        }
    }

    fn top(&self) -> Result<Id, PickleError> {
        match self.stack.last() {
            Some(Item::Value(v)) => Ok(*v),
            _ => Err(PickleError::Malformed("empty stack")),
        }
    }

    fn remember(&mut self, key: u64, v: Id) -> Result<(), PickleError> {
        if self.memo.len() >= MAX_NODES && !self.memo.contains_key(&key) {
            return Err(PickleError::TooLarge);
        }
        self.memo.insert(key, v);
        Ok(())
    }

    /// Pops everything down to the last mark.
    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
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

    /// Accounts for `child` being put in `parent`: one more slot, and the nesting.
    fn nest(&mut self, parent: Id, child: Id) -> Result<(), PickleError> {
        self.slots += 1;
        if self.slots > MAX_NODES {
            return Err(PickleError::TooLarge);
        }
        let below = self.heights.get(child.index()).copied().unwrap_or(0);
        let height = usize::from(below) + 1;
        if height > MAX_DEPTH {
            return Err(PickleError::TooLarge);
        }
        let height = u16::try_from(height).map_err(|_| PickleError::TooLarge)?;
        if let Some(h) = self.heights.get_mut(parent.index()) {
            *h = (*h).max(height);
        }
        Ok(())
    }

    /// A new list (or tuple, or set) of `items`, pushed.
    fn push_list(&mut self, items: Vec<Id>) -> Result<(), PickleError> {
        let id = self.add(Node::List(Vec::new()))?;
        for &i in &items {
            self.nest(id, i)?;
        }
        if let Some(Node::List(l)) = self.nodes.get_mut(id.index()) {
            *l = items;
        }
        self.push_item(Item::Value(id))
    }

    fn extend_list(&mut self, items: Vec<Id>) -> Result<(), PickleError> {
        let target = self.top()?;
        if !matches!(self.nodes.get(target.index()), Some(Node::List(_))) {
            return Err(PickleError::Malformed("append to a non-list"));
        }
        for &i in &items {
            self.nest(target, i)?;
        }
        if let Some(Node::List(l)) = self.nodes.get_mut(target.index()) {
            l.extend(items);
        }
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Id>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(PickleError::Malformed("odd number of dict items"));
        }
        let target = self.top()?;
        if !matches!(self.nodes.get(target.index()), Some(Node::Dict(_))) {
            return Err(PickleError::Malformed("setitem on a non-dict"));
        }
        for &i in &items {
            self.nest(target, i)?;
        }
        if let Some(Node::Dict(d)) = self.nodes.get_mut(target.index()) {
            d.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
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
        nodes: Vec::new(),
        heights: Vec::new(),
        slots: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
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
                let root = m.pop()?;
                return Ok(Py {
                    nodes: m.nodes,
                    root,
                });
            }
            b'N' => m.push(Node::None)?,
            0x88 => m.push(Node::Bool(true))?,
            0x89 => m.push(Node::Bool(false))?,
            b'J' => {
                let b = r.take(4)?;
                m.push(Node::Int(i64::from(i32::from_le_bytes([
                    b[0], b[1], b[2], b[3],
                ]))))?;
            }
            b'K' => {
                let v = r.u8()?;
                m.push(Node::Int(i64::from(v)))?;
            }
            b'M' => {
                let v = r.le(2)?;
                m.push(Node::Int(v as i64))?;
            }
            0x8a => {
                let n = usize::from(r.u8()?);
                let b = r.take(n)?;
                m.push(Node::Int(int_from_le_signed(b)?))?;
            }
            0x8b => {
                let n = r.len(4)?;
                let b = r.take(n)?;
                m.push(Node::Int(int_from_le_signed(b)?))?;
            }
            b'I' => {
                let line = r.line()?;
                let v = match line {
                    "01" => Node::Bool(true),
                    "00" => Node::Bool(false),
                    n => Node::Int(n.parse().map_err(|_| PickleError::Malformed("bad INT"))?),
                };
                m.push(v)?;
            }
            b'L' => {
                let line = r.line()?;
                let n = line.trim_end_matches('L');
                m.push(Node::Int(n.parse().map_err(|_| PickleError::TooLarge)?))?;
            }
            b'G' => {
                let b = r.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                m.push(Node::Float(f64::from_be_bytes(a)))?;
            }
            b'F' => {
                let line = r.line()?;
                m.push(Node::Float(
                    line.parse()
                        .map_err(|_| PickleError::Malformed("bad FLOAT"))?,
                ))?;
            }
            0x8c | b'X' | 0x8d => {
                let n = match op {
                    0x8c => usize::from(r.u8()?),
                    b'X' => r.len(4)?,
                    _ => r.len(8)?,
                };
                let b = r.take(n)?;
                let s = std::str::from_utf8(b).map_err(|_| PickleError::Malformed("bad UTF-8"))?;
                m.push(Node::Str(s.to_owned()))?;
            }
            // Protocol 0 text (Python 3's `str`, Python 2's `unicode`).
            b'V' => {
                let line = r.line_bytes()?;
                m.push(Node::Str(raw_unicode_escape(line)?))?;
            }
            // Python 2 byte strings of protocol 0 (the default of Python 2's `pickle.dumps`):
            // read as Latin-1 text, as for protocols 1 and 2 below.
            b'S' => {
                let b = string_literal(r.line_bytes()?)?;
                m.push(Node::Str(b.iter().map(|c| char::from(*c)).collect()))?;
            }
            // Python 2 byte strings (protocols 1 and 2): read as Latin-1 text.
            b'U' | b'T' => {
                let n = if op == b'U' {
                    usize::from(r.u8()?)
                } else {
                    r.len(4)?
                };
                let b = r.take(n)?;
                m.push(Node::Str(b.iter().map(|c| char::from(*c)).collect()))?;
            }
            b'C' | b'B' | 0x8e | 0x96 => {
                let n = match op {
                    b'C' => usize::from(r.u8()?),
                    b'B' => r.len(4)?,
                    _ => r.len(8)?,
                };
                m.push(Node::Bytes(Bytes::copy_from_slice(r.take(n)?)))?;
            }
            b']' => m.push(Node::List(Vec::new()))?,
            b')' => m.push(Node::List(Vec::new()))?,
            0x8f => m.push(Node::List(Vec::new()))?,
            b'}' => m.push(Node::Dict(Vec::new()))?,
            b'(' => m.push_item(Item::Mark)?,
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
                m.push_list(items)?;
            }
            b'd' => {
                let items = m.pop_mark()?;
                m.push(Node::Dict(Vec::new()))?;
                m.set_items(items)?;
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(m.pop()?);
                }
                items.reverse();
                m.push_list(items)?;
            }
            0x94 => {
                let v = m.top()?;
                let k = m.memo.len() as u64;
                m.remember(k, v)?;
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
                m.remember(k, v)?;
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
                    .copied()
                    .ok_or(PickleError::Malformed("unknown memo key"))?;
                m.push_item(Item::Value(v))?;
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
                m.push_item(Item::Value(v))?;
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
    /// Errors when the value nests deeper than allowed, contains itself, has a dict key with no
    /// JSON form, or is too large once expanded.
    pub fn to_json(&self, bins: &mut Vec<Bytes>) -> Result<Value, PickleError> {
        self.to_json_within(bins, MAX_NODES)
    }

    /// [`Py::to_json`], with at most `max_values` values once expanded (and never more than
    /// [`MAX_NODES`]): a value that shares its parts expands to more values than the pickle
    /// holds. The fuzz target converts with a small bound, which reaches the same checks at a
    /// fraction of the cost per input.
    pub fn to_json_within(
        &self,
        bins: &mut Vec<Bytes>,
        max_values: usize,
    ) -> Result<Value, PickleError> {
        let mut c = Converter {
            nodes: &self.nodes,
            bins,
            values: max_values.min(MAX_NODES),
            bytes: MAX_OUTPUT,
            on_path: vec![false; self.nodes.len()],
        };
        c.value(self.root, 0)
    }

    /// The value the pickle returned.
    pub fn root(&self) -> &Node {
        self.node(self.root).unwrap_or(&Node::None)
    }

    /// The id of the value the pickle returned.
    pub fn root_id(&self) -> Id {
        self.root
    }

    /// The value `id` names.
    pub fn node(&self, id: Id) -> Option<&Node> {
        self.nodes.get(id.index())
    }

    /// Every value the pickle built (some maybe unreachable from the root), indexed by
    /// [`Id::index`].
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The string, if the pickle returned one.
    pub fn as_str(&self) -> Option<&str> {
        self.root().as_str()
    }

    /// The value of `key` in a returned dict with string keys (the last one set, as in Python).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self.root() {
            Node::Dict(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| self.node(*k).and_then(Node::as_str) == Some(key))
                .and_then(|(_, v)| self.node(*v)),
            _ => None,
        }
    }
}

/// One conversion to JSON: what is left of the budgets, and the containers being converted.
struct Converter<'a> {
    nodes: &'a [Node],
    bins: &'a mut Vec<Bytes>,
    /// Values left.
    values: usize,
    /// Bytes of text and `bytes` left.
    bytes: usize,
    /// The containers on the path from the root to the value being converted.
    on_path: Vec<bool>,
}

impl Converter<'_> {
    fn spend_bytes(&mut self, n: usize) -> Result<(), PickleError> {
        self.bytes = self.bytes.checked_sub(n).ok_or(PickleError::TooLarge)?;
        Ok(())
    }

    /// Marks a container as being converted; refuses one that already is (it contains itself).
    fn enter(&mut self, id: Id) -> Result<(), PickleError> {
        match self.on_path.get_mut(id.index()) {
            Some(on) if !*on => {
                *on = true;
                Ok(())
            }
            Some(_) => Err(PickleError::Malformed("a container that contains itself")),
            None => Err(PickleError::Malformed("unknown value")),
        }
    }

    fn leave(&mut self, id: Id) {
        if let Some(on) = self.on_path.get_mut(id.index()) {
            *on = false;
        }
    }

    /// Recurses once per level (through [`Converter::list`] or [`Converter::dict`]), at most
    /// [`MAX_DEPTH`] + 1 deep.
    fn value(&mut self, id: Id, depth: usize) -> Result<Value, PickleError> {
        if depth > MAX_DEPTH || self.values == 0 {
            return Err(PickleError::TooLarge);
        }
        self.values -= 1;
        let nodes = self.nodes;
        match nodes.get(id.index()) {
            Some(Node::None) => Ok(Value::Null),
            Some(Node::Bool(b)) => Ok(Value::Bool(*b)),
            Some(Node::Int(i)) => Ok(Value::from(*i)),
            Some(Node::Float(f)) => Ok(Number::from_f64(*f).map_or(Value::Null, Value::Number)),
            Some(Node::Str(s)) => {
                self.spend_bytes(s.len())?;
                Ok(Value::String(s.clone()))
            }
            Some(Node::Bytes(b)) => self.attachment(b),
            Some(Node::List(items)) => self.list(id, items, depth),
            Some(Node::Dict(entries)) => self.dict(id, entries, depth),
            None => Err(PickleError::Malformed("unknown value")),
        }
    }

    /// Moves `bytes` out to the attachments (sharing the buffer), leaving a placeholder.
    fn attachment(&mut self, b: &Bytes) -> Result<Value, PickleError> {
        self.spend_bytes(b.len())?;
        self.bins.push(b.clone());
        let mut m = Map::new();
        m.insert("_placeholder".to_owned(), Value::Bool(true));
        m.insert("num".to_owned(), Value::from(self.bins.len() - 1));
        Ok(Value::Object(m))
    }

    fn list(&mut self, id: Id, items: &[Id], depth: usize) -> Result<Value, PickleError> {
        self.enter(id)?;
        let mut out = Vec::with_capacity(items.len().min(self.values));
        for &i in items {
            out.push(self.value(i, depth + 1)?);
        }
        self.leave(id);
        Ok(Value::Array(out))
    }

    fn dict(&mut self, id: Id, entries: &[(Id, Id)], depth: usize) -> Result<Value, PickleError> {
        self.enter(id)?;
        let mut m = Map::new();
        for &(k, v) in entries {
            let key = self.key(k)?;
            m.insert(key, self.value(v, depth + 1)?);
        }
        self.leave(id);
        Ok(Value::Object(m))
    }

    /// A dict key as JSON has it: a string, or a number, boolean or `None` written as JSON
    /// writes them. Other keys (tuples, bytes) have no JSON form and are refused.
    fn key(&mut self, id: Id) -> Result<String, PickleError> {
        let nodes = self.nodes;
        match nodes.get(id.index()) {
            Some(Node::Str(s)) => {
                self.spend_bytes(s.len())?;
                Ok(s.clone())
            }
            Some(Node::Int(i)) => Ok(i.to_string()),
            Some(Node::Bool(b)) => Ok(b.to_string()),
            Some(Node::None) => Ok("null".to_owned()),
            Some(Node::Float(f)) => Ok(match Number::from_f64(*f) {
                Some(n) => n.to_string(),
                None if f.is_nan() => "NaN".to_owned(),
                None if *f > 0.0 => "Infinity".to_owned(),
                None => "-Infinity".to_owned(),
            }),
            _ => Err(PickleError::Malformed(
                "a dict key that is not a str, int, float, bool or None",
            )),
        }
    }
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
        assert_eq!(loads(b"V\\\\u0041\n.").unwrap().as_str(), Some("\\\\u0041"));
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

    /// Runs `f` on a thread with a small stack (256 KiB): a recursion that the limits do not
    /// bound overflows it, aborting the test run.
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    /// A pickle that leaves on the stack a chain of `n + 1` lists, each put in its parent
    /// through the memo while still empty (top-down: the nesting seen at insertion is 1), the
    /// memo keys from `first` on.
    fn top_down_chain(n: u32, first: u32) -> Vec<u8> {
        let mut p = b"]\x94".to_vec();
        for i in 0..n {
            p.extend(b"]\x94a0j");
            p.extend((first + i + 1).to_le_bytes());
        }
        p.extend(b"0j");
        p.extend(first.to_le_bytes());
        p
    }

    /// `{'method': 'emit', 'event': 'x', 'data': <data>, 'namespace': '/'}`, protocol 4, the
    /// dict at memo key 0.
    fn emit_with(data: &[u8]) -> Vec<u8> {
        let mut p =
            b"\x80\x04}\x94(\x8c\x06method\x8c\x04emit\x8c\x05event\x8c\x01x\x8c\x04data".to_vec();
        p.extend(data);
        p.extend(b"\x8c\x09namespace\x8c\x01/u.");
        p
    }

    /// Finding G: a dict keyed by a list that contains itself (`Debug` of the key recursed
    /// forever, a stack overflow).
    #[test]
    fn dict_keyed_by_a_self_containing_list_is_refused_not_formatted() {
        on_small_stack(|| {
            let p = b"\x80\x02}]q\x00h\x00aNs.";
            assert_eq!(p.len(), 12);
            let v = loads(p).unwrap();
            let shown = format!("{v:?}");
            assert!(shown.len() < 200, "{shown}");
            assert_eq!(
                v.to_json(&mut Vec::new()),
                Err(PickleError::Malformed(
                    "a dict key that is not a str, int, float, bool or None"
                ))
            );
            // The list itself, as a value: refused as soon as it is met inside itself.
            let v = loads(b"\x80\x02]q\x00h\x00a.").unwrap();
            assert_eq!(
                v.to_json(&mut Vec::new()),
                Err(PickleError::Malformed("a container that contains itself"))
            );
        });
    }

    #[test]
    fn scalar_dict_keys_are_written_as_json_writes_them() {
        // pickle.dumps({1.5: 'a', True: 'b', None: 'c', 2: 'd'}, protocol=2)
        let p = b"\x80\x02}q\x00(G?\xf8\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00aq\x01\x88X\x01\x00\x00\x00bq\x02NX\x01\x00\x00\x00cq\x03K\x02X\x01\x00\x00\x00dq\x04u.";
        assert_eq!(
            loads(p).unwrap().to_json(&mut Vec::new()),
            Ok(json!({"1.5": "a", "true": "b", "null": "c", "2": "d"}))
        );
        // pickle.dumps({(1, 2): 'a'}, protocol=2): a tuple key has no JSON form.
        let p = b"\x80\x02}q\x00K\x01K\x02\x86q\x01X\x01\x00\x00\x00aq\x02s.";
        assert!(loads(p).unwrap().to_json(&mut Vec::new()).is_err());
    }

    /// Finding G: a million nested marks, each closed into a tuple (the result was dropped
    /// recursively, a stack overflow).
    #[test]
    fn a_million_nested_marks_never_recurse() {
        on_small_stack(|| {
            const N: usize = 1_000_000;
            let mut p = vec![b'('; N];
            p.extend(std::iter::repeat_n(b't', N));
            p.push(b'.');
            assert_eq!(loads(&p), Err(PickleError::TooLarge));
            // Marks left on the stack are no nesting.
            let mut p = vec![b'('; N - 1];
            p.extend(b"N.");
            assert_eq!(loads(&p).unwrap().root(), &Node::None);
            // The stack itself is bounded.
            assert_eq!(
                loads(&vec![b'('; MAX_NODES + 1]),
                Err(PickleError::TooLarge)
            );
        });
    }

    /// Finding G: a million nested lists, bottom-up (as pickle writes nesting) and top-down
    /// through the memo (which the check while reading cannot see).
    #[test]
    fn a_million_nested_lists_never_recurse() {
        on_small_stack(|| {
            const N: usize = 1_000_000;
            let mut p = vec![b']'; N];
            p.extend(std::iter::repeat_n(b'a', N - 1));
            p.push(b'.');
            assert_eq!(loads(&p), Err(PickleError::TooLarge));
            // Read (the nesting seen at insertion is 1), refused when converted, formatted and
            // dropped flat.
            let mut p = top_down_chain(N as u32 - 2, 0);
            p.push(b'.');
            let v = loads(&p).unwrap();
            assert_eq!(v.nodes().len(), N - 1);
            assert_eq!(v.to_json(&mut Vec::new()), Err(PickleError::TooLarge));
            assert!(format!("{:?}", v.root()).starts_with("List("));
            drop(v);
        });
    }

    /// Finding G: an emit whose data nests 200k deep.
    #[test]
    fn an_emit_nested_200k_deep_is_refused_and_dropped_flat() {
        on_small_stack(|| {
            const N: usize = 200_000;
            let mut deep = vec![b']'; N];
            deep.extend(std::iter::repeat_n(b'a', N - 1));
            assert_eq!(loads(&emit_with(&deep)), Err(PickleError::TooLarge));
            let v = loads(&emit_with(&top_down_chain(N as u32, 1))).unwrap();
            assert_eq!(v.get("method").and_then(Node::as_str), Some("emit"));
            assert_eq!(v.to_json(&mut Vec::new()), Err(PickleError::TooLarge));
            assert!(!format!("{v:?}").is_empty());
            drop(v);
            // Just under the limit is fine: 128 levels below the message's dict.
            let mut ok = vec![b']'; MAX_DEPTH];
            ok.extend(std::iter::repeat_n(b'a', MAX_DEPTH - 1));
            let v = loads(&emit_with(&ok)).unwrap().to_json(&mut Vec::new());
            assert!(v.is_ok());
            let mut over = vec![b']'; MAX_DEPTH + 1];
            over.extend(std::iter::repeat_n(b'a', MAX_DEPTH));
            assert_eq!(loads(&emit_with(&over)), Err(PickleError::TooLarge));
        });
    }

    /// Finding H: an emit whose data is `L = [L, 10 MB of bytes]`, refused and then freed (it
    /// was a reference cycle, leaked for good). The buffer must be held by nothing once the
    /// pickle is dropped.
    #[test]
    fn a_self_containing_list_is_refused_and_freed() {
        const BIG: usize = 10 << 20;
        let mut data = b"]\x94(h\x01B".to_vec();
        data.extend((BIG as u32).to_le_bytes());
        data.extend(vec![7u8; BIG]);
        data.extend(b"e");
        let p = emit_with(&data);
        for _ in 0..40 {
            let v = loads(&p).unwrap();
            let mut bins = Vec::new();
            assert_eq!(
                v.to_json(&mut bins),
                Err(PickleError::Malformed("a container that contains itself"))
            );
            let big = v
                .nodes()
                .iter()
                .find_map(|n| match n {
                    Node::Bytes(b) => Some(b.clone()),
                    _ => None,
                })
                .unwrap();
            assert_eq!(big.len(), BIG);
            drop(bins);
            drop(v);
            assert!(big.is_unique(), "the buffer outlived its pickle");
        }
    }

    /// A big value referred to over and over through the memo is copied each time it is met:
    /// bounded by MAX_OUTPUT (it was not: 1000 references to 8 MB were 8 GB of attachments).
    #[test]
    fn repeated_references_to_big_values_are_bounded() {
        const BIG: usize = 8 << 20;
        for op in [b'B', b'X'] {
            let mut p = vec![op];
            p.extend((BIG as u32).to_le_bytes());
            p.extend(vec![b'a'; BIG]);
            p.extend(b"\x94(");
            for _ in 0..1000 {
                p.extend(b"h\x00");
            }
            p.extend(b"l.");
            let v = loads(&p).unwrap();
            assert_eq!(v.to_json(&mut Vec::new()), Err(PickleError::TooLarge));
        }
        // A few references are fine, and attachments share the buffer.
        let mut p = b"B".to_vec();
        p.extend((BIG as u32).to_le_bytes());
        p.extend(vec![1u8; BIG]);
        p.extend(b"\x94h\x00\x86.");
        let mut bins = Vec::new();
        let v = loads(&p).unwrap().to_json(&mut bins).unwrap();
        assert_eq!(
            v,
            json!([{"_placeholder": true, "num": 0}, {"_placeholder": true, "num": 1}])
        );
        assert_eq!(bins[0].as_ptr(), bins[1].as_ptr());
    }

    /// A list of 2 references to a list of 2 references ... 12 levels: 13 lists in the pickle,
    /// 8,191 values once expanded.
    #[test]
    fn a_smaller_bound_refuses_what_expands_past_it() {
        let mut p = b"]\x94".to_vec();
        for level in 0..12u8 {
            p.extend([b'h', level, b'h', level, b'\x86', b'\x94']);
        }
        p.push(b'.');
        let py = loads(&p).unwrap();
        assert_eq!(py.nodes().len(), 13);
        assert!(py.to_json(&mut Vec::new()).is_ok());
        assert!(py.to_json_within(&mut Vec::new(), 8_191).is_ok());
        assert_eq!(
            py.to_json_within(&mut Vec::new(), 8_190),
            Err(PickleError::TooLarge)
        );
        // Never above MAX_NODES, whatever is asked.
        assert!(py.to_json_within(&mut Vec::new(), usize::MAX).is_ok());
    }

    #[test]
    fn reading_is_bounded_by_max_nodes() {
        // Values, container slots and memo entries.
        let p = vec![b'N'; MAX_NODES + 1];
        assert_eq!(loads(&p), Err(PickleError::TooLarge));
        let mut p = b"N\x940]".to_vec();
        for _ in 0..=MAX_NODES {
            p.extend(b"h\x00a");
        }
        assert_eq!(loads(&p), Err(PickleError::TooLarge));
        let mut p = b"N".to_vec();
        for k in 0..=MAX_NODES as u32 {
            p.push(b'r');
            p.extend(k.to_le_bytes());
        }
        assert_eq!(loads(&p), Err(PickleError::TooLarge));
    }
}
