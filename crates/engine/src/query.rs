//! The query parameters of an Engine.IO request.

use std::borrow::Cow;

/// The parameters the engine reads from a request's query string, borrowed from it unless
/// they had to be decoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Query<'a> {
    pub eio: Option<Cow<'a, str>>,
    pub transport: Option<Cow<'a, str>>,
    pub sid: Option<Cow<'a, str>>,
    /// v3: the client wants binary packets as base64 in polling responses.
    pub b64: bool,
    /// v3: JSONP polling with this callback index.
    pub jsonp: Option<Cow<'a, str>>,
}

impl<'a> Query<'a> {
    pub(crate) fn parse(query: Option<&'a str>) -> Query<'a> {
        let mut q = Query::default();
        let Some(query) = query else {
            return q;
        };
        // Every request goes through this: pairs are split by hand, without the general
        // pattern searchers, and nothing is allocated unless a value has escapes.
        let mut rest = Some(query);
        while let Some(left) = rest {
            let (pair, next) = split_at_byte(left, b'&');
            rest = next;
            let (k, v) = split_at_byte(pair, b'=');
            let v = v.unwrap_or("");
            match k {
                "EIO" => q.eio = Some(decode(v)),
                "transport" => q.transport = Some(decode(v)),
                "sid" => q.sid = Some(decode(v)),
                "b64" => q.b64 = !v.is_empty() && v != "0" && v != "false",
                "j" => q.jsonp = Some(decode(v)),
                _ => {}
            }
        }
        q
    }
}

/// `s` before the first `sep`, and what follows it (if it occurs).
fn split_at_byte(s: &str, sep: u8) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == sep) {
        // `sep` is ASCII: both sides are on character boundaries.
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// Decodes `%XX` escapes and `+`; invalid escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    decode(s).into_owned()
}

/// [`percent_decode`], borrowing `s` when it has nothing to decode.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (
                    b.get(i + 1).and_then(|c| hex(*c)),
                    b.get(i + 2).and_then(|c| hex(*c)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engine_parameters() {
        let q = Query::parse(Some(
            "EIO=4&transport=polling&t=N8hyd6w&sid=abc%2Dd&b64=1&j=3",
        ));
        assert_eq!(q.eio.as_deref(), Some("4"));
        assert_eq!(q.transport.as_deref(), Some("polling"));
        assert_eq!(q.sid.as_deref(), Some("abc-d"));
        assert!(q.b64);
        assert_eq!(q.jsonp.as_deref(), Some("3"));
        // Values without escapes are borrowed from the query, not copied.
        assert!(matches!(q.transport, Some(Cow::Borrowed("polling"))));
        assert!(matches!(q.sid, Some(Cow::Owned(_))));
        assert_eq!(Query::parse(None), Query::default());
        let q = Query::parse(Some("sid=a=b&EIO=3&transport"));
        assert_eq!(q.sid.as_deref(), Some("a=b"));
        assert_eq!(q.eio.as_deref(), Some("3"));
        assert_eq!(q.transport.as_deref(), Some(""));
    }

    #[test]
    fn tolerates_junk() {
        let q = Query::parse(Some("&&=&EIO&%zz=1&sid=%"));
        assert_eq!(q.eio.as_deref(), Some(""));
        assert_eq!(q.sid.as_deref(), Some("%"));
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a+b%20c"), "a b c");
    }
}
