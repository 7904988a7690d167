//! Integration tests: run the `clientseg` binary in a temp folder on generated data and
//! check what an analyst would check: the files, their columns, the segments found and
//! the errors shown.

mod util;

/// Bad input: the documented error or reject line, and nothing lost.
mod bad_input;
/// The compact reader of plain billing and activity files agrees with the general one.
mod compact;
/// The fast k-means kernel reaches scikit-learn's inertia from the same start.
mod kernel;
/// Every output exists with its documented columns; charts are valid files.
mod outputs;
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
