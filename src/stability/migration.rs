//! Migration: who moved between two runs (高→中), and why. Compares two runs' labels
//! and features client by client: movers, new and departed clients each get a row with
//! the three features that changed most; a transition table counts every pair of
//! (previous, current) segment, and of churn risk band (a band change alone does not
//! make a client a mover: risk moves a little with every refit).

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;
use thiserror::Error;

use crate::columns::{Catalogue, OutputColumn, Tracked};
use crate::format::human;
use crate::model::SegmentModel;

#[derive(Debug, Error)]
pub enum MigrationError {
    #[error("cannot read {file}: {message}")]
    Read { file: String, message: String },
    #[error("cannot compare runs: {0}")]
    Polars(#[from] PolarsError),
}

/// Counts of clients from each previous segment to each current one.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// transitions.csv's kind ("value", "churn").
    pub kind: String,
    /// The column counted, as declared (its category words name the rows).
    pub column: OutputColumn,
    /// The chart's title, (English, Chinese).
    pub title: (String, String),
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub counts: Vec<Vec<usize>>,
}

pub struct Migration {
    /// One row per client that moved, arrived or left.
    pub rows: DataFrame,
    /// kind, from, to, clients, share_of_from.
    pub transitions: DataFrame,
    pub matrices: Vec<Matrix>,
}

/// What happened to a client between two runs (migration.csv's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStatus {
    /// In another value tier or behaviour segment than before.
    Moved,
    /// Not in the previous run.
    New,
    /// Not in this run.
    Departed,
    Unchanged,
}

impl ClientStatus {
    pub const ALL: [ClientStatus; 4] = [
        ClientStatus::Moved,
        ClientStatus::New,
        ClientStatus::Departed,
        ClientStatus::Unchanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Moved => "moved",
            ClientStatus::New => "new",
            ClientStatus::Departed => "departed",
            ClientStatus::Unchanged => "unchanged",
        }
    }
}

impl Migration {
    /// Clients of a status in migration.csv.
    pub fn count(&self, status: ClientStatus) -> usize {
        let Ok(column) = self.rows.column("status").and_then(|c| c.str().cloned()) else {
            return 0;
        };
        column.iter().filter(|v| *v == Some(status.as_str())).count()
    }
}

pub const NEW: &str = "(new)";
pub const DEPARTED: &str = "(departed)";

pub fn read_parquet(path: &Path) -> Result<DataFrame, MigrationError> {
    let err = |message: String| MigrationError::Read {
        file: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    ParquetReader::new(file).finish().map_err(|e| err(e.to_string()))
}

fn text_col(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    match df.column(name).and_then(|c| c.cast(&DataType::String)) {
        Ok(c) => c
            .str()
            .map(|s| s.iter().map(|v| v.map(String::from)).collect())
            .unwrap_or_default(),
        Err(_) => vec![None; df.height()],
    }
}

/// client_id -> segment id in `column` of a labels table.
pub fn labels_by_client(labels: &DataFrame, column: &str) -> HashMap<String, String> {
    text_col(labels, "client_id")
        .into_iter()
        .zip(text_col(labels, column))
        .filter_map(|(id, seg)| Some((id?, seg?)))
        .collect()
}

/// Feature values per client for the given features (missing ones NaN).
fn feature_map(df: &DataFrame, names: &[String]) -> HashMap<String, Vec<f64>> {
    let ids = text_col(df, "client_id");
    let cols: Vec<Vec<f64>> = names
        .iter()
        .map(|n| match df.column(n).and_then(|c| c.cast(&DataType::Float64)) {
            Ok(c) => c
                .f64()
                .map(|s| s.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
                .unwrap_or_default(),
            Err(_) => vec![f64::NAN; df.height()],
        })
        .collect();
    ids.into_iter()
        .enumerate()
        .filter_map(|(i, id)| id.map(|id| (id, cols.iter().map(|c| c.get(i).copied().unwrap_or(f64::NAN)).collect())))
        .collect()
}

/// Compares previous and current labels (labels tables) with their feature tables.
/// `models` give the features to compare and how to scale their changes; `tracked` the
/// columns whose changes are counted, as the analyses declared them.
pub fn compare(
    prev_labels: &DataFrame,
    prev_features: &DataFrame,
    cur_labels: &DataFrame,
    cur_features: &DataFrame,
    models: &[&SegmentModel],
    tracked: &[(&OutputColumn, &Tracked)],
) -> Result<Migration, MigrationError> {
    // A column the run lacks (an analysis that was skipped) compares as empty.
    let maybe = |df: &DataFrame, name: &str| -> Expr {
        match df.column(name) {
            Ok(_) => col(name).cast(DataType::String),
            Err(_) => lit(NULL).cast(DataType::String),
        }
    };
    let key = |df: &DataFrame, prefix: &str| -> LazyFrame {
        let mut select = vec![col("client_id")];
        for (c, t) in tracked {
            select.push(maybe(df, &c.name).alias(format!("{prefix}{}", c.name)));
            if let Some(n) = &t.names {
                select.push(maybe(df, n).alias(format!("{prefix}{n}")));
            }
        }
        select.push(lit(true).alias(format!("{prefix}present")));
        df.clone().lazy().select(select)
    };
    let moved = tracked
        .iter()
        .filter(|(_, t)| t.moves)
        .map(|(c, _)| col(format!("previous_{}", c.name)).neq_missing(col(c.name.as_str())))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false));
    let joined = key(prev_labels, "previous_")
        .join(
            key(cur_labels, ""),
            [col("client_id")],
            [col("client_id")],
            JoinArgs::new(JoinType::Full).with_coalesce(JoinCoalesce::CoalesceColumns),
        )
        .with_column(
            when(col("previous_present").is_null())
                .then(lit(ClientStatus::New.as_str()))
                .when(col("present").is_null())
                .then(lit(ClientStatus::Departed.as_str()))
                .when(moved)
                .then(lit(ClientStatus::Moved.as_str()))
                .otherwise(lit(ClientStatus::Unchanged.as_str()))
                .alias("status"),
        )
        .sort(["client_id"], Default::default())
        .collect()?;

    let mut transitions = Vec::new();
    let mut matrices = Vec::new();
    for (column, t) in tracked {
        let kind = t.kind.as_str();
        let c = column.name.as_str();
        let p = format!("previous_{c}");
        if text_col(&joined, c)
            .iter()
            .chain(text_col(&joined, &p).iter())
            .all(Option::is_none)
        {
            continue;
        }
        let t_df = transition_counts(&joined, kind, c)?;
        matrices.push(matrix(&t_df, column, t)?);
        transitions.push(t_df.lazy());
    }
    let transitions = if transitions.is_empty() {
        DataFrame::empty()
    } else {
        concat(transitions, UnionArgs::default())?.collect()?
    };

    // Only clients that crossed a boundary, arrived or left; with what changed most.
    let changed = joined
        .clone()
        .lazy()
        .filter(col("status").neq(lit(ClientStatus::Unchanged.as_str())))
        .collect()?;
    let top = top_changes(&text_col(&changed, "client_id"), prev_features, cur_features, models);
    // Segments first, then their names, then the other tracked columns.
    let mut select = vec![col("client_id"), col("status")];
    let pair = |name: &str| [col(format!("previous_{name}")), col(name)];
    for (c, _) in tracked.iter().filter(|(_, t)| t.moves) {
        select.extend(pair(&c.name));
    }
    for (_, t) in tracked.iter().filter(|(_, t)| t.moves) {
        if let Some(n) = &t.names {
            select.extend(pair(n));
        }
    }
    for (c, _) in tracked.iter().filter(|(_, t)| !t.moves) {
        select.extend(pair(&c.name));
    }
    let mut rows = changed.lazy().select(select).collect()?;
    for (i, column) in top.into_iter().enumerate() {
        rows.with_column(Column::new(format!("change_{}", i + 1).into(), column))?;
    }
    Ok(Migration {
        rows,
        transitions,
        matrices,
    })
}

/// Clients from each previous value of column `c` to each current one (new and
/// departed clients as their own rows), with the share of the previous value's clients.
fn transition_counts(joined: &DataFrame, kind: &str, c: &str) -> PolarsResult<DataFrame> {
    let p = format!("previous_{c}");
    Ok(joined
        .clone()
        .lazy()
        .select([
            lit(kind).alias("kind"),
            when(col("previous_present").is_null())
                .then(lit(NEW))
                .otherwise(col(p.as_str()))
                .alias("from"),
            when(col("present").is_null())
                .then(lit(DEPARTED))
                .otherwise(col(c))
                .alias("to"),
        ])
        .group_by([col("kind"), col("from"), col("to")])
        .agg([len().cast(DataType::Int64).alias("clients")])
        .with_column(
            (col("clients").cast(DataType::Float64)
                / col("clients").sum().over([col("from")])?.cast(DataType::Float64))
            .alias("share_of_from"),
        )
        .sort(["from", "to"], Default::default())
        .collect()?)
}

/// Per client listed: the three features that changed most (in standard deviations of
/// the model that clusters them), as "feature: before -> after".
fn top_changes(
    ids: &[Option<String>],
    prev_features: &DataFrame,
    cur_features: &DataFrame,
    models: &[&SegmentModel],
) -> [Vec<Option<String>>; 3] {
    let names: Vec<String> = models.iter().flat_map(|m| m.features.iter().cloned()).collect();
    let (before, after) = (feature_map(prev_features, &names), feature_map(cur_features, &names));
    let mut top: [Vec<Option<String>>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for id in ids {
        let (b, a) = match id {
            Some(id) => (before.get(id), after.get(id)),
            None => (None, None),
        };
        let mut deltas: Vec<(f64, String)> = Vec::new();
        let mut j = 0;
        for m in models {
            for (k, f) in m.features.iter().enumerate() {
                let (x, y) = (b.map_or(f64::NAN, |v| v[j]), a.map_or(f64::NAN, |v| v[j]));
                j += 1;
                if !(x.is_finite() && y.is_finite()) || deltas.iter().any(|(_, t)| t.starts_with(&format!("{f}:"))) {
                    continue;
                }
                let d = (m.scaler.z(k, y) - m.scaler.z(k, x)).abs();
                if d > 1e-9 {
                    deltas.push((d, format!("{f}: {} -> {}", human(x), human(y))));
                }
            }
        }
        deltas.sort_by(|p, q| q.0.total_cmp(&p.0));
        for (slot, column) in top.iter_mut().enumerate() {
            column.push(deltas.get(slot).map(|d| d.1.clone()));
        }
    }
    top
}

/// The transition counts of one tracked column as a from × to matrix.
fn matrix(t: &DataFrame, column: &OutputColumn, tracked: &Tracked) -> Result<Matrix, MigrationError> {
    let from = text_col(t, "from");
    let to = text_col(t, "to");
    let n: Vec<i64> = t.column("clients")?.i64()?.iter().map(|v| v.unwrap_or(0)).collect();
    let mut froms: Vec<String> = from.iter().flatten().cloned().collect();
    froms.sort();
    froms.dedup();
    let mut tos: Vec<String> = to.iter().flatten().cloned().collect();
    tos.sort();
    tos.dedup();
    let mut counts = vec![vec![0; tos.len()]; froms.len()];
    for ((f, g), n) in from.iter().zip(&to).zip(&n) {
        if let (Some(f), Some(g)) = (f, g) {
            let (a, b) = (froms.iter().position(|x| x == f), tos.iter().position(|x| x == g));
            if let (Some(a), Some(b)) = (a, b) {
                counts[a][b] = *n as usize;
            }
        }
    }
    Ok(Matrix {
        kind: tracked.kind.clone(),
        column: column.clone(),
        title: (tracked.en.clone(), tracked.zh.clone()),
        from: froms,
        to: tos,
        counts,
    })
}

/// Compares two finished run folders (as `clientseg diff` does).
pub fn compare_runs(a: &Path, b: &Path) -> Result<Migration, MigrationError> {
    let model = crate::model::Model::load(&b.join("model.json")).map_err(|e| MigrationError::Read {
        file: b.join("model.json").display().to_string(),
        message: e.to_string(),
    })?;
    let models: Vec<&SegmentModel> = model.segmentations.values().collect();
    let words = Catalogue::of_run(b).map_err(|message| MigrationError::Read {
        file: b.join("manifest.json").display().to_string(),
        message,
    })?;
    compare(
        &read_parquet(&a.join("labels.parquet"))?,
        &read_parquet(&a.join("features.parquet"))?,
        &read_parquet(&b.join("labels.parquet"))?,
        &read_parquet(&b.join("features.parquet"))?,
        &models,
        &words.tracked(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(rows: &[(&str, &str)]) -> DataFrame {
        DataFrame::new_infer_height(vec![
            Column::new("client_id".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            Column::new("value_tier".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            Column::new(
                "value_tier_en".into(),
                rows.iter().map(|r| format!("{} tier", r.1)).collect::<Vec<_>>(),
            ),
        ])
        .unwrap()
    }

    fn features(model: &SegmentModel, ids: &[&str]) -> DataFrame {
        let mut cols = vec![Column::new("client_id".into(), ids.to_vec())];
        for (k, f) in model.features.iter().enumerate() {
            cols.push(Column::new(
                f.as_str().into(),
                ids.iter()
                    .enumerate()
                    .map(|(i, _)| (i * 10 + k) as f64)
                    .collect::<Vec<_>>(),
            ));
        }
        DataFrame::new_infer_height(cols).unwrap()
    }

    #[test]
    fn movers_arrivals_and_departures_are_counted() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/model-v1/model-v1.json");
        let model = crate::model::Model::load(&path).unwrap();
        let value = model.segmentation("value").unwrap();
        // a stays, b moves V1 -> V2, c departs, d arrives.
        let prev = labels(&[("a", "V1"), ("b", "V1"), ("c", "V2")]);
        let cur = labels(&[("a", "V1"), ("b", "V2"), ("d", "V3")]);
        let v = OutputColumn::text("value_tier", "value tier", "价值层级")
            .tracked("value", "Value tiers", "价值层级")
            .moves("value_tier_en");
        let tracked = [(&v, v.tracked.as_ref().unwrap())];
        let m = compare(
            &prev,
            &features(value, &["a", "b", "c"]),
            &cur,
            &features(value, &["a", "b", "d"]),
            &[value],
            &tracked,
        )
        .unwrap();
        assert_eq!(m.count(ClientStatus::Moved), 1);
        assert_eq!(m.count(ClientStatus::New), 1);
        assert_eq!(m.count(ClientStatus::Departed), 1);
        assert_eq!(m.count(ClientStatus::Unchanged), 0, "unchanged clients are not listed");
        assert_eq!(m.rows.height(), 3);
        let value = m.matrices.iter().find(|x| x.kind == "value").unwrap();
        let total: usize = value.counts.iter().flatten().sum();
        assert_eq!(total, 4, "a, b, c and d each once: {value:?}");
        let at = |from: &str, to: &str| {
            let (i, j) = (
                value.from.iter().position(|f| f == from).unwrap(),
                value.to.iter().position(|t| t == to).unwrap(),
            );
            value.counts[i][j]
        };
        assert_eq!(
            (at("V1", "V1"), at("V1", "V2"), at("V2", DEPARTED), at(NEW, "V3")),
            (1, 1, 1, 1)
        );
        assert_eq!(labels_by_client(&cur, "value_tier")["b"], "V2");
    }
}
