//! Configuration: read once from TOML (plus command-line overrides), checked once into
//! [`Settings`]. Every later stage trusts a `Settings` without re-validating it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::analysis::allocation::{Limits, Weights};
pub use crate::analysis::{
    ActionsParams, AllocationParams, AnalysisParams, BehaviourParams, ChurnParams, DefaultHours, GradeCost,
    ModelChoice, PricingParams, RawActions, RawAllocation, RawBehaviour, RawChurn, RawClassifier, RawPricing, RawValue,
    TreeParams, ValueParams,
};
pub use crate::cluster::{KMeansBackend, KMeansSettings, RawKMeans};
use crate::export::crm_template;
pub use crate::export::{CrmSettings, CRM_SOURCES};
pub use crate::features::FeatureConfig;
pub use crate::format::Lang;
pub use crate::history::{HistoryParams, LeaveDefinition};
pub use crate::ingest::{discover, find_table_file, Encoding, InputParams, TableSource};
pub use crate::output::OutputParams;
pub use crate::params::ParamError;
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
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    Input(#[from] crate::ingest::IngestError),
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
    crate::params::invalid(key, rule, value).into()
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
        let input = input_params(raw, base)?;
        let (validation, features) = feature_params(raw)?;
        let (churn, history) = raw.churn.check()?;
        let plans: Vec<(String, String)> = raw
            .service_plans
            .iter()
            .flatten()
            .map(|p| (p.applies_to.clone(), p.cycle.clone()))
            .collect();
        let analyses = AnalysisParams {
            value: raw.value.check()?,
            behaviour: raw.behaviour.check()?,
            kmeans: raw.kmeans.check()?,
            tree: raw.classifier.check()?,
            churn,
            pricing: raw.pricing.check(features.hourly_cost)?,
            allocation: raw.allocation.check()?,
            actions: raw.actions.check(&plans)?,
        };
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
        Ok(Settings {
            seed: raw.seed.unwrap_or(DEFAULT_SEED),
            snapshot_date: raw.snapshot_date.clone(),
            lang,
            input,
            validation,
            features,
            analyses,
            output: OutputParams {
                dir: resolve(raw.output.dir.as_deref().unwrap_or(Path::new("runs"))),
                models_dir: resolve(raw.output.models_dir.as_deref().unwrap_or(Path::new("models"))),
                xlsx_max_rows,
            },
            crm: crm_settings(&raw.crm)?,
            history,
            stability: stability_params(&raw.stability, base)?,
            service_plans: raw.service_plans.clone(),
            sections: raw.analyses.clone(),
        })
    }
}

/// `[input]` and `[columns.*]`: where each table is and how its headers map.
fn input_params(raw: &RawConfig, base: &Path) -> Result<InputParams, ConfigError> {
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

    Ok(InputParams { dir, sources, encoding })
}

/// `[input]`'s reject share and `[features]`.
fn feature_params(raw: &RawConfig) -> Result<(ValidateParams, FeatureConfig), ConfigError> {
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
    Ok((
        ValidateParams {
            max_reject_share,
            payment_terms_days,
        },
        FeatureConfig {
            hourly_cost,
            long_term_months,
        },
    ))
}

/// `[crm]`: the import's template or columns.
fn crm_settings(raw: &RawCrm) -> Result<CrmSettings, ConfigError> {
    let template = raw.template.clone().unwrap_or_else(|| "generic".into());
    let Some((columns, tag_separator)) = crm_template(&template) else {
        return Err(invalid("crm.template", "must be \"generic\" or \"zoho\"", template));
    };
    let columns: Vec<(String, String)> = match &raw.columns {
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
    Ok(crm)
}

/// `[stability]`: the previous run and how ids are carried over.
fn stability_params(raw: &RawStability, base: &Path) -> Result<StabilityParams, ConfigError> {
    let previous = match raw.previous.as_deref().unwrap_or("auto") {
        "auto" => Previous::Auto,
        "none" => Previous::None,
        path if Path::new(path).is_absolute() => Previous::Path(PathBuf::from(path)),
        path => Previous::Path(base.join(path)),
    };
    let match_threshold = raw.match_threshold.unwrap_or(1.0);
    if !(match_threshold > 0.0) {
        return Err(invalid(
            "stability.match_threshold",
            "must be greater than 0",
            match_threshold,
        ));
    }
    let hysteresis = raw.hysteresis.unwrap_or(0.1);
    if !(0.0..=1.0).contains(&hysteresis) {
        return Err(invalid("stability.hysteresis", "must be between 0 and 1", hysteresis));
    }
    Ok(StabilityParams {
        previous,
        match_threshold,
        hysteresis,
    })
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
        assert!(matches!(
            settings("[value]\nk = 1"),
            Err(ConfigError::Param(ParamError::Invalid { .. }))
        ));
        assert!(matches!(
            settings("[behaviour]\nk_min = 5\nk_max = 3"),
            Err(ConfigError::Param(ParamError::Invalid { .. }))
        ));
        assert!(matches!(
            settings("[kmeans]\ntolerance = 0.0"),
            Err(ConfigError::Param(ParamError::Invalid { .. }))
        ));
        assert!(matches!(
            settings("[input]\nmax_reject_share = 2.0"),
            Err(ConfigError::Param(ParamError::Invalid { .. }))
        ));
        assert!(matches!(
            settings("lang = \"fr\""),
            Err(ConfigError::Param(ParamError::Invalid { .. }))
        ));
        assert!(matches!(
            settings("[crm]\ntemplate = \"salesforce\""),
            Err(ConfigError::Param(ParamError::Invalid { .. }))
        ));
        assert!(matches!(
            settings("[crm]\ncolumns = [[\"x\", \"password\"]]"),
            Err(ConfigError::Param(ParamError::Invalid { .. }))
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
            Err(ConfigError::Param(ParamError::UnknownFeature { .. }))
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
