//! Views of a run's [`crate::batch::Report`]: the per-cell table
//! ([`table`]), a Markdown table for tickets ([`markdown`]), JUnit XML for
//! CI systems ([`junit`]), a self-contained HTML page with packet ladders
//! ([`html()`]), and what changed between two runs ([`diff`]).
//! The JSON report is the batch report itself, serialized.

pub mod diff;
mod html;
mod junit;
mod markdown;
mod table;

pub use html::html;
pub use junit::junit;
pub use markdown::{markdown, why};
pub use table::table;

/// How the results table is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, then the details of cells that did not pass.
    Text,
    /// A Markdown table a support engineer can paste into a ticket.
    Markdown,
}
