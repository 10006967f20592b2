//! An IKE identity as a certificate carries it: an IP address or a DNS-like
//! name. The rules live here, in the leaf model, because two layers need
//! them: scenario validation refuses an unusable identity before anything
//! runs, and the test PKI puts the identity into a certificate's SAN.

use std::net::IpAddr;

/// An identity a certificate can carry (charon matches ID_IPV4_ADDR and
/// ID_IPV6_ADDR against an iPAddress SAN, ID_FQDN against a dNSName).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An IP address (iPAddress SAN).
    Ip(IpAddr),
    /// A DNS-like name such as `client.vpnlab.test` (dNSName SAN).
    Dns(String),
}

/// An identity that cannot go into a certificate, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("IKE identity {id:?} cannot go into a certificate: {reason}")]
pub struct InvalidIdentity {
    /// The identity as given.
    pub id: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Identity {
    /// Parse an IKE identity: an IP address, or a DNS name of letters,
    /// digits, '.', '-' and '_' (1 to 253 characters, no empty labels).
    pub fn parse(id: &str) -> Result<Identity, InvalidIdentity> {
        if let Ok(ip) = id.parse::<IpAddr>() {
            return Ok(Identity::Ip(ip));
        }
        let invalid = |reason: &str| InvalidIdentity {
            id: id.into(),
            reason: reason.into(),
        };
        if id.is_empty() || id.len() > 253 {
            return Err(invalid("a DNS name must have 1 to 253 characters"));
        }
        // Anything else (an e-mail address, a DN) would be parsed by charon
        // as another identity type and never match a dNSName.
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(invalid(
                "expected an IP address or a DNS name (letters, digits, '.', '-', '_')",
            ));
        }
        if id.starts_with('.') || id.ends_with('.') || id.contains("..") {
            return Err(invalid("a DNS name has no empty labels"));
        }
        Ok(Identity::Dns(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_dns_names_are_identities() {
        assert_eq!(
            Identity::parse("192.0.2.10"),
            Ok(Identity::Ip("192.0.2.10".parse().unwrap()))
        );
        assert_eq!(
            Identity::parse("client.vpnlab.test"),
            Ok(Identity::Dns("client.vpnlab.test".into()))
        );
        for bad in [
            "",
            "user@vpnlab.test",
            "CN=client",
            "a..b",
            "bad name",
            ".a",
        ] {
            let e = Identity::parse(bad).unwrap_err();
            assert!(
                e.to_string().starts_with(&format!(
                    "IKE identity {bad:?} cannot go into a certificate: "
                )),
                "{e}"
            );
        }
    }
}
