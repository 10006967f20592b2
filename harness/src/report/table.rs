//! The results table: one row per cell (expected, observed, verdict,
//! time), then what explains each cell that did not pass, hop by hop.

use std::io::Write;

use crate::cell::CellReport;
use crate::model::Verdict;
use crate::outcome::expected_summary;

/// Print the results table: one row per cell, then the details of every
/// cell that did not pass (and, with `explain`, the path of every cell).
pub fn table(out: &mut dyn Write, cells: &[CellReport], explain: bool) -> std::io::Result<()> {
    let rows: Vec<[String; 5]> = cells
        .iter()
        .map(|c| {
            [
                c.outcome.cell.clone(),
                expected_summary(&c.outcome.expected),
                c.outcome.observed_summary(),
                c.outcome.verdict.label().to_string(),
                format!("{:.2}s", c.elapsed_ms as f64 / 1000.0),
            ]
        })
        .collect();
    let head = ["CELL", "EXPECTED", "OBSERVED", "VERDICT", "TIME"];
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |out: &mut dyn Write, r: &[String]| {
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {:>w4$}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3],
            w4 = w[4]
        )
    };
    line(out, &head.map(String::from))?;
    for r in &rows {
        line(out, r)?;
    }
    for c in cells {
        details(out, c, explain)?;
    }
    pcap_files(out, cells)?;
    summary(out, cells)
}

/// What a cell's row cannot say: why it did not pass (or, with
/// `explain`, its path).
fn details(out: &mut dyn Write, c: &CellReport, explain: bool) -> std::io::Result<()> {
    let o = &c.outcome;
    match o.verdict {
        Verdict::Pass if explain => {
            writeln!(out, "\nPASS {}", o.cell)?;
            cause(out, c)?;
            path(out, c)
        }
        Verdict::Pass => Ok(()),
        Verdict::Unsupported | Verdict::Error | Verdict::Skipped => writeln!(
            out,
            "\n{} {}: {}",
            o.verdict.label(),
            o.cell,
            o.reason.as_deref().unwrap_or("")
        ),
        Verdict::Fail => failure(out, c),
    }
}

/// A failed cell: each mismatch, what the initiator and the PPP layer
/// said, and the path.
fn failure(out: &mut dyn Write, c: &CellReport) -> std::io::Result<()> {
    let o = &c.outcome;
    writeln!(out, "\nFAIL {} ({})", o.cell, c.file.display())?;
    for m in &o.mismatches {
        writeln!(out, "  - {m}")?;
    }
    cause(out, c)?;
    for e in &o.endpoints {
        for l in &e.log {
            writeln!(out, "  {} log: {l}", e.node)?;
        }
    }
    for ch in o.checks.iter().filter(|c| c.error.is_some()) {
        writeln!(
            out,
            "  check {} could not run: {}",
            ch.name,
            ch.error.as_deref().unwrap_or("")
        )?;
    }
    if let Some(i) = &o.initiation {
        for l in &i.log {
            writeln!(out, "  initiator log: {l}")?;
        }
        if let Some(e) = &i.error {
            writeln!(out, "  initiator error: {e}")?;
        }
    }
    if let Some(r) = o.ppp.as_ref().and_then(|p| p.reason.as_ref()) {
        writeln!(out, "  ppp: {r}")?;
    }
    path(out, c)
}

/// The root cause, first: what the rest of the details show.
fn cause(out: &mut dyn Write, c: &CellReport) -> std::io::Result<()> {
    let Some(k) = &c.outcome.cause else {
        return Ok(());
    };
    writeln!(out, "  cause: {} ({})", k.id, k.id.describe())?;
    for e in &k.evidence {
        writeln!(out, "    because {e}")?;
    }
    Ok(())
}

fn pcap_files(out: &mut dyn Write, cells: &[CellReport]) -> std::io::Result<()> {
    for c in cells {
        for f in &c.pcap_files {
            if f == &c.pcap_files[0] {
                writeln!(out, "\npcap files of {}:", c.outcome.cell)?;
            }
            writeln!(out, "  {}", f.display())?;
        }
    }
    Ok(())
}

fn summary(out: &mut dyn Write, cells: &[CellReport]) -> std::io::Result<()> {
    let count = |v: Verdict| cells.iter().filter(|c| c.outcome.verdict == v).count();
    writeln!(
        out,
        "\n{} {}: {} passed, {} failed, {} unsupported, {} skipped, {} errors",
        cells.len(),
        if cells.len() == 1 { "cell" } else { "cells" },
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Unsupported),
        count(Verdict::Skipped),
        count(Verdict::Error)
    )
}

/// The compact per-hop view of a cell: what crossed each link direction,
/// then the diagnosis.
fn path(out: &mut dyn Write, c: &CellReport) -> std::io::Result<()> {
    let Some(p) = &c.outcome.path else {
        if matches!(c.outcome.verdict, Verdict::Pass | Verdict::Fail) {
            writeln!(out, "  path: not captured (--no-capture)")?;
        }
        return Ok(());
    };
    writeln!(
        out,
        "  path (packets seen arriving; `seen`: count varies with timing):"
    )?;
    let w = p.hops.iter().map(|h| h.hop.len()).max().unwrap_or(0);
    for h in &p.hops {
        let classes: Vec<String> = h
            .packets
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    k,
                    serde_json::to_string(v)
                        .unwrap_or_default()
                        .trim_matches('"')
                )
            })
            .collect();
        writeln!(out, "    {:<w$}  {}", h.hop, classes.join(" "))?;
        for (k, v) in &h.lost {
            writeln!(
                out,
                "    {:<w$}  lost on the link: {}={}",
                "",
                k,
                serde_json::to_string(v).unwrap_or_default()
            )?;
        }
    }
    for t in &p.tunnels {
        let into = t
            .into_tunnel
            .map(|n| format!("into tunnel {n}, "))
            .unwrap_or_default();
        writeln!(
            out,
            "    {:<w$}  {into}out of tunnel {}",
            t.at, t.out_of_tunnel
        )?;
    }
    if p.diagnosis.is_empty() {
        writeln!(out, "  diagnosis: no packet stopped on the way")?;
    } else {
        writeln!(out, "  diagnosis:")?;
        for d in &p.diagnosis {
            writeln!(out, "    - {d}")?;
        }
    }
    for n in &p.capture_notes {
        writeln!(out, "  capture: {n}")?;
    }
    Ok(())
}
