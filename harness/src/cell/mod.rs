//! One cell's run: topology → stacks → tunnel → PPP → checks → steps →
//! outcome, with bounded waits, and a [`Teardown`] on every path once the
//! namespaces exist. The cell is placed before it gets here (see
//! `batch::plan`): this module runs it, it does not decide whether it can.

pub mod checks;
mod exercise;
mod keep;
mod live;
pub mod nat64;
pub mod ppp;
pub mod steps;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::capture::ladder::{self, Ladder};
use crate::capture::{path, pcap, Capture, Captured, Flow, IfaceCapture, Setup};
use crate::error::RunError;
use crate::model::Cell;
use crate::outcome::{Outcome, Verdict};
use crate::stack::Backend;
use crate::topology::Topology;

pub use keep::Holding;
use live::Live;
pub use live::{Teardown, TornDown};

/// Options shared by every cell of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// ESP backend for cells that do not pin one (probed once per run).
    pub backend: Backend,
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
    /// Wall time of the cell, set-up to its result (teardown, which may
    /// overlap the next cell, is in `phases`).
    pub elapsed_ms: u64,
    /// Wall time of each phase (not part of the outcome: it varies).
    pub phases: Phases,
    /// Raw per-interface packet counts (not normalized).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capture: Vec<IfaceCapture>,
    /// pcap files written for this cell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pcap_files: Vec<PathBuf>,
    /// Daemon logs copied for this cell (`--logs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_files: Vec<PathBuf>,
    /// Every packet sent, followed hop by hop (the HTML report's ladder;
    /// not part of the outcome: times and ports vary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<Ladder>,
    /// Problems that did not change the outcome (pcap files or logs not
    /// written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
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
    /// Classifying the root cause (from the outcome, once the path is
    /// built).
    #[serde(default)]
    pub diagnose_ms: f64,
    /// Daemons stopped, namespaces released (after the result, while the
    /// next cell may run).
    pub teardown_ms: f64,
    /// Time spent holding a failed topology for `--keep` (not in `elapsed_ms`).
    #[serde(default)]
    pub kept_ms: f64,
}

/// Milliseconds since `t`, reset `t`.
fn lap(t: &mut Instant) -> f64 {
    let ms = round_ms(t.elapsed());
    *t = Instant::now();
    ms
}

/// Milliseconds, to two decimals.
fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

/// What a cell tells its caller while it runs.
#[derive(Debug)]
pub enum Notice<'a> {
    /// `--keep`: a failed cell's topology stays up until Ctrl-C.
    Holding(&'a Holding),
    /// Ctrl-C came: the kept cell is torn down.
    Releasing(&'a str),
}

impl CellReport {
    /// The report of a cell that was not run (or could not be).
    pub fn not_run(cell: &Cell, backend: Backend, verdict: Verdict, reason: String) -> Self {
        CellReport {
            file: cell.file.clone(),
            outcome: Outcome::not_run(cell, backend, verdict, reason),
            elapsed_ms: 0,
            phases: Phases::default(),
            capture: vec![],
            pcap_files: vec![],
            log_files: vec![],
            ladder: None,
            notes: vec![],
        }
    }

    /// Add what the teardown took.
    pub fn torn_down(&mut self, t: TornDown) {
        self.phases.teardown_ms = t.ms;
        self.notes.extend(t.notes);
        self.log_files = t.log_files;
    }
}

/// Run one cell up to its result; the teardown is returned, to run while
/// the next cell starts (`None` if nothing was created). Never panics on
/// system errors: they become an outcome with verdict `error`.
pub async fn run_cell(
    cell: &Cell,
    index: usize,
    opts: &RunOptions,
    notify: &(dyn Fn(Notice<'_>) + Sync),
) -> (CellReport, Option<Teardown>) {
    let started = Instant::now();
    let backend = cell.backend.unwrap_or(opts.backend);
    let opts = &RunOptions {
        backend,
        ..opts.clone()
    };
    tracing::debug!(cell = %cell.id, backend = %backend, "cell start");
    let mut report = CellReport::not_run(cell, backend, Verdict::Error, String::new());
    let mut t = Instant::now();
    let live = match set_up(cell, index, opts).await {
        Ok(l) => l,
        Err(e) => {
            report.outcome.reason = Some(e.to_string());
            return (report, None);
        }
    };
    let (mut live, capture) = live;
    report.phases.topology_ms = lap(&mut t);
    let result =
        exercise::exercise(cell, opts, &mut live, capture.as_ref(), &mut report.phases).await;
    report.outcome =
        result.unwrap_or_else(|e| Outcome::not_run(cell, backend, Verdict::Error, e.to_string()));
    let mut t = Instant::now();
    if let Some(capture) = capture {
        let captured = capture.stop(&live.topo).await;
        record_capture(cell, opts, &captured, &mut report);
    }
    report.phases.capture_ms = lap(&mut t);
    report.outcome.diagnose(&context(cell));
    report.phases.diagnose_ms = lap(&mut t);
    if opts.keep && report.outcome.verdict != Verdict::Pass {
        keep::hold(cell, &report.outcome, &live, notify).await;
        report.phases.kept_ms = lap(&mut t);
    }
    report.elapsed_ms = (started.elapsed().as_secs_f64() * 1000.0 - report.phases.kept_ms) as u64;
    tracing::debug!(cell = %cell.id, verdict = report.outcome.verdict.label(), phases = ?report.phases, "cell done");
    let teardown = live.into_teardown(&cell.id, opts.logs_dir.as_deref());
    (report, Some(teardown))
}

/// What the classifier needs of the cell beyond its outcome.
fn context(cell: &Cell) -> crate::outcome::Context {
    crate::outcome::Context {
        versions: cell
            .endpoints
            .iter()
            .map(|e| (e.node.clone(), e.ike))
            .collect(),
        pptp_helpers: cell
            .nodes
            .iter()
            .filter(|n| n.pptp_helper)
            .map(|n| n.name.clone())
            .collect(),
    }
}

/// The cell's namespaces, links and NAT, and the capture on every node
/// (started before the daemons, so the first IKE packet is seen).
async fn set_up(
    cell: &Cell,
    index: usize,
    opts: &RunOptions,
) -> Result<(Live, Option<Capture>), RunError> {
    let topo_err = |source| RunError::Topology {
        cell: cell.id.clone(),
        source,
    };
    let topo = Topology::build(cell).await.map_err(topo_err)?;
    let dir = opts.workdir.join(format!("cell-{index}"));
    // Dropping `topo` on an error releases the namespaces (and kills the
    // translators started so far).
    let translators = nat64::start(cell, &topo, &dir).await.map_err(topo_err)?;
    let live = Live {
        topo,
        stacks: Vec::new(),
        ppp: None,
        translators,
        dir,
    };
    if !opts.capture {
        return Ok((live, None));
    }
    // Only a tunnelled check's packets in clear text are out of place; a
    // check between two hosts of one LAN is ordinary traffic.
    let flows = cell
        .checks
        .iter()
        .filter(|c| cell.tunnelled(c))
        .map(|c| Flow {
            src: c.src_pool.unwrap_or_else(|| c.src.into()),
            dst: c.dst.into(),
        })
        .collect();
    // Live counts only where a step waits for a packet.
    // A translator's TUN device carries plain (translated) traffic, not a
    // tunnel's.
    let plain = live
        .translators
        .iter()
        .map(|t| (t.node.clone(), t.ifindex))
        .collect();
    let setup = Setup {
        flows,
        live: cell.waits_for_packets(),
        plain,
        own: own_addrs(cell),
        translating: cell
            .nodes
            .iter()
            .filter(|n| n.rewrites_destination())
            .map(|n| n.name.clone())
            .collect(),
    };
    match Capture::start(&live.topo, setup) {
        Ok(c) => Ok((live, Some(c))),
        // Dropping `live` releases the namespaces: nothing else started.
        Err(e) => Err(topo_err(e)),
    }
}

/// Each node's own addresses: its link ends' and its endpoint's inner one.
fn own_addrs(cell: &Cell) -> std::collections::BTreeMap<String, Vec<std::net::IpAddr>> {
    let mut own: std::collections::BTreeMap<String, Vec<std::net::IpAddr>> = Default::default();
    for e in cell.ends() {
        own.entry(e.node.clone()).or_default().push(e.addr.addr());
    }
    for e in &cell.endpoints {
        if let Some(a) = e.inner {
            own.entry(e.node.clone()).or_default().push(a);
        }
    }
    own
}

/// The path, the raw counts and (with `--pcap`) the pcap files.
fn record_capture(cell: &Cell, opts: &RunOptions, captured: &Captured, report: &mut CellReport) {
    report.outcome.path = Some(path::build(cell, captured));
    report.capture = captured.raw();
    report.ladder = Some(ladder::build(cell, captured));
    if let Some(dir) = &opts.pcap_dir {
        let celldir = dir.join(&cell.id);
        match pcap::write(captured, &celldir) {
            Ok(files) => report.pcap_files = files,
            Err(e) => report.notes.push(format!(
                "cannot write pcap files to {}: {e}",
                celldir.display()
            )),
        }
    }
}
