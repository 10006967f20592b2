//! What a translating node did to the packets it forwarded, as its own
//! connection tracker reports it: every new conntrack entry's two tuples,
//! read from ctnetlink's event group while the capture runs. A check's
//! packet that a NAT rewrote is then still the check's packet on the far
//! side, and a reply addressed to the NAT itself is known to be passed on
//! (its destination rewritten back), not delivered there.

use std::collections::BTreeSet;
use std::net::IpAddr;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Tuple,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};

use super::classify::{Packet, PacketEnds};
use crate::model::Flow;

/// One direction's addresses and ports of a conntrack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ends {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source and destination ports (TCP and UDP only).
    pub ports: Option<(u16, u16)>,
}

/// A conntrack entry: what the first packet looked like (`orig`) and what
/// a reply must look like (`reply`); they differ where the node translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Translation {
    /// IP protocol number.
    pub proto: u8,
    /// The original direction, as the first packet arrived.
    pub orig: Ends,
    /// The reply direction, as a reply arrives.
    pub reply: Ends,
}

impl Translation {
    /// Whether the node translates this connection at all.
    pub fn translates(&self) -> bool {
        self.orig.src != self.reply.dst
            || self.orig.dst != self.reply.src
            || self.orig.ports.map(|(s, d)| (d, s)) != self.reply.ports
    }

    /// Whether `p`, arriving at the node, belongs to this connection and
    /// leaves with another destination address: in the original direction
    /// where the node rewrites the destination (DNAT), in the reply
    /// direction where it rewrote the source (masquerade, SNAT). An ICMP
    /// error counts by the packet it quotes, as conntrack relates it.
    pub fn forwards(&self, p: &Packet) -> bool {
        let p = match &p.quoted {
            // The quoted packet went the other way.
            Some(q) => q.reversed(),
            None => p.ends,
        };
        // Conntrack tells GRE connections apart by their keys (PPTP's call
        // IDs), which are not decoded here: by addresses alone, a GRE
        // packet no entry matches would pass for one an entry forwards.
        if self.proto != p.proto || p.proto == GRE {
            return false;
        }
        (matches(&self.orig, &p) && self.reply.src != self.orig.dst)
            || (matches(&self.reply, &p) && self.orig.src != self.reply.dst)
    }
}

/// IP protocol number of GRE.
const GRE: u8 = 47;

/// Whether packet `p` travels as tuple `t` says (ports where both have
/// them: conntrack keys ICMP by its identifier, which is not compared).
fn matches(t: &Ends, p: &PacketEnds) -> bool {
    t.src == p.src
        && t.dst == p.dst
        && (t.ports.is_none() || p.ports.is_none() || t.ports == p.ports)
}

/// The flows a check's packets take after translation: starting from the
/// checks' own address pairs, every entry whose one direction is a known
/// flow makes its other direction one too (to a fixed point, so two NATs
/// in a row are followed).
pub fn translated_flows(flows: &[Flow], entries: &[Translation]) -> BTreeSet<(u8, Ends)> {
    let mut known: BTreeSet<(u8, Ends)> = BTreeSet::new();
    let is_check = |e: &Ends| flows.iter().any(|f| f.matches(e.src, e.dst));
    loop {
        let before = known.len();
        for t in entries.iter().filter(|t| t.translates()) {
            let known_end = |e: &Ends| {
                is_check(e) || known.iter().any(|(p, k)| *p == t.proto && same_pair(k, e))
            };
            match (known_end(&t.orig), known_end(&t.reply)) {
                (true, false) => {
                    known.insert((t.proto, t.reply));
                }
                (false, true) => {
                    known.insert((t.proto, t.orig));
                }
                _ => {}
            }
        }
        if known.len() == before {
            return known;
        }
    }
}

/// Whether two tuples are the same connection, either way round.
pub fn same_pair(a: &Ends, b: &Ends) -> bool {
    let flip = |e: &Ends| Ends {
        src: e.dst,
        dst: e.src,
        ports: e.ports.map(|(s, d)| (d, s)),
    };
    a == b || *a == flip(b)
}

/// Whether packet `p` is one of `flows` (either way round).
pub fn in_flows(flows: &BTreeSet<(u8, Ends)>, p: &PacketEnds) -> bool {
    flows
        .iter()
        .any(|(proto, e)| *proto == p.proto && (matches(e, p) || matches(e, &p.reversed())))
}

/// The new entries in one read from a ctnetlink event socket (several
/// messages may share a datagram). Anything else is skipped.
pub fn parse(mut buf: &[u8]) -> Vec<Translation> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        if let Ok(m) = NetlinkMessage::<NetfilterMessage>::deserialize(&buf[..len]) {
            if let NetlinkPayload::InnerMessage(NetfilterMessage {
                inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)),
                ..
            }) = m.payload
            {
                out.extend(entry(&attrs));
            }
        }
        // Messages are aligned to 4 bytes.
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}

/// An entry from its attributes, if both tuples are complete.
fn entry(attrs: &[ConntrackAttribute]) -> Option<Translation> {
    let mut orig = None;
    let mut reply = None;
    for a in attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => orig = tuple(t),
            ConntrackAttribute::CtaTupleReply(t) => reply = tuple(t),
            _ => {}
        }
    }
    let ((p1, orig), (p2, reply)) = (orig?, reply?);
    (p1 == p2).then_some(Translation {
        proto: p1,
        orig,
        reply,
    })
}

fn tuple(t: &[Tuple]) -> Option<(u8, Ends)> {
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, None, None, None);
    for part in t {
        match part {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(ps) => {
                for p in ps {
                    match p {
                        ProtoTuple::Protocol(n) => proto = Some(u8::from(*n)),
                        ProtoTuple::SourcePort(n) => sport = Some(*n),
                        ProtoTuple::DestinationPort(n) => dport = Some(*n),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let proto = proto?;
    // Ports only for TCP and UDP: other protocols' "ports" (ICMP's
    // identifier) are not compared.
    let ports = if matches!(proto, 6 | 17) {
        Some((sport?, dport?))
    } else {
        None
    };
    Some((
        proto,
        Ends {
            src: src?,
            dst: dst?,
            ports,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(src: &str, dst: &str, ports: Option<(u16, u16)>) -> Ends {
        Ends {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ports,
        }
    }

    /// The client's ping masqueraded by gw (192.168.1.2 -> 203.0.113.2 leaves
    /// as 203.0.113.1 -> 203.0.113.2).
    fn masqueraded_ping() -> Translation {
        Translation {
            proto: 1,
            orig: ends("192.168.1.2", "203.0.113.2", None),
            reply: ends("203.0.113.2", "203.0.113.1", None),
        }
    }

    #[test]
    fn a_check_is_followed_through_one_and_two_nats() {
        let flow = Flow::between(
            "192.168.1.2".parse().unwrap(),
            "203.0.113.2".parse().unwrap(),
        );
        let t = masqueraded_ping();
        let f = translated_flows(&[flow], &[t]);
        assert_eq!(f.len(), 1);
        let after = PacketEnds {
            proto: 1,
            src: "203.0.113.1".parse().unwrap(),
            dst: "203.0.113.2".parse().unwrap(),
            ports: None,
        };
        assert!(in_flows(&f, &after));
        assert!(in_flows(&f, &after.reversed()));
        // Another protocol between the same addresses is not the check.
        assert!(!in_flows(&f, &PacketEnds { proto: 17, ..after }));
        // A second NAT in front of the first (the order entries come in
        // does not matter).
        let second = Translation {
            proto: 1,
            orig: ends("203.0.113.1", "203.0.113.2", None),
            reply: ends("203.0.113.2", "198.51.100.1", None),
        };
        let f = translated_flows(&[flow], &[second, t]);
        assert_eq!(f.len(), 2);
        let far = PacketEnds {
            src: "198.51.100.1".parse().unwrap(),
            ..after
        };
        assert!(in_flows(&f, &far));
    }

    #[test]
    fn a_reply_to_the_nat_itself_is_forwarded_and_a_stray_packet_is_not() {
        let t = masqueraded_ping();
        let reply = PacketEnds {
            proto: 1,
            src: "203.0.113.2".parse().unwrap(),
            dst: "203.0.113.1".parse().unwrap(),
            ports: None,
        };
        assert!(t.forwards(&Packet {
            ends: reply,
            quoted: None
        }));
        // The same addresses, another protocol: no entry, delivered.
        assert!(!t.forwards(&Packet {
            ends: PacketEnds { proto: 47, ..reply },
            quoted: None
        }));
        // An ICMP error about the masqueraded packet is passed on.
        let err = Packet {
            ends: PacketEnds { proto: 1, ..reply },
            quoted: Some(reply.reversed()),
        };
        assert!(t.forwards(&err));
        // Not translated: nothing forwarded by a rewrite.
        let plain = Translation {
            proto: 1,
            orig: ends("192.168.1.2", "203.0.113.2", None),
            reply: ends("203.0.113.2", "192.168.1.2", None),
        };
        assert!(!plain.translates());
    }
}
