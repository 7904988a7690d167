//! The bench compares clientseg with the same job in pandas + scikit-learn
//! (benches/pandas_sklearn.py with pandas_job.py). A ratio means something only when both
//! sides do the same work: here both run on one generated firm, and the Python side must
//! write the same kinds of files, score the same churn test rows and reach comparable
//! quality. Needs the benches' Python environment (scripts/test.sh prepares it).

use std::path::Path;
use std::process::Command;

use crate::util;

fn python() -> String {
    std::env::var("CLIENTSEG_TEST_PYTHON")
        .expect("CLIENTSEG_TEST_PYTHON is not set: scripts/test.sh prepares Python with scikit-learn")
}

fn rows(path: &Path) -> usize {
    util::read_csv(path).height()
}

#[test]
#[ignore = "needs Python with scikit-learn: scripts/test.sh prepares it and runs ignored tests"]
fn the_python_side_does_the_same_job_with_comparable_quality() {
    let py = python();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    util::generate(&dir.join("data"), 3_000, 5, &["--staff", "60"]);
    let (run, _) = util::pipeline(dir, "[actions]\nenabled = true\n");
    let m = util::manifest(&run);

    let out = dir.join("python");
    let benches = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches");
    let mut cmd = Command::new(&py);
    cmd.arg(benches.join("pandas_sklearn.py"))
        .arg("--input")
        .arg(dir.join("data"))
        .arg("--out")
        .arg(&out)
        .args(["--seed", "11"])
        .args([
            "--value-features",
            "fees_12m,contribution_margin,tenure_months,n_services",
        ])
        .args([
            "--behaviour-features",
            "late_payment_share,vouchers_cv,late_documents_share,activity_trend",
        ]);
    let res = util::output_within(&mut cmd, std::time::Duration::from_secs(600));
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).expect("one JSON object");

    // The same files, written by both.
    for f in [
        "labels.csv",
        "labels.parquet",
        "features.parquet",
        "crm_import.csv",
        "crm_tasks.csv",
        "pricing.csv",
        "allocation.csv",
        "workload.csv",
        "workload.xlsx",
        "actions.csv",
        "segments.xlsx",
        "fee_response.xlsx",
        "churn_validation.parquet",
        "report.html",
        "actions/index.html",
    ] {
        assert!(run.join(f).is_file(), "clientseg wrote no {f}");
        assert!(out.join(f).is_file(), "the Python job wrote no {f}");
    }
    let charts = |d: &Path| {
        std::fs::read_dir(d.join("charts"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "png"))
            .count()
    };
    assert!(charts(&out) >= 14, "{} charts", charts(&out));
    assert!(charts(&run) >= 14, "{} charts", charts(&run));

    // The same definitions: the same clients still served are priced and allocated, and
    // the churn validation scores the same test rows.
    assert_eq!(rows(&out.join("pricing.csv")), rows(&run.join("pricing.csv")));
    assert_eq!(rows(&out.join("allocation.csv")), rows(&run.join("allocation.csv")));
    assert_eq!(rows(&out.join("labels.csv")), rows(&run.join("labels.csv")));
    let theirs = &v["churn"]["horizons"];
    for ours in m["analyses"]["churn"]["validation"].as_array().unwrap() {
        let h = ours["months"].as_i64().unwrap();
        let t = theirs
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["months"].as_i64() == Some(h))
            .unwrap_or_else(|| panic!("no {h}m horizon on the Python side"));
        let chosen = &ours[ours["chosen"].as_str().unwrap()];
        assert_eq!(
            t["test_rows"].as_f64().unwrap(),
            chosen["clients"].as_f64().unwrap(),
            "{h}m test rows"
        );
        let (a, b) = (
            t[format!("{}_auc", t["chosen"].as_str().unwrap())].as_f64().unwrap(),
            chosen["roc_auc"].as_f64().unwrap(),
        );
        assert!((a - b).abs() <= 0.05, "{h}m ROC-AUC: pandas+sklearn {a}, clientseg {b}");
        assert!(a > 0.6, "{h}m ROC-AUC of the Python side {a}: no better than chance");
    }

    // Allocation under the same rules: within the cap, everyone placed when clientseg
    // places everyone, and a number of moves of the same order.
    let q = |k: &str| v["quality"][k].as_f64().unwrap_or_else(|| panic!("no quality {k}"));
    let plan = &m["analyses"]["allocation"]["plan"];
    assert!(q("allocation peak utilisation") <= 0.85 + 1e-9);
    if plan["unplaced"].as_f64() == Some(0.0) {
        assert_eq!(q("allocation unplaced"), 0.0);
    }
    let moves = plan["moves"].as_f64().unwrap();
    assert!(moves > 0.0, "a firm generated over capacity needs moves");
    assert!(
        q("allocation moves") >= moves * 0.8 && q("allocation moves") <= moves * 2.0,
        "moves: pandas+sklearn {}, clientseg {moves}",
        q("allocation moves")
    );
    // The action list: the same kinds of actions, of the same order of number.
    let ours = m["analyses"]["actions"]["actions"].as_f64().unwrap();
    let theirs = q("actions");
    assert!(
        (theirs - ours).abs() <= 0.25 * ours,
        "actions: pandas+sklearn {theirs}, clientseg {ours}"
    );
    // Python's bootstrap is the resample it claims: its interval holds its own estimate.
    for t in v["churn"]["horizons"].as_array().unwrap() {
        let ci = t["roc_auc_ci"].as_array().unwrap();
        let auc = t[format!("{}_auc", t["chosen"].as_str().unwrap())].as_f64().unwrap();
        assert!(ci[0].as_f64().unwrap() < auc && auc < ci[1].as_f64().unwrap(), "{t}");
    }
}
