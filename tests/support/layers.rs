//! The library's layers do not import each other in a circle: the module
//! graph (who names `crate::<module>` where) is acyclic, and the model
//! names no other module at all. Read from the sources, test code left
//! out, so a new cycle fails this test rather than a reviewer's eye.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use libtest_mimic::Failed;

/// Top-level module → the top-level modules its (non-test) code names.
fn graph(src: &Path) -> Result<BTreeMap<String, BTreeSet<String>>, Failed> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src)? {
        let rel = file.strip_prefix(src)?;
        let module = rel
            .components()
            .next()
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            })
            .unwrap_or_default();
        if module == "main" || module == "lib" || rel.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file)?;
        // Test modules come last in every file.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let deps = g.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    }
    Ok(g)
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, Failed> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(rust_files(&p)?);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(out)
}

/// A cycle through `at`, if the graph has one reachable from it.
fn cycle(
    g: &BTreeMap<String, BTreeSet<String>>,
    at: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|p| p == at) {
        let mut c = path[i..].to_vec();
        c.push(at.to_string());
        return Some(c);
    }
    if !done.insert(at.to_string()) {
        return None;
    }
    path.push(at.to_string());
    for d in g.get(at).into_iter().flatten() {
        if let Some(c) = cycle(g, d, path, done) {
            return Some(c);
        }
    }
    path.pop();
    None
}

/// No import cycle among the library's modules; the model is a leaf.
pub fn no_import_cycles() -> Result<(), Failed> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src)?;
    if let Some(deps) = g.get("model").filter(|d| !d.is_empty()) {
        return Err(format!("model must import nothing else of vpnlab; it names {deps:?}").into());
    }
    for m in g.keys() {
        // A fresh search from every module: `done` only prunes within one.
        if let Some(c) = cycle(&g, m, &mut Vec::new(), &mut BTreeSet::new()) {
            return Err(format!("import cycle: {}", c.join(" -> ")).into());
        }
    }
    for (m, deps) in &g {
        eprintln!(
            "{m} -> {}",
            deps.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}
