//! An IKE identity as a certificate carries it: an IP address, a DNS-like
//! name, an e-mail address or a distinguished name. The rules live here, in
//! the leaf model, because three layers need them: scenario validation
//! refuses an unusable identity before anything runs, the test PKI puts the
//! identity into a certificate, and each stack driver writes it in its own
//! syntax (libreswan marks a name with `@`, quotes a DN).

use std::net::IpAddr;

/// An identity a certificate can carry. Both stacks parse the same string
/// into the same IKE ID type (RFC 7296 section 3.5) and match it against
/// the certificate: ID_IPV4_ADDR/ID_IPV6_ADDR against an iPAddress SAN,
/// ID_FQDN against a dNSName, ID_RFC822_ADDR against an rfc822Name,
/// ID_DER_ASN1_DN against the subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An IP address (iPAddress SAN).
    Ip(IpAddr),
    /// A DNS-like name such as `client.vpnlab.test` (dNSName SAN).
    Dns(String),
    /// An e-mail address such as `carol@vpnlab.test` (rfc822Name SAN).
    Email(String),
    /// A distinguished name such as `C=CH, O=vpnlab, CN=carol` (the
    /// certificate's subject), its attributes in the order written.
    Dn(Vec<(DnAttr, String)>),
}

/// The DN attributes an identity may use (RFC 4514 short names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::Display)]
pub enum DnAttr {
    /// countryName (two letters).
    C,
    /// stateOrProvinceName.
    ST,
    /// localityName.
    L,
    /// organizationName.
    O,
    /// organizationalUnitName.
    OU,
    /// commonName.
    CN,
}

/// An identity that neither stack nor a certificate could carry, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IKE identity {id:?}: {reason}")]
pub struct InvalidIdentity {
    /// The identity as given.
    pub id: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Identity {
    /// Parse an IKE identity: an IP address; a DN if it has a `=`; an
    /// e-mail address if it has a `@`; else a DNS name of letters, digits,
    /// '.', '-' and '_' (1 to 253 characters, no empty labels).
    pub fn parse(id: &str) -> Result<Identity, InvalidIdentity> {
        let invalid = |reason: &str| InvalidIdentity {
            id: id.into(),
            reason: reason.into(),
        };
        if let Ok(ip) = id.parse::<IpAddr>() {
            Ok(Identity::Ip(ip))
        } else if id.contains('=') {
            dn(id).map(Identity::Dn).map_err(|r| invalid(&r))
        } else if let Some((user, domain)) = id.split_once('@') {
            let user_ok = !user.is_empty()
                && user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
            if !user_ok {
                return Err(invalid(
                    "an e-mail address has a user part of letters, digits, '.', '_', '+', '-'",
                ));
            }
            dns(domain).map_err(|r| invalid(&format!("after '@': {r}")))?;
            Ok(Identity::Email(id.to_string()))
        } else {
            dns(id).map_err(|r| invalid(&r))?;
            Ok(Identity::Dns(id.to_string()))
        }
    }
}

/// Check a DNS name; the reason if it is not one.
fn dns(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a DNS name must have 1 to 253 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err("expected an IP address, a DN (C=.., O=.., CN=..), an e-mail address or a DNS name (letters, digits, '.', '-', '_')".into());
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return Err("a DNS name has no empty labels".into());
    }
    Ok(())
}

/// Parse `C=CH, O=vpnlab, CN=carol`: attributes separated by commas, each
/// once, values of PrintableString characters (RFC 5280 appendix A), so
/// both stacks encode and compare them alike.
fn dn(s: &str) -> Result<Vec<(DnAttr, String)>, String> {
    let mut out: Vec<(DnAttr, String)> = Vec::new();
    for rdn in s.split(',').map(str::trim) {
        let (k, v) = rdn
            .split_once('=')
            .ok_or_else(|| format!("`{rdn}` is not ATTRIBUTE=value"))?;
        let attr: DnAttr = k.trim().parse().map_err(|_| {
            format!(
                "unknown DN attribute `{}` (known: C, ST, L, O, OU, CN)",
                k.trim()
            )
        })?;
        let v = v.trim();
        let printable = |c: char| c.is_ascii_alphanumeric() || " '()+-./:?".contains(c);
        if v.is_empty() || !v.chars().all(printable) {
            return Err(format!(
                "the value of {attr} must be letters, digits, spaces or ' ( ) + - . / : ?"
            ));
        }
        if attr == DnAttr::C && (v.len() != 2 || !v.chars().all(|c| c.is_ascii_uppercase())) {
            return Err("C (country) is two capital letters".into());
        }
        if out.iter().any(|(a, _)| *a == attr) {
            return Err(format!("{attr} appears twice"));
        }
        out.push((attr, v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_names_mail_and_dns_are_identities() {
        assert_eq!(
            Identity::parse("192.0.2.10"),
            Ok(Identity::Ip("192.0.2.10".parse().unwrap()))
        );
        assert_eq!(
            Identity::parse("client.vpnlab.test"),
            Ok(Identity::Dns("client.vpnlab.test".into()))
        );
        assert_eq!(
            Identity::parse("carol@vpnlab.test"),
            Ok(Identity::Email("carol@vpnlab.test".into()))
        );
        assert_eq!(
            Identity::parse("C=CH, O=vpnlab,CN=carol"),
            Ok(Identity::Dn(vec![
                (DnAttr::C, "CH".into()),
                (DnAttr::O, "vpnlab".into()),
                (DnAttr::CN, "carol".into())
            ]))
        );
    }

    #[test]
    fn bad_identities_say_why() {
        for (bad, why) in [
            ("", "1 to 253"),
            ("@vpnlab.test", "user part"),
            ("carol@", "after '@'"),
            ("CN=", "value of CN"),
            ("C=Switzerland", "two capital letters"),
            ("CN=a, CN=b", "twice"),
            ("X=1", "unknown DN attribute `X`"),
            ("CN=a;b", "value of CN"),
            ("a..b", "empty labels"),
            ("bad name", "expected an IP address"),
            (".a", "empty labels"),
        ] {
            let e = Identity::parse(bad).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("invalid IKE identity {bad:?}: ")) && text.contains(why),
                "{bad}: {text}"
            );
        }
    }
}
