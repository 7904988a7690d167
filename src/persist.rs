//! Persist: the run folder, written atomically (a hidden temporary folder renamed into
//! place at the end, removed if the run fails), and the run's manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

pub use crate::analysis::{SegmentSummary, SegmentationSummary};
use crate::features::DisabledFeature;
use crate::ingest::InputFile;
pub use crate::progress::{peak_rss_mib, reset_peak_rss, Timing};
pub use crate::stability::Stability;
use crate::validate::TableCounts;

#[derive(Debug, Error)]
pub enum PersistError {
    #[error("cannot create {path}: {source}. Check that the output folder is writable (set output.dir or --out)")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot move the finished run into place at {path}: {source}")]
    Commit { path: PathBuf, source: std::io::Error },
    #[error("cannot write the {what} as JSON: {source}. This is a bug in clientseg; please report it with the command you ran")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("the {what} {path} is not writable: {source}. Choose a folder you can write to (output.dir / output.models_dir in the config, or --out)")]
    NotWritable {
        path: PathBuf,
        what: String,
        source: std::io::Error,
    },
}

/// Unfinished outputs of this process (run folders, temporary files): removed by
/// [`abandon_unfinished`] when the run is interrupted.
static UNFINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn unfinished() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    UNFINISHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks a file or folder as unfinished until [`untrack_unfinished`].
pub fn track_unfinished(path: &Path) {
    unfinished().push(path.to_path_buf());
}

pub fn untrack_unfinished(path: &Path) {
    unfinished().retain(|p| p != path);
}

/// Removes every unfinished output of this process and returns with the lock held, so
/// that nothing is committed after it (called on Ctrl-C, just before the process exits).
pub fn abandon_unfinished() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    let mut live = unfinished();
    for p in live.drain(..) {
        remove_while_written(&p);
    }
    live
}

/// Removes a folder (or file) that other threads of this process may still be writing
/// into: a file created while the folder is emptied makes one removal fail, so it is
/// retried until the path is gone.
fn remove_while_written(p: &Path) {
    for _ in 0..200 {
        if std::fs::remove_dir_all(p).is_err() {
            let _ = std::fs::remove_file(p);
        }
        if std::fs::symlink_metadata(p).is_err() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The finished run folders in `dir` (those with a manifest; partial folders are hidden),
/// in the order of their names: the run's kind, then when it started.
pub fn run_folders(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<std::path::PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.join("manifest.json").is_file() && p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

/// Whether process `pid` still runs (a partial folder of a live run is not debris).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence only; EPERM means it exists under another user.
    // SAFETY: kill with signal 0 sends nothing.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// The process that owns a hidden `.NAME.partial-PID` folder or `.NAME.tmp-PID` file.
fn owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, pid) = rest.rsplit_once(".partial-").or_else(|| rest.rsplit_once(".tmp-"))?;
    pid.parse().ok()
}

/// Removes what killed runs left in `dir`: partial folders and temporary files whose
/// process is gone.
pub fn remove_debris(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = owner(&name) {
            if pid != std::process::id() && !alive(pid) {
                let p = e.path();
                if std::fs::remove_dir_all(&p).is_err() {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
    }
}

/// An exclusive lock on a folder (flock), held while a run name is chosen there, so
/// that two runs started in the same second never pick the same one.
struct FolderLock {
    _held: std::fs::File,
}

impl FolderLock {
    fn take(dir: &Path) -> Option<FolderLock> {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(dir).ok()?;
        // SAFETY: a valid open descriptor; the lock goes with it when it is closed.
        let ok = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0;
        ok.then_some(FolderLock { _held: f })
    }
}

/// Checks that `dir` can be written (creating it if needed), before any work is done:
/// a read-only output or models folder is named at the start, not after the run.
pub fn check_writable(dir: &Path, what: &str) -> Result<(), PersistError> {
    let fail = |source| PersistError::NotWritable {
        path: dir.to_path_buf(),
        what: what.to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".clientseg-probe.tmp-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// A run folder being written. Dropped without [`RunDir::commit`], it removes itself.
pub struct RunDir {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl RunDir {
    /// Reserves a run folder named `run_id` (or `run_id-2`, `-3`, ... when taken) under
    /// `parent`, and removes debris of killed runs there.
    pub fn create(parent: &Path, run_id: &str) -> Result<RunDir, PersistError> {
        std::fs::create_dir_all(parent).map_err(|source| PersistError::Create {
            path: parent.to_path_buf(),
            source,
        })?;
        let lock = FolderLock::take(parent);
        remove_debris(parent);
        let taken = |name: &str| {
            parent.join(name).exists()
                || std::fs::read_dir(parent).is_ok_and(|mut entries| {
                    let prefix = format!(".{name}.partial-");
                    entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(&prefix)))
                })
        };
        let mut name = run_id.to_string();
        let mut n = 2;
        while taken(&name) {
            name = format!("{run_id}-{n}");
            n += 1;
        }
        let target = parent.join(&name);
        let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
        let mut live = unfinished();
        std::fs::create_dir_all(tmp.join("charts")).map_err(|source| PersistError::Create {
            path: tmp.clone(),
            source,
        })?;
        live.push(tmp.clone());
        drop(live);
        drop(lock);
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
        let mut live = unfinished();
        std::fs::rename(&self.tmp, &self.target).map_err(|source| PersistError::Commit {
            path: self.target.clone(),
            source,
        })?;
        live.retain(|p| p != &self.tmp);
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.committed {
            let mut live = unfinished();
            let _ = std::fs::remove_dir_all(&self.tmp);
            live.retain(|p| p != &self.tmp);
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
    // Temporary files of killed runs (models/.latest.json.tmp-PID) go first.
    remove_debris(dir);
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    unfinished().push(tmp.clone());
    let written = std::fs::write(&tmp, bytes).map_err(|source| PersistError::Write {
        path: tmp.clone(),
        source,
    });
    let mut live = unfinished();
    let done = written.and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|source| PersistError::Commit {
            path: path.to_path_buf(),
            source,
        })
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    live.retain(|p| p != &tmp);
    done
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

/// The model a `score` run applied, and how often its decision trees agree with the
/// centroid labels on this data.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredWith {
    pub model: String,
    pub model_run_id: String,
    pub tree_agreement: BTreeMap<String, f64>,
}

/// A table an analysis declared, as read.
#[derive(Debug, Clone, Serialize)]
pub struct DeclaredInput {
    pub table: String,
    pub path: String,
    pub sha256: String,
    pub rows: usize,
    pub accepted: usize,
    /// Totals rows (合计) skipped, not counted in `rows`.
    pub totals_skipped: usize,
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
    /// The resolved configuration.
    pub config: serde_json::Value,
    pub rows: Vec<TableCounts>,
    pub reject_lines: usize,
    pub top_reject_reasons: String,
    pub disabled_features: Vec<DisabledFeature>,
    /// The segmentations, in the analyses' order (written under `analyses.<id>`).
    #[serde(skip)]
    pub segmentations: Vec<SegmentationSummary>,
    /// The tables the analyses declared and read besides the built-in ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub declared_inputs: Vec<DeclaredInput>,
    /// What the analyses declared about their columns (`push` and `diff` read it).
    pub columns: crate::columns::Catalogue,
    /// Each analysis's own part, by its id (a segmentation's is its summary).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub analyses: BTreeMap<String, serde_json::Value>,
    /// Their one-line results, as the summary prints them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headlines: Vec<String>,
    /// For `score`: the model that labelled the clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scored_with: Option<ScoredWith>,
    pub timings: Vec<Timing>,
    pub outputs: Vec<String>,
    /// Outputs not written in this run, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_outputs: Vec<String>,
    /// Matching with the previous run, when there was one.
    pub stability: Option<Stability>,
    /// What the analyst must know about the data to trust the results.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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
    fn debris_of_dead_processes_is_removed_and_live_runs_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        // A pid far above any pid_max: no such process.
        let dead = dir.path().join(".run-1.partial-2147483000");
        std::fs::create_dir_all(dead.join("charts")).unwrap();
        std::fs::write(dir.path().join(".latest.json.tmp-2147483000"), b"x").unwrap();
        let mine = dir.path().join(format!(".run-0.partial-{}", std::process::id()));
        std::fs::create_dir_all(&mine).unwrap();
        let run = RunDir::create(dir.path(), "run-1").unwrap();
        assert!(!dead.exists());
        assert!(!dir.path().join(".latest.json.tmp-2147483000").exists());
        assert!(mine.exists(), "a live process's folder stays");
        assert_eq!(run.run_id(), "run-1");
    }

    #[test]
    fn atomic_writes_remove_temporary_files_of_dead_processes() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".latest.json.tmp-2147483000");
        std::fs::write(&stale, b"half").unwrap();
        write_atomic(&dir.path().join("latest.json"), b"{}").unwrap();
        assert!(!stale.exists());
        assert_eq!(std::fs::read(dir.path().join("latest.json")).unwrap(), b"{}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn runs_started_at_once_get_distinct_names() {
        let dir = tempfile::tempdir().unwrap();
        let runs: Vec<RunDir> = (0..4).map(|_| RunDir::create(dir.path(), "run-x").unwrap()).collect();
        let mut ids: Vec<String> = runs.iter().map(|r| r.run_id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 4, "{ids:?}");
        for r in runs {
            r.commit().unwrap();
        }
    }

    #[test]
    fn unwritable_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = check_writable(&file.join("models"), "models folder").unwrap_err();
        assert!(err.to_string().contains("models folder"), "{err}");
    }

    #[test]
    fn versions_name_the_dependencies() {
        let v = versions();
        assert!(v.contains_key("clientseg"));
        assert!(v.contains_key("polars"), "{v:?}");
        assert!(v.contains_key("linfa-clustering"), "{v:?}");
    }
}
