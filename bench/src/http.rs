//! A minimal HTTP/1.1 client for long-polling: keep-alive, Content-Length (or chunked) bodies.

use crate::net::{find, read_some, write_all, Target};
use crate::BoxError;
use std::io;
use tokio::net::TcpStream;

/// One keep-alive connection; it reconnects when the server closed it between requests.
#[derive(Debug)]
pub(crate) struct HttpConn {
    target: Target,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// A response: its status and body.
#[derive(Debug)]
pub(crate) struct Response {
    /// The status code.
    pub(crate) status: u16,
    /// The body, decoded from chunked if need be.
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The body as text, or an error naming the status when it is not 200.
    pub(crate) fn text_ok(self) -> Result<String, BoxError> {
        let body = String::from_utf8(self.body)?;
        if self.status != 200 {
            return Err(format!("HTTP {}: {:.120}", self.status, body).into());
        }
        Ok(body)
    }
}

enum Failure {
    /// The connection was found closed before any byte of the answer: safe to retry.
    Stale(io::Error),
    Other(BoxError),
}

impl HttpConn {
    /// A connection to `target`, opened at the first request.
    pub(crate) fn new(target: Target) -> HttpConn {
        HttpConn {
            target,
            stream: None,
            buf: Vec::new(),
        }
    }

    /// The server.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// `GET path`.
    pub(crate) async fn get(&mut self, path: &str) -> Result<Response, BoxError> {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n\r\n",
            self.target.host()
        );
        self.request(head.into_bytes()).await
    }

    /// `POST path` with a text body.
    pub(crate) async fn post(&mut self, path: &str, body: &str) -> Result<Response, BoxError> {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n\
             Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
            self.target.host(),
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body.as_bytes());
        self.request(req).await
    }

    /// `POST path` with a JSON body and a bearer token.
    pub(crate) async fn post_json(
        &mut self,
        path: &str,
        bearer: &str,
        body: &str,
    ) -> Result<Response, BoxError> {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n\
             Authorization: Bearer {bearer}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            self.target.host(),
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body.as_bytes());
        self.request(req).await
    }

    async fn request(&mut self, req: Vec<u8>) -> Result<Response, BoxError> {
        let reused = self.stream.is_some();
        match self.try_request(&req).await {
            Ok(r) => Ok(r),
            Err(Failure::Stale(e)) if reused => {
                // The server closed the idle keep-alive connection: open a new one, once.
                self.stream = None;
                match self.try_request(&req).await {
                    Ok(r) => Ok(r),
                    Err(Failure::Stale(e2)) => Err(format!("{e}; then {e2}").into()),
                    Err(Failure::Other(e2)) => Err(e2),
                }
            }
            Err(Failure::Stale(e)) => Err(e.into()),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    async fn try_request(&mut self, req: &[u8]) -> Result<Response, Failure> {
        if self.stream.is_none() {
            let s = self
                .target
                .connect()
                .await
                .map_err(|e| Failure::Other(e.into()))?;
            self.stream = Some(s);
            self.buf.clear();
        }
        let result = self.exchange(req).await;
        if result.is_err() {
            self.stream = None;
        }
        // Do not keep a large buffer around while idle.
        if self.buf.is_empty() && self.buf.capacity() > 16 * 1024 {
            self.buf = Vec::new();
        }
        result
    }

    async fn exchange(&mut self, req: &[u8]) -> Result<Response, Failure> {
        let stream = match &self.stream {
            Some(s) => s,
            None => return Err(Failure::Other("not connected".into())),
        };
        let stale = |e: io::Error| match e.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => Failure::Stale(e),
            _ => Failure::Other(e.into()),
        };
        write_all(stream, req).await.map_err(stale)?;
        // The head.
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = read_some(stream, &mut self.buf).await.map_err(stale)?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    Failure::Stale(io::ErrorKind::UnexpectedEof.into())
                } else {
                    Failure::Other("connection closed inside a response head".into())
                });
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::Other(format!("bad status line: {head:.80}").into()))?;
        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        self.buf.drain(..head_end);
        let more = |e: io::Error| Failure::Other(e.into());
        let body = if chunked {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    if read_some(stream, &mut self.buf).await.map_err(more)? == 0 {
                        return Err(Failure::Other("EOF in a chunk size".into()));
                    }
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|e| Failure::Other(format!("bad chunk size: {e}").into()))?;
                let need = line_end + 2 + size + 2;
                while self.buf.len() < need {
                    if read_some(stream, &mut self.buf).await.map_err(more)? == 0 {
                        return Err(Failure::Other("EOF in a chunk".into()));
                    }
                }
                body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..need);
                if size == 0 {
                    break body;
                }
            }
        } else if let Some(len) = content_length {
            while self.buf.len() < len {
                if read_some(stream, &mut self.buf).await.map_err(more)? == 0 {
                    return Err(Failure::Other("EOF in a body".into()));
                }
            }
            self.buf.drain(..len).collect()
        } else if status == 204 || status == 304 {
            Vec::new()
        } else {
            // Delimited by the end of the connection.
            while read_some(stream, &mut self.buf).await.map_err(more)? > 0 {}
            close = true;
            std::mem::take(&mut self.buf)
        };
        if close {
            self.stream = None;
        }
        Ok(Response { status, body })
    }
}
