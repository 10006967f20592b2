//! The IPsec endpoints: each on its own (node, peers, stack and its
//! programs, IKE version, knobs, inner address), then each against its
//! peers (roles, keys, versions, modes, where IKE is sent). What a cell
//! needs of an endpoint is resolved here, once, into an [`EndpointPlan`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use std::path::Path;

use toml::Spanned;

use super::super::file::{CommandSpec, EndpointSpec, Peers, ScenarioFile};
use super::diag::{known_node, known_stack, sp, Diags};
use super::knobs::{self, KnobChoice};
use super::matrix::{Axes, Choice, Varies};
use super::network::Network;
use super::routing::forwarded_to;
use crate::model::{
    self as cell, known, Families, Misconfig, Mode, NatT, Role, StackKind, StackName,
};

/// The validated endpoints.
#[derive(Default)]
pub(super) struct Endpoints {
    /// Those that validated, in file order, with what a cell needs.
    pub plans: Vec<EndpointPlan>,
    /// Each endpoint node's inner address.
    pub inner_of: BTreeMap<String, IpAddr>,
    /// Every inner address, with the field that declares it.
    pub inner_seen: BTreeMap<IpAddr, String>,
    /// Each endpoint node's `subnets`.
    pub subnets_of: BTreeMap<String, Vec<IpNet>>,
    /// Each responder's virtual IP pool.
    pub pool_of: BTreeMap<String, IpNet>,
    /// The initiators that ask for a virtual IP, with their peer (whose
    /// pool it comes from).
    pub vip: BTreeMap<String, String>,
    /// The nodes with an endpoint.
    pub nodes: BTreeSet<String>,
}

/// What validation resolved for `endpoints[index]`.
pub(super) struct EndpointPlan {
    pub index: usize,
    /// The peer's endpoint (the first peer's, for a responder with several).
    pub peer: usize,
    /// The further peers' endpoints.
    pub others: Vec<usize>,
    /// Where an initiator sends IKE (`None` for a responder).
    pub remote_addr: Option<IpAddr>,
    pub stack: Choice<StackKind>,
    pub nat_t: Choice<NatT>,
    pub knobs: KnobChoice,
    pub proposals: Choice<cell::Proposals>,
    pub misconfigured: Choice<Vec<Misconfig>>,
}

/// What an endpoint resolves to on its own.
struct Declared {
    stack: Choice<StackKind>,
    knobs: KnobChoice,
    proposals: Choice<cell::Proposals>,
    misconfigured: Choice<Vec<Misconfig>>,
}

/// What it resolves to against its peers.
struct Paired {
    peer: usize,
    others: Vec<usize>,
    remote_addr: Option<IpAddr>,
}

/// Validate every endpoint, on its own and then against its peers.
pub(super) fn validate(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    path: &Path,
    net: &Network,
    axes: &Axes,
) -> Endpoints {
    let mut eps = Endpoints {
        nodes: f
            .endpoints
            .iter()
            .map(|e| e.get_ref().node.get_ref().clone())
            .collect(),
        ..Endpoints::default()
    };
    let declared: Vec<Option<Declared>> = (0..f.endpoints.len())
        .map(|i| declared(d, f, path, net, axes, i, &mut eps))
        .collect();
    let paired: Vec<Option<Paired>> = (0..f.endpoints.len())
        .map(|i| paired(d, f, net, i))
        .collect();
    for (i, (own, pair)) in declared.into_iter().zip(paired).enumerate() {
        let e = f.endpoints[i].get_ref();
        let nat_t = axes.choice(&Varies::NatT, *e.nat_t.get_ref(), |v| v.parse().ok());
        if let (Some(own), Some(pair), Some(nat_t)) = (own, pair, nat_t) {
            eps.plans.push(EndpointPlan {
                index: i,
                peer: pair.peer,
                others: pair.others,
                remote_addr: pair.remote_addr,
                stack: own.stack,
                nat_t,
                knobs: own.knobs,
                proposals: own.proposals,
                misconfigured: own.misconfigured,
            });
        }
    }
    eps
}

/// Check `endpoints[i]` on its own.
fn declared(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    path: &Path,
    net: &Network,
    axes: &Axes,
    i: usize,
    eps: &mut Endpoints,
) -> Option<Declared> {
    let e = f.endpoints[i].get_ref();
    let field = format!("endpoints[{i}]");
    known_node(d, &net.nodes, &e.node, format!("{field}.node"));
    for p in e.peer.get_ref().all() {
        let p = Spanned::new(sp(&e.peer), p.clone());
        known_node(d, &net.nodes, &p, format!("{field}.peer"));
    }
    if let Peers::Many(v) = e.peer.get_ref() {
        if *e.role.get_ref() != Role::Responder || v.is_empty() {
            d.err(
                sp(&e.peer),
                format!("{field}.peer"),
                "only a responder may list several peers (and at least one)",
            );
        }
    }
    let stack = stack(d, f, path, axes, i);
    let responder = *e.role.get_ref() == Role::Responder;
    match *e.ike.get_ref() {
        1 | 2 => {}
        0 if responder => {}
        0 => d.err(
            sp(&e.ike),
            format!("{field}.ike"),
            "an initiator speaks one IKE version: 1 or 2 (0, either, is a responder's)",
        ),
        _ => d.err(
            sp(&e.ike),
            format!("{field}.ike"),
            "IKE version must be 1 or 2 (or, on a responder, 0: either)",
        ),
    }
    let knobs = knobs::endpoint_knobs(d, &f.endpoints[i], &field);
    if let Some(inner) = &e.inner {
        self::inner(d, net, eps, e, inner, &field);
    }
    if let Some(s) = &e.subnets {
        let list = subnets(d, s, &field);
        eps.subnets_of.insert(e.node.get_ref().clone(), list);
    }
    virtual_ips(d, net, eps, e, &field);
    let proposals = super::proposals::of(d, e, axes, &field);
    let misconfigured = super::misconfig::of(d, e, axes, &field);
    if let Some(p) = e.psk.as_ref().filter(|p| p.get_ref().is_empty()) {
        if !super::misconfig::may(f, e.node.get_ref(), Misconfig::Psk) {
            d.err(
                sp(p),
                format!("{field}.psk"),
                "empty: give a pre-shared key (or declare `misconfigured = [\"psk\"]` to test an empty one)",
            );
        }
    }
    Some(Declared {
        stack: stack?,
        knobs: knobs.choices(axes)?,
        proposals: proposals?,
        misconfigured: misconfigured?,
    })
}

/// The endpoint's stack in every cell: its own `stack`, or the values of
/// its axis `stack.<node>` (which win). `None` after reporting why not.
fn stack(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    path: &Path,
    axes: &Axes,
    i: usize,
) -> Option<Choice<StackKind>> {
    let e = f.endpoints[i].get_ref();
    let field = format!("endpoints[{i}]");
    let node = e.node.get_ref();
    match &e.stack {
        Some(st) => known_stack(d, st, format!("{field}.stack")),
        None if !f.matrix.stack.contains_key(node) => d.err(
            sp(&f.endpoints[i]),
            format!("{field}.stack"),
            format!(
                "missing: set `stack` ({}) or give the node an axis `matrix.stack.{node}`",
                known::<StackName>(),
            ),
        ),
        None => {}
    }
    // A `command` stack needs its programs, in every cell it can be in.
    let stacks: Vec<&str> = match f.matrix.stack.get(node) {
        Some(v) => v.get_ref().iter().map(|x| x.get_ref().as_str()).collect(),
        None => e.stack.iter().map(|x| x.get_ref().as_str()).collect(),
    };
    match &e.command {
        None if stacks.contains(&"command") => d.err(
            sp(&f.endpoints[i]),
            format!("{field}.command"),
            "stack `command` needs `command = { start = …, status = …, initiate = … }`",
        ),
        Some(c) => programs(d, path, e, c, &field),
        None => {}
    }
    let command = e.command.as_ref().map(|c| command_spec(path, c.get_ref()));
    let kind = |name: &str| match name.parse::<StackName>().ok()? {
        StackName::Strongswan => Some(StackKind::StrongSwan),
        StackName::Libreswan => Some(StackKind::Libreswan),
        StackName::Command => command.clone().map(StackKind::Command),
    };
    match axes.varying(&Varies::Stack(node.clone())) {
        Some(axis) => axes.varied(axis, kind),
        None => kind(e.stack.as_ref()?.get_ref()).map(Choice::Fixed),
    }
}

/// A `command` stack's programs exist and are executable; an initiator
/// has an `initiate` program.
fn programs(
    d: &mut Diags<'_>,
    path: &Path,
    e: &EndpointSpec,
    c: &Spanned<CommandSpec>,
    field: &str,
) {
    let base = path.parent().unwrap_or(Path::new("."));
    let progs = [
        ("start", Some(&c.get_ref().start)),
        ("status", Some(&c.get_ref().status)),
        ("initiate", c.get_ref().initiate.as_ref()),
    ];
    for (name, prog) in progs {
        let Some(prog) = prog else {
            if *e.role.get_ref() == Role::Initiator {
                d.err(
                    sp(c),
                    format!("{field}.command.initiate"),
                    "an initiator needs an `initiate` program",
                );
            }
            continue;
        };
        if let Err(m) = executable(&base.join(prog.get_ref())) {
            d.err(sp(prog), format!("{field}.command.{name}"), m);
        }
    }
}

/// Why a command stack's program cannot be run.
#[derive(Debug, thiserror::Error)]
enum NotRunnable {
    #[error("{} is not an executable file (chmod +x {})", .0.display(), .0.display())]
    NotExecutable(std::path::PathBuf),
    #[error("{path}: {err}", path = .0.display(), err = .1)]
    Unreadable(std::path::PathBuf, std::io::Error),
}

/// Whether `p` is a file vpnlab may execute.
fn executable(p: &Path) -> Result<(), NotRunnable> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(NotRunnable::NotExecutable(p.to_path_buf())),
        Err(e) => Err(NotRunnable::Unreadable(p.to_path_buf(), e)),
    }
}

/// The programs with absolute paths (they are relative to the file).
fn command_spec(path: &Path, c: &CommandSpec) -> cell::CommandSpec {
    let base = path.parent().unwrap_or(Path::new("."));
    let abs = |p: &str| std::path::absolute(base.join(p)).unwrap_or(base.join(p));
    cell::CommandSpec {
        name: c
            .name
            .as_ref()
            .map_or_else(|| "command".to_string(), |n| n.get_ref().clone()),
        start: abs(c.start.get_ref()),
        initiate: c.initiate.as_ref().map(|x| abs(x.get_ref())),
        status: abs(c.status.get_ref()),
    }
}

/// The inner address: unique, and outside every link subnet.
fn inner(
    d: &mut Diags<'_>,
    net: &Network,
    eps: &mut Endpoints,
    e: &EndpointSpec,
    inner: &Spanned<String>,
    field: &str,
) {
    let Some(a) = d.addr(inner, &format!("{field}.inner")) else {
        return;
    };
    if let Some(prev) = eps
        .inner_seen
        .insert(a, field.to_string())
        .or_else(|| net.addrs.get(&a).cloned())
    {
        d.err(
            sp(inner),
            format!("{field}.inner"),
            format!("duplicate address {a} (also at {prev})"),
        );
    } else if let Some((subnet, l)) = net.subnets.iter().find(|(n, _)| n.contains(&a)) {
        d.err(
            sp(inner),
            format!("{field}.inner"),
            format!("inner address {a} lies in link subnet {subnet} of {l}"),
        );
    }
    eps.inner_of.insert(e.node.get_ref().clone(), a);
}

/// `pool` (a responder's, a network prefix apart from every link) and
/// `virtual_ip` (an initiator's, instead of an inner address).
fn virtual_ips(
    d: &mut Diags<'_>,
    net: &Network,
    eps: &mut Endpoints,
    e: &EndpointSpec,
    field: &str,
) {
    let node = e.node.get_ref().clone();
    let role = *e.role.get_ref();
    if let Some(p) = &e.pool {
        let f = format!("{field}.pool");
        if role != Role::Responder {
            d.err(
                sp(p),
                &f,
                "a pool is a responder's: it assigns virtual IPs to initiators",
            );
        } else if let Some(n) = d.prefix(p, &f) {
            if n.trunc() != n || n.prefix_len() + 2 > n.max_prefix_len() {
                let msg = format!(
                    "{n} is not a network prefix with room for hosts (e.g. \"10.3.0.0/24\")"
                );
                d.err(sp(p), &f, msg);
            } else if let Some((s, l)) = net
                .subnets
                .iter()
                .find(|(s, _)| s.contains(&n.network()) || n.contains(&s.network()))
            {
                let msg = format!(
                    "{n} overlaps subnet {s} of {l}: a pool's addresses exist only inside tunnels"
                );
                d.err(sp(p), &f, msg);
            } else {
                eps.pool_of.insert(node.clone(), n);
            }
        }
    }
    let Some(v) = e.virtual_ip.as_ref().filter(|v| *v.get_ref()) else {
        return;
    };
    let f = format!("{field}.virtual_ip");
    if role != Role::Initiator {
        d.err(sp(v), &f, "only an initiator asks for a virtual IP");
    } else if e.inner.is_some() || e.subnets.is_some() {
        d.err(
            sp(v),
            &f,
            "a virtual IP is the initiator's inner address: leave out `inner` and `subnets`",
        );
    } else {
        eps.vip.insert(node, e.peer.get_ref().first().clone());
    }
}

impl Endpoints {
    /// The pool node `n`'s virtual IP comes from, if it asks for one.
    pub(super) fn vip_pool(&self, n: &str) -> Option<IpNet> {
        self.pool_of.get(self.vip.get(n)?).copied()
    }
}

/// `subnets`: network prefixes (no host bits), not overlapping, of one
/// family. (One may hold the node's own IKE address: the stacks exempt
/// IKE from their policies.)
fn subnets(d: &mut Diags<'_>, s: &Spanned<Vec<Spanned<String>>>, field: &str) -> Vec<IpNet> {
    let field = format!("{field}.subnets");
    if s.get_ref().is_empty() {
        d.err(
            sp(s),
            &field,
            "list at least one subnet (or leave `subnets` out)",
        );
    }
    let mut out: Vec<IpNet> = Vec::new();
    for x in s.get_ref() {
        let Some(n) = d.prefix(x, &field) else {
            continue;
        };
        if n.trunc() != n {
            let msg = format!("{n} has host bits set: the subnet is {}", n.trunc());
            d.err(sp(x), &field, msg);
        } else if let Some(o) = out
            .iter()
            .find(|o| o.contains(&n.network()) || n.contains(&o.network()))
        {
            let msg = format!("{n} overlaps {o}, listed before");
            d.err(sp(x), &field, msg);
        } else if out
            .first()
            .is_some_and(|o| o.addr().is_ipv4() != n.addr().is_ipv4())
        {
            d.err(sp(x), &field, "the subnets of one end are of one family");
        } else {
            out.push(n);
        }
    }
    out
}

/// The endpoint on node `n` (the first, if the file has several).
fn endpoint_on(f: &ScenarioFile, n: &str) -> Option<usize> {
    f.endpoints
        .iter()
        .position(|e| e.get_ref().node.get_ref() == n)
}

/// Check `endpoints[i]` against its peers.
fn paired(d: &mut Diags<'_>, f: &ScenarioFile, net: &Network, i: usize) -> Option<Paired> {
    let e = f.endpoints[i].get_ref();
    let field = format!("endpoints[{i}]");
    let node = e.node.get_ref();
    if f.endpoints
        .iter()
        .filter(|x| x.get_ref().node.get_ref() == node)
        .count()
        > 1
    {
        d.err(
            sp(&e.node),
            format!("{field}.node"),
            format!("node {node} has more than one endpoint"),
        );
    }
    let peers: Vec<Option<usize>> = e
        .peer
        .get_ref()
        .all()
        .into_iter()
        .map(|peer| agree(d, f, net, i, peer))
        .collect();
    let vip = e.virtual_ip.as_ref().is_some_and(|v| *v.get_ref());
    if *e.mode.get_ref() == Mode::Tunnel && e.inner.is_none() && e.subnets.is_none() && !vip {
        d.err(
            sp(&e.node),
            format!("{field}.inner"),
            "tunnel mode needs an inner address, `subnets` or (an initiator) `virtual_ip = true`: the traffic selectors",
        );
    }
    if let (Mode::Transport, Some(s)) = (*e.mode.get_ref(), &e.subnets) {
        let msg = "transport mode protects the outer addresses only: `subnets` needs tunnel mode";
        d.err(sp(s), format!("{field}.subnets"), msg);
    }
    let remote_addr = remote_addr(d, f, net, e, &field);
    let peers = peers.into_iter().collect::<Option<Vec<usize>>>()?;
    let (&peer, others) = peers.split_first()?;
    Some(Paired {
        peer,
        others: others.to_vec(),
        remote_addr: remote_addr?,
    })
}

/// `endpoints[i]` and the endpoint on `peer` agree: each is the other's
/// peer, one initiates, keys, versions, modes, auth and protocol match.
/// The peer's endpoint, if it has one.
fn agree(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    net: &Network,
    i: usize,
    peer: &str,
) -> Option<usize> {
    let e = f.endpoints[i].get_ref();
    let field = format!("endpoints[{i}]");
    let Some(pi) = endpoint_on(f, peer) else {
        if net.nodes.contains(peer) {
            d.err(
                sp(&e.peer),
                format!("{field}.peer"),
                format!("node {peer} has no endpoint"),
            );
        }
        return None;
    };
    let p = f.endpoints[pi].get_ref();
    if !p.peer.get_ref().all().contains(&e.node.get_ref()) {
        d.err(
            sp(&e.peer),
            format!("{field}.peer"),
            format!(
                "{}'s peer is {}, not {}",
                p.node.get_ref(),
                p.peer.get_ref().first(),
                e.node.get_ref()
            ),
        );
    }
    if p.role.get_ref() == e.role.get_ref() {
        d.err(
            sp(&e.role),
            format!("{field}.role"),
            format!(
                "both {} and {} are {:?}s; one must be the initiator, the other the responder",
                e.node.get_ref(),
                p.node.get_ref(),
                e.role.get_ref()
            ),
        );
    }
    same_settings(d, f, i, e, p, &field);
    if let (Some(v), None) = (e.virtual_ip.as_ref().filter(|v| *v.get_ref()), &p.pool) {
        let msg = format!("{peer} has no `pool` to assign a virtual IP from");
        d.err(sp(v), format!("{field}.virtual_ip"), msg);
    }
    Some(pi)
}

/// Keys, IKE version, mode, auth and protocol match the peer's.
fn same_settings(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    i: usize,
    e: &EndpointSpec,
    p: &EndpointSpec,
    field: &str,
) {
    let peer = p.node.get_ref();
    let may =
        |m| super::misconfig::may(f, e.node.get_ref(), m) || super::misconfig::may(f, peer, m);
    if let (Some(a), Some(b)) = (&e.psk, &p.psk) {
        if a.get_ref() != b.get_ref() && !may(Misconfig::Psk) {
            d.err(
                sp(a),
                format!("{field}.psk"),
                format!("differs from the psk of {peer} (declare `misconfigured = [\"psk\"]` on one end to test a wrong key)"),
            );
        }
    }
    // 0: a responder that takes either version.
    let (a, b) = (*e.ike.get_ref(), *p.ike.get_ref());
    if a != b && a != 0 && b != 0 && !may(Misconfig::IkeVersion) {
        d.err(
            sp(&e.ike),
            format!("{field}.ike"),
            format!("differs from the IKE version of {peer} (declare `misconfigured = [\"ike-version\"]` on one end to test the mismatch)"),
        );
    }
    if p.mode.get_ref() != e.mode.get_ref() {
        d.err(
            sp(&e.mode),
            format!("{field}.mode"),
            format!("differs from the mode of {peer}"),
        );
    }
    // Traffic selectors pair addresses of one family (4in6 and 6in4 carry
    // one inner family over the other outer one; a pair of one each does
    // not exist).
    let ip =
        |x: &Option<Spanned<String>>| x.as_ref().and_then(|x| x.get_ref().parse::<IpAddr>().ok());
    if let (Some(a), Some(b), Some(span)) = (ip(&e.inner), ip(&p.inner), e.inner.as_ref()) {
        if a.is_ipv4() != b.is_ipv4() {
            d.err(
                sp(span),
                format!("{field}.inner"),
                format!(
                    "{a} is {} but {peer}'s inner address {b} is {}: the tunnel's traffic selectors need one family",
                    super::network::family(a),
                    super::network::family(b)
                ),
            );
        }
    }
    for (name, mine, theirs, default) in [
        ("auth", &e.auth, &p.auth, "psk"),
        ("proto", &e.proto, &p.proto, "esp"),
    ] {
        let v = |x: &Option<Spanned<String>>| {
            x.as_ref()
                .map_or(default.to_string(), |x| x.get_ref().clone())
        };
        let (a, b) = (v(mine), v(theirs));
        if a != b {
            d.err(
                mine.as_ref().map_or(sp(&f.endpoints[i]), sp),
                format!("{field}.{name}"),
                format!("`{a}` differs from the {name} of {peer} (`{b}`)"),
            );
        }
    }
}

/// An initiator with no address of its peer's only address's family can
/// only get there through a NAT64 gateway, at a synthesized address.
fn family_reachable(d: &mut Diags<'_>, net: &Network, e: &EndpointSpec, field: &str, a: IpAddr) {
    let me = e.node.get_ref();
    if Families::of([a]).within(Families::of(net.addrs_of(me))) {
        return;
    }
    let (fam, peer) = (super::network::family(a), e.peer.get_ref().first());
    let how = if net.nat64.is_empty() {
        "a NAT64 gateway (`nat = \"nat64\"`, `nat64_prefix`)".to_string()
    } else {
        "the NAT64 gateway: set `peer_addr` to the address synthesized from it".to_string()
    };
    d.err(
        sp(&e.peer),
        format!("{field}.peer"),
        format!("{peer}'s only address {a} is {fam}, but {me} has no {fam} address: it can reach {peer} only through {how}"),
    );
}

/// Where the endpoint sends IKE: `peer_addr`, or the peer's only address.
/// A responder has one only if the file gives it (so that an `initiate`
/// step can send IKE from it); `None` after reporting why not.
fn remote_addr(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    net: &Network,
    e: &EndpointSpec,
    field: &str,
) -> Option<Option<IpAddr>> {
    let initiator = *e.role.get_ref() == Role::Initiator;
    let peer = e.peer.get_ref().first();
    let Some(pa) = &e.peer_addr else {
        if !initiator {
            return Some(None);
        }
        let own: Vec<IpAddr> = net.addrs_of(peer).collect();
        if let [one] = own[..] {
            family_reachable(d, net, e, field, one);
            return Some(Some(one));
        }
        d.err(
            sp(&e.peer),
            format!("{field}.peer_addr"),
            format!(
                "{peer} has {} addresses; say which one IKE goes to with `peer_addr`",
                own.len()
            ),
        );
        return None;
    };
    if !initiator {
        return responder_addr(d, f, net, e, pa, field).map(Some);
    }
    let a = d.addr(pa, &format!("{field}.peer_addr"))?;
    let forwarded = forwarded_to(a, &net.ifaces, &net.knobs).is_some_and(|(_, n)| &n == peer);
    let synthesized = net.synthesized(a).is_some_and(|(v4, _)| net.owns(peer, v4));
    if !net.owns(peer, a) && !forwarded && !synthesized {
        d.err(
            sp(pa),
            format!("{field}.peer_addr"),
            format!(
                "{a} is not an address of {peer} nor of a gateway that forwards IKE to it \
                 (`behaviour.forward_ike_to`) nor synthesized from one of its IPv4 addresses \
                 by a NAT64 gateway (`nat64_prefix`)"
            ),
        );
    }
    Some(Some(a))
}

/// A responder's `peer_addr`: where it initiates to when a step asks it
/// to, and the only address it then takes IKE from. That is its one
/// peer's address, or that of a gateway in front of the peer (a NAT's
/// outside address, where the peer's IKE comes from).
fn responder_addr(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    net: &Network,
    e: &EndpointSpec,
    pa: &Spanned<String>,
    field: &str,
) -> Option<IpAddr> {
    let peers = e.peer.get_ref().all();
    // No peer at all is reported with `peer`.
    let [peer] = peers[..] else {
        if peers.len() > 1 {
            let msg =
                "a responder of several peers takes IKE from each: `peer_addr` would name one";
            d.err(sp(pa), format!("{field}.peer_addr"), msg);
        }
        return None;
    };
    let a = d.addr(pa, &format!("{field}.peer_addr"))?;
    let owner = net.ifaces.iter().find(|x| x.net.addr() == a);
    let gateway = owner.is_some_and(|x| x.node != *e.node.get_ref() && net.forwards(f, &x.node));
    if !net.owns(peer, a) && !gateway {
        d.err(
            sp(pa),
            format!("{field}.peer_addr"),
            format!("{a} is not an address of {peer} nor of a gateway or router (where {peer}'s IKE may come from through a NAT)"),
        );
        return None;
    }
    Some(a)
}
