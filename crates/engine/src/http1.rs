//! The HTTP/1.1 connection that [`serve`](crate::serve) runs for each client.
//!
//! hyper 1's server keeps two 8 KiB buffers for the whole life of a connection (the one it
//! reads into and the one it writes response heads into), and has no setting that makes them
//! smaller. A long-polling client holds its connection open with a GET parked between packets,
//! so those 16 KiB were most of what a polling session cost (20.6 KiB by the benchmark's idle
//! polling cell). This connection keeps no buffer while it waits: a request is read through a
//! buffer let go once the request is parsed (unless the client already sent more, pipelined),
//! and a response head is written from a buffer made for it and dropped after.
//!
//! What it speaks: HTTP/1.0 and 1.1, keep-alive and pipelining, request and response bodies
//! framed by `Content-Length` or chunked, `Expect: 100-continue`, `HEAD`, and the upgrade: after
//! a 101 answer to a request that asked for one, the engine's WebSocket takes the connection
//! (with whatever bytes followed the request). A client that closes its connection while its
//! request is being answered has the answer dropped (the engine sees a parked GET go away), as
//! hyper does.
//!
//! What it refuses, with a status and the connection closed: a head that does not parse (400), a
//! head over [`MAX_HEAD`] bytes or with over [`MAX_HEADERS`] headers (431), a transfer coding
//! other than chunked (501), a `Content-Length` that is not one number (400), both framings at
//! once (400). A head not complete [`HEAD_TIMEOUT`] after the connection was ready for it closes
//! the connection without an answer.

use crate::service::Servable;
use crate::socket::RemoteAddr;
use crate::sync::lock;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// The largest request head (request line and headers) read: 16 KiB, Node's default.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most headers a request may have: 100, hyper's default.
pub const MAX_HEADERS: usize = 100;
/// How long a request head may take to arrive once the connection is ready for it: 30 s (as
/// hyper's `header_read_timeout`, which `serve` used before). It also ends a keep-alive
/// connection left idle: a proxy that keeps idle connections to socketlet (nginx's `keepalive`
/// in an `upstream`) should let them go sooner (`keepalive_timeout` under 30 s), or a request
/// it sends as one closes may be lost.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes read from the connection at once (on the stack, then copied out).
const READ_CHUNK: usize = 4096;
/// A response body's first chunk up to this size is written with the head, in one write.
const WRITE_WITH_HEAD: usize = 16 * 1024;
/// How long, and for how many bytes, a connection closed by the server still reads what the
/// client sends (see `Conn::close`).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
/// The longest line of chunked framing (a chunk size with its extensions, a trailer).
const MAX_CHUNK_LINE: usize = 4096;

/// Anything a connection can be served over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connection handed over after a 101: plain TCP (which the engine's WebSocket writes to
/// directly), or anything else boxed; with the bytes that were read past the request.
pub(crate) struct Upgraded {
    pub(crate) io: UpgradedIo,
    pub(crate) pre: Bytes,
}

/// The connection of an [`Upgraded`].
pub(crate) enum UpgradedIo {
    Tcp(TcpStream),
    Other(Box<dyn Io>),
}

impl UpgradedIo {
    /// Takes the connection out of `slot`: a TCP stream as one, anything else boxed. `None`
    /// only when the slot was empty.
    fn take<I: Io>(slot: &mut Option<I>) -> Option<UpgradedIo> {
        let any: &mut dyn std::any::Any = slot;
        if let Some(tcp) = any.downcast_mut::<Option<TcpStream>>() {
            return tcp.take().map(UpgradedIo::Tcp);
        }
        slot.take()
            .map(|io| UpgradedIo::Other(Box::new(io) as Box<dyn Io>))
    }
}

/// Moves what fits of `pre` (bytes read before, returned first) into `buf`.
pub(crate) fn read_from(pre: &mut Bytes, buf: &mut ReadBuf<'_>) {
    let n = pre.len().min(buf.remaining());
    buf.put_slice(&pre[..n]);
    pre.advance(n);
}

/// The upgrade a request asked for, in its extensions: resolved with the connection once the
/// 101 is written; dropped (an error to the receiver) when the answer is anything else.
#[derive(Clone)]
pub(crate) struct PendingUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl PendingUpgrade {
    /// The receiving end (once).
    pub(crate) fn take(&self) -> Option<oneshot::Receiver<Upgraded>> {
        lock(&self.0).take()
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pre.is_empty() {
            read_from(&mut this.pre, buf);
            return Poll::Ready(Ok(()));
        }
        match &mut this.io {
            UpgradedIo::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            UpgradedIo::Other(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            UpgradedIo::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            UpgradedIo::Other(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            UpgradedIo::Tcp(io) => Pin::new(io).poll_flush(cx),
            UpgradedIo::Other(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            UpgradedIo::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            UpgradedIo::Other(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// Why a request body ended early: the connection closed or broke, or its chunked framing
/// did not parse. The connection it came on is closed after the answer.
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestBodyError {
    why: &'static str,
}

impl std::fmt::Display for RequestBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request body: {}", self.why)
    }
}

impl std::error::Error for RequestBodyError {}

/// The body of a request read by [`serve`](crate::serve): whole when all of it came with the
/// head (it has a `Content-Length`, and was read in the same reads as the head: the usual
/// polling POST), else streamed from the connection as the service reads it, one chunk of at
/// most 16 KiB at a time. A streamed body comes as slowly as the client sends it: the service
/// bounds the time it waits (the engine's `max_body_time`).
#[derive(Debug)]
pub struct RequestBody {
    kind: BodyKind,
}

#[derive(Debug)]
enum BodyKind {
    Whole(Option<Bytes>),
    Streamed { pipe: Arc<Pipe>, len: Option<u64> },
}

impl RequestBody {
    /// An empty body.
    pub fn empty() -> RequestBody {
        RequestBody {
            kind: BodyKind::Whole(None),
        }
    }

    fn whole(bytes: Bytes) -> RequestBody {
        RequestBody {
            kind: BodyKind::Whole((!bytes.is_empty()).then_some(bytes)),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        match &mut self.get_mut().kind {
            BodyKind::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            BodyKind::Streamed { pipe, len } => {
                let chunk = ready!(pipe.poll_take(cx));
                if let (Some(Ok(bytes)), Some(left)) = (&chunk, len.as_mut()) {
                    *left = left.saturating_sub(bytes.len() as u64);
                }
                Poll::Ready(chunk.map(|c| c.map(Frame::data)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Whole(bytes) => bytes.is_none(),
            BodyKind::Streamed { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            BodyKind::Streamed { len: Some(len), .. } => SizeHint::with_exact(*len),
            BodyKind::Streamed { len: None, .. } => SizeHint::default(),
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let BodyKind::Streamed { pipe, .. } = &self.kind {
            pipe.update(|st| {
                st.reader_gone = true;
                st.writer.take()
            });
        }
    }
}

/// A streamed body's hand-over between the connection (which reads) and the body (which the
/// service polls): one chunk at a time, read only when the body asks for one.
#[derive(Debug, Default)]
struct Pipe(Mutex<PipeState>);

#[derive(Debug, Default)]
struct PipeState {
    chunk: Option<Result<Bytes, RequestBodyError>>,
    ended: bool,
    /// Ended before its end: the reader gets an error once it has taken the last chunk.
    abandoned: bool,
    wanted: bool,
    reader_gone: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, RequestBodyError>>> {
        let mut st = lock(&self.0);
        if let Some(chunk) = st.chunk.take() {
            return Poll::Ready(Some(chunk));
        }
        if st.ended {
            return Poll::Ready(std::mem::take(&mut st.abandoned).then(|| {
                Err(RequestBodyError {
                    why: "the request was answered before its body was read",
                })
            }));
        }
        st.wanted = true;
        st.reader = Some(cx.waker().clone());
        let writer = st.writer.take();
        drop(st);
        if let Some(w) = writer {
            w.wake();
        }
        Poll::Pending
    }

    /// Ends the body where it is, for a reader still holding it after the answer (or after the
    /// connection went away): once it has taken what was read, it reads an error.
    fn abandon(&self) {
        self.update(|st| {
            if !st.ended {
                st.ended = true;
                st.abandoned = true;
            }
            st.reader.take()
        });
    }

    /// Ends the body normally, leaving a chunk not yet taken to be taken.
    fn finish(&self) {
        self.update(|st| {
            st.ended = true;
            st.reader.take()
        });
    }

    /// Gives the reader a chunk (or the end, or an error); `last` ends the body after it.
    fn put(&self, chunk: Option<Result<Bytes, RequestBodyError>>, last: bool) {
        self.update(|st| {
            st.chunk = chunk;
            st.wanted = false;
            st.ended |= last;
            st.reader.take()
        });
    }

    /// Changes the state under the lock, then wakes the side `change` returns (never under
    /// the lock).
    fn update(&self, change: impl FnOnce(&mut PipeState) -> Option<Waker>) {
        let waker = change(&mut lock(&self.0));
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// How a request's body is framed, and how much of it is left.
enum BodyReader {
    Length(u64),
    Chunked(ChunkState),
}

#[derive(Clone, Copy)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// What the body's framing made of the bytes read so far.
enum Decoded {
    Data(Bytes),
    NeedMore,
    End,
}

/// The position of the first `\n` in `buf`, and the line before it without its `\r`; `None`
/// while there is none. Chunked framing ends its lines with CRLF, and a bare LF is refused:
/// parsers that disagree on line ends are how requests are smuggled past proxies.
fn line(buf: &[u8]) -> Result<Option<(usize, &[u8])>, &'static str> {
    let Some(at) = buf.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    match buf[..at].strip_suffix(b"\r") {
        Some(line) => Ok(Some((at, line))),
        None => Err("a line of chunked framing ends without CR"),
    }
}

impl BodyReader {
    /// The bytes the framing still expects, when it knows (a length, or a chunk's rest).
    fn left(&self) -> Option<u64> {
        match self {
            BodyReader::Length(left) => Some(*left),
            BodyReader::Chunked(ChunkState::Data(left)) => Some(*left),
            BodyReader::Chunked(_) => None,
        }
    }

    /// Whether the body ends within `buf` with nothing of it left unread (its terminating
    /// chunk may be there still). What it reads of `buf` is lost: only for a body let go.
    fn ends_in(&mut self, buf: &mut BytesMut) -> bool {
        matches!(self.decode(buf), Ok(Decoded::End))
    }

    /// Takes what the framing allows out of `buf`.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, &'static str> {
        loop {
            match self {
                BodyReader::Length(0) => return Ok(Decoded::End),
                BodyReader::Length(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = (*left).min(buf.len() as u64) as usize;
                    *left -= n as u64;
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                BodyReader::Chunked(state) => match *state {
                    ChunkState::Size => {
                        let Some((at, text)) = line(buf)? else {
                            return if buf.len() > MAX_CHUNK_LINE {
                                Err("chunk size line too long")
                            } else {
                                Ok(Decoded::NeedMore)
                            };
                        };
                        let size = parse_chunk_size(text).ok_or("bad chunk size")?;
                        buf.advance(at + 1);
                        *state = if size == 0 {
                            ChunkState::Trailers
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    ChunkState::Data(left) => {
                        if buf.is_empty() {
                            return Ok(Decoded::NeedMore);
                        }
                        let n = left.min(buf.len() as u64) as usize;
                        *state = if n as u64 == left {
                            ChunkState::DataEnd
                        } else {
                            ChunkState::Data(left - n as u64)
                        };
                        return Ok(Decoded::Data(buf.split_to(n).freeze()));
                    }
                    ChunkState::DataEnd => {
                        let Some((at, text)) = line(buf)? else {
                            return if buf.len() > 2 {
                                Err("chunk not followed by CRLF")
                            } else {
                                Ok(Decoded::NeedMore)
                            };
                        };
                        if !text.is_empty() {
                            return Err("chunk longer than its size");
                        }
                        buf.advance(at + 1);
                        *state = ChunkState::Size;
                    }
                    ChunkState::Trailers => {
                        let Some((at, text)) = line(buf)? else {
                            return if buf.len() > MAX_CHUNK_LINE {
                                Err("trailer line too long")
                            } else {
                                Ok(Decoded::NeedMore)
                            };
                        };
                        let last = text.is_empty();
                        buf.advance(at + 1);
                        if last {
                            *self = BodyReader::Length(0);
                            return Ok(Decoded::End);
                        }
                    }
                },
            }
        }
    }
}

/// A chunk size: hexadecimal digits (at most 15), then optional blanks and extensions.
fn parse_chunk_size(text: &[u8]) -> Option<u64> {
    let digits = text.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return None;
    }
    let rest = &text[digits..];
    let blanks = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = &rest[blanks..];
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return None;
    }
    let hex = std::str::from_utf8(&text[..digits]).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

/// Why a request was refused before the service saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Malformed,
    TooLarge,
    UnknownCoding,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Refusal::Malformed => StatusCode::BAD_REQUEST,
            Refusal::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::UnknownCoding => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

/// A parsed request head, with what the connection needs to know of it.
struct Head {
    request: Request<()>,
    body: Option<BodyReader>,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: bool,
}

/// Whether the comma-separated `name` headers hold `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Which of the headers that frame a request (or ask to keep or switch its connection) a head
/// has: noted while its map is built, so that a request without them (most) looks none up.
#[derive(Default)]
struct Seen {
    content_length: bool,
    transfer_encoding: bool,
    connection: bool,
    expect: bool,
    upgrade: bool,
}

impl Seen {
    fn note(&mut self, name: &HeaderName) {
        // Standard names compare as small enums.
        if name == header::CONTENT_LENGTH {
            self.content_length = true;
        } else if name == header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
        } else if name == header::CONNECTION {
            self.connection = true;
        } else if name == header::EXPECT {
            self.expect = true;
        } else if name == header::UPGRADE {
            self.upgrade = true;
        }
    }
}

/// Parses a request head at the start of `buf`; `None` while it is incomplete. The head's
/// bytes are taken out of `buf` (the request's URI and header values are slices of them).
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, Refusal> {
    // Where each part lies in `buf`: the parser's slices borrow it, the request keeps slices
    // of the head once it is split off.
    let mut spans = [(0u16, 0u16, 0u16, 0u16); MAX_HEADERS];
    let (len, method, path, version, count) = {
        // Not initialised: the parser fills what it hands back (an array of 100 empty
        // headers, 3.2 KB, was written for every request).
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
            Err(_) => return Err(Refusal::Malformed),
        };
        if len > MAX_HEAD {
            return Err(Refusal::TooLarge);
        }
        let base = buf.as_ptr() as usize;
        let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u16;
        let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
            .map_err(|_| Refusal::Malformed)?;
        let path = req.path.unwrap_or("").as_bytes();
        let path = (offset(path), offset(path) + path.len() as u16);
        let version = match req.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        for (span, h) in spans.iter_mut().zip(req.headers.iter()) {
            let name = offset(h.name.as_bytes());
            let value = offset(h.value);
            *span = (
                name,
                name + h.name.len() as u16,
                value,
                value + h.value.len() as u16,
            );
        }
        (len, method, path, version, req.headers.len())
    };
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path.0 as usize..path.1 as usize))
        .map_err(|_| Refusal::Malformed)?;
    let mut headers = HeaderMap::with_capacity(count);
    let mut seen = Seen::default();
    for &(ns, ne, vs, ve) in &spans[..count] {
        let name = HeaderName::from_bytes(&head[ns as usize..ne as usize])
            .map_err(|_| Refusal::Malformed)?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs as usize..ve as usize))
            .map_err(|_| Refusal::Malformed)?;
        seen.note(&name);
        headers.append(name, value);
    }

    let body = if seen.transfer_encoding {
        if version == Version::HTTP_10 || seen.content_length {
            return Err(Refusal::Malformed);
        }
        // The last coding must be chunked; anything before it is not one this server decodes.
        let codings: Vec<&str> = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .map(|v| v.to_str().map_err(|_| Refusal::Malformed))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case("chunked") => {
                Some(BodyReader::Chunked(ChunkState::Size))
            }
            _ => return Err(Refusal::UnknownCoding),
        }
    } else if seen.content_length {
        let mut length = None;
        for v in headers.get_all(header::CONTENT_LENGTH) {
            for part in v.to_str().map_err(|_| Refusal::Malformed)?.split(',') {
                let part = part.trim();
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Refusal::Malformed);
                }
                let n: u64 = part.parse().map_err(|_| Refusal::Malformed)?;
                if length.is_some_and(|l| l != n) {
                    return Err(Refusal::Malformed);
                }
                length = Some(n);
            }
        }
        length.filter(|&n| n > 0).map(BodyReader::Length)
    } else {
        None
    };

    let keep_alive = match (version, seen.connection) {
        (Version::HTTP_10, true) => has_token(&headers, header::CONNECTION, "keep-alive"),
        (_, true) => !has_token(&headers, header::CONNECTION, "close"),
        (version, false) => version != Version::HTTP_10,
    };
    let expect_continue = version == Version::HTTP_11
        && seen.expect
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let upgrade =
        seen.upgrade && seen.connection && has_token(&headers, header::CONNECTION, "upgrade");

    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(Head {
        request: Request::from_parts(parts, ()),
        body,
        keep_alive,
        expect_continue,
        upgrade,
    }))
}

/// Reads once from `io` into `buf`, at most `max` bytes (through a buffer on the stack, so
/// nothing of the read's size is kept while waiting). Ready with the count; 0 at the end.
fn poll_read_more<I: Io>(
    io: &mut I,
    buf: &mut BytesMut,
    max: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    // Not zeroed: the reader writes what it fills, and only that is read back.
    let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let len = max.clamp(1, READ_CHUNK);
    let mut read = ReadBuf::uninit(&mut chunk[..len]);
    ready!(Pin::new(io).poll_read(cx, &mut read))?;
    buf.extend_from_slice(read.filled());
    Poll::Ready(Ok(read.filled().len()))
}

/// A body being streamed to the service: where it goes, its framing, and what is left of the
/// `100 Continue` owed to a client that waits for one before sending it. Dropped (the answer
/// came, the connection went away, or its future was dropped), it ends the body for a reader
/// still holding it: an error once that has taken what was read.
struct Feed {
    pipe: Arc<Pipe>,
    reader: BodyReader,
    continue_left: usize,
    continue_flush: bool,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.pipe.abandon();
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The block a streamed body is read into: its chunks are consecutive slices of one block (a
/// service that keeps a body's chunks until its end, as the engine does, holds a few large
/// blocks rather than many small ones, which the allocator gives back to the system when
/// they are freed; 4 KiB chunks read each into its own buffer left a burst of large bodies'
/// memory in the heap afterwards).
const BODY_BLOCK: usize = 256 * 1024;

/// The most a streamed body's read takes at once (16 KiB): what is read runs ahead of what the
/// service has accepted (and counted against its bounds) by no more.
const BODY_READ: usize = 16 * 1024;

/// Reads once for a streamed body into `buf`, at most [`BODY_READ`] bytes and no more than the
/// `left` bytes the framing still expects; makes a block of [`BODY_BLOCK`] (no larger than
/// `left`) when less than 4 KiB of room is left.
fn poll_read_body<I: Io>(
    io: &mut I,
    buf: &mut BytesMut,
    left: Option<u64>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let left = left.map_or(usize::MAX, |l| {
        usize::try_from(l).unwrap_or(usize::MAX).max(1)
    });
    if buf.capacity() - buf.len() < READ_CHUNK {
        buf.reserve(left.clamp(READ_CHUNK, BODY_BLOCK));
    }
    let room = (buf.capacity() - buf.len()).min(BODY_READ).min(left);
    let start = buf.len();
    buf.resize(start + room, 0);
    let mut read = ReadBuf::new(&mut buf[start..]);
    let polled = Pin::new(io).poll_read(cx, &mut read);
    let n = read.filled().len();
    buf.truncate(start + n);
    ready!(polled)?;
    Poll::Ready(Ok(n))
}

/// One connection's state between requests.
struct Conn<I> {
    io: I,
    /// Bytes read and not yet used: empty (and unallocated) between requests, unless the
    /// client pipelined.
    buf: BytesMut,
}

/// How the wait for an answer ended.
enum Waited<R> {
    Answered(R),
    /// The client closed its connection (or it broke) before the answer.
    Gone,
}

/// How feeding a streamed body ended.
enum Fed {
    /// Read to its end.
    Whole,
    /// The service let the body go before its end.
    Dropped,
    /// The connection ended or the framing was bad.
    Broken,
}

impl<I: Io> Conn<I> {
    async fn read_more(&mut self, max: usize) -> io::Result<usize> {
        poll_fn(|cx| poll_read_more(&mut self.io, &mut self.buf, max, cx)).await
    }

    /// Lets go of the buffer once it holds nothing (its allocation may be shared with the
    /// request's head, which the service may keep).
    fn release(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// Reads the next request head. `Ok(None)`: the client closed (or broke) the connection.
    async fn read_head(&mut self) -> Result<Option<Head>, Refusal> {
        loop {
            if !self.buf.is_empty() {
                if let Some(head) = parse_head(&mut self.buf)? {
                    return Ok(Some(head));
                }
                if self.buf.len() >= MAX_HEAD {
                    return Err(Refusal::TooLarge);
                }
            }
            match self.read_more(MAX_HEAD - self.buf.len()).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// Feeds a streamed body one chunk each time it asks. Ready when the body is done with.
    fn poll_feed(&mut self, feed: &mut Feed, cx: &mut Context<'_>) -> Poll<Fed> {
        let broken = |pipe: &Pipe, why| {
            pipe.put(Some(Err(RequestBodyError { why })), true);
            Poll::Ready(Fed::Broken)
        };
        loop {
            {
                let mut st = lock(&feed.pipe.0);
                if st.reader_gone {
                    return Poll::Ready(Fed::Dropped);
                }
                if st.chunk.is_some() || !st.wanted {
                    st.writer = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
            // The body is wanted: a client waiting for leave to send it gets it now (as with
            // hyper, a service that answers without reading never asks for the body).
            if feed.continue_left > 0 {
                let sent = CONTINUE.len() - feed.continue_left;
                match ready!(Pin::new(&mut self.io).poll_write(cx, &CONTINUE[sent..])) {
                    Ok(0) | Err(_) => return broken(&feed.pipe, "the connection ended"),
                    Ok(n) => feed.continue_left -= n.min(feed.continue_left),
                }
                feed.continue_flush = feed.continue_left == 0;
                continue;
            }
            if feed.continue_flush {
                if ready!(Pin::new(&mut self.io).poll_flush(cx)).is_err() {
                    return broken(&feed.pipe, "the connection ended");
                }
                feed.continue_flush = false;
            }
            match feed.reader.decode(&mut self.buf) {
                Ok(Decoded::Data(bytes)) => feed.pipe.put(Some(Ok(bytes)), false),
                Ok(Decoded::End) => {
                    feed.pipe.put(None, true);
                    return Poll::Ready(Fed::Whole);
                }
                Ok(Decoded::NeedMore) => {
                    let left = feed.reader.left();
                    match ready!(poll_read_body(&mut self.io, &mut self.buf, left, cx)) {
                        Ok(0) | Err(_) => {
                            return broken(&feed.pipe, "the connection ended before the body")
                        }
                        Ok(_) => {}
                    }
                }
                Err(why) => return broken(&feed.pipe, why),
            }
        }
    }

    /// Waits for `answer`, feeding `streamed` meanwhile; once the request is read whole,
    /// watches the connection: bytes that arrive are kept for the next request (up to
    /// [`MAX_HEAD`]), its end drops the answer.
    async fn wait<F: Future>(
        &mut self,
        answer: F,
        mut streamed: Option<Feed>,
        body_whole: &mut bool,
    ) -> Waited<F::Output> {
        let mut answer = std::pin::pin!(answer);
        let mut broken = false;
        let waited = poll_fn(|cx| {
            if let Poll::Ready(out) = answer.as_mut().poll(cx) {
                // Answered with the body still streaming: whole if what is left of it is here
                // already (it was read to its length, say, and not asked for its end).
                if let Some(feed) = &mut streamed {
                    if feed.reader.ends_in(&mut self.buf) {
                        feed.pipe.finish();
                        *body_whole = true;
                    }
                }
                return Poll::Ready(Waited::Answered(out));
            }
            if let Some(feed) = &mut streamed {
                match self.poll_feed(feed, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Fed::Whole) => *body_whole = true,
                    // Let go at its last byte, the body may still be whole.
                    Poll::Ready(Fed::Dropped) => {
                        *body_whole = feed.reader.ends_in(&mut self.buf);
                    }
                    Poll::Ready(Fed::Broken) => broken = true,
                }
                streamed = None;
            }
            if !*body_whole || broken {
                // What follows an unread body is not a request: nothing to watch for.
                return Poll::Pending;
            }
            while self.buf.len() < MAX_HEAD {
                let room = MAX_HEAD - self.buf.len();
                match ready!(poll_read_more(&mut self.io, &mut self.buf, room, cx)) {
                    Ok(0) | Err(_) => return Poll::Ready(Waited::Gone),
                    Ok(_) => {}
                }
            }
            Poll::Pending
        })
        .await;
        drop(streamed);
        waited
    }

    /// Writes an answer of the server's own (a refusal) and closes.
    async fn refuse(mut self, status: StatusCode) {
        let mut out = Vec::with_capacity(128);
        status_line(&mut out, status);
        out.extend_from_slice(b"content-length: 0\r\nconnection: close\r\n");
        date(&mut out);
        out.extend_from_slice(b"\r\n");
        let _ = self.io.write_all(&out).await;
        self.close().await;
    }

    /// Closes the connection, reading (and dropping) for a second at most what the client is
    /// still sending: closed with unread bytes, the connection would be reset, and the client
    /// could lose the answer before reading it.
    async fn close(mut self) {
        let _ = self.io.shutdown().await;
        self.buf.clear();
        let _ = tokio::time::timeout(LINGER, async {
            let mut drained = 0;
            while drained < LINGER_BYTES {
                match self.read_more(READ_CHUNK).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
                self.buf.clear();
            }
        })
        .await;
    }
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a `date` header, formatted once a second per thread.
fn date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                cached.1.copy_from_slice(text.as_bytes());
                cached.0 = secs;
            }
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(&cached.1);
        out.extend_from_slice(b"\r\n");
    });
}

/// How a response's body goes on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length,
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and a body of unknown length).
    Close,
}

/// A request ready for the service, and what the connection keeps of it meanwhile.
struct Prepared {
    request: Request<RequestBody>,
    /// A body streamed while the service runs.
    streamed: Option<Feed>,
    keep_alive: bool,
    head_only: bool,
    version: Version,
    /// Where the connection goes after a 101, when the request asked to switch.
    upgrade: Option<oneshot::Sender<Upgraded>>,
}

/// Serves one connection until it ends.
///
/// The future of this function is what every connection keeps while its request is answered
/// (a parked polling GET, for one): what lives across its waits is kept small, and the rare
/// paths (refusing, closing, switching protocols) are boxed.
pub(crate) fn serve_connection<I, S>(
    io: I,
    peer: SocketAddr,
    service: S,
) -> impl Future<Output = ()> + Send + 'static
where
    I: Io,
    S: Servable,
{
    let mut conn = Conn {
        io,
        buf: BytesMut::new(),
    };
    // A block rather than an `async fn`: an async fn's arguments are moved into locals, and
    // both copies would be kept for the connection's life.
    async move {
        // The request is read in a future boxed for the time it takes: what it holds (the parsed
        // head, timers) would otherwise be room kept in this one for the connection's life. The
        // rare endings are awaited after the loop, boxed, for the same reason.
        let end = loop {
            // Ready before the request is read, so that nothing of the request waits for it.
            let mut svc = service.clone();
            let ready = poll_fn(|cx| svc.poll_ready(cx)).await;
            let Ok(()) = ready;
            let Prepared {
                request,
                streamed,
                mut keep_alive,
                head_only,
                version,
                upgrade,
            } = match Box::pin(conn.next_request(peer)).await {
                Ok(prepared) => prepared,
                Err(Some(status)) => break End::Refuse(status),
                Err(None) => break End::Done,
            };
            let mut body_whole = streamed.is_none();
            let answer = svc.call(request);
            drop(svc);
            let response = match conn.wait(answer, streamed, &mut body_whole).await {
                Waited::Answered(Ok(response)) => response,
                Waited::Answered(Err(never)) => match never {},
                Waited::Gone => break End::Done,
            };
            keep_alive &= body_whole;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                if !body_whole {
                    // What follows is the rest of a body, not the new protocol's bytes.
                    break End::Done;
                }
                let Some(tx) = upgrade else {
                    // A 101 to a request that did not ask to switch: nothing to switch to.
                    break End::Refuse(StatusCode::INTERNAL_SERVER_ERROR);
                };
                let (parts, _) = response.into_parts();
                let mut out = Vec::with_capacity(256);
                write_head(&mut out, &parts, Framing::None, None, false, version);
                break End::Switch(out, tx);
            }
            drop(upgrade);
            let (head, framing, length, body) =
                start_response(response, head_only, &mut keep_alive, version);
            let written =
                write_response(&mut conn.io, head, framing, length, body, &mut keep_alive);
            match written.await {
                Ok(()) if keep_alive => conn.release(),
                Ok(()) => break End::Close,
                Err(_) => break End::Done,
            }
        };
        match end {
            End::Done => {}
            End::Close => Box::pin(conn.close()).await,
            End::Refuse(status) => Box::pin(conn.refuse(status)).await,
            End::Switch(head, tx) => Box::pin(conn.switch(head, tx)).await,
        }
    }
}

/// How a connection ends.
enum End {
    /// Already ended (or broken): nothing more to write.
    Done,
    /// After an answer that asked for it, or that only the close delimits.
    Close,
    /// With a refusal of the server's own.
    Refuse(StatusCode),
    /// Handed over after this 101 head, to the request that asked to switch.
    Switch(Vec<u8>, oneshot::Sender<Upgraded>),
}

impl<I: Io> Conn<I> {
    /// Reads the next request's head, and takes its body when it came with the head (else the
    /// body is streamed, see [`Feed`]). `Err(Some(status))`: refuse it; `Err(None)`: the
    /// connection ended, or its head took too long.
    async fn next_request(&mut self, peer: SocketAddr) -> Result<Prepared, Option<StatusCode>> {
        let head = match tokio::time::timeout(HEAD_TIMEOUT, self.read_head()).await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => return Err(None),
            Ok(Err(refusal)) => return Err(Some(refusal.status())),
            Err(_) => {
                tracing::trace!(%peer, "no request head within {HEAD_TIMEOUT:?}");
                return Err(None);
            }
        };
        let Head {
            request,
            body,
            keep_alive,
            expect_continue,
            upgrade,
        } = head;
        let head_only = request.method() == Method::HEAD;
        let version = request.version();

        // The body: whole when it is here already, else streamed while the service runs.
        let mut streamed = None;
        let body = match body {
            None => RequestBody::empty(),
            Some(reader) => {
                // A body that came whole with its head (the usual polling POST) is handed
                // over whole; any other is streamed as the service reads it, so that the
                // service's own deadlines and bounds apply while it comes.
                let here = match reader {
                    BodyReader::Length(len) if len <= self.buf.len() as u64 => Some(len as usize),
                    _ => None,
                };
                match here {
                    Some(len) => RequestBody::whole(self.buf.split_to(len).freeze()),
                    None => {
                        let len = match reader {
                            BodyReader::Length(len) => Some(len),
                            BodyReader::Chunked(_) => None,
                        };
                        let pipe = Arc::new(Pipe::default());
                        streamed = Some(Feed {
                            pipe: pipe.clone(),
                            reader,
                            continue_left: if expect_continue && self.buf.is_empty() {
                                CONTINUE.len()
                            } else {
                                0
                            },
                            continue_flush: false,
                        });
                        RequestBody {
                            kind: BodyKind::Streamed { pipe, len },
                        }
                    }
                }
            }
        };
        self.release();

        let (parts, ()) = request.into_parts();
        let mut request = Request::from_parts(parts, body);
        request.extensions_mut().insert(RemoteAddr(peer));
        let upgrade = upgrade.then(|| {
            let (tx, rx) = oneshot::channel();
            request
                .extensions_mut()
                .insert(PendingUpgrade(Arc::new(Mutex::new(Some(rx)))));
            tx
        });
        Ok(Prepared {
            request,
            streamed,
            keep_alive,
            head_only,
            version,
            upgrade,
        })
    }

    /// Writes a 101's head and hands the connection over to the request that asked to switch.
    async fn switch(mut self, head: Vec<u8>, tx: oneshot::Sender<Upgraded>) {
        if self.io.write_all(&head).await.is_err() || self.io.flush().await.is_err() {
            return;
        }
        let pre = std::mem::take(&mut self.buf).freeze();
        if let Some(io) = UpgradedIo::take(&mut Some(self.io)) {
            let _ = tx.send(Upgraded { io, pre });
        }
    }
}

/// Writes the status line and headers of an answer.
fn write_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    framing: Framing,
    length: Option<u64>,
    keep_alive: bool,
    version: Version,
) {
    status_line(out, parts.status);
    let mut has_date = false;
    for (name, value) in &parts.headers {
        if (framing != Framing::None
            && (name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING))
            || name == header::CONNECTION
        {
            continue;
        }
        has_date |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        // The engine's 101 names the upgrade; the connection header says it.
        if let Some(value) = parts.headers.get(header::CONNECTION) {
            out.extend_from_slice(b"connection: ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    } else if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    match (framing, length) {
        (Framing::Length, Some(len)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        (Framing::Chunked, _) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if !has_date {
        date(out);
    }
    out.extend_from_slice(b"\r\n");
}

/// An answer's head, how its body is framed, and the body when one is sent (none for `HEAD`,
/// 1xx, 204 and 304). `keep_alive` turns false when the answer asks to close or can only be
/// delimited by closing.
fn start_response<B: Body>(
    response: Response<B>,
    head_only: bool,
    keep_alive: &mut bool,
    version: Version,
) -> (Vec<u8>, Framing, Option<u64>, Option<B>) {
    let (parts, body) = response.into_parts();
    if has_token(&parts.headers, header::CONNECTION, "close") {
        *keep_alive = false;
    }
    let status = parts.status;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let exact = body.size_hint().exact();
    let (framing, length) = if bodiless {
        (Framing::None, None)
    } else if head_only {
        // The length a GET would have, when the service gave one.
        match exact {
            Some(len) if len > 0 || !parts.headers.contains_key(header::CONTENT_LENGTH) => {
                (Framing::Length, Some(len))
            }
            _ => (Framing::None, None),
        }
    } else if let Some(len) = exact {
        (Framing::Length, Some(len))
    } else if version == Version::HTTP_11 {
        (Framing::Chunked, None)
    } else {
        *keep_alive = false;
        (Framing::Close, None)
    };
    let mut out = Vec::with_capacity(256);
    write_head(&mut out, &parts, framing, length, *keep_alive, version);
    let body = (!(bodiless || head_only)).then_some(body);
    (out, framing, length, body)
}

/// Writes an answer: its head (from [`start_response`]), then its body in `framing`.
/// `keep_alive` turns false when the body fails or is not the length it said.
async fn write_response<I: Io, B>(
    io: &mut I,
    out: Vec<u8>,
    framing: Framing,
    length: Option<u64>,
    body: Option<B>,
    keep_alive: &mut bool,
) -> io::Result<()>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(body) = body else {
        io.write_all(&out).await?;
        return io.flush().await;
    };
    let mut body = std::pin::pin!(body);
    let mut written = 0u64;
    let mut head = Some(out);
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                tracing::debug!("response body failed: {e}");
                *keep_alive = false;
                return Err(io::Error::other("response body failed"));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // Trailers: not sent.
        };
        if data.is_empty() {
            continue;
        }
        let before = written;
        written += data.len() as u64;
        // Past the length it said, what followed would be read as the next answer: the
        // body is cut at its length and the connection ends after it.
        let over = match length {
            Some(len) if framing == Framing::Length && written > len => Some(len - before),
            _ => None,
        };
        let data = match over {
            Some(room) => data.slice(..room as usize),
            None => data,
        };
        let mut out = head.take().unwrap_or_default();
        if framing == Framing::Chunked {
            let _ = write!(out, "{:x}\r\n", data.len());
        }
        if out.len() + data.len() <= WRITE_WITH_HEAD {
            out.extend_from_slice(&data);
            if framing == Framing::Chunked {
                out.extend_from_slice(b"\r\n");
            }
            io.write_all(&out).await?;
        } else {
            io.write_all(&out).await?;
            io.write_all(&data).await?;
            if framing == Framing::Chunked {
                io.write_all(b"\r\n").await?;
            }
        }
        if over.is_some() {
            *keep_alive = false;
            return Err(io::Error::other("response body longer than its length"));
        }
    }
    let mut out = head.take().unwrap_or_default();
    if framing == Framing::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    if !out.is_empty() {
        io.write_all(&out).await?;
    }
    if framing == Framing::Length && Some(written) != length {
        // The body was not the length it said: the connection cannot carry on.
        *keep_alive = false;
    }
    io.flush().await
}
