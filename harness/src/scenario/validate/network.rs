//! The network as the file draws it: nodes, links (and the interfaces they
//! put on nodes), routes, and each gateway's outside side. Everything
//! later (endpoints, PPP, checks, steps, routing) resolves addresses and
//! paths against the [`Network`] this returns.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::Range;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use toml::Spanned;

use super::super::file::{LinkEnd, LinkSpec, NodeSpec, RouteSpec, ScenarioFile, SegmentSpec};
use super::diag::{known_node, sp, Diags};
use super::knobs;
use super::matrix::{Axes, Choice, Varies};
use super::routing::via_owner;
use crate::model::{self as cell, known, Families, Knobs, Nat64, NatProfile, PrefixMap};

/// Longest interface name Linux accepts.
const IFNAMSIZ: usize = 15;
/// Node names stay short so default interface names (`to-<node>`) fit.
const MAX_NODE_NAME: usize = 12;

/// An interface a link puts on a node: its address, and the neighbour at
/// the other end.
#[derive(Clone)]
pub(super) struct Iface {
    pub node: String,
    pub name: String,
    pub net: IpNet,
    pub peer_node: String,
    pub peer_addr: IpAddr,
    /// The segment the interface is on (it then appears once per
    /// neighbour there).
    pub segment: Option<String>,
}

/// The validated network.
#[derive(Default)]
pub(super) struct Network {
    /// Every node the file declares.
    pub nodes: BTreeSet<String>,
    /// The addresses links put on nodes (both ends of every valid link).
    pub ifaces: Vec<Iface>,
    /// The valid links.
    pub links: Vec<cell::Link>,
    /// The valid segments.
    pub segments: Vec<cell::Segment>,
    /// The valid routes.
    pub routes: Vec<cell::Route>,
    /// Gateways' `behaviour` knobs as the file sets them.
    pub knobs: BTreeMap<String, Knobs>,
    /// Every link address, with the field that declares it.
    pub addrs: BTreeMap<IpAddr, String>,
    /// Every link subnet, with its link.
    pub subnets: Vec<(IpNet, String)>,
    /// What a cell needs of each node.
    pub plans: Vec<NodePlan>,
    /// NAT64 gateways' prefixes.
    pub nat64: BTreeMap<String, Nat64>,
}

/// What validation resolved for a node, with the choices a cell makes.
pub(super) struct NodePlan {
    pub name: String,
    pub nat: Choice<NatProfile>,
    /// `Some` where an axis sets hairpinning.
    pub hairpin: Choice<Option<bool>>,
    /// The file's `behaviour`, and whether it names its port assignment.
    pub knobs: Option<(Knobs, bool)>,
    /// The knobs `matrix.behaviour` axes set, each with whether it is the
    /// port assignment.
    pub behaviour: Vec<(Choice<Knobs>, bool)>,
    /// The interface toward `nat_outside`.
    pub nat_outside: Option<String>,
    pub forwarding: bool,
    pub sysctl: Vec<(String, String)>,
    pub pptp_helper: bool,
    /// The families of the node's link addresses.
    pub families: Families,
    /// Its `nat_prefix` with the inside prefix it maps.
    pub prefix_map: Option<PrefixMap>,
    /// Its `nat64_prefix`.
    pub nat64: Option<Nat64>,
    /// Where a missing `nat_outside` is reported: the profile, or the node.
    pub span: Range<usize>,
}

/// Validate nodes, links, routes and gateways' outside sides.
pub(super) fn validate(d: &mut Diags<'_>, f: &ScenarioFile, axes: &Axes) -> Network {
    let mut net = Network {
        nodes: f.nodes.keys().cloned().collect(),
        ..Network::default()
    };
    for (n, spec) in &f.nodes {
        if let Some(k) = node(d, n, spec) {
            net.knobs.insert(n.clone(), k);
        }
        if let Some(p) = nat64_prefix(d, n, spec.get_ref()) {
            net.nat64.insert(n.clone(), p);
        }
    }
    for (i, l) in f.links.iter().enumerate() {
        link(d, &mut net, i, l.get_ref());
    }
    for (name, seg) in &f.segments {
        segment(d, &mut net, name, seg);
    }
    for (i, r) in f.routes.iter().enumerate() {
        if let Some(r) = route(d, &net, i, r.get_ref()) {
            net.routes.push(r);
        }
    }
    let outside = outside(d, f, &net);
    net.plans = f
        .nodes
        .iter()
        .filter_map(|(n, spec)| {
            let out = outside.get(n).cloned();
            let map = prefix_map(d, &net, n, spec.get_ref(), out.as_deref());
            forward_family(d, &net, n, spec.get_ref());
            let behaviour = behaviour_axes(d, f, axes, n)?;
            plan(f, &net, axes, n, spec, out, map).map(|mut p| {
                p.behaviour = behaviour;
                p
            })
        })
        .collect();
    net
}

/// Check one node; its `behaviour` knobs, if it has them.
fn node(d: &mut Diags<'_>, n: &str, spec: &Spanned<NodeSpec>) -> Option<Knobs> {
    if !valid_name(n) {
        d.err(
            sp(spec),
            format!("nodes.{n}"),
            format!("node names must be 1-{MAX_NODE_NAME} characters of a-z, 0-9 and '-'"),
        );
    }
    let s = spec.get_ref();
    if let Some(p) = &s.nat {
        if p.get_ref().parse::<NatProfile>() == Ok(NatProfile::Nat64) && s.nat64_prefix.is_none() {
            // Said here, before the endpoints' synthesized addresses are
            // refused for want of it.
            if let Some((field, msg)) = prefix_needed(NatProfile::Nat64) {
                d.err(sp(p), format!("nodes.{n}.{field}"), msg);
            }
        }
        if p.get_ref().parse::<NatProfile>().is_err() {
            d.err(
                sp(p),
                format!("nodes.{n}.nat"),
                format!(
                    "unknown NAT profile `{}` (known: {})",
                    p.get_ref(),
                    known::<NatProfile>()
                ),
            );
        }
    }
    let knobs = s
        .behaviour
        .as_ref()
        .map(|b| knobs::nat_knobs(d, b.get_ref(), &format!("nodes.{n}.behaviour")));
    for (k, v) in &s.sysctl {
        if !k.starts_with("net.") {
            d.err(
                sp(v),
                format!("nodes.{n}.sysctl.{k}"),
                "only per-namespace net.* sysctls may be set",
            );
        }
    }
    knobs
}

/// A node's (or segment's) name: short, so `to-<name>` fits IFNAMSIZ.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NODE_NAME
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// One end of a link as validated.
struct End<'s> {
    known: bool,
    spec: &'s LinkEnd,
    iface: String,
    addr: Option<IpNet>,
}

/// Check one link; a valid one adds its interfaces and itself.
fn link(d: &mut Diags<'_>, net: &mut Network, i: usize, l: &LinkSpec) {
    let a = link_end(d, net, &format!("links[{i}].a"), &l.a, l.b.node.get_ref());
    let b = link_end(d, net, &format!("links[{i}].b"), &l.b, l.a.node.get_ref());
    if l.a.node.get_ref() == l.b.node.get_ref() {
        d.err(
            sp(&l.b.node),
            format!("links[{i}].b.node"),
            "a link must join two different nodes",
        );
    }
    if let (Some(x), Some(y)) = (a.addr, b.addr) {
        subnet(d, net, i, l, x, y);
    }
    mtu(d, &l.mtu, format!("links[{i}].mtu"));
    if let (true, true, Some(aa), Some(ab)) = (a.known, b.known, a.addr, b.addr) {
        for (x, net_x, y, addr_y) in [(&a, aa, &b, ab), (&b, ab, &a, aa)] {
            let n = x.spec.node.get_ref();
            if net.ifaces.iter().any(|f| &f.node == n && f.name == x.iface) {
                d.err(
                    sp(&l.a.node),
                    format!("links[{i}]"),
                    format!(
                        "node {n} already has an interface `{}`; set `iface` on one of the links",
                        x.iface
                    ),
                );
            }
            net.ifaces.push(Iface {
                node: n.clone(),
                name: x.iface.clone(),
                net: net_x,
                peer_node: y.spec.node.get_ref().clone(),
                peer_addr: addr_y.addr(),
                segment: None,
            });
        }
        net.links.push(cell::Link {
            a: a.resolved(aa),
            b: b.resolved(ab),
            mtu: l.mtu.as_ref().map(|m| *m.get_ref()),
        });
    }
}

impl End<'_> {
    /// The model's link end, at address `addr`.
    fn resolved(&self, addr: IpNet) -> cell::LinkEnd {
        cell::LinkEnd {
            node: self.spec.node.get_ref().clone(),
            iface: self.iface.clone(),
            addr,
        }
    }
}

/// An MTU Linux and every stack here take (576 is IPv4's minimum
/// datagram; 9000 a jumbo frame).
fn mtu(d: &mut Diags<'_>, m: &Option<Spanned<u32>>, field: String) {
    if let Some(m) = m {
        if !(576..=9000).contains(m.get_ref()) {
            d.err(sp(m), field, "MTU must be between 576 and 9000");
        }
    }
}

/// Check one segment; a valid one adds its members' interfaces (one per
/// neighbour on it) and itself.
fn segment(d: &mut Diags<'_>, net: &mut Network, name: &str, seg: &Spanned<SegmentSpec>) {
    let field = format!("segments.{name}");
    let s = seg.get_ref();
    if !valid_name(name) || net.nodes.contains(name) {
        let msg = format!("segment names follow node names (1-{MAX_NODE_NAME} characters of a-z, 0-9 and '-') and differ from every node's: the segment's bridge gets a namespace of that name");
        d.err(sp(seg), field.clone(), msg);
    }
    if s.members.len() < 2 {
        let msg = "a segment joins at least two members (for two, a link does)";
        d.err(sp(seg), format!("{field}.members"), msg);
    }
    mtu(d, &s.mtu, format!("{field}.mtu"));
    let Some(ends) = members(d, net, name, s, &field) else {
        return;
    };
    let first = ends[0].1;
    subnet_is_free(
        d,
        net,
        first,
        &s.members[0].addr,
        &format!("{field}.members[0].addr"),
    );
    net.subnets.push((first.trunc(), field.clone()));
    for (x, ax) in &ends {
        let n = x.spec.node.get_ref();
        if net.ifaces.iter().any(|f| &f.node == n && f.name == x.iface) {
            let msg = format!(
                "node {n} already has an interface `{}`; set `iface` on this member",
                x.iface
            );
            d.err(sp(&x.spec.node), field.clone(), msg);
        }
        for (y, ay) in ends.iter().filter(|(y, _)| y.spec.node.get_ref() != n) {
            net.ifaces.push(Iface {
                node: n.clone(),
                name: x.iface.clone(),
                net: *ax,
                peer_node: y.spec.node.get_ref().clone(),
                peer_addr: ay.addr(),
                segment: Some(name.to_string()),
            });
        }
    }
    net.segments.push(cell::Segment {
        name: name.to_string(),
        members: ends.iter().map(|(e, a)| e.resolved(*a)).collect(),
        mtu: s.mtu.as_ref().map(|m| *m.get_ref()),
    });
}

/// A segment's members, each with its address, if every one is valid
/// (known node, once, an address in the first member's subnet) and there
/// are at least two.
fn members<'s>(
    d: &mut Diags<'_>,
    net: &mut Network,
    name: &str,
    s: &'s SegmentSpec,
    field: &str,
) -> Option<Vec<(End<'s>, IpNet)>> {
    let mut ends: Vec<(End<'_>, IpNet)> = Vec::new();
    for (k, m) in s.members.iter().enumerate() {
        let mf = format!("{field}.members[{k}]");
        let e = link_end(d, net, &mf, m, name);
        if ends
            .iter()
            .any(|(x, _)| x.spec.node.get_ref() == m.node.get_ref())
        {
            let msg = format!("node {} is on segment {name} twice", m.node.get_ref());
            d.err(sp(&m.node), format!("{mf}.node"), msg);
            continue;
        }
        if let (true, Some(a)) = (e.known, e.addr) {
            if same_subnet(d, &ends, &mf, m, a) {
                ends.push((e, a));
            }
        }
    }
    (ends.len() == s.members.len() && ends.len() >= 2).then_some(ends)
}

/// A segment member's address is in the first member's subnet, of its
/// family and prefix length.
fn same_subnet(
    d: &mut Diags<'_>,
    before: &[(End<'_>, IpNet)],
    field: &str,
    m: &LinkEnd,
    a: IpNet,
) -> bool {
    let Some((_, first)) = before.first() else {
        return true;
    };
    let same = a.addr().is_ipv4() == first.addr().is_ipv4()
        && a.network() == first.network()
        && a.prefix_len() == first.prefix_len();
    if !same {
        let msg = format!(
            "{a} is not in the segment's subnet {} (its first member's)",
            first.trunc()
        );
        d.err(sp(&m.addr), format!("{field}.addr"), msg);
    }
    same
}

/// Check one end of a link or a segment member (`field`: `links[i].a`,
/// `segments.lan.members[0]`); its interface is named `to-<toward>`
/// unless the file names it.
fn link_end<'s>(
    d: &mut Diags<'_>,
    net: &mut Network,
    field: &str,
    end: &'s LinkEnd,
    toward: &str,
) -> End<'s> {
    let known = known_node(d, &net.nodes, &end.node, format!("{field}.node"));
    let addr = d.net(&end.addr, &format!("{field}.addr")).filter(|a| {
        // Below /31 (/127), the first and last address of a subnet are
        // not a host's.
        let reserved = a.prefix_len() + 1 < a.max_prefix_len()
            && (a.addr() == a.network() || a.addr() == a.broadcast());
        if reserved {
            d.err(
                sp(&end.addr),
                format!("{field}.addr"),
                format!("{} is the network or broadcast address of its subnet", a),
            );
        }
        !reserved
    });
    let iface = match &end.iface {
        Some(i) => {
            if i.get_ref().is_empty()
                || i.get_ref().len() > IFNAMSIZ
                || i.get_ref().contains(['/', ' '])
            {
                d.err(
                    sp(i),
                    format!("{field}.iface"),
                    format!("interface names are 1-{IFNAMSIZ} characters without '/' or spaces"),
                );
            }
            i.get_ref().clone()
        }
        None => format!("to-{toward}"),
    };
    if let Some(a) = addr {
        if let Some(prev) = net.addrs.insert(a.addr(), field.to_string()) {
            d.err(
                sp(&end.addr),
                format!("{field}.addr"),
                format!("duplicate address {} (also at {prev})", a.addr()),
            );
        }
    }
    End {
        known,
        spec: end,
        iface,
        addr,
    }
}

/// Both ends of link `i` share one subnet, which overlaps no other link's.
fn subnet(d: &mut Diags<'_>, net: &mut Network, i: usize, l: &LinkSpec, a: IpNet, b: IpNet) {
    if a.addr().is_ipv4() != b.addr().is_ipv4() {
        d.err(
            sp(&l.b.addr),
            format!("links[{i}].b.addr"),
            format!(
                "{b} is {} but the other end {a} is {} (a dual-stack link is two links)",
                family(b.addr()),
                family(a.addr())
            ),
        );
        return;
    }
    if a.network() != b.network() || a.prefix_len() != b.prefix_len() {
        d.err(
            sp(&l.b.addr),
            format!("links[{i}].b.addr"),
            format!("{b} is not in the same subnet as the other end {a}"),
        );
        return;
    }
    subnet_is_free(d, net, a, &l.a.addr, &format!("links[{i}].a.addr"));
    net.subnets.push((a.trunc(), format!("links[{i}]")));
}

/// Subnet `a` (declared at `at`) overlaps no earlier link's or segment's.
fn subnet_is_free(d: &mut Diags<'_>, net: &Network, a: IpNet, at: &Spanned<String>, field: &str) {
    for (other, link) in &net.subnets {
        if other.contains(&a.network()) || a.contains(&other.network()) {
            let msg = format!("subnet {} overlaps {other} of {link}", a.trunc());
            d.err(sp(at), field, msg);
        }
    }
}

/// Check one route; the route, if valid.
fn route(d: &mut Diags<'_>, net: &Network, i: usize, r: &RouteSpec) -> Option<cell::Route> {
    let field = format!("routes[{i}]");
    let known = known_node(d, &net.nodes, &r.node, format!("{field}.node"));
    let to = (r.to.get_ref() != "default")
        .then(|| d.prefix(&r.to, &format!("{field}.to")).map(|n| n.trunc()));
    let hop = match (&r.via, &r.dev) {
        (Some(via), None) => cell::NextHop::Via(d.addr(via, &format!("{field}.via"))?),
        (None, Some(dev)) => dev_hop(d, net, &field, r, dev)?,
        (via, _) => {
            let msg = "a route goes `via` a neighbour's address or out of an interface (`dev`): give one of them";
            let span = via.as_ref().map_or_else(|| sp(&r.to), sp);
            d.err(span, format!("{field}.via"), msg);
            return None;
        }
    };
    // `default` is the default route of the next hop's family.
    let dst = match (to, &hop) {
        (Some(to), _) => to,
        (None, cell::NextHop::Via(via)) => Some(default_route(*via)),
        (None, cell::NextHop::Dev(_)) => {
            d.err(sp(&r.to), format!("{field}.to"), "`default` takes the family of a `via` address; with `dev`, name the prefix (e.g. \"::/0\")");
            return None;
        }
    };
    let (true, Some(dst)) = (known, dst) else {
        return None;
    };
    if let (cell::NextHop::Via(via), Some(v)) = (&hop, &r.via) {
        via_hop(d, net, &field, r, v, *via, dst)?;
    }
    Some(cell::Route {
        node: r.node.get_ref().clone(),
        dst,
        hop,
    })
}

/// A `dev` route: an interface of the node.
fn dev_hop(
    d: &mut Diags<'_>,
    net: &Network,
    field: &str,
    r: &RouteSpec,
    dev: &Spanned<String>,
) -> Option<cell::NextHop> {
    let n = r.node.get_ref();
    let ifaces: Vec<&str> = net
        .ifaces
        .iter()
        .filter(|x| &x.node == n)
        .map(|x| x.name.as_str())
        .collect();
    let on_segment = net
        .ifaces
        .iter()
        .find(|x| &x.node == n && &x.name == dev.get_ref())
        .and_then(|x| x.segment.as_ref());
    if let Some(seg) = on_segment {
        let msg = format!("`{}` is on segment {seg}, which has several neighbours: route `via` one of their addresses", dev.get_ref());
        d.err(sp(dev), format!("{field}.dev"), msg);
        return None;
    }
    if ifaces.contains(&dev.get_ref().as_str()) {
        return Some(cell::NextHop::Dev(dev.get_ref().clone()));
    }
    let msg = format!(
        "{n} has no interface `{}` (known: {})",
        dev.get_ref(),
        ifaces.join(", ")
    );
    d.err(sp(dev), format!("{field}.dev"), msg);
    None
}

/// A `via` route: a neighbour's address of the destination's family.
fn via_hop(
    d: &mut Diags<'_>,
    net: &Network,
    field: &str,
    r: &RouteSpec,
    v: &Spanned<String>,
    via: IpAddr,
    dst: IpNet,
) -> Option<()> {
    if dst.addr().is_ipv4() != via.is_ipv4() {
        d.err(
            sp(v),
            format!("{field}.via"),
            format!(
                "next hop {via} is {} but the destination {dst} is {}",
                family(via),
                family(dst.addr())
            ),
        );
        return None;
    }
    let on_link = net
        .ifaces
        .iter()
        .any(|x| &x.node == r.node.get_ref() && x.net.contains(&via) && x.peer_addr == via);
    if !on_link {
        d.err(
            sp(v),
            format!("{field}.via"),
            format!(
                "next hop {via} is not the address of a neighbour of {}",
                r.node.get_ref()
            ),
        );
        return None;
    }
    Some(())
}

/// "IPv4" or "IPv6", for messages about mixed families.
pub(super) fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn default_route(via: IpAddr) -> IpNet {
    match via {
        IpAddr::V4(_) => IpNet::V4(Ipv4Net::default()),
        IpAddr::V6(_) => IpNet::V6(Ipv6Net::default()),
    }
}

/// Each gateway's interface toward its `nat_outside` neighbour.
fn outside(d: &mut Diags<'_>, f: &ScenarioFile, net: &Network) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (n, spec) in &f.nodes {
        let Some(o) = &spec.get_ref().nat_outside else {
            continue;
        };
        match net.ifaces.iter().find(|x| {
            &x.node == n && (&x.peer_node == o.get_ref() || x.segment.as_ref() == Some(o.get_ref()))
        }) {
            Some(x) => {
                out.insert(n.clone(), x.name.clone());
            }
            None => d.err(
                sp(o),
                format!("nodes.{n}.nat_outside"),
                format!(
                    "`{}` is not a neighbour of {n} (nor a segment it is on)",
                    o.get_ref()
                ),
            ),
        }
    }
    out
}

/// The prefix field a profile cannot work without, and what to say when
/// it is missing.
pub(super) fn prefix_needed(nat: NatProfile) -> Option<(&'static str, &'static str)> {
    match nat {
        NatProfile::Nat64 => Some((
            "nat64_prefix",
            "profile nat64 synthesizes IPv6 addresses for IPv4 hosts from a prefix: set `nat64_prefix` (e.g. \"2001:db8:64::/96\")",
        )),
        NatProfile::Netmap66 => Some((
            "nat_prefix",
            "profile netmap66 maps the inside prefix to an outside one: set `nat_prefix` (e.g. \"2001:db8:99::/64\")",
        )),
        _ => None,
    }
}

/// `nat64_prefix`: an IPv6 /96 (the only length whose synthesized
/// addresses vpnlab computes, RFC 6052 section 2.2's last 32 bits).
fn nat64_prefix(d: &mut Diags<'_>, n: &str, spec: &NodeSpec) -> Option<Nat64> {
    let p = spec.nat64_prefix.as_ref()?;
    let field = format!("nodes.{n}.nat64_prefix");
    match d.prefix(p, &field)? {
        IpNet::V6(v) if v.prefix_len() == 96 => Some(Nat64 { prefix: v }),
        other => {
            let msg = format!(
                "{other} is not an IPv6 /96: the IPv4 address is embedded in the last 32 bits (RFC 6052 section 2.2; other lengths are not modelled), e.g. \"2001:db8:64::/96\""
            );
            d.err(sp(p), field, msg);
            None
        }
    }
}

/// A forwarding of IKE to an address of a family the gateway has none of
/// could never happen.
fn forward_family(d: &mut Diags<'_>, net: &Network, n: &str, spec: &NodeSpec) {
    let Some(a) = spec
        .behaviour
        .as_ref()
        .and_then(|b| b.get_ref().forward_ike_to.as_ref())
    else {
        return;
    };
    let Ok(to) = a.get_ref().parse::<IpAddr>() else {
        return;
    };
    if !Families::of([to]).within(Families::of(net.addrs_of(n))) {
        let msg = format!(
            "{to} is {}, but {n} has no {} address to forward from",
            family(to),
            family(to)
        );
        d.err(sp(a), format!("nodes.{n}.behaviour.forward_ike_to"), msg);
    }
}

/// A gateway's `nat_prefix` with the prefix it maps: that of its one IPv6
/// link not toward `nat_outside`.
fn prefix_map(
    d: &mut Diags<'_>,
    net: &Network,
    n: &str,
    spec: &NodeSpec,
    outside: Option<&str>,
) -> Option<PrefixMap> {
    let p = spec.nat_prefix.as_ref()?;
    let field = format!("nodes.{n}.nat_prefix");
    let o = match d.prefix(p, &field)? {
        IpNet::V6(o) => o,
        IpNet::V4(_) => {
            let msg = format!(
                "`{}` is an IPv4 prefix; prefix mapping (netmap66) is IPv6's",
                p.get_ref()
            );
            d.err(sp(p), field, msg);
            return None;
        }
    };
    let mut inside: Vec<Ipv6Net> = net
        .ifaces
        .iter()
        .filter(|x| x.node == n && Some(x.name.as_str()) != outside)
        .filter_map(|x| match x.net {
            IpNet::V6(v) => Some(v.trunc()),
            IpNet::V4(_) => None,
        })
        .collect();
    // A segment interface is listed once per neighbour.
    inside.dedup();
    let err = |d: &mut Diags<'_>, msg: String| {
        d.err(sp(p), format!("nodes.{n}.nat_prefix"), msg);
        None
    };
    match inside.as_slice() {
        [i] if i.prefix_len() == o.prefix_len() => Some(PrefixMap {
            inside: *i,
            outside: o.trunc(),
        }),
        [i] => err(d, format!("{o} is a /{} but the inside prefix {i} is a /{}: a prefix mapping keeps the host part, so both need one length", o.prefix_len(), i.prefix_len())),
        [] => err(d, format!("{n} has no IPv6 link besides the one toward nat_outside: there is no inside prefix to map")),
        _ => err(d, format!("{n} has {} IPv6 links besides the one toward nat_outside; a prefix mapping needs exactly one inside prefix", inside.len())),
    }
}

/// The knobs each of node `n`'s `matrix.behaviour` axes sets, value by
/// value (`None` once a value was reported invalid).
fn behaviour_axes(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    axes: &Axes,
    n: &str,
) -> Option<Vec<(Choice<Knobs>, bool)>> {
    let mut out = Vec::new();
    for (knob, values) in f.matrix.behaviour.get(n).into_iter().flatten() {
        let axis = axes.varying(&Varies::Behaviour(n.to_string(), knob.clone()))?;
        let field = format!("matrix.behaviour.{n}");
        let knobs: Vec<Option<Knobs>> = values
            .get_ref()
            .iter()
            .map(|v| knobs::axis_knobs(d, knob, v, &field))
            .collect();
        let values = knobs.into_iter().collect::<Option<Vec<Knobs>>>()?;
        out.push((Choice::Varied { axis, values }, knob == "ports"));
    }
    Some(out)
}

/// What a cell needs of node `n` (`None` if its profile is invalid, which
/// [`node`] or the matrix check reports).
fn plan(
    f: &ScenarioFile,
    net: &Network,
    axes: &Axes,
    n: &str,
    spec: &Spanned<NodeSpec>,
    nat_outside: Option<String>,
    prefix_map: Option<PrefixMap>,
) -> Option<NodePlan> {
    let s = spec.get_ref();
    let fixed = match &s.nat {
        Some(p) => p.get_ref().parse::<NatProfile>().ok()?,
        None => NatProfile::None,
    };
    let nat = axes.choice(&Varies::Nat(n.to_string()), fixed, |v| v.parse().ok())?;
    let hairpin = axes.choice(&Varies::Hairpin(n.to_string()), None, |v| {
        Some(Some(v == "true"))
    })?;
    let ports_set = s
        .behaviour
        .as_ref()
        .is_some_and(|b| b.get_ref().ports.is_some());
    Some(NodePlan {
        name: n.to_string(),
        nat,
        hairpin,
        knobs: net.knobs.get(n).map(|k| (k.clone(), ports_set)),
        behaviour: Vec::new(),
        nat_outside,
        forwarding: net.forwards(f, n),
        sysctl: s
            .sysctl
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect(),
        pptp_helper: s.pptp_helper,
        families: Families::of(net.addrs_of(n)),
        prefix_map,
        nat64: net.nat64.get(n).copied(),
        span: s.nat.as_ref().map(sp).unwrap_or_else(|| sp(spec)),
    })
}

impl Network {
    /// Whether node `n` forwards packets in some cell: it has a NAT
    /// profile (in the file or on an axis), `behaviour` knobs, or another
    /// node routes through it.
    pub(super) fn forwards(&self, f: &ScenarioFile, n: &str) -> bool {
        let spec = f.nodes.get(n).map(|s| s.get_ref());
        spec.is_some_and(|s| s.nat.is_some() || s.behaviour.is_some())
            || f.matrix.nat.contains_key(n)
            || f.matrix.behaviour.contains_key(n)
            || self
                .routes
                .iter()
                .any(|r| r.node != n && via_owner(r, &self.ifaces) == Some(n))
    }

    /// The IPv4 address `a` stands for at a NAT64 gateway, and that
    /// gateway, if `a` is synthesized from one of the prefixes.
    pub(super) fn synthesized(&self, a: IpAddr) -> Option<(IpAddr, &str)> {
        let IpAddr::V6(v6) = a else { return None };
        self.nat64
            .iter()
            .find_map(|(gw, p)| Some((IpAddr::V4(p.embedded(v6)?), gw.as_str())))
    }

    /// Whether `addr` is on one of node `n`'s links.
    pub(super) fn owns(&self, n: &str, addr: IpAddr) -> bool {
        self.ifaces
            .iter()
            .any(|x| x.node == n && x.net.addr() == addr)
    }

    /// The addresses on node `n`'s links.
    pub(super) fn addrs_of<'a>(&'a self, n: &'a str) -> impl Iterator<Item = IpAddr> + 'a {
        self.ifaces
            .iter()
            .filter(move |x| x.node == n)
            .map(|x| x.net.addr())
    }
}
