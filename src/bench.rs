//! Bench: measures clientseg on generated firms against the same job in pandas +
//! scikit-learn (benches/pandas_sklearn.py), and the k-means kernel against
//! linfa-clustering and scikit-learn from the same starting centres. Prints tables and
//! writes `bench.json`. Nothing here is a test: tests check correctness, this measures.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use linfa::prelude::*;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::cluster::kernel::{self, Rows, StopRule};
use crate::features::{default_clustering_features, FeatureGroup};
use crate::persist;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{what} failed: {message}")]
    Child { what: String, message: String },
    #[error("cannot set up the Python environment: {0}. Install python3 with the venv module (Debian: apt-get install python3-venv), or run with --no-python")]
    Venv(String),
    #[error(transparent)]
    Persist(#[from] persist::PersistError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct BenchOptions {
    pub sizes: Vec<usize>,
    pub months: usize,
    pub seed: u64,
    pub out: PathBuf,
    pub python: bool,
    pub kernel_rows: usize,
    pub kernel_dims: usize,
    pub kernel_k: usize,
    /// The clientseg binary that runs the pipeline (a child process per size, so that
    /// each size's peak memory is its own).
    pub exe: PathBuf,
    /// Folder with pandas_sklearn.py, kmeans_ref.py and requirements.txt.
    pub benches_dir: PathBuf,
}

/// Wall time and peak memory of one whole job, and its stages.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub seconds: f64,
    pub peak_rss_mib: f64,
    pub stages: Vec<(String, f64)>,
    /// The chosen behaviour k and the inertia of that fit, and the inertia at every k.
    pub chosen_k: usize,
    pub inertia_by_k: Vec<(usize, f64)>,
    /// What each analysis achieved, by name (churn ROC-AUC per horizon, moves, ...), so
    /// that speed is read beside quality.
    pub quality: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    pub clients: usize,
    pub billing_rows: usize,
    pub activity_rows: usize,
    pub clientseg: Job,
    /// The same run with `[actions] enabled = false`.
    pub without_actions: Job,
    /// Both runs again in the opposite order (without the action list, then with it), so
    /// that a drift of the machine over the invocation cancels out of what the list adds.
    pub again: Option<(Job, Job)>,
    pub pandas_sklearn: Option<Job>,
    /// The Python job run a second time, after clientseg's second pair, for the spread.
    pub pandas_sklearn_again: Option<Job>,
    /// The churn models against scikit-learn's on the same snapshots.
    pub churn: Vec<ChurnCompare>,
    /// Pushing the run's labels and actions to a database: SQLite always, PostgreSQL when
    /// CLIENTSEG_BENCH_PG_URL names a server.
    pub push: Vec<PushMeasure>,
    /// What reading the input can cost at least, measured in the same invocation.
    pub floors: Floors,
    /// What writing the run folder can cost at least, measured in the same invocation.
    pub write_floor: WriteFloor,
}

/// The output stages' floor: the files of a run folder, their bytes already in memory,
/// written into a new folder beside it (one create and one write per file), after the
/// same sync and uncache a run starts with. Nothing is formatted or compressed.
#[derive(Debug, Clone, Serialize)]
pub struct WriteFloor {
    pub files: usize,
    pub bytes: u64,
    /// Fastest of two.
    pub seconds: f64,
    /// The files in subfolders (each accountant's page, the charts), and the fastest of
    /// two writes of those alone: a file system pays per file created as well as per byte.
    pub folder_files: usize,
    pub folder_seconds: f64,
}

/// The input stage's floors: the input files' bytes read once with the page cache warm,
/// and polars' CSV reader parsing the same files (types inferred, nothing checked).
#[derive(Debug, Clone, Serialize)]
pub struct Floors {
    pub bytes: u64,
    /// Fastest of three reads.
    pub read_seconds: f64,
    /// Fastest of two parses.
    pub parse_seconds: f64,
}

/// The input files a run reads (the generator's truth.csv is not one).
const INPUT_FILES: &[&str] = &[
    "clients.csv",
    "billing.csv",
    "activity.csv",
    "staff.csv",
    "contacts.csv",
];

fn floors(dir: &Path) -> Result<Floors, BenchError> {
    use polars::prelude::{CsvReadOptions, SerReader};
    let files: Vec<PathBuf> = INPUT_FILES
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    let mut bytes = 0;
    let mut read_seconds = f64::INFINITY;
    for _ in 0..3 {
        let start = std::time::Instant::now();
        bytes = 0;
        for p in &files {
            let mut f = std::fs::File::open(p).map_err(io(p))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let got = f.read(&mut buf).map_err(io(p))?;
                if got == 0 {
                    break;
                }
                bytes += got as u64;
            }
        }
        read_seconds = read_seconds.min(start.elapsed().as_secs_f64());
    }
    let mut parse_seconds = f64::INFINITY;
    for _ in 0..2 {
        let start = std::time::Instant::now();
        for p in &files {
            let df = CsvReadOptions::default()
                .with_has_header(true)
                .try_into_reader_with_file_path(Some(p.clone()))
                .and_then(|r| r.finish())
                .map_err(|e| BenchError::Child {
                    what: "polars' CSV reader".into(),
                    message: format!("{}: {e}", p.display()),
                })?;
            drop(df);
        }
        parse_seconds = parse_seconds.min(start.elapsed().as_secs_f64());
    }
    Ok(Floors {
        bytes,
        read_seconds,
        parse_seconds,
    })
}

/// Every file under `dir`, relative to it, with its bytes.
fn files_of(dir: &Path, under: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) -> Result<(), BenchError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io(dir))?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = under.join(e.file_name());
        match e.file_type() {
            Ok(t) if t.is_dir() => files_of(&path, &rel, out)?,
            Ok(t) if t.is_file() => out.push((rel, std::fs::read(&path).map_err(io(&path))?)),
            _ => {}
        }
    }
    Ok(())
}

/// Writes `files` under `to` (made first), after a sync and with the runs' files out of
/// the page cache, as a run starts; returns the seconds.
fn write_all(files: &[&(PathBuf, Vec<u8>)], to: &Path, runs: &Path) -> Result<f64, BenchError> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    uncache(runs);
    let start = Instant::now();
    std::fs::create_dir_all(to).map_err(io(to))?;
    for (rel, bytes) in files {
        let path = to.join(rel);
        if let Some(parent) = path.parent().filter(|p| !p.is_dir()) {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// [`WriteFloor`] of the run folder `run_dir`. The copies go where old run folders wait
/// (`scratch`), moved aside rather than deleted like them.
fn write_floor(run_dir: &Path, scratch: &Path) -> Result<WriteFloor, BenchError> {
    let mut files = Vec::new();
    files_of(run_dir, Path::new(""), &mut files)?;
    let all: Vec<&(PathBuf, Vec<u8>)> = files.iter().collect();
    let nested: Vec<&(PathBuf, Vec<u8>)> = files.iter().filter(|(rel, _)| rel.components().count() > 1).collect();
    let runs = scratch.parent().unwrap_or(scratch);
    let mut copy = 0;
    let mut fastest = |set: &[&(PathBuf, Vec<u8>)]| -> Result<f64, BenchError> {
        let mut best = f64::INFINITY;
        for _ in 0..2 {
            copy += 1;
            let to = scratch.join(format!("{}-write-floor-{copy}", std::process::id()));
            best = best.min(write_all(set, &to, runs)?);
        }
        Ok(best)
    };
    let seconds = fastest(&all)?;
    let folder_seconds = fastest(&nested)?;
    Ok(WriteFloor {
        files: files.len(),
        bytes: files.iter().map(|(_, b)| b.len() as u64).sum(),
        seconds,
        folder_files: nested.len(),
        folder_seconds,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct PushMeasure {
    pub target: String,
    pub seconds: f64,
    pub peak_mib: f64,
}

/// One churn horizon: pooled rolling-origin ROC-AUC of each model, and fitting time.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnCompare {
    pub months: i64,
    pub test_months: usize,
    pub clientseg_logistic_auc: f64,
    pub clientseg_boosted_auc: f64,
    pub sklearn_logistic_auc: Option<f64>,
    pub sklearn_boosted_auc: Option<f64>,
    /// clientseg's whole validation stage of this horizon (both models, calibration).
    pub clientseg_seconds: f64,
    /// scikit-learn's fitting time over all horizons (both models).
    pub sklearn_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelRun {
    pub name: String,
    pub iterations: usize,
    pub seconds: f64,
    pub ms_per_iteration: f64,
    pub inertia: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelResult {
    pub rows: usize,
    pub dims: usize,
    pub k: usize,
    /// One parallel pass reading the whole matrix: the memory-bandwidth floor.
    pub floor_ms: f64,
    pub runs: Vec<KernelRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub versions: Vec<(String, String)>,
    pub threads: usize,
    pub sizes: Vec<SizeResult>,
    pub kernel: Option<KernelResult>,
}

/// The stages both jobs report, in order; clientseg's output stages are summed into
/// "outputs".
pub const STAGES: &[&str] = &[
    "ingest",
    "validate",
    "features",
    "history",
    "scaling",
    "k selection",
    "final fits",
    "classifier",
    "churn",
    "pricing",
    "allocation",
    "actions",
    "outputs",
];

/// A manifest's stage times, summed into the bench's stages. Work timed inside a stage
/// (the pages, each churn horizon) is already part of that stage's time.
fn manifest_stages(manifest: &Value) -> Vec<(String, f64)> {
    let mut stages: Vec<(String, f64)> = STAGES.iter().map(|s| (s.to_string(), 0.0)).collect();
    for t in manifest["timings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["within"].is_null())
    {
        let name = bench_stage(t["stage"].as_str().unwrap_or(""));
        if let Some(s) = stages.iter_mut().find(|s| s.0 == name) {
            s.1 += t["seconds"].as_f64().unwrap_or(0.0);
        }
    }
    stages
}

fn bench_stage(name: &str) -> &str {
    match name {
        "tables" | "spreadsheets" | "migration" | "charts" | "report" => "outputs",
        n if n.starts_with("churn") => "churn",
        other => other,
    }
}

pub fn run(opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    let python = if opts.python {
        Some(ensure_venv(&opts.out.join("venv"), &opts.benches_dir)?)
    } else {
        None
    };
    let mut report = BenchReport {
        versions: persist::versions().into_iter().collect(),
        threads: rayon::current_num_threads(),
        sizes: Vec::new(),
        kernel: None,
    };
    for &n in opts.sizes.iter().filter(|&&n| n > 0) {
        let data = ensure_data(opts, n)?;
        eprintln!("bench: {n} clients: the input's floors (a read, a parse by polars)");
        let floors = floors(&data)?;
        // A first run, not measured: at 1M clients the first run of an invocation was
        // slower in the stages before the action list than the run after it, by 1.4 s on
        // average and in six invocations of six, which counted against the side run first.
        eprintln!("bench: {n} clients: a first run, not measured");
        run_clientseg(opts, &data, n, false, 2)?;
        eprintln!("bench: {n} clients: clientseg");
        let (clientseg, run_dir) = run_clientseg(opts, &data, n, true, 0)?;
        eprintln!("bench: {n} clients: the outputs' floor (the run folder's files written as they are)");
        let write_floor = write_floor(&run_dir, &trash(opts))?;
        // The same run without the action list, for what the list adds.
        eprintln!("bench: {n} clients: clientseg without the action list");
        let (without_actions, _) = run_clientseg(opts, &data, n, false, 0)?;
        let pandas_sklearn = match &python {
            Some(py) => {
                eprintln!("bench: {n} clients: pandas + scikit-learn");
                Some(run_python(opts, py, &data, n)?)
            }
            None => None,
        };
        let churn = match &python {
            Some(py) => {
                eprintln!("bench: {n} clients: churn models in scikit-learn");
                churn_compare(opts, py, &run_dir)?
            }
            None => churn_compare_ours(&run_dir)?,
        };
        eprintln!("bench: {n} clients: push");
        let push = push_measure(opts, &run_dir, n)?;
        eprintln!("bench: {n} clients: clientseg without the action list, then with it, again");
        let without = run_clientseg(opts, &data, n, false, 1)?.0;
        let again = Some((run_clientseg(opts, &data, n, true, 1)?.0, without));
        let pandas_sklearn_again = match &python {
            Some(py) => {
                eprintln!("bench: {n} clients: pandas + scikit-learn, again");
                Some(run_python(opts, py, &data, n)?)
            }
            None => None,
        };
        let (billing_rows, activity_rows) = count_rows(&data)?;
        let size = SizeResult {
            clients: n,
            billing_rows,
            activity_rows,
            clientseg,
            without_actions,
            again,
            pandas_sklearn,
            pandas_sklearn_again,
            churn,
            push,
            floors,
            write_floor,
        };
        println!("{}", size_table(&size));
        println!("{}", action_list_lines(&size));
        for p in &size.push {
            println!(
                "push to {}: {:.2}s, peak {:.0} MiB (labels and actions, one transaction)",
                p.target, p.seconds, p.peak_mib
            );
        }
        report.sizes.push(size);
    }
    if opts.kernel_rows > 0 {
        eprintln!(
            "bench: k-means kernel on {} x {}, k = {}",
            opts.kernel_rows, opts.kernel_dims, opts.kernel_k
        );
        let k = kernel_bench(opts, python.as_deref())?;
        println!("{}", kernel_table(&k));
        report.kernel = Some(k);
    }
    let _ = std::fs::remove_dir_all(trash(opts));
    // Plain data with string keys: serialising cannot fail.
    let json = serde_json::to_string_pretty(&report).expect("report serialises");
    persist::write_atomic(&opts.out.join("bench.json"), json.as_bytes())?;
    println!("json: {}", opts.out.join("bench.json").display());
    Ok(report)
}

/// A virtual environment with the pinned requirements, rebuilt when they change.
fn ensure_venv(venv: &Path, benches: &Path) -> Result<PathBuf, BenchError> {
    let req = benches.join("requirements.txt");
    let wanted = std::fs::read(&req).map_err(io(&req))?;
    let marker = venv.join("clientseg-requirements.txt");
    let python = venv.join("bin").join("python");
    if python.is_file() && std::fs::read(&marker).ok().as_deref() == Some(&wanted[..]) {
        return Ok(python);
    }
    eprintln!("bench: installing {} into {}", req.display(), venv.display());
    let status = |mut c: Command, what: &str| -> Result<(), BenchError> {
        let s = c.status().map_err(|e| BenchError::Venv(format!("{what}: {e}")))?;
        if s.success() {
            Ok(())
        } else {
            Err(BenchError::Venv(format!("{what} exited with {s}")))
        }
    };
    let _ = std::fs::remove_dir_all(venv);
    let mut c = Command::new("python3");
    c.args(["-m", "venv"]).arg(venv);
    status(c, "python3 -m venv")?;
    let mut c = Command::new(&python);
    c.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&req);
    status(c, "pip install")?;
    std::fs::write(&marker, &wanted).map_err(io(&marker))?;
    Ok(python)
}

/// Last day of the generated bench histories.
const GENERATED_END: &str = "2025-12-31";

/// Accountants of a generated firm of n clients: one per 50 (20,000 at 1M clients).
fn staff_for(n: usize) -> usize {
    (n / 50).max(4)
}

/// Generated data for n clients, reused when a complete copy is there.
fn ensure_data(opts: &BenchOptions, n: usize) -> Result<PathBuf, BenchError> {
    let dir = opts.out.join("data").join(format!(
        "clients-{n}-m{}-s{}-staff{}",
        opts.months,
        opts.seed,
        staff_for(n)
    ));
    let done = dir.join(".complete");
    if done.is_file() {
        return Ok(dir);
    }
    eprintln!(
        "bench: generating {n} clients x {} months into {}",
        opts.months,
        dir.display()
    );
    // In a child process: at 1M clients the generator holds about 16 GB, and a process
    // spawned later by a parent that large inherits that peak in what wait4 reports
    // (Linux records the old address space's high-water mark at exec). The bench itself
    // stays small, so each side's peak is its own, on the first run too.
    let mut cmd = Command::new(&opts.exe);
    cmd.arg("generate")
        .args(["--clients", &n.to_string()])
        .args(["--months", &opts.months.to_string()])
        .args(["--seed", &opts.seed.to_string()])
        .args(["--staff", &staff_for(n).to_string()])
        .args(["--end", GENERATED_END])
        .arg("--out")
        .arg(&dir);
    measured(cmd, "clientseg generate")?;
    std::fs::write(&done, b"").map_err(io(&done))?;
    Ok(dir)
}

fn count_rows(dir: &Path) -> Result<(usize, usize), BenchError> {
    let lines = |f: &str| -> Result<usize, BenchError> {
        let p = dir.join(f);
        let mut file = std::fs::File::open(&p).map_err(io(&p))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        loop {
            let got = file.read(&mut buf).map_err(io(&p))?;
            if got == 0 {
                break;
            }
            n += buf[..got].iter().filter(|&&b| b == b'\n').count();
        }
        Ok(n.saturating_sub(1))
    };
    Ok((lines("billing.csv")?, lines("activity.csv")?))
}

/// The high-water mark of a process's resident memory (VmHWM), in MiB.
fn vm_hwm_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs a child to the end and returns its stdout, wall time and peak RSS.
///
/// The peak is the child's own high-water mark, sampled while it runs. wait4's
/// ru_maxrss is not used on Linux: a child spawned by a large parent reports the parent's
/// resident size (the kernel keeps the old address space's mark at exec), which once
/// made both sides of the bench read 11 GiB.
fn measured(mut cmd: Command, what: &str) -> Result<(String, f64, f64), BenchError> {
    let child_err = |message: String| BenchError::Child {
        what: what.to_string(),
        message,
    };
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| child_err(e.to_string()))?;
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak: Option<f64> = None;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(v) = vm_hwm_mib(pid) {
                    peak = Some(peak.map_or(v, |p: f64| p.max(v)));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out).map_err(|e| child_err(e.to_string()))?;
    }
    let waited = wait_with_rusage(pid as i32);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let sampled = sampler.join().ok().flatten();
    let (code, maxrss) = waited.map_err(child_err)?;
    let peak = sampled.unwrap_or(maxrss);
    let seconds = start.elapsed().as_secs_f64();
    if code != 0 {
        return Err(child_err(format!("exit status {code}; output:\n{out}")));
    }
    Ok((out, seconds, peak))
}

/// Waits for a child and returns its exit code and peak RSS in MiB.
fn wait_with_rusage(pid: i32) -> Result<(i32, f64), String> {
    let mut status = 0;
    // SAFETY: wait4 writes into the two local out-parameters only.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    // Linux reports ru_maxrss in KiB.
    Ok((code, usage.ru_maxrss as f64 / 1024.0))
}

/// `clientseg push` of the run to a fresh SQLite file, and to PostgreSQL when
/// CLIENTSEG_BENCH_PG_URL is set (with --force: the database may hold later runs).
fn push_measure(opts: &BenchOptions, run_dir: &Path, n: usize) -> Result<Vec<PushMeasure>, BenchError> {
    let db = opts.out.join("runs").join(format!("clients-{n}")).join("push.db");
    let _ = std::fs::remove_file(&db);
    let mut targets = vec![(
        "SQLite".to_string(),
        format!("sqlite://{}", std::path::absolute(&db).unwrap_or(db.clone()).display()),
    )];
    if let Ok(url) = std::env::var("CLIENTSEG_BENCH_PG_URL") {
        targets.push(("PostgreSQL".to_string(), url));
    }
    let mut out = Vec::new();
    for (name, url) in targets {
        let mut cmd = Command::new(&opts.exe);
        cmd.args(["push", "--force", "--run"]).arg(run_dir).args(["--to", &url]);
        let (_, seconds, peak_mib) = measured(cmd, "clientseg push")?;
        out.push(PushMeasure {
            target: name,
            seconds,
            peak_mib,
        });
    }
    Ok(out)
}

fn run_clientseg(
    opts: &BenchOptions,
    data: &Path,
    n: usize,
    actions: bool,
    round: usize,
) -> Result<(Job, PathBuf), BenchError> {
    let name = match actions {
        true => format!("clients-{n}"),
        false => format!("clients-{n}-no-actions"),
    };
    let name = match round {
        0 => name,
        r => format!("{name}-{}", r + 1),
    };
    let work = opts.out.join("runs").join(name);
    // The previous invocation's folder is moved aside, not deleted: a file system may be
    // slow to create files right after many were deleted (ext4 without a journal skips
    // inodes freed in the last minute; 20,000 files took 3.7 s instead of 0.4 s), and a
    // run does not meet that in use. What was moved aside is deleted after measuring.
    if work.exists() {
        let old = trash(opts);
        std::fs::create_dir_all(&old).map_err(io(&old))?;
        let to = old.join(format!(
            "{}-{}",
            std::process::id(),
            work.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::rename(&work, &to).map_err(io(&work))?;
    }
    // What the previous runs wrote goes to disk before the clock starts, and out of the
    // page cache: each run starts with the memory free that the one before it had, not
    // with a gigabyte less per run before it (with the cache full, the kernel reclaims
    // as the run writes, and 1M-client runs wrote their tables seconds slower).
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    uncache(&opts.out.join("runs"));
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    // The config resolves paths against its own folder: give it absolute ones.
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (data, work) = (abs(data), abs(&work));
    let config = work.join("bench.toml");
    // With the Python side, the run also writes its churn snapshots for scikit-learn.
    let text = format!(
        "seed = {}\n[input]\ndir = {:?}\n[output]\ndir = {:?}\nmodels_dir = {:?}\n[churn]\nexport_snapshots = {}\n[actions]\nenabled = {actions}\n",
        opts.seed,
        data.display().to_string(),
        work.join("runs").display().to_string(),
        work.join("models").display().to_string(),
        opts.python,
    );
    std::fs::write(&config, text).map_err(io(&config))?;
    let mut cmd = Command::new(&opts.exe);
    cmd.args(["run", "--previous", "none", "--quiet", "--config"])
        .arg(&config);
    let (_, seconds, peak) = measured(cmd, "clientseg run")?;
    let manifest_path = std::fs::read_dir(work.join("runs"))
        .map_err(io(&work))?
        .flatten()
        .map(|e| e.path().join("manifest.json"))
        .find(|p| p.is_file())
        .ok_or_else(|| BenchError::Child {
            what: "clientseg run".into(),
            message: "no manifest.json written".into(),
        })?;
    let text = std::fs::read_to_string(&manifest_path).map_err(io(&manifest_path))?;
    let m: Value = serde_json::from_str(&text).map_err(|e| BenchError::Child {
        what: "clientseg run".into(),
        message: format!("{}: {e}", manifest_path.display()),
    })?;
    // clientseg resets the kernel's peak-RSS mark at each stage (to record per-stage
    // peaks), which also resets what wait4 reports: the true peak is the largest stage's.
    let peak = m["timings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["peak_rss_mib"].as_f64())
        .fold(peak, f64::max);
    let stages = manifest_stages(&m);
    let b = &m["analyses"]["behaviour"];
    let run_dir = manifest_path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((
        Job {
            seconds,
            peak_rss_mib: peak,
            stages,
            chosen_k: b["k"].as_u64().unwrap_or(0) as usize,
            inertia_by_k: inertia_by_k(&b["k_scores"]),
            quality: quality_of(&m["analyses"]),
        },
        run_dir,
    ))
}

/// Drops the files under `dir` from the page cache (they stay on disk); best effort.
fn uncache(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => uncache(&path),
            Ok(t) if t.is_file() => {
                if let Ok(f) = std::fs::File::open(&path) {
                    use std::os::fd::AsRawFd;
                    // SAFETY: the descriptor is open for the call; the advice changes no data.
                    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
                }
            }
            _ => {}
        }
    }
}

/// Where old run folders wait until the measuring is over.
fn trash(opts: &BenchOptions) -> PathBuf {
    opts.out.join("runs").join(".old")
}

fn read_manifest(run_dir: &Path) -> Result<Value, BenchError> {
    let path = run_dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| BenchError::Child {
        what: "clientseg run".into(),
        message: format!("{}: {e}", path.display()),
    })
}

/// clientseg's side of the churn comparison, from the run's manifest.
fn churn_compare_ours(run_dir: &Path) -> Result<Vec<ChurnCompare>, BenchError> {
    let m = read_manifest(run_dir)?;
    let seconds = |h: i64| -> f64 {
        m["timings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["stage"].as_str() == Some(&format!("churn validation {h}m")))
            .filter_map(|t| t["seconds"].as_f64())
            .sum()
    };
    Ok(m["analyses"]["churn"]["validation"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["not_validated"].is_null())
        .map(|v| {
            let h = v["months"].as_i64().unwrap_or(0);
            ChurnCompare {
                months: h,
                test_months: v["test_months"].as_array().map_or(0, Vec::len),
                clientseg_logistic_auc: v["logistic"]["roc_auc"].as_f64().unwrap_or(f64::NAN),
                clientseg_boosted_auc: v["boosted"]["roc_auc"].as_f64().unwrap_or(f64::NAN),
                sklearn_logistic_auc: None,
                sklearn_boosted_auc: None,
                clientseg_seconds: seconds(h),
                sklearn_seconds: None,
            }
        })
        .collect())
}

/// Both sides: scikit-learn's LogisticRegression and HistGradientBoostingClassifier on the
/// snapshots the run exported, with the same test months and training-row cap.
fn churn_compare(opts: &BenchOptions, python: &Path, run_dir: &Path) -> Result<Vec<ChurnCompare>, BenchError> {
    let mut ours = churn_compare_ours(run_dir)?;
    if !run_dir.join("churn_snapshots.parquet").is_file() {
        return Ok(ours);
    }
    let mut cmd = Command::new(python);
    cmd.arg(opts.benches_dir.join("churn_sklearn.py"))
        .arg("--run")
        .arg(run_dir);
    let (stdout, _, _) = measured(cmd, "churn_sklearn.py")?;
    let v: Value = serde_json::from_str(stdout.trim()).map_err(|e| BenchError::Child {
        what: "churn_sklearn.py".into(),
        message: format!("unreadable output ({e}): {stdout}"),
    })?;
    let total: f64 = v["timings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["seconds"].as_f64())
        .sum();
    for c in &mut ours {
        if let Some(h) = v["horizons"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h["months"].as_i64() == Some(c.months))
        {
            c.sklearn_logistic_auc = h["logistic_auc"].as_f64();
            c.sklearn_boosted_auc = h["boosted_auc"].as_f64();
            c.sklearn_seconds = Some(total);
        }
    }
    Ok(ours)
}

/// The figures the Python job reports under "quality", read from a run's manifest.
fn quality_of(a: &Value) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut rows = 0.0;
    for v in a["churn"]["validation"].as_array().into_iter().flatten() {
        let chosen = &v[v["chosen"].as_str().unwrap_or("logistic")];
        if let (Some(h), Some(auc)) = (v["months"].as_i64(), chosen["roc_auc"].as_f64()) {
            out.push((format!("churn {h}m ROC-AUC"), auc));
            rows += chosen["clients"].as_f64().unwrap_or(0.0);
        }
    }
    if rows > 0.0 {
        out.push(("churn test rows".into(), rows));
    }
    let mut put = |name: &str, v: &Value| {
        if let Some(x) = v.as_f64() {
            out.push((name.into(), x));
        }
    };
    put("under-priced clients", &a["pricing"]["under_priced"]);
    put("allocation moves", &a["allocation"]["plan"]["moves"]);
    put("allocation unplaced", &a["allocation"]["plan"]["unplaced"]);
    put(
        "allocation peak utilisation",
        &a["allocation"]["peak_utilisation_after"],
    );
    put("actions", &a["actions"]["actions"]);
    out
}

fn inertia_by_k(scores: &Value) -> Vec<(usize, f64)> {
    scores
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["k"].as_u64().unwrap_or(0) as usize,
                s["inertia"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

fn run_python(opts: &BenchOptions, python: &Path, data: &Path, n: usize) -> Result<Job, BenchError> {
    let out = opts.out.join("runs").join(format!("clients-{n}")).join("python");
    let mut cmd = Command::new(python);
    cmd.arg(opts.benches_dir.join("pandas_sklearn.py"))
        .arg("--input")
        .arg(data)
        .arg("--out")
        .arg(&out)
        .args(["--seed", &opts.seed.to_string()]);
    for (flag, group) in [
        ("--value-features", FeatureGroup::Value),
        ("--behaviour-features", FeatureGroup::Behaviour),
    ] {
        cmd.arg(flag).arg(default_clustering_features(group).join(","));
    }
    let (stdout, seconds, peak) = measured(cmd, "pandas_sklearn.py")?;
    let saved = out.join("result.json");
    std::fs::write(&saved, stdout.trim()).map_err(io(&saved))?;
    let v: Value = serde_json::from_str(stdout.trim()).map_err(|e| BenchError::Child {
        what: "pandas_sklearn.py".into(),
        message: format!("unreadable output ({e}): {stdout}"),
    })?;
    let stages = v["timings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["stage"].as_str().unwrap_or("").to_string(),
                t["seconds"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    Ok(Job {
        seconds,
        peak_rss_mib: peak,
        stages,
        chosen_k: v["chosen_k"].as_u64().unwrap_or(0) as usize,
        inertia_by_k: inertia_by_k(&v["k_scores"]),
        quality: v["quality"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect(),
    })
}

/// What the action list adds, pair by pair and on average. The other stages run the same
/// code on the same data with or without the list: what they differ by is the machine's
/// noise, shown apart.
pub fn action_list_lines(size: &SizeResult) -> String {
    let pairs: Vec<(&Job, &Job)> = std::iter::once((&size.clientseg, &size.without_actions))
        .chain(size.again.as_ref().map(|(w, wo)| (w, wo)))
        .collect();
    let mut out = String::new();
    let (mut end_to_end, mut in_own) = (0.0, 0.0);
    for (i, (with, without)) in pairs.iter().enumerate() {
        let outputs = stage_seconds(with, "outputs") - stage_seconds(without, "outputs");
        let own = stage_seconds(with, "actions") + outputs;
        end_to_end += with.seconds - without.seconds;
        in_own += own;
        out.push_str(&format!(
            "{} the action list adds {:+.2}s end to end ({:.2}s with it, {:.2}s without): {:+.2}s in the stages it runs in (actions {:.2}s, outputs {:+.2}s), {:+.2}s in the other stages, which run the same with or without it\n",
            match i {
                0 => "with, then without:",
                _ => "without, then with:",
            },
            with.seconds - without.seconds,
            with.seconds,
            without.seconds,
            own,
            stage_seconds(with, "actions"),
            outputs,
            with.seconds - without.seconds - own,
        ));
    }
    let k = pairs.len() as f64;
    out.push_str(&format!(
        "the action list adds, on average over {} pairs: {:+.2}s end to end, {:+.2}s in the stages it runs in",
        pairs.len(),
        end_to_end / k,
        in_own / k
    ));
    out
}

fn stage_seconds(job: &Job, stage: &str) -> f64 {
    job.stages.iter().filter(|s| s.0 == stage).map(|s| s.1).sum()
}

fn ratio(reference: f64, ours: f64) -> String {
    if ours > 0.0 && reference.is_finite() {
        format!("{:.1}x", reference / ours)
    } else {
        "-".into()
    }
}

pub fn size_table(s: &SizeResult) -> String {
    let mut out = format!(
        "\n{} clients x 24 months ({} billing rows, {} activity rows)\n",
        s.clients, s.billing_rows, s.activity_rows
    );
    out.push_str(&format!(
        "{:<22}{:>12}{:>18}{:>10}\n",
        "stage", "clientseg", "pandas+sklearn", "ratio"
    ));
    let py = s.pandas_sklearn.as_ref();
    for stage in STAGES {
        let ours = stage_seconds(&s.clientseg, stage);
        // Stages the Python job does not have (history, churn) show as "-".
        let theirs = py
            .filter(|p| p.stages.iter().any(|s| s.0 == *stage))
            .map(|p| stage_seconds(p, stage));
        out.push_str(&format!(
            "{:<22}{:>11.2}s{:>17}{:>10}\n",
            stage,
            ours,
            theirs.map(|t| format!("{t:.2}s")).unwrap_or("-".into()),
            theirs.map(|t| ratio(t, ours)).unwrap_or("-".into()),
        ));
    }
    let f = &s.floors;
    let ingest = stage_seconds(&s.clientseg, "ingest");
    out.push_str(&format!(
        "floors: one read of the input files ({:.2} GB, page cache warm) {:.2}s; polars' CSV reader, parse only, {:.2}s\n",
        f.bytes as f64 / 1e9,
        f.read_seconds,
        f.parse_seconds
    ));
    out.push_str(&format!(
        "ingest {:.2}s: {:.1}x the read floor, {:.2}x polars' parse\n",
        ingest,
        ingest / f.read_seconds.max(1e-9),
        ingest / f.parse_seconds.max(1e-9)
    ));
    let wf = &s.write_floor;
    let outputs = stage_seconds(&s.clientseg, "outputs");
    out.push_str(&format!(
        "floor: the run folder's {} files ({:.2} GB, bytes in memory) written as they are {:.2}s, of which the {} in subfolders (pages, charts) {:.2}s alone\n",
        wf.files,
        wf.bytes as f64 / 1e9,
        wf.seconds,
        wf.folder_files,
        wf.folder_seconds
    ));
    out.push_str(&format!(
        "outputs {:.2}s: {:.1}x the write floor\n",
        outputs,
        outputs / wf.seconds.max(1e-9)
    ));
    let kmeans = |j: &Job| stage_seconds(j, "k selection") + stage_seconds(j, "final fits");
    out.push_str(&format!(
        "{:<22}{:>11.2}s{:>17}{:>10}\n",
        "k-means stage",
        kmeans(&s.clientseg),
        py.map(|p| format!("{:.2}s", kmeans(p))).unwrap_or("-".into()),
        py.map(|p| ratio(kmeans(p), kmeans(&s.clientseg))).unwrap_or("-".into()),
    ));
    out.push_str(&format!(
        "{:<22}{:>11.2}s{:>17}{:>10}\n",
        "end to end (wall)",
        s.clientseg.seconds,
        py.map(|p| format!("{:.2}s", p.seconds)).unwrap_or("-".into()),
        py.map(|p| ratio(p.seconds, s.clientseg.seconds)).unwrap_or("-".into()),
    ));
    // The second measurement of each side: clientseg's second run with the action list.
    if let (Some((ours, _)), Some(theirs)) = (&s.again, &s.pandas_sklearn_again) {
        out.push_str(&format!(
            "{:<22}{:>11.2}s{:>16.2}s{:>10}\n",
            "end to end, again",
            ours.seconds,
            theirs.seconds,
            ratio(theirs.seconds, ours.seconds),
        ));
    }
    out.push_str(&format!(
        "{:<22}{:>9.0} MiB{:>13}{:>10}\n",
        "peak memory",
        s.clientseg.peak_rss_mib,
        py.map(|p| format!("{:.0} MiB", p.peak_rss_mib)).unwrap_or("-".into()),
        py.map(|p| ratio(p.peak_rss_mib, s.clientseg.peak_rss_mib))
            .unwrap_or("-".into()),
    ));
    for c in &s.churn {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        out.push_str(&format!(
            "churn {}m, {} test months, ROC-AUC: logistic clientseg {:.4} / scikit-learn {}; boosted clientseg {:.4} / scikit-learn {}; validation {:.2}s{}\n",
            c.months,
            c.test_months,
            c.clientseg_logistic_auc,
            f(c.sklearn_logistic_auc),
            c.clientseg_boosted_auc,
            f(c.sklearn_boosted_auc),
            c.clientseg_seconds,
            c.sklearn_seconds
                .map_or(String::new(), |t| format!(" (scikit-learn fits, all horizons: {t:.2}s)")),
        ));
    }
    if let Some(p) = py {
        // Each analysis's result on both sides: the same job, so speed is not bought with quality.
        for (name, ours) in &s.clientseg.quality {
            let theirs = p.quality.iter().find(|q| &q.0 == name).map(|q| q.1);
            let f = |v: f64| {
                if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.4}")
                }
            };
            out.push_str(&format!(
                "quality, {name}: clientseg {} / pandas+sklearn {}\n",
                f(*ours),
                theirs.map_or("-".into(), f)
            ));
        }
        out.push_str(&format!(
            "behaviour k chosen: clientseg {}, pandas+sklearn {}\ninertia by k (clientseg / scikit-learn):",
            s.clientseg.chosen_k, p.chosen_k
        ));
        let at = |j: &Job, k: usize| j.inertia_by_k.iter().find(|(kk, _)| *kk == k).map(|(_, v)| *v);
        for (k, ours) in &s.clientseg.inertia_by_k {
            if let Some(theirs) = at(p, *k) {
                out.push_str(&format!(" k={k}: {:.8}", ours / theirs));
            }
        }
        out.push('\n');
        let k = s.clientseg.chosen_k;
        if let (Some(ours), Some(theirs)) = (at(&s.clientseg, k), at(p, k)) {
            // Within 1e-9 the two are the same optimum, summed in a different order.
            let verdict = if ours <= theirs * (1.0 + 1e-9) {
                "equal or lower"
            } else {
                "higher"
            };
            out.push_str(&format!(
                "inertia at the chosen k = {k}: clientseg {ours:.4}, scikit-learn {theirs:.4}: clientseg {verdict}\n"
            ));
        }
    }
    out
}

/// Standardised blobs: `k` centres, unit noise, every column z-scored.
pub fn synthetic(n: usize, d: usize, k: usize, seed: u64) -> Array2<f64> {
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    // Overlapping blobs, so that Lloyd takes a realistic number of iterations.
    let centres: Vec<f64> = (0..k * d).map(|_| rng.gen_range(-1.5..1.5)).collect();
    let mut x = Array2::from_shape_fn((n, d), |(i, j)| {
        let noise: f64 = (0..4).map(|_| rng.gen_range(-1.0..1.0)).sum::<f64>() * 1.2;
        centres[(i % k.max(1)) * d + j] + noise
    });
    for mut c in x.columns_mut() {
        let mean = c.mean().unwrap_or(0.0);
        let sd = c.std(0.0).max(1e-12);
        c.mapv_inplace(|v| (v - mean) / sd);
    }
    x
}

/// Writes a C-order float64 matrix as .npy (format 1.0).
pub fn write_npy(path: &Path, x: &Array2<f64>) -> Result<(), std::io::Error> {
    let mut header = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}",
        x.nrows(),
        x.ncols()
    );
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for v in x.iter() {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()
}

/// The time of one parallel read of the whole buffer (best of five).
fn memory_floor(x: &[f64]) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            let s: f64 = x.par_chunks(1 << 16).map(|c| c.iter().sum::<f64>()).sum();
            std::hint::black_box(s);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn kernel_bench(opts: &BenchOptions, python: Option<&Path>) -> Result<KernelResult, BenchError> {
    let (n, d, k) = (opts.kernel_rows, opts.kernel_dims, opts.kernel_k);
    let x = synthetic(n, d, k, opts.seed);
    let rows = Rows::new(x.view());
    let init = kernel::kmeans_plus_plus(
        &rows,
        k,
        kernel::default_trials(k),
        &mut Xoshiro256Plus::seed_from_u64(opts.seed),
    );
    let floor = memory_floor(x.as_slice().unwrap_or(&[]));
    let tol = 1e-4;
    let mut runs = Vec::new();
    let fast = |rule: StopRule, name: &str| {
        // Best of three: the first run also warms the thread pool and the caches.
        let mut best: Option<KernelRun> = None;
        for _ in 0..3 {
            let t = Instant::now();
            let f = kernel::lloyd_many(&rows, vec![init.clone()], rule, 300, tol);
            let s = t.elapsed().as_secs_f64();
            let f = &f[0];
            if best.as_ref().is_none_or(|b| s < b.seconds) {
                best = Some(KernelRun {
                    name: name.into(),
                    iterations: f.n_iter,
                    seconds: s,
                    ms_per_iteration: 1e3 * s / f.n_iter.max(1) as f64,
                    inertia: f.inertia,
                });
            }
        }
        best
    };
    runs.extend(fast(StopRule::Sklearn, "clientseg, scikit-learn's stopping rule"));
    let linfa_rule = fast(StopRule::Linfa, "clientseg, linfa's stopping rule");
    let linfa_iters = linfa_rule.as_ref().map(|r| r.iterations).unwrap_or(1);
    runs.extend(linfa_rule);
    // linfa does not report its iteration count; from the same start with the same rule
    // it takes the same steps as the kernel (checked by the cluster tests).
    let t = Instant::now();
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(opts.seed))
        .n_runs(1)
        .tolerance(tol)
        .max_n_iterations(300)
        .init_method(KMeansInit::Precomputed(init.clone()))
        .fit(&DatasetBase::from(x.view()))
        .map_err(|e| BenchError::Child {
            what: "linfa KMeans".into(),
            message: e.to_string(),
        })?;
    let s = t.elapsed().as_secs_f64();
    runs.push(KernelRun {
        name: "linfa-clustering 0.8 KMeans".into(),
        iterations: linfa_iters,
        seconds: s,
        ms_per_iteration: 1e3 * s / linfa_iters.max(1) as f64,
        inertia: model.inertia() * n as f64,
    });
    if let Some(py) = python {
        let dir = opts.out.join("kernel");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let (xp, ip) = (dir.join("x.npy"), dir.join("init.npy"));
        write_npy(&xp, &x).map_err(io(&xp))?;
        write_npy(&ip, &init).map_err(io(&ip))?;
        let mut cmd = Command::new(py);
        cmd.arg(opts.benches_dir.join("kmeans_ref.py")).arg(&xp).arg(&ip).args([
            "--tol",
            &tol.to_string(),
            "--repeat",
            "3",
        ]);
        let (stdout, _, _) = measured(cmd, "kmeans_ref.py")?;
        let v: Value = serde_json::from_str(stdout.trim()).map_err(|e| BenchError::Child {
            what: "kmeans_ref.py".into(),
            message: format!("unreadable output ({e})"),
        })?;
        let it = v["n_iter"].as_u64().unwrap_or(1) as usize;
        let s = v["seconds"].as_f64().unwrap_or(f64::NAN);
        runs.push(KernelRun {
            name: "scikit-learn KMeans (lloyd)".into(),
            iterations: it,
            seconds: s,
            ms_per_iteration: 1e3 * s / it.max(1) as f64,
            inertia: v["inertia"].as_f64().unwrap_or(f64::NAN),
        });
        let _ = std::fs::remove_file(&xp);
    }
    Ok(KernelResult {
        rows: n,
        dims: d,
        k,
        floor_ms: floor * 1e3,
        runs,
    })
}

pub fn kernel_table(k: &KernelResult) -> String {
    let mut out = format!(
        "\nk-means kernel: {} x {}, k = {}, the same k-means++ starting centres for all\n",
        k.rows, k.dims, k.k
    );
    out.push_str(&format!(
        "memory-bandwidth floor (one parallel read of the matrix): {:.1} ms\n",
        k.floor_ms
    ));
    out.push_str(&format!(
        "{:<42}{:>6}{:>10}{:>10}{:>9}{:>22}\n",
        "", "iters", "seconds", "ms/iter", "x floor", "inertia"
    ));
    for r in &k.runs {
        out.push_str(&format!(
            "{:<42}{:>6}{:>10.3}{:>10.1}{:>9.1}{:>22.6}\n",
            r.name,
            r.iterations,
            r.seconds,
            r.ms_per_iteration,
            r.ms_per_iteration / k.floor_ms,
            r.inertia
        ));
    }
    if let Some(ours) = k.runs.first() {
        for r in k.runs.iter().skip(1) {
            out.push_str(&format!(
                "per iteration, {} / clientseg: {}\n",
                r.name,
                ratio(r.ms_per_iteration, ours.ms_per_iteration)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each churn horizon's validation and the pages are timed inside their stage.
    #[test]
    fn work_timed_inside_a_stage_is_not_counted_again() {
        let m = serde_json::json!({ "timings": [
            { "stage": "churn snapshots", "seconds": 2.0 },
            { "stage": "churn validation", "seconds": 3.0 },
            { "stage": "churn validation 3m", "seconds": 3.0, "within": "churn validation" },
            { "stage": "churn validation 6m", "seconds": 2.5, "within": "churn validation" },
            { "stage": "tables", "seconds": 4.0 },
            { "stage": "pages", "seconds": 3.5, "within": "tables" },
            { "stage": "charts", "seconds": 0.5 },
        ]});
        let stages = manifest_stages(&m);
        let of = |name: &str| stages.iter().find(|s| s.0 == name).map(|s| s.1);
        assert_eq!(of("churn"), Some(5.0));
        assert_eq!(of("outputs"), Some(4.5));
        assert_eq!(stages.len(), STAGES.len());
    }

    /// A small child of a large parent is measured at its own size (the bench's parent
    /// once generated 1M clients in-process, and both children then read 11 GiB).
    #[test]
    fn a_small_child_of_a_large_parent_is_measured_at_its_size() {
        let ballast = vec![1u8; 1 << 30];
        let mut cmd = Command::new("sleep");
        cmd.arg("0.3");
        let (_, _, peak) = measured(cmd, "sleep").unwrap();
        assert!(ballast.iter().step_by(4096).all(|&b| b == 1));
        assert!(peak < 64.0, "sleep measured at {peak:.0} MiB");
    }

    #[test]
    fn the_write_floor_writes_every_file_of_the_run_folder() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs").join("run-1");
        std::fs::create_dir_all(run.join("actions")).unwrap();
        std::fs::write(run.join("labels.csv"), "client_id\nC1\n").unwrap();
        std::fs::write(run.join("actions").join("王芳.html"), "<p>1</p>").unwrap();
        std::fs::write(run.join("actions").join("index.html"), "<ul></ul>").unwrap();
        let scratch = dir.path().join("runs").join(".old");
        let f = write_floor(&run, &scratch).unwrap();
        assert_eq!((f.files, f.folder_files), (3, 2));
        assert_eq!(f.bytes, (13 + 8 + 9) as u64);
        assert!(f.seconds > 0.0 && f.folder_seconds > 0.0, "{f:?}");
        // Four copies, each byte for byte what it copied; the run folder untouched.
        let copies: Vec<_> = std::fs::read_dir(&scratch)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(copies.len(), 4);
        let full: Vec<_> = copies.iter().filter(|c| c.join("labels.csv").is_file()).collect();
        assert_eq!(full.len(), 2);
        for c in &copies {
            assert_eq!(std::fs::read(c.join("actions").join("王芳.html")).unwrap(), b"<p>1</p>");
        }
        assert_eq!(std::fs::read(full[0].join("labels.csv")).unwrap(), b"client_id\nC1\n");
        assert!(run.join("labels.csv").is_file());
    }

    #[test]
    fn the_floors_read_and_parse_the_input_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let clients = "client_id,name\nC1,甲公司\nC2,乙公司\n";
        let billing = "client_id,invoice_date,amount\nC1,2025-01-05,300\nC2,2025-02-05,450.5\n";
        std::fs::write(dir.path().join("clients.csv"), clients).unwrap();
        std::fs::write(dir.path().join("billing.csv"), billing).unwrap();
        std::fs::write(dir.path().join("truth.csv"), "client_id,hazard\nC1,0.1\n").unwrap();
        let f = floors(dir.path()).unwrap();
        assert_eq!(f.bytes, (clients.len() + billing.len()) as u64);
        assert!(f.read_seconds > 0.0 && f.parse_seconds > 0.0, "{f:?}");
        // A file polars cannot parse names itself.
        std::fs::write(dir.path().join("activity.csv"), "a,b\n\"unclosed,1\n").unwrap();
        match floors(dir.path()) {
            Err(e) => assert!(e.to_string().contains("activity.csv"), "{e}"),
            Ok(f) => assert!(f.bytes > (clients.len() + billing.len()) as u64),
        }
    }
}
