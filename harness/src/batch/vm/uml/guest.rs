//! Inside a UML guest: vpnlab is its init (PID 1). It mounts what the
//! guest writes on (the root is the host's, read-only), mounts the share,
//! runs `vpnlab run` with the job it finds in its instance's directory
//! there, writes the exit code next to the report, and powers the guest
//! off. No modprobe: the kernel has
//! everything built in.

use std::path::Path;
use std::process::Command;

use nix::mount::{mount, MsFlags};

/// The hidden subcommand the kernel starts init with.
pub const SUBCOMMAND: &str = "uml-guest";
/// The job file in the share.
pub const JOB: &str = "job.json";
/// The report file in the share.
pub const REPORT: &str = "report.json";
/// The exit code of the guest's run, in the share.
pub const EXIT: &str = "exit-code";

/// Why init could not do its work (printed on the console, which the host
/// shows when no report comes back).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A mount failed.
    #[error("cannot mount {what} on {at}: {source}")]
    Mount {
        /// What was mounted.
        what: String,
        /// Where.
        at: String,
        /// Why not.
        source: nix::Error,
    },
    /// The job could not be read or run.
    #[error("{0}")]
    Job(String),
}

/// Run as the guest's init for instance `instance`; `share` is the
/// share's host path (where this binary was started from). Never returns:
/// powers off.
pub fn init(share: &Path, instance: usize) -> ! {
    let dir = super::guest_dir(instance);
    let code = match run(share, &dir) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vpnlab uml-guest: {e}");
            125
        }
    };
    let _ = std::fs::write(dir.join(EXIT), format!("{code}\n"));
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // Not reached: UML exits on power-off.
    std::process::exit(code)
}

fn run(share: &Path, dir: &Path) -> Result<i32, InitError> {
    mounts(share)?;
    let text = std::fs::read_to_string(dir.join(JOB))
        .map_err(|e| InitError::Job(format!("cannot read the job: {e}")))?;
    let job: super::Job =
        serde_json::from_str(&text).map_err(|e| InitError::Job(format!("bad job: {e}")))?;
    let mut child = Command::new(Path::new(super::GUEST_SHARE).join("vpnlab"))
        .arg("run")
        .args(&job.args)
        .arg("--report")
        .arg(dir.join(REPORT))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/tmp")
        .envs(job.env)
        .current_dir("/tmp")
        .spawn()
        .map_err(|e| InitError::Job(format!("cannot start vpnlab run: {e}")))?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // As PID 1, reap every orphan until the run itself ends.
    loop {
        match nix::sys::wait::wait() {
            Ok(nix::sys::wait::WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
            Ok(nix::sys::wait::WaitStatus::Signaled(p, sig, _)) if p == pid => {
                return Ok(128 + sig as i32)
            }
            Ok(_) => {}
            Err(_) => return Ok(child.wait().map_or(125, |s| s.code().unwrap_or(125))),
        }
    }
}

/// tmpfs where the guest writes, the kernel's filesystems, and the share.
fn mounts(share: &Path) -> Result<(), InitError> {
    let m = |src: &str, at: &str, fstype: &str, data: Option<&str>| {
        let _ = std::fs::create_dir_all(at);
        match mount(Some(src), at, Some(fstype), MsFlags::empty(), data) {
            // devtmpfs may already be mounted by the kernel.
            Ok(()) | Err(nix::Error::EBUSY) => Ok(()),
            Err(source) => Err(InitError::Mount {
                what: format!("{fstype} {src}"),
                at: at.into(),
                source,
            }),
        }
    };
    m("proc", "/proc", "proc", None)?;
    m("sysfs", "/sys", "sysfs", None)?;
    m("devtmpfs", "/dev", "devtmpfs", None)?;
    m("devpts", "/dev/pts", "devpts", Some("ptmxmode=0666"))?;
    m("tmpfs", "/run", "tmpfs", Some("mode=0755"))?;
    m("tmpfs", "/var/log", "tmpfs", Some("mode=0755"))?;
    m("tmpfs", "/dev/shm", "tmpfs", Some("mode=1777"))?;
    // /tmp and /var/tmp: what the host has there stays visible (scenario
    // files may live there), and what the guest writes goes to tmpfs.
    for (at, name) in [("/tmp", "tmp"), ("/var/tmp", "var-tmp")] {
        let base = format!("/run/uml-overlay/{name}");
        m("tmpfs", &base, "tmpfs", Some("mode=0755"))?;
        let (upper, work) = (format!("{base}/upper"), format!("{base}/work"));
        for d in [&upper, &work] {
            let _ = std::fs::create_dir_all(d);
        }
        let _ =
            std::fs::set_permissions(&upper, std::os::unix::fs::PermissionsExt::from_mode(0o1777));
        let data = format!("lowerdir={at},upperdir={upper},workdir={work}");
        if m("overlay", at, "overlay", Some(&data)).is_err() {
            // A kernel without overlayfs (VPNLAB_UML_KERNEL): a plain tmpfs.
            eprintln!("vpnlab uml-guest: no overlay on {at}; the host's files there are hidden");
            m("tmpfs", at, "tmpfs", Some("mode=1777"))?;
        }
    }
    let host = share.to_string_lossy();
    m("none", super::GUEST_SHARE, "hostfs", Some(&host))
}
