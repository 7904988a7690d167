//! The compact reader (plain billing and activity CSVs) against the general readers:
//! the same rejects, the same accepted rows and the same features, on files that hold
//! every problem the compact path can meet.

use std::collections::BTreeMap;
use std::path::Path;

use clientseg::config::{Encoding, RawConfig, Settings, Table};
use clientseg::features::{self, FeatureParams};
use clientseg::ingest::{self, RawInputs, ROW};
use clientseg::validate;
use polars::prelude::*;

const CLIENTS: &str = "client_id,name,contract_start,contract_end,monthly_fee
C1,One,2023-01-01,,300
C2,Two,2023-06-01,2024-03-31,200
C3,Three,2022-01-01,,500
";

// Rows out of client order, a repeated month, an unknown client, an empty id, a month
// outside the contract, a negative count, blank optional cells and CRLF line ends.
const ACTIVITY: &str = "client_id,month,vouchers,filings,hours,tickets,late_documents\r
C1,2024-01,10,2,3.5,1,0\r
C3,2024-01,40,4,8.25,0,1\r
C1,2024-02,12,2,3.75,,0\r
C2,2024-05,5,1,1.5,0,0\r
C3,2024-02,38,4,,2,0\r
C1,2024-01,11,2,3.5,1,0\r
C9,2024-01,1,1,1,1,1\r
,2024-02,1,1,1,1,1\r
C2,2024-02,7,-1,2,0,1\r
C3,2024-03,0.1,0.3,2.675,1,0\r
";

const BILLING: &str = "client_id,invoice_date,amount,service,due_date,paid_date
C1,2024-01-05,300,bookkeeping,2024-01-20,2024-01-18
C1,2024-02-05,300,bookkeeping,,
C2,2024-01-05,-50,bookkeeping,2024-01-20,2024-02-01
C3,2024-01-05,500,annual_report,2024-01-20,
C3,2024-02-05,,bookkeeping,2024-02-20,
C9,2024-02-05,100,bookkeeping,2024-02-20,
C2,,200,bookkeeping,2024-02-20,
C3,2024-03-05,1200.50,,2024-03-20,2024-03-19
";

fn inputs(dir: &Path, compact: bool) -> RawInputs {
    let none = BTreeMap::new();
    let read = |table: Table, file: &str| {
        let path = dir.join(file);
        let t = if compact {
            ingest::read_table(table, &path, &none, Encoding::Auto)
        } else {
            ingest::read_table_general(table, &path, &none, Encoding::Auto)
        };
        t.unwrap()
    };
    let billing = read(Table::Billing, "billing.csv");
    let activity = read(Table::Activity, "activity.csv");
    assert_eq!(billing.dictionary("client_id").is_some(), compact);
    assert_eq!(activity.dictionary("client_id").is_some(), compact);
    RawInputs {
        clients: read(Table::Clients, "clients.csv"),
        billing,
        optional: vec![activity],
        files: Vec::new(),
    }
}

fn rows(df: &DataFrame) -> Vec<Option<u32>> {
    df.column(ROW)
        .unwrap()
        .cast(&DataType::UInt32)
        .unwrap()
        .u32()
        .unwrap()
        .iter()
        .collect()
}

#[test]
fn compact_and_general_readers_agree() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clients.csv"), CLIENTS).unwrap();
    std::fs::write(dir.path().join("activity.csv"), ACTIVITY).unwrap();
    std::fs::write(dir.path().join("billing.csv"), BILLING).unwrap();
    let mut raw = RawConfig::default();
    raw.input.max_reject_share = Some(1.0);
    let settings = Settings::from_raw(&raw, dir.path()).unwrap();
    let run = |compact: bool| match validate::validate(
        inputs(dir.path(), compact),
        &settings.validation,
        validate::latest_event_day(None),
    ) {
        Ok(v) => v,
        Err((e, _)) => panic!("validation failed: {e}"),
    };
    let (fast, general) = (run(true), run(false));

    assert_eq!(fast.rejects, general.rejects);
    let texts = |column: &str| -> Vec<String> {
        let c = fast.rejects.column(column).unwrap().str().unwrap().clone();
        c.iter().flatten().map(String::from).collect()
    };
    let reasons = texts("reason");
    for expected in [
        "duplicate month for this client; first seen at row 2",
        "client_id not found among the accepted clients",
        "required value is empty",
        "month outside the client's contract (contract_start..contract_end)",
        "negative value",
    ] {
        assert!(reasons.iter().any(|r| r == expected), "{expected} not in {reasons:?}");
    }
    let values = texts("value");
    assert!(
        values.iter().any(|v| v == "C9"),
        "unknown ids are shown as written: {values:?}"
    );
    for (a, b) in fast.counts.iter().zip(&general.counts) {
        assert_eq!((a.input, a.accepted, a.rejected), (b.input, b.accepted, b.rejected));
    }
    assert_eq!(rows(&fast.tables.billing), rows(&general.tables.billing));
    let (fa, ga) = (fast.tables.activity().unwrap(), general.tables.activity().unwrap());
    assert_eq!(rows(fa), rows(ga));
    for c in ["month", "vouchers", "hours"] {
        assert!(fa.column(c).unwrap().equals_missing(ga.column(c).unwrap()), "{c}");
    }
    for c in ["invoice_date", "amount", "due_date", "paid_date"] {
        let (f, g) = (
            fast.tables.billing.column(c).unwrap(),
            general.tables.billing.column(c).unwrap(),
        );
        assert!(f.equals_missing(g), "{c}");
    }

    let params = FeatureParams {
        snapshot: None,
        hourly_cost: 100.0,
        long_term_months: 24,
    };
    let f = features::compute(&fast.tables, &params).unwrap();
    let g = features::compute(&general.tables, &params).unwrap();
    assert_eq!(f.snapshot, g.snapshot);
    assert!(f.df.equals_missing(&g.df), "{}\n{}", f.df, g.df);
}

#[test]
fn anything_not_plain_goes_to_the_general_reader() {
    let dir = tempfile::tempdir().unwrap();
    let none = BTreeMap::new();
    for (name, table, text) in [
        (
            "quoted",
            Table::Billing,
            "client_id,invoice_date,amount\n\"C1\",2024-01-05,300\n",
        ),
        (
            "chinese_date",
            Table::Billing,
            "client_id,invoice_date,amount\nC1,2024年1月5日,300\n",
        ),
        (
            "trailing_dot",
            Table::Billing,
            "client_id,invoice_date,amount\nC1,2024-01-05,1200.\n",
        ),
        (
            "impossible",
            Table::Billing,
            "client_id,invoice_date,amount\nC1,2024-02-30,300\n",
        ),
        (
            "blank_line",
            Table::Billing,
            "client_id,invoice_date,amount\nC1,2024-01-05,300\n\nC1,2024-01-06,300\n",
        ),
        (
            "short_row",
            Table::Billing,
            "client_id,invoice_date,amount\nC1,2024-01-05\n",
        ),
        ("month_as_date", Table::Activity, "client_id,month\nC1,2024-01-05\n"),
        (
            "wide_space",
            Table::Billing,
            "client_id,invoice_date,amount\nC1\u{3000},2024-01-05,300\n",
        ),
    ] {
        let path = dir.path().join(format!("{name}.csv"));
        std::fs::write(&path, text).unwrap();
        let raw = ingest::read_table(table, &path, &none, Encoding::Auto).unwrap();
        assert!(raw.dictionary("client_id").is_none(), "{name} was read as plain");
    }
    let path = dir.path().join("plain.csv");
    std::fs::write(&path, "client_id,invoice_date,amount\nC1,2024-01-05,300\n").unwrap();
    let raw = ingest::read_table(Table::Billing, &path, &none, Encoding::Auto).unwrap();
    assert!(raw.dictionary("client_id").is_some());
}
