//! Video datasets read clip by clip from disk: every modality of a clip is found under its
//! own folder by the clip's name (`AudioWAV/{clip}.wav`, `Image-01-FPS/{clip}/`, ...), decoded
//! when its batch is due. Spectrograms, the same every epoch, are cached on disk.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use super::audio::ClipAudio;
use super::frames::{flow_clip, rgb_clip, FrameSpec};
use super::DataError;
use crate::engine::SampleReader;

/// One modality of a clip dataset and where its files are.
#[derive(Clone, Debug)]
pub enum Stream {
    /// `{dir}/{clip}.wav` as a `[1, bins, frames]` log spectrogram.
    Audio {
        /// The folder of the wav files.
        dir: PathBuf,
        /// How a wav file becomes a spectrogram.
        audio: ClipAudio,
    },
    /// `{dir}/{clip}/*.jpg` as `[frames, 3, size, size]`.
    Rgb {
        /// The folder of the clips' frame folders.
        dir: PathBuf,
        /// Frames used per clip and their size.
        spec: FrameSpec,
    },
    /// `{x_dir}/{clip}/*.jpg` and `{y_dir}/{clip}/*.jpg` as `[frames, 2, size, size]`.
    Flow {
        /// The folder of the clips' x-displacement frame folders.
        x_dir: PathBuf,
        /// The folder of the clips' y-displacement frame folders.
        y_dir: PathBuf,
        /// Frames used per clip and their size.
        spec: FrameSpec,
    },
}

impl Stream {
    /// The shape of one sample of this modality, as each variant gives it.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Stream::Audio { audio, .. } => audio.shape(),
            Stream::Rgb { spec, .. } => spec.shape(3),
            Stream::Flow { spec, .. } => spec.shape(2),
        }
    }

    /// The file or folders clip `name` needs.
    pub fn paths(&self, name: &str) -> Vec<PathBuf> {
        match self {
            Stream::Audio { dir, .. } => vec![dir.join(format!("{name}.wav"))],
            Stream::Rgb { dir, .. } => vec![dir.join(name)],
            Stream::Flow { x_dir, y_dir, .. } => vec![x_dir.join(name), y_dir.join(name)],
        }
    }

    /// Whether clip `name`'s file or folders exist (not whether they decode).
    pub fn has(&self, name: &str) -> bool {
        self.paths(name).iter().all(|p| p.exists())
    }
}

/// Reads clips by name, one modality per [`Stream`].
pub struct ClipReader {
    /// The modalities, in the order the model receives them.
    pub streams: Vec<Stream>,
    /// Clip names; an item is an index into it.
    pub clips: Vec<String>,
    /// Where computed spectrograms are kept; `None` computes them every time.
    pub cache: Option<PathBuf>,
}

impl ClipReader {
    /// Sample `item`, as [`SampleReader::read`] gives it, with this module's error type.
    pub fn read_clip(&self, item: usize, augment: Option<u64>) -> Result<Vec<Vec<f32>>, DataError> {
        let name = &self.clips[item];
        (self.streams.iter().enumerate())
            .map(|(m, stream)| {
                // Modalities of one clip get independent draws.
                let seed = augment.map(|s| s.wrapping_add(m as u64));
                let paths = stream.paths(name);
                match stream {
                    Stream::Audio { audio, .. } => self.spectrogram(&paths[0], audio),
                    Stream::Rgb { spec, .. } => rgb_clip(&paths[0], *spec, seed),
                    Stream::Flow { spec, .. } => flow_clip(&paths[0], &paths[1], *spec, seed),
                }
            })
            .collect()
    }

    /// The spectrogram of `wav`, from the cache when a fresh copy is there. The cache key
    /// covers the file's path, size and modification time and the audio parameters; a cache
    /// that cannot be written only costs speed.
    fn spectrogram(&self, wav: &Path, audio: &ClipAudio) -> Result<Vec<f32>, DataError> {
        let Some(cache) = &self.cache else {
            return audio.spectrogram(wav);
        };
        let meta = std::fs::metadata(wav).map_err(|source| DataError::Io {
            path: wav.to_owned(),
            source,
        })?;
        let mut hasher = DefaultHasher::new();
        (wav, meta.len(), meta.modified().ok()).hash(&mut hasher);
        let file = cache
            .join(audio.key())
            .join(format!("{:016x}.f32", hasher.finish()));
        let expected = audio.shape().iter().product::<usize>();
        if let Ok(bytes) = std::fs::read(&file) {
            if bytes.len() == 4 * expected {
                return Ok(bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect());
            }
        }
        let values = audio.spectrogram(wav)?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        // Written aside then renamed, so that a concurrent reader never sees half a file.
        let partial = file.with_extension(format!("{}.partial", std::process::id()));
        let stored = std::fs::create_dir_all(file.parent().expect("cache file has a folder"))
            .and_then(|()| std::fs::write(&partial, &bytes))
            .and_then(|()| std::fs::rename(&partial, &file));
        if let Err(error) = stored {
            tracing::debug!(path = %file.display(), %error, "spectrogram not cached");
        }
        Ok(values)
    }
}

impl SampleReader for ClipReader {
    fn shapes(&self) -> Vec<Vec<usize>> {
        self.streams.iter().map(Stream::shape).collect()
    }

    fn read(
        &self,
        item: usize,
        augment: Option<u64>,
    ) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.read_clip(item, augment)?)
    }
}

/// Where spectrograms are cached: `BALANCELAB_CACHE_DIR`, else `$XDG_CACHE_HOME/balancelab`,
/// else `~/.cache/balancelab`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("BALANCELAB_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("balancelab")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("balancelab")))
}

/// A clip's name and class.
pub type Labelled = (String, u32);

/// What `balancelab prepare` found: the clips whose files all decode, and every problem.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// The dataset prepared: `crema_d`, `ave` or `ucf101`.
    pub dataset: String,
    /// The usable clips: those whose files all exist and decode.
    pub clips: Vec<String>,
    /// Every problem found, sorted by path.
    pub problems: Vec<Problem>,
}

/// A missing or broken file `prepare` found.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// The file or folder (empty when the problem is not one file's).
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

impl Manifest {
    /// The manifest's file name in the dataset's root folder.
    pub const FILE: &'static str = "balancelab-manifest.json";

    /// The manifest in `root`, if `prepare` wrote one.
    pub fn read(root: &Path) -> Result<Option<Manifest>, DataError> {
        let path = root.join(Self::FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| DataError::Format {
                    path,
                    message: format!("not a BalanceLab manifest: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DataError::Io { path, source }),
        }
    }
}

/// A dataset of clips read from disk. Where `prepare` left a manifest, listed clips it found
/// broken are left out (and counted in the log); any other clip with a missing file is an
/// error naming the file.
pub fn clip_dataset(
    root: &Path,
    streams: Vec<Stream>,
    splits: [Option<Vec<Labelled>>; 3],
    classes: usize,
    cache: Option<PathBuf>,
    device: &candle_core::Device,
) -> Result<crate::engine::Dataset, DataError> {
    use crate::engine::{Dataset, Split};
    let usable = Manifest::read(root)?.map(|m| {
        m.clips
            .into_iter()
            .collect::<std::collections::HashSet<_>>()
    });
    let mut clips = Vec::new();
    let mut parts: Vec<Option<(Vec<usize>, Vec<u32>)>> = Vec::new();
    let mut left_out = 0;
    for split in splits {
        parts.push(split.map(|split| {
            let (mut items, mut labels) = (Vec::new(), Vec::new());
            for (name, label) in split {
                if usable.as_ref().is_some_and(|u| !u.contains(&name)) {
                    left_out += 1;
                    continue;
                }
                items.push(clips.len());
                labels.push(label);
                clips.push(name);
            }
            (items, labels)
        }));
    }
    if left_out > 0 {
        tracing::warn!(
            root = %root.display(),
            left_out,
            "clips that `balancelab prepare` found broken are left out (see its manifest)"
        );
    }
    for name in &clips {
        for stream in &streams {
            if let Some(missing) = stream.paths(name).into_iter().find(|p| !p.exists()) {
                return Err(DataError::Format {
                    path: missing,
                    message: format!(
                        "missing (clip {name}); `balancelab prepare` lists every problem"
                    ),
                });
            }
        }
    }
    let input_shapes = streams.iter().map(Stream::shape).collect();
    let reader: std::sync::Arc<dyn SampleReader> = std::sync::Arc::new(ClipReader {
        streams,
        clips,
        cache,
    });
    let [train, validation, test] = <[_; 3]>::try_from(parts).expect("three parts");
    let split = |part: Option<(Vec<usize>, Vec<u32>)>| -> candle_core::Result<Option<Split>> {
        part.map(|(items, labels)| Split::on_disk(reader.clone(), items, &labels, device))
            .transpose()
    };
    let empty = || (Vec::new(), Vec::new());
    Ok(Dataset {
        train: split(Some(train.unwrap_or_else(empty)))?.expect("present"),
        validation: split(validation)?,
        test: split(Some(test.unwrap_or_else(empty)))?.expect("present"),
        classes,
        input_shapes,
    })
}
