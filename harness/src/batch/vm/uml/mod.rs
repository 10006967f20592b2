//! The UML way of `--kernel`: vpnlab's own User-Mode Linux kernel
//! ([`kernel`]) runs as an ordinary host process. Its instructions run
//! natively, it needs no /dev/kvm, and it boots in a fraction of a second.
//!
//! Each instance is one host process tree, run as an unprivileged host user
//! (hostfs does every file access with that user's rights: that is the
//! boundary, since guest root can mount any host path). The guest's root is
//! the host's, read-only; its init ([`guest`]) puts tmpfs where the guest
//! writes, and mounts one read-write directory, the share, through which
//! the job goes in and the report, pcap files and logs come out (each
//! instance under its own number).
//!
//! A UML guest has one CPU, so `--jobs N` runs N instances. They take the
//! cells from one queue: each instance claims a cell in the share's
//! `claims` directory before it runs it, so an instance that drew short
//! cells takes more of them.

pub mod guest;
pub mod kernel;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Console, Guest, VmError, VmRun};

/// The host user UML runs as, unless `VPNLAB_UML_USER` says otherwise.
pub const USER: &str = "vpnlab-uml";
/// Setting for another user.
pub const USER_ENV: &str = "VPNLAB_UML_USER";
/// Where a guest sees the share.
pub const GUEST_SHARE: &str = "/tmp/vpnlab-uml";
/// The share's directory in which the instances claim cells.
pub const CLAIMS: &str = "claims";
/// Memory of one instance (only what the guest touches is used).
const MEMORY: &str = "mem=1536M";

/// The unprivileged host user UML runs as.
#[derive(Debug, Clone)]
pub struct UmlUser {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Its groups (dip among them, for pppd).
    pub groups: Vec<u32>,
}

/// The command that creates the default user.
pub fn create_user_command(name: &str) -> String {
    format!("useradd --system --no-create-home --shell /usr/sbin/nologin --groups dip {name}")
}

/// Look up UML's user.
pub fn user() -> Result<UmlUser, VmError> {
    let name = std::env::var(USER_ENV).unwrap_or_else(|_| USER.to_string());
    let missing = || VmError::UmlUser {
        user: name.clone(),
        create: create_user_command(&name),
    };
    let u = nix::unistd::User::from_name(&name)
        .ok()
        .flatten()
        .ok_or_else(missing)?;
    if u.uid.is_root() {
        return Err(VmError::Setting(format!(
            "{USER_ENV}={name}: UML must not run as root (guest root could then write any host file)"
        )));
    }
    let cname = std::ffi::CString::new(name.clone()).map_err(|_| missing())?;
    let groups = nix::unistd::getgrouplist(&cname, u.gid)
        .map_err(|e| VmError::Setting(format!("groups of {name}: {e}")))?;
    Ok(UmlUser {
        name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        groups: groups.iter().map(|g| g.as_raw()).collect(),
    })
}

/// What UML needs, found (the kernel may still have to be built).
#[derive(Debug, Clone)]
pub struct Ready {
    /// Its user.
    pub user: UmlUser,
    /// Its kernel, or the build that makes it.
    pub kernel: Result<kernel::Built, kernel::ToBuild>,
}

/// Whether UML can run here: its user exists and its kernel (of
/// `series`) is built or buildable.
pub fn readiness(series: kernel::Series) -> Result<Ready, VmError> {
    let user = user()?;
    let kernel = kernel::find(series)?;
    if kernel.is_err() {
        for tool in ["make", "gcc", "bc", "flex", "bison", "strip"] {
            if !on_path(tool) {
                return Err(VmError::Missing {
                    what: format!("{tool} (to build the UML kernel)"),
                    install: series.install(),
                });
            }
        }
    }
    Ok(Ready { user, kernel })
}

fn on_path(prog: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(prog).is_file())
}

/// What the guest's init runs: `vpnlab run ARGS`, with this environment.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    /// `vpnlab run`'s arguments (the report's place is added by init).
    pub args: Vec<String>,
    /// The guest vpnlab's environment.
    pub env: Vec<(String, String)>,
}

/// One instance's work.
pub struct Instance {
    /// `vpnlab run` arguments (cells, --jobs, --claims, --pcap/--logs in
    /// its directory of the share).
    pub args: Vec<String>,
}

/// How the instances run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// UML's virtual clock (`time-travel=inf-cpu`).
    pub time_travel: bool,
}

/// The share on the host (in the run's private /run).
pub fn share() -> PathBuf {
    Path::new(crate::batch::sandbox::WORKDIR).join("uml")
}

/// Instance `i`'s directory in the share, on the host.
pub fn instance_dir(i: usize) -> PathBuf {
    share().join(i.to_string())
}

/// Instance `i`'s directory in the share, as its guest sees it.
pub fn guest_dir(i: usize) -> PathBuf {
    Path::new(GUEST_SHARE).join(i.to_string())
}

/// Run every instance at once; each one's run, in order. Whatever the
/// guest wrote under its share (pcap files, logs) is left there for the
/// caller to move.
pub async fn run(
    kernel: &Path,
    user: &UmlUser,
    instances: Vec<Instance>,
    opts: Options,
    console: &(dyn Fn(&str) + Sync),
) -> Result<Vec<VmRun>, VmError> {
    prepare_share(user, instances.len())?;
    let several = instances.len() > 1;
    let runs = instances.into_iter().enumerate().map(|(i, inst)| {
        let prefix = if several {
            format!("[{}] ", i + 1)
        } else {
            String::new()
        };
        run_one(kernel, user, i, inst, opts, prefix, console)
    });
    futures::future::join_all(runs).await.into_iter().collect()
}

fn io_err(what: &str, p: &Path, e: std::io::Error) -> VmError {
    VmError::Run(format!("cannot {what} {}: {e}", p.display()))
}

/// A fresh directory owned by UML's user.
fn fresh_dir(d: &Path, user: &UmlUser) -> Result<(), VmError> {
    let _ = std::fs::remove_dir_all(d);
    std::fs::create_dir_all(d).map_err(|e| io_err("create", d, e))?;
    std::os::unix::fs::chown(d, Some(user.uid), Some(user.gid)).map_err(|e| io_err("chown", d, e))
}

/// The share: a copy of this binary (the user may not be able to read
/// ours), the empty claims directory and one directory per instance.
fn prepare_share(user: &UmlUser, instances: usize) -> Result<(), VmError> {
    let root = share();
    fresh_dir(&root, user)?;
    fresh_dir(&root.join(CLAIMS), user)?;
    for i in 0..instances {
        fresh_dir(&instance_dir(i), user)?;
    }
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| io_err("find", Path::new("/proc/self/exe"), e))?;
    let copy = root.join("vpnlab");
    std::fs::copy(&exe, &copy).map_err(|e| io_err("copy vpnlab to", &copy, e))?;
    Ok(())
}

/// Instance `i`'s job in its directory, and UML's own scratch directory.
fn prepare(i: usize, user: &UmlUser, job: &Job) -> Result<(PathBuf, PathBuf), VmError> {
    let dir = instance_dir(i);
    let scratch = Path::new(crate::batch::sandbox::WORKDIR).join(format!("uml-{i}.scratch"));
    fresh_dir(&scratch, user)?;
    let text = serde_json::to_string(job).map_err(|e| VmError::Run(e.to_string()))?;
    let jf = dir.join(guest::JOB);
    std::fs::write(&jf, text).map_err(|e| io_err("write", &jf, e))?;
    Ok((dir, scratch))
}

/// The `linux` command for instance `i`.
fn command(
    kernel: &Path,
    user: &UmlUser,
    scratch: &Path,
    i: usize,
    opts: Options,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(kernel);
    cmd.args([
        MEMORY,
        "rootfstype=hostfs",
        "rootflags=/",
        "ro",
        // Output only: the guest's console is its stdout.
        "con0=null,fd:1",
        "con=null",
        "quiet",
    ]);
    cmd.arg(format!("umid=vpnlab-{i}"))
        .arg(format!("uml_dir={}", scratch.display()))
        .arg(format!("init={}", share().join("vpnlab").display()));
    if opts.time_travel {
        cmd.arg("time-travel=inf-cpu");
    }
    // Arguments after `--` go to init.
    cmd.args(["--", guest::SUBCOMMAND, &i.to_string()]);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        // UML's memory file; deleted by UML as soon as it is mapped.
        .env("TMPDIR", scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    crate::sys::pre_exec_as_user(&mut cmd, user.uid, user.gid, user.groups.clone());
    cmd
}

async fn run_one(
    kernel: &Path,
    user: &UmlUser,
    i: usize,
    inst: Instance,
    opts: Options,
    prefix: String,
    console: &(dyn Fn(&str) + Sync),
) -> Result<VmRun, VmError> {
    let guest = if opts.time_travel {
        Guest::UmlVirtualTime
    } else {
        Guest::Uml
    };
    let job = Job {
        args: inst.args,
        env: guest.env(),
    };
    let (dir, scratch) = prepare(i, user, &job)?;
    let started = Instant::now();
    let mut child = command(kernel, user, &scratch, i, opts)
        .spawn()
        .map_err(|e| VmError::Run(format!("cannot start {}: {e}", kernel.display())))?;
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(VmError::Run("UML's output is not piped".into()));
    };
    let mut watch = Console::new(started, &prefix);
    // UML's own complaints (stderr) join the console.
    let both = tokio::io::AsyncReadExt::chain(out, err);
    let who = format!("UML instance {}", i + 1);
    let status = watch
        .follow_to_exit(both, &mut child, console, &who)
        .await?;
    let total = started.elapsed();
    let report = std::fs::read_to_string(dir.join(guest::REPORT))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| {
            VmError::Run(format!(
                "no report from UML instance {} (it exited with {status}); last console lines:\n{}",
                i + 1,
                watch.tail()
            ))
        })?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(VmRun {
        report,
        boot: watch.boot.unwrap_or(total),
        total,
    })
}

/// Copy what the guest wrote under `from` (in a share) to `to`, as this
/// user; the files the report names move with it.
pub fn bring_out(from: &Path, to: &Path) -> std::io::Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            bring_out(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

/// Files the guest must read as UML's user: each must be readable by
/// others, along with the directories above it.
pub fn check_readable(user: &UmlUser, paths: &[&Path]) -> Result<(), VmError> {
    use std::os::unix::fs::PermissionsExt;
    for p in paths {
        let abs = std::path::absolute(p).unwrap_or(p.to_path_buf());
        let mut ok = std::fs::metadata(&abs).is_ok_and(|m| m.permissions().mode() & 0o004 != 0);
        for dir in abs.ancestors().skip(1) {
            ok &= std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
        }
        if !ok {
            return Err(VmError::UmlUnreadable {
                user: user.name.clone(),
                path: abs,
            });
        }
    }
    Ok(())
}
