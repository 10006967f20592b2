//! Why a tunnel failed, as one stable identifier ([`Cause`]), and the
//! disagreements a file may declare on purpose ([`Misconfig`]) to
//! reproduce a field failure.

use serde_with::{DeserializeFromStr, SerializeDisplay};
use strum::{Display, EnumIter, EnumString, IntoStaticStr, VariantNames};

/// The root cause of a failed cell. The names are stable: files state
/// them (`expect.cause`) and CI compares them between runs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    SerializeDisplay,
    DeserializeFromStr,
    Display,
    EnumString,
    IntoStaticStr,
    EnumIter,
    VariantNames,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Cause {
    /// IKE on UDP 500 stopped on the path.
    #[strum(serialize = "udp-500-blocked")]
    Udp500Blocked,
    /// IKE on UDP 4500 (after the NAT-T switch) stopped on the path.
    #[strum(serialize = "udp-4500-blocked")]
    Udp4500Blocked,
    /// The tunnel came up, its ESP (raw or in UDP) stopped on the path.
    EspDropped,
    /// Fragments of a large IKE message stopped on the path.
    IkeFragmentsDropped,
    /// The peers hold different pre-shared keys.
    PskMismatch,
    /// One end expects an identity the other does not present.
    IdentityMismatch,
    /// No IKE proposal in common.
    ProposalMismatch,
    /// IKE agreed, the CHILD SA's proposals did not (PFS groups among
    /// them).
    ChildProposalMismatch,
    /// The CHILD SA came up, its rekey did not: the ends disagree on
    /// PFS (the key exchange group of CREATE_CHILD_SA, which IKE_AUTH does
    /// not negotiate).
    PfsMismatch,
    /// The traffic selectors do not agree.
    TsMismatch,
    /// One end speaks IKEv1, the other IKEv2 only.
    IkeVersionMismatch,
    /// A certificate its peer does not trust.
    CertUntrusted,
    /// An expired certificate.
    CertExpired,
    /// A NAT forgot the mapping of an idle tunnel (no keepalives): what
    /// the peer sends to it meets no mapping.
    NatMappingExpired,
    /// The NAT changed the peer's address or port (a reboot) and the ends
    /// did not notice (no DPD, no MOBIKE).
    PeerMoved,
    /// A node has no route back for the tunnel's traffic.
    MissingReturnRoute,
    /// Packets too big for the path, and the ICMP errors saying so lost.
    PmtuBlackHole,
    /// UDP checksums that no longer match after NAT (transport mode).
    TransportChecksum,
    /// ESP arrived encapsulated otherwise than the SA says.
    EncapMismatch,
    /// Traffic arrived in clear text or on an SA its policy does not
    /// allow.
    WrongSa,
    /// A kernel refused to install an SA.
    SaRefused,
    /// AH through a NAT: its integrity check covers the addresses the NAT
    /// rewrote, so the receiver drops every packet.
    AhThroughNat,
    /// GRE through a NAT with no PPTP conntrack helper.
    GreWithoutHelper,
    /// A NAT64 translator refuses to translate to the peer's address
    /// (the well-known prefix with a non-global IPv4 address).
    Nat64Refused,
}

impl Cause {
    /// What the cause means, in the words the first "why" line uses.
    pub fn describe(self) -> &'static str {
        match self {
            Cause::Udp500Blocked => "IKE on UDP 500 blocked on the path",
            Cause::Udp4500Blocked => "IKE on UDP 4500 blocked on the path (after the NAT-T switch)",
            Cause::EspDropped => "the tunnel is up but its ESP is dropped on the path",
            Cause::IkeFragmentsDropped => "IP fragments of IKE messages dropped on the path",
            Cause::PskMismatch => "the peers' pre-shared keys differ",
            Cause::IdentityMismatch => "an end expects an identity its peer does not present",
            Cause::ProposalMismatch => "no IKE proposal in common",
            Cause::ChildProposalMismatch => "no CHILD SA (ESP) proposal in common",
            Cause::PfsMismatch => {
                "the ends disagree on PFS: the CHILD SA came up but its rekey found no common key exchange group"
            }
            Cause::TsMismatch => "the traffic selectors do not agree",
            Cause::IkeVersionMismatch => "the ends speak different IKE versions",
            Cause::CertUntrusted => "a certificate its peer does not trust",
            Cause::CertExpired => "an expired certificate",
            Cause::NatMappingExpired => "the NAT's mapping of the tunnel expired",
            Cause::PeerMoved => "the NAT moved the peer to another address or port, unnoticed",
            Cause::MissingReturnRoute => "no route back for the tunnel's traffic",
            Cause::PmtuBlackHole => "a PMTU black hole",
            Cause::TransportChecksum => "UDP checksums broken by NAT in transport mode",
            Cause::EncapMismatch => "ESP encapsulated otherwise than its SA",
            Cause::WrongSa => "traffic outside the SA its policy requires",
            Cause::SaRefused => "the kernel refused an SA",
            Cause::AhThroughNat => "AH through a NAT: its ICV covers the addresses the NAT rewrote",
            Cause::GreWithoutHelper => "GRE through a NAT without a PPTP conntrack helper",
            Cause::Nat64Refused => "the NAT64 translator refuses the peer's address",
        }
    }
}

/// A disagreement between peers that a file declares on purpose. In a cell
/// where an endpoint is misconfigured, vpnlab gives it the wrong value
/// itself (so a flip partner is the same file with the axis at `none`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    SerializeDisplay,
    DeserializeFromStr,
    Display,
    EnumString,
    IntoStaticStr,
    EnumIter,
    VariantNames,
)]
#[strum(serialize_all = "kebab-case")]
pub enum Misconfig {
    /// Its pre-shared key is not its peer's.
    Psk,
    /// It expects its peer to present another identity.
    Identity,
    /// It speaks the other IKE version.
    IkeVersion,
    /// It proposes a selector for its peer's side that its peer does not
    /// protect.
    TrafficSelectors,
    /// Its certificate is signed by a CA its peer does not trust (needs
    /// `auth = "cert"`).
    CertUntrusted,
    /// Its certificate expired before the run (needs `auth = "cert"`).
    CertExpired,
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn names_are_kebab_case_and_round_trip() {
        assert_eq!(Cause::Udp500Blocked.to_string(), "udp-500-blocked");
        assert_eq!(Cause::PskMismatch.to_string(), "psk-mismatch");
        for c in Cause::iter() {
            assert_eq!(c.to_string().parse::<Cause>(), Ok(c));
        }
        assert_eq!("ike-version".parse(), Ok(Misconfig::IkeVersion));
        assert_eq!("cert-untrusted".parse(), Ok(Misconfig::CertUntrusted));
    }
}
