//! Orchestration of one cell: topology → stacks → checks → outcome →
//! teardown, with bounded waits and teardown on every path.

pub mod checks;
pub mod ppp;
pub mod steps;

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use crate::capture::{path, pcap, Capture, Flow, IfaceCapture};
use crate::model::Cell;
use crate::model::{Requirement, Role};
use crate::outcome::{EndpointOutcome, NatOutcome, Outcome, Verdict};
use crate::stack::{self, Backend, Running, Workdir};
use crate::topology::Topology;

/// Options shared by every cell of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// ESP backend for cells that do not pin one (probed once per run).
    pub backend: Backend,
    /// Whether this kernel can install ESP states.
    pub kernel_esp: bool,
    /// Keep a failed cell's topology up until Ctrl-C.
    pub keep: bool,
    /// Directory for per-cell files (inside the run's private tmpfs).
    pub workdir: PathBuf,
    /// Capture packets on every interface (the path and diagnosis).
    pub capture: bool,
    /// IKE retransmission timers.
    pub timers: crate::stack::Timers,
    /// Write one pcap file per interface under this directory.
    pub pcap_dir: Option<PathBuf>,
    /// Copy the daemons' logs under this directory.
    pub logs_dir: Option<PathBuf>,
}

/// A finished cell with its timing.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CellReport {
    /// Scenario file.
    pub file: PathBuf,
    /// The normalized outcome (what snapshots hold).
    pub outcome: Outcome,
    /// Wall time of the cell, set-up to teardown.
    pub elapsed_ms: u64,
    /// Wall time of each phase (not part of the outcome: it varies).
    pub phases: Phases,
    /// Raw per-interface packet counts (not normalized).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capture: Vec<IfaceCapture>,
    /// pcap files written for this cell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pcap_files: Vec<PathBuf>,
}

/// Milliseconds spent in each phase of a cell.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Phases {
    /// Namespaces, links, addresses, routes, sysctls, NAT.
    pub topology_ms: f64,
    /// Daemons started and answering, configs loaded.
    pub daemons_ms: f64,
    /// IKE exchange until up or given up.
    pub ike_ms: f64,
    /// PPP link until up or given up (files with a PPP layer).
    #[serde(default)]
    pub ppp_ms: f64,
    /// Traffic checks and SA observation.
    pub checks_ms: f64,
    /// Stopping the capture, building the path, writing pcap files.
    pub capture_ms: f64,
    /// Daemons stopped, namespaces released.
    pub teardown_ms: f64,
    /// Time spent holding a failed topology for `--keep` (not in `elapsed_ms`).
    #[serde(default)]
    pub kept_ms: f64,
}

/// Milliseconds since `t`, reset `t`.
fn lap(t: &mut Instant) -> f64 {
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    *t = Instant::now();
    (ms * 100.0).round() / 100.0
}

/// Run one cell to completion. Never panics on system errors: they become
/// an outcome with verdict `error`.
pub async fn run_cell(cell: &Cell, index: usize, opts: &RunOptions) -> CellReport {
    let started = Instant::now();
    let mut report = CellReport {
        file: cell.file.clone(),
        outcome: Outcome::not_run(cell, opts.backend, Verdict::Error, String::new()),
        elapsed_ms: 0,
        phases: Phases::default(),
        capture: vec![],
        pcap_files: vec![],
    };
    tracing::debug!(cell = %cell.id, backend = %opts.backend, "cell start");
    report.outcome = run_inner(cell, index, opts, &mut report).await;
    report.elapsed_ms = (started.elapsed().as_secs_f64() * 1000.0 - report.phases.kept_ms) as u64;
    tracing::debug!(cell = %cell.id, verdict = report.outcome.verdict.label(), phases = ?report.phases, "cell done");
    report
}

async fn run_inner(
    cell: &Cell,
    index: usize,
    opts: &RunOptions,
    report: &mut CellReport,
) -> Outcome {
    let phases = &mut report.phases;
    let backend = cell.backend.unwrap_or(opts.backend);
    // Cells this machine cannot run, or a stack cannot express, are decided
    // before anything is created.
    let lacks = missing_features(cell, opts.kernel_esp);
    if !lacks.is_empty() {
        return Outcome::not_run(
            cell,
            backend,
            Verdict::Skipped,
            format!(
                "needs {}, which this kernel lacks; run it in a VM with a distribution kernel: vpnlab run --kernel auto {} --cell '{}'",
                lacks.join(" and "),
                cell.file.display(),
                cell.id
            ),
        );
    }
    let opts = &RunOptions {
        backend,
        ..opts.clone()
    };
    let mut reasons: Vec<(String, Vec<&str>)> = Vec::new();
    for e in &cell.endpoints {
        if let Some(r) = stack::unsupported(e, opts.backend) {
            match reasons.iter_mut().find(|(x, _)| *x == r) {
                Some((_, nodes)) => nodes.push(&e.node),
                None => reasons.push((r, vec![&e.node])),
            }
        }
    }
    if !reasons.is_empty() {
        let text = reasons
            .iter()
            .map(|(r, nodes)| format!("{r} (endpoints on {})", nodes.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        return Outcome::not_run(cell, opts.backend, Verdict::Unsupported, text);
    }

    let mut t = Instant::now();
    let mut topo = match Topology::build(cell).await {
        Ok(t) => t,
        Err(e) => return Outcome::not_run(cell, opts.backend, Verdict::Error, e.to_string()),
    };
    let celldir = opts.workdir.join(format!("cell-{index}"));
    let prepared: Vec<stack::Prepared> = cell
        .endpoints
        .iter()
        .map(|e| {
            stack::prepare(
                e,
                opts.backend,
                Workdir {
                    dir: celldir.join(&e.node),
                },
                opts.timers,
            )
        })
        .collect();
    // The started ones, whatever happens next: teardown stops them.
    let mut stacks: Vec<Running> = Vec::new();

    // Capture starts before the daemons so the first IKE packet is seen.
    let flows = cell
        .checks
        .iter()
        .map(|c| Flow {
            src: c.src,
            dst: c.dst,
        })
        .collect();
    let capture = if opts.capture {
        // Live counts only where a step waits for a packet.
        match Capture::start(&topo, flows, cell.waits_for_packets()) {
            Ok(c) => Some(c),
            Err(e) => return Outcome::not_run(cell, opts.backend, Verdict::Error, e.to_string()),
        }
    } else {
        None
    };
    phases.topology_ms = lap(&mut t);
    let mut ppp_layer = None;
    let result = exercise(
        cell,
        opts,
        &mut topo,
        capture.as_ref(),
        prepared,
        &mut stacks,
        &mut ppp_layer,
        &celldir,
        phases,
        &mut t,
    )
    .await;
    let mut outcome = match result {
        Ok(o) => o,
        Err(e) => Outcome::not_run(cell, opts.backend, Verdict::Error, e),
    };
    let mut t = Instant::now();
    if let Some(capture) = capture {
        let captured = capture.stop(&topo).await;
        outcome.path = Some(path::build(cell, &captured));
        report.capture = captured.raw();
        if let Some(dir) = &opts.pcap_dir {
            let celldir = dir.join(&cell.id);
            match pcap::write(&captured, &celldir) {
                Ok(files) => report.pcap_files = files,
                Err(e) => eprintln!(
                    "vpnlab: cannot write pcap files to {}: {e}",
                    celldir.display()
                ),
            }
        }
    }
    let phases = &mut report.phases;
    phases.capture_ms = lap(&mut t);
    if opts.keep && outcome.verdict != Verdict::Pass {
        keep_until_interrupted(cell, &outcome, &topo, &celldir).await;
        phases.kept_ms = lap(&mut t);
    }
    let mut t = Instant::now();
    if let Some(mut l) = ppp_layer {
        crate::cell::ppp::PppLayer::stop(&mut l).await;
    }
    join_all(stacks.into_iter().map(Running::stop)).await;
    if let Some(dir) = &opts.logs_dir {
        save_logs(&celldir, &dir.join(&cell.id));
    }
    drop(topo);
    let _ = std::fs::remove_dir_all(&celldir);
    phases.teardown_ms = lap(&mut t);
    outcome
}

/// `--logs`: copy the daemons' log files (`*.log`, `*.stderr`) to
/// `dest/<dir>-<file>`. Failures are reported, not fatal.
fn save_logs(celldir: &Path, dest: &Path) {
    let copy = || -> std::io::Result<()> {
        std::fs::create_dir_all(dest)?;
        // One directory per endpoint (named after its node) and per PPP
        // end (`ppp-<node>`).
        let Ok(dirs) = std::fs::read_dir(celldir) else {
            return Ok(());
        };
        for d in dirs.flatten().filter(|d| d.path().is_dir()) {
            let prefix = d.file_name().to_string_lossy().into_owned();
            for f in std::fs::read_dir(d.path())?.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.ends_with(".log") || name.ends_with(".stderr") {
                    std::fs::copy(f.path(), dest.join(format!("{prefix}-{name}")))?;
                }
            }
        }
        Ok(())
    };
    if let Err(e) = copy() {
        eprintln!("vpnlab: cannot copy daemon logs to {}: {e}", dest.display());
    }
}

/// Start the daemons, bring the tunnel (and the PPP link) up, run the
/// checks, observe.
#[allow(clippy::too_many_arguments)]
async fn exercise(
    cell: &Cell,
    opts: &RunOptions,
    topo: &mut Topology,
    capture: Option<&Capture>,
    prepared: Vec<stack::Prepared>,
    stacks: &mut Vec<Running>,
    ppp_layer: &mut Option<crate::cell::ppp::PppLayer>,
    celldir: &Path,
    phases: &mut Phases,
    t: &mut Instant,
) -> Result<Outcome, String> {
    let backend = opts.backend;
    let starts = prepared
        .into_iter()
        .zip(&cell.endpoints)
        .map(|(p, e)| p.start(topo.node(&e.node)));
    let mut failed = None;
    for r in join_all(starts).await {
        match r {
            Ok(s) => stacks.push(s),
            Err(e) => failed = failed.or(Some(e.to_string())),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    phases.daemons_ms = lap(t);
    let mut initiation = None;
    // Several initiators connect one after the other, in file order, so
    // which one a NAT gives which outside port is the same on every run.
    for (s, _) in stacks
        .iter_mut()
        .zip(&cell.endpoints)
        .filter(|(_, e)| e.role == Role::Initiator)
    {
        let r = s.initiate().await.map_err(|e| e.to_string())?;
        // A failure is what the outcome must show.
        if initiation
            .as_ref()
            .is_none_or(|i: &crate::stack::Initiation| i.success)
        {
            initiation = Some(r);
        }
    }

    // IKEv1's initiator is done when it sends the last Quick Mode message;
    // its responder installs the SAs only when that message arrives. Wait
    // (bounded) until every end reports its CHILD SA, so the first probe
    // does not race the responder.
    if initiation.as_ref().is_some_and(|i| i.success) {
        let deadline = Instant::now() + Duration::from_secs(5);
        // Ends already seen with their CHILD SA are not asked again (a
        // libreswan state query costs a whack, its log and `ip xfrm`).
        let mut installed = vec![false; stacks.len()];
        loop {
            for (s, done) in stacks.iter_mut().zip(installed.iter_mut()) {
                if !*done {
                    let st = s.state().await.map_err(|e| e.to_string())?;
                    *done = st.child.is_some_and(|c| c.is_up());
                }
            }
            if installed.iter().all(|d| *d) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    phases.ike_ms = lap(t);
    let mut ppp = None;
    let ipsec_failed = initiation.as_ref().is_some_and(|i| !i.success);
    if let (Some(p), true) = (&cell.ppp, ipsec_failed) {
        ppp = Some(crate::outcome::PppOutcome {
            kind: p.kind,
            state: crate::model::TunnelExpect::Down,
            client_ip: None,
            server_ip: None,
            reason: Some("not attempted: the IPsec tunnel did not come up".into()),
        });
    } else if let Some(p) = &cell.ppp {
        // L2TP/PPTP retransmit on their own, slower timers: allow more time
        // in an emulated VM.
        let limit = Duration::from_secs_f64(10.0 * opts.timers.retransmit_timeout / 0.5)
            .min(Duration::from_secs(25));
        let (layer, o) =
            crate::cell::ppp::PppLayer::up(p, topo, celldir, limit, !cell.endpoints.is_empty())
                .await;
        *ppp_layer = Some(layer);
        ppp = Some(o);
        phases.ppp_ms = lap(t);
    }
    let checks = join_all(
        cell.checks
            .iter()
            .map(|c| checks::run(c, topo.node(&c.from), topo.node(&c.to))),
    )
    .await;

    let mut endpoints = Vec::new();
    for (s, e) in stacks.iter_mut().zip(&cell.endpoints) {
        let state = s.state().await.map_err(|e| e.to_string())?;
        endpoints.push(EndpointOutcome {
            node: e.node.clone(),
            role: e.role,
            stack: s.version().to_string(),
            version: None,
            nat_t: e.nat_t,
            state,
        });
    }
    let steps = crate::cell::steps::run(cell, topo, stacks, capture).await;
    phases.checks_ms = lap(t);
    let nat: BTreeMap<String, NatOutcome> = topo
        .nat
        .iter()
        .map(|(n, (p, r))| {
            (
                n.clone(),
                NatOutcome {
                    profile: *p,
                    ruleset: r.lines().map(str::to_string).collect(),
                },
            )
        })
        .collect();
    let mut o = Outcome {
        cell: cell.id.clone(),
        axes: cell.axes.iter().cloned().collect(),
        verdict: Verdict::Error,
        mismatches: vec![],
        reason: None,
        backend,
        expected: cell.expect.clone(),
        tunnel: None,
        encapsulation: None,
        initiation,
        endpoints,
        ppp,
        checks,
        nat,
        steps,
        path: None,
    };
    o.observe_tunnel();
    o.judge();
    Ok(o)
}

/// `--keep`: leave the failed topology up, say how to enter each node, and
/// wait for Ctrl-C (the run's PID namespace ends with vpnlab, so nothing can
/// outlive it by accident).
async fn keep_until_interrupted(cell: &Cell, outcome: &Outcome, topo: &Topology, celldir: &Path) {
    let pid = host_pid();
    eprintln!(
        "\n--keep: cell {} failed; its topology stays up until Ctrl-C.",
        cell.id
    );
    for m in &outcome.mismatches {
        eprintln!("  - {m}");
    }
    if let Some(r) = &outcome.reason {
        eprintln!("  {r}");
    }
    for d in outcome.path.iter().flat_map(|p| &p.diagnosis) {
        eprintln!("  diagnosis: {d}");
    }
    for (name, ns) in &topo.nodes {
        eprintln!(
            "  {name:<10} nsenter --net=/proc/{pid}/fd/{} bash",
            ns.fd().as_raw_fd()
        );
    }
    eprintln!("  daemon files: /proc/{pid}/root{}", celldir.display());
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("tearing down {}", cell.id);
}

/// This process's PID as the host sees it (we may be PID 1 of the run's
/// PID namespace): the first `NSpid` field of /proc/self/status.
pub fn host_pid() -> u32 {
    crate::sys::self_status_field("NSpid")
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(std::process::id)
}

/// The ESP backend for cells that do not pin one: kernel-netlink when the
/// kernel accepts ESP states, else kernel-libipsec. `VPNLAB_BACKEND`
/// overrides the choice.
pub fn default_backend(kernel_esp: bool) -> Result<Backend, String> {
    match std::env::var("VPNLAB_BACKEND").as_deref() {
        Ok("kernel-netlink") => Ok(Backend::KernelNetlink),
        Ok("kernel-libipsec") => Ok(Backend::KernelLibipsec),
        Ok(other) => Err(format!(
            "VPNLAB_BACKEND={other}: expected kernel-netlink or kernel-libipsec"
        )),
        Err(_) if kernel_esp => Ok(Backend::KernelNetlink),
        Err(_) => Ok(Backend::KernelLibipsec),
    }
}

/// The kernel features `cell` requires that this machine lacks (`kernel
/// ESP`, `kernel PPP`), given the ESP probe's result: such a cell runs only
/// in a VM.
pub fn missing_features(cell: &Cell, kernel_esp: bool) -> Vec<&'static str> {
    cell.requires
        .iter()
        .filter(|r| match r {
            Requirement::KernelEsp => !kernel_esp,
            Requirement::KernelPpp => !kernel_has_ppp(),
        })
        .map(|r| r.describe())
        .collect()
}

/// Whether this kernel has PPP (pppd needs `ppp_generic`; in a VM vpnlab
/// loads it at start).
pub fn kernel_has_ppp() -> bool {
    Path::new("/sys/module/ppp_generic").exists()
}

/// Try to install an ESP SA in a throwaway namespace.
pub async fn kernel_has_esp() -> bool {
    let Ok(ns) = crate::topology::netns::Netns::create("esp-probe") else {
        return false;
    };
    let out = ns
        .command("ip", vec![])
        .args([
            "xfrm",
            "state",
            "add",
            "src",
            "192.0.2.1",
            "dst",
            "192.0.2.2",
            "proto",
            "esp",
            "spi",
            "0x100",
            "mode",
            "tunnel",
            "enc",
            "cbc(aes)",
            "0x00112233445566778899aabbccddeeff",
            "auth",
            "hmac(sha256)",
            "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(5), out).await,
        Ok(Ok(s)) if s.success()
    )
}
