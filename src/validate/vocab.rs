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
    (
        "enterprise",
        &[
            "enterprise",
            "company",
            "企业",
            "公司",
            "有限公司",
            "有限责任公司",
            "股份有限公司",
            "一人有限公司",
            "个人独资企业",
            "合伙企业",
            "外商投资企业",
            "分公司",
            "limited company",
            "ltd",
        ],
    ),
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
        &[
            "small-scale",
            "small_scale",
            "small scale",
            "小规模纳税人",
            "小规模",
            "增值税小规模纳税人",
            "小规",
            "小",
        ],
    ),
    (
        "general",
        &[
            "general",
            "一般纳税人",
            "一般",
            "增值税一般纳税人",
            "一般人",
            "一纳",
            "一般纳税",
            "general taxpayer",
        ],
    ),
];
pub(super) const BOOLS: &[(&str, &[&str])] = &[
    (
        "true",
        &["true", "1", "yes", "y", "是", "国际", "international", "外资"],
    ),
    ("false", &["false", "0", "no", "n", "否", "国内", "domestic", "内资"]),
];

/// Grades of the staff table, in the words of Chinese HR lists and English ones.
pub const GRADES: &[(&str, &[&str])] = &[
    (
        "junior",
        &[
            "junior",
            "初级",
            "初级会计",
            "助理",
            "会计助理",
            "助理会计",
            "实习",
            "实习生",
            "assistant",
            "trainee",
            "associate",
        ],
    ),
    (
        "senior",
        &[
            "senior",
            "中级",
            "中级会计",
            "会计",
            "会计师",
            "主办会计",
            "intermediate",
            "accountant",
        ],
    ),
    (
        "lead",
        &[
            "lead",
            "主管",
            "高级",
            "高级会计",
            "高级会计师",
            "会计主管",
            "主办会计主管",
            "经理",
            "财务经理",
            "组长",
            "manager",
            "supervisor",
            "team lead",
        ],
    ),
];

/// Whether an accountant still works at the firm: 在职/离职/试用/停用 and yes/no words.
pub(super) const ACTIVE: &[(&str, &[&str])] = &[
    (
        "true",
        &[
            "true",
            "1",
            "yes",
            "y",
            "是",
            "在职",
            "试用",
            "试用期",
            "正式",
            "在岗",
            "启用",
            "正常",
            "active",
            "employed",
            "probation",
        ],
    ),
    (
        "false",
        &[
            "false",
            "0",
            "no",
            "n",
            "否",
            "离职",
            "已离职",
            "停用",
            "禁用",
            "离岗",
            "inactive",
            "left",
            "resigned",
            "terminated",
            "disabled",
        ],
    ),
];

/// A yes/no word of a count column as 1 or 0 (资料是否延迟: 是 -> 1).
pub fn yes_no(text: &str) -> Option<f64> {
    let low = text.trim().to_lowercase();
    crate::ingest::vocabulary::YES_NO
        .iter()
        .find(|(_, words)| words.contains(&low.as_str()))
        .and_then(|(v, _)| v.parse().ok())
}
