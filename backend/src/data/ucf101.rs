//! UCF101 in the layout of its release and of the common two-stream frame releases:
//!
//! ```text
//! {root}/ucfTrainTestlist/classInd.txt             "1 ApplyEyeMakeup"
//! {root}/ucfTrainTestlist/trainlist0{1,2,3}.txt    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
//! {root}/ucfTrainTestlist/testlist0{1,2,3}.txt     "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
//! {root}/UCF-101/{Class}/{video}.avi               the videos (`balancelab prepare ucf101` reads these)
//! {root}/jpegs_256/{video}/frame000001.jpg         RGB frames
//! {root}/tvl1_flow/{u,v}/{video}/frame000001.jpg   TV-L1 flow, x and y
//! {root}/audio/{video}.wav                         the sound track, 16 kHz mono, where there is one
//! ```
//!
//! Audio + RGB uses the videos that have a sound track; their classes (51 in the full
//! release) are renumbered in `classInd.txt` order.

use std::path::Path;

use balancelab_shared::{Ucf101Config, Ucf101Modalities};
use candle_core::Device;

use super::audio::ClipAudio;
use super::clips::{clip_dataset, Labelled, Stream};
use super::frames::FrameSpec;
use super::DataError;
use crate::engine::Dataset;

fn lines(path: &Path) -> Result<Vec<(usize, String)>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    let lines: Vec<(usize, String)> = (text.lines().enumerate())
        .map(|(i, l)| (i + 1, l.trim_start_matches('\u{feff}').trim().to_owned()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Err(DataError::Format {
            path: path.to_owned(),
            message: "no lines".into(),
        });
    }
    Ok(lines)
}

/// Actions of the full release.
pub const CLASSES: usize = 101;
/// Actions whose videos have a sound track.
pub const CLASSES_WITH_SOUND: usize = 51;

/// Class names in `classInd.txt` order (index 1 first).
pub fn read_classes(path: &Path) -> Result<Vec<String>, DataError> {
    let mut classes = Vec::new();
    for (line, text) in lines(path)? {
        match text.split_whitespace().collect::<Vec<_>>()[..] {
            [index, name] if index.parse() == Ok(classes.len() + 1) => {
                classes.push(name.to_owned())
            }
            _ => {
                return Err(DataError::Format {
                    path: path.to_owned(),
                    message: format!(
                        "line {line}: expected \"{} ClassName\", found {text:?}",
                        classes.len() + 1
                    ),
                })
            }
        }
    }
    Ok(classes)
}

/// Videos of a split list and their classes (from the folder part of each entry).
pub fn read_list(path: &Path, classes: &[String]) -> Result<Vec<Labelled>, DataError> {
    lines(path)?
        .into_iter()
        .map(|(line, text)| {
            let entry = text.split_whitespace().next().unwrap_or_default();
            let parsed = entry.split_once('/').and_then(|(class, file)| {
                let index = classes.iter().position(|c| c == class)?;
                let video = file.strip_suffix(".avi")?;
                Some((video.to_owned(), index as u32))
            });
            parsed.ok_or_else(|| DataError::Format {
                path: path.to_owned(),
                message: format!("line {line}: expected Class/v_Class_gXX_cYY.avi of a class in classInd.txt, found {text:?}"),
            })
        })
        .collect()
}

/// Audio + RGB frames or RGB + TV-L1 flow frames, in that order, as `config.modalities` asks.
pub fn streams(root: &Path, config: &Ucf101Config) -> Vec<Stream> {
    let spec = FrameSpec {
        frames: config.frames as usize,
        size: config.image_size,
    };
    let rgb = Stream::Rgb {
        dir: root.join("jpegs_256"),
        spec,
    };
    match config.modalities {
        Ucf101Modalities::AudioRgb => vec![
            Stream::Audio {
                dir: root.join("audio"),
                audio: ClipAudio::SOUND_TRACK,
            },
            rgb,
        ],
        Ucf101Modalities::RgbFlow => vec![
            rgb,
            Stream::Flow {
                x_dir: root.join("tvl1_flow").join("u"),
                y_dir: root.join("tvl1_flow").join("v"),
                spec,
            },
        ],
    }
}

/// Loads split `config.split` of UCF101 from `{data_dir}/{config.root}`; with audio, only the
/// videos with a sound track, their classes renumbered. Spectrograms are cached under `cache`.
pub fn load_ucf101(
    data_dir: &Path,
    config: &Ucf101Config,
    cache: Option<std::path::PathBuf>,
    device: &Device,
) -> Result<Dataset, DataError> {
    let root = data_dir.join(&config.root);
    let lists = root.join("ucfTrainTestlist");
    let classes = read_classes(&lists.join("classInd.txt"))?;
    let mut train = read_list(
        &lists.join(format!("trainlist0{}.txt", config.split)),
        &classes,
    )?;
    let mut test = read_list(
        &lists.join(format!("testlist0{}.txt", config.split)),
        &classes,
    )?;
    let streams = streams(&root, config);
    let mut class_count = classes.len();
    if config.modalities == Ucf101Modalities::AudioRgb {
        // Videos without a sound track have no wav (`prepare` extracts only real tracks).
        let audio = &streams[0];
        train.retain(|(name, _)| audio.has(name));
        test.retain(|(name, _)| audio.has(name));
        // Renumber the classes that have sound, keeping classInd order.
        let mut kept: Vec<u32> = train.iter().chain(&test).map(|&(_, c)| c).collect();
        kept.sort_unstable();
        kept.dedup();
        for (_, class) in train.iter_mut().chain(test.iter_mut()) {
            *class = kept.binary_search(class).expect("kept class") as u32;
        }
        class_count = kept.len();
        tracing::info!(
            classes = class_count,
            train = train.len(),
            test = test.len(),
            "UCF101 videos with a sound track"
        );
        if train.is_empty() {
            return Err(DataError::Format {
                path: root.join("audio"),
                message:
                    "no sound track of a listed training video (run `balancelab prepare ucf101`)"
                        .into(),
            });
        }
    }
    clip_dataset(
        &root,
        streams,
        [Some(train), None, Some(test)],
        class_count,
        cache,
        device,
    )
}
