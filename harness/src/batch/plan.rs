//! Placement: where each cell runs, decided once from the machine's facts.
//! The CLI and the test suite both ask this module; nothing else decides.

use crate::model::{Backend, Cell, Requirement};
use crate::stack;

use super::machine::Machine;

/// When cells may go to a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmPolicy {
    /// Never: a cell this machine cannot run is skipped, with the command
    /// that runs it.
    Never,
    /// Only the cells that need kernel features this machine lacks
    /// (`--kernel-when-needed`), booting this kernel (`auto` or a path).
    WhenNeeded(String),
    /// Every cell (`--kernel`), booting this kernel.
    Always(String),
}

/// Where one cell runs, or why it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On this machine.
    Host,
    /// In the VM batch (the guest plans it again with its own facts).
    Vm,
    /// A stack cannot express the cell on the backend it would get.
    Unsupported {
        /// Why, per endpoint group.
        reason: String,
        /// The backend the decision was made for.
        backend: Backend,
    },
    /// This machine lacks what the cell needs and no VM may run it.
    Skipped {
        /// What it lacks and the command that runs it.
        reason: String,
    },
}

/// A cell and its placement.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The cell.
    pub cell: Cell,
    /// Where it runs.
    pub placement: Placement,
}

/// Every selected cell, placed, in selection order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The cells.
    pub cells: Vec<Planned>,
    /// The kernel a VM boots, when some cell goes there.
    pub kernel: Option<String>,
    /// Why cells that needed a VM were skipped instead, if they were.
    pub warning: Option<String>,
}

impl Plan {
    /// The cells placed `p`.
    pub fn placed<'a>(&'a self, p: &'a Placement) -> impl Iterator<Item = &'a Cell> + 'a {
        self.cells
            .iter()
            .filter(move |c| c.placement == *p)
            .map(|c| &c.cell)
    }
}

/// Place `cells` on `machine` under `policy`.
pub fn plan(cells: Vec<Cell>, machine: &Machine, policy: &VmPolicy) -> Plan {
    let vm_ok = machine.vm.is_ok();
    let mut warning = None;
    let cells: Vec<Planned> = cells
        .into_iter()
        .map(|cell| {
            let placement = match policy {
                VmPolicy::Always(_) => Placement::Vm,
                VmPolicy::WhenNeeded(_) if vm_ok => place(&cell, machine, true),
                VmPolicy::WhenNeeded(_) => {
                    let p = place(&cell, machine, false);
                    if let (Placement::Skipped { .. }, Err(e)) = (&p, &machine.vm) {
                        warning = Some(format!(
                            "VM mode is not ready ({e}); cells that need it are SKIPPED"
                        ));
                    }
                    p
                }
                VmPolicy::Never => place(&cell, machine, false),
            };
            Planned { cell, placement }
        })
        .collect();
    let kernel = match policy {
        VmPolicy::Always(k) | VmPolicy::WhenNeeded(k)
            if cells.iter().any(|c| c.placement == Placement::Vm) =>
        {
            Some(k.clone())
        }
        _ => None,
    };
    Plan {
        cells,
        kernel,
        warning,
    }
}

/// One cell: what it lacks decides host, VM or skipped; then whether its
/// stacks can express it on the backend it gets there.
fn place(cell: &Cell, machine: &Machine, vm: bool) -> Placement {
    let lacks = machine.lacks(cell);
    let (placement, backend) = match (lacks.is_empty(), vm) {
        (true, _) => (Placement::Host, cell.backend.unwrap_or(machine.backend)),
        // A VM boots a distribution kernel, which has kernel ESP.
        (false, true) => (
            Placement::Vm,
            cell.backend.unwrap_or(Backend::KernelNetlink),
        ),
        (false, false) => {
            return Placement::Skipped {
                reason: skip_reason(cell, &lacks),
            }
        }
    };
    match unsupported(cell, backend) {
        Some(reason) => Placement::Unsupported { reason, backend },
        None => placement,
    }
}

fn skip_reason(cell: &Cell, lacks: &[Requirement]) -> String {
    format!(
        "needs {}, which this kernel lacks; run it in a VM with a distribution kernel: vpnlab run --kernel auto {} --cell '{}'",
        lacks
            .iter()
            .map(|r| r.describe())
            .collect::<Vec<_>>()
            .join(" and "),
        cell.file.display(),
        cell.id
    )
}

/// Why the cell's stacks cannot express it on `backend`, endpoints with
/// the same reason named together.
pub fn unsupported(cell: &Cell, backend: Backend) -> Option<String> {
    let mut reasons: Vec<(String, Vec<&str>)> = Vec::new();
    for e in &cell.endpoints {
        let ike_steps = cell.steps.iter().find_map(|s| match &s.action {
            crate::model::Action::Ike { nodes, op, .. } if nodes.contains(&e.node) => {
                stack::unsupported_op(&e.stack, *op)
            }
            _ => None,
        });
        if let Some(r) = ike_steps.or_else(|| stack::unsupported(e, backend)) {
            match reasons.iter_mut().find(|(x, _)| *x == r) {
                Some((_, nodes)) => nodes.push(&e.node),
                None => reasons.push((r, vec![&e.node])),
            }
        }
    }
    (!reasons.is_empty()).then(|| {
        reasons
            .iter()
            .map(|(r, nodes)| format!("{r} (endpoints on {})", nodes.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::machine::VmReady;
    use crate::error::VmError;

    fn cells(file: &str) -> Vec<Cell> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../topologies")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        crate::scenario::parse(&path, &text).unwrap().cells
    }

    fn machine(esp: bool, vm: bool) -> Machine {
        Machine {
            kernel_esp: esp,
            kernel_ppp: false,
            backend: if esp {
                Backend::KernelNetlink
            } else {
                Backend::KernelLibipsec
            },
            vm: if vm {
                Ok(VmReady {
                    qemu: Some(("/usr/bin/vng".into(), "/boot/vmlinuz".into())),
                    uml: false,
                })
            } else {
                Err(VmError::NoKernel("no kernel here".into()))
            },
            in_vm: false,
        }
    }

    fn placed<'a>(plan: &'a Plan, id: &str) -> &'a Placement {
        &plan
            .cells
            .iter()
            .find(|c| c.cell.id == id)
            .unwrap()
            .placement
    }

    #[test]
    fn cells_needing_kernel_esp_go_to_the_vm_only_when_allowed() {
        let id = "kernel-esp/nat=none,nat_t=auto";
        let m = machine(false, true);
        let never = plan(cells("kernel-esp.toml"), &m, &VmPolicy::Never);
        match placed(&never, id) {
            Placement::Skipped { reason } => {
                assert!(
                    reason.starts_with("needs kernel ESP, which this kernel lacks"),
                    "{reason}"
                );
                assert!(reason.contains("vpnlab run --kernel auto"), "{reason}");
            }
            p => panic!("{p:?}"),
        }
        assert_eq!(never.kernel, None);
        let when = plan(
            cells("kernel-esp.toml"),
            &m,
            &VmPolicy::WhenNeeded("auto".into()),
        );
        assert_eq!(placed(&when, id), &Placement::Vm);
        assert_eq!(when.kernel.as_deref(), Some("auto"));
        assert_eq!(when.warning, None);
        // The same cell on a kernel with ESP runs here.
        let esp = plan(
            cells("kernel-esp.toml"),
            &machine(true, false),
            &VmPolicy::Never,
        );
        assert_eq!(placed(&esp, id), &Placement::Host);
    }

    #[test]
    fn without_vm_mode_needed_cells_are_skipped_and_said_why() {
        let m = machine(false, false);
        let p = plan(
            cells("kernel-esp.toml"),
            &m,
            &VmPolicy::WhenNeeded("auto".into()),
        );
        assert!(p
            .cells
            .iter()
            .all(|c| matches!(c.placement, Placement::Skipped { .. })));
        assert!(p.warning.unwrap().contains("no kernel here"));
        assert_eq!(p.kernel, None);
    }

    #[test]
    fn unsupported_is_decided_for_the_backend_the_cell_gets() {
        let m = machine(false, true);
        let p = plan(cells("seed.toml"), &m, &VmPolicy::WhenNeeded("auto".into()));
        match placed(&p, "seed/nat=masquerade,nat_t=off") {
            Placement::Unsupported { reason, backend } => {
                assert!(reason.contains("cannot disable NAT traversal"), "{reason}");
                assert!(
                    reason.ends_with("(endpoints on client, server)"),
                    "{reason}"
                );
                assert_eq!(*backend, Backend::KernelLibipsec);
            }
            p => panic!("{p:?}"),
        }
        assert_eq!(
            placed(&p, "seed/nat=masquerade,nat_t=auto"),
            &Placement::Host
        );
        // --kernel: everything goes to the VM, which plans again itself.
        let all = plan(cells("seed.toml"), &m, &VmPolicy::Always("auto".into()));
        assert!(all.cells.iter().all(|c| c.placement == Placement::Vm));
    }

    #[test]
    fn a_step_a_stack_cannot_take_makes_the_cell_unsupported() {
        use crate::model::{Action, IkeOp, StackKind};
        let mut cell = cells("deploy/rekey-interop.toml").remove(0);
        assert_eq!(unsupported(&cell, Backend::KernelNetlink), None);
        let client = cell.endpoints[0].node.clone();
        cell.steps[0].action = Action::Ike {
            nodes: vec![client],
            op: IkeOp::Reauth,
            during: vec![],
            timeout: std::time::Duration::from_secs(5),
        };
        assert_eq!(cell.endpoints[0].stack, StackKind::StrongSwan);
        assert_eq!(unsupported(&cell, Backend::KernelNetlink), None);
        cell.endpoints[0].stack = StackKind::Libreswan;
        let r = unsupported(&cell, Backend::KernelNetlink).unwrap();
        assert!(r.contains("no command that re-authenticates"), "{r}");
        assert!(r.ends_with("(endpoints on client)"), "{r}");
    }
}
