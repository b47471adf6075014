//! Who the client is and which scheme it used, when the edge sits behind
//! proxies: `Forwarded` (RFC 7239), `X-Forwarded-For` and `X-Forwarded-Proto`
//! (the de facto headers every load balancer sets). One parser, one trust rule,
//! used for the access log's client address and for the scheme of redirects
//! and `redirect_http`.
//!
//! The trust rule (`--trusted-proxy CIDR`):
//!
//! 1. A request whose peer is not a trusted proxy is taken as it is: the peer
//!    is the client, the connection's scheme is the scheme. Its forwarding
//!    headers are ignored, whatever they say.
//! 2. From a trusted peer, the forwarding headers are read as a list of hops,
//!    oldest first (each proxy appends the address it got the request from,
//!    RFC 7239 section 5.2). The `X-Forwarded-*` pair is used when either is
//!    present, else `Forwarded`: the headers proxies set most often win, so a
//!    proxy that sets them but passes a client's `Forwarded` through cannot be
//!    fooled by it.
//! 3. The hops are walked from the newest: while a hop's address is itself a
//!    trusted proxy, the one before it is taken. The first hop whose address is
//!    not trusted (or is unknown, or the oldest) names the client; its scheme is
//!    the client's, else the nearest newer hop's that gives one.
//! 4. A TLS connection's scheme is https whatever a header says.
//!
//! An IPv4 address mapped into IPv6 (`::ffff:192.0.2.1`, what a dual-stack
//! `[::]` listener sees of an IPv4 peer) is the IPv4 address, for the trust
//! rule and in what it reports, as nginx's address matching takes it.

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HeaderName, FORWARDED};
use actix_web::HttpRequest;
use ipnet::IpNet;

/// `X-Forwarded-For`: the addresses a request passed through, oldest first.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// A URI scheme the edge serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `http` or `https`, case-insensitively (RFC 3986 section 3.1); `None` for
    /// anything else.
    pub fn parse(text: &str) -> Option<Scheme> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("https") {
            Some(Scheme::Https)
        } else if text.eq_ignore_ascii_case("http") {
            Some(Scheme::Http)
        } else {
            None
        }
    }
}

/// One hop as a proxy reported it: the address it got the request from
/// (`None`: `unknown`, obfuscated or unreadable) and the scheme used to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub address: Option<IpAddr>,
    pub scheme: Option<Scheme>,
}

/// The forwarding headers of a request; a header sent on several lines is
/// joined with `, ` (RFC 9110 section 5.3).
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardingHeaders<'a> {
    pub forwarded: Option<&'a str>,
    pub x_forwarded_for: Option<&'a str>,
    pub x_forwarded_proto: Option<&'a str>,
}

/// The client as the edge understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// `None` only when neither the peer nor a trusted header says.
    pub address: Option<IpAddr>,
    pub scheme: Scheme,
}

/// Applies the trust rule (module doc) to a request from `peer` over a
/// connection of `connection_scheme`.
pub fn client(
    peer: Option<IpAddr>,
    connection_scheme: Scheme,
    headers: ForwardingHeaders<'_>,
    trusted: &[IpNet],
) -> Client {
    let believed = |ip: &IpAddr| is_trusted(*ip, trusted);
    let peer = peer.map(|ip| ip.to_canonical());
    let as_is = Client {
        address: peer,
        scheme: connection_scheme,
    };
    if !peer.as_ref().is_some_and(believed) {
        return as_is;
    }
    let hops = hops(headers);
    let Some(mut chosen) = hops.len().checked_sub(1) else {
        return as_is;
    };
    while chosen > 0 && hops[chosen].address.as_ref().is_some_and(believed) {
        chosen -= 1;
    }
    let scheme = match connection_scheme {
        Scheme::Https => Scheme::Https,
        Scheme::Http => hops[chosen..]
            .iter()
            .find_map(|hop| hop.scheme)
            .unwrap_or(Scheme::Http),
    };
    Client {
        address: hops[chosen].address.or(peer),
        scheme,
    }
}

/// Whether `ip` (or the IPv4 address it maps) is in one of `trusted`.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let canonical = ip.to_canonical();
    trusted
        .iter()
        .any(|net| net.contains(&canonical) || net.contains(&ip))
}

/// The address of the request's peer, an IPv4-mapped one as IPv4.
pub fn peer(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip().to_canonical())
}

/// The hops the headers report, oldest first: from `X-Forwarded-For` and
/// `X-Forwarded-Proto` (paired by position from the newest) when either is
/// present, else from `Forwarded`.
pub fn hops(headers: ForwardingHeaders<'_>) -> Vec<Hop> {
    if headers.x_forwarded_for.is_some() || headers.x_forwarded_proto.is_some() {
        x_forwarded_hops(headers.x_forwarded_for, headers.x_forwarded_proto)
    } else {
        headers.forwarded.map(forwarded_hops).unwrap_or_default()
    }
}

/// `X-Forwarded-For: client, proxy1` with `X-Forwarded-Proto: https`: one hop
/// per address, the lists lined up from their newest ends. A single scheme,
/// as load balancers send it, is the one the newest address used to reach
/// the proxy that set it ("the protocol the client used to connect to the
/// load balancer", AWS): with `X-Forwarded-For` passed on from further out
/// (a client's own, or a CDN's in front of the load balancer), lining up
/// from the oldest gave it to an address the walk never reaches, and an
/// https request was taken as http.
pub fn x_forwarded_hops(for_list: Option<&str>, proto_list: Option<&str>) -> Vec<Hop> {
    let addresses: Vec<Option<IpAddr>> = list(for_list).map(parse_node).collect();
    let schemes: Vec<Option<Scheme>> = list(proto_list).map(Scheme::parse).collect();
    let len = addresses.len().max(schemes.len());
    (0..len)
        .map(|i| Hop {
            address: from_newest(&addresses, len, i),
            scheme: from_newest(&schemes, len, i),
        })
        .collect()
}

/// The `i`-th of `len` hops from a list that names only the newest
/// `items.len()` of them.
fn from_newest<T: Copy>(items: &[Option<T>], len: usize, i: usize) -> Option<T> {
    (i + items.len())
        .checked_sub(len)
        .and_then(|i| items.get(i).copied().flatten())
}

/// The elements of a comma-separated list, trimmed, empty ones skipped.
fn list(value: Option<&str>) -> impl Iterator<Item = &str> {
    value
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// `Forwarded` (RFC 7239 section 4): one hop per element, from its `for` and
/// `proto` parameters. Quoted strings may hold `,` and `;`; parameter names are
/// case-insensitive; an element that cannot be read is a hop that says nothing.
pub fn forwarded_hops(value: &str) -> Vec<Hop> {
    split_outside_quotes(value, ',')
        .into_iter()
        .filter(|element| !element.trim().is_empty())
        .map(|element| {
            let mut hop = Hop {
                address: None,
                scheme: None,
            };
            for pair in split_outside_quotes(element, ';') {
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = unquote(value.trim());
                match name.trim().to_ascii_lowercase().as_str() {
                    "for" => hop.address = parse_node(&value),
                    "proto" => hop.scheme = Scheme::parse(&value),
                    _ => {}
                }
            }
            hop
        })
        .collect()
}

/// Splits at `separator` where it is not inside a quoted string.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A token or a quoted string (RFC 9110 section 5.6.4), unquoted.
fn unquote(value: &str) -> String {
    let Some(inner) = value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out
}

/// A node (RFC 7239 section 6): `192.0.2.43`, `192.0.2.43:47011`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`; and, as `X-Forwarded-For` carries
/// it, a bare `2001:db8::1`. `unknown` and obfuscated names (`_hidden`) are
/// `None`.
pub fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return if port_ok {
            ip.parse::<std::net::Ipv6Addr>()
                .ok()
                .map(|ip| IpAddr::V6(ip).to_canonical())
        } else {
            None
        };
    }
    let (ip, port) = node.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// A `node-port` (RFC 7239 section 6): a port number or an obfuscated one.
fn is_port(port: &str) -> bool {
    !port.is_empty()
        && (port.bytes().all(|b| b.is_ascii_digit())
            || (port.starts_with('_')
                && port
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))))
}

/// One header's lines joined with `, `; `None` when absent or not text.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

/// [`client`] for an actix request: its peer, its connection's scheme, its
/// headers.
pub fn from_request(req: &HttpRequest, trusted: &[IpNet]) -> Client {
    let peer = peer(req);
    let connection_scheme = if req.app_config().secure() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    // Untrusted peers cost no header reading.
    if !peer.is_some_and(|ip| is_trusted(ip, trusted)) {
        return Client {
            address: peer,
            scheme: connection_scheme,
        };
    }
    let forwarded = joined(req.headers(), &FORWARDED);
    let x_forwarded_for = joined(req.headers(), &X_FORWARDED_FOR);
    let x_forwarded_proto = joined(req.headers(), &X_FORWARDED_PROTO);
    let headers = ForwardingHeaders {
        forwarded: forwarded.as_deref(),
        x_forwarded_for: x_forwarded_for.as_deref(),
        x_forwarded_proto: x_forwarded_proto.as_deref(),
    };
    client(peer, connection_scheme, headers, trusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.1";

    fn trusted() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]
    }

    /// A request from `peer` with forwarding headers, and the client it names.
    struct Case {
        name: &'static str,
        peer: &'static str,
        forwarded: Option<&'static str>,
        xff: Option<&'static str>,
        xfp: Option<&'static str>,
        address: &'static str,
        scheme: Scheme,
    }

    /// A trusted proxy's request without forwarding headers.
    const PROXIED: Case = Case {
        name: "",
        peer: PROXY,
        forwarded: None,
        xff: None,
        xfp: None,
        address: PROXY,
        scheme: Scheme::Http,
    };
    const UNTRUSTED: &str = "203.0.113.9";
    const CLIENT: &str = "198.51.100.1";
    use Scheme::Https;

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        Case { name: "an untrusted peer is the client, whatever it says", peer: UNTRUSTED, xff: Some(CLIENT), xfp: Some("https"), address: UNTRUSTED, ..PROXIED },
        Case { name: "an untrusted peer's Forwarded is ignored too", peer: UNTRUSTED, forwarded: Some("for=198.51.100.1;proto=https"), address: UNTRUSTED, ..PROXIED },
        Case { name: "a trusted peer without headers is the client", ..PROXIED },
        Case { name: "a trusted peer's X-Forwarded-For and -Proto", xff: Some(CLIENT), xfp: Some("https"), address: CLIENT, scheme: Https, ..PROXIED },
        Case { name: "a trusted peer's Forwarded", forwarded: Some("for=198.51.100.1;proto=https"), address: CLIENT, scheme: Https, ..PROXIED },
        Case { name: "Forwarded names are case-insensitive, values may be quoted", forwarded: Some("For=\"198.51.100.1\";PROTO=HTTPS"), address: CLIENT, scheme: Https, ..PROXIED },
        Case { name: "Forwarded IPv6 with a port, quoted", forwarded: Some("for=\"[2001:db8::1]:4711\""), address: "2001:db8::1", ..PROXIED },
        Case { name: "Forwarded IPv4 with a port", forwarded: Some("for=\"198.51.100.1:8080\""), address: CLIENT, ..PROXIED },
        Case { name: "X-Forwarded-For IPv6, bare", xff: Some("2001:db8::2"), address: "2001:db8::2", ..PROXIED },
        Case { name: "a spoofed first entry: the address the trusted proxy appended wins", xff: Some("1.1.1.1, 198.51.100.1"), address: CLIENT, ..PROXIED },
        Case { name: "a spoofed Forwarded element: the newest wins, proto included", forwarded: Some("for=1.1.1.1;proto=https, for=198.51.100.1;proto=http"), address: CLIENT, ..PROXIED },
        Case { name: "a chain of trusted proxies is walked back to the client", xff: Some("198.51.100.1, 10.0.0.7, 10.0.0.8"), address: CLIENT, ..PROXIED },
        Case { name: "a Forwarded chain of trusted proxies is walked back too", forwarded: Some("for=198.51.100.1;proto=https, for=10.0.0.7;proto=http"), address: CLIENT, scheme: Https, ..PROXIED },
        Case { name: "the walk stops at the first untrusted address", xff: Some("198.51.100.1, 192.0.2.5, 10.0.0.8"), address: "192.0.2.5", ..PROXIED },
        Case { name: "a single X-Forwarded-Proto is the client's, behind a chain", xff: Some("198.51.100.1, 10.0.0.7"), xfp: Some("https"), address: CLIENT, scheme: Https, ..PROXIED },
        Case { name: "X-Forwarded-Proto alone sets the scheme; the peer stays the client", xfp: Some("https"), scheme: Https, ..PROXIED },
        Case { name: "X-Forwarded-* win over Forwarded", forwarded: Some("for=1.1.1.1;proto=http"), xff: Some(CLIENT), xfp: Some("https"), address: CLIENT, scheme: Https, ..PROXIED },
        Case { name: "unknown is no address: the peer stays the client", forwarded: Some("for=unknown;proto=https"), scheme: Https, ..PROXIED },
        Case { name: "an obfuscated node is no address", forwarded: Some("for=_hidden"), ..PROXIED },
        Case { name: "garbage in X-Forwarded-For is no address", xff: Some("not an address"), ..PROXIED },
        Case { name: "an unknown scheme is ignored", xff: Some(CLIENT), xfp: Some("gopher"), address: CLIENT, ..PROXIED },
        Case { name: "a quoted comma does not split Forwarded", forwarded: Some("for=198.51.100.1;ext=\"a,b\";proto=https"), address: CLIENT, scheme: Https, ..PROXIED },
        Case { name: "empty list elements are skipped", xff: Some(" , 198.51.100.1 ,"), address: CLIENT, ..PROXIED },
        Case { name: "a trusted IPv6 peer", peer: "fd00::1", xff: Some(CLIENT), xfp: Some("https"), address: CLIENT, scheme: Https, ..PROXIED },
        Case { name: "a single X-Forwarded-Proto goes with the address the load balancer appended", xff: Some("1.1.1.1, 198.51.100.1"), xfp: Some("https"), address: CLIENT, scheme: Https, ..PROXIED },
        Case { name: "behind a CDN the load balancer's X-Forwarded-Proto is the CDN's scheme", xff: Some("1.1.1.1, 203.0.113.9"), xfp: Some("https"), address: UNTRUSTED, scheme: Https, ..PROXIED },
        Case { name: "a list of schemes lines up with the addresses from the newest", xff: Some("1.1.1.1, 198.51.100.1, 10.0.0.7"), xfp: Some("https, http"), address: CLIENT, scheme: Https, ..PROXIED },
        Case { name: "an IPv4-mapped peer is its IPv4 address", peer: "::ffff:10.0.0.1", xff: Some(CLIENT), xfp: Some("https"), address: CLIENT, scheme: Https, ..PROXIED },
        Case { name: "an untrusted IPv4-mapped peer is reported as IPv4", peer: "::ffff:203.0.113.9", address: UNTRUSTED, ..PROXIED },
        Case { name: "an IPv4-mapped hop in X-Forwarded-For is walked like IPv4", xff: Some("198.51.100.1, ::ffff:10.0.0.7"), address: CLIENT, ..PROXIED },
        Case { name: "an IPv4-mapped client in Forwarded is reported as IPv4", forwarded: Some("for=\"[::ffff:198.51.100.1]:80\""), address: CLIENT, ..PROXIED },
    ];

    #[test]
    fn the_client_and_scheme_follow_one_trust_rule() {
        for case in CASES {
            let got = client(
                Some(ip(case.peer)),
                Scheme::Http,
                ForwardingHeaders {
                    forwarded: case.forwarded,
                    x_forwarded_for: case.xff,
                    x_forwarded_proto: case.xfp,
                },
                &trusted(),
            );
            let want = Client {
                address: Some(ip(case.address)),
                scheme: case.scheme,
            };
            assert_eq!(got, want, "{}", case.name);
        }
    }

    #[test]
    fn a_tls_connection_is_https_whatever_a_header_says() {
        let got = client(
            Some(ip(PROXY)),
            Scheme::Https,
            ForwardingHeaders {
                x_forwarded_proto: Some("http"),
                ..Default::default()
            },
            &trusted(),
        );
        assert_eq!(got.scheme, Scheme::Https);
    }

    #[test]
    fn without_a_peer_nothing_is_trusted() {
        let got = client(
            None,
            Scheme::Http,
            ForwardingHeaders {
                x_forwarded_for: Some("198.51.100.1"),
                ..Default::default()
            },
            &trusted(),
        );
        assert_eq!(
            got,
            Client {
                address: None,
                scheme: Scheme::Http
            }
        );
    }

    #[test]
    fn nodes_parse_as_rfc_7239_writes_them() {
        let cases: &[(&str, Option<&str>)] = &[
            ("192.0.2.43", Some("192.0.2.43")),
            ("192.0.2.43:47011", Some("192.0.2.43")),
            ("192.0.2.43:_port", Some("192.0.2.43")),
            ("[2001:db8:cafe::17]", Some("2001:db8:cafe::17")),
            ("[2001:db8:cafe::17]:4711", Some("2001:db8:cafe::17")),
            ("2001:db8:cafe::17", Some("2001:db8:cafe::17")),
            ("unknown", None),
            ("_gazonk", None),
            ("[2001:db8::1]x", None),
            ("[192.0.2.43]", None),
            ("192.0.2.43:", None),
            ("192.0.2.43:80:80", None),
            ("", None),
        ];
        for (node, want) in cases {
            assert_eq!(parse_node(node), want.map(ip), "{node}");
        }
    }
}
