//! The packet path of a cell — per link and direction, what crossed — and a
//! diagnosis computed from it: where packets of each class stopped.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Captured, Class, Dir};
use crate::model::{Cell, CheckKind, LinkEnd, Nat64, NatProfile};
use strum::IntoEnumIterator;

/// A normalized packet count: exact, or only "seen" for classes whose
/// number depends on timing (retransmits, keepalives).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Exactly this many.
    Exact(u64),
    /// At least one.
    Seen,
}

impl Count {
    /// `n` packets of `class` in `cell`: exact unless the number depends on
    /// timing. In a cell with a PPP layer, ESP also carries L2TP's and
    /// PPP's own control traffic (hellos, acknowledgements, LCP and IPCP
    /// retries), whose number varies from run to run, and so do the ICMP
    /// errors a gateway sends back for it.
    ///
    /// Likewise in a cell with a TCP check: how many segments, ACKs and
    /// retransmits a TCP exchange takes depends on timing, and so do the
    /// ESP packets carrying them and the ICMP errors they cause.
    ///
    /// And where an endpoint probes liveness (DPD): one probe per
    /// interval, so how many of them, or of their answers, meet a port or
    /// mapping that is gone depends on how long the cell runs.
    fn of(cell: &Cell, class: Class, n: u64) -> Self {
        let ppp_carrier =
            cell.ppp.is_some() && matches!(class, Class::Esp | Class::EspInUdp | Class::IcmpError);
        let tcp = cell.checks.iter().any(|c| c.kind == CheckKind::Tcp);
        let tcp_carrier = tcp
            && matches!(
                class,
                Class::Esp
                    | Class::EspInUdp
                    | Class::Ah
                    | Class::CheckClear
                    | Class::Inner
                    | Class::IcmpError
                    | Class::IcmpFragNeeded
                    | Class::PacketTooBig
                    | Class::FragmentFirst
                    | Class::FragmentRest
            );
        let dpd = cell.endpoints.iter().any(|e| e.knobs.dpd.is_some());
        let dpd_error = dpd && class == Class::IcmpError;
        if class.timing_dependent() || ppp_carrier || tcp_carrier || dpd_error {
            Count::Seen
        } else {
            Count::Exact(n)
        }
    }

    /// ` (3)` for exact counts, nothing for presence.
    fn paren(self) -> String {
        match self {
            Count::Exact(n) => format!(" ({n})"),
            Count::Seen => String::new(),
        }
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::Exact(n) => write!(f, "{n}"),
            Count::Seen => f.write_str("seen"),
        }
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Count::Exact(n) => s.serialize_u64(*n),
            Count::Seen => s.serialize_str("seen"),
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Count::Exact(n)),
            Raw::S(s) if s == "seen" => Ok(Count::Seen),
            Raw::S(s) => Err(serde::de::Error::custom(format!("bad count {s}"))),
        }
    }
}

/// One direction of one link.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hop {
    /// `client -> gw`.
    pub hop: String,
    /// Interfaces: `to-gw -> to-client`.
    pub ifaces: String,
    /// Class → packets that crossed (as seen arriving).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packets: BTreeMap<Class, Count>,
    /// Class → packets that left but did not arrive (only if any).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lost: BTreeMap<Class, Count>,
}

/// Tunnel payload at one endpoint: on kernel-libipsec's TUN device both
/// ways; with kernel XFRM, the decrypted packets the kernel re-injects on the
/// receiving interface (what enters the tunnel is encrypted before any
/// capture point, so it is not counted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TunnelEnd {
    /// `client/ipsec0`, or `client/to-gw (xfrm)`.
    pub at: String,
    /// Packets that entered the tunnel here (to be encrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into_tunnel: Option<Count>,
    /// Packets that came out of the tunnel here (decrypted).
    pub out_of_tunnel: Count,
}

/// Path and diagnosis of a cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct PathReport {
    /// Every link direction that carried IPv4 packets, in link order.
    pub hops: Vec<Hop>,
    /// Tunnel ends with a TUN device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tunnels: Vec<TunnelEnd>,
    /// Where packets stopped or went astray, computed from the hops.
    pub diagnosis: Vec<String>,
    /// Frames not kept for pcap or lost by the kernel (normally empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capture_notes: Vec<String>,
}

/// One link direction: (from node, to node, class → (sent, arrived)).
type LinkDir = (String, String, BTreeMap<Class, (u64, u64)>);

/// Build the path of `cell` from its capture.
pub fn build(cell: &Cell, cap: &Captured) -> PathReport {
    let mut report = PathReport::default();
    let dirs = link_dirs(cell, cap, &mut report);
    for (node, nf) in &cap.nodes {
        tun_ends(cell, node, nf, cap, &mut report);
        for (idx, n) in &nf.over_cap {
            report.capture_notes.push(format!(
                "{node}: {n} frames on if{idx} counted but not kept (cap {} per interface)",
                super::FRAMES_PER_IFACE
            ));
        }
        if nf.kernel_drops > 0 {
            report.capture_notes.push(format!(
                "{node}: the kernel dropped {} frames (capture buffer full); counts are low",
                nf.kernel_drops
            ));
        }
    }
    report.diagnosis = diagnose(cell, &dirs, cap);
    report.diagnosis.extend(zero_checksums(cell, cap));
    for (node, drops) in &cap.drops {
        for (name, n, what) in drops {
            report
                .diagnosis
                .push(format!("{node}: the kernel counted {n} {what} ({name})"));
        }
    }
    report
}

/// The counter a diagnosis line of [`build`]'s reports (`XfrmInNoStates`
/// in "server: the kernel counted 3 … (XfrmInNoStates)").
pub fn counter_of(line: &str) -> Option<&str> {
    if !line.contains(": the kernel counted ") {
        return None;
    }
    let name = line.strip_suffix(')')?.rsplit_once('(')?.1;
    (!name.contains(' ')).then_some(name)
}

/// One side of a wire: a node (or segment) and its interface.
#[derive(Clone, Copy)]
pub(super) struct Side<'a> {
    pub(super) node: &'a str,
    pub(super) iface: &'a str,
}

/// Every wire of the cell, both sides: each link's two ends, and each
/// segment member's interface with its port on the segment's bridge.
pub(super) fn wires(cell: &Cell) -> Vec<(Side<'_>, Side<'_>)> {
    fn side(e: &LinkEnd) -> Side<'_> {
        Side {
            node: &e.node,
            iface: &e.iface,
        }
    }
    let links = cell.links.iter().map(|l| (side(&l.a), side(&l.b)));
    let ports = cell.segments.iter().flat_map(|s| {
        s.members.iter().map(move |m| {
            let port = Side {
                node: &s.name,
                iface: &m.node,
            };
            (side(m), port)
        })
    });
    links.chain(ports).collect()
}

/// Both directions of every wire: what was sent and what arrived, per
/// class; the hops that carried anything go into `report`.
fn link_dirs(cell: &Cell, cap: &Captured, report: &mut PathReport) -> Vec<LinkDir> {
    let mut dirs: Vec<LinkDir> = Vec::new();
    for (x, y) in wires(cell) {
        for (a, b) in [(x, y), (y, x)] {
            let mut m = BTreeMap::new();
            for c in Class::iter() {
                let sent = cap.count(a.node, a.iface, Dir::Out, c);
                let mut arrived = cap.count(b.node, b.iface, Dir::In, c);
                if c == Class::CheckClear && arrived > sent {
                    // Check packets that arrive without having been sent on
                    // the link are ESP the kernel decrypted and re-injected
                    // on this interface (XFRM tunnel mode): tunnel output,
                    // not clear text on the wire.
                    report.tunnels.push(TunnelEnd {
                        at: format!("{}/{} (xfrm)", b.node, b.iface),
                        into_tunnel: None,
                        out_of_tunnel: Count::of(cell, c, arrived - sent),
                    });
                    arrived = sent;
                }
                if sent + arrived > 0 {
                    m.insert(c, (sent, arrived));
                }
            }
            if !m.is_empty() {
                report.hops.push(hop(cell, a, b, &m));
            }
            dirs.push((a.node.to_string(), b.node.to_string(), m));
        }
    }
    dirs
}

/// One wire direction as the outcome shows it.
fn hop(cell: &Cell, a: Side<'_>, b: Side<'_>, m: &BTreeMap<Class, (u64, u64)>) -> Hop {
    Hop {
        hop: format!("{} -> {}", a.node, b.node),
        ifaces: format!("{} -> {}", a.iface, b.iface),
        packets: m
            .iter()
            .filter(|(c, (_, r))| *r > 0 && shown(cell, **c))
            .map(|(c, (_, r))| (*c, Count::of(cell, *c, *r)))
            .collect(),
        lost: m
            .iter()
            .filter(|(c, (s, r))| shown(cell, **c) && lost(cell, **c, *s, *r))
            .map(|(c, (s, r))| (*c, Count::of(cell, *c, s - r)))
            .collect(),
    }
}

/// Whether a hop shows `class` at all. In a cell whose daemon stops
/// mid-cell, whether the peer's answer to its last DELETE meets a closed
/// port (an ICMP port unreachable) is a race between the two daemons, seen
/// in one run and not the next; the pcap keeps those errors.
fn shown(cell: &Cell, class: Class) -> bool {
    !(class == Class::IcmpError && cell.stops_daemon())
}

/// Whether `sent` packets of `class` leaving a link end and `arrived` at
/// the other show a loss on the link. For a class whose count depends on
/// timing (IKE retransmits, keepalives, the link's own neighbour discovery
/// and MLD), a shortfall is what the capture's start and stop cut through
/// while packets were in flight, not evidence of a loss; only none at all
/// arriving is.
fn lost(cell: &Cell, class: Class, sent: u64, arrived: u64) -> bool {
    sent > arrived && (Count::of(cell, class, sent) != Count::Seen || arrived == 0)
}

/// Tunnel payload on a node's TUN devices (kernel-libipsec), both ways.
fn tun_ends(
    cell: &Cell,
    node: &str,
    nf: &super::NodeFrames,
    cap: &Captured,
    report: &mut PathReport,
) {
    for idx in &nf.tun {
        let name = cap
            .names
            .get(node)
            .and_then(|m| m.get(idx))
            .cloned()
            .unwrap_or_else(|| format!("if{idx}"));
        let get = |d| {
            nf.counts
                .get(&(*idx, d, Class::Inner))
                .copied()
                .unwrap_or(0)
        };
        let count = |n| Count::of(cell, Class::Inner, n);
        report.tunnels.push(TunnelEnd {
            at: format!("{node}/{name}"),
            into_tunnel: Some(count(get(Dir::Out))),
            out_of_tunnel: count(get(Dir::In)),
        });
    }
}

/// Compare what entered and left each link and node, class by class.
fn diagnose(cell: &Cell, dirs: &[LinkDir], cap: &Captured) -> Vec<String> {
    let mut out = lost_on_links(cell, dirs);
    for c in Class::iter() {
        let switches = cell.segments.iter().map(|s| s.name.as_str());
        for node in cell.nodes.iter().map(|n| n.name.as_str()).chain(switches) {
            if cell.endpoint(node).is_none() {
                let addressed = Addressed::of(cell, cap, node);
                let mine = (to_self(cell, cap, node, c), addressed);
                out.extend(at_node(cell, dirs, node, c, mine));
                if addressed == Addressed::Followed {
                    out.extend(delivered_from(cell, dirs, cap, node, c));
                }
            }
        }
    }
    out.extend(bypassed(cell, dirs));
    let why = well_known_prefix(cell, &out);
    out.extend(why);
    out
}

/// ESP in UDP that a NAT64 gateway took in on its IPv4 side and did not all
/// pass on, when the captured datagrams carry a zero UDP checksum: IPv4
/// allows it for ESP in UDP (RFC 3948 section 2.1, and Linux's kernel ESP
/// sends it), IPv6 does not, and TAYGA drops such datagrams rather than
/// compute one (RFC 7915 section 4.5 lets a stateless translator do either).
fn zero_checksums(cell: &Cell, cap: &Captured) -> Vec<String> {
    let mut out = Vec::new();
    for n in cell.nodes.iter().filter(|n| n.nat == NatProfile::Nat64) {
        let Some(wan) = n.nat_outside.as_deref() else {
            continue;
        };
        let arrived = cap.count(&n.name, wan, Dir::In, Class::EspInUdp);
        let passed: u64 = cell
            .ends()
            .filter(|e| e.node == n.name && e.iface != wan)
            .map(|e| cap.count(&n.name, &e.iface, Dir::Out, Class::EspInUdp))
            .sum();
        let zero = zero_checksum_frames(cap, &n.name, wan);
        if arrived > passed && zero > 0 {
            out.push(format!(
                "{}'s NAT64 translator passed on {passed} of the {arrived} ESP-in-UDP packets from its IPv4 side; {zero} of those captured had a zero UDP checksum, which IPv4 allows for ESP in UDP (RFC 3948 section 2.1) and IPv6 does not: TAYGA drops such datagrams rather than compute a checksum",
                n.name
            ));
        }
    }
    out
}

/// ESP-in-UDP datagrams (IPv4, port 4500, no non-ESP marker) with a zero
/// UDP checksum that arrived at `node` on `iface`.
fn zero_checksum_frames(cap: &Captured, node: &str, iface: &str) -> usize {
    let Some(idx) = cap.ifindex(node, iface) else {
        return 0;
    };
    let Some(nf) = cap.nodes.get(node) else {
        return 0;
    };
    nf.frames
        .iter()
        .filter(|f| f.ifindex == idx && f.dir == Dir::In)
        .filter(|f| esp_in_udp_without_checksum(&f.data))
        .count()
}

/// An IPv4 datagram to or from UDP 4500 that carries ESP (no non-ESP marker,
/// not a keepalive) with a zero UDP checksum. Read from the header bytes
/// (a kept frame may be cut at the snap length).
fn esp_in_udp_without_checksum(d: &[u8]) -> bool {
    let Some(&vihl) = d.first() else { return false };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let Some(u) = d.get(ihl..) else { return false };
    vihl >> 4 == 4
        && d.get(9) == Some(&17)
        && u.len() >= 12
        && (u[0..2] == [0x11, 0x94] || u[2..4] == [0x11, 0x94])
        && u[6..8] == [0, 0]
        && u[8..12] != [0, 0, 0, 0]
        && u[8..] != [0xff]
}

/// Why a NAT64 gateway dropped what it was sent, when it is certain: its
/// prefix is the well-known one and the address it would translate to is
/// not global (RFC 6052 section 3.1 forbids that translation, and TAYGA
/// refuses it, as its start-up note in the outcome says). Only after a
/// drop there was observed.
fn well_known_prefix(cell: &Cell, lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for n in cell.nodes.iter().filter(|n| n.nat == NatProfile::Nat64) {
        let Some(p) = n.knobs.nat64.filter(|p| p.is_well_known()) else {
            continue;
        };
        let dropped = format!("dropped at {}", n.name);
        if !lines.iter().any(|l| l.ends_with(&dropped)) {
            continue;
        }
        let targets: Vec<String> = cell
            .endpoints
            .iter()
            .filter_map(|e| match e.remote_addr? {
                std::net::IpAddr::V6(a) => p.embedded(a),
                std::net::IpAddr::V4(_) => None,
            })
            .filter(|a| !Nat64::is_global(*a))
            .map(|a| a.to_string())
            .collect();
        if !targets.is_empty() {
            out.push(format!(
                "{}'s NAT64 prefix is the well-known {}, which RFC 6052 section 3.1 forbids with non-global IPv4 addresses such as {}: its translator drops those packets",
                n.name,
                p.prefix,
                targets.join(", ")
            ));
        }
    }
    out
}

/// Packets that left one end of a link and did not arrive at the other.
fn lost_on_links(cell: &Cell, dirs: &[LinkDir]) -> Vec<String> {
    let mut out = Vec::new();
    for (from, to, m) in dirs {
        for (c, (s, r)) in m {
            if lost(cell, *c, *s, *r) {
                out.push(format!(
                    "{} left {from}{} but only {r} arrived at {to}: lost on the link",
                    c.describe(),
                    Count::of(cell, *c, *s).paren()
                ));
            }
        }
    }
    out
}

/// Packets of class `c` that arrived at `node` on its links addressed to
/// the node itself.
fn to_self(cell: &Cell, cap: &Captured, node: &str, c: Class) -> u64 {
    cell.ends()
        .filter(|e| e.node == node)
        .map(|e| cap.to_self(node, &e.iface, c))
        .sum()
}

/// How much the capture knows of what `node` did with packets addressed
/// to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addressed {
    /// The node rewrites no destination: they were delivered to it.
    Delivered,
    /// The node translates and its connection tracker was followed: what
    /// it passed on is no longer counted as addressed to it, the rest was
    /// delivered to it.
    Followed,
    /// The node translates and its translations are unknown: passed on or
    /// delivered, the capture cannot tell.
    Unknown,
}

impl Addressed {
    fn of(cell: &Cell, cap: &Captured, node: &str) -> Self {
        if !cell.node(node).is_some_and(|n| n.rewrites_destination()) {
            Addressed::Delivered
        } else if cap.nodes.get(node).is_some_and(|n| n.followed) {
            Addressed::Followed
        } else {
            Addressed::Unknown
        }
    }
}

/// (neighbour, packets of class `c`) that arrived at `node` from each
/// neighbour, or (`arriving` false) left it toward each.
fn neighbours<'a>(
    dirs: &'a [LinkDir],
    node: &str,
    c: Class,
    arriving: bool,
) -> Vec<(&'a str, u64)> {
    dirs.iter()
        .filter(|d| if arriving { d.1 == node } else { d.0 == node })
        .filter_map(|d| {
            let (n, x) = if arriving {
                (&d.0, d.2.get(&c)?.1)
            } else {
                (&d.1, d.2.get(&c)?.0)
            };
            (x > 0).then_some((n.as_str(), x))
        })
        .collect()
}

/// " toward X, Y": the neighbours of `node` that packets did not come
/// from (empty when there are none).
fn toward(dirs: &[LinkDir], node: &str, ins: &[(&str, u64)]) -> String {
    let mut others: Vec<&str> = dirs
        .iter()
        .filter(|d| d.0 == node)
        .map(|d| d.1.as_str())
        .collect();
    others.dedup();
    others.retain(|n| !ins.iter().any(|(i, _)| i == n));
    if others.is_empty() {
        String::new()
    } else {
        format!(" toward {}", others.join(", "))
    }
}

/// What a forwarding node did with packets of class `c`: dropped them all,
/// sent ICMP errors of its own, or dropped some. `mine.0` of them arrived
/// addressed to the node itself and (unless `mine.1` says the node's
/// translations are unknown) were delivered there, not dropped.
fn at_node(
    cell: &Cell,
    dirs: &[LinkDir],
    node: &str,
    c: Class,
    mine: (u64, Addressed),
) -> Option<String> {
    let (ins, outs) = (
        neighbours(dirs, node, c, true),
        neighbours(dirs, node, c, false),
    );
    let total_in: u64 = ins.iter().map(|x| x.1).sum();
    let total_out: u64 = outs.iter().map(|x| x.1).sum();
    let list = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(n, k)| format!("{n}{}", Count::of(cell, c, *k).paren()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (mine, addressed) = mine;
    if total_in > 0 && total_out == 0 && mine >= total_in {
        return match addressed {
            Addressed::Delivered => None,
            Addressed::Followed => Some(format!(
                "{} left {} and reached {node}, addressed to {node} itself, and no translation of {node}'s passed them on: delivered to {node}, not forwarded",
                c.describe(),
                list(&ins)
            )),
            Addressed::Unknown => Some(format!(
                "{} left {} and reached {node}, addressed to {node} itself, and none left it: taken in by {node} or dropped there (its translations are not followed)",
                c.describe(),
                list(&ins)
            )),
        };
    }
    let rewrites = addressed == Addressed::Unknown;
    // What arrived for someone else, where that can be told.
    let total_in = if rewrites {
        total_in
    } else {
        total_in - mine.min(total_in)
    };
    if total_in > 0 && total_out == 0 {
        let toward = toward(dirs, node, &ins);
        Some(format!(
            "{} left {} and reached {node} but never left {node}{toward}: dropped at {node}",
            c.describe(),
            list(&ins)
        ))
    } else if total_in == 0
        && total_out > 0
        && matches!(
            c,
            Class::IcmpError | Class::IcmpFragNeeded | Class::PacketTooBig
        )
    {
        Some(format!(
            "{node} sent {} toward {}",
            c.describe(),
            list(&outs)
        ))
    } else if !c.timing_dependent()
        && c != Class::CheckClear // counts both ways, replies included
        && total_in > total_out
        && total_out > 0
    {
        let msg = match Count::of(cell, c, total_in) {
            Count::Exact(_) => format!(
                "{} reached {node} ({total_in}) but only {total_out} left it: some dropped at {node}",
                c.describe()
            ),
            Count::Seen => format!(
                "{} reached {node} but fewer left it: some dropped at {node}",
                c.describe()
            ),
        };
        Some(msg)
    } else {
        None
    }
}

/// At a followed NAT that passed packets of class `c` on: those that one
/// neighbour sent to the NAT's own address, when no translation passed
/// any of them on (none of `c` left toward another neighbour). A reply
/// the NAT has no mapping for ends here: PPTP's GRE without the helper.
fn delivered_from(
    cell: &Cell,
    dirs: &[LinkDir],
    cap: &Captured,
    node: &str,
    c: Class,
) -> Vec<String> {
    let outs = neighbours(dirs, node, c, false);
    if outs.is_empty() {
        // Nothing passed on: `at_node` speaks for the whole node.
        return vec![];
    }
    let mut lines = Vec::new();
    for (x, y) in wires(cell) {
        for (from, at) in [(x, y), (y, x)] {
            if at.node != node {
                continue;
            }
            let arrived = dirs
                .iter()
                .find(|d| d.0 == from.node && d.1 == node)
                .and_then(|d| d.2.get(&c))
                .map_or(0, |x| x.1);
            let mine = cap.to_self(node, at.iface, c);
            let onward = outs.iter().any(|(n, _)| *n != from.node);
            if arrived > 0 && mine >= arrived && !onward {
                lines.push(format!(
                    "{} left {}{} and reached {node}, addressed to {node} itself, and no translation of {node}'s passed them on: delivered to {node}, not forwarded",
                    c.describe(),
                    from.node,
                    Count::of(cell, c, arrived).paren()
                ));
            } else if mine > 0 && NAT_T.contains(&c) {
                // Some met no mapping (expired, or flushed by a reboot):
                // the others were translated and passed on.
                lines.push(format!(
                    "{} of the {} from {} reached {node} addressed to {node} itself, with no translation of {node}'s to pass them on: delivered to {node}, not forwarded",
                    match Count::of(cell, c, mine) {
                        Count::Exact(n) => n.to_string(),
                        Count::Seen => "some".to_string(),
                    },
                    c.describe(),
                    from.node,
                ));
            }
        }
    }
    lines
}

/// The classes a NAT passes on only through the mapping NAT-T keeps alive.
const NAT_T: [Class; 3] = [Class::Ike4500, Class::EspInUdp, Class::NattKeepalive];

/// Check traffic an endpoint sent in clear text, outside the tunnel.
fn bypassed(cell: &Cell, dirs: &[LinkDir]) -> Vec<String> {
    let mut out = Vec::new();
    for (from, to, m) in dirs {
        if let Some((s, _)) = m.get(&Class::CheckClear) {
            if *s > 0 && cell.endpoint(from).is_some() && !inward(cell, from, to) {
                out.push(format!(
                    "{} left {from} toward {to} ({s}): it bypassed the tunnel",
                    Class::CheckClear.describe()
                ));
            }
        }
    }
    out
}

/// Whether endpoint `from` faces its own protected networks toward `to`:
/// its address there lies in its traffic selectors (a site's gateway
/// hands decrypted traffic to its LAN in clear text).
fn inward(cell: &Cell, from: &str, to: &str) -> bool {
    let Some(e) = cell.endpoint(from) else {
        return false;
    };
    let link = cell.links.iter().find_map(|l| match (&l.a, &l.b) {
        (a, b) if a.node == from && b.node == to => Some(a),
        (a, b) if b.node == from && a.node == to => Some(b),
        _ => None,
    });
    let seg = cell
        .segments
        .iter()
        .filter(|s| s.name == to)
        .flat_map(|s| &s.members)
        .find(|m| m.node == from);
    link.or(seg)
        .is_some_and(|end| e.local_ts().iter().any(|n| n.contains(&end.addr.addr())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::NodeFrames;
    use std::path::Path;

    /// The seed cell `nat=masquerade,nat_t=auto`, and a capture in which
    /// each (node, iface, dir, class) has the given count.
    fn setup(counts: &[(&str, &str, Dir, Class, u64)]) -> (Cell, Captured) {
        let text = include_str!("../../../topologies/seed.toml");
        let s = crate::scenario::parse(Path::new("seed.toml"), text).unwrap();
        let cell = s
            .cells
            .into_iter()
            .find(|c| c.id == "seed/nat=masquerade,nat_t=auto")
            .unwrap();
        let ifaces = [
            ("client", "to-gw", 2),
            ("gw", "to-client", 2),
            ("gw", "to-server", 3),
            ("server", "to-gw", 2),
        ];
        let mut cap = Captured::default();
        for (node, iface, idx) in ifaces {
            cap.names
                .entry(node.to_string())
                .or_default()
                .insert(idx, iface.to_string());
            cap.nodes
                .entry(node.to_string())
                .or_insert_with(NodeFrames::default);
        }
        for (node, iface, dir, class, n) in counts {
            let idx = ifaces
                .iter()
                .find(|(a, b, _)| a == node && b == iface)
                .unwrap()
                .2;
            cap.nodes
                .get_mut(*node)
                .unwrap()
                .counts
                .insert((idx, *dir, *class), *n);
        }
        (cell, cap)
    }

    #[test]
    fn raw_esp_dropped_at_the_gateway_is_named_with_counts() {
        let (cell, cap) = setup(&[
            ("client", "to-gw", Dir::Out, Class::Esp, 3),
            ("gw", "to-client", Dir::In, Class::Esp, 3),
        ]);
        let p = build(&cell, &cap);
        assert_eq!(
            p.diagnosis,
            vec!["raw ESP (IP protocol 50) left client (3) and reached gw but never left gw toward server: dropped at gw"]
        );
        assert_eq!(p.hops.len(), 1);
        assert_eq!(p.hops[0].hop, "client -> gw");
        assert_eq!(p.hops[0].packets[&Class::Esp], Count::Exact(3));
    }

    #[test]
    fn timing_dependent_classes_show_presence_only() {
        let (cell, cap) = setup(&[
            ("client", "to-gw", Dir::Out, Class::Ike4500, 3),
            ("gw", "to-client", Dir::In, Class::Ike4500, 3),
        ]);
        let p = build(&cell, &cap);
        assert_eq!(p.hops[0].packets[&Class::Ike4500], Count::Seen);
        assert_eq!(
            p.diagnosis,
            vec!["IKE on UDP 4500 left client and reached gw but never left gw toward server: dropped at gw"]
        );
    }

    #[test]
    fn delivered_traffic_has_no_diagnosis_and_losses_on_a_link_are_named() {
        let through = [
            ("client", "to-gw", Dir::Out, Class::EspInUdp, 6),
            ("gw", "to-client", Dir::In, Class::EspInUdp, 6),
            ("gw", "to-server", Dir::Out, Class::EspInUdp, 6),
            ("server", "to-gw", Dir::In, Class::EspInUdp, 6),
        ];
        assert!(build(&setup(&through).0, &setup(&through).1)
            .diagnosis
            .is_empty());
        let (cell, cap) = setup(&[
            ("client", "to-gw", Dir::Out, Class::EspInUdp, 6),
            ("gw", "to-client", Dir::In, Class::EspInUdp, 4),
            ("gw", "to-server", Dir::Out, Class::EspInUdp, 4),
            ("server", "to-gw", Dir::In, Class::EspInUdp, 4),
        ]);
        let p = build(&cell, &cap);
        assert_eq!(
            p.diagnosis,
            vec!["ESP in UDP 4500 left client (6) but only 4 arrived at gw: lost on the link"]
        );
        assert_eq!(p.hops[0].lost[&Class::EspInUdp], Count::Exact(2));
    }

    #[test]
    fn clear_check_traffic_is_a_leak_but_xfrm_decap_is_tunnel_output() {
        let (cell, cap) = setup(&[
            ("client", "to-gw", Dir::Out, Class::CheckClear, 3),
            ("gw", "to-client", Dir::In, Class::CheckClear, 3),
        ]);
        let p = build(&cell, &cap);
        assert!(p.diagnosis.contains(
            &"check traffic in clear text left client toward gw (3): it bypassed the tunnel"
                .to_string()
        ));
        // Arrived without having been sent on the link: decrypted by XFRM.
        let (cell, cap) = setup(&[("server", "to-gw", Dir::In, Class::CheckClear, 3)]);
        let p = build(&cell, &cap);
        assert!(p.diagnosis.is_empty(), "{:?}", p.diagnosis);
        assert_eq!(
            p.tunnels,
            vec![TunnelEnd {
                at: "server/to-gw (xfrm)".into(),
                into_tunnel: None,
                out_of_tunnel: Count::Exact(3)
            }]
        );
    }

    #[test]
    fn icmp_errors_from_a_router_are_reported() {
        let (cell, cap) = setup(&[
            ("gw", "to-client", Dir::Out, Class::IcmpFragNeeded, 2),
            ("client", "to-gw", Dir::In, Class::IcmpFragNeeded, 2),
        ]);
        let p = build(&cell, &cap);
        assert_eq!(
            p.diagnosis,
            vec!["gw sent ICMP fragmentation-needed errors toward client (2)"]
        );
    }

    #[test]
    fn a_shortfall_of_timing_counts_is_no_loss_unless_nothing_arrived() {
        // Two MLD reports leave, one is caught arriving before the capture
        // stops: not a loss. Raw ESP short by one is one.
        let (cell, cap) = setup(&[
            ("client", "to-gw", Dir::Out, Class::Other, 2),
            ("gw", "to-client", Dir::In, Class::Other, 1),
            ("client", "to-gw", Dir::Out, Class::Esp, 3),
            ("gw", "to-client", Dir::In, Class::Esp, 2),
            ("gw", "to-client", Dir::Out, Class::Ike500, 2),
        ]);
        let p = build(&cell, &cap);
        let lost: Vec<&String> = p
            .diagnosis
            .iter()
            .filter(|d| d.contains("lost on the link"))
            .collect();
        assert_eq!(
            lost,
            vec![
                "raw ESP (IP protocol 50) left client (3) but only 2 arrived at gw: lost on the link",
                "IKE on UDP 500 left gw but only 0 arrived at client: lost on the link",
            ]
        );
        assert!(!p.hops[0].lost.contains_key(&Class::Other));
    }

    #[test]
    fn zero_checksum_esp_in_udp_is_told_apart() {
        let pkt = |sum: [u8; 2], data: &[u8]| {
            let mut v = vec![
                0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 203, 0, 113, 2, 203, 0, 113, 1,
            ];
            v.extend([0x11, 0x94, 0x11, 0x94, 0, 0, sum[0], sum[1]]);
            v.extend(data);
            v
        };
        let esp = [0xc1, 0, 0, 1, 0, 0, 0, 1];
        assert!(esp_in_udp_without_checksum(&pkt([0, 0], &esp)));
        assert!(!esp_in_udp_without_checksum(&pkt([0x12, 0x34], &esp)));
        // IKE on 4500 (non-ESP marker) and keepalives are not ESP.
        assert!(!esp_in_udp_without_checksum(&pkt(
            [0, 0],
            &[0, 0, 0, 0, 1, 2, 3, 4]
        )));
        assert!(!esp_in_udp_without_checksum(
            &pkt([0, 0], &[0xff, 0, 0, 0])[..29]
        ));
        assert!(!esp_in_udp_without_checksum(&[0x45, 0]));
    }

    #[test]
    fn what_is_addressed_to_a_node_is_not_called_dropped_there() {
        use crate::model::NatProfile;
        // ICMP errors from the server to gw's own address: none leave gw.
        let counts = [
            ("server", "to-gw", Dir::Out, Class::IcmpError, 2),
            ("gw", "to-server", Dir::In, Class::IcmpError, 2),
        ];
        let (mut cell, mut cap) = setup(&counts);
        cap.nodes
            .get_mut("gw")
            .unwrap()
            .to_self
            .insert((3, Class::IcmpError), 2);
        // gw masquerades: its replies are addressed to it until conntrack
        // translates them back, so it cannot be told which.
        let d = build(&cell, &cap).diagnosis;
        assert!(!d.iter().any(|l| l.contains("dropped at gw")), "{d:?}");
        assert!(
            d.iter().any(|l| l.contains(
                "addressed to gw itself, and none left it: taken in by gw or dropped there"
            )),
            "{d:?}"
        );
        // Its conntrack events were read, and no translation passed them
        // on: delivered there, and said so.
        cap.nodes.get_mut("gw").unwrap().followed = true;
        let d = build(&cell, &cap).diagnosis;
        assert!(
            d.iter().any(|l| l.contains(
                "addressed to gw itself, and no translation of gw's passed them on: delivered to gw, not forwarded"
            )),
            "{d:?}"
        );
        assert!(!d.iter().any(|l| l.contains("dropped")), "{d:?}");
        cap.nodes.get_mut("gw").unwrap().followed = false;
        // A plain router takes in what is addressed to it: nothing to say.
        for n in &mut cell.nodes {
            n.nat = NatProfile::None;
        }
        let d = build(&cell, &cap).diagnosis;
        assert!(!d.iter().any(|l| l.contains("gw")), "{d:?}");
        // Addressed to someone else, it is a drop.
        cap.nodes.get_mut("gw").unwrap().to_self.clear();
        let d = build(&cell, &cap).diagnosis;
        assert!(d.iter().any(|l| l.ends_with("dropped at gw")), "{d:?}");
    }
}
