//! Analyses: each fits on the feature table, labels every client, and says what it adds
//! to the run: columns of labels.csv and the CRM import, its part of the saved model, the
//! manifest and the report. Value tiers and behaviour segments are the first two; the
//! next analysis is a new module here and one line in [`configured`].
//!
//! The contract follows linfa's shape: checked parameters go in (built once by the
//! config), [`Analysis::fit`] gives an [`Outcome`], and [`Analysis::apply`] labels new
//! data with a saved model instead of refitting.

pub mod actions;
pub mod allocation;
mod behaviour;
pub mod churn;
pub mod pricing;
mod segmentation;
mod value;

use std::path::Path;

use polars::prelude::Column;
use serde::Serialize;
use thiserror::Error;

pub use actions::{Actions, ActionsParams, RawActions};
pub use allocation::{Allocation, AllocationParams, RawAllocation};
pub use behaviour::{BehaviourParams, BehaviourSegments, RawBehaviour};
pub use churn::{ChurnParams, ChurnRisk, ModelChoice, RawChurn};
pub use pricing::{DefaultHours, GradeCost, Pricing, PricingParams, RawDefaultHours, RawGradeCost, RawPricing};
pub use segmentation::{RawClassifier, SegmentKind, SegmentSummary, Segmentation, SegmentationSummary, TreeParams};
pub use value::{Basis, RawValue, ValueParams, ValueTiers};

use crate::classify::ClassifyError;
use crate::cluster::{ClusterError, KMeansSettings};
use crate::columns::{Catalogue, OutputColumn, TableName};
use crate::features::FeatureTable;
use crate::format::Lang;
use crate::history::History;
use crate::model::{Model, ModelError};
use crate::preprocess::PreprocessError;
use crate::progress::Stages;
use crate::schema::InputTable;

#[derive(Debug, Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("no value features are available: the input lacks what every one of {0:?} needs")]
    NoValueFeatures(Vec<String>),
    #[error("model {model} uses feature '{feature}', which cannot be computed from this input; supply the columns it needs (see docs/data-contract.md), or score with a model fitted on data like this")]
    ScoreFeature { model: String, feature: String },
    #[error("{analysis}: {message}")]
    Failed { analysis: String, message: String },
    #[error("analysis '{analysis}' reads the {item} of analysis '{from}', which {why}; register '{from}' before '{analysis}'")]
    Order {
        analysis: String,
        from: String,
        item: String,
        why: String,
    },
    #[error("analysis '{analysis}' reads the {item} of analysis '{from}', but '{from}' ran without making it")]
    Missing {
        analysis: String,
        from: String,
        item: String,
    },
    #[error("analysis '{analysis}' reads '{item}' of analysis '{from}' without declaring it in its needs()")]
    Undeclared {
        analysis: String,
        from: String,
        item: String,
    },
    #[error("analyses: {0}")]
    Registry(String),
    #[error("cannot write {path}: {message}")]
    Write { path: std::path::PathBuf, message: String },
}

/// The analyses' checked parameters (from `[value]`, `[behaviour]`, `[kmeans]` and
/// `[classifier]` of the config).
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisParams {
    pub value: ValueParams,
    pub behaviour: BehaviourParams,
    pub kmeans: KMeansSettings,
    pub tree: TreeParams,
    pub churn: ChurnParams,
    pub pricing: PricingParams,
    pub allocation: AllocationParams,
    pub actions: ActionsParams,
}

/// The analyses a run performs, in output order. A new analysis is one line here.
pub fn configured(p: &AnalysisParams) -> Vec<Box<dyn Analysis>> {
    in_order(vec![
        Box::new(ValueTiers::new(&p.value, &p.kmeans, &p.tree)),
        Box::new(BehaviourSegments::new(&p.behaviour, &p.kmeans, &p.tree)),
        Box::new(ChurnRisk::new(&p.churn)),
        Box::new(Pricing::new(&p.pricing)),
        Box::new(Allocation::new(&p.allocation)),
        Box::new(Actions::new(&p.actions)),
    ])
}

/// The listed order, except that an analysis waits for those it needs to come first (a
/// need marked [`Need::if_earlier`] does not make it wait): each place goes to the first
/// listed analysis whose needs are placed. Needs that cannot all be met (a circle) keep
/// the listed order, and [`check_registry`] names the one that runs too late.
fn in_order(mut rest: Vec<Box<dyn Analysis>>) -> Vec<Box<dyn Analysis>> {
    let ids: Vec<&'static str> = rest.iter().map(|a| a.id()).collect();
    let mut placed: Vec<Box<dyn Analysis>> = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        let ready = rest.iter().position(|a| {
            a.needs().iter().all(|n| {
                n.if_earlier || n.from == a.id() || !ids.contains(&n.from) || placed.iter().any(|p| p.id() == n.from)
            })
        });
        placed.push(rest.remove(ready.unwrap_or(0)));
    }
    placed
}

/// What an analysis reads from an earlier one: a column of labels, a table, or its
/// segmentation. Declared by [`Analysis::needs`]; the registry checks the order once
/// ([`check_registry`]) and [`Context`] hands out only what was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// The earlier analysis's id.
    pub from: &'static str,
    /// The column or table; a column name ending in `*` is the last column with that
    /// prefix (the longest churn horizon).
    pub name: &'static str,
    pub what: Needed,
    /// The run cannot do without it: `from` must be registered (it may still skip).
    pub required: bool,
    /// `from` makes it only sometimes (a table it writes when the data allows): absent,
    /// it reads as None instead of an error.
    pub sometimes: bool,
    /// Read only when `from` happens to run earlier (it may run later, when it needs
    /// this analysis); otherwise it reads as None.
    pub if_earlier: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    Column,
    Table,
    Segmentation,
}

impl Need {
    pub const fn column(from: &'static str, name: &'static str) -> Need {
        Need {
            from,
            name,
            what: Needed::Column,
            required: false,
            sometimes: false,
            if_earlier: false,
        }
    }

    pub const fn table(from: &'static str, name: &'static str) -> Need {
        Need {
            from,
            name,
            what: Needed::Table,
            required: false,
            sometimes: false,
            if_earlier: false,
        }
    }

    pub const fn segmentation(from: &'static str) -> Need {
        Need {
            from,
            name: "segments",
            what: Needed::Segmentation,
            required: false,
            sometimes: false,
            if_earlier: false,
        }
    }

    pub const fn required(self) -> Need {
        Need { required: true, ..self }
    }

    pub const fn if_earlier(self) -> Need {
        Need {
            if_earlier: true,
            ..self
        }
    }

    pub const fn sometimes(self) -> Need {
        Need {
            sometimes: true,
            ..self
        }
    }

    fn item(&self) -> String {
        match self.what {
            Needed::Column => format!("column {}", self.name),
            Needed::Table => format!("table {}", self.name),
            Needed::Segmentation => "segmentation".into(),
        }
    }
}

/// Checks once, before any work, that each analysis comes after those it reads from,
/// and that every `[analyses.ID]` section of the config belongs to an analysis.
pub fn check_registry(analyses: &[Box<dyn Analysis>], sections: &[String]) -> Result<(), AnalysisError> {
    let ids: Vec<&str> = analyses.iter().map(|a| a.id()).collect();
    for (i, a) in analyses.iter().enumerate() {
        if ids[..i].contains(&a.id()) {
            return Err(AnalysisError::Registry(format!(
                "two analyses have the id '{}'; each needs its own",
                a.id()
            )));
        }
        for need in a.needs() {
            let why = match ids.iter().position(|id| *id == need.from) {
                Some(j) if j < i => continue,
                Some(_) if need.if_earlier && !need.required => continue,
                Some(_) => "runs after it",
                None if !need.required => continue,
                None => "is not among the analyses of this run",
            };
            return Err(AnalysisError::Order {
                analysis: a.id().into(),
                from: need.from.into(),
                item: need.item(),
                why: why.into(),
            });
        }
    }
    if let Some(unknown) = sections.iter().find(|s| !ids.contains(&s.as_str())) {
        return Err(AnalysisError::Registry(format!(
            "the config has a section [analyses.{unknown}], but no analysis of this run is called '{unknown}' (analyses: {}); remove the section or correct its name",
            ids.join(", ")
        )));
    }
    Ok(())
}

/// What an analysis is given.
pub struct Context<'a> {
    /// The id of the analysis given it.
    pub id: &'static str,
    /// What that analysis declared it reads from earlier ones.
    pub needs: Vec<Need>,
    pub table: &'a FeatureTable,
    pub seed: u64,
    /// The run's language, for words an analysis writes into its columns.
    pub lang: Lang,
    /// The clients' history, for analyses that learn from the past.
    pub history: Option<&'a History>,
    /// Per client of `table`: still served at the snapshot (segments are fitted on these).
    pub served: Option<&'a [bool]>,
    /// The outcomes of the analyses before this one, in order.
    pub earlier: &'a [Outcome],
    /// The optional input tables by their schema name (staff, contacts) and the tables
    /// the analyses declared ([`Analysis::inputs`]), validated; absent when the input
    /// has none.
    pub inputs: Vec<(&'a str, &'a polars::prelude::DataFrame)>,
    /// The finished run folders already in the output folder (for an analysis that
    /// checks its earlier predictions against what has happened since).
    pub earlier_runs: &'a [std::path::PathBuf],
}

impl<'a> Context<'a> {
    /// An input table by its schema name ("staff", "contacts") or declared name.
    pub fn input(&self, name: &str) -> Option<&'a polars::prelude::DataFrame> {
        self.inputs.iter().find(|(n, _)| *n == name).map(|(_, df)| *df)
    }

    /// The earlier outcome a declared need reads from; None when that analysis was
    /// skipped or is not registered (allowed for a need that is not required).
    fn earlier_of(&self, what: Needed, from: &str, name: &str) -> Result<Option<(&'a Outcome, Need)>, AnalysisError> {
        let Some(&need) = self
            .needs
            .iter()
            .find(|n| n.what == what && n.from == from && n.name == name)
        else {
            return Err(AnalysisError::Undeclared {
                analysis: self.id.into(),
                from: from.into(),
                item: name.into(),
            });
        };
        match self.earlier.iter().find(|o| o.id == from) {
            Some(o) if o.skipped.is_none() => Ok(Some((o, need))),
            Some(_) => Ok(None),
            None if need.required => Err(AnalysisError::Order {
                analysis: self.id.into(),
                from: from.into(),
                item: need.item(),
                why: "has not run before it".into(),
            }),
            None => Ok(None),
        }
    }

    /// What was looked up, or why it is not there: None when the need allows it.
    fn found<T>(&self, found: Option<T>, need: Need, item: String) -> Result<Option<T>, AnalysisError> {
        match (found, need.sometimes) {
            (Some(x), _) => Ok(Some(x)),
            (None, true) => Ok(None),
            (None, false) => Err(AnalysisError::Missing {
                analysis: self.id.into(),
                from: need.from.into(),
                item,
            }),
        }
    }

    /// A labels column of an earlier analysis, as declared in [`Analysis::needs`]: None
    /// when that analysis was skipped, an error when it ran without making the column.
    pub fn column(&self, from: &str, name: &str) -> Result<Option<&'a Column>, AnalysisError> {
        let Some((o, need)) = self.earlier_of(Needed::Column, from, name)? else {
            return Ok(None);
        };
        let found = match name.strip_suffix('*') {
            Some(prefix) => o.columns.iter().filter(|c| c.name().starts_with(prefix)).last(),
            None => o.columns.iter().find(|c| c.name().as_str() == name),
        };
        self.found(found, need, format!("column {name}"))
    }

    /// A table of an earlier analysis (for people or the run folder), as declared.
    pub fn table(&self, from: &str, name: &str) -> Result<Option<&'a polars::prelude::DataFrame>, AnalysisError> {
        let Some((o, need)) = self.earlier_of(Needed::Table, from, name)? else {
            return Ok(None);
        };
        let found = o
            .exports
            .iter()
            .chain(&o.tables)
            .find(|(n, _)| n == name)
            .map(|(_, df)| df);
        self.found(found, need, format!("table {name}"))
    }

    /// The segmentation of an earlier analysis, as declared.
    pub fn segmentation(&self, from: &str) -> Result<Option<&'a Segmentation>, AnalysisError> {
        let Some((o, need)) = self.earlier_of(Needed::Segmentation, from, "segments")? else {
            return Ok(None);
        };
        self.found(o.segmentation.as_ref(), need, "segmentation".into())
    }
}

/// A text column as one chunk of `n` values, read in place (nulls where the column is
/// missing or of another length): at 1M clients, copying text columns into owned strings
/// was a good part of the action list's time.
pub fn chunk(c: Option<&Column>, n: usize) -> polars::prelude::StringChunked {
    use polars::prelude::*;
    c.and_then(|c| c.cast(&DataType::String).ok())
        .and_then(|c| c.str().ok().map(|s| s.rechunk().into_owned()))
        .filter(|s| s.len() == n)
        .unwrap_or_else(|| StringChunked::full_null("".into(), n))
}

/// The cells of a text column ("" where empty).
pub fn cells(ca: &polars::prelude::StringChunked) -> Vec<&str> {
    ca.iter().map(|v| v.unwrap_or("")).collect()
}

/// A text column read in place, cell by row ("" where empty or past the end): at a
/// million rows, a vector of its cells cost more in fresh memory than the lookups.
#[derive(Clone, Copy)]
pub struct TextView<'a>(&'a polars::prelude::StringChunked);

impl<'a> TextView<'a> {
    /// `ca`, best in one piece (as [`chunk`] leaves it).
    pub fn of(ca: &'a polars::prelude::StringChunked) -> TextView<'a> {
        TextView(ca)
    }

    pub fn get(&self, i: usize) -> &'a str {
        match i < self.0.len() {
            true => self.0.get(i).unwrap_or(""),
            false => "",
        }
    }
}

/// An analysis's section of the report, in both languages.
#[derive(Debug, Clone)]
pub struct Section {
    /// The section's HTML id.
    pub id: String,
    pub title: (String, String),
    /// Lines of text, (English, Chinese).
    pub lines: Vec<(String, String)>,
    pub tables: Vec<SectionTable>,
}

/// A table of a report section; cells are text already.
#[derive(Debug, Clone)]
pub struct SectionTable {
    pub caption: (String, String),
    pub header: Vec<(String, String)>,
    /// Cells in both languages where they differ.
    pub rows: Vec<Vec<(String, String)>>,
}

/// A line chart of a report section, drawn by the report in the run's language.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// File name without extension (charts/STEM.svg).
    pub stem: String,
    pub title: (String, String),
    pub x_label: (String, String),
    pub y_label: (String, String),
    pub series: Vec<ChartSeries>,
    /// Draw y = x (a perfectly calibrated or random model).
    pub diagonal: bool,
    /// Steps instead of straight lines between points (survival curves).
    pub steps: bool,
}

#[derive(Debug, Clone)]
pub struct ChartSeries {
    pub name: (String, String),
    pub points: Vec<(f64, f64)>,
    /// Points only, no line between them (a scatter).
    pub dots: bool,
}

/// What a fitted analysis adds to the run.
pub struct Outcome {
    pub id: &'static str,
    /// Named segments whose ids are kept across runs (value tiers, behaviour segments).
    pub segmentation: Option<Segmentation>,
    /// Why the analysis found nothing to do, when the input does not allow it.
    pub skipped: Option<String>,
    /// Columns of labels.csv, one value per client in feature-table order (besides the
    /// segmentation's own).
    pub columns: Vec<Column>,
    /// What it declares about the columns it adds (to labels and to its tables): words,
    /// the CRM import, the push, migration.
    pub declared: Vec<OutputColumn>,
    /// The names of its tables for people (sheet names).
    pub table_names: Vec<TableName>,
    /// Task tables this analysis pushes from its exports.
    pub tasks: Vec<crate::columns::TaskTable>,
    pub section: Option<Section>,
    /// One line for the run summary, (English, Chinese).
    pub headline: Option<(String, String)>,
    /// Its part of the manifest.
    pub summary: Option<serde_json::Value>,
    /// Its part of the model file: what `apply` needs to label new data.
    pub saved: Option<serde_json::Value>,
    /// Charts of its report section.
    pub charts: Vec<LineChart>,
    /// Further tables of the run folder, written as `NAME.parquet`.
    pub tables: Vec<(String, polars::prelude::DataFrame)>,
    /// Tables for people: `NAME.csv`, `NAME.parquet` and `NAME.xlsx` (headers and
    /// categories in the run's language).
    pub exports: Vec<(String, polars::prelude::DataFrame)>,
    /// Files for other systems to import: `NAME.csv` only (crm_tasks.csv).
    pub imports: Vec<(String, polars::prelude::DataFrame)>,
    /// Pages it writes into a folder of the run (the accountants' action pages).
    pub pages: Option<Pages>,
}

/// Files an analysis writes into a folder of its own in the run, while the tables are
/// written: `write(folder)` returns the files' paths within the run folder.
pub struct Pages {
    /// The folder's name in the run folder.
    pub folder: String,
    #[allow(clippy::type_complexity)]
    pub write: Box<dyn Fn(&Path) -> Result<Vec<String>, AnalysisError> + Send + Sync>,
}

impl Outcome {
    /// An outcome with nothing in it yet.
    pub fn empty(id: &'static str) -> Outcome {
        Outcome {
            id,
            segmentation: None,
            skipped: None,
            columns: Vec::new(),
            declared: Vec::new(),
            table_names: Vec::new(),
            tasks: Vec::new(),
            section: None,
            headline: None,
            summary: None,
            saved: None,
            charts: Vec::new(),
            tables: Vec::new(),
            exports: Vec::new(),
            imports: Vec::new(),
            pages: None,
        }
    }
}

pub trait Analysis: Send + Sync {
    /// Its id in the manifest and the model file ("value", "behaviour").
    fn id(&self) -> &'static str;

    /// Its name for people, (English, Chinese): the run summary says which was skipped.
    fn name(&self) -> (&'static str, &'static str) {
        (self.id(), self.id())
    }

    /// Input tables of its own, besides the built-in ones: read from the input folder,
    /// validated (their reject lines join the run's) and handed out by
    /// [`Context::input`]. None by default.
    fn inputs(&self) -> Vec<InputTable> {
        Vec::new()
    }

    /// What it reads from earlier analyses (none by default).
    fn needs(&self) -> Vec<Need> {
        Vec::new()
    }

    /// Fits on the feature table and labels every client.
    fn fit(&self, ctx: &Context, stages: &mut Stages) -> Result<Outcome, AnalysisError>;

    /// Labels new data with a saved model (`score`). An analysis that saves nothing
    /// fits again, which is what its rules give anyway.
    fn apply(
        &self,
        ctx: &Context,
        stages: &mut Stages,
        model: &Model,
        model_path: &Path,
    ) -> Result<Outcome, AnalysisError> {
        let _ = (model, model_path);
        self.fit(ctx, stages)
    }
}

/// What the outcomes declared, in their order (a segmentation's own columns first).
pub fn catalogue(outcomes: &[Outcome]) -> Catalogue {
    let mut c = Catalogue::default();
    for o in outcomes {
        if let Some(s) = &o.segmentation {
            c.extend(&s.kind.declared(), &[]);
        }
        c.extend(&o.declared, &o.table_names);
        c.tasks.extend(o.tasks.iter().cloned());
    }
    c
}

/// The segmentation of a kind among the outcomes.
pub fn segmentation(outcomes: &[Outcome], kind: SegmentKind) -> Option<&Segmentation> {
    outcomes
        .iter()
        .filter_map(|o| o.segmentation.as_ref())
        .find(|s| s.kind == kind)
}

/// Something about the data that the analyst must know to trust the results, in both
/// languages (the summary and manifest in English, the report in the run's language).
#[derive(Debug, Clone)]
pub struct Warning {
    pub en: String,
    pub zh: String,
}

/// Features with one value for everyone and segmentations that could not use all the
/// clusters asked for.
pub fn warnings(outcomes: &[Outcome], p: &AnalysisParams) -> Vec<Warning> {
    let value_k = p.value.k;
    let mut out = Vec::new();
    let mut constant: Vec<&str> = Vec::new();
    for f in outcomes.iter().filter_map(|o| o.segmentation.as_ref()) {
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
    if let Some(v) = segmentation(outcomes, SegmentKind::Value) {
        let tiers = v.model.segments.len();
        if tiers < value_k {
            out.push(Warning {
                en: format!(
                    "only {tiers} of {value_k} value tiers could be formed: the clients are too alike in the value features"
                ),
                zh: format!("只形成了 {tiers} 个价值层级（设定 {value_k} 个）：客户在价值特征上过于相似"),
            });
        }
    }
    if let Some(b) = segmentation(outcomes, SegmentKind::Behaviour) {
        let chosen = b.model.segments.len();
        let scored = b.k_scores.iter().map(|k| k.k).min().unwrap_or(chosen);
        if chosen < scored {
            out.push(Warning {
                en: format!("only {chosen} behaviour segments have clients: the clients are too alike in behaviour"),
                zh: format!("只有 {chosen} 个行为分群有客户：客户行为过于相似"),
            });
        }
    }
    out
}
