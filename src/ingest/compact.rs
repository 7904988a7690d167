//! The compact reader for the two large tables (billing, activity), when their CSV is
//! plain: UTF-8, no quotes, no blank lines, ISO dates (2024-01-05, months as 2024-01) and
//! plain numbers. Ids and other text become integer codes into a dictionary of distinct
//! values, dates become day numbers, numbers f64: 32 bytes an invoice, 52 a work month.
//! The file is read in blocks, each split between the cores. Measured at 1M clients (with
//! the clients file, read as before): ingest 18 s and 3.9 GiB -> 10-12 s and 2.3 GiB, and
//! validation 17 s -> 4.5 s, as it no longer joins on text ids.
//!
//! Anything else (a quote, 2024年1月5日, 1,200.00, an impossible date) makes it give up
//! on the whole file, which is then read by the general readers: their validation names
//! each bad cell. So this path never decides what is valid, only what is plainly so.

use std::io::Read;
use std::mem::MaybeUninit;
use std::path::Path;

use polars::prelude::*;
use rayon::prelude::*;

use super::IngestError;

/// Maps of texts to codes; ids are hashed tens of millions of times.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Bytes read per block: large enough to keep both cores busy, small enough that the
/// text of a 1 GB file is never held at once.
const BLOCK: usize = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Text kept as a code into the column's dictionary (ids, service names).
    Code,
    Date,
    /// A month (2024-01), as its first day.
    Month,
    Number,
    /// A column no canonical name maps to.
    Skip,
}

/// What the reader returns: canonical columns (codes as UInt32, dates as Date, numbers as
/// Float64; a blank cell is null) and the dictionary of each coded column.
pub struct Compact {
    pub df: DataFrame,
    pub dictionaries: Vec<(String, Vec<String>)>,
}

enum Values {
    Code(Vec<u32>),
    Day(Vec<i32>),
    Num(Vec<f64>),
    Skip,
}

impl Values {
    fn new(kind: Kind, capacity: usize) -> Values {
        match kind {
            Kind::Code => Values::Code(Vec::with_capacity(capacity)),
            Kind::Date | Kind::Month => Values::Day(Vec::with_capacity(capacity)),
            Kind::Number => Values::Num(Vec::with_capacity(capacity)),
            Kind::Skip => Values::Skip,
        }
    }

    fn len(&self) -> usize {
        match self {
            Values::Code(v) => v.len(),
            Values::Day(v) => v.len(),
            Values::Num(v) => v.len(),
            Values::Skip => 0,
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Values::Code(v) => v.capacity(),
            Values::Day(v) => v.capacity(),
            Values::Num(v) => v.capacity(),
            Values::Skip => 0,
        }
    }

    fn reserve(&mut self, n: usize) {
        match self {
            Values::Code(v) => v.reserve(n),
            Values::Day(v) => v.reserve(n),
            Values::Num(v) => v.reserve(n),
            Values::Skip => {}
        }
    }

    /// The next `n` unwritten slots.
    fn spare(&mut self, n: usize) -> Slot<'_> {
        match self {
            Values::Code(v) => Slot::Code(&mut v.spare_capacity_mut()[..n]),
            Values::Day(v) => Slot::Day(&mut v.spare_capacity_mut()[..n]),
            Values::Num(v) => Slot::Num(&mut v.spare_capacity_mut()[..n]),
            Values::Skip => Slot::Skip,
        }
    }

    /// Counts the next `n` slots as values.
    ///
    /// # Safety
    /// They must all have been written.
    unsafe fn grow(&mut self, n: usize) {
        match self {
            Values::Code(v) => v.set_len(v.len() + n),
            Values::Day(v) => v.set_len(v.len() + n),
            Values::Num(v) => v.set_len(v.len() + n),
            Values::Skip => {}
        }
    }

    fn shrink(&mut self) {
        match self {
            Values::Code(v) => v.shrink_to_fit(),
            Values::Day(v) => v.shrink_to_fit(),
            Values::Num(v) => v.shrink_to_fit(),
            Values::Skip => {}
        }
    }
}

// Nulls inside the buffers; none of them can come out of a parsed cell.
const NULL_CODE: u32 = u32::MAX;
const NULL_DAY: i32 = i32::MIN;

fn null_num() -> f64 {
    f64::NAN
}

/// `columns` maps file headers to canonical names (as resolved by ingest) and `kind_of`
/// says which canonical columns hold dates, months and numbers. `Ok(None)`: not plain,
/// read it another way.
pub fn read(
    path: &Path,
    columns: &[(String, String)],
    kind_of: impl Fn(&str) -> Option<DataType>,
) -> Result<Option<Compact>, IngestError> {
    let io = IngestError::io(path);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK + (1 << 16));
    let mut kinds: Vec<Kind> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut out: Vec<Values> = Vec::new();
    let mut global: Vec<HashMap<String, u32>> = Vec::new();
    let mut dicts: Vec<Vec<String>> = Vec::new();
    let mut header_done = false;
    let mut eof = false;
    while !eof {
        let start = buf.len();
        buf.resize(start + BLOCK, 0);
        let n = read_full(&mut file, &mut buf[start..]).map_err(io)?;
        buf.truncate(start + n);
        eof = n == 0;
        let mut body_from = 0;
        if !header_done {
            let Some(end) = memchr::memchr(b'\n', &buf) else {
                if eof {
                    return Ok(None);
                }
                continue;
            };
            let Some(header) = header_kinds(&buf[..end], columns, &kind_of) else {
                return Ok(None);
            };
            (kinds, names) = header;
            out = kinds.iter().map(|k| Values::new(*k, 0)).collect();
            global = kinds.iter().map(|_| HashMap::default()).collect();
            dicts = kinds.iter().map(|_| Vec::new()).collect();
            header_done = true;
            body_from = end + 1;
        }
        // Whole lines only; the rest waits for the next block (or is the last line).
        let body_end = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf[body_from..]) {
                Some(i) => body_from + i + 1,
                None => {
                    buf.drain(..body_from);
                    continue;
                }
            }
        };
        let body = &buf[body_from..body_end];
        if !body.is_empty() && !parse_block(body, &kinds, size, &mut out, &mut global, &mut dicts) {
            return Ok(None);
        }
        buf.drain(..body_end);
    }
    if !header_done {
        return Ok(None);
    }
    drop(global);
    let mut columns_out = Vec::new();
    let mut dictionaries = Vec::new();
    for ((mut values, name), dict) in out.into_iter().zip(&names).zip(dicts) {
        values.shrink();
        let name = PlSmallStr::from(name.as_str());
        let column: Column = match values {
            Values::Code(v) => {
                dictionaries.push((name.to_string(), dict));
                with_nulls::<UInt32Type>(name, v, |x| x == NULL_CODE).into_column()
            }
            Values::Day(v) => with_nulls::<Int32Type>(name, v, |x| x == NULL_DAY)
                .into_date()
                .into_column(),
            Values::Num(v) => with_nulls::<Float64Type>(name, v, f64::is_nan).into_column(),
            Values::Skip => continue,
        };
        columns_out.push(column);
    }
    let df = DataFrame::new_infer_height(columns_out).map_err(|e| IngestError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(Some(Compact { df, dictionaries }))
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A buffer of values as a column; zero-copy when nothing is null.
fn with_nulls<T>(name: PlSmallStr, v: Vec<T::Native>, is_null: impl Fn(T::Native) -> bool) -> ChunkedArray<T>
where
    T: PolarsNumericType,
    ChunkedArray<T>: FromIterator<Option<T::Native>>,
{
    if v.iter().any(|&x| is_null(x)) {
        let ca: ChunkedArray<T> = v.iter().map(|&x| (!is_null(x)).then_some(x)).collect();
        ca.with_name(name)
    } else {
        ChunkedArray::from_vec(name, v)
    }
}

/// The kind of each field of the header line, and the canonical name of each kept one.
fn header_kinds(
    line: &[u8],
    columns: &[(String, String)],
    kind_of: &impl Fn(&str) -> Option<DataType>,
) -> Option<(Vec<Kind>, Vec<String>)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).ok()?;
    if text.contains('"') {
        return None;
    }
    let clean = |h: &str| h.trim().trim_start_matches('\u{feff}').to_string();
    let fields: Vec<String> = text.split(',').map(clean).collect();
    let mut kinds = vec![Kind::Skip; fields.len()];
    let mut names = vec![String::new(); fields.len()];
    for (header, canonical) in columns {
        let mut at = fields.iter().enumerate().filter(|(_, f)| **f == clean(header));
        // A header that appears twice: let the general reader deal with it.
        let (Some((i, _)), None) = (at.next(), at.next()) else {
            return None;
        };
        kinds[i] = match kind_of(canonical) {
            Some(DataType::Date) if canonical == "month" => Kind::Month,
            Some(DataType::Date) => Kind::Date,
            Some(DataType::Float64) => Kind::Number,
            Some(_) => return None,
            None => Kind::Code,
        };
        names[i] = canonical.clone();
    }
    Some((kinds, names))
}

/// Parses a block of whole lines onto the columns: the block is split between the cores,
/// each piece writes its rows straight into its own stretch of every column, and codes
/// are made file-wide at the end. `false`: a line is not plain.
fn parse_block(
    body: &[u8],
    kinds: &[Kind],
    file_size: usize,
    out: &mut [Values],
    global: &mut [HashMap<String, u32>],
    dicts: &mut [Vec<String>],
) -> bool {
    let pieces = split_lines(body, rayon::current_num_threads() * 2);
    let Some(layouts) = pieces
        .par_iter()
        .map(|p| layout(p, kinds.len()))
        .collect::<Option<Vec<Layout>>>()
    else {
        return false;
    };
    let rows: usize = layouts.iter().map(|l| l.rows).sum();
    if out.iter().all(|v| v.capacity() == 0) {
        // Room for the whole file, from the first block's bytes per row: growing by
        // doubling could leave the columns twice as large as needed.
        let estimate = (file_size as f64 * rows as f64 / body.len() as f64 * 1.02) as usize + 1024;
        out.iter_mut().for_each(|v| v.reserve(estimate));
    }
    out.iter_mut().for_each(|v| v.reserve(rows));
    let before: Vec<usize> = out.iter().map(Values::len).collect();
    // Each piece's stretch of each column.
    let mut slots: Vec<Vec<Slot>> = layouts.iter().map(|_| Vec::new()).collect();
    for values in out.iter_mut() {
        let mut rest = values.spare(rows);
        for (piece, layout) in slots.iter_mut().zip(&layouts) {
            let (mine, tail) = rest.split(layout.rows);
            piece.push(mine);
            rest = tail;
        }
    }
    let Some(local) = pieces
        .par_iter()
        .zip(&layouts)
        .zip(slots)
        .map(|((piece, layout), slots)| parse_piece(piece, layout, kinds, slots))
        .collect::<Option<Vec<Vec<Vec<String>>>>>()
    else {
        return false;
    };
    // Every slot of every column is written: the pieces cover the block's rows.
    out.iter_mut().for_each(|v| unsafe { v.grow(rows) });
    // Local codes to file-wide codes, one column per task.
    let piece_rows: Vec<usize> = layouts.iter().map(|l| l.rows).collect();
    let mut by_column: Vec<Vec<Vec<String>>> = out.iter().map(|_| Vec::new()).collect();
    for piece in local {
        for (k, dict) in piece.into_iter().enumerate() {
            by_column[k].push(dict);
        }
    }
    out.par_iter_mut()
        .zip(global.par_iter_mut())
        .zip(dicts.par_iter_mut())
        .zip(by_column.into_par_iter().zip(before))
        .for_each(|(((values, map), dict), (locals, from))| {
            let Values::Code(codes) = values else {
                return;
            };
            let mut at = from;
            for (local, n) in locals.into_iter().zip(&piece_rows) {
                let remap: Vec<u32> = local
                    .into_iter()
                    .map(|text| {
                        let next = dict.len() as u32;
                        *map.entry(text).or_insert_with_key(|t| {
                            dict.push(t.clone());
                            next
                        })
                    })
                    .collect();
                for c in &mut codes[at..at + n] {
                    if *c != NULL_CODE {
                        *c = remap[*c as usize];
                    }
                }
                at += n;
            }
        });
    true
}

/// A piece's stretch of one column, to be written.
enum Slot<'a> {
    Code(&'a mut [MaybeUninit<u32>]),
    Day(&'a mut [MaybeUninit<i32>]),
    Num(&'a mut [MaybeUninit<f64>]),
    Skip,
}

impl<'a> Slot<'a> {
    fn split(self, n: usize) -> (Slot<'a>, Slot<'a>) {
        match self {
            Slot::Code(s) => {
                let (a, b) = s.split_at_mut(n);
                (Slot::Code(a), Slot::Code(b))
            }
            Slot::Day(s) => {
                let (a, b) = s.split_at_mut(n);
                (Slot::Day(a), Slot::Day(b))
            }
            Slot::Num(s) => {
                let (a, b) = s.split_at_mut(n);
                (Slot::Num(a), Slot::Num(b))
            }
            Slot::Skip => (Slot::Skip, Slot::Skip),
        }
    }
}

/// Where each field of a piece ends (the offset of the comma or line end after it).
struct Layout {
    ends: Vec<u32>,
    rows: usize,
}

fn layout(piece: &[u8], nc: usize) -> Option<Layout> {
    if memchr::memchr(b'"', piece).is_some() {
        return None;
    }
    let mut ends: Vec<u32> = Vec::with_capacity(piece.len() / 4);
    let mut field = 0;
    let mut delimiter = |pos: usize| -> Option<()> {
        let line_end = piece[pos] == b'\n';
        // Too few or too many fields, or a blank line.
        if line_end != (field == nc - 1) {
            return None;
        }
        ends.push(pos as u32);
        field = if line_end { 0 } else { field + 1 };
        Some(())
    };
    // Eight bytes at a time: fields are a few bytes long, too short for a search per
    // field to pay off (activity read about a tenth faster than with memchr2).
    let mut words = piece.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        let mut hits = bytes_equal(x, b',') | bytes_equal(x, b'\n');
        while hits != 0 {
            delimiter(base + (hits.trailing_zeros() / 8) as usize)?;
            hits &= hits - 1;
        }
        base += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == b',' || b == b'\n' {
            delimiter(base + i)?;
        }
    }
    if piece.last().is_some_and(|&b| b != b'\n') {
        if field != nc - 1 {
            return None;
        }
        ends.push(piece.len() as u32);
    } else if field != 0 {
        return None;
    }
    let rows = ends.len() / nc;
    Some(Layout { ends, rows })
}

/// The high bit of each byte of `x` that equals `b`, exactly (no false hits).
#[inline(always)]
fn bytes_equal(x: u64, b: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let y = x ^ (0x0101_0101_0101_0101 * b as u64);
    !(((y & LOW7) + LOW7) | y) & !LOW7
}

/// Splits `body` into about `n` runs of whole lines.
fn split_lines(body: &[u8], n: usize) -> Vec<&[u8]> {
    let target = (body.len() / n.max(1)).max(1 << 16);
    let mut pieces = Vec::new();
    let mut rest = body;
    while rest.len() > target {
        match memchr::memchr(b'\n', &rest[target..]) {
            Some(i) => {
                let (a, b) = rest.split_at(target + i + 1);
                pieces.push(a);
                rest = b;
            }
            None => break,
        }
    }
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// Parses one piece into its slots, column by column (measured on billing: a quarter
/// faster than one loop over the fields that switches on each column's kind). Returns
/// each coded column's texts, in the piece's code order.
fn parse_piece(piece: &[u8], layout: &Layout, kinds: &[Kind], slots: Vec<Slot>) -> Option<Vec<Vec<String>>> {
    let nc = kinds.len();
    let ends = &layout.ends;
    let cell = |r: usize, k: usize| -> Option<&[u8]> {
        let i = r * nc + k;
        let start = if i == 0 { 0 } else { ends[i - 1] as usize + 1 };
        let c = &piece[start..ends[i] as usize];
        trim(if k == nc - 1 {
            c.strip_suffix(b"\r").unwrap_or(c)
        } else {
            c
        })
    };
    let mut dicts = Vec::with_capacity(nc);
    for (k, (kind, slot)) in kinds.iter().zip(slots).enumerate() {
        let mut dict = Vec::new();
        match slot {
            Slot::Skip => {}
            Slot::Code(v) => {
                let mut interner = Interner::default();
                for (r, out) in v.iter_mut().enumerate() {
                    let c = cell(r, k)?;
                    out.write(if c.is_empty() { NULL_CODE } else { interner.code(c) });
                }
                for text in interner.values {
                    dict.push(String::from_utf8(text).ok()?);
                }
            }
            // Two loops rather than a function pointer, so that each parser is inlined.
            Slot::Day(v) if *kind == Kind::Month => {
                for (r, out) in v.iter_mut().enumerate() {
                    let c = cell(r, k)?;
                    out.write(if c.is_empty() { NULL_DAY } else { month_start(c)? });
                }
            }
            Slot::Day(v) => {
                for (r, out) in v.iter_mut().enumerate() {
                    let c = cell(r, k)?;
                    out.write(if c.is_empty() { NULL_DAY } else { iso_date(c)? });
                }
            }
            Slot::Num(v) => {
                for (r, out) in v.iter_mut().enumerate() {
                    let c = cell(r, k)?;
                    out.write(if c.is_empty() { null_num() } else { number(c)? });
                }
            }
        }
        dicts.push(dict);
    }
    Some(dicts)
}

/// Codes of one piece. Rows of a client usually come together, so the last value is
/// checked before the map.
#[derive(Default)]
struct Interner {
    map: HashMap<Vec<u8>, u32>,
    values: Vec<Vec<u8>>,
    last: Option<(usize, u32)>,
}

impl Interner {
    fn code(&mut self, cell: &[u8]) -> u32 {
        if let Some((i, code)) = self.last {
            if self.values[i] == cell {
                return code;
            }
        }
        let code = match self.map.get(cell) {
            Some(&c) => c,
            None => {
                let c = self.values.len() as u32;
                self.values.push(cell.to_vec());
                self.map.insert(cell.to_vec(), c);
                c
            }
        };
        self.last = Some((code as usize, code));
        code
    }
}

/// A cell without surrounding spaces. `None` when it is wrapped in non-ASCII white space
/// (a full-width space, say), which the general reader trims by other rules.
fn trim(cell: &[u8]) -> Option<&[u8]> {
    let cell = cell.trim_ascii();
    let edge_ws = |c: Option<char>| c.is_some_and(char::is_whitespace);
    if cell.first().is_some_and(|b| *b >= 0x80) || cell.last().is_some_and(|b| *b >= 0x80) {
        let text = std::str::from_utf8(cell).ok()?;
        if edge_ws(text.chars().next()) || edge_ws(text.chars().next_back()) {
            return None;
        }
    }
    Some(cell)
}

fn digits<const N: usize>(b: &[u8]) -> Option<i32> {
    if b.len() != N {
        return None;
    }
    b.iter()
        .try_fold(0i32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as i32))
}

/// Days since 1970-01-01 of a real date in the years validation accepts (1900..2200).
fn civil_days(y: i32, m: i32, d: i32) -> Option<i32> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_len = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1900..=2200).contains(&y) || d < 1 || d > month_len {
        return None;
    }
    // Days from civil (H. Hinnant), as validation computes them.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// 2024-01-05.
fn iso_date(b: &[u8]) -> Option<i32> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    civil_days(digits::<4>(&b[..4])?, digits::<2>(&b[5..7])?, digits::<2>(&b[8..])?)
}

/// 2024-01: its first day. (A full date in a month column goes to the general reader,
/// whose rejects show the cell as written.)
fn month_start(b: &[u8]) -> Option<i32> {
    if b.len() != 7 || b[4] != b'-' {
        return None;
    }
    civil_days(digits::<4>(&b[..4])?, digits::<2>(&b[5..])?, 1)
}

/// -?digits(.digits)?, to the nearest f64 as Rust's and polars' parsers round it.
fn number(b: &[u8]) -> Option<f64> {
    let neg = b.first() == Some(&b'-');
    let body = &b[neg as usize..];
    let (mut m, mut digits, mut frac, mut dot) = (0u64, 0usize, 0usize, false);
    for (i, &c) in body.iter().enumerate() {
        if c.is_ascii_digit() {
            // Digits past 19 would overflow; such numbers take the slow path below.
            if digits < 19 {
                m = m * 10 + (c - b'0') as u64;
            }
            digits += 1;
            frac += dot as usize;
        } else if c == b'.' && !dot && i > 0 {
            dot = true;
        } else {
            return None;
        }
    }
    if digits == 0 || (dot && frac == 0) {
        return None;
    }
    // An exact mantissa and a power of ten up to 1e22 are both exact in f64, so one
    // division rounds correctly (Clinger's fast path); longer numbers take the slow one.
    let value = if digits <= 15 {
        m as f64 / POW10[frac]
    } else {
        // Hundreds of digits overflow to infinity: let validation name that cell.
        Some(std::str::from_utf8(body).ok()?.parse::<f64>().ok()?).filter(|v| v.is_finite())?
    };
    Some(if neg { -value } else { value })
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_as_the_standard_parser_does() {
        for text in [
            "0",
            "-0",
            "300",
            "1200.50",
            "0.1",
            "0.3",
            "123456789.123456",
            "9007199254740993",
            "2.675",
            "-17.25",
            "1234567890123456789012.5",
        ] {
            let want: f64 = text.parse().unwrap();
            let got = number(text.as_bytes()).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{text}");
        }
        for text in ["", "-", "1,200", "1e3", "+5", "5.", ".5", "inf", "NaN", "¥300", "1 2"] {
            assert!(number(text.as_bytes()).is_none(), "{text}");
        }
    }

    #[test]
    fn only_real_iso_dates_and_months_pass() {
        assert_eq!(iso_date(b"1970-01-01"), Some(0));
        assert_eq!(iso_date(b"2024-02-29"), Some(19782));
        assert_eq!(month_start(b"2024-02"), Some(19754));
        assert!(month_start(b"2024-02-17").is_none());
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024/01/05",
            "2024-1-5",
            "1899-12-31",
            "2024年1月5日",
            "20240105",
        ] {
            assert!(iso_date(bad.as_bytes()).is_none(), "{bad}");
        }
        assert!(month_start(b"2024-00").is_none());
    }

    #[test]
    fn byte_masks_are_exact() {
        let text = b",a\n,\x2c\xac\x8c\x0a";
        let x = u64::from_le_bytes(*text);
        let want = |b: u8| {
            text.iter()
                .enumerate()
                .filter(|(_, &c)| c == b)
                .map(|(i, _)| 0x80u64 << (8 * i))
                .sum::<u64>()
        };
        assert_eq!(bytes_equal(x, b','), want(b','));
        assert_eq!(bytes_equal(x, b'\n'), want(b'\n'));
        let l = layout(b"C1,2024-01-05,300\nC22,2024-01-06,4000.5\n", 3).unwrap();
        assert_eq!((l.rows, l.ends), (2, vec![2, 13, 17, 21, 32, 39]));
        assert!(layout(b"C1,2024-01-05\n", 3).is_none());
    }

    #[test]
    fn pieces_split_at_line_ends_and_keep_every_line() {
        let body: Vec<u8> = (0..50_000)
            .flat_map(|i| format!("C{i},2024-01-05,{i}\n").into_bytes())
            .collect();
        let pieces = split_lines(&body, 4);
        assert!(pieces.len() > 1);
        assert!(pieces.iter().all(|p| p.ends_with(b"\n")));
        assert_eq!(pieces.concat(), body);
    }
}
