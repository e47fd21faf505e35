//! `balancelab prepare` on raw downloads in the published layouts, made here with ffmpeg's
//! test sources (scripts/setup installs ffmpeg): what it extracts, what it reports, the
//! manifest it writes, and that the loaders then read the result.

mod common;

use std::path::Path;
use std::process::Command;

use balancelab::data::clips::Manifest;
use balancelab::data::prepare::{prepare, PrepareKind};
use balancelab::data::{ave, crema_d, ucf101};
use balancelab_shared::{AveConfig, CremaDConfig, CremaDSplit, Ucf101Config, Ucf101Modalities};
use candle_core::Device;
use common::write_wav;

/// A test-pattern video of `seconds`, with a 440 Hz tone when `sound`.
fn write_video(path: &Path, seconds: u32, sound: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut command = Command::new("ffmpeg");
    command.args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]);
    command.arg(format!("testsrc=size=64x48:rate=10:duration={seconds}"));
    if sound {
        command.args(["-f", "lavfi", "-i"]);
        command.arg(format!(
            "sine=frequency=440:sample_rate=44100:duration={seconds}"
        ));
    }
    let status = command
        .arg(path)
        .status()
        .expect("ffmpeg is installed (scripts/setup)");
    assert!(
        status.success(),
        "ffmpeg could not write {}",
        path.display()
    );
}

fn frame_count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[test]
fn crema_d_prepare_extracts_frames_reports_problems_and_carries_on() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("CREMA-D");
    let mut rows = String::new();
    for actor in [1001, 1002] {
        for emotion in crema_d::EMOTIONS {
            let clip = format!("{actor}_IEO_{emotion}_HI");
            write_wav(
                &root.join("AudioWAV").join(format!("{clip}.wav")),
                16_000,
                0.5,
                440.0,
            );
            write_video(
                &root.join("VideoFlash").join(format!("{clip}.flv")),
                3,
                false,
            );
            rows.push_str(&format!("{clip},{emotion}\n"));
        }
    }
    std::fs::write(root.join("train.csv"), &rows).unwrap();
    std::fs::write(root.join("test.csv"), &rows[..rows.find('\n').unwrap() + 1]).unwrap();
    // Three broken clips: a truncated wav, a missing video, a video that is not one.
    let truncated = root.join("AudioWAV/1001_IEO_NEU_HI.wav");
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    std::fs::remove_file(root.join("VideoFlash/1001_IEO_HAP_HI.flv")).unwrap();
    std::fs::write(root.join("VideoFlash/1002_IEO_SAD_HI.flv"), b"FLV garbage").unwrap();

    let reported = std::sync::Mutex::new(Vec::new());
    let summary = prepare(PrepareKind::CremaD, &root, None, &|p| {
        reported.lock().unwrap().push(p.path.clone());
    })
    .unwrap();
    assert_eq!(
        (summary.clips, summary.usable, summary.problems),
        (12, 9, 3)
    );
    assert_eq!(
        summary.extracted, 10,
        "frames of the 10 clips with a decodable video"
    );
    let mut reported = reported.into_inner().unwrap();
    reported.sort();
    assert_eq!(
        reported,
        [
            root.join("AudioWAV/1001_IEO_NEU_HI.wav"),
            root.join("VideoFlash/1001_IEO_HAP_HI.flv"),
            root.join("VideoFlash/1002_IEO_SAD_HI.flv"),
        ]
    );
    // 1 fps over 3 s, in the reference code's folder.
    assert_eq!(frame_count(&root.join("Image-01-FPS/1002_IEO_ANG_HI")), 3);
    let manifest = Manifest::read(&root).unwrap().unwrap();
    assert_eq!(manifest.clips.len(), 9);
    assert!(!manifest.clips.contains(&"1001_IEO_NEU_HI".to_owned()));

    // The loader reads what prepare wrote and leaves out what it found broken.
    let config = CremaDConfig {
        image_size: 16,
        ..CremaDConfig::default()
    };
    let dataset = crema_d::load_crema_d(src.path(), &config, None, &Device::Cpu).unwrap();
    assert_eq!((dataset.train.len(), dataset.test.len()), (9, 0));
    let folds = CremaDConfig {
        split: CremaDSplit::SpeakerFold,
        folds: 2,
        fold: 0,
        ..config
    };
    let dataset = crema_d::load_crema_d(src.path(), &folds, None, &Device::Cpu).unwrap();
    assert_eq!((dataset.train.len(), dataset.test.len()), (5, 4));
    for batch in dataset.train.in_order(4) {
        batch.unwrap();
    }

    // A second run extracts nothing and finds the same problems.
    let again = prepare(PrepareKind::CremaD, &root, None, &|_| {}).unwrap();
    assert_eq!((again.usable, again.problems, again.extracted), (9, 3, 0));
}

#[test]
fn ave_prepare_cuts_the_event_window() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("AVE_Dataset");
    let mut lines = String::from("Category&VideoID&Quality&StartTime&EndTime\n");
    for (i, category) in ["Dog", "Church bell"].iter().enumerate() {
        let video = format!("video{i}");
        write_video(&root.join("AVE").join(format!("{video}.mp4")), 4, true);
        lines.push_str(&format!("{category}&{video}&good&1&3\n"));
    }
    for file in [
        "Annotations.txt",
        "trainSet.txt",
        "valSet.txt",
        "testSet.txt",
    ] {
        std::fs::write(root.join(file), &lines).unwrap();
    }
    let summary = prepare(PrepareKind::Ave, &root, None, &|p| panic!("{p:?}")).unwrap();
    assert_eq!((summary.clips, summary.usable, summary.problems), (2, 2, 0));
    // 2 s of the 4 s video: 4 fps gives 8 frames, 16 kHz gives 32,000 samples.
    assert_eq!(frame_count(&root.join("Image-04-FPS-SE/video0")), 8);
    let (samples, rate) =
        balancelab::data::audio::read_wav(&root.join("Audio-SE/video1.wav")).unwrap();
    assert_eq!(rate, 16_000);
    assert!(
        (samples.len() as i64 - 32_000).abs() < 400,
        "{}",
        samples.len()
    );
    let config = AveConfig {
        image_size: 16,
        ..AveConfig::default()
    };
    let dataset = ave::load_ave(src.path(), &config, None, &Device::Cpu).unwrap();
    assert_eq!(dataset.train.len(), 2);
    for batch in dataset.test.in_order(2) {
        batch.unwrap();
    }
}

#[test]
fn ucf101_prepare_extracts_frames_and_only_real_sound_tracks() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("UCF101");
    let lists = root.join("ucfTrainTestlist");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::write(lists.join("classInd.txt"), "1 Drumming\n2 Typing\n").unwrap();
    let (mut train, mut test) = (String::new(), String::new());
    for (class, sound) in [("Drumming", true), ("Typing", false)] {
        for g in 1..=2 {
            let video = format!("v_{class}_g{g:02}_c01");
            write_video(
                &root
                    .join("UCF-101")
                    .join(class)
                    .join(format!("{video}.avi")),
                1,
                sound,
            );
            let line = format!("{class}/{video}.avi\n");
            if g == 1 {
                train.push_str(&line)
            } else {
                test.push_str(&line)
            }
        }
    }
    for split in 1..=3 {
        std::fs::write(lists.join(format!("trainlist0{split}.txt")), &train).unwrap();
        std::fs::write(lists.join(format!("testlist0{split}.txt")), &test).unwrap();
    }
    let summary = prepare(PrepareKind::Ucf101, &root, None, &|p| panic!("{p:?}")).unwrap();
    assert_eq!((summary.clips, summary.usable), (4, 4));
    // Every frame (10 fps, 1 s), 256 px high.
    let frames = root.join("jpegs_256/v_Typing_g01_c01");
    assert_eq!(frame_count(&frames), 10);
    let first = image::open(frames.join("frame000001.jpg")).unwrap();
    assert_eq!((first.width(), first.height()), (342, 256));
    assert!(root.join("audio/v_Drumming_g02_c01.wav").is_file());
    assert!(!root.join("audio/v_Typing_g01_c01.wav").exists());
    let config = Ucf101Config {
        modalities: Ucf101Modalities::AudioRgb,
        image_size: 16,
        ..Ucf101Config::default()
    };
    let dataset = ucf101::load_ucf101(src.path(), &config, None, &Device::Cpu).unwrap();
    assert_eq!(
        (dataset.classes, dataset.train.len(), dataset.test.len()),
        (1, 1, 1)
    );
}

#[test]
fn the_cli_prints_problems_and_a_summary() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    write_wav(
        &root.join("AudioWAV/1001_DFA_ANG_XX.wav"),
        16_000,
        0.5,
        440.0,
    );
    write_wav(
        &root.join("AudioWAV/1002_DFA_ANG_XX.wav"),
        8_000,
        0.5,
        440.0,
    );
    write_video(&root.join("VideoFlash/1001_DFA_ANG_XX.flv"), 1, false);
    write_video(&root.join("VideoFlash/1002_DFA_ANG_XX.flv"), 1, false);
    let out = Command::new(env!("CARGO_BIN_EXE_balancelab"))
        .args(["prepare", "crema-d", "--src"])
        .arg(root)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1002_DFA_ANG_XX.wav: sample rate 8000 Hz"),
        "{stderr}"
    );
    assert!(stderr.contains("train.csv: missing"), "{stderr}");
    assert!(
        stdout.contains("2 clips: 1 usable, 1 with problems"),
        "{stdout}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_balancelab"))
        .args(["prepare", "crema-d", "--src", "/nonexistent/CREMA-D"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--src /nonexistent/CREMA-D is not a folder")
    );
}
