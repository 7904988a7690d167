//! The analysis contract: a further analysis, written here and only registered beside
//! the configured ones, with its own config section, reads an earlier analysis through
//! its declared needs, and its category column reaches labels (CSV, Parquet, the Chinese
//! spreadsheet), the CRM import, the database push (the table gains the column in place),
//! the migration counts and the report, without any change to the crate. Its task table
//! (a follow-up per micro client) is created in the database and its rows opened there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clientseg::analysis::{self, Analysis, AnalysisError, Context, Need, Outcome, Section};
use clientseg::columns::{OutputColumn, SqlType, TaskTable};
use clientseg::config::{self, ConfigError, RawConfig, Settings};
use clientseg::pipeline::{self, RunOptions};
use clientseg::progress::Stages;
use clientseg::schema::{InputColumn, InputTable, ValueKind};
use polars::prelude::*;
use serde::Deserialize;

use crate::util::*;

/// `[analyses.scale]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawScale {
    /// Small companies join the micro ones in S4.
    merge_small: Option<bool>,
    /// The Chinese word for S4.
    micro_word: Option<String>,
}

/// `[analyses.scale]` checked.
struct ScaleTiers {
    merge_small: bool,
    micro_word: String,
}

impl ScaleTiers {
    fn from_settings(s: &Settings) -> Result<ScaleTiers, ConfigError> {
        let raw: RawScale = s.section("scale")?;
        let micro_word = raw.micro_word.unwrap_or_else(|| "微型".into());
        if micro_word.trim().is_empty() {
            return Err(config::invalid(
                "analyses.scale.micro_word",
                "must not be empty",
                "\"\"",
            ));
        }
        Ok(ScaleTiers {
            merge_small: raw.merge_small.unwrap_or(false),
            micro_word,
        })
    }
}

/// A rule-based tier from the archive's company size: S1 (large) to S4 (micro).
impl Analysis for ScaleTiers {
    fn id(&self) -> &'static str {
        "scale"
    }

    fn needs(&self) -> Vec<Need> {
        vec![Need::segmentation("value")]
    }

    fn inputs(&self) -> Vec<InputTable> {
        vec![InputTable {
            name: "visits".into(),
            zh: "走访记录".into(),
            columns: vec![
                InputColumn::new("client_id", "客户编号", ValueKind::Text, true),
                InputColumn::new("visit_date", "走访日期", ValueKind::Date, true),
                InputColumn::new("minutes", "时长", ValueKind::Number, false),
            ],
            per_client: true,
        }]
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
                Some("small") if !self.merge_small => Some("S3"),
                Some("small") | Some("micro") => Some("S4"),
                _ => None,
            })
            .collect();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for t in tiers.iter().flatten() {
            *counts.entry(t.to_string()).or_default() += 1;
        }
        // Read through the declared need: micro clients among the top value tier.
        let value = ctx.segmentation("value")?.expect("value tiers ran");
        let top_micro = value
            .labels
            .iter()
            .zip(&tiers)
            .filter(|(l, t)| value.model.segments[**l].id == "V1" && **t == Some("S4"))
            .count();
        // Its own input table, validated: minutes of visits to micro clients.
        let visits = ctx.input("visits").map(|v| {
            let ids = v.column("client_id").unwrap().str().unwrap().clone();
            let minutes = v.column("minutes").unwrap().f64().unwrap().clone();
            (
                v.height(),
                ids.iter()
                    .zip(minutes.iter())
                    .map(|(_, m)| m.unwrap_or(0.0))
                    .sum::<f64>(),
            )
        });
        let lines = counts
            .iter()
            .map(|(t, n)| (format!("{t}: {n} clients"), format!("{t}：{n} 位客户")))
            .collect();
        // A follow-up visit for every client in S4, kept as tasks in the CRM's database.
        let ids = ctx
            .table
            .df
            .column("client_id")
            .map_err(failed)?
            .str()
            .map_err(failed)?
            .clone();
        let micro: Vec<&str> = ids
            .iter()
            .zip(&tiers)
            .filter_map(|(id, t)| (*t == Some("S4")).then_some(id).flatten())
            .collect();
        let followup = DataFrame::new_infer_height(vec![
            Column::new("client_id".into(), micro.clone()),
            Column::new("task".into(), vec!["visit"; micro.len()]),
            Column::new("scale_tier".into(), vec!["S4"; micro.len()]),
        ])
        .map_err(failed)?;
        Ok(Outcome {
            exports: vec![("micro_followup".into(), followup)],
            tasks: vec![TaskTable {
                table: "micro_followup".into(),
                export: "micro_followup".into(),
                columns: vec![
                    ("client_id".into(), SqlType::Text),
                    ("task".into(), SqlType::Text),
                    ("scale_tier".into(), SqlType::Text),
                ],
                key: 2,
            }],
            columns: vec![Column::new("scale_tier".into(), tiers)],
            declared: vec![OutputColumn::category(
                "scale_tier",
                "scale tier",
                "规模层级",
                &[
                    ("S1", "large", "大型"),
                    ("S2", "medium", "中型"),
                    ("S3", "small", "小型"),
                    ("S4", "micro", &self.micro_word),
                ],
            )
            .crm("scale tier")
            .push(SqlType::Text)
            .tracked(
                "scale",
                "Scale tier transitions since the previous run",
                "与上次相比的规模层级变化",
            )],
            section: Some(Section {
                id: "scale-tiers".into(),
                title: ("Scale tiers".into(), "规模分层".into()),
                lines,
                tables: Vec::new(),
            }),
            headline: Some((format!("scale tiers: {counts:?}"), format!("规模分层：{counts:?}"))),
            summary: Some(serde_json::json!({
                "counts": counts,
                "micro_in_v1": top_micro,
                "visits": visits.map(|v| v.0),
                "visit_minutes": visits.map(|v| v.1),
            })),
            ..Outcome::empty("scale")
        })
    }
}

/// An analysis that reads pricing's hours, declared as needed.
struct NeedsPricing {
    declare: bool,
}

impl Analysis for NeedsPricing {
    fn id(&self) -> &'static str {
        "workload_check"
    }

    fn needs(&self) -> Vec<Need> {
        match self.declare {
            true => vec![Need::column("pricing", "monthly_hours").required()],
            false => Vec::new(),
        }
    }

    fn fit(&self, ctx: &Context, _stages: &mut Stages) -> Result<Outcome, AnalysisError> {
        ctx.column("pricing", "monthly_hours")?;
        Ok(Outcome::empty("workload_check"))
    }
}

fn settings(dir: &Path, models: &str, lang: &str, section: Option<toml::Table>) -> Result<Settings, ConfigError> {
    let mut raw = RawConfig::default();
    raw.input.dir = Some(dir.join("data"));
    raw.output.models_dir = Some(dir.join(models));
    raw.lang = Some(lang.into());
    if let Some(t) = section {
        raw.analyses.insert("scale".into(), t);
    }
    Settings::from_raw(&raw, dir)
}

fn run(s: &Settings, dir: &Path, analyses: &[Box<dyn Analysis>]) -> Result<PathBuf, String> {
    let opts = RunOptions {
        out_dir: dir.join("runs"),
        command: "test".into(),
        progress: false,
    };
    pipeline::run_with(s, &opts, analyses)
        .map(|r| r.run_dir)
        .map_err(|e| e.to_string())
}

fn with_scale(s: &Settings) -> Vec<Box<dyn Analysis>> {
    let mut analyses = analysis::configured(&s.analyses);
    analyses.push(Box::new(ScaleTiers::from_settings(s).unwrap()));
    analyses
}

fn by_client(df: &DataFrame, column: &str) -> BTreeMap<String, String> {
    strings(df, "client_id").into_iter().zip(strings(df, column)).collect()
}

#[test]
fn a_further_analysis_reaches_every_output_through_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 19, &[]);
    let db = format!("sqlite://{}", dir.join("crm.db").display());

    // A run of the built-in analyses only, pushed first: its tables have no scale_tier.
    let plain = settings(dir, "models-plain", "en", None).unwrap();
    let first = run(&plain, dir, &analysis::configured(&plain.analyses)).unwrap();
    clientseg::push::push(&first, &db, false).unwrap();

    // Then the further analysis, twice: small clients move from S3 to S4 in the second.
    let table = |merge: bool| {
        let mut t = toml::Table::new();
        t.insert("merge_small".into(), toml::Value::Boolean(merge));
        t.insert("micro_word".into(), toml::Value::String("微型企业".into()));
        t
    };
    // Its own input table, as a Chinese firm writes it: 58 good rows, one of an unknown
    // client and one with a date that is not one.
    let mut visits = String::from("\u{feff}客户编号,走访日期,时长\n");
    for i in 1..=58 {
        visits.push_str(&format!("C{i:06},2025/3/{},{}\n", 1 + i % 28, i));
    }
    visits.push_str("C999999,2025-03-02,30\nC000001,上周三,45\n合计,,1786\n");
    std::fs::write(dir.join("data/走访记录.csv"), visits).unwrap();
    let s1 = settings(dir, "models", "en", Some(table(false))).unwrap();
    let run1 = run(&s1, dir, &with_scale(&s1)).unwrap();
    let s2 = settings(dir, "models", "zh", Some(table(true))).unwrap();
    let run2 = run(&s2, dir, &with_scale(&s2)).unwrap();

    // labels.csv and labels.parquet.
    let labels = read_csv(&run1.join("labels.csv"));
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
    let small = scales.iter().filter(|s| *s == "small").count();
    assert!(small > 0 && tiers.iter().any(|t| t == "S4"));
    assert_eq!(
        headers(&run1.join("labels.csv"))[1],
        "value_tier",
        "segmentations first"
    );
    let parquet = read_parquet(&run1.join("labels.parquet"));
    assert_eq!(strings(&parquet, "scale_tier"), tiers);

    // The CRM import, under the declared header.
    let crm = read_csv(&run1.join("crm_import.csv"));
    assert_eq!(strings(&crm, "scale tier"), tiers);

    // The Chinese spreadsheet: the declared header and words.
    let mut book = calamine::open_workbook_auto(run2.join("labels.xlsx")).unwrap();
    use calamine::Reader;
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let header: Vec<String> = sheet.rows().next().unwrap().iter().map(|c| c.to_string()).collect();
    let j = header
        .iter()
        .position(|h| h == "规模层级")
        .unwrap_or_else(|| panic!("{header:?}"));
    let cells: Vec<String> = sheet.rows().skip(1).map(|r| r[j].to_string()).collect();
    assert!(
        cells.iter().any(|c| c == "微型企业") && !cells.iter().any(|c| c == "S4"),
        "{cells:?}"
    );
    assert!(!header.iter().any(|h| h == "scale_tier"));

    // Migration: every small client moved S3 -> S4, counted under the declared kind.
    let transitions = csv_rows(&run2.join("transitions.csv"));
    let moved: usize = transitions
        .iter()
        .filter(|r| r["kind"] == "scale" && r["from"] == "S3" && r["to"] == "S4")
        .map(|r| r["clients"].parse::<usize>().unwrap())
        .sum();
    assert_eq!(moved, small, "{transitions:?}");
    assert!(!transitions
        .iter()
        .any(|r| r["kind"] == "scale" && r["from"] == "S3" && r["to"] != "S4"));
    let migration = read_csv(&run2.join("migration.csv"));
    assert!(migration.column("previous_scale_tier").is_ok() && migration.column("scale_tier").is_ok());
    let chart = std::fs::read_to_string(run2.join("charts/transitions_scale.svg")).unwrap();
    assert!(chart.contains("与上次相比的规模层级变化") && chart.contains("微型企业"));

    // The report and the manifest.
    let page = std::fs::read_to_string(run1.join("report.html")).unwrap();
    assert!(page.contains("id=\"scale-tiers\"") && page.contains("Scale tiers"));
    let page = std::fs::read_to_string(run2.join("report.html")).unwrap();
    assert!(page.contains("规模分层"));
    let m = manifest(&run1);
    assert!(m["analyses"]["scale"]["counts"]["S4"].as_u64().unwrap() > 0);
    assert!(m["analyses"]["scale"]["micro_in_v1"].is_u64());
    assert_eq!(m["analyses"]["scale"]["visits"], 58);
    assert_eq!(m["analyses"]["scale"]["visit_minutes"], (1..=58).sum::<i32>() as f64);
    assert_eq!(m["declared_inputs"][0]["table"], "visits");
    assert_eq!(m["declared_inputs"][0]["totals_skipped"], 1);
    assert_eq!(
        (
            m["declared_inputs"][0]["rows"].as_u64(),
            m["declared_inputs"][0]["accepted"].as_u64()
        ),
        (Some(60), Some(58))
    );
    let rejects = csv_rows(&run1.join("rejects.csv"));
    let ours: Vec<_> = rejects.iter().filter(|r| r["file"] == "走访记录.csv").collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(ours
        .iter()
        .any(|r| r["row"] == "60" && r["column"] == "client_id" && r["reason"].contains("not found")));
    assert!(ours
        .iter()
        .any(|r| r["row"] == "61" && r["column"] == "visit_date" && r["reason"].starts_with("not a date")));
    assert_eq!(
        m["columns"]["columns"].as_array().unwrap().last().unwrap()["name"],
        "scale_tier"
    );

    // The push: the table made by the first run gains the column in place, and the task
    // table is created with run1's follow-ups, which run2 keeps open and adds to.
    clientseg::push::push(&run1, &db, false).unwrap();
    clientseg::push::push(&run2, &db, false).unwrap();
    let conn = rusqlite::Connection::open(dir.join("crm.db")).unwrap();
    let id_of = |run: &Path| manifest(run)["run_id"].as_str().unwrap().to_string();
    let s4 = |run: &Path| -> Vec<String> {
        let l = read_csv(&run.join("labels.csv"));
        let ids = strings(&l, "client_id");
        let mut v: Vec<String> = ids
            .into_iter()
            .zip(strings(&l, "scale_tier"))
            .filter(|(_, t)| t == "S4")
            .map(|(id, _)| id)
            .collect();
        v.sort();
        v
    };
    let mut tasks = conn
        .prepare("SELECT client_id, task, status, opened_run, updated_run FROM micro_followup ORDER BY client_id")
        .unwrap();
    let rows: Vec<[String; 5]> = tasks
        .query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?]))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let (earlier, later) = (s4(&run1), s4(&run2));
    assert!(later.len() > earlier.len() && earlier.iter().all(|c| later.contains(c)));
    assert_eq!(rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>(), later);
    for r in &rows {
        let opened = if earlier.contains(&r[0]) {
            id_of(&run1)
        } else {
            id_of(&run2)
        };
        assert_eq!(
            (r[1].as_str(), r[2].as_str(), r[3].as_str(), r[4].as_str()),
            ("visit", "open", opened.as_str(), id_of(&run2).as_str()),
            "{r:?}"
        );
    }
    drop(tasks);
    let mut stmt = conn
        .prepare("SELECT client_id, scale_tier FROM client_segment")
        .unwrap();
    let pushed: BTreeMap<String, String> = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            ))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let want = by_client(&read_csv(&run2.join("labels.csv")), "scale_tier");
    assert_eq!(pushed, want);
    let history_before: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM client_segment_history WHERE scale_tier IS NULL AND run_id = ?1",
            [manifest(&first)["run_id"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        history_before as usize,
        want.len(),
        "the earlier run's rows keep nulls there"
    );
}

#[test]
fn its_parameters_and_its_place_among_the_analyses_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let section = |key: &str, value: toml::Value| {
        let mut t = toml::Table::new();
        t.insert(key.into(), value);
        t
    };
    // A key the section does not know, a value of the wrong type, a value the check refuses.
    let s = settings(
        dir,
        "models",
        "en",
        Some(section("merge_smal", toml::Value::Boolean(true))),
    )
    .unwrap();
    let e = ScaleTiers::from_settings(&s).err().unwrap().to_string();
    assert!(e.contains("[analyses.scale]") && e.contains("merge_smal"), "{e}");
    let s = settings(
        dir,
        "models",
        "en",
        Some(section("merge_small", toml::Value::from("yes"))),
    )
    .unwrap();
    let e = ScaleTiers::from_settings(&s).err().unwrap().to_string();
    assert!(e.contains("[analyses.scale]") && e.contains("bool"), "{e}");
    let s = settings(dir, "models", "en", Some(section("micro_word", toml::Value::from(" ")))).unwrap();
    let e = ScaleTiers::from_settings(&s).err().unwrap().to_string();
    assert!(
        e.contains("analyses.scale.micro_word") && e.contains("must not be empty"),
        "{e}"
    );

    generate(&dir.join("data"), 200, 5, &[]);
    // A section no analysis reads stops the run before any work.
    let s = settings(
        dir,
        "models",
        "en",
        Some(section("merge_small", toml::Value::Boolean(true))),
    )
    .unwrap();
    let e = run(&s, dir, &analysis::configured(&s.analyses)).unwrap_err();
    assert!(e.contains("[analyses.scale]") && e.contains("no analysis"), "{e}");
    assert!(!dir.join("runs").exists() || std::fs::read_dir(dir.join("runs")).unwrap().next().is_none());

    // Registered before what it reads: named with both analyses, before any work.
    let s = settings(dir, "models", "en", None).unwrap();
    let mut early: Vec<Box<dyn Analysis>> = vec![Box::new(NeedsPricing { declare: true })];
    early.extend(analysis::configured(&s.analyses));
    let e = run(&s, dir, &early).unwrap_err();
    assert!(
        e.contains("'workload_check'") && e.contains("'pricing'") && e.contains("runs after it"),
        "{e}"
    );
    // Without pricing at all: its need is required.
    let mut alone = analysis::configured(&s.analyses);
    alone.retain(|a| !matches!(a.id(), "pricing" | "allocation" | "actions"));
    alone.push(Box::new(NeedsPricing { declare: true }));
    let e = run(&s, dir, &alone).unwrap_err();
    assert!(e.contains("is not among the analyses"), "{e}");
    // Reading what it did not declare is an error, not a column of nulls.
    let mut undeclared = analysis::configured(&s.analyses);
    undeclared.push(Box::new(NeedsPricing { declare: false }));
    let e = run(&s, dir, &undeclared).unwrap_err();
    assert!(e.contains("without declaring it"), "{e}");
    // In its place it runs.
    let mut fine = analysis::configured(&s.analyses);
    fine.push(Box::new(NeedsPricing { declare: true }));
    run(&s, dir, &fine).unwrap();

    // Its own table without a required column: the file and the column are named.
    std::fs::write(dir.join("data/visits.csv"), "client_id,minutes\nC000001,30\n").unwrap();
    let scale = settings(dir, "models", "en", None).unwrap();
    let e = run(&scale, dir, &with_scale(&scale)).unwrap_err();
    assert!(e.contains("visits.csv") && e.contains("visit_date"), "{e}");
    // Mostly bad rows: the run stops, and every reject line is kept beside the runs.
    let mut bad = String::from("client_id,visit_date\n");
    for i in 1..=10 {
        bad.push_str(&format!("C{i:06},{}\n", if i % 2 == 0 { "soon" } else { "2025-01-05" }));
    }
    std::fs::write(dir.join("data/visits.csv"), bad).unwrap();
    let e = run(&scale, dir, &with_scale(&scale)).unwrap_err();
    assert!(e.contains("visits: 5 of 10 rows rejected"), "{e}");
    let kept: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".rejects.csv"))
        .collect();
    assert_eq!(kept.len(), 1);
    let lines = csv_rows(&kept[0]);
    assert_eq!(lines.iter().filter(|r| r["file"] == "visits.csv").count(), 5);
}

#[test]
fn value_tiers_on_the_forward_basis_run_after_churn_and_rank_by_the_value_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 800, 17, &[]);
    let forward = |churn: bool| {
        let mut raw = RawConfig::default();
        raw.input.dir = Some(dir.join("data"));
        raw.output.models_dir = Some(dir.join(if churn { "models" } else { "models_nochurn" }));
        raw.value.basis = Some(analysis::Basis::Forward);
        raw.churn.enabled = Some(churn);
        Settings::from_raw(&raw, dir).unwrap()
    };
    let s = forward(true);
    let analyses = analysis::configured(&s.analyses);
    let at = |id: &str| analyses.iter().position(|a| a.id() == id).unwrap();
    assert!(at("churn") < at("value"), "value waits for churn risk's value ahead");
    assert!(at("value") < at("pricing") && at("value") < at("actions"));
    let run_dir = run(&s, dir, &analyses).unwrap();
    let m = manifest(&run_dir);
    assert_eq!(m["analyses"]["value"]["basis"], "forward", "{}", m["analyses"]["value"]);
    // Tier 1 is worth most ahead, then tier 2, ...: the means of value_ahead_36m fall.
    let labels = read_parquet(&run_dir.join("labels.parquet"));
    let tiers = strings(&labels, "value_tier");
    let ahead = floats(&labels, "value_ahead_36m");
    let mut by_tier: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (t, a) in tiers.iter().zip(&ahead) {
        let e = by_tier.entry(t.clone()).or_default();
        e.0 += if a.is_finite() { *a } else { 0.0 };
        e.1 += 1;
    }
    let means: Vec<f64> = by_tier.values().map(|(s, n)| s / *n as f64).collect();
    assert!(means.len() >= 2 && means.windows(2).all(|w| w[0] > w[1]), "{by_tier:?}");

    // Without churn risk the tiers fall back to the past, and say so.
    let s = forward(false);
    let run_dir = run(&s, dir, &analysis::configured(&s.analyses)).unwrap();
    let m = manifest(&run_dir);
    let v = &m["analyses"]["value"];
    assert_eq!(v["basis"], "past", "{v}");
    assert_eq!(v["configured_basis"], "forward", "{v}");
    let report = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(
        report.contains("not by the value ahead"),
        "the report says the tiers are not forward"
    );
}
