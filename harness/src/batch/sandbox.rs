//! The run sandbox: `vpnlab run` re-executes itself as PID 1 of a new PID
//! namespace with a private mount namespace and a tmpfs on `/run`.
//!
//! Why: every daemon, namespace and file of a run is then owned by that PID
//! namespace. If vpnlab is killed, even with SIGKILL, the kernel kills the
//! inner process (parent-death signal), which ends the PID namespace and all
//! daemons in it; the network namespaces, their veths and nftables rules,
//! the mounts and the tmpfs all disappear with their last user.

use std::process::Command;

use crate::sys;

/// Environment variable marking the inner process.
pub const INNER_ENV: &str = "VPNLAB_SANDBOXED";
/// Where a run keeps its files (a tmpfs private to the run).
pub const WORKDIR: &str = "/run/vpnlab";

/// Whether this process is the sandboxed inner run.
pub fn is_inner() -> bool {
    std::env::var_os(INNER_ENV).is_some()
}

/// Outer side: start the inner copy of this command in a new PID namespace
/// and return its exit code. Must be called before any thread is started.
pub fn run_outer() -> Result<i32, String> {
    sys::unshare_pid_ns().map_err(|e| {
        format!(
            "cannot create a PID namespace ({e}). vpnlab run needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): run it with sudo"
        )
    })?;
    // Ctrl-C reaches both processes; the inner one tears down and exits, and
    // this one reports its status.
    sys::ignore_sigint().map_err(|e| e.to_string())?;
    let exe =
        std::fs::read_link("/proc/self/exe").map_err(|e| format!("cannot find own binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).env(INNER_ENV, "1");
    sys::pre_exec_sandbox_child(&mut cmd);
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start the sandboxed run: {e}"))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Inner side: take the private mount namespace and tmpfs.
pub fn enter_inner() -> Result<(), String> {
    sys::private_run_tmpfs().map_err(|e| format!("cannot set up the run's private /run: {e}"))?;
    std::fs::create_dir_all(WORKDIR).map_err(|e| format!("cannot create {WORKDIR}: {e}"))
}
