use crate::util::*;

/// Every notebook runs headless against a fresh demo run; a cell error fails the test.
#[test]
#[ignore = "needs the notebooks' Python packages: scripts/test.sh installs notebooks/requirements.txt and runs ignored tests"]
fn notebooks_run_against_a_demo_run() {
    let python = std::env::var("CLIENTSEG_NOTEBOOK_PYTHON").expect(
        "CLIENTSEG_NOTEBOOK_PYTHON is not set: scripts/test.sh installs notebooks/requirements.txt into a venv and sets it",
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run(&["demo", "--quiet"], dir, true);
    let run_folder = run_dir(&dir.join("runs"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks/execute.py");
    let execute = || {
        output_within(
            std::process::Command::new(&python)
                .arg(&script)
                .arg(&run_folder)
                .current_dir(dir),
            std::time::Duration::from_secs(900),
        )
    };
    let out = execute();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "a notebook failed:\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for book in [
        "01_explore_a_run",
        "02_check_the_churn_model",
        "03_pricing_and_allocation_what_ifs",
    ] {
        assert!(said.contains(&format!("{book}.ipynb: ")), "{book} did not run:\n{said}");
    }
    // A file a notebook needs is missing: it fails saying which, instead of skipping.
    std::fs::remove_file(run_folder.join("churn_validation.parquet")).unwrap();
    let out = execute();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "a notebook ran without churn_validation.parquet:\n{said}"
    );
    assert!(said.contains("churn_validation.parquet is missing"), "{said}");
}
