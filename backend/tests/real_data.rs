//! Training on the real small datasets of the data directory: `BALANCELAB_DATA_DIR`, or the
//! workspace's sibling `../shared/data` where the project keeps them. Each test is ignored
//! by a plain `cargo test` (the test runner counts it as such, not as passed); scripts/test
//! runs them with `--ignored` wherever the data is, and says how many ran. Run by hand
//! where the data is missing, a test fails saying where it looked.

use std::path::PathBuf;

use balancelab::engine::{CancelToken, Checkpointing, RunSummary, TrainingEvent};
use balancelab_shared::{EpochMetrics, RunConfig};

fn data_dir() -> PathBuf {
    let dir = std::env::var_os("BALANCELAB_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    assert!(
        dir.join("mfeat").is_dir(),
        "no real data at {}: set BALANCELAB_DATA_DIR",
        dir.display()
    );
    dir
}

/// The last epoch's metrics and the summary of a run.
fn train(config: &RunConfig) -> (EpochMetrics, RunSummary) {
    let dir = data_dir();
    let (mut last, mut summary) = (None, None);
    balancelab::train_run(
        config,
        Some(&dir),
        Checkpointing::default(),
        &CancelToken::default(),
        &mut |event| match event {
            TrainingEvent::Epoch(m) => last = Some(m),
            TrainingEvent::Finished(s) => summary = Some(s),
            TrainingEvent::Failed { error } => panic!("{error}"),
            _ => {}
        },
    );
    (last.unwrap(), summary.unwrap())
}

fn last_epoch(toml_config: &str) -> EpochMetrics {
    train(&toml::from_str(toml_config).unwrap()).0
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn std(values: &[f64]) -> f64 {
    let m = mean(values);
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

#[test]
#[ignore = "needs the real data (BALANCELAB_DATA_DIR or ../shared/data)"]
fn mlb_beats_joint_training_on_every_seed() {
    // fac (216 profile correlations) + zer (47 Zernike moments): zer is the weak view.
    let base = "epochs = 30\nbatch_size = 32\nlearning_rate = 0.01\n\
                [dataset]\nkind = \"mfeat\"\nviews = [\"fac\", \"zer\"]\n";
    let mut gains = (Vec::new(), Vec::new());
    for seed in 0..3 {
        let run = |method: &str| {
            let config: RunConfig =
                toml::from_str(&format!("seed = {seed}\n{base}[method]\n{method}\n")).unwrap();
            train(&config).1.test
        };
        let (joint, mlb) = (run("kind = \"joint\""), run("kind = \"mlb\"\nalpha = 0.8"));
        eprintln!(
            "seed {seed}: joint fused {:.3} zer {:.3}; MLB fused {:.3} zer {:.3}",
            joint.fused, joint.unimodal[1], mlb.fused, mlb.unimodal[1]
        );
        gains.0.push(mlb.fused - joint.fused);
        gains.1.push(mlb.unimodal[1] - joint.unimodal[1]);
    }
    eprintln!(
        "MLB - joint: fused {:+.4} +- {:.4}, zer {:+.4} +- {:.4}",
        mean(&gains.0),
        std(&gains.0),
        mean(&gains.1),
        std(&gains.1)
    );
    // Measured (3 seeds, last epoch): joint fused 0.971 +- 0.001, zer 0.728 +- 0.002; MLB
    // fused 0.977 +- 0.001, zer 0.828 +- 0.005. Per seed the fused gain was 0.005 to 0.008
    // and the zer gain 0.097 to 0.103: thresholds at about half of the smallest.
    assert!(
        gains.0.iter().all(|&g| g > 0.002),
        "fused gains {:?}",
        gains.0
    );
    assert!(gains.1.iter().all(|&g| g > 0.05), "zer gains {:?}", gains.1);
}

#[test]
#[ignore = "needs the real data (BALANCELAB_DATA_DIR or ../shared/data)"]
fn digit_halves_train_to_high_accuracy() {
    let m = last_epoch(
        "epochs = 5\nbatch_size = 32\n[method]\nkind = \"multi_loss\"\n[dataset]\nkind = \"digits_halves\"\n",
    );
    // Measured (seed 0): 0.950 fused, 0.803 for each half's head.
    assert!(m.test.fused > 0.9, "{m:?}");
    assert!(m.test.unimodal.iter().all(|&a| a > 0.7), "{m:?}");
}

#[test]
#[ignore = "needs the real data (BALANCELAB_DATA_DIR or ../shared/data)"]
fn mfeat_fac_mor_is_imbalanced_and_mlb_boosts_mor() {
    let m = last_epoch(
        "epochs = 10\nbatch_size = 32\n[method]\nkind = \"mlb\"\nalpha = 0.8\n\
         [dataset]\nkind = \"mfeat\"\nviews = [\"fac\", \"mor\"]\n",
    );
    // fac is far more informative than the 6 morphological features: the heads' confidence
    // differs, so MLB accelerates mor (k > 1) and slows fac (k < 1). Measured (seed 0):
    // fused 0.977, fac 0.967, mor 0.705; mean k over the last epoch 0.728 (fac), 1.409 (mor).
    assert!(m.confidences[0] > m.confidences[1], "{m:?}");
    assert!(m.coefficients[1] > 1.0 && m.coefficients[0] < 1.0, "{m:?}");
    assert!(m.test.fused > 0.9 && m.test.unimodal[1] > 0.5, "{m:?}");
}

#[test]
#[ignore = "needs the real data (BALANCELAB_DATA_DIR or ../shared/data)"]
fn fsdd_spectrograms_match_librosa() {
    let dir = data_dir();
    use balancelab::data::audio::{read_wav, tile, LogSpectrogram};
    // Written by scripts/reference/fsdd_stft.py (librosa 0.11.0, numpy 2.4.6).
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/fsdd_stft.json")).unwrap();
    let stft = LogSpectrogram::new(256, 128);
    let files = expected["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    for file in files {
        let name = file["name"].as_str().unwrap();
        let (samples, rate) = read_wav(&dir.join("fsdd/recordings").join(name)).unwrap();
        assert_eq!(u64::from(rate), file["rate"].as_u64().unwrap(), "{name}");
        assert_eq!(
            samples.len() as u64,
            file["samples"].as_u64().unwrap(),
            "{name}"
        );
        let out = stft.compute(&tile(&samples, 8000));
        let frames = stft.frames(8000);
        assert_eq!([stft.bins(), frames], [129, 63]);
        let mean = out.iter().map(|&v| f64::from(v)).sum::<f64>() / out.len() as f64;
        let expected_mean = file["mean"].as_f64().unwrap();
        assert!(
            (mean - expected_mean).abs() < 1e-4,
            "{name}: mean {mean} vs {expected_mean}"
        );
        let mut worst = 0f64;
        for (t, column) in file["frames"].as_object().unwrap() {
            let t: usize = t.parse().unwrap();
            for (f, v) in column.as_array().unwrap().iter().enumerate() {
                let diff = (f64::from(out[f * frames + t]) - v.as_f64().unwrap()).abs();
                worst = worst.max(diff);
            }
        }
        eprintln!("{name}: largest difference from librosa {worst:.2e}");
        assert!(worst < 1e-4, "{name}: {worst}");
    }
}

#[test]
#[ignore = "needs the real data (BALANCELAB_DATA_DIR or ../shared/data)"]
fn crema_d_audio_path_matches_librosa_and_soxr() {
    let dir = data_dir();
    use balancelab::data::audio::ClipAudio;
    // Written by scripts/reference/crema_audio.py (librosa 0.11.0, soxr 1.1.0, numpy 2.4.6):
    // FSDD's 8 kHz recordings through CREMA-D's pipeline (22.05 kHz, 3 s, 512 / 353).
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/crema_audio.json")).unwrap();
    let audio = ClipAudio {
        source_rate: None,
        ..ClipAudio::CREMA_D
    };
    let (bins, frames) = (257, 188);
    assert_eq!(audio.shape(), [1, bins, frames]);
    for file in expected["files"].as_array().unwrap() {
        let name = file["name"].as_str().unwrap();
        let path = dir.join("fsdd/recordings").join(name);
        let values = |key: &str| -> Vec<f64> {
            let array = file[key].as_array().unwrap();
            array.iter().map(|v| v.as_f64().unwrap()).collect()
        };
        // The resampled waveform before tiling: libsoxr HQ, as librosa.load(sr=22050).
        let (raw, rate) = balancelab::data::audio::read_wav(&path).unwrap();
        let length = file["resampled_length"].as_u64().unwrap() as usize;
        let resampled = &audio.waveform(&path).unwrap()[..length];
        assert_eq!(
            length as u64,
            (raw.len() as u64 * 22_050).div_ceil(u64::from(rate))
        );
        let mut worst_wave = 0f64;
        for (offset, key) in [(0, "resampled_head"), (length / 2, "resampled_middle")] {
            for (i, v) in values(key).iter().enumerate() {
                worst_wave = worst_wave.max((f64::from(resampled[offset + i]) - v).abs());
            }
        }
        let out = audio.spectrogram(&path).unwrap();
        assert_eq!(out.len(), bins * frames);
        let mean = out.iter().map(|&v| f64::from(v)).sum::<f64>() / out.len() as f64;
        let expected_mean = file["mean"].as_f64().unwrap();
        let mut worst = (mean - expected_mean).abs();
        for (t, column) in file["frames"].as_object().unwrap() {
            let t: usize = t.parse().unwrap();
            for (f, v) in column.as_array().unwrap().iter().enumerate() {
                let diff = (f64::from(out[f * frames + t]) - v.as_f64().unwrap()).abs();
                worst = worst.max(diff);
            }
        }
        eprintln!("{name}: waveform {worst_wave:.2e}, log spectrogram {worst:.2e} from librosa");
        assert!(worst_wave < 1e-6, "{name}: waveform {worst_wave}");
        assert!(worst < 1e-4, "{name}: spectrogram {worst}");
    }
}

#[test]
#[ignore = "needs the real data (BALANCELAB_DATA_DIR or ../shared/data)"]
fn av_digits_train_from_the_data_dir() {
    let m = last_epoch(
        "epochs = 3\nbatch_size = 32\n[method]\nkind = \"joint\"\n[dataset]\nkind = \"av_digits\"\n",
    );
    eprintln!("AV digits, joint, 3 epochs: {:?}", m.test);
    assert!(m.test.fused > 0.8, "{:?}", m.test);
}

#[test]
#[ignore = "needs the real data (BALANCELAB_DATA_DIR or ../shared/data)"]
fn the_cli_trains_on_av_digits_and_mfeat() {
    let dir = data_dir();
    for (dataset, floor) in [
        ("kind = \"av_digits\"", 0.8),
        ("kind = \"mfeat\"\nviews = [\"fac\", \"mor\"]", 0.8),
    ] {
        let run = tempfile::tempdir().unwrap();
        let config = run.path().join("run.toml");
        std::fs::write(
            &config,
            format!(
                "epochs = 2\nbatch_size = 32\n[method]\nkind = \"mlb\"\n[dataset]\n{dataset}\n"
            ),
        )
        .unwrap();
        let out = run.path().join("out");
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_balancelab"))
            .args(["train", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&out)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{dataset}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        let fused = summary["test"]["fused"].as_f64().unwrap();
        eprintln!("CLI, {dataset}, MLB, 2 epochs: test accuracy {fused:.3}");
        assert!(stdout.contains("epoch    2"), "{stdout}");
        assert!(fused > floor, "{dataset}: {}", summary["test"]);
    }
}
