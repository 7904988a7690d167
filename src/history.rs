//! The clients' history as the analyses that learn from it see it: when each client
//! left (by the archive's contract_end, or by a lapse of invoices and work), and the
//! features of a seeded sample of whole clients as of the end of any past month.
//!
//! A past month's features are [`features::compute`] on the rows dated up to that month
//! ([`as_of`]): the same definitions as today's run, with nothing from later months.

use std::collections::{HashMap, HashSet};

use polars::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::features::{self, days, month_end, month_of, FeatureError, FeatureParams, FeatureTable, SILENT_CAP};
use crate::ingest::ROW;
use crate::schema::Table;
use crate::validate::{CleanTables, CLIENT_ROW};

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("reading the history failed: {0}")]
    Polars(#[from] PolarsError),
    #[error(transparent)]
    Features(#[from] FeatureError),
}

/// What "the client left" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveDefinition {
    /// contract_end when the archive records any, else lapse.
    Auto,
    /// Left in the month of the first day after contract_end.
    ContractEnd,
    /// Left in the month after the last invoice or work month, once no invoice and no
    /// work month has followed for `inactive_months` months.
    Lapse,
}

impl LeaveDefinition {
    pub fn describe(self, inactive_months: i32) -> (String, String) {
        match self {
            LeaveDefinition::ContractEnd => (
                "a client left when its contract_end in the archive passed (in the month of the first day without a contract)".into(),
                "以客户档案中的合同结束日期为准：合同结束后的第一天所在月份即为流失月份".into(),
            ),
            _ => (
                format!("a client is counted as gone when no invoice and no work month followed for {inactive_months} months, or for its longest earlier gap between invoices and one month more when that is longer (no contract end dates in the archive); the risk of leaving within h months is the chance that a client still served has no invoice and no work month in the next h months"),
                format!("档案中没有合同结束日期：连续 {inactive_months} 个月（若该客户以往最长的开票间隔更长，则为该间隔再加一个月）既无开票也无业务即视为已流失；h 个月内的流失风险是仍在服务的客户在未来 h 个月内既无开票也无业务的概率"),
            ),
        }
    }
}

/// The history's checked parameters (`[churn]` of the config).
#[derive(Debug, Clone, Serialize)]
pub struct HistoryParams {
    pub definition: LeaveDefinition,
    pub inactive_months: i32,
    /// Whole clients whose history the models learn from (a seeded sample above this).
    pub sample_clients: usize,
}

/// When a client started and left, as month indices ([`month_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub start: Option<i32>,
    pub left: Option<i32>,
}

pub struct History {
    /// The definition in force (never `Auto`).
    pub definition: LeaveDefinition,
    pub inactive_months: i32,
    /// First and last month of the data.
    pub first_month: i32,
    pub last_month: i32,
    /// Every client's contract_end as a day number, in feature-table order.
    pub contract_end: Vec<Option<i32>>,
    /// The sampled clients' tables, without the validation's row keys.
    pub sample: CleanTables,
    /// Their ids and lifecycles, in client_id order (the order of every snapshot's rows).
    pub sample_ids: Vec<String>,
    pub lifecycles: Vec<Lifecycle>,
    /// Per sampled client, the months with an invoice or logged work, ascending.
    pub active: Vec<Vec<i32>>,
    pub sampled: usize,
    pub clients: usize,
    pub features: FeatureParams,
}

fn dates_as_days(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<i32>>> {
    Ok(df.column(name)?.cast(&DataType::Int32)?.i32()?.iter().collect())
}

/// Months without invoice or work after which a client has lapsed: `inactive_months`, or
/// longer for a client who has been silent longer between invoices before (billed
/// quarterly or once a year): that gap and one month more.
pub fn lapse_months(inactive_months: i32, interval_days: f64) -> i32 {
    let usual = if interval_days.is_finite() && interval_days > 0.0 {
        (interval_days / 30.436875).ceil() as i32 + 1
    } else {
        0
    };
    inactive_months.max(usual).min(SILENT_CAP as i32)
}

/// Who is still a client at a snapshot, by the definition in force.
pub fn still_client(
    definition: LeaveDefinition,
    lapse_after: i32,
    silent: f64,
    started: bool,
    left_by_then: bool,
) -> bool {
    started
        && !left_by_then
        && match definition {
            LeaveDefinition::ContractEnd => true,
            _ => !(silent >= lapse_after as f64),
        }
}

/// A feature of the table as f64, NaN where missing (or absent).
pub fn column_f64(table: &FeatureTable, name: &str) -> Vec<f64> {
    // One copy, chunk by chunk: filling the nulls, joining the chunks and copying out
    // each took a pass of its own over every feature of every client.
    let read = || -> Option<Vec<f64>> {
        let c = table.df.column(name).ok()?.cast(&DataType::Float64).ok()?;
        let ca = c.f64().ok()?;
        let mut out = Vec::with_capacity(ca.len());
        for arr in ca.downcast_iter() {
            if arr.validity().is_none_or(|v| v.unset_bits() == 0) {
                out.extend_from_slice(arr.values());
            } else {
                out.extend(arr.iter().map(|v| v.copied().unwrap_or(f64::NAN)));
            }
        }
        Some(out)
    };
    read().unwrap_or_else(|| vec![f64::NAN; table.df.height()])
}

/// Which clients of the feature table are still served at its snapshot: contract_end
/// not passed (that definition), or an invoice or work month within the last
/// `inactive_months` (lapse).
pub fn served_at(
    table: &FeatureTable,
    definition: LeaveDefinition,
    inactive_months: i32,
    contract_end: &[Option<i32>],
) -> Vec<bool> {
    let s = days(table.snapshot);
    let n = table.df.height();
    let silent = column_f64(table, "silent_months");
    let interval = column_f64(table, "longest_invoice_gap_days");
    (0..n)
        .map(|i| {
            let ended = contract_end.get(i).copied().flatten().is_some_and(|e| e < s);
            let left = definition == LeaveDefinition::ContractEnd && ended;
            still_client(
                definition,
                lapse_months(inactive_months, interval[i]),
                silent[i],
                true,
                left,
            )
        })
        .collect()
}

impl History {
    /// Whether sampled client `i`, a client at the end of month `t`, left within the
    /// `horizon` months after it; None while the data does not show it yet. With a
    /// contract end, the contract ended in those months; with a lapse, the client had no
    /// invoice and no work in them (what a firm without contracts can see by then).
    pub fn outcome(&self, i: usize, t: i32, horizon: i32) -> Option<bool> {
        if t + horizon > self.last_month {
            return None;
        }
        Some(match self.definition {
            LeaveDefinition::ContractEnd => self
                .lifecycles
                .get(i)
                .is_some_and(|lc| lc.left.is_some_and(|l| l > t && l <= t + horizon)),
            _ => self.active.get(i).is_none_or(|months| {
                let next = months.partition_point(|&m| m <= t);
                months.get(next).is_none_or(|&m| m > t + horizon)
            }),
        })
    }

    /// The clients of today's feature table still served at the snapshot.
    pub fn served(&self, table: &FeatureTable) -> Vec<bool> {
        served_at(table, self.definition, self.inactive_months, &self.contract_end)
    }
}

/// The rows dated up to the end of day `until`: later invoices and work months are
/// dropped, later payments and contract ends are not known yet.
pub fn as_of(t: &CleanTables, until: i32) -> PolarsResult<CleanTables> {
    let day = |c: &str| col(c).cast(DataType::Int32);
    let hide_later = |c: &str| {
        when(day(c).gt(lit(until)))
            .then(lit(NULL).cast(DataType::Date))
            .otherwise(col(c))
            .alias(c)
    };
    let clients = t
        .clients
        .clone()
        .lazy()
        .with_column(hide_later("contract_end"))
        .collect()?;
    let billing = t
        .billing
        .clone()
        .lazy()
        .filter(day("invoice_date").lt_eq(lit(until)))
        .with_column(hide_later("paid_date"))
        .collect()?;
    let mut optional = Vec::new();
    for (table, df) in &t.optional {
        let df = match table {
            Table::Activity => df.clone().lazy().filter(day("month").lt_eq(lit(until))).collect()?,
            _ => df.clone(),
        };
        optional.push((*table, df));
    }
    Ok(CleanTables {
        clients,
        billing,
        optional,
        absent: t.absent.clone(),
    })
}

/// The features of the sampled clients as of the end of `month`.
pub fn snapshot(h: &History, month: i32) -> Result<FeatureTable, HistoryError> {
    let end = month_end(month);
    let tables = as_of(&h.sample, days(end))?;
    let params = FeatureParams {
        snapshot: Some(end),
        ..h.features.clone()
    };
    Ok(features::compute(&tables, &params)?)
}

/// A month index from a day-number column.
fn months(v: &[Option<i32>]) -> Vec<Option<i32>> {
    v.iter().map(|d| d.map(|d| month_of(features::from_days(d)))).collect()
}

/// The client rows to learn from: all of them, or a seeded sample of `n`.
fn sample_rows(clients: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut rows: Vec<u32> = (0..clients as u32).collect();
    if clients > n {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5A3D_11C7);
        rows.shuffle(&mut rng);
        rows.truncate(n);
        rows.sort_unstable();
    }
    rows
}

/// The rows of a keyed table (billing, activity) whose client is among `keep`, with
/// their client_id (validation keys them by the client's row in the clients table). The
/// row key stays: the monthly snapshots group and join by it, two to three times faster
/// than by the text id.
fn rows_of_clients(df: &DataFrame, keep: &[bool], ids_by_row: &HashMap<u32, &str>) -> PolarsResult<DataFrame> {
    let kept_row = |r: u32| keep.get(r as usize).copied().unwrap_or(false);
    if !df.get_column_names().iter().any(|c| c.as_str() == CLIENT_ROW) {
        let kept: HashSet<&str> = ids_by_row
            .iter()
            .filter(|(r, _)| kept_row(**r))
            .map(|(_, id)| *id)
            .collect();
        let mask: BooleanChunked = df
            .column("client_id")?
            .str()?
            .iter()
            .map(|r| Some(r.is_some_and(|r| kept.contains(r))))
            .collect();
        return df.filter(&mask);
    }
    let rows: Vec<Option<u32>> = df.column(CLIENT_ROW)?.cast(&DataType::UInt32)?.u32()?.iter().collect();
    let mask: BooleanChunked = rows.iter().map(|r| Some(r.is_some_and(kept_row))).collect();
    let ids: Vec<Option<&str>> = rows
        .iter()
        .filter(|r| r.is_some_and(kept_row))
        .map(|r| r.and_then(|r| ids_by_row.get(&r).copied()))
        .collect();
    let mut out = df.filter(&mask)?;
    let drop: Vec<String> = out
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| c == ROW || c == "client_id")
        .collect();
    out = out.drop_many(drop);
    out.with_column(Column::new("client_id".into(), ids))?;
    Ok(out)
}

/// Builds the history from the clean tables, before they are freed.
pub fn build(
    t: &CleanTables,
    table: &FeatureTable,
    params: &HistoryParams,
    features: &FeatureParams,
    seed: u64,
) -> Result<History, HistoryError> {
    let has_end = t.has(Table::Clients, "contract_end")
        && t.clients
            .column("contract_end")
            .map(|c| c.null_count() < c.len())
            .unwrap_or(false);
    let definition = match params.definition {
        LeaveDefinition::Auto if has_end => LeaveDefinition::ContractEnd,
        LeaveDefinition::Auto => LeaveDefinition::Lapse,
        d => d,
    };
    let snapshot = table.snapshot;
    // Rows after an earlier snapshot are not history yet.
    let trimmed;
    let t = if features::last_date(t).is_ok_and(|d| d > snapshot)
        || t.clients
            .column("contract_end")
            .ok()
            .and_then(|c| c.cast(&DataType::Int32).ok())
            .and_then(|c| c.i32().ok().and_then(|c| c.max()))
            .is_some_and(|e| e > days(snapshot))
    {
        trimmed = as_of(t, days(snapshot))?;
        &trimmed
    } else {
        t
    };
    let last_month = month_of(snapshot);
    let first_day = t
        .billing
        .column("invoice_date")?
        .cast(&DataType::Int32)?
        .i32()?
        .min()
        .unwrap_or(days(snapshot));
    let mut first_month = month_of(features::from_days(first_day));
    if let Some(a) = t.activity() {
        if let Some(m) = a.column("month")?.cast(&DataType::Int32)?.i32()?.min() {
            first_month = first_month.min(month_of(features::from_days(m)));
        }
    }

    // contract_end in feature-table order (both sorted by client_id).
    let ends = t
        .clients
        .clone()
        .lazy()
        .select([col("client_id"), col("contract_end")])
        .sort(["client_id"], Default::default())
        .collect()?;
    let contract_end = dates_as_days(&ends, "contract_end")?;

    let rows = sample_rows(t.clients.height(), params.sample_clients.max(1), seed);
    let chosen: HashSet<u32> = rows.iter().copied().collect();
    let mask: BooleanChunked = (0..t.clients.height() as u32)
        .map(|r| Some(chosen.contains(&r)))
        .collect();
    let clients = t.clients.filter(&mask)?;
    // Billing and activity rows name their client by its row in the clients file.
    let all_ids = t.clients.column("client_id")?.str()?.clone();
    let file_rows: Vec<Option<u32>> = match t.clients.column(ROW) {
        Ok(c) => c.cast(&DataType::UInt32)?.u32()?.iter().collect(),
        Err(_) => (0..t.clients.height() as u32).map(Some).collect(),
    };
    let ids_by_row: HashMap<u32, &str> = file_rows
        .iter()
        .zip(all_ids.iter())
        .filter_map(|(r, id)| Some(((*r)?, id?)))
        .collect();
    let mut keep = vec![false; file_rows.iter().flatten().max().map_or(0, |m| *m as usize + 1)];
    for r in rows
        .iter()
        .filter_map(|&p| file_rows.get(p as usize).copied().flatten())
    {
        if let Some(k) = keep.get_mut(r as usize) {
            *k = true;
        }
    }
    let billing = rows_of_clients(&t.billing, &keep, &ids_by_row)?;
    let mut optional = Vec::new();
    for (tb, df) in &t.optional {
        let df = match tb {
            Table::Activity => rows_of_clients(df, &keep, &ids_by_row)?,
            _ => df.clone(),
        };
        optional.push((*tb, df));
    }
    let sample = CleanTables {
        clients,
        billing,
        optional,
        absent: t.absent.clone(),
    };
    let (sample_ids, lifecycles) = lifecycles(&sample, definition, params.inactive_months, last_month)?;
    let active = active_months(&sample, &sample_ids)?;
    Ok(History {
        definition,
        inactive_months: params.inactive_months,
        first_month,
        last_month,
        contract_end,
        sampled: sample.clients.height(),
        clients: t.clients.height(),
        sample,
        sample_ids,
        lifecycles,
        active,
        features: features.clone(),
    })
}

/// Per client of `ids`, the distinct months with an invoice or logged work, ascending.
fn active_months(t: &CleanTables, ids: &[String]) -> PolarsResult<Vec<Vec<i32>>> {
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut active = vec![Vec::new(); ids.len()];
    let mut add = |df: &DataFrame, date: &str| -> PolarsResult<()> {
        let days = df.column(date)?.cast(&DataType::Int32)?;
        for (id, d) in df.column("client_id")?.str()?.iter().zip(days.i32()?.iter()) {
            if let (Some(&i), Some(d)) = (id.and_then(|id| index.get(id)), d) {
                active[i].push(month_of(features::from_days(d)));
            }
        }
        Ok(())
    };
    add(&t.billing, "invoice_date")?;
    if let Some(a) = t.activity() {
        add(a, "month")?;
    }
    for months in &mut active {
        months.sort_unstable();
        months.dedup();
    }
    Ok(active)
}

/// When each sampled client started and left, in client_id order.
fn lifecycles(
    t: &CleanTables,
    definition: LeaveDefinition,
    inactive_months: i32,
    last_month: i32,
) -> PolarsResult<(Vec<String>, Vec<Lifecycle>)> {
    let b = t.billing.clone().lazy().group_by([col("client_id")]).agg([
        col("invoice_date").cast(DataType::Int32).min().alias("__first"),
        col("invoice_date").cast(DataType::Int32).max().alias("__last"),
    ]);
    // The longest interval between invoice days, over the whole history (as the feature).
    let inv = col("__inv");
    let gaps = t
        .billing
        .clone()
        .lazy()
        .select([
            col("client_id"),
            col("invoice_date").cast(DataType::Int32).alias("__inv"),
        ])
        .sort(["client_id", "__inv"], Default::default())
        .select([
            col("client_id"),
            when(col("client_id").eq(col("client_id").shift(lit(1))))
                .then((inv.clone() - inv.shift(lit(1))).cast(DataType::Float64))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias("__gap"),
        ])
        .filter(col("__gap").gt(lit(0.0)))
        .group_by([col("client_id")])
        .agg([col("__gap").max().alias("__interval")]);
    let mut lf = t
        .clients
        .clone()
        .lazy()
        .left_join(b, col("client_id"), col("client_id"))
        .left_join(gaps, col("client_id"), col("client_id"));
    let has_work = t.activity().is_some();
    if let Some(a) = t.activity() {
        let w = a
            .clone()
            .lazy()
            .group_by([col("client_id")])
            .agg([col("month").cast(DataType::Int32).max().alias("__last_work")]);
        lf = lf.left_join(w, col("client_id"), col("client_id"));
    }
    let mut select = vec![
        col("client_id"),
        col("contract_start").cast(DataType::Int32).alias("__start"),
        col("contract_end").cast(DataType::Int32).alias("__end"),
        col("__first"),
        col("__last"),
        col("__interval").cast(DataType::Float64),
    ];
    if has_work {
        select.push(col("__last_work"));
    }
    let df = lf.select(select).sort(["client_id"], Default::default()).collect()?;
    let start = months(&dates_as_days(&df, "__start")?);
    // The month of the first day without a contract.
    let end_next: Vec<Option<i32>> = months(
        &dates_as_days(&df, "__end")?
            .iter()
            .map(|d| d.map(|d| d + 1))
            .collect::<Vec<_>>(),
    );
    let first = months(&dates_as_days(&df, "__first")?);
    let last = months(&dates_as_days(&df, "__last")?);
    let interval: Vec<f64> = df
        .column("__interval")?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect();
    let work = if has_work {
        months(&dates_as_days(&df, "__last_work")?)
    } else {
        vec![None; df.height()]
    };
    let ids: Vec<String> = df
        .column("client_id")?
        .str()?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect();
    let lcs = (0..df.height())
        .map(|i| {
            let start = start[i].or(first[i]);
            let lapse = lapse_months(inactive_months, interval[i]);
            let left = match definition {
                LeaveDefinition::ContractEnd => end_next[i],
                _ => {
                    let active = last[i].max(work[i]);
                    active.filter(|l| last_month - l >= lapse).map(|l| l + 1)
                }
            };
            Lifecycle { start, left }
        })
        .collect();
    Ok((ids, lcs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> i32 {
        days(chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    fn dates(name: &str, v: &[Option<i32>]) -> Column {
        Column::new(name.into(), v.to_vec()).cast(&DataType::Date).unwrap()
    }

    #[test]
    fn a_column_reads_as_f64_over_chunks_with_nulls_as_nan() {
        let mut a = Series::new("x".into(), &[Some(1i64), None]);
        a.append(&Series::new("x".into(), &[Some(3i64)])).unwrap();
        a.append(&Series::new("x".into(), &[Some(4i64), Some(5)])).unwrap();
        assert_eq!(a.n_chunks(), 3);
        let table = FeatureTable {
            df: DataFrame::new_infer_height(vec![a.into()]).unwrap(),
            snapshot: chrono::NaiveDate::from_ymd_opt(2025, 1, 31).unwrap(),
            enabled: Vec::new(),
            disabled: Vec::new(),
        };
        let v = column_f64(&table, "x");
        assert_eq!(v.len(), 5);
        assert!(v[1].is_nan());
        assert_eq!([v[0], v[2], v[3], v[4]], [1.0, 3.0, 4.0, 5.0]);
        // An absent feature is missing for every client.
        assert!(column_f64(&table, "y").iter().all(|x| x.is_nan()));
    }

    /// Three clients; invoices (day, amount, paid after days) and work months (month
    /// offset from 2023-01, vouchers, accountant).
    fn tables(
        invoices: &[(usize, i32, f64, Option<i32>)],
        work: &[(usize, i32, f64, usize)],
        end: Option<i32>,
    ) -> CleanTables {
        let ids = ["A", "B", "C"];
        let mut clients = df!(
            "client_id" => ids,
            "name" => ["a", "b", "c"],
            "client_type" => ["enterprise"; 3],
            "taxpayer_type" => ["general"; 3],
            "industry" => ["x"; 3],
            "province" => ["p"; 3],
            "city" => ["c"; 3],
            "international" => ["false"; 3],
            "employees" => [5.0; 3],
            "annual_revenue" => [1e6; 3],
            "services" => ["bookkeeping"; 3],
            "accountant" => ["王"; 3],
            "monthly_fee" => [300.0; 3],
        )
        .unwrap();
        clients
            .with_column(dates("contract_start", &[Some(day(2022, 6, 1)); 3]))
            .unwrap();
        clients.with_column(dates("contract_end", &[end, None, None])).unwrap();
        let mut billing = df!(
            "client_id" => invoices.iter().map(|i| ids[i.0]).collect::<Vec<_>>(),
            "amount" => invoices.iter().map(|i| i.2).collect::<Vec<_>>(),
            "service" => vec!["bookkeeping"; invoices.len()],
        )
        .unwrap();
        billing
            .with_column(dates(
                "invoice_date",
                &invoices.iter().map(|i| Some(i.1)).collect::<Vec<_>>(),
            ))
            .unwrap();
        billing
            .with_column(dates(
                "due_date",
                &invoices.iter().map(|i| Some(i.1 + 15)).collect::<Vec<_>>(),
            ))
            .unwrap();
        billing
            .with_column(dates(
                "paid_date",
                &invoices.iter().map(|i| i.3.map(|p| i.1 + p)).collect::<Vec<_>>(),
            ))
            .unwrap();
        let first = |k: i32| {
            let d = chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
            days(d.checked_add_months(chrono::Months::new(k as u32)).unwrap())
        };
        let mut activity = df!(
            "client_id" => work.iter().map(|w| ids[w.0]).collect::<Vec<_>>(),
            "vouchers" => work.iter().map(|w| w.2).collect::<Vec<_>>(),
            "filings" => vec![1.0; work.len()],
            "hours" => vec![2.0; work.len()],
            "tickets" => work.iter().map(|w| w.2 % 3.0).collect::<Vec<_>>(),
            "late_documents" => work.iter().map(|w| (w.2 as i64 % 2) as f64).collect::<Vec<_>>(),
            "accountant" => work.iter().map(|w| ["王", "李"][w.3]).collect::<Vec<_>>(),
        )
        .unwrap();
        activity
            .with_column(dates(
                "month",
                &work.iter().map(|w| Some(first(w.1))).collect::<Vec<_>>(),
            ))
            .unwrap();
        CleanTables {
            clients,
            billing,
            optional: vec![(Table::Activity, activity)],
            absent: vec![],
        }
    }

    fn same(a: &DataFrame, b: &DataFrame) -> Result<(), String> {
        if a.get_column_names() != b.get_column_names() || a.height() != b.height() {
            return Err("shapes differ".into());
        }
        for c in a.columns() {
            let name = c.name().as_str();
            if c.dtype() == &DataType::Float64 {
                let (x, y) = (c.f64().unwrap(), b.column(name).unwrap().f64().unwrap());
                for (p, q) in x.iter().zip(y.iter()) {
                    // Sums over more (masked) rows may round differently in the last bit.
                    let close = match (p, q) {
                        (Some(p), Some(q)) => (p.is_nan() && q.is_nan()) || (p - q).abs() <= 1e-9 * (1.0 + p.abs()),
                        (None, None) => true,
                        _ => false,
                    };
                    if !close {
                        return Err(format!("{name}: {p:?} vs {q:?}"));
                    }
                }
                continue;
            }
            let (x, y) = (
                c.cast(&DataType::String).unwrap(),
                b.column(name).unwrap().cast(&DataType::String).unwrap(),
            );
            let (x, y) = (x.str().unwrap(), y.str().unwrap());
            for (p, q) in x.iter().zip(y.iter()) {
                if p != q {
                    return Err(format!("{name}: {p:?} vs {q:?}"));
                }
            }
        }
        Ok(())
    }

    fn features_at(t: &CleanTables, s: i32) -> DataFrame {
        let params = FeatureParams {
            snapshot: Some(features::from_days(s)),
            hourly_cost: 100.0,
            long_term_months: 12,
        };
        features::compute(t, &params).unwrap().df
    }

    /// With a lapse, a client's outcome over h months is whether it had no invoice and no
    /// work month in them; a window past the end of the data has none yet.
    #[test]
    fn with_a_lapse_the_outcome_is_no_invoice_and_no_work_in_the_horizon() {
        // A: invoices in January and May; B: one in January, work in January to March and
        // in August; C: one invoice in January.
        let t = tables(
            &[
                (0, day(2023, 1, 10), 300.0, Some(5)),
                (0, day(2023, 5, 10), 300.0, Some(5)),
                (1, day(2023, 1, 10), 300.0, None),
                (2, day(2023, 1, 10), 300.0, None),
            ],
            &[(1, 0, 5.0, 0), (1, 1, 5.0, 0), (1, 2, 5.0, 0), (1, 7, 5.0, 0)],
            None,
        );
        let fp = FeatureParams {
            snapshot: Some(features::from_days(day(2023, 12, 31))),
            hourly_cost: 100.0,
            long_term_months: 12,
        };
        let table = features::compute(&t, &fp).unwrap();
        let params = HistoryParams {
            definition: LeaveDefinition::Lapse,
            inactive_months: 3,
            sample_clients: 10,
        };
        let h = build(&t, &table, &params, &fp, 1).unwrap();
        assert_eq!(h.sample_ids, ["A", "B", "C"]);
        let jan = month_of(features::from_days(day(2023, 1, 1)));
        assert_eq!(h.active[1], [jan, jan + 1, jan + 2, jan + 7]);
        assert_eq!(h.outcome(0, jan, 3), Some(true));
        assert_eq!(h.outcome(0, jan, 4), Some(false));
        assert_eq!(h.outcome(1, jan, 3), Some(false));
        assert_eq!(h.outcome(1, jan + 2, 4), Some(true));
        assert_eq!(h.outcome(1, jan + 2, 5), Some(false));
        assert_eq!(h.outcome(2, jan + 8, 3), Some(true));
        assert_eq!(h.outcome(2, jan + 9, 3), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        /// Rows dated after t never change a client's features at t: neither when they
        /// are in the tables features are computed from, nor when appended later.
        #[test]
        fn rows_after_the_snapshot_never_change_features(
            invoices in prop::collection::vec((0usize..3, 0i32..900, 50.0f64..3000.0, prop::option::of(0i32..120)), 1..40),
            work in prop::collection::vec((0usize..3, 0i32..30, 0.0f64..80.0, 0usize..2), 0..40),
            later in prop::collection::vec((0usize..3, 1i32..200, 50.0f64..3000.0, prop::option::of(0i32..60)), 1..10),
            end in prop::option::of(0i32..900),
            at in 30i32..880,
        ) {
            let base = day(2023, 1, 1);
            let shift = |v: &[(usize, i32, f64, Option<i32>)], by: i32| v.iter().map(|i| (i.0, i.1 + by, i.2, i.3)).collect::<Vec<_>>();
            let invoices = shift(&invoices, base);
            let s = base + at;
            // Work months are 2023-01 + k; keep them distinct per client.
            let mut seen = std::collections::HashSet::new();
            let work: Vec<_> = work.into_iter().filter(|w| seen.insert((w.0, w.1))).collect();
            let t = tables(&invoices, &work, end.map(|e| base + e));
            let up_to = as_of(&t, s).unwrap();
            let full = features_at(&t, s);
            prop_assert!(same(&full, &features_at(&up_to, s)).is_ok(), "{:?}", same(&full, &features_at(&up_to, s)));
            // Appending invoices dated after s (paid or not) changes nothing at s.
            let more: Vec<_> = invoices.iter().cloned().chain(shift(&later, s)).collect();
            let t2 = tables(&more, &work, end.map(|e| base + e));
            prop_assert!(same(&full, &features_at(&as_of(&t2, s).unwrap(), s)).is_ok());
            prop_assert!(same(&full, &features_at(&t2, s)).is_ok(), "{:?}", same(&full, &features_at(&t2, s)));
        }
    }
}
