//! Persist: the run folder, written atomically (a hidden temporary folder renamed into
//! place at the end, removed if the run fails), and the run's manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::cluster::KScore;
use crate::config::Settings;
use crate::features::DisabledFeature;
use crate::ingest::InputFile;
use crate::validate::TableCounts;

#[derive(Debug, Error)]
pub enum PersistError {
    #[error("cannot create {path}: {source}. Check that the output folder is writable (set output.dir or --out)")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot move the finished run into place at {path}: {source}")]
    Commit { path: PathBuf, source: std::io::Error },
}

/// A run folder being written. Dropped without [`RunDir::commit`], it removes itself.
pub struct RunDir {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl RunDir {
    pub fn create(parent: &Path, run_id: &str) -> Result<RunDir, PersistError> {
        std::fs::create_dir_all(parent).map_err(|source| PersistError::Create {
            path: parent.to_path_buf(),
            source,
        })?;
        let mut target = parent.join(run_id);
        let mut n = 2;
        while target.exists() {
            target = parent.join(format!("{run_id}-{n}"));
            n += 1;
        }
        let name = target
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("charts")).map_err(|source| PersistError::Create {
            path: tmp.clone(),
            source,
        })?;
        Ok(RunDir {
            tmp,
            target,
            committed: false,
        })
    }

    /// Where files go while the run is in progress.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Where the run will be once committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn run_id(&self) -> String {
        self.target
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), PersistError> {
        let path = self.tmp.join(name);
        std::fs::write(&path, bytes).map_err(|source| PersistError::Write { path, source })
    }

    pub fn commit(mut self) -> Result<PathBuf, PersistError> {
        std::fs::rename(&self.tmp, &self.target).map_err(|source| PersistError::Commit {
            path: self.target.clone(),
            source,
        })?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| PersistError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).map_err(|source| PersistError::Write {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| PersistError::Commit {
        path: path.to_path_buf(),
        source,
    })
}

/// Versions of clientseg and its main dependencies.
pub fn versions() -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("clientseg".to_string(), env!("CARGO_PKG_VERSION").to_string());
    for pair in env!("CLIENTSEG_DEPENDENCIES").split(';').filter(|s| !s.is_empty()) {
        if let Some((n, ver)) = pair.split_once('=') {
            v.insert(n.to_string(), ver.to_string());
        }
    }
    v
}

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub stage: String,
    pub seconds: f64,
    /// Peak resident memory during the stage (Linux; absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
}

/// Resets the process's peak-RSS mark, so the next [`peak_rss_mib`] covers only what
/// follows (Linux `clear_refs`; a no-op elsewhere).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since start or the last [`reset_peak_rss`], in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentationSummary {
    pub features: Vec<String>,
    pub k: usize,
    pub inertia: f64,
    pub holdout_accuracy: f64,
    pub k_scores: Vec<KScore>,
    pub segments: Vec<SegmentSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentSummary {
    pub id: String,
    pub name_en: String,
    pub name_zh: String,
    pub size: usize,
}

/// Everything needed to understand and repeat a run.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub run_id: String,
    pub command: String,
    pub created_at: String,
    pub versions: BTreeMap<String, String>,
    pub seed: u64,
    pub snapshot_date: String,
    pub inputs: Vec<InputFile>,
    pub config: Settings,
    pub rows: Vec<TableCounts>,
    pub reject_lines: usize,
    pub top_reject_reasons: String,
    pub disabled_features: Vec<DisabledFeature>,
    pub value: SegmentationSummary,
    pub behaviour: Option<SegmentationSummary>,
    pub timings: Vec<Timing>,
    pub outputs: Vec<String>,
    /// Outputs not written in this run, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_outputs: Vec<String>,
    /// Matching with the previous run, when there was one.
    pub stability: Option<Stability>,
}

/// How this run's segments continue the previous run's.
#[derive(Debug, Clone, Serialize)]
pub struct Stability {
    pub previous_run: String,
    pub previous_run_dir: Option<String>,
    pub value: Vec<crate::segments::SegmentMatch>,
    pub behaviour: Vec<crate::segments::SegmentMatch>,
    pub moved: usize,
    pub new: usize,
    pub departed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_run_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let run = RunDir::create(dir.path(), "run-1").unwrap();
            run.write("labels.csv", b"x").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn committed_run_is_renamed_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let a = RunDir::create(dir.path(), "run-1").unwrap();
        a.write("labels.csv", b"a").unwrap();
        let pa = a.commit().unwrap();
        let b = RunDir::create(dir.path(), "run-1").unwrap();
        assert_eq!(b.run_id(), "run-1-2");
        let pb = b.commit().unwrap();
        assert_eq!(std::fs::read(pa.join("labels.csv")).unwrap(), b"a");
        assert!(pb.ends_with("run-1-2"));
    }

    #[test]
    fn versions_name_the_dependencies() {
        let v = versions();
        assert!(v.contains_key("clientseg"));
        assert!(v.contains_key("polars"), "{v:?}");
        assert!(v.contains_key("linfa-clustering"), "{v:?}");
    }
}
