//! Where `core.http` may connect: public addresses, plus the networks that
//! `[core_http] allow` lists (see [`crate::config::CoreHttpConfig`]).
//!
//! A workflow author picks `core.http`'s URL, so without this check a definition could
//! read the node's loopback services, a cloud metadata service (169.254.169.254) or the
//! internal network, and record the answer in history. The check holds for the address
//! actually connected to, not for the name in the URL:
//! - a host name is resolved by [`GuardedResolver`], the client's DNS resolver, which
//!   hands the connector only the addresses that pass, so a name that resolves (or
//!   rebinds) to a refused address cannot be reached;
//! - an IP literal in the URL never reaches a resolver, so [`Egress::check_url`] checks it
//!   before the request;
//! - each redirect's target is checked the same way ([`Egress::redirect_policy`]);
//! - the client uses no proxy, which would resolve names itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::connector::Error;

/// The setting that allows more destinations, named in every refusal.
pub const ALLOW_SETTING: &str = "core_http.allow";

/// The most redirects `core.http` follows.
const MAX_REDIRECTS: usize = 10;

/// The destinations `core.http` may reach.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    allow: Vec<IpNet>,
}

/// A destination refused: the error the resolver and the redirect policy return, found
/// again in reqwest's error chain to make a permanent [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDestination {
    /// The host as the URL names it.
    pub host: String,
    /// The refused address.
    pub address: IpAddr,
}

impl fmt::Display for RefusedDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host == self.address.to_string() {
            write!(f, "destination {} ", self.address)?;
        } else {
            write!(f, "destination {} ({}) ", self.host, self.address)?;
        }
        write!(
            f,
            "is a loopback, private, link-local or otherwise non-public address; \
             core.http reaches it only when gridflow.toml lists its network in {ALLOW_SETTING} \
             (e.g. [core_http] allow = [\"{}\"])",
            single_host_network(self.address)
        )
    }
}

impl std::error::Error for RefusedDestination {}

impl RefusedDestination {
    /// The permanent connector error of this refusal.
    pub fn to_error(&self) -> Error {
        Error::permanent(
            "destination_refused",
            format!("action \"core.http\": {self}"),
        )
    }
}

fn single_host_network(address: IpAddr) -> String {
    match address {
        IpAddr::V4(_) => format!("{address}/32"),
        IpAddr::V6(_) => format!("{address}/128"),
    }
}

impl Egress {
    /// Public addresses plus the `allow` networks.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Whether `address` may be connected to.
    pub fn permits(&self, address: IpAddr) -> bool {
        let canonical = address.to_canonical();
        is_public(canonical)
            || self
                .allow
                .iter()
                .any(|network| network.contains(&address) || network.contains(&canonical))
    }

    /// Checks a URL whose host is an IP literal (a name is checked when it is resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), RefusedDestination> {
        let host = url.host_str().unwrap_or_default();
        let literal = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host);
        let Ok(address) = literal.parse::<IpAddr>() else {
            return Ok(());
        };
        if self.permits(address) {
            Ok(())
        } else {
            Err(RefusedDestination {
                host: address.to_string(),
                address,
            })
        }
    }

    /// Follows up to 10 redirects, each to a permitted destination.
    pub fn redirect_policy(self: &Arc<Self>) -> reqwest::redirect::Policy {
        let egress = Arc::clone(self);
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match egress.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        })
    }
}

/// The DNS resolver of `core.http`'s client: the system's resolver, keeping only the
/// addresses that [`Egress`] permits.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    egress: Arc<Egress>,
}

impl GuardedResolver {
    /// A resolver that keeps what `egress` permits.
    pub fn new(egress: Arc<Egress>) -> Self {
        Self { egress }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = Arc::clone(&self.egress);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let permitted: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| {
                    let ok = egress.permits(address.ip());
                    if !ok {
                        refused.get_or_insert(address.ip());
                    }
                    ok
                })
                .collect();
            match (permitted.is_empty(), refused) {
                (true, Some(address)) => Err(Box::new(RefusedDestination { host, address })
                    as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(permitted.into_iter()) as Addrs),
            }
        })
    }
}

/// The refusal in `error`'s source chain, if the request failed because of one.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<RefusedDestination> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<RefusedDestination>() {
            return Some(refused.clone());
        }
        cause = current.source();
    }
    None
}

/// Whether `address` (canonical: an IPv4-mapped IPv6 address given as IPv4) is a public
/// unicast address.
fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_broadcast()
        || address.is_documentation()
        || address.is_multicast()
        // "This network" 0.0.0.0/8.
        || a == 0
        // Shared address space (carrier-grade NAT) 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    let segments = address.segments();
    // IPv4 inside IPv6: IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96)
    // reach the embedded IPv4 address, so it decides.
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !address.is_loopback() && !address.is_unspecified()
        || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        let [.., high, low] = segments;
        let embedded = Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
        return is_public_v4(embedded);
    }
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        // Unique local fc00::/7.
        || (segments[0] & 0xfe00) == 0xfc00
        // Link-local fe80::/10.
        || (segments[0] & 0xffc0) == 0xfe80
        // Site-local fec0::/10 (deprecated).
        || (segments[0] & 0xffc0) == 0xfec0
        // Documentation 2001:db8::/32.
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        // Discard-only 100::/64.
        || segments[..4] == [0x100, 0, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permits(egress: &Egress, address: &str) -> bool {
        egress.permits(address.parse().expect("a test address"))
    }

    #[test]
    fn only_public_addresses_pass_by_default() {
        let egress = Egress::default();
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fc12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!permits(&egress, refused), "{refused} must be refused");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(permits(&egress, public), "{public} must pass");
        }
    }

    #[test]
    fn allowed_networks_pass_in_both_forms() {
        let egress = Egress::new(vec![
            "127.0.0.1/32".parse().expect("a network"),
            "fd00::/8".parse().expect("a network"),
        ]);
        assert!(permits(&egress, "127.0.0.1"));
        assert!(permits(&egress, "::ffff:127.0.0.1"));
        assert!(permits(&egress, "fd00::5"));
        assert!(!permits(&egress, "127.0.0.2"));
        assert!(!permits(&egress, "10.0.0.1"));
    }

    #[test]
    fn ip_literal_urls_are_checked_and_the_refusal_names_the_setting() {
        let egress = Egress::default();
        let url = reqwest::Url::parse("http://[::ffff:7f00:1]:8080/x").expect("a url");
        let refused = egress.check_url(&url).expect_err("mapped loopback");
        let message = refused.to_error().to_string();
        assert!(message.contains("::ffff:127.0.0.1"), "{message}");
        assert!(message.contains(ALLOW_SETTING), "{message}");
        assert!(!refused.to_error().is_retryable());
        let named = reqwest::Url::parse("http://example.com/").expect("a url");
        assert!(egress.check_url(&named).is_ok());
    }
}
