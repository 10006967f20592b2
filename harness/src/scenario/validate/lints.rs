//! Lints: what a file may say but will likely regret, reported by `vpnlab
//! check` as warnings with file:line that do not fail the check. Each names
//! the field to change.

use std::net::IpAddr;

use super::diag::{sp, Diags};
use super::matrix::Choice;
use super::routing::next_hop;
use super::Validated;
use crate::model::{Cell, StackKind, TunnelExpect};

/// Every lint of the file, its cells expanded.
pub(super) fn lint(d: &mut Diags<'_>, v: &Validated<'_>, cells: &[Cell]) {
    return_routes(d, v);
    check_paths(d, v);
    keepalives(d, v, cells);
}

/// A libreswan end without a route to its peer's side of the tunnel: pluto
/// installs the SAs and policies, not a route, so what comes out of the
/// tunnel is received but cannot be answered.
fn return_routes(d: &mut Diags<'_>, v: &Validated<'_>) {
    for p in &v.eps.plans {
        let libreswan = match &p.stack {
            Choice::Fixed(s) => *s == StackKind::Libreswan,
            Choice::Varied { values, .. } => values.contains(&StackKind::Libreswan),
        };
        if !libreswan {
            continue;
        }
        let e = v.f.endpoints[p.index].get_ref();
        let peer = v.f.endpoints[p.peer].get_ref().node.get_ref();
        let inner = v.eps.inner_of.get(peer).copied();
        let subnets = v.eps.subnets_of.get(peer).into_iter().flatten();
        let node = e.node.get_ref();
        for a in inner.into_iter().chain(subnets.map(|n| n.network())) {
            if next_hop(node, a, &v.net.ifaces, &v.net.routes).is_none() {
                d.warn(
                    sp(&e.node),
                    format!("endpoints[{}]", p.index),
                    format!(
                        "{node} (libreswan) has no route to {a}, {peer}'s side of the tunnel: what comes out of the tunnel cannot be answered; add `[[routes]] node = \"{node}\"` to {a} (or a default route)"
                    ),
                );
            }
        }
    }
}

/// The endpoint whose protected networks hold `a`, if any.
fn protecting<'a>(v: &'a Validated<'_>, a: IpAddr) -> Option<&'a str> {
    v.eps
        .subnets_of
        .iter()
        .find(|(_, nets)| nets.iter().any(|n| n.contains(&a)))
        .map(|(node, _)| node.as_str())
}

/// A check between hosts behind the tunnel's ends whose packets, one way or
/// the other, do not go through the end that protects them: they bypass
/// the tunnel.
fn check_paths(d: &mut Diags<'_>, v: &Validated<'_>) {
    for (i, (c, spec)) in v.checks.iter().zip(&v.f.checks).enumerate() {
        for (host, toward, own) in [(&c.from, c.dst, c.src), (&c.to, c.src, c.dst)] {
            if v.eps.nodes.contains(host) {
                continue;
            }
            let Some(end) = protecting(v, own) else {
                continue;
            };
            // Traffic between two hosts one end protects stays on its side.
            if protecting(v, toward) == Some(end) {
                continue;
            }
            let msg = match next_hop(host, toward, &v.net.ifaces, &v.net.routes) {
                None => format!(
                    "check {}: {host} has no route to {toward}: what reaches it through {end}'s tunnel cannot be answered; add `[[routes]] node = \"{host}\"` (e.g. a default route via {end})",
                    c.name
                ),
                Some(h) if h.peer_node != end => format!(
                    "check {}: {host} sends to {toward} by {}, not by {end}, whose tunnel covers {own}: that way bypasses the tunnel",
                    c.name, h.peer_node
                ),
                Some(_) => continue,
            };
            d.warn(sp(spec), format!("checks[{i}]"), msg);
        }
    }
}

/// A cell expected up whose NAT forgets a mapping before the end behind it
/// refreshes it.
fn keepalives(d: &mut Diags<'_>, v: &Validated<'_>, cells: &[Cell]) {
    for cell in cells {
        if cell.expect.tunnel != Some(TunnelExpect::Up) || cell.expect.is_negative() {
            continue;
        }
        let timeouts = cell
            .nodes
            .iter()
            .filter(|n| n.nat.translates())
            .filter_map(|n| Some((n, n.knobs.udp_timeout?)));
        for (gw, t) in timeouts {
            for (i, e) in cell.endpoints.iter().enumerate() {
                let Some(k) = e.knobs.keepalive.filter(|&k| k > t) else {
                    continue;
                };
                let spec = &v.f.endpoints[v.eps.plans[i].index];
                d.warn(
                    spec.get_ref().keepalive.as_ref().map_or(sp(spec), sp),
                    format!("endpoints[{}].keepalive", v.eps.plans[i].index),
                    format!(
                        "cell {}: {}'s keepalive ({k} s) is longer than {}'s UDP timeout ({t} s), in a cell expected up: an idle tunnel loses its mapping",
                        cell.id, e.node, gw.name
                    ),
                );
            }
        }
    }
}
