//! A table an analysis declares ([`InputTable`]): found in the input folder by its name or
//! its Chinese name, its header row found among the first rows by the declared columns'
//! names, every cell read as text with its row number. Validation parses it.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::layout::{normalise, HEADER_SEARCH_ROWS};
use super::{all_rows, find_table_file, Encoding, IngestError, ROW};
use crate::schema::InputTable;

/// A declared table as read: text columns named as declared (absent optional ones
/// null), and `__row`, each row's number as a spreadsheet shows it.
pub struct DeclaredRaw {
    pub path: PathBuf,
    pub df: DataFrame,
}

/// Reads the declared table from `dir`; None when the folder has no file for it.
pub fn read_declared(dir: &Path, t: &InputTable, encoding: Encoding) -> Result<Option<DeclaredRaw>, IngestError> {
    let Some(path) = find_table_file(dir, &t.name).or_else(|| find_table_file(dir, &t.zh)) else {
        return Ok(None);
    };
    let rows = all_rows(&path, None, encoding)?;
    let matches = |row: &[String]| -> Vec<Option<usize>> {
        let cells: Vec<String> = row.iter().map(|c| normalise(c)).collect();
        t.columns
            .iter()
            .map(|c| {
                let (a, b) = (normalise(&c.name), normalise(&c.zh));
                cells.iter().position(|h| !h.is_empty() && (*h == a || *h == b))
            })
            .collect()
    };
    let header = rows
        .iter()
        .take(HEADER_SEARCH_ROWS)
        .enumerate()
        .map(|(i, r)| (i, matches(r)))
        .max_by_key(|(i, m)| (m.iter().flatten().count(), usize::MAX - i));
    let Some((h, found)) = header.filter(|(_, m)| m.iter().any(Option::is_some)) else {
        return Err(IngestError::Parse {
            path,
            message: format!(
                "no row among the first {HEADER_SEARCH_ROWS} reads as the {} table's header (looked for {})",
                t.name,
                t.columns
                    .iter()
                    .map(|c| format!("{} / {}", c.name, c.zh))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    };
    if let Some(missing) = t.columns.iter().zip(&found).find(|(c, f)| c.required && f.is_none()) {
        return Err(IngestError::Parse {
            path,
            message: format!(
                "the {} table needs the column '{}' ({}); the header row (row {}) has: {}",
                t.name,
                missing.0.name,
                missing.0.zh,
                h + 1,
                rows[h].join(", ")
            ),
        });
    }
    let data: Vec<(usize, &Vec<String>)> = rows
        .iter()
        .enumerate()
        .skip(h + 1)
        .filter(|(_, r)| r.iter().any(|c| !c.trim().is_empty()))
        .collect();
    let mut columns: Vec<Column> = t
        .columns
        .iter()
        .zip(&found)
        .map(|(c, f)| {
            let cells: Vec<Option<String>> = data
                .iter()
                .map(|(_, r)| {
                    f.and_then(|j| r.get(j))
                        .map(|v| v.trim().to_string())
                        .filter(|v| !v.is_empty())
                })
                .collect();
            Column::new(c.name.as_str().into(), cells)
        })
        .collect();
    columns.push(Column::new(
        ROW.into(),
        data.iter().map(|(i, _)| *i as i64 + 1).collect::<Vec<i64>>(),
    ));
    let df = DataFrame::new_infer_height(columns).map_err(|e| IngestError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(Some(DeclaredRaw { path, df }))
}
