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

/// Why the sandbox could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No PID namespace: not root, most likely.
    #[error("cannot create a PID namespace ({0}). vpnlab run needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): run it with sudo")]
    PidNamespace(std::io::Error),
    /// A step of the set-up failed.
    #[error("cannot {what}: {source}")]
    Setup {
        /// What was attempted.
        what: &'static str,
        /// OS error.
        source: std::io::Error,
    },
}

fn setup(what: &'static str) -> impl FnOnce(std::io::Error) -> SandboxError {
    move |source| SandboxError::Setup { what, source }
}

/// Outer side: start the inner copy of this command in a new PID namespace
/// and return its exit code. Must be called before any thread is started.
pub fn run_outer() -> Result<i32, SandboxError> {
    sys::unshare_pid_ns().map_err(SandboxError::PidNamespace)?;
    // Ctrl-C reaches both processes; the inner one tears down and exits, and
    // this one reports its status.
    sys::ignore_sigint().map_err(setup("ignore Ctrl-C"))?;
    let exe = std::fs::read_link("/proc/self/exe").map_err(setup("find own binary"))?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).env(INNER_ENV, "1");
    sys::pre_exec_sandbox_child(&mut cmd);
    let status = cmd.status().map_err(setup("start the sandboxed run"))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Inner side: take the private mount namespace and tmpfs.
pub fn enter_inner() -> Result<(), SandboxError> {
    sys::private_run_tmpfs().map_err(setup("set up the run's private /run"))?;
    std::fs::create_dir_all(WORKDIR).map_err(setup("create /run/vpnlab"))
}
