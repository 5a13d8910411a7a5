//! Interface addresses and the default route, for [`super::hardware`]'s network interfaces.
//!
//! The default route's interface is read from `proc/net/route` (IPv4) and
//! `proc/net/ipv6_route` under the root, with pure parsers. Addresses are not in procfs for
//! IPv4, so they come from `getifaddrs(3)` (through nix) and describe the running system only;
//! the caller asks for them only when the root is `/`. Nothing here fails: what cannot be read
//! is absent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::rootfs::read_raw;

/// `RTF_UP`: the route is usable.
const RTF_UP: u32 = 0x1;

/// The interfaces a default route (IPv4 or IPv6) goes through.
pub fn default_route_interfaces(root: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if let Some(text) = read_raw(root, "proc/net/route") {
        names.extend(parse_route(&text));
    }
    if let Some(text) = read_raw(root, "proc/net/ipv6_route") {
        names.extend(parse_ipv6_route(&text));
    }
    names
}

/// Interfaces of IPv4 default routes in `/proc/net/route` (destination and mask 0, up).
pub fn parse_route(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, flags, mask) = (f.first()?, f.get(1)?, f.get(3)?, f.get(7)?);
            let up = u32::from_str_radix(flags, 16).is_ok_and(|v| v & RTF_UP != 0);
            (*dest == "00000000" && *mask == "00000000" && up).then(|| iface.to_string())
        })
        .collect()
}

/// Interfaces of IPv6 default routes in `/proc/net/ipv6_route` (`::/0`, up, not the kernel's
/// unreachable route on `lo`).
pub fn parse_ipv6_route(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (dest, prefix, flags, iface) = (f.first()?, f.get(1)?, f.get(8)?, f.get(9)?);
            let up = u32::from_str_radix(flags, 16).is_ok_and(|v| v & RTF_UP != 0);
            let default = dest.chars().all(|c| c == '0') && *prefix == "00";
            (default && up && *iface != "lo").then(|| iface.to_string())
        })
        .collect()
}

/// The running system's addresses per interface name (`10.0.0.5/24`, `fe80::1/64`), sorted.
pub fn addresses() -> BTreeMap<String, Vec<String>> {
    let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return BTreeMap::new();
    };
    for ifa in list {
        let (Some(addr), netmask) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let shown = if let Some(v4) = addr.as_sockaddr_in() {
            let bits = netmask
                .and_then(|m| m.as_sockaddr_in().map(|m| m.ip().to_bits().count_ones()))
                .unwrap_or(32);
            format!("{}/{bits}", v4.ip())
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            let bits = netmask
                .and_then(|m| m.as_sockaddr_in6().map(|m| m.ip().to_bits().count_ones()))
                .unwrap_or(128);
            format!("{}/{bits}", v6.ip())
        } else {
            continue;
        };
        by_name.entry(ifa.interface_name).or_default().insert(shown);
    }
    by_name
        .into_iter()
        .map(|(name, set)| (name, set.into_iter().collect()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_default_route() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                    eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
                    wg0\t00000000\t00000000\t0000\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(parse_route(text), ["eth0"]);
        assert!(parse_route("").is_empty());
        assert!(parse_route("header\nshort line\n").is_empty());
    }

    #[test]
    fn ipv6_default_route() {
        let zero = "00000000000000000000000000000000";
        let text = format!(
            "{zero} 00 {zero} 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 ens3\n\
             fe800000000000000000000000000000 40 {zero} 00 {zero} 00000100 00000001 00000000 00000001 ens3\n\
             {zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200 lo\n"
        );
        assert_eq!(parse_ipv6_route(&text), ["ens3"]);
    }

    #[test]
    fn the_running_system_has_a_loopback_address() {
        let all = addresses();
        assert!(
            all.get("lo")
                .is_some_and(|a| a.contains(&"127.0.0.1/8".to_owned())),
            "{all:?}"
        );
    }
}
