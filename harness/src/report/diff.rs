//! What changed between two runs (`vpnlab diff OLD.json NEW.json`): "did
//! my change to the stack alter any outcome?" Per cell, the facts a stack
//! build can alter are compared: verdict, tunnel, encapsulation, each
//! end's NAT detection, checks, the PPP link, the diagnosis and the cause.
//! Stack versions, timings and packet counts are not: they change with
//! every build and every run.

use std::collections::BTreeMap;
use std::io::Write;

use crate::cell::CellReport;
use crate::model::Verdict;
use crate::outcome::Outcome;

/// How a cell's outcome moved between the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Movement {
    /// Its verdict is worse: a pass now fails or errors, a failure errors.
    Worse,
    /// Its verdict is better.
    Better,
    /// Same verdict, other facts.
    Changed,
    /// Only in the new run.
    Added,
    /// Only in the old run.
    Removed,
}

/// One cell that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The cell's name.
    pub cell: String,
    /// How it moved.
    pub movement: Movement,
    /// Each fact that differs: `fact: old -> new`.
    pub facts: Vec<String>,
}

/// The cells whose outcome differs, worst first, then by name.
pub fn compare(old: &[CellReport], new: &[CellReport]) -> Vec<Change> {
    let index = |cells: &[CellReport]| -> BTreeMap<String, Outcome> {
        cells
            .iter()
            .map(|c| (c.outcome.cell.clone(), c.outcome.clone()))
            .collect()
    };
    let (old, new) = (index(old), index(new));
    let mut out = Vec::new();
    for (cell, o) in &old {
        match new.get(cell) {
            None => out.push(Change {
                cell: cell.clone(),
                movement: Movement::Removed,
                facts: vec![format!("verdict: {}", o.verdict.label())],
            }),
            Some(n) => {
                let facts = differences(&facts(o), &facts(n));
                if !facts.is_empty() {
                    out.push(Change {
                        cell: cell.clone(),
                        movement: movement(o.verdict, n.verdict),
                        facts,
                    });
                }
            }
        }
    }
    for (cell, n) in new.iter().filter(|(c, _)| !old.contains_key(*c)) {
        out.push(Change {
            cell: cell.clone(),
            movement: Movement::Added,
            facts: vec![format!("verdict: {}", n.verdict.label())],
        });
    }
    out.sort_by(|a, b| (a.movement, &a.cell).cmp(&(b.movement, &b.cell)));
    out
}

/// Whether any cell got worse (what makes `vpnlab diff` exit 1).
pub fn worse(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.movement == Movement::Worse)
}

/// Error, then failure, then pass; a cell that did not run (unsupported,
/// skipped) has no rank: moving to or from it is a change, not better or
/// worse.
fn rank(v: Verdict) -> Option<u8> {
    match v {
        Verdict::Error => Some(0),
        Verdict::Fail => Some(1),
        Verdict::Pass => Some(2),
        Verdict::Unsupported | Verdict::Skipped => None,
    }
}

fn movement(old: Verdict, new: Verdict) -> Movement {
    match (rank(old), rank(new)) {
        (Some(a), Some(b)) if b < a => Movement::Worse,
        (Some(a), Some(b)) if b > a => Movement::Better,
        _ => Movement::Changed,
    }
}

/// The facts compared, by name (a set of diagnosis lines is one fact per
/// line, so that only the lines that came or went are listed).
fn facts(o: &Outcome) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let mut put = |k: String, v: String| {
        f.insert(k, v);
    };
    put("verdict".into(), o.verdict.label().into());
    if let Some(t) = o.tunnel {
        put("tunnel".into(), t.to_string());
    }
    if let Some(e) = o.encapsulation {
        put("encapsulation".into(), e.to_string());
    }
    for e in &o.endpoints {
        if let Some(ike) = &e.state.ike {
            let nat = format!("local {}, remote {}", ike.nat_local, ike.nat_remote);
            put(format!("NAT seen by {}", e.node), nat);
        }
    }
    let step_checks = o.steps.iter().flat_map(|s| &s.checks);
    for c in o.checks.iter().chain(step_checks) {
        put(format!("check {}", c.name), c.result.to_string());
    }
    if let Some(p) = &o.ppp {
        put("ppp".into(), p.state.to_string());
    }
    if let Some(c) = &o.cause {
        put("cause".into(), c.id.to_string());
    }
    for line in o.path.iter().flat_map(|p| &p.diagnosis) {
        put(format!("diagnosis: {line}"), "present".into());
    }
    f
}

/// `fact: old -> new` for each fact that differs (`–` where absent).
fn differences(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            let v = |m: &BTreeMap<String, String>| m.get(k).cloned().unwrap_or_else(|| "–".into());
            match k.strip_prefix("diagnosis: ") {
                Some(line) if old.contains_key(k) => format!("diagnosis line gone: {line}"),
                Some(line) => format!("diagnosis line new: {line}"),
                None => format!("{k}: {} -> {}", v(old), v(new)),
            }
        })
        .collect()
}

/// The changes as text, one cell per paragraph.
pub fn text(out: &mut dyn Write, changes: &[Change]) -> std::io::Result<()> {
    if changes.is_empty() {
        return writeln!(out, "no cell's outcome changed");
    }
    for c in changes {
        let m: &str = c.movement.into();
        writeln!(out, "{m:<8} {}", c.cell)?;
        for f in &c.facts {
            writeln!(out, "         {f}")?;
        }
    }
    writeln!(out, "\n{}", summary(changes))
}

/// The changes as Markdown, for a pull-request comment.
pub fn markdown(out: &mut dyn Write, changes: &[Change]) -> std::io::Result<()> {
    let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    writeln!(out, "**vpnlab diff:** {}\n", summary(changes))?;
    if changes.is_empty() {
        return Ok(());
    }
    writeln!(out, "| Cell | Change | What |")?;
    writeln!(out, "|---|---|---|")?;
    for c in changes {
        let m: &str = c.movement.into();
        writeln!(
            out,
            "| {} | {m} | {} |",
            esc(&c.cell),
            esc(&c.facts.join("; "))
        )?;
    }
    Ok(())
}

/// "2 worse, 1 changed" (or "no cell's outcome changed").
fn summary(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no cell's outcome changed".into();
    }
    let mut counts: BTreeMap<Movement, usize> = BTreeMap::new();
    for c in changes {
        *counts.entry(c.movement).or_default() += 1;
    }
    counts
        .iter()
        .map(|(m, n)| format!("{n} {}", <&str>::from(*m)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CheckExpect, TunnelExpect};

    /// A report entry read back from JSON, as `vpnlab diff` reads one.
    fn cell(name: &str, verdict: &str, ping: &str) -> CellReport {
        let json = serde_json::json!({
            "file": "t.toml",
            "elapsed_ms": 10,
            "phases": serde_json::to_value(crate::cell::Phases::default()).unwrap(),
            "outcome": {
                "cell": name, "axes": {}, "verdict": verdict, "backend": "kernel-libipsec",
                "expected": {"checks": {}}, "tunnel": "up",
                "checks": [{"name": "ping", "kind": "ping", "path": "a -> b",
                            "sent": 3, "received": 3, "result": ping}],
            }
        });
        serde_json::from_value(json).expect("a report entry")
    }

    #[test]
    fn an_unchanged_run_lists_nothing() {
        let run = vec![cell("s/a", "pass", "pass"), cell("s/b", "fail", "fail")];
        let changes = compare(&run, &run.clone());
        assert!(changes.is_empty(), "{changes:?}");
        assert!(!worse(&changes));
        let mut out = Vec::new();
        text(&mut out, &changes).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "no cell's outcome changed\n"
        );
    }

    #[test]
    fn a_cell_that_got_worse_fails_the_diff_and_names_what_changed() {
        let old = vec![cell("s/a", "pass", "pass")];
        let mut new = vec![cell("s/a", "fail", "fail")];
        new[0].outcome.tunnel = Some(TunnelExpect::Down);
        new[0].elapsed_ms = 99_999;
        let changes = compare(&old, &new);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].movement, Movement::Worse);
        assert_eq!(
            changes[0].facts,
            [
                "check ping: pass -> fail",
                "tunnel: up -> down",
                "verdict: PASS -> FAIL"
            ]
        );
        assert!(worse(&changes));
    }

    #[test]
    fn a_cell_that_got_better_does_not_fail_the_diff() {
        let old = vec![cell("s/a", "error", "fail")];
        let new = vec![cell("s/a", "pass", "pass")];
        let changes = compare(&old, &new);
        assert_eq!(changes[0].movement, Movement::Better);
        assert!(!worse(&changes));
        let mut out = Vec::new();
        markdown(&mut out, &changes).unwrap();
        let md = String::from_utf8(out).unwrap();
        assert!(md.starts_with("**vpnlab diff:** 1 better\n"), "{md}");
        assert!(
            md.contains("| s/a | better | check ping: fail -> pass; verdict: ERROR -> PASS |"),
            "{md}"
        );
    }

    #[test]
    fn added_and_removed_cells_are_listed_apart() {
        let old = vec![cell("s/a", "pass", "pass"), cell("s/gone", "pass", "pass")];
        let new = vec![cell("s/a", "pass", "pass"), cell("s/new", "fail", "fail")];
        let changes = compare(&old, &new);
        let moves: Vec<(&str, Movement)> = changes
            .iter()
            .map(|c| (c.cell.as_str(), c.movement))
            .collect();
        assert_eq!(
            moves,
            [("s/new", Movement::Added), ("s/gone", Movement::Removed)]
        );
        assert_eq!(changes[0].facts, ["verdict: FAIL"]);
        assert!(
            !worse(&changes),
            "a new cell has no old verdict to be worse than"
        );
    }

    #[test]
    fn versions_timings_and_counts_are_not_compared() {
        let old = vec![cell("s/a", "pass", "pass")];
        let mut new = old.clone();
        new[0].elapsed_ms = 5;
        new[0].outcome.checks[0].received = 2;
        assert!(compare(&old, &new).is_empty());
        // ... but a check's result is.
        new[0].outcome.checks[0].result = CheckExpect::Fail;
        assert_eq!(compare(&old, &new)[0].movement, Movement::Changed);
    }
}
