//! Push: writes a finished run's labels to the firm's database (SQLite or PostgreSQL)
//! where the CRM reads them. One transaction: all rows or none. Pushing the same run
//! again changes nothing; pushing an older run over a newer one needs `force`.
//! Credentials never appear in messages: URLs are shown with the password masked.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;
use thiserror::Error;

use crate::columns::{Catalogue, SqlType, TaskTable};

#[derive(Debug, Error)]
pub enum PushError {
    #[error("database URL must start with sqlite:// or postgres:// (got '{0}')")]
    Scheme(String),
    #[error("no database given: pass --to URL or set CLIENTSEG_DB_URL")]
    NoTarget,
    #[error("cannot read the run in {dir}: {message}")]
    Run { dir: PathBuf, message: String },
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("database error at {target} while {doing}: {message}. Nothing was changed")]
    Sql {
        target: String,
        doing: &'static str,
        message: String,
    },
    #[error("run {run} (made {run_at}) is older than run {newest} (made {newest_at}) already in {target}; pass --force to push it anyway")]
    OlderRun {
        run: String,
        run_at: String,
        newest: String,
        newest_at: String,
        target: String,
    },
}

/// The schema's fixed history: each entry upgrades from the previous version, so that
/// databases made by earlier versions reach the same tables. It is frozen: columns and
/// task tables added since are not listed here, each run adds those its analyses declare
/// (see [`add_columns`] and [`task_table`]).
const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE client_segment (
        client_id TEXT PRIMARY KEY,
        value_tier TEXT NOT NULL,
        value_tier_en TEXT NOT NULL,
        value_tier_zh TEXT NOT NULL,
        behaviour_segment TEXT,
        behaviour_segment_en TEXT,
        behaviour_segment_zh TEXT,
        run_id TEXT NOT NULL,
        model_version TEXT NOT NULL,
        pushed_at TEXT NOT NULL)",
        "CREATE TABLE client_segment_history (
        run_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        value_tier TEXT NOT NULL,
        value_tier_en TEXT NOT NULL,
        value_tier_zh TEXT NOT NULL,
        behaviour_segment TEXT,
        behaviour_segment_en TEXT,
        behaviour_segment_zh TEXT,
        model_version TEXT NOT NULL,
        pushed_at TEXT NOT NULL,
        PRIMARY KEY (run_id, client_id))",
        "CREATE TABLE clientseg_push (
        run_id TEXT PRIMARY KEY,
        run_created_at TEXT NOT NULL,
        model_version TEXT NOT NULL,
        pushed_at TEXT NOT NULL)",
    ],
    &[
        // 2: churn risk. Older tables gain the columns in place; their rows keep nulls.
        "ALTER TABLE client_segment ADD COLUMN churn_risk_3m DOUBLE PRECISION",
        "ALTER TABLE client_segment ADD COLUMN churn_risk_6m DOUBLE PRECISION",
        "ALTER TABLE client_segment ADD COLUMN revenue_at_risk DOUBLE PRECISION",
        "ALTER TABLE client_segment ADD COLUMN churn_band TEXT",
        "ALTER TABLE client_segment ADD COLUMN churn_drivers TEXT",
        "ALTER TABLE client_segment_history ADD COLUMN churn_risk_3m DOUBLE PRECISION",
        "ALTER TABLE client_segment_history ADD COLUMN churn_risk_6m DOUBLE PRECISION",
        "ALTER TABLE client_segment_history ADD COLUMN revenue_at_risk DOUBLE PRECISION",
        "ALTER TABLE client_segment_history ADD COLUMN churn_band TEXT",
        "ALTER TABLE client_segment_history ADD COLUMN churn_drivers TEXT",
    ],
    &[
        // 3: pricing and allocation.
        "ALTER TABLE client_segment ADD COLUMN price_flag TEXT",
        "ALTER TABLE client_segment ADD COLUMN suggested_fee DOUBLE PRECISION",
        "ALTER TABLE client_segment ADD COLUMN proposed_accountant TEXT",
        "ALTER TABLE client_segment_history ADD COLUMN price_flag TEXT",
        "ALTER TABLE client_segment_history ADD COLUMN suggested_fee DOUBLE PRECISION",
        "ALTER TABLE client_segment_history ADD COLUMN proposed_accountant TEXT",
    ],
    &[
        // 4: the action list as tasks. One row per client and action type; a newer run
        // updates the ones that still apply and closes the others.
        "CREATE TABLE client_action (
        client_id TEXT NOT NULL,
        action TEXT NOT NULL,
        owner TEXT,
        due_date TEXT,
        priority INTEGER,
        reason TEXT,
        figure DOUBLE PRECISION,
        status TEXT NOT NULL,
        opened_run TEXT NOT NULL,
        updated_run TEXT NOT NULL,
        closed_run TEXT,
        closed_at TEXT,
        PRIMARY KEY (client_id, action))",
    ],
];

pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// A column name fit to write into SQL: letters, digits and underscores, not first a
/// digit (names come from the run's manifest, which a person could have edited).
fn sql_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// A run as pushed.
#[derive(Debug, Clone)]
pub struct RunLabels {
    pub run_id: String,
    /// UTC, RFC 3339, seconds: compares as text.
    pub created_at: String,
    pub model_version: String,
    /// The pushed columns after client_id, as the run's analyses declared them.
    columns: Vec<(String, SqlType)>,
    /// client_id followed by `columns`, as text, each in one chunk.
    labels: Vec<StringChunked>,
    /// The declared task tables whose export the run wrote, with its columns as text.
    tasks: Vec<(TaskTable, Vec<StringChunked>)>,
}

impl RunLabels {
    /// Clients labelled.
    pub fn len(&self) -> usize {
        self.labels.first().map_or(0, |c| c.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Rows of equally long text columns, read in place (a million clients' labels copied
/// into owned strings took seconds and gigabytes).
fn rows_of(columns: &[StringChunked]) -> impl Iterator<Item = Vec<Option<&str>>> {
    let n = columns.first().map_or(0, |c| c.len());
    let arrays: Vec<_> = columns.iter().map(|c| c.downcast_iter().next()).collect();
    (0..n).map(move |i| arrays.iter().map(|a| a.and_then(|a| a.get(i))).collect())
}

/// A column of `df` as one chunk of text.
fn text_column(df: &DataFrame, name: &str) -> PolarsResult<StringChunked> {
    let c = df.column(name)?.cast(&DataType::String)?;
    Ok(c.str()?.rechunk().into_owned())
}

/// A declared task table's rows from its export in the run folder; None when the run
/// did not write it (the analysis had nothing to do).
fn read_tasks(dir: &Path, t: &TaskTable) -> Result<Option<Vec<StringChunked>>, String> {
    let plain = std::iter::once(t.table.as_str())
        .chain(std::iter::once(t.export.as_str()))
        .chain(t.columns.iter().map(|(c, _)| c.as_str()))
        .find(|n| !sql_name(n));
    if let Some(bad) = plain {
        return Err(format!(
            "manifest.json declares the task table '{}' with the name '{bad}', which is not a plain SQL name (a-z, 0-9, _)",
            t.table
        ));
    }
    if t.key == 0 || t.key > t.columns.len() {
        return Err(format!(
            "manifest.json declares the task table '{}' with a key of {} of its {} columns",
            t.table,
            t.key,
            t.columns.len()
        ));
    }
    let file = format!("{}.parquet", t.export);
    let Ok(f) = std::fs::File::open(dir.join(&file)) else {
        return Ok(None);
    };
    let df = ParquetReader::new(f).finish().map_err(|e| format!("{file}: {e}"))?;
    let mut cols = Vec::new();
    for (name, _) in &t.columns {
        cols.push(text_column(&df, name).map_err(|e| format!("{file}, column {name}: {e}"))?);
    }
    Ok(Some(cols))
}

/// Reads `manifest.json` and `labels.parquet` of a run folder.
pub fn read_run(dir: &Path) -> Result<RunLabels, PushError> {
    let err = |message: String| PushError::Run {
        dir: dir.to_path_buf(),
        message,
    };
    let manifest: serde_json::Value = std::fs::read(dir.join("manifest.json"))
        .map_err(|e| err(format!("manifest.json: {e}")))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| err(format!("manifest.json: {e}"))))?;
    let text = |k: &str| manifest.get(k).and_then(|v| v.as_str()).map(String::from);
    let run_id = text("run_id").ok_or_else(|| err("manifest.json has no run_id".into()))?;
    let created = text("created_at").ok_or_else(|| err("manifest.json has no created_at".into()))?;
    let created_at = chrono::DateTime::parse_from_rfc3339(&created)
        .map_err(|e| err(format!("created_at '{created}': {e}")))?
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // A scored run was labelled by another run's model.
    let model_run = text("model_run_id").unwrap_or_else(|| run_id.clone());
    let version = manifest
        .pointer("/versions/clientseg")
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let model_version = format!("{model_run} (clientseg {version})");
    let declared = Catalogue::of_run(dir).map_err(err)?;
    let mut columns: Vec<(String, SqlType)> = Vec::new();
    for c in declared.pushed() {
        if !sql_name(&c.name) {
            return Err(err(format!(
                "manifest.json declares the pushed column '{}', which is not a plain SQL name (a-z, 0-9, _)",
                c.name
            )));
        }
        if let (Some(ty), false) = (c.push, columns.iter().any(|(n, _)| *n == c.name)) {
            columns.push((c.name.clone(), ty));
        }
    }

    let file = std::fs::File::open(dir.join("labels.parquet")).map_err(|e| err(format!("labels.parquet: {e}")))?;
    let mut reader = ParquetReader::new(file);
    let present: Vec<String> = reader
        .schema()
        .map_err(|e| err(format!("labels.parquet: {e}")))?
        .iter_names()
        .map(|n| n.to_string())
        .collect();
    // Only the pushed columns: labels.parquet carries every feature too.
    let wanted: Vec<String> = std::iter::once("client_id")
        .chain(columns.iter().map(|(n, _)| n.as_str()))
        .filter(|c| present.iter().any(|p| p == c))
        .map(String::from)
        .collect();
    let df = reader
        .with_columns(Some(wanted))
        .finish()
        .map_err(|e| err(format!("labels.parquet: {e}")))?;
    let column = |name: &str| -> Result<StringChunked, PushError> {
        text_column(&df, name).map_err(|e| err(format!("labels.parquet, column {name}: {e}")))
    };
    let mut labels = vec![column("client_id")?];
    for (c, _) in &columns {
        // Declared but not made (an analysis skipped for this input): pushed as nulls.
        labels.push(match df.column(c) {
            Ok(_) => column(c)?,
            Err(_) => StringChunked::full_null(c.as_str().into(), df.height()),
        });
    }
    let mut tasks = Vec::new();
    for t in &declared.tasks {
        if let Some(cols) = read_tasks(dir, t).map_err(err)? {
            tasks.push((t.clone(), cols));
        }
    }
    Ok(RunLabels {
        run_id,
        created_at,
        model_version,
        columns,
        labels,
        tasks,
    })
}

/// The URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user_pass, host)) => {
            let user = user_pass.split_once(':').map_or(user_pass, |(u, _)| u);
            let masked = if user_pass.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            // Query strings may carry password=...
            let path = mask_query_password(path);
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => format!("{scheme}://{authority}{}", mask_query_password(path)),
    }
}

fn mask_query_password(path: &str) -> String {
    let Some((p, q)) = path.split_once('?') else {
        return path.to_string();
    };
    let q: Vec<String> = q
        .split('&')
        .map(|kv| {
            if kv.to_ascii_lowercase().starts_with("password=") {
                "password=***".to_string()
            } else {
                kv.to_string()
            }
        })
        .collect();
    format!("{p}?{}", q.join("&"))
}

/// What a push did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub enum Outcome {
    Pushed { rows: usize },
    AlreadyPushed { pushed_at: String },
}

/// One open transaction, over either database.
trait Tx {
    fn exec(&mut self, sql: &str, params: &[Option<&str>]) -> Result<u64, String>;
    /// The first column of the first row, if any.
    fn query_text(&mut self, sql: &str, params: &[Option<&str>]) -> Result<Option<Option<String>>, String>;
    /// Inserts every row into `table`: one prepared statement per row in SQLite, COPY in
    /// PostgreSQL.
    fn bulk(
        &mut self,
        table: &str,
        columns: &[(&str, SqlType)],
        rows: &mut dyn Iterator<Item = Vec<Option<&str>>>,
    ) -> Result<(), String>;
    fn postgres(&self) -> bool;
}

struct SqliteTx<'a>(rusqlite::Transaction<'a>);

impl Tx for SqliteTx<'_> {
    fn exec(&mut self, sql: &str, params: &[Option<&str>]) -> Result<u64, String> {
        let mut stmt = self.0.prepare(sql).map_err(|e| e.to_string())?;
        stmt.execute(rusqlite::params_from_iter(params.iter()))
            .map(|n| n as u64)
            .map_err(|e| e.to_string())
    }
    fn query_text(&mut self, sql: &str, params: &[Option<&str>]) -> Result<Option<Option<String>>, String> {
        let mut stmt = self.0.prepare(sql).map_err(|e| e.to_string())?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(|e| e.to_string())?;
        match rows.next().map_err(|e| e.to_string())? {
            Some(row) => Ok(Some(row.get::<_, Option<String>>(0).map_err(|e| e.to_string())?)),
            None => Ok(None),
        }
    }
    fn bulk(
        &mut self,
        table: &str,
        columns: &[(&str, SqlType)],
        rows: &mut dyn Iterator<Item = Vec<Option<&str>>>,
    ) -> Result<(), String> {
        // One statement, prepared once: at 1M clients this is what makes the push fast
        // (a fresh multi-row statement per batch managed about 3,600 rows a second).
        let sql = insert_sql(table, columns, 1);
        let mut stmt = self.0.prepare(&sql).map_err(|e| e.to_string())?;
        for row in rows {
            stmt.execute(rusqlite::params_from_iter(row.iter()))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    fn postgres(&self) -> bool {
        false
    }
}

/// One CSV line for PostgreSQL's COPY: NULL unquoted and empty, text always quoted (so an
/// empty text stays empty text).
fn copy_line(out: &mut Vec<u8>, row: &[Option<&str>]) {
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if let Some(v) = v {
            out.push(b'"');
            for b in v.bytes() {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
        }
    }
    out.push(b'\n');
}

struct PgTx<'a>(postgres::Transaction<'a>);

fn pg_params<'a>(params: &'a [Option<&'a str>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

/// The full error text of a PostgreSQL error (its Display is only "db error").
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                m.push_str(&format!(": {s}"));
                source = s.source();
            }
            m
        }
    }
}

impl Tx for PgTx<'_> {
    fn exec(&mut self, sql: &str, params: &[Option<&str>]) -> Result<u64, String> {
        self.0.execute(sql, &pg_params(params)).map_err(|e| pg_message(&e))
    }
    fn query_text(&mut self, sql: &str, params: &[Option<&str>]) -> Result<Option<Option<String>>, String> {
        let row = self.0.query_opt(sql, &pg_params(params)).map_err(|e| pg_message(&e))?;
        Ok(row.map(|r| r.get::<_, Option<String>>(0)))
    }
    fn bulk(
        &mut self,
        table: &str,
        columns: &[(&str, SqlType)],
        rows: &mut dyn Iterator<Item = Vec<Option<&str>>>,
    ) -> Result<(), String> {
        use std::io::Write;
        let cols: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        let cols = cols.join(", ");
        let mut w = self
            .0
            .copy_in(&format!("COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv)"))
            .map_err(|e| pg_message(&e))?;
        let mut buf = Vec::with_capacity(1 << 20);
        for row in rows {
            copy_line(&mut buf, &row);
            if buf.len() > 1 << 20 {
                w.write_all(&buf).map_err(|e| e.to_string())?;
                buf.clear();
            }
        }
        w.write_all(&buf).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| pg_message(&e))?;
        Ok(())
    }
    fn postgres(&self) -> bool {
        true
    }
}

enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

fn parse_target(url: &str) -> Result<Target, PushError> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        return Ok(Target::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres(url.to_string()));
    }
    Err(PushError::Scheme(redact(url)))
}

/// Adds to `table` the declared columns it lacks (a new analysis's, or a further churn
/// horizon): tables are upgraded in place, and their earlier rows keep nulls there.
fn add_columns(tx: &mut dyn Tx, table: &str, columns: &[(String, SqlType)], target: &str) -> Result<(), PushError> {
    let sql = |message| PushError::Sql {
        target: target.to_string(),
        doing: "adding the run's new columns",
        message,
    };
    let exists = match tx.postgres() {
        true => "SELECT CAST(COUNT(*) AS TEXT) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
        false => "SELECT CAST(COUNT(*) AS TEXT) FROM pragma_table_info($1) WHERE name = $2",
    };
    for (name, ty) in columns {
        let n = tx
            .query_text(exists, &[Some(table), Some(name)])
            .map_err(sql)?
            .flatten();
        if n.as_deref() == Some("0") {
            tx.exec(&format!("ALTER TABLE {table} ADD COLUMN {name} {}", ty.sql()), &[])
                .map_err(sql)?;
        }
    }
    Ok(())
}

/// Brings the schema up to date: the fixed steps, then the run's declared columns.
fn migrate(tx: &mut dyn Tx, target: &str, run: &RunLabels) -> Result<(), PushError> {
    let sql = |doing, message| PushError::Sql {
        target: target.to_string(),
        doing,
        message,
    };
    tx.exec(
        "CREATE TABLE IF NOT EXISTS clientseg_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        &[],
    )
    .map_err(|m| sql("creating clientseg_meta", m))?;
    let current: usize = tx
        .query_text("SELECT value FROM clientseg_meta WHERE key = 'schema_version'", &[])
        .map_err(|m| sql("reading the schema version", m))?
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for statements in MIGRATIONS.iter().skip(current) {
        for s in *statements {
            tx.exec(s, &[]).map_err(|m| sql("migrating the schema", m))?;
        }
    }
    if current < SCHEMA_VERSION {
        let v = SCHEMA_VERSION.to_string();
        tx.exec("DELETE FROM clientseg_meta WHERE key = 'schema_version'", &[])
            .map_err(|m| sql("migrating the schema", m))?;
        tx.exec(
            "INSERT INTO clientseg_meta (key, value) VALUES ('schema_version', $1)",
            &[Some(&v)],
        )
        .map_err(|m| sql("migrating the schema", m))?;
    }
    for table in ["client_segment", "client_segment_history"] {
        add_columns(tx, table, &run.columns, target)?;
    }
    for (t, _) in &run.tasks {
        task_table(tx, t, target)?;
    }
    Ok(())
}

/// The bookkeeping columns of every task table, after the declared ones.
const TASK_STATE: [&str; 5] = ["status", "opened_run", "updated_run", "closed_run", "closed_at"];

/// Creates a declared task table, or adds the columns it lacks (tables made by earlier
/// versions are upgraded in place).
fn task_table(tx: &mut dyn Tx, t: &TaskTable, target: &str) -> Result<(), PushError> {
    let mut columns: Vec<String> = t
        .columns
        .iter()
        .enumerate()
        .map(|(k, (c, ty))| format!("{c} {}{}", ty.sql(), if k < t.key { " NOT NULL" } else { "" }))
        .collect();
    columns.extend([
        "status TEXT NOT NULL".to_string(),
        "opened_run TEXT NOT NULL".into(),
        "updated_run TEXT NOT NULL".into(),
        "closed_run TEXT".into(),
        "closed_at TEXT".into(),
    ]);
    let key: Vec<&str> = t.key_columns().collect();
    tx.exec(
        &format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            t.table,
            columns.join(", "),
            key.join(", ")
        ),
        &[],
    )
    .map_err(|message| PushError::Sql {
        target: target.to_string(),
        doing: "creating a task table",
        message,
    })?;
    let others: Vec<(String, SqlType)> = t.columns.iter().skip(t.key).cloned().collect();
    add_columns(tx, &t.table, &others, target)
}

fn insert_sql(table: &str, columns: &[(&str, SqlType)], rows: usize) -> String {
    let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", names.join(", "));
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (c, (_, ty)) in columns.iter().enumerate() {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match ty {
                SqlType::Text => sql.push_str(&format!("${n}")),
                ty => sql.push_str(&format!("CAST(CAST(${n} AS TEXT) AS {})", ty.sql())),
            }
        }
        sql.push(')');
    }
    sql
}

/// The push itself, inside one transaction that the caller commits.
fn push_in(tx: &mut dyn Tx, run: &RunLabels, force: bool, target: &str, now: &str) -> Result<Outcome, PushError> {
    let sql = |doing, message| PushError::Sql {
        target: target.to_string(),
        doing,
        message,
    };
    if let Some(at) = tx
        .query_text(
            "SELECT pushed_at FROM clientseg_push WHERE run_id = $1",
            &[Some(&run.run_id)],
        )
        .map_err(|m| sql("checking earlier pushes", m))?
    {
        return Ok(Outcome::AlreadyPushed {
            pushed_at: at.unwrap_or_default(),
        });
    }
    let newest = tx
        .query_text(
            "SELECT run_id || ' ' || run_created_at FROM clientseg_push ORDER BY run_created_at DESC LIMIT 1",
            &[],
        )
        .map_err(|m| sql("checking earlier pushes", m))?
        .flatten();
    if let Some(newest) = newest {
        let (newest_run, newest_at) = newest.split_once(' ').unwrap_or((newest.as_str(), ""));
        if newest_at > run.created_at.as_str() && !force {
            return Err(PushError::OlderRun {
                run: run.run_id.clone(),
                run_at: run.created_at.clone(),
                newest: newest_run.to_string(),
                newest_at: newest_at.to_string(),
                target: target.to_string(),
            });
        }
    }
    // TRUNCATE in PostgreSQL: a DELETE would leave a million dead rows for vacuum each
    // month. Readers wait for the commit instead of seeing the previous run meanwhile.
    let empty = if tx.postgres() {
        "TRUNCATE client_segment"
    } else {
        "DELETE FROM client_segment"
    };
    tx.exec(empty, &[]).map_err(|m| sql("replacing client_segment", m))?;
    let text = |c| (c, SqlType::Text);
    let mut current_cols = vec![text("client_id")];
    current_cols.extend(run.columns.iter().map(|(c, ty)| (c.as_str(), *ty)));
    current_cols.extend(["run_id", "model_version", "pushed_at"].map(text));
    let mut history_cols = current_cols.clone();
    history_cols.retain(|(c, _)| *c != "run_id");
    history_cols.insert(0, text("run_id"));
    let meta = [Some(run.run_id.as_str()), Some(run.model_version.as_str()), Some(now)];
    let mut current = rows_of(&run.labels).map(|mut v| {
        v.extend(meta);
        v
    });
    tx.bulk("client_segment", &current_cols, &mut current)
        .map_err(|m| sql("writing client_segment", m))?;
    let mut history = rows_of(&run.labels).map(|row| {
        let mut v: Vec<Option<&str>> = Vec::with_capacity(row.len() + 3);
        v.push(Some(run.run_id.as_str()));
        v.extend(row);
        v.extend([Some(run.model_version.as_str()), Some(now)]);
        v
    });
    tx.bulk("client_segment_history", &history_cols, &mut history)
        .map_err(|m| sql("writing client_segment_history", m))?;
    for (t, rows) in &run.tasks {
        push_tasks(tx, run, t, rows, now, target)?;
    }
    tx.exec(
        "INSERT INTO clientseg_push (run_id, run_created_at, model_version, pushed_at) VALUES ($1, $2, $3, $4)",
        &[
            Some(&run.run_id),
            Some(&run.created_at),
            Some(&run.model_version),
            Some(now),
        ],
    )
    .map_err(|m| sql("recording the push", m))?;
    Ok(Outcome::Pushed { rows: run.len() })
}

/// A run's tasks into their table: new ones open, ones that still apply updated (and
/// reopened if a run had closed them), open ones this run no longer lists closed with
/// this run's id and the time.
fn push_tasks(
    tx: &mut dyn Tx,
    run: &RunLabels,
    t: &TaskTable,
    rows: &[StringChunked],
    now: &str,
    target: &str,
) -> Result<(), PushError> {
    let table = t.table.as_str();
    let sql = |message| PushError::Sql {
        target: target.to_string(),
        doing: "writing a task table",
        message,
    };
    // The table is rebuilt from the run's list and the rows before it, not updated in
    // place: a million upserts took 7-13 s in PostgreSQL and left as many dead rows.
    let mut cols: Vec<(&str, SqlType)> = t.columns.iter().map(|(c, ty)| (c.as_str(), *ty)).collect();
    cols.extend(TASK_STATE[..3].iter().map(|c| (*c, SqlType::Text)));
    let all = t
        .columns
        .iter()
        .map(|(c, _)| c.as_str())
        .chain(TASK_STATE)
        .collect::<Vec<_>>()
        .join(", ");
    let (new, merged) = (format!("clientseg_new_{table}"), format!("clientseg_merged_{table}"));
    for temp in [&new, &merged] {
        tx.exec(
            &format!("CREATE TEMP TABLE {temp} AS SELECT {all} FROM {table} WHERE 1 = 0"),
            &[],
        )
        .map_err(sql)?;
    }
    let mut listed = rows_of(rows).map(|mut v| {
        v.extend([Some("open"), Some(run.run_id.as_str()), Some(run.run_id.as_str())]);
        v
    });
    tx.bulk(&new, &cols, &mut listed).map_err(sql)?;
    // Listed now: open, updated by this run, opened by it unless already open. Not listed
    // any more: closed by this run if they were open, else as they were. One full join.
    let keys: Vec<&str> = t.key_columns().collect();
    // Checked when read: a task table has a key.
    let Some(first_key) = keys.first() else { return Ok(()) };
    let gone = format!("n.{first_key} IS NULL");
    let carried: Vec<String> = t
        .other_columns()
        .chain(["updated_run"])
        .map(|c| format!("CASE WHEN {gone} THEN o.{c} ELSE n.{c} END"))
        .collect();
    let joined: Vec<String> = keys.iter().map(|k| format!("COALESCE(n.{k}, o.{k})")).collect();
    let on: Vec<String> = keys.iter().map(|k| format!("o.{k} = n.{k}")).collect();
    let targets: Vec<&str> = keys
        .iter()
        .copied()
        .chain(t.other_columns())
        .chain(["updated_run", "status", "opened_run", "closed_run", "closed_at"])
        .collect();
    tx.exec(
        &format!(
            "INSERT INTO {merged} ({})
            SELECT {}, {},
                CASE WHEN {gone} THEN 'closed' ELSE 'open' END,
                CASE WHEN {gone} OR o.status = 'open' THEN o.opened_run ELSE n.opened_run END,
                CASE WHEN NOT ({gone}) THEN NULL WHEN o.status = 'open' THEN CAST($1 AS TEXT) ELSE o.closed_run END,
                CASE WHEN NOT ({gone}) THEN NULL WHEN o.status = 'open' THEN CAST($2 AS TEXT) ELSE o.closed_at END
            FROM {new} n
            FULL OUTER JOIN {table} o ON {}",
            targets.join(", "),
            joined.join(", "),
            carried.join(", "),
            on.join(" AND ")
        ),
        &[Some(&run.run_id), Some(now)],
    )
    .map_err(|message| PushError::Sql {
        target: target.to_string(),
        doing: "closing tasks that no longer apply",
        message,
    })?;
    let empty = if tx.postgres() {
        format!("TRUNCATE {table}")
    } else {
        format!("DELETE FROM {table}")
    };
    tx.exec(&empty, &[]).map_err(sql)?;
    tx.exec(&format!("INSERT INTO {table} ({all}) SELECT {all} FROM {merged}"), &[])
        .map_err(sql)?;
    for temp in [&new, &merged] {
        tx.exec(&format!("DROP TABLE {temp}"), &[]).map_err(sql)?;
    }
    Ok(())
}

/// Pushes a run folder's labels to `url`. Returns what happened and the masked URL.
pub fn push(run_dir: &Path, url: &str, force: bool) -> Result<(Outcome, String), PushError> {
    let run = read_run(run_dir)?;
    let shown = redact(url);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let connect = |message: String| PushError::Connect {
        target: shown.clone(),
        message,
    };
    let sql = |doing, message| PushError::Sql {
        target: shown.clone(),
        doing,
        message,
    };
    let outcome = match parse_target(url)? {
        Target::Sqlite(path) => {
            let mut conn =
                rusqlite::Connection::open(&path).map_err(|e| connect(format!("{}: {e}", path.display())))?;
            {
                let mut tx = SqliteTx(
                    conn.transaction()
                        .map_err(|e| sql("starting a transaction", e.to_string()))?,
                );
                migrate(&mut tx, &shown, &run)?;
                tx.0.commit().map_err(|e| sql("migrating the schema", e.to_string()))?;
            }
            let mut tx = SqliteTx(
                conn.transaction()
                    .map_err(|e| sql("starting a transaction", e.to_string()))?,
            );
            let outcome = push_in(&mut tx, &run, force, &shown, &now)?;
            tx.0.commit().map_err(|e| sql("committing", e.to_string()))?;
            outcome
        }
        Target::Postgres(url) => {
            let mut config: postgres::Config = url
                .parse()
                .map_err(|e: postgres::Error| connect(scrub(&pg_message(&e), &url)))?;
            if config.get_password().is_none() {
                if let Ok(pw) = std::env::var("PGPASSWORD") {
                    config.password(pw);
                }
            }
            config.connect_timeout(std::time::Duration::from_secs(10));
            let password = config.get_password().map(|p| String::from_utf8_lossy(p).to_string());
            let clean = |m: String| match &password {
                Some(p) if !p.is_empty() => m.replace(p.as_str(), "***"),
                _ => m,
            };
            let mut client = config
                .connect(postgres::NoTls)
                .map_err(|e| connect(clean(pg_message(&e))))?;
            {
                let mut tx = PgTx(
                    client
                        .transaction()
                        .map_err(|e| sql("starting a transaction", clean(pg_message(&e))))?,
                );
                migrate(&mut tx, &shown, &run)?;
                tx.0.commit()
                    .map_err(|e| sql("migrating the schema", clean(pg_message(&e))))?;
            }
            let mut tx = PgTx(
                client
                    .transaction()
                    .map_err(|e| sql("starting a transaction", clean(pg_message(&e))))?,
            );
            let outcome = push_in(&mut tx, &run, force, &shown, &now).map_err(|e| match e {
                PushError::Sql { target, doing, message } => PushError::Sql {
                    target,
                    doing,
                    message: clean(message),
                },
                other => other,
            })?;
            tx.0.commit().map_err(|e| sql("committing", clean(pg_message(&e))))?;
            outcome
        }
    };
    Ok((outcome, shown))
}

/// Removes a URL's password from a message that might quote the URL.
fn scrub(message: &str, url: &str) -> String {
    message.replace(url, &redact(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://crm:s3cret@db.local:5432/crm"),
            "postgres://crm:***@db.local:5432/crm"
        );
        assert_eq!(redact("postgres://crm@db.local/crm"), "postgres://crm@db.local/crm");
        assert_eq!(
            redact("postgres://db.local/crm?user=a&password=x"),
            "postgres://db.local/crm?user=a&password=***"
        );
        assert_eq!(redact("sqlite:///tmp/crm.db"), "sqlite:///tmp/crm.db");
    }

    #[test]
    fn targets() {
        assert!(matches!(parse_target("sqlite:///tmp/a.db"), Ok(Target::Sqlite(p)) if p == Path::new("/tmp/a.db")));
        assert!(matches!(parse_target("sqlite://a.db"), Ok(Target::Sqlite(p)) if p == Path::new("a.db")));
        assert!(matches!(parse_target("postgresql://h/db"), Ok(Target::Postgres(_))));
        let e = parse_target("mysql://u:pw@h/db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("sqlite://") && !e.contains("pw"), "{e}");
    }

    #[test]
    fn insert_placeholders_count_up() {
        assert_eq!(
            insert_sql("t", &[("a", SqlType::Text), ("b", SqlType::Text)], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }
}
