//! Declared misconfigurations (`misconfigured` on an endpoint, axis
//! `matrix.misconfigured.<node>`): which disagreements with its peer an end
//! has on purpose in each cell, so that a field failure can be reproduced
//! next to its fix. Undeclared disagreements stay errors.

use toml::Spanned;

use super::super::file::{EndpointSpec, ScenarioFile};
use super::diag::{sp, Diags};
use super::matrix::{Axes, Choice, Varies};
use crate::model::{known, Misconfig};

/// The axis value of a correct end.
const NONE: &str = "none";

/// An axis value: `none` or a misconfiguration.
pub(super) fn axis_value(d: &mut Diags<'_>, v: &Spanned<String>, field: &str) {
    if v.get_ref() != NONE && v.get_ref().parse::<Misconfig>().is_err() {
        d.err(
            sp(v),
            field,
            format!(
                "unknown misconfiguration `{}` (known: none, {})",
                v.get_ref(),
                known::<Misconfig>()
            ),
        );
    }
}

/// What the endpoint's own `misconfigured` declares (reported if unknown).
fn declared(d: &mut Diags<'_>, e: &EndpointSpec, field: &str) -> Vec<Misconfig> {
    let Some(list) = &e.misconfigured else {
        return vec![];
    };
    let mut out = Vec::new();
    for v in list.get_ref() {
        match v.get_ref().parse::<Misconfig>() {
            Ok(m) if !out.contains(&m) => out.push(m),
            Ok(_) => {}
            Err(_) => d.err(
                sp(v),
                format!("{field}.misconfigured"),
                format!(
                    "unknown misconfiguration `{}` (known: {})",
                    v.get_ref(),
                    known::<Misconfig>()
                ),
            ),
        }
    }
    out
}

/// The endpoint's misconfigurations in every cell: its own, plus its
/// axis's value in the cell.
pub(super) fn of(
    d: &mut Diags<'_>,
    e: &EndpointSpec,
    axes: &Axes,
    field: &str,
) -> Option<Choice<Vec<Misconfig>>> {
    let own = declared(d, e, field);
    let varies = Varies::Misconfigured(e.node.get_ref().clone());
    let choice = axes.choice(&varies, own.clone(), |v| {
        let mut all = own.clone();
        if v != NONE {
            let m = v.parse().ok()?;
            if !all.contains(&m) {
                all.push(m);
            }
        }
        Some(all)
    })?;
    let every: Vec<Misconfig> = match &choice {
        Choice::Fixed(v) => v.clone(),
        Choice::Varied { values, .. } => values.iter().flatten().copied().collect(),
    };
    if every.contains(&Misconfig::IkeVersion) && *e.ike.get_ref() == 0 {
        d.err(
            sp(&e.ike),
            format!("{field}.ike"),
            "a responder of either IKE version (0) cannot speak the wrong one: give it 1 or 2",
        );
    }
    if every.contains(&Misconfig::TrafficSelectors) && e.inner.is_none() {
        d.err(
            sp(&e.node),
            format!("{field}.inner"),
            "misconfigured traffic selectors need the end's `inner` address",
        );
    }
    let cert = [Misconfig::CertUntrusted, Misconfig::CertExpired];
    if let Some(m) = every.iter().find(|m| cert.contains(m)) {
        if e.auth.as_ref().map(|a| a.get_ref().as_str()) != Some("cert") {
            d.err(
                sp(&e.node),
                format!("{field}.auth"),
                format!("misconfiguration `{m}` is about the end's certificate: give it `auth = \"cert\"`"),
            );
        }
    }
    Some(choice)
}

/// Whether `node`'s endpoint may disagree with its peer on `m` in some
/// cell: declared on it, or a value of its axis.
pub(super) fn may(f: &ScenarioFile, node: &str, m: Misconfig) -> bool {
    let own = f.endpoints.iter().any(|e| {
        let e = e.get_ref();
        e.node.get_ref() == node
            && e.misconfigured
                .as_ref()
                .is_some_and(|l| l.get_ref().iter().any(|v| v.get_ref().parse() == Ok(m)))
    });
    let axis = f
        .matrix
        .misconfigured
        .get(node)
        .is_some_and(|l| l.get_ref().iter().any(|v| v.get_ref().parse() == Ok(m)));
    own || axis
}
