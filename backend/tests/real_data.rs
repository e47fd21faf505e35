//! Training on the real small datasets of the data directory: `BALANCELAB_DATA_DIR`, or the
//! workspace's sibling `../shared/data` where the project keeps them. Skipped, saying so,
//! on a machine that has neither.

use std::path::PathBuf;

use balancelab::engine::{CancelToken, TrainingEvent};
use balancelab_shared::{EpochMetrics, RunConfig};

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BALANCELAB_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    if dir.join("mfeat").is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: no real data at {}", dir.display());
        None
    }
}

fn last_epoch(toml_config: &str) -> EpochMetrics {
    let dir = data_dir().unwrap();
    let config: RunConfig = toml::from_str(toml_config).unwrap();
    let mut last = None;
    balancelab::train_run(
        &config,
        Some(&dir),
        &CancelToken::default(),
        &mut |event| match event {
            TrainingEvent::Epoch(m) => last = Some(m),
            TrainingEvent::Failed { error } => panic!("{error}"),
            _ => {}
        },
    );
    last.unwrap()
}

#[test]
fn digit_halves_train_to_high_accuracy() {
    if data_dir().is_none() {
        return;
    }
    let m = last_epoch(
        "epochs = 5\nbatch_size = 32\n[method]\nkind = \"multi_loss\"\n[dataset]\nkind = \"digits_halves\"\n",
    );
    // Measured (seed 0): 0.950 fused, 0.803 for each half's head.
    assert!(m.test.fused > 0.9, "{m:?}");
    assert!(m.test.unimodal.iter().all(|&a| a > 0.7), "{m:?}");
}

#[test]
fn mfeat_fac_mor_is_imbalanced_and_mlb_boosts_mor() {
    if data_dir().is_none() {
        return;
    }
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
