//! Allocation under capacity: every client still served gets one accountant, within each
//! accountant's capacity cap, with the skills the client needs (general taxpayers,
//! international clients) and the seniority its value tier needs; as few clients as
//! possible change hands, work is spread evenly and clients stay in their team
//! (`solve.rs`). Needs the staff table and the hours that pricing works out.

mod params;
pub use params::RawAllocation;

pub mod phase;
pub mod solve;

use polars::prelude::*;
use serde::Serialize;

use super::pricing::{f64_column, text_column, tier_ids};
use super::{Analysis, AnalysisError, ChartSeries, Context, LineChart, Need, Outcome, Section, SectionTable};
use crate::columns::{Catalogue, OutputColumn, SqlType, TableName};
use crate::format::human;
use crate::progress::Stages;
pub use phase::{Limits, Phases};
pub use solve::{Job, Member, Plan, Settings, Weights, GENERAL, INTERNATIONAL, SENIOR};

/// Checked parameters of `[allocation]`.
#[derive(Debug, Clone, Serialize)]
pub struct AllocationParams {
    pub enabled: bool,
    /// Share of capacity an accountant may be planned to (default 0.85).
    pub max_utilisation: f64,
    /// Hours a month of staff whose capacity_hours is empty.
    pub default_capacity: f64,
    pub weights: Weights,
    pub block_clients: usize,
    /// The skill a general-taxpayer client needs, and an international one.
    pub general_skill: String,
    pub international_skill: String,
    /// Value tiers served only by senior or lead accountants.
    pub senior_tiers: Vec<String>,
    /// How many handovers a month the firm can absorb.
    pub limits: phase::Limits,
}

impl AllocationParams {
    pub fn settings(&self) -> Settings {
        Settings {
            max_utilisation: self.max_utilisation,
            weights: self.weights.clone(),
            block_clients: self.block_clients,
        }
    }
}

pub struct Allocation {
    params: AllocationParams,
}

impl Allocation {
    pub fn new(p: &AllocationParams) -> Allocation {
        Allocation { params: p.clone() }
    }
}

fn failed(message: String) -> AnalysisError {
    AnalysisError::Failed {
        analysis: "allocation".into(),
        message,
    }
}

/// The staff table as the plan reads it.
pub fn members(staff: &DataFrame, p: &AllocationParams) -> Vec<Member> {
    let n = staff.height();
    let names = text_column(staff.column("accountant").ok(), n);
    let grades = text_column(staff.column("grade").ok(), n);
    let caps = f64_column(staff.column("capacity_hours").ok(), n);
    let skills = text_column(staff.column("skills").ok(), n);
    let teams = text_column(staff.column("team").ok(), n);
    let active = text_column(staff.column("active").ok(), n);
    (0..n)
        .map(|i| {
            let has = |skill: &str, aliases: &[&str]| {
                skills[i].split([';', ',', '，', '；', '|', '/']).any(|s| {
                    let s = s.trim();
                    s.eq_ignore_ascii_case(skill) || aliases.iter().any(|a| s.eq_ignore_ascii_case(a))
                })
            };
            let mut can = 0;
            if has(&p.general_skill, &["general_taxpayer", "一般纳税人", "一般纳税人账务"]) {
                can |= GENERAL;
            }
            if has(&p.international_skill, &["international", "涉外", "外资", "外企"]) {
                can |= INTERNATIONAL;
            }
            if grades[i] == "senior" || grades[i] == "lead" {
                can |= SENIOR;
            }
            Member {
                name: names[i].clone(),
                grade: grades[i].clone(),
                capacity: if caps[i].is_finite() {
                    caps[i]
                } else {
                    p.default_capacity
                },
                can,
                team: teams[i].clone(),
                active: active[i] != "false",
            }
        })
        .collect()
}

/// What each requirement needs against what qualified staff can give, in hours a month.
#[derive(Debug, Clone, Serialize)]
pub struct Requirement {
    pub needs: String,
    pub demand_hours: f64,
    pub qualified_hours: f64,
    pub qualified_staff: usize,
}

impl Requirement {
    pub fn shortfall(&self) -> f64 {
        (self.demand_hours - self.qualified_hours).max(0.0)
    }
}

/// Words for a requirement set.
pub fn needs_words(needs: u8) -> (String, String) {
    let mut en = Vec::new();
    let mut zh = Vec::new();
    if needs & GENERAL != 0 {
        en.push("general-taxpayer");
        zh.push("一般纳税人");
    }
    if needs & INTERNATIONAL != 0 {
        en.push("international");
        zh.push("涉外");
    }
    if needs & SENIOR != 0 {
        en.push("top-tier (senior staff)");
        zh.push("高价值（需中高级会计）");
    }
    if en.is_empty() {
        return ("all".into(), "全部".into());
    }
    (en.join(" + "), zh.join("+"))
}

/// Hall's condition per requirement set: the clients needing at least these skills against
/// the capacity of the staff that have them. A shortfall names the binding constraint.
pub fn diagnose(staff: &[Member], jobs: &[Job], max_util: f64) -> Vec<Requirement> {
    let mut out = Vec::new();
    for needs in 0u8..8 {
        let demand: f64 = jobs.iter().filter(|j| j.needs & needs == needs).map(|j| j.hours).sum();
        if demand <= 0.0 && needs != 0 {
            continue;
        }
        let qualified: Vec<&Member> = staff.iter().filter(|m| m.eligible(needs)).collect();
        out.push(Requirement {
            needs: needs_words(needs).0,
            demand_hours: demand,
            // (A sum of no floats is -0.0, which would print as "-0 h".)
            qualified_hours: qualified.iter().map(|m| m.capacity.max(0.0) * max_util).sum::<f64>() + 0.0,
            qualified_staff: qualified.len(),
        });
    }
    out
}

/// The requirements that are short, leaving out those a shorter list already explains
/// (the same people qualify for both): "top-tier work" and not also "general-taxpayer +
/// top-tier work" when only seniors count either way.
pub fn binding(diag: &[Requirement]) -> Vec<&Requirement> {
    let bits = |r: &Requirement| (0u8..8).find(|n| needs_words(*n).0 == r.needs).unwrap_or(0);
    let short: Vec<&Requirement> = diag.iter().filter(|r| r.shortfall() > 0.0).collect();
    short
        .iter()
        .copied()
        .filter(|r| {
            let b = bits(r);
            !short.iter().any(|s| {
                let sb = bits(s);
                sb != b && sb & b == sb && s.qualified_staff == r.qualified_staff
            })
        })
        .collect()
}

/// Why a client moves (or not), as a code; words in `reason_words`.
pub fn reason(staff: &[Member], job: &Job, proposed: Option<usize>, before: &[f64], max_util: f64) -> &'static str {
    if proposed.is_none() {
        return "unplaced";
    }
    if proposed == job.current {
        return "kept";
    }
    let Some(cur) = job.current.and_then(|a| staff.get(a)) else {
        return "no_accountant";
    };
    if !cur.active {
        return "accountant_inactive";
    }
    let missing = job.needs & !cur.can;
    if missing & (GENERAL | INTERNATIONAL) != 0 {
        return "skill";
    }
    if missing & SENIOR != 0 {
        return "seniority";
    }
    let a = job.current.unwrap_or(0);
    if before.get(a).copied().unwrap_or(0.0) > cur.capacity * max_util + 1e-9 {
        return "over_capacity";
    }
    "balance"
}

pub fn reason_words(code: &str) -> (&'static str, &'static str) {
    match code {
        "kept" => ("stays", "保持不变"),
        "unplaced" => ("no qualified accountant has room", "没有有空余且符合条件的会计"),
        "no_accountant" => ("has no accountant on the staff list", "当前会计不在员工名单中"),
        "accountant_inactive" => ("accountant no longer active", "当前会计已离职或停用"),
        "skill" => ("accountant lacks the skill the client needs", "当前会计不具备所需资质"),
        "seniority" => (
            "top-tier client needs a senior accountant",
            "高价值客户需由中高级会计服务",
        ),
        "over_capacity" => ("accountant over the capacity cap", "当前会计工作量超出上限"),
        "balance" => (
            "frees hours for clients only this accountant may take, or evens out workload",
            "为只能由该会计服务的客户腾出工时，或均衡工作量",
        ),
        _ => ("", ""),
    }
}

/// Everything the plan needs per client of the feature table, for the served ones.
pub struct Inputs {
    pub rows: Vec<usize>,
    pub jobs: Vec<Job>,
    /// Accountant names of clients.accountant that are not on the staff list, with counts.
    pub unknown: Vec<(String, usize)>,
}

/// The clients to place; `hours` is pricing's hours a month and `tiers` the value tier
/// per client. Err says why allocation is skipped.
pub fn inputs(
    ctx: &Context,
    staff: &[Member],
    p: &AllocationParams,
    hours: Vec<f64>,
    tiers: &[String],
) -> Result<Inputs, String> {
    let t = ctx.table;
    let n = t.df.height();
    if hours.iter().all(|h| !h.is_finite()) {
        return Err("allocation needs the hours a month that pricing works out; enable [pricing]".into());
    }
    let taxpayer = text_column(t.df.column("taxpayer_type").ok(), n);
    let market = text_column(t.df.column("market").ok(), n);
    let accountant = text_column(t.df.column("accountant").ok(), n);
    let index: std::collections::HashMap<&str, usize> =
        staff.iter().enumerate().map(|(k, m)| (m.name.as_str(), k)).collect();
    let mut unknown: std::collections::BTreeMap<String, usize> = Default::default();
    let served = ctx.served;
    let mut rows = Vec::new();
    let mut jobs = Vec::new();
    for i in 0..n {
        if !served.is_none_or(|s| s.get(i).copied().unwrap_or(false)) || !hours[i].is_finite() {
            continue;
        }
        let mut needs = 0;
        if taxpayer[i] == "general" {
            needs |= GENERAL;
        }
        if market[i] == "international" {
            needs |= INTERNATIONAL;
        }
        if p.senior_tiers.iter().any(|s| s == &tiers[i]) {
            needs |= SENIOR;
        }
        let current = index.get(accountant[i].as_str()).copied();
        if current.is_none() && !accountant[i].is_empty() {
            *unknown.entry(accountant[i].clone()).or_default() += 1;
        }
        rows.push(i);
        jobs.push(Job {
            hours: hours[i],
            needs,
            current,
        });
    }
    let mut unknown: Vec<(String, usize)> = unknown.into_iter().collect();
    unknown.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(Inputs { rows, jobs, unknown })
}

impl Analysis for Allocation {
    fn id(&self) -> &'static str {
        "allocation"
    }

    fn name(&self) -> (&'static str, &'static str) {
        ("allocation", "人员分配")
    }

    fn fit(&self, ctx: &Context, stages: &mut Stages) -> Result<Outcome, AnalysisError> {
        let mut out = Outcome::empty("allocation");
        let p = &self.params;
        if !p.enabled {
            out.skipped = Some("allocation.enabled = false".into());
            return Ok(out);
        }
        let Some(staff_df) = ctx.input("staff") else {
            out.skipped = Some("no staff table: add staff.csv (accountant, grade, capacity_hours, skills, team, active) to plan who serves whom".into());
            return Ok(out);
        };
        let staff = members(staff_df, p);
        if staff.is_empty() {
            out.skipped = Some("the staff table has no accountants".into());
            return Ok(out);
        }
        let n = ctx.table.df.height();
        let hours = f64_column(ctx.column("pricing", "monthly_hours")?, n);
        let tiers = tier_ids(ctx)?;
        let inp = match inputs(ctx, &staff, p, hours, &tiers) {
            Ok(i) => i,
            Err(why) => {
                out.skipped = Some(why);
                return Ok(out);
            }
        };
        let plan = stages
            .run("allocation", |_| solve::solve(&staff, &inp.jobs, &p.settings()))
            .map_err(failed)?;
        let phases = phase_plan(&staff, &inp.jobs, &plan, p);
        Ok(outcome(ctx, p, &staff, &inp, &plan, &phases, &tiers))
    }

    fn needs(&self) -> Vec<Need> {
        vec![
            Need::column("pricing", "monthly_hours").required(),
            Need::segmentation("value"),
        ]
    }
}

/// The plan's handovers spread over months within the firm's limits.
pub fn phase_plan(staff: &[Member], jobs: &[Job], plan: &Plan, p: &AllocationParams) -> Phases {
    phase::schedule(
        staff,
        jobs,
        &plan.proposed,
        p.limits,
        p.max_utilisation,
        plan.moves_lower_bound,
    )
}

/// What allocation declares: the columns it adds to labels.csv, allocation.csv and
/// workload.csv with their words, and those tables' names.
pub fn words(phases: &Phases, tiers: &[String]) -> Catalogue {
    Catalogue {
        columns: declared(phases, tiers),
        tables: vec![
            TableName {
                name: "allocation".into(),
                en: "allocation".into(),
                zh: "人员分配".into(),
            },
            TableName {
                name: "workload".into(),
                en: "workload".into(),
                zh: "工作量".into(),
            },
        ],
        tasks: Vec::new(),
    }
}

/// The columns allocation adds (a utilisation column per month of handovers, a count
/// per value tier).
fn declared(phases: &Phases, tiers: &[String]) -> Vec<OutputColumn> {
    let reasons: Vec<(&str, &str, &str)> = [
        ("kept", "kept", "保持不变"),
        ("unplaced", "cannot be placed", "无法分配"),
        ("no_accountant", "accountant not in the staff table", "会计不在名单中"),
        ("accountant_inactive", "accountant no longer active", "会计已停用"),
        ("skill", "needs a skill the accountant lacks", "资质不符"),
        ("seniority", "needs a senior accountant", "需中高级会计"),
        ("over_capacity", "accountant over capacity", "会计超负荷"),
        ("balance", "frees hours or evens the load", "腾出工时或均衡工作量"),
    ]
    .to_vec();
    let mut out = vec![
        OutputColumn::text("proposed_accountant", "proposed accountant", "建议会计")
            .crm("Proposed Owner")
            .push(SqlType::Text),
        OutputColumn::category("allocation_reason", "why", "分配原因", &reasons),
        OutputColumn::number("handover_month", "handover month", "交接月份"),
        OutputColumn::text("current", "current accountant", "当前会计"),
        OutputColumn::text("proposed", "proposed accountant", "建议会计"),
        OutputColumn::category("reason", "why", "原因", &reasons),
        OutputColumn::number("hours", "hours a month", "月均工时"),
        OutputColumn::number("needs", "needs (code)", "需求代码"),
    ];
    out.extend(
        [
            ("capacity_hours", "capacity (hours a month)", "月产能（小时）"),
            ("hours_before", "hours before", "调整前工时"),
            ("utilisation_before", "utilisation before", "调整前饱和度"),
            ("hours_after", "hours after", "调整后工时"),
            ("utilisation_after", "utilisation after", "调整后饱和度"),
            ("clients_before", "clients before", "调整前客户数"),
            ("clients_after", "clients after", "调整后客户数"),
        ]
        .into_iter()
        .map(|(name, en, zh)| OutputColumn::number(name, en, zh)),
    );
    for k in 1..=phases.months {
        out.push(OutputColumn::number(
            &format!("utilisation_month_{k}"),
            &format!("utilisation after month {k}"),
            &format!("第{k}月末饱和度"),
        ));
    }
    let mut names: Vec<&String> = tiers.iter().filter(|t| !t.is_empty()).collect();
    names.sort();
    names.dedup();
    for t in names {
        out.push(OutputColumn::number(
            &format!("clients_{t}"),
            &format!("{t} clients"),
            &format!("{t} 客户数"),
        ));
    }
    out
}

pub fn workload(
    staff: &[Member],
    jobs: &[Job],
    proposed: &[Option<usize>],
    tiers: &[String],
    phases: &Phases,
) -> PolarsResult<DataFrame> {
    let before = solve::loads(staff, jobs, |i| jobs[i].current);
    let after = solve::loads(staff, jobs, |i| proposed[i]);
    let count = |who: &dyn Fn(usize) -> Option<usize>| {
        let mut c = vec![0u32; staff.len()];
        for i in 0..jobs.len() {
            if let Some(a) = who(i).filter(|a| *a < staff.len()) {
                c[a] += 1;
            }
        }
        c
    };
    let util = |l: &[f64]| -> Vec<Option<f64>> {
        staff
            .iter()
            .zip(l)
            .map(|(m, l)| (m.capacity > 0.0).then(|| (l / m.capacity * 1e4).round() / 1e4))
            .collect()
    };
    let r2 = |v: &[f64]| v.iter().map(|x| (x * 100.0).round() / 100.0).collect::<Vec<_>>();
    let mut cols = vec![
        Column::new(
            "accountant".into(),
            staff.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        ),
        Column::new("team".into(), staff.iter().map(|m| m.team.clone()).collect::<Vec<_>>()),
        Column::new(
            "grade".into(),
            staff.iter().map(|m| m.grade.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "capacity_hours".into(),
            staff.iter().map(|m| m.capacity).collect::<Vec<_>>(),
        ),
        Column::new("hours_before".into(), r2(&before)),
        Column::new("utilisation_before".into(), util(&before)),
        Column::new("hours_after".into(), r2(&after)),
        Column::new("utilisation_after".into(), util(&after)),
        Column::new("clients_before".into(), count(&|i| jobs[i].current)),
        Column::new("clients_after".into(), count(&|i| proposed[i])),
    ];
    if phases.months > 1 {
        for (k, l) in phases.loads.iter().enumerate() {
            cols.push(Column::new(format!("utilisation_month_{}", k + 1).into(), util(l)));
        }
    }
    let mut names: Vec<&String> = tiers.iter().filter(|t| !t.is_empty()).collect();
    names.sort();
    names.dedup();
    for t in names {
        let c = count(&|i| proposed[i].filter(|_| &tiers[i] == t));
        cols.push(Column::new(format!("clients_{t}").into(), c));
    }
    DataFrame::new_infer_height(cols)
}

/// The busiest active accountant's utilisation (a share of capacity).
pub fn peak(staff: &[Member], loads: &[f64]) -> f64 {
    staff
        .iter()
        .zip(loads)
        .filter(|(m, _)| m.capacity > 0.0 && m.active)
        .map(|(m, l)| l / m.capacity)
        .fold(0.0, f64::max)
}

/// Utilisation of every accountant before and after, busiest first (before).
pub fn utilisation_chart(staff: &[Member], before: &[f64], after: &[f64], cap: f64, stem: &str) -> LineChart {
    let mut order: Vec<usize> = (0..staff.len()).filter(|&a| staff[a].capacity > 0.0).collect();
    let u = |l: &[f64], a: usize| l[a] / staff[a].capacity * 100.0;
    order.sort_by(|&a, &b| u(before, b).total_cmp(&u(before, a)).then(a.cmp(&b)));
    let step = (order.len() / 2000).max(1);
    let pts = |l: &[f64]| -> Vec<(f64, f64)> {
        order
            .iter()
            .enumerate()
            .step_by(step)
            .map(|(k, &a)| ((k + 1) as f64, u(l, a)))
            .collect()
    };
    let n = order.len().max(1) as f64;
    LineChart {
        stem: stem.into(),
        title: (
            "Utilisation per accountant, before and after".into(),
            "每位会计的工作饱和度：调整前后".into(),
        ),
        x_label: (
            "accountants, busiest first (before)".into(),
            "会计（按调整前饱和度从高到低）".into(),
        ),
        y_label: ("utilisation (%)".into(), "饱和度（%）".into()),
        series: vec![
            ChartSeries {
                name: ("before".into(), "调整前".into()),
                points: pts(before),
                dots: true,
            },
            ChartSeries {
                name: ("after".into(), "调整后".into()),
                points: pts(after),
                dots: true,
            },
            ChartSeries {
                name: (format!("cap {:.0}%", cap * 100.0), format!("上限 {:.0}%", cap * 100.0)),
                points: vec![(1.0, cap * 100.0), (n, cap * 100.0)],
                dots: false,
            },
        ],
        diagonal: false,
        steps: false,
    }
}

fn outcome(
    ctx: &Context,
    p: &AllocationParams,
    staff: &[Member],
    inp: &Inputs,
    plan: &Plan,
    phases: &Phases,
    all_tiers: &[String],
) -> Outcome {
    let mut out = Outcome::empty("allocation");
    let f = figures(p, staff, inp, plan);
    out.columns = label_columns(ctx.table.df.height(), staff, inp, plan, phases, &f.reasons);
    let tiers: Vec<String> = inp.rows.iter().map(|&i| all_tiers[i].clone()).collect();
    let words = words(phases, &tiers);
    out.declared = words.columns;
    out.table_names = words.tables;
    if let Ok(df) = allocation_table(ctx, staff, inp, plan, phases, &f.reasons, &tiers) {
        out.exports.push(("allocation".into(), df));
    }
    if let Ok(df) = workload(staff, &inp.jobs, &plan.proposed, &tiers, phases) {
        out.exports.push(("workload".into(), df));
    }
    if let Ok(df) = staff_frame(staff) {
        out.tables.push(("staff".into(), df));
    }
    out.charts.push(utilisation_chart(
        staff,
        &f.before,
        &f.after,
        p.max_utilisation,
        "allocation_utilisation",
    ));
    out.headline = Some(headline(plan, inp.jobs.len(), &f));
    out.summary = Some(summary(p, staff, inp, plan, phases, &f));
    let mut lines = plan_lines(p, staff, inp.jobs.len(), plan, &f);
    let (phase_lines, phase_table) = phase_section(phases, p.max_utilisation);
    lines.extend(phase_lines);
    lines.extend(shortfall_lines(p, &f));
    out.section = Some(Section {
        id: "allocation".into(),
        title: ("Who serves whom".into(), "人员分配".into()),
        lines,
        tables: [
            Some(requirements_table(&f.diag)),
            Some(reasons_table(&f.by_reason)),
            phase_table,
            Some(busiest_table(staff, &f)),
        ]
        .into_iter()
        .flatten()
        .collect(),
    });
    out
}

/// The plan's figures, for the columns, the headline, the manifest and the report.
struct Figures {
    /// Hours a month per accountant before and after the plan.
    before: Vec<f64>,
    after: Vec<f64>,
    /// Why each client stays or moves.
    reasons: Vec<&'static str>,
    diag: Vec<Requirement>,
    peak_before: f64,
    peak_after: f64,
    over_before: usize,
    over_after: usize,
    /// How far the moves are over the fewest any plan needs.
    moves_gap: f64,
    by_reason: std::collections::BTreeMap<&'static str, usize>,
    /// Accountants not on the staff list (the first five, with their clients).
    unknown_en: String,
    unknown_clients: usize,
}

fn figures(p: &AllocationParams, staff: &[Member], inp: &Inputs, plan: &Plan) -> Figures {
    let jobs = &inp.jobs;
    let before = solve::loads(staff, jobs, |i| jobs[i].current);
    let after = solve::loads(staff, jobs, |i| plan.proposed[i]);
    let reasons: Vec<&'static str> = (0..jobs.len())
        .map(|i| reason(staff, &jobs[i], plan.proposed[i], &before, p.max_utilisation))
        .collect();
    let over = |load: &[f64]| {
        staff
            .iter()
            .zip(load)
            .filter(|(m, l)| m.active && **l > m.capacity * p.max_utilisation + 1e-9)
            .count()
    };
    let mut by_reason: std::collections::BTreeMap<&'static str, usize> = Default::default();
    for r in &reasons {
        *by_reason.entry(r).or_default() += 1;
    }
    Figures {
        diag: diagnose(staff, jobs, p.max_utilisation),
        peak_before: peak(staff, &before),
        peak_after: peak(staff, &after),
        over_before: over(&before),
        over_after: over(&after),
        moves_gap: if plan.moves_lower_bound > 0.0 {
            plan.moves as f64 / plan.moves_lower_bound.ceil() - 1.0
        } else {
            0.0
        },
        by_reason,
        unknown_en: inp
            .unknown
            .iter()
            .take(5)
            .map(|(a, c)| format!("{a} ({c})"))
            .collect::<Vec<_>>()
            .join(", "),
        unknown_clients: inp.unknown.iter().map(|u| u.1).sum(),
        before,
        after,
        reasons,
    }
}

/// labels.csv's columns: the proposed accountant, why, and the month of the handover.
fn label_columns(
    n: usize,
    staff: &[Member],
    inp: &Inputs,
    plan: &Plan,
    phases: &Phases,
    reasons: &[&'static str],
) -> Vec<Column> {
    let mut proposed_col: Vec<Option<String>> = vec![None; n];
    let mut reason_col: Vec<Option<&str>> = vec![None; n];
    let mut month_col: Vec<Option<u32>> = vec![None; n];
    for (k, &i) in inp.rows.iter().enumerate() {
        proposed_col[i] = plan.proposed[k].and_then(|a| staff.get(a)).map(|m| m.name.clone());
        reason_col[i] = reasons.get(k).copied();
        month_col[i] = phases.month_of.get(k).copied().flatten();
    }
    vec![
        Column::new("proposed_accountant".into(), proposed_col),
        Column::new("allocation_reason".into(), reason_col),
        Column::new("handover_month".into(), month_col),
    ]
}

/// allocation.csv: one row per client placed.
fn allocation_table(
    ctx: &Context,
    staff: &[Member],
    inp: &Inputs,
    plan: &Plan,
    phases: &Phases,
    reasons: &[&'static str],
    tiers: &[String],
) -> PolarsResult<DataFrame> {
    let n = ctx.table.df.height();
    let jobs = &inp.jobs;
    let ids = text_column(ctx.table.df.column("client_id").ok(), n);
    let names = text_column(ctx.table.df.column("name").ok(), n);
    let current_names = text_column(ctx.table.df.column("accountant").ok(), n);
    let name_of = |a: Option<usize>| a.and_then(|a| staff.get(a)).map(|m| m.name.clone());
    DataFrame::new_infer_height(vec![
        Column::new(
            "client_id".into(),
            inp.rows.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "name".into(),
            inp.rows.iter().map(|&i| names[i].clone()).collect::<Vec<_>>(),
        ),
        Column::new("value_tier".into(), tiers.to_vec()),
        Column::new(
            "current".into(),
            inp.rows
                .iter()
                .map(|&i| Some(current_names[i].clone()).filter(|s| !s.is_empty()))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "proposed".into(),
            plan.proposed.iter().map(|a| name_of(*a)).collect::<Vec<_>>(),
        ),
        Column::new("reason".into(), reasons.to_vec()),
        Column::new("handover_month".into(), phases.month_of.clone()),
        Column::new(
            "hours".into(),
            jobs.iter()
                .map(|j| (j.hours * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
        ),
        Column::new("needs".into(), jobs.iter().map(|j| j.needs as u32).collect::<Vec<_>>()),
    ])
}

/// The run summary's line.
fn headline(plan: &Plan, clients: usize, f: &Figures) -> (String, String) {
    let (jobs_len, peak_before, peak_after) = (clients, f.peak_before, f.peak_after);
    let (unknown_clients, unknown_en) = (f.unknown_clients, &f.unknown_en);
    let mut head_en = format!(
        "allocation: {} of {} clients change accountant (at least {:.0} must), busiest accountant {:.0}% -> {:.0}% of capacity",
        plan.moves,
        jobs_len,
        plan.moves_lower_bound.ceil(),
        peak_before * 100.0,
        peak_after * 100.0
    );
    let mut head_zh = format!(
        "人员分配：{} 个客户中 {} 个更换会计（至少需 {:.0} 个），最忙会计饱和度 {:.0}% → {:.0}%",
        jobs_len,
        plan.moves,
        plan.moves_lower_bound.ceil(),
        peak_before * 100.0,
        peak_after * 100.0
    );
    for r in binding(&f.diag) {
        head_en.push_str(&format!(
            "; {} work needs {} h, qualified staff have {} h",
            r.needs,
            human(r.demand_hours),
            human(r.qualified_hours)
        ));
    }
    if plan.unplaced > 0 {
        head_en.push_str(&format!("; {} clients could not be placed", plan.unplaced));
        head_zh.push_str(&format!("；{} 个客户无法分配", plan.unplaced));
    }
    if unknown_clients > 0 {
        head_en.push_str(&format!(
            "; {unknown_clients} clients have an accountant not on the staff list: {unknown_en}"
        ));
        head_zh.push_str(&format!("；{unknown_clients} 个客户的会计不在员工名单中：{unknown_en}"));
    }
    (head_en, head_zh)
}

/// Its part of the manifest.
fn summary(
    p: &AllocationParams,
    staff: &[Member],
    inp: &Inputs,
    plan: &Plan,
    phases: &Phases,
    f: &Figures,
) -> serde_json::Value {
    serde_json::json!({
        "clients": inp.jobs.len(),
        "staff": staff.len(),
        "active_staff": staff.iter().filter(|m| m.active).count(),
        "max_utilisation": p.max_utilisation,
        "weights": p.weights,
        "plan": plan,
        "phases": phases,
        "objective_gap": plan.gap(),
        "moves_gap": f.moves_gap,
        "peak_utilisation_before": f.peak_before,
        "peak_utilisation_after": f.peak_after,
        "over_cap_before": f.over_before,
        "over_cap_after": f.over_after,
        "requirements": f.diag,
        "moves_by_reason": f.by_reason,
        "unknown_accountants": inp.unknown,
    })
}

/// The report's first lines: the plan against its bounds, and the busiest accountant.
fn plan_lines(
    p: &AllocationParams,
    staff: &[Member],
    clients: usize,
    plan: &Plan,
    f: &Figures,
) -> Vec<(String, String)> {
    let (moves_gap, peak_before, peak_after) = (f.moves_gap, f.peak_before, f.peak_after);
    let (over_before, over_after) = (f.over_before, f.over_after);
    let mut lines = vec![(
        format!(
            "{} clients and {} accountants ({} active). The plan moves {} clients; no assignment that meets the caps and rules can move fewer than {:.0} (the solver's bound), so it is within {:.1}% of the fewest. {}.",
            clients,
            staff.len(),
            staff.iter().filter(|m| m.active).count(),
            plan.moves,
            plan.moves_lower_bound.ceil(),
            moves_gap * 100.0,
            match plan.gap() {
                Some(g) => format!("Objective {:.1} against the LP bound {:.1} (gap {:.2}%)", plan.objective, plan.lp_objective, g * 100.0),
                None => format!("Planned team by team in {} blocks; clients a team could not place went to the accountant with the most room elsewhere", plan.blocks),
            }
        ),
        format!(
            "{} 个客户，{} 位会计（在岗 {} 位）。方案调整 {} 个客户；满足上限与规则的任何方案至少需调整 {:.0} 个（求解器的下界），本方案与最少调整数相差 {:.1}%。{}。",
            clients,
            staff.len(),
            staff.iter().filter(|m| m.active).count(),
            plan.moves,
            plan.moves_lower_bound.ceil(),
            moves_gap * 100.0,
            match plan.gap() {
                Some(g) => format!("目标值 {:.1}，线性松弛下界 {:.1}（差距 {:.2}%）", plan.objective, plan.lp_objective, g * 100.0),
                None => format!("按团队分 {} 块求解；团队内无法安排的客户分给其他团队中空余最多的会计", plan.blocks),
            }
        ),
    )];
    lines.push((
        format!(
            "Busiest accountant: {:.0}% of capacity before, {:.0}% after (cap {:.0}%); {over_before} accountants over the cap before, {over_after} after.",
            peak_before * 100.0,
            peak_after * 100.0,
            p.max_utilisation * 100.0
        ),
        format!(
            "最忙会计饱和度：调整前 {:.0}%，调整后 {:.0}%（上限 {:.0}%）；超上限会计调整前 {over_before} 位，调整后 {over_after} 位。",
            peak_before * 100.0,
            peak_after * 100.0,
            p.max_utilisation * 100.0
        ),
    ));

    lines
}

/// The report's lines on what staff cannot meet, and on accountants not on the list.
fn shortfall_lines(p: &AllocationParams, f: &Figures) -> Vec<(String, String)> {
    let (unknown_clients, unknown_en) = (f.unknown_clients, &f.unknown_en);
    let mut lines = Vec::new();
    for r in binding(&f.diag) {
        let (en, zh) = (r.needs.clone(), needs_zh(&r.needs));
        lines.push((
            format!(
                "Cannot be met: {en} work needs {} h a month, qualified staff have {} h ({} people at {:.0}% of capacity); {} h short.",
                human(r.demand_hours),
                human(r.qualified_hours),
                r.qualified_staff,
                p.max_utilisation * 100.0,
                human(r.shortfall())
            ),
            format!(
                "无法满足：{zh}业务每月需 {} 小时，符合条件的会计只有 {} 小时（{} 人，按 {:.0}% 饱和度）；缺口 {} 小时。",
                human(r.demand_hours),
                human(r.qualified_hours),
                r.qualified_staff,
                p.max_utilisation * 100.0,
                human(r.shortfall())
            ),
        ));
    }
    if unknown_clients > 0 {
        lines.push((
            format!("{unknown_clients} clients have an accountant who is not on the staff list: {unknown_en}. They are planned as clients without an accountant."),
            format!("{unknown_clients} 个客户的会计不在员工名单中：{unknown_en}。这些客户按无会计处理。"),
        ));
    }
    lines
}

fn requirements_table(diag: &[Requirement]) -> SectionTable {
    SectionTable {
        caption: (
            "Work against qualified capacity (hours a month)".into(),
            "业务需求与符合条件的产能（小时/月）".into(),
        ),
        header: vec![
            ("clients needing".into(), "客户需求".into()),
            ("hours needed".into(), "所需工时".into()),
            ("qualified staff".into(), "符合条件的会计".into()),
            ("their hours".into(), "其可用工时".into()),
            ("short".into(), "缺口".into()),
        ],
        rows: diag
            .iter()
            .map(|r| {
                let zh = needs_zh(&r.needs);
                vec![
                    (r.needs.clone(), zh),
                    (human(r.demand_hours), human(r.demand_hours)),
                    (r.qualified_staff.to_string(), r.qualified_staff.to_string()),
                    (human(r.qualified_hours), human(r.qualified_hours)),
                    (human(r.shortfall()), human(r.shortfall())),
                ]
            })
            .collect(),
    }
}

fn reasons_table(by_reason: &std::collections::BTreeMap<&'static str, usize>) -> SectionTable {
    SectionTable {
        caption: ("Clients by reason".into(), "按原因统计的客户数".into()),
        header: vec![("reason".into(), "原因".into()), ("clients".into(), "客户数".into())],
        rows: by_reason
            .iter()
            .map(|(r, c)| {
                let w = reason_words(r);
                vec![(w.0.into(), w.1.into()), (c.to_string(), c.to_string())]
            })
            .collect(),
    }
}

/// The busiest accountants before the plan, and after.
fn busiest_table(staff: &[Member], f: &Figures) -> SectionTable {
    let (before, after) = (&f.before, &f.after);
    let mut busiest: Vec<usize> = (0..staff.len()).filter(|&a| staff[a].capacity > 0.0).collect();
    busiest.sort_by(|&a, &b| (before[b] / staff[b].capacity).total_cmp(&(before[a] / staff[a].capacity)));
    busiest.truncate(15);
    SectionTable {
        caption: (
            "The busiest accountants before the plan".into(),
            "调整前最忙的会计".into(),
        ),
        header: vec![
            ("accountant".into(), "会计".into()),
            ("team".into(), "团队".into()),
            ("capacity (h)".into(), "产能（小时）".into()),
            ("before".into(), "调整前".into()),
            ("after".into(), "调整后".into()),
        ],
        rows: busiest
            .iter()
            .map(|&a| {
                let m = &staff[a];
                let pb = format!("{:.0}%", before[a] / m.capacity * 100.0);
                let pa = format!("{:.0}%", after[a] / m.capacity * 100.0);
                vec![
                    (m.name.clone(), m.name.clone()),
                    (m.team.clone(), m.team.clone()),
                    (format!("{:.0}", m.capacity), format!("{:.0}", m.capacity)),
                    (pb.clone(), pb),
                    (pa.clone(), pa),
                ]
            })
            .collect(),
    }
}

/// The report's account of the handovers month by month.
fn phase_section(ph: &Phases, cap: f64) -> (Vec<(String, String)>, Option<SectionTable>) {
    let total: usize = ph.path.iter().map(|m| m.handovers).sum();
    let limit_en = match (ph.limits.moves_per_month, ph.limits.per_accountant) {
        (Some(l), Some(h)) => format!("at most {l} a month firm-wide and {h} per accountant"),
        (Some(l), None) => format!("at most {l} a month firm-wide"),
        (None, Some(h)) => format!("at most {h} a month per accountant, given or taken"),
        (None, None) => "no monthly limit".into(),
    };
    let limit_zh = match (ph.limits.moves_per_month, ph.limits.per_accountant) {
        (Some(l), Some(h)) => format!("全公司每月最多 {l} 个、每位会计每月最多 {h} 个"),
        (Some(l), None) => format!("全公司每月最多 {l} 个"),
        (None, Some(h)) => format!("每位会计每月最多交出或接收 {h} 个"),
        (None, None) => "不限每月交接数".into(),
    };
    let this_month = ph.path.first().map_or(0, |m| m.handovers);
    let reached_en = match ph.cap_reached {
        Some(m) => format!("every accountant is within the {:.0}% cap from month {m}", cap * 100.0),
        None => format!("some accountants stay over the {:.0}% cap", cap * 100.0),
    };
    let reached_zh = match ph.cap_reached {
        Some(m) => format!("自第 {m} 个月起所有会计均不超过 {:.0}% 上限", cap * 100.0),
        None => format!("部分会计仍超过 {:.0}% 上限", cap * 100.0),
    };
    let lines = vec![(
        format!(
            "Handovers ({limit_en}): {total} over {} month(s), {this_month} this month; {reached_en}. No plan that meets the caps and rules within these limits takes fewer than {} month(s); these moves cannot be spread over fewer than {}.",
            ph.months, ph.months_lower_bound, ph.months_for_these_moves
        ),
        format!(
            "交接安排（{limit_zh}）：共 {total} 个客户，分 {} 个月完成，本月 {this_month} 个；{reached_zh}。在上述限制下，任何满足上限与规则的方案至少需要 {} 个月；本方案的调整至少需要 {} 个月。",
            ph.months, ph.months_lower_bound, ph.months_for_these_moves
        ),
    )];
    if ph.months <= 1 {
        return (lines, None);
    }
    let table = SectionTable {
        caption: ("Handovers month by month".into(), "逐月交接安排".into()),
        header: vec![
            ("month".into(), "月份".into()),
            ("handovers".into(), "交接客户数".into()),
            ("busiest accountant".into(), "最忙会计饱和度".into()),
            ("over the cap".into(), "超上限会计数".into()),
            (
                "with an accountant who may not keep them".into(),
                "仍由不符合条件会计服务的客户".into(),
            ),
        ],
        rows: ph
            .path
            .iter()
            .take(24)
            .map(|m| {
                let peak = format!("{:.0}%", m.peak_utilisation * 100.0);
                vec![
                    (m.month.to_string(), format!("第 {} 月", m.month)),
                    (m.handovers.to_string(), m.handovers.to_string()),
                    (peak.clone(), peak),
                    (m.over_cap.to_string(), m.over_cap.to_string()),
                    (m.misplaced.to_string(), m.misplaced.to_string()),
                ]
            })
            .collect(),
    };
    (lines, Some(table))
}

fn needs_zh(en: &str) -> String {
    (0u8..8)
        .map(needs_words)
        .find(|(e, _)| e == en)
        .map(|(_, z)| z)
        .unwrap_or_default()
}

/// The staff as planned, for `clientseg allocate`.
pub fn staff_frame(staff: &[Member]) -> PolarsResult<DataFrame> {
    DataFrame::new_infer_height(vec![
        Column::new(
            "accountant".into(),
            staff.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "grade".into(),
            staff.iter().map(|m| m.grade.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "capacity_hours".into(),
            staff.iter().map(|m| m.capacity).collect::<Vec<_>>(),
        ),
        Column::new("can".into(), staff.iter().map(|m| m.can as u32).collect::<Vec<_>>()),
        Column::new("team".into(), staff.iter().map(|m| m.team.clone()).collect::<Vec<_>>()),
        Column::new("active".into(), staff.iter().map(|m| m.active).collect::<Vec<_>>()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> AllocationParams {
        AllocationParams {
            enabled: true,
            max_utilisation: 0.85,
            default_capacity: 160.0,
            weights: Weights {
                continuity: 1.0,
                team: 0.1,
                balance: 0.05,
            },
            block_clients: 20_000,
            general_skill: "general_taxpayer".into(),
            international_skill: "international".into(),
            senior_tiers: vec!["V1".into()],
            limits: Limits::default(),
        }
    }

    fn member(capacity: f64, can: u8, active: bool) -> Member {
        Member {
            name: "m".into(),
            grade: "senior".into(),
            capacity,
            can,
            team: "t".into(),
            active,
        }
    }

    #[test]
    fn the_staff_table_is_read_with_chinese_skills_and_defaults() {
        let df = DataFrame::new_infer_height(vec![
            Column::new("accountant".into(), ["王芳", "李娜", "张伟"]),
            Column::new("grade".into(), ["lead", "junior", "senior"]),
            Column::new("capacity_hours".into(), [Some(120.0), None, Some(160.0)]),
            Column::new(
                "skills".into(),
                [
                    "bookkeeping;一般纳税人",
                    "涉外，bookkeeping",
                    "GENERAL_TAXPAYER|international",
                ],
            ),
            Column::new("team".into(), ["第1组", "第1组", "第2组"]),
            Column::new("active".into(), ["true", "true", "false"]),
        ])
        .unwrap();
        let m = members(&df, &params());
        assert_eq!(m[0].can, GENERAL | SENIOR);
        assert_eq!(m[1].can, INTERNATIONAL);
        assert_eq!(m[1].capacity, 160.0, "an empty capacity takes the default");
        assert_eq!(m[2].can, GENERAL | INTERNATIONAL | SENIOR, "skills match without case");
        assert!(m[0].active && !m[2].active);
        assert_eq!(m[2].team, "第2组");
    }

    #[test]
    fn every_reason_code() {
        let staff = vec![
            member(100.0, 0, true),
            member(100.0, GENERAL, false),
            member(10.0, 7, true),
        ];
        let before = vec![50.0, 0.0, 20.0];
        let job = |needs, current| Job {
            hours: 2.0,
            needs,
            current,
        };
        let r = |j: &Job, p| reason(&staff, j, p, &before, 0.85);
        assert_eq!(r(&job(0, Some(0)), None), "unplaced");
        assert_eq!(r(&job(0, Some(0)), Some(0)), "kept");
        assert_eq!(r(&job(0, None), Some(0)), "no_accountant");
        assert_eq!(r(&job(0, Some(1)), Some(0)), "accountant_inactive");
        assert_eq!(r(&job(GENERAL, Some(0)), Some(2)), "skill");
        assert_eq!(r(&job(SENIOR, Some(0)), Some(2)), "seniority");
        // Accountant 2 holds 20 h of 8.5 allowed.
        assert_eq!(r(&job(0, Some(2)), Some(0)), "over_capacity");
        assert_eq!(r(&job(0, Some(0)), Some(2)), "balance");
        for code in [
            "kept",
            "unplaced",
            "no_accountant",
            "accountant_inactive",
            "skill",
            "seniority",
            "over_capacity",
            "balance",
        ] {
            let (en, zh) = reason_words(code);
            assert!(!en.is_empty() && !zh.is_empty(), "{code}");
        }
    }

    #[test]
    fn a_short_requirement_is_named_once() {
        // Top-tier work needs 200 h and general-taxpayer work 100 h; the one senior, who
        // alone has the skill, has 85. General-taxpayer + top-tier work is short too, but
        // the shorter lists already explain it: it is not named again.
        let staff = vec![member(100.0, SENIOR | GENERAL, true), member(400.0, 0, true)];
        let jobs: Vec<Job> = (0..20)
            .map(|k| Job {
                hours: 10.0,
                needs: if k % 2 == 0 { SENIOR } else { SENIOR | GENERAL },
                current: Some(1),
            })
            .collect();
        let diag = diagnose(&staff, &jobs, 0.85);
        let top = diag.iter().find(|r| r.needs == needs_words(SENIOR).0).unwrap();
        assert_eq!(
            (top.demand_hours, top.qualified_hours, top.qualified_staff),
            (200.0, 85.0, 1)
        );
        assert!((top.shortfall() - 115.0).abs() < 1e-9);
        let short: Vec<&str> = binding(&diag).iter().map(|r| r.needs.as_str()).collect();
        assert_eq!(short, [needs_words(GENERAL).0, needs_words(SENIOR).0]);
        assert!(diag
            .iter()
            .any(|r| r.needs == needs_words(SENIOR | GENERAL).0 && r.shortfall() > 0.0));
        assert_eq!(
            needs_zh(&needs_words(SENIOR | GENERAL).0),
            needs_words(SENIOR | GENERAL).1
        );
    }

    #[test]
    fn workload_has_a_column_per_month_of_handovers() {
        let staff = vec![member(100.0, 7, false), member(100.0, 7, true), member(100.0, 7, true)];
        let jobs: Vec<Job> = (0..6)
            .map(|_| Job {
                hours: 5.0,
                needs: 0,
                current: Some(0),
            })
            .collect();
        let proposed: Vec<Option<usize>> = (0..6).map(|k| Some(1 + k % 2)).collect();
        let limits = Limits {
            moves_per_month: Some(2),
            per_accountant: None,
        };
        let phases = phase::schedule(&staff, &jobs, &proposed, limits, 0.85, 6.0);
        assert_eq!(phases.months, 3);
        let tiers = vec!["V1".to_string(); 6];
        let w = workload(&staff, &jobs, &proposed, &tiers, &phases).unwrap();
        for m in 1..=3 {
            assert!(
                w.column(&format!("utilisation_month_{m}")).is_ok(),
                "{:?}",
                w.get_column_names()
            );
        }
        let after: Vec<u32> = w
            .column("clients_after")
            .unwrap()
            .u32()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(after, [0, 3, 3]);
        let v1: Vec<u32> = w
            .column("clients_V1")
            .unwrap()
            .u32()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(v1, [0, 3, 3]);
        // The leaver's load falls by two clients (10 h, a tenth of capacity) a month.
        let first: Vec<Option<f64>> = w.column("utilisation_month_1").unwrap().f64().unwrap().iter().collect();
        assert_eq!(first[0], Some(0.2));
    }
}
