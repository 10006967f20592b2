//! Error types of the library. Every variant names the file, node, link or
//! daemon it is about; the binary wraps them with `anyhow` at the edge.

use std::path::PathBuf;

/// A problem in a scenario file, found before anything is created.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// One or more problems at known positions in the file.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// A directory held no scenario files.
    #[error("{path}: no scenario files (*.toml) found")]
    Empty {
        /// Directory path.
        path: PathBuf,
    },
    /// Two files define a cell of the same name (names select cells, key
    /// snapshots and name pcap directories).
    #[error("{}: cell {id} is also defined by {} (set a different `name` in one of them)", path.display(), other.display())]
    Duplicate {
        /// The later file.
        path: PathBuf,
        /// The cell name.
        id: String,
        /// The file that defined it first.
        other: PathBuf,
    },
    /// Several of the above, from several files.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Several(Vec<ScenarioError>),
}

/// One validation finding: `file:line:column: field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// File the finding is in.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the offending field, e.g. `links[1].b.node`.
    pub field: String,
    /// What is wrong, and how to fix it where that is clear.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.field,
            self.message
        )
    }
}

/// A problem while building or tearing down a cell's namespaces and links.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A namespace-level operation failed.
    #[error("node {node}: cannot {op}: {source}")]
    Netns {
        /// Node name.
        node: String,
        /// What was attempted.
        op: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("node {node}: {op}: {source}")]
    Netlink {
        /// Node name.
        node: String,
        /// What was attempted, e.g. `add address 192.0.2.1/24 on to-gw`.
        op: String,
        /// Netlink error.
        source: rtnetlink::Error,
    },
    /// A node the cell does not have.
    #[error("no node {node} in this cell")]
    NoNode {
        /// Node name.
        node: String,
    },
    /// Addresses of two IP families where one is needed.
    #[error("node {node}: {what}: the addresses are of different IP families")]
    MixedFamilies {
        /// Node name.
        node: String,
        /// What was attempted.
        what: String,
    },
    /// A sysctl could not be written.
    #[error("node {node}: sysctl {key}: {source}")]
    Sysctl {
        /// Node name.
        node: String,
        /// Sysctl key.
        key: String,
        /// OS error.
        source: std::io::Error,
    },
    /// A NAT64 gateway's translator could not be started.
    #[error("node {node}: cannot start the NAT64 translator (tayga): {message}")]
    Translator {
        /// Gateway node.
        node: String,
        /// What went wrong, with the translator's own words.
        message: String,
    },
    /// The NAT ruleset was rejected by nft.
    #[error("node {node}: nft rejected the {profile} ruleset: {message}")]
    Nat {
        /// Gateway node.
        node: String,
        /// NAT profile name.
        profile: String,
        /// nft's stderr.
        message: String,
    },
}

/// Why VM mode cannot run.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// No kernel image matches.
    #[error("{0}")]
    NoKernel(String),
    /// virtme-ng or qemu is missing.
    #[error("{what} not found; install it: {install}")]
    Missing {
        /// The missing program.
        what: String,
        /// The command that installs it.
        install: String,
    },
    /// The VM could not be started or gave no report.
    #[error("VM run failed: {0}")]
    Run(String),
    /// A setting (environment variable) is not understood.
    #[error("{0}")]
    Setting(String),
    /// The UML kernel could not be built.
    #[error("cannot build the UML kernel: {0}")]
    UmlBuild(String),
    /// UML's unprivileged user is missing.
    #[error("UML runs as the unprivileged user {user}, which does not exist; create it (member of dip, for pppd): {create}")]
    UmlUser {
        /// The user's name.
        user: String,
        /// The command that creates it.
        create: String,
    },
    /// A file the guest must read is not readable by UML's user.
    #[error("the UML guest runs as {user} and cannot read {path}: make it readable by others (chmod o+r, and o+x on its directories), or run under qemu (VPNLAB_VM_ACCEL=tcg)")]
    UmlUnreadable {
        /// UML's user.
        user: String,
        /// The file.
        path: std::path::PathBuf,
    },
}

/// Why a cell could not be run to its outcome (its verdict is then
/// `error`, with this as the reason).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Its namespaces, links, NAT or capture could not be set up.
    #[error("cell {cell}: {source}")]
    Topology {
        /// The cell.
        cell: String,
        /// What failed, naming the node.
        source: TopologyError,
    },
    /// A daemon could not be started, loaded or asked.
    #[error("cell {cell}: {source}")]
    Stack {
        /// The cell.
        cell: String,
        /// What failed, naming the node.
        source: StackError,
    },
}

/// A problem that stops a batch of cells (single cells' problems are
/// their outcomes).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A setting (environment variable, option) is invalid.
    #[error("{0}")]
    Setting(String),
    /// A file or directory vpnlab needs could not be used.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        what: String,
        /// The path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// VM mode failed.
    #[error(transparent)]
    Vm(#[from] VmError),
}

/// A problem with a VPN stack (daemon start-up, control channel).
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The daemon could not be started.
    #[error("node {node}: cannot start {daemon}: {source}")]
    Spawn {
        /// Node name.
        node: String,
        /// Daemon binary.
        daemon: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The daemon did not become ready in time.
    #[error("node {node}: {daemon} not ready after {waited_ms} ms: {detail}")]
    NotReady {
        /// Node name.
        node: String,
        /// Daemon binary.
        daemon: String,
        /// How long vpnlab waited.
        waited_ms: u128,
        /// Last error seen, and the daemon's log tail.
        detail: String,
    },
    /// The stack's driver does not do this (the plan reports such cells
    /// as unsupported before they run).
    #[error("the stack's driver cannot carry out {what}")]
    Unsupported {
        /// What was asked.
        what: String,
    },
    /// A control-channel request failed.
    #[error("node {node}: {daemon} {request}: {detail}")]
    Control {
        /// Node name.
        node: String,
        /// Daemon binary.
        daemon: String,
        /// The request, e.g. `load-conn`.
        request: String,
        /// Error text.
        detail: String,
    },
    /// The daemon tried to initiate and gave up (an outcome of the cell,
    /// not a fault of the harness).
    #[error("{detail}")]
    Refused {
        /// Node name.
        node: String,
        /// The daemon's own account.
        detail: String,
    },
    /// A program the stack needs is not installed.
    #[error("node {node}: {what} is missing; install it with: {install}")]
    Missing {
        /// Node name.
        node: String,
        /// What is missing.
        what: String,
        /// The command that installs it.
        install: String,
    },
    /// Writing a generated config file failed.
    #[error("node {node}: cannot write {path}: {source}")]
    Config {
        /// Node name.
        node: String,
        /// File path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}
