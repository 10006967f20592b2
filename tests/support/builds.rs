//! Testing one's own build: a second strongSwan installation, Debian's
//! files copied into another prefix (as `make install DESTDIR=PREFIX` lays
//! out a build from source), run through `VPNLAB_STRONGSWAN`. The report
//! and `vpnlab doctor` name that prefix, and the copy's plugins are the
//! ones charon loads: without its `kdf` plugin, the same cell fails.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use libtest_mimic::Failed;
use vpnlab::model::{TunnelExpect, Verdict};

use super::{in_tempdir, report_of};

const CELL: &str = "seed/nat=masquerade,nat_t=auto";

/// vpnlab with `VPNLAB_STRONGSWAN=prefix`.
fn with_prefix(prefix: &Path, args: &[&str]) -> Result<Output, Failed> {
    Command::new(env!("CARGO_BIN_EXE_vpnlab"))
        .args(args)
        .env("VPNLAB_STRONGSWAN", prefix)
        .env_remove("VPNLAB_CHARON")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run vpnlab: {e}").into())
}

pub fn strongswan_from_a_prefix() -> Result<(), Failed> {
    in_tempdir(strongswan_in)
}

fn strongswan_in(prefix: &Path) -> Result<(), Failed> {
    std::fs::create_dir_all(prefix.join("usr/lib"))?;
    let cp = Command::new("cp")
        .args(["-a", "/usr/lib/ipsec"])
        .arg(prefix.join("usr/lib/"))
        .status()?;
    if !cp.success() {
        return Err("cannot copy /usr/lib/ipsec (is strongSwan installed? ci/setup.sh)".into());
    }
    let charon = prefix.join("usr/lib/ipsec/charon").display().to_string();
    let doctor = with_prefix(prefix, &["doctor"])?;
    let text = String::from_utf8_lossy(&doctor.stdout);
    if !text.contains(&charon) || !text.contains("VPNLAB_STRONGSWAN=") {
        return Err(format!("doctor does not name the prefix's charon {charon}:\n{text}").into());
    }
    let run = [
        "run",
        "topologies/seed.toml",
        "--cell",
        CELL,
        "--report",
        "-",
    ];
    let report = report_of(&with_prefix(prefix, &run)?)?;
    let cell = report.cells.first().ok_or("no cell in the report")?;
    if cell.outcome.verdict != Verdict::Pass {
        return Err(format!("{CELL} with the copy: {:?}", cell.outcome.mismatches).into());
    }
    for e in &cell.outcome.endpoints {
        let named = e.build.as_deref() == Some(charon.as_str());
        if !named || !e.stack.starts_with("strongSwan ") || e.version.is_none() {
            return Err(format!("{}: build {:?}, stack {}", e.node, e.build, e.stack).into());
        }
    }
    // The copy's plugins, not the system's: take one charon needs away.
    std::fs::remove_file(prefix.join("usr/lib/ipsec/plugins/libstrongswan-kdf.so"))?;
    let report = report_of(&with_prefix(prefix, &run)?)?;
    let o = &report.cells.first().ok_or("no cell in the report")?.outcome;
    if o.verdict == Verdict::Pass || o.tunnel == Some(TunnelExpect::Up) {
        return Err("without the prefix's kdf plugin the tunnel still came up: the system's plugins were loaded".into());
    }
    Ok(())
}
