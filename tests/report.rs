use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// Chromium, which scripts/test.sh installs. The test that calls this is ignored by
/// plain `cargo test`; run with --include-ignored without a browser, it fails saying so.
fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(|n| Command::new("which").arg(n).output())
        .filter_map(|o| o.ok())
        .find(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .expect("no Chromium found: scripts/test.sh installs it")
}

/// A browser call, killed if it hangs.
fn within(cmd: &mut Command) -> std::process::Output {
    output_within(cmd, std::time::Duration::from_secs(120))
}

/// Headless Chromium as the environment allows it: no sandbox as root, no network.
fn browser(exe: &Path, profile: &Path) -> Command {
    let mut c = Command::new(exe);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
    ])
    .args([
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The demo-like run, then a second month with changed clients, rendered in `lang`.
fn two_runs(dir: &Path, lang: &str) -> PathBuf {
    generate(&dir.join("a"), 400, 17, &[]);
    generate(&dir.join("b"), 400, 17, &["--changed", "0.1"]);
    for (name, data) in [("a.toml", "a"), ("b.toml", "b")] {
        std::fs::write(dir.join(name), format!("seed = 5\nlang = \"{lang}\"\n[input]\ndir = \"{data}\"\n[output]\ndir = \"runs\"\nmodels_dir = \"models\"\n")).unwrap();
    }
    run(
        &[
            "run",
            "--config",
            &dir.join("a.toml").to_string_lossy(),
            "--out",
            "ra",
            "--quiet",
        ],
        dir,
        true,
    );
    run(
        &[
            "run",
            "--config",
            &dir.join("b.toml").to_string_lossy(),
            "--out",
            "rb",
            "--quiet",
        ],
        dir,
        true,
    );
    run_dir(&dir.join("rb"))
}

#[test]
#[ignore = "needs Chromium: scripts/test.sh installs it and runs ignored tests"]
fn report_opens_in_a_browser_with_every_section() {
    let exe = chromium();
    for (lang, heading) in [("en", "Client segmentation"), ("zh", "客户分类报告")] {
        let tmp = tempfile::tempdir().unwrap();
        let run = two_runs(tmp.path(), lang);
        let page = format!("file://{}", run.join("report.html").display());
        let profile = tmp.path().join("profile");

        let out = within(browser(&exe, &profile).args(["--dump-dom", &page]));
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(dom.contains(heading), "{lang}: heading missing");
        for id in [
            "data-quality",
            "k-selection",
            "value-tiers",
            "segments",
            "charts",
            "migration",
        ] {
            assert!(dom.contains(&format!("id=\"{id}\"")), "{lang}: section {id} missing");
        }
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
        let k = m["value"]["k"].as_u64().unwrap() + m["behaviour"]["k"].as_u64().unwrap();
        assert_eq!(
            dom.matches("class=\"card\"").count() as u64,
            k,
            "{lang}: one card per tier and segment"
        );
        // k selection, scatter, sizes, heatmap, revenue, and two transition charts.
        assert!(dom.matches("<svg").count() >= 7, "{lang}: charts missing");
        assert!(dom.contains("migration.csv"), "{lang}: migration summary missing");
        assert!(
            !dom.contains("src=\"http") && !dom.contains("href=\"http"),
            "{lang}: the page must not load anything from the network"
        );

        // The first screen, kept as a test artefact.
        let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("report-first-screen-{lang}.png"));
        let out = within(browser(&exe, &profile).args([
            "--window-size=1280,900",
            &format!("--screenshot={}", shot.display()),
            &page,
        ]));
        assert!(out.status.success());
        let png = std::fs::read(&shot).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        println!("screenshot: {}", shot.display());
    }
}
