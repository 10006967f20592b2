//! vpnlab's UML kernel: built once from Debian's `linux-source-6.12` with
//! the fragment `kernel.config` merged over `make ARCH=um defconfig`, and
//! cached under a key made of the source's version, the fragment and this
//! recipe, so a new source or fragment builds anew and nothing else does.
//!
//! Why our own: Debian's `user-mode-linux` package lacks the nftables
//! families a NAT gateway needs. Why 6.12 and not 6.1: a page fault in a
//! UML guest is a round trip through the host, and under 6.12 (its UML
//! memory management was reworked after 6.1) a process starts with less
//! than half the faults, so a libreswan cell takes about 40 % less CPU.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::error::VmError;

/// The config fragment (every option the cells need, all built in).
pub const FRAGMENT: &str = include_str!("kernel.config");
/// What a build needs besides the source package.
const BUILD_TOOLS: &str = "bc bison flex make gcc libc6-dev xz-utils";

/// A kernel series vpnlab builds, each from Debian's source package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Series {
    /// 6.12 (bookworm-security): what UML runs by default.
    #[default]
    V6_12,
    /// 6.1 (bookworm): for `--time-travel` only. Under 6.12,
    /// `time-travel=inf-cpu` hangs before the kernel prints its first line.
    V6_1,
}

impl Series {
    /// The series for a run on the virtual clock or not.
    pub fn for_clock(virtual_time: bool) -> Self {
        if virtual_time {
            Series::V6_1
        } else {
            Series::default()
        }
    }

    /// `6.12`.
    pub fn name(self) -> &'static str {
        match self {
            Series::V6_12 => "6.12",
            Series::V6_1 => "6.1",
        }
    }

    /// Debian's package with the kernel source.
    pub fn package(self) -> String {
        format!("linux-source-{}", self.name())
    }

    /// Where that package puts the source.
    fn source(self) -> String {
        format!("/usr/src/linux-source-{}.tar.xz", self.name())
    }

    /// What the build needs, installed.
    pub fn install(self) -> String {
        format!(
            "apt-get install -y --no-install-recommends {} {BUILD_TOOLS}",
            self.package()
        )
    }

    /// The fragment with this series' own options: 6.1 has named
    /// nftables objects (ct helper, ct timeout) as an option of its own,
    /// which 6.12 builds into nf_tables.
    fn fragment(self) -> String {
        match self {
            Series::V6_12 => FRAGMENT.to_string(),
            Series::V6_1 => format!("{FRAGMENT}CONFIG_NFT_OBJREF=y\n"),
        }
    }
}

/// Changes whenever the build steps below change what they produce.
const RECIPE: &str = "vpnlab-uml-1";
/// A prebuilt kernel to use instead (no build, no cache).
pub const KERNEL_ENV: &str = "VPNLAB_UML_KERNEL";
/// Where built kernels are kept.
pub const CACHE_ENV: &str = "VPNLAB_UML_CACHE";

/// A kernel ready to run.
#[derive(Debug, Clone)]
pub struct Built {
    /// The stripped `linux` binary.
    pub path: PathBuf,
    /// Where it came from: the cache key, or the setting.
    pub origin: String,
    /// Seconds its build took, when this cache built it.
    pub build_secs: Option<f64>,
}

/// A kernel the cache does not hold yet.
#[derive(Debug, Clone)]
pub struct ToBuild {
    series: Series,
    key: String,
    cache: PathBuf,
}

impl ToBuild {
    /// Its directory in the cache.
    fn dir(&self) -> PathBuf {
        self.cache.join(&self.key)
    }

    /// Where the built kernel will be.
    pub fn path(&self) -> PathBuf {
        self.dir().join("linux")
    }
}

/// The cache directory.
pub fn cache_dir() -> PathBuf {
    std::env::var_os(CACHE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/vpnlab/uml"))
}

/// The kernel to run: `VPNLAB_UML_KERNEL`, else the cached build of
/// `series` for the installed source, else what would be built.
pub fn find(series: Series) -> Result<Result<Built, ToBuild>, VmError> {
    if let Some(p) = std::env::var_os(KERNEL_ENV) {
        let path = PathBuf::from(p);
        return if path.is_file() {
            Ok(Ok(Built {
                origin: format!("{KERNEL_ENV}={}", path.display()),
                path,
                build_secs: None,
            }))
        } else {
            Err(VmError::NoKernel(format!(
                "{KERNEL_ENV}={}: no such file",
                path.display()
            )))
        };
    }
    let version = source_version(series)?;
    let key = key(series, &version);
    let cache = cache_dir();
    let path = cache.join(&key).join("linux");
    if path.is_file() {
        let build_secs = std::fs::read_to_string(cache.join(&key).join("build-seconds"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        return Ok(Ok(Built {
            path,
            origin: format!("{} {version}, cached as {key}", series.package()),
            build_secs,
        }));
    }
    Ok(Err(ToBuild { series, key, cache }))
}

/// The installed source package's version.
fn source_version(series: Series) -> Result<String, VmError> {
    let missing = || {
        VmError::NoKernel(format!(
            "the UML kernel is built from {}, which is not installed; install it: {}",
            series.package(),
            series.install()
        ))
    };
    if !Path::new(&series.source()).is_file() {
        return Err(missing());
    }
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", &series.package()])
        .output()
        .map_err(|_| missing())?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !v.is_empty() {
        Ok(v)
    } else {
        Err(missing())
    }
}

/// The cache key: source version, fragment and recipe.
fn key(series: Series, version: &str) -> String {
    let mut h = Sha256::new();
    for part in [RECIPE, version, &series.fragment()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hex: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}-{hex}", series.name())
}

/// The kernel, built first if the cache lacks it (blocking: minutes).
/// Concurrent callers wait for one build.
pub fn ensure(series: Series) -> Result<Built, VmError> {
    match find(series)? {
        Ok(b) => Ok(b),
        Err(to) => {
            let _lock = lock(&to.cache)?;
            // Another process may have built it while we waited.
            match find(series)? {
                Ok(b) => Ok(b),
                Err(to) => build(&to),
            }
        }
    }
}

fn lock(cache: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, VmError> {
    std::fs::create_dir_all(cache).map_err(|e| fail(format!("{}: {e}", cache.display())))?;
    let path = cache.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| fail(format!("cannot lock {}: {e}", path.display())))
}

fn fail(m: String) -> VmError {
    VmError::UmlBuild(m)
}

/// Build into the cache: unpack, configure, check the configuration, make,
/// strip. The tree is removed afterwards (it is 1.5 GB).
fn build(to: &ToBuild) -> Result<Built, VmError> {
    let started = Instant::now();
    let tree = to.cache.join(format!("build-{}", to.key));
    let log = to.cache.join(format!("{}.build.log", to.key));
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(&tree).map_err(|e| fail(format!("{}: {e}", tree.display())))?;
    let result = build_in(&tree, &log, to);
    let _ = std::fs::remove_dir_all(&tree);
    result?;
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::write(to.dir().join("build-seconds"), format!("{secs:.0}\n"));
    let _ = std::fs::remove_file(&log);
    Ok(Built {
        path: to.path(),
        origin: format!("{}, built now as {}", to.series.package(), to.key),
        build_secs: Some(secs),
    })
}

fn build_in(tree: &Path, log: &Path, to: &ToBuild) -> Result<(), VmError> {
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let fragment = tree.join("vpnlab.config");
    let wanted_config = to.series.fragment();
    std::fs::write(&fragment, &wanted_config).map_err(|e| fail(e.to_string()))?;
    let frag = fragment.to_string_lossy().into_owned();
    let source = to.series.source();
    let steps: [(&str, Vec<&str>); 4] = [
        ("tar", vec!["xf", &source, "--strip-components=1"]),
        ("make", vec!["ARCH=um", "defconfig"]),
        (
            "scripts/kconfig/merge_config.sh",
            vec!["-m", ".config", &frag],
        ),
        ("make", vec!["ARCH=um", "olddefconfig"]),
    ];
    for (prog, args) in &steps {
        step(tree, log, prog, args)?;
    }
    check_config(&tree.join(".config"), &wanted_config)?;
    let j = format!("-j{jobs}");
    step(tree, log, "make", &["ARCH=um", &j, "linux"])?;
    let dir = to.dir();
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    let tmp = dir.join("linux.partial");
    let tmp_s = tmp.to_string_lossy().into_owned();
    step(tree, log, "strip", &["-o", &tmp_s, "linux"])?;
    std::fs::rename(&tmp, to.path()).map_err(|e| fail(e.to_string()))
}

/// Run one build step in `tree`, its output appended to `log`.
fn step(tree: &Path, log: &Path, prog: &str, args: &[&str]) -> Result<(), VmError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| fail(format!("{}: {e}", log.display())))?;
    let err = out.try_clone().map_err(|e| fail(e.to_string()))?;
    let status = Command::new(prog)
        .args(args)
        .current_dir(tree)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| {
            fail(format!(
                "cannot run {prog} ({e}); install the build tools: apt-get install -y --no-install-recommends {BUILD_TOOLS}"
            ))
        })?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(fail(format!(
        "`{prog} {}` failed ({status}); the whole log is {}:\n{}",
        args.join(" "),
        log.display(),
        tail.join("\n")
    )))
}

/// Every option of the fragment as it ended up after `olddefconfig`: an
/// option whose dependencies are missing is dropped silently by kconfig.
fn check_config(config: &Path, fragment: &str) -> Result<(), VmError> {
    let text = std::fs::read_to_string(config).map_err(|e| fail(e.to_string()))?;
    let have: std::collections::HashSet<&str> = text.lines().collect();
    let lost: Vec<&str> = wanted(fragment)
        .filter(|line| !have.contains(line))
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "the configuration lost {} of the fragment's options: {}",
            lost.len(),
            lost.join(", ")
        )))
    }
}

/// The fragment's settings: `CONFIG_X=y` and `# CONFIG_X is not set`.
fn wanted(fragment: &str) -> impl Iterator<Item = &str> {
    fragment.lines().filter(|l| {
        l.starts_with("CONFIG_") || (l.starts_with("# CONFIG_") && l.ends_with(" is not set"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_series_source_and_fragment_only() {
        let k = |v| key(Series::V6_12, v);
        assert_eq!(k("6.12.118-1"), k("6.12.118-1"));
        assert_ne!(k("6.12.118-1"), k("6.12.119-1"));
        assert!(k("6.12.118-1").starts_with("6.12-"));
        assert!(key(Series::V6_1, "6.1.192-1").starts_with("6.1-"));
        assert_eq!(Series::for_clock(true), Series::V6_1);
        assert!(wanted(&Series::V6_1.fragment()).any(|l| l == "CONFIG_NFT_OBJREF=y"));
        assert!(!wanted(&Series::V6_12.fragment()).any(|l| l == "CONFIG_NFT_OBJREF=y"));
    }

    #[test]
    fn the_fragment_asks_for_what_cells_need() {
        let w: Vec<&str> = wanted(FRAGMENT).collect();
        for needed in [
            "CONFIG_HOSTFS=y",
            "CONFIG_NF_TABLES_INET=y",
            "CONFIG_NFT_NAT=y",
            "CONFIG_INET_ESP=y",
            "CONFIG_INET6_ESP=y",
            "CONFIG_XFRM_USER=y",
            "CONFIG_PPPOL2TP=y",
            "CONFIG_UML_TIME_TRAVEL_SUPPORT=y",
            "# CONFIG_MODULES is not set",
        ] {
            assert!(w.contains(&needed), "{needed} missing from kernel.config");
        }
    }
}
