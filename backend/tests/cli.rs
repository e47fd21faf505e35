//! `balancelab train`: headless runs from a TOML file, and errors that name the bad field.

use std::fs;
use std::process::{Command, Output};

fn train(config: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.toml");
    fs::write(&path, config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_balancelab"))
        .args(["train", "--config"])
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("out"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (output, dir)
}

#[test]
fn a_run_writes_its_config_metrics_and_summary() {
    let (output, dir) = train(
        "epochs = 2\n[method]\nkind = \"mlb\"\nalpha = 0.5\n\
         [dataset]\nkind = \"synthetic\"\ntrain_samples = 256\ntest_samples = 64\n",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = dir.path().join("out");
    let resolved = fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        resolved.contains("alpha = 0.5") && resolved.contains("batch_size = 64"),
        "{resolved}"
    );
    let events: Vec<serde_json::Value> = fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "started");
    assert_eq!(events.iter().filter(|e| e["type"] == "epoch").count(), 2);
    assert_eq!(events.last().unwrap()["type"], "finished");
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["epochs"], 2);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("epoch    2") && stdout.contains("m1 (noise 3)"),
        "{stdout}"
    );
}

#[test]
fn unknown_keys_and_bad_values_name_the_field() {
    for (config, expected) in [
        ("epoch = 3\n", "unknown field `epoch`"),
        ("epochs = 0\n", "epochs: must be between 1 and 10000, got 0"),
        (
            "[method]\nkind = \"mlb\"\nalpha = -2.0\n",
            "method.alpha: must be greater than 0",
        ),
    ] {
        let (output, _dir) = train(config);
        assert!(!output.status.success(), "{config}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{config}: {stderr}");
    }
}
