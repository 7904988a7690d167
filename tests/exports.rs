//! The export corpus (tests/exports/*/): one firm's history laid out as eight kinds of
//! exports write it. Each folder's expected.toml says which file (and sheet) is which
//! table, where its header is and which header is which column; `clientseg run FOLDER`
//! with no config must read exactly that, reject no row and switch off nothing the
//! folder supports, and `init` and `check` must say the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::util::{run, run_dir};

struct Expected {
    file: String,
    sheet: Option<String>,
    header_row: i64,
    columns: BTreeMap<String, String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/exports")
}

fn expected(folder: &Path) -> BTreeMap<String, Expected> {
    let path = folder.join("expected.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: toml::Table = toml::from_str(&text).expect("expected.toml is TOML");
    value
        .iter()
        .map(|(table, v)| {
            let columns = v["columns"]
                .as_table()
                .expect("columns")
                .iter()
                .map(|(c, h)| (c.clone(), h.as_str().expect("header").to_string()))
                .collect();
            let e = Expected {
                file: v["file"].as_str().expect("file").to_string(),
                sheet: v.get("sheet").and_then(|s| s.as_str()).map(String::from),
                header_row: v["header_row"].as_integer().expect("header_row"),
                columns,
            };
            (table.clone(), e)
        })
        .collect()
}

#[test]
fn the_corpus_has_eight_layouts() {
    let folders: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/exports")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("expected.toml").is_file())
        .collect();
    assert!(folders.len() >= 8, "{folders:?}");
}

/// Runs the folder with no config, then checks the manifest, init's config and check's
/// report against expected.toml.
fn export_folder(name: &str) {
    let folder = corpus_dir().join(name);
    let want = expected(&folder);
    let tmp = tempfile::tempdir().expect("temp folder");
    let dir = folder.to_string_lossy().to_string();
    let out = run(&["run", &dir, "--quiet", "--seed", "5"], tmp.path(), true);
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    let run_folder = run_dir(&tmp.path().join("runs"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_folder.join("manifest.json")).expect("manifest")).expect("JSON");

    // Every table of the folder read from its file, header row and columns.
    let inputs = manifest["inputs"].as_array().expect("inputs");
    let used: Vec<&str> = inputs.iter().filter_map(|i| i["table"].as_str()).collect();
    let mut tables: Vec<&str> = want.keys().map(String::as_str).collect();
    let mut got_tables = used.clone();
    tables.sort();
    got_tables.sort();
    assert_eq!(got_tables, tables, "{name}: tables used");
    for input in inputs {
        let table = input["table"].as_str().expect("table");
        let e = &want[table];
        let path = input["path"].as_str().expect("path");
        assert!(
            path.ends_with(&e.file),
            "{name}: {table} read from {path}, expected {}",
            e.file
        );
        let layout = &input["layout"];
        assert_eq!(layout["sheet"].as_str(), e.sheet.as_deref(), "{name}: {table} sheet");
        assert_eq!(
            layout["header_row"].as_i64(),
            Some(e.header_row),
            "{name}: {table} header row"
        );
        let got: BTreeMap<String, String> = layout["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["column"].as_str().unwrap_or_default().to_string(),
                    c["header"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert_eq!(got, e.columns, "{name}: {table} mapping");
    }

    // No real row rejected.
    for r in manifest["rows"].as_array().expect("rows") {
        assert_eq!(r["rejected"].as_u64(), Some(0), "{name}: {r}\n{summary}");
        assert!(r["accepted"].as_u64().unwrap_or(0) > 0, "{name}: {r}");
    }
    // Nothing switched off that the folder could support: every disabled feature needs
    // a column the folder does not have.
    let have: Vec<String> = want
        .iter()
        .flat_map(|(t, e)| e.columns.keys().map(move |c| format!("{t}.{c}")))
        .collect();
    for d in manifest["disabled_features"].as_array().expect("disabled") {
        let reason = d["reason"].as_str().unwrap_or_default();
        for h in &have {
            assert!(
                !reason.split([' ', ',']).any(|w| w == h),
                "{name}: {} switched off though the folder has {h}: {reason}",
                d["name"]
            );
        }
    }
    // The summary shows the mapping at its top.
    let first_table = &want["clients"];
    if first_table.columns.iter().any(|(c, h)| c != h) {
        let header = first_table.columns.get("client_id").expect("client_id");
        assert!(summary.contains(&format!("{header}→client_id")), "{name}: {summary}");
    }

    // init writes the same mapping.
    let cfg = tmp.path().join("init.toml");
    let cfg_s = cfg.to_string_lossy().to_string();
    run(&["init", &dir, "--out", &cfg_s], tmp.path(), true);
    let text = std::fs::read_to_string(&cfg).expect("init wrote its config");
    let raw: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: init's TOML: {e}\n{text}"));
    for (table, e) in &want {
        assert_eq!(
            raw["input"][table.as_str()].as_str(),
            Some(e.file.as_str()),
            "{name}: init's input.{table}"
        );
        if let Some(sheet) = &e.sheet {
            assert_eq!(
                raw["input"]["sheets"][table.as_str()].as_str(),
                Some(sheet.as_str()),
                "{name}"
            );
        }
        let cols: BTreeMap<String, String> = raw["columns"][table.as_str()]
            .as_table()
            .expect("columns section")
            .iter()
            .map(|(c, h)| (c.clone(), h.as_str().unwrap_or_default().to_string()))
            .collect();
        assert_eq!(cols, e.columns, "{name}: init's [columns.{table}]");
    }
    assert!(
        !text.contains("UNCERTAIN:"),
        "{name}: nothing here is uncertain\n{text}"
    );
    // A run with init's config reads the same.
    run(
        &["run", "--config", &cfg_s, "--quiet", "--out", "runs2"],
        tmp.path(),
        true,
    );

    // check: every mapped column parses in full; Chinese words for a Chinese export.
    let out = run(&["check", &dir], tmp.path(), true);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let chinese = want["clients"].columns.values().any(|h| !h.is_ascii());
    assert_eq!(text.contains("表头在第"), chinese, "{name}: check's language\n{text}");
    let shares: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.ends_with("%,") || w.ends_with('%'))
        .collect();
    assert!(!shares.is_empty(), "{name}: {text}");
    for s in shares {
        assert!(
            s.starts_with("100%"),
            "{name}: a column does not parse in full: {s}\n{text}"
        );
    }
}

#[test]
fn kingdee_style_title_rows_totals_and_yes_no() {
    export_folder("kingdee_style");
    // In Chinese the summary's mapping names the columns in Chinese.
    let tmp = tempfile::tempdir().expect("temp folder");
    let dir = corpus_dir().join("kingdee_style").to_string_lossy().to_string();
    let out = run(&["run", &dir, "--quiet", "--lang", "zh"], tmp.path(), true);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("输入 客户档案 ← 客户档案.xlsx（表头第 4 行）：客户编码→客户编号"),
        "{said}"
    );
    assert!(
        said.contains("跳过合计行 1 行") && !said.contains("→client_id"),
        "{said}"
    );
}

#[test]
fn chanjet_style_gbk_csv() {
    export_folder("chanjet_style_gbk");
}

#[test]
fn one_workbook_with_a_sheet_per_table_and_serial_dates() {
    export_folder("one_workbook_serial_dates");
}

#[test]
fn merged_two_row_headers() {
    export_folder("merged_two_row_headers");
}

#[test]
fn own_sheets_with_subtotals_notes_and_wan() {
    export_folder("own_sheets_csv");
}

#[test]
fn english_export() {
    export_folder("english_export");
}

#[test]
fn invoicing_software_keyed_by_tax_ids() {
    export_folder("invoicing_tax_ids");
}

#[test]
fn crm_follow_ups_and_mixed_files() {
    export_folder("crm_followups_mixed");
}

#[test]
fn excel_unicode_text_utf16_with_tabs() {
    export_folder("excel_unicode_text");
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("folder");
    for e in std::fs::read_dir(from).expect("read").flatten() {
        if e.path().extension().is_some_and(|x| x != "toml") {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

#[test]
fn two_possible_billing_files_stop_with_both_names() {
    let tmp = tempfile::tempdir().expect("temp");
    let data = tmp.path().join("exports");
    copy_folder(&corpus_dir().join("chanjet_style_gbk"), &data);
    std::fs::copy(data.join("收款记录.csv"), data.join("开票明细.csv")).expect("copy");
    let out = run(&["run", "exports", "--quiet"], tmp.path(), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("two files could be the billing table"), "{err}");
    assert!(err.contains("收款记录.csv") && err.contains("开票明细.csv"), "{err}");
    assert!(err.contains("[input] billing = "), "{err}");
    assert!(
        !tmp.path().join("runs").exists()
            || std::fs::read_dir(tmp.path().join("runs"))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0
    );
}

#[test]
fn a_header_that_could_be_two_columns_is_named_not_guessed() {
    let tmp = tempfile::tempdir().expect("temp");
    let data = tmp.path().join("exports");
    std::fs::create_dir_all(&data).expect("folder");
    std::fs::write(data.join("客户档案.csv"), "客户编码,客户名称\nC1,甲\nC2,乙\n").expect("write");
    std::fs::write(
        data.join("收费明细.csv"),
        "客户编码,日期,金额\nC1,2025-01-05,300\nC2,2025-01-06,300\n",
    )
    .expect("write");
    let out = run(&["run", "exports", "--quiet"], tmp.path(), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("收费明细.csv: the header '日期' could be invoice_date or paid_date or due_date"),
        "{err}"
    );
    assert!(err.contains("[columns.billing] invoice_date = \"日期\""), "{err}");

    // Two headers that read equally well as one column.
    std::fs::write(data.join("收费明细.csv"), "客户编码,收费日期,金额\nC1,2025-01-05,300\n").expect("write");
    std::fs::write(
        data.join("客户档案.csv"),
        "客户编码,服务费(元/月),服务费(元/年)\nC1,300,3600\n",
    )
    .expect("write");
    let out = run(&["run", "exports", "--quiet"], tmp.path(), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the headers '服务费(元/月)' and '服务费(元/年)' both read as monthly_fee"),
        "{err}"
    );
}

#[test]
fn a_workbook_without_a_recognisable_header_says_what_it_found() {
    let tmp = tempfile::tempdir().expect("temp");
    let data = tmp.path().join("exports");
    std::fs::create_dir_all(&data).expect("folder");
    std::fs::write(data.join("客户档案.csv"), "客户编码,客户名称\nC1,甲\n").expect("write");
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    ws.write(0, 0, "季度汇总").expect("cell");
    ws.write(1, 0, "甲").expect("cell");
    ws.write(1, 1, "乙").expect("cell");
    ws.write(2, 0, 1).expect("cell");
    ws.write(2, 1, 2).expect("cell");
    book.save(data.join("收费明细.xlsx")).expect("save");
    let out = run(&["run", "exports", "--quiet"], tmp.path(), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("收费明细.xlsx: no row among the first 30 reads as the billing table's header"),
        "{err}"
    );
    assert!(err.contains("'季度汇总'") && err.contains("'甲, 乙'"), "{err}");
    assert!(err.contains("invoice_date (开票日期 / 收费日期)"), "{err}");
}

#[test]
fn a_folder_without_billing_lists_what_it_holds() {
    let tmp = tempfile::tempdir().expect("temp");
    let data = tmp.path().join("exports");
    std::fs::create_dir_all(&data).expect("folder");
    std::fs::write(data.join("客户档案.csv"), "客户编码,客户名称\nC1,甲\n").expect("write");
    std::fs::write(data.join("备忘.csv"), "事项\n年报\n").expect("write");
    let out = run(&["run", "exports", "--quiet"], tmp.path(), false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("billing table not found") && err.contains("收费记录.xlsx"),
        "{err}"
    );
    assert!(
        err.contains("客户档案.csv, 备忘.csv") || err.contains("备忘.csv, 客户档案.csv"),
        "{err}"
    );
}
