//! Golden files: what users see (labels, segments, rules, the CRM import, migration, and
//! the pricing, allocation, workload, action list and CRM tasks) from fixed runs,
//! compared byte for byte with the files under tests/golden/. They pin the results while
//! the code is restructured. `CLIENTSEG_BLESS=1` rewrites them (only when a change of
//! results is intended, and said so in its commit); scripts/test.sh refuses to run with
//! it set, so that a full test run never rewrites them.
//!
//! Runs: the committed sample (seed 42, as `demo`); a generated firm of 5,000 clients
//! (seed 7); the same firm with 10% of clients changed, compared with the first. A model
//! file of schema version 1 (tests/golden/sample/model-v1.json, written by the version
//! that stored linfa's tree) must still score and serve as the previous run.

use std::path::{Path, PathBuf};

use crate::util::*;

const LABEL_FILES: [&str; 4] = ["labels.csv", "segments.csv", "rules.txt", "crm_import.csv"];

/// What pricing, allocation and the action list write.
const ANALYSIS_FILES: [&str; 5] = [
    "pricing.csv",
    "allocation.csv",
    "workload.csv",
    "actions.csv",
    "crm_tasks.csv",
];

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
}

/// Compares (or, blessing, writes) the files of a run with the golden ones.
fn check(run: &Path, name: &str, files: &[&str]) {
    let dir = golden(name);
    if std::env::var("CLIENTSEG_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::copy(run.join(f), dir.join(f)).unwrap();
        }
        return;
    }
    for f in files {
        let got = std::fs::read_to_string(run.join(f)).unwrap();
        let want = std::fs::read_to_string(dir.join(f))
            .unwrap_or_else(|e| panic!("golden file {name}/{f}: {e} (CLIENTSEG_BLESS=1 writes it)"));
        if got != want {
            let (i, (g, w)) = got
                .lines()
                .zip(want.lines())
                .enumerate()
                .find(|(_, (g, w))| g != w)
                .unwrap_or((got.lines().count().min(want.lines().count()), ("(end)", "(end)")));
            panic!(
                "{name}/{f} differs from the golden file at line {}:\n  golden: {w}\n  now:    {g}\n({} lines now, {} golden)",
                i + 1,
                got.lines().count(),
                want.lines().count()
            );
        }
    }
}

fn config_for(dir: &Path, name: &str, data: &Path, seed: u64) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "seed = {seed}\n[input]\ndir = {:?}\n[output]\ndir = \"runs-{name}\"\nmodels_dir = \"models-{name}\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    path
}

fn fresh_run(dir: &Path, name: &str, data: &Path, seed: u64, previous: &str) -> PathBuf {
    let cfg = config_for(dir, name, data, seed);
    run(
        &[
            "run",
            "--config",
            &cfg.to_string_lossy(),
            "--previous",
            previous,
            "--quiet",
        ],
        dir,
        true,
    );
    run_dir(&dir.join(format!("runs-{name}")))
}

#[test]
fn outputs_match_the_golden_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let s = fresh_run(dir, "sample", &sample(), 42, "none");
    check(&s, "sample", &LABEL_FILES);
    check(&s, "sample", &ANALYSIS_FILES);
    generate(&dir.join("gen"), 5000, 7, &[]);
    generate(&dir.join("gen-changed"), 5000, 7, &["--changed", "0.1"]);
    let a = fresh_run(dir, "gen", &dir.join("gen"), 7, "none");
    check(&a, "gen-5000", &LABEL_FILES);
    check(&a, "gen-5000", &ANALYSIS_FILES);
    let b = fresh_run(dir, "gen-changed", &dir.join("gen-changed"), 7, &a.to_string_lossy());
    let mut with_migration = LABEL_FILES.to_vec();
    with_migration.extend(["migration.csv", "transitions.csv"]);
    check(&b, "gen-5000-changed", &with_migration);
}

#[test]
fn a_model_written_before_still_scores_and_serves_as_previous() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fixture = golden("model-v1").join("model-v1.json");
    let data = golden("model-v1").join("data");
    run(
        &[
            "score",
            "--model",
            &fixture.to_string_lossy(),
            "--data",
            &data.to_string_lossy(),
            "--out",
            "scored",
            "--quiet",
        ],
        dir,
        true,
    );
    let scored = run_dir(&dir.join("scored"));
    assert_eq!(
        std::fs::read_to_string(scored.join("labels.csv")).unwrap(),
        std::fs::read_to_string(golden("model-v1").join("labels.csv")).unwrap(),
        "scoring the sample with the fixture model must give the golden labels"
    );
    let cfg = config_for(dir, "again", &data, 42);
    let out = run(
        &[
            "run",
            "--config",
            &cfg.to_string_lossy(),
            "--previous",
            &fixture.to_string_lossy(),
        ],
        dir,
        true,
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("compared with"), "{summary}");
    let again = run_dir(&dir.join("runs-again"));
    // The same data and seed: every segment continues the fixture's, so the tiers and
    // segments agree. The run fits on the clients still served (the fixture's run fitted
    // on everyone) and adds churn risk, so a few clients at boundaries differ.
    let (now, then) = (
        read_csv(&again.join("labels.csv")),
        read_csv(&golden("model-v1").join("labels.csv")),
    );
    assert_eq!(strings(&now, "client_id"), strings(&then, "client_id"));
    for c in ["value_tier", "behaviour_segment", "behaviour_segment_en"] {
        let (a, b) = (strings(&now, c), strings(&then, c));
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64;
        assert!(same >= 0.97, "{c}: only {:.1}% agree", same * 100.0);
    }
}
