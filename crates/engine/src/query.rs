//! The query parameters of an Engine.IO request.

/// The parameters the engine reads from a request's query string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pub eio: Option<String>,
    pub transport: Option<String>,
    pub sid: Option<String>,
    /// v3: the client wants binary packets as base64 in polling responses.
    pub b64: bool,
    /// v3: JSONP polling with this callback index.
    pub jsonp: Option<String>,
}

impl Query {
    pub(crate) fn parse(query: Option<&str>) -> Query {
        let mut q = Query::default();
        for pair in query.unwrap_or("").split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "EIO" => q.eio = Some(percent_decode(v)),
                "transport" => q.transport = Some(percent_decode(v)),
                "sid" => q.sid = Some(percent_decode(v)),
                "b64" => q.b64 = !v.is_empty() && v != "0" && v != "false",
                "j" => q.jsonp = Some(percent_decode(v)),
                _ => {}
            }
        }
        q
    }
}

/// Decodes `%XX` escapes and `+`; invalid escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    if !s.contains(['%', '+']) {
        return s.to_owned();
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
    String::from_utf8_lossy(&out).into_owned()
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
