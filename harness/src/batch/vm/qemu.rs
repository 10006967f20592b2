//! The qemu way of `--kernel`: virtme-ng (`vng`) boots a distribution
//! kernel under KVM or TCG with the host's root shared read-only and the
//! output directories shared read-write; the guest's vpnlab reads its
//! command on stdin and writes the report on stdout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{sh_quote, Accel, Console, VmError, VmRun};

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

/// Whether /dev/kvm opens (a KVM guest may still hang: see [`kvm_works`]).
pub fn kvm_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Whether a KVM guest boots here: a probe boot answers within `probe`
/// (on machines where a KVM guest hangs, it times out).
pub async fn kvm_works(vng: &Path, kernel: &Path, probe: Duration) -> bool {
    if !kvm_opens() {
        return false;
    }
    // A probe that times out costs its whole bound, so its answer is kept
    // until the host reboots (the boot id) or the kernel changes.
    let key = format!("{} {}", boot_id(), kernel.display());
    let cache = super::uml::kernel::cache_dir().with_file_name("kvm-probe");
    if let Some(known) = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|t| t.strip_prefix(&key).map(|r| r.trim() == "works"))
    {
        return known;
    }
    let mut cmd = tokio::process::Command::new(vng);
    cmd.args(["--run"])
        .arg(kernel)
        .args(["--memory", "256M", "--cpus", "1", "--exec", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let works = matches!(tokio::time::timeout(probe, cmd.status()).await, Ok(Ok(s)) if s.success());
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(
        &cache,
        format!("{key} {}\n", if works { "works" } else { "hangs" }),
    );
    works
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .trim()
        .to_string()
}

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
    let script = guest_script(args, super::Guest::Qemu)?;
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
    let mut watch = Console::new(started, "");
    let status = watch
        .follow_to_exit(err, &mut child, console, "the VM")
        .await?;
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
fn guest_script(args: &[String], guest: super::Guest) -> Result<String, VmError> {
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| VmError::Run(format!("cannot find own binary: {e}")))?;
    let mut inner = vec!["env".to_string()];
    inner.extend(guest.env().into_iter().map(|(k, v)| format!("{k}={v}")));
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
    let tmp = Path::new(crate::batch::sandbox::WORKDIR).join("vm-tmp");
    let _ = std::fs::create_dir_all(&tmp);
    cmd.args(["--exec", "/bin/sh -s"])
        .env("TMPDIR", &tmp)
        .env_remove(crate::batch::sandbox::INNER_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    crate::sys::pre_exec_die_with_parent(&mut cmd);
    cmd
}
