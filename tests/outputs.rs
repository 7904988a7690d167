use crate::util::*;
use polars::prelude::SerReader;

const LABEL_COLUMNS: &[&str] = &[
    "client_id",
    "value_tier",
    "value_tier_en",
    "value_tier_zh",
    "value_distance",
    "behaviour_segment",
    "behaviour_segment_en",
    "behaviour_segment_zh",
    "behaviour_distance",
    "churn_risk_3m",
    "churn_risk_6m",
    "revenue_at_risk",
    "churn_band",
    "churn_drivers",
    "expected_months_12m",
    "value_ahead_12m",
    "value_ahead_36m",
    "monthly_hours",
    "hours_source",
    "monthly_cost",
    "margin_rate",
    "price_flag",
    "suggested_fee",
    "proposed_accountant",
    "allocation_reason",
    "handover_month",
    "actions_due",
    "name",
    "client_type",
    "taxpayer_type",
    "industry",
    "region",
    "market",
    "scale",
    "term",
    "needs",
    "accountant",
];

/// One run on slightly dirty data: every output is there with its documented columns.
#[test]
fn every_output_with_documented_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 800, 5, &["--dirty", "0.005"]);
    let (run, stdout) = pipeline(dir, "");
    assert!(
        stdout.contains(&run.display().to_string()),
        "summary names the run folder:\n{stdout}"
    );

    assert_eq!(headers(&run.join("labels.csv")), LABEL_COLUMNS);
    let bytes = std::fs::read(run.join("labels.csv")).unwrap();
    assert_eq!(
        &bytes[..3],
        b"\xEF\xBB\xBF",
        "labels.csv starts with a UTF-8 BOM for Excel"
    );
    let labels = read_csv(&run.join("labels.csv"));
    let zh = strings(&labels, "value_tier_zh");
    assert!(zh.iter().all(|z| z.ends_with("价值客户")), "{:?}", &zh[..3]);

    let seg = headers(&run.join("segments.csv"));
    for c in [
        "kind",
        "segment",
        "name_en",
        "name_zh",
        "clients",
        "client_share",
        "revenue_share",
        "median_fees_12m",
        "median_late_payment_share",
    ] {
        assert!(seg.contains(&c.to_string()), "segments.csv lacks {c}: {seg:?}");
    }
    assert_eq!(
        headers(&run.join("rejects.csv")),
        ["file", "row", "column", "value", "reason"]
    );
    for (file, columns) in [
        (
            "pricing.csv",
            &[
                "client_id",
                "monthly_fee",
                "monthly_hours",
                "hours_source",
                "monthly_cost",
                "margin_rate",
                "peer_fee_per_hour",
                "price_flag",
                "suggested_fee",
                "reason",
            ][..],
        ),
        (
            "allocation.csv",
            &["client_id", "current", "proposed", "reason", "hours"][..],
        ),
        (
            "workload.csv",
            &[
                "accountant",
                "capacity_hours",
                "hours_before",
                "utilisation_before",
                "hours_after",
                "utilisation_after",
            ][..],
        ),
    ] {
        let h = headers(&run.join(file));
        for c in columns {
            assert!(h.contains(&c.to_string()), "{file} lacks {c}: {h:?}");
        }
        assert!(
            run.join(file.replace(".csv", ".xlsx")).is_file(),
            "{file} has its spreadsheet"
        );
    }

    let features = std::fs::File::open(run.join("features.parquet")).unwrap();
    let f = polars::prelude::ParquetReader::new(features).finish().unwrap();
    assert!(f.column("fees_12m").is_ok() && f.column("z_fees_12m").is_ok() && f.column("activity_trend").is_ok());
    let lp = std::fs::File::open(run.join("labels.parquet")).unwrap();
    assert_eq!(
        polars::prelude::ParquetReader::new(lp).finish().unwrap().height(),
        labels.height()
    );

    let model: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["schema_version"], 4);
    assert!(
        model["analyses"]["churn"]["horizons"].is_array(),
        "the churn model is saved"
    );
    for key in ["features", "feature_settings"] {
        assert!(!model[key].is_null(), "model lacks {key}");
    }
    // Segmentations are analyses' parts like any other.
    for id in ["value", "behaviour"] {
        assert!(model.get(id).is_none(), "{id} is at the top of model.json");
        assert!(
            model["analyses"][id]["segmentation"]["segments"].is_array(),
            "model lacks {id}'s segmentation"
        );
    }
    let value = &model["analyses"]["value"]["segmentation"];
    assert!(value["scaler"]["mean"].is_array() && value["tree"]["tree"]["split"].is_object());
    assert!(model["features"][0]["definition"].is_string());

    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    for key in ["seed", "inputs", "config", "versions", "timings", "rows"] {
        assert!(!m[key].is_null(), "manifest lacks {key}");
    }
    for id in ["value", "behaviour"] {
        assert!(m.get(id).is_none(), "{id} is at the top of the manifest");
        assert!(m["analyses"][id]["segments"].is_array(), "manifest lacks {id}");
    }
    // Every input's fingerprint is the one coreutils computes for the file.
    for input in m["inputs"].as_array().unwrap() {
        let path = input["path"].as_str().unwrap();
        let out = std::process::Command::new("sha256sum")
            .arg(path)
            .output()
            .expect("sha256sum (coreutils) is needed by this test");
        let expected = String::from_utf8_lossy(&out.stdout);
        assert_eq!(input["sha256"].as_str(), expected.split_whitespace().next(), "{path}");
    }
    let scores = m["analyses"]["behaviour"]["k_scores"].as_array().unwrap();
    assert_eq!(scores.len(), 7, "k = 2..=8 each scored");
    for row in m["rows"].as_array().unwrap() {
        let (i, a, r) = (
            row["input"].as_u64().unwrap(),
            row["accepted"].as_u64().unwrap(),
            row["rejected"].as_u64().unwrap(),
        );
        assert_eq!(i, a + r, "input = accepted + rejected for {}", row["table"]);
    }
    let rejected: u64 = m["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rejected"].as_u64().unwrap())
        .sum();
    assert!(rejected > 0, "dirty input produced rejects");

    for (stem, title) in [
        ("k_selection", "Choosing the number of behaviour segments"),
        ("segments_pca", "Behaviour segments (PCA projection)"),
        ("segment_sizes", "Segment sizes (clients)"),
        ("profile_heatmap", "Behaviour segment profiles (z-scores)"),
        ("revenue_share", "Revenue share by value tier"),
    ] {
        let png = std::fs::read(run.join(format!("charts/{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png");
        assert!(png.len() > 5000, "{stem}.png is suspiciously small");
        let svg = std::fs::read_to_string(run.join(format!("charts/{stem}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains(title),
            "{stem}.svg lacks its title"
        );
    }
    let rules = std::fs::read_to_string(run.join("rules.txt")).unwrap();
    assert!(rules.contains("V1 high value") && rules.contains("IF "), "{rules}");
    // No temporary folder is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty());
}

/// Without the activity table the run still works and says which features are off.
#[test]
fn missing_activity_switches_features_off() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 400, 6, &[]);
    std::fs::remove_file(dir.join("data/activity.csv")).unwrap();
    let (run, stdout) = pipeline(dir, "");
    assert!(
        stdout.contains("features switched off") && stdout.contains("tickets_per_month"),
        "{stdout}"
    );
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let off: Vec<&str> = m["disabled_features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(
        off.contains(&"activity_trend") && off.contains(&"cost_to_serve"),
        "{off:?}"
    );
    assert!(
        !m["analyses"]["behaviour"].is_null(),
        "payment behaviour still segments"
    );
    // In Chinese, the reason too.
    std::fs::remove_dir_all(dir.join("runs")).unwrap();
    let (_, zh_out) = pipeline(dir, "lang = \"zh\"\n");
    assert!(
        zh_out.contains("已关闭的特征") && zh_out.contains("需要工作记录"),
        "{zh_out}"
    );
    assert!(!zh_out.contains("which the input does not have"), "{zh_out}");
}

/// A Chinese export (Chinese headers, 2024年1月5日 dates) runs with the shipped mapping.
#[test]
fn chinese_headers_with_sample_mapping() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 8, &["--zh"]);
    let mapping = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/clientseg-zh.toml")).unwrap();
    // Keep the shipped mapping's [columns.*] tables, point input and output at the temp folder.
    let columns = &mapping[mapping
        .find("[columns.clients]")
        .expect("mapping has [columns.clients]")..];
    let cfg = dir.join("zh.toml");
    std::fs::write(&cfg, format!("seed = 1\nlang = \"zh\"\n[input]\ndir = \"data\"\n[output]\ndir = \"runs\"\nmodels_dir = \"models\"\n{columns}")).unwrap();
    let out = run(&["run", "--config", &cfg.to_string_lossy(), "--quiet"], dir, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("clients") && stdout.contains("= "), "{stdout}");
    let run_dir = run_dir(&dir.join("runs"));
    let labels = read_csv(&run_dir.join("labels.csv"));
    assert_eq!(labels.height(), 300);
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        m["disabled_features"].as_array().unwrap().len(),
        0,
        "all columns mapped"
    );
    let types = strings(&labels, "taxpayer_type");
    assert!(
        types.iter().all(|t| t == "small_scale" || t == "general"),
        "Chinese categories normalised"
    );
    let svg = std::fs::read_to_string(run_dir.join("charts/revenue_share.svg")).unwrap();
    assert!(svg.contains("各价值层级收入占比"), "chart title in Chinese");
}

/// An .xlsx client archive (with real Excel dates) and a GBK-encoded billing CSV, both
/// with Chinese headers, are read with the shipped mapping; the spreadsheets written
/// back have Chinese headers.
#[test]
fn xlsx_archive_and_gbk_billing_are_accepted() {
    use calamine::Reader;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 8, &["--zh"]);
    let data = dir.join("data");

    // clients.csv -> clients.xlsx, contract dates as Excel dates.
    let clients = read_csv(&data.join("clients.csv"));
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    let date_format = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for (j, column) in clients.columns().iter().enumerate() {
        let j = j as u16;
        ws.write_string(0, j, column.name().as_str()).unwrap();
        let is_date = column.name().contains("日期");
        for (i, v) in column.str().unwrap().iter().enumerate() {
            let Some(v) = v else { continue };
            let row = i as u32 + 1;
            if is_date {
                let parts: Vec<u16> = v
                    .split(['年', '月', '日'])
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse().unwrap())
                    .collect();
                let d = rust_xlsxwriter::ExcelDateTime::from_ymd(parts[0], parts[1] as u8, parts[2] as u8).unwrap();
                ws.write_datetime_with_format(row, j, &d, &date_format).unwrap();
            } else if let Ok(n) = v.parse::<f64>() {
                ws.write_number(row, j, n).unwrap();
            } else {
                ws.write_string(row, j, v).unwrap();
            }
        }
    }
    book.save(data.join("clients.xlsx")).unwrap();
    std::fs::remove_file(data.join("clients.csv")).unwrap();

    // billing.csv re-encoded as GBK, as Excel on a Chinese Windows saves it.
    let text = std::fs::read_to_string(data.join("billing.csv")).unwrap();
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    std::fs::write(data.join("billing.csv"), &gbk).unwrap();

    let mapping = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/clientseg-zh.toml")).unwrap();
    let columns = &mapping[mapping.find("[columns.clients]").unwrap()..];
    let cfg = dir.join("zh.toml");
    std::fs::write(&cfg, format!("seed = 1\nlang = \"zh\"\n[input]\ndir = \"data\"\n[output]\ndir = \"runs\"\nmodels_dir = \"models\"\n{columns}")).unwrap();
    run(&["run", "--config", &cfg.to_string_lossy(), "--quiet"], dir, true);
    let run_dir = run_dir(&dir.join("runs"));
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    for row in m["rows"].as_array().unwrap() {
        assert_eq!(row["rejected"], 0, "{row}");
    }
    assert_eq!(m["rows"][0]["accepted"], 300);
    assert!(m["inputs"][0]["path"].as_str().unwrap().ends_with("clients.xlsx"));

    for (file, first) in [("labels.xlsx", "客户编号"), ("segments.xlsx", "类别")] {
        let mut book = calamine::open_workbook_auto(run_dir.join(file)).unwrap();
        let range = book.worksheet_range_at(0).unwrap().unwrap();
        assert_eq!(
            range.get((0, 0)).map(|c| c.to_string()),
            Some(first.to_string()),
            "{file}"
        );
    }
}

/// The same tables as Parquet give the same labels as CSV.
#[test]
fn parquet_inputs_match_csv_inputs() {
    use polars::prelude::*;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 21, &[]);
    let (csv_run, _) = pipeline(dir, "");
    let pq = dir.join("pq");
    std::fs::create_dir_all(pq.join("data")).unwrap();
    for t in ["clients", "billing", "activity", "staff", "contacts"] {
        let mut df = read_csv(&dir.join(format!("data/{t}.csv")));
        let file = std::fs::File::create(pq.join(format!("data/{t}.parquet"))).unwrap();
        ParquetWriter::new(file).finish(&mut df).unwrap();
    }
    let (pq_run, _) = pipeline(&pq, "");
    assert_eq!(
        std::fs::read(csv_run.join("labels.csv")).unwrap(),
        std::fs::read(pq_run.join("labels.csv")).unwrap()
    );
}

/// In Chinese the analyst reads Chinese words: feature names, categories, reject reasons
/// and spreadsheet headers; the CSV files keep the identifiers.
#[test]
fn chinese_run_shows_chinese_words_not_identifiers() {
    use calamine::Reader;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 300, 23, &["--dirty", "0.01"]);
    let (run, summary) = pipeline(dir, "lang = \"zh\"");
    // The summary printed at the end of the run, too.
    for (zh, en) in [
        ("价值分层", "value tiers"),
        ("最常见的问题", "most common problems"),
        ("行动清单", "actions:"),
        ("结果：", "results:"),
    ] {
        assert!(
            summary.contains(zh) && !summary.contains(en),
            "{zh} / {en} in:\n{summary}"
        );
    }
    assert!(!summary.contains("not a date"), "reasons in English:\n{summary}");
    let page = std::fs::read_to_string(run.join("report.html")).unwrap();
    for f in clientseg::features::CATALOGUE {
        assert!(!page.contains(f.name), "report.html shows the identifier {}", f.name);
    }
    assert!(page.contains("近12个月收费") && page.contains("平均逾期天数"));
    assert!(
        !page.contains("not a date") && !page.contains("not found among"),
        "reasons in English"
    );

    let read = |file: &str| {
        let mut book = calamine::open_workbook_auto(run.join(file)).unwrap();
        let range = book.worksheet_range_at(0).unwrap().unwrap();
        range
            .rows()
            .map(|r| r.iter().map(|c| c.to_string()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    let segs = read("segments.xlsx");
    assert!(segs[0].iter().any(|h| h == "近12个月收费（中位数）"), "{:?}", segs[0]);
    assert!(segs[0].iter().all(|h| !h.contains("fees_12m")), "{:?}", segs[0]);
    let labels = read("labels.xlsx");
    let col = labels[0]
        .iter()
        .position(|h| h == "纳税人类型")
        .expect("纳税人类型 column");
    assert!(labels[1..]
        .iter()
        .all(|r| r[col] == "小规模纳税人" || r[col] == "一般纳税人" || r[col].is_empty()));
    // The CSV keeps the codes, for other tools.
    let csv = read_csv(&run.join("labels.csv"));
    assert!(strings(&csv, "taxpayer_type").iter().any(|t| t == "small_scale"));
}

/// A new user with a folder of Chinese exports and no config: `run DIR` works with the
/// defaults and says so; `init DIR` writes a config that maps the headers it found.
#[test]
fn run_without_config_and_init() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("exports"), 300, 29, &["--zh"]);
    let out = run(&["run", "exports", "--quiet"], dir, true);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("config: none, the defaults apply"), "{said}");
    assert!(run_dir(&dir.join("runs")).join("labels.csv").is_file());
    // In Chinese too.
    let out = run(&["run", "exports", "--quiet", "--lang", "zh"], dir, true);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("配置文件：无，使用默认设置"), "{said}");
    let out = run(&["run", "--quiet"], dir, false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("give a folder of exports"));

    run(&["init", "exports"], dir, true);
    let text = std::fs::read_to_string(dir.join("clientseg.toml")).unwrap();
    for line in [
        "client_id = \"客户编号\"",
        "invoice_date = \"开票日期\"",
        "capacity_hours = \"每月可用工时\"",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    let again = run(&["init", "exports"], dir, false);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    std::fs::remove_dir_all(dir.join("runs")).unwrap();
    // The config init wrote for Chinese exports says lang = "zh".
    let out = run(&["run", "--config", "clientseg.toml", "--quiet"], dir, true);
    assert!(String::from_utf8_lossy(&out.stdout).contains("配置文件：clientseg.toml"));
    let out = run(
        &["run", "--config", "clientseg.toml", "--quiet", "--lang", "en"],
        dir,
        true,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("config: clientseg.toml"));
}
