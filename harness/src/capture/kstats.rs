//! Kernel drop counters of each node, read before and after a cell: they
//! name drops no packet capture can see, because they happen after the
//! frame was received (a UDP checksum that no longer matches once ESP
//! transport mode is decrypted behind a NAT; ESP for an SA the node does not
//! have; an IPv6 packet too big for the next link, or with no route). Read
//! from `/proc/thread-self/net/…` (`snmp`, `snmp6`, `xfrm_stat`) on a
//! thread inside the node.

use std::collections::BTreeMap;

use crate::topology::netns::Netns;

/// Counter name → value.
pub type Counters = BTreeMap<String, u64>;

/// Counters worth reporting when they grow, with what they mean. All of
/// `xfrm_stat`'s counters are errors and are reported too.
const SNMP: &[(&str, &str)] = &[
    (
        "Udp:InCsumErrors",
        "UDP datagrams dropped for a bad checksum",
    ),
    ("Udp:InErrors", "UDP datagrams dropped on receipt"),
];

/// The same for IPv6 (`/proc/net/snmp6`).
const SNMP6: &[(&str, &str)] = &[
    ("Ip6InNoRoutes", "IPv6 packets dropped for want of a route"),
    (
        "Ip6OutNoRoutes",
        "IPv6 packets of its own not sent for want of a route",
    ),
    (
        "Ip6InTooBigErrors",
        "IPv6 packets too big for the next link (answered with Packet Too Big)",
    ),
    ("Ip6InDiscards", "IPv6 packets discarded on receipt"),
    (
        "Ip6InAddrErrors",
        "IPv6 packets for an address it does not have",
    ),
    ("Ip6ReasmFails", "IPv6 reassemblies that failed"),
    (
        "Ip6FragFails",
        "IPv6 packets that needed fragmenting and were dropped (routers never fragment IPv6)",
    ),
    (
        "Udp6InCsumErrors",
        "UDP datagrams over IPv6 dropped for a bad checksum",
    ),
    ("Udp6InErrors", "UDP datagrams over IPv6 dropped on receipt"),
];

/// Read the node's counters (missing files, e.g. a kernel without XFRM
/// statistics, give fewer counters, not an error).
pub fn read(ns: &Netns) -> Counters {
    ns.run_in(|| {
        let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default();
        let xfrm = std::fs::read_to_string("/proc/thread-self/net/xfrm_stat").unwrap_or_default();
        let snmp6 = std::fs::read_to_string("/proc/thread-self/net/snmp6").unwrap_or_default();
        let mut c = parse(&snmp, &xfrm);
        c.extend(parse_pairs(&snmp6));
        Ok(c)
    })
    .unwrap_or_default()
}

/// Parse `/proc/net/snmp` (header line, value line per protocol) and
/// `/proc/net/xfrm_stat` (name, value per line).
pub fn parse(snmp: &str, xfrm: &str) -> Counters {
    let mut out = Counters::new();
    let lines: Vec<&str> = snmp.lines().collect();
    for pair in lines.chunks(2) {
        if let [names, values] = pair {
            let mut n = names.split_whitespace();
            let mut v = values.split_whitespace();
            let (Some(proto), Some(_)) = (n.next(), v.next()) else {
                continue;
            };
            for (name, value) in n.zip(v) {
                if let Ok(x) = value.parse() {
                    out.insert(format!("{proto}{name}"), x);
                }
            }
        }
    }
    out.extend(parse_pairs(xfrm));
    out
}

/// A `name value` file: `/proc/net/xfrm_stat`, `/proc/net/snmp6`.
fn parse_pairs(text: &str) -> Counters {
    let mut out = Counters::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if let (Some(name), Some(Ok(x))) = (w.next(), w.next().map(str::parse)) {
            out.insert(name.to_string(), x);
        }
    }
    out
}

/// The counters that grew between `before` and `after` and mean a drop,
/// each with its explanation.
pub fn drops(before: &Counters, after: &Counters) -> Vec<(String, u64, &'static str)> {
    let mut out = Vec::new();
    for (name, a) in after {
        let d = a.saturating_sub(before.get(name).copied().unwrap_or(0));
        if d == 0 {
            continue;
        }
        if let Some((_, what)) = SNMP.iter().chain(SNMP6).find(|(n, _)| n == name) {
            out.push((name.clone(), d, *what));
        } else if name.starts_with("Xfrm") {
            out.push((name.clone(), d, "IPsec (XFRM) packets dropped"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_pairs_and_xfrm_lines_are_read_and_only_drops_reported() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors InCsumErrors\nUdp: 10 2 3 3\n";
        let xfrm = "XfrmInError             \t0\nXfrmInNoStates          \t4\n";
        let before = parse(snmp, xfrm);
        assert_eq!(before["Udp:InCsumErrors"], 3);
        assert_eq!(before["XfrmInNoStates"], 4);
        let after = parse(
            &snmp.replace("10 2 3 3", "20 9 6 6"),
            &xfrm.replace('4', "7"),
        );
        let d = drops(&before, &after);
        let names: Vec<&str> = d.iter().map(|x| x.0.as_str()).collect();
        // NoPorts and InDatagrams grow in normal traffic: not drops.
        assert_eq!(
            names,
            ["Udp:InCsumErrors", "Udp:InErrors", "XfrmInNoStates"]
        );
        assert_eq!(d[0].1, 3);
        let six = "Ip6InReceives                   \t10\nIp6InNoRoutes                   \t0\nIp6InTooBigErrors               \t1\n";
        let (a, b) = (
            parse_pairs(six),
            parse_pairs(&six.replace("\t0", "\t3").replace("\t10", "\t20")),
        );
        let d = drops(&a, &b);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].0.as_str(), d[0].1), ("Ip6InNoRoutes", 3));
    }
}
