//! Which URLs a webhook may have, and which addresses a delivery may connect to.
//!
//! It lives here, beside the webhooks' storage, because every edge registers webhooks
//! (the HTTP API, the command line, the Python bindings) through
//! [`Database::register_webhook`](crate::Database::register_webhook), and the dispatcher
//! in `storefactory-http` checks the same rules at each delivery: one copy of the rules.
//!
//! A webhook URL is chosen by any user and called by the server, from inside the cluster:
//! without a rule it would reach the cluster's services, the cloud metadata endpoint or the
//! server itself (SSRF). The rule is checked twice: on the URL when it is registered (a
//! literal address or an internal-looking name is refused at once, with a clear error), and
//! on every address the name resolves to when a delivery is sent (a public name may point
//! at a private address, or be made to later).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::Uri;

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// A URL that passed [`parse`]: its parts as the client needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https` or not.
    pub tls: bool,
    /// The host as written, without brackets for IPv6.
    pub host: String,
    /// The port, explicit or the scheme's.
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
    /// The whole URL, normalised.
    pub url: String,
}

/// Parses and checks a webhook URL: absolute `https` (or `http` when `allow_private`),
/// with a host, without credentials or a fragment, at most [`MAX_URL_LEN`] long, and not
/// naming a private or internal host unless `allow_private`. The error is for people.
pub fn parse(text: &str, allow_private: bool) -> Result<Target, String> {
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".to_owned());
    }
    if text.contains('#') {
        return Err("must not have a fragment (#...)".to_owned());
    }
    let uri: Uri = text
        .parse()
        .map_err(|_| "must be an absolute http(s) URL, like https://example.com/hook".to_owned())?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") if allow_private => false,
        Some("http") => return Err("must use https".to_owned()),
        _ => {
            return Err(
                "must be an absolute http(s) URL, like https://example.com/hook".to_owned(),
            );
        }
    };
    let Some(authority) = uri.authority() else {
        return Err("must name a host".to_owned());
    };
    if authority.as_str().contains('@') {
        return Err("must not contain credentials (user:password@)".to_owned());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err("must name a host".to_owned());
    }
    let port = match authority.port_u16() {
        Some(0) => return Err("must not use port 0".to_owned()),
        Some(port) => port,
        None if tls => 443,
        None => 80,
    };
    if !allow_private {
        match host.parse::<IpAddr>() {
            Ok(ip) if !is_public(ip) => {
                return Err(
                    "must not point at a private, loopback, link-local or internal address"
                        .to_owned(),
                );
            }
            Ok(_) => {}
            Err(_) if is_internal_name(&host) => {
                return Err(
                    "must not name a local or cluster-internal host (localhost, *.local, \
                     *.internal, *.svc, names without a dot)"
                        .to_owned(),
                );
            }
            Err(_) => {}
        }
    }
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    Ok(Target {
        tls,
        url: uri.to_string(),
        host,
        port,
        path,
    })
}

/// Names that only mean something inside a network: they resolve to private addresses, or
/// to whatever the cluster's DNS says.
fn is_internal_name(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    !host.contains('.')
        || [
            "localhost",
            "local",
            "internal",
            "svc",
            "cluster.local",
            "localdomain",
            "home.arpa",
        ]
        .iter()
        .any(|suffix| host == *suffix || host.ends_with(&format!(".{suffix}")))
}

/// Whether `ip` is a public unicast address, one a webhook may be sent to by default.
/// Refused: unspecified, loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7),
/// link-local (169.254/16 — the cloud metadata endpoint — and fe80::/10), CGNAT
/// (100.64/10), benchmarking, documentation, multicast, broadcast and reserved ranges, and
/// IPv6 forms embedding such an IPv4 address (mapped, NAT64, 6to4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach an IPv4 address.
    if segments[0] == 0x64 && segments[1] == 0xff9b && segments[2..6] == [0, 0, 0, 0] {
        let octets = ip.octets();
        return is_public_v4(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ));
    }
    if segments[0] == 0x2002 {
        let octets = ip.octets();
        return is_public_v4(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] == 0x2001 && segments[1] == 0xdb8)
        || (segments[0] == 0x0100 && segments[1..4] == [0, 0, 0])
        // ::/96, the deprecated IPv4-compatible form.
        || segments[..6] == [0, 0, 0, 0, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> String {
        parse(url, false).expect_err(url)
    }

    #[test]
    fn a_public_https_url_is_accepted_and_normalised() {
        let target = parse("https://hooks.example.com/in?x=1", false).unwrap();
        assert!(target.tls);
        assert_eq!(target.host, "hooks.example.com");
        assert_eq!(target.port, 443);
        assert_eq!(target.path, "/in?x=1");
        let bare = parse("https://Example.COM:8443", false).unwrap();
        assert_eq!((bare.port, bare.path.as_str()), (8443, "/"));
        assert_eq!(bare.host, "example.com");
    }

    #[test]
    fn malformed_urls_are_refused_with_a_reason() {
        assert!(refused("").contains("empty"));
        assert!(refused("hooks.example.com/in").contains("absolute"));
        assert!(refused("ftp://example.com/").contains("absolute"));
        assert!(refused("http://example.com/").contains("https"));
        assert!(refused("https://user:pw@example.com/").contains("credentials"));
        assert!(refused("https://example.com/a b").contains("spaces"));
        assert!(refused("https://example.com/#frag").contains("fragment"));
        assert!(refused("https://example.com:0/").contains("port 0"));
        assert!(
            refused(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN)))
                .contains("at most")
        );
    }

    #[test]
    fn private_and_internal_targets_are_refused_unless_allowed() {
        for url in [
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://172.20.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[64:ff9b::a00:1]/",
            "https://localhost/",
            "https://api.localhost/",
            "https://kubernetes.default.svc/",
            "https://db.cluster.local/",
            "https://metadata.google.internal/",
            "https://printer.local/",
            "https://intranet/",
        ] {
            let error = refused(url);
            assert!(error.contains("must not"), "{url}: {error}");
            assert!(parse(url, true).is_ok(), "{url} allowed with the option");
        }
        assert!(parse("http://127.0.0.1:9000/hook", true).is_ok());
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "100.127.255.255",
            "198.18.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "2002:a00::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
