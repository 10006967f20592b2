//! Scenario files: the file as written ([`file`]), validation and matrix
//! expansion into [`Cell`]s of the [`crate::model`]. Nothing is created
//! here: validation reads only the scenario files (and checks that the
//! programs a `command` stack names are executable), and every problem is
//! reported with file, line, column and field before anything runs.

pub mod file;
mod validate;

use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, ScenarioError};
pub use crate::model::Cell;

/// A loaded, validated scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Scenario name.
    pub name: String,
    /// Source file.
    pub path: PathBuf,
    /// Description from the file.
    pub description: String,
    /// The expanded cells.
    pub cells: Vec<Cell>,
    /// Lints: what the file may say but likely does not mean (`vpnlab
    /// check` prints them; they fail nothing).
    pub warnings: Vec<crate::error::Diagnostic>,
}

/// Load and validate one scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Validate scenario text (the path is used for messages and the default name).
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let file: file::ScenarioFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let (line, column) = line_col(text, span.start);
        ScenarioError::Invalid(vec![Diagnostic {
            path: path.to_path_buf(),
            line,
            column,
            field: field_at(text, span.start),
            message: e.message().trim().to_string(),
        }])
    })?;
    validate::validate(path, text, file)
}

/// Collect scenario files from files and directories (directories are
/// searched recursively for `*.toml`, in sorted order).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        if p.is_dir() {
            let before = out.len();
            walk(p, &mut out).map_err(|source| ScenarioError::Read {
                path: p.clone(),
                source,
            })?;
            if out.len() == before {
                return Err(ScenarioError::Empty { path: p.clone() });
            }
        } else {
            out.push(p.clone());
        }
    }
    // The same file named twice (or through a directory) is read once.
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    Ok(out)
}

/// Every cell of every scenario file under `paths` (see [`discover`]), in
/// file order. Every file is validated; all their problems are reported
/// together, and so is a cell name defined by two files.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Cell>, ScenarioError> {
    load_linted(paths).map(|(cells, _)| cells)
}

/// [`load_all`], with every file's lints ([`Scenario::warnings`]).
pub fn load_linted(
    paths: &[PathBuf],
) -> Result<(Vec<Cell>, Vec<crate::error::Diagnostic>), ScenarioError> {
    let mut cells: Vec<Cell> = Vec::new();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for f in discover(paths)? {
        match load(&f) {
            Ok(s) => {
                warnings.extend(s.warnings);
                for c in s.cells {
                    match cells.iter().find(|x| x.id == c.id) {
                        Some(x) => errors.push(ScenarioError::Duplicate {
                            path: c.file.clone(),
                            id: c.id.clone(),
                            other: x.file.clone(),
                        }),
                        None => cells.push(c),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok((cells, warnings)),
        1 => Err(errors.remove(0)),
        _ => Err(ScenarioError::Several(errors)),
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}

/// The dotted path of the field at `offset`, for parse errors that carry
/// only a position: the enclosing `[table]` or `[[array]]` entry (with its
/// index), the key on that line, and the key inside an inline table.
fn field_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    // The table the line belongs to.
    let mut table = String::new();
    let mut arrays: std::collections::BTreeMap<String, usize> = Default::default();
    for l in text[..line_start].lines().map(str::trim) {
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let n = arrays.entry(name.trim().to_string()).or_insert(0);
            table = format!("{}[{}]", name.trim(), *n);
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        }
    }
    let join = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            format!("{a}.{b}")
        }
    };
    if line.starts_with('[') {
        return line.trim_matches(|c| c == '[' || c == ']').to_string();
    }
    let Some((key, value)) = line.split_once('=') else {
        return table;
    };
    let mut path = join(&table, key.trim());
    // Inside an inline table: name the inner key the error points at.
    let col = offset - line_start;
    let raw = &text[line_start..line_end];
    if value.trim_start().starts_with('{') {
        if let Some(inner) = raw[..col.min(raw.len())].rsplit([',', '{']).next() {
            let inner_key = raw[col.min(raw.len())..]
                .split(['=', ',', '}'])
                .next()
                .map(str::trim)
                .filter(|k| !k.is_empty() && inner.trim().is_empty());
            if let Some(k) = inner_key {
                path = join(&path, k);
            }
        }
    }
    path
}

#[cfg(test)]
mod deploy_tests;
#[cfg(test)]
mod tests;
