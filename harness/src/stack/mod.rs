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
use crate::model::{Endpoint, IkeOp, StackKind};
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
    if let StackKind::Command(_) = ep.stack {
        if !ep.others.is_empty() {
            return Some(format!(
                "a responder with several peers is implemented for strongSwan and libreswan, not {name}"
            ));
        }
        if ep.proposals.is_set() {
            return Some(format!(
                "vpnlab does not map proposals and rekey times onto {name} (a user's own stack is configured by its own programs)"
            ));
        }
        if ep.virtual_ip || ep.pool.is_some() {
            return Some(format!(
                "vpnlab does not map virtual IPs and address pools onto {name} (a user's own stack is configured by its own programs)"
            ));
        }
        if let Some(k) = ep.knobs.first_non_default() {
            return Some(format!(
                "vpnlab does not map `{k}` onto {name} (a user's own stack is configured by its own programs)"
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

/// Why `stack` cannot carry out an `ike` step's `op`, if it cannot.
/// Checked before anything is created, as for [`unsupported`].
pub fn unsupported_op(stack: &StackKind, op: IkeOp) -> Option<String> {
    match (stack, op) {
        (StackKind::Command(_), _) => Some(
            "vpnlab drives `ike` steps (initiate, terminate, rekey, reauth, restart, crash) through strongSwan's VICI and libreswan's whack, not a user's own stack".into(),
        ),
        (StackKind::Libreswan, IkeOp::Reauth) => Some(
            "libreswan 4.10's whack has no command that re-authenticates an IKE SA (pluto does so only when the IKE SA's lifetime ends, with `reauth=yes`)".into(),
        ),
        _ => None,
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
    /// In User-Mode Linux, where code runs natively but every syscall
    /// costs about 20 µs (a daemon answers in tens of milliseconds, a
    /// certificate exchange in up to a second): 3 s.
    pub const UML: Timers = Timers {
        retransmit_timeout: 1.0,
        retransmit_tries: 2,
        reply_wait: std::time::Duration::from_millis(600),
    };
    /// In a VM under software emulation (about ten times slower): 6 s.
    pub const EMULATED: Timers = Timers {
        retransmit_timeout: 2.0,
        retransmit_tries: 2,
        reply_wait: std::time::Duration::from_millis(1000),
    };
}

/// What an endpoint's stack is made from: enough to start it again.
#[derive(Debug, Clone)]
struct Recipe {
    ep: Endpoint,
    backend: Backend,
    work: Workdir,
    timers: Timers,
}

/// An endpoint's stack, configured; nothing runs yet.
pub struct Prepared {
    driver: PreparedDriver,
    recipe: Recipe,
}

enum PreparedDriver {
    /// charon, over VICI.
    StrongSwan(strongswan::Prepared),
    /// pluto, over whack.
    Libreswan(libreswan::Prepared),
    /// The user's own programs.
    Command(command::Prepared),
}

/// An endpoint's stack, running: its daemon answers and its connection is
/// loaded (until a `restart` that could not start it again).
pub struct Running {
    driver: Driver,
    recipe: Recipe,
}

enum Driver {
    /// charon, over VICI.
    StrongSwan(strongswan::Running),
    /// pluto, over whack.
    Libreswan(libreswan::Running),
    /// The user's own programs.
    Command(command::Running),
    /// Shut down by a `restart` whose start failed: no daemon, no SAs.
    Stopped,
}

/// The stack for an endpoint, not started.
pub fn prepare(ep: &Endpoint, backend: Backend, work: Workdir, timers: Timers) -> Prepared {
    let recipe = Recipe {
        ep: ep.clone(),
        backend,
        work: work.clone(),
        timers,
    };
    let ep = ep.clone();
    let driver = match &ep.stack {
        StackKind::StrongSwan => {
            PreparedDriver::StrongSwan(strongswan::Prepared::new(ep, backend, work, timers))
        }
        StackKind::Libreswan => {
            PreparedDriver::Libreswan(libreswan::Prepared::new(ep, work, timers))
        }
        StackKind::Command(spec) => {
            let spec = spec.clone();
            PreparedDriver::Command(command::Prepared::new(ep, spec, backend, work, timers))
        }
    };
    Prepared { driver, recipe }
}

impl Prepared {
    /// Start the daemon in `ns`, wait until it answers, and load the
    /// connection and credentials. On any failure nothing is left running.
    pub async fn start(self, ns: &Netns) -> Result<Running, StackError> {
        let driver = match self.driver {
            PreparedDriver::StrongSwan(p) => Driver::StrongSwan(p.start(ns).await?),
            PreparedDriver::Libreswan(p) => Driver::Libreswan(p.start(ns).await?),
            PreparedDriver::Command(p) => Driver::Command(p.start(ns).await?),
        };
        let mut running = Running {
            driver,
            recipe: self.recipe,
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
        match &self.driver {
            Driver::StrongSwan(s) => s.version(),
            Driver::Libreswan(s) => s.version(),
            Driver::Command(s) => s.version(),
            Driver::Stopped => "stopped",
        }
    }

    /// The daemon binary this endpoint ran (which build), where vpnlab
    /// started one; a command stack is the user's own.
    pub fn build(&self) -> Option<std::path::PathBuf> {
        match &self.driver {
            Driver::StrongSwan(_) => Some(strongswan::charon_path()),
            Driver::Libreswan(_) => Some(libreswan::tool("pluto")),
            Driver::Command(_) | Driver::Stopped => None,
        }
    }

    /// The release part of [`Running::version`] (`5.9.8`), where the
    /// daemon says it; a user's own stack names itself.
    pub fn version_number(&self) -> Option<&str> {
        match &self.driver {
            Driver::StrongSwan(s) => s.release(),
            Driver::Libreswan(s) => s.release(),
            Driver::Command(_) | Driver::Stopped => None,
        }
    }

    fn stopped(&self, request: &str) -> StackError {
        StackError::Control {
            node: self.recipe.ep.node.clone(),
            daemon: self.recipe.ep.stack.name().to_string(),
            request: request.into(),
            detail: "the daemon is not running: its restart failed".into(),
        }
    }

    async fn load(&mut self) -> Result<(), StackError> {
        match &mut self.driver {
            Driver::StrongSwan(s) => s.load().await,
            Driver::Libreswan(s) => s.load().await,
            // `start` configured everything.
            Driver::Command(_) => Ok(()),
            Driver::Stopped => Err(self.stopped("load")),
        }
    }

    /// Bring the tunnel up (an initiator, or a responder given its peer's
    /// address) and wait until it is up or has failed.
    pub async fn initiate(&mut self) -> Result<Initiation, StackError> {
        match &mut self.driver {
            Driver::StrongSwan(s) => s.initiate().await,
            Driver::Libreswan(s) => s.initiate().await,
            Driver::Command(s) => s.initiate().await,
            Driver::Stopped => Err(self.stopped("initiate")),
        }
    }

    /// Act on IKE (a user's own stack's cells with `ike` steps are
    /// unsupported before they start: [`unsupported_op`]). `ns` is the
    /// endpoint's node, where a restart starts the daemon again.
    pub async fn act(&mut self, op: IkeOp, ns: &Netns) -> Result<(), StackError> {
        match (&mut self.driver, op) {
            (_, IkeOp::Restart) => self.restart(ns, false).await,
            (_, IkeOp::Crash) => self.restart(ns, true).await,
            (Driver::StrongSwan(s), _) => s.act(op).await,
            (Driver::Libreswan(s), _) => s.act(op).await,
            (Driver::Command(_), _) => Err(StackError::Unsupported {
                what: format!("ike step `{op}`"),
            }),
            (Driver::Stopped, _) => Err(self.stopped(&op.to_string())),
        }
    }

    /// Shut the daemon down as its own service would (SIGTERM: it tidies
    /// up as it chooses, telling its peers or not), or kill it (`crash`:
    /// SIGKILL, the kernel keeping whatever it had installed), and start
    /// it again with the same configuration. It initiates nothing: a step
    /// says so. If it does not start, the endpoint stays stopped and the
    /// error says why.
    async fn restart(&mut self, ns: &Netns, crash: bool) -> Result<(), StackError> {
        match (std::mem::replace(&mut self.driver, Driver::Stopped), crash) {
            (Driver::StrongSwan(s), false) => s.shutdown().await,
            (Driver::StrongSwan(s), true) => s.stop().await,
            (Driver::Libreswan(s), false) => s.stop().await,
            (Driver::Libreswan(s), true) => s.kill().await,
            (Driver::Command(s), false) => s.stop().await,
            (Driver::Command(s), true) => s.kill().await,
            (Driver::Stopped, _) => {}
        }
        let r = &self.recipe;
        *self = prepare(&r.ep, r.backend, r.work.clone(), r.timers)
            .start(ns)
            .await?;
        Ok(())
    }

    /// Observe the SAs (a stopped endpoint has none).
    pub async fn state(&mut self) -> Result<EndpointState, StackError> {
        match &mut self.driver {
            Driver::StrongSwan(s) => s.state().await,
            Driver::Libreswan(s) => s.state().await,
            Driver::Command(s) => s.state().await,
            Driver::Stopped => Ok(EndpointState::default()),
        }
    }

    /// For a wait that polls: the SAs' states, serials and addresses as
    /// `state` reports them; what only describes an SA (algorithms,
    /// selectors, mode and encapsulation) may be left out where asking
    /// for it costs more (libreswan: two processes).
    pub async fn sa_states(&mut self) -> Result<EndpointState, StackError> {
        match &mut self.driver {
            Driver::Libreswan(s) => s.sa_states().await,
            _ => self.state().await,
        }
    }

    /// The endpoint's own account so far: the failure lines of its
    /// daemon's log, normalized ([`account`]). The log outlives a restart,
    /// so the account covers every daemon the cell started.
    pub fn account(&self) -> Vec<String> {
        let read =
            |name: &str| std::fs::read_to_string(self.recipe.work.file(name)).unwrap_or_default();
        match self.recipe.ep.stack {
            StackKind::StrongSwan => account::charon(&read("charon.log")),
            StackKind::Libreswan => account::pluto(&read("pluto.log")),
            StackKind::Command(_) => account::command(&read("account.log")),
        }
    }

    /// Stop the daemon and reap it.
    pub async fn stop(self) {
        match self.driver {
            Driver::StrongSwan(s) => s.stop().await,
            Driver::Libreswan(s) => s.stop().await,
            Driver::Command(s) => s.stop().await,
            Driver::Stopped => {}
        }
    }
}

pub mod account;
pub mod command;
pub mod daemon;
pub mod libreswan;
pub mod pki;
pub mod strongswan;
mod vici;

/// A responder's SAs with several peers, one pair each, as every driver
/// reports them: in a stable order for snapshots (working SAs first, then
/// by the peer's traffic selectors and address:port), the first pair as
/// `ike`/`child` and the others in `also`.
fn several_peers(mut all: Vec<EndpointState>) -> EndpointState {
    all.sort_by_key(|s| {
        (
            !s.is_up(),
            s.child.as_ref().map(|c| c.remote_ts.clone()),
            s.ike.as_ref().map(|i| i.remote.clone()),
        )
    });
    let mut all = all.into_iter();
    let mut state = all.next().unwrap_or_default();
    state.also = all.collect();
    state
}

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
