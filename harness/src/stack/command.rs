//! A user's own stack (`stack = "command"`), driven through three programs
//! named in the scenario:
//!
//! * `start` runs inside the node for the whole cell (it configures the
//!   stack and runs the daemon in the foreground) and is stopped with
//!   SIGTERM;
//! * `status` prints the endpoint's SAs as JSON ([`EndpointState`]'s
//!   schema) and exits non-zero until the stack is ready;
//! * `initiate` brings the tunnel up; exit status 0 means up.
//!
//! All three run inside the node's network namespace with the endpoint's
//! private directory on `/run` and the `VPNLAB_*` variables of [`env()`].
//! The README documents the contract.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::daemon::{Daemon, Probe, Readiness, Spec};
use super::{endpoint_label, Backend, EndpointState, Initiation, Timers, Workdir};
use crate::error::StackError;
use crate::model::{CommandSpec, Endpoint};
use crate::topology::netns::{command_in, Netns};

/// Upper bound for `status` to first succeed after `start`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for `initiate`.
const INITIATE_TIMEOUT: Duration = Duration::from_secs(40);
/// Upper bound for one `status`.
const STATUS_TIMEOUT: Duration = Duration::from_secs(15);

/// The environment every program of the contract gets.
pub fn env(ep: &Endpoint, backend: Backend, timers: Timers) -> BTreeMap<&'static str, String> {
    let opt = |a: Option<std::net::IpAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    BTreeMap::from([
        ("VPNLAB_NODE", ep.node.clone()),
        ("VPNLAB_ROLE", ep.role.to_string()),
        ("VPNLAB_PEER", ep.peer.clone()),
        ("VPNLAB_LOCAL_ADDR", opt(ep.local_addr)),
        ("VPNLAB_REMOTE_ADDR", opt(ep.remote_addr)),
        ("VPNLAB_ID", ep.id.clone()),
        ("VPNLAB_PEER_ID", ep.peer_id.clone()),
        ("VPNLAB_PSK", ep.psk.clone()),
        ("VPNLAB_INNER", opt(ep.inner)),
        ("VPNLAB_PEER_INNER", opt(ep.peer_inner)),
        ("VPNLAB_IKE", ep.ike.to_string()),
        ("VPNLAB_NAT_T", ep.nat_t.to_string()),
        ("VPNLAB_MODE", ep.mode.to_string()),
        ("VPNLAB_RUN_DIR", "/run".into()),
        ("VPNLAB_ESP_BACKEND", backend.to_string()),
        (
            "VPNLAB_RETRANSMIT_TIMEOUT",
            timers.retransmit_timeout.to_string(),
        ),
        (
            "VPNLAB_RETRANSMIT_TRIES",
            timers.retransmit_tries.to_string(),
        ),
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
    ])
}

/// What `status` printed is not an endpoint state.
#[derive(Debug, thiserror::Error)]
#[error("status printed no valid JSON ({source}): {text}")]
pub struct BadStatus {
    source: serde_json::Error,
    text: String,
}

/// Parse what `status` printed, normalizing NAT-chosen ports as vpnlab's
/// own drivers do.
pub fn parse_status(stdout: &str) -> Result<EndpointState, BadStatus> {
    let mut st: EndpointState =
        serde_json::from_str(stdout.trim()).map_err(|source| BadStatus {
            source,
            text: stdout.trim().to_string(),
        })?;
    if let Some(ike) = st.ike.as_mut() {
        for ep in [&mut ike.local, &mut ike.remote] {
            if let Some((a, p)) = ep.rsplit_once(':') {
                *ep = endpoint_label(a, p);
            }
        }
    }
    Ok(st)
}

/// How the stack's start-up is waited for: until `status` succeeds with
/// valid JSON. Polled, bounded.
const READY: Readiness = Readiness {
    limit: START_TIMEOUT,
    pause: Duration::from_millis(50),
    max_pause: Duration::from_millis(50),
    exited: |status, last| format!("start exited ({status}); {last}"),
};

/// A user's stack for one endpoint, configured but not started.
pub struct Prepared {
    ep: Endpoint,
    spec: CommandSpec,
    backend: Backend,
    work: Workdir,
    timers: Timers,
}

impl Prepared {
    /// A stack for `ep` (which has `command`); nothing runs until
    /// [`Prepared::start`].
    pub fn new(
        ep: Endpoint,
        spec: CommandSpec,
        backend: Backend,
        work: Workdir,
        timers: Timers,
    ) -> Self {
        Self {
            ep,
            spec,
            backend,
            work,
            timers,
        }
    }

    /// Run `start` in `ns` and wait until `status` answers. A failure
    /// after the spawn stops `start` again.
    pub async fn start(self, ns: &Netns) -> Result<Running, StackError> {
        let start = self.spec.start.clone();
        std::fs::create_dir_all(&self.work.dir).map_err(|source| StackError::Config {
            node: self.ep.node.clone(),
            path: self.work.dir.clone(),
            source,
        })?;
        // `status` and `initiate` run in the node later.
        let ns_fd = ns.dup_fd().map_err(|source| StackError::Spawn {
            node: self.ep.node.clone(),
            daemon: start.display().to_string(),
            source,
        })?;
        let programs = Programs {
            ep: self.ep,
            spec: self.spec,
            backend: self.backend,
            work: self.work,
            timers: self.timers,
            ns: ns_fd,
        };
        let mut daemon = Daemon::spawn(ns, &programs.ep.node, programs.daemon_spec())?;
        if let Err(e) = daemon.ready(&READY, || programs.ready()).await {
            daemon.stop().await;
            return Err(e);
        }
        Ok(Running { programs, daemon })
    }
}

/// The contract's programs for one endpoint, run in its node.
struct Programs {
    ep: Endpoint,
    spec: CommandSpec,
    backend: Backend,
    work: Workdir,
    timers: Timers,
    ns: OwnedFd,
}

impl Programs {
    fn err(&self, program: &Path, detail: impl ToString) -> StackError {
        StackError::Control {
            node: self.ep.node.clone(),
            daemon: "command stack".into(),
            request: program.display().to_string(),
            detail: detail.to_string(),
        }
    }

    /// `start`, with its stdout and stderr in `start.stderr`.
    fn daemon_spec(&self) -> Spec {
        Spec {
            name: self.spec.start.display().to_string(),
            program: self.spec.start.clone(),
            binds: vec![(self.work.dir.clone(), "/run".into())],
            env: env(&self.ep, self.backend, self.timers)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            stderr: self.work.file("start.stderr"),
            stdout_too: true,
            ..Spec::default()
        }
    }

    /// Run `program` in the node to completion, bounded: (exit code,
    /// stdout, stderr).
    async fn run(
        &self,
        program: &Path,
        limit: Duration,
    ) -> Result<(i32, String, String), StackError> {
        let out = command_in(
            self.ns.as_fd(),
            &program.to_string_lossy(),
            vec![(self.work.dir.clone(), "/run".into())],
        )
        .env_clear()
        .envs(env(&self.ep, self.backend, self.timers))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
        match tokio::time::timeout(limit, out).await {
            Ok(Ok(o)) => Ok((
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )),
            Ok(Err(e)) => Err(self.err(program, e)),
            Err(_) => Err(self.err(program, format!("no result after {limit:?}"))),
        }
    }

    /// One readiness probe: `status` exits 0 with valid JSON.
    async fn ready(&self) -> Result<Probe<()>, StackError> {
        let (rc, out, err) = self.run(&self.spec.status, STATUS_TIMEOUT).await?;
        Ok(match (rc, parse_status(&out)) {
            (0, Ok(_)) => Probe::Ready(()),
            (0, Err(e)) => Probe::NotYet(e.to_string()),
            _ => Probe::NotYet(format!("status exit {rc}: {}", err.trim())),
        })
    }
}

/// A user's stack, running.
pub struct Running {
    programs: Programs,
    daemon: Daemon,
}

impl Running {
    /// The stack's name from the scenario.
    pub fn version(&self) -> &str {
        &self.programs.spec.name
    }

    /// Run `initiate`: exit status 0 means up; its stdout lines are the log.
    pub async fn initiate(&mut self) -> Result<Initiation, StackError> {
        let p = &self.programs;
        let Some(prog) = &p.spec.initiate else {
            return Err(p.err(Path::new("initiate"), "no initiate program"));
        };
        let (rc, out, err) = p.run(prog, INITIATE_TIMEOUT).await?;
        let mut init = Initiation {
            success: rc == 0,
            log: out
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            error: None,
        };
        if rc != 0 {
            let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
            init.error = Some(format!("initiate exit {rc}: {}", last.trim()));
        }
        Ok(init)
    }

    /// What `status` prints.
    pub async fn state(&mut self) -> Result<EndpointState, StackError> {
        let p = &self.programs;
        let (rc, out, err) = p.run(&p.spec.status, STATUS_TIMEOUT).await?;
        if rc != 0 {
            return Err(p.err(&p.spec.status, format!("exit {rc}: {}", err.trim())));
        }
        parse_status(&out).map_err(|e| p.err(&p.spec.status, e))
    }

    /// Stop `start` (SIGTERM) and reap it.
    pub async fn stop(self) {
        self.daemon.stop().await;
    }

    /// Kill it outright (a `crash` step).
    pub async fn kill(self) {
        self.daemon.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_is_read_and_nat_ports_normalized() {
        let st = parse_status(
            r#"{"ike":{"state":"ESTABLISHED","version":2,"local":"192.168.1.2:4500",
                "remote":"203.0.113.1:61000","nat_local":true,"nat_remote":false,"nat_fake":false},
                "child":{"state":"INSTALLED","mode":"tunnel","protocol":"esp","udp_encap":true,
                "local_ts":["10.10.1.1/32"],"remote_ts":["10.10.2.1/32"]}}"#,
        )
        .unwrap();
        let ike = st.ike.unwrap();
        assert_eq!(ike.local, "192.168.1.2:4500");
        assert_eq!(ike.remote, "203.0.113.1:ephemeral");
        assert!(st.child.unwrap().udp_encap);
        assert_eq!(parse_status("{}").unwrap(), EndpointState::default());
        assert!(parse_status("not json")
            .unwrap_err()
            .to_string()
            .contains("no valid JSON"));
    }
}
