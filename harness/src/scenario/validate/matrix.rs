//! The matrix: the axes a file varies, and what a cell's value on each of
//! them sets. A setting is a [`Choice`]: fixed by the file, or one value
//! per value of an axis; a [`Pick`] (one value per axis) selects a cell.
//!
//! The axes' shape comes straight from the file ([`axes`]), so every
//! concern can build its choices while it validates; whether the values
//! themselves are valid is reported by [`check`], in file order.

use toml::Spanned;

use std::collections::BTreeMap;

use super::super::file::{AxisValues, MatrixSpec, ScenarioFile};
use super::diag::{known_stack, names, sp, Diags};
use super::knobs;
use super::network::Network;
use crate::model::{known, NatProfile};

/// What the values of an axis set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Varies {
    /// A gateway's NAT profile.
    Nat(String),
    /// Every endpoint's NAT-T mode.
    NatT,
    /// The stack of the endpoint on a node.
    Stack(String),
    /// Hairpinning of a gateway's forwarding.
    Hairpin(String),
    /// Every endpoint's NAT keepalive (those that leave it to the matrix).
    Keepalive,
    /// Likewise DPD.
    Dpd,
    /// Likewise IKEv2 fragmentation.
    Fragmentation,
    /// Likewise MOBIKE.
    Mobike,
    /// A `behaviour` knob of a node: (node, knob).
    Behaviour(String, String),
    /// The IKE proposals of the endpoint on a node.
    IkeProposals(String),
    /// Its ESP proposals.
    EspProposals(String),
    /// The declared misconfiguration of the endpoint on a node.
    Misconfigured(String),
}

/// One axis.
pub(super) struct Axis {
    /// Its name in cell ids and `expect.when`, e.g. `nat` or `stack.client`.
    pub name: String,
    /// Its values as written.
    pub values: Vec<String>,
    /// What its values set.
    pub varies: Varies,
}

/// Every axis, in cell-id order.
pub(super) struct Axes(Vec<Axis>);

/// A setting of a cell: fixed by the file, or varied by an axis.
#[derive(Debug, Clone)]
pub(super) enum Choice<T> {
    /// The same in every cell.
    Fixed(T),
    /// `values[i]` in the cells with value `i` of axis `axis`.
    Varied { axis: usize, values: Vec<T> },
}

/// A cell's place in the matrix: the index of its value on every axis.
pub(super) struct Pick<'a> {
    axes: &'a Axes,
    at: Vec<usize>,
}

/// The axis a gateway's NAT profiles form: `nat` when only one gateway
/// varies, else `nat.<node>`.
fn nat_axis(m: &MatrixSpec, node: &str) -> String {
    if m.nat.len() == 1 {
        "nat".to_string()
    } else {
        format!("nat.{node}")
    }
}

/// The name of an axis keyed by endpoint node: `axis` when one node has
/// it (of `count`), else `axis.<node>`.
fn per_node(axis: &str, count: usize, node: &str) -> String {
    if count > 1 {
        format!("{axis}.{node}")
    } else {
        axis.to_string()
    }
}

/// The axes of a file, as written (values unchecked).
pub(super) fn axes(f: &ScenarioFile) -> Axes {
    let m = &f.matrix;
    let mut out = Vec::new();
    let mut push = |name: String, values: Vec<String>, varies| {
        out.push(Axis {
            name,
            values,
            varies,
        })
    };
    for (n, v) in &m.nat {
        push(nat_axis(m, n), names(v), Varies::Nat(n.clone()));
    }
    if let Some(v) = &m.nat_t {
        let values = v.get_ref().iter().map(|x| x.get_ref().to_string());
        push("nat_t".into(), values.collect(), Varies::NatT);
    }
    for (n, v) in &m.stack {
        push(format!("stack.{n}"), names(v), Varies::Stack(n.clone()));
    }
    for (n, v) in &m.hairpin {
        let values = v.get_ref().iter().map(|x| x.get_ref().to_string());
        push(
            "hairpin".into(),
            values.collect(),
            Varies::Hairpin(n.clone()),
        );
    }
    for (axis, values, varies) in endpoint_axes(m) {
        if let Some(v) = values {
            push(axis.into(), names(v), varies);
        }
    }
    for (n, v) in &m.ike_proposals {
        let name = per_node("ike_proposals", m.ike_proposals.len(), n);
        push(name, names(v), Varies::IkeProposals(n.clone()));
    }
    for (n, v) in &m.esp_proposals {
        let name = per_node("esp_proposals", m.esp_proposals.len(), n);
        push(name, names(v), Varies::EspProposals(n.clone()));
    }
    for (n, v) in &m.misconfigured {
        let name = per_node("misconfigured", m.misconfigured.len(), n);
        push(name, names(v), Varies::Misconfigured(n.clone()));
    }
    for (n, knobs) in &m.behaviour {
        for (knob, v) in knobs {
            let shared = m
                .behaviour
                .values()
                .filter(|k| k.contains_key(knob))
                .count()
                > 1;
            let name = if shared {
                format!("{knob}.{n}")
            } else {
                knob.clone()
            };
            push(name, names(v), Varies::Behaviour(n.clone(), knob.clone()));
        }
    }
    Axes(out)
}

/// The axes that set an endpoint knob, by name.
fn endpoint_axes(m: &MatrixSpec) -> [(&'static str, &Option<AxisValues>, Varies); 4] {
    [
        ("keepalive", &m.keepalive, Varies::Keepalive),
        ("dpd", &m.dpd, Varies::Dpd),
        ("fragmentation", &m.fragmentation, Varies::Fragmentation),
        ("mobike", &m.mobike, Varies::Mobike),
    ]
}

/// Report the matrix's mistakes: unknown nodes and values, empty axes, a
/// hairpin axis for a gateway that forwards nothing.
pub(super) fn check(d: &mut Diags<'_>, f: &ScenarioFile, net: &Network) {
    let m = &f.matrix;
    for (n, values) in &m.nat {
        let field = format!("matrix.nat.{n}");
        if !net.nodes.contains(n) {
            d.err(sp(values), field.clone(), format!("unknown node `{n}`"));
        }
        non_empty(d, values, &field);
        for v in values.get_ref() {
            if v.get_ref().parse::<NatProfile>().is_err() {
                d.err(
                    sp(v),
                    field.clone(),
                    format!(
                        "unknown NAT profile `{}` (known: {})",
                        v.get_ref(),
                        known::<NatProfile>()
                    ),
                );
            }
        }
    }
    if let Some(v) = &m.nat_t {
        non_empty(d, v, "matrix.nat_t");
    }
    endpoint_axis(d, f, &m.stack, "stack", |d, v, field| {
        known_stack(d, v, field.to_string());
    });
    check_hairpin(d, m, net);
    endpoint_axis(d, f, &m.ike_proposals, "ike_proposals", |d, v, field| {
        super::proposals::axis_value(d, v, field, false)
    });
    endpoint_axis(d, f, &m.esp_proposals, "esp_proposals", |d, v, field| {
        super::proposals::axis_value(d, v, field, true)
    });
    endpoint_axis(d, f, &m.misconfigured, "misconfigured", |d, v, field| {
        super::misconfig::axis_value(d, v, field)
    });
    for (n, knobs) in &m.behaviour {
        for (knob, values) in knobs {
            let field = format!("matrix.behaviour.{n}.{knob}");
            if !net.nodes.contains(n) {
                d.err(sp(values), field.clone(), format!("unknown node `{n}`"));
            }
            non_empty(d, values, &field);
        }
    }
    for (axis, values, _) in endpoint_axes(m) {
        let Some(values) = values else { continue };
        non_empty(d, values, &format!("matrix.{axis}"));
        for v in values.get_ref() {
            knobs::endpoint_axis_value(d, axis, v);
        }
    }
}

/// An axis keyed by endpoint node (`matrix.<axis>.<node>`): the node has
/// an endpoint, the axis values, and each value passes `value`.
fn endpoint_axis(
    d: &mut Diags<'_>,
    f: &ScenarioFile,
    axis: &BTreeMap<String, AxisValues>,
    name: &str,
    value: impl Fn(&mut Diags<'_>, &Spanned<String>, &str),
) {
    for (n, values) in axis {
        let field = format!("matrix.{name}.{n}");
        if !f.endpoints.iter().any(|e| e.get_ref().node.get_ref() == n) {
            d.err(sp(values), field.clone(), format!("`{n}` has no endpoint"));
        }
        non_empty(d, values, &field);
        for v in values.get_ref() {
            value(d, v, &field);
        }
    }
}

fn check_hairpin(d: &mut Diags<'_>, m: &MatrixSpec, net: &Network) {
    if let Some((_, v)) = m.hairpin.iter().nth(1) {
        d.err(
            sp(v),
            "matrix.hairpin",
            "one gateway per file may vary hairpinning",
        );
    }
    for (n, values) in &m.hairpin {
        if net.knobs.get(n).and_then(|k| k.forward_ike_to).is_none() {
            d.err(
                sp(values),
                format!("matrix.hairpin.{n}"),
                format!(
                    "{n} forwards nothing to hairpin: set `nodes.{n}.behaviour.forward_ike_to`"
                ),
            );
        }
    }
}

fn non_empty<T>(d: &mut Diags<'_>, values: &Spanned<Vec<T>>, field: &str) {
    if values.get_ref().is_empty() {
        d.err(sp(values), field, "an axis needs at least one value");
    }
}

impl Axes {
    /// The axis called `name`.
    pub(super) fn get(&self, name: &str) -> Option<&Axis> {
        self.0.iter().find(|a| a.name == name)
    }

    /// Every axis name, for messages.
    pub(super) fn names(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|a| a.name.as_str()).collect();
        names.join(", ")
    }

    /// The axis that varies `varies`, if the file has one.
    pub(super) fn varying(&self, varies: &Varies) -> Option<usize> {
        self.0.iter().position(|a| &a.varies == varies)
    }

    /// The setting `varies` names: `fixed`, or the values of the axis that
    /// varies it. `None` when an axis value does not parse ([`check`]
    /// reports it).
    pub(super) fn choice<T>(
        &self,
        varies: &Varies,
        fixed: T,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<Choice<T>> {
        match self.varying(varies) {
            Some(axis) => self.varied(axis, parse),
            None => Some(Choice::Fixed(fixed)),
        }
    }

    /// The values of axis `axis`, parsed; `None` when one does not parse.
    pub(super) fn varied<T>(
        &self,
        axis: usize,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<Choice<T>> {
        let values = self.0.get(axis)?.values.iter().map(|v| parse(v));
        Some(Choice::Varied {
            axis,
            values: values.collect::<Option<Vec<T>>>()?,
        })
    }

    /// Every cell: the product of the axes, the first axis varying slowest.
    pub(super) fn picks(&self) -> Vec<Pick<'_>> {
        let mut at: Vec<Vec<usize>> = vec![vec![]];
        for axis in &self.0 {
            at = at
                .into_iter()
                .flat_map(|c| {
                    (0..axis.values.len()).map(move |i| {
                        let mut c = c.clone();
                        c.push(i);
                        c
                    })
                })
                .collect();
        }
        at.into_iter().map(|at| Pick { axes: self, at }).collect()
    }
}

impl<T> Choice<T> {
    /// The setting in the cell `pick`.
    pub(super) fn at(&self, pick: &Pick<'_>) -> &T {
        match self {
            Choice::Fixed(v) => v,
            // `values` has one entry per value of the axis, and `pick` an
            // index into every axis of the same `Axes`.
            Choice::Varied { axis, values } => &values[pick.at[*axis]],
        }
    }
}

impl Pick<'_> {
    /// The cell's value of every axis, in file order.
    pub(super) fn labels(&self) -> Vec<(String, String)> {
        self.axes
            .0
            .iter()
            .zip(&self.at)
            .map(|(a, &i)| (a.name.clone(), a.values[i].clone()))
            .collect()
    }

    /// The cell's value of axis `name` (the first such axis).
    pub(super) fn value(&self, name: &str) -> Option<&str> {
        let i = self.axes.0.iter().position(|a| a.name == name)?;
        Some(self.axes.0[i].values[self.at[i]].as_str())
    }

    /// The cell's id: the scenario's name, then its axis values.
    pub(super) fn id(&self, scenario: &str) -> String {
        if self.at.is_empty() {
            return scenario.to_string();
        }
        let values: Vec<String> = self
            .labels()
            .iter()
            .map(|(a, v)| format!("{a}={v}"))
            .collect();
        format!("{scenario}/{}", values.join(","))
    }
}
