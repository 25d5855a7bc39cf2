//! The IP allowlist (`authorized_ips`): exact addresses and CIDR ranges.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::{IpNet, Ipv4Net};

use crate::ServeError;
use crate::admission::{Admission, Refusal};

/// The peers allowed to connect. Empty means everyone.
///
/// Entries are addresses (`10.0.0.5`, `::1`) or CIDR ranges (`192.168.0.0/24`, `fd00::/8`). A peer
/// connecting over IPv6 with an IPv4-mapped address (`::ffff:192.168.0.7`) is matched as the IPv4
/// address, and a mapped entry is read as its IPv4 form.
///
/// ```
/// use distio_serve::Allowlist;
/// let list = Allowlist::parse(["192.168.0.0/24", "::1"])?;
/// assert!(list.allows("192.168.0.9".parse().unwrap()));
/// assert!(list.allows("::ffff:192.168.0.9".parse().unwrap()));
/// assert!(!list.allows("192.168.1.9".parse().unwrap()));
/// assert!(Allowlist::parse([r"192\.168\.0\.\d{1,3}"]).is_err());
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    nets: Vec<IpNet>,
}

impl Allowlist {
    /// Parses `authorized_ips` entries.
    ///
    /// An entry in the original Dist.io's regular-expression style is refused with
    /// [`ServeError::AllowlistRegex`], which carries the CIDR range to write instead where one
    /// follows plainly from the pattern.
    ///
    /// ```
    /// let err = distio_serve::Allowlist::parse([r"10\.\d+\.\d+\.\d+"]).unwrap_err();
    /// assert!(err.to_string().contains("10.0.0.0/8"));
    /// ```
    pub fn parse<I, S>(entries: I) -> Result<Self, ServeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = entries
            .into_iter()
            .map(|entry| parse_entry(entry.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    /// Whether `ip` may connect.
    ///
    /// ```
    /// let open = distio_serve::Allowlist::default();
    /// assert!(open.allows("203.0.113.1".parse().unwrap()));
    /// ```
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        self.is_open() || self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Whether the list is empty, so that everyone is allowed.
    ///
    /// ```
    /// assert!(distio_serve::Allowlist::parse(Vec::<String>::new())?.is_open());
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn is_open(&self) -> bool {
        self.nets.is_empty()
    }

    /// The entries, normalized (host bits cleared, mapped addresses as IPv4).
    ///
    /// ```
    /// let list = distio_serve::Allowlist::parse(["10.1.2.3/8"])?;
    /// assert_eq!(list.entries()[0].to_string(), "10.0.0.0/8");
    /// # Ok::<(), distio_serve::ServeError>(())
    /// ```
    pub fn entries(&self) -> &[IpNet] {
        &self.nets
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; anything else as it is.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_entry(raw: &str) -> Result<IpNet, ServeError> {
    let entry = raw.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(IpNet::from(unmap(ip)));
    }
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(unmap_net(net).trunc());
    }
    if entry.contains([
        '\\', '^', '$', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|',
    ]) {
        return Err(ServeError::AllowlistRegex {
            entry: raw.to_owned(),
            suggestion: suggest_cidr(entry),
        });
    }
    Err(ServeError::AllowlistEntry {
        entry: raw.to_owned(),
    })
}

/// `::ffff:a.b.c.d/n` (n >= 96) as `a.b.c.d/(n-96)`.
fn unmap_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), Some(len)) = (v6.addr().to_ipv4_mapped(), v6.prefix_len().checked_sub(96))
        {
            if let Ok(net) = Ipv4Net::new(v4, len) {
                return IpNet::V4(net);
            }
        }
    }
    net
}

/// The CIDR range an IPv4 regular expression of the usual shape was meant to allow.
///
/// Understands literal octets separated by `\.`, followed by octets that match any number
/// (`\d{1,3}`, `\d+`, `[0-9]+`, …) or by a tail that matches anything (`.*`, `.+`); optional `^`
/// and `$` anchors. Anything else gets no suggestion.
fn suggest_cidr(pattern: &str) -> Option<String> {
    let pattern = pattern.strip_prefix('^').unwrap_or(pattern);
    let pattern = pattern.strip_suffix('$').unwrap_or(pattern);
    let parts: Vec<&str> = pattern.split(r"\.").collect();
    let mut octets = [0u8; 4];
    let mut fixed = 0usize;
    for (i, part) in parts.iter().enumerate() {
        if i >= 4 {
            return None;
        }
        let is_last = i == parts.len() - 1;
        if is_any_octet(part) {
            continue;
        }
        if is_last && matches!(*part, ".*" | ".+" | "*") {
            return (fixed == i).then(|| cidr(octets, fixed));
        }
        // A literal octet must not follow a wildcard one.
        if fixed != i {
            return None;
        }
        octets[i] = part.parse().ok()?;
        fixed += 1;
    }
    (parts.len() == 4).then(|| cidr(octets, fixed))
}

fn is_any_octet(part: &str) -> bool {
    let class = ["\\d", "[0-9]", "[\\d]"];
    let counts = ["{1,3}", "+", "*", "{0,3}", ""];
    class
        .iter()
        .any(|c| counts.iter().any(|n| part == format!("{c}{n}")))
        || part == "\\d\\d?\\d?"
}

/// `a.b.0.0/16` for two fixed octets; the plain address when all four are fixed.
fn cidr(octets: [u8; 4], fixed: usize) -> String {
    let addr = Ipv4Addr::from(octets);
    if fixed >= 4 {
        addr.to_string()
    } else {
        format!("{addr}/{}", fixed * 8)
    }
}

/// Refuses (403 Forbidden) a peer that the allowlist does not allow; checked before credentials.
///
/// Needs the peer address: serve the router with
/// `into_make_service_with_connect_info::<SocketAddr>()`. Without it every request is refused
/// (fail closed) and an error is logged.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, middleware, routing::get};
/// let allowlist = Arc::new(distio_serve::Allowlist::parse(["127.0.0.1"])?);
/// let app: Router = Router::new()
///     .route("/session", get(|| async { "hi" }))
///     .layer(middleware::from_fn_with_state(allowlist, distio_serve::auth::require_allowed_peer));
/// # Ok::<(), distio_serve::ServeError>(())
/// ```
pub async fn require_allowed_peer(
    State(allowlist): State<Arc<Allowlist>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match peer {
        Some(peer) if allowlist.allows(peer.ip()) => next.run(request).await,
        Some(peer) => {
            match request.extensions().get::<Admission>() {
                Some(ticket) => ticket.refused(Refusal::NotAllowed, None),
                None => {
                    tracing::warn!(%peer, "connection refused: address not in authorized_ips");
                }
            }
            StatusCode::FORBIDDEN.into_response()
        }
        None => {
            tracing::error!(
                "connection refused: the peer address is unknown (serve with connect info)"
            );
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn exact_and_cidr() {
        let list = Allowlist::parse(["10.0.0.5", "172.16.0.0/12", "fd00::/8", "::1"]).unwrap();
        assert!(list.allows(ip("10.0.0.5")));
        assert!(
            !list.allows(ip("10.0.0.50")),
            "exact means exact, not a prefix"
        );
        assert!(list.allows(ip("172.31.255.255")));
        assert!(!list.allows(ip("172.32.0.0")));
        assert!(list.allows(ip("fd12::1")));
        assert!(list.allows(ip("::1")));
        assert!(!list.allows(ip("fe80::1")));
    }

    #[test]
    fn ipv4_mapped_peers_and_entries() {
        let list = Allowlist::parse(["192.168.0.0/24"]).unwrap();
        assert!(list.allows(ip("::ffff:192.168.0.200")));
        assert!(!list.allows(ip("::ffff:192.168.1.1")));
        let list = Allowlist::parse(["::ffff:10.0.0.1", "::ffff:10.1.0.0/112"]).unwrap();
        assert!(list.allows(ip("10.0.0.1")));
        assert!(list.allows(ip("10.1.3.4")));
        assert_eq!(list.entries()[1].to_string(), "10.1.0.0/16");
    }

    #[test]
    fn empty_allows_everyone() {
        let list = Allowlist::default();
        assert!(list.is_open());
        assert!(list.allows(ip("203.0.113.9")));
    }

    #[test]
    fn regex_entries_are_refused_with_a_suggestion() {
        let cases = [
            (r"192\.168\.0\.\d{1,3}", Some("192.168.0.0/24")),
            (r"^10\.\d+\.\d+\.\d+$", Some("10.0.0.0/8")),
            (r"172\.16\..*", Some("172.16.0.0/16")),
            (r"127\.0\.0\.1", Some("127.0.0.1")),
            (r"192\.168\.[0-9]+\.[0-9]+", Some("192.168.0.0/16")),
            (r"10\.\d+\.5\.\d+", None),
            (r"(10|11)\.0\.0\.1", None),
            (r"192\.168\.0\.1\d", None),
        ];
        for (entry, expected) in cases {
            match Allowlist::parse([entry]) {
                Err(ServeError::AllowlistRegex {
                    entry: e,
                    suggestion,
                }) => {
                    assert_eq!(e, entry);
                    assert_eq!(suggestion.as_deref(), expected, "{entry}");
                }
                other => panic!("{entry}: {other:?}"),
            }
        }
        let err = Allowlist::parse([r"(10|11)\.0\.0\.1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CIDR range"), "{err}");
    }

    #[test]
    fn garbage_is_refused() {
        let err = Allowlist::parse(["localhost"]).unwrap_err();
        assert!(matches!(err, ServeError::AllowlistEntry { .. }));
        assert!(err.to_string().contains("`localhost`"));
    }
}
