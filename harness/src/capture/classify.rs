//! What a captured IP packet is, from an IPsec point of view (the classes
//! themselves are the model's). IPv4 and IPv6 share one classification of
//! what they carry; each family has its own way of marking fragments and
//! its own ICMP.

use std::net::IpAddr;

use etherparse::{IpNumber, Ipv4Slice, Ipv6ExtensionSlice, Ipv6Slice};

pub use crate::model::{Class, Flow};

/// Classify an IP packet (either family). `tun` says it was seen on a TUN
/// device (the clear side of kernel-libipsec), where every packet is tunnel
/// payload.
pub fn classify(pkt: &[u8], tun: bool, flows: &[Flow]) -> Class {
    if tun {
        return Class::Inner;
    }
    match pkt.first().map(|b| b >> 4) {
        Some(4) => classify_v4(pkt, flows),
        Some(6) => classify_v6(pkt, flows),
        _ => Class::Other,
    }
}

/// The destination address of an IP packet of either family.
pub fn destination(pkt: &[u8]) -> Option<IpAddr> {
    match pkt.first()? >> 4 {
        4 => {
            let o: [u8; 4] = pkt.get(16..20)?.try_into().ok()?;
            Some(IpAddr::from(o))
        }
        6 => {
            let o: [u8; 16] = pkt.get(24..40)?.try_into().ok()?;
            Some(IpAddr::from(o))
        }
        _ => None,
    }
}

/// A packet's protocol and ends, as matched against conntrack tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketEnds {
    /// IP protocol number.
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Ports (TCP and UDP only).
    pub ports: Option<(u16, u16)>,
}

impl PacketEnds {
    /// The same connection seen the other way.
    pub fn reversed(&self) -> PacketEnds {
        PacketEnds {
            src: self.dst,
            dst: self.src,
            ports: self.ports.map(|(s, d)| (d, s)),
            ..*self
        }
    }
}

/// A packet as conntrack sees it: its own ends and, for an ICMP error, the
/// ends of the packet it quotes (which conntrack relates to that packet's
/// connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// The packet's own protocol and ends.
    pub ends: PacketEnds,
    /// What an ICMP error quotes.
    pub quoted: Option<PacketEnds>,
}

/// Protocol, addresses and ports from a (possibly truncated) IP header,
/// and what follows the IP header: IPv4, or IPv6 without extension
/// headers before the transport header.
pub fn transport(d: &[u8]) -> Option<(PacketEnds, &[u8])> {
    let (proto, src, dst, rest) = match d.first()? >> 4 {
        4 => {
            let ihl = usize::from(d[0] & 0x0f) * 4;
            let s: [u8; 4] = d.get(12..16)?.try_into().ok()?;
            let t: [u8; 4] = d.get(16..20)?.try_into().ok()?;
            (*d.get(9)?, IpAddr::from(s), IpAddr::from(t), d.get(ihl..)?)
        }
        6 => {
            let s: [u8; 16] = d.get(8..24)?.try_into().ok()?;
            let t: [u8; 16] = d.get(24..40)?.try_into().ok()?;
            (*d.get(6)?, IpAddr::from(s), IpAddr::from(t), d.get(40..)?)
        }
        _ => return None,
    };
    let ports = matches!(proto, 6 | 17)
        .then(|| {
            let p = rest.get(..4)?;
            Some((
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            ))
        })
        .flatten();
    Some((
        PacketEnds {
            proto,
            src,
            dst,
            ports,
        },
        rest,
    ))
}

/// The packet's ends, and for an ICMP or ICMPv6 error those of the packet
/// it quotes. Fragments other than the first carry no ports and are taken
/// as they are.
pub fn packet(d: &[u8]) -> Option<Packet> {
    let (ends, rest) = transport(d)?;
    let error = match ends.proto {
        1 => matches!(rest.first(), Some(3 | 11 | 12)),
        58 => matches!(rest.first(), Some(1..=4)),
        _ => false,
    };
    let quoted = if error {
        rest.get(8..).and_then(transport).map(|(q, _)| q)
    } else {
        None
    };
    Some(Packet { ends, quoted })
}

/// What a NAT leaves unchanged when it passes a packet on, to pair the
/// packet that arrived with the one that left: the protocol and the bytes
/// after the UDP header (ports and checksum are rewritten), or after the
/// IP header for ESP and AH (SPI and sequence number make it unique).
/// `None` for anything else, and for a fragment.
pub fn pair_key(d: &[u8]) -> Option<(u8, Vec<u8>)> {
    let (ends, rest) = transport(d)?;
    let fragment = match d.first()? >> 4 {
        4 => u16::from_be_bytes([*d.get(6)?, *d.get(7)?]) & 0x3fff != 0,
        _ => false,
    };
    let body = match ends.proto {
        _ if fragment => return None,
        17 => rest.get(8..)?,
        50 | 51 => rest,
        _ => return None,
    };
    (body.len() >= 8).then(|| (ends.proto, body[..body.len().min(32)].to_vec()))
}

/// Whether a packet never leaves its link: IPv4 to the local network
/// control block (224.0.0.0/24, e.g. the IGMP reports of a segment's
/// bridge, RFC 5771) or to the limited broadcast address; IPv6 with a
/// link-scoped source or destination (fe80::/10, ff02::/16), or ICMPv6
/// neighbour discovery and multicast listener messages (RFC 4861,
/// RFC 3810). Like ARP, a node never forwards them, so a path has nothing
/// to learn from them and their timing would only add noise.
pub fn link_scoped(pkt: &[u8]) -> bool {
    if let Ok(ip) = Ipv4Slice::from_slice(pkt) {
        // The local network control block (224.0.0.0/24: IGMP reports, a
        // bridge's multicast router discovery) and limited broadcast.
        let d = ip.header().destination_addr();
        return d.octets()[..3] == [224, 0, 0] || d.is_broadcast();
    }
    let Ok(ip) = Ipv6Slice::from_slice(pkt) else {
        return false;
    };
    let h = ip.header();
    let scoped = |a: std::net::Ipv6Addr| {
        let s = a.segments()[0];
        s & 0xffc0 == 0xfe80 || s & 0xff0f == 0xff02
    };
    if scoped(h.source_addr()) || scoped(h.destination_addr()) {
        return true;
    }
    let p = ip.payload();
    p.ip_number == IpNumber::IPV6_ICMP
        && p.payload
            .first()
            .is_some_and(|t| matches!(t, 130..=137 | 143))
}

fn classify_v4(pkt: &[u8], flows: &[Flow]) -> Class {
    let Ok(ip) = Ipv4Slice::from_slice(pkt) else {
        return Class::Other;
    };
    let h = ip.header();
    if h.more_fragments() || h.fragments_offset().value() != 0 {
        return fragment(h.fragments_offset().value());
    }
    let ends = (
        IpAddr::V4(h.source_addr()),
        IpAddr::V4(h.destination_addr()),
    );
    carried(h.protocol(), ip.payload().payload, ends, flows)
}

fn classify_v6(pkt: &[u8], flows: &[Flow]) -> Class {
    let Ok(ip) = Ipv6Slice::from_slice(pkt) else {
        return Class::Other;
    };
    // A Fragment extension header (next header 44) that fragments, or an
    // Authentication Header, which IPv6 chains as an extension header.
    for ext in ip.extensions().clone().into_iter() {
        match ext {
            Ipv6ExtensionSlice::Fragment(f) if f.is_fragmenting_payload() => {
                return fragment(f.fragment_offset().value());
            }
            Ipv6ExtensionSlice::Authentication(_) => return Class::Ah,
            _ => {}
        }
    }
    let h = ip.header();
    let ends = (
        IpAddr::V6(h.source_addr()),
        IpAddr::V6(h.destination_addr()),
    );
    let payload = ip.payload();
    carried(payload.ip_number, payload.payload, ends, flows)
}

fn fragment(offset: u16) -> Class {
    if offset == 0 {
        Class::FragmentFirst
    } else {
        Class::FragmentRest
    }
}

/// What an unfragmented packet from `ends.0` to `ends.1` carries.
fn carried(proto: IpNumber, payload: &[u8], ends: (IpAddr, IpAddr), flows: &[Flow]) -> Class {
    let check = flows.iter().any(|f| f.matches(ends.0, ends.1));
    match proto {
        IpNumber::ENCAPSULATING_SECURITY_PAYLOAD => Class::Esp,
        IpNumber::AUTHENTICATION_HEADER => Class::Ah,
        IpNumber::GRE => Class::Gre,
        IpNumber::UDP if payload.len() >= 8 => udp(payload, check),
        IpNumber::ICMP if !payload.is_empty() => match (payload[0], payload.get(1)) {
            (3, Some(4)) => Class::IcmpFragNeeded,
            (3, _) | (11, _) => Class::IcmpError,
            _ if check => Class::CheckClear,
            _ => Class::Other,
        },
        // ICMPv6 (RFC 4443): destination unreachable, packet too big, time
        // exceeded, parameter problem; echo is a check's; the rest
        // (neighbour discovery, MLD) is the link's own business.
        IpNumber::IPV6_ICMP if !payload.is_empty() => match payload[0] {
            2 => Class::PacketTooBig,
            1 | 3 | 4 => Class::IcmpError,
            128 | 129 if check => Class::CheckClear,
            _ => Class::Other,
        },
        _ if check => Class::CheckClear,
        _ => Class::Other,
    }
}

/// A UDP datagram: IKE and NAT-T by port and first bytes, a check's own
/// traffic, or anything else.
fn udp(payload: &[u8], check: bool) -> Class {
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
    } else if check {
        Class::CheckClear
    } else {
        Class::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_link_control_multicast_is_link_scoped() {
        // IGMPv3 report from a bridge without an address, to 224.0.0.22.
        let mut igmp = vec![
            0x46, 0, 0, 40, 0, 0, 0x40, 0, 1, 2, 0, 0, 0, 0, 0, 0, 224, 0, 0, 22,
        ];
        igmp.extend([0u8; 20]);
        assert!(link_scoped(&igmp));
        igmp[16..20].copy_from_slice(&[239, 1, 1, 1]);
        assert!(!link_scoped(&igmp), "a routable group is not the link's");
    }
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
        let flow = Flow::between(IpAddr::from(A), IpAddr::from(B));
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

    #[test]
    fn link_scoped_ipv6_is_told_apart() {
        let v6 = |src: &str, dst: &str, icmp_type: u8| {
            let b = PacketBuilder::ipv6(
                src.parse::<std::net::Ipv6Addr>().unwrap().octets(),
                dst.parse::<std::net::Ipv6Addr>().unwrap().octets(),
                64,
            )
            .icmpv6_raw(icmp_type, 0, [0; 4]);
            let mut v = Vec::new();
            b.write(&mut v, &[]).unwrap();
            v
        };
        assert!(link_scoped(&v6("fe80::1", "ff02::16", 143)));
        assert!(link_scoped(&v6("2001:db8::1", "ff02::1:ff00:2", 135)));
        assert!(link_scoped(&v6("2001:db8::2", "2001:db8::1", 136)));
        assert!(!link_scoped(&v6("2001:db8::2", "2001:db8:2::1", 128)));
        assert!(!link_scoped(&v6("2001:db8::2", "2001:db8:2::1", 2)));
        assert!(!link_scoped(&udp(500, 500, &[1])));
    }
}
