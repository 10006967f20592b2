//! NAT rendering: a gateway's profile and knobs (from the model) as an
//! nftables ruleset, generated here and applied by [`nft`].

use std::net::IpAddr;

use crate::model::{Block, Families, Filter, Knobs, NatProfile, Ports, PrefixMap};
use crate::topology::Gateway;

/// The nftables family of a gateway's tables: `ip` for IPv4 (and for a
/// node without addresses), `ip6` for IPv6, `inet` for a dual-stack node.
pub fn table_family(f: Families) -> &'static str {
    match (f.v4, f.v6) {
        (false, true) => "ip6",
        (true, true) => "inet",
        _ => "ip",
    }
}

/// Whether a gateway of families `f` gets IPv4 rules: it has IPv4, or no
/// address at all (the `ip` table, as before IPv6).
fn v4_rules(f: Families) -> bool {
    f.v4 || !f.v6
}

/// The forward-chain rules that drop `b` in the families `f` (none for
/// fragments, which need their own hook before reassembly).
fn block_rules(b: Block, f: Families) -> Vec<String> {
    let c = |m: &str| format!("{m} counter drop comment \"blocked: {b}\"");
    match b {
        Block::Esp => vec![c("meta l4proto esp")],
        Block::Ah => vec![c("meta l4proto ah")],
        Block::Udp500 => vec![c("udp dport 500"), c("udp sport 500")],
        Block::Udp4500 => vec![c("udp dport 4500"), c("udp sport 4500")],
        Block::Fragments => vec![],
        Block::NonUdp => vec![c("meta l4proto != udp")],
        Block::PacketTooBig => {
            let mut r = vec![];
            if v4_rules(f) {
                r.push(c("icmp type destination-unreachable icmp code frag-needed"));
            }
            if f.v6 {
                r.push(c("icmpv6 type packet-too-big"));
            }
            r
        }
    }
}

/// The forward-chain rules that drop `f`, both directions.
fn filter_rules(f: Filter) -> Vec<String> {
    let c = |m: String| format!("{m} counter drop comment \"blocked: {f}\"");
    match f {
        Filter::Tcp(p) => vec![c(format!("tcp dport {p}")), c(format!("tcp sport {p}"))],
        Filter::Udp(p) => vec![c(format!("udp dport {p}")), c(format!("udp sport {p}"))],
        Filter::Proto(n) => vec![c(format!("meta l4proto {n}"))],
    }
}

/// MSS clamping of forwarded SYNs (and SYN-ACKs) to `mss`, before any
/// other filter (priority mangle).
fn mss_clamp(mss: u16) -> String {
    format!("  chain mss-clamp {{\n    type filter hook forward priority mangle; policy accept;\n    tcp flags & (syn | rst) == syn tcp option maxseg size > {mss} tcp option maxseg size set {mss} comment \"MSS clamp\"\n  }}\n")
}

/// The nftables ruleset for a gateway: its profile plus knobs in the
/// families it has addresses of, with `outside` the interface on the
/// public side (translating profiles) and, with `pptp_helper`, Linux's
/// PPTP connection-tracking helper on TCP 1723 (Linux assigns no helper by
/// itself). Deterministic: it goes into snapshots. Empty when there is
/// nothing to do.
pub fn ruleset(gw: &Gateway) -> String {
    let out = gw.outside.as_deref().unwrap_or("?");
    let knobs = &gw.knobs;
    let masquerade = masquerade(out, knobs);
    // The helper follows PPTP's control connection and sets up the GRE
    // expectation, whose call IDs nf_nat_pptp translates.
    let helper = if gw.pptp_helper || gw.profile.has_pptp_helper() {
        "  ct helper pptp-1723 {\n    type \"pptp\" protocol tcp;\n  }\n  chain prerouting {\n    type filter hook prerouting priority filter; policy accept;\n    tcp dport 1723 ct helper set \"pptp-1723\"\n  }\n".to_string()
    } else {
        String::new()
    };
    let body = match gw.profile {
        NatProfile::None | NatProfile::UdpOnly | NatProfile::PtbDrop => String::new(),
        NatProfile::Masquerade
        | NatProfile::Block500
        | NatProfile::Symmetric
        | NatProfile::FragDrop
        // NAT64: the translator's IPv4 pool leaves masqueraded.
        | NatProfile::Nat64 => masquerade,
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
        NatProfile::Netmap66 => knobs.prefix_map.map(|m| netmap(out, m)).unwrap_or_default(),
    };
    let extra = knobs_rules(knobs, out, gw.families);
    let fam = table_family(gw.families);
    let main = if helper.is_empty() && body.is_empty() && extra.is_empty() {
        String::new()
    } else {
        format!("table {fam} vpnlab {{\n{helper}{body}{extra}}}\n")
    };
    main + &timeouts(knobs, gw.families)
}

/// The source NAT chain of the masquerading profiles.
fn masquerade(out: &str, knobs: &Knobs) -> String {
    let extra = if knobs.ports == Ports::Random {
        " fully-random"
    } else {
        ""
    };
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
}

/// A filter chain on the forward hook with `rules`.
fn forward(rules: &[&str]) -> String {
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
}

/// Prefix mapping both ways: conntrack NAT with the NETMAP range flag (the
/// host part kept, each flow its own entry).
fn netmap(out: &str, m: PrefixMap) -> String {
    let (i, o) = (m.inside, m.outside);
    format!(
        "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{out}\" ip6 saddr {i} snat ip6 prefix to {o}\n  }}\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    iifname \"{out}\" ip6 daddr {o} dnat ip6 prefix to {i}\n  }}\n"
    )
}

/// The table that holds the UDP mapping timeout, apart from `vpnlab`:
/// steps replace `vpnlab`, and deleting a `ct timeout` object would detach
/// it from every mapping already made (they would fall back to the
/// kernel's defaults).
pub const TIMEOUT_TABLE: &str = "vpnlab-timeouts";

fn timeouts(k: &Knobs, f: Families) -> String {
    let Some(t) = k.udp_timeout else {
        return String::new();
    };
    // One timeout object per layer 3 protocol (conntrack keys them so).
    let mut objects = String::new();
    let mut rules = String::new();
    let dual = f.v4 && f.v6;
    for (on, l3, name, nfproto) in [
        (v4_rules(f), "ip", "udp-mapping", "ipv4"),
        (f.v6, "ip6", "udp-mapping6", "ipv6"),
    ] {
        if !on {
            continue;
        }
        let name = if dual { name } else { "udp-mapping" };
        objects.push_str(&format!("  ct timeout {name} {{\n    protocol udp;\n    l3proto {l3};\n    policy = {{ unreplied : {t}, replied : {t} }}\n  }}\n"));
        let only = if dual {
            format!("meta nfproto {nfproto} ")
        } else {
            String::new()
        };
        rules.push_str(&format!(
            "    {only}meta l4proto udp ct timeout set \"{name}\"\n"
        ));
    }
    // Attached to a new connection after conntrack has created it and
    // before it is confirmed (so at filter priority, not raw), for the
    // unreplied and the replied ("stream") state alike.
    format!(
        "table {} {TIMEOUT_TABLE} {{\n{objects}  chain mapping-timeout {{\n    type filter hook prerouting priority filter; policy accept;\n{rules}  }}\n}}\n",
        table_family(f)
    )
}

/// The chains the knobs add (none for default knobs, so the older profiles'
/// rulesets are unchanged).
fn knobs_rules(k: &Knobs, outside: &str, f: Families) -> String {
    let mut s = fragments(k, f);
    if let Some(m) = k.mss_clamp {
        s.push_str(&mss_clamp(m));
    }
    let mut rules: Vec<String> = k.block.iter().flat_map(|b| block_rules(*b, f)).collect();
    rules.extend(k.filters.iter().flat_map(|x| filter_rules(*x)));
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
    if k.forward_ike_to.is_some() || k.forward_esp_to.is_some() {
        s.push_str(&port_forward(k, outside, f));
    }
    s
}

/// Fragments dropped before nf_defrag (priority -400): once reassembled, a
/// fragment can no longer be told apart. IPv6 marks them with a Fragment
/// extension header (next header 44).
fn fragments(k: &Knobs, f: Families) -> String {
    if !k.block.contains(&Block::Fragments) {
        return String::new();
    }
    let mut s = String::from(
        "  chain fragments {\n    type filter hook prerouting priority -450; policy accept;\n",
    );
    if v4_rules(f) {
        s.push_str("    ip frag-off & 0x3fff != 0 counter drop comment \"blocked: fragments\"\n");
    }
    if f.v6 {
        s.push_str("    exthdr frag exists counter drop comment \"blocked: fragments\"\n");
    }
    s.push_str("  }\n");
    s
}

/// The DNAT statement toward `a` (in a dual-stack table, for `a`'s family
/// only).
fn dnat(a: IpAddr, f: Families) -> &'static str {
    match (f.v4 && f.v6, a) {
        (true, IpAddr::V4(_)) => "dnat ip to",
        (true, IpAddr::V6(_)) => "dnat ip6 to",
        _ => "dnat to",
    }
}

/// IKE and NAT-T, and raw ESP, arriving on the public side forwarded to
/// their inside addresses, with optional hairpinning of IKE.
fn port_forward(k: &Knobs, outside: &str, f: Families) -> String {
    let mut s = String::from(
        "  chain port-forward {\n    type nat hook prerouting priority dstnat; policy accept;\n",
    );
    if let Some(a) = k.forward_esp_to {
        let dnat = dnat(a, f);
        s.push_str(&format!(
            "    iifname \"{outside}\" meta l4proto esp {dnat} {a}\n"
        ));
    }
    let Some(a) = k.forward_ike_to else {
        s.push_str("  }\n");
        return s;
    };
    let dnat = dnat(a, f);
    s.push_str(&format!(
        "    iifname \"{outside}\" udp dport {{ 500, 4500 }} {dnat} {a}\n"
    ));
    if k.hairpin {
        // From inside, to one of the gateway's own addresses: forwarded
        // too, and the source translated so replies come back this way.
        s.push_str(&format!("    iifname != \"{outside}\" fib daddr type local udp dport {{ 500, 4500 }} {dnat} {a} comment \"hairpin\"\n  }}\n  chain hairpin {{\n    type nat hook postrouting priority srcnat; policy accept;\n    iifname != \"{outside}\" oifname != \"{outside}\" ct status dnat masquerade comment \"hairpin\"\n"));
    }
    s.push_str("  }\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 gateway's ruleset.
    fn ruleset(
        profile: NatProfile,
        outside: Option<&str>,
        pptp_helper: bool,
        knobs: &Knobs,
    ) -> String {
        gateway(profile, outside, pptp_helper, knobs, Families::V4)
    }

    fn gateway(
        profile: NatProfile,
        outside: Option<&str>,
        pptp_helper: bool,
        knobs: &Knobs,
        families: Families,
    ) -> String {
        super::ruleset(&Gateway {
            profile,
            outside: outside.map(str::to_string),
            pptp_helper,
            knobs: knobs.clone(),
            families,
        })
    }

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
    fn filters_clamping_and_esp_forwarding_render_as_rules() {
        let mut k = Knobs {
            mss_clamp: Some(1200),
            forward_esp_to: Some("10.2.0.2".parse().unwrap()),
            ..Default::default()
        };
        for f in ["tcp:443", "udp:1701", "proto:47"] {
            k.add_filter(f.parse().unwrap());
        }
        let r = ruleset(NatProfile::Masquerade, Some("wan"), false, &k);
        for want in [
            "tcp dport 443 counter drop comment \"blocked: tcp:443\"",
            "tcp sport 443 counter drop",
            "udp dport 1701 counter drop",
            "meta l4proto 47 counter drop comment \"blocked: proto:47\"",
            "type filter hook forward priority mangle;",
            "tcp option maxseg size > 1200 tcp option maxseg size set 1200",
            "iifname \"wan\" meta l4proto esp dnat to 10.2.0.2",
        ] {
            assert!(r.contains(want), "{want} missing from\n{r}");
        }
        assert!(
            !r.contains("udp dport { 500, 4500 }"),
            "no IKE forwarding asked for"
        );
        assert!("tcp:0".parse::<Filter>().is_err());
        assert!("sctp:5".parse::<Filter>().is_err());
        assert_eq!("proto:50".parse::<Filter>(), Ok(Filter::Proto(50)));
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

    #[test]
    fn ipv6_and_dual_stack_gateways_get_their_own_family() {
        let mut k = Knobs {
            udp_timeout: Some(3),
            ..Default::default()
        };
        k.add_block(Block::Fragments);
        k.add_block(Block::PacketTooBig);
        let v6 = gateway(NatProfile::Masquerade, Some("wan"), false, &k, Families::V6);
        for want in [
            "table ip6 vpnlab {",
            "oifname \"wan\" masquerade",
            "exthdr frag exists counter drop",
            "icmpv6 type packet-too-big counter drop",
            "table ip6 vpnlab-timeouts {",
            "l3proto ip6;",
        ] {
            assert!(v6.contains(want), "missing {want}:\n{v6}");
        }
        assert!(!v6.contains("ip frag-off") && !v6.contains("icmp type"));
        let both = gateway(
            NatProfile::Masquerade,
            Some("wan"),
            false,
            &k,
            Families::BOTH,
        );
        for want in [
            "table inet vpnlab {",
            "ip frag-off & 0x3fff != 0",
            "exthdr frag exists",
            "icmp code frag-needed",
            "icmpv6 type packet-too-big",
            "meta nfproto ipv4 meta l4proto udp ct timeout set \"udp-mapping\"",
            "meta nfproto ipv6 meta l4proto udp ct timeout set \"udp-mapping6\"",
        ] {
            assert!(both.contains(want), "missing {want}:\n{both}");
        }
        let fwd = Knobs {
            forward_ike_to: Some("2001:db8:1::2".parse().unwrap()),
            ..Default::default()
        };
        let f = gateway(
            NatProfile::Masquerade,
            Some("wan"),
            false,
            &fwd,
            Families::BOTH,
        );
        assert!(f.contains("dnat ip6 to 2001:db8:1::2"), "{f}");
    }

    #[test]
    fn netmap66_maps_the_prefix_both_ways() {
        let k = Knobs {
            prefix_map: Some(PrefixMap {
                inside: "fd00:1::/64".parse().unwrap(),
                outside: "2001:db8:99::/64".parse().unwrap(),
            }),
            ..Default::default()
        };
        let r = gateway(NatProfile::Netmap66, Some("wan"), false, &k, Families::V6);
        assert!(
            r.contains("oifname \"wan\" ip6 saddr fd00:1::/64 snat ip6 prefix to 2001:db8:99::/64")
        );
        assert!(
            r.contains("iifname \"wan\" ip6 daddr 2001:db8:99::/64 dnat ip6 prefix to fd00:1::/64")
        );
        assert!(!r.contains("masquerade"));
    }
}
