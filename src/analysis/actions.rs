//! The monthly action list (行动清单): who does what for which client, by when, and why,
//! from the analyses before it: regular contact by the service plan's cycle, outreach to
//! valuable clients at churn risk, fee reviews, arrears collection, chasing late documents
//! before the filing deadline, and handovers after reassignment.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate, Weekday};
use polars::prelude::*;
use serde::Serialize;

use super::pricing::{churn_of, f64_column, monthly_fee, text_column, tier_ids};
use super::{earlier_column, Analysis, AnalysisError, Context, Outcome, Section, SectionTable};
use crate::format::{human, Lang};
use crate::history::column_f64;
use crate::progress::Stages;

/// Checked parameters of `[actions]`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionsParams {
    pub enabled: bool,
    /// Months between regular contacts per value tier (V1 monthly, V2 quarterly, V3
    /// half-yearly by default, or the cycles of `[[service_plans]]`); tiers not listed use
    /// the longest.
    pub contact_months: BTreeMap<String, u32>,
    /// Arrears above this many months of the client's fee are collected.
    pub arrears_months: f64,
    /// ... and above this amount (CNY).
    pub arrears_min: f64,
    /// Days of the list: actions due up to the snapshot plus this many days.
    pub horizon_days: i64,
    /// Documents are chased this many days before the filing deadline.
    pub chase_days_before: i64,
}

pub struct Actions {
    params: ActionsParams,
}

impl Actions {
    pub fn new(p: &ActionsParams) -> Actions {
        Actions { params: p.clone() }
    }
}

/// Action types, in the order of the list's columns and the report.
pub const TYPES: [&str; 6] = [
    "churn_outreach",
    "collect_arrears",
    "chase_documents",
    "handover",
    "fee_review",
    "contact",
];

pub fn type_words(code: &str) -> (&'static str, &'static str) {
    match code {
        "churn_outreach" => ("call a valuable client at risk of leaving", "高价值客户流失预警回访"),
        "collect_arrears" => ("collect arrears", "催收欠费"),
        "chase_documents" => ("chase documents before the filing deadline", "申报期前催收资料"),
        "handover" => ("hand the client over", "客户交接"),
        "fee_review" => ("review the fee", "服务费复核"),
        "contact" => ("regular contact", "定期沟通"),
        _ => ("", ""),
    }
}

/// The 15th of a month, moved to the next working day when it falls on a weekend (the
/// tax office's rule; public holidays, which also move it, are not known here).
pub fn filing_deadline(year: i32, month: u32) -> NaiveDate {
    let mut d = NaiveDate::from_ymd_opt(year, month, 15).unwrap_or_default();
    while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        d = d.succ_opt().unwrap_or(d);
    }
    d
}

/// The next filing deadline after `day`: monthly for general taxpayers, in the month
/// after a quarter (January, April, July, October) for small-scale ones.
pub fn next_deadline(day: NaiveDate, general: bool) -> NaiveDate {
    let mut y = day.year();
    let mut m = day.month();
    loop {
        let d = filing_deadline(y, m);
        if d > day && (general || matches!(m, 1 | 4 | 7 | 10)) {
            return d;
        }
        m += 1;
        if m > 12 {
            m = 1;
            y += 1;
        }
    }
}

fn add_months(d: NaiveDate, months: u32) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(months)).unwrap_or(d)
}

/// One action.
struct Row {
    client: usize,
    kind: &'static str,
    owner: String,
    due: NaiveDate,
    priority: u8,
    reason: String,
    amount: f64,
}

/// The last contact day per client id, from the contacts table.
fn last_contacts(ctx: &Context) -> Option<HashMap<String, NaiveDate>> {
    let c = ctx.contacts?;
    let n = c.height();
    let ids = text_column(c.column("client_id").ok(), n);
    let days = c
        .column("date")
        .ok()?
        .cast(&DataType::Int32)
        .ok()?
        .i32()
        .ok()?
        .iter()
        .collect::<Vec<_>>();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let mut out: HashMap<String, NaiveDate> = HashMap::new();
    for (id, d) in ids.into_iter().zip(days) {
        let Some(d) = d.and_then(|d| epoch.checked_add_signed(chrono::Duration::days(d as i64))) else {
            continue;
        };
        let e = out.entry(id).or_insert(d);
        if d > *e {
            *e = d;
        }
    }
    Some(out)
}

impl Analysis for Actions {
    fn id(&self) -> &'static str {
        "actions"
    }

    fn fit(&self, ctx: &Context, stages: &mut Stages) -> Result<Outcome, AnalysisError> {
        let mut out = Outcome::empty("actions");
        if !self.params.enabled {
            out.skipped = Some("actions.enabled = false".into());
            return Ok(out);
        }
        let rows = stages.run("actions", |_| plan(&self.params, ctx));
        Ok(outcome(ctx, &self.params, rows))
    }
}

fn plan(p: &ActionsParams, ctx: &Context) -> Vec<Row> {
    let t = ctx.table;
    let n = t.df.height();
    let s = t.snapshot;
    let horizon = s + chrono::Duration::days(p.horizon_days);
    let lang = ctx.lang;
    // Words in the run's language only: at 1M clients formatting both took a second.
    let zh = lang == Lang::Zh;
    macro_rules! pick {
        ($en:expr, $zh:expr $(,)?) => {
            if zh {
                $zh
            } else {
                $en
            }
        };
    }
    let served: Vec<bool> = ctx.served.map(|v| v.to_vec()).unwrap_or_else(|| vec![true; n]);
    let ids = text_column(t.df.column("client_id").ok(), n);
    let accountant = text_column(t.df.column("accountant").ok(), n);
    let taxpayer = text_column(t.df.column("taxpayer_type").ok(), n);
    let tiers = tier_ids(ctx);
    let (bands, risk) = churn_of(ctx);
    let proposed = text_column(earlier_column(ctx.earlier, "proposed_accountant"), n);
    let flag = text_column(earlier_column(ctx.earlier, "price_flag"), n);
    let suggested = f64_column(earlier_column(ctx.earlier, "suggested_fee"), n);
    let fee = monthly_fee(t);
    let owed = column_f64(t, "open_receivables");
    let late3 = column_f64(t, "late_documents_3m");
    let contacts = last_contacts(ctx);
    let longest = p.contact_months.values().copied().max().unwrap_or(6);
    let mut rows = Vec::new();
    for i in (0..n).filter(|&i| served[i]) {
        let owner = if proposed[i].is_empty() {
            accountant[i].clone()
        } else {
            proposed[i].clone()
        };
        let mut push = |kind, due: NaiveDate, priority, reason: String, amount: f64| {
            rows.push(Row {
                client: i,
                kind,
                owner: owner.clone(),
                due,
                priority,
                reason,
                amount,
            })
        };
        let top = tiers[i] == "V1";
        // Outreach: a top-tier client at high or medium risk, or any client at high risk
        // with a tier above the lowest.
        let band = bands[i].as_str();
        if (top && (band == "high" || band == "medium")) || (band == "high" && tiers[i] == "V2") {
            let r = if risk[i].is_finite() { risk[i] } else { 0.0 };
            push(
                "churn_outreach",
                s + chrono::Duration::days(7),
                1,
                pick!(
                    format!("{} risk of leaving: {:.0}%", band, r * 100.0),
                    format!(
                        "流失风险{}：{:.0}%",
                        if band == "high" { "高" } else { "中" },
                        r * 100.0
                    ),
                ),
                r,
            );
        }
        // Arrears above the threshold.
        let threshold = (p.arrears_months * fee[i].max(0.0)).max(p.arrears_min);
        if owed[i].is_finite() && owed[i] > threshold {
            let months = if fee[i] > 0.0 { owed[i] / fee[i] } else { f64::INFINITY };
            push(
                "collect_arrears",
                s + chrono::Duration::days(7),
                if months >= 3.0 { 1 } else { 2 },
                pick!(
                    format!("owes {} CNY ({:.1} months of fees)", human(owed[i]), months),
                    format!("欠费 {} 元（{:.1} 个月服务费）", human(owed[i]), months),
                ),
                owed[i],
            );
        }
        // Late documents lately: chase before the next filing deadline.
        if late3[i].is_finite() && late3[i] > 0.0 {
            let deadline = next_deadline(s, taxpayer[i] == "general");
            let due = (deadline - chrono::Duration::days(p.chase_days_before)).max(s + chrono::Duration::days(1));
            if due <= horizon {
                push(
                    "chase_documents",
                    due,
                    2,
                    pick!(
                        format!(
                            "documents late in {:.0}% of the last 3 months; filing deadline {deadline}",
                            late3[i] * 100.0
                        ),
                        format!("近3个月 {:.0}% 的月份资料延迟；申报截止 {deadline}", late3[i] * 100.0),
                    ),
                    late3[i],
                );
            }
        }
        // Handover to the proposed accountant.
        if !proposed[i].is_empty() && proposed[i] != accountant[i] {
            let from = if accountant[i].is_empty() {
                "-".to_string()
            } else {
                accountant[i].clone()
            };
            rows.push(Row {
                client: i,
                kind: "handover",
                owner: from.clone(),
                due: s + chrono::Duration::days(14),
                priority: 2,
                reason: pick!(
                    format!("hand over from {from} to {}", proposed[i]),
                    format!("由 {from} 交接给 {}", proposed[i]),
                ),
                amount: f64::NAN,
            });
        }
        // Fee review for the under-priced.
        if flag[i] == "under_priced" {
            let new = suggested[i];
            let (en, zh) = if new.is_finite() {
                (
                    format!("fee {:.0} CNY a month, suggested {:.0}", fee[i], new),
                    format!("月费 {:.0} 元，建议 {:.0} 元", fee[i], new),
                )
            } else {
                (
                    format!(
                        "under-priced at {:.0} CNY a month; rise held back for churn risk",
                        fee[i]
                    ),
                    format!("月费 {:.0} 元偏低；因流失风险暂缓调价", fee[i]),
                )
            };
            let owner = owner.clone();
            rows.push(Row {
                client: i,
                kind: "fee_review",
                owner,
                due: s + chrono::Duration::days(30),
                priority: 3,
                reason: pick!(en, zh),
                amount: new,
            });
        }
        // Regular contact by the plan's cycle.
        let cycle = p.contact_months.get(&tiers[i]).copied().unwrap_or(longest);
        let last = contacts.as_ref().and_then(|c| c.get(&ids[i]).copied());
        let due = match (&contacts, last) {
            (Some(_), Some(d)) => add_months(d, cycle),
            // No contact recorded: due now.
            (Some(_), None) => s,
            // No contacts table: the cycle starts at the snapshot.
            (None, _) => add_months(s, cycle),
        };
        if due <= horizon {
            let overdue = due <= s;
            let (en, zh) = match last {
                Some(d) => (
                    format!("last contact {d}; the plan is every {cycle} months"),
                    format!("上次联系 {d}；服务方案为每 {cycle} 个月一次"),
                ),
                None if contacts.is_some() => ("no contact recorded".to_string(), "无联系记录".to_string()),
                None => (
                    format!("the plan is every {cycle} months"),
                    format!("服务方案为每 {cycle} 个月一次"),
                ),
            };
            rows.push(Row {
                client: i,
                kind: "contact",
                owner: owner.clone(),
                due: if overdue { s + chrono::Duration::days(1) } else { due },
                priority: if overdue && top { 2 } else { 3 },
                reason: pick!(en, zh),
                amount: f64::NAN,
            });
        }
    }
    rows.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(a.due.cmp(&b.due))
            .then(a.owner.cmp(&b.owner))
            .then(a.client.cmp(&b.client))
            .then(a.kind.cmp(b.kind))
    });
    rows
}

fn outcome(ctx: &Context, p: &ActionsParams, rows: Vec<Row>) -> Outcome {
    let mut out = Outcome::empty("actions");
    let t = ctx.table;
    let n = t.df.height();
    let ids = text_column(t.df.column("client_id").ok(), n);
    let names = text_column(t.df.column("name").ok(), n);
    let tiers = tier_ids(ctx);
    let lang = ctx.lang;
    let words = |k: &str| match lang {
        Lang::En => type_words(k).0,
        Lang::Zh => type_words(k).1,
    };
    let table = DataFrame::new_infer_height(vec![
        Column::new(
            "client_id".into(),
            rows.iter().map(|r| ids[r.client].clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "name".into(),
            rows.iter().map(|r| names[r.client].clone()).collect::<Vec<_>>(),
        ),
        Column::new("owner".into(), rows.iter().map(|r| r.owner.clone()).collect::<Vec<_>>()),
        Column::new("action".into(), rows.iter().map(|r| r.kind).collect::<Vec<_>>()),
        Column::new(
            "action_words".into(),
            rows.iter().map(|r| words(r.kind)).collect::<Vec<_>>(),
        ),
        Column::new(
            "due_date".into(),
            rows.iter().map(|r| r.due.to_string()).collect::<Vec<_>>(),
        ),
        Column::new(
            "priority".into(),
            rows.iter().map(|r| r.priority as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "reason".into(),
            rows.iter().map(|r| r.reason.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "figure".into(),
            rows.iter()
                .map(|r| r.amount.is_finite().then(|| (r.amount * 1e4).round() / 1e4))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "value_tier".into(),
            rows.iter().map(|r| tiers[r.client].clone()).collect::<Vec<_>>(),
        ),
    ]);
    // Per client: the actions due, most urgent first.
    let mut per_client: Vec<Vec<&'static str>> = vec![Vec::new(); n];
    for r in &rows {
        per_client[r.client].push(r.kind);
    }
    out.columns = vec![Column::new(
        "actions_due".into(),
        per_client
            .iter()
            .map(|k| (!k.is_empty()).then(|| k.join(";")))
            .collect::<Vec<_>>(),
    )];
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_owner: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for r in &rows {
        *by_type.entry(r.kind).or_default() += 1;
        *by_owner.entry(r.owner.as_str()).or_default().entry(r.kind).or_default() += 1;
    }
    let total = rows.len();
    let owners = by_owner.len();
    out.headline = Some((
        format!(
            "actions: {total} for {owners} accountants ({})",
            TYPES
                .iter()
                .filter_map(|k| by_type.get(k).map(|c| format!("{c} {}", type_words(k).0)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "行动清单：{owners} 位会计共 {total} 项（{}）",
            TYPES
                .iter()
                .filter_map(|k| by_type.get(k).map(|c| format!("{}{c}项", type_words(k).1)))
                .collect::<Vec<_>>()
                .join("，")
        ),
    ));
    out.summary = Some(serde_json::json!({
        "actions": total,
        "accountants": owners,
        "by_type": by_type,
        "contacts_table": ctx.contacts.is_some(),
        "contact_months": p.contact_months,
        "horizon_days": p.horizon_days,
    }));
    // This month, by accountant: the busiest 30 by actions.
    let mut owners_sorted: Vec<(&str, usize)> = by_owner.iter().map(|(o, m)| (*o, m.values().sum::<usize>())).collect();
    owners_sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown = owners_sorted.len().min(30);
    let mut header = vec![
        ("accountant".to_string(), "会计".to_string()),
        ("actions".into(), "行动数".into()),
    ];
    header.extend(
        TYPES
            .iter()
            .map(|k| (type_words(k).0.to_string(), type_words(k).1.to_string())),
    );
    let table_rows = owners_sorted
        .iter()
        .take(shown)
        .map(|(o, c)| {
            let mut cells = vec![(o.to_string(), o.to_string()), (c.to_string(), c.to_string())];
            for k in TYPES {
                let v = by_owner.get(o).and_then(|m| m.get(k)).copied().unwrap_or(0).to_string();
                cells.push((v.clone(), v));
            }
            cells
        })
        .collect();
    out.section = Some(Section {
        id: "actions".into(),
        title: ("This month, by accountant".into(), "本月行动，按会计".into()),
        lines: vec![(
            format!(
                "{total} actions due by {} for {owners} accountants, in actions.csv and actions.xlsx (one row per client and action type, most urgent first). Contact cycles: {}; {}.",
                t.snapshot + chrono::Duration::days(p.horizon_days),
                p.contact_months.iter().map(|(k, v)| format!("{k} every {v} months")).collect::<Vec<_>>().join(", "),
                if ctx.contacts.is_some() { "last contacts from the contacts table" } else { "no contacts table, so each cycle starts at the snapshot" }
            ),
            format!(
                "截至 {} 共 {total} 项行动，涉及 {owners} 位会计，见 actions.csv 和 actions.xlsx（每个客户每类行动一行，按紧急程度排序）。沟通周期：{}；{}。",
                t.snapshot + chrono::Duration::days(p.horizon_days),
                p.contact_months.iter().map(|(k, v)| format!("{k} 每 {v} 个月")).collect::<Vec<_>>().join("，"),
                if ctx.contacts.is_some() { "上次联系日期取自联系记录" } else { "无联系记录，周期从数据截止日起算" }
            ),
        )],
        tables: vec![SectionTable {
            caption: (
                format!("Actions per accountant (the {shown} with the most)"),
                format!("各会计的行动数（前 {shown} 位）"),
            ),
            header,
            rows: table_rows,
        }],
    });
    if let Ok(df) = table {
        out.exports.push(("actions".into(), df));
    }
    // The same list as a CRM's task import (Zoho CRM Tasks' columns as the template).
    let priority_words = |p: u8| match p {
        1 => "High",
        2 => "Normal",
        _ => "Low",
    };
    let tasks = DataFrame::new_infer_height(vec![
        Column::new(
            "Subject".into(),
            rows.iter()
                .map(|r| format!("{}: {}", words(r.kind), names[r.client]))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "Due Date".into(),
            rows.iter().map(|r| r.due.to_string()).collect::<Vec<_>>(),
        ),
        Column::new("Status".into(), rows.iter().map(|_| "Not Started").collect::<Vec<_>>()),
        Column::new(
            "Priority".into(),
            rows.iter().map(|r| priority_words(r.priority)).collect::<Vec<_>>(),
        ),
        Column::new(
            "Task Owner".into(),
            rows.iter().map(|r| r.owner.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "Account Number".into(),
            rows.iter().map(|r| ids[r.client].clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "Related To".into(),
            rows.iter().map(|r| names[r.client].clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "Description".into(),
            rows.iter().map(|r| r.reason.clone()).collect::<Vec<_>>(),
        ),
    ]);
    if let Ok(df) = tasks {
        out.imports.push(("crm_tasks".into(), df));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_move_off_weekends_and_follow_the_taxpayer() {
        // 2025-03-15 is a Saturday: the deadline is Monday the 17th.
        assert_eq!(filing_deadline(2025, 3), NaiveDate::from_ymd_opt(2025, 3, 17).unwrap());
        let s = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
        // General taxpayers file monthly: 2026-01-15 is a Thursday.
        assert_eq!(next_deadline(s, true), NaiveDate::from_ymd_opt(2026, 1, 15).unwrap());
        // Small-scale ones after the quarter: January, then April.
        assert_eq!(next_deadline(s, false), NaiveDate::from_ymd_opt(2026, 1, 15).unwrap());
        let feb = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        assert_eq!(next_deadline(feb, false), NaiveDate::from_ymd_opt(2026, 4, 15).unwrap());
        assert_eq!(next_deadline(feb, true), NaiveDate::from_ymd_opt(2026, 2, 16).unwrap());
    }
}
