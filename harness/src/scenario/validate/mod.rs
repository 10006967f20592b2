//! Semantic validation and matrix expansion. Each finding points at the
//! offending field; all findings of a file are reported together.
//!
//! One concern per module, in file order: the machine's requirements (here),
//! the [`network`], the [`endpoints`], the [`ppp`] layer, the [`checks`],
//! the [`matrix`], the [`steps`] and the expectations ([`expect`]). Each
//! returns a typed result the later ones use; a part that does not
//! validate is left out of its result only after a finding says why, so
//! once nothing was found, [`expand`] has every setting it needs.

mod checks;
mod diag;
mod endpoints;
mod expand;
mod expect;
mod knobs;
mod lints;
mod matrix;
mod misconfig;
mod network;
mod ppp;
mod proposals;
mod routing;
mod steps;

use std::path::Path;

use super::file::ScenarioFile;
use super::Scenario;
use crate::error::ScenarioError;
use crate::model::{self as cell, known, Backend, Requirement};
use diag::{sp, Diags};

/// Everything validation resolved, which expansion turns into cells.
struct Validated<'a> {
    name: String,
    path: &'a Path,
    f: &'a ScenarioFile,
    requires: Vec<Requirement>,
    backend: Option<Backend>,
    net: network::Network,
    eps: endpoints::Endpoints,
    ppp: Option<cell::Ppp>,
    checks: Vec<cell::Check>,
    steps: Vec<cell::Step>,
    axes: matrix::Axes,
    names: expect::Names,
}

pub(super) fn validate(
    path: &Path,
    text: &str,
    f: ScenarioFile,
) -> Result<Scenario, ScenarioError> {
    let mut d = Diags::new(path, text);
    let name = f.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into())
    });
    let axes = matrix::axes(&f);
    let (requires, backend) = machine(&mut d, &f);
    let net = network::validate(&mut d, &f, &axes);
    let eps = endpoints::validate(&mut d, &f, path, &net, &axes);
    let ppp = ppp::validate(&mut d, &f, &net, &eps);
    let checks = checks::validate(&mut d, &f, &net, &eps, ppp.as_ref());
    matrix::check(&mut d, &f, &net);
    let steps = steps::validate(&mut d, &f, &net, &checks.names, &eps.nodes);
    let names = expect::Names::of(&checks.names, &steps);
    expect::validate(&mut d, &f, &axes, &names);
    if f.endpoints.is_empty() && f.ppp.is_none() {
        d.err(
            0..0,
            "endpoints",
            "a scenario needs at least one initiator/responder pair (or a `[ppp]` layer)",
        );
    }
    d.check()?;
    let v = Validated {
        name,
        path,
        f: &f,
        requires,
        backend,
        net,
        eps,
        ppp,
        checks: checks.list,
        steps,
        axes,
        names,
    };
    let cells = expand::cells(&mut d, &v);
    d.check()?;
    lints::lint(&mut d, &v, &cells);
    Ok(Scenario {
        name: v.name,
        path: path.to_path_buf(),
        description: f.description,
        cells,
        warnings: d.warnings(),
    })
}

/// What the cells need from the machine, and the ESP backend the file pins.
fn machine(d: &mut Diags<'_>, f: &ScenarioFile) -> (Vec<Requirement>, Option<Backend>) {
    let mut requires: Vec<Requirement> = Vec::new();
    for r in &f.requires {
        match r.get_ref().parse::<Requirement>() {
            Ok(x) => requires.push(x),
            Err(_) => d.err(
                sp(r),
                "requires",
                format!(
                    "unknown requirement `{}` (known: {})",
                    r.get_ref(),
                    known::<Requirement>()
                ),
            ),
        }
    }
    let backend = f.backend.as_ref().and_then(|b| match b.get_ref().parse() {
        Ok(x) => Some(x),
        Err(_) => {
            d.err(
                sp(b),
                "backend",
                format!(
                    "unknown backend `{}` (known: {})",
                    b.get_ref(),
                    known::<Backend>()
                ),
            );
            None
        }
    });
    if backend == Some(Backend::KernelNetlink) && !requires.contains(&Requirement::KernelEsp) {
        requires.push(Requirement::KernelEsp);
    }
    (requires, backend)
}
