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
    /// The seed case's gateway, modelled on Windows 2000's NAT: translates
    /// TCP, UDP and ICMP, drops IP protocols 50/51 (ESP, AH), and has a PPTP
    /// editor (Linux's PPTP connection-tracking helper, which also
    /// translates PPTP's GRE by call ID).
    Win2000,
}

impl NatProfile {
    /// Every profile, in documentation order.
    pub const ALL: [NatProfile; 5] = [
        NatProfile::None,
        NatProfile::Masquerade,
        NatProfile::NoEsp,
        NatProfile::Block4500,
        NatProfile::Win2000,
    ];

    /// The name used in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            NatProfile::None => "none",
            NatProfile::Masquerade => "masquerade",
            NatProfile::NoEsp => "no-esp",
            NatProfile::Block4500 => "block-4500",
            NatProfile::Win2000 => "win2000",
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

    /// Whether the profile includes the PPTP helper by itself.
    pub fn has_pptp_helper(self) -> bool {
        self == NatProfile::Win2000
    }

    /// The nftables ruleset for this profile, with `outside` the gateway's
    /// interface on the public side and, with `pptp_helper`, Linux's PPTP
    /// connection-tracking helper on TCP 1723 (Linux assigns no helper by
    /// itself). Deterministic: it goes into snapshots.
    pub fn ruleset(self, outside: &str, pptp_helper: bool) -> String {
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
        // The helper follows PPTP's control connection and sets up the GRE
        // expectation, whose call IDs nf_nat_pptp translates.
        let helper = if pptp_helper || self.has_pptp_helper() {
            "  ct helper pptp-1723 {\n    type \"pptp\" protocol tcp;\n  }\n  chain prerouting {\n    type filter hook prerouting priority filter; policy accept;\n    tcp dport 1723 ct helper set \"pptp-1723\"\n  }\n".to_string()
        } else {
            String::new()
        };
        let body = match self {
            NatProfile::None if helper.is_empty() => return String::new(),
            NatProfile::None => String::new(),
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
            NatProfile::Win2000 => {
                forward(&["meta l4proto { esp, ah } counter drop comment \"only TCP/UDP/ICMP (and PPTP's GRE) are translated\""])
                    + &masquerade
            }
        };
        format!("table ip vpnlab {{\n{helper}{body}}}\n")
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
        assert_eq!(NatProfile::None.ruleset("wan", false), "");
    }

    #[test]
    fn rulesets_name_the_outside_interface_and_drop_what_they_claim() {
        let m = NatProfile::Masquerade.ruleset("to-server", false);
        assert!(m.contains("oifname \"to-server\" masquerade"));
        assert!(!m.contains("drop"));
        let n = NatProfile::NoEsp.ruleset("to-server", false);
        assert!(n.contains("meta l4proto { esp, ah } counter drop"));
        assert!(n.contains("masquerade"));
        let b = NatProfile::Block4500.ruleset("to-server", false);
        assert!(b.contains("udp dport 4500 counter drop"));
        assert!(b.contains("udp sport 4500 counter drop"));
        assert!(!b.contains("helper"));
        let w = NatProfile::Win2000.ruleset("to-server", false);
        assert!(w.contains("type \"pptp\" protocol tcp"));
        assert!(w.contains("tcp dport 1723 ct helper set \"pptp-1723\""));
        assert!(w.contains("meta l4proto { esp, ah } counter drop"));
        let h = NatProfile::Masquerade.ruleset("to-server", true);
        assert!(h.contains("ct helper pptp-1723") && !h.contains("drop"));
    }
}
