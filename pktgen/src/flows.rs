//! Sender flows: distinct source addresses and ports so that NIC RSS spreads the load.

use crate::{bail, Result};
use netml_wire::ethernet::MacAddress;
use netml_wire::frame::Endpoints;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Default destination (the pipeline).
pub const DEFAULT_DST: &str = "10.0.0.2:9000";
/// Default first source address and port.
pub const DEFAULT_SRC: &str = "10.0.0.1:40000";
/// Default source MAC (locally administered).
pub const DEFAULT_SRC_MAC: MacAddress = [0x02, 0, 0, 0, 0, 0x01];
/// Default destination MAC (locally administered).
pub const DEFAULT_DST_MAC: MacAddress = [0x02, 0, 0, 0, 0, 0x02];

/// How flows are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// First source address and port.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// Number of flows; flow f uses source port `src.port() + f`.
    pub flows: u16,
    /// Number of source addresses; flow f uses `src.ip() + f % src_ips`.
    pub src_ips: u32,
    /// Source MAC.
    pub src_mac: MacAddress,
    /// Destination MAC.
    pub dst_mac: MacAddress,
    /// 802.1Q TCI, if tagged.
    pub vlan_tci: Option<u16>,
}

impl FlowConfig {
    /// Defaults: one flow from 10.0.0.1:40000 to 10.0.0.2:9000, untagged.
    pub fn new(src: SocketAddr, dst: SocketAddr) -> Self {
        FlowConfig {
            src,
            dst,
            flows: 1,
            src_ips: 1,
            src_mac: DEFAULT_SRC_MAC,
            dst_mac: DEFAULT_DST_MAC,
            vlan_tci: None,
        }
    }

    /// The endpoints of every flow; checks families and port/address ranges.
    pub fn endpoints(&self) -> Result<Vec<Endpoints>> {
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            bail!(
                "--src {} and --dst {} are of different IP families",
                self.src,
                self.dst
            );
        }
        if self.flows == 0 || self.src_ips == 0 {
            bail!("--flows and --src-ips must be at least 1");
        }
        if self.src.port() as u32 + self.flows as u32 - 1 > u16::MAX as u32 {
            bail!(
                "--flows {} from source port {} runs past port 65535",
                self.flows,
                self.src.port()
            );
        }
        (0..self.flows)
            .map(|f| {
                let ip = add_to_ip(self.src.ip(), f as u32 % self.src_ips)?;
                Ok(Endpoints {
                    src_mac: self.src_mac,
                    dst_mac: self.dst_mac,
                    vlan_tci: self.vlan_tci,
                    src: SocketAddr::new(ip, self.src.port() + f),
                    dst: self.dst,
                })
            })
            .collect()
    }
}

/// `ip + n`, or an error when it overflows the address space.
pub fn add_to_ip(ip: IpAddr, n: u32) -> Result<IpAddr> {
    Ok(match ip {
        IpAddr::V4(a) => match u32::from(a).checked_add(n) {
            Some(v) => IpAddr::V4(Ipv4Addr::from(v)),
            None => bail!("--src-ips runs past 255.255.255.255"),
        },
        IpAddr::V6(a) => match u128::from(a).checked_add(n as u128) {
            Some(v) => IpAddr::V6(Ipv6Addr::from(v)),
            None => bail!("--src-ips runs past the end of the IPv6 space"),
        },
    })
}

/// Parses "02:00:00:00:00:01" (also with '-').
pub fn parse_mac(s: &str) -> Result<MacAddress> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        bail!("bad MAC address {s:?}: expected six hex bytes like 02:00:00:00:00:01");
    }
    for (m, p) in mac.iter_mut().zip(&parts) {
        *m = match u8::from_str_radix(p, 16) {
            Ok(v) if !p.is_empty() && p.len() <= 2 => v,
            _ => bail!("bad MAC address {s:?}: expected six hex bytes like 02:00:00:00:00:01"),
        };
    }
    Ok(mac)
}

/// Parses `IP:PORT` or `[IPv6]:PORT`.
pub fn parse_socket_addr(s: &str) -> Result<SocketAddr> {
    match s.parse() {
        Ok(a) => Ok(a),
        Err(_) => bail!("bad address {s:?}: expected IP:PORT (IPv6 as [addr]:port)"),
    }
}

/// Parses a VLAN TCI, decimal or 0x-hex.
pub fn parse_tci(s: &str) -> Result<u16> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16),
        None => s.parse(),
    };
    match v {
        Ok(v) => Ok(v),
        Err(_) => bail!("bad VLAN TCI {s:?}: expected 0..=65535 (decimal or 0x hex)"),
    }
}

/// The MAC of a Linux interface, from sysfs.
pub fn interface_mac(iface: &str) -> Result<MacAddress> {
    let path = format!("/sys/class/net/{iface}/address");
    match std::fs::read_to_string(&path) {
        Ok(s) => parse_mac(s.trim()),
        Err(e) => bail!("cannot read the MAC of interface {iface:?} ({path}): {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_spread_ports_and_addresses() {
        let mut c = FlowConfig::new(
            "10.0.0.250:40000".parse().unwrap(),
            "10.0.0.2:9000".parse().unwrap(),
        );
        c.flows = 4;
        c.src_ips = 2;
        let eps = c.endpoints().unwrap();
        let srcs: Vec<String> = eps.iter().map(|e| e.src.to_string()).collect();
        assert_eq!(
            srcs,
            [
                "10.0.0.250:40000",
                "10.0.0.251:40001",
                "10.0.0.250:40002",
                "10.0.0.251:40003"
            ]
        );
        c.src = "[fd00::ffff]:1".parse().unwrap();
        assert!(c.endpoints().is_err(), "mixed families");
        c.dst = "[fd00::2]:9000".parse().unwrap();
        assert_eq!(c.endpoints().unwrap()[1].src.to_string(), "[fd00::1:0]:2");
        c.src = "[fd00::1]:65535".parse().unwrap();
        assert!(c.endpoints().is_err(), "port overflow");
    }

    #[test]
    fn parsers() {
        assert_eq!(
            parse_mac("02:aa:00:00:00:0f").unwrap(),
            [2, 0xaa, 0, 0, 0, 0xf]
        );
        assert!(parse_mac("02:aa:00:00:00").is_err());
        assert!(parse_mac("02:aa:00:00:00:100").is_err());
        assert_eq!(parse_tci("0x64").unwrap(), 100);
        assert_eq!(parse_tci("100").unwrap(), 100);
        assert!(parse_tci("70000").is_err());
        assert!(parse_socket_addr("1.2.3.4").is_err());
        assert!(add_to_ip("255.255.255.255".parse().unwrap(), 1).is_err());
    }
}
