//! Which addresses `http_fetch` may connect to. A fetched page or a
//! prompt-injected instruction can name any URL; without this guard it
//! would reach the keyless local API on 127.0.0.1, the LAN, or the cloud
//! metadata service (169.254.169.254) that hands out credentials. Names are
//! resolved by our resolver, which drops refused addresses, so the address
//! connected to is the one checked (no rebinding between check and use).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use thiserror::Error;

/// A network that does not parse (its text, as given in the config or the
/// API).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BadNetwork {
    /// Not an address.
    #[error("{0:?} is not an IP address or network")]
    NotAnAddress(String),
    /// A prefix longer than the address.
    #[error("{text:?}: the prefix length must be 0..={max}")]
    Prefix {
        /// As given.
        text: String,
        /// 32 or 128.
        max: u8,
    },
}

/// An address a tool may not connect to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "{ip} is a {kind} address; {what} reaches only public addresses ({exceptions} lists exceptions)"
)]
pub struct AddressRefused {
    /// The address.
    pub ip: IpAddr,
    /// What kind of address it is (`loopback`, `private`, …).
    pub kind: &'static str,
    /// Who was refused (`http_fetch`, the sandbox's network).
    pub what: String,
    /// The config key that lists exceptions.
    pub exceptions: String,
}

/// A network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `10.0.0.5`, `192.168.1.0/24`, `::1`, `fd00::/8`.
    pub fn parse(text: &str) -> Result<Network, BadNetwork> {
        let text = text.trim();
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| BadNetwork::NotAnAddress(text.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix =
            match prefix {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    BadNetwork::Prefix {
                        text: text.to_string(),
                        max,
                    }
                })?,
            };
        Ok(Network { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = (prefix / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = prefix % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

/// What `http_fetch` may reach: public addresses, plus what is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Networks allowed although not public.
    pub allow: Vec<Network>,
}

impl FetchPolicy {
    /// `Ok` when `ip` may be connected to, else why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressRefused> {
        self.check_for(ip, "http_fetch", "tools.http_fetch.allow")
    }

    /// `check`, naming who is refused (`what`) and where exceptions go.
    pub fn check_for(
        &self,
        ip: IpAddr,
        what: &str,
        exceptions: &str,
    ) -> Result<(), AddressRefused> {
        if self.allow.iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        // A public address of this host reaches its services (an API bound
        // to 0.0.0.0) as surely as loopback does.
        let kind =
            special(ip).or_else(|| own_addresses().contains(&ip).then_some("this host's own"));
        match kind {
            None => Ok(()),
            Some(kind) => Err(AddressRefused {
                ip,
                kind,
                what: what.to_string(),
                exceptions: exceptions.to_string(),
            }),
        }
    }
}

/// Why a name gave no address that may be connected to.
#[derive(Debug)]
pub enum Unusable {
    /// It does not resolve.
    Unresolved(std::io::Error),
    /// It has addresses, all refused; why the first was.
    Refused(AddressRefused),
    /// It resolved to nothing.
    NoAddress,
}

impl FetchPolicy {
    /// The addresses `host` resolves to (an IP literal is itself) that may
    /// be connected to, with `port`; refusals worded as in `check_for`.
    /// The caller connects to these very addresses, so a name cannot
    /// rebind to a refused one between check and use.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        what: &str,
        exceptions: &str,
    ) -> Result<Vec<SocketAddr>, Unusable> {
        let found = tokio::net::lookup_host((host, port))
            .await
            .map_err(Unusable::Unresolved)?;
        let mut refused = None;
        let allowed: Vec<SocketAddr> = found
            .filter(|a| match self.check_for(a.ip(), what, exceptions) {
                Ok(()) => true,
                Err(why) => {
                    refused.get_or_insert(why);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(why)) => Err(Unusable::Refused(why)),
            (true, None) => Err(Unusable::NoAddress),
        }
    }
}

/// The addresses of this host's interfaces, re-read at most every ten
/// seconds (an interface may gain an address while the server runs).
fn own_addresses() -> Vec<IpAddr> {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static CACHE: Mutex<Option<(Instant, Vec<IpAddr>)>> = Mutex::new(None);
    let Ok(mut cache) = CACHE.lock() else {
        return read_own_addresses();
    };
    if let Some((at, found)) = cache.as_ref()
        && at.elapsed() < Duration::from_secs(10)
    {
        return found.clone();
    }
    let found = read_own_addresses();
    *cache = Some((Instant::now(), found.clone()));
    found
}

fn read_own_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        tracing::warn!("cannot list this host's addresses; only special ranges are refused");
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let sa = a.address?;
            if let Some(v4) = sa.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                sa.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

/// The kind of a non-public address, or `None` for a public one.
fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return special_v4(v4);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("multicast")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("documentation")
            } else {
                None
            }
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [127, ..] => "loopback",
        [0, ..] => "unspecified",
        [10, ..] => "private",
        [172, b, ..] if (16..32).contains(&b) => "private",
        [192, 168, ..] => "private",
        [169, 254, 169, 254] => "cloud metadata",
        [169, 254, ..] => "link-local",
        [100, b, ..] if (64..128).contains(&b) => "shared (CGNAT)",
        [192, 0, 0, _] => "IETF protocol",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [198, 18 | 19, ..] => "benchmarking",
        [a, ..] if a >= 224 => "multicast or reserved",
        _ => return None,
    })
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// or NAT64 (`64:ff9b::/96`) IPv6 address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let mapped = s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff;
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
    let compatible = s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified();
    (mapped || nat64 || compatible).then_some(tail)
}

/// A resolver that returns only the addresses the policy permits.
pub struct GuardedResolver {
    /// The policy applied.
    pub policy: Arc<FetchPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let allowed = match policy
                .resolve(&host, 0, "http_fetch", "tools.http_fetch.allow")
                .await
            {
                Ok(a) => a,
                Err(Unusable::Unresolved(e)) => return Err(e.into()),
                Err(Unusable::Refused(why)) => return Err(format!("refused {host}: {why}").into()),
                Err(Unusable::NoAddress) => {
                    return Err(format!("refused {host}: it has no address").into());
                }
            };
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        let p = FetchPolicy::default();
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(p.check(bad.parse().unwrap()).is_err(), "{bad}");
        }
        for good in [
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert!(p.check(good.parse().unwrap()).is_ok(), "{good}");
        }
        let refused = p.check("169.254.169.254".parse().unwrap()).unwrap_err();
        assert!(refused.kind.contains("metadata"), "{refused}");
        assert!(
            refused.to_string().contains("tools.http_fetch.allow"),
            "{refused}"
        );
    }

    #[test]
    fn allow_lists_networks() {
        let p = FetchPolicy {
            allow: vec![
                Network::parse("192.168.1.0/24").unwrap(),
                Network::parse("127.0.0.2").unwrap(),
            ],
        };
        assert!(p.check("192.168.1.77".parse().unwrap()).is_ok());
        assert!(p.check("192.168.2.1".parse().unwrap()).is_err());
        assert!(p.check("127.0.0.2".parse().unwrap()).is_ok());
        assert!(p.check("127.0.0.1".parse().unwrap()).is_err());
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("example.com").is_err());
        assert!(
            Network::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
    }
}
