use std::collections::BTreeMap;

use crate::util::*;

/// 5,000 generated clients (seed 7, unlike the sample's): the behaviour segments found
/// match the planted ones with ARI >= 0.8 among the clients still served (one that left
/// has no behaviour in the last 12 months to recover), and the value tiers keep the
/// planted order.
#[test]
fn planted_segments_are_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 5000, 7, &[]);
    let truth_path = dir.join("truth.csv");
    std::fs::rename(dir.join("data/truth.csv"), &truth_path).unwrap();
    let (run, stdout) = pipeline(dir, "");

    let labels = read_csv(&run.join("labels.csv"));
    let truth = read_csv(&truth_path);
    let ids = strings(&labels, "client_id");
    let served: std::collections::BTreeSet<String> = strings(&truth, "client_id")
        .into_iter()
        .zip(strings(&truth, "left_month"))
        .filter(|(_, left)| left.is_empty())
        .map(|(id, _)| id)
        .collect();
    let by_id: BTreeMap<String, (String, String, f64)> = strings(&truth, "client_id")
        .into_iter()
        .zip(strings(&truth, "segment"))
        .zip(
            strings(&truth, "value_tier")
                .into_iter()
                .zip(strings(&truth, "value_score")),
        )
        .map(|((id, seg), (tier, score))| (id, (seg, tier, score.parse().unwrap())))
        .collect();
    assert_eq!(ids.len(), 5000, "every client labelled");
    let keep: Vec<usize> = (0..ids.len()).filter(|&i| served.contains(&ids[i])).collect();
    assert!(keep.len() > 3000, "{} clients still served", keep.len());
    let all_found = strings(&labels, "behaviour_segment");
    let found: Vec<String> = keep.iter().map(|&i| all_found[i].clone()).collect();
    let planted: Vec<String> = keep.iter().map(|&i| by_id[&ids[i]].0.clone()).collect();
    let score = ari(&found, &planted);
    println!("behaviour ARI against planted segments: {score:.3}\n{stdout}");
    assert!(score >= 0.8, "ARI {score:.3} < 0.8\n{stdout}");

    // Value: mean planted value score falls from V1 to V3, and most planted-high
    // clients are in V1.
    let tiers = strings(&labels, "value_tier");
    let mut mean: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut high_in_v1 = (0.0, 0.0);
    for (id, t) in ids.iter().zip(&tiers).filter(|(id, _)| served.contains(*id)) {
        let (_, planted_tier, value) = &by_id[id];
        let e = mean.entry(t.clone()).or_default();
        e.0 += value;
        e.1 += 1.0;
        if planted_tier == "high" {
            high_in_v1.1 += 1.0;
            if t == "V1" {
                high_in_v1.0 += 1.0;
            }
        }
    }
    let means: Vec<f64> = ["V1", "V2", "V3"].iter().map(|t| mean[*t].0 / mean[*t].1).collect();
    assert!(
        means[0] > means[1] && means[1] > means[2],
        "tier means not ordered: {means:?}"
    );
    let share = high_in_v1.0 / high_in_v1.1;
    println!("planted high-value clients in V1: {:.1}%", share * 100.0);
    assert!(
        share > 0.8,
        "only {:.1}% of planted high-value clients in V1",
        share * 100.0
    );
}
