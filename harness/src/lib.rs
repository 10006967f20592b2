//! vpnlab: a network-emulation test harness for IPsec VPNs.
//!
//! Data flows one way: [`scenario`] (file → validated cells) → [`topology`]
//! (namespaces, links, NAT) → [`stack`] (daemons) → [`ppp`] (an optional
//! L2TP or PPTP link over them) → [`check`] (traffic) →
//! [`outcome`] (normalized observation, verdict) → [`report`].
//! [`run`] orchestrates one cell; [`sandbox`] makes sure a run leaves nothing
//! behind; [`sys`] holds the raw syscalls.

pub mod capture;
pub mod check;
pub mod doctor;
pub mod error;
pub mod events;
pub mod link;
pub mod model;
pub mod nat;
pub mod netns;
pub mod outcome;
pub mod pki;
pub mod ppp;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod scenario;
pub mod stack;
pub mod sys;
pub mod topology;
pub mod vm;
