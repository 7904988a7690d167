use std::collections::BTreeSet;

use crate::util::*;

fn segments(run: &std::path::Path) -> Vec<(String, String, String)> {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    m["analyses"]["behaviour"]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().into(),
                s["name_en"].as_str().unwrap().into(),
                s["name_zh"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// The same firm a month later with 10% of clients' behaviour changed: every segment
/// keeps its id and name, and migration.csv lists exactly the changed clients.
#[test]
fn ids_survive_and_migration_lists_exactly_the_movers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("a"), 2000, 7, &[]);
    generate(&dir.join("b"), 2000, 7, &["--changed", "0.1"]);
    let cfg = |name: &str, data: &str| {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!("seed = 3\n[input]\ndir = \"{data}\"\n[output]\ndir = \"runs\"\nmodels_dir = \"models\"\n"),
        )
        .unwrap();
        p.to_string_lossy().to_string()
    };
    let (ca, cb) = (cfg("a.toml", "a"), cfg("b.toml", "b"));
    run(&["run", "--config", &ca, "--out", "ra", "--quiet"], dir, true);
    // The second run finds the first through models/latest.json.
    let out = run(&["run", "--config", &cb, "--out", "rb", "--quiet"], dir, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (ra, rb) = (run_dir(&dir.join("ra")), run_dir(&dir.join("rb")));

    let (sa, sb) = (segments(&ra), segments(&rb));
    let a: BTreeSet<_> = sa.iter().cloned().collect();
    let b: BTreeSet<_> = sb.iter().cloned().collect();
    assert_eq!(a, b, "segment ids and names changed:\n{stdout}");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(rb.join("manifest.json")).unwrap()).unwrap();
    let statuses: Vec<&str> = m["stability"]["behaviour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_str().unwrap())
        .collect();
    assert!(statuses.iter().all(|s| *s == "kept"), "{statuses:?}");
    assert!(m["stability"]["behaviour"][0]["distance"].as_f64().unwrap() < 1.0);

    // Clients served to the end in both versions (one that left has no behaviour in the
    // window, whichever segment was planted).
    let served = |truth: &polars::prelude::DataFrame| -> BTreeSet<String> {
        strings(truth, "client_id")
            .into_iter()
            .zip(strings(truth, "left_month"))
            .filter(|(_, l)| l.is_empty())
            .map(|(id, _)| id)
            .collect()
    };
    let truth = read_csv(&dir.join("b/truth.csv"));
    let both: BTreeSet<String> = served(&truth)
        .intersection(&served(&read_csv(&dir.join("a/truth.csv"))))
        .cloned()
        .collect();
    let changed: BTreeSet<String> = strings(&truth, "client_id")
        .into_iter()
        .zip(strings(&truth, "changed_from"))
        .filter(|(id, c)| !c.is_empty() && both.contains(id))
        .map(|(id, _)| id)
        .collect();
    let migration = read_csv(&rb.join("migration.csv"));
    let listed: BTreeSet<String> = strings(&migration, "client_id")
        .into_iter()
        .filter(|id| both.contains(id))
        .collect();
    println!(
        "{} changed clients, {} listed in migration.csv",
        changed.len(),
        listed.len()
    );
    assert!(changed.len() > 100, "about 10% of the clients served changed");
    assert_eq!(listed, changed, "migration.csv must list exactly the changed clients");
    assert!(
        strings(&migration, "change_1").iter().all(|c| c.contains(" -> ")),
        "each row says what changed most"
    );
    for f in [
        "transitions.csv",
        "charts/transitions_behaviour.png",
        "charts/transitions_value.svg",
    ] {
        assert!(rb.join(f).is_file(), "{f} missing");
    }

    // The analyses after the segmentations read the carried-over tiers: every client's
    // tier in pricing.csv and actions.csv is its tier in labels.csv.
    let tier_of: std::collections::HashMap<String, String> = strings(&read_csv(&rb.join("labels.csv")), "client_id")
        .into_iter()
        .zip(strings(&read_csv(&rb.join("labels.csv")), "value_tier"))
        .collect();
    for file in ["pricing.csv", "actions.csv", "allocation.csv"] {
        let df = read_csv(&rb.join(file));
        let rows: Vec<(String, String)> = strings(&df, "client_id")
            .into_iter()
            .zip(strings(&df, "value_tier"))
            .collect();
        assert!(!rows.is_empty(), "{file}");
        for (id, tier) in rows {
            assert_eq!(tier_of.get(&id), Some(&tier), "{file}: client {id}");
        }
    }

    // `diff` gives the same movers for the two run folders.
    let (a_s, b_s) = (ra.to_string_lossy().to_string(), rb.to_string_lossy().to_string());
    run(&["diff", &a_s, &b_s, "--out", "diffs"], dir, true);
    let d = run_dir(&dir.join("diffs"));
    let diffed: BTreeSet<String> = strings(&read_csv(&d.join("migration.csv")), "client_id")
        .into_iter()
        .filter(|id| both.contains(id))
        .collect();
    assert_eq!(diffed, changed);
}

/// New and departed clients are rows of their own, not dropped.
#[test]
fn new_and_departed_clients_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 9, &[]);
    let (first, _) = pipeline(dir, "");
    // Next month: the first client is gone and a new one arrives (a copy under a new id).
    for table in ["clients", "billing", "activity"] {
        let path = dir.join(format!("data/{table}.csv"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with("C000001,"))
            .map(String::from)
            .collect();
        let copies: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("C000002,"))
            .map(|l| l.replacen("C000002", "C999999", 1))
            .collect();
        lines.extend(copies);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
    let cfg = config(dir, "");
    let first_s = first.to_string_lossy().to_string();
    run(
        &[
            "run",
            "--config",
            &cfg.to_string_lossy(),
            "--previous",
            &first_s,
            "--out",
            "second",
            "--quiet",
        ],
        dir,
        true,
    );
    let second = run_dir(&dir.join("second"));
    let m = read_csv(&second.join("migration.csv"));
    let rows: Vec<(String, String)> = strings(&m, "client_id")
        .into_iter()
        .zip(strings(&m, "status"))
        .collect();
    assert!(rows.contains(&("C000001".into(), "departed".into())), "{rows:?}");
    assert!(rows.contains(&("C999999".into(), "new".into())), "{rows:?}");
    let t = read_csv(&second.join("transitions.csv"));
    assert!(
        strings(&t, "from").contains(&"(new)".to_string()) && strings(&t, "to").contains(&"(departed)".to_string())
    );
}
