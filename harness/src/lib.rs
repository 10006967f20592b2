//! vpnlab: a network-emulation test harness for IPsec VPNs.
//!
//! Data flows one way, and the module tree reads in that order:
//! [`model`] (the cell and every shared vocabulary; a leaf) →
//! [`scenario`] (file → validated cells) → [`topology`] (namespaces,
//! links, NAT) → [`stack`] (IKE daemons) → [`capture`] (packets per
//! interface, path, diagnosis) → [`cell`] (one cell's run: tunnel, PPP,
//! checks, steps) → [`outcome`] (normalized observation, verdict) →
//! [`batch`] (probe the machine once, place each cell on the host or in a
//! VM, run the plan) → [`report`] (table, Markdown, JSON).
//! [`sys`] holds every raw syscall and all of the crate's `unsafe`.

#![deny(unsafe_code)]

pub mod batch;
pub mod capture;
pub mod cell;
pub mod doctor;
pub mod error;
pub mod model;
pub mod outcome;
pub mod report;
pub mod scenario;
pub mod stack;
#[allow(unsafe_code)]
pub mod sys;
pub mod topology;
