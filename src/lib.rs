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

pub mod config;
pub mod ingest;
pub mod validate;
pub mod features;
pub mod preprocess;
pub mod cluster;
pub mod classify;
pub mod segments;
pub mod model;
pub mod migration;
pub mod persist;
pub mod report;
pub mod export;
pub mod push;
pub mod pipeline;
pub mod generate;
