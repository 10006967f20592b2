//! The scenario suite: one named test per cell of every file in topologies/,
//! plus the safety and CLI tests. A `harness = false` target on libtest-mimic
//! so cargo-nextest can list, filter, retry and partition the cells.
//!
//! Each cell test runs the real `vpnlab` binary on that one cell, then
//! 1. checks the verdict against the file's `expect` (independently of any
//!    snapshot, so an accepted snapshot can never hide a broken expectation);
//! 2. compares the normalized outcome with its insta snapshot in
//!    tests/snapshots/ (review changes with `cargo insta review`; CI never
//!    writes snapshots).
//!
//! Privileged tests are ignored when not running as root, with the reason
//! printed; `VPNLAB_REQUIRE_PRIVILEGED=1` turns that into failures.

mod support;

use libtest_mimic::{Arguments, Trial};
use support::{privileged, run_vpnlab, topologies_dir};

/// Whether the cell needs a kernel feature this host lacks (so it runs in
/// the VM batch), decided as `vpnlab run` would.
fn needs_vm(cell: &vpnlab::scenario::Cell, esp: bool) -> bool {
    !vpnlab::cell::missing_features(cell, esp).is_empty()
}

/// One test per pair of field cells where the negative cell flips to
/// positive when one matrix axis changes (`flip::` on the host, `vm::flip::`
/// for cells that run in the VM batch). A negative field cell without such a
/// partner is a failing test of its own.
fn flip_tests(
    trials: &mut Vec<Trial>,
    privilege: &support::Privilege,
    machine: Option<(vpnlab::stack::Backend, bool)>,
    vm_ready: &Result<(std::path::PathBuf, std::path::PathBuf), vpnlab::batch::vm::VmError>,
    batch: &std::sync::Arc<std::sync::Mutex<support::VmBatch>>,
) {
    let field = topologies_dir().join("field");
    let files = vpnlab::scenario::discover(&[field]).unwrap_or_default();
    for file in files {
        let Ok(scenario) = vpnlab::scenario::load(&file) else {
            continue; // reported by load::
        };
        let cells = &scenario.cells;
        for neg in cells.iter().filter(|c| support::negative(&c.expect)) {
            let partners: Vec<_> = cells
                .iter()
                .filter(|p| !support::negative(&p.expect))
                .filter(|p| p.axes.iter().zip(&neg.axes).filter(|(a, b)| a != b).count() == 1)
                .collect();
            if partners.is_empty() {
                let id = neg.id.clone();
                trials.push(Trial::test(format!("flip::{id}"), move || {
                    Err(format!("{id} is a negative field cell with no cell that differs by one knob and passes").into())
                }));
            }
            for pos in partners {
                let (axis, value) = pos
                    .axes
                    .iter()
                    .zip(&neg.axes)
                    .find(|(a, b)| a != b)
                    .map(|(a, _)| a.clone())
                    .expect("one axis differs");
                let vm = |c| machine.is_some_and(|(_, esp)| needs_vm(c, esp));
                let in_vm = vm(neg);
                // A stack that cannot express either cell here: the cells'
                // own tests say so (ignored); so does this one.
                let unsupported = machine.and_then(|(default, _)| {
                    [neg, pos].into_iter().find_map(|c| {
                        let b = c.backend.unwrap_or(default);
                        c.endpoints
                            .iter()
                            .find_map(|e| vpnlab::stack::unsupported(e, b))
                    })
                });
                let name = format!(
                    "{}flip::{} -> {axis}={value}",
                    if in_vm { "vm::" } else { "" },
                    neg.id
                );
                let (n, p) = (neg.id.clone(), pos.id.clone());
                if let Some(why) = unsupported {
                    eprintln!("{name} ignored: unsupported: {why}");
                    trials.push(Trial::test(name, || Ok(())).with_ignored_flag(true));
                    continue;
                }
                if in_vm != vm(pos) {
                    trials.push(Trial::test(name, move || {
                        Err(format!("{n} and {p} differ in where they run (host or VM): a flip pair must run in one place").into())
                    }));
                    continue;
                }
                if in_vm {
                    if vm_ready.is_err() {
                        trials.push(Trial::test(name, || Ok(())).with_ignored_flag(true));
                        continue;
                    }
                    let batch = batch.clone();
                    trials.push(Trial::test(name, move || {
                        let b = support::VmBatch {
                            cells: batch.lock().expect("batch").cells.clone(),
                        };
                        support::flip_test(&support::Source::Vm(b), &n, &p)
                    }));
                } else {
                    let file = file.clone();
                    trials.push(privilege.gate(Trial::test(name, move || {
                        support::flip_test(&support::Source::Host(file.clone()), &n, &p)
                    })));
                }
            }
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    let privilege = privileged();
    let machine = support::machine(&privilege);
    let mut trials = Vec::new();

    let vm_ready = vpnlab::batch::vm::readiness();
    let require = std::env::var("VPNLAB_REQUIRE_PRIVILEGED").as_deref() == Ok("1");
    let batch = std::sync::Arc::new(std::sync::Mutex::new(support::VmBatch { cells: vec![] }));
    let files = vpnlab::scenario::discover(&[topologies_dir()]).expect("topologies/ is readable");
    for file in files {
        let scenario = match vpnlab::scenario::load(&file) {
            Ok(s) => s,
            Err(e) => {
                let msg = e.to_string();
                trials.push(Trial::test(
                    format!("load::{}", file.display()),
                    move || Err(msg.into()),
                ));
                continue;
            }
        };
        for cell in scenario.cells {
            // Why this cell cannot run here, decided as `vpnlab run` would.
            let not_here: Vec<String> = machine
                .and_then(|(default, esp)| {
                    let b = cell.backend.unwrap_or(default);
                    let mut r: Vec<String> = cell
                        .endpoints
                        .iter()
                        .filter_map(|e| vpnlab::stack::unsupported(e, b))
                        .map(|r| format!("unsupported: {r}"))
                        .collect();
                    if needs_vm(&cell, esp) {
                        match &vm_ready {
                            // Runs in the VM batch instead (see below).
                            Ok(_) => {}
                            Err(e) if require => r.push(format!("fail: needs kernel ESP or PPP and VM mode is not ready: {e}")),
                            Err(e) => r.push(format!("skipped: needs kernel ESP or PPP, which this kernel lacks, and VM mode is not ready: {e}")),
                        }
                    }
                    (!r.is_empty()).then_some(r)
                })
                .unwrap_or_default();
            let id = cell.id.clone();
            let file = file.clone();
            let in_vm = machine.is_some_and(|(_, esp)| needs_vm(&cell, esp)) && vm_ready.is_ok();
            if in_vm && not_here.is_empty() {
                // `vm::` in the name: these share one VM boot (filter them
                // with -E 'test(/^vm::/)').
                batch
                    .lock()
                    .expect("batch")
                    .cells
                    .push((file.clone(), id.clone()));
                let batch = batch.clone();
                trials.push(Trial::test(format!("vm::{id}"), move || {
                    let b = support::VmBatch {
                        cells: batch.lock().expect("batch").cells.clone(),
                    };
                    support::run_vm_cell_test(&id, &b)
                }));
                continue;
            }
            if let Some(why) = not_here.iter().find(|r| r.starts_with("fail: ")) {
                let why = why.clone();
                trials.push(Trial::test(id, move || Err(why.into())));
                continue;
            }
            let trial = Trial::test(id.clone(), move || support::run_cell_test(&file, &id));
            if !not_here.is_empty() {
                // Visible as `ignored`, never as a pass; the run itself
                // reports it UNSUPPORTED or SKIPPED (tested by cli::*).
                eprintln!("cell {} ignored: {}", cell.id, not_here[0]);
                trials.push(trial.with_ignored_flag(true));
            } else {
                trials.push(privilege.gate(trial));
            }
        }
    }

    flip_tests(&mut trials, &privilege, machine, &vm_ready, &batch);

    let privileged_tests: [(&str, support::TestFn); 5] = [
        (
            "capture::pcap_files_agree_with_tshark",
            support::pcap_agrees_with_tshark,
        ),
        (
            "safety::sigkill_mid_cell_leaves_nothing",
            support::sigkill_leaves_nothing,
        ),
        (
            "safety::host_namespace_untouched_by_a_run",
            support::host_untouched,
        ),
        (
            "cli::unsupported_cells_are_reported_not_passed",
            support::unsupported_reported,
        ),
        (
            "cli::failing_expectation_fails_the_run",
            support::wrong_expectation_fails,
        ),
    ];
    for (name, test) in privileged_tests {
        trials.push(privilege.gate(Trial::test(name, test)));
    }
    trials.push(Trial::test(
        "cli::invalid_scenario_is_rejected_with_position",
        support::invalid_rejected,
    ));
    trials.push(Trial::test("cli::check_lists_every_bundled_cell", || {
        let out = run_vpnlab(&["check"])?;
        if !out.status.success() {
            return Err(format!(
                "vpnlab check failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains("seed/nat=masquerade,nat_t=auto") {
            return Err(format!("cell list misses the seed cells:\n{text}").into());
        }
        Ok(())
    }));

    libtest_mimic::run(&args, trials).exit();
}
