//! The results as a Markdown table a support engineer can paste into a
//! ticket or a CI step summary.

use std::io::Write;

use crate::cell::CellReport;
use crate::model::{Encapsulation, TunnelExpect};
use crate::outcome::Outcome;

/// Why a cell came out as it did, most telling first: the root cause
/// where one is classified, then why it could not run (or the PPP layer's
/// or the initiator's error), then the diagnosis.
pub fn why(o: &Outcome) -> Vec<String> {
    o.cause
        .as_ref()
        .map(|c| c.headline())
        .into_iter()
        .chain(
            o.reason
                .clone()
                .or_else(|| o.ppp.as_ref().and_then(|p| p.reason.clone()))
                .or_else(|| o.initiation.as_ref().and_then(|i| i.error.clone())),
        )
        .chain(o.path.iter().flat_map(|p| p.diagnosis.iter().cloned()))
        .collect()
}

/// The results as a Markdown table: cell, verdict, IPsec tunnel, PPP link,
/// checks, and why: the root cause where one is classified, then the
/// first explanation vpnlab has for the cell and the diagnosis.
pub fn markdown(out: &mut dyn Write, cells: &[CellReport]) -> std::io::Result<()> {
    let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    writeln!(out, "| Cell | Verdict | IPsec | PPP | Checks | Why |")?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    for c in cells {
        let o = &c.outcome;
        let ipsec = match (o.tunnel, o.encapsulation) {
            (Some(TunnelExpect::Up), Some(e)) => format!(
                "up ({})",
                match e {
                    Encapsulation::Udp => "ESP in UDP 4500",
                    Encapsulation::None => "raw ESP",
                    Encapsulation::Mixed => "ends disagree on encapsulation",
                }
            ),
            (Some(TunnelExpect::Up), None) => "up".into(),
            (Some(_), _) => "down".into(),
            (None, _) => "–".into(),
        };
        let ppp = o
            .ppp
            .as_ref()
            .map_or("–".into(), |p| match (&p.client_ip, &p.server_ip) {
                (Some(c), Some(s)) => {
                    format!("{} up, {c} ↔ {s}", p.kind.to_string().to_uppercase())
                }
                _ => format!("{} down", p.kind.to_string().to_uppercase()),
            });
        let checks = o
            .checks
            .iter()
            .map(|k| format!("{} {}/{}", k.name, k.received, k.sent))
            .collect::<Vec<_>>()
            .join(", ");
        let why = why(o).join("; ");
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            esc(&o.cell),
            o.verdict.label(),
            esc(&ipsec),
            esc(&ppp),
            esc(&checks),
            esc(&why)
        )?;
    }
    Ok(())
}
