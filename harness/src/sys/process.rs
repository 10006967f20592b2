//! Processes: parent-death signals, what a child does between fork and
//! exec (enter a node, die with its parent), signal dispositions, and this
//! process's own status.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::path::PathBuf;

use nix::sys::signal::{signal, SigHandler, Signal};

/// Ask the kernel to SIGKILL this process when its parent thread dies.
pub fn set_pdeathsig_kill() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a plain integer argument.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Make `cmd` enter the node whose network namespace descriptor is `ns`
/// before it executes (see [`super::enter_node`]): the descriptor must stay
/// open until the command is spawned.
pub fn pre_exec_enter_node(
    cmd: &mut tokio::process::Command,
    ns: RawFd,
    binds: Vec<(PathBuf, PathBuf)>,
) {
    // SAFETY: the closure runs between fork and exec; it only performs raw
    // syscalls on a descriptor the child inherited.
    unsafe {
        cmd.pre_exec(move || {
            let fd = BorrowedFd::borrow_raw(ns);
            super::enter_node(fd, &binds)
        });
    }
}

/// Make `cmd` die (SIGKILL) when the thread that spawns it exits.
pub fn pre_exec_die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: runs between fork and exec; only a raw prctl.
    unsafe {
        cmd.pre_exec(set_pdeathsig_kill);
    }
}

/// Make `cmd` run as the unprivileged `uid`/`gid` with `groups`, and die
/// (SIGKILL) with the thread that spawns it. The death signal is set after
/// the identity change, which would otherwise clear it.
pub fn pre_exec_as_user(cmd: &mut tokio::process::Command, uid: u32, gid: u32, groups: Vec<u32>) {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let groups: Vec<Gid> = groups.into_iter().map(Gid::from_raw).collect();
    // SAFETY: runs between fork and exec; only raw syscalls on values
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let (g, u) = (Gid::from_raw(gid), Uid::from_raw(uid));
            setgroups(&groups).map_err(io::Error::from)?;
            setresgid(g, g, g).map_err(io::Error::from)?;
            setresuid(u, u, u).map_err(io::Error::from)?;
            set_pdeathsig_kill()
        });
    }
}

/// Make `cmd` (the sandbox's inner process) die with its parent and take
/// Ctrl-C again (SIG_IGN is inherited from the outer process).
pub fn pre_exec_sandbox_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs between fork and exec; only raw syscalls.
    unsafe {
        cmd.pre_exec(|| {
            set_pdeathsig_kill()?;
            signal(Signal::SIGINT, SigHandler::SigDfl).map_err(io::Error::from)?;
            Ok(())
        });
    }
}

/// Ignore Ctrl-C in this process (the sandbox's outer process lets the
/// inner one tear down and reports its status).
pub fn ignore_sigint() -> io::Result<()> {
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) }
        .map(|_| ())
        .map_err(io::Error::from)
}

/// The first number of field `name` in /proc/self/status (e.g. `VmHWM`,
/// `NSpid`).
pub fn self_status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let prefix = format!("{name}:");
    status
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
