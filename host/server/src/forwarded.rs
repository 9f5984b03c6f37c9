//! The address a request comes from, behind reverse proxies.
//!
//! It is the socket peer, unless that peer is one of `[server]
//! trusted_proxies`. Then the one header those proxies write, `[server]
//! forwarded_header` (`X-Forwarded-For` by default, or `Forwarded`, RFC
//! 7239), is read from the right: each proxy appends the address it got the
//! request from, so the right-most address that is not itself a trusted
//! proxy is the client. The other header is never read: a proxy that
//! appends to one passes the other on as the client wrote it. From anyone
//! but a trusted proxy both are ignored.
//!
//! Owns the parsing of those headers and of the trusted ranges; it does not
//! decide what the address is used for (actions read it as
//! `event.request.ip`). The request's scheme never comes from a header:
//! every URL the service builds comes from its configured `issuer`, so
//! `X-Forwarded-Proto` is read from no one.

use std::net::IpAddr;

use axum::http::HeaderMap;
use claimsmith_core::ForwardedHeader;
pub use claimsmith_core::ProxyRange;

/// The client's address for a request that came from `peer`, reading
/// `header` when `peer` is one of the `trusted` proxies.
pub fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[ProxyRange],
    header: ForwardedHeader,
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |address: IpAddr| trusted.iter().any(|range| range.contains(address));
    if !is_trusted(peer) {
        return peer;
    }
    let hops = forwarded_hops(headers, header);
    let mut leftmost = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(address) if is_trusted(*address) => leftmost = *address,
            Some(address) => return *address,
            // `unknown` or an obfuscated name: nothing to its left can be
            // told apart from what a client wrote.
            None => return peer,
        }
    }
    leftmost
}

/// The addresses the proxies recorded in `header`, left (first) to right
/// (last); `None` for a hop that is not an IP address.
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let name = match header {
        ForwardedHeader::Forwarded => "forwarded",
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
    };
    let elements = headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or_default().split(','));
    match header {
        ForwardedHeader::Forwarded => elements
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, node)| parse_node(node.trim().trim_matches('"')))
            })
            .collect(),
        ForwardedHeader::XForwardedFor => elements.map(|node| parse_node(node.trim())).collect(),
    }
}

/// `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        let (address, _port) = rest.split_once(']')?;
        return address.parse().ok();
    }
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.rsplit_once(':')?.0.parse::<IpAddr>().ok())
        .map(|address| address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;
    const FORWARDED: ForwardedHeader = ForwardedHeader::Forwarded;

    fn ranges(list: &[&str]) -> Vec<ProxyRange> {
        list.iter().map(|range| range.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_its_headers_say() {
        let spoofed = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        let trusted = ranges(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(ip("203.0.113.9"), &spoofed, &trusted, XFF),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &spoofed, &[], FORWARDED),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = ranges(&["10.0.0.0/8"]);
        // The client wrote the first entry itself; the proxies appended the rest.
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.5")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &chain, &trusted, XFF),
            ip("203.0.113.9")
        );
        // Several header lines are one list, in order.
        let lines = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &lines, &trusted, XFF),
            ip("203.0.113.9")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.1"), &HeaderMap::new(), &trusted, XFF),
            ip("10.0.0.1")
        );
        // Only proxies: the first of them.
        let inner = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.5")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &inner, &trusted, XFF),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let trusted = ranges(&["10.0.0.0/8"]);
        // A proxy appending to X-Forwarded-For passes on the Forwarded the
        // client wrote, and the other way round.
        let both = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=192.0.2.66"),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &both, &trusted, XFF),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &both, &trusted, FORWARDED),
            ip("192.0.2.66")
        );
        let other_only = headers(&[("forwarded", "for=192.0.2.66")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &other_only, &trusted, XFF),
            ip("10.0.0.1"),
            "the proxy itself, not what it passed on"
        );
    }

    #[test]
    fn forwarded_nodes_may_be_quoted_bracketed_or_unknown() {
        let trusted = ranges(&["10.0.0.0/8"]);
        let quoted = headers(&[(
            "forwarded",
            r#"for=192.0.2.43;proto=https, For="[2001:db8:cafe::17]:4711";by=10.0.0.2"#,
        )]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &quoted, &trusted, FORWARDED),
            ip("2001:db8:cafe::17")
        );
        let port = headers(&[("forwarded", "for=\"192.0.2.43:8443\"")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &port, &trusted, FORWARDED),
            ip("192.0.2.43")
        );
        let unknown = headers(&[("forwarded", "for=192.0.2.43, for=unknown")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &unknown, &trusted, FORWARDED),
            ip("10.0.0.1")
        );
    }
}
