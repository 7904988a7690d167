//! What an analysis declares about each column it adds: its headers in both languages,
//! its kind (a category with its words), and where it goes besides labels.csv (the CRM
//! import, the database push, the migration counts). Export, push, migration and the
//! report read these declarations instead of knowing the analyses; the run's manifest
//! keeps them, so `push` and `diff` read them back from a finished run.

use serde::{Deserialize, Serialize};

use crate::format::Lang;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Number,
    Text,
    /// One of a few values, each with words in both languages.
    Category,
}

/// The SQL type of a pushed column (values travel as text and the database casts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlType {
    Text,
    Double,
    Integer,
}

impl SqlType {
    /// The type as both SQLite and PostgreSQL write it.
    pub fn sql(self) -> &'static str {
        match self {
            SqlType::Text => "TEXT",
            SqlType::Double => "DOUBLE PRECISION",
            SqlType::Integer => "INTEGER",
        }
    }
}

/// A category value and its words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub value: String,
    pub en: String,
    pub zh: String,
}

/// How a column's changes between runs are counted (transitions.csv's `kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    /// transitions.csv's `kind` and the chart's file name (transitions_KIND).
    pub kind: String,
    /// The chart's title in both languages.
    pub en: String,
    pub zh: String,
    /// A change makes the client a mover in migration.csv (a segment; not a risk band,
    /// which moves a little with every refit).
    #[serde(default)]
    pub moves: bool,
    /// The column of English names shown beside the ids in migration.csv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<String>,
}

/// One output column, declared by the analysis that makes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputColumn {
    pub name: String,
    pub en: String,
    pub zh: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
    /// Its header in crm_import.csv, when it goes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm: Option<String>,
    /// Pushed to the database's client table, as this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<SqlType>,
    /// Its changes since the previous run are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked: Option<Tracked>,
}

impl OutputColumn {
    fn new(name: &str, en: &str, zh: &str, kind: Kind) -> OutputColumn {
        OutputColumn {
            name: name.into(),
            en: en.into(),
            zh: zh.into(),
            kind,
            words: Vec::new(),
            crm: None,
            push: None,
            tracked: None,
        }
    }

    pub fn number(name: &str, en: &str, zh: &str) -> OutputColumn {
        OutputColumn::new(name, en, zh, Kind::Number)
    }

    pub fn text(name: &str, en: &str, zh: &str) -> OutputColumn {
        OutputColumn::new(name, en, zh, Kind::Text)
    }

    /// A category: `words` are (value, English, Chinese).
    pub fn category(name: &str, en: &str, zh: &str, words: &[(&str, &str, &str)]) -> OutputColumn {
        OutputColumn {
            words: words
                .iter()
                .map(|(value, en, zh)| Word {
                    value: value.to_string(),
                    en: en.to_string(),
                    zh: zh.to_string(),
                })
                .collect(),
            ..OutputColumn::new(name, en, zh, Kind::Category)
        }
    }

    /// Also in crm_import.csv, under `header`.
    pub fn crm(mut self, header: &str) -> OutputColumn {
        self.crm = Some(header.into());
        self
    }

    /// Also pushed to the database, as `ty`.
    pub fn push(mut self, ty: SqlType) -> OutputColumn {
        self.push = Some(ty);
        self
    }

    /// Its changes between runs counted under `kind`; `en`/`zh` title the chart.
    pub fn tracked(mut self, kind: &str, en: &str, zh: &str) -> OutputColumn {
        self.tracked = Some(Tracked {
            kind: kind.into(),
            en: en.into(),
            zh: zh.into(),
            moves: false,
            names: None,
        });
        self
    }

    /// A tracked column whose change makes a mover, with its names in column `names`.
    pub fn moves(mut self, names: &str) -> OutputColumn {
        if let Some(t) = self.tracked.as_mut() {
            t.moves = true;
            t.names = Some(names.into());
        }
        self
    }

    /// The header in `lang`.
    pub fn header(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Zh => &self.zh,
        }
    }

    /// The words for `value` in `lang`, when it is one of the category's values.
    pub fn word(&self, value: &str, lang: Lang) -> Option<&str> {
        self.words.iter().find(|w| w.value == value).map(|w| match lang {
            Lang::En => w.en.as_str(),
            Lang::Zh => w.zh.as_str(),
        })
    }
}

/// A table an analysis writes for people, with its names (sheet names in Chinese).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableName {
    pub name: String,
    pub en: String,
    pub zh: String,
}

/// A table of tasks an analysis keeps in the CRM's database beside the clients' labels:
/// one row per key, opened when a run lists it, updated while runs keep listing it, and
/// closed (with the run and the time) when a run no longer does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskTable {
    /// The database table.
    pub table: String,
    /// The run's export whose Parquet file holds the rows.
    pub export: String,
    /// The columns pushed, the key's first.
    pub columns: Vec<(String, SqlType)>,
    /// How many of the first columns make the key.
    pub key: usize,
}

impl TaskTable {
    pub fn key_columns(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().take(self.key).map(|(c, _)| c.as_str())
    }

    pub fn other_columns(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().skip(self.key).map(|(c, _)| c.as_str())
    }
}

/// What the run's analyses declared, in their order. Where two declare the same column
/// name, the first declaration's words are used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalogue {
    pub columns: Vec<OutputColumn>,
    #[serde(default)]
    pub tables: Vec<TableName>,
    /// Task tables pushed beside the labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskTable>,
}

impl Catalogue {
    pub fn column(&self, name: &str) -> Option<&OutputColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column's header in `lang`, when declared.
    pub fn header(&self, name: &str, lang: Lang) -> Option<&str> {
        self.column(name).map(|c| c.header(lang))
    }

    /// The words for a category value of column `name`.
    pub fn word(&self, name: &str, value: &str, lang: Lang) -> Option<&str> {
        self.columns
            .iter()
            .filter(|c| c.name == name)
            .find_map(|c| c.word(value, lang))
    }

    /// A table's name in `lang`, when declared.
    pub fn table(&self, name: &str, lang: Lang) -> Option<&str> {
        self.tables.iter().find(|t| t.name == name).map(|t| match lang {
            Lang::En => t.en.as_str(),
            Lang::Zh => t.zh.as_str(),
        })
    }

    /// Columns that go to crm_import.csv: (header, column).
    pub fn crm(&self) -> Vec<(String, String)> {
        self.columns
            .iter()
            .filter_map(|c| c.crm.as_ref().map(|h| (h.clone(), c.name.clone())))
            .collect()
    }

    /// Columns pushed to the database, in declaration order.
    pub fn pushed(&self) -> impl Iterator<Item = &OutputColumn> {
        self.columns.iter().filter(|c| c.push.is_some())
    }

    /// Columns whose changes between runs are counted, each name once.
    pub fn tracked(&self) -> Vec<(&OutputColumn, &Tracked)> {
        let mut out: Vec<(&OutputColumn, &Tracked)> = Vec::new();
        for c in &self.columns {
            if let Some(t) = &c.tracked {
                if !out.iter().any(|(o, _)| o.name == c.name) {
                    out.push((c, t));
                }
            }
        }
        out
    }

    /// What a finished run declared (its manifest's `columns`).
    pub fn of_run(dir: &std::path::Path) -> Result<Catalogue, String> {
        let path = dir.join("manifest.json");
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let manifest: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let columns = manifest.get("columns").ok_or_else(|| {
            format!(
                "{} lists no declared columns: the run was made by an older clientseg; run it again with this version",
                path.display()
            )
        })?;
        serde_json::from_value(columns.clone()).map_err(|e| format!("{}, columns: {e}", path.display()))
    }

    /// Adds `other`'s declarations after these.
    pub fn extend(&mut self, columns: &[OutputColumn], tables: &[TableName]) {
        self.columns.extend(columns.iter().cloned());
        self.tables.extend(tables.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_declaration_names_a_column_and_words_are_found_by_value() {
        let mut c = Catalogue::default();
        c.extend(
            &[
                OutputColumn::category("band", "Band", "等级", &[("high", "high", "高")])
                    .crm("band")
                    .push(SqlType::Text)
                    .tracked("band", "Band", "等级"),
                OutputColumn::number("band", "Other", "其他"),
                OutputColumn::number("score", "Score", "得分").push(SqlType::Double),
            ],
            &[],
        );
        assert_eq!(c.header("band", Lang::Zh), Some("等级"));
        assert_eq!(c.word("band", "high", Lang::Zh), Some("高"));
        assert_eq!(c.word("band", "low", Lang::Zh), None);
        assert_eq!(c.crm(), vec![("band".to_string(), "band".to_string())]);
        assert_eq!(
            c.pushed().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["band", "score"]
        );
        assert_eq!(c.tracked().len(), 1);
        let back: Catalogue = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
