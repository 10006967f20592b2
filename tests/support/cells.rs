//! Cell tests: a cell's verdict against its `expect`, then its snapshot;
//! the shared VM batch; cells reported unsupported or skipped as planned;
//! flip tests between a negative cell and its partner one knob away.

use std::path::{Path, PathBuf};

use libtest_mimic::Failed;
use vpnlab::batch::Report;
use vpnlab::cell::CellReport;
use vpnlab::model::{CheckExpect, TunnelExpect, Verdict, WaitExpect};
use vpnlab::outcome::Outcome;

use super::{run_cell_report, run_vpnlab, snapshots_dir};

/// A host cell test: verdict against `expect`, then the snapshot.
pub fn run_cell_test(file: &Path, id: &str) -> Result<(), Failed> {
    let (cell, stderr) = run_cell_report(&[], file, id)?;
    judge_cell(id, &cell, &stderr)
}

/// A cell that needs kernel features this host lacks, from the shared VM
/// batch.
pub fn run_vm_cell_test(id: &str, batch: &VmBatch) -> Result<(), Failed> {
    let report = batch.report()?;
    let cell = find(&report, id)?;
    judge_cell(
        id,
        cell,
        "(ran in the VM batch; its console is in the failing test's output)",
    )
}

fn find<'a>(report: &'a Report, id: &str) -> Result<&'a CellReport, Failed> {
    report
        .cells
        .iter()
        .find(|c| c.outcome.cell == id)
        .ok_or_else(|| format!("cell {id} is missing from the report").into())
}

/// Check a cell's report entry: verdict, then snapshot (versions redacted).
fn judge_cell(id: &str, cell: &CellReport, stderr: &str) -> Result<(), Failed> {
    let verdict = cell.outcome.verdict;
    // Through a JSON value: its maps are sorted, so snapshots list fields
    // alphabetically whatever the struct order.
    let outcome = serde_json::to_value(cell.outcome.redacted())?;
    let snapshot = std::panic::catch_unwind(|| {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(snapshots_dir());
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.set_description(format!("vpnlab outcome of cell {id}"));
        settings.bind(|| insta::assert_yaml_snapshot!(snapshot_name(id), outcome));
    });
    if verdict != Verdict::Pass {
        return Err(format!(
            "cell {id}: verdict {}, expected pass; mismatches: {:?}\n{stderr}",
            verdict.label(),
            cell.outcome.mismatches
        )
        .into());
    }
    cause_leads(id, &cell.outcome)?;
    snapshot.map_err(|_| {
        Failed::from(format!(
            "cell {id}: outcome differs from its snapshot (see above; `cargo insta review`)"
        ))
    })
}

/// A cell that states its cause: it was classified so (the verdict says
/// that much), and the first "why" line of the reports names it.
fn cause_leads(id: &str, o: &Outcome) -> Result<(), Failed> {
    let Some(want) = o.expected.cause else {
        return Ok(());
    };
    let why = vpnlab::report::why(o);
    let first = why.first().map(String::as_str).unwrap_or("");
    if !first.starts_with(&format!("cause {want}: ")) {
        return Err(
            format!("cell {id}: the first why line does not name cause {want}: {first:?}").into(),
        );
    }
    Ok(())
}

/// The snapshot file's name (without `.snap`) of a cell.
pub fn snapshot_name(id: &str) -> String {
    id.replace('/', "__")
}

/// A cell the plan did not place here: `vpnlab run --kernel-when-needed`
/// must report it with this verdict and the plan's reason (and nothing
/// else: no cell runs).
pub fn reported_as(file: &Path, id: &str, verdict: Verdict, reason: &str) -> Result<(), Failed> {
    let (cell, stderr) = run_cell_report(&["--kernel-when-needed", "auto"], file, id)?;
    let o = &cell.outcome;
    if o.verdict != verdict || o.reason.as_deref() != Some(reason) {
        return Err(format!(
            "cell {id}: expected {} ({reason}), got {} ({:?})\n{stderr}",
            verdict.label(),
            o.verdict.label(),
            o.reason
        )
        .into());
    }
    Ok(())
}

/// Every cell placed in the VM, run once per test run in one VM boot
/// (`vpnlab run --kernel auto`), shared by their tests through a file
/// under the target directory, guarded by a lock: nextest runs each test in
/// its own process.
#[derive(Clone, Default)]
pub struct VmBatch {
    /// (file, cell) of every cell of the batch.
    pub cells: Vec<(PathBuf, String)>,
}

impl VmBatch {
    fn paths() -> (PathBuf, PathBuf, PathBuf, PathBuf) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        // One batch per test run: nextest gives all its processes a run id.
        let run =
            std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| std::process::id().to_string());
        (
            dir.join("vm-batch.lock"),
            dir.join(format!("vm-batch-{run}.json")),
            dir.join(format!("vm-batch-{run}.error")),
            dir.join(format!("vm-batch-{run}.started")),
        )
    }

    /// The batch's report, running the batch if no test has yet.
    pub fn report(&self) -> Result<Report, Failed> {
        use nix::fcntl::{Flock, FlockArg};
        let (lock, cache, error, started) = Self::paths();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)?;
        let _guard = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("cannot lock {}: {e}", lock.display()))?;
        if !cache.exists() && !error.exists() {
            if started.exists() {
                // The test that ran the batch was killed (a timeout): say
                // so instead of booting again for every test.
                std::fs::write(&error, "the VM batch was interrupted (its test timed out?); see the first vm:: test's output")?;
            } else {
                std::fs::write(&started, "")?;
                self.run(&cache, &error)?;
            }
        }
        if let Ok(e) = std::fs::read_to_string(&error) {
            return Err(e.into());
        }
        Ok(serde_json::from_str(&std::fs::read_to_string(&cache)?)?)
    }

    fn run(&self, cache: &Path, error: &Path) -> Result<(), Failed> {
        // Earlier runs' results are stale.
        if let Ok(d) = std::fs::read_dir(cache.parent().ok_or("no cache dir")?) {
            for e in d.filter_map(Result::ok) {
                if e.file_name().to_string_lossy().starts_with("vm-batch-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let mut args: Vec<String> = ["run", "--kernel", "auto", "--jobs", "2"]
            .map(String::from)
            .to_vec();
        args.extend(vpnlab::batch::selection_args(
            self.cells.iter().map(|(f, id)| (f.as_path(), id.as_str())),
        )?);
        // Written elsewhere and moved into place once complete: vpnlab
        // creates the report file before it runs anything.
        let partial = cache.with_extension("partial");
        args.extend(["--report".into(), partial.to_string_lossy().into_owned()]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_vpnlab(&argv)?;
        let complete = std::fs::read(&partial)
            .ok()
            .is_some_and(|b| serde_json::from_slice::<Report>(&b).is_ok());
        if complete {
            std::fs::rename(&partial, cache)?;
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        } else {
            let msg = format!(
                "the VM batch produced no report (exit {:?}):\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(error, msg)?;
        }
        Ok(())
    }
}

/// What an outcome observed as failed: `tunnel`, `check <name>`, `wait
/// <name>`.
fn failures(o: &Outcome) -> Vec<String> {
    let mut f = Vec::new();
    if o.tunnel == Some(TunnelExpect::Down) {
        f.push("tunnel".to_string());
    }
    let step_checks = o.steps.iter().flat_map(|s| &s.checks);
    for c in o.checks.iter().chain(step_checks) {
        if c.result == CheckExpect::Fail {
            f.push(format!("check {}", c.name));
        }
    }
    for s in &o.steps {
        if s.wait == Some(WaitExpect::Timeout) {
            f.push(format!("wait {}", s.name));
        }
    }
    f
}

/// Where a flip test gets a cell's outcome from.
pub enum Source {
    /// Run it here.
    Host(PathBuf),
    /// Take it from the shared VM batch.
    Vm(VmBatch),
}

impl Source {
    fn outcome(&self, id: &str) -> Result<Outcome, Failed> {
        match self {
            Source::Host(file) => Ok(run_cell_report(&[], file, id)?.0.outcome),
            Source::Vm(batch) => Ok(find(&batch.report()?, id)?.outcome.clone()),
        }
    }
}

/// A flip test: the negative cell fails for the stated reason (its verdict
/// passes and it observed failures), and the cell that differs from it only
/// by one knob observes none of them.
pub fn flip_test(src: &Source, negative_id: &str, positive_id: &str) -> Result<(), Failed> {
    flip_across(src, negative_id, src, positive_id)
}

/// A flip test whose two cells come from different sources (files): the
/// one change is one the file model cannot put on an axis.
pub fn flip_across(
    neg_src: &Source,
    negative_id: &str,
    pos_src: &Source,
    positive_id: &str,
) -> Result<(), Failed> {
    let neg = neg_src.outcome(negative_id)?;
    let pos = pos_src.outcome(positive_id)?;
    for (id, o) in [(negative_id, &neg), (positive_id, &pos)] {
        if o.verdict != Verdict::Pass {
            return Err(format!(
                "cell {id}: verdict {}, expected pass; mismatches: {:?}",
                o.verdict.label(),
                o.mismatches
            )
            .into());
        }
    }
    let (fneg, fpos) = (failures(&neg), failures(&pos));
    if fneg.is_empty() {
        return Err(format!("{negative_id} observed no failure: nothing to flip").into());
    }
    if !fpos.is_empty() {
        return Err(format!(
            "{positive_id} still observes failures after the one change: {}",
            fpos.join(", ")
        )
        .into());
    }
    eprintln!(
        "{negative_id}: {} failed; {positive_id}: all pass",
        fneg.join(", ")
    );
    Ok(())
}
