//! An endpoint's algorithms and lifetimes (`ike_proposals`,
//! `esp_proposals`, `ike_rekey`, `child_rekey`): proposals in strongSwan's
//! syntax, each keyword one vpnlab knows, with what IKE and ESP need; an
//! axis `matrix.ike_proposals.<node>` varies a node's IKE proposals (a
//! proposal mismatch and its fix), `matrix.esp_proposals.<node>` its ESP
//! proposals (PFS or not).

use toml::Spanned;

use super::super::file::EndpointSpec;
use super::diag::{sp, Diags};
use super::matrix::{Axes, Choice, Varies};
use crate::model::{algorithm, keywords, AlgKind, Proposals};

/// Longest rekey time: a day.
const MAX_REKEY: u32 = 86_400;

/// Which proposal: IKE's, or ESP's (for the CHILD SA).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ike,
    Esp,
}

/// The endpoint's proposals and rekey times, and its IKE proposals per
/// cell where an axis varies them; `None` after reporting why not.
pub(super) fn of(
    d: &mut Diags<'_>,
    e: &EndpointSpec,
    axes: &Axes,
    field: &str,
) -> Option<Choice<Proposals>> {
    let mut p = Proposals::default();
    let mut ok = true;
    if let Some(v) = &e.ike_proposals {
        ok &= list(
            d,
            v,
            Kind::Ike,
            &format!("{field}.ike_proposals"),
            &mut p.ike,
        );
    }
    if let Some(v) = &e.esp_proposals {
        ok &= list(
            d,
            v,
            Kind::Esp,
            &format!("{field}.esp_proposals"),
            &mut p.esp,
        );
    }
    for (name, v, slot) in [
        ("ike_rekey", &e.ike_rekey, &mut p.ike_rekey),
        ("child_rekey", &e.child_rekey, &mut p.child_rekey),
    ] {
        if let Some(v) = v {
            *slot = rekey_time(d, v, &format!("{field}.{name}"));
            ok &= slot.is_some();
        }
    }
    if !ok {
        return None;
    }
    by_axis(d, e, axes, p)
}

/// The fixed proposals `p`, or `p` with the IKE or the ESP proposals each
/// cell's axis value gives (not both).
fn by_axis(
    d: &mut Diags<'_>,
    e: &EndpointSpec,
    axes: &Axes,
    p: Proposals,
) -> Option<Choice<Proposals>> {
    let node = e.node.get_ref().clone();
    let ike = axes.varying(&Varies::IkeProposals(node.clone()));
    let esp = axes.varying(&Varies::EspProposals(node));
    let (axis, kind) = match (ike, esp) {
        (None, None) => return Some(Choice::Fixed(p)),
        (Some(a), None) => (a, Kind::Ike),
        (None, Some(a)) => (a, Kind::Esp),
        (Some(_), Some(_)) => {
            d.err(
                sp(&e.node),
                "matrix.esp_proposals",
                format!(
                    "axes vary both the IKE and the ESP proposals of `{}`: vary one",
                    e.node.get_ref()
                ),
            );
            return None;
        }
    };
    axes.varied(axis, |v| {
        let list = split(v);
        list.iter()
            .all(|x| problem(x, kind).is_none())
            .then(|| match kind {
                Kind::Ike => Proposals {
                    ike: list,
                    ..p.clone()
                },
                Kind::Esp => Proposals {
                    esp: list,
                    ..p.clone()
                },
            })
    })
}

/// An axis value's proposals (comma-separated).
fn split(v: &str) -> Vec<String> {
    v.split(',').map(|s| s.trim().to_string()).collect()
}

/// Check one value of axis `ike_proposals` or (`esp`) `esp_proposals`.
pub(super) fn axis_value(d: &mut Diags<'_>, v: &Spanned<String>, field: &str, esp: bool) {
    let kind = if esp { Kind::Esp } else { Kind::Ike };
    for x in split(v.get_ref()) {
        if let Some(why) = problem(&x, kind) {
            d.err(sp(v), field, why);
        }
    }
}

/// A list of proposals; `false` once one was reported.
fn list(
    d: &mut Diags<'_>,
    v: &Spanned<Vec<Spanned<String>>>,
    kind: Kind,
    field: &str,
    out: &mut Vec<String>,
) -> bool {
    if v.get_ref().is_empty() {
        d.err(
            sp(v),
            field,
            "list at least one proposal (or leave the field out)",
        );
        return false;
    }
    let mut ok = true;
    for x in v.get_ref() {
        match problem(x.get_ref(), kind) {
            Some(why) => {
                d.err(sp(x), field, why);
                ok = false;
            }
            None => out.push(x.get_ref().clone()),
        }
    }
    ok
}

/// What is wrong with proposal `p`, if anything: an unknown keyword, no
/// encryption, no integrity for a non-AEAD cipher, or IKE without a DH
/// group.
fn problem(p: &str, kind: Kind) -> Option<String> {
    let words: Vec<&str> = p.split('-').collect();
    let kinds: Vec<Option<AlgKind>> = words.iter().map(|w| algorithm(w).map(|a| a.kind)).collect();
    let allowed = |k: AlgKind| match k {
        AlgKind::Prf => kind == Kind::Ike,
        AlgKind::Esn => kind == Kind::Esp,
        _ => true,
    };
    if let Some(i) = kinds.iter().position(|k| !k.is_some_and(allowed)) {
        let prf = if kind == Kind::Ike {
            format!("; PRF: {}", keywords(AlgKind::Prf))
        } else {
            String::new()
        };
        return Some(format!(
            "`{}` in `{p}` is no algorithm vpnlab knows (encryption: {}, {}; integrity: {}{prf}; DH groups: {})",
            words[i],
            keywords(AlgKind::Encryption),
            keywords(AlgKind::Aead),
            keywords(AlgKind::Integrity),
            keywords(AlgKind::Dh)
        ));
    }
    let has = |k: AlgKind| kinds.contains(&Some(k));
    let aead = has(AlgKind::Aead);
    if !aead && !has(AlgKind::Encryption) {
        return Some(format!("`{p}` names no encryption algorithm"));
    }
    if !aead && !has(AlgKind::Integrity) {
        return Some(format!(
            "`{p}` needs an integrity algorithm (or an AEAD cipher such as aes128gcm16)"
        ));
    }
    if kind == Kind::Ike && !has(AlgKind::Dh) {
        return Some(format!(
            "`{p}` names no Diffie-Hellman group: IKE needs one (e.g. -modp2048, -ecp256)"
        ));
    }
    if kind == Kind::Ike && aead && !has(AlgKind::Prf) {
        return Some(format!(
            "`{p}` is AEAD and so needs a PRF (e.g. -prfsha256)"
        ));
    }
    None
}

/// `"30s"`, `"10m"` or `"1h"`: whole seconds, 1 s to a day.
fn rekey_time(d: &mut Diags<'_>, v: &Spanned<String>, field: &str) -> Option<u32> {
    let s = v.get_ref();
    let (n, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s.as_str(), ""),
    };
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => 0,
    };
    let secs = n.parse::<u32>().ok().map(|n| n.saturating_mul(mult));
    match secs {
        Some(x) if (1..=MAX_REKEY).contains(&x) => Some(x),
        _ => {
            let msg =
                format!("`{s}` is not a rekey time like \"30s\", \"10m\" or \"1h\" (1 s to 24 h)");
            d.err(sp(v), field, msg);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_need_what_ike_and_esp_need() {
        assert_eq!(problem("aes256-sha256-modp2048", Kind::Ike), None);
        assert_eq!(problem("aes256gcm16-prfsha384-ecp384", Kind::Ike), None);
        assert_eq!(problem("aes128gcm16", Kind::Esp), None);
        assert_eq!(problem("aes256-sha256-modp2048-esn", Kind::Esp), None);
        assert!(problem("aes256-sha256", Kind::Ike)
            .unwrap()
            .contains("no Diffie-Hellman group"));
        assert!(problem("aes256-modp2048", Kind::Ike)
            .unwrap()
            .contains("integrity"));
        assert!(problem("aes256gcm16-ecp256", Kind::Ike)
            .unwrap()
            .contains("needs a PRF"));
        assert!(problem("aes256-sha256-prfsha256", Kind::Esp)
            .unwrap()
            .contains("`prfsha256`"));
        assert!(problem("blowfish-sha1-modp1024", Kind::Ike)
            .unwrap()
            .contains("`blowfish`"));
    }
}
