//! Socket.IO clients of the generator: over WebSocket, over long-polling, and upgraded from
//! polling to WebSocket.

use crate::http::HttpConn;
use crate::net::Target;
use crate::proto::{classify, parse_connected, parse_open, Connected, Eio, Incoming};
pub(crate) use crate::ws::Ws;
use crate::BoxError;

/// Opens the Engine.IO WebSocket transport (joining session `sid` when upgrading).
pub(crate) async fn open_ws(target: &Target, sid: Option<&str>) -> Result<Ws, BoxError> {
    let stream = target.connect().await?;
    let base = target.eio().path();
    let path = match sid {
        Some(sid) => format!("{base}&transport=websocket&sid={sid}"),
        None => format!("{base}&transport=websocket"),
    };
    Ws::handshake(stream, target.host(), &path).await
}

/// Sends one text frame.
pub(crate) async fn send(ws: &mut Ws, text: String) -> Result<(), BoxError> {
    ws.send_text(&text).await
}

/// The next text frame; `None` when the connection ended. Cancel-safe.
pub(crate) async fn recv(ws: &mut Ws) -> Result<Option<String>, BoxError> {
    ws.recv_text().await
}

/// Handles a frame that needs no one's attention (PING gets its PONG). Returns what it is.
pub(crate) async fn answer(ws: &mut Ws, text: &str) -> Result<Incoming, BoxError> {
    let kind = classify(text);
    if kind == Incoming::Ping {
        send(ws, "3".to_owned()).await?;
    }
    Ok(kind)
}

/// Waits for the Socket.IO CONNECT answer on `/`.
async fn await_connected(ws: &mut Ws) -> Result<(), BoxError> {
    loop {
        let text = recv(ws).await?.ok_or("closed before CONNECT")?;
        match answer(ws, &text).await? {
            Incoming::Connected => return Ok(()),
            Incoming::ConnectError => return Err(format!("CONNECT refused: {:.80}", &*text).into()),
            _ => {}
        }
    }
}

/// A Socket.IO client connected to `/` over WebSocket directly (in v3 the server connects it to
/// `/` unasked).
pub(crate) async fn connect_ws(target: &Target) -> Result<Ws, BoxError> {
    let mut ws = open_ws(target, None).await?;
    let open = recv(&mut ws).await?.ok_or("closed before OPEN")?;
    parse_open(&open)?;
    if target.eio() == Eio::V4 {
        send(&mut ws, "40".to_owned()).await?;
    }
    await_connected(&mut ws).await?;
    Ok(ws)
}

/// A Socket.IO v5 client connected to `/` over WebSocket with the CONNECT packet `connect`
/// (`40`, or `40{"pid":...,"offset":...}` to recover a session): the connection, the CONNECT
/// answer, and the packets that came before it (the events a recovered session missed), PINGs
/// answered and left out.
pub(crate) async fn connect_ws_as(
    target: &Target,
    connect: &str,
) -> Result<(Ws, Connected, Vec<String>), BoxError> {
    let mut ws = open_ws(target, None).await?;
    let open = recv(&mut ws).await?.ok_or("closed before OPEN")?;
    parse_open(&open)?;
    send(&mut ws, connect.to_owned()).await?;
    let mut before = Vec::new();
    loop {
        let text = recv(&mut ws).await?.ok_or("closed before CONNECT")?;
        match answer(&mut ws, &text).await? {
            Incoming::Connected => {
                let connected = parse_connected(&text)?;
                return Ok((ws, connected, before));
            }
            Incoming::ConnectError => return Err(format!("CONNECT refused: {:.80}", &*text).into()),
            Incoming::Ping => {}
            _ => before.push(text),
        }
    }
}

/// A long-polling session: its query path (with the sid).
#[derive(Debug, Clone)]
pub(crate) struct PollingSession {
    /// `/socket.io/?EIO=4&transport=polling&sid=...`.
    pub(crate) path: String,
    /// The Engine.IO session id.
    pub(crate) sid: String,
    /// The Engine.IO revision: how payloads are framed.
    pub(crate) eio: Eio,
    /// Packets that came with the handshake after its OPEN (v3 servers may send `40` there).
    pub(crate) early: Vec<String>,
}

/// The Engine.IO polling handshake alone (one GET); returns the session.
pub(crate) async fn polling_handshake(conn: &mut HttpConn) -> Result<PollingSession, BoxError> {
    let eio = conn.target().eio();
    let base = eio.path();
    let body = conn
        .get(&format!("{base}&transport=polling"))
        .await?
        .text_ok()?;
    let mut packets = eio.decode(&body)?.into_iter();
    let sid = parse_open(&packets.next().unwrap_or_default())?;
    Ok(PollingSession {
        path: format!("{base}&transport=polling&sid={sid}"),
        sid,
        eio,
        early: packets.collect(),
    })
}

impl PollingSession {
    /// POSTs one packet; the answer must be `ok`.
    pub(crate) async fn post(&self, conn: &mut HttpConn, packet: &str) -> Result<(), BoxError> {
        let text = conn
            .post(&self.path, &self.eio.encode_one(packet))
            .await?
            .text_ok()?;
        if !text.eq_ignore_ascii_case("ok") {
            return Err(format!("POST answered {text:.80}").into());
        }
        Ok(())
    }

    /// One GET: the packets it carries.
    pub(crate) async fn get(&self, conn: &mut HttpConn) -> Result<Vec<String>, BoxError> {
        let text = conn.get(&self.path).await?.text_ok()?;
        self.eio.decode(&text)
    }

    /// One GET; PINGs in it are answered with a POST on the same connection. Returns the
    /// packets that are not PINGs.
    pub(crate) async fn get_answering(&self, conn: &mut HttpConn) -> Result<Vec<String>, BoxError> {
        let packets = self.get(conn).await?;
        if packets.iter().any(|p| classify(p) == Incoming::Ping) {
            self.post(conn, "3").await?;
        }
        Ok(packets
            .into_iter()
            .filter(|p| classify(p) != Incoming::Ping)
            .collect())
    }
}

/// A Socket.IO client connected to `/` over long-polling (handshake, CONNECT, its answer), all
/// on `conn`.
pub(crate) async fn connect_polling(conn: &mut HttpConn) -> Result<PollingSession, BoxError> {
    let mut session = polling_handshake(conn).await?;
    if session.eio == Eio::V4 {
        session.post(conn, "40").await?;
    }
    let mut packets = std::mem::take(&mut session.early);
    loop {
        for p in packets.drain(..) {
            match classify(&p) {
                Incoming::Connected => return Ok(session),
                Incoming::ConnectError => return Err(format!("CONNECT refused: {p:.80}").into()),
                _ => {}
            }
        }
        packets = session.get_answering(conn).await?;
    }
}

/// A Socket.IO client connected over polling, then upgraded to WebSocket (probe, UPGRADE).
pub(crate) async fn connect_upgrade(target: &Target) -> Result<Ws, BoxError> {
    let mut conn = HttpConn::new(target.clone());
    let session = connect_polling(&mut conn).await?;
    let mut ws = open_ws(target, Some(&session.sid)).await?;
    send(&mut ws, "2probe".to_owned()).await?;
    loop {
        let text = recv(&mut ws).await?.ok_or("closed during the probe")?;
        if answer(&mut ws, &text).await? == Incoming::Probe {
            break;
        }
    }
    send(&mut ws, "5".to_owned()).await?;
    Ok(ws)
}

/// Sends one `echo` with ack id `id` and waits for its ack (answering PINGs meanwhile).
pub(crate) async fn echo_once(ws: &mut Ws, id: u64, payload: &str) -> Result<(), BoxError> {
    send(ws, crate::proto::echo_packet(id, payload)).await?;
    loop {
        let text = recv(ws).await?.ok_or("closed while waiting for an ack")?;
        if answer(ws, &text).await? == Incoming::Ack(id) {
            return Ok(());
        }
    }
}

/// Joins the room `bench` (the `join` event with an ack) and waits for the ack.
pub(crate) async fn join_room(ws: &mut Ws, id: u64) -> Result<(), BoxError> {
    send(ws, crate::proto::join_packet(id)).await?;
    loop {
        let text = recv(ws).await?.ok_or("closed while joining a room")?;
        if answer(ws, &text).await? == Incoming::Ack(id) {
            return Ok(());
        }
    }
}
