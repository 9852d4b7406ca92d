//! The per-session state machine: heartbeats, the upgrade to WebSocket, and closing.
//!
//! The engine feeds it packets from the client and the current time, and asks it for the next
//! deadline; the machine answers with what to send and when the session is over. It never reads
//! a clock: every method takes `now`.
//!
//! Heartbeats differ by generation:
//! - **v4**: the server sends PING every `ping_interval`; the client must PONG within
//!   `ping_timeout`, or the session closes with [`CloseReason::PingTimeout`].
//! - **v3**: the client sends PING and the server answers PONG; the session closes when no PING
//!   came for `ping_interval + ping_timeout`.
//!
//! The upgrade: a WebSocket opened for a polling session sends `2probe` (answered `3probe`), then
//! `5`. Between the two the session is [`Transport::Upgrading`]; if `5` does not come within
//! `upgrade_timeout`, the upgrade is abandoned and the session stays on polling.

use crate::{Packet, ProtocolVersion, Str};
use std::time::{Duration, Instant};

/// The transport currently carrying a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// Polling, with a WebSocket probed and waiting for the client's UPGRADE packet.
    Upgrading,
    /// WebSocket.
    WebSocket,
}

/// Why a session ended. The engine reports it to the layer above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent a CLOSE packet.
    ClientClose,
    /// The server closed the session.
    ServerClose,
    /// No heartbeat in time.
    PingTimeout,
    /// The transport's connection was lost (WebSocket closed, polling client gone).
    TransportClose,
    /// The client broke the protocol (bad packet, overlapping polls, payload too large).
    TransportError,
    /// The client fell too far behind: its queue of packets to read was full. (Node has no
    /// such reason; its name is "transport error".)
    SlowClient,
    /// The server is shutting down.
    ServerShutdown,
}

impl CloseReason {
    /// The reason as Node's engine.io names it (`"transport close"`, `"ping timeout"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientClose => "transport close",
            Self::ServerClose => "forced close",
            Self::PingTimeout => "ping timeout",
            Self::TransportClose => "transport close",
            Self::TransportError | Self::SlowClient => "transport error",
            Self::ServerShutdown => "server shutting down",
        }
    }
}

/// Timing settings of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Time between heartbeats.
    pub ping_interval: Duration,
    /// Time allowed for the other side's heartbeat.
    pub ping_timeout: Duration,
    /// Time allowed between the `2probe` and the client's UPGRADE packet.
    pub upgrade_timeout: Duration,
}

/// What the engine must do after feeding the machine a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Nothing (a PONG, a NOOP).
    None,
    /// Hand this packet's data to the layer above.
    Deliver(Packet),
    /// Send this packet to the client on the current transport.
    Reply(Packet),
    /// Close the session.
    Close(CloseReason),
}

/// What the engine must do when a deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// Send a PING (v4).
    SendPing,
    /// The WebSocket upgrade did not finish in time: drop the WebSocket, stay on polling.
    AbortUpgrade,
    /// Close the session.
    Close(CloseReason),
}

/// A packet on an upgrading WebSocket that does not fit the upgrade; the WebSocket is dropped,
/// the session goes on over polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeRefused;

impl std::fmt::Display for UpgradeRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unexpected packet during the WebSocket upgrade")
    }
}

impl std::error::Error for UpgradeRefused {}

/// The protocol state of one Engine.IO session.
///
/// `repr(C)` with `closed` and the version first: a server reads them on every packet it sends,
/// to a session that is often cold in the cache by then, and at the front they share a cache
/// line with what the server keeps just before the session. The small fields come together,
/// so the order costs no padding.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Session {
    closed: Option<CloseReason>,
    version: ProtocolVersion,
    transport: Transport,
    timing: Timing,
    /// v4: when to send the next PING. Unused in v3.
    next_ping: Option<Instant>,
    /// v4: the PONG must arrive by then. v3: the next PING must arrive by then.
    heartbeat_deadline: Option<Instant>,
    /// While upgrading: the UPGRADE packet must arrive by then.
    upgrade_deadline: Option<Instant>,
}

impl Session {
    /// A session that has just sent its handshake on `transport` (polling or WebSocket).
    pub fn new(
        version: ProtocolVersion,
        timing: Timing,
        transport: Transport,
        now: Instant,
    ) -> Self {
        let mut s = Session {
            version,
            timing,
            transport,
            next_ping: None,
            heartbeat_deadline: None,
            upgrade_deadline: None,
            closed: None,
        };
        match version {
            ProtocolVersion::V4 => s.next_ping = Some(now + timing.ping_interval),
            ProtocolVersion::V3 => {
                s.heartbeat_deadline = Some(now + timing.ping_interval + timing.ping_timeout)
            }
        }
        s
    }

    /// The protocol generation.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The current transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Why the session closed, once it has.
    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// The earliest time at which [`Session::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        [
            self.next_ping,
            self.heartbeat_deadline,
            self.upgrade_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether the heartbeat deadline has passed at `now` (the session is over, whether or not
    /// [`Session::on_timer`] has run yet): a request that arrives after the deadline must not be
    /// served because the engine's timer has not fired yet.
    pub fn heartbeat_expired(&self, now: Instant) -> bool {
        self.closed.is_none() && self.heartbeat_deadline.is_some_and(|d| now >= d)
    }

    /// Runs what is due at `now`. Call it at (or after) [`Session::next_deadline`]; calling it
    /// early does nothing. Returns at most one action; call again while it returns some.
    pub fn on_timer(&mut self, now: Instant) -> Option<TimerAction> {
        if self.closed.is_some() {
            return None;
        }
        if self.heartbeat_deadline.is_some_and(|d| now >= d) {
            return Some(TimerAction::Close(self.close(CloseReason::PingTimeout)));
        }
        if self.upgrade_deadline.is_some_and(|d| now >= d) {
            self.upgrade_deadline = None;
            self.transport = Transport::Polling;
            return Some(TimerAction::AbortUpgrade);
        }
        if self.next_ping.is_some_and(|d| now >= d) {
            self.next_ping = None;
            self.heartbeat_deadline = Some(now + self.timing.ping_timeout);
            return Some(TimerAction::SendPing);
        }
        None
    }

    /// Feeds a packet the client sent on the session's current transport.
    pub fn on_packet(&mut self, packet: Packet, now: Instant) -> Reaction {
        if self.closed.is_some() {
            return Reaction::None;
        }
        match packet {
            Packet::Message(_) | Packet::Binary(_) => Reaction::Deliver(packet),
            Packet::Ping(_) => match self.version {
                // The PONG carries no data (as Node's): a client's ping data is never sent back,
                // so big pings cost the server nothing to answer.
                ProtocolVersion::V3 => {
                    self.heartbeat_deadline =
                        Some(now + self.timing.ping_interval + self.timing.ping_timeout);
                    Reaction::Reply(Packet::Pong(Str::new()))
                }
                // In v4 the server pings; a client pings only as an upgrade probe, on the new
                // transport (see `on_probe`). A ping on the current one breaks the protocol
                // (Node: "invalid heartbeat direction").
                ProtocolVersion::V4 => Reaction::Close(self.close(CloseReason::TransportError)),
            },
            Packet::Pong(_) => {
                if self.version == ProtocolVersion::V4 && self.next_ping.is_none() {
                    self.heartbeat_deadline = None;
                    self.next_ping = Some(now + self.timing.ping_interval);
                }
                Reaction::None
            }
            Packet::Close => Reaction::Close(self.close(CloseReason::ClientClose)),
            Packet::Noop => Reaction::None,
            // OPEN never comes from a client; UPGRADE only on the probed WebSocket.
            Packet::Open(_) | Packet::Upgrade => {
                Reaction::Close(self.close(CloseReason::TransportError))
            }
        }
    }

    /// Feeds a packet that arrived on a WebSocket opened to upgrade this (polling) session.
    ///
    /// `2probe` starts the upgrade and is answered with `3probe` (the engine must then also
    /// flush any pending poll with a NOOP); `5` completes it and makes WebSocket the transport.
    /// Anything else, or a packet out of order, is an error for the upgrade: the engine drops
    /// that WebSocket (the session goes on over polling).
    pub fn on_probe(
        &mut self,
        packet: &Packet,
        now: Instant,
    ) -> Result<Option<Packet>, UpgradeRefused> {
        match (self.transport, packet) {
            (Transport::Polling, Packet::Ping(data)) if data.as_str() == "probe" => {
                self.transport = Transport::Upgrading;
                self.upgrade_deadline = Some(now + self.timing.upgrade_timeout);
                Ok(Some(Packet::Pong(Str::from_static("probe"))))
            }
            (Transport::Upgrading, Packet::Upgrade) => {
                self.transport = Transport::WebSocket;
                self.upgrade_deadline = None;
                Ok(None)
            }
            (Transport::Upgrading, Packet::Noop) => Ok(None),
            _ => Err(UpgradeRefused),
        }
    }

    /// Abandons an upgrade in progress (its WebSocket failed); the session stays on polling.
    pub fn abort_upgrade(&mut self) {
        if self.transport == Transport::Upgrading {
            self.transport = Transport::Polling;
            self.upgrade_deadline = None;
        }
    }

    /// Marks the session closed for `reason` (the first reason wins) and returns the reason
    /// that stands.
    pub fn close(&mut self, reason: CloseReason) -> CloseReason {
        *self.closed.get_or_insert(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_and_version_are_the_first_bytes() {
        assert_eq!(std::mem::offset_of!(Session, closed), 0);
        assert_eq!(std::mem::offset_of!(Session, version), 1);
    }

    fn timing() -> Timing {
        Timing {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn v4_pings_on_interval_and_times_out_without_pong() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V4, timing(), Transport::Polling, t0);
        assert_eq!(s.next_deadline(), Some(t0 + ms(25_000)));
        assert_eq!(s.on_timer(t0 + ms(24_999)), None);
        assert_eq!(s.on_timer(t0 + ms(25_000)), Some(TimerAction::SendPing));
        assert_eq!(s.next_deadline(), Some(t0 + ms(45_000)));
        assert_eq!(
            s.on_timer(t0 + ms(45_000)),
            Some(TimerAction::Close(CloseReason::PingTimeout))
        );
        assert_eq!(s.closed(), Some(CloseReason::PingTimeout));
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn v4_pong_schedules_next_ping() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V4, timing(), Transport::WebSocket, t0);
        assert_eq!(s.on_timer(t0 + ms(25_000)), Some(TimerAction::SendPing));
        assert_eq!(
            s.on_packet(Packet::Pong(Str::new()), t0 + ms(25_010)),
            Reaction::None
        );
        assert_eq!(s.next_deadline(), Some(t0 + ms(50_010)));
        assert_eq!(s.on_timer(t0 + ms(45_000)), None);
        assert_eq!(s.closed(), None);
    }

    #[test]
    fn v4_unsolicited_pong_does_not_delay_ping() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V4, timing(), Transport::WebSocket, t0);
        s.on_packet(Packet::Pong(Str::new()), t0 + ms(10));
        assert_eq!(s.next_deadline(), Some(t0 + ms(25_000)));
    }

    #[test]
    fn v3_answers_pings_and_times_out_without_them() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V3, timing(), Transport::Polling, t0);
        assert_eq!(s.next_deadline(), Some(t0 + ms(45_000)));
        assert_eq!(
            s.on_packet(Packet::Ping(Str::from("data")), t0 + ms(25_000)),
            Reaction::Reply(Packet::Pong(Str::new())),
            "the pong carries no data"
        );
        assert_eq!(s.next_deadline(), Some(t0 + ms(70_000)));
        assert_eq!(s.on_timer(t0 + ms(69_999)), None);
        assert_eq!(
            s.on_timer(t0 + ms(70_000)),
            Some(TimerAction::Close(CloseReason::PingTimeout))
        );
    }

    #[test]
    fn a_v4_client_ping_breaks_the_protocol() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V4, timing(), Transport::WebSocket, t0);
        assert_eq!(
            s.on_packet(Packet::Ping(Str::new()), t0),
            Reaction::Close(CloseReason::TransportError)
        );
    }

    #[test]
    fn messages_are_delivered_and_close_closes() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V4, timing(), Transport::Polling, t0);
        let m = Packet::Message(Str::from("hi"));
        assert_eq!(s.on_packet(m.clone(), t0), Reaction::Deliver(m));
        assert_eq!(
            s.on_packet(Packet::Close, t0),
            Reaction::Close(CloseReason::ClientClose)
        );
        assert_eq!(
            s.on_packet(Packet::Message(Str::from("late")), t0),
            Reaction::None
        );
    }

    #[test]
    fn open_or_upgrade_on_the_current_transport_is_an_error() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V4, timing(), Transport::Polling, t0);
        assert_eq!(
            s.on_packet(Packet::Upgrade, t0),
            Reaction::Close(CloseReason::TransportError)
        );
    }

    #[test]
    fn upgrade_probe_then_upgrade() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V4, timing(), Transport::Polling, t0);
        assert_eq!(s.on_probe(&Packet::Upgrade, t0), Err(UpgradeRefused));
        assert_eq!(
            s.on_probe(&Packet::Ping(Str::from("probe")), t0),
            Ok(Some(Packet::Pong(Str::from("probe"))))
        );
        assert_eq!(s.transport(), Transport::Upgrading);
        assert_eq!(s.next_deadline(), Some(t0 + ms(10_000)));
        assert_eq!(s.on_probe(&Packet::Upgrade, t0 + ms(5)), Ok(None));
        assert_eq!(s.transport(), Transport::WebSocket);
        assert_eq!(s.next_deadline(), Some(t0 + ms(25_000)));
    }

    #[test]
    fn upgrade_times_out_and_stays_on_polling() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V4, timing(), Transport::Polling, t0);
        s.on_probe(&Packet::Ping(Str::from("probe")), t0).unwrap();
        assert_eq!(s.on_timer(t0 + ms(10_000)), Some(TimerAction::AbortUpgrade));
        assert_eq!(s.transport(), Transport::Polling);
        assert_eq!(
            s.on_probe(&Packet::Upgrade, t0 + ms(10_001)),
            Err(UpgradeRefused)
        );
    }

    #[test]
    fn probe_without_probe_data_is_refused() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V3, timing(), Transport::Polling, t0);
        assert_eq!(
            s.on_probe(&Packet::Ping(Str::new()), t0),
            Err(UpgradeRefused)
        );
        assert_eq!(s.transport(), Transport::Polling);
    }

    #[test]
    fn heartbeat_expiry_is_visible_before_the_timer_runs() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V4, timing(), Transport::Polling, t0);
        assert!(
            !s.heartbeat_expired(t0 + ms(44_999)),
            "no deadline before the ping"
        );
        s.on_timer(t0 + ms(25_000));
        assert!(!s.heartbeat_expired(t0 + ms(44_999)));
        assert!(s.heartbeat_expired(t0 + ms(45_000)));
        s.close(CloseReason::PingTimeout);
        assert!(
            !s.heartbeat_expired(t0 + ms(45_000)),
            "closed is not expired"
        );
    }

    #[test]
    fn first_close_reason_wins() {
        let t0 = Instant::now();
        let mut s = Session::new(ProtocolVersion::V4, timing(), Transport::Polling, t0);
        assert_eq!(s.close(CloseReason::ServerClose), CloseReason::ServerClose);
        assert_eq!(s.close(CloseReason::PingTimeout), CloseReason::ServerClose);
    }
}
