//! A cell whose namespaces exist: everything teardown must release, held
//! together so that every path (success, a failed step, an error, `--keep`)
//! ends in the same [`Teardown`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::future::join_all;

use super::nat64::Translator;
use super::ppp::PppLayer;
use crate::stack::Running;
use crate::topology::Topology;

/// The live parts of a cell.
pub struct Live {
    /// Namespaces, links and NAT.
    pub topo: Topology,
    /// The stacks that started (teardown stops exactly these).
    pub stacks: Vec<Running>,
    /// The PPP layer's daemons, once started.
    pub ppp: Option<PppLayer>,
    /// NAT64 gateways' translators.
    pub translators: Vec<Translator>,
    /// The cell's files (configs, logs, sockets) in the run's tmpfs.
    pub dir: PathBuf,
}

impl Live {
    /// What is left to release once the outcome is known.
    pub fn into_teardown(self, cell: &str, logs_dir: Option<&Path>) -> Teardown {
        Teardown {
            live: self,
            logs: logs_dir.map(|d| d.join(cell)),
        }
    }
}

/// Releasing a cell: daemons stopped and reaped, logs copied (`--logs`),
/// namespaces dropped, files removed. It may run while the next cell runs;
/// the batch waits for it before it finishes.
pub struct Teardown {
    live: Live,
    logs: Option<PathBuf>,
}

/// What a teardown took, and what went wrong on the way.
#[derive(Debug, Default)]
pub struct TornDown {
    /// Milliseconds from start to the last file removed.
    pub ms: f64,
    /// Problems that do not change the outcome (a log not copied).
    pub notes: Vec<String>,
    /// The logs copied (`--logs`).
    pub log_files: Vec<PathBuf>,
}

impl Teardown {
    /// Release everything.
    pub async fn run(self) -> TornDown {
        let t = Instant::now();
        let Teardown { live, logs } = self;
        let Live {
            topo,
            stacks,
            ppp,
            translators,
            dir,
        } = live;
        if let Some(mut l) = ppp {
            l.stop().await;
        }
        join_all(translators.into_iter().map(Translator::stop)).await;
        join_all(stacks.into_iter().map(Running::stop)).await;
        tracing::debug!(
            ms = super::round_ms(t.elapsed()),
            "teardown: daemons stopped"
        );
        let mut notes = Vec::new();
        let mut log_files = Vec::new();
        if let Some(dest) = logs {
            match save_logs(&dir, &dest) {
                Ok(files) => log_files = files,
                Err(e) => notes.push(format!(
                    "cannot copy daemon logs to {}: {e}",
                    dest.display()
                )),
            }
        }
        tracing::debug!(ms = super::round_ms(t.elapsed()), "teardown: logs");
        drop(topo);
        tracing::debug!(
            ms = super::round_ms(t.elapsed()),
            "teardown: namespaces dropped"
        );
        let _ = std::fs::remove_dir_all(&dir);
        TornDown {
            ms: super::round_ms(t.elapsed()),
            notes,
            log_files,
        }
    }
}

/// `--logs`: copy the daemons' log files (`*.log`, `*.stderr`) to
/// `dest/<dir>-<file>`.
fn save_logs(celldir: &Path, dest: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dest)?;
    let mut files = Vec::new();
    // One directory per endpoint (named after its node), per PPP end
    // (`ppp-<node>`) and per NAT64 translator (`nat64-<node>`).
    let Ok(dirs) = std::fs::read_dir(celldir) else {
        return Ok(files);
    };
    for d in dirs.flatten().filter(|d| d.path().is_dir()) {
        let prefix = d.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(d.path())?.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".log") || name.ends_with(".stderr") {
                let to = dest.join(format!("{prefix}-{name}"));
                std::fs::copy(f.path(), &to)?;
                files.push(to);
            }
        }
    }
    files.sort();
    Ok(files)
}
