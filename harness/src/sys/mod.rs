//! The few raw syscalls vpnlab needs, in one place.
//!
//! Everything `unsafe` or namespace-switching lives here so the rest of the
//! crate reads as plain orchestration. Namespace switches (`setns`) only ever
//! happen on short-lived dedicated threads or in a child between `fork` and
//! `exec`, because `setns` changes the calling *thread* only.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

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

/// Frames an AF_PACKET socket lost because its buffer was full
/// (`PACKET_STATISTICS`; reading it resets the kernel's counters).
pub fn packet_drops(fd: BorrowedFd<'_>) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(u64::from(stats.tp_drops))
    } else {
        Err(io::Error::last_os_error())
    }
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

/// Forget every connection-tracking entry (and so every NAT mapping) of the
/// calling thread's network namespace: one ctnetlink `IPCTNL_MSG_CT_DELETE`
/// request without attributes, which the kernel reads as "flush the table".
pub fn flush_conntrack() -> io::Result<()> {
    use nix::sys::socket::{
        bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
        SockType,
    };
    use std::os::fd::AsRawFd;
    const NFNL_SUBSYS_CTNETLINK: u16 = 1;
    const IPCTNL_MSG_CT_DELETE: u16 = 2;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_ACK: u16 = 0x4;
    const NLMSG_ERROR: u16 = 2;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    // The kernel always answers a request with NLM_F_ACK; bounded anyway.
    nix::sys::socket::setsockopt(
        &fd,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(2, 0),
    )?;
    // struct nlmsghdr (16 bytes) + struct nfgenmsg (4 bytes).
    let mut msg = Vec::with_capacity(20);
    msg.extend_from_slice(&20u32.to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.push(libc::AF_INET as u8);
    msg.push(0); // NFNETLINK_V0
    msg.extend_from_slice(&0u16.to_be_bytes());
    send(fd.as_raw_fd(), &msg, MsgFlags::empty())?;
    let mut buf = [0u8; 1024];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
    if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
        let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if err != 0 {
            return Err(io::Error::from_raw_os_error(-err));
        }
    }
    Ok(())
}
