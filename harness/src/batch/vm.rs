//! `--kernel`: run cells inside a VM that boots a chosen kernel, with
//! virtme-ng (`vng`) and qemu. The host's root is shared read-only, a
//! scratch directory is shared read-write for the results, and one boot
//! serves the whole batch. Inside, vpnlab runs as usual (its own sandbox,
//! strongSwan on kernel XFRM when the kernel has ESP); the host hands the
//! report back exactly as a host run would produce it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub use crate::error::VmError;

/// The command that installs everything VM mode needs.
pub const INSTALL: &str = "apt-get install -y --no-install-recommends qemu-system-x86 linux-image-amd64 busybox-static && pip install virtme-ng";

/// Resolve `--kernel`: a path to a kernel image, or `auto` for the newest
/// installed distribution kernel (`/boot/vmlinuz-*` with its modules).
pub fn find_kernel(spec: &str) -> Result<PathBuf, VmError> {
    if spec != "auto" {
        let p = PathBuf::from(spec);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(VmError::NoKernel(format!("kernel image {spec} not found")))
        };
    }
    let mut found: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/boot")
        .map_err(|e| {
            VmError::NoKernel(format!(
                "cannot read /boot ({e}); install a kernel: {INSTALL}"
            ))
        })?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("vmlinuz-")?.to_string();
            // Only kernels whose modules are installed can load ESP & co.
            Path::new("/lib/modules")
                .join(&version)
                .join("modules.dep")
                .is_file()
                .then(|| {
                    let key = version
                        .split(|c: char| !c.is_ascii_digit())
                        .filter_map(|n| n.parse().ok())
                        .collect();
                    (key, e.path())
                })
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).ok_or_else(|| {
        VmError::NoKernel(format!(
            "no distribution kernel (/boot/vmlinuz-* with /lib/modules/<version>) found; install one: {INSTALL}"
        ))
    })
}

/// Settings that concern the host side of VM mode only (or are set anew
/// inside the guest), so they are not passed into the guest.
const HOST_ONLY_ENV: &[&str] = &[
    "VPNLAB_VNG",
    "VPNLAB_VM_ACCEL",
    super::machine::IN_VM_ENV,
    super::sandbox::INNER_ENV,
];

/// Where `vng` is: `VPNLAB_VNG`, else the PATH, else pip's usual places.
pub fn vng() -> Result<PathBuf, VmError> {
    if let Some(p) = std::env::var_os("VPNLAB_VNG") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let extra = [
        format!("{home}/.local/bin"),
        format!("{home}/.pyenv/shims"),
        "/usr/local/bin".into(),
    ];
    path.split(':')
        .map(String::from)
        .chain(extra)
        .map(|d| Path::new(&d).join("vng"))
        .find(|p| p.is_file())
        .ok_or_else(|| VmError::Missing {
            what: "virtme-ng (vng)".into(),
            install: "pip install virtme-ng".into(),
        })
}

/// Whether VM mode is ready, and if not, why.
pub fn readiness() -> Result<(PathBuf, PathBuf), VmError> {
    let vng = vng()?;
    if ![
        "/usr/bin/qemu-system-x86_64",
        "/usr/local/bin/qemu-system-x86_64",
    ]
    .iter()
    .any(|p| Path::new(p).is_file())
    {
        return Err(VmError::Missing {
            what: "qemu-system-x86_64".into(),
            install: "apt-get install -y qemu-system-x86".into(),
        });
    }
    // virtme-ng builds its initramfs around a static busybox.
    if !["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .any(|p| Path::new(p).is_file())
    {
        return Err(VmError::Missing {
            what: "busybox (static)".into(),
            install: "apt-get install -y busybox-static".into(),
        });
    }
    let kernel = find_kernel("auto")?;
    Ok((vng, kernel))
}

/// Hardware acceleration to use. KVM is tried only when asked for
/// (`VPNLAB_VM_ACCEL=kvm`) or when a bounded probe boot succeeds; on
/// machines where a KVM guest hangs, the probe times out and TCG is used.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, strum::Display,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// qemu's software emulation.
    Tcg,
}

/// Decide the accelerator: `VPNLAB_VM_ACCEL` (kvm|tcg) wins; otherwise KVM
/// if /dev/kvm opens and a probe boot answers within `probe`, else TCG.
pub async fn accel(vng: &Path, kernel: &Path, probe: Duration) -> Accel {
    match std::env::var("VPNLAB_VM_ACCEL").as_deref() {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        _ => {}
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Accel::Tcg;
    }
    let mut cmd = tokio::process::Command::new(vng);
    cmd.args(["--run"])
        .arg(kernel)
        .args(["--memory", "256M", "--cpus", "1", "--exec", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(probe, cmd.status()).await {
        Ok(Ok(s)) if s.success() => Accel::Kvm,
        _ => Accel::Tcg,
    }
}

/// Kernel modules a guest needs for cells (a distribution kernel builds
/// them as modules; a minimal VM does not autoload all of them).
pub const GUEST_MODULES: &[&str] = &[
    // PPP layers (L2TP, PPTP) and the PPTP connection-tracking helper.
    "ppp_generic",
    "ppp_async",
    "ppp_synctty",
    "pppox",
    "l2tp_core",
    "l2tp_netlink",
    "l2tp_ppp",
    "nf_conntrack_pptp",
    "nf_nat_pptp",
    "veth",
    "tun",
    "af_packet",
    "esp4",
    "ah4",
    "xfrm_user",
    "xfrm4_tunnel",
    "tunnel4",
    "nf_tables",
    "nft_chain_nat",
    "nft_masq",
    "nft_ct",
    "nf_conntrack",
    // ctnetlink: the capture follows a NAT's translations by its events.
    "nf_conntrack_netlink",
    "nf_nat",
    // Crypto, preloaded: autoloading it at the first SA install costs seconds
    // under emulation, enough to trigger IKE retransmits.
    "seqiv",
    "echainiv",
    "authenc",
    "gcm",
    "ghash_generic",
    "drbg",
    "jitterentropy_rng",
];

/// Inside the guest: load [`GUEST_MODULES`] (those built in or missing are
/// ignored; what is really missing shows up in the cells).
pub async fn load_guest_modules() {
    // One modprobe per module: `modprobe -a` gives up at the first module it
    // cannot find (e.g. one built into this kernel).
    futures::future::join_all(GUEST_MODULES.iter().map(|m| {
        tokio::process::Command::new("modprobe")
            .arg(m)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    }))
    .await;
}

/// Quote `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What one VM batch produced.
pub struct VmRun {
    /// The JSON report vpnlab wrote inside the VM.
    pub report: serde_json::Value,
    /// Wall time from launch until vpnlab started inside (boot overhead).
    pub boot: Duration,
    /// Wall time of the whole VM run.
    pub total: Duration,
}

/// Upper bound for one VM batch (boot, cells, power-off): a guest that
/// panics early may never exit.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The line vpnlab prints inside the VM when it starts running cells.
pub const START_MARK: &str = "vpnlab-vm: running cells";

/// Boot `kernel` and run `vpnlab run ARGS --report -` inside. The report
/// comes back on the guest's stdout; its stderr (progress, table) and the
/// kernel console go, line by line, to `console` once vpnlab has started
/// inside. `rw` are host directories the guest may write (pcap output).
pub async fn run(
    vng: &Path,
    kernel: &Path,
    accel: Accel,
    args: &[String],
    rw: &[PathBuf],
    console: &(dyn Fn(&str) + Sync),
) -> Result<VmRun, VmError> {
    use tokio::io::AsyncReadExt;
    let script = guest_script(args)?;
    let mut cmd = vng_command(vng, kernel, accel, rw);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| VmError::Run(format!("cannot start {}: {e}", vng.display())))?;
    let (Some(mut stdin), Some(mut out), Some(err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(VmError::Run("vng's standard streams are not piped".into()));
    };
    {
        use tokio::io::AsyncWriteExt;
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| VmError::Run(format!("cannot pass the command to the VM: {e}")))?;
        // Dropped here: the guest's shell reads to the end of the script.
    }
    let stdout = tokio::spawn(async move {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s).await;
        s
    });
    let mut watch = Console::new(started);
    let waited = tokio::time::timeout(BATCH_TIMEOUT, async {
        watch.follow(err, console).await;
        child.wait().await
    })
    .await;
    let status = match waited {
        Ok(s) => s.map_err(|e| VmError::Run(e.to_string()))?,
        // kill_on_drop ends vng; the run's PID namespace ends qemu.
        Err(_) => {
            return Err(VmError::Run(format!(
                "the VM did not finish within {BATCH_TIMEOUT:?}; last console lines:\n{}",
                watch.tail()
            )))
        }
    };
    let total = started.elapsed();
    let text = stdout.await.unwrap_or_default();
    // The report is the JSON document on stdout.
    let json = text.find("{\n").map(|i| &text[i..]).unwrap_or("");
    let report: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        VmError::Run(format!(
            "no report from inside the VM ({e}); vng exited with {status}; last console lines:\n{}",
            watch.tail()
        ))
    })?;
    Ok(VmRun {
        report,
        boot: watch.boot.unwrap_or(total),
        total,
    })
}

/// The guest's shell script: `exec env VPNLAB_IN_VM=1 [settings] vpnlab
/// run ARGS --report -`. It goes in on the guest's stdin, not on --exec:
/// --exec travels on the kernel command line, whose 2 KiB limit a long cell
/// list would overflow (the guest then panics early and never exits).
fn guest_script(args: &[String]) -> Result<String, VmError> {
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| VmError::Run(format!("cannot find own binary: {e}")))?;
    let mut inner = vec![
        "env".to_string(),
        format!("{}=1", super::machine::IN_VM_ENV),
    ];
    // The guest does not inherit our environment: pass on the settings
    // that choose programs and backends (VPNLAB_LIBRESWAN, VPNLAB_CHARON...).
    let mut settings: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("VPNLAB_") && !HOST_ONLY_ENV.contains(&k.as_str()))
        .collect();
    settings.sort();
    inner.extend(settings.into_iter().map(|(k, v)| format!("{k}={v}")));
    inner.extend([exe.to_string_lossy().into_owned(), "run".into()]);
    inner.extend(args.iter().cloned());
    inner.extend(["--report".into(), "-".into()]);
    let quoted: Vec<String> = inner.iter().map(|a| sh_quote(a)).collect();
    Ok(format!("exec {}\n", quoted.join(" ")))
}

/// The `vng` command that boots `kernel` and runs a shell reading stdin.
fn vng_command(vng: &Path, kernel: &Path, accel: Accel, rw: &[PathBuf]) -> tokio::process::Command {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let mut cmd = tokio::process::Command::new(vng);
    cmd.arg("--run").arg(kernel);
    if accel == Accel::Tcg {
        cmd.arg("--disable-kvm");
    }
    // 9p straight away: Debian's qemu 7.2 ships the C virtiofsd, which vng
    // tries with the Rust one's flags, waiting seconds before falling back.
    cmd.args(["--force-9p", "--memory", "2G", "--cpus", &cpus.to_string()]);
    for d in rw {
        cmd.arg(format!("--rwdir={}", d.display()));
    }
    // virtme's temporary files (its return-code channel) go to the run's
    // private tmpfs, so a killed run leaves none in /tmp.
    let tmp = Path::new(super::sandbox::WORKDIR).join("vm-tmp");
    let _ = std::fs::create_dir_all(&tmp);
    cmd.args(["--exec", "/bin/sh -s"])
        .env("TMPDIR", &tmp)
        .env_remove(super::sandbox::INNER_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    crate::sys::pre_exec_die_with_parent(&mut cmd);
    cmd
}

/// The VM's console as it goes by: when vpnlab started inside (the end of
/// the boot), and the last lines for error messages.
struct Console {
    started: Instant,
    boot: Option<Duration>,
    last: std::collections::VecDeque<String>,
}

impl Console {
    /// Lines kept for error messages.
    const TAIL: usize = 40;

    fn new(started: Instant) -> Self {
        Console {
            started,
            boot: None,
            last: Default::default(),
        }
    }

    /// Read the console to its end, handing lines to `console` from the
    /// start mark on.
    async fn follow(&mut self, err: tokio::process::ChildStderr, console: &(dyn Fn(&str) + Sync)) {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut lines = BufReader::new(err).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if self.boot.is_none() && line.contains(START_MARK) {
                self.boot = Some(self.started.elapsed());
            }
            if self.boot.is_some() {
                console(&line);
            }
            self.last.push_back(line);
            if self.last.len() > Self::TAIL {
                self.last.pop_front();
            }
        }
    }

    fn tail(&self) -> String {
        Vec::from(self.last.clone()).join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(sh_quote("topologies/seed.toml"), "topologies/seed.toml");
        assert_eq!(
            sh_quote("seed/nat=none,nat_t=auto"),
            "seed/nat=none,nat_t=auto"
        );
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b"), "'a b'");
    }
}
