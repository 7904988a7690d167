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
        let k = m["analyses"]["value"]["k"].as_u64().unwrap() + m["analyses"]["behaviour"]["k"].as_u64().unwrap();
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

/// An accountant's page of actions on a phone (375 px) and a desktop (1280 px): every
/// action of that accountant is on it, and nothing is wider than the screen.
#[test]
#[ignore = "needs Chromium: scripts/test.sh installs it and runs ignored tests"]
fn action_pages_fit_a_phone() {
    let exe = chromium();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("data"), 600, 19, &[]);
    // Every tenth client gets a long name without spaces, which must wrap on a phone.
    let path = dir.join("data/clients.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let long = "LONGNAME".repeat(12);
    let edited: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i > 0 && i % 10 == 0 {
                let mut c: Vec<&str> = l.splitn(3, ',').collect();
                c[1] = &long;
                c.join(",")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&path, edited.join("\n") + "\n").unwrap();
    let (run, _) = pipeline(dir, "lang = \"zh\"");
    let actions = read_csv(&run.join("actions.csv"));
    let owners = strings(&actions, "owner");
    let clients = strings(&actions, "client_id");
    let kinds = strings(&actions, "action");
    let mut count: std::collections::HashMap<&str, usize> = Default::default();
    for o in &owners {
        *count.entry(o.as_str()).or_default() += 1;
    }
    // The accountant with the most actions among those with a long-named client.
    let names = strings(&actions, "name");
    let with_long: std::collections::HashSet<&str> = (0..owners.len())
        .filter(|&i| names[i] == long)
        .map(|i| owners[i].as_str())
        .collect();
    let (busiest, n) = count
        .iter()
        .filter(|(o, _)| with_long.contains(**o))
        .max_by_key(|(o, c)| (**c, std::cmp::Reverse(**o)))
        .unwrap();
    assert!(*n > 5, "{busiest} has {n} actions");
    let page = run.join("actions").join(format!("{busiest}.html"));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(run.join("actions/index.html").is_file());
    // Their clients by tier and hours, from accountants.parquet, in Chinese words.
    assert!(
        html.contains("客户与工作量") && html.contains("月工时"),
        "no workload on the page"
    );
    assert!(run.join("accountants.parquet").is_file());
    // The test measures the page with a script of its own, in a copy. Headless Chromium
    // will not open a window narrower than 500 px, so the phone's 375 px is a box of that
    // width holding the page's body; the desktop is the window itself.
    let probe = |width: u32| -> std::path::PathBuf {
        let path = dir.join(format!("probe-{width}.html"));
        let (open, close, measure) = if width < 500 {
            (
                format!("<body><div id=\"phone\" style=\"width:{width}px;overflow:auto\">"),
                "</div>",
                "var e = document.getElementById('phone'); document.body.setAttribute('data-fit', e.scrollWidth + 'x' + e.clientWidth)",
            )
        } else {
            (
                "<body>".to_string(),
                "",
                "document.body.setAttribute('data-fit', document.documentElement.scrollWidth + 'x' + document.documentElement.clientWidth)",
            )
        };
        let page = html
            .replacen("<body>", &open, 1)
            .replace("</body>", &format!("{close}<script>{measure}</script></body>"));
        std::fs::write(&path, page).unwrap();
        path
    };
    for width in [375, 1280] {
        let profile = dir.join(format!("profile-{width}"));
        let out = within(browser(&exe, &profile).args([
            &format!("--window-size={width},900"),
            "--dump-dom",
            &format!("file://{}", probe(width).display()),
        ]));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let dom = String::from_utf8_lossy(&out.stdout);
        // Every action as a card in its type's list.
        for i in (0..owners.len()).filter(|&i| owners[i] == *busiest) {
            let list = dom
                .split(&format!("<section id=\"{}\">", kinds[i]))
                .nth(1)
                .and_then(|rest| rest.split("</section>").next())
                .unwrap_or_else(|| panic!("{width}px: no list of {}", kinds[i]));
            let card = format!("data-client=\"{}\"", clients[i]);
            assert!(list.contains(&card), "{width}px: {} {card} missing", kinds[i]);
        }
        assert_eq!(
            dom.matches("data-client=\"").count(),
            *n,
            "{width}px: one card per action"
        );
        let fit = dom
            .split("data-fit=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("measured");
        let (scroll, client) = fit.split_once('x').unwrap();
        assert_eq!(scroll, client, "{width}px: the page is wider than the screen ({fit})");
        if width == 375 {
            assert!(client.parse::<u32>().unwrap() <= 375, "the box was not narrow: {fit}");
        }
    }
}
