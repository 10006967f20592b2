//! VPN stacks: one driver per implementation, chosen by [`prepare`]. A
//! driver runs one endpoint's daemon inside its node and maps what the
//! daemon reports onto the common [`EndpointState`].
//!
//! The lifecycle is in the types, so no call can come too early or too late:
//! a [`Prepared`] stack has its configuration and nothing runs;
//! [`Prepared::start`] consumes it and gives a [`Running`] one only once
//! the daemon answers and its connection is loaded, owning the process and
//! its control channel; [`Running::stop`] consumes that. Dispatch is a plain
//! `match` over the drivers (three, all known here), not trait objects.

use std::path::PathBuf;

use crate::error::StackError;
pub use crate::model::{Backend, ChildSa, EndpointState, IkeSa, Initiation};
use crate::model::{Endpoint, StackKind};
use crate::topology::netns::Netns;

/// Where a driver puts an endpoint's files. The directory is mounted on
/// `/run` inside the daemon's private mount namespace, so the daemon sees its
/// configs, pid file and sockets under `/run` while vpnlab reaches the same
/// files (the control socket among them) under `dir`.
#[derive(Debug, Clone)]
pub struct Workdir {
    /// The directory, as vpnlab sees it.
    pub dir: PathBuf,
}

impl Workdir {
    /// Host-side path of a file the daemon sees as `/run/<name>`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Why `stack` cannot express `ep` on `backend`, if it cannot. Checked before
/// anything is created, so such a cell is reported as unsupported.
pub fn unsupported(ep: &Endpoint, backend: Backend) -> Option<String> {
    let name = ep.stack.name();
    if ep.stack != StackKind::StrongSwan {
        if !ep.others.is_empty() {
            return Some(format!(
                "a responder with several peers is only implemented for strongSwan, not {name}"
            ));
        }
        if ep.proposals.is_set() {
            return Some(format!(
                "vpnlab does not map proposals and rekey times onto {name} yet (only the strongSwan driver does)"
            ));
        }
        if ep.virtual_ip || ep.pool.is_some() {
            return Some(format!(
                "vpnlab does not map virtual IPs and address pools onto {name} yet (only the strongSwan driver does)"
            ));
        }
        if let Some(k) = ep.knobs.first_non_default() {
            return Some(format!(
                "vpnlab does not map `{k}` onto {name} yet (only the strongSwan driver does)"
            ));
        }
    }
    match &ep.stack {
        StackKind::StrongSwan => strongswan::unsupported(ep, backend),
        StackKind::Libreswan => libreswan::unsupported(ep, backend),
        // A user's own stack: whether it can run is its own business.
        StackKind::Command(_) => None,
    }
}

/// IKE retransmission timers: short, so a blocked exchange is decided in
/// seconds, but scaled up where the machine is slow (an emulated VM).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timers {
    /// Seconds before the first retransmit (and between retransmits).
    pub retransmit_timeout: f64,
    /// Retransmits before giving up.
    pub retransmit_tries: u32,
    /// How long a check waits for replies after its last probe: long
    /// enough for an answer through any tunnel here, short enough that a
    /// failing check is decided quickly.
    pub reply_wait: std::time::Duration,
}

impl Timers {
    /// On a host: give up after 1.5 s.
    pub const HOST: Timers = Timers {
        retransmit_timeout: 0.5,
        retransmit_tries: 2,
        reply_wait: std::time::Duration::from_millis(400),
    };
    /// In a VM under software emulation (about ten times slower): 6 s.
    pub const EMULATED: Timers = Timers {
        retransmit_timeout: 2.0,
        retransmit_tries: 2,
        reply_wait: std::time::Duration::from_millis(1000),
    };
}

/// An endpoint's stack, configured; nothing runs yet.
pub enum Prepared {
    /// charon, over VICI.
    StrongSwan(strongswan::Prepared),
    /// pluto, over whack.
    Libreswan(libreswan::Prepared),
    /// The user's own programs.
    Command(command::Prepared),
}

/// An endpoint's stack, running: its daemon answers and its connection is
/// loaded.
pub enum Running {
    /// charon, over VICI.
    StrongSwan(strongswan::Running),
    /// pluto, over whack.
    Libreswan(libreswan::Running),
    /// The user's own programs.
    Command(command::Running),
}

/// The stack for an endpoint, not started.
pub fn prepare(ep: &Endpoint, backend: Backend, work: Workdir, timers: Timers) -> Prepared {
    let ep = ep.clone();
    match &ep.stack {
        StackKind::StrongSwan => {
            Prepared::StrongSwan(strongswan::Prepared::new(ep, backend, work, timers))
        }
        StackKind::Libreswan => Prepared::Libreswan(libreswan::Prepared::new(ep, work, timers)),
        StackKind::Command(spec) => {
            let spec = spec.clone();
            Prepared::Command(command::Prepared::new(ep, spec, backend, work, timers))
        }
    }
}

impl Prepared {
    /// Start the daemon in `ns`, wait until it answers, and load the
    /// connection and credentials. On any failure nothing is left running.
    pub async fn start(self, ns: &Netns) -> Result<Running, StackError> {
        let mut running = match self {
            Prepared::StrongSwan(p) => Running::StrongSwan(p.start(ns).await?),
            Prepared::Libreswan(p) => Running::Libreswan(p.start(ns).await?),
            Prepared::Command(p) => Running::Command(p.start(ns).await?),
        };
        if let Err(e) = running.load().await {
            running.stop().await;
            return Err(e);
        }
        Ok(running)
    }
}

impl Running {
    /// Implementation and version, e.g. `strongSwan 5.9.8 (charon)`.
    pub fn version(&self) -> &str {
        match self {
            Running::StrongSwan(s) => s.version(),
            Running::Libreswan(s) => s.version(),
            Running::Command(s) => s.version(),
        }
    }

    /// The release part of [`Running::version`] (`5.9.8`), where the
    /// daemon says it; a user's own stack names itself.
    pub fn version_number(&self) -> Option<&str> {
        match self {
            Running::StrongSwan(s) => s.release(),
            Running::Libreswan(s) => s.release(),
            Running::Command(_) => None,
        }
    }

    async fn load(&mut self) -> Result<(), StackError> {
        match self {
            Running::StrongSwan(s) => s.load().await,
            Running::Libreswan(s) => s.load().await,
            // `start` configured everything.
            Running::Command(_) => Ok(()),
        }
    }

    /// Bring the tunnel up (on an initiator) and wait until it is up or has
    /// failed.
    pub async fn initiate(&mut self) -> Result<Initiation, StackError> {
        match self {
            Running::StrongSwan(s) => s.initiate().await,
            Running::Libreswan(s) => s.initiate().await,
            Running::Command(s) => s.initiate().await,
        }
    }

    /// Act on IKE (strongSwan only: other stacks' cells with `ike` steps
    /// are unsupported before they start).
    pub async fn act(&mut self, op: crate::model::IkeOp) -> Result<(), StackError> {
        match self {
            Running::StrongSwan(s) => s.act(op).await,
            Running::Libreswan(_) | Running::Command(_) => Err(StackError::Unsupported {
                what: format!("ike step `{op}`"),
            }),
        }
    }

    /// Observe the SAs.
    pub async fn state(&mut self) -> Result<EndpointState, StackError> {
        match self {
            Running::StrongSwan(s) => s.state().await,
            Running::Libreswan(s) => s.state().await,
            Running::Command(s) => s.state().await,
        }
    }

    /// Stop the daemon and reap it.
    pub async fn stop(self) {
        match self {
            Running::StrongSwan(s) => s.stop().await,
            Running::Libreswan(s) => s.stop().await,
            Running::Command(s) => s.stop().await,
        }
    }
}

pub mod command;
pub mod daemon;
pub mod libreswan;
pub mod pki;
pub mod strongswan;
mod vici;

/// Normalize an address:port for snapshots: IKE's own ports are kept, any
/// other (NAT-chosen) port becomes `ephemeral`.
pub fn endpoint_label(addr: &str, port: &str) -> String {
    match port {
        "500" | "4500" => endpoint(addr, port),
        _ => endpoint(addr, "ephemeral"),
    }
}

/// `addr:port`, an IPv6 address in brackets (`[2001:db8::1]:500`).
pub fn endpoint(addr: &str, port: &str) -> String {
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_label;

    #[test]
    fn only_ike_ports_survive_normalization() {
        assert_eq!(endpoint_label("203.0.113.1", "4500"), "203.0.113.1:4500");
        assert_eq!(endpoint_label("203.0.113.1", "500"), "203.0.113.1:500");
        assert_eq!(
            endpoint_label("203.0.113.1", "61023"),
            "203.0.113.1:ephemeral"
        );
        assert_eq!(endpoint_label("2001:db8::1", "4500"), "[2001:db8::1]:4500");
        assert_eq!(
            endpoint_label("[2001:db8::1]", "1024"),
            "[2001:db8::1]:ephemeral"
        );
    }
}
