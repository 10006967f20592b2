//! A cell: one fully resolved, validated combination of a scenario's matrix
//! axes. Everything downstream (topology, stacks, checks) consumes only this.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr};

use super::cause::{Cause, Misconfig};
use super::class::Class;
use super::kinds::{
    Backend, CheckExpect, CheckKind, Encapsulation, Mode, NatT, PppKind, Requirement, Role,
    StackKind, TunnelExpect, WaitExpect,
};
use super::nat::{Block, Families, Knobs, NatProfile};

/// One runnable cell.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Unique name, e.g. `seed/nat=masquerade,nat_t=auto`.
    pub id: String,
    /// Scenario name (file stem unless the file sets `name`).
    pub scenario: String,
    /// The file the cell came from.
    pub file: PathBuf,
    /// Matrix axis values of this cell, in file order.
    pub axes: Vec<(String, String)>,
    /// Nodes, sorted by name.
    pub nodes: Vec<Node>,
    /// Veth pairs.
    pub links: Vec<Link>,
    /// Shared L2 segments (a bridge each).
    pub segments: Vec<Segment>,
    /// Static routes.
    pub routes: Vec<Route>,
    /// VPN endpoints.
    pub endpoints: Vec<Endpoint>,
    /// PPP link layered over the path.
    pub ppp: Option<Ppp>,
    /// Traffic checks.
    pub checks: Vec<Check>,
    /// What must be observed.
    pub expect: Expectation,
    /// Machine features the cell needs.
    pub requires: Vec<Requirement>,
    /// ESP backend pinned by the file, if any.
    pub backend: Option<Backend>,
    /// Timed events after the checks.
    pub steps: Vec<Step>,
}

impl Cell {
    /// Look up a node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The endpoint on `node`, if it has one.
    pub fn endpoint(&self, node: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.node == node)
    }

    /// The cell's matrix values as `a=b,c=d` (empty without a matrix).
    pub fn axes_label(&self) -> String {
        self.axes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every addressed interface of the cell: both ends of each link, then
    /// each segment member's.
    pub fn ends(&self) -> impl Iterator<Item = &LinkEnd> {
        let links = self.links.iter().flat_map(|l| [&l.a, &l.b]);
        links.chain(self.segments.iter().flat_map(|s| &s.members))
    }

    /// The families of node `node`'s link addresses.
    pub fn families_of(&self, node: &str) -> Families {
        Families::of(
            self.ends()
                .filter(|e| e.node == node)
                .map(|e| e.addr.addr()),
        )
    }

    /// Whether any address of the cell is IPv6 (links, inner addresses,
    /// PPP, checks).
    pub fn uses_ipv6(&self) -> bool {
        let links = self.ends().map(|e| e.addr.addr());
        let inner = self.endpoints.iter().filter_map(|e| e.inner);
        let checks = self.checks.iter().flat_map(|c| [c.src, c.dst]);
        links.chain(inner).chain(checks).any(|a| a.is_ipv6())
    }

    /// Whether check `c` goes through a tunnel: a tunnel-mode endpoint's
    /// selectors cover its source and destination (or it runs between
    /// transport-mode or PPP ends, whose SAs cover the outer addresses).
    /// A check between two hosts of one LAN is plain routed traffic.
    pub fn tunnelled(&self, c: &Check) -> bool {
        let covers = |ts: &[IpNet], a: IpAddr| ts.iter().any(|n| n.contains(&a));
        self.endpoints.iter().any(|e| {
            let (local, remote) = e.covered();
            e.mode != Mode::Tunnel
                || (covers(&local, c.src) && covers(&remote, c.dst))
                || (covers(&local, c.dst) && covers(&remote, c.src))
        }) || self.ppp.is_some()
    }

    /// Whether a step stops a daemon (`restart`, `crash`): the peer's
    /// answers to its last messages may then meet a closed port, or not,
    /// as timing decides.
    pub fn stops_daemon(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.action,
                Action::Ike {
                    op: IkeOp::Restart | IkeOp::Crash,
                    ..
                }
            )
        })
    }

    /// How long the cell is known to wait, from its file alone: its
    /// pauses and the `wait` steps it expects to time out, plus a nominal
    /// bound for an IKE exchange or PPP negotiation it expects to fail
    /// (which ends when the stack's timers give up). Only an order for
    /// sharing cells between guests: the longest start first.
    pub fn known_wait(&self) -> Duration {
        let steps: Duration = self
            .steps
            .iter()
            .map(|s| match &s.action {
                Action::Pause(d) => *d,
                Action::Wait { timeout, .. }
                    if self.expect.waits.get(&s.name) == Some(&WaitExpect::Timeout) =>
                {
                    *timeout
                }
                _ => Duration::ZERO,
            })
            .sum();
        let fails = |e: Option<TunnelExpect>, bound: u64| {
            Duration::from_secs(if e == Some(TunnelExpect::Down) {
                bound
            } else {
                0
            })
        };
        steps + fails(self.expect.tunnel, 3) + fails(self.expect.ppp, 20)
    }

    /// Whether a step waits for a packet (the capture then keeps live
    /// counts).
    pub fn waits_for_packets(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.action,
                Action::Wait {
                    event: Event::Packet { .. },
                    ..
                }
            )
        })
    }
}

/// One timed event.
#[derive(Debug, Clone)]
pub struct Step {
    /// Name (in the outcome and `expect`).
    pub name: String,
    /// What to do.
    pub action: Action,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Sleep this long (bounded by validation).
    Pause(Duration),
    /// Wait for an event on a node.
    Wait {
        /// Node.
        node: String,
        /// Event.
        event: Event,
        /// Bound.
        timeout: Duration,
    },
    /// Run these checks again.
    Checks(Vec<String>),
    /// Forget the gateway's mappings and move its outside port range (to
    /// `range`, or the next free one).
    NatReboot {
        /// Gateway.
        gw: String,
        /// The new outside port range.
        range: Option<(u16, u16)>,
    },
    /// Act on IKE at these endpoints, all at once (two rekeying together
    /// collide), while the `during` checks run; then wait (bounded by
    /// `timeout`) until it has taken effect.
    Ike {
        /// Endpoint nodes.
        nodes: Vec<String>,
        /// What to do.
        op: IkeOp,
        /// Checks run meanwhile (results named `<check>@<step>`).
        during: Vec<String>,
        /// Bound of the wait for its effect.
        timeout: Duration,
    },
    /// Change a link end.
    Link {
        /// Node.
        node: String,
        /// Interface.
        iface: String,
        /// Bring it up (`true`) or down.
        up: Option<bool>,
        /// New MTU.
        mtu: Option<u32>,
    },
    /// Start (`true`) or stop dropping a class at a node.
    Block {
        /// Node.
        node: String,
        /// Class.
        class: Block,
        /// Block or unblock.
        on: bool,
    },
}

/// What an `ike` step does at an endpoint.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Display, EnumString, IntoStaticStr, strum::VariantNames,
)]
#[strum(serialize_all = "kebab-case")]
pub enum IkeOp {
    /// Bring the tunnel up (an initiator, or a responder that knows its
    /// peer's address; again after `terminate`).
    Initiate,
    /// Delete the IKE SA and its CHILD SAs.
    Terminate,
    /// Rekey the CHILD SA (RFC 7296 section 2.8: make before break).
    RekeyChild,
    /// Rekey the IKE SA (its CHILD SAs move to the new one).
    RekeyIke,
    /// Re-authenticate: a new IKE SA from scratch (IKE_SA_INIT, IKE_AUTH)
    /// with its CHILD SAs created again, the old ones deleted.
    Reauth,
    /// Shut the daemon down as its service would and start it again with
    /// the same configuration (it initiates nothing by itself).
    Restart,
    /// Kill the daemon (SIGKILL: no DELETE sent, nothing tidied, as in a
    /// crash or a power cut) and start it again likewise.
    Crash,
}

/// Events a `wait` step can wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The endpoint's IKE SA is established.
    IkeUp,
    /// It has none established.
    IkeDown,
    /// Its CHILD SA is installed.
    ChildUp,
    /// It has none installed.
    ChildDown,
    /// Its IKE SA's peer address:port differs from the one at the step's start.
    PeerMoved,
    /// Its installed CHILD SA is a new one: rekeyed since the step's start.
    ChildRekeyed,
    /// A packet of this class crossed this interface.
    Packet {
        /// Interface.
        iface: String,
        /// Class.
        class: Class,
    },
}

impl Event {
    /// The name used in files.
    pub fn label(&self) -> String {
        match self {
            Event::IkeUp => "ike-up".into(),
            Event::IkeDown => "ike-down".into(),
            Event::ChildUp => "child-up".into(),
            Event::ChildDown => "child-down".into(),
            Event::PeerMoved => "peer-moved".into(),
            Event::ChildRekeyed => "child-rekeyed".into(),
            Event::Packet { iface, class } => format!("packet {class} on {iface}"),
        }
    }
}

/// How an endpoint authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Pre-shared key.
    Psk,
    /// Certificates from the run's test CA, at least this many bytes.
    Cert {
        /// Minimum certificate size.
        size: Option<u32>,
    },
}

/// IPsec protocol of the CHILD SA.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Display, EnumString, IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", ascii_case_insensitive)]
pub enum Proto {
    /// Encapsulating Security Payload.
    Esp,
    /// Authentication Header.
    Ah,
}

/// A node (network namespace).
#[derive(Debug, Clone)]
pub struct Node {
    /// Name.
    pub name: String,
    /// NAT profile (`none` for hosts and plain routers).
    pub nat: NatProfile,
    /// Interface on the public side, when `nat` is not `none`.
    pub nat_outside: Option<String>,
    /// Whether the node forwards packets (it has a NAT entry or routes for others).
    pub forwarding: bool,
    /// Extra `net.*` sysctls.
    pub sysctl: Vec<(String, String)>,
    /// Linux's PPTP helper on TCP 1723 (with any NAT profile).
    pub pptp_helper: bool,
    /// NAT behaviour knobs (the profile's preset plus the file's own).
    pub knobs: Knobs,
}

impl Node {
    /// Whether the node may rewrite the destination of what it forwards:
    /// a NAT's replies are addressed to its outside address until conntrack
    /// translates them back, and a forwarding (DNAT) or a NAT64 rewrites
    /// the destination.
    pub fn rewrites_destination(&self) -> bool {
        self.nat.translates()
            || self.knobs.forward_ike_to.is_some()
            || self.knobs.forward_esp_to.is_some()
    }
}

/// One end of a veth pair.
#[derive(Debug, Clone)]
pub struct LinkEnd {
    /// Node name.
    pub node: String,
    /// Interface name inside the node.
    pub iface: String,
    /// Address and prefix.
    pub addr: IpNet,
}

/// A veth pair.
#[derive(Debug, Clone)]
pub struct Link {
    /// First end.
    pub a: LinkEnd,
    /// Second end.
    pub b: LinkEnd,
    /// MTU of both ends.
    pub mtu: Option<u32>,
}

/// A shared L2 segment: a bridge in a namespace of its own (named after
/// the segment), with one veth from each member plugged into it, so
/// members reach each other by ARP and neighbour discovery as on a LAN.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Name (also its namespace's, in the path: `client1 -> lan`).
    pub name: String,
    /// The members' interfaces, in file order; each port on the bridge is
    /// named after its member's node.
    pub members: Vec<LinkEnd>,
    /// MTU of every member's interface and port.
    pub mtu: Option<u32>,
}

/// A static route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Node.
    pub node: String,
    /// Destination.
    pub dst: IpNet,
    /// Where it goes.
    pub hop: NextHop,
}

/// How a route leaves its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// Through a neighbour's address (of the destination's family).
    Via(IpAddr),
    /// Straight out of an interface, with no next-hop address: a veth has
    /// one neighbour, so this carries a family the link has no address of
    /// (an IPv6 tunnel's inner traffic over an IPv4-only link).
    Dev(String),
}

/// A VPN endpoint with everything its driver needs.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Node the daemon runs in.
    pub node: String,
    /// Which implementation runs it.
    pub stack: StackKind,
    /// Initiator or responder.
    pub role: Role,
    /// Peer endpoint's node (the first, for a responder with several).
    pub peer: String,
    /// Further initiators a responder accepts (strongSwan only).
    pub others: Vec<OtherPeer>,
    /// Where IKE is sent: an initiator's peer, or the address a responder
    /// was given (it then takes IKE only from there and can initiate).
    pub remote_addr: Option<IpAddr>,
    /// The node's own address IKE uses: toward `remote_addr` on the
    /// initiator, the address the initiator targets on the responder.
    pub local_addr: Option<IpAddr>,
    /// Own identity.
    pub id: String,
    /// Peer identity.
    pub peer_id: String,
    /// Pre-shared key.
    pub psk: String,
    /// Own inner address (tunnel mode traffic selector).
    pub inner: Option<IpAddr>,
    /// Peer's inner address.
    pub peer_inner: Option<IpAddr>,
    /// The networks behind this end (site to site): traffic selectors
    /// besides the inner address.
    pub subnets: Vec<IpNet>,
    /// The peer's.
    pub peer_subnets: Vec<IpNet>,
    /// The pool virtual IPs come from: a responder's own (it assigns them),
    /// or, for an initiator that requests one, its peer's.
    pub pool: Option<IpNet>,
    /// An initiator that requests a virtual IP (a road warrior).
    pub virtual_ip: bool,
    /// Algorithms and rekey times the file sets (else the stack's
    /// defaults).
    pub proposals: Proposals,
    /// IKE version: 1, 2, or (a responder) 0 for either.
    pub ike: u8,
    /// NAT-T mode.
    pub nat_t: NatT,
    /// IPsec mode.
    pub mode: Mode,
    /// Timers, fragmentation, MOBIKE, authentication, protocol.
    pub knobs: EndpointKnobs,
    /// What it disagrees with its peer on, on purpose (its values already
    /// the wrong ones).
    pub misconfigured: Vec<Misconfig>,
}

impl Endpoint {
    /// Its own traffic selectors in tunnel mode: its subnets, then its
    /// inner address as a host prefix (none in transport mode, where the
    /// SA covers the outer addresses).
    pub fn local_ts(&self) -> Vec<IpNet> {
        selectors(self.mode, &self.subnets, self.inner)
    }

    /// The addresses its tunnel carries, this side and the other: the
    /// selectors, with a virtual IP's pool on the side it is used.
    pub fn covered(&self) -> (Vec<IpNet>, Vec<IpNet>) {
        let (mut local, mut remote) = (self.local_ts(), self.remote_ts());
        match (self.virtual_ip, self.pool) {
            (true, Some(p)) => local.push(p),
            (false, Some(p)) => remote.push(p),
            _ => {}
        }
        (local, remote)
    }

    /// The peer's (and every further initiator's) traffic selectors.
    pub fn remote_ts(&self) -> Vec<IpNet> {
        self.remote_ts_by_peer().concat()
    }

    /// The traffic selectors of each peer: the peer's, then each further
    /// initiator's.
    pub fn remote_ts_by_peer(&self) -> Vec<Vec<IpNet>> {
        let first = selectors(self.mode, &self.peer_subnets, self.peer_inner);
        let others = self
            .others
            .iter()
            .map(|o| selectors(self.mode, &o.subnets, o.inner));
        std::iter::once(first).chain(others).collect()
    }
}

fn selectors(mode: Mode, subnets: &[IpNet], inner: Option<IpAddr>) -> Vec<IpNet> {
    if mode != Mode::Tunnel {
        return Vec::new();
    }
    subnets
        .iter()
        .copied()
        .chain(inner.map(IpNet::from))
        .collect()
}

/// An endpoint's algorithms and rekey times, as the file sets them;
/// empty: the stack's defaults. Proposals are written in strongSwan's
/// syntax (`aes256-sha256-modp2048`, `aes128gcm16-prfsha256-ecp256`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proposals {
    /// IKE proposals, in order of preference.
    pub ike: Vec<String>,
    /// ESP proposals; one with a DH group asks for PFS.
    pub esp: Vec<String>,
    /// Seconds after which the IKE SA is rekeyed.
    pub ike_rekey: Option<u32>,
    /// Seconds after which the CHILD SA is rekeyed.
    pub child_rekey: Option<u32>,
}

impl Proposals {
    /// Whether the file set any of them.
    pub fn is_set(&self) -> bool {
        *self != Proposals::default()
    }
}

/// An endpoint's settings beyond addressing and identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointKnobs {
    /// NAT keepalive interval in seconds; `None`: off.
    pub keepalive: Option<u32>,
    /// DPD interval in seconds; `None`: off.
    pub dpd: Option<u32>,
    /// IKEv2 fragmentation.
    pub fragmentation: bool,
    /// MOBIKE.
    pub mobike: bool,
    /// Authentication.
    pub auth: Auth,
    /// ESP or AH.
    pub proto: Proto,
}

impl Default for EndpointKnobs {
    /// strongSwan's defaults, which every driver shares: keepalive 20 s,
    /// DPD off, fragmentation on, MOBIKE off, PSK, ESP.
    fn default() -> Self {
        EndpointKnobs {
            keepalive: Some(20),
            dpd: None,
            fragmentation: true,
            mobike: false,
            auth: Auth::Psk,
            proto: Proto::Esp,
        }
    }
}

impl EndpointKnobs {
    /// The first knob set away from its default, by its file name (only
    /// the strongSwan driver maps them all).
    pub fn first_non_default(&self) -> Option<&'static str> {
        let d = EndpointKnobs::default();
        [
            (self.keepalive != d.keepalive, "keepalive"),
            (self.dpd != d.dpd, "dpd"),
            (self.fragmentation != d.fragmentation, "fragmentation"),
            (self.mobike != d.mobike, "mobike"),
            (self.auth != d.auth, "auth = \"cert\""),
            (self.proto != d.proto, "proto = \"ah\""),
        ]
        .into_iter()
        .find_map(|(differs, name)| differs.then_some(name))
    }
}

/// A further initiator of a responder with several peers.
#[derive(Debug, Clone)]
pub struct OtherPeer {
    /// Its node.
    pub node: String,
    /// Its IKE identity.
    pub id: String,
    /// Its inner address.
    pub inner: Option<IpAddr>,
    /// The networks behind it.
    pub subnets: Vec<IpNet>,
}

/// The programs of a user's own stack (`stack = "command"`), resolved to
/// absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Name shown in the outcome.
    pub name: String,
    /// Start program (runs for the whole cell).
    pub start: PathBuf,
    /// Initiate program (initiators).
    pub initiate: Option<PathBuf>,
    /// Status program (prints JSON).
    pub status: PathBuf,
}

/// A resolved PPP link.
#[derive(Debug, Clone)]
pub struct Ppp {
    /// L2TP or PPTP.
    pub kind: PppKind,
    /// Dialling node.
    pub client: String,
    /// Answering node.
    pub server: String,
    /// Address the client dials.
    pub server_addr: IpAddr,
    /// The server's PPP address.
    pub server_ip: IpAddr,
    /// The client's PPP address.
    pub client_ip: IpAddr,
}

/// A resolved traffic check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Name.
    pub name: String,
    /// Ping or UDP echo.
    pub kind: CheckKind,
    /// Sending node.
    pub from: String,
    /// Answering node.
    pub to: String,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// UDP or TCP port.
    pub port: Option<u16>,
    /// Probes to send (TCP: connections, one after the other).
    pub count: u32,
    /// Send ping and UDP probes at this fixed interval instead of as fast
    /// as replies come: continuous traffic over a stretch of time (a rekey).
    pub interval: Option<Duration>,
    /// The source is the sending endpoint's virtual IP, from this pool,
    /// known once its tunnel is up (`src` is then the pool's address until
    /// the check runs).
    pub src_pool: Option<IpNet>,
    /// Payload bytes of each probe (TCP: echoed per connection); `None`:
    /// the default small probe.
    pub size: Option<u32>,
    /// Don't-fragment: `Some(true)` sets DF and fragments nothing
    /// (IP_PMTUDISC_DO), `Some(false)` lets routers and the sender
    /// fragment (IP_PMTUDISC_DONT); `None` keeps the kernel's default.
    pub df: Option<bool>,
}

/// The merged expectation of a cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Expectation {
    /// IPsec tunnel up or down (absent for a file without endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelExpect>,
    /// PPP link up or down (files with a PPP layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppp: Option<TunnelExpect>,
    /// ESP encapsulation, when stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encapsulation: Option<Encapsulation>,
    /// Check name → expected result.
    pub checks: BTreeMap<String, CheckExpect>,
    /// `wait` step name → expected end.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub waits: BTreeMap<String, WaitExpect>,
    /// The root cause the cell's failure must be classified as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
}

impl Expectation {
    /// Whether it states a failure: the tunnel down, a check failing, or a
    /// wait timing out.
    pub fn is_negative(&self) -> bool {
        self.tunnel == Some(TunnelExpect::Down)
            || self.checks.values().any(|c| *c == CheckExpect::Fail)
            || self.waits.values().any(|w| *w == WaitExpect::Timeout)
    }
}
