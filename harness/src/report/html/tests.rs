use std::path::Path;

use super::*;
use crate::capture::ladder::{Arrow, End, Ladder, Leg, What};
use crate::model::{Backend, Class};

fn report() -> Report {
    let text = include_str!("../../../../topologies/seed.toml");
    let s = crate::scenario::parse(Path::new("seed.toml"), text).unwrap();
    let cells: Vec<CellReport> = s
        .cells
        .iter()
        .map(|c| {
            let mut r = CellReport::not_run(
                c,
                Backend::KernelLibipsec,
                Verdict::Unsupported,
                "cannot <disable> NAT-T".into(),
            );
            if c.id.contains("block-4500,nat_t=auto") {
                r.outcome.verdict = Verdict::Fail;
                r.outcome.reason = None;
                r.pcap_files = vec!["/out/pcap/c/client-to-gw.pcap".into()];
                r.ladder = Some(ladder());
            }
            r
        })
        .collect();
    Report {
        vpnlab: "0.1.0".into(),
        backend: Backend::KernelLibipsec,
        peak_rss_kib: None,
        vm: None,
        cells,
    }
}

fn leg(from: &str, to: &str, src: &str) -> Leg {
    Leg {
        from: from.into(),
        to: to.into(),
        src: src.into(),
        dst: "203.0.113.2:4500".into(),
    }
}

fn ladder() -> Ladder {
    let ike = crate::capture::ike::parse(
        &[
            [0x11; 16].as_slice(),
            &[46, 0x20, 35, 0x08, 0, 0, 0, 1, 0, 0, 0, 28],
        ]
        .concat(),
        false,
    )
    .unwrap();
    Ladder {
        columns: vec!["client".into(), "gw".into(), "server".into()],
        arrows: vec![
            Arrow {
                at_ms: 0.0,
                until_ms: None,
                count: 1,
                what: What::Ike(ike),
                legs: vec![
                    leg("client", "gw", "192.168.1.2:4500"),
                    leg("gw", "server", "203.0.113.1:4500"),
                ],
                end: End::Delivered,
            },
            Arrow {
                at_ms: 4.0,
                until_ms: Some(9.0),
                count: 3,
                what: What::Class(Class::EspInUdp),
                legs: vec![leg("client", "gw", "192.168.1.2:4500")],
                end: End::Dropped,
            },
        ],
        not_drawn: 0,
    }
}

#[test]
fn a_grid_per_file_with_every_cell_and_its_reason() {
    let page = html(&report(), Path::new("/out"));
    assert_eq!(page.matches("<td class=\"g ").count(), 12, "12 seed cells");
    assert_eq!(page.matches("data-verdict=\"unsupported\"").count(), 2 * 11);
    assert!(
        page.contains("<small>cannot &lt;disable&gt; NAT-T</small>"),
        "escaped"
    );
    // Axes: nat down, nat_t across.
    assert!(page.contains("<th>nat</th><th>nat_t=auto</th>"), "{page}");
    assert_eq!(page.matches("<details class=\"cell\"").count(), 12);
}

#[test]
fn a_cell_links_its_files_and_draws_its_ladder() {
    let page = html(&report(), Path::new("/out"));
    assert!(page.contains("<a href=\"pcap/c/client-to-gw.pcap\">client-to-gw.pcap</a>"));
    assert_eq!(page.matches("<g class=\"a k-ike\"").count(), 1);
    assert!(page.contains("IKEv2 IKE_AUTH request #1"));
    assert!(
        page.contains("src 192.168.1.2:4500 ⇒ 203.0.113.1:4500"),
        "translation"
    );
    let esp = "data-kind=\"esp-in-udp\" data-end=\"dropped\" data-to=\"gw\"";
    assert!(page.contains(esp), "{page}");
    assert!(page.contains("ESP in UDP 4500 ×3 (until 9.0 ms)"));
}
