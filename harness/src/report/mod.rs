//! Human views of a run's [`crate::batch::Report`]: the per-cell table
//! ([`table`]) and a Markdown table for tickets ([`markdown`]). The JSON
//! report is the batch report itself, serialized.

mod markdown;
mod table;

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
