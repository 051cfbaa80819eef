//! The `jarvis-realtime-emulator` binary as scripts use it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_jarvis-realtime-emulator");

fn fixture(name: &str) -> String {
    format!(
        "{}/../../tests/fixtures/scenarios/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[tokio::test]
async fn binary_prints_its_base_url_and_serves() {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--scenario",
            &fixture("timer.toml"),
        ])
        .args(["--fault", "http-status=429", "--fault", "retry-after=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(20), line)
        .await
        .expect("guard timeout waiting for the emulator to start")
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .to_string();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/v1"),
        "{base}"
    );
    let r = reqwest::Client::new()
        .post(format!("{base}/realtime/client_secrets"))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let out = Command::new(BIN)
        .args(["--scenario", "/nonexistent/scenario.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/scenario.toml"), "{err}");

    let out = Command::new(BIN)
        .args(["--scenario", &fixture("timer.toml"), "--fault", "explode"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("explode") && err.contains("http-status=CODE"),
        "{err}"
    );
}
