//! A table an analysis declares ([`InputTable`]): found in the input folder by its name or
//! its Chinese name, its header row found among the first rows by the declared columns'
//! names, every cell read as text with its row number. Validation parses it.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::layout::{is_totals, normalise, HEADER_SEARCH_ROWS};
use super::{all_rows, find_table_file, Encoding, IngestError, ROW};
use crate::schema::InputTable;

/// A declared table as read: text columns named as declared (absent optional ones
/// null), and `__row`, each row's number as a spreadsheet shows it.
pub struct DeclaredRaw {
    pub path: PathBuf,
    pub df: DataFrame,
    /// Totals rows (合计, 小计, Total) below the header, skipped as the built-in tables' are.
    pub totals_skipped: usize,
}

/// A Parquet file's header and rows as text (numbers and dates as their text), so that
/// it is parsed by the same rules as a CSV or a worksheet.
fn parquet_rows(path: &Path) -> Result<Vec<Vec<String>>, IngestError> {
    let err = |e: PolarsError| IngestError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(IngestError::io(path))?;
    let df = ParquetReader::new(file).finish().map_err(err)?;
    let mut cells: Vec<StringChunked> = Vec::with_capacity(df.width());
    for c in df.columns() {
        let text = c.cast(&DataType::String).map_err(err)?;
        cells.push(text.str().map_err(err)?.rechunk().into_owned());
    }
    let mut rows = vec![df.get_column_names().iter().map(|n| n.to_string()).collect::<Vec<_>>()];
    for i in 0..df.height() {
        rows.push(cells.iter().map(|c| c.get(i).unwrap_or("").to_string()).collect());
    }
    Ok(rows)
}

/// Reads the declared table from `dir`; None when the folder has no file for it.
pub fn read_declared(dir: &Path, t: &InputTable, encoding: Encoding) -> Result<Option<DeclaredRaw>, IngestError> {
    let Some(path) = find_table_file(dir, &t.name).or_else(|| find_table_file(dir, &t.zh)) else {
        return Ok(None);
    };
    let rows = match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("parquet") => parquet_rows(&path)?,
        _ => all_rows(&path, None, encoding)?,
    };
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
    let filled: Vec<(usize, &Vec<String>)> = rows
        .iter()
        .enumerate()
        .skip(h + 1)
        .filter(|(_, r)| r.iter().any(|c| !c.trim().is_empty()))
        .collect();
    let totals = |r: &Vec<String>| r.iter().find(|c| !c.trim().is_empty()).is_some_and(|c| is_totals(c));
    let (data, skipped): (Vec<_>, Vec<_>) = filled.into_iter().partition(|(_, r)| !totals(r));
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
    Ok(Some(DeclaredRaw {
        path,
        df,
        totals_skipped: skipped.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{InputColumn, ValueKind};

    fn visits() -> InputTable {
        InputTable {
            name: "visits".into(),
            zh: "走访记录".into(),
            columns: vec![
                InputColumn::new("client_id", "客户编号", ValueKind::Text, true),
                InputColumn::new("visit_date", "走访日期", ValueKind::Date, true),
                InputColumn::new("minutes", "时长", ValueKind::Number, false),
            ],
            per_client: true,
        }
    }

    fn texts(df: &DataFrame, name: &str) -> Vec<Option<String>> {
        df.column(name)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.map(String::from))
            .collect()
    }

    #[test]
    fn a_chinese_csv_with_a_title_row_and_a_parquet_file_read_alike() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("走访记录.csv"),
            "2025年3月走访记录,,\n客户编号,走访日期,时长\nC1,2025/3/1,30\n,,\nC2,2025-03-02,\n合计,,30\n",
        )
        .unwrap();
        let csv = read_declared(dir.path(), &visits(), Encoding::Auto).unwrap().unwrap();
        assert_eq!(texts(&csv.df, "client_id"), [Some("C1".into()), Some("C2".into())]);
        assert_eq!(texts(&csv.df, "minutes"), [Some("30".into()), None]);
        let rows: Vec<i64> = csv.df.column(ROW).unwrap().i64().unwrap().into_no_null_iter().collect();
        assert_eq!(
            rows,
            [3, 5],
            "rows as a spreadsheet numbers them, the blank row skipped"
        );

        let other = tempfile::tempdir().unwrap();
        let mut df = DataFrame::new_infer_height(vec![
            Column::new("client_id".into(), ["C1", "C2"]),
            Column::new("visit_date".into(), ["2025/3/1", "2025-03-02"]),
            Column::new("minutes".into(), [Some(30.0), None]),
        ])
        .unwrap();
        ParquetWriter::new(std::fs::File::create(other.path().join("visits.parquet")).unwrap())
            .finish(&mut df)
            .unwrap();
        let pq = read_declared(other.path(), &visits(), Encoding::Auto).unwrap().unwrap();
        assert_eq!(texts(&pq.df, "client_id"), texts(&csv.df, "client_id"));
        assert_eq!(
            texts(&pq.df, "visit_date"),
            [Some("2025/3/1".into()), Some("2025-03-02".into())]
        );
        assert_eq!(texts(&pq.df, "minutes"), [Some("30.0".into()), None]);
    }

    #[test]
    fn a_missing_required_column_names_the_file_and_the_column() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("visits.csv"), "client_id,minutes\nC1,30\n").unwrap();
        let e = read_declared(dir.path(), &visits(), Encoding::Auto)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("visits.csv") && e.contains("visit_date") && e.contains("走访日期"),
            "{e}"
        );
        let none = tempfile::tempdir().unwrap();
        assert!(read_declared(none.path(), &visits(), Encoding::Auto).unwrap().is_none());
    }
}
