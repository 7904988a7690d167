//! Vocabularies of the categorical columns: the words a firm may write, in English and
//! Chinese, for each canonical code.

use polars::prelude::*;

pub(super) fn one_of(x: &Expr, values: &[&str]) -> Expr {
    values
        .iter()
        .map(|v| x.clone().eq(lit(*v)))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false))
}

/// Normalises a categorical text column to canonical codes; null when unrecognised.
pub(super) fn categorise(text: Expr, classes: &[(&str, &[&str])]) -> Expr {
    let low = text.str().to_lowercase();
    let mut chain: Option<Then> = None;
    let mut out: Option<ChainedThen> = None;
    for (code, words) in classes {
        let cond = one_of(&low, words);
        match (chain.take(), out.take()) {
            (None, None) => chain = Some(when(cond).then(lit(*code))),
            (Some(t), None) => out = Some(t.when(cond).then(lit(*code))),
            (_, Some(c)) => out = Some(c.when(cond).then(lit(*code))),
        }
    }
    let none = lit(NULL).cast(DataType::String);
    match (chain, out) {
        (_, Some(c)) => c.otherwise(none),
        (Some(t), None) => t.otherwise(none),
        (None, None) => none,
    }
}

pub const CLIENT_TYPES: &[(&str, &[&str])] = &[
    ("enterprise", &["enterprise", "company", "企业", "公司", "有限公司"]),
    (
        "individual_business",
        &[
            "individual business",
            "individual_business",
            "个体工商户",
            "个体户",
            "个体",
        ],
    ),
    ("person", &["person", "individual", "个人", "自然人"]),
];
pub const TAXPAYER_TYPES: &[(&str, &[&str])] = &[
    (
        "small_scale",
        &["small-scale", "small_scale", "small scale", "小规模纳税人", "小规模"],
    ),
    ("general", &["general", "一般纳税人", "一般"]),
];
pub(super) const BOOLS: &[(&str, &[&str])] = &[
    (
        "true",
        &["true", "1", "yes", "y", "是", "国际", "international", "外资"],
    ),
    ("false", &["false", "0", "no", "n", "否", "国内", "domestic", "内资"]),
];

/// Grades of the staff table.
pub const GRADES: &[(&str, &[&str])] = &[
    ("junior", &["junior", "初级", "初级会计", "助理"]),
    ("senior", &["senior", "中级", "中级会计", "会计"]),
    ("lead", &["lead", "主管", "高级", "主办会计主管", "经理"]),
];
