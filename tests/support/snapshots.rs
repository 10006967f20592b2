//! The accepted snapshots match the cells: a snapshot no cell writes (a
//! renamed or removed cell's) is an error, and so is one waiting for
//! review (`.snap.new`, `.pending-snap`): CI never accepts snapshots.

use libtest_mimic::Failed;

use super::cells::snapshot_name;
use super::snapshots_dir;

/// Every file in tests/snapshots/ is the accepted snapshot of one of `ids`.
pub fn none_unreferenced(ids: &[String]) -> Result<(), Failed> {
    let names: std::collections::BTreeSet<String> = ids.iter().map(|i| snapshot_name(i)).collect();
    let mut stray = Vec::new();
    for e in std::fs::read_dir(snapshots_dir())? {
        let file = e?.file_name().to_string_lossy().into_owned();
        match file.strip_suffix(".snap") {
            Some(stem) if names.contains(stem) => {}
            Some(_) => stray.push(format!("{file}: no cell writes it (remove it)")),
            None => stray.push(format!(
                "{file}: not an accepted snapshot (`cargo insta review`)"
            )),
        }
    }
    if stray.is_empty() {
        Ok(())
    } else {
        Err(format!("tests/snapshots/:\n  {}", stray.join("\n  ")).into())
    }
}

/// No bundled outcome's diagnosis contradicts itself
/// ([`vpnlab::outcome::contradictions`]): every accepted snapshot is read
/// back as an outcome and checked.
pub fn no_contradictions() -> Result<(), Failed> {
    let mut found = Vec::new();
    let mut read = 0;
    for e in std::fs::read_dir(snapshots_dir())? {
        let path = e?.path();
        if path.extension().is_none_or(|x| x != "snap") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        // insta's header: `---`, metadata, `---`, then the YAML body.
        let body = text.splitn(3, "---\n").nth(2).unwrap_or("");
        let o: vpnlab::outcome::Outcome = serde_yaml_ng::from_str(body)
            .map_err(|e| format!("{}: not an outcome: {e}", path.display()))?;
        read += 1;
        for c in vpnlab::outcome::contradictions(&o) {
            found.push(format!("{}: {c}", o.cell));
        }
    }
    if read == 0 {
        return Err("no snapshot read".into());
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!("{} contradictions:\n  {}", found.len(), found.join("\n  ")).into())
    }
}
