use crate::util::*;

/// Two runs with the same seed write the same labels, byte for byte; scoring the same
/// data with the saved model gives the run's labels again.
#[test]
fn same_seed_same_bytes_and_score_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 600, 3, &[]);
    let cfg = config(dir, "");
    let cfg = cfg.to_string_lossy().to_string();
    run(&["run", "--config", &cfg, "--out", "a", "--quiet"], dir, true);
    run(&["run", "--config", &cfg, "--out", "b", "--quiet"], dir, true);
    let (a, b) = (run_dir(&dir.join("a")), run_dir(&dir.join("b")));
    for f in ["labels.csv", "segments.csv", "rules.txt", "rejects.csv"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between runs"
        );
    }
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["seed"], 11);

    let model = a.join("model.json").to_string_lossy().to_string();
    run(
        &[
            "score", "--model", &model, "--data", "data", "--out", "scored", "--quiet",
        ],
        dir,
        true,
    );
    let scored = run_dir(&dir.join("scored"));
    assert_eq!(
        std::fs::read(a.join("labels.csv")).unwrap(),
        std::fs::read(scored.join("labels.csv")).unwrap(),
        "score with the saved model must reproduce the run's labels"
    );
    // The model was also copied to models/.
    assert!(dir.join("models/latest.json").is_file());
}

/// A different seed is recorded, and the run still succeeds.
#[test]
fn seed_flag_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 4, &[]);
    let cfg = config(dir, "");
    run(
        &["run", "--config", &cfg.to_string_lossy(), "--seed", "99", "--quiet"],
        dir,
        true,
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir(&dir.join("runs")).join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["seed"], 99);
    assert_eq!(m["config"]["seed"], 99);
}
