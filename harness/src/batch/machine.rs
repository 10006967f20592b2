//! What this machine can run, probed once per run: kernel ESP and PPP, the
//! default ESP backend, whether VM mode is ready, and whether we are the
//! guest of a VM run. The plan places cells from these facts alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::BatchError;
use crate::model::{Backend, Cell, Requirement};
use crate::topology::Netns;

use super::vm::{self, VmError};

/// Marks the vpnlab process that runs inside a VM (set by the host).
pub const IN_VM_ENV: &str = "VPNLAB_IN_VM";

/// The facts placement depends on.
#[derive(Debug)]
pub struct Machine {
    /// The kernel accepts ESP states (an ESP SA was installed in a scratch
    /// namespace).
    pub kernel_esp: bool,
    /// The kernel has PPP (`ppp_generic`).
    pub kernel_ppp: bool,
    /// ESP backend for cells that do not pin one.
    pub backend: Backend,
    /// VM mode: `vng` and a distribution kernel, or why not.
    pub vm: Result<VmReady, VmError>,
    /// This process runs inside a VM booted by a host vpnlab.
    pub in_vm: bool,
}

/// What VM mode needs, found: at least one way is ready.
#[derive(Debug, Clone)]
pub struct VmReady {
    /// qemu: virtme-ng's `vng` and the newest distribution kernel with
    /// modules.
    pub qemu: Option<(PathBuf, PathBuf)>,
    /// UML: its user exists and its kernel is built or buildable.
    pub uml: bool,
}

/// Whether a guest kernel can run here, one way or the other.
pub fn vm_readiness() -> Result<VmReady, VmError> {
    match (
        vm::qemu::readiness(),
        vm::uml::readiness(vm::uml::kernel::Series::default()),
    ) {
        (Err(q), Err(u)) => Err(VmError::NoKernel(format!(
            "no way to run a guest kernel: under qemu, {q}; under UML, {u}"
        ))),
        (q, u) => Ok(VmReady {
            qemu: q.ok(),
            uml: u.is_ok(),
        }),
    }
}

impl Machine {
    /// Probe this machine (needs root for the ESP probe). Inside a VM the
    /// guest's kernel modules are loaded first, so the probes see them.
    pub async fn probe() -> Result<Machine, BatchError> {
        let in_vm = std::env::var_os(IN_VM_ENV).is_some();
        if in_vm {
            vm::load_guest_modules().await;
        }
        let kernel_esp = kernel_has_esp().await;
        Ok(Machine {
            kernel_esp,
            kernel_ppp: kernel_has_ppp(),
            backend: default_backend(kernel_esp)?,
            // A guest runs its cells itself: looking for ways to boot
            // another (dpkg-query, the kernel cache) would only cost time.
            vm: if in_vm {
                Err(VmError::NoKernel(
                    "this is a guest already: no guest kernel within a guest".into(),
                ))
            } else {
                vm_readiness()
            },
            in_vm,
        })
    }

    /// The requirements of `cell` this machine lacks.
    pub fn lacks(&self, cell: &Cell) -> Vec<Requirement> {
        cell.requires
            .iter()
            .copied()
            .filter(|r| match r {
                Requirement::KernelEsp => !self.kernel_esp,
                Requirement::KernelPpp => !self.kernel_ppp,
            })
            .collect()
    }
}

/// The ESP backend for cells that do not pin one: kernel-netlink when the
/// kernel accepts ESP states, else kernel-libipsec. `VPNLAB_BACKEND`
/// overrides the choice.
pub fn default_backend(kernel_esp: bool) -> Result<Backend, BatchError> {
    match std::env::var("VPNLAB_BACKEND") {
        Ok(v) => v.parse().map_err(|_| {
            BatchError::Setting(format!(
                "VPNLAB_BACKEND={v}: expected kernel-netlink or kernel-libipsec"
            ))
        }),
        Err(_) if kernel_esp => Ok(Backend::KernelNetlink),
        Err(_) => Ok(Backend::KernelLibipsec),
    }
}

/// Whether this kernel has PPP (pppd needs `ppp_generic`; in a VM vpnlab
/// loads it at start).
pub fn kernel_has_ppp() -> bool {
    // A module shows in /sys/module; built in (vpnlab's UML kernel), only
    // its device class does.
    Path::new("/sys/module/ppp_generic").exists() || Path::new("/sys/class/ppp").exists()
}

/// Try to install an ESP SA in a throwaway namespace.
pub async fn kernel_has_esp() -> bool {
    let Ok(ns) = Netns::create("esp-probe") else {
        return false;
    };
    let out = ns
        .command("ip", vec![])
        .args([
            "xfrm",
            "state",
            "add",
            "src",
            "192.0.2.1",
            "dst",
            "192.0.2.2",
            "proto",
            "esp",
            "spi",
            "0x100",
            "mode",
            "tunnel",
            "enc",
            "cbc(aes)",
            "0x00112233445566778899aabbccddeeff",
            "auth",
            "hmac(sha256)",
            "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(5), out).await,
        Ok(Ok(s)) if s.success()
    )
}
