//! Words and numbers as people read them: the output language, and thresholds with
//! thousands separators. Shared by every stage that writes text.

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

    #[test]
    fn human_numbers() {
        assert_eq!(human(1234567.4), "1,234,567");
        assert_eq!(human(-2500.0), "-2,500");
        assert_eq!(human(12.345), "12.3");
        assert_eq!(human(0.25), "0.25");
        assert_eq!(human(2.0), "2");
    }
}
