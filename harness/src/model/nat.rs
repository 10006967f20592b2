//! What a gateway does to traffic: a named profile and the RFC 4787
//! behaviour knobs that refine it. Rendering them as nftables rulesets is
//! the topology's business.

use std::net::IpAddr;

use serde::Serialize;
use serde_with::{DeserializeFromStr, SerializeDisplay};
use strum::{Display, EnumIter, EnumString, IntoStaticStr, VariantNames};

/// A named NAT behaviour: a preset of [`Knobs`] (the first five predate the
/// knobs and keep their rulesets byte for byte).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    SerializeDisplay,
    DeserializeFromStr,
    Display,
    EnumString,
    IntoStaticStr,
    EnumIter,
    VariantNames,
)]
#[strum(serialize_all = "kebab-case")]
pub enum NatProfile {
    /// Plain router: no translation, nothing dropped.
    None,
    /// Linux source NAT (masquerade) on the public side. Linux conntrack also
    /// tracks raw ESP by address pair, so one client's ESP gets through
    /// ("IPsec passthrough" for a single client).
    Masquerade,
    /// Masquerade that translates only TCP, UDP and ICMP and drops IP
    /// protocols 50 (ESP) and 51 (AH), like many consumer NATs and the classic
    /// Windows 2000 NAT.
    NoEsp,
    /// Masquerade with UDP port 4500 (NAT-T) dropped in both directions.
    #[strum(serialize = "block-4500")]
    Block4500,
    /// The seed case's gateway, modelled on Windows 2000's NAT: translates
    /// TCP, UDP and ICMP, drops IP protocols 50/51 (ESP, AH), and has a PPTP
    /// editor (Linux's PPTP connection-tracking helper, which also
    /// translates PPTP's GRE by call ID).
    Win2000,
    /// Masquerade with UDP port 500 (IKE) dropped in both directions.
    #[strum(serialize = "block-500")]
    Block500,
    /// Masquerade drawing a random outside port for every new mapping:
    /// address-and-port-dependent mapping (RFC 4787 4.1), a "symmetric" NAT.
    Symmetric,
    /// Masquerade that drops IP fragments before reassembly (RFC 4787
    /// section 11; REQ-14 asks NATs not to).
    FragDrop,
    /// No translation; a firewall that forwards only UDP.
    UdpOnly,
    /// No translation; a router that drops ICMP "packet too big" errors
    /// (ICMPv6 type 2, and ICMP fragmentation-needed for IPv4): the path
    /// MTU black hole of RFC 2923 and RFC 8201.
    PtbDrop,
    /// Stateful 1:1 IPv6 prefix mapping, as nftables' `snat prefix` and
    /// `dnat prefix` do it: a conntrack entry per flow, the interface
    /// identifier kept and the transport checksum rewritten. It is not
    /// RFC 6296 NPTv6 (stateless and checksum-neutral), whose name it
    /// therefore does not take. Needs `nat_prefix`.
    Netmap66,
}

impl NatProfile {
    /// Whether the profile includes the PPTP helper by itself.
    pub fn has_pptp_helper(self) -> bool {
        self == NatProfile::Win2000
    }

    /// Whether the profile translates addresses (and so needs `nat_outside`).
    pub fn translates(self) -> bool {
        !matches!(
            self,
            NatProfile::None | NatProfile::UdpOnly | NatProfile::PtbDrop
        )
    }

    /// The families the profile can act on (the IPv6-only ones are prefix
    /// mappings; Linux's PPTP editor is IPv4's).
    pub fn families(self) -> Families {
        match self {
            NatProfile::Netmap66 => Families::V6,
            NatProfile::Win2000 => Families::V4,
            _ => Families::BOTH,
        }
    }

    /// The knobs the newer presets stand for, applied under the file's own.
    pub fn preset(self) -> Knobs {
        let mut k = Knobs::default();
        match self {
            NatProfile::Block500 => k.add_block(Block::Udp500),
            NatProfile::Symmetric => k.ports = Ports::Random,
            NatProfile::FragDrop => k.add_block(Block::Fragments),
            NatProfile::UdpOnly => k.add_block(Block::NonUdp),
            NatProfile::PtbDrop => k.add_block(Block::PacketTooBig),
            _ => {}
        }
        k
    }
}

/// How a NAT assigns outside ports (RFC 4787 4.1, 4.2.1).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Display,
    EnumString,
    IntoStaticStr,
    VariantNames,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Ports {
    /// Keep the inside port when free: endpoint-independent mapping with
    /// port preservation (Linux's default).
    #[default]
    Preserve,
    /// A random port for every new mapping: address-and-port-dependent
    /// mapping.
    Random,
}

/// A packet class a gateway can drop (knob `block`, steps `block`/`unblock`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    SerializeDisplay,
    Display,
    EnumString,
    IntoStaticStr,
    EnumIter,
    VariantNames,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Block {
    /// IP protocol 50.
    Esp,
    /// IP protocol 51.
    Ah,
    /// UDP port 500 (IKE), either direction.
    #[strum(serialize = "udp-500")]
    Udp500,
    /// UDP port 4500 (NAT-T), either direction.
    #[strum(serialize = "udp-4500")]
    Udp4500,
    /// IP fragments, dropped before the gateway reassembles them.
    Fragments,
    /// Everything but UDP.
    NonUdp,
    /// ICMPv6 Packet Too Big, and ICMP fragmentation-needed for IPv4.
    PacketTooBig,
}

/// The address families a node has addresses of, and so the families its
/// gateway rules act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Families {
    /// IPv4.
    pub v4: bool,
    /// IPv6.
    pub v6: bool,
}

impl Families {
    /// IPv4 only.
    pub const V4: Families = Families {
        v4: true,
        v6: false,
    };
    /// IPv6 only.
    pub const V6: Families = Families {
        v4: false,
        v6: true,
    };
    /// Both.
    pub const BOTH: Families = Families { v4: true, v6: true };

    /// The families of `addrs`.
    pub fn of(addrs: impl IntoIterator<Item = IpAddr>) -> Families {
        addrs
            .into_iter()
            .fold(Families::default(), |f, a| Families {
                v4: f.v4 || a.is_ipv4(),
                v6: f.v6 || a.is_ipv6(),
            })
    }

    /// Whether every family of `self` is one of `other`'s.
    pub fn within(self, other: Families) -> bool {
        (!self.v4 || other.v4) && (!self.v6 || other.v6)
    }
}

/// A prefix mapping (profile `netmap66`): the inside prefix, and the
/// outside prefix it appears as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PrefixMap {
    /// The inside network.
    pub inside: ipnet::Ipv6Net,
    /// The outside network it maps to, of the same length.
    pub outside: ipnet::Ipv6Net,
}

/// A gateway's NAT behaviour beyond its profile (each documented with the
/// RFC 4787 term it models). The default changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Knobs {
    /// Port assignment.
    pub ports: Ports,
    /// Outside port range for TCP/UDP mappings.
    pub port_range: Option<(u16, u16)>,
    /// UDP mapping timeout, seconds (RFC 4787 4.3).
    pub udp_timeout: Option<u32>,
    /// Classes dropped in both directions.
    pub block: Vec<Block>,
    /// Random loss of forwarded packets, percent.
    pub loss: u8,
    /// Inside address UDP 500/4500 arriving on the public side is forwarded to.
    pub forward_ike_to: Option<IpAddr>,
    /// Hairpin that forwarding for inside hosts (RFC 4787 section 6).
    pub hairpin: bool,
    /// The prefix mapping of profile `netmap66`.
    pub prefix_map: Option<PrefixMap>,
}

impl Knobs {
    /// Add a blocked class (kept sorted, no duplicates).
    pub fn add_block(&mut self, b: Block) {
        if !self.block.contains(&b) {
            self.block.push(b);
            self.block.sort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn names_round_trip() {
        for p in NatProfile::iter() {
            assert_eq!(p.to_string().parse::<NatProfile>(), Ok(p));
        }
        assert!("full-cone".parse::<NatProfile>().is_err());
        assert_eq!(NatProfile::Block4500.to_string(), "block-4500");
        assert_eq!(NatProfile::NoEsp.to_string(), "no-esp");
        assert_eq!(Block::Udp4500.to_string(), "udp-4500");
        assert_eq!(
            super::super::known::<Block>(),
            "esp, ah, udp-500, udp-4500, fragments, non-udp, packet-too-big"
        );
        assert_eq!(
            super::super::known::<NatProfile>(),
            "none, masquerade, no-esp, block-4500, win2000, block-500, symmetric, frag-drop, udp-only, ptb-drop, netmap66"
        );
    }
}
