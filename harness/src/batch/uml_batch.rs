//! A batch under UML: one instance per job (a UML guest has one CPU), all
//! given every cell and claiming each before running it (so none idles
//! while another has a queue), each instance's report read from its
//! directory in the share, the pcap files and logs it wrote brought out to
//! where the user asked, and the reports joined into one, every cell once.

use std::path::{Path, PathBuf};

use super::vm::{self, uml};
use super::{guest_args, io_err, Event, Outputs, Progress, Report, Settings, VmInfo};
use crate::error::BatchError;
use crate::model::Cell;

/// Cells an instance runs at a time. Its one CPU idles while a cell
/// waits on a timer or for its peer; a second cell fills that time (all
/// 170 bundled VM cells, `--jobs 2`, 6.1 kernel: 309 s one at a time, 205 s
/// two at a time). A third (6.12 kernel: 109 s against 123 s) doubles the
/// median IKE exchange and brings the slowest to 2.5 s, near the 3 s at
/// which UML's timers give up.
const CELLS_PER_INSTANCE: usize = 2;

/// The host files the guests read as UML's user: scenario files and
/// the programs of `command` stacks.
pub(super) fn guest_reads(cells: &[Cell]) -> Vec<&Path> {
    let mut files: Vec<&Path> = cells.iter().map(|c| c.file.as_path()).collect();
    for e in cells.iter().flat_map(|c| &c.endpoints) {
        if let crate::model::StackKind::Command(c) = &e.stack {
            files.extend([c.start.as_path(), c.status.as_path()]);
            files.extend(c.initiate.as_deref());
        }
    }
    files.sort();
    files.dedup();
    files
}

/// Run `cells` in UML instances.
pub(super) async fn run(
    cells: &[Cell],
    settings: &Settings,
    chosen: &vm::Chosen,
    progress: &dyn Progress,
) -> Result<Report, BatchError> {
    // The virtual clock needs its own kernel series (see `Series`).
    let series = uml::kernel::Series::for_clock(settings.time_travel);
    let ready = uml::readiness(series)?;
    let kernel = match ready.kernel {
        Ok(k) => k,
        Err(to) => {
            progress.event(Event::UmlBuilding { kernel: &to.path() });
            tokio::task::spawn_blocking(move || uml::kernel::ensure(series))
                .await
                .map_err(|e| BatchError::Setting(format!("the UML kernel build: {e}")))??
        }
    };
    let instances = instances(cells, settings)?;
    let n = instances.len();
    progress.event(Event::VmBooting {
        kernel: &kernel.path,
        accel: vm::Accel::Uml,
        why: &chosen.why,
        instances: n,
        cells: cells.len(),
    });
    let started = std::time::Instant::now();
    let console = |line: &str| progress.event(Event::VmConsole(line));
    let opts = uml::Options {
        time_travel: settings.time_travel,
    };
    let runs = uml::run(&kernel.path, &ready.user, instances, opts, &console).await?;
    let boot = runs.iter().map(|r| r.boot).max().unwrap_or_default();
    let mut report = join(runs, settings)?;
    every_cell_once(cells, &report)?;
    report.vm = Some(VmInfo {
        kernel: kernel.path.clone(),
        accel: vm::Accel::Uml,
        why: chosen.why.clone(),
        instances: n,
        virtual_time: settings.time_travel,
        boot_ms: boot.as_millis() as u64,
        total_ms: started.elapsed().as_millis() as u64,
    });
    Ok(report)
}

/// One instance per job, each given every cell and the claims directory.
fn instances(cells: &[Cell], settings: &Settings) -> Result<Vec<uml::Instance>, BatchError> {
    let all: Vec<&Cell> = cells.iter().collect();
    let claims = Path::new(uml::GUEST_SHARE).join(uml::CLAIMS);
    (0..settings.jobs.clamp(1, cells.len().max(1)))
        .map(|i| {
            let (mut args, _) = guest_args(&all, settings, CELLS_PER_INSTANCE, |_, what| {
                uml::guest_dir(i).join(what)
            })?;
            args.extend(["--claims".into(), claims.to_string_lossy().into_owned()]);
            Ok(uml::Instance { args })
        })
        .collect()
}

/// The instances' reports as one, their files brought out.
fn join(runs: Vec<vm::VmRun>, settings: &Settings) -> Result<Report, BatchError> {
    let mut joined: Option<Report> = None;
    for (i, run) in runs.into_iter().enumerate() {
        let mut report: Report = serde_json::from_value(run.report).map_err(|e| {
            BatchError::Vm(vm::VmError::Run(format!(
                "UML instance {}'s report: {e}",
                i + 1
            )))
        })?;
        bring_out(
            &uml::instance_dir(i),
            &uml::guest_dir(i),
            settings,
            &mut report,
        )?;
        match &mut joined {
            None => joined = Some(report),
            Some(j) => {
                j.cells.extend(report.cells);
                j.peak_rss_kib = j.peak_rss_kib.max(report.peak_rss_kib);
            }
        }
    }
    joined.ok_or_else(|| BatchError::Setting("no UML instance ran".into()))
}

/// Whether the instances' reports hold each cell exactly once (a claim
/// that failed, or a guest that died early, would lose one).
fn every_cell_once(cells: &[Cell], report: &Report) -> Result<(), BatchError> {
    for c in cells {
        let n = report
            .cells
            .iter()
            .filter(|r| r.outcome.cell == c.id)
            .count();
        if n != 1 {
            return Err(BatchError::Vm(vm::VmError::Run(format!(
                "cell {} came back from {n} UML instances, not one (see the guests' warnings above)",
                c.id
            ))));
        }
    }
    Ok(())
}

/// Copy the pcap files and logs an instance wrote in its directory
/// (`host`, which its guest sees as `guest`) to the user's directories,
/// and point the report at the copies.
fn bring_out(
    host: &Path,
    guest: &Path,
    settings: &Settings,
    report: &mut Report,
) -> Result<(), BatchError> {
    for (flag, dir) in Outputs::of(settings) {
        let what = &flag[2..];
        let from = host.join(what);
        uml::bring_out(&from, dir).map_err(io_err("copy the guest's files to", dir))?;
        let guest = guest.join(what);
        for c in &mut report.cells {
            let files = if what == "pcap" {
                &mut c.pcap_files
            } else {
                &mut c.log_files
            };
            for f in files.iter_mut() {
                *f = moved(f, &guest, dir);
            }
        }
    }
    Ok(())
}

/// `f` under `from`, moved under `to`.
fn moved(f: &Path, from: &Path, to: &Path) -> PathBuf {
    f.strip_prefix(from)
        .map_or_else(|_| f.to_path_buf(), |rest| to.join(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_move_from_the_share_to_the_users_directory() {
        let f = Path::new("/tmp/vpnlab-uml/pcap/seed/nat=none/client-eth0.pcap");
        assert_eq!(
            moved(
                f,
                Path::new("/tmp/vpnlab-uml/pcap"),
                Path::new("/home/u/out")
            ),
            Path::new("/home/u/out/seed/nat=none/client-eth0.pcap")
        );
        // A path elsewhere is left alone.
        let g = Path::new("/elsewhere/x.pcap");
        assert_eq!(
            moved(g, Path::new("/tmp/vpnlab-uml/pcap"), Path::new("/o")),
            g
        );
    }
}
