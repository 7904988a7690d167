//! The batch run: ingest -> validate -> features -> preprocess -> cluster / classify ->
//! segments -> persist / report / export, with progress on the terminal and each
//! stage's time recorded in the manifest.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array2};
use polars::prelude::*;
use thiserror::Error;

use crate::classify::{ClassifyError, TreeModel};
use crate::cluster::{self, ClusterError, KScore};
use crate::config::{Previous, Settings};
use crate::export::{self, Assignment, ExportError};
use crate::features::{self, FeatureError, FeatureParams, FeatureTable};
use crate::ingest::{self, IngestError};
use crate::migration::{self, MigrationError};
use crate::model::{FeatureDoc, FeatureSettings, Model, ModelError, SegmentModel, SCHEMA_VERSION};
pub use crate::persist::Stability;
use crate::persist::{self, Manifest, PersistError, RunDir, SegmentSummary, SegmentationSummary, Timing};
use crate::preprocess::{self, PreprocessError, Scaler};
use crate::report::{self, ChartData, ReportError};
use crate::segments::{self, Segment};
use crate::validate::{self, ValidateError};

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("{source}\nEvery rejected row is listed in {rejects}")]
    Validate { source: ValidateError, rejects: PathBuf },
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("no value features are available: the input lacks what every one of {0:?} needs")]
    NoValueFeatures(Vec<String>),
    #[error("model {model} uses feature '{feature}', which cannot be computed from this input; supply the columns it needs (see docs/data-contract.md), or score with a model fitted on data like this")]
    ScoreFeature { model: String, feature: String },
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

/// Stage timing and a spinner while a stage runs.
struct Stages {
    timings: Vec<Timing>,
    bar: ProgressBar,
    total: usize,
}

impl Stages {
    fn new(show: bool, total: usize) -> Stages {
        let bar = if show {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Stages {
            timings: Vec::new(),
            bar,
            total,
        }
    }

    fn run<T>(&mut self, name: &str, f: impl FnOnce(&ProgressBar) -> T) -> T {
        let n = self.timings.len() + 1;
        self.bar.set_message(format!("[{n}/{}] {name}", self.total));
        persist::reset_peak_rss();
        let start = Instant::now();
        let out = f(&self.bar);
        self.timings.push(Timing {
            stage: name.to_string(),
            seconds: start.elapsed().as_secs_f64(),
            peak_rss_mib: persist::peak_rss_mib(),
        });
        out
    }
}

impl Drop for Stages {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
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

/// A fitted segmentation and its labels for the current data.
struct Fitted {
    model: SegmentModel,
    labels: Array1<usize>,
    distances: Array1<f64>,
    z: Array2<f64>,
    inertia: f64,
    k_scores: Vec<KScore>,
}

fn usable(wanted: &[String], table: &FeatureTable) -> Vec<String> {
    wanted.iter().filter(|f| table.is_enabled(f)).cloned().collect()
}

/// A feature matrix as clustered: raw values, the scaler fitted on them, scaled values.
struct Prepared {
    names: Vec<String>,
    raw: Array2<f64>,
    scaler: Scaler,
    z: Array2<f64>,
}

fn prepare(table: &FeatureTable, names: &[String]) -> Result<Prepared, PipelineError> {
    let raw = preprocess::to_matrix(&table.df, names)?;
    let scaler = Scaler::fit(names, raw.view())?;
    let z = scaler.transform(raw.view())?;
    Ok(Prepared {
        names: names.to_vec(),
        raw,
        scaler,
        z,
    })
}

/// Value tiers: k-means with the configured k, clusters ordered by what they are worth.
fn fit_value(
    s: &Settings,
    table: &FeatureTable,
    p: &Prepared,
) -> Result<(cluster::Clustering, Vec<Segment>), PipelineError> {
    let c = cluster::fit(p.z.view(), s.value_k, &s.kmeans, s.seed)?;
    // Tiers are ordered by what the client is worth to the firm.
    let worth_name = if table.is_enabled("contribution_margin") {
        "contribution_margin"
    } else {
        "fees_12m"
    };
    let worth = preprocess::to_matrix(&table.df, &[worth_name.to_string()])?;
    let (map, tiers) = segments::value_tiers(&c.labels, worth.column(0), c.centroids.view());
    let labels = c.labels.mapv(|l| map[l]);
    Ok((cluster::Clustering { labels, ..c }, tiers))
}

/// Behaviour segments: k chosen from the configured range.
fn fit_behaviour(
    s: &Settings,
    p: &Prepared,
    bar: &ProgressBar,
) -> Result<(cluster::Clustering, Vec<KScore>, Vec<Segment>), PipelineError> {
    let (lo, hi) = s.behaviour_k_range;
    let (c, scores) = cluster::select_k(p.z.view(), (lo, hi), &s.kmeans, s.silhouette_sample, s.seed, |k| {
        bar.set_message(format!("behaviour segments: scored k = {k} of {lo}..={hi}"));
    })?;
    let segs = segments::behaviour_segments(c.centroids.view(), &p.names);
    Ok((c, scores, segs))
}

/// The decision tree that explains a clustering, and the fitted segmentation.
fn explain(
    s: &Settings,
    p: Prepared,
    c: cluster::Clustering,
    segments: Vec<Segment>,
    k_scores: Vec<KScore>,
) -> Result<Fitted, PipelineError> {
    let tree = TreeModel::train(
        p.scaler.impute(p.raw.view()).view(),
        &c.labels,
        &p.names,
        s.tree_max_depth,
        s.test_share,
        s.seed,
    )?;
    Ok(Fitted {
        model: SegmentModel {
            features: p.names,
            scaler: p.scaler,
            segments,
            tree,
        },
        labels: c.labels,
        distances: c.distances,
        z: p.z,
        inertia: c.inertia,
        k_scores,
    })
}

fn assignment(f: &Fitted) -> Assignment {
    Assignment {
        labels: f.labels.to_vec(),
        distances: f.distances.to_vec(),
        segments: f.model.segments.clone(),
    }
}

fn summary_of(f: &Fitted) -> SegmentationSummary {
    let mut sizes = vec![0usize; f.model.segments.len()];
    f.labels.iter().for_each(|&l| sizes[l] += 1);
    SegmentationSummary {
        features: f.model.features.clone(),
        k: f.model.segments.len(),
        inertia: f.inertia,
        holdout_accuracy: f.model.tree.holdout_accuracy,
        k_scores: f.k_scores.clone(),
        segments: f
            .model
            .segments
            .iter()
            .zip(&sizes)
            .map(|(s, n)| SegmentSummary {
                id: s.id.clone(),
                name_en: s.name_en.clone(),
                name_zh: s.name_zh.clone(),
                size: *n,
            })
            .collect(),
    }
}

/// The decision rules as text, per segment.
pub fn rules_text(title: &str, m: &SegmentModel) -> String {
    let mut out = format!(
        "{title}: decision tree, hold-out accuracy {:.1}% on {} clients\n",
        m.tree.holdout_accuracy * 100.0,
        m.tree.holdout_rows
    );
    for (i, seg) in m.segments.iter().enumerate() {
        out.push_str(&format!("\n{} {} ({})\n", seg.id, seg.name_en, seg.name_zh));
        let rules: Vec<_> = m.tree.rules.iter().filter(|r| r.class == i).collect();
        if rules.is_empty() {
            out.push_str("  (no leaf of the tree predicts this segment)\n");
        }
        for r in rules {
            let cond = if r.conditions.is_empty() {
                "always".to_string()
            } else {
                r.conditions.join(" AND ")
            };
            out.push_str(&format!(
                "  IF {cond}  -> {} clients, {:.0}% in this segment\n",
                r.support,
                r.purity * 100.0
            ));
        }
    }
    out
}

fn write_rejects(rejects: &DataFrame, path: &Path) -> Result<(), ExportError> {
    let mut r = rejects.clone();
    export::write_csv(&mut r, path)
}

/// rejects.csv beside the run folders when validation stops the run: written under a
/// temporary name and renamed, so an interrupted write leaves nothing.
fn write_rejects_beside(rejects: &DataFrame, path: &Path) -> Result<(), PipelineError> {
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    persist::track_unfinished(&tmp);
    let written = write_rejects(rejects, &tmp)
        .map_err(PipelineError::from)
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|source| {
                PipelineError::Persist(PersistError::Commit {
                    path: path.to_path_buf(),
                    source,
                })
            })
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    persist::untrack_unfinished(&tmp);
    written
}

/// Validates; when validation stops the run, the analyst still gets every reject line
/// (as `ID.rejects.csv` beside the run folders) to fix the input.
fn validate_keeping_rejects(
    inputs: ingest::RawInputs,
    params: &validate::ValidateParams,
    snapshot: Option<NaiveDate>,
    opts: &RunOptions,
    id: &str,
) -> Result<validate::Validated, PipelineError> {
    let latest = validate::latest_event_day(snapshot);
    validate::validate(inputs, params, latest).or_else(|(source, rejects)| {
        std::fs::create_dir_all(&opts.out_dir).map_err(|e| PersistError::Create {
            path: opts.out_dir.clone(),
            source: e,
        })?;
        let path = opts.out_dir.join(format!("{id}.rejects.csv"));
        write_rejects_beside(&rejects, &path)?;
        Err(PipelineError::Validate { source, rejects: path })
    })
}

fn snapshot_of(s: &Settings) -> Option<NaiveDate> {
    // Checked when the settings were built.
    s.snapshot_date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

fn rows_text(counts: &[validate::TableCounts]) -> String {
    let mut out = String::from("rows (input = accepted + rejected):\n");
    for r in counts {
        out.push_str(&format!(
            "  {:<9} {:>9} = {:>9} + {:>6}\n",
            r.table.name(),
            r.input,
            r.accepted,
            r.rejected
        ));
    }
    out
}

/// The run a new run is compared with.
pub struct PreviousRun {
    pub model: Model,
    /// Its folder, when it still exists (for client-level migration).
    pub run_dir: Option<PathBuf>,
}

/// Finds the previous run: the one named in the settings, or models/latest.json.
pub fn load_previous(s: &Settings) -> Result<Option<PreviousRun>, PipelineError> {
    let from_model = |model: Model| {
        let run_dir = model.run_dir.as_ref().map(PathBuf::from).filter(|d| d.is_dir());
        PreviousRun { model, run_dir }
    };
    match &s.previous {
        Previous::None => Ok(None),
        Previous::Auto => {
            let latest = s.models_dir.join("latest.json");
            // A model from an incompatible version is skipped, not fatal.
            Ok(latest
                .is_file()
                .then(|| Model::load(&latest).ok())
                .flatten()
                .map(from_model))
        }
        Previous::Path(p) if p.is_dir() => {
            let model = Model::load(&p.join("model.json"))?;
            Ok(Some(PreviousRun {
                model,
                run_dir: Some(p.clone()),
            }))
        }
        Previous::Path(p) => Ok(Some(from_model(Model::load(p)?))),
    }
}

/// Writes migration.csv, transitions.csv and their charts; returns the file names.
pub fn write_migration(
    dir: &Path,
    m: migration::Migration,
    lang: crate::config::Lang,
) -> Result<Vec<String>, PipelineError> {
    let mut rows = m.rows;
    export::write_csv(&mut rows, &dir.join("migration.csv"))?;
    let mut transitions = m.transitions;
    export::write_csv(&mut transitions, &dir.join("transitions.csv"))?;
    let mut files = vec!["migration.csv".to_string(), "transitions.csv".to_string()];
    std::fs::create_dir_all(dir.join("charts")).map_err(|e| PersistError::Create {
        path: dir.join("charts"),
        source: e,
    })?;
    for matrix in &m.matrices {
        let chart = report::write_transition_chart(
            &dir.join("charts"),
            lang,
            &matrix.kind,
            &matrix.from,
            &matrix.to,
            &matrix.counts,
        )?;
        files.push(chart.png);
        files.push(chart.svg);
    }
    Ok(files)
}

/// Runs the whole pipeline and writes one run folder.
pub fn run(s: &Settings, opts: &RunOptions) -> Result<RunReport, PipelineError> {
    let started = chrono::Local::now();
    // ingest, validate, features, scaling, k selection, final fits, classifier, tables,
    // spreadsheets, charts, report
    let mut st = Stages::new(opts.progress, 11);
    let id = run_id("run", s.seed);
    persist::check_writable(&opts.out_dir, "output folder")?;
    persist::check_writable(&s.models_dir, "models folder")?;
    // A damaged previous model is named before any work is done.
    let previous = load_previous(s)?;

    let inputs = st.run("ingest", |_| ingest::read_inputs(&s.input))?;
    let files = inputs.files.clone();
    let validated = st.run("validate", |_| {
        validate_keeping_rejects(inputs, &s.validation, snapshot_of(s), opts, &id)
    })?;
    let params = FeatureParams {
        snapshot: snapshot_of(s),
        hourly_cost: s.hourly_cost,
        long_term_months: s.long_term_months,
    };
    let table = st.run("features", |_| features::compute(&validated.tables, &params))?;
    let last_invoice = features::last_invoice(&validated.tables);
    // Only the per-client table is needed from here on; free the invoices and work log.
    let validated = validate::Validated {
        tables: validate::CleanTables {
            billing: DataFrame::empty(),
            activity: None,
            ..validated.tables
        },
        ..validated
    };

    let value_names = usable(&s.value_features, &table);
    if value_names.is_empty() {
        return Err(PipelineError::NoValueFeatures(s.value_features.clone()));
    }
    let behaviour_names = usable(&s.behaviour_features, &table);
    let (value_p, behaviour_p) = st.run("scaling", |_| -> Result<_, PipelineError> {
        let b = if behaviour_names.is_empty() {
            None
        } else {
            Some(prepare(&table, &behaviour_names)?)
        };
        Ok((prepare(&table, &value_names)?, b))
    })?;
    let swept = match &behaviour_p {
        Some(p) => Some(st.run("k selection", |bar| fit_behaviour(s, p, bar))?),
        None => None,
    };
    let (value_c, tiers) = st.run("final fits", |_| fit_value(s, &table, &value_p))?;
    let (mut value, mut behaviour) = st.run("classifier", |_| -> Result<_, PipelineError> {
        // The two trees are independent: learn them side by side.
        let (value, behaviour) = rayon::join(
            || explain(s, value_p, value_c, tiers, Vec::new()),
            || match (behaviour_p, swept) {
                (Some(p), Some((c, scores, segs))) => explain(s, p, c, segs, scores).map(Some),
                _ => Ok(None),
            },
        );
        Ok((value?, behaviour?))
    })?;

    let warnings = data_warnings(s, &table, last_invoice, &value, behaviour.as_ref());

    // Segments keep the ids and names they had in the previous run.
    let mut stability = None;
    if let Some(prev) = &previous {
        let mut report = Stability {
            previous_run: prev.model.run_id.clone(),
            previous_run_dir: prev.run_dir.as_ref().map(|p| p.display().to_string()),
            value: Vec::new(),
            behaviour: Vec::new(),
            moved: 0,
            new: 0,
            departed: 0,
        };
        if let (Some(b), Some(pb)) = (behaviour.as_mut(), &prev.model.behaviour) {
            let mapped = b.model.centroids_of(pb)?;
            report.behaviour =
                segments::carry_over(&mut b.model.segments, &pb.segments, &mapped, s.match_threshold, "B");
        }
        // Value tiers are named by rank; the match only records how far each tier moved.
        let mapped = value.model.centroids_of(&prev.model.value)?;
        let mut tiers = value.model.segments.clone();
        report.value = segments::carry_over(&mut tiers, &prev.model.value.segments, &mapped, s.match_threshold, "V");
        // Boundary clients keep last run's segment unless clearly closer to another.
        if let Some(prev_dir) = prev.run_dir.as_ref().filter(|d| d.join("labels.parquet").is_file()) {
            let prev_labels = migration::read_parquet(&prev_dir.join("labels.parquet"))?;
            let ids: Vec<String> = table
                .df
                .column("client_id")
                .ok()
                .and_then(|c| c.str().ok().cloned())
                .map(|c| c.iter().map(|v| v.unwrap_or("").to_string()).collect())
                .unwrap_or_default();
            let mut targets = vec![(&mut value, "value_tier")];
            if let Some(b) = behaviour.as_mut() {
                targets.push((b, "behaviour_segment"));
            }
            for (fitted, column) in targets {
                let before = migration::labels_by_client(&prev_labels, column);
                let index: std::collections::HashMap<&str, usize> = fitted
                    .model
                    .segments
                    .iter()
                    .enumerate()
                    .map(|(i, seg)| (seg.id.as_str(), i))
                    .collect();
                let previous: Vec<Option<usize>> = ids
                    .iter()
                    .map(|id| before.get(id).and_then(|p| index.get(p.as_str()).copied()))
                    .collect();
                let centroids = fitted.model.centroids();
                cluster::stick(
                    fitted.z.view(),
                    centroids.view(),
                    &mut fitted.labels,
                    &mut fitted.distances,
                    &previous,
                    s.hysteresis,
                );
            }
        }
        stability = Some(report);
    }

    let run = RunDir::create(&opts.out_dir, &id)?;
    let dir = run.path().to_path_buf();
    let model = Model {
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
            hourly_cost: s.hourly_cost,
            payment_terms_days: s.validation.payment_terms_days,
            long_term_months: s.long_term_months,
        },
        features: table.enabled.iter().map(|f| FeatureDoc::from(*f)).collect(),
        value: value.model.clone(),
        behaviour: behaviour.as_ref().map(|b| b.model.clone()),
    };

    let value_a = assignment(&value);
    let behaviour_a = behaviour.as_ref().map(assignment);
    let all_features: Vec<String> = table.enabled.iter().map(|f| f.name.to_string()).collect();
    let (mut segments_df, labels_df) = st.run("tables", |_| -> Result<(DataFrame, DataFrame), PipelineError> {
        // Independent files, written side by side: at 1M clients this stage went from
        // 5.2 s to 4.2 s.
        let (segs, labels) = std::thread::scope(|scope| -> Result<(DataFrame, DataFrame), PipelineError> {
            let labels_job = scope.spawn(|| -> Result<DataFrame, PipelineError> {
                let mut labels = export::labels_frame(&table.df, &value_a, behaviour_a.as_ref())?;
                export::write_csv(&mut labels, &dir.join("labels.csv"))?;
                export::write_parquet(&mut labels, &dir.join("labels.parquet"))?;
                let mut crm = export::crm_frame(&labels, &s.crm, s.lang, &run.run_id())?;
                export::write_csv(&mut crm, &dir.join("crm_import.csv"))?;
                Ok(labels)
            });
            let features_job = scope.spawn(|| -> Result<(), PipelineError> {
                let mut scaled: Vec<(String, Vec<f64>)> = Vec::new();
                for f in [Some(&value), behaviour.as_ref()].into_iter().flatten() {
                    for (j, name) in f.model.features.iter().enumerate() {
                        if !scaled.iter().any(|(n, _)| n == name) {
                            scaled.push((name.clone(), f.z.column(j).to_vec()));
                        }
                    }
                }
                let mut feats = export::with_scaled(&table.df, &scaled)?;
                export::write_parquet(&mut feats, &dir.join("features.parquet"))?;
                Ok(())
            });
            write_rejects(&validated.rejects, &dir.join("rejects.csv"))?;
            let mut segs = export::segments_frame(&table.df, &all_features, &value_a, behaviour_a.as_ref())?;
            export::write_csv(&mut segs, &dir.join("segments.csv"))?;
            let labels = labels_job.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            features_job.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            Ok((segs, labels))
        })?;
        let mut rules = rules_text("Value tiers", &value.model);
        if let Some(b) = &behaviour {
            rules.push('\n');
            rules.push_str(&rules_text("Behaviour segments", &b.model));
        }
        run.write("rules.txt", rules.as_bytes())?;
        run.write("model.json", model.to_json().as_bytes())?;
        Ok((segs, labels))
    })?;

    let mut skipped_outputs = Vec::new();
    st.run("spreadsheets", |_| -> Result<(), PipelineError> {
        let zh = s.lang == crate::config::Lang::Zh;
        let sheet = if zh { "客户标签" } else { "labels" };
        if !export::write_xlsx(&labels_df, &dir.join("labels.xlsx"), sheet, zh, s.xlsx_max_rows)? {
            skipped_outputs.push(format!(
                "labels.xlsx: {} clients is over output.xlsx_max_rows ({}); the same rows are in labels.csv and labels.parquet",
                labels_df.height(),
                s.xlsx_max_rows
            ));
        }
        let sheet = if zh { "分群概况" } else { "segments" };
        export::write_xlsx(&segments_df, &dir.join("segments.xlsx"), sheet, zh, export::XLSX_MAX_ROWS)?;
        Ok(())
    })?;

    // Who moved since the previous run, when its tables are still there.
    let mut migration_files = Vec::new();
    let prev_dir = previous
        .as_ref()
        .and_then(|p| p.run_dir.clone())
        .filter(|d| d.join("labels.parquet").is_file());
    if let (Some(prev_dir), Some(report)) = (prev_dir, stability.as_mut()) {
        migration_files = st.run("migration", |_| -> Result<Vec<String>, PipelineError> {
            let mut models = vec![&value.model];
            if let Some(b) = &behaviour {
                models.push(&b.model);
            }
            let m = migration::compare(
                &migration::read_parquet(&prev_dir.join("labels.parquet"))?,
                &migration::read_parquet(&prev_dir.join("features.parquet"))?,
                &labels_df,
                &table.df,
                &models,
            )?;
            let status = m.rows.column("status").ok().and_then(|c| c.str().ok().cloned());
            let count = |w: &str| {
                status
                    .as_ref()
                    .map_or(0, |s| s.iter().filter(|v| *v == Some(w)).count())
            };
            (report.moved, report.new, report.departed) = (count("moved"), count("new"), count("departed"));
            write_migration(&dir, m, s.lang)
        })?;
    }

    let charts = st.run("charts", |_| -> Result<Vec<report::ChartFile>, PipelineError> {
        let data = chart_data(s, &value, behaviour.as_ref(), &mut segments_df);
        Ok(report::write_charts(&dir.join("charts"), &data)?)
    })?;

    let page_charts: Vec<report::ChartFile> = charts
        .iter()
        .cloned()
        .chain(
            migration_files
                .iter()
                .filter(|f| f.ends_with(".svg"))
                .map(|f| report::ChartFile {
                    title: String::new(),
                    png: f.replace(".svg", ".png"),
                    svg: f.clone(),
                }),
        )
        .collect();
    st.run("report", |_| -> Result<(), PipelineError> {
        let page = page(
            s,
            &files,
            &validated,
            &table,
            &value,
            behaviour.as_ref(),
            &segments_df,
            page_charts,
            stability.as_ref(),
            &run.run_id(),
            &started.to_rfc3339(),
            &warnings,
        );
        Ok(report::html::write_html(&dir, &page)?)
    })?;

    let mut outputs: Vec<String> = [
        "report.html",
        "labels.xlsx",
        "segments.xlsx",
        "labels.csv",
        "labels.parquet",
        "crm_import.csv",
        "features.parquet",
        "segments.csv",
        "rejects.csv",
        "rules.txt",
        "model.json",
        "manifest.json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !skipped_outputs.is_empty() {
        outputs.retain(|o| o != "labels.xlsx");
    }
    for c in &charts {
        outputs.push(c.png.clone());
        outputs.push(c.svg.clone());
    }
    outputs.extend(migration_files);
    let manifest = Manifest {
        run_id: run.run_id(),
        command: opts.command.clone(),
        created_at: started.to_rfc3339(),
        versions: persist::versions(),
        seed: s.seed,
        snapshot_date: table.snapshot.to_string(),
        inputs: files.clone(),
        // Plain data with string keys: serialisation cannot fail.
        config: serde_json::to_value(s).unwrap_or_default(),
        rows: validated.counts.clone(),
        reject_lines: validated.rejects.height(),
        top_reject_reasons: validate::top_reasons(&validated.rejects, 5),
        disabled_features: table.disabled.clone(),
        value: summary_of(&value),
        behaviour: behaviour.as_ref().map(summary_of),
        timings: st.timings.clone(),
        outputs,
        skipped_outputs,
        stability: stability.clone(),
        warnings: warnings.iter().map(|w| w.en.clone()).collect(),
    };
    // Serialising plain data with string keys cannot fail.
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    run.write("manifest.json", json.as_bytes())?;
    let run_dir = run.commit()?;
    let models = &s.models_dir;
    persist::write_atomic(
        &models.join(format!("{}.json", manifest.run_id)),
        model.to_json().as_bytes(),
    )?;
    persist::write_atomic(&models.join("latest.json"), model.to_json().as_bytes())?;
    drop(st);
    let summary = summary_text(&manifest, &run_dir);
    Ok(RunReport {
        run_dir,
        manifest,
        summary,
    })
}

fn chart_data(s: &Settings, value: &Fitted, behaviour: Option<&Fitted>, segments_df: &mut DataFrame) -> ChartData {
    let sizes = |f: &Fitted| {
        let mut n = vec![0usize; f.model.segments.len()];
        f.labels.iter().for_each(|&l| n[l] += 1);
        n
    };
    let name = |seg: &Segment| match s.lang {
        crate::config::Lang::En => seg.name_en.clone(),
        crate::config::Lang::Zh => seg.name_zh.clone(),
    };
    let revenue_share: Vec<f64> = value
        .model
        .segments
        .iter()
        .map(|seg| {
            let mask = segments_df.column("segment").ok().and_then(|c| c.str().ok().cloned());
            let share = segments_df
                .column("revenue_share")
                .ok()
                .and_then(|c| c.f64().ok().cloned());
            match (mask, share) {
                (Some(m), Some(sh)) => (0..segments_df.height())
                    .find(|&i| m.get(i) == Some(seg.id.as_str()))
                    .and_then(|i| sh.get(i))
                    .unwrap_or(0.0),
                _ => 0.0,
            }
        })
        .collect();
    let (scatter, profile, profile_features, bnames, bsizes, k_scores, chosen) = match behaviour {
        Some(b) => {
            let idx = cluster::sample_rows(b.z.nrows(), 3000, s.seed ^ 0xC4A7);
            let pts = cluster::pca_2d(b.z.view(), &idx);
            let scatter = pts.iter().zip(&idx).map(|((x, y), &i)| (*x, *y, b.labels[i])).collect();
            let profile = b.model.segments.iter().map(|seg| seg.centroid.clone()).collect();
            (
                scatter,
                profile,
                b.model.features.clone(),
                b.model.segments.iter().map(name).collect(),
                sizes(b),
                b.k_scores.clone(),
                Some(b.model.segments.len()),
            )
        }
        None => (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            None,
        ),
    };
    ChartData {
        lang: s.lang,
        k_scores,
        chosen_k: chosen,
        scatter,
        behaviour_names: bnames,
        behaviour_sizes: bsizes,
        value_names: value.model.segments.iter().map(name).collect(),
        value_sizes: sizes(value),
        profile_features,
        profile,
        revenue_share,
    }
}

/// One segment's row of segments.csv as (name, value) pairs.
fn segment_row(segments: &DataFrame, id: &str) -> Vec<(String, f64)> {
    let Ok(ids) = segments.column("segment").and_then(|c| c.str().cloned()) else {
        return Vec::new();
    };
    let Some(i) = ids.iter().position(|v| v == Some(id)) else {
        return Vec::new();
    };
    segments
        .columns()
        .iter()
        .filter(|c| c.dtype().is_primitive_numeric())
        .filter_map(|c| {
            let v = c.cast(&DataType::Float64).ok()?.f64().ok()?.get(i)?;
            Some((c.name().to_string(), v))
        })
        .collect()
}

fn cards(s: &Settings, f: &Fitted, segments: &DataFrame) -> Vec<report::html::Card> {
    let zh = s.lang == crate::config::Lang::Zh;
    let total: usize = f.labels.len().max(1);
    let mut sizes = vec![0usize; f.model.segments.len()];
    f.labels.iter().for_each(|&l| sizes[l] += 1);
    f.model
        .segments
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let row = segment_row(segments, &seg.id);
            let get = |k: &str| row.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
            let mut distinct: Vec<(f64, String)> = f
                .model
                .features
                .iter()
                .zip(&seg.centroid)
                .filter(|(_, z)| z.abs() >= 0.5)
                .map(|(name, z)| {
                    let text = match (zh, *z > 0.0) {
                        (false, true) => format!("{name} is well above the average client ({z:+.1} sd)"),
                        (false, false) => format!("{name} is well below the average client ({z:+.1} sd)"),
                        (true, true) => format!("{name} 明显高于平均水平（{z:+.1} 个标准差）"),
                        (true, false) => format!("{name} 明显低于平均水平（{z:+.1} 个标准差）"),
                    };
                    (z.abs(), text)
                })
                .collect();
            distinct.sort_by(|a, b| b.0.total_cmp(&a.0));
            let rules = f
                .model
                .tree
                .rules
                .iter()
                .filter(|r| r.class == i)
                .map(|r| {
                    let pct = r.purity * 100.0;
                    match (zh, r.conditions.is_empty()) {
                        (false, true) => format!("always -> {} clients, {pct:.0}% in this segment", r.support),
                        (false, false) => format!(
                            "IF {} -> {} clients, {pct:.0}% in this segment",
                            r.conditions.join(" AND "),
                            r.support
                        ),
                        (true, true) => format!("全部 → {} 位客户，{pct:.0}% 属于此分群", r.support),
                        (true, false) => format!(
                            "如果 {} → {} 位客户，{pct:.0}% 属于此分群",
                            r.conditions.join(" 且 "),
                            r.support
                        ),
                    }
                })
                .collect();
            report::html::Card {
                id: seg.id.clone(),
                name: if zh { seg.name_zh.clone() } else { seg.name_en.clone() },
                name_en: seg.name_en.clone(),
                size: sizes[i],
                client_share: sizes[i] as f64 / total as f64,
                revenue_share: get("revenue_share").unwrap_or(0.0),
                margin: get("median_contribution_margin"),
                medians: row
                    .iter()
                    .filter_map(|(n, v)| n.strip_prefix("median_").map(|f| (f.to_string(), *v)))
                    .collect(),
                distinct: distinct.into_iter().take(4).map(|d| d.1).collect(),
                rules,
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn page(
    s: &Settings,
    files: &[ingest::InputFile],
    validated: &validate::Validated,
    table: &FeatureTable,
    value: &Fitted,
    behaviour: Option<&Fitted>,
    segments: &DataFrame,
    charts: Vec<report::ChartFile>,
    stability: Option<&Stability>,
    run_id: &str,
    created_at: &str,
    warnings: &[Warning],
) -> report::html::Page {
    let rows = validated
        .counts
        .iter()
        .map(|c| {
            let file = files
                .iter()
                .find(|f| f.table == c.table)
                .map(|f| f.path.clone())
                .unwrap_or_default();
            (c.table.name().to_string(), file, c.input, c.accepted, c.rejected)
        })
        .collect();
    let k_table = behaviour
        .map(|b| {
            b.k_scores
                .iter()
                .map(|k| {
                    (
                        k.k,
                        k.silhouette,
                        k.calinski_harabasz,
                        k.davies_bouldin,
                        k.k == b.model.segments.len(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let migration = stability
        .filter(|st| st.previous_run_dir.is_some())
        .map(|st| match s.lang {
            crate::config::Lang::Zh => format!(
                "与 {} 相比：{} 位客户迁移，{} 位新客户，{} 位客户流失（详见 migration.csv）",
                st.previous_run, st.moved, st.new, st.departed
            ),
            crate::config::Lang::En => format!(
                "Since {}: {} clients moved, {} are new, {} departed (see migration.csv).",
                st.previous_run, st.moved, st.new, st.departed
            ),
        });
    report::html::Page {
        lang: s.lang,
        run_id: run_id.to_string(),
        seed: s.seed,
        snapshot: table.snapshot.to_string(),
        created_at: created_at.to_string(),
        rows,
        top_rejects: validate::top_reasons(&validated.rejects, 5),
        disabled: table
            .disabled
            .iter()
            .map(|d| (d.name.clone(), d.reason.clone()))
            .collect(),
        k_table,
        value_cards: cards(s, value, segments),
        behaviour_cards: behaviour.map(|b| cards(s, b, segments)).unwrap_or_default(),
        charts,
        migration,
        warnings: warnings
            .iter()
            .map(|w| match s.lang {
                crate::config::Lang::En => w.en.clone(),
                crate::config::Lang::Zh => w.zh.clone(),
            })
            .collect(),
        plans: s
            .service_plans
            .clone()
            .unwrap_or_else(|| report::html::default_plans(s.lang)),
    }
}

/// Something about the data that the analyst must know to trust the results, in both
/// languages (the summary and manifest in English, the report in the run's language).
#[derive(Debug, Clone)]
pub struct Warning {
    pub en: String,
    pub zh: String,
}

/// Features with one value for everyone, segmentations that could not use all their
/// clusters, and a snapshot that lies beyond the billing data.
fn data_warnings(
    s: &Settings,
    table: &FeatureTable,
    last_invoice: Option<NaiveDate>,
    value: &Fitted,
    behaviour: Option<&Fitted>,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut constant: Vec<&str> = Vec::new();
    for f in [Some(value), behaviour].into_iter().flatten() {
        for (j, name) in f.model.features.iter().enumerate() {
            let column = f.z.column(j);
            let first = column.first().copied().unwrap_or(0.0);
            if column.iter().all(|v| (v - first).abs() < 1e-12) && !constant.contains(&name.as_str()) {
                constant.push(name);
            }
        }
    }
    if !constant.is_empty() {
        let list = constant.join(", ");
        out.push(Warning {
            en: format!("no variation: {list} has the same value for every client, so it cannot tell clients apart"),
            zh: format!("无差异：{list} 对所有客户取值相同，无法区分客户"),
        });
    }
    let tiers = value.model.segments.len();
    if tiers < s.value_k {
        out.push(Warning {
            en: format!(
                "only {tiers} of {} value tiers could be formed: the clients are too alike in the value features",
                s.value_k
            ),
            zh: format!(
                "只形成了 {tiers} 个价值层级（设定 {} 个）：客户在价值特征上过于相似",
                s.value_k
            ),
        });
    }
    if let Some(b) = behaviour {
        let chosen = b.model.segments.len();
        let scored = b.k_scores.iter().map(|k| k.k).min().unwrap_or(chosen);
        if chosen < scored {
            out.push(Warning {
                en: format!("only {chosen} behaviour segments have clients: the clients are too alike in behaviour"),
                zh: format!("只有 {chosen} 个行为分群有客户：客户行为过于相似"),
            });
        }
    }
    if let Some(last) = last_invoice {
        use chrono::Datelike;
        let months = (table.snapshot.year() - last.year()) * 12 + table.snapshot.month() as i32 - last.month() as i32;
        if months > 1 {
            out.push(Warning {
                en: format!(
                    "the snapshot date {} is {months} months after the last invoice ({last}): a few late dates (a typo in a payment date or a work month?) may have moved it; check them, or set snapshot_date",
                    table.snapshot
                ),
                zh: format!(
                    "数据截止日 {} 比最后一张发票（{last}）晚 {months} 个月：可能有个别日期录入有误（付款日期或工作月份），请核对，或在配置中设置 snapshot_date",
                    table.snapshot
                ),
            });
        }
    }
    out
}

fn summary_text(m: &Manifest, dir: &Path) -> String {
    let mut out = format!(
        "clientseg {} · seed {} · snapshot {}\n",
        m.run_id, m.seed, m.snapshot_date
    );
    out.push_str(&rows_text(&m.rows));
    if m.reject_lines > 0 {
        out.push_str(&format!("  most common problems: {}\n", m.top_reject_reasons));
    }
    if m.disabled_features.is_empty() {
        out.push_str("features: all computed\n");
    } else {
        out.push_str("features switched off (input lacks what they need):\n");
        for d in &m.disabled_features {
            out.push_str(&format!("  {}: {}\n", d.name, d.reason));
        }
    }
    let seg_line = |s: &SegmentationSummary| {
        s.segments
            .iter()
            .map(|x| format!("{} {} ({})", x.id, x.name_en, x.size))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    out.push_str(&format!(
        "value tiers (k = {}): {}\n  decision tree hold-out accuracy {:.1}%\n",
        m.value.k,
        seg_line(&m.value),
        m.value.holdout_accuracy * 100.0
    ));
    match &m.behaviour {
        Some(b) => {
            out.push_str(&format!(
                "behaviour segments (k = {} chosen by silhouette, Calinski-Harabasz, Davies-Bouldin):\n",
                b.k
            ));
            out.push_str("     k  silhouette   Calinski-H  Davies-B\n");
            for k in &b.k_scores {
                let mark = if k.k == b.k { "*" } else { " " };
                out.push_str(&format!(
                    "  {mark} {:>2}  {:>10.3}  {:>11.1}  {:>8.3}\n",
                    k.k, k.silhouette, k.calinski_harabasz, k.davies_bouldin
                ));
            }
            out.push_str(&format!(
                "  {}\n  decision tree hold-out accuracy {:.1}%\n",
                seg_line(b),
                b.holdout_accuracy * 100.0
            ));
        }
        None => out.push_str("behaviour segments: skipped, no behaviour feature could be computed from the input\n"),
    }
    if let Some(st) = &m.stability {
        out.push_str(&format!("compared with {}:\n", st.previous_run));
        let line = |v: &[crate::segments::SegmentMatch]| {
            v.iter()
                .map(|x| match (x.status.as_str(), x.distance) {
                    ("kept", Some(d)) => format!("{} kept ({d:.2})", x.id),
                    (status, _) => format!("{} {status}", x.id),
                })
                .collect::<Vec<_>>()
                .join(" · ")
        };
        if !st.behaviour.is_empty() {
            out.push_str(&format!("  behaviour segments: {}\n", line(&st.behaviour)));
        }
        if st.previous_run_dir.is_some() {
            out.push_str(&format!(
                "  clients: {} moved, {} new, {} departed (migration.csv, transitions.csv)\n",
                st.moved, st.new, st.departed
            ));
        }
    }
    for w in &m.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    for skipped in &m.skipped_outputs {
        out.push_str(&format!("not written: {skipped}\n"));
    }
    let total: f64 = m.timings.iter().map(|t| t.seconds).sum();
    out.push_str(&format!("done in {total:.1}s\nresults: {}\n", dir.display()));
    out
}

/// Labels clients with a saved model, without refitting.
pub fn score(model_path: &Path, s: &Settings, opts: &RunOptions) -> Result<ScoreReport, PipelineError> {
    let model = Model::load(model_path)?;
    persist::check_writable(&opts.out_dir, "output folder")?;
    // ingest, validate, features, label, tables
    let mut st = Stages::new(opts.progress, 5);
    let id = run_id("score", s.seed);
    // Due dates are filled with the payment terms the model was fitted with.
    let validation = validate::ValidateParams {
        payment_terms_days: model.feature_settings.payment_terms_days,
        ..s.validation.clone()
    };
    let inputs = st.run("ingest", |_| ingest::read_inputs(&s.input))?;
    let files = inputs.files.clone();
    let validated = st.run("validate", |_| {
        validate_keeping_rejects(inputs, &validation, snapshot_of(s), opts, &id)
    })?;
    let params = FeatureParams {
        snapshot: snapshot_of(s),
        hourly_cost: model.feature_settings.hourly_cost,
        long_term_months: model.feature_settings.long_term_months,
    };
    let table = st.run("features", |_| features::compute(&validated.tables, &params))?;
    let apply = |m: &SegmentModel| -> Result<(Assignment, Array1<usize>), PipelineError> {
        if let Some(f) = m.features.iter().find(|f| !table.is_enabled(f)) {
            return Err(PipelineError::ScoreFeature {
                model: model_path.display().to_string(),
                feature: f.clone(),
            });
        }
        let raw = preprocess::to_matrix(&table.df, &m.features)?;
        let (labels, distances) = m.label(raw.view())?;
        let explained = m.explain(raw.view())?;
        Ok((
            Assignment {
                labels: labels.to_vec(),
                distances: distances.to_vec(),
                segments: m.segments.clone(),
            },
            explained,
        ))
    };
    let (value, value_tree) = st.run("label", |_| apply(&model.value))?;
    let behaviour = match &model.behaviour {
        Some(b) => Some(apply(b)?),
        None => None,
    };
    let run = RunDir::create(&opts.out_dir, &id)?;
    let dir = run.path().to_path_buf();
    st.run("tables", |_| -> Result<(), PipelineError> {
        let mut labels = export::labels_frame(&table.df, &value, behaviour.as_ref().map(|b| &b.0))?;
        export::write_csv(&mut labels, &dir.join("labels.csv"))?;
        export::write_parquet(&mut labels, &dir.join("labels.parquet"))?;
        let mut crm = export::crm_frame(&labels, &s.crm, s.lang, &run.run_id())?;
        export::write_csv(&mut crm, &dir.join("crm_import.csv"))?;
        write_rejects(&validated.rejects, &dir.join("rejects.csv"))?;
        Ok(())
    })?;
    let agreement = |a: &Assignment, t: &Array1<usize>| {
        let same = a.labels.iter().zip(t.iter()).filter(|(x, y)| x == y).count();
        same as f64 / a.labels.len().max(1) as f64
    };
    let mut summary_json = serde_json::json!({
        "run_id": run.run_id(),
        "command": opts.command,
        "created_at": chrono::Local::now().to_rfc3339(),
        "model": model_path.display().to_string(),
        "model_run_id": model.run_id,
        "snapshot_date": table.snapshot.to_string(),
        "inputs": files,
        "rows": validated.counts,
        "versions": persist::versions(),
        "timings": st.timings,
        "value_tree_agreement": agreement(&value, &value_tree),
    });
    if let Some((b, t)) = &behaviour {
        summary_json["behaviour_tree_agreement"] = serde_json::json!(agreement(b, t));
    }
    // Plain JSON values: serialisation cannot fail.
    run.write(
        "manifest.json",
        serde_json::to_string_pretty(&summary_json).expect("json").as_bytes(),
    )?;
    let run_dir = run.commit()?;
    drop(st);
    let mut summary = format!(
        "scored {} clients with model {} (snapshot {})\n",
        table.df.height(),
        model.run_id,
        table.snapshot
    );
    summary.push_str(&rows_text(&validated.counts));
    summary.push_str(&format!(
        "decision tree agrees with the centroid labels for {:.1}% of clients (value)\n",
        agreement(&value, &value_tree) * 100.0
    ));
    summary.push_str(&format!("results: {}\n", run_dir.display()));
    Ok(ScoreReport { run_dir, summary })
}

/// What `score` reports back.
#[derive(Debug, Clone)]
pub struct ScoreReport {
    pub run_dir: PathBuf,
    pub summary: String,
}
