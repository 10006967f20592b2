//! Helpers of the scenario suite: privilege gating, running the binary,
//! snapshots, and the leak checks used by the safety tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};
use vpnlab::stack::Backend;

/// A plain test function.
pub type TestFn = fn() -> Result<(), Failed>;

/// Whether privileged tests can run here.
pub enum Privilege {
    /// Root: run them.
    Yes,
    /// Not root: ignore them (or fail them, if required).
    No { required: bool },
}

impl Privilege {
    /// Apply the privilege policy to a privileged trial.
    pub fn gate(&self, t: Trial) -> Trial {
        match self {
            Privilege::Yes => t,
            Privilege::No { required: false } => t.with_ignored_flag(true),
            Privilege::No { required: true } => {
                let name = t.name().to_string();
                Trial::test(name, || {
                    Err("VPNLAB_REQUIRE_PRIVILEGED=1 but not running as root: this test needs root (network namespaces, veth, nftables)".into())
                })
            }
        }
    }
}

/// Decide the privilege policy and say why tests are skipped.
pub fn privileged() -> Privilege {
    if nix::unistd::geteuid().is_root() {
        return Privilege::Yes;
    }
    let required = std::env::var("VPNLAB_REQUIRE_PRIVILEGED").as_deref() == Ok("1");
    if !required {
        eprintln!(
            "note: not running as root: the privileged tests (every scenario cell, the safety tests) are ignored. \
             Run as root to run them; set VPNLAB_REQUIRE_PRIVILEGED=1 to make this a failure."
        );
    }
    Privilege::No { required }
}

/// What `vpnlab run` will find on this machine: the default ESP backend
/// and whether the kernel has ESP (probed the same way).
pub fn machine(p: &Privilege) -> Option<(Backend, bool)> {
    match p {
        Privilege::Yes => {
            let rt = tokio::runtime::Runtime::new().ok()?;
            let esp = rt.block_on(vpnlab::cell::kernel_has_esp());
            Some((vpnlab::cell::default_backend(esp).ok()?, esp))
        }
        Privilege::No { .. } => None,
    }
}

/// The bundled scenarios.
pub fn topologies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies")
}

fn snapshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/snapshots")
}

/// Run the vpnlab binary with `args`.
pub fn run_vpnlab(args: &[&str]) -> Result<Output, Failed> {
    Command::new(env!("CARGO_BIN_EXE_vpnlab"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run vpnlab: {e}").into())
}

/// Run one cell through the CLI and return its report entry.
fn run_cell_json(file: &Path, id: &str) -> Result<(serde_json::Value, String), Failed> {
    let out = run_vpnlab(&[
        "run",
        &file.to_string_lossy(),
        "--cell",
        id,
        "--report",
        "-",
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("no JSON report from vpnlab ({e}); stderr:\n{stderr}"))?;
    let cell = report["cells"][0].clone();
    Ok((cell, stderr))
}

/// A cell test: verdict against `expect`, then the snapshot.
pub fn run_cell_test(file: &Path, id: &str) -> Result<(), Failed> {
    let (cell, stderr) = run_cell_json(file, id)?;
    judge_cell(id, &cell, &stderr)
}

/// A cell that needs kernel ESP, run in the shared VM batch.
pub fn run_vm_cell_test(id: &str, batch: &VmBatch) -> Result<(), Failed> {
    let report = batch.report()?;
    let cell = report["cells"]
        .as_array()
        .and_then(|cells| cells.iter().find(|c| c["outcome"]["cell"] == id))
        .ok_or_else(|| format!("cell {id} is missing from the VM batch's report"))?;
    judge_cell(
        id,
        cell,
        "(ran in the VM batch; its console is in the failing test's output)",
    )
}

/// Check a cell's report entry: verdict, then snapshot.
fn judge_cell(id: &str, cell: &serde_json::Value, stderr: &str) -> Result<(), Failed> {
    let outcome = cell["outcome"].clone();
    let verdict = outcome["verdict"].as_str().unwrap_or("missing").to_string();
    let snapshot = std::panic::catch_unwind(|| {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(snapshots_dir());
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.set_description(format!("vpnlab outcome of cell {id}"));
        settings.bind(|| insta::assert_yaml_snapshot!(id.replace('/', "__"), outcome));
    });
    if verdict != "pass" {
        return Err(format!("cell {id}: verdict {verdict}, expected pass\n{stderr}").into());
    }
    snapshot.map_err(|_| {
        Failed::from(format!(
            "cell {id}: outcome differs from its snapshot (see above; `cargo insta review`)"
        ))
    })
}

/// `vpnlab run` on the NAT-T off cells: listed as UNSUPPORTED with the
/// reason, not as a pass, and they do not fail the run.
pub fn unsupported_reported() -> Result<(), Failed> {
    let out = run_vpnlab(&[
        "run",
        "topologies/seed.toml",
        "--filter",
        "nat_t=off",
        "--report",
        "-",
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("unsupported cells must not fail the run:\n{stderr}").into());
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let cells = report["cells"].as_array().ok_or("no cells in report")?;
    if cells.len() != 4 {
        return Err(format!("expected the 4 nat_t=off cells, got {}", cells.len()).into());
    }
    for c in cells {
        let o = &c["outcome"];
        if o["verdict"] != "unsupported" {
            return Err(format!(
                "{}: verdict {}, expected unsupported",
                o["cell"], o["verdict"]
            )
            .into());
        }
        let reason = o["reason"].as_str().unwrap_or("");
        if !reason.contains("cannot disable NAT traversal") {
            return Err(format!("{}: reason does not say why: {reason}", o["cell"]).into());
        }
    }
    if !stderr.contains("UNSUPPORTED") || !stderr.contains("0 passed, 0 failed, 4 unsupported") {
        return Err(format!("table does not show the cells as unsupported:\n{stderr}").into());
    }
    Ok(())
}

/// A scenario whose expectation is wrong must fail the run (exit 1) and
/// name the mismatch: the verdict is computed, not assumed.
pub fn wrong_expectation_fails() -> Result<(), Failed> {
    let text = std::fs::read_to_string(topologies_dir().join("seed.toml"))?;
    // Claim the block-4500 cells come up: they must not.
    let wrong = text.replace(
        "when = { nat = \"block-4500\" }\ntunnel = \"down\"",
        "when = { nat = \"block-4500\" }\ntunnel = \"up\"",
    );
    assert_ne!(wrong, text, "the seed file changed shape; update this test");
    let dir = tempdir()?;
    let file = dir.join("wrong.toml");
    std::fs::write(&file, wrong)?;
    let out = run_vpnlab(&[
        "run",
        &file.to_string_lossy(),
        "--filter",
        "nat=block-4500,nat_t=auto",
    ])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.code() != Some(1) {
        return Err(format!("expected exit 1, got {:?}\n{stdout}", out.status.code()).into());
    }
    if !stdout.contains("FAIL") || !stdout.contains("tunnel: expected up, observed down") {
        return Err(format!("the table does not explain the failure:\n{stdout}").into());
    }
    if !stdout.contains("giving up after 2 retransmits") {
        return Err(format!("the initiator's log should show why IKE failed:\n{stdout}").into());
    }
    Ok(())
}

/// Bad input: a clear error naming file, line, column and field; exit 2.
pub fn invalid_rejected() -> Result<(), Failed> {
    let dir = tempdir()?;
    let file = dir.join("bad.toml");
    let text = std::fs::read_to_string(topologies_dir().join("seed.toml"))?.replace(
        "b = { node = \"gw\", addr = \"192.168.1.1/24\" }",
        "b = { node = \"gw2\", addr = \"192.168.1.1/24\" }",
    );
    std::fs::write(&file, &text)?;
    let line = text
        .lines()
        .position(|l| l.contains("gw2"))
        .ok_or("edit failed")?
        + 1;
    for cmd in ["check", "run"] {
        let out = run_vpnlab(&[cmd, &file.to_string_lossy()])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = format!("bad.toml:{line}:");
        if out.status.code() != Some(2)
            || !stderr.contains(&want)
            || !stderr.contains("links[0].b.node: unknown node `gw2`")
        {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("vpnlab {cmd}: expected exit 2 and `{want}... links[0].b.node: unknown node`, got {:?}:\n{stderr}", out.status.code()).into());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempdir() -> Result<PathBuf, Failed> {
    let dir = std::env::temp_dir().join(format!(
        "vpnlab-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

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
        .args([
            "run",
            "topologies/seed.toml",
            "--cell",
            "seed/nat=block-4500,nat_t=auto",
        ])
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
    // Mid-cell: both charons are running (the block-4500 cell then spends
    // about 1.5 s retransmitting before it gives up).
    wait_for(
        "two charon daemons in the run",
        Duration::from_secs(10),
        || {
            let n = pids()
                .into_iter()
                .filter(|p| ns_of(p, "pid").as_deref() == Some(&pidns) && comm(p) == "charon")
                .count();
            (n >= 2).then_some(())
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

/// Run cells with `--pcap`, read every file with tshark, and compare the
/// per-class counts Wireshark finds with the counts in vpnlab's report.
pub fn pcap_agrees_with_tshark() -> Result<(), Failed> {
    if Command::new("tshark").arg("--version").output().is_err() {
        return Err("tshark is not installed: apt-get install tshark (ci/setup.sh does)".into());
    }
    let dir = tempdir()?;
    let out = run_vpnlab(&[
        "run",
        "topologies/seed.toml",
        "--cell",
        "seed/nat=masquerade,nat_t=auto",
        "--cell",
        "seed/nat=block-4500,nat_t=auto",
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
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)))?;
    let mut compared = 0;
    for cell in report["cells"].as_array().ok_or("no cells")? {
        let id = cell["outcome"]["cell"].as_str().unwrap_or_default();
        for ifc in cell["capture"]
            .as_array()
            .ok_or("no capture in the report")?
        {
            let (node, iface) = (
                ifc["node"].as_str().unwrap_or(""),
                ifc["iface"].as_str().unwrap_or(""),
            );
            let file = dir.join(id).join(format!("{node}-{iface}.pcap"));
            let t = Command::new("tshark")
                .args([
                    "-r",
                    &file.to_string_lossy(),
                    "-T",
                    "fields",
                    "-E",
                    "separator=;",
                    "-e",
                    "frame.protocols",
                    "-e",
                    "udp.port",
                    "-e",
                    "ip.proto",
                ])
                .output()?;
            if !t.status.success() {
                return Err(format!(
                    "tshark cannot read {}: {}",
                    file.display(),
                    String::from_utf8_lossy(&t.stderr)
                )
                .into());
            }
            let mut theirs: std::collections::BTreeMap<&str, u64> = Default::default();
            let text = String::from_utf8_lossy(&t.stdout).into_owned();
            let mut frames = 0;
            for line in text.lines() {
                let f: Vec<&str> = line.split(';').collect();
                *theirs
                    .entry(tshark_class(
                        f[0],
                        f.get(1).unwrap_or(&""),
                        f.get(2).unwrap_or(&""),
                    ))
                    .or_default() += 1;
                frames += 1;
            }
            let mut ours: std::collections::BTreeMap<&str, u64> = Default::default();
            let mut total = 0;
            for dirn in ["out", "in"] {
                if let Some(m) = ifc[dirn].as_object() {
                    for (k, v) in m {
                        let n = v.as_u64().unwrap_or(0);
                        total += n;
                        let k = match k.as_str() {
                            "ike-500" => "ike-500",
                            "ike-4500" => "ike-4500",
                            "esp-in-udp" => "esp-in-udp",
                            "natt-keepalive" => "natt-keepalive",
                            "esp" => "esp",
                            _ => "rest",
                        };
                        *ours.entry(k).or_default() += n;
                    }
                }
            }
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
    if compared < 8 {
        return Err(format!(
            "only {compared} pcap files compared; expected every interface of both cells"
        )
        .into());
    }
    Ok(())
}

/// Every cell that needs kernel ESP, run once per test run in one VM boot
/// (`vpnlab run --kernel auto`), shared by their tests through a file
/// under the target directory, guarded by a lock: nextest runs each test in
/// its own process.
pub struct VmBatch {
    /// (file, cell) of every cell of the batch.
    pub cells: Vec<(PathBuf, String)>,
}

impl VmBatch {
    fn paths() -> (PathBuf, PathBuf) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        // One batch per test run: nextest gives all its processes a run id.
        let run =
            std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| std::process::id().to_string());
        (
            dir.join("vm-batch.lock"),
            dir.join(format!("vm-batch-{run}.json")),
        )
    }

    /// The batch's report, running the batch if no test has yet.
    pub fn report(&self) -> Result<serde_json::Value, Failed> {
        use nix::fcntl::{Flock, FlockArg};
        let (lock, cache) = Self::paths();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)?;
        let _guard = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("cannot lock {}: {e}", lock.display()))?;
        if !cache.exists() {
            // Earlier runs' results are stale.
            if let Ok(d) = std::fs::read_dir(cache.parent().expect("dir")) {
                for e in d.filter_map(Result::ok) {
                    if e.file_name().to_string_lossy().starts_with("vm-batch-") {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            let mut args: Vec<String> = vec![
                "run".into(),
                "--kernel".into(),
                "auto".into(),
                "--jobs".into(),
                "2".into(),
            ];
            let mut files: Vec<String> = self
                .cells
                .iter()
                .map(|(f, _)| f.to_string_lossy().into_owned())
                .collect();
            files.sort();
            files.dedup();
            args.extend(files);
            for (_, id) in &self.cells {
                args.extend(["--cell".into(), id.clone()]);
            }
            args.extend(["--report".into(), cache.to_string_lossy().into_owned()]);
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run_vpnlab(&argv)?;
            if !cache.exists() {
                let msg = format!(
                    "the VM batch produced no report (exit {:?}):\n{}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                );
                std::fs::write(&cache, serde_json::json!({ "error": msg }).to_string())?;
            } else {
                eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            }
        }
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cache)?)?;
        if let Some(e) = report["error"].as_str() {
            return Err(e.to_string().into());
        }
        Ok(report)
    }
}

/// Whether an expectation states a failure.
pub fn negative(e: &vpnlab::model::Expectation) -> bool {
    e.is_negative()
}

/// What an outcome observed as failed: `tunnel`, `check <name>`, `wait
/// <name>`.
fn failures(outcome: &serde_json::Value) -> Vec<String> {
    let mut f = Vec::new();
    if outcome["tunnel"] == "down" {
        f.push("tunnel".to_string());
    }
    let step_checks = outcome["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["checks"].as_array().into_iter().flatten());
    for c in outcome["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(step_checks)
    {
        if c["result"] == "fail" {
            f.push(format!("check {}", c["name"].as_str().unwrap_or("?")));
        }
    }
    for s in outcome["steps"].as_array().into_iter().flatten() {
        if s["wait"] == "timeout" {
            f.push(format!("wait {}", s["name"].as_str().unwrap_or("?")));
        }
    }
    f
}

/// Where a flip test gets a cell's outcome from.
pub enum Source {
    /// Run it here.
    Host(PathBuf),
    /// Take it from the shared VM batch.
    Vm(VmBatch),
}

impl Source {
    fn outcome(&self, id: &str) -> Result<serde_json::Value, Failed> {
        match self {
            Source::Host(file) => Ok(run_cell_json(file, id)?.0["outcome"].clone()),
            Source::Vm(batch) => {
                let report = batch.report()?;
                report["cells"]
                    .as_array()
                    .and_then(|cells| cells.iter().find(|c| c["outcome"]["cell"] == id))
                    .map(|c| c["outcome"].clone())
                    .ok_or_else(|| {
                        format!("cell {id} is missing from the VM batch's report").into()
                    })
            }
        }
    }
}

/// A flip test: the negative cell fails for the stated reason (its verdict
/// passes and it observed failures), and the cell that differs from it only
/// by one knob observes none of them.
pub fn flip_test(src: &Source, negative_id: &str, positive_id: &str) -> Result<(), Failed> {
    let neg = src.outcome(negative_id)?;
    let pos = src.outcome(positive_id)?;
    for (id, o) in [(negative_id, &neg), (positive_id, &pos)] {
        if o["verdict"] != "pass" {
            return Err(format!(
                "cell {id}: verdict {}, expected pass; mismatches: {}",
                o["verdict"], o["mismatches"]
            )
            .into());
        }
    }
    let (fneg, fpos) = (failures(&neg), failures(&pos));
    if fneg.is_empty() {
        return Err(format!("{negative_id} observed no failure: nothing to flip").into());
    }
    if !fpos.is_empty() {
        return Err(format!(
            "{positive_id} still observes failures after the one change: {}",
            fpos.join(", ")
        )
        .into());
    }
    eprintln!(
        "{negative_id}: {} failed; {positive_id}: all pass",
        fneg.join(", ")
    );
    Ok(())
}
