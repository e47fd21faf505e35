//! AVE in the layout of its release and of the reference code's prepared folders:
//!
//! ```text
//! {root}/Annotations.txt                   Category&VideoID&Quality&StartTime&EndTime
//! {root}/trainSet.txt, valSet.txt, testSet.txt   the same fields, one video per line
//! {root}/AVE/{video}.mp4                   the videos (`balancelab prepare ave` reads these)
//! {root}/Audio-SE/{video}.wav              the event window's audio, 16 kHz mono
//! {root}/Image-{frames:02}-FPS-SE/{video}/ the event window's frames at `frames` per second
//! ```
//!
//! The reference code reads audio from spectrogram pickles whose script was never published;
//! here the event's audio is [`ClipAudio::SOUND_TRACK`] (10 s at 16 kHz, 257 x 454). Classes
//! are numbered in the sorted order of the categories in `Annotations.txt`.

use std::collections::BTreeSet;
use std::path::Path;

use balancelab_shared::AveConfig;
use candle_core::Device;

use super::audio::ClipAudio;
use super::clips::{clip_dataset, Labelled, Stream};
use super::frames::FrameSpec;
use super::DataError;
use crate::engine::Dataset;

/// One line of an AVE list: the event's category, video and window in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The event's category: the class.
    pub category: String,
    /// The video's id, its file's name without the extension.
    pub video: String,
    /// Where the event starts, in seconds into the video.
    pub start: f64,
    /// Where the event ends, in seconds into the video.
    pub end: f64,
}

/// The events of an AVE list file (a first line of field names is skipped); a malformed or
/// empty file is an error naming it and the line.
pub fn read_events(path: &Path) -> Result<Vec<Event>, DataError> {
    let bad = |message: String| DataError::Format {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || (i == 0 && line.starts_with("Category&")) {
            continue;
        }
        let fields: Vec<&str> = line.split('&').collect();
        let parsed = match fields[..] {
            [category, video, _quality, start, end] => start
                .trim()
                .parse()
                .ok()
                .zip(end.trim().parse().ok())
                .filter(|(s, e): &(f64, f64)| s < e)
                .map(|(start, end)| Event {
                    category: category.to_owned(),
                    video: video.to_owned(),
                    start,
                    end,
                }),
            _ => None,
        };
        events.push(parsed.ok_or_else(|| {
            bad(format!(
                "line {}: expected Category&VideoID&Quality&StartTime&EndTime with start < end, found {line:?}",
                i + 1
            ))
        })?);
    }
    if events.is_empty() {
        return Err(bad("no videos listed".into()));
    }
    Ok(events)
}

/// Event classes in the release's annotations.
pub const CLASSES: usize = 28;

/// `Image-{fps:02}-FPS-SE`: the event windows' frames, as the reference code names it.
pub fn frames_folder(fps: u32) -> String {
    format!("Image-{fps:02}-FPS-SE")
}

/// The event's audio from `Audio-SE/`, then `config.frames` RGB frames of the event.
pub fn streams(root: &Path, config: &AveConfig) -> Vec<Stream> {
    vec![
        Stream::Audio {
            dir: root.join("Audio-SE"),
            audio: ClipAudio::SOUND_TRACK,
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

/// Loads AVE from `{data_dir}/{config.root}` with its train, validation and test lists;
/// spectrograms are cached under `cache`.
pub fn load_ave(
    data_dir: &Path,
    config: &AveConfig,
    cache: Option<std::path::PathBuf>,
    device: &Device,
) -> Result<Dataset, DataError> {
    let root = data_dir.join(&config.root);
    let categories: Vec<String> = read_events(&root.join("Annotations.txt"))?
        .into_iter()
        .map(|e| e.category)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let list = |file: &str| -> Result<Vec<Labelled>, DataError> {
        let path = root.join(file);
        read_events(&path)?
            .into_iter()
            .map(|e| match categories.iter().position(|c| *c == e.category) {
                Some(class) => Ok((e.video, class as u32)),
                None => Err(DataError::Format {
                    path: path.clone(),
                    message: format!("category {:?} is not in Annotations.txt", e.category),
                }),
            })
            .collect()
    };
    let splits = [
        Some(list("trainSet.txt")?),
        Some(list("valSet.txt")?),
        Some(list("testSet.txt")?),
    ];
    clip_dataset(
        &root,
        streams(&root, config),
        splits,
        categories.len(),
        cache,
        device,
    )
}
