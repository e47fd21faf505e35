//! Audio as the reference research code prepares it: 16-bit PCM wav read as floats in
//! [-1, 1) (soundfile's scaling, which `librosa.load` uses), tiled to a fixed clip length
//! with `np.tile(samples, k)[:length]`, then `librosa.stft` (periodic Hann window, centred
//! frames with zero padding) and `np.log(np.abs(stft) + 1e-7)`. Files at another rate are
//! resampled as `librosa.load(path, sr=rate)` does ([`super::resample`]).

use std::path::Path;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use super::resample::resample;
use super::DataError;

/// Writes `samples` as the mono 16-bit PCM wav [`read_wav`] reads, creating its folders: the
/// fixtures of the loaders' tests and benches.
pub fn write_wav(
    path: &Path,
    rate: u32,
    samples: impl IntoIterator<Item = i16>,
) -> Result<(), hound::Error> {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    for sample in samples {
        writer.write_sample(sample)?;
    }
    writer.finalize()
}

/// Samples of a mono 16-bit PCM wav file, scaled by 1/32768, and its sample rate.
pub fn read_wav(path: &Path) -> Result<(Vec<f32>, u32), DataError> {
    let bad = |message: String| DataError::Format {
        path: path.to_owned(),
        message,
    };
    let mut reader =
        hound::WavReader::open(path).map_err(|e| bad(format!("not a readable wav file: {e}")))?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(bad(format!(
            "expected mono 16-bit PCM, found {} channel(s) of {}-bit {:?}",
            spec.channels, spec.bits_per_sample, spec.sample_format
        )));
    }
    let samples = reader
        .samples::<i16>()
        .map(|s| s.map(|v| f32::from(v) / 32768.0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("truncated or corrupt audio data: {e}")))?;
    if samples.is_empty() {
        return Err(bad("no audio samples".into()));
    }
    Ok((samples, spec.sample_rate))
}

/// The audio features of one clip: the reference pipeline with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipAudio {
    /// The rate the files must have (a file at another rate is the wrong file), if any.
    pub source_rate: Option<u32>,
    /// The rate features are computed at (`librosa.load(..., sr=rate)`).
    pub rate: u32,
    /// Samples after tiling.
    pub clip_samples: usize,
    /// STFT window and FFT length in samples (`n_fft / 2 + 1` frequency bins).
    pub n_fft: usize,
    /// Samples between the starts of consecutive STFT frames.
    pub hop: usize,
}

impl ClipAudio {
    /// CREMA-D in the authors' code: 16 kHz files loaded at 22.05 kHz, 3 s, 512 / 353:
    /// a 257 x 188 spectrogram.
    pub const CREMA_D: ClipAudio = ClipAudio {
        source_rate: Some(16_000),
        rate: 22_050,
        clip_samples: 3 * 22_050,
        n_fft: 512,
        hop: 353,
    };

    /// A video's sound track (AVE's event window, a UCF101 clip) as BalanceLab prepares it:
    /// 16 kHz, tiled to 10 s, CREMA-D's STFT: 257 x 454.
    pub const SOUND_TRACK: ClipAudio = ClipAudio {
        source_rate: Some(16_000),
        rate: 16_000,
        clip_samples: 10 * 16_000,
        n_fft: 512,
        hop: 353,
    };

    /// `[1, bins, frames]`: the spectrogram as a one-channel image.
    pub fn shape(&self) -> Vec<usize> {
        vec![1, self.n_fft / 2 + 1, 1 + self.clip_samples / self.hop]
    }

    /// A key naming these parameters, for caches.
    pub fn key(&self) -> String {
        format!(
            "sr{}-clip{}-fft{}-hop{}",
            self.rate, self.clip_samples, self.n_fft, self.hop
        )
    }

    /// Samples of `path` at [`Self::rate`], tiled to the clip length and clipped to [-1, 1].
    pub fn waveform(&self, path: &Path) -> Result<Vec<f32>, DataError> {
        let (samples, rate) = read_wav(path)?;
        let bad = |message: String| DataError::Format {
            path: path.to_owned(),
            message,
        };
        if let Some(expected) = self.source_rate.filter(|&r| r != rate) {
            return Err(bad(format!(
                "sample rate {rate} Hz, expected {expected} Hz: not a file of this dataset"
            )));
        }
        let samples = resample(&samples, rate, self.rate).map_err(bad)?;
        let mut clip = tile(&samples, self.clip_samples);
        for s in &mut clip {
            *s = s.clamp(-1.0, 1.0);
        }
        Ok(clip)
    }

    /// The log spectrogram of `path`, `[bins, frames]` row-major.
    pub fn spectrogram(&self, path: &Path) -> Result<Vec<f32>, DataError> {
        let clip = self.waveform(path)?;
        Ok(LogSpectrogram::new(self.n_fft, self.hop).compute(&clip))
    }
}

/// `np.tile(samples, k)[:length]` for the smallest k that reaches `length`.
pub fn tile(samples: &[f32], length: usize) -> Vec<f32> {
    samples.iter().copied().cycle().take(length).collect()
}

/// A log-magnitude short-time Fourier transform with fixed parameters.
pub struct LogSpectrogram {
    n_fft: usize,
    hop: usize,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl LogSpectrogram {
    /// Plans the FFT for windows of `n_fft` samples, `hop` apart, under a periodic Hann window.
    pub fn new(n_fft: usize, hop: usize) -> Self {
        // scipy.signal.get_window("hann", n_fft): the periodic window, as librosa uses.
        let window = (0..n_fft)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / n_fft as f64).cos())
            .collect();
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        Self {
            n_fft,
            hop,
            window,
            fft,
        }
    }

    /// Frequency bins per frame: `n_fft / 2 + 1`.
    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames of a signal of `length` samples (centred: 1 + length / hop).
    pub fn frames(&self, length: usize) -> usize {
        1 + length / self.hop
    }

    /// `log(|STFT| + 1e-7)`, `[bins, frames]` row-major, computed in double precision.
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        let pad = self.n_fft / 2;
        let frames = self.frames(samples.len());
        let bins = self.bins();
        let mut padded = vec![0f64; samples.len() + 2 * pad];
        for (p, &s) in padded[pad..].iter_mut().zip(samples) {
            *p = f64::from(s);
        }
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut out = vec![0f32; bins * frames];
        for t in 0..frames {
            let frame = &padded[t * self.hop..t * self.hop + self.n_fft];
            for ((i, &x), &w) in input.iter_mut().zip(frame).zip(&self.window) {
                *i = x * w;
            }
            self.fft
                .process(&mut input, &mut spectrum)
                .expect("buffers sized by the plan");
            for (f, c) in spectrum.iter().enumerate() {
                out[f * frames + t] = (c.norm() + 1e-7).ln() as f32;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiling_repeats_then_cuts() {
        assert_eq!(
            tile(&[1.0, 2.0, 3.0], 7),
            [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0]
        );
        assert_eq!(tile(&[1.0, 2.0, 3.0], 2), [1.0, 2.0]);
    }

    #[test]
    fn a_sine_peaks_in_its_bin() {
        // 1 kHz at 8 kHz with n_fft 256: bin 1000 / (8000 / 256) = 32. The CREMA-D shape is
        // 257 x 188 for 3 s at 22.05 kHz with n_fft 512 and hop 353.
        let stft = LogSpectrogram::new(256, 128);
        let samples: Vec<f32> = (0..8000)
            .map(|n| (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 8000.0).sin() * 0.5)
            .collect();
        let out = stft.compute(&samples);
        let frames = stft.frames(samples.len());
        assert_eq!((stft.bins(), frames), (129, 63));
        let column: Vec<f32> = (0..129).map(|f| out[f * frames + 30]).collect();
        let peak = (0..129)
            .max_by(|&a, &b| column[a].total_cmp(&column[b]))
            .unwrap();
        assert_eq!(peak, 32);
        // Amplitude 0.5 under a periodic Hann window of 256: |X| = 0.5 * 256 / 4 = 32.
        assert!((column[32] - 32f32.ln()).abs() < 1e-3, "{}", column[32]);
        let crema = LogSpectrogram::new(512, 353);
        assert_eq!((crema.bins(), crema.frames(3 * 22_050)), (257, 188));
    }
}
