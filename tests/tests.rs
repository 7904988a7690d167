//! Integration tests: run the `clientseg` binary in a temp folder on generated data and
//! check what an analyst would check: the files, their columns, the segments found and
//! the errors shown.

mod util;

/// The action list worked out again from the run's data, type by type, both ways.
mod actions;
/// Pricing and allocation: the rules hold, moves near the solver's bound, planted
/// under-pricing found, what-if re-plans, impossible staff lists explained.
mod allocation;
/// Bad input: the documented error or reject line, and nothing lost.
mod bad_input;
/// The bench's Python side does the same job: the same files, comparable quality.
mod bench_job;
/// Churn risk: close to the planted hazard, calibrated, no look-ahead, short histories.
mod churn;
/// The compact reader of plain billing and activity files agrees with the general one.
mod compact;
/// A further analysis through the contract alone reaches every output.
mod contract;
/// Runs killed or interrupted at several points leave only complete runs; concurrent runs.
mod crash;
/// Exports as Chinese bookkeeping software, a firm's own sheets and an English system
/// write them run with no config; ambiguous headers and files are named, not guessed.
mod exports;
/// Golden files pin labels, segments, rules, the CRM import and migration.
mod golden;
/// The bad-input contract: one test per class of hostile input.
mod hostile;
/// The fast k-means kernel reaches scikit-learn's inertia from the same start.
mod kernel;
/// Damaged or edited model files are refused with the file named.
mod model_files;
/// The analysts' notebooks execute against a fresh demo run.
mod notebooks;
/// Every output exists with its documented columns; charts are valid files.
mod outputs;
/// Pricing on firms unlike the generator's default: negotiated fees, a firm's own hourly
/// cost, teams without time sheets, fees of every size.
mod pricing;
/// Random mutations never panic; the readers agree; parsing matches a reference.
mod properties;
/// Labels into the CRM's database (SQLite always; PostgreSQL when a server is given) and
/// the CRM import file.
mod push;
/// Planted segments are recovered; value tiers follow the planted value order.
mod recovery;
/// report.html opened in a real (headless) browser, in both languages.
mod report;
/// Same seed, same bytes; save -> load -> score gives the run's labels.
mod reproducible;
/// Segment ids survive reruns; migration lists exactly the clients that moved.
mod stability;
