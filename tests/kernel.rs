//! The fast k-means kernel against scikit-learn, from the same starting centres: with
//! scikit-learn's stopping rule it must reach scikit-learn's inertia (1e-9 relative).
//! Needs the benches' Python environment (scripts/test.sh makes it and sets
//! CLIENTSEG_TEST_PYTHON); skipped without it unless CLIENTSEG_REQUIRE_SKLEARN is set.

use std::path::Path;
use std::process::Command;

use clientseg::bench::{synthetic, write_npy};
use clientseg::cluster::kernel::{self, Rows, StopRule};
use clientseg::cluster::FastKMeansParams;
use linfa::prelude::*;
use rand::SeedableRng;

fn python() -> Option<String> {
    match std::env::var("CLIENTSEG_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var("CLIENTSEG_REQUIRE_SKLEARN").is_ok() => {
            panic!(
                "CLIENTSEG_REQUIRE_SKLEARN is set but CLIENTSEG_TEST_PYTHON is not: run the tests with scripts/test.sh"
            )
        }
        Err(_) => None,
    }
}

fn sklearn(py: &str, x: &ndarray::Array2<f64>, init: &ndarray::Array2<f64>, dir: &Path) -> serde_json::Value {
    let (xp, ip) = (dir.join("x.npy"), dir.join("init.npy"));
    write_npy(&xp, x).unwrap();
    write_npy(&ip, init).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/kmeans_ref.py");
    let out = Command::new(py)
        .arg(script)
        .arg(&xp)
        .arg(&ip)
        .args(["--tol", "1e-4"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn fast_kernel_reaches_sklearn_inertia_from_the_same_start() {
    let Some(py) = python() else { return };
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
