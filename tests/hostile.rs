//! The bad-input contract (docs/data-contract.md, "Hostile input"): one test per class
//! of hostile input, each checking what the contract promises: a clear message naming
//! the file (and row and column where there is one), or reject lines with input rows =
//! accepted + rejected, and never a panic or a half-written run.

use std::path::{Path, PathBuf};

use crate::util::*;

fn firm(dir: &Path) {
    generate(&dir.join("data"), 200, 21, &[]);
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Replaces cell `col` of data line `row` (1 = first data row) of a plain CSV.
fn set_cell(path: &Path, row: usize, col: usize, value: &str) {
    let mut l = lines(path);
    let mut cells: Vec<String> = l[row].split(',').map(String::from).collect();
    cells[col] = value.to_string();
    l[row] = cells.join(",");
    write_lines(path, &l);
}

fn stderr_of(dir: &Path, extra_config: &str) -> String {
    let cfg = config(dir, extra_config);
    let out = run(&["run", "--config", &cfg.to_string_lossy(), "--quiet"], dir, false);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{err}");
    no_run_folder(dir);
    err
}

fn no_run_folder(dir: &Path) {
    let runs = dir.join("runs");
    if runs.exists() {
        let folders: Vec<PathBuf> = std::fs::read_dir(&runs)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        assert!(folders.is_empty(), "a failed run left {folders:?}");
    }
}

/// Reject lines of a finished run as (file, row, column, value, reason).
fn rejects(run: &Path) -> Vec<[String; 5]> {
    let df = read_csv(&run.join("rejects.csv"));
    let cols: Vec<Vec<String>> = ["file", "row", "column", "value", "reason"]
        .iter()
        .map(|c| strings(&df, c))
        .collect();
    (0..df.height())
        .map(|i| std::array::from_fn(|c| cols[c][i].clone()))
        .collect()
}

fn counts_add_up(run: &Path) {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    for t in m["rows"].as_array().unwrap() {
        assert_eq!(
            t["input"].as_u64(),
            Some(t["accepted"].as_u64().unwrap() + t["rejected"].as_u64().unwrap()),
            "{t}"
        );
    }
}

fn reject_at<'a>(r: &'a [[String; 5]], file: &str, row: usize) -> Vec<&'a [String; 5]> {
    r.iter().filter(|x| x[0] == file && x[1] == row.to_string()).collect()
}

#[test]
fn empty_and_header_only_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    let billing = dir.join("data/billing.csv");
    let header = lines(&billing)[0].clone();
    std::fs::write(&billing, format!("{header}\n")).unwrap();
    let err = stderr_of(dir, "");
    assert!(err.contains("billing.csv") && err.contains("no data rows"), "{err}");
    std::fs::write(&billing, "").unwrap();
    let err = stderr_of(dir, "");
    assert!(err.contains("billing.csv"), "{err}");
}

#[test]
fn encodings_and_byte_order_marks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    // A UTF-8 byte-order mark before the header is fine.
    let clients = dir.join("data/clients.csv");
    let text = std::fs::read_to_string(&clients).unwrap();
    std::fs::write(&clients, format!("\u{feff}{text}")).unwrap();
    let (first, _) = pipeline(dir, "");
    assert_eq!(read_csv(&first.join("labels.csv")).height(), 200);
    std::fs::remove_dir_all(dir.join("runs")).unwrap();

    // A Latin-1 archive is not decoded as Chinese into garbled names: it is refused with
    // what to do, and read as written when the encoding is set.
    let ids: Vec<String> = lines(&clients)[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let names = ["Müller Bäckerei", "Café Séverine", "Señor Núñez"];
    let mut latin = String::from("client_id,name\n");
    for (i, id) in ids.iter().enumerate() {
        latin.push_str(&format!("{id},{} {i}\n", names[i % 3]));
    }
    let bytes: Vec<u8> = latin.chars().map(|c| c as u32 as u8).collect();
    std::fs::write(&clients, bytes).unwrap();
    let err = stderr_of(dir, "");
    assert!(
        err.contains("clients.csv") && err.contains("Latin-1") && err.contains("input.encoding"),
        "{err}"
    );
    let cfg = config(dir, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[input]\n", "[input]\nencoding = \"latin-1\"\n");
    std::fs::write(&cfg, text).unwrap();
    run(&["run", "--config", &cfg.to_string_lossy(), "--quiet"], dir, true);
    let labels = read_csv(&run_dir(&dir.join("runs")).join("labels.csv"));
    assert_eq!(strings(&labels, "name")[0], "Müller Bäckerei 0");
}

#[test]
fn binary_data_and_misnamed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    let billing = dir.join("data/billing.csv");
    let bytes: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&billing, &bytes).unwrap();
    let err = stderr_of(dir, "");
    assert!(err.contains("billing.csv") && err.contains("binary"), "{err}");
    std::fs::write(&billing, b"PK\x03\x04rest of a workbook").unwrap();
    let err = stderr_of(dir, "");
    assert!(err.contains("billing.csv") && err.contains(".xlsx"), "{err}");
}

#[test]
fn delimiters_other_than_comma() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    let billing = dir.join("data/billing.csv");
    let semi: Vec<String> = lines(&billing).iter().map(|l| l.replace(',', ";")).collect();
    write_lines(&billing, &semi);
    let err = stderr_of(dir, "");
    assert!(
        err.contains("billing.csv") && err.contains("';'") && err.contains("comma-separated"),
        "{err}"
    );
}

#[test]
fn quoting_quoted_commas_and_a_stray_quote() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    let billing = dir.join("data/billing.csv");
    // A quoted amount with a thousands separator is one cell, read as 1200.
    set_cell(&billing, 1, 2, "\"1,200.00\"");
    let (run, _) = pipeline(dir, "");
    counts_add_up(&run);
    assert!(reject_at(&rejects(&run), "billing.csv", 2).is_empty());
    std::fs::remove_dir_all(dir.join("runs")).unwrap();
    // A stray quote inside an unquoted cell: the CSV reader cannot tell where the cell
    // ends, so the run stops naming the file, the row and the column, and how to fix it.
    set_cell(&billing, 5, 3, "bookkeeping\"oops");
    let header = lines(&billing)[0].split(',').nth(3).unwrap().to_string();
    let err = stderr_of(dir, "");
    assert!(
        err.contains(&format!("billing.csv, row 6, column '{header}': a quote")) && err.contains("quoted whole"),
        "{err}"
    );
}

#[test]
fn huge_cells_and_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    let clients = dir.join("data/clients.csv");
    let huge = "名".repeat(40_000);
    set_cell(&clients, 3, 1, &huge);
    let (run, _) = pipeline(dir, "");
    counts_add_up(&run);
    let r = rejects(&run);
    let hit = reject_at(&r, "clients.csv", 4);
    let line = hit.iter().find(|x| x[2] == "name").expect("the long cell is rejected");
    assert!(line[4].contains("32,767"), "{line:?}");
    assert!(line[3].chars().count() < 300, "the reject shows a shortened value");
    assert!(run.join("labels.xlsx").is_file());
    std::fs::remove_dir_all(dir.join("runs")).unwrap();

    // A row with thousands of extra cells: refused naming the file, or accounted for.
    let billing = dir.join("data/billing.csv");
    let mut l = lines(&billing);
    l[4].push_str(&",x".repeat(5_000));
    write_lines(&billing, &l);
    let err = stderr_of(dir, "");
    assert!(
        err.contains("billing.csv, row 5: 5006 cells where the header has 6"),
        "{err}"
    );
}

#[test]
fn duplicate_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    let billing = dir.join("data/billing.csv");
    let l: Vec<String> = lines(&billing)
        .iter()
        .enumerate()
        .map(|(i, x)| {
            if i == 0 {
                format!("{x},amount")
            } else {
                format!("{x},1")
            }
        })
        .collect();
    write_lines(&billing, &l);
    let err = stderr_of(dir, "");
    assert!(
        err.contains("billing.csv") && err.contains("'amount' appears twice"),
        "{err}"
    );
}

#[test]
fn non_finite_and_overflowing_numbers() {
    // A plain file (the typed reader) and one with a Chinese date (the text reader).
    for chinese in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        firm(dir);
        let billing = dir.join("data/billing.csv");
        let bad = ["NaN", "inf", "-inf", "1e400"];
        for (i, v) in bad.iter().enumerate() {
            set_cell(&billing, i + 1, 2, v);
        }
        if chinese {
            set_cell(&billing, 10, 1, "2024年1月5日");
        }
        let (run, _) = pipeline(dir, "");
        counts_add_up(&run);
        let r = rejects(&run);
        for (i, v) in bad.iter().enumerate() {
            let hit = reject_at(&r, "billing.csv", i + 2);
            assert!(
                hit.iter().any(|x| x[2] == "amount" && x[4] == "not a number"),
                "{v} (chinese {chinese}): {hit:?}"
            );
        }
        let segments = std::fs::read_to_string(run.join("segments.csv")).unwrap();
        assert!(!segments.contains("NaN") && !segments.contains("inf"), "{segments}");
        let report = std::fs::read_to_string(run.join("report.html")).unwrap();
        assert!(!report.contains("NaN%"));
    }
}

#[test]
fn locale_number_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    let billing = dir.join("data/billing.csv");
    let cases = [
        ("1,2,3", false),
        ("1.200,50", false),
        ("12,34", false),
        ("1,200.50", true),
        ("¥300", true),
        ("300元", true),
        ("1，200", true),
    ];
    for (i, (v, _)) in cases.iter().enumerate() {
        set_cell(&billing, i + 1, 2, &format!("\"{v}\""));
    }
    let (run, _) = pipeline(dir, "");
    counts_add_up(&run);
    let r = rejects(&run);
    for (i, (v, ok)) in cases.iter().enumerate() {
        let rejected = reject_at(&r, "billing.csv", i + 2).iter().any(|x| x[2] == "amount");
        assert_eq!(!rejected, *ok, "{v}");
    }
}

#[test]
fn impossible_and_implausible_dates() {
    // Plain files (the compact and typed readers) and files with one Chinese date (the
    // text reader) apply the same rule to the same cells.
    for chinese in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        firm(dir);
        let billing = dir.join("data/billing.csv");
        let mut bad = vec!["0001-01-01", "1899-12-31", "2201-01-01"];
        if chinese {
            bad.extend(["2024-02-30", "2024-13-01"]);
            set_cell(&billing, 10, 1, "2024年1月5日");
        }
        for (i, v) in bad.iter().enumerate() {
            set_cell(&billing, i + 1, 1, v);
        }
        let (run, _) = pipeline(dir, "");
        counts_add_up(&run);
        let r = rejects(&run);
        for (i, v) in bad.iter().enumerate() {
            let hit = reject_at(&r, "billing.csv", i + 2);
            assert_eq!(hit.len(), 1, "{v} (chinese {chinese}): {hit:?}");
            assert!(
                hit[0][2] == "invoice_date" && hit[0][4].starts_with("not a date"),
                "{v} (chinese {chinese}): {hit:?}"
            );
        }
    }
}

#[test]
fn future_dated_rows_do_not_move_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    let (clean, clean_out) = pipeline(dir, "");
    let snapshot = |out: &str| {
        out.lines()
            .next()
            .and_then(|l| l.split("snapshot ").nth(1))
            .unwrap_or("")
            .to_string()
    };
    let clean_segments = read_csv(&clean.join("segments.csv")).height();
    std::fs::remove_dir_all(dir.join("runs")).unwrap();
    let billing = dir.join("data/billing.csv");
    set_cell(&billing, 3, 5, "2099-01-05");
    set_cell(&billing, 4, 1, "2200-01-01");
    let (run, out) = pipeline(dir, "");
    counts_add_up(&run);
    assert_eq!(snapshot(&out), snapshot(&clean_out), "{out}");
    let r = rejects(&run);
    assert!(reject_at(&r, "billing.csv", 4)
        .iter()
        .any(|x| x[2] == "paid_date" && x[4].contains("in the future")));
    assert!(reject_at(&r, "billing.csv", 5)
        .iter()
        .any(|x| x[2] == "invoice_date" && x[4].contains("in the future")));
    let segs = read_csv(&run.join("segments.csv"));
    assert_eq!(segs.height(), clean_segments);
    assert!(strings(&segs, "name_en").iter().all(|n| !n.contains("(2)")), "{segs}");
    std::fs::remove_dir_all(dir.join("runs")).unwrap();

    // A late date that is not in the future still moves the snapshot past the billing
    // data: the run says so.
    let recent = (chrono::Local::now().date_naive() - chrono::Duration::days(20)).to_string();
    set_cell(&billing, 6, 5, &recent);
    let (run, out) = pipeline(dir, "");
    assert!(out.contains("warning: the snapshot date"), "{out}");
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(report.contains("the snapshot date"));
    std::fs::remove_dir_all(dir.join("runs")).unwrap();
    // In Chinese, the summary says it in Chinese.
    let (_, out) = pipeline(dir, "lang = \"zh\"\n");
    assert!(out.contains("警告：数据截止日"), "{out}");
    assert!(!out.contains("the snapshot date"), "{out}");
}

#[test]
fn duplicate_ids_in_their_disguises() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    let clients = dir.join("data/clients.csv");
    let mut l = lines(&clients);
    let row = |i: usize| l[i].clone();
    let with_id = |line: String, id: &str| {
        let rest = line.split_once(',').unwrap().1.to_string();
        format!("{id},{rest}")
    };
    let (r1, r2, r3) = (row(1), row(2), row(3));
    // Lower case, full width, and padded with an ideographic space.
    l.push(with_id(r1, "c000001"));
    l.push(with_id(r2, "Ｃ０００００２"));
    l.push(with_id(r3, "\u{3000}C000003"));
    write_lines(&clients, &l);
    // Billing rows that spell their client another way still belong to it.
    let billing = dir.join("data/billing.csv");
    set_cell(&billing, 1, 0, "c000001");
    let (run, _) = pipeline(dir, "");
    counts_add_up(&run);
    let r = rejects(&run);
    for (row, first) in [(202, 2), (203, 3), (204, 4)] {
        let hit = reject_at(&r, "clients.csv", row);
        assert!(
            hit.iter()
                .any(|x| x[2] == "client_id" && x[4] == format!("duplicate client_id; first seen at row {first}")),
            "row {row}: {hit:?}"
        );
    }
    assert!(reject_at(&r, "billing.csv", 2).is_empty(), "{r:?}");
    assert_eq!(read_csv(&run.join("labels.csv")).height(), 200);
}

#[test]
fn formula_and_html_text_is_inert() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    let clients = dir.join("data/clients.csv");
    set_cell(&clients, 1, 0, "@SUM(1+1)");
    set_cell(&clients, 1, 1, "=cmd|' /C calc'!A0");
    set_cell(&clients, 2, 1, "<script>alert(1)</script>");
    let billing = dir.join("data/billing.csv");
    // C000001's invoices now belong to an unknown client: reject lines with that id.
    let l: Vec<String> = lines(&billing)
        .into_iter()
        .map(|x| x.replacen("C000001,", "=1+2,", 1))
        .collect();
    write_lines(&billing, &l);
    let (run, _) = pipeline(dir, "");
    for file in ["labels.csv", "rejects.csv", "crm_import.csv", "segments.csv"] {
        let text = std::fs::read_to_string(run.join(file)).unwrap();
        for cell in text.lines().flat_map(|l| l.split(',')) {
            let cell = cell.trim_start_matches('\u{feff}').trim_start_matches('"');
            assert!(
                !(cell.starts_with('=') || cell.starts_with('@') || cell.starts_with('+')),
                "{file}: live cell {cell}"
            );
        }
    }
    let labels = std::fs::read_to_string(run.join("labels.csv")).unwrap();
    assert!(labels.contains("'@SUM(1+1)") && labels.contains("'=cmd"), "{labels}");
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(!report.contains("<script>alert(1)"));
}

#[test]
fn too_few_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    for (file, keep) in [
        ("clients.csv", 3),
        ("billing.csv", usize::MAX),
        ("activity.csv", usize::MAX),
        ("contacts.csv", usize::MAX),
    ] {
        let path = dir.join("data").join(file);
        let l: Vec<String> = lines(&path)
            .into_iter()
            .enumerate()
            .filter(|(i, x)| *i == 0 || x.starts_with("C000001,") || x.starts_with("C000002,"))
            .map(|(_, x)| x)
            .take(keep)
            .collect();
        write_lines(&path, &l);
    }
    let err = stderr_of(dir, "");
    assert!(err.contains("at least 10 clients, got 2"), "{err}");
}

#[test]
fn degenerate_features_are_named_and_no_segment_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    // Every client: the same contract, one identical invoice paid on time, no work log.
    let ids: Vec<String> = lines(&dir.join("data/clients.csv"))[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let mut c = vec!["client_id,contract_start".to_string()];
    let mut b = vec!["client_id,invoice_date,amount,paid_date".to_string()];
    for id in &ids {
        c.push(format!("{id},2023-01-01"));
        b.push(format!("{id},2025-06-01,300,2025-06-05"));
    }
    write_lines(&dir.join("data/clients.csv"), &c);
    write_lines(&dir.join("data/billing.csv"), &b);
    std::fs::remove_file(dir.join("data/activity.csv")).unwrap();
    let (run, out) = pipeline(dir, "");
    assert!(out.contains("warning: no variation"), "{out}");
    assert!(out.contains("value tiers could be formed"), "{out}");
    let segs = read_csv(&run.join("segments.csv"));
    for n in strings(&segs, "clients") {
        assert!(n.parse::<usize>().unwrap() > 0, "empty segment in {segs}");
    }
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(report.contains("no variation"));
}

#[test]
fn broken_xlsx_and_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    std::fs::remove_file(dir.join("data/clients.csv")).unwrap();
    std::fs::write(dir.join("data/clients.xlsx"), b"PK\x03\x04 truncated").unwrap();
    let err = stderr_of(dir, "");
    assert!(err.contains("clients.xlsx"), "{err}");
    std::fs::remove_file(dir.join("data/clients.xlsx")).unwrap();
    std::fs::write(dir.join("data/clients.parquet"), b"PAR1 truncated PAR1").unwrap();
    let err = stderr_of(dir, "");
    assert!(err.contains("clients.parquet"), "{err}");
}

#[test]
fn config_mistakes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    firm(dir);
    let err = stderr_of(dir, "bogus = 1");
    assert!(err.contains("bogus") && err.contains("clientseg.toml"), "{err}");
    let cfg = dir.join("enc.toml");
    std::fs::write(&cfg, "[input]\ndir = \"data\"\nencoding = \"ebcdic\"\n").unwrap();
    let out = run(&["run", "--config", &cfg.to_string_lossy(), "--quiet"], dir, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("input.encoding") && err.contains("latin-1"), "{err}");
    let cfg = dir.join("elsewhere.toml");
    std::fs::write(&cfg, "[input]\ndir = \"no-such-folder\"\n[output]\ndir = \"runs\"\n").unwrap();
    let out = run(&["run", "--config", &cfg.to_string_lossy(), "--quiet"], dir, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("clients table not found") && err.contains("no-such-folder"),
        "{err}"
    );
}
