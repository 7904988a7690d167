use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::*;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clientseg"))
}

/// Runs the binary; panics with its output if the exit status is not `ok`.
pub fn run(args: &[&str], cwd: &Path, ok: bool) -> Output {
    let out = bin().args(args).current_dir(cwd).output().expect("binary runs");
    if out.status.success() != ok {
        panic!(
            "clientseg {:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs a command to its end, killing it after `limit` (a hung browser, Python or
/// database call fails the test instead of hanging the suite).
pub fn output_within(cmd: &mut Command, limit: std::time::Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("command starts");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut o = Vec::new();
        let _ = out.read_to_end(&mut o);
        o
    });
    let err_reader = std::thread::spawn(move || {
        let mut e = Vec::new();
        let _ = err.read_to_end(&mut e);
        e
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Output {
        status,
        stdout: reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

pub fn generate(dir: &Path, clients: usize, seed: u64, extra: &[&str]) {
    let n = clients.to_string();
    let s = seed.to_string();
    let out = dir.to_string_lossy().to_string();
    let mut args = vec![
        "generate",
        "--clients",
        &n,
        "--months",
        "24",
        "--seed",
        &s,
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    std::fs::create_dir_all(dir).expect("data folder");
    run(&args, dir, true);
}

/// Writes a config that reads `data` and writes runs under `runs` (both relative to `dir`).
pub fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("clientseg.toml");
    let text =
        format!("seed = 11\n{extra}\n[input]\ndir = \"data\"\n\n[output]\ndir = \"runs\"\nmodels_dir = \"models\"\n");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The only run folder under `runs`.
pub fn run_dir(runs: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .expect("runs folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "expected one run folder, found {dirs:?}");
    dirs[0].clone()
}

/// A whole run of the pipeline in `dir` (data under `dir/data`).
pub fn pipeline(dir: &Path, extra_config: &str) -> (PathBuf, String) {
    let cfg = config(dir, extra_config);
    let out = run(&["run", "--config", &cfg.to_string_lossy(), "--quiet"], dir, true);
    (
        run_dir(&dir.join("runs")),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

pub fn read_csv(path: &Path) -> DataFrame {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn strings(df: &DataFrame, col: &str) -> Vec<String> {
    df.column(col)
        .unwrap_or_else(|_| panic!("column {col}"))
        .str()
        .expect("text column")
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect()
}

pub fn headers(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read");
    let first = text.lines().next().unwrap_or("").trim_start_matches('\u{feff}');
    first.split(',').map(|s| s.to_string()).collect()
}

/// Adjusted Rand index of two labelings.
pub fn ari(a: &[String], b: &[String]) -> f64 {
    use std::collections::HashMap;
    let mut table: HashMap<(&str, &str), f64> = HashMap::new();
    let mut ra: HashMap<&str, f64> = HashMap::new();
    let mut rb: HashMap<&str, f64> = HashMap::new();
    for (x, y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *ra.entry(x).or_default() += 1.0;
        *rb.entry(y).or_default() += 1.0;
    }
    let c2 = |n: f64| n * (n - 1.0) / 2.0;
    let n = a.len() as f64;
    let index: f64 = table.values().map(|&v| c2(v)).sum();
    let sa: f64 = ra.values().map(|&v| c2(v)).sum();
    let sb: f64 = rb.values().map(|&v| c2(v)).sum();
    let expected = sa * sb / c2(n);
    let max = (sa + sb) / 2.0;
    (index - expected) / (max - expected)
}

#[test]
fn ari_hand_cases() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!((ari(&s(&["a", "a", "b", "b"]), &s(&["x", "x", "y", "y"])) - 1.0).abs() < 1e-12);
    // Known value from the literature example (Hubert & Arabie style): 0.24242...
    let a = s(&["0", "0", "0", "1", "1", "1"]);
    let b = s(&["0", "0", "1", "1", "2", "2"]);
    assert!((ari(&a, &b) - 0.242_424_242_424_242_4).abs() < 1e-9, "{}", ari(&a, &b));
}

/// A CSV file's rows as header -> cell maps.
pub fn csv_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let df = read_csv(path);
    let names: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
    let cols: Vec<Vec<String>> = names.iter().map(|c| strings(&df, c)).collect();
    (0..df.height())
        .map(|i| names.iter().cloned().zip(cols.iter().map(|c| c[i].clone())).collect())
        .collect()
}

pub fn manifest(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("manifest.json")).expect("manifest.json")).expect("manifest is JSON")
}

pub fn read_parquet(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display())))
        .finish()
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A column as numbers, NaN where empty.
pub fn floats(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name)
        .unwrap_or_else(|_| panic!("column {name}"))
        .cast(&DataType::Float64)
        .expect("numeric column")
        .f64()
        .expect("numeric column")
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect()
}
