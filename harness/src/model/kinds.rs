//! The small closed vocabularies every layer shares: who starts the
//! exchange, NAT-T and IPsec modes, ESP backends, stacks, machine
//! requirements, expected and observed states, verdicts. Names and parsing
//! come from strum (and serde, with the same kebab-case rule), never from
//! hand-written tables.

use serde::{Deserialize, Serialize};
use serde_with::{DeserializeFromStr, SerializeDisplay};
use strum::{Display, EnumIter, EnumString, IntoStaticStr, VariantNames};

use super::cell::CommandSpec;

/// Who starts the exchange.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, Display, IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Role {
    /// Sends IKE_SA_INIT.
    Initiator,
    /// Waits for it.
    Responder,
}

/// NAT traversal mode.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Deserialize,
    Serialize,
    Display,
    IntoStaticStr,
    EnumString,
    EnumIter,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum NatT {
    /// Detect NAT (RFC 3947/7296 NAT-D) and encapsulate only if found.
    Auto,
    /// Always encapsulate ESP in UDP 4500, faking NAT detection.
    Force,
    /// Never encapsulate; raw ESP even through NAT.
    Off,
}

/// IPsec mode.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Display, EnumString, IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case", ascii_case_insensitive)]
pub enum Mode {
    /// Inner packets wrapped in a new IP header.
    Tunnel,
    /// Host-to-host, the original IP header kept.
    Transport,
}

/// PPP over what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Display, IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum PppKind {
    /// L2TP (RFC 2661) over UDP 1701.
    L2tp,
    /// PPTP (RFC 2637): TCP 1723 control, GRE data.
    Pptp,
}

/// Kinds of check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum CheckKind {
    /// ICMP echo (no pseudo-header in its checksum).
    Ping,
    /// UDP echo on `port` (its checksum covers the IP addresses).
    Udp,
    /// TCP: connect to `port` and have `size` bytes echoed (segments as
    /// large as the MSS allows: what MSS clamping and path MTU black holes
    /// act on).
    Tcp,
}

/// A tunnel or PPP link, expected or observed: up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum TunnelExpect {
    /// IKE and CHILD SAs established (PPP: addresses negotiated).
    Up,
    /// Not established.
    Down,
}

/// ESP encapsulation on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Encapsulation {
    /// ESP in UDP 4500 (RFC 3948).
    Udp,
    /// Raw ESP (IP protocol 50).
    None,
    /// The ends disagree: one installed ESP in UDP, the other raw ESP (an
    /// end that will not encapsulate against one that detected NAT).
    Mixed,
}

/// A check's result, expected or observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum CheckExpect {
    /// Every probe answered.
    Pass,
    /// Not every probe answered.
    Fail,
}

/// How a `wait` step ends, expected or observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum WaitExpect {
    /// The event happened within the timeout.
    Seen,
    /// It did not.
    Timeout,
}

/// How ESP is processed on this machine.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    SerializeDisplay,
    DeserializeFromStr,
    Display,
    EnumString,
    IntoStaticStr,
    VariantNames,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Backend {
    /// Kernel XFRM (real ESP states in the kernel).
    KernelNetlink,
    /// strongSwan's userspace ESP over a TUN device; always UDP-encapsulates.
    KernelLibipsec,
}

/// The stack names a scenario may use (`stack = "…"`, `matrix.stack`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, IntoStaticStr, VariantNames,
)]
#[strum(serialize_all = "kebab-case")]
pub enum StackName {
    /// strongSwan's charon, driven over VICI.
    Strongswan,
    /// libreswan's pluto, driven with whack (its start-up addconn loads the
    /// connections).
    Libreswan,
    /// A user's own stack through three programs.
    Command,
}

/// Which implementation runs an endpoint, with what it needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackKind {
    /// strongSwan.
    StrongSwan,
    /// libreswan.
    Libreswan,
    /// A user's own stack and its programs.
    Command(CommandSpec),
}

impl StackKind {
    /// The name of the kind, as in files.
    pub fn name(&self) -> StackName {
        match self {
            StackKind::StrongSwan => StackName::Strongswan,
            StackKind::Libreswan => StackName::Libreswan,
            StackKind::Command(_) => StackName::Command,
        }
    }
}

/// A machine feature a cell may need; a machine without it runs the cell
/// in a VM or reports it skipped.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Display,
    EnumString,
    IntoStaticStr,
    VariantNames,
    SerializeDisplay,
    DeserializeFromStr,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Requirement {
    /// Kernel IPsec (ESP and AH states in XFRM).
    KernelEsp,
    /// Kernel PPP (pppd's `ppp_generic`, L2TP's and PPTP's drivers).
    KernelPpp,
}

impl Requirement {
    /// How a table or message names it.
    pub fn describe(self) -> &'static str {
        match self {
            Requirement::KernelEsp => "kernel ESP",
            Requirement::KernelPpp => "kernel PPP",
        }
    }
}

/// How a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Everything observed matches `expect`.
    Pass,
    /// Something observed differs from `expect` (see `mismatches`).
    Fail,
    /// A stack cannot express this cell; nothing was run.
    Unsupported,
    /// This machine lacks what the cell requires (see `reason` for the
    /// command that runs it); nothing was run.
    Skipped,
    /// vpnlab could not run the cell (see `error`).
    Error,
}

impl Verdict {
    /// Upper-case label for tables.
    pub fn label(self) -> &'static str {
        self.into()
    }
}

/// The comma-separated names of an enum's values, for "known: …" messages.
pub fn known<T: VariantNames>() -> String {
    T::VARIANTS.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_file_and_report_names() {
        assert_eq!(NatT::Auto.to_string(), "auto");
        assert_eq!("force".parse::<NatT>().unwrap(), NatT::Force);
        assert_eq!(Backend::KernelLibipsec.to_string(), "kernel-libipsec");
        assert_eq!(
            serde_json::to_value(Backend::KernelNetlink).unwrap(),
            "kernel-netlink"
        );
        assert_eq!(known::<StackName>(), "strongswan, libreswan, command");
        assert_eq!(known::<Requirement>(), "kernel-esp, kernel-ppp");
        assert_eq!(Verdict::Unsupported.label(), "UNSUPPORTED");
        assert_eq!(serde_json::to_value(Verdict::Pass).unwrap(), "pass");
        assert_eq!(PppKind::L2tp.to_string(), "l2tp");
        assert_eq!(Role::Initiator.to_string(), "initiator");
    }
}
