//! `vpnlab run --html FILE`: one self-contained page (no network access,
//! nothing fetched) for a reviewer: per scenario file a grid of its matrix
//! coloured by verdict, then per cell what was expected and observed, why
//! (the cause and the diagnosis), links to its pcap files and logs, and a
//! ladder diagram of its packets ([`ladder`]).
//!
//! The page is written from the batch report alone, so a report that came
//! back from a VM renders like one made here.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use crate::batch::Report;
use crate::cell::CellReport;
use crate::model::Verdict;
use crate::outcome::expected_summary;

mod ladder;

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("script.js");

/// The page for `report`, with links relative to `dir` (where the page is
/// written).
pub fn html(report: &Report, dir: &Path) -> String {
    let mut s = String::with_capacity(64 * 1024 + report.cells.len() * 8 * 1024);
    let n = report.cells.len();
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>vpnlab: {n} cells</title><style>{STYLE}</style></head>\n\
         <body data-cells=\"{n}\">\n"
    );
    header(&mut s, report);
    s.push_str(ladder::DEFS);
    for (file, cells) in by_file(&report.cells) {
        scenario(&mut s, &file, &cells, dir);
    }
    let _ = write!(s, "<script>{SCRIPT}</script>\n</body></html>\n");
    s
}

/// Cells grouped by scenario file, in report order; each with its index
/// in the report (its anchor).
fn by_file(cells: &[CellReport]) -> Vec<(PathBuf, Vec<(usize, &CellReport)>)> {
    let mut out: Vec<(PathBuf, Vec<(usize, &CellReport)>)> = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        match out.iter_mut().find(|(f, _)| *f == c.file) {
            Some((_, v)) => v.push((i, c)),
            None => out.push((c.file.clone(), vec![(i, c)])),
        }
    }
    out
}

/// Totals, the run's machine and the stack builds used.
fn header(s: &mut String, report: &Report) {
    let count = |v: Verdict| {
        report
            .cells
            .iter()
            .filter(|c| c.outcome.verdict == v)
            .count()
    };
    let _ = write!(
        s,
        "<header><h1>vpnlab report</h1><p class=\"sum\">{} cells: ",
        report.cells.len()
    );
    for v in [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Error,
        Verdict::Unsupported,
        Verdict::Skipped,
    ] {
        let _ = write!(
            s,
            "<span class=\"b v-{}\">{} {}</span> ",
            class(v),
            count(v),
            v.label()
        );
    }
    let _ = write!(
        s,
        "</p><p>vpnlab {} · ESP backend {}",
        text(&report.vpnlab),
        report.backend
    );
    if let Some(vm) = &report.vm {
        let _ = write!(
            s,
            " · VM {} ({}), boot {:.1} s",
            text(&vm.kernel.display().to_string()),
            vm.accel,
            vm.boot_ms as f64 / 1000.0
        );
    }
    s.push_str("</p>");
    builds(s, &report.cells);
    s.push_str(
        "<p><label><input type=\"checkbox\" id=\"only-failed\"> only cells that did not \
         pass</label></p></header>\n",
    );
}

/// Every stack build the cells ran, once.
fn builds(s: &mut String, cells: &[CellReport]) {
    let mut seen: Vec<String> = cells
        .iter()
        .flat_map(|c| c.outcome.endpoints.iter())
        .map(|e| match &e.build {
            Some(b) => format!("{} at {b}", e.stack),
            None => e.stack.clone(),
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    if seen.is_empty() {
        return;
    }
    s.push_str("<p class=\"builds\">Stacks: ");
    for (i, b) in seen.iter().enumerate() {
        let sep = if i == 0 { "" } else { " · " };
        let _ = write!(s, "{sep}<span class=\"build\">{}</span>", text(b));
    }
    s.push_str("</p>");
}

/// The CSS class of a verdict.
fn class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Unsupported => "unsupported",
        Verdict::Skipped => "skipped",
        Verdict::Error => "error",
    }
}

/// One scenario file: its grid, then its cells.
fn scenario(s: &mut String, file: &Path, cells: &[(usize, &CellReport)], dir: &Path) {
    let name = file.display().to_string();
    let _ = writeln!(
        s,
        "<section class=\"scenario\" data-file=\"{}\"><h2>{}</h2>",
        attr(&name),
        text(&name)
    );
    grid(s, cells);
    for (i, c) in cells {
        cell(s, *i, c, dir);
    }
    s.push_str("</section>\n");
}

/// The matrix as a table: the last axis across, the others down; a file
/// without a matrix gets one row of its cells.
fn grid(s: &mut String, cells: &[(usize, &CellReport)]) {
    let axes: Vec<&String> = cells
        .first()
        .map(|(_, c)| c.outcome.axes.keys().collect())
        .unwrap_or_default();
    let (down, across) = match axes.split_last() {
        Some((last, rest)) => (rest.to_vec(), Some(*last)),
        None => (vec![], None),
    };
    let col = |c: &CellReport| match across {
        Some(a) => c.outcome.axes.get(a).cloned().unwrap_or_default(),
        None => c.outcome.cell.clone(),
    };
    let row = |c: &CellReport| {
        down.iter()
            .map(|a| c.outcome.axes.get(*a).cloned().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let mut cols: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut at: BTreeMap<(Vec<String>, String), (usize, &CellReport)> = BTreeMap::new();
    for (i, c) in cells {
        let (r, k) = (row(c), col(c));
        if !cols.contains(&k) {
            cols.push(k.clone());
        }
        if !rows.contains(&r) {
            rows.push(r.clone());
        }
        at.insert((r, k), (*i, c));
    }
    s.push_str("<table class=\"grid\"><tr>");
    for a in &down {
        let _ = write!(s, "<th>{}</th>", text(a));
    }
    for k in &cols {
        let head = across.map_or(k.clone(), |a| format!("{a}={k}"));
        let _ = write!(s, "<th>{}</th>", text(&head));
    }
    s.push_str("</tr>\n");
    for r in &rows {
        s.push_str("<tr>");
        for v in r {
            let _ = write!(s, "<th>{}</th>", text(v));
        }
        for k in &cols {
            match at.get(&(r.clone(), k.clone())) {
                Some((i, c)) => grid_cell(s, *i, c),
                None => s.push_str("<td></td>"),
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
}

/// One cell of the grid: its verdict, linked to its details, and the
/// reason of a cell that did not run.
fn grid_cell(s: &mut String, i: usize, c: &CellReport) {
    let o = &c.outcome;
    let v = class(o.verdict);
    let _ = write!(
        s,
        "<td class=\"g v-{v}\" data-cell=\"{}\" data-verdict=\"{v}\"><a href=\"#c{i}\">{}</a>",
        attr(&o.cell),
        o.verdict.label()
    );
    if let (Verdict::Unsupported | Verdict::Skipped | Verdict::Error, Some(r)) =
        (o.verdict, &o.reason)
    {
        let _ = write!(s, "<small>{}</small>", text(r));
    }
    s.push_str("</td>");
}

/// A cell's details: open unless it passed.
fn cell(s: &mut String, i: usize, c: &CellReport, dir: &Path) {
    let o = &c.outcome;
    let v = class(o.verdict);
    let open = if matches!(o.verdict, Verdict::Fail | Verdict::Error) {
        " open"
    } else {
        ""
    };
    let why = super::why(o);
    let _ = write!(
        s,
        "<details class=\"cell\" id=\"c{i}\" data-cell=\"{}\" data-verdict=\"{v}\"{open}>\
         <summary><span class=\"b v-{v}\">{}</span> <code>{}</code> <span class=\"t\">{:.2} s</span>",
        attr(&o.cell),
        o.verdict.label(),
        text(&o.cell),
        c.elapsed_ms as f64 / 1000.0
    );
    if let Some(w) = why.first() {
        let _ = write!(s, " <span class=\"why\">{}</span>", text(w));
    }
    s.push_str("</summary>\n");
    let _ = writeln!(
        s,
        "<table class=\"eo\"><tr><th>expected</th><td>{}</td></tr>\
         <tr><th>observed</th><td>{}</td></tr></table>",
        text(&expected_summary(&o.expected)),
        text(&o.observed_summary())
    );
    list(s, "mismatches", "", &o.mismatches);
    if let Some(k) = &o.cause {
        let _ = write!(
            s,
            "<p class=\"cause\" data-cause=\"{}\">cause <b>{}</b>: {}</p>",
            k.id,
            k.id,
            text(k.id.describe())
        );
        list(s, "evidence", "because ", &k.evidence);
    }
    if let Some(r) = o.reason.as_ref().filter(|r| why.first() != Some(*r)) {
        let _ = write!(s, "<p class=\"reason\">{}</p>", text(r));
    }
    accounts(s, c);
    diagnosis(s, c);
    files(s, c, dir);
    match &c.ladder {
        Some(l) => ladder::svg(s, l),
        None if matches!(o.verdict, Verdict::Pass | Verdict::Fail) => {
            s.push_str("<p class=\"note\">no ladder: packets were not captured</p>")
        }
        None => {}
    }
    s.push_str("</details>\n");
}

/// A titled list, each line prefixed.
fn list(s: &mut String, class: &str, prefix: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let _ = write!(s, "<ul class=\"{class}\">");
    for l in lines {
        let _ = write!(s, "<li>{prefix}{}</li>", text(l));
    }
    s.push_str("</ul>\n");
}

/// What each endpoint's daemon said, and the initiator's error.
fn accounts(s: &mut String, c: &CellReport) {
    let o = &c.outcome;
    let mut lines: Vec<String> = o
        .endpoints
        .iter()
        .flat_map(|e| e.log.iter().map(move |l| format!("{}: {l}", e.node)))
        .collect();
    if let Some(e) = o.initiation.as_ref().and_then(|i| i.error.as_ref()) {
        lines.push(format!("initiator: {e}"));
    }
    if let Some(r) = o.ppp.as_ref().and_then(|p| p.reason.as_ref()) {
        lines.push(format!("ppp: {r}"));
    }
    list(s, "accounts", "", &lines);
}

/// Where packets stopped, as the path's diagnosis says.
fn diagnosis(s: &mut String, c: &CellReport) {
    let Some(p) = &c.outcome.path else {
        return;
    };
    if p.diagnosis.is_empty() {
        s.push_str("<p class=\"diagnosis\">diagnosis: no packet stopped on the way</p>");
    } else {
        s.push_str("<p class=\"diagnosis\">diagnosis:</p>");
        list(s, "diagnosis", "", &p.diagnosis);
    }
}

/// Links to the cell's pcap files and daemon logs.
fn files(s: &mut String, c: &CellReport, dir: &Path) {
    let all: Vec<&PathBuf> = c.pcap_files.iter().chain(&c.log_files).collect();
    if all.is_empty() {
        return;
    }
    s.push_str("<p class=\"files\">files: ");
    for f in all {
        let href = pathdiff::diff_paths(f, dir).unwrap_or_else(|| f.clone());
        let name = f
            .file_name()
            .map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into());
        let _ = write!(
            s,
            "<a href=\"{}\">{}</a> ",
            attr(&href.display().to_string()),
            text(&name)
        );
    }
    s.push_str("</p>\n");
}

#[cfg(test)]
mod tests;
