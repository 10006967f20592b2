//! UML's safety: a SIGKILL of vpnlab leaves no UML process, and a guest
//! cannot write host files outside its share even when it tries.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Failed;

use super::{in_tempdir, report_of, run_vpnlab};

/// Why UML tests cannot run here, if they cannot.
pub fn not_ready() -> Option<String> {
    vpnlab::batch::vm::uml::readiness(vpnlab::batch::vm::uml::kernel::Series::default())
        .err()
        .map(|e| e.to_string())
}

/// Host processes of UML's user.
fn uml_processes(uid: u32) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() == uid))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Result<(), Failed> {
    let deadline = Instant::now() + limit;
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}").into());
        }
        // Polling /proc: there is no event for "a process appeared".
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The instance a console line says finished a cell in, if it says so
/// (`  vm| [2] [3/8] PASS        kernel-esp/…`).
fn finished_in(line: &str) -> Option<String> {
    let rest = line.split_once("vm| [")?.1;
    let (instance, rest) = rest.split_once("] [")?;
    let (count, rest) = rest.split_once("] ")?;
    (count.contains('/') && rest.split_whitespace().next().is_some_and(|v| v == "PASS"))
        .then(|| instance.to_string())
}

/// SIGKILL vpnlab while two UML instances run cells: every UML host
/// process (one per guest address space) goes with it.
pub fn sigkill_leaves_no_uml_process() -> Result<(), Failed> {
    let user = vpnlab::batch::vm::uml::user()?;
    if !uml_processes(user.uid).is_empty() {
        return Err(format!("processes of {} already run before the test", user.name).into());
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_vpnlab"))
        .args([
            "run",
            "--kernel",
            "uml",
            "--jobs",
            "2",
            "topologies/kernel-esp.toml",
        ])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // Both guests booted and running cells: each guest's vpnlab said so,
    // and a cell has started in each.
    let stderr = child.stderr.take().ok_or("stderr not piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut finished = std::collections::BTreeSet::new();
    let started: Result<(), Failed> = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            // A finished cell line from each instance ("vm| [2] [3/8] PASS ...").
            Ok(l) => {
                if let Some(i) = finished_in(&l) {
                    finished.insert(i);
                    if finished.len() == 2 {
                        break Ok(());
                    }
                }
            }
            Err(_) => break Err("no cell finished in both UML instances within 60 s".into()),
        }
    };
    let seen = uml_processes(user.uid).len();
    child.kill()?; // SIGKILL
    child.wait()?;
    started?;
    let gone = wait_until("every UML process to end", Duration::from_secs(10), || {
        uml_processes(user.uid).is_empty()
    });
    if gone.is_err() {
        return Err(format!(
            "{} UML processes of {} left after SIGKILL (of {seen} running): {:?}",
            uml_processes(user.uid).len(),
            user.name,
            uml_processes(user.uid)
        )
        .into());
    }
    Ok(())
}

/// A guest's root tries to write host files: through the read-only root,
/// and through hostfs mounts of its own (which guest root may make). Every
/// try is denied, no file appears on the host, and the control, a write
/// into the share, succeeds.
pub fn guest_cannot_write_outside_its_share() -> Result<(), Failed> {
    in_tempdir(|dir| {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/uml-escape");
        // The scenario in /tmp (which the guest sees through its overlay),
        // the target outside the guest's tmpfs and overlays, wherever the
        // checkout is (under /tmp, a write to the target through the root
        // would land in the guest's own overlay, not on the host): in
        // vpnlab's cache directory, which the guest sees read-only.
        let scen = dir.join("scenario");
        let target = Path::new("/var/cache/vpnlab")
            .join(format!("uml-escape-target-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&target);
        std::fs::create_dir_all(&scen)?;
        std::fs::create_dir_all(&target)?;
        for f in ["escape.toml", "start"] {
            std::fs::copy(fixture.join(f), scen.join(f))?;
        }
        std::fs::write(scen.join("target"), target.to_string_lossy().as_bytes())?;
        let toml = scen.join("escape.toml");
        let out = run_vpnlab(&[
            "run",
            "--kernel",
            "uml",
            &toml.to_string_lossy(),
            "--report",
            "-",
        ])?;
        let report = report_of(&out)?;
        let reason = report
            .cells
            .iter()
            .filter_map(|c| c.outcome.reason.clone())
            .collect::<Vec<_>>()
            .join("\n");
        for line in [
            "escape root-etc: denied",
            "escape root-target: denied",
            "mount target: ok",
            "escape mounted-target: denied",
            "mount root: ok",
            "escape mounted-etc: denied",
            "escape share: WRITTEN",
            "escape attempts done",
        ] {
            if !reason.contains(line) {
                return Err(format!("the guest's attempts did not say {line:?}:\n{reason}").into());
            }
        }
        let left: Vec<_> = std::fs::read_dir(&target)?.filter_map(Result::ok).collect();
        let _ = std::fs::remove_dir_all(&target);
        if !left.is_empty() || Path::new("/etc/vpnlab-uml-escape").exists() {
            return Err(format!("the guest wrote host files: {left:?}").into());
        }
        Ok(())
    })
}
