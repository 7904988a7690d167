//! Progress and timing of a run's stages: a spinner on the terminal while a stage runs,
//! and each stage's wall time and peak memory for the manifest.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub stage: String,
    pub seconds: f64,
    /// Peak resident memory during the stage (Linux; absent elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
    /// The stage this work ran inside of, beside its other work: its time is part of
    /// that stage's and is not added again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
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

/// While it lives, memory the allocator frees goes back to the system within 0.1 s
/// (1 s for large blocks) instead of mimalloc's 1 s (10 s): while the input tables are
/// read, checked and turned into features, large buffers are freed and others taken in
/// turn, and what the allocator keeps adds up to the run's peak. Later stages, which
/// free and take small buffers by the million (the pages), keep the default: returning
/// them promptly makes them four times slower.
pub struct PromptRelease;

/// mimalloc 3's `mi_option_purge_delay` (milliseconds; 1,000 by default; large blocks
/// wait 10 times longer).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

impl PromptRelease {
    pub fn start() -> PromptRelease {
        // SAFETY: sets one integer option; mimalloc reads it when it next purges.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 100) };
        PromptRelease
    }
}

impl Drop for PromptRelease {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 1000) };
    }
}

/// Stage timing and a spinner while a stage runs.
pub struct Stages {
    pub timings: Vec<Timing>,
    bar: ProgressBar,
}

impl Stages {
    pub fn new(show: bool) -> Stages {
        let bar = if show {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Stages {
            timings: Vec::new(),
            bar,
        }
    }

    /// Runs one stage, timed; `f` may report progress on the bar.
    pub fn run<T>(&mut self, name: &str, f: impl FnOnce(&ProgressBar) -> T) -> T {
        let n = self.timings.len() + 1;
        self.bar.set_message(format!("[{n}] {name}"));
        reset_peak_rss();
        let start = Instant::now();
        let out = f(&self.bar);
        self.timings.push(Timing {
            stage: name.to_string(),
            seconds: start.elapsed().as_secs_f64(),
            peak_rss_mib: peak_rss_mib(),
            within: None,
        });
        out
    }

    /// Records work that ran inside stage `parent`, beside its other work: its time is
    /// part of the parent's.
    pub fn within(&mut self, name: &str, seconds: f64, parent: &str) {
        self.timings.push(Timing {
            stage: name.to_string(),
            seconds,
            peak_rss_mib: None,
            within: Some(parent.to_string()),
        });
    }
}

impl Drop for Stages {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
