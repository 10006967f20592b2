//! Timed events: a cell's `[[steps]]`, run in order after the checks. Each
//! step's observations go into the outcome in order. Waits poll the
//! endpoints (or the live capture) with a bounded timeout; the only sleeps
//! are the file's own bounded `pause` steps.

use std::time::{Duration, Instant};

use super::checks;
use crate::capture::Capture;
use crate::model::Cell;
use crate::model::Knobs;
use crate::model::{Action, Event, Step, WaitExpect};
use crate::outcome::{StepOutcome, StepView};
use crate::stack::{EndpointState, Running};
use crate::topology::Topology;

/// How often a wait asks the daemons (or the capture) again.
const POLL: Duration = Duration::from_millis(50);

/// Run every step of `cell`.
pub async fn run(
    cell: &Cell,
    topo: &mut Topology,
    stacks: &mut [Running],
    capture: Option<&Capture>,
) -> Vec<StepOutcome> {
    let mut out = Vec::new();
    if cell.steps.is_empty() {
        return out;
    }
    // Each endpoint's peer address:port as last recorded: before the steps,
    // then after each wait and checks step. `peer-moved` compares with it,
    // so a move that happens between a reboot and the wait still counts.
    let mut peers = Vec::new();
    for s in stacks.iter_mut() {
        peers.push(
            s.state()
                .await
                .ok()
                .and_then(|st| st.ike.as_ref().map(remote)),
        );
    }
    for step in &cell.steps {
        let mut o = StepOutcome {
            name: step.name.clone(),
            action: describe(step),
            wait: None,
            checks: vec![],
            endpoints: vec![],
            error: None,
        };
        tracing::debug!(cell = %cell.id, step = %step.name, action = %o.action, "step");
        let observe = match &step.action {
            Action::Pause(d) => {
                tokio::time::sleep(*d).await;
                false
            }
            Action::Wait {
                node,
                event,
                timeout,
            } => {
                match wait(cell, topo, stacks, capture, &peers, node, event, *timeout).await {
                    Ok(seen) => {
                        o.wait = Some(if seen {
                            WaitExpect::Seen
                        } else {
                            WaitExpect::Timeout
                        })
                    }
                    Err(e) => o.error = Some(e),
                }
                // Right after an event the daemons may still be moving
                // (a rekey after an address update): observe after checks.
                false
            }
            Action::Checks(names) => {
                let runs = cell
                    .checks
                    .iter()
                    .filter(|c| names.contains(&c.name))
                    .map(|c| checks::run(c, topo.node(&c.from), topo.node(&c.to)));
                o.checks = futures::future::join_all(runs).await;
                for c in &mut o.checks {
                    c.name = format!("{}@{}", c.name, step.name);
                }
                true
            }
            Action::NatReboot(gw) => {
                match reboot(topo, gw).await {
                    Ok(range) => {
                        o.action =
                            format!("nat-reboot {gw}: mappings flushed, outside ports now {range}")
                    }
                    Err(e) => o.error = Some(e),
                }
                false
            }
            Action::Link {
                node,
                iface,
                up,
                mtu,
            } => {
                if let Err(e) = link(cell, topo, node, iface, *up, *mtu).await {
                    o.error = Some(e);
                }
                false
            }
            Action::Block { node, class, on } => {
                let (class, on) = (*class, *on);
                let r = topo
                    .reconfigure(node, |g| {
                        if on {
                            g.knobs.add_block(class);
                        } else {
                            g.knobs.block.retain(|b| *b != class);
                        }
                    })
                    .await;
                if let Err(e) = r {
                    o.error = Some(e.to_string());
                }
                false
            }
        };
        if matches!(step.action, Action::Wait { .. } | Action::Checks(_)) {
            for (i, s) in stacks.iter_mut().enumerate() {
                let st = s.state().await.unwrap_or_default();
                peers[i] = st.ike.as_ref().map(remote);
                if observe {
                    o.endpoints.push(view(&cell.endpoints[i].node, &st));
                }
            }
        }
        out.push(o);
    }
    out
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
        Action::NatReboot(gw) => format!("nat-reboot {gw}"),
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
    }
}

/// The peer's true address:port.
fn remote(x: &crate::model::IkeSa) -> String {
    x.true_remote().to_string()
}

/// Wait until `event` happens on `node` or `timeout` passes; `Ok(true)` if
/// it happened.
#[allow(clippy::too_many_arguments)]
async fn wait(
    cell: &Cell,
    topo: &Topology,
    stacks: &mut [Running],
    capture: Option<&Capture>,
    peers: &[Option<String>],
    node: &str,
    event: &Event,
    timeout: Duration,
) -> Result<bool, String> {
    let deadline = Instant::now() + timeout;
    if let Event::Packet { iface, class } = event {
        let Some(cap) = capture else {
            return Err("a packet wait needs the capture (do not use --no-capture)".into());
        };
        let idx = crate::topology::link::index(topo.node(node), iface)
            .await
            .map_err(|e| e.to_string())?;
        let before = cap.seen(node, idx, *class);
        loop {
            if cap.seen(node, idx, *class) > before {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(POLL).await;
        }
    }
    let i = cell
        .endpoints
        .iter()
        .position(|e| e.node == node)
        .expect("validated: the node has an endpoint");
    let start_remote = peers[i].clone();
    let mut st = stacks[i].state().await.map_err(|e| e.to_string())?;
    loop {
        let ike_up = st.ike.as_ref().is_some_and(crate::model::IkeSa::is_up);
        let child_up = st.child.as_ref().is_some_and(crate::model::ChildSa::is_up);
        let hit = match event {
            Event::IkeUp => ike_up,
            Event::IkeDown => !ike_up,
            Event::ChildUp => child_up,
            Event::ChildDown => !child_up,
            Event::PeerMoved => st.ike.is_some() && st.ike.as_ref().map(remote) != start_remote,
            Event::Packet { .. } => unreachable!("handled above"),
        };
        if hit {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
        st = stacks[i].state().await.map_err(|e| e.to_string())?;
    }
}

/// Flush the gateway's mappings and move its outside port range, as a
/// rebooted home router does. Returns the new range.
async fn reboot(topo: &mut Topology, gw: &str) -> Result<String, String> {
    let g = topo
        .reconfigure(gw, |g| g.knobs.port_range = Some(next_range(&g.knobs)))
        .await
        .map_err(|e| e.to_string())?;
    topo.node(gw)
        .flush_conntrack()
        .map_err(|e| format!("cannot flush {gw}'s connection tracking: {e}"))?;
    let (a, b) = g.knobs.port_range.expect("just set");
    Ok(format!("{a}-{b}"))
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

async fn link(
    cell: &Cell,
    topo: &Topology,
    node: &str,
    iface: &str,
    up: Option<bool>,
    mtu: Option<u32>,
) -> Result<(), String> {
    let ns = topo.node(node);
    let idx = crate::topology::link::index(ns, iface)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(m) = mtu {
        crate::topology::link::mtu(ns, idx, iface, m)
            .await
            .map_err(|e| e.to_string())?;
    }
    match up {
        Some(true) => {
            crate::topology::link::up(ns, idx, iface)
                .await
                .map_err(|e| e.to_string())?;
            // Taking an interface down deletes the routes through it; the
            // cell's own come back here. (An IKE daemon's routes, e.g.
            // strongSwan's table 220 with kernel IPsec, do not.)
            let net = cell
                .links
                .iter()
                .flat_map(|l| [&l.a, &l.b])
                .find(|e| e.node == node && e.iface == iface)
                .map(|e| e.addr.trunc());
            for r in cell
                .routes
                .iter()
                .filter(|r| r.node == node && net.is_some_and(|n| n.contains(&r.via)))
            {
                crate::topology::link::route(ns, r.dst, r.via)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        Some(false) => crate::topology::link::down(ns, idx, iface)
            .await
            .map_err(|e| e.to_string()),
        None => Ok(()),
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
}
