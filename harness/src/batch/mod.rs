//! Running many cells: probe the machine once ([`machine`]), place every
//! cell ([`plan`]: host, VM, unsupported or skipped), then run the plan —
//! host cells here, concurrently, VM cells in one VM boot ([`vm`]) — into
//! one [`Report`]. The CLI and the test suite both go through here, so
//! where a cell runs is decided in one place.
//!
//! Nothing here prints: progress goes to a [`Progress`] the caller
//! renders.

pub mod machine;
pub mod plan;
pub mod sandbox;
mod uml_batch;
pub mod vm;

use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::cell::{run_cell, CellReport, Holding, Notice, RunOptions, TornDown};
use crate::error::BatchError;
use crate::model::{Backend, Cell, Verdict};
use crate::stack::Timers;

pub use machine::Machine;
pub use plan::{plan, Placement, Plan, Planned, VmPolicy};

/// The JSON report written by `--report`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// vpnlab version.
    pub vpnlab: String,
    /// ESP backend of the run.
    pub backend: Backend,
    /// Peak resident memory of the vpnlab process running the cells, in KiB
    /// (its daemons not included).
    pub peak_rss_kib: Option<u64>,
    /// The VM the cells ran in (`--kernel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmInfo>,
    /// Every cell, in scenario order.
    pub cells: Vec<CellReport>,
}

/// How a `--kernel` batch ran.
#[derive(Debug, Serialize, Deserialize)]
pub struct VmInfo {
    /// Kernel image booted (the UML kernel binary under UML).
    pub kernel: PathBuf,
    /// KVM, UML or TCG.
    pub accel: vm::Accel,
    /// Why that way was chosen.
    #[serde(default)]
    pub why: String,
    /// Guests run side by side (UML: one per job).
    #[serde(default = "one")]
    pub instances: usize,
    /// The guests ran on UML's virtual clock (`--time-travel`): the cells'
    /// times are virtual, not wall time.
    #[serde(default)]
    pub virtual_time: bool,
    /// From launch until vpnlab started inside (the slowest guest).
    pub boot_ms: u64,
    /// The whole VM run.
    pub total_ms: u64,
}

fn one() -> usize {
    1
}

/// How cells are run and what is kept of them.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Cells run in parallel on this machine.
    pub jobs: usize,
    /// Keep a failed cell's topology up until Ctrl-C.
    pub keep: bool,
    /// Capture packets (the path and diagnosis).
    pub capture: bool,
    /// Write pcap files under this directory (absolute).
    pub pcap_dir: Option<PathBuf>,
    /// Copy daemon logs under this directory (absolute).
    pub logs_dir: Option<PathBuf>,
    /// Run UML guests on a virtual clock (`--time-travel`).
    pub time_travel: bool,
    /// Inside a UML guest: the directory shared with the other instances
    /// in which each cell is claimed before it runs; a cell another
    /// instance claimed is left out of this report.
    pub claims: Option<PathBuf>,
}

/// Something worth telling the user while a batch runs.
#[derive(Debug)]
pub enum Event<'a> {
    /// A cell starts here (the `index`th, from 1, of `total`).
    CellStarted {
        /// Its position among the cells this machine deals with.
        index: usize,
        /// Cells this machine runs.
        total: usize,
        /// Its name.
        cell: &'a str,
    },
    /// A cell finished here: the `index`th (from 1) of the `total` cells
    /// this machine deals with.
    CellDone {
        /// Its position among them.
        index: usize,
        /// Cells this machine runs.
        total: usize,
        /// The finished cell.
        report: &'a CellReport,
    },
    /// The UML kernel is being built (once; minutes).
    UmlBuilding {
        /// Where it will be.
        kernel: &'a Path,
    },
    /// A VM is booting for `cells` cells.
    VmBooting {
        /// Kernel image.
        kernel: &'a Path,
        /// KVM, UML or TCG.
        accel: vm::Accel,
        /// Why that way.
        why: &'a str,
        /// Guests side by side.
        instances: usize,
        /// Cells they run.
        cells: usize,
    },
    /// A line the VM printed (its vpnlab's progress and table).
    VmConsole(&'a str),
    /// `--keep`: a failed cell is held up until Ctrl-C.
    Holding(&'a Holding),
    /// Ctrl-C came: the held cell is torn down.
    Releasing(&'a str),
    /// Something went wrong that does not stop the batch.
    Warning(&'a str),
}

/// Where a batch's events go (the binary prints them on stderr).
pub trait Progress: Sync {
    /// Take one event.
    fn event(&self, e: Event<'_>);
}

/// A [`Progress`] that drops everything (tests, tools).
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _: Event<'_>) {}
}

/// Teardowns still running when the results are in: the caller shows the
/// results, then waits for these (which add their phase to the report)
/// before it exits.
#[must_use = "teardowns must be waited for: they reap the daemons"]
pub struct Teardowns(Vec<(String, tokio::task::JoinHandle<TornDown>)>);

impl Teardowns {
    /// Wait for every teardown and record what each took.
    pub async fn wait(self, report: &mut Report) {
        for (id, handle) in self.0 {
            let torn = handle.await.unwrap_or_else(|e| TornDown {
                ms: 0.0,
                notes: vec![format!("teardown failed: {e}")],
                log_files: vec![],
            });
            if let Some(c) = report.cells.iter_mut().find(|c| c.outcome.cell == id) {
                c.torn_down(torn);
            }
        }
        report.peak_rss_kib = crate::sys::self_status_field("VmHWM");
    }
}

/// Run `plan` on `machine`: host cells here (at most `jobs` at a time),
/// then the VM cells in one boot; the report lists every cell in plan
/// order. Host cells' teardowns may still run when this returns.
pub async fn run(
    plan: Plan,
    machine: &Machine,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<(Report, Teardowns), BatchError> {
    if let Some(w) = &plan.warning {
        progress.event(Event::Warning(w));
    }
    let order: Vec<String> = plan.cells.iter().map(|p| p.cell.id.clone()).collect();
    let mut vm_cells = Vec::new();
    let mut here = Vec::new();
    for p in plan.cells {
        let backend = p.cell.backend.unwrap_or(machine.backend);
        match p.placement {
            Placement::Host => here.push(Here::Run(Box::new(p.cell))),
            Placement::Vm => match time_travel_refuses(&p.cell, settings) {
                Some(reason) => here.push(not_run(&p.cell, backend, Verdict::Unsupported, &reason)),
                None => vm_cells.push(p.cell),
            },
            Placement::Unsupported { reason, backend } => {
                here.push(not_run(&p.cell, backend, Verdict::Unsupported, &reason))
            }
            Placement::Skipped { reason } => {
                here.push(not_run(&p.cell, backend, Verdict::Skipped, &reason))
            }
        }
    }
    if settings.claims.is_some() {
        // Shared with other guests: the longest first, so that no guest
        // is left with a long cell at the end while the others are done.
        here.sort_by_key(|h| {
            std::cmp::Reverse(match h {
                Here::Run(c) => c.known_wait(),
                Here::Report(_) => std::time::Duration::ZERO,
            })
        });
    }
    let (cells, teardowns) = run_here(here, machine, settings, progress).await;
    let mut report = Report {
        vpnlab: env!("CARGO_PKG_VERSION").into(),
        backend: machine.backend,
        peak_rss_kib: None,
        vm: None,
        cells,
    };
    if !vm_cells.is_empty() {
        let kernel = plan.kernel.as_deref().unwrap_or("auto");
        let guest = match run_in_vm(kernel, &vm_cells, settings, progress).await {
            Ok(g) => g,
            Err(e) => {
                teardowns.wait(&mut report).await;
                return Err(e);
            }
        };
        report.vm = guest.vm;
        report.cells.extend(guest.cells);
        report
            .cells
            .sort_by_key(|c| order.iter().position(|id| *id == c.outcome.cell));
    }
    report.peak_rss_kib = crate::sys::self_status_field("VmHWM");
    Ok((report, teardowns))
}

/// A cell this machine deals with: run it, or report how it was placed.
enum Here {
    Run(Box<Cell>),
    Report(Box<CellReport>),
}

/// The cells placed here: host cells run, the others reported as they
/// were placed.
async fn run_here(
    cells: Vec<Here>,
    machine: &Machine,
    settings: &Settings,
    progress: &dyn Progress,
) -> (Vec<CellReport>, Teardowns) {
    let opts = RunOptions {
        backend: machine.backend,
        keep: settings.keep,
        workdir: PathBuf::from(sandbox::WORKDIR),
        capture: settings.capture,
        pcap_dir: settings.pcap_dir.clone(),
        logs_dir: settings.logs_dir.clone(),
        // The timers of the way the cell runs (a snapshot does not quote
        // them: the daemons' "6 second timeout exceeded" is redacted).
        timers: match vm::guest() {
            None => Timers::HOST,
            Some(vm::Guest::Qemu) => Timers::EMULATED,
            Some(vm::Guest::Uml | vm::Guest::UmlVirtualTime) => Timers::UML,
        },
    };
    let total = cells.len();
    let notify = |n: Notice<'_>| match n {
        Notice::Holding(h) => progress.event(Event::Holding(h)),
        Notice::Releasing(c) => progress.event(Event::Releasing(c)),
    };
    // A cell's teardown runs in a task of its own while the next cell
    // starts; its result is reported first.
    let mut out: Vec<(usize, CellReport, Option<tokio::task::JoinHandle<TornDown>>)> =
        futures::stream::iter(cells.into_iter().enumerate())
            // Claimed as each cell is about to start, so that the
            // instances share the cells as they free up.
            .filter(|(i, _)| std::future::ready(claimed(settings, *i, progress)))
            .map(|(i, h)| {
                let (opts, notify) = (&opts, &notify);
                async move {
                    let (r, teardown) = match h {
                        Here::Run(cell) => {
                            progress.event(Event::CellStarted {
                                index: i + 1,
                                total,
                                cell: &cell.id,
                            });
                            run_cell(&cell, i, opts, notify).await
                        }
                        Here::Report(r) => (*r, None),
                    };
                    progress.event(Event::CellDone {
                        index: i + 1,
                        total,
                        report: &r,
                    });
                    (i, r, teardown.map(|t| tokio::spawn(t.run())))
                }
            })
            .buffer_unordered(settings.jobs.max(1))
            .collect()
            .await;
    out.sort_by_key(|(i, _, _)| *i);
    let mut pending = Vec::new();
    let reports = out
        .into_iter()
        .map(|(_, r, teardown)| {
            if let Some(t) = teardown {
                pending.push((r.outcome.cell.clone(), t));
            }
            r
        })
        .collect();
    (reports, Teardowns(pending))
}

/// Whether this run takes the `i`th cell: always, unless it shares the
/// cells with other UML instances and one of them claimed it first (a
/// claim is a directory: its creation is atomic on the host's file
/// system, which every instance writes through hostfs).
fn claimed(settings: &Settings, i: usize, progress: &dyn Progress) -> bool {
    let Some(dir) = &settings.claims else {
        return true;
    };
    match std::fs::create_dir(dir.join(i.to_string())) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => {
            // Left to the others; the host reports a cell none ran.
            progress.event(Event::Warning(&format!(
                "cannot claim cell {i} in {}: {e}",
                dir.display()
            )));
            false
        }
    }
}

/// Why `cell` cannot run on UML's virtual clock (`--time-travel`), if it
/// cannot. A PPP link is negotiated by pppd over its pty with xl2tpd or
/// pptp: host waits the virtual clock runs past, so LCP gives up early (an
/// L2TP cell failed so in a measured run of every bundled VM cell).
fn time_travel_refuses(cell: &Cell, settings: &Settings) -> Option<String> {
    (settings.time_travel && cell.ppp.is_some()).then(|| {
        "--time-travel: a PPP link's negotiation (pppd over its pty) is not safe on the virtual clock, which runs past its waits; run it without --time-travel".to_string()
    })
}

/// A cell that is not run here, reported as placed.
fn not_run(cell: &Cell, backend: Backend, verdict: Verdict, reason: &str) -> Here {
    Here::Report(Box::new(CellReport::not_run(
        cell,
        backend,
        verdict,
        reason.to_string(),
    )))
}

/// The arguments that select exactly `cells` from their files: each file
/// once (sorted, absolute), then `--cell <id>` for every cell.
pub fn selection_args<'a>(
    cells: impl IntoIterator<Item = (&'a Path, &'a str)>,
) -> std::io::Result<Vec<String>> {
    let cells: Vec<(&Path, &str)> = cells.into_iter().collect();
    let mut files: Vec<PathBuf> = cells
        .iter()
        .map(|(f, _)| std::path::absolute(f))
        .collect::<Result<_, _>>()?;
    files.sort();
    files.dedup();
    let mut args: Vec<String> = files
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    for (_, id) in cells {
        args.extend(["--cell".into(), id.to_string()]);
    }
    Ok(args)
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> BatchError {
    let (what, path) = (what.to_string(), path.to_path_buf());
    move |source| BatchError::Io { what, path, source }
}

/// The guest's `vpnlab run` arguments for `cells` (without `--report`),
/// running `jobs` at a time; `out` maps each output directory (pcap, logs)
/// to where the guest writes it. Also the host directories it writes.
fn guest_args(
    cells: &[&Cell],
    settings: &Settings,
    jobs: usize,
    out: impl Fn(&Path, &str) -> PathBuf,
) -> Result<(Vec<String>, Vec<PathBuf>), BatchError> {
    let mut args = selection_args(cells.iter().map(|c| (c.file.as_path(), c.id.as_str())))
        .map_err(io_err("resolve the scenario files", Path::new(".")))?;
    args.extend(["--jobs".into(), jobs.max(1).to_string()]);
    if !settings.capture {
        args.push("--no-capture".into());
    }
    let mut rw = Vec::new();
    for (flag, dir) in Outputs::of(settings) {
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let guest = out(dir, &flag[2..]);
        args.extend([flag.into(), guest.to_string_lossy().into_owned()]);
        rw.push(guest);
    }
    Ok((args, rw))
}

/// The output directories a guest writes into: (flag, host directory).
struct Outputs;

impl Outputs {
    fn of(settings: &Settings) -> impl Iterator<Item = (&'static str, &Path)> {
        [
            ("--pcap", settings.pcap_dir.as_deref()),
            ("--logs", settings.logs_dir.as_deref()),
        ]
        .into_iter()
        .filter_map(|(f, d)| Some((f, d?)))
    }
}

/// Run `cells` in a guest kernel, the way [`vm::choose`] picks; the
/// guests' report.
async fn run_in_vm(
    kernel: &str,
    cells: &[Cell],
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<Report, BatchError> {
    let spec = vm::KernelSpec::parse(kernel);
    let mut chosen = vm::choose(&spec).await?;
    if chosen.accel == vm::Accel::Uml {
        // UML reads the host's files as its unprivileged user.
        let user = vm::uml::user()?;
        if let Err(e) = vm::uml::check_readable(&user, &uml_batch::guest_reads(cells)) {
            if chosen.explicit {
                return Err(e.into());
            }
            chosen = vm::Chosen {
                accel: vm::Accel::Tcg,
                why: format!("{}; but {e}", chosen.why),
                explicit: false,
            };
        }
    }
    if settings.time_travel && chosen.accel != vm::Accel::Uml {
        return Err(BatchError::Setting(format!(
            "--time-travel needs UML, but {} was chosen ({}): use --kernel uml",
            chosen.accel.describe(),
            chosen.why
        )));
    }
    match chosen.accel {
        vm::Accel::Uml => uml_batch::run(cells, settings, &chosen, progress).await,
        _ => run_in_qemu(&spec, cells, settings, &chosen, progress).await,
    }
}

/// Boot a kernel image under qemu once and run `cells` inside.
async fn run_in_qemu(
    spec: &vm::KernelSpec,
    cells: &[Cell],
    settings: &Settings,
    chosen: &vm::Chosen,
    progress: &dyn Progress,
) -> Result<Report, BatchError> {
    let vng = vm::qemu::vng()?;
    let kernel = match spec {
        vm::KernelSpec::Image(p) => vm::find_kernel(&p.to_string_lossy())?,
        _ => vm::find_kernel("auto")?,
    };
    let all: Vec<&Cell> = cells.iter().collect();
    // Output directories are shared read-write as they are.
    let (args, rw) = guest_args(&all, settings, settings.jobs, |d, _| d.to_path_buf())?;
    progress.event(Event::VmBooting {
        kernel: &kernel,
        accel: chosen.accel,
        why: &chosen.why,
        instances: 1,
        cells: cells.len(),
    });
    let console = |line: &str| progress.event(Event::VmConsole(line));
    let out = vm::qemu::run(&vng, &kernel, chosen.accel, &args, &rw, &console).await?;
    let mut report: Report = serde_json::from_value(out.report)
        .map_err(|e| BatchError::Vm(vm::VmError::Run(format!("the VM's report: {e}"))))?;
    report.vm = Some(VmInfo {
        kernel,
        accel: chosen.accel,
        why: chosen.why.clone(),
        instances: 1,
        virtual_time: false,
        boot_ms: out.boot.as_millis() as u64,
        total_ms: out.total.as_millis() as u64,
    });
    Ok(report)
}
