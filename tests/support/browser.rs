//! The HTML report opened in a real browser (Debian's headless Chromium):
//! every cell present with its verdict, one ladder arrow per IKE message
//! the capture saw (counted independently, with tshark, in the pcap
//! files), and, from the VM batch, the seed's win2000/NAT-T-off cell's ESP
//! arrows ending dropped at gw. A screenshot is kept under `target/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::Failed;
use vpnlab::batch::Report;

use super::{cells::VmBatch, in_tempdir, report_of, run_vpnlab};

/// Where Debian's package puts Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Why the browser tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    (!Path::new(CHROMIUM).exists())
        .then(|| format!("{CHROMIUM} not found: apt-get install chromium (ci/setup.sh does)"))
}

/// Chromium, headless, as this machine's closed network needs it: no
/// background connections, a fresh profile.
fn chromium(profile: &Path) -> Command {
    let mut c = Command::new(CHROMIUM);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The DOM of `page` after its scripts ran.
fn dom(page: &Path, profile: &Path) -> Result<String, Failed> {
    let out = chromium(profile)
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .map_err(|e| format!("{CHROMIUM}: {e}"))?;
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !dom.contains("data-ready=\"1\"") {
        return Err(format!(
            "Chromium did not render {} (exit {:?}; the page's script must set data-ready):\n{}",
            page.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(dom)
}

/// A screenshot of `page` at `to` (under target/, for a human to look at).
fn screenshot(page: &Path, profile: &Path, to: &Path) -> Result<(), Failed> {
    let out = chromium(profile)
        .arg("--window-size=1200,2400")
        .arg(format!("--screenshot={}", to.display()))
        .arg(format!("file://{}", page.display()))
        .output()?;
    if !out.status.success() || !to.exists() {
        return Err(format!("no screenshot at {}", to.display()).into());
    }
    Ok(())
}

/// The target directory (screenshots are kept there).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The DOM of each cell's details, by cell name.
fn cell_doms(dom: &str) -> Vec<(String, &str)> {
    dom.split("<details class=\"cell\"")
        .skip(1)
        .filter_map(|d| {
            let d = &d[..d.find("</details>").unwrap_or(d.len())];
            let name = d.split("data-cell=\"").nth(1)?.split('"').next()?;
            Some((name.replace("&amp;", "&"), d))
        })
        .collect()
}

/// Every cell of `report` is in the grid and in the details with its
/// verdict.
fn every_cell_present(dom: &str, report: &Report) -> Result<(), Failed> {
    let details = cell_doms(dom);
    for c in &report.cells {
        let o = &c.outcome;
        let v = o.verdict.label().to_lowercase();
        let grid = format!("data-cell=\"{}\" data-verdict=\"{v}\"", o.cell);
        let detail = details
            .iter()
            .find(|(n, _)| *n == o.cell)
            .is_some_and(|(_, d)| d.contains(&format!("data-verdict=\"{v}\"")));
        if dom.matches(&grid).count() < 2 || !detail {
            return Err(format!("{} is not shown as {v} in grid and details", o.cell).into());
        }
    }
    if details.len() != report.cells.len() {
        return Err(format!("{} cells shown, {} run", details.len(), report.cells.len()).into());
    }
    Ok(())
}

/// IKE messages in `pcap` sent from `src`, as Wireshark dissects them.
fn tshark_ike(pcap: &Path, src: &str) -> Result<usize, Failed> {
    let out = Command::new("tshark")
        .args(["-r", &pcap.to_string_lossy(), "-Y"])
        .arg(format!("isakmp && ip.src == {src}"))
        .args(["-T", "fields", "-e", "frame.number"])
        .output()
        .map_err(|e| format!("tshark: {e} (apt-get install tshark)"))?;
    if !out.status.success() {
        return Err(format!("tshark: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().count())
}

/// The seed's block-4500 and masquerade cells, with pcap files and the
/// HTML report, opened in Chromium.
pub fn html_report_in_chromium() -> Result<(), Failed> {
    in_tempdir(html_report_in)
}

fn html_report_in(dir: &Path) -> Result<(), Failed> {
    let page = dir.join("report.html");
    let pcap = dir.join("pcap");
    let (p, pc) = (page.to_string_lossy(), pcap.to_string_lossy());
    let args = [
        "run",
        "topologies/seed.toml",
        "--filter",
        "nat=block-4500",
        "--filter",
        "nat=masquerade",
        "--pcap",
        &pc,
        "--html",
        &p,
        "--report",
        "-",
    ];
    let report = report_of(&run_vpnlab(&args)?)?;
    let profile = dir.join("chromium");
    let dom = dom(&page, &profile)?;
    every_cell_present(&dom, &report)?;
    // The seed's addresses: the client's own, and the server's.
    let ends = [("client", "192.168.1.2"), ("server", "203.0.113.2")];
    let cells = cell_doms(&dom);
    let mut ran = 0;
    for (name, d) in &cells {
        let celldir = pcap.join(name);
        if !celldir.exists() {
            continue; // not run (unsupported)
        }
        let mut seen = 0;
        for (node, addr) in ends {
            seen += tshark_ike(&celldir.join(format!("{node}-to-gw.pcap")), addr)?;
        }
        let arrows = d.matches("data-kind=\"ike\"").count();
        if seen == 0 || arrows != seen {
            return Err(
                format!("{name}: {arrows} IKE arrows, {seen} IKE messages captured").into(),
            );
        }
        ran += 1;
    }
    if ran != 4 {
        return Err(format!("expected 4 cells that ran, found {ran}").into());
    }
    let blocked = cells
        .iter()
        .find(|(n, _)| n == "seed/nat=block-4500,nat_t=auto")
        .map_or("", |(_, d)| *d);
    if !blocked.contains("data-kind=\"ike\" data-end=\"dropped\" data-to=\"gw\"") {
        return Err("block-4500: no IKE arrow ends dropped at gw".into());
    }
    screenshot(&page, &profile, &target_dir().join("html-report-seed.png"))
}

/// The VM batch's seed cells (L2TP over IPsec, PPTP) as a page: in the
/// win2000 cell without NAT-T, ESP arrows end dropped at gw, and in its
/// flip partner with NAT-T, ESP in UDP is delivered to the server.
pub fn vm_seed_report_in_chromium(batch: &VmBatch) -> Result<(), Failed> {
    let mut report = batch.report()?;
    libreswan_builds_named(&report)?;
    report.cells.retain(|c| c.outcome.cell.starts_with("seed-"));
    if report.cells.is_empty() {
        return Err("the VM batch has no seed cells".into());
    }
    in_tempdir(|dir| vm_seed_in(dir, &report))
}

/// The batch's libreswan ends name the build that ran: pluto from the
/// prefix Debian's package was unpacked into (a second installation, as
/// `make install DESTDIR=PREFIX` of one's own build would be).
fn libreswan_builds_named(report: &Report) -> Result<(), Failed> {
    let pluto = vpnlab::stack::libreswan::tool("pluto")
        .display()
        .to_string();
    let ends: Vec<_> = report
        .cells
        .iter()
        .flat_map(|c| &c.outcome.endpoints)
        .filter(|e| e.stack.starts_with("Libreswan"))
        .collect();
    match ends
        .iter()
        .find(|e| e.build.as_deref() != Some(pluto.as_str()))
    {
        _ if ends.is_empty() => Err("no libreswan end in the VM batch".into()),
        Some(e) => Err(format!("{}: build {:?}, not {pluto}", e.node, e.build).into()),
        None => Ok(()),
    }
}

fn vm_seed_in(dir: &Path, report: &Report) -> Result<(), Failed> {
    let json = dir.join("seed.json");
    std::fs::write(&json, serde_json::to_string(report)?)?;
    let page = dir.join("seed.html");
    run_vpnlab(&[
        "html",
        &json.to_string_lossy(),
        "--out",
        &page.to_string_lossy(),
    ])?;
    let profile = dir.join("chromium");
    let dom = dom(&page, &profile)?;
    every_cell_present(&dom, report)?;
    let cells = cell_doms(&dom);
    let cell = |id: &str| {
        cells
            .iter()
            .find(|(n, _)| n == id)
            .map(|(_, d)| *d)
            .ok_or_else(|| format!("{id} is not in the page"))
    };
    let off = cell("seed-l2tp/nat=win2000,nat_t=off")?;
    if !off.contains("data-kind=\"esp\" data-end=\"dropped\" data-to=\"gw\"") {
        return Err("win2000, NAT-T off: no ESP arrow ends dropped at gw".into());
    }
    let auto = cell("seed-l2tp/nat=win2000,nat_t=auto")?;
    if !auto.contains("data-kind=\"esp-in-udp\" data-end=\"delivered\" data-to=\"server\"") {
        return Err("win2000, NAT-T on: no ESP in UDP delivered to server".into());
    }
    screenshot(
        &page,
        &profile,
        &target_dir().join("html-report-vm-seed.png"),
    )
}
