//! What a gateway does to traffic: a named profile and the RFC 4787
//! behaviour knobs that refine it. Rendering them as nftables rulesets is
//! the topology's business.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::Ipv6Net;

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
    /// Stateful NAT64 (RFC 6146): IPv6 hosts inside reach IPv4 hosts
    /// outside at addresses synthesized from `nat64_prefix` (RFC 6052).
    /// TAYGA translates each IPv6 host to an address of a private pool
    /// (RFC 7915 translation, in userspace on a TUN device) and the pool is
    /// masqueraded onto the outside address. Needs `nat64_prefix`.
    Nat64,
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
            NatProfile::Nat64 => Families::BOTH,
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

/// Traffic a gateway can drop beyond the fixed classes: a TCP or UDP port
/// (either direction), or an IP protocol by number (knob `block`:
/// `"tcp:443"`, `"udp:1701"`, `"proto:47"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, SerializeDisplay)]
pub enum Filter {
    /// TCP to or from this port.
    Tcp(u16),
    /// UDP to or from this port.
    Udp(u16),
    /// IP protocol (IPv6: next header) with this number.
    Proto(u8),
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filter::Tcp(p) => write!(f, "tcp:{p}"),
            Filter::Udp(p) => write!(f, "udp:{p}"),
            Filter::Proto(n) => write!(f, "proto:{n}"),
        }
    }
}

impl std::str::FromStr for Filter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not `tcp:<port>`, `udp:<port>` or `proto:<number>`");
        let (kind, n) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "tcp" | "udp" => {
                let port: u16 = n.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
                Ok(if kind == "tcp" {
                    Filter::Tcp(port)
                } else {
                    Filter::Udp(port)
                })
            }
            "proto" => n.parse().map(Filter::Proto).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
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
    pub inside: Ipv6Net,
    /// The outside network it maps to, of the same length.
    pub outside: Ipv6Net,
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
    /// The NAT64 prefix of profile `nat64`.
    pub nat64: Option<Nat64>,
    /// Ports and protocols dropped in both directions, beyond `block`.
    pub filters: Vec<Filter>,
    /// Inside address raw ESP (IP protocol 50) arriving on the public side
    /// is forwarded to ("IPsec passthrough" to a server behind the NAT).
    pub forward_esp_to: Option<IpAddr>,
    /// Largest TCP MSS in SYNs forwarded through the node (RFC 4459
    /// section 3.2's MSS clamping), bytes.
    pub mss_clamp: Option<u16>,
}

impl Knobs {
    /// Add a dropped port or protocol (kept sorted, no duplicates).
    pub fn add_filter(&mut self, f: Filter) {
        if !self.filters.contains(&f) {
            self.filters.push(f);
            self.filters.sort();
        }
    }

    /// Add a blocked class (kept sorted, no duplicates).
    pub fn add_block(&mut self, b: Block) {
        if !self.block.contains(&b) {
            self.block.push(b);
            self.block.sort();
        }
    }
}

/// A NAT64 gateway's translation prefix (a /96, RFC 6052 section 2.2: the
/// IPv4 address is the last 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Nat64 {
    /// The prefix, e.g. 2001:db8:64::/96.
    pub prefix: Ipv6Net,
}

impl Nat64 {
    /// The translator's pool: each IPv6 host inside gets one of these
    /// (from the benchmarking range of RFC 2544, which no scenario uses for
    /// its own addresses), masqueraded onto the outside address.
    pub const POOL: &'static str = "198.18.64.0/24";
    /// The translator's own IPv4 address, in the pool.
    pub const IPV4: &'static str = "198.18.64.1";
    /// The translator's own IPv6 address (the source of its ICMPv6
    /// errors), outside the prefix so the well-known prefix works too.
    pub const IPV6: &'static str = "fd64:64:64::1";
    /// The TUN device TAYGA creates.
    pub const DEVICE: &'static str = "nat64";
    /// RFC 6052 section 2.1's well-known prefix.
    pub const WELL_KNOWN: &'static str = "64:ff9b::/96";

    /// The IPv4 address embedded in `a`, if `a` is in the prefix.
    pub fn embedded(&self, a: Ipv6Addr) -> Option<Ipv4Addr> {
        self.prefix.contains(&a).then(|| {
            let o = a.octets();
            Ipv4Addr::new(o[12], o[13], o[14], o[15])
        })
    }

    /// Whether `a` is a global IPv4 address, as RFC 6052 section 3.1 means
    /// it: not private (RFC 1918), shared (RFC 6598), loopback, link-local,
    /// IETF protocol assignments, documentation (RFC 5737), benchmarking
    /// (RFC 2544) or reserved.
    pub fn is_global(a: Ipv4Addr) -> bool {
        let o = a.octets();
        !(a.is_private()
            || a.is_loopback()
            || a.is_link_local()
            || a.is_documentation()
            || a.is_unspecified()
            || a.is_broadcast()
            || o[0] == 0
            || o[0] >= 240
            || (o[0] == 100 && o[1] & 0xc0 == 64)
            || (o[0] == 192 && o[1] == 0 && o[2] == 0)
            || (o[0] == 198 && o[1] & 0xfe == 18))
    }

    /// Whether this is the well-known prefix, which RFC 6052 section 3.1
    /// forbids with non-global IPv4 addresses.
    pub fn is_well_known(&self) -> bool {
        Self::WELL_KNOWN.parse::<Ipv6Net>().ok() == Some(self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn nat64_embeds_the_last_32_bits() {
        let n = Nat64 {
            prefix: "2001:db8:64::/96".parse().unwrap(),
        };
        assert_eq!(
            n.embedded("2001:db8:64::cb00:7102".parse().unwrap()),
            Some(Ipv4Addr::new(203, 0, 113, 2))
        );
        assert_eq!(n.embedded("2001:db8:65::1".parse().unwrap()), None);
        assert!(!n.is_well_known());
        let w = Nat64 {
            prefix: Nat64::WELL_KNOWN.parse().unwrap(),
        };
        assert!(w.is_well_known());
        for (a, global) in [
            ("203.0.113.2", false),
            ("10.1.2.3", false),
            ("100.64.0.1", false),
            ("198.18.64.1", false),
            ("192.0.0.8", false),
            ("8.8.8.8", true),
            ("100.128.0.1", true),
        ] {
            assert_eq!(Nat64::is_global(a.parse().unwrap()), global, "{a}");
        }
    }

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
            "none, masquerade, no-esp, block-4500, win2000, block-500, symmetric, frag-drop, udp-only, ptb-drop, netmap66, nat64"
        );
    }
}
