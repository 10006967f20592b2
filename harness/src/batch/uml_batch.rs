//! A batch under UML: the cells split across instances (one per job: a
//! UML guest has one CPU), each instance's report read from its share,
//! the pcap files and logs it wrote brought out to where the user asked,
//! and the reports joined into one.

use std::path::{Path, PathBuf};

use super::vm::{self, uml};
use super::{guest_args, io_err, Event, Outputs, Progress, Report, Settings, VmInfo};
use crate::error::BatchError;
use crate::model::Cell;

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
    let ready = uml::readiness()?;
    let kernel = match ready.kernel {
        Ok(k) => k,
        Err(to) => {
            progress.event(Event::UmlBuilding { kernel: &to.path() });
            tokio::task::spawn_blocking(uml::kernel::ensure)
                .await
                .map_err(|e| BatchError::Setting(format!("the UML kernel build: {e}")))??
        }
    };
    let groups = split(cells, settings.jobs.max(1));
    let mut instances = Vec::new();
    for group in &groups {
        let (args, _) = guest_args(group, settings, 1, |_, what| {
            Path::new(uml::GUEST_SHARE).join(what)
        })?;
        instances.push(uml::Instance { args });
    }
    progress.event(Event::VmBooting {
        kernel: &kernel.path,
        accel: vm::Accel::Uml,
        why: &chosen.why,
        instances: instances.len(),
        cells: cells.len(),
    });
    let started = std::time::Instant::now();
    let console = |line: &str| progress.event(Event::VmConsole(line));
    let opts = uml::Options {
        time_travel: settings.time_travel,
    };
    let runs = uml::run(&kernel.path, &ready.user, instances, opts, &console).await?;
    let mut joined: Option<Report> = None;
    let mut boot = std::time::Duration::ZERO;
    for (i, run) in runs.into_iter().enumerate() {
        boot = boot.max(run.boot);
        let mut report: Report = serde_json::from_value(run.report).map_err(|e| {
            BatchError::Vm(vm::VmError::Run(format!(
                "UML instance {}'s report: {e}",
                i + 1
            )))
        })?;
        bring_out(&uml::share(i), settings, &mut report)?;
        match &mut joined {
            None => joined = Some(report),
            Some(j) => {
                j.cells.extend(report.cells);
                j.peak_rss_kib = j.peak_rss_kib.max(report.peak_rss_kib);
            }
        }
    }
    let mut report = joined.ok_or_else(|| BatchError::Setting("no UML instance ran".into()))?;
    report.vm = Some(VmInfo {
        kernel: kernel.path.clone(),
        accel: vm::Accel::Uml,
        why: chosen.why.clone(),
        instances: groups.len(),
        virtual_time: settings.time_travel,
        boot_ms: boot.as_millis() as u64,
        total_ms: started.elapsed().as_millis() as u64,
    });
    Ok(report)
}

/// `cells` dealt round-robin into at most `n` groups: neighbours in a file
/// (often alike in cost) go to different instances.
fn split(cells: &[Cell], n: usize) -> Vec<Vec<&Cell>> {
    let n = n.min(cells.len()).max(1);
    let mut groups: Vec<Vec<&Cell>> = vec![Vec::new(); n];
    for (i, c) in cells.iter().enumerate() {
        groups[i % n].push(c);
    }
    groups
}

/// Copy the pcap files and logs instance `share` wrote to the user's
/// directories, and point the report at the copies.
fn bring_out(share: &Path, settings: &Settings, report: &mut Report) -> Result<(), BatchError> {
    for (flag, dir) in Outputs::of(settings) {
        let what = &flag[2..];
        let from = share.join(what);
        uml::bring_out(&from, dir).map_err(io_err("copy the guest's files to", dir))?;
        let guest = Path::new(uml::GUEST_SHARE).join(what);
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
