//! The scenario file as written (TOML, via serde). Unknown fields are
//! rejected; fields that later validation may complain about are `Spanned`
//! so the error can point at their line and column.

use std::collections::BTreeMap;

use serde::Deserialize;

use toml::Spanned;

use crate::model::{
    CheckExpect, CheckKind, Encapsulation, Mode, NatT, PppKind, Role, TunnelExpect, WaitExpect,
};

/// A whole scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Name used as the prefix of every cell; defaults to the file stem.
    pub name: Option<String>,
    /// Free text shown by `vpnlab check`.
    #[serde(default)]
    pub description: String,
    /// What the cells need from the machine: `kernel-esp` (kernel IPsec).
    /// A cell whose needs are not met is reported as skipped, with the
    /// command that runs it (`--kernel`).
    #[serde(default)]
    pub requires: Vec<Spanned<String>>,
    /// Pin the ESP backend: `kernel-libipsec` (userspace, runs anywhere) or
    /// `kernel-netlink` (kernel XFRM; implies `requires = ["kernel-esp"]`).
    /// Without it, vpnlab uses kernel ESP when the kernel has it.
    pub backend: Option<Spanned<String>>,
    /// Nodes by name; each becomes a network namespace.
    pub nodes: BTreeMap<String, Spanned<NodeSpec>>,
    /// Veth pairs between nodes.
    #[serde(default)]
    pub links: Vec<Spanned<LinkSpec>>,
    /// Shared L2 segments by name (a LAN several nodes sit on), each a
    /// bridge in a namespace of its own.
    #[serde(default)]
    pub segments: BTreeMap<String, Spanned<SegmentSpec>>,
    /// Static routes.
    #[serde(default)]
    pub routes: Vec<Spanned<RouteSpec>>,
    /// VPN endpoints (one initiator and one responder per tunnel).
    #[serde(default)]
    pub endpoints: Vec<Spanned<EndpointSpec>>,
    /// A PPP link layered over the path (L2TP or PPTP), brought up after
    /// the IPsec endpoints, if any.
    pub ppp: Option<Spanned<PppSpec>>,
    /// Traffic sent through the tunnel once it is up (or tried when it is not).
    #[serde(default)]
    pub checks: Vec<Spanned<CheckSpec>>,
    /// Axes that expand this file into cells.
    #[serde(default)]
    pub matrix: MatrixSpec,
    /// Expectations; later entries whose `when` matches override earlier ones.
    #[serde(default)]
    pub expect: Vec<Spanned<ExpectSpec>>,
    /// Timed events after the checks, in order: waits, pauses, NAT reboots,
    /// link changes, blocks, checks run again.
    #[serde(default)]
    pub steps: Vec<Spanned<StepSpec>>,
}

/// A node: a host or, with `nat`, a gateway.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// NAT profile applied to traffic leaving toward `nat_outside`.
    pub nat: Option<Spanned<String>>,
    /// The neighbour node on the gateway's public side.
    pub nat_outside: Option<Spanned<String>>,
    /// Profile `netmap66`: the outside IPv6 prefix the gateway's inside
    /// prefix (its one IPv6 link not toward `nat_outside`) appears as,
    /// e.g. `"2001:db8:99::/64"`; of the inside prefix's length.
    pub nat_prefix: Option<Spanned<String>>,
    /// Profile `nat64`: the /96 that IPv4 addresses are synthesized into
    /// (RFC 6052), e.g. `"2001:db8:64::/96"`; 203.0.113.2 is then reached
    /// at 2001:db8:64::203.0.113.2. The well-known `64:ff9b::/96` is
    /// accepted, and the translator then refuses non-global IPv4
    /// addresses, as RFC 6052 section 3.1 asks.
    pub nat64_prefix: Option<Spanned<String>>,
    /// Extra per-namespace sysctls (`net.*` only).
    #[serde(default)]
    pub sysctl: BTreeMap<String, Spanned<String>>,
    /// Give the gateway Linux's PPTP connection-tracking helper (an
    /// nftables `ct helper` of type "pptp" on TCP 1723), which translates
    /// PPTP's GRE. The `win2000` profile has it already.
    #[serde(default)]
    pub pptp_helper: bool,
    /// NAT behaviour knobs that refine the profile (RFC 4787 terms).
    pub behaviour: Option<Spanned<BehaviourSpec>>,
}

/// A gateway's NAT behaviour beyond its profile. Each knob names the
/// RFC 4787 behaviour it models.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BehaviourSpec {
    /// Port assignment (RFC 4787 4.1 and 4.2.1): `preserve` keeps the
    /// inside source port when it is free, so one inside address:port keeps
    /// one outside port for every destination (endpoint-independent mapping,
    /// Linux's default); `random` draws a new port for every new destination
    /// (address-and-port-dependent mapping, a "symmetric" NAT).
    pub ports: Option<Spanned<String>>,
    /// Outside ports mappings are taken from, e.g. `"20000-29999"`
    /// (RFC 4787 4.2.1); default: the inside port when free.
    pub port_range: Option<Spanned<String>>,
    /// UDP mapping timeout in seconds (RFC 4787 4.3, REQ-5 asks for at
    /// least 120): a mapping with no packet for this long is forgotten.
    pub udp_timeout: Option<Spanned<u32>>,
    /// Packet classes dropped in both directions: `esp`, `ah`, `udp-500`,
    /// `udp-4500`, `fragments` (IP fragments, dropped before reassembly:
    /// RFC 4787 section 11, REQ-14 asks NATs to forward them), `non-udp`,
    /// `packet-too-big`; or a port or protocol: `tcp:443`, `udp:1701`,
    /// `proto:47` (GRE).
    #[serde(default)]
    pub block: Vec<Spanned<String>>,
    /// Percentage of forwarded packets dropped at random (0-100).
    pub loss: Option<Spanned<u8>>,
    /// Static forwarding of IKE and NAT-T (UDP 500 and 4500) arriving on the
    /// public side to this inside address: how a server sits behind a NAT.
    pub forward_ike_to: Option<Spanned<String>>,
    /// Static forwarding of raw ESP (IP protocol 50) arriving on the public
    /// side to this inside address: a server behind the NAT with NAT-T off
    /// ("IPsec passthrough"; with `forward_ike_to` for its IKE).
    pub forward_esp_to: Option<Spanned<String>>,
    /// Clamp the TCP MSS of forwarded SYNs to this many bytes (536-9000):
    /// how a gateway keeps TCP segments small enough for a tunnel whose
    /// path MTU discovery is broken (RFC 4459 section 3.2).
    pub mss_clamp: Option<Spanned<u16>>,
    /// Hairpinning (RFC 4787 section 6, REQ-9) of that forwarding: inside
    /// hosts reach the forwarded server through the gateway's own address.
    /// (Dynamic mappings are not hairpinned: Linux masquerade cannot.)
    #[serde(default)]
    pub hairpin: Option<Spanned<bool>>,
}

/// One end of a link.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkEnd {
    /// Node name.
    pub node: Spanned<String>,
    /// Address with prefix length, e.g. `192.168.1.2/24`.
    pub addr: Spanned<String>,
    /// Interface name inside the node; defaults to `to-<other node>`.
    pub iface: Option<Spanned<String>>,
}

/// A veth pair.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// First end.
    pub a: LinkEnd,
    /// Second end.
    pub b: LinkEnd,
    /// MTU of both ends (default: the kernel's 1500).
    pub mtu: Option<Spanned<u32>>,
}

/// A shared L2 segment: every member gets an interface on one LAN (default
/// name `to-<segment>`), and they reach each other by ARP or neighbour
/// discovery through a bridge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    /// The nodes on it, each with its address (all in one subnet).
    pub members: Vec<LinkEnd>,
    /// MTU of every member's interface (default: the kernel's 1500).
    pub mtu: Option<Spanned<u32>>,
}

/// A static route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Node the route is installed in.
    pub node: Spanned<String>,
    /// Destination prefix, or `default`.
    pub to: Spanned<String>,
    /// Next-hop address (must be on one of the node's links).
    pub via: Option<Spanned<String>>,
    /// Or the node's interface the route leaves by, with no next-hop
    /// address (`dev = "to-gw"`): for a destination of a family the link
    /// has no address of, such as an IPv6 peer's inner address reached
    /// through an IPv4-only link with kernel IPsec.
    pub dev: Option<Spanned<String>>,
}

/// A VPN endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Node the daemon runs in.
    pub node: Spanned<String>,
    /// Which implementation: `strongswan`, `libreswan` or `command` (see
    /// `command`). May be left out when `matrix.stack.<node>` sets it.
    pub stack: Option<Spanned<String>>,
    /// `initiator` or `responder`.
    pub role: Spanned<Role>,
    /// Node of the peer endpoint. A strongSwan responder may list several
    /// initiators (`["client1", "client2"]`): one daemon, one SA per client.
    pub peer: Spanned<Peers>,
    /// Address IKE is sent to: an initiator's (default: the peer node's
    /// only address), or a responder's, which then takes IKE only from
    /// there and may be asked to initiate.
    pub peer_addr: Option<Spanned<String>>,
    /// IKE identity.
    pub id: Spanned<String>,
    /// Pre-shared key (both ends must agree; with `auth = "psk"`).
    pub psk: Option<Spanned<String>>,
    /// Inner address (put on the node's loopback; the tunnel's traffic selector).
    pub inner: Option<Spanned<String>>,
    /// Site to site: the networks behind this end (`["10.1.0.0/24"]`),
    /// its traffic selectors (with `inner`, if set too). The node's hosts
    /// route through it; it forwards their traffic into the tunnel.
    pub subnets: Option<Spanned<Vec<Spanned<String>>>>,
    /// A responder's pool of virtual IPs (`"10.3.0.0/24"`) for initiators
    /// that ask for one (`virtual_ip = true`): remote access.
    pub pool: Option<Spanned<String>>,
    /// An initiator asks its peer's pool for a virtual IP, its inner
    /// address for the tunnel (checks from it use it as their source).
    pub virtual_ip: Option<Spanned<bool>>,
    /// IKE version, 1 or 2; a responder may take 0: either, as its
    /// initiators ask (strongSwan's `version = 0`).
    #[serde(default = "default_ike")]
    pub ike: Spanned<u8>,
    /// NAT traversal: `auto`, `force` or `off`.
    #[serde(default = "default_nat_t")]
    pub nat_t: Spanned<NatT>,
    /// IPsec mode.
    #[serde(default = "default_mode")]
    pub mode: Spanned<Mode>,
    /// The programs that drive a stack vpnlab has no driver for (with
    /// `stack = "command"`; the contract is in the README).
    pub command: Option<Spanned<CommandSpec>>,
    /// NAT keepalive interval (`"1s"`, RFC 3948 section 4) or `"off"`;
    /// default strongSwan's 20 s. Sent only by an end behind NAT.
    pub keepalive: Option<Spanned<String>>,
    /// Dead peer detection interval (`"1s"`) or `"off"` (the default). An
    /// IKEv2 DPD exchange from a new address:port lets the peer follow it
    /// (RFC 7296 2.23).
    pub dpd: Option<Spanned<String>>,
    /// IKEv2 fragmentation (RFC 7383): `"yes"` (strongSwan's default) or
    /// `"no"`.
    pub fragmentation: Option<Spanned<String>>,
    /// MOBIKE (RFC 4555): `"no"` (the default: IKE stays on port 500 without
    /// NAT, and a peer's new address is followed by implicit update) or
    /// `"yes"` (the initiator announces address changes itself; strongSwan
    /// adds NAT-D payloads to DPD exchanges to notice a NAT's new mapping).
    pub mobike: Option<Spanned<String>>,
    /// Authentication: `psk` (the default) or `cert` (a per-run test CA
    /// issues both ends' certificates).
    pub auth: Option<Spanned<String>>,
    /// With `auth = "cert"`: the certificate's size in bytes at least
    /// (padded with extra names), to make IKE_AUTH fragment.
    pub cert_size: Option<Spanned<u32>>,
    /// IPsec protocol: `esp` (the default) or `ah` (integrity only; covers
    /// the IP addresses, so a NAT breaks it).
    pub proto: Option<Spanned<String>>,
    /// IKE proposals in strongSwan's syntax, in order of preference
    /// (`["aes256-sha256-modp2048"]`; default: the stack's own). Peers that
    /// share none fail with NO_PROPOSAL_CHOSEN.
    pub ike_proposals: Option<Spanned<Vec<Spanned<String>>>>,
    /// ESP proposals (`["aes128gcm16"]`; a DH group in one asks for PFS:
    /// `"aes256-sha256-modp2048"`).
    pub esp_proposals: Option<Spanned<Vec<Spanned<String>>>>,
    /// Rekey the IKE SA after this long (`"30s"`, `"10m"`, `"1h"`).
    pub ike_rekey: Option<Spanned<String>>,
    /// Rekey the CHILD SA after this long (small values rekey within a
    /// cell; `wait = { event = "child-rekeyed" }` sees it).
    pub child_rekey: Option<Spanned<String>>,
    /// Disagreements with the peer this end has on purpose, in every cell
    /// (`["psk"]`; `psk`, `identity`, `ike-version`, `traffic-selectors`,
    /// and with `auth = "cert"` `cert-untrusted`, `cert-expired`): its own
    /// differing `psk` or `ike` where the file writes one, else a wrong
    /// value vpnlab derives (a certificate from a CA the peer does not
    /// trust, or one that expired a week ago). Each cell must then expect
    /// the tunnel down or state its `cause`.
    pub misconfigured: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One peer node, or (responders) several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Peers {
    /// A single peer.
    One(String),
    /// Several initiators.
    Many(Vec<String>),
}

impl Peers {
    /// The first (or only) peer.
    pub fn first(&self) -> &String {
        static NONE: String = String::new();
        match self {
            Peers::One(p) => p,
            Peers::Many(v) => v.first().unwrap_or(&NONE),
        }
    }

    /// Every peer.
    pub fn all(&self) -> Vec<&String> {
        match self {
            Peers::One(p) => vec![p],
            Peers::Many(v) => v.iter().collect(),
        }
    }
}

/// A user's own stack, driven through three programs (paths relative to
/// the scenario file).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// Shown as the endpoint's stack in the outcome, e.g. `my-ike 1.2`.
    pub name: Option<Spanned<String>>,
    /// Runs for the whole cell (configure, then run the daemon in the
    /// foreground); stopped with SIGTERM.
    pub start: Spanned<String>,
    /// Brings the tunnel up; exit status 0 means up (initiators only).
    pub initiate: Option<Spanned<String>>,
    /// Prints the endpoint's SAs as JSON; exits non-zero until ready.
    pub status: Spanned<String>,
}

fn default_ike() -> Spanned<u8> {
    Spanned::new(0..0, 2)
}
fn default_nat_t() -> Spanned<NatT> {
    Spanned::new(0..0, NatT::Auto)
}
fn default_mode() -> Spanned<Mode> {
    Spanned::new(0..0, Mode::Tunnel)
}

/// A PPP link between two nodes: the seed case's L2TP (xl2tpd and pppd on
/// both ends, UDP 1701, protected by the file's IPsec endpoints in
/// transport mode) or PPTP (pptpd and the pptp client under pppd; TCP 1723
/// control, GRE data).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PppSpec {
    /// `l2tp` or `pptp`.
    pub kind: Spanned<PppKind>,
    /// The node that dials (LAC / PPTP client).
    pub client: Spanned<String>,
    /// The node that answers (LNS / PPTP server).
    pub server: Spanned<String>,
    /// Address the client dials (default: the server's only address).
    pub server_addr: Option<Spanned<String>>,
    /// The server's address on the PPP link.
    pub server_ip: Spanned<String>,
    /// The address the server gives the client.
    pub client_ip: Spanned<String>,
}

/// A traffic check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Unique name, referenced from `expect.checks`.
    pub name: Spanned<String>,
    /// `ping`, `udp` or `tcp`.
    pub kind: Spanned<CheckKind>,
    /// Sending node (uses its endpoint's inner address unless `src` is set).
    pub from: Spanned<String>,
    /// Receiving node (its endpoint's inner address unless `dst` is set).
    pub to: Spanned<String>,
    /// Explicit source address.
    pub src: Option<Spanned<String>>,
    /// Explicit destination address.
    pub dst: Option<Spanned<String>>,
    /// Port of the echo responder (udp and tcp).
    pub port: Option<Spanned<u16>>,
    /// Payload bytes per probe: ICMP echo data or UDP payload (1-65000;
    /// larger than the path MTU, it is fragmented or, with `df = true`,
    /// refused), or the bytes a TCP connection has echoed (1-16777216,
    /// default 1000).
    pub size: Option<Spanned<u32>>,
    /// Don't fragment: `true` sets DF and never fragments (a packet larger
    /// than the path MTU fails), `false` clears it so routers may fragment;
    /// default: the kernel's path MTU discovery.
    pub df: Option<Spanned<bool>>,
    /// `ppp`: send over the PPP link, between its two addresses (from the
    /// PPP client to the PPP server).
    pub over: Option<Spanned<Over>>,
    /// How many probes; all must be answered for the check to pass.
    #[serde(default = "default_count")]
    pub count: Spanned<u32>,
    /// Ping and UDP: send a probe every interval (`"10ms"`) rather than
    /// as fast as replies come, for continuous traffic over a stretch of
    /// time (`count` × `interval`).
    pub interval: Option<Spanned<String>>,
}

fn default_count() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}

/// What a check is sent over, when not the IPsec tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Over {
    /// The scenario's PPP link.
    Ppp,
}

/// An axis's values as written.
pub type AxisValues = Spanned<Vec<Spanned<String>>>;

/// Matrix axes.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MatrixSpec {
    /// Gateway node → NAT profiles to try.
    #[serde(default)]
    pub nat: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    /// NAT-T modes to try (applied to every endpoint).
    pub nat_t: Option<Spanned<Vec<Spanned<NatT>>>>,
    /// Endpoint node → stacks to try there (axis `stack.<node>`): two
    /// entries give the interoperability grid.
    #[serde(default)]
    pub stack: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    /// NAT keepalive intervals to try (`"off"`, `"1s"`) on every endpoint
    /// that does not set its own (likewise `dpd`, `fragmentation` and
    /// `mobike`).
    pub keepalive: Option<Spanned<Vec<Spanned<String>>>>,
    /// DPD intervals to try (`"off"`, `"1s"`).
    pub dpd: Option<Spanned<Vec<Spanned<String>>>>,
    /// Gateway node → hairpinning on/off to try (axis `hairpin`; the node
    /// needs `behaviour.forward_ike_to`).
    #[serde(default)]
    pub hairpin: BTreeMap<String, Spanned<Vec<Spanned<bool>>>>,
    /// IKEv2 fragmentation settings to try (`"no"`, `"yes"`).
    pub fragmentation: Option<Spanned<Vec<Spanned<String>>>>,
    /// Node → `behaviour` knob → values to try, as strings, `"off"` for
    /// the knob unset (axis `<knob>`, or `<knob>.<node>` when several
    /// nodes vary one knob): `mss_clamp = ["off", "1200"]`,
    /// `forward_esp_to`, `block` (comma-separated), `loss`,
    /// `udp_timeout`, `port_range`, `ports`.
    #[serde(default)]
    pub behaviour: BTreeMap<String, BTreeMap<String, AxisValues>>,
    /// Endpoint node → IKE proposals to try, each value comma-separated
    /// proposals (axis `ike_proposals`, or `ike_proposals.<node>` when
    /// several nodes vary theirs): a proposal mismatch and its fix.
    #[serde(default)]
    pub ike_proposals: BTreeMap<String, AxisValues>,
    /// Endpoint node → ESP proposals to try, each a comma-separated list
    /// (axis `esp_proposals`, or `esp_proposals.<node>`): e.g. PFS at
    /// CHILD SA rekeying or not, a PFS mismatch and its fix. A node's IKE
    /// and ESP proposals are not both varied.
    #[serde(default)]
    pub esp_proposals: BTreeMap<String, AxisValues>,
    /// MOBIKE settings to try (`"no"`, `"yes"`).
    pub mobike: Option<Spanned<Vec<Spanned<String>>>>,
    /// Endpoint node → misconfigurations to try, `"none"` for a correct
    /// end (axis `misconfigured`, or `misconfigured.<node>` when several
    /// nodes vary): a field failure and its flip partner.
    #[serde(default)]
    pub misconfigured: BTreeMap<String, AxisValues>,
}

/// One expectation entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// Axis → value (or list of values) this entry applies to; absent = all cells.
    #[serde(default)]
    pub when: BTreeMap<String, Spanned<OneOrMany>>,
    /// Tunnel state.
    pub tunnel: Option<Spanned<TunnelExpect>>,
    /// PPP link state (`up`: addresses negotiated).
    pub ppp: Option<Spanned<TunnelExpect>>,
    /// ESP encapsulation on the wire.
    pub encapsulation: Option<Spanned<Encapsulation>>,
    /// Check name → pass/fail. A check run again by a step is named
    /// `<check>@<step>`.
    #[serde(default)]
    pub checks: BTreeMap<String, Spanned<CheckExpect>>,
    /// `wait` step name → `seen` or `timeout`.
    #[serde(default)]
    pub waits: BTreeMap<String, Spanned<WaitExpect>>,
    /// The root cause a failure must be classified as (`vpnlab check
    /// --help` lists them), e.g. `"psk-mismatch"`.
    pub cause: Option<Spanned<String>>,
}

/// One timed event. Exactly one action field is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Name used in the outcome and in `expect` (default `step<N>`).
    pub name: Option<Spanned<String>>,
    /// A bounded pause, e.g. `"5s"` (for timeouts to expire; at most 60 s).
    pub pause: Option<Spanned<String>>,
    /// Wait for an event, bounded by its timeout.
    pub wait: Option<Spanned<WaitSpec>>,
    /// Run these checks again (by name); results are named `<check>@<step>`.
    pub checks: Option<Spanned<Vec<Spanned<String>>>>,
    /// Reboot this gateway's NAT: forget every mapping and move to another
    /// outside port range.
    pub nat_reboot: Option<Spanned<String>>,
    /// Change a link end: down, up, or a new MTU.
    pub link: Option<Spanned<LinkStepSpec>>,
    /// With `nat_reboot`: the outside port range after the reboot
    /// (`"30000-39999"`; default: the next range not in use).
    pub port_range: Option<Spanned<String>>,
    /// Act on IKE: initiate, terminate, rekey, re-authenticate, restart.
    pub ike: Option<Spanned<IkeStepSpec>>,
    /// Start dropping a packet class at a node (see `behaviour.block`).
    pub block: Option<Spanned<BlockStepSpec>>,
    /// Stop dropping it.
    pub unblock: Option<Spanned<BlockStepSpec>>,
}

/// What a `wait` step waits for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitSpec {
    /// `ike-up`, `ike-down`, `child-up`, `child-down` (of the endpoint on
    /// `node`), `peer-moved` (its IKE SA's peer address:port changes),
    /// `child-rekeyed` (its installed CHILD SA is a new one) or
    /// `packet` (a packet of `class` crosses `iface` of `node`).
    pub event: Spanned<String>,
    /// Node the event is observed on.
    pub node: Spanned<String>,
    /// Interface (for `packet`).
    pub iface: Option<Spanned<String>>,
    /// Packet class (for `packet`): `ike-500`, `ike-4500`, `esp-in-udp`,
    /// `natt-keepalive`, `esp`, `ah`, `fragment-first`.
    pub class: Option<Spanned<String>>,
    /// Bound, e.g. `"5s"` (at most 60 s).
    pub timeout: Spanned<String>,
}

/// An `ike` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IkeStepSpec {
    /// The endpoint's node; a list acts at all of them at once (both ends
    /// rekeying together collide, RFC 7296 section 2.8.1).
    pub node: Spanned<Peers>,
    /// `initiate` (an initiator, or a responder with `peer_addr`),
    /// `terminate`, `rekey-child`, `rekey-ike`, `reauth`, `restart` or
    /// `crash`.
    pub action: Spanned<String>,
    /// Checks to run while it happens (with `interval`, continuous
    /// traffic across a rekey); results are named `<check>@<step>`.
    #[serde(default)]
    pub during: Vec<Spanned<String>>,
    /// How long to wait for its effect (the tunnel up, down, or a new SA
    /// installed and the old one gone), e.g. `"5s"`; default 5 s.
    pub timeout: Option<Spanned<String>>,
}

/// A `link` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkStepSpec {
    /// Node.
    pub node: Spanned<String>,
    /// Interface in the node.
    pub iface: Spanned<String>,
    /// `true` up, `false` down.
    pub up: Option<Spanned<bool>>,
    /// New MTU.
    pub mtu: Option<Spanned<u32>>,
}

/// A `block`/`unblock` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockStepSpec {
    /// A forwarding node.
    pub node: Spanned<String>,
    /// Packet class (see `behaviour.block`).
    pub class: Spanned<String>,
}

/// A `when` value.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Any of these values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a slice-like vector.
    pub fn values(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}
