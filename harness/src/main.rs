//! The `vpnlab` command line: arguments in, tables and messages out. The
//! work is the library's ([`vpnlab::batch`] runs cells); library errors
//! become messages here (anyhow at the binary edge only).

#![deny(unsafe_code)]

mod console;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use vpnlab::batch::{self, sandbox, vm, Machine, VmPolicy};
use vpnlab::model::{Cell, Verdict};
use vpnlab::{doctor, report, scenario};

/// Network-emulation test harness for IPsec VPNs.
///
/// vpnlab builds throwaway network namespaces from a scenario file (hosts, a
/// NAT gateway, links, routes), runs real IKE daemons in them, sends ping and
/// UDP checks through the tunnel and compares what happened with the file's
/// `expect`. Every run is sandboxed: when it ends — even by SIGKILL — no
/// namespace, interface, mount or daemon is left behind.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario cells and print expected vs observed per cell.
    ///
    /// Exits 1 if any cell fails or errors; unsupported cells are listed but
    /// do not fail the run. Needs root.
    ///
    /// Examples:
    ///   vpnlab run                                  # the bundled topologies/
    ///   vpnlab run topologies/seed.toml --jobs 2
    ///   vpnlab run --filter nat=block-4500 --keep   # inspect a failure
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// Run cells and print, hop by hop, what crossed each link and where
    /// packets stopped (same as `run --explain`).
    ///
    /// Example: vpnlab explain seed/nat=block-4500,nat_t=auto
    Explain {
        /// Cell names (see `vpnlab list`).
        #[arg(required = true)]
        cells: Vec<String>,
        /// Scenario files or directories (default: the bundled topologies/).
        #[arg(long = "in", value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Write one pcap file per interface under DIR/<cell>/.
        #[arg(long, value_name = "DIR")]
        pcap: Option<PathBuf>,
    },
    /// Validate scenario files without creating anything; list their cells.
    ///
    /// Errors name the file, line and field and fail the check (exit 1).
    /// Warnings (on stderr, `warning: FILE:LINE:COL: FIELD: ...`) fail
    /// nothing: a libreswan end with no route to its peer's side of the
    /// tunnel, a check whose packets bypass the end that protects them, a
    /// keepalive longer than a gateway's UDP timeout in a cell expected up.
    Check {
        /// Scenario files or directories (default: the bundled topologies/).
        paths: Vec<PathBuf>,
    },
    /// Compare two runs' JSON reports (`run --report`): list the cells
    /// whose outcome changed (verdict, tunnel, encapsulation, NAT
    /// detection, checks, PPP link, diagnosis, cause), ignoring stack
    /// versions, timings and packet counts.
    ///
    /// Exits 1 if any cell got worse (a pass now fails or errors, a
    /// failure errors), 2 if a report cannot be read, 0 otherwise; cells
    /// only in one run are listed as added or removed.
    ///
    /// Example: vpnlab diff before.json after.json --format markdown
    #[command(verbatim_doc_comment)]
    Diff {
        /// The earlier run's report.
        old: PathBuf,
        /// The later run's report.
        new: PathBuf,
        /// `text`, or `markdown` (for a pull-request comment).
        #[arg(long, value_enum, default_value_t = report::Format::Text)]
        format: report::Format,
    },
    /// Write the HTML report of a JSON report (`run --report`), as
    /// `run --html` does: to look at a run made elsewhere, e.g. in CI.
    ///
    /// Example: vpnlab html report.json --out report.html
    Html {
        /// The run's JSON report.
        report: PathBuf,
        /// Where to write the page (links to pcap files and logs are made
        /// relative to its directory).
        #[arg(long, short, value_name = "FILE")]
        out: PathBuf,
    },
    /// List cell names, one per line.
    List {
        /// Scenario files or directories (default: the bundled topologies/).
        paths: Vec<PathBuf>,
        /// Only the cells that need kernel ESP or PPP (`requires`): those a
        /// host without them runs in a guest kernel.
        #[arg(long)]
        needs_kernel: bool,
    },
    /// Check this machine: privileges, kernel ESP and TUN, nftables,
    /// strongSwan and its plugins; print the command that installs anything missing.
    Doctor,
    /// Build vpnlab's User-Mode Linux kernel for `--kernel uml`, or find it
    /// in the cache; print its path.
    ///
    /// It is built once (6-8 minutes on 2 cores) from Debian's
    /// linux-source-6.12 with the configuration vpnlab keeps, and cached in
    /// /var/cache/vpnlab/uml (VPNLAB_UML_CACHE) under a key of the source's
    /// version and that configuration. `vpnlab run` builds it too when a
    /// batch needs it; ci/setup.sh builds it ahead. Needs root.
    UmlKernel {
        /// The kernel `--time-travel` runs instead: from linux-source-6.1
        /// (about 6 minutes), since under 6.12 UML's virtual clock
        /// (time-travel=inf-cpu) hangs before the kernel's first line.
        #[arg(long)]
        time_travel: bool,
    },
    /// Inside a UML guest: vpnlab as its init (started by the kernel).
    #[command(hide = true)]
    UmlGuest {
        /// The instance (its directory in the share).
        instance: usize,
        /// What the kernel adds (e.g. `root=98:0`), ignored.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        _kernel_args: Vec<String>,
    },
}

/// `vpnlab run`'s arguments.
#[derive(clap::Args)]
struct RunArgs {
    /// Scenario files or directories (default: the bundled topologies/).
    paths: Vec<PathBuf>,
    /// Run only cells whose name contains this text (repeatable: any match).
    #[arg(long, short)]
    filter: Vec<String>,
    /// Run only the cell with exactly this name (repeatable; with --filter,
    /// a cell must match both).
    #[arg(long)]
    cell: Vec<String>,
    /// Cells run in parallel; each has its own namespaces.
    #[arg(long, short, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// Write every outcome as JSON to FILE (`-` for stdout; the table then goes to stderr).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the results as JUnit XML to FILE, for CI systems: one
    /// testcase per cell, a failure with its mismatches and why,
    /// unsupported and skipped cells as skipped with their reason.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a self-contained HTML page to FILE: a grid per scenario file,
    /// each cell's expected and observed state, cause and diagnosis, links
    /// to its pcap files and logs (with --pcap/--logs), and a ladder
    /// diagram of its IKE, ESP and check packets through every gateway.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Keep a failed cell's topology up, print how to enter each node, and wait for Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Write one pcap file per interface under DIR/<cell>/ (node-iface.pcap).
    #[arg(long, value_name = "DIR")]
    pcap: Option<PathBuf>,
    /// Copy each daemon's log under DIR/<cell>/ (node-charon.log,
    /// node-pluto.log...), to read why an exchange failed.
    #[arg(long, value_name = "DIR")]
    logs: Option<PathBuf>,
    /// Print every cell's packet path and diagnosis, not only failed cells'.
    #[arg(long)]
    explain: bool,
    /// How the results table is printed: `text`, or `markdown` (cell,
    /// IPsec and PPP state, checks, diagnosis: ready to paste into a
    /// ticket or a CI step summary).
    #[arg(long, value_enum, default_value_t = report::Format::Text)]
    format: report::Format,
    /// Do not capture packets (no path or diagnosis in the outcome).
    #[arg(long, conflicts_with = "pcap")]
    no_capture: bool,
    /// Run the cells in a guest kernel, which has the kernel ESP, AH and PPP
    /// the host's may lack. `uml`: vpnlab's User-Mode Linux kernel, a host
    /// process at native speed (built once, see `vpnlab uml-kernel`), one
    /// instance per --jobs. PATH: that kernel image under qemu. `auto`: KVM
    /// if a KVM guest boots here, else UML if ready, else qemu's software
    /// emulation (TCG), both qemu ways with the newest installed
    /// distribution kernel; VPNLAB_VM_ACCEL=kvm|uml|tcg decides instead.
    #[arg(long, value_name = "PATH|auto|uml")]
    kernel: Option<String>,
    /// Under UML, run the guest on a virtual clock (time-travel=inf-cpu):
    /// a guest waiting on a timer skips ahead at once, so retransmits and
    /// timeouts cost no wall time. Times in the report are then virtual.
    /// Only for cells whose outcome does not depend on waiting for the
    /// host; cells known to differ are refused. It runs on its own UML
    /// kernel, from linux-source-6.1 (see `vpnlab uml-kernel --time-travel`).
    #[arg(long)]
    time_travel: bool,
    /// Inside a UML guest: claim each cell in this directory, shared with
    /// the other instances, before running it (set by the host).
    #[arg(long, hide = true, value_name = "DIR")]
    claims: Option<PathBuf>,
    /// Run here what this machine can run, and only the cells that need
    /// kernel ESP or PPP it lacks in one VM boot of this kernel image
    /// (`auto`: as for --kernel); one table and report. Without VM mode
    /// those cells are reported SKIPPED.
    #[arg(long, value_name = "PATH|auto", conflicts_with_all = ["kernel", "keep"])]
    kernel_when_needed: Option<String>,
}

/// The bundled topologies: `VPNLAB_TOPOLOGIES`, else `./topologies`, else
/// the source tree's copy.
fn default_paths() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("VPNLAB_TOPOLOGIES") {
        return vec![PathBuf::from(p)];
    }
    let local = PathBuf::from("topologies");
    if local.is_dir() {
        return vec![local];
    }
    vec![PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../topologies"
    ))]
}

fn load_cells(paths: Vec<PathBuf>) -> Result<Vec<Cell>> {
    let paths = if paths.is_empty() {
        default_paths()
    } else {
        paths
    };
    Ok(scenario::load_all(&paths)?)
}

fn select(cells: Vec<Cell>, filter: &[String], exact: &[String]) -> Result<Vec<Cell>> {
    let unknown: Vec<&String> = exact
        .iter()
        .filter(|e| !cells.iter().any(|c| &c.id == *e))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "no cell named {} (see `vpnlab list`)",
            unknown
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let picked: Vec<Cell> = cells
        .into_iter()
        .filter(|c| filter.is_empty() || filter.iter().any(|f| c.id.contains(f.as_str())))
        .filter(|c| exact.is_empty() || exact.iter().any(|e| &c.id == e))
        .collect();
    if picked.is_empty() {
        bail!("no cell matches both --filter and --cell (see `vpnlab list`)");
    }
    Ok(picked)
}

fn main() {
    let cli = Cli::parse();
    // Diagnostics on stderr, off unless RUST_LOG asks (e.g. RUST_LOG=vpnlab=debug).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let code = match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vpnlab: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

/// `vpnlab check`: every cell, then the lints (warnings fail nothing).
fn check(paths: Vec<PathBuf>) -> Result<i32> {
    let paths = if paths.is_empty() {
        default_paths()
    } else {
        paths
    };
    let (cells, warnings) = scenario::load_linted(&paths)?;
    for c in &cells {
        println!("ok  {}", c.id);
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    println!("{} cells valid", cells.len());
    Ok(0)
}

fn real_main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Check { paths } => check(paths),
        Command::List {
            paths,
            needs_kernel,
        } => {
            for c in load_cells(paths)? {
                if !needs_kernel || !c.requires.is_empty() {
                    println!("{}", c.id);
                }
            }
            Ok(0)
        }
        Command::Doctor => doctor_cmd(),
        Command::UmlKernel { time_travel } => uml_kernel_cmd(time_travel),
        Command::UmlGuest { instance, .. } => {
            // The kernel started us from the share (init=SHARE/vpnlab).
            let argv0 = PathBuf::from(std::env::args_os().next().unwrap_or_default());
            vm::uml::guest::init(argv0.parent().unwrap_or(Path::new("/")), instance)
        }
        Command::Diff { old, new, format } => diff_cmd(&old, &new, format),
        Command::Html { report, out } => {
            write_html(&read_report(&report)?, &out)?;
            Ok(0)
        }
        Command::Run(args) => run(args),
        Command::Explain { cells, paths, pcap } => {
            let cells = select(load_cells(paths)?, &[], &cells)?;
            preflight(&[], &[pcap.as_deref()])?;
            let view = View {
                explain: true,
                format: report::Format::Text,
                report: None,
                junit: None,
                html: None,
            };
            let settings = batch::Settings {
                jobs: 1,
                keep: false,
                capture: true,
                pcap_dir: pcap.map(std::path::absolute).transpose()?,
                logs_dir: None,
                time_travel: false,
                claims: None,
            };
            sandboxed(|| run_cmd(cells, VmPolicy::Never, settings, view))
        }
    }
}

/// `vpnlab run`: validate, then run the cells in the sandbox.
fn run(args: RunArgs) -> Result<i32> {
    let RunArgs {
        paths,
        filter,
        cell,
        jobs,
        report,
        junit,
        html,
        keep,
        pcap,
        logs,
        explain,
        format,
        no_capture,
        kernel,
        kernel_when_needed,
        time_travel,
        claims,
    } = args;
    // Validate before anything is created.
    let cells = select(load_cells(paths)?, &filter, &cell)?;
    preflight(
        &[report.as_deref(), junit.as_deref(), html.as_deref()],
        &[pcap.as_deref(), logs.as_deref()],
    )?;
    if kernel.is_some() && keep {
        bail!("--keep cannot be used with --kernel (the VM ends with the run)");
    }
    let policy = match (kernel, kernel_when_needed) {
        (Some(k), _) => VmPolicy::Always(k),
        (None, Some(k)) => VmPolicy::WhenNeeded(k),
        (None, None) => VmPolicy::Never,
    };
    if time_travel && matches!(policy, VmPolicy::Never) {
        bail!("--time-travel runs UML guests on a virtual clock: use it with --kernel uml (or --kernel-when-needed uml)");
    }
    let view = View {
        explain,
        format,
        report,
        junit,
        html,
    };
    let settings = batch::Settings {
        jobs: usize::from(jobs),
        keep,
        capture: !no_capture,
        // Resolved now, relative to where vpnlab was started.
        pcap_dir: pcap.map(std::path::absolute).transpose()?,
        logs_dir: logs.map(std::path::absolute).transpose()?,
        time_travel,
        claims,
    };
    sandboxed(|| run_cmd(cells, policy, settings, view))
}

/// Fail before any cell runs if a report, pcap or log location is unusable.
fn preflight(files: &[Option<&Path>], dirs: &[Option<&Path>]) -> Result<()> {
    for r in files.iter().flatten().filter(|r| **r != Path::new("-")) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(r)
            .with_context(|| format!("cannot write the report to {}", r.display()))?;
    }
    for p in dirs.iter().flatten() {
        std::fs::create_dir_all(p)
            .with_context(|| format!("cannot create the directory {}", p.display()))?;
    }
    Ok(())
}

/// How the results are shown and where the JSON and JUnit reports go.
struct View {
    explain: bool,
    format: report::Format,
    report: Option<PathBuf>,
    junit: Option<PathBuf>,
    html: Option<PathBuf>,
}

/// Re-run this command in the run sandbox (see `sandbox`), or, inside it,
/// run `f` on a tokio runtime.
fn sandboxed<F, Fut>(f: F) -> Result<i32>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<i32>>,
{
    if !sandbox::is_inner() {
        return Ok(sandbox::run_outer()?);
    }
    sandbox::enter_inner()?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(f())
}

/// Probe, plan, run, render.
async fn run_cmd(
    cells: Vec<Cell>,
    policy: VmPolicy,
    settings: batch::Settings,
    view: View,
) -> Result<i32> {
    let machine = Machine::probe().await?;
    if machine.in_vm {
        // The host waits for this line to measure the boot.
        let shared = if settings.claims.is_some() {
            ", shared with the other instances"
        } else {
            ""
        };
        eprintln!("{} ({} cells{shared})", vm::START_MARK, cells.len());
    }
    let plan = batch::plan(cells, &machine, &policy);
    let console = console::Console::on_stderr();
    let run = batch::run(plan, &machine, &settings, &console).await;
    console.finish();
    let (mut report, teardowns) = run?;
    // The results first; the report file once every cell is torn down
    // (it holds the teardown times).
    show(&report, &view)?;
    teardowns.wait(&mut report).await;
    finish(&report, &view)
}

/// Print the table (on stderr when the JSON report goes to stdout).
fn show(summary: &batch::Report, view: &View) -> Result<()> {
    let to_stdout = view.report.as_deref() == Some(Path::new("-"));
    let mut table = Vec::new();
    if let Some(vm) = &summary.vm {
        writeln!(
            table,
            "VM: {} under {}{}, boot {:.1}s, whole batch {:.1}s{}",
            vm.kernel.display(),
            vm.accel.describe(),
            if vm.instances > 1 {
                format!(" ({} instances)", vm.instances)
            } else {
                String::new()
            },
            vm.boot_ms as f64 / 1000.0,
            vm.total_ms as f64 / 1000.0,
            if vm.virtual_time {
                "; cell times are virtual (--time-travel)"
            } else {
                ""
            }
        )?;
    }
    match view.format {
        report::Format::Text => report::table(&mut table, &summary.cells, view.explain)?,
        report::Format::Markdown => report::markdown(&mut table, &summary.cells)?,
    }
    if to_stdout {
        std::io::stderr().write_all(&table)?;
    } else {
        std::io::stdout().write_all(&table)?;
    }
    Ok(())
}

/// Notes of the teardowns, the JSON report, and the exit code.
fn finish(summary: &batch::Report, view: &View) -> Result<i32> {
    let to_stdout = view.report.as_deref() == Some(Path::new("-"));
    for c in &summary.cells {
        for n in &c.notes {
            eprintln!("vpnlab: {}: {n}", c.outcome.cell);
        }
    }
    if let Some(path) = &view.report {
        let json = serde_json::to_string_pretty(summary)?;
        if to_stdout {
            println!("{json}");
        } else {
            std::fs::write(path, json + "\n")
                .with_context(|| format!("cannot write report {}", path.display()))?;
        }
    }
    if let Some(path) = &view.junit {
        let mut xml = Vec::new();
        report::junit(&mut xml, &summary.cells)?;
        std::fs::write(path, xml)
            .with_context(|| format!("cannot write the JUnit report {}", path.display()))?;
    }
    if let Some(path) = &view.html {
        write_html(summary, path)?;
    }
    let failed = summary
        .cells
        .iter()
        .any(|r| matches!(r.outcome.verdict, Verdict::Fail | Verdict::Error));
    Ok(i32::from(failed))
}

/// `vpnlab diff`: exit 1 if a cell got worse.
fn diff_cmd(old: &Path, new: &Path, format: report::Format) -> Result<i32> {
    let changes = report::diff::compare(&read_report(old)?.cells, &read_report(new)?.cells);
    let mut out = std::io::stdout();
    match format {
        report::Format::Text => report::diff::text(&mut out, &changes)?,
        report::Format::Markdown => report::diff::markdown(&mut out, &changes)?,
    }
    Ok(i32::from(report::diff::worse(&changes)))
}

/// A JSON report written by `vpnlab run --report`.
fn read_report(p: &Path) -> Result<batch::Report> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read the report {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a vpnlab JSON report (`vpnlab run --report FILE` writes one)",
            p.display()
        )
    })
}

/// The HTML page of `summary`, written to `path`.
fn write_html(summary: &batch::Report, path: &Path) -> Result<()> {
    let abs = std::path::absolute(path)?;
    let dir = abs.parent().unwrap_or(Path::new("/"));
    std::fs::write(&abs, report::html(summary, dir))
        .with_context(|| format!("cannot write the HTML report {}", path.display()))
}

/// `vpnlab uml-kernel`: build or find the UML kernel.
fn uml_kernel_cmd(time_travel: bool) -> Result<i32> {
    let series = vm::uml::kernel::Series::for_clock(time_travel);
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "vpnlab uml-kernel needs root (it writes {})",
            vm::uml::kernel::cache_dir().display()
        );
    }
    if let Ok(Err(to)) = vm::uml::kernel::find(series) {
        eprintln!(
            "building the UML kernel into {} (once; 6-8 minutes on 2 cores)...",
            to.path().display()
        );
    }
    let built = vm::uml::kernel::ensure(series)?;
    match built.build_secs {
        Some(s) => eprintln!("UML kernel: {} (build took {s:.0} s)", built.origin),
        None => eprintln!("UML kernel: {}", built.origin),
    }
    println!("{}", built.path.display());
    Ok(0)
}

fn doctor_cmd() -> Result<i32> {
    let esp = if nix::unistd::geteuid().is_root() {
        let rt = tokio::runtime::Runtime::new()?;
        Some(rt.block_on(batch::machine::kernel_has_esp()))
    } else {
        None
    };
    let findings = doctor::findings(esp);
    let mut bad = 0;
    for f in &findings {
        println!(
            "{} {:<28} {}",
            if f.ok { "ok  " } else { "MISSING" },
            f.what,
            f.detail
        );
        if !f.ok {
            println!("        fix: {}", f.fix);
            bad += 1;
        }
    }
    if bad == 0 {
        println!("\nready: `vpnlab run` can run the bundled scenarios");
    }
    Ok(i32::from(bad > 0))
}
