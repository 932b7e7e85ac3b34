//! `Ipv4Net`: an IPv4 subnet (network address and prefix length) with the host-local layout.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::CniError;

/// An IPv4 subnet such as `10.66.0.0/16`; the address is always the network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Net {
    /// Longest prefix that still leaves room for the gateway and one Pod.
    pub const MAX_PREFIX_LEN: u8 = 30;

    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Result<Self, CniError> {
        let invalid = |reason| CniError::InvalidSubnet {
            input: format!("{addr}/{prefix_len}"),
            reason,
        };
        if prefix_len > Self::MAX_PREFIX_LEN {
            return Err(invalid("prefix length must be at most 30"));
        }
        if u32::from(addr) & !mask(prefix_len) != 0 {
            return Err(invalid("host bits are set"));
        }
        Ok(Self { addr, prefix_len })
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix_len))
    }

    /// The gateway, the first usable address (`.1` of a /24), held by the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix_len) == u32::from(self.addr)
    }

    /// The addresses a Pod may get: everything but network, gateway and broadcast.
    pub fn pod_range(&self) -> std::ops::RangeInclusive<u32> {
        u32::from(self.addr) + 2..=u32::from(self.broadcast()) - 1
    }
}

/// The broadcast address of `ip`'s network of `prefix_len` bits.
pub(crate) fn broadcast_of(ip: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) | !mask(prefix_len))
}

/// The network address of `ip` in a network of `prefix_len` bits.
pub(crate) fn network_of(ip: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) & mask(prefix_len))
}

fn mask(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

impl FromStr for Ipv4Net {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| CniError::InvalidSubnet {
            input: s.to_owned(),
            reason,
        };
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| invalid("expected address/prefix"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid("bad ipv4 address"))?;
        // u8::from_str accepts a leading '+', which no address notation does.
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("bad prefix length"));
        }
        let prefix_len: u8 = prefix.parse().map_err(|_| invalid("bad prefix length"))?;
        if prefix_len > 32 {
            return Err(invalid("bad prefix length"));
        }
        Self::new(addr, prefix_len).map_err(|e| match e {
            CniError::InvalidSubnet { reason, .. } => invalid(reason),
            other => other,
        })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let net: Ipv4Net = "10.66.0.0/16".parse().unwrap();
        assert_eq!(net.addr(), Ipv4Addr::new(10, 66, 0, 0));
        assert_eq!(net.prefix_len(), 16);
        assert_eq!(net.to_string(), "10.66.0.0/16");
        assert_eq!(net.gateway(), Ipv4Addr::new(10, 66, 0, 1));
        assert_eq!(net.broadcast(), Ipv4Addr::new(10, 66, 255, 255));
        assert!(net.contains(Ipv4Addr::new(10, 66, 3, 4)));
        assert!(!net.contains(Ipv4Addr::new(10, 67, 0, 1)));
        let p30: Ipv4Net = "192.168.1.4/30".parse().unwrap();
        assert_eq!(p30.pod_range().count(), 1);
        let p0: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert_eq!(p0.broadcast(), Ipv4Addr::BROADCAST);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "10.66.0.0",
            "10.66.0.0/",
            "10.66.0/16",
            "10.66.0.0/+16",
            "10.66.0.0/33",
            "10.66.0.0/31",
            "10.66.0.1/16",
            "fd00::/64",
            "10.66.0.0/16/1",
        ] {
            let err = bad.parse::<Ipv4Net>().unwrap_err();
            assert!(
                matches!(err, CniError::InvalidSubnet { ref input, .. } if input == bad),
                "{bad}: {err}"
            );
        }
    }
}
