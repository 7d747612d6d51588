//! How a request names its caller and where it came from, read the same way by the host and by
//! plugins: the presented credential, and the client's address and scheme behind proxies.

use std::net::IpAddr;

/// The credential a request presents: `Authorization: Bearer <key>` (the scheme matched without
/// regard to case), else `X-API-Key`. `None` when neither carries one; an `Authorization` of
/// another scheme presents nothing (it is not read as a key).
pub fn credential<'a>(authorization: Option<&'a str>, x_api_key: Option<&'a str>) -> Option<&'a str> {
    if let Some(auth) = authorization {
        let (scheme, token) = auth.trim().split_once(' ')?;
        let token = token.trim();
        return (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token);
    }
    x_api_key.map(str::trim).filter(|k| !k.is_empty())
}

/// The client's address and scheme when the TCP peer is a trusted proxy, from every
/// `X-Forwarded-For` and `X-Forwarded-Proto` value in the order received (proxies append). The
/// client is the rightmost address that is not a trusted proxy: whatever a client writes itself
/// stands to the left of what our proxies appended. The scheme is the rightmost value, the one
/// the nearest proxy set. With an untrusted peer, forwarding headers are ignored: `(peer, None)`.
/// A forwarded value that is not an address makes the client unknown (`None`), never the proxy.
pub fn client(
    peer: Option<IpAddr>,
    forwarded_for: &[&str],
    forwarded_proto: &[&str],
    trusted: impl Fn(&IpAddr) -> bool,
) -> (Option<IpAddr>, Option<String>) {
    let Some(peer) = peer.filter(|p| trusted(p)) else { return (peer, None) };
    let hops = forwarded_for.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|h| !h.is_empty());
    let mut client = Some(peer);
    for hop in hops.collect::<Vec<_>>().into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted(&ip) => client = Some(ip),
            Ok(ip) => {
                client = Some(ip);
                break;
            }
            Err(_) => {
                client = None;
                break;
            }
        }
    }
    let scheme = forwarded_proto
        .iter()
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_ascii_lowercase())
        .rfind(|p| !p.is_empty());
    (client, scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn credentials_are_read_one_way() {
        assert_eq!(credential(Some("Bearer ak_1"), None), Some("ak_1"));
        assert_eq!(credential(Some("bearer  ak_1 "), None), Some("ak_1"));
        assert_eq!(credential(Some("BEARER ak_1"), Some("ak_2")), Some("ak_1"));
        assert_eq!(credential(Some("Basic dTpw"), Some("ak_2")), None, "another scheme presents no key");
        assert_eq!(credential(Some("Bearer "), None), None);
        assert_eq!(credential(None, Some(" ak_2 ")), Some("ak_2"));
        assert_eq!(credential(None, None), None);
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let proxy = |a: &IpAddr| a.to_string().starts_with("10.");
        // The client wrote an allowed address itself; the proxy appended the real one.
        let (found, scheme) =
            client(Some(ip("10.0.0.1")), &["203.0.113.7", "198.51.100.9"], &["https", "http"], proxy);
        assert_eq!((found, scheme.as_deref()), (Some(ip("198.51.100.9")), Some("http")));
        let (found, _) = client(Some(ip("10.0.0.1")), &["198.51.100.9, 10.0.0.2"], &[], proxy);
        assert_eq!(found, Some(ip("198.51.100.9")), "our own proxies are skipped");
        let (found, scheme) = client(Some(ip("192.0.2.1")), &["203.0.113.7"], &["https"], proxy);
        assert_eq!((found, scheme), (Some(ip("192.0.2.1")), None), "an untrusted peer vouches for nothing");
        assert_eq!(client(Some(ip("10.0.0.1")), &["garbage"], &[], proxy).0, None);
    }
}
