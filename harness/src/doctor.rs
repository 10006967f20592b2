//! `vpnlab doctor`: is this machine ready, and if not, the exact command
//! that fixes each missing piece.

use std::path::Path;

use crate::stack::{libreswan, strongswan};

/// One finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What was checked.
    pub what: String,
    /// Whether it is usable.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it (empty when ok).
    pub fix: String,
}

fn finding(what: &str, ok: bool, detail: impl Into<String>, fix: &str) -> Finding {
    Finding {
        what: what.into(),
        ok,
        detail: detail.into(),
        fix: if ok { String::new() } else { fix.into() },
    }
}

fn which(bin: &str) -> Option<String> {
    std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// Run every check. `esp` is the result of the kernel ESP probe (it needs
/// privileges, so the caller runs it when it can).
pub fn findings(esp: Option<bool>) -> Vec<Finding> {
    let mut f = vec![privileges(), tun(), kernel_esp(esp)];
    f.extend(tools());
    f.push(charon());
    f.push(libreswan_pluto());
    f.extend(vm_mode(esp));
    f.push(strongswan_plugins());
    f
}

fn privileges() -> Finding {
    let root = nix::unistd::geteuid().is_root();
    finding(
        "privileges",
        root,
        if root { "running as root" } else { "not root" },
        "sudo vpnlab ... (namespaces, veth and nftables need CAP_SYS_ADMIN and CAP_NET_ADMIN)",
    )
}

fn tun() -> Finding {
    let tun = Path::new("/dev/net/tun").exists();
    finding(
        "TUN device",
        tun,
        if tun { "/dev/net/tun" } else { "missing" },
        "modprobe tun",
    )
}

fn kernel_esp(esp: Option<bool>) -> Finding {
    match esp {
        Some(true) => finding("kernel ESP", true, "ESP states can be installed: backend kernel-netlink", ""),
        Some(false) => finding(
            "kernel ESP",
            true,
            "no ESP in this kernel: strongSwan uses kernel-libipsec (userspace ESP, always UDP-encapsulated)",
            "",
        ),
        None => finding("kernel ESP", false, "not probed (needs root)", "sudo vpnlab doctor"),
    }
}

fn tools() -> [Finding; 3] {
    let nft = which("nft");
    let ip = which("ip");
    let tayga = which("tayga");
    [
        finding(
            "nftables",
            nft.is_some(),
            nft.clone().unwrap_or_else(|| "nft not found".into()),
            "apt-get install -y nftables",
        ),
        finding(
            "iproute2 (ESP probe only)",
            ip.is_some(),
            ip.unwrap_or_else(|| "ip not found".into()),
            "apt-get install -y iproute2",
        ),
        finding(
            "TAYGA (NAT64 gateways only)",
            tayga.is_some(),
            tayga.unwrap_or_else(|| "tayga not found".into()),
            "apt-get install -y tayga",
        ),
    ]
}

fn charon() -> Finding {
    let charon = strongswan::charon_path();
    let version = std::process::Command::new(&charon)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
            (!s.is_empty()).then_some(s)
        });
    let from = if std::env::var_os("VPNLAB_CHARON").is_some() {
        "VPNLAB_CHARON".to_string()
    } else if let Some(p) = strongswan::prefix() {
        format!(
            "VPNLAB_STRONGSWAN={}, its libraries and plugins mounted over /usr/lib/ipsec",
            p.display()
        )
    } else {
        "the system's".to_string()
    };
    finding(
        "strongSwan charon",
        charon.is_file(),
        match (&version, charon.is_file()) {
            (Some(v), true) => format!("{} ({v}; build: {from})", charon.display()),
            (None, true) => format!("{} (build: {from})", charon.display()),
            _ => format!(
                "{} not found (set VPNLAB_CHARON, or VPNLAB_STRONGSWAN for a prefix, to use another)",
                charon.display()
            ),
        },
        "apt-get install -y strongswan-charon",
    )
}

/// Optional: only cells with `stack = "libreswan"` need it.
fn libreswan_pluto() -> Finding {
    let pluto = libreswan::tool("pluto");
    let certutil = which("certutil");
    let lsw_ok = pluto.is_file() && certutil.is_some();
    Finding {
        what: "libreswan pluto (optional)".into(),
        ok: true,
        detail: match (pluto.is_file(), &certutil) {
            (true, Some(c)) => format!(
                "{} (build: prefix {}; NSS databases with {c})",
                pluto.display(),
                libreswan::prefix().display()
            ),
            (true, None) => format!(
                "{}, but certutil is missing: apt-get install -y libnss3-tools",
                pluto.display()
            ),
            (false, _) => format!(
                "{} not found: libreswan cells will fail; install with {}",
                pluto.display(),
                libreswan::INSTALL_HINT
            ),
        },
        fix: if lsw_ok {
            String::new()
        } else {
            libreswan::INSTALL_HINT.into()
        },
    }
}

/// Optional where the kernel has ESP: only cells that need kernel features
/// this kernel lacks go to a VM. Either way suffices.
fn vm_mode(esp: Option<bool>) -> Vec<Finding> {
    use crate::batch::vm::{qemu, uml};
    let (q, u) = (
        qemu::readiness(),
        uml::readiness(uml::kernel::Series::default()),
    );
    let any = q.is_ok() || u.is_ok() || esp == Some(true);
    let qemu = match q {
        Ok((vng, kernel)) => finding(
            "VM mode, qemu (--kernel)",
            true,
            format!("{} with {}", vng.display(), kernel.display()),
            "",
        ),
        Err(e) => Finding {
            what: "VM mode, qemu (--kernel)".into(),
            ok: any,
            detail: e.to_string(),
            fix: qemu::INSTALL.into(),
        },
    };
    let uml = match u {
        Ok(r) => finding(
            "VM mode, UML (--kernel uml)",
            true,
            match r.kernel {
                Ok(k) => format!(
                    "{} ({}{}), as user {}",
                    k.path.display(),
                    k.origin,
                    k.build_secs
                        .map_or(String::new(), |s| format!("; its build took {s:.0} s")),
                    r.user.name
                ),
                Err(to) => format!(
                    "kernel not built yet: `vpnlab uml-kernel` (or the first UML batch) builds {} once, about 8 minutes; as user {}",
                    to.path().display(),
                    r.user.name
                ),
            },
            "",
        ),
        Err(e) => Finding {
            what: "VM mode, UML (--kernel uml)".into(),
            ok: any,
            fix: match &e {
                crate::error::VmError::UmlUser { create, .. } => create.clone(),
                _ => uml::kernel::Series::default().install(),
            },
            detail: e.to_string(),
        },
    };
    vec![qemu, uml]
}

fn strongswan_plugins() -> Finding {
    let plugdir = strongswan::plugin_dir();
    let missing: Vec<&str> = strongswan::plugins(crate::model::Backend::KernelLibipsec)
        .into_iter()
        .filter(|p| !plugdir.join(format!("libstrongswan-{p}.so")).is_file())
        .collect();
    finding(
        "strongSwan plugins",
        missing.is_empty(),
        if missing.is_empty() { "all present".to_string() } else { format!("missing: {}", missing.join(", ")) },
        "apt-get install -y strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins",
    )
}
