//! Matrix expansion: one [`Cell`] per pick of axis values, from what
//! validation resolved. Nothing here can fail on what validation checked:
//! the plans carry every setting, per cell where an axis varies it. What
//! only a cell can show is still reported here: a NAT profile without an
//! outside side, IKE that cannot get through the cell's NAT, an
//! expectation that leaves the cell's tunnel, PPP link or a check open.

use std::net::IpAddr;
use std::ops::Range;

use super::endpoints::EndpointPlan;
use super::expect;
use super::knobs;
use super::matrix::Pick;
use super::network::NodePlan;
use super::routing::{forwarded_to, next_hop, reachable};
use super::{Diags, Validated};
use crate::model::{self as cell, Cell, Misconfig, NatProfile, Role};

/// A routing problem, with the cells it occurs in (often all of them).
struct Unreachable {
    span: Range<usize>,
    field: String,
    msg: String,
    cells: Vec<String>,
}

/// Every cell of the matrix, in matrix order.
pub(super) fn cells(d: &mut Diags<'_>, v: &Validated<'_>) -> Vec<Cell> {
    let picks = v.axes.picks();
    let local = local_addrs(v);
    let mut cells = Vec::new();
    let mut unreachable = Vec::new();
    for pick in &picks {
        let id = pick.id(&v.name);
        let nodes: Vec<cell::Node> = v.net.plans.iter().map(|p| node(d, p, pick)).collect();
        let endpoints: Vec<cell::Endpoint> = v
            .eps
            .plans
            .iter()
            .zip(&local)
            .map(|(p, local)| endpoint(v, p, *local, pick))
            .collect();
        routable(v, &endpoints, &nodes, &id, &mut unreachable);
        let has = (!endpoints.is_empty(), v.ppp.is_some());
        let Some(expect) = expect::of_cell(d, v.f, pick, &id, &v.names, has) else {
            continue;
        };
        misconfigured_expects(d, v, &endpoints, &expect, &id);
        cells.push(Cell {
            id,
            scenario: v.name.clone(),
            file: v.path.to_path_buf(),
            axes: pick.labels(),
            nodes,
            links: v.net.links.clone(),
            segments: v.net.segments.clone(),
            routes: v.net.routes.clone(),
            checks: v.checks.clone(),
            requires: v.requires.clone(),
            backend: v.backend,
            expect,
            steps: v.steps.clone(),
            ppp: v.ppp.clone(),
            endpoints,
        });
    }
    for u in unreachable {
        if u.cells.len() == picks.len() {
            d.err(u.span, u.field, u.msg);
        } else {
            let msg = format!("in cells {}: {}", u.cells.join(", "), u.msg);
            d.err(u.span, u.field, msg);
        }
    }
    cells
}

/// A cell with a misconfigured end fails on purpose: it must say so.
fn misconfigured_expects(
    d: &mut Diags<'_>,
    v: &Validated<'_>,
    endpoints: &[cell::Endpoint],
    x: &cell::Expectation,
    id: &str,
) {
    let Some(e) = endpoints.iter().find(|e| !e.misconfigured.is_empty()) else {
        return;
    };
    if x.tunnel != Some(cell::TunnelExpect::Down) && x.cause.is_none() {
        let span = v.f.expect.first().map(super::diag::sp).unwrap_or(0..0);
        let what: Vec<&str> = e.misconfigured.iter().map(|m| m.into()).collect();
        d.err(
            span,
            "expect.tunnel",
            format!(
                "cell {id}: {} is misconfigured ({}): expect `tunnel = \"down\"` or state its `cause`",
                e.node,
                what.join(", ")
            ),
        );
    }
}

/// The wrong values a misconfigured end gets, where the file does not
/// write them itself.
fn misconfigure(e: &mut cell::Endpoint, peer: &super::super::file::EndpointSpec) {
    for m in e.misconfigured.clone() {
        match m {
            Misconfig::Psk => {
                if peer.psk.as_ref().is_some_and(|p| *p.get_ref() == e.psk) {
                    e.psk.push_str("-misconfigured");
                }
            }
            Misconfig::Identity => e.peer_id = WRONG_ID.to_string(),
            Misconfig::IkeVersion => {
                if *peer.ike.get_ref() == e.ike {
                    e.ike = 3 - e.ike;
                }
            }
            Misconfig::TrafficSelectors => {
                e.peer_subnets.clear();
                e.peer_inner = Some(match e.inner {
                    Some(IpAddr::V6(_)) => WRONG_TS6.parse().expect("an address"),
                    _ => WRONG_TS4.parse().expect("an address"),
                });
            }
            // The stack driver has the test PKI issue the flawed
            // certificate: nothing to change here.
            Misconfig::CertUntrusted | Misconfig::CertExpired => {}
        }
    }
}

/// The identity a misconfigured end expects of its peer (RFC 6761: a name
/// that never exists).
const WRONG_ID: &str = "misconfigured.invalid";
/// The peer selector a misconfigured end proposes: documentation
/// addresses (RFC 5737, RFC 3849) no node has.
const WRONG_TS4: &str = "198.51.100.254";
const WRONG_TS6: &str = "2001:db8:ffff::fe";

/// A node with the cell's NAT profile and hairpinning.
fn node(d: &mut Diags<'_>, p: &NodePlan, pick: &Pick<'_>) -> cell::Node {
    let nat = *p.nat.at(pick);
    let mut knobs = nat.preset();
    if let Some((k, ports_set)) = &p.knobs {
        knobs::merge(&mut knobs, k, *ports_set);
    }
    for (choice, ports) in &p.behaviour {
        knobs::merge(&mut knobs, choice.at(pick), *ports);
    }
    if let Some(on) = p.hairpin.at(pick) {
        knobs.hairpin = *on;
    }
    let forwards = knobs.forward_ike_to.is_some() || knobs.forward_esp_to.is_some();
    if (nat.translates() || forwards) && p.nat_outside.is_none() {
        d.err(
            p.span.clone(),
            format!("nodes.{}.nat_outside", p.name),
            format!(
                "NAT profile {nat} (or forward_ike_to, forward_esp_to) needs `nat_outside` (the neighbour on the public side)"
            ),
        );
    }
    families(d, p, nat);
    match nat {
        NatProfile::Nat64 => knobs.nat64 = p.nat64,
        NatProfile::Netmap66 => knobs.prefix_map = p.prefix_map,
        _ => {}
    }
    let missing = match nat {
        NatProfile::Nat64 => p.nat64.is_none(),
        NatProfile::Netmap66 => p.prefix_map.is_none(),
        _ => false,
    };
    if let (true, Some((field, msg))) = (missing, super::network::prefix_needed(nat)) {
        d.err(p.span.clone(), format!("nodes.{}.{field}", p.name), msg);
    }
    cell::Node {
        name: p.name.clone(),
        nat,
        nat_outside: p.nat_outside.clone(),
        forwarding: p.forwarding,
        sysctl: p.sysctl.clone(),
        pptp_helper: p.pptp_helper,
        knobs,
    }
}

/// A gateway's rules must act on every family it carries: a profile of
/// the other family would let those packets through untouched while the
/// cell claimed a NAT or a block.
fn families(d: &mut Diags<'_>, p: &NodePlan, nat: NatProfile) {
    let field = format!("nodes.{}.nat", p.name);
    let has = p.families;
    if nat != NatProfile::None && !has.within(nat.families()) {
        let (only, other) = if nat.families().v4 {
            ("IPv4", "IPv6")
        } else {
            ("IPv6", "IPv4")
        };
        let msg = format!(
            "profile {nat} acts on {only} only, but {} has {other} addresses, which would pass untouched",
            p.name
        );
        d.err(p.span.clone(), field.clone(), msg);
    }
    if p.pptp_helper && has.v6 {
        let msg = format!(
            "{}'s PPTP helper is IPv4's (Linux has none for IPv6), but {} has IPv6 addresses",
            p.name, p.name
        );
        d.err(p.span.clone(), field, msg);
    }
}

/// Each endpoint's own IKE address (the same in every cell): toward its
/// remote address on an initiator; on a responder, the address its
/// initiator targets (or the inside address a gateway forwards that to).
fn local_addrs(v: &Validated<'_>) -> Vec<Option<IpAddr>> {
    let ifaces = &v.net.ifaces;
    let node = |i: usize| v.f.endpoints[i].get_ref().node.get_ref();
    let role = |i: usize| *v.f.endpoints[i].get_ref().role.get_ref();
    let plans = &v.eps.plans;
    plans
        .iter()
        .map(|p| {
            if role(p.index) != Role::Responder {
                let dst = p.remote_addr?;
                return next_hop(node(p.index), dst, ifaces, &v.net.routes).map(|x| x.net.addr());
            }
            let me = node(p.index);
            plans
                .iter()
                .filter(|q| node(q.peer) == me)
                .filter_map(|q| q.remote_addr)
                .find_map(|a| {
                    if v.net.owns(me, a) {
                        Some(a)
                    } else if let Some((v4, _)) =
                        v.net.synthesized(a).filter(|(v4, _)| v.net.owns(me, *v4))
                    {
                        // Through a NAT64 gateway: IKE arrives at the
                        // IPv4 address the IPv6 one was synthesized from.
                        Some(v4)
                    } else {
                        // Through a gateway that forwards IKE to it.
                        forwarded_to(a, ifaces, &v.net.knobs)
                            .filter(|(_, n)| n == me)
                            .map(|(to, _)| to)
                    }
                })
        })
        .collect()
}

/// An endpoint with the cell's stack, NAT-T mode and knobs.
fn endpoint(
    v: &Validated<'_>,
    p: &EndpointPlan,
    local_addr: Option<IpAddr>,
    pick: &Pick<'_>,
) -> cell::Endpoint {
    let e = v.f.endpoints[p.index].get_ref();
    let peer = v.f.endpoints[p.peer].get_ref();
    let inner = |n: &String| v.eps.inner_of.get(n).copied();
    let subnets = |n: &String| v.eps.subnets_of.get(n).cloned().unwrap_or_default();
    let vip = v.eps.vip.contains_key(e.node.get_ref());
    let others = p.others.iter().map(|&o| {
        let other = v.f.endpoints[o].get_ref();
        cell::OtherPeer {
            node: other.node.get_ref().clone(),
            id: other.id.get_ref().clone(),
            inner: inner(other.node.get_ref()),
            subnets: subnets(other.node.get_ref()),
        }
    });
    let mut out = cell::Endpoint {
        node: e.node.get_ref().clone(),
        stack: p.stack.at(pick).clone(),
        role: *e.role.get_ref(),
        peer: peer.node.get_ref().clone(),
        others: others.collect(),
        remote_addr: p.remote_addr,
        local_addr,
        id: e.id.get_ref().clone(),
        peer_id: peer.id.get_ref().clone(),
        psk: e
            .psk
            .as_ref()
            .map(|p| p.get_ref().clone())
            .unwrap_or_default(),
        inner: inner(e.node.get_ref()),
        peer_inner: inner(peer.node.get_ref()),
        subnets: subnets(e.node.get_ref()),
        peer_subnets: subnets(peer.node.get_ref()),
        pool: v
            .eps
            .pool_of
            .get(e.node.get_ref())
            .copied()
            .or_else(|| v.eps.vip_pool(e.node.get_ref())),
        virtual_ip: vip,
        proposals: p.proposals.at(pick).clone(),
        ike: *e.ike.get_ref(),
        nat_t: *p.nat_t.at(pick),
        mode: *e.mode.get_ref(),
        knobs: p.knobs.at(pick),
        misconfigured: p.misconfigured.at(pick).clone(),
    };
    misconfigure(&mut out, peer);
    out
}

/// IKE must be routable both ways, through this cell's NAT.
fn routable(
    v: &Validated<'_>,
    endpoints: &[cell::Endpoint],
    nodes: &[cell::Node],
    id: &str,
    out: &mut Vec<Unreachable>,
) {
    for (p, e) in v.eps.plans.iter().zip(endpoints) {
        let Some(dst) = e.remote_addr else { continue };
        let Err(msg) = reachable(&e.node, dst, &v.net.ifaces, &v.net.routes, nodes) else {
            continue;
        };
        let msg = format!("IKE from {} to {dst}: {msg}", e.node);
        let field = format!("endpoints[{}].peer", p.index);
        match out.iter_mut().find(|u| u.field == field && u.msg == msg) {
            Some(u) => u.cells.push(id.to_string()),
            None => out.push(Unreachable {
                span: v.f.endpoints[p.index].get_ref().peer.span(),
                field,
                msg,
                cells: vec![id.to_string()],
            }),
        }
    }
}
