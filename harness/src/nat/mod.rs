//! NAT profiles: what a gateway does to traffic leaving its public side,
//! expressed as an nftables ruleset (generated here, applied by [`nft`]).

pub mod nft;

use serde::Serialize;

/// A named NAT behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatProfile {
    /// Plain IPv4 router: no translation, nothing dropped.
    None,
    /// Linux source NAT (masquerade) on the public side. Linux conntrack also
    /// tracks raw ESP by address pair, so one client's ESP gets through.
    Masquerade,
    /// Masquerade that translates only TCP, UDP and ICMP and drops IP
    /// protocols 50 (ESP) and 51 (AH), like many consumer NATs and the classic
    /// Windows 2000 NAT.
    NoEsp,
    /// Masquerade with UDP port 4500 (NAT-T) dropped in both directions.
    Block4500,
}

impl NatProfile {
    /// Every profile, in documentation order.
    pub const ALL: [NatProfile; 4] = [
        NatProfile::None,
        NatProfile::Masquerade,
        NatProfile::NoEsp,
        NatProfile::Block4500,
    ];

    /// The name used in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            NatProfile::None => "none",
            NatProfile::Masquerade => "masquerade",
            NatProfile::NoEsp => "no-esp",
            NatProfile::Block4500 => "block-4500",
        }
    }

    /// Parse a profile name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// A comma-separated list of valid names, for error messages.
    pub fn names() -> String {
        Self::ALL.map(NatProfile::as_str).join(", ")
    }

    /// The nftables ruleset for this profile, with `outside` the gateway's
    /// interface on the public side. Deterministic: it goes into snapshots.
    pub fn ruleset(self, outside: &str) -> String {
        let masquerade = format!(
            "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{outside}\" masquerade\n  }}\n"
        );
        let forward = |rules: &[&str]| {
            let mut s = String::from(
                "  chain forward {\n    type filter hook forward priority filter; policy accept;\n",
            );
            for r in rules {
                s.push_str("    ");
                s.push_str(r);
                s.push('\n');
            }
            s.push_str("  }\n");
            s
        };
        let body = match self {
            NatProfile::None => return String::new(),
            NatProfile::Masquerade => masquerade,
            NatProfile::NoEsp => {
                forward(&["meta l4proto { esp, ah } counter drop comment \"only TCP/UDP/ICMP are translated\""])
                    + &masquerade
            }
            NatProfile::Block4500 => {
                forward(&[
                    "udp dport 4500 counter drop comment \"NAT-T blocked\"",
                    "udp sport 4500 counter drop comment \"NAT-T blocked\"",
                ]) + &masquerade
            }
        };
        format!("table ip vpnlab {{\n{body}}}\n")
    }
}

impl std::fmt::Display for NatProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in NatProfile::ALL {
            assert_eq!(NatProfile::parse(p.as_str()), Some(p));
        }
        assert_eq!(NatProfile::parse("full-cone"), None);
    }

    #[test]
    fn none_has_no_ruleset() {
        assert_eq!(NatProfile::None.ruleset("wan"), "");
    }

    #[test]
    fn rulesets_name_the_outside_interface_and_drop_what_they_claim() {
        let m = NatProfile::Masquerade.ruleset("to-server");
        assert!(m.contains("oifname \"to-server\" masquerade"));
        assert!(!m.contains("drop"));
        let n = NatProfile::NoEsp.ruleset("to-server");
        assert!(n.contains("meta l4proto { esp, ah } counter drop"));
        assert!(n.contains("masquerade"));
        let b = NatProfile::Block4500.ruleset("to-server");
        assert!(b.contains("udp dport 4500 counter drop"));
        assert!(b.contains("udp sport 4500 counter drop"));
    }
}
