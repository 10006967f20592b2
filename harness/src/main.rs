//! The `vpnlab` command line. Library errors are turned into messages here
//! (anyhow at the binary edge only).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures::StreamExt;

use vpnlab::batch::sandbox;
use vpnlab::cell::{run_cell, CellReport, RunOptions};
use vpnlab::scenario::{self, Cell};
use vpnlab::{doctor, outcome::Verdict, report};

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
    Run {
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
        /// Run the cells in a VM booting this kernel image (`auto`: the newest
        /// installed distribution kernel), with virtme-ng and qemu; one boot
        /// for the whole batch. Gives kernel ESP where the host kernel has none.
        #[arg(long, value_name = "PATH|auto")]
        kernel: Option<String>,
        /// Run here what this machine can run, and only the cells that need
        /// kernel ESP or PPP it lacks in one VM boot of this kernel image
        /// (`auto`: as for --kernel); one table and report. Without VM mode
        /// those cells are reported SKIPPED.
        #[arg(long, value_name = "PATH|auto", conflicts_with_all = ["kernel", "keep"])]
        kernel_when_needed: Option<String>,
    },
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
    Check {
        /// Scenario files or directories (default: the bundled topologies/).
        paths: Vec<PathBuf>,
    },
    /// List cell names, one per line.
    List {
        /// Scenario files or directories (default: the bundled topologies/).
        paths: Vec<PathBuf>,
    },
    /// Check this machine: privileges, kernel ESP and TUN, nftables,
    /// strongSwan and its plugins; print the command that installs anything missing.
    Doctor,
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
    let files = scenario::discover(&paths)?;
    let mut cells: Vec<Cell> = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match scenario::load(&f) {
            Ok(s) => {
                for c in s.cells {
                    // Two files may not define the same cell: names select
                    // cells, key snapshots and name pcap directories.
                    match cells.iter().find(|x| x.id == c.id) {
                        Some(x) => errors.push(format!(
                            "{}: cell {} is also defined by {} (set a different `name` in one of them)",
                            c.file.display(),
                            c.id,
                            x.file.display()
                        )),
                        None => cells.push(c),
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(cells)
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

fn real_main(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Check { paths } => {
            let cells = load_cells(paths)?;
            for c in &cells {
                println!("ok  {}", c.id);
            }
            println!("{} cells valid", cells.len());
            Ok(0)
        }
        Command::List { paths } => {
            for c in load_cells(paths)? {
                println!("{}", c.id);
            }
            Ok(0)
        }
        Command::Doctor => doctor_cmd(),
        Command::Run {
            paths,
            filter,
            cell,
            jobs,
            report,
            keep,
            pcap,
            logs,
            explain,
            format,
            no_capture,
            kernel,
            kernel_when_needed,
        } => {
            // Validate before anything is created.
            let cells = select(load_cells(paths)?, &filter, &cell)?;
            preflight(report.as_deref(), &[pcap.as_deref(), logs.as_deref()])?;
            let view = View {
                explain,
                format,
                capture: !no_capture,
                pcap,
                logs,
            };
            match kernel {
                Some(_) if keep => {
                    bail!("--keep cannot be used with --kernel (the VM ends with the run)")
                }
                Some(k) => sandboxed(|| run_vm(k, cells, usize::from(jobs), report, view)),
                None if kernel_when_needed.is_some() => sandboxed(|| {
                    let k = kernel_when_needed.expect("some");
                    run_split(k, cells, usize::from(jobs), report, view)
                }),
                None => sandboxed(|| run_cmd(cells, usize::from(jobs), report, keep, view)),
            }
        }
        Command::Explain { cells, paths, pcap } => {
            let cells = select(load_cells(paths)?, &[], &cells)?;
            let view = View {
                explain: true,
                format: report::Format::Text,
                capture: true,
                pcap,
                logs: None,
            };
            sandboxed(|| run_cmd(cells, 1, None, false, view))
        }
    }
}

/// Fail before any cell runs if the report, pcap or log location is unusable.
fn preflight(report: Option<&std::path::Path>, dirs: &[Option<&std::path::Path>]) -> Result<()> {
    if let Some(r) = report.filter(|r| *r != std::path::Path::new("-")) {
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

/// How much of each cell to show and record.
struct View {
    explain: bool,
    format: report::Format,
    capture: bool,
    pcap: Option<PathBuf>,
    logs: Option<PathBuf>,
}

/// Re-run this command in the run sandbox (see `sandbox`), or, inside it,
/// run `f` on a tokio runtime.
fn sandboxed<F, Fut>(f: F) -> Result<i32>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<i32>>,
{
    if !sandbox::is_inner() {
        return sandbox::run_outer().map_err(anyhow::Error::msg);
    }
    sandbox::enter_inner().map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(f())
}

async fn run_cmd(
    cells: Vec<Cell>,
    jobs: usize,
    report: Option<PathBuf>,
    keep: bool,
    view: View,
) -> Result<i32> {
    let summary = run_here(cells, jobs, keep, &view).await?;
    finish(summary, report, view.explain, view.format)
}

/// Run `cells` on this machine.
async fn run_here(
    cells: Vec<Cell>,
    jobs: usize,
    keep: bool,
    view: &View,
) -> Result<report::Report> {
    if std::env::var_os("VPNLAB_IN_VM").is_some() {
        vpnlab::batch::vm::load_guest_modules().await;
    }
    let kernel_esp = vpnlab::cell::kernel_has_esp().await;
    let backend = vpnlab::cell::default_backend(kernel_esp).map_err(anyhow::Error::msg)?;
    if std::env::var_os("VPNLAB_IN_VM").is_some() {
        // The host waits for this line to measure the boot.
        eprintln!("{} ({} cells)", vpnlab::batch::vm::START_MARK, cells.len());
    }
    // Resolved now, relative to where vpnlab was started.
    let pcap_dir = view.pcap.as_ref().map(std::path::absolute).transpose()?;
    let logs_dir = view.logs.as_ref().map(std::path::absolute).transpose()?;
    let opts = RunOptions {
        backend,
        kernel_esp,
        keep,
        workdir: PathBuf::from(sandbox::WORKDIR),
        capture: view.capture,
        pcap_dir,
        logs_dir,
        // Inside a VM (software emulation), everything is ~10x slower.
        timers: if std::env::var_os("VPNLAB_IN_VM").is_some() {
            vpnlab::stack::Timers::EMULATED
        } else {
            vpnlab::stack::Timers::HOST
        },
    };
    let total = cells.len();
    let mut done: Vec<(usize, CellReport)> = futures::stream::iter(cells.iter().enumerate())
        .map(|(i, c)| {
            let opts = &opts;
            async move {
                let r = run_cell(c, i, opts).await;
                eprintln!(
                    "[{}/{total}] {:<11} {} ({:.2}s)",
                    i + 1,
                    r.outcome.verdict.label(),
                    r.outcome.cell,
                    r.elapsed_ms as f64 / 1000.0
                );
                (i, r)
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    let reports: Vec<CellReport> = done.into_iter().map(|(_, r)| r).collect();
    Ok(report::Report {
        vpnlab: env!("CARGO_PKG_VERSION").into(),
        backend,
        peak_rss_kib: report::peak_rss_kib(),
        vm: None,
        cells: reports,
    })
}

/// `run --kernel-when-needed`: the cells this machine can run run here; those
/// that need kernel ESP or PPP it lacks run in one VM boot; one table and
/// report. Without VM mode, everything runs here (those cells are SKIPPED,
/// with the command that runs them).
async fn run_split(
    kernel: String,
    cells: Vec<Cell>,
    jobs: usize,
    report: Option<PathBuf>,
    view: View,
) -> Result<i32> {
    let esp = vpnlab::cell::kernel_has_esp().await;
    let needs_vm = |c: &Cell| !vpnlab::cell::missing_features(c, esp).is_empty();
    let order: Vec<String> = cells.iter().map(|c| c.id.clone()).collect();
    let (vm_cells, here): (Vec<Cell>, Vec<Cell>) = cells.into_iter().partition(needs_vm);
    let vm_ready = vpnlab::batch::vm::readiness();
    if vm_cells.is_empty() || vm_ready.is_err() {
        if let (false, Err(e)) = (vm_cells.is_empty(), &vm_ready) {
            eprintln!("vpnlab: VM mode is not ready ({e}); cells that need it are SKIPPED");
        }
        let all = here.into_iter().chain(vm_cells).collect();
        return run_cmd(all, jobs, report, false, view).await;
    }
    let mut summary = run_here(here, jobs, false, &view).await?;
    let vm = run_in_vm(kernel, vm_cells, jobs, &view).await?;
    summary.vm = vm.vm;
    summary.cells.extend(vm.cells);
    summary
        .cells
        .sort_by_key(|c| order.iter().position(|id| *id == c.outcome.cell));
    finish(summary, report, view.explain, view.format)
}

/// Print the table, write the JSON report, and compute the exit code.
fn finish(
    summary: report::Report,
    report: Option<PathBuf>,
    explain: bool,
    format: report::Format,
) -> Result<i32> {
    let to_stdout = report.as_deref() == Some(std::path::Path::new("-"));
    let mut table = Vec::new();
    if let Some(vm) = &summary.vm {
        writeln!(
            table,
            "VM: {} ({}), boot {:.1}s, whole batch {:.1}s",
            vm.kernel.display(),
            serde_json::to_value(vm.accel)?.as_str().unwrap_or(""),
            vm.boot_ms as f64 / 1000.0,
            vm.total_ms as f64 / 1000.0
        )?;
    }
    match format {
        report::Format::Text => report::table(&mut table, &summary.cells, explain)?,
        report::Format::Markdown => report::markdown(&mut table, &summary.cells)?,
    }
    if to_stdout {
        std::io::stderr().write_all(&table)?;
    } else {
        std::io::stdout().write_all(&table)?;
    }
    if let Some(path) = report {
        let json = serde_json::to_string_pretty(&summary)?;
        if to_stdout {
            println!("{json}");
        } else {
            std::fs::write(&path, json + "\n")
                .with_context(|| format!("cannot write report {}", path.display()))?;
        }
    }
    let failed = summary
        .cells
        .iter()
        .any(|r| matches!(r.outcome.verdict, Verdict::Fail | Verdict::Error));
    Ok(i32::from(failed))
}

/// `run --kernel`: boot the kernel once and run the selected cells inside.
async fn run_vm(
    kernel: String,
    cells: Vec<Cell>,
    jobs: usize,
    report: Option<PathBuf>,
    view: View,
) -> Result<i32> {
    let summary = run_in_vm(kernel, cells, jobs, &view).await?;
    finish(summary, report, view.explain, view.format)
}

/// Boot `kernel` once and run `cells` inside; the guest's report.
async fn run_in_vm(
    kernel: String,
    cells: Vec<Cell>,
    jobs: usize,
    view: &View,
) -> Result<report::Report> {
    use vpnlab::batch::vm;
    let vng = vm::vng()?;
    let kernel = vm::find_kernel(&kernel)?;
    let accel = vm::accel(&vng, &kernel, std::time::Duration::from_secs(15)).await;
    // The guest runs exactly these cells, from the same files.
    let mut args: Vec<String> = Vec::new();
    let mut files: Vec<PathBuf> = cells
        .iter()
        .map(|c| std::path::absolute(&c.file))
        .collect::<Result<_, _>>()?;
    files.sort();
    files.dedup();
    args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
    for c in &cells {
        args.extend(["--cell".into(), c.id.clone()]);
    }
    args.extend(["--jobs".into(), jobs.to_string()]);
    if !view.capture {
        args.push("--no-capture".into());
    }
    let mut rw = Vec::new();
    for (flag, dir) in [("--pcap", &view.pcap), ("--logs", &view.logs)] {
        if let Some(p) = dir {
            let p = std::path::absolute(p)?;
            std::fs::create_dir_all(&p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            args.extend([flag.into(), p.to_string_lossy().into_owned()]);
            rw.push(p);
        }
    }
    eprintln!(
        "booting {} under {} for {} cells...",
        kernel.display(),
        if accel == vm::Accel::Kvm {
            "KVM"
        } else {
            "TCG (software emulation)"
        },
        cells.len()
    );
    let out = vm::run(&vng, &kernel, accel, &args, &rw).await?;
    let mut summary: report::Report =
        serde_json::from_value(out.report).context("the VM's report")?;
    summary.vm = Some(report::VmInfo {
        kernel,
        accel,
        boot_ms: out.boot.as_millis() as u64,
        total_ms: out.total.as_millis() as u64,
    });
    Ok(summary)
}

fn doctor_cmd() -> Result<i32> {
    let esp = if nix::unistd::geteuid().is_root() {
        let rt = tokio::runtime::Runtime::new()?;
        Some(rt.block_on(vpnlab::cell::kernel_has_esp()))
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
