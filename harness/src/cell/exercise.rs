//! What happens inside a cell once its namespaces exist, phase by phase:
//! daemons, the tunnel, the PPP layer, checks, SA observation, steps. Each
//! phase is timed; each failure is a [`RunError`] naming the cell.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::live::Live;
use super::ppp::PppLayer;
use super::{checks, lap, steps, Phases, RunOptions};
use crate::capture::Capture;
use crate::error::RunError;
use crate::model::{Cell, CheckExpect, Role, TunnelExpect};
use crate::outcome::{EndpointOutcome, NatOutcome, Outcome, PppOutcome, TranslatorOutcome};
use crate::stack::{self, Initiation, Running};

/// How long every end may take to report its CHILD SA after a successful
/// initiation.
const INSTALL_WAIT: Duration = Duration::from_secs(5);

/// Start the daemons, bring the tunnel (and the PPP link) up, run the
/// checks and steps, observe. Whatever starts is left in `live` for
/// teardown.
pub(super) async fn exercise(
    cell: &Cell,
    opts: &RunOptions,
    live: &mut Live,
    capture: Option<&Capture>,
    phases: &mut Phases,
) -> Result<Outcome, RunError> {
    let stack_err = |source| RunError::Stack {
        cell: cell.id.clone(),
        source,
    };
    let mut t = Instant::now();
    start_stacks(cell, opts, live).await.map_err(stack_err)?;
    phases.daemons_ms = lap(&mut t);
    let initiation = bring_up(cell, &mut live.stacks).await.map_err(stack_err)?;
    phases.ike_ms = lap(&mut t);
    let ppp = ppp_layer(cell, opts, live, initiation.as_ref()).await;
    if live.ppp.is_some() {
        phases.ppp_ms = lap(&mut t);
    }
    let resolved = virtual_sources(cell, &mut live.stacks)
        .await
        .map_err(stack_err)?;
    let checks = join_all(resolved.iter().map(|c| async {
        let (from, to) = (live.topo.node(&c.from), live.topo.node(&c.to));
        let mut r = checks::run(c, from, to, opts.timers.reply_wait).await;
        if let Some(p) = c.src_pool.filter(|p| p.network() == c.src) {
            // What the failed bind means.
            r.error = Some(format!("{} was assigned no virtual IP", c.from));
            r.path = r
                .path
                .replacen(&c.src.to_string(), &format!("(none from {p})"), 1);
            r.sent = 0;
        }
        r
    }))
    .await;
    let endpoints = observe(cell, &mut live.stacks).await.map_err(stack_err)?;
    let steps = steps::run(
        cell,
        &mut live.topo,
        &mut live.stacks,
        capture,
        opts.timers.reply_wait,
    )
    .await;
    phases.checks_ms = lap(&mut t);
    let mut o = Outcome::blank(cell, opts.backend);
    o.initiation = initiation;
    o.endpoints = endpoints;
    for (e, s) in o.endpoints.iter_mut().zip(&live.stacks) {
        e.log = s.account();
    }
    o.ppp = ppp;
    o.checks = checks;
    o.steps = steps;
    o.nat = nat(live);
    o.observe_tunnel();
    if o.tunnel == Some(TunnelExpect::Up) {
        routes_back(cell, live, &mut o.checks);
    }
    o.judge();
    Ok(o)
}

/// For each check that failed through a tunnel that is up, whether the
/// answering node has a route back to the check's source: what came out
/// of the tunnel there could not be answered otherwise.
fn routes_back(cell: &Cell, live: &Live, checks: &mut [crate::outcome::CheckResult]) {
    for r in checks.iter_mut().filter(|r| r.result == CheckExpect::Fail) {
        let Some(c) = cell.checks.iter().find(|c| c.name == r.name) else {
            continue;
        };
        if let Ok(false) = live.topo.node(&c.to).routes(c.dst, c.src) {
            r.no_route_back = Some(format!("{} has no route back to {}", c.to, c.src));
        }
    }
}

/// Every endpoint's daemon, started concurrently; those that start are
/// kept for teardown even when another fails (the first failure, in file
/// order, is returned).
async fn start_stacks(
    cell: &Cell,
    opts: &RunOptions,
    live: &mut Live,
) -> Result<(), crate::error::StackError> {
    let starts = cell.endpoints.iter().map(|e| {
        let work = stack::Workdir {
            dir: live.dir.join(&e.node),
        };
        stack::prepare(e, opts.backend, work, opts.timers).start(live.topo.node(&e.node))
    });
    let mut failed = None;
    for r in join_all(starts).await {
        match r {
            Ok(s) => live.stacks.push(s),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Initiate from every initiator, one after the other in file order (so
/// which one a NAT gives which outside port is the same on every run); the
/// first failure is the initiation the outcome shows. After a success,
/// wait until every end reports its CHILD SA.
async fn bring_up(
    cell: &Cell,
    stacks: &mut [Running],
) -> Result<Option<Initiation>, crate::error::StackError> {
    let mut initiation: Option<Initiation> = None;
    for (s, _) in stacks
        .iter_mut()
        .zip(&cell.endpoints)
        .filter(|(_, e)| e.role == Role::Initiator)
    {
        let r = s.initiate().await?;
        if initiation.as_ref().is_none_or(|i| i.success) {
            initiation = Some(r);
        }
    }
    if initiation.as_ref().is_some_and(|i| i.success) {
        wait_installed(stacks).await?;
    }
    Ok(initiation)
}

/// IKEv1's initiator is done when it sends the last Quick Mode message; its
/// responder installs the SAs only when that message arrives. Wait
/// (bounded) until every end reports its CHILD SA, so the first probe does
/// not race the responder. Ends already seen with theirs are not asked
/// again (a libreswan state query costs a whack and reads its log).
async fn wait_installed(stacks: &mut [Running]) -> Result<(), crate::error::StackError> {
    let deadline = Instant::now() + INSTALL_WAIT;
    let mut installed = vec![false; stacks.len()];
    loop {
        for (s, done) in stacks.iter_mut().zip(installed.iter_mut()) {
            if !*done {
                *done = s.sa_states().await?.child.is_some_and(|c| c.is_up());
            }
        }
        if installed.iter().all(|d| *d) || Instant::now() > deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The PPP layer, if the cell has one: not attempted when the IPsec tunnel
/// beneath it failed.
async fn ppp_layer(
    cell: &Cell,
    opts: &RunOptions,
    live: &mut Live,
    initiation: Option<&Initiation>,
) -> Option<PppOutcome> {
    let p = cell.ppp.as_ref()?;
    if initiation.is_some_and(|i| !i.success) {
        return Some(PppOutcome {
            kind: p.kind,
            state: TunnelExpect::Down,
            client_ip: None,
            server_ip: None,
            reason: Some("not attempted: the IPsec tunnel did not come up".into()),
        });
    }
    // L2TP/PPTP retransmit on their own, slower timers: allow more time in
    // an emulated VM.
    let limit = Duration::from_secs_f64(10.0 * opts.timers.retransmit_timeout / 0.5)
        .min(Duration::from_secs(25));
    let ipsec = !cell.endpoints.is_empty();
    let (layer, o) = PppLayer::up(p, &live.topo, &live.dir, limit, ipsec).await;
    live.ppp = Some(layer);
    Some(o)
}

/// Each endpoint's SAs as its daemon reports them.
/// The checks, those sent from a virtual IP with the address the sending
/// end was assigned (asked once the tunnel is up). Without one, the
/// pool's network address stays and the check fails to bind: that end got
/// no virtual IP.
async fn virtual_sources(
    cell: &Cell,
    stacks: &mut [Running],
) -> Result<Vec<crate::model::Check>, crate::error::StackError> {
    let mut checks = cell.checks.clone();
    if checks.iter().all(|c| c.src_pool.is_none()) {
        return Ok(checks);
    }
    let ends = observe(cell, stacks).await?;
    for c in checks.iter_mut().filter(|c| c.src_pool.is_some()) {
        let vip = ends
            .iter()
            .find(|e| e.node == c.from)
            .and_then(|e| e.state.ike.as_ref()?.virtual_ip.as_ref()?.parse().ok());
        if let Some(a) = vip {
            c.src = a;
        }
    }
    Ok(checks)
}

async fn observe(
    cell: &Cell,
    stacks: &mut [Running],
) -> Result<Vec<EndpointOutcome>, crate::error::StackError> {
    let mut endpoints = Vec::new();
    for (s, e) in stacks.iter_mut().zip(&cell.endpoints) {
        let state = s.state().await?;
        endpoints.push(EndpointOutcome {
            node: e.node.clone(),
            role: e.role,
            stack: s.version().to_string(),
            version: s.version_number().map(str::to_string),
            build: s.build().map(|p| p.display().to_string()),
            nat_t: e.nat_t,
            state,
            log: vec![],
        });
    }
    Ok(endpoints)
}

/// Every forwarding node's NAT as first applied.
fn nat(live: &Live) -> BTreeMap<String, NatOutcome> {
    live.topo
        .nat
        .iter()
        .map(|(n, (p, r))| {
            (
                n.clone(),
                NatOutcome {
                    profile: *p,
                    ruleset: r.lines().map(str::to_string).collect(),
                    translator: live.translators.iter().find(|t| &t.node == n).map(|t| {
                        TranslatorOutcome {
                            program: "tayga".into(),
                            prefix: t.prefix.to_string(),
                            notes: t.notes(),
                        }
                    }),
                },
            )
        })
        .collect()
}
