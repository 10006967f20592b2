//! Builds a cell's nodes and links: one network namespace per node, veth
//! pairs created directly inside their namespaces, addresses, routes,
//! sysctls and NAT rulesets. Dropping a [`Topology`] releases every
//! namespace (the kernel then removes their interfaces, rules and routes).

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use crate::error::TopologyError;
use crate::link;
use crate::nat::{self, NatProfile};
use crate::netns::Netns;
use crate::scenario::Cell;

/// The live namespaces of one cell.
pub struct Topology {
    /// Node name → namespace.
    pub nodes: BTreeMap<String, Netns>,
    /// Gateway → (profile, applied ruleset), for the outcome.
    pub nat: BTreeMap<String, (NatProfile, String)>,
}

impl Topology {
    /// Create everything the cell describes.
    pub async fn build(cell: &Cell) -> Result<Self, TopologyError> {
        let mut nodes = BTreeMap::new();
        for n in &cell.nodes {
            nodes.insert(n.name.clone(), Netns::create(&n.name)?);
        }
        let topo = Topology {
            nodes,
            nat: BTreeMap::new(),
        };
        topo.wire(cell).await?;
        let mut topo = topo;
        for n in &cell.nodes {
            if let (p, Some(outside)) = (n.nat, &n.nat_outside) {
                let ruleset = p.ruleset(outside, n.pptp_helper);
                nat::nft::apply(topo.node(&n.name), p, &ruleset).await?;
                topo.nat.insert(n.name.clone(), (p, ruleset));
            } else {
                topo.nat
                    .insert(n.name.clone(), (NatProfile::None, String::new()));
            }
        }
        topo.nat
            .retain(|name, _| cell.node(name).is_some_and(|n| n.forwarding));
        Ok(topo)
    }

    /// The namespace of `node` (validated to exist).
    pub fn node(&self, node: &str) -> &Netns {
        &self.nodes[node]
    }

    async fn wire(&self, cell: &Cell) -> Result<(), TopologyError> {
        // Scenarios are IPv4; IPv6 autoconfiguration would only add
        // timing-dependent noise to captures. Set before any veth exists.
        if std::path::Path::new("/proc/sys/net/ipv6").exists() {
            for ns in self.nodes.values() {
                ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
                ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
            }
        }
        // Loopback first: inner addresses live on it, and charon talks to
        // itself over it.
        for ns in self.nodes.values() {
            let lo = link::index(ns, "lo").await?;
            link::up(ns, lo, "lo").await?;
        }
        for e in &cell.endpoints {
            if let Some(inner) = e.inner {
                let ns = self.node(&e.node);
                let lo = link::index(ns, "lo").await?;
                link::address(ns, lo, "lo", Ipv4Net::new(inner, 32).expect("/32")).await?;
            }
        }
        for l in &cell.links {
            let (a, b) = (self.node(&l.a.node), self.node(&l.b.node));
            link::veth(a, &l.a.iface, b, &l.b.iface, l.mtu).await?;
            for (ns, end) in [(a, &l.a), (b, &l.b)] {
                let idx = link::index(ns, &end.iface).await?;
                link::address(ns, idx, &end.iface, end.addr).await?;
                link::up(ns, idx, &end.iface).await?;
            }
        }
        for r in &cell.routes {
            link::route(self.node(&r.node), r.dst, r.via).await?;
        }
        for n in &cell.nodes {
            let ns = self.node(&n.name);
            if n.forwarding {
                ns.sysctl("net.ipv4.ip_forward", "1")?;
            }
            for (k, v) in &n.sysctl {
                ns.sysctl(k, v)?;
            }
        }
        Ok(())
    }
}
