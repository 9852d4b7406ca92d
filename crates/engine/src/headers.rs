//! The headers of a handshake, as a session keeps them for its whole life.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The headers of a session's handshake request: read-only, every name and value in one
/// buffer.
///
/// A session keeps its handshake's headers as long as it lives (the layer above reads them
/// for auth, origin checks, proxies' addresses, admin tools). An `http::HeaderMap` costs about
/// 100 bytes a header on top of the text, with room for a third more headers than it holds: a
/// browser's dozen headers take ~2.5 KB of it, on every idle connection. This keeps the text
/// and 12 bytes a header.
///
/// A value marked sensitive (`HeaderValue::set_sensitive`, as tower-http's
/// `SetSensitiveRequestHeaders` does) stays marked: `Debug` shows it as `Sensitive`, and
/// [`Headers::to_header_map`] marks it again.
///
/// Names are lowercase (as HTTP/1 parsers give them) and looked up without regard to case;
/// a name may have several values, in the order the request sent them. Headers are kept in the
/// order of the parser's `HeaderMap` (a name's values together).
///
/// ```
/// use socketlet_engine::Headers;
/// let mut map = http::HeaderMap::new();
/// map.insert("authorization", "Bearer t0k3n".parse().unwrap());
/// map.append("x-forwarded-for", "10.0.0.1".parse().unwrap());
/// map.append("x-forwarded-for", "10.0.0.2".parse().unwrap());
/// let headers = Headers::from(&map);
/// assert_eq!(headers.get("Authorization"), Some("Bearer t0k3n"));
/// assert_eq!(headers.get_all("x-forwarded-for").collect::<Vec<_>>(), ["10.0.0.1", "10.0.0.2"]);
/// assert!(!headers.contains_key("cookie"));
/// ```
#[derive(Clone, Default)]
pub struct Headers {
    text: Bytes,
    entries: Box<[Entry]>,
}

/// Where one header's name and value stand in the text: the name at `start`, the value right
/// after it. The high bit of `name_len` marks a sensitive value ([`SENSITIVE`]).
#[derive(Clone, Copy)]
struct Entry {
    start: u32,
    name_len: u32,
    value_len: u32,
}

/// The bit of [`Entry::name_len`] that marks a sensitive value (no name is 2 GiB long).
const SENSITIVE: u32 = 1 << 31;

impl Entry {
    fn name_len(&self) -> usize {
        (self.name_len & !SENSITIVE) as usize
    }

    fn sensitive(&self) -> bool {
        self.name_len & SENSITIVE != 0
    }
}

/// Where [`Headers::append_to`] put one header: its start, the lengths of its name and value,
/// and whether the value is sensitive.
pub(crate) type Span = (usize, usize, usize, bool);

impl Headers {
    /// Copies `map`'s names and values after whatever `buf` holds already (the handshake's URI
    /// shares the buffer), and says where each went: positions in `buf` as a whole, which the
    /// caller freezes and hands to [`Headers::from_spans`].
    pub(crate) fn append_to(map: &HeaderMap, buf: &mut BytesMut) -> Vec<Span> {
        let mut spans = Vec::with_capacity(map.len());
        for (name, value) in map {
            let start = buf.len();
            buf.extend_from_slice(name.as_str().as_bytes());
            buf.extend_from_slice(value.as_bytes());
            spans.push((
                start,
                name.as_str().len(),
                value.len(),
                value.is_sensitive(),
            ));
        }
        spans
    }

    /// The headers at `spans` (from [`Headers::append_to`]) of `text`. A span past `text`'s end,
    /// or past 4 GiB, or a name of 2 GiB or more (no request parser accepts such a head) is left
    /// out.
    pub(crate) fn from_spans(text: Bytes, spans: &[Span]) -> Headers {
        let inside = |&&(start, name_len, value_len, _): &&Span| {
            start
                .checked_add(name_len)
                .and_then(|n| n.checked_add(value_len))
                .is_some_and(|end| end <= text.len())
        };
        let entries = spans
            .iter()
            .filter(inside)
            .filter_map(|&(start, name_len, value_len, sensitive)| {
                let name_len = u32::try_from(name_len)
                    .ok()
                    .filter(|n| n & SENSITIVE == 0)?;
                Some(Entry {
                    start: u32::try_from(start).ok()?,
                    name_len: if sensitive {
                        name_len | SENSITIVE
                    } else {
                        name_len
                    },
                    value_len: u32::try_from(value_len).ok()?,
                })
            })
            .collect();
        Headers { text, entries }
    }

    fn name_of(&self, e: &Entry) -> &[u8] {
        let start = e.start as usize;
        self.text
            .get(start..start + e.name_len())
            .unwrap_or_default()
    }

    fn value_of(&self, e: &Entry) -> &[u8] {
        let start = e.start as usize + e.name_len();
        let end = start + e.value_len as usize;
        self.text.get(start..end).unwrap_or_default()
    }

    fn values<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s [u8]> + use<'s, 'n> {
        self.entries
            .iter()
            .filter(move |e| self.name_of(e).eq_ignore_ascii_case(name.as_bytes()))
            .map(|e| self.value_of(e))
    }

    /// The first value of `name`, as text; `None` when the request had no such header, or its
    /// value is not UTF-8 (see [`Headers::get_bytes`]).
    pub fn get(&self, name: impl AsRef<str>) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `name`, as the request sent it.
    pub fn get_bytes(&self, name: impl AsRef<str>) -> Option<&[u8]> {
        self.values(name.as_ref()).next()
    }

    /// Every value of `name` that is UTF-8, in the order the request sent them (for a
    /// `HeaderName`, pass `name.as_str()`).
    pub fn get_all<'s, 'n>(&'s self, name: &'n str) -> impl Iterator<Item = &'s str> + use<'s, 'n> {
        self.values(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
    }

    /// Whether the request had a header `name`.
    pub fn contains_key(&self, name: impl AsRef<str>) -> bool {
        self.values(name.as_ref()).next().is_some()
    }

    /// Every header: its name (lowercase) and value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|e| {
            let name = std::str::from_utf8(self.name_of(e)).unwrap_or_default();
            (name, self.value_of(e))
        })
    }

    /// How many headers (a name sent twice counts twice).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The headers as an `http::HeaderMap`, for code that wants that type (a copy; sensitive
    /// values are marked sensitive again).
    pub fn to_header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.len());
        for e in self.entries.iter() {
            if let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(self.name_of(e)),
                HeaderValue::from_bytes(self.value_of(e)),
            ) {
                value.set_sensitive(e.sensitive());
                map.append(name, value);
            }
        }
        map
    }
}

impl From<&HeaderMap> for Headers {
    fn from(map: &HeaderMap) -> Headers {
        let mut buf = BytesMut::new();
        let spans = Headers::append_to(map, &mut buf);
        Headers::from_spans(buf.freeze(), &spans)
    }
}

/// As `HeaderMap`'s: every header, a sensitive value shown as `Sensitive`.
impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for e in self.entries.iter() {
            let name = String::from_utf8_lossy(self.name_of(e));
            if e.sensitive() {
                map.entry(&name, &"Sensitive");
            } else {
                map.entry(&name, &String::from_utf8_lossy(self.value_of(e)));
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn names_are_found_whatever_their_case_and_values_keep_their_order() {
        let h = Headers::from(&map(&[
            ("x-token", b"a"),
            ("origin", b"http://example.com"),
            ("x-token", b"b"),
        ]));
        assert_eq!(h.len(), 3);
        assert_eq!(h.get("ORIGIN"), Some("http://example.com"));
        assert_eq!(h.get(http::header::ORIGIN), Some("http://example.com"));
        assert_eq!(h.get_all("X-Token").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(h.get("x-tok"), None);
        assert!(!h.contains_key("x-tokens"));
        let names: Vec<_> = h.iter().map(|(n, _)| n).collect();
        // HeaderMap groups a name's values; the order of names is the map's.
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn a_value_that_is_not_utf8_is_kept_as_bytes() {
        let h = Headers::from(&map(&[("x-raw", &[b'a', 0xE9, b'b'])]));
        assert_eq!(h.get("x-raw"), None);
        assert_eq!(h.get_bytes("x-raw"), Some(&[b'a', 0xE9, b'b'][..]));
        assert!(h.contains_key("x-raw"));
        assert_eq!(h.get_all("x-raw").count(), 0);
        assert_eq!(h.to_header_map()["x-raw"].as_bytes(), &[b'a', 0xE9, b'b']);
    }

    #[test]
    fn a_sensitive_value_stays_marked_and_out_of_debug_output() {
        let mut original = map(&[("authorization", b"Bearer s3cret"), ("accept", b"*/*")]);
        if let Some(v) = original.get_mut("authorization") {
            v.set_sensitive(true);
        }
        let h = Headers::from(&original);
        assert_eq!(h.get("authorization"), Some("Bearer s3cret"));
        let shown = format!("{h:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains(r#""authorization": "Sensitive""#), "{shown}");
        assert!(shown.contains(r#""accept": "*/*""#), "{shown}");
        let back = h.to_header_map();
        assert!(back["authorization"].is_sensitive());
        assert!(!back["accept"].is_sensitive());
        assert_eq!(back, original);
    }

    #[test]
    fn spans_outside_the_text_are_left_out() {
        let text = Bytes::from_static(b"ab");
        let spans = [
            (0, 1, 1, false),
            (1, 1, 5, false),
            (usize::MAX, 2, 2, false),
        ];
        let h = Headers::from_spans(text, &spans);
        assert_eq!(h.len(), 1);
        assert_eq!(h.get("a"), Some("b"));
    }

    #[test]
    fn a_round_trip_through_a_header_map_keeps_everything() {
        let original = map(&[
            ("a", b"1"),
            ("b", b""),
            ("a", b"2"),
            ("cookie", b"s=1; t=2"),
        ]);
        let back = Headers::from(&original).to_header_map();
        assert_eq!(back, original);
        assert!(Headers::default().is_empty());
        assert_eq!(
            format!("{:?}", Headers::from(&map(&[("a", b"1")]))),
            r#"{"a": "1"}"#
        );
    }
}
