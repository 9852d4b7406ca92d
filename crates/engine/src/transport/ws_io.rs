//! The byte stream under a WebSocket, and the server's way of writing frames to it.
//!
//! tungstenite reads the frames (and answers pings and closes), but the server writes its own
//! data frames ([`super::frame`]): a packet sent while nothing is queued before it goes to the
//! kernel at once, from the sender's own thread, with one `send`. No task is woken, no
//! write buffer is kept: a broadcast to N sockets is N `send` calls. This is only possible on a
//! plain TCP connection, which any thread can write to; on any other connection (TLS, a server
//! of the application's own) the WebSocket task writes everything.
//!
//! Every byte for the client is ordered under the session's lock ([`crate::socket::State`]):
//! - the outbox (bounded by `max_buffered` packets) holds packets not yet framed;
//! - [`WsOut::pending`] holds framed bytes the kernel did not take (its send buffer was full):
//!   at most one data frame's remainder plus control frames, bounded by [`WsIo`]'s limit;
//! - a sender writes directly only when both are empty, else it queues in the outbox; the
//!   task ([`drain`]) writes the pending bytes first, then the outbox, batched into one write.
//!
//! tungstenite's own writes (pongs, the closing handshake, the probe answer) go into
//! [`WsOut::pending`] whole, so its frames never interleave with the server's.

use crate::http1::{read_from, Io, Upgraded, UpgradedIo};
use crate::socket::{Message, Socket, State};
use crate::transport::frame::Parts;
use bytes::{Buf, Bytes, BytesMut};
use socket2::SockRef;
use socketlet_engineio_proto::{ProtocolVersion, Str};
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The WebSocket output of a session (a field of its locked state).
#[derive(Debug, Default)]
pub(crate) struct WsOut {
    /// The TCP stream while a WebSocket task runs on a plain TCP connection: senders may write
    /// to it directly.
    pub(crate) direct: Option<Arc<TcpStream>>,
    /// Framed bytes the kernel has not taken yet. While not empty, new packets wait in the
    /// outbox.
    pub(crate) pending: BytesMut,
    /// The task's last drain could not write everything: it waits for the socket to be
    /// writable and will write what is queued then, so a new packet need not wake it (a
    /// client that does not read would otherwise cost a wake-up per packet sent to it).
    pub(crate) stalled: bool,
}

impl State {
    /// Whether a sender writes what comes next itself, at once: a WebSocket on plain TCP with
    /// nothing queued or pending before it.
    pub(crate) fn writes_at_once(&self) -> bool {
        self.ws_out.direct.is_some() && self.outbox.is_empty() && self.ws_out.pending.is_empty()
    }

    /// Queues messages, or writes them to the WebSocket at once when nothing waits before them.
    /// Returns whether the writer must be woken.
    pub(crate) fn deliver(
        &mut self,
        version: ProtocolVersion,
        mut msgs: impl ExactSizeIterator<Item = Message>,
    ) -> bool {
        if let (true, Some(tcp)) = (self.writes_at_once(), &self.ws_out.direct) {
            if msgs.len() == 1 {
                // Most hand-overs are one message: no batching to prepare.
                if let Some(msg) = msgs.next() {
                    write_one(tcp, version, &msg, &mut self.ws_out.pending);
                }
            } else {
                let mut msgs = msgs.peekable();
                write_batch(tcp, version, &mut msgs, &mut self.ws_out.pending);
                // What did not go out waits behind the rest of a short write.
                self.outbox.extend(msgs.map(Message::into_packet));
            }
            // The rest of a short write needs the task to wait until the socket is writable.
            return !self.ws_out.pending.is_empty() && !self.writer_busy;
        }
        self.outbox.extend(msgs.map(Message::into_packet));
        !self.writer_busy && !self.ws_out.stalled
    }
}

/// Frames up to this size are copied into one buffer and written with `send`; larger ones are
/// written from their parts with `sendmsg` (the copy would cost more than the syscall's extra
/// work).
const COPY_MAX: usize = 4096;

/// The frame of one message.
fn parts_of(version: ProtocolVersion, msg: &Message) -> Parts<'_> {
    match msg {
        Message::Text(text) => Parts::message(text.as_bytes()),
        Message::Binary(data) => Parts::binary(version, data),
    }
}

/// Writes one message's frame with one syscall; what the kernel does not take goes to
/// `pending` (see [`write_batch`]).
fn write_one(tcp: &TcpStream, version: ProtocolVersion, msg: &Message, pending: &mut BytesMut) {
    let parts = parts_of(version, msg);
    let socket = SockRef::from(tcp);
    let written = if parts.len() <= COPY_MAX {
        with_scratch(|frame| {
            parts.copy_from(0, frame);
            socket.send(frame)
        })
    } else {
        socket.send_vectored(&parts.slices())
    };
    let written = written.unwrap_or(0);
    if written < parts.len() {
        parts.copy_from(written, pending);
    }
}

/// Writes the messages' frames, a syscall for each run of small frames (up to [`COPY_MAX`]
/// bytes together: a packet and its attachments, or the packets of several broadcasts handed
/// over at once, go out in one `send`) and one for each large frame, until the kernel takes
/// less than it was given: the rest of that write goes to `pending` and the messages not yet
/// written stay in `msgs`. An error leaves the whole write in `pending`: the task meets the
/// same error when it writes, and closes the session.
///
/// The syscall goes to the socket itself ([`SockRef`]), not through tokio's readiness state:
/// the fast path needs no readiness, and after a short write tokio learns that the socket is
/// full at the task's next write, which then waits for writability.
fn write_batch(
    tcp: &TcpStream,
    version: ProtocolVersion,
    msgs: &mut std::iter::Peekable<impl Iterator<Item = Message>>,
    pending: &mut BytesMut,
) {
    let socket = SockRef::from(tcp);
    while pending.is_empty() {
        let Some(msg) = msgs.next() else { return };
        let parts = parts_of(version, &msg);
        if parts.len() > COPY_MAX {
            let written = socket.send_vectored(&parts.slices()).unwrap_or(0);
            if written < parts.len() {
                parts.copy_from(written, pending);
            }
            continue;
        }
        with_scratch(|frames| {
            parts.copy_from(0, frames);
            while let Some(next) =
                msgs.next_if(|m| frames.len() + parts_of(version, m).len() <= COPY_MAX)
            {
                parts_of(version, &next).copy_from(0, frames);
            }
            let written = socket.send(frames).unwrap_or(0);
            if written < frames.len() {
                pending.extend_from_slice(&frames[written..]);
            }
        });
    }
}

/// The connection under the WebSocket.
enum Raw {
    /// A plain TCP connection: shared with the senders, who write to it directly.
    Tcp(Arc<TcpStream>),
    /// Anything else (TLS, a pipe): written by the task only.
    Other(Box<dyn Io>),
}

impl Raw {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Raw::Tcp(tcp) => loop {
                ready!(tcp.poll_write_ready(cx))?;
                match tcp.try_write(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    result => return Poll::Ready(result),
                }
            },
            Raw::Other(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Raw::Tcp(_) => Poll::Ready(Ok(())),
            Raw::Other(io) => Pin::new(io).poll_flush(cx),
        }
    }
}

/// The stream tungstenite reads from. Its writes (control frames) are queued for [`drain`].
pub(crate) struct WsIo {
    socket: Arc<Socket>,
    /// Bytes hyper read past the handshake, returned first: rarely any, and boxed (8 bytes
    /// rather than 32 in the state of every connection).
    pre: Option<Box<Bytes>>,
    raw: Raw,
    /// Bytes of control frames queued since [`WsOut::pending`] was last empty (at most
    /// [`CONTROL_ROOM`]).
    control: usize,
    /// tungstenite queued something since [`WsIo::take_wrote`] last looked.
    wrote: bool,
}

impl WsIo {
    /// Takes over an upgraded connection.
    pub(crate) fn new(socket: Arc<Socket>, upgraded: Upgraded) -> WsIo {
        let Upgraded { io, pre } = upgraded;
        let raw = match io {
            UpgradedIo::Tcp(tcp) => Raw::Tcp(Arc::new(tcp)),
            UpgradedIo::Other(io) => Raw::Other(io),
        };
        // The bytes are a slice of the connection's read buffer (hyper's is 8 KiB), even when
        // there are none: an empty slice kept would keep that buffer for the connection's life.
        let pre = (!pre.is_empty()).then(|| Box::new(pre));
        WsIo {
            socket,
            pre,
            raw,
            control: 0,
            wrote: false,
        }
    }

    /// The TCP stream, when the connection is a plain TCP one.
    pub(crate) fn tcp(&self) -> Option<&Arc<TcpStream>> {
        match &self.raw {
            Raw::Tcp(tcp) => Some(tcp),
            Raw::Other(_) => None,
        }
    }

    /// Whether tungstenite queued bytes since the last call.
    pub(crate) fn take_wrote(&mut self) -> bool {
        std::mem::take(&mut self.wrote)
    }
}

/// Room for control frames queued behind bytes the client has not taken yet (a client that
/// pings and never reads fills it, and its connection ends).
const CONTROL_ROOM: usize = 16 * 1024;

impl AsyncRead for WsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(pre) = &mut this.pre {
            read_from(pre, buf);
            if pre.is_empty() {
                // Let go of the connection's read buffer, which the bytes were a slice of.
                this.pre = None;
            }
            return Poll::Ready(Ok(()));
        }
        match &mut this.raw {
            Raw::Tcp(tcp) => poll_read_tcp(tcp, cx, buf),
            Raw::Other(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

/// Whether a read that leaves room in the buffer shows the socket drained: true of the
/// edge-triggered selectors (epoll, kqueue) tokio uses there.
const SHORT_READ_DRAINS: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
));

/// Reads from the shared TCP stream. A read that does not fill the buffer drained the socket,
/// so its readiness is cleared (as tokio's own `poll_read` does): the next read waits for the
/// next event instead of costing a `recv` that fails with `EAGAIN`, one per frame received.
/// `try_io` clears readiness when its closure says `WouldBlock`, which is how it is told.
fn poll_read_tcp(
    tcp: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    loop {
        ready!(tcp.poll_read_ready(cx))?;
        let dst = buf.initialize_unfilled();
        let room = dst.len();
        let mut got = 0;
        let result = tcp.try_io(Interest::READABLE, || {
            got = tcp.try_read(dst)?;
            if SHORT_READ_DRAINS && 0 < got && got < room {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        match result {
            // `got` bytes, or none at the end of the stream.
            Ok(()) => {}
            // A short read (readiness cleared), or not ready after all: wait for the next event.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if got == 0 {
                    continue;
                }
            }
            Err(e) => return Poll::Ready(Err(e)),
        }
        buf.advance(got);
        return Poll::Ready(Ok(()));
    }
}

impl AsyncWrite for WsIo {
    /// Queues tungstenite's bytes (always whole frames: it hands over its whole buffer) after
    /// everything already pending.
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut st = this.socket.lock();
        if st.ws_out.pending.is_empty() {
            this.control = 0;
        }
        this.control += buf.len();
        if this.control > CONTROL_ROOM {
            return Poll::Ready(Err(io::Error::other(
                "WebSocket output limit: the client does not read",
            )));
        }
        st.ws_out.pending.extend_from_slice(buf);
        this.wrote = true;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The task writes what is pending (see `drain`).
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().raw {
            Raw::Tcp(_) => Poll::Ready(Ok(())),
            Raw::Other(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// What [`drain`] leaves behind.
pub(crate) struct Drained {
    /// The session's next heartbeat deadline.
    pub(crate) deadline: Option<std::time::Instant>,
    /// The session has closed.
    pub(crate) closed: bool,
    /// Everything was written (otherwise `cx` is woken when the socket is writable again).
    pub(crate) done: bool,
}

/// Batches of queued packets are framed into one buffer up to this size, then written at once.
const BATCH: usize = 64 * 1024;

thread_local! {
    /// The batch buffer, one per thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's empty batch buffer (on a fresh one if it is in use).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut batch) => {
            batch.clear();
            let result = f(&mut batch);
            if batch.capacity() > 2 * BATCH {
                *batch = Vec::new();
            }
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Writes what is pending, then (with `take_outbox`) the outbox, as far as the socket takes it.
/// Also marks the task as no longer busy: from now on, what is queued must wake it.
pub(crate) fn drain(io: &mut WsIo, cx: &mut Context<'_>, take_outbox: bool) -> io::Result<Drained> {
    let WsIo { socket, raw, .. } = io;
    let version = socket.protocol();
    let mut guard = socket.lock();
    let st = &mut *guard;
    if take_outbox {
        st.writer_busy = false;
    }
    let done = 'write: loop {
        while !st.ws_out.pending.is_empty() {
            match raw.poll_write(cx, &st.ws_out.pending) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => st.ws_out.pending.advance(n),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break 'write false,
            }
        }
        if !take_outbox || st.outbox.is_empty() {
            match raw.poll_flush(cx) {
                Poll::Ready(Ok(())) => break true,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break false,
            }
        }
        // One write for as many queued packets as fit in a batch.
        with_scratch(|batch| {
            let mut text = Str::new();
            while batch.len() < BATCH {
                let Some(packet) = st.outbox.pop_front() else {
                    break;
                };
                Parts::of(version, &packet, &mut text).copy_from(0, &mut *batch);
            }
            let written = match raw.poll_write(cx, batch) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Err(e),
                // Kept as pending; the loop polls again and so registers for writability.
                Poll::Pending => 0,
            };
            st.ws_out.pending.extend_from_slice(&batch[written..]);
            Ok(())
        })?;
    };
    st.ws_out.stalled = !done;
    Ok(Drained {
        deadline: st.session.next_deadline(),
        closed: st.session.closed().is_some(),
        done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.expect("connect"), accepted.expect("accept").0)
    }

    async fn read(tcp: &TcpStream, room: usize) -> Vec<u8> {
        let mut storage = vec![0u8; room];
        let mut buf = ReadBuf::new(&mut storage);
        poll_fn(|cx| poll_read_tcp(tcp, cx, &mut buf))
            .await
            .expect("read");
        buf.filled().to_vec()
    }

    /// Whether the stream counts as readable without waiting for a new event.
    fn readable_now(tcp: &TcpStream) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        tcp.poll_read_ready(&mut cx).is_ready()
    }

    #[tokio::test]
    async fn a_short_read_clears_readiness_and_the_next_bytes_still_arrive() {
        let (mut client, server) = pair().await;
        client.write_all(b"hello").await.expect("write");
        assert_eq!(read(&server, 64).await, b"hello");
        if SHORT_READ_DRAINS {
            assert!(
                !readable_now(&server),
                "a drained socket still counts as readable"
            );
        }
        client.write_all(b"again").await.expect("write");
        assert_eq!(read(&server, 64).await, b"again");
    }

    #[tokio::test]
    async fn a_full_read_keeps_readiness_for_what_is_left() {
        let (mut client, server) = pair().await;
        client.write_all(b"0123456789").await.expect("write");
        // Let the segment arrive whole before the first read.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(read(&server, 4).await, b"0123");
        assert!(
            readable_now(&server),
            "bytes are left: the socket is still readable"
        );
        assert_eq!(read(&server, 4).await, b"4567");
        assert_eq!(read(&server, 64).await, b"89");
    }

    #[tokio::test]
    async fn the_end_of_the_stream_after_a_short_read_is_seen() {
        let (mut client, server) = pair().await;
        client.write_all(b"last").await.expect("write");
        client.shutdown().await.expect("shutdown");
        drop(client);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(read(&server, 64).await, b"last");
        let end = tokio::time::timeout(std::time::Duration::from_secs(5), read(&server, 64))
            .await
            .expect("the end of the stream is not seen");
        assert!(end.is_empty());
    }
}
