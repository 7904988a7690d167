use crate::util::*;

fn small_data(dir: &std::path::Path) {
    generate(&dir.join("data"), 200, 12, &[]);
}

/// A misnamed required column stops the run, naming the file, the column expected and
/// the closest header found.
#[test]
fn misnamed_column_names_file_expected_and_closest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    small_data(dir);
    let path = dir.join("data/billing.csv");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("invoice_date", "invoce_date", 1);
    std::fs::write(&path, text).unwrap();
    let cfg = config(dir, "");
    let out = run(&["run", "--config", &cfg.to_string_lossy(), "--quiet"], dir, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("billing.csv") && err.contains("'invoice_date'") && err.contains("'invoce_date'"),
        "{err}"
    );
    assert!(
        !dir.join("runs").exists() || std::fs::read_dir(dir.join("runs")).unwrap().count() == 0,
        "no run folder on failure"
    );
}

/// A bad date and an orphan billing row each give their reject line, and the counts add up.
#[test]
fn bad_date_and_orphan_become_reject_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    small_data(dir);
    let path = dir.join("data/billing.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    // Line 2 gets an impossible date; line 3 an unknown client.
    let cells: Vec<&str> = lines[1].split(',').collect();
    lines[1] = format!("{},2024-02-30,{}", cells[0], cells[2..].join(","));
    let cells: Vec<String> = lines[2].split(',').map(String::from).collect();
    lines[2] = format!("NOBODY,{}", cells[1..].join(","));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let total_rows = lines.len() - 1;

    let (run, stdout) = pipeline(dir, "");
    let rejects = read_csv(&run.join("rejects.csv"));
    let rows = strings(&rejects, "row");
    let reasons = strings(&rejects, "reason");
    let columns = strings(&rejects, "column");
    let values = strings(&rejects, "value");
    let at = |r: &str| {
        rows.iter()
            .position(|x| x == r)
            .unwrap_or_else(|| panic!("no reject for row {r}: {rows:?}"))
    };
    let i = at("2");
    assert_eq!(columns[i], "invoice_date");
    assert_eq!(values[i], "2024-02-30");
    assert!(reasons[i].starts_with("not a date"), "{}", reasons[i]);
    let j = at("3");
    assert_eq!(columns[j], "client_id");
    assert_eq!(values[j], "NOBODY");
    assert!(reasons[j].contains("not found"), "{}", reasons[j]);
    assert!(strings(&rejects, "file").iter().all(|f| f == "billing.csv"));

    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let billing = m["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["table"] == "billing")
        .unwrap();
    assert_eq!(billing["input"].as_u64().unwrap() as usize, total_rows);
    assert_eq!(billing["rejected"], 2);
    assert_eq!(billing["accepted"].as_u64().unwrap() as usize, total_rows - 2);
    assert!(stdout.contains("most common problems"), "{stdout}");
}

/// Over the reject limit the run stops with a clear message, and every reject is kept.
#[test]
fn too_many_rejects_stop_the_run_but_keep_the_rejects() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 200, 13, &["--dirty", "0.2"]);
    let cfg = config(dir, "");
    let out = run(&["run", "--config", &cfg.to_string_lossy(), "--quiet"], dir, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("billing") && err.contains("over the limit of 5.0%"),
        "{err}"
    );
    let kept: Vec<_> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0].to_string_lossy().ends_with(".rejects.csv") && err.contains(&*kept[0].to_string_lossy()),
        "{err}"
    );
    assert!(read_csv(&kept[0]).height() > 10);
}

/// A duplicate client row is rejected, pointing at the first occurrence.
#[test]
fn duplicate_client_is_rejected_with_first_row() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    small_data(dir);
    let path = dir.join("data/clients.csv");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let second = text.lines().nth(1).unwrap().to_string();
    text.push_str(&second);
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    let (run, _) = pipeline(dir, "");
    let rejects = read_csv(&run.join("rejects.csv"));
    let reasons = strings(&rejects, "reason");
    assert!(
        reasons.iter().any(|r| r == "duplicate client_id; first seen at row 2"),
        "{reasons:?}"
    );
}

/// A config error names the key and the rule.
#[test]
fn bad_config_is_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[value]\nk = 1\n").unwrap();
    let out = run(&["run", "--config", &cfg.to_string_lossy()], dir, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("value.k") && err.contains("between 2 and 10"), "{err}");
}

/// A work month outside the client's contract is rejected with its reason.
#[test]
fn activity_month_outside_contract_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    small_data(dir);
    let path = dir.join("data/activity.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    // Every generated contract starts after 2015; move line 2 to 2015-03.
    let cells: Vec<&str> = lines[1].split(',').collect();
    lines[1] = format!("{},2015-03,{}", cells[0], cells[2..].join(","));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let (run, _) = pipeline(dir, "");
    let rejects = read_csv(&run.join("rejects.csv"));
    let i = strings(&rejects, "row")
        .iter()
        .position(|r| r == "2")
        .expect("row 2 rejected");
    assert_eq!(strings(&rejects, "file")[i], "activity.csv");
    assert_eq!(strings(&rejects, "column")[i], "month");
    assert!(strings(&rejects, "reason")[i].contains("outside the client's contract"));
}

/// The staff table (optional, a schema entry like the others) is read and validated:
/// its rows are counted, bad cells are reject lines naming file, row and column, and
/// Chinese headers map like any table's.
#[test]
fn staff_table_is_validated_like_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    small_data(dir);
    // 70 good rows, then three bad ones (under the 5% reject limit).
    let mut staff =
        String::from("会计,职级,每月工时,专长,团队,在职\n张伟,中级,160,general_taxpayer、manufacturing,A,是\n");
    for i in 2..=70 {
        staff.push_str(&format!("员工{i},初级,150,,A,是\n"));
    }
    staff.push_str("李娜,初级,abc,,A,是\n王芳,顾问,120,,B,否\n张伟,主管,150,,B,是\n");
    std::fs::write(dir.join("data/staff.csv"), staff).unwrap();
    let (run, stdout) = pipeline(
        dir,
        "[columns.staff]\naccountant = \"会计\"\ngrade = \"职级\"\ncapacity_hours = \"每月工时\"\nskills = \"专长\"\nteam = \"团队\"\nactive = \"在职\"",
    );
    assert!(stdout.contains("staff"), "{stdout}");
    let rejects = read_csv(&run.join("rejects.csv"));
    let lines: Vec<(String, String, String, String)> = (0..rejects.height())
        .map(|i| {
            (
                strings(&rejects, "file")[i].clone(),
                strings(&rejects, "row")[i].clone(),
                strings(&rejects, "column")[i].clone(),
                strings(&rejects, "reason")[i].clone(),
            )
        })
        .filter(|l| l.0 == "staff.csv")
        .collect();
    let has = |row: &str, column: &str, reason: &str| {
        lines
            .iter()
            .any(|l| l.1 == row && l.2 == column && l.3.starts_with(reason))
    };
    assert!(has("72", "capacity_hours", "not a number"), "{lines:?}");
    assert!(has("73", "grade", "unknown value"), "{lines:?}");
    assert!(
        has("74", "accountant", "duplicate accountant; first seen at row 2"),
        "{lines:?}"
    );
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let staff = m["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["table"] == "staff")
        .unwrap();
    assert_eq!(
        (
            staff["input"].as_u64(),
            staff["accepted"].as_u64(),
            staff["rejected"].as_u64()
        ),
        (Some(73), Some(70), Some(3))
    );
}
