//! The form's choices: its method and dataset options, and how each maps to and from the
//! configuration.

use balancelab_shared::{
    AgmConfig, AvDigitsConfig, AvDigitsSplit, AveConfig, CremaDConfig, CremaDSplit, DatasetConfig,
    MethodConfig, MethodKind, MfeatConfig, MfeatView, MlbConfig, OgmConfig, PmrConfig, SplitConfig,
    SyntheticConfig, Ucf101Config, Ucf101Modalities,
};

/// A method's option text: "MLB (multi-loss + gradient balancing)".
pub(super) fn method_option_text(kind: MethodKind) -> String {
    format!("{} ({})", kind.label(), kind.summary())
}

/// Whether method `kind` has an alpha, which the form shows as a field.
pub(super) fn uses_alpha(kind: MethodKind) -> bool {
    alpha(&MethodConfig::from(kind)).is_some()
}

/// Method `kind` with `alpha`: `loaded`'s own settings if it is that method (so a preset's
/// or a cloned run's other method settings are kept), else the defaults.
pub(super) fn method_with(kind: MethodKind, alpha: f64, loaded: &MethodConfig) -> MethodConfig {
    let mut method = if MethodKind::from(loaded) == kind {
        loaded.clone()
    } else {
        MethodConfig::from(kind)
    };
    if let Some(own) = alpha_mut(&mut method) {
        *own = alpha;
    }
    method
}

/// The alpha the form shows for `method`: its own, or MLB's default for a method without.
pub(super) fn alpha_of(method: &MethodConfig) -> f64 {
    alpha(method).unwrap_or(MlbConfig::default().alpha)
}

/// The alpha of `method`, if it has one.
fn alpha(method: &MethodConfig) -> Option<f64> {
    match method {
        MethodConfig::Mlb(MlbConfig { alpha, .. })
        | MethodConfig::Ogm(OgmConfig { alpha, .. })
        | MethodConfig::Agm(AgmConfig { alpha, .. })
        | MethodConfig::Pmr(PmrConfig { alpha }) => Some(*alpha),
        MethodConfig::Unimodal(_)
        | MethodConfig::Joint
        | MethodConfig::MultiLoss(_)
        | MethodConfig::Mslr(_)
        | MethodConfig::MmCosine(_) => None,
    }
}

/// The alpha of `method` to change, if it has one.
fn alpha_mut(method: &mut MethodConfig) -> Option<&mut f64> {
    match method {
        MethodConfig::Mlb(MlbConfig { alpha, .. })
        | MethodConfig::Ogm(OgmConfig { alpha, .. })
        | MethodConfig::Agm(AgmConfig { alpha, .. })
        | MethodConfig::Pmr(PmrConfig { alpha }) => Some(alpha),
        MethodConfig::Unimodal(_)
        | MethodConfig::Joint
        | MethodConfig::MultiLoss(_)
        | MethodConfig::Mslr(_)
        | MethodConfig::MmCosine(_) => None,
    }
}

/// The form's dataset options: (value, label, catalog kind).
pub(super) const DATASETS: [(&str, &str, &str); 12] = [
    (
        "synthetic",
        "Synthetic clusters (noise per modality)",
        "synthetic",
    ),
    (
        "mfeat_fac_mor",
        "UCI mfeat: fac + mor (strongly imbalanced)",
        "mfeat",
    ),
    ("mfeat_pix_zer", "UCI mfeat: pix + zer", "mfeat"),
    ("mfeat_fac_zer", "UCI mfeat: fac + zer", "mfeat"),
    (
        "av_digits",
        "AV digits: spoken digit + MNIST image",
        "av_digits",
    ),
    (
        "av_digits_speaker",
        "AV digits, unseen speaker (theo)",
        "av_digits",
    ),
    (
        "digits_halves",
        "Optical digits: left + right halves",
        "digits_halves",
    ),
    (
        "crema_d",
        "CREMA-D: audio + frames (train/test CSV)",
        "crema_d",
    ),
    (
        "crema_d_fold",
        "CREMA-D, speaker-independent fold 0 of 5",
        "crema_d",
    ),
    ("ave", "AVE: event audio + 4 frames", "ave"),
    (
        "ucf101_audio_rgb",
        "UCF101: audio + RGB (51 classes)",
        "ucf101",
    ),
    ("ucf101_rgb_flow", "UCF101: RGB + optical flow", "ucf101"),
];

/// The option value of a loaded configuration's dataset when none of the options is it.
pub(super) const LOADED_DATASET: &str = "loaded";

/// The dataset of option `value`; `loaded` for [`LOADED_DATASET`].
pub(super) fn dataset_of(value: &str, loaded: &DatasetConfig) -> DatasetConfig {
    let mfeat = |views: [MfeatView; 2]| {
        DatasetConfig::Mfeat(MfeatConfig {
            views: views.to_vec(),
            ..MfeatConfig::default()
        })
    };
    match value {
        LOADED_DATASET => loaded.clone(),
        "mfeat_fac_mor" => mfeat([MfeatView::Fac, MfeatView::Mor]),
        "mfeat_pix_zer" => mfeat([MfeatView::Pix, MfeatView::Zer]),
        "mfeat_fac_zer" => mfeat([MfeatView::Fac, MfeatView::Zer]),
        "av_digits" => DatasetConfig::AvDigits(AvDigitsConfig::default()),
        "av_digits_speaker" => DatasetConfig::AvDigits(AvDigitsConfig {
            split: AvDigitsSplit::Speaker,
            ..AvDigitsConfig::default()
        }),
        "digits_halves" => DatasetConfig::DigitsHalves(SplitConfig::default()),
        "crema_d" => DatasetConfig::CremaD(CremaDConfig::default()),
        "crema_d_fold" => DatasetConfig::CremaD(CremaDConfig {
            split: CremaDSplit::SpeakerFold,
            ..CremaDConfig::default()
        }),
        "ave" => DatasetConfig::Ave(AveConfig::default()),
        "ucf101_audio_rgb" => DatasetConfig::Ucf101(Ucf101Config::default()),
        "ucf101_rgb_flow" => DatasetConfig::Ucf101(Ucf101Config {
            modalities: Ucf101Modalities::RgbFlow,
            ..Ucf101Config::default()
        }),
        _ => DatasetConfig::Synthetic(SyntheticConfig::default()),
    }
}

/// The option showing `dataset`: synthetic data of any noise is "synthetic", anything else
/// must equal an option exactly, or it is kept as loaded.
pub(super) fn dataset_value(dataset: &DatasetConfig) -> &'static str {
    if let DatasetConfig::Synthetic(s) = dataset {
        let defaults = SyntheticConfig::default();
        if (s.classes, s.features, s.train_samples, s.test_samples)
            == (
                defaults.classes,
                defaults.features,
                defaults.train_samples,
                defaults.test_samples,
            )
        {
            return "synthetic";
        }
        return LOADED_DATASET;
    }
    (DATASETS.iter())
        .find(|(value, ..)| dataset_of(value, dataset) == *dataset)
        .map_or(LOADED_DATASET, |(value, ..)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dataset_option_shows_as_itself() {
        for (value, ..) in DATASETS {
            let dataset = dataset_of(value, &DatasetConfig::default());
            assert_eq!(dataset_value(&dataset), value);
        }
        let custom = DatasetConfig::CremaD(CremaDConfig {
            frames: 3,
            ..CremaDConfig::default()
        });
        assert_eq!(dataset_value(&custom), LOADED_DATASET);
        assert_eq!(dataset_of(LOADED_DATASET, &custom), custom);
    }

    #[test]
    fn a_loaded_method_keeps_its_other_settings() {
        let loaded = MethodConfig::Mlb(MlbConfig {
            alpha: 0.8,
            beta: Some(2.0),
            ..MlbConfig::default()
        });
        let MethodConfig::Mlb(mlb) = method_with(MethodKind::Mlb, 0.5, &loaded) else {
            panic!("still MLB");
        };
        assert_eq!((mlb.alpha, mlb.beta), (0.5, Some(2.0)));
        let MethodConfig::Ogm(ogm) = method_with(MethodKind::OgmGe, 0.3, &loaded) else {
            panic!("OGM-GE");
        };
        assert!(ogm.generalization_enhancement && ogm.alpha == 0.3);
        for kind in MethodKind::ALL {
            assert_eq!(MethodKind::from(&method_with(kind, 1.0, &loaded)), kind);
        }
    }
}
