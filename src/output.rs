//! The run folder's files, written by one writer for `run` and `score`. The writer
//! records every file it wrote, so the manifest lists what is really there.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::analysis::{Outcome, Segmentation};
use crate::columns::Catalogue;
use crate::export::{self, Assignment, CrmSettings, ExportError};
use crate::features::FeatureTable;
use crate::format::{tr, Lang};
use crate::persist::{self, PersistError};
use crate::report::{self, ReportError};
use crate::stability::migration::Migration;

/// Where runs and models go (`[output]` of the config).
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputParams {
    /// The folder run folders are made in.
    pub dir: PathBuf,
    /// Every run's model, and latest.json.
    pub models_dir: PathBuf,
    /// labels.xlsx is written only up to this many clients (CSV and Parquet always).
    pub xlsx_max_rows: usize,
}

/// Files written into one folder, in the order they were finished.
pub struct Written {
    dir: PathBuf,
    pub files: Vec<String>,
    /// Outputs not written, and why.
    pub skipped: Vec<String>,
}

impl Written {
    pub fn new(dir: &Path) -> Written {
        Written {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            skipped: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn add(&mut self, name: impl Into<String>) {
        self.files.push(name.into());
    }

    pub fn bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), PersistError> {
        let path = self.path(name);
        std::fs::write(&path, bytes).map_err(|source| PersistError::Write { path, source })?;
        self.add(name);
        Ok(())
    }
}

fn assignment(s: &Segmentation) -> Assignment {
    Assignment {
        kind: s.kind.as_str().to_string(),
        columns: s.kind.label_columns().map(String::from),
        labels: s.labels.to_vec(),
        distances: s.distances.to_vec(),
        segments: s.model.segments.clone(),
    }
}

/// labels.csv's table: each analysis's columns in the analyses' order (a segmentation's
/// first).
pub fn labels_frame(table: &FeatureTable, outcomes: &[Outcome]) -> Result<DataFrame, ExportError> {
    let mut columns: Vec<Column> = Vec::new();
    for o in outcomes {
        if let Some(s) = &o.segmentation {
            columns.extend(assignment(s).label_columns());
        }
        columns.extend(o.columns.iter().cloned());
    }
    export::labels_frame(&table.df, &columns)
}

/// segments.csv's table.
pub fn segments_frame(table: &FeatureTable, outcomes: &[Outcome]) -> Result<DataFrame, ExportError> {
    let names: Vec<String> = table.enabled.iter().map(|f| f.name.to_string()).collect();
    let assignments: Vec<Assignment> = outcomes
        .iter()
        .filter_map(|o| o.segmentation.as_ref())
        .map(assignment)
        .collect();
    export::segments_frame(&table.df, &names, &assignments)
}

/// The files of [`labels`], in the order the manifest lists them.
pub const LABEL_FILES: [&str; 3] = ["labels.csv", "labels.parquet", "crm_import.csv"];

/// labels.csv, labels.parquet and crm_import.csv in `dir`; returns the labels table.
/// (Functions that take `dir` run side by side; the caller records their files.)
pub fn labels(
    dir: &Path,
    table: &FeatureTable,
    outcomes: &[Outcome],
    crm: &CrmSettings,
    words: &Catalogue,
    lang: Lang,
    run_id: &str,
) -> Result<DataFrame, ExportError> {
    let labels = labels_frame(table, outcomes)?;
    let extra = words.crm();
    let segments: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o.segmentation.as_ref().map(|s| s.kind.id_column()))
        .collect();
    // The three files side by side: one after the other they were the longest part of
    // the tables at 1M clients.
    let ((csv, parquet), crm_file) = rayon::join(
        || {
            rayon::join(
                || export::write_csv(&mut labels.clone(), &dir.join("labels.csv")),
                || export::write_parquet(&mut labels.clone(), &dir.join("labels.parquet")),
            )
        },
        || {
            export::crm_frame(&labels, crm, &extra, &segments, lang, run_id)
                .and_then(|mut crm_df| export::write_csv(&mut crm_df, &dir.join("crm_import.csv")))
        },
    );
    csv?;
    parquet?;
    crm_file?;
    Ok(labels)
}

/// rejects.csv in `dir`: every reject line.
pub fn rejects(dir: &Path, rejects: &DataFrame) -> Result<(), ExportError> {
    let mut r = rejects.clone();
    export::write_csv(&mut r, &dir.join("rejects.csv"))
}

/// features.parquet in `dir`: every feature, and each clustered one scaled as the model
/// saw it.
pub fn features(dir: &Path, table: &FeatureTable, outcomes: &[Outcome]) -> Result<(), ExportError> {
    let mut scaled: Vec<(String, Vec<f64>)> = Vec::new();
    for s in outcomes.iter().filter_map(|o| o.segmentation.as_ref()) {
        for (j, name) in s.model.features.iter().enumerate() {
            if !scaled.iter().any(|(n, _)| n == name) {
                scaled.push((name.clone(), s.z.column(j).to_vec()));
            }
        }
    }
    let mut feats = export::with_scaled(&table.df, &scaled)?;
    export::write_parquet(&mut feats, &dir.join("features.parquet"))
}

/// segments.csv in `dir`; returns its table.
pub fn segments(dir: &Path, table: &FeatureTable, outcomes: &[Outcome]) -> Result<DataFrame, ExportError> {
    let mut segs = segments_frame(table, outcomes)?;
    export::write_csv(&mut segs, &dir.join("segments.csv"))?;
    Ok(segs)
}

/// rules.txt: the decision rules of every segmentation.
pub fn rules(w: &mut Written, outcomes: &[Outcome]) -> Result<(), PersistError> {
    let mut text = String::new();
    for s in outcomes.iter().filter_map(|o| o.segmentation.as_ref()) {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&report::text::rules_text(s.kind.heading(), &s.model));
    }
    w.bytes("rules.txt", text.as_bytes())
}

/// labels.xlsx (up to `max_rows` clients) and segments.xlsx.
pub fn spreadsheets(
    w: &mut Written,
    labels: &DataFrame,
    segments: &DataFrame,
    words: &Catalogue,
    lang: Lang,
    max_rows: usize,
) -> Result<(), ExportError> {
    let zh = (lang == Lang::Zh).then_some(words);
    let sheet = if zh.is_some() { "客户标签" } else { "labels" };
    if export::write_xlsx(labels, &w.path("labels.xlsx"), sheet, zh, max_rows)? {
        w.add("labels.xlsx");
    } else {
        w.skipped.push(format!(
            "labels.xlsx: {} clients is over output.xlsx_max_rows ({max_rows}); the same rows are in labels.csv and labels.parquet",
            labels.height(),
        ));
    }
    let sheet = if zh.is_some() { "分群概况" } else { "segments" };
    export::write_xlsx(segments, &w.path("segments.xlsx"), sheet, zh, export::XLSX_MAX_ROWS)?;
    w.add("segments.xlsx");
    Ok(())
}

/// An analysis's table for people: NAME.csv, NAME.parquet and NAME.xlsx in `dir` (up to
/// `max_rows` rows; Chinese headers and categories with lang = zh). Returns the files
/// written and, when the spreadsheet was left out, why.
pub fn export_table(
    dir: &Path,
    name: &str,
    df: &DataFrame,
    words: &Catalogue,
    lang: Lang,
    max_rows: usize,
) -> Result<(Vec<String>, Option<String>), ExportError> {
    let mut t = df.clone();
    let mut files = vec![format!("{name}.csv"), format!("{name}.parquet")];
    export::write_csv(&mut t, &dir.join(&files[0]))?;
    export::write_parquet(&mut t, &dir.join(&files[1]))?;
    let zh = (lang == Lang::Zh).then_some(words);
    let sheet = match zh.and_then(|w| w.table(name, Lang::Zh)) {
        Some(z) => z.to_string(),
        None => name.to_string(),
    };
    if export::write_xlsx(df, &dir.join(format!("{name}.xlsx")), &sheet, zh, max_rows)? {
        files.push(format!("{name}.xlsx"));
        Ok((files, None))
    } else {
        Ok((
            files,
            Some(format!(
                "{name}.xlsx: {} rows is over output.xlsx_max_rows ({max_rows}); the same rows are in {name}.csv and {name}.parquet",
                df.height()
            )),
        ))
    }
}

/// [`export_table`] into a [`Written`] folder.
pub fn export_into(
    w: &mut Written,
    name: &str,
    df: &DataFrame,
    words: &Catalogue,
    lang: Lang,
    max_rows: usize,
) -> Result<(), ExportError> {
    let (files, skipped) = export_table(w.dir(), name, df, words, lang, max_rows)?;
    for f in files {
        w.add(f);
    }
    w.skipped.extend(skipped);
    Ok(())
}

/// migration.csv, transitions.csv and their charts.
pub fn migration(w: &mut Written, m: Migration, lang: Lang) -> Result<(), OutputError> {
    let mut rows = m.rows;
    export::write_csv(&mut rows, &w.path("migration.csv"))?;
    w.add("migration.csv");
    let mut transitions = m.transitions;
    export::write_csv(&mut transitions, &w.path("transitions.csv"))?;
    w.add("transitions.csv");
    let charts = w.path("charts");
    std::fs::create_dir_all(&charts).map_err(|e| PersistError::Create {
        path: charts.clone(),
        source: e,
    })?;
    for matrix in &m.matrices {
        // Categories in words (高风险), segment ids (V1, B2) as they are.
        let words = |ids: &[String]| -> Vec<String> {
            ids.iter()
                .map(|id| matrix.column.word(id, lang).unwrap_or(id).to_string())
                .collect()
        };
        let title = tr(lang, &matrix.title.0, &matrix.title.1);
        let (from, to) = (words(&matrix.from), words(&matrix.to));
        let chart = report::write_transition_chart(&charts, lang, &matrix.kind, &title, &from, &to, &matrix.counts)?;
        w.add(chart.png);
        w.add(chart.svg);
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Persist(#[from] PersistError),
}

/// rejects.csv beside the run folders when validation stops the run: written under a
/// temporary name and renamed, so an interrupted write leaves nothing.
pub fn rejects_beside(rejects: &DataFrame, path: &Path) -> Result<(), OutputError> {
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    persist::track_unfinished(&tmp);
    let mut r = rejects.clone();
    let written = export::write_csv(&mut r, &tmp)
        .map_err(OutputError::from)
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|source| {
                OutputError::Persist(PersistError::Commit {
                    path: path.to_path_buf(),
                    source,
                })
            })
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    persist::untrack_unfinished(&tmp);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> DataFrame {
        DataFrame::new_infer_height(vec![
            Column::new("client_id".into(), ["C1", "C2", "C3"]),
            Column::new("name".into(), ["=HYPERLINK(\"x\")", "北京,有限公司", "plain"]),
            Column::new("monthly_fee".into(), [300.0, 1200.5, 99.0]),
        ])
        .unwrap()
    }

    #[test]
    fn a_table_is_written_in_three_forms_and_its_cells_are_inert() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Written::new(dir.path());
        export_into(&mut w, "pricing", &table(), &Catalogue::default(), Lang::En, 1000).unwrap();
        assert_eq!(w.files, ["pricing.csv", "pricing.parquet", "pricing.xlsx"]);
        assert!(w.skipped.is_empty());
        let csv = std::fs::read(dir.path().join("pricing.csv")).unwrap();
        assert!(csv.starts_with(b"\xEF\xBB\xBF"), "a BOM for Excel");
        let text = String::from_utf8(csv).unwrap();
        let line = text.lines().find(|l| l.starts_with("C1,")).unwrap();
        assert!(
            !line.contains(",=") && !line.contains(",\"="),
            "a formula is not left to run: {line}"
        );
        assert!(text.contains("\"北京,有限公司\""), "{text}");
        let back = ParquetReader::new(std::fs::File::open(dir.path().join("pricing.parquet")).unwrap())
            .finish()
            .unwrap();
        assert_eq!(back.height(), 3);
        assert_eq!(back.column("monthly_fee").unwrap().f64().unwrap().get(1), Some(1200.5));
    }

    #[test]
    fn a_table_over_the_row_limit_skips_only_its_spreadsheet_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Written::new(dir.path());
        export_into(&mut w, "pricing", &table(), &Catalogue::default(), Lang::Zh, 2).unwrap();
        assert_eq!(w.files, ["pricing.csv", "pricing.parquet"]);
        assert!(!dir.path().join("pricing.xlsx").exists());
        assert!(
            w.skipped[0].contains("3 rows is over output.xlsx_max_rows (2)"),
            "{:?}",
            w.skipped
        );
        w.bytes("note.txt", b"hello").unwrap();
        assert_eq!(std::fs::read(w.path("note.txt")).unwrap(), b"hello");
        assert_eq!(w.files.last().map(String::as_str), Some("note.txt"));
    }
}
