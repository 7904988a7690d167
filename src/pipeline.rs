//! The batch run, as a list of stages: ingest -> validate -> features -> history -> analyses ->
//! stability -> outputs (tables, spreadsheets, migration, charts, report, model,
//! manifest). Each stage's time and peak memory go into the manifest.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::*;
use thiserror::Error;

use crate::analysis::{self, Analysis, AnalysisError, Context, Outcome, Warning};
use crate::config::Settings;
use crate::export::ExportError;
use crate::features::{self, FeatureError, FeatureParams, FeatureTable};
use crate::format::Lang;
use crate::history::{self, History, HistoryError};
use crate::ingest::{self, IngestError, InputFile};
use crate::model::{FeatureDoc, FeatureSettings, Model, ModelError, SCHEMA_VERSION};
use crate::output::{self, OutputError, Written};
use crate::persist::{self, Manifest, PersistError, RunDir, ScoredWith};
use crate::progress::Stages;
use crate::report::{self, ReportError};
use crate::schema::InputTable;
use crate::stability::migration::{self, ClientStatus, MigrationError};
use crate::stability::{self, Stability, StabilityError};
use crate::validate::{self, ValidateError, ValidateParams, Validated};

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("{source}\nEvery rejected row is listed in {rejects}")]
    Validate { source: ValidateError, rejects: PathBuf },
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    #[error(transparent)]
    Stability(#[from] StabilityError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("no segmentation: none of the analyses run segments clients, so there is no model to write")]
    NoSegmentation,
}

/// Options of one run that are not part of the configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Folder that receives the run folder.
    pub out_dir: PathBuf,
    /// The command line, for the manifest.
    pub command: String,
    /// Show progress bars (when stderr is a terminal).
    pub progress: bool,
}

/// What a finished run reports back.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub run_dir: PathBuf,
    pub manifest: Manifest,
    pub summary: String,
}

/// A run's id: when it started, its seed, and four hex digits from the process and the
/// instant, so that runs started in the same second (by two people, into two output
/// folders) never share an id; the CRM push knows runs by it.
fn run_id(kind: &str, seed: u64) -> String {
    let now = chrono::Local::now();
    let mix = (u64::from(now.timestamp_subsec_nanos()) ^ (u64::from(std::process::id()) << 32))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{kind}-{}-s{seed}-{:04x}", now.format("%Y%m%d-%H%M%S"), mix >> 48)
}

/// Runs the configured analyses and writes one run folder.
pub fn run(s: &Settings, opts: &RunOptions) -> Result<RunReport, PipelineError> {
    run_with(s, opts, &analysis::configured(&s.analyses))
}

/// Runs the given analyses and writes one run folder.
pub fn run_with(s: &Settings, opts: &RunOptions, analyses: &[Box<dyn Analysis>]) -> Result<RunReport, PipelineError> {
    analysis::check_registry(analyses, &s.section_ids())?;
    let started = chrono::Local::now();
    let mut st = Stages::new(opts.progress);
    let id = run_id("run", s.seed);
    persist::check_writable(&opts.out_dir, "output folder")?;
    persist::check_writable(&s.output.models_dir, "models folder")?;
    // A damaged previous model is named before any work is done.
    let previous = stability::load_previous(&s.stability, &s.output.models_dir)?;
    let features = FeatureParams {
        snapshot: snapshot_of(s),
        hourly_cost: s.features.hourly_cost,
        long_term_months: s.features.long_term_months,
    };
    let input = prepare(s, &s.validation, &features, opts, &id, &mut st, analyses)?;
    let table = &input.table;

    // Segments keep the ids and names they had in the previous run, carried over as each
    // segmentation is fitted, so that the analyses after it read the run's own ids.
    let ids = client_ids(table);
    let mut carry = match &previous {
        Some(prev) => Some(stability::CarryOver::new(prev, &ids, &s.stability)?),
        None => None,
    };
    let earlier_runs = persist::run_folders(&opts.out_dir);
    let mut outcomes: Vec<Outcome> = Vec::new();
    for a in analyses {
        let ctx = context(s, &input, a.as_ref(), &outcomes, &earlier_runs);
        let mut o = a.fit(&ctx, &mut st)?;
        if let Some(c) = carry.as_mut() {
            c.apply(&mut o)?;
        }
        outcomes.push(o);
    }
    let mut stability = carry.map(stability::CarryOver::finish);
    let names: Vec<(&str, &str)> = analyses.iter().map(|a| a.name()).collect();
    let mut warnings = analysis::warnings(&outcomes, &s.analyses);
    warnings.extend(snapshot_warning(table.snapshot, input.last_invoice));

    let run = RunDir::create(&opts.out_dir, &id)?;
    let model = model_of(s, &run, table, &outcomes)?;
    let mut w = Written::new(run.path());
    let (segments_df, labels_df, pages) =
        st.run("tables", |_| tables(&mut w, s, &run.run_id(), &input, &mut outcomes))?;
    if let Some(seconds) = pages {
        // Written beside the tables, so not a stage of their own: their time for the
        // manifest only.
        st.within("pages", seconds, "tables");
    }
    st.run("spreadsheets", |_| {
        let words = analysis::catalogue(&outcomes);
        output::spreadsheets(&mut w, &labels_df, &segments_df, &words, s.lang, s.output.xlsx_max_rows)
    })?;
    // Who moved since the previous run, when its tables are still there.
    let prev_dir = previous
        .as_ref()
        .and_then(|p| p.run_dir.clone())
        .filter(|d| d.join("labels.parquet").is_file());
    if let (Some(prev_dir), Some(report)) = (prev_dir, stability.as_mut()) {
        st.run("migration", |_| {
            migrate(&mut w, s.lang, &prev_dir, &labels_df, table, &outcomes, report)
        })?;
    }
    st.run("charts", |_| {
        charts_and_report(
            &mut w,
            s,
            &run.run_id(),
            started,
            &input,
            &outcomes,
            &segments_df,
            stability.as_ref(),
            &warnings,
        )
    })?;
    w.bytes("model.json", model.to_json().as_bytes())?;

    let manifest = manifest(
        s,
        opts,
        &run.run_id(),
        started,
        &input,
        &outcomes,
        &st,
        stability,
        &warnings,
        &w,
        None,
    )?;
    write_manifest(&run, &manifest)?;
    let run_dir = run.commit()?;
    persist::write_atomic(
        &s.output.models_dir.join(format!("{}.json", manifest.run_id)),
        model.to_json().as_bytes(),
    )?;
    persist::write_atomic(&s.output.models_dir.join("latest.json"), model.to_json().as_bytes())?;
    drop(st);
    let zh = (s.lang == Lang::Zh).then(|| zh_words(&outcomes, &names, &input, &warnings));
    let summary = report::text::summary_text(&manifest, &run_dir, zh.as_ref());
    Ok(RunReport {
        run_dir,
        manifest,
        summary,
    })
}

/// The run summary's words in Chinese: each analysis's headline (or why it was skipped,
/// under its Chinese name), the top reject reasons, the warnings.
fn zh_words(
    outcomes: &[Outcome],
    names: &[(&str, &str)],
    input: &Prepared,
    warnings: &[Warning],
) -> report::text::ZhWords {
    report::text::ZhWords {
        headlines: outcomes
            .iter()
            .zip(names)
            .filter_map(|(o, (_, name))| match (&o.headline, &o.skipped) {
                (Some((_, zh)), _) => Some(zh.clone()),
                (None, Some(why)) => Some(format!("{name}：已跳过，{why}")),
                (None, None) => None,
            })
            .collect(),
        reasons: validate::top_reasons_in(&input.validated.rejects, 5, Lang::Zh),
        warnings: warnings.iter().map(|w| w.zh.clone()).collect(),
    }
}

/// Labels clients with a saved model, without refitting.
pub fn score(model_path: &Path, s: &Settings, opts: &RunOptions) -> Result<ScoreReport, PipelineError> {
    let model = Model::load(model_path)?;
    persist::check_writable(&opts.out_dir, "output folder")?;
    let mut st = Stages::new(opts.progress);
    let id = run_id("score", s.seed);
    // Features are computed the way the model's run computed them.
    let fs = &model.feature_settings;
    let validation = ValidateParams {
        payment_terms_days: fs.payment_terms_days,
        ..s.validation.clone()
    };
    let features = FeatureParams {
        snapshot: snapshot_of(s),
        hourly_cost: fs.hourly_cost,
        long_term_months: fs.long_term_months,
    };
    let analyses = analysis::configured(&s.analyses);
    analysis::check_registry(&analyses, &s.section_ids())?;
    let input = prepare(s, &validation, &features, opts, &id, &mut st, &analyses)?;
    let table = &input.table;
    let earlier_runs = persist::run_folders(&opts.out_dir);
    let mut outcomes: Vec<Outcome> = Vec::new();
    for a in &analyses {
        let ctx = context(s, &input, a.as_ref(), &outcomes, &earlier_runs);
        let o = a.apply(&ctx, &mut st, &model, model_path)?;
        outcomes.push(o);
    }

    let run = RunDir::create(&opts.out_dir, &id)?;
    let started = chrono::Local::now();
    let mut w = Written::new(run.path());
    st.run("tables", |_| -> Result<(), PipelineError> {
        let words = analysis::catalogue(&outcomes);
        output::labels(w.dir(), table, &outcomes, &s.crm, &words, s.lang, &run.run_id())?;
        output::LABEL_FILES.iter().for_each(|f| w.add(*f));
        output::rejects(w.dir(), &input.validated.rejects)?;
        w.add("rejects.csv");
        Ok(())
    })?;
    let scored = ScoredWith {
        model: model_path.display().to_string(),
        model_run_id: model.run_id.clone(),
        tree_agreement: outcomes
            .iter()
            .filter_map(|o| {
                let a = o.segmentation.as_ref()?.tree_agreement?;
                Some((o.id.to_string(), a))
            })
            .collect(),
    };
    let scored_with_agreement = scored.tree_agreement.clone();
    let manifest = manifest(
        s,
        opts,
        &run.run_id(),
        started,
        &input,
        &outcomes,
        &st,
        None,
        &[],
        &w,
        Some(scored),
    )?;
    write_manifest(&run, &manifest)?;
    let run_dir = run.commit()?;
    drop(st);
    let mut summary = format!(
        "scored {} clients with model {} (snapshot {})\n",
        table.df.height(),
        model.run_id,
        table.snapshot
    );
    summary.push_str(&report::text::rows_text(&input.validated.counts));
    for (id, a) in &scored_with_agreement {
        summary.push_str(&format!(
            "decision tree agrees with the centroid labels for {:.1}% of clients ({id})\n",
            a * 100.0
        ));
    }
    summary.push_str(&format!("results: {}\n", run_dir.display()));
    Ok(ScoreReport { run_dir, summary })
}

/// What `score` reports back.
#[derive(Debug, Clone)]
pub struct ScoreReport {
    pub run_dir: PathBuf,
    pub summary: String,
}

/// What an analysis is given, after the analyses before it.
fn context<'a>(
    s: &Settings,
    input: &'a Prepared,
    a: &dyn Analysis,
    earlier: &'a [Outcome],
    earlier_runs: &'a [std::path::PathBuf],
) -> Context<'a> {
    Context {
        earlier_runs,
        id: a.id(),
        needs: a.needs(),
        table: &input.table,
        seed: s.seed,
        lang: s.lang,
        history: input.history.as_ref(),
        served: Some(&input.served),
        earlier,
        inputs: [crate::schema::Table::Staff, crate::schema::Table::Contacts]
            .into_iter()
            .filter_map(|t| input.validated.tables.get(t).map(|df| (t.name(), df)))
            .chain(input.declared.iter().map(|(n, df)| (n.as_str(), df)))
            .collect(),
    }
}

/// The input as the analyses see it.
struct Prepared {
    files: Vec<InputFile>,
    validated: Validated,
    /// The analyses' own tables, validated, by declared name.
    declared: Vec<(String, DataFrame)>,
    /// Where they were read from, for the manifest.
    declared_files: Vec<persist::DeclaredInput>,
    table: FeatureTable,
    last_invoice: Option<NaiveDate>,
    history: Option<History>,
    served: Vec<bool>,
}

/// Ingest, validate and features.
#[allow(clippy::too_many_arguments)]
fn prepare(
    s: &Settings,
    validation: &ValidateParams,
    features: &FeatureParams,
    opts: &RunOptions,
    id: &str,
    st: &mut Stages,
    analyses: &[Box<dyn Analysis>],
) -> Result<Prepared, PipelineError> {
    let release = crate::progress::PromptRelease::start();
    let inputs = st.run("ingest", |_| ingest::read_inputs(&s.input))?;
    let files = inputs.files.clone();
    let mut validated = st.run("validate", |_| {
        validate_keeping_rejects(inputs, validation, snapshot_of(s), opts, id)
    })?;
    let tables: Vec<InputTable> = analyses.iter().flat_map(|a| a.inputs()).collect();
    let (declared, declared_files) = st.run("declared inputs", |_| {
        declared_inputs(s, &tables, &mut validated, validation, opts, id)
    })?;
    let table = st.run("features", |_| features::compute(&validated.tables, features))?;
    let last_invoice = features::last_invoice(&validated.tables);
    let history = st.run("history", |_| {
        history::build(&validated.tables, &table, &s.history, features, s.seed)
    })?;
    let served = history.served(&table);
    let history = Some(history);
    // Only the per-client table is needed from here on; free the invoices and work log.
    let mut validated = validated;
    validated.tables.billing = DataFrame::empty();
    validated.tables.drop_table(crate::schema::Table::Activity);
    drop(release);
    Ok(Prepared {
        files,
        validated,
        declared,
        declared_files,
        table,
        last_invoice,
        history,
        served,
    })
}

/// The tables the analyses declared: read from the input folder, validated against the
/// accepted clients; their reject lines join the run's. When one stops the run, every
/// reject line so far is written beside the run folders, as for the built-in tables.
#[allow(clippy::type_complexity)]
fn declared_inputs(
    s: &Settings,
    tables: &[InputTable],
    validated: &mut Validated,
    params: &ValidateParams,
    opts: &RunOptions,
    id: &str,
) -> Result<(Vec<(String, DataFrame)>, Vec<persist::DeclaredInput>), PipelineError> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    for t in tables {
        let Some(raw) = ingest::declared::read_declared(&s.input.dir, t, s.input.encoding)? else {
            continue;
        };
        let (path, rows, totals_skipped) = (raw.path.clone(), raw.df.height(), raw.totals_skipped);
        let sha256 = ingest::sha256_file(&path)?;
        match validate::validate_declared(t, raw, &validated.tables.clients, params) {
            Ok((accepted, rejects)) => {
                validated
                    .rejects
                    .vstack_mut(&rejects)
                    .map_err(|source| ExportError::Polars {
                        table: "rejects",
                        source,
                    })?;
                files.push(persist::DeclaredInput {
                    table: t.name.clone(),
                    path: path.display().to_string(),
                    sha256,
                    rows,
                    accepted: accepted.height(),
                    totals_skipped,
                });
                out.push((t.name.clone(), accepted));
            }
            Err((source, rejects)) => {
                let mut all = validated.rejects.clone();
                all.vstack_mut(&rejects).map_err(|source| ExportError::Polars {
                    table: "rejects",
                    source,
                })?;
                std::fs::create_dir_all(&opts.out_dir).map_err(|e| PersistError::Create {
                    path: opts.out_dir.clone(),
                    source: e,
                })?;
                let path = opts.out_dir.join(format!("{id}.rejects.csv"));
                output::rejects_beside(&all, &path)?;
                return Err(PipelineError::Validate { source, rejects: path });
            }
        }
    }
    Ok((out, files))
}

/// Validates; when validation stops the run, the analyst still gets every reject line
/// (as `ID.rejects.csv` beside the run folders) to fix the input.
fn validate_keeping_rejects(
    inputs: ingest::RawInputs,
    params: &ValidateParams,
    snapshot: Option<NaiveDate>,
    opts: &RunOptions,
    id: &str,
) -> Result<Validated, PipelineError> {
    let latest = validate::latest_event_day(snapshot);
    validate::validate(inputs, params, latest).or_else(|(source, rejects)| {
        std::fs::create_dir_all(&opts.out_dir).map_err(|e| PersistError::Create {
            path: opts.out_dir.clone(),
            source: e,
        })?;
        let path = opts.out_dir.join(format!("{id}.rejects.csv"));
        output::rejects_beside(&rejects, &path)?;
        Err(PipelineError::Validate { source, rejects: path })
    })
}

fn snapshot_of(s: &Settings) -> Option<NaiveDate> {
    // Checked when the settings were built.
    s.snapshot_date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// A snapshot more than a month after the last invoice month: a few late dates may
/// have moved it.
fn snapshot_warning(snapshot: NaiveDate, last_invoice: Option<NaiveDate>) -> Option<Warning> {
    use chrono::Datelike;
    let last = last_invoice?;
    let months = (snapshot.year() - last.year()) * 12 + snapshot.month() as i32 - last.month() as i32;
    (months > 1).then(|| Warning {
        en: format!(
            "the snapshot date {snapshot} is {months} months after the last invoice ({last}): a few late dates (a typo in a payment date or a work month?) may have moved it; check them, or set snapshot_date"
        ),
        zh: format!(
            "数据截止日 {snapshot} 比最后一张发票（{last}）晚 {months} 个月：可能有个别日期录入有误（付款日期或工作月份），请核对，或在配置中设置 snapshot_date"
        ),
    })
}

fn client_ids(table: &FeatureTable) -> Vec<String> {
    table
        .df
        .column("client_id")
        .ok()
        .and_then(|c| c.str().ok().cloned())
        .map(|c| c.iter().map(|v| v.unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

fn model_of(s: &Settings, run: &RunDir, table: &FeatureTable, outcomes: &[Outcome]) -> Result<Model, PipelineError> {
    let segmentations: std::collections::BTreeMap<String, crate::model::SegmentModel> = outcomes
        .iter()
        .filter_map(|o| o.segmentation.as_ref().map(|s| (o.id.to_string(), s.model.clone())))
        .collect();
    if segmentations.is_empty() {
        return Err(PipelineError::NoSegmentation);
    }
    Ok(Model {
        run_dir: Some(
            std::path::absolute(run.target())
                .unwrap_or_else(|_| run.target().to_path_buf())
                .display()
                .to_string(),
        ),
        schema_version: SCHEMA_VERSION,
        clientseg_version: env!("CARGO_PKG_VERSION").into(),
        run_id: run.run_id(),
        seed: s.seed,
        snapshot_date: table.snapshot.to_string(),
        feature_settings: FeatureSettings {
            hourly_cost: s.features.hourly_cost,
            payment_terms_days: s.validation.payment_terms_days,
            long_term_months: s.features.long_term_months,
        },
        features: table.enabled.iter().map(|f| FeatureDoc::from(*f)).collect(),
        segmentations,
        analyses: outcomes
            .iter()
            .filter_map(|o| o.saved.clone().map(|v| (o.id.to_string(), v)))
            .collect(),
    })
}

/// labels, CRM import, features, rejects, segments and the analyses' tables (side by
/// side: at 1M clients this stage went from 5.2 s to 4.2 s) with each accountant's page
/// of actions beside them, then rules.txt. Returns segments and labels, and how long the
/// pages took.
fn tables(
    w: &mut Written,
    s: &Settings,
    run_id: &str,
    input: &Prepared,
    outcomes: &mut [Outcome],
) -> Result<(DataFrame, DataFrame, Option<f64>), PipelineError> {
    let dir = w.dir().to_path_buf();
    // The analyses' run-folder tables first, and freed once written: nothing after this
    // reads them, and held through the tables below they added to the run's peak (the
    // churn snapshots, when exported, are 400,000 rows at 1M clients).
    let mut run_tables = Vec::new();
    for o in outcomes.iter_mut() {
        for (name, mut df) in std::mem::take(&mut o.tables) {
            let file = format!("{name}.parquet");
            crate::export::write_parquet(&mut df, &dir.join(&file))?;
            run_tables.push(file);
        }
    }
    let outcomes: &[Outcome] = outcomes;
    let table = &input.table;
    let words = analysis::catalogue(outcomes);
    let words = &words;
    let mut exported: Vec<(Vec<String>, Option<String>)> = Vec::new();
    let mut pages: Option<(Vec<String>, f64)> = None;
    let (segs, labels) = std::thread::scope(|scope| -> Result<(DataFrame, DataFrame), PipelineError> {
        // The pages mostly wait on the file system (thousands of small files in one
        // folder), so they are written while the tables keep the cores busy.
        let pages_jobs = outcomes
            .iter()
            .filter_map(|o| o.pages.as_ref())
            .map(|p| {
                let folder = dir.join(&p.folder);
                // A thread of its own, named so that a profile tells it apart.
                let named = std::thread::Builder::new().name(format!("pages: {}", p.folder));
                named
                    .spawn_scoped(scope, move || {
                        let started = std::time::Instant::now();
                        (p.write)(&folder).map(|files| (files, started.elapsed().as_secs_f64()))
                    })
                    .map_err(|e| report::ReportError::Write {
                        path: dir.join(&p.folder),
                        message: format!("could not start the thread that writes the pages: {e}"),
                    })
            })
            .collect::<Vec<_>>();
        // features.parquet after the labels, not beside them: the two wide tables at once
        // were the run's peak memory at 1M clients.
        let labels_job = scope.spawn(|| {
            let labels = output::labels(&dir, table, outcomes, &s.crm, words, s.lang, run_id)?;
            output::features(&dir, table, outcomes)?;
            Ok::<_, PipelineError>(labels)
        });
        // The analyses' tables for people, side by side with the labels (at 1M clients
        // pricing.csv and allocation.csv took 5 s one after the other).
        let exports_job = scope.spawn(|| {
            use rayon::prelude::*;
            outcomes
                .iter()
                .flat_map(|o| o.exports.iter())
                .collect::<Vec<_>>()
                .par_iter()
                .map(|(name, df)| output::export_table(&dir, name, df, words, s.lang, s.output.xlsx_max_rows))
                .chain(
                    outcomes
                        .iter()
                        .flat_map(|o| o.imports.iter())
                        .collect::<Vec<_>>()
                        .par_iter()
                        .map(|(name, df)| {
                            let file = format!("{name}.csv");
                            crate::export::write_csv(&mut df.clone(), &dir.join(&file)).map(|()| (vec![file], None))
                        }),
                )
                .collect::<Result<Vec<_>, _>>()
        });
        output::rejects(&dir, &input.validated.rejects)?;
        let segs = output::segments(&dir, table, outcomes)?;
        let labels = labels_job.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        exported = exports_job.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        for job in pages_jobs {
            let (files, seconds) = job?.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            let (all, total) = pages.get_or_insert_with(|| (Vec::new(), 0.0));
            all.extend(files);
            *total += seconds;
        }
        Ok((segs, labels))
    })?;
    for (files, skipped) in exported {
        for f in files {
            w.add(f);
        }
        w.skipped.extend(skipped);
    }
    for f in output::LABEL_FILES
        .iter()
        .chain(&["features.parquet", "segments.csv", "rejects.csv"])
    {
        w.add(*f);
    }
    output::rules(w, outcomes)?;
    for file in run_tables {
        w.add(file);
    }
    let seconds = pages.map(|(files, seconds)| {
        for f in files {
            w.add(f);
        }
        seconds
    });
    Ok((segs, labels, seconds))
}

/// migration.csv and transitions.csv against the previous run, and its counts.
fn migrate(
    w: &mut Written,
    lang: Lang,
    prev_dir: &Path,
    labels: &DataFrame,
    table: &FeatureTable,
    outcomes: &[Outcome],
    report: &mut Stability,
) -> Result<(), PipelineError> {
    let models: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.segmentation.as_ref())
        .map(|s| &s.model)
        .collect();
    let words = analysis::catalogue(outcomes);
    let m = migration::compare(
        &migration::read_parquet(&prev_dir.join("labels.parquet"))?,
        &migration::read_parquet(&prev_dir.join("features.parquet"))?,
        labels,
        &table.df,
        &models,
        &words.tracked(),
    )?;
    (report.moved, report.new, report.departed) = (
        m.count(ClientStatus::Moved),
        m.count(ClientStatus::New),
        m.count(ClientStatus::Departed),
    );
    Ok(output::migration(w, m, lang)?)
}

#[allow(clippy::too_many_arguments)]
fn charts_and_report(
    w: &mut Written,
    s: &Settings,
    run_id: &str,
    started: chrono::DateTime<chrono::Local>,
    input: &Prepared,
    outcomes: &[Outcome],
    segments: &DataFrame,
    stability: Option<&Stability>,
    warnings: &[Warning],
) -> Result<(), PipelineError> {
    let data = report::page::chart_data(s.lang, s.seed, outcomes, segments);
    let charts = report::write_charts(&w.path("charts"), &data)?;
    // The transition charts of the migration stage are shown in the page too.
    let transitions: Vec<report::ChartFile> = w
        .files
        .iter()
        .filter(|f| f.starts_with("charts/transitions_") && f.ends_with(".svg"))
        .map(|f| report::ChartFile {
            title: String::new(),
            png: f.replace(".svg", ".png"),
            svg: f.clone(),
        })
        .collect();
    let mut section_charts = Vec::new();
    for o in outcomes {
        let id = o.section.as_ref().map_or(o.id.to_string(), |sec| sec.id.clone());
        for c in &o.charts {
            section_charts.push((id.clone(), report::write_line_chart(&w.path("charts"), s.lang, c)?));
        }
    }
    for c in charts.iter().chain(section_charts.iter().map(|(_, c)| c)) {
        w.add(c.png.clone());
        w.add(c.svg.clone());
    }
    let created_at = started.to_rfc3339();
    let page = report::page::page(
        &report::page::PageInput {
            lang: s.lang,
            seed: s.seed,
            run_id,
            created_at: &created_at,
            files: &input.files,
            validated: &input.validated,
            table: &input.table,
            outcomes,
            segments,
            stability,
            warnings,
            plans: s.service_plans.as_deref(),
        },
        charts.into_iter().chain(transitions).collect(),
        section_charts,
    );
    report::html::write_html(w.dir(), &page)?;
    w.add("report.html");
    Ok(())
}

/// The manifest's `analyses`: each analysis's summary by its id, a segmentation's
/// summary merged in.
fn analysis_parts(
    outcomes: &[Outcome],
) -> Result<std::collections::BTreeMap<String, serde_json::Value>, PipelineError> {
    let mut parts = std::collections::BTreeMap::new();
    for o in outcomes {
        let mut part = o.summary.clone();
        if let Some(s) = &o.segmentation {
            let serde_json::Value::Object(fields) =
                serde_json::to_value(s.summary()).map_err(|source| PersistError::Json {
                    what: "a segmentation's summary",
                    source,
                })?
            else {
                continue;
            };
            match part.get_or_insert_with(|| serde_json::json!({})) {
                serde_json::Value::Object(own) => own.extend(fields),
                other => *other = serde_json::Value::Object(fields),
            }
        }
        if let Some(p) = part {
            parts.insert(o.id.to_string(), p);
        }
    }
    Ok(parts)
}

#[allow(clippy::too_many_arguments)]
fn manifest(
    s: &Settings,
    opts: &RunOptions,
    run_id: &str,
    started: chrono::DateTime<chrono::Local>,
    input: &Prepared,
    outcomes: &[Outcome],
    st: &Stages,
    stability: Option<Stability>,
    warnings: &[Warning],
    w: &Written,
    scored_with: Option<ScoredWith>,
) -> Result<Manifest, PipelineError> {
    let mut outputs = w.files.clone();
    outputs.push("manifest.json".into());
    Ok(Manifest {
        run_id: run_id.to_string(),
        command: opts.command.clone(),
        created_at: started.to_rfc3339(),
        versions: persist::versions(),
        seed: s.seed,
        snapshot_date: input.table.snapshot.to_string(),
        inputs: input.files.clone(),
        config: serde_json::to_value(s).map_err(|source| PersistError::Json {
            what: "configuration",
            source,
        })?,
        rows: input.validated.counts.clone(),
        reject_lines: input.validated.rejects.height(),
        top_reject_reasons: validate::top_reasons(&input.validated.rejects, 5),
        disabled_features: input.table.disabled.clone(),
        segmentations: outcomes
            .iter()
            .filter_map(|o| o.segmentation.as_ref().map(|s| s.summary()))
            .collect(),
        declared_inputs: input.declared_files.clone(),
        columns: analysis::catalogue(outcomes),
        analyses: analysis_parts(outcomes)?,
        headlines: outcomes
            .iter()
            .filter_map(|o| match (&o.headline, &o.skipped) {
                (Some((en, _)), _) => Some(en.clone()),
                (None, Some(why)) => Some(format!("{}: skipped, {why}", o.id)),
                (None, None) => None,
            })
            .collect(),
        scored_with,
        timings: st.timings.clone(),
        outputs,
        skipped_outputs: w.skipped.clone(),
        stability,
        warnings: warnings.iter().map(|w| w.en.clone()).collect(),
    })
}

fn write_manifest(run: &RunDir, manifest: &Manifest) -> Result<(), PersistError> {
    let json = serde_json::to_string_pretty(manifest).map_err(|source| PersistError::Json {
        what: "manifest",
        source,
    })?;
    run.write("manifest.json", json.as_bytes())
}

/// `clientseg diff`: migration between two finished runs, in a folder of its own.
pub fn diff(a: &Path, b: &Path, out: &Path) -> Result<(usize, PathBuf), PipelineError> {
    let m = migration::compare_runs(a, b)?;
    let name = |p: &Path| {
        p.file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    let dir = RunDir::create(out, &format!("diff-{}-{}", name(a), name(b)))?;
    let moved = m.rows.height();
    let mut w = Written::new(dir.path());
    output::migration(&mut w, m, Lang::En)?;
    let done = dir.commit()?;
    Ok((moved, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_say_what_when_and_which_seed() {
        let a = run_id("score", 42);
        assert!(a.starts_with("score-") && a.contains("-s42-"), "{a}");
        // score-YYYYMMDD-HHMMSS-s42-xxxx
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 5, "{a}");
        assert_eq!(parts[1].len(), 8);
        assert!(
            parts[4].len() == 4 && parts[4].chars().all(|c| c.is_ascii_hexdigit()),
            "{a}"
        );
    }

    #[test]
    fn a_snapshot_well_after_the_last_invoice_is_warned_about() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert!(snapshot_warning(day(2025, 12, 31), Some(day(2025, 11, 3))).is_none());
        let w = snapshot_warning(day(2026, 3, 1), Some(day(2025, 11, 30))).unwrap();
        assert!(
            w.en.contains("4 months after") && w.zh.contains("晚 4 个月"),
            "{}",
            w.en
        );
        assert!(snapshot_warning(day(2026, 3, 1), None).is_none());
    }

    #[test]
    fn client_ids_are_read_in_table_order() {
        let df = DataFrame::new_infer_height(vec![Column::new("client_id".into(), ["C2", "C1"])]).unwrap();
        let table = FeatureTable {
            df,
            snapshot: NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
            enabled: Vec::new(),
            disabled: Vec::new(),
        };
        assert_eq!(client_ids(&table), ["C2", "C1"]);
    }
}
