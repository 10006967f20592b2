//! The root-cause classifier: ordered rules over what a failed cell's
//! outcome holds (each endpoint's own account, SA state, the packet path
//! and kernel counters) give it one [`Cause`] and the evidence for it.
//!
//! Rules only name a cause that the evidence shows; where none applies the
//! cell has no cause, and its diagnosis lines say what was seen. The
//! daemons' own statements come first (they know why they refused), then
//! kernel counters at a receiving node (a drop no capture sees), then
//! where packets stopped on the path.

use serde::{Deserialize, Serialize};

use super::Outcome;
use crate::capture::path;
use crate::model::{Cause, CheckExpect, Class, TunnelExpect};

/// A failed cell's root cause and what shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Classified {
    /// The cause.
    pub id: Cause,
    /// The lines that show it: `node: account line`, or a diagnosis line.
    pub evidence: Vec<String>,
}

impl Classified {
    /// The first "why" line: the cause, what it means, its first evidence.
    pub fn headline(&self) -> String {
        match self.evidence.first() {
            Some(e) => format!("cause {}: {} ({e})", self.id, self.id.describe()),
            None => format!("cause {}: {}", self.id, self.id.describe()),
        }
    }
}

/// What the classifier reads besides the outcome: the IKE version each end
/// was configured with (to tell a version mismatch from another refusal).
pub struct Context {
    /// (node, IKE version: 1, 2 or 0 for either).
    pub versions: Vec<(String, u8)>,
    /// The gateways with a PPTP conntrack helper.
    pub pptp_helpers: Vec<String>,
}

/// Account lines, each with its node: `(node, line)`.
fn account(o: &Outcome) -> impl Iterator<Item = (&str, &str)> {
    o.endpoints
        .iter()
        .flat_map(|e| e.log.iter().map(move |l| (e.node.as_str(), l.as_str())))
}

/// Every account line containing one of `words`, as evidence.
fn said(o: &Outcome, words: &[&str]) -> Vec<String> {
    account(o)
        .filter(|(_, l)| words.iter().any(|w| l.contains(w)))
        .map(|(n, l)| format!("{n}: {l}"))
        .collect()
}

/// Whether the cell failed at all: the tunnel, its PPP link, or a check.
fn failed(o: &Outcome) -> bool {
    let checks = o
        .checks
        .iter()
        .chain(o.steps.iter().flat_map(|s| &s.checks));
    o.tunnel == Some(TunnelExpect::Down)
        || o.ppp
            .as_ref()
            .is_some_and(|p| p.state == TunnelExpect::Down)
        || checks.into_iter().any(|c| c.result == CheckExpect::Fail)
}

/// Diagnosis lines saying packets of `class` were dropped at a node.
fn dropped(o: &Outcome, class: Class) -> Vec<String> {
    o.path
        .iter()
        .flat_map(|p| &p.diagnosis)
        .filter(|l| l.starts_with(class.describe()) && l.contains("dropped at"))
        .cloned()
        .collect()
}

/// Diagnosis lines of kernel counters named `name` that grew.
fn counted(o: &Outcome, name: &str) -> Vec<String> {
    o.path
        .iter()
        .flat_map(|p| &p.diagnosis)
        .filter(|l| path::counter_of(l) == Some(name))
        .cloned()
        .collect()
}

/// Whether any endpoint has an established IKE SA.
fn ike_up(o: &Outcome) -> bool {
    o.endpoints
        .iter()
        .any(|e| e.state.ike.as_ref().is_some_and(|i| i.is_up()))
}

/// One rule: the cause, and the evidence if the rule applies.
type Rule = fn(&Outcome, &Context) -> Option<(Cause, Vec<String>)>;

fn some(cause: Cause, evidence: Vec<String>) -> Option<(Cause, Vec<String>)> {
    (!evidence.is_empty()).then_some((cause, evidence))
}

/// A verifier that found no trust anchor for the peer's certificate
/// (strongSwan; NSS under pluto).
fn cert_untrusted(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    some(
        Cause::CertUntrusted,
        said(
            o,
            &[
                "no issuer certificate found",
                "issuer is",
                "SEC_ERROR_UNKNOWN_ISSUER",
                "SEC_ERROR_UNTRUSTED_ISSUER",
            ],
        ),
    )
}

/// A verifier that found the peer's certificate outside its validity.
fn cert_expired(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    some(
        Cause::CertExpired,
        said(
            o,
            &[
                "certificate invalid (valid from",
                "SEC_ERROR_EXPIRED_CERTIFICATE",
            ],
        ),
    )
}

fn psk(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    some(
        Cause::PskMismatch,
        said(
            o,
            &[
                "MAC mismatched",
                "no shared key found",
                "computed hash does not match",
            ],
        ),
    )
}

fn identity(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    some(
        Cause::IdentityMismatch,
        said(
            o,
            &[
                "no matching peer config",
                "no suitable connection",
                "constraint checking failed",
                "Peer ID",
            ],
        )
        .into_iter()
        .filter(|l| !l.contains("Peer ID") || l.contains("mismatched"))
        .collect(),
    )
}

fn version(o: &Outcome, cx: &Context) -> Option<(Cause, Vec<String>)> {
    let refused = said(
        o,
        &["no IKE config found", "no connection has been authorized"],
    );
    let versions: Vec<u8> = cx
        .versions
        .iter()
        .map(|v| v.1)
        .filter(|&v| v != 0)
        .collect();
    let differ = versions.windows(2).any(|w| w[0] != w[1]);
    if refused.is_empty() || !differ {
        return None;
    }
    let mut ev = refused;
    let conf: Vec<String> = cx
        .versions
        .iter()
        .map(|(n, v)| format!("{n} speaks IKEv{v}"))
        .collect();
    ev.push(conf.join(", "));
    Some((Cause::IkeVersionMismatch, ev))
}

fn selectors(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    some(
        Cause::TsMismatch,
        said(o, &["TS_UNACCEPTABLE", "traffic selectors"])
            .into_iter()
            .filter(|l| l.contains("TS_UNACCEPTABLE") || l.contains("unacceptable"))
            .collect(),
    )
}

/// No proposal in common: IKE's (no IKE SA), the CHILD SA's in IKE_AUTH
/// (the IKE SA up, the CHILD SA never), or only at a CHILD SA's rekey (it
/// came up first), where the one thing IKE_AUTH did not negotiate is
/// agreed: the PFS group.
fn proposals(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    let mut ev = said(o, &["NO_PROPOSAL_CHOSEN", "no acceptable proposal"]);
    let child_came_up = o.initiation.as_ref().is_some_and(|i| i.success);
    let cause = match (ike_up(o), child_came_up) {
        (false, _) => Cause::ProposalMismatch,
        (true, false) => Cause::ChildProposalMismatch,
        (true, true) => {
            if !ev.is_empty() {
                ev.push(PFS_EVIDENCE.to_string());
            }
            Cause::PfsMismatch
        }
    };
    some(cause, ev)
}

/// Why a rekey's NO_PROPOSAL_CHOSEN after a CHILD SA came up means PFS.
const PFS_EVIDENCE: &str = "the CHILD SA came up in IKE_AUTH, which negotiates no key exchange: its rekey's proposals differ only in their PFS group";

fn refused_sa(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    some(
        Cause::SaRefused,
        said(
            o,
            &["unable to install", "unable to add SAD", "unable to add SA"],
        ),
    )
}

fn checksum(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    let mut ev = counted(o, "Udp:InCsumErrors");
    ev.extend(counted(o, "Udp6InCsumErrors"));
    some(Cause::TransportChecksum, ev)
}

fn encapsulation(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    some(Cause::EncapMismatch, counted(o, "XfrmInStateMismatch"))
}

fn wrong_sa(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    some(Cause::WrongSa, counted(o, "XfrmInTmplMismatch"))
}

/// AH that crossed the path and was dropped on arrival for a bad ICV.
fn ah_nat(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    let ah = o
        .path
        .iter()
        .flat_map(|p| &p.hops)
        .any(|h| h.packets.contains_key(&Class::Ah));
    if !ah {
        return None;
    }
    some(Cause::AhThroughNat, counted(o, "XfrmInStateProtoError"))
}

fn blocked_ike(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    if ike_up(o) {
        return None;
    }
    let first = dropped(o, Class::FragmentFirst);
    let rest = dropped(o, Class::FragmentRest);
    if !first.is_empty() || !rest.is_empty() {
        return some(Cause::IkeFragmentsDropped, [first, rest].concat());
    }
    let on_500 = dropped(o, Class::Ike500);
    if !on_500.is_empty() {
        return some(Cause::Udp500Blocked, on_500);
    }
    some(Cause::Udp4500Blocked, dropped(o, Class::Ike4500))
}

/// A failed check's answering node with no route back to its source.
fn return_route(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    let lines = o.checks.iter().filter_map(|c| c.no_route_back.as_ref());
    some(
        Cause::MissingReturnRoute,
        lines.map(|l| format!("route lookup: {l}")).collect(),
    )
}

/// NAT-T traffic a NAT took in addressed to itself, with no mapping to
/// pass it on, while the IKE SA stood: after a step that rebooted the NAT
/// the peer moved; else the mapping expired.
fn nat_mapping(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    if !ike_up(o) {
        return None;
    }
    let lines = o.path.iter().flat_map(|p| &p.diagnosis);
    let unmapped = lines
        .filter(|l| {
            [Class::EspInUdp, Class::Ike4500]
                .iter()
                .any(|c| l.contains(&format!(" of the {} from ", c.describe())))
        })
        .find(|l| l.contains(": delivered to "))?;
    let at = unmapped
        .rsplit_once(": delivered to ")?
        .1
        .split(',')
        .next()?;
    let mut ev = vec![unmapped.clone()];
    let rebooted = o
        .steps
        .iter()
        .find(|s| s.action.starts_with(&format!("nat-reboot {at}")));
    let cause = match rebooted {
        Some(s) => {
            ev.push(format!("step {}: {}", s.name, s.action));
            Cause::PeerMoved
        }
        None => Cause::NatMappingExpired,
    };
    Some((cause, ev))
}

fn pmtu(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    let mut ev = dropped(o, Class::IcmpFragNeeded);
    ev.extend(dropped(o, Class::PacketTooBig));
    some(Cause::PmtuBlackHole, ev)
}

fn esp(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    if !ike_up(o) {
        return None;
    }
    let mut ev = dropped(o, Class::Esp);
    ev.extend(dropped(o, Class::EspInUdp));
    some(Cause::EspDropped, ev)
}

fn gre(o: &Outcome, cx: &Context) -> Option<(Cause, Vec<String>)> {
    let lines = o.path.iter().flat_map(|p| &p.diagnosis);
    let delivered = lines
        .filter(|l| l.starts_with(Class::Gre.describe()))
        .filter(|l| {
            let at = l
                .split_once("delivered to ")
                .and_then(|(_, r)| r.split_once(','));
            at.is_some_and(|(node, _)| !cx.pptp_helpers.iter().any(|h| h == node))
        });
    some(Cause::GreWithoutHelper, delivered.cloned().collect())
}

/// A NAT64 gateway's translator that drops what it may not translate
/// (the path names why).
fn nat64(o: &Outcome, _: &Context) -> Option<(Cause, Vec<String>)> {
    let lines = o.path.iter().flat_map(|p| &p.diagnosis);
    let refused = lines.filter(|l| l.contains("its translator drops those packets"));
    some(Cause::Nat64Refused, refused.cloned().collect())
}

/// The rules, in order: the first that applies names the cause.
const RULES: [Rule; 19] = [
    gre,
    cert_untrusted,
    cert_expired,
    psk,
    identity,
    version,
    selectors,
    // An SA the kernel refused is answered with NO_PROPOSAL_CHOSEN.
    refused_sa,
    proposals,
    checksum,
    encapsulation,
    return_route,
    wrong_sa,
    ah_nat,
    nat64,
    pmtu,
    blocked_ike,
    nat_mapping,
    esp,
];

/// The root cause of a failed cell, if the evidence shows one.
pub fn classify(o: &Outcome, cx: &Context) -> Option<Classified> {
    if !failed(o) {
        return None;
    }
    RULES
        .iter()
        .find_map(|r| r(o, cx).map(|(id, evidence)| Classified { id, evidence }))
}
