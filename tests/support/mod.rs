//! Helpers of the scenario suite: privilege gating, running the binary and
//! reading its typed report. The cell tests, the VM batch and the flip
//! tests are in [`cells`]; the CLI, safety and pcap tests in their own
//! files.

pub mod browser;
pub mod builds;
pub mod cells;
pub mod cli;
pub mod layers;
pub mod pcap;
pub mod safety;
pub mod snapshots;
pub mod uml;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use libtest_mimic::{Failed, Trial};
use vpnlab::batch::Report;
use vpnlab::cell::CellReport;

/// A plain test function.
pub type TestFn = fn() -> Result<(), Failed>;

/// Whether privileged tests can run here.
pub enum Privilege {
    /// Root: run them.
    Yes,
    /// Not root: ignore them (or fail them, if required).
    No {
        /// `VPNLAB_REQUIRE_PRIVILEGED=1`.
        required: bool,
    },
}

impl Privilege {
    /// Apply the privilege policy to a privileged trial.
    pub fn gate(&self, t: Trial) -> Trial {
        match self {
            Privilege::Yes => t,
            Privilege::No { required: false } => t.with_ignored_flag(true),
            Privilege::No { required: true } => {
                let name = t.name().to_string();
                Trial::test(name, || {
                    Err("VPNLAB_REQUIRE_PRIVILEGED=1 but not running as root: this test needs root (network namespaces, veth, nftables)".into())
                })
            }
        }
    }
}

/// Whether `VPNLAB_REQUIRE_PRIVILEGED=1` asks for every test to run.
pub fn required() -> bool {
    std::env::var("VPNLAB_REQUIRE_PRIVILEGED").as_deref() == Ok("1")
}

/// Decide the privilege policy and say why tests are skipped.
pub fn privileged() -> Privilege {
    if nix::unistd::geteuid().is_root() {
        return Privilege::Yes;
    }
    if !required() {
        eprintln!(
            "note: not running as root: the privileged tests (every scenario cell, the safety tests) are ignored. \
             Run as root to run them; set VPNLAB_REQUIRE_PRIVILEGED=1 to make this a failure."
        );
    }
    Privilege::No {
        required: required(),
    }
}

/// The bundled scenarios.
pub fn topologies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies")
}

/// The accepted snapshots.
pub fn snapshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/snapshots")
}

/// Run the vpnlab binary with `args`.
pub fn run_vpnlab(args: &[&str]) -> Result<Output, Failed> {
    Command::new(env!("CARGO_BIN_EXE_vpnlab"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run vpnlab: {e}").into())
}

/// The typed JSON report `vpnlab run … --report -` printed.
pub fn report_of(out: &Output) -> Result<Report, Failed> {
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "no JSON report from vpnlab ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into()
    })
}

/// Run one cell through the CLI (`extra` before the file); its report
/// entry and the run's stderr.
pub fn run_cell_report(
    extra: &[&str],
    file: &Path,
    id: &str,
) -> Result<(CellReport, String), Failed> {
    let file = file.to_string_lossy();
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend([file.as_ref(), "--cell", id, "--report", "-"]);
    let out = run_vpnlab(&args)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut report = report_of(&out)?;
    if report.cells.len() != 1 {
        return Err(format!(
            "expected one cell in the report, got {}; stderr:\n{stderr}",
            report.cells.len()
        )
        .into());
    }
    Ok((report.cells.remove(0), stderr))
}

/// Run `f` in a fresh temporary directory, removed afterwards whatever
/// `f` returned.
pub fn in_tempdir<T>(f: impl FnOnce(&Path) -> Result<T, Failed>) -> Result<T, Failed> {
    let dir = tempdir()?;
    let result = f(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A fresh directory under the system's temporary directory.
pub fn tempdir() -> Result<PathBuf, Failed> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("vpnlab-test-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
