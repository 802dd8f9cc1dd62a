//! `golden check --html`: the report of a drifting check opened in headless Chromium (Debian's
//! `chromium`, which `.ci/test` installs): the page renders, names the drifting tasks, and
//! takes a non-empty screenshot.
//!
//! Without `chromium` on the PATH the test fails, unless `TAPEDECK_SKIP_REAL_CLIENTS=1` (for
//! a machine that cannot install it; CI always has it).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{CANDIDATE, DRIFTING, Env, assert_exit};

/// How long Chromium may take to render the page once.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `chromium` runs; fails the test when it does not, unless skipping is allowed.
fn chromium_available() -> bool {
    let found = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    tapedeck_testkit::clients::require("`chromium`", found, "apt-get install chromium")
}

/// Runs headless Chromium with `args` on `page`, offline and with a profile in `profile`;
/// returns its stdout. Fails the test if it does not exit 0 within [`BROWSER_TIMEOUT`].
fn chromium(profile: &Path, args: &[&str], page: &Path) -> String {
    let out_path = profile.with_extension("stdout");
    let err_path = profile.with_extension("stderr");
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("create the stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("create the stderr file"))
        .spawn()
        .expect("start chromium");
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if began.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {args:?} took longer than {BROWSER_TIMEOUT:?}; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.success(),
        "chromium {args:?} exited with {status}:\n{stderr}"
    );
    std::fs::read_to_string(&out_path).expect("chromium's stdout")
}

#[test]
fn drift_report_renders_in_headless_chromium() {
    if !chromium_available() {
        return;
    }
    let env = Env::new();
    let result = env.golden(&[
        "check",
        "golden/support",
        "--agent",
        CANDIDATE,
        "--html",
        "report.html",
    ]);
    assert_exit(&result, 1);
    let page = env.path("report.html");
    assert!(page.is_file(), "no HTML report");

    let dom = chromium(&env.path("profile-dom"), &["--dump-dom"], &page);
    // The browser parsed the page: what it prints is its DOM, with the report's title, table
    // and a section per task.
    assert!(dom.contains("<html"), "no DOM:\n{dom}");
    // The report writes no <tbody>: the parser adds it, so this is Chromium's DOM, not the file.
    assert!(
        !std::fs::read_to_string(&page)
            .expect("the report")
            .contains("<tbody>")
            && dom.contains("<tbody>"),
        "not a parsed DOM:\n{dom}"
    );
    assert!(
        dom.contains("<title>tapedeck golden support</title>"),
        "no title:\n{dom}"
    );
    assert!(dom.contains("<table>"), "no overview table:\n{dom}");
    assert!(
        dom.contains("drift"),
        "the report does not say drift:\n{dom}"
    );
    for task in DRIFTING {
        assert!(
            dom.contains(&format!("id=\"task-{task}\"")),
            "no section for drifting task `{task}`"
        );
    }
    assert!(
        dom.contains("Task <code>password-reset</code>: <span class=\"drift\">drift</span>"),
        "password-reset is not shown drifting:\n{dom}"
    );

    let png = env.path("report.png");
    chromium(
        &env.path("profile-png"),
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,2000",
            "--hide-scrollbars",
        ],
        &page,
    );
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(
        bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG ({} bytes)",
        bytes.len()
    );
}
