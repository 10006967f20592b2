//! Running many cells: the run sandbox and VM mode.

pub mod sandbox;
pub mod vm;
