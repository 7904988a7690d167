use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::{Datelike, Months, NaiveDate, Weekday};

use crate::util::*;

/// The action list's settings, written out so that the rules below do not depend on the
/// defaults.
const CONFIG: &str = "[actions]\narrears_months = 1.0\narrears_min = 100\nhorizon_days = 31\nchase_days_before = 5\n[actions.contact_months]\nV1 = 1\nV2 = 3\nV3 = 6\n[allocation]\nmax_handovers_per_accountant = 6\n";

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The tax office's deadline: the 15th, on a weekend the Monday after.
fn deadline(y: i32, m: u32) -> NaiveDate {
    let mut d = NaiveDate::from_ymd_opt(y, m, 15).unwrap();
    while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        d = d.succ_opt().unwrap();
    }
    d
}

fn next_deadline(after: NaiveDate, general: bool) -> NaiveDate {
    let mut d = NaiveDate::from_ymd_opt(after.year(), after.month(), 1).unwrap();
    loop {
        let dl = deadline(d.year(), d.month());
        if dl > after && (general || matches!(d.month(), 1 | 4 | 7 | 10)) {
            return dl;
        }
        d = d.checked_add_months(Months::new(1)).unwrap();
    }
}

fn features(run: &Path) -> HashMap<String, (f64, f64)> {
    let f = read_parquet(&run.join("features.parquet"));
    let (owed, late) = (floats(&f, "open_receivables"), floats(&f, "late_documents_3m"));
    strings(&f, "client_id")
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, (owed[i], late[i])))
        .collect()
}

/// Every action type worked out again from the run's inputs and its other outputs, and
/// compared both ways with actions.csv: no action whose reason does not hold (precision)
/// and no client the rule names without its action (recall).
fn check(dir: &Path, run: &Path, with_contacts: bool) -> BTreeMap<String, usize> {
    let m = manifest(run);
    let s = day(m["snapshot_date"].as_str().unwrap());
    let horizon = s + chrono::Duration::days(31);
    let labels = csv_rows(&run.join("labels.csv"));
    let pricing: HashMap<String, HashMap<String, String>> = csv_rows(&run.join("pricing.csv"))
        .into_iter()
        .map(|r| (r["client_id"].clone(), r))
        .collect();
    let feats = features(run);
    let mut last: HashMap<String, NaiveDate> = HashMap::new();
    if with_contacts {
        for c in csv_rows(&dir.join("data/contacts.csv")) {
            let d = day(&c["date"]);
            let e = last.entry(c["client_id"].clone()).or_insert(d);
            *e = (*e).max(d);
        }
    }
    let mut want: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut chase_due: HashMap<String, NaiveDate> = HashMap::new();
    for l in &labels {
        let c = &l["client_id"];
        let Some(p) = pricing.get(c) else { continue };
        let (tier, band) = (l["value_tier"].as_str(), l["churn_band"].as_str());
        let mut add = |t: &'static str| {
            want.entry(t).or_default().insert(c.clone());
        };
        if (tier == "V1" && (band == "high" || band == "medium")) || (tier == "V2" && band == "high") {
            add("churn_outreach");
        }
        let fee: f64 = p["monthly_fee"].parse().unwrap_or(f64::NAN);
        let (owed, late) = feats[c];
        if owed.is_finite() && owed > (1.0 * fee.max(0.0)).max(100.0) {
            add("collect_arrears");
        }
        if late.is_finite() && late > 0.0 {
            let dl = next_deadline(s, l["taxpayer_type"] == "general");
            let due = (dl - chrono::Duration::days(5)).max(s + chrono::Duration::days(1));
            if due <= horizon {
                add("chase_documents");
                chase_due.insert(c.clone(), due);
            }
        }
        let next = l["proposed_accountant"].as_str();
        if !next.is_empty() && next != l["accountant"] && l["handover_month"] == "1" {
            add("handover");
        }
        if l["price_flag"] == "under_priced" {
            add("fee_review");
        }
        let cycle = match tier {
            "V1" => 1,
            "V2" => 3,
            _ => 6,
        };
        let due = match (with_contacts, last.get(c)) {
            (true, Some(d)) => d.checked_add_months(Months::new(cycle)).unwrap(),
            (true, None) => s,
            (false, _) => s.checked_add_months(Months::new(cycle)).unwrap(),
        };
        if due <= horizon {
            add("contact");
        }
    }
    let actions = csv_rows(&run.join("actions.csv"));
    let mut got: HashMap<String, HashSet<String>> = HashMap::new();
    for a in &actions {
        got.entry(a["action"].clone())
            .or_default()
            .insert(a["client_id"].clone());
        if a["action"] == "chase_documents" {
            assert_eq!(Some(&day(&a["due_date"])), chase_due.get(&a["client_id"]), "{a:?}");
        }
        if a["action"] == "handover" {
            let l = labels.iter().find(|l| l["client_id"] == a["client_id"]).unwrap();
            assert_eq!(
                a["owner"], l["accountant"],
                "the accountant who has the client hands it over"
            );
        }
    }
    let mut counts = BTreeMap::new();
    for t in [
        "churn_outreach",
        "collect_arrears",
        "chase_documents",
        "handover",
        "fee_review",
        "contact",
    ] {
        let (w, g) = (want.remove(t).unwrap_or_default(), got.remove(t).unwrap_or_default());
        let wrong: Vec<&String> = g.difference(&w).take(5).collect();
        let missed: Vec<&String> = w.difference(&g).take(5).collect();
        let hit = g.intersection(&w).count() as f64;
        println!(
            "{t}: {} actions, {} due; precision {:.3}, recall {:.3}",
            g.len(),
            w.len(),
            hit / g.len().max(1) as f64,
            hit / w.len().max(1) as f64
        );
        assert!(wrong.is_empty(), "{t}: actions whose reason does not hold: {wrong:?}");
        assert!(
            missed.is_empty(),
            "{t}: clients the rule names without the action: {missed:?}"
        );
        counts.insert(t.to_string(), g.len());
    }
    assert!(got.is_empty(), "unknown action types: {:?}", got.keys());
    counts
}

#[test]
fn every_action_type_holds_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A snapshot ten days before a filing deadline month starts: documents are chased.
    generate(&dir.join("data"), 2000, 17, &["--staff", "20", "--end", "2025-12-31"]);
    let (run, _) = pipeline(dir, CONFIG);
    let counts = check(dir, &run, true);
    for (t, c) in &counts {
        assert!(*c >= 5, "{t}: only {c} actions, too few to check");
    }
    // Against the planted truth: the clients called for churn risk carry a planted
    // 3-month risk well above that of the other clients of the same tiers.
    let mut latest: HashMap<String, (String, f64)> = HashMap::new();
    for h in csv_rows(&dir.join("data/truth_hazard.csv")) {
        let r: f64 = h["risk_3m"].parse().unwrap();
        let e = latest.entry(h["client_id"].clone()).or_insert((h["month"].clone(), r));
        if h["month"] >= e.0 {
            *e = (h["month"].clone(), r);
        }
    }
    let called: HashSet<String> = csv_rows(&run.join("actions.csv"))
        .into_iter()
        .filter(|a| a["action"] == "churn_outreach")
        .map(|a| a["client_id"].clone())
        .collect();
    let served: HashSet<String> = csv_rows(&run.join("pricing.csv"))
        .into_iter()
        .map(|r| r["client_id"].clone())
        .collect();
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    for l in csv_rows(&run.join("labels.csv")) {
        let c = &l["client_id"];
        if !served.contains(c) || !(l["value_tier"] == "V1" || l["value_tier"] == "V2") {
            continue;
        }
        let Some((_, r)) = latest.get(c) else { continue };
        if called.contains(c) {
            inside.push(*r)
        } else {
            outside.push(*r)
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "planted 3-month risk: called {:.3}, not called {:.3}",
        mean(&inside),
        mean(&outside)
    );
    assert!(
        mean(&inside) > 2.0 * mean(&outside),
        "called {:.3}, others {:.3}",
        mean(&inside),
        mean(&outside)
    );
    // Without a contacts table the contact cycle starts at the snapshot: only monthly
    // (V1) contacts fall within the list's 31 days.
    std::fs::remove_file(dir.join("data/contacts.csv")).unwrap();
    std::fs::remove_dir_all(dir.join("runs")).unwrap();
    let (run, _) = pipeline(dir, CONFIG);
    let counts = check(dir, &run, false);
    assert!(counts["contact"] > 0);
}

/// Around the filing deadlines: a snapshot just after a quarter's deadline chases only
/// general taxpayers (monthly filers) within the list; one just before chases both.
#[test]
fn documents_are_chased_by_the_deadline_that_applies() {
    for (end, small_scale_due) in [("2025-09-30", true), ("2025-10-20", false)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        generate(&dir.join("data"), 800, 19, &["--end", end]);
        let (run, _) = pipeline(dir, CONFIG);
        check(dir, &run, true);
        let labels: HashMap<String, String> = csv_rows(&run.join("labels.csv"))
            .into_iter()
            .map(|l| (l["client_id"].clone(), l["taxpayer_type"].clone()))
            .collect();
        let chased: Vec<String> = csv_rows(&run.join("actions.csv"))
            .into_iter()
            .filter(|a| a["action"] == "chase_documents")
            .map(|a| labels[&a["client_id"]].clone())
            .collect();
        assert!(chased.iter().any(|t| t == "general"), "{end}");
        assert_eq!(
            chased.iter().any(|t| t != "general"),
            small_scale_due,
            "{end}: {chased:?}"
        );
    }
}
