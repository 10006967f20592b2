//! vpnlab's proposals (strongSwan's syntax, [`crate::model::ALGORITHMS`])
//! written as libreswan's `ike=` and `esp=` lines, with the connection-wide
//! settings libreswan keeps outside a proposal (`pfs=`, `esn=`); or the
//! reason libreswan cannot say what the file asks for.
//!
//! libreswan writes one proposal as `ENC+ENC-INTEG+INTEG-DH+DH`; an AEAD
//! cipher takes its PRF in the integrity slot for IKE and `none` for ESP.

use crate::model::{algorithm, AlgKind};

/// An endpoint's ESP settings in libreswan's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Esp {
    /// The `esp=` value.
    pub esp: String,
    /// Whether the proposals carry a DH group (`pfs=yes`).
    pub pfs: bool,
    /// `esn=yes|no`, where a proposal says.
    pub esn: Option<&'static str>,
}

/// One proposal's keywords, by role, in libreswan's names.
#[derive(Default)]
struct Parts {
    enc: Vec<&'static str>,
    aead: bool,
    integ: Vec<&'static str>,
    prf: Vec<&'static str>,
    dh: Vec<&'static str>,
    esn: Vec<&'static str>,
}

/// Sort `p`'s keywords by role; a keyword libreswan lacks is an error.
/// The file was validated, so every keyword is known.
fn parts(p: &str) -> Result<Parts, String> {
    let mut out = Parts::default();
    for w in p.split('-') {
        let Some(a) = algorithm(w) else {
            return Err(format!("`{w}` in `{p}` is no algorithm vpnlab knows"));
        };
        let Some(name) = a.libreswan else {
            return Err(format!("libreswan 4 does not implement `{w}` (in `{p}`)"));
        };
        match a.kind {
            AlgKind::Encryption => out.enc.push(name),
            AlgKind::Aead => {
                out.enc.push(name);
                out.aead = true;
            }
            AlgKind::Integrity => out.integ.push(name),
            AlgKind::Prf => out.prf.push(name),
            AlgKind::Dh => out.dh.push(name),
            AlgKind::Esn => out.esn.push(name),
        }
    }
    Ok(out)
}

/// `ike=` for the file's IKE proposals (`version`: the IKE version).
pub fn ike(list: &[String], version: u8) -> Result<String, String> {
    let mut out = Vec::new();
    for p in list {
        let x = parts(p)?;
        if x.aead && version == 1 {
            return Err(format!("`{p}`: libreswan has no AEAD IKE ciphers in IKEv1"));
        }
        // libreswan derives the PRF from the integrity algorithm.
        let middle = if x.aead {
            x.prf
        } else if x.prf.is_empty() || x.prf == x.integ {
            x.integ
        } else {
            return Err(format!(
                "`{p}`: libreswan takes the PRF from the integrity algorithm, so a different PRF cannot be proposed"
            ));
        };
        out.push(format!(
            "{}-{}-{}",
            x.enc.join("+"),
            middle.join("+"),
            x.dh.join("+")
        ));
    }
    Ok(out.join(","))
}

/// `esp=`, `pfs=` and `esn=` for the file's ESP proposals.
pub fn esp(list: &[String]) -> Result<Esp, String> {
    let mut out = Vec::new();
    let (mut pfs, mut esn, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    for p in list {
        let x = parts(p)?;
        let mut s = x.enc.join("+");
        if x.aead {
            if !x.dh.is_empty() {
                s += "-none";
            }
        } else {
            s = format!("{s}-{}", x.integ.join("+"));
        }
        if !x.dh.is_empty() {
            s = format!("{s}-{}", x.dh.join("+"));
        }
        pfs.push(!x.dh.is_empty());
        esn.extend(x.esn);
        groups.extend(x.dh);
        out.push(s);
    }
    if pfs.iter().any(|x| *x) && !pfs.iter().all(|x| *x) {
        return Err("libreswan sets PFS per connection (pfs=yes|no): its ESP proposals must all name a DH group or none".into());
    }
    groups.sort();
    groups.dedup();
    if groups.len() > 1 {
        return Err(format!("libreswan 4 proposes one PFS group for a CHILD SA (several, {}, would need CHILD SA INVALID_KE, which it does not implement)", groups.join(" and ")));
    }
    esn.dedup();
    if esn.len() > 1 {
        return Err(
            "libreswan sets ESN per connection (esn=yes|no): the ESP proposals ask for both".into(),
        );
    }
    Ok(Esp {
        esp: out.join(","),
        pfs: pfs.first().copied().unwrap_or(false),
        esn: esn.first().copied(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ike_proposals_take_libreswan_names_and_the_prf_in_the_integrity_slot() {
        assert_eq!(
            ike(&v(&["aes256-sha256-modp2048"]), 2).unwrap(),
            "aes256-sha2_256-modp2048"
        );
        assert_eq!(
            ike(
                &v(&[
                    "aes128gcm16-prfsha256-ecp256",
                    "aes128-aes256-sha1-sha256-prfsha1-prfsha256-modp3072-curve25519"
                ]),
                2
            )
            .unwrap(),
            "aes_gcm_c128-sha2_256-dh19,aes128+aes256-sha1+sha2_256-modp3072+dh31"
        );
        assert!(ike(&v(&["aes256-sha256-prfsha384-modp2048"]), 2)
            .unwrap_err()
            .contains("PRF from the integrity"));
        assert!(ike(&v(&["aes256-sha256-modp1024"]), 2)
            .unwrap_err()
            .contains("does not implement `modp1024`"));
        assert!(ike(&v(&["aes128gcm16-prfsha256-ecp256"]), 1).is_err());
    }

    #[test]
    fn esp_proposals_give_pfs_and_esn_per_connection() {
        let e = esp(&v(&["aes128-sha256-modp2048-esn", "aes256gcm16-modp2048"])).unwrap();
        assert_eq!(e.esp, "aes128-sha2_256-modp2048,aes_gcm_c256-none-modp2048");
        assert_eq!((e.pfs, e.esn), (true, Some("yes")));
        let e = esp(&v(&["aes256gcm16", "null-sha1"])).unwrap();
        assert_eq!(
            (e.esp.as_str(), e.pfs, e.esn),
            ("aes_gcm_c256,null-sha1", false, None)
        );
        assert!(esp(&v(&["aes128-sha256-modp2048", "aes128-sha256"]))
            .unwrap_err()
            .contains("PFS per connection"));
        assert!(esp(&v(&["aes128-sha256-esn", "aes128-sha256-noesn"])).is_err());
        assert!(esp(&v(&["aes128-sha256-modp2048", "aes128-sha256-ecp256"]))
            .unwrap_err()
            .contains("one PFS group"));
    }

    /// What the driver writes, parsed by libreswan's own `algparse`, where
    /// it is installed (`ci/setup.sh` installs it).
    #[test]
    fn libreswan_algparse_accepts_the_mapped_proposals() {
        let algparse = super::super::tool("algparse");
        if !algparse.exists() {
            assert!(
                std::env::var("VPNLAB_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
                "{} is missing: sudo ci/setup.sh installs libreswan",
                algparse.display()
            );
            eprintln!(
                "skipped: {} is missing (sudo ci/setup.sh installs libreswan)",
                algparse.display()
            );
            return;
        }
        let every = |kind| {
            crate::model::ALGORITHMS
                .iter()
                .filter(move |a| a.kind == kind && a.libreswan.is_some())
                .map(|a| a.keyword)
        };
        let mut ikes = Vec::new();
        let mut lines = Vec::new();
        for dh in every(AlgKind::Dh) {
            let mut esps = Vec::new();
            for e in every(AlgKind::Encryption).filter(|e| *e != "null") {
                ikes.push(format!("{e}-sha256-{dh}"));
            }
            for a in every(AlgKind::Aead) {
                ikes.push(format!("{a}-prfsha384-{dh}"));
                esps.push(format!("{a}-{dh}"));
            }
            for i in every(AlgKind::Integrity) {
                ikes.push(format!("aes128-{i}-{dh}"));
                esps.push(format!("aes256-{i}-{dh}"));
            }
            lines.push((format!("esp={}", esp(&esps).unwrap().esp), true));
        }
        lines.push((format!("ike={}", ike(&ikes, 2).unwrap()), false));
        lines.push(("esp=null-sha1,aes128-sha1".into(), false));
        for (line, pfs) in lines {
            let mut cmd = std::process::Command::new(&algparse);
            cmd.arg("-v2");
            if pfs {
                cmd.arg("-pfs");
            }
            let out = cmd.arg(&line).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && !text.contains("ERROR") && !text.contains("ignoring"),
                "algparse refused {line}:\n{}",
                text.lines().last().unwrap_or_default()
            );
        }
    }
}
