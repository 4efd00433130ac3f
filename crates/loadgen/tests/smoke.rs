//! The load generator end to end, at a size that proves it works, not how fast: every
//! scenario on every adapter completes with no failed operation, and the report is written.
//! (Its figures come from `cargo run --release -p portcullis-loadgen`; no timing is
//! asserted here.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[tokio::test]
async fn every_scenario_runs_on_every_adapter_and_the_report_is_written() {
    let mut stores = "memory,sled".to_owned();
    if portcullis_test_support::postgres::available().await {
        stores.push_str(",postgres");
    }
    let out = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--stores", &stores])
        .args(["--populations", "40:40,80:0"])
        .args(["--seconds", "5", "--max-ops", "12", "--concurrency", "3"])
        .args(["--postgres", &portcullis_test_support::postgres::url()])
        .arg("--dir")
        .arg(data.path())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");

    let table = std::fs::read_to_string(out.path().join("http.md")).unwrap();
    for store in stores.split(',') {
        for scenario in ["status", "refresh", "email-code", "password", "passkey"] {
            for (users, sessions) in [("40", "40"), ("80", "0")] {
                let row = format!("| {store} | {users} | {sessions} | {scenario} |");
                let line = table
                    .lines()
                    .find(|l| l.starts_with(&row))
                    .unwrap_or_else(|| panic!("no row {row} in\n{table}"));
                // Operations ran (column 5: per second) and none failed.
                let per_second: f64 = line.split('|').nth(5).unwrap().trim().parse().unwrap();
                assert!(per_second > 0.0, "{line}");
                assert!(line.ends_with("| 0 |"), "{line}");
            }
        }
    }
    let svg = std::fs::read_to_string(out.path().join("http.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
    // The cells cleaned up after themselves.
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
}
