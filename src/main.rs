//! The `clientseg` command line: parses arguments, builds checked settings once, and
//! hands over to the pipeline.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use clientseg::config::{RawConfig, Settings};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clientseg::generate::{self, GenerateParams};
use clientseg::pipeline::{self, RunOptions};

#[derive(Parser)]
#[command(
    name = "clientseg",
    version,
    about = "Segments a bookkeeping agency's clients into value tiers and behaviour segments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline on the bundled sample data (data/sample) and print where the results are.
    Demo(Common),
    /// Run the pipeline on your data, as described by a config file.
    Run(RunArgs),
    /// Write a commented clientseg.toml for a folder of exports, with the headers it found
    /// mapped to clientseg's columns where it can tell.
    Init(InitArgs),
    /// Show what a run would read from a folder of exports, without running: per table
    /// the file and sheet, the header row, each column's mapping with sample values and
    /// the share of cells that parse, and what the input cannot support.
    Check(CheckArgs),
    /// Who moved between two runs: migration.csv, transitions.csv and charts.
    Diff(DiffArgs),
    /// Label clients with a saved model, without refitting.
    Score(ScoreArgs),
    /// Write a run's labels to the CRM's database (SQLite or PostgreSQL), all rows or none.
    Push(PushArgs),
    /// Re-plan a finished run's allocation when accountants leave or join, moving as few
    /// clients as possible; writes a what-if folder inside the run folder.
    Allocate(AllocateArgs),
    /// Write a realistic generated client history (with planted segments) for trials and tests.
    Generate(GenerateArgs),
    /// Measure speed and peak memory on generated firms, against the same job in pandas +
    /// scikit-learn and against linfa's KMeans (see benches/README.md).
    Bench(BenchArgs),
}

#[derive(Args)]
struct RunArgs {
    /// A folder of exports (clients, billing and optional activity / staff tables), run
    /// with the defaults when there is no config file.
    data_dir: Option<PathBuf>,
    /// The config file (TOML); see clientseg.toml and examples/ (`clientseg init` writes one).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The folder of exports (as DATA_DIR).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run folder or model file to keep segment ids from and compare clients with;
    /// "none" for a fresh start (default: models/latest.json when there is one).
    #[arg(long)]
    previous: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct InitArgs {
    /// The folder of exports.
    dir: PathBuf,
    /// Where to write the config (default: clientseg.toml in the current folder).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
    /// Also print what `clientseg check` prints.
    #[arg(long)]
    check: bool,
}

#[derive(Args)]
struct CheckArgs {
    /// The folder of exports.
    dir: PathBuf,
    /// A config file whose [input] and [columns.*] apply (the defaults otherwise).
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct DiffArgs {
    /// The earlier run folder.
    a: PathBuf,
    /// The later run folder.
    b: PathBuf,
    /// Folder that receives the comparison folder (default: runs/).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct ScoreArgs {
    /// A model file written by a run (model.json, or models/latest.json).
    #[arg(long)]
    model: PathBuf,
    /// Folder holding clients, billing and (optionally) activity tables.
    #[arg(long)]
    data: PathBuf,
    /// Config file for column names and input options (the defaults otherwise).
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct PushArgs {
    /// The run folder to push (default: the newest run under runs/).
    #[arg(long)]
    run: Option<PathBuf>,
    /// sqlite:///path/file.db or postgres://user@host:port/db (default: $CLIENTSEG_DB_URL;
    /// the password may come from $PGPASSWORD).
    #[arg(long)]
    to: Option<String>,
    /// Push even if a newer run is already in the database.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct AllocateArgs {
    /// The run folder (default: the newest run under runs/).
    #[arg(long)]
    run: Option<PathBuf>,
    /// An accountant who leaves (repeat for several).
    #[arg(long)]
    without: Vec<String>,
    /// A new accountant: "name,grade,hours" or "name,grade,hours,skill;skill,team"
    /// (repeat for several).
    #[arg(long)]
    add: Vec<String>,
    /// Start from the clients' current accountants instead of the run's proposal.
    #[arg(long)]
    from_current: bool,
    /// Config file for [allocation] (the defaults otherwise).
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct GenerateArgs {
    #[arg(long, default_value_t = 500)]
    clients: usize,
    #[arg(long, default_value_t = 24)]
    months: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Last day of the history.
    #[arg(long, default_value = "2025-12-31")]
    end: String,
    /// Share of billing and activity rows to make faulty (bad dates, unknown clients, ...).
    #[arg(long, default_value_t = 0.0)]
    dirty: f64,
    /// Chinese headers and dates, as a Chinese firm's Excel export looks.
    #[arg(long)]
    zh: bool,
    /// Share of clients whose behaviour changes to another planted segment (for
    /// trying migration: compare with the same seed without it).
    #[arg(long, default_value_t = 0.0)]
    changed: f64,
    /// Leave contract_end out of the archive, as many firms keep no contract dates
    /// (churn is then recognised by a lapse of invoices and work).
    #[arg(long)]
    no_contract_dates: bool,
    /// Accountants on the generated staff list (default: one per 80 clients).
    #[arg(long)]
    staff: Option<usize>,
    /// How fees relate to the work: "planted" (a fee by tier with 8% of clients planted
    /// below cost) or "negotiated" (a continuous spread of margins; under-priced means
    /// a margin below 30%).
    #[arg(long, default_value = "planted", value_parser = ["planted", "negotiated"])]
    fees: String,
    /// The firm's cost of an hour, which its fees are set against (CNY).
    #[arg(long, default_value_t = clientseg::generate::DEFAULT_HOURLY_COST)]
    hourly_cost: f64,
    /// Teams of ten accountants (from the first) that keep no time sheets; they serve
    /// more general taxpayers than the others.
    #[arg(long, default_value_t = 0)]
    untimed_teams: usize,
    /// A world that changes over the history, comma-separated: "rise" or "fall" (the
    /// leaving rate by the last month, 0.8 on the log-odds by default), "fee-wave" (35% of
    /// clients get a fee rise 8 months before the end), "cohort" (clients who joined in
    /// the last 18 months leave more); each may carry its size, e.g. rise=1.2.
    #[arg(long, default_value = "none")]
    drift: String,
    #[arg(long, short)]
    out: PathBuf,
}

#[derive(Args)]
struct BenchArgs {
    /// Firm sizes (clients), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![10_000, 100_000, 1_000_000])]
    sizes: Vec<usize>,
    #[arg(long, default_value_t = 24)]
    months: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Folder for generated data, runs, the Python environment and bench.json.
    #[arg(long, short, default_value = "target/bench")]
    out: PathBuf,
    /// Skip the pandas + scikit-learn side (no Python needed).
    #[arg(long)]
    no_python: bool,
    /// Rows of the k-means kernel comparison (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    kernel_rows: usize,
    #[arg(long, default_value_t = 16)]
    kernel_dims: usize,
    #[arg(long, default_value_t = 8)]
    kernel_k: usize,
}

#[derive(Args, Default)]
struct Common {
    /// Folder that receives the run folder (default: output.dir of the config, or runs/).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Seed for every random choice (overrides the config).
    #[arg(long)]
    seed: Option<u64>,
    /// Language of chart texts: en or zh (overrides the config).
    #[arg(long)]
    lang: Option<String>,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Bench(_)) {
        no_huge_pages();
    }
    // Ctrl-C (or SIGTERM): remove what this run has not finished, and stop. Nothing
    // half-written is left behind, and a finished run folder is never touched.
    let handler = ctrlc::set_handler(|| {
        let _held = clientseg::persist::abandon_unfinished();
        eprintln!("interrupted: nothing of this run was kept");
        std::process::exit(130);
    });
    if let Err(e) = handler {
        eprintln!(
            "warning: Ctrl-C and SIGTERM cannot be caught here ({e}); a run stopped that way leaves its unfinished hidden folder (.run-....partial-PID), which the next run in the same folder removes"
        );
    }
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process. The allocator hands freed memory
/// back to the kernel and takes it again moments later; with huge pages every such fault
/// zeroes 2 MiB, however little of it is used. At 1M clients that zeroing was a fifth of
/// the run's CPU samples. The bench leaves it to the runs it starts, so that the other
/// side's processes keep the machine's setting.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integer arguments only and changes
    // nothing but this process's flag; a kernel without it returns an error, ignored.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Settings from the config file (or the defaults) with the command line's overrides,
/// checked once: nothing patches them afterwards.
fn settings(
    config: Option<&Path>,
    common: &Common,
    input_dir: Option<&Path>,
    previous: Option<&str>,
) -> Result<Settings> {
    let (mut raw, base) = match config {
        Some(path) => {
            let raw = RawConfig::from_file(path)?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (raw, base)
        }
        None => (RawConfig::default(), PathBuf::from(".")),
    };
    if let Some(seed) = common.seed {
        raw.seed = Some(seed);
    }
    if let Some(lang) = &common.lang {
        raw.lang = Some(lang.clone());
    }
    if let Some(dir) = input_dir {
        raw.input.dir = Some(std::path::absolute(dir)?);
        raw.input.clients = None;
        raw.input.billing = None;
        raw.input.activity = None;
        raw.input.staff = None;
        raw.input.contacts = None;
    }
    if let Some(p) = previous {
        raw.stability.previous = Some(match p {
            "none" | "auto" => p.to_string(),
            path => std::path::absolute(path)?.display().to_string(),
        });
    }
    Ok(Settings::from_raw(&raw, &base)?)
}

fn options(s: &Settings, common: &Common) -> RunOptions {
    RunOptions {
        out_dir: common.out.clone().unwrap_or_else(|| s.output.dir.clone()),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        progress: !common.quiet && std::io::stderr().is_terminal(),
    }
}

/// The bundled sample: ./data/sample, else the one beside the crate's sources.
fn sample_dir() -> Result<PathBuf> {
    let local = PathBuf::from("data/sample");
    if local.join("clients.csv").is_file() {
        return Ok(local);
    }
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    if bundled.join("clients.csv").is_file() {
        return Ok(bundled);
    }
    bail!("the sample data (data/sample/clients.csv) was not found; run the demo from the clientseg folder")
}

/// The most recently finished run folder (one with a manifest) under `dir`.
fn newest_run(dir: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "no --run given and no {} folder to take the newest run from",
            dir.display()
        )
    })?;
    let newest = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.json").is_file())
        .filter_map(|p| {
            std::fs::metadata(p.join("manifest.json"))
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, p))
        })
        .max();
    match newest {
        Some((_, p)) => Ok(p),
        None => bail!("no --run given and no finished run in {}", dir.display()),
    }
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(common) => cmd_demo(common),
        Command::Run(args) => cmd_run(args),
        Command::Check(args) => cmd_check(args),
        Command::Init(args) => cmd_init(args),
        Command::Score(args) => cmd_score(args),
        Command::Allocate(args) => cmd_allocate(args),
        Command::Diff(args) => cmd_diff(args),
        Command::Push(args) => cmd_push(args),
        Command::Bench(args) => cmd_bench(args),
        Command::Generate(args) => cmd_generate(args),
    }
}

/// `clientseg demo`.
fn cmd_demo(common: Common) -> Result<()> {
    let dir = sample_dir()?;
    let s = settings(None, &common, Some(&dir), None)?;
    let report = pipeline::run(&s, &options(&s, &common))?;
    print!("{}", report.summary);
    let charts = report.run_dir.join("charts");
    if s.lang == clientseg::format::Lang::Zh {
        println!(
            "图表在 {}；report.html 是报告，labels.csv 可用 Excel 打开。",
            charts.display()
        );
    } else {
        println!("Open {} for the charts; labels.csv opens in Excel.", charts.display());
    }
    Ok(())
}

/// `clientseg run`.
fn cmd_run(args: RunArgs) -> Result<()> {
    let RunArgs {
        data_dir,
        config,
        data,
        previous,
        common,
    } = args;
    let data = data.or(data_dir);
    if let Some(d) = data.as_ref().filter(|d| !d.is_dir()) {
        bail!(
            "{} is not a folder; give the folder that holds clients.csv and billing.csv",
            d.display()
        );
    }
    let s = match (&config, &data) {
        (None, None) => bail!(
            "give a folder of exports (clientseg run ./exports) or a config file (--config clientseg.toml; clientseg init ./exports writes one)"
        ),
        (Some(c), _) => settings(Some(c), &common, data.as_deref(), previous.as_deref())
            .with_context(|| format!("in config {}", c.display()))?,
        (None, Some(_)) => settings(None, &common, data.as_deref(), previous.as_deref())?,
    };
    let report = pipeline::run(&s, &options(&s, &common))?;
    let zh = s.lang == clientseg::format::Lang::Zh;
    let folder = data.as_deref().map(|d| d.display().to_string()).unwrap_or_default();
    match (&config, zh) {
        (Some(c), false) => println!("config: {}", c.display()),
        (Some(c), true) => println!("配置文件：{}", c.display()),
        (None, false) => println!(
            "config: none, the defaults apply (clientseg init {folder} writes a clientseg.toml to adjust them)"
        ),
        (None, true) => {
            println!("配置文件：无，使用默认设置（运行 clientseg init {folder} 可生成 clientseg.toml 以便调整）")
        }
    }
    print!("{}", report.summary);
    Ok(())
}

/// `clientseg check`.
fn cmd_check(args: CheckArgs) -> Result<()> {
    let CheckArgs { dir, config, common } = args;
    if !dir.is_dir() {
        bail!("{} is not a folder of exports", dir.display());
    }
    let s = settings(config.as_deref(), &common, Some(&dir), None)?;
    let zh = common.lang.as_deref().map(|l| l.starts_with("zh"));
    print!("{}", clientseg::check::check(&s, zh)?);
    Ok(())
}

/// `clientseg init`.
fn cmd_init(args: InitArgs) -> Result<()> {
    let InitArgs { dir, out, force, check } = args;
    if !dir.is_dir() {
        bail!("{} is not a folder of exports", dir.display());
    }
    let out = out.unwrap_or_else(|| PathBuf::from("clientseg.toml"));
    if out.exists() && !force {
        bail!(
            "{} already exists; use --force to replace it, or --out another.toml",
            out.display()
        );
    }
    let text = clientseg::init::config_text(&std::path::absolute(&dir)?)?;
    clientseg::persist::write_atomic(&out, text.as_bytes())?;
    println!(
        "wrote {}; check its [columns.*] sections, then: clientseg run --config {}",
        out.display(),
        out.display()
    );
    if check {
        let s = settings(Some(&out), &Common::default(), Some(&dir), None)?;
        print!("{}", clientseg::check::check(&s, None)?);
    }
    Ok(())
}

/// `clientseg score`.
fn cmd_score(args: ScoreArgs) -> Result<()> {
    let ScoreArgs {
        model,
        data,
        config,
        common,
    } = args;
    if !data.is_dir() {
        bail!(
            "--data {} is not a folder; give the folder that holds clients.csv and billing.csv",
            data.display()
        );
    }
    let s = settings(config.as_deref(), &common, Some(&data), None)?;
    let report = pipeline::score(&model, &s, &options(&s, &common))?;
    print!("{}", report.summary);
    Ok(())
}

/// `clientseg allocate`.
fn cmd_allocate(args: AllocateArgs) -> Result<()> {
    let AllocateArgs {
        run,
        without,
        add,
        from_current,
        config,
        common,
    } = args;
    let run = match run {
        Some(r) => r,
        None => newest_run(Path::new("runs"))?,
    };
    let s = settings(config.as_deref(), &common, None, None)?;
    let w = clientseg::whatif::WhatIf {
        without,
        add,
        from_current,
    };
    let r = clientseg::whatif::replan(&run, &w, &s.analyses.allocation, s.lang, s.output.xlsx_max_rows)?;
    println!(
        "{} clients change accountant (at least {:.0} must) over {} month(s), {} this month; busiest accountant {:.0}% -> {:.0}% of capacity{}",
        r.moves,
        r.moves_lower_bound.ceil(),
        r.months,
        r.this_month,
        r.peak_before * 100.0,
        r.peak_after * 100.0,
        if r.unplaced > 0 {
            format!(
                "; {} clients could not be placed (see whatif.json for the requirement that is short)",
                r.unplaced
            )
        } else {
            String::new()
        }
    );
    println!("results: {}", r.dir.display());
    Ok(())
}

/// `clientseg diff`.
fn cmd_diff(args: DiffArgs) -> Result<()> {
    let DiffArgs { a, b, out } = args;
    let out = out.unwrap_or_else(|| PathBuf::from("runs"));
    let (moved, done) = pipeline::diff(&a, &b, &out)?;
    println!(
        "{moved} clients moved, arrived or left between {} and {}",
        a.display(),
        b.display()
    );
    println!("results: {}", done.display());
    Ok(())
}

/// `clientseg push`.
fn cmd_push(args: PushArgs) -> Result<()> {
    let PushArgs { run, to, force } = args;
    let run = match run {
        Some(r) => r,
        None => newest_run(Path::new("runs"))?,
    };
    let url = match to.or_else(|| std::env::var("CLIENTSEG_DB_URL").ok()) {
        Some(u) => u,
        None => return Err(clientseg::push::PushError::NoTarget.into()),
    };
    let (outcome, shown) = clientseg::push::push(&run, &url, force)?;
    match outcome {
        clientseg::push::Outcome::Pushed { rows } => {
            println!("pushed {rows} clients from {} to {shown}", run.display());
            println!("client_segment now holds this run's labels; client_segment_history has one more run");
        }
        clientseg::push::Outcome::AlreadyPushed { pushed_at } => {
            println!(
                "{} was already pushed to {shown} at {pushed_at}; nothing changed",
                run.display()
            );
        }
    }
    Ok(())
}

/// `clientseg bench`.
fn cmd_bench(args: BenchArgs) -> Result<()> {
    let BenchArgs {
        sizes,
        months,
        seed,
        out,
        no_python,
        kernel_rows,
        kernel_dims,
        kernel_k,
    } = args;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches");
    let benches_dir = if source.is_dir() {
        source
    } else {
        PathBuf::from("benches")
    };
    let opts = clientseg::bench::BenchOptions {
        sizes,
        months,
        seed,
        out,
        python: !no_python,
        kernel_rows,
        kernel_dims,
        kernel_k,
        exe: std::env::current_exe().context("cannot find the clientseg executable")?,
        benches_dir,
    };
    clientseg::bench::run(&opts)?;
    Ok(())
}

/// `clientseg generate`.
fn cmd_generate(args: GenerateArgs) -> Result<()> {
    let GenerateArgs {
        clients,
        months,
        seed,
        end,
        dirty,
        zh,
        changed,
        no_contract_dates,
        staff,
        fees,
        hourly_cost,
        untimed_teams,
        drift,
        out,
    } = args;
    let drift = generate::Drift::parse(&drift).map_err(anyhow::Error::msg)?;
    let end = chrono::NaiveDate::parse_from_str(&end, "%Y-%m-%d")
        .with_context(|| format!("--end {end} is not a date; write it as YYYY-MM-DD"))?;
    let p = GenerateParams {
        staff,
        clients,
        months,
        seed,
        end,
        dirty,
        chinese: zh,
        changed,
        contract_dates: !no_contract_dates,
        fees: if fees == "negotiated" {
            generate::Fees::Negotiated
        } else {
            generate::Fees::Planted
        },
        hourly_cost,
        untimed_teams,
        drift,
    };
    let g = generate::generate(&p, &out)?;
    println!(
        "wrote {} clients, {} billing rows, {} activity rows ({} made faulty) to {}",
        g.clients,
        g.billing_rows,
        g.activity_rows,
        g.dirty_rows,
        out.display()
    );
    println!("truth.csv holds the planted segments; the pipeline never reads it");
    Ok(())
}
