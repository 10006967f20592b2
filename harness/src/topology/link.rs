//! Links, addresses and routes through rtnetlink, each request sent on the
//! netlink socket of the namespace it concerns.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use crate::error::TopologyError;
use crate::model::{NextHop, Route};
use crate::topology::netns::Netns;

fn nl(ns: &Netns, op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> TopologyError {
    let node = ns.node.clone();
    let op = op.into();
    move |source| TopologyError::Netlink { node, op, source }
}

/// Index of interface `name` in `ns`.
pub async fn index(ns: &Netns, name: &str) -> Result<u32, TopologyError> {
    let mut links = ns.rtnl.link().get().match_name(name.to_string()).execute();
    match links
        .try_next()
        .await
        .map_err(nl(ns, format!("look up {name}")))?
    {
        Some(msg) => Ok(msg.header.index),
        None => unreachable!("netlink answers a name lookup with an error, not an empty list"),
    }
}

/// One end of a veth pair to create: its namespace, name and interface
/// index.
pub struct VethEnd<'a> {
    /// The namespace it is born in.
    pub ns: &'a Netns,
    /// Its name there.
    pub name: &'a str,
    /// Its interface index there.
    pub index: u32,
}

/// Create a veth pair whose ends are born inside `a` and `b`: the request is
/// sent on `a`'s socket and carries `b`'s namespace descriptor for the peer,
/// so no interface ever appears in the namespace vpnlab runs in.
///
/// The two ends get different interface indexes. The kernel treats a
/// carrier change of a device whose index equals its peer's (`iflink`) as
/// not urgent, and handles it up to a second later; in fresh namespaces
/// both ends would otherwise be index 2, and IPv6 neighbour discovery on
/// the link would not answer until then.
pub async fn veth(a: VethEnd<'_>, b: VethEnd<'_>, mtu: Option<u32>) -> Result<(), TopologyError> {
    let (a_name, b_name) = (a.name, b.name);
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(b_name.to_string())
        .index(b.index)
        .setns_by_fd(b.ns.fd().as_raw_fd());
    let mut builder = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
        .name(a_name.to_string())
        .index(a.index);
    if let Some(m) = mtu {
        peer = peer.mtu(m);
        builder = builder.mtu(m);
    }
    let msg = builder
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .build();
    a.ns.rtnl.link().add(msg).execute().await.map_err(nl(
        a.ns,
        format!("create veth {a_name} <-> {}:{b_name}", b.ns.node),
    ))
}

/// Create bridge `name` at interface index `index`, up. Its spanning tree
/// stays off (the kernel's default), so a port forwards as soon as it is
/// up: no listening and learning delay.
pub async fn bridge(ns: &Netns, name: &str, index: u32) -> Result<(), TopologyError> {
    let msg = LinkBridge::new(name).index(index).build();
    ns.rtnl
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(nl(ns, format!("create bridge {name}")))
}

/// Plug interface `index` (`name`) into the bridge at `bridge`, and bring
/// it up.
pub async fn enslave(ns: &Netns, index: u32, name: &str, bridge: u32) -> Result<(), TopologyError> {
    let msg = LinkUnspec::new_with_index(index)
        .controller(bridge)
        .up()
        .build();
    ns.rtnl
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(nl(ns, format!("plug {name} into the bridge")))
}

/// Bring interface `index` up.
pub async fn up(ns: &Netns, index: u32, name: &str) -> Result<(), TopologyError> {
    ns.rtnl
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl(ns, format!("set {name} up")))
}

/// Whether interface `index` carries packets: operationally up, with its
/// queueing discipline attached. After carrier comes back the kernel's
/// link watcher does both, up to a second later; until then the interface
/// drops every packet it is given (its qdisc is `noop`).
pub async fn carries(ns: &Netns, index: u32, name: &str) -> Result<bool, TopologyError> {
    use rtnetlink::packet_route::link::State;
    let mut links = ns.rtnl.link().get().match_index(index).execute();
    let Some(msg) = links
        .try_next()
        .await
        .map_err(nl(ns, format!("look up {name}")))?
    else {
        return Ok(false);
    };
    let a = &msg.attributes;
    let up = a
        .iter()
        .any(|a| matches!(a, LinkAttribute::OperState(State::Up)));
    let queue = a
        .iter()
        .any(|a| matches!(a, LinkAttribute::Qdisc(q) if q != "noop"));
    Ok(up && queue)
}

/// Bring interface `index` down.
pub async fn down(ns: &Netns, index: u32, name: &str) -> Result<(), TopologyError> {
    ns.rtnl
        .link()
        .set(LinkUnspec::new_with_index(index).down().build())
        .execute()
        .await
        .map_err(nl(ns, format!("set {name} down")))
}

/// Set the MTU of interface `index`.
pub async fn mtu(ns: &Netns, index: u32, name: &str, mtu: u32) -> Result<(), TopologyError> {
    ns.rtnl
        .link()
        .set(LinkUnspec::new_with_index(index).mtu(mtu).build())
        .execute()
        .await
        .map_err(nl(ns, format!("set {name} mtu {mtu}")))
}

/// Add `addr` to interface `index`.
pub async fn address(ns: &Netns, index: u32, name: &str, addr: IpNet) -> Result<(), TopologyError> {
    ns.rtnl
        .address()
        .add(index, addr.addr(), addr.prefix_len())
        .execute()
        .await
        .map_err(nl(ns, format!("add address {addr} on {name}")))
}

/// Add a route to `dst` via `via`.
pub async fn route(ns: &Netns, dst: IpNet, via: IpAddr) -> Result<(), TopologyError> {
    let msg = match (dst, via) {
        (IpNet::V4(d), IpAddr::V4(v)) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(d.network(), d.prefix_len())
            .gateway(v)
            .build(),
        (IpNet::V6(d), IpAddr::V6(v)) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(d.network(), d.prefix_len())
            .gateway(v)
            .build(),
        _ => {
            return Err(TopologyError::MixedFamilies {
                node: ns.node.clone(),
                what: format!("route {dst} via {via}"),
            })
        }
    };
    send_route(ns, msg, format!("add route {dst} via {via}")).await
}

/// Send a built route to the namespace's kernel.
async fn send_route(
    ns: &Netns,
    msg: rtnetlink::packet_route::route::RouteMessage,
    op: String,
) -> Result<(), TopologyError> {
    ns.rtnl.route().add(msg).execute().await.map_err(nl(ns, op))
}

/// Add one of the cell's routes.
pub async fn add_route(ns: &Netns, r: &Route) -> Result<(), TopologyError> {
    match &r.hop {
        NextHop::Via(via) => route(ns, r.dst, *via).await,
        NextHop::Dev(dev) => route_dev(ns, r.dst, index(ns, dev).await?, dev).await,
    }
}

/// Add a route to `dst` straight out of interface `index` (`name`), with no
/// next hop (a TUN device has no neighbours).
pub async fn route_dev(
    ns: &Netns,
    dst: IpNet,
    index: u32,
    name: &str,
) -> Result<(), TopologyError> {
    let msg = match dst {
        IpNet::V4(d) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(d.network(), d.prefix_len())
            .output_interface(index)
            .build(),
        IpNet::V6(d) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(d.network(), d.prefix_len())
            .output_interface(index)
            .build(),
    };
    send_route(ns, msg, format!("add route {dst} dev {name}")).await
}

/// Every interface of `ns` as (index, name).
pub async fn all(ns: &Netns) -> Result<Vec<(u32, String)>, TopologyError> {
    let mut out = Vec::new();
    let mut links = ns.rtnl.link().get().execute();
    while let Some(msg) = links.try_next().await.map_err(nl(ns, "list links"))? {
        let name = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        if let Some(name) = name {
            out.push((msg.header.index, name));
        }
    }
    Ok(out)
}
