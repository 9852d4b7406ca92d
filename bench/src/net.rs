//! TCP connections to the server under test: several source addresses, `SO_LINGER=0`, no Nagle.

use crate::proto::Eio;
use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::{TcpSocket, TcpStream};

/// Where the server listens, and the source addresses to connect from.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: SocketAddr,
    host: String,
    sources: Vec<Ipv4Addr>,
    next: AtomicUsize,
    eio: Eio,
}

impl Target {
    /// A server at `addr` (loopback only), connected to from `sources` addresses
    /// 127.0.0.1, 127.0.0.2, ... in turn (each gives about 28k ports).
    pub(crate) fn new(addr: SocketAddr, sources: usize) -> io::Result<Target> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the load generator only loads servers on 127.0.0.0/8",
            ));
        }
        let n = sources.clamp(1, 250) as u8;
        let sources = (1..=n).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
        Ok(Target {
            inner: Arc::new(Inner {
                addr,
                host: addr.to_string(),
                sources,
                next: AtomicUsize::new(0),
                eio: Eio::V4,
            }),
        })
    }

    /// The same server, spoken to in Engine.IO revision `eio`.
    pub(crate) fn with_eio(self, eio: Eio) -> Target {
        let inner = &self.inner;
        Target {
            inner: Arc::new(Inner {
                addr: inner.addr,
                host: inner.host.clone(),
                sources: inner.sources.clone(),
                next: AtomicUsize::new(0),
                eio,
            }),
        }
    }

    /// The Engine.IO revision spoken.
    pub(crate) fn eio(&self) -> Eio {
        self.inner.eio
    }

    /// `host:port`, for the `Host` header and URLs.
    pub(crate) fn host(&self) -> &str {
        &self.inner.host
    }

    /// Opens a connection from the next source address. Closing it later sends a RST, so no
    /// TIME_WAIT socket is left behind.
    pub(crate) async fn connect(&self) -> io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        socket.set_zero_linger()?;
        socket.set_nodelay(true)?;
        if self.inner.sources.len() > 1 {
            let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.sources.len();
            socket.bind(SocketAddr::new(IpAddr::V4(self.inner.sources[i]), 0))?;
        }
        socket.connect(self.inner.addr).await
    }
}

/// Where `needle` first starts in `hay` (the end of a response head, of a chunk-size line).
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Writes all of `data`, trying at once before waiting for writability.
pub(crate) async fn write_all(stream: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match stream.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

thread_local! {
    /// Where every read of this thread lands first (64 KiB, zeroed once).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 << 10]);
}

/// Reads what is available (waiting for at least one byte) and appends it to `buf`; 0 is EOF.
///
/// A read that leaves room in the buffer drained the socket, so it also clears the socket's
/// readiness (`try_io` does when its closure says `WouldBlock`): the next read then waits for
/// the next epoll event instead of costing a `recv` that fails with `EAGAIN`, one per message.
pub(crate) async fn read_some(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        let (n, result) = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let room = scratch.len();
            let mut n = 0;
            let result = stream.try_io(Interest::READABLE, || {
                n = stream.try_read(&mut scratch)?;
                if 0 < n && n < room {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(())
                }
            });
            buf.extend_from_slice(&scratch[..n]);
            (n, result)
        });
        match result {
            Ok(()) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if n > 0 {
                    return Ok(n);
                }
                stream.readable().await?;
            }
            Err(e) => return Err(e),
        }
    }
}
