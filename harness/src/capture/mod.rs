//! Per-node packet capture for the life of a cell, in-process: one AF_PACKET
//! socket per node namespace sees every interface of that node (veths and the
//! TUN device kernel-libipsec creates later), both directions. Each frame is
//! classified as it arrives ([`classify`]); the first frames of each
//! interface are kept for pcap files, up to a cap.

pub mod classify;
pub mod conntrack;
pub mod ike;
pub mod kstats;
pub mod ladder;
pub mod path;
pub mod pcap;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::TopologyError;
use crate::sys;
use crate::topology::netns::Netns;
use crate::topology::Topology;
pub use classify::{Class, Flow};

/// Frames kept per interface for pcap files; beyond it only counts grow.
pub const FRAMES_PER_IFACE: usize = 10_000;
/// Bytes kept of each frame (headers and the first payload bytes).
pub const SNAPLEN: usize = 256;
/// Kernel receive buffer per capture socket.
const RCVBUF: usize = 4 << 20;
/// Kernel receive buffer per conntrack event socket.
const CT_RCVBUF: usize = 1 << 20;

/// What a capture needs to know about the cell.
#[derive(Debug, Default)]
pub struct Setup {
    /// The tunnelled checks' address pairs.
    pub flows: Vec<Flow>,
    /// Keep live counts for [`Capture::seen`] (cells that wait for a
    /// packet).
    pub live: bool,
    /// TUN devices (node, ifindex) that are not a tunnel's (a NAT64
    /// translator's), whose packets are classified like a veth's.
    pub plain: Vec<(String, u32)>,
    /// Each node's own addresses.
    pub own: BTreeMap<String, Vec<IpAddr>>,
    /// Nodes whose connection tracker translates (their conntrack events
    /// are read).
    pub translating: Vec<String>,
}

/// Which way a frame crossed the interface, seen from the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dir {
    /// Sent by the node.
    Out,
    /// Received by the node.
    In,
}

/// A kept frame (truncated to [`SNAPLEN`]).
#[derive(Debug, Clone)]
pub struct Frame {
    /// Interface index in the node.
    pub ifindex: u32,
    /// Direction.
    pub dir: Dir,
    /// Wall-clock time of capture.
    pub ts: Duration,
    /// Length on the wire.
    pub len: u32,
    /// The first bytes (an IP packet).
    pub data: Vec<u8>,
    /// Its class (a translated check packet's is corrected when the
    /// capture stops).
    pub class: Class,
    /// Arrived addressed to the node itself.
    pub to_self: bool,
}

/// What one node's socket saw.
#[derive(Debug, Default)]
pub struct NodeFrames {
    /// (ifindex, direction, class) → packets.
    pub counts: BTreeMap<(u32, Dir, Class), u64>,
    /// Kept frames, in capture order.
    pub frames: Vec<Frame>,
    /// Frames not kept because an interface reached its cap, per ifindex.
    pub over_cap: BTreeMap<u32, u64>,
    /// Interfaces that are TUN devices (no link layer).
    pub tun: Vec<u32>,
    /// Frames the kernel dropped because the socket buffer was full.
    pub kernel_drops: u64,
    /// (ifindex, class) → packets that arrived addressed to the node itself
    /// (one of its link or inner addresses) and that no translation of the
    /// node passed on.
    pub to_self: BTreeMap<(u32, Class), u64>,
    /// New conntrack entries (a translating node's), in order.
    pub translations: Vec<conntrack::Translation>,
    /// Whether `translations` is the whole story: the node's conntrack
    /// events were read and none was lost.
    pub followed: bool,
}

/// Raw per-interface counts of a cell (for the JSON report and tools).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct IfaceCapture {
    /// Node.
    pub node: String,
    /// Interface name.
    pub iface: String,
    /// Class → packets sent by the node on this interface.
    pub out: BTreeMap<Class, u64>,
    /// Class → packets received.
    #[serde(rename = "in")]
    pub inbound: BTreeMap<Class, u64>,
    /// Frames seen but not kept for the pcap file (cap reached).
    pub over_cap: u64,
}

struct Running {
    node: String,
    stop: OwnedFd,
    thread: JoinHandle<std::io::Result<NodeFrames>>,
    live: Live,
}

/// Counts while the capture runs, both directions together, for `wait`
/// steps: (ifindex, class) → packets. Kept only for cells that wait for a
/// packet, so other cells pay no lock per frame.
type Live = Option<Arc<std::sync::Mutex<BTreeMap<(u32, Class), u64>>>>;

/// Capture running on every node of a cell.
pub struct Capture {
    running: Vec<Running>,
    /// The checks' address pairs, to follow through translations.
    flows: Arc<Vec<Flow>>,
    /// Kernel counters of each node when the capture started.
    counters: BTreeMap<String, kstats::Counters>,
}

/// The stopped capture of a cell, interfaces named.
#[derive(Debug, Default)]
pub struct Captured {
    /// Node → (ifindex → name).
    pub names: BTreeMap<String, BTreeMap<u32, String>>,
    /// Node → what it saw.
    pub nodes: BTreeMap<String, NodeFrames>,
    /// Node → kernel drop counters that grew (name, delta, meaning).
    pub drops: BTreeMap<String, Vec<(String, u64, &'static str)>>,
    /// When the capture was stopped (wall clock, as frames' `ts`).
    pub cut: Duration,
}

impl Capture {
    /// Start capturing on every node of `topo`, as `setup` says.
    pub fn start(topo: &Topology, setup: Setup) -> Result<Self, TopologyError> {
        let Setup {
            flows,
            live,
            plain,
            own,
            translating,
        } = setup;
        let flows = Arc::new(flows);
        let counters = topo
            .nodes
            .iter()
            .map(|(name, ns)| (name.clone(), kstats::read(ns)))
            .collect();
        // Every node's socket first, then one start instant: a frame
        // stamped from then on is queued on every socket that sees it, so
        // both ends of a link count it (before, the link's own chatter,
        // such as IPv6's MLD reports, could be seen leaving a node whose
        // neighbour's socket did not exist yet).
        let mut sockets = Vec::new();
        for (name, ns) in &topo.nodes {
            let err = |op: &'static str| {
                let node = name.clone();
                move |source| TopologyError::Netns { node, op, source }
            };
            let sock = ns
                .packet_socket(RCVBUF)
                .map_err(err("open a capture socket"))?;
            let (wake_rx, wake_tx) = nix::unistd::pipe()
                .map_err(std::io::Error::from)
                .map_err(err("create a pipe"))?;
            // Without its conntrack events a node's translations are not
            // followed, and the path says so where it matters.
            let ct = translating
                .contains(name)
                .then(|| ns.conntrack_events(CT_RCVBUF).ok())
                .flatten();
            sockets.push((name.clone(), sock, ct, wake_rx, wake_tx));
        }
        let from = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut running = Vec::new();
        for (name, sock, ct, wake_rx, wake_tx) in sockets {
            let live: Live = live.then(Default::default);
            let ctx = Ctx {
                flows: flows.clone(),
                live: live.clone(),
                plain: plain
                    .iter()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, i)| *i)
                    .collect(),
                own: own.get(&name).cloned().unwrap_or_default(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("capture-{name}"))
                .spawn(move || read_loop(sock, ct, wake_rx, from, &ctx))
                .map_err(|source| TopologyError::Netns {
                    node: name.clone(),
                    op: "start a capture thread",
                    source,
                })?;
            running.push(Running {
                node: name,
                stop: wake_tx,
                thread,
                live,
            });
        }
        Ok(Capture {
            running,
            flows,
            counters,
        })
    }

    /// Packets of `class` that crossed interface `ifindex` of `node` so far,
    /// either direction.
    pub fn seen(&self, node: &str, ifindex: u32, class: Class) -> u64 {
        self.running
            .iter()
            .find(|r| r.node == node)
            .and_then(|r| {
                r.live
                    .as_ref()?
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&(ifindex, class)).copied())
            })
            .unwrap_or(0)
    }

    /// Stop, collect, and name the interfaces (while they still exist).
    pub async fn stop(self, topo: &Topology) -> Captured {
        // Wake every reader first so they drain and finish in parallel,
        // each up to the same instant.
        let cut = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        for r in &self.running {
            let _ = nix::unistd::write(&r.stop, &cut.to_ne_bytes());
        }
        let joined = futures::future::join_all(self.running.into_iter().map(|r| async move {
            let frames = tokio::task::spawn_blocking(move || r.thread.join())
                .await
                .ok()
                .and_then(|j| j.ok())
                .and_then(|res| res.ok())
                .unwrap_or_default();
            (r.node, frames)
        }))
        .await;
        let mut out = Captured {
            cut: Duration::from_nanos(cut),
            ..Captured::default()
        };
        for (node, before) in &self.counters {
            let d = kstats::drops(before, &kstats::read(topo.node(node)));
            if !d.is_empty() {
                out.drops.insert(node.clone(), d);
            }
        }
        for (node, frames) in joined {
            out.names
                .insert(node.clone(), iface_names(topo.node(&node)).await);
            out.nodes.insert(node, frames);
        }
        out.follow(&self.flows);
        out
    }
}

async fn iface_names(ns: &Netns) -> BTreeMap<u32, String> {
    crate::topology::link::all(ns)
        .await
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Read frames until the wake pipe says stop, then drain what is queued.
///
/// Every node's reader counts exactly the frames the kernel stamped from
/// `from` (when every socket existed) to the stop time the pipe carries, so
/// a packet crossing a veth as the capture starts or stops is counted on
/// both ends or on neither (readers that start or stop a few milliseconds
/// apart would otherwise see it leave and not arrive: a loss that never
/// happened).
fn read_loop(
    sock: OwnedFd,
    ct: Option<OwnedFd>,
    wake: OwnedFd,
    from: Duration,
    ctx: &Ctx,
) -> std::io::Result<NodeFrames> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut nf = NodeFrames::default();
    let mut per_iface: BTreeMap<u32, usize> = BTreeMap::new();
    let mut buf = vec![0u8; 65536];
    let mut cut: Option<Duration> = None;
    let mut ct_lost = false;
    loop {
        if cut.is_none() {
            let mut fds = vec![
                PollFd::new(sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(wake.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(c) = &ct {
                fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
            }
            poll(&mut fds, PollTimeout::NONE)?;
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let (woken, ct_ready) = (ready(1), ready(2));
            if woken {
                cut = Some(read_cut(&wake)?);
            }
            if let (true, Some(c)) = (ct_ready, &ct) {
                ct_lost |= read_conntrack(c, &mut buf, &mut nf.translations);
            }
        }
        let frame = match receive(&sock, &mut buf) {
            Ok(f) => f,
            Err(nix::errno::Errno::EAGAIN) if cut.is_some() => break,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let Some((n, addr, ts)) = frame else { continue };
        if ts < from || cut.is_some_and(|c| ts > c) {
            continue;
        }
        count(&mut nf, &mut per_iface, &buf[..n], &addr, ts, ctx);
    }
    if let Some(c) = &ct {
        ct_lost |= read_conntrack(c, &mut buf, &mut nf.translations);
    }
    nf.followed = ct.is_some() && !ct_lost;
    nf.kernel_drops = sys::packet_drops(sock.as_fd()).unwrap_or(0);
    // Closing a packet socket waits for an RCU grace period (milliseconds);
    // nobody needs to wait for that, so it happens off the critical path.
    std::thread::spawn(move || drop(sock));
    Ok(nf)
}

/// Read every queued conntrack event; true when some were lost (the
/// socket's buffer overflowed, or it failed).
fn read_conntrack(ct: &OwnedFd, buf: &mut [u8], out: &mut Vec<conntrack::Translation>) -> bool {
    loop {
        match nix::sys::socket::recv(ct.as_raw_fd(), buf, nix::sys::socket::MsgFlags::empty()) {
            Ok(n) => out.extend(conntrack::parse(&buf[..n])),
            Err(nix::errno::Errno::EAGAIN) => return false,
            Err(nix::errno::Errno::EINTR) => continue,
            // ENOBUFS: events were dropped; anything else: none will come.
            Err(_) => return true,
        }
    }
}

/// The frames a node sent, by [`classify::pair_key`]: whether a packet
/// that arrived addressed to a NAT left it again, translated, is told by
/// the packet itself, not by the NAT's entries. An entry can have expired
/// (or been flushed) by the time a packet meets it, and conntrack's
/// destroy event comes only after that packet.
struct Departures(std::collections::HashMap<PairKey, Vec<(u32, Duration)>>);

/// [`classify::pair_key`]'s key.
type PairKey = (u8, Vec<u8>);

/// How soon after arriving a packet a NAT passes on has left it.
const PASS_ON: Duration = Duration::from_millis(500);

impl Departures {
    fn of(frames: &[Frame]) -> Self {
        let mut m: std::collections::HashMap<_, Vec<_>> = Default::default();
        for f in frames.iter().filter(|f| f.dir == Dir::Out) {
            if let Some(k) = classify::pair_key(&f.data) {
                m.entry(k).or_default().push((f.ifindex, f.ts));
            }
        }
        Departures(m)
    }

    /// Whether `f` (key `k`) left on another interface soon after.
    fn passed_on(&self, k: &PairKey, f: &Frame) -> bool {
        self.0.get(k).is_some_and(|outs| {
            outs.iter()
                .any(|(i, ts)| *i != f.ifindex && *ts >= f.ts && ts.saturating_sub(f.ts) <= PASS_ON)
        })
    }
}

/// One frame: its length, where it was seen, and the kernel's time stamp
/// (`None` for a frame without a link address).
type Received = Option<(usize, nix::sys::socket::LinkAddr, Duration)>;

fn receive(sock: &OwnedFd, buf: &mut [u8]) -> nix::Result<Received> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, LinkAddr, MsgFlags};
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<LinkAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )?;
    let ts = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(t) => Some(Duration::from(t)),
        _ => None,
    });
    let ts = ts.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    });
    Ok(msg.address.map(|a| (msg.bytes, a, ts)))
}

/// The stop time written into the wake pipe (nanoseconds since the epoch).
fn read_cut(wake: &OwnedFd) -> std::io::Result<Duration> {
    let mut b = [0u8; 8];
    let n = nix::unistd::read(wake.as_raw_fd(), &mut b)?;
    if n != 8 {
        return Err(std::io::Error::other("short stop message"));
    }
    Ok(Duration::from_nanos(u64::from_ne_bytes(b)))
}

/// Move one packet's count from key `from` to key `to`.
fn shift<K: Ord>(m: &mut BTreeMap<K, u64>, from: K, to: K) {
    if let Some(n) = m.get_mut(&from) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            m.remove(&from);
        }
    }
    *m.entry(to).or_default() += 1;
}

/// What a node's reader classifies with.
struct Ctx {
    /// The checks' address pairs.
    flows: Arc<Vec<Flow>>,
    /// Live counts, where a step waits for a packet.
    live: Live,
    /// TUN devices that are not a tunnel's.
    plain: Vec<u32>,
    /// The node's own addresses.
    own: Vec<IpAddr>,
}

/// Classify and count one frame, and keep it for the pcap file (up to the
/// cap).
fn count(
    nf: &mut NodeFrames,
    per_iface: &mut BTreeMap<u32, usize>,
    pkt: &[u8],
    addr: &nix::sys::socket::LinkAddr,
    ts: Duration,
    ctx: &Ctx,
) {
    let (flows, live) = (&ctx.flows[..], &ctx.live);
    // IP of either family; ARP, IPv6 neighbour discovery and the like are
    // not counted.
    let ip = [libc::ETH_P_IP, libc::ETH_P_IPV6].map(|p| (p as u16).to_be());
    if !ip.contains(&addr.protocol())
        || addr.hatype() == libc::ARPHRD_LOOPBACK
        || classify::link_scoped(pkt)
    {
        return;
    }
    let ifindex = addr.ifindex() as u32;
    let tun = addr.hatype() == libc::ARPHRD_NONE && !ctx.plain.contains(&ifindex);
    if tun && !nf.tun.contains(&ifindex) {
        nf.tun.push(ifindex);
    }
    let dir = if addr.pkttype() == libc::PACKET_OUTGOING {
        Dir::Out
    } else {
        Dir::In
    };
    let class = classify::classify(pkt, tun, flows);
    *nf.counts.entry((ifindex, dir, class)).or_default() += 1;
    let to_self =
        dir == Dir::In && classify::destination(pkt).is_some_and(|d| ctx.own.contains(&d));
    if to_self {
        *nf.to_self.entry((ifindex, class)).or_default() += 1;
    }
    if let Some(Ok(mut m)) = live.as_ref().map(|l| l.lock()) {
        *m.entry((ifindex, class)).or_default() += 1;
    }
    let kept = per_iface.entry(ifindex).or_default();
    if *kept < FRAMES_PER_IFACE {
        *kept += 1;
        nf.frames.push(Frame {
            ifindex,
            dir,
            ts,
            len: pkt.len() as u32,
            data: pkt[..pkt.len().min(SNAPLEN)].to_vec(),
            class,
            to_self,
        });
    } else {
        *nf.over_cap.entry(ifindex).or_default() += 1;
    }
}

impl Captured {
    /// Follow the checks' packets through every translation a node's
    /// connection tracker reported: a check packet a NAT rewrote is counted
    /// as check traffic on the far side too, and a packet addressed to a
    /// translating node that the node passed on (a reply whose destination
    /// it rewrote back) is no longer counted as arrived for the node
    /// itself. Kept frames only: beyond the cap, counts stay as classified
    /// (the path notes the cap).
    fn follow(&mut self, flows: &[Flow]) {
        let entries: Vec<conntrack::Translation> = self
            .nodes
            .values()
            .flat_map(|n| n.translations.iter().copied())
            .collect();
        if entries.is_empty() {
            return;
        }
        let translated = conntrack::translated_flows(flows, &entries);
        for nf in self.nodes.values_mut() {
            let NodeFrames {
                frames,
                counts,
                to_self,
                translations,
                ..
            } = nf;
            let left = Departures::of(frames);
            for f in frames.iter_mut() {
                let Some(p) = classify::packet(&f.data) else {
                    continue;
                };
                if f.class == Class::Other && conntrack::in_flows(&translated, &p.ends) {
                    let (i, d) = (f.ifindex, f.dir);
                    shift(counts, (i, d, Class::Other), (i, d, Class::CheckClear));
                    if f.to_self {
                        shift(to_self, (i, Class::Other), (i, Class::CheckClear));
                    }
                    f.class = Class::CheckClear;
                }
                let forwarded = match classify::pair_key(&f.data) {
                    Some(k) => left.passed_on(&k, f),
                    None => translations.iter().any(|t| t.forwards(&p)),
                };
                if f.to_self && forwarded {
                    if let Some(n) = to_self.get_mut(&(f.ifindex, f.class)) {
                        *n = n.saturating_sub(1);
                    }
                    f.to_self = false;
                }
            }
        }
    }

    /// Packets of `class` that arrived at `node` on `iface` addressed to
    /// the node itself (and, at a followed NAT, were not passed on).
    pub fn to_self(&self, node: &str, iface: &str, class: Class) -> u64 {
        let Some(idx) = self.ifindex(node, iface) else {
            return 0;
        };
        self.nodes
            .get(node)
            .and_then(|nf| nf.to_self.get(&(idx, class)))
            .copied()
            .unwrap_or(0)
    }

    /// The index of `node`'s interface `iface`, as the capture named it.
    pub fn ifindex(&self, node: &str, iface: &str) -> Option<u32> {
        self.names
            .get(node)?
            .iter()
            .find(|(_, n)| *n == iface)
            .map(|(i, _)| *i)
    }

    /// Raw counts per interface, for the JSON report.
    pub fn raw(&self) -> Vec<IfaceCapture> {
        let mut out = Vec::new();
        for (node, nf) in &self.nodes {
            let names = &self.names[node];
            let mut by_if: BTreeMap<u32, IfaceCapture> = BTreeMap::new();
            for ((ifindex, dir, class), n) in &nf.counts {
                let e = by_if.entry(*ifindex).or_insert_with(|| IfaceCapture {
                    node: node.clone(),
                    iface: names
                        .get(ifindex)
                        .cloned()
                        .unwrap_or_else(|| format!("if{ifindex}")),
                    out: BTreeMap::new(),
                    inbound: BTreeMap::new(),
                    over_cap: nf.over_cap.get(ifindex).copied().unwrap_or(0),
                });
                match dir {
                    Dir::Out => e.out.insert(*class, *n),
                    Dir::In => e.inbound.insert(*class, *n),
                };
            }
            out.extend(by_if.into_values());
        }
        out
    }

    /// Packets of `class` seen on `node`'s interface `iface` in `dir`.
    pub fn count(&self, node: &str, iface: &str, dir: Dir, class: Class) -> u64 {
        let Some(idx) = self.ifindex(node, iface) else {
            return 0;
        };
        self.nodes
            .get(node)
            .and_then(|nf| nf.counts.get(&(idx, dir, class)))
            .copied()
            .unwrap_or(0)
    }
}
