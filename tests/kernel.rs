//! The fast k-means kernel against scikit-learn, from the same starting centres: with
//! scikit-learn's stopping rule it must reach scikit-learn's inertia (1e-9 relative).
//! Needs the benches' Python environment (scripts/test.sh makes it, sets
//! CLIENTSEG_TEST_PYTHON and runs these ignored tests).

use std::path::Path;
use std::process::Command;

use clientseg::bench::{synthetic, write_npy};
use clientseg::cluster::kernel::{self, Rows, StopRule};
use clientseg::cluster::FastKMeansParams;
use linfa::prelude::*;
use rand::SeedableRng;

/// The Python with scikit-learn that scripts/test.sh prepares. The tests that call this
/// are ignored by plain `cargo test`; run with --include-ignored without it, they fail
/// saying so.
fn python() -> String {
    std::env::var("CLIENTSEG_TEST_PYTHON")
        .expect("CLIENTSEG_TEST_PYTHON is not set: scripts/test.sh prepares Python with scikit-learn")
}

/// Runs a Python command with a time limit.
fn python_output(cmd: &mut Command) -> std::process::Output {
    crate::util::output_within(cmd, std::time::Duration::from_secs(300))
}

fn sklearn(py: &str, x: &ndarray::Array2<f64>, init: &ndarray::Array2<f64>, dir: &Path) -> serde_json::Value {
    let (xp, ip) = (dir.join("x.npy"), dir.join("init.npy"));
    write_npy(&xp, x).unwrap();
    write_npy(&ip, init).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/kmeans_ref.py");
    let out = python_output(Command::new(py).arg(script).arg(&xp).arg(&ip).args(["--tol", "1e-4"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
#[ignore = "needs Python with scikit-learn: scripts/test.sh prepares it and runs ignored tests"]
fn fast_kernel_reaches_sklearn_inertia_from_the_same_start() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    for (n, d, k, seed) in [(20_000, 6, 5, 3), (50_000, 16, 8, 4)] {
        let x = synthetic(n, d, k, seed);
        let rows = Rows::new(x.view());
        let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(seed);
        let init = kernel::kmeans_plus_plus(&rows, k, kernel::default_trials(k), &mut rng);
        let reference = sklearn(&py, &x, &init, dir.path());
        let fast = FastKMeansParams {
            k,
            n_runs: 1,
            max_iterations: 300,
            tolerance: 1e-4,
            rule: StopRule::Sklearn,
            seed: 0,
            init: Some(init.clone()),
        }
        .fit(&DatasetBase::from(x.view()))
        .unwrap();
        let theirs = reference["inertia"].as_f64().unwrap();
        let rel = (fast.inertia - theirs).abs() / theirs;
        assert!(
            rel <= 1e-9,
            "{n}x{d} k={k}: inertia {} vs {theirs} ({rel:e})",
            fast.inertia
        );
        assert_eq!(
            fast.n_iter as u64,
            reference["n_iter"].as_u64().unwrap(),
            "{n}x{d} k={k}"
        );
        assert!(fast.n_iter > 3, "too easy a case: {} iterations", fast.n_iter);
        // The linfa rule from the same start stops elsewhere: the match above is the rule's.
        let other = FastKMeansParams {
            k,
            n_runs: 1,
            max_iterations: 300,
            tolerance: 1e-4,
            rule: StopRule::Linfa,
            seed: 0,
            init: Some(init),
        }
        .fit(&DatasetBase::from(x.view()))
        .unwrap();
        assert_ne!(other.n_iter, fast.n_iter);
    }
}

/// Both silhouette implementations (the sampled one and the shared-distance sweep that k
/// selection uses) against scikit-learn's silhouette_score, to 1e-9, on a few hundred
/// points in overlapping clusters. (The three-point hand case is a unit test in cluster.)
#[test]
#[ignore = "needs Python with scikit-learn: scripts/test.sh prepares it and runs ignored tests"]
fn silhouette_matches_sklearn() {
    use clientseg::cluster;
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    for (n, d, k, seed) in [(300, 3, 3, 1), (600, 5, 4, 2), (450, 8, 6, 3)] {
        let x = synthetic(n, d, k, seed);
        let c = cluster::fit(x.view(), k, &kmeans_settings(), seed).unwrap();
        let all: Vec<usize> = (0..n).collect();
        let ours = cluster::silhouette(x.view(), &c.labels, k, &all);
        let swept = cluster::silhouettes(x.view(), &[(c.labels.clone(), k)])[0];
        let xp = dir.path().join("x.npy");
        let lp = dir.path().join("labels.npy");
        write_npy(&xp, &x).unwrap();
        let labels = ndarray::Array2::from_shape_fn((n, 1), |(i, _)| c.labels[i] as f64);
        write_npy(&lp, &labels).unwrap();
        let code = "import sys, numpy as np\nfrom sklearn.metrics import silhouette_score\nx = np.load(sys.argv[1]); l = np.load(sys.argv[2])[:, 0].astype(int)\nprint(repr(float(silhouette_score(x, l))))";
        let out = python_output(Command::new(&py).args(["-c", code]).arg(&xp).arg(&lp));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let reference: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(
            (ours - reference).abs() < 1e-9,
            "n={n}: {ours} vs scikit-learn {reference}"
        );
        assert!(
            (swept - reference).abs() < 1e-9,
            "n={n}: sweep {swept} vs scikit-learn {reference}"
        );
    }
}

fn kmeans_settings() -> clientseg::config::KMeansSettings {
    clientseg::config::KMeansSettings {
        backend: clientseg::config::KMeansBackend::Fast,
        n_runs: 4,
        max_iterations: 300,
        tolerance: 1e-4,
    }
}
