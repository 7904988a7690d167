//! Per-client aggregates of rows that come sorted by client, computed over each client's
//! run of rows in place. Over such rows polars' group-by slices a new array out of the
//! column for every client and every aggregate: at 1M clients that was a third of the
//! features stage's time, and as much of the monthly churn snapshots'. The results are
//! polars' to the bit (its order of additions for sums and means, its variance and its
//! median), which the tests check against polars' own group-by.

use polars::prelude::*;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Sum,
    Mean,
    Min,
    Max,
    /// Values that are not null, as Float64.
    Count,
    /// Sample standard deviation (ddof 1).
    Std,
    Median,
}

/// One per-client aggregate: its input column, how, and the name of the result.
#[derive(Debug, Clone, Copy)]
pub struct Agg {
    pub input: &'static str,
    pub how: How,
    pub name: &'static str,
}

impl Agg {
    pub const fn new(input: &'static str, how: How, name: &'static str) -> Agg {
        Agg { input, how, name }
    }

    /// The same aggregate as polars' expression, for rows not sorted by client.
    pub fn expr(&self) -> Expr {
        let c = col(self.input);
        match self.how {
            How::Sum => c.sum(),
            How::Mean => c.mean(),
            How::Min => c.min(),
            How::Max => c.max(),
            How::Count => c.count().cast(DataType::Float64),
            How::Std => c.std(1),
            How::Median => c.median(),
        }
        .alias(self.name)
    }
}

/// One row per client of `df`: in place when the UInt32 `key` is flagged sorted ascending
/// and has no nulls (validation flags the client row key) and the inputs are Float64
/// (Int32 too for minima and maxima); otherwise by polars' group-by.
pub fn aggregate(df: DataFrame, key: &str, aggs: &[Agg]) -> PolarsResult<DataFrame> {
    if !in_place(&df, key, aggs)? {
        return by_polars(df, key, aggs);
    }
    let keys = df.column(key)?.as_materialized_series().rechunk();
    let k = keys.u32()?.cont_slice()?;
    // The flag is trusted only as far as the keys bear it out: a client split over two
    // runs would be two rows.
    if k.windows(2).any(|w| w[1] < w[0]) {
        let mut df = df;
        df.apply(key, |c| {
            let mut c = c.clone();
            c.set_sorted_flag(polars::series::IsSorted::Not);
            c
        })?;
        return by_polars(df, key, aggs);
    }
    let mut bounds: Vec<usize> = (0..k.len()).filter(|&i| i == 0 || k[i] != k[i - 1]).collect();
    let firsts: Vec<u32> = bounds.iter().map(|&i| k[i]).collect();
    bounds.push(k.len());
    let mut columns = vec![Column::new(key.into(), firsts)];
    // Each input once as Float64, however many aggregates read it (vouchers: four).
    let mut inputs: Vec<&str> = aggs.iter().map(|a| a.input).collect();
    inputs.sort_unstable();
    inputs.dedup();
    let floats: Vec<(&str, DataType, Series)> = inputs
        .par_iter()
        .map(|&n| {
            let c = df.column(n)?;
            Ok((
                n,
                c.dtype().clone(),
                c.as_materialized_series().cast(&DataType::Float64)?.rechunk(),
            ))
        })
        .collect::<PolarsResult<_>>()?;
    let values: Vec<(&str, &DataType, Values)> = floats
        .iter()
        .map(|(n, dtype, s)| Ok((*n, dtype, Values::of(s.f64()?))))
        .collect::<PolarsResult<_>>()?;
    let results: Vec<Column> = aggs
        .par_iter()
        .map(|a| {
            let (_, dtype, x) = values
                .iter()
                .find(|(n, _, _)| *n == a.input)
                .ok_or_else(|| polars_err!(ColumnNotFound: "{}", a.input))?;
            one(x, dtype, a, &bounds)
        })
        .collect::<PolarsResult<_>>()?;
    columns.extend(results);
    DataFrame::new_infer_height(columns)
}

fn by_polars(df: DataFrame, key: &str, aggs: &[Agg]) -> PolarsResult<DataFrame> {
    let exprs: Vec<Expr> = aggs.iter().map(Agg::expr).collect();
    df.lazy().group_by([col(key)]).agg(exprs).collect()
}

fn in_place(df: &DataFrame, key: &str, aggs: &[Agg]) -> PolarsResult<bool> {
    let k = df.column(key)?;
    if df.height() == 0
        || k.dtype() != &DataType::UInt32
        || k.null_count() > 0
        || k.is_sorted_flag() != polars::series::IsSorted::Ascending
    {
        return Ok(false);
    }
    for a in aggs {
        let ok = matches!(
            (df.column(a.input)?.dtype(), a.how),
            (DataType::Float64, _) | (DataType::Int32, How::Min | How::Max)
        );
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A Float64 column's values and, when it has nulls, which are not null.
struct Values<'a> {
    v: &'a [f64],
    valid: Option<Vec<bool>>,
}

impl Values<'_> {
    fn of(ca: &Float64Chunked) -> Values<'_> {
        Values {
            v: ca.downcast_iter().next().map_or(&[][..], |a| a.values().as_slice()),
            valid: (ca.null_count() > 0).then(|| ca.iter().map(|v| v.is_some()).collect()),
        }
    }

    fn get(&self, i: usize) -> Option<f64> {
        match &self.valid {
            Some(b) if !b.get(i).copied().unwrap_or(false) => None,
            _ => self.v.get(i).copied(),
        }
    }

    /// The value, a null as zero (as polars sums).
    fn zeroed(&self, i: usize) -> f64 {
        self.get(i).unwrap_or(0.0)
    }

    fn non_null(&self, r: std::ops::Range<usize>) -> impl Iterator<Item = f64> + '_ {
        r.filter_map(|i| self.get(i))
    }
}

/// One aggregate over every client's run `bounds[g]..bounds[g + 1]`.
fn one(x: &Values, dtype: &DataType, a: &Agg, bounds: &[usize]) -> PolarsResult<Column> {
    let runs = bounds.windows(2).map(|w| w[0]..w[1]);
    let name: PlSmallStr = a.name.into();
    Ok(match a.how {
        How::Sum => Column::new(name, runs.map(|r| sum(x, r)).collect::<Vec<f64>>()),
        How::Mean => Column::new(name, runs.map(|r| mean(x, r)).collect::<Vec<Option<f64>>>()),
        How::Count => Column::new(name, runs.map(|r| x.non_null(r).count() as f64).collect::<Vec<f64>>()),
        How::Std => {
            let mut buf = Vec::new();
            Column::new(name, runs.map(|r| std(x, r, &mut buf)).collect::<Vec<Option<f64>>>())
        }
        How::Median => {
            let mut buf = Vec::new();
            Column::new(name, runs.map(|r| median(x, r, &mut buf)).collect::<Vec<Option<f64>>>())
        }
        How::Min | How::Max => {
            let max = a.how == How::Max;
            let pick = |r| x.non_null(r).reduce(|p, q| if max { p.max(q) } else { p.min(q) });
            Column::new(name, runs.map(pick).collect::<Vec<Option<f64>>>()).cast(dtype)?
        }
    })
}

/// polars' group sum: a client's one value as it is, a longer run's array sum added to
/// polars' zero.
fn sum(x: &Values, r: std::ops::Range<usize>) -> f64 {
    match r.len() {
        0 => 0.0,
        1 => x.zeroed(r.start),
        _ => 0.0 + array_sum(x, r),
    }
}

/// polars' float sum of one array, its nulls as zeros: the first `len % 128` values one
/// after the other, added to a pairwise sum of the 128-value blocks after them.
fn array_sum(x: &Values, r: std::ops::Range<usize>) -> f64 {
    let split = r.start + r.len() % BLOCK;
    let main_sum = if split < r.end { pairwise(x, split..r.end) } else { 0.0 };
    let rest_sum: f64 = (r.start..split).map(|i| x.zeroed(i)).sum();
    main_sum + rest_sum
}

const BLOCK: usize = 128;
const STRIPE: usize = 16;

fn pairwise(x: &Values, r: std::ops::Range<usize>) -> f64 {
    if r.len() == BLOCK {
        let mut acc = [0.0; STRIPE];
        for k in (r.start..r.end).step_by(STRIPE) {
            for (j, a) in acc.iter_mut().enumerate() {
                *a += x.zeroed(k + j);
            }
        }
        let mut width = STRIPE;
        while width > 4 {
            for j in 0..width / 2 {
                acc[j] += acc[width / 2 + j];
            }
            width /= 2;
        }
        return (acc[0] + acc[2]) + (acc[1] + acc[3]);
    }
    let mid = r.start + (r.len() / BLOCK / 2) * BLOCK;
    pairwise(x, r.start..mid) + pairwise(x, mid..r.end)
}

fn mean(x: &Values, r: std::ops::Range<usize>) -> Option<f64> {
    if r.len() == 1 {
        return x.get(r.start);
    }
    let n = x.non_null(r.clone()).count();
    if n == 0 {
        return None;
    }
    Some((-0.0 + array_sum(x, r)) / n as f64)
}

/// polars' variance: a state per 128 values that are not null, merged in order.
fn std(x: &Values, r: std::ops::Range<usize>, buf: &mut Vec<f64>) -> Option<f64> {
    if r.len() < 2 {
        return None;
    }
    buf.clear();
    buf.extend(x.non_null(r));
    // The array's state, merged from its 128-value chunks, then merged into an empty one.
    let mut state = Var::default();
    for chunk in buf.chunks(BLOCK) {
        let w = chunk.len() as f64;
        let mean = chunk.iter().fold(-0.0, |a, b| a + b) / w;
        let dp = chunk
            .iter()
            .map(|xi| (xi - mean) * (xi - mean))
            .fold(-0.0, |a, b| a + b);
        state.combine(Var { weight: w, mean, dp });
    }
    let mut total = Var::default();
    total.combine(state);
    if total.weight <= 1.0 {
        return None;
    }
    let var = total.dp / (total.weight - 1.0);
    Some(if var < 0.0 { 0.0 } else { var }.sqrt())
}

/// polars' running variance state: weight, mean and summed squared deviations.
#[derive(Default, Clone, Copy)]
struct Var {
    weight: f64,
    mean: f64,
    dp: f64,
}

impl Var {
    fn combine(&mut self, other: Var) {
        if other.weight == 0.0 {
            return;
        }
        let weight = self.weight + other.weight;
        let frac = other.weight / weight;
        let delta = other.mean - self.mean;
        let mean = self.mean + delta * frac;
        self.dp += other.dp + other.weight * (other.mean - mean) * delta;
        self.weight = weight;
        self.mean = mean;
    }
}

/// polars' median: linear interpolation between the middle values that are not null.
fn median(x: &Values, r: std::ops::Range<usize>, buf: &mut Vec<f64>) -> Option<f64> {
    buf.clear();
    buf.extend(x.non_null(r));
    if buf.is_empty() {
        return None;
    }
    buf.sort_unstable_by(f64::total_cmp);
    let at = (buf.len() - 1) as f64 * 0.5;
    let lo = at as usize;
    let lower = *buf.get(lo)?;
    if at.ceil() as usize == lo {
        return Some(lower);
    }
    let upper = *buf.get(lo + 1)?;
    if lower == upper {
        return Some(lower);
    }
    Some((at - lo as f64) * (upper - lower) + lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const ALL: [How; 7] = [
        How::Sum,
        How::Mean,
        How::Min,
        How::Max,
        How::Count,
        How::Std,
        How::Median,
    ];

    /// Clients with 0 to 300 rows (runs longer than polars' 128-value blocks), values
    /// of every size with nulls, a few runs of nulls only.
    fn rows(seed: u64) -> DataFrame {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let (mut key, mut x, mut days) = (Vec::new(), Vec::new(), Vec::new());
        for client in 0..400u32 {
            let n = match client % 10 {
                0 => rng.gen_range(129..300),
                1 => 1,
                2 => 2,
                _ => rng.gen_range(0..40),
            };
            let all_null = client % 37 == 5;
            for _ in 0..n {
                key.push(client);
                let v = rng.gen_range(-1.0e4..1.0e6) * 10f64.powi(rng.gen_range(-6..3));
                x.push((!all_null && !rng.gen_bool(0.15)).then_some(v));
                days.push((!all_null && !rng.gen_bool(0.1)).then(|| rng.gen_range(17_000..20_000)));
            }
        }
        let mut k = Column::new("k".into(), key);
        k.set_sorted_flag(polars::series::IsSorted::Ascending);
        DataFrame::new_infer_height(vec![k, Column::new("x".into(), x), Column::new("d".into(), days)]).unwrap()
    }

    #[test]
    fn runs_give_polars_group_by_to_the_bit() {
        for seed in [1, 2, 3] {
            let df = rows(seed);
            let mut aggs: Vec<Agg> = Vec::new();
            let names = ["sum", "mean", "min", "max", "count", "std", "median"];
            for (how, name) in ALL.iter().zip(names) {
                aggs.push(Agg::new("x", *how, name));
            }
            aggs.push(Agg::new("d", How::Min, "dmin"));
            aggs.push(Agg::new("d", How::Max, "dmax"));
            assert!(in_place(&df, "k", &aggs).unwrap());
            let ours = aggregate(df.clone(), "k", &aggs).unwrap();
            // polars' own, the key not flagged sorted (it then groups by hash).
            let exprs: Vec<Expr> = aggs.iter().map(Agg::expr).collect();
            let theirs = df
                .clone()
                .lazy()
                .group_by([col("k")])
                .agg(exprs.clone())
                .sort(["k"], Default::default())
                .collect()
                .unwrap();
            // And over the sorted key, as before (slices).
            let sliced = df.lazy().group_by([col("k")]).agg(exprs).collect().unwrap();
            assert_eq!(ours.height(), theirs.height());
            for want in [&theirs, &sliced] {
                for c in ours.get_column_names() {
                    let (a, b) = (ours.column(c).unwrap(), want.column(c).unwrap());
                    assert_eq!(a.dtype(), b.dtype(), "{c}");
                    let a = a.as_materialized_series().cast(&DataType::Float64).unwrap();
                    let b = b.as_materialized_series().cast(&DataType::Float64).unwrap();
                    for (i, (x, y)) in a.f64().unwrap().iter().zip(b.f64().unwrap().iter()).enumerate() {
                        assert_eq!(
                            x.map(f64::to_bits),
                            y.map(f64::to_bits),
                            "{c}, client {i}: {x:?} against {y:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn unsorted_or_other_inputs_go_to_polars() {
        let mut df = rows(4);
        let aggs = [Agg::new("x", How::Sum, "sum")];
        assert!(in_place(&df, "k", &aggs).unwrap());
        assert!(!in_place(&df, "k", &[Agg::new("d", How::Sum, "dsum")]).unwrap());
        df.apply("k", |c| {
            let mut c = c.clone();
            c.set_sorted_flag(polars::series::IsSorted::Not);
            c
        })
        .unwrap();
        assert!(!in_place(&df, "k", &aggs).unwrap());
        // Still one row per client, by polars.
        let clients = df.column("k").unwrap().n_unique().unwrap();
        let out = aggregate(df.clone(), "k", &aggs).unwrap();
        assert_eq!(out.height(), clients);
        // Flagged sorted but not, each client in two runs: the keys are checked, and
        // polars groups them by hash.
        let mut shuffled = df.vstack(&df).unwrap();
        shuffled
            .apply("k", |c| {
                let mut c = c.clone();
                c.set_sorted_flag(polars::series::IsSorted::Ascending);
                c
            })
            .unwrap();
        assert!(in_place(&shuffled, "k", &aggs).unwrap());
        assert_eq!(aggregate(shuffled, "k", &aggs).unwrap().height(), clients);
    }
}
