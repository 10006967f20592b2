//! The scenario suite: one named test per cell of every file in topologies/,
//! plus the flip, safety, CLI and snapshot tests. A `harness = false`
//! target on libtest-mimic so cargo-nextest can list, filter, retry and
//! partition the cells.
//!
//! Where a cell runs is the library's plan (`vpnlab::batch::plan`, the one
//! `vpnlab run --kernel-when-needed` follows): host cells are tests of their
//! own, VM cells (`vm::<cell>`) share one VM boot, and cells the plan
//! reports unsupported or skipped are listed as ignored, with a body that
//! checks the CLI reports them so. Each cell test runs the real `vpnlab`
//! binary on that one cell, then
//! 1. checks the verdict against the file's `expect` (independently of any
//!    snapshot, so an accepted snapshot can never hide a broken expectation);
//! 2. compares the normalized outcome (versions redacted) with its insta
//!    snapshot in tests/snapshots/ (review changes with `cargo insta
//!    review`; CI never writes snapshots).
//!
//! Privileged tests are ignored when not running as root, with the reason
//! printed; `VPNLAB_REQUIRE_PRIVILEGED=1` turns that into failures.

#![deny(unsafe_code)]

mod support;

use std::path::PathBuf;

use libtest_mimic::{Arguments, Failed, Trial};
use support::cells::{self, Source, VmBatch};
use support::{browser, cli, pcap, privileged, safety, topologies_dir, Privilege};
use vpnlab::batch::{self, Machine, Placement, Planned, VmPolicy};
use vpnlab::model::Verdict;

/// A file's cells, each with its placement (`None` when not root: no
/// probe, no plan).
type FileCells = (PathBuf, Vec<(vpnlab::model::Cell, Option<Placement>)>);

/// What the listing needs: the plan (as root), the VM batch's cells, and
/// whether VM mode is ready.
struct Listing {
    privilege: Privilege,
    /// Cells by file, placed.
    files: Vec<FileCells>,
    vm_error: Option<String>,
    batch: VmBatch,
}

impl Listing {
    fn new(trials: &mut Vec<Trial>) -> Listing {
        let privilege = privileged();
        let machine = matches!(privilege, Privilege::Yes).then(|| {
            let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
            rt.block_on(Machine::probe())
        });
        let machine = match machine {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                let msg = format!("cannot probe this machine: {e}");
                trials.push(Trial::test("machine::probe", move || Err(msg.into())));
                None
            }
            None => None,
        };
        let mut files = Vec::new();
        let paths =
            vpnlab::scenario::discover(&[topologies_dir()]).expect("topologies/ is readable");
        for file in paths {
            match vpnlab::scenario::load(&file) {
                Ok(s) => files.push((file, place(s.cells, machine.as_ref()))),
                Err(e) => {
                    let msg = e.to_string();
                    trials.push(Trial::test(
                        format!("load::{}", file.display()),
                        move || Err(msg.into()),
                    ));
                }
            }
        }
        let mut batch = VmBatch::default();
        for (file, cells) in &files {
            for (c, p) in cells {
                if *p == Some(Placement::Vm) {
                    batch.cells.push((file.clone(), c.id.clone()));
                }
            }
        }
        Listing {
            privilege,
            files,
            vm_error: machine.and_then(|m| m.vm.err().map(|e| e.to_string())),
            batch,
        }
    }

    fn placement(&self, id: &str) -> Option<&Placement> {
        self.files
            .iter()
            .flat_map(|(_, c)| c)
            .find(|(c, _)| c.id == id)
            .and_then(|(_, p)| p.as_ref())
    }
}

/// The plan `vpnlab run --kernel-when-needed auto` makes for `cells`.
fn place(
    cells: Vec<vpnlab::model::Cell>,
    machine: Option<&Machine>,
) -> Vec<(vpnlab::model::Cell, Option<Placement>)> {
    match machine {
        Some(m) => batch::plan(cells, m, &VmPolicy::WhenNeeded("auto".into()))
            .cells
            .into_iter()
            .map(|Planned { cell, placement }| (cell, Some(placement)))
            .collect(),
        None => cells.into_iter().map(|c| (c, None)).collect(),
    }
}

/// One trial per cell, as placed.
fn cell_trials(l: &Listing, trials: &mut Vec<Trial>) {
    for (file, cells) in &l.files {
        for (cell, placement) in cells {
            let (id, file) = (cell.id.clone(), file.clone());
            let trial = match placement {
                None | Some(Placement::Host) => {
                    l.privilege.gate(Trial::test(id.clone(), move || {
                        cells::run_cell_test(&file, &id)
                    }))
                }
                Some(Placement::Vm) => {
                    let batch = l.batch.clone();
                    // `vm::` in the name: these share one VM boot (filter
                    // them with -E 'test(/^vm::/)').
                    Trial::test(format!("vm::{id}"), move || {
                        cells::run_vm_cell_test(&id, &batch)
                    })
                }
                Some(Placement::Unsupported { reason, .. }) => {
                    not_here(id, file, Verdict::Unsupported, reason.clone())
                }
                Some(Placement::Skipped { reason }) if support::required() => {
                    let why = format!(
                        "{reason}; VM mode is not ready: {}",
                        l.vm_error.as_deref().unwrap_or("?")
                    );
                    Trial::test(id, move || Err(why.into()))
                }
                Some(Placement::Skipped { reason }) => {
                    not_here(id, file, Verdict::Skipped, reason.clone())
                }
            };
            trials.push(trial);
        }
    }
}

/// A cell the plan does not run here: visible as `ignored`, never as a
/// pass; run with `--ignored`, it checks that the CLI reports it so.
fn not_here(id: String, file: PathBuf, verdict: Verdict, reason: String) -> Trial {
    eprintln!(
        "cell {id} ignored: {}: {reason}",
        verdict.label().to_lowercase()
    );
    Trial::test(id.clone(), move || {
        cells::reported_as(&file, &id, verdict, &reason)
    })
    .with_ignored_flag(true)
}

/// Negative cells whose one change is not an axis of their file (a NAT64
/// prefix changes the synthesized address the initiator names too; a
/// route is no axis): the
/// negative cell, the partner's file (under topologies/), the partner, and
/// the change.
const CROSS_FILE_FLIPS: &[(&str, &str, &str, &str)] = &[
    (
        "nat64-well-known",
        "ipv6/nat64.toml",
        "nat64/nat_t=auto",
        "nat64_prefix=2001:db8:64::/96",
    ),
    // A route is no matrix axis.
    (
        "return-route",
        "diagnosis/return-route-fixed.toml",
        "return-route-fixed",
        "a default route on bob",
    ),
];

/// One test per pair of field or IPv6 cells where the negative cell flips to
/// positive when one matrix axis changes (`flip::` on the host, `vm::flip::`
/// for cells that run in the VM batch). A negative field cell without such a
/// partner is a failing test of its own.
fn flip_trials(l: &Listing, trials: &mut Vec<Trial>) {
    let dirs = ["field", "ipv6", "deploy", "diagnosis"].map(|d| topologies_dir().join(d));
    let flipped = |f: &std::path::Path| dirs.iter().any(|d| f.starts_with(d));
    for (file, cells) in l.files.iter().filter(|(f, _)| flipped(f)) {
        let cells: Vec<&vpnlab::model::Cell> = cells.iter().map(|(c, _)| c).collect();
        for neg in cells.iter().filter(|c| c.expect.is_negative()) {
            let partners: Vec<_> = cells
                .iter()
                .filter(|p| !p.expect.is_negative())
                .filter(|p| p.axes.iter().zip(&neg.axes).filter(|(a, b)| a != b).count() == 1)
                .collect();
            if let Some(&(_, file2, pos, change)) = CROSS_FILE_FLIPS.iter().find(|f| f.0 == neg.id)
            {
                trials.push(cross_file_flip(l, file, &neg.id, file2, pos, change));
                continue;
            }
            if partners.is_empty() {
                let id = neg.id.clone();
                trials.push(Trial::test(format!("flip::{id}"), move || {
                    Err(format!("{id} is a negative field cell with no cell that differs by one knob and passes").into())
                }));
            }
            for pos in partners {
                trials.push(flip_trial(l, file, neg, pos));
            }
        }
    }
}

/// A flip pair across two files; both cells run on the host.
fn cross_file_flip(
    l: &Listing,
    file: &std::path::Path,
    neg: &str,
    file2: &str,
    pos: &str,
    change: &str,
) -> Trial {
    let name = format!("flip::{neg} -> {change}");
    let (n, p) = (neg.to_string(), pos.to_string());
    let (a, b) = (file.to_path_buf(), topologies_dir().join(file2));
    let host = |id: &str| matches!(l.placement(id), None | Some(Placement::Host));
    if !host(neg) || !host(pos) {
        let why = format!("{neg} and {pos} must both run on the host");
        return Trial::test(name, move || Err(why.clone().into()));
    }
    l.privilege.gate(Trial::test(name, move || {
        cells::flip_across(&Source::Host(a.clone()), &n, &Source::Host(b.clone()), &p)
    }))
}

fn flip_trial(
    l: &Listing,
    file: &std::path::Path,
    neg: &vpnlab::model::Cell,
    pos: &vpnlab::model::Cell,
) -> Trial {
    let (axis, value) = pos
        .axes
        .iter()
        .zip(&neg.axes)
        .find(|(a, b)| a != b)
        .map(|(a, _)| a.clone())
        .unwrap_or_default();
    let (pn, pp) = (l.placement(&neg.id), l.placement(&pos.id));
    let in_vm = pn == Some(&Placement::Vm);
    let name = format!(
        "{}flip::{} -> {axis}={value}",
        if in_vm { "vm::" } else { "" },
        neg.id
    );
    let (n, p) = (neg.id.clone(), pos.id.clone());
    let fail = |why: String| move || -> Result<(), Failed> { Err(why.into()) };
    match (pn, pp) {
        // Not root: no plan; the host cells' gate applies.
        (None, _) | (_, None) => {
            let file = file.to_path_buf();
            l.privilege.gate(Trial::test(name, move || {
                cells::flip_test(&Source::Host(file.clone()), &n, &p)
            }))
        }
        (Some(Placement::Host), Some(Placement::Host)) => {
            let file = file.to_path_buf();
            Trial::test(name, move || {
                cells::flip_test(&Source::Host(file.clone()), &n, &p)
            })
        }
        (Some(Placement::Vm), Some(Placement::Vm)) => {
            let batch = l.batch.clone();
            Trial::test(name, move || cells::flip_test(&Source::Vm(batch.clone()), &n, &p))
        }
        // A cell that cannot run here: its own test says why (ignored);
        // so does this one, and run anyway it fails saying so.
        (Some(a @ (Placement::Unsupported { .. } | Placement::Skipped { .. })), _)
        | (_, Some(a @ (Placement::Unsupported { .. } | Placement::Skipped { .. }))) => {
            let why = format!("cannot run here: {a:?}");
            eprintln!("{name} ignored: {why}");
            let required = support::required() && matches!(a, Placement::Skipped { .. });
            Trial::test(name, fail(why)).with_ignored_flag(!required)
        }
        _ => Trial::test(
            name,
            fail(format!(
                "{n} and {p} differ in where they run (host or VM): a flip pair must run in one place"
            )),
        ),
    }
}

/// The privileged and plain tests beyond the cells.
fn other_trials(l: &Listing, trials: &mut Vec<Trial>) {
    let privileged_tests: [(&str, support::TestFn); 8] = [
        (
            "builds::strongswan_from_a_prefix_is_named_and_used",
            support::builds::strongswan_from_a_prefix,
        ),
        (
            "capture::pcap_files_agree_with_tshark",
            pcap::pcap_agrees_with_tshark,
        ),
        (
            "safety::sigkill_mid_cell_leaves_nothing",
            safety::sigkill_leaves_nothing,
        ),
        (
            "safety::host_namespace_untouched_by_a_run",
            safety::host_untouched,
        ),
        (
            "cli::unsupported_cells_are_reported_not_passed",
            cli::unsupported_reported,
        ),
        (
            "cli::failing_expectation_fails_the_run",
            cli::wrong_expectation_fails,
        ),
        (
            "cli::junit_validates_and_diff_names_cells_that_got_worse",
            cli::junit_and_diff,
        ),
        (
            "cli::a_terminal_gets_a_progress_bar",
            cli::progress_bar_on_a_terminal,
        ),
    ];
    for (name, test) in privileged_tests {
        trials.push(l.privilege.gate(Trial::test(name, test)));
    }
    browser_trials(l, trials);
    uml_trials(l, trials);
    trials.push(Trial::test(
        "cli::invalid_scenario_is_rejected_with_position",
        cli::invalid_rejected,
    ));
    trials.push(Trial::test(
        "layers::no_import_cycles",
        support::layers::no_import_cycles,
    ));
    trials.push(Trial::test(
        "cli::check_lists_every_bundled_cell",
        cli::check_lists_every_bundled_cell,
    ));
    trials.push(Trial::test(
        "cli::github_actions_example_holds",
        cli::github_actions_example_holds,
    ));
    let ids: Vec<String> = l
        .files
        .iter()
        .flat_map(|(_, c)| c.iter().map(|(c, _)| c.id.clone()))
        .collect();
    trials.push(Trial::test(
        "snapshots::no_diagnosis_contradicts_itself",
        support::snapshots::no_contradictions,
    ));
    trials.push(Trial::test(
        "snapshots::every_snapshot_belongs_to_a_cell",
        move || support::snapshots::none_unreferenced(&ids),
    ));
}

/// UML's safety tests (`vm::` in the name: they run with the VM phase).
/// Without UML ready they are ignored with the reason, or fail with
/// VPNLAB_REQUIRE_PRIVILEGED=1.
fn uml_trials(l: &Listing, trials: &mut Vec<Trial>) {
    let tests: [(&str, support::TestFn); 2] = [
        (
            "vm::uml::sigkill_leaves_no_uml_process",
            support::uml::sigkill_leaves_no_uml_process,
        ),
        (
            "vm::uml::guest_cannot_write_outside_its_share",
            support::uml::guest_cannot_write_outside_its_share,
        ),
    ];
    let missing = if matches!(l.privilege, Privilege::Yes) {
        support::uml::not_ready()
    } else {
        None
    };
    for (name, test) in tests {
        let t = Trial::test(name, test);
        trials.push(match &missing {
            None => l.privilege.gate(t),
            Some(why) if support::required() => {
                let why = format!("UML is not ready: {why}");
                Trial::test(name, move || Err(why.clone().into()))
            }
            Some(why) => {
                eprintln!("{name} ignored: UML is not ready: {why}");
                t.with_ignored_flag(true)
            }
        });
    }
}

/// The HTML report in headless Chromium: the host's seed cells, and the
/// VM batch's seed cells (with the VM cells: `vm::` in the name).
fn browser_trials(l: &Listing, trials: &mut Vec<Trial>) {
    let gate = |t: Trial| match browser::missing() {
        None => l.privilege.gate(t),
        Some(why) if support::required() => {
            let name = t.name().to_string();
            Trial::test(name, move || Err(why.into()))
        }
        Some(why) => {
            eprintln!("{} ignored: {why}", t.name());
            t.with_ignored_flag(true)
        }
    };
    trials.push(gate(Trial::test(
        "browser::html_report_in_chromium",
        browser::html_report_in_chromium,
    )));
    let name = "vm::browser::seed_vm_cells_in_chromium";
    if l.batch.cells.iter().any(|(_, id)| id.starts_with("seed-")) {
        let batch = l.batch.clone();
        trials.push(gate(Trial::test(name, move || {
            browser::vm_seed_report_in_chromium(&batch)
        })));
    } else if matches!(l.privilege, Privilege::Yes) {
        // Root, but the seed's VM cells are not placed in the VM: they are
        // skipped (VM mode not ready) or run here; their own tests say so.
        let why = format!(
            "the seed's VM cells do not run in the VM here: {}",
            l.vm_error.as_deref().unwrap_or("they run on the host")
        );
        eprintln!("{name} ignored: {why}");
        let required = support::required() && l.vm_error.is_some();
        trials.push(Trial::test(name, move || Err(why.into())).with_ignored_flag(!required));
    }
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    let listing = Listing::new(&mut trials);
    cell_trials(&listing, &mut trials);
    flip_trials(&listing, &mut trials);
    other_trials(&listing, &mut trials);
    libtest_mimic::run(&args, trials).exit();
}
