//! `balancelab prepare`: checks a raw download of CREMA-D, AVE or UCF101, extracts what the
//! loaders read (frames, event-window audio, sound tracks) with ffmpeg, and writes a manifest
//! of the clips that are usable. Every missing or corrupt file is reported with its path and
//! the rest carries on; a second run only checks what is already extracted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use rayon::prelude::*;

use super::audio::read_wav;
use super::ave::{self, read_events};
use super::clips::{Manifest, Problem};
use super::crema_d::{self, parse_clip};
use super::frames::list_frames;
use super::ucf101::{read_classes, read_list};
use super::DataError;

/// A dataset `prepare` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrepareKind {
    /// CREMA-D: `AudioWAV/` and `VideoFlash/` (or `VideoMP4/`) as released.
    CremaD,
    /// AVE: `Annotations.txt`, the split lists and the videos in `AVE/`.
    Ave,
    /// UCF101: `ucfTrainTestlist/` and the videos in `UCF-101/`.
    Ucf101,
}

impl PrepareKind {
    /// Frames per second extracted unless asked otherwise: the loaders' default frame counts
    /// (the reference code names the folder after it); UCF101 keeps every frame.
    pub fn default_fps(self) -> Option<u32> {
        match self {
            PrepareKind::CremaD => Some(1),
            PrepareKind::Ave => Some(4),
            PrepareKind::Ucf101 => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PrepareKind::CremaD => "crema_d",
            PrepareKind::Ave => "ave",
            PrepareKind::Ucf101 => "ucf101",
        }
    }
}

/// What a `prepare` run did, besides the manifest's contents.
#[derive(Debug, Default)]
pub struct Summary {
    /// Clips found or listed (videos, for AVE and UCF101).
    pub clips: usize,
    /// Of those, the clips whose files all exist and decode.
    pub usable: usize,
    /// ffmpeg runs that wrote frames or audio this time.
    pub extracted: usize,
    /// Problems found, each reported as found and listed in the manifest.
    pub problems: usize,
    /// Where the manifest was written.
    pub manifest: PathBuf,
}

/// Prepares the dataset in `src`, calling `report` with each problem as it is found.
pub fn prepare(
    kind: PrepareKind,
    src: &Path,
    fps: Option<u32>,
    report: &(dyn Fn(&Problem) + Sync),
) -> Result<Summary, DataError> {
    ffmpeg_available()?;
    let fps = fps.or(kind.default_fps());
    let run = Run {
        problems: Mutex::new(Vec::new()),
        extracted: Mutex::new(0),
        report,
    };
    let (clips, usable) = match kind {
        PrepareKind::CremaD => crema_d(src, fps.unwrap_or(1), &run)?,
        PrepareKind::Ave => ave(src, fps.unwrap_or(4), &run)?,
        PrepareKind::Ucf101 => ucf101(src, fps, &run)?,
    };
    let mut problems = run.problems.into_inner().expect("no panics while held");
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = Manifest {
        dataset: kind.name().into(),
        clips: usable.clone(),
        problems,
    };
    let path = src.join(Manifest::FILE);
    let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    std::fs::write(&path, text).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(Summary {
        clips,
        usable: usable.len(),
        extracted: run.extracted.into_inner().expect("no panics while held"),
        problems: manifest.problems.len(),
        manifest: path,
    })
}

/// Problems found so far and extraction count, shared by the parallel workers.
struct Run<'a> {
    problems: Mutex<Vec<Problem>>,
    extracted: Mutex<usize>,
    report: &'a (dyn Fn(&Problem) + Sync),
}

impl Run<'_> {
    /// Records `result`'s error, if any, and says whether it was fine.
    fn check(&self, result: Result<(), DataError>) -> bool {
        match result {
            Ok(()) => true,
            Err(error) => {
                let problem = match error {
                    DataError::Io { path, source } => Problem {
                        path,
                        message: source.to_string(),
                    },
                    DataError::Format { path, message } => Problem { path, message },
                    other => Problem {
                        path: PathBuf::new(),
                        message: other.to_string(),
                    },
                };
                (self.report)(&problem);
                self.problems
                    .lock()
                    .expect("no panics while held")
                    .push(problem);
                false
            }
        }
    }

    fn extracted(&self) {
        *self.extracted.lock().expect("no panics while held") += 1;
    }
}

fn ffmpeg_available() -> Result<(), DataError> {
    match Command::new("ffmpeg").arg("-version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err(DataError::Format {
            path: "ffmpeg".into(),
            message: "not found on PATH; prepare needs it (Debian: apt install ffmpeg)".into(),
        }),
    }
}

/// Runs ffmpeg on `input` with `args` before the output `output`; a failure names the input.
fn ffmpeg(
    input: &Path,
    before_input: &[String],
    args: &[&str],
    output: &Path,
) -> Result<(), DataError> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(before_input)
        .arg("-i")
        .arg(input)
        .args(args)
        .arg(output)
        .output()
        .map_err(|source| DataError::Io {
            path: "ffmpeg".into(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("no message").trim();
        Err(DataError::Format {
            path: input.to_owned(),
            message: format!("ffmpeg could not decode it: {last}"),
        })
    }
}

/// Frames of `video` in `dir` (at `fps`, every frame if `None`, scaled to `height` if set),
/// unless `dir` already has frames; then every frame must decode.
fn frames(
    run: &Run,
    video: &Path,
    dir: &Path,
    fps: Option<u32>,
    window: Option<(f64, f64)>,
    height: Option<u32>,
) -> Result<(), DataError> {
    if list_frames(dir).is_err() {
        if !video.is_file() {
            return Err(missing(video));
        }
        std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut filters = Vec::new();
        if let Some(fps) = fps {
            filters.push(format!("fps={fps}"));
        }
        if let Some(height) = height {
            filters.push(format!("scale=-2:{height}"));
        }
        let mut args = vec!["-q:v", "2"];
        let joined = filters.join(",");
        if !filters.is_empty() {
            args.extend(["-vf", &joined]);
        }
        let result = ffmpeg(video, &seek(window), &args, &dir.join("frame%06d.jpg"));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(dir);
        }
        result?;
        run.extracted();
    }
    for frame in list_frames(dir)? {
        image::open(&frame).map_err(|e| DataError::Format {
            path: frame.clone(),
            message: format!("unreadable image: {e}"),
        })?;
    }
    Ok(())
}

/// 16 kHz mono wav of `video`'s sound (within `window`), unless `wav` exists; then it must
/// decode as one.
fn sound(run: &Run, video: &Path, wav: &Path, window: Option<(f64, f64)>) -> Result<(), DataError> {
    if !wav.is_file() {
        if !video.is_file() {
            return Err(missing(video));
        }
        let parent = wav.parent().expect("a wav path has a folder");
        std::fs::create_dir_all(parent).map_err(|source| DataError::Io {
            path: parent.to_owned(),
            source,
        })?;
        let args = ["-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le"];
        let result = ffmpeg(video, &seek(window), &args, wav);
        if result.is_err() {
            let _ = std::fs::remove_file(wav);
        }
        result?;
        run.extracted();
    }
    check_wav(wav, 16_000)
}

fn seek(window: Option<(f64, f64)>) -> Vec<String> {
    match window {
        Some((start, end)) => vec![
            "-ss".into(),
            start.to_string(),
            "-to".into(),
            end.to_string(),
        ],
        None => Vec::new(),
    }
}

fn check_wav(wav: &Path, rate: u32) -> Result<(), DataError> {
    if !wav.is_file() {
        return Err(missing(wav));
    }
    let (_, found) = read_wav(wav)?;
    if found != rate {
        return Err(DataError::Format {
            path: wav.to_owned(),
            message: format!("sample rate {found} Hz, expected {rate} Hz"),
        });
    }
    Ok(())
}

fn missing(path: &Path) -> DataError {
    DataError::Format {
        path: path.to_owned(),
        message: "missing".into(),
    }
}

/// The first of `candidates` that exists, else the first (to be reported missing).
fn first_existing(candidates: Vec<PathBuf>) -> PathBuf {
    candidates
        .iter()
        .find(|p| p.is_file())
        .unwrap_or(&candidates[0])
        .clone()
}

fn stems(dir: &Path, extensions: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        })
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// CREMA-D: `AudioWAV/*.wav` and `VideoFlash/*.flv` (or `VideoMP4/*.mp4`) as released; writes
/// `Image-{fps:02}-FPS/{clip}/`.
fn crema_d(src: &Path, fps: u32, run: &Run) -> Result<(usize, Vec<String>), DataError> {
    for csv in ["train.csv", "test.csv"] {
        let path = src.join(csv);
        if !path.is_file() {
            run.check(Err(DataError::Format {
                path,
                message: "missing: the reference code's split (needed for split = \"csv\"; speaker folds work without it)".into(),
            }));
        }
    }
    let mut clips = stems(&src.join("AudioWAV"), &["wav"]);
    clips.extend(stems(&src.join("VideoFlash"), &["flv"]));
    clips.extend(stems(&src.join("VideoMP4"), &["mp4"]));
    clips.sort();
    clips.dedup();
    if clips.is_empty() {
        return Err(DataError::Format {
            path: src.join("AudioWAV"),
            message: "no clips: expected AudioWAV/*.wav and VideoFlash/*.flv".into(),
        });
    }
    let frames_dir = src.join(crema_d::frames_folder(fps));
    let usable = clips
        .par_iter()
        .filter(|clip| {
            let named = run.check(match parse_clip(clip) {
                Some(_) => Ok(()),
                None => Err(DataError::Format {
                    path: src.join("AudioWAV").join(format!("{clip}.wav")),
                    message: "not named {actor}_{sentence}_{emotion}_{level}".into(),
                }),
            });
            let wav = src.join("AudioWAV").join(format!("{clip}.wav"));
            let audio_ok = run.check(check_wav(&wav, 16_000));
            let video = first_existing(vec![
                src.join("VideoFlash").join(format!("{clip}.flv")),
                src.join("VideoMP4").join(format!("{clip}.mp4")),
            ]);
            let frames_ok = run.check(frames(
                run,
                &video,
                &frames_dir.join(clip),
                Some(fps),
                None,
                None,
            ));
            named && audio_ok && frames_ok
        })
        .cloned()
        .collect();
    Ok((clips.len(), usable))
}

/// AVE: `Annotations.txt` and `AVE/{video}.mp4`; writes `Audio-SE/{video}.wav` and
/// `Image-{fps:02}-FPS-SE/{video}/` from each event's window.
fn ave(src: &Path, fps: u32, run: &Run) -> Result<(usize, Vec<String>), DataError> {
    for list in ["trainSet.txt", "valSet.txt", "testSet.txt"] {
        run.check(read_events(&src.join(list)).map(|_| ()));
    }
    let events = read_events(&src.join("Annotations.txt"))?;
    let frames_dir = src.join(ave::frames_folder(fps));
    let usable = events
        .par_iter()
        .filter(|event| {
            let video = src.join("AVE").join(format!("{}.mp4", event.video));
            let window = Some((event.start, event.end));
            let wav = src.join("Audio-SE").join(format!("{}.wav", event.video));
            let audio_ok = run.check(sound(run, &video, &wav, window));
            let dir = frames_dir.join(&event.video);
            let frames_ok = run.check(frames(run, &video, &dir, Some(fps), window, None));
            audio_ok && frames_ok
        })
        .map(|event| event.video.clone())
        .collect();
    Ok((events.len(), usable))
}

/// Whether ffprobe finds an audio stream in `video`.
fn has_sound(video: &Path) -> bool {
    Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "stream=index",
            "-of",
            "csv=p=0",
        ])
        .arg(video)
        .output()
        .is_ok_and(|out| out.status.success() && !out.stdout.trim_ascii().is_empty())
}

/// UCF101: `ucfTrainTestlist/` and `UCF-101/{Class}/{video}.avi`; writes
/// `jpegs_256/{video}/` (256 px high) and `audio/{video}.wav` for videos with sound. TV-L1
/// flow is not computed (it needs OpenCV's contrib modules); where `tvl1_flow/` exists,
/// every video's x and y folders are checked.
fn ucf101(src: &Path, fps: Option<u32>, run: &Run) -> Result<(usize, Vec<String>), DataError> {
    let lists = src.join("ucfTrainTestlist");
    let classes = read_classes(&lists.join("classInd.txt"))?;
    let mut videos = Vec::new();
    for split in 1..=3 {
        for file in [
            format!("trainlist0{split}.txt"),
            format!("testlist0{split}.txt"),
        ] {
            match read_list(&lists.join(&file), &classes) {
                Ok(listed) => videos.extend(listed),
                Err(error) => {
                    run.check(Err(error));
                }
            }
        }
    }
    videos.sort();
    videos.dedup();
    let flow = src.join("tvl1_flow");
    let usable = videos
        .par_iter()
        .filter(|(video, class)| {
            let file = src
                .join("UCF-101")
                .join(&classes[*class as usize])
                .join(format!("{video}.avi"));
            let frames_ok = run.check(frames(
                run,
                &file,
                &src.join("jpegs_256").join(video),
                fps,
                None,
                Some(256),
            ));
            let sound_ok = !file.is_file()
                || !has_sound(&file)
                || run.check(sound(
                    run,
                    &file,
                    &src.join("audio").join(format!("{video}.wav")),
                    None,
                ));
            let flow_ok = !flow.is_dir()
                || ["u", "v"]
                    .iter()
                    .all(|axis| run.check(list_frames(&flow.join(axis).join(video)).map(|_| ())));
            frames_ok && sound_ok && flow_ok
        })
        .map(|(video, _)| video.clone())
        .collect();
    Ok((videos.len(), usable))
}
