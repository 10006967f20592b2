//! Findings, and the helpers every concern reports them with: the span of a
//! field, names it must be one of, and the one parser of addresses.
//!
//! Addresses are family independent (`IpAddr`, `IpNet`) everywhere in
//! validation, all parsed by [`Diags::ip`]; where families must agree (a
//! link's ends, a route, a check, a tunnel's selectors) the concern that
//! pairs them says so.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;

use ipnet::IpNet;
use toml::Spanned;

use super::super::line_col;
use crate::error::{Diagnostic, ScenarioError};
use crate::model::{known, StackName};

/// The findings of one file, in the order they were found.
pub(super) struct Diags<'a> {
    path: &'a Path,
    text: &'a str,
    out: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// What an address field holds, for the message when it holds something else.
#[derive(Clone, Copy)]
enum Form {
    /// An address: `192.0.2.1`.
    Addr,
    /// An address with its prefix length: `192.0.2.1/24`.
    Net,
    /// A route's destination prefix (`default` is handled by the route).
    Prefix,
}

impl Form {
    fn not_one(self, text: &str) -> String {
        match self {
            Form::Addr => format!("`{text}` is not an IP address (e.g. 192.0.2.1)"),
            Form::Net => {
                format!("`{text}` is not an IP address with prefix length (e.g. 192.0.2.1/24)")
            }
            Form::Prefix => format!("`{text}` is not a prefix (e.g. 10.0.0.0/8) or `default`"),
        }
    }
}

impl<'a> Diags<'a> {
    pub(super) fn new(path: &'a Path, text: &'a str) -> Self {
        Diags {
            path,
            text,
            out: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(super) fn err(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl std::fmt::Display,
    ) {
        let d = self.at(span, field.into(), message.to_string());
        // The same problem found in several cells is reported once.
        if !self.out.contains(&d) {
            self.out.push(d);
        }
    }

    /// A finding at `span` of the file.
    fn at(&self, span: Range<usize>, field: String, message: String) -> Diagnostic {
        let (line, column) = line_col(self.text, span.start);
        Diagnostic {
            path: self.path.to_path_buf(),
            line,
            column,
            field,
            message,
        }
    }

    /// A lint: worth saying, not an error ([`Diags::warnings`]).
    pub(super) fn warn(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl std::fmt::Display,
    ) {
        let d = self.at(span, field.into(), message.to_string());
        if !self.warnings.contains(&d) {
            self.warnings.push(d);
        }
    }

    /// The lints found, in the order found.
    pub(super) fn warnings(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.warnings)
    }

    /// Everything found so far, as the error of the file (if anything was).
    pub(super) fn check(&mut self) -> Result<(), ScenarioError> {
        if self.out.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError::Invalid(std::mem::take(&mut self.out)))
        }
    }

    /// An address field, e.g. `192.0.2.1`.
    pub(super) fn addr(&mut self, v: &Spanned<String>, field: &str) -> Option<IpAddr> {
        self.ip(v, field, Form::Addr).map(|n| n.addr())
    }

    /// An address with prefix length, e.g. `192.0.2.1/24`.
    pub(super) fn net(&mut self, v: &Spanned<String>, field: &str) -> Option<IpNet> {
        self.ip(v, field, Form::Net)
    }

    /// A destination prefix, e.g. `10.0.0.0/8`.
    pub(super) fn prefix(&mut self, v: &Spanned<String>, field: &str) -> Option<IpNet> {
        self.ip(v, field, Form::Prefix)
    }

    /// Parse an address field of any family, and refuse the families
    /// scenarios do not support yet: the one place that decides.
    fn ip(&mut self, v: &Spanned<String>, field: &str, form: Form) -> Option<IpNet> {
        let text = v.get_ref().as_str();
        let net = text.parse::<IpNet>().ok();
        let addr = text.parse::<IpAddr>().ok();
        let parsed = match form {
            Form::Addr => addr.map(IpNet::from),
            Form::Net | Form::Prefix => net,
        };
        if parsed.is_none() {
            self.err(sp(v), field, form.not_one(text));
        }
        parsed
    }
}

pub(super) fn sp<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

/// The values of a matrix axis or list, as written.
pub(super) fn names(values: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
    values
        .get_ref()
        .iter()
        .map(|v| v.get_ref().clone())
        .collect()
}

/// Report a node name the file does not declare (listing those it does).
pub(super) fn known_node(
    d: &mut Diags<'_>,
    nodes: &BTreeSet<String>,
    s: &Spanned<String>,
    field: String,
) -> bool {
    if nodes.contains(s.get_ref()) {
        return true;
    }
    d.err(
        sp(s),
        field,
        format!(
            "unknown node `{}` (known: {})",
            s.get_ref(),
            nodes.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    );
    false
}

/// Report a stack name vpnlab has no driver for.
pub(super) fn known_stack(d: &mut Diags<'_>, st: &Spanned<String>, field: String) {
    if st.get_ref().parse::<StackName>().is_err() {
        d.err(
            sp(st),
            field,
            format!(
                "unknown stack `{}` (known: {})",
                st.get_ref(),
                known::<StackName>()
            ),
        );
    }
}
