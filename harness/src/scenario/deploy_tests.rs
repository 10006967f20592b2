//! Segments, subnets as traffic selectors and the checks' default
//! addresses: parsing and validation only.

use std::path::Path;

use super::parse;
use crate::error::ScenarioError;

const NET2NET: &str = include_str!("../../../topologies/deploy/net2net-nat.toml");

fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("t.toml"), text) {
        Ok(_) => panic!("expected a validation error"),
        Err(ScenarioError::Invalid(d)) => d.iter().map(|d| d.to_string()).collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// The site-to-site file with one text replaced.
fn edited(from: &str, to: &str) -> String {
    assert!(NET2NET.contains(from), "{from}");
    NET2NET.replacen(from, to, 1)
}

#[test]
fn a_site_to_site_file_resolves_segments_selectors_and_check_addresses() {
    let s = parse(Path::new("net2net-nat.toml"), NET2NET).unwrap();
    let c = &s.cells[2];
    assert_eq!(c.id, "net2net-nat/nat=masquerade,block=off");
    let lan = &c.segments[0];
    assert_eq!(lan.name, "lan");
    let members: Vec<&str> = lan.members.iter().map(|m| m.node.as_str()).collect();
    assert_eq!(members, ["alice", "venus", "moon"]);
    assert!(lan.members.iter().all(|m| m.iface == "to-lan"));
    assert!(
        c.node("moon").unwrap().forwarding,
        "alice routes through moon"
    );
    let moon = c.endpoint("moon").unwrap();
    let ts = |v: Vec<ipnet::IpNet>| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(ts(moon.local_ts()), ["10.1.0.0/24"]);
    assert_eq!(ts(moon.remote_ts()), ["10.2.0.0/24"]);
    let check = |n: &str| c.checks.iter().find(|k| k.name == n).unwrap();
    let ab = check("alice-bob");
    assert_eq!(
        (ab.src.to_string(), ab.dst.to_string()),
        ("10.1.0.10".into(), "10.2.0.10".into())
    );
    assert_eq!(
        check("moon-bob").src.to_string(),
        "10.1.0.1",
        "moon's address in its subnet"
    );
    assert!(c.tunnelled(ab));
    assert!(!c.tunnelled(check("alice-venus")), "a LAN's own traffic");
    assert_eq!(c.families_of("venus"), crate::model::Families::V4);
}

#[test]
fn segment_mistakes_are_named() {
    let outside = edited("\"10.1.0.20/24\"", "\"10.9.0.20/24\"");
    let e = errors(&outside);
    assert!(
        e.iter().any(|m| m.contains("segments.lan.members[1].addr")
            && m.contains("not in the segment's subnet 10.1.0.0/24")),
        "{e:?}"
    );
    let twice = edited("{ node = \"venus\"", "{ node = \"alice\"");
    assert!(errors(&twice)
        .iter()
        .any(|m| m.contains("alice is on segment lan twice")));
    let named_like_a_node = edited("[segments.lan]", "[segments.bob]");
    assert!(errors(&named_like_a_node)
        .iter()
        .any(|m| m.contains("segments.bob") && m.contains("differ from every node's")));
    let alone = edited(
        "  { node = \"venus\", addr = \"10.1.0.20/24\" },\n  { node = \"moon\", addr = \"10.1.0.1/24\" },\n",
        "",
    );
    assert!(errors(&alone)
        .iter()
        .any(|m| m.contains("at least two members")));
    let dev = edited(
        "to = \"default\"\nvia = \"10.1.0.1\"",
        "to = \"0.0.0.0/0\"\ndev = \"to-lan\"",
    );
    assert!(errors(&dev)
        .iter()
        .any(|m| m.contains("several neighbours")));
    let overlap = edited("\"192.168.0.2/24\"", "\"10.1.0.99/24\"");
    let overlap = overlap.replacen("\"192.168.0.1/24\"", "\"10.1.0.98/24\"", 1);
    assert!(
        errors(&overlap).iter().any(|m| m.contains(
            "segments.lan.members[0].addr: subnet 10.1.0.0/24 overlaps 10.1.0.0/24 of links[0]"
        )),
        "{:?}",
        errors(&overlap)
    );
}

#[test]
fn subnet_mistakes_are_named() {
    let host_bits = edited("subnets = [\"10.1.0.0/24\"]", "subnets = [\"10.1.0.1/24\"]");
    assert!(errors(&host_bits)
        .iter()
        .any(|m| m.contains("endpoints[0].subnets")
            && m.contains("host bits set: the subnet is 10.1.0.0/24")));
    let overlap = edited(
        "subnets = [\"10.1.0.0/24\"]",
        "subnets = [\"10.1.0.0/24\", \"10.1.0.0/25\"]",
    );
    assert!(errors(&overlap)
        .iter()
        .any(|m| m.contains("overlaps 10.1.0.0/24")));
    let none = edited("subnets = [\"10.1.0.0/24\"]", "");
    assert!(errors(&none)
        .iter()
        .any(|m| m
            .contains("needs an inner address, `subnets` or (an initiator) `virtual_ip = true`")));
    let transport = edited(
        "subnets = [\"10.2.0.0/24\"]",
        "subnets = [\"10.2.0.0/24\"]\nmode = \"transport\"",
    );
    assert!(errors(&transport)
        .iter()
        .any(|m| m.contains("`subnets` needs tunnel mode")));
}

const PMTU: &str = include_str!("../../../topologies/deploy/pmtu-black-hole.toml");

#[test]
fn behaviour_axes_set_their_knob_per_cell() {
    let s = parse(Path::new("pmtu-black-hole.toml"), PMTU).unwrap();
    let ids: Vec<&str> = s.cells.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids[1], "pmtu-black-hole/nat=none,mss_clamp=1200");
    let clamp = |i: usize| s.cells[i].node("moon").unwrap().knobs.mss_clamp;
    assert_eq!((clamp(0), clamp(1)), (None, Some(1200)));
    assert!(
        s.cells[2].expect.is_negative(),
        "ptb-drop without the clamp fails"
    );
    let n = parse(Path::new("net2net-nat.toml"), NET2NET).unwrap();
    let gw = n.cells[1].node("gw").unwrap();
    assert_eq!(n.cells[1].id, "net2net-nat/nat=none,block=udp:4500");
    assert_eq!(gw.knobs.filters, vec![crate::model::Filter::Udp(4500)]);
}

#[test]
fn bad_behaviour_axes_and_knobs_are_named() {
    let e = errors(&PMTU.replace(
        "mss_clamp = [\"off\", \"1200\"]",
        "mss_clamp = [\"off\", \"big\"]",
    ));
    assert!(
        e.iter()
            .any(|m| m.contains("`big` is not an MSS in bytes or \"off\"")),
        "{e:?}"
    );
    let e = errors(&PMTU.replace(
        "mss_clamp = [\"off\", \"1200\"]",
        "mss_clamp = [\"off\", \"100\"]",
    ));
    assert!(
        e.iter().any(|m| m.contains("an MSS of 536-9000 bytes")),
        "{e:?}"
    );
    let e = errors(&PMTU.replace("{ mss_clamp =", "{ hairpin ="));
    assert!(
        e.iter().any(|m| m.contains("`hairpin` cannot be an axis")),
        "{e:?}"
    );
    let e = errors(&PMTU.replace("behaviour = { moon", "behaviour = { mars"));
    assert!(
        e.iter()
            .any(|m| m.contains("matrix.behaviour.mars.mss_clamp")
                && m.contains("unknown node `mars`")),
        "{e:?}"
    );
    let e = errors(&NET2NET.replace("\"udp:4500\"]", "\"udp:ike\"]"));
    assert!(
        e.iter()
            .any(|m| m.contains("`udp:ike` is not `tcp:<port>`, `udp:<port>` or `proto:<number>`")),
        "{e:?}"
    );
}

#[test]
fn tcp_checks_need_a_free_port_and_sizes_are_bounded() {
    let e = errors(&PMTU.replace("port = 19\n", ""));
    assert!(
        e.iter()
            .any(|m| m.contains("checks[1].port") && m.contains("a tcp check needs a port")),
        "{e:?}"
    );
    let e = errors(&PMTU.replace("port = 19\n", "port = 9\n"));
    assert!(
        e.iter()
            .any(|m| m
                .contains("check `tcp` already has its tcp echo responder on 10.2.0.10 port 9")),
        "{e:?}"
    );
    let e = errors(&PMTU.replace("size = 20000", "size = 20000000"));
    assert!(
        e.iter()
            .any(|m| m.contains("a tcp check's size is 1-16777216 bytes")),
        "{e:?}"
    );
    let ping = NET2NET.replacen(
        "kind = \"ping\"\nfrom = \"alice\"",
        "kind = \"ping\"\nsize = 70000\nfrom = \"alice\"",
        1,
    );
    assert!(errors(&ping)
        .iter()
        .any(|m| m.contains("a ping check's size is 1-65000 bytes")));
    let s = parse(Path::new("p.toml"), PMTU).unwrap();
    let big = &s.cells[0].checks[0];
    assert_eq!(
        (big.kind, big.size, big.port),
        (crate::model::CheckKind::Tcp, Some(20000), Some(9))
    );
}

const RW: &str = include_str!("../../../topologies/deploy/rw-pool.toml");

#[test]
fn road_warriors_take_their_peer_s_pool_and_send_checks_from_it() {
    let s = parse(Path::new("rw-pool.toml"), RW).unwrap();
    let c = &s.cells[0];
    let carol = c.endpoint("carol").unwrap();
    assert!(carol.virtual_ip);
    assert_eq!(
        carol.pool.map(|p| p.to_string()).as_deref(),
        Some("10.3.0.0/24")
    );
    assert!(
        carol.local_ts().is_empty(),
        "strongSwan then proposes `dynamic`"
    );
    let moon = c.endpoint("moon").unwrap();
    assert!(!moon.virtual_ip && moon.pool.is_some());
    let check = &c.checks[0];
    assert_eq!(check.src_pool, carol.pool);
    assert!(c.tunnelled(check), "the pool is tunnel traffic");
}

#[test]
fn virtual_ip_mistakes_are_named() {
    let no_pool = RW.replacen("pool = \"10.3.0.0/24\"\n", "", 1);
    let e = errors(&no_pool);
    assert!(
        e.iter()
            .any(|m| m.contains("endpoints[0].virtual_ip: moon has no `pool`")),
        "{e:?}"
    );
    let overlap = RW.replacen("pool = \"10.3.0.0/24\"", "pool = \"10.1.0.0/16\"", 1);
    assert!(errors(&overlap)
        .iter()
        .any(|m| m.contains("overlaps subnet 10.1.0.0/24 of links[1]")));
    let host = RW.replacen("pool = \"10.3.0.0/24\"", "pool = \"10.3.0.1/24\"", 1);
    assert!(errors(&host)
        .iter()
        .any(|m| m.contains("not a network prefix")));
    let both = RW.replacen(
        "virtual_ip = true",
        "virtual_ip = true\ninner = \"10.9.9.9\"",
        1,
    );
    assert!(errors(&both)
        .iter()
        .any(|m| m.contains("leave out `inner`")));
    let to_vip = RW.replacen(
        "from = \"carol\"\nto = \"alice\"",
        "from = \"alice\"\nto = \"carol\"",
        1,
    );
    assert!(errors(&to_vip)
        .iter()
        .any(|m| m.contains("carol's virtual IP is known only once its tunnel is up")));
    let responder_asks = RW.replacen(
        "pool = \"10.3.0.0/24\"",
        "pool = \"10.3.0.0/24\"\nvirtual_ip = true",
        1,
    );
    assert!(errors(&responder_asks)
        .iter()
        .any(|m| m.contains("only an initiator asks for a virtual IP")));
}

const REKEY: &str = include_str!("../../../topologies/deploy/rekey.toml");

#[test]
fn ike_steps_resolve_their_ends_action_and_checks() {
    use crate::model::{Action, IkeOp};
    let s = parse(Path::new("rekey.toml"), REKEY).unwrap();
    let c = &s.cells[0];
    let Action::Ike {
        nodes,
        op,
        during,
        timeout,
    } = &c.steps[2].action
    else {
        panic!("{:?}", c.steps[2].action)
    };
    assert_eq!(
        (nodes.as_slice(), *op),
        (
            &["client".to_string(), "server".to_string()][..],
            IkeOp::RekeyChild
        )
    );
    assert_eq!(
        (during.as_slice(), timeout.as_secs()),
        (&["stream".to_string()][..], 5)
    );
    let stream = c.checks.iter().find(|k| k.name == "stream").unwrap();
    assert_eq!(stream.interval, Some(std::time::Duration::from_millis(10)));
    assert!(matches!(
        c.steps[0].action,
        Action::Ike {
            op: IkeOp::Reauth,
            ..
        }
    ));
    assert!(c.expect.waits.contains_key("collision"));
    assert!(c.expect.checks.contains_key("stream@collision"));
}

#[test]
fn ike_step_mistakes_are_named() {
    let e = errors(&REKEY.replacen("action = \"rekey-ike\"", "action = \"reboot\"", 1));
    assert!(
        e.iter().any(|m| m.contains(
            "unknown IKE action `reboot` (known: initiate, terminate, rekey-child, rekey-ike, reauth, restart, crash)"
        )),
        "{e:?}"
    );
    let e = errors(&REKEY.replacen(
        "node = \"client\", action = \"initiate\"",
        "node = \"server\", action = \"initiate\"",
        1,
    ));
    assert!(
        e.iter()
            .any(|m| m.contains("server is a responder with no `peer_addr`")),
        "{e:?}"
    );
    let e = errors(&REKEY.replacen(
        "node = \"client\", action = \"terminate\"",
        "node = \"gw\", action = \"terminate\"",
        1,
    ));
    assert!(
        e.iter().any(|m| m.contains("`gw` has no endpoint")),
        "{e:?}"
    );
    let e = errors(&REKEY.replacen("during = [\"stream\"] }", "during = [\"flood\"] }", 1));
    assert!(
        e.iter().any(|m| m.contains("unknown check `flood`")),
        "{e:?}"
    );
    let e = errors(&REKEY.replacen("interval = \"10ms\"", "interval = \"2s\"", 1));
    assert!(
        e.iter().any(|m| m.contains("at most 1s between probes")),
        "{e:?}"
    );
}

const PROPOSALS: &str = include_str!("../../../topologies/deploy/proposals.toml");

#[test]
fn proposals_reach_the_endpoints_and_an_axis_varies_them() {
    let s = parse(Path::new("proposals.toml"), PROPOSALS).unwrap();
    let client = s.cells[0].endpoint("client").unwrap();
    assert_eq!(client.proposals.ike, ["aes256gcm16-prfsha384-ecp384"]);
    assert_eq!(client.proposals.child_rekey, Some(2));
    let server = |i: usize| s.cells[i].endpoint("server").unwrap().proposals.clone();
    assert_eq!(server(0).ike, ["aes256gcm16-prfsha384-ecp384"]);
    assert_eq!(server(1).ike, ["aes128-sha256-modp2048"]);
    assert_eq!(
        server(1).esp,
        ["aes256gcm16-ecp384"],
        "the axis sets only IKE's"
    );
    assert!(s.cells[1].expect.is_negative());
}

#[test]
fn proposal_mistakes_are_named() {
    let e = errors(&PROPOSALS.replacen(
        "aes256gcm16-prfsha384-ecp384\"]",
        "aes256gcm16-ecp384\"]",
        1,
    ));
    assert!(
        e.iter()
            .any(|m| m.contains("endpoints[0].ike_proposals") && m.contains("needs a PRF")),
        "{e:?}"
    );
    let e = errors(&PROPOSALS.replacen("child_rekey = \"2s\"", "child_rekey = \"2\"", 1));
    assert!(
        e.iter().any(|m| m.contains("`2` is not a rekey time")),
        "{e:?}"
    );
    let e = errors(&PROPOSALS.replacen("\"aes128-sha256-modp2048\"]", "\"aes128-sha256\"]", 1));
    assert!(
        e.iter()
            .any(|m| m.contains("matrix.ike_proposals.server")
                && m.contains("no Diffie-Hellman group")),
        "{e:?}"
    );
    let e = errors(&PROPOSALS.replacen("ike_proposals = { server", "ike_proposals = { gw", 1));
    assert!(
        e.iter().any(|m| m.contains("`gw` has no endpoint")),
        "{e:?}"
    );
}

const PFS: &str = include_str!("../../../topologies/diagnosis/pfs.toml");
const CERTS: &str = include_str!("../../../topologies/diagnosis/certificates.toml");

#[test]
fn an_esp_axis_varies_only_esp_and_not_beside_an_ike_axis() {
    let s = parse(Path::new("pfs.toml"), PFS).unwrap();
    let server = |i: usize| s.cells[i].endpoint("server").unwrap().proposals.clone();
    assert_eq!(server(0).esp, ["aes256gcm16-ecp384"]);
    assert_eq!(server(1).esp, ["aes256gcm16"]);
    assert!(server(1).ike.is_empty(), "the axis sets only ESP's");
    let e = errors(&PFS.replacen("\"aes256gcm16\"] }", "\"aes256gcm16-prfsha256\"] }", 1));
    assert!(
        e.iter()
            .any(|m| m.contains("matrix.esp_proposals.server") && m.contains("`prfsha256`")),
        "{e:?}"
    );
    let both = PFS.replacen(
        "[matrix]\n",
        "[matrix]\nike_proposals = { server = [\"aes128-sha256-modp2048\"] }\n",
        1,
    );
    let e = errors(&both);
    assert!(
        e.iter()
            .any(|m| m.contains("vary both the IKE and the ESP proposals of `server`")),
        "{e:?}"
    );
}

#[test]
fn certificate_misconfigurations_need_certificates() {
    let s = parse(Path::new("certificates.toml"), CERTS).unwrap();
    let client = |i: usize| s.cells[i].endpoint("client").unwrap().misconfigured.clone();
    assert_eq!(client(1), [crate::model::Misconfig::CertUntrusted]);
    assert_eq!(client(2), [crate::model::Misconfig::CertExpired]);
    let psk = CERTS.replacen("auth = \"cert\"", "psk = \"vpnlab-psk\"", 1);
    let psk = psk.replacen("auth = \"cert\"", "psk = \"vpnlab-psk\"", 1);
    let e = errors(&psk);
    assert!(
        e.iter().any(|m| m.contains("endpoints[0].auth")
            && m.contains("`cert-untrusted` is about the end's certificate")),
        "{e:?}"
    );
}

const ANY: &str = include_str!("../../../topologies/deploy/ike-any.toml");

#[test]
fn a_responder_may_take_either_ike_version_and_only_a_responder() {
    let s = parse(Path::new("ike-any.toml"), ANY).unwrap();
    let c = &s.cells[0];
    let versions: Vec<u8> = ["client1", "client2", "server"]
        .iter()
        .map(|n| c.endpoint(n).unwrap().ike)
        .collect();
    assert_eq!(versions, [1, 2, 0]);
    let e = errors(&ANY.replacen("ike = 1", "ike = 0", 1));
    assert!(
        e.iter()
            .any(|m| m.contains("endpoints[0].ike: an initiator speaks one IKE version")),
        "{e:?}"
    );
    let e = errors(&ANY.replacen("10.10.2.1\"\nike = 0", "10.10.2.1\"\nike = 3", 1));
    assert!(
        e.iter()
            .any(|m| m.contains("IKE version must be 1 or 2 (or, on a responder, 0: either)")),
        "{e:?}"
    );
    let e = errors(&ANY.replacen("10.10.2.1\"\nike = 0", "10.10.2.1\"\nike = 2", 1));
    assert!(
        e.iter()
            .any(|m| m.contains("differs from the IKE version of server")),
        "{e:?}"
    );
}

const RESPONDER_INITIATE: &str = include_str!("../../../topologies/deploy/responder-initiate.toml");

#[test]
fn a_responder_given_peer_addr_sends_ike_there_and_may_initiate() {
    let s = parse(Path::new("responder-initiate.toml"), RESPONDER_INITIATE).unwrap();
    let server = &s.cells[0].endpoints[1];
    assert_eq!(server.role, crate::model::Role::Responder);
    assert_eq!(server.remote_addr, Some("203.0.113.1".parse().unwrap()));
    let edit = |from: &str, to: &str| {
        assert!(RESPONDER_INITIATE.contains(from), "{from}");
        errors(&RESPONDER_INITIATE.replacen(from, to, 1))
    };
    let e = edit("peer_addr = \"203.0.113.1\"", "peer_addr = \"203.0.113.9\"");
    assert!(
        e.iter().any(|m| m.contains("endpoints[1].peer_addr: 203.0.113.9 is not an address of client nor of a gateway or router")),
        "{e:?}"
    );
    let e = edit("peer_addr = \"203.0.113.1\"      # gw's outside address: the client's IKE comes from there\n", "");
    assert!(
        e.iter()
            .any(|m| m.contains("server is a responder with no `peer_addr`")),
        "{e:?}"
    );
    // No peer at all: reported once, with `peer`, and no panic.
    let e = edit("peer = \"client\"\npeer_addr", "peer = []\npeer_addr");
    assert!(!e.iter().any(|m| m.contains("peer_addr")), "{e:?}");
    let e = edit("role = \"responder\"", "role = \"responder\"\nike = 0");
    assert!(
        e.iter()
            .any(|m| m.contains("server takes either IKE version")),
        "{e:?}"
    );
}
