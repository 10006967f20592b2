//! VPN stacks: one driver per implementation behind [`Stack`], created by
//! [`driver`]. A driver runs one endpoint's daemon inside its node and maps
//! what the daemon reports onto the common [`EndpointState`].

use std::path::PathBuf;

use futures::future::BoxFuture;

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

/// One VPN implementation. All methods are called from the orchestrator in
/// order: `start`, `load`, (`initiate` on the initiator), `state`, `stop`.
pub trait Stack: Send {
    /// Implementation and version, e.g. `strongSwan 5.9.8`.
    fn version(&self) -> String;
    /// Start the daemon in `ns` and wait until its control channel answers.
    fn start<'a>(&'a mut self, ns: &'a Netns) -> BoxFuture<'a, Result<(), StackError>>;
    /// Load the connection and credentials.
    fn load(&mut self) -> BoxFuture<'_, Result<(), StackError>>;
    /// Bring the tunnel up and wait until it is up or has failed.
    fn initiate(&mut self) -> BoxFuture<'_, Result<Initiation, StackError>>;
    /// Observe the SAs.
    fn state(&mut self) -> BoxFuture<'_, Result<EndpointState, StackError>>;
    /// Stop the daemon and reap it.
    fn stop(&mut self) -> BoxFuture<'_, ()>;
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
}

impl Timers {
    /// On a host: give up after 1.5 s.
    pub const HOST: Timers = Timers {
        retransmit_timeout: 0.5,
        retransmit_tries: 2,
    };
    /// In a VM under software emulation (about ten times slower): 6 s.
    pub const EMULATED: Timers = Timers {
        retransmit_timeout: 2.0,
        retransmit_tries: 2,
    };
}

/// Create the driver for an endpoint.
pub fn driver(ep: &Endpoint, backend: Backend, work: Workdir, timers: Timers) -> Box<dyn Stack> {
    match &ep.stack {
        StackKind::StrongSwan => Box::new(strongswan::StrongSwan::new(
            ep.clone(),
            backend,
            work,
            timers,
        )),
        StackKind::Libreswan => Box::new(libreswan::Libreswan::new(ep.clone(), work, timers)),
        StackKind::Command(spec) => Box::new(command::CommandStack::new(
            ep.clone(),
            spec.clone(),
            backend,
            work,
            timers,
        )),
    }
}

/// Stop a daemon vpnlab started (see [`daemon::terminate`]).
pub async fn terminate(child: Option<tokio::process::Child>) {
    if let Some(child) = child {
        daemon::terminate(child).await;
    }
}

/// Implement [`Stack`] for a driver by forwarding to its inherent async
/// methods `do_start`, `do_load`, `do_initiate`, `do_state`, `do_stop` and
/// its `version` field.
macro_rules! forward_stack {
    ($t:ty) => {
        impl $crate::stack::Stack for $t {
            fn version(&self) -> String {
                self.version.clone()
            }
            fn start<'a>(
                &'a mut self,
                ns: &'a $crate::topology::netns::Netns,
            ) -> futures::future::BoxFuture<'a, Result<(), $crate::error::StackError>> {
                futures::FutureExt::boxed(self.do_start(ns))
            }
            fn load(
                &mut self,
            ) -> futures::future::BoxFuture<'_, Result<(), $crate::error::StackError>> {
                futures::FutureExt::boxed(self.do_load())
            }
            fn initiate(
                &mut self,
            ) -> futures::future::BoxFuture<
                '_,
                Result<$crate::stack::Initiation, $crate::error::StackError>,
            > {
                futures::FutureExt::boxed(self.do_initiate())
            }
            fn state(
                &mut self,
            ) -> futures::future::BoxFuture<
                '_,
                Result<$crate::stack::EndpointState, $crate::error::StackError>,
            > {
                futures::FutureExt::boxed(self.do_state())
            }
            fn stop(&mut self) -> futures::future::BoxFuture<'_, ()> {
                futures::FutureExt::boxed(self.do_stop())
            }
        }
    };
}
pub(crate) use forward_stack;

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
        "500" | "4500" => format!("{addr}:{port}"),
        _ => format!("{addr}:ephemeral"),
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
    }
}
