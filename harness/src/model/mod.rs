//! The leaf model: a validated cell and every vocabulary the layers share
//! (roles, modes, stacks, NAT profiles and knobs, packet classes, SA states,
//! verdicts).
//!
//! Why a leaf: scenario validation produces these types, and topology,
//! stacks, capture, outcome, batch and report consume them; if the model
//! imported any of those layers, the data flow would loop back on itself.
//! So this module imports nothing from the rest of the crate and does no
//! I/O; names and parsing of every enum come from strum and serde.

mod algorithms;
mod cause;
mod cell;
mod class;
mod identity;
mod kinds;
mod nat;
mod sa;

pub use algorithms::{algorithm, keywords, AlgKind, Algorithm, ALGORITHMS};
pub use cause::{Cause, Misconfig};
pub use cell::{
    Action, Auth, Cell, Check, CommandSpec, Endpoint, EndpointKnobs, Event, Expectation, IkeOp,
    Link, LinkEnd, NextHop, Node, OtherPeer, Ppp, Proposals, Proto, Route, Segment, Step,
};
pub use class::{Class, Flow};
pub use identity::{DnAttr, Identity, InvalidIdentity};
pub use kinds::{
    known, Backend, CheckExpect, CheckKind, Encapsulation, Mode, NatT, PppKind, Requirement, Role,
    StackKind, StackName, TunnelExpect, Verdict, WaitExpect,
};
pub use nat::{Block, Families, Filter, Knobs, Nat64, NatProfile, Ports, PrefixMap};
pub use sa::{ChildSa, EndpointState, IkeSa, Initiation, SaIds, SaState};
