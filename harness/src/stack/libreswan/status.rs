//! What pluto and the kernel report, parsed: `whack --showstates`,
//! `whack --trafficstatus`, `ip xfrm state` and pluto's debug log.

use ipnet::IpNet;

use crate::model::SaState;

/// One line of `whack --showstates`: a state's number, the remote port and
/// the state name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownState {
    /// Serial number (`#2`).
    pub serial: u64,
    /// The connection instance (`"vpnlab"[2]`): a responder's template
    /// connection has one per peer.
    pub instance: Instance,
    /// The remote IKE address pluto talks to.
    pub remote: String,
    /// The remote IKE port pluto talks to.
    pub remote_port: u16,
    /// e.g. `STATE_V2_ESTABLISHED_IKE_SA`.
    pub name: String,
    /// The line has the tunnel-mode pseudo-SA (`tun.0@`).
    pub tunnel: bool,
    /// A CHILD SA's IKE SA (`IKE SA #1`, IKEv1 `ISAKMP SA #1`): narrowing
    /// puts the CHILD SA in an instance of its own.
    pub parent: Option<u64>,
}

/// Parse `whack --showstates`: the first line per state carries
/// `"conn"[instance] addr:port STATE_NAME (story)`; a second line for
/// established CHILD SAs lists the SAs (with `tun.0@…` in tunnel mode).
pub fn parse_showstates(text: &str) -> Vec<ShownState> {
    let mut out: Vec<ShownState> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start_matches(|c: char| c.is_ascii_digit()).trim();
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((serial, rest)) = rest.split_once(':') else {
            continue;
        };
        let Ok(serial) = serial.parse::<u64>() else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if let Some(pos) = words
            .iter()
            .position(|w| w.starts_with("STATE_"))
            .filter(|p| *p > 0)
        {
            let peer = words[pos - 1].trim_end_matches("(tcp)");
            let (addr, port) = peer.rsplit_once(':').unwrap_or((peer, ""));
            // A connection that is no template names no address:
            // `"vpnlab":4500`.
            let addr = if addr.starts_with('"') { "" } else { addr };
            out.push(ShownState {
                serial,
                instance: instance(&words),
                remote: addr
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                remote_port: port.parse().unwrap_or(0),
                name: words[pos].to_string(),
                tunnel: false,
                parent: parent(rest),
            });
        } else if words.iter().any(|w| w.starts_with("tun.")) {
            if let Some(s) = out.iter_mut().rev().find(|s| s.serial == serial) {
                s.tunnel = true;
            }
        }
    }
    out
}

/// The serial after `IKE SA #` or `ISAKMP SA #` in a state's story.
fn parent(story: &str) -> Option<u64> {
    let (_, after) = story
        .split_once("IKE SA #")
        .or_else(|| story.split_once("ISAKMP SA #"))?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A connection instance, `"vpnlab"[2]`: the connection's name (a
/// responder for both IKE versions has one per version) and the
/// instance's number (a template connection has one per peer).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instance {
    /// `vpnlab`.
    pub conn: String,
    /// `2`; none for a connection that is no template.
    pub n: Option<u32>,
}

/// The instance of `"conn"[N]`, the first word of a status line.
fn instance(words: &[&str]) -> Instance {
    let w = words.first().copied().unwrap_or_default();
    let w = w.trim_end_matches(':');
    let conn = w.split('"').nth(1).unwrap_or_default().to_string();
    let n = w
        .rsplit_once('[')
        .and_then(|(_, n)| n.strip_suffix(']')?.parse().ok());
    Instance { conn, n }
}

/// One CHILD SA of `whack --trafficstatus`: its serial and the address a
/// Mode Config client was leased (either end reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    /// Serial number of the CHILD SA.
    pub serial: u64,
    /// `lease=10.3.0.1/32`, as a prefix.
    pub lease: Option<ipnet::IpNet>,
}

/// Parse `whack --trafficstatus`: `#2: "conn"[1] peer, type=ESP, …,
/// id='@carol', lease=10.3.0.1/32`. Only lines with a `type=` field count,
/// so the text may also hold `--showstates`' lines (`#2: … STATE_…`):
/// one whack asks for both.
pub fn parse_trafficstatus(text: &str) -> Vec<Traffic> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start_matches(|c: char| c.is_ascii_digit()).trim();
            let (serial, rest) = line.strip_prefix('#')?.split_once(':')?;
            let fields: Vec<&str> = rest.split(", ").map(str::trim).collect();
            if !fields.iter().any(|f| f.starts_with("type=")) {
                return None;
            }
            let lease = fields
                .iter()
                .find_map(|f| f.strip_prefix("lease="))
                .and_then(|l| l.parse().ok());
            Some(Traffic {
                serial: serial.parse().ok()?,
                lease,
            })
        })
        .collect()
}

/// The negotiated algorithms `whack --status` lists per connection
/// instance: `"vpnlab"[1] …:   IKEv2 algorithm newest:
/// AES_CBC_256-HMAC_SHA2_256-MODP2048` and `ESP algorithm newest: …`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Algorithms {
    /// The IKE SA's, by instance.
    pub ike: Vec<(Instance, String)>,
    /// The CHILD SA's, by instance (`; pfsgroup=` is kept).
    pub child: Vec<(Instance, String)>,
}

/// Parse the algorithm lines of `whack --status`.
pub fn parse_algorithms(text: &str) -> Algorithms {
    let mut out = Algorithms::default();
    for line in text.lines() {
        let line = line.trim_start_matches(|c: char| c.is_ascii_digit()).trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((head, algs)) = line.split_once(" algorithm newest: ") else {
            continue;
        };
        let which = head.rsplit(' ').next().unwrap_or_default();
        let entry = (instance(&words), algs.trim().to_string());
        match which {
            "IKEv1" | "IKEv2" | "IKE" => out.ike.push(entry),
            "ESP" | "AH" => out.child.push(entry),
            _ => {}
        }
    }
    out
}

/// The remote selector of each connection instance `whack --status`
/// lists: `"vpnlab"[1]: 10.10.2.1/32===203.0.113.2[@moon]...203.0.113.1[@carol]===10.10.1.1/32; …`
/// (a narrowed instance shows its peer's).
pub fn parse_remote_subnets(text: &str) -> Vec<(Instance, IpNet)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start_matches(|c: char| c.is_ascii_digit()).trim();
        let Some((head, spd)) = line.split_once(": ") else {
            continue;
        };
        let Some((_, remote)) = spd.split_once("...") else {
            continue;
        };
        let remote = remote.split(';').next().unwrap_or_default();
        if let Some(net) = remote
            .split_once("===")
            .and_then(|(_, n)| n.trim().parse().ok())
        {
            out.push((instance(&[head]), net));
        }
    }
    out
}

/// A CHILD (IPsec) SA state rather than an IKE SA state.
pub(super) fn is_child_state(name: &str) -> bool {
    name.starts_with("STATE_QUICK") || name.contains("CHILD")
}

/// Established states, in the vocabulary strongSwan's driver reports.
pub(super) fn normalize_state(name: &str) -> SaState {
    match name {
        "STATE_V2_ESTABLISHED_IKE_SA"
        | "STATE_MAIN_I4"
        | "STATE_MAIN_R3"
        | "STATE_AGGR_I2"
        | "STATE_AGGR_R2" => SaState::Established,
        "STATE_V2_ESTABLISHED_CHILD_SA" | "STATE_QUICK_I2" | "STATE_QUICK_R2" => SaState::Installed,
        other => SaState::Other(other.trim_start_matches("STATE_").to_string()),
    }
}

/// One ESP/AH state of the kernel (`ip xfrm state`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XfrmState {
    /// Outer source address.
    pub src: String,
    /// Outer destination address.
    pub dst: String,
    /// `esp` or `ah`.
    pub proto: String,
    /// `tunnel` or `transport`.
    pub mode: String,
    /// ESP in UDP (`encap type espinudp`).
    pub udp_encap: bool,
}

/// Parse `ip xfrm state` output.
pub fn parse_xfrm_states(text: &str) -> Vec<XfrmState> {
    let mut out: Vec<XfrmState> = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first() {
            Some(&"src") if !line.starts_with(char::is_whitespace) => {
                out.push(XfrmState {
                    src: w.get(1).unwrap_or(&"").to_string(),
                    dst: w.get(3).unwrap_or(&"").to_string(),
                    ..Default::default()
                });
            }
            Some(&"proto") => {
                if let Some(s) = out.last_mut() {
                    s.proto = w.get(1).unwrap_or(&"").to_string();
                    if let Some(i) = w.iter().position(|x| *x == "mode") {
                        s.mode = w.get(i + 1).unwrap_or(&"").to_string();
                    }
                }
            }
            Some(&"encap") => {
                if let Some(s) = out.last_mut() {
                    s.udp_encap = w.get(2) == Some(&"espinudp");
                }
            }
            _ => {}
        }
    }
    out
}

/// What pluto's debug log says about the newest IKE exchange.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogFacts {
    /// Local `addr:port` of the last IKE message sent.
    pub local: Option<(String, String)>,
    /// Remote `addr:port` of the last IKE message sent.
    pub remote: Option<(String, String)>,
    /// NAT-D: this end is behind NAT.
    pub nat_local: bool,
    /// NAT-D: the peer is behind NAT.
    pub nat_remote: bool,
    /// `encapsulation=yes`: NAT assumed, not detected.
    pub nat_fake: bool,
}

/// Read [`LogFacts`] from pluto's log (debug lines start with `| `).
pub fn parse_log(text: &str) -> LogFacts {
    let mut f = LogFacts::default();
    // `192.0.2.1:500`, or `[2001:db8::1]:500`: the address without its
    // brackets, as `ip xfrm state` prints it.
    let split = |ep: &str| {
        ep.rsplit_once(':').map(|(a, p)| {
            let a = a.trim_start_matches('[').trim_end_matches(']');
            (a.to_string(), p.to_string())
        })
    };
    for line in text.lines() {
        let line = line.trim_start_matches("| ");
        if line.contains("NAT_TRAVERSAL this end is behind NAT") {
            f.nat_local = true;
        } else if line.contains("NAT_TRAVERSAL that end is behind NAT") {
            f.nat_remote = true;
        } else if line.contains("NAT_TRAVERSAL local policy enforces encapsulation") {
            f.nat_fake = true;
        } else if line.starts_with("sending ") && line.contains(" through ") {
            // sending N bytes for WHAT through IFACE from A:P to B:Q using
            // UDP (for #S). WHAT is free text ("reply packet from
            // quick_outI1", "retransmit in response to duplicate"), so the
            // addresses are read backwards from `using`.
            let w: Vec<&str> = line.split_whitespace().collect();
            if let Some(u) = w.iter().rposition(|x| *x == "using").filter(|u| *u >= 4) {
                if w[u - 4] == "from" && w[u - 2] == "to" {
                    f.local = split(w[u - 3]);
                    f.remote = split(w[u - 1]);
                }
            }
        }
    }
    f
}

/// A whack line without its status code, connection and state prefix, or
/// the details in braces: `003 "vpnlab"[1] 192.0.2.1 #2: text {…}` → `text`.
pub fn message(line: &str) -> &str {
    let body = line.trim_start_matches(|c: char| c.is_ascii_digit()).trim();
    let msg = match body.find(": ") {
        Some(i) if body.starts_with('"') => &body[i + 2..],
        _ => body,
    };
    match msg.find(" {") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// `msg` without the times that change from run to run or from way to way:
/// the state's age pluto gives when it deletes one (`deleting state
/// (STATE_V2_PARENT_I2) aged 8.66s and …`), and the seconds of a
/// retransmission timeout (`6 second timeout exceeded`), which are
/// vpnlab's timers for the machine that ran the cell, not the scenario's.
pub fn timeless(msg: &str) -> String {
    secondless(&ageless(msg))
}

fn ageless(msg: &str) -> String {
    let Some(i) = msg.find(" aged ") else {
        return msg.to_string();
    };
    let rest = &msg[i + " aged ".len()..];
    let secs = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|&n| n > 0 && rest[n..].starts_with('s'));
    match secs {
        Some(n) => format!("{}{}", &msg[..i], &rest[n + 1..]),
        None => msg.to_string(),
    }
}

/// `N second timeout exceeded` for any number of seconds.
fn secondless(msg: &str) -> String {
    const TAIL: &str = " second timeout exceeded";
    let Some(i) = msg.find(TAIL) else {
        return msg.to_string();
    };
    let start = msg[..i]
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .len();
    if start == i {
        return msg.to_string();
    }
    format!("{}N{}", &msg[..start], &msg[i..])
}

/// Keep whack's lines that explain an exchange and are the same on every
/// run: without the connection/state prefix, SPIs or algorithm details, and
/// without the announcements of single retransmissions (whether one happens
/// depends on how fast the peer answered; a timeout that ends the exchange
/// is kept).
pub fn notable(line: &str) -> Option<String> {
    let msg = message(line);
    const KEEP: [&str; 11] = [
        "established",
        "NAT",
        "failed",
        "rejected",
        "NO_PROPOSAL_CHOSEN",
        "AUTHENTICATION_FAILED",
        "TS_UNACCEPTABLE",
        "INVALID_",
        "timeout",
        "giving up",
        "no acceptable",
    ];
    let unstable = ["SPI", "0x", "retransmission; will wait"];
    (KEEP.iter().any(|k| msg.contains(k)) && !unstable.iter().any(|u| msg.contains(u)))
        .then(|| timeless(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showstates_give_states_ports_and_tunnel_mode() {
        let text = r#"000 #1: "vpnlab"[1] 192.168.1.2:4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); EXPIRE in 28797s; newest; idle;
000 #2: "vpnlab"[1] 192.168.1.2:4500 STATE_V2_ESTABLISHED_CHILD_SA (established Child SA); newest; eroute owner; IKE SA #1; idle;
000 #2: "vpnlab"[1] 192.168.1.2 esp.dc820d3b@192.168.1.2 esp.aa0d5fbe@203.0.113.2 tun.0@192.168.1.2 tun.0@203.0.113.2 Traffic: ESPin=264B ESPout=0B ESPmax=2^63B
"#;
        let s = parse_showstates(text);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].serial, s[0].remote_port), (1, 4500));
        assert_eq!(
            (s[0].instance.n, s[0].remote.as_str()),
            (Some(1), "192.168.1.2")
        );
        let r = parse_remote_subnets("000 \"vpnlab\"[2]: 10.10.2.1/32===203.0.113.2[@moon]...203.0.113.1[@dave]===10.10.1.2/32; erouted; eroute owner: #4\n000 \"vpnlab\": 10.10.2.1/32===203.0.113.2[@moon]...%any[%any]===10.10.1.0/30; unrouted; eroute owner: #0\n000 \"vpnlab\"[1]:   IKEv2 algorithm newest: AES_GCM_16_256-HMAC_SHA2_512-MODP2048\n");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0.n, Some(2));
        assert_eq!(r[0].1, "10.10.1.2/32".parse::<IpNet>().unwrap());
        assert_eq!(
            ageless(
                "deleting state (STATE_V2_PARENT_I2) aged 8.825763s and NOT sending notification"
            ),
            "deleting state (STATE_V2_PARENT_I2) and NOT sending notification"
        );
        assert_eq!(ageless("aged well"), "aged well");
        // The seconds are the timers of the way the cell ran.
        assert_eq!(
            timeless("STATE_V2_PARENT_I1: 6 second timeout exceeded after 2 retransmits."),
            "STATE_V2_PARENT_I1: N second timeout exceeded after 2 retransmits."
        );
        assert_eq!(
            timeless("a second timeout exceeded"),
            "a second timeout exceeded"
        );
        // A responder's two connections (one per IKE version) are told apart.
        let twins = parse_showstates("000 #1: \"vpnlab\"[1] 192.168.1.2:4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA);\n000 #2: \"vpnlab-ikev1\"[1] 192.168.1.2:4500 STATE_MAIN_R3 (ISAKMP SA established);\n");
        assert_eq!(twins[0].instance.conn, "vpnlab");
        assert_eq!(twins[1].instance.conn, "vpnlab-ikev1");
        assert_ne!(twins[0].instance, twins[1].instance);
        let t = parse_showstates("000 #1: \"vpnlab\":4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); REKEY in 28000s; newest; idle;\n");
        assert_eq!(
            (t[0].instance.n, t[0].remote.as_str(), t[0].remote_port),
            (None, "", 4500)
        );
        assert_eq!(normalize_state(&s[0].name), SaState::Established);
        assert!(is_child_state(&s[1].name) && s[1].tunnel && !s[0].tunnel);
        assert_eq!((s[0].parent, s[1].parent), (None, Some(1)));
        assert_eq!(normalize_state(&s[1].name), SaState::Installed);
        assert_eq!(normalize_state("STATE_QUICK_R2"), SaState::Installed);
        assert_eq!(
            normalize_state("STATE_MAIN_I1"),
            SaState::Other("MAIN_I1".into())
        );
        assert!(!is_child_state("STATE_MAIN_I4"));
    }

    #[test]
    fn ipv6_endpoints_in_the_log_match_the_kernel_states() {
        let f = parse_log("| sending 300 bytes for STATE_V2_PARENT_I2 through to-r6 from [2001:db8:1::2]:4500 to [2001:db8:2::2]:4500 using UDP (for #1)\n");
        assert_eq!(f.remote, Some(("2001:db8:2::2".into(), "4500".into())));
        assert_eq!(f.local, Some(("2001:db8:1::2".into(), "4500".into())));
        let x = parse_xfrm_states("src 2001:db8:1::2 dst 2001:db8:2::2\n\tproto esp spi 0x1(1) reqid 1(0x1) mode tunnel\n\tencap type espinudp sport 4500 dport 4500 addr ::\n");
        assert_eq!(x[0].dst, "2001:db8:2::2");
        assert!(x[0].udp_encap);
    }

    #[test]
    fn kernel_states_and_debug_log_give_encapsulation_nat_and_endpoints() {
        let x = parse_xfrm_states(
            "src 192.168.1.2 dst 203.0.113.2\n\tproto esp spi 0x1(1) reqid 1(0x1) mode tunnel\n\treplay-window 0\n\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0\nsrc 203.0.113.2 dst 192.168.1.2\n\tproto esp spi 0x2(2) reqid 1(0x1) mode transport\n",
        );
        assert_eq!(x.len(), 2);
        assert!(x[0].udp_encap && !x[1].udp_encap);
        assert_eq!(
            (x[0].mode.as_str(), x[1].mode.as_str()),
            ("tunnel", "transport")
        );
        assert_eq!(x[1].src, "203.0.113.2");
        let f = parse_log(
            "| NAT_TRAVERSAL this end is behind NAT\n| sending 540 bytes for STATE_V2_PARENT_I1 through to-gw from 192.168.1.2:500 to 203.0.113.2:500 using UDP (for #1)\n| sending 300 bytes for STATE_V2_PARENT_I2 through to-gw from 192.168.1.2:4500 to 203.0.113.2:4500 using UDP (for #1)\n",
        );
        assert!(f.nat_local && !f.nat_remote && !f.nat_fake);
        assert_eq!(f.local, Some(("192.168.1.2".into(), "4500".into())));
        assert_eq!(f.remote, Some(("203.0.113.2".into(), "4500".into())));
        assert!(parse_log("| NAT_TRAVERSAL local policy enforces encapsulation\n").nat_fake);
        // The free text before `through` may hold "from" and "to" too.
        let g = parse_log(
            "| sending 188 bytes for reply packet from quick_outI1 through to-gw from 192.168.1.2:500 to 203.0.113.2:500 using UDP (for #2)\n| sending 76 bytes for retransmit in response to duplicate through to-gw from 192.168.1.2:500 to 203.0.113.2:500 using UDP (for #2)\n",
        );
        assert_eq!(g.local, Some(("192.168.1.2".into(), "500".into())));
        assert_eq!(g.remote, Some(("203.0.113.2".into(), "500".into())));
    }

    #[test]
    fn whack_lines_lose_their_prefix_and_unstable_details() {
        assert_eq!(
            notable(
                r#"003 "vpnlab"[1] 192.0.2.1 #1: responder established IKE SA; authenticated peer"#
            )
            .as_deref(),
            Some("responder established IKE SA; authenticated peer")
        );
        assert_eq!(
            notable(
                r#"004 "vpnlab" #2: IPsec SA established transport mode {ESP=>0x1234 <0x5678}"#
            )
            .as_deref(),
            Some("IPsec SA established transport mode")
        );
        assert_eq!(
            notable(r#"181 "vpnlab" #1: sent IKE_SA_INIT request to 203.0.113.2:500"#),
            None
        );
        // Whether a retransmission happens depends on timing.
        assert_eq!(
            notable(
                r#"010 "vpnlab" #2: STATE_QUICK_I1: retransmission; will wait 2 seconds for response"#
            ),
            None
        );
    }

    #[test]
    fn traffic_status_and_status_give_leases_and_algorithms() {
        let t = parse_trafficstatus("006 #2: \"vpnlab\"[1] 203.0.113.1, type=ESP, add_time=1234567890, inBytes=84, outBytes=84, maxBytes=2^63B, id='@carol.vpnlab.test', lease=10.3.0.1/32\n006 #4: \"vpnlab\"[2] 203.0.113.1, type=ESP, add_time=1, inBytes=0, outBytes=0, id='@dave.vpnlab.test'\n");
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].serial, t[0].lease),
            (2, Some("10.3.0.1/32".parse().unwrap()))
        );
        assert_eq!((t[1].serial, t[1].lease), (4, None));
        // Beside `--showstates`' lines (one whack asks for both), only the
        // traffic lines count.
        let both = "#1: \"vpnlab\"[1] 203.0.113.1:4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); newest;\n#2: \"vpnlab\"[1] 203.0.113.1:4500 STATE_V2_ESTABLISHED_CHILD_SA (established Child SA); newest; eroute owner;\n#2: \"vpnlab\"[1] 203.0.113.1, type=ESP, add_time=1, inBytes=0, outBytes=0, id='@carol', lease=10.3.0.1/32\n";
        let t = parse_trafficstatus(both);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].serial, t[0].lease),
            (2, Some("10.3.0.1/32".parse().unwrap()))
        );
        assert_eq!(parse_showstates(both).len(), 2);
        let a = parse_algorithms("000 \"vpnlab\"[1] 203.0.113.1:   IKEv2 algorithm newest: AES_CBC_256-HMAC_SHA2_256-MODP2048\n000 \"vpnlab\"[1] 203.0.113.1:   ESP algorithm newest: AES_CBC_128-HMAC_SHA2_256_128; pfsgroup=<Phase1>\n000 \"vpnlab\":   ESP algorithm wanted: AES_CBC_128\n");
        assert_eq!(
            a.ike,
            vec![(
                Instance {
                    conn: "vpnlab".into(),
                    n: Some(1)
                },
                "AES_CBC_256-HMAC_SHA2_256-MODP2048".to_string()
            )]
        );
        assert_eq!(
            a.child[0].1,
            "AES_CBC_128-HMAC_SHA2_256_128; pfsgroup=<Phase1>"
        );
    }
}
