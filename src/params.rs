//! Checking parameters: the error every stage's check gives and the rules they share.
//! Each stage keeps its raw type (as written in the config) and its check beside its code;
//! `config` composes them and knows none of their fields.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ParamError {
    #[error("config: {key} {rule} (got {value})")]
    Invalid { key: String, rule: String, value: String },
    #[error("config: unknown feature '{name}' in {key}; known features: {known}")]
    UnknownFeature { key: String, name: String, known: String },
}

/// A parameter outside its allowed values: `key` as written in the config.
pub fn invalid(key: &str, rule: &str, value: impl std::fmt::Display) -> ParamError {
    ParamError::Invalid {
        key: key.into(),
        rule: rule.into(),
        value: value.to_string(),
    }
}

/// A number between `lo` and `hi` (`default` when not written).
pub fn share(key: &str, v: Option<f64>, default: f64, lo: f64, hi: f64) -> Result<f64, ParamError> {
    let v = v.unwrap_or(default);
    if !(v >= lo && v <= hi) {
        return Err(invalid(key, &format!("must be between {lo} and {hi}"), v));
    }
    Ok(v)
}

/// A monthly limit: a whole number, 0 for none.
pub fn limit(key: &str, v: Option<i64>, default: usize) -> Result<Option<usize>, ParamError> {
    match v {
        None => Ok(Some(default).filter(|&d| d > 0)),
        Some(v) if v < 0 => Err(invalid(key, "must be a whole number, 0 for no limit", v)),
        Some(v) => Ok(Some(v as usize).filter(|&d| d > 0)),
    }
}
