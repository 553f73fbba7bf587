//! Source-IP allow-lists: IPv4/IPv6 addresses and CIDR blocks.
//!
//! Unsigned providers (Daraja above all) can only be told apart from a
//! forger by where the request comes from and by re-querying; signed
//! providers may publish their sender addresses too. An account opts in to
//! an allow-list; an empty list means "not configured", not "deny all" —
//! the gateway decides which by checking [`IpAllowList::is_empty`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// At most this many entries in one list: a limit on everything, and far
/// more than any provider publishes.
pub const IP_ALLOW_LIST_ENTRIES_MAX: usize = 1024;

/// Why an allow-list entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpAllowListError {
    #[error("`{0}` is not an IP address or CIDR block")]
    InvalidAddress(String),
    #[error("`{0}` has a prefix length beyond the address size")]
    InvalidPrefix(String),
    #[error("`{0}` has host bits set after the prefix (did you mean the network address?)")]
    HostBitsSet(String),
    #[error("an allow-list holds at most {IP_ALLOW_LIST_ENTRIES_MAX} entries")]
    TooManyEntries,
}

/// One address or CIDR block, e.g. `196.201.214.200`, `10.0.0.0/8`,
/// `2001:db8::/32`. A bare address is a full-length block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    address: IpAddr,
    prefix_length: u8,
}

impl IpNetwork {
    pub fn address(&self) -> IpAddr {
        self.address
    }

    pub fn prefix_length(&self) -> u8 {
        self.prefix_length
    }

    /// Whether `ip` is inside the block. IPv4-mapped IPv6 peers
    /// (`::ffff:a.b.c.d`, what a dual-stack listener reports for IPv4
    /// clients) match IPv4 blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = mask_u32(self.prefix_length);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = mask_u128(self.prefix_length);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn mask_u32(prefix_length: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_length.min(32)))
        .unwrap_or(0)
}

fn mask_u128(prefix_length: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_length.min(128)))
        .unwrap_or(0)
}

impl FromStr for IpNetwork {
    type Err = IpAllowListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let invalid = || IpAllowListError::InvalidAddress(text.to_owned());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| invalid())?;
        let bits: u8 = if address.is_ipv4() { 32 } else { 128 };
        let prefix_length = match prefix {
            None => bits,
            Some(prefix) => {
                // Digits only: `u8::from_str` would also take "+8".
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IpAllowListError::InvalidPrefix(text.to_owned()));
                }
                match prefix.parse::<u8>() {
                    Ok(length) if length <= bits => length,
                    _ => return Err(IpAllowListError::InvalidPrefix(text.to_owned())),
                }
            }
        };
        let network = canonical_network(address, prefix_length);
        let masked = IpNetwork {
            address: mask_address(network.address, network.prefix_length),
            prefix_length: network.prefix_length,
        };
        // A typo such as `196.201.214.200/24` would silently allow the
        // whole /24; refuse it rather than guess.
        if masked.address != network.address {
            return Err(IpAllowListError::HostBitsSet(text.to_owned()));
        }
        Ok(masked)
    }
}

/// `::ffff:a.b.c.d/n` with n >= 96 is the IPv4 block `a.b.c.d/(n-96)`; store
/// it that way so it matches IPv4 peers.
fn canonical_network(address: IpAddr, prefix_length: u8) -> IpNetwork {
    if let IpAddr::V6(v6) = address
        && let Some(v4) = v6.to_ipv4_mapped()
        && prefix_length >= 96
    {
        return IpNetwork {
            address: IpAddr::V4(v4),
            prefix_length: prefix_length - 96,
        };
    }
    IpNetwork {
        address,
        prefix_length,
    }
}

fn mask_address(address: IpAddr, prefix_length: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_u32(prefix_length))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_u128(prefix_length))),
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.address.is_ipv4() { 32 } else { 128 };
        if self.prefix_length == full {
            write!(f, "{}", self.address)
        } else {
            write!(f, "{}/{}", self.address, self.prefix_length)
        }
    }
}

/// A list of addresses and CIDR blocks. Serialized as a list of strings,
/// e.g. `["196.201.214.200", "10.0.0.0/8"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct IpAllowList {
    networks: Vec<IpNetwork>,
}

impl IpAllowList {
    /// Parses every entry; one bad entry refuses the whole list, so a typo
    /// in configuration is reported instead of silently narrowing it.
    pub fn parse<I, S>(entries: I) -> Result<Self, IpAllowListError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut networks = Vec::new();
        for entry in entries {
            if networks.len() == IP_ALLOW_LIST_ENTRIES_MAX {
                return Err(IpAllowListError::TooManyEntries);
            }
            networks.push(entry.as_ref().parse()?);
        }
        Ok(IpAllowList { networks })
    }

    /// Whether `ip` is inside any entry. Always false for an empty list.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    pub fn networks(&self) -> &[IpNetwork] {
        &self.networks
    }
}

/// Entries separated by commas and/or whitespace, as in an environment
/// variable: `"196.201.214.200, 10.0.0.0/8"`.
impl FromStr for IpAllowList {
    type Err = IpAllowListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        IpAllowList::parse(
            text.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|entry| !entry.is_empty()),
        )
    }
}

impl TryFrom<Vec<String>> for IpAllowList {
    type Error = IpAllowListError;

    fn try_from(entries: Vec<String>) -> Result<Self, Self::Error> {
        IpAllowList::parse(entries)
    }
}

impl From<IpAllowList> for Vec<String> {
    fn from(list: IpAllowList) -> Self {
        list.networks.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_and_blocks_match() {
        let list: IpAllowList = "196.201.214.200, 10.0.0.0/8 2001:db8::/32 ::1"
            .parse()
            .unwrap();
        assert!(list.contains(ip("196.201.214.200")));
        assert!(!list.contains(ip("196.201.214.201")));
        assert!(list.contains(ip("10.255.0.1")));
        assert!(!list.contains(ip("11.0.0.1")));
        assert!(list.contains(ip("2001:db8:ffff::1")));
        assert!(!list.contains(ip("2001:db9::1")));
        assert!(list.contains(ip("::1")));
        assert!(!list.contains(ip("::2")));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_entries_and_the_other_way_round() {
        let list = IpAllowList::parse(["196.201.214.200", "::ffff:10.0.0.0/104"]).unwrap();
        assert!(list.contains(ip("::ffff:196.201.214.200")));
        assert!(list.contains(ip("10.1.2.3")));
        assert_eq!(list.networks()[1].to_string(), "10.0.0.0/8");
    }

    #[test]
    fn zero_prefix_matches_its_whole_family_only() {
        let list = IpAllowList::parse(["0.0.0.0/0"]).unwrap();
        assert!(list.contains(ip("8.8.8.8")));
        assert!(!list.contains(ip("2001:db8::1")));
        let list = IpAllowList::parse(["::/0"]).unwrap();
        assert!(list.contains(ip("2001:db8::1")));
    }

    #[test]
    fn bad_entries_are_refused() {
        for (entry, expected) in [
            ("banana", IpAllowListError::InvalidAddress("banana".into())),
            (
                "10.0.0.0/33",
                IpAllowListError::InvalidPrefix("10.0.0.0/33".into()),
            ),
            (
                "10.0.0.0/+8",
                IpAllowListError::InvalidPrefix("10.0.0.0/+8".into()),
            ),
            (
                "10.0.0.0/",
                IpAllowListError::InvalidPrefix("10.0.0.0/".into()),
            ),
            ("::/129", IpAllowListError::InvalidPrefix("::/129".into())),
            (
                "10.0.0.1/8",
                IpAllowListError::HostBitsSet("10.0.0.1/8".into()),
            ),
        ] {
            assert_eq!(entry.parse::<IpNetwork>(), Err(expected));
        }
        assert!(IpAllowList::parse(["10.0.0.0/8", "nope"]).is_err());
    }

    #[test]
    fn empty_list_contains_nothing() {
        let list = IpAllowList::default();
        assert!(list.is_empty());
        assert!(!list.contains(ip("127.0.0.1")));
    }

    #[test]
    fn round_trips_through_serde() {
        let list = IpAllowList::parse(["196.201.214.200", "10.0.0.0/8", "2001:db8::/32"]).unwrap();
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, r#"["196.201.214.200","10.0.0.0/8","2001:db8::/32"]"#);
        assert_eq!(serde_json::from_str::<IpAllowList>(&json).unwrap(), list);
        assert!(serde_json::from_str::<IpAllowList>(r#"["10.0.0.1/8"]"#).is_err());
    }
}
