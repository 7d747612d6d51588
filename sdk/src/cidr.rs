//! IP allowlist entries: CIDR blocks (or single addresses) for IPv4 and IPv6. Shared by the
//! host (which normalises what admins enter) and plugins (which match client addresses).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A parsed CIDR block; valid by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A string that is not an address or CIDR block; holds the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(pub String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not an IP address or CIDR block (e.g. 203.0.113.0/24 or 2001:db8::/32)", self.0)
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x:y::/n` or a single address (a /32 or /128).
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let err = || CidrError(text.to_owned());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let ip = IpAddr::from_str(addr).map_err(|_| err())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| err())?
            }
            Some(_) => return Err(err()),
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        Ok(Self { network: mask(ip, prefix), prefix })
    }

    /// Whether `ip` is inside this block. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) matches
    /// IPv4 blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// True when `allowlist` is empty (any address) or one of its blocks holds `ip`.
pub fn allowed(allowlist: &[Cidr], ip: IpAddr) -> bool {
    allowlist.is_empty() || allowlist.iter().any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn v4_and_v6_blocks_match_what_they_should() {
        let table: &[(&str, &str, bool)] = &[
            ("203.0.113.0/24", "203.0.113.7", true),
            ("203.0.113.0/24", "203.0.114.7", false),
            ("203.0.113.9", "203.0.113.9", true),
            ("203.0.113.9", "203.0.113.8", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("10.0.0.0/8", "2001:db8::1", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::1", "::1", true),
            ("::/0", "2001:db8::1", true),
            ("::/0", "127.0.0.1", false),
            ("192.168.1.130/25", "192.168.1.200", true),
            ("192.168.1.130/25", "192.168.1.100", false),
        ];
        for (cidr, addr, expected) in table {
            assert_eq!(Cidr::parse(cidr).expect(cidr).contains(ip(addr)), *expected, "{cidr} {addr}");
        }
    }

    #[test]
    fn bad_blocks_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "hello",
            "10.0.0.0/8/8",
            "1.2.3.4/ 8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Cidr::parse("192.168.1.130/25").expect("ok").to_string(), "192.168.1.128/25");
    }
}
