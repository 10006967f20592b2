//! Timed events (`[[steps]]`): each step has exactly one action; names,
//! nodes, interfaces, checks and classes are checked against the file.

use std::collections::BTreeSet;

use toml::Spanned;

use super::super::file::{
    BlockStepSpec, EndpointSpec, IkeStepSpec, LinkStepSpec, ScenarioFile, StepSpec, WaitSpec,
};
use super::diag::{sp, Diags};
use super::knobs::duration;
use super::network::Network;
use crate::model::Class;
use crate::model::{known, Action, Event, IkeOp, Role, Step};
use crate::model::{Block, NatProfile};

/// Packet classes a `wait` step may name (those the capture tells apart
/// without knowing the checks' flows).
const WAIT_CLASSES: [Class; 7] = [
    Class::Ike500,
    Class::Ike4500,
    Class::EspInUdp,
    Class::NattKeepalive,
    Class::Esp,
    Class::Ah,
    Class::FragmentFirst,
];

/// What a step may refer to.
struct Refs<'a> {
    f: &'a ScenarioFile,
    net: &'a Network,
    checks: &'a BTreeSet<String>,
    /// Nodes with an endpoint (IKE/CHILD events are observed there).
    endpoint_nodes: &'a BTreeSet<String>,
}

/// Validate the file's steps. `endpoint_nodes` are the nodes with an
/// endpoint (IKE/CHILD events are observed there).
pub(super) fn validate(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    net: &Network,
    checks: &BTreeSet<String>,
    endpoint_nodes: &BTreeSet<String>,
) -> Vec<Step> {
    let refs = Refs {
        f,
        net,
        checks,
        endpoint_nodes,
    };
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for (i, s) in f.steps.iter().enumerate() {
        let field = format!("steps[{i}]");
        let name = name(d, i, s, &field, &mut names);
        if let Some(action) = action(d, &refs, s, &field) {
            out.push(Step { name, action });
        }
    }
    out
}

/// The step's name (default `step<N>`): usable in `expect`, and unique.
fn name(
    d: &mut Diags<'_>,
    i: usize,
    s: &Spanned<StepSpec>,
    field: &str,
    names: &mut BTreeSet<String>,
) -> String {
    let st = s.get_ref();
    let name = st
        .name
        .as_ref()
        .map_or_else(|| format!("step{}", i + 1), |n| n.get_ref().clone());
    if name.is_empty() || name.contains(['@', ' ']) {
        d.err(
            st.name.as_ref().map_or(sp(s), sp),
            format!("{field}.name"),
            "step names are non-empty, without '@' or spaces",
        );
    }
    if !names.insert(name.clone()) {
        d.err(
            st.name.as_ref().map_or(sp(s), sp),
            format!("{field}.name"),
            format!("duplicate step name `{name}`"),
        );
    }
    name
}

/// The step's one action.
fn action(
    d: &mut Diags<'_>,
    refs: &Refs<'_>,
    s: &Spanned<StepSpec>,
    field: &str,
) -> Option<Action> {
    let st = s.get_ref();
    let set = [
        st.pause.is_some(),
        st.wait.is_some(),
        st.checks.is_some(),
        st.nat_reboot.is_some(),
        st.link.is_some(),
        st.block.is_some(),
        st.unblock.is_some(),
        st.ike.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if set != 1 {
        d.err(
            sp(s),
            field,
            format!("a step has exactly one action (pause, wait, checks, nat_reboot, link, block, unblock, ike); this one has {set}"),
        );
        return None;
    }
    if let (Some(r), None) = (&st.port_range, &st.nat_reboot) {
        d.err(
            sp(r),
            format!("{field}.port_range"),
            "`port_range` goes with `nat_reboot`",
        );
    }
    if let Some(p) = &st.pause {
        match duration(p.get_ref()) {
            Ok(x) => Some(Action::Pause(x)),
            Err(m) => {
                d.err(sp(p), format!("{field}.pause"), m);
                None
            }
        }
    } else if let Some(w) = &st.wait {
        wait(d, refs, w.get_ref(), &format!("{field}.wait"))
    } else if let Some(c) = &st.checks {
        Some(rerun(d, refs, c, field))
    } else if let Some(g) = &st.nat_reboot {
        Some(nat_reboot(d, refs, g, st.port_range.as_ref(), field))
    } else if let Some(k) = &st.ike {
        ike(d, refs, k.get_ref(), &format!("{field}.ike"))
    } else if let Some(l) = &st.link {
        link(d, refs, l.get_ref(), &format!("{field}.link"))
    } else if let Some(b) = &st.block {
        block(d, refs, b.get_ref(), true, &format!("{field}.block"))
    } else {
        let b = st.unblock.as_ref()?;
        block(d, refs, b.get_ref(), false, &format!("{field}.unblock"))
    }
}

/// A node a step acts on.
fn node(d: &mut Diags<'_>, refs: &Refs<'_>, n: &Spanned<String>, f: String) -> bool {
    let ok = refs.net.nodes.contains(n.get_ref());
    if !ok {
        d.err(sp(n), f, format!("unknown node `{}`", n.get_ref()));
    }
    ok
}

/// An interface of node `n` a step acts on.
fn iface_of(d: &mut Diags<'_>, refs: &Refs<'_>, n: &str, i: &Spanned<String>, f: String) -> bool {
    let ifaces = &refs.net.ifaces;
    let ok = ifaces.iter().any(|x| x.node == n && &x.name == i.get_ref());
    if !ok && refs.net.nodes.contains(n) {
        let known: Vec<&str> = ifaces
            .iter()
            .filter(|x| x.node == n)
            .map(|x| x.name.as_str())
            .collect();
        d.err(
            sp(i),
            f,
            format!(
                "{n} has no interface `{}` (it has: {})",
                i.get_ref(),
                known.join(", ")
            ),
        );
    }
    ok
}

/// `wait = { event, node, timeout, ... }`.
fn wait(d: &mut Diags<'_>, refs: &Refs<'_>, w: &WaitSpec, f: &str) -> Option<Action> {
    let known = node(d, refs, &w.node, format!("{f}.node"));
    let timeout = match duration(w.timeout.get_ref()) {
        Ok(x) => Some(x),
        Err(m) => {
            d.err(sp(&w.timeout), format!("{f}.timeout"), m);
            None
        }
    };
    let event = match w.event.get_ref().as_str() {
        "ike-up" => Some(Event::IkeUp),
        "ike-down" => Some(Event::IkeDown),
        "child-up" => Some(Event::ChildUp),
        "child-down" => Some(Event::ChildDown),
        "peer-moved" => Some(Event::PeerMoved),
        "child-rekeyed" => Some(Event::ChildRekeyed),
        "packet" => packet(d, refs, w, f),
        other => {
            d.err(
                sp(&w.event),
                format!("{f}.event"),
                format!("unknown event `{other}` (known: ike-up, ike-down, child-up, child-down, peer-moved, child-rekeyed, packet)"),
            );
            None
        }
    };
    if let Some(e) = &event {
        if !matches!(e, Event::Packet { .. })
            && known
            && !refs.endpoint_nodes.contains(w.node.get_ref())
        {
            d.err(
                sp(&w.node),
                format!("{f}.node"),
                format!("{} has no endpoint to observe", w.node.get_ref()),
            );
        }
    }
    match (known, event, timeout) {
        (true, Some(event), Some(timeout)) => Some(Action::Wait {
            node: w.node.get_ref().clone(),
            event,
            timeout,
        }),
        _ => None,
    }
}

/// A `packet` event: a class on an interface of the node.
fn packet(d: &mut Diags<'_>, refs: &Refs<'_>, w: &WaitSpec, f: &str) -> Option<Event> {
    let iface = match &w.iface {
        Some(i) => iface_of(d, refs, w.node.get_ref(), i, format!("{f}.iface"))
            .then(|| i.get_ref().clone()),
        None => {
            d.err(
                sp(&w.event),
                format!("{f}.iface"),
                "a packet event needs `iface`",
            );
            None
        }
    };
    let class = match &w.class {
        Some(c) => {
            let x = WAIT_CLASSES
                .into_iter()
                .find(|k| k.to_string() == *c.get_ref());
            if x.is_none() {
                d.err(
                    sp(c),
                    format!("{f}.class"),
                    format!(
                        "unknown packet class `{}` (known: {})",
                        c.get_ref(),
                        WAIT_CLASSES.map(|k| k.to_string()).join(", ")
                    ),
                );
            }
            x
        }
        None => {
            d.err(
                sp(&w.event),
                format!("{f}.class"),
                "a packet event needs `class`",
            );
            None
        }
    };
    iface
        .zip(class)
        .map(|(iface, class)| Event::Packet { iface, class })
}

/// `checks = [...]`: run these checks again.
fn rerun(
    d: &mut Diags<'_>,
    refs: &Refs<'_>,
    c: &Spanned<Vec<Spanned<String>>>,
    field: &str,
) -> Action {
    for n in c.get_ref() {
        if !refs.checks.contains(n.get_ref()) {
            d.err(
                sp(n),
                format!("{field}.checks"),
                format!("no check named `{}`", n.get_ref()),
            );
        }
    }
    if c.get_ref().is_empty() {
        d.err(sp(c), format!("{field}.checks"), "name at least one check");
    }
    Action::Checks(c.get_ref().iter().map(|n| n.get_ref().clone()).collect())
}

/// `ike = { node, action, during, timeout }`: endpoints that exist, an
/// action they can take, known checks.
fn ike(d: &mut Diags<'_>, refs: &Refs<'_>, k: &IkeStepSpec, field: &str) -> Option<Action> {
    let nodes: Vec<String> = k.node.get_ref().all().into_iter().cloned().collect();
    for n in &nodes {
        if !refs.endpoint_nodes.contains(n) {
            d.err(
                sp(&k.node),
                format!("{field}.node"),
                format!("`{n}` has no endpoint"),
            );
        }
    }
    let op = match k.action.get_ref().parse::<IkeOp>() {
        Ok(op) => Some(op),
        Err(_) => {
            let msg = format!(
                "unknown IKE action `{}` (known: {})",
                k.action.get_ref(),
                known::<IkeOp>()
            );
            d.err(sp(&k.action), format!("{field}.action"), msg);
            None
        }
    };
    if op == Some(IkeOp::Initiate) {
        // An initiator, or a responder told where to send IKE.
        let knows_peer =
            |e: &EndpointSpec| *e.role.get_ref() == Role::Initiator || e.peer_addr.is_some();
        if let Some(n) = nodes
            .iter()
            .find(|n| endpoint_on(refs.f, n).is_some_and(|e| !knows_peer(e)))
        {
            let msg = format!("{n} is a responder with no `peer_addr`: give it the address to initiate to (its peer's, or the NAT's in front of the peer), or initiate from the initiator");
            d.err(sp(&k.action), format!("{field}.action"), msg);
        }
        if let Some(n) = nodes
            .iter()
            .find(|n| endpoint_on(refs.f, n).is_some_and(|e| *e.ike.get_ref() == 0))
        {
            let msg = format!("{n} takes either IKE version (`ike = 0`) but would initiate with IKEv2 only: give it its peer's version to initiate");
            d.err(sp(&k.action), format!("{field}.action"), msg);
        }
    }
    for c in &k.during {
        if !refs.checks.contains(c.get_ref()) {
            d.err(
                sp(c),
                format!("{field}.during"),
                format!("unknown check `{}`", c.get_ref()),
            );
        }
    }
    let timeout = match &k.timeout {
        Some(t) => duration(t.get_ref())
            .map_err(|m| d.err(sp(t), format!("{field}.timeout"), m))
            .ok()?,
        None => std::time::Duration::from_secs(5),
    };
    Some(Action::Ike {
        nodes,
        op: op?,
        during: k.during.iter().map(|c| c.get_ref().clone()).collect(),
        timeout,
    })
}

/// The endpoint on node `n`, if it has one (a node without is reported
/// on its own).
fn endpoint_on<'a>(f: &'a ScenarioFile, n: &str) -> Option<&'a EndpointSpec> {
    f.endpoints
        .iter()
        .map(|e| e.get_ref())
        .find(|e| e.node.get_ref() == n)
}

/// `nat_reboot = "<gateway>"`, with an optional `port_range`.
fn nat_reboot(
    d: &mut Diags<'_>,
    refs: &Refs<'_>,
    g: &Spanned<String>,
    range: Option<&Spanned<String>>,
    field: &str,
) -> Action {
    let known = node(d, refs, g, format!("{field}.nat_reboot"));
    // Every profile the gateway has in any cell must translate: only then
    // are there mappings to forget and ports to move.
    let f = refs.f;
    let profiles: Vec<String> = match f.matrix.nat.get(g.get_ref()) {
        Some(v) => v.get_ref().iter().map(|x| x.get_ref().clone()).collect(),
        None => f
            .nodes
            .get(g.get_ref())
            .and_then(|n| n.get_ref().nat.as_ref())
            .map(|p| vec![p.get_ref().clone()])
            .unwrap_or_default(),
    };
    let translates = !profiles.is_empty()
        && profiles
            .iter()
            .all(|p| p.parse::<NatProfile>().is_ok_and(NatProfile::translates));
    if known && !translates {
        d.err(
            sp(g),
            format!("{field}.nat_reboot"),
            format!(
                "{} is not a NAT gateway that translates in every cell (profiles: {})",
                g.get_ref(),
                if profiles.is_empty() {
                    "none".into()
                } else {
                    profiles.join(", ")
                }
            ),
        );
    }
    Action::NatReboot {
        gw: g.get_ref().clone(),
        range: range.and_then(|r| super::knobs::port_range(d, r, field)),
    }
}

/// `link = { node, iface, up, mtu }`.
fn link(d: &mut Diags<'_>, refs: &Refs<'_>, l: &LinkStepSpec, f: &str) -> Option<Action> {
    let ok = node(d, refs, &l.node, format!("{f}.node"))
        && iface_of(d, refs, l.node.get_ref(), &l.iface, format!("{f}.iface"));
    if l.up.is_none() && l.mtu.is_none() {
        d.err(sp(&l.iface), f, "set `up` and/or `mtu`");
    }
    if let Some(m) = &l.mtu {
        if !(576..=9000).contains(m.get_ref()) {
            d.err(
                sp(m),
                format!("{f}.mtu"),
                "MTU must be between 576 and 9000",
            );
        }
    }
    ok.then(|| Action::Link {
        node: l.node.get_ref().clone(),
        iface: l.iface.get_ref().clone(),
        up: l.up.as_ref().map(|x| *x.get_ref()),
        mtu: l.mtu.as_ref().map(|x| *x.get_ref()),
    })
}

/// `block`/`unblock = { node, class }`.
fn block(
    d: &mut Diags<'_>,
    refs: &Refs<'_>,
    b: &BlockStepSpec,
    on: bool,
    f: &str,
) -> Option<Action> {
    let known = node(d, refs, &b.node, format!("{f}.node"));
    // The drops hook packets a node forwards, not its own.
    if known && !refs.net.forwards(refs.f, b.node.get_ref()) {
        d.err(
            sp(&b.node),
            format!("{f}.node"),
            format!(
                "{} forwards nothing (no `nat`, `behaviour` or routes through it): block at a gateway or router",
                b.node.get_ref()
            ),
        );
    }
    let class = b.class.get_ref().parse::<Block>().ok();
    if class.is_none() {
        d.err(
            sp(&b.class),
            format!("{f}.class"),
            format!(
                "unknown packet class `{}` (known: {})",
                b.class.get_ref(),
                crate::model::known::<Block>()
            ),
        );
    }
    match (known, class) {
        (true, Some(class)) => Some(Action::Block {
            node: b.node.get_ref().clone(),
            class,
            on,
        }),
        _ => None,
    }
}
