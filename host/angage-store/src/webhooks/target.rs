//! Where a delivery may go: `https://` (or `http://` when insecure URLs are allowed), and never
//! to loopback, private, link-local, shared or metadata addresses unless private targets are
//! allowed. An endpoint's URL is checked when it is saved (an address written in the URL) and
//! the worker checks every address the name resolves to before it connects.

use std::net::IpAddr;

use angage_core::config::WebhookSettings;

/// Longest endpoint URL accepted.
pub const MAX_URL: usize = 2048;

/// Why a URL or an address is refused; the message is the client's to read.
pub fn check_url(text: &str, settings: &WebhookSettings) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("must be an absolute URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if settings.allow_insecure_urls => {}
        "http" => {
            return Err(
                "must use https:// (plain http is allowed only with webhooks.allow_insecure_urls)".into()
            );
        }
        other => return Err(format!("must use https://, not {other}://")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password; the signature authenticates us".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => return literal(IpAddr::V4(ip), settings).map(|()| url),
        Some(url::Host::Ipv6(ip)) => return literal(IpAddr::V6(ip), settings).map(|()| url),
        None => return Err("must name a host".into()),
    };
    let local = host == "localhost" || host.ends_with(".localhost") || host.ends_with(".internal");
    if local && !settings.allow_private_targets {
        return Err(format!("{host} is a local name; private targets need webhooks.allow_private_targets"));
    }
    Ok(url)
}

fn literal(ip: IpAddr, settings: &WebhookSettings) -> Result<(), String> {
    if forbidden(ip) && !settings.allow_private_targets {
        return Err(format!(
            "{ip} is a loopback, private, link-local or metadata address; such targets need webhooks.allow_private_targets"
        ));
    }
    Ok(())
}

/// An address a delivery must not reach when private targets are not allowed.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local() // 169.254/16, the cloud metadata range
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || (first == 0x64 && v6.segments()[1] == 0xff9b) // NAT64 to IPv4
                || first == 0x2002 // 6to4, may wrap a private IPv4
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> WebhookSettings {
        angage_core::config::Settings::default().webhooks
    }

    #[test]
    fn private_and_metadata_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "fd00:ec2::254",
        ] {
            assert!(forbidden(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!forbidden(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_against_the_switches() {
        let s = strict();
        assert!(check_url("https://hooks.example.com/erp", &s).is_ok());
        assert!(check_url("http://hooks.example.com/erp", &s).expect_err("http").contains("https"));
        assert!(
            check_url("https://127.0.0.1:9000/x", &s)
                .expect_err("loopback")
                .contains("allow_private_targets")
        );
        assert!(check_url("https://[::1]/x", &s).is_err());
        assert!(check_url("https://localhost/x", &s).is_err());
        assert!(check_url("https://u:p@hooks.example.com/", &s).is_err());
        assert!(check_url("ftp://hooks.example.com/", &s).is_err());
        assert!(check_url("not a url", &s).is_err());
        let open = WebhookSettings { allow_insecure_urls: true, allow_private_targets: true, ..s };
        assert!(check_url("http://127.0.0.1:9000/hook", &open).is_ok());
    }
}
