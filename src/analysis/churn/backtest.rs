//! Earlier runs' predictions against what happened since, and how far each feature has
//! moved since the latest earlier run (population stability index). The firm can check
//! the first on its own: "30% risk" three months ago, and who did leave.

use std::path::Path;

use polars::prelude::{Column, DataFrame, ParquetReader, SerReader};
use serde::Serialize;

use super::metrics::roc_auc;
use super::{band_words, MIN_TEST_LEAVERS, MIN_TEST_ROWS};
use crate::columns::OutputColumn;
use crate::features::FeatureTable;
use crate::format::Lang;
use crate::history::History;

/// A feature has moved when its population stability index against the latest earlier
/// run is above this (the usual reading: below 0.1 stable, 0.1–0.25 some change, above
/// 0.25 a shift worth a look).
pub const PSI_FLAG: f64 = 0.25;

/// One group of an earlier run's scored clients: predicted against observed.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// "all" or a band id.
    pub group: String,
    pub clients: usize,
    pub left: usize,
    pub mean_predicted: f64,
    pub observed: f64,
}

/// One earlier run's risks of one horizon, checked.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub run: String,
    /// Its snapshot's month (YYYY-MM) and the end of the horizon.
    pub snapshot: String,
    pub through: String,
    pub horizon: i32,
    pub groups: Vec<Group>,
    /// None with too few clients or leavers to claim one.
    pub roc_auc: Option<f64>,
    /// The longest horizon only: revenue at risk then, and the part of it (risk × fees)
    /// of the clients who did leave; and the fees of the last 12 months they took along.
    pub revenue_at_risk: Option<f64>,
    pub revenue_at_risk_left: Option<f64>,
    pub fees_left: Option<f64>,
}

/// An earlier run whose horizon has not passed yet.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub run: String,
    pub snapshot: String,
    pub horizon: i32,
    /// The first data month by whose end the outcome is known.
    pub known_after: String,
}

/// A feature's movement since the latest earlier run.
#[derive(Debug, Clone, Serialize)]
pub struct Shift {
    pub feature: String,
    pub psi: f64,
    pub flagged: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Backtest {
    pub checked: Vec<Checked>,
    pub pending: Vec<Pending>,
    /// Earlier runs that could not be read, with why (they are left out, not fatal).
    pub unreadable: Vec<String>,
    /// Against this earlier run.
    pub drift_against: Option<String>,
    pub drift: Vec<Shift>,
}

fn ym(m: i32) -> String {
    crate::features::month_end(m).format("%Y-%m").to_string()
}

/// Earlier runs older than this many months are not checked again (their check is in the
/// runs of the months after them).
const LOOK_BACK_MONTHS: i32 = 24;

/// An earlier run as read: its id, snapshot month, its risks and bands, and the
/// features it was scored on.
struct Earlier {
    run: String,
    snapshot: i32,
    labels: DataFrame,
    features: Option<DataFrame>,
}

/// A run folder's id and snapshot month, from its manifest.
fn snapshot_of(dir: &Path) -> Result<(String, i32), String> {
    let run = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let text = std::fs::read_to_string(dir.join("manifest.json")).map_err(|e| format!("{run}: manifest.json: {e}"))?;
    let m: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{run}: manifest.json: {e}"))?;
    let snapshot = m
        .get("snapshot_date")
        .and_then(|v| v.as_str())
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| format!("{run}: manifest.json has no snapshot_date"))?;
    Ok((run, crate::features::month_of(snapshot)))
}

/// The columns of a Parquet file that `keep` wants, read alone (a run folder of a large
/// firm holds hundreds of megabytes).
fn parquet(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<DataFrame, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let mut reader = ParquetReader::new(file);
    let wanted: Vec<String> = reader
        .schema()
        .map_err(|e| format!("{name}: {e}"))?
        .iter_names()
        .map(|n| n.to_string())
        .filter(|n| keep(n))
        .collect();
    reader
        .with_columns(Some(wanted))
        .finish()
        .map_err(|e| format!("{name}: {e}"))
}

fn read(dir: &Path, run: String, snapshot: i32, features: &[String]) -> Result<Earlier, String> {
    let labels = parquet(&dir.join("labels.parquet"), &|n| {
        n == "client_id" || n == "churn_band" || n == "revenue_at_risk" || n.starts_with("churn_risk_")
    })
    .map_err(|e| format!("{run}: {e}"))?;
    // Without features.parquet the risks are still checked; only the drift is not.
    let features = parquet(&dir.join("features.parquet"), &|n| {
        n == "client_id" || n == "fees_12m" || features.iter().any(|f| f == n)
    })
    .ok();
    Ok(Earlier {
        run,
        snapshot,
        labels,
        features,
    })
}

fn floats(df: &DataFrame, name: &str) -> Option<Vec<Option<f64>>> {
    let c = df.column(name).ok()?.cast(&polars::prelude::DataType::Float64).ok()?;
    Some(c.f64().ok()?.iter().collect())
}

fn texts(df: &DataFrame, name: &str) -> Option<Vec<Option<String>>> {
    let c = df.column(name).ok()?;
    Some(c.str().ok()?.iter().map(|v| v.map(String::from)).collect())
}

/// Checks every earlier run in `runs` (oldest first) against the history, and the
/// features against the latest of them.
pub fn check(runs: &[std::path::PathBuf], h: &History, table: &FeatureTable, features: &[String]) -> Backtest {
    let mut out = Backtest::default();
    let index: std::collections::HashMap<&str, usize> = h
        .sample_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    // The latest run of each month (a month run twice is checked once), recent ones only.
    let mut by_month: std::collections::BTreeMap<i32, (String, &std::path::PathBuf)> = Default::default();
    for dir in runs {
        match snapshot_of(dir) {
            Ok((run, m)) if m < h.last_month && m >= h.last_month - LOOK_BACK_MONTHS => {
                by_month.insert(m, (run, dir));
            }
            Ok(_) => {}
            Err(why) => out.unreadable.push(why),
        }
    }
    let mut latest: Option<Earlier> = None;
    for (m, (run, dir)) in by_month {
        let e = match read(dir, run, m, features) {
            Ok(e) => e,
            Err(why) => {
                out.unreadable.push(why);
                continue;
            }
        };
        check_run(&e, h, &index, &mut out);
        latest = Some(e);
    }
    if let Some((l, before_df)) = latest.as_ref().and_then(|l| Some((l, l.features.as_ref()?))) {
        out.drift_against = Some(l.run.clone());
        out.drift = features
            .iter()
            .filter_map(|f| {
                let before: Vec<f64> = floats(before_df, f)?
                    .into_iter()
                    .flatten()
                    .filter(|v| v.is_finite())
                    .collect();
                let now: Vec<f64> = floats(&table.df, f)?
                    .into_iter()
                    .flatten()
                    .filter(|v| v.is_finite())
                    .collect();
                let psi = psi(&before, &now)?;
                Some(Shift {
                    feature: f.clone(),
                    psi,
                    flagged: psi > PSI_FLAG,
                })
            })
            .collect();
        out.drift.sort_by(|a, b| b.psi.total_cmp(&a.psi));
    }
    out
}

fn check_run(e: &Earlier, h: &History, index: &std::collections::HashMap<&str, usize>, out: &mut Backtest) {
    let Some(ids) = texts(&e.labels, "client_id") else {
        out.unreadable
            .push(format!("{}: labels.parquet has no client_id", e.run));
        return;
    };
    let horizons: Vec<i32> = e
        .labels
        .get_column_names()
        .iter()
        .filter_map(|n| n.strip_prefix("churn_risk_")?.strip_suffix('m')?.parse().ok())
        .collect();
    let longest = horizons.iter().copied().max();
    let bands = texts(&e.labels, "churn_band");
    let at_risk = floats(&e.labels, "revenue_at_risk");
    // fees_12m of the features the run scored, by client.
    let fees: Option<Vec<Option<f64>>> = e.features.as_ref().and_then(|f| {
        let by_id: std::collections::HashMap<String, Option<f64>> = texts(f, "client_id")?
            .into_iter()
            .zip(floats(f, "fees_12m")?)
            .filter_map(|(id, v)| Some((id?, v)))
            .collect();
        Some(
            ids.iter()
                .map(|id| id.as_ref().and_then(|id| by_id.get(id).copied().flatten()))
                .collect(),
        )
    });
    for &hz in &horizons {
        let Some(risk) = floats(&e.labels, &format!("churn_risk_{hz}m")) else {
            continue;
        };
        // Rows of the history's clients that were scored then, with their outcome.
        let mut rows = Vec::new();
        let mut pending_until = None;
        for (k, id) in ids.iter().enumerate() {
            let (Some(id), Some(Some(p))) = (id, risk.get(k)) else {
                continue;
            };
            let Some(&i) = index.get(id.as_str()) else {
                continue;
            };
            let Some(left) = h.outcome(i, e.snapshot, hz) else {
                pending_until = pending_until.max(Some(e.snapshot + hz));
                continue;
            };
            rows.push((k, *p, left));
        }
        if rows.is_empty() {
            if let Some(k) = pending_until {
                out.pending.push(Pending {
                    run: e.run.clone(),
                    snapshot: ym(e.snapshot),
                    horizon: hz,
                    known_after: ym(k),
                });
            }
            continue;
        }
        let group = |name: &str, pick: &dyn Fn(usize) -> bool| {
            let part: Vec<&(usize, f64, bool)> = rows.iter().filter(|r| pick(r.0)).collect();
            let n = part.len();
            (n > 0).then(|| Group {
                group: name.to_string(),
                clients: n,
                left: part.iter().filter(|r| r.2).count(),
                mean_predicted: part.iter().map(|r| r.1).sum::<f64>() / n as f64,
                observed: part.iter().filter(|r| r.2).count() as f64 / n as f64,
            })
        };
        let mut groups: Vec<Group> = group("all", &|_| true).into_iter().collect();
        if let Some(b) = &bands {
            for name in ["high", "medium", "low"] {
                groups.extend(group(name, &|k| b.get(k).and_then(|v| v.as_deref()) == Some(name)));
            }
        }
        let (p, y): (Vec<f64>, Vec<bool>) = rows.iter().map(|r| (r.1, r.2)).unzip();
        let leavers = y.iter().filter(|l| **l).count();
        let firm = rows.len() >= MIN_TEST_ROWS && leavers >= MIN_TEST_LEAVERS;
        let money = |v: &Option<Vec<Option<f64>>>, only_left: bool| {
            let v = v.as_ref()?;
            Some(
                rows.iter()
                    .filter(|r| !only_left || r.2)
                    .filter_map(|r| v.get(r.0).copied().flatten())
                    .filter(|x| x.is_finite())
                    .sum::<f64>(),
            )
        };
        let is_longest = Some(hz) == longest;
        out.checked.push(Checked {
            run: e.run.clone(),
            snapshot: ym(e.snapshot),
            through: ym(e.snapshot + hz),
            horizon: hz,
            groups,
            roc_auc: if firm { roc_auc(&p, &y) } else { None },
            revenue_at_risk: is_longest.then(|| money(&at_risk, false)).flatten(),
            revenue_at_risk_left: is_longest.then(|| money(&at_risk, true)).flatten(),
            fees_left: is_longest.then(|| money(&fees, true)).flatten(),
        });
    }
}

/// Population stability index of `now` against `before`, over the deciles of `before`
/// (a value tied across deciles counts once); None when either side is empty.
pub fn psi(before: &[f64], now: &[f64]) -> Option<f64> {
    if before.is_empty() || now.is_empty() {
        return None;
    }
    let mut sorted = before.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..10).map(|k| sorted[k * sorted.len() / 10]).collect();
    edges.dedup();
    let share = |v: &[f64]| {
        let mut c = vec![0.0; edges.len() + 1];
        for x in v {
            c[edges.partition_point(|e| e <= x)] += 1.0;
        }
        c.iter().map(|n| (n / v.len() as f64).max(1e-4)).collect::<Vec<f64>>()
    };
    let (a, b) = (share(before), share(now));
    Some(a.iter().zip(&b).map(|(a, b)| (b - a) * (b / a).ln()).sum())
}

/// The columns of churn_backtest (horizon_months and left are fee_response's too).
pub fn declared() -> Vec<OutputColumn> {
    let mut out = vec![
        OutputColumn::text("run", "earlier run", "历次运行"),
        OutputColumn::text("snapshot_month", "its month", "当时月份"),
        OutputColumn::text("through_month", "outcome through", "观察截至"),
        OutputColumn::text("group", "clients", "客户组"),
    ];
    out.extend(
        [
            ("clients", "clients scored", "当时打分客户数"),
            ("mean_predicted", "mean predicted risk", "平均预测风险"),
            ("observed", "share that left", "实际流失占比"),
        ]
        .into_iter()
        .map(|(name, en, zh)| OutputColumn::number(name, en, zh)),
    );
    out
}

/// churn_backtest.csv: a row per earlier run, horizon and group.
pub fn frame(b: &Backtest, lang: Lang) -> polars::prelude::PolarsResult<DataFrame> {
    let mut cols: [Vec<String>; 4] = Default::default();
    let mut horizon = Vec::new();
    let mut nums: [Vec<f64>; 2] = Default::default();
    let mut counts: [Vec<u64>; 2] = Default::default();
    for c in &b.checked {
        for g in &c.groups {
            cols[0].push(c.run.clone());
            cols[1].push(c.snapshot.clone());
            cols[2].push(c.through.clone());
            cols[3].push(match g.group.as_str() {
                "all" => if lang == Lang::Zh { "全部" } else { "all" }.to_string(),
                b => band_words(b, lang).to_string(),
            });
            horizon.push(c.horizon);
            counts[0].push(g.clients as u64);
            counts[1].push(g.left as u64);
            nums[0].push(g.mean_predicted);
            nums[1].push(g.observed);
        }
    }
    let [run, snapshot, through, group] = cols;
    let [clients, left] = counts;
    let [predicted, observed] = nums;
    DataFrame::new_infer_height(vec![
        Column::new("run".into(), run),
        Column::new("snapshot_month".into(), snapshot),
        Column::new("through_month".into(), through),
        Column::new("horizon_months".into(), horizon),
        Column::new("group".into(), group),
        Column::new("clients".into(), clients),
        Column::new("left".into(), left),
        Column::new("mean_predicted".into(), predicted),
        Column::new("observed".into(), observed),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_of_the_same_spread_is_small_and_of_a_shift_large() {
        let before: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let same: Vec<f64> = (0..1000).map(|i| i as f64 + 0.5).collect();
        assert!(psi(&before, &same).unwrap() < 0.01);
        let moved: Vec<f64> = (0..1000).map(|i| i as f64 + 400.0).collect();
        assert!(psi(&before, &moved).unwrap() > PSI_FLAG);
        assert_eq!(psi(&[], &same), None);
    }

    #[test]
    fn psi_by_hand() {
        // Two bins by the median: 50/50 before, 80/20 now.
        let before = [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let now = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        let want = (0.8 - 0.5) * (0.8f64 / 0.5).ln() + (0.2 - 0.5) * (0.2f64 / 0.5).ln();
        assert!((psi(&before, &now).unwrap() - want).abs() < 1e-12);
    }
}
