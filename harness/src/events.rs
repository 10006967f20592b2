//! Timed events: a cell's `[[steps]]`, run in order after the checks. Each
//! step's observations go into the outcome in order. Waits poll the
//! endpoints (or the live capture) with a bounded timeout; the only sleeps
//! are the file's own bounded `pause` steps.

use std::time::{Duration, Instant};

use crate::capture::Capture;
use crate::check;
use crate::nat::Knobs;
use crate::outcome::{StepOutcome, StepView};
use crate::scenario::cell::{Action, Event, Step, WaitExpect};
use crate::scenario::Cell;
use crate::stack::{EndpointState, Stack};
use crate::topology::Topology;

/// How often a wait asks the daemons (or the capture) again.
const POLL: Duration = Duration::from_millis(50);

/// Run every step of `cell`.
pub async fn run(
    cell: &Cell,
    topo: &mut Topology,
    stacks: &mut [Box<dyn Stack>],
    capture: Option<&Capture>,
) -> Vec<StepOutcome> {
    let mut out = Vec::new();
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
                match wait(cell, topo, stacks, capture, node, event, *timeout).await {
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
                    .map(|c| check::run(c, topo.node(&c.from), topo.node(&c.to)));
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
                if let Err(e) = link(topo, node, iface, *up, *mtu).await {
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
        if observe {
            for (s, e) in stacks.iter_mut().zip(&cell.endpoints) {
                let st = s.state().await.unwrap_or_default();
                o.endpoints.push(view(&e.node, &st));
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
            class.as_str()
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
        ike: st.ike.as_ref().map_or("none".into(), |i| i.state.clone()),
        remote: st.ike.as_ref().map(|i| i.remote.clone()),
        child: st.child.as_ref().map_or("none".into(), |c| c.state.clone()),
    }
}

/// Wait until `event` happens on `node` or `timeout` passes; `Ok(true)` if
/// it happened.
async fn wait(
    cell: &Cell,
    topo: &Topology,
    stacks: &mut [Box<dyn Stack>],
    capture: Option<&Capture>,
    node: &str,
    event: &Event,
    timeout: Duration,
) -> Result<bool, String> {
    let deadline = Instant::now() + timeout;
    if let Event::Packet { iface, class } = event {
        let Some(cap) = capture else {
            return Err("a packet wait needs the capture (do not use --no-capture)".into());
        };
        let idx = crate::link::index(topo.node(node), iface)
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
    let first = stacks[i].state().await.map_err(|e| e.to_string())?;
    // The peer's true port is what `peer-moved` compares, not the
    // snapshot label (which folds NAT-chosen ports into `ephemeral`).
    let remote = |x: &crate::stack::IkeState| {
        if x.remote_raw.is_empty() {
            x.remote.clone()
        } else {
            x.remote_raw.clone()
        }
    };
    let start_remote = first.ike.as_ref().map(remote);
    let mut st = first;
    loop {
        let ike_up = st.ike.as_ref().is_some_and(|x| x.state == "ESTABLISHED");
        let child_up = st.child.as_ref().is_some_and(|c| c.state == "INSTALLED");
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
/// block of the same width (wrapping to 1024).
fn next_range(k: &Knobs) -> (u16, u16) {
    match k.port_range {
        None => (20000, 29999),
        Some((a, b)) => {
            let w = u32::from(b - a) + 1;
            let (na, nb) = (u32::from(a) + w, u32::from(b) + w);
            if nb <= 65535 {
                (na as u16, nb as u16)
            } else {
                (1024, (1024 + w - 1).min(65535) as u16)
            }
        }
    }
}

async fn link(
    topo: &Topology,
    node: &str,
    iface: &str,
    up: Option<bool>,
    mtu: Option<u32>,
) -> Result<(), String> {
    let ns = topo.node(node);
    let idx = crate::link::index(ns, iface)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(m) = mtu {
        crate::link::mtu(ns, idx, iface, m)
            .await
            .map_err(|e| e.to_string())?;
    }
    match up {
        Some(true) => crate::link::up(ns, idx, iface).await,
        Some(false) => crate::link::down(ns, idx, iface).await,
        None => Ok(()),
    }
    .map_err(|e| e.to_string())
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
    }
}
