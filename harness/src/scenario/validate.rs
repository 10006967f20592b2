//! Semantic validation and matrix expansion. Each finding points at the
//! offending field; all findings of a file are reported together.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::path::Path;

use ipnet::{IpNet, Ipv4Net};
use toml::Spanned;

use super::file::{self as model, ScenarioFile};
use super::knobs;
use super::{line_col, Scenario};
use crate::error::{Diagnostic, ScenarioError};
use crate::model::{self as cell, Cell, Expectation};
use crate::model::{known, Backend, Requirement, StackKind, StackName};
use crate::model::{Knobs, NatProfile};
use crate::model::{NatT, Role};

/// Longest interface name Linux accepts.
const IFNAMSIZ: usize = 15;
/// Node names stay short so default interface names (`to-<node>`) fit.
const MAX_NODE_NAME: usize = 12;

pub(super) struct Diags<'a> {
    path: &'a Path,
    text: &'a str,
    out: Vec<Diagnostic>,
}

impl Diags<'_> {
    pub(super) fn err(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, column) = line_col(self.text, span.start);
        let d = Diagnostic {
            path: self.path.to_path_buf(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        };
        // The same problem found in several cells is reported once.
        if !self.out.contains(&d) {
            self.out.push(d);
        }
    }
}

/// The values of a matrix axis.
fn names(values: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
    values
        .get_ref()
        .iter()
        .map(|v| v.get_ref().clone())
        .collect()
}

/// Whether `p` is a file vpnlab may execute.
fn executable(p: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(format!(
            "{} is not an executable file (chmod +x {})",
            p.display(),
            p.display()
        )),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// Report a stack name vpnlab has no driver for.
fn known_stack(d: &mut Diags<'_>, st: &Spanned<String>, field: String) {
    if st.get_ref().parse::<StackName>().is_err() {
        d.err(
            sp(st),
            field,
            format!(
                "unknown stack `{}` (known: {})",
                st.get_ref(),
                known::<StackName>()
            ),
        );
    }
}

pub(super) fn sp<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

/// An address on a node, with where it was declared.
#[derive(Clone)]
pub(super) struct Iface {
    pub(super) node: String,
    pub(super) name: String,
    pub(super) net: IpNet,
    pub(super) peer_node: String,
    pub(super) peer_addr: IpAddr,
}

pub(super) fn validate(
    path: &Path,
    text: &str,
    f: ScenarioFile,
) -> Result<Scenario, ScenarioError> {
    let mut d = Diags {
        path,
        text,
        out: Vec::new(),
    };
    let name = f.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into())
    });

    // --- machine requirements and backend
    let mut requires: Vec<Requirement> = Vec::new();
    for r in &f.requires {
        match r.get_ref().parse::<Requirement>() {
            Ok(x) => requires.push(x),
            Err(_) => d.err(
                sp(r),
                "requires",
                format!(
                    "unknown requirement `{}` (known: {})",
                    r.get_ref(),
                    known::<Requirement>()
                ),
            ),
        }
    }
    let backend = f.backend.as_ref().and_then(|b| match b.get_ref().parse() {
        Ok(x) => Some(x),
        Err(_) => {
            d.err(
                sp(b),
                "backend",
                format!(
                    "unknown backend `{}` (known: {})",
                    b.get_ref(),
                    known::<Backend>()
                ),
            );
            None
        }
    });
    if backend == Some(Backend::KernelNetlink) && !requires.contains(&Requirement::KernelEsp) {
        requires.push(Requirement::KernelEsp);
    }

    // --- nodes
    let nodes: BTreeSet<String> = f.nodes.keys().cloned().collect();
    let mut file_knobs: BTreeMap<String, Knobs> = BTreeMap::new();
    for (n, spec) in &f.nodes {
        let ok = !n.is_empty()
            && n.len() <= MAX_NODE_NAME
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            d.err(
                sp(spec),
                format!("nodes.{n}"),
                format!("node names must be 1-{MAX_NODE_NAME} characters of a-z, 0-9 and '-'"),
            );
        }
        if let Some(p) = &spec.get_ref().nat {
            if p.get_ref().parse::<NatProfile>().is_err() {
                d.err(
                    sp(p),
                    format!("nodes.{n}.nat"),
                    format!(
                        "unknown NAT profile `{}` (known: {})",
                        p.get_ref(),
                        crate::model::known::<NatProfile>()
                    ),
                );
            }
        }
        if let Some(b) = &spec.get_ref().behaviour {
            let k = knobs::nat_knobs(&mut d, b.get_ref(), &format!("nodes.{n}.behaviour"));
            file_knobs.insert(n.clone(), k);
        }
        for (k, v) in &spec.get_ref().sysctl {
            if !k.starts_with("net.") {
                d.err(
                    sp(v),
                    format!("nodes.{n}.sysctl.{k}"),
                    "only per-namespace net.* sysctls may be set",
                );
            }
        }
    }
    let node_ref = |d: &mut Diags, s: &Spanned<String>, field: String| -> bool {
        if nodes.contains(s.get_ref()) {
            true
        } else {
            d.err(
                sp(s),
                field,
                format!(
                    "unknown node `{}` (known: {})",
                    s.get_ref(),
                    nodes.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
            false
        }
    };

    // --- links
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut seen_addr: BTreeMap<IpAddr, String> = BTreeMap::new();
    let mut nets: Vec<(IpNet, String)> = Vec::new();
    let mut links = Vec::new();
    for (i, l) in f.links.iter().enumerate() {
        let l = l.get_ref();
        let mut ends = Vec::new();
        for (side, end, other) in [("a", &l.a, &l.b), ("b", &l.b, &l.a)] {
            let field = format!("links[{i}].{side}");
            let known = node_ref(&mut d, &end.node, format!("{field}.node"));
            let addr = match end.addr.get_ref().parse::<Ipv4Net>().map(IpNet::V4) {
                Ok(a)
                    if a.prefix_len() < 31
                        && (a.addr() == a.network() || a.addr() == a.broadcast()) =>
                {
                    d.err(
                        sp(&end.addr),
                        format!("{field}.addr"),
                        format!("{} is the network or broadcast address of its subnet", a),
                    );
                    None
                }
                Ok(a) => Some(a),
                Err(_) => {
                    d.err(
                        sp(&end.addr),
                        format!("{field}.addr"),
                        format!(
                            "`{}` is not an IPv4 address with prefix length (e.g. 192.0.2.1/24)",
                            end.addr.get_ref()
                        ),
                    );
                    None
                }
            };
            let iface = match &end.iface {
                Some(i) => {
                    if i.get_ref().is_empty()
                        || i.get_ref().len() > IFNAMSIZ
                        || i.get_ref().contains(['/', ' '])
                    {
                        d.err(
                            sp(i),
                            format!("{field}.iface"),
                            format!(
                                "interface names are 1-{IFNAMSIZ} characters without '/' or spaces"
                            ),
                        );
                    }
                    i.get_ref().clone()
                }
                None => format!("to-{}", other.node.get_ref()),
            };
            if let Some(a) = addr {
                if let Some(prev) = seen_addr.insert(a.addr(), field.clone()) {
                    d.err(
                        sp(&end.addr),
                        format!("{field}.addr"),
                        format!("duplicate address {} (also at {prev})", a.addr()),
                    );
                }
            }
            ends.push((known, end, iface, addr));
        }
        if l.a.node.get_ref() == l.b.node.get_ref() {
            d.err(
                sp(&l.b.node),
                format!("links[{i}].b.node"),
                "a link must join two different nodes",
            );
        }
        if let (Some(a), Some(b)) = (ends[0].3, ends[1].3) {
            if a.network() != b.network() || a.prefix_len() != b.prefix_len() {
                d.err(
                    sp(&l.b.addr),
                    format!("links[{i}].b.addr"),
                    format!("{b} is not in the same subnet as the other end {a}"),
                );
            } else {
                for (net, other) in &nets {
                    if net.contains(&a.network()) || a.contains(&net.network()) {
                        d.err(
                            sp(&l.a.addr),
                            format!("links[{i}].a.addr"),
                            format!("subnet {} overlaps {net} of {other}", a.trunc()),
                        );
                    }
                }
                nets.push((a.trunc(), format!("links[{i}]")));
            }
        }
        if let Some(m) = &l.mtu {
            if !(576..=9000).contains(m.get_ref()) {
                d.err(
                    sp(m),
                    format!("links[{i}].mtu"),
                    "MTU must be between 576 and 9000",
                );
            }
        }
        if let [(true, ea, ia, Some(aa)), (true, eb, ib, Some(ab))] = &ends[..] {
            for (n, iface, net, pn, pa) in [
                (ea.node.get_ref(), ia, *aa, eb.node.get_ref(), ab.addr()),
                (eb.node.get_ref(), ib, *ab, ea.node.get_ref(), aa.addr()),
            ] {
                if ifaces.iter().any(|x| &x.node == n && &x.name == iface) {
                    d.err(sp(&l.a.node), format!("links[{i}]"), format!("node {n} already has an interface `{iface}`; set `iface` on one of the links"));
                }
                ifaces.push(Iface {
                    node: n.clone(),
                    name: iface.clone(),
                    net,
                    peer_node: pn.clone(),
                    peer_addr: pa,
                });
            }
            links.push(cell::Link {
                a: cell::LinkEnd {
                    node: ea.node.get_ref().clone(),
                    iface: ia.clone(),
                    addr: *aa,
                },
                b: cell::LinkEnd {
                    node: eb.node.get_ref().clone(),
                    iface: ib.clone(),
                    addr: *ab,
                },
                mtu: l.mtu.as_ref().map(|m| *m.get_ref()),
            });
        }
    }

    // --- routes
    let mut routes = Vec::new();
    for (i, r) in f.routes.iter().enumerate() {
        let r = r.get_ref();
        let field = format!("routes[{i}]");
        let known = node_ref(&mut d, &r.node, format!("{field}.node"));
        let dst = if r.to.get_ref() == "default" {
            Some(IpNet::V4(Ipv4Net::default()))
        } else {
            match r.to.get_ref().parse::<Ipv4Net>().map(IpNet::V4) {
                Ok(n) => Some(n.trunc()),
                Err(_) => {
                    d.err(
                        sp(&r.to),
                        format!("{field}.to"),
                        format!(
                            "`{}` is not a prefix (e.g. 10.0.0.0/8) or `default`",
                            r.to.get_ref()
                        ),
                    );
                    None
                }
            }
        };
        let via = match r.via.get_ref().parse::<Ipv4Addr>().map(IpAddr::V4) {
            Ok(v) => Some(v),
            Err(_) => {
                d.err(
                    sp(&r.via),
                    format!("{field}.via"),
                    format!("`{}` is not an IPv4 address", r.via.get_ref()),
                );
                None
            }
        };
        if let (true, Some(dst), Some(via)) = (known, dst, via) {
            let on_link = ifaces
                .iter()
                .any(|x| &x.node == r.node.get_ref() && x.net.contains(&via) && x.peer_addr == via);
            if !on_link {
                d.err(
                    sp(&r.via),
                    format!("{field}.via"),
                    format!(
                        "next hop {via} is not the address of a neighbour of {}",
                        r.node.get_ref()
                    ),
                );
            } else {
                routes.push(cell::Route {
                    node: r.node.get_ref().clone(),
                    dst,
                    via,
                });
            }
        }
    }

    // --- gateways' outside side
    let mut outside: BTreeMap<String, Option<(String, Range<usize>)>> = BTreeMap::new();
    for (n, spec) in &f.nodes {
        let o = spec.get_ref().nat_outside.as_ref().and_then(|o| {
            match ifaces
                .iter()
                .find(|x| &x.node == n && &x.peer_node == o.get_ref())
            {
                Some(x) => Some((x.name.clone(), sp(o))),
                None => {
                    d.err(
                        sp(o),
                        format!("nodes.{n}.nat_outside"),
                        format!("`{}` is not a neighbour of {n}", o.get_ref()),
                    );
                    None
                }
            }
        });
        outside.insert(n.clone(), o);
    }

    // --- endpoints
    let mut inner_seen: BTreeMap<IpAddr, String> = BTreeMap::new();
    let mut inner_of: BTreeMap<String, IpAddr> = BTreeMap::new();
    let mut ep_knobs: Vec<knobs::FileKnobs> = Vec::new();
    for (i, e) in f.endpoints.iter().enumerate() {
        let e = e.get_ref();
        let field = format!("endpoints[{i}]");
        node_ref(&mut d, &e.node, format!("{field}.node"));
        for p in e.peer.get_ref().all() {
            node_ref(
                &mut d,
                &Spanned::new(sp(&e.peer), p.clone()),
                format!("{field}.peer"),
            );
        }
        if let model::Peers::Many(v) = e.peer.get_ref() {
            if *e.role.get_ref() != Role::Responder || v.is_empty() {
                d.err(
                    sp(&e.peer),
                    format!("{field}.peer"),
                    "only a responder may list several peers (and at least one)",
                );
            }
        }
        match &e.stack {
            Some(st) => known_stack(&mut d, st, format!("{field}.stack")),
            None if !f.matrix.stack.contains_key(e.node.get_ref()) => d.err(
                sp(&f.endpoints[i]),
                format!("{field}.stack"),
                format!(
                    "missing: set `stack` ({}) or give the node an axis `matrix.stack.{}`",
                    known::<StackName>(),
                    e.node.get_ref()
                ),
            ),
            None => {}
        }
        // A `command` stack needs its programs, in every cell it can be in.
        let stacks: Vec<&str> = match f.matrix.stack.get(e.node.get_ref()) {
            Some(v) => v.get_ref().iter().map(|x| x.get_ref().as_str()).collect(),
            None => e.stack.iter().map(|x| x.get_ref().as_str()).collect(),
        };
        match &e.command {
            None if stacks.contains(&"command") => d.err(
                sp(&f.endpoints[i]),
                format!("{field}.command"),
                "stack `command` needs `command = { start = …, status = …, initiate = … }`",
            ),
            Some(c) => {
                let c = c.get_ref();
                let base = path.parent().unwrap_or(Path::new("."));
                let progs = [
                    ("start", Some(&c.start)),
                    ("status", Some(&c.status)),
                    ("initiate", c.initiate.as_ref()),
                ];
                for (name, prog) in progs {
                    let Some(prog) = prog else {
                        if *e.role.get_ref() == Role::Initiator {
                            d.err(
                                sp(e.command.as_ref().expect("some")),
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
            None => {}
        }
        if ![1u8, 2].contains(e.ike.get_ref()) {
            d.err(
                sp(&e.ike),
                format!("{field}.ike"),
                "IKE version must be 1 or 2",
            );
        }
        ep_knobs.push(knobs::endpoint_knobs(&mut d, &f.endpoints[i], &field));
        if let Some(inner) = &e.inner {
            match inner.get_ref().parse::<Ipv4Addr>().map(IpAddr::V4) {
                Ok(a) => {
                    if let Some(prev) = inner_seen
                        .insert(a, field.clone())
                        .or_else(|| seen_addr.get(&a).cloned())
                    {
                        d.err(
                            sp(inner),
                            format!("{field}.inner"),
                            format!("duplicate address {a} (also at {prev})"),
                        );
                    } else if let Some((net, l)) = nets.iter().find(|(n, _)| n.contains(&a)) {
                        d.err(
                            sp(inner),
                            format!("{field}.inner"),
                            format!("inner address {a} lies in link subnet {net} of {l}"),
                        );
                    }
                    inner_of.insert(e.node.get_ref().clone(), a);
                }
                Err(_) => d.err(
                    sp(inner),
                    format!("{field}.inner"),
                    format!("`{}` is not an IPv4 address", inner.get_ref()),
                ),
            }
        }
    }
    let ep_of = |n: &str| {
        f.endpoints
            .iter()
            .map(|e| e.get_ref())
            .find(|e| e.node.get_ref() == n)
    };
    for (i, e) in f.endpoints.iter().enumerate() {
        let e = e.get_ref();
        let field = format!("endpoints[{i}]");
        if f.endpoints
            .iter()
            .filter(|x| x.get_ref().node.get_ref() == e.node.get_ref())
            .count()
            > 1
        {
            d.err(
                sp(&e.node),
                format!("{field}.node"),
                format!("node {} has more than one endpoint", e.node.get_ref()),
            );
        }
        for peer in e.peer.get_ref().all() {
            let Some(p) = ep_of(peer) else {
                if nodes.contains(peer) {
                    d.err(
                        sp(&e.peer),
                        format!("{field}.peer"),
                        format!("node {peer} has no endpoint"),
                    );
                }
                continue;
            };
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
            if let (Some(a), Some(b)) = (&e.psk, &p.psk) {
                if a.get_ref() != b.get_ref() {
                    d.err(
                        sp(a),
                        format!("{field}.psk"),
                        format!("differs from the psk of {}", p.node.get_ref()),
                    );
                }
            }
            if p.ike.get_ref() != e.ike.get_ref() {
                d.err(
                    sp(&e.ike),
                    format!("{field}.ike"),
                    format!("differs from the IKE version of {}", p.node.get_ref()),
                );
            }
            if p.mode.get_ref() != e.mode.get_ref() {
                d.err(
                    sp(&e.mode),
                    format!("{field}.mode"),
                    format!("differs from the mode of {}", p.node.get_ref()),
                );
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
                        format!(
                            "`{a}` differs from the {name} of {} (`{b}`)",
                            p.node.get_ref()
                        ),
                    );
                }
            }
        }
        if *e.mode.get_ref() == crate::model::Mode::Tunnel && e.inner.is_none() {
            d.err(
                sp(&e.node),
                format!("{field}.inner"),
                "tunnel mode needs an inner address (the traffic selector)",
            );
        }
        if let Some(pa) = &e.peer_addr {
            if *e.role.get_ref() != Role::Initiator {
                d.err(
                    sp(pa),
                    format!("{field}.peer_addr"),
                    "only the initiator sends IKE to a peer address",
                );
            }
            match pa.get_ref().parse::<Ipv4Addr>().map(IpAddr::V4) {
                Ok(a)
                    if !ifaces
                        .iter()
                        .any(|x| &x.node == e.peer.get_ref().first() && x.net.addr() == a)
                        && forwarded_to(a, &ifaces, &file_knobs)
                            .is_none_or(|(_, n)| &n != e.peer.get_ref().first()) =>
                {
                    d.err(
                        sp(pa),
                        format!("{field}.peer_addr"),
                        format!("{a} is not an address of {} nor of a gateway that forwards IKE to it (`behaviour.forward_ike_to`)", e.peer.get_ref().first()),
                    );
                }
                Ok(_) => {}
                Err(_) => d.err(
                    sp(pa),
                    format!("{field}.peer_addr"),
                    format!("`{}` is not an IPv4 address", pa.get_ref()),
                ),
            }
        } else if *e.role.get_ref() == Role::Initiator {
            let n = ifaces
                .iter()
                .filter(|x| &x.node == e.peer.get_ref().first())
                .count();
            if n != 1 {
                d.err(
                    sp(&e.peer),
                    format!("{field}.peer_addr"),
                    format!(
                        "{} has {n} addresses; say which one IKE goes to with `peer_addr`",
                        e.peer.get_ref().first()
                    ),
                );
            }
        }
    }

    // --- PPP layer
    let ppp = f.ppp.as_ref().and_then(|p| {
        let p = p.get_ref();
        let kc = node_ref(&mut d, &p.client, "ppp.client".into());
        let ks = node_ref(&mut d, &p.server, "ppp.server".into());
        if p.client.get_ref() == p.server.get_ref() {
            d.err(
                sp(&p.server),
                "ppp.server",
                "client and server must be different nodes",
            );
        }
        let ip = |d: &mut Diags, v: &Spanned<String>, field: &str| match v
            .get_ref()
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
        {
            Ok(a) => {
                if let Some(prev) = seen_addr.get(&a).or_else(|| inner_seen.get(&a)) {
                    d.err(
                        sp(v),
                        field.to_string(),
                        format!("duplicate address {a} (also at {prev})"),
                    );
                }
                Some(a)
            }
            Err(_) => {
                d.err(
                    sp(v),
                    field.to_string(),
                    format!("`{}` is not an IPv4 address", v.get_ref()),
                );
                None
            }
        };
        let server_ip = ip(&mut d, &p.server_ip, "ppp.server_ip");
        let client_ip = ip(&mut d, &p.client_ip, "ppp.client_ip");
        if server_ip.is_some() && server_ip == client_ip {
            d.err(
                sp(&p.client_ip),
                "ppp.client_ip",
                "must differ from server_ip",
            );
        }
        let server_addr = match &p.server_addr {
            Some(a) => match a.get_ref().parse::<Ipv4Addr>().map(IpAddr::V4) {
                Ok(x)
                    if ifaces
                        .iter()
                        .any(|i| &i.node == p.server.get_ref() && i.net.addr() == x) =>
                {
                    Some(x)
                }
                Ok(x) => {
                    d.err(
                        sp(a),
                        "ppp.server_addr",
                        format!("{x} is not an address of {}", p.server.get_ref()),
                    );
                    None
                }
                Err(_) => {
                    d.err(
                        sp(a),
                        "ppp.server_addr",
                        format!("`{}` is not an IPv4 address", a.get_ref()),
                    );
                    None
                }
            },
            None => {
                let own: Vec<IpAddr> = ifaces
                    .iter()
                    .filter(|i| &i.node == p.server.get_ref())
                    .map(|i| i.net.addr())
                    .collect();
                match own.as_slice() {
                    [one] => Some(*one),
                    _ if ks => {
                        d.err(
                            sp(&p.server),
                            "ppp.server_addr",
                            format!(
                                "{} has {} addresses: say which one the client dials",
                                p.server.get_ref(),
                                own.len()
                            ),
                        );
                        None
                    }
                    _ => None,
                }
            }
        };
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
    });

    // --- checks
    let mut check_names = BTreeSet::new();
    let mut checks = Vec::new();
    for (i, c) in f.checks.iter().enumerate() {
        let c = c.get_ref();
        let field = format!("checks[{i}]");
        if !check_names.insert(c.name.get_ref().clone()) {
            d.err(
                sp(&c.name),
                format!("{field}.name"),
                format!("duplicate check name `{}`", c.name.get_ref()),
            );
        }
        let kf = node_ref(&mut d, &c.from, format!("{field}.from"));
        let kt = node_ref(&mut d, &c.to, format!("{field}.to"));
        let addr = |d: &mut Diags,
                    explicit: &Option<Spanned<String>>,
                    node: &Spanned<String>,
                    which: &str|
         -> Option<IpAddr> {
            match explicit {
                Some(s) => match s.get_ref().parse::<Ipv4Addr>().map(IpAddr::V4) {
                    Ok(a) => Some(a),
                    Err(_) => {
                        d.err(
                            sp(s),
                            format!("{field}.{which}"),
                            format!("`{}` is not an IPv4 address", s.get_ref()),
                        );
                        None
                    }
                },
                None => {
                    let a = inner_of.get(node.get_ref()).copied();
                    if a.is_none() && nodes.contains(node.get_ref()) {
                        d.err(
                            sp(node),
                            format!("{field}.{which}"),
                            format!(
                                "node {} has no endpoint inner address; set `{which}`",
                                node.get_ref()
                            ),
                        );
                    }
                    a
                }
            }
        };
        if let Some(over) = &c.over {
            // Over the PPP link: between its two addresses, which exist only
            // once the link is up.
            let Some(p) = &ppp else {
                if f.ppp.is_none() {
                    d.err(
                        sp(over),
                        format!("{field}.over"),
                        "`over = \"ppp\"` needs a `[ppp]` section",
                    );
                }
                continue;
            };
            if c.from.get_ref() != &p.client || c.to.get_ref() != &p.server {
                d.err(
                    sp(over),
                    format!("{field}.over"),
                    format!(
                        "a check over PPP goes from the PPP client ({}) to its server ({})",
                        p.client, p.server
                    ),
                );
            }
            if let Some(x) = c.src.as_ref().or(c.dst.as_ref()) {
                d.err(
                    sp(x),
                    field.clone(),
                    "a check over PPP uses the link's addresses: leave out src and dst",
                );
            }
            if kf && kt {
                checks.push(cell::Check {
                    name: c.name.get_ref().clone(),
                    kind: *c.kind.get_ref(),
                    from: c.from.get_ref().clone(),
                    to: c.to.get_ref().clone(),
                    src: p.client_ip,
                    dst: p.server_ip,
                    port: c.port.as_ref().map(|p| *p.get_ref()),
                    count: *c.count.get_ref(),
                });
            }
            continue;
        }
        let src = addr(&mut d, &c.src, &c.from, "src");
        let dst = addr(&mut d, &c.dst, &c.to, "dst");
        // An explicit address must belong to its node: the probe socket is
        // bound there (src) or the echo responder listens there (dst).
        for (explicit, node, which) in [(&c.src, &c.from, "src"), (&c.dst, &c.to, "dst")] {
            if let (Some(e), Ok(a)) = (
                explicit,
                explicit.as_ref().map_or(Err(()), |e| {
                    e.get_ref()
                        .parse::<Ipv4Addr>()
                        .map(IpAddr::V4)
                        .map_err(|_| ())
                }),
            ) {
                let owned = ifaces
                    .iter()
                    .any(|x| &x.node == node.get_ref() && x.net.addr() == a)
                    || inner_of.get(node.get_ref()) == Some(&a);
                if !owned && nodes.contains(node.get_ref()) {
                    d.err(
                        sp(e),
                        format!("{field}.{which}"),
                        format!("{a} is not an address of {}", node.get_ref()),
                    );
                }
            }
        }
        match (*c.kind.get_ref(), &c.port) {
            (crate::model::CheckKind::Udp, None) => d.err(
                sp(&c.kind),
                format!("{field}.port"),
                "a udp check needs a port",
            ),
            (crate::model::CheckKind::Udp, Some(p)) if *p.get_ref() == 0 => {
                d.err(sp(p), format!("{field}.port"), "port must be 1-65535")
            }
            (crate::model::CheckKind::Ping, Some(p)) => {
                d.err(sp(p), format!("{field}.port"), "a ping check has no port")
            }
            _ => {}
        }
        if !(1..=100).contains(c.count.get_ref()) {
            d.err(
                sp(&c.count),
                format!("{field}.count"),
                "count must be 1-100",
            );
        }
        if let (true, true, Some(src), Some(dst)) = (kf, kt, src, dst) {
            checks.push(cell::Check {
                name: c.name.get_ref().clone(),
                kind: *c.kind.get_ref(),
                from: c.from.get_ref().clone(),
                to: c.to.get_ref().clone(),
                src,
                dst,
                port: c.port.as_ref().map(|p| *p.get_ref()),
                count: *c.count.get_ref(),
            });
        }
    }

    // --- matrix axes
    let mut axes: Vec<(String, Vec<String>, Range<usize>)> = Vec::new();
    let single_nat = f.matrix.nat.len() == 1;
    for (n, values) in &f.matrix.nat {
        let axis = if single_nat {
            "nat".to_string()
        } else {
            format!("nat.{n}")
        };
        if !nodes.contains(n) {
            d.err(
                sp(values),
                format!("matrix.nat.{n}"),
                format!("unknown node `{n}`"),
            );
        }
        if values.get_ref().is_empty() {
            d.err(
                sp(values),
                format!("matrix.nat.{n}"),
                "an axis needs at least one value",
            );
        }
        for v in values.get_ref() {
            if v.get_ref().parse::<NatProfile>().is_err() {
                d.err(
                    sp(v),
                    format!("matrix.nat.{n}"),
                    format!(
                        "unknown NAT profile `{}` (known: {})",
                        v.get_ref(),
                        crate::model::known::<NatProfile>()
                    ),
                );
            }
        }
        axes.push((axis, names(values), sp(values)));
    }
    if let Some(v) = &f.matrix.nat_t {
        if v.get_ref().is_empty() {
            d.err(sp(v), "matrix.nat_t", "an axis needs at least one value");
        }
        axes.push((
            "nat_t".into(),
            v.get_ref()
                .iter()
                .map(|x| x.get_ref().to_string())
                .collect(),
            sp(v),
        ));
    }

    for (n, values) in &f.matrix.stack {
        let field = format!("matrix.stack.{n}");
        if !f.endpoints.iter().any(|e| e.get_ref().node.get_ref() == n) {
            d.err(sp(values), field.clone(), format!("`{n}` has no endpoint"));
        }
        if values.get_ref().is_empty() {
            d.err(
                sp(values),
                field.clone(),
                "an axis needs at least one value",
            );
        }
        for v in values.get_ref() {
            known_stack(&mut d, v, field.clone());
        }
        axes.push((format!("stack.{n}"), names(values), sp(values)));
    }
    if f.matrix.hairpin.len() > 1 {
        let (_, v) = f.matrix.hairpin.iter().nth(1).expect("two");
        d.err(
            sp(v),
            "matrix.hairpin",
            "one gateway per file may vary hairpinning",
        );
    }
    for (n, values) in &f.matrix.hairpin {
        if file_knobs.get(n).and_then(|k| k.forward_ike_to).is_none() {
            d.err(
                sp(values),
                format!("matrix.hairpin.{n}"),
                format!(
                    "{n} forwards nothing to hairpin: set `nodes.{n}.behaviour.forward_ike_to`"
                ),
            );
        }
        axes.push((
            "hairpin".into(),
            values
                .get_ref()
                .iter()
                .map(|v| v.get_ref().to_string())
                .collect(),
            sp(values),
        ));
    }
    for (axis, values) in [
        ("keepalive", &f.matrix.keepalive),
        ("dpd", &f.matrix.dpd),
        ("fragmentation", &f.matrix.fragmentation),
        ("mobike", &f.matrix.mobike),
    ] {
        let Some(values) = values else { continue };
        if values.get_ref().is_empty() {
            d.err(
                sp(values),
                format!("matrix.{axis}"),
                "an axis needs at least one value",
            );
        }
        for v in values.get_ref() {
            knobs::endpoint_axis_value(&mut d, axis, v);
        }
        axes.push((axis.to_string(), names(values), sp(values)));
    }

    // --- timed steps
    // Nodes that forward in some cell (as `cell::Node::forwarding` decides).
    let routers: BTreeSet<String> = f
        .nodes
        .iter()
        .filter(|(n, spec)| {
            spec.get_ref().nat.is_some()
                || spec.get_ref().behaviour.is_some()
                || f.matrix.nat.contains_key(*n)
                || routes
                    .iter()
                    .any(|r| &r.node != *n && r.via_owner(&ifaces) == Some(n.as_str()))
        })
        .map(|(n, _)| n.clone())
        .collect();
    let steps = super::steps::validate(
        &mut d,
        &f,
        &nodes,
        &ifaces,
        &check_names,
        f.endpoints
            .iter()
            .map(|e| e.get_ref().node.get_ref().clone())
            .collect(),
        &routers,
    );
    let mut all_checks = check_names.clone();
    let mut wait_names = BTreeSet::new();
    for st in &steps {
        match &st.action {
            cell::Action::Checks(names) => {
                for c in names {
                    all_checks.insert(format!("{c}@{}", st.name));
                }
            }
            cell::Action::Wait { .. } => {
                wait_names.insert(st.name.clone());
            }
            _ => {}
        }
    }

    // --- expectations refer to known axes, values and checks
    for (i, e) in f.expect.iter().enumerate() {
        for (k, v) in &e.get_ref().when {
            match axes.iter().find(|(a, _, _)| a == k) {
                None => d.err(
                    sp(v),
                    format!("expect[{i}].when.{k}"),
                    format!(
                        "no matrix axis `{k}` (axes: {})",
                        axes.iter()
                            .map(|a| a.0.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some((_, vals, _)) => {
                    for x in v.get_ref().values() {
                        if !vals.iter().any(|y| y == x) {
                            d.err(
                                sp(v),
                                format!("expect[{i}].when.{k}"),
                                format!("`{x}` is not a value of axis {k} ({})", vals.join(", ")),
                            );
                        }
                    }
                }
            }
        }
        for (c, v) in &e.get_ref().checks {
            if !all_checks.contains(c) {
                d.err(
                    sp(v),
                    format!("expect[{i}].checks.{c}"),
                    format!("no check named `{c}` (a check a step runs again is `<check>@<step>`)"),
                );
            }
        }
        for (w, v) in &e.get_ref().waits {
            if !wait_names.contains(w) {
                d.err(
                    sp(v),
                    format!("expect[{i}].waits.{w}"),
                    format!("no wait step named `{w}`"),
                );
            }
        }
    }
    if f.endpoints.is_empty() && f.ppp.is_none() {
        d.err(
            0..0,
            "endpoints",
            "a scenario needs at least one initiator/responder pair (or a `[ppp]` layer)",
        );
    }

    if !d.out.is_empty() {
        return Err(ScenarioError::Invalid(d.out));
    }

    // --- expand the matrix
    let mut combos: Vec<Vec<(String, String)>> = vec![vec![]];
    for (axis, vals, _) in &axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                vals.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((axis.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    let mut cells = Vec::new();
    let ncombos = combos.len();
    // Routing problems, with the cells they occur in (often all of them).
    let mut unreachable: Vec<(Range<usize>, String, String, Vec<String>)> = Vec::new();
    for combo in combos {
        let value = |axis: &str| {
            combo
                .iter()
                .find(|(a, _)| a == axis)
                .map(|(_, v)| v.as_str())
        };
        let id = if combo.is_empty() {
            name.clone()
        } else {
            format!(
                "{name}/{}",
                combo
                    .iter()
                    .map(|(a, v)| format!("{a}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        // nodes with this cell's NAT profiles
        let mut cnodes = Vec::new();
        for (n, spec) in &f.nodes {
            let axis = if single_nat {
                "nat".to_string()
            } else {
                format!("nat.{n}")
            };
            let from_axis = f.matrix.nat.contains_key(n).then(|| value(&axis)).flatten();
            let prof_name = from_axis
                .map(str::to_string)
                .or_else(|| spec.get_ref().nat.as_ref().map(|p| p.get_ref().clone()));
            let nat = prof_name
                .as_deref()
                .and_then(|p| p.parse::<NatProfile>().ok())
                .unwrap_or(NatProfile::None);
            let out = outside.get(n).cloned().flatten();
            let mut knobs = nat.preset();
            if let Some(k) = file_knobs.get(n) {
                let ports_set = spec
                    .get_ref()
                    .behaviour
                    .as_ref()
                    .is_some_and(|b| b.get_ref().ports.is_some());
                knobs::merge(&mut knobs, k, ports_set);
            }
            if let (true, Some(v)) = (f.matrix.hairpin.contains_key(n), value("hairpin")) {
                knobs.hairpin = v == "true";
            }
            if (nat.translates() || knobs.forward_ike_to.is_some()) && out.is_none() {
                let span = spec
                    .get_ref()
                    .nat
                    .as_ref()
                    .map(sp)
                    .unwrap_or_else(|| sp(spec));
                d.err(
                    span,
                    format!("nodes.{n}.nat_outside"),
                    format!(
                        "NAT profile {nat} (or forward_ike_to) needs `nat_outside` (the neighbour on the public side)"
                    ),
                );
            }
            let forwarding = prof_name.is_some()
                || f.matrix.nat.contains_key(n)
                || spec.get_ref().behaviour.is_some()
                || routes
                    .iter()
                    .any(|r| &r.node != n && r.via_owner(&ifaces) == Some(n.as_str()));
            cnodes.push(cell::Node {
                name: n.clone(),
                nat,
                nat_outside: out.map(|o| o.0),
                forwarding,
                sysctl: spec
                    .get_ref()
                    .sysctl
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect(),
                pptp_helper: spec.get_ref().pptp_helper,
                knobs,
            });
        }
        // endpoints with this cell's NAT-T mode
        let mut endpoints = Vec::new();
        for (ei, e) in f.endpoints.iter().enumerate() {
            let e = e.get_ref();
            let k = ep_knobs[ei].with_axes(&value);
            let p = ep_of(e.peer.get_ref().first()).expect("validated peer");
            let remote_addr = (*e.role.get_ref() == Role::Initiator).then(|| {
                e.peer_addr
                    .as_ref()
                    .and_then(|a| a.get_ref().parse().ok())
                    .or_else(|| {
                        ifaces
                            .iter()
                            .find(|x| &x.node == e.peer.get_ref().first())
                            .map(|x| x.net.addr())
                    })
                    .expect("validated peer address")
            });
            let nat_t = value("nat_t")
                .and_then(|v| v.parse::<NatT>().ok())
                .unwrap_or(*e.nat_t.get_ref());
            let stack_name = value(&format!("stack.{}", e.node.get_ref()))
                .map(str::to_string)
                .or_else(|| e.stack.as_ref().map(|s| s.get_ref().clone()))
                .and_then(|s| s.parse::<StackName>().ok())
                .expect("validated stack");
            let stack = match stack_name {
                StackName::Strongswan => StackKind::StrongSwan,
                StackName::Libreswan => StackKind::Libreswan,
                StackName::Command => {
                    let c = e.command.as_ref().expect("validated command").get_ref();
                    let base = path.parent().unwrap_or(Path::new("."));
                    let abs = |p: &str| std::path::absolute(base.join(p)).unwrap_or(base.join(p));
                    StackKind::Command(cell::CommandSpec {
                        name: c
                            .name
                            .as_ref()
                            .map_or_else(|| "command".to_string(), |n| n.get_ref().clone()),
                        start: abs(c.start.get_ref()),
                        initiate: c.initiate.as_ref().map(|x| abs(x.get_ref())),
                        status: abs(c.status.get_ref()),
                    })
                }
            };
            endpoints.push(cell::Endpoint {
                node: e.node.get_ref().clone(),
                stack,
                role: *e.role.get_ref(),
                peer: e.peer.get_ref().first().clone(),
                others: e
                    .peer
                    .get_ref()
                    .all()
                    .into_iter()
                    .skip(1)
                    .filter_map(|n| {
                        Some(cell::OtherPeer {
                            node: n.clone(),
                            id: ep_of(n)?.id.get_ref().clone(),
                            inner: inner_of.get(n).copied(),
                        })
                    })
                    .collect(),
                remote_addr,
                local_addr: remote_addr
                    .and_then(|dst| next_hop(e.node.get_ref(), dst, &ifaces, &routes))
                    .map(|x| x.net.addr()),
                id: e.id.get_ref().clone(),
                peer_id: p.id.get_ref().clone(),
                psk: e
                    .psk
                    .as_ref()
                    .map(|p| p.get_ref().clone())
                    .unwrap_or_default(),
                inner: inner_of.get(e.node.get_ref()).copied(),
                peer_inner: inner_of.get(e.peer.get_ref().first()).copied(),
                ike: *e.ike.get_ref(),
                nat_t,
                mode: *e.mode.get_ref(),
                knobs: k,
            });
        }
        // A responder's own address is the one its initiator targets.
        for i in 0..endpoints.len() {
            if endpoints[i].role == Role::Responder {
                let me = endpoints[i].node.clone();
                endpoints[i].local_addr = endpoints
                    .iter()
                    .filter(|p| p.peer == me)
                    .filter_map(|p| p.remote_addr)
                    .find_map(|a| {
                        if ifaces.iter().any(|x| x.node == me && x.net.addr() == a) {
                            Some(a)
                        } else {
                            // Through a gateway that forwards IKE to it.
                            forwarded_to(a, &ifaces, &file_knobs)
                                .filter(|(_, n)| *n == me)
                                .map(|(to, _)| to)
                        }
                    });
            }
        }
        // IKE must be routable both ways, through this cell's NAT.
        for (i, e) in endpoints.iter().enumerate() {
            if let Some(dst) = e.remote_addr {
                if let Err(msg) = reachable(&e.node, dst, &ifaces, &routes, &cnodes) {
                    let msg = format!("IKE from {} to {dst}: {msg}", e.node);
                    let field = format!("endpoints[{i}].peer");
                    match unreachable.iter_mut().find(|u| u.1 == field && u.2 == msg) {
                        Some(u) => u.3.push(id.clone()),
                        None => unreachable.push((
                            sp(&f.endpoints[i].get_ref().peer),
                            field,
                            msg,
                            vec![id.clone()],
                        )),
                    }
                }
            }
        }
        // expectation
        let mut tunnel = None;
        let mut ppp_up = None;
        let mut encapsulation = None;
        let mut cexp = BTreeMap::new();
        let mut wexp = BTreeMap::new();
        for e in &f.expect {
            let e = e.get_ref();
            let applies = e
                .when
                .iter()
                .all(|(k, v)| value(k).is_some_and(|x| v.get_ref().values().contains(&x)));
            if applies {
                if let Some(t) = &e.tunnel {
                    tunnel = Some(*t.get_ref());
                }
                if let Some(t) = &e.ppp {
                    ppp_up = Some(*t.get_ref());
                }
                if let Some(x) = &e.encapsulation {
                    encapsulation = Some(*x.get_ref());
                }
                for (c, v) in &e.checks {
                    cexp.insert(c.clone(), *v.get_ref());
                }
                for (w, v) in &e.waits {
                    wexp.insert(w.clone(), *v.get_ref());
                }
            }
        }
        let espan = f.expect.first().map(sp).unwrap_or(0..0);
        if tunnel.is_none() && !endpoints.is_empty() {
            d.err(
                espan.clone(),
                "expect.tunnel",
                format!("no expectation sets `tunnel` for cell {id}"),
            );
            continue;
        }
        if ppp_up.is_none() && ppp.is_some() {
            d.err(
                espan.clone(),
                "expect.ppp",
                format!("no expectation sets `ppp` for cell {id}"),
            );
            continue;
        }
        for c in all_checks.iter() {
            if !cexp.contains_key(c) {
                d.err(
                    espan.clone(),
                    format!("expect.checks.{c}"),
                    format!("no expectation for check `{c}` in cell {id}"),
                );
            }
        }
        cells.push(Cell {
            id,
            scenario: name.clone(),
            file: path.to_path_buf(),
            axes: combo.clone(),
            nodes: cnodes,
            links: links.clone(),
            routes: routes.clone(),
            checks: checks.clone(),
            requires: requires.clone(),
            backend,
            // Encapsulation only means something for a tunnel that is up.
            expect: Expectation {
                tunnel: tunnel.filter(|_| !endpoints.is_empty()),
                ppp: ppp_up.filter(|_| ppp.is_some()),
                encapsulation: encapsulation.filter(|_| tunnel == Some(cell::TunnelExpect::Up)),
                checks: cexp,
                waits: wexp,
            },
            steps: steps.clone(),
            ppp: ppp.clone(),
            endpoints,
        });
    }
    for (span, field, msg, in_cells) in unreachable {
        if in_cells.len() == ncombos {
            d.err(span, field, msg);
        } else {
            d.err(
                span,
                field,
                format!("in cells {}: {msg}", in_cells.join(", ")),
            );
        }
    }
    if !d.out.is_empty() {
        return Err(ScenarioError::Invalid(d.out));
    }
    Ok(Scenario {
        name,
        path: path.to_path_buf(),
        description: f.description,
        cells,
    })
}

impl cell::Route {
    fn via_owner<'a>(&self, ifaces: &'a [Iface]) -> Option<&'a str> {
        ifaces
            .iter()
            .find(|x| x.net.addr() == self.via)
            .map(|x| x.node.as_str())
    }
}

/// Where a node sends a packet for `dst`: the interface and the next node.
fn next_hop<'a>(
    node: &str,
    dst: IpAddr,
    ifaces: &'a [Iface],
    routes: &[cell::Route],
) -> Option<&'a Iface> {
    let connected = ifaces
        .iter()
        .filter(|x| x.node == node && x.net.contains(&dst))
        .max_by_key(|x| x.net.prefix_len());
    let routed = routes
        .iter()
        .filter(|r| r.node == node && r.dst.contains(&dst))
        .max_by_key(|r| r.dst.prefix_len());
    match (connected, routed) {
        (Some(c), Some(r)) if r.dst.prefix_len() > c.net.prefix_len() => ifaces
            .iter()
            .find(|x| x.node == node && x.peer_addr == r.via),
        (Some(c), _) => (c.peer_addr == dst).then_some(c),
        (None, Some(r)) => ifaces
            .iter()
            .find(|x| x.node == node && x.peer_addr == r.via),
        (None, None) => None,
    }
}

/// Walk the forward path from `from` to `dst`, applying source NAT on the
/// way, then the reply path back to the (translated) source.
fn reachable(
    from: &str,
    dst: IpAddr,
    ifaces: &[Iface],
    routes: &[cell::Route],
    nodes: &[cell::Node],
) -> Result<(), String> {
    let owns = |n: &str, a: IpAddr| ifaces.iter().any(|x| x.node == n && x.net.addr() == a);
    let Some(first) = next_hop(from, dst, ifaces, routes) else {
        return Err(format!("{from} has no route to {dst}"));
    };
    let mut src = first.net.addr();
    let mut nats: Vec<(String, IpAddr)> = Vec::new();
    let mut at = from.to_string();
    for _ in 0..16 {
        if owns(&at, dst) {
            // reply path: back to what the responder saw as source, undoing NATs
            let mut back_at = at.clone();
            let mut target = src;
            for _ in 0..32 {
                if owns(&back_at, target) {
                    match nats.pop() {
                        Some((gw, orig)) if gw == back_at => target = orig,
                        Some(_) => return Err("inconsistent NAT path".into()),
                        None => return Ok(()),
                    }
                    if owns(&back_at, target) {
                        continue;
                    }
                }
                let Some(hop) = next_hop(&back_at, target, ifaces, routes) else {
                    return Err(format!(
                        "replies cannot return: {back_at} has no route to {target}"
                    ));
                };
                back_at = hop.peer_node.clone();
            }
            return Err("reply path loops".into());
        }
        let Some(hop) = next_hop(&at, dst, ifaces, routes) else {
            return Err(format!("{at} has no route to {dst}"));
        };
        if let Some(n) = nodes.iter().find(|n| n.name == at) {
            if n.nat.translates() && n.nat_outside.as_deref() == Some(hop.name.as_str()) {
                nats.push((at.clone(), src));
                src = hop.net.addr();
            } else if at != from && !n.forwarding {
                return Err(format!("{at} would have to forward, but is not a router"));
            }
        }
        at = hop.peer_node.clone();
    }
    Err("path loops".into())
}

/// The inside address and node a gateway forwards IKE sent to `addr` to
/// (`behaviour.forward_ike_to`), if `addr` is such a gateway's address.
fn forwarded_to(
    addr: IpAddr,
    ifaces: &[Iface],
    knobs: &BTreeMap<String, Knobs>,
) -> Option<(IpAddr, String)> {
    let gw = ifaces.iter().find(|x| x.net.addr() == addr)?;
    let to = knobs.get(&gw.node)?.forward_ike_to?;
    let owner = ifaces.iter().find(|x| x.net.addr() == to)?;
    Some((to, owner.node.clone()))
}
