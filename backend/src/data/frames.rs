//! Video frames as the reference code prepares them (torchvision on PIL images): training
//! frames get `RandomResizedCrop(size)` (scale 0.08-1, aspect 3/4-4/3) and
//! `RandomHorizontalFlip()`, evaluation frames `Resize((size, size))`; then `ToTensor()` and
//! ImageNet's `Normalize`. Optical flow is stored as two grey JPEGs per frame (x and y
//! displacement, 128 = still), as the common TV-L1 releases of UCF101 store it.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{GrayImage, ImageBuffer, Pixel, RgbImage};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use super::{files_with_extension, DataError};

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Flow images: 0.5 mean, TSN's 0.226 deviation, for both channels.
const FLOW_MEAN: f32 = 0.5;
const FLOW_STD: f32 = 0.226;

/// How many frames of a clip are used and at what size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameSpec {
    /// Frames taken from each clip.
    pub frames: usize,
    /// Side of the square frames fed to the model, in pixels.
    pub size: u32,
}

impl FrameSpec {
    /// `[frames, channels, size, size]`.
    pub fn shape(&self, channels: usize) -> Vec<usize> {
        let side = self.size as usize;
        vec![self.frames, channels, side, side]
    }
}

/// The image files of a frame folder, sorted by name; a missing or empty folder is an error.
pub fn list_frames(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let frames = files_with_extension(dir, &["jpg", "jpeg", "png"])?;
    if frames.is_empty() {
        return Err(DataError::Format {
            path: dir.to_owned(),
            message: "no frames (.jpg or .png) in this folder".into(),
        });
    }
    Ok(frames)
}

/// Which of `available` frames a sample uses, in time order: `count` distinct frames drawn at
/// random when training (the reference code's `np.random.choice(..., replace=False)`),
/// evenly spaced for evaluation. A clip with fewer frames repeats them.
pub fn choose_frames(available: usize, count: usize, rng: Option<&mut StdRng>) -> Vec<usize> {
    if available < count {
        return (0..count).map(|i| i * available / count).collect();
    }
    match rng {
        Some(rng) => {
            let mut picked = sample(rng, available, count).into_vec();
            picked.sort_unstable();
            picked
        }
        None => (0..count)
            .map(|i| (2 * i + 1) * available / (2 * count))
            .collect(),
    }
}

/// torchvision's `RandomResizedCrop.get_params`: up to ten tries at a crop of 8-100% of the
/// area with an aspect ratio drawn log-uniformly from 3/4-4/3, else a centre crop with the
/// ratio clamped. Returns `(left, top, width, height)`.
pub fn random_resized_crop_box(width: u32, height: u32, rng: &mut StdRng) -> (u32, u32, u32, u32) {
    let area = f64::from(width) * f64::from(height);
    let (low, high) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(0.08..=1.0);
        let ratio = rng.random_range(low..=high).exp();
        let w = (target * ratio).sqrt().round() as u32;
        let h = (target / ratio).sqrt().round() as u32;
        if 0 < w && w <= width && 0 < h && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (left, top, w, h);
        }
    }
    let in_ratio = f64::from(width) / f64::from(height);
    let (w, h) = if in_ratio < 3.0 / 4.0 {
        (width, (f64::from(width) / (3.0 / 4.0)).round() as u32)
    } else if in_ratio > 4.0 / 3.0 {
        ((f64::from(height) * (4.0 / 3.0)).round() as u32, height)
    } else {
        (width, height)
    };
    ((width - w) / 2, (height - h) / 2, w, h)
}

/// One frame's geometry: training crops and flips drawn from `rng`, else a plain resize.
fn transform<P: Pixel + 'static>(
    image: &ImageBuffer<P, Vec<P::Subpixel>>,
    size: u32,
    rng: Option<&mut StdRng>,
) -> (ImageBuffer<P, Vec<P::Subpixel>>, bool) {
    match rng {
        Some(rng) => {
            let (left, top, w, h) = random_resized_crop_box(image.width(), image.height(), rng);
            let crop = imageops::crop_imm(image, left, top, w, h).to_image();
            let resized = imageops::resize(&crop, size, size, FilterType::Triangle);
            let flip = rng.random_bool(0.5);
            let out = if flip {
                imageops::flip_horizontal(&resized)
            } else {
                resized
            };
            (out, flip)
        }
        None => (
            imageops::resize(image, size, size, FilterType::Triangle),
            false,
        ),
    }
}

fn unreadable(path: &Path, error: impl std::fmt::Display) -> DataError {
    DataError::Format {
        path: path.to_owned(),
        message: format!("unreadable image: {error}"),
    }
}

/// An RGB frame, `[3, size, size]` normalised with ImageNet's statistics.
pub fn rgb_frame(path: &Path, size: u32, rng: Option<&mut StdRng>) -> Result<Vec<f32>, DataError> {
    let image: RgbImage = image::open(path)
        .map_err(|e| unreadable(path, e))?
        .into_rgb8();
    let (image, _) = transform(&image, size, rng);
    let plane = (size * size) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(pixel[c]) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    Ok(out)
}

/// A flow frame from its x and y images, `[2, size, size]`; both get the same crop, and a
/// horizontal flip also negates the x displacement.
pub fn flow_frame(
    x_path: &Path,
    y_path: &Path,
    size: u32,
    rng: Option<&mut StdRng>,
) -> Result<Vec<f32>, DataError> {
    let open = |path: &Path| -> Result<GrayImage, DataError> {
        Ok(image::open(path)
            .map_err(|e| unreadable(path, e))?
            .into_luma8())
    };
    let (x, y) = (open(x_path)?, open(y_path)?);
    if x.dimensions() != y.dimensions() {
        return Err(DataError::Format {
            path: y_path.to_owned(),
            message: format!(
                "{}x{} but its x-flow image is {}x{}",
                y.width(),
                y.height(),
                x.width(),
                x.height()
            ),
        });
    }
    // One draw for both images: stack them side by side as a two-channel image.
    let both = ImageBuffer::from_fn(x.width(), x.height(), |i, j| {
        image::LumaA([x.get_pixel(i, j)[0], y.get_pixel(i, j)[0]])
    });
    let (both, flipped) = transform(&both, size, rng);
    let plane = (size * size) as usize;
    let mut out = vec![0f32; 2 * plane];
    for (i, pixel) in both.pixels().enumerate() {
        let dx = if flipped { 255 - pixel[0] } else { pixel[0] };
        out[i] = (f32::from(dx) / 255.0 - FLOW_MEAN) / FLOW_STD;
        out[plane + i] = (f32::from(pixel[1]) / 255.0 - FLOW_MEAN) / FLOW_STD;
    }
    Ok(out)
}

/// A clip's RGB frames, `[frames, 3, size, size]`.
pub fn rgb_clip(dir: &Path, spec: FrameSpec, seed: Option<u64>) -> Result<Vec<f32>, DataError> {
    let frames = list_frames(dir)?;
    let mut rng = seed.map(StdRng::seed_from_u64);
    let chosen = choose_frames(frames.len(), spec.frames, rng.as_mut());
    let mut out = Vec::with_capacity(spec.frames * 3 * (spec.size * spec.size) as usize);
    for i in chosen {
        out.extend(rgb_frame(&frames[i], spec.size, rng.as_mut())?);
    }
    Ok(out)
}

/// A clip's flow frames from its x and y folders, `[frames, 2, size, size]`.
pub fn flow_clip(
    x_dir: &Path,
    y_dir: &Path,
    spec: FrameSpec,
    seed: Option<u64>,
) -> Result<Vec<f32>, DataError> {
    let (x_frames, y_frames) = (list_frames(x_dir)?, list_frames(y_dir)?);
    if x_frames.len() != y_frames.len() {
        return Err(DataError::Format {
            path: y_dir.to_owned(),
            message: format!(
                "{} y-flow frames but {} x-flow frames in {}",
                y_frames.len(),
                x_frames.len(),
                x_dir.display()
            ),
        });
    }
    let mut rng = seed.map(StdRng::seed_from_u64);
    let chosen = choose_frames(x_frames.len(), spec.frames, rng.as_mut());
    let mut out = Vec::with_capacity(spec.frames * 2 * (spec.size * spec.size) as usize);
    for i in chosen {
        out.extend(flow_frame(
            &x_frames[i],
            &y_frames[i],
            spec.size,
            rng.as_mut(),
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_stay_inside_and_cover_the_published_ranges() {
        let mut rng = StdRng::seed_from_u64(0);
        let (mut smallest, mut largest) = (f64::MAX, 0f64);
        for _ in 0..2000 {
            let (left, top, w, h) = random_resized_crop_box(320, 240, &mut rng);
            assert!(left + w <= 320 && top + h <= 240, "{left} {top} {w} {h}");
            let share = f64::from(w * h) / f64::from(320 * 240);
            let ratio = f64::from(w) / f64::from(h);
            assert!((0.07..=1.0).contains(&share), "{share}");
            assert!((0.74..=1.35).contains(&ratio), "{ratio}");
            smallest = smallest.min(share);
            largest = largest.max(share);
        }
        assert!(smallest < 0.1 && largest > 0.9, "{smallest} {largest}");
        // A 10:1 strip never fits a 3/4-4/3 crop: the fallback is the centred 4/3 box.
        assert_eq!(
            random_resized_crop_box(1000, 10, &mut rng),
            (493, 0, 13, 10)
        );
    }

    #[test]
    fn frame_choice_is_sorted_distinct_or_evenly_spaced() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let picked = choose_frames(10, 3, Some(&mut rng));
            assert!(picked.windows(2).all(|w| w[0] < w[1]) && picked[2] < 10);
        }
        assert_eq!(choose_frames(10, 3, None), [1, 5, 8]);
        assert_eq!(choose_frames(3, 1, None), [1]);
        assert_eq!(choose_frames(2, 4, None), [0, 0, 1, 1]);
    }

    #[test]
    fn evaluation_frames_are_resized_and_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("frame.png");
        // A uniform (255, 128, 0) image: every output value is its channel's normalised value.
        RgbImage::from_pixel(40, 30, image::Rgb([255, 128, 0]))
            .save(&path)
            .unwrap();
        let out = rgb_frame(&path, 8, None).unwrap();
        assert_eq!(out.len(), 3 * 64);
        for (c, value) in [255f32, 128.0, 0.0].into_iter().enumerate() {
            let expected = (value / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            assert!(out[c * 64..(c + 1) * 64]
                .iter()
                .all(|v| (v - expected).abs() < 1e-6));
        }
    }

    #[test]
    fn a_flipped_flow_frame_negates_its_x_displacement() {
        let dir = tempfile::tempdir().unwrap();
        let (x, y) = (dir.path().join("x.jpg"), dir.path().join("y.jpg"));
        // Uniform x flow 200 (moving right) and y flow 128 (still); PNG-exact values in JPEG
        // survive for flat images.
        GrayImage::from_pixel(16, 16, image::Luma([200]))
            .save(&x)
            .unwrap();
        GrayImage::from_pixel(16, 16, image::Luma([128]))
            .save(&y)
            .unwrap();
        let right = (200.0 / 255.0 - FLOW_MEAN) / FLOW_STD;
        let left = (55.0 / 255.0 - FLOW_MEAN) / FLOW_STD;
        let (mut saw_flip, mut saw_plain) = (false, false);
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let out = flow_frame(&x, &y, 4, Some(&mut rng)).unwrap();
            let dx = out[0];
            assert!(
                (dx - right).abs() < 0.05 || (dx - left).abs() < 0.05,
                "{dx}"
            );
            saw_flip |= (dx - left).abs() < 0.05;
            saw_plain |= (dx - right).abs() < 0.05;
            assert!(out[16..]
                .iter()
                .all(|v| (v - (128.0 / 255.0 - 0.5) / FLOW_STD).abs() < 0.05));
        }
        assert!(saw_flip && saw_plain);
    }

    #[test]
    fn bad_frames_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = list_frames(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope"), "{missing}");
        let empty = list_frames(dir.path()).unwrap_err().to_string();
        assert!(empty.contains("no frames"), "{empty}");
        let broken = dir.path().join("broken.jpg");
        std::fs::write(&broken, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
        let error = rgb_frame(&broken, 8, None).unwrap_err().to_string();
        assert!(
            error.contains("broken.jpg") && error.contains("unreadable image"),
            "{error}"
        );
    }
}
