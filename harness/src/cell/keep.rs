//! `--keep`: leave a failed cell's topology up, say how to enter each node,
//! and wait for Ctrl-C (the run's PID namespace ends with vpnlab, so
//! nothing can outlive it by accident).

use std::os::fd::AsRawFd;

use super::live::Live;
use super::Notice;
use crate::model::Cell;
use crate::outcome::Outcome;

/// A failed cell held up for inspection.
#[derive(Debug)]
pub struct Holding {
    /// The cell.
    pub cell: String,
    /// What differed from `expect`.
    pub mismatches: Vec<String>,
    /// Why it could not run, if it could not.
    pub reason: Option<String>,
    /// The path's diagnosis.
    pub diagnosis: Vec<String>,
    /// Node → the command that enters its network namespace.
    pub enter: Vec<(String, String)>,
    /// Where the daemons' files are, as the host sees them.
    pub files: String,
}

/// Tell the caller how to look around, then wait for Ctrl-C.
pub(super) async fn hold(
    cell: &Cell,
    outcome: &Outcome,
    live: &Live,
    notify: &(dyn Fn(Notice<'_>) + Sync),
) {
    let pid = host_pid();
    let holding = Holding {
        cell: cell.id.clone(),
        mismatches: outcome.mismatches.clone(),
        reason: outcome.reason.clone(),
        diagnosis: outcome
            .path
            .iter()
            .flat_map(|p| p.diagnosis.clone())
            .collect(),
        enter: live
            .topo
            .nodes
            .iter()
            .map(|(name, ns)| {
                let cmd = format!("nsenter --net=/proc/{pid}/fd/{} bash", ns.fd().as_raw_fd());
                (name.clone(), cmd)
            })
            .collect(),
        files: format!("/proc/{pid}/root{}", live.dir.display()),
    };
    notify(Notice::Holding(&holding));
    let _ = tokio::signal::ctrl_c().await;
    notify(Notice::Releasing(&cell.id));
}

/// This process's PID as the host sees it (we may be PID 1 of the run's
/// PID namespace): the first `NSpid` field of /proc/self/status.
fn host_pid() -> u32 {
    crate::sys::self_status_field("NSpid")
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(std::process::id)
}
