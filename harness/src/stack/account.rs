//! An endpoint's own account of a cell: the lines of its daemon's log that
//! say why an exchange failed (errors, notifications received and sent, SA
//! install failures), normalized so that a snapshot holds them byte for
//! byte: no times, threads, SPIs, state ages or NAT-chosen ports.
//!
//! The responder's account matters as much as the initiator's: often only
//! the responder knows why ("tried 1 shared key … but MAC mismatched",
//! "unable to install inbound and outbound IPsec SA").

/// What an account line must mention to be kept: the daemons' words for
/// a failure. Success and NAT detection are not kept (the initiation log
/// and the SA state say those).
const FAILURE: [&str; 28] = [
    "AUTHENTICATION_FAILED",
    "mismatched",
    "computed hash does not match",
    "no connection has been authorized",
    "NO_PROPOSAL_CHOSEN",
    "TS_UNACCEPTABLE",
    "INVALID_",
    "FAILED_CP_REQUIRED",
    "NO_ADDITIONAL_SAS",
    "SINGLE_PAIR_REQUIRED",
    "no matching peer config",
    "no IKE config found",
    "constraint checking failed",
    "no acceptable proposal",
    "no shared key found",
    "unacceptable",
    "unable to",
    "failed to establish",
    "giving up",
    "not authenticated",
    "no suitable connection",
    "authentication failed",
    "not trusted",
    "no trusted",
    "no issuer certificate",
    "issuer is",
    "certificate invalid",
    "SEC_ERROR_",
];

/// What disqualifies a line: unstable across runs, tidying up, or a
/// restarted charon finding its predecessor's routing rule.
const UNSTABLE: [&str; 8] = [
    "routing table rule",
    "SPI",
    "0x",
    "retransmission; will wait",
    "retransmit ",
    "deleting ",
    "loaded certificate",
    "sending cert",
];

/// Whether `msg` belongs in an account.
fn kept(msg: &str) -> bool {
    FAILURE.iter().any(|k| msg.contains(k)) && !UNSTABLE.iter().any(|u| msg.contains(u))
}

/// The account from charon's file log (`HH:MM:SS NN[GRP] message`).
pub fn charon(log: &str) -> Vec<String> {
    collect(log.lines().filter_map(|l| {
        let rest = l.split_once(' ')?.1;
        let (_, msg) = rest.split_once("] ")?;
        Some(msg)
    }))
}

/// The account from pluto's log: its own lines, not the debug lines (`| `),
/// without the connection and state prefix.
pub fn pluto(log: &str) -> Vec<String> {
    collect(
        log.lines()
            .filter(|l| !l.starts_with('|'))
            .map(|l| match l.find(": ") {
                Some(i) if l.starts_with('"') || l.starts_with("packet from") => &l[i + 2..],
                _ => l,
            }),
    )
}

/// The account a `command` stack wrote to `/run/account.log`, one line
/// each, kept as written (normalized only).
pub fn command(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        push(&mut out, normalize(l));
    }
    out
}

fn collect<'a>(msgs: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    // Trimmed: charon indents a line that continues the one before.
    for m in msgs.filter(|m| kept(m)) {
        push(&mut out, normalize(m.trim()));
    }
    out
}

/// Each line once, in the order first logged.
fn push(out: &mut Vec<String>, line: String) {
    if !out.contains(&line) {
        out.push(line);
    }
}

/// Without what changes from run to run: instance numbers of connections
/// and SAs (`vpnlab[3]`, `vpnlab{2}`, `#4`), ages (`aged 1.2s`), and ports
/// other than IKE's (`203.0.113.1[61023]`, `203.0.113.1:61023`), and a
/// certificate's validity dates.
pub fn normalize(msg: &str) -> String {
    let msg = dateless(&super::libreswan::timeless(msg));
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg.as_str();
    while let Some(c) = rest.chars().next() {
        let digits = |s: &str| s.chars().take_while(char::is_ascii_digit).count();
        let tail = &rest[c.len_utf8()..];
        let n = digits(tail);
        let closes = |close: char| n > 0 && tail[n..].starts_with(close);
        let after_addr = trailing_ip(&out);
        match c {
            '[' if closes(']') => {
                let port = &tail[..n];
                match (after_addr, matches!(port, "500" | "4500")) {
                    (true, true) => out.push_str(&rest[..n + 2]),
                    (true, false) => out.push_str("[ephemeral]"),
                    // An instance number (`vpnlab[1]`).
                    (false, _) => {}
                }
                rest = &tail[n + 1..];
            }
            '{' if closes('}') => rest = &tail[n + 1..],
            '#' if n > 0 => {
                out.push_str("#N");
                rest = &tail[n..];
            }
            ':' if n > 0 && after_addr && out.contains('.') && !tail[n..].starts_with('.') => {
                let port = &tail[..n];
                out.push(':');
                out.push_str(if matches!(port, "500" | "4500") {
                    port
                } else {
                    "ephemeral"
                });
                rest = &tail[n..];
            }
            _ => {
                out.push(c);
                rest = tail;
            }
        }
    }
    out
}

/// Without the dates of charon's "(valid from … to …)", which are the
/// run's.
fn dateless(msg: &str) -> String {
    const FROM: &str = "(valid from ";
    match msg.find(FROM) {
        Some(i) => match msg[i..].find(')') {
            Some(j) => format!(
                "{}(valid from <date> to <date>){}",
                &msg[..i],
                &msg[i + j + 1..]
            ),
            None => msg.to_string(),
        },
        None => msg.to_string(),
    }
}

/// Whether `out` ends with an IP address (what a port may follow).
fn trailing_ip(out: &str) -> bool {
    let start = out
        .rfind(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .map_or(0, |i| i + 1);
    out[start..].parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_dates_are_the_runs_so_they_go() {
        assert_eq!(
            normalize("subject certificate invalid (valid from Oct 26 18:01:24 2026 to Nov 25 18:01:24 2026)"),
            "subject certificate invalid (valid from <date> to <date>)"
        );
    }

    #[test]
    fn charon_keeps_failures_without_times_threads_or_instances() {
        let log = "\
14:30:01 06[IKE] remote host is behind NAT
14:30:01 06[IKE] tried 1 shared key for 'server.vpnlab.test' - 'client.vpnlab.test', but MAC mismatched
14:30:01 07[IKE] tried 1 shared key for 'server.vpnlab.test' - 'client.vpnlab.test', but MAC mismatched
14:30:02 11[CFG] no matching peer config found
14:30:02 01[IKE] CHILD_SA vpnlab{1} established with SPIs c237cbcc_i 2a7e3ff5_o
14:30:03 01[IKE] failed to establish CHILD_SA vpnlab{3}, keeping IKE_SA
";
        assert_eq!(
            charon(log),
            [
                "tried 1 shared key for 'server.vpnlab.test' - 'client.vpnlab.test', but MAC mismatched",
                "no matching peer config found",
                "failed to establish CHILD_SA vpnlab, keeping IKE_SA",
            ]
        );
    }

    #[test]
    fn pluto_lines_lose_their_prefix_and_nat_ports() {
        let log = "\
| debug line AUTHENTICATION_FAILED
\"vpnlab\"[1] 203.0.113.1 #1: responder: authentication failed, aged 2.5s
packet from 203.0.113.1:61023: INVALID_KE_PAYLOAD from 203.0.113.1:61023
\"vpnlab\"[1] 203.0.113.1 #2: IKE SA established
";
        assert_eq!(
            pluto(log),
            [
                "responder: authentication failed,",
                "INVALID_KE_PAYLOAD from 203.0.113.1:ephemeral",
            ]
        );
        assert_eq!(
            normalize("from 10.0.0.1[4500] to 10.0.0.2[61000] at 10:20"),
            "from 10.0.0.1[4500] to 10.0.0.2[ephemeral] at 10:20"
        );
        assert_eq!(normalize("state #12 of vpnlab[2]"), "state #N of vpnlab");
    }
}
