//! The video dataset loaders on fixture trees in the published layouts, written by these
//! tests: small wav files and JPEG frames whose content encodes the class, so that loading,
//! labels and training can be checked end to end; and every kind of bad input.

mod common;

use std::path::{Path, PathBuf};

use balancelab::data::{ave, crema_d, footprint, ucf101};
use balancelab::engine::{Dataset, Split, TrainingEvent};
use balancelab_shared::{
    AveConfig, CremaDConfig, CremaDSplit, DatasetConfig, Ucf101Config, Ucf101Modalities,
};
use candle_core::Device;
use common::write_wav;
use image::{GrayImage, Luma, Rgb, RgbImage};

/// `count` JPEG frames of one colour, `frame000001.jpg`...
fn write_frames(dir: &Path, count: usize, colour: [u8; 3]) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 1..=count {
        RgbImage::from_pixel(32, 24, Rgb(colour))
            .save(dir.join(format!("frame{i:06}.jpg")))
            .unwrap();
    }
}

fn colour(class: u32) -> [u8; 3] {
    [
        [220, 30, 30],
        [30, 220, 30],
        [30, 30, 220],
        [220, 220, 30],
        [30, 220, 220],
        [220, 30, 220],
    ][class as usize % 6]
}

/// Every sample of a split, in order: inputs per modality (flattened) and labels.
fn read_all(split: &Split) -> (Vec<Vec<Vec<f32>>>, Vec<u32>) {
    let (mut inputs, mut labels) = (Vec::new(), Vec::new());
    for batch in split.in_order(4) {
        let (x, y) = batch.unwrap();
        let b = y.dim(0).unwrap();
        for i in 0..b {
            inputs.push(
                x.iter()
                    .map(|t| t.get(i).unwrap().flatten_all().unwrap().to_vec1().unwrap())
                    .collect(),
            );
        }
        labels.extend(y.to_vec1::<u32>().unwrap());
    }
    (inputs, labels)
}

const CREMA_ACTORS: [u32; 4] = [1001, 1002, 1003, 1004];

/// CREMA-D: 4 actors x 6 emotions, one sentence; the CSV split puts actor 1004 in test.
fn crema_tree(root: &Path) {
    let mut train = String::from("\u{feff}");
    let mut test = String::new();
    for actor in CREMA_ACTORS {
        for (class, emotion) in crema_d::EMOTIONS.iter().enumerate() {
            let clip = format!("{actor}_DFA_{emotion}_XX");
            write_wav(
                &root.join("AudioWAV").join(format!("{clip}.wav")),
                16_000,
                1.2,
                300.0 + 400.0 * class as f32,
            );
            write_frames(
                &root.join("Image-01-FPS").join(&clip),
                2,
                colour(class as u32),
            );
            let row = format!("{clip},{emotion}\n");
            if actor == 1004 {
                test.push_str(&row);
            } else {
                train.push_str(&row);
            }
        }
    }
    std::fs::write(root.join("train.csv"), train).unwrap();
    std::fs::write(root.join("test.csv"), test).unwrap();
}

fn small_crema(split: CremaDSplit) -> CremaDConfig {
    CremaDConfig {
        split,
        folds: 2,
        fold: 1,
        image_size: 16,
        ..CremaDConfig::default()
    }
}

fn load_crema(data: &Path, config: &CremaDConfig) -> Result<Dataset, String> {
    crema_d::load_crema_d(data, config, None, &Device::Cpu).map_err(|e| e.to_string())
}

#[test]
fn crema_d_reads_the_reference_layout() {
    let data = tempfile::tempdir().unwrap();
    crema_tree(&data.path().join("CREMA-D"));
    let dataset = load_crema(data.path(), &small_crema(CremaDSplit::Csv)).unwrap();
    assert_eq!(dataset.classes, 6);
    assert_eq!(
        dataset.input_shapes,
        [vec![1, 257, 188], vec![1, 3, 16, 16]]
    );
    let config = DatasetConfig::CremaD(small_crema(CremaDSplit::Csv));
    assert_eq!(footprint(&config).shapes, dataset.input_shapes);
    assert_eq!((dataset.train.len(), dataset.test.len()), (18, 6));
    let (inputs, labels) = read_all(&dataset.test);
    assert_eq!(labels, [0, 1, 2, 3, 4, 5]);
    for (sample, &class) in inputs.iter().zip(&labels) {
        // The tone's frequency bin is the loudest: 300 + 400 c Hz at 22.05 kHz, n_fft 512.
        let spectrogram = &sample[0];
        let column: Vec<f32> = (0..257).map(|f| spectrogram[f * 188 + 90]).collect();
        let peak = (0..257)
            .max_by(|&a, &b| column[a].total_cmp(&column[b]))
            .unwrap();
        let expected = ((300.0 + 400.0 * class as f64) * 512.0 / 22_050.0).round() as usize;
        assert!(
            peak.abs_diff(expected) <= 1,
            "class {class}: peak bin {peak}, expected {expected}"
        );
        // The frame's mean red value, undone from ImageNet normalisation, is the class colour's.
        let red = sample[1][..256].iter().sum::<f32>() / 256.0 * 0.229 + 0.485;
        let expected_red = f32::from(colour(class)[0]) / 255.0;
        assert!(
            (red - expected_red).abs() < 0.03,
            "class {class}: red {red}"
        );
    }
}

#[test]
fn crema_d_speaker_folds_keep_speakers_apart() {
    let data = tempfile::tempdir().unwrap();
    crema_tree(&data.path().join("CREMA-D"));
    // Actors in id order, actor i in fold i % 2: fold 1 is 1002 and 1004.
    let dataset = load_crema(data.path(), &small_crema(CremaDSplit::SpeakerFold)).unwrap();
    assert_eq!((dataset.train.len(), dataset.test.len()), (12, 12));
    let clips: Vec<String> = CREMA_ACTORS
        .iter()
        .flat_map(|a| {
            crema_d::EMOTIONS
                .iter()
                .map(move |e| format!("{a}_DFA_{e}_XX"))
        })
        .collect();
    let (train, test) = crema_d::speaker_fold(&clips, 2, 1).unwrap();
    assert!(train
        .iter()
        .all(|(n, _)| n.starts_with("1001") || n.starts_with("1003")));
    assert!(test
        .iter()
        .all(|(n, _)| n.starts_with("1002") || n.starts_with("1004")));
    assert_eq!(test[0], ("1002_DFA_NEU_XX".to_owned(), 0));
}

#[test]
fn crema_d_trains_from_a_run_config() {
    let data = tempfile::tempdir().unwrap();
    crema_tree(&data.path().join("CREMA-D"));
    let config: balancelab_shared::RunConfig = toml::from_str(
        "epochs = 2\nbatch_size = 8\nvalidation_fraction = 0.0\n[method]\nkind = \"mlb\"\n\
         [dataset]\nkind = \"crema_d\"\nimage_size = 16\n",
    )
    .unwrap();
    config.validate().unwrap();
    let (mut epochs, mut summary) = (Vec::new(), None);
    balancelab::train_run(
        &config,
        Some(data.path()),
        Default::default(),
        &Default::default(),
        &mut |event| match event {
            TrainingEvent::Epoch(m) => epochs.push(m),
            TrainingEvent::Finished(s) => summary = Some(s),
            TrainingEvent::Failed { error } => panic!("{error}"),
            _ => {}
        },
    );
    assert_eq!(epochs.len(), 2);
    assert!(epochs.iter().all(|m| m.train_loss.is_finite()));
    assert_eq!(summary.unwrap().epochs, 2);
}

/// AVE: 3 categories, 2 videos each per list; frames and audio of the event window.
fn ave_tree(root: &Path, fps: u32) {
    let categories = ["Church bell", "Dog", "Acoustic guitar"];
    let mut annotations = String::from("Category&VideoID&Quality&StartTime&EndTime\n");
    let mut lists = [String::new(), String::new(), String::new()];
    for (c, category) in categories.iter().enumerate() {
        for (l, list) in lists.iter_mut().enumerate() {
            for k in 0..2 {
                let video = format!("vid{c}{l}{k}XYZ");
                let line = format!("{category}&{video}&good&2&7\n");
                annotations.push_str(&line);
                list.push_str(&line);
                write_wav(
                    &root.join("Audio-SE").join(format!("{video}.wav")),
                    16_000,
                    0.5,
                    500.0 + 500.0 * c as f32,
                );
                write_frames(
                    &root.join(ave::frames_folder(fps)).join(&video),
                    5,
                    colour(c as u32),
                );
            }
        }
    }
    std::fs::write(root.join("Annotations.txt"), annotations).unwrap();
    for (name, list) in ["trainSet.txt", "valSet.txt", "testSet.txt"]
        .iter()
        .zip(lists)
    {
        std::fs::write(root.join(name), list).unwrap();
    }
}

#[test]
fn ave_reads_its_lists_with_a_validation_split() {
    let data = tempfile::tempdir().unwrap();
    ave_tree(&data.path().join("AVE_Dataset"), 4);
    let config = AveConfig {
        image_size: 16,
        ..AveConfig::default()
    };
    let dataset = ave::load_ave(data.path(), &config, None, &Device::Cpu).unwrap();
    assert_eq!(dataset.classes, 3);
    assert_eq!(
        dataset.input_shapes,
        [vec![1, 257, 454], vec![4, 3, 16, 16]]
    );
    assert_eq!(
        footprint(&DatasetConfig::Ave(config.clone())).shapes,
        dataset.input_shapes
    );
    let validation = dataset
        .validation
        .as_ref()
        .expect("AVE ships a validation list");
    assert_eq!(
        (dataset.train.len(), validation.len(), dataset.test.len()),
        (6, 6, 6)
    );
    // Sorted category names: Acoustic guitar 0, Church bell 1, Dog 2.
    let (_, labels) = read_all(&dataset.test);
    assert_eq!(labels, [1, 1, 2, 2, 0, 0]);
    let events = ave::read_events(&data.path().join("AVE_Dataset/testSet.txt")).unwrap();
    assert_eq!((events[0].start, events[0].end), (2.0, 7.0));
}

/// UCF101: 3 classes, 2 training and 1 test video each; classes 1 and 3 have sound.
fn ucf_tree(root: &Path) {
    let classes = ["ApplyEyeMakeup", "Basketball", "CliffDiving"];
    let lists = root.join("ucfTrainTestlist");
    std::fs::create_dir_all(&lists).unwrap();
    let mut index = String::new();
    let (mut train, mut test) = (String::new(), String::new());
    for (c, class) in classes.iter().enumerate() {
        index.push_str(&format!("{} {class}\r\n", c + 1));
        for g in 1..=3 {
            let video = format!("v_{class}_g{g:02}_c01");
            if g == 3 {
                test.push_str(&format!("{class}/{video}.avi\n"));
            } else {
                train.push_str(&format!("{class}/{video}.avi {}\n", c + 1));
            }
            write_frames(&root.join("jpegs_256").join(&video), 6, colour(c as u32));
            for axis in ["u", "v"] {
                let dir = root.join("tvl1_flow").join(axis).join(&video);
                std::fs::create_dir_all(&dir).unwrap();
                for i in 1..=6 {
                    GrayImage::from_pixel(20, 20, Luma([128 + 20 * c as u8]))
                        .save(dir.join(format!("frame{i:06}.jpg")))
                        .unwrap();
                }
            }
            if c != 1 {
                write_wav(
                    &root.join("audio").join(format!("{video}.wav")),
                    16_000,
                    0.3,
                    440.0,
                );
            }
        }
    }
    std::fs::write(lists.join("classInd.txt"), index).unwrap();
    std::fs::write(lists.join("trainlist01.txt"), train).unwrap();
    std::fs::write(lists.join("testlist01.txt"), test).unwrap();
}

fn ucf_config(modalities: Ucf101Modalities) -> Ucf101Config {
    Ucf101Config {
        modalities,
        frames: 3,
        image_size: 16,
        ..Ucf101Config::default()
    }
}

#[test]
fn ucf101_audio_rgb_keeps_the_classes_with_sound() {
    let data = tempfile::tempdir().unwrap();
    ucf_tree(&data.path().join("UCF101"));
    let config = ucf_config(Ucf101Modalities::AudioRgb);
    let dataset = ucf101::load_ucf101(data.path(), &config, None, &Device::Cpu).unwrap();
    assert_eq!(dataset.classes, 2);
    assert_eq!((dataset.train.len(), dataset.test.len()), (4, 2));
    assert_eq!(
        dataset.input_shapes,
        [vec![1, 257, 454], vec![3, 3, 16, 16]]
    );
    assert_eq!(
        footprint(&DatasetConfig::Ucf101(config.clone())).shapes,
        dataset.input_shapes
    );
    let (_, labels) = read_all(&dataset.test);
    assert_eq!(
        labels,
        [0, 1],
        "ApplyEyeMakeup 0, CliffDiving renumbered to 1"
    );
}

#[test]
fn ucf101_rgb_flow_uses_every_class() {
    let data = tempfile::tempdir().unwrap();
    ucf_tree(&data.path().join("UCF101"));
    let config = ucf_config(Ucf101Modalities::RgbFlow);
    let dataset = ucf101::load_ucf101(data.path(), &config, None, &Device::Cpu).unwrap();
    assert_eq!(dataset.classes, 3);
    assert_eq!((dataset.train.len(), dataset.test.len()), (6, 3));
    assert_eq!(
        dataset.input_shapes,
        [vec![3, 3, 16, 16], vec![3, 2, 16, 16]]
    );
    assert_eq!(
        footprint(&DatasetConfig::Ucf101(config.clone())).shapes,
        dataset.input_shapes
    );
    let (inputs, labels) = read_all(&dataset.test);
    assert_eq!(labels, [0, 1, 2]);
    // Class 2's x flow is 168 everywhere: (168 / 255 - 0.5) / 0.226 in evaluation form.
    let dx = inputs[2][1][0];
    assert!((dx - (168.0 / 255.0 - 0.5) / 0.226).abs() < 0.03, "{dx}");
}

fn error_of(result: Result<Dataset, String>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

/// The first error met reading every batch of a split.
fn read_error(split: &Split) -> String {
    split
        .in_order(4)
        .find_map(|b| b.err())
        .expect("a batch fails")
        .to_string()
}

#[test]
fn bad_input_names_the_file() {
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join("CREMA-D");
    crema_tree(&root);
    let config = small_crema(CremaDSplit::Csv);
    let test_clip = |emotion: &str| format!("1004_DFA_{emotion}_XX");

    // Truncated wav: the header promises more samples than the file holds.
    let wav = root
        .join("AudioWAV")
        .join(format!("{}.wav", test_clip("NEU")));
    let bytes = std::fs::read(&wav).unwrap();
    std::fs::write(&wav, &bytes[..bytes.len() / 2 + 1]).unwrap();
    let dataset = load_crema(data.path(), &config).unwrap();
    let error = read_error(&dataset.test);
    assert!(
        error.contains("1004_DFA_NEU_XX.wav") && error.contains("truncated"),
        "{error}"
    );

    // Wrong sample rate.
    write_wav(&wav, 44_100, 1.0, 440.0);
    let error = read_error(&load_crema(data.path(), &config).unwrap().test);
    assert!(
        error.contains("1004_DFA_NEU_XX.wav") && error.contains("44100 Hz"),
        "{error}"
    );
    write_wav(&wav, 16_000, 1.0, 440.0);

    // Unreadable JPEG (of the two frames, evaluation uses the second).
    let frame = root
        .join("Image-01-FPS")
        .join(test_clip("HAP"))
        .join("frame000002.jpg");
    std::fs::write(&frame, b"\xff\xd8\xff not a jpeg").unwrap();
    let error = read_error(&load_crema(data.path(), &config).unwrap().test);
    assert!(
        error.contains("frame000002.jpg") && error.contains("unreadable image"),
        "{error}"
    );

    // Missing frame folder: found when loading, before any training.
    std::fs::remove_dir_all(root.join("Image-01-FPS").join(test_clip("SAD"))).unwrap();
    let error = error_of(load_crema(data.path(), &config));
    assert!(
        error.contains("Image-01-FPS/1004_DFA_SAD_XX") && error.contains("missing"),
        "{error}"
    );

    // Empty split file.
    std::fs::write(root.join("test.csv"), "").unwrap();
    let error = error_of(load_crema(data.path(), &config));
    assert!(
        error.contains("test.csv") && error.contains("no clips"),
        "{error}"
    );

    // An unknown label names the file and line.
    std::fs::write(
        root.join("test.csv"),
        "1004_DFA_NEU_XX,NEU\n1004_DFA_HAP_XX,JOY\n",
    )
    .unwrap();
    let error = error_of(load_crema(data.path(), &config));
    assert!(
        error.contains("test.csv") && error.contains("line 2"),
        "{error}"
    );

    // Empty AVE list, UCF101 list with a class not in classInd.txt.
    let ave_root = data.path().join("AVE_Dataset");
    ave_tree(&ave_root, 4);
    std::fs::write(ave_root.join("valSet.txt"), "\n").unwrap();
    let ave_config = AveConfig {
        image_size: 16,
        ..AveConfig::default()
    };
    let error = ave::load_ave(data.path(), &ave_config, None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("valSet.txt") && error.contains("no videos"),
        "{error}"
    );
    let ucf_root = data.path().join("UCF101");
    ucf_tree(&ucf_root);
    std::fs::write(
        ucf_root.join("ucfTrainTestlist/testlist01.txt"),
        "Juggling/v_Juggling_g01_c01.avi\n",
    )
    .unwrap();
    let error = ucf101::load_ucf101(
        data.path(),
        &ucf_config(Ucf101Modalities::RgbFlow),
        None,
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        error.contains("testlist01.txt") && error.contains("line 1"),
        "{error}"
    );
}

#[test]
fn a_manifest_leaves_out_what_prepare_found_broken() {
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join("CREMA-D");
    crema_tree(&root);
    std::fs::remove_dir_all(root.join("Image-01-FPS/1004_DFA_ANG_XX")).unwrap();
    let good: Vec<String> = CREMA_ACTORS
        .iter()
        .flat_map(|a| {
            crema_d::EMOTIONS
                .iter()
                .map(move |e| format!("{a}_DFA_{e}_XX"))
        })
        .filter(|c| c != "1004_DFA_ANG_XX")
        .collect();
    let manifest = serde_json::json!({
        "dataset": "crema_d",
        "clips": good,
        "problems": [{"path": root.join("Image-01-FPS/1004_DFA_ANG_XX"), "message": "missing"}],
    });
    std::fs::write(root.join("balancelab-manifest.json"), manifest.to_string()).unwrap();
    let dataset = load_crema(data.path(), &small_crema(CremaDSplit::Csv)).unwrap();
    assert_eq!((dataset.train.len(), dataset.test.len()), (18, 5));
}

#[test]
fn spectrograms_are_cached_by_file_and_parameters() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    crema_tree(&data.path().join("CREMA-D"));
    let config = small_crema(CremaDSplit::Csv);
    let load = || {
        crema_d::load_crema_d(
            data.path(),
            &config,
            Some(cache.path().to_owned()),
            &Device::Cpu,
        )
        .unwrap()
    };
    let (first, _) = read_all(&load().test);
    let cached: Vec<PathBuf> =
        std::fs::read_dir(cache.path().join("sr22050-clip66150-fft512-hop353"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    assert_eq!(cached.len(), 6);
    assert!(cached
        .iter()
        .all(|p| std::fs::metadata(p).unwrap().len() == 4 * 257 * 188));
    let (second, _) = read_all(&load().test);
    assert_eq!(first, second);
    // A cached file is what is read: overwrite one with zeros and it shows.
    std::fs::write(&cached[0], vec![0u8; 4 * 257 * 188]).unwrap();
    let (third, _) = read_all(&load().test);
    assert!(third.iter().any(|s| s[0].iter().all(|&v| v == 0.0)));
}
