//! `balancelab train` and `sweep`: headless runs from a TOML file, and errors that name the
//! bad field.

use std::fs;
use std::process::{Command, Output};

fn balancelab(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_balancelab"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

fn train(config: &str) -> (Output, tempfile::TempDir) {
    run("train", config)
}

/// `balancelab COMMAND --config <config> --out <tempdir>/out`.
fn run(command: &str, config: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.toml");
    fs::write(&path, config).unwrap();
    let out = dir.path().join("out");
    let output = balancelab(&[
        command.as_ref(),
        "--config".as_ref(),
        path.as_ref(),
        "--out".as_ref(),
        out.as_ref(),
    ]);
    (output, dir)
}

/// Asserts that the command failed and that its error output says each of `messages`.
fn fails_saying(output: &Output, messages: &[&str]) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(messages.iter().all(|m| stderr.contains(m)), "{stderr}");
}

fn events(out: &std::path::Path) -> Vec<serde_json::Value> {
    fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
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
    let events = events(&out);
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
fn a_finished_run_is_extended_from_its_checkpoint() {
    let (output, dir) = train(
        "epochs = 2\n[dataset]\nkind = \"synthetic\"\ntrain_samples = 256\ntest_samples = 64\n",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = dir.path().join("out");
    for file in [
        "last.safetensors",
        "last.json",
        "best.safetensors",
        "best.json",
    ] {
        assert!(out.join("checkpoints").join(file).is_file(), "{file}");
    }
    // Fewer epochs than it has is refused, naming the option.
    let resume = |epochs: &str| {
        balancelab(&[
            "train".as_ref(),
            "--resume".as_ref(),
            "--epochs".as_ref(),
            epochs.as_ref(),
            "--out".as_ref(),
            out.as_ref(),
        ])
    };
    fails_saying(
        &resume("2"),
        &["--epochs must be more than the run's 2 epochs"],
    );
    // Train one more epoch: --epochs raises them in the run's own config.
    let output = resume("3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("resuming at epoch 3"));
    let events = events(&out);
    let epochs: Vec<u64> = events
        .iter()
        .filter(|e| e["type"] == "epoch")
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2, 3]);
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["epochs"], 3);
    let config = fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("epochs = 3"), "{config}");
}

#[test]
fn a_missing_dataset_is_named_before_any_run_folder_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.toml");
    fs::write(&config, "[dataset]\nkind = \"mfeat\"\n").unwrap();
    let out = dir.path().join("out");
    let empty = dir.path().join("data");
    fs::create_dir_all(&empty).unwrap();
    let output = balancelab(&[
        "train".as_ref(),
        "--config".as_ref(),
        config.as_ref(),
        "--out".as_ref(),
        out.as_ref(),
        "--data-dir".as_ref(),
        empty.as_ref(),
    ]);
    fails_saying(
        &output,
        &["dataset.kind", "mfeat was not found in the data directory"],
    );
    assert!(!out.exists(), "no half-written run folder");
}

#[test]
fn resuming_without_a_checkpoint_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("empty");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("config.toml"), "epochs = 2\n").unwrap();
    let output = balancelab(&[
        "train".as_ref(),
        "--resume".as_ref(),
        "--out".as_ref(),
        out.as_ref(),
    ]);
    fails_saying(&output, &["has no checkpoint to resume from"]);
}

#[test]
fn every_preset_is_a_valid_configuration() {
    let presets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../presets");
    let mut checked = 0;
    for entry in fs::read_dir(&presets).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let config: balancelab_shared::RunConfig =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(errors) = config.validate() {
            panic!("{}: {errors:?}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 3, "{checked} presets");
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
        (
            "[optimizer]\nkind = \"adam\"\nweight_decay = -1.0\n",
            "optimizer.weight_decay: must be between 0 and 1",
        ),
        (
            "[model]\nfusion = \"gated\"\n[dataset]\nkind = \"synthetic\"\nnoise = [1.0, 2.0, 3.0]\n",
            "model.fusion: gated fusion is defined for exactly two modalities",
        ),
        ("[model]\nfusion = \"sum\"\n", "unknown variant `sum`"),
        ("device = \"gpu\"\n", "expected \"cpu\" or \"cuda:N\""),
    ] {
        let (output, _dir) = train(config);
        assert!(!output.status.success(), "{config}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{config}: {stderr}");
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn a_gpu_run_on_a_cpu_build_names_the_field_and_the_fix() {
    let (output, _dir) = train("device = \"cuda:1\"\n");
    fails_saying(
        &output,
        &["device: cuda:1 requested, but this build of BalanceLab has no CUDA"],
    );
}

#[test]
fn a_sweep_trains_its_grid_and_tabulates_the_results() {
    let (output, dir) = run(
        "sweep",
        "methods = [{ kind = \"joint\" }, { kind = \"mlb\", alpha = 0.8 }]\n\
         seeds = [0, 1]\n\
         [base]\nepochs = 1\nvalidation_fraction = 0.0\n\
         [base.dataset]\nkind = \"synthetic\"\ntrain_samples = 256\ntest_samples = 64\n",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    // Without a validation split the results could not read best validation epochs.
    assert!(
        stderr.contains("base.validation_fraction was 0"),
        "{stderr}"
    );
    let out = dir.path().join("out");
    let mut runs: Vec<String> = (fs::read_dir(&out).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("results"))
        .collect();
    runs.sort();
    assert_eq!(
        runs,
        [
            "01-joint-late-seed0",
            "02-joint-late-seed1",
            "03-mlb-late-seed0",
            "04-mlb-late-seed1"
        ]
    );
    for run in &runs {
        assert!(out.join(run).join("summary.json").exists(), "{run}");
        let config = fs::read_to_string(out.join(run).join("config.toml")).unwrap();
        assert!(config.contains("validation_fraction = 0.1"), "{config}");
    }
    // One row per method, each over its two seeds.
    let markdown = fs::read_to_string(out.join("results.md")).unwrap();
    let rows: Vec<&str> = markdown
        .lines()
        .filter(|l| l.starts_with("| joint") || l.starts_with("| mlb"))
        .collect();
    assert_eq!(rows.len(), 2, "{markdown}");
    assert!(
        rows.iter().all(|r| r.contains("| 2 |") && r.contains('±')),
        "{markdown}"
    );
    assert!(stdout.contains(&markdown), "the table is printed");
    let csv = fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
}

#[test]
fn a_bad_sweep_names_the_field_and_trains_nothing() {
    let (output, dir) = run(
        "sweep",
        "methods = [{ kind = \"mlb\", alpha = -1.0 }]\nseeds = [1, 1]\n[base]\nepochs = 1\n",
    );
    fails_saying(&output, &["methods[0].alpha", "seeds[1]"]);
    assert!(!dir.path().join("out").exists());
}
