//! Expectations (`[[expect]]`): what they may name (matrix axes and their
//! values, checks, wait steps), and each cell's merged expectation, which
//! must say what every cell expects of its tunnel, PPP link and checks.

use std::collections::{BTreeMap, BTreeSet};

use super::super::file::ScenarioFile;
use super::diag::{sp, Diags};
use super::matrix::{Axes, Pick};
use crate::model::{known, Action, Cause, Expectation, Step, TunnelExpect};

/// What an expectation may name.
pub(super) struct Names {
    /// Every check, and every check a step runs again (`<check>@<step>`).
    pub checks: BTreeSet<String>,
    /// Every `wait` step.
    pub waits: BTreeSet<String>,
}

impl Names {
    pub(super) fn of(checks: &BTreeSet<String>, steps: &[Step]) -> Names {
        let mut names = Names {
            checks: checks.clone(),
            waits: BTreeSet::new(),
        };
        for st in steps {
            match &st.action {
                Action::Checks(checks) => {
                    for c in checks {
                        names.checks.insert(format!("{c}@{}", st.name));
                    }
                }
                Action::Wait { .. } => {
                    names.waits.insert(st.name.clone());
                }
                // An IKE action waits for its effect, with checks meanwhile.
                Action::Ike { during, .. } => {
                    names.waits.insert(st.name.clone());
                    for c in during {
                        names.checks.insert(format!("{c}@{}", st.name));
                    }
                }
                _ => {}
            }
        }
        names
    }
}

/// Expectations refer to known axes, values, checks and waits.
pub(super) fn validate(d: &mut Diags<'_>, f: &ScenarioFile, axes: &Axes, names: &Names) {
    for (i, e) in f.expect.iter().enumerate() {
        for (k, v) in &e.get_ref().when {
            let field = format!("expect[{i}].when.{k}");
            let Some(axis) = axes.get(k) else {
                d.err(
                    sp(v),
                    field,
                    format!("no matrix axis `{k}` (axes: {})", axes.names()),
                );
                continue;
            };
            for x in v.get_ref().values() {
                if !axis.values.iter().any(|y| y == x) {
                    d.err(
                        sp(v),
                        field.clone(),
                        format!(
                            "`{x}` is not a value of axis {k} ({})",
                            axis.values.join(", ")
                        ),
                    );
                }
            }
        }
        for (c, v) in &e.get_ref().checks {
            if !names.checks.contains(c) {
                d.err(
                    sp(v),
                    format!("expect[{i}].checks.{c}"),
                    format!("no check named `{c}` (a check a step runs again is `<check>@<step>`)"),
                );
            }
        }
        if let Some(c) = &e.get_ref().cause {
            if c.get_ref().parse::<Cause>().is_err() {
                d.err(
                    sp(c),
                    format!("expect[{i}].cause"),
                    format!(
                        "unknown cause `{}` (known: {})",
                        c.get_ref(),
                        known::<Cause>()
                    ),
                );
            }
        }
        for (w, v) in &e.get_ref().waits {
            if !names.waits.contains(w) {
                d.err(
                    sp(v),
                    format!("expect[{i}].waits.{w}"),
                    format!("no wait step named `{w}`"),
                );
            }
        }
    }
}

/// The expectation of cell `id`: every entry whose `when` matches, later
/// ones overriding earlier ones. `None` (reported) when no entry says
/// whether its tunnel or PPP link comes up.
pub(super) fn of_cell(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    pick: &Pick<'_>,
    id: &str,
    names: &Names,
    (endpoints, ppp): (bool, bool),
) -> Option<Expectation> {
    let mut x = merged(f, pick);
    let span = f.expect.first().map(sp).unwrap_or(0..0);
    if x.tunnel.is_none() && endpoints {
        let msg = format!("no expectation sets `tunnel` for cell {id}");
        d.err(span, "expect.tunnel", msg);
        return None;
    }
    if x.ppp.is_none() && ppp {
        let msg = format!("no expectation sets `ppp` for cell {id}");
        d.err(span, "expect.ppp", msg);
        return None;
    }
    for c in &names.checks {
        if !x.checks.contains_key(c) {
            d.err(
                span.clone(),
                format!("expect.checks.{c}"),
                format!("no expectation for check `{c}` in cell {id}"),
            );
        }
    }
    // Encapsulation only means something for a tunnel that is up.
    x.encapsulation = x
        .encapsulation
        .filter(|_| x.tunnel == Some(TunnelExpect::Up));
    x.tunnel = x.tunnel.filter(|_| endpoints);
    x.ppp = x.ppp.filter(|_| ppp);
    Some(x)
}

/// The entries that apply to the cell `pick`, merged in file order.
fn merged(f: &ScenarioFile, pick: &Pick<'_>) -> Expectation {
    let mut x = Expectation {
        tunnel: None,
        ppp: None,
        encapsulation: None,
        checks: BTreeMap::new(),
        waits: BTreeMap::new(),
        cause: None,
    };
    for e in &f.expect {
        let e = e.get_ref();
        let applies = e.when.iter().all(|(k, v)| {
            pick.value(k)
                .is_some_and(|x| v.get_ref().values().contains(&x))
        });
        if !applies {
            continue;
        }
        x.tunnel = e.tunnel.as_ref().map(|t| *t.get_ref()).or(x.tunnel);
        x.ppp = e.ppp.as_ref().map(|t| *t.get_ref()).or(x.ppp);
        x.encapsulation = (e.encapsulation.as_ref().map(|t| *t.get_ref())).or(x.encapsulation);
        for (c, v) in &e.checks {
            x.checks.insert(c.clone(), *v.get_ref());
        }
        for (w, v) in &e.waits {
            x.waits.insert(w.clone(), *v.get_ref());
        }
        if let Some(c) = e.cause.as_ref().and_then(|c| c.get_ref().parse().ok()) {
            x.cause = Some(c);
        }
    }
    x
}
