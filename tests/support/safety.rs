//! A run never changes the namespace it starts in, and SIGKILL leaves
//! nothing behind: no daemon, namespace, mount or interface.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Failed;

use super::run_vpnlab;

/// Namespace inode of `/proc/<pid>/ns/<kind>`.
fn ns_of(pid: &str, kind: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

fn pids() -> Vec<String> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
                .collect()
        })
        .unwrap_or_default()
}

fn comm(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Everything that could keep a run's namespaces alive, found by scanning
/// every process: members of its PID namespace, processes in its network or
/// mount namespaces, descriptors and bind mounts of its network namespaces.
fn holders(pidns: &str, mntns: &str, netns: &BTreeSet<String>) -> Vec<String> {
    let mut found = Vec::new();
    for pid in pids() {
        if ns_of(&pid, "pid").as_deref() == Some(pidns) {
            found.push(format!(
                "process {pid} ({}) in the run's PID namespace",
                comm(&pid)
            ));
        }
        if ns_of(&pid, "mnt").as_deref() == Some(mntns) {
            found.push(format!(
                "process {pid} ({}) in the run's mount namespace",
                comm(&pid)
            ));
        }
        if let Some(n) = ns_of(&pid, "net") {
            if netns.contains(&n) {
                found.push(format!(
                    "process {pid} ({}) in node namespace {n}",
                    comm(&pid)
                ));
            }
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.filter_map(Result::ok) {
                if let Ok(t) = std::fs::read_link(fd.path()) {
                    if netns.contains(&t.to_string_lossy().into_owned()) {
                        found.push(format!(
                            "process {pid} ({}) holds {}",
                            comm(&pid),
                            t.display()
                        ));
                    }
                }
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for n in netns {
        let ino = n.trim_start_matches("net:[").trim_end_matches(']');
        if mounts
            .lines()
            .any(|l| l.contains("nsfs") && l.contains(&format!("net:[{ino}]")))
        {
            found.push(format!("network namespace {n} is bind-mounted"));
        }
    }
    found
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, Failed> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}").into());
        }
        // Polling /proc: there is no event for "a process appeared".
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGKILL vpnlab while a cell's daemons are up, then prove that no daemon,
/// namespace, mount or interface of that run survives.
pub fn sigkill_leaves_nothing() -> Result<(), Failed> {
    let host_links_before = host_links();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vpnlab"))
        .args(["run", "topologies/ipv6/nat64-well-known.toml"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let outer = child.id().to_string();
    // The sandboxed inner process is the outer one's only child.
    let inner = wait_for(
        "the sandboxed run to start",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children"))
                .ok()
                .and_then(|s| s.split_whitespace().next().map(str::to_string))
        },
    )?;
    // The inner process is PID 1 of the run's PID namespace from birth.
    let pidns = ns_of(&inner, "pid").ok_or("inner process vanished")?;
    // Mid-cell: both charons and the NAT64 gateway's translator are running
    // (the cell then spends about 1.5 s retransmitting before it gives up).
    wait_for(
        "two charon daemons and a tayga in the run",
        Duration::from_secs(10),
        || {
            let ours: Vec<String> = pids()
                .into_iter()
                .filter(|p| ns_of(p, "pid").as_deref() == Some(&pidns))
                .map(|p| comm(&p))
                .collect();
            let n = |c: &str| ours.iter().filter(|x| *x == c).count();
            (n("charon") >= 2 && n("tayga") == 1).then_some(())
        },
    )?;
    // By now the inner process has its private mount namespace.
    let mntns = ns_of(&inner, "mnt").ok_or("inner process vanished")?;
    if Some(&mntns) == ns_of("self", "mnt").as_ref() {
        return Err("the run did not take a private mount namespace".into());
    }
    let netns: BTreeSet<String> = std::fs::read_dir(format!("/proc/{inner}/fd"))?
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .filter(|t| t.starts_with("net:["))
        .collect();
    if netns.len() < 3 {
        return Err(format!(
            "expected the 3 node namespaces to be held by the run, found {netns:?}"
        )
        .into());
    }

    child.kill()?; // SIGKILL
    child.wait()?;
    let left = wait_for(
        "the run's processes and namespaces to disappear",
        Duration::from_secs(10),
        || holders(&pidns, &mntns, &netns).is_empty().then_some(()),
    );
    if left.is_err() {
        return Err(format!(
            "left behind after SIGKILL:\n{}",
            holders(&pidns, &mntns, &netns).join("\n")
        )
        .into());
    }
    if host_links() != host_links_before {
        return Err("the host's interfaces changed".into());
    }
    Ok(())
}

fn host_links() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// What a run must never change in the namespace it starts in.
fn host_state() -> String {
    let mut s = String::new();
    for (cmd, args) in [
        ("ip", vec!["-o", "link", "show"]),
        ("ip", vec!["-o", "addr", "show"]),
        ("ip", vec!["route", "show", "table", "all"]),
        ("ip", vec!["rule", "show"]),
        ("ip", vec!["xfrm", "state"]),
        ("ip", vec!["xfrm", "policy"]),
        ("nft", vec!["list", "ruleset"]),
    ] {
        let out = Command::new(cmd).args(&args).output();
        s.push_str(&format!("$ {cmd} {}\n", args.join(" ")));
        match out {
            Ok(o) => s.push_str(&String::from_utf8_lossy(&o.stdout)),
            Err(e) => s.push_str(&format!("(cannot run: {e})\n")),
        }
    }
    for key in [
        "net/ipv4/ip_forward",
        "net/ipv4/conf/all/forwarding",
        "net/ipv4/conf/all/rp_filter",
        "net/ipv4/ping_group_range",
        "net/netfilter/nf_conntrack_udp_timeout",
    ] {
        let v = std::fs::read_to_string(format!("/proc/sys/{key}"))
            .unwrap_or_else(|_| "(absent)\n".into());
        s.push_str(&format!("{key} = {v}"));
    }
    s.push_str(&format!("links: {:?}\n", host_links()));
    s
}

/// Links, addresses, routes, rules, XFRM, nftables and sysctls of the host
/// namespace are identical before and after a full cell.
pub fn host_untouched() -> Result<(), Failed> {
    let before = host_state();
    let out = run_vpnlab(&[
        "run",
        "topologies/seed.toml",
        "--cell",
        "seed/nat=masquerade,nat_t=auto",
    ])?;
    if !out.status.success() {
        return Err(format!("the cell failed:\n{}", String::from_utf8_lossy(&out.stdout)).into());
    }
    let after = host_state();
    if before != after {
        let diff: Vec<String> = after
            .lines()
            .filter(|l| !before.lines().any(|b| b == *l))
            .map(|l| format!("+ {l}"))
            .chain(
                before
                    .lines()
                    .filter(|l| !after.lines().any(|a| a == *l))
                    .map(|l| format!("- {l}")),
            )
            .collect();
        return Err(format!("host namespace changed:\n{}", diff.join("\n")).into());
    }
    Ok(())
}
