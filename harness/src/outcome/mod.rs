//! The observed result of a cell and its verdict against `expect`.
//!
//! An [`Outcome`] holds only facts that are the same on every run of the
//! cell (no SPIs, PIDs, timestamps or NAT-chosen ports), so it can be
//! snapshotted byte for byte. The verdict is computed from the expectation
//! independently of any snapshot.

use std::collections::BTreeMap;

mod cause;
mod consistency;

pub use cause::{classify, Classified, Context};
pub use consistency::contradictions;
use serde::{Deserialize, Serialize};

use crate::capture::path::PathReport;
pub use crate::model::Verdict;
use crate::model::{
    Backend, CheckExpect, CheckKind, Encapsulation, EndpointState, Expectation, Initiation,
    NatProfile, NatT, PppKind, Role, TunnelExpect, WaitExpect,
};

/// The observed result of one check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// Ping or UDP.
    pub kind: CheckKind,
    /// `src -> dst[:port]`.
    pub path: String,
    /// Payload bytes per probe, when the check sets them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Probes sent.
    pub sent: u32,
    /// Answers received.
    pub received: u32,
    /// Pass when every probe was answered.
    pub result: CheckExpect,
    /// Why the check could not run at all (socket errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A failed check through a tunnel that was up: the answering node's
    /// route lookup for its replies, when it found none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_route_back: Option<String>,
}

/// What a redacted outcome shows in place of a stack version.
pub const VERSION_PLACEHOLDER: &str = "<version>";

/// One endpoint in the outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointOutcome {
    /// Node.
    pub node: String,
    /// Initiator or responder.
    pub role: Role,
    /// Stack and version, e.g. `strongSwan 5.9.8 (charon)`.
    pub stack: String,
    /// The version part of `stack` (`5.9.8`), where the driver knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The daemon binary that ran (e.g. a build of one's own under
    /// `VPNLAB_STRONGSWAN`); not in snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// NAT-T mode asked for.
    pub nat_t: NatT,
    /// SAs as reported by the daemon.
    #[serde(flatten)]
    pub state: EndpointState,
    /// Its own account: the lines of its daemon's log that say why an
    /// exchange failed (normalized: no times, SPIs or NAT-chosen ports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
}

/// The PPP link as observed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PppOutcome {
    /// L2TP or PPTP.
    pub kind: PppKind,
    /// Up when the client's PPP interface has the negotiated addresses.
    pub state: TunnelExpect,
    /// The client's PPP address, as negotiated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// The peer's PPP address, as the client sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ip: Option<String>,
    /// Why the link is down: the last words of the daemons' logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What one timed step did and what was observed after it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepOutcome {
    /// Step name.
    pub name: String,
    /// What was done, e.g. `nat-reboot gw: mappings flushed, outside ports now 20000-29999`.
    pub action: String,
    /// How a `wait` ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitExpect>,
    /// Checks run again by this step (named `<check>@<step>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// Each endpoint after the step (after `checks` steps: by then what an
    /// event set moving, such as a rekey after an address update, has
    /// settled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<StepView>,
    /// Why the step could not be carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An endpoint's SAs in one line, as seen after a step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepView {
    /// Node.
    pub node: String,
    /// IKE SA state, or `none`.
    pub ike: String,
    /// The IKE SA's peer address:port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// CHILD SA state, or `none`.
    pub child: String,
    /// Installed CHILD SAs, after an `ike` step (a rekey collision must
    /// leave one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<u32>,
}

/// A gateway's NAT in the outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NatOutcome {
    /// Profile.
    pub profile: NatProfile,
    /// The nftables ruleset applied inside the gateway, line by line.
    pub ruleset: Vec<String>,
    /// A NAT64 gateway's translator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translator: Option<TranslatorOutcome>,
}

/// A NAT64 gateway's translator, as it started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TranslatorOutcome {
    /// The program.
    pub program: String,
    /// The prefix IPv4 addresses are synthesized into.
    pub prefix: String,
    /// What it noted at start-up (e.g. what it will refuse to translate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Everything observed in one cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    /// Cell name.
    pub cell: String,
    /// Matrix values.
    pub axes: BTreeMap<String, String>,
    /// Verdict against `expect`.
    pub verdict: Verdict,
    /// Each way the observation differs from `expect`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<String>,
    /// Why the cell is unsupported, or why it could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// ESP backend used.
    pub backend: Backend,
    /// What was expected.
    pub expected: Expectation,
    /// Observed tunnel state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelExpect>,
    /// Observed ESP encapsulation (when the tunnel is up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encapsulation: Option<Encapsulation>,
    /// The initiator's account of the exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiation: Option<Initiation>,
    /// Per-endpoint SA state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointOutcome>,
    /// The PPP link, for files with a PPP layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppp: Option<PppOutcome>,
    /// Check results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// NAT per forwarding node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nat: BTreeMap<String, NatOutcome>,
    /// Timed steps, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepOutcome>,
    /// What crossed each link, and where packets stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathReport>,
    /// A failed cell's root cause, where the evidence shows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Classified>,
}

impl Outcome {
    /// A cell that never ran.
    pub fn not_run(
        cell: &crate::model::Cell,
        backend: Backend,
        verdict: Verdict,
        reason: String,
    ) -> Self {
        Outcome {
            verdict,
            reason: Some(reason),
            ..Outcome::blank(cell, backend)
        }
    }

    /// A cell's outcome before anything is observed (verdict `error` until
    /// judged).
    pub fn blank(cell: &crate::model::Cell, backend: Backend) -> Self {
        Outcome {
            cell: cell.id.clone(),
            axes: cell.axes.iter().cloned().collect(),
            verdict: Verdict::Error,
            mismatches: vec![],
            reason: None,
            backend,
            expected: cell.expect.clone(),
            tunnel: None,
            encapsulation: None,
            initiation: None,
            endpoints: vec![],
            ppp: None,
            checks: vec![],
            nat: BTreeMap::new(),
            steps: vec![],
            path: None,
            cause: None,
        }
    }

    /// The outcome as snapshots hold it: the same on every machine that
    /// runs the same stacks, whatever their versions (a distribution update
    /// must not rewrite the snapshots of users validating a stack change;
    /// the JSON report keeps the versions).
    pub fn redacted(&self) -> Outcome {
        let mut o = self.clone();
        for e in &mut o.endpoints {
            e.build = None;
            if let Some(v) = e.version.take() {
                e.stack = e.stack.replacen(&v, VERSION_PLACEHOLDER, 1);
            }
        }
        // A translator's start-up notes are its own wording, which a new
        // version may change; the diagnosis says what they mean.
        for n in o.nat.values_mut() {
            if let Some(t) = &mut n.translator {
                t.notes.clear();
            }
        }
        o
    }

    /// Road warriors that were assigned the same virtual IP: always a
    /// failure, whatever the file expects (a pool hands out each address
    /// once).
    fn shared_virtual_ips(&self) -> Vec<String> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        let mut out = Vec::new();
        for e in &self.endpoints {
            let Some(v) = e.state.ike.as_ref().and_then(|i| i.virtual_ip.as_deref()) else {
                continue;
            };
            if let Some(first) = seen.insert(v, &e.node) {
                out.push(format!(
                    "virtual IP {v} assigned to both {first} and {}",
                    e.node
                ));
            }
        }
        out
    }

    /// Derive tunnel state and encapsulation from the endpoints: up when
    /// every endpoint has an established IKE SA and an installed CHILD SA.
    pub fn observe_tunnel(&mut self) {
        // Every SA of every endpoint (a responder with several peers has
        // one per peer).
        let sas = || {
            self.endpoints
                .iter()
                .flat_map(|e| std::iter::once(&e.state).chain(&e.state.also))
        };
        let up = !self.endpoints.is_empty() && sas().all(EndpointState::is_up);
        self.tunnel = (!self.endpoints.is_empty()).then_some(if up {
            TunnelExpect::Up
        } else {
            TunnelExpect::Down
        });
        self.encapsulation = up.then(|| {
            let encap = |e: &EndpointOutcome| e.state.child.as_ref().is_some_and(|c| c.udp_encap);
            if self.endpoints.iter().all(encap) {
                Encapsulation::Udp
            } else if self.endpoints.iter().any(encap)
                || self.endpoints.iter().any(|e| {
                    e.state
                        .child
                        .as_ref()
                        .is_some_and(|c| c.udp_encap_oneway.is_some())
                })
            {
                Encapsulation::Mixed
            } else {
                Encapsulation::None
            }
        });
    }

    /// Compare the observation with the expectation and set the verdict.
    pub fn judge(&mut self) {
        let mut m = self.shared_virtual_ips();
        m.extend(self.state_mismatches());
        m.extend(self.check_mismatches());
        m.extend(self.step_mismatches());
        if let Some(want) = self.expected.cause {
            let seen = self.cause.as_ref().map(|c| c.id);
            if seen != Some(want) {
                m.push(format!(
                    "cause: expected {want}, classified {}",
                    seen.map_or("none".into(), |c| c.to_string())
                ));
            }
        }
        self.verdict = if m.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        self.mismatches = m;
    }

    /// Tunnel, PPP link and encapsulation against what was expected.
    fn state_mismatches(&self) -> Vec<String> {
        let mut m = Vec::new();
        let exp = &self.expected;
        let nothing = |x: Option<String>| x.unwrap_or_else(|| "nothing".into());
        if let Some(want) = exp.tunnel {
            if self.tunnel != Some(want) {
                let seen = nothing(self.tunnel.map(|t| t.to_string()));
                m.push(format!("tunnel: expected {want}, observed {seen}"));
            }
        }
        if let Some(want) = exp.ppp {
            let seen = self.ppp.as_ref().map(|p| p.state);
            if seen != Some(want) {
                let seen = nothing(seen.map(|t| t.to_string()));
                m.push(format!("ppp: expected {want}, observed {seen}"));
            }
        }
        if let (Some(want), Some(TunnelExpect::Up)) = (exp.encapsulation, exp.tunnel) {
            if self.tunnel == Some(TunnelExpect::Up) && self.encapsulation != Some(want) {
                let seen = nothing(self.encapsulation.map(|e| e.to_string()));
                m.push(format!("encapsulation: expected {want}, observed {seen}"));
            }
        }
        m
    }

    /// Every expected check, the cell's and its steps'.
    fn check_mismatches(&self) -> Vec<String> {
        let step_checks = self.steps.iter().flat_map(|s| &s.checks);
        let all: Vec<&CheckResult> = self.checks.iter().chain(step_checks).collect();
        let mut m = Vec::new();
        for (name, want) in &self.expected.checks {
            match all.iter().find(|c| &c.name == name) {
                Some(c) if c.result == *want => {}
                Some(c) => m.push(format!(
                    "check {name}: expected {}, observed {} ({}/{} answered)",
                    want, c.result, c.received, c.sent
                )),
                None => m.push(format!("check {name}: expected {}, not run", want)),
            }
        }
        m
    }

    /// Steps that could not be carried out, and waits that ended otherwise.
    fn step_mismatches(&self) -> Vec<String> {
        let mut m = Vec::new();
        for st in &self.steps {
            if let Some(e) = &st.error {
                m.push(format!("step {}: could not be carried out: {e}", st.name));
            }
        }
        for (name, want) in &self.expected.waits {
            let seen = self
                .steps
                .iter()
                .find(|s| &s.name == name)
                .and_then(|s| s.wait);
            if seen != Some(*want) {
                m.push(format!(
                    "wait {name}: expected {}, observed {}",
                    want,
                    seen.map_or("nothing (not run)".into(), |w| w.to_string())
                ));
            }
        }
        m
    }

    /// Classify a judged cell's failure (its path now known) and judge it
    /// again against the expected cause. A cell that could not run keeps
    /// its verdict.
    pub fn diagnose(&mut self, cx: &Context) {
        if matches!(self.verdict, Verdict::Pass | Verdict::Fail) {
            self.cause = classify(self, cx);
            self.judge();
        }
    }

    /// One-line summary of what was observed, for tables.
    pub fn observed_summary(&self) -> String {
        match self.verdict {
            Verdict::Unsupported => return "unsupported".into(),
            Verdict::Skipped => return "skipped".into(),
            Verdict::Error => return "error".into(),
            _ => {}
        }
        let mut s = if self.endpoints.is_empty() {
            String::new()
        } else {
            self.tunnel.map_or("?".into(), |t| t.to_string())
        };
        if let Some(e) = self.encapsulation {
            s.push_str(&format!(" encap={}", e));
        }
        if let Some(p) = &self.ppp {
            s.push_str(&format!(" ppp={}", p.state));
        }
        let mut s = s.trim_start().to_string();
        for c in self
            .checks
            .iter()
            .chain(self.steps.iter().flat_map(|s| &s.checks))
        {
            s.push_str(&format!(" {}={}/{}", c.name, c.received, c.sent));
        }
        s
    }
}

/// Expected state as a one-line summary.
pub fn expected_summary(e: &Expectation) -> String {
    let mut s = e.tunnel.map_or_else(String::new, |t| t.to_string());
    if let (Some(x), Some(TunnelExpect::Up)) = (e.encapsulation, e.tunnel) {
        s.push_str(&format!(" encap={}", x));
    }
    if let Some(p) = e.ppp {
        s.push_str(&format!(" ppp={}", p));
    }
    let mut s = s.trim_start().to_string();
    for (n, r) in &e.checks {
        s.push_str(&format!(" {n}={}", r));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CheckExpect, CheckKind, ChildSa, IkeSa, SaState};

    fn outcome(up: bool, encap: bool, ping: u32) -> Outcome {
        let ep = |node: &str| EndpointOutcome {
            node: node.into(),
            role: Role::Initiator,
            stack: "strongSwan".into(),
            version: None,
            build: None,
            nat_t: NatT::Auto,
            log: vec![],
            state: EndpointState {
                ike: Some(IkeSa {
                    state: if up {
                        SaState::Established
                    } else {
                        SaState::Connecting
                    },
                    ..Default::default()
                }),
                child: up.then(|| ChildSa {
                    state: SaState::Installed,
                    udp_encap: encap,
                    ..Default::default()
                }),
                ..Default::default()
            },
        };
        let mut o = Outcome {
            cell: "t".into(),
            axes: BTreeMap::new(),
            verdict: Verdict::Error,
            mismatches: vec![],
            reason: None,
            backend: Backend::KernelLibipsec,
            expected: Expectation {
                tunnel: Some(TunnelExpect::Up),
                ppp: None,
                encapsulation: Some(Encapsulation::Udp),
                checks: [("ping".to_string(), CheckExpect::Pass)].into(),
                waits: BTreeMap::new(),
                cause: None,
            },
            tunnel: None,
            encapsulation: None,
            initiation: None,
            endpoints: vec![ep("a"), ep("b")],
            ppp: None,
            checks: vec![CheckResult {
                name: "ping".into(),
                kind: CheckKind::Ping,
                size: None,
                path: String::new(),
                sent: 3,
                received: ping,
                result: if ping == 3 {
                    CheckExpect::Pass
                } else {
                    CheckExpect::Fail
                },
                error: None,
                no_route_back: None,
            }],
            nat: BTreeMap::new(),
            steps: vec![],
            path: None,
            cause: None,
        };
        o.observe_tunnel();
        o.judge();
        o
    }

    #[test]
    fn matching_observation_passes() {
        let o = outcome(true, true, 3);
        assert_eq!(o.verdict, Verdict::Pass, "{:?}", o.mismatches);
    }

    #[test]
    fn each_difference_is_a_named_mismatch() {
        let o = outcome(true, false, 3);
        assert_eq!(o.verdict, Verdict::Fail);
        assert_eq!(
            o.mismatches,
            vec!["encapsulation: expected udp, observed none"]
        );
        let o = outcome(true, true, 2);
        assert_eq!(
            o.mismatches,
            vec!["check ping: expected pass, observed fail (2/3 answered)"]
        );
        let o = outcome(false, true, 0);
        assert_eq!(o.tunnel, Some(TunnelExpect::Down));
        assert_eq!(o.mismatches.len(), 2);
        assert!(o.mismatches[0].starts_with("tunnel: expected up, observed down"));
    }

    #[test]
    fn two_road_warriors_with_one_virtual_ip_fail_the_cell() {
        let mut o = outcome(true, true, 3);
        for (e, v) in o.endpoints.iter_mut().zip(["10.3.0.1", "10.3.0.2"]) {
            e.state.ike.as_mut().unwrap().virtual_ip = Some(v.into());
        }
        o.judge();
        assert_eq!(o.verdict, Verdict::Pass, "{:?}", o.mismatches);
        o.endpoints[1].state.ike.as_mut().unwrap().virtual_ip = Some("10.3.0.1".into());
        o.judge();
        assert_eq!(
            o.mismatches,
            vec!["virtual IP 10.3.0.1 assigned to both a and b"]
        );
        assert_eq!(o.verdict, Verdict::Fail);
    }
}
