//! Paths through the file's network, as the kernel will route them: the
//! next hop toward an address, whether IKE gets there and back through a
//! cell's NAT, and where a gateway forwards IKE to. Validation asks before
//! anything runs, so an unroutable file is refused with the reason.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::network::Iface;
use crate::model::{self as cell, Knobs, NatProfile, NextHop};

/// The node a route leads to.
pub(super) fn via_owner<'a>(r: &cell::Route, ifaces: &'a [Iface]) -> Option<&'a str> {
    route_iface(r, ifaces).map(|x| x.peer_node.as_str())
}

/// The interface of its node a route leaves by.
fn route_iface<'a>(r: &cell::Route, ifaces: &'a [Iface]) -> Option<&'a Iface> {
    ifaces.iter().find(|x| {
        x.node == r.node
            && match &r.hop {
                NextHop::Via(v) => x.peer_addr == *v,
                NextHop::Dev(d) => x.name == *d,
            }
    })
}

/// Where a node sends a packet for `dst`: the interface and the next node.
pub(super) fn next_hop<'a>(
    node: &str,
    dst: IpAddr,
    ifaces: &'a [Iface],
    routes: &[cell::Route],
) -> Option<&'a Iface> {
    let on_net = || {
        ifaces
            .iter()
            .filter(|x| x.node == node && x.net.contains(&dst))
    };
    let longest = on_net().map(|x| x.net.prefix_len()).max();
    // On a segment the interface is listed once per neighbour: the one
    // that is `dst`, if any.
    let connected = on_net()
        .filter(|x| Some(x.net.prefix_len()) == longest)
        .max_by_key(|x| x.peer_addr == dst);
    let routed = routes
        .iter()
        .filter(|r| r.node == node && r.dst.contains(&dst))
        .max_by_key(|r| r.dst.prefix_len());
    match (connected, routed) {
        (Some(c), Some(r)) if r.dst.prefix_len() > c.net.prefix_len() => route_iface(r, ifaces),
        (Some(c), _) => (c.peer_addr == dst).then_some(c),
        (None, Some(r)) => route_iface(r, ifaces),
        (None, None) => None,
    }
}

/// Why IKE cannot get from an endpoint to its peer and back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Unreachable {
    /// A node on the way has no route.
    #[error("{at} has no route to {dst}")]
    NoRoute { at: String, dst: IpAddr },
    /// A host on the way would have to forward.
    #[error("{at} would have to forward, but is not a router")]
    NotARouter { at: String },
    /// The forward path loops.
    #[error("path loops")]
    Loops,
    /// A node on the reply path has no route back.
    #[error("replies cannot return: {at} has no route to {target}")]
    NoReturn { at: String, target: IpAddr },
    /// Replies reach a NAT other than the one that translated.
    #[error("inconsistent NAT path")]
    InconsistentNat,
    /// The reply path loops.
    #[error("reply path loops")]
    ReplyLoops,
    /// A NAT64 gateway would send the translated packet back inside.
    #[error("{at} translates to IPv4 but routes the result away from its nat_outside")]
    Nat64Inside { at: String },
}

/// Walk the forward path from `from` to `dst`, applying source NAT on the
/// way, then the reply path back to the (translated) source.
pub(super) fn reachable(
    from: &str,
    dst: IpAddr,
    ifaces: &[Iface],
    routes: &[cell::Route],
    nodes: &[cell::Node],
) -> Result<(), Unreachable> {
    let no_route = |at: &str, dst: IpAddr| Unreachable::NoRoute {
        at: at.to_string(),
        dst,
    };
    let Some(first) = next_hop(from, dst, ifaces, routes) else {
        return Err(no_route(from, dst));
    };
    let mut src = first.net.addr();
    let mut dst = dst;
    let mut nats: Vec<(String, IpAddr)> = Vec::new();
    let mut at = from.to_string();
    for _ in 0..16 {
        if owns(ifaces, &at, dst) {
            return replies(at, src, nats, ifaces, routes);
        }
        let node = nodes.iter().find(|n| n.name == at);
        // A NAT64 gateway sends a synthesized address's packets on to the
        // IPv4 address inside it.
        let v4 = node.and_then(|n| translated(n, dst));
        if let Some(v4) = v4 {
            dst = v4;
        }
        let Some(hop) = next_hop(&at, dst, ifaces, routes) else {
            return Err(no_route(&at, dst));
        };
        if let Some(n) = node {
            if n.nat.translates() && n.nat_outside.as_deref() == Some(hop.name.as_str()) {
                nats.push((at.clone(), src));
                src = hop.net.addr();
            } else if v4.is_some() {
                return Err(Unreachable::Nat64Inside { at });
            } else if at != from && !n.forwarding {
                return Err(Unreachable::NotARouter { at });
            }
        }
        at = hop.peer_node.clone();
    }
    Err(Unreachable::Loops)
}

/// The IPv4 address a NAT64 gateway translates `dst` to.
fn translated(n: &cell::Node, dst: IpAddr) -> Option<IpAddr> {
    let IpAddr::V6(v6) = dst else { return None };
    let p = n.knobs.nat64.filter(|_| n.nat == NatProfile::Nat64)?;
    p.embedded(v6).map(IpAddr::V4)
}

/// The reply path from `at` back to what it saw as the source, undoing the
/// source NATs (`nats`, innermost last) on the way.
fn replies(
    mut at: String,
    mut target: IpAddr,
    mut nats: Vec<(String, IpAddr)>,
    ifaces: &[Iface],
    routes: &[cell::Route],
) -> Result<(), Unreachable> {
    for _ in 0..32 {
        if owns(ifaces, &at, target) {
            match nats.pop() {
                Some((gw, orig)) if gw == at => target = orig,
                Some(_) => return Err(Unreachable::InconsistentNat),
                None => return Ok(()),
            }
            if owns(ifaces, &at, target) {
                continue;
            }
        }
        let Some(hop) = next_hop(&at, target, ifaces, routes) else {
            return Err(Unreachable::NoReturn { at, target });
        };
        at = hop.peer_node.clone();
    }
    Err(Unreachable::ReplyLoops)
}

fn owns(ifaces: &[Iface], n: &str, a: IpAddr) -> bool {
    ifaces.iter().any(|x| x.node == n && x.net.addr() == a)
}

/// The inside address and node a gateway forwards IKE sent to `addr` to
/// (`behaviour.forward_ike_to`), if `addr` is such a gateway's address.
pub(super) fn forwarded_to(
    addr: IpAddr,
    ifaces: &[Iface],
    knobs: &BTreeMap<String, Knobs>,
) -> Option<(IpAddr, String)> {
    let gw = ifaces.iter().find(|x| x.net.addr() == addr)?;
    let to = knobs.get(&gw.node)?.forward_ike_to?;
    let owner = ifaces.iter().find(|x| x.net.addr() == to)?;
    Some((to, owner.node.clone()))
}
