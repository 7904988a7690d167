//! clientseg: which kinds of clients does a bookkeeping agency (代理记账公司) have?
//!
//! Data flows one way, one module per stage (docs/architecture.md):
//!
//! ```text
//! ingest -> validate -> features -> history -> preprocess -> analysis -> stability -> output
//! ```
//!
//! `ingest`, `validate`, `features` and `export` work on polars frames; `history` keeps
//! what the analyses that learn from the past need (who left when, a sample of whole
//! client histories, features as of any past month); `preprocess` is
//! the boundary that turns the feature table into an ndarray matrix; `cluster`,
//! `classify` and `segments` are the algorithms the analyses use and see only ndarray;
//! `analysis` holds the analyses behind one contract; `stability` keeps segment ids
//! across runs; `output` writes the run folder through `export`, `report` and `persist`.
//! `config` checks the settings once; `pipeline` runs the stages in order; `push`,
//! `generate` and `bench` are tools beside the flow.

pub mod analysis;
pub mod bench;
pub mod check;
pub mod classify;
pub mod cluster;
pub mod columns;
pub mod config;
pub mod export;
pub mod features;
pub mod format;
pub mod generate;
pub mod history;
pub mod ingest;
pub mod init;
pub mod model;
pub mod output;
pub mod params;
pub mod persist;
pub mod pipeline;
pub mod preprocess;
pub mod progress;
pub mod push;
pub mod report;
pub mod schema;
pub mod segments;
pub mod stability;
pub mod validate;
pub mod whatif;
