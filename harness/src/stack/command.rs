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
//! private directory on `/run` and the `VPNLAB_*` variables of [`env`].
//! The README documents the contract.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{endpoint_label, Backend, EndpointState, Initiation, Timers, Workdir};
use crate::error::StackError;
use crate::model::{CommandSpec, Endpoint};
use crate::topology::netns::Netns;

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

/// Parse what `status` printed, normalizing NAT-chosen ports as vpnlab's
/// own drivers do.
pub fn parse_status(stdout: &str) -> Result<EndpointState, String> {
    let mut st: EndpointState = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("status printed no valid JSON ({e}): {}", stdout.trim()))?;
    if let Some(ike) = st.ike.as_mut() {
        for ep in [&mut ike.local, &mut ike.remote] {
            if let Some((a, p)) = ep.rsplit_once(':') {
                *ep = endpoint_label(a, p);
            }
        }
    }
    Ok(st)
}

/// A user's stack for one endpoint.
pub struct CommandStack {
    ep: Endpoint,
    spec: CommandSpec,
    backend: Backend,
    work: Workdir,
    timers: Timers,
    ns: Option<std::os::fd::OwnedFd>,
    child: Option<tokio::process::Child>,
    version: String,
}

impl CommandStack {
    /// A driver for `ep` (which has `command`); nothing runs until `start`.
    pub fn new(
        ep: Endpoint,
        spec: CommandSpec,
        backend: Backend,
        work: Workdir,
        timers: Timers,
    ) -> Self {
        Self {
            version: spec.name.clone(),
            ep,
            spec,
            backend,
            work,
            timers,
            ns: None,
            child: None,
        }
    }

    fn programs(&self) -> &CommandSpec {
        &self.spec
    }

    fn err(&self, program: &Path, detail: impl ToString) -> StackError {
        StackError::Control {
            node: self.ep.node.clone(),
            daemon: "command stack".into(),
            request: program.display().to_string(),
            detail: detail.to_string(),
        }
    }

    /// A command for one of the programs, inside the node.
    fn command(&self, program: &Path) -> tokio::process::Command {
        use std::os::fd::AsFd;
        let ns = self.ns.as_ref().expect("started");
        let mut c = crate::topology::netns::command_in(
            ns.as_fd(),
            &program.to_string_lossy(),
            vec![(self.work.dir.clone(), "/run".into())],
        );
        c.env_clear().envs(env(&self.ep, self.backend, self.timers));
        c
    }

    /// Run `program` to completion, bounded: (exit code, stdout, stderr).
    async fn run(
        &self,
        program: &Path,
        limit: Duration,
    ) -> Result<(i32, String, String), StackError> {
        let out = self
            .command(program)
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

    /// What `start` wrote to its stderr (for error messages).
    fn start_log(&self) -> String {
        let log = std::fs::read_to_string(self.work.file("start.stderr")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    async fn do_start(&mut self, ns: &Netns) -> Result<(), StackError> {
        let node = self.ep.node.clone();
        let start = self.programs().start.clone();
        std::fs::create_dir_all(&self.work.dir).map_err(|source| StackError::Config {
            node: node.clone(),
            path: self.work.dir.clone(),
            source,
        })?;
        let log_path = self.work.file("start.stderr");
        let log = std::fs::File::create(&log_path).map_err(|source| StackError::Config {
            node: node.clone(),
            path: log_path.clone(),
            source,
        })?;
        self.ns = Some(ns.dup_fd().map_err(|source| StackError::Spawn {
            node: node.clone(),
            daemon: start.display().to_string(),
            source,
        })?);
        let child = self
            .command(&start)
            .stdout(log.try_clone().map_err(|source| StackError::Spawn {
                node: node.clone(),
                daemon: start.display().to_string(),
                source,
            })?)
            .stderr(log)
            .spawn()
            .map_err(|source| StackError::Spawn {
                node: node.clone(),
                daemon: start.display().to_string(),
                source,
            })?;
        self.child = Some(child);
        // Ready when `status` succeeds with valid JSON. Polled, bounded.
        let status = self.programs().status.clone();
        let started = Instant::now();
        loop {
            let (rc, out, err) = self.run(&status, STATUS_TIMEOUT).await?;
            let last = if rc == 0 {
                match parse_status(&out) {
                    Ok(_) => return Ok(()),
                    Err(e) => e,
                }
            } else {
                format!("status exit {rc}: {}", err.trim())
            };
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > START_TIMEOUT {
                return Err(StackError::NotReady {
                    node,
                    daemon: start.display().to_string(),
                    waited_ms: started.elapsed().as_millis(),
                    detail: format!(
                        "{}{last}\n{}",
                        exited.map_or(String::new(), |s| format!("start exited ({s}); ")),
                        self.start_log()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `start` configured everything.
    async fn do_load(&mut self) -> Result<(), StackError> {
        Ok(())
    }

    async fn do_initiate(&mut self) -> Result<Initiation, StackError> {
        let Some(prog) = self.programs().initiate.clone() else {
            return Err(self.err(Path::new("initiate"), "no initiate program"));
        };
        let (rc, out, err) = self.run(&prog, INITIATE_TIMEOUT).await?;
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

    async fn do_state(&mut self) -> Result<EndpointState, StackError> {
        let status = self.programs().status.clone();
        let (rc, out, err) = self.run(&status, STATUS_TIMEOUT).await?;
        if rc != 0 {
            return Err(self.err(&status, format!("exit {rc}: {}", err.trim())));
        }
        parse_status(&out).map_err(|e| self.err(&status, e))
    }

    async fn do_stop(&mut self) {
        super::terminate(self.child.take()).await;
        self.ns = None;
    }
}

super::forward_stack!(CommandStack);

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
            .contains("no valid JSON"));
    }
}
