//! What each client costs to serve and what it should pay: monthly hours (logged,
//! estimated from the workload, or the firm's rule of thumb), cost, margin, a peer group
//! of clients with the same taxpayer and client type and the nearest workload, and a
//! suggested fee for the under-priced, held back where a rise would cost a valuable client.

mod params;
pub use params::{RawDefaultHours, RawGradeCost, RawPricing};

pub mod response;

use polars::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use super::{Analysis, AnalysisError, ChartSeries, Context, LineChart, Need, Outcome, Section, SectionTable};
use crate::columns::{OutputColumn, SqlType, TableName};
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

/// Works out hours, cost, margin, peers and the suggested fee of every served client.
pub fn price(p: &PricingParams, ctx: &Context) -> Result<Priced, AnalysisError> {
    let t = ctx.table;
    let n = t.df.height();
    let served: Vec<bool> = ctx.served.map(|s| s.to_vec()).unwrap_or_else(|| vec![true; n]);
    let logged = column_f64(t, "hours_per_month");
    let x: Vec<Vec<f64>> = WORKLOAD.iter().map(|f| column_f64(t, f)).collect();
    let fee = monthly_fee(t);
    let taxpayer = text_column(t.df.column("taxpayer_type").ok(), n);
    let client_type = text_column(t.df.column("client_type").ok(), n);
    let accountant = text_column(t.df.column("accountant").ok(), n);
    let general: Vec<bool> = taxpayer.iter().map(|v| v == "general").collect();
    let d = &p.default_hours;
    let rule = |i: usize| -> f64 {
        let vouchers = x[0][i];
        let base = if general[i] {
            d.general
        } else if vouchers.is_finite() && vouchers < 1.0 {
            d.zero_declaration
        } else {
            d.small_scale
        };
        let late = x[3][i];
        base + if late.is_finite() { late * d.chase } else { 0.0 }
    };
    let (team_of, team_names) = staff_teams(ctx);
    let team: Vec<Option<u32>> = {
        use rayon::prelude::*;
        accountant
            .par_iter()
            .map(|a| team_of.get(a.as_str()).copied())
            .collect()
    };
    let rows: Vec<Logged> = (0..n)
        .filter(|&i| served[i] && logged[i].is_finite())
        .filter_map(|i| {
            features_of(&x, &general, i).map(|row| Logged {
                row,
                hours: logged[i],
                rule: rule(i),
                team: team[i],
            })
        })
        .collect();
    let untimed_teams = untimed(
        (0..n)
            .filter(|&i| served[i])
            .map(|i| (team[i], logged[i].is_finite() && logged[i] > 0.0)),
        &team_names,
    );
    let model = fit_hours(&rows, ctx.seed);
    let mut hours = vec![f64::NAN; n];
    let mut source = vec![None; n];
    let mut expected = vec![f64::NAN; n];
    for i in (0..n).filter(|&i| served[i]) {
        let est = model
            .as_ref()
            .and_then(|m| features_of(&x, &general, i).map(|r| predict(&m.weights, &r)));
        if let Some(e) = est {
            expected[i] = e;
        }
        let (h, s) = if logged[i].is_finite() && logged[i] > 0.0 {
            (logged[i], Source::Logged)
        } else if let Some(e) = est {
            (e, Source::Estimated)
        } else {
            (rule(i), Source::Default)
        };
        hours[i] = h;
        source[i] = Some(s);
    }
    let grades = staff_grades(ctx);
    let rate_of = |i: usize| -> f64 {
        match (&p.by_grade, grades.get(&accountant[i])) {
            (Some(g), Some(grade)) => match grade.as_str() {
                "junior" => g.junior,
                "lead" => g.lead,
                _ => g.senior,
            },
            _ => p.hourly_cost,
        }
    };
    let cost: Vec<f64> = (0..n).map(|i| hours[i] * rate_of(i)).collect();
    let margin_rate: Vec<f64> = (0..n)
        .map(|i| {
            if fee[i] > 0.0 {
                (fee[i] - cost[i]) / fee[i]
            } else {
                f64::NAN
            }
        })
        .collect();

    // Peer groups: same taxpayer and client type, nearest in hours a month.
    let mut groups: std::collections::BTreeMap<(String, String), Vec<(usize, f64, f64)>> = Default::default();
    for i in (0..n).filter(|&i| served[i] && fee[i] > 0.0 && hours[i] > 0.0) {
        groups
            .entry((taxpayer[i].clone(), client_type[i].clone()))
            .or_default()
            .push((i, hours[i], fee[i] / hours[i]));
    }
    let mut peer_rate = vec![f64::NAN; n];
    let mut peers = vec![0usize; n];
    {
        use rayon::prelude::*;
        let found: Vec<Vec<(usize, f64, usize)>> = groups
            .into_par_iter()
            .map(|(_, mut m)| {
                m.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                peer_medians(&m, p.peers)
            })
            .collect();
        for (i, r, k) in found.into_iter().flatten() {
            peer_rate[i] = r;
            peers[i] = k;
        }
    }

    let (bands, risk) = churn_of(ctx)?;
    let resp = response::Response::read(ctx.table("churn", "fee_response")?);
    let mut gain = vec![(f64::NAN, f64::NAN); n];
    let tiers = tier_ids(ctx)?;
    let mut flag = vec![""; n];
    let mut suggested = vec![f64::NAN; n];
    let mut reason = vec![String::new(); n];
    for i in (0..n).filter(|&i| served[i]) {
        if !(fee[i] > 0.0) {
            continue;
        }
        let own_rate = fee[i] / hours[i];
        let thin = margin_rate[i] < p.target_margin;
        let cheap = peers[i] >= 5 && own_rate < (1.0 - p.rate_tolerance) * peer_rate[i];
        let over = source[i] == Some(Source::Logged) && expected[i].is_finite() && hours[i] > 1.5 * expected[i] + 0.5;
        let mut words_en: Vec<String> = Vec::new();
        let mut words_zh: Vec<String> = Vec::new();
        if thin {
            words_en.push(format!(
                "margin {:.0}% is below the {:.0}% target",
                margin_rate[i] * 100.0,
                p.target_margin * 100.0
            ));
            words_zh.push(format!(
                "毛利率 {:.0}% 低于目标 {:.0}%",
                margin_rate[i] * 100.0,
                p.target_margin * 100.0
            ));
        }
        if cheap {
            words_en.push(format!("pays {:.0} CNY an hour, peers {:.0}", own_rate, peer_rate[i]));
            words_zh.push(format!(
                "每工时收费 {:.0} 元，同类客户 {:.0} 元",
                own_rate, peer_rate[i]
            ));
        }
        if over {
            words_en.push(format!(
                "{:.1} hours a month where its workload explains {:.1}",
                hours[i], expected[i]
            ));
            words_zh.push(format!(
                "每月 {:.1} 小时，按业务量应约 {:.1} 小时",
                hours[i], expected[i]
            ));
        }
        flag[i] = if thin || cheap {
            "under_priced"
        } else if over {
            "over_served"
        } else {
            "ok"
        };
        if flag[i] == "under_priced" {
            let by_peers = if peer_rate[i].is_finite() {
                peer_rate[i] * hours[i]
            } else {
                0.0
            };
            let by_margin = cost[i] / (1.0 - p.target_margin).max(0.01);
            let target = by_peers.max(by_margin);
            let cap = fee[i] * (1.0 + p.max_increase);
            let mut new = rise_within(fee[i], target, cap, p.fee_step);
            if target > cap + 1e-9 {
                words_en.push(format!("rise capped at +{:.0}%", p.max_increase * 100.0));
                words_zh.push(format!("涨幅以 {:.0}% 为上限", p.max_increase * 100.0));
            }
            let v1 = tiers[i] == "V1";
            let band = bands[i].as_str();
            if v1 && band == "high" {
                words_en.push("rise held back: a high-value client at high churn risk".into());
                words_zh.push("暂缓调价：高价值客户且流失风险高".into());
                new = None;
            } else if band == "high" || (v1 && band == "medium") {
                // Half the rise, never rounded away to none.
                new = new.and_then(|n| rise_within(fee[i], fee[i] + (n - fee[i]) / 2.0, n, p.fee_step));
                words_en.push("rise halved: churn risk".into());
                words_zh.push("调价减半：有流失风险".into());
            } else if new.is_none() {
                let why_en = if fee[i] > 0.0 {
                    "no rise suggested: less than 1 CNY of room under the cap"
                } else {
                    "no rise suggested: no fee on record to raise"
                };
                let why_zh = if fee[i] > 0.0 {
                    "未建议调价：上限内空间不足 1 元"
                } else {
                    "未建议调价：无现行收费可作基数"
                };
                words_en.push(why_en.into());
                words_zh.push(why_zh.into());
            }
            // Weighed against the chance the rise drives the client away.
            if let (Some(top), Some(r), true) = (new, &resp, risk[i].is_finite()) {
                let candidates: Vec<f64> = (1..=6)
                    .filter_map(|k| rise_within(fee[i], fee[i] + (top - fee[i]) * k as f64 / 6.0, top, p.fee_step))
                    .collect();
                match response::best(fee[i], &candidates, risk[i], r) {
                    Some((c, g, g_high)) => {
                        if c + 1e-9 < top {
                            words_en.push(format!("rise kept to {c:.0}: a larger one is expected to lose more in clients leaving than it adds"));
                            words_zh.push(format!("调价控制在 {c:.0} 元：更大涨幅预计因客户流失而得不偿失"));
                        }
                        new = Some(c);
                        gain[i] = (g, g_high);
                    }
                    None => {
                        words_en.push("rise held back: expected to lose more in clients leaving than it adds".into());
                        words_zh.push("暂缓调价：预计客户流失的损失大于调价收益".into());
                        new = None;
                    }
                }
            }
            if let Some(n) = new {
                suggested[i] = n;
            }
        }
        reason[i] = match ctx.lang {
            Lang::En => words_en.join("; "),
            Lang::Zh => words_zh.join("；"),
        };
    }
    Ok(Priced {
        hours,
        source,
        cost,
        fee,
        margin_rate,
        peer_rate,
        peers,
        flag,
        suggested,
        reason,
        model,
        untimed_teams,
        response: resp,
        gain,
    })
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

impl Pricing {
    fn outcome(&self, ctx: &Context, r: Priced) -> Result<Outcome, AnalysisError> {
        let p = &self.params;
        let n = r.hours.len();
        let mut out = Outcome::empty("pricing");
        let opt = |v: &[f64]| v.iter().map(|x| round2(*x)).collect::<Vec<_>>();
        let served = |i: usize| r.source[i].is_some();
        out.columns = vec![
            Column::new("monthly_hours".into(), opt(&r.hours)),
            Column::new(
                "hours_source".into(),
                r.source.iter().map(|s| s.map(|s| s.code())).collect::<Vec<_>>(),
            ),
            Column::new("monthly_cost".into(), opt(&r.cost)),
            Column::new(
                "margin_rate".into(),
                r.margin_rate
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        if served(i) {
                            m.is_finite().then(|| (m * 1e4).round() / 1e4)
                        } else {
                            None
                        }
                    })
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "price_flag".into(),
                r.flag.iter().map(|f| (!f.is_empty()).then_some(*f)).collect::<Vec<_>>(),
            ),
            Column::new("suggested_fee".into(), opt(&r.suggested)),
        ];
        out.declared = declared();
        out.table_names = vec![TableName {
            name: "pricing".into(),
            en: "pricing".into(),
            zh: "定价建议".into(),
        }];

        let (bands, risk) = churn_of(ctx)?;
        let tiers = tier_ids(ctx)?;
        let ids = text_column(ctx.table.df.column("client_id").ok(), n);
        let names = text_column(ctx.table.df.column("name").ok(), n);
        let accountant = text_column(ctx.table.df.column("accountant").ok(), n);
        let rows: Vec<usize> = (0..n).filter(|&i| served(i)).collect();
        let pick_s = |v: &[String]| rows.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
        let pick_f = |v: &[f64]| rows.iter().map(|&i| round2(v[i])).collect::<Vec<_>>();
        let change: Vec<f64> = (0..n)
            .map(|i| {
                if r.suggested[i].is_finite() {
                    r.suggested[i] - r.fee[i]
                } else {
                    f64::NAN
                }
            })
            .collect();
        let margin: Vec<f64> = (0..n).map(|i| r.fee[i] - r.cost[i]).collect();
        let rate: Vec<f64> = (0..n)
            .map(|i| {
                if r.hours[i] > 0.0 {
                    r.fee[i] / r.hours[i]
                } else {
                    f64::NAN
                }
            })
            .collect();
        let table = DataFrame::new_infer_height(vec![
            Column::new("client_id".into(), pick_s(&ids)),
            Column::new("name".into(), pick_s(&names)),
            Column::new("accountant".into(), pick_s(&accountant)),
            Column::new("value_tier".into(), pick_s(&tiers)),
            Column::new("churn_band".into(), pick_s(&bands)),
            Column::new("monthly_fee".into(), pick_f(&r.fee)),
            Column::new("monthly_hours".into(), pick_f(&r.hours)),
            Column::new(
                "hours_source".into(),
                rows.iter().map(|&i| r.source[i].map(|s| s.code())).collect::<Vec<_>>(),
            ),
            Column::new("monthly_cost".into(), pick_f(&r.cost)),
            Column::new("margin".into(), pick_f(&margin)),
            Column::new(
                "margin_rate".into(),
                rows.iter()
                    .map(|&i| r.margin_rate[i])
                    .map(|m| m.is_finite().then(|| (m * 1e4).round() / 1e4))
                    .collect::<Vec<_>>(),
            ),
            Column::new("fee_per_hour".into(), pick_f(&rate)),
            Column::new("peer_fee_per_hour".into(), pick_f(&r.peer_rate)),
            Column::new(
                "peers".into(),
                rows.iter().map(|&i| r.peers[i] as u32).collect::<Vec<_>>(),
            ),
            Column::new("price_flag".into(), rows.iter().map(|&i| r.flag[i]).collect::<Vec<_>>()),
            Column::new("suggested_fee".into(), pick_f(&r.suggested)),
            Column::new("fee_change".into(), pick_f(&change)),
            Column::new("reason".into(), pick_s(&r.reason)),
        ]);
        if let Ok(df) = table {
            out.exports.push(("pricing".into(), df));
        }

        // Figures for the headline, manifest and report.
        let count = |f: &str| rows.iter().filter(|&&i| r.flag[i] == f).count();
        let under = count("under_priced");
        let over = count("over_served");
        let rises: Vec<usize> = rows.iter().copied().filter(|&i| change[i] > 0.0).collect();
        let held = rows
            .iter()
            .filter(|&&i| r.flag[i] == "under_priced" && !(change[i] > 0.0))
            .count();
        let yearly: f64 = rises.iter().map(|&i| change[i] * 12.0).sum();
        let expected: f64 = rises
            .iter()
            .map(|&i| change[i] * 12.0 * (1.0 - if risk[i].is_finite() { risk[i] } else { 0.0 }))
            .sum();
        let gains = rises.iter().fold((0.0, 0.0), |acc, &i| match r.gain.get(i) {
            Some(&(g, h)) if g.is_finite() => (acc.0 + g, acc.1 + h),
            _ => acc,
        });
        let by_source = |s: Source| rows.iter().filter(|&&i| r.source[i] == Some(s)).count();
        let (logged, estimated, default) = (
            by_source(Source::Logged),
            by_source(Source::Estimated),
            by_source(Source::Default),
        );
        out.headline = Some((
            format!(
                "pricing: {under} clients under-priced, {} fee rises suggested worth {} CNY a year ({} CNY weighted by the chance the client stays)",
                rises.len(),
                money(yearly),
                money(expected)
            ),
            format!(
                "定价：{under} 个客户定价偏低，建议调价 {} 个，年增收 {} 元（按留存概率加权 {} 元）",
                rises.len(),
                money(yearly),
                money(expected)
            ),
        ));
        out.summary = Some(serde_json::json!({
            "clients": rows.len(),
            "hours_source": {"logged": logged, "estimated": estimated, "rule_of_thumb": default},
            "hours_model": r.model,
            "teams_without_hours": r.untimed_teams,
            "target_margin": p.target_margin,
            "max_increase": p.max_increase,
            "fee_step": p.fee_step,
            "peers": p.peers,
            "under_priced": under,
            "over_served": over,
            "rises": rises.len(),
            "held_back": held,
            "rise_per_year": yearly,
            "rise_per_year_weighted_by_staying": expected,
            "fee_response": r.response,
            "expected_gain_12m": gains.0,
            "expected_gain_12m_pessimistic": gains.1,
        }));
        let tier_words: std::collections::HashMap<String, (String, String)> = ctx
            .segmentation("value")?
            .map(|s| {
                s.model
                    .segments
                    .iter()
                    .map(|g| (g.id.clone(), (format!("{} {}", g.id, g.name_en), g.name_zh.clone())))
                    .collect()
            })
            .unwrap_or_default();
        out.section = Some(section(
            p,
            &r,
            &tier_words,
            &rows,
            &tiers,
            &ids,
            &names,
            &change,
            (logged, estimated, default),
            (under, over, held, yearly, expected),
            gains,
        ));
        out.charts = vec![fee_chart(&r, &rows, &tiers, &tier_words)];
        Ok(out)
    }
}

#[allow(clippy::too_many_arguments)]
fn section(
    p: &PricingParams,
    r: &Priced,
    tier_words: &std::collections::HashMap<String, (String, String)>,
    rows: &[usize],
    tiers: &[String],
    ids: &[String],
    names: &[String],
    change: &[f64],
    sources: (usize, usize, usize),
    counts: (usize, usize, usize, f64, f64),
    gains: (f64, f64),
) -> Section {
    let (logged, estimated, default) = sources;
    let (under, over, held, yearly, expected) = counts;
    let mut lines = vec![(
        format!(
            "Hours a month: {logged} clients from logged hours, {estimated} estimated from their vouchers, filings, questions and late documents, {default} by the rules of thumb (general taxpayer {} h, small-scale {} h, zero declaration {} h, plus {} h for each month of late documents).",
            p.default_hours.general, p.default_hours.small_scale, p.default_hours.zero_declaration, p.default_hours.chase
        ),
        format!(
            "月均工时：{logged} 个客户来自工时记录，{estimated} 个按凭证、申报、咨询和资料延迟估算，{default} 个按经验值（一般纳税人 {} 小时、小规模 {} 小时、零申报 {} 小时，资料延迟的月份另加 {} 小时）。",
            p.default_hours.general, p.default_hours.small_scale, p.default_hours.zero_declaration, p.default_hours.chase
        ),
    )];
    lines.push(match &r.model {
        Some(m) => {
            let (by_en, by_zh) = match m.holdout_by {
                "team" => (format!("{} teams held out in turn", m.holdout_groups), format!("依次留出 {} 个团队", m.holdout_groups)),
                _ => (format!("{} folds of clients held out in turn", m.holdout_groups), format!("依次留出 {} 组客户", m.holdout_groups)),
            };
            let share = m.holdout_mae / m.holdout_mean_hours.max(1e-9) * 100.0;
            (
                format!(
                    "The hours model, fitted on {} clients that log hours, is off by {:.2} hours a month ({share:.0}% of their mean {:.2} hours, bias {:+.2}) on {} clients it did not see ({by_en}); the rules of thumb are off by {:.2}.",
                    m.fitted_on, m.holdout_mae, m.holdout_mean_hours, m.holdout_bias, m.holdout_clients, m.holdout_mae_rule_of_thumb
                ),
                format!(
                    "工时模型基于 {} 个有工时记录的客户拟合，在 {} 个未参与拟合的客户上（{by_zh}）平均误差 {:.2} 小时/月（为其平均 {:.2} 小时的 {share:.0}%，偏差 {:+.2}）；经验值的误差为 {:.2} 小时。",
                    m.fitted_on, m.holdout_clients, m.holdout_mae, m.holdout_mean_hours, m.holdout_bias, m.holdout_mae_rule_of_thumb
                ),
            )
        }
        None => (
            format!("Too few clients log hours (fewer than {MIN_FIT}) to fit an hours model; the rules of thumb are used."),
            format!("有工时记录的客户少于 {MIN_FIT} 个，无法拟合工时模型，使用经验值。"),
        ),
    });
    if !r.untimed_teams.is_empty() {
        let list = r
            .untimed_teams
            .iter()
            .map(|(t, c)| format!("{t} ({c})"))
            .collect::<Vec<_>>()
            .join(", ");
        lines.push((
            format!("Teams that log no hours, whose clients' hours and costs are estimated: {list}. Their error is the held-out error above, not measured on them."),
            format!("以下团队没有工时记录，其客户的工时与成本为估算值：{list}。其误差参照上面的留出误差，无法在这些客户上直接检验。"),
        ));
    }
    lines.push((
        format!(
            "{under} clients are under-priced (margin below {:.0}%, or a fee per hour more than {:.0}% below that of their {} nearest peers), {over} over-served. Suggested rises, at most +{:.0}% and in steps of {} CNY, add {} CNY a year, {} CNY weighted by each client's chance of staying; {held} rises are held back for churn risk.",
            p.target_margin * 100.0,
            p.rate_tolerance * 100.0,
            p.peers,
            p.max_increase * 100.0,
            p.fee_step,
            money(yearly),
            money(expected)
        ),
        format!(
            "{under} 个客户定价偏低（毛利率低于 {:.0}%，或每工时收费比最接近的 {} 个同类客户低 {:.0}% 以上），{over} 个服务超量。建议调价每次不超过 +{:.0}%，以 {} 元为档，年增收 {} 元，按留存概率加权 {} 元；{held} 个因流失风险暂缓。",
            p.target_margin * 100.0,
            p.peers,
            p.rate_tolerance * 100.0,
            p.max_increase * 100.0,
            p.fee_step,
            money(yearly),
            money(expected)
        ),
    ));

    let (curve_lines, curve_table) = response_section(r.response.as_ref(), gains);
    lines.extend(curve_lines);

    // Margin distribution by tier.
    let mut tier_names: Vec<String> = rows.iter().map(|&i| tiers[i].clone()).collect();
    tier_names.sort();
    tier_names.dedup();
    let quantile = |v: &mut Vec<f64>, q: f64| -> f64 {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n => v[((n - 1) as f64 * q).round() as usize],
        }
    };
    let pct = |v: f64| {
        if v.is_finite() {
            format!("{:.0}%", v * 100.0)
        } else {
            "-".into()
        }
    };
    let mut by_tier = Vec::new();
    for t in &tier_names {
        let mut m: Vec<f64> = rows
            .iter()
            .filter(|&&i| &tiers[i] == t && r.margin_rate[i].is_finite())
            .map(|&i| r.margin_rate[i])
            .collect();
        let below = m.iter().filter(|v| **v < p.target_margin).count();
        let size = m.len();
        let (tier_en, tier_zh) = tier_words.get(t).cloned().unwrap_or_else(|| (t.clone(), t.clone()));
        let cells = [
            String::new(),
            size.to_string(),
            pct(quantile(&mut m, 0.1)),
            pct(quantile(&mut m, 0.5)),
            pct(quantile(&mut m, 0.9)),
            pct(below as f64 / size.max(1) as f64),
        ];
        let mut row: Vec<(String, String)> = cells.iter().map(|c| (c.clone(), c.clone())).collect();
        if let Some(first) = row.first_mut() {
            *first = (tier_en, tier_zh);
        }
        by_tier.push(row);
    }
    let margin_table = SectionTable {
        caption: ("Margin rate by value tier".into(), "各价值层级的毛利率".into()),
        header: vec![
            ("tier".into(), "价值层级".into()),
            ("clients".into(), "客户数".into()),
            ("10th percentile".into(), "10%分位".into()),
            ("median".into(), "中位数".into()),
            ("90th percentile".into(), "90%分位".into()),
            ("below target".into(), "低于目标占比".into()),
        ],
        rows: by_tier,
    };
    // The largest suggested changes.
    let mut top: Vec<usize> = rows.iter().copied().filter(|&i| r.flag[i] == "under_priced").collect();
    top.sort_by(|&a, &b| {
        let ca = if change[a].is_finite() { change[a] } else { 0.0 };
        let cb = if change[b].is_finite() { change[b] } else { 0.0 };
        cb.total_cmp(&ca).then(ids[a].cmp(&ids[b]))
    });
    top.truncate(20);
    let changes = SectionTable {
        caption: (
            "Suggested fee changes (the 20 largest)".into(),
            "建议调价（前20个）".into(),
        ),
        header: vec![
            ("client".into(), "客户".into()),
            ("name".into(), "名称".into()),
            ("fee".into(), "月费".into()),
            ("hours".into(), "工时".into()),
            ("suggested".into(), "建议月费".into()),
            ("flag".into(), "判断".into()),
            ("reason".into(), "原因".into()),
        ],
        rows: top
            .iter()
            .map(|&i| {
                let s = if r.suggested[i].is_finite() {
                    format!("{:.0}", r.suggested[i])
                } else {
                    "-".into()
                };
                vec![
                    (ids[i].clone(), ids[i].clone()),
                    (names[i].clone(), names[i].clone()),
                    (format!("{:.0}", r.fee[i]), format!("{:.0}", r.fee[i])),
                    (format!("{:.1}", r.hours[i]), format!("{:.1}", r.hours[i])),
                    (s.clone(), s),
                    (
                        flag_words(r.flag[i], Lang::En).into(),
                        flag_words(r.flag[i], Lang::Zh).into(),
                    ),
                    (r.reason[i].clone(), r.reason[i].clone()),
                ]
            })
            .collect(),
    };
    Section {
        id: "pricing".into(),
        title: ("Cost to serve and pricing".into(), "服务成本与定价".into()),
        lines,
        tables: [Some(margin_table), Some(changes), curve_table]
            .into_iter()
            .flatten()
            .collect(),
    }
}

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
