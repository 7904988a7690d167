//! Runs killed at several points (SIGKILL, and SIGINT as Ctrl-C sends it): runs/ holds
//! only complete runs, Ctrl-C exits 130 saying "interrupted" and leaves nothing, and the
//! next run removes whatever a killed one left. Two runs started at once both finish,
//! in two folders. (A push killed half-way: tests/push.rs.)

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Instant;

use crate::util::*;

fn spawn_run(dir: &Path, cfg: &Path) -> Child {
    bin()
        .args([
            "run",
            "--config",
            &cfg.to_string_lossy(),
            "--quiet",
            "--previous",
            "none",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts")
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn hidden(dir: &Path) -> Vec<PathBuf> {
    entries(dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect()
}

/// Every visible folder under runs/ is a complete run.
fn only_complete_runs(runs: &Path) {
    for p in entries(runs) {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('.') || !p.is_dir() {
            continue;
        }
        for f in ["manifest.json", "labels.csv", "report.html", "model.json"] {
            assert!(p.join(f).is_file(), "{name} lacks {f}: an incomplete run is visible");
        }
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: sends a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[test]
fn killed_and_interrupted_runs_leave_no_debris() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 4000, 5, &[]);
    let cfg = config(dir, "");
    let runs = dir.join("runs");
    let models = dir.join("models");

    let start = Instant::now();
    let done = spawn_run(dir, &cfg).wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let whole = start.elapsed();

    for (sig, share) in [
        (libc::SIGKILL, 0.1),
        (libc::SIGINT, 0.15),
        (libc::SIGKILL, 0.4),
        (libc::SIGINT, 0.5),
        (libc::SIGKILL, 0.7),
        (libc::SIGINT, 0.8),
        (libc::SIGKILL, 0.95),
        (libc::SIGINT, 0.97),
    ] {
        let visible = |runs: &Path| {
            entries(runs)
                .iter()
                .filter(|p| p.is_dir() && !hidden(runs).contains(p))
                .count()
        };
        let before = visible(&runs);
        let child = spawn_run(dir, &cfg);
        let pid = child.id();
        std::thread::sleep(whole.mul_f64(share));
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        only_complete_runs(&runs);
        if sig == libc::SIGINT {
            let err = String::from_utf8_lossy(&out.stderr);
            // Ctrl-C before the run folder is committed: exit 130, "interrupted", no new
            // run. After it (the signal came as the run ended): exit 0 and one new run.
            match out.status.code() {
                Some(0) => assert_eq!(visible(&runs), before + 1, "Ctrl-C at {share}: exit 0 without its run"),
                Some(130) => {
                    assert!(err.contains("interrupted"), "{err}");
                    assert_eq!(
                        visible(&runs),
                        before,
                        "Ctrl-C at {share}: interrupted, yet a run appeared"
                    );
                }
                other => panic!("Ctrl-C at {share}: exit {other:?}\n{err}"),
            }
            let mine = format!("-{pid}");
            for d in [&runs, &models] {
                let left: Vec<PathBuf> = hidden(d)
                    .into_iter()
                    .filter(|p| p.to_string_lossy().ends_with(&mine))
                    .collect();
                assert!(left.is_empty(), "Ctrl-C at {share} left {left:?}");
            }
        }
    }
    // The next run removes what the killed ones left.
    let out = spawn_run(dir, &cfg).wait_with_output().unwrap();
    assert!(out.status.success());
    only_complete_runs(&runs);
    assert!(hidden(&runs).is_empty(), "{:?}", hidden(&runs));
    assert!(hidden(&models).is_empty(), "{:?}", hidden(&models));
}

#[test]
fn two_runs_started_together_both_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 11, &[]);
    let cfg = config(dir, "");
    let a = spawn_run(dir, &cfg);
    let b = spawn_run(dir, &cfg);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let folders: Vec<PathBuf> = entries(&dir.join("runs")).into_iter().filter(|p| p.is_dir()).collect();
    assert_eq!(folders.len(), 2, "{folders:?}");
    only_complete_runs(&dir.join("runs"));
    let ids: Vec<String> = folders
        .iter()
        .map(|f| {
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(f.join("manifest.json")).unwrap()).unwrap();
            m["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);

    // Into two output folders: still two ids (the CRM push knows runs by their id).
    let spawn_into = |out: &str| {
        bin()
            .args(["run", "--config", &cfg.to_string_lossy(), "--quiet", "--out", out])
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn_into("ra"), spawn_into("rb"));
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let id = |out: &str| {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run_dir(&dir.join(out)).join("manifest.json")).unwrap()).unwrap();
        m["run_id"].as_str().unwrap().to_string()
    };
    assert_ne!(id("ra"), id("rb"));
}

/// A read-only models folder is named before any work, and no run folder appears.
#[test]
fn unwritable_models_folder_is_found_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 200, 12, &[]);
    // A file where the models folder should be: not writable, even for root.
    std::fs::write(dir.join("models"), b"not a folder").unwrap();
    let cfg = config(dir, "");
    let out = run(&["run", "--config", &cfg.to_string_lossy(), "--quiet"], dir, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("models folder") && err.contains("not writable"), "{err}");
    assert!(entries(&dir.join("runs")).iter().all(|p| !p.is_dir()));
}
