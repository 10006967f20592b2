//! Whether an outcome's diagnosis contradicts itself: a "dropped at X"
//! line for packets that the hops show leaving X, or that a node beyond X
//! counted on arrival; a "delivered to X" line for packets that left X; a
//! cause its own SA state rules out. The test suite runs this over every
//! bundled outcome (the snapshots); a contradiction is a bug in the
//! diagnosis.

use strum::IntoEnumIterator;

use super::Outcome;
use crate::capture::path;
use crate::model::{Cause, Class};

/// What a diagnosis line says happened to a class at a node.
struct Stop<'a> {
    class: Class,
    at: &'a str,
    /// The neighbours it never left toward (empty: any).
    toward: Vec<&'a str>,
    /// The neighbour it came from, for a "delivered" line.
    from: &'a str,
    delivered: bool,
}

/// Read a "dropped at" or "delivered to" line of the path's diagnosis.
fn stop(line: &str) -> Option<Stop<'_>> {
    let class = Class::iter().find(|c| line.starts_with(&format!("{} left ", c.describe())))?;
    let rest = &line[class.describe().len() + " left ".len()..];
    let (from, rest) = rest.split_once(" and reached ")?;
    let from = from.split([' ', ',']).next().unwrap_or(from);
    if let Some((_, at)) = rest.rsplit_once(": dropped at ") {
        let toward = rest
            .split_once(" toward ")
            .map(|(_, t)| t.split_once(':').map_or(t, |x| x.0))
            .map(|t| t.split(", ").collect())
            .unwrap_or_default();
        return Some(Stop {
            class,
            at,
            toward,
            from,
            delivered: false,
        });
    }
    let (_, at) = rest.rsplit_once(": delivered to ")?;
    let at = at.split(',').next()?;
    Some(Stop {
        class,
        at,
        toward: vec![],
        from,
        delivered: true,
    })
}

/// Counters at a receiving node that mean packets of `class` arrived there.
fn arrival_counters(class: Class) -> &'static [&'static str] {
    match class {
        Class::CheckClear => &["XfrmInTmplMismatch", "XfrmInNoPols"],
        Class::Esp | Class::EspInUdp => &[
            "XfrmInNoStates",
            "XfrmInStateMismatch",
            "XfrmInStateProtoError",
        ],
        Class::Ike4500 => &["Udp:InCsumErrors"],
        _ => &[],
    }
}

/// Every contradiction in `o`'s diagnosis, each said in a sentence.
pub fn contradictions(o: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    let Some(p) = &o.path else {
        return out;
    };
    let counted: Vec<(&str, &str)> = p
        .diagnosis
        .iter()
        .filter_map(|l| Some((l.split_once(": ")?.0, path::counter_of(l)?)))
        .collect();
    for line in &p.diagnosis {
        let Some(s) = stop(line) else { continue };
        for h in &p.hops {
            let Some((a, b)) = h.hop.split_once(" -> ") else {
                continue;
            };
            let beyond = if s.delivered {
                b != s.from
            } else {
                s.toward.is_empty() || s.toward.contains(&b)
            };
            if a == s.at && beyond && h.packets.contains_key(&s.class) {
                out.push(format!("{line:?}, yet {} crossed {}", s.class, h.hop));
            }
        }
        if !s.delivered {
            for (node, name) in &counted {
                let beyond = s.toward.contains(node);
                if beyond && arrival_counters(s.class).contains(name) {
                    out.push(format!("{line:?}, yet {node} counted {name}"));
                }
            }
        }
    }
    out.extend(cause_against_state(o));
    out
}

/// A cause its own SA state rules out: IKE blocked, yet an IKE SA
/// established; ESP dropped, yet no IKE SA.
fn cause_against_state(o: &Outcome) -> Option<String> {
    let c = o.cause.as_ref()?.id;
    let ike_up = o
        .endpoints
        .iter()
        .any(|e| e.state.ike.as_ref().is_some_and(|i| i.is_up()));
    let blocked = matches!(
        c,
        Cause::Udp500Blocked | Cause::Udp4500Blocked | Cause::IkeFragmentsDropped
    );
    if blocked && ike_up {
        return Some(format!("cause {c}, yet an IKE SA was established"));
    }
    if c == Cause::EspDropped && !ike_up {
        return Some(format!("cause {c}, yet no IKE SA was established"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_back() {
        let s = stop("check traffic in clear text left client (3) and reached gw but never left gw toward server: dropped at gw").unwrap();
        assert_eq!(
            (s.class, s.at, s.toward, s.from, s.delivered),
            (Class::CheckClear, "gw", vec!["server"], "client", false)
        );
        let s = stop("GRE (IP protocol 47) left server and reached gw, addressed to gw itself, and no translation of gw's passed them on: delivered to gw, not forwarded").unwrap();
        assert_eq!(
            (s.class, s.at, s.from, s.delivered),
            (Class::Gre, "gw", "server", true)
        );
        let s = stop("ESP in UDP 4500 left a (2), b (1) and reached r but never left r toward c, d: dropped at r").unwrap();
        assert_eq!(s.toward, ["c", "d"]);
        assert!(stop("gw sent ICMP errors toward server").is_none());
    }

    #[test]
    fn a_drop_beside_its_own_arrival_is_a_contradiction() {
        let yaml = r#"
cell: t
axes: {}
verdict: fail
backend: kernel-libipsec
expected: { checks: {} }
path:
  hops:
    - { hop: "client -> gw", ifaces: "a -> b", packets: { check-clear: 3 } }
    - { hop: "gw -> server", ifaces: "c -> d", packets: {} }
  diagnosis:
    - "check traffic in clear text left client (3) and reached gw but never left gw toward server: dropped at gw"
    - "server: the kernel counted 3 IPsec (XFRM) packets dropped (XfrmInTmplMismatch)"
"#;
        let o: Outcome = serde_yaml_ng::from_str(yaml).unwrap();
        let c = contradictions(&o);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].ends_with("yet server counted XfrmInTmplMismatch"));
        let mut fixed = o.clone();
        fixed.path.as_mut().unwrap().diagnosis.pop();
        assert!(contradictions(&fixed).is_empty());
        fixed.path.as_mut().unwrap().hops[1]
            .packets
            .insert(Class::CheckClear, path::Count::Exact(3));
        assert_eq!(contradictions(&fixed).len(), 1);
    }
}
