//! The algorithm keywords of vpnlab's proposal syntax (strongSwan's:
//! `aes256-sha256-modp2048`), each with its role in a proposal and the name
//! libreswan's `ike=`/`esp=` give it. One table serves validation (which
//! keywords exist), the libreswan driver (how to write them) and the
//! README's mapping table (a test keeps the two equal).

/// What a keyword names in a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgKind {
    /// A cipher that needs an integrity algorithm.
    Encryption,
    /// A cipher with integrity built in (AEAD).
    Aead,
    /// An integrity algorithm (IKE also takes it as its PRF).
    Integrity,
    /// A pseudo-random function (IKE proposals only).
    Prf,
    /// A Diffie-Hellman group (in an ESP proposal: PFS).
    Dh,
    /// Extended sequence numbers on or off (ESP proposals only).
    Esn,
}

/// One keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Algorithm {
    /// As written in a file.
    pub keyword: &'static str,
    /// Its role.
    pub kind: AlgKind,
    /// libreswan 4's name: for a PRF the hash's (libreswan writes the PRF
    /// in the integrity slot), for ESN the `esn=` value; `None`: libreswan
    /// lacks it.
    pub libreswan: Option<&'static str>,
}

const fn alg(keyword: &'static str, kind: AlgKind, libreswan: &'static str) -> Algorithm {
    Algorithm {
        keyword,
        kind,
        libreswan: Some(libreswan),
    }
}

const fn missing(keyword: &'static str, kind: AlgKind) -> Algorithm {
    Algorithm {
        keyword,
        kind,
        libreswan: None,
    }
}

use AlgKind::{Aead, Dh, Encryption, Esn, Integrity, Prf};

/// Every keyword, by role. libreswan's names were checked with its
/// `algparse` (4.10): GCM's ICV lengths 16 and 8 are its `_c` and `_a`;
/// MODP 1024 is no longer compiled in and Curve448 never was.
pub const ALGORITHMS: &[Algorithm] = &[
    alg("aes128", Encryption, "aes128"),
    alg("aes192", Encryption, "aes192"),
    alg("aes256", Encryption, "aes256"),
    alg("aes128ctr", Encryption, "aes_ctr128"),
    alg("aes256ctr", Encryption, "aes_ctr256"),
    alg("3des", Encryption, "3des"),
    alg("null", Encryption, "null"),
    alg("aes128gcm16", Aead, "aes_gcm_c128"),
    alg("aes192gcm16", Aead, "aes_gcm_c192"),
    alg("aes256gcm16", Aead, "aes_gcm_c256"),
    alg("aes128gcm8", Aead, "aes_gcm_a128"),
    alg("aes256gcm8", Aead, "aes_gcm_a256"),
    alg("chacha20poly1305", Aead, "chacha20_poly1305"),
    alg("md5", Integrity, "md5"),
    alg("sha1", Integrity, "sha1"),
    alg("sha256", Integrity, "sha2_256"),
    alg("sha384", Integrity, "sha2_384"),
    alg("sha512", Integrity, "sha2_512"),
    alg("aesxcbc", Integrity, "aes_xcbc"),
    alg("prfmd5", Prf, "md5"),
    alg("prfsha1", Prf, "sha1"),
    alg("prfsha256", Prf, "sha2_256"),
    alg("prfsha384", Prf, "sha2_384"),
    alg("prfsha512", Prf, "sha2_512"),
    alg("prfaesxcbc", Prf, "aes_xcbc"),
    missing("modp1024", Dh),
    alg("modp1536", Dh, "modp1536"),
    alg("modp2048", Dh, "modp2048"),
    alg("modp3072", Dh, "modp3072"),
    alg("modp4096", Dh, "modp4096"),
    alg("modp6144", Dh, "modp6144"),
    alg("modp8192", Dh, "modp8192"),
    alg("ecp256", Dh, "dh19"),
    alg("ecp384", Dh, "dh20"),
    alg("ecp521", Dh, "dh21"),
    alg("curve25519", Dh, "dh31"),
    alg("x25519", Dh, "dh31"),
    missing("curve448", Dh),
    missing("x448", Dh),
    alg("esn", Esn, "yes"),
    alg("noesn", Esn, "no"),
];

/// The keyword's entry, if vpnlab knows it.
pub fn algorithm(keyword: &str) -> Option<&'static Algorithm> {
    ALGORITHMS.iter().find(|a| a.keyword == keyword)
}

/// The keywords of one role, comma-separated (for error messages).
pub fn keywords(kind: AlgKind) -> String {
    ALGORITHMS
        .iter()
        .filter(|a| a.kind == kind)
        .map(|a| a.keyword)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's mapping table lists every keyword, in order, with
    /// the libreswan name the driver writes.
    #[test]
    fn readme_table_matches_the_code() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("<!-- algorithms:").expect("README marker");
        let end = readme
            .find("<!-- /algorithms -->")
            .expect("README end marker");
        let rows: Vec<(String, String)> = readme[start..end]
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').to_string(), cells[3].to_string())
            })
            .collect();
        assert_eq!(rows.len(), ALGORITHMS.len(), "one README row per keyword");
        for (a, (kw, lib)) in ALGORITHMS.iter().zip(&rows) {
            assert_eq!(a.keyword, kw);
            match a.libreswan {
                Some(name) => assert!(
                    lib.contains(&format!("`{name}`")) || lib.contains(&format!("`esn={name}`")),
                    "{kw}: README says {lib}, the driver writes {name}"
                ),
                None => assert!(lib.contains("UNSUPPORTED"), "{kw}: README says {lib}"),
            }
        }
    }
}
