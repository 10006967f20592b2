//! VPN stacks: one driver per implementation behind [`Stack`], created by
//! [`driver`]. A driver runs one endpoint's daemon inside its node and maps
//! what the daemon reports onto the common [`EndpointState`].

use std::path::PathBuf;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::StackError;
use crate::netns::Netns;
use crate::scenario::cell::Endpoint;

/// Stack names a scenario may use.
pub const KNOWN: &[&str] = &["strongswan", "libreswan", "command"];

/// How ESP is processed on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Kernel XFRM (real ESP states in the kernel).
    KernelNetlink,
    /// strongSwan's userspace ESP over a TUN device; always UDP-encapsulates.
    KernelLibipsec,
}

impl Backend {
    /// Name as shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::KernelNetlink => "kernel-netlink",
            Backend::KernelLibipsec => "kernel-libipsec",
        }
    }
}

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

/// IKE SA as observed, normalized.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct IkeState {
    /// e.g. `ESTABLISHED`, `CONNECTING`.
    pub state: String,
    /// 1 or 2.
    pub version: u8,
    /// Local address:port (non-IKE ports normalized to `ephemeral`).
    pub local: String,
    /// Remote address:port.
    pub remote: String,
    /// Remote address:port as reported, before normalization (not in
    /// snapshots; `peer-moved` waits compare it).
    #[serde(skip)]
    pub remote_raw: String,
    /// This end is behind NAT.
    pub nat_local: bool,
    /// The peer is behind NAT.
    pub nat_remote: bool,
    /// NAT faked to force UDP encapsulation.
    pub nat_fake: bool,
}

/// CHILD SA as observed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ChildState {
    /// e.g. `INSTALLED`.
    pub state: String,
    /// `tunnel` or `transport`.
    pub mode: String,
    /// `esp` or `ah`.
    pub protocol: String,
    /// ESP in UDP, both directions.
    pub udp_encap: bool,
    /// Set when only one direction is ESP in UDP (`outbound only` or
    /// `inbound only`): the two ends disagreed about NAT traversal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_encap_oneway: Option<String>,
    /// Local traffic selectors.
    pub local_ts: Vec<String>,
    /// Remote traffic selectors.
    pub remote_ts: Vec<String>,
}

/// What one endpoint reports after the exchange.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct EndpointState {
    /// The IKE SA, if any exists.
    pub ike: Option<IkeState>,
    /// The CHILD SA, if one is installed.
    pub child: Option<ChildState>,
    /// A responder with several peers: the SAs with the others, sorted by
    /// remote address:port (the first pair is `ike`/`child`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<EndpointState>,
}

/// Result of asking the initiator to bring the tunnel up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Initiation {
    /// The daemon reported success.
    pub success: bool,
    /// Notable, normalized facts from the daemon's log of the exchange
    /// (NAT detection, retransmits, why it gave up).
    pub log: Vec<String>,
    /// The daemon's error message on failure.
    pub error: Option<String>,
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
    if ep.stack != "strongswan" {
        if !ep.others.is_empty() {
            return Some(format!(
                "a responder with several peers is only implemented for strongSwan, not {}",
                ep.stack
            ));
        }
        if let Some(k) = unmapped_knob(ep) {
            return Some(format!(
                "vpnlab does not map `{k}` onto {} yet (only the strongSwan driver does)",
                ep.stack
            ));
        }
    }
    match ep.stack.as_str() {
        "strongswan" => strongswan::unsupported(ep, backend),
        "libreswan" => libreswan::unsupported(ep, backend),
        // A user's own stack: whether it can run is its own business.
        "command" => None,
        other => Some(format!("unknown stack {other}")),
    }
}

/// The first endpoint knob set away from its default (which every driver
/// shares).
fn unmapped_knob(ep: &Endpoint) -> Option<&'static str> {
    let (k, d) = (&ep.knobs, crate::scenario::cell::EndpointKnobs::default());
    [
        (k.keepalive != d.keepalive, "keepalive"),
        (k.dpd != d.dpd, "dpd"),
        (k.fragmentation != d.fragmentation, "fragmentation"),
        (k.mobike != d.mobike, "mobike"),
        (k.auth != d.auth, "auth = \"cert\""),
        (k.proto != d.proto, "proto = \"ah\""),
    ]
    .into_iter()
    .find_map(|(differs, name)| differs.then_some(name))
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
    match ep.stack.as_str() {
        "strongswan" => Box::new(strongswan::StrongSwan::new(
            ep.clone(),
            backend,
            work,
            timers,
        )),
        "libreswan" => Box::new(libreswan::Libreswan::new(ep.clone(), work, timers)),
        "command" => Box::new(command::CommandStack::new(
            ep.clone(),
            backend,
            work,
            timers,
        )),
        other => unreachable!("stack {other} passed validation"),
    }
}

/// Stop a daemon vpnlab started: SIGTERM, then SIGKILL after 3 s; reaped
/// either way.
pub async fn terminate(child: Option<tokio::process::Child>) {
    let Some(mut child) = child else { return };
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(std::time::Duration::from_secs(3), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
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
                ns: &'a $crate::netns::Netns,
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
pub mod libreswan;
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
