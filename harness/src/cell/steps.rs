//! Timed events: a cell's `[[steps]]`, run in order after the checks. Each
//! step's observations go into the outcome in order. Waits poll the
//! endpoints (or the live capture) with a bounded timeout; the only sleeps
//! are the file's own bounded `pause` steps.

use std::time::{Duration, Instant};

use super::checks;
use crate::capture::Capture;
use crate::error::{StackError, TopologyError};
use crate::model::{Action, Block, Cell, Event, IkeOp, Knobs, NextHop, SaIds, Step, WaitExpect};
use crate::outcome::{StepOutcome, StepView};
use crate::stack::{EndpointState, Running};
use crate::topology::{link, Topology};

/// How often a wait asks the daemons (or the capture) again.
const POLL: Duration = Duration::from_millis(50);
/// Reads [`settled`] makes at most.
const SETTLE_READS: usize = 4;

/// Why a step could not be carried out (a mismatch of the cell).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A packet wait without the capture.
    #[error("a packet wait needs the capture (do not use --no-capture)")]
    NoCapture,
    /// A wait on a node without an endpoint.
    #[error("node {0} has no endpoint to watch")]
    NoEndpoint(String),
    /// A netlink or nft request failed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// An interface set up did not carry packets in time.
    #[error("{0} did not carry packets within {1:?} of being set up")]
    LinkNotUp(String, Duration),
    /// An endpoint could not be asked for its SAs.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The gateway's mappings could not be flushed.
    #[error("cannot flush {gw}'s connection tracking: {source}")]
    Conntrack {
        /// Gateway.
        gw: String,
        /// OS error.
        source: std::io::Error,
    },
}

/// How long an interface set up may take to carry packets (the kernel's
/// link watcher runs within a second).
const LINK_UP: Duration = Duration::from_secs(3);

/// Run every step of `cell`.
pub async fn run(
    cell: &Cell,
    topo: &mut Topology,
    stacks: &mut [Running],
    capture: Option<&Capture>,
    reply_wait: Duration,
) -> Vec<StepOutcome> {
    if cell.steps.is_empty() {
        return Vec::new();
    }
    let mut stage = Stage::new(cell, topo, stacks, capture, reply_wait).await;
    let mut out = Vec::new();
    for step in &cell.steps {
        out.push(stage.step(step).await);
    }
    out
}

/// What the steps act on, and each endpoint's peer address:port as last
/// recorded: before the steps, then after each wait and checks step.
/// `peer-moved` compares with it, so a move that happens between a reboot
/// and the wait still counts.
struct Stage<'a> {
    cell: &'a Cell,
    topo: &'a mut Topology,
    stacks: &'a mut [Running],
    capture: Option<&'a Capture>,
    peers: Vec<Option<String>>,
    /// Each endpoint's installed CHILD SAs, as last recorded.
    children: Vec<u32>,
    /// Their ids, as last recorded (`child-rekeyed` compares with them).
    child_ids: Vec<Vec<String>>,
    reply_wait: Duration,
}

impl<'a> Stage<'a> {
    async fn new(
        cell: &'a Cell,
        topo: &'a mut Topology,
        stacks: &'a mut [Running],
        capture: Option<&'a Capture>,
        reply_wait: Duration,
    ) -> Stage<'a> {
        let (mut peers, mut child_ids) = (Vec::new(), Vec::new());
        for s in stacks.iter_mut() {
            let st = s.sa_states().await.ok();
            peers.push(st.as_ref().and_then(remote));
            child_ids.push(st.map(|st| st.ids.children).unwrap_or_default());
        }
        Stage {
            cell,
            topo,
            stacks,
            capture,
            peers,
            children: Vec::new(),
            child_ids,
            reply_wait,
        }
    }

    /// Carry out one step and record what it did and what was seen.
    async fn step(&mut self, step: &Step) -> StepOutcome {
        let mut o = StepOutcome {
            name: step.name.clone(),
            action: describe(step),
            wait: None,
            checks: vec![],
            endpoints: vec![],
            error: None,
        };
        tracing::debug!(cell = %self.cell.id, step = %step.name, action = %o.action, "step");
        let done = self.carry_out(step, &mut o).await;
        o.error = done.err().map(|e| e.to_string());
        if matches!(
            step.action,
            Action::Wait { .. } | Action::Checks(_) | Action::Ike { .. }
        ) {
            // Right after an event the daemons may still be moving (a rekey
            // after an address update): endpoints are shown after checks,
            // and after an IKE action once it has taken effect.
            // Not after a restart either: its peer may not have heard yet.
            let show = !matches!(
                step.action,
                Action::Wait { .. }
                    | Action::Ike {
                        op: IkeOp::Restart | IkeOp::Crash,
                        ..
                    }
            );
            o.endpoints = self.record(show).await;
            if matches!(step.action, Action::Ike { .. }) {
                for (v, n) in o.endpoints.iter_mut().zip(&self.children) {
                    v.children = Some(*n);
                }
            }
        }
        o
    }

    /// Do what the step says, noting in `o` what it found.
    async fn carry_out(&mut self, step: &Step, o: &mut StepOutcome) -> Result<(), StepError> {
        match &step.action {
            Action::Pause(d) => {
                tokio::time::sleep(*d).await;
                Ok(())
            }
            Action::Wait {
                node,
                event,
                timeout,
            } => self
                .wait(node, event, *timeout)
                .await
                .map(|seen| o.wait = Some(ended(seen))),
            Action::Checks(names) => {
                o.checks = self.checks(names, &step.name).await;
                Ok(())
            }
            Action::NatReboot { gw, range } => self.reboot(gw, *range).await.map(|range| {
                o.action = format!("nat-reboot {gw}: mappings flushed, outside ports now {range}")
            }),
            Action::Ike {
                nodes,
                op,
                during,
                timeout,
            } => self
                .ike(nodes, *op, during, *timeout, &step.name)
                .await
                .map(|e| {
                    if !e.refused.is_empty() {
                        o.action = format!("{}: {}", o.action, refusals(&e.refused));
                    }
                    o.checks = e.checks;
                    o.wait = Some(ended(e.seen));
                }),
            Action::Link {
                node,
                iface,
                up,
                mtu,
            } => self.link(node, iface, *up, *mtu).await,
            Action::Block { node, class, on } => self.block(node, *class, *on).await,
        }
    }

    /// Record every endpoint's peer and installed CHILD SAs; with `show`,
    /// their views too.
    async fn record(&mut self, show: bool) -> Vec<StepView> {
        let mut views = Vec::new();
        self.children.clear();
        for (i, s) in self.stacks.iter_mut().enumerate() {
            let st = settled(s).await;
            self.peers[i] = remote(&st);
            self.children.push(st.ids.children.len() as u32);
            self.child_ids[i] = st.ids.children.clone();
            if show {
                views.push(view(&self.cell.endpoints[i].node, &st));
            }
        }
        views
    }

    /// Run the named checks again; results are named `<check>@<step>`.
    async fn checks(&self, names: &[String], step: &str) -> Vec<crate::outcome::CheckResult> {
        rerun(self.cell, self.topo, names, step, self.reply_wait).await
    }

    /// Carry out `op` at every endpoint on `nodes` at once, with the
    /// `during` checks running meanwhile; then wait (at most `timeout`)
    /// until it has taken effect everywhere. Whether it did, and the
    /// checks' results.
    async fn ike(
        &mut self,
        nodes: &[String],
        op: IkeOp,
        during: &[String],
        timeout: Duration,
        step: &str,
    ) -> Result<IkeEnded, StepError> {
        let cell = self.cell;
        let acting: Vec<usize> = (0..cell.endpoints.len())
            .filter(|i| nodes.contains(&cell.endpoints[*i].node))
            .collect();
        let mut before = Vec::new();
        for &i in &acting {
            before.push(self.stacks[i].sa_states().await?.ids);
        }
        let topo: &Topology = self.topo;
        let checks = rerun(cell, topo, during, step, self.reply_wait);
        let stacks = &mut *self.stacks;
        let deadline = Instant::now() + timeout;
        let mut refused = Vec::new();
        let effect = async {
            let acts = stacks
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| acting.contains(i))
                .map(|(i, s)| s.act(op, topo.node(&cell.endpoints[i].node)));
            for r in futures::future::join_all(acts).await {
                match r {
                    // The daemon tried and gave up: an outcome, not a fault.
                    Err(StackError::Refused { node, detail }) => refused.push((node, detail)),
                    r => r?,
                }
            }
            if !refused.is_empty() {
                return Ok(false);
            }
            for (k, &i) in acting.iter().enumerate() {
                let done = loop {
                    let st = stacks[i].sa_states().await?;
                    if took_effect(op, &before[k], &st) {
                        break true;
                    }
                    if Instant::now() >= deadline {
                        break false;
                    }
                    tokio::time::sleep(POLL).await;
                };
                if !done {
                    return Ok(false);
                }
            }
            Ok::<bool, StepError>(true)
        };
        let (seen, checks) = tokio::join!(effect, checks);
        Ok(IkeEnded {
            seen: seen?,
            checks,
            refused,
        })
    }

    /// Wait until `event` happens on `node` or `timeout` passes; `Ok(true)`
    /// if it happened.
    async fn wait(
        &mut self,
        node: &str,
        event: &Event,
        timeout: Duration,
    ) -> Result<bool, StepError> {
        let deadline = Instant::now() + timeout;
        if let Event::Packet { iface, class } = event {
            let cap = self.capture.ok_or(StepError::NoCapture)?;
            let idx = link::index(self.topo.node(node), iface).await?;
            let before = cap.seen(node, idx, *class);
            return Ok(until(deadline, || async { cap.seen(node, idx, *class) > before }).await);
        }
        let i = self
            .cell
            .endpoints
            .iter()
            .position(|e| e.node == node)
            .ok_or_else(|| StepError::NoEndpoint(node.to_string()))?;
        let start = self.peers[i].clone();
        let old_children = self.child_ids[i].clone();
        let stack = &mut self.stacks[i];
        loop {
            let st = stack.sa_states().await?;
            let rekeyed = st.is_up() && st.ids.children.iter().all(|c| !old_children.contains(c));
            if happened(event, &st, start.as_deref()) || (*event == Event::ChildRekeyed && rekeyed)
            {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Flush the gateway's mappings and move its outside port range (to
    /// `to`, or the next one), as a rebooted home router does. Returns the
    /// new range.
    async fn reboot(&mut self, gw: &str, to: Option<(u16, u16)>) -> Result<String, StepError> {
        let mut range = (0, 0);
        self.topo
            .reconfigure(gw, |g| {
                range = to.unwrap_or_else(|| next_range(&g.knobs));
                g.knobs.port_range = Some(range);
            })
            .await?;
        self.topo
            .node(gw)
            .flush_conntrack()
            .map_err(|source| StepError::Conntrack {
                gw: gw.to_string(),
                source,
            })?;
        Ok(format!("{}-{}", range.0, range.1))
    }

    /// Take an interface down or up, or change its MTU.
    async fn link(
        &self,
        node: &str,
        iface: &str,
        up: Option<bool>,
        mtu: Option<u32>,
    ) -> Result<(), StepError> {
        let ns = self.topo.node(node);
        let idx = link::index(ns, iface).await?;
        if let Some(m) = mtu {
            link::mtu(ns, idx, iface, m).await?;
        }
        match up {
            Some(true) => {
                link::up(ns, idx, iface).await?;
                self.carrying(node, iface).await?;
                self.restore_routes(node, iface).await
            }
            Some(false) => Ok(link::down(ns, idx, iface).await?),
            None => Ok(()),
        }
    }

    /// Wait until both ends of the wire `node`/`iface` carry packets again
    /// (bounded by [`LINK_UP`]), so a check right after the step does not
    /// meet an interface the kernel has not yet activated.
    async fn carrying(&self, node: &str, iface: &str) -> Result<(), StepError> {
        let peer = self.cell.links.iter().find_map(|l| {
            let (a, b) = (&l.a, &l.b);
            match () {
                _ if a.node == node && a.iface == iface => Some(b),
                _ if b.node == node && b.iface == iface => Some(a),
                _ => None,
            }
        });
        let ends =
            std::iter::once((node, iface)).chain(peer.map(|p| (p.node.as_str(), p.iface.as_str())));
        let deadline = tokio::time::Instant::now() + LINK_UP;
        for (n, i) in ends {
            let ns = self.topo.node(n);
            let idx = link::index(ns, i).await?;
            while !link::carries(ns, idx, i).await? {
                if tokio::time::Instant::now() >= deadline {
                    return Err(StepError::LinkNotUp(format!("{n}:{i}"), LINK_UP));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(())
    }

    /// Taking an interface down deletes the routes through it; the cell's
    /// own come back here. (An IKE daemon's routes, e.g. strongSwan's table
    /// 220 with kernel IPsec, do not.)
    async fn restore_routes(&self, node: &str, iface: &str) -> Result<(), StepError> {
        let ns = self.topo.node(node);
        let net = self
            .cell
            .ends()
            .find(|e| e.node == node && e.iface == iface)
            .map(|e| e.addr.trunc());
        let leaves = |r: &&crate::model::Route| match &r.hop {
            NextHop::Via(v) => net.is_some_and(|n| n.contains(v)),
            NextHop::Dev(d) => d == iface,
        };
        for r in self
            .cell
            .routes
            .iter()
            .filter(|r| r.node == node)
            .filter(leaves)
        {
            link::add_route(ns, r).await?;
        }
        Ok(())
    }

    /// Start or stop dropping `class` at `node`.
    async fn block(&mut self, node: &str, class: Block, on: bool) -> Result<(), StepError> {
        self.topo
            .reconfigure(node, |g| {
                if on {
                    g.knobs.add_block(class);
                } else {
                    g.knobs.block.retain(|b| *b != class);
                }
            })
            .await?;
        Ok(())
    }
}

/// Poll `cond` until it holds (true) or `deadline` passes (false).
async fn until<F, Fut>(deadline: Instant, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether an endpoint's state shows `event`; `start` is its peer as last
/// recorded.
fn happened(event: &Event, st: &EndpointState, start: Option<&str>) -> bool {
    let ike_up = st.ike.as_ref().is_some_and(crate::model::IkeSa::is_up);
    let child_up = st.child.as_ref().is_some_and(crate::model::ChildSa::is_up);
    match event {
        Event::IkeUp => ike_up,
        Event::IkeDown => !ike_up,
        Event::ChildUp => child_up,
        Event::ChildDown => !child_up,
        Event::PeerMoved => st.ike.is_some() && remote(st).as_deref() != start,
        // Needs the ids recorded before: see `Stage::wait`.
        Event::ChildRekeyed => false,
        // Packets are counted by the capture, not the endpoint.
        Event::Packet { .. } => false,
    }
}

/// The step as one line for the outcome.
fn describe(step: &Step) -> String {
    match &step.action {
        Action::Pause(d) => format!("pause {}", human(*d)),
        Action::Wait {
            node,
            event,
            timeout,
        } => format!(
            "wait for {} on {node} (at most {})",
            event.label(),
            human(*timeout)
        ),
        Action::Checks(n) => format!("checks {}", n.join(", ")),
        Action::NatReboot { gw, .. } => format!("nat-reboot {gw}"),
        Action::Ike {
            nodes, op, during, ..
        } => {
            let mut s = format!("{op} at {}", nodes.join(" and "));
            if !during.is_empty() {
                s.push_str(&format!(" during {}", during.join(", ")));
            }
            s
        }
        Action::Link {
            node,
            iface,
            up,
            mtu,
        } => {
            let mut s = format!("link {node}:{iface}");
            if let Some(u) = up {
                s.push_str(if *u { " up" } else { " down" });
            }
            if let Some(m) = mtu {
                s.push_str(&format!(" mtu {m}"));
            }
            s
        }
        Action::Block { node, class, on } => format!(
            "{} {} at {node}",
            if *on { "block" } else { "unblock" },
            class
        ),
    }
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Run the named checks of `cell`; results are named `<check>@<step>`.
async fn rerun(
    cell: &Cell,
    topo: &Topology,
    names: &[String],
    step: &str,
    reply_wait: Duration,
) -> Vec<crate::outcome::CheckResult> {
    let runs = cell
        .checks
        .iter()
        .filter(|c| names.contains(&c.name))
        .map(|c| checks::run(c, topo.node(&c.from), topo.node(&c.to), reply_wait));
    let mut results = futures::future::join_all(runs).await;
    for c in &mut results {
        c.name = format!("{}@{step}", c.name);
    }
    results
}

/// How an `ike` step ended.
struct IkeEnded {
    /// It took effect within its timeout.
    seen: bool,
    /// The `during` checks' results.
    checks: Vec<crate::outcome::CheckResult>,
    /// Each endpoint whose daemon gave up an initiation, with its own
    /// account (the step then ends at once, not taking effect).
    refused: Vec<(String, String)>,
}

/// `refused (…)`, naming the endpoints when more than one acted.
fn refusals(refused: &[(String, String)]) -> String {
    match refused {
        [(_, why)] => format!("refused ({why})"),
        _ => {
            let each: Vec<String> = refused.iter().map(|(n, w)| format!("{n}: {w}")).collect();
            format!("refused ({})", each.join("; "))
        }
    }
}

/// How a wait ended.
fn ended(seen: bool) -> WaitExpect {
    if seen {
        WaitExpect::Seen
    } else {
        WaitExpect::Timeout
    }
}

/// Whether `op` has taken effect at an endpoint whose SAs were `before`:
/// the tunnel up, or down, or a new SA installed and the old one gone
/// (a rekey's make-before-break is over), one CHILD SA left.
fn took_effect(op: IkeOp, before: &SaIds, st: &EndpointState) -> bool {
    let one_new = |old: &[String], now: &[String]| now.len() == 1 && !old.contains(&now[0]);
    match op {
        IkeOp::Initiate => st.is_up(),
        IkeOp::Terminate => st.ike.as_ref().is_none_or(|i| !i.is_up()),
        IkeOp::RekeyChild => st.is_up() && one_new(&before.children, &st.ids.children),
        IkeOp::RekeyIke => st.is_up() && one_new(&before.ike, &st.ids.ike),
        // A new IKE SA, and new CHILD SAs under it.
        IkeOp::Reauth => {
            st.is_up()
                && one_new(&before.ike, &st.ids.ike)
                && one_new(&before.children, &st.ids.children)
        }
        // The daemon answers again once `act` returns; a fresh one has no
        // SA (ids start over, so they cannot tell).
        IkeOp::Restart | IkeOp::Crash => true,
    }
}

/// An endpoint's state once two reads in a row agree (at most
/// [`SETTLE_READS`], [`POLL`] apart): right after an exchange a daemon may
/// answer with an SA missing that the next read lists again (seen with
/// charon in an emulated VM), and a view is to say what holds, not what
/// one read caught. A failed read counts as no SA.
async fn settled(s: &mut Running) -> EndpointState {
    let mut last = s.state().await.unwrap_or_default();
    for _ in 1..SETTLE_READS {
        tokio::time::sleep(POLL).await;
        let now = s.state().await.unwrap_or_default();
        if now == last {
            break;
        }
        last = now;
    }
    last
}

fn view(node: &str, st: &EndpointState) -> StepView {
    StepView {
        node: node.to_string(),
        ike: st
            .ike
            .as_ref()
            .map_or("none".into(), |i| i.state.to_string()),
        remote: st.ike.as_ref().map(|i| i.remote.clone()),
        child: st
            .child
            .as_ref()
            .map_or("none".into(), |c| c.state.to_string()),
        children: None,
    }
}

/// The peer's true address:port, if the endpoint has an IKE SA.
fn remote(st: &EndpointState) -> Option<String> {
    st.ike.as_ref().map(|x| x.true_remote().to_string())
}

/// The range after a reboot: 20000-29999 the first time, then the next
/// block of the same width, or from 1024 when that does not fit, always
/// apart from the old range (a range too wide for that shrinks to the ports
/// beside it).
fn next_range(k: &Knobs) -> (u16, u16) {
    match k.port_range {
        None => (20000, 29999),
        Some((a, b)) => {
            let (a, b) = (u32::from(a), u32::from(b));
            let w = b - a + 1;
            if b + w <= 65535 {
                ((a + w) as u16, (b + w) as u16)
            } else if a >= 1024 + w {
                (1024, (1024 + w - 1) as u16)
            } else if b < 65535 {
                // Too wide to move as a whole: the ports above it.
                ((b + 1) as u16, 65535)
            } else {
                // It covers the top: the ports below it.
                (1024, (a - 1).max(1024) as u16)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reboots_move_the_port_range() {
        let mut k = Knobs::default();
        assert_eq!(next_range(&k), (20000, 29999));
        k.port_range = Some((20000, 29999));
        assert_eq!(next_range(&k), (30000, 39999));
        k.port_range = Some((60000, 65000));
        assert_eq!(next_range(&k), (1024, 6024));
        k.port_range = Some((1024, 40000));
        assert_eq!(next_range(&k), (40001, 65535));
        k.port_range = Some((1024, 65535));
        assert_eq!(next_range(&k), (1024, 1024));
    }

    #[test]
    fn a_reauth_takes_effect_once_both_sas_are_new() {
        use crate::model::{ChildSa, IkeSa, SaState};
        let ids = |ike: &str, child: &str| SaIds {
            ike: vec![ike.into()],
            children: vec![child.into()],
        };
        let up = |ids: SaIds| EndpointState {
            ike: Some(IkeSa {
                state: SaState::Established,
                ..IkeSa::default()
            }),
            child: Some(ChildSa {
                state: SaState::Installed,
                ..ChildSa::default()
            }),
            ids,
            ..EndpointState::default()
        };
        let before = ids("1", "1");
        assert!(!took_effect(IkeOp::Reauth, &before, &up(ids("1", "2"))));
        assert!(!took_effect(IkeOp::Reauth, &before, &up(ids("2", "1"))));
        assert!(took_effect(IkeOp::Reauth, &before, &up(ids("2", "2"))));
        assert!(took_effect(IkeOp::RekeyIke, &before, &up(ids("2", "1"))));
    }

    #[test]
    fn refusals_name_their_endpoints_only_when_several_acted() {
        let one = [("server".to_string(), "gave up".to_string())];
        assert_eq!(refusals(&one), "refused (gave up)");
        let two = [one[0].clone(), ("client".to_string(), "no".to_string())];
        assert_eq!(refusals(&two), "refused (server: gave up; client: no)");
    }
}
