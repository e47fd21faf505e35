//! CREMA-D in the layout of the reference code (OGM-GE's `CramedDataset`, which the MLB
//! authors build on):
//!
//! ```text
//! {root}/AudioWAV/{clip}.wav            16 kHz mono, as released
//! {root}/Image-{frames:02}-FPS/{clip}/  frames extracted at `frames` per second
//! {root}/train.csv, {root}/test.csv     `clip,EMOTION` rows, no header (UTF-8, BOM allowed)
//! ```
//!
//! Clips are named `{actor}_{sentence}_{emotion}_{level}` (`1001_DFA_ANG_XX`). The CSV split
//! shares speakers between train and test; the speaker-independent folds do not.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use balancelab_shared::{CremaDConfig, CremaDSplit};
use candle_core::Device;

use super::audio::ClipAudio;
use super::clips::{clip_dataset, Labelled, Manifest, Stream};
use super::frames::FrameSpec;
use super::{files_with_extension, DataError};
use crate::engine::Dataset;

/// The reference code's class order.
pub const EMOTIONS: [&str; 6] = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"];

/// Audio from `AudioWAV/`, then `config.frames` RGB frames from `Image-{frames:02}-FPS/`.
pub fn streams(root: &Path, config: &CremaDConfig) -> Vec<Stream> {
    vec![
        Stream::Audio {
            dir: root.join("AudioWAV"),
            audio: ClipAudio::CREMA_D,
        },
        Stream::Rgb {
            dir: root.join(frames_folder(config.frames)),
            spec: FrameSpec {
                frames: config.frames as usize,
                size: config.image_size,
            },
        },
    ]
}

/// `Image-{fps:02}-FPS`, as the reference code names it.
pub fn frames_folder(fps: u32) -> String {
    format!("Image-{fps:02}-FPS")
}

/// Actor id and emotion class of a clip name; `None` if it does not follow the convention.
pub fn parse_clip(name: &str) -> Option<(u32, u32)> {
    let parts: Vec<&str> = name.split('_').collect();
    let [actor, _, emotion, _] = parts[..] else {
        return None;
    };
    let class = EMOTIONS.iter().position(|&e| e == emotion)?;
    Some((actor.parse().ok()?, class as u32))
}

/// Rows of a `clip,EMOTION` file; an unknown emotion or an empty file is an error naming it.
fn read_csv(path: &Path) -> Result<Vec<Labelled>, DataError> {
    let bad = |message: String| DataError::Format {
        path: path.to_owned(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(format!("line {}: {e}", line + 1)))?;
        let clip = record
            .get(0)
            .unwrap_or("")
            .trim_start_matches('\u{feff}')
            .trim();
        let emotion = record.get(1).unwrap_or("").trim();
        let Some(class) = EMOTIONS.iter().position(|&e| e == emotion) else {
            return Err(bad(format!(
                "line {}: emotion {emotion:?} is not one of {}",
                line + 1,
                EMOTIONS.join(", ")
            )));
        };
        rows.push((clip.to_owned(), class as u32));
    }
    if rows.is_empty() {
        return Err(bad("no clips listed".into()));
    }
    Ok(rows)
}

/// Every clip of the dataset: the manifest's if `prepare` wrote one, else the wav files.
fn all_clips(root: &Path) -> Result<Vec<String>, DataError> {
    if let Some(manifest) = Manifest::read(root)? {
        return Ok(manifest.clips);
    }
    let files = files_with_extension(&root.join("AudioWAV"), &["wav"])?;
    let stem = |path: &PathBuf| Some(path.file_stem()?.to_str()?.to_owned());
    Ok(files.iter().filter_map(stem).collect())
}

/// Train and test clips of speaker-independent fold `fold` of `folds`.
pub fn speaker_fold(
    clips: &[String],
    folds: u32,
    fold: u32,
) -> Result<(Vec<Labelled>, Vec<Labelled>), String> {
    let mut parsed = Vec::new();
    for name in clips {
        let (actor, class) = parse_clip(name)
            .ok_or_else(|| format!("clip {name} is not named actor_sentence_emotion_level"))?;
        parsed.push((name.clone(), actor, class));
    }
    let actors: Vec<u32> = parsed
        .iter()
        .map(|&(_, actor, _)| actor)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let test_actors: BTreeSet<u32> = (actors.iter().enumerate())
        .filter(|(i, _)| *i as u32 % folds == fold)
        .map(|(_, &actor)| actor)
        .collect();
    let (test, train): (Vec<_>, Vec<_>) = parsed
        .into_iter()
        .partition(|(_, actor, _)| test_actors.contains(actor));
    let strip = |v: Vec<(String, u32, u32)>| v.into_iter().map(|(n, _, c)| (n, c)).collect();
    Ok((strip(train), strip(test)))
}

/// Loads CREMA-D from `{data_dir}/{config.root}`, split by the reference CSVs or by speaker
/// fold; spectrograms are cached under `cache`.
pub fn load_crema_d(
    data_dir: &Path,
    config: &CremaDConfig,
    cache: Option<std::path::PathBuf>,
    device: &Device,
) -> Result<Dataset, DataError> {
    let root = data_dir.join(&config.root);
    let (train, test) = match config.split {
        CremaDSplit::Csv => {
            let (train, test) = (
                read_csv(&root.join("train.csv"))?,
                read_csv(&root.join("test.csv"))?,
            );
            let speakers = |rows: &[Labelled]| -> BTreeSet<u32> {
                rows.iter()
                    .filter_map(|(n, _)| parse_clip(n))
                    .map(|(a, _)| a)
                    .collect()
            };
            let shared = speakers(&train).intersection(&speakers(&test)).count();
            if shared > 0 {
                tracing::warn!(
                    shared,
                    "CREMA-D's train.csv and test.csv share speakers; split = \"speaker_fold\" gives speaker-independent results"
                );
            }
            (train, test)
        }
        CremaDSplit::SpeakerFold => speaker_fold(&all_clips(&root)?, config.folds, config.fold)
            .map_err(|message| DataError::Format {
                path: root.join("AudioWAV"),
                message,
            })?,
    };
    clip_dataset(
        &root,
        streams(&root, config),
        [Some(train), None, Some(test)],
        EMOTIONS.len(),
        cache,
        device,
    )
}
