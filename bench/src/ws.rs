//! A minimal WebSocket client (RFC 6455): the opening handshake, masked frames out, unmasked
//! frames in. Just what the generator needs, and lean on purpose.
//!
//! The generator must cost clearly less per operation than the servers it loads. A
//! general-purpose client (tokio-tungstenite, used here before) spent about a third of the
//! generator's CPU on a broadcast in its own bookkeeping (waker proxies re-registered at every
//! poll, read buffers zeroed and split per frame), and its handshake future and buffers made
//! the connect scenario fault in ~20 KiB of fresh memory per kept connection. Here a
//! connection is its TCP stream, a small buffer of bytes read but not yet parsed (empty
//! between messages) and a mask state: reads go through one per-thread buffer, a frame out is
//! one `send` (the reads and writes are `net`'s).

use crate::net::{find, read_some, write_all};
use crate::BoxError;
use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;

/// RFC 6455's GUID for the `Sec-WebSocket-Accept` check.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest message accepted from the server (the generator's messages are small).
const MAX_MESSAGE: usize = 16 << 20;

/// Largest response head of the opening handshake.
const MAX_HEAD: usize = 8 << 10;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A WebSocket connection to the server.
#[derive(Debug)]
pub(crate) struct Ws {
    tcp: TcpStream,
    /// Bytes read and not yet parsed (usually none between messages).
    pending: Vec<u8>,
    /// The payload of a fragmented message so far, and its opcode.
    fragments: Option<(u8, Vec<u8>)>,
    /// xorshift state for the masking keys.
    mask: u64,
}

/// One message from the server.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Text(String),
    Ping(Vec<u8>),
    Close,
    /// Binary and pong frames: not used by the generator.
    Ignored,
}

impl Ws {
    /// The opening handshake on `tcp` for `path` on `host`.
    pub(crate) async fn handshake(tcp: TcpStream, host: &str, path: &str) -> Result<Ws, BoxError> {
        let mut mask = seed();
        let mut key = [0u8; 16];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&next(&mut mask).to_le_bytes()[..chunk.len()]);
        }
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        write_all(&tcp, request.as_bytes()).await?;
        let mut ws = Ws {
            tcp,
            pending: Vec::new(),
            fragments: None,
            mask,
        };
        let head_end = loop {
            if let Some(at) = find(&ws.pending, b"\r\n\r\n") {
                break at + 4;
            }
            if ws.pending.len() > MAX_HEAD {
                return Err("handshake response head too long".into());
            }
            if ws.read_more().await? == 0 {
                return Err("connection closed during the WebSocket handshake".into());
            }
        };
        let head = std::str::from_utf8(&ws.pending[..head_end])
            .map_err(|_| "handshake response is not UTF-8")?;
        check_response(head, &key)?;
        ws.pending.drain(..head_end);
        Ok(ws)
    }

    /// Sends one text message.
    pub(crate) async fn send_text(&mut self, text: &str) -> Result<(), BoxError> {
        self.send_frame(OP_TEXT, text.as_bytes()).await
    }

    /// The next text message; `None` when the connection ended (a close frame or EOF). Pings
    /// are answered on the way. Cancel-safe: what was read stays in the connection.
    pub(crate) async fn recv_text(&mut self) -> Result<Option<String>, BoxError> {
        loop {
            match self.parse()? {
                Some(Frame::Text(text)) => return Ok(Some(text)),
                Some(Frame::Ping(payload)) => self.send_frame(OP_PONG, &payload).await?,
                Some(Frame::Close) => return Ok(None),
                Some(Frame::Ignored) => {}
                None => {
                    if self.read_more().await? == 0 {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Reads what the socket has (waiting for at least a byte) onto `pending`; 0 is EOF.
    async fn read_more(&mut self) -> io::Result<usize> {
        read_some(&self.tcp, &mut self.pending).await
    }

    /// Takes the next whole message off `pending`, if there is one.
    fn parse(&mut self) -> Result<Option<Frame>, BoxError> {
        loop {
            let Some((fin, opcode, start, len)) = frame_head(&self.pending)? else {
                return Ok(None);
            };
            if self.pending.len() < start + len {
                return Ok(None);
            }
            let end = start + len;
            let frame = match opcode {
                OP_TEXT | OP_BINARY if fin && self.fragments.is_none() => {
                    Some(message(opcode, self.pending[start..end].to_vec())?)
                }
                OP_TEXT | OP_BINARY if self.fragments.is_none() => {
                    self.fragments = Some((opcode, self.pending[start..end].to_vec()));
                    None
                }
                OP_CONTINUATION => {
                    let (op, mut data) = self
                        .fragments
                        .take()
                        .ok_or("continuation frame without a message")?;
                    data.extend_from_slice(&self.pending[start..end]);
                    if data.len() > MAX_MESSAGE {
                        return Err("message too large".into());
                    }
                    if fin {
                        Some(message(op, data)?)
                    } else {
                        self.fragments = Some((op, data));
                        None
                    }
                }
                OP_TEXT | OP_BINARY => return Err("a message began inside a fragmented one".into()),
                OP_PING => Some(Frame::Ping(self.pending[start..end].to_vec())),
                OP_CLOSE => Some(Frame::Close),
                OP_PONG => Some(Frame::Ignored),
                other => return Err(format!("unexpected frame opcode {other:#x}").into()),
            };
            if end == self.pending.len() {
                self.pending.clear();
                if self.pending.capacity() > 4096 {
                    // A large message passed: do not keep its room per idle connection.
                    self.pending = Vec::new();
                }
            } else {
                self.pending.drain(..end);
            }
            if let Some(frame) = frame {
                return Ok(Some(frame));
            }
        }
    }

    /// Writes one masked frame.
    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> Result<(), BoxError> {
        let key = (next(&mut self.mask) as u32).to_le_bytes();
        let frame = encode(opcode, payload, key);
        write_all(&self.tcp, &frame).await?;
        Ok(())
    }
}

/// A message's frame, as the server sees it: `FIN`, `opcode`, the masked length and payload.
fn encode(opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let len = payload.len();
    let mut frame = Vec::with_capacity(len + 14);
    frame.push(0x80 | opcode);
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&short.to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// `(fin, opcode, payload start, payload length)` of the frame at the start of `buf`, once its
/// head is there.
fn frame_head(buf: &[u8]) -> Result<Option<(bool, u8, usize, usize)>, BoxError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err("the server masked a frame".into());
    }
    let (start, len) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (4, u16::from_be_bytes([b[0], b[1]]) as u64),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (10, u64::from_be_bytes(b)),
            None => return Ok(None),
        },
        short => (2, u64::from(short)),
    };
    if len > MAX_MESSAGE as u64 {
        return Err(format!("frame of {len} bytes").into());
    }
    Ok(Some((b0 & 0x80 != 0, b0 & 0x0f, start, len as usize)))
}

fn message(opcode: u8, data: Vec<u8>) -> Result<Frame, BoxError> {
    if opcode == OP_TEXT {
        Ok(Frame::Text(
            String::from_utf8(data).map_err(|_| "text frame not UTF-8")?,
        ))
    } else {
        Ok(Frame::Ignored)
    }
}

/// Checks the status and `Sec-WebSocket-Accept` of the handshake's response head.
fn check_response(head: &str, key: &str) -> Result<(), BoxError> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("WebSocket handshake refused: {status:.80}").into());
    }
    let accept = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|(_, value)| value.trim())
        .ok_or("no Sec-WebSocket-Accept in the handshake response")?;
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    if accept != expected {
        return Err(format!("wrong Sec-WebSocket-Accept {accept:?}").into());
    }
    Ok(())
}

/// A fresh xorshift state: masking keys need no strong randomness for a load generator.
fn seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1
}

fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame: unmasked.
    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xffff => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    async fn pair() -> (Ws, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let ws = Ws {
            tcp: client.unwrap(),
            pending: Vec::new(),
            fragments: None,
            mask: seed(),
        };
        (ws, server.unwrap().0)
    }

    #[test]
    fn frames_out_are_masked_and_unmask_to_the_payload() {
        let key = [1, 2, 3, 4];
        for len in [0, 5, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let frame = encode(OP_TEXT, &payload, key);
            assert_eq!(frame[0], 0x81);
            assert_ne!(frame[1] & 0x80, 0, "masked");
            let (start, got) = match frame[1] & 0x7f {
                126 => (8, u16::from_be_bytes([frame[2], frame[3]]) as usize),
                127 => (
                    14,
                    u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize,
                ),
                n => (6, n as usize),
            };
            assert_eq!(got, len);
            assert_eq!(&frame[start - 4..start], &key);
            let unmasked: Vec<u8> = frame[start..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(unmasked, payload);
        }
    }

    #[test]
    fn the_accept_key_is_checked() {
        // The example of RFC 6455, section 1.3.
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(check_response(ok, key).is_ok());
        let wrong = ok.replace("s3pP", "xxxx");
        assert!(check_response(&wrong, key).is_err());
        let refused = "HTTP/1.1 400 Bad Request\r\n\r\n";
        assert!(check_response(refused, key).is_err());
    }

    #[tokio::test]
    async fn messages_split_joined_and_fragmented_come_out_whole() {
        let (mut ws, server) = pair().await;
        let mut bytes = server_frame(true, OP_TEXT, b"one");
        bytes.extend(server_frame(true, OP_TEXT, b"two"));
        bytes.extend(server_frame(false, OP_TEXT, b"thr"));
        bytes.extend(server_frame(true, OP_PONG, b""));
        bytes.extend(server_frame(true, OP_CONTINUATION, b"ee"));
        let big = "x".repeat(70_000);
        bytes.extend(server_frame(true, OP_TEXT, big.as_bytes()));
        bytes.extend(server_frame(true, OP_CLOSE, b""));
        // Byte by byte at first, then the rest at once.
        for b in &bytes[..7] {
            write_all(&server, &[*b]).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        write_all(&server, &bytes[7..]).await.unwrap();
        assert_eq!(ws.recv_text().await.unwrap().as_deref(), Some("one"));
        assert_eq!(ws.recv_text().await.unwrap().as_deref(), Some("two"));
        assert_eq!(ws.recv_text().await.unwrap().as_deref(), Some("three"));
        assert_eq!(ws.recv_text().await.unwrap(), Some(big));
        assert_eq!(ws.recv_text().await.unwrap(), None);
        assert!(ws.pending.capacity() <= 4096, "no large buffer kept");
    }

    #[tokio::test]
    async fn pings_are_answered_with_their_payload() {
        let (mut ws, server) = pair().await;
        let mut bytes = server_frame(true, OP_PING, b"hi");
        bytes.extend(server_frame(true, OP_TEXT, b"after"));
        write_all(&server, &bytes).await.unwrap();
        assert_eq!(ws.recv_text().await.unwrap().as_deref(), Some("after"));
        let mut pong = Vec::new();
        while pong.len() < 8 {
            assert_ne!(read_some(&server, &mut pong).await.unwrap(), 0);
        }
        assert_eq!(pong.len(), 8, "one pong frame");
        assert_eq!(pong[0], 0x80 | OP_PONG);
        assert_eq!(pong[1], 0x80 | 2);
        let key = &pong[2..6];
        assert_eq!([pong[6] ^ key[0], pong[7] ^ key[1]], *b"hi");
    }

    #[tokio::test]
    async fn a_message_inside_a_fragmented_one_is_an_error() {
        let (mut ws, server) = pair().await;
        let mut bytes = server_frame(false, OP_TEXT, b"par");
        bytes.extend(server_frame(true, OP_TEXT, b"new"));
        write_all(&server, &bytes).await.unwrap();
        assert!(ws.recv_text().await.is_err());
    }

    #[tokio::test]
    async fn a_masked_server_frame_is_an_error() {
        let (mut ws, server) = pair().await;
        write_all(&server, &[0x81, 0x81, 1, 2, 3, 4, b'a' ^ 1])
            .await
            .unwrap();
        assert!(ws.recv_text().await.is_err());
    }
}
