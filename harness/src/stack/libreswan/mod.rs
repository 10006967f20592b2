//! libreswan driver: one `pluto` per endpoint, run from a private prefix
//! (Debian's package conflicts with strongSwan's), configured through a
//! generated `ipsec.conf` (its connections `auto=add`, which pluto's own
//! start-up `addconn` loads) and controlled with `whack`.
//!
//! pluto's status output does not say whether NAT was detected, nor from
//! which local port it speaks; its debug log does, so pluto runs with
//! `plutodebug=base` and the driver reads those facts from the log. ESP mode
//! and encapsulation are read from the kernel (`ip xfrm state` in the node),
//! which is what actually processes the packets.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::daemon::{Daemon, Probe, Readiness, Spec, SYSTEM_PATH};
use super::{endpoint_label, ChildSa, EndpointState, IkeSa, Initiation, Timers, Workdir};
use crate::error::StackError;
use crate::model::{Auth, Endpoint, IkeOp, Mode, Proto, SaIds, SaState};
use crate::topology::netns::{command_in, Netns};

mod conf;
mod nss;
mod proposals;
mod status;

pub use conf::{conns, id, ipsec_conf, secrets, unsupported, CONN, CONN_IKEV1};
use status::{
    is_child_state, normalize_state, Algorithms, Instance, LogFacts, ShownState, Traffic, XfrmState,
};
pub use status::{
    message, notable, parse_algorithms, parse_log, parse_remote_subnets, parse_showstates,
    parse_trafficstatus, parse_xfrm_states, timeless,
};

/// Upper bound for pluto to start listening (it takes 2–3 s in an emulated VM).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one `whack --initiate` (pluto gives up earlier: see
/// `retransmit-timeout`).
const INITIATE_TIMEOUT: Duration = Duration::from_secs(40);
/// Upper bound for one status query.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);

/// The prefix libreswan's package was unpacked into (`VPNLAB_LIBRESWAN`
/// overrides `/opt/vpnlab/libreswan`, where `ci/setup.sh` puts it).
pub fn prefix() -> PathBuf {
    std::env::var_os("VPNLAB_LIBRESWAN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/vpnlab/libreswan"))
}

/// A program from the prefix's `usr/libexec/ipsec`.
pub fn tool(name: &str) -> PathBuf {
    prefix().join("usr/libexec/ipsec").join(name)
}

/// The command that installs libreswan where vpnlab looks for it.
pub const INSTALL_HINT: &str = "sudo ci/setup.sh (unpacks Debian's libreswan into /opt/vpnlab/libreswan; set VPNLAB_LIBRESWAN for another prefix)";

/// How pluto's start-up is waited for: until it has bound IKE's port. It
/// does that after its control socket is up and its start-up `addconn` has
/// told it to listen. Polled, bounded.
const READY: Readiness = Readiness {
    limit: START_TIMEOUT,
    pause: Duration::from_millis(5),
    max_pause: Duration::from_millis(5),
    exited: |status, _| format!("pluto exited during start-up ({status})"),
};

fn control_err(node: &str, request: &str, detail: impl ToString) -> StackError {
    StackError::Control {
        node: node.to_string(),
        daemon: "pluto".into(),
        request: request.into(),
        detail: detail.to_string(),
    }
}

/// Bind mounts for pluto and its tools: the endpoint's directory on
/// `/run`, and the prefix's helpers where pluto was compiled to find them
/// (`/usr/libexec/ipsec/addconn`, run at start-up).
fn binds(work: &Workdir) -> Vec<(PathBuf, PathBuf)> {
    vec![
        (work.dir.clone(), "/run".into()),
        (prefix().join("usr/libexec"), "/usr/libexec".into()),
    ]
}

/// One readiness probe: whether UDP 500 is bound in the node, in `table`
/// (`udp` or `udp6`): the family IKE uses there. pluto binds one address
/// after the other, and a peer whose first IKE message reaches an IPv6
/// address not bound yet gets an ICMP error (a packet in the snapshot).
async fn bound(ns: &Netns, table: &'static str) -> Result<Probe<()>, StackError> {
    Ok(if ns.listens(table, 500) {
        Probe::Ready(())
    } else {
        // pluto listens when its start-up addconn tells it to; an addconn
        // that fails first (its errors go to pluto's stderr) never does.
        Probe::NotYet("UDP port 500 never bound (pluto listens once its start-up addconn has run: see pluto's stderr)".into())
    })
}

/// The release pluto logs at start-up: "Starting Pluto (Libreswan Version
/// 4.10 IKEv2 ..." → `4.10`.
fn logged_release(log: &str) -> Option<String> {
    log.lines()
        .find_map(|l| l.split("(Libreswan Version ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .map(str::to_string)
}

/// "Libreswan 4.10" (`libreswan` if pluto did not say).
fn label(release: Option<&str>) -> String {
    release.map_or_else(|| "libreswan".into(), |v| format!("Libreswan {v}"))
}

/// Whether pluto logged connection `name` (IKE version `v`) as added:
/// `"vpnlab": added IKEv2 connection`.
fn added(log: &str, name: &str, v: u8) -> bool {
    let line = format!("\"{name}\": added IKEv{v} connection");
    log.lines().any(|l| l.starts_with(&line))
}

/// What pluto and its start-up addconn said about a connection that was
/// not added: the connection's last log lines (debug lines left out),
/// then the last of pluto's stderr, where addconn's errors go; each part
/// capped on its own, so stderr noise cannot push out pluto's reason.
fn refusal(log: &str, stderr: &str, name: &str) -> String {
    fn last<'a>(lines: &[&'a str], n: usize) -> Vec<&'a str> {
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
    let tag = format!("\"{name}\"");
    let own: Vec<&str> = log.lines().filter(|l| l.starts_with(&tag)).collect();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("adjusting") && !l.trim().is_empty())
        .collect();
    let said = [last(&own, 4), last(&errors, 4)].concat();
    if said.is_empty() {
        format!("pluto did not log connection {tag} as added, nor why not")
    } else {
        said.join("\n")
    }
}

/// An endpoint's pluto, configured but not started.
pub struct Prepared {
    ep: Endpoint,
    work: Workdir,
    timers: Timers,
}

impl Prepared {
    /// A pluto for `ep`; nothing runs until [`Prepared::start`].
    pub fn new(ep: Endpoint, work: Workdir, timers: Timers) -> Self {
        Self { ep, work, timers }
    }

    /// Write pluto's files, start it in `ns` and wait until it listens. A
    /// failure after the spawn stops pluto again.
    pub async fn start(self, ns: &Netns) -> Result<Running, StackError> {
        let pluto = tool("pluto");
        if !pluto.exists() {
            return Err(StackError::Missing {
                node: self.ep.node.clone(),
                what: format!("libreswan's pluto ({})", pluto.display()),
                install: INSTALL_HINT.into(),
            });
        }
        self.write_config()?;
        self.nss_db().await?;
        // whack and `ip xfrm` run in the node after start-up.
        let ns_fd = ns.dup_fd().map_err(|source| StackError::Spawn {
            node: self.ep.node.clone(),
            daemon: pluto.display().to_string(),
            source,
        })?;
        let mut daemon = Daemon::spawn(ns, &self.ep.node, self.spec(pluto))?;
        let table = match self.ep.local_addr {
            Some(a) if a.is_ipv6() => "udp6",
            _ => "udp",
        };
        if let Err(e) = daemon.ready(&READY, || bound(ns, table)).await {
            daemon.stop().await;
            return Err(e);
        }
        let log = std::fs::read_to_string(self.work.file("pluto.log")).unwrap_or_default();
        let release = logged_release(&log);
        Ok(Running {
            version: label(release.as_deref()),
            release,
            ep: self.ep,
            work: self.work,
            ns: ns_fd,
            daemon,
        })
    }

    fn cfg_err(&self, path: &Path) -> impl FnOnce(std::io::Error) -> StackError {
        let (node, path) = (self.ep.node.clone(), path.to_path_buf());
        move |source| StackError::Config { node, path, source }
    }

    /// `ipsec.conf`, `ipsec.secrets` (owner-only, as pluto wants) and the
    /// directories pluto expects.
    fn write_config(&self) -> Result<(), StackError> {
        use std::os::unix::fs::PermissionsExt;
        let run = &self.work.dir;
        for d in [run.clone(), run.join("nss"), run.join("ipsec.d")] {
            std::fs::create_dir_all(&d).map_err(self.cfg_err(&d))?;
        }
        super::daemon::clear_stale(run, &["pluto.pid", "pluto.ctl"]);
        let conf = self.work.file("ipsec.conf");
        std::fs::write(&conf, ipsec_conf(&self.ep, self.timers)).map_err(self.cfg_err(&conf))?;
        let sec = self.work.file("ipsec.secrets");
        std::fs::write(&sec, secrets(&self.ep)).map_err(self.cfg_err(&sec))?;
        std::fs::set_permissions(&sec, std::fs::Permissions::from_mode(0o600))
            .map_err(self.cfg_err(&sec))
    }

    /// pluto keeps keys and certificates in an NSS database: the run's
    /// empty one, with the test CA and this end's certificate added for
    /// `auth = "cert"`.
    async fn nss_db(&self) -> Result<(), StackError> {
        let run = &self.work.dir;
        let root = run.parent().and_then(Path::parent).unwrap_or(run);
        let db = nss::Db {
            node: &self.ep.node,
            db: run.join("nss"),
        };
        db.create(root).await?;
        match self.ep.knobs.auth {
            Auth::Cert { size } => {
                let flaw = super::pki::Flaw::of(&self.ep.misconfigured);
                db.import(&self.ep.id, size, flaw).await
            }
            Auth::Psk => Ok(()),
        }
    }

    fn spec(&self, pluto: PathBuf) -> Spec {
        let args = [
            "--nofork",
            "--config",
            "/run/ipsec.conf",
            "--rundir",
            "/run",
            "--nssdir",
            "/run/nss",
            "--secretsfile",
            "/run/ipsec.secrets",
            "--ipsecdir",
            "/run/ipsec.d",
            "--logfile",
            "/run/pluto.log",
        ];
        Spec {
            name: "pluto".into(),
            program: pluto,
            args: args.map(String::from).to_vec(),
            binds: binds(&self.work),
            env: vec![("PATH".into(), SYSTEM_PATH.into())],
            stderr: self.work.file("pluto.stderr"),
            logs: vec![self.work.file("pluto.log")],
            // pluto runs with `plutodebug=base`: its debug lines would
            // crowd out the ones that explain a failure.
            debug_prefix: Some("| "),
            ..Spec::default()
        }
    }
}

/// A running pluto, with the node's namespace for the tools that run there.
pub struct Running {
    ep: Endpoint,
    work: Workdir,
    ns: OwnedFd,
    daemon: Daemon,
    version: String,
    release: Option<String>,
}

impl Running {
    /// e.g. `Libreswan 4.10`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// e.g. `4.10`.
    pub fn release(&self) -> Option<&str> {
        self.release.as_deref()
    }

    fn control_err(&self, request: &str, detail: impl ToString) -> StackError {
        control_err(&self.ep.node, request, detail)
    }

    /// Run `whack` against this pluto's control socket; returns the exit
    /// code and stdout.
    async fn whack(&self, args: &[&str], limit: Duration) -> Result<(i32, String), StackError> {
        let ctl = self.work.file("pluto.ctl");
        let out = tokio::process::Command::new(tool("whack"))
            .arg("--ctlsocket")
            .arg(&ctl)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let request = format!("whack {}", args.join(" "));
        match tokio::time::timeout(limit, out).await {
            Ok(Ok(o)) => Ok((
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr),
            )),
            Ok(Err(e)) => Err(self.control_err(&request, e)),
            Err(_) => Err(self.control_err(&request, format!("no answer after {limit:?}"))),
        }
    }

    /// Run a program inside the node (with the daemon's mounts when
    /// `mounts`), bounded; returns stdout, or the error with stderr.
    async fn in_node(
        &self,
        program: &Path,
        args: &[&str],
        mounts: bool,
    ) -> Result<String, StackError> {
        let binds = if mounts { binds(&self.work) } else { vec![] };
        let out = command_in(self.ns.as_fd(), &program.to_string_lossy(), binds)
            .args(args)
            .output();
        let request = format!(
            "{} {}",
            program.file_name().unwrap_or_default().to_string_lossy(),
            args.join(" ")
        );
        match tokio::time::timeout(CONTROL_TIMEOUT, out).await {
            Ok(Ok(o)) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
            Ok(Ok(o)) => Err(self.control_err(
                &request,
                format!(
                    "{}: {}{}",
                    o.status,
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            )),
            Ok(Err(e)) => Err(self.control_err(&request, e)),
            Err(_) => Err(self.control_err(&request, "timed out")),
        }
    }

    /// Check that pluto's start-up `addconn --autoall` added every
    /// connection (`auto=add`; two for a responder of either IKE version).
    /// addconn adds them before it tells pluto to listen, so once UDP 500
    /// is bound pluto has logged each one's fate. (An addconn of our own
    /// per connection cost a UML guest about 0.1 s of CPU each.)
    pub async fn load(&mut self) -> Result<(), StackError> {
        let log = std::fs::read_to_string(self.work.file("pluto.log")).unwrap_or_default();
        for (name, v) in conns(&self.ep) {
            if !added(&log, name, v) {
                let stderr =
                    std::fs::read_to_string(self.work.file("pluto.stderr")).unwrap_or_default();
                let why = refusal(&log, &stderr, name);
                return Err(self.control_err("addconn --autoall (at pluto's start-up)", why));
            }
        }
        Ok(())
    }

    /// `whack --initiate`, then whether a CHILD SA is up; a Mode Config
    /// client's lease is then put on the node's loopback.
    pub async fn initiate(&mut self) -> Result<Initiation, StackError> {
        let (rc, out) = self
            .whack(&["--name", CONN, "--initiate"], INITIATE_TIMEOUT)
            .await?;
        let mut init = Initiation::default();
        for line in out.lines() {
            if let Some(m) = notable(line) {
                if !init.log.contains(&m) {
                    init.log.push(m);
                }
            }
        }
        // whack exits 0 once the IKE SA is up even if the CHILD SA was
        // refused, so success also needs an established CHILD SA.
        let child_up = parse_showstates(&self.whack(&["--showstates"], CONTROL_TIMEOUT).await?.1)
            .iter()
            .any(|s| normalize_state(&s.name) == SaState::Installed);
        init.success = rc == 0 && child_up;
        if init.success && self.ep.virtual_ip {
            self.install_lease().await?;
        }
        if !init.success {
            let last = out
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .map(|l| timeless(message(l)))
                .unwrap_or_default();
            init.error = Some(if rc == 0 {
                format!("IKE SA up but no CHILD SA: {last}")
            } else {
                format!("whack exit {rc}: {last}")
            });
        }
        Ok(init)
    }

    /// Put the address the server leased on the node's loopback, so that
    /// checks can be sent from it: what libreswan's updown script (off
    /// here: the scenario owns the node's network) would do.
    async fn install_lease(&self) -> Result<(), StackError> {
        let (_, shown) = self.whack(&["--trafficstatus"], CONTROL_TIMEOUT).await?;
        let Some(lease) = parse_trafficstatus(&shown)
            .into_iter()
            .rev()
            .find_map(|t| t.lease)
        else {
            return Err(self.control_err("whack --trafficstatus", "the server leased no address"));
        };
        let host = ipnet::IpNet::from(lease.addr()).to_string();
        let have = self
            .in_node(Path::new("ip"), &["-o", "addr", "show", "dev", "lo"], false)
            .await?;
        if !have.contains(&format!(" {host} ")) {
            self.in_node(Path::new("ip"), &["addr", "add", &host, "dev", "lo"], false)
                .await?;
        }
        Ok(())
    }

    /// Act on IKE with whack: initiate (a responder too, where the file
    /// gave it `peer_addr`: `right=` is then that address), terminate,
    /// rekey the CHILD or IKE SA. A rekey
    /// is asked for asynchronously: the step waits for its effect.
    pub async fn act(&mut self, op: IkeOp) -> Result<(), StackError> {
        let flag = match op {
            IkeOp::Initiate => {
                let r = self.initiate().await?;
                return match r.error {
                    Some(detail) => Err(StackError::Refused {
                        node: self.ep.node.clone(),
                        detail,
                    }),
                    None => Ok(()),
                };
            }
            IkeOp::Terminate => "--terminate",
            IkeOp::RekeyChild => "--rekey-ipsec",
            IkeOp::RekeyIke => "--rekey-ike",
            // Refused before the cell runs (`stack::unsupported_op`).
            IkeOp::Reauth => {
                return Err(StackError::Unsupported {
                    what: "ike step `reauth`".into(),
                })
            }
            // The dispatch restarts daemons itself.
            IkeOp::Restart | IkeOp::Crash => return Ok(()),
        };
        // A responder of either version acts on each of its connections:
        // done if whack took it for one (the other may have no SA).
        let (mut taken, mut refused) = (false, None);
        for (name, _) in conns(&self.ep) {
            let args = ["--name", name, flag, "--asynchronous"];
            match self.whack(&args, CONTROL_TIMEOUT).await? {
                (0, _) => taken = true,
                (rc, out) => {
                    refused.get_or_insert(format!("{name}: exit {rc}: {}", out.trim()));
                }
            }
        }
        match (taken, refused) {
            (false, Some(why)) => Err(self.control_err(&format!("whack {flag}"), why)),
            _ => Ok(()),
        }
    }

    /// The SAs, from whack, pluto's debug log and the kernel's ESP
    /// states: the newest IKE and CHILD SA per peer (a responder's template
    /// connection has an instance per peer).
    pub async fn state(&mut self) -> Result<EndpointState, StackError> {
        self.observe(Detail::Full).await
    }

    /// The SAs' states, serials and addresses, as [`Running::state`]
    /// reports them, without what only describes an SA (algorithms,
    /// selectors, the kernel's ESP states: two more processes), for the
    /// waits that poll them.
    pub async fn sa_states(&mut self) -> Result<EndpointState, StackError> {
        self.observe(Detail::SaStates).await
    }

    async fn observe(&mut self, detail: Detail) -> Result<EndpointState, StackError> {
        // One whack for both: each process costs ~50 ms under UML.
        let (_, shown) = self
            .whack(&["--showstates", "--trafficstatus"], CONTROL_TIMEOUT)
            .await?;
        let states = parse_showstates(&shown);
        let traffic = parse_trafficstatus(&shown);
        // Each instance's algorithms, and its selector when the template
        // serves several peers.
        let several = !self.ep.others.is_empty();
        let full = detail == Detail::Full;
        let (algs, subnets) = if full && (self.ep.proposals.is_set() || several) {
            let status = self.whack(&["--status"], CONTROL_TIMEOUT).await?.1;
            // Algorithms are shown where the file chose them, as for
            // strongSwan.
            let algs = match self.ep.proposals.is_set() {
                true => parse_algorithms(&status),
                false => Algorithms::default(),
            };
            (algs, parse_remote_subnets(&status))
        } else {
            (Algorithms::default(), Vec::new())
        };
        let log = std::fs::read_to_string(self.work.file("pluto.log")).unwrap_or_default();
        let facts = parse_log(&log);
        let xfrm = if full && states.iter().any(|s| is_child_state(&s.name)) {
            let x = self
                .in_node(Path::new("ip"), &["xfrm", "state"], false)
                .await?;
            parse_xfrm_states(&x)
        } else {
            Vec::new()
        };
        let seen = Seen {
            ep: &self.ep,
            facts: &facts,
            xfrm: &xfrm,
            traffic: &traffic,
            algs: &algs,
            subnets: &subnets,
        };
        let mut instances: Vec<&Instance> = states.iter().map(|s| group(&states, s)).collect();
        instances.sort();
        instances.dedup();
        let mut peers: Vec<EndpointState> = instances
            .into_iter()
            .map(|i| seen.peer(states.iter().filter(|s| group(&states, s) == i)))
            .collect();
        let ids = SaIds {
            ike: ids(&states, |s| !is_child_state(&s.name)),
            children: ids(&states, |s| normalize_state(&s.name) == SaState::Installed),
        };
        let mut state = if self.ep.others.is_empty() {
            // One peer: its newest instance.
            peers.pop().unwrap_or_default()
        } else {
            super::several_peers(peers)
        };
        state.ids = ids;
        Ok(state)
    }

    /// Stop pluto and reap it.
    pub async fn stop(self) {
        self.daemon.stop().await;
    }

    /// Kill it outright (a `crash` step).
    pub async fn kill(self) {
        self.daemon.kill().await;
    }
}

/// How much a state query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// Everything an outcome reports.
    Full,
    /// Only the SAs' states (whack's), for a wait on them.
    SaStates,
}

/// The newest state that is `up`, else the newest: a rekey in progress
/// (`V2_REKEY_CHILD_I1`) does not hide the SA that carries the traffic
/// meanwhile (make before break), as strongSwan's driver reports it.
fn newest<'s>(states: &[&'s ShownState], up: SaState) -> Option<&'s ShownState> {
    let up_one = states.iter().rev().find(|s| normalize_state(&s.name) == up);
    up_one.or(states.last()).copied()
}

/// The instance a state's peer is reported under: a CHILD SA's IKE SA's
/// (a narrowed CHILD SA has an instance of its own).
fn group<'s>(states: &'s [ShownState], s: &'s ShownState) -> &'s Instance {
    s.parent
        .and_then(|p| states.iter().find(|i| i.serial == p))
        .map_or(&s.instance, |ike| &ike.instance)
}

/// The serials of the states that `keep`.
fn ids(states: &[ShownState], keep: impl Fn(&ShownState) -> bool) -> Vec<String> {
    states
        .iter()
        .filter(|s| keep(s))
        .map(|s| s.serial.to_string())
        .collect()
}

/// What one `state` query saw, to build each peer's SAs from.
struct Seen<'a> {
    ep: &'a Endpoint,
    facts: &'a LogFacts,
    xfrm: &'a [XfrmState],
    traffic: &'a [Traffic],
    algs: &'a Algorithms,
    subnets: &'a [(Instance, ipnet::IpNet)],
}

impl Seen<'_> {
    /// The newest IKE and CHILD SA among one instance's states.
    fn peer<'s>(&self, states: impl Iterator<Item = &'s ShownState>) -> EndpointState {
        let (ikes, children): (Vec<&ShownState>, Vec<&ShownState>) =
            states.partition(|s| !is_child_state(&s.name));
        EndpointState {
            ike: newest(&ikes, SaState::Established).map(|s| self.ike_sa(s)),
            child: newest(&children, SaState::Installed).map(|c| self.child_sa(c)),
            ..EndpointState::default()
        }
    }

    /// The lease of a CHILD SA, if its peer got one.
    fn lease(&self, serial: u64) -> Option<ipnet::IpNet> {
        self.traffic.iter().find(|t| t.serial == serial)?.lease
    }

    /// The IKE SA: its state and remote address:port from whack, the local
    /// end and NAT from the log.
    fn ike_sa(&self, ike: &ShownState) -> IkeSa {
        let remote_port = ike.remote_port.to_string();
        let remote = Some(ike.remote.as_str()).filter(|a| !a.is_empty()).or(self
            .facts
            .remote
            .as_ref()
            .map(|(a, _)| a.as_str()));
        let algorithms = self.algs.ike.iter().find(|(i, _)| *i == ike.instance);
        IkeSa {
            // A client's address is the newest lease it holds.
            virtual_ip: self
                .ep
                .virtual_ip
                .then(|| self.traffic.iter().rev().find_map(|t| t.lease))
                .flatten()
                .map(|l| l.addr().to_string()),
            algorithms: algorithms.map(|(_, a)| a.clone()),
            state: normalize_state(&ike.name),
            // A responder for both versions (`ike = 0`): the state's own.
            version: match self.ep.ike {
                0 if ike.name.starts_with("STATE_V2_") => 2,
                0 => 1,
                v => v,
            },
            local: self
                .facts
                .local
                .as_ref()
                .map_or("?".into(), |(a, p)| endpoint_label(a, p)),
            remote: remote.map_or("?".into(), |a| endpoint_label(a, &remote_port)),
            remote_raw: remote.map_or("?".into(), |a| super::endpoint(a, &remote_port)),
            nat_local: self.facts.nat_local,
            nat_remote: self.facts.nat_remote,
            nat_fake: self.facts.nat_fake,
        }
    }

    /// The CHILD SA: its state from whack, mode, protocol and encapsulation
    /// from the kernel's states with the peer (each direction on its own: a
    /// one-way encapsulation is a finding), a lease in its selectors.
    fn child_sa(&self, c: &ShownState) -> ChildSa {
        let ep = self.ep;
        let remote_addr = Some(c.remote.as_str()).filter(|a| !a.is_empty()).or(self
            .facts
            .remote
            .as_ref()
            .map(|(a, _)| a.as_str()));
        let out = self
            .xfrm
            .iter()
            .find(|s| Some(s.dst.as_str()) == remote_addr);
        let inb = self
            .xfrm
            .iter()
            .find(|s| Some(s.src.as_str()) == remote_addr);
        let any = out.or(inb);
        let (mut local_ts, mut remote_ts) = (ep.local_ts(), ep.remote_ts());
        // A template's instance serves one of several peers: its own.
        if let Some((_, net)) = self.subnets.iter().find(|(i, _)| *i == c.instance) {
            if remote_ts.len() > 1 {
                remote_ts = vec![*net];
            }
        }
        if let Some(l) = self.lease(c.serial) {
            if ep.virtual_ip {
                local_ts = vec![l];
            } else {
                remote_ts.push(l);
            }
        }
        let ts = |v: Vec<ipnet::IpNet>| v.iter().map(|n| n.to_string()).collect();
        ChildSa {
            state: normalize_state(&c.name),
            mode: any
                .and_then(|s| s.mode.parse().ok())
                .unwrap_or(if c.tunnel {
                    Mode::Tunnel
                } else {
                    Mode::Transport
                }),
            protocol: any.and_then(|s| s.proto.parse().ok()).unwrap_or(Proto::Esp),
            udp_encap: out.is_some_and(|s| s.udp_encap) && inb.is_some_and(|s| s.udp_encap),
            udp_encap_oneway: match (out, inb) {
                (Some(o), Some(i)) if o.udp_encap != i.udp_encap => Some(if o.udp_encap {
                    "outbound only".into()
                } else {
                    "inbound only".into()
                }),
                _ => None,
            },
            local_ts: ts(local_ts),
            remote_ts: ts(remote_ts),
            algorithms: self
                .algs
                .child
                .iter()
                .find(|(i, _)| *i == c.instance)
                .map(|(_, a)| a.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rekey_in_progress_does_not_hide_the_installed_child_sa() {
        let text = "000 #1: \"vpnlab\":4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); newest;\n000 #2: \"vpnlab\":4500 STATE_V2_ESTABLISHED_CHILD_SA (established Child SA); newest;\n000 #3: \"vpnlab\":4500 STATE_V2_REKEY_CHILD_I1 (sent CREATE_CHILD_SA request to rekey IPsec SA);\n";
        let states = parse_showstates(text);
        let (ikes, children): (Vec<&ShownState>, Vec<&ShownState>) =
            states.iter().partition(|s| !is_child_state(&s.name));
        assert_eq!(newest(&children, SaState::Installed).unwrap().serial, 2);
        assert_eq!(newest(&ikes, SaState::Established).unwrap().serial, 1);
        let only_new = [children[1]];
        assert_eq!(newest(&only_new, SaState::Installed).unwrap().serial, 3);
    }

    #[test]
    fn a_connection_counts_as_loaded_only_when_pluto_logged_it_added() {
        let log = "\"vpnlab\": added IKEv2 connection\n\"vpnlab-ikev1\": failed to add connection: ike string error\n| debug\nlistening for IKE messages\n";
        assert!(added(log, "vpnlab", 2));
        assert!(!added(log, "vpnlab", 1));
        assert!(!added(log, "vpnlab-ikev1", 1));
        assert_eq!(
            refusal(
                log,
                "pluto:  adjusting nssdir to /run/nss\n",
                "vpnlab-ikev1"
            ),
            "\"vpnlab-ikev1\": failed to add connection: ike string error"
        );
        assert_eq!(
            refusal("", "addconn: ERROR: bad line 3\n", "vpnlab"),
            "addconn: ERROR: bad line 3"
        );
        assert!(refusal("", "", "vpnlab").contains("nor why not"));
        // Much on stderr does not push out pluto's own reason.
        let noise = "nss: warning\n".repeat(10);
        assert!(refusal(log, &noise, "vpnlab-ikev1").starts_with("\"vpnlab-ikev1\": failed"));
    }
}
