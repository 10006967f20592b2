//! The ladder of a cell: every packet a node sent, followed hop by hop in
//! time order, for the HTML report's ladder diagram. A packet is followed
//! across a wire by its bytes (a veth delivers them unchanged) and through
//! a node by what forwarding and NAT leave unchanged ([`carry_key`]), so a
//! gateway's translation shows as the addresses changing between two legs.
//! Each arrow ends where the packet's story ends: delivered to the node it
//! was addressed to, dropped there, or handed to a device with no wire.
//! Only IP headers and the fixed IKE header are kept, never payloads.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ike::{self, IkeMessage};
use super::path::wires;
use super::{classify, Captured, Class, Dir, Frame, NodeFrames};
use crate::model::Cell;

/// Arrows kept per cell (the rest are counted in `not_drawn`).
pub const MAX_ARROWS: usize = 300;
/// How long a node may take to pass a packet on.
const PASS_ON: Duration = Duration::from_secs(2);
/// A packet this close to the end of the capture may still have been in
/// flight when it stopped.
const IN_FLIGHT: Duration = Duration::from_millis(50);
/// Legs followed at most (a routing loop ends here).
const MAX_LEGS: usize = 16;

/// The packets of one cell, as arrows between its nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ladder {
    /// Nodes and segments, left to right.
    pub columns: Vec<String>,
    /// In the order their first packet was sent.
    pub arrows: Vec<Arrow>,
    /// Packets beyond [`MAX_ARROWS`] arrows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_drawn: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn one() -> u32 {
    1
}

/// One packet, or several alike between two IKE messages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Arrow {
    /// When the (first) packet was sent, in ms from the capture's first
    /// frame.
    pub at_ms: f64,
    /// When the last one of an aggregate was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<f64>,
    /// Packets aggregated.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
    /// What the packet is.
    pub what: What,
    /// The wires it crossed, in order, with its addresses on each.
    pub legs: Vec<Leg>,
    /// Where its story ends (at the last leg's `to`).
    pub end: End,
}

/// What an arrow carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum What {
    /// An IKE message, named from its header.
    Ike(IkeMessage),
    /// Any other packet, by class.
    Class(Class),
}

/// One wire crossed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Leg {
    /// Sending node.
    pub from: String,
    /// Receiving node.
    pub to: String,
    /// Source address (and port) on this wire.
    pub src: String,
    /// Destination address (and port) on this wire.
    pub dst: String,
}

/// How an arrow ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum End {
    /// Arrived addressed to the node.
    Delivered,
    /// Entered the node; neither it nor its translation left.
    Dropped,
    /// Entered an IPsec endpoint and did not leave in clear text (it may
    /// have gone into the tunnel: the ladder cannot tell).
    NotInClear,
    /// Left on an interface with no wire (a TUN device).
    Handed(String),
    /// The capture cannot tell: it stopped while the packet may have been
    /// in flight, or frames were beyond its cap.
    Unknown,
}

/// A frame: node index, frame index.
type Id = (usize, usize);

/// The capture, indexed for following packets.
struct Index<'a> {
    names: Vec<&'a str>,
    /// Per node: ifindex → interface name.
    ifnames: Vec<Option<&'a std::collections::BTreeMap<u32, String>>>,
    nodes: Vec<&'a NodeFrames>,
    /// (node, ifindex) → the other side of its wire.
    wire: HashMap<(usize, u32), (usize, u32)>,
    /// A frame sent → the same frame arriving at the other side.
    across: HashMap<Id, Id>,
    /// A frame arrived → the frame it left the node as.
    through: HashMap<Id, Id>,
    /// When the capture stopped.
    last: Duration,
    /// Nodes running an IPsec endpoint.
    endpoints: HashSet<usize>,
}

/// Build the ladder of `cell` from its capture.
pub fn build(cell: &Cell, cap: &Captured) -> Ladder {
    let mut columns: Vec<String> = cell.nodes.iter().map(|n| n.name.clone()).collect();
    columns.extend(cell.segments.iter().map(|s| s.name.clone()));
    let ix = Index::new(cell, cap);
    let t0 = ix
        .nodes
        .iter()
        .flat_map(|n| n.frames.iter().map(|f| f.ts))
        .min()
        .unwrap_or_default();
    let mut starts: Vec<Id> = ix.starts();
    starts.sort_by_key(|id| ix.frame(*id).ts);
    let mut ladder = Ladder {
        columns,
        ..Ladder::default()
    };
    let mut open: HashMap<(What, Vec<Leg>, End), usize> = HashMap::new();
    for id in starts {
        let f = ix.frame(id);
        let (legs, end) = ix.follow(id);
        let what = what(f);
        let at_ms = ms(f.ts.saturating_sub(t0));
        if matches!(what, What::Ike(_)) {
            // IKE messages are drawn one by one, and what comes after one
            // is not merged with what came before it.
            open.clear();
        } else if let Some(&i) = open.get(&(what, legs.clone(), end.clone())) {
            let a = &mut ladder.arrows[i];
            a.count += 1;
            a.until_ms = Some(at_ms);
            continue;
        }
        if ladder.arrows.len() == MAX_ARROWS {
            ladder.not_drawn += 1;
            continue;
        }
        if !matches!(what, What::Ike(_)) {
            open.insert((what, legs.clone(), end.clone()), ladder.arrows.len());
        }
        ladder.arrows.push(Arrow {
            at_ms,
            until_ms: None,
            count: 1,
            what,
            legs,
            end,
        });
    }
    ladder
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// An IKE message by its header, anything else by its class.
fn what(f: &Frame) -> What {
    let msg = matches!(f.class, Class::Ike500 | Class::Ike4500)
        .then(|| {
            let (_, rest) = classify::transport(&f.data)?;
            ike::parse(rest.get(8..)?, f.class == Class::Ike4500)
        })
        .flatten();
    msg.map_or(What::Class(f.class), What::Ike)
}

/// Whether a packet is drawn at all: not the link's own chatter, not
/// unclassified traffic, not tunnel payload on a TUN device.
fn drawn(f: &Frame) -> bool {
    !matches!(f.class, Class::Other | Class::Inner) && !classify::link_scoped(&f.data)
}

impl<'a> Index<'a> {
    fn new(cell: &'a Cell, cap: &'a Captured) -> Self {
        let names: Vec<&str> = cap.nodes.keys().map(String::as_str).collect();
        let nodes: Vec<&NodeFrames> = cap.nodes.values().collect();
        let at = |n: &str| names.iter().position(|m| *m == n);
        let mut wire = HashMap::new();
        for (a, b) in wires(cell) {
            let (Some(an), Some(bn)) = (at(a.node), at(b.node)) else {
                continue;
            };
            let (Some(ai), Some(bi)) = (cap.ifindex(a.node, a.iface), cap.ifindex(b.node, b.iface))
            else {
                continue;
            };
            wire.insert((an, ai), (bn, bi));
            wire.insert((bn, bi), (an, ai));
        }
        let endpoints = cell.endpoints.iter().filter_map(|e| at(&e.node)).collect();
        // When the capture stopped; a capture assembled without one ends
        // at its last frame.
        let last = nodes
            .iter()
            .flat_map(|n| n.frames.iter().map(|f| f.ts))
            .chain([cap.cut])
            .max()
            .unwrap_or_default();
        let ifnames = names.iter().map(|n| cap.names.get(*n)).collect();
        let mut ix = Index {
            names,
            ifnames,
            nodes,
            wire,
            across: HashMap::new(),
            through: HashMap::new(),
            last,
            endpoints,
        };
        ix.across = ix.match_across();
        ix.through = ix.match_through();
        ix
    }

    fn frame(&self, (n, k): Id) -> &'a Frame {
        &self.nodes[n].frames[k]
    }

    /// Each frame sent on a wire paired with its arrival at the other side:
    /// identical bytes, first come first paired (retransmits are identical
    /// too, and arrive in order).
    fn match_across(&self) -> HashMap<Id, Id> {
        let mut out = HashMap::new();
        for (&(an, ai), &(bn, bi)) in &self.wire {
            let mut arrivals: HashMap<&[u8], VecDeque<usize>> = HashMap::new();
            for (k, f) in self.nodes[bn].frames.iter().enumerate() {
                if f.ifindex == bi && f.dir == Dir::In {
                    arrivals.entry(&f.data).or_default().push_back(k);
                }
            }
            for (k, f) in self.nodes[an].frames.iter().enumerate() {
                if f.ifindex != ai || f.dir != Dir::Out {
                    continue;
                }
                if let Some(j) = arrivals.get_mut(&f.data[..]).and_then(VecDeque::pop_front) {
                    out.insert((an, k), (bn, j));
                }
            }
        }
        out
    }

    /// Each frame that arrived over a wire, not for the node itself, paired
    /// with the frame it left the node as: the next frame the node sent
    /// with the same [`carry_key`] is the forward of the latest such
    /// arrival before it (forwarding takes microseconds; of two identical
    /// retransmits, the one that just arrived is the one passed on).
    fn match_through(&self) -> HashMap<Id, Id> {
        let arrived: HashSet<Id> = self.across.values().copied().collect();
        let mut out = HashMap::new();
        for (n, nf) in self.nodes.iter().enumerate() {
            let mut waiting: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
            for (k, f) in nf.frames.iter().enumerate() {
                let Some(key) = carry_key(&f.data) else {
                    continue;
                };
                if f.dir == Dir::In {
                    if !f.to_self && arrived.contains(&(n, k)) {
                        waiting.entry(key).or_default().push(k);
                    }
                    continue;
                }
                let Some(q) = waiting.get_mut(&key) else {
                    continue;
                };
                if let Some(&j) = q.last() {
                    if f.ts.saturating_sub(nf.frames[j].ts) <= PASS_ON {
                        q.pop();
                        out.insert((n, j), (n, k));
                    }
                }
            }
        }
        out
    }

    /// Frames a node sent on a wire that are not a forward of one it
    /// received: where arrows start.
    fn starts(&self) -> Vec<Id> {
        let forwards: HashSet<Id> = self.through.values().copied().collect();
        let mut out = Vec::new();
        for (n, nf) in self.nodes.iter().enumerate() {
            for (k, f) in nf.frames.iter().enumerate() {
                let on_wire = self.wire.contains_key(&(n, f.ifindex));
                if f.dir == Dir::Out && on_wire && drawn(f) && !forwards.contains(&(n, k)) {
                    out.push((n, k));
                }
            }
        }
        out
    }

    /// The wires a packet crossed from `start`, and how its story ends.
    fn follow(&self, start: Id) -> (Vec<Leg>, End) {
        let mut legs = Vec::new();
        let mut cur = start;
        while legs.len() < MAX_LEGS {
            let f = self.frame(cur);
            let Some(&(peer, _)) = self.wire.get(&(cur.0, f.ifindex)) else {
                let iface = self.iface_name(cur.0, f.ifindex);
                return (legs, End::Handed(iface));
            };
            let (src, dst) = ends(f);
            legs.push(Leg {
                from: self.names[cur.0].to_string(),
                to: self.names[peer].to_string(),
                src,
                dst,
            });
            let Some(&arrived) = self.across.get(&cur) else {
                return (legs, End::Unknown);
            };
            let a = self.frame(arrived);
            if a.to_self {
                return (legs, End::Delivered);
            }
            match self.through.get(&arrived) {
                Some(&next) => cur = next,
                None => return (legs, self.stopped(arrived)),
            }
        }
        (legs, End::Unknown)
    }

    /// A packet that entered a node not addressed to it and did not leave.
    fn stopped(&self, (n, k): Id) -> End {
        let f = self.frame((n, k));
        let capped = self.nodes[n].over_cap.values().any(|c| *c > 0);
        if capped || self.last.saturating_sub(f.ts) < IN_FLIGHT {
            End::Unknown
        } else if self.endpoints.contains(&n)
            && !matches!(
                f.class,
                Class::Ike500
                    | Class::Ike4500
                    | Class::Esp
                    | Class::EspInUdp
                    | Class::Ah
                    | Class::NattKeepalive
            )
        {
            End::NotInClear
        } else {
            End::Dropped
        }
    }

    fn iface_name(&self, n: usize, ifindex: u32) -> String {
        self.ifnames[n]
            .and_then(|m| m.get(&ifindex))
            .cloned()
            .unwrap_or_else(|| format!("if{ifindex}"))
    }
}

/// Source and destination as `addr` or `addr:port` (`[v6]:port`).
fn ends(f: &Frame) -> (String, String) {
    let Some(p) = classify::packet(&f.data) else {
        return (String::from("?"), String::from("?"));
    };
    let fmt = |a: std::net::IpAddr, port: Option<u16>| match (a, port) {
        (a, None) => a.to_string(),
        (std::net::IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, Some(p)) => format!("{a}:{p}"),
    };
    let e = p.ends;
    (
        fmt(e.src, e.ports.map(|p| p.0)),
        fmt(e.dst, e.ports.map(|p| p.1)),
    )
}

/// What forwarding and NAT leave unchanged in a packet, to pair the packet
/// that arrived at a node with the one that left: the protocol and the
/// bytes after the UDP header (ports and checksum are rewritten) or after
/// the IP header for ESP and AH; for an IPv4 fragment its identification
/// and offset; for an ICMP echo its sequence number and data (a NAT
/// rewrites the identifier); for TCP its sequence and acknowledgement
/// numbers and flags. Lengths are part of every key.
pub fn carry_key(d: &[u8]) -> Option<Vec<u8>> {
    let (ends, rest) = classify::transport(d)?;
    let v4 = d[0] >> 4 == 4;
    // The IP header's length field (IPv4 total, IPv6 payload length).
    let len = if v4 { d.get(2..4)? } else { d.get(4..6)? };
    let mut key = vec![ends.proto, len[0], len[1]];
    let v4_fragment = v4 && u16::from_be_bytes([*d.get(6)?, *d.get(7)?]) & 0x3fff != 0;
    let body = match ends.proto {
        _ if v4_fragment => {
            key[0] = 0xfe;
            d.get(4..8)?
        }
        17 => rest.get(8..)?,
        50 | 51 => rest,
        1 | 58 if matches!(rest.first(), Some(0 | 8 | 128 | 129)) => {
            key.push(rest[0]);
            rest.get(6..)?
        }
        1 | 58 => rest.get(..2)?,
        6 => rest.get(4..14)?,
        _ => rest,
    };
    key.extend(&body[..body.len().min(32)]);
    Some(key)
}

#[cfg(test)]
mod tests;
