//! A cell's ladder as inline SVG: one column per node, one arrow per IKE
//! message (and per group of like packets between two IKE messages), in
//! time order; a gateway's translation written where the arrow crosses it,
//! and a mark where the packet's story ends.

use std::fmt::Write;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use crate::capture::ladder::{Arrow, End, Ladder, What};

/// The arrowhead, defined once per page (SVGs of one document share ids).
pub const DEFS: &str = "<svg width=\"0\" height=\"0\" style=\"position:absolute\"><defs>\
<marker id=\"ah\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\"/></marker>\
</defs></svg>\n";

/// Left margin (the time column).
const LEFT: usize = 64;
/// Width per node column.
const COL: usize = 210;
/// Height of the node names.
const TOP: usize = 30;
/// Height per arrow.
const ROW: usize = 34;

/// Append the SVG of `l`.
pub fn svg(s: &mut String, l: &Ladder) {
    if l.arrows.is_empty() {
        s.push_str("<p class=\"note\">no packets captured</p>");
        return;
    }
    let width = LEFT + l.columns.len() * COL;
    let height = TOP + l.arrows.len() * ROW + 6;
    let _ = write!(
        s,
        "<svg class=\"ladder\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" data-arrows=\"{}\">",
        l.arrows.len()
    );
    for (i, c) in l.columns.iter().enumerate() {
        let x = x(i);
        let _ = write!(
            s,
            "<text class=\"n\" x=\"{x}\" y=\"18\">{}</text>\
             <line class=\"life\" x1=\"{x}\" y1=\"{TOP}\" x2=\"{x}\" y2=\"{height}\"/>",
            text(c)
        );
    }
    for (row, a) in l.arrows.iter().enumerate() {
        arrow(s, l, row, a);
    }
    s.push_str("</svg>\n");
    if l.not_drawn > 0 {
        let _ = write!(
            s,
            "<p class=\"note\">{} more packets not drawn (at most {} arrows per cell)</p>",
            l.not_drawn,
            crate::capture::ladder::MAX_ARROWS
        );
    }
}

fn x(col: usize) -> usize {
    LEFT + col * COL + COL / 2
}

/// The kind an arrow is selected by in the DOM: `ike`, or the class.
fn kind(w: &What) -> String {
    match w {
        What::Ike(_) => "ike".into(),
        What::Class(c) => c.to_string(),
    }
}

fn label(a: &Arrow) -> String {
    let base = match &a.what {
        What::Ike(m) => format!("IKEv{} {m}", m.version),
        What::Class(c) => c.describe().to_string(),
    };
    match (a.count, a.until_ms) {
        (1, _) => base,
        (n, Some(u)) => format!("{base} ×{n} (until {u:.1} ms)"),
        (n, None) => format!("{base} ×{n}"),
    }
}

fn end_name(e: &End) -> &'static str {
    match e {
        End::Delivered => "delivered",
        End::Dropped => "dropped",
        End::NotInClear => "not-in-clear",
        End::Handed(_) => "handed",
        End::Unknown => "unknown",
    }
}

/// One arrow: time, line, label, translations, end mark.
fn arrow(s: &mut String, l: &Ladder, row: usize, a: &Arrow) {
    let col = |n: &str| l.columns.iter().position(|c| c == n);
    let (Some(first), Some(last)) = (a.legs.first(), a.legs.last()) else {
        return;
    };
    let (Some(from), Some(to)) = (col(&first.from), col(&last.to)) else {
        return;
    };
    let y = TOP + row * ROW + 20;
    let (x1, x2) = (x(from), x(to));
    let end = end_name(&a.end);
    let title: Vec<String> = a
        .legs
        .iter()
        .map(|g| format!("{} → {}: {} → {}", g.from, g.to, g.src, g.dst))
        .collect();
    let _ = write!(
        s,
        "<g class=\"a k-{k}\" data-kind=\"{k}\" data-end=\"{end}\" data-to=\"{}\">\
         <title>{}</title><text class=\"tm\" x=\"4\" y=\"{y}\">{:.1} ms</text>",
        attr(&last.to),
        text(&title.join("\n")),
        a.at_ms,
        k = kind(&a.what)
    );
    let head = if a.end == End::Delivered {
        " marker-end=\"url(#ah)\""
    } else {
        ""
    };
    let _ = write!(
        s,
        "<line class=\"e-{end}\" x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\"{head}/>\
         <text class=\"l\" x=\"{}\" y=\"{}\">{}</text>",
        (x1 + x2) / 2,
        y - 5,
        text(&label(a))
    );
    for w in a.legs.windows(2) {
        translation(s, col(&w[0].to), y, w);
    }
    mark(s, &a.end, x2, x1, y);
    s.push_str("</g>");
}

/// What a node rewrote between the leg into it and the leg out of it.
fn translation(s: &mut String, col: Option<usize>, y: usize, w: &[crate::capture::ladder::Leg]) {
    let Some(c) = col else {
        return;
    };
    let mut parts = Vec::new();
    if w[0].src != w[1].src {
        parts.push(format!("src {} ⇒ {}", w[0].src, w[1].src));
    }
    if w[0].dst != w[1].dst {
        parts.push(format!("dst {} ⇒ {}", w[0].dst, w[1].dst));
    }
    if parts.is_empty() {
        return;
    }
    let _ = write!(
        s,
        "<text class=\"tr\" x=\"{}\" y=\"{}\">{}</text>",
        x(c),
        y + 12,
        text(&parts.join(", "))
    );
}

/// The mark at the end of an arrow that was not delivered.
fn mark(s: &mut String, end: &End, at: usize, from: usize, y: usize) {
    let (glyph, what) = match end {
        End::Delivered => return,
        End::Dropped => ("✕", "dropped here".to_string()),
        End::NotInClear => ("◆", "not seen leaving in clear text".to_string()),
        End::Handed(i) => ("↴", format!("handed to {i}")),
        End::Unknown => ("?", "capture ended or cap reached".to_string()),
    };
    // The note goes on the far side of the mark from the arrow's start.
    let (tx, anchor) = if at >= from {
        (at + 10, "start")
    } else {
        (at.saturating_sub(10), "end")
    };
    let _ = write!(
        s,
        "<text class=\"m m-{}\" x=\"{at}\" y=\"{}\">{glyph}</text>\
         <text class=\"mt\" x=\"{tx}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
        end_name(end),
        y + 5,
        y + 4,
        text(&what)
    );
}
