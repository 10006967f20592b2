use std::path::Path;

use super::*;
use crate::capture::{Captured, Frame, NodeFrames};

/// Interfaces of the seed topology: client/to-gw — gw/to-client,
/// gw/to-server — server/to-gw.
const IFACES: [(&str, &str, u32); 4] = [
    ("client", "to-gw", 2),
    ("gw", "to-client", 2),
    ("gw", "to-server", 3),
    ("server", "to-gw", 2),
];

fn seed() -> Cell {
    let text = include_str!("../../../../topologies/seed.toml");
    let s = crate::scenario::parse(Path::new("seed.toml"), text).unwrap();
    s.cells
        .into_iter()
        .find(|c| c.id == "seed/nat=masquerade,nat_t=auto")
        .unwrap()
}

/// An IPv4 packet (checksums left zero: nothing here verifies them).
fn ip(proto: u8, src: [u8; 4], dst: [u8; 4], body: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + body.len()).unwrap().to_be_bytes();
    let mut p = vec![0x45, 0, total[0], total[1], 0, 1, 0, 0, 64, proto, 0, 0];
    p.extend(src);
    p.extend(dst);
    p.extend(body);
    p
}

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(sport.to_be_bytes());
    b.extend(dport.to_be_bytes());
    b.extend(u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    b.extend([0, 0]);
    b.extend(payload);
    ip(17, src, dst, &b)
}

/// An IKEv2 header (and a few payload bytes, which make messages differ).
fn ike(exchange: u8, flags: u8, id: u32, salt: u8) -> Vec<u8> {
    let mut h = vec![0x42; 8];
    h.extend([0; 8]);
    h.extend([33, 0x20, exchange, flags]);
    h.extend(id.to_be_bytes());
    h.extend(40u32.to_be_bytes());
    h.extend([salt; 12]);
    h
}

const CLIENT: [u8; 4] = [10, 1, 0, 2];
const GW_OUT: [u8; 4] = [192, 0, 2, 1];
const SERVER: [u8; 4] = [192, 0, 2, 2];

/// A capture built frame by frame, with a clock in milliseconds.
#[derive(Default)]
struct Wire(Captured);

impl Wire {
    fn new() -> Self {
        let mut w = Wire::default();
        for (node, iface, idx) in IFACES {
            w.0.names
                .entry(node.to_string())
                .or_default()
                .insert(idx, iface.to_string());
            w.0.nodes
                .entry(node.to_string())
                .or_insert_with(NodeFrames::default);
        }
        w
    }

    fn frame(&mut self, node: &str, ifindex: u32, dir: Dir, ms: u64, data: &[u8], class: Class) {
        let to_self = dir == Dir::In && node != "gw";
        self.0.nodes.get_mut(node).unwrap().frames.push(Frame {
            ifindex,
            dir,
            ts: Duration::from_millis(ms),
            len: data.len() as u32,
            data: data.to_vec(),
            class,
            to_self,
        });
    }

    /// `data` from the client through the NAT (`translated` on the far
    /// side), as far as `reach` nodes (1: it dies at gw).
    fn up(&mut self, ms: u64, data: &[u8], translated: &[u8], class: Class, reach: usize) {
        self.frame("client", 2, Dir::Out, ms, data, class);
        self.frame("gw", 2, Dir::In, ms, data, class);
        if reach > 1 {
            self.frame("gw", 3, Dir::Out, ms, translated, class);
            self.frame("server", 2, Dir::In, ms, translated, class);
        }
    }

    fn down(&mut self, ms: u64, data: &[u8], translated: &[u8], class: Class) {
        self.frame("server", 2, Dir::Out, ms, data, class);
        self.frame("gw", 3, Dir::In, ms, data, class);
        self.frame("gw", 2, Dir::Out, ms, translated, class);
        self.frame("client", 2, Dir::In, ms, translated, class);
    }
}

#[test]
fn ike_messages_are_named_and_their_translation_shown() {
    let mut w = Wire::new();
    let req = ike(34, 0x08, 0, 1);
    let resp = ike(34, 0x20, 0, 2);
    w.up(
        0,
        &udp(CLIENT, 500, SERVER, 500, &req),
        &udp(GW_OUT, 1024, SERVER, 500, &req),
        Class::Ike500,
        2,
    );
    w.down(
        5,
        &udp(SERVER, 500, GW_OUT, 1024, &resp),
        &udp(SERVER, 500, CLIENT, 500, &resp),
        Class::Ike500,
    );
    let l = build(&seed(), &w.0);
    assert_eq!(l.columns, ["client", "gw", "server"]);
    assert_eq!(l.arrows.len(), 2, "{l:#?}");
    let [a, b] = &l.arrows[..] else {
        unreachable!()
    };
    let What::Ike(m) = a.what else {
        panic!("{a:?}")
    };
    assert_eq!(m.to_string(), "IKE_SA_INIT request #0");
    assert_eq!(a.end, End::Delivered);
    assert_eq!(a.legs[0].src, "10.1.0.2:500");
    assert_eq!(a.legs[1].src, "192.0.2.1:1024", "the NAT's translation");
    assert_eq!(a.legs[1].to, "server");
    let What::Ike(m) = b.what else {
        panic!("{b:?}")
    };
    assert_eq!(m.to_string(), "IKE_SA_INIT response #0");
    assert_eq!((b.at_ms, b.legs[1].dst.as_str()), (5.0, "10.1.0.2:500"));
}

#[test]
fn esp_a_nat_drops_is_one_arrow_ending_at_gw() {
    let mut w = Wire::new();
    for seq in 1..=5u8 {
        let esp = ip(
            50,
            CLIENT,
            SERVER,
            &[0xc1, 2, 3, 4, 0, 0, 0, seq, 9, 9, 9, 9],
        );
        w.up(u64::from(seq) * 10, &esp, &esp, Class::Esp, 1);
    }
    // Something long after, so the drops were not cut by the capture's end.
    let info = ike(37, 0x08, 2, 3);
    let later = udp(CLIENT, 500, SERVER, 500, &info);
    let later_t = udp(GW_OUT, 1024, SERVER, 500, &info);
    w.up(1000, &later, &later_t, Class::Ike500, 2);
    let l = build(&seed(), &w.0);
    assert_eq!(l.arrows.len(), 2, "{l:#?}");
    let esp = &l.arrows[0];
    assert_eq!(esp.what, What::Class(Class::Esp));
    // Times count from the first frame (the first ESP packet, at 10 ms).
    assert_eq!((esp.at_ms, esp.count, esp.until_ms), (0.0, 5, Some(40.0)));
    assert_eq!(esp.legs.len(), 1);
    assert_eq!((esp.legs[0].to.as_str(), &esp.end), ("gw", &End::Dropped));
}

#[test]
fn of_two_identical_retransmits_the_later_is_the_one_passed_on() {
    let mut w = Wire::new();
    let req = ike(35, 0x08, 1, 4);
    let (a, b) = (
        udp(
            CLIENT,
            4500,
            SERVER,
            4500,
            &[[0; 4].as_slice(), &req].concat(),
        ),
        udp(
            GW_OUT,
            4500,
            SERVER,
            4500,
            &[[0; 4].as_slice(), &req].concat(),
        ),
    );
    w.up(0, &a, &b, Class::Ike4500, 1);
    w.up(500, &a, &b, Class::Ike4500, 2);
    w.up(
        1500,
        &udp(CLIENT, 4500, SERVER, 4500, &[0xff]),
        &[],
        Class::NattKeepalive,
        1,
    );
    let l = build(&seed(), &w.0);
    let ends: Vec<_> = l.arrows.iter().map(|a| (a.at_ms, a.end.clone())).collect();
    assert_eq!(
        ends,
        [
            (0.0, End::Dropped),
            (500.0, End::Delivered),
            (1500.0, End::Unknown)
        ],
        "the keepalive was last: it may have been in flight"
    );
    let What::Ike(m) = l.arrows[1].what else {
        panic!()
    };
    assert_eq!(m.to_string(), "IKE_AUTH request #1");
}

#[test]
fn only_the_changing_bytes_a_nat_leaves_alone_are_keyed() {
    let echo = |id: u16, src| {
        ip(
            1,
            src,
            SERVER,
            &[8, 0, 0xab, 0xcd, (id >> 8) as u8, id as u8, 0, 7, 1, 2, 3],
        )
    };
    assert_eq!(carry_key(&echo(1, CLIENT)), carry_key(&echo(9, GW_OUT)));
    let udp_a = udp(CLIENT, 1000, SERVER, 53, b"query");
    let udp_b = udp(GW_OUT, 2000, SERVER, 53, b"query");
    assert_eq!(carry_key(&udp_a), carry_key(&udp_b));
    assert_ne!(
        carry_key(&udp_a),
        carry_key(&udp(CLIENT, 1000, SERVER, 53, b"other"))
    );
}
