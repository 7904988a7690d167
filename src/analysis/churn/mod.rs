//! Churn risk: per client, the chance of leaving within each horizon, the revenue that
//! puts at risk, and the three things that raise it most.
//!
//! The models learn from monthly snapshots of the history: a client's features as of
//! the end of month t (rows dated up to t only, see [`crate::history`]) and whether it
//! left in (t, t+h]. Windows that run past the end of the data are censored, not
//! counted as staying. Quality is measured by rolling origin: for each of the last test
//! months, the models learn only from snapshots whose outcome was known by then.

mod params;
pub use params::RawChurn;

pub mod backtest;
pub mod bgnbd;
pub mod fee_response;
pub mod metrics;
pub mod models;
mod report;
pub mod sbg;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::{Analysis, AnalysisError, Context, Need, Outcome, SegmentKind};
use crate::columns::{OutputColumn, SqlType, TableName};
use crate::features::{feature_def, FeatureDef, FeatureTable};
use crate::format::Lang;
use crate::history::{self, still_client, History, LeaveDefinition};
use crate::model::Model;
use crate::progress::Stages;
use bgnbd::{BgNbd, Summary};
use metrics::{CalibrationBin, Scores};
use models::{Boosted, Logistic, ModelKind, Platt, Rows};
use polars::prelude::Column;

/// Which model scores today's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    /// The one with the higher rolling-origin ROC-AUC (logistic on a tie).
    Auto,
    Logistic,
    Boosted,
}

/// How `churn.bands` are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BandBasis {
    /// Risks of the first horizon (0.05 = 5%). Models saved before bands had a basis.
    #[default]
    Risk,
    /// Multiples of the odds of leaving of the firm's average client scored, so that
    /// "high" means several times the firm's usual whether it loses 3% or 60% a quarter.
    Relative,
}

/// The band thresholds of one run: risks of the first horizon.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Thresholds {
    pub medium_from: f64,
    pub high_from: f64,
    /// The average risk of the clients scored (what `relative` bands are multiples of).
    pub firm_mean: f64,
    pub by: BandBasis,
}

impl SavedChurn {
    /// The thresholds for these scores of the first horizon.
    fn thresholds(&self, first: &[Option<f64>]) -> Thresholds {
        let (sum, n) = first.iter().flatten().fold((0.0, 0usize), |(s, n), p| (s + p, n + 1));
        let mean = if n > 0 { sum / n as f64 } else { 0.0 };
        let (medium_from, high_from) = match self.bands_by {
            BandBasis::Risk => self.bands,
            BandBasis::Relative => {
                let odds = mean / (1.0 - mean).max(1e-9);
                let risk = |k: f64| {
                    let o = odds * k;
                    o / (1.0 + o)
                };
                (risk(self.bands.0), risk(self.bands.1))
            }
        };
        Thresholds {
            medium_from,
            high_from,
            firm_mean: mean,
            by: self.bands_by,
        }
    }
}

/// The churn analysis's checked parameters (`[churn]` of the config).
#[derive(Debug, Clone, Serialize)]
pub struct ChurnParams {
    pub enabled: bool,
    /// Months ahead, ascending.
    pub horizons: Vec<i32>,
    /// Rolling-origin test months wanted (fewer when the history is short).
    pub test_months: usize,
    /// Test months one validation fit scores; it is recalibrated for each of them.
    pub refit_months: usize,
    /// Snapshot rows a model learns from (a seeded sample above this).
    pub max_train_rows: usize,
    /// The rule baseline flags arrears above this many months of fees.
    pub arrears_months: f64,
    /// Where a client becomes medium / high risk, read by `bands_by`.
    pub bands: (f64, f64),
    pub bands_by: BandBasis,
    pub model: ModelChoice,
    /// Write every snapshot row to churn_snapshots.parquet (for the bench, or to check
    /// the model with other tools).
    pub export_snapshots: bool,
    /// Yearly rate the value ahead is discounted at.
    pub discount_rate: f64,
}

pub struct ChurnRisk {
    params: ChurnParams,
}

impl ChurnRisk {
    pub fn new(params: &ChurnParams) -> ChurnRisk {
        ChurnRisk { params: params.clone() }
    }
}

/// Snapshot rows: features as of the end of a month, for clients still with the firm.
struct Snapshots {
    d: usize,
    x: Vec<f64>,
    month: Vec<i32>,
    /// Index into the history's sampled clients.
    client: Vec<u32>,
    /// Per row, the purchase history's summary (firms without contracts only).
    btyd: Vec<Option<Summary>>,
    /// Per snapshot month, the summaries of every sampled client invoiced by then, left
    /// or not (what the BG/NBD model learns from).
    cross: Vec<(i32, Vec<Summary>)>,
    /// BG/NBD fits by month: every horizon and the final model share them.
    bgnbd_fits: std::sync::Mutex<std::collections::HashMap<i32, Result<BgNbd, String>>>,
}

/// The purchase histories' summaries of a table's clients, from the [`bgnbd::INPUTS`].
fn summaries(t: &FeatureTable) -> Vec<Option<Summary>> {
    let [n, first, last] = bgnbd::INPUTS.map(|f| values(t, f));
    (0..t.df.height())
        .map(|i| Summary::of_features(n[i], first[i], last[i]))
        .collect()
}

use history::column_f64 as values;

/// The named features' columns.
fn columns(t: &FeatureTable, names: &[String]) -> Vec<Vec<f64>> {
    use rayon::prelude::*;
    names.par_iter().map(|n| values(t, n)).collect()
}

/// Row-major matrix of feature columns, for the rows marked in `keep`.
fn matrix(cols: &[Vec<f64>], keep: &[bool]) -> Vec<f64> {
    use rayon::prelude::*;
    let d = cols.len();
    let rows: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
    let mut x = vec![0.0; rows.len() * d];
    x.par_chunks_mut(d.max(1)).zip(&rows).for_each(|(out, &i)| {
        for (o, c) in out.iter_mut().zip(cols) {
            *o = c[i];
        }
    });
    x
}

impl Snapshots {
    fn build(
        h: &History,
        names: &[String],
        months: std::ops::RangeInclusive<i32>,
        stages: &mut Stages,
    ) -> Result<Snapshots, AnalysisError> {
        let mut s = Snapshots {
            d: names.len(),
            x: Vec::new(),
            month: Vec::new(),
            client: Vec::new(),
            btyd: Vec::new(),
            cross: Vec::new(),
            bgnbd_fits: Default::default(),
        };
        let purchases = h.definition == LeaveDefinition::Lapse;
        let months: Vec<i32> = months.collect();
        let total = months.len();
        stages.run("churn snapshots", |bar| -> Result<(), AnalysisError> {
            // Two months at a time: a month's build (many small polars operations on
            // 25,000 clients) leaves a core idle through parts of it.
            for (k, pair) in months.chunks(2).enumerate() {
                bar.set_message(format!("churn: features as of month {} of {total}", 2 * k + pair.len()));
                let snapshot = |t: i32| history::snapshot(h, t).map_err(|e| failed(e.to_string()));
                let (first, second) = std::thread::scope(|sc| {
                    let second = pair.get(1).map(|&t| sc.spawn(move || snapshot(t)));
                    let first = snapshot(pair[0]);
                    (
                        first,
                        second.map(|j| j.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
                    )
                });
                s.add_month(h, pair[0], &first?, names, purchases)?;
                if let (Some(&t), Some(ft)) = (pair.get(1), second) {
                    s.add_month(h, t, &ft?, names, purchases)?;
                }
            }
            // The latest histories, for the final model and the win-back list.
            if purchases && s.cross.last().is_some_and(|(t, _)| *t < h.last_month) {
                let ft = history::snapshot(h, h.last_month).map_err(|e| failed(e.to_string()))?;
                s.cross
                    .push((h.last_month, summaries(&ft).into_iter().flatten().collect()));
            }
            Ok(())
        })?;
        Ok(s)
    }

    /// One month's rows: the clients still served at its end, their features in `names`.
    fn add_month(
        &mut self,
        h: &History,
        t: i32,
        ft: &FeatureTable,
        names: &[String],
        purchases: bool,
    ) -> Result<(), AnalysisError> {
        if ft.df.height() != h.lifecycles.len() {
            return Err(failed("snapshot rows do not match the sampled clients".into()));
        }
        let silent = values(ft, "silent_months");
        let interval = values(ft, "longest_invoice_gap_days");
        let keep: Vec<bool> = h
            .lifecycles
            .iter()
            .enumerate()
            .map(|(i, lc)| {
                let started = lc.start.is_some_and(|st| st <= t);
                let left_by_then = h.definition == LeaveDefinition::ContractEnd && lc.left.is_some_and(|l| l <= t);
                let lapse = history::lapse_months(h.inactive_months, interval[i]);
                still_client(h.definition, lapse, silent[i], started, left_by_then)
            })
            .collect();
        self.x.extend(matrix(&columns(ft, names), &keep));
        let btyd = if purchases { summaries(ft) } else { Vec::new() };
        if purchases {
            self.cross.push((t, btyd.iter().flatten().copied().collect()));
        }
        for (i, _) in keep.iter().enumerate().filter(|(_, k)| **k) {
            self.month.push(t);
            self.client.push(i as u32);
            if purchases {
                self.btyd.push(btyd.get(i).copied().flatten());
            }
        }
        Ok(())
    }

    fn n(&self) -> usize {
        self.month.len()
    }

    fn rows_of(&self, idx: &[usize]) -> Vec<f64> {
        let mut x = Vec::with_capacity(idx.len() * self.d);
        for &i in idx {
            x.extend_from_slice(&self.x[i * self.d..(i + 1) * self.d]);
        }
        x
    }
}

fn failed(message: String) -> AnalysisError {
    AnalysisError::Failed {
        analysis: "churn".into(),
        message,
    }
}

/// Why churn risk was not computed, (English, Chinese).
type Why = (String, String);

fn nobody_left() -> Why {
    (
        "no client left in the history, so there is nothing to learn who leaves from".into(),
        "历史上没有客户流失，无法学习流失规律".into(),
    )
}

/// Snapshot rows each rolling-origin fit learns from.
fn validation_rows(max_train_rows: usize) -> usize {
    (max_train_rows * 2 / 5).max(1000)
}

/// A feature is named as a driver when it raises the client's log-odds of leaving by at
/// least this much (10% higher odds): smaller pushes are noise, not reasons.
const MIN_DRIVER: f64 = 0.1;

/// Below these pooled test rows and leavers, a validation figure would be noise: none is
/// claimed.
pub const MIN_TEST_ROWS: usize = 300;
pub const MIN_TEST_LEAVERS: usize = 30;
/// The share of paired resamples of clients in which a candidate must rank better than
/// the logistic regression to be chosen over it.
pub const CLEARLY_BETTER: f64 = 0.95;

/// Below these the models would learn from noise; the run says so instead.
const MIN_CLIENTS: usize = 20;
const MIN_LEAVERS: usize = 5;

/// Why the history cannot teach who leaves: too few months for the shortest horizon
/// (`months_enough` false), too few clients or too few leavers.
fn too_little(h: &History, h_min: i32, months_enough: bool) -> Option<Why> {
    let span = h.last_month - h.first_month + 1;
    if !months_enough {
        return Some((
            format!(
                "the history covers {span} months; learning who leaves within {h_min} months needs at least {} (the horizon and 4 months of snapshots)",
                h_min + 4
            ),
            format!(
                "历史数据只有 {span} 个月；预测 {h_min} 个月内的流失至少需要 {} 个月（预测期和 4 个月的快照）",
                h_min + 4
            ),
        ));
    }
    let leavers = h.lifecycles.iter().filter(|l| l.left.is_some()).count();
    if h.lifecycles.len() < MIN_CLIENTS {
        let n = h.lifecycles.len();
        return Some((
            format!("{n} clients are too few to learn who leaves from (at least {MIN_CLIENTS} are needed)"),
            format!("客户只有 {n} 个，不足以学习流失规律（至少需要 {MIN_CLIENTS} 个）"),
        ));
    }
    if leavers == 0 {
        return Some(nobody_left());
    }
    if leavers < MIN_LEAVERS {
        return Some((
            format!(
                "only {leavers} clients left in the history; at least {MIN_LEAVERS} are needed to learn who leaves"
            ),
            format!("历史上只有 {leavers} 个客户流失，至少需要 {MIN_LEAVERS} 个才能学习流失规律"),
        ));
    }
    None
}

/// The naive baselines validation sets beside the models: how long since the last
/// invoice (or any activity), and a rule (renewal within the horizon, or arrears). The
/// columns they read, by position in a snapshot row.
struct Naive {
    recency: Option<usize>,
    silent: Option<usize>,
    renewal: Option<usize>,
    arrears: Option<usize>,
    fee: Option<usize>,
}

impl Naive {
    fn of(names: &[String]) -> Naive {
        let at = |f: &str| names.iter().position(|n| n == f);
        Naive {
            recency: at("days_since_last_invoice"),
            silent: at("silent_months"),
            renewal: at("months_to_renewal"),
            arrears: at("open_receivables"),
            fee: at("avg_monthly_fee"),
        }
    }

    /// Days without news (0 when unknown) and the rule's flag (0 or 1) for one row.
    fn score(&self, row: &[f64], hz: i32, arrears_months: f64) -> (f64, f64) {
        let at = |c: Option<usize>| c.and_then(|c| row.get(c).copied()).unwrap_or(f64::NAN);
        let recency = at(self.recency);
        let r = if recency.is_finite() {
            recency
        } else {
            at(self.silent) * 30.0
        };
        let renewal = at(self.renewal);
        let owed = at(self.arrears);
        let fee = at(self.fee);
        // 0 is the anniversary month itself: the next renewal is a year away.
        let flagged = (renewal >= 1.0 && renewal <= hz as f64)
            || (owed.is_finite() && fee.is_finite() && fee > 0.0 && owed > arrears_months * fee);
        (if r.is_finite() { r } else { 0.0 }, f64::from(u8::from(flagged)))
    }
}

/// The outcome of snapshot row `i` for `horizon`, when the data shows it.
fn label(s: &Snapshots, i: usize, horizon: i32, h: &History) -> Option<bool> {
    h.outcome(s.client[i] as usize, s.month[i], horizon)
}

/// A horizon's snapshot rows whose outcome is known, and those outcomes.
type Labelled = (Vec<usize>, Vec<bool>);

/// The month by whose end row `i`'s outcome for `horizon` is known.
fn known_by(s: &Snapshots, i: usize, horizon: i32) -> i32 {
    s.month[i] + horizon
}

/// Months of one-month outcomes that tell whether a movement of the base rate goes on.
const RECENT_MONTHS: i32 = 12;

/// The snapshot rows of the [`RECENT_MONTHS`] months before a month, each with whether
/// the client left in the month after it: the latest outcomes known at that month, month
/// by month. Found when first asked: only a calibration that saw a movement asks.
struct Recent<'a> {
    s: &'a Snapshots,
    h: &'a History,
    month: i32,
    rows: std::cell::OnceCell<(Vec<usize>, Vec<bool>)>,
}

impl<'a> Recent<'a> {
    fn new(s: &'a Snapshots, h: &'a History, month: i32) -> Recent<'a> {
        Recent {
            s,
            h,
            month,
            rows: Default::default(),
        }
    }

    fn rows(&self) -> &(Vec<usize>, Vec<bool>) {
        self.rows.get_or_init(|| {
            let (s, month) = (self.s, self.month);
            (0..s.n())
                .filter(|&i| s.month[i] < month && s.month[i] >= month - RECENT_MONTHS)
                .filter_map(|i| label(s, i, 1, self.h).map(|l| (i, l)))
                .unzip()
        })
    }
}

/// The pooled test rows' measures of the four scores, with intervals by resampling
/// clients (a client's test months go together); returns the resampler for the
/// calibration's intervals.
fn measure<'a>(
    v: &mut HorizonValidation,
    s: &Snapshots,
    pooled: &[Vec<f64>; 5],
    pooled_y: &'a [bool],
    pooled_rows: &[usize],
    seed: u64,
) -> (metrics::Resampler<'a>, [Vec<Option<f64>>; 5]) {
    let group: Vec<u32> = {
        let mut index = std::collections::HashMap::new();
        pooled_rows
            .iter()
            .map(|&r| {
                let next = index.len() as u32;
                *index.entry(s.client[r]).or_insert(next)
            })
            .collect()
    };
    let resampler = metrics::Resampler::new(pooled_y, group, seed);
    let mut aucs: [Vec<Option<f64>>; 5] = Default::default();
    let mut measured = |k: usize, probability: bool| {
        let mut m = metrics::scores(&pooled[k], pooled_y, probability);
        aucs[k] = resampler.intervals(&pooled[k], &mut m);
        Some(m)
    };
    v.logistic = measured(0, true);
    v.boosted = measured(1, true);
    v.recency = measured(2, false);
    v.rule = measured(3, false);
    if pooled[4].len() == pooled_y.len() {
        v.bgnbd = measured(4, true);
    }
    (resampler, aucs)
}

/// A fitted model of one kind with its calibration.
enum Fitted {
    Logistic(Logistic),
    Boosted(Boosted),
    /// With the horizon it scores.
    BgNbd(BgNbd, i32),
}

/// The log-odds of no invoice in the `horizon` months after a history; a client not yet
/// invoiced counts as one invoiced this month.
fn bgnbd_margin(m: &BgNbd, s: Option<Summary>, horizon: i32) -> f64 {
    let s = s.unwrap_or(Summary {
        x: 0.0,
        t_x: 0.0,
        t: 0.0,
    });
    let p = m.p_quiet(s, f64::from(horizon)).clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

impl Fitted {
    /// The raw scores of snapshot rows `idx`, whose features are `rows`.
    fn margin(&self, s: &Snapshots, idx: &[usize], rows: &Rows) -> Vec<f64> {
        match self {
            Fitted::Logistic(m) => m.margin(rows),
            Fitted::Boosted(m) => m.margin(rows),
            Fitted::BgNbd(m, hz) => idx
                .iter()
                .map(|&i| bgnbd_margin(m, s.btyd.get(i).copied().flatten(), *hz))
                .collect(),
        }
    }
}

/// Histories a BG/NBD fit reads at most: four parameters are pinned down by a few
/// thousand (the paper's CDNOW sample has 2,357), and each evaluation of the likelihood
/// costs one pass over them.
const BGNBD_HISTORIES: usize = 5000;

/// The BG/NBD parameters from the sampled clients' histories as of the latest snapshot
/// month up to `month`, left or not (no outcome is needed, so nothing later is seen);
/// evenly spaced in client order above [`BGNBD_HISTORIES`].
fn fit_bgnbd(s: &Snapshots, month: i32) -> Result<BgNbd, String> {
    let (at, cross) = s
        .cross
        .iter()
        .rev()
        .find(|(t, _)| *t <= month)
        .ok_or("BG/NBD: no purchase histories by then")?;
    if let Some(done) = s.bgnbd_fits.lock().ok().and_then(|m| m.get(at).cloned()) {
        return done;
    }
    let step = cross.len().div_ceil(BGNBD_HISTORIES).max(1);
    let mut groups: std::collections::HashMap<[u64; 3], (Summary, f64)> = std::collections::HashMap::new();
    for c in cross.iter().step_by(step) {
        groups
            .entry([c.x.to_bits(), c.t_x.to_bits(), c.t.to_bits()])
            .or_insert((*c, 0.0))
            .1 += 1.0;
    }
    let mut data: Vec<(Summary, f64)> = groups.into_values().collect();
    data.sort_by(|a, b| {
        (a.0.x, a.0.t_x, a.0.t)
            .partial_cmp(&(b.0.x, b.0.t_x, b.0.t))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let fit = BgNbd::fit(&data);
    if let Ok(mut m) = s.bgnbd_fits.lock() {
        m.insert(*at, fit.clone());
    }
    fit
}

/// Where a model is scored: the month of the snapshot, and the horizon (the rows one
/// leaver counts in, for the calibration's noise).
#[derive(Debug, Clone, Copy)]
struct Target {
    month: i32,
    horizon: i32,
}

/// Where `train` (positions into it) divides: the earlier months a model learns from,
/// at most `max_rows` of them (seeded), and the latest ones it is calibrated on.
fn split(s: &Snapshots, train: &[usize], max_rows: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let months: Vec<i32> = {
        let mut m: Vec<i32> = train.iter().map(|&i| s.month[i]).collect();
        m.sort_unstable();
        m.dedup();
        m
    };
    // A third of the months, and at least nine when there are eighteen: a movement of the
    // base rate needs months to be told from noise.
    let n_cal = (months.len() / 3).max(9.min(months.len() / 2)).max(1);
    let cut = months
        .get(months.len().saturating_sub(n_cal))
        .copied()
        .unwrap_or(i32::MAX);
    let (mut fit_idx, mut cal_idx) = (Vec::new(), Vec::new());
    for (k, &i) in train.iter().enumerate() {
        if s.month[i] < cut {
            fit_idx.push(k);
        } else {
            cal_idx.push(k);
        }
    }
    if fit_idx.is_empty() {
        std::mem::swap(&mut fit_idx, &mut cal_idx);
        cal_idx = fit_idx.clone();
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    if fit_idx.len() > max_rows {
        fit_idx.shuffle(&mut rng);
        fit_idx.truncate(max_rows);
        fit_idx.sort_unstable();
    }
    (fit_idx, cal_idx)
}

/// Fits `kind` on the rows `fit_idx` of `train`.
#[allow(clippy::too_many_arguments)]
fn fit_model(
    kind: ModelKind,
    s: &Snapshots,
    names: &[String],
    train: &[usize],
    labels: &[bool],
    fit_idx: &[usize],
    seed: u64,
    target: Target,
) -> Result<Fitted, String> {
    let y_fit: Vec<bool> = fit_idx.iter().map(|&k| labels[k]).collect();
    if y_fit.iter().all(|l| *l) || !y_fit.iter().any(|l| *l) {
        return Err("the training months have clients of one outcome only".into());
    }
    Ok(match kind {
        ModelKind::BgNbd => Fitted::BgNbd(fit_bgnbd(s, target.month)?, target.horizon),
        _ => {
            let x_fit = s.rows_of(&fit_idx.iter().map(|&k| train[k]).collect::<Vec<_>>());
            let rows = Rows { x: &x_fit, d: s.d };
            match kind {
                ModelKind::Boosted => Fitted::Boosted(Boosted::fit(&rows, &y_fit, seed)?),
                _ => Fitted::Logistic(Logistic::fit(names, &rows, &y_fit, Some(target.horizon))?),
            }
        }
    })
}

/// A fitted model's raw scores of snapshot rows, each computed once: a validation model
/// is calibrated and tested on overlapping months.
struct Margins {
    /// Per snapshot row; NaN until computed.
    at: Vec<f64>,
}

impl Margins {
    fn new(s: &Snapshots) -> Margins {
        Margins {
            at: vec![f64::NAN; s.n()],
        }
    }

    fn of(&mut self, model: &Fitted, s: &Snapshots, idx: &[usize]) -> Vec<f64> {
        let missing: Vec<usize> = idx.iter().copied().filter(|&i| self.at[i].is_nan()).collect();
        if !missing.is_empty() {
            let x = match model {
                Fitted::BgNbd(..) => Vec::new(),
                _ => s.rows_of(&missing),
            };
            let m = model.margin(s, &missing, &Rows { x: &x, d: s.d });
            for (&i, v) in missing.iter().zip(m) {
                // A NaN score stays NaN: it is recomputed when asked again, to the same.
                self.at[i] = v;
            }
        }
        idx.iter().map(|&i| self.at[i]).collect()
    }
}

/// Calibrates a model on the rows `cal_idx` of `train` (the latest whose outcome is
/// known), following a clear movement of the base rate over those months, and carrying
/// it on to `target.month` when the one-month outcomes since (`recent`) show it going on.
#[allow(clippy::too_many_arguments)]
fn calibrate(
    model: &Fitted,
    margins: &mut Margins,
    s: &Snapshots,
    train: &[usize],
    labels: &[bool],
    cal_idx: &[usize],
    recent: &Recent,
    target: Target,
) -> Platt {
    let cal_rows: Vec<usize> = cal_idx.iter().map(|&k| train[k]).collect();
    let y_cal: Vec<bool> = cal_idx.iter().map(|&k| labels[k]).collect();
    let tau: Vec<f64> = cal_idx
        .iter()
        .map(|&k| f64::from(s.month[train[k]] - target.month))
        .collect();
    let cal_margin = margins.of(model, s, &cal_rows);
    Platt::fit_following(&cal_margin, &tau, &y_cal, f64::from(target.horizon), || {
        let (rows, left) = recent.rows();
        let tau = rows.iter().map(|&i| f64::from(s.month[i] - target.month)).collect();
        (margins.of(model, s, rows), tau, left.clone())
    })
}

/// Fits `kind` on the earlier months of `train` and calibrates it on the latest ones.
/// The final model fits here; validation does the same in two steps, so that one fit
/// can be recalibrated for later test months.
#[allow(clippy::too_many_arguments)]
fn fit_calibrated(
    kind: ModelKind,
    s: &Snapshots,
    names: &[String],
    train: &[usize],
    labels: &[bool],
    recent: &Recent,
    max_rows: usize,
    seed: u64,
    target: Target,
) -> Result<(Fitted, Platt), String> {
    let (fit_idx, cal_idx) = split(s, train, max_rows, seed);
    let fitted = fit_model(kind, s, names, train, labels, &fit_idx, seed, target)?;
    let platt = calibrate(
        &fitted,
        &mut Margins::new(s),
        s,
        train,
        labels,
        &cal_idx,
        recent,
        target,
    );
    Ok((fitted, platt))
}

fn one_month() -> usize {
    1
}

/// The rolling-origin results of one horizon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HorizonValidation {
    pub months: i32,
    pub test_months: Vec<String>,
    /// Why there is no validation, when the history is too short.
    pub not_validated: Option<String>,
    /// Test rows and leavers, when too few to claim any figure.
    pub too_few: Option<(usize, usize)>,
    pub logistic: Option<Scores>,
    pub boosted: Option<Scores>,
    pub recency: Option<Scores>,
    pub rule: Option<Scores>,
    /// The BG/NBD candidate, validated like the others (firms without contracts).
    #[serde(default)]
    pub bgnbd: Option<Scores>,
    /// Why the BG/NBD candidate was left out, when its fit failed in a test month.
    #[serde(default)]
    pub bgnbd_dropped: Option<String>,
    /// Test months one fit scored (recalibrated for each); 1 in runs before this was kept.
    #[serde(default = "one_month")]
    pub refit_months: usize,
    /// ROC-AUC per test month of the chosen model.
    pub monthly_auc: Vec<Option<f64>>,
    /// Per test month, the chosen model's calibration: how the log-odds of leaving moved
    /// per month beyond the features (None: no clear movement).
    #[serde(default)]
    pub monthly_drift: Vec<Option<f64>>,
    /// Per test month, whether that movement was carried on to the month scored.
    #[serde(default)]
    pub monthly_carried: Vec<bool>,
    pub chosen: ModelKind,
    /// Per other candidate, the share of the resamples of clients in which it ranked the
    /// test rows better than the logistic regression.
    #[serde(default)]
    pub wins_over_logistic: Vec<(ModelKind, f64)>,
    pub calibration: Vec<CalibrationBin>,
    #[serde(skip)]
    pub gains: Vec<(String, Vec<(f64, f64)>)>,
    /// Every scored test row: (snapshot row, [logistic, boosted, recency, rule, BG/NBD
    /// (NaN without it)], left).
    #[serde(skip)]
    pub rows: Vec<(usize, [f64; 5], bool)>,
}

impl HorizonValidation {
    /// The measures of a model kind.
    pub fn scores(&self, kind: ModelKind) -> Option<&Scores> {
        match kind {
            ModelKind::Logistic => self.logistic.as_ref(),
            ModelKind::Boosted => self.boosted.as_ref(),
            ModelKind::BgNbd => self.bgnbd.as_ref(),
        }
    }

    /// A horizon with nothing measured yet.
    fn empty(months: i32) -> HorizonValidation {
        HorizonValidation {
            months,
            test_months: Vec::new(),
            not_validated: None,
            too_few: None,
            logistic: None,
            boosted: None,
            recency: None,
            rule: None,
            bgnbd: None,
            bgnbd_dropped: None,
            refit_months: 1,
            monthly_auc: Vec::new(),
            monthly_drift: Vec::new(),
            monthly_carried: Vec::new(),
            chosen: ModelKind::Logistic,
            wins_over_logistic: Vec::new(),
            calibration: Vec::new(),
            gains: Vec::new(),
            rows: Vec::new(),
        }
    }
}

/// One horizon of the saved model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedHorizon {
    pub months: i32,
    pub kind: ModelKind,
    pub logistic: Option<Logistic>,
    /// forust-ml's JSON of the boosted trees.
    pub boosted: Option<String>,
    #[serde(default)]
    pub bgnbd: Option<BgNbd>,
    pub platt: Platt,
}

/// What `score` needs to apply the churn model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedChurn {
    pub definition: LeaveDefinition,
    pub inactive_months: i32,
    pub features: Vec<String>,
    pub horizons: Vec<SavedHorizon>,
    pub bands: (f64, f64),
    #[serde(default)]
    pub bands_by: BandBasis,
    /// The BG/NBD model of the latest purchase histories (firms without contracts): the
    /// chance that a client counted as gone buys again.
    #[serde(default)]
    pub purchases: Option<BgNbd>,
}

impl SavedChurn {
    /// The checks a model file must pass before it scores anyone.
    pub fn check(&self) -> Result<(), String> {
        if self.features.is_empty() {
            return Err("churn: no features".into());
        }
        if let Some(f) = self.features.iter().find(|f| feature_def(f).is_none()) {
            return Err(format!("churn: unknown feature '{f}'"));
        }
        let d = self.features.len();
        for h in &self.horizons {
            if !(h.platt.a.is_finite() && h.platt.b.is_finite()) {
                return Err(format!("churn {}m: calibration is not finite", h.months));
            }
            match (h.kind, &h.logistic, &h.boosted) {
                (ModelKind::Logistic, Some(l), _) => {
                    if [l.mean.len(), l.std.len(), l.coef.len(), l.transforms.len()] != [d; 4] {
                        return Err(format!(
                            "churn {}m: logistic model has the wrong number of coefficients",
                            h.months
                        ));
                    }
                    if l.window
                        .is_some_and(|w| w.feature >= d || !(1..=36).contains(&w.months))
                    {
                        return Err(format!(
                            "churn {}m: logistic model reads a window of a feature it does not have, or of a length outside 1 to 36 months",
                            h.months
                        ));
                    }
                    let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
                    if !finite(&l.mean) || !finite(&l.coef) || !l.std.iter().all(|s| s.is_finite() && *s > 0.0) {
                        return Err(format!(
                            "churn {}m: logistic coefficients must be finite, std above 0",
                            h.months
                        ));
                    }
                }
                (ModelKind::Boosted, _, Some(json)) => {
                    Boosted::from_json(json).map_err(|e| format!("churn {}m: boosted trees: {e}", h.months))?;
                }
                (ModelKind::BgNbd, _, _) => match h.bgnbd {
                    Some(m) if m.is_valid() => {}
                    Some(_) => {
                        return Err(format!(
                            "churn {}m: BG/NBD parameters must be finite and above 0",
                            h.months
                        ))
                    }
                    None => return Err(format!("churn {}m: the chosen model is missing", h.months)),
                },
                _ => return Err(format!("churn {}m: the chosen model is missing", h.months)),
            }
        }
        if self.purchases.is_some_and(|m| !m.is_valid()) {
            return Err("churn: BG/NBD parameters must be finite and above 0".into());
        }
        let (lo, hi) = self.bands;
        match self.bands_by {
            BandBasis::Risk if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) => {
                return Err("churn: bands must lie in 0..1".into())
            }
            BandBasis::Relative if !(lo > 0.0 && lo <= hi && hi.is_finite()) => {
                return Err("churn: relative bands must be multiples above 0, the lower first".into())
            }
            _ => {}
        }
        Ok(())
    }
}

/// The scores of today's clients.
struct Scored {
    /// Per horizon, per client (None: already left).
    risk: Vec<Vec<Option<f64>>>,
    /// Drivers of the first horizon, per client: (index into `driver_features`,
    /// contribution to log-odds).
    drivers: Vec<Vec<(usize, f64)>>,
    /// The features the first horizon's model reads: the learners' features, or the
    /// purchase history's for BG/NBD.
    driver_features: Vec<String>,
}

fn score_today(
    saved: &SavedChurn,
    cols: &[Vec<f64>],
    purchases: &[Vec<f64>],
    active: &[bool],
) -> Result<Scored, String> {
    let btyd: Vec<Option<Summary>> = match purchases {
        [n, first, last] => (0..active.len())
            .map(|i| Summary::of_features(n[i], first[i], last[i]))
            .collect(),
        _ => vec![None; active.len()],
    };
    let mut driver_features = saved.features.clone();
    let n_all = active.len();
    let positions: Vec<usize> = (0..n_all).filter(|&i| active[i]).collect();
    let mut risk = Vec::new();
    let mut drivers = vec![Vec::new(); n_all];
    for (k, h) in saved.horizons.iter().enumerate() {
        let learner = match (h.kind, &h.logistic, &h.boosted) {
            (ModelKind::Logistic, Some(l), _) => Some(Learner::Logistic(l)),
            (ModelKind::Boosted, _, Some(json)) => Some(Learner::Boosted(Box::new(Boosted::from_json(json)?))),
            (ModelKind::BgNbd, _, _) => None,
            _ => return Err(format!("churn {}m: the chosen model is missing", h.months)),
        };
        let (margin, tops) = match learner {
            Some(l) => l.score(cols, &positions, k == 0),
            None => {
                let m = h
                    .bgnbd
                    .ok_or_else(|| format!("churn {}m: the chosen model is missing", h.months))?;
                let margin: Vec<f64> = positions
                    .iter()
                    .map(|&i| bgnbd_margin(&m, btyd.get(i).copied().flatten(), h.months))
                    .collect();
                let tops = if k == 0 {
                    driver_features = bgnbd::INPUTS.iter().map(|f| f.to_string()).collect();
                    let c = bgnbd_contributions(&m, purchases, &positions, h.months, &margin);
                    top_drivers(&c, driver_features.len())
                } else {
                    Vec::new()
                };
                (margin, tops)
            }
        };
        let p = h.platt.apply(&margin);
        let mut col = vec![None; n_all];
        for (j, &i) in positions.iter().enumerate() {
            col[i] = p.get(j).copied();
        }
        risk.push(col);
        for (&i, top) in positions.iter().zip(tops) {
            drivers[i] = top;
        }
    }
    Ok(Scored {
        risk,
        drivers,
        driver_features,
    })
}

/// A learner's model, as today's scoring reads it.
enum Learner<'a> {
    Logistic(&'a Logistic),
    Boosted(Box<Boosted>),
}

/// Per client, its strongest drivers: (feature, contribution to the log-odds).
type Drivers = Vec<Vec<(usize, f64)>>;

/// Clients scored at once: a block's rows and contributions stay in cache, where one
/// matrix of every client's features and another of their contributions took 250 MB each
/// at 1M clients.
const SCORE_BLOCK: usize = 4096;

impl Learner<'_> {
    /// Log-odds of the clients at `positions` of the feature columns, and with `drivers`
    /// each one's strongest drivers.
    fn score(&self, cols: &[Vec<f64>], positions: &[usize], drivers: bool) -> (Vec<f64>, Drivers) {
        use rayon::prelude::*;
        let d = cols.len();
        let blocks: Vec<(Vec<f64>, Drivers)> = positions
            .par_chunks(SCORE_BLOCK)
            .map(|block| {
                let mut x = Vec::with_capacity(block.len() * d);
                for &i in block {
                    x.extend(cols.iter().map(|c| c.get(i).copied().unwrap_or(f64::NAN)));
                }
                let rows = Rows { x: &x, d };
                match (self, drivers) {
                    (Learner::Logistic(l), true) => {
                        let (m, c) = l.margin_and_contributions(&rows);
                        (m, top_drivers(&c, d))
                    }
                    (Learner::Boosted(b), true) => {
                        let (m, c) = b.margin_and_contributions(&rows);
                        (m, top_drivers(&c, d))
                    }
                    (Learner::Logistic(l), false) => (l.margin(&rows), Vec::new()),
                    (Learner::Boosted(b), false) => (b.margin(&rows), Vec::new()),
                }
            })
            .collect();
        let mut margin = Vec::with_capacity(positions.len());
        let mut tops = Vec::with_capacity(if drivers { positions.len() } else { 0 });
        for (m, t) in blocks {
            margin.extend(m);
            tops.extend(t);
        }
        (margin, tops)
    }
}

/// Per row of row-major contributions `d` wide, the features that raise the log-odds by
/// at least [`MIN_DRIVER`], the strongest three first.
fn top_drivers(contributions: &[f64], d: usize) -> Drivers {
    use rayon::prelude::*;
    contributions
        .par_chunks(d.max(1))
        .map(|row| {
            let mut top: Vec<(usize, f64)> = row
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, v)| *v >= MIN_DRIVER)
                .collect();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            top.truncate(3);
            top
        })
        .collect()
}

/// Per scored client, how much each purchase-history input moves its BG/NBD log-odds
/// of buying nothing away from a client with the median of that input (the others its
/// own); 0 where the swap gives no valid history. Row-major, `bgnbd::INPUTS` wide.
fn bgnbd_contributions(m: &BgNbd, inputs: &[Vec<f64>], positions: &[usize], horizon: i32, margin: &[f64]) -> Vec<f64> {
    use rayon::prelude::*;
    let [n, first, last] = inputs else {
        return vec![0.0; positions.len() * bgnbd::INPUTS.len()];
    };
    let median = |v: &Vec<f64>| {
        let mut x: Vec<f64> = positions
            .iter()
            .filter_map(|&i| v.get(i).copied())
            .filter(|v| v.is_finite())
            .collect();
        x.sort_by(f64::total_cmp);
        x.get(x.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let med = [median(n), median(first), median(last)];
    positions
        .par_iter()
        .zip(margin)
        .flat_map_iter(|(&i, &own)| {
            let at = |v: &Vec<f64>| v.get(i).copied().unwrap_or(f64::NAN);
            let client = [at(n), at(first), at(last)];
            (0..3).map(move |f| {
                let mut swapped = client;
                swapped[f] = med[f];
                match Summary::of_features(swapped[0], swapped[1], swapped[2]) {
                    Some(s) if client.iter().all(|v| v.is_finite()) => own - bgnbd_margin(m, Some(s), horizon),
                    _ => 0.0,
                }
            })
        })
        .collect()
}

/// The chance of buying again from which a gone client counts as likely back.
const LIKELY_BACK: f64 = 0.2;

/// Months ahead a client counted as gone is given a chance of buying again.
const WIN_BACK_MONTHS: f64 = 12.0;

/// Clients counted as gone with a chance of buying again, by the value that chance is worth.
struct WinBack {
    chance: Vec<Option<f64>>,
    value: Vec<Option<f64>>,
    /// Gone clients with a chance, by value × chance, highest first.
    order: Vec<usize>,
}

/// Per client counted as gone: the BG/NBD chance of an invoice in the next 12 months,
/// and that chance × its fees of the last 12 months.
fn win_back(m: &BgNbd, table: &FeatureTable, active: &[bool]) -> WinBack {
    let btyd = summaries(table);
    let fees = values(table, "fees_12m");
    let round = |v: f64, k: f64| (v * k).round() / k;
    let chance: Vec<Option<f64>> = (0..active.len())
        .map(|i| {
            let s = btyd.get(i).copied().flatten().filter(|_| !active[i])?;
            Some(round(1.0 - m.p_quiet(s, WIN_BACK_MONTHS), 1e4))
        })
        .collect();
    let value: Vec<Option<f64>> = chance
        .iter()
        .zip(&fees)
        .map(|(c, f)| c.map(|c| round(c * if f.is_finite() { f.max(0.0) } else { 0.0 }, 100.0)))
        .collect();
    let mut order: Vec<usize> = (0..active.len()).filter(|&i| chance[i].is_some()).collect();
    order.sort_by(|&a, &b| {
        value[b]
            .unwrap_or(0.0)
            .total_cmp(&value[a].unwrap_or(0.0))
            .then(chance[b].unwrap_or(0.0).total_cmp(&chance[a].unwrap_or(0.0)))
            .then(a.cmp(&b))
    });
    WinBack { chance, value, order }
}

impl WinBack {
    /// winback.csv: the gone clients by value × chance.
    fn frame(&self, table: &FeatureTable) -> polars::prelude::PolarsResult<polars::prelude::DataFrame> {
        let ids = table.df.column("client_id")?.str()?.clone();
        let pick = |v: &[f64]| self.order.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        polars::prelude::DataFrame::new_infer_height(vec![
            Column::new(
                "client_id".into(),
                self.order.iter().map(|&i| ids.get(i).unwrap_or("")).collect::<Vec<_>>(),
            ),
            Column::new("fees_12m".into(), pick(&values(table, "fees_12m"))),
            Column::new(
                "days_since_last_invoice".into(),
                pick(&values(table, "days_since_last_invoice")),
            ),
            Column::new(
                "repeat_invoice_days".into(),
                pick(&values(table, "repeat_invoice_days")),
            ),
            Column::new(
                "chance_back_12m".into(),
                self.order.iter().map(|&i| self.chance[i]).collect::<Vec<_>>(),
            ),
            Column::new(
                "win_back_value".into(),
                self.order.iter().map(|&i| self.value[i]).collect::<Vec<_>>(),
            ),
        ])
    }
}

/// Months ahead the value ahead is given for.
const AHEAD: [i32; 2] = [12, 36];

/// A client's months and contribution ahead, with its risk `p` of leaving within
/// `horizon` months taken as a constant monthly hazard: the expected months still served
/// in the next `months`, and the contribution (`monthly` a month) over them, discounted
/// at `yearly`. Beyond the horizon the hazard is an assumption, and the report says so.
fn ahead(p: f64, horizon: i32, monthly: f64, months: i32, yearly: f64) -> (f64, f64) {
    let stay = (1.0 - p.clamp(0.0, 1.0)).powf(1.0 / f64::from(horizon.max(1)));
    let step = (1.0 + yearly).powf(-1.0 / 12.0);
    let (mut served, mut value, mut s, mut d) = (0.0, 0.0, 1.0, 1.0);
    for _ in 0..months {
        s *= stay;
        d *= step;
        served += s;
        value += s * d * monthly;
    }
    (served, value)
}

/// A feature's value in its own units, for a driver's words.
fn value_words(f: &FeatureDef, v: f64) -> String {
    use crate::format::{int0_into, money_into};
    if !v.is_finite() {
        return "–".into();
    }
    // Whole numbers without the formatting machinery: a million clients' drivers.
    let mut s = String::new();
    let percent = f.unit == "share" || (f.unit == "ratio" && matches!(f.name, "fee_rise" | "invoice_gap_cv"));
    match f.unit {
        _ if percent => {
            int0_into(&mut s, v * 100.0);
            s.push('%');
        }
        "ratio" | "share/month" => return format!("{v:+.2}"),
        // What `human` writes from a thousand up.
        "CNY" | "CNY/month" if v.abs() >= 1000.0 => money_into(&mut s, v),
        "CNY" | "CNY/month" => return crate::format::human(v),
        _ if v.fract().abs() < 1e-9 || v.abs() >= 10.0 => int0_into(&mut s, v),
        _ => return format!("{v:.1}"),
    }
    s
}

/// "发票间隔拉长到 94 天": a driver in words with the client's value.
pub fn driver_words(f: &FeatureDef, v: f64, lang: Lang) -> String {
    let value = value_words(f, v);
    match (f.phrase, lang) {
        (Some((en, _)), Lang::En) => en.replace("{}", &value),
        (Some((_, zh)), Lang::Zh) => zh.replace("{}", &value),
        (None, _) => format!("{} {value}", f.display(lang)),
    }
}

fn band_of(p: Option<f64>, t: &Thresholds) -> &'static str {
    match p {
        None => "left",
        Some(p) if p >= t.high_from => "high",
        Some(p) if p >= t.medium_from => "medium",
        Some(_) => "low",
    }
}

/// Band ids in the run's language.
pub fn band_words(id: &str, lang: Lang) -> &'static str {
    match (id, lang) {
        ("high", Lang::En) => "high risk",
        ("medium", Lang::En) => "medium risk",
        ("low", Lang::En) => "low risk",
        ("left", Lang::En) => "left",
        ("high", Lang::Zh) => "高风险",
        ("medium", Lang::Zh) => "中风险",
        ("low", Lang::Zh) => "低风险",
        ("left", Lang::Zh) => "已流失",
        _ => "",
    }
}

/// The columns churn adds to labels.csv and fee_response.csv, with their words.
fn declared(saved: &SavedChurn) -> Vec<OutputColumn> {
    let mut out: Vec<OutputColumn> = saved
        .horizons
        .iter()
        .map(|h| {
            let m = h.months;
            OutputColumn::number(
                &format!("churn_risk_{m}m"),
                &format!("churn risk in {m} months"),
                &format!("{m}个月流失风险"),
            )
            .crm(&format!("Churn Risk {m}m"))
            .push(SqlType::Double)
        })
        .collect();
    let bands: Vec<(&str, &str, &str)> = ["high", "medium", "low", "left"]
        .into_iter()
        .map(|b| (b, band_words(b, Lang::En), band_words(b, Lang::Zh)))
        .collect();
    out.extend([
        OutputColumn::number("revenue_at_risk", "revenue at risk", "风险收入")
            .crm("Revenue at Risk")
            .push(SqlType::Double),
        OutputColumn::category("churn_band", "churn risk band", "流失风险等级", &bands)
            .crm("Churn Band")
            .push(SqlType::Text)
            .tracked(
                "churn",
                "Churn risk band transitions since the previous run",
                "与上次相比的流失风险等级变化",
            ),
        OutputColumn::text("churn_drivers", "main risk drivers", "主要风险因素")
            .crm("Churn Drivers")
            .push(SqlType::Text),
        OutputColumn::number(
            "expected_months_12m",
            "expected months served in the next 12",
            "未来12个月预计服务月数",
        )
        .crm("Expected Months 12m")
        .push(SqlType::Double),
        OutputColumn::number("value_ahead_12m", "value ahead, 12 months", "未来12个月预期贡献")
            .crm("Value Ahead 12m")
            .push(SqlType::Double),
        OutputColumn::number("value_ahead_36m", "value ahead, 36 months", "未来36个月预期贡献")
            .crm("Value Ahead 36m")
            .push(SqlType::Double),
    ]);
    if saved.purchases.is_some() {
        out.extend([
            OutputColumn::number(
                "chance_back_12m",
                "chance a client counted as gone buys again within 12 months",
                "已流失客户12个月内再次开票的概率",
            )
            .push(SqlType::Double),
            OutputColumn::number(
                "win_back_value",
                "win-back value (chance × fees of 12 months)",
                "挽回价值（概率×近12个月收费）",
            )
            .push(SqlType::Double),
        ]);
    }
    out.extend(fee_response::declared());
    out.extend(backtest::declared());
    out
}

/// Every test row of the rolling-origin validation: who, which month, each model's
/// and baseline's score, and whether the client left (for checking the model later).
fn validation_table(f: &Fit, h: &History) -> polars::prelude::PolarsResult<polars::prelude::DataFrame> {
    let mut id = Vec::new();
    let mut month = Vec::new();
    let mut horizon = Vec::new();
    let mut cols: [Vec<f64>; 5] = Default::default();
    let mut left = Vec::new();
    for v in &f.validation {
        for (row, scores, y) in &v.rows {
            let c = f.row_client.get(*row).copied().unwrap_or(0) as usize;
            id.push(h.sample_ids.get(c).cloned().unwrap_or_default());
            month.push(
                f.row_month
                    .get(*row)
                    .map(|m| crate::features::month_end(*m).format("%Y-%m").to_string())
                    .unwrap_or_default(),
            );
            horizon.push(v.months);
            for (c, v) in cols.iter_mut().zip(scores) {
                c.push(*v);
            }
            left.push(*y);
        }
    }
    let [logistic, boosted, recency, rule, bgnbd] = cols;
    polars::prelude::DataFrame::new_infer_height(vec![
        Column::new("client_id".into(), id),
        Column::new("month".into(), month),
        Column::new("horizon_months".into(), horizon),
        Column::new("logistic".into(), logistic),
        Column::new("boosted".into(), boosted),
        Column::new("days_since_last_invoice".into(), recency),
        Column::new("rule".into(), rule),
        Column::new("bgnbd".into(), bgnbd),
        Column::new("left".into(), left),
    ])
}

/// Everything the outcome is assembled from.
struct Fit {
    saved: SavedChurn,
    validation: Vec<HorizonValidation>,
    snapshot_rows: usize,
    snapshot_months: usize,
    /// Per snapshot row: client id and month (for churn_validation.parquet).
    row_client: Vec<u32>,
    row_month: Vec<i32>,
    /// Every snapshot row with its features and outcomes, when the config asks for it.
    snapshots: Option<polars::prelude::DataFrame>,
    /// How often clients left after a fee rise of each size (longest horizon).
    fee_response: Option<fee_response::FeeResponse>,
    /// Earlier runs' risks against what happened, and the features' movement.
    backtest: Option<backtest::Backtest>,
}

/// The snapshots as a table (`churn.export_snapshots`): who, which month (and its index,
/// year * 12 + month), the features as of then, and per horizon whether the client left
/// (empty when censored) and the month by whose end that was known.
fn snapshot_table(
    s: &Snapshots,
    names: &[String],
    h: &History,
    horizons: &[i32],
) -> polars::prelude::PolarsResult<polars::prelude::DataFrame> {
    let n = s.n();
    let mut cols = vec![
        Column::new(
            "client_id".into(),
            s.client
                .iter()
                .map(|&c| h.sample_ids.get(c as usize).cloned().unwrap_or_default())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "month".into(),
            s.month
                .iter()
                .map(|m| crate::features::month_end(*m).format("%Y-%m").to_string())
                .collect::<Vec<_>>(),
        ),
        Column::new("month_index".into(), s.month.clone()),
    ];
    for (j, name) in names.iter().enumerate() {
        cols.push(Column::new(
            name.as_str().into(),
            (0..n).map(|i| s.x[i * s.d + j]).collect::<Vec<f64>>(),
        ));
    }
    for &hz in horizons {
        cols.push(Column::new(
            format!("left_{hz}m").into(),
            (0..n).map(|i| label(s, i, hz, h)).collect::<Vec<Option<bool>>>(),
        ));
        cols.push(Column::new(
            format!("known_by_{hz}m").into(),
            (0..n).map(|i| known_by(s, i, hz)).collect::<Vec<i32>>(),
        ));
    }
    polars::prelude::DataFrame::new_infer_height(cols)
}

impl ChurnRisk {
    /// expected_months_12m, value_ahead_12m and value_ahead_36m, and the last two's sums.
    fn value_ahead(&self, table: &FeatureTable, saved: &SavedChurn, first: &[Option<f64>]) -> (Vec<Column>, Vec<f64>) {
        let n = first.len();
        let first_h = saved.horizons.first().map_or(3, |h| h.months);
        let margin = values(table, "contribution_margin");
        let mut value_ahead = Vec::new();
        let mut ahead_columns = Vec::new();
        for (k, months) in AHEAD.into_iter().enumerate() {
            let rows: Vec<Option<(f64, f64)>> = (0..n)
                .map(|i| {
                    let p = first[i]?;
                    let monthly = margin[i] / 12.0;
                    let (served, value) = ahead(p, first_h, monthly, months, self.params.discount_rate);
                    (served.is_finite() && value.is_finite()).then_some((served, value))
                })
                .collect();
            if k == 0 {
                ahead_columns.push(Column::new(
                    "expected_months_12m".into(),
                    rows.iter()
                        .map(|r| r.map(|r| (r.0 * 100.0).round() / 100.0))
                        .collect::<Vec<_>>(),
                ));
            }
            let v: Vec<Option<f64>> = rows.iter().map(|r| r.map(|r| (r.1 * 100.0).round() / 100.0)).collect();
            value_ahead.push(v.iter().flatten().sum::<f64>());
            ahead_columns.push(Column::new(format!("value_ahead_{months}m").into(), v));
        }
        (ahead_columns, value_ahead)
    }

    fn skipped(&self, (why, why_zh): Why) -> Outcome {
        Outcome {
            skipped: Some(why.clone()),
            section: Some(report::skipped_section(&why, &why_zh)),
            headline: Some((
                format!("churn risk: not computed ({why})"),
                format!("流失风险：未计算（{why_zh}）"),
            )),
            summary: Some(serde_json::json!({ "skipped": why })),
            ..Outcome::empty("churn")
        }
    }

    fn learn(
        &self,
        h: &History,
        names: &[String],
        seed: u64,
        stages: &mut Stages,
    ) -> Result<Result<Fit, Why>, AnalysisError> {
        let p = &self.params;
        let h_min = p.horizons.first().copied().unwrap_or(3);
        let t0 = h.first_month + 2;
        let t_last = h.last_month - h_min;
        let span = h.last_month - h.first_month + 1;
        if let Some(why) = too_little(h, h_min, t_last > t0) {
            return Ok(Err(why));
        }
        let s = Snapshots::build(h, names, t0..=t_last, stages)?;
        // Per horizon, its labelled rows and their outcomes (None: too short to learn).
        let mut horizons: Vec<(i32, Option<Labelled>)> = Vec::new();
        for &hz in &p.horizons {
            let t_max = h.last_month - hz;
            let labelled: Vec<usize> = (0..s.n()).filter(|&i| label(&s, i, hz, h).is_some()).collect();
            if labelled.is_empty() || t_max < t0 + 1 {
                horizons.push((hz, None));
                continue;
            }
            let ys: Vec<bool> = labelled.iter().map(|&i| label(&s, i, hz, h).unwrap_or(false)).collect();
            let leavers = ys.iter().filter(|y| **y).count();
            if leavers == 0 {
                return Ok(Err(nobody_left()));
            }
            if leavers == ys.len() {
                return Ok(Err((
                    "every client in the history left, so there is nothing to tell leavers from stayers".into(),
                    "历史上所有客户都流失了，无法区分流失与留存客户".into(),
                )));
            }
            horizons.push((hz, Some((labelled, ys))));
        }
        // The horizons' validations are independent: run side by side, they keep both
        // cores busy where one alone leaves gaps (its calibrations, its resamples).
        let validated: Vec<(Result<HorizonValidation, AnalysisError>, f64)> = stages.run("churn validation", |bar| {
            bar.set_message("churn: rolling-origin validation of every horizon");
            use rayon::prelude::*;
            horizons
                .par_iter()
                .map(|(hz, learnable)| {
                    let start = std::time::Instant::now();
                    let v = match learnable {
                        Some(_) => self.validate(&s, names, h, *hz, t0, h.last_month - hz, seed),
                        None => Ok(HorizonValidation {
                            not_validated: Some(format!("the history is too short for a {hz}-month horizon")),
                            ..HorizonValidation::empty(*hz)
                        }),
                    };
                    (v, start.elapsed().as_secs_f64())
                })
                .collect()
        });
        for ((hz, learnable), (_, seconds)) in horizons.iter().zip(&validated) {
            if learnable.is_some() {
                stages.within(&format!("churn validation {hz}m"), *seconds, "churn validation");
            }
        }
        let mut validation = Vec::new();
        let mut saved = Vec::new();
        for ((hz, learnable), (v, _)) in horizons.into_iter().zip(validated) {
            let v = v?;
            let Some((labelled, ys)) = learnable else {
                validation.push(v);
                continue;
            };
            let chosen = match p.model {
                ModelChoice::Logistic => ModelKind::Logistic,
                ModelChoice::Boosted => ModelKind::Boosted,
                // A horizon too long to validate takes the model the shorter one chose.
                ModelChoice::Auto if v.scores(v.chosen).is_none() => {
                    saved.last().map_or(ModelKind::Logistic, |x: &SavedHorizon| x.kind)
                }
                ModelChoice::Auto => v.chosen,
            };
            let final_fit = stages.run(&format!("churn model {hz}m"), |_| {
                let labels: Vec<bool> = ys.clone();
                let target = Target {
                    month: h.last_month,
                    horizon: hz,
                };
                let recent = Recent::new(&s, h, target.month);
                fit_calibrated(
                    chosen,
                    &s,
                    names,
                    &labelled,
                    &labels,
                    &recent,
                    p.max_train_rows,
                    seed,
                    target,
                )
            });
            let (fitted, platt) = match final_fit {
                Ok(f) => f,
                Err(e) => return Ok(Err((e.clone(), format!("模型无法拟合：{e}")))),
            };
            let (logistic, boosted, bgnbd) = match fitted {
                Fitted::Logistic(l) => (Some(l), None, None),
                Fitted::Boosted(b) => (None, Some(b.to_json().map_err(failed)?), None),
                Fitted::BgNbd(m, _) => (None, None, Some(m)),
            };
            saved.push(SavedHorizon {
                months: hz,
                kind: chosen,
                logistic,
                boosted,
                bgnbd,
                platt,
            });
            validation.push(HorizonValidation { chosen, ..v });
        }
        if saved.is_empty() {
            return Ok(Err((
                format!("the history covers {span} months, too short for any configured horizon"),
                format!("历史数据只有 {span} 个月，对所有设定的预测期都太短"),
            )));
        }
        Ok(Ok(self.fit_of(s, h, names, saved, validation, t0..=t_last)?))
    }

    /// The fit's record, once every horizon has its model.
    fn fit_of(
        &self,
        s: Snapshots,
        h: &History,
        names: &[String],
        saved: Vec<SavedHorizon>,
        validation: Vec<HorizonValidation>,
        months: std::ops::RangeInclusive<i32>,
    ) -> Result<Fit, AnalysisError> {
        let p = &self.params;
        let months = months.count();
        let fee_response = saved
            .iter()
            .map(|x| x.months)
            .max()
            .and_then(|hz| fee_response::measure(&s, names, h, hz));
        Ok(Fit {
            saved: SavedChurn {
                definition: h.definition,
                inactive_months: h.inactive_months,
                features: names.to_vec(),
                horizons: saved,
                bands: p.bands,
                bands_by: p.bands_by,
                purchases: fit_bgnbd(&s, h.last_month).ok(),
            },
            validation,
            snapshot_rows: s.n(),
            snapshot_months: months,
            row_client: s.client.clone(),
            row_month: s.month.clone(),
            snapshots: if p.export_snapshots {
                Some(snapshot_table(&s, names, h, &p.horizons).map_err(|e| failed(e.to_string()))?)
            } else {
                None
            },
            fee_response,
            backtest: None,
        })
    }

    /// Rolling origin for one horizon: each test month is scored by models that learned
    /// only from snapshots whose outcome was known by then.
    #[allow(clippy::too_many_arguments)]
    fn validate(
        &self,
        s: &Snapshots,
        names: &[String],
        h: &History,
        hz: i32,
        t0: i32,
        t_max: i32,
        seed: u64,
    ) -> Result<HorizonValidation, AnalysisError> {
        let p = &self.params;
        let first_test = (t0 + hz + 2).max(t_max - p.test_months as i32 + 1);
        let mut v = HorizonValidation {
            refit_months: p.refit_months.max(1),
            ..HorizonValidation::empty(hz)
        };
        if first_test > t_max {
            v.not_validated = Some(format!(
                "the history is too short to validate a {hz}-month horizon: a test month needs {} earlier months whose outcome is known",
                hz + 2
            ));
            return Ok(v);
        }
        let naive = Naive::of(names);
        let mut pooled: [Vec<f64>; 5] = Default::default();
        let mut pooled_y = Vec::new();
        let mut pooled_rows = Vec::new();
        let mut per_month: [Vec<Option<f64>>; 3] = Default::default();
        let mut drift: [Vec<(Option<f64>, bool)>; 3] = Default::default();
        let mut kinds = vec![ModelKind::Logistic, ModelKind::Boosted];
        if !s.cross.is_empty() {
            kinds.push(ModelKind::BgNbd);
        }
        // Why the BG/NBD candidate dropped out (a history it cannot fit).
        let mut bgnbd_failed = None;
        // Per kind, the latest validation fit and its scores: a fit serves `refit_months`
        // test months, recalibrated on the outcomes known by each (a firm that refits
        // its model every few months and recalibrates every month sees the same).
        let mut fits: Vec<Option<(Result<Fitted, String>, Margins)>> = kinds.iter().map(|_| None).collect();
        for t in first_test..=t_max {
            let train: Vec<usize> = (0..s.n())
                .filter(|&i| known_by(s, i, hz) <= t && s.month[i] >= t0)
                .collect();
            let test: Vec<usize> = (0..s.n())
                .filter(|&i| s.month[i] == t && label(s, i, hz, h).is_some())
                .collect();
            if train.is_empty() || test.is_empty() {
                continue;
            }
            // Labels known by month t (so by the end of the data too).
            let y_train: Vec<bool> = train.iter().map(|&i| label(s, i, hz, h).unwrap_or(false)).collect();
            let y_test: Vec<bool> = test.iter().map(|&i| label(s, i, hz, h).unwrap_or(false)).collect();
            let x_test = s.rows_of(&test);
            let rows = Rows { x: &x_test, d: s.d };
            let target = Target { month: t, horizon: hz };
            // Two fifths of the final model's rows: the validation fits are the stage's
            // main cost, and more rows change the AUC in the third decimal.
            let refit = ((t - first_test) as usize).is_multiple_of(p.refit_months.max(1));
            // A month that fits nothing only needs the calibration months: no sample drawn.
            let fitting = refit || fits.iter().any(|f| !matches!(f, Some((Ok(_), _))));
            let sample = if fitting {
                validation_rows(p.max_train_rows)
            } else {
                usize::MAX
            };
            let (fit_idx, cal_idx) = split(s, &train, sample, seed ^ t as u64);
            let recent = Recent::new(s, h, t);
            let mut preds = Vec::new();
            for (k, &kind) in kinds.iter().enumerate() {
                let slot = &mut fits[k];
                if refit || !matches!(slot, Some((Ok(_), _))) {
                    let fitted = fit_model(kind, s, names, &train, &y_train, &fit_idx, seed ^ t as u64, target);
                    *slot = Some((fitted, Margins::new(s)));
                }
                match slot {
                    Some((Ok(m), margins)) => {
                        let platt = calibrate(m, margins, s, &train, &y_train, &cal_idx, &recent, target);
                        drift[preds.len()].push((platt.drift, platt.carried));
                        preds.push(platt.apply(&margins.of(m, s, &test)));
                    }
                    Some((Err(e), _)) if e.contains("one outcome") || kind == ModelKind::BgNbd => {
                        if kind == ModelKind::BgNbd {
                            bgnbd_failed = Some(e.clone());
                        }
                        drift[preds.len()].push((None, false));
                        preds.push(vec![0.0; test.len()]);
                    }
                    Some((Err(e), _)) => return Err(failed(e.clone())),
                    None => return Err(failed("churn validation: a model was not fitted".into())),
                }
            }
            for (k, pr) in preds.iter().enumerate() {
                per_month[k].push(metrics::roc_auc(pr, &y_test));
                pooled[kinds[k].scores_index()].extend_from_slice(pr);
            }
            for i in 0..test.len() {
                let (recency, flagged) = naive.score(rows.row(i), hz, p.arrears_months);
                pooled[2].push(recency);
                pooled[3].push(flagged);
            }
            pooled_y.extend_from_slice(&y_test);
            pooled_rows.extend_from_slice(&test);
            v.test_months
                .push(crate::features::month_end(t).format("%Y-%m").to_string());
        }
        if pooled_y.is_empty() {
            v.not_validated = Some("no test month had clients to score".into());
            return Ok(v);
        }
        let leavers = pooled_y.iter().filter(|y| **y).count();
        if pooled_y.len() < MIN_TEST_ROWS || leavers < MIN_TEST_LEAVERS {
            v.too_few = Some((pooled_y.len(), leavers));
            v.not_validated = Some(format!(
                "too few to judge: {} client-months and {leavers} leavers in the test months (at least {MIN_TEST_ROWS} and {MIN_TEST_LEAVERS} are needed)",
                pooled_y.len()
            ));
            return Ok(v);
        }
        if let Some(e) = bgnbd_failed {
            pooled[4].clear();
            v.bgnbd_dropped = Some(e);
        }
        v.rows = (0..pooled_y.len())
            .map(|k| {
                let at = |j: usize| pooled[j].get(k).copied().unwrap_or(f64::NAN);
                (pooled_rows[k], [at(0), at(1), at(2), at(3), at(4)], pooled_y[k])
            })
            .collect();
        let (resampler, aucs) = measure(&mut v, s, &pooled, &pooled_y, &pooled_rows, seed ^ (hz as u64) << 32);
        choose(
            &mut v, &resampler, &pooled, &pooled_y, &aucs, &kinds, &per_month, &drift,
        );
        Ok(v)
    }
}

/// The transparent model unless another validates clearly better (trees, or BG/NBD on a
/// purchase history): it ranks the test rows better than the logistic regression in at
/// least [`CLEARLY_BETTER`] of the resamples of clients. The chosen model's figures by
/// test month, its calibration, and every scorer's gains.
///
/// Paired resamples rather than a fixed margin: a large firm can tell a small real
/// difference, a small one cannot tell a large chance one.
#[allow(clippy::too_many_arguments)]
fn choose(
    v: &mut HorizonValidation,
    resampler: &metrics::Resampler,
    pooled: &[Vec<f64>; 5],
    pooled_y: &[bool],
    aucs: &[Vec<Option<f64>>; 5],
    kinds: &[ModelKind],
    per_month: &[Vec<Option<f64>>; 3],
    drift: &[Vec<(Option<f64>, bool)>; 3],
) {
    let auc = |v: &HorizonValidation, k: ModelKind| v.scores(k).and_then(|s| s.roc_auc).unwrap_or(0.0);
    let logistic = &aucs[ModelKind::Logistic.scores_index()];
    v.wins_over_logistic = kinds
        .iter()
        .filter(|k| **k != ModelKind::Logistic && v.scores(**k).is_some())
        .filter_map(|&k| Some((k, metrics::share_better(logistic, &aucs[k.scores_index()])?)))
        .collect();
    v.chosen = ModelKind::Logistic;
    for &(k, share) in &v.wins_over_logistic {
        if share >= CLEARLY_BETTER && auc(v, k) > auc(v, v.chosen) {
            v.chosen = k;
        }
    }
    let k = kinds.iter().position(|k| *k == v.chosen).unwrap_or(0);
    v.monthly_auc = per_month[k].clone();
    v.monthly_drift = drift[k].iter().map(|d| d.0).collect();
    v.monthly_carried = drift[k].iter().map(|d| d.1).collect();
    let chosen = &pooled[v.chosen.scores_index()];
    v.calibration = metrics::calibration(chosen, pooled_y);
    resampler.calibration_intervals(chosen, &mut v.calibration);
    let mut gains = vec![
        (ModelKind::Logistic.label(), 0),
        (ModelKind::Boosted.label(), 1),
        (("days since last invoice", "距上次开票天数"), 2),
        (("rule: renewal due or arrears", "规则：临近续约或欠费"), 3),
    ];
    if v.bgnbd.is_some() {
        gains.push((ModelKind::BgNbd.label(), 4));
    }
    v.gains = gains
        .iter()
        .map(|(name, j)| (format!("{}|{}", name.0, name.1), metrics::gains(&pooled[*j], pooled_y)))
        .collect();
}

impl ChurnRisk {
    /// Today's columns, report and summary from a fitted or saved model.
    fn outcome(
        &self,
        ctx: &Context,
        fit: Option<&Fit>,
        saved: &SavedChurn,
        contract_end: &[Option<i32>],
    ) -> Result<Outcome, AnalysisError> {
        let table = ctx.table;
        let active = history::served_at(table, saved.definition, saved.inactive_months, contract_end);
        let feature_values = columns(table, &saved.features);
        let purchases = columns(table, &bgnbd::INPUTS.map(String::from));
        let scored = score_today(saved, &feature_values, &purchases, &active).map_err(failed)?;
        let n = table.df.height();
        let mut columns = Vec::new();
        for (h, risk) in saved.horizons.iter().zip(&scored.risk) {
            let v: Vec<Option<f64>> = risk.iter().map(|p| p.map(|p| (p * 1e4).round() / 1e4)).collect();
            columns.push(Column::new(format!("churn_risk_{}m", h.months).into(), v));
        }
        let fees = values(table, "fees_12m");
        let longest = scored.risk.last().cloned().unwrap_or_else(|| vec![None; n]);
        let at_risk: Vec<Option<f64>> = (0..n)
            .map(|i| {
                longest[i]
                    .map(|p| (p * fees[i].max(0.0) * 100.0).round() / 100.0)
                    .filter(|v| v.is_finite())
            })
            .collect();
        columns.push(Column::new("revenue_at_risk".into(), at_risk.clone()));
        let first = scored.risk.first().cloned().unwrap_or_else(|| vec![None; n]);
        let (ahead_columns, value_ahead) = self.value_ahead(table, saved, &first);
        let thresholds = saved.thresholds(&first);
        let bands: Vec<&str> = first.iter().map(|p| band_of(*p, &thresholds)).collect();
        columns.push(Column::new("churn_band".into(), bands.clone()));
        // The learners' drivers read the columns already at hand (no copy of them at 1M).
        let other_values =
            (scored.driver_features != saved.features).then(|| self::columns(table, &scored.driver_features));
        let driver_values = other_values.as_deref().unwrap_or(&feature_values);
        let drivers = driver_texts(&scored.driver_features, &scored.drivers, driver_values, ctx.lang);
        columns.push(Column::new("churn_drivers".into(), drivers.clone()));
        columns.extend(ahead_columns);
        let winback = saved.purchases.map(|m| win_back(&m, table, &active));
        if let Some(w) = &winback {
            columns.push(Column::new("chance_back_12m".into(), w.chance.clone()));
            columns.push(Column::new("win_back_value".into(), w.value.clone()));
        }
        let win_back_summary = winback.as_ref().map(|w| {
            let likely = w.chance.iter().flatten().filter(|c| **c >= LIKELY_BACK).count();
            let value: f64 = w.value.iter().flatten().sum();
            (w.order.len(), likely, value)
        });
        let projection = (saved.definition == LeaveDefinition::ContractEnd)
            .then(|| report::Projection::of(table, &active))
            .flatten();
        let declared = declared(saved);
        let view = report::View {
            ctx,
            saved,
            fit,
            first: &first,
            at_risk: &at_risk,
            bands: &bands,
            thresholds: &thresholds,
            value_ahead: &value_ahead,
            drivers: &drivers,
            active: &active,
            win_back: win_back_summary,
            projection: projection.as_ref(),
            tiers: report::groups(ctx, SegmentKind::Value)?,
            segments: report::groups(ctx, SegmentKind::Behaviour)?,
        };
        let high = bands.iter().filter(|b| **b == "high").count();
        let total_at_risk: f64 = at_risk.iter().flatten().sum();
        let headline = headline(fit, saved, high, total_at_risk);
        let fee_response = fit.and_then(|f| f.fee_response.clone()).map(|mut r| {
            r.model = fee_response::model_curve(saved, &feature_values, &active);
            r
        });
        let summary = serde_json::json!({
            "definition": saved.definition,
            "inactive_months": saved.inactive_months,
            "horizons": saved.horizons.iter().map(|h| h.months).collect::<Vec<_>>(),
            "chosen": saved.horizons.iter().map(|h| (format!("{}m", h.months), h.kind)).collect::<std::collections::BTreeMap<_, _>>(),
            "features": saved.features,
            "snapshot_rows": fit.map(|f| f.snapshot_rows),
            "snapshot_months": fit.map(|f| f.snapshot_months),
            "validation": fit.map(|f| &f.validation),
            "clients_scored": active.iter().filter(|a| **a).count(),
            "high_risk": high,
            "bands": thresholds,
            "value_ahead_12m": value_ahead.first(),
            "value_ahead_36m": value_ahead.get(1),
            "discount_rate": self.params.discount_rate,
            "revenue_at_risk": total_at_risk,
            "seed": ctx.seed,
            "fee_response": fee_response,
            "backtest": fit.and_then(|f| f.backtest.as_ref()),
            "purchases_model": saved.purchases,
            "retention_projection": projection.as_ref().map(|p| serde_json::json!({
                "model": "sbg",
                "alpha": p.model.alpha,
                "beta": p.model.beta,
                "mean_monthly_leaving": p.model.mean(),
                "polarisation": p.model.polarisation(),
                "months": p.at(&[12, 24, 36, 60]).iter().map(|(m, seen, model)| serde_json::json!({
                    "months": m,
                    "observed": seen,
                    "projected": model,
                })).collect::<Vec<_>>(),
            })),
            "win_back": win_back_summary.map(|(gone, likely, value)| serde_json::json!({
                "months": WIN_BACK_MONTHS,
                "clients_gone": gone,
                "likely_back": likely,
                "likely_from": LIKELY_BACK,
                "expected_value": value,
            })),
            "max_train_rows": self.params.max_train_rows,
            "validation_train_rows": validation_rows(self.params.max_train_rows),
            "validation_refit_months": self.params.refit_months,
            "transforms": saved
                .features
                .iter()
                .map(|f| (f.clone(), feature_def(f).map(|d| d.transform)))
                .collect::<std::collections::BTreeMap<_, _>>(),
        });
        let (tables, mut exports) = frames(ctx, fit, fee_response.as_ref())?;
        if let Some(w) = &winback {
            exports.push((
                "winback".to_string(),
                w.frame(table).map_err(|e| failed(e.to_string()))?,
            ));
        }
        let sec = report::section(&view);
        let ch = report::charts(&view);
        Ok(Outcome {
            tables,
            exports,
            columns,
            declared,
            table_names: vec![
                TableName {
                    name: "fee_response".into(),
                    en: "fee rises and leaving".into(),
                    zh: "调价与流失".into(),
                },
                TableName {
                    name: "winback".into(),
                    en: "clients to win back".into(),
                    zh: "可挽回客户".into(),
                },
                TableName {
                    name: "churn_backtest".into(),
                    en: "earlier risks against what happened".into(),
                    zh: "历次预测与实际".into(),
                },
            ],
            section: Some(sec),
            headline: Some(headline),
            summary: Some(summary),
            saved: serde_json::to_value(saved).ok(),
            charts: ch,
            ..Outcome::empty("churn")
        })
    }
}

/// Per client, the words for the first horizon's strongest drivers.
fn driver_texts(features: &[String], drivers: &[Vec<(usize, f64)>], values: &[Vec<f64>], lang: Lang) -> Vec<String> {
    use rayon::prelude::*;
    let defs: Vec<Option<&FeatureDef>> = features.iter().map(|f| feature_def(f)).collect();
    drivers
        .par_iter()
        .enumerate()
        .map(|(i, d)| {
            d.iter()
                .filter_map(|(j, _)| {
                    let f = defs.get(*j).copied().flatten()?;
                    Some(driver_words(f, values[*j][i], lang))
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect()
}

/// The run's one line on churn: clients at high risk, revenue at risk, and how well the
/// first horizon's model validated.
fn headline(fit: Option<&Fit>, saved: &SavedChurn, high: usize, total_at_risk: f64) -> (String, String) {
    let model_words = saved.horizons.first().map(|h| h.kind.label()).unwrap_or(("", ""));
    let first = fit.and_then(|f| f.validation.first());
    let auc = first.and_then(|v| v.scores(v.chosen)).and_then(|s| s.roc_auc);
    let too_few = first.and_then(|v| v.too_few);
    let auc_en = match (auc, too_few) {
        (Some(a), _) => format!("rolling-origin ROC-AUC {a:.3}"),
        (None, Some((rows, left))) => format!("too few to judge: {rows} client-months, {left} leavers"),
        (None, None) => "not validated".to_string(),
    };
    let auc_zh = match (auc, too_few) {
        (Some(a), _) => format!("滚动验证 ROC-AUC {a:.3}"),
        (None, Some((rows, left))) => format!("样本太少，无法评判：{rows} 个客户月、{left} 个流失"),
        (None, None) => "未验证".to_string(),
    };
    let total = crate::format::human(total_at_risk);
    (
        format!(
            "churn risk: {high} clients at high risk, revenue at risk {total} CNY ({}, {auc_en})",
            model_words.0
        ),
        format!(
            "流失风险：高风险客户 {high} 个，风险收入 {total} 元（{}，{auc_zh}）",
            model_words.1
        ),
    )
}

type Frames = Vec<(String, polars::prelude::DataFrame)>;

/// The run folder's tables (validation, snapshots) and exports (fee response, backtest).
fn frames(
    ctx: &Context,
    fit: Option<&Fit>,
    fee_response: Option<&fee_response::FeeResponse>,
) -> Result<(Frames, Frames), AnalysisError> {
    let mut tables = match (fit, ctx.history) {
        (Some(f), Some(h)) => vec![(
            "churn_validation".to_string(),
            validation_table(f, h).map_err(|e| failed(e.to_string()))?,
        )],
        _ => Vec::new(),
    };
    if let Some(df) = fit.and_then(|f| f.snapshots.clone()) {
        tables.push(("churn_snapshots".to_string(), df));
    }
    let mut exports = Vec::new();
    if let Some(r) = fee_response {
        exports.push((
            "fee_response".to_string(),
            r.frame().map_err(|e| failed(e.to_string()))?,
        ));
    }
    if let Some(b) = fit.and_then(|f| f.backtest.as_ref()).filter(|b| !b.checked.is_empty()) {
        exports.push((
            "churn_backtest".to_string(),
            backtest::frame(b, ctx.lang).map_err(|e| failed(e.to_string()))?,
        ));
    }
    Ok((tables, exports))
}

impl Analysis for ChurnRisk {
    fn id(&self) -> &'static str {
        "churn"
    }

    fn name(&self) -> (&'static str, &'static str) {
        ("churn risk", "流失风险")
    }

    fn needs(&self) -> Vec<Need> {
        // Read for the report's breakdown; value tiers ranked by the value ahead run after.
        vec![
            Need::segmentation("value").if_earlier(),
            Need::segmentation("behaviour").if_earlier(),
        ]
    }

    fn fit(&self, ctx: &Context, stages: &mut Stages) -> Result<Outcome, AnalysisError> {
        if !self.params.enabled {
            return Ok(self.skipped((
                "switched off in the config ([churn] enabled = false)".into(),
                "配置中已关闭（[churn] enabled = false）".into(),
            )));
        }
        let Some(h) = ctx.history else {
            return Ok(self.skipped((
                "the run kept no history to learn from".into(),
                "本次运行没有可供学习的历史数据".into(),
            )));
        };
        // The purchase-history summary is the BG/NBD model's input, not the learners'.
        let names: Vec<String> = ctx
            .table
            .enabled
            .iter()
            .filter(|f| !bgnbd::OWN_INPUTS.contains(&f.name))
            .map(|f| f.name.to_string())
            .collect();
        let mut fit = match self.learn(h, &names, ctx.seed, stages)? {
            Ok(f) => f,
            Err(why) => return Ok(self.skipped(why)),
        };
        fit.backtest = Some(stages.run("churn: earlier predictions", |_| {
            backtest::check(ctx.earlier_runs, h, ctx.table, &fit.saved.features)
        }));
        let saved = fit.saved.clone();
        stages.run("churn scoring", |_| {
            self.outcome(ctx, Some(&fit), &saved, &h.contract_end)
        })
    }

    fn apply(
        &self,
        ctx: &Context,
        stages: &mut Stages,
        model: &Model,
        model_path: &std::path::Path,
    ) -> Result<Outcome, AnalysisError> {
        let Some(value) = model.analyses.get("churn") else {
            return Ok(self.skipped(("the model has no churn part".into(), "该模型不含流失风险部分".into())));
        };
        let saved: SavedChurn = serde_json::from_value(value.clone()).map_err(|e| {
            AnalysisError::Model(crate::model::ModelError::Invalid {
                path: model_path.display().to_string(),
                message: format!("churn: {e}"),
            })
        })?;
        for f in &saved.features {
            if !ctx.table.is_enabled(f) {
                return Err(AnalysisError::ScoreFeature {
                    model: model_path.display().to_string(),
                    feature: f.clone(),
                });
            }
        }
        let contract_end = ctx.history.map(|h| h.contract_end.clone()).unwrap_or_default();
        stages.run("churn scoring", |_| self.outcome(ctx, None, &saved, &contract_end))
    }
}

#[cfg(test)]
mod tests {
    use super::models::{Logistic, Platt};
    use super::*;
    use crate::features::Transform;

    #[test]
    fn driver_values_read_as_the_formatter_writes_them() {
        // The forms before the whole numbers were written without the formatter.
        let reference = |f: &FeatureDef, v: f64| -> String {
            if !v.is_finite() {
                return "–".into();
            }
            match f.unit {
                "share" => format!("{:.0}%", v * 100.0),
                "ratio" if f.name == "fee_rise" || f.name == "invoice_gap_cv" => format!("{:.0}%", v * 100.0),
                "ratio" | "share/month" => format!("{v:+.2}"),
                "CNY" | "CNY/month" => crate::format::human(v),
                _ if v.fract().abs() < 1e-9 || v.abs() >= 10.0 => format!("{v:.0}"),
                _ => format!("{v:.1}"),
            }
        };
        let mut values = vec![
            0.0, -0.0, 0.5, 2.5, -2.5, 0.004999, 0.005, 0.125, 9.95, 10.5, 999.5, 1000.0,
        ];
        values.extend([
            1_234.5,
            -1_234_567.5,
            1e15,
            2.5e15,
            f64::NAN,
            f64::INFINITY,
            0.999_5,
            0.994_9,
        ]);
        values.extend((0..2000).map(|k| (k as f64 - 1000.0) * 13.37 / 7.0));
        let features = [
            "fees_12m",
            "fee_rise",
            "invoice_gap_cv",
            "silent_months",
            "contribution_margin",
        ];
        let mut units = std::collections::BTreeSet::new();
        for name in features
            .iter()
            .copied()
            .chain(crate::features::CATALOGUE.iter().map(|f| f.name))
        {
            let f = feature_def(name).unwrap();
            units.insert(f.unit);
            for &v in &values {
                assert_eq!(value_words(f, v), reference(f, v), "{name} {v}");
            }
        }
        assert!(units.contains("CNY") && units.contains("share"), "{units:?}");
    }

    #[test]
    fn bands_split_at_their_thresholds_and_a_client_who_left_is_no_band() {
        let bands = &Thresholds {
            medium_from: 0.05,
            high_from: 0.15,
            firm_mean: 0.04,
            by: BandBasis::Risk,
        };
        assert_eq!(band_of(None, bands), "left");
        assert_eq!(band_of(Some(0.0), bands), "low");
        assert_eq!(band_of(Some(0.0499), bands), "low");
        assert_eq!(band_of(Some(0.05), bands), "medium");
        assert_eq!(band_of(Some(0.1499), bands), "medium");
        assert_eq!(band_of(Some(0.15), bands), "high");
        assert_eq!(band_words("high", Lang::Zh), "高风险");
        assert_eq!(band_words("nonsense", Lang::En), "");
    }

    /// The rule flags a renewal 1 to h months away (0 is the anniversary month itself,
    /// the next renewal a year off) and arrears above the configured months of fees.
    #[test]
    fn the_rule_flags_a_renewal_within_the_horizon_or_arrears() {
        let names = ["months_to_renewal", "open_receivables", "avg_monthly_fee"].map(String::from);
        let naive = Naive::of(&names);
        let flag = |renewal: f64, owed: f64| naive.score(&[renewal, owed, 300.0], 3, 2.0).1;
        let flagged: Vec<f64> = [0.0, 1.0, 2.0, 3.0, 4.0, 11.0, f64::NAN]
            .iter()
            .map(|&r| flag(r, 0.0))
            .collect();
        assert_eq!(flagged, [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        // Arrears: more than two months of fees.
        assert_eq!(flag(6.0, 600.0), 0.0);
        assert_eq!(flag(6.0, 601.0), 1.0);
    }

    #[test]
    fn bgnbd_drivers_name_the_purchase_history_that_raises_the_risk() {
        // The paper's CDNOW fit; per client: repeat invoice days, days since the first
        // invoice, days since the last one. Three typical clients set the medians.
        let m = BgNbd {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        };
        let clients = [
            (2.0, 300.0, 60.0),
            (2.0, 300.0, 5.0),
            (2.0, 300.0, 60.0),
            (10.0, 600.0, 400.0),
            (10.0, 600.0, 5.0),
        ];
        let inputs: Vec<Vec<f64>> = vec![
            clients.iter().map(|c| c.0).collect(),
            clients.iter().map(|c| c.1).collect(),
            clients.iter().map(|c| c.2).collect(),
        ];
        let positions: Vec<usize> = (0..clients.len()).collect();
        let margin: Vec<f64> = clients
            .iter()
            .map(|c| bgnbd_margin(&m, Summary::of_features(c.0, c.1, c.2), 3))
            .collect();
        let c = bgnbd_contributions(&m, &inputs, &positions, 3, &margin);
        let at = |client: usize, input: &str| c[client * 3 + bgnbd::INPUTS.iter().position(|f| *f == input).unwrap()];
        // A typical client differs from the median in nothing.
        for f in bgnbd::INPUTS {
            assert_eq!(at(0, f), 0.0, "{f}");
        }
        // A frequent client silent for 400 days: the silence raises the risk; the same
        // client who bought 5 days ago is lowered by it.
        assert!(at(3, "days_since_last_invoice") > 1.0, "{c:?}");
        assert!(at(4, "days_since_last_invoice") < 0.0, "{c:?}");
        let saved = SavedChurn {
            definition: LeaveDefinition::Lapse,
            inactive_months: 3,
            features: vec!["fees_12m".into()],
            horizons: vec![SavedHorizon {
                months: 3,
                kind: ModelKind::BgNbd,
                logistic: None,
                boosted: None,
                bgnbd: Some(m),
                platt: Platt {
                    a: 1.0,
                    b: 0.0,
                    drift: None,
                    carried: false,
                },
            }],
            bands: (1.5, 3.0),
            bands_by: BandBasis::Relative,
            purchases: Some(m),
        };
        let scored = score_today(&saved, &[vec![0.0; 5]], &inputs, &[true; 5]).unwrap();
        assert_eq!(scored.driver_features, bgnbd::INPUTS.map(String::from).to_vec());
        let words = driver_texts(&scored.driver_features, &scored.drivers, &inputs, Lang::En);
        assert!(words[3].contains("400 days since the last invoice"), "{words:?}");
        assert!(words[0].is_empty(), "{words:?}");
        let zh = driver_texts(&scored.driver_features, &scored.drivers, &inputs, Lang::Zh);
        assert!(zh[3].contains("距上次开票已 400 天"), "{zh:?}");
    }

    #[test]
    fn the_matrix_holds_the_kept_rows_one_after_the_other() {
        let cols = vec![vec![1.0, 2.0, 3.0], vec![10.0, 20.0, 30.0]];
        assert_eq!(matrix(&cols, &[true, false, true]), vec![1.0, 10.0, 3.0, 30.0]);
        assert!(matrix(&cols, &[false, false, false]).is_empty());
    }

    #[test]
    fn an_outcome_is_known_after_the_horizon() {
        let s = Snapshots {
            d: 1,
            x: vec![0.0, 0.0],
            month: vec![100, 101],
            client: vec![0, 1],
            btyd: Vec::new(),
            cross: Vec::new(),
            bgnbd_fits: Default::default(),
        };
        assert_eq!(known_by(&s, 0, 3), 103);
        assert_eq!(known_by(&s, 1, 3), 104);
        assert_eq!(validation_rows(150_000), 60_000);
        assert_eq!(validation_rows(10), 1000);
    }

    /// A fit made by test month t also serves t + 1: every month it learned from is
    /// earlier than the months t + 1 is calibrated on, so no outcome is used twice.
    #[test]
    fn a_fit_reused_a_month_later_learned_only_before_its_calibration() {
        let months: Vec<i32> = (100..=135).flat_map(|m| [m, m, m]).collect();
        let s = Snapshots {
            d: 1,
            x: vec![0.0; months.len()],
            client: (0..months.len() as u32).collect(),
            month: months,
            btyd: Vec::new(),
            cross: Vec::new(),
            bgnbd_fits: Default::default(),
        };
        for horizon in [3, 6] {
            // From the first test month validation allows (three snapshot months known).
            for t in 100 + horizon + 2..=134 {
                let train = |t: i32| -> Vec<usize> { (0..s.n()).filter(|&i| known_by(&s, i, horizon) <= t).collect() };
                let (now, later) = (train(t), train(t + 1));
                let (fit, _) = split(&s, &now, 10, 1);
                let (_, cal) = split(&s, &later, 10, 1);
                let last_fit = fit.iter().map(|&k| s.month[now[k]]).max().unwrap();
                let first_cal = cal.iter().map(|&k| s.month[later[k]]).min().unwrap();
                assert!(
                    last_fit < first_cal,
                    "{horizon}m, t {t}: fit to {last_fit}, calibrated from {first_cal}"
                );
                assert!(fit.len() <= 10);
            }
        }
    }

    fn saved(coef: Vec<f64>) -> SavedChurn {
        SavedChurn {
            definition: LeaveDefinition::Lapse,
            inactive_months: 3,
            features: vec!["fees_12m".into(), "tenure_months".into()],
            horizons: vec![SavedHorizon {
                months: 3,
                kind: ModelKind::Logistic,
                logistic: Some(Logistic {
                    transforms: vec![Transform::None; 2],
                    mean: vec![0.0, 0.0],
                    std: vec![1.0, 1.0],
                    coef,
                    intercept: -2.0,
                    window: None,
                }),
                boosted: None,
                bgnbd: None,
                platt: Platt {
                    a: 1.0,
                    b: 0.0,
                    drift: None,
                    carried: false,
                },
            }],
            bands: (0.05, 0.15),
            bands_by: BandBasis::Risk,
            purchases: None,
        }
    }

    #[test]
    fn value_ahead_by_hand() {
        // 27.1% within 3 months is 10% a month: 0.9, 0.81, ... of a month served.
        let p = 1.0 - 0.9f64.powi(3);
        let (served, value) = ahead(p, 3, 100.0, 12, 0.0);
        let want: f64 = (1..=12).map(|k| 0.9f64.powi(k)).sum();
        assert!(
            (served - want).abs() < 1e-9 && (value - 100.0 * want).abs() < 1e-7,
            "{served} {value}"
        );
        // Discounting at 12.68% a year is 1% a month.
        let (_, discounted) = ahead(p, 3, 100.0, 12, 1.01f64.powi(12) - 1.0);
        let want: f64 = (1..=12).map(|k| 100.0 * (0.9f64 / 1.01).powi(k)).sum();
        assert!((discounted - want).abs() < 1e-7, "{discounted} {want}");
        // Nobody leaves: every month served; a loss-making client's value is negative.
        assert_eq!(ahead(0.0, 3, -50.0, 36, 0.0), (36.0, -1800.0));
    }

    #[test]
    fn relative_bands_are_multiples_of_the_firm_s_odds() {
        let mut s = saved(vec![0.5, -0.5]);
        s.bands_by = BandBasis::Relative;
        s.bands = (1.5, 3.0);
        // A firm that loses 60% a quarter: odds 1.5, so high from odds 4.5 (82%).
        let t = s.thresholds(&[Some(0.5), Some(0.7), None, Some(0.6)]);
        assert!((t.firm_mean - 0.6).abs() < 1e-12);
        assert!((t.high_from - 4.5 / 5.5).abs() < 1e-12, "{t:?}");
        assert!((t.medium_from - 2.25 / 3.25).abs() < 1e-12, "{t:?}");
        // A firm that loses 2%: about 3% and 6%, near the multiples of the risk itself.
        let t = s.thresholds(&[Some(0.02); 4]);
        assert!(
            (t.medium_from - 0.0297).abs() < 1e-3 && (t.high_from - 0.0577).abs() < 1e-3,
            "{t:?}"
        );
        assert_eq!(s.check(), Ok(()));
        s.bands = (3.0, 1.5);
        assert!(s.check().is_err());
    }

    #[test]
    fn a_damaged_saved_model_is_refused_with_its_reason() {
        assert_eq!(saved(vec![0.5, -0.5]).check(), Ok(()));
        let wrong = saved(vec![0.5]).check().unwrap_err();
        assert!(wrong.contains("3m") && wrong.contains("wrong number"), "{wrong}");
        let nan = saved(vec![f64::NAN, 0.0]).check().unwrap_err();
        assert!(nan.contains("finite"), "{nan}");
        let mut unknown = saved(vec![0.5, -0.5]);
        unknown.features[1] = "shoe_size".into();
        assert!(unknown.check().unwrap_err().contains("shoe_size"));
        let mut missing = saved(vec![0.5, -0.5]);
        missing.horizons[0].kind = ModelKind::Boosted;
        assert!(missing.check().unwrap_err().contains("missing"));
        let mut bands = saved(vec![0.5, -0.5]);
        bands.bands = (0.05, 1.5);
        assert!(bands.check().is_err());
    }

    #[test]
    fn each_horizon_declares_a_pushed_risk_and_the_band_is_tracked_with_its_words() {
        let mut s = saved(vec![0.5, -0.5]);
        let mut six = s.horizons[0].clone();
        six.months = 6;
        s.horizons.push(six);
        let d = declared(&s);
        let names: Vec<&str> = d.iter().map(|c| c.name.as_str()).collect();
        assert!(names.starts_with(&["churn_risk_3m", "churn_risk_6m", "revenue_at_risk", "churn_band"]));
        let band = d.iter().find(|c| c.name == "churn_band").unwrap();
        assert_eq!(band.word("high", Lang::Zh), Some("高风险"));
        assert_eq!(band.tracked.as_ref().map(|t| t.kind.as_str()), Some("churn"));
        assert!(d
            .iter()
            .filter(|c| c.name.starts_with("churn_risk_"))
            .all(|c| c.push.is_some()));
    }
}
