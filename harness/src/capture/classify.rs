//! What a captured IPv4 packet is, from an IPsec point of view.

use std::net::Ipv4Addr;

use etherparse::{IpNumber, Ipv4Slice};
use serde::Serialize;

/// Packet classes, in report order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// IKE on UDP 500.
    #[serde(rename = "ike-500")]
    Ike500,
    /// IKE on UDP 4500 (non-ESP marker: four zero bytes).
    #[serde(rename = "ike-4500")]
    Ike4500,
    /// ESP carried in UDP 4500 (RFC 3948).
    EspInUdp,
    /// NAT-T keepalive: UDP 4500 with the single byte 0xFF.
    NattKeepalive,
    /// Raw ESP, IP protocol 50.
    Esp,
    /// AH, IP protocol 51.
    Ah,
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
    /// Other ICMP errors (unreachable, time exceeded).
    IcmpError,
    /// Anything else.
    Other,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 13] = [
        Class::Ike500,
        Class::Ike4500,
        Class::EspInUdp,
        Class::NattKeepalive,
        Class::Esp,
        Class::Ah,
        Class::FragmentFirst,
        Class::FragmentRest,
        Class::CheckClear,
        Class::Inner,
        Class::IcmpFragNeeded,
        Class::IcmpError,
        Class::Other,
    ];

    /// Name as in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ike500 => "ike-500",
            Class::Ike4500 => "ike-4500",
            Class::EspInUdp => "esp-in-udp",
            Class::NattKeepalive => "natt-keepalive",
            Class::Esp => "esp",
            Class::Ah => "ah",
            Class::FragmentFirst => "fragment-first",
            Class::FragmentRest => "fragment-rest",
            Class::CheckClear => "check-clear",
            Class::Inner => "inner",
            Class::IcmpFragNeeded => "icmp-frag-needed",
            Class::IcmpError => "icmp-error",
            Class::Other => "other",
        }
    }

    /// A phrase for diagnoses.
    pub fn describe(self) -> &'static str {
        match self {
            Class::Ike500 => "IKE on UDP 500",
            Class::Ike4500 => "IKE on UDP 4500",
            Class::EspInUdp => "ESP in UDP 4500",
            Class::NattKeepalive => "NAT-T keepalives",
            Class::Esp => "raw ESP (IP protocol 50)",
            Class::Ah => "AH (IP protocol 51)",
            Class::FragmentFirst => "first IP fragments",
            Class::FragmentRest => "non-first IP fragments",
            Class::CheckClear => "check traffic in clear text",
            Class::Inner => "tunnelled traffic",
            Class::IcmpFragNeeded => "ICMP fragmentation-needed errors",
            Class::IcmpError => "ICMP errors",
            Class::Other => "other packets",
        }
    }

    /// Whether the count depends on timing (retransmits, keepalives), so
    /// outcomes show only its presence.
    pub fn timing_dependent(self) -> bool {
        matches!(
            self,
            Class::Ike500 | Class::Ike4500 | Class::NattKeepalive | Class::Other
        )
    }
}

/// A check's traffic, to recognise it outside the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Check source.
    pub src: Ipv4Addr,
    /// Check destination.
    pub dst: Ipv4Addr,
}

impl Flow {
    fn matches(&self, a: Ipv4Addr, b: Ipv4Addr) -> bool {
        (a == self.src && b == self.dst) || (a == self.dst && b == self.src)
    }
}

/// Classify an IPv4 packet. `tun` says it was seen on a TUN device (the
/// clear side of kernel-libipsec), where every packet is tunnel payload.
pub fn classify(pkt: &[u8], tun: bool, flows: &[Flow]) -> Class {
    if tun {
        return Class::Inner;
    }
    let Ok(ip) = Ipv4Slice::from_slice(pkt) else {
        return Class::Other;
    };
    let h = ip.header();
    if h.more_fragments() || h.fragments_offset().value() != 0 {
        return if h.fragments_offset().value() == 0 {
            Class::FragmentFirst
        } else {
            Class::FragmentRest
        };
    }
    let (src, dst) = (h.source_addr(), h.destination_addr());
    let payload = ip.payload().payload;
    match h.protocol() {
        IpNumber::ENCAPSULATING_SECURITY_PAYLOAD => Class::Esp,
        IpNumber::AUTHENTICATION_HEADER => Class::Ah,
        IpNumber::UDP if payload.len() >= 8 => {
            let sport = u16::from_be_bytes([payload[0], payload[1]]);
            let dport = u16::from_be_bytes([payload[2], payload[3]]);
            let data = &payload[8..];
            if sport == 4500 || dport == 4500 {
                if data == [0xff] {
                    Class::NattKeepalive
                } else if data.len() >= 4 && data[..4] == [0, 0, 0, 0] {
                    Class::Ike4500
                } else {
                    Class::EspInUdp
                }
            } else if sport == 500 || dport == 500 {
                Class::Ike500
            } else if flows.iter().any(|f| f.matches(src, dst)) {
                Class::CheckClear
            } else {
                Class::Other
            }
        }
        IpNumber::ICMP if !payload.is_empty() => match (payload[0], payload.get(1)) {
            (3, Some(4)) => Class::IcmpFragNeeded,
            (3, _) | (11, _) => Class::IcmpError,
            _ if flows.iter().any(|f| f.matches(src, dst)) => Class::CheckClear,
            _ => Class::Other,
        },
        _ if flows.iter().any(|f| f.matches(src, dst)) => Class::CheckClear,
        _ => Class::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const A: [u8; 4] = [192, 168, 1, 2];
    const B: [u8; 4] = [203, 0, 113, 2];

    fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4(A, B, 64).udp(sport, dport);
        let mut v = Vec::with_capacity(b.size(data.len()));
        b.write(&mut v, data).unwrap();
        v
    }

    fn ip(proto: IpNumber, src: [u8; 4], dst: [u8; 4], data: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4(src, dst, 64);
        let mut v = Vec::new();
        b.write(&mut v, proto, data).unwrap();
        v
    }

    #[test]
    fn nat_t_port_4500_is_split_by_its_first_bytes() {
        assert_eq!(
            classify(&udp(4500, 4500, &[0, 0, 0, 0, 1, 2]), false, &[]),
            Class::Ike4500
        );
        assert_eq!(
            classify(&udp(4500, 4500, &[0xc1, 0, 0, 1, 0, 0, 0, 1]), false, &[]),
            Class::EspInUdp
        );
        assert_eq!(
            classify(&udp(4500, 4500, &[0xff]), false, &[]),
            Class::NattKeepalive
        );
        assert_eq!(
            classify(&udp(500, 500, &[1, 2, 3]), false, &[]),
            Class::Ike500
        );
    }

    #[test]
    fn serialized_names_are_the_report_names() {
        for c in Class::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn raw_ipsec_protocols() {
        assert_eq!(
            classify(
                &ip(IpNumber::ENCAPSULATING_SECURITY_PAYLOAD, A, B, &[1; 20]),
                false,
                &[]
            ),
            Class::Esp
        );
        assert_eq!(
            classify(
                &ip(IpNumber::AUTHENTICATION_HEADER, A, B, &[1; 20]),
                false,
                &[]
            ),
            Class::Ah
        );
    }

    #[test]
    fn check_traffic_outside_the_tunnel_is_flagged_both_ways() {
        let flow = Flow {
            src: Ipv4Addr::new(192, 168, 1, 2),
            dst: Ipv4Addr::new(203, 0, 113, 2),
        };
        assert_eq!(
            classify(&udp(40000, 1701, b"x"), false, &[flow]),
            Class::CheckClear
        );
        let reply = ip(IpNumber::ICMP, B, A, &[0, 0, 0, 0, 0, 1, 0, 1]);
        assert_eq!(classify(&reply, false, &[flow]), Class::CheckClear);
        assert_eq!(classify(&udp(40000, 1701, b"x"), false, &[]), Class::Other);
        assert_eq!(classify(&udp(40000, 1701, b"x"), true, &[]), Class::Inner);
    }

    #[test]
    fn icmp_errors_and_fragments() {
        assert_eq!(
            classify(
                &ip(IpNumber::ICMP, B, A, &[3, 4, 0, 0, 0, 0, 5, 220]),
                false,
                &[]
            ),
            Class::IcmpFragNeeded
        );
        assert_eq!(
            classify(
                &ip(IpNumber::ICMP, B, A, &[3, 0, 0, 0, 0, 0, 0, 0]),
                false,
                &[]
            ),
            Class::IcmpError
        );
        let mut p = udp(500, 500, &[0; 40]);
        p[6] = 0x20; // more fragments, offset 0
        p[10] = 0;
        p[11] = 0;
        assert_eq!(classify(&p, false, &[]), Class::FragmentFirst);
        p[6] = 0x00;
        p[7] = 0x10; // offset 16 * 8
        assert_eq!(classify(&p, false, &[]), Class::FragmentRest);
    }
}
