//! Per-run test PKI: a throw-away CA and end-entity certificates for
//! certificate-authenticated IKE.
//!
//! Everything is generated in memory for each run (nothing to expire in the
//! repository, no private keys checked in). Certificates can be padded to a
//! minimum DER size so that IKE_AUTH carries a large CERT payload and has to
//! be fragmented (RFC 7383) or IP-fragmented. A declared misconfiguration
//! gets a flawed certificate instead ([`Flaw`]): one signed by a second CA
//! that no end trusts, or one that expired before the run.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::string::PrintableString;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    PKCS_ECDSA_P256_SHA256,
};

use crate::model::{DnAttr, Identity, InvalidIdentity, Misconfig};

/// Largest `min_size` [`TestCa::issue`] accepts. A VICI value carries a
/// 16-bit length (rsvici's serializer silently truncates longer ones) and an
/// IKE payload has a 16-bit length too, so a certificate must stay well below
/// 64 KiB.
pub const MAX_CERT_SIZE: usize = 60_000;

/// Common name of the test CA.
const CA_NAME: &str = "vpnlab test CA";
/// Common name of the CA that signs [`Flaw::Untrusted`] certificates; no
/// end is ever given it.
const UNTRUSTED_CA_NAME: &str = "vpnlab untrusted CA";
/// An [`Flaw::Expired`] certificate's validity ended this long before
/// "now": well past any clock lag a VM has.
const EXPIRED_AGO: Duration = Duration::from_secs(7 * 24 * 3600);
/// Validity starts this long before "now" so that a VM whose clock lags the
/// host still accepts the certificates.
const BACKDATE: Duration = Duration::from_secs(24 * 3600);
/// Validity ends this long after "now": longer than any run, short enough
/// that a leaked certificate is worthless.
const LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Encoded size of one padding SAN `pad-NNNN.vpnlab.test`: 20 characters
/// plus the dNSName tag and length byte.
const PAD_SAN_SIZE: usize = 22;
/// Re-signing rounds before giving up (one or two suffice in practice: the
/// first estimate misses only by header growth and ECDSA signature jitter).
const MAX_ROUNDS: usize = 8;

/// The run's test CA: made once, shared by every cell's endpoints, of
/// either stack (so one trusts the other's certificates).
pub fn run_ca() -> Result<&'static TestCa, &'static PkiError> {
    static CA: std::sync::OnceLock<Result<TestCa, PkiError>> = std::sync::OnceLock::new();
    CA.get_or_init(TestCa::new).as_ref()
}

/// The CA no end trusts, made once per run like [`run_ca`].
fn untrusted_ca() -> Result<&'static TestCa, &'static PkiError> {
    static CA: std::sync::OnceLock<Result<TestCa, PkiError>> = std::sync::OnceLock::new();
    CA.get_or_init(|| TestCa::named(UNTRUSTED_CA_NAME)).as_ref()
}

/// A deliberate defect of an end's certificate, from its declared
/// misconfiguration: its peer must reject the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// Signed by the "vpnlab untrusted CA", which no end trusts.
    Untrusted,
    /// Signed by the run's CA, but its validity ended a week ago.
    Expired,
}

impl Flaw {
    /// The flaw an end's misconfigurations ask for, if any.
    pub fn of(misconfigured: &[Misconfig]) -> Option<Flaw> {
        misconfigured.iter().find_map(|m| match m {
            Misconfig::CertUntrusted => Some(Flaw::Untrusted),
            Misconfig::CertExpired => Some(Flaw::Expired),
            _ => None,
        })
    }
}

/// The certificate an end presents: from the run's CA (see
/// [`TestCa::issue`]), flawed as asked. The end trusts [`run_ca`] either
/// way.
pub fn issue(id: &str, min_size: Option<usize>, flaw: Option<Flaw>) -> Result<Issued, PkiError> {
    let shared = |r: Result<&'static TestCa, &'static PkiError>| {
        r.map_err(|e| PkiError::Shared {
            what: e.to_string(),
        })
    };
    match flaw {
        None => shared(run_ca())?.issue(id, min_size),
        Some(Flaw::Untrusted) => shared(untrusted_ca())?.issue(id, min_size),
        Some(Flaw::Expired) => shared(run_ca())?.issue_expired(id, min_size),
    }
}

/// Errors of the test PKI. Each names the identity (or the CA) involved.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Generating the CA key or self-signing its certificate failed.
    #[error("creating the {name}: {source}")]
    Ca {
        /// The CA's common name.
        name: &'static str,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// The identity is neither an IP address nor a DNS-like name.
    #[error(transparent)]
    InvalidId(#[from] InvalidIdentity),
    /// The run's CA could not be made: the first error, shared by every
    /// end of the run.
    #[error("{what}")]
    Shared {
        /// The first error's text.
        what: String,
    },
    /// `min_size` is above [`MAX_CERT_SIZE`].
    #[error("certificate for {id:?}: requested minimum size {min_size} bytes exceeds the limit of {max} bytes (VICI values and IKE payloads have 16-bit lengths)")]
    TooLarge {
        /// The identity.
        id: String,
        /// The requested minimum DER size.
        min_size: usize,
        /// [`MAX_CERT_SIZE`].
        max: usize,
    },
    /// Generating the key or signing the certificate failed.
    #[error("issuing a certificate for {id:?}: {source}")]
    Issue {
        /// The identity.
        id: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// Padding did not reach the requested size (should not happen).
    #[error("certificate for {id:?}: padding reached only {got} of {min_size} bytes")]
    Padding {
        /// The identity.
        id: String,
        /// The requested minimum DER size.
        min_size: usize,
        /// The size reached.
        got: usize,
    },
}

/// A certificate and its private key, both DER, ready for VICI
/// `load-cert`/`load-key`.
#[derive(Clone)]
pub struct Issued {
    /// The X.509 certificate (DER).
    pub cert_der: Vec<u8>,
    /// The private key as PKCS#8 (DER); load it with key type `any`.
    pub key_pkcs8_der: Vec<u8>,
}

// Sizes only: the bytes are unreadable in logs and the key is a secret.
impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_der", &format_args!("[{} bytes]", self.cert_der.len()))
            .field("key_pkcs8_der", &"[elided]")
            .finish()
    }
}

/// A self-signed ECDSA P-256 CA ("vpnlab test CA") that lives for one run.
pub struct TestCa {
    /// Its common name.
    name: &'static str,
    /// Signs end-entity certificates (CA name, key identifier and key).
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (DER).
    cert_der: Vec<u8>,
    /// Defaults for end-entity certificates: the CA's validity window, so
    /// that no certificate outlives its issuer.
    template: CertificateParams,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .field("cert_der", &format_args!("[{} bytes]", self.cert_der.len()))
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new "vpnlab test CA" with a fresh key, valid from one day ago to
    /// 30 days ahead.
    pub fn new() -> Result<TestCa, PkiError> {
        TestCa::named(CA_NAME)
    }

    /// A new CA called `name`, otherwise as [`TestCa::new`].
    fn named(name: &'static str) -> Result<TestCa, PkiError> {
        let err = |source| PkiError::Ca { name, source };
        let mut template = CertificateParams::default();
        // rcgen takes `time` dates; build them from the epoch so that vpnlab
        // needs no direct dependency on the `time` crate.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        template.not_before = epoch + now.saturating_sub(BACKDATE);
        template.not_after = epoch + now + LIFETIME;
        template.distinguished_name = DistinguishedName::new();

        let mut params = template.clone();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(TestCa {
            name,
            issuer: Issuer::new(params, key),
            cert_der: cert.der().to_vec(),
            template,
        })
    }

    /// The CA certificate (DER), to load with flag `CA`.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Issue an end-entity certificate for IKE identity `id`: an IP address
    /// (iPAddress SAN), a DNS-like name such as `client.vpnlab.test`
    /// (dNSName SAN) or an e-mail address (rfc822Name SAN), each with
    /// subject CN `id` too; or a DN, which is the subject. With `min_size`, extra
    /// dNSName SANs `pad-0000.vpnlab.test`, `pad-0001.vpnlab.test`, … are
    /// added until the DER is at least that long (it ends up at most a few
    /// dozen bytes longer).
    pub fn issue(&self, id: &str, min_size: Option<usize>) -> Result<Issued, PkiError> {
        self.issue_with(id, min_size, self.template.clone())
    }

    /// As [`TestCa::issue`], but valid from 37 days ago until 7 days ago.
    pub fn issue_expired(&self, id: &str, min_size: Option<usize>) -> Result<Issued, PkiError> {
        let mut template = self.template.clone();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        template.not_after = epoch + now.saturating_sub(EXPIRED_AGO);
        template.not_before = epoch + now.saturating_sub(EXPIRED_AGO + LIFETIME);
        self.issue_with(id, min_size, template)
    }

    fn issue_with(
        &self,
        id: &str,
        min_size: Option<usize>,
        mut params: CertificateParams,
    ) -> Result<Issued, PkiError> {
        let (subject, sans) = identity_subject(id)?;
        if let Some(min_size) = min_size.filter(|&m| m > MAX_CERT_SIZE) {
            return Err(PkiError::TooLarge {
                id: id.into(),
                min_size,
                max: MAX_CERT_SIZE,
            });
        }
        let err = |source| PkiError::Issue {
            id: id.into(),
            source,
        };

        params.distinguished_name = subject;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        // Lets strongSwan (and openssl) find the issuer by key identifier.
        params.use_authority_key_identifier_extension = true;
        params.subject_alt_names = sans;

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(err)?;
        let der = self.sign_padded(id, params, &key, min_size.unwrap_or(0))?;
        Ok(Issued {
            cert_der: der,
            key_pkcs8_der: key.serialize_der(),
        })
    }

    /// Sign `params` with `key`, adding padding SANs until the DER is at
    /// least `min_size` bytes.
    fn sign_padded(
        &self,
        id: &str,
        mut params: CertificateParams,
        key: &KeyPair,
        min_size: usize,
    ) -> Result<Vec<u8>, PkiError> {
        let sign = |params: &CertificateParams| {
            params
                .signed_by(key, &self.issuer)
                .map(|c| c.der().to_vec())
                .map_err(|source| PkiError::Issue {
                    id: id.into(),
                    source,
                })
        };
        let mut der = sign(&params)?;
        let mut pads = 0;
        let mut rounds = 0;
        // Each round adds enough padding SANs for the remaining deficit and
        // re-signs once: the estimate only misses by DER length headers
        // growing and ECDSA signatures varying by a byte or two, so a 16 KB
        // certificate takes two or three signatures, not hundreds.
        while der.len() < min_size {
            if rounds == MAX_ROUNDS {
                return Err(PkiError::Padding {
                    id: id.into(),
                    min_size,
                    got: der.len(),
                });
            }
            rounds += 1;
            let more = (min_size - der.len()).div_ceil(PAD_SAN_SIZE);
            for n in pads..pads + more {
                params.subject_alt_names.push(pad_san(n));
            }
            pads += more;
            der = sign(&params)?;
        }
        Ok(der)
    }
}

/// The subject and SANs that carry IKE identity `id`, where both stacks
/// match the peer's ID payload (ID_IPV4_ADDR/ID_IPV6_ADDR against
/// iPAddress, ID_FQDN against dNSName, ID_RFC822_ADDR against rfc822Name,
/// ID_DER_ASN1_DN against the subject). The rules are
/// [`Identity::parse`]'s, which scenario validation applies before
/// anything runs.
fn identity_subject(id: &str) -> Result<(DistinguishedName, Vec<SanType>), PkiError> {
    let invalid = |e: rcgen::Error| {
        PkiError::InvalidId(InvalidIdentity {
            id: id.into(),
            reason: e.to_string(),
        })
    };
    let mut subject = DistinguishedName::new();
    let san = match Identity::parse(id)? {
        Identity::Ip(ip) => SanType::IpAddress(ip),
        Identity::Dns(name) => SanType::DnsName(name.as_str().try_into().map_err(invalid)?),
        Identity::Email(mail) => SanType::Rfc822Name(mail.as_str().try_into().map_err(invalid)?),
        Identity::Dn(rdns) => {
            // PrintableString, as both stacks encode a DN they parse.
            for (attr, value) in rdns {
                let value = PrintableString::try_from(value).map_err(invalid)?;
                subject.push(dn_type(attr), DnValue::PrintableString(value));
            }
            return Ok((subject, vec![]));
        }
    };
    subject.push(DnType::CommonName, id);
    Ok((subject, vec![san]))
}

fn dn_type(attr: DnAttr) -> DnType {
    match attr {
        DnAttr::C => DnType::CountryName,
        DnAttr::ST => DnType::StateOrProvinceName,
        DnAttr::L => DnType::LocalityName,
        DnAttr::O => DnType::OrganizationName,
        DnAttr::OU => DnType::OrganizationalUnitName,
        DnAttr::CN => DnType::CommonName,
    }
}

/// Padding SAN number `n`: always four digits, so every one encodes to
/// exactly [`PAD_SAN_SIZE`] bytes (n < 10000 since
/// `MAX_CERT_SIZE / PAD_SAN_SIZE` < 2800).
fn pad_san(n: usize) -> SanType {
    let name = format!("pad-{n:04}.vpnlab.test");
    SanType::DnsName(name.try_into().expect("ASCII name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// The strongSwan driver keeps one CA per process in a static.
    #[test]
    fn test_ca_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TestCa>();
        assert_send_sync::<Issued>();
    }

    #[test]
    fn padded_cert_reaches_min_size_with_small_margin() {
        let ca = TestCa::new().unwrap();
        let issued = ca.issue("client.vpnlab.test", Some(3000)).unwrap();
        let len = issued.cert_der.len();
        assert!((3000..3200).contains(&len), "DER is {len} bytes");
    }

    #[test]
    fn plain_cert_is_small() {
        let ca = TestCa::new().unwrap();
        for id in ["192.0.2.10", "server.vpnlab.test"] {
            let issued = ca.issue(id, None).unwrap();
            assert!(issued.cert_der.len() < 1000, "{id}: {:?}", issued);
            assert!(!issued.key_pkcs8_der.is_empty());
        }
        assert!(ca.cert_der().len() < 1000);
    }

    #[test]
    fn sizes_across_the_range() {
        let ca = TestCa::new().unwrap();
        for min in [1, 500, 1000, 1500, 4096, 16_384, MAX_CERT_SIZE] {
            let len = ca.issue("10.1.0.2", Some(min)).unwrap().cert_der.len();
            assert!(
                len >= min && (min < 1000 || len < min + 200),
                "{min}: {len}"
            );
        }
    }

    #[test]
    fn rejects_bad_input_naming_the_identity() {
        let ca = TestCa::new().unwrap();
        let e = ca.issue("client.vpnlab.test", Some(60_001)).unwrap_err();
        assert!(matches!(e, PkiError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("client.vpnlab.test"), "{e}");
        for bad in ["", "@vpnlab.test", "CN=", "a..b", "bad name"] {
            let e = ca.issue(bad, None).unwrap_err();
            assert!(matches!(e, PkiError::InvalidId { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    /// DER → PEM with the openssl binary.
    fn to_pem(dir: &Path, name: &str, der: &[u8]) -> std::path::PathBuf {
        let der_path = dir.join(format!("{name}.der"));
        let pem_path = dir.join(format!("{name}.pem"));
        std::fs::write(&der_path, der).unwrap();
        openssl(
            &["x509", "-inform", "DER", "-in"],
            &[&der_path, Path::new("-out"), &pem_path],
        );
        pem_path
    }

    /// Run openssl with `args` then `paths`; it must succeed.
    fn openssl(args: &[&str], paths: &[&Path]) -> std::process::Output {
        let out = Command::new("openssl")
            .args(args)
            .args(paths)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    #[test]
    fn openssl_verifies_chain() {
        assert!(
            Command::new("openssl").arg("version").output().is_ok(),
            "openssl is not installed: apt-get install openssl (ci/setup.sh does)"
        );
        let dir = std::env::temp_dir().join(format!("vpnlab-pki-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = TestCa::new().unwrap();
        let ca_pem = to_pem(&dir, "ca", ca.cert_der());
        for (id, min) in [
            ("192.0.2.10", None),
            ("client.vpnlab.test", Some(16_384)),
            ("carol@vpnlab.test", None),
            ("C=CH, O=vpnlab, CN=dave", None),
        ] {
            let issued = ca.issue(id, min).unwrap();
            let ee_pem = to_pem(&dir, "ee", &issued.cert_der);
            let said = verify(&ca_pem, &ee_pem);
            assert!(said.contains(": OK"), "{id}: {said}");
            // The identity is where charon looks for it.
            let text = openssl(
                &["x509", "-noout", "-ext", "subjectAltName", "-in"],
                &[&ee_pem],
            );
            let text = String::from_utf8_lossy(&text.stdout);
            let text = text.into_owned()
                + &String::from_utf8_lossy(
                    &openssl(&["x509", "-noout", "-subject", "-in"], &[&ee_pem]).stdout,
                );
            let want = match Identity::parse(id).unwrap() {
                Identity::Ip(_) => format!("IP Address:{id}"),
                Identity::Dns(_) => format!("DNS:{id}"),
                Identity::Email(_) => format!("email:{id}"),
                // openssl's own spacing, in the order written.
                Identity::Dn(_) => format!("subject={}", id.replace('=', " = ")),
            };
            assert!(text.contains(&want), "{text}");
            // The key is PKCS#8 that openssl can read.
            let key = dir.join("ee.key.der");
            std::fs::write(&key, &issued.key_pkcs8_der).unwrap();
            openssl(&["pkey", "-inform", "DER", "-noout", "-in"], &[&key]);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// What `openssl verify` says of `ee_pem` against `ca_pem` (stdout and
    /// stderr).
    fn verify(ca_pem: &Path, ee_pem: &Path) -> String {
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(ca_pem)
            .arg(ee_pem)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// What openssl says of a certificate of `flaw` against the run's CA.
    fn verify_flawed(dir: &Path, flaw: Option<Flaw>) -> String {
        let ca_pem = to_pem(dir, "ca", run_ca().unwrap().cert_der());
        let issued = issue("client.vpnlab.test", None, flaw).unwrap();
        verify(&ca_pem, &to_pem(dir, "ee", &issued.cert_der))
    }

    #[test]
    fn flawed_certificates_fail_verification_for_their_reason() {
        let dir = std::env::temp_dir().join(format!("vpnlab-pki-flaw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(verify_flawed(&dir, None).contains(": OK"));
        let untrusted = verify_flawed(&dir, Some(Flaw::Untrusted));
        assert!(
            untrusted.contains("unable to get local issuer certificate"),
            "{untrusted}"
        );
        let expired = verify_flawed(&dir, Some(Flaw::Expired));
        assert!(expired.contains("certificate has expired"), "{expired}");
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(Flaw::of(&[Misconfig::Psk]), None);
        assert_eq!(Flaw::of(&[Misconfig::CertExpired]), Some(Flaw::Expired));
    }
}
