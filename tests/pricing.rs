use std::collections::HashSet;
use std::path::Path;

use crate::util::*;

/// A run on a generated firm with extra generator flags and config lines.
fn firm(dir: &Path, clients: usize, seed: u64, flags: &[&str], extra: &str) -> std::path::PathBuf {
    generate(&dir.join("data"), clients, seed, flags);
    pipeline(dir, extra).0
}

/// Fees negotiated client by client around a 42% margin, at a firm whose hour costs 85
/// CNY: under-pricing is a continuous shortfall, not a gap. The flag is measured against
/// the planted truth "margin below 30%", the suggested fee against the planted fair fee.
#[test]
fn negotiated_fees_at_a_firm_with_its_own_hourly_cost() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = firm(
        dir,
        5000,
        21,
        &["--staff", "60", "--fees", "negotiated", "--hourly-cost", "85"],
        "[features]\nhourly_cost = 85\n",
    );
    let truth: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        csv_rows(&dir.join("data/truth.csv"))
            .into_iter()
            .map(|r| (r["client_id"].clone(), r))
            .collect();
    let pricing = csv_rows(&run.join("pricing.csv"));
    let margins: Vec<f64> = pricing
        .iter()
        .map(|r| truth[&r["client_id"]]["true_margin"].parse::<f64>().unwrap())
        .collect();
    // Continuous: true margins fill the band around the target, no gap.
    let near = margins.iter().filter(|m| (0.2..0.4).contains(*m)).count();
    assert!(
        near as f64 > 0.15 * margins.len() as f64,
        "{near} of {} near the target",
        margins.len()
    );
    let flagged: HashSet<&str> = pricing
        .iter()
        .filter(|r| r["price_flag"] == "under_priced")
        .map(|r| r["client_id"].as_str())
        .collect();
    let under: HashSet<&str> = pricing
        .iter()
        .map(|r| r["client_id"].as_str())
        .filter(|c| truth[*c]["underpriced"] == "true")
        .collect();
    let hit = flagged.intersection(&under).count() as f64;
    let (precision, recall) = (hit / flagged.len() as f64, hit / under.len() as f64);
    println!(
        "negotiated fees: precision {precision:.3}, recall {recall:.3}, {} under-priced",
        under.len()
    );
    assert!(under.len() > 300, "{} under-priced", under.len());
    assert!(
        precision >= 0.8 && recall >= 0.8,
        "precision {precision:.3}, recall {recall:.3}"
    );
    // Fees are what firms charge: none below 100 CNY a month.
    assert!(pricing
        .iter()
        .all(|r| r["monthly_fee"].parse::<f64>().unwrap() >= 100.0));
    // The suggested fee against the fair fee, where the +30% cap does not bind. It is
    // rounded up to a step of 50 CNY and reaches for the peers' fee per hour where that is
    // higher, so it lies above the fair fee more often than below.
    let mut errors: Vec<f64> = pricing
        .iter()
        .filter(|r| under.contains(r["client_id"].as_str()) && !r["suggested_fee"].is_empty())
        .filter(|r| !r["reason"].contains("capped") && !r["reason"].contains("halved"))
        .map(|r| {
            let fair: f64 = truth[&r["client_id"]]["fair_fee"].parse().unwrap();
            (r["suggested_fee"].parse::<f64>().unwrap() - fair).abs() / fair
        })
        .collect();
    errors.sort_by(f64::total_cmp);
    assert!(errors.len() > 100, "{} uncapped suggestions", errors.len());
    let median = errors[errors.len() / 2];
    println!(
        "suggested fee against the fair fee: median error {:.1}% over {}",
        median * 100.0,
        errors.len()
    );
    assert!(median < 0.2, "median error {median:.3}");
    // Rises are weighed against the firm's own response to them, shown as a curve.
    let response = csv_rows(&run.join("fee_response.csv"));
    assert_eq!(response.len(), 5);
    let clients: f64 = response.iter().map(|r| r["clients"].parse::<f64>().unwrap()).sum();
    assert!(clients > 3000.0, "{clients}");
    for r in &response {
        let (lo, rate, hi): (f64, f64, f64) = (
            r["leave_rate_low"].parse().unwrap(),
            r["leave_rate"].parse().unwrap(),
            r["leave_rate_high"].parse().unwrap(),
        );
        assert!(lo <= rate && rate <= hi, "{r:?}");
    }
    let p = &manifest(&run)["analyses"]["pricing"];
    let (g, g_low) = (
        p["expected_gain_12m"].as_f64().unwrap(),
        p["expected_gain_12m_pessimistic"].as_f64().unwrap(),
    );
    assert!(g > 0.0 && g_low <= g, "{g} {g_low}");
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(page.contains("How clients answered fee rises"));
}

/// Two teams keep no time sheets and serve more general taxpayers than the rest. The
/// hours model is measured on held-out teams, and the estimated clients are named.
#[test]
fn teams_without_time_sheets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = firm(dir, 4000, 23, &["--staff", "50", "--untimed-teams", "2"], "");
    let m = manifest(&run);
    let p = &m["analyses"]["pricing"];
    let hm = &p["hours_model"];
    assert_eq!(hm["holdout_by"], "team", "{hm}");
    let (mae, mean) = (
        hm["holdout_mae"].as_f64().unwrap(),
        hm["holdout_mean_hours"].as_f64().unwrap(),
    );
    assert!(
        mae <= 0.25 * mean,
        "held-out teams: error {mae:.3} h against mean {mean:.3} h"
    );
    assert!(hm["holdout_bias"].as_f64().unwrap().abs() < 0.1 * mean, "{hm}");
    let teams: Vec<String> = p["teams_without_hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(teams, ["第1组", "第2组"]);
    // The estimated clients differ from the loggers, and their estimate holds against
    // the planted hours within 25%.
    let truth: std::collections::HashMap<String, f64> = csv_rows(&dir.join("data/truth.csv"))
        .into_iter()
        .map(|r| (r["client_id"].clone(), r["current_hours"].parse().unwrap()))
        .collect();
    let pricing = csv_rows(&run.join("pricing.csv"));
    let by = |src: &str| -> Vec<(f64, f64)> {
        pricing
            .iter()
            .filter(|r| r["hours_source"] == src)
            .map(|r| (r["monthly_hours"].parse().unwrap(), truth[&r["client_id"]]))
            .collect()
    };
    let (est, logged) = (by("estimated"), by("logged"));
    assert!(
        est.len() > 1000 && logged.len() > 500,
        "{} estimated, {} logged",
        est.len(),
        logged.len()
    );
    let mean_of = |v: &[(f64, f64)]| v.iter().map(|x| x.1).sum::<f64>() / v.len() as f64;
    assert!(
        mean_of(&est) > 1.08 * mean_of(&logged),
        "the untimed teams' clients differ"
    );
    let err = est.iter().map(|(a, b)| (a - b).abs()).sum::<f64>() / est.len() as f64;
    assert!(err <= 0.25 * mean_of(&est), "estimated hours off by {err:.3}");
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        page.contains("teams held out in turn") && page.contains("第1组"),
        "the report says how hours were checked"
    );
}

/// Firms of several shapes: every under-priced client gets a suggested fee or the reason
/// why not, and a suggestion is always a rise within the cap.
#[test]
fn every_under_priced_client_gets_a_fee_or_a_reason() {
    let shapes: [(&[&str], &str); 4] = [
        // Small fees: an hour costs far more than the fees assume.
        (
            &["--fees", "negotiated", "--hourly-cost", "160", "--staff", "20"],
            "[features]\nhourly_cost = 160\n",
        ),
        // Large fees against cheap hours, and few staff.
        (
            &["--fees", "negotiated", "--hourly-cost", "30", "--staff", "5"],
            "[features]\nhourly_cost = 30\n",
        ),
        // The planted gap, many staff.
        (&["--staff", "40"], ""),
        // Planted gap with the firm's own cost higher than the generator's.
        (&["--staff", "8"], "[features]\nhourly_cost = 95\n"),
    ];
    for (k, (flags, extra)) in shapes.iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let run = firm(tmp.path(), 1500, 31 + k as u64, flags, extra);
        let pricing = csv_rows(&run.join("pricing.csv"));
        let under: Vec<_> = pricing.iter().filter(|r| r["price_flag"] == "under_priced").collect();
        assert!(under.len() >= 20, "shape {k}: {} under-priced", under.len());
        for r in &under {
            let fee: f64 = r["monthly_fee"].parse().unwrap();
            if r["suggested_fee"].is_empty() {
                assert!(
                    r["reason"].contains("held back") || r["reason"].contains("no rise suggested"),
                    "shape {k}: no fee and no reason: {r:?}"
                );
            } else {
                let new: f64 = r["suggested_fee"].parse().unwrap();
                assert!(new > fee && new <= fee * 1.3 + 1e-6, "shape {k}: {r:?}");
            }
        }
    }
}
