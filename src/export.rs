//! Export: the run's tables. CSV files are UTF-8 with a byte-order mark so that Excel
//! opens Chinese text correctly; Parquet for tools that read it.

use std::path::Path;

use polars::prelude::*;
use serde::Serialize;
use thiserror::Error;

use crate::columns::Catalogue;
use crate::format::Lang;

use crate::segments::Segment;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("cannot write {file}: {message}")]
    Write { file: String, message: String },
    #[error("cannot build table {table}: {source}")]
    Polars { table: &'static str, source: PolarsError },
}

/// The columns of crm_import.csv: (header, source), and how tags are joined.
#[derive(Debug, Clone, Serialize)]
pub struct CrmSettings {
    pub template: String,
    pub columns: Vec<(String, String)>,
    pub tag_separator: String,
}

/// What a CRM column can be filled from.
pub const CRM_SOURCES: &[&str] = &[
    "client_id",
    "name",
    "accountant",
    "industry",
    "region",
    "client_type",
    "taxpayer_type",
    "scale",
    "term",
    "needs",
    "value_tier",
    "value_tier_name",
    "behaviour_segment",
    "behaviour_segment_name",
    "tags",
    "description",
];

pub fn crm_template(name: &str) -> Option<(Vec<(&'static str, &'static str)>, &'static str)> {
    match name {
        "generic" => Some((
            vec![
                ("client_id", "client_id"),
                ("name", "name"),
                ("tags", "tags"),
                ("tier", "value_tier_name"),
                ("segment", "behaviour_segment_name"),
                ("owner", "accountant"),
            ],
            ";",
        )),
        // Zoho CRM's Accounts import: its own field names, tags separated by commas.
        "zoho" => Some((
            vec![
                ("Account Number", "client_id"),
                ("Account Name", "name"),
                ("Account Owner", "accountant"),
                ("Industry", "industry"),
                ("Rating", "value_tier_name"),
                ("Tag", "tags"),
                ("Description", "description"),
            ],
            ",",
        )),
        _ => None,
    }
}

/// Each client's segment of one kind, in the feature table's row order.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// segments.csv's `kind`.
    pub kind: String,
    /// Its labels.csv columns: segment id, English name, Chinese name, distance.
    pub columns: [String; 4],
    pub labels: Vec<usize>,
    pub distances: Vec<f64>,
    pub segments: Vec<Segment>,
}

impl Assignment {
    /// Its four labels.csv columns.
    pub fn label_columns(&self) -> Vec<Column> {
        let pick = |f: &dyn Fn(&Segment) -> String| -> Vec<String> {
            self.labels
                .iter()
                .map(|&l| self.segments.get(l).map(f).unwrap_or_default())
                .collect()
        };
        let [id, en, zh, dist] = &self.columns;
        vec![
            Column::new(id.into(), pick(&|s| s.id.clone())),
            Column::new(en.into(), pick(&|s| s.name_en.clone())),
            Column::new(zh.into(), pick(&|s| s.name_zh.clone())),
            Column::new(
                dist.into(),
                self.distances
                    .iter()
                    .map(|d| (d * 1e6).round() / 1e6)
                    .collect::<Vec<f64>>(),
            ),
        ]
    }
}

/// The labels table: ids, the analyses' columns in their order, then the archive's
/// dimensions.
pub fn labels_frame(features: &DataFrame, columns: &[Column]) -> Result<DataFrame, ExportError> {
    let p = |source| ExportError::Polars {
        table: "labels",
        source,
    };
    let mut cols = vec![features.column("client_id").map_err(p)?.clone()];
    cols.extend(columns.iter().cloned());
    for d in crate::features::DIMENSIONS {
        cols.push(features.column(d).map_err(p)?.clone());
    }
    DataFrame::new_infer_height(cols).map_err(p)
}

/// Per segment: size, shares, and the median of every feature in original units.
pub fn segments_frame(
    features: &DataFrame,
    feature_names: &[String],
    assignments: &[Assignment],
) -> Result<DataFrame, ExportError> {
    let p = |source| ExportError::Polars {
        table: "segments",
        source,
    };
    let fees = if feature_names.iter().any(|f| f == "fees_12m") {
        col("fees_12m")
    } else {
        lit(0.0)
    };
    let mut parts = Vec::new();
    for a in assignments {
        let kind = a.kind.as_str();
        // Grouped by the segment's index and named after: building and hashing a million
        // id strings cost as much as every feature's median.
        let index: Vec<u32> = a.labels.iter().map(|&l| l as u32).collect();
        let mut df = features.clone();
        df.with_column(Column::new("__index".into(), index)).map_err(p)?;
        let mut aggs = vec![
            len().cast(DataType::Int64).alias("clients"),
            fees.clone().sum().alias("__fees"),
        ];
        aggs.extend(
            feature_names
                .iter()
                .map(|f| col(f.as_str()).median().alias(format!("median_{f}"))),
        );
        let g = df
            .lazy()
            .group_by([col("__index")])
            .agg(aggs)
            .with_columns([
                (col("clients").cast(DataType::Float64) / col("clients").sum().cast(DataType::Float64))
                    .alias("client_share"),
                when(col("__fees").sum().gt(lit(0.0)))
                    .then(col("__fees") / col("__fees").sum())
                    .otherwise(lit(0.0))
                    .alias("revenue_share"),
            ])
            .collect()
            .map_err(p)?;
        let columns = vec![
            Column::new("__index".into(), (0..a.segments.len() as u32).collect::<Vec<_>>()),
            Column::new(
                "__segment".into(),
                a.segments.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
            ),
            Column::new("kind".into(), vec![kind; a.segments.len()]),
            Column::new(
                "name_en".into(),
                a.segments.iter().map(|s| s.name_en.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "name_zh".into(),
                a.segments.iter().map(|s| s.name_zh.clone()).collect::<Vec<_>>(),
            ),
        ];
        let names = DataFrame::new_infer_height(columns).map_err(p)?;
        // Every segment appears, also one that lost all its clients.
        let mut select = vec![
            col("kind"),
            col("__segment").alias("segment"),
            col("name_en"),
            col("name_zh"),
            col("clients").fill_null(lit(0)),
            col("client_share").fill_null(lit(0.0)),
            col("revenue_share").fill_null(lit(0.0)),
        ];
        select.extend(feature_names.iter().map(|f| col(format!("median_{f}"))));
        let joined = names
            .lazy()
            .left_join(g.lazy(), col("__index"), col("__index"))
            .select(select)
            .collect()
            .map_err(p)?;
        parts.push(joined.lazy());
    }
    concat(parts, UnionArgs::default())
        .and_then(|lf| lf.collect())
        .map_err(p)
}

/// Whether Excel would read a cell as a formula (=, +, -, @, tab, carriage return
/// first): such a cell is written with a leading apostrophe, so opening the file can never
/// run it (CSV injection). A plain negative number (-50.5) is not: Excel reads it as a
/// number, not a formula.
pub fn risky_cell(v: &str) -> bool {
    match v.as_bytes().first() {
        Some(b'=' | b'+' | b'@' | b'\t' | b'\r') => true,
        Some(b'-') => {
            // A plain negative number (-50, -50.5) stays a number.
            let rest = &v[1..];
            let (int, frac) = rest.split_once('.').unwrap_or((rest, "0"));
            !(!int.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && !frac.is_empty()
                && frac.bytes().all(|b| b.is_ascii_digit())
                && rest.split('.').count() <= 2)
        }
        _ => false,
    }
}

/// The CRM import table: one row per client, columns as the settings say, then the
/// `extra` (header, labels column) pairs that further analyses add. `segments` are the
/// id columns of the run's segmentations: `<id>_name` is a segment's name in the run's
/// language, `tags` every name, `description` the run and the names.
pub fn crm_frame(
    labels: &DataFrame,
    crm: &CrmSettings,
    extra: &[(String, String)],
    segments: &[&str],
    lang: Lang,
    run_id: &str,
) -> Result<DataFrame, ExportError> {
    let p = |source| ExportError::Polars {
        table: "crm_import",
        source,
    };
    let suffix = match lang {
        Lang::En => "en",
        Lang::Zh => "zh",
    };
    // A segmentation's column the run did not make (skipped for this input) stays
    // empty; any other missing column is an error, as it was.
    let column = |name: &str| match labels.column(name) {
        Ok(_) => col(name),
        Err(_) => lit(NULL).cast(DataType::String),
    };
    let names: Vec<Expr> = segments.iter().map(|s| column(&format!("{s}_{suffix}"))).collect();
    // Tag separators inside names would split one tag into two.
    let tag = |e: Expr| e.str().replace_all(lit(crm.tag_separator.as_str()), lit(" /"), true);
    let mut described = vec![lit(format!("clientseg {run_id}: "))];
    for (k, name) in names.iter().enumerate() {
        if k > 0 {
            described.extend([lit("; "), name.clone().fill_null(lit("-"))]);
        } else {
            described.push(name.clone());
        }
    }
    let source = |name: &str| -> Expr {
        match name {
            "tags" => concat_str(
                names.iter().cloned().map(tag).collect::<Vec<_>>(),
                crm.tag_separator.as_str(),
                true,
            ),
            "description" => concat_str(described.clone(), "", true),
            other => match other.strip_suffix("_name") {
                Some(id) => column(&format!("{id}_{suffix}")),
                // A segment id: its name is a source too.
                None if CRM_SOURCES.contains(&format!("{other}_name").as_str()) => column(other),
                None => col(other),
            },
        }
    };
    let exprs: Vec<Expr> = crm
        .columns
        .iter()
        .chain(extra)
        // Kept in their types: write_csv, the table's only writer, formats numbers as
        // polars' text cast did and guards every text cell against formulas (`risky_cell`).
        .map(|(header, src)| source(src).alias(header.as_str()))
        .collect();
    labels.clone().lazy().select(exprs).collect().map_err(p)
}

/// Writes a table as CSV (UTF-8 with BOM). Every text cell is neutralised on the way
/// out (see [`risky_cell`]): whatever file of ours an analyst opens in Excel, no cell in it
/// is live, whichever input it came from.
pub fn write_csv(df: &mut DataFrame, path: &Path) -> Result<(), ExportError> {
    let file_name = path.display().to_string();
    let w = |message: String| ExportError::Write {
        file: file_name.clone(),
        message,
    };
    if let Some(table) = Table::of(df) {
        let file = std::fs::File::create(path).map_err(|e| w(e.to_string()))?;
        return table.write(df.get_column_names(), file).map_err(|e| w(e.to_string()));
    }
    polars_csv(df, path)
}

/// write_csv through polars' own writer, for column types the writer above does not take.
fn polars_csv(df: &mut DataFrame, path: &Path) -> Result<(), ExportError> {
    let file_name = path.display().to_string();
    let w = |message: String| ExportError::Write {
        file: file_name.clone(),
        message,
    };
    // Only the text columns that hold a risky cell are rewritten: a byte test per cell
    // instead of two regular expressions over every column (at 1M clients, with pricing and
    // allocation tables beside the labels, that was seconds of the run).
    let mut fixed: Vec<Column> = Vec::new();
    for c in df.columns().iter().filter(|c| c.dtype() == &DataType::String) {
        let ca = c.str().map_err(|e| w(e.to_string()))?;
        if ca.iter().flatten().any(risky_cell) {
            let out: StringChunked = ca
                .iter()
                .map(|v| {
                    v.map(|v| match risky_cell(v) {
                        true => format!("'{v}"),
                        false => v.to_string(),
                    })
                })
                .collect();
            fixed.push(out.with_name(c.name().clone()).into_column());
        }
    }
    let mut safe = if fixed.is_empty() {
        None
    } else {
        let mut d = df.clone();
        for c in fixed {
            d.with_column(c).map_err(|e| w(e.to_string()))?;
        }
        Some(d)
    };
    let mut file = std::fs::File::create(path).map_err(|e| w(e.to_string()))?;
    CsvWriter::new(&mut file)
        .include_bom(true)
        .finish(safe.as_mut().unwrap_or(df))
        .map_err(|e| w(e.to_string()))
}

type TextArray = <StringType as PolarsDataType>::Array;
type FloatArray = <Float64Type as PolarsDataType>::Array;
type BoolArray = <BooleanType as PolarsDataType>::Array;
type IntArray = <Int64Type as PolarsDataType>::Array;

/// One column's values, read in place (whole numbers as i64), for the CSV writer below.
enum Cells<'a> {
    /// With whether some cell may need quotes ([`may_need_quotes`]).
    Text(&'a TextArray, bool),
    Int(Int64Chunked),
    Float(&'a FloatArray),
    Bool(&'a BoolArray),
}

/// A frame of text, whole numbers, floats and booleans, written as CSV the way polars'
/// writer does (the same quoting and number forms: the files are byte for byte the same)
/// with risky cells made inert in passing and pieces of rows formatted in parallel. At
/// 1M clients polars took 0.55 CPU-s for actions.csv. Other column types go to polars.
struct Table<'a> {
    columns: Vec<Cells<'a>>,
    rows: usize,
}

impl<'a> Table<'a> {
    fn of(df: &'a DataFrame) -> Option<Table<'a>> {
        let mut columns = Vec::with_capacity(df.width());
        for c in df.columns() {
            let s = c.as_series()?;
            let cells = match s.dtype() {
                DataType::String => {
                    let a = single(s.str().ok()?)?;
                    Cells::Text(a, may_need_quotes(a))
                }
                DataType::Float64 => Cells::Float(single(s.f64().ok()?)?),
                DataType::Boolean => Cells::Bool(single(s.bool().ok()?)?),
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32 => {
                    let ints = s.cast(&DataType::Int64).ok()?.i64().ok()?.rechunk().into_owned();
                    Cells::Int(ints)
                }
                _ => return None,
            };
            columns.push(cells);
        }
        Some(Table {
            columns,
            rows: df.height(),
        })
    }

    fn write(&self, names: Vec<&PlSmallStr>, mut out: std::fs::File) -> std::io::Result<()> {
        use rayon::prelude::*;
        use std::io::Write;
        let mut head: Vec<u8> = "\u{feff}".as_bytes().to_vec();
        for (k, n) in names.iter().enumerate() {
            if k > 0 {
                head.push(b',');
            }
            text_cell(&mut head, n.as_str());
        }
        head.push(b'\n');
        out.write_all(&head)?;
        const ROWS: usize = 16_384;
        let pieces: Vec<std::ops::Range<usize>> = (0..self.rows)
            .step_by(ROWS)
            .map(|a| a..(a + ROWS).min(self.rows))
            .collect();
        // A few pieces per thread at a time, written in order: memory stays small.
        for batch in pieces.chunks(4 * rayon::current_num_threads().max(1)) {
            let made: Vec<Vec<u8>> = batch.par_iter().map(|r| self.piece(r.clone())).collect();
            for b in made {
                out.write_all(&b)?;
            }
        }
        out.flush()
    }

    fn piece(&self, rows: std::ops::Range<usize>) -> Vec<u8> {
        let ints: Vec<Option<&IntArray>> = self
            .columns
            .iter()
            .map(|c| match c {
                Cells::Int(ca) => ca.downcast_iter().next(),
                _ => None,
            })
            .collect();
        let mut b = Vec::with_capacity(rows.len() * 16 * self.columns.len());
        let mut f = zmij::Buffer::new();
        let mut n = itoa::Buffer::new();
        for i in rows {
            for (k, c) in self.columns.iter().enumerate() {
                if k > 0 {
                    b.push(b',');
                }
                match c {
                    Cells::Text(a, quotes) => {
                        if let Some(v) = a.get(i) {
                            match (risky_cell(v), quotes, v.is_empty()) {
                                (true, _, _) => text_cell(&mut b, &format!("'{v}")),
                                (false, true, _) => text_cell(&mut b, v),
                                (false, false, true) => b.extend_from_slice(b"\"\""),
                                (false, false, false) => b.extend_from_slice(v.as_bytes()),
                            }
                        }
                    }
                    Cells::Int(_) => {
                        if let Some(v) = ints.get(k).copied().flatten().and_then(|a| a.get(i)) {
                            b.extend_from_slice(n.format(v).as_bytes());
                        }
                    }
                    Cells::Float(a) => {
                        if let Some(v) = a.get(i) {
                            b.extend_from_slice(f.format(v).as_bytes());
                        }
                    }
                    Cells::Bool(a) => {
                        if let Some(v) = a.get(i) {
                            b.extend_from_slice(if v { b"true" } else { b"false" });
                        }
                    }
                }
            }
            b.push(b'\n');
        }
        b
    }
}

/// The bytes that make polars' writer quote a cell.
const QUOTED: [u8; 4] = [b',', b'\n', b'\r', b'"'];

/// Whether a cell of the column may hold a comma, a quote or a line break. Told from the
/// column's buffers and inline cells at once instead of cell by cell: most text columns
/// hold none, and the check per cell was a fifth of the time for labels.csv. `true` when
/// unsure (buffers much larger than the cells, as after a filter).
fn may_need_quotes(a: &TextArray) -> bool {
    if a.total_buffer_len() > 4 * a.total_bytes_len() + (1 << 20) {
        return true;
    }
    let in_buffers = a.data_buffers().iter().any(|b| {
        let b: &[u8] = b;
        memchr::memchr3(b',', b'"', b'\n', b).is_some() || memchr::memchr(b'\r', b).is_some()
    });
    // An inline cell's bytes follow its length, zero past its end.
    in_buffers
        || a.views()
            .iter()
            .any(|v| v.length <= 12 && crate::format::word_holds_any(v.as_u128() >> 32, QUOTED))
}

/// The one array of a column in one piece (None when in pieces: then polars writes it).
fn single<T: PolarsDataType>(ca: &ChunkedArray<T>) -> Option<&T::Array> {
    match ca.chunks().len() {
        1 => ca.downcast_iter().next(),
        _ => None,
    }
}

/// A text cell as polars writes it: empty as `""`, quoted when it holds a comma or a line
/// break, or a quote (doubled).
fn text_cell(b: &mut Vec<u8>, v: &str) {
    if v.is_empty() {
        b.extend_from_slice(b"\"\"");
        return;
    }
    let s = v.as_bytes();
    let quoted = crate::format::holds_any(s, QUOTED);
    if !quoted {
        b.extend_from_slice(s);
        return;
    }
    b.push(b'"');
    for part in s.split_inclusive(|&c| c == b'"') {
        b.extend_from_slice(part);
        if part.last() == Some(&b'"') {
            b.push(b'"');
        }
    }
    b.push(b'"');
}

/// Chinese column headers for the spreadsheets when lang = zh: as the run's analyses
/// declared them, else the segments table's own, else the input's.
pub fn zh_header(name: &str, words: &Catalogue) -> Option<String> {
    if let Some(h) = words.header(name, Lang::Zh) {
        return Some(h.to_string());
    }
    let fixed = match name {
        "kind" => "类别",
        "segment" => "分群",
        "name_en" => "名称（英文）",
        "name_zh" => "名称",
        "clients" => "客户数",
        "client_share" => "客户占比",
        "revenue_share" => "收入占比",
        _ => "",
    };
    if !fixed.is_empty() {
        return Some(fixed.to_string());
    }
    if let Some(zh) = crate::format::column_zh(name) {
        return Some(zh.to_string());
    }
    // A feature carried into a table (winback's fees_12m) reads as the feature's name.
    if let Some(f) = crate::features::feature_def(name) {
        return Some(f.display(Lang::Zh).to_string());
    }
    name.strip_prefix("median_")
        .map(|f| format!("{}（中位数）", crate::features::display_name(f, Lang::Zh)))
}

/// Excel's row limit; larger tables are written as CSV and Parquet only.
pub const XLSX_MAX_ROWS: usize = 1_048_575;

/// Writes a table as .xlsx: a frozen, filterable header row, numbers as numbers. With
/// `zh`, headers and category values in Chinese (the declared words, else the input's).
/// Returns false when the table is too large for Excel.
pub fn write_xlsx(
    df: &DataFrame,
    path: &Path,
    sheet: &str,
    zh: Option<&Catalogue>,
    max_rows: usize,
) -> Result<bool, ExportError> {
    if df.height() > max_rows.min(XLSX_MAX_ROWS) {
        return Ok(false);
    }
    let file_name = path.display().to_string();
    let w = |e: rust_xlsxwriter::XlsxError| ExportError::Write {
        file: file_name.clone(),
        message: e.to_string(),
    };
    let polars_err = |source| ExportError::Polars { table: "xlsx", source };
    enum Cells {
        Number(Float64Chunked),
        Text(StringChunked),
    }
    let mut cells = Vec::with_capacity(df.width());
    for column in df.columns() {
        cells.push(if column.dtype().is_primitive_numeric() {
            let c = column.cast(&DataType::Float64).map_err(polars_err)?;
            Cells::Number(c.f64().map_err(polars_err)?.rechunk().into_owned())
        } else {
            let c = column.cast(&DataType::String).map_err(polars_err)?;
            Cells::Text(c.str().map_err(polars_err)?.rechunk().into_owned())
        });
    }
    let mut book = rust_xlsxwriter::Workbook::new();
    // Constant-memory mode streams rows to disk as they are written (in row order), and
    // writes text inline instead of through a shared-string table.
    let ws = book.add_worksheet_with_constant_memory().map_err(w)?;
    ws.set_name(sheet).map_err(w)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (j, column) in df.columns().iter().enumerate() {
        let j = j as u16;
        let name = column.name().to_string();
        let header = match zh {
            Some(words) => zh_header(&name, words).unwrap_or(name.clone()),
            None => name.clone(),
        };
        ws.write_string_with_format(0, j, &header, &bold).map_err(w)?;
        ws.set_column_width(j, (header.chars().count() as f64 * 1.8).clamp(10.0, 40.0))
            .map_err(w)?;
    }
    for i in 0..df.height() {
        let row = i as u32 + 1;
        for (j, c) in cells.iter().enumerate() {
            match c {
                Cells::Number(v) => {
                    if let Some(v) = v.get(i).filter(|v| v.is_finite()) {
                        ws.write_number(row, j as u16, v).map_err(w)?;
                    }
                }
                // Text cells are never formulas in xlsx, so no neutralising is needed.
                Cells::Text(v) => {
                    if let Some(v) = v.get(i) {
                        // In Chinese, the archive's categories as a Chinese firm writes them.
                        let v = match zh {
                            Some(words) => {
                                let column = df.columns()[j].name().as_str();
                                words
                                    .word(column, v, Lang::Zh)
                                    .or_else(|| crate::format::category_zh(column, v))
                                    .unwrap_or(v)
                            }
                            None => v,
                        };
                        // Validation rejects longer input cells; this only guards Excel's
                        // per-cell limit against text we built ourselves.
                        let v = match v.char_indices().nth(crate::ingest::MAX_CELL_CHARS) {
                            Some((cut, _)) => &v[..cut],
                            None => v,
                        };
                        ws.write_string(row, j as u16, v).map_err(w)?;
                    }
                }
            }
        }
    }
    ws.set_freeze_panes(1, 0).map_err(w)?;
    let last_col = df.width().saturating_sub(1) as u16;
    ws.autofilter(0, 0, df.height() as u32, last_col).map_err(w)?;
    // Zipped in memory, then written: a full disk fails our write with a plain error
    // instead of inside the zip writer (which also prints its own line on drop).
    let bytes = book.save_to_buffer().map_err(w)?;
    std::fs::write(path, bytes).map_err(|e| ExportError::Write {
        file: file_name.clone(),
        message: e.to_string(),
    })?;
    Ok(true)
}

pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<(), ExportError> {
    let file_name = path.display().to_string();
    let w = |message: String| ExportError::Write {
        file: file_name.clone(),
        message,
    };
    let file = std::fs::File::create(path).map_err(|e| w(e.to_string()))?;
    // zstd level 1: measured at 1M clients, features.parquet took 2.2 s instead of the
    // default level's 2.8 s, for 86 MB instead of 73 MB.
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Zstd(
            polars::polars_utils::compression::ZstdLevel::try_new(1).ok(),
        ))
        .finish(df)
        .map(|_| ())
        .map_err(|e| w(e.to_string()))
}

/// Adds the scaled (model-space) copy of each clustered feature as `z_<feature>`.
pub fn with_scaled(features: &DataFrame, scaled: &[(String, Vec<f64>)]) -> Result<DataFrame, ExportError> {
    let mut df = features.clone();
    for (name, values) in scaled {
        df.with_column(Column::new(format!("z_{name}").into(), values.clone()))
            .map_err(|source| ExportError::Polars {
                table: "features",
                source,
            })?;
    }
    Ok(df)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A feature carried into an analysis's table gets the feature's Chinese name; a
    /// column nobody declared keeps none.
    #[test]
    fn features_in_a_table_read_in_chinese() {
        let words = Catalogue::default();
        assert_eq!(zh_header("fees_12m", &words).as_deref(), Some("近12个月收费"));
        assert_eq!(
            zh_header("repeat_invoice_days", &words).as_deref(),
            Some("重复开票天数")
        );
        assert_eq!(zh_header("not_a_column", &words), None);
    }

    #[test]
    fn own_csv_writer_writes_what_polars_writes() {
        let text = [
            Some("plain"),
            Some(""),
            None,
            Some("a,b"),
            Some("say \"hi\""),
            Some("two\nlines"),
            Some("cr\rhere"),
            Some("=1+1"),
            Some("-5"),
            Some("-5.5"),
            Some("-x"),
            Some("+86 138"),
            Some("@sum"),
            Some("北京博远科学有限公司"),
            Some("\"=quoted\""),
            Some("a string longer than twelve bytes, with a comma"),
        ];
        let n = text.len();
        let floats = [
            0.0,
            -0.0,
            0.1,
            1e16,
            1e-7,
            f64::NAN,
            f64::INFINITY,
            -1240.0,
            200.0,
            3.5,
            1e300,
            -2.25,
            7.0,
            0.3,
            12345.678,
            1.0,
        ];
        let mut df = DataFrame::new(
            n,
            vec![
                Column::new("name, with comma".into(), text.to_vec()),
                Column::new("figure".into(), floats[..n].to_vec()),
                Column::new("priority".into(), (0..n as i32).map(|i| i - 3).collect::<Vec<_>>()),
                Column::new("small".into(), (0..n as u32).collect::<Vec<_>>()),
                Column::new(
                    "flag".into(),
                    (0..n).map(|i| (i % 3 == 0).then_some(i % 2 == 0)).collect::<Vec<_>>(),
                ),
                Column::new("客户".into(), text.iter().rev().copied().collect::<Vec<_>>()),
            ],
        )
        .unwrap();
        assert!(Table::of(&df).is_some(), "these column types take the own writer");
        let dir = tempfile::tempdir().unwrap();
        let (ours, theirs) = (dir.path().join("ours.csv"), dir.path().join("theirs.csv"));
        write_csv(&mut df, &ours).unwrap();
        polars_csv(&mut df, &theirs).unwrap();
        let (a, b) = (std::fs::read(&ours).unwrap(), std::fs::read(&theirs).unwrap());
        assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
        // Many pieces, written in order.
        let big = DataFrame::new(
            100_000,
            vec![Column::new("i".into(), (0..100_000i64).collect::<Vec<_>>())],
        )
        .unwrap();
        let (ours, theirs) = (dir.path().join("big1.csv"), dir.path().join("big2.csv"));
        write_csv(&mut big.clone(), &ours).unwrap();
        polars_csv(&mut big.clone(), &theirs).unwrap();
        assert_eq!(std::fs::read(&ours).unwrap(), std::fs::read(&theirs).unwrap());
    }

    /// The column-wide look for commas, quotes and line breaks finds each of them in a
    /// short (inline) cell and in a long one, and a plain column is written unquoted.
    #[test]
    fn quotes_are_found_wherever_a_column_keeps_its_text() {
        let arr = |c: &Column| single(c.str().unwrap()).unwrap().clone();
        let plain: Vec<String> = (0..200).map(|i| format!("客户 number {i} of the firm")).collect();
        let mut plain_short: Vec<String> = (0..200).map(|i| format!("C{i:06}")).collect();
        plain_short.push(String::new());
        assert!(!may_need_quotes(&arr(&Column::new("a".into(), &plain))));
        assert!(!may_need_quotes(&arr(&Column::new("b".into(), &plain_short))));
        let dir = tempfile::tempdir().unwrap();
        // Columns written without a quote test per cell: an empty cell and a formula among
        // them are still written as polars' writer (with the formula guard) writes them.
        let mut unquoted = plain_short.clone();
        unquoted.insert(9, "=1+2".into());
        for v in [&plain, &unquoted] {
            let mut df = DataFrame::new(v.len(), vec![Column::new("p".into(), v)]).unwrap();
            let (ours, theirs) = (dir.path().join("p.csv"), dir.path().join("pt.csv"));
            write_csv(&mut df, &ours).unwrap();
            let ours = std::fs::read_to_string(&ours).unwrap();
            assert!(
                ours.contains("\n\"\"\n") == v.iter().any(|c| c.is_empty()),
                "{ours:.80}"
            );
            assert!(ours.contains("\n'=1+2\n") == (v.len() > 201), "the formula guard");
            polars_csv(&mut df, &theirs).unwrap();
            assert_eq!(ours, std::fs::read_to_string(&theirs).unwrap());
        }
        for special in [",", "\"", "\n", "\r"] {
            for cell in [
                format!("a{special}b"),
                format!("a longer cell, past twelve {special} bytes"),
            ] {
                for at in [0, 57, 199] {
                    let mut v = if cell.len() <= 12 {
                        plain.clone()
                    } else {
                        plain_short.clone()
                    };
                    v.insert(at, cell.clone());
                    let c = Column::new("x".into(), &v);
                    assert!(may_need_quotes(&arr(&c)), "{cell:?} at {at}");
                    let mut df = DataFrame::new(v.len(), vec![c]).unwrap();
                    let (ours, theirs) = (dir.path().join("o.csv"), dir.path().join("t.csv"));
                    write_csv(&mut df, &ours).unwrap();
                    polars_csv(&mut df, &theirs).unwrap();
                    assert_eq!(std::fs::read(&ours).unwrap(), std::fs::read(&theirs).unwrap());
                }
            }
        }
        // A few rows kept from a large column share its buffers: checked cell by cell.
        let mut big: Vec<String> = (0..200_000).map(|i| format!("a long cell, row {i:08}")).collect();
        big[3] = "a long cell without any special byte".into();
        let c = Column::new("x".into(), &big);
        let kept = c.slice(3, 1);
        assert!(may_need_quotes(&arr(&kept)));
        let mut df = DataFrame::new(1, vec![kept]).unwrap();
        let out = dir.path().join("kept.csv");
        write_csv(&mut df, &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "\u{feff}x\na long cell without any special byte\n"
        );
    }

    #[test]
    fn formulas_are_told_from_plain_cells() {
        let risky = [
            "=HYPERLINK(\"http://x\",\"y\")",
            "=1",
            "+1",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "-1+cmd|' /C calc'!A0",
            "-",
            "-5.",
            "-1.2.3",
            "-1e5",
            "-.5",
            "- 1",
        ];
        for cell in risky {
            assert!(risky_cell(cell), "{cell:?}");
        }
        // Plain negative numbers stay numbers; a fullwidth minus is no formula.
        for cell in ["-2", "-2.5", "plain", "a=b", "", "－1"] {
            assert!(!risky_cell(cell), "{cell:?}");
        }
    }

    #[test]
    fn every_csv_we_write_is_inert() {
        let dir = tempfile::tempdir().unwrap();
        let mut df = df!("id" => ["=cmd|' /C calc'!A0", "@SUM(1+1)", "C1"], "n" => [1.0, -2.0, 3.0]).unwrap();
        let path = dir.path().join("t.csv");
        write_csv(&mut df, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("'=cmd") && text.contains("'@SUM(1+1)"), "{text}");
        assert!(text.contains("C1,3.0") && text.contains(",-2.0"), "{text}");
    }

    /// The generic template's columns filled from the run's segmentations: names in the
    /// run's language, tags joined, and a segmentation the run did not make left empty.
    #[test]
    fn the_crm_import_reads_the_runs_segmentations() {
        let labels = df!(
            "client_id" => ["C1", "C2"],
            "name" => ["甲", "乙"],
            "accountant" => ["王芳", "李明"],
            "value_tier" => ["V1", "V2"],
            "value_tier_en" => ["Core; key", "Growth"],
            "value_tier_zh" => ["核心", "成长"],
            "behaviour_segment" => ["B1", "B2"],
            "behaviour_segment_en" => ["Late payers", "On time"],
            "behaviour_segment_zh" => ["逾期", "准时"],
        )
        .unwrap();
        let (columns, sep) = crm_template("generic").unwrap();
        let crm = CrmSettings {
            template: "generic".into(),
            columns: columns.iter().map(|(h, c)| (h.to_string(), c.to_string())).collect(),
            tag_separator: sep.into(),
        };
        let text = |df: &DataFrame, c: &str| -> Vec<Option<String>> {
            df.column(c)
                .unwrap()
                .str()
                .unwrap()
                .iter()
                .map(|v| v.map(String::from))
                .collect()
        };
        let both = crm_frame(&labels, &crm, &[], &["value_tier", "behaviour_segment"], Lang::Zh, "r1").unwrap();
        assert_eq!(text(&both, "tier"), [Some("核心".into()), Some("成长".into())]);
        assert_eq!(text(&both, "segment"), [Some("逾期".into()), Some("准时".into())]);
        assert_eq!(
            text(&both, "tags"),
            [Some("核心;逾期".into()), Some("成长;准时".into())]
        );
        // English names, with the separator inside a name kept out of the tags.
        let en = crm_frame(&labels, &crm, &[], &["value_tier", "behaviour_segment"], Lang::En, "r1").unwrap();
        assert_eq!(text(&en, "tags")[0], Some("Core / key;Late payers".into()));
        // Without behaviour segments (billing-only firms): that column is empty.
        let value_only = labels.drop_many(["behaviour_segment", "behaviour_segment_en", "behaviour_segment_zh"]);
        let one = crm_frame(&value_only, &crm, &[], &["value_tier"], Lang::En, "r1").unwrap();
        assert_eq!(text(&one, "segment"), [None, None]);
        // Any other column the labels lack is an error, not an empty column.
        let mut wrong = crm.clone();
        wrong.columns.push(("Industry".into(), "industry".into()));
        assert!(crm_frame(&value_only, &wrong, &[], &["value_tier"], Lang::En, "r1").is_err());
        assert_eq!(text(&one, "tags"), [Some("Core / key".into()), Some("Growth".into())]);
    }
}
