//! The results as JUnit XML, the format CI systems read test results in:
//! one `<testsuite>` per scenario, one `<testcase>` per cell. A failed
//! cell carries its mismatches and why ([`super::why`]); an error its
//! error; an UNSUPPORTED or SKIPPED cell is `<skipped>` with its reason.

use std::io::Write;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::cell::CellReport;
use crate::model::Verdict;

/// Counts of one suite (or of all), for the attributes JUnit readers sum.
#[derive(Default)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    ms: u64,
}

impl Counts {
    fn of<'a>(cells: impl IntoIterator<Item = &'a CellReport>) -> Counts {
        let mut n = Counts::default();
        for c in cells {
            n.tests += 1;
            n.ms += c.elapsed_ms;
            match c.outcome.verdict {
                Verdict::Pass => {}
                Verdict::Fail => n.failures += 1,
                Verdict::Error => n.errors += 1,
                Verdict::Unsupported | Verdict::Skipped => n.skipped += 1,
            }
        }
        n
    }

    fn attributes(&self) -> [(&'static str, String); 5] {
        [
            ("tests", self.tests.to_string()),
            ("failures", self.failures.to_string()),
            ("errors", self.errors.to_string()),
            ("skipped", self.skipped.to_string()),
            ("time", seconds(self.ms)),
        ]
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// The scenario a cell belongs to: its name before the first `/`.
fn scenario(c: &CellReport) -> &str {
    let id = c.outcome.cell.as_str();
    id.split_once('/').map_or(id, |(s, _)| s)
}

/// Write `cells` as a JUnit document, suites in the order their first
/// cell ran.
pub fn junit(out: &mut dyn Write, cells: &[CellReport]) -> std::io::Result<()> {
    let mut suites: Vec<(&str, Vec<&CellReport>)> = Vec::new();
    for c in cells {
        match suites.iter_mut().find(|(s, _)| *s == scenario(c)) {
            Some((_, v)) => v.push(c),
            None => suites.push((scenario(c), vec![c])),
        }
    }
    let mut w = Writer::new_with_indent(out, b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let all = Counts::of(cells).attributes();
    w.create_element("testsuites")
        .with_attribute(("name", "vpnlab"))
        .with_attributes(all.iter().map(pair))
        .write_inner_content(|w| {
            for (name, cells) in &suites {
                suite(w, name, cells)?;
            }
            Ok(())
        })?;
    w.into_inner().write_all(b"\n")
}

fn pair<'a>((k, v): &'a (&'static str, String)) -> (&'a str, &'a str) {
    (*k, v.as_str())
}

fn suite<W: Write>(w: &mut Writer<W>, name: &str, cells: &[&CellReport]) -> std::io::Result<()> {
    let file = cells
        .first()
        .map(|c| c.file.display().to_string())
        .unwrap_or_default();
    let counts = Counts::of(cells.iter().copied()).attributes();
    w.create_element("testsuite")
        .with_attribute(("name", name))
        .with_attributes(counts.iter().map(pair))
        .with_attribute(("file", file.as_str()))
        .write_inner_content(|w| {
            for c in cells {
                case(w, name, c)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn case<W: Write>(w: &mut Writer<W>, suite: &str, c: &CellReport) -> std::io::Result<()> {
    let o = &c.outcome;
    let time = seconds(c.elapsed_ms);
    let el = w
        .create_element("testcase")
        .with_attribute(("name", o.cell.as_str()))
        .with_attribute(("classname", suite))
        .with_attribute(("time", time.as_str()));
    let reason = o.reason.clone().unwrap_or_default();
    match o.verdict {
        Verdict::Pass => {
            el.write_empty()?;
        }
        Verdict::Fail => {
            let first = o.mismatches.first().cloned().unwrap_or_default();
            let body = o
                .mismatches
                .iter()
                .cloned()
                .chain(super::why(o))
                .collect::<Vec<_>>()
                .join("\n");
            el.write_inner_content(|w| detail(w, "failure", &first, &body))?;
        }
        Verdict::Error => {
            let body = super::why(o).join("\n");
            el.write_inner_content(|w| detail(w, "error", &reason, &body))?;
        }
        Verdict::Unsupported | Verdict::Skipped => {
            let message = format!("{}: {reason}", o.verdict.label().to_lowercase());
            el.write_inner_content(|w| {
                w.create_element("skipped")
                    .with_attribute(("message", message.as_str()))
                    .write_empty()?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// A `<failure>` or `<error>`: a one-line message, the whole story as text.
fn detail<W: Write>(
    w: &mut Writer<W>,
    tag: &str,
    message: &str,
    body: &str,
) -> std::io::Result<()> {
    w.create_element(tag)
        .with_attribute(("message", message))
        .with_attribute(("type", tag))
        .write_text_content(BytesText::new(body))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(name: &str, verdict: &str, extra: serde_json::Value) -> CellReport {
        let mut outcome = serde_json::json!({
            "cell": name, "axes": {}, "verdict": verdict, "backend": "kernel-libipsec",
            "expected": {"checks": {}},
        });
        outcome
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(serde_json::json!({
            "file": "topologies/s.toml",
            "elapsed_ms": 1500,
            "phases": serde_json::to_value(crate::cell::Phases::default()).unwrap(),
            "outcome": outcome,
        }))
        .expect("a report entry")
    }

    #[test]
    fn suites_per_scenario_with_failures_errors_and_skips_escaped() {
        let cells = [
            cell("s/a", "pass", serde_json::json!({})),
            cell(
                "s/b",
                "fail",
                serde_json::json!({"mismatches": ["tunnel: expected up, observed down <&>"]}),
            ),
            cell(
                "t",
                "unsupported",
                serde_json::json!({"reason": "no \"way\""}),
            ),
            cell(
                "s/c",
                "error",
                serde_json::json!({"reason": "charon did not start"}),
            ),
        ];
        let mut out = Vec::new();
        junit(&mut out, &cells).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(
            xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testsuites name="vpnlab" tests="4" failures="1" errors="1" skipped="1" time="6.000">"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testsuite name="s" tests="3" failures="1" errors="1" skipped="0""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="s/a" classname="s" time="1.500"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure message="tunnel: expected up, observed down &lt;&amp;&gt;" type="failure">"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<skipped message="unsupported: no &quot;way&quot;"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<error message="charon did not start""#),
            "{xml}"
        );
    }
}
