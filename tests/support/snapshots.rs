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
