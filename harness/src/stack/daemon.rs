//! The one way a driver runs a long-lived program in a node: spawn it
//! ([`Daemon::spawn`], from a [`Spec`]), wait until it is ready
//! ([`Daemon::ready`], bounded, with the caller's probe), explain a failure
//! with its log tail, and stop it ([`Daemon::stop`]). Every driver's daemon
//! (charon, pluto, a command stack's `start`) goes through here, so start-up
//! bounds, the NotReady error and teardown behave the same for all of them.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::error::StackError;
use crate::topology::netns::Netns;

/// `PATH` for daemons: system directories only, nothing of vpnlab's caller.
pub const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// How many log lines a NotReady error carries.
const TAIL_LINES: usize = 8;

/// How long a daemon gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What to run in a node, and where its output goes.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Name in NotReady errors (`charon`, `pluto`, a `start` program).
    pub name: String,
    /// The program (its path is the name in spawn errors).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Bind mounts of its private mount namespace (`(source, target)`).
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Its whole environment: nothing of vpnlab's own leaks in.
    pub env: Vec<(String, String)>,
    /// The file its stderr goes to (created afresh). It is the first file
    /// of the log tail: it has what the program said before its own log
    /// was open.
    pub stderr: PathBuf,
    /// Send stdout to the same file; otherwise it is discarded.
    pub stdout_too: bool,
    /// The program's own log files, read after `stderr` for the tail.
    pub logs: Vec<PathBuf>,
    /// Lines starting with this are debug output, left out of the tail.
    pub debug_prefix: Option<&'static str>,
    /// A directory whose new files are worth probing again at once (the
    /// control socket appears there): readiness then follows the event
    /// instead of the next pause.
    pub wake_on: Option<PathBuf>,
}

impl Spec {
    /// The command, inside `ns`, with its output going to `stderr` (an
    /// already-open file).
    fn command(&self, ns: &Netns, stderr: std::fs::File) -> std::io::Result<Command> {
        let mut c = ns.command(&self.program.to_string_lossy(), self.binds.clone());
        let stdout = if self.stdout_too {
            Stdio::from(stderr.try_clone()?)
        } else {
            Stdio::null()
        };
        c.args(&self.args)
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdout(stdout)
            .stderr(stderr);
        Ok(c)
    }

    /// Spawn it in `ns` as a bare child process (for callers that keep
    /// their own children, like the PPP layer).
    pub fn spawn_child(&self, ns: &Netns) -> std::io::Result<Child> {
        self.command(ns, std::fs::File::create(&self.stderr)?)?
            .spawn()
    }
}

/// How [`Daemon::ready`] waits.
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    /// Upper bound from the first probe.
    pub limit: Duration,
    /// Pause after the first unsuccessful probe; doubled after each
    /// further one, up to `max_pause`.
    pub pause: Duration,
    /// The longest pause between probes.
    pub max_pause: Duration,
    /// The reason a NotReady error gives when the program exited first,
    /// from its exit status and the last probe's answer.
    pub exited: fn(&ExitStatus, &str) -> String,
}

/// One readiness probe's answer.
pub enum Probe<T> {
    /// Ready, with what the probe obtained (a control connection, a status).
    Ready(T),
    /// Not ready yet, and why (the last reason ends up in the error).
    NotYet(String),
}

/// A program running in a node, owned until [`Daemon::stop`].
pub struct Daemon {
    node: String,
    name: String,
    child: Child,
    logs: Vec<PathBuf>,
    debug_prefix: Option<&'static str>,
    created: Option<Created>,
}

/// New files in a directory, as an async event stream (inotify).
struct Created(inotify::EventStream<[u8; 1024]>);

impl Created {
    /// Watch `dir` for files created in it (set up before the daemon
    /// starts, so its first file is not missed).
    fn watch(dir: &std::path::Path) -> std::io::Result<Created> {
        let ino = inotify::Inotify::init()?;
        ino.watches().add(dir, inotify::WatchMask::CREATE)?;
        Ok(Created(ino.into_event_stream([0; 1024])?))
    }

    /// Until some file was created (the events themselves do not matter).
    async fn next(&mut self) {
        use futures::StreamExt;
        if self.0.next().await.is_none() {
            // The watch is gone: only the pauses are left.
            std::future::pending::<()>().await;
        }
    }
}

impl Daemon {
    /// Spawn `spec` in `ns` (node `node`). Failing to create its log file is
    /// a Config error, failing to spawn it a Spawn error.
    pub fn spawn(ns: &Netns, node: &str, spec: Spec) -> Result<Daemon, StackError> {
        let log = std::fs::File::create(&spec.stderr).map_err(|source| StackError::Config {
            node: node.to_string(),
            path: spec.stderr.clone(),
            source,
        })?;
        // Without the watch, readiness falls back to the pauses alone.
        let created = spec.wake_on.as_deref().and_then(|d| Created::watch(d).ok());
        let child = spec
            .command(ns, log)
            .and_then(|mut c| c.spawn())
            .map_err(|source| StackError::Spawn {
                node: node.to_string(),
                daemon: spec.program.display().to_string(),
                source,
            })?;
        Ok(Daemon {
            node: node.to_string(),
            name: spec.name,
            child,
            logs: std::iter::once(spec.stderr).chain(spec.logs).collect(),
            debug_prefix: spec.debug_prefix,
            created,
        })
    }

    /// Probe until the daemon is ready, it exits, or `wait.limit` passes.
    ///
    /// A probe runs to completion (callers bound their own), so its answer
    /// makes it into the error; the pause between probes races the
    /// program's exit, so an exit is noticed at once. A ready answer wins
    /// over an exit seen at the same time, and an exit over the time limit.
    /// A probe's own error (say, a status program that hangs) is returned
    /// as it is.
    pub async fn ready<T, F, Fut>(
        &mut self,
        wait: &Readiness,
        mut probe: F,
    ) -> Result<T, StackError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Probe<T>, StackError>>,
    {
        let started = Instant::now();
        let mut pause = wait.pause;
        loop {
            let last = match probe().await? {
                Probe::Ready(t) => return Ok(t),
                Probe::NotYet(why) => why,
            };
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(started, (wait.exited)(&status, &last)));
            }
            if started.elapsed() > wait.limit {
                return Err(self.not_ready(started, last));
            }
            let created = async {
                match &mut self.created {
                    Some(c) => c.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.child.wait() => {}
                _ = created => {}
            }
            pause = (pause * 2).min(wait.max_pause);
        }
    }

    fn not_ready(&self, started: Instant, why: String) -> StackError {
        StackError::NotReady {
            node: self.node.clone(),
            daemon: self.name.clone(),
            waited_ms: started.elapsed().as_millis(),
            detail: format!("{why}\n{}", self.log_tail()),
        }
    }

    /// The last lines of the daemon's stderr and log files, for errors.
    pub fn log_tail(&self) -> String {
        let text: String = self
            .logs
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect();
        tail(&text, TAIL_LINES, self.debug_prefix)
    }

    /// Stop the daemon and reap it (see [`terminate`]).
    pub async fn stop(self) {
        terminate(self.child).await;
    }

    /// Kill the daemon outright and reap it: for a daemon whose graceful
    /// shutdown only tidies up what the cell's teardown discards anyway
    /// (its SAs and routes in namespaces about to go), and whose log is
    /// written line by line, so nothing of it is lost.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The last `n` lines of `text`, without those starting with `debug`.
fn tail(text: &str, n: usize, debug: Option<&str>) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| debug.is_none_or(|d| !l.starts_with(d)))
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Stop a program vpnlab started: SIGTERM, so it can remove its SAs and
/// sockets, then SIGKILL after 3 s; reaped either way.
pub async fn terminate(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Remove what a killed daemon left in its directory (its pid file and
/// control socket), so that starting it again (a `crash` step) finds
/// neither a stale lock nor a dead socket. The directory is the
/// endpoint's own.
pub fn clear_stale(dir: &Path, names: &[&str]) {
    for n in names {
        let _ = std::fs::remove_file(dir.join(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon outside any namespace (`sh -c script`, stderr into a log
    /// file), so the waiting logic is tested without privileges.
    fn plain(test: &str, script: &str) -> Daemon {
        let dir = std::env::temp_dir().join(format!("vpnlab-daemon-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("test.stderr");
        let child = Command::new("sh")
            .args(["-c", script])
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Daemon {
            node: "n".into(),
            name: "testd".into(),
            child,
            logs: vec![log],
            debug_prefix: None,
            created: None,
        }
    }

    /// Stop the test daemon and remove its directory.
    async fn finish(d: Daemon) {
        let dir = d.logs[0].parent().unwrap().to_path_buf();
        d.stop().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    const WAIT: Readiness = Readiness {
        limit: Duration::from_secs(10),
        pause: Duration::from_millis(1),
        max_pause: Duration::from_millis(10),
        exited: |status, last| format!("testd exited ({status}); {last}"),
    };

    fn detail(e: StackError) -> String {
        match e {
            StackError::NotReady { detail, .. } => detail,
            other => panic!("not a NotReady error: {other}"),
        }
    }

    #[tokio::test]
    async fn ready_gives_the_probe_answer_once_it_is_ready() {
        let mut d = plain("ready", "exec sleep 30");
        let mut tries = 0;
        let got = d
            .ready(&WAIT, || {
                tries += 1;
                let n = tries;
                async move {
                    Ok(match n {
                        3 => Probe::Ready(n),
                        _ => Probe::NotYet("not yet".into()),
                    })
                }
            })
            .await
            .unwrap();
        assert_eq!(got, 3);
        let t = Instant::now();
        finish(d).await;
        assert!(t.elapsed() < STOP_GRACE, "SIGTERM was enough");
    }

    #[tokio::test]
    async fn an_exit_ends_the_wait_with_the_last_answer_and_log_tail() {
        let mut d = plain("exit", "echo 'cannot bind' >&2; exit 3");
        let t = Instant::now();
        let e = d
            .ready(&WAIT, || async {
                Ok(Probe::<()>::NotYet("no socket".into()))
            })
            .await
            .unwrap_err();
        assert!(t.elapsed() < WAIT.limit);
        assert_eq!(
            detail(e),
            "testd exited (exit status: 3); no socket\ncannot bind"
        );
        finish(d).await;
    }

    #[tokio::test]
    async fn the_limit_ends_the_wait_with_the_last_reason() {
        let mut d = plain("limit", "exec sleep 30");
        let wait = Readiness {
            limit: Duration::from_millis(30),
            ..WAIT
        };
        let mut tries = 0;
        let e = d
            .ready(&wait, || {
                tries += 1;
                let why = format!("try {tries}");
                async move { Ok(Probe::<()>::NotYet(why)) }
            })
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("node n: testd not ready after "));
        assert_eq!(detail(e), format!("try {tries}\n"));
        finish(d).await;
    }

    #[tokio::test]
    async fn a_probe_error_is_returned_as_it_is() {
        let mut d = plain("probe-error", "exec sleep 30");
        let e = d
            .ready(&WAIT, || async {
                Err::<Probe<()>, _>(StackError::Control {
                    node: "n".into(),
                    daemon: "testd".into(),
                    request: "status".into(),
                    detail: "hung".into(),
                })
            })
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "node n: testd status: hung");
        finish(d).await;
    }

    #[test]
    fn tail_keeps_the_last_lines_without_debug_output() {
        let text = "a\n| debug 1\nb\nc\n| debug 2\nd\n";
        assert_eq!(tail(text, 2, Some("| ")), "c\nd");
        assert_eq!(tail(text, 2, None), "| debug 2\nd");
        assert_eq!(tail(text, 8, Some("| ")), "a\nb\nc\nd");
        assert_eq!(tail("", 8, None), "");
    }

    #[tokio::test]
    async fn a_new_file_in_the_watched_directory_wakes_the_wait() {
        let dir = std::env::temp_dir().join(format!("vpnlab-created-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut created = Created::watch(&dir).unwrap();
        std::fs::write(dir.join("charon.vici"), "").unwrap();
        // Bounded only against a hang: the event is already queued.
        let woke = tokio::time::timeout(Duration::from_secs(10), created.next()).await;
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            woke.is_ok(),
            "no event for a file created in the watched directory"
        );
    }
}
