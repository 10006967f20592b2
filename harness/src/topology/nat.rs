//! NAT rendering: a gateway's profile and knobs (from the model) as an
//! nftables ruleset, generated here and applied by [`nft`].

use crate::model::{Block, Knobs, NatProfile, Ports};

/// The forward-chain rules that drop `b` (none for fragments, which need
/// their own hook before reassembly).
fn block_rules(b: Block) -> Vec<String> {
    let c = |m: &str| format!("{m} counter drop comment \"blocked: {b}\"");
    match b {
        Block::Esp => vec![c("meta l4proto esp")],
        Block::Ah => vec![c("meta l4proto ah")],
        Block::Udp500 => vec![c("udp dport 500"), c("udp sport 500")],
        Block::Udp4500 => vec![c("udp dport 4500"), c("udp sport 4500")],
        Block::Fragments => vec![],
        Block::NonUdp => vec![c("meta l4proto != udp")],
    }
}

/// The nftables ruleset for `profile` plus `knobs`, with `outside` the
/// gateway's interface on the public side (translating profiles) and, with
/// `pptp_helper`, Linux's PPTP connection-tracking helper on TCP 1723 (Linux
/// assigns no helper by itself). Deterministic: it goes into snapshots.
/// Empty when there is nothing to do.
pub fn ruleset(
    profile: NatProfile,
    outside: Option<&str>,
    pptp_helper: bool,
    knobs: &Knobs,
) -> String {
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
    let helper = if pptp_helper || profile.has_pptp_helper() {
        "  ct helper pptp-1723 {\n    type \"pptp\" protocol tcp;\n  }\n  chain prerouting {\n    type filter hook prerouting priority filter; policy accept;\n    tcp dport 1723 ct helper set \"pptp-1723\"\n  }\n".to_string()
    } else {
        String::new()
    };
    let body = match profile {
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
    let mut rules: Vec<String> = k.block.iter().flat_map(|b| block_rules(*b)).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_has_no_ruleset() {
        assert_eq!(
            ruleset(NatProfile::None, Some("wan"), false, &Knobs::default()),
            ""
        );
    }

    #[test]
    fn rulesets_name_the_outside_interface_and_drop_what_they_claim() {
        let m = ruleset(
            NatProfile::Masquerade,
            Some("to-server"),
            false,
            &Knobs::default(),
        );
        assert!(m.contains("oifname \"to-server\" masquerade"));
        assert!(!m.contains("drop"));
        let n = ruleset(
            NatProfile::NoEsp,
            Some("to-server"),
            false,
            &Knobs::default(),
        );
        assert!(n.contains("meta l4proto { esp, ah } counter drop"));
        assert!(n.contains("masquerade"));
        let b = ruleset(
            NatProfile::Block4500,
            Some("to-server"),
            false,
            &Knobs::default(),
        );
        assert!(b.contains("udp dport 4500 counter drop"));
        assert!(b.contains("udp sport 4500 counter drop"));
        assert!(!b.contains("helper"));
        let w = ruleset(
            NatProfile::Win2000,
            Some("to-server"),
            false,
            &Knobs::default(),
        );
        assert!(w.contains("type \"pptp\" protocol tcp"));
        assert!(w.contains("tcp dport 1723 ct helper set \"pptp-1723\""));
        assert!(w.contains("meta l4proto { esp, ah } counter drop"));
        let h = ruleset(
            NatProfile::Masquerade,
            Some("to-server"),
            true,
            &Knobs::default(),
        );
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
        let r = ruleset(NatProfile::Masquerade, Some("wan"), false, &k);
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
        assert!(ruleset(
            NatProfile::Symmetric,
            Some("wan"),
            false,
            &NatProfile::Symmetric.preset()
        )
        .contains("masquerade fully-random"));
        let u = ruleset(
            NatProfile::UdpOnly,
            None,
            false,
            &NatProfile::UdpOnly.preset(),
        );
        assert!(u.contains("meta l4proto != udp counter drop") && !u.contains("masquerade"));
        assert_eq!(
            ruleset(NatProfile::Masquerade, Some("wan"), false, &Knobs::default()),
            "table ip vpnlab {\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"wan\" masquerade\n  }\n}\n"
        );
    }
}
