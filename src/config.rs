//! Configuration: read once from TOML (plus command-line overrides), checked once into
//! [`Settings`]. Every later stage trusts a `Settings` without re-validating it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::analysis::allocation::{Limits, Weights};
pub use crate::analysis::{
    ActionsParams, AllocationParams, AnalysisParams, BehaviourParams, ChurnParams, DefaultHours, GradeCost,
    ModelChoice, PricingParams, TreeParams, ValueParams,
};
pub use crate::cluster::{KMeansBackend, KMeansSettings};
use crate::export::crm_template;
pub use crate::export::{CrmSettings, CRM_SOURCES};
pub use crate::features::FeatureConfig;
use crate::features::{self, FeatureGroup};
pub use crate::format::Lang;
pub use crate::history::{HistoryParams, LeaveDefinition};
pub use crate::ingest::{discover, find_table_file, Encoding, InputParams, TableSource};
pub use crate::output::OutputParams;
pub use crate::report::ServicePlan;
pub use crate::schema::Table;
pub use crate::stability::{Previous, StabilityParams};
pub use crate::validate::ValidateParams;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {key} {rule} (got {value})")]
    Invalid { key: String, rule: String, value: String },
    #[error(transparent)]
    Input(#[from] crate::ingest::IngestError),
    #[error("config: unknown feature '{name}' in {key}; known features: {known}")]
    UnknownFeature { key: String, name: String, known: String },
    #[error("config: [columns.{table}] maps unknown column '{column}'; known columns: {known}")]
    UnknownColumn {
        table: String,
        column: String,
        known: String,
    },
    #[error("config: snapshot_date '{0}' is not a date; write it as YYYY-MM-DD")]
    SnapshotDate(String),
    #[error("config: [{section}]: {message}")]
    Section { section: String, message: String },
}

/// Raw configuration as written in `clientseg.toml`. Every field has a default, so an
/// empty file is a valid configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub seed: Option<u64>,
    pub snapshot_date: Option<String>,
    pub lang: Option<String>,
    pub input: RawInput,
    pub columns: BTreeMap<String, BTreeMap<String, String>>,
    pub features: RawFeatures,
    pub value: RawValue,
    pub behaviour: RawBehaviour,
    pub kmeans: RawKMeans,
    pub classifier: RawClassifier,
    pub output: RawOutput,
    pub crm: RawCrm,
    pub stability: RawStability,
    pub churn: RawChurn,
    pub pricing: RawPricing,
    pub allocation: RawAllocation,
    pub actions: RawActions,
    /// Service plans per tier or segment (服务方案); the built-in ones when absent.
    pub service_plans: Option<Vec<ServicePlan>>,
    /// Sections of further analyses, `[analyses.ID]`: each is read and checked by the
    /// analysis called ID ([`Settings::section`]).
    pub analyses: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawChurn {
    /// Fit the churn-risk models (default true).
    pub enabled: Option<bool>,
    /// "auto" (contract_end when the archive records any, else lapse), "contract_end"
    /// or "lapse".
    pub definition: Option<String>,
    /// Months without invoice or work after which a client has lapsed (default 3).
    pub inactive_months: Option<i64>,
    /// Months ahead the risk is for (default [3, 6]).
    pub horizons: Option<Vec<i64>>,
    /// Rolling-origin test months (default 6; fewer when the history is short).
    pub test_months: Option<usize>,
    /// Whole client histories the models learn from (default 25,000; a seeded sample above).
    pub sample_clients: Option<usize>,
    /// Snapshot rows one model learns from (default 150,000; a seeded sample above).
    pub max_train_rows: Option<usize>,
    /// The rule baseline flags arrears above this many months of fees (default 2).
    pub arrears_months: Option<f64>,
    /// Risk of the first horizon from which a client is medium / high risk
    /// (default [0.05, 0.15]: a 15% chance of leaving within 3 months is several times the usual).
    pub bands: Option<Vec<f64>>,
    /// "auto" (the better-validated one), "logistic" or "boosted".
    pub model: Option<String>,
    /// Write every monthly snapshot to churn_snapshots.parquet (default false).
    pub export_snapshots: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPricing {
    /// Work out cost to serve and suggest fees (default true).
    pub enabled: Option<bool>,
    /// Margin rate below which a client is under-priced (default 0.30).
    pub target_margin: Option<f64>,
    /// Largest rise per review, as a share of the fee (default 0.30).
    pub max_increase: Option<f64>,
    /// Suggested fees are multiples of this, in CNY (default 50).
    pub fee_step: Option<f64>,
    /// Also under-priced when the fee per hour is this share below the peers' (default 0.5: half).
    pub rate_tolerance: Option<f64>,
    /// Clients in a peer group (default 50).
    pub peers: Option<usize>,
    /// Hours a month by rule of thumb, where neither logged nor estimable.
    pub default_hours: RawDefaultHours,
    /// Cost of an hour per grade of the client's accountant (else features.hourly_cost).
    pub hourly_cost: Option<RawGradeCost>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDefaultHours {
    pub zero_declaration: Option<f64>,
    pub small_scale: Option<f64>,
    pub general: Option<f64>,
    pub chase: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGradeCost {
    pub junior: f64,
    pub senior: f64,
    pub lead: f64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAllocation {
    /// Plan who serves whom when there is a staff table (default true).
    pub enabled: Option<bool>,
    /// Share of an accountant's capacity the plan may fill (default 0.85).
    pub max_utilisation: Option<f64>,
    /// Hours a month of staff without capacity_hours (default 160).
    pub default_capacity: Option<f64>,
    /// Weight per client that changes accountant (default 1).
    pub continuity_weight: Option<f64>,
    /// Weight per client placed outside its team (default 0.1).
    pub team_weight: Option<f64>,
    /// Weight per percentage point of the busiest accountant's utilisation (default 0.05).
    pub balance_weight: Option<f64>,
    /// Firms with more clients are planned team by team (default 20,000).
    pub block_clients: Option<usize>,
    /// The skill general-taxpayer clients need (default "general_taxpayer"; 一般纳税人 also counts).
    pub general_skill: Option<String>,
    /// The skill international clients need (default "international"; 涉外 also counts).
    pub international_skill: Option<String>,
    /// Value tiers served only by senior or lead accountants (default ["V1"]).
    pub senior_tiers: Option<Vec<String>>,
    /// Handovers a month, firm-wide (default 0: no firm-wide limit).
    pub max_moves_per_month: Option<i64>,
    /// Handovers a month one accountant gives or takes (default 10; 0: no limit).
    pub max_handovers_per_accountant: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawActions {
    /// Write the monthly action list (default true).
    pub enabled: Option<bool>,
    /// Months between regular contacts per tier (default: from [[service_plans]] cycles,
    /// else V1 = 1, V2 = 3, V3 = 6).
    pub contact_months: Option<BTreeMap<String, u32>>,
    /// Collect arrears above this many months of fees (default 1) ...
    pub arrears_months: Option<f64>,
    /// ... and above this amount in CNY (default 100).
    pub arrears_min: Option<f64>,
    /// The list holds actions due within this many days of the snapshot (default 31).
    pub horizon_days: Option<i64>,
    /// Chase late documents this many days before the filing deadline (default 5).
    pub chase_days_before: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawStability {
    /// "auto" (models/latest.json when there is one), "none", or a run folder or model file.
    pub previous: Option<String>,
    /// Largest centroid distance (in standard deviations) at which a segment continues a
    /// previous one.
    pub match_threshold: Option<f64>,
    /// A client stays in its previous segment while that centroid is at most this much
    /// farther than the nearest one (0.1 = 10%), so labels do not flicker at boundaries.
    pub hysteresis: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCrm {
    /// "generic" or "zoho".
    pub template: Option<String>,
    /// [header, source] pairs replacing the template's columns, in order.
    pub columns: Option<Vec<(String, String)>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawInput {
    pub dir: Option<PathBuf>,
    pub clients: Option<PathBuf>,
    pub billing: Option<PathBuf>,
    pub activity: Option<PathBuf>,
    pub staff: Option<PathBuf>,
    pub contacts: Option<PathBuf>,
    pub max_reject_share: Option<f64>,
    /// CSV text encoding: "auto" (UTF-8, else GBK/GB18030), "utf-8", "gb18030" (or "gbk"),
    /// or "latin-1" (Windows-1252).
    pub encoding: Option<String>,
    /// The worksheet each table is in, for a workbook of several sheets.
    pub sheets: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFeatures {
    pub hourly_cost: Option<f64>,
    pub payment_terms_days: Option<i64>,
    pub long_term_months: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawValue {
    pub k: Option<usize>,
    pub features: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawBehaviour {
    pub k_min: Option<usize>,
    pub k_max: Option<usize>,
    pub k: Option<usize>,
    pub features: Option<Vec<String>>,
    pub silhouette_sample: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawKMeans {
    pub backend: Option<KMeansBackend>,
    pub n_runs: Option<usize>,
    pub max_iterations: Option<u64>,
    pub tolerance: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawClassifier {
    pub max_depth: Option<usize>,
    pub test_share: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawOutput {
    pub dir: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    pub xlsx_max_rows: Option<usize>,
}

/// Checked configuration. Built only by [`Settings::from_raw`].
///
/// It is composed of the stages' own checked parameters; nothing patches it afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub seed: u64,
    pub snapshot_date: Option<String>,
    pub lang: Lang,
    pub input: InputParams,
    pub validation: ValidateParams,
    pub features: FeatureConfig,
    pub analyses: AnalysisParams,
    pub history: HistoryParams,
    pub stability: StabilityParams,
    pub output: OutputParams,
    pub crm: CrmSettings,
    pub service_plans: Option<Vec<ServicePlan>>,
    /// The `[analyses.ID]` sections, as written.
    pub sections: BTreeMap<String, toml::Table>,
}

impl Settings {
    /// An analysis's own section `[analyses.ID]` as its raw parameters (their defaults
    /// when the section is absent). An unknown key or a wrong type is an error naming
    /// the section.
    pub fn section<R: serde::de::DeserializeOwned + Default>(&self, id: &str) -> Result<R, ConfigError> {
        match self.sections.get(id) {
            None => Ok(R::default()),
            Some(t) => toml::Value::Table(t.clone())
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Section {
                    section: format!("analyses.{id}"),
                    message: e.message().trim().to_string(),
                }),
        }
    }

    /// The ids of the `[analyses.ID]` sections.
    pub fn section_ids(&self) -> Vec<String> {
        self.sections.keys().cloned().collect()
    }
}

pub const DEFAULT_SEED: u64 = 42;

/// A parameter outside its allowed values: `key` as written in the config.
pub fn invalid(key: &str, rule: &str, value: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        rule: rule.into(),
        value: value.to_string(),
    }
}

impl RawConfig {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

impl Settings {
    /// Checks a raw configuration. Relative paths are taken from `base` (the config
    /// file's folder).
    pub fn from_raw(raw: &RawConfig, base: &Path) -> Result<Settings, ConfigError> {
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let dir = resolve(raw.input.dir.as_deref().unwrap_or(Path::new(".")));

        let encoding = match raw
            .input
            .encoding
            .as_deref()
            .unwrap_or("auto")
            .to_ascii_lowercase()
            .as_str()
        {
            "auto" => Encoding::Auto,
            "utf-8" | "utf8" => Encoding::Utf8,
            "gbk" | "gb2312" | "gb18030" => Encoding::Gb18030,
            "latin-1" | "latin1" | "iso-8859-1" | "windows-1252" | "cp1252" => Encoding::Latin1,
            other => {
                return Err(invalid(
                    "input.encoding",
                    "must be \"auto\", \"utf-8\", \"gb18030\" or \"latin-1\"",
                    other,
                ))
            }
        };
        // Tables not named in the config are looked for in the folder, by name or by headers.
        let explicit = |table: Table| match table {
            Table::Clients => raw.input.clients.as_deref(),
            Table::Billing => raw.input.billing.as_deref(),
            Table::Activity => raw.input.activity.as_deref(),
            Table::Staff => raw.input.staff.as_deref(),
            Table::Contacts => raw.input.contacts.as_deref(),
        };
        let unnamed: Vec<Table> = Table::all().filter(|t| explicit(*t).is_none()).collect();
        let found = if unnamed.is_empty() || !dir.is_dir() {
            Vec::new()
        } else {
            discover(&dir, &unnamed, encoding)?
        };
        for key in raw.input.sheets.keys() {
            if Table::from_name(key).is_none() {
                let names: Vec<&str> = Table::all().map(Table::name).collect();
                return Err(invalid(
                    "input.sheets",
                    &format!("must name one of {}", names.join(", ")),
                    key,
                ));
            }
        }
        let mut sources = Vec::new();
        for table in Table::all() {
            let hit = found.iter().find(|f| f.table == table);
            // A table's file is taken from input.dir unless its path is absolute; a path
            // that is only there from the config's folder (as configs had it) still works.
            let path = match explicit(table) {
                Some(p) if p.is_absolute() => Some(p.to_path_buf()),
                Some(p) if !dir.join(p).exists() && resolve(p).exists() => Some(resolve(p)),
                Some(p) => Some(dir.join(p)),
                None => hit.map(|f| f.path.clone()),
            };
            let sheet = raw
                .input
                .sheets
                .get(table.name())
                .cloned()
                .or_else(|| hit.and_then(|f| f.sheet.clone()));
            let mapping = raw.columns.get(table.name()).cloned().unwrap_or_default();
            for column in mapping.keys() {
                if !table.columns().contains(&column.as_str()) {
                    return Err(ConfigError::UnknownColumn {
                        table: table.name().into(),
                        column: column.clone(),
                        known: table.columns().join(", "),
                    });
                }
            }
            sources.push(TableSource {
                table,
                path,
                sheet,
                mapping,
            });
        }
        for key in raw.columns.keys() {
            if Table::from_name(key).is_none() {
                let names: Vec<&str> = Table::all().map(Table::name).collect();
                return Err(invalid("columns", &format!("must be one of {}", names.join(", ")), key));
            }
        }

        let max_reject_share = raw.input.max_reject_share.unwrap_or(0.05);
        if !(0.0..=1.0).contains(&max_reject_share) {
            return Err(invalid(
                "input.max_reject_share",
                "must be between 0 and 1",
                max_reject_share,
            ));
        }
        let hourly_cost = raw.features.hourly_cost.unwrap_or(60.0);
        if !(hourly_cost >= 0.0 && hourly_cost.is_finite()) {
            return Err(invalid("features.hourly_cost", "must be a number >= 0", hourly_cost));
        }
        let payment_terms_days = raw.features.payment_terms_days.unwrap_or(15);
        if !(0..=365).contains(&payment_terms_days) {
            return Err(invalid(
                "features.payment_terms_days",
                "must be between 0 and 365",
                payment_terms_days,
            ));
        }
        let long_term_months = raw.features.long_term_months.unwrap_or(12);
        if long_term_months < 1 {
            return Err(invalid(
                "features.long_term_months",
                "must be at least 1",
                long_term_months,
            ));
        }

        let value_k = raw.value.k.unwrap_or(3);
        if !(2..=10).contains(&value_k) {
            return Err(invalid("value.k", "must be between 2 and 10", value_k));
        }
        let (k_min, k_max) = match raw.behaviour.k {
            Some(k) => (k, k),
            None => (raw.behaviour.k_min.unwrap_or(2), raw.behaviour.k_max.unwrap_or(8)),
        };
        if k_min < 2 || k_max < k_min || k_max > 20 {
            return Err(invalid(
                "behaviour.k_min/k_max",
                "must satisfy 2 <= k_min <= k_max <= 20",
                format!("{k_min}..={k_max}"),
            ));
        }
        let value_features = check_features("value.features", raw.value.features.clone(), FeatureGroup::Value)?;
        let behaviour_features = check_features(
            "behaviour.features",
            raw.behaviour.features.clone(),
            FeatureGroup::Behaviour,
        )?;
        let behaviour_defaulted = raw.behaviour.features.is_none();
        let silhouette_sample = raw.behaviour.silhouette_sample.unwrap_or(4000);
        if silhouette_sample < 100 {
            return Err(invalid(
                "behaviour.silhouette_sample",
                "must be at least 100",
                silhouette_sample,
            ));
        }
        let kmeans = KMeansSettings {
            backend: raw.kmeans.backend.unwrap_or_default(),
            n_runs: raw.kmeans.n_runs.unwrap_or(8),
            max_iterations: raw.kmeans.max_iterations.unwrap_or(300),
            tolerance: raw.kmeans.tolerance.unwrap_or(1e-4),
        };
        // Excel opens 1,048,576 rows at most, and a sheet of a million clients takes longer
        // to write (about 35 s) than the whole rest of the run.
        let xlsx_max_rows = raw.output.xlsx_max_rows.unwrap_or(100_000);
        if xlsx_max_rows > 1_048_575 {
            return Err(invalid(
                "output.xlsx_max_rows",
                "must be at most 1048575 (Excel's row limit)",
                xlsx_max_rows,
            ));
        }
        if kmeans.n_runs == 0 || kmeans.n_runs > 100 {
            return Err(invalid("kmeans.n_runs", "must be between 1 and 100", kmeans.n_runs));
        }
        if kmeans.max_iterations == 0 {
            return Err(invalid(
                "kmeans.max_iterations",
                "must be at least 1",
                kmeans.max_iterations,
            ));
        }
        if !(kmeans.tolerance > 0.0) {
            return Err(invalid("kmeans.tolerance", "must be greater than 0", kmeans.tolerance));
        }
        let tree_max_depth = raw.classifier.max_depth.unwrap_or(4);
        if !(1..=12).contains(&tree_max_depth) {
            return Err(invalid(
                "classifier.max_depth",
                "must be between 1 and 12",
                tree_max_depth,
            ));
        }
        let test_share = raw.classifier.test_share.unwrap_or(0.2);
        if !(0.05..=0.5).contains(&test_share) {
            return Err(invalid(
                "classifier.test_share",
                "must be between 0.05 and 0.5",
                test_share,
            ));
        }
        if let Some(s) = &raw.snapshot_date {
            if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err() {
                return Err(ConfigError::SnapshotDate(s.clone()));
            }
        }
        let lang = match raw.lang.as_deref().unwrap_or("en") {
            "en" => Lang::En,
            "zh" => Lang::Zh,
            other => return Err(invalid("lang", "must be \"en\" or \"zh\"", other)),
        };
        let template = raw.crm.template.clone().unwrap_or_else(|| "generic".into());
        let Some((columns, tag_separator)) = crm_template(&template) else {
            return Err(invalid("crm.template", "must be \"generic\" or \"zoho\"", template));
        };
        let columns: Vec<(String, String)> = match &raw.crm.columns {
            Some(c) => c.clone(),
            None => columns.iter().map(|(h, s)| (h.to_string(), s.to_string())).collect(),
        };
        if let Some((_, bad)) = columns.iter().find(|(_, src)| !CRM_SOURCES.contains(&src.as_str())) {
            return Err(invalid(
                "crm.columns",
                &format!("sources must be one of {}", CRM_SOURCES.join(", ")),
                bad,
            ));
        }
        let crm = CrmSettings {
            template,
            columns,
            tag_separator: tag_separator.to_string(),
        };
        let previous = match raw.stability.previous.as_deref().unwrap_or("auto") {
            "auto" => Previous::Auto,
            "none" => Previous::None,
            path => Previous::Path(resolve(Path::new(path))),
        };
        let match_threshold = raw.stability.match_threshold.unwrap_or(1.0);
        if !(match_threshold > 0.0) {
            return Err(invalid(
                "stability.match_threshold",
                "must be greater than 0",
                match_threshold,
            ));
        }
        let hysteresis = raw.stability.hysteresis.unwrap_or(0.1);
        if !(0.0..=1.0).contains(&hysteresis) {
            return Err(invalid("stability.hysteresis", "must be between 0 and 1", hysteresis));
        }
        let (churn, history) = check_churn(&raw.churn)?;
        let pricing = check_pricing(&raw.pricing, hourly_cost)?;
        let allocation = check_allocation(&raw.allocation)?;
        let actions = check_actions(&raw.actions, raw.service_plans.as_deref())?;
        Ok(Settings {
            seed: raw.seed.unwrap_or(DEFAULT_SEED),
            snapshot_date: raw.snapshot_date.clone(),
            lang,
            input: InputParams {
                dir: dir.clone(),
                sources,
                encoding,
            },
            validation: ValidateParams {
                max_reject_share,
                payment_terms_days,
            },
            features: FeatureConfig {
                hourly_cost,
                long_term_months,
            },
            analyses: AnalysisParams {
                value: ValueParams {
                    k: value_k,
                    features: value_features,
                },
                behaviour: BehaviourParams {
                    k_range: (k_min, k_max),
                    fallback: if behaviour_defaulted {
                        features::fallback_features()
                    } else {
                        Vec::new()
                    },
                    features: behaviour_features,
                    silhouette_sample,
                },
                kmeans,
                churn,
                pricing,
                allocation,
                actions,
                tree: TreeParams {
                    max_depth: tree_max_depth,
                    test_share,
                },
            },
            output: OutputParams {
                dir: resolve(raw.output.dir.as_deref().unwrap_or(Path::new("runs"))),
                models_dir: resolve(raw.output.models_dir.as_deref().unwrap_or(Path::new("models"))),
                xlsx_max_rows,
            },
            crm,
            history,
            stability: StabilityParams {
                previous,
                match_threshold,
                hysteresis,
            },
            service_plans: raw.service_plans.clone(),
            sections: raw.analyses.clone(),
        })
    }
}

fn share(key: &str, v: Option<f64>, default: f64, lo: f64, hi: f64) -> Result<f64, ConfigError> {
    let v = v.unwrap_or(default);
    if !(v >= lo && v <= hi) {
        return Err(invalid(key, &format!("must be between {lo} and {hi}"), v));
    }
    Ok(v)
}

fn check_pricing(raw: &RawPricing, hourly_cost: f64) -> Result<PricingParams, ConfigError> {
    let d = &raw.default_hours;
    let peers = raw.peers.unwrap_or(50);
    if !(5..=1000).contains(&peers) {
        return Err(invalid("pricing.peers", "must be between 5 and 1000", peers));
    }
    let by_grade = match &raw.hourly_cost {
        Some(g) => {
            for (k, v) in [("junior", g.junior), ("senior", g.senior), ("lead", g.lead)] {
                if !(v >= 0.0 && v.is_finite()) {
                    return Err(invalid(&format!("pricing.hourly_cost.{k}"), "must be a number >= 0", v));
                }
            }
            Some(GradeCost {
                junior: g.junior,
                senior: g.senior,
                lead: g.lead,
            })
        }
        None => None,
    };
    Ok(PricingParams {
        enabled: raw.enabled.unwrap_or(true),
        target_margin: share("pricing.target_margin", raw.target_margin, 0.30, 0.0, 0.95)?,
        max_increase: share("pricing.max_increase", raw.max_increase, 0.30, 0.0, 5.0)?,
        fee_step: share("pricing.fee_step", raw.fee_step, 50.0, 0.0, 10_000.0)?,
        rate_tolerance: share("pricing.rate_tolerance", raw.rate_tolerance, 0.5, 0.0, 0.95)?,
        peers,
        default_hours: DefaultHours {
            zero_declaration: share(
                "pricing.default_hours.zero_declaration",
                d.zero_declaration,
                0.17,
                0.0,
                200.0,
            )?,
            small_scale: share("pricing.default_hours.small_scale", d.small_scale, 0.5, 0.0, 200.0)?,
            general: share("pricing.default_hours.general", d.general, 1.5, 0.0, 200.0)?,
            chase: share("pricing.default_hours.chase", d.chase, 0.5, 0.0, 200.0)?,
        },
        hourly_cost,
        by_grade,
    })
}

/// A monthly limit: a whole number, 0 for none.
fn limit(key: &str, v: Option<i64>, default: usize) -> Result<Option<usize>, ConfigError> {
    match v {
        None => Ok(Some(default).filter(|&d| d > 0)),
        Some(v) if v < 0 => Err(invalid(key, "must be a whole number, 0 for no limit", v)),
        Some(v) => Ok(Some(v as usize).filter(|&d| d > 0)),
    }
}

fn check_allocation(raw: &RawAllocation) -> Result<AllocationParams, ConfigError> {
    let block_clients = raw.block_clients.unwrap_or(20_000);
    if block_clients < 100 {
        return Err(invalid(
            "allocation.block_clients",
            "must be at least 100",
            block_clients,
        ));
    }
    let senior_tiers = raw.senior_tiers.clone().unwrap_or_else(|| vec!["V1".into()]);
    if let Some(bad) = senior_tiers
        .iter()
        .find(|t| !(t.len() >= 2 && t.starts_with('V') && t[1..].chars().all(|c| c.is_ascii_digit())))
    {
        return Err(invalid(
            "allocation.senior_tiers",
            "must list tier codes such as \"V1\"",
            bad,
        ));
    }
    Ok(AllocationParams {
        enabled: raw.enabled.unwrap_or(true),
        max_utilisation: share("allocation.max_utilisation", raw.max_utilisation, 0.85, 0.05, 1.5)?,
        default_capacity: share("allocation.default_capacity", raw.default_capacity, 160.0, 0.0, 744.0)?,
        weights: Weights {
            continuity: share("allocation.continuity_weight", raw.continuity_weight, 1.0, 0.0, 1e6)?,
            team: share("allocation.team_weight", raw.team_weight, 0.1, 0.0, 1e6)?,
            balance: share("allocation.balance_weight", raw.balance_weight, 0.05, 0.0, 1e6)?,
        },
        block_clients,
        general_skill: raw
            .general_skill
            .clone()
            .unwrap_or_else(|| "general_taxpayer".into())
            .to_lowercase(),
        international_skill: raw
            .international_skill
            .clone()
            .unwrap_or_else(|| "international".into())
            .to_lowercase(),
        senior_tiers,
        limits: Limits {
            moves_per_month: limit("allocation.max_moves_per_month", raw.max_moves_per_month, 0)?,
            per_accountant: limit(
                "allocation.max_handovers_per_accountant",
                raw.max_handovers_per_accountant,
                10,
            )?,
        },
    })
}

/// Months in a service plan's cycle words (monthly, 每月, quarterly, 每季度, ...).
fn cycle_months(words: &str) -> Option<u32> {
    let w = words.to_lowercase();
    if w.contains("half") || w.contains("半年") {
        Some(6)
    } else if w.contains("quarter") || w.contains("季") {
        Some(3)
    } else if w.contains("month") || w.contains("月") {
        Some(1)
    } else if w.contains("year") || w.contains("annual") || w.contains("年") {
        Some(12)
    } else if w.contains("week") || w.contains("周") {
        Some(1)
    } else {
        None
    }
}

fn check_actions(raw: &RawActions, plans: Option<&[ServicePlan]>) -> Result<ActionsParams, ConfigError> {
    let mut contact_months: BTreeMap<String, u32> =
        [("V1".to_string(), 1), ("V2".to_string(), 3), ("V3".to_string(), 6)]
            .into_iter()
            .collect();
    for p in plans.unwrap_or(&[]) {
        let id = p.applies_to.trim();
        if id.len() >= 2 && id.starts_with('V') && id[1..].chars().all(|c| c.is_ascii_digit()) {
            if let Some(m) = cycle_months(&p.cycle) {
                contact_months.insert(id.to_string(), m);
            }
        }
    }
    if let Some(m) = &raw.contact_months {
        for (k, v) in m {
            if !(1..=24).contains(v) {
                return Err(invalid(
                    &format!("actions.contact_months.{k}"),
                    "must be between 1 and 24",
                    v,
                ));
            }
            contact_months.insert(k.clone(), *v);
        }
    }
    let horizon_days = raw.horizon_days.unwrap_or(31);
    if !(1..=366).contains(&horizon_days) {
        return Err(invalid(
            "actions.horizon_days",
            "must be between 1 and 366",
            horizon_days,
        ));
    }
    let chase_days_before = raw.chase_days_before.unwrap_or(5);
    if !(0..=30).contains(&chase_days_before) {
        return Err(invalid(
            "actions.chase_days_before",
            "must be between 0 and 30",
            chase_days_before,
        ));
    }
    Ok(ActionsParams {
        enabled: raw.enabled.unwrap_or(true),
        contact_months,
        arrears_months: share("actions.arrears_months", raw.arrears_months, 1.0, 0.0, 120.0)?,
        arrears_min: share("actions.arrears_min", raw.arrears_min, 100.0, 0.0, 1e9)?,
        horizon_days,
        chase_days_before,
    })
}

fn check_churn(raw: &RawChurn) -> Result<(ChurnParams, HistoryParams), ConfigError> {
    let definition = match raw.definition.as_deref().unwrap_or("auto") {
        "auto" => LeaveDefinition::Auto,
        "contract_end" => LeaveDefinition::ContractEnd,
        "lapse" => LeaveDefinition::Lapse,
        other => {
            return Err(invalid(
                "churn.definition",
                "must be \"auto\", \"contract_end\" or \"lapse\"",
                other,
            ))
        }
    };
    let inactive = raw.inactive_months.unwrap_or(3);
    if !(1..=12).contains(&inactive) {
        return Err(invalid("churn.inactive_months", "must be between 1 and 12", inactive));
    }
    let mut horizons = raw.horizons.clone().unwrap_or_else(|| vec![3, 6]);
    if horizons.is_empty() || horizons.iter().any(|h| !(1..=24).contains(h)) {
        return Err(invalid(
            "churn.horizons",
            "must list 1 to 24 months each, e.g. [3, 6]",
            format!("{horizons:?}"),
        ));
    }
    horizons.sort_unstable();
    horizons.dedup();
    let test_months = raw.test_months.unwrap_or(6);
    if !(1..=36).contains(&test_months) {
        return Err(invalid("churn.test_months", "must be between 1 and 36", test_months));
    }
    let sample_clients = raw.sample_clients.unwrap_or(25_000);
    if sample_clients < 100 {
        return Err(invalid("churn.sample_clients", "must be at least 100", sample_clients));
    }
    let max_train_rows = raw.max_train_rows.unwrap_or(150_000);
    if max_train_rows < 1000 {
        return Err(invalid("churn.max_train_rows", "must be at least 1000", max_train_rows));
    }
    let arrears_months = raw.arrears_months.unwrap_or(2.0);
    if !(arrears_months > 0.0 && arrears_months.is_finite()) {
        return Err(invalid(
            "churn.arrears_months",
            "must be a number above 0",
            arrears_months,
        ));
    }
    let bands = raw.bands.clone().unwrap_or_else(|| vec![0.05, 0.15]);
    let bands = match bands.as_slice() {
        [lo, hi] if 0.0 < *lo && lo < hi && *hi < 1.0 => (*lo, *hi),
        _ => {
            return Err(invalid(
                "churn.bands",
                "must be two risks between 0 and 1, the lower first, e.g. [0.05, 0.15]",
                format!("{bands:?}"),
            ))
        }
    };
    let model = match raw.model.as_deref().unwrap_or("auto") {
        "auto" => ModelChoice::Auto,
        "logistic" => ModelChoice::Logistic,
        "boosted" => ModelChoice::Boosted,
        other => {
            return Err(invalid(
                "churn.model",
                "must be \"auto\", \"logistic\" or \"boosted\"",
                other,
            ))
        }
    };
    Ok((
        ChurnParams {
            enabled: raw.enabled.unwrap_or(true),
            horizons: horizons.iter().map(|h| *h as i32).collect(),
            test_months,
            max_train_rows,
            arrears_months,
            bands,
            model,
            export_snapshots: raw.export_snapshots.unwrap_or(false),
        },
        HistoryParams {
            definition,
            inactive_months: inactive as i32,
            sample_clients,
        },
    ))
}

fn check_features(key: &str, names: Option<Vec<String>>, group: FeatureGroup) -> Result<Vec<String>, ConfigError> {
    let names = match names {
        Some(n) => n,
        None => features::default_clustering_features(group)
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    if names.is_empty() {
        return Err(invalid(key, "must list at least one feature", "[]"));
    }
    for name in &names {
        if features::feature_def(name).is_none() {
            return Err(ConfigError::UnknownFeature {
                key: key.into(),
                name: name.clone(),
                known: features::CATALOGUE
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> Result<Settings, ConfigError> {
        let raw = RawConfig::from_toml(toml, Path::new("t.toml"))?;
        Settings::from_raw(&raw, Path::new("."))
    }

    #[test]
    fn a_table_path_is_taken_from_the_input_folder_else_from_the_config_folder() {
        let base = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(base.path().join("exports/old")).unwrap();
        std::fs::write(base.path().join("exports/客户档案.csv"), "客户编码\nC1\n").unwrap();
        std::fs::write(base.path().join("exports/old/billing.csv"), "client_id\n").unwrap();
        let toml = "[input]\ndir = \"exports\"\nclients = \"客户档案.csv\"\nbilling = \"exports/old/billing.csv\"\n";
        let raw = RawConfig::from_toml(toml, Path::new("t.toml")).unwrap();
        let s = Settings::from_raw(&raw, base.path()).unwrap();
        let path = |t: Table| s.input.source(t).and_then(|x| x.path.clone()).unwrap();
        assert_eq!(path(Table::Clients), base.path().join("exports/客户档案.csv"));
        assert_eq!(path(Table::Billing), base.path().join("exports/old/billing.csv"));
    }

    #[test]
    fn empty_config_has_defaults() {
        let s = settings("").unwrap();
        assert_eq!(s.seed, DEFAULT_SEED);
        assert_eq!(s.analyses.value.k, 3);
        assert_eq!(s.analyses.behaviour.k_range, (2, 8));
        assert!((s.validation.max_reject_share - 0.05).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(matches!(settings("[value]\nk = 1"), Err(ConfigError::Invalid { .. })));
        assert!(matches!(
            settings("[behaviour]\nk_min = 5\nk_max = 3"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            settings("[kmeans]\ntolerance = 0.0"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            settings("[input]\nmax_reject_share = 2.0"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(settings("lang = \"fr\""), Err(ConfigError::Invalid { .. })));
        assert!(matches!(
            settings("[crm]\ntemplate = \"salesforce\""),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            settings("[crm]\ncolumns = [[\"x\", \"password\"]]"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            settings("snapshot_date = \"31/12/2024\""),
            Err(ConfigError::SnapshotDate(_))
        ));
    }

    #[test]
    fn rejects_unknown_names() {
        assert!(matches!(
            settings("[value]\nfeatures = [\"nope\"]"),
            Err(ConfigError::UnknownFeature { .. })
        ));
        assert!(matches!(
            settings("[columns.clients]\nclient_code = \"客户编号\""),
            Err(ConfigError::UnknownColumn { .. })
        ));
        assert!(matches!(settings("bogus = 1"), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn column_mapping_is_kept() {
        let s = settings("[columns.billing]\namount = \"金额\"").unwrap();
        let billing = s.input.source(Table::Billing).unwrap();
        assert_eq!(billing.mapping.get("amount").map(String::as_str), Some("金额"));
    }
}
