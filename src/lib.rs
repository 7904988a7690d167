//! clientseg: which kinds of clients does a bookkeeping agency (代理记账公司) have?
//!
//! Data flows one way, one module per stage:
//!
//! ```text
//! ingest -> validate -> features -> preprocess -> cluster / classify -> segments
//!        -> persist / report / export
//! ```
//!
//! `ingest`, `validate`, `features` and `export` work on polars frames; `preprocess` is
//! the boundary that turns the feature table into an ndarray matrix; `cluster`,
//! `classify` and `segments` see only ndarray; `report` sees only plain result data.
//! `pipeline` runs the stages in order; `generate` makes realistic test data.

pub mod analysis;
pub mod bench;
pub mod classify;
pub mod cluster;
pub mod config;
pub mod export;
pub mod features;
pub mod format;
pub mod generate;
pub mod ingest;
pub mod model;
pub mod output;
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
