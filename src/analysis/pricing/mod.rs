//! What each client costs to serve and what it should pay: monthly hours (logged,
//! estimated from the workload, or the firm's rule of thumb), cost, margin, a peer group
//! of clients with the same taxpayer and client type and the nearest workload, and a
//! suggested fee for the under-priced, held back where a rise would cost a valuable client.

mod params;
pub use params::{RawDefaultHours, RawGradeCost, RawPricing};

mod price;
mod report;
pub mod response;
pub use price::price;

use polars::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use super::{Analysis, AnalysisError, ChartSeries, Context, LineChart, Need, Outcome, SectionTable};
use crate::columns::{OutputColumn, SqlType};
use crate::format::{money, Lang};
use crate::history::column_f64;
use crate::progress::Stages;

/// Hours a month by the firm's rules of thumb, for clients whose hours are neither logged
/// nor estimable (`[pricing.default_hours]`).
#[derive(Debug, Clone, Serialize)]
pub struct DefaultHours {
    /// 零申报: a shell with no vouchers.
    pub zero_declaration: f64,
    pub small_scale: f64,
    pub general: f64,
    /// Per month with late documents: chasing a client costs hours.
    pub chase: f64,
}

/// Cost of an hour by the grade of the client's accountant (`[pricing.hourly_cost]`).
#[derive(Debug, Clone, Serialize)]
pub struct GradeCost {
    pub junior: f64,
    pub senior: f64,
    pub lead: f64,
}

/// Checked parameters of `[pricing]`.
#[derive(Debug, Clone, Serialize)]
pub struct PricingParams {
    pub enabled: bool,
    /// Margin rate below which a client is under-priced.
    pub target_margin: f64,
    /// Largest rise per review, as a share of today's fee.
    pub max_increase: f64,
    /// Suggested fees are multiples of this (CNY).
    pub fee_step: f64,
    /// Under-priced also when the fee per hour is this share below the peer median.
    pub rate_tolerance: f64,
    /// Clients in a peer group.
    pub peers: usize,
    pub default_hours: DefaultHours,
    /// features.hourly_cost, for every grade unless `by_grade` is set.
    pub hourly_cost: f64,
    pub by_grade: Option<GradeCost>,
}

pub struct Pricing {
    params: PricingParams,
}

impl Pricing {
    pub fn new(p: &PricingParams) -> Pricing {
        Pricing { params: p.clone() }
    }
}

/// Where a client's hours come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Logged,
    Estimated,
    Default,
}

impl Source {
    fn code(self) -> &'static str {
        match self {
            Source::Logged => "logged",
            Source::Estimated => "estimated",
            Source::Default => "rule_of_thumb",
        }
    }
}

/// The workload terms the hours model reads, in this order.
const WORKLOAD: [&str; 4] = [
    "vouchers_per_month",
    "filings_per_month",
    "tickets_per_month",
    "late_documents_share",
];

/// Least-squares hours from the workload, fitted on clients that log hours.
#[derive(Debug, Clone, Serialize)]
pub struct HoursModel {
    /// Intercept, one weight per WORKLOAD term, then general taxpayer (0/1).
    pub weights: Vec<f64>,
    pub terms: Vec<String>,
    pub fitted_on: usize,
    /// What is held out: whole "team"s of the staff table (a team that logs no hours is
    /// then like one the model never saw), else single "client"s.
    pub holdout_by: &'static str,
    /// Teams (or folds of clients) held out in turn, and the clients they hold.
    pub holdout_groups: usize,
    pub holdout_clients: usize,
    /// Mean absolute error on held-out clients (hours a month), and that of the rules of thumb.
    pub holdout_mae: f64,
    pub holdout_mae_rule_of_thumb: f64,
    /// Mean of predicted minus logged hours on held-out clients.
    pub holdout_bias: f64,
    /// Mean hours a month of the held-out clients (to read the error against).
    pub holdout_mean_hours: f64,
}

fn features_of(x: &[Vec<f64>], general: &[bool], i: usize) -> Option<Vec<f64>> {
    let mut row = vec![1.0];
    for col in x {
        let v = *col.get(i)?;
        if !v.is_finite() {
            return None;
        }
        row.push(v);
    }
    row.push(if general.get(i).copied().unwrap_or(false) {
        1.0
    } else {
        0.0
    });
    Some(row)
}

/// The normal equations' sums [X'X | X'y] of some rows, p x (p + 1).
fn normal_sums<'a>(rows: impl Iterator<Item = (&'a [f64], f64)>, p: usize) -> Vec<Vec<f64>> {
    let mut a = vec![vec![0.0; p + 1]; p];
    for (r, t) in rows {
        for j in 0..p {
            for k in 0..p {
                a[j][k] += r[j] * r[k];
            }
            a[j][p] += r[j] * t;
        }
    }
    a
}

/// Ridge-stabilised normal equations, solved by Gaussian elimination.
fn solve_normal(mut a: Vec<Vec<f64>>, n: usize) -> Option<Vec<f64>> {
    let p = a.len();
    for (j, row) in a.iter_mut().enumerate() {
        row[j] += 1e-6 * n as f64;
    }
    for c in 0..p {
        let pivot = (c..p).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        a.swap(c, pivot);
        if a[c][c].abs() < 1e-12 {
            return None;
        }
        for r in 0..p {
            if r != c {
                let f = a[r][c] / a[c][c];
                for k in c..=p {
                    a[r][k] -= f * a[c][k];
                }
            }
        }
    }
    Some((0..p).map(|j| a[j][p] / a[j][j]).collect())
}

#[cfg(test)]
fn least_squares(rows: &[Vec<f64>], y: &[f64]) -> Option<Vec<f64>> {
    let p = rows.first()?.len();
    let a = normal_sums(rows.iter().map(|r| r.as_slice()).zip(y.iter().copied()), p);
    solve_normal(a, rows.len())
}

fn predict(w: &[f64], row: &[f64]) -> f64 {
    w.iter().zip(row).map(|(a, b)| a * b).sum::<f64>().max(0.05)
}

/// Clients with logged hours needed to fit the hours model.
const MIN_FIT: usize = 30;
/// Folds of the cross-validation.
const FOLDS: usize = 5;

/// One client with logged hours: its workload terms, logged hours, the rules of thumb's
/// hours, and its team (None when the staff table does not say).
pub(super) struct Logged {
    pub row: Vec<f64>,
    pub hours: f64,
    pub rule: f64,
    pub team: Option<u32>,
}

/// Fits the hours model and measures it by cross-validation: whole teams held out in
/// turn when the clients' teams are known and there are at least three, else clients.
fn fit_hours(rows: &[Logged], seed: u64) -> Option<HoursModel> {
    if rows.len() < MIN_FIT {
        return None;
    }
    let p = rows.first()?.row.len();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x4F5E_11AB);
    // Clients whose team is unknown form a group of their own.
    let team = |r: &Logged| r.team.unwrap_or(u32::MAX);
    let mut teams: Vec<u32> = rows.iter().map(team).collect();
    teams.sort_unstable();
    teams.dedup();
    let by_team = teams.iter().filter(|t| **t != u32::MAX).count() >= 3;
    let fold: Vec<usize> = if by_team {
        teams.shuffle(&mut rng);
        let folds = FOLDS.min(teams.len());
        let of: std::collections::HashMap<u32, usize> =
            teams.iter().enumerate().map(|(k, &t)| (t, k % folds)).collect();
        rows.iter().map(|r| of.get(&team(r)).copied().unwrap_or(0)).collect()
    } else {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.shuffle(&mut rng);
        let mut f = vec![0; rows.len()];
        for (k, &i) in order.iter().enumerate() {
            f[i] = k % FOLDS;
        }
        f
    };
    let folds = fold.iter().max().map_or(1, |m| m + 1);
    let sums: Vec<Vec<Vec<f64>>> = (0..folds)
        .map(|k| {
            normal_sums(
                rows.iter()
                    .zip(&fold)
                    .filter(|(_, f)| **f == k)
                    .map(|(r, _)| (r.row.as_slice(), r.hours)),
                p,
            )
        })
        .collect();
    let counts: Vec<usize> = (0..folds).map(|k| fold.iter().filter(|f| **f == k).count()).collect();
    let total = |skip: Option<usize>| -> Vec<Vec<f64>> {
        let mut a = vec![vec![0.0; p + 1]; p];
        for (k, s) in sums.iter().enumerate() {
            if Some(k) == skip {
                continue;
            }
            for (ar, sr) in a.iter_mut().zip(s) {
                for (x, y) in ar.iter_mut().zip(sr) {
                    *x += y;
                }
            }
        }
        a
    };
    let mut weights_without = Vec::with_capacity(folds);
    for k in 0..folds {
        let n = rows.len() - counts[k];
        weights_without.push(if n >= MIN_FIT {
            solve_normal(total(Some(k)), n)
        } else {
            None
        });
    }
    let (mut abs, mut rule_abs, mut bias, mut sum_h, mut held) = (0.0, 0.0, 0.0, 0.0, 0usize);
    for (r, &k) in rows.iter().zip(&fold) {
        let Some(w) = &weights_without[k] else { continue };
        let e = predict(w, &r.row) - r.hours;
        abs += e.abs();
        bias += e;
        rule_abs += (r.rule - r.hours).abs();
        sum_h += r.hours;
        held += 1;
    }
    let n = held.max(1) as f64;
    let weights = solve_normal(total(None), rows.len())?;
    let mut terms = vec!["intercept".to_string()];
    terms.extend(WORKLOAD.iter().map(|s| s.to_string()));
    terms.push("general_taxpayer".into());
    Some(HoursModel {
        weights,
        terms,
        fitted_on: rows.len(),
        holdout_by: if by_team { "team" } else { "client" },
        holdout_groups: if by_team { teams.len() } else { folds },
        holdout_clients: held,
        holdout_mae: abs / n,
        holdout_mae_rule_of_thumb: rule_abs / n,
        holdout_bias: bias / n,
        holdout_mean_hours: sum_h / n,
    })
}

/// The monthly fee of every client: the contracted one where the archive has it (one-off
/// services do not pay for the monthly work), else what was billed a month on average.
pub fn monthly_fee(t: &crate::features::FeatureTable) -> Vec<f64> {
    let contract = column_f64(t, "contract_fee");
    let billed = column_f64(t, "avg_monthly_fee");
    contract
        .iter()
        .zip(&billed)
        .map(|(c, b)| if c.is_finite() && *c > 0.0 { *c } else { *b })
        .collect()
}

/// A text column of the feature table (or of an earlier analysis), "" where missing.
pub fn text_column(c: Option<&Column>, n: usize) -> Vec<String> {
    let read = || -> Option<Vec<String>> {
        let s = c?.cast(&DataType::String).ok()?;
        let ca = s.str().ok()?.clone();
        Some(ca.iter().map(|v| v.unwrap_or("").to_string()).collect())
    };
    read()
        .filter(|v| v.len() == n)
        .unwrap_or_else(|| vec![String::new(); n])
}

pub fn f64_column(c: Option<&Column>, n: usize) -> Vec<f64> {
    let read = || -> Option<Vec<f64>> {
        let s = c?.cast(&DataType::Float64).ok()?;
        let ca = s.f64().ok()?.clone();
        Some(ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    };
    read().filter(|v| v.len() == n).unwrap_or_else(|| vec![f64::NAN; n])
}

/// The value tier code per client ("V1" ...), "" without tiers.
pub(super) fn tier_ids(ctx: &Context) -> Result<Vec<String>, AnalysisError> {
    let n = ctx.table.df.height();
    Ok(match ctx.segmentation("value")? {
        Some(s) => s
            .labels
            .iter()
            .map(|&l| s.model.segments.get(l).map(|g| g.id.clone()).unwrap_or_default())
            .collect(),
        None => vec![String::new(); n],
    })
}

/// Per client: churn band and the risk of the longest horizon, when churn ran.
pub(super) fn churn_of(ctx: &Context) -> Result<(Vec<String>, Vec<f64>), AnalysisError> {
    let n = ctx.table.df.height();
    let bands = text_column(ctx.column("churn", "churn_band")?, n);
    Ok((bands, longest_risk(ctx)?))
}

/// Per client: the churn risk of the longest horizon (NaN without churn).
pub(super) fn longest_risk(ctx: &Context) -> Result<Vec<f64>, AnalysisError> {
    Ok(f64_column(ctx.column("churn", "churn_risk_*")?, ctx.table.df.height()))
}

/// Peer statistics for one client: median fee per hour and median hours of its peers.
fn peer_medians(members: &[(usize, f64, f64)], k: usize) -> Vec<(usize, f64, usize)> {
    // members: (client, hours, rate), sorted by hours.
    let n = members.len();
    let half = k / 2;
    (0..n)
        .map(|p| {
            let lo = p.saturating_sub(half).min(n.saturating_sub(k + 1));
            let hi = (lo + k + 1).min(n);
            let mut rates: Vec<f64> = (lo..hi).filter(|&q| q != p).map(|q| members[q].2).collect();
            rates.sort_by(f64::total_cmp);
            let m = rates.len();
            let median = match m {
                0 => f64::NAN,
                _ if m % 2 == 1 => rates[m / 2],
                _ => (rates[m / 2 - 1] + rates[m / 2]) / 2.0,
            };
            (members[p].0, median, m)
        })
        .collect()
}

/// A fee above `fee` and at most `cap`, as close to `want` as the firm's step allows:
/// `want` rounded up to the step when that stays under the cap, else down when that is
/// still a rise, else the same with a step of 10 CNY and then 1 CNY (a small fee's room
/// under the cap can be less than one step: 50 CNY at +30% is 65, which steps of 50
/// would round back to 50). `None` when there is not 1 CNY of room.
fn rise_within(fee: f64, want: f64, cap: f64, step: f64) -> Option<f64> {
    let want = want.min(cap);
    if !(want > fee) {
        return None;
    }
    let step = if step > 0.0 { step } else { 1.0 };
    for s in [step, 10.0, 1.0] {
        if s > step {
            continue;
        }
        let up = (want / s - 1e-9).ceil() * s;
        if up > fee && up <= cap + 1e-9 {
            return Some(up);
        }
        let down = (want / s + 1e-9).floor() * s;
        if down > fee + 1e-9 {
            return Some(down);
        }
    }
    None
}

/// Everything pricing works out per client (the served ones; others are empty).
pub struct Priced {
    pub hours: Vec<f64>,
    pub source: Vec<Option<Source>>,
    pub cost: Vec<f64>,
    pub fee: Vec<f64>,
    pub margin_rate: Vec<f64>,
    pub peer_rate: Vec<f64>,
    pub peers: Vec<usize>,
    pub flag: Vec<&'static str>,
    pub suggested: Vec<f64>,
    pub reason: Vec<String>,
    pub model: Option<HoursModel>,
    /// Teams whose clients mostly log no hours (their hours are estimated), with the
    /// clients each serves.
    pub untimed_teams: Vec<(String, usize)>,
    /// The firm's response to rises, when churn measured it.
    pub response: Option<response::Response>,
    /// Per client with a suggested fee: the expected extra revenue of the rise over the
    /// next 12 months, with the model's response and the pessimistic one.
    pub gain: Vec<(f64, f64)>,
}

/// The columns pricing adds to labels.csv and pricing.csv, with their words.
fn declared() -> Vec<OutputColumn> {
    let flags: Vec<(&str, &str, &str)> = ["under_priced", "over_served", "ok"]
        .into_iter()
        .map(|f| (f, flag_words(f, Lang::En), flag_words(f, Lang::Zh)))
        .collect();
    let sources = [
        ("logged", "from time sheets", "工时记录"),
        ("estimated", "estimated by the model", "模型估算"),
        ("rule_of_thumb", "rule of thumb", "经验值"),
    ];
    let mut out = vec![
        OutputColumn::number("monthly_hours", "hours a month", "月均工时"),
        OutputColumn::category("hours_source", "where the hours come from", "工时来源", &sources),
        OutputColumn::number("monthly_cost", "cost a month", "月服务成本"),
        OutputColumn::number("margin_rate", "margin rate", "毛利率"),
        OutputColumn::category("price_flag", "price check", "定价判断", &flags)
            .crm("Price Flag")
            .push(SqlType::Text),
        OutputColumn::number("suggested_fee", "suggested monthly fee", "建议月费")
            .crm("Suggested Fee")
            .push(SqlType::Double),
    ];
    out.extend(
        [
            ("monthly_fee", "monthly fee", "月费"),
            ("margin", "margin a month", "月毛利"),
            ("fee_per_hour", "fee per hour", "每工时收费"),
            (
                "peer_fee_per_hour",
                "peers' median fee per hour",
                "同类客户每工时收费（中位数）",
            ),
            ("peers", "peers", "同类客户数"),
            ("fee_change", "fee change", "调价金额"),
        ]
        .into_iter()
        .map(|(name, en, zh)| OutputColumn::number(name, en, zh)),
    );
    out.push(OutputColumn::text("reason", "reason", "原因"));
    out
}

fn flag_words(code: &str, lang: Lang) -> &'static str {
    match (code, lang) {
        ("under_priced", Lang::En) => "under-priced",
        ("under_priced", Lang::Zh) => "定价偏低",
        ("over_served", Lang::En) => "over-served",
        ("over_served", Lang::Zh) => "服务超量",
        ("ok", Lang::En) => "in line",
        ("ok", Lang::Zh) => "定价合理",
        _ => "",
    }
}

impl Analysis for Pricing {
    fn id(&self) -> &'static str {
        "pricing"
    }

    fn name(&self) -> (&'static str, &'static str) {
        ("pricing", "定价")
    }

    fn fit(&self, ctx: &Context, stages: &mut Stages) -> Result<Outcome, AnalysisError> {
        let mut out = Outcome::empty("pricing");
        if !self.params.enabled {
            out.skipped = Some("pricing.enabled = false".into());
            return Ok(out);
        }
        let priced = stages.run("pricing", |_| price(&self.params, ctx))?;
        self.outcome(ctx, priced)
    }

    fn needs(&self) -> Vec<Need> {
        vec![
            Need::segmentation("value"),
            Need::column("churn", "churn_band"),
            Need::column("churn", "churn_risk_*"),
            Need::table("churn", "fee_response").sometimes(),
        ]
    }
}

/// accountant -> team (numbered), and the teams' names, from the staff table.
fn staff_teams(ctx: &Context) -> (std::collections::HashMap<String, u32>, Vec<String>) {
    let mut out = std::collections::HashMap::new();
    let mut names_of: Vec<String> = Vec::new();
    if let Some(s) = ctx.input("staff") {
        let n = s.height();
        let names = text_column(s.column("accountant").ok(), n);
        let teams = text_column(s.column("team").ok(), n);
        let mut number: std::collections::HashMap<&str, u32> = Default::default();
        for (a, t) in names.iter().zip(&teams) {
            if a.is_empty() || t.is_empty() {
                continue;
            }
            let next = number.len() as u32;
            let k = *number.entry(t.as_str()).or_insert_with(|| {
                names_of.push(t.clone());
                next
            });
            out.insert(a.clone(), k);
        }
    }
    (out, names_of)
}

/// Teams whose served clients mostly (80% or more, at least five) log no hours.
fn untimed(clients: impl Iterator<Item = (Option<u32>, bool)>, names: &[String]) -> Vec<(String, usize)> {
    // (clients, clients without logged hours) per team.
    let mut count = vec![(0usize, 0usize); names.len()];
    for (t, logged) in clients {
        if let Some(e) = t.and_then(|t| count.get_mut(t as usize)) {
            e.0 += 1;
            e.1 += usize::from(!logged);
        }
    }
    count
        .into_iter()
        .zip(names)
        .filter(|((all, none), _)| *all >= 5 && *none as f64 >= 0.8 * *all as f64)
        .map(|((all, _), name)| (name.clone(), all))
        .collect()
}

/// accountant -> grade, from the staff table.
fn staff_grades(ctx: &Context) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    if let Some(s) = ctx.input("staff") {
        let n = s.height();
        let names = text_column(s.column("accountant").ok(), n);
        let grades = text_column(s.column("grade").ok(), n);
        for (a, g) in names.into_iter().zip(grades) {
            out.insert(a, g);
        }
    }
    out
}

fn round2(v: f64) -> Option<f64> {
    v.is_finite().then(|| (v * 100.0).round() / 100.0)
}

#[allow(clippy::too_many_arguments)]

/// The firm's response to fee rises: what its history shows, what the churn model
/// estimates, and the expected revenue of a rise of each size.
fn response_section(
    resp: Option<&response::Response>,
    gains: (f64, f64),
) -> (Vec<(String, String)>, Option<SectionTable>) {
    let Some(r) = resp else {
        return (
            vec![(
                "Rises are not weighed against churn: the churn analysis did not measure how clients answered fee rises (it needs the fee_rise feature and a churn history).".into(),
                "调价未按流失风险权衡：流失分析未能测得客户对调价的反应（需要近期调价幅度特征和流失历史）。".into(),
            )],
            None,
        );
    };
    let h = r.horizon;
    let lines = vec![(
        format!(
            "Each rise is weighed against the chance it drives the client away, from how this firm's clients answered rises (table below: leaving within {h:.0} months). Net of that, the suggested rises are expected to add {} CNY over the next 12 months; {} CNY if rises drive clients away as much as the upper end of the firm's history allows.",
            money(gains.0),
            money(gains.1)
        ),
        format!(
            "每项调价都按本公司客户对调价的反应（见下表：{h:.0} 个月内流失）权衡其导致流失的可能。扣除这一影响后，建议调价预计在未来 12 个月增收 {} 元；若调价导致的流失达到历史区间的上限，则为 {} 元。",
            money(gains.0),
            money(gains.1)
        ),
    )];
    let pct = |v: f64| {
        if v.is_finite() {
            format!("{:.1}%", v * 100.0)
        } else {
            "-".into()
        }
    };
    let h0 = response::monthly_hazard(r.base_risk, h);
    let rows = r
        .groups
        .iter()
        .zip(&r.model)
        .map(|(g, &(rise, _))| {
            let (range_en, range_zh) = if !g.from.is_finite() {
                ("no rise (up to 2%)".to_string(), "未调价（2% 以内）".to_string())
            } else if !g.to.is_finite() {
                (
                    format!("over {:.0}%", g.from * 100.0),
                    format!("{:.0}% 以上", g.from * 100.0),
                )
            } else {
                let t = format!("{:.0}-{:.0}%", g.from * 100.0, g.to * 100.0);
                (t.clone(), t)
            };
            let ratio = r.ratio(rise);
            let revenue = |q: f64| 100.0 * (1.0 + rise) * response::months_kept((h0 * q).min(0.99));
            let interval = format!("{}-{}", pct(g.low), pct(g.high));
            let cells = [
                format!("{:.0}", g.clients),
                pct(g.rate),
                interval,
                format!("+{:.0}%", rise * 100.0),
                format!("x{ratio:.2}"),
                format!("{:.0} / {:.0}", revenue(ratio), revenue(r.ratio_high(rise))),
            ];
            let mut row = vec![(range_en, range_zh)];
            row.extend(cells.into_iter().map(|c| (c.clone(), c)));
            row
        })
        .collect();
    let table = SectionTable {
        caption: (
            format!(
                "How clients answered fee rises (leaving within {h:.0} months) and what a rise is expected to bring"
            ),
            format!("客户对调价的反应（{h:.0} 个月内流失）与调价的预期收益"),
        ),
        header: vec![
            ("rise in the history".into(), "历史调价幅度".into()),
            ("clients".into(), "客户数".into()),
            ("left".into(), "流失率".into()),
            ("95% interval".into(), "95% 区间".into()),
            ("rise asked of the model".into(), "模型测算的涨幅".into()),
            (
                "leaving vs no rise (model, at least 1)".into(),
                "相对未调价的流失倍数（模型，至少 1）".into(),
            ),
            (
                "12-month revenue per 100 CNY (model / pessimistic)".into(),
                "每 100 元月费的 12 个月预期收入（模型 / 悲观）".into(),
            ),
        ],
        rows,
    };
    (lines, Some(table))
}

/// Monthly fee against hours, one colour per tier, and the peers' median fee per hour.
fn fee_chart(
    r: &Priced,
    rows: &[usize],
    tiers: &[String],
    tier_words: &std::collections::HashMap<String, (String, String)>,
) -> LineChart {
    let mut names: Vec<String> = rows.iter().map(|&i| tiers[i].clone()).collect();
    names.sort();
    names.dedup();
    // At most 3,000 points per chart, every k-th client.
    let step = (rows.len() / 3000).max(1);
    let mut series: Vec<ChartSeries> = names
        .iter()
        .map(|t| ChartSeries {
            name: tier_words.get(t).cloned().unwrap_or_else(|| (t.clone(), t.clone())),
            points: rows
                .iter()
                .step_by(step)
                .filter(|&&i| &tiers[i] == t && r.fee[i].is_finite() && r.hours[i].is_finite())
                .map(|&i| (r.hours[i], r.fee[i]))
                .collect(),
            dots: true,
        })
        .collect();
    let mut line: Vec<(f64, f64)> = rows
        .iter()
        .step_by(step)
        .filter(|&&i| r.peer_rate[i].is_finite())
        .map(|&i| (r.hours[i], r.peer_rate[i] * r.hours[i]))
        .collect();
    line.sort_by(|a, b| a.0.total_cmp(&b.0));
    // A running median of the peers' fee, so the line reads as one line.
    let w = (line.len() / 40).max(1);
    let smooth: Vec<(f64, f64)> = line
        .chunks(w)
        .map(|c| {
            let mut ys: Vec<f64> = c.iter().map(|p| p.1).collect();
            ys.sort_by(f64::total_cmp);
            (c.iter().map(|p| p.0).sum::<f64>() / c.len() as f64, ys[ys.len() / 2])
        })
        .collect();
    series.push(ChartSeries {
        name: (
            "peers' median fee for the workload".into(),
            "同类客户工作量对应的中位收费".into(),
        ),
        points: smooth,
        dots: false,
    });
    LineChart {
        stem: "pricing_fee_vs_hours".into(),
        title: ("Monthly fee against hours a month".into(), "月费与月均工时".into()),
        x_label: ("hours a month".into(), "月均工时（小时）".into()),
        y_label: ("monthly fee (CNY)".into(), "月费（元）".into()),
        series,
        diagonal: false,
        steps: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_recovers_a_plane() {
        let rows: Vec<Vec<f64>> = (0..50).map(|i| vec![1.0, i as f64, (i * i % 7) as f64]).collect();
        let y: Vec<f64> = rows.iter().map(|r| 2.0 + 0.5 * r[1] - 1.5 * r[2]).collect();
        let w = least_squares(&rows, &y).unwrap();
        assert!(
            (w[0] - 2.0).abs() < 1e-3 && (w[1] - 0.5).abs() < 1e-4 && (w[2] + 1.5).abs() < 1e-3,
            "{w:?}"
        );
    }

    #[test]
    fn peers_leave_the_client_out_and_stay_near_in_hours() {
        let m: Vec<(usize, f64, f64)> = (0..20)
            .map(|i| (i, i as f64, if i == 10 { 1.0 } else { 100.0 }))
            .collect();
        let r = peer_medians(&m, 6);
        let ten = r.iter().find(|x| x.0 == 10).unwrap();
        assert_eq!(ten.1, 100.0);
        assert_eq!(ten.2, 6);
        assert!(r.iter().all(|x| x.2 == 6));
    }

    /// Hand cases: a rise is rounded up to the step under the cap, down when up would
    /// pass it, to a finer step when the room is less than one step, never to nothing.
    #[test]
    fn rounding_never_removes_a_rise() {
        // 200 wants 237, cap 260: up to 250.
        assert_eq!(rise_within(200.0, 237.0, 260.0, 50.0), Some(250.0));
        // 300 wants 390 (capped at 390): 400 passes the cap, 350 is a rise.
        assert_eq!(rise_within(300.0, 500.0, 390.0, 50.0), Some(350.0));
        // 50 CNY at +30%: 65; steps of 50 would give 50 or 100: a step of 10 gives 60.
        assert_eq!(rise_within(50.0, 80.0, 65.0, 50.0), Some(60.0));
        // 60 CNY wanting 62 (cap 78): up to the next 10 is 70.
        assert_eq!(rise_within(60.0, 62.0, 78.0, 50.0), Some(70.0));
        // 3 CNY with a cap of 3.9: a 1 CNY step cannot rise.
        assert_eq!(rise_within(3.0, 10.0, 3.9, 50.0), None);
        // 10 CNY cap 13: 13 exactly.
        assert_eq!(rise_within(10.0, 20.0, 13.0, 50.0), Some(13.0));
        // Nothing wanted above the fee: no rise.
        assert_eq!(rise_within(300.0, 280.0, 390.0, 50.0), None);
        // A step smaller than 10 is used as it is.
        assert_eq!(rise_within(100.0, 104.0, 130.0, 5.0), Some(105.0));
        for fee in [30.0, 50.0, 60.0, 95.0, 120.0, 200.0, 300.0, 1000.0, 1499.0] {
            for want in [1.01, 1.05, 1.1, 1.3, 2.0] {
                let cap = fee * 1.3;
                let got = rise_within(fee, fee * want, cap, 50.0);
                let got = got.unwrap_or_else(|| panic!("{fee} wanting {}", fee * want));
                assert!(got > fee && got <= cap + 1e-9, "{fee} -> {got} (cap {cap})");
            }
        }
    }
}
