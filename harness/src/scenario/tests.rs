//! Parsing, validation and matrix expansion, without touching the system.

use std::path::Path;

use super::parse;
use crate::error::ScenarioError;
use crate::model::NatProfile;
use crate::model::{CheckExpect, NatT, TunnelExpect};

const SEED: &str = include_str!("../../../topologies/seed.toml");

fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("t.toml"), text) {
        Ok(_) => panic!("expected a validation error"),
        Err(ScenarioError::Invalid(d)) => d.iter().map(|d| d.to_string()).collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle")
        + 1
}

#[test]
fn seed_expands_into_twelve_named_cells() {
    let s = parse(Path::new("topologies/seed.toml"), SEED).unwrap();
    assert_eq!(s.name, "seed");
    assert_eq!(s.cells.len(), 12);
    assert_eq!(s.cells[0].id, "seed/nat=none,nat_t=auto");
    assert_eq!(s.cells[11].id, "seed/nat=block-4500,nat_t=off");
    let c = s
        .cells
        .iter()
        .find(|c| c.id == "seed/nat=no-esp,nat_t=force")
        .unwrap();
    assert_eq!(c.node("gw").unwrap().nat, NatProfile::NoEsp);
    assert_eq!(
        c.node("gw").unwrap().nat_outside.as_deref(),
        Some("to-server")
    );
    assert!(c.node("gw").unwrap().forwarding);
    assert!(!c.node("client").unwrap().forwarding);
    assert!(c.endpoints.iter().all(|e| e.nat_t == NatT::Force));
    let init = c.endpoints.iter().find(|e| e.node == "client").unwrap();
    assert_eq!(init.remote_addr, Some("203.0.113.2".parse().unwrap()));
    assert_eq!(init.peer_id, "server.vpnlab.test");
}

#[test]
fn later_expectations_override_earlier_ones() {
    let s = parse(Path::new("seed.toml"), SEED).unwrap();
    let blocked = s
        .cells
        .iter()
        .find(|c| c.id == "seed/nat=block-4500,nat_t=auto")
        .unwrap();
    assert_eq!(blocked.expect.tunnel, Some(TunnelExpect::Down));
    assert_eq!(
        blocked.expect.encapsulation, None,
        "no encapsulation for a tunnel that is down"
    );
    assert_eq!(blocked.expect.checks["ping"], CheckExpect::Fail);
    let up = s
        .cells
        .iter()
        .find(|c| c.id == "seed/nat=masquerade,nat_t=auto")
        .unwrap();
    assert_eq!(up.expect.tunnel, Some(TunnelExpect::Up));
    assert_eq!(up.expect.checks["udp-1701"], CheckExpect::Pass);
}

#[test]
fn unknown_field_is_reported_with_its_position() {
    let text = SEED.replace(
        "nat_outside = \"server\"",
        "nat_outside = \"server\"\nnatt = \"x\"",
    );
    let e = errors(&text);
    let line = line_of(&text, "natt = ");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(&format!(
            "t.toml:{line}:1: nodes.gw.natt: unknown field `natt`"
        )),
        "{e:?}"
    );
}

#[test]
fn unknown_node_names_the_field_and_the_known_nodes() {
    let text = SEED.replace(
        "b = { node = \"gw\", addr = \"192.168.1.1/24\" }",
        "b = { node = \"gw2\", addr = \"192.168.1.1/24\" }",
    );
    let e = errors(&text);
    let line = line_of(&text, "gw2");
    assert!(
        e.iter().any(|m| m.starts_with(&format!("t.toml:{line}:"))
            && m.contains("links[0].b.node: unknown node `gw2` (known: client, gw, server)")),
        "{e:?}"
    );
}

#[test]
fn duplicate_and_overlapping_addresses_are_rejected() {
    let dup = SEED.replace("addr = \"203.0.113.2/24\"", "addr = \"203.0.113.1/24\"");
    assert!(
        errors(&dup)
            .iter()
            .any(|m| m
                .contains("links[1].b.addr: duplicate address 203.0.113.1 (also at links[1].a)"))
    );
    let overlap = SEED
        .replace("\"203.0.113.1/24\"", "\"192.168.1.5/24\"")
        .replace("\"203.0.113.2/24\"", "\"192.168.1.6/24\"");
    assert!(
        errors(&overlap)
            .iter()
            .any(|m| m.contains("overlaps 192.168.1.0/24")),
        "{:?}",
        errors(&overlap)
    );
    let inner = SEED.replace("inner = \"10.10.2.1\"", "inner = \"10.10.1.1\"");
    assert!(errors(&inner)
        .iter()
        .any(|m| m.contains("endpoints[1].inner: duplicate address 10.10.1.1")));
}

#[test]
fn unknown_nat_profile_lists_the_known_ones() {
    let text = SEED.replace("\"no-esp\", \"block-4500\"]", "\"no-esp\", \"full-cone\"]");
    let e = errors(&text);
    assert!(
        e.iter().any(|m| m.contains("matrix.nat.gw: unknown NAT profile `full-cone` (known: none, masquerade, no-esp, block-4500, win2000, block-500, symmetric, frag-drop, udp-only, ptb-drop, netmap66, nat64)")),
        "{e:?}"
    );
}

#[test]
fn endpoint_without_a_route_to_its_peer_is_rejected() {
    let text = SEED.replace("to = \"default\"", "to = \"198.51.100.0/24\"");
    let e = errors(&text);
    assert!(
        e == vec![format!("t.toml:{}:8: endpoints[0].peer: IKE from client to 203.0.113.2: client has no route to 203.0.113.2", line_of(&text, "peer = \"server\""))],
        "{e:?}"
    );
}

#[test]
fn replies_need_a_route_back_when_nothing_translates() {
    // Without the server's route back, only the nat=none cells break.
    let text = SEED.replace("to = \"192.168.1.0/24\"", "to = \"198.51.100.0/24\"");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("in cells t/nat=none,nat_t=auto, t/nat=none,nat_t=force, t/nat=none,nat_t=off: IKE from client to 203.0.113.2: replies cannot return: server has no route to 192.168.1.2"), "{e:?}");
}

#[test]
fn nat_needs_an_outside_interface() {
    let text = SEED.replace("nat_outside = \"server\"\n", "");
    assert!(errors(&text).iter().any(|m| m.contains(
        "nodes.gw.nat_outside: NAT profile masquerade (or forward_ike_to, forward_esp_to) needs `nat_outside`"
    )));
}

#[test]
fn expectations_must_cover_every_check_and_name_real_axes() {
    let text = SEED.replace(
        "checks = { ping = \"pass\", udp-1701 = \"pass\" }",
        "checks = { ping = \"pass\" }",
    );
    assert!(errors(&text)
        .iter()
        .any(|m| m.contains("no expectation for check `udp-1701`")));
    let text = SEED.replace(
        "when = { nat = \"block-4500\" }",
        "when = { natt = \"block-4500\" }",
    );
    assert!(errors(&text)
        .iter()
        .any(|m| m.contains("expect[1].when.natt: no matrix axis `natt` (axes: nat, nat_t)")));
    let text = SEED.replace(
        "when = { nat = \"block-4500\" }",
        "when = { nat = \"block-500\" }",
    );
    assert!(errors(&text)
        .iter()
        .any(|m| m.contains("`block-500` is not a value of axis nat")));
}

#[test]
fn mismatched_peers_are_rejected() {
    let text = SEED.replacen("role = \"responder\"", "role = \"initiator\"", 1);
    assert!(errors(&text)
        .iter()
        .any(|m| m.contains("one must be the initiator, the other the responder")));
    let text = SEED.replacen("psk = \"vpnlab-seed-psk\"", "psk = \"other\"", 1);
    assert!(errors(&text)
        .iter()
        .any(|m| m.contains("endpoints[0].psk: differs from the psk of server")));
}

#[test]
fn host_sysctls_are_refused() {
    let text = SEED.replace(
        "[nodes.server]",
        "[nodes.server]\nsysctl = { \"kernel.pid_max\" = \"1\" }",
    );
    assert!(errors(&text).iter().any(|m| m.contains(
        "nodes.server.sysctl.kernel.pid_max: only per-namespace net.* sysctls may be set"
    )));
}

#[test]
fn syntax_errors_carry_a_position() {
    let e = errors("name = \"x\"\n[nodes.a\n");
    assert!(e[0].starts_with("t.toml:2:"), "{e:?}");
}

#[test]
fn kernel_netlink_backend_implies_kernel_esp() {
    let k = include_str!("../../../topologies/kernel-esp.toml");
    let s = parse(Path::new("kernel-esp.toml"), k).unwrap();
    assert!(s
        .cells
        .iter()
        .all(|c| c.requires == vec![crate::model::Requirement::KernelEsp]));
    assert!(s
        .cells
        .iter()
        .all(|c| c.backend == Some(crate::model::Backend::KernelNetlink)));
    let raw = s
        .cells
        .iter()
        .find(|c| c.id == "kernel-esp/nat=none,nat_t=auto")
        .unwrap();
    assert_eq!(
        raw.expect.encapsulation,
        Some(crate::model::Encapsulation::None)
    );
    let seed = parse(Path::new("seed.toml"), SEED).unwrap();
    assert!(seed.cells.iter().all(|c| c.requires.is_empty()));
}

#[test]
fn unknown_requirement_and_backend_are_rejected() {
    let text = SEED.replace(
        "backend = \"kernel-libipsec\"",
        "backend = \"xfrm\"\nrequires = [\"gpu\"]",
    );
    let e = errors(&text);
    assert!(
        e.iter()
            .any(|m| m.contains("backend: unknown backend `xfrm`")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m
                .contains("requires: unknown requirement `gpu` (known: kernel-esp, kernel-ppp)")),
        "{e:?}"
    );
}

#[test]
fn explicit_check_addresses_must_belong_to_their_nodes() {
    let text = SEED.replace(
        "port = 1701\nfrom = \"client\"",
        "port = 1701\nsrc = \"10.99.1.1\"\nfrom = \"client\"",
    );
    assert_ne!(text, SEED);
    let e = errors(&text);
    assert!(
        e.iter()
            .any(|m| m.contains("checks[1].src: 10.99.1.1 is not an address of client")),
        "{e:?}"
    );
    let ok = SEED.replace(
        "port = 1701\nfrom = \"client\"",
        "port = 1701\nsrc = \"192.168.1.2\"\nfrom = \"client\"",
    );
    assert!(parse(Path::new("t.toml"), &ok).is_ok());
}

#[test]
fn parse_errors_name_the_path_of_the_field() {
    let text = SEED.replace(
        "b = { node = \"gw\", addr = \"192.168.1.1/24\" }",
        "b = { node = \"gw\", adr = \"192.168.1.1/24\" }",
    );
    let e = errors(&text);
    assert!(
        e[0].contains(": links[0].b.adr: unknown field `adr`"),
        "{e:?}"
    );
    let text = SEED.replace(
        "count = 3\n\n[[checks]]",
        "count = 3\ncolor = 1\n\n[[checks]]",
    );
    let e = errors(&text);
    assert!(
        e[0].contains(": checks[0].color: unknown field `color`"),
        "{e:?}"
    );
}

#[test]
fn stack_axis_expands_the_interop_grid_and_sets_each_endpoint() {
    let with_axis = SEED.replace(
        "[matrix]",
        "[matrix]\nstack = { client = [\"strongswan\", \"libreswan\"], server = [\"libreswan\"] }",
    );
    let s = parse(Path::new("seed.toml"), &with_axis).unwrap();
    assert_eq!(s.cells.len(), 24);
    let c = s
        .cells
        .iter()
        .find(|c| c.id == "seed/nat=none,nat_t=auto,stack.client=libreswan,stack.server=libreswan")
        .unwrap();
    assert!(c
        .endpoints
        .iter()
        .all(|e| e.stack == crate::model::StackKind::Libreswan));
    // Each end knows its own IKE address: the responder's is the one the
    // initiator targets.
    let server = c.endpoints.iter().find(|e| e.node == "server").unwrap();
    assert_eq!(server.local_addr, Some("203.0.113.2".parse().unwrap()));
    let client = c.endpoints.iter().find(|e| e.node == "client").unwrap();
    assert_eq!(client.local_addr, Some("192.168.1.2".parse().unwrap()));
}

#[test]
fn stacks_are_checked_where_they_are_named() {
    let bad_axis = SEED.replace("[matrix]", "[matrix]\nstack = { client = [\"openswan\"] }");
    let e = errors(&bad_axis);
    assert!(
        e.iter().any(|m| m.contains("matrix.stack.client")
            && m.contains("unknown stack `openswan`")
            && m.contains("libreswan")),
        "{e:?}"
    );
    let no_endpoint = SEED.replace("[matrix]", "[matrix]\nstack = { gw = [\"libreswan\"] }");
    assert!(errors(&no_endpoint)
        .iter()
        .any(|m| m.contains("matrix.stack.gw") && m.contains("has no endpoint")));
    let missing = SEED.replacen("stack = \"strongswan\"\n", "", 1);
    assert!(errors(&missing)
        .iter()
        .any(|m| m.contains("endpoints[0].stack") && m.contains("matrix.stack.client")));
}

#[test]
fn command_stacks_need_executable_programs() {
    let cmd = SEED.replacen(
        "stack = \"strongswan\"\n",
        "stack = \"command\"\ncommand = { start = \"nope/start\", status = \"nope/status\" }\n",
        1,
    );
    let text = &cmd;
    let e = errors(text);
    let line = line_of(text, "nope/start");
    assert!(
        e.iter().any(|m| m.contains(&format!("t.toml:{line}:"))
            && m.contains("endpoints[0].command.start")
            && m.contains("nope/start")),
        "{e:?}"
    );
    // The client is the initiator: it needs an initiate program.
    assert!(e
        .iter()
        .any(|m| m.contains("endpoints[0].command.initiate")));
    let none = SEED.replacen("stack = \"strongswan\"\n", "stack = \"command\"\n", 1);
    assert!(errors(&none)
        .iter()
        .any(|m| m.contains("endpoints[0].command") && m.contains("needs `command")));
}

const PPTP: &str = include_str!("../../../topologies/seed/pptp.toml");

#[test]
fn a_ppp_layer_resolves_its_addresses_and_needs_no_ipsec_endpoints() {
    let s = parse(Path::new("pptp.toml"), PPTP).unwrap();
    assert_eq!(s.name, "seed-pptp");
    let c = &s.cells[0];
    assert!(c.endpoints.is_empty());
    let p = c.ppp.as_ref().unwrap();
    assert_eq!(
        p.server_addr,
        "203.0.113.2".parse::<std::net::Ipv4Addr>().unwrap()
    );
    assert_eq!(
        (p.client_ip.to_string(), p.server_ip.to_string()),
        ("10.31.0.2".into(), "10.31.0.1".into())
    );
    // A check over PPP goes between the link's addresses.
    assert_eq!(
        (c.checks[0].src, c.checks[0].dst),
        (p.client_ip, p.server_ip)
    );
    assert_eq!(c.expect.tunnel, None);
    assert_eq!(c.expect.ppp, Some(TunnelExpect::Up));
    let m = s
        .cells
        .iter()
        .find(|c| c.id == "seed-pptp/nat=masquerade")
        .unwrap();
    assert_eq!(m.expect.ppp, Some(TunnelExpect::Down));
}

#[test]
fn ppp_mistakes_are_named() {
    let no_layer = SEED.replace("[matrix]", "[[checks]]\nname = \"p\"\nkind = \"ping\"\nover = \"ppp\"\nfrom = \"client\"\nto = \"server\"\n\n[matrix]");
    assert!(errors(&no_layer)
        .iter()
        .any(|m| m.contains(".over") && m.contains("needs a `[ppp]` section")));
    let clash = PPTP.replace("client_ip = \"10.31.0.2\"", "client_ip = \"192.168.1.2\"");
    let line = line_of(&clash, "client_ip = \"192.168.1.2\"");
    assert!(errors(&clash)
        .iter()
        .any(|m| m.contains(&format!(":{line}:"))
            && m.contains("ppp.client_ip")
            && m.contains("duplicate address 192.168.1.2")));
    let wrong_way = PPTP.replace(
        "from = \"client\"\nto = \"server\"",
        "from = \"server\"\nto = \"client\"",
    );
    assert!(errors(&wrong_way)
        .iter()
        .any(|m| m.contains("goes from the PPP client (client) to its server (server)")));
    let no_expect = PPTP.replace("ppp = \"up\"\n", "");
    assert!(errors(&no_expect)
        .iter()
        .any(|m| m.contains("no expectation sets `ppp`")));
}

const MAPPING: &str = include_str!("../../../topologies/field/mapping-timeout.toml");
const REBOOT: &str = include_str!("../../../topologies/field/nat-reboot.toml");

#[test]
fn knobs_reach_the_cells() {
    let s = parse(Path::new("t.toml"), MAPPING).unwrap();
    let gw = s.cells[0].node("gw").unwrap();
    assert_eq!(gw.knobs.udp_timeout, Some(3));
    let ka: Vec<Option<u32>> = s
        .cells
        .iter()
        .map(|c| c.endpoints[0].knobs.keepalive)
        .collect();
    assert_eq!(ka, vec![None, Some(1)]);
    // The server sets its own DPD: the axis leaves it alone.
    let r = parse(Path::new("t.toml"), REBOOT).unwrap();
    let on = r.cells.iter().find(|c| c.id.contains("dpd=1s")).unwrap();
    assert_eq!(on.endpoints[0].knobs.dpd, Some(1));
    assert_eq!(on.endpoints[1].knobs.dpd, None);
    assert_eq!(on.steps.len(), 4);
}

#[test]
fn bad_knobs_name_their_field() {
    let text = MAPPING
        .replace(
            "udp_timeout = 3",
            "udp_timeout = 3\nblock = [\"gre\"]\nport_range = \"9-8\"",
        )
        .replace(
            "keepalive = [\"off\", \"1s\"]",
            "keepalive = [\"off\", \"1\"]",
        );
    let e = errors(&text);
    for want in [
        "nodes.gw.behaviour.block: unknown packet class `gre` (known: esp, ah, udp-500, udp-4500, fragments, non-udp, packet-too-big; or a port or protocol: tcp:443, udp:1701, proto:47)",
        "nodes.gw.behaviour.port_range: `9-8` is not a port range",
        "matrix.keepalive: `1` is not a duration like \"5s\" or \"500ms\"",
    ] {
        assert!(e.iter().any(|m| m.contains(want)), "missing {want}: {e:?}");
    }
}

#[test]
fn bad_steps_name_their_field() {
    let text = REBOOT
        .replace("nat_reboot = \"gw\"", "nat_reboot = \"client\"")
        .replace("event = \"peer-moved\"", "event = \"peer-gone\"")
        .replace(
            "checks = [\"ping\", \"ping-back\"]",
            "checks = [\"ping\", \"pong\"]",
        );
    let e = errors(&text);
    for want in [
        "steps[1].nat_reboot: client is not a NAT gateway",
        "steps[2].wait.event: unknown event `peer-gone`",
        "steps[3].checks: no check named `pong`",
    ] {
        assert!(e.iter().any(|m| m.contains(want)), "missing {want}: {e:?}");
    }
    let two = REBOOT.replace("nat_reboot = \"gw\"", "nat_reboot = \"gw\"\npause = \"1s\"");
    assert!(errors(&two)
        .iter()
        .any(|m| m.contains("steps[1]: a step has exactly one action")));
}

#[test]
fn step_checks_need_expectations() {
    let text = REBOOT.replace(", \"ping-back@after\" = \"pass\"", "");
    assert!(errors(&text).iter().any(
        |m| m.contains("expect.checks.ping-back@after: no expectation for check `ping-back@after`")
    ));
}

#[test]
fn hairpin_needs_a_forwarding() {
    let text = MAPPING.replace("udp_timeout = 3", "udp_timeout = 3\nhairpin = true");
    assert!(errors(&text).iter().any(|m| m.contains(
        "nodes.gw.behaviour.hairpin: hairpinning applies to a forwarding: set `forward_ike_to` too"
    )));
}

#[test]
fn steps_act_where_they_can() {
    // A block on a host forwards nothing; a reboot needs a translating NAT.
    let text = REBOOT.replace(
        "[[steps]]\nname = \"reboot\"\nnat_reboot = \"gw\"",
        "[[steps]]\nname = \"reboot\"\nblock = { node = \"client\", class = \"esp\" }",
    );
    assert!(errors(&text)
        .iter()
        .any(|m| m.contains("steps[1].block.node: client forwards nothing")));
    let none = REBOOT.replace("nat = \"masquerade\"", "nat = \"udp-only\"");
    assert!(errors(&none).iter().any(|m| m.contains(
        "steps[1].nat_reboot: gw is not a NAT gateway that translates in every cell (profiles: udp-only)"
    )));
}

#[test]
fn peers_agree_on_auth_and_protocol() {
    let text = REBOOT.replacen(
        "inner = \"10.10.1.1\"",
        "inner = \"10.10.1.1\"\nproto = \"ah\"",
        1,
    );
    assert!(errors(&text)
        .iter()
        .any(|m| m.contains("endpoints[0].proto: `ah` differs from the proto of server (`esp`)")));
    // An identity neither stack could carry, with certificates or a key.
    let bad = |t: &str| t.replacen("id = \"client.vpnlab.test\"", "id = \"user@\"", 1);
    let cert = REBOOT.replace("psk = \"vpnlab-field-psk\"\n", "auth = \"cert\"\n");
    for text in [bad(&cert), bad(REBOOT)] {
        assert!(errors(&text).iter().any(|m| m.contains("endpoints[0].id: ")
            && m.contains("invalid IKE identity \"user@\": after '@'")));
    }
    // E-mail addresses and DNs are identities.
    let mail = cert.replacen("\"client.vpnlab.test\"", "\"carol@vpnlab.test\"", 1);
    let dn = cert.replacen("\"client.vpnlab.test\"", "\"C=CH, CN=carol\"", 1);
    for text in [mail, dn] {
        assert!(parse(Path::new("t.toml"), &text).is_ok());
    }
}

/// `file:line:col` of the quoted `value` on the first line containing
/// `key_value` (where the field's span starts).
fn pos_of(text: &str, key_value: &str, value: &str) -> String {
    let line = line_of(text, key_value);
    let col = text.lines().nth(line - 1).unwrap().find(value).unwrap() + 1;
    format!("t.toml:{line}:{col}")
}

#[test]
fn mixed_families_are_named_where_they_are_written() {
    let link = SEED.replace("\"192.168.1.2/24\"", "\"2001:db8::2/64\"");
    let inner = SEED.replace("\"10.10.1.1\"", "\"2001:db8:1::1\"");
    let dst = SEED.replace(
        "kind = \"ping\"\nfrom = \"client\"",
        "kind = \"ping\"\ndst = \"2001:db8:2::1\"\nfrom = \"client\"",
    );
    for (text, needle, field, message) in [
        (
            &link,
            "\"192.168.1.1/24\"",
            "links[0].b.addr",
            "192.168.1.1/24 is IPv4 but the other end 2001:db8::2/64 is IPv6 (a dual-stack link is two links)",
        ),
        (
            &inner,
            "\"2001:db8:1::1\"",
            "endpoints[0].inner",
            "2001:db8:1::1 is IPv6 but server's inner address 10.10.2.1 is IPv4: the tunnel's traffic selectors need one family",
        ),
        (
            &dst,
            "\"2001:db8:2::1\"",
            "checks[0].dst",
            "2001:db8:2::1 is IPv6 but the source 10.10.1.1 is IPv4: a check needs one family (no translator is on the path)",
        ),
    ] {
        let want = format!("{}: {field}: {message}", pos_of(text, needle, needle));
        let e = errors(text);
        assert!(e.contains(&want), "missing {want}: {e:?}");
    }
}

#[test]
fn a_route_via_the_other_family_is_rejected() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../topologies/ipv6/host-to-host.toml"),
    )
    .unwrap()
    .replacen("to = \"default\"", "to = \"10.0.0.0/8\"", 1);
    let e = errors(&text);
    let want =
        "routes[0].via: next hop 2001:db8:1::1 is IPv6 but the destination 10.0.0.0/8 is IPv4";
    assert!(e.iter().any(|m| m.ends_with(want)), "missing {want}: {e:?}");
}

fn ipv6_file(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../topologies/ipv6")
            .join(name),
    )
    .unwrap()
}

#[test]
fn a_route_goes_via_an_address_or_out_of_an_interface() {
    let base = ipv6_file("host-to-host.toml");
    let dev = base.replacen("via = \"2001:db8:1::1\"", "dev = \"to-router\"", 1);
    // `default` has no family without a next-hop address.
    let want = format!(
        "{}: routes[0].to: `default` takes the family of a `via` address",
        pos_of(&dev, "to = \"default\"", "\"default\"")
    );
    let e = errors(&dev);
    assert!(
        e.iter().any(|m| m.starts_with(&want)),
        "missing {want}: {e:?}"
    );
    let ok = dev.replacen("to = \"default\"", "to = \"::/0\"", 1);
    assert!(parse(Path::new("t.toml"), &ok).is_ok(), "{:?}", errors(&ok));
    let bad = ok.replacen("dev = \"to-router\"", "dev = \"eth9\"", 1);
    let want = format!(
        "{}: routes[0].dev: client has no interface `eth9` (known: to-router)",
        pos_of(&bad, "dev = ", "\"eth9\"")
    );
    assert!(
        errors(&bad).contains(&want),
        "missing {want}: {:?}",
        errors(&bad)
    );
    let both = ok.replacen(
        "dev = \"to-router\"",
        "dev = \"to-router\"\nvia = \"2001:db8:1::1\"",
        1,
    );
    assert!(
        errors(&both).iter().any(|m| m.contains("routes[0].via: a route goes `via` a neighbour's address or out of an interface (`dev`): give one of them")),
        "{:?}",
        errors(&both)
    );
}

#[test]
fn gateway_profiles_must_act_on_every_family_the_gateway_carries() {
    let text = ipv6_file("host-to-host.toml").replace(
        "[nodes.router]",
        "[nodes.router]\nnat = \"win2000\"\nnat_outside = \"server\"",
    );
    let want = format!(
        "{}: nodes.router.nat: profile win2000 acts on IPv4 only, but router has IPv6 addresses, which would pass untouched",
        pos_of(&text, "nat = \"win2000\"", "\"win2000\"")
    );
    let e = errors(&text);
    assert!(e.contains(&want), "missing {want}: {e:?}");
    let v4 = SEED.replace("\"block-4500\"", "\"netmap66\"");
    assert!(
        errors(&v4).iter().any(|m| m.contains(
            "nodes.gw.nat: profile netmap66 acts on IPv6 only, but gw has IPv4 addresses"
        )),
        "{:?}",
        errors(&v4)
    );
    let masq = ipv6_file("host-to-host.toml").replace(
        "[nodes.router]",
        "[nodes.router]\nnat = \"masquerade\"\nnat_outside = \"server\"",
    );
    assert!(
        parse(Path::new("t.toml"), &masq).is_ok(),
        "NAT66 is refused"
    );
}

#[test]
fn nat64_prefixes_and_families_are_named() {
    let text = ipv6_file("nat64.toml");
    let len = text.replace("\"2001:db8:64::/96\"", "\"2001:db8:64::/64\"");
    let want = format!(
        "{}: nodes.gw.nat64_prefix: 2001:db8:64::/64 is not an IPv6 /96",
        pos_of(&len, "nat64_prefix", "\"2001:db8:64::/64\"")
    );
    let e = errors(&len);
    assert!(
        e.iter().any(|m| m.starts_with(&want)),
        "missing {want}: {e:?}"
    );
    // The IPv6-only client names the server's IPv4 address itself.
    let v4 = text.replace("peer_addr = \"2001:db8:64::203.0.113.2\"\n", "");
    let want = format!(
        "{}: endpoints[0].peer: server's only address 203.0.113.2 is IPv4, but client has no IPv4 address: it can reach server only through the NAT64 gateway: set `peer_addr` to the address synthesized from it",
        pos_of(&v4, "peer = \"server\"", "\"server\"")
    );
    let e = errors(&v4);
    assert!(e.contains(&want), "missing {want}: {e:?}");
    // Without the translator, the same file has no way there.
    let none = v4
        .replace("nat = \"nat64\"\n", "")
        .replace("nat64_prefix = \"2001:db8:64::/96\"\n", "");
    assert!(
        errors(&none).iter().any(|m| m.contains(
            "it can reach server only through a NAT64 gateway (`nat = \"nat64\"`, `nat64_prefix`)"
        )),
        "{:?}",
        errors(&none)
    );
    let other = text.replace("2001:db8:64::203.0.113.2", "2001:db8:65::203.0.113.2");
    assert!(
        errors(&other).iter().any(|m| m.contains(
            "endpoints[0].peer_addr: 2001:db8:65::cb00:7102 is not an address of server"
        )),
        "{:?}",
        errors(&other)
    );
    let missing = text.replace("nat64_prefix = \"2001:db8:64::/96\"\n", "");
    assert!(
        errors(&missing)
            .iter()
            .any(|m| m.contains("nodes.gw.nat64_prefix: profile nat64 synthesizes IPv6 addresses")),
        "{:?}",
        errors(&missing)
    );
}

#[test]
fn a_prefix_mapping_needs_a_prefix_of_the_inside_length() {
    let text = ipv6_file("nat66.toml");
    let none = text.replace("nat_prefix = \"2001:db8:99::/64\"\n", "");
    assert!(
        errors(&none).iter().any(|m| m.contains("nodes.gw.nat_prefix: profile netmap66 maps the inside prefix to an outside one: set `nat_prefix`")),
        "{:?}",
        errors(&none)
    );
    for (prefix, message) in [
        ("2001:db8:99::/56", "2001:db8:99::/56 is a /56 but the inside prefix fd00:1::/64 is a /64: a prefix mapping keeps the host part, so both need one length"),
        ("198.51.100.0/24", "`198.51.100.0/24` is an IPv4 prefix; prefix mapping (netmap66) is IPv6's"),
    ] {
        let t = text.replace("2001:db8:99::/64\"\n[nodes.server]", &format!("{prefix}\"\n[nodes.server]"));
        let want = format!("{}: nodes.gw.nat_prefix: {message}", pos_of(&t, "nat_prefix", &format!("\"{prefix}\"")));
        let e = errors(&t);
        assert!(e.contains(&want), "missing {want}: {e:?}");
    }
}

#[test]
fn non_addresses_get_one_message_per_form() {
    let text = SEED
        .replace("\"192.168.1.2/24\"", "\"192.168.1.300/24\"")
        .replace("via = \"192.168.1.1\"", "via = \"gw\"")
        .replace("\"10.10.2.1\"", "\"10.10.2.1/32\"")
        .replace(
            "nat_outside = \"server\"",
            "nat_outside = \"server\"\nbehaviour = { forward_ike_to = \"fe80::1\" }",
        );
    let e = errors(&text);
    for (needle, want) in [
        (
            "\"192.168.1.300/24\"",
            "links[0].a.addr: `192.168.1.300/24` is not an IP address with prefix length (e.g. 192.0.2.1/24)",
        ),
        (
            "via = \"gw\"",
            "routes[0].via: `gw` is not an IP address (e.g. 192.0.2.1)",
        ),
        (
            "\"10.10.2.1/32\"",
            "endpoints[1].inner: `10.10.2.1/32` is not an IP address (e.g. 192.0.2.1)",
        ),
        (
            "\"fe80::1\"",
            "nodes.gw.behaviour.forward_ike_to: fe80::1 is IPv6, but gw has no IPv6 address to forward from",
        ),
    ] {
        let value = &needle[needle.find('"').unwrap()..];
        let want = format!("{}: {want}", pos_of(&text, needle, value));
        assert!(e.contains(&want), "missing {want}: {e:?}");
    }
}

#[test]
fn known_waits_put_the_cells_that_sit_out_a_bound_first() {
    let s = parse(Path::new("topologies/seed.toml"), SEED).unwrap();
    let wait = |id: &str| s.cells.iter().find(|c| c.id == id).unwrap().known_wait();
    assert_eq!(wait("seed/nat=none,nat_t=auto"), std::time::Duration::ZERO);
    // UDP 4500 blocked behind NAT: the exchange is expected to fail.
    assert!(wait("seed/nat=block-4500,nat_t=auto") > std::time::Duration::ZERO);
    const PROPOSALS: &str = include_str!("../../../topologies/deploy/proposals-interop.toml");
    let p = parse(
        Path::new("topologies/deploy/proposals-interop.toml"),
        PROPOSALS,
    )
    .unwrap();
    // A rekey wait expected to run out counts its whole bound.
    let most = p.cells.iter().map(|c| c.known_wait()).max().unwrap();
    assert!(most >= std::time::Duration::from_secs(15), "{most:?}");
}
