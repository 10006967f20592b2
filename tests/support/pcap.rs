//! vpnlab's pcap files read back with Wireshark's dissectors (tshark): the
//! same frames, classified the same way.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use libtest_mimic::Failed;
use vpnlab::model::Class;

use super::{report_of, run_vpnlab, tempdir};

/// The name of vpnlab's class in [`tshark_class`]'s terms.
fn wireshark_name(c: Class) -> &'static str {
    match c {
        Class::Ike500 => "ike-500",
        Class::Ike4500 => "ike-4500",
        Class::EspInUdp => "esp-in-udp",
        Class::NattKeepalive => "natt-keepalive",
        Class::Esp => "esp",
        _ => "rest",
    }
}

/// Frames in `file` and their classes, as tshark dissects them.
fn tshark_counts(file: &Path) -> Result<(u64, BTreeMap<&'static str, u64>), Failed> {
    let t = Command::new("tshark")
        .args([
            "-r",
            &file.to_string_lossy(),
            "-T",
            "fields",
            "-E",
            "separator=;",
        ])
        .args(["-e", "frame.protocols", "-e", "udp.port", "-e", "ip.proto"])
        .args(["-e", "ipv6.nxt"])
        .output()?;
    if !t.status.success() {
        return Err(format!(
            "tshark cannot read {}: {}",
            file.display(),
            String::from_utf8_lossy(&t.stderr)
        )
        .into());
    }
    let mut counts = BTreeMap::new();
    let mut frames = 0;
    for line in String::from_utf8_lossy(&t.stdout).lines() {
        let f: Vec<&str> = line.split(';').collect();
        // The IP protocol, of whichever family the frame is.
        let proto = [f.get(2), f.get(3)]
            .into_iter()
            .flatten()
            .find(|p| !p.is_empty())
            .unwrap_or(&"");
        let class = tshark_class(f[0], f.get(1).unwrap_or(&""), proto);
        *counts.entry(class).or_default() += 1;
        frames += 1;
    }
    Ok((frames, counts))
}

/// Wireshark's own classification of one frame, from `tshark -T fields`.
fn tshark_class(protocols: &str, udp_ports: &str, ip_proto: &str) -> &'static str {
    let udp: Vec<&str> = udp_ports.split(',').collect();
    let on = |p: &str| udp.contains(&p);
    if protocols.contains("isakmp") && on("500") {
        "ike-500"
    } else if protocols.contains("isakmp") && on("4500") {
        "ike-4500"
    } else if protocols.contains("esp") && on("4500") {
        "esp-in-udp"
    } else if on("4500") {
        "natt-keepalive"
    } else if ip_proto == "50" {
        "esp"
    } else {
        "rest"
    }
}

/// Run cells with `--pcap` (two IPv4 cells, one IPv6 cell), read every file
/// with tshark, and compare the per-class counts Wireshark finds with the
/// counts in vpnlab's report.
pub fn pcap_agrees_with_tshark() -> Result<(), Failed> {
    if Command::new("tshark").arg("--version").output().is_err() {
        return Err("tshark is not installed: apt-get install tshark (ci/setup.sh does)".into());
    }
    let dir = tempdir()?;
    let out = run_vpnlab(&[
        "run",
        "topologies/seed.toml",
        "topologies/ipv6/host-to-host.toml",
        "--cell",
        "seed/nat=masquerade,nat_t=auto",
        "--cell",
        "seed/nat=block-4500,nat_t=auto",
        "--cell",
        "host-to-host/nat_t=auto",
        "--pcap",
        &dir.to_string_lossy(),
        "--report",
        "-",
    ])?;
    let result = compare_pcaps(&out, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn compare_pcaps(out: &Output, dir: &Path) -> Result<(), Failed> {
    let report = report_of(out)?;
    let mut compared = 0;
    for cell in &report.cells {
        if cell.capture.is_empty() {
            return Err(format!("{}: no capture in the report", cell.outcome.cell).into());
        }
        for ifc in &cell.capture {
            let file = dir
                .join(&cell.outcome.cell)
                .join(format!("{}-{}.pcap", ifc.node, ifc.iface));
            let (frames, theirs) = tshark_counts(&file)?;
            let mut ours: BTreeMap<&str, u64> = BTreeMap::new();
            for (class, n) in ifc.out.iter().chain(&ifc.inbound) {
                *ours.entry(wireshark_name(*class)).or_default() += n;
            }
            let total: u64 = ours.values().sum();
            if frames != total || theirs != ours {
                return Err(format!(
                    "{}: tshark finds {frames} frames {theirs:?}, vpnlab reported {total} {ours:?}",
                    file.display()
                )
                .into());
            }
            compared += 1;
        }
    }
    if compared < 14 {
        return Err(format!(
            "only {compared} pcap files compared; expected every interface of the three cells"
        )
        .into());
    }
    Ok(())
}
