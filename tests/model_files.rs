//! Damaged or edited model files, given to `score --model` and to `run --previous`: a
//! one-line error naming the file and what is wrong, never a panic and never a silent
//! score with mismatched parts.

use std::path::Path;

use serde_json::Value;

use crate::util::*;

fn edited(model: &Value, edit: &dyn Fn(&mut Value)) -> Value {
    let mut m = model.clone();
    edit(&mut m);
    m
}

/// Sets every split's feature index in a serialised tree.
fn set_feature_idx(v: &mut Value, idx: u64) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(split)) = map.get_mut("split") {
                split.insert("feature".into(), Value::from(idx));
            }
            map.values_mut().for_each(|c| set_feature_idx(c, idx));
        }
        Value::Array(items) => items.iter_mut().for_each(|c| set_feature_idx(c, idx)),
        _ => {}
    }
}

fn pop(v: &mut Value) {
    v.as_array_mut().unwrap().pop();
}

#[test]
fn damaged_models_are_refused_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 8, &[]);
    let (first, _) = pipeline(dir, "");
    let model: Value = serde_json::from_slice(&std::fs::read(first.join("model.json")).unwrap()).unwrap();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "short-std",
            edited(&model, &|m| {
                pop(&mut m["analyses"]["value"]["segmentation"]["scaler"]["std"])
            }),
            "scaler.std",
        ),
        (
            "long-std",
            edited(&model, &|m| {
                m["analyses"]["value"]["segmentation"]["scaler"]["std"]
                    .as_array_mut()
                    .unwrap()
                    .push(1.0.into())
            }),
            "scaler.std",
        ),
        (
            "short-mean",
            edited(&model, &|m| {
                pop(&mut m["analyses"]["behaviour"]["segmentation"]["scaler"]["mean"])
            }),
            "scaler.mean",
        ),
        (
            "short-centroid",
            edited(&model, &|m| {
                pop(&mut m["analyses"]["value"]["segmentation"]["segments"][0]["centroid"])
            }),
            "centroid",
        ),
        (
            "zero-std",
            edited(&model, &|m| {
                m["analyses"]["value"]["segmentation"]["scaler"]["std"][0] = 0.0.into()
            }),
            "std above 0",
        ),
        (
            "tree-feature",
            edited(&model, &|m| {
                set_feature_idx(&mut m["analyses"]["value"]["segmentation"]["tree"]["tree"], 99)
            }),
            "splits on feature 99",
        ),
        (
            "unknown-feature",
            edited(&model, &|m| {
                m["analyses"]["value"]["segmentation"]["features"][0] = "nonsense".into();
                m["analyses"]["value"]["segmentation"]["scaler"]["features"][0] = "nonsense".into();
            }),
            "unknown feature 'nonsense'",
        ),
        (
            "missing-field",
            edited(&model, &|m| {
                m["analyses"]["value"]["segmentation"]
                    .as_object_mut()
                    .unwrap()
                    .remove("scaler");
            }),
            "missing field",
        ),
        (
            "foreign-version",
            edited(&model, &|m| m["schema_version"] = 99.into()),
            "schema version 99",
        ),
    ];
    let cfg = config(dir, "");
    for (name, m, why) in cases {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        let p = path.to_string_lossy().to_string();
        for args in [
            vec!["score", "--model", &p, "--data", "data", "--out", "scored", "--quiet"],
            vec![
                "run",
                "--config",
                &cfg.to_str().unwrap(),
                "--previous",
                &p,
                "--out",
                "again",
                "--quiet",
            ],
        ] {
            let out = run(&args, dir, false);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("panicked"), "{name} {args:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{name}: one line: {err}");
            assert!(
                err.contains(&format!("{name}.json")) && err.contains(why),
                "{name}: {err}"
            );
            for folder in ["scored", "again"] {
                assert!(
                    !Path::new(&dir.join(folder)).exists()
                        || std::fs::read_dir(dir.join(folder))
                            .unwrap()
                            .flatten()
                            .all(|e| !e.path().is_dir()),
                    "{name}: a run folder was written"
                );
            }
        }
    }
}

/// The model's features must be computable from the data; the message names the model.
#[test]
fn score_names_the_model_when_a_feature_cannot_be_computed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 9, &[]);
    let (run_folder, _) = pipeline(dir, "");
    std::fs::remove_file(dir.join("data/activity.csv")).unwrap();
    let model = run_folder.join("model.json").to_string_lossy().to_string();
    let out = run(
        &[
            "score", "--model", &model, "--data", "data", "--out", "scored", "--quiet",
        ],
        dir,
        false,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model.json") && err.contains("uses feature"), "{err}");
}

/// A damaged models/latest.json stops the next run, naming the file and the way out,
/// instead of quietly restarting every segment id; `--previous none` then runs.
#[test]
fn a_damaged_latest_model_stops_the_run_with_the_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 8, &[]);
    let cfg = config(dir, "");
    let cfg = cfg.to_string_lossy().to_string();
    run(&["run", "--config", &cfg, "--quiet"], dir, true);
    let latest = dir.join("models/latest.json");
    let text = std::fs::read_to_string(&latest).unwrap();
    std::fs::write(&latest, &text[..text.len() / 2]).unwrap();
    let out = run(&["run", "--config", &cfg, "--quiet"], dir, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("latest.json") && err.contains("--previous none"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.join("runs")).unwrap().count(),
        1,
        "no run folder is left by the refused run"
    );
    run(&["run", "--config", &cfg, "--quiet", "--previous", "none"], dir, true);
}
