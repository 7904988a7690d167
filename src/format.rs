//! Words and numbers as people read them: the output language, thresholds with thousands
//! separators, numbers and days appended without the formatter, and the byte test the
//! CSV and HTML writers share. Shared by every stage that writes text.

use serde::{Deserialize, Serialize};

/// The language of the report, charts, spreadsheets and names shown to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Zh,
}

/// The English or the Chinese text, as the language says.
pub fn tr(lang: Lang, en: &str, zh: &str) -> String {
    match lang {
        Lang::En => en.to_string(),
        Lang::Zh => zh.to_string(),
    }
}

/// Formats a threshold for people: thousands separators for large values.
/// An amount of money in whole yuan, thousands separated: "360", "1,650".
pub fn money(v: f64) -> String {
    if v.abs() >= 1000.0 {
        human(v)
    } else {
        format!("{v:.0}")
    }
}

/// Whether `s` holds any of the four bytes: sixteen bytes at a time, the rest one by one.
/// (A fold over the bytes, hoped to vectorise, compiled to two bytes a step.)
pub fn holds_any(s: &[u8], set: [u8; 4]) -> bool {
    let mut words = s.chunks_exact(16);
    let found = words.by_ref().any(|w| {
        let mut a = [0u8; 16];
        a.copy_from_slice(w);
        word_holds_any(u128::from_le_bytes(a), set)
    });
    found || words.remainder().iter().any(|b| set.contains(b))
}

/// Whether any byte of `x` is one of the four: a byte equal to one of them is a zero
/// byte after the xor, and (y − 0x01…) & !y & 0x80… is non-zero exactly when y has one.
pub fn word_holds_any(x: u128, set: [u8; 4]) -> bool {
    const ONES: u128 = u128::from_le_bytes([0x01; 16]);
    const HIGH: u128 = u128::from_le_bytes([0x80; 16]);
    set.iter().any(|&c| {
        let y = x ^ (ONES * c as u128);
        y.wrapping_sub(ONES) & !y & HIGH != 0
    })
}

/// Text escaped for HTML (`&`, `<`, `>`, `"`).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    esc_into(&mut out, s);
    out
}

/// `esc` appended to `out`, without a string per call (the action pages write millions).
pub fn esc_into(out: &mut String, s: &str) {
    let set = [b'&', b'<', b'>', b'"'];
    if !crate::format::holds_any(s.as_bytes(), set) {
        out.push_str(s);
        return;
    }
    let mut rest = s;
    // Bytes, not chars: the four are ASCII, so a match is always on a char boundary (a
    // search by chars decoded every Chinese character).
    let special = |b: &u8| set.contains(b);
    while let Some(k) = rest.as_bytes().iter().position(special) {
        out.push_str(&rest[..k]);
        out.push_str(match rest.as_bytes().get(k) {
            Some(b'&') => "&amp;",
            Some(b'<') => "&lt;",
            Some(b'>') => "&gt;",
            _ => "&quot;",
        });
        rest = &rest[k + 1..];
    }
    out.push_str(rest);
}

/// `format!("{x:.0}")` appended to `buf`, without the formatting machinery for the usual
/// sizes (the action list writes a million reasons).
pub fn int0_into(buf: &mut String, x: f64) {
    let r = x.round_ties_even();
    if r.is_nan() || r.abs() >= 1e15 {
        use std::fmt::Write;
        let _ = write!(buf, "{x:.0}");
    } else if r == 0.0 && x.is_sign_negative() {
        buf.push_str("-0");
    } else {
        buf.push_str(itoa::Buffer::new().format(r as i64));
    }
}

/// [`money`] appended to `buf`.
pub fn money_into(buf: &mut String, v: f64) {
    let r = v.abs().round_ties_even();
    if !(v.abs() >= 1000.0 && r < 1e15) {
        match v.abs() >= 1000.0 {
            true => buf.push_str(&money(v)),
            false => int0_into(buf, v),
        }
        return;
    }
    if v < 0.0 {
        buf.push('-');
    }
    let mut digits = itoa::Buffer::new();
    let s = digits.format(r as u64);
    for (i, ch) in s.char_indices() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            buf.push(',');
        }
        buf.push(ch);
    }
}

/// A day as `NaiveDate`'s `Display` writes it ("2026-01-15"), appended to `buf`.
pub fn date_into(buf: &mut String, d: chrono::NaiveDate) {
    use chrono::Datelike;
    let (y, m, day) = (d.year(), d.month(), d.day());
    if !(0..=9999).contains(&y) {
        use std::fmt::Write;
        let _ = write!(buf, "{d}");
        return;
    }
    let digit = |v: u32| char::from(b'0' + (v % 10) as u8);
    let y = y as u32;
    for v in [y / 1000, y / 100, y / 10, y] {
        buf.push(digit(v));
    }
    buf.push('-');
    buf.push(digit(m / 10));
    buf.push(digit(m));
    buf.push('-');
    buf.push(digit(day / 10));
    buf.push(digit(day));
}

pub fn human(v: f64) -> String {
    if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        if v < 0.0 {
            format!("-{out}")
        } else {
            out
        }
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value at every place of strings of 0 to 40 bytes, against a plain search.
    #[test]
    fn holds_any_finds_each_byte_wherever_it_is() {
        let set = [b',', b'\n', b'\r', b'"'];
        for len in 0..=40usize {
            for at in 0..len.max(1) {
                for byte in 0..=255u8 {
                    let mut s: Vec<u8> = (0..len).map(|k| b'a' + (k % 26) as u8).collect();
                    if let Some(x) = s.get_mut(at) {
                        *x = byte;
                    }
                    assert_eq!(holds_any(&s, set), s.iter().any(|b| set.contains(b)), "{s:?}");
                }
            }
        }
        // Bytes next to the ones looked for (borrows across bytes must not count).
        let near = [0x2b, 0x2d, 0x0b, 0x0c, 0x0e, 0x21, 0x23, 0x80, 0xff, 0x00, 0x01];
        for a in near {
            for b in near {
                let s = [a, b, a, b, b, a, a, b, a, a, b, b, a, b, a, a, b];
                assert!(!holds_any(&s, set), "{s:?}");
            }
        }
    }

    #[test]
    fn fast_forms_write_what_the_formatter_writes() {
        let mut values = vec![
            0.0,
            -0.0,
            0.5,
            1.5,
            2.5,
            -0.5,
            -0.4,
            0.49999999999999994,
            999.5,
            1000.0,
            -1000.4,
            1234.5,
            1e6 + 0.5,
            999_999.5,
            1e15,
            -1e15,
            2e15,
            1e300,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        // A spread of magnitudes and fractions, from a fixed sequence.
        let mut z: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            z ^= z << 13;
            z ^= z >> 7;
            z ^= z << 17;
            let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
            let scale = 10f64.powi((z % 17) as i32 - 2);
            values.push((unit - 0.3) * scale);
            values.push(((z % 20_000) as f64) / 2.0);
        }
        for v in values {
            let mut b = String::from(">");
            int0_into(&mut b, v);
            assert_eq!(b, format!(">{v:.0}"), "{v:?}");
            let mut b = String::from(">");
            money_into(&mut b, v);
            assert_eq!(b, format!(">{}", money(v)), "{v:?}");
        }
        let mut day = chrono::NaiveDate::from_ymd_opt(-3, 12, 25).unwrap();
        for step in [1, 17, 365, 3650, 400_000, 2_000_000] {
            for _ in 0..400 {
                let mut b = String::from(">");
                date_into(&mut b, day);
                assert_eq!(b, format!(">{day}"));
                match day.checked_add_signed(chrono::Duration::days(step)) {
                    Some(d) => day = d,
                    None => break,
                }
            }
        }
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(1234567.4), "1,234,567");
        assert_eq!(human(-2500.0), "-2,500");
        assert_eq!(human(12.345), "12.3");
        assert_eq!(human(0.25), "0.25");
        assert_eq!(human(2.0), "2");
    }

    #[test]
    fn money_is_whole_yuan() {
        assert_eq!(money(360.0), "360");
        assert_eq!(money(1650.4), "1,650");
        assert_eq!(money(-49.6), "-50");
    }
}

/// The Chinese name of a canonical input or output column (客户编号 for client_id), as a
/// Chinese firm's exports head it (`generate --zh` writes these headers).
pub fn column_zh(name: &str) -> Option<&'static str> {
    Some(match name {
        "client_id" => "客户编号",
        "name" => "客户名称",
        "client_type" => "客户类型",
        "taxpayer_type" => "纳税人类型",
        "industry" => "所属行业",
        "province" => "省份",
        "city" => "城市",
        "international" => "是否外资",
        "employees" => "员工人数",
        "annual_revenue" => "年营业收入",
        "services" => "服务项目",
        "contract_start" => "合同开始日期",
        "contract_end" => "合同结束日期",
        "monthly_fee" => "月服务费",
        "accountant" => "主办会计",
        "invoice_date" => "开票日期",
        "amount" => "金额",
        "service" => "服务项目",
        "due_date" => "应收日期",
        "paid_date" => "收款日期",
        "month" => "月份",
        "vouchers" => "凭证数",
        "filings" => "申报次数",
        "hours" => "工时",
        "tickets" => "咨询次数",
        "late_documents" => "资料延迟",
        "grade" => "职级",
        "capacity_hours" => "每月可用工时",
        "skills" => "专长",
        "team" => "团队",
        "active" => "在职",
        "date" => "日期",
        "channel" => "联系方式",
        "note" => "备注",
        "region" => "地区",
        "market" => "国内/国际",
        "scale" => "规模",
        "term" => "长期/短期",
        "needs" => "服务需求",
        _ => return None,
    })
}

/// The Chinese name of an input table.
pub fn table_zh(name: &str) -> Option<&'static str> {
    Some(match name {
        "clients" => "客户档案",
        "billing" => "收费记录",
        "activity" => "工作记录",
        "staff" => "员工名单",
        "contacts" => "联系记录",
        _ => return None,
    })
}

/// A `table.column` input reference in Chinese: 收费记录「付款日期」.
pub fn input_zh(reference: &str) -> String {
    let (table, column) = reference.split_once('.').unwrap_or((reference, ""));
    format!(
        "{}「{}」",
        table_zh(table).unwrap_or(table),
        column_zh(column).unwrap_or(column)
    )
}

/// A category value of the archive in Chinese (企业 for enterprise), as spreadsheets in
/// Chinese show it.
pub fn category_zh(column: &str, value: &str) -> Option<&'static str> {
    Some(match (column, value) {
        ("client_type", "enterprise") => "企业",
        ("client_type", "individual_business") => "个体工商户",
        ("client_type", "person") => "个人",
        ("taxpayer_type", "small_scale") => "小规模纳税人",
        ("taxpayer_type", "general") => "一般纳税人",
        ("market", "domestic") => "国内",
        ("market", "international") => "国际",
        ("scale", "micro") => "微型",
        ("scale", "small") => "小型",
        ("scale", "medium") => "中型",
        ("scale", "large") => "大型",
        ("term", "long_term") => "长期",
        ("term", "short_term") => "短期",
        ("grade", "junior") => "初级",
        ("grade", "senior") => "中级",
        ("grade", "lead") => "主管",
        _ => return None,
    })
}

/// A reject reason in Chinese; a reason this table does not know stays as it is.
pub fn reason_zh(reason: &str) -> String {
    let row_ref = |r: &str| r.rsplit(' ').next().unwrap_or("").to_string();
    if reason.starts_with("not a date") {
        "不是有效日期（请写成 2024-01-05、2024/1/5 或 2024年1月5日，年份在 1900 至 2200 之间）".into()
    } else if reason.starts_with("not a month") {
        "不是有效月份（请写成 2024-01 或 2024年1月）".into()
    } else if reason == "not a number" {
        "不是有效数字".into()
    } else if reason == "negative value" {
        "不能为负数".into()
    } else if reason == "required value is empty" {
        "必填项为空".into()
    } else if let Some(rest) = reason.strip_prefix("unknown value; expected one of ") {
        format!("无法识别的取值；应为 {rest}")
    } else if reason.starts_with("duplicate client_id") {
        match reason.contains("first seen at row") {
            true => format!("客户编号重复；首次出现在第 {} 行", row_ref(reason)),
            false => "客户编号重复".into(),
        }
    } else if reason.starts_with("duplicate month for this client") {
        match reason.contains("first seen at row") {
            true => format!("该客户的月份重复；首次出现在第 {} 行", row_ref(reason)),
            false => "该客户的月份重复".into(),
        }
    } else if reason.starts_with("duplicate accountant") {
        match reason.contains("first seen at row") {
            true => format!("会计重复；首次出现在第 {} 行", row_ref(reason)),
            false => "会计重复".into(),
        }
    } else if reason == "contract_end is before contract_start" {
        "合同结束日早于合同开始日".into()
    } else if reason == "client_id not found among the accepted clients" {
        "客户编号不在有效客户档案中".into()
    } else if reason.starts_with("month outside the client's contract") {
        "工作月份不在合同期内".into()
    } else if reason.contains("in the future (after ") {
        let day = reason
            .split("(after ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .unwrap_or("");
        format!("日期晚于 {day}，属于未来日期，可能录入有误")
    } else if reason.starts_with("cell longer than 32,767 characters") {
        "单元格超过 32,767 个字符（Excel 上限），请在导出中缩短".into()
    } else {
        reason.to_string()
    }
}

#[cfg(test)]
mod words {
    use super::*;

    #[test]
    fn chinese_words_for_reasons_inputs_and_categories() {
        assert_eq!(
            reason_zh("duplicate client_id; first seen at row 17"),
            "客户编号重复；首次出现在第 17 行"
        );
        assert!(reason_zh("payment date in the future (after 2026-11-29): a typo?").contains("2026-11-29"));
        assert_eq!(input_zh("billing.paid_date"), "收费记录「收款日期」");
        assert_eq!(category_zh("taxpayer_type", "small_scale"), Some("小规模纳税人"));
        assert_eq!(reason_zh("something new"), "something new");
    }
}
