//! Traffic checks through the tunnel: ICMP echo, UDP echo and TCP echo,
//! with sockets opened inside the sending and answering nodes. ICMP's
//! checksum has no pseudo-header while UDP's covers the IP addresses, so a
//! NAT can break one and not the other; scenarios use both. TCP fills
//! segments up to the MSS, which is what MSS clamping and path MTU black
//! holes act on.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use tokio::time::{timeout_at, Instant};

use crate::model::{Check, CheckExpect, CheckKind};
use crate::outcome::CheckResult;
use crate::topology::netns::Netns;

/// Gap between probes, so they are not all in flight at once.
const PROBE_GAP: Duration = Duration::from_millis(10);

/// Bytes a TCP check echoes by default.
const TCP_DEFAULT_SIZE: u32 = 1000;
/// A TCP connection's echo must complete within this many reply waits
/// (after the first lost segment, Linux retransmits at 200 ms, 400 ms...).
const TCP_WAITS: u32 = 5;

/// What a check sends: `count` probes from `src` to `dst` of `size` payload
/// bytes, then a `wait` for late replies.
#[derive(Debug, Clone, Copy)]
struct Probes {
    src: IpAddr,
    dst: IpAddr,
    count: u32,
    wait: Duration,
    size: Option<u32>,
    df: Option<bool>,
    /// A fixed interval between probes (else: the next goes when every
    /// probe so far is answered, or after [`PROBE_GAP`]).
    interval: Option<Duration>,
}

impl Probes {
    /// How long to wait after probe `seq` before the next, and how many
    /// replies end that wait early (none, with a fixed interval).
    fn pace(&self, seq: u32) -> (Duration, u32) {
        match self.interval {
            Some(i) => (i, u32::MAX),
            None => (PROBE_GAP, seq),
        }
    }
}

/// Apply the check's don't-fragment setting to a socket.
fn set_df(fd: std::os::fd::BorrowedFd<'_>, p: &Probes) -> std::io::Result<()> {
    match p.df {
        Some(df) => crate::sys::set_dont_fragment(fd, p.dst.is_ipv6(), df),
        None => Ok(()),
    }
}

/// Run one check between two namespaces; replies are awaited `reply_wait`
/// after the last probe.
pub async fn run(check: &Check, from: &Netns, to: &Netns, reply_wait: Duration) -> CheckResult {
    let probes = Probes {
        src: check.src,
        dst: check.dst,
        count: check.count,
        wait: reply_wait,
        size: check.size,
        df: check.df,
        interval: check.interval,
    };
    let path = match check.port {
        Some(p) => format!("{} -> {}:{p}", check.src, check.dst),
        None => format!("{} -> {}", check.src, check.dst),
    };
    let port = check.port.unwrap_or(7);
    let all = |r: std::io::Result<u32>| r.map(|n| (check.count, n));
    let res = match check.kind {
        CheckKind::Ping => all(ping(from, probes).await),
        CheckKind::Udp => all(udp_echo(from, to, probes, port).await),
        CheckKind::Tcp => tcp_echo(from, to, probes, port).await,
    };
    let (sent, received, error) = match res {
        Ok((s, n)) => (s, n, None),
        Err(e) => (0, 0, Some(e.to_string())),
    };
    CheckResult {
        name: check.name.clone(),
        kind: check.kind,
        path,
        size: check.size,
        sent,
        received,
        result: if error.is_none() && received == check.count {
            CheckExpect::Pass
        } else {
            CheckExpect::Fail
        },
        error,
        no_route_back: None,
    }
}

/// Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP (IPv4) or ICMPv6 echo request. ICMPv6's checksum covers a
/// pseudo-header the kernel fills in, so it is left zero here.
pub fn echo_request(v6: bool, id: u16, seq: u16, size: Option<u32>) -> Vec<u8> {
    let mut p = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&payload(b"vpnlab-check-payload", size));
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// `head`, padded (or cut) to `size` bytes.
fn payload(head: &[u8], size: Option<u32>) -> Vec<u8> {
    let Some(n) = size else {
        return head.to_vec();
    };
    let mut v: Vec<u8> = head
        .iter()
        .copied()
        .chain(std::iter::repeat(b'.'))
        .take(n as usize)
        .collect();
    v.truncate(n as usize);
    v
}

/// If `pkt`, received from `src` on a raw ICMP socket, is an echo reply
/// from `from` with `id`, its sequence number. An IPv4 raw socket hands
/// over the IP header too; an ICMPv6 one only the ICMPv6 message.
pub fn parse_echo_reply(pkt: &[u8], src: IpAddr, from: IpAddr, id: u16) -> Option<u16> {
    let (icmp, reply) = match from {
        IpAddr::V4(_) => (pkt.get(usize::from(pkt.first()? & 0x0f) * 4..)?, 0),
        IpAddr::V6(_) => (pkt, 129),
    };
    if src != from || icmp.len() < 8 || icmp[0] != reply || icmp[1] != 0 {
        return None;
    }
    (u16::from_be_bytes([icmp[4], icmp[5]]) == id).then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

async fn ping(from: &Netns, p: Probes) -> std::io::Result<u32> {
    if p.src.is_ipv4() != p.dst.is_ipv4() {
        return Err(std::io::Error::other(
            "ping between addresses of different IP families",
        ));
    }
    let fd: OwnedFd = from.icmp_socket(p.src)?;
    set_df(fd.as_fd(), &p)?;
    // A raw socket has no tokio wrapper; the exchange is short and bounded,
    // so it runs on a blocking thread.
    tokio::task::spawn_blocking(move || ping_blocking(fd, p))
        .await
        .map_err(std::io::Error::other)?
}

/// Echo requests paced by their replies, then a wait for late ones; the
/// number of distinct replies.
fn ping_blocking(fd: OwnedFd, p: Probes) -> std::io::Result<u32> {
    use nix::sys::socket::{recvfrom, sendto, MsgFlags, SockaddrStorage};
    use std::time::Instant;
    let v6 = p.dst.is_ipv6();
    // Distinct per process and check so concurrent checks never mix replies.
    let last = match p.src {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    let id = (std::process::id() as u16) ^ (u16::from(last) << 8);
    let to = SockaddrStorage::from(SocketAddr::new(p.dst, 0));
    let mut seen = std::collections::BTreeSet::new();
    let mut buf = vec![0u8; 1 << 17];
    let raw = fd.as_raw_fd();
    // Until `want` replies are in or `deadline` passes.
    let mut wait_until = |seen: &mut std::collections::BTreeSet<u16>,
                          want: u32,
                          deadline: Instant|
     -> std::io::Result<()> {
        let mut pfd = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        while (seen.len() as u32) < want {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            if nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms))? == 0 {
                continue;
            }
            match recvfrom::<SockaddrStorage>(raw, &mut buf) {
                Ok((n, Some(addr))) => {
                    if let Some(seq) =
                        source(&addr).and_then(|s| parse_echo_reply(&buf[..n], s, p.dst, id))
                    {
                        seen.insert(seq);
                    }
                }
                Ok((_, None)) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    };
    // The next probe goes when every probe so far is answered, or after
    // the gap; then late replies have `reply_wait`.
    for seq in 1..=p.count as u16 {
        sendto(
            raw,
            &echo_request(v6, id, seq, p.size),
            &to,
            MsgFlags::empty(),
        )?;
        let (gap, want) = p.pace(u32::from(seq));
        wait_until(&mut seen, want, Instant::now() + gap)?;
    }
    wait_until(&mut seen, p.count, Instant::now() + p.wait)?;
    Ok(seen.len() as u32)
}

/// The IP address a datagram came from.
fn source(addr: &nix::sys::socket::SockaddrStorage) -> Option<IpAddr> {
    if let Some(a) = addr.as_sockaddr_in() {
        return Some(IpAddr::V4(a.ip()));
    }
    addr.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip()))
}

async fn udp_echo(from: &Netns, to: &Netns, p: Probes, port: u16) -> std::io::Result<u32> {
    let Probes {
        src,
        dst,
        count,
        wait: reply_wait,
        ..
    } = p;
    let server = to.udp_socket(SocketAddr::new(dst, port))?;
    set_df(server.as_fd(), &p)?;
    let responder = tokio::spawn(async move {
        let mut buf = vec![0u8; 1 << 17];
        while let Ok((n, peer)) = server.recv_from(&mut buf).await {
            let _ = server.send_to(&buf[..n], peer).await;
        }
    });
    let client = from.udp_socket(SocketAddr::new(src, 0))?;
    set_df(client.as_fd(), &p)?;
    let target = SocketAddr::new(dst, port);
    let mut seen = std::collections::BTreeSet::new();
    let mut buf = vec![0u8; 1 << 17];
    // Probe, drain until every probe so far is answered or the gap
    // passes, repeat; then wait for stragglers.
    for seq in 1..=count {
        let probe = payload(format!("vpnlab-udp-{seq}-").as_bytes(), p.size);
        client.send_to(&probe, target).await?;
        let (gap, want) = p.pace(seq);
        recv_echoes(
            &client,
            target,
            &mut seen,
            &mut buf,
            want,
            Instant::now() + gap,
        )
        .await;
    }
    let deadline = Instant::now() + reply_wait;
    recv_echoes(&client, target, &mut seen, &mut buf, count, deadline).await;
    responder.abort();
    Ok(seen.len() as u32)
}

async fn recv_echoes(
    client: &tokio::net::UdpSocket,
    target: SocketAddr,
    seen: &mut std::collections::BTreeSet<u32>,
    buf: &mut [u8],
    want: u32,
    deadline: Instant,
) {
    while (seen.len() as u32) < want {
        match timeout_at(deadline, client.recv_from(buf)).await {
            Ok(Ok((n, peer))) if peer == target => {
                if let Some(seq) = std::str::from_utf8(&buf[..n])
                    .ok()
                    .and_then(|s| s.strip_prefix("vpnlab-udp-"))
                    .and_then(|s| s.split('-').next())
                    .and_then(|s| s.parse().ok())
                {
                    seen.insert(seq);
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
}

/// `count` TCP connections one after the other, each echoing `size` bytes
/// within its bound: how many were tried and how many completed (it stops
/// at the first that does not: the rest would meet the same path).
async fn tcp_echo(from: &Netns, to: &Netns, p: Probes, port: u16) -> std::io::Result<(u32, u32)> {
    let listener = to.tcp_listener(SocketAddr::new(p.dst, port))?;
    let df = p;
    let server = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let _ = set_df(conn.as_fd(), &df);
            tokio::spawn(async move {
                let (mut r, mut w) = conn.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let size = p.size.unwrap_or(TCP_DEFAULT_SIZE) as usize;
    let bound = p.wait * TCP_WAITS;
    let (mut tried, mut done) = (0, 0);
    for seq in 0..p.count {
        tried += 1;
        let data = payload(format!("vpnlab-tcp-{seq}-").as_bytes(), Some(size as u32));
        // A refused, reset or stalled connection is the check failing, not
        // an error of vpnlab's.
        match tokio::time::timeout(bound, tcp_one(from, &p, port, &data)).await {
            Ok(Ok(true)) => done += 1,
            _ => break,
        }
    }
    server.abort();
    Ok((tried, done))
}

/// One connection: send `data`, read it back, compare.
async fn tcp_one(from: &Netns, p: &Probes, port: u16, data: &[u8]) -> std::io::Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = from.tcp_socket(p.src)?;
    set_df(sock.as_fd(), p)?;
    let stream = sock.connect(SocketAddr::new(p.dst, port)).await?;
    let (mut r, mut w) = stream.into_split();
    let send = async move {
        w.write_all(data).await?;
        w.shutdown().await
    };
    let mut back = Vec::with_capacity(data.len());
    let (sent, read) = tokio::join!(send, r.read_to_end(&mut back));
    sent?;
    read?;
    Ok(back == data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_checksum_verifies() {
        let p = echo_request(false, 0x1234, 7, None);
        assert_eq!(
            checksum(&p),
            0,
            "a packet including its checksum sums to zero"
        );
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
    }

    #[test]
    fn echo_reply_is_matched_by_source_and_id() {
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 10, 2, 1, 10, 10, 1, 1,
        ];
        let mut icmp = echo_request(false, 42, 3, None);
        icmp[0] = 0;
        ip.extend_from_slice(&icmp);
        let from = IpAddr::V4(std::net::Ipv4Addr::new(10, 10, 2, 1));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 10, 2, 2));
        assert_eq!(parse_echo_reply(&ip, from, from, 42), Some(3));
        assert_eq!(parse_echo_reply(&ip, from, from, 43), None);
        assert_eq!(parse_echo_reply(&ip, other, from, 42), None);
        ip[20] = 8; // a request, not a reply
        assert_eq!(parse_echo_reply(&ip, from, from, 42), None);
    }

    #[test]
    fn icmpv6_echo_has_no_header_and_its_own_types() {
        let req = echo_request(true, 7, 2, None);
        assert_eq!(
            (req[0], &req[2..4]),
            (128, &[0u8, 0][..]),
            "the kernel fills in the checksum"
        );
        let mut reply = req.clone();
        reply[0] = 129;
        let from: IpAddr = "2001:db8:b::1".parse().unwrap();
        assert_eq!(parse_echo_reply(&reply, from, from, 7), Some(2));
        assert_eq!(
            parse_echo_reply(&req, from, from, 7),
            None,
            "a request is no reply"
        );
    }
}
