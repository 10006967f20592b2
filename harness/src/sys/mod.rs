//! The few raw syscalls vpnlab needs, in one place.
//!
//! Everything `unsafe` or namespace-switching lives here so the rest of the
//! crate reads as plain orchestration (the crate denies `unsafe_code`
//! everywhere else). Namespace switches (`setns`) only ever
//! happen on short-lived dedicated threads or in a child between `fork` and
//! `exec`, because `setns` changes the calling *thread* only.

mod ns;
mod process;
mod socket;

pub use ns::{
    enter_node, in_netns, new_netns, private_run_tmpfs, unshare_pid_ns, write_net_sysctl,
};
pub use process::{
    ignore_sigint, pre_exec_as_user, pre_exec_die_with_parent, pre_exec_enter_node,
    pre_exec_sandbox_child, self_status_field, set_pdeathsig_kill,
};
pub use socket::{flush_conntrack, packet_drops, set_dont_fragment};
