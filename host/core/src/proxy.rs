//! The trusted reverse proxies of `[server] trusted_proxies`: an address or a
//! network in CIDR form, and which header they write the client's address in.
//!
//! Owns parsing a range and testing an address against it; it does not read
//! forwarding headers (the server does).

use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// `[server] forwarded_header`: the header the trusted proxies append the
/// client's address to. Only that one is read: a client can send the other
/// itself, and a proxy that appends to one passes the other on untouched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, which most proxies append to (nginx, HAProxy,
    /// cloud load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

/// One entry of `trusted_proxies`: an address, or a network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRange {
    network: IpAddr,
    prefix_len: u8,
}

impl ProxyRange {
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for ProxyRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "trusted proxy `{text}` is neither an IP address nor a network in CIDR form \
                 (10.0.0.0/8, fd00::/8)"
            )
        };
        let (address, prefix_len) = match text.split_once('/') {
            Some((address, prefix_len)) => (address, Some(prefix_len)),
            None => (text, None),
        };
        let network = IpAddr::from_str(address).map_err(|_| bad())?.to_canonical();
        let max_len = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix_len {
            None => max_len,
            Some(len) => len
                .parse::<u8>()
                .ok()
                .filter(|len| *len <= max_len)
                .ok_or_else(bad)?,
        };
        Ok(ProxyRange {
            network,
            prefix_len,
        })
    }
}

impl<'de> Deserialize<'de> for ProxyRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_contain_what_their_prefix_covers() {
        let private = "10.0.0.0/8".parse::<ProxyRange>().unwrap();
        assert!(private.contains(ip("10.200.3.4")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(private.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        let one = "192.0.2.7".parse::<ProxyRange>().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6 = "fd00::/8".parse::<ProxyRange>().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let everything = "0.0.0.0/0".parse::<ProxyRange>().unwrap();
        assert!(everything.contains(ip("203.0.113.9")));
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "proxy.internal",
            "10.0.0/8",
            "",
        ] {
            assert!(bad.parse::<ProxyRange>().is_err(), "{bad}");
        }
    }
}
