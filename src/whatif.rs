//! `clientseg allocate`: re-plans a finished run's allocation when an accountant leaves or
//! joins, moving as few clients as the new staff list allows. Reads the run's
//! allocation.parquet and staff.parquet; writes a what-if folder inside the run folder.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use thiserror::Error;

use crate::analysis::allocation::{self, solve, AllocationParams, Job, Member, GENERAL, INTERNATIONAL, SENIOR};
use crate::analysis::pricing::{f64_column, text_column};
use crate::format::Lang;
use crate::output::{self, Written};
use crate::persist::{PersistError, RunDir};
use crate::report;

#[derive(Debug, Error)]
pub enum WhatIfError {
    #[error("{file} is missing or unreadable ({message}); run clientseg with a staff table first, so that the run has an allocation to start from")]
    Read { file: String, message: String },
    #[error("--without {name}: nobody of that name is on the run's staff list ({known} ...); write the name as staff.csv has it")]
    UnknownAccountant { name: String, known: String },
    #[error("--add \"{spec}\": {why}; write it as \"name,grade,hours\" or \"name,grade,hours,skill;skill,team\" (grade junior, senior or lead; 初级, 中级 or 主管)")]
    BadAdd { spec: String, why: String },
    #[error("--add {name}: someone of that name is already on the staff list; use --without to replace them")]
    Duplicate { name: String },
    #[error("the allocation could not be planned: {0}")]
    Solve(String),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Output(#[from] output::OutputError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error(transparent)]
    Report(#[from] report::ReportError),
    #[error("{table}: {source}")]
    Polars { table: &'static str, source: PolarsError },
}

/// What changes.
#[derive(Debug, Clone, Default)]
pub struct WhatIf {
    /// Accountants who leave.
    pub without: Vec<String>,
    /// New accountants: "name,grade,hours[,skills[,team]]".
    pub add: Vec<String>,
    /// Start from the clients' current accountants instead of the run's proposal.
    pub from_current: bool,
}

/// What the re-plan found.
#[derive(Debug, Clone)]
pub struct WhatIfReport {
    pub dir: PathBuf,
    pub moves: usize,
    pub moves_lower_bound: f64,
    pub unplaced: usize,
    /// Months the handovers are spread over, and this month's handovers.
    pub months: u32,
    pub this_month: usize,
    pub peak_before: f64,
    pub peak_after: f64,
}

fn read(path: &Path) -> Result<DataFrame, WhatIfError> {
    let err = |message: String| WhatIfError::Read {
        file: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    ParquetReader::new(file).finish().map_err(|e| err(e.to_string()))
}

fn texts(df: &DataFrame, name: &str) -> Vec<String> {
    text_column(df.column(name).ok(), df.height())
}

fn numbers(df: &DataFrame, name: &str) -> Vec<f64> {
    f64_column(df.column(name).ok(), df.height())
}

/// A new accountant from "name,grade,hours[,skills[,team]]".
pub fn parse_add(spec: &str, p: &AllocationParams) -> Result<Member, WhatIfError> {
    let bad = |why: &str| WhatIfError::BadAdd {
        spec: spec.to_string(),
        why: why.to_string(),
    };
    let parts: Vec<&str> = spec.split([',', '，']).map(str::trim).collect();
    let name = parts
        .first()
        .copied()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("the name is empty"))?;
    let grade = match parts.get(1).map(|g| g.to_lowercase()) {
        Some(g) if ["junior", "初级", "助理"].contains(&g.as_str()) => "junior",
        Some(g) if ["senior", "中级", "会计"].contains(&g.as_str()) => "senior",
        Some(g) if ["lead", "主管", "经理", "高级"].contains(&g.as_str()) => "lead",
        Some(_) => return Err(bad("the grade is not junior, senior or lead")),
        None => return Err(bad("the grade is missing")),
    };
    let hours: f64 = parts
        .get(2)
        .ok_or_else(|| bad("the monthly hours are missing"))?
        .parse()
        .map_err(|_| bad("the monthly hours are not a number"))?;
    if !(hours.is_finite() && (0.0..=744.0).contains(&hours)) {
        return Err(bad("the monthly hours must be between 0 and 744"));
    }
    let skills = parts.get(3).copied().unwrap_or("");
    let has = |names: &[&str]| {
        skills
            .split([';', '；', '|', '/'])
            .any(|s| names.iter().any(|n| s.trim().eq_ignore_ascii_case(n)))
    };
    let mut can = 0;
    if has(&[p.general_skill.as_str(), "general_taxpayer", "一般纳税人"]) {
        can |= GENERAL;
    }
    if has(&[p.international_skill.as_str(), "international", "涉外"]) {
        can |= INTERNATIONAL;
    }
    if grade != "junior" {
        can |= SENIOR;
    }
    Ok(Member {
        name: name.to_string(),
        grade: grade.to_string(),
        capacity: hours,
        can,
        team: parts.get(4).copied().unwrap_or("").to_string(),
        active: true,
    })
}

/// Re-plans `run`'s allocation with the staff changes of `w`.
/// The run's staff, with the what-if's leavers inactive and its new accountants added.
fn staff_of(staff_df: &DataFrame, w: &WhatIf, p: &AllocationParams) -> Result<Vec<Member>, WhatIfError> {
    let n = staff_df.height();
    let names = texts(staff_df, "accountant");
    let grades = texts(staff_df, "grade");
    let caps = numbers(staff_df, "capacity_hours");
    let cans = numbers(staff_df, "can");
    let teams = texts(staff_df, "team");
    let active = texts(staff_df, "active");
    let mut staff: Vec<Member> = (0..n)
        .map(|k| Member {
            name: names[k].clone(),
            grade: grades[k].clone(),
            capacity: if caps[k].is_finite() {
                caps[k]
            } else {
                p.default_capacity
            },
            can: if cans[k].is_finite() { cans[k] as u8 & 7 } else { 0 },
            team: teams[k].clone(),
            active: active[k] != "false",
        })
        .collect();
    for name in &w.without {
        match staff.iter_mut().find(|m| &m.name == name) {
            Some(m) => m.active = false,
            None => {
                return Err(WhatIfError::UnknownAccountant {
                    name: name.clone(),
                    known: names.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                })
            }
        }
    }
    for spec in &w.add {
        let m = parse_add(spec, p)?;
        if staff.iter().any(|s| s.name == m.name) {
            return Err(WhatIfError::Duplicate { name: m.name });
        }
        staff.push(m);
    }
    Ok(staff)
}

pub fn replan(
    run: &Path,
    w: &WhatIf,
    p: &AllocationParams,
    lang: Lang,
    xlsx_max_rows: usize,
) -> Result<WhatIfReport, WhatIfError> {
    let alloc = read(&run.join("allocation.parquet"))?;
    let staff = staff_of(&read(&run.join("staff.parquet"))?, w, p)?;
    let index: std::collections::HashMap<&str, usize> =
        staff.iter().enumerate().map(|(k, m)| (m.name.as_str(), k)).collect();
    let base = texts(&alloc, if w.from_current { "current" } else { "proposed" });
    let hours = numbers(&alloc, "hours");
    let needs = numbers(&alloc, "needs");
    let jobs: Vec<Job> = (0..alloc.height())
        .map(|i| Job {
            hours: if hours[i].is_finite() { hours[i] } else { 0.0 },
            needs: if needs[i].is_finite() { needs[i] as u8 & 7 } else { 0 },
            current: index.get(base[i].as_str()).copied(),
        })
        .collect();
    let plan = solve::solve(&staff, &jobs, &p.settings()).map_err(WhatIfError::Solve)?;
    let phases = allocation::phase_plan(&staff, &jobs, &plan, p);
    let tiers = texts(&alloc, "value_tier");
    let before = solve::loads(&staff, &jobs, |i| jobs[i].current);
    let after = solve::loads(&staff, &jobs, |i| plan.proposed[i]);
    let reasons: Vec<&str> = (0..jobs.len())
        .map(|i| allocation::reason(&staff, &jobs[i], plan.proposed[i], &before, p.max_utilisation))
        .collect();
    let name_of = |a: Option<usize>| a.and_then(|a| staff.get(a)).map(|m| m.name.clone());
    let table = DataFrame::new_infer_height(vec![
        Column::new("client_id".into(), texts(&alloc, "client_id")),
        Column::new("name".into(), texts(&alloc, "name")),
        Column::new("value_tier".into(), tiers.clone()),
        Column::new(
            "current".into(),
            base.iter()
                .map(|b| Some(b.clone()).filter(|b| !b.is_empty()))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "proposed".into(),
            plan.proposed.iter().map(|a| name_of(*a)).collect::<Vec<_>>(),
        ),
        Column::new("reason".into(), reasons),
        Column::new("handover_month".into(), phases.month_of.clone()),
        Column::new("hours".into(), jobs.iter().map(|j| j.hours).collect::<Vec<_>>()),
        Column::new("needs".into(), jobs.iter().map(|j| j.needs as u32).collect::<Vec<_>>()),
    ])
    .map_err(|source| WhatIfError::Polars {
        table: "allocation",
        source,
    })?;
    let workload =
        allocation::workload(&staff, &jobs, &plan.proposed, &tiers, &phases).map_err(|source| WhatIfError::Polars {
            table: "workload",
            source,
        })?;
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let dir = RunDir::create(run, &format!("whatif-{stamp}"))?;
    let mut out = Written::new(dir.path());
    let mut words = crate::columns::Catalogue::default();
    words.extend(&crate::analysis::SegmentKind::Value.declared(), &[]);
    let own = allocation::words(&phases, &tiers);
    words.extend(&own.columns, &own.tables);
    output::export_into(&mut out, "allocation", &table, &words, lang, xlsx_max_rows)?;
    output::export_into(&mut out, "workload", &workload, &words, lang, xlsx_max_rows)?;
    let chart = allocation::utilisation_chart(&staff, &before, &after, p.max_utilisation, "allocation_utilisation");
    report::write_line_chart(&out.path("charts"), lang, &chart)?;
    let peak = |l: &[f64]| allocation::peak(&staff, l);
    let summary = serde_json::json!({
        "run": run.display().to_string(),
        "without": w.without,
        "add": w.add,
        "from": if w.from_current { "current" } else { "proposed" },
        "plan": plan,
        "phases": phases,
        "peak_utilisation_before": peak(&before),
        "peak_utilisation_after": peak(&after),
        "requirements": allocation::diagnose(&staff, &jobs, p.max_utilisation),
    });
    out.bytes(
        "whatif.json",
        // A JSON value of plain data: serialising it cannot fail.
        serde_json::to_string_pretty(&summary)
            .expect("JSON value serialises")
            .as_bytes(),
    )?;
    let done = dir.commit()?;
    Ok(WhatIfReport {
        dir: done,
        moves: plan.moves,
        moves_lower_bound: plan.moves_lower_bound,
        unplaced: plan.unplaced,
        months: phases.months,
        this_month: phases.path.first().map_or(0, |m| m.handovers),
        peak_before: peak(&before),
        peak_after: peak(&after),
    })
}
