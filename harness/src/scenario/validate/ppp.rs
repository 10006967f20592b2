//! The PPP layer (`[ppp]`): two distinct nodes, the address the client
//! dials, and the link's own two addresses, which must not clash with any
//! link or inner address.

use std::net::IpAddr;

use toml::Spanned;

use super::super::file::{PppSpec, ScenarioFile};
use super::diag::{known_node, sp, Diags};
use super::endpoints::Endpoints;
use super::network::Network;
use crate::model as cell;

/// Validate the PPP layer; the resolved link, if the file has a valid one.
pub(super) fn validate(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    net: &Network,
    eps: &Endpoints,
) -> Option<cell::Ppp> {
    let p = f.ppp.as_ref()?.get_ref();
    let kc = known_node(d, &net.nodes, &p.client, "ppp.client".into());
    let ks = known_node(d, &net.nodes, &p.server, "ppp.server".into());
    if p.client.get_ref() == p.server.get_ref() {
        d.err(
            sp(&p.server),
            "ppp.server",
            "client and server must be different nodes",
        );
    }
    let server_ip = link_ip(d, net, eps, &p.server_ip, "ppp.server_ip");
    let client_ip = link_ip(d, net, eps, &p.client_ip, "ppp.client_ip");
    if server_ip.is_some() && server_ip == client_ip {
        d.err(
            sp(&p.client_ip),
            "ppp.client_ip",
            "must differ from server_ip",
        );
    }
    let server_addr = server_addr(d, net, p, ks);
    match (kc && ks, server_addr, server_ip, client_ip) {
        (true, Some(server_addr), Some(server_ip), Some(client_ip)) => Some(cell::Ppp {
            kind: *p.kind.get_ref(),
            client: p.client.get_ref().clone(),
            server: p.server.get_ref().clone(),
            server_addr,
            server_ip,
            client_ip,
        }),
        _ => None,
    }
}

/// One of the link's own addresses: new to the network.
fn link_ip(
    d: &mut Diags<'_>,
    net: &Network,
    eps: &Endpoints,
    v: &Spanned<String>,
    field: &str,
) -> Option<IpAddr> {
    let a = d.addr(v, field)?;
    if a.is_ipv6() {
        // vpnlab's pppd options are IPv4 only (`noipv6`: no IPV6CP).
        d.err(
            sp(v),
            field,
            format!("{a}: PPP links are IPv4 here (IPCP); IPv6 over PPP is not modelled"),
        );
        return None;
    }
    if let Some(prev) = net.addrs.get(&a).or_else(|| eps.inner_seen.get(&a)) {
        d.err(
            sp(v),
            field,
            format!("duplicate address {a} (also at {prev})"),
        );
    }
    Some(a)
}

/// The address the client dials: `server_addr` (one of the server's), or
/// the server's only address.
fn server_addr(d: &mut Diags<'_>, net: &Network, p: &PppSpec, known: bool) -> Option<IpAddr> {
    let server = p.server.get_ref();
    if let Some(a) = &p.server_addr {
        let x = d.addr(a, "ppp.server_addr")?;
        if net.owns(server, x) {
            return Some(x);
        }
        d.err(
            sp(a),
            "ppp.server_addr",
            format!("{x} is not an address of {server}"),
        );
        return None;
    }
    let own: Vec<IpAddr> = net.addrs_of(server).collect();
    match own[..] {
        [one] => Some(one),
        _ if known => {
            d.err(
                sp(&p.server),
                "ppp.server_addr",
                format!(
                    "{server} has {} addresses: say which one the client dials",
                    own.len()
                ),
            );
            None
        }
        _ => None,
    }
}
