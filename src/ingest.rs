//! Ingest: reads each input table (CSV, Excel or Parquet) under its canonical column
//! names, with the file's own row numbers, and fingerprints the file for the manifest.
//!
//! Cells are read as text unless a reader can parse a whole column plainly (ISO dates,
//! plain numbers: the typed CSV reader and the compact reader in `compact`). Anything
//! less plain stays text on purpose: parsing happens in `validate`, which can then report
//! the exact cell that failed instead of a reader error for the whole file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::schema::Table;

mod compact;
pub mod declared;
pub mod discover;
pub mod layout;
pub mod vocabulary;

pub use discover::{discover, Found, FoundBy};
pub use layout::{ColumnMatch, How, Layout};

/// Text encoding of CSV inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Auto,
    Utf8,
    Gb18030,
    /// Latin-1 / Windows-1252 (Western European Excel exports).
    Latin1,
}

/// Where one input table is read from.
#[derive(Debug, Clone, Serialize)]
pub struct TableSource {
    pub table: Table,
    /// `None` when the table is optional and absent.
    pub path: Option<PathBuf>,
    /// The worksheet, in a workbook of several sheets (else the one named for the table,
    /// else the first).
    pub sheet: Option<String>,
    /// Canonical column name -> header in the file.
    pub mapping: BTreeMap<String, String>,
}

/// Looks for `NAME.csv`, `NAME.xlsx`, then `NAME.parquet` in `dir`.
pub fn find_table_file(dir: &Path, name: &str) -> Option<PathBuf> {
    ["csv", "xlsx", "parquet"]
        .iter()
        .map(|ext| dir.join(format!("{name}.{ext}")))
        .find(|p| p.is_file())
}

/// Where and how the input tables are read: the ingest stage's checked parameters.
#[derive(Debug, Clone, Serialize)]
pub struct InputParams {
    /// The folder the tables are looked for in (input.dir).
    pub dir: PathBuf,
    /// One per table, in schema order.
    pub sources: Vec<TableSource>,
    pub encoding: Encoding,
}

impl InputParams {
    pub fn source(&self, table: Table) -> Option<&TableSource> {
        self.sources.iter().find(|s| s.table == table)
    }
}

/// Name of the column that carries each row's number in its file.
pub const ROW: &str = "__row";

/// The longest cell accepted: Excel's limit for one cell (32,767 characters). Longer
/// cells are rejected in validation, before anything is computed from them.
pub const MAX_CELL_CHARS: usize = 32_767;

#[derive(Debug, Error)]
pub enum IngestError {
    #[error("{table} table not found in {dir}: no file or sheet is named for it ({table}.csv, {zh}.xlsx, ...) and none has its columns ({required}). The folder holds: {listing}. Name the file, or set input.{table} (or input.dir) in the config")]
    Missing {
        table: &'static str,
        zh: &'static str,
        dir: String,
        required: String,
        listing: String,
    },
    #[error("two files could be the {table} table: {a} and {b}. Keep one of them in the folder, or say which to read in the config: {how}")]
    AmbiguousTable {
        table: &'static str,
        a: String,
        b: String,
        how: String,
    },
    #[error("{file}: no row among the first {rows} reads as the {table} table's header (looked for {looked_for}); the first rows read: {first}. Put the column names in one row above the data, or map them in the config under [columns.{table}]")]
    NoHeader {
        file: String,
        table: &'static str,
        rows: usize,
        looked_for: String,
        first: String,
    },
    #[error("{file}: the header '{header}' could be {columns} of the {table} table, so it is not read. Rename the header, or map it in the config: [columns.{table}] {first} = \"{header}\"")]
    AmbiguousHeader {
        file: String,
        table: &'static str,
        header: String,
        columns: String,
        first: String,
    },
    #[error("{file}: the headers '{a}' and '{b}' both read as {column} of the {table} table. Rename one, or map the right one in the config: [columns.{table}] {column} = \"{a}\"")]
    HeaderClash {
        file: String,
        table: &'static str,
        column: String,
        a: String,
        b: String,
    },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: unsupported file type; use .csv, .xlsx or .parquet")]
    Format { path: PathBuf },
    #[error("{file}: required column '{expected}' not found{mapped}; closest header in the file: '{closest}'. Rename the header, or map it in the config under [columns.{table}]")]
    MissingColumn {
        file: String,
        table: &'static str,
        expected: String,
        mapped: String,
        closest: String,
    },
    #[error("{file}: column '{expected}' looks misnamed as '{found}'. Rename the header, or map it in the config: [columns.{table}] {expected} = \"{found}\"")]
    Misnamed {
        file: String,
        table: &'static str,
        expected: String,
        found: String,
    },
    #[error("{file}: the file has no data rows")]
    Empty { file: String },
    #[error("{file} is not a CSV text file: {what}")]
    NotText { file: String, what: String },
    #[error("{file}: the header is one column, '{header}': the file seems to use '{sep}' between columns. Save it as comma-separated CSV (in Excel: CSV UTF-8)")]
    Delimiter { file: String, header: String, sep: char },
    #[error("{file}, row {row}: {found} cells where the header has {expected}. A comma inside a cell must be quoted (\"1,200\"); or save the table again as CSV from Excel")]
    Ragged {
        file: String,
        row: usize,
        found: usize,
        expected: usize,
    },
    #[error("{file}: the header '{header}' appears twice; remove or rename one of the columns so it is clear which one to read")]
    DuplicateHeader { file: String, header: String },
    #[error("{file}, row {row}, column '{column}': a quote (\") in the middle of a cell. A cell with quotes must be quoted whole, its quotes doubled (\"say \"\"hi\"\"\"); or remove the quote, or save the table again as CSV from Excel")]
    StrayQuote { file: String, row: usize, column: String },
}

impl IngestError {
    /// Turns an I/O error on `path` into this error.
    fn io(path: &Path) -> impl Fn(std::io::Error) -> IngestError + Copy + '_ {
        move |source| IngestError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A file's name as messages show it (the whole path when it has none).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

/// One table as read: canonical text columns plus [`ROW`].
#[derive(Debug, Clone)]
pub struct RawTable {
    pub table: Table,
    pub file: String,
    pub df: DataFrame,
    /// Canonical optional columns the file does not have.
    pub absent: Vec<String>,
    /// Text columns read as UInt32 codes (the compact reader's form), with the distinct
    /// texts the codes stand for.
    pub dictionaries: Vec<(String, Vec<String>)>,
    /// Where the header was and how each column was recognised.
    pub layout: Layout,
}

impl RawTable {
    /// The texts behind a coded column's codes, when the column is coded.
    pub fn dictionary(&self, column: &str) -> Option<&[String]> {
        self.dictionaries
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, d)| d.as_slice())
    }
}

/// What the manifest records of an input file.
#[derive(Debug, Clone, Serialize)]
pub struct InputFile {
    pub table: Table,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub rows: usize,
    /// The sheet, header row and column mapping read, and the rows skipped.
    pub layout: Layout,
}

pub struct RawInputs {
    pub clients: RawTable,
    pub billing: RawTable,
    /// The optional tables the input has (activity, staff, ...), in schema order.
    pub optional: Vec<RawTable>,
    pub files: Vec<InputFile>,
}

impl RawInputs {
    /// Takes an optional table out, when the input has it.
    pub fn take(&mut self, table: Table) -> Option<RawTable> {
        let i = self.optional.iter().position(|t| t.table == table)?;
        Some(self.optional.remove(i))
    }
}

/// Reads all tables named by the settings.
pub fn read_inputs(input: &InputParams) -> Result<RawInputs, IngestError> {
    let sources: Vec<&TableSource> = input.sources.iter().collect();
    // Fingerprints are computed on their own thread while the files are parsed.
    let paths: Vec<PathBuf> = sources.iter().filter_map(|s| s.path.clone()).collect();
    let hashing = std::thread::spawn(move || -> Vec<(PathBuf, Result<String, IngestError>)> {
        paths.into_iter().map(|p| (p.clone(), sha256_file(&p))).collect()
    });
    // The tables are read side by side: each reader has stretches on one core (polars'
    // setup, block reads) that another fills. Errors are reported in table order.
    let results: Vec<Result<Option<RawTable>, IngestError>> = std::thread::scope(|scope| {
        let jobs: Vec<_> = sources
            .iter()
            .map(|source| {
                scope.spawn(move || match &source.path {
                    Some(path) => read_table_in(
                        source.table,
                        path,
                        source.sheet.as_deref(),
                        &source.mapping,
                        input.encoding,
                    )
                    .map(Some),
                    None => Ok(None),
                })
            })
            .collect();
        jobs.into_iter()
            .map(|j| j.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let tables = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let hashes = hashing.join().unwrap_or_default();
    let mut files = Vec::new();
    for (source, raw) in sources.iter().zip(&tables) {
        let (Some(path), Some(raw)) = (&source.path, raw) else {
            continue;
        };
        let sha256 = match hashes.iter().find(|(p, _)| p == path) {
            Some((_, Ok(h))) => h.clone(),
            _ => sha256_file(path)?,
        };
        files.push(InputFile {
            table: source.table,
            path: path.display().to_string(),
            bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            sha256,
            rows: raw.df.height(),
            layout: raw.layout.clone(),
        });
    }
    let (mut clients, mut billing, mut optional) = (None, None, Vec::new());
    for (source, raw) in sources.iter().zip(tables) {
        match (source.table, raw) {
            (Table::Clients, raw) => clients = raw,
            (Table::Billing, raw) => billing = raw,
            (_, Some(raw)) => optional.push(raw),
            (_, None) => {}
        }
    }
    Ok(RawInputs {
        clients: clients.ok_or_else(|| missing_table(Table::Clients, &input.dir))?,
        billing: billing.ok_or_else(|| missing_table(Table::Billing, &input.dir))?,
        optional,
        files,
    })
}

/// The error for a required table that is not in the folder.
pub fn missing_table(table: Table, dir: &Path) -> IngestError {
    IngestError::Missing {
        table: table.name(),
        zh: table.zh(),
        dir: dir.display().to_string(),
        required: table.required().join(", "),
        listing: discover::listing(dir),
    }
}

pub fn sha256_file(path: &Path) -> Result<String, IngestError> {
    let io = IngestError::io(path);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads one table file and renames its headers to canonical names.
pub fn read_table(
    table: Table,
    path: &Path,
    mapping: &std::collections::BTreeMap<String, String>,
    encoding: Encoding,
) -> Result<RawTable, IngestError> {
    read_table_in(table, path, None, mapping, encoding)
}

/// Reads one table from a file (and a sheet of a workbook). The header is looked for
/// among the first rows; plain files (header on the first line, no totals row at the
/// end) go through the fast readers.
pub fn read_table_in(
    table: Table,
    path: &Path,
    sheet: Option<&str>,
    mapping: &std::collections::BTreeMap<String, String>,
    encoding: Encoding,
) -> Result<RawTable, IngestError> {
    if !path.is_file() {
        return Err(IngestError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        });
    }
    let csv = is_csv(path);
    if csv {
        check_text(path)?;
    }
    let plain = csv && {
        let head = head_rows(path, None, encoding)?;
        let form = csv_form(path)?;
        form.sep == b','
            && form.utf16.is_none()
            && layout::find_header_row(table, &head, mapping).unwrap_or(0) == 0
            && !tail_has_extra_rows(path)?
    };
    if plain && matches!(table, Table::Billing | Table::Activity) {
        // A row of empty cells (,,,) is skipped by the general path, not rejected.
        let no_blank_row = |raw: &RawTable| {
            let mut all_null: Option<BooleanChunked> = None;
            for c in raw.df.columns().iter().filter(|c| c.name().as_str() != ROW) {
                let m = c.is_null();
                all_null = Some(match all_null {
                    None => m,
                    Some(a) => &a & &m,
                });
            }
            all_null.is_none_or(|m| !m.any())
        };
        if let Some(raw) = read_compact(table, path, mapping, encoding)?.filter(no_blank_row) {
            return Ok(raw);
        }
    }
    read_general(table, path, sheet, mapping, encoding, plain)
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("txt"))
}

/// How a CSV file is written beyond its encoding: the separator (a comma, or a tab as
/// Excel's "Unicode text" and some exports write), and UTF-16 when it starts with its
/// byte-order mark.
#[derive(Debug, Clone, Copy)]
struct CsvForm {
    sep: u8,
    utf16: Option<&'static encoding_rs::Encoding>,
}

fn csv_form(path: &Path) -> Result<CsvForm, IngestError> {
    let io = IngestError::io(path);
    let mut head = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(io)?;
    let utf16 = if head.starts_with(b"\xFF\xFE") {
        Some(encoding_rs::UTF_16LE)
    } else if head.starts_with(b"\xFE\xFF") {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    };
    let text = decode_head(&head, utf16);
    // The separator of the line with the most of them among the first lines: a title
    // line above the header has few of either.
    let count = |line: &str, sep: char| {
        let mut quoted = false;
        line.chars()
            .filter(|&c| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == sep && !quoted
            })
            .count()
    };
    let (commas, tabs) = text
        .lines()
        .take(layout::HEADER_SEARCH_ROWS)
        .map(|l| (count(l, ','), count(l, '\t')))
        .max_by_key(|(c, t)| *c.max(t))
        .unwrap_or((0, 0));
    Ok(CsvForm {
        sep: if tabs > commas { b'\t' } else { b',' },
        utf16,
    })
}

/// Whether the last lines of a CSV hold a totals row or a note (合计, 制表人：...), which
/// the fast readers would take for data.
fn tail_has_extra_rows(path: &Path) -> Result<bool, IngestError> {
    use std::io::{Seek, SeekFrom};
    let io = IngestError::io(path);
    let form = csv_form(path)?;
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    // An even offset keeps UTF-16 text aligned on its characters.
    let start = len.saturating_sub(8 * 1024) & !1;
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).map_err(io)?;
    let text = decode_head(&buf, form.utf16);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    Ok(lines.iter().rev().take(5).any(|line| {
        let cells = split_csv_line(line, form.sep);
        let filled: Vec<&String> = cells.iter().filter(|c| !c.trim().is_empty()).collect();
        cells.iter().any(|c| layout::is_totals(c)) || (filled.len() == 1 && layout::is_note(filled[0]))
    }))
}

/// The start (or a piece) of a file as text: UTF-16 when it says so, else UTF-8 when it
/// is, else GBK.
fn decode_head(bytes: &[u8], utf16: Option<&'static encoding_rs::Encoding>) -> String {
    if let Some(enc) = utf16 {
        return enc.decode_with_bom_removal(bytes).0.to_string();
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(t) => t.to_string(),
        // A character cut at the end of the sample is not a reason to call it GBK.
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).to_string(),
        Err(_) => encoding_rs::GB18030.decode(bytes).0.to_string(),
    }
}

/// The cells of one CSV line, quotes respected.
fn split_csv_line(line: &str, sep: u8) -> Vec<String> {
    let sep = sep as char;
    let mut out = Vec::new();
    let (mut cell, mut quoted) = (String::new(), false);
    for ch in line.trim_end_matches('\r').chars() {
        match (ch, quoted) {
            ('"', _) => quoted = !quoted,
            (c, false) if c == sep => out.push(std::mem::take(&mut cell).trim().to_string()),
            (c, _) => cell.push(c),
        }
    }
    out.push(cell.trim().to_string());
    out
}

/// The first rows of a table's file as text cells, for finding its header: the first
/// lines of a CSV, the first rows of a worksheet, a Parquet file's column names.
pub fn head_rows(path: &Path, sheet: Option<&str>, encoding: Encoding) -> Result<Vec<Vec<String>>, IngestError> {
    rows_of(path, sheet, encoding, Some(layout::HEADER_SEARCH_ROWS))
}

/// Every row of a CSV file or worksheet, as text (a declared table of an analysis).
pub fn all_rows(path: &Path, sheet: Option<&str>, encoding: Encoding) -> Result<Vec<Vec<String>>, IngestError> {
    rows_of(path, sheet, encoding, None)
}

fn rows_of(
    path: &Path,
    sheet: Option<&str>,
    encoding: Encoding,
    limit: Option<usize>,
) -> Result<Vec<Vec<String>>, IngestError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let err = |message: String| IngestError::Parse {
        path: path.to_path_buf(),
        message,
    };
    match ext.as_str() {
        "csv" | "txt" => {
            let mut buf = Vec::new();
            let bytes = match limit {
                Some(_) => 256 * 1024,
                None => u64::MAX,
            };
            std::fs::File::open(path)
                .map_err(IngestError::io(path))?
                .take(bytes)
                .read_to_end(&mut buf)
                .map_err(IngestError::io(path))?;
            let form = csv_form(path)?;
            let text = if encoding == Encoding::Latin1 && form.utf16.is_none() {
                encoding_rs::WINDOWS_1252.decode(&buf).0.to_string()
            } else {
                decode_head(&buf, form.utf16)
            };
            Ok(csv_lines(&text)
                .into_iter()
                .filter(|l| !l.trim().is_empty() || limit.is_some())
                .take(limit.unwrap_or(usize::MAX))
                .map(|l| split_csv_line(&l, form.sep))
                .collect())
        }
        "xlsx" | "xlsm" | "xls" => {
            let (_, range, _) = worksheet(path, sheet, None)?;
            Ok(range
                .rows()
                .take(limit.unwrap_or(usize::MAX))
                .map(|r| r.iter().map(|c| cell_text(c).unwrap_or_default()).collect())
                .collect())
        }
        "parquet" => {
            let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
            let schema = ParquetReader::new(file).schema().map_err(|e| err(e.to_string()))?;
            Ok(vec![schema.iter_names().map(|n| n.to_string()).collect()])
        }
        _ => Err(IngestError::Format {
            path: path.to_path_buf(),
        }),
    }
}

/// A CSV text's lines, a quoted line break kept inside its line.
fn csv_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut line, mut quoted) = (String::new(), false);
    for ch in text.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                line.push(ch);
            }
            '\n' if !quoted => out.push(std::mem::take(&mut line)),
            c => line.push(c),
        }
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// Byte offset of line `n` (0-based) of a CSV text, quoted line breaks not counted.
fn line_offset(text: &str, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let (mut seen, mut quoted) = (0usize, false);
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => {
                seen += 1;
                if seen == n {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// The first row (as Excel numbers it) with more cells than the header, quotes
/// respected: what the CSV reader's "more fields than defined" means, for the message.
fn ragged_row(path: &Path) -> Option<(usize, usize, usize)> {
    let text = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&text);
    let mut rows = Vec::new();
    let (mut cells, mut quoted, mut row_start) = (1usize, false, true);
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => cells += 1,
            '\n' if !quoted => {
                if !row_start {
                    rows.push(cells);
                }
                cells = 1;
                row_start = true;
                continue;
            }
            '\r' => continue,
            _ => {}
        }
        row_start = false;
    }
    if !row_start {
        rows.push(cells);
    }
    let expected = *rows.first()?;
    rows.iter()
        .enumerate()
        .skip(1)
        .find(|(_, &n)| n > expected)
        .map(|(i, &n)| (i + 1, n, expected))
}

/// The first quote inside an unquoted cell, or text after a quoted cell's closing quote,
/// as (row as Excel numbers it, the column's header): what a CSV reader cannot read.
fn stray_quote(path: &Path) -> Option<(usize, String)> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let header: Vec<&str> = text.lines().next()?.trim_start_matches('\u{feff}').split(',').collect();
    let column = |k: usize| {
        header
            .get(k)
            .map_or(format!("{}", k + 1), |h| h.trim_matches('"').to_string())
    };
    let (mut row, mut col, mut at_start, mut quoted, mut closed) = (1usize, 0usize, true, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                }
                '"' => {
                    quoted = false;
                    closed = true;
                }
                '\n' => row += 1,
                _ => {}
            }
            continue;
        }
        match c {
            ',' => {
                col += 1;
                at_start = true;
                closed = false;
            }
            '\n' => {
                row += 1;
                col = 0;
                at_start = true;
                closed = false;
            }
            '\r' => {}
            _ if closed => return Some((row, column(col))),
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' => return Some((row, column(col))),
            _ => at_start = false,
        }
    }
    None
}

/// Refuses a .csv that is not text: a workbook or Parquet file with the wrong name, or
/// binary data, which a CSV reader would turn into garbage columns.
fn check_text(path: &Path) -> Result<(), IngestError> {
    let io = IngestError::io(path);
    let mut head = vec![0u8; 64 * 1024];
    let mut file = std::fs::File::open(path).map_err(io)?;
    let n = file.read(&mut head).map_err(io)?;
    let head = &head[..n];
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        // UTF-16 text (Excel's "Unicode text"): zero bytes are half its characters.
        return Ok(());
    }
    let what = if head.starts_with(b"PK\x03\x04") {
        "it is a zip archive, probably an Excel workbook: name it .xlsx"
    } else if head.starts_with(b"PAR1") {
        "it is a Parquet file: name it .parquet"
    } else if head.contains(&0) {
        "it holds binary data (zero bytes); export the table again as CSV"
    } else {
        return Ok(());
    };
    Err(IngestError::NotText {
        file: file_name(path),
        what: what.into(),
    })
}

/// The readers for every file type and every form of cell: text columns, except what the
/// typed CSV reader could parse. Public so that tests can check the compact reader
/// against it.
pub fn read_table_general(
    table: Table,
    path: &Path,
    mapping: &std::collections::BTreeMap<String, String>,
    encoding: Encoding,
) -> Result<RawTable, IngestError> {
    read_general(
        table,
        path,
        None,
        mapping,
        encoding,
        is_csv(path) && !tail_has_extra_rows(path)?,
    )
}

/// A file as read, before its headers are matched: every column, the header found.
struct Sheet {
    df: DataFrame,
    /// Row number (as Excel numbers it) of the first row of `df`.
    first_row: usize,
    /// Row number of the header.
    header_row: usize,
    sheet: Option<String>,
    /// The rows looked at for the header, when none read as the table's header.
    unrecognised: Option<Vec<Vec<String>>>,
}

/// The file's rows, by its extension: CSV (header row found, typed when plain), a
/// spreadsheet's sheet, or Parquet.
fn read_sheet(
    table: Table,
    path: &Path,
    sheet: Option<&str>,
    mapping: &std::collections::BTreeMap<String, String>,
    encoding: Encoding,
    plain: bool,
) -> Result<Sheet, IngestError> {
    let parse = |e: PolarsError| IngestError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match ext.as_str() {
        "csv" | "txt" => {
            let head = head_rows(path, None, encoding)?;
            let found = layout::find_header_row(table, &head, mapping);
            let at = found.unwrap_or(0);
            let typed = if plain && at == 0 {
                read_csv_typed(table, path, mapping, encoding)?
            } else {
                None
            };
            let df = match typed {
                Some(df) => df,
                None => read_csv(path, encoding, at)?,
            };
            Sheet {
                df,
                // Header is line at + 1, so the first data row is line at + 2, as Excel shows it.
                first_row: at + 2,
                header_row: at + 1,
                sheet: None,
                unrecognised: found.is_none().then_some(head),
            }
        }
        "xlsx" | "xlsm" | "xls" => read_excel(path, table, sheet, mapping)?,
        "parquet" => Sheet {
            df: ParquetReader::new(std::fs::File::open(path).map_err(IngestError::io(path))?)
                .finish()
                .map_err(parse)?,
            first_row: 1,
            header_row: 0,
            sheet: None,
            unrecognised: None,
        },
        _ => {
            return Err(IngestError::Format {
                path: path.to_path_buf(),
            })
        }
    })
}

/// The mapped columns under their canonical names (text unless the typed reader parsed
/// them), with cells trimmed, blank ones null, and client ids in one form.
fn canonical_columns(table: Table, df: &DataFrame, renames: &[(String, String)]) -> PolarsResult<DataFrame> {
    let mut columns = Vec::with_capacity(renames.len() + 1);
    for (header, canonical) in renames {
        let col = df.column(header)?;
        // Columns the typed reader already parsed stay typed; the rest become text.
        let col = if typed_column(table, canonical).as_ref() == Some(col.dtype()) {
            col.clone()
        } else {
            col.cast(&DataType::String)?
        };
        columns.push(col.with_name(canonical.as_str().into()));
    }
    columns.push(df.column(ROW)?.clone());
    let df = DataFrame::new_infer_height(columns)?;
    // Trim cells and turn blank ones into nulls once, here, for every later stage.
    let exprs: Vec<Expr> = renames
        .iter()
        .filter(|(_, c)| df.column(c).map(|c| c.dtype() == &DataType::String).unwrap_or(false))
        .map(|(_, c)| {
            let t = col(c.as_str()).str().strip_chars(lit(NULL));
            when(t.clone().eq(lit("")))
                .then(lit(NULL).cast(DataType::String))
                .otherwise(t)
                .alias(c.as_str())
        })
        .collect();
    let mut df = df.lazy().with_columns(exprs).collect()?;
    if let Ok(ids) = df.column("client_id").and_then(|c| c.str().cloned()) {
        if ids.iter().flatten().any(|id| !id.is_ascii()) {
            let ids: StringChunked = ids
                .iter()
                .map(|v| v.map(|id| normalise_id(id).into_owned()))
                .collect::<StringChunked>()
                .with_name("client_id".into());
            df.with_column(ids.into_column())?;
        }
    }
    Ok(df)
}

fn read_general(
    table: Table,
    path: &Path,
    sheet: Option<&str>,
    mapping: &std::collections::BTreeMap<String, String>,
    encoding: Encoding,
    plain: bool,
) -> Result<RawTable, IngestError> {
    let parse = |e: PolarsError| IngestError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let read = read_sheet(table, path, sheet, mapping, encoding, plain)?;
    let file = file_name(path);
    let Sheet {
        df,
        first_row,
        header_row,
        sheet,
        unrecognised,
    } = read;
    // Rows are numbered before any is skipped, so that every number is the file's own.
    let df = df
        .with_row_index(ROW.into(), Some(first_row as IdxSize))
        .map_err(parse)?;
    let (mut df, totals_skipped, notes_skipped) = skip_extra_rows(df).map_err(parse)?;
    // An empty staff list is allowed: allocation then says it has nobody to plan with.
    if df.height() == 0 && table != Table::Staff {
        return Err(IngestError::Empty { file });
    }
    let headers: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .filter(|s| s != ROW)
        .collect();
    if let [only] = headers.as_slice() {
        if let Some(sep) = [';', '\t', '|'].into_iter().find(|c| only.contains(*c)) {
            return Err(IngestError::Delimiter {
                file,
                header: only.chars().take(60).collect(),
                sep,
            });
        }
    }
    let label = match &sheet {
        Some(s) => format!("{file} (sheet {s})"),
        None => file.clone(),
    };
    let resolved = resolve_columns(table, &label, &headers, mapping);
    let (renames, absent, matched) = match (resolved, unrecognised) {
        (Err(IngestError::MissingColumn { .. }), Some(rows)) => return Err(no_header(table, &label, &rows)),
        (r, _) => r?,
    };

    df = canonical_columns(table, &df, &renames).map_err(parse)?;
    let layout = Layout {
        sheet,
        header_row,
        totals_skipped,
        notes_skipped,
        ..layout_of(&headers, matched)
    };
    Ok(RawTable {
        table,
        file,
        df,
        absent,
        dictionaries: Vec::new(),
        layout,
    })
}

/// The layout of a table's columns: which header is which column, which are unused.
fn layout_of(headers: &[String], matched: layout::HeaderMatch) -> Layout {
    let unused = headers
        .iter()
        .filter(|h| !matched.columns.iter().any(|m| &m.header == *h))
        .filter(|h| !matched.ambiguous.iter().any(|(a, _)| a == *h))
        .map(|h| layout::clean(h))
        .collect();
    // Headers as the file shows them, without a byte-order mark.
    let columns = matched
        .columns
        .into_iter()
        .map(|c| ColumnMatch {
            header: layout::clean(&c.header),
            ..c
        })
        .collect();
    Layout {
        header_row: 1,
        columns,
        ambiguous: matched.ambiguous,
        unused,
        ..Layout::default()
    }
}

fn no_header(table: Table, file: &str, rows: &[Vec<String>]) -> IngestError {
    let first: Vec<String> = rows
        .iter()
        .filter(|r| r.iter().any(|c| !c.trim().is_empty()))
        .take(3)
        .map(|r| {
            let cells: Vec<&str> = r.iter().map(|c| c.trim()).filter(|c| !c.is_empty()).take(8).collect();
            format!("'{}'", cells.join(", "))
        })
        .collect();
    let looked_for = table
        .required()
        .iter()
        .map(|c| {
            let zh: Vec<&str> = vocabulary::COLUMNS
                .iter()
                .filter(|w| w.table == table && w.column == *c)
                .flat_map(|w| w.words.iter().skip(1).take(2).copied())
                .collect();
            format!("{c} ({})", zh.join(" / "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    IngestError::NoHeader {
        file: file.into(),
        table: table.name(),
        rows: layout::HEADER_SEARCH_ROWS,
        looked_for,
        first: if first.is_empty() {
            "(nothing)".into()
        } else {
            first.join(" / ")
        },
    }
}

/// Drops the rows that are not data: totals (合计, 小计) and blank rows anywhere, and
/// one-cell notes (单位：元, 制表人：...) before the first row of data and after the
/// last. Returns the rest, the totals rows and the notes and blank rows dropped.
fn skip_extra_rows(df: DataFrame) -> PolarsResult<(DataFrame, usize, usize)> {
    let n = df.height();
    let texts: Vec<StringChunked> = df
        .columns()
        .iter()
        .filter(|c| c.name().as_str() != ROW && c.dtype() == &DataType::String)
        .filter_map(|c| c.str().ok().map(|s| s.rechunk().into_owned()))
        .collect();
    let typed = df.width() - 1 - texts.len();
    let mut keep = vec![true; n];
    let mut totals = 0usize;
    let likely = |s: &str| {
        s.len() <= 40
            && s.trim_start().chars().next().is_some_and(|c| {
                matches!(
                    c,
                    '合' | '小' | '总' | '共' | '本' | '累' | 't' | 'T' | 's' | 'S' | 'g' | 'G'
                )
            })
    };
    // Cells that hold anything, per row: a row with none is blank.
    let mut filled = vec![0u32; n];
    for t in &texts {
        for (i, v) in t.iter().enumerate() {
            if let Some(v) = v {
                if !v.trim().is_empty() {
                    filled[i] += 1;
                }
                if keep[i] && likely(v) && layout::is_totals(v) {
                    keep[i] = false;
                    totals += 1;
                }
            }
        }
    }
    let typed_cols: Vec<&Column> = df
        .columns()
        .iter()
        .filter(|c| c.name().as_str() != ROW && c.dtype() != &DataType::String)
        .collect();
    for c in &typed_cols {
        for (i, v) in c.is_not_null().iter().enumerate() {
            if v == Some(true) {
                filled[i] += 1;
            }
        }
    }
    // Blank rows anywhere (a worksheet's separator rows), and notes (单位：元 under the
    // header, 制表人 under the table) before the first row of data and after the last.
    let mut notes = 0usize;
    for i in 0..n {
        if keep[i] && filled[i] == 0 {
            keep[i] = false;
            notes += 1;
        }
    }
    let extra = |i: usize| {
        let filled: Vec<&str> = texts
            .iter()
            .filter_map(|t| t.get(i))
            .filter(|v| !v.trim().is_empty())
            .collect();
        let typed_filled = typed > 0 && typed_cols.iter().any(|c| c.get(i).is_ok_and(|v| !v.is_null()));
        !typed_filled && (filled.is_empty() || filled.len() == 1 && layout::is_note(filled[0]))
    };
    let mut first = 0usize;
    while first < n && (!keep[first] || extra(first)) {
        if keep[first] {
            keep[first] = false;
            notes += 1;
        }
        first += 1;
    }
    for i in (first..n).rev() {
        if !keep[i] {
            continue;
        }
        if !extra(i) {
            break;
        }
        keep[i] = false;
        notes += 1;
    }
    if totals == 0 && notes == 0 {
        return Ok((df, 0, 0));
    }
    let mask = BooleanChunked::from_slice("keep".into(), &keep);
    Ok((df.filter(&mask)?, totals, notes))
}

/// A client id as compared: full-width letters, digits and signs (Ｃ００１, as Chinese
/// input methods type them) become their ASCII forms, and the ideographic space a space,
/// trimmed. Upper and lower case are told apart later, in validation.
pub fn normalise_id(id: &str) -> std::borrow::Cow<'_, str> {
    if id.is_ascii() {
        return std::borrow::Cow::Borrowed(id);
    }
    let mapped: String = id
        .chars()
        .map(|c| match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            _ => c,
        })
        .collect();
    std::borrow::Cow::Owned(mapped.trim().to_string())
}

/// Billing and activity through the compact reader (see [`compact`]), when the file is
/// plain enough; `None` sends it to the general readers.
fn read_compact(
    table: Table,
    path: &Path,
    mapping: &std::collections::BTreeMap<String, String>,
    encoding: Encoding,
) -> Result<Option<RawTable>, IngestError> {
    use std::io::BufRead;
    if !is_utf8(path, encoding)? {
        return Ok(None);
    }
    let io = IngestError::io(path);
    let mut header = String::new();
    let file = std::fs::File::open(path).map_err(io)?;
    if std::io::BufReader::new(file).read_line(&mut header).is_err() || header.contains('"') {
        return Ok(None);
    }
    let headers: Vec<String> = header
        .trim_end_matches(['\r', '\n'])
        .split(',')
        .map(String::from)
        .collect();
    let name = file_name(path);
    // Header problems are reported by the general path, with the same messages.
    let Ok((renames, absent, matched)) = resolve_columns(table, &name, &headers, mapping) else {
        return Ok(None);
    };
    let kind_of = |canonical: &str| match canonical {
        "month" => Some(DataType::Date),
        c => typed_column(table, c),
    };
    let Some(mut read) = compact::read(path, &renames, kind_of)? else {
        return Ok(None);
    };
    // Oversized cells are named, row and column, by the general path's validation.
    if read.df.height() == 0
        || read
            .dictionaries
            .iter()
            .any(|(_, d)| d.iter().any(|t| t.len() > MAX_CELL_CHARS))
    {
        return Ok(None);
    }
    for (column, dict) in &mut read.dictionaries {
        if column.as_str() == "client_id" {
            for id in dict.iter_mut().filter(|id| !id.is_ascii()) {
                *id = normalise_id(id).into_owned();
            }
        }
    }
    // No blank lines or quoted line breaks on this path: row i is line i + 2.
    let df = read
        .df
        .with_row_index(ROW.into(), Some(2))
        .map_err(|e| IngestError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(Some(RawTable {
        table,
        file: name,
        df,
        absent,
        dictionaries: read.dictionaries,
        layout: layout_of(&headers, matched),
    }))
}

/// The type a canonical column has once parsed, for the columns the CSV reader can parse
/// itself (ISO dates, plain numbers).
pub fn typed_column(table: Table, canonical: &str) -> Option<DataType> {
    match (table, canonical) {
        (Table::Clients, "contract_start" | "contract_end")
        | (Table::Billing, "invoice_date" | "due_date" | "paid_date") => Some(DataType::Date),
        (Table::Clients, "employees" | "annual_revenue" | "monthly_fee")
        | (Table::Billing, "amount")
        | (Table::Activity, "vouchers" | "filings" | "hours" | "tickets" | "late_documents") => Some(DataType::Float64),
        _ => None,
    }
}

/// The fast path for large, clean UTF-8 files: only the mapped columns, with dates and
/// numbers parsed by the CSV reader. Any cell it cannot parse (a date like 2024年1月5日, an
/// amount like 1,200.00) makes it give up, and the file is read as text instead, so that
/// validation can name each bad cell. Measured at 1M clients: ingest 40 s -> 18 s, and
/// half the memory of reading everything as text.
fn read_csv_typed(
    table: Table,
    path: &Path,
    mapping: &std::collections::BTreeMap<String, String>,
    encoding: Encoding,
) -> Result<Option<DataFrame>, IngestError> {
    if !is_utf8(path, encoding)? {
        return Ok(None);
    }
    let Ok(head) = CsvReadOptions::default()
        .with_has_header(true)
        .with_n_rows(Some(1))
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
    else {
        return Ok(None);
    };
    let headers: Vec<String> = head.get_column_names().iter().map(|s| s.to_string()).collect();
    let file = file_name(path);
    // Header problems are reported by the text path, with the same messages.
    let Ok((renames, _, _)) = resolve_columns(table, &file, &headers, mapping) else {
        return Ok(None);
    };
    let mut overwrite = Schema::default();
    for (header, canonical) in &renames {
        if let Some(dt) = typed_column(table, canonical) {
            overwrite.insert(header.as_str().into(), dt);
        }
    }
    let wanted: Arc<[PlSmallStr]> = renames.iter().map(|(h, _)| PlSmallStr::from(h.as_str())).collect();
    // The eager reader: about a third faster here than a lazy scan of the same file.
    Ok(CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_schema_overwrite(Some(Arc::new(overwrite)))
        .with_columns(Some(wanted))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .ok())
}

/// Whether a CSV is read as UTF-8: as configured, or (auto) when its first 64 KiB are.
fn is_utf8(path: &Path, encoding: Encoding) -> Result<bool, IngestError> {
    let io = IngestError::io(path);
    Ok(match encoding {
        Encoding::Utf8 => true,
        Encoding::Gb18030 | Encoding::Latin1 => false,
        Encoding::Auto => {
            let mut head = vec![0u8; 64 * 1024];
            let mut file = std::fs::File::open(path).map_err(io)?;
            let n = file.read(&mut head).map_err(io)?;
            // An error with no length is a character cut off at the end of the sample.
            !matches!(std::str::from_utf8(&head[..n]), Err(e) if e.error_len().is_some())
        }
    })
}

/// Whether bytes that are not UTF-8 read as Chinese GBK text. Latin-1 text (é, ü, ñ
/// followed by a letter) also decodes as GBK, but into rare characters whose second byte
/// is below 0xA1; real Chinese text is almost all in the GB2312 block (both bytes 0xA1 and
/// up). Decoding a Latin-1 file as GBK would give garbled names without any error.
pub fn looks_like_gbk(bytes: &[u8]) -> bool {
    let (mut pairs, mut rare) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            i += 1;
            continue;
        }
        let Some(&t) = bytes.get(i + 1) else { break };
        // GB18030 four-byte sequences: lead, 0x30-0x39, lead, 0x30-0x39.
        if (0x30..=0x39).contains(&t) {
            pairs += 1;
            rare += 1;
            i += 4;
            continue;
        }
        pairs += 1;
        if !(0xA1..=0xF7).contains(&b) || t < 0xA1 {
            rare += 1;
        }
        i += 2;
    }
    pairs == 0 || rare * 5 <= pairs
}

/// Reads a CSV as text columns, its header on line `at` (0-based; title lines above it
/// are dropped). UTF-8 is read straight from the file; GBK / GB18030 (common in Chinese
/// Excel exports) is detected from the first 64 KiB, or set in the config, and decoded
/// first.
fn read_csv(path: &Path, encoding: Encoding, at: usize) -> Result<DataFrame, IngestError> {
    let io = IngestError::io(path);
    let parse = |e: PolarsError| match (ragged_row(path), stray_quote(path)) {
        (_, Some((row, column))) => IngestError::StrayQuote {
            file: file_name(path),
            row,
            column,
        },
        (Some((row, found, expected)), None) => IngestError::Ragged {
            file: file_name(path),
            row,
            found,
            expected,
        },
        (None, None) => IngestError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
    };
    let form = csv_form(path)?;
    let plain_utf8 = form.utf16.is_none() && is_utf8(path, encoding)?;
    if at == 0 && form.sep == b',' && plain_utf8 {
        return CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(parse);
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = if let Some(enc) = form.utf16 {
        enc.decode_with_bom_removal(&bytes).0
    } else if plain_utf8 {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        std::borrow::Cow::Owned(String::from_utf8_lossy(bytes).into_owned())
    } else if encoding == Encoding::Latin1 {
        encoding_rs::WINDOWS_1252.decode(&bytes).0
    } else {
        if encoding == Encoding::Auto && !looks_like_gbk(&bytes) {
            return Err(IngestError::Parse {
                path: path.to_path_buf(),
                message: "the file is not UTF-8, and it does not read as Chinese GBK either: it looks like \
                          Latin-1 / Windows-1252 text (accented letters). Save it as UTF-8 CSV, or set \
                          input.encoding = \"latin-1\" (or \"gb18030\" if it really is Chinese)"
                    .into(),
            });
        }
        let (text, _, had_errors) = encoding_rs::GB18030.decode(&bytes);
        if had_errors {
            return Err(IngestError::Parse {
                path: path.to_path_buf(),
                message: "the file is neither UTF-8 nor GBK/GB18030; save it as UTF-8 CSV, or set input.encoding"
                    .into(),
            });
        }
        text
    };
    let text = match at {
        0 => text.into_owned(),
        at => text[line_offset(&text, at)..].to_string(),
    };
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_parse_options(CsvParseOptions::default().with_separator(form.sep))
        .into_reader_with_file_handle(std::io::Cursor::new(text.into_bytes()))
        .finish()
        .map_err(parse)
}

/// One cell of a worksheet as text; Excel dates become 2024-01-05.
fn cell_text(cell: &calamine::Data) -> Option<String> {
    use calamine::Data;
    match cell {
        Data::Empty => None,
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Some(s.clone()),
        Data::Int(i) => Some(i.to_string()),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Some(format!("{}", *f as i64)),
        Data::Float(f) => Some(f.to_string()),
        Data::Bool(b) => Some(b.to_string()),
        Data::DateTime(d) if d.is_datetime() => {
            let (y, m, day, h, min, sec, _) = d.to_ymd_hms_milli();
            Some(if (h, min, sec) == (0, 0, 0) {
                format!("{y:04}-{m:02}-{day:02}")
            } else {
                format!("{y:04}-{m:02}-{day:02} {h:02}:{min:02}:{sec:02}")
            })
        }
        Data::DateTime(d) => Some(d.as_f64().to_string()),
        Data::Error(e) => Some(format!("#{e:?}")),
    }
}

/// A worksheet of a workbook: the one asked for, else the one named for the table
/// (clients, 客户档案, 收费明细, ...), else the first. Returns its name, its cells and
/// how many sheets the workbook has.
fn worksheet(
    path: &Path,
    sheet: Option<&str>,
    table: Option<Table>,
) -> Result<(String, calamine::Range<calamine::Data>, usize), IngestError> {
    use calamine::Reader;
    let err = |message: String| IngestError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let mut book = calamine::open_workbook_auto(path).map_err(|e| err(e.to_string()))?;
    let names = book.sheet_names().to_vec();
    let wanted = match sheet {
        Some(s) => names.iter().position(|n| n.trim() == s.trim()).ok_or_else(|| {
            err(format!(
                "the workbook has no sheet '{s}'; its sheets are: {}",
                names.join(", ")
            ))
        })?,
        None => table
            .and_then(|t| {
                names
                    .iter()
                    .position(|n| n.trim().eq_ignore_ascii_case(t.name()))
                    .or_else(|| {
                        names
                            .iter()
                            .position(|n| discover::table_by_name(n).is_some_and(|(nt, _)| nt == t))
                    })
            })
            .unwrap_or(0),
    };
    let name = names.get(wanted).cloned().unwrap_or_default();
    let range = book
        .worksheet_range_at(wanted)
        .ok_or_else(|| err("the workbook has no worksheet".into()))?
        .map_err(|e| err(e.to_string()))?;
    Ok((name, range, names.len()))
}

/// Reads a worksheet: the header is the row among the first that names the most
/// columns of the table; rows above it are skipped; a header cell merged with the one
/// above takes its text.
fn read_excel(
    path: &Path,
    table: Table,
    sheet: Option<&str>,
    mapping: &std::collections::BTreeMap<String, String>,
) -> Result<Sheet, IngestError> {
    let err = |message: String| IngestError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let (name, range, sheets) = worksheet(path, sheet, Some(table))?;
    let several = sheets > 1;
    if range.is_empty() {
        return Err(err("the worksheet is empty".into()));
    }
    let head: Vec<Vec<String>> = range
        .rows()
        .take(layout::HEADER_SEARCH_ROWS)
        .map(|r| r.iter().map(|c| cell_text(c).unwrap_or_default()).collect())
        .collect();
    let found = layout::find_header_row(table, &head, mapping);
    let at = found.unwrap_or(0);
    let header = layout::header_cells(&head, at);
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); header.len()];
    for row in range.rows().skip(at + 1) {
        for (j, col) in cols.iter_mut().enumerate() {
            col.push(row.get(j).and_then(cell_text));
        }
    }
    // The range starts at the first cell that holds anything.
    let top = range.start().map(|(r, _)| r as usize).unwrap_or(0);
    let df = DataFrame::new_infer_height(
        header
            .iter()
            .zip(cols)
            .map(|(h, v)| Column::new(h.as_str().into(), v))
            .collect(),
    )
    .map_err(|e| err(e.to_string()))?;
    Ok(Sheet {
        df,
        first_row: top + at + 2,
        header_row: top + at + 1,
        sheet: several.then_some(name),
        unrecognised: found.is_none().then_some(head),
    })
}

/// Maps file headers to canonical names: the config's mapping, else the vocabulary's
/// words. Returns (header, canonical) pairs, the canonical optional columns that are
/// absent, and how each was recognised.
fn resolve_columns(
    table: Table,
    file: &str,
    headers: &[String],
    mapping: &std::collections::BTreeMap<String, String>,
) -> Result<(Vec<(String, String)>, Vec<String>, layout::HeaderMatch), IngestError> {
    let clean = layout::clean;
    let matched = layout::match_headers(table, headers, mapping);
    if let Some((column, a, b)) = &matched.clash {
        if clean(a).eq_ignore_ascii_case(&clean(b)) {
            return Err(IngestError::DuplicateHeader {
                file: file.into(),
                header: clean(a),
            });
        }
        return Err(IngestError::HeaderClash {
            file: file.into(),
            table: table.name(),
            column: column.clone(),
            a: a.clone(),
            b: b.clone(),
        });
    }
    let mut renames = Vec::new();
    let mut absent = Vec::new();
    for &canonical in table.columns() {
        match matched.header_of(canonical) {
            Some(h) => {
                let twice = headers
                    .iter()
                    .filter(|o| clean(o).eq_ignore_ascii_case(&clean(h)))
                    .count()
                    > 1;
                if twice {
                    return Err(IngestError::DuplicateHeader {
                        file: file.into(),
                        header: clean(h),
                    });
                }
                renames.push((h.to_string(), canonical.to_string()));
            }
            None if table.required().contains(&canonical) => {
                if let Some((h, cols)) = matched
                    .ambiguous
                    .iter()
                    .find(|(_, cols)| cols.iter().any(|c| c == canonical))
                {
                    return Err(IngestError::AmbiguousHeader {
                        file: file.into(),
                        table: table.name(),
                        header: h.clone(),
                        columns: cols.join(" or "),
                        first: canonical.to_string(),
                    });
                }
                let wanted = mapping.get(canonical).map(String::as_str).unwrap_or(canonical);
                let closest = closest_name(wanted, headers.iter().map(|h| clean(h)));
                return Err(IngestError::MissingColumn {
                    file: file.into(),
                    table: table.name(),
                    expected: canonical.into(),
                    mapped: if wanted != canonical {
                        format!(" (mapped to header '{wanted}')")
                    } else {
                        String::new()
                    },
                    closest: closest.map(|(n, _)| n).unwrap_or_else(|| "(none)".into()),
                });
            }
            None => absent.push(canonical.to_string()),
        }
    }
    // An unused header within two edits of an absent optional column is almost surely a
    // typo; running on would silently switch off features, so stop instead.
    let used = |h: &String| matched.columns.iter().any(|m| &m.header == h);
    for canonical in &absent {
        let wanted = mapping.get(canonical).map(String::as_str).unwrap_or(canonical);
        let unused = headers.iter().filter(|h| !used(h)).map(|h| clean(h));
        if let Some((name, d)) = closest_name(wanted, unused) {
            if d <= 2 && wanted.chars().count() > 4 {
                return Err(IngestError::Misnamed {
                    file: file.into(),
                    table: table.name(),
                    expected: canonical.clone(),
                    found: name,
                });
            }
        }
    }
    Ok((renames, absent, matched))
}

/// The header closest to `wanted` by edit distance (case- and separator-insensitive).
pub fn closest_name(wanted: &str, candidates: impl Iterator<Item = String>) -> Option<(String, usize)> {
    let norm = |s: &str| s.to_lowercase().replace([' ', '_', '-'], "");
    let w = norm(wanted);
    candidates
        .map(|c| (levenshtein(&w, &norm(&c)), c))
        .min_by_key(|(d, _)| *d)
        .map(|(d, c)| (c, d))
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn levenshtein_small_cases() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("客户编号", "客户编码"), 1);
    }

    #[test]
    fn reads_mapped_headers_and_row_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "billing.csv",
            "客户编号,开票日期,金额\nC1,2024/01/05, 300 \nC2,,\n",
        );
        let mut m = BTreeMap::new();
        m.insert("client_id".to_string(), "客户编号".to_string());
        m.insert("invoice_date".to_string(), "开票日期".to_string());
        m.insert("amount".to_string(), "金额".to_string());
        let t = read_table(Table::Billing, &p, &m, Encoding::Auto).unwrap();
        assert_eq!(t.df.height(), 2);
        let rows: Vec<Option<u32>> = t.df.column(ROW).unwrap().idx().unwrap().iter().collect();
        assert_eq!(rows, vec![Some(2), Some(3)]);
        let amount = t.df.column("amount").unwrap().str().unwrap().get(0);
        assert_eq!(amount, Some("300"));
        assert!(t.df.column("invoice_date").unwrap().str().unwrap().get(1).is_none());
        assert!(t.absent.contains(&"paid_date".to_string()));
    }

    #[test]
    fn gbk_csv_is_detected_and_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let text = "客户编号,开票日期,金额\nC1,2024年1月5日,300\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        let p = dir.path().join("billing.csv");
        std::fs::write(&p, &gbk).unwrap();
        let mut m = BTreeMap::new();
        m.insert("client_id".to_string(), "客户编号".to_string());
        m.insert("invoice_date".to_string(), "开票日期".to_string());
        m.insert("amount".to_string(), "金额".to_string());
        let t = read_table(Table::Billing, &p, &m, Encoding::Auto).unwrap();
        assert_eq!(
            t.df.column("invoice_date").unwrap().str().unwrap().get(0),
            Some("2024年1月5日")
        );
    }

    #[test]
    fn missing_required_column_names_closest() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "billing.csv",
            "client_id,invoce_date,amount\nC1,2024-01-05,1\n",
        );
        let err = read_table(Table::Billing, &p, &BTreeMap::new(), Encoding::Auto).unwrap_err();
        match &err {
            IngestError::MissingColumn {
                file,
                expected,
                closest,
                ..
            } => {
                assert_eq!(file, "billing.csv");
                assert_eq!(expected, "invoice_date");
                assert_eq!(closest, "invoce_date");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn misnamed_optional_column_stops() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "clients.csv", "client_id,monthy_fee\nC1,300\n");
        let err = read_table(Table::Clients, &p, &BTreeMap::new(), Encoding::Auto).unwrap_err();
        assert!(
            matches!(err, IngestError::Misnamed { ref expected, .. } if expected == "monthly_fee"),
            "{err}"
        );
    }

    #[test]
    fn a_title_above_the_header_totals_and_notes_are_skipped_and_rows_keep_their_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let text = "收费明细（导出日期：2026-01-02）\n\n序号,客户编码,收费日期,收费金额(元)\n1,C1,2025-01-05,\"1,200.00\"\n2,C2,2025-01-06,300\n合 计,,,\"1,500.00\"\n制表人：张三\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        for (name, bytes) in [
            ("收费明细.csv", text.as_bytes().to_vec()),
            ("收费明细gbk.csv", gbk.to_vec()),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let t = read_table(Table::Billing, &p, &BTreeMap::new(), Encoding::Auto).unwrap();
            assert_eq!(t.df.height(), 2, "{name}");
            let rows: Vec<Option<u32>> = t.df.column(ROW).unwrap().idx().unwrap().iter().collect();
            assert_eq!(rows, vec![Some(4), Some(5)], "{name}");
            assert_eq!(t.layout.header_row, 3);
            assert_eq!((t.layout.totals_skipped, t.layout.notes_skipped), (1, 1), "{name}");
            assert_eq!(t.df.column("amount").unwrap().str().unwrap().get(0), Some("1,200.00"));
            let m: Vec<(&str, &str)> = t
                .layout
                .columns
                .iter()
                .map(|c| (c.column.as_str(), c.header.as_str()))
                .collect();
            assert_eq!(
                m,
                vec![
                    ("client_id", "客户编码"),
                    ("invoice_date", "收费日期"),
                    ("amount", "收费金额(元)")
                ]
            );
            assert_eq!(t.layout.unused, vec!["序号".to_string()]);
        }
    }

    #[test]
    fn a_plain_file_with_a_totals_row_leaves_the_fast_readers() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "billing.csv",
            "client_id,invoice_date,amount\nC1,2025-01-05,300\nC2,2025-01-06,300\nTotal,,600\n",
        );
        let t = read_table(Table::Billing, &p, &BTreeMap::new(), Encoding::Auto).unwrap();
        assert_eq!(t.df.height(), 2);
        assert_eq!(t.layout.totals_skipped, 1);
    }

    #[test]
    fn utf16_text_with_tabs_is_read_like_a_csv() {
        let dir = tempfile::tempdir().unwrap();
        let text = "收费明细\r\n客户编号\t开票日期\t金额\r\nC1\t2025-01-05\t\"1,200\"\r\nC2\t2025-01-06\t300\r\n合计\t\t1,500\r\n";
        let mut bytes = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let p = dir.path().join("收费明细.txt");
        std::fs::write(&p, bytes).unwrap();
        let t = read_table(Table::Billing, &p, &BTreeMap::new(), Encoding::Auto).unwrap();
        assert_eq!(t.df.height(), 2);
        assert_eq!(t.layout.header_row, 2);
        assert_eq!(t.layout.totals_skipped, 1);
        let amounts: Vec<Option<&str>> = t.df.column("amount").unwrap().str().unwrap().iter().collect();
        assert_eq!(amounts, vec![Some("1,200"), Some("300")]);
        let rows: Vec<Option<u32>> = t.df.column(ROW).unwrap().idx().unwrap().iter().collect();
        assert_eq!(rows, vec![Some(3), Some(4)]);
    }

    #[test]
    fn a_units_line_under_the_header_is_a_note_not_a_reject() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "billing.csv",
            "客户编码,收费日期,收费金额\n单位：元,,\nC1,2025-01-05,300\n",
        );
        let t = read_table(Table::Billing, &p, &BTreeMap::new(), Encoding::Auto).unwrap();
        assert_eq!(t.df.height(), 1);
        assert_eq!(t.layout.notes_skipped, 1);
        let rows: Vec<Option<u32>> = t.df.column(ROW).unwrap().idx().unwrap().iter().collect();
        assert_eq!(rows, vec![Some(3)]);
    }

    #[test]
    fn blank_rows_in_the_middle_are_skipped_by_every_reader() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "billing.csv",
            "client_id,invoice_date,amount\nC1,2025-01-05,300\n,,\nC2,2025-01-06,300\n",
        );
        for t in [
            read_table(Table::Billing, &p, &BTreeMap::new(), Encoding::Auto).unwrap(),
            read_table_general(Table::Billing, &p, &BTreeMap::new(), Encoding::Auto).unwrap(),
        ] {
            assert_eq!(t.df.height(), 2);
            assert_eq!(t.layout.notes_skipped, 1);
            let rows: Vec<Option<u32>> = t.df.column(ROW).unwrap().idx().unwrap().iter().collect();
            assert_eq!(rows, vec![Some(2), Some(4)]);
        }
    }
}
