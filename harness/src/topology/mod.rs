//! Builds a cell's nodes and links: one network namespace per node, veth
//! pairs created directly inside their namespaces, addresses, routes,
//! sysctls and NAT rulesets. Dropping a [`Topology`] releases every
//! namespace (the kernel then removes their interfaces, rules and routes).

pub mod link;
pub mod nat;
pub mod netns;
pub mod nft;

pub use netns::Netns;

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::error::TopologyError;
use crate::model::Cell;
use crate::model::{Families, Knobs, NatProfile};

/// The interface index of the first veth end of a cell; the others follow
/// (indexes below stay free for loopback and what daemons create).
const FIRST_VETH_INDEX: u32 = 10;

/// IPv4-only cells: no IPv6 at all (its autoconfiguration would only add
/// timing-dependent noise to captures).
const IPV6_OFF: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
];

/// Cells with IPv6 addresses: no duplicate address detection (an address
/// is usable the moment it is added, so no cell waits for DAD or races
/// it), no router solicitations or advertisements (the file's routes are
/// the only ones).
const IPV6_ON: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
    ("net.ipv6.conf.all.accept_ra", "0"),
    ("net.ipv6.conf.default.accept_ra", "0"),
    ("net.ipv6.conf.default.router_solicitations", "0"),
];

/// The interface index of a segment's bridge in its namespace (nothing
/// else lives there but its ports).
const BRIDGE_INDEX: u32 = 2;

/// The live namespaces of one cell.
pub struct Topology {
    /// Node (or segment) name → namespace.
    pub nodes: BTreeMap<String, Netns>,
    /// Forwarding node → its NAT as first applied, for the outcome.
    pub nat: BTreeMap<String, (NatProfile, String)>,
    /// Node → its NAT as it is now (steps change it).
    gateways: BTreeMap<String, Gateway>,
}

/// A node's current NAT: what its ruleset is generated from.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Profile.
    pub profile: NatProfile,
    /// Public-side interface.
    pub outside: Option<String>,
    /// PPTP helper.
    pub pptp_helper: bool,
    /// Behaviour knobs (steps add blocks and move the port range).
    pub knobs: Knobs,
    /// The families of the node's addresses: those its rules act on.
    pub families: Families,
}

impl Gateway {
    /// A node that translates and blocks nothing (for rules of its own).
    pub fn plain() -> Self {
        Gateway {
            profile: NatProfile::None,
            outside: None,
            pptp_helper: false,
            knobs: Knobs::default(),
            families: Families::V4,
        }
    }

    /// The ruleset for the current state.
    pub fn ruleset(&self) -> String {
        nat::ruleset(self)
    }

    /// The nftables family of its tables.
    pub fn table_family(&self) -> &'static str {
        nat::table_family(self.families)
    }
}

impl Topology {
    /// Create everything the cell describes.
    pub async fn build(cell: &Cell) -> Result<Self, TopologyError> {
        let mut nodes = BTreeMap::new();
        let names = cell.nodes.iter().map(|n| &n.name);
        for name in names.chain(cell.segments.iter().map(|s| &s.name)) {
            nodes.insert(name.clone(), Netns::create(name)?);
        }
        let topo = Topology {
            nodes,
            nat: BTreeMap::new(),
            gateways: BTreeMap::new(),
        };
        topo.wire(cell).await?;
        let mut topo = topo;
        for n in &cell.nodes {
            let gw = Gateway {
                profile: n.nat,
                outside: n.nat_outside.clone(),
                pptp_helper: n.pptp_helper,
                knobs: n.knobs.clone(),
                families: cell.families_of(&n.name),
            };
            let ruleset = gw.ruleset();
            nft::apply(topo.node(&n.name), &gw, &ruleset, false).await?;
            topo.nat.insert(n.name.clone(), (n.nat, ruleset));
            topo.gateways.insert(n.name.clone(), gw);
        }
        topo.nat
            .retain(|name, _| cell.node(name).is_some_and(|n| n.forwarding));
        Ok(topo)
    }

    /// Change a node's NAT and load the new ruleset in place of the old one
    /// (one nft transaction; conntrack entries are kept). Returns the new
    /// state.
    pub async fn reconfigure(
        &mut self,
        node: &str,
        change: impl FnOnce(&mut Gateway),
    ) -> Result<Gateway, TopologyError> {
        let Some(gw) = self.gateways.get_mut(node) else {
            return Err(TopologyError::NoNode {
                node: node.to_string(),
            });
        };
        change(gw);
        let gw = gw.clone();
        nft::apply(self.node(node), &gw, &gw.ruleset(), true).await?;
        Ok(gw)
    }

    /// The namespace of `node` (validated to exist).
    pub fn node(&self, node: &str) -> &Netns {
        &self.nodes[node]
    }

    async fn wire(&self, cell: &Cell) -> Result<(), TopologyError> {
        // Set before any veth exists, so every interface inherits it.
        if std::path::Path::new("/proc/sys/net/ipv6").exists() {
            let on = cell.uses_ipv6();
            for (name, ns) in &self.nodes {
                // A segment's bridge only switches frames: no IPv6 of its own
                // (no MLD or link-local addresses in its captures).
                let bridge = cell.segments.iter().any(|s| &s.name == name);
                let settings = if on && !bridge { IPV6_ON } else { IPV6_OFF };
                for (key, value) in settings {
                    ns.sysctl(key, value)?;
                }
            }
        }
        self.loopbacks(cell).await?;
        // Every veth end of the cell its own index (see `link::veth`).
        let mut index = FIRST_VETH_INDEX;
        for l in &cell.links {
            self.link(l, index).await?;
            index += 2;
        }
        for s in &cell.segments {
            self.segment(s, index).await?;
            index += 2 * s.members.len() as u32;
        }
        for r in &cell.routes {
            link::add_route(self.node(&r.node), r).await?;
        }
        for n in &cell.nodes {
            let ns = self.node(&n.name);
            if n.forwarding {
                ns.sysctl("net.ipv4.ip_forward", "1")?;
                if cell.uses_ipv6() {
                    ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
                }
            }
            for (k, v) in &n.sysctl {
                ns.sysctl(k, v)?;
            }
        }
        Ok(())
    }

    /// Loopback first: inner addresses live on it, and charon talks to
    /// itself over it.
    async fn loopbacks(&self, cell: &Cell) -> Result<(), TopologyError> {
        for ns in self.nodes.values() {
            let lo = link::index(ns, "lo").await?;
            link::up(ns, lo, "lo").await?;
        }
        for e in &cell.endpoints {
            if let Some(inner) = e.inner {
                let ns = self.node(&e.node);
                let lo = link::index(ns, "lo").await?;
                link::address(ns, lo, "lo", IpNet::from(inner)).await?;
            }
        }
        Ok(())
    }

    /// A segment's bridge, and a veth from each member into it (member ends
    /// from `index` on, the bridge's ports named after their members).
    async fn segment(&self, s: &crate::model::Segment, index: u32) -> Result<(), TopologyError> {
        let sw = self.node(&s.name);
        link::bridge(sw, "br0", BRIDGE_INDEX).await?;
        for (k, m) in s.members.iter().enumerate() {
            let (ns, idx) = (self.node(&m.node), index + 2 * k as u32);
            let member = link::VethEnd {
                ns,
                name: &m.iface,
                index: idx,
            };
            let port = link::VethEnd {
                ns: sw,
                name: &m.node,
                index: idx + 1,
            };
            link::veth(member, port, s.mtu).await?;
            link::enslave(sw, idx + 1, &m.node, BRIDGE_INDEX).await?;
            link::address(ns, idx, &m.iface, m.addr).await?;
            link::up(ns, idx, &m.iface).await?;
        }
        Ok(())
    }

    /// One veth pair, its ends at `index` and `index + 1`, addressed and up.
    async fn link(&self, l: &crate::model::Link, index: u32) -> Result<(), TopologyError> {
        let (a, b) = (self.node(&l.a.node), self.node(&l.b.node));
        link::veth(
            link::VethEnd {
                ns: a,
                name: &l.a.iface,
                index,
            },
            link::VethEnd {
                ns: b,
                name: &l.b.iface,
                index: index + 1,
            },
            l.mtu,
        )
        .await?;
        for (ns, e, idx) in [(a, &l.a, index), (b, &l.b, index + 1)] {
            link::address(ns, idx, &e.iface, e.addr).await?;
            link::up(ns, idx, &e.iface).await?;
        }
        Ok(())
    }
}
