//! NAT profiles: what a gateway does to traffic leaving its public side,
//! expressed as an nftables ruleset (generated here, applied by [`nft`]).

pub mod nft;

use serde::Serialize;

/// A named NAT behaviour: a preset of [`Knobs`] (the first five predate the
/// knobs and keep their rulesets byte for byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatProfile {
    /// Plain IPv4 router: no translation, nothing dropped.
    None,
    /// Linux source NAT (masquerade) on the public side. Linux conntrack also
    /// tracks raw ESP by address pair, so one client's ESP gets through
    /// ("IPsec passthrough" for a single client).
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
    /// Masquerade with UDP port 500 (IKE) dropped in both directions.
    Block500,
    /// Masquerade drawing a random outside port for every new mapping:
    /// address-and-port-dependent mapping (RFC 4787 4.1), a "symmetric" NAT.
    Symmetric,
    /// Masquerade that drops IP fragments before reassembly (RFC 4787
    /// section 11; REQ-14 asks NATs not to).
    FragDrop,
    /// No translation; a firewall that forwards only UDP.
    UdpOnly,
}

/// How a NAT assigns outside ports (RFC 4787 4.1, 4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ports {
    /// Keep the inside port when free: endpoint-independent mapping with
    /// port preservation (Linux's default).
    #[default]
    Preserve,
    /// A random port for every new mapping: address-and-port-dependent
    /// mapping.
    Random,
}

/// A packet class a gateway can drop (knob `block`, steps `block`/`unblock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Block {
    /// IP protocol 50.
    Esp,
    /// IP protocol 51.
    Ah,
    /// UDP port 500 (IKE), either direction.
    Udp500,
    /// UDP port 4500 (NAT-T), either direction.
    Udp4500,
    /// IP fragments, dropped before the gateway reassembles them.
    Fragments,
    /// Everything but UDP.
    NonUdp,
}

impl Block {
    /// Every class, in documentation order.
    pub const ALL: [Block; 6] = [
        Block::Esp,
        Block::Ah,
        Block::Udp500,
        Block::Udp4500,
        Block::Fragments,
        Block::NonUdp,
    ];

    /// The name used in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            Block::Esp => "esp",
            Block::Ah => "ah",
            Block::Udp500 => "udp-500",
            Block::Udp4500 => "udp-4500",
            Block::Fragments => "fragments",
            Block::NonUdp => "non-udp",
        }
    }

    /// Parse a class name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.as_str() == name)
    }

    /// Valid names, for error messages.
    pub fn names() -> String {
        Self::ALL.map(Block::as_str).join(", ")
    }

    /// The forward-chain rules (not for fragments, which need their own
    /// hook before reassembly).
    fn rules(self) -> Vec<String> {
        let c = |m: &str| format!("{m} counter drop comment \"blocked: {}\"", self.as_str());
        match self {
            Block::Esp => vec![c("meta l4proto esp")],
            Block::Ah => vec![c("meta l4proto ah")],
            Block::Udp500 => vec![c("udp dport 500"), c("udp sport 500")],
            Block::Udp4500 => vec![c("udp dport 4500"), c("udp sport 4500")],
            Block::Fragments => vec![],
            Block::NonUdp => vec![c("meta l4proto != udp")],
        }
    }
}

/// A gateway's NAT behaviour beyond its profile (each documented with the
/// RFC 4787 term it models). The default changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Knobs {
    /// Port assignment.
    pub ports: Ports,
    /// Outside port range for TCP/UDP mappings.
    pub port_range: Option<(u16, u16)>,
    /// UDP mapping timeout, seconds (RFC 4787 4.3).
    pub udp_timeout: Option<u32>,
    /// Classes dropped in both directions.
    pub block: Vec<Block>,
    /// Random loss of forwarded packets, percent.
    pub loss: u8,
    /// Inside address UDP 500/4500 arriving on the public side is forwarded to.
    pub forward_ike_to: Option<std::net::Ipv4Addr>,
    /// Hairpin that forwarding for inside hosts (RFC 4787 section 6).
    pub hairpin: bool,
}

impl Knobs {
    /// Add a blocked class (kept sorted, no duplicates).
    pub fn add_block(&mut self, b: Block) {
        if !self.block.contains(&b) {
            self.block.push(b);
            self.block.sort();
        }
    }
}

impl NatProfile {
    /// Every profile, in documentation order.
    pub const ALL: [NatProfile; 9] = [
        NatProfile::None,
        NatProfile::Masquerade,
        NatProfile::NoEsp,
        NatProfile::Block4500,
        NatProfile::Win2000,
        NatProfile::Block500,
        NatProfile::Symmetric,
        NatProfile::FragDrop,
        NatProfile::UdpOnly,
    ];

    /// The name used in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            NatProfile::None => "none",
            NatProfile::Masquerade => "masquerade",
            NatProfile::NoEsp => "no-esp",
            NatProfile::Block4500 => "block-4500",
            NatProfile::Win2000 => "win2000",
            NatProfile::Block500 => "block-500",
            NatProfile::Symmetric => "symmetric",
            NatProfile::FragDrop => "frag-drop",
            NatProfile::UdpOnly => "udp-only",
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

    /// Whether the profile translates addresses (and so needs `nat_outside`).
    pub fn translates(self) -> bool {
        !matches!(self, NatProfile::None | NatProfile::UdpOnly)
    }

    /// The knobs the newer presets stand for, applied under the file's own.
    pub fn preset(self) -> Knobs {
        let mut k = Knobs::default();
        match self {
            NatProfile::Block500 => k.add_block(Block::Udp500),
            NatProfile::Symmetric => k.ports = Ports::Random,
            NatProfile::FragDrop => k.add_block(Block::Fragments),
            NatProfile::UdpOnly => k.add_block(Block::NonUdp),
            _ => {}
        }
        k
    }

    /// The nftables ruleset for this profile plus `knobs`, with `outside`
    /// the gateway's interface on the public side (translating profiles)
    /// and, with `pptp_helper`, Linux's PPTP connection-tracking helper on
    /// TCP 1723 (Linux assigns no helper by itself). Deterministic: it goes
    /// into snapshots. Empty when there is nothing to do.
    pub fn ruleset(self, outside: Option<&str>, pptp_helper: bool, knobs: &Knobs) -> String {
        let out = outside.unwrap_or("?");
        let masq = |extra: &str| {
            let mut m = String::new();
            if let Some((a, b)) = knobs.port_range {
                m.push_str(&format!(
                    "    oifname \"{out}\" meta l4proto {{ tcp, udp }} masquerade to :{a}-{b}{extra}\n"
                ));
            }
            m.push_str(&format!("    oifname \"{out}\" masquerade{extra}\n"));
            format!(
                "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n{m}  }}\n"
            )
        };
        let masquerade = masq(if knobs.ports == Ports::Random {
            " fully-random"
        } else {
            ""
        });
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
            NatProfile::None | NatProfile::UdpOnly => String::new(),
            NatProfile::Masquerade
            | NatProfile::Block500
            | NatProfile::Symmetric
            | NatProfile::FragDrop => masquerade,
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
        let extra = knobs_rules(knobs, out);
        let main = if helper.is_empty() && body.is_empty() && extra.is_empty() {
            String::new()
        } else {
            format!("table ip vpnlab {{\n{helper}{body}{extra}}}\n")
        };
        main + &timeouts(knobs)
    }
}

/// The table that holds the UDP mapping timeout, apart from `vpnlab`:
/// steps replace `vpnlab`, and deleting a `ct timeout` object would detach
/// it from every mapping already made (they would fall back to the
/// kernel's defaults).
pub const TIMEOUT_TABLE: &str = "vpnlab-timeouts";

fn timeouts(k: &Knobs) -> String {
    match k.udp_timeout {
        // Attached to a new connection after conntrack has created it and
        // before it is confirmed (so at filter priority, not raw), for the
        // unreplied and the replied ("stream") state alike.
        Some(t) => format!(
            "table ip {TIMEOUT_TABLE} {{\n  ct timeout udp-mapping {{\n    protocol udp;\n    l3proto ip;\n    policy = {{ unreplied : {t}, replied : {t} }}\n  }}\n  chain mapping-timeout {{\n    type filter hook prerouting priority filter; policy accept;\n    meta l4proto udp ct timeout set \"udp-mapping\"\n  }}\n}}\n"
        ),
        None => String::new(),
    }
}

/// The chains the knobs add (none for default knobs, so the older profiles'
/// rulesets are unchanged).
fn knobs_rules(k: &Knobs, outside: &str) -> String {
    let mut s = String::new();
    if k.block.contains(&Block::Fragments) {
        // Before nf_defrag (priority -400): once reassembled, a fragment
        // can no longer be told apart.
        s.push_str("  chain fragments {\n    type filter hook prerouting priority -450; policy accept;\n    ip frag-off & 0x3fff != 0 counter drop comment \"blocked: fragments\"\n  }\n");
    }
    let mut rules: Vec<String> = k.block.iter().flat_map(|b| b.rules()).collect();
    if k.loss > 0 {
        rules.push(format!(
            "numgen random mod 100 < {} counter drop comment \"{}% loss\"",
            k.loss, k.loss
        ));
    }
    if !rules.is_empty() {
        s.push_str(
            "  chain behaviour {\n    type filter hook forward priority -1; policy accept;\n",
        );
        for r in rules {
            s.push_str(&format!("    {r}\n"));
        }
        s.push_str("  }\n");
    }
    if let Some(a) = k.forward_ike_to {
        s.push_str(&format!("  chain port-forward {{\n    type nat hook prerouting priority dstnat; policy accept;\n    iifname \"{outside}\" udp dport {{ 500, 4500 }} dnat to {a}\n"));
        if k.hairpin {
            // From inside, to one of the gateway's own addresses: forwarded
            // too, and the source translated so replies come back this way.
            s.push_str(&format!("    iifname != \"{outside}\" fib daddr type local udp dport {{ 500, 4500 }} dnat to {a} comment \"hairpin\"\n  }}\n  chain hairpin {{\n    type nat hook postrouting priority srcnat; policy accept;\n    iifname != \"{outside}\" oifname != \"{outside}\" ct status dnat masquerade comment \"hairpin\"\n"));
        }
        s.push_str("  }\n");
    }
    s
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
        assert_eq!(
            NatProfile::None.ruleset(Some("wan"), false, &Knobs::default()),
            ""
        );
    }

    #[test]
    fn rulesets_name_the_outside_interface_and_drop_what_they_claim() {
        let m = NatProfile::Masquerade.ruleset(Some("to-server"), false, &Knobs::default());
        assert!(m.contains("oifname \"to-server\" masquerade"));
        assert!(!m.contains("drop"));
        let n = NatProfile::NoEsp.ruleset(Some("to-server"), false, &Knobs::default());
        assert!(n.contains("meta l4proto { esp, ah } counter drop"));
        assert!(n.contains("masquerade"));
        let b = NatProfile::Block4500.ruleset(Some("to-server"), false, &Knobs::default());
        assert!(b.contains("udp dport 4500 counter drop"));
        assert!(b.contains("udp sport 4500 counter drop"));
        assert!(!b.contains("helper"));
        let w = NatProfile::Win2000.ruleset(Some("to-server"), false, &Knobs::default());
        assert!(w.contains("type \"pptp\" protocol tcp"));
        assert!(w.contains("tcp dport 1723 ct helper set \"pptp-1723\""));
        assert!(w.contains("meta l4proto { esp, ah } counter drop"));
        let h = NatProfile::Masquerade.ruleset(Some("to-server"), true, &Knobs::default());
        assert!(h.contains("ct helper pptp-1723") && !h.contains("drop"));
    }

    #[test]
    fn knobs_add_their_own_chains() {
        let mut k = Knobs {
            udp_timeout: Some(3),
            loss: 5,
            port_range: Some((20000, 29999)),
            forward_ike_to: Some("10.2.0.2".parse().unwrap()),
            ..Default::default()
        };
        k.add_block(Block::Fragments);
        k.add_block(Block::Udp500);
        k.hairpin = true;
        let r = NatProfile::Masquerade.ruleset(Some("wan"), false, &k);
        for want in [
            "policy = { unreplied : 3, replied : 3 }",
            "meta l4proto udp ct timeout set \"udp-mapping\"",
            "type filter hook prerouting priority -450;",
            "ip frag-off & 0x3fff != 0 counter drop",
            "udp dport 500 counter drop comment \"blocked: udp-500\"",
            "numgen random mod 100 < 5 counter drop",
            "oifname \"wan\" meta l4proto { tcp, udp } masquerade to :20000-29999",
            "iifname \"wan\" udp dport { 500, 4500 } dnat to 10.2.0.2",
            "iifname != \"wan\" fib daddr type local udp dport { 500, 4500 } dnat to 10.2.0.2",
            "iifname != \"wan\" oifname != \"wan\" ct status dnat masquerade",
        ] {
            assert!(r.contains(want), "missing {want}:\n{r}");
        }
        // Presets are knobs too; the older profiles' text is unchanged.
        assert!(NatProfile::Symmetric
            .ruleset(Some("wan"), false, &NatProfile::Symmetric.preset())
            .contains("masquerade fully-random"));
        let u = NatProfile::UdpOnly.ruleset(None, false, &NatProfile::UdpOnly.preset());
        assert!(u.contains("meta l4proto != udp counter drop") && !u.contains("masquerade"));
        assert_eq!(
            NatProfile::Masquerade.ruleset(Some("wan"), false, &Knobs::default()),
            "table ip vpnlab {\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"wan\" masquerade\n  }\n}\n"
        );
    }
}
