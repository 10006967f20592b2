//! What a captured packet is, from an IPsec point of view: the classes the
//! capture counts per link and the diagnosis reasons about.

use std::net::IpAddr;

use ipnet::IpNet;

use serde_with::{DeserializeFromStr, SerializeDisplay};
use strum::{Display, EnumIter, EnumString, IntoStaticStr, VariantNames};

/// Packet classes, in report order.
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
    DeserializeFromStr,
    Display,
    EnumString,
    IntoStaticStr,
    EnumIter,
    VariantNames,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Class {
    /// IKE on UDP 500.
    #[strum(serialize = "ike-500")]
    Ike500,
    /// IKE on UDP 4500 (non-ESP marker: four zero bytes).
    #[strum(serialize = "ike-4500")]
    Ike4500,
    /// ESP carried in UDP 4500 (RFC 3948).
    EspInUdp,
    /// NAT-T keepalive: UDP 4500 with the single byte 0xFF.
    NattKeepalive,
    /// Raw ESP, IP protocol 50.
    Esp,
    /// AH, IP protocol 51.
    Ah,
    /// GRE, IP protocol 47 (PPTP's data channel).
    Gre,
    /// First fragment of a fragmented IP packet.
    FragmentFirst,
    /// Later fragment of a fragmented IP packet.
    FragmentRest,
    /// A check's own packet (inner addresses) outside the tunnel.
    CheckClear,
    /// A packet inside the tunnel (on a TUN device of kernel-libipsec).
    Inner,
    /// ICMP destination unreachable, fragmentation needed (PMTU).
    IcmpFragNeeded,
    /// ICMPv6 Packet Too Big (PMTU, RFC 4443 3.2).
    #[strum(serialize = "icmp6-too-big")]
    PacketTooBig,
    /// Other ICMP errors (unreachable, time exceeded).
    IcmpError,
    /// Anything else.
    Other,
}

impl Class {
    /// A phrase for diagnoses.
    pub fn describe(self) -> &'static str {
        match self {
            Class::Ike500 => "IKE on UDP 500",
            Class::Ike4500 => "IKE on UDP 4500",
            Class::EspInUdp => "ESP in UDP 4500",
            Class::NattKeepalive => "NAT-T keepalives",
            Class::Esp => "raw ESP (IP protocol 50)",
            Class::Ah => "AH (IP protocol 51)",
            Class::Gre => "GRE (IP protocol 47)",
            Class::FragmentFirst => "first IP fragments",
            Class::FragmentRest => "non-first IP fragments",
            Class::CheckClear => "check traffic in clear text",
            Class::Inner => "tunnelled traffic",
            Class::IcmpFragNeeded => "ICMP fragmentation-needed errors",
            Class::PacketTooBig => "ICMPv6 Packet Too Big errors",
            Class::IcmpError => "ICMP errors",
            Class::Other => "other packets",
        }
    }

    /// Whether the count depends on timing (retransmits, keepalives), so
    /// outcomes show only its presence.
    pub fn timing_dependent(self) -> bool {
        matches!(
            self,
            Class::Ike500 | Class::Ike4500 | Class::NattKeepalive | Class::Gre | Class::Other
        )
    }
}

/// A check's traffic, to recognise it outside the tunnel: its source and
/// destination, each an address or (a virtual IP not yet assigned when
/// the capture starts) the pool it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Check source.
    pub src: IpNet,
    /// Check destination.
    pub dst: IpNet,
}

impl Flow {
    /// The flow between two addresses.
    pub fn between(src: IpAddr, dst: IpAddr) -> Self {
        Flow {
            src: src.into(),
            dst: dst.into(),
        }
    }

    /// Whether a packet from `a` to `b` belongs to this flow, either way.
    pub fn matches(&self, a: IpAddr, b: IpAddr) -> bool {
        (self.src.contains(&a) && self.dst.contains(&b))
            || (self.dst.contains(&a) && self.src.contains(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn serialized_names_are_the_report_names() {
        let names: Vec<String> = Class::iter().map(|c| c.to_string()).collect();
        assert_eq!(
            names.join(" "),
            "ike-500 ike-4500 esp-in-udp natt-keepalive esp ah gre fragment-first fragment-rest \
             check-clear inner icmp-frag-needed icmp6-too-big icmp-error other"
        );
        for c in Class::iter() {
            assert_eq!(serde_json::to_value(c).unwrap(), c.to_string());
            assert_eq!(c.to_string().parse::<Class>(), Ok(c));
        }
    }
}
