//! A node's network namespace: the descriptor that holds it together with the
//! sockets vpnlab opened inside it (netlink now; ICMP/UDP check sockets on
//! demand), in the spirit of netavark's `core_utils`.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;

use tokio::process::Command;

use crate::error::TopologyError;
use crate::sys;

/// One node's namespace.
pub struct Netns {
    /// Node name from the scenario (used in every error message).
    pub node: String,
    fd: OwnedFd,
    /// rtnetlink handle whose socket was opened inside this namespace.
    pub rtnl: rtnetlink::Handle,
    /// The namespace's socket tables (`/proc/net/udp`, `tcp`), opened in it
    /// on first use and read again from the start on every later one: a
    /// readiness probe polls them, and a thread per read is costly in a UML
    /// guest.
    tables: Mutex<Vec<(&'static str, File)>>,
}

impl Netns {
    /// Create a fresh namespace for `node` and open its netlink socket.
    ///
    /// Must be called from within a tokio runtime: the netlink connection is
    /// registered with it and driven by a spawned task.
    pub fn create(node: &str) -> Result<Self, TopologyError> {
        let err = |op: &'static str| {
            let node = node.to_string();
            move |source| TopologyError::Netns { node, op, source }
        };
        let fd = sys::new_netns().map_err(err("create network namespace"))?;
        let rt = tokio::runtime::Handle::current();
        let (conn, rtnl, _) = sys::in_netns(fd.as_fd(), move || {
            let _guard = rt.enter();
            rtnetlink::new_connection()
        })
        .map_err(err("open netlink socket"))?;
        tokio::spawn(conn);
        Ok(Self {
            node: node.to_string(),
            fd,
            rtnl,
            tables: Mutex::default(),
        })
    }

    /// Borrow the namespace descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Run a blocking closure on a thread inside this namespace.
    pub fn run_in<T, F>(&self, f: F) -> std::io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> std::io::Result<T> + Send + 'static,
    {
        sys::in_netns(self.fd(), f)
    }

    /// Forget every NAT mapping and tracked connection in this namespace.
    pub fn flush_conntrack(&self) -> std::io::Result<()> {
        self.run_in(sys::flush_conntrack)
    }

    /// Write a `net.*` sysctl inside this namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), TopologyError> {
        sys::write_net_sysctl(self.fd(), key, value).map_err(|source| TopologyError::Sysctl {
            node: self.node.clone(),
            key: key.to_string(),
            source,
        })
    }

    /// A command that will run inside this namespace. With `binds`
    /// (`(source, target)` pairs, e.g. a daemon's directory on `/run`), the
    /// process also gets a private mount namespace with those bind mounts.
    pub fn command(&self, program: &str, binds: Vec<(PathBuf, PathBuf)>) -> Command {
        command_in(self.fd(), program, binds)
    }

    /// Whether some socket in this namespace has bound `port` (`proto`:
    /// `udp` or `tcp`), read from the namespace's own socket table. The
    /// table is opened on a thread inside the namespace (`/proc/<pid>` would
    /// not do: vpnlab's PID namespace sees the host's /proc); an open table
    /// keeps showing its namespace's sockets.
    pub fn listens(&self, proto: &'static str, port: u16) -> bool {
        let suffix = format!(":{port:04X}");
        self.socket_table(proto)
            .map(|t| {
                t.lines().any(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .is_some_and(|a| a.ends_with(&suffix))
                })
            })
            .unwrap_or(false)
    }

    /// The current text of socket table `proto`.
    fn socket_table(&self, proto: &'static str) -> std::io::Result<String> {
        use std::io::{Read, Seek};
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let i = match tables.iter().position(|(p, _)| *p == proto) {
            Some(i) => i,
            None => {
                let path = format!("/proc/thread-self/net/{proto}");
                tables.push((proto, self.run_in(move || File::open(path))?));
                tables.len() - 1
            }
        };
        let file = &mut tables[i].1;
        file.rewind()?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(text)
    }

    /// A duplicate of the namespace descriptor, for a driver that runs
    /// commands in the node after `start` (see [`command_in`]).
    pub fn dup_fd(&self) -> std::io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// A UDP socket bound to `addr` inside this namespace.
    pub fn udp_socket(&self, addr: std::net::SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
        let std_sock = self.run_in(move || {
            let s = std::net::UdpSocket::bind(addr)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })?;
        tokio::net::UdpSocket::from_std(std_sock)
    }

    /// Whether this node has a route from `src` to `dst`, as the kernel
    /// looks it up for a reply (policy routing and XFRM policies
    /// included): connecting a UDP socket does that lookup and sends
    /// nothing. `Err` only when the lookup could not be made.
    pub fn routes(&self, src: IpAddr, dst: IpAddr) -> std::io::Result<bool> {
        self.run_in(move || {
            let s = std::net::UdpSocket::bind(SocketAddr::new(src, 0))?;
            match s.connect(SocketAddr::new(dst, 9)) {
                Ok(()) => Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::ENETUNREACH) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    /// A TCP listener bound to `addr` inside this namespace.
    pub fn tcp_listener(&self, addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
        let std_sock = self.run_in(move || {
            let s = std::net::TcpListener::bind(addr)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })?;
        tokio::net::TcpListener::from_std(std_sock)
    }

    /// A TCP socket of `src`'s family created inside this namespace and
    /// bound to `src` (any port), to connect from.
    pub fn tcp_socket(&self, src: IpAddr) -> std::io::Result<tokio::net::TcpSocket> {
        let std_sock = self.run_in(move || {
            let s = match src {
                IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }?;
            s.bind(SocketAddr::new(src, 0))?;
            Ok(s)
        })?;
        Ok(std_sock)
    }

    /// An AF_PACKET socket seeing every interface of this namespace (IP
    /// packets without link-layer header), non-blocking.
    pub fn packet_socket(&self, rcvbuf: usize) -> std::io::Result<OwnedFd> {
        self.run_in(move || {
            use nix::sys::socket::{
                setsockopt, socket, sockopt, AddressFamily, SockFlag, SockProtocol, SockType,
            };
            let fd = socket(
                AddressFamily::Packet,
                SockType::Datagram,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                SockProtocol::EthAll,
            )?;
            setsockopt(&fd, sockopt::RcvBufForce, &rcvbuf)?;
            // Kernel time stamps: the capture stops every node at one instant.
            setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
            Ok(fd)
        })
    }

    /// A ctnetlink socket inside this namespace subscribed to new
    /// connection-tracking entries (each with its original and reply
    /// tuples, so with any translation applied).
    pub fn conntrack_events(&self, rcvbuf: usize) -> std::io::Result<OwnedFd> {
        self.run_in(move || {
            use nix::sys::socket::{
                bind, setsockopt, socket, sockopt, AddressFamily, NetlinkAddr, SockFlag,
                SockProtocol, SockType,
            };
            use std::os::fd::AsRawFd;
            // NF_NETLINK_CONNTRACK_NEW: the group of new entries.
            const NEW: u32 = 1;
            let fd = socket(
                AddressFamily::Netlink,
                SockType::Raw,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                SockProtocol::NetlinkNetFilter,
            )?;
            setsockopt(&fd, sockopt::RcvBufForce, &rcvbuf)?;
            bind(fd.as_raw_fd(), &NetlinkAddr::new(0, NEW))?;
            Ok(fd)
        })
    }

    /// A raw ICMP (IPv4) or ICMPv6 socket inside this namespace, bound to
    /// `src`. The kernel computes ICMPv6 checksums on raw sockets itself
    /// (RFC 3542 3.1); ICMP's are the sender's.
    pub fn icmp_socket(&self, src: IpAddr) -> std::io::Result<OwnedFd> {
        self.run_in(move || {
            use nix::sys::socket::{
                bind, socket, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrStorage,
            };
            let (family, proto) = match src {
                IpAddr::V4(_) => (AddressFamily::Inet, SockProtocol::Icmp),
                IpAddr::V6(_) => (AddressFamily::Inet6, SockProtocol::IcmpV6),
            };
            let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
            let fd = socket(family, SockType::Raw, flags, proto)?;
            bind(
                fd.as_raw_fd(),
                &SockaddrStorage::from(SocketAddr::new(src, 0)),
            )?;
            Ok(fd)
        })
    }
}

/// A command that will run inside the network namespace `ns` (see
/// [`Netns::command`]). The descriptor must stay open until the command is
/// spawned.
pub fn command_in(ns: BorrowedFd<'_>, program: &str, binds: Vec<(PathBuf, PathBuf)>) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    sys::pre_exec_enter_node(&mut cmd, ns.as_raw_fd(), binds);
    cmd
}
