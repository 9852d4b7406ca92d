//! Which peers may speak for a client (trusted proxies), and which `Host` names the server
//! answers to.
//!
//! `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-For` are set by a reverse proxy, but
//! anyone can send them: the engine believes them only from a peer in [`TrustedProxies`]
//! (loopback by default, for the common nginx-on-the-same-host setup). A server bound to
//! loopback can also be reached by a web page through DNS rebinding (a name of the attacker's
//! that resolves to 127.0.0.1): [`AllowedHosts`] refuses requests whose `Host` is not a name
//! the server was told it serves.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`, or a plain address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in the network (IPv4-mapped IPv6 addresses count as their IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a network did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpNetError(String);

impl fmt::Display for IpNetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an IP address or network (like 10.0.0.0/8)",
            self.0
        )
    }
}

impl std::error::Error for IpNetError {}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<IpNet, IpNetError> {
        let err = || IpNetError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        Ok(IpNet {
            addr: addr.to_canonical(),
            prefix,
        })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The peers whose forwarded headers are believed. Default: loopback (`127.0.0.0/8`, `::1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl Default for TrustedProxies {
    fn default() -> Self {
        TrustedProxies::new([
            IpNet {
                addr: IpAddr::from([127, 0, 0, 0]),
                prefix: 8,
            },
            IpNet {
                addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ])
    }
}

impl TrustedProxies {
    /// These networks.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        TrustedProxies(nets.into_iter().collect())
    }

    /// No peer is trusted: forwarded headers are always ignored.
    pub fn none() -> Self {
        TrustedProxies(Vec::new())
    }

    /// Whether `peer` (the address the connection comes from) may speak for a client. An
    /// unknown peer (the engine served without [`crate::RemoteAddr`]) is not trusted.
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.0.iter().any(|net| net.contains(ip)))
    }

    /// The networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }
}

/// The `Host` names the server answers to. Default: any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Any `Host`.
    #[default]
    Any,
    /// Only these names (compared without the port, case-insensitively; IPv6 addresses without
    /// brackets).
    List(Vec<String>),
}

impl AllowedHosts {
    /// The loopback names: `localhost`, `127.0.0.1`, `::1` (what a server bound to loopback
    /// answers to unless told otherwise).
    pub fn loopback() -> Self {
        AllowedHosts::List(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])
    }

    /// Whether a request with this `Host` header (absent: refused when there is a list) may go
    /// on.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let list = match self {
            AllowedHosts::Any => return true,
            AllowedHosts::List(list) => list,
        };
        let Some(host) = host else {
            return false;
        };
        let name = strip_port(host.trim());
        list.iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }
}

/// `example.com:3000` -> `example.com`, `[::1]:3000` -> `::1`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn networks_parse_and_match() {
        let net: IpNet = "10.1.0.0/16".parse().expect("net");
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(!net.contains(ip("::1")));
        let one: IpNet = "192.168.1.5".parse().expect("address");
        assert!(one.contains(ip("192.168.1.5")));
        assert!(!one.contains(ip("192.168.1.6")));
        let v6: IpNet = "fd00::/8".parse().expect("v6");
        assert!(v6.contains(ip("fd12::1")));
        let all: IpNet = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains(ip("8.8.8.8")));
        for bad in ["", "10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_is_trusted_by_default_mapped_addresses_included() {
        let t = TrustedProxies::default();
        assert!(t.trusts(Some(ip("127.0.0.1"))));
        assert!(t.trusts(Some(ip("127.9.9.9"))));
        assert!(t.trusts(Some(ip("::1"))));
        assert!(t.trusts(Some(ip("::ffff:127.0.0.1"))));
        assert!(!t.trusts(Some(ip("10.0.0.1"))));
        assert!(!t.trusts(None), "an unknown peer is not trusted");
        assert!(!TrustedProxies::none().trusts(Some(ip("127.0.0.1"))));
    }

    #[test]
    fn hosts_are_compared_without_port_or_case() {
        let h = AllowedHosts::loopback();
        for ok in [
            "localhost",
            "LOCALHOST:3000",
            "127.0.0.1:8080",
            "[::1]:3000",
            "[::1]",
        ] {
            assert!(h.allows(Some(ok)), "{ok}");
        }
        for refused in [
            "evil.test",
            "evil.test:3000",
            "127.0.0.1.evil.test",
            "localhostx",
        ] {
            assert!(!h.allows(Some(refused)), "{refused}");
        }
        assert!(!h.allows(None));
        assert!(AllowedHosts::Any.allows(None));
        assert!(AllowedHosts::Any.allows(Some("anything")));
    }
}
