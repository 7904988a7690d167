//! The analysis contract: a further analysis, written here and only registered beside
//! the configured ones, reaches labels.csv, the CRM import, the report and the manifest
//! without any change to the orchestrator.

use std::collections::BTreeMap;

use clientseg::analysis::{self, Analysis, AnalysisError, Context, Outcome, Section};
use clientseg::columns::{OutputColumn, SqlType};
use clientseg::config::{RawConfig, Settings};
use clientseg::pipeline::{self, RunOptions};
use clientseg::progress::Stages;
use polars::prelude::*;

use crate::util::*;

/// A rule-based tier from the archive's company size: S1 (large) to S4 (micro).
struct ScaleTiers;

impl Analysis for ScaleTiers {
    fn id(&self) -> &'static str {
        "scale"
    }

    fn fit(&self, ctx: &Context, _stages: &mut Stages) -> Result<Outcome, AnalysisError> {
        let failed = |e: PolarsError| AnalysisError::Failed {
            analysis: "scale".into(),
            message: e.to_string(),
        };
        let scale = ctx
            .table
            .df
            .column("scale")
            .map_err(failed)?
            .str()
            .map_err(failed)?
            .clone();
        let tiers: Vec<Option<&str>> = scale
            .iter()
            .map(|s| match s {
                Some("large") => Some("S1"),
                Some("medium") => Some("S2"),
                Some("small") => Some("S3"),
                Some("micro") => Some("S4"),
                _ => None,
            })
            .collect();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for t in tiers.iter().flatten() {
            *counts.entry(t.to_string()).or_default() += 1;
        }
        let lines = counts
            .iter()
            .map(|(t, n)| (format!("{t}: {n} clients"), format!("{t}：{n} 位客户")))
            .collect();
        Ok(Outcome {
            columns: vec![Column::new("scale_tier".into(), tiers)],
            declared: vec![OutputColumn::category(
                "scale_tier",
                "scale tier",
                "规模层级",
                &[("S1", "large", "大型"), ("S4", "micro", "微型")],
            )
            .crm("scale tier")
            .push(SqlType::Text)
            .tracked("scale", "Scale tier transitions", "规模层级变化")],
            section: Some(Section {
                id: "scale-tiers".into(),
                title: ("Scale tiers".into(), "规模分层".into()),
                lines,
                tables: Vec::new(),
            }),
            headline: Some((format!("scale tiers: {counts:?}"), String::new())),
            summary: Some(serde_json::json!({ "counts": counts })),
            ..Outcome::empty("scale")
        })
    }
}

#[test]
fn a_further_analysis_reaches_every_output_through_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 19, &[]);
    let mut raw = RawConfig::default();
    raw.input.dir = Some(dir.join("data"));
    raw.output.models_dir = Some(dir.join("models"));
    let s = Settings::from_raw(&raw, dir).unwrap();
    let opts = RunOptions {
        out_dir: dir.join("runs"),
        command: "test".into(),
        progress: false,
    };
    let mut analyses = analysis::configured(&s.analyses);
    analyses.push(Box::new(ScaleTiers));
    let report = pipeline::run_with(&s, &opts, &analyses).unwrap();
    let run = report.run_dir;

    let labels = read_csv(&run.join("labels.csv"));
    let tiers = strings(&labels, "scale_tier");
    let scales = strings(&labels, "scale");
    for (t, sc) in tiers.iter().zip(&scales) {
        let want = match sc.as_str() {
            "large" => "S1",
            "medium" => "S2",
            "small" => "S3",
            "micro" => "S4",
            _ => "",
        };
        assert_eq!(t, want, "scale {sc}");
    }
    assert!(tiers.iter().any(|t| t == "S4") && tiers.iter().any(|t| t == "S3"));
    // The segmentations' columns are still there, in their places.
    assert_eq!(headers(&run.join("labels.csv"))[1], "value_tier");

    let crm = read_csv(&run.join("crm_import.csv"));
    assert_eq!(strings(&crm, "scale tier"), tiers);
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(page.contains("id=\"scale-tiers\"") && page.contains("Scale tiers"));
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    assert!(m["analyses"]["scale"]["counts"]["S4"].as_u64().unwrap() > 0);
    assert!(report.summary.contains("scale tiers:"), "{}", report.summary);
}
