//! An endpoint's algorithms and lifetimes (`ike_proposals`,
//! `esp_proposals`, `ike_rekey`, `child_rekey`): proposals in strongSwan's
//! syntax, each keyword one vpnlab knows, with what IKE and ESP need; an
//! axis `matrix.ike_proposals.<node>` varies a node's IKE proposals (a
//! proposal mismatch and its fix).

use toml::Spanned;

use super::super::file::EndpointSpec;
use super::diag::{sp, Diags};
use super::matrix::{Axes, Choice, Varies};
use crate::model::Proposals;

/// Encryption keywords (AEAD ones need no integrity algorithm).
const ENCRYPTION: &[&str] = &[
    "aes128",
    "aes192",
    "aes256",
    "aes128ctr",
    "aes256ctr",
    "3des",
    "null",
];
/// AEAD keywords.
const AEAD: &[&str] = &[
    "aes128gcm16",
    "aes192gcm16",
    "aes256gcm16",
    "aes128gcm8",
    "aes256gcm8",
    "chacha20poly1305",
];
/// Integrity keywords.
const INTEGRITY: &[&str] = &["md5", "sha1", "sha256", "sha384", "sha512", "aesxcbc"];
/// Pseudo-random functions (IKE only).
const PRF: &[&str] = &[
    "prfmd5",
    "prfsha1",
    "prfsha256",
    "prfsha384",
    "prfsha512",
    "prfaesxcbc",
];
/// Diffie-Hellman groups (IKE; in ESP proposals: PFS).
const DH: &[&str] = &[
    "modp1024",
    "modp1536",
    "modp2048",
    "modp3072",
    "modp4096",
    "modp6144",
    "modp8192",
    "ecp256",
    "ecp384",
    "ecp521",
    "curve25519",
    "x25519",
    "curve448",
    "x448",
];
/// ESP's extended sequence numbers.
const ESN: &[&str] = &["esn", "noesn"];

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
    let node = e.node.get_ref().clone();
    let Some(axis) = axes.varying(&Varies::IkeProposals(node)) else {
        return Some(Choice::Fixed(p));
    };
    axes.varied(axis, |v| {
        let ike = v
            .split(',')
            .map(|s| s.trim().to_string())
            .collect::<Vec<_>>();
        ike.iter()
            .all(|x| problem(x, Kind::Ike).is_none())
            .then(|| Proposals { ike, ..p.clone() })
    })
}

/// Check one value of axis `ike_proposals` (comma-separated proposals).
pub(super) fn axis_value(d: &mut Diags<'_>, v: &Spanned<String>, field: &str) {
    for x in v.get_ref().split(',') {
        if let Some(why) = problem(x.trim(), Kind::Ike) {
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
    let known = |w: &&str| {
        ENCRYPTION.contains(w)
            || AEAD.contains(w)
            || INTEGRITY.contains(w)
            || DH.contains(w)
            || (kind == Kind::Ike && PRF.contains(w))
            || (kind == Kind::Esp && ESN.contains(w))
    };
    if let Some(w) = words.iter().find(|w| !known(w)) {
        let prf = if kind == Kind::Ike {
            format!("; PRF: {}", PRF.join(", "))
        } else {
            String::new()
        };
        return Some(format!(
            "`{w}` in `{p}` is no algorithm vpnlab knows (encryption: {}, {}; integrity: {}{prf}; DH groups: {})",
            ENCRYPTION.join(", "),
            AEAD.join(", "),
            INTEGRITY.join(", "),
            DH.join(", ")
        ));
    }
    let aead = words.iter().any(|w| AEAD.contains(w));
    if !aead && !words.iter().any(|w| ENCRYPTION.contains(w)) {
        return Some(format!("`{p}` names no encryption algorithm"));
    }
    if !aead && !words.iter().any(|w| INTEGRITY.contains(w)) {
        return Some(format!(
            "`{p}` needs an integrity algorithm (or an AEAD cipher such as aes128gcm16)"
        ));
    }
    if kind == Kind::Ike && !words.iter().any(|w| DH.contains(w)) {
        return Some(format!(
            "`{p}` names no Diffie-Hellman group: IKE needs one (e.g. -modp2048, -ecp256)"
        ));
    }
    if kind == Kind::Ike && aead && !words.iter().any(|w| PRF.contains(w)) {
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
