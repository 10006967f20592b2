//! Namespaces: creating and entering network namespaces, the private mount
//! namespace and tmpfs of a run, the PID namespace of the sandbox, and
//! per-namespace sysctls.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::process::set_pdeathsig_kill;

/// Create a new, empty network namespace and return a descriptor holding it.
///
/// Runs on a throwaway thread: the thread enters the new namespace, opens a
/// handle to it and exits; the namespace lives as long as the descriptor.
pub fn new_netns() -> io::Result<OwnedFd> {
    std::thread::spawn(|| -> io::Result<OwnedFd> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        Ok(File::open("/proc/thread-self/ns/net")?.into())
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?
}

/// Run `f` on a dedicated thread that has entered the network namespace `ns`.
///
/// Sockets created inside `f` stay bound to that namespace after the thread
/// exits, which is how vpnlab opens netlink, ICMP and UDP sockets in nodes.
pub fn in_netns<T, F>(ns: BorrowedFd<'_>, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let fd = ns.try_clone_to_owned()?;
    std::thread::spawn(move || -> io::Result<T> {
        setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?
}

/// Called in a freshly forked child, before `exec`: enter the node's network
/// namespace and, when `binds` is not empty, take a private mount namespace
/// and bind each `(source, target)` over its target. Daemons get their own
/// directory on `/run` this way (pid files, sockets); libreswan also gets its
/// private prefix's helpers on `/usr/libexec`.
///
/// Only async-signal-safe work is done here (raw syscalls, no allocation
/// beyond what the caller prepared).
pub fn enter_node(ns: BorrowedFd<'_>, binds: &[(PathBuf, PathBuf)]) -> io::Result<()> {
    // Die with the process that spawned us; the run's PID namespace is the
    // second line of defence (see `sandbox`).
    set_pdeathsig_kill()?;
    setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    if !binds.is_empty() {
        private_mount_ns()?;
    }
    for (source, target) in binds {
        mount(
            Some(source.as_path()),
            target.as_path(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(io::Error::from)?;
    }
    Ok(())
}

/// Take a new mount namespace whose mounts do not propagate back to the
/// host's.
fn private_mount_ns() -> io::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// Give the calling process a new PID namespace for its future children.
pub fn unshare_pid_ns() -> io::Result<()> {
    unshare(CloneFlags::CLONE_NEWPID).map_err(io::Error::from)
}

/// Detach the calling process's mounts from the host and put a fresh tmpfs on
/// `/run`: every file vpnlab writes for a run (configs, sockets) lives there
/// and vanishes with the run's last process, even on SIGKILL.
pub fn private_run_tmpfs() -> io::Result<()> {
    private_mount_ns()?;
    mount(
        Some("vpnlab"),
        "/run",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(io::Error::from)
}

/// Write a sysctl of the network namespace `ns` (only `net.*` keys are
/// namespaced; others are refused so a scenario can never touch the host).
pub fn write_net_sysctl(ns: BorrowedFd<'_>, key: &str, value: &str) -> io::Result<()> {
    if !key.starts_with("net.") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("sysctl {key} is not per-namespace (only net.* keys are allowed)"),
        ));
    }
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_string();
    in_netns(ns, move || std::fs::write(&path, value.as_bytes()))
}
