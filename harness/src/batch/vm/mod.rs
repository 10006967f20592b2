//! `--kernel`: run cells inside a guest kernel that has what the host's
//! lacks (kernel ESP, AH, PPP). One of three ways, chosen by [`choose`]:
//!
//! - **KVM**: qemu with hardware virtualization ([`qemu`]), when a probe
//!   boot shows it works;
//! - **UML**: User-Mode Linux ([`uml`]), vpnlab's own kernel run as an
//!   unprivileged host process: native speed without /dev/kvm;
//! - **TCG**: qemu's software emulation ([`qemu`]), which always works but
//!   is slow.
//!
//! Whichever way, inside the guest vpnlab runs as usual (its own sandbox,
//! strongSwan on kernel XFRM) and the host hands the report back exactly as
//! a host run would produce it.

pub mod qemu;
pub mod uml;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub use crate::error::VmError;
pub use qemu::{find_kernel, INSTALL};

/// The one setting that picks the way: `kvm`, `uml` or `tcg`.
pub const ACCEL_ENV: &str = "VPNLAB_VM_ACCEL";

/// How a guest kernel runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, strum::Display,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Accel {
    /// qemu with hardware virtualization.
    Kvm,
    /// User-Mode Linux: the kernel as a host process.
    Uml,
    /// qemu's software emulation.
    Tcg,
}

impl Accel {
    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Uml => "UML (User-Mode Linux)",
            Accel::Tcg => "TCG (software emulation)",
        }
    }
}

/// What `--kernel` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// `auto`: KVM where it works, else UML, else TCG.
    Auto,
    /// `uml`: vpnlab's User-Mode Linux kernel.
    Uml,
    /// A kernel image for qemu.
    Image(PathBuf),
}

impl KernelSpec {
    /// Parse `--kernel`'s value.
    pub fn parse(s: &str) -> KernelSpec {
        match s {
            "auto" => KernelSpec::Auto,
            "uml" => KernelSpec::Uml,
            p => KernelSpec::Image(PathBuf::from(p)),
        }
    }
}

/// The way chosen, and why (said to the user and kept in the report).
#[derive(Debug, Clone)]
pub struct Chosen {
    /// KVM, UML or TCG.
    pub accel: Accel,
    /// Why this way.
    pub why: String,
    /// Asked for (`--kernel uml`, `VPNLAB_VM_ACCEL`), not found by probing.
    pub explicit: bool,
}

/// Choose how to run `spec`: `--kernel uml` and `VPNLAB_VM_ACCEL` decide
/// outright; otherwise KVM if a probe boot works, then UML if it is ready
/// (for `auto` only: a kernel image is for qemu), then TCG.
pub async fn choose(spec: &KernelSpec) -> Result<Chosen, VmError> {
    let chosen = |accel, why: &str| {
        Ok(Chosen {
            accel,
            why: why.to_string(),
            explicit: true,
        })
    };
    let setting = std::env::var(ACCEL_ENV).ok();
    match (spec, setting.as_deref()) {
        (KernelSpec::Uml, _) => chosen(Accel::Uml, "--kernel uml"),
        (_, Some("kvm")) => chosen(Accel::Kvm, "VPNLAB_VM_ACCEL=kvm"),
        (_, Some("tcg")) => chosen(Accel::Tcg, "VPNLAB_VM_ACCEL=tcg"),
        (KernelSpec::Auto, Some("uml")) => chosen(Accel::Uml, "VPNLAB_VM_ACCEL=uml"),
        (KernelSpec::Image(p), Some("uml")) => Err(VmError::Setting(format!(
            "VPNLAB_VM_ACCEL=uml runs vpnlab's own UML kernel, not the image {}: use --kernel uml (or auto), or VPNLAB_VM_ACCEL=kvm|tcg",
            p.display()
        ))),
        (_, Some(other)) => Err(VmError::Setting(format!(
            "VPNLAB_VM_ACCEL={other}: expected kvm, uml or tcg"
        ))),
        (_, None) => Ok(probe(spec).await),
    }
}

/// `choose` without a setting: probe KVM, then UML.
async fn probe(spec: &KernelSpec) -> Chosen {
    let kvm = match qemu::readiness() {
        Ok((vng, kernel)) => qemu::kvm_works(&vng, &kernel, KVM_PROBE).await,
        Err(_) => false,
    };
    if kvm {
        return Chosen {
            accel: Accel::Kvm,
            why: "a KVM guest boots here".into(),
            explicit: false,
        };
    }
    let no_kvm = if qemu::kvm_opens() {
        "a KVM guest does not boot here"
    } else {
        "no usable /dev/kvm"
    };
    // UML only for `auto` (a kernel image is for qemu).
    let uml = (*spec == KernelSpec::Auto).then(|| uml::readiness(uml::kernel::Series::default()));
    let (accel, why) = match uml {
        Some(Ok(_)) => (Accel::Uml, format!("{no_kvm}; UML is ready")),
        Some(Err(e)) => (Accel::Tcg, format!("{no_kvm}; UML is not ready ({e})")),
        None => (
            Accel::Tcg,
            format!("{no_kvm}; a kernel image runs under qemu"),
        ),
    };
    Chosen {
        accel,
        why,
        explicit: false,
    }
}

/// How long a KVM probe boot may take (a working KVM boots in seconds).
pub const KVM_PROBE: Duration = Duration::from_secs(15);

/// Settings that concern the host side of VM mode only (or are set anew
/// inside the guest), so they are not passed into the guest.
const HOST_ONLY_ENV: &[&str] = &[
    "VPNLAB_VNG",
    ACCEL_ENV,
    "VPNLAB_UML_KERNEL",
    "VPNLAB_UML_CACHE",
    "VPNLAB_UML_USER",
    "VPNLAB_BUILD_UML",
    super::machine::IN_VM_ENV,
    super::sandbox::INNER_ENV,
];

/// Which kind of guest a vpnlab inside a VM runs in (the value of
/// `VPNLAB_IN_VM`, set by the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::EnumString)]
#[strum(serialize_all = "kebab-case")]
pub enum Guest {
    /// qemu (KVM or TCG), booted by virtme-ng.
    Qemu,
    /// User-Mode Linux.
    Uml,
    /// User-Mode Linux on its virtual clock (`--time-travel`).
    UmlVirtualTime,
}

impl Guest {
    /// The environment the guest's vpnlab gets: the guest marker and the
    /// settings that choose programs and backends (VPNLAB_LIBRESWAN,
    /// VPNLAB_CHARON...); the guest does not inherit ours.
    pub fn env(self) -> Vec<(String, String)> {
        let mut settings: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("VPNLAB_") && !HOST_ONLY_ENV.contains(&k.as_str()))
            .collect();
        settings.push((super::machine::IN_VM_ENV.into(), self.to_string()));
        settings.sort();
        settings
    }
}

/// The guest this process runs in, if any.
pub fn guest() -> Option<Guest> {
    let v = std::env::var(super::machine::IN_VM_ENV).ok()?;
    // An older host said `1`.
    Some(v.parse().unwrap_or(Guest::Qemu))
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
    if guest() == Some(Guest::Uml) {
        // vpnlab's UML kernel has everything built in.
        return;
    }
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

/// Upper bound from a guest's start to its start mark: UML boots in under
/// a second here, a TCG guest in 20-40 s. A guest that hangs while it
/// boots fails the batch this soon, with its console's last lines.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The line vpnlab prints inside the VM when it starts running cells.
pub const START_MARK: &str = "vpnlab-vm: running cells";

/// The VM's console as it goes by: when vpnlab started inside (the end of
/// the boot), and the last lines for error messages.
pub(crate) struct Console {
    started: Instant,
    /// Put before each line handed on (which instance said it).
    prefix: String,
    boot: Option<Duration>,
    last: std::collections::VecDeque<String>,
}

impl Console {
    /// Lines kept for error messages.
    const TAIL: usize = 40;

    pub(crate) fn new(started: Instant, prefix: &str) -> Self {
        Console {
            started,
            prefix: prefix.to_string(),
            boot: None,
            last: Default::default(),
        }
    }

    /// Read the console to its end, handing lines to `console` from the
    /// start mark on. False if the start mark did not come within
    /// [`BOOT_TIMEOUT`] (the rest is then not read).
    pub(crate) async fn follow(
        &mut self,
        err: impl tokio::io::AsyncRead + Unpin,
        console: &(dyn Fn(&str) + Sync),
    ) -> bool {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut lines = BufReader::new(err).lines();
        let boot_by = tokio::time::Instant::from_std(self.started) + BOOT_TIMEOUT;
        loop {
            let next = if self.boot.is_some() {
                lines.next_line().await
            } else {
                match tokio::time::timeout_at(boot_by, lines.next_line()).await {
                    Ok(next) => next,
                    Err(_) => return false,
                }
            };
            let Ok(Some(line)) = next else {
                return true;
            };
            if self.boot.is_none() && line.contains(START_MARK) {
                self.boot = Some(self.started.elapsed());
            }
            if self.boot.is_some() {
                console(&format!("{}{line}", self.prefix));
            }
            self.last.push_back(line);
            if self.last.len() > Self::TAIL {
                self.last.pop_front();
            }
        }
    }

    /// Follow `stream` to its end and wait for `child`, bounded by
    /// [`BOOT_TIMEOUT`] until the start mark and [`BATCH_TIMEOUT`] in all;
    /// `who` names the guest in the error. On timeout the
    /// child is dropped, and kill_on_drop (with the run's PID namespace)
    /// ends it.
    pub(crate) async fn follow_to_exit(
        &mut self,
        stream: impl tokio::io::AsyncRead + Unpin,
        child: &mut tokio::process::Child,
        console: &(dyn Fn(&str) + Sync),
        who: &str,
    ) -> Result<std::process::ExitStatus, VmError> {
        let waited = tokio::time::timeout(BATCH_TIMEOUT, async {
            // A hung boot: no wait for the child, which is then dropped.
            match self.follow(stream, console).await {
                true => Some(child.wait().await),
                false => None,
            }
        })
        .await;
        match waited {
            Ok(None) => Err(VmError::Run(format!(
                "{who} did not start running cells within {BOOT_TIMEOUT:?} of its start (a hung boot?); last console lines:\n{}",
                self.tail()
            ))),
            Ok(Some(s)) => s.map_err(|e| VmError::Run(e.to_string())),
            Err(_) => Err(VmError::Run(format!(
                "{who} did not finish within {BATCH_TIMEOUT:?}; last console lines:\n{}",
                self.tail()
            ))),
        }
    }

    pub(crate) fn tail(&self) -> String {
        if self.last.is_empty() {
            return "(none)".into();
        }
        Vec::from(self.last.clone()).join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_guest_that_never_reaches_its_start_mark_fails_at_the_boot_bound() {
        use tokio::io::AsyncWriteExt;
        // Silent: the bound ends the wait (the clock is paused, so at once).
        let (_quiet, r) = tokio::io::duplex(64);
        let mut c = Console::new(std::time::Instant::now(), "");
        assert!(!c.follow(r, &|_| {}).await);
        // The mark, then the end of the console: followed to its end.
        let (mut w, r) = tokio::io::duplex(256);
        w.write_all(format!("booting\n{START_MARK} (1 cells)\nlast\n").as_bytes())
            .await
            .unwrap();
        drop(w);
        let mut c = Console::new(std::time::Instant::now(), "");
        let seen = std::sync::Mutex::new(Vec::new());
        assert!(
            c.follow(r, &|l| seen.lock().unwrap().push(l.to_string()))
                .await
        );
        assert_eq!(seen.lock().unwrap().len(), 2, "lines from the mark on");
    }

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
